/*
 * Ticks from CSV for `tickslab send`.  The header line names the columns,
 * mapped to the schema's fields by name in any order (cli_csv_header); a
 * CSV without one has the legacy columns ticker,ts,price,volume,flags.
 * Each data line is split (RFC 4180 quoting allowed, one line a record),
 * each cell converted by its field's type, and the tick encoded as a
 * msgpack map or, in the compact form, as an array in the schema's slot
 * order.  Timestamps are integer nanoseconds or ISO-8601 with a zone
 * (2026-11-25T10:00:00.123456789Z), read by tks_parse_time() (lib/util.h).
 * No allocation here but the output's.
 */
#ifndef TKS_CLI_CSV_H
#define TKS_CLI_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema.h"
#include "util.h"

#define CLI_CSV_MAX_COLUMNS 64      /* a tick carries at most 64 fields */
#define CLI_CSV_NAME_MAX 255        /* bytes of a column name */
#define CLI_CSV_LINE_MAX (1u << 20) /* bytes of a line (send refuses longer) */

/* One column: the schema field it fills, or an extra field (--extra). */
struct cli_csv_column {
  int field; /* slot in the schema, or -1: not a field of the schema */
  char name[CLI_CSV_NAME_MAX + 1];
};

/* How the columns of a CSV map to the schema's fields. */
struct cli_csv_map {
  const struct tks_schema *schema;
  bool extra;  /* columns the schema does not declare are sent as extra fields */
  bool header; /* the columns come from a header line (false: the legacy ones) */
  unsigned ncols;
  struct cli_csv_column cols[CLI_CSV_MAX_COLUMNS];
};

/* ISO-8601 date-time with a zone: tks_parse_iso8601() (lib/util.h), the
 * one implementation the CLI and the daemon share. */
static inline int cli_parse_iso8601(const char *s, size_t len, int64_t *out_ns) {
  return tks_parse_iso8601(s, len, out_ns);
}

/* A timestamp column: tks_parse_time() (ns since the epoch, ISO-8601, or a
 * bare date at midnight UTC), and also "-" digits, a negative int64 ns, which
 * the ingest port takes.  Returns 0, -EINVAL or -ERANGE. */
int cli_parse_ts(const char *s, size_t len, int64_t *out_ns);

/* True for a line of only spaces, tabs and CR: skipped by send. */
bool cli_csv_is_blank(const char *line, size_t len);

/*
 * The first line that is not blank (line, len, without its '\n'; quoted
 * cells are unquoted in place).  It is a header when one of its cells names
 * a field of schema s (ignoring case; a UTF-8 BOM before it is skipped) and
 * none is a number (a data line has a price or a time, "TS,1,2,3" is data):
 * then m maps each column to its field and 1 is returned.  0: it is not a
 * header (a data line; m untouched).  -EINVAL, with the reason in err: a
 * header that cannot be used: an empty name, a name over 255 bytes, not
 * UTF-8 or holding a control character, "$", a name twice, more than 64
 * columns, a required field with no column, or (without extra) a name the
 * schema does not declare (all such names are listed).
 */
int cli_csv_header(struct cli_csv_map *m, const struct tks_schema *s, bool extra, char *line,
                   size_t len, char *err, size_t errlen);

/*
 * The columns of a CSV without a header: ticker,ts,price,volume,flags (the
 * last optional), what `send` always read.  Only for a schema that declares
 * ticker, ts, price and volume (otherwise which column is which is
 * anybody's guess): returns 0, or -EINVAL with the reason in err.
 */
int cli_csv_legacy(struct cli_csv_map *m, const struct tks_schema *s, bool extra, char *err,
                   size_t errlen);

/*
 * One data line (without its '\n'; a trailing '\r' is ignored; quoted
 * cells unquoted in place) into one tick appended to out: a msgpack map of
 * the non-empty cells, keys in column order, or (array) an array in the
 * schema's slot order with nil for absent fields.  Each cell is converted
 * by its field's type: timestamp (integer ns, ISO-8601 with a zone, a
 * date), i64, u32, f64, bool (true/false/1/0), symbol and string (as
 * text); an extra column's cell is an integer, a float, true/false or
 * else a string.  An empty cell is not sent (an error for a required
 * field); a line may have fewer cells than columns (the rest are empty),
 * not more.  Returns 0, -ENOMEM, or -EINVAL with a one-line reason in err,
 * e.g. "bad price 'abc': not a number", with out as it was.
 */
int cli_csv_encode(const struct cli_csv_map *m, char *line, size_t len, bool array,
                   struct tks_buf *out, char *err, size_t errlen);

#endif

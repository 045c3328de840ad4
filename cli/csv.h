/*
 * Ticks from CSV for `tickslab send`: one line `ticker,ts,price,volume,flags`
 * is split (RFC 4180 quoting allowed), checked and turned into a cli_tick,
 * which is then encoded as a msgpack map or, in the compact form, as an
 * array in the schema's slot order.  Timestamps are integer nanoseconds or
 * ISO-8601 with a zone (2026-11-25T10:00:00.123456789Z), read by
 * tks_parse_time() (lib/util.h).  No allocation
 * here: the tick's strings point into the caller's line.
 */
#ifndef TKS_CLI_CSV_H
#define TKS_CLI_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema.h"
#include "util.h"

#define CLI_CSV_COLUMNS 5 /* ticker,ts,price,volume,flags */

struct cli_tick {
  const char *ticker; /* never empty */
  size_t ticker_len;
  bool has_ts; /* false: the daemon stamps the receive time */
  int64_t ts;  /* ns since the Unix epoch */
  double price; /* finite */
  int64_t volume;
  bool has_flags; /* false when the column is absent or empty */
  const char *flags;
  size_t flags_len;
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

/* True if line (after an optional UTF-8 BOM) begins with "ticker": the
 * header, skipped when it is the first line. */
bool cli_csv_is_header(const char *line, size_t len);

/*
 * Parses one line (without its '\n'; a trailing '\r' is ignored) into *t.
 * Unquoted fields are trimmed of spaces and tabs; quoted fields are
 * unquoted in place, so line is modified and t points into it.  4 columns
 * (no flags) or 5 are accepted.  Returns 0, or -EINVAL with a one-line
 * reason in err, e.g. "bad price 'abc': not a number".
 */
int cli_csv_parse_tick(char *line, size_t len, struct cli_tick *t, char *err, size_t errlen);

/* Appends t as a msgpack map {ticker, ts?, price, volume, flags?}.
 * Returns 0 or -ENOMEM. */
int cli_tick_encode_map(struct tks_buf *out, const struct cli_tick *t);

/*
 * Appends t as a msgpack array in schema's slot order: ts, ticker, price,
 * volume and flags go to the fields of those names, nil fills absent values
 * and fields the CSV does not have.  Returns 0, -ENOMEM, or -EINVAL with a
 * reason in err when t has a value (ts, flags, ...) the schema has no field
 * for.
 */
int cli_tick_encode_array(struct tks_buf *out, const struct cli_tick *t,
                          const struct tks_schema *schema, char *err, size_t errlen);

#endif

/*
 * libFuzzer target: the CSV reader of `tickslab send` (cli/csv.c).  The
 * input's first byte chooses the schema (MarketEvent, the wide one of
 * fuzz.h, the README's Trade), --extra and the array form; the rest is
 * lines: the first goes to cli_csv_header (else the legacy columns), every
 * later one to cli_csv_encode, as send feeds them.  Checked: a header taken
 * has 1..64 columns of distinct names, each 1..255 bytes of UTF-8 without
 * control characters and not "$", mapped to distinct fields of the schema
 * (or extra, only with --extra), every required field among them; a refusal
 * has a reason; a line encoded is exactly one msgpack map (at most a key a
 * column, each a column's name, none twice) or array (one element a field);
 * a refused line has a reason and leaves the output as it was.
 */
#include <errno.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "fuzz.h"
#include "utf8.h"

static const struct tks_schema *trade(void) {
  static struct tks_schema s;
  if (s.nfields == 0) {
    static struct tks_config c;
    static const char yaml[] = "schema:\n"
                               "  - {name: symbol,    type: symbol, required: true}\n"
                               "  - {name: timestamp, type: timestamp}\n"
                               "  - {name: bid,       type: f64, required: true}\n"
                               "  - {name: ask,       type: f64, required: true}\n";
    char err[256];
    if (tks_config_parse(&c, yaml, sizeof yaml - 1, "trade", err, sizeof err) != 0) {
      fprintf(stderr, "fuzz: Trade does not parse: %s\n", err);
      abort();
    }
    s = c.schema;
  }
  return &s;
}

static void check_map(const struct cli_csv_map *m, const struct tks_schema *s, bool extra) {
  FUZZ_CHECK(m->ncols >= 1 && m->ncols <= CLI_CSV_MAX_COLUMNS, "%u columns", m->ncols);
  FUZZ_CHECK(m->schema == s, "another schema");
  bool has[TKS_SCHEMA_MAX_FIELDS] = {false};
  for (unsigned c = 0; c < m->ncols; c++) {
    const struct cli_csv_column *col = &m->cols[c];
    size_t l = strlen(col->name);
    FUZZ_CHECK(l >= 1 && l <= CLI_CSV_NAME_MAX, "a name of %zu bytes", l);
    FUZZ_CHECK(!(tks_utf8_scan(col->name, l) & (TKS_UTF8_INVALID | TKS_UTF8_CONTROL)),
               "column %u: a name not UTF-8 or with a control character", c);
    FUZZ_CHECK(strcmp(col->name, "$") != 0, "a column named $");
    for (unsigned k = 0; k < c; k++)
      FUZZ_CHECK(strcmp(m->cols[k].name, col->name) != 0, "column '%s' twice", col->name);
    if (col->field < 0) {
      FUZZ_CHECK(extra || !m->header, "column '%s' undeclared without --extra", col->name);
      continue;
    }
    FUZZ_CHECK((unsigned)col->field < s->nfields, "field %d", col->field);
    FUZZ_CHECK(strcmp(s->fields[col->field].name, col->name) == 0, "column '%s' on field '%s'",
               col->name, s->fields[col->field].name);
    FUZZ_CHECK(!has[col->field], "field %d twice", col->field);
    has[col->field] = true;
  }
  for (unsigned i = 0; i < s->nfields; i++)
    FUZZ_CHECK(!s->fields[i].required || has[i], "required field %s without a column",
               s->fields[i].name);
}

static bool is_column(const struct cli_csv_map *m, const char *k, size_t kl) {
  for (unsigned c = 0; c < m->ncols; c++)
    if (strlen(m->cols[c].name) == kl && memcmp(m->cols[c].name, k, kl) == 0) return true;
  return false;
}

static void check_tick(const struct cli_csv_map *m, const struct tks_buf *out, size_t at,
                       bool array) {
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  FUZZ_CHECK(msgpack_unpack_next(&u, out->data + at, out->len - at, &off) ==
                     MSGPACK_UNPACK_SUCCESS &&
                 off == out->len - at,
             "the tick is not one msgpack object");
  if (array) {
    FUZZ_CHECK(u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == m->schema->nfields,
               "not an array of the schema's %u fields", m->schema->nfields);
  } else {
    FUZZ_CHECK(u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size <= m->ncols,
               "not a map of at most %u keys", m->ncols);
    for (uint32_t i = 0; i < u.data.via.map.size; i++) {
      const msgpack_object *k = &u.data.via.map.ptr[i].key;
      FUZZ_CHECK(k->type == MSGPACK_OBJECT_STR, "a key that is not a string");
      FUZZ_CHECK(is_column(m, k->via.str.ptr, k->via.str.size), "a key that is no column");
      for (uint32_t j = 0; j < i; j++) {
        const msgpack_object *k2 = &u.data.via.map.ptr[j].key;
        FUZZ_CHECK(k2->via.str.size != k->via.str.size ||
                       memcmp(k2->via.str.ptr, k->via.str.ptr, k->via.str.size) != 0,
                   "a key twice");
      }
    }
  }
  msgpack_unpacked_destroy(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned pick = data[0];
  const struct tks_schema *s = (pick & 3) == 2 ? trade() : fuzz_schema(pick & 1);
  bool extra = pick & 4, array = (pick & 8) && !extra;
  data++, size--;
  static char line[CLI_CSV_LINE_MAX + 1];
  static struct cli_csv_map m;
  struct tks_buf out = {0};
  char err[1024];
  bool first = true, mapped = false;
  size_t pos = 0;
  while (pos < size) {
    const uint8_t *nl = memchr(data + pos, '\n', size - pos);
    size_t len = nl ? (size_t)(nl - (data + pos)) : size - pos;
    if (len > CLI_CSV_LINE_MAX) len = CLI_CSV_LINE_MAX;
    memcpy(line, data + pos, len);
    line[len] = '\0';
    pos += len + 1;
    if (cli_csv_is_blank(line, len)) continue;
    err[0] = '\0';
    if (first) {
      first = false;
      static char copy[CLI_CSV_LINE_MAX + 1]; /* send parses a copy too */
      memcpy(copy, line, len + 1);
      int r = cli_csv_header(&m, s, extra, copy, len, err, sizeof err);
      FUZZ_CHECK(r >= -EINVAL && r <= 1, "header %d", r);
      if (r < 0) {
        FUZZ_CHECK(err[0] != '\0', "a header refused without a reason");
        break;
      }
      if (r == 1) {
        check_map(&m, s, extra);
        mapped = true;
        continue;
      }
      err[0] = '\0';
      if (cli_csv_legacy(&m, s, extra, err, sizeof err)) {
        FUZZ_CHECK(err[0] != '\0', "no legacy columns without a reason");
        break;
      }
      check_map(&m, s, extra);
      mapped = true;
    }
    if (!mapped) break;
    size_t at = out.len;
    int r = cli_csv_encode(&m, line, len, array, &out, err, sizeof err);
    FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM, "encode %d", r);
    if (r) {
      FUZZ_CHECK(err[0] != '\0', "a line refused without a reason");
      FUZZ_CHECK(out.len == at, "a refused line left %zu bytes", out.len - at);
      continue;
    }
    check_tick(&m, &out, at, array);
  }
  tks_buf_finish(&out);
  return 0;
}

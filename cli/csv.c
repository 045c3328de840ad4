/*
 * CSV ticks for `tickslab send`.  A line is split into at most one field
 * more than its columns (to say "too many"), quoted fields are unquoted in
 * place; the header's names are checked and looked up in the schema, then
 * each data cell is converted by its field's type; timestamps by
 * tks_parse_time() (lib/util.c), the one parser the daemon's queries use too.
 */
#include "csv.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "encode.h"
#include "utf8.h"

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* "-"? digits, whole, as int64. */
static int parse_i64(const char *s, size_t len, int64_t *out) {
  size_t i = 0;
  bool neg = false;
  if (len > 0 && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    i = 1;
  }
  if (i == len) return -EINVAL;
  uint64_t v = 0;
  for (; i < len; i++) {
    if (!is_digit(s[i])) return -EINVAL;
    unsigned dg = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - dg) / 10) return -ERANGE;
    v = v * 10 + dg;
  }
  if (neg) {
    if (v > (uint64_t)INT64_MAX + 1) return -ERANGE;
    *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
  } else {
    if (v > (uint64_t)INT64_MAX) return -ERANGE;
    *out = (int64_t)v;
  }
  return 0;
}

int cli_parse_ts(const char *s, size_t len, int64_t *out_ns) {
  /* Negative ns directly (tks_parse_time() takes them too, but wants a copy). */
  if (len > 0 && s[0] == '-') return parse_i64(s, len, out_ns);
  char z[64];
  if (len >= sizeof z || memchr(s, '\0', len)) return -EINVAL;
  memcpy(z, s, len);
  z[len] = '\0';
  return tks_parse_time(z, out_ns);
}

bool cli_csv_is_blank(const char *line, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r') return false;
  return true;
}

struct field {
  char *p;
  size_t len;
};

static bool is_space(char c) { return c == ' ' || c == '\t'; }

/* Splits into up to max fields; *n may be max + 1 to mean "more". */
static int split(char *line, size_t len, struct field *f, size_t max, size_t *n, char *err,
                 size_t errlen) {
  size_t i = 0, k = 0;
  for (;;) {
    while (i < len && is_space(line[i])) i++;
    char *start = line + i;
    size_t flen;
    if (i < len && line[i] == '"') {
      /* Quoted: unquote in place ("" is one quote). */
      char *o = start;
      i++;
      for (;;) {
        if (i >= len) {
          snprintf(err, errlen, "column %zu: unterminated quoted field", k + 1);
          return -EINVAL;
        }
        if (line[i] == '"') {
          if (i + 1 < len && line[i + 1] == '"') {
            *o++ = '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        *o++ = line[i++];
      }
      flen = (size_t)(o - start);
      while (i < len && is_space(line[i])) i++;
      if (i < len && line[i] != ',') {
        snprintf(err, errlen, "column %zu: '%c' after a closing quote", k + 1, line[i]);
        return -EINVAL;
      }
    } else {
      size_t j = i;
      while (j < len && line[j] != ',') j++;
      size_t end = j;
      while (end > i && is_space(line[end - 1])) end--;
      flen = end - i;
      i = j;
    }
    if (k < max) f[k] = (struct field){start, flen};
    k++;
    if (k > max) break;
    if (i >= len) break;
    i++; /* the comma */
  }
  *n = k;
  return 0;
}

/* Quotes at most 40 bytes of a bad value for a message (bytes that are not
 * UTF-8, and control characters, as \xHH). */
static void quote(const struct field *f, char *out, size_t outlen) {
  char e[200];
  tks_utf8_escape(e, sizeof e, f->p, f->len > 40 ? 40 : f->len);
  snprintf(out, outlen, "'%s%s'", e, f->len > 40 ? "..." : "");
}

static void quote_name(const char *p, size_t len, char *out, size_t outlen) {
  struct field f = {(char *)p, len};
  quote(&f, out, outlen);
}

/* Appends to err (NUL-terminated, errlen bytes) as far as it fits. */
static void err_append(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err_append(char *err, size_t errlen, const char *fmt, ...) {
  size_t at = strnlen(err, errlen);
  if (at + 1 >= errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err + at, errlen - at, fmt, ap);
  va_end(ap);
}

/* "ts, ticker, price, volume, flags" into out. */
static void field_list(const struct tks_schema *s, char *out, size_t n) {
  out[0] = '\0';
  for (unsigned i = 0; i < s->nfields; i++)
    err_append(out, n, "%s%s", i ? ", " : "", s->fields[i].name);
}

/* The field named name ignoring case, or -1. */
static int find_nocase(const struct tks_schema *s, const char *name, size_t len) {
  for (unsigned i = 0; i < s->nfields; i++)
    if (s->fields[i].name_len == len && strncasecmp(s->fields[i].name, name, len) == 0)
      return (int)i;
  return -1;
}

static void strip_bom(char **line, size_t *len) {
  if (*len >= 3 && memcmp(*line, "\xEF\xBB\xBF", 3) == 0) {
    *line += 3;
    *len -= 3;
  }
}

/* A number cell: strtod over the whole cell, finite. */
static int parse_f64(const struct field *f, double *out) {
  char num[64];
  if (f->len >= sizeof num) return -E2BIG;
  memcpy(num, f->p, f->len);
  num[f->len] = '\0';
  char *end;
  *out = strtod(num, &end);
  if (*end != '\0' || end == num) return -EINVAL;
  if (!isfinite(*out)) return -ERANGE;
  return 0;
}

/* Checks that every required field has a column. */
static int check_required(const struct cli_csv_map *m, char *err, size_t errlen) {
  const struct tks_schema *s = m->schema;
  for (unsigned i = 0; i < s->nfields; i++) {
    if (!s->fields[i].required) continue;
    bool found = false;
    for (unsigned c = 0; c < m->ncols && !found; c++) found = m->cols[c].field == (int)i;
    if (!found) {
      snprintf(err, errlen, "no column for the required field '%s' of the schema %s",
               s->fields[i].name, s->name);
      return -EINVAL;
    }
  }
  return 0;
}

int cli_csv_header(struct cli_csv_map *m, const struct tks_schema *s, bool extra, char *line,
                   size_t len, char *err, size_t errlen) {
  struct field f[CLI_CSV_MAX_COLUMNS];
  size_t n = 0;
  char q[256], q2[256];
  err[0] = '\0';
  strip_bom(&line, &len);
  if (len > 0 && line[len - 1] == '\r') len--;
  if (split(line, len, f, CLI_CSV_MAX_COLUMNS, &n, err, errlen)) {
    /* Unreadable: a header only if a field's name is in it, which we cannot
     * tell; say it as a bad line. */
    return -EINVAL;
  }
  /* A data line has numbers (a price, a time); a header has none. */
  bool named = false, number = false;
  for (size_t i = 0; i < n && i < CLI_CSV_MAX_COLUMNS; i++) {
    double d;
    named |= f[i].len > 0 && find_nocase(s, f[i].p, f[i].len) >= 0;
    number |= f[i].len > 0 && parse_f64(&f[i], &d) != -EINVAL && parse_f64(&f[i], &d) != -E2BIG;
  }
  if (!named || number) return 0;
  if (n > CLI_CSV_MAX_COLUMNS) {
    snprintf(err, errlen, "header: more than %d columns (a tick carries at most %d fields)",
             CLI_CSV_MAX_COLUMNS, CLI_CSV_MAX_COLUMNS);
    return -EINVAL;
  }
  memset(m, 0, sizeof *m);
  m->schema = s;
  m->extra = extra;
  m->header = true;
  m->ncols = (unsigned)n;
  char unknown[512] = "";
  unsigned nunknown = 0;
  for (size_t i = 0; i < n; i++) {
    const char *p = f[i].p;
    size_t l = f[i].len;
    if (l == 0) {
      snprintf(err, errlen, "header: column %zu has no name", i + 1);
      return -EINVAL;
    }
    quote_name(p, l, q, sizeof q);
    if (l > CLI_CSV_NAME_MAX) {
      snprintf(err, errlen, "header: the name of column %zu is over %d bytes (%s)", i + 1,
               CLI_CSV_NAME_MAX, q);
      return -EINVAL;
    }
    unsigned u = tks_utf8_scan(p, l);
    if (u & (TKS_UTF8_INVALID | TKS_UTF8_CONTROL)) {
      snprintf(err, errlen, "header: the name of column %zu, %s, is %s", i + 1, q,
               u & TKS_UTF8_INVALID ? "not UTF-8" : "holding a control character");
      return -EINVAL;
    }
    if (l == 1 && p[0] == '$') {
      snprintf(err, errlen,
               "header: column %zu is named '$', the key of control messages, never a field",
               i + 1);
      return -EINVAL;
    }
    for (size_t k = 0; k < i; k++)
      if (f[k].len == l && memcmp(f[k].p, p, l) == 0) {
        snprintf(err, errlen, "header: column %s appears twice (columns %zu and %zu)", q, k + 1,
                 i + 1);
        return -EINVAL;
      }
    memcpy(m->cols[i].name, p, l);
    m->cols[i].name[l] = '\0';
    m->cols[i].field = tks_schema_find(s, p, l);
    if (m->cols[i].field < 0 && !extra) {
      int near = find_nocase(s, p, l);
      if (near >= 0)
        snprintf(q2, sizeof q2, " (did you mean '%s'? names are case-sensitive)",
                 s->fields[near].name);
      else
        q2[0] = '\0';
      err_append(unknown, sizeof unknown, "%s%s%s", nunknown ? ", " : "", q, q2);
      nunknown++;
    }
  }
  if (nunknown) {
    char fields[TKS_SCHEMA_MAX_FIELDS * (TKS_FIELD_NAME_MAX + 2)];
    field_list(s, fields, sizeof fields);
    snprintf(err, errlen,
             "header: unknown column%s %s: the schema %s has %s (--extra sends other columns as "
             "extra fields)",
             nunknown > 1 ? "s" : "", unknown, s->name, fields);
    return -EINVAL;
  }
  return check_required(m, err, errlen) ? -EINVAL : 1;
}

int cli_csv_legacy(struct cli_csv_map *m, const struct tks_schema *s, bool extra, char *err,
                   size_t errlen) {
  static const char *const names[] = {"ticker", "ts", "price", "volume", "flags"};
  memset(m, 0, sizeof *m);
  m->schema = s;
  m->extra = extra;
  m->ncols = TKS_ARRAY_SIZE(names);
  for (unsigned c = 0; c < TKS_ARRAY_SIZE(names); c++) {
    snprintf(m->cols[c].name, sizeof m->cols[c].name, "%s", names[c]);
    m->cols[c].field = tks_schema_find(s, names[c], strlen(names[c]));
    if (m->cols[c].field < 0 && c < 4) {
      char fields[TKS_SCHEMA_MAX_FIELDS * (TKS_FIELD_NAME_MAX + 2)];
      field_list(s, fields, sizeof fields);
      snprintf(err, errlen,
               "no header line: the first line names no field of the schema %s (%s); a CSV "
               "without a header is read as ticker,ts,price,volume,flags, which this schema "
               "does not have: add a header naming the columns",
               s->name, fields);
      return -EINVAL;
    }
  }
  return check_required(m, err, errlen);
}

/* Why a timestamp cell does not parse (r from cli_parse_ts). */
static void ts_error(const struct field *f, const char *name, int r, char *err, size_t errlen) {
  char q[256];
  quote(f, q, sizeof q);
  /* Name the usual mistake: a date-time without its zone. */
  char z[64];
  int64_t ignored;
  bool no_zone = r == -EINVAL && f->len + 1 < sizeof z &&
                 (memcpy(z, f->p, f->len), z[f->len] = 'Z',
                  cli_parse_iso8601(z, f->len + 1, &ignored) == 0);
  if (r == -ERANGE)
    snprintf(err, errlen, "%s %s out of range", name, q);
  else if (no_zone)
    snprintf(err, errlen, "bad %s %s: no time zone (add Z for UTC)", name, q);
  else
    snprintf(err, errlen,
             "bad %s %s: want integer ns or ISO-8601 like 2026-11-25T10:00:00.123456789Z", name, q);
}

static int parse_bool(const struct field *f, bool *out) {
  static const char *const yes[] = {"true", "1"}, *const no[] = {"false", "0"};
  for (unsigned i = 0; i < 2; i++) {
    if (f->len == strlen(yes[i]) && strncasecmp(f->p, yes[i], f->len) == 0) return *out = true, 0;
    if (f->len == strlen(no[i]) && strncasecmp(f->p, no[i], f->len) == 0) return *out = false, 0;
  }
  return -EINVAL;
}

static struct tks_value str_value(const char *p, size_t len) {
  struct tks_value v = {.type = TKS_V_STR};
  v.v.s.p = p;
  v.v.s.len = (uint32_t)len;
  return v;
}

/* A cell of a declared field into v by the field's type.  0 or -EINVAL. */
static int typed(const struct tks_field *fd, bool is_ts, const struct field *f, struct tks_value *v,
                 char *err, size_t errlen) {
  char q[256];
  int64_t i;
  int r;
  if (is_ts || fd->type == TKS_TYPE_TIMESTAMP) {
    r = cli_parse_ts(f->p, f->len, &i);
    if (r) {
      ts_error(f, fd->name, r, err, errlen);
      return -EINVAL;
    }
    *v = (struct tks_value){.type = TKS_V_INT, .v.i = i};
    return 0;
  }
  quote(f, q, sizeof q);
  switch (fd->type) {
  case TKS_TYPE_I64:
  case TKS_TYPE_U32:
    r = parse_i64(f->p, f->len, &i);
    if (r == 0 && fd->type == TKS_TYPE_U32 && (i < 0 || i > (int64_t)UINT32_MAX)) r = -ERANGE;
    if (r) {
      snprintf(err, errlen, r == -ERANGE ? "%s %s out of range" : "bad %s %s: want an integer",
               fd->name, q);
      return -EINVAL;
    }
    *v = (struct tks_value){.type = TKS_V_INT, .v.i = i};
    return 0;
  case TKS_TYPE_F64: {
    double d;
    r = parse_f64(f, &d);
    if (r) {
      snprintf(err, errlen, "bad %s %s: %s", fd->name, q,
               r == -E2BIG    ? "too long"
               : r == -ERANGE ? "not finite"
                              : "not a number");
      return -EINVAL;
    }
    *v = (struct tks_value){.type = TKS_V_F64, .v.f = d};
    return 0;
  }
  case TKS_TYPE_BOOL: {
    bool b;
    if (parse_bool(f, &b)) {
      snprintf(err, errlen, "bad %s %s: want true or false (or 1, 0)", fd->name, q);
      return -EINVAL;
    }
    *v = (struct tks_value){.type = TKS_V_BOOL, .v.b = b};
    return 0;
  }
  case TKS_TYPE_SYMBOL:
  case TKS_TYPE_STRING:
  case TKS_TYPE_TIMESTAMP:
  case TKS_TYPE__COUNT: break;
  }
  *v = str_value(f->p, f->len); /* the daemon checks what text it takes */
  return 0;
}

/* An extra column's cell: an integer, a float, a boolean, else text. */
static struct tks_value inferred(const struct field *f) {
  int64_t i;
  double d;
  bool b;
  if (parse_i64(f->p, f->len, &i) == 0) return (struct tks_value){.type = TKS_V_INT, .v.i = i};
  if (parse_f64(f, &d) == 0) return (struct tks_value){.type = TKS_V_F64, .v.f = d};
  if (f->len >= 4 && parse_bool(f, &b) == 0)
    return (struct tks_value){.type = TKS_V_BOOL, .v.b = b};
  return str_value(f->p, f->len);
}

int cli_csv_encode(const struct cli_csv_map *m, char *line, size_t len, bool array,
                   struct tks_buf *out, char *err, size_t errlen) {
  const struct tks_schema *s = m->schema;
  struct field f[CLI_CSV_MAX_COLUMNS];
  size_t n = 0;
  if (len > 0 && line[len - 1] == '\r') len--;
  int r = split(line, len, f, m->ncols, &n, err, errlen);
  if (r) return r;
  if (n > m->ncols) {
    snprintf(err, errlen, "more than %u columns (the %s has %u)", m->ncols,
             m->header ? "header" : "CSV without a header", m->ncols);
    return -EINVAL;
  }
  struct tks_kv kv[CLI_CSV_MAX_COLUMNS];
  struct tks_value slots[TKS_SCHEMA_MAX_FIELDS];
  bool set[TKS_SCHEMA_MAX_FIELDS] = {false};
  size_t nkv = 0;
  for (unsigned i = 0; i < s->nfields; i++) slots[i] = (struct tks_value){.type = TKS_V_NIL};
  for (size_t c = 0; c < n; c++) {
    const struct cli_csv_column *col = &m->cols[c];
    if (f[c].len > UINT32_MAX) {
      snprintf(err, errlen, "column %zu is over 4 GiB", c + 1);
      return -EINVAL;
    }
    if (f[c].len == 0) continue; /* absent; a required field is checked below */
    struct tks_value v;
    if (col->field >= 0) {
      const struct tks_field *fd = &s->fields[col->field];
      if (typed(fd, col->field == s->ts_field, &f[c], &v, err, errlen)) return -EINVAL;
      slots[col->field] = v;
      set[col->field] = true;
    } else if (m->extra && !array) {
      v = inferred(&f[c]);
    } else {
      snprintf(err, errlen, "the schema %s has no field '%s'%s", s->name, col->name,
               array ? " for the array form" : " (leave the column empty, or --extra)");
      return -EINVAL;
    }
    kv[nkv++] = (struct tks_kv){col->field >= 0 ? s->fields[col->field].name : col->name, v};
  }
  for (unsigned i = 0; i < s->nfields; i++)
    if (s->fields[i].required && !set[i]) {
      snprintf(err, errlen, "empty %s (a required field)", s->fields[i].name);
      return -EINVAL;
    }
  r = array ? tks_encode_array(out, slots, s->nfields) : tks_encode_map(out, kv, nkv);
  if (r == -ENOMEM) snprintf(err, errlen, "out of memory");
  return r;
}

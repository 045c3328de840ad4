/*
 * CSV ticks for `tickslab send`.  A line is split into at most six fields
 * (one more than allowed, to say "too many"), quoted fields are unquoted in
 * place, then each column is checked and converted; timestamps by
 * tks_parse_time() (lib/util.c), the one parser the daemon's queries use too.
 */
#include "csv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "encode.h"

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

bool cli_csv_is_header(const char *line, size_t len) {
  if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
    line += 3;
    len -= 3;
  }
  while (len > 0 && (*line == ' ' || *line == '"')) {
    line++;
    len--;
  }
  return len >= 6 && strncasecmp(line, "ticker", 6) == 0;
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

/* Quotes at most 40 bytes of a bad value for a message. */
static void quote(const struct field *f, char *out, size_t outlen) {
  int n = f->len > 40 ? 40 : (int)f->len;
  snprintf(out, outlen, "'%.*s%s'", n, f->p, f->len > 40 ? "..." : "");
}

int cli_csv_parse_tick(char *line, size_t len, struct cli_tick *t, char *err, size_t errlen) {
  struct field f[CLI_CSV_COLUMNS];
  size_t n = 0;
  char q[64];
  if (len > 0 && line[len - 1] == '\r') len--;
  int r = split(line, len, f, CLI_CSV_COLUMNS, &n, err, errlen);
  if (r) return r;
  if (n > CLI_CSV_COLUMNS) {
    snprintf(err, errlen, "more than %d columns (want ticker,ts,price,volume,flags)",
             CLI_CSV_COLUMNS);
    return -EINVAL;
  }
  if (n < CLI_CSV_COLUMNS - 1) {
    snprintf(err, errlen, "%zu column%s, want ticker,ts,price,volume[,flags]", n,
             n == 1 ? "" : "s");
    return -EINVAL;
  }
  memset(t, 0, sizeof *t);
  /* A msgpack value (struct tks_value) holds at most 4 GiB - 1 bytes. */
  for (size_t i = 0; i < n; i++)
    if (f[i].len > UINT32_MAX) {
      snprintf(err, errlen, "column %zu is over 4 GiB", i + 1);
      return -EINVAL;
    }

  if (f[0].len == 0) {
    snprintf(err, errlen, "empty ticker");
    return -EINVAL;
  }
  t->ticker = f[0].p;
  t->ticker_len = f[0].len;

  if (f[1].len > 0) {
    r = cli_parse_ts(f[1].p, f[1].len, &t->ts);
    if (r) {
      quote(&f[1], q, sizeof q);
      /* Name the usual mistake: a date-time without its zone. */
      char z[64];
      int64_t ignored;
      bool no_zone = r == -EINVAL && f[1].len + 1 < sizeof z &&
                     (memcpy(z, f[1].p, f[1].len), z[f[1].len] = 'Z',
                      cli_parse_iso8601(z, f[1].len + 1, &ignored) == 0);
      if (r == -ERANGE)
        snprintf(err, errlen, "ts %s out of range", q);
      else if (no_zone)
        snprintf(err, errlen, "bad ts %s: no time zone (add Z for UTC)", q);
      else
        snprintf(err, errlen,
                 "bad ts %s: want integer ns or ISO-8601 like 2026-11-25T10:00:00.123456789Z", q);
      return -EINVAL;
    }
    t->has_ts = true;
  }

  quote(&f[2], q, sizeof q);
  if (f[2].len == 0) {
    snprintf(err, errlen, "empty price");
    return -EINVAL;
  }
  char num[64];
  if (f[2].len >= sizeof num) {
    snprintf(err, errlen, "bad price %s: too long", q);
    return -EINVAL;
  }
  memcpy(num, f[2].p, f[2].len);
  num[f[2].len] = '\0';
  char *end;
  errno = 0;
  t->price = strtod(num, &end);
  if (*end != '\0' || end == num) {
    snprintf(err, errlen, "bad price %s: not a number", q);
    return -EINVAL;
  }
  if (!isfinite(t->price)) {
    snprintf(err, errlen, "bad price %s: not finite", q);
    return -EINVAL;
  }

  if (f[3].len == 0) {
    snprintf(err, errlen, "empty volume");
    return -EINVAL;
  }
  r = parse_i64(f[3].p, f[3].len, &t->volume);
  if (r) {
    quote(&f[3], q, sizeof q);
    snprintf(err, errlen, r == -ERANGE ? "volume %s out of range" : "bad volume %s: want an integer",
             q);
    return -EINVAL;
  }

  if (n == CLI_CSV_COLUMNS && f[4].len > 0) {
    t->has_flags = true;
    t->flags = f[4].p;
    t->flags_len = f[4].len;
  }
  return 0;
}

static struct tks_value str_value(const char *p, size_t len) {
  struct tks_value v = {.type = TKS_V_STR};
  v.v.s.p = p;
  v.v.s.len = len;
  return v;
}

int cli_tick_encode_map(struct tks_buf *out, const struct cli_tick *t) {
  struct tks_kv kv[CLI_CSV_COLUMNS];
  size_t n = 0;
  kv[n++] = (struct tks_kv){"ticker", str_value(t->ticker, t->ticker_len)};
  if (t->has_ts) kv[n++] = (struct tks_kv){"ts", {.type = TKS_V_INT, .v.i = t->ts}};
  kv[n++] = (struct tks_kv){"price", {.type = TKS_V_F64, .v.f = t->price}};
  kv[n++] = (struct tks_kv){"volume", {.type = TKS_V_INT, .v.i = t->volume}};
  if (t->has_flags) kv[n++] = (struct tks_kv){"flags", str_value(t->flags, t->flags_len)};
  return tks_encode_map(out, kv, n);
}

int cli_tick_encode_array(struct tks_buf *out, const struct cli_tick *t,
                          const struct tks_schema *schema, char *err, size_t errlen) {
  struct tks_value v[TKS_SCHEMA_MAX_FIELDS];
  static const char *const names[] = {"ticker", "ts", "price", "volume", "flags"};
  const bool present[] = {true, t->has_ts, true, true, t->has_flags};
  for (unsigned i = 0; i < schema->nfields; i++) v[i] = (struct tks_value){.type = TKS_V_NIL};
  for (unsigned c = 0; c < TKS_ARRAY_SIZE(names); c++) {
    if (!present[c]) continue;
    int slot = tks_schema_find(schema, names[c], strlen(names[c]));
    if (slot < 0) {
      snprintf(err, errlen, "the schema %s has no field '%s' for the array form", schema->name,
               names[c]);
      return -EINVAL;
    }
    switch (c) {
    case 0: v[slot] = str_value(t->ticker, t->ticker_len); break;
    case 1: v[slot] = (struct tks_value){.type = TKS_V_INT, .v.i = t->ts}; break;
    case 2: v[slot] = (struct tks_value){.type = TKS_V_F64, .v.f = t->price}; break;
    case 3: v[slot] = (struct tks_value){.type = TKS_V_INT, .v.i = t->volume}; break;
    case 4: v[slot] = str_value(t->flags, t->flags_len); break;
    }
  }
  return tks_encode_array(out, v, schema->nfields);
}

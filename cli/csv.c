/*
 * CSV ticks for `tickslab send`.  A line is split into at most six fields
 * (one more than allowed, to say "too many"), quoted fields are unquoted in
 * place, then each column is checked and converted.  ISO-8601 dates become
 * ns with the civil-to-days formula (H. Hinnant's days_from_civil), so the
 * result does not depend on TZ or the C library's timegm.
 */
#include "csv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec.h"

#define NS_PER_S 1000000000LL

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Exactly n digits at s. */
static bool take_digits(const char *s, size_t n, unsigned *out) {
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_digit(s[i])) return false;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  *out = v;
  return true;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t mp = m > 2 ? (int64_t)m - 3 : (int64_t)m + 9;
  int64_t doy = (153 * mp + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static unsigned days_in_month(unsigned y, unsigned m) {
  static const unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) return 29;
  return days[m - 1];
}

int cli_parse_iso8601(const char *s, size_t len, int64_t *out_ns) {
  unsigned y, mo, d, h, mi, sec = 0;
  size_t i = 0;
  /* YYYY-MM-DDTHH:MM is the shortest form with a time. */
  if (len < 16) return -EINVAL;
  if (!take_digits(s, 4, &y) || s[4] != '-' || !take_digits(s + 5, 2, &mo) || s[7] != '-' ||
      !take_digits(s + 8, 2, &d))
    return -EINVAL;
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return -EINVAL;
  if (!take_digits(s + 11, 2, &h) || s[13] != ':' || !take_digits(s + 14, 2, &mi)) return -EINVAL;
  i = 16;
  if (i < len && s[i] == ':') {
    if (i + 3 > len || !take_digits(s + i + 1, 2, &sec)) return -EINVAL;
    i += 3;
  }
  int64_t frac = 0;
  if (i < len && s[i] == '.') {
    i++;
    size_t nd = 0;
    while (i < len && is_digit(s[i])) {
      if (++nd > 9) return -EINVAL; /* finer than a nanosecond */
      frac = frac * 10 + (s[i] - '0');
      i++;
    }
    if (nd == 0) return -EINVAL;
    for (; nd < 9; nd++) frac *= 10;
  }
  /* The zone is required: a local time would mean whatever TZ the sender had. */
  if (i >= len) return -EINVAL;
  int64_t offset_s = 0;
  if (s[i] == 'Z' || s[i] == 'z') {
    i++;
  } else if (s[i] == '+' || s[i] == '-') {
    int sign = s[i] == '-' ? -1 : 1;
    unsigned oh, om = 0;
    i++;
    if (i + 2 > len || !take_digits(s + i, 2, &oh)) return -EINVAL;
    i += 2;
    if (i < len && s[i] == ':') i++;
    if (i < len) {
      if (i + 2 > len || !take_digits(s + i, 2, &om)) return -EINVAL;
      i += 2;
    }
    if (oh > 23 || om > 59) return -ERANGE;
    offset_s = sign * (int64_t)(oh * 3600 + om * 60);
  } else {
    return -EINVAL;
  }
  if (i != len) return -EINVAL;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
    return -ERANGE;
  int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
  /* Borrow a second so that the last representable instants near INT64_MIN
   * do not overflow on the way. */
  if (secs < 0 && frac > 0) {
    secs += 1;
    frac -= NS_PER_S;
  }
  int64_t ns;
  if (__builtin_mul_overflow(secs, NS_PER_S, &ns) || __builtin_add_overflow(ns, frac, &ns))
    return -ERANGE;
  *out_ns = ns;
  return 0;
}

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
  /* An ISO date has '-' at index 4; an integer never does. */
  if (len >= 5 && s[4] == '-') return cli_parse_iso8601(s, len, out_ns);
  return parse_i64(s, len, out_ns);
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

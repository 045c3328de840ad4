/*
 * libFuzzer target: the control socket's read-back requests, as
 * daemon/control.c hands them on: tks_query_handle() (daemon/query.c,
 * linked as it is) with the input as one request line (cut at the first
 * newline or NUL, as the control reader cuts lines), against a real server
 * (tks_server_init() of daemon/server.c, no event loop) whose store holds a
 * few ticks of AAPL, MSFT and ZZ, in one of three setups (slotted,
 * fallback with undeclared fields, dynamic; query.max_rows 4 in the second,
 * so answers are paged and cut), chosen by the input's length.
 * Also fed to the lib parsers the requests use (tks_parse_time,
 * tks_parse_iso8601, tks_parse_u64, tks_parse_size, tks_parse_duration).
 * Checked: a line that is not a request leaves the output untouched; a
 * request answers lines (none for an empty range), each one JSON object
 * (checked by a small validator) ended by a newline, at most max_rows tick lines
 * plus one paging or truncation line; the parsers return 0, -EINVAL or
 * -ERANGE, and tks_parse_time() of digits is not negative.
 */
#include <errno.h>
#include <msgpack.h>
#include <stdint.h>
#include <string.h>

#include "daemon.h"
#include "fuzz.h"
#include "util.h"

#define NSERVERS 3
static struct tks_server servers[NSERVERS];

/* ---- a minimal JSON validator: one value, no trailing bytes --------------- */

static const char *json_value(const char *p, const char *end, int depth);

static const char *json_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  return p;
}

static const char *json_string(const char *p, const char *end) {
  if (p >= end || *p != '"') return NULL;
  for (p++; p < end; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"') return p + 1;
    if (c < 0x20) return NULL;
    if (c == '\\') {
      if (++p >= end) return NULL;
      if (*p == 'u') {
        for (int i = 0; i < 4; i++)
          if (++p >= end || !strchr("0123456789abcdefABCDEF", *p)) return NULL;
      } else if (!strchr("\"\\/bfnrt", *p)) {
        return NULL;
      }
    }
  }
  return NULL;
}

static const char *json_number(const char *p, const char *end) {
  const char *start = p;
  if (p < end && *p == '-') p++;
  const char *digits = p;
  while (p < end && *p >= '0' && *p <= '9') p++;
  if (p == digits) return NULL;
  if (p < end && *p == '.') {
    const char *f = ++p;
    while (p < end && *p >= '0' && *p <= '9') p++;
    if (p == f) return NULL;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    const char *e = p;
    while (p < end && *p >= '0' && *p <= '9') p++;
    if (p == e) return NULL;
  }
  return p > start ? p : NULL;
}

static const char *json_word(const char *p, const char *end, const char *w) {
  size_t n = strlen(w);
  return (size_t)(end - p) >= n && memcmp(p, w, n) == 0 ? p + n : NULL;
}

static const char *json_value(const char *p, const char *end, int depth) {
  if (depth > 8) return NULL;
  p = json_ws(p, end);
  if (p >= end) return NULL;
  if (*p == '"') return json_string(p, end);
  if (*p == 't') return json_word(p, end, "true");
  if (*p == 'f') return json_word(p, end, "false");
  if (*p == 'n') return json_word(p, end, "null");
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    p = json_ws(p + 1, end);
    if (p < end && *p == close) return p + 1;
    for (;;) {
      if (close == '}') {
        p = json_string(json_ws(p, end), end);
        if (!p) return NULL;
        p = json_ws(p, end);
        if (p >= end || *p != ':') return NULL;
        p++;
      }
      p = json_value(p, end, depth + 1);
      if (!p) return NULL;
      p = json_ws(p, end);
      if (p < end && *p == ',') {
        p++;
        continue;
      }
      return p < end && *p == close ? p + 1 : NULL;
    }
  }
  return json_number(p, end);
}

/* ---- the servers ---------------------------------------------------------- */

static msgpack_sbuffer sb;
static msgpack_packer pk;

static void str(const char *s) {
  msgpack_pack_str(&pk, strlen(s));
  msgpack_pack_str_body(&pk, s, strlen(s));
}

/* One tick into srv's store, as ingest would: decode, then store. */
static void add_tick(struct tks_server *srv, const char *sym, int64_t ts, double price,
                     bool extra) {
  msgpack_sbuffer_clear(&sb);
  msgpack_pack_map(&pk, extra ? 6 : 5);
  str("ticker"), str(sym);
  str("ts"), msgpack_pack_int64(&pk, ts);
  str("price"), msgpack_pack_double(&pk, price);
  str("volume"), msgpack_pack_int64(&pk, 100);
  str("flags"), str("R\"\\\x01");
  if (extra) str("venue"), str("X\xff\n");
  _Alignas(8) char record[TKS_RECORD_MAX];
  struct tks_dyn_tick dyn;
  struct tks_decode_result res = {.dyn = &dyn};
  enum tks_decode_status st = tks_decode(&srv->decoder, (const uint8_t *)sb.data, sb.size, ts,
                                         record, &res);
  if (st == TKS_DECODE_OK || st == TKS_DECODE_DYNAMIC) {
    FUZZ_CHECK(tks_tick_store(&srv->sink, st, record, &dyn) == 0, "store");
    srv->ticks_accepted++;
  } else {
    srv->rejected[res.reason]++;
  }
}

static void setup(void) {
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  tks_log_set_level(TKS_LOG_ERROR);
  static const enum tks_mode modes[NSERVERS] = {TKS_MODE_SLOTTED, TKS_MODE_FALLBACK,
                                                TKS_MODE_DYNAMIC};
  for (int i = 0; i < NSERVERS; i++) {
    struct tks_server *srv = &servers[i];
    tks_config_defaults(&srv->cfg);
    srv->cfg.store.mode = modes[i];
    srv->cfg.store.page_size = 64 * 1024;
    if (i == 1) srv->cfg.query.max_rows = 4;
    FUZZ_CHECK(tks_server_init(srv, NULL) == 0, "tks_server_init");
    const int64_t day = 86400LL * 1000000000LL, t0 = 1767225600LL * 1000000000LL; /* 2026-01-01 */
    for (int k = 0; k < 12; k++) {
      /* Runs of equal ts, so paging meets ties. */
      add_tick(srv, "AAPL", t0 + (k / 3) * day / 4, 150.0 + k, k % 4 == 1);
      add_tick(srv, "MSFT", t0 + k * day, 1e300 * (k - 6), k % 2);
    }
    add_tick(srv, "ZZ", 1, -0.0, true);
    add_tick(srv, "", 5, 1, false); /* rejected: empty ticker */
  }
}

static void check_answer(const struct tks_server *srv, const char *line, const struct tks_buf *out,
                         size_t start) {
  /* No lines is an answer: no ticks in the range (control.c ends every
   * answer with an empty line). */
  if (out->len == start) return;
  FUZZ_CHECK(out->data[out->len - 1] == '\n', "answer not ended by a newline");
  uint64_t lines = 0, ticks = 0;
  for (const char *p = out->data + start, *end = out->data + out->len; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    FUZZ_CHECK(nl, "a line without newline");
    const char *v = json_value(p, nl, 0);
    FUZZ_CHECK(v && json_ws(v, nl) == nl, "not one JSON value: %.*s", (int)(nl - p), p);
    FUZZ_CHECK(*p == '{', "not an object: %.*s", (int)(nl - p), p);
    if (memcmp(p, "{\"more\"", 7) && memcmp(p, "{\"truncated\"", 12) && memcmp(p, "{\"error\"", 8))
      ticks++;
    lines++;
    p = nl + 1;
  }
  /* last and symbols answer at most max_rows rows (range may add the ties
   * of its last row; advice answers lines of its own). */
  line += strspn(line, " \t");
  bool bounded = (strncmp(line, "last", 4) == 0 && strchr(" \t", line[4])) ||
                 (strncmp(line, "symbols", 7) == 0 && strchr(" \t", line[7]));
  FUZZ_CHECK(!bounded || ticks <= srv->cfg.query.max_rows, "%llu rows of %llu lines, max_rows %u",
             (unsigned long long)ticks, (unsigned long long)lines, srv->cfg.query.max_rows);
}

static void check_parsers(const char *s, size_t len) {
  int64_t t;
  uint64_t u;
  int r = tks_parse_time(s, &t);
  FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ERANGE, "tks_parse_time: %d", r);
  /* Digits are ns since the epoch, never negative; a date may be before 1970. */
  if (r == 0 && s[0] >= '0' && s[0] <= '9' && strspn(s, "0123456789") == len)
    FUZZ_CHECK(t >= 0, "tks_parse_time('%s') = %lld", s, (long long)t);
  r = tks_parse_iso8601(s, len, &t);
  FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ERANGE, "tks_parse_iso8601: %d", r);
  r = tks_parse_u64(s, &u);
  FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ERANGE, "tks_parse_u64: %d", r);
  if (r == 0) {
    char back[32];
    snprintf(back, sizeof back, "%llu", (unsigned long long)u);
    FUZZ_CHECK(strcmp(back, s) == 0 || s[0] == '0', "tks_parse_u64('%s') = %s", s, back);
  }
  r = tks_parse_size(s, &u);
  FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ERANGE, "tks_parse_size: %d", r);
  r = tks_parse_duration(s, &u);
  FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ERANGE, "tks_parse_duration: %d", r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) setup(), ready = 1;
  char *line = malloc(size + 1);
  size_t n = 0;
  while (n < size && data[n] != '\n' && data[n] != '\0') n++;
  memcpy(line, data, n);
  line[n] = '\0';
  check_parsers(line, n);

  struct tks_server *srv = &servers[size % NSERVERS];
  struct tks_buf out;
  tks_buf_init(&out);
  tks_buf_puts(&out, "before\n"); /* an answer is appended after what is there */
  size_t start = out.len;
  int r = tks_query_handle(srv, line, &out);
  FUZZ_CHECK(r == 0 || r == 1, "tks_query_handle returned %d", r);
  if (r == 0)
    FUZZ_CHECK(out.len == start && memcmp(out.data, "before\n", 7) == 0, "not a request, answered");
  else
    check_answer(srv, line, &out, start);
  tks_buf_finish(&out);
  free(line);
  return 0;
}

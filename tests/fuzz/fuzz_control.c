/*
 * libFuzzer target: the control socket's read-back requests, as
 * daemon/control.c hands them on: tks_query_handle() (daemon/query.c,
 * linked as it is) with the input as one request line (cut at the first
 * newline or NUL, as the control reader cuts lines), against a real server
 * (tks_server_init() of daemon/server.c, no event loop) whose store holds a
 * few ticks of AAPL, MSFT and ZZ, in one of three setups (slotted,
 * fallback with undeclared fields, dynamic; query.max_rows 4 in the second,
 * so answers are paged and cut), chosen by the input's length.  Each
 * server's older ticks are in a real day archive (lib/archive.h), sealed
 * at setup and trimmed from memory as the daemon's rollover does, so that
 * queries merge memory with the archive: AAPL and MSFT have ticks in both,
 * ZZ only in the archive (see tks_archiver_reader below).
 * Also fed to the lib parsers the requests use (tks_parse_time,
 * tks_parse_iso8601, tks_parse_u64, tks_parse_size, tks_parse_duration).
 * Checked at setup: fixed last, range and symbols requests see every tick
 * of memory and archive once, in ts order.  Checked per input: a line that
 * is not a request leaves the output untouched; a request answers lines
 * (none for an empty range), each one JSON object (checked by a small
 * validator) ended by a newline, at most max_rows tick lines plus one
 * paging or truncation line; the tick lines of last and range have
 * non-decreasing ts, and a range's paging line a next_from past them; the
 * parsers return 0, -EINVAL or -ERANGE, and tks_parse_time() of digits is
 * not negative.
 */
#include <errno.h>
#include <ftw.h>
#include <msgpack.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "archive.h"
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
  /* Valid UTF-8 (fallback refuses a string that is not), a control byte to escape. */
  if (extra) str("venue"), str("X\xc3\xa9\n");
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

/* ---- the archive -----------------------------------------------------------
 * The fuzz harness's stand-in for daemon/archiver.c (which pulls in the
 * whole daemon: its loop, forks, journal): per server a real archive in a
 * temporary directory (on /dev/shm where it is writable, removed at exit),
 * made at setup by sealing the ticks before CUT one writer per UTC day, as
 * the daemon's seal_days() does, and trimming them from memory, so that
 * memory and archive are disjoint as the daemon keeps them. */

/* 2026-01-01T12:00Z: AAPL's ticks at 00:00 and 06:00 and MSFT's of
 * 2026-01-01 are sealed, ZZ's only one (1970) too; the rest stays. */
#define T0 (1767225600LL * 1000000000LL) /* 2026-01-01 */
#define DAY (86400LL * 1000000000LL)
#define CUT (T0 + DAY / 2)

static char archive_base[64];
static struct tks_archive *archives[NSERVERS];

struct tks_archive *tks_archiver_reader(struct tks_server *srv, struct tks_archive_view *view) {
  struct tks_archive *a = archives[srv - servers];
  if (!a) return NULL;
  *view = (struct tks_archive_view){&srv->cfg.schema, srv->symbols, srv->strings, srv->names};
  return a;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

static void remove_archives(void) {
  for (int i = 0; i < NSERVERS; i++) tks_archive_close(archives[i]);
  if (archive_base[0]) nftw(archive_base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Seals server i's ticks before CUT into archive_base/server-<i>, one
 * part per UTC day given (days: those of its ticks before CUT), then trims
 * them from memory and opens the archive.  Returns the ticks sealed. */
static uint64_t make_archive(int i, const int32_t *days, size_t ndays) {
  struct tks_server *srv = &servers[i];
  char dir[128], err[512];
  snprintf(dir, sizeof dir, "%s/server-%d", archive_base, i);
  const struct tks_archive_tables tables = {srv->symbols, srv->strings, srv->names};
  uint32_t limit = tks_store_symbol_limit(srv->store);
  uint64_t sealed = 0;
  for (size_t d = 0; d < ndays; d++) {
    struct tks_archive_writer *w = tks_archive_writer_create(
        dir, days[d], &srv->cfg.schema, srv->cfg.store.mode, &tables, NULL, err, sizeof err);
    FUZZ_CHECK(w, "tks_archive_writer_create: %s", err);
    int64_t from = tks_archive_day_start(days[d]), end = tks_archive_day_end(days[d]);
    int64_t to = end >= CUT - 1 ? CUT : end + 1;
    for (uint32_t sym = 1; sym < limit; sym++)
      tks_store_range(srv->store, sym, from, to, 0, tks_archive_writer_visit, w);
    struct tks_archive_part_info info;
    FUZZ_CHECK(tks_archive_writer_seal(w, &info, err, sizeof err) == 0, "seal: %s", err);
    FUZZ_CHECK(info.ticks > 0, "day %d sealed no tick", days[d]);
    sealed += info.ticks;
  }
  uint64_t below = tks_store_count_before(srv->store, CUT);
  FUZZ_CHECK(sealed == below, "sealed %llu of the %llu ticks before the cut",
             (unsigned long long)sealed, (unsigned long long)below);
  srv->evict_quiet = true; /* as the daemon's trim after a commit */
  FUZZ_CHECK(tks_store_trim_before(srv->store, CUT) == sealed, "trim");
  srv->evict_quiet = false;
  archives[i] = tks_archive_open(dir, err, sizeof err);
  FUZZ_CHECK(archives[i], "tks_archive_open: %s", err);
  struct tks_archive_totals t;
  tks_archive_totals(archives[i], &t);
  FUZZ_CHECK(t.ticks == sealed && t.days == ndays && t.bad_parts == 0,
             "the archive holds %llu ticks in %u days, %u bad", (unsigned long long)t.ticks, t.days,
             t.bad_parts);
  return sealed;
}

/* The ts of a tick line ("ts":N), false for a line without one. */
static bool line_ts(const char *p, const char *nl, int64_t *ts) {
  const char *t = memmem(p, (size_t)(nl - p), "\"ts\":", 5);
  if (!t) return false;
  char *end;
  *ts = strtoll(t + 5, &end, 10);
  return end > t + 5;
}

/* The answer to line on srv, from out->data: the tick lines' ts into ts[]
 * (at most max), their count returned; *next_from from a paging line, or
 * INT64_MIN. */
static size_t ask(struct tks_server *srv, const char *line, int64_t *ts, size_t max,
                  int64_t *next_from) {
  struct tks_buf out;
  tks_buf_init(&out);
  FUZZ_CHECK(tks_query_handle(srv, line, &out) == 1, "'%s' is not a request", line);
  size_t n = 0;
  *next_from = INT64_MIN;
  for (const char *p = out.data, *end = out.data + out.len, *nl; p && p < end; p = nl + 1) {
    nl = memchr(p, '\n', (size_t)(end - p));
    FUZZ_CHECK(nl && strncmp(p, "{\"error\"", 8), "'%s': %.*s", line, (int)(end - p), p);
    const char *m = memmem(p, (size_t)(nl - p), "\"next_from\":", 12);
    if (m) {
      *next_from = strtoll(m + 12, NULL, 10);
      continue;
    }
    if (n < max && line_ts(p, nl, &ts[n])) n++;
  }
  tks_buf_finish(&out);
  return n;
}

/* The symbols of the servers; how many of their ticks a server's mode
 * takes differs (slotted refuses undeclared fields). */
#define NSYMS 3
static const char *const syms[NSYMS] = {"AAPL", "MSFT", "ZZ"};

struct expect {
  uint64_t all, archived; /* each symbol's ticks, and of those before CUT */
};

static int count_tick(void *ctx, const void *record, const struct tks_dynobj *obj) {
  (void)record, (void)obj;
  ++*(uint64_t *)ctx;
  return 0;
}

/* Before the seal: what each symbol holds, and below CUT. */
static void expect_of(struct tks_server *srv, struct expect *want) {
  for (unsigned i = 0; i < NSYMS; i++) {
    uint32_t id;
    struct tks_series_info info;
    FUZZ_CHECK(tks_symtab_lookup(srv->symbols, syms[i], strlen(syms[i]), &id) == 0 &&
                   tks_store_series(srv->store, id, &info) == 0,
               "%s has no ticks", syms[i]);
    want[i].all = info.count;
    want[i].archived = 0;
    tks_store_range(srv->store, id, INT64_MIN, CUT, 0, count_tick, &want[i].archived);
  }
  /* AAPL and MSFT in both, ZZ in the archive only. */
  FUZZ_CHECK(want[0].archived && want[0].all > want[0].archived && want[1].archived &&
                 want[1].all > want[1].archived && want[2].archived == want[2].all,
             "the cut does not split the symbols as meant");
}

/* At setup: memory and archive together hold every tick once, in order,
 * whatever pages the range is cut into, and last and symbols agree. */
static void check_both(struct tks_server *srv, const struct expect *want) {
  char line[128];
  for (unsigned i = 0; i < NSYMS; i++) {
    uint32_t id;
    struct tks_series_info info = {0};
    if (tks_symtab_lookup(srv->symbols, syms[i], strlen(syms[i]), &id) == 0)
      tks_store_series(srv->store, id, &info);
    FUZZ_CHECK(info.count == want[i].all - want[i].archived, "%s: %llu ticks in memory", syms[i],
               (unsigned long long)info.count);
    int64_t ts[32], from = 0, next;
    size_t n = 0;
    do { /* page by page */
      snprintf(line, sizeof line, "range %s %lld %lld", syms[i], (long long)from,
               (long long)(T0 + 30 * DAY));
      size_t got = ask(srv, line, ts + n, 32 - n, &next);
      FUZZ_CHECK(got > 0, "'%s': no rows", line);
      n += got;
      FUZZ_CHECK(next == INT64_MIN || next > ts[n - 1], "'%s': next_from %lld after %lld", line,
                 (long long)next, (long long)ts[n - 1]);
      from = next;
    } while (next != INT64_MIN);
    FUZZ_CHECK(n == want[i].all, "range %s: %zu ticks, want %llu", syms[i], n,
               (unsigned long long)want[i].all);
    for (size_t k = 1; k < n; k++)
      FUZZ_CHECK(ts[k - 1] <= ts[k], "range %s: ts %lld then %lld", syms[i], (long long)ts[k - 1],
                 (long long)ts[k]);
    int64_t last[32];
    snprintf(line, sizeof line, "last %s %zu", syms[i], n);
    size_t nl = ask(srv, line, last, 32, &next);
    size_t rows = n < srv->cfg.query.max_rows ? n : srv->cfg.query.max_rows;
    FUZZ_CHECK(nl == rows, "'%s': %zu rows, want %zu", line, nl, rows);
    FUZZ_CHECK(memcmp(last, ts + n - rows, rows * sizeof *ts) == 0, "'%s': not the newest", line);
  }
  struct tks_buf out;
  tks_buf_init(&out);
  FUZZ_CHECK(tks_query_handle(srv, "symbols", &out) == 1, "symbols");
  for (unsigned i = 0; i < NSYMS; i++) {
    snprintf(line, sizeof line, "{\"symbol\":\"%s\",\"ticks\":%llu,", syms[i],
             (unsigned long long)want[i].all);
    FUZZ_CHECK(out.data && strstr(out.data, line), "symbols: no %s in %s", line,
               out.data ? out.data : "");
  }
  tks_buf_finish(&out);
}

static void setup(void) {
  const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(archive_base, sizeof archive_base, "%s/tks-fuzz-control-XXXXXX", base);
  FUZZ_CHECK(mkdtemp(archive_base), "mkdtemp %s", archive_base);
  atexit(remove_archives);
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
    for (int k = 0; k < 12; k++) {
      /* Runs of equal ts, so paging meets ties. */
      add_tick(srv, "AAPL", T0 + (k / 3) * DAY / 4, 150.0 + k, k % 4 == 1);
      add_tick(srv, "MSFT", T0 + k * DAY, 1e300 * (k - 6), k % 2);
    }
    add_tick(srv, "ZZ", 1, -0.0, i > 0); /* an undeclared field where the mode keeps one */
    add_tick(srv, "", 5, 1, false);      /* rejected: empty ticker */
    struct expect want[NSYMS];
    expect_of(srv, want);
    const int32_t days[] = {tks_archive_day_of(1), tks_archive_day_of(T0)};
    uint64_t sealed = make_archive(i, days, 2);
    FUZZ_CHECK(sealed == want[0].archived + want[1].archived + want[2].archived, "sealed %llu",
               (unsigned long long)sealed);
    check_both(srv, want);
  }
}

static void check_answer(const struct tks_server *srv, const char *line, const struct tks_buf *out,
                         size_t start) {
  /* No lines is an answer: no ticks in the range (control.c ends every
   * answer with an empty line). */
  if (out->len == start) return;
  FUZZ_CHECK(out->data[out->len - 1] == '\n', "answer not ended by a newline");
  line += strspn(line, " \t");
  bool last = strncmp(line, "last", 4) == 0 && strchr(" \t", line[4]);
  bool range = strncmp(line, "range", 5) == 0 && strchr(" \t", line[5]);
  uint64_t lines = 0, ticks = 0;
  int64_t prev = INT64_MIN; /* the ts of the last tick line */
  for (const char *p = out->data + start, *end = out->data + out->len; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    FUZZ_CHECK(nl, "a line without newline");
    const char *v = json_value(p, nl, 0);
    FUZZ_CHECK(v && json_ws(v, nl) == nl, "not one JSON value: %.*s", (int)(nl - p), p);
    FUZZ_CHECK(*p == '{', "not an object: %.*s", (int)(nl - p), p);
    bool more = memcmp(p, "{\"more\"", 7) == 0;
    if (!more && memcmp(p, "{\"truncated\"", 12) && memcmp(p, "{\"error\"", 8)) {
      ticks++;
      /* Memory and archive merged: the ticks of last and range in ts order. */
      int64_t ts;
      if ((last || range) && line_ts(p, nl, &ts)) {
        FUZZ_CHECK(ts >= prev, "ts %lld after %lld: %s", (long long)ts, (long long)prev, line);
        prev = ts;
      }
    }
    if (more && range) { /* a page ends at a ts boundary */
      const char *m = memmem(p, (size_t)(nl - p), "\"next_from\":", 12);
      FUZZ_CHECK(m && strtoll(m + 12, NULL, 10) > prev, "%.*s after ts %lld", (int)(nl - p), p,
                 (long long)prev);
    }
    lines++;
    p = nl + 1;
  }
  /* last and symbols answer at most max_rows rows (range may add the ties
   * of its last row; advice answers lines of its own). */
  bool bounded = last || (strncmp(line, "symbols", 7) == 0 && strchr(" \t", line[7]));
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

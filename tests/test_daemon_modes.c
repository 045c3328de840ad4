/*
 * Black-box tests of the three store modes through the real tickslabd:
 * slotted (a tick with an undeclared field is rejected, counted, logged),
 * dynamic (every tick a per-tick hash map with every field it was sent
 * with) and fallback (slotted where the tick fits, else kept whole as a
 * dynamic object).  Ticks are crafted with msgpack-c directly, read back
 * with `last` / `range` and compared field by field, value by value; the
 * per-representation stats must add up to the totals; hostile maps get a
 * clear reason each and leave memory and the field-name table bounded.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <time.h>

#include "harness.h"
#include "test.h"
#include "utf8.h"
#include "util.h"
#include "wire.h"

#define TS0 INT64_C(1700000000000000000) /* 2023-11-14, in ns */
#define MIB (1024u * 1024u)

/* ---- a raw msgpack-c client: tests/wire.h ---- */

/* An undeclared field's value. */
enum xtype { X_NIL, X_BOOL, X_INT, X_UINT, X_F64, X_F32, X_STR };
struct xfield {
  const char *name;
  enum xtype t;
  int64_t i;
  uint64_t u;
  double f;
  const char *s;
  const char *json; /* how it must come back, exactly; NULL: compare as a number */
};

#define XNIL(n) {.name = (n), .t = X_NIL, .json = "null"}
#define XBOOL(n, v) {.name = (n), .t = X_BOOL, .i = (v), .json = (v) ? "true" : "false"}
#define XINT(n, v, j) {.name = (n), .t = X_INT, .i = (v), .json = (j)}
#define XUINT(n, v, j) {.name = (n), .t = X_UINT, .u = (v), .json = (j)}
#define XF64(n, v, j) {.name = (n), .t = X_F64, .f = (v), .json = (j)}
#define XF32(n, v, j) {.name = (n), .t = X_F32, .f = (v), .json = (j)}
#define XSTR(n, v) {.name = (n), .t = X_STR, .s = (v)}

static void pack_xvalue(msgpack_packer *pk, const struct xfield *x) {
  switch (x->t) {
  case X_NIL: msgpack_pack_nil(pk); break;
  case X_BOOL: x->i ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
  case X_INT: msgpack_pack_int64(pk, x->i); break;
  case X_UINT: msgpack_pack_uint64(pk, x->u); break;
  case X_F64: msgpack_pack_double(pk, x->f); break;
  case X_F32: msgpack_pack_float(pk, (float)x->f); break;
  case X_STR: pk_str(pk, x->s); break;
  }
}

/* A map tick: ticker, [ts], price, volume, [flags], then the extras.
 * ts < 0 or flags NULL: the field is left out. */
static void pack_tick(msgpack_packer *pk, const char *ticker, int64_t ts, double price,
                      int64_t volume, const char *flags, const struct xfield *x, size_t nx) {
  msgpack_pack_map(pk, 3 + (ts >= 0) + (flags != NULL) + nx);
  pk_str(pk, "ticker");
  pk_str(pk, ticker);
  if (ts >= 0) {
    pk_str(pk, "ts");
    msgpack_pack_int64(pk, ts);
  }
  pk_str(pk, "price");
  msgpack_pack_double(pk, price);
  pk_str(pk, "volume");
  msgpack_pack_int64(pk, volume);
  if (flags) {
    pk_str(pk, "flags");
    pk_str(pk, flags);
  }
  for (size_t k = 0; k < nx; k++) {
    pk_str(pk, x[k].name);
    pack_xvalue(pk, &x[k]);
  }
}

/* [ts, ticker, price, volume, flags] */
static void pack_array_tick(msgpack_packer *pk, int64_t ts, const char *ticker, double price,
                            int64_t volume, const char *flags) {
  msgpack_pack_array(pk, 5);
  msgpack_pack_int64(pk, ts);
  pk_str(pk, ticker);
  msgpack_pack_double(pk, price);
  msgpack_pack_int64(pk, volume);
  pk_str(pk, flags);
}

/* Opens the map of a tick with the three required fields and room for
 * `more` entries after them. */
static void pack_required(msgpack_packer *pk, const char *ticker, size_t more) {
  msgpack_pack_map(pk, 3 + more);
  pk_str(pk, "ticker");
  pk_str(pk, ticker);
  pk_str(pk, "price");
  msgpack_pack_double(pk, 1.25);
  pk_str(pk, "volume");
  msgpack_pack_int64(pk, 10);
}

static int64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the daemon ---- */

/* Fallback may keep an extra-field tick as a dynamic object or as a slotted
 * record plus an overflow map (issue 3 allows both): then it holds every
 * declared field, and an absent flags reads back as its default "". */
static bool flags_default_ok;

/* A stat that only some representations have: 0 if absent. */
static uint64_t snap_opt(const char *text, const char *path) {
  char v[64];
  return stats_text_lookup(text, path, v, sizeof v) < 0 ? 0 : strtoull(v, NULL, 10);
}

static void start_mode(struct tks_daemon *d, const char *mode) {
  flags_default_ok = !strcmp(mode, "fallback");
  char yaml[128];
  snprintf(yaml, sizeof yaml, "store:\n  mode: %s\n", mode);
  daemon_start(d, yaml);
}

static void stop_cleanly(struct tks_daemon *d) {
  int code = daemon_stop(d, SIGTERM);
  daemon_cleanup(d);
  ASSERT_EQ(code, 0);
}

/* Sends the whole wire on a fresh connection, waits until the daemon has
 * taken `n` more ticks (accepted + rejected), and closes. */
static void send_and_wait(const struct tks_daemon *d, const struct wire *w, uint64_t n) {
  uint64_t before = daemon_stat(d, "ticks.accepted") + daemon_stat(d, "ticks.rejected");
  int fd = daemon_connect_ingest(d);
  wire_send(fd, w);
  uint64_t deadline = now_ms() + 20000, taken = 0;
  for (;;) {
    taken = daemon_stat(d, "ticks.accepted") + daemon_stat(d, "ticks.rejected") - before;
    if (taken >= n || now_ms() > deadline) break;
    sleep_ms(5);
  }
  close(fd);
  if (taken != n)
    TEST_FAIL("the daemon took %llu ticks (accepted + rejected), want %llu",
              (unsigned long long)taken, (unsigned long long)n);
}

/* A stat from a `stats text` snapshot; fails the test if it is absent. */
static const char *snap_str(const char *text, const char *path) {
  static char v[8][256];
  static unsigned next;
  char *out = v[next++ % 8];
  if (stats_text_lookup(text, path, out, sizeof v[0]) < 0)
    TEST_FAIL("stat %s absent from `stats text`", path);
  return out;
}

static uint64_t snap(const char *text, const char *path) {
  const char *s = snap_str(text, path);
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s || errno) TEST_FAIL("stat %s is \"%s\", not a count", path, s);
  return v;
}

static double snap_f(const char *text, const char *path) {
  const char *s = snap_str(text, path);
  char *end;
  double v = strtod(s, &end);
  if (end == s) TEST_FAIL("stat %s is \"%s\", not a number", path, s);
  return v;
}

static char *stats_text(const struct tks_daemon *d) {
  char *t = daemon_request(d, "stats text");
  if (!t) TEST_FAIL("no answer to `stats text`");
  return t;
}

static bool log_has_line_with(const struct tks_daemon *d, const char *a, const char *b) {
  char *log = daemon_log(d);
  bool found = false;
  for (char *line = log, *nl; line && *line && !found; line = nl ? nl + 1 : NULL) {
    nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    found = strstr(line, a) && strstr(line, b);
  }
  free(log);
  return found;
}

/* ---- reading ticks back ---- */

#define JMAX 80
struct jobj {
  unsigned n;
  char key[JMAX][300];
  char *val[JMAX]; /* strings decoded; other values as their raw text */
  bool is_str[JMAX];
};

static void jobj_free(struct jobj *o) {
  for (unsigned i = 0; i < o->n; i++) free(o->val[i]);
  o->n = 0;
}

static void put_utf8(char **q, unsigned cp) {
  if (cp < 0x80) {
    *(*q)++ = (char)cp;
  } else if (cp < 0x800) {
    *(*q)++ = (char)(0xc0 | (cp >> 6));
    *(*q)++ = (char)(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    *(*q)++ = (char)(0xe0 | (cp >> 12));
    *(*q)++ = (char)(0x80 | ((cp >> 6) & 0x3f));
    *(*q)++ = (char)(0x80 | (cp & 0x3f));
  } else {
    *(*q)++ = (char)(0xf0 | (cp >> 18));
    *(*q)++ = (char)(0x80 | ((cp >> 12) & 0x3f));
    *(*q)++ = (char)(0x80 | ((cp >> 6) & 0x3f));
    *(*q)++ = (char)(0x80 | (cp & 0x3f));
  }
}

/* A JSON string at *p (at its opening quote): decoded into a malloc'd
 * buffer, *p moved past it; NULL if malformed. */
static char *j_string(const char **p) {
  const char *s = *p;
  if (*s != '"') return NULL;
  s++;
  char *out = malloc(strlen(s) + 1), *q = out;
  if (!out) TEST_FAIL("out of memory");
  while (*s && *s != '"') {
    if (*s != '\\') {
      *q++ = *s++;
      continue;
    }
    s++;
    switch (*s) {
    case '"': *q++ = '"'; break;
    case '\\': *q++ = '\\'; break;
    case '/': *q++ = '/'; break;
    case 'b': *q++ = '\b'; break;
    case 'f': *q++ = '\f'; break;
    case 'n': *q++ = '\n'; break;
    case 'r': *q++ = '\r'; break;
    case 't': *q++ = '\t'; break;
    case 'u': {
      unsigned cp = 0;
      if (sscanf(s + 1, "%4x", &cp) != 1) goto bad;
      s += 4;
      if (cp >= 0xd800 && cp < 0xdc00 && s[1] == '\\' && s[2] == 'u') {
        unsigned lo = 0;
        if (sscanf(s + 3, "%4x", &lo) != 1) goto bad;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        s += 6;
      }
      put_utf8(&q, cp);
      break;
    }
    default: goto bad;
    }
    s++;
  }
  if (*s != '"') goto bad;
  *q = '\0';
  *p = s + 1;
  return out;
bad:
  free(out);
  return NULL;
}

/* Parses one flat JSON object (values scalars) into o, keys in order.
 * Returns 0, or -1 if it is not one. */
static int jobj_parse(const char *line, struct jobj *o) {
  memset(o, 0, sizeof *o);
  const char *p = line;
  while (*p == ' ') p++;
  if (*p++ != '{') return -1;
  while (*p == ' ') p++;
  if (*p == '}') return 0;
  for (;;) {
    while (*p == ' ') p++;
    char *k = j_string(&p);
    if (!k || o->n == JMAX) {
      free(k);
      return -1;
    }
    snprintf(o->key[o->n], sizeof o->key[0], "%s", k);
    free(k);
    while (*p == ' ') p++;
    if (*p++ != ':') return -1;
    while (*p == ' ') p++;
    if (*p == '"') {
      o->val[o->n] = j_string(&p);
      if (!o->val[o->n]) return -1;
      o->is_str[o->n] = true;
    } else {
      const char *s = p;
      while (*p && *p != ',' && *p != '}' && *p != ' ') p++;
      if (p == s) return -1;
      o->val[o->n] = strndup(s, (size_t)(p - s));
    }
    o->n++;
    while (*p == ' ') p++;
    if (*p == ',') {
      p++;
      continue;
    }
    if (*p == '}') return 0;
    return -1;
  }
}

static int jobj_find(const struct jobj *o, const char *key) {
  for (unsigned i = 0; i < o->n; i++)
    if (!strcmp(o->key[i], key)) return (int)i;
  return -1;
}

/* The tick lines of a `last` / `range` response (lines with a "ticker"
 * key; a line telling where to continue is not a tick), each parsed. */
struct rows {
  unsigned n;
  struct jobj *row;
  char *raw;
};

static void rows_free(struct rows *r) {
  for (unsigned i = 0; i < r->n; i++) jobj_free(&r->row[i]);
  free(r->row);
  free(r->raw);
}

static void query_rows(const struct tks_daemon *d, const char *req, struct rows *out) {
  memset(out, 0, sizeof *out);
  char *resp = daemon_request(d, req);
  if (!resp) TEST_FAIL("no answer to \"%s\"", req);
  size_t len = strlen(resp);
  if (len < 1 || resp[len - 1] != '\n' || (len >= 2 && resp[len - 2] != '\n'))
    TEST_FAIL("\"%s\": response does not end with an empty line: \"%s\"", req, resp);
  if (strstr(resp, "\"error\"")) TEST_FAIL("\"%s\": error response: %s", req, resp);
  out->raw = resp;
  size_t lines = 1;
  for (const char *c = resp; *c; c++) lines += *c == '\n';
  out->row = calloc(lines, sizeof *out->row);
  if (!out->row) TEST_FAIL("out of memory");
  char *copy = strdup(resp);
  for (char *line = copy, *nl; line && *line; line = nl ? nl + 1 : NULL) {
    nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    if (!*line) break; /* the empty line ends the response */
    char *flat = json_flatten(line);
    if (!flat) TEST_FAIL("\"%s\": line is not valid JSON: \"%s\"", req, line);
    free(flat);
    struct jobj o;
    if (jobj_parse(line, &o) < 0)
      TEST_FAIL("\"%s\": line is not a flat JSON object: %s", req, line);
    if (jobj_find(&o, "ticker") < 0) {
      jobj_free(&o);
      continue;
    }
    out->row[out->n++] = o;
  }
  free(copy);
}

/* What one tick must come back as: the declared fields it has, in slot
 * order, then its undeclared fields in the given order. */
struct want {
  int64_t ts;         /* -1: absent on the wire; then between ts_lo and ts_hi */
  int64_t ts_lo, ts_hi;
  const char *ticker;
  const char *price;  /* JSON text */
  const char *volume; /* JSON text */
  const char *flags;  /* NULL: absent */
  const struct xfield *x;
  size_t nx;
  const char *const *order; /* undeclared names in the order expected; NULL: as in x */
};

static const struct xfield *xfind(const struct want *w, const char *name) {
  for (size_t k = 0; k < w->nx; k++)
    if (!strcmp(w->x[k].name, name)) return &w->x[k];
  return NULL;
}

static void expect_row(const char *ctx, const struct jobj *o, const char *raw,
                       const struct want *w) {
  const char *keys[JMAX];
  unsigned nk = 0;
  keys[nk++] = "ts";
  keys[nk++] = "ticker";
  keys[nk++] = "price";
  keys[nk++] = "volume";
  bool flags_defaulted = !w->flags && flags_default_ok && o->n > 4 && !strcmp(o->key[4], "flags") &&
                         o->is_str[4] && !o->val[4][0];
  if (w->flags || flags_defaulted) keys[nk++] = "flags";
  for (size_t k = 0; k < w->nx; k++) keys[nk++] = w->order ? w->order[k] : w->x[k].name;
  if (o->n != nk) {
    char got[2048] = "", want[2048] = "";
    for (unsigned i = 0; i < o->n; i++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%s%.40s", i ? "," : "", o->key[i]);
    for (unsigned i = 0; i < nk; i++)
      snprintf(want + strlen(want), sizeof want - strlen(want), "%s%.40s", i ? "," : "", keys[i]);
    TEST_FAIL("%s: %u fields, want %u\n    got keys:  %s\n    want keys: %s\n  response:\n%s", ctx,
              o->n, nk, got, want, raw);
  }
  for (unsigned i = 0; i < nk; i++)
    if (strcmp(o->key[i], keys[i]))
      TEST_FAIL("%s: field %u is \"%s\", want \"%s\" (order: slots, then first seen): %s", ctx,
                i, o->key[i], keys[i], raw);
  /* ts */
  if (o->is_str[0]) TEST_FAIL("%s: ts is a string: %s", ctx, raw);
  long long ts = strtoll(o->val[0], NULL, 10);
  if (w->ts >= 0) {
    if (ts != w->ts) TEST_FAIL("%s: ts %lld, want %lld: %s", ctx, ts, (long long)w->ts, raw);
  } else if (ts < w->ts_lo || ts > w->ts_hi) {
    TEST_FAIL("%s: ts %lld is not the receive time (%lld..%lld): %s", ctx, ts,
              (long long)w->ts_lo, (long long)w->ts_hi, raw);
  }
  if (!o->is_str[1] || strcmp(o->val[1], w->ticker))
    TEST_FAIL("%s: ticker \"%s\", want \"%s\": %s", ctx, o->val[1], w->ticker, raw);
  if (o->is_str[2] || strcmp(o->val[2], w->price))
    TEST_FAIL("%s: price %s, want %s: %s", ctx, o->val[2], w->price, raw);
  if (o->is_str[3] || strcmp(o->val[3], w->volume))
    TEST_FAIL("%s: volume %s, want %s: %s", ctx, o->val[3], w->volume, raw);
  unsigned at = 4;
  if (w->flags || flags_defaulted) {
    if (w->flags && (!o->is_str[4] || strcmp(o->val[4], w->flags)))
      TEST_FAIL("%s: flags \"%s\", want \"%s\": %s", ctx, o->val[4], w->flags, raw);
    at = 5;
  }
  for (unsigned i = at; i < nk; i++) {
    const struct xfield *x = xfind(w, o->key[i]);
    const char *got = o->val[i];
    if (x->t == X_STR) {
      if (!o->is_str[i] || strcmp(got, x->s))
        TEST_FAIL("%s: %s is %s\"%s\", want the string \"%s\": %s", ctx, x->name,
                  o->is_str[i] ? "" : "not a string: ", got, x->s, raw);
      continue;
    }
    if (o->is_str[i]) TEST_FAIL("%s: %s is a string \"%s\": %s", ctx, x->name, got, raw);
    if (x->json) {
      if (strcmp(got, x->json))
        TEST_FAIL("%s: %s is %s, want exactly %s: %s", ctx, x->name, got, x->json, raw);
    } else {
      double v = strtod(got, NULL);
      if (v != x->f) TEST_FAIL("%s: %s is %s, want %.17g: %s", ctx, x->name, got, x->f, raw);
    }
  }
}

/* ---- the workloads ---- */

/* Per symbol round: plain map ticks (half with flags), array ticks, and
 * map ticks with 1..3 extra fields. */
struct mix {
  uint64_t plain, array, extra;
};

static void pack_mix(struct wire *w, const char *const *syms, unsigned nsym, unsigned rounds,
                     bool late, struct mix *m) {
  *m = (struct mix){0, 0, 0};
  for (unsigned r = 0; r < rounds; r++) {
    for (unsigned s = 0; s < nsym; s++) {
      /* late: every 7th round goes back in time, inserted in place */
      int64_t ts = TS0 + (int64_t)r * 1000 + (late && r % 7 == 6 ? -5500 : 0);
      double price = 100.0 + (double)(r % 50) * 0.25;
      switch (r % 5) {
      case 0:
      case 1:
        pack_tick(&w->pk, syms[s], ts, price, r + 1, r % 2 ? "R" : NULL, NULL, 0);
        m->plain++;
        break;
      case 2:
        pack_array_tick(&w->pk, ts, syms[s], price, r + 1, "X");
        m->array++;
        break;
      default: {
        struct xfield x[3] = {XSTR("exchange", "XNAS"), XINT("seq", (int64_t)r, NULL),
                              XF64("bid", price - 0.01, NULL)};
        pack_tick(&w->pk, syms[s], ts, price, r + 1, "R", x, 1 + r % 3);
        m->extra++;
      }
      }
    }
  }
}

/* Checks the per-representation figures in one `stats text` snapshot. */
/* want_whole: ticks kept with undeclared fields, as dynamic objects or as
 * slotted records with an overflow map (store.overflow.*). */
static void expect_repr_adds_up(const char *mode, const char *t, uint64_t want_slotted,
                                uint64_t want_whole) {
  ASSERT_STR_EQ(snap_str(t, "store.mode"), mode);
  uint64_t st = snap(t, "store.slotted.ticks"), dt = snap(t, "store.dynamic.ticks");
  uint64_t sb = snap(t, "store.slotted.bytes"), db = snap(t, "store.dynamic.bytes");
  uint64_t ot = snap_opt(t, "store.overflow.ticks"), obytes = snap_opt(t, "store.overflow.bytes");
  uint64_t stored = snap(t, "ticks.stored"), used = snap(t, "memory.slab_used_bytes");
  ASSERT_U64_EQ(st, want_slotted);
  ASSERT_U64_EQ(dt + ot, want_whole);
  ASSERT_U64_EQ(st + dt + ot, stored);
  if (sb + db + obytes > used)
    TEST_FAIL("store.slotted.bytes %llu + store.dynamic.bytes %llu + store.overflow.bytes %llu > "
              "memory.slab_used_bytes %llu",
              (unsigned long long)sb, (unsigned long long)db, (unsigned long long)obytes,
              (unsigned long long)used);
  if (!strcmp(mode, "slotted")) ASSERT_U64_EQ(dt + ot, 0);
  if (!strcmp(mode, "dynamic")) ASSERT_U64_EQ(st + ot, 0);
  if (ot) {
    ASSERT(obytes > 0);
    double obpt = snap_f(t, "store.overflow.entry_and_map_bytes_per_tick");
    if (fabs(obpt - (double)obytes / (double)ot) > 0.05 * ((double)obytes / (double)ot) + 0.1)
      TEST_FAIL("store.overflow.entry_and_map_bytes_per_tick %.2f, but bytes / ticks = %.2f", obpt,
                (double)obytes / (double)ot);
  }
  /* Bytes follow ticks: a representation with ticks has bytes. */
  if (st) ASSERT(sb >= st * 32); /* a MarketEvent record is 32 bytes */
  if (dt) ASSERT(db > 0);
  uint64_t ob = snap(t, "store.dynamic.object_bytes"), eb = snap(t, "store.dynamic.entry_bytes");
  if (dt) ASSERT(ob > 0);
  if (ob > db || eb > db)
    TEST_FAIL("store.dynamic.object_bytes %llu or entry_bytes %llu > store.dynamic.bytes %llu",
              (unsigned long long)ob, (unsigned long long)eb, (unsigned long long)db);
  double sbpt = snap_f(t, "store.slotted.block_bytes_per_tick");
  double dbpt = snap_f(t, "store.dynamic.object_and_entry_bytes_per_tick");
  if (st && fabs(sbpt - (double)sb / (double)st) > 0.05 * ((double)sb / (double)st) + 0.1)
    TEST_FAIL("store.slotted.block_bytes_per_tick %.2f, but bytes / ticks = %.2f", sbpt,
              (double)sb / (double)st);
  if (dt && fabs(dbpt - (double)db / (double)dt) > 0.05 * ((double)db / (double)dt) + 0.1)
    TEST_FAIL("store.dynamic.object_and_entry_bytes_per_tick %.2f, but bytes / ticks = %.2f", dbpt,
              (double)db / (double)dt);
  (void)snap(t, "fields.names.count");
  (void)snap(t, "fields.names.bytes");
  (void)snap(t, "undeclared_overflow");
}

/* ---- slotted ---- */

TEST(slotted_mode_rejects_ticks_with_extra_fields_and_counts_them) {
  struct tks_daemon d;
  start_mode(&d, "slotted");
  static const char *const syms[] = {"AAPL", "MSFT", "GOOG"};
  struct wire w;
  wire_init(&w);
  struct mix m;
  pack_mix(&w, syms, 3, 100, false, &m);
  send_and_wait(&d, &w, m.plain + m.array + m.extra);
  char *t = stats_text(&d);
  ASSERT_U64_EQ(snap(t, "ticks.accepted"), m.plain + m.array);
  ASSERT_U64_EQ(snap(t, "ticks.stored"), m.plain + m.array);
  ASSERT_U64_EQ(snap(t, "ticks.rejected"), m.extra);
  ASSERT_U64_EQ(snap(t, "ticks.rejected_by_reason.unknown_field"), m.extra);
  ASSERT_U64_EQ(snap(t, "connections.closed_on_error"), 0);
  expect_repr_adds_up("slotted", t, m.plain + m.array, 0);
  free(t);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(slotted_mode_logs_the_unknown_field_by_name) {
  struct tks_daemon d;
  start_mode(&d, "slotted");
  struct wire w;
  wire_init(&w);
  struct xfield x[] = {XSTR("venue_code", "XNAS")};
  for (int i = 0; i < 5; i++) pack_tick(&w.pk, "AAPL", TS0 + i, 1.0, 1, NULL, x, 1);
  send_and_wait(&d, &w, 5);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected_by_reason.unknown_field"), 5);
  uint64_t deadline = now_ms() + 3000;
  while (!log_has_line_with(&d, "unknown_field", "venue_code") && now_ms() < deadline) sleep_ms(20);
  if (!log_has_line_with(&d, "unknown_field", "venue_code")) {
    char *log = daemon_log(&d);
    TEST_FAIL("no log line names both unknown_field and venue_code:\n%s", log);
  }
  wire_finish(&w);
  stop_cleanly(&d);
}

/* A tick with every declared field and one more is an unknown field too,
 * not "too many fields": the operator must learn the field's name. */
TEST(slotted_mode_counts_a_full_tick_plus_one_field_as_unknown_field) {
  struct tks_daemon d;
  start_mode(&d, "slotted");
  struct wire w;
  wire_init(&w);
  struct xfield x[] = {XSTR("exchange", "XNAS")};
  for (int i = 0; i < 10; i++) pack_tick(&w.pk, "AAPL", TS0 + i, 1.0, 1, "R", x, 1);
  send_and_wait(&d, &w, 10);
  char *t = stats_text(&d);
  ASSERT_U64_EQ(snap(t, "ticks.rejected_by_reason.too_many_fields"), 0);
  ASSERT_U64_EQ(snap(t, "ticks.rejected_by_reason.unknown_field"), 10);
  ASSERT_U64_EQ(snap(t, "undeclared.exchange.rejected"), 10);
  free(t);
  uint64_t deadline = now_ms() + 3000;
  while (!log_has_line_with(&d, "unknown_field", "exchange") && now_ms() < deadline) sleep_ms(20);
  ASSERT(log_has_line_with(&d, "unknown_field", "exchange"));
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(slotted_ticks_come_back_with_every_schema_field) {
  struct tks_daemon d;
  start_mode(&d, "slotted");
  struct wire w;
  wire_init(&w);
  pack_tick(&w.pk, "SLT", TS0 + 1, 150.05, 100, "R", NULL, 0);
  pack_tick(&w.pk, "SLT", TS0 + 2, 0.1, 7, NULL, NULL, 0); /* flags absent: "" */
  struct xfield x[] = {XINT("extra", 1, "1")};
  pack_tick(&w.pk, "SLT", TS0 + 3, 3.0, 9, "R", x, 1); /* rejected: never comes back */
  pack_array_tick(&w.pk, TS0 + 4, "SLT", 410.5, 20, "X");
  send_and_wait(&d, &w, 4);
  struct rows r;
  query_rows(&d, "last SLT 10", &r);
  ASSERT_EQ(r.n, 3);
  const struct want want[] = {
      {.ts = TS0 + 1, .ticker = "SLT", .price = "150.05", .volume = "100", .flags = "R"},
      {.ts = TS0 + 2, .ticker = "SLT", .price = "0.1", .volume = "7", .flags = ""},
      {.ts = TS0 + 4, .ticker = "SLT", .price = "410.5", .volume = "20", .flags = "X"},
  };
  for (unsigned i = 0; i < 3; i++) {
    char ctx[32];
    snprintf(ctx, sizeof ctx, "tick %u", i);
    expect_row(ctx, &r.row[i], r.raw, &want[i]);
  }
  rows_free(&r);
  wire_finish(&w);
  stop_cleanly(&d);
}

/* ---- dynamic ---- */

TEST(dynamic_mode_keeps_every_tick_with_and_without_extra_fields) {
  struct tks_daemon d;
  start_mode(&d, "dynamic");
  static const char *const syms[] = {"AAPL", "MSFT", "GOOG"};
  struct wire w;
  wire_init(&w);
  struct mix m;
  pack_mix(&w, syms, 3, 100, false, &m);
  uint64_t all = m.plain + m.array + m.extra;
  send_and_wait(&d, &w, all);
  char *t = stats_text(&d);
  ASSERT_U64_EQ(snap(t, "ticks.accepted"), all);
  ASSERT_U64_EQ(snap(t, "ticks.stored"), all);
  ASSERT_U64_EQ(snap(t, "ticks.rejected"), 0);
  expect_repr_adds_up("dynamic", t, 0, all);
  free(t);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(dynamic_ticks_come_back_with_exactly_the_fields_they_were_sent_with) {
  struct tks_daemon d;
  start_mode(&d, "dynamic");
  struct wire w;
  wire_init(&w);
  const struct xfield x1[] = {XSTR("exchange", "XNAS"), XINT("seq", -42, "-42")};
  const struct xfield x2[] = {XINT("seq", 7, "7"), XBOOL("odd_lot", 1), XNIL("cond"),
                              XSTR("exchange", "ARCA")};
  static const char *const order2[] = {"exchange", "seq", "odd_lot", "cond"}; /* first seen */
  pack_tick(&w.pk, "DYN", TS0 + 1, 150.05, 100, "R", NULL, 0); /* plain, with flags */
  pack_tick(&w.pk, "DYN", TS0 + 2, 150.5, 5, NULL, NULL, 0);   /* flags absent: absent */
  pack_tick(&w.pk, "DYN", TS0 + 3, 151.0, 6, "", x1, 2);       /* empty flags: present */
  pack_tick(&w.pk, "DYN", TS0 + 4, 149.75, 8, NULL, x2, 4);
  pack_array_tick(&w.pk, TS0 + 5, "DYN", 410.5, 20, "X");
  int64_t lo = wall_ns();
  pack_tick(&w.pk, "DYN", -1, 2.5, 1, NULL, NULL, 0); /* no ts: the receive time */
  send_and_wait(&d, &w, 6);
  int64_t hi = wall_ns();
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 6);
  ASSERT_U64_EQ(daemon_stat(&d, "store.dynamic.ticks"), 6);
  struct rows r;
  query_rows(&d, "last DYN 10", &r);
  ASSERT_EQ(r.n, 6);
  const struct want want[] = {
      {.ts = TS0 + 1, .ticker = "DYN", .price = "150.05", .volume = "100", .flags = "R"},
      {.ts = TS0 + 2, .ticker = "DYN", .price = "150.5", .volume = "5"},
      {.ts = TS0 + 3, .ticker = "DYN", .price = "151", .volume = "6", .flags = "", .x = x1,
       .nx = 2},
      {.ts = TS0 + 4, .ticker = "DYN", .price = "149.75", .volume = "8", .x = x2, .nx = 4,
       .order = order2},
      {.ts = TS0 + 5, .ticker = "DYN", .price = "410.5", .volume = "20", .flags = "X"},
      {.ts = -1, .ts_lo = lo, .ts_hi = hi, .ticker = "DYN", .price = "2.5", .volume = "1"},
  };
  for (unsigned i = 0; i < 6; i++) {
    char ctx[32];
    snprintf(ctx, sizeof ctx, "tick %u", i);
    struct want wi = want[i];
    if (i == 2) { /* 151.0 may read "151" or "151.0": both are exact */
      int at = jobj_find(&r.row[i], "price");
      if (at >= 0 && !strcmp(r.row[i].val[at], "151.0")) wi.price = "151.0";
    }
    expect_row(ctx, &r.row[i], r.raw, &wi);
  }
  rows_free(&r);
  wire_finish(&w);
  stop_cleanly(&d);
}

/* ---- fallback ---- */

TEST(fallback_mode_slots_plain_ticks_and_keeps_extra_ticks_whole) {
  struct tks_daemon d;
  start_mode(&d, "fallback");
  static const char *const syms[] = {"AAPL", "MSFT", "GOOG"};
  struct wire w;
  wire_init(&w);
  struct mix m;
  pack_mix(&w, syms, 3, 100, false, &m);
  uint64_t all = m.plain + m.array + m.extra;
  send_and_wait(&d, &w, all);
  char *t = stats_text(&d);
  ASSERT_U64_EQ(snap(t, "ticks.accepted"), all);
  ASSERT_U64_EQ(snap(t, "ticks.stored"), all);
  ASSERT_U64_EQ(snap(t, "ticks.rejected"), 0);
  expect_repr_adds_up("fallback", t, m.plain + m.array, m.extra);
  free(t);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(fallback_every_extra_field_and_value_comes_back_exactly) {
  struct tks_daemon d;
  start_mode(&d, "fallback");
  char long_str[201];
  memset(long_str, 'v', 200);
  long_str[200] = '\0';
  const struct xfield x1[] = {
      XSTR("exchange", "XNAS"),
      XSTR("empty", ""),
      XSTR("quoted", "a \"quoted\" back\\slash\nnew line\ttab"),
      XSTR("utf8", "Z\xc3\xbcrich \xe2\x82\xac"),
      XSTR("long", long_str),
      XINT("zero", 0, "0"),
      XINT("neg", -5, "-5"),
      XINT("min", INT64_MIN, "-9223372036854775808"),
      XINT("max", INT64_MAX, "9223372036854775807"),
      XUINT("two63", UINT64_C(9223372036854775808), "9223372036854775808"),
      XUINT("umax", UINT64_MAX, "18446744073709551615"),
      XF64("bid", 150.05, "150.05"),
      XF64("half", -0.5, "-0.5"),
      XF64("tenth", 0.1, "0.1"),
      XF64("avogadro", 6.02214076e23, NULL),
      XF32("single", 1.5, "1.5"),
      XBOOL("yes", 1),
      XBOOL("no", 0),
      XNIL("nothing"),
  };
  const size_t n1 = TKS_ARRAY_SIZE(x1);
  /* A second dynamic tick: known names in another order, one new. */
  const struct xfield x2[] = {XINT("neg", -6, "-6"), XSTR("venue", "ARCA"),
                              XSTR("exchange", "BATS")};
  static const char *const order2[] = {"exchange", "neg", "venue"};
  struct wire w;
  wire_init(&w);
  pack_tick(&w.pk, "RT", TS0 + 1, 150.05, 100, "R", NULL, 0);   /* slotted */
  pack_tick(&w.pk, "RT", TS0 + 2, 150.25, 200, "X", x1, n1);    /* dynamic */
  pack_tick(&w.pk, "RT", TS0 + 3, 150.5, 300, NULL, NULL, 0);   /* slotted, flags "" */
  pack_tick(&w.pk, "RT", TS0 + 4, 150.75, 400, NULL, x2, 3);    /* dynamic, no flags */
  int64_t lo = wall_ns();
  pack_tick(&w.pk, "RT", -1, 151.0, 500, "R", x2, 1);           /* dynamic, no ts */
  send_and_wait(&d, &w, 5);
  int64_t hi = wall_ns();
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 5);
  struct rows r;
  query_rows(&d, "last RT 10", &r);
  ASSERT_EQ(r.n, 5);
  const struct want want[] = {
      {.ts = TS0 + 1, .ticker = "RT", .price = "150.05", .volume = "100", .flags = "R"},
      {.ts = TS0 + 2, .ticker = "RT", .price = "150.25", .volume = "200", .flags = "X", .x = x1,
       .nx = n1},
      {.ts = TS0 + 3, .ticker = "RT", .price = "150.5", .volume = "300", .flags = ""},
      {.ts = TS0 + 4, .ticker = "RT", .price = "150.75", .volume = "400", .x = x2, .nx = 3,
       .order = order2},
      {.ts = -1, .ts_lo = lo, .ts_hi = hi, .ticker = "RT", .price = "151", .volume = "500",
       .flags = "R", .x = x2, .nx = 1},
  };
  for (unsigned i = 0; i < 5; i++) {
    char ctx[32];
    snprintf(ctx, sizeof ctx, "tick %u", i);
    struct want wi = want[i];
    int at = jobj_find(&r.row[i], "price");
    if (i == 4 && at >= 0 && !strcmp(r.row[i].val[at], "151.0")) wi.price = "151.0";
    expect_row(ctx, &r.row[i], r.raw, &wi);
  }
  rows_free(&r);
  /* `last RT 2`: the newest two, oldest first. */
  query_rows(&d, "last RT 2", &r);
  ASSERT_EQ(r.n, 2);
  ASSERT_STR_EQ(r.row[0].val[jobj_find(&r.row[0], "volume")], "400");
  ASSERT_STR_EQ(r.row[1].val[jobj_find(&r.row[1], "volume")], "500");
  rows_free(&r);
  /* Two slotted records, three dynamic objects. */
  char *t = stats_text(&d);
  expect_repr_adds_up("fallback", t, 2, 3);
  free(t);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(fallback_range_merges_slotted_and_dynamic_ticks_by_ts) {
  struct tks_daemon d;
  start_mode(&d, "fallback");
  struct wire w;
  wire_init(&w);
  /* ts TS0+0 .. TS0+9 sent in a shuffled order; odd ones carry "leg". */
  static const int order[10] = {0, 2, 1, 3, 5, 4, 9, 6, 8, 7};
  for (int k = 0; k < 10; k++) {
    int i = order[k];
    struct xfield x[] = {XINT("leg", i, NULL)};
    pack_tick(&w.pk, "RNG", TS0 + i, 10.0 + i, i + 1, "R", x, i % 2);
  }
  send_and_wait(&d, &w, 10);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 10);
  char req[128];
  snprintf(req, sizeof req, "range RNG %lld %lld", (long long)(TS0 + 2), (long long)(TS0 + 7));
  struct rows r;
  query_rows(&d, req, &r);
  ASSERT_EQ(r.n, 5); /* inclusive-exclusive: 2, 3, 4, 5, 6 */
  for (unsigned k = 0; k < r.n; k++) {
    int i = 2 + (int)k;
    long long ts = strtoll(r.row[k].val[jobj_find(&r.row[k], "ts")], NULL, 10);
    ASSERT_EQ(ts, TS0 + i);
    int leg = jobj_find(&r.row[k], "leg");
    if (i % 2) {
      if (leg < 0) TEST_FAIL("tick at ts +%d lost its field leg: %s", i, r.raw);
      ASSERT_EQ(strtoll(r.row[k].val[leg], NULL, 10), i);
    } else {
      ASSERT_EQ(leg, -1);
    }
  }
  rows_free(&r);
  snprintf(req, sizeof req, "range RNG %lld %lld 3", (long long)TS0, (long long)(TS0 + 10));
  query_rows(&d, req, &r);
  ASSERT_EQ(r.n, 3);
  for (unsigned k = 0; k < r.n; k++)
    ASSERT_EQ(strtoll(r.row[k].val[jobj_find(&r.row[k], "ts")], NULL, 10), TS0 + (int)k);
  rows_free(&r);
  char *t = stats_text(&d);
  expect_repr_adds_up("fallback", t, 5, 5);
  free(t);
  wire_finish(&w);
  stop_cleanly(&d);
}

/* Doubles that need 15, 16 and 17 significant digits, as a slotted price
 * and as undeclared values: each in its shortest form that reads back. */
TEST(floats_come_back_in_shortest_round_trip_form) {
  static const struct {
    double v;
    const char *json;
  } cases[] = {
      {150.05, "150.05"},
      {0.7999999999999999, "0.7999999999999999"},   /* 16 digits; %.17g: ...99993 */
      {0.30000000000000004, "0.30000000000000004"}, /* 17 digits */
      {1234.5678, "1234.5678"},
      {-2.2250738585072014e-308, "-2.2250738585072014e-308"},
  };
  const size_t n = TKS_ARRAY_SIZE(cases);
  struct tks_daemon d;
  start_mode(&d, "fallback");
  struct wire w;
  wire_init(&w);
  for (size_t i = 0; i < n; i++) {
    struct xfield x[] = {XF64("v", cases[i].v, cases[i].json)};
    pack_tick(&w.pk, "FLT", TS0 + (int64_t)i, cases[i].v, 1, "R", NULL, 0); /* slotted */
    pack_tick(&w.pk, "FLD", TS0 + (int64_t)i, 1.0, 1, "R", x, 1);           /* dynamic */
  }
  send_and_wait(&d, &w, 2 * n);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 2 * n);
  char req[32];
  struct rows r;
  snprintf(req, sizeof req, "last FLT %zu", n);
  query_rows(&d, req, &r);
  ASSERT_EQ(r.n, n);
  char fails[1024] = "";
  for (size_t i = 0; i < n; i++) {
    const char *got = r.row[i].val[jobj_find(&r.row[i], "price")];
    if (strcmp(got, cases[i].json))
      snprintf(fails + strlen(fails), sizeof fails - strlen(fails),
               "\n    slotted price %s, want %s", got, cases[i].json);
  }
  rows_free(&r);
  snprintf(req, sizeof req, "last FLD %zu", n);
  query_rows(&d, req, &r);
  ASSERT_EQ(r.n, n);
  for (size_t i = 0; i < n; i++) {
    int at = jobj_find(&r.row[i], "v");
    if (at < 0) TEST_FAIL("tick %zu lost its field v: %s", i, r.raw);
    if (strcmp(r.row[i].val[at], cases[i].json))
      snprintf(fails + strlen(fails), sizeof fails - strlen(fails),
               "\n    undeclared v %s, want %s", r.row[i].val[at], cases[i].json);
  }
  rows_free(&r);
  if (fails[0]) TEST_FAIL("not the shortest round-trip form:%s", fails);
  wire_finish(&w);
  stop_cleanly(&d);
}

/* ---- stats ---- */

TEST_TIMEOUT(stats_per_representation_add_up_to_the_totals_in_every_mode, 120) {
  static const char *const modes[] = {"slotted", "dynamic", "fallback"};
  char *syms[40];
  for (int s = 0; s < 40; s++) {
    syms[s] = malloc(16);
    snprintf(syms[s], 16, "SYM%02d", s);
  }
  for (int mi = 0; mi < 3; mi++) {
    struct tks_daemon d;
    start_mode(&d, modes[mi]);
    struct wire w;
    wire_init(&w);
    struct mix m;
    pack_mix(&w, (const char *const *)syms, 40, 250, true, &m); /* 10000 ticks, some late */
    uint64_t all = m.plain + m.array + m.extra;
    send_and_wait(&d, &w, all);
    uint64_t want_slotted = mi == 1 ? 0 : m.plain + m.array;
    uint64_t want_dynamic = mi == 0 ? 0 : mi == 1 ? all : m.extra;
    char *t = stats_text(&d);
    ASSERT_U64_EQ(snap(t, "ticks.accepted"), mi == 0 ? m.plain + m.array : all);
    ASSERT(snap(t, "ticks.late") > 0);
    expect_repr_adds_up(modes[mi], t, want_slotted, want_dynamic);
    free(t);
    /* The same figures in the JSON and Prometheus forms. */
    char *js = daemon_request(&d, "stats");
    ASSERT(js);
    char *flat = json_flatten(js);
    if (!flat) TEST_FAIL("stats is not JSON: %.300s", js);
    ASSERT_U64_EQ(snap(flat, "store.slotted.ticks"), want_slotted);
    ASSERT_U64_EQ(snap(flat, "store.dynamic.ticks") + snap_opt(flat, "store.overflow.ticks"),
                  want_dynamic);
    (void)snap(flat, "store.dynamic.object_bytes");
    (void)snap(flat, "fields.names.count");
    free(flat);
    free(js);
    char *prom = daemon_request(&d, "stats prometheus");
    ASSERT(prom);
    bool slotted_sample = false, dynamic_sample = false;
    for (char *line = prom, *nl; line && *line; line = nl ? nl + 1 : NULL) {
      nl = strchr(line, '\n');
      if (nl) *nl = '\0';
      if (line[0] == '#' || strncmp(line, "tickslab_store", 14)) continue;
      slotted_sample |= strstr(line, "slotted") != NULL;
      dynamic_sample |= strstr(line, "dynamic") != NULL;
    }
    if (!slotted_sample || !dynamic_sample)
      TEST_FAIL("%s: stats prometheus has no tickslab_store* sample for %s", modes[mi],
                slotted_sample ? "dynamic" : "slotted");
    free(prom);
    wire_finish(&w);
    stop_cleanly(&d);
  }
  for (int s = 0; s < 40; s++) free(syms[s]);
}

TEST(undeclared_field_stats_count_ticks_exactly_in_fallback_mode) {
  struct tks_daemon d;
  start_mode(&d, "fallback");
  struct wire w;
  wire_init(&w);
  uint64_t n_exch = 0, n_seq = 0, n_note = 0, n_dyn = 0;
  for (int i = 0; i < 1000; i++) {
    struct xfield x[3];
    size_t nx = 0;
    if (i % 10 < 3) x[nx++] = (struct xfield)XSTR("exchange", i % 2 ? "XNAS" : "ARCA"), n_exch++;
    if (i % 4 == 0) x[nx++] = (struct xfield)XINT("seq", i, NULL), n_seq++;
    if (i % 20 == 0) x[nx++] = (struct xfield)XNIL("note"), n_note++;
    n_dyn += nx > 0;
    pack_tick(&w.pk, i % 2 ? "AAPL" : "MSFT", TS0 + i, 100.0, 1, NULL, x, nx);
  }
  send_and_wait(&d, &w, 1000);
  char *t = stats_text(&d);
  ASSERT_U64_EQ(snap(t, "ticks.accepted"), 1000);
  ASSERT_U64_EQ(snap(t, "store.dynamic.ticks") + snap_opt(t, "store.overflow.ticks"), n_dyn);
  ASSERT_U64_EQ(snap(t, "undeclared.exchange.ticks"), n_exch);
  ASSERT_U64_EQ(snap(t, "undeclared.exchange.kept"), n_exch);
  ASSERT_U64_EQ(snap(t, "undeclared.exchange.rejected"), 0);
  ASSERT_U64_EQ(snap(t, "undeclared.exchange.string_bytes"), n_exch * 4);
  ASSERT(snap(t, "undeclared.exchange.cost_bytes") > 0);
  (void)snap_str(t, "undeclared.exchange.types");
  ASSERT_U64_EQ(snap(t, "undeclared.seq.ticks"), n_seq);
  ASSERT_U64_EQ(snap(t, "undeclared.seq.kept"), n_seq);
  ASSERT_U64_EQ(snap(t, "undeclared.seq.string_bytes"), 0);
  ASSERT(snap(t, "undeclared.seq.cost_bytes") > 0);
  ASSERT_U64_EQ(snap(t, "undeclared.note.ticks"), n_note);
  ASSERT_U64_EQ(snap(t, "undeclared.note.kept"), n_note);
  ASSERT_U64_EQ(snap(t, "undeclared_overflow"), 0);
  /* Declared fields are not undeclared. */
  char v[64];
  ASSERT_EQ(stats_text_lookup(t, "undeclared.ticker.ticks", v, sizeof v), -1);
  ASSERT_EQ(stats_text_lookup(t, "undeclared.price.ticks", v, sizeof v), -1);
  /* What the fields cost is part of what the dynamic objects cost. */
  uint64_t cost = snap(t, "undeclared.exchange.cost_bytes") + snap(t, "undeclared.seq.cost_bytes") +
                  snap(t, "undeclared.note.cost_bytes");
  uint64_t whole = snap(t, "store.dynamic.bytes") + snap_opt(t, "store.overflow.bytes");
  if (cost > whole)
    TEST_FAIL("undeclared cost_bytes sum %llu > store.dynamic.bytes + store.overflow.bytes %llu",
              (unsigned long long)cost, (unsigned long long)whole);
  free(t);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(undeclared_field_stats_count_rejections_in_slotted_mode) {
  struct tks_daemon d;
  start_mode(&d, "slotted");
  struct wire w;
  wire_init(&w);
  for (int i = 0; i < 100; i++) {
    struct xfield x[] = {XSTR("venue", "XNAS")};
    pack_tick(&w.pk, "AAPL", TS0 + i, 100.0, 1, NULL, x, i % 5 == 0);
  }
  send_and_wait(&d, &w, 100);
  char *t = stats_text(&d);
  ASSERT_U64_EQ(snap(t, "ticks.accepted"), 80);
  ASSERT_U64_EQ(snap(t, "ticks.rejected_by_reason.unknown_field"), 20);
  ASSERT_U64_EQ(snap(t, "undeclared.venue.ticks"), 20);
  ASSERT_U64_EQ(snap(t, "undeclared.venue.rejected"), 20);
  ASSERT_U64_EQ(snap(t, "undeclared.venue.kept"), 0);
  ASSERT_U64_EQ(snap(t, "store.dynamic.ticks"), 0);
  free(t);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(advice_names_a_frequent_undeclared_field) {
  struct tks_daemon d;
  start_mode(&d, "fallback");
  struct wire w;
  wire_init(&w);
  static const char *const venues[] = {"XNAS", "ARCA", "BATS", "IEXG"};
  for (int i = 0; i < 2000; i++) {
    struct xfield x[] = {XSTR("exchange", venues[i % 4])};
    pack_tick(&w.pk, i % 3 ? "AAPL" : "MSFT", TS0 + i, 100.0 + i % 7, 1 + i % 9, "R", x,
              i % 10 < 3);
  }
  send_and_wait(&d, &w, 2000);
  ASSERT_U64_EQ(daemon_stat(&d, "undeclared.exchange.ticks"), 600);
  char *resp = daemon_request(&d, "advice");
  if (!resp) TEST_FAIL("no answer to advice");
  if (strstr(resp, "\"error\"")) TEST_FAIL("advice: error response: %s", resp);
  bool named = false;
  unsigned lines = 0;
  char *copy = strdup(resp);
  for (char *line = copy, *nl; line && *line; line = nl ? nl + 1 : NULL) {
    nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    if (!*line) break;
    lines++;
    char *flat = json_flatten(line);
    if (!flat) TEST_FAIL("advice line is not JSON: %s", line);
    char kind[64], text[2048];
    if (stats_text_lookup(flat, "advice", kind, sizeof kind) < 0 ||
        stats_text_lookup(flat, "text", text, sizeof text) < 0)
      TEST_FAIL("advice line without \"advice\" and \"text\": %s", line);
    named |= strstr(text, "exchange") != NULL;
    free(flat);
  }
  if (!lines) TEST_FAIL("advice: no lines: \"%s\"", resp);
  if (!named) TEST_FAIL("no advice text names the field exchange (30%% of ticks):\n%s", resp);
  free(copy);
  free(resp);
  wire_finish(&w);
  stop_cleanly(&d);
}

/* ---- validation and hostile maps in dynamic and fallback modes ---- */

struct hostile {
  const char *what;
  const char *reason; /* NULL: accepted */
};

/* Packs one case of index k (unique names from tag) into w; returns what
 * it is.  Every case carries the three required fields. */
static struct hostile pack_case(struct wire *w, int k, unsigned tag) {
  msgpack_packer *pk = &w->pk;
  char name[64];
  switch (k) {
  case 0: { /* 300 fields */
    pack_required(pk, "HOST", 297);
    for (int i = 0; i < 297; i++) {
      snprintf(name, sizeof name, "h%u_%03d", tag, i);
      pk_str(pk, name);
      msgpack_pack_int64(pk, i);
    }
    return (struct hostile){"300 fields", "too_many_fields"};
  }
  case 1: { /* 65 fields: one over */
    pack_required(pk, "HOST", 62);
    for (int i = 0; i < 62; i++) {
      snprintf(name, sizeof name, "h%u_%02d", tag, i);
      pk_str(pk, name);
      msgpack_pack_int64(pk, i);
    }
    return (struct hostile){"65 fields", "too_many_fields"};
  }
  case 2: { /* a 256-byte name */
    char big[256];
    int n = snprintf(big, sizeof big, "h%u_", tag);
    memset(big + n, 'n', sizeof big - (size_t)n);
    pack_required(pk, "HOST", 1);
    pk_strn(pk, big, sizeof big);
    msgpack_pack_int64(pk, 1);
    return (struct hostile){"a 256-byte field name", "bad_value"};
  }
  case 3: { /* a 4000-byte name */
    static char big[4000];
    int n = snprintf(big, sizeof big, "h%u_", tag);
    memset(big + n, 'n', sizeof big - (size_t)n);
    pack_required(pk, "HOST", 1);
    pk_strn(pk, big, sizeof big);
    pk_str(pk, "v");
    return (struct hostile){"a 4000-byte field name", "bad_value"};
  }
  case 4: /* a map as a value */
    snprintf(name, sizeof name, "h%u_map", tag);
    pack_required(pk, "HOST", 1);
    pk_str(pk, name);
    msgpack_pack_map(pk, 2);
    pk_str(pk, "a");
    msgpack_pack_int64(pk, 1);
    pk_str(pk, "b");
    msgpack_pack_map(pk, 0);
    return (struct hostile){"a nested map as a value", "bad_type"};
  case 5: /* an array as a value */
    snprintf(name, sizeof name, "h%u_arr", tag);
    pack_required(pk, "HOST", 1);
    pk_str(pk, name);
    msgpack_pack_array(pk, 3);
    msgpack_pack_int64(pk, 1);
    msgpack_pack_int64(pk, 2);
    msgpack_pack_int64(pk, 3);
    return (struct hostile){"an array as a value", "bad_type"};
  case 6: /* bin */
    snprintf(name, sizeof name, "h%u_bin", tag);
    pack_required(pk, "HOST", 1);
    pk_str(pk, name);
    msgpack_pack_bin(pk, 4);
    msgpack_pack_bin_body(pk, "\x00\x01\x02\x03", 4);
    return (struct hostile){"a bin value", "bad_type"};
  case 7: /* ext */
    snprintf(name, sizeof name, "h%u_ext", tag);
    pack_required(pk, "HOST", 1);
    pk_str(pk, name);
    msgpack_pack_ext(pk, 4, 5);
    msgpack_pack_ext_body(pk, "abcd", 4);
    return (struct hostile){"an ext value", "bad_type"};
  case 8: /* the same undeclared key twice */
    snprintf(name, sizeof name, "h%u_dup", tag);
    pack_required(pk, "HOST", 2);
    pk_str(pk, name);
    msgpack_pack_int64(pk, 1);
    pk_str(pk, name);
    msgpack_pack_int64(pk, 2);
    return (struct hostile){"an undeclared key twice", "duplicate_field"};
  case 9: /* a declared key twice, beside an undeclared one */
    snprintf(name, sizeof name, "h%u_x", tag);
    pack_required(pk, "HOST", 2);
    pk_str(pk, name);
    msgpack_pack_int64(pk, 1);
    pk_str(pk, "price");
    msgpack_pack_double(pk, 2.0);
    return (struct hostile){"a declared key twice", "duplicate_field"};
  case 10: /* an int key */
    pack_required(pk, "HOST", 1);
    msgpack_pack_int64(pk, (int64_t)tag);
    pk_str(pk, "x");
    return (struct hostile){"an int key", "bad_type"};
  case 11: /* a nil key */
    pack_required(pk, "HOST", 1);
    msgpack_pack_nil(pk);
    pk_str(pk, "x");
    return (struct hostile){"a nil key", "bad_type"};
  case 12: /* a map key */
    pack_required(pk, "HOST", 1);
    msgpack_pack_map(pk, 1);
    pk_str(pk, "k");
    msgpack_pack_int64(pk, (int64_t)tag);
    pk_str(pk, "x");
    return (struct hostile){"a map key", "bad_type"};
  case 13: /* a bin key */
    snprintf(name, sizeof name, "h%u_binkey", tag);
    pack_required(pk, "HOST", 1);
    msgpack_pack_bin(pk, strlen(name));
    msgpack_pack_bin_body(pk, name, strlen(name));
    pk_str(pk, "x");
    return (struct hostile){"a bin key", "bad_type"};
  }
  return (struct hostile){NULL, NULL};
}
#define HOSTILE_CASES 14

/* Declared fields are validated as in slotted mode, extras or not. */
static struct hostile pack_declared_case(struct wire *w, int k) {
  msgpack_packer *pk = &w->pk;
  switch (k) {
  case 0: /* volume missing */
    msgpack_pack_map(pk, 3);
    pk_str(pk, "ticker");
    pk_str(pk, "BAD");
    pk_str(pk, "price");
    msgpack_pack_double(pk, 1.0);
    pk_str(pk, "exchange");
    pk_str(pk, "XNAS");
    return (struct hostile){"volume missing", "missing_field"};
  case 1: /* ticker missing, no extras */
    msgpack_pack_map(pk, 2);
    pk_str(pk, "price");
    msgpack_pack_double(pk, 1.0);
    pk_str(pk, "volume");
    msgpack_pack_int64(pk, 1);
    return (struct hostile){"ticker missing", "missing_field"};
  case 2: /* price a string */
    msgpack_pack_map(pk, 4);
    pk_str(pk, "ticker");
    pk_str(pk, "BAD");
    pk_str(pk, "price");
    pk_str(pk, "150.05");
    pk_str(pk, "volume");
    msgpack_pack_int64(pk, 1);
    pk_str(pk, "exchange");
    pk_str(pk, "XNAS");
    return (struct hostile){"price a string", "bad_type"};
  case 3: /* ts a string */
    pack_required(pk, "BAD", 2);
    pk_str(pk, "ts");
    pk_str(pk, "yesterday");
    pk_str(pk, "exchange");
    pk_str(pk, "XNAS");
    return (struct hostile){"ts a string", "bad_type"};
  case 4: /* flags an int */
    pack_required(pk, "BAD", 2);
    pk_str(pk, "flags");
    msgpack_pack_int64(pk, 3);
    pk_str(pk, "exchange");
    pk_str(pk, "XNAS");
    return (struct hostile){"flags an int", "bad_type"};
  case 5: /* volume a float */
    msgpack_pack_map(pk, 4);
    pk_str(pk, "ticker");
    pk_str(pk, "BAD");
    pk_str(pk, "price");
    msgpack_pack_double(pk, 1.0);
    pk_str(pk, "volume");
    msgpack_pack_double(pk, 1.5);
    pk_str(pk, "seq");
    msgpack_pack_int64(pk, 1);
    return (struct hostile){"volume a float", "bad_type"};
  case 6: /* empty ticker */
    pack_required(pk, "", 1);
    pk_str(pk, "exchange");
    pk_str(pk, "XNAS");
    return (struct hostile){"an empty ticker", "bad_value"};
  case 7: /* NaN price */
    msgpack_pack_map(pk, 4);
    pk_str(pk, "ticker");
    pk_str(pk, "BAD");
    pk_str(pk, "price");
    msgpack_pack_double(pk, NAN);
    pk_str(pk, "volume");
    msgpack_pack_int64(pk, 1);
    pk_str(pk, "exchange");
    pk_str(pk, "XNAS");
    return (struct hostile){"a NaN price", "bad_value"};
  }
  return (struct hostile){NULL, NULL};
}
#define DECLARED_CASES 8

static const char *const reasons[] = {
    "unknown_field",   "missing_field",    "bad_type",         "bad_value",
    "duplicate_field", "too_many_fields",  "too_many_symbols", "store_full",
    "too_large",       "too_deep",         "malformed",        "not_a_tick"};

/* Sends each case alone, between two good ticks, on one connection; each
 * must be counted under its own reason, and the stream must go on. */
static void expect_each_case(const char *mode, bool declared) {
  struct tks_daemon d;
  start_mode(&d, mode);
  int fd = daemon_connect_ingest(&d);
  struct wire w;
  wire_init(&w);
  int ncases = declared ? DECLARED_CASES : HOSTILE_CASES;
  uint64_t accepted = 0;
  for (int k = 0; k < ncases; k++) {
    char *before = stats_text(&d);
    wire_clear(&w);
    pack_tick(&w.pk, "GOOD", TS0 + 2 * k, 1.0, 1, "R", NULL, 0);
    struct hostile h = declared ? pack_declared_case(&w, k) : pack_case(&w, k, 1000 + (unsigned)k);
    pack_tick(&w.pk, "GOOD", TS0 + 2 * k + 1, 1.0, 1, "R", NULL, 0);
    wire_send(fd, &w);
    accepted += 2;
    uint64_t got = daemon_wait_stat(&d, "ticks.accepted", accepted, 10000);
    if (got != accepted)
      TEST_FAIL("%s: %s: accepted %llu, want %llu (the tick after it lost?)", mode, h.what,
                (unsigned long long)got, (unsigned long long)accepted);
    uint64_t deadline = now_ms() + 5000;
    char *after;
    for (;;) {
      after = stats_text(&d);
      if (snap(after, "ticks.rejected") > snap(before, "ticks.rejected") || now_ms() > deadline)
        break;
      free(after);
      sleep_ms(5);
    }
    /* Exactly one rejection, under the expected reason. */
    for (size_t r = 0; r < TKS_ARRAY_SIZE(reasons); r++) {
      char path[96];
      snprintf(path, sizeof path, "ticks.rejected_by_reason.%s", reasons[r]);
      uint64_t delta = snap(after, path) - snap(before, path);
      uint64_t want = !strcmp(reasons[r], h.reason);
      if (delta != want)
        TEST_FAIL("%s: %s: %s grew by %llu, want %llu", mode, h.what, path,
                  (unsigned long long)delta, (unsigned long long)want);
    }
    ASSERT_U64_EQ(snap(after, "connections.closed_on_error"), 0);
    ASSERT_U64_EQ(snap(after, "connections.current"), 1);
    free(before);
    free(after);
  }
  /* Nothing rejected was stored; a rejected tick interns no symbol. */
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.stored"), accepted);
  ASSERT_U64_EQ(daemon_stat(&d, "symbols.count"), 1);
  close(fd);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(declared_fields_are_still_validated_in_dynamic_mode) { expect_each_case("dynamic", true); }

TEST(declared_fields_are_still_validated_in_fallback_mode) { expect_each_case("fallback", true); }

TEST(hostile_maps_get_a_clear_reason_each_in_dynamic_mode) { expect_each_case("dynamic", false); }

TEST(hostile_maps_get_a_clear_reason_each_in_fallback_mode) {
  expect_each_case("fallback", false);
}

/* The limits are exact: 64 fields and a 255-byte name are kept. */
static void expect_limits_kept(const char *mode) {
  struct tks_daemon d;
  start_mode(&d, mode);
  struct wire w;
  wire_init(&w);
  pack_required(&w.pk, "LIM", 1 + 60); /* ts + 3 required + 60 extras = 64 */
  pk_str(&w.pk, "ts");
  msgpack_pack_int64(&w.pk, TS0);
  for (int i = 0; i < 60; i++) {
    char name[16];
    snprintf(name, sizeof name, "f%02d", i);
    pk_str(&w.pk, name);
    msgpack_pack_int64(&w.pk, i);
  }
  char big[256];
  memset(big, 'n', 255);
  big[255] = '\0';
  struct xfield x[] = {XSTR(big, "long name")};
  pack_tick(&w.pk, "LIM", TS0 + 1, 1.0, 1, "R", x, 1);
  send_and_wait(&d, &w, 2);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.rejected"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), 2);
  struct rows r;
  query_rows(&d, "last LIM 2", &r);
  ASSERT_EQ(r.n, 2);
  /* ts, ticker, price, volume, f00..f59; flags "" too if kept slotted */
  unsigned want_n = 64 + (flags_default_ok && !strcmp(r.row[0].key[4], "flags"));
  if (r.row[0].n != want_n)
    TEST_FAIL("the 64-field tick came back with %u fields (fields 4, 5: %s, %s), want %u: %.300s",
              r.row[0].n, r.row[0].key[4], r.row[0].key[5], want_n, r.raw);
  ASSERT_STR_EQ(r.row[0].key[want_n - 1], "f59");
  ASSERT_STR_EQ(r.row[0].val[want_n - 1], "59");
  int at = jobj_find(&r.row[1], big);
  if (at < 0) TEST_FAIL("the 255-byte field name did not come back: %s", r.raw);
  ASSERT_STR_EQ(r.row[1].val[at], "long name");
  rows_free(&r);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST(sixty_four_fields_and_a_255_byte_name_are_kept_in_dynamic_mode) {
  expect_limits_kept("dynamic");
}

TEST(sixty_four_fields_and_a_255_byte_name_are_kept_in_fallback_mode) {
  expect_limits_kept("fallback");
}

/* 10,000 hostile ticks, every one with names never seen before: all
 * rejected, and resident memory grows by less than 16 MiB. */
static void expect_memory_bounded(const char *mode) {
  struct tks_daemon d;
  start_mode(&d, mode);
  uint64_t rss0 = daemon_stat(&d, "memory.rss_bytes");
  uint64_t names0 = daemon_stat(&d, "fields.names.count");
  int fd = daemon_connect_ingest(&d);
  struct wire w;
  wire_init(&w);
  uint64_t sent = 0, bytes = 0;
  for (unsigned i = 0; i < 10000; i++) {
    static const int heavy[] = {0, 3, 4, 8, 2, 12, 5, 13};
    pack_case(&w, heavy[i % TKS_ARRAY_SIZE(heavy)], i);
    sent++;
    if (w.sb.size > 1024 * 1024 || i == 9999) {
      wire_send(fd, &w);
      bytes += w.sb.size;
      wire_clear(&w);
    }
  }
  uint64_t deadline = now_ms() + 60000, taken;
  while ((taken = daemon_stat(&d, "ticks.rejected") + daemon_stat(&d, "ticks.accepted")) < sent &&
         now_ms() < deadline)
    sleep_ms(20);
  ASSERT_U64_EQ(taken, sent);
  char *t = stats_text(&d);
  ASSERT_U64_EQ(snap(t, "ticks.accepted"), 0);
  ASSERT_U64_EQ(snap(t, "ticks.rejected"), sent);
  ASSERT_U64_EQ(snap(t, "connections.closed_on_error"), 0);
  uint64_t rss1 = snap(t, "memory.rss_bytes"), names1 = snap(t, "fields.names.count");
  printf("  %s: %llu hostile ticks (%llu bytes): rss %+lld bytes, "
         "fields.names.count %llu -> %llu\n",
         mode, (unsigned long long)sent, (unsigned long long)bytes, (long long)(rss1 - rss0),
         (unsigned long long)names0, (unsigned long long)names1);
  if (rss1 > rss0 + 16 * MIB)
    TEST_FAIL("%s: rss grew from %llu to %llu bytes over %llu hostile ticks", mode,
              (unsigned long long)rss0, (unsigned long long)rss1, (unsigned long long)sent);
  if (names1 >= names0 + 10000)
    TEST_FAIL("%s: fields.names.count grew from %llu to %llu on rejected ticks", mode,
              (unsigned long long)names0, (unsigned long long)names1);
  free(t);
  /* Still serving. */
  wire_clear(&w);
  struct xfield x[] = {XSTR("exchange", "XNAS")};
  pack_tick(&w.pk, "OK", TS0, 1.0, 1, NULL, x, 1);
  wire_send(fd, &w);
  daemon_expect_stat(&d, "ticks.accepted", 1, 10000);
  close(fd);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST_TIMEOUT(ten_thousand_hostile_ticks_leave_memory_bounded_in_dynamic_mode, 120) {
  expect_memory_bounded("dynamic");
}

TEST_TIMEOUT(ten_thousand_hostile_ticks_leave_memory_bounded_in_fallback_mode, 120) {
  expect_memory_bounded("fallback");
}

/* 20,000 ticks, each with an undeclared name never seen before: the name
 * table stops growing, the overflow is counted, the daemon goes on. */
static void expect_names_bounded(const char *mode) {
  struct tks_daemon d;
  start_mode(&d, mode);
  uint64_t rss0 = daemon_stat(&d, "memory.rss_bytes");
  struct wire w;
  wire_init(&w);
  const unsigned n = 20000;
  for (unsigned i = 0; i < n; i++) {
    char name[32];
    snprintf(name, sizeof name, "field_%05u", i);
    struct xfield x[] = {XINT(name, (int64_t)i, NULL)};
    pack_tick(&w.pk, i % 2 ? "AAPL" : "MSFT", TS0 + i, 10.0, 1, NULL, x, 1);
  }
  send_and_wait(&d, &w, n);
  char *t = stats_text(&d);
  uint64_t acc = snap(t, "ticks.accepted"), names = snap(t, "fields.names.count");
  uint64_t overflow = snap(t, "undeclared_overflow"), rss1 = snap(t, "memory.rss_bytes");
  printf("  %s: %u distinct names: accepted %llu, rejected %llu, fields.names.count %llu, "
         "fields.names.bytes %llu, undeclared_overflow %llu, rss %+lld bytes\n",
         mode, n, (unsigned long long)acc, (unsigned long long)snap(t, "ticks.rejected"),
         (unsigned long long)names, (unsigned long long)snap(t, "fields.names.bytes"),
         (unsigned long long)overflow, (long long)(rss1 - rss0));
  ASSERT_U64_EQ(acc + snap(t, "ticks.rejected"), n);
  ASSERT_U64_EQ(snap(t, "ticks.stored"), acc);
  if (names >= n)
    TEST_FAIL("%s: fields.names.count is %llu: unbounded", mode, (unsigned long long)names);
  ASSERT(overflow > 0);
  if (rss1 > rss0 + 16 * MIB)
    TEST_FAIL("%s: rss grew from %llu to %llu bytes", mode, (unsigned long long)rss0,
              (unsigned long long)rss1);
  /* The stats stay bounded too: not one line per name. */
  unsigned lines = 0;
  for (const char *p = t; (p = strstr(p, "\nundeclared.")); p++) lines++;
  if (lines >= n) TEST_FAIL("%s: %u undeclared.* lines in stats text", mode, lines);
  free(t);
  char *js = daemon_request(&d, "stats");
  ASSERT(js);
  char *flat = json_flatten(js);
  if (!flat) TEST_FAIL("stats is not valid JSON after %u names", n);
  free(flat);
  free(js);
  /* A known name still works, and so does a plain tick. */
  wire_clear(&w);
  struct xfield x[] = {XINT("field_00000", -1, "-1")};
  pack_tick(&w.pk, "OK", TS0, 1.0, 1, NULL, x, 1);
  pack_tick(&w.pk, "OK", TS0 + 1, 1.0, 1, NULL, NULL, 0);
  send_and_wait(&d, &w, 2);
  ASSERT_U64_EQ(daemon_stat(&d, "ticks.accepted"), acc + 2);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST_TIMEOUT(twenty_thousand_distinct_undeclared_names_keep_the_name_table_bounded_in_fallback_mode,
             120) {
  expect_names_bounded("fallback");
}

TEST_TIMEOUT(twenty_thousand_distinct_undeclared_names_keep_the_name_table_bounded_in_dynamic_mode,
             120) {
  expect_names_bounded("dynamic");
}

/* ---- hostile strings: UTF-8, names nobody can query, ticks too big ---- */

/* A tick of required fields with raw bytes as ticker, then extra (key,
 * string value) pairs as raw bytes (NULL key: none). */
static void pack_raw(msgpack_packer *pk, const char *ticker, size_t tlen, const char *key,
                     size_t klen, const char *val, size_t vlen) {
  msgpack_pack_map(pk, 3 + (key != NULL));
  pk_str(pk, "ticker");
  pk_strn(pk, ticker, tlen);
  pk_str(pk, "price");
  msgpack_pack_double(pk, 1.5);
  pk_str(pk, "volume");
  msgpack_pack_int64(pk, 1);
  if (key) {
    pk_strn(pk, key, klen);
    pk_strn(pk, val, vlen);
  }
}

/* Well-formed exposition text: "# HELP name text", "# TYPE name type", or
 * name{label="escaped",...} value, all of it valid UTF-8. */
static void expect_prometheus_well_formed(const char *text) {
  ASSERT(tks_utf8_valid(text, strlen(text)));
  for (const char *l = text; *l;) {
    const char *end = strchr(l, '\n');
    ASSERT(end != NULL);
    if (end == l) break; /* the response's closing empty line */
    const char *p = l;
    if (*p == '#') {
      ASSERT(!strncmp(p, "# HELP tickslab_", 16) || !strncmp(p, "# TYPE tickslab_", 16) ||
             !strncmp(p, "# HELP process_", 15) || !strncmp(p, "# TYPE process_", 15));
      l = end + 1;
      continue;
    }
    ASSERT(!strncmp(p, "tickslab_", 9) || !strncmp(p, "process_", 8));
    while (isalnum((unsigned char)*p) || *p == '_' || *p == ':') p++;
    if (*p == '{') {
      p++;
      for (;;) {
        const char *n = p;
        while (isalnum((unsigned char)*p) || *p == '_') p++;
        if (p == n || p[0] != '=' || p[1] != '"')
          TEST_FAIL("bad label in: %.*s", (int)(end - l), l);
        for (p += 2; *p != '"'; p++) {
          if (p >= end) TEST_FAIL("unterminated label in: %.*s", (int)(end - l), l);
          if (*p == '\\') {
            p++;
            if (*p != '\\' && *p != '"' && *p != 'n')
              TEST_FAIL("bad escape in: %.*s", (int)(end - l), l);
          }
        }
        p++;
        if (*p == ',') {
          p++;
          continue;
        }
        if (*p != '}') TEST_FAIL("bad labels in: %.*s", (int)(end - l), l);
        p++;
        break;
      }
    }
    if (*p != ' ') TEST_FAIL("no value in: %.*s", (int)(end - l), l);
    char *num_end;
    strtod(p + 1, &num_end);
    if (num_end != end || num_end == p + 1) TEST_FAIL("bad value in: %.*s", (int)(end - l), l);
    l = end + 1;
  }
}

/* Every line of `stats text` is "path value" with the path in [A-Za-z0-9_.]. */
static void expect_text_paths_clean(const char *text) {
  for (const char *l = text; *l && *l != '\n';) {
    const char *p = l;
    while (isalnum((unsigned char)*p) || *p == '_' || *p == '.') p++;
    const char *end = strchr(l, '\n');
    ASSERT(end != NULL);
    if (p == l || *p != ' ') TEST_FAIL("bad path in: %.*s", (int)(end - l), l);
    l = end + 1;
  }
}

/* `stats` parses as JSON, `stats prometheus` and `stats text` are well
 * formed, `symbols` is one JSON object a line; returns the flattened
 * stats (malloc'd). */
static char *expect_answers_well_formed(const struct tks_daemon *d) {
  char *js = daemon_request(d, "stats");
  ASSERT(js != NULL);
  ASSERT(tks_utf8_valid(js, strlen(js)));
  char *flat = json_flatten(js);
  if (!flat) TEST_FAIL("stats is not JSON: %s", js);
  free(js);
  char *prom = daemon_request(d, "stats prometheus");
  ASSERT(prom != NULL);
  expect_prometheus_well_formed(prom);
  free(prom);
  char *text = daemon_request(d, "stats text");
  ASSERT(text != NULL);
  expect_text_paths_clean(text);
  free(text);
  char *sym = daemon_request(d, "symbols");
  ASSERT(sym != NULL);
  ASSERT(tks_utf8_valid(sym, strlen(sym)));
  for (char *l = sym; *l && *l != '\n';) {
    char *end = strchr(l, '\n');
    *end = '\0';
    char *f = json_flatten(l);
    if (!f) TEST_FAIL("a symbols line is not JSON: %s", l);
    free(f);
    l = end + 1;
  }
  free(sym);
  return flat;
}

TEST_TIMEOUT(
    strings_not_utf8_and_unqueryable_tickers_are_refused_and_every_answer_stays_well_formed, 60) {
  struct tks_daemon d;
  start_mode(&d, "fallback");
  struct wire w;
  wire_init(&w);
  pack_raw(&w.pk, "AAPL", 4, NULL, 0, NULL, 0);
  pack_raw(&w.pk, "BAD\xff\xfe", 5, NULL, 0, NULL, 0);    /* bad_value */
  pack_raw(&w.pk, "BRK B", 5, NULL, 0, NULL, 0);          /* bad_value: a space */
  pack_raw(&w.pk, "AAPL\nX", 6, NULL, 0, NULL, 0);        /* bad_value: a newline */
  pack_raw(&w.pk, "AAPL", 4, "flags", 5, "R\xc0\xaf", 3); /* bad_value: overlong */
  pack_raw(&w.pk, "AAPL", 4,
           "ex\xff"
           "ch",
           5, "XNAS", 4);                                          /* bad_key */
  pack_raw(&w.pk, "AAPL", 4, "exch", 4, "XN\xed\xa0\x80", 5);      /* bad_value: surrogate */
  pack_raw(&w.pk, "AAPL", 4, "venue name", 10, "X N", 3);          /* kept */
  pack_raw(&w.pk, "AAPL", 4, "q\"uo\\te", 7, "v", 1);              /* kept */
  pack_raw(&w.pk, "N\xc3\x96K", 4, "prix\xe2\x82\xac", 7, "1", 1); /* kept */
  send_and_wait(&d, &w, 10);
  for (int round = 0; round < 2; round++) {
    char *t = expect_answers_well_formed(&d);
    ASSERT_U64_EQ(snap(t, "ticks.rejected_by_reason.bad_value"), round ? 0 : 5);
    ASSERT_U64_EQ(snap(t, "ticks.rejected_by_reason.bad_key"), 0 + (round ? 0 : 1));
    ASSERT_U64_EQ(snap(t, "ticks.stored"), 4);
    ASSERT_U64_EQ(snap(t, "symbols.count"), 2);
    ASSERT_U64_EQ(snap(t, "fields.names.count"), 7);         /* ticker, price, volume, ts + 3 */
    ASSERT_U64_EQ(snap(t, "undeclared.venue name.kept"), 1); /* replay counts it again */
    free(t);
    char *text = stats_text(&d);
    if (!round) ASSERT_CONTAINS(text, "\nundeclared.venue_name.kept 1\n");
    ASSERT_NOT_CONTAINS(text, "undeclared.ex");
    free(text);
    char *prom = daemon_request(&d, "stats prometheus");
    if (!round) ASSERT_CONTAINS(prom, "{field=\"q\\\"uo\\\\te\"} 1\n");
    free(prom);
    char *sym = daemon_request(&d, "symbols");
    ASSERT_CONTAINS(sym, "\"symbol\":\"AAPL\"");
    ASSERT_CONTAINS(sym, "\"symbol\":\"N\xc3\x96K\"");
    ASSERT_NOT_CONTAINS(sym, "BAD");
    ASSERT_NOT_CONTAINS(sym, "BRK");
    free(sym);
    char *last = daemon_request(&d, "last BRK");
    ASSERT_CONTAINS(last, "unknown symbol");
    free(last);
    /* The same after a restart: nothing bad was journaled. */
    ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
    if (!round) {
      daemon_spawn(&d, NULL);
      daemon_wait_ready(&d);
      ASSERT_U64_EQ(daemon_stat(&d, "journal.replay_rejected"), 0);
    }
  }
  char *log = daemon_log(&d);
  ASSERT(tks_utf8_valid(log, strlen(log)));
  ASSERT_CONTAINS(log, "rejected: bad_key ex\\xffch");
  ASSERT_NOT_CONTAINS(log, "\nX");
  free(log);
  daemon_cleanup(&d);
  wire_finish(&w);
}

TEST(a_rejected_ticks_key_not_utf8_never_reaches_the_usage_table_in_slotted_mode) {
  struct tks_daemon d;
  start_mode(&d, "slotted");
  struct wire w;
  wire_init(&w);
  pack_raw(&w.pk, "AAPL", 4,
           "ex\xff"
           "ch",
           5, "XNAS", 4);
  pack_raw(&w.pk, "AAPL", 4, "line\nbreak", 10, "XNAS", 4);
  pack_raw(&w.pk, "AAPL", 4, "venue name", 10, "XNAS", 4);
  send_and_wait(&d, &w, 3);
  char *t = expect_answers_well_formed(&d);
  ASSERT_U64_EQ(snap(t, "ticks.rejected_by_reason.bad_key"), 2);
  ASSERT_U64_EQ(snap(t, "ticks.rejected_by_reason.unknown_field"), 1);
  ASSERT_U64_EQ(snap(t, "undeclared.venue name.rejected"), 1);
  ASSERT_U64_EQ(snap(t, "symbols.count"), 0);
  free(t);
  char *text = stats_text(&d);
  ASSERT_NOT_CONTAINS(text, "undeclared.ex");
  ASSERT_NOT_CONTAINS(text, "undeclared.line");
  free(text);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST_TIMEOUT(a_tick_too_big_for_a_slab_page_adds_nothing_to_any_table, 60) {
  struct tks_daemon d;
  daemon_start_with(&d, "  max_message_bytes: 131072\n",
                    "store:\n  mode: fallback\n  page_size: 64KiB\n");
  static char big[40000];
  memset(big, 'v', sizeof big);
  struct wire w;
  wire_init(&w);
  pack_raw(&w.pk, "AAPL", 4, NULL, 0, NULL, 0);
  send_and_wait(&d, &w, 1);
  char *before = daemon_request(&d, "symbols");
  wire_clear(&w);
  msgpack_pack_map(&w.pk, 5);
  pk_str(&w.pk, "ticker");
  pk_str(&w.pk, "HUGE");
  pk_str(&w.pk, "price");
  msgpack_pack_double(&w.pk, 1);
  pk_str(&w.pk, "volume");
  msgpack_pack_int64(&w.pk, 1);
  pk_str(&w.pk, "big_a");
  pk_strn(&w.pk, big, sizeof big);
  pk_str(&w.pk, "big_b");
  pk_strn(&w.pk, big, sizeof big);
  send_and_wait(&d, &w, 1);
  char *t = expect_answers_well_formed(&d);
  ASSERT_U64_EQ(snap(t, "ticks.rejected_by_reason.bad_value"), 1);
  ASSERT_U64_EQ(snap(t, "symbols.count"), 1);
  ASSERT_U64_EQ(snap(t, "fields.names.count"), 0);
  free(t);
  char *after = daemon_request(&d, "symbols");
  ASSERT_STR_EQ(after, before);
  char *last = daemon_request(&d, "last HUGE");
  ASSERT_CONTAINS(last, "unknown symbol");
  ASSERT(log_has_line_with(&d, "rejected: bad_value", "slab page"));
  free(last);
  free(after);
  free(before);
  wire_finish(&w);
  stop_cleanly(&d);
}

TEST_MAIN()

/*
 * Reading ticks back on the control socket: `last SYMBOL [N]`,
 * `range SYMBOL FROM TO [LIMIT]`, `symbols [LIMIT]`, and the schema advice
 * (`advice`).  Ticks are rendered one JSON object a line straight from the
 * store's visitor (tks_tick_json), slotted records, records with an
 * overflow map and dynamic objects alike, merged in ts order.
 * Every answer is bounded by query.max_rows; a range that holds more is
 * paged (a final {"more":true,"next_from":...} line) at a ts boundary, so
 * that no run of equal timestamps straddles two pages.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "advice.h"
#include "archive.h"
#include "daemon.h"

#define MAX_WORDS 7 /* the longest request has 5 and ts=; one more to say "too many" */
#define ECHO_MAX 64 /* bytes of a bad argument quoted back in an error */
#define TIME_HINT "want ns since the epoch or ISO-8601 like 2026-11-25T14:30:00Z"

#define USAGE_LAST "last SYMBOL [N]"
#define USAGE_RANGE "range SYMBOL FROM TO [LIMIT]"
#define USAGE_SYMBOLS "symbols [LIMIT]"
#define USAGE_ADVICE "advice"
#define USAGE_EXPORT "export SYMBOL|* FROM TO [format=msgpack|csv|jsonl] [ts=ns|iso|string]"

struct word {
  const char *p;
  size_t len;
};

/* Splits line at runs of spaces and tabs.  Returns the number of words
 * found, at most max + 1 (the extra one counted, not stored). */
static unsigned split_words(const char *line, struct word *w, unsigned max) {
  unsigned n = 0;
  const char *p = line;
  for (;;) {
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) break;
    const char *start = p;
    while (*p && *p != ' ' && *p != '\t') p++;
    if (n < max) w[n] = (struct word){start, (size_t)(p - start)};
    if (++n > max) break;
  }
  return n;
}

static bool word_is(const struct word *w, const char *s) {
  return w->len == strlen(s) && memcmp(w->p, s, w->len) == 0;
}

/* Copies a word into buf (NUL-terminated).  False if it does not fit. */
static bool word_copy(const struct word *w, char *buf, size_t n) {
  if (w->len >= n) return false;
  memcpy(buf, w->p, w->len);
  buf[w->len] = '\0';
  return true;
}

/* Drops whatever was appended since start and answers one error line. */
static void answer_error(struct tks_buf *out, size_t start, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void answer_error(struct tks_buf *out, size_t start, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t len = n < 0 ? 0 : (size_t)n >= sizeof msg ? sizeof msg - 1 : (size_t)n;
  out->len = start;
  if (out->data) out->data[start] = '\0';
  if (tks_buf_puts(out, "{\"error\":") || tks_buf_json_string(out, msg, len) ||
      tks_buf_puts(out, "}\n")) {
    /* No memory even for that: answer a constant line if we can. */
    out->len = start;
    if (out->data) out->data[start] = '\0';
    tks_buf_puts(out, "{\"error\":\"out of memory\"}\n");
  }
}

/* Answers an error and leaves the request handler. */
#define FAIL(...)                          \
  do {                                     \
    answer_error(out, start, __VA_ARGS__); \
    return;                                \
  } while (0)

/* A bad argument quoted back: at most ECHO_MAX bytes, then "...". */
struct echo {
  char s[ECHO_MAX + 4];
};
static struct echo echo(const struct word *w) {
  struct echo e;
  size_t n = w->len > ECHO_MAX ? ECHO_MAX : w->len;
  memcpy(e.s, w->p, n);
  strcpy(e.s + n, w->len > ECHO_MAX ? "..." : "");
  return e;
}

/* A row count: a whole number from 1 up. */
static int parse_count(const struct word *w, uint64_t *out) {
  char buf[32];
  uint64_t v;
  if (!word_copy(w, buf, sizeof buf) || tks_parse_u64(buf, &v) != 0 || v == 0) return -EINVAL;
  *out = v;
  return 0;
}

/* Looks the symbol up without interning it: its id in memory (0 when only
 * the archive has it) and whether the archive has it.  Returns 0, or
 * answers the error and returns -1. */
static int find_symbol(struct tks_server *srv, const struct word *w, struct tks_buf *out,
                       size_t start, uint32_t *id, bool *archived) {
  if (w->len > TKS_SYMBOL_MAX_LEN) {
    answer_error(out, start, "symbol longer than %d bytes (%zu)", TKS_SYMBOL_MAX_LEN, w->len);
    return -1;
  }
  /* In a fleet, a symbol of a partition another node has is refused: what
   * this node holds of it (from before a rebalance) is not the whole. */
  char why[512];
  if (tks_kafka_source_check(srv, w->p, w->len, why, sizeof why)) {
    answer_error(out, start, "%s", why);
    return -1;
  }
  if (tks_symtab_lookup(srv->symbols, w->p, w->len, id) != 0) *id = 0;
  struct tks_archive_view v;
  struct tks_archive *a = tks_archiver_reader(srv, &v);
  struct tks_archive_symbol_info ai;
  *archived = a && tks_archive_symbol(a, w->p, w->len, &ai) == 0;
  if (*id == 0 && !*archived) {
    answer_error(out, start, "unknown symbol '%.*s'", (int)w->len, w->p);
    return -1;
  }
  return 0;
}

static int parse_time_word(const struct word *w, int64_t *ns, struct tks_buf *out, size_t start) {
  char buf[64];
  int r = word_copy(w, buf, sizeof buf) ? tks_parse_time(buf, ns) : -EINVAL;
  if (r == 0) return 0;
  /* Name the usual mistake: a date-time without its zone. */
  int64_t ignored;
  if (r == -EINVAL && w->len + 1 < sizeof buf && w->len > 10) {
    char zoned[sizeof buf + 1];
    snprintf(zoned, sizeof zoned, "%.*sZ", (int)w->len, w->p);
    if (tks_parse_time(zoned, &ignored) == 0) {
      answer_error(out, start, "bad time '%s': no time zone (add Z for UTC)", echo(w).s);
      return -1;
    }
  }
  if (r == -ERANGE)
    answer_error(out, start,
                 "bad time '%s': out of range (a real date and time, from 1677-09-21 to "
                 "2262-04-11)",
                 echo(w).s);
  else
    answer_error(out, start, "bad time '%s' (" TIME_HINT ")", echo(w).s);
  return -1;
}

/* ---- rendering ticks ---- */

struct emit {
  struct tks_server *srv;
  struct tks_buf *out;
  enum tks_ts_format tf; /* the ts field's format (the request's ts= word) */
  uint32_t ts_name; /* the ts field's id in srv->names; 0 if no object can hold it */
  uint32_t ts_off;  /* the ts field's offset in a record */
  /* range paging: */
  uint64_t limit; /* rows before only ties of the last row are added */
  uint64_t rows;
  int64_t last_ts;
  bool more;
  int64_t next_from;
  int err;
};

static void emit_init(struct emit *e, struct tks_server *srv, struct tks_buf *out,
                      enum tks_ts_format tf) {
  memset(e, 0, sizeof *e);
  e->srv = srv;
  e->out = out;
  e->tf = tf;
  const struct tks_field *f = &srv->cfg.schema.fields[srv->cfg.schema.ts_field];
  e->ts_off = f->offset;
  uint32_t id;
  if (srv->names && tks_symtab_lookup(srv->names, f->name, strlen(f->name), &id) == 0)
    e->ts_name = id;
}

/* The ts of a tick: the record's, or (a whole dynamic object) the
 * object's ts field, which the decoder always fills.  An object without
 * one counts as a tie of the row before, so that paging may return more
 * rows but never skips one. */
static int64_t tick_ts(const struct emit *e, const void *record, const struct tks_dynobj *obj) {
  int64_t ts;
  if (record) {
    memcpy(&ts, (const char *)record + e->ts_off, sizeof ts);
    return ts;
  }
  const struct tks_dyn_slot *s = e->ts_name ? tks_dynobj_get(obj, e->ts_name) : NULL;
  return s && s->type == TKS_V_INT ? s->v.i : e->last_ts;
}

static int render(struct emit *e, const void *record, const struct tks_dynobj *obj) {
  struct tks_server *srv = e->srv;
  int r = tks_tick_json_as(&srv->cfg.schema, srv->names, srv->symbols, srv->strings, record, obj,
                           e->tf, e->out);
  if (r == 0) r = tks_buf_putc(e->out, '\n');
  if (r) e->err = r;
  return r;
}

static int visit_all(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct emit *e = ctx;
  if (render(e, record, obj)) return 1;
  e->rows++;
  return 0;
}

/* Range: `limit` rows, then the rows tied with the last one, then stop at
 * the first later row, whose ts is where the next page starts. */
static int visit_page(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct emit *e = ctx;
  int64_t ts = tick_ts(e, record, obj);
  if (e->rows >= e->limit && ts != e->last_ts) {
    e->more = true;
    e->next_from = ts;
    return 1;
  }
  if (render(e, record, obj)) return 1;
  e->rows++;
  e->last_ts = ts;
  return 0;
}

/* ---- the requests ---- */

/* Rendered rows of one source, for merging: each row's ts and where its
 * line starts in buf. */
struct rows {
  struct emit e; /* renders into buf */
  struct tks_buf buf;
  int64_t *ts;
  size_t *at;
  size_t n, cap;
};

static int visit_row(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct rows *r = ctx;
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    int64_t *ts = realloc(r->ts, cap * sizeof *ts);
    if (ts) r->ts = ts;
    size_t *at = ts ? realloc(r->at, cap * sizeof *at) : NULL;
    if (!at) {
      r->e.err = -ENOMEM;
      return 1;
    }
    r->at = at;
    r->cap = cap;
  }
  r->ts[r->n] = tick_ts(&r->e, record, obj);
  r->at[r->n] = r->buf.len;
  if (render(&r->e, record, obj)) return 1;
  r->e.last_ts = r->ts[r->n++];
  return 0;
}

static void rows_init(struct rows *r, struct tks_server *srv, enum tks_ts_format tf) {
  memset(r, 0, sizeof *r);
  tks_buf_init(&r->buf);
  emit_init(&r->e, srv, &r->buf, tf);
}

static void rows_finish(struct rows *r) {
  tks_buf_finish(&r->buf);
  free(r->ts);
  free(r->at);
}

static int rows_put(struct tks_buf *out, const struct rows *r, size_t i) {
  size_t end = i + 1 < r->n ? r->at[i + 1] : r->buf.len;
  return tks_buf_append(out, r->buf.data + r->at[i], end - r->at[i]);
}

static void req_last(struct tks_server *srv, const struct word *w, unsigned n, struct tks_buf *out,
                     size_t start, enum tks_ts_format tf) {
  if (n < 2) FAIL("missing symbol (usage: " USAGE_LAST ")");
  if (n > 3) FAIL("too many arguments (usage: " USAGE_LAST ")");
  uint64_t want = 10;
  if (n == 3 && parse_count(&w[2], &want))
    FAIL("bad count '%s' (want a whole number, 1 or more)", echo(&w[2]).s);
  uint32_t id;
  bool archived;
  if (find_symbol(srv, &w[1], out, start, &id, &archived)) return;
  uint64_t max = srv->cfg.query.max_rows;
  bool clamped = want > max;
  if (clamped) want = max;
  struct tks_series_info info = {0};
  bool in_memory = id && tks_store_series(srv->store, id, &info) == 0;
  uint64_t total = in_memory ? info.count : 0;
  if (!archived) {
    struct emit e;
    emit_init(&e, srv, out, tf);
    if (in_memory) tks_store_last(srv->store, id, want, visit_all, &e);
    if (e.err) FAIL("out of memory");
  } else {
    /* The newest `want` of memory and of the archive, merged by ts (the
     * archive's first among equal ts), and the newest `want` of those. */
    struct tks_archive_view v;
    struct tks_archive *a = tks_archiver_reader(srv, &v);
    struct tks_archive_symbol_info ai;
    if (tks_archive_symbol(a, w[1].p, w[1].len, &ai) == 0) total += ai.count;
    struct rows m, ar;
    rows_init(&m, srv, tf);
    rows_init(&ar, srv, tf);
    if (in_memory) tks_store_last(srv->store, id, want, visit_row, &m);
    int rc = tks_archive_last(a, &v, w[1].p, w[1].len, want, visit_row, &ar, NULL);
    int err = m.e.err ? m.e.err : ar.e.err;
    if (rc == 0 && err == 0) {
      /* Count back from the newest end, then write in order. */
      size_t i = m.n, j = ar.n;
      uint64_t k = 0;
      while (k < want && (i || j)) {
        if (j && (!i || ar.ts[j - 1] > m.ts[i - 1]))
          j--;
        else
          i--;
        k++;
      }
      while ((i < m.n || j < ar.n) && err == 0) {
        if (j < ar.n && (i == m.n || ar.ts[j] <= m.ts[i]))
          err = rows_put(out, &ar, j++);
        else
          err = rows_put(out, &m, i++);
      }
    }
    rows_finish(&m);
    rows_finish(&ar);
    if (rc) FAIL("archive: %s", tks_archive_error(a)[0] ? tks_archive_error(a) : strerror(-rc));
    if (err) FAIL("out of memory");
  }
  /* Say so only when rows were held back. */
  if (clamped && total > want &&
      tks_buf_printf(out, "{\"truncated\":true,\"max_rows\":%" PRIu64 "}\n", max))
    answer_error(out, start, "out of memory");
}

/* A range over memory and the archive: the store's visitor renders each of
 * its ticks after the archive's up to the same ts. */
struct merge {
  struct emit *e;
  struct tks_archive_cursor *c;
  int err; /* the cursor's */
};

/* The archive's ticks with ts <= upto.  1 when the page (or an error) stops it. */
static int drain(struct merge *m, int64_t upto) {
  for (;;) {
    int64_t ts;
    int r = tks_archive_cursor_peek(m->c, &ts);
    if (r == 0) return 0;
    if (r > 0 && ts > upto) return 0;
    struct tks_archive_tick t;
    if (r > 0) r = tks_archive_cursor_next(m->c, &t);
    if (r < 0) {
      m->err = r;
      return 1;
    }
    if (visit_page(m->e, t.record, t.obj)) return 1;
  }
}

static int visit_merged(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct merge *m = ctx;
  if (drain(m, tick_ts(m->e, record, obj))) return 1;
  return visit_page(m->e, record, obj);
}

static void req_range(struct tks_server *srv, const struct word *w, unsigned n, struct tks_buf *out,
                      size_t start, enum tks_ts_format tf) {
  if (n < 2) FAIL("missing symbol (usage: " USAGE_RANGE ")");
  if (n < 3) FAIL("missing FROM (usage: " USAGE_RANGE ")");
  if (n < 4) FAIL("missing TO (usage: " USAGE_RANGE ")");
  if (n > 5) FAIL("too many arguments (usage: " USAGE_RANGE ")");
  int64_t from, to;
  if (parse_time_word(&w[2], &from, out, start) || parse_time_word(&w[3], &to, out, start)) return;
  if (from >= to) FAIL("FROM must be before TO");
  uint64_t max = srv->cfg.query.max_rows, limit = max;
  if (n == 5 && parse_count(&w[4], &limit))
    FAIL("bad count '%s' (want a whole number, 1 or more)", echo(&w[4]).s);
  if (limit > max) limit = max;
  uint32_t id;
  bool archived;
  if (find_symbol(srv, &w[1], out, start, &id, &archived)) return;
  struct emit e;
  emit_init(&e, srv, out, tf);
  e.limit = limit;
  e.last_ts = from;
  if (!archived) {
    if (id) tks_store_range(srv->store, id, from, to, 0, visit_page, &e);
  } else {
    struct tks_archive_view v;
    struct tks_archive *a = tks_archiver_reader(srv, &v);
    struct merge m = {.e = &e};
    m.c = tks_archive_cursor_create(a, &v, w[1].p, w[1].len, from, to - 1);
    if (!m.c) FAIL("out of memory");
    if (id) tks_store_range(srv->store, id, from, to, 0, visit_merged, &m);
    if (!e.more && !e.err && !m.err) drain(&m, INT64_MAX);
    tks_archive_cursor_destroy(m.c);
    if (m.err)
      FAIL("archive: %s", tks_archive_error(a)[0] ? tks_archive_error(a) : strerror(-m.err));
  }
  if (e.err) FAIL("out of memory");
  if (e.more &&
      tks_buf_printf(out, "{\"more\":true,\"next_from\":%" PRId64 ",\"returned\":%" PRIu64 "}\n",
                     e.next_from, e.rows))
    answer_error(out, start, "out of memory");
}

struct sym_list {
  struct tks_server *srv;
  struct tks_buf *out;
  enum tks_ts_format tf;
  uint64_t limit, shown, total;
  int r;
};

static void sym_put(struct sym_list *sl, const char *name, size_t len, uint64_t count,
                    int64_t first, int64_t last) {
  sl->total++;
  if (sl->shown >= sl->limit) return;
  sl->r = tks_buf_puts(sl->out, "{\"symbol\":") | tks_buf_json_string(sl->out, name, len) |
          tks_buf_printf(sl->out, ",\"ticks\":%" PRIu64 ",\"first_ts\":", count) |
          tks_ts_json(first, sl->tf, sl->out) | tks_buf_puts(sl->out, ",\"last_ts\":") |
          tks_ts_json(last, sl->tf, sl->out);
  /* With a Kafka source: the symbol's partition, and whether it is this node's. */
  bool owned;
  int32_t p = tks_kafka_source_partition(sl->srv, name, len, &owned);
  if (p >= 0)
    sl->r |= tks_buf_printf(sl->out, ",\"partition\":%" PRId32 ",\"owned\":%s", p,
                            owned ? "true" : "false");
  sl->r |= tks_buf_puts(sl->out, "}\n");
  sl->shown++;
}

static int archive_only(void *ctx, const struct tks_archive_symbol_info *s) {
  struct sym_list *sl = ctx;
  uint32_t id;
  struct tks_series_info info;
  if (tks_symtab_lookup(sl->srv->symbols, s->name, s->len, &id) == 0 &&
      tks_store_series(sl->srv->store, id, &info) == 0)
    return 0; /* listed with memory's */
  sym_put(sl, s->name, s->len, s->count, s->first_ts, s->last_ts);
  return sl->r != 0;
}

static void req_symbols(struct tks_server *srv, const struct word *w, unsigned n,
                        struct tks_buf *out, size_t start, enum tks_ts_format tf) {
  if (n > 2) FAIL("too many arguments (usage: " USAGE_SYMBOLS ")");
  uint64_t max = srv->cfg.query.max_rows, limit = max;
  if (n == 2 && parse_count(&w[1], &limit))
    FAIL("bad count '%s' (want a whole number, 1 or more)", echo(&w[1]).s);
  if (limit > max) limit = max;
  struct tks_archive_view v;
  struct tks_archive *a = tks_archiver_reader(srv, &v);
  struct sym_list sl = {.srv = srv, .out = out, .tf = tf, .limit = limit};
  uint32_t count = tks_symtab_count(srv->symbols);
  for (uint32_t id = 1; id <= count && sl.r == 0; id++) {
    struct tks_series_info info;
    if (tks_store_series(srv->store, id, &info) != 0) continue; /* a symbol with no ticks */
    size_t len;
    const char *name = tks_symtab_name(srv->symbols, id, &len);
    if (!name) continue;
    struct tks_archive_symbol_info ai;
    if (a && tks_archive_symbol(a, name, len, &ai) == 0) {
      info.count += ai.count;
      if (ai.first_ts < info.first_ts) info.first_ts = ai.first_ts;
      if (ai.last_ts > info.last_ts) info.last_ts = ai.last_ts;
    }
    sym_put(&sl, name, len, info.count, info.first_ts, info.last_ts);
  }
  /* Then those only the archive has, in byte order. */
  int rc = a && sl.r == 0 ? tks_archive_symbols(a, INT32_MIN, INT32_MAX, archive_only, &sl) : 0;
  if (rc) FAIL("archive: %s", tks_archive_error(a)[0] ? tks_archive_error(a) : strerror(-rc));
  if (sl.r == 0 && sl.total > sl.shown)
    sl.r = tks_buf_printf(out, "{\"truncated\":true,\"symbols\":%" PRIu64 "}\n", sl.total);
  if (sl.r) answer_error(out, start, "out of memory");
}

static void req_advice(struct tks_server *srv, unsigned n, struct tks_buf *out, size_t start) {
  if (n > 1) FAIL("too many arguments (usage: " USAGE_ADVICE ")");
  struct tks_advice_input in = {
      .schema = &srv->cfg.schema,
      .mode = srv->cfg.store.mode,
      .usage = &srv->usage,
      .ticks_accepted = srv->ticks_accepted,
      .rejected_unknown_field = srv->rejected[TKS_REASON_UNKNOWN_FIELD],
      .symbol_bytes = tks_symtab_bytes(srv->symbols) + tks_symtab_bytes(srv->strings),
      .symbols = tks_symtab_count(srv->symbols),
  };
  tks_store_repr(srv->store, &in.repr);
  for (unsigned i = 0; i < TKS_REASON__COUNT; i++) in.ticks_rejected += srv->rejected[i];
  if (tks_advice(&in, out)) answer_error(out, start, "out of memory");
}

/* ---- pages of one symbol, for export and subscriptions ---- */

struct pager {
  tks_tick_fn fn;
  void *ctx;
  uint32_t ts_off, ts_name;
  uint64_t limit, rows;
  int64_t last_ts, next;
  bool more, stopped;
  int err;
  struct tks_archive_cursor *ac;
};

static int64_t pager_ts(const struct pager *pg, const void *record, const struct tks_dynobj *obj) {
  int64_t ts;
  if (record) {
    memcpy(&ts, (const char *)record + pg->ts_off, sizeof ts);
    return ts;
  }
  const struct tks_dyn_slot *sl = pg->ts_name ? tks_dynobj_get(obj, pg->ts_name) : NULL;
  return sl && sl->type == TKS_V_INT ? sl->v.i : pg->last_ts;
}

static int pager_row(struct pager *pg, const void *record, const struct tks_dynobj *obj) {
  int64_t ts = pager_ts(pg, record, obj);
  if (pg->rows >= pg->limit && ts != pg->last_ts) {
    pg->more = true;
    pg->next = ts;
    return 1;
  }
  if (pg->fn(pg->ctx, record, obj)) {
    pg->stopped = true;
    return 1;
  }
  pg->rows++;
  pg->last_ts = ts;
  return 0;
}

/* The archive's ticks with ts <= upto.  1 when the page (or an error) stops it. */
static int pager_drain(struct pager *pg, int64_t upto) {
  if (!pg->ac) return 0;
  for (;;) {
    int64_t ts;
    int r = tks_archive_cursor_peek(pg->ac, &ts);
    if (r == 0 || (r > 0 && ts > upto)) return 0;
    struct tks_archive_tick t;
    if (r > 0) r = tks_archive_cursor_next(pg->ac, &t);
    if (r < 0) {
      pg->err = r;
      return 1;
    }
    if (pager_row(pg, t.record, t.obj)) return 1;
  }
}

static int pager_visit(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct pager *pg = ctx;
  if (pager_drain(pg, pager_ts(pg, record, obj))) return 1;
  return pager_row(pg, record, obj);
}

int tks_query_page(struct tks_server *srv, uint32_t id, const char *name, size_t len, int64_t *from,
                   int64_t to, uint64_t limit, tks_tick_fn fn, void *ctx, uint64_t *rows) {
  const struct tks_field *f = &srv->cfg.schema.fields[srv->cfg.schema.ts_field];
  struct pager pg = {.fn = fn, .ctx = ctx, .ts_off = f->offset, .limit = limit, .last_ts = *from};
  uint32_t nid;
  if (srv->names && tks_symtab_lookup(srv->names, f->name, f->name_len, &nid) == 0)
    pg.ts_name = nid;
  struct tks_archive_view v;
  struct tks_archive *a = tks_archiver_reader(srv, &v);
  struct tks_archive_symbol_info ai;
  if (a && tks_archive_symbol(a, name, len, &ai) == 0 && ai.last_ts >= *from && ai.first_ts < to) {
    pg.ac = tks_archive_cursor_create(a, &v, name, len, *from, to - 1);
    if (!pg.ac) return -ENOMEM;
  }
  if (id) tks_store_range(srv->store, id, *from, to, 0, pager_visit, &pg);
  if (!pg.more && !pg.err && !pg.stopped) pager_drain(&pg, INT64_MAX);
  if (pg.ac) tks_archive_cursor_destroy(pg.ac);
  *rows = pg.rows;
  if (pg.err) return pg.err;
  if (pg.stopped) return -ENOMEM;
  if (!pg.more) return 0;
  *from = pg.next;
  return 1;
}

/* ---- export ---- */

enum ex_format { EX_MSGPACK, EX_CSV, EX_JSONL };
static const char *const ex_format_names[] = {"msgpack", "csv", "jsonl"};

struct tks_export {
  struct tks_server *srv;
  enum ex_format fmt;
  enum tks_ts_format tf;
  bool all;
  char name[TKS_SYMBOL_MAX_LEN + 1]; /* the one symbol */
  size_t name_len;
  uint32_t id;          /* the symbol being exported (0: an archive-only name) */
  uint32_t next_id;     /* "*": the next memory symbol */
  char **archive_names; /* "*": then those only the archive has */
  uint32_t narchive, next_name;
  bool in_symbol; /* a symbol is begun (cur is its cursor) */
  int64_t from, to, cur;
  uint64_t rows, bytes;
  struct tks_buf *out; /* where rows are rendered */
};

static int ex_row(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct tks_export *x = ctx;
  struct tks_server *srv = x->srv;
  const struct tks_schema *sc = &srv->cfg.schema;
  switch (x->fmt) {
  case EX_MSGPACK:
    return tks_tick_msgpack(sc, srv->names, srv->symbols, srv->strings, record, obj, x->out) != 0;
  case EX_CSV:
    return tks_tick_csv(sc, srv->names, srv->symbols, srv->strings, record, obj, x->tf, x->out) !=
           0;
  case EX_JSONL:
    return tks_tick_json_as(sc, srv->names, srv->symbols, srv->strings, record, obj, x->tf,
                            x->out) != 0 ||
           tks_buf_putc(x->out, '\n') != 0;
  }
  return 1;
}

static int ex_collect(void *ctx, const struct tks_archive_symbol_info *info) {
  struct tks_export *x = ctx;
  uint32_t id;
  if (tks_symtab_lookup(x->srv->symbols, info->name, info->len, &id) == 0) return 0;
  if (info->last_ts < x->from || info->first_ts >= x->to) return 0;
  char **grown = realloc(x->archive_names, (x->narchive + 1) * sizeof *grown);
  if (!grown) return 1;
  x->archive_names = grown;
  char *copy = malloc(info->len + 1);
  if (!copy) return 1;
  memcpy(copy, info->name, info->len);
  copy[info->len] = '\0';
  x->archive_names[x->narchive++] = copy;
  return 0;
}

void tks_query_export_end(struct tks_export *x) {
  if (!x) return;
  for (uint32_t i = 0; i < x->narchive; i++) free(x->archive_names[i]);
  free(x->archive_names);
  free(x);
}

static void req_export(struct tks_server *srv, const struct word *w, unsigned n,
                       struct tks_buf *out, size_t start, enum tks_ts_format tf,
                       struct tks_export **xp) {
  enum ex_format fmt = EX_MSGPACK;
  unsigned keep = 1, given = 0;
  struct word args[MAX_WORDS];
  args[0] = w[0];
  for (unsigned i = 1; i < n; i++) {
    if (w[i].len > 7 && memcmp(w[i].p, "format=", 7) == 0) {
      if (given++) FAIL("format= given twice");
      bool ok = false;
      for (unsigned k = 0; k < 3; k++)
        if (w[i].len - 7 == strlen(ex_format_names[k]) &&
            memcmp(w[i].p + 7, ex_format_names[k], w[i].len - 7) == 0)
          fmt = (enum ex_format)k, ok = true;
      if (!ok)
        FAIL("bad format '%s' (want format=msgpack, format=csv or format=jsonl)", echo(&w[i]).s);
      continue;
    }
    args[keep++] = w[i];
  }
  n = keep;
  if (n < 2) FAIL("missing symbol (usage: " USAGE_EXPORT ")");
  if (n < 3) FAIL("missing FROM (usage: " USAGE_EXPORT ")");
  if (n < 4) FAIL("missing TO (usage: " USAGE_EXPORT ")");
  if (n > 4) FAIL("too many arguments (usage: " USAGE_EXPORT ")");
  int64_t from, to;
  if (parse_time_word(&args[2], &from, out, start) || parse_time_word(&args[3], &to, out, start))
    return;
  if (from >= to) FAIL("FROM must be before TO");
  struct tks_export *x = calloc(1, sizeof *x);
  if (!x) FAIL("out of memory");
  x->srv = srv;
  x->fmt = fmt;
  x->tf = tf;
  x->from = from;
  x->to = to;
  x->next_id = 1;
  if (args[1].len == 1 && args[1].p[0] == '*') {
    x->all = true;
    struct tks_archive_view v;
    struct tks_archive *a = tks_archiver_reader(srv, &v);
    int rc = a ? tks_archive_symbols(a, INT32_MIN, INT32_MAX, ex_collect, x) : 0;
    if (rc) {
      tks_query_export_end(x);
      FAIL("archive: %s", tks_archive_error(a)[0] ? tks_archive_error(a) : strerror(-rc));
    }
  } else {
    bool archived;
    uint32_t id;
    if (find_symbol(srv, &args[1], out, start, &id, &archived)) {
      tks_query_export_end(x);
      return;
    }
    memcpy(x->name, args[1].p, args[1].len);
    x->name_len = args[1].len;
    x->id = id;
    x->in_symbol = true;
    x->cur = from;
  }
  if (tks_buf_printf(out, "{\"ok\":true,\"export\":\"%s\",\"framing\":\"chunks\"}\n",
                     ex_format_names[fmt])) {
    tks_query_export_end(x);
    FAIL("out of memory");
  }
  *xp = x;
}

/* The next symbol of a "*" export: 1, or 0 when there is none. */
static int ex_next_symbol(struct tks_export *x) {
  struct tks_server *srv = x->srv;
  uint32_t count = tks_symtab_count(srv->symbols);
  while (x->next_id <= count) {
    uint32_t id = x->next_id++;
    size_t len;
    const char *name = tks_symtab_name(srv->symbols, id, &len);
    struct tks_series_info info;
    bool in_memory = tks_store_series(srv->store, id, &info) == 0;
    if (!name) continue;
    struct tks_archive_view v;
    struct tks_archive *a = tks_archiver_reader(srv, &v);
    struct tks_archive_symbol_info ai;
    bool archived = a && tks_archive_symbol(a, name, len, &ai) == 0;
    if (!in_memory && !archived) continue;
    memcpy(x->name, name, len);
    x->name_len = len;
    x->id = id;
    x->cur = x->from;
    return 1;
  }
  if (x->next_name < x->narchive) {
    const char *name = x->archive_names[x->next_name++];
    x->name_len = strlen(name);
    memcpy(x->name, name, x->name_len);
    x->id = 0;
    x->cur = x->from;
    return 1;
  }
  return 0;
}

int tks_query_export_next(struct tks_export *x, struct tks_buf *out, size_t budget) {
  size_t at = out->len;
  if (tks_buf_reserve(out, 4)) return -ENOMEM;
  out->len += 4; /* the chunk's length, filled in below */
  size_t body = out->len;
  x->out = out;
  int r = 0;
  if (x->fmt == EX_CSV && x->rows == 0 && x->bytes == 0 &&
      tks_schema_csv_header(&x->srv->cfg.schema, out))
    r = -ENOMEM;
  bool done = false;
  while (r == 0 && out->len - body < budget) {
    if (!x->in_symbol) {
      if (!x->all || !ex_next_symbol(x)) {
        done = true;
        break;
      }
      x->in_symbol = true;
    }
    uint64_t rows = 0;
    int p = tks_query_page(x->srv, x->id, x->name, x->name_len, &x->cur, x->to, 4096, ex_row, x,
                           &rows);
    x->rows += rows;
    if (p < 0) r = p;
    if (p == 0) x->in_symbol = false;
  }
  size_t len = out->len - body;
  x->bytes += len;
  for (int i = 0; i < 4; i++) out->data[at + i] = (char)(len >> (8 * (3 - i)));
  if (r) return r;
  if (len == 0) out->len = at; /* no empty chunk before the end */
  if (!done) return 1;
  /* The end: a zero-length chunk, then the trailer line. */
  if (tks_buf_append(out, "\0\0\0\0", 4) ||
      tks_buf_printf(out, "{\"ok\":true,\"rows\":%" PRIu64 ",\"bytes\":%" PRIu64 "}\n", x->rows,
                     x->bytes))
    return -ENOMEM;
  return 0;
}

/* The option word ts=ns|iso|string, anywhere after the request's name:
 * taken out of w (n one less) into *tf.  Returns 0, or -EINVAL with the
 * error answered. */
static int take_ts_word(struct word *w, unsigned *n, enum tks_ts_format *tf, struct tks_buf *out,
                        size_t start) {
  unsigned found = 0, keep = 1, stored = *n < MAX_WORDS ? *n : MAX_WORDS;
  for (unsigned i = 1; i < stored; i++) {
    if (w[i].len < 3 || memcmp(w[i].p, "ts=", 3) != 0) {
      w[keep++] = w[i];
      continue;
    }
    if (found++) {
      answer_error(out, start, "ts= given twice");
      return -EINVAL;
    }
    if (tks_ts_format_parse(w[i].p + 3, w[i].len - 3, tf)) {
      answer_error(out, start, "bad ts format '%s' (want ts=ns, ts=iso or ts=string)",
                   echo(&w[i]).s);
      return -EINVAL;
    }
  }
  *n -= found;
  return 0;
}

int tks_query_export_begin(struct tks_server *srv, const char *line, struct tks_buf *out,
                           struct tks_export **x) {
  *x = NULL;
  struct word w[MAX_WORDS];
  unsigned n = split_words(line, w, MAX_WORDS);
  if (n == 0 || !word_is(&w[0], "export")) return 0;
  size_t start = out->len;
  enum tks_ts_format tf = TKS_TS_NS;
  if (take_ts_word(w, &n, &tf, out, start)) return 1;
  req_export(srv, w, n, out, start, tf, x);
  return 1;
}

int tks_query_handle(struct tks_server *srv, const char *line, struct tks_buf *out) {
  struct word w[MAX_WORDS];
  unsigned n = split_words(line, w, MAX_WORDS);
  if (n == 0) return 0;
  size_t start = out->len;
  bool reads = word_is(&w[0], "last") || word_is(&w[0], "range") || word_is(&w[0], "symbols");
  enum tks_ts_format tf = TKS_TS_NS;
  if (reads && take_ts_word(w, &n, &tf, out, start)) return 1;
  if (word_is(&w[0], "last"))
    req_last(srv, w, n, out, start, tf);
  else if (word_is(&w[0], "range"))
    req_range(srv, w, n, out, start, tf);
  else if (word_is(&w[0], "symbols"))
    req_symbols(srv, w, n, out, start, tf);
  else if (word_is(&w[0], "advice"))
    req_advice(srv, n, out, start);
  else
    return 0;
  return 1;
}

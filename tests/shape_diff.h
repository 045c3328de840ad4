/*
 * The differential check of lib/shape.c, shared by tests/test_shape.c and
 * tests/fuzz/fuzz_shape.c: two decoders alike but for their tables, one
 * calling tks_decode(), the other tks_shape_decode() with a shape cache,
 * fed the same bytes; every answer must be the same byte for byte (status,
 * consumed, reason, field, detail, has_ts, the record, a dynamic tick's
 * fields) and the tables must hold the same strings under the same ids.
 * Where the shape path says a tick is verbatim (its bytes say what the
 * record holds), the bytes and the record rendered as a subscriber gets it
 * must be the same map: keys, value types and values.  The includer defines DIFF_FAIL(fmt, ...), which must not return.
 */
#ifndef TKS_SHAPE_DIFF_H
#define TKS_SHAPE_DIFF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "decode.h"
#include "render.h"
#include "shape.h"
#include "symtab.h"

struct diff_side {
  struct tks_decoder d;
  struct tks_dyn_tick dyn;
  _Alignas(8) unsigned char rec[TKS_RECORD_MAX];
  struct tks_decode_result res;
};

struct diff {
  struct diff_side a, b; /* a: tks_decode(); b: tks_shape_decode() */
  struct tks_shape_cache *cache;
  unsigned calls; /* the shape path tells verbatim (d.verbatim) every other call */
};

static inline void diff_init(struct diff *x, const struct tks_schema *s, enum tks_mode mode,
                             size_t max, uint32_t max_symbols) {
  memset(x, 0, sizeof *x);
  struct diff_side *sides[2] = {&x->a, &x->b};
  for (int i = 0; i < 2; i++) {
    sides[i]->d = (struct tks_decoder){
        .schema = s,
        .symbols = tks_symtab_create(max_symbols),
        .strings = tks_symtab_create(max_symbols),
        .names = tks_symtab_create(64),
        .max_message_bytes = max,
        .mode = mode,
        .max_object_bytes = 4096,
    };
    if (!sides[i]->d.symbols || !sides[i]->d.strings || !sides[i]->d.names) DIFF_FAIL("no memory");
  }
  x->cache = malloc(sizeof *x->cache);
  if (!x->cache) DIFF_FAIL("no memory");
  tks_shape_init(x->cache);
}

static inline void diff_finish(struct diff *x) {
  struct diff_side *sides[2] = {&x->a, &x->b};
  for (int i = 0; i < 2; i++) {
    tks_symtab_destroy(sides[i]->d.symbols);
    tks_symtab_destroy(sides[i]->d.strings);
    tks_symtab_destroy(sides[i]->d.names);
  }
  free(x->cache);
}

/* The daemon's refusal of a decoded tick (tks_server_unintern): both sides
 * forget the ids above the counts they had. */
struct diff_mark {
  uint32_t n[3];
};
static inline struct diff_mark diff_mark(const struct diff *x) {
  return (struct diff_mark){{tks_symtab_count(x->a.d.symbols), tks_symtab_count(x->a.d.strings),
                             tks_symtab_count(x->a.d.names)}};
}
static inline void diff_unintern(struct diff *x, struct diff_mark m) {
  struct diff_side *sides[2] = {&x->a, &x->b};
  for (int i = 0; i < 2; i++) {
    tks_symtab_truncate(sides[i]->d.symbols, m.n[0]);
    tks_symtab_truncate(sides[i]->d.strings, m.n[1]);
    tks_symtab_truncate(sides[i]->d.names, m.n[2]);
  }
}

static inline bool diff_value_eq(const struct tks_value *p, const struct tks_value *q) {
  if (p->type != q->type) return false;
  switch (p->type) {
  case TKS_V_NIL: return true;
  case TKS_V_BOOL: return p->v.b == q->v.b;
  case TKS_V_INT: return p->v.i == q->v.i;
  case TKS_V_UINT: return p->v.u == q->v.u;
  case TKS_V_F64: return memcmp(&p->v.f, &q->v.f, 8) == 0;
  case TKS_V_STR: return p->v.s.p == q->v.s.p && p->v.s.len == q->v.s.len;
  case TKS_V_SYM:
  case TKS_V_ISTR: return p->v.id == q->v.id;
  }
  return false;
}

static inline void diff_tables_eq(const struct tks_symtab *p, const struct tks_symtab *q,
                                  const char *what) {
  if (tks_symtab_count(p) != tks_symtab_count(q))
    DIFF_FAIL("%s: %u ids, the shape path's %u", what, tks_symtab_count(p), tks_symtab_count(q));
  uint32_t n = tks_symtab_count(p);
  /* The newest few: an id handed out twice would show there. */
  for (uint32_t id = n > 4 ? n - 4 : 1; id <= n; id++) {
    size_t lp, lq;
    const char *sp = tks_symtab_name(p, id, &lp), *sq = tks_symtab_name(q, id, &lq);
    if (lp != lq || memcmp(sp, sq, lp) != 0) DIFF_FAIL("%s: id %u names other strings", what, id);
  }
}

/* The same msgpack value: the same type (an integer by its value, whatever
 * its width), floats bit for bit, a map's entries whatever their order
 * (a tick's keys are unique). */
static inline bool diff_mp_eq(const msgpack_object *p, const msgpack_object *q) {
  if (p->type != q->type) return false;
  switch (p->type) {
  case MSGPACK_OBJECT_NIL: return true;
  case MSGPACK_OBJECT_BOOLEAN: return p->via.boolean == q->via.boolean;
  case MSGPACK_OBJECT_POSITIVE_INTEGER: return p->via.u64 == q->via.u64;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: return p->via.i64 == q->via.i64;
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64: return memcmp(&p->via.f64, &q->via.f64, 8) == 0;
  case MSGPACK_OBJECT_STR:
    return p->via.str.size == q->via.str.size &&
           memcmp(p->via.str.ptr, q->via.str.ptr, p->via.str.size) == 0;
  case MSGPACK_OBJECT_MAP:
    if (p->via.map.size != q->via.map.size) return false;
    for (uint32_t i = 0; i < p->via.map.size; i++) {
      uint32_t j = 0;
      while (j < q->via.map.size && !diff_mp_eq(&p->via.map.ptr[i].key, &q->via.map.ptr[j].key))
        j++;
      if (j == q->via.map.size || !diff_mp_eq(&p->via.map.ptr[i].val, &q->via.map.ptr[j].val))
        return false;
    }
    return true;
  default: return false;
  }
}

/* A verbatim tick's bytes against its record as a subscriber is sent it. */
static inline void diff_verbatim(const struct diff_side *b, const uint8_t *buf, size_t n) {
  struct tks_buf out = {0};
  if (tks_tick_msgpack(b->d.schema, b->d.names, b->d.symbols, b->d.strings, b->rec, NULL, &out))
    DIFF_FAIL("no memory");
  msgpack_unpacked u, v;
  msgpack_unpacked_init(&u);
  msgpack_unpacked_init(&v);
  if (msgpack_unpack_next(&u, (const char *)buf, n, NULL) != MSGPACK_UNPACK_SUCCESS ||
      msgpack_unpack_next(&v, out.data, out.len, NULL) != MSGPACK_UNPACK_SUCCESS)
    DIFF_FAIL("a verbatim tick or its record rendered is not msgpack");
  bool eq = diff_mp_eq(&u.data, &v.data);
  msgpack_unpacked_destroy(&u);
  msgpack_unpacked_destroy(&v);
  tks_buf_finish(&out);
  if (!eq) DIFF_FAIL("a verbatim tick's bytes say other than its record rendered");
}

/* Decodes buf[0..len) on both sides and compares; returns the status. */
static inline enum tks_decode_status diff_decode(struct diff *x, const uint8_t *buf, size_t len,
                                                 int64_t now_ns, bool check_only) {
  struct diff_side *a = &x->a, *b = &x->b;
  a->d.check_only = b->d.check_only = check_only;
  /* Both ways of the fast path, alike but for res.verbatim. */
  b->d.verbatim = x->calls++ % 2 == 0;
  /* The same stale bytes on both sides: nothing may depend on them. */
  memset(a->rec, 0xa5, sizeof a->rec);
  memset(b->rec, 0xa5, sizeof b->rec);
  memset(&a->res, 0x5a, sizeof a->res);
  memset(&b->res, 0x5a, sizeof b->res);
  a->res.dyn = &a->dyn;
  b->res.dyn = &b->dyn;
  enum tks_decode_status sa = tks_decode(&a->d, buf, len, now_ns, a->rec, &a->res);
  enum tks_decode_status sb = tks_shape_decode(x->cache, &b->d, buf, len, now_ns, b->rec, &b->res);
  const struct tks_decode_result *ra = &a->res, *rb = &b->res;
  if (sa != sb) DIFF_FAIL("status %d, the shape path's %d", sa, sb);
  if (ra->consumed != rb->consumed)
    DIFF_FAIL("consumed %zu, the shape path's %zu", ra->consumed, rb->consumed);
  if (ra->field != rb->field) DIFF_FAIL("field %d, the shape path's %d", ra->field, rb->field);
  if (strcmp(ra->detail, rb->detail) != 0)
    DIFF_FAIL("detail '%s', the shape path's '%s'", ra->detail, rb->detail);
  if ((sa == TKS_DECODE_REJECT || sa == TKS_DECODE_ERROR) && ra->reason != rb->reason)
    DIFF_FAIL("reason %s, the shape path's %s", tks_reason_name(ra->reason),
              tks_reason_name(rb->reason));
  if (sa == TKS_DECODE_OK || sa == TKS_DECODE_DYNAMIC) {
    if (ra->has_ts != rb->has_ts)
      DIFF_FAIL("has_ts %d, the shape path's %d", ra->has_ts, rb->has_ts);
    if (memcmp(a->rec, b->rec, a->d.schema->record_size) != 0) DIFF_FAIL("the records differ");
  }
  bool verbatim = b->d.verbatim && rb->verbatim; /* (else left as it was: the 0x5a above) */
  if (verbatim && (sb != TKS_DECODE_OK || ra->verbatim))
    DIFF_FAIL("verbatim where only the shape path's OK may be");
  if (verbatim && !check_only) diff_verbatim(b, buf, rb->consumed);
  if ((sa == TKS_DECODE_OK && a->d.mode != TKS_MODE_SLOTTED) || sa == TKS_DECODE_DYNAMIC) {
    const struct tks_dyn_tick *p = &a->dyn, *q = &b->dyn;
    if (p->n != q->n || p->undeclared != q->undeclared || p->string_bytes != q->string_bytes)
      DIFF_FAIL("dynamic tick: %u fields (%u undeclared, %zu string bytes), the shape path's %u "
                "(%u, %zu)",
                p->n, p->undeclared, p->string_bytes, q->n, q->undeclared, q->string_bytes);
  }
  if (sa == TKS_DECODE_DYNAMIC) {
    const struct tks_dyn_tick *p = &a->dyn, *q = &b->dyn;
    if (p->symbol != q->symbol || p->ts != q->ts) DIFF_FAIL("dynamic tick: symbol or ts differ");
    for (unsigned i = 0; i < p->n; i++) {
      const struct tks_dyn_field *f = &p->f[i], *g = &q->f[i];
      if (f->name != g->name || f->field != g->field || f->key_len != g->key_len ||
          memcmp(f->key, g->key, f->key_len) != 0 || !diff_value_eq(&f->value, &g->value))
        DIFF_FAIL("dynamic tick: field %u differs", i);
    }
  }
  diff_tables_eq(a->d.symbols, b->d.symbols, "symbols");
  diff_tables_eq(a->d.strings, b->d.strings, "strings");
  diff_tables_eq(a->d.names, b->d.names, "names");
  return sa;
}

/* Decodes a stream as daemon/ingest.c does: message after message until
 * one needs more bytes or ends it.  With unintern_every n > 0, every n-th
 * accepted tick is then refused (its ids forgotten), as a tick the store
 * or a seal refuses.  Returns the messages decoded. */
static inline unsigned diff_stream(struct diff *x, const uint8_t *buf, size_t len, int64_t now_ns,
                                   bool check_only, unsigned unintern_every) {
  size_t off = 0;
  unsigned n = 0, accepted = 0;
  while (off < len) {
    struct diff_mark m = diff_mark(x);
    enum tks_decode_status st = diff_decode(x, buf + off, len - off, now_ns, check_only);
    if (st == TKS_DECODE_NEED_MORE || st == TKS_DECODE_ERROR) break;
    n++;
    if ((st == TKS_DECODE_OK || st == TKS_DECODE_DYNAMIC) && unintern_every &&
        ++accepted % unintern_every == 0)
      diff_unintern(x, m);
    if (st == TKS_DECODE_REJECT) diff_unintern(x, m); /* too_many_symbols part way */
    off += x->a.res.consumed;
  }
  return n;
}

#endif

/*
 * Dynamic objects: a compact hash map per tick (CPython's dict layout): a
 * one-byte-per-slot index, linear probing on a multiplicative hash of the
 * field-name id, into dense 16-byte entries; strings copied inline after
 * the entries.  See dynobj.h for the layout.
 */
#include "dynobj.h"

#include <errno.h>
#include <string.h>

unsigned tks_dynobj_cap(unsigned n) {
  unsigned cap = 4;
  while (n * 3 > cap * 2) cap *= 2;
  return cap;
}

static size_t entries_off(unsigned cap) { return (8 + (size_t)cap + 7) & ~(size_t)7; }

size_t tks_dynobj_size(unsigned n, size_t string_bytes) {
  size_t sz = entries_off(tks_dynobj_cap(n)) + n * sizeof(struct tks_dyn_slot) + string_bytes;
  return (sz + 7) & ~(size_t)7;
}

static struct tks_dyn_slot *entries(struct tks_dynobj *o) {
  return (struct tks_dyn_slot *)((char *)o + entries_off(o->cap));
}

struct tks_dynobj *tks_dynobj_init(void *mem, unsigned n, size_t string_bytes) {
  struct tks_dynobj *o = mem;
  o->count = 0;
  o->nfields = (uint8_t)n;
  o->cap = (uint8_t)tks_dynobj_cap(n);
  o->pad = 0;
  o->bytes = (uint32_t)tks_dynobj_size(n, string_bytes);
  memset(o->index, 0, o->cap);
  return o;
}

static inline unsigned slot_of(uint32_t key, unsigned cap) {
  return (unsigned)((key * 2654435761u) >> 16) & (cap - 1);
}

/* Where the next string goes: after the entries and the strings so far. */
static uint32_t strings_end(struct tks_dynobj *o) {
  uint32_t end = (uint32_t)(entries_off(o->cap) + o->nfields * sizeof(struct tks_dyn_slot));
  const struct tks_dyn_slot *e = entries(o);
  for (unsigned i = 0; i < o->count; i++)
    if (e[i].type == TKS_V_STR && e[i].v.off + e[i].len > end) end = e[i].v.off + e[i].len;
  return end;
}

int tks_dynobj_put(struct tks_dynobj *o, uint32_t key, const struct tks_value *v) {
  if (key == 0) return -EINVAL;
  struct tks_dyn_slot *e = entries(o);
  unsigned i = slot_of(key, o->cap);
  while (o->index[i] && e[o->index[i] - 1].key != key) i = (i + 1) & (o->cap - 1);
  bool is_new = o->index[i] == 0;
  if (is_new && o->count >= o->nfields) return -ENOSPC;
  struct tks_dyn_slot nv = {.key = key, .type = (uint8_t)v->type};
  switch (v->type) {
  case TKS_V_NIL: break;
  case TKS_V_BOOL: nv.v.b = v->v.b; break;
  case TKS_V_INT: nv.v.i = v->v.i; break;
  case TKS_V_UINT: nv.v.u = v->v.u; break;
  case TKS_V_SYM:
  case TKS_V_ISTR: nv.v.id = v->v.id; break;
  case TKS_V_F64: nv.v.f = v->v.f; break;
  case TKS_V_STR: {
    uint32_t at = strings_end(o);
    if (v->v.s.len > UINT16_MAX || at + v->v.s.len > o->bytes) return -ENOSPC;
    memcpy((char *)o + at, v->v.s.p, v->v.s.len);
    nv.v.off = at;
    nv.len = (uint16_t)v->v.s.len;
    break;
  }
  }
  if (is_new) {
    o->index[i] = (uint8_t)(o->count + 1);
    e[o->count++] = nv;
  } else {
    e[o->index[i] - 1] = nv;
  }
  return 0;
}

const struct tks_dyn_slot *tks_dynobj_get(const struct tks_dynobj *o, uint32_t key) {
  const struct tks_dyn_slot *e = tks_dynobj_entries(o);
  unsigned i = slot_of(key, o->cap);
  for (unsigned n = 0; n < o->cap && o->index[i]; n++, i = (i + 1) & (o->cap - 1))
    if (e[o->index[i] - 1].key == key) return &e[o->index[i] - 1];
  return NULL;
}

int tks_dynobj_check(const void *p, size_t len, const char **why) {
  const struct tks_dynobj *o = p;
#define BAD(msg)    \
  do {              \
    *why = (msg);   \
    return -EINVAL; \
  } while (0)
  if (len < 8 || len % 8) BAD("object size not a multiple of 8");
  if (o->bytes != len) BAD("object size disagrees with its header");
  if (o->nfields > TKS_DYNOBJ_MAX_FIELDS || o->count > o->nfields)
    BAD("object field count out of range");
  if (o->cap != tks_dynobj_cap(o->nfields)) BAD("object index size wrong");
  if (len < tks_dynobj_size(o->nfields, 0)) BAD("object shorter than its entries");
  const struct tks_dyn_slot *e = tks_dynobj_entries(o);
  size_t strings = entries_off(o->cap) + (size_t)o->nfields * sizeof *e;
  unsigned used = 0;
  for (unsigned i = 0; i < o->cap; i++) {
    if (o->index[i] > o->count) BAD("object index points past its entries");
    used += o->index[i] != 0;
  }
  if (used != o->count) BAD("object index does not hold every entry once");
  for (unsigned i = 0; i < o->count; i++) {
    const struct tks_dyn_slot *s = &e[i];
    if (s->key == 0) BAD("object entry without a key");
    if (s->type > TKS_V__LAST) BAD("object entry of an unknown type");
    if (s->type == TKS_V_BOOL) {
      unsigned char b;
      memcpy(&b, &s->v, 1);
      if (b > 1) BAD("object bool neither 0 nor 1");
    }
    if (s->type == TKS_V_STR && (s->v.off < strings || s->v.off > len || s->len > len - s->v.off))
      BAD("object string outside the object");
    /* The index must lead to this very entry: keys unique, probing sound. */
    if (tks_dynobj_get(o, s->key) != s) BAD("object index does not find an entry");
  }
  return 0;
#undef BAD
}

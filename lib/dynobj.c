/*
 * Dynamic objects: an open-addressing hash map per tick, keyed by field-name
 * id (linear probing, multiplicative hash), values tagged, strings copied
 * inline after the slot table.  See dynobj.h for the layout.
 */
#include "dynobj.h"

#include <errno.h>
#include <string.h>

unsigned tks_dynobj_cap(unsigned n) {
  unsigned cap = 4;
  while (n * 4 > cap * 3) cap *= 2;
  return cap;
}

size_t tks_dynobj_size(unsigned n, size_t string_bytes) {
  size_t sz = sizeof(struct tks_dynobj) + tks_dynobj_cap(n) * sizeof(struct tks_dyn_slot) + string_bytes;
  return (sz + 7) & ~(size_t)7;
}

struct tks_dynobj *tks_dynobj_init(void *mem, unsigned n, size_t string_bytes) {
  struct tks_dynobj *o = mem;
  o->count = 0;
  o->cap = (uint16_t)tks_dynobj_cap(n);
  o->bytes = (uint32_t)tks_dynobj_size(n, string_bytes);
  memset(o->slots, 0, o->cap * sizeof(struct tks_dyn_slot));
  return o;
}

static inline unsigned slot_of(uint32_t key, unsigned cap) {
  return (unsigned)((key * 2654435761u) >> 16) & (cap - 1);
}

/* Where the next string goes: after the slots and the strings so far. */
static uint32_t strings_end(const struct tks_dynobj *o) {
  uint32_t end = (uint32_t)(sizeof *o + o->cap * sizeof(struct tks_dyn_slot));
  for (unsigned i = 0; i < o->cap; i++) {
    const struct tks_dyn_slot *s = &o->slots[i];
    if (s->key && s->type == TKS_DYN_STR && s->v.off + s->len > end) end = s->v.off + s->len;
  }
  return end;
}

int tks_dynobj_put(struct tks_dynobj *o, uint32_t key, const struct tks_dyn_value *v) {
  if (key == 0) return -EINVAL;
  unsigned i = slot_of(key, o->cap);
  while (o->slots[i].key && o->slots[i].key != key) i = (i + 1) & (o->cap - 1);
  struct tks_dyn_slot *s = &o->slots[i];
  if (!s->key && (unsigned)(o->count + 1) * 4 > (unsigned)o->cap * 3) return -ENOSPC;
  struct tks_dyn_slot nv = {.key = key, .type = (uint8_t)v->type};
  switch (v->type) {
  case TKS_DYN_NIL: break;
  case TKS_DYN_BOOL: nv.v.b = v->b; break;
  case TKS_DYN_INT: nv.v.i = v->i; break;
  case TKS_DYN_UINT: nv.v.u = v->u; break;
  case TKS_DYN_SYM:
  case TKS_DYN_ISTR: nv.v.id = v->id; break;
  case TKS_DYN_F64: nv.v.f = v->f; break;
  case TKS_DYN_STR: {
    uint32_t at = strings_end(o);
    if (v->len > UINT16_MAX || at + v->len > o->bytes) return -ENOSPC;
    memcpy((char *)o + at, v->s, v->len);
    nv.v.off = at;
    nv.len = (uint16_t)v->len;
    break;
  }
  }
  if (!s->key) o->count++;
  *s = nv;
  return 0;
}

const struct tks_dyn_slot *tks_dynobj_get(const struct tks_dynobj *o, uint32_t key) {
  unsigned i = slot_of(key, o->cap);
  for (unsigned n = 0; n < o->cap && o->slots[i].key; n++, i = (i + 1) & (o->cap - 1))
    if (o->slots[i].key == key) return &o->slots[i];
  return NULL;
}


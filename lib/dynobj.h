/*
 * Dynamic objects: the __dict__ analogue.  One tick kept as its own small
 * hash map from interned field name (a uint32 id) to a value (value.h),
 * laid out as CPython's compact dict is since 3.6: a sparse index of one
 * byte per slot (open addressing, load at most 2/3) pointing into a dense
 * array of 16-byte entries in insertion order, strings stored inline after
 * the entries.  An object is one slab chunk of exactly tks_dynobj_size()
 * bytes, so its memory shows in `stats slabs`, waste included.  It holds
 * nothing slotted on the side.
 */
#ifndef TKS_DYNOBJ_H
#define TKS_DYNOBJ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "value.h"

#define TKS_DYNOBJ_MAX_FIELDS 64 /* fields one dynamic tick may carry (the index is bytes) */

/* One entry, 16 bytes (the store's memory per field depends on it): a
 * struct tks_value packed, its type in a byte and a string as an offset. */
struct tks_dyn_slot {
  uint32_t key;  /* field-name id; 0 = empty slot */
  uint8_t type;  /* enum tks_vtype */
  uint8_t pad;
  uint16_t len;  /* string length */
  union {
    bool b;
    int64_t i;
    uint64_t u;
    double f;
    uint32_t off; /* string offset from the object's start */
    uint32_t id;  /* SYM, ISTR */
  } v;
};

struct tks_dynobj {
  uint8_t count;    /* fields held */
  uint8_t nfields;  /* fields it was sized for */
  uint8_t cap;      /* index slots, a power of two */
  uint8_t pad;
  uint32_t bytes;   /* the object's size: tks_dynobj_size() */
  uint8_t index[];  /* cap bytes: entry number + 1, or 0 for an empty slot */
  /* then, 8-aligned, nfields entries (struct tks_dyn_slot), then strings */
};

_Static_assert(sizeof(struct tks_dyn_slot) == 16, "a dynobj entry is 16 bytes");

/* Index slots for n fields: the smallest power of two >= 4 holding n at a
 * load of at most 2/3, as CPython's dict. */
unsigned tks_dynobj_cap(unsigned nfields);
/* Bytes of an object with n fields and string_bytes of string values. */
size_t tks_dynobj_size(unsigned nfields, size_t string_bytes);

/* Makes an empty object for n fields in mem (tks_dynobj_size() bytes). */
struct tks_dynobj *tks_dynobj_init(void *mem, unsigned nfields, size_t string_bytes);
/* Adds or replaces key.  Returns 0, or -ENOSPC when the object was sized
 * for fewer fields or string bytes. */
int tks_dynobj_put(struct tks_dynobj *o, uint32_t key, const struct tks_value *v);
/* The slot of key, or NULL. */
const struct tks_dyn_slot *tks_dynobj_get(const struct tks_dynobj *o, uint32_t key);
/*
 * Checks that the bytes p[0..len) are a well-formed object, for a reader of
 * objects from outside (a checkpoint file): the header agrees with len
 * (bytes == len, cap == tks_dynobj_cap(nfields), count <= nfields <=
 * TKS_DYNOBJ_MAX_FIELDS, len at least tks_dynobj_size(nfields, 0)), every
 * entry has a key, a known type, a bool of 0 or 1 and a string inside the
 * object after the entries, no key is held twice, and the index finds
 * every entry (and nothing else).  p must be 8-byte aligned.  Returns 0,
 * or -EINVAL with a short reason in *why (a static string).  Ids (keys,
 * SYM, ISTR) are the caller's to check against its tables.
 */
int tks_dynobj_check(const void *p, size_t len, const char **why);

/* The entries, o->count of them, in insertion order. */
static inline const struct tks_dyn_slot *tks_dynobj_entries(const struct tks_dynobj *o) {
  return (const struct tks_dyn_slot *)((const char *)o + ((8 + (size_t)o->cap + 7) & ~(size_t)7));
}
/* The bytes of a string slot. */
static inline const char *tks_dynobj_str(const struct tks_dynobj *o, const struct tks_dyn_slot *s) {
  return (const char *)o + s->v.off;
}
/* The value of a slot (a STR's bytes point into the object). */
static inline struct tks_value tks_dynobj_value(const struct tks_dynobj *o,
                                                const struct tks_dyn_slot *s) {
  struct tks_value v = {.type = (enum tks_vtype)s->type};
  switch (v.type) {
  case TKS_V_NIL: break;
  case TKS_V_BOOL: v.v.b = s->v.b; break;
  case TKS_V_INT: v.v.i = s->v.i; break;
  case TKS_V_UINT: v.v.u = s->v.u; break;
  case TKS_V_F64: v.v.f = s->v.f; break;
  case TKS_V_STR: v.v.s.p = tks_dynobj_str(o, s), v.v.s.len = s->len; break;
  case TKS_V_SYM:
  case TKS_V_ISTR: v.v.id = s->v.id; break;
  }
  return v;
}

#endif

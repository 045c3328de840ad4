/*
 * One decoded tick into the store, in the representation its mode and its
 * fields ask for: a slotted record; in fallback mode a record plus an
 * overflow map of the undeclared fields; in dynamic mode one object of
 * every field.  Kept ticks with undeclared fields are counted in the usage
 * table with what those fields cost (the store says what a map costs).
 * No policy here: a full store is the caller's to handle (daemon/admit.c).
 */
#ifndef TKS_TICK_H
#define TKS_TICK_H

#include "decode.h"
#include "store.h"
#include "usage.h"

/* Where ticks go: the store, the usage table, the mode. */
struct tks_tick_sink {
  struct tks_store *store;
  struct tks_usage *usage;
  enum tks_mode mode;
};

/*
 * Stores one tick tks_decode() gave: status TKS_DECODE_OK (record filled)
 * or TKS_DECODE_DYNAMIC (dyn filled; record too in fallback mode).
 * Returns 0 (stored, usage counted), -ENOMEM (no room: nothing stored; the
 * caller may free memory and try again) or -E2BIG (an object larger than a
 * slab page: it can never be stored, freeing memory does not help).
 */
int tks_tick_store_dynamic(const struct tks_tick_sink *k, const void *record,
                           const struct tks_dyn_tick *dyn);
static inline int tks_tick_store(const struct tks_tick_sink *k, enum tks_decode_status status,
                                 const void *record, const struct tks_dyn_tick *dyn) {
  /* Inline: the slotted case is one call into the store, on the hot path. */
  return status == TKS_DECODE_OK ? tks_store_append(k->store, record)
                                 : tks_tick_store_dynamic(k, record, dyn);
}

/* The object tks_tick_store makes of a DYNAMIC tick (fallback: its
 * undeclared fields; dynamic: every field), built in mem, 8-aligned, of
 * tks_tick_object_size() bytes: for rendering a tick as it is stored
 * without reading it back.  NULL if t does not fit (never, for a tick
 * tks_decode gave). */
size_t tks_tick_object_size(enum tks_mode mode, const struct tks_dyn_tick *t);
struct tks_dynobj *tks_tick_object(enum tks_mode mode, const struct tks_dyn_tick *t, void *mem);

/* Counts a rejected tick's undeclared field (unknown_field in slotted
 * mode) in the usage table. */
void tks_tick_note_rejected(const struct tks_tick_sink *k, const char *name);

struct tks_symtab;
/* Counts the undeclared fields of an object put in the store without
 * tks_tick_store (a checkpoint's, as the loader stores them) as storing
 * its tick would have: in fallback mode every field of the overflow map,
 * in dynamic mode those schema does not declare.  names: the table the
 * object's keys are ids of. */
void tks_tick_note_stored(const struct tks_tick_sink *k, const struct tks_schema *schema,
                          const struct tks_symtab *names, const struct tks_dynobj *o);

#endif

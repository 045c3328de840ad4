/*
 * Taking a decoded tick into the store: the representation choice
 * (slotted record, record plus overflow map, dynamic object) and the cost
 * of the undeclared fields in the usage table.  What an overflow map costs
 * is the store's answer (tks_store_overflow_cost), not recomputed here.
 */
#include "tick.h"

#include <errno.h>
#include <string.h>

#include "symtab.h"

/* Counts one kept undeclared field.  In fallback mode the overflow map
 * (and its pointer) is what those fields cost, shared evenly (share); in
 * dynamic mode every tick is an object anyway, so a field costs its own
 * slot and string bytes.  Returns false when the table had no room. */
static bool note_field(const struct tks_tick_sink *k, const char *key, size_t len,
                       const struct tks_value *v, uint64_t share) {
  struct tks_usage_field *u = tks_usage_get(k->usage, key, len);
  if (!u) return false;
  u->ticks++;
  u->kept++;
  u->types |= tks_usage_type_bit(v->type);
  if (v->type == TKS_V_STR) u->string_bytes += v->v.s.len;
  u->cost_bytes += k->mode == TKS_MODE_FALLBACK
                       ? share
                       : sizeof(struct tks_dyn_slot) + (v->type == TKS_V_STR ? v->v.s.len : 0);
  return true;
}

/* Counts a kept tick's undeclared fields. */
static void note_kept(const struct tks_tick_sink *k, const struct tks_dyn_tick *t,
                      const struct tks_dynobj *o) {
  if (t->undeclared == 0) return;
  uint64_t share = tks_store_overflow_cost(k->store, o) / t->undeclared;
  bool overflow = false;
  for (unsigned i = 0; i < t->n; i++) {
    const struct tks_dyn_field *f = &t->f[i];
    if (f->field < 0) overflow |= !note_field(k, f->key, f->key_len, &f->value, share);
  }
  k->usage->overflow += overflow;
}

void tks_tick_note_stored(const struct tks_tick_sink *k, const struct tks_schema *schema,
                          const struct tks_symtab *names, const struct tks_dynobj *o) {
  const struct tks_dyn_slot *e = tks_dynobj_entries(o);
  const char *name[TKS_DYNOBJ_MAX_FIELDS];
  size_t len[TKS_DYNOBJ_MAX_FIELDS];
  unsigned undeclared = 0;
  for (unsigned i = 0; i < o->count; i++) {
    name[i] = tks_symtab_name(names, e[i].key, &len[i]);
    if (name[i] && (k->mode == TKS_MODE_FALLBACK || tks_schema_find(schema, name[i], len[i]) < 0))
      undeclared++;
    else
      name[i] = NULL;
  }
  if (undeclared == 0) return;
  uint64_t share = tks_store_overflow_cost(k->store, o) / undeclared;
  bool overflow = false;
  for (unsigned i = 0; i < o->count; i++) {
    if (!name[i]) continue;
    struct tks_value v = tks_dynobj_value(o, &e[i]);
    overflow |= !note_field(k, name[i], len[i], &v, share);
  }
  k->usage->overflow += overflow;
}

/* The fields of t that go into its object: fallback, the undeclared. */
static int fill_object(struct tks_dynobj *o, enum tks_mode mode, const struct tks_dyn_tick *t) {
  bool fallback = mode == TKS_MODE_FALLBACK;
  int r = 0;
  for (unsigned i = 0; i < t->n && r == 0; i++)
    if (!fallback || t->f[i].field < 0) r = tks_dynobj_put(o, t->f[i].name, &t->f[i].value);
  return r;
}

size_t tks_tick_object_size(enum tks_mode mode, const struct tks_dyn_tick *t) {
  return tks_dynobj_size(mode == TKS_MODE_FALLBACK ? t->undeclared : t->n, t->string_bytes);
}

struct tks_dynobj *tks_tick_object(enum tks_mode mode, const struct tks_dyn_tick *t, void *mem) {
  struct tks_dynobj *o = tks_dynobj_init(mem, mode == TKS_MODE_FALLBACK ? t->undeclared : t->n,
                                         t->string_bytes);
  return fill_object(o, mode, t) == 0 ? o : NULL;
}

/* Fallback: the record plus an overflow map of the undeclared fields;
 * dynamic: one object of every field. */
static int store_dynamic(const struct tks_tick_sink *k, const struct tks_dyn_tick *t,
                         const void *record) {
  bool fallback = k->mode == TKS_MODE_FALLBACK;
  unsigned n = fallback ? t->undeclared : t->n;
  /* An object no slab class can hold is the tick's fault, not a full store:
   * it must not set the when_full policy (eviction) going. */
  if (!tks_store_dynobj_fits(k->store, n, t->string_bytes)) return -E2BIG;
  struct tks_dynobj *o = tks_store_new_dynobj(k->store, n, t->string_bytes);
  if (!o) return -ENOMEM;
  int r = fill_object(o, k->mode, t);
  if (r == 0)
    r = fallback ? tks_store_append_overflow(k->store, record, o)
                 : tks_store_append_dynamic(k->store, t->symbol, t->ts, o);
  if (r) {
    tks_store_drop_dynobj(k->store, o);
    return -ENOMEM;
  }
  note_kept(k, t, o);
  return 0;
}

int tks_tick_store_dynamic(const struct tks_tick_sink *k, const void *record,
                           const struct tks_dyn_tick *dyn) {
  return store_dynamic(k, dyn, record);
}

void tks_tick_note_rejected(const struct tks_tick_sink *k, const char *name) {
  struct tks_usage_field *u = tks_usage_get(k->usage, name, strlen(name));
  if (u)
    u->ticks++, u->rejected++;
  else
    k->usage->overflow++;
}

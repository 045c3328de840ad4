/*
 * JSON rendering of stored ticks: a record field by field in slot order, a
 * dynamic object's fields the schema declares first, in slot order, then
 * the others by name id (the order the daemon first saw them).  Doubles in
 * their shortest exact form, NaN and Inf as null.
 */
#include "render.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symtab.h"

/* A double in the shortest form that reads back as the same value (JSON
 * has no NaN or Inf: those are null). */
static int put_double(struct tks_buf *out, double x) {
  if (!isfinite(x)) return tks_buf_puts(out, "null");
  char num[32];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(num, sizeof num, "%.*g", prec, x);
    if (strtod(num, NULL) == x) break;
  }
  return tks_buf_puts(out, num);
}

int tks_record_json(const struct tks_schema *s, const struct tks_symtab *symbols,
                    const struct tks_symtab *strings, const void *record, struct tks_buf *out) {
  const char *rec = record;
  int r = tks_buf_putc(out, '{');
  for (unsigned fi = 0; fi < s->nfields && r == 0; fi++) {
    const struct tks_field *f = &s->fields[fi];
    const char *at = rec + f->offset;
    if (fi) r |= tks_buf_putc(out, ',');
    r |= tks_buf_json_string(out, f->name, strlen(f->name));
    r |= tks_buf_putc(out, ':');
    switch (f->type) {
    case TKS_TYPE_TIMESTAMP:
    case TKS_TYPE_I64: {
      int64_t x;
      memcpy(&x, at, 8);
      r |= tks_buf_printf(out, "%lld", (long long)x);
      break;
    }
    case TKS_TYPE_U32: {
      uint32_t x;
      memcpy(&x, at, 4);
      r |= tks_buf_printf(out, "%u", x);
      break;
    }
    case TKS_TYPE_F64: {
      double x;
      memcpy(&x, at, 8);
      r |= put_double(out, x);
      break;
    }
    case TKS_TYPE_SYMBOL:
    case TKS_TYPE_STRING: {
      uint32_t id;
      memcpy(&id, at, 4);
      size_t len = 0;
      const char *name = tks_symtab_name(f->type == TKS_TYPE_SYMBOL ? symbols : strings, id, &len);
      r |= name ? tks_buf_json_string(out, name, len) : tks_buf_puts(out, "null");
      break;
    }
    case TKS_TYPE_BOOL: r |= tks_buf_puts(out, *(const bool *)at ? "true" : "false"); break;
    case TKS_TYPE__COUNT: break;
    }
  }
  r |= tks_buf_putc(out, '}');
  return r ? -ENOMEM : 0;
}

/* Appends one dynamic value as JSON. */
static int dyn_value_json(const struct tks_dynobj *o, const struct tks_dyn_slot *sl,
                          const struct tks_symtab *symbols, const struct tks_symtab *strings,
                          struct tks_buf *out) {
  switch ((enum tks_dyn_type)sl->type) {
  case TKS_DYN_NIL: return tks_buf_puts(out, "null");
  case TKS_DYN_BOOL: return tks_buf_puts(out, sl->v.b ? "true" : "false");
  case TKS_DYN_INT: return tks_buf_printf(out, "%lld", (long long)sl->v.i);
  case TKS_DYN_UINT: return tks_buf_printf(out, "%llu", (unsigned long long)sl->v.u);
  case TKS_DYN_F64: return put_double(out, sl->v.f);
  case TKS_DYN_STR: return tks_buf_json_string(out, tks_dynobj_str(o, sl), sl->len);
  case TKS_DYN_SYM:
  case TKS_DYN_ISTR: {
    size_t len = 0;
    const char *n = tks_symtab_name(sl->type == TKS_DYN_SYM ? symbols : strings, sl->v.id, &len);
    return n ? tks_buf_json_string(out, n, len) : tks_buf_puts(out, "null");
  }
  }
  return tks_buf_puts(out, "null");
}

/* Appends the object's fields as JSON members: those of the schema first,
 * in slot order (unless only_undeclared), then the others by name id. */
static int dyn_members_json(const struct tks_schema *schema, const struct tks_symtab *names,
                            const struct tks_symtab *symbols, const struct tks_symtab *strings,
                            const struct tks_dynobj *o, bool only_undeclared, bool first,
                            struct tks_buf *out) {
  int r = 0;
  uint32_t declared_ids[TKS_SCHEMA_MAX_FIELDS];
  unsigned nd = 0;
  for (unsigned fi = 0; fi < schema->nfields; fi++) {
    const struct tks_field *f = &schema->fields[fi];
    uint32_t id;
    if (tks_symtab_lookup(names, f->name, f->name_len, &id) != 0) continue;
    declared_ids[nd++] = id;
    const struct tks_dyn_slot *sl = tks_dynobj_get(o, id);
    if (!sl || only_undeclared) continue;
    if (!first) r |= tks_buf_putc(out, ',');
    first = false;
    r |= tks_buf_json_string(out, f->name, f->name_len);
    r |= tks_buf_putc(out, ':');
    r |= dyn_value_json(o, sl, symbols, strings, out);
  }
  /* Then the others, by name id: the order the daemon first saw them. */
  uint32_t last = 0;
  for (;;) {
    const struct tks_dyn_slot *next = NULL, *ent = tks_dynobj_entries(o);
    for (unsigned i = 0; i < o->count; i++) {
      const struct tks_dyn_slot *sl = &ent[i];
      if (sl->key <= last || (next && sl->key >= next->key)) continue;
      bool is_declared = false;
      for (unsigned k = 0; k < nd; k++) is_declared |= declared_ids[k] == sl->key;
      if (!is_declared) next = sl;
    }
    if (!next) break;
    last = next->key;
    size_t len = 0;
    const char *name = tks_symtab_name(names, next->key, &len);
    if (!first) r |= tks_buf_putc(out, ',');
    first = false;
    r |= tks_buf_json_string(out, name ? name : "?", name ? len : 1);
    r |= tks_buf_putc(out, ':');
    r |= dyn_value_json(o, next, symbols, strings, out);
  }
  return r;
}

int tks_dynobj_json(const struct tks_schema *schema, const struct tks_symtab *names,
                    const struct tks_symtab *symbols, const struct tks_symtab *strings,
                    const struct tks_dynobj *o, struct tks_buf *out) {
  int r = tks_buf_putc(out, '{');
  r |= dyn_members_json(schema, names, symbols, strings, o, false, true, out);
  r |= tks_buf_putc(out, '}');
  return r ? -ENOMEM : 0;
}

int tks_tick_json(const struct tks_schema *schema, const struct tks_symtab *names,
                  const struct tks_symtab *symbols, const struct tks_symtab *strings,
                  const void *record, const struct tks_dynobj *obj, struct tks_buf *out) {
  if (!record) return tks_dynobj_json(schema, names, symbols, strings, obj, out);
  int r = tks_record_json(schema, symbols, strings, record, out);
  if (r || !obj) return r;
  out->len--; /* reopen the record's object for its overflow fields */
  r = dyn_members_json(schema, names, symbols, strings, obj, true, false, out);
  r |= tks_buf_putc(out, '}');
  return r ? -ENOMEM : 0;
}

/*
 * JSON rendering of stored ticks.  A record's fields (tks_field_value())
 * and an object's slots (tks_dynobj_value()) are read into struct
 * tks_value and printed by value_json(); an object's fields the schema
 * declares come first, in slot order, then the others by name id (the
 * order the daemon first saw them).
 */
#include "render.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symtab.h"

/* A double in the shortest form that reads back as the same value, and
 * reads back as a float: "2.0", not "2"; "-0.0" keeps its sign (JSON has
 * no NaN or Inf: those are null, and the decoder refuses them). */
static int put_double(struct tks_buf *out, double x) {
  if (!isfinite(x)) return tks_buf_puts(out, "null");
  char num[40];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(num, sizeof num, "%.*g", prec, x);
    if (strtod(num, NULL) == x) break;
  }
  if (!strpbrk(num, ".e")) strcat(num, ".0");
  return tks_buf_puts(out, num);
}

const char *const tks_ts_format_names[TKS_TS_FORMAT_COUNT] = {"ns", "iso", "string"};

int tks_ts_format_parse(const char *s, size_t len, enum tks_ts_format *out) {
  for (int i = 0; i < TKS_TS_FORMAT_COUNT; i++)
    if (strlen(tks_ts_format_names[i]) == len && memcmp(s, tks_ts_format_names[i], len) == 0) {
      *out = (enum tks_ts_format)i;
      return 0;
    }
  return -EINVAL;
}

int tks_ts_json(int64_t ns, enum tks_ts_format f, struct tks_buf *out) {
  if (f == TKS_TS_ISO) {
    char iso[TKS_ISO8601_LEN + 1];
    tks_format_iso8601(ns, iso);
    return tks_buf_printf(out, "\"%s\"", iso);
  }
  return tks_buf_printf(out, f == TKS_TS_STRING ? "\"%lld\"" : "%lld", (long long)ns);
}

/* Appends one value as JSON; an id not in its table is null; ts (the
 * timestamp field's value) in format tf. */
static int value_json(const struct tks_value *v, const struct tks_symtab *symbols,
                      const struct tks_symtab *strings, bool ts, enum tks_ts_format tf,
                      struct tks_buf *out) {
  if (ts && v->type == TKS_V_INT) return tks_ts_json(v->v.i, tf, out);
  switch (v->type) {
  case TKS_V_NIL: break;
  case TKS_V_BOOL: return tks_buf_puts(out, v->v.b ? "true" : "false");
  case TKS_V_INT: return tks_buf_printf(out, "%lld", (long long)v->v.i);
  case TKS_V_UINT: return tks_buf_printf(out, "%llu", (unsigned long long)v->v.u);
  case TKS_V_F64: return put_double(out, v->v.f);
  case TKS_V_STR: return tks_buf_json_string(out, v->v.s.p, v->v.s.len);
  case TKS_V_SYM:
  case TKS_V_ISTR: {
    size_t len = 0;
    const char *n = tks_symtab_name(v->type == TKS_V_SYM ? symbols : strings, v->v.id, &len);
    if (n) return tks_buf_json_string(out, n, len);
    break;
  }
  }
  return tks_buf_puts(out, "null");
}

static int record_json(const struct tks_schema *s, const struct tks_symtab *symbols,
                       const struct tks_symtab *strings, const void *record, enum tks_ts_format tf,
                       struct tks_buf *out) {
  int r = tks_buf_putc(out, '{');
  for (unsigned fi = 0; fi < s->nfields && r == 0; fi++) {
    const struct tks_field *f = &s->fields[fi];
    struct tks_value v = tks_field_value(f, record);
    if (fi) r |= tks_buf_putc(out, ',');
    r |= tks_buf_json_string(out, f->name, strlen(f->name));
    r |= tks_buf_putc(out, ':');
    r |= value_json(&v, symbols, strings, (int)fi == s->ts_field, tf, out);
  }
  r |= tks_buf_putc(out, '}');
  return r ? -ENOMEM : 0;
}

int tks_record_json(const struct tks_schema *s, const struct tks_symtab *symbols,
                    const struct tks_symtab *strings, const void *record, struct tks_buf *out) {
  return record_json(s, symbols, strings, record, TKS_TS_NS, out);
}

/* Appends one object member: "name":value. */
static int member_json(const char *name, size_t len, const struct tks_dynobj *o,
                       const struct tks_dyn_slot *sl, const struct tks_symtab *symbols,
                       const struct tks_symtab *strings, bool first, bool ts, enum tks_ts_format tf,
                       struct tks_buf *out) {
  struct tks_value v = tks_dynobj_value(o, sl);
  int r = first ? 0 : tks_buf_putc(out, ',');
  r |= tks_buf_json_string(out, name, len);
  r |= tks_buf_putc(out, ':');
  r |= value_json(&v, symbols, strings, ts, tf, out);
  return r;
}

/* Appends the object's fields as JSON members: those of the schema first,
 * in slot order (unless only_undeclared), then the others by name id. */
static int dyn_members_json(const struct tks_schema *schema, const struct tks_symtab *names,
                            const struct tks_symtab *symbols, const struct tks_symtab *strings,
                            const struct tks_dynobj *o, bool only_undeclared, bool first,
                            enum tks_ts_format tf, struct tks_buf *out) {
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
    r |= member_json(f->name, f->name_len, o, sl, symbols, strings, first,
                     (int)fi == schema->ts_field, tf, out);
    first = false;
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
    r |= member_json(name ? name : "?", name ? len : 1, o, next, symbols, strings, first, false, tf,
                     out);
    first = false;
  }
  return r;
}

int tks_dynobj_json(const struct tks_schema *schema, const struct tks_symtab *names,
                    const struct tks_symtab *symbols, const struct tks_symtab *strings,
                    const struct tks_dynobj *o, struct tks_buf *out) {
  int r = tks_buf_putc(out, '{');
  r |= dyn_members_json(schema, names, symbols, strings, o, false, true, TKS_TS_NS, out);
  r |= tks_buf_putc(out, '}');
  return r ? -ENOMEM : 0;
}

int tks_tick_json_as(const struct tks_schema *schema, const struct tks_symtab *names,
                     const struct tks_symtab *symbols, const struct tks_symtab *strings,
                     const void *record, const struct tks_dynobj *obj, enum tks_ts_format tf,
                     struct tks_buf *out) {
  int r;
  if (!record) {
    r = tks_buf_putc(out, '{');
    r |= dyn_members_json(schema, names, symbols, strings, obj, false, true, tf, out);
    r |= tks_buf_putc(out, '}');
    return r ? -ENOMEM : 0;
  }
  r = record_json(schema, symbols, strings, record, tf, out);
  if (r || !obj) return r;
  out->len--; /* reopen the record's object for its overflow fields */
  r = dyn_members_json(schema, names, symbols, strings, obj, true, false, tf, out);
  r |= tks_buf_putc(out, '}');
  return r ? -ENOMEM : 0;
}

int tks_tick_json(const struct tks_schema *schema, const struct tks_symtab *names,
                  const struct tks_symtab *symbols, const struct tks_symtab *strings,
                  const void *record, const struct tks_dynobj *obj, struct tks_buf *out) {
  return tks_tick_json_as(schema, names, symbols, strings, record, obj, TKS_TS_NS, out);
}

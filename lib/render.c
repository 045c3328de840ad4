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
int tks_json_double(struct tks_buf *out, double x) {
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

/* Where a tick is rendered: JSON (ts in format tf) or msgpack. */
struct out {
  struct tks_buf *b;
  bool mp;
  enum tks_ts_format tf;
  const struct tks_symtab *symbols, *strings;
};

/* msgpack's forms, big-endian, the shortest that holds the value (as
 * msgpack-c's packer writes them). */
static int mp_put(struct tks_buf *b, uint8_t tag, uint64_t x, unsigned bytes) {
  if (tks_buf_reserve(b, 1 + bytes)) return -ENOMEM;
  uint8_t *p = (uint8_t *)b->data + b->len;
  p[0] = tag;
  for (unsigned i = 0; i < bytes; i++) p[1 + i] = (uint8_t)(x >> (8 * (bytes - 1 - i)));
  b->len += 1 + bytes;
  return 0;
}

static int mp_uint(struct tks_buf *b, uint64_t u) {
  if (u < 128) return mp_put(b, (uint8_t)u, 0, 0);
  if (u <= UINT8_MAX) return mp_put(b, 0xcc, u, 1);
  if (u <= UINT16_MAX) return mp_put(b, 0xcd, u, 2);
  if (u <= UINT32_MAX) return mp_put(b, 0xce, u, 4);
  return mp_put(b, 0xcf, u, 8);
}

static int mp_int(struct tks_buf *b, int64_t i) {
  if (i >= 0) return mp_uint(b, (uint64_t)i);
  if (i >= -32) return mp_put(b, (uint8_t)(int8_t)i, 0, 0);
  if (i >= INT8_MIN) return mp_put(b, 0xd0, (uint8_t)(int8_t)i, 1);
  if (i >= INT16_MIN) return mp_put(b, 0xd1, (uint16_t)(int16_t)i, 2);
  if (i >= INT32_MIN) return mp_put(b, 0xd2, (uint32_t)(int32_t)i, 4);
  return mp_put(b, 0xd3, (uint64_t)i, 8);
}

static int mp_str(struct tks_buf *b, const char *s, size_t n) {
  int r = n < 32            ? mp_put(b, (uint8_t)(0xa0 | n), 0, 0)
          : n <= UINT8_MAX  ? mp_put(b, 0xd9, n, 1)
          : n <= UINT16_MAX ? mp_put(b, 0xda, n, 2)
                            : mp_put(b, 0xdb, n, 4);
  return r ? r : tks_buf_append(b, s, n);
}

int tks_msgpack_map_header(struct tks_buf *b, uint32_t n) {
  if (n < 16) return mp_put(b, (uint8_t)(0x80 | n), 0, 0);
  return n <= UINT16_MAX ? mp_put(b, 0xde, n, 2) : mp_put(b, 0xdf, n, 4);
}

int tks_msgpack_str(struct tks_buf *b, const char *s, size_t n) { return mp_str(b, s, n); }
int tks_msgpack_uint(struct tks_buf *b, uint64_t u) { return mp_uint(b, u); }
int tks_msgpack_int(struct tks_buf *b, int64_t i) { return mp_int(b, i); }

/* Appends one value; an id not in its table is nil (JSON null); ts (the
 * timestamp field's value) in o's format (JSON only). */
static int put_value(const struct out *o, const struct tks_value *v, bool ts) {
  struct tks_buf *out = o->b;
  if (o->mp) {
    switch (v->type) {
    case TKS_V_NIL: break;
    case TKS_V_BOOL: return mp_put(out, v->v.b ? 0xc3 : 0xc2, 0, 0);
    case TKS_V_INT: return mp_int(out, v->v.i);
    case TKS_V_UINT: return mp_uint(out, v->v.u);
    case TKS_V_F64: {
      uint64_t bits;
      memcpy(&bits, &v->v.f, 8);
      return mp_put(out, 0xcb, bits, 8);
    }
    case TKS_V_STR: return mp_str(out, v->v.s.p, v->v.s.len);
    case TKS_V_SYM:
    case TKS_V_ISTR: {
      size_t len = 0;
      const char *n = tks_symtab_name(v->type == TKS_V_SYM ? o->symbols : o->strings, v->v.id,
                                      &len);
      if (n) return mp_str(out, n, len);
      break;
    }
    }
    return mp_put(out, 0xc0, 0, 0);
  }
  if (ts && v->type == TKS_V_INT) return tks_ts_json(v->v.i, o->tf, out);
  switch (v->type) {
  case TKS_V_NIL: break;
  case TKS_V_BOOL: return tks_buf_puts(out, v->v.b ? "true" : "false");
  case TKS_V_INT: return tks_buf_printf(out, "%lld", (long long)v->v.i);
  case TKS_V_UINT: return tks_buf_printf(out, "%llu", (unsigned long long)v->v.u);
  case TKS_V_F64: return tks_json_double(out, v->v.f);
  case TKS_V_STR: return tks_buf_json_string(out, v->v.s.p, v->v.s.len);
  case TKS_V_SYM:
  case TKS_V_ISTR: {
    size_t len = 0;
    const char *n = tks_symtab_name(v->type == TKS_V_SYM ? o->symbols : o->strings, v->v.id, &len);
    if (n) return tks_buf_json_string(out, n, len);
    break;
  }
  }
  return tks_buf_puts(out, "null");
}

/* One member: ("," unless first) key, value. */
static int put_member(const struct out *o, const char *name, size_t len, const struct tks_value *v,
                      bool first, bool ts) {
  int r;
  if (o->mp) {
    r = mp_str(o->b, name, len);
  } else {
    r = first ? 0 : tks_buf_putc(o->b, ',');
    r |= tks_buf_json_string(o->b, name, len);
    r |= tks_buf_putc(o->b, ':');
  }
  return r | put_value(o, v, ts);
}

/* The members of a record, in slot order. */
static int record_members(const struct out *o, const struct tks_schema *s, const void *record) {
  int r = 0;
  for (unsigned fi = 0; fi < s->nfields && r == 0; fi++) {
    const struct tks_field *f = &s->fields[fi];
    struct tks_value v = tks_field_value(f, record);
    r |= put_member(o, f->name, strlen(f->name), &v, fi == 0, (int)fi == s->ts_field);
  }
  return r;
}

/* The name ids of the schema's fields that are in names (nd of them). */
static unsigned declared_ids(const struct tks_schema *schema, const struct tks_symtab *names,
                             uint32_t ids[TKS_SCHEMA_MAX_FIELDS],
                             int fields[TKS_SCHEMA_MAX_FIELDS]) {
  unsigned nd = 0;
  for (unsigned fi = 0; fi < schema->nfields; fi++) {
    const struct tks_field *f = &schema->fields[fi];
    uint32_t id;
    if (tks_symtab_lookup(names, f->name, f->name_len, &id) != 0) continue;
    fields[nd] = (int)fi;
    ids[nd++] = id;
  }
  return nd;
}

/* Members of the object: (unless only_undeclared) those of the schema
 * first, in slot order, then the others by name id.  Sets *count to how
 * many were (or would be: with o->b NULL nothing is written) put. */
static int dyn_members(const struct out *o, const struct tks_schema *schema,
                       const struct tks_symtab *names, const struct tks_dynobj *obj,
                       bool only_undeclared, bool first, uint32_t *count) {
  int r = 0;
  uint32_t ids[TKS_SCHEMA_MAX_FIELDS];
  int fields[TKS_SCHEMA_MAX_FIELDS];
  unsigned nd = declared_ids(schema, names, ids, fields);
  unsigned declared_held = 0;
  for (unsigned k = 0; k < nd; k++) {
    const struct tks_dyn_slot *sl = tks_dynobj_get(obj, ids[k]);
    if (!sl) continue;
    declared_held++;
    if (only_undeclared || !o->b) continue;
    const struct tks_field *f = &schema->fields[fields[k]];
    struct tks_value v = tks_dynobj_value(obj, sl);
    r |= put_member(o, f->name, f->name_len, &v, first, fields[k] == schema->ts_field);
    first = false;
  }
  *count = obj->count - (only_undeclared ? declared_held : 0);
  if (!o->b) return 0;
  /* Then the others, by name id: the order the daemon first saw them. */
  uint32_t last = 0;
  for (;;) {
    const struct tks_dyn_slot *next = NULL, *ent = tks_dynobj_entries(obj);
    for (unsigned i = 0; i < obj->count; i++) {
      const struct tks_dyn_slot *sl = &ent[i];
      if (sl->key <= last || (next && sl->key >= next->key)) continue;
      bool is_declared = false;
      for (unsigned k = 0; k < nd; k++) is_declared |= ids[k] == sl->key;
      if (!is_declared) next = sl;
    }
    if (!next) break;
    last = next->key;
    size_t len = 0;
    const char *name = tks_symtab_name(names, next->key, &len);
    struct tks_value v = tks_dynobj_value(obj, next);
    r |= put_member(o, name ? name : "?", name ? len : 1, &v, first, false);
    first = false;
  }
  return r;
}

/* A record, an object, or a record and its overflow map, as one map. */
static int tick_out(const struct out *o, const struct tks_schema *schema,
                    const struct tks_symtab *names, const void *record,
                    const struct tks_dynobj *obj) {
  uint32_t n = 0;
  int r = 0;
  if (o->mp) {
    const struct out count_only = {.mp = true};
    if (obj) dyn_members(&count_only, schema, names, obj, record != NULL, true, &n);
    r = tks_msgpack_map_header(o->b, (record ? schema->nfields : 0) + n);
  } else {
    r = tks_buf_putc(o->b, '{');
  }
  if (record) r |= record_members(o, schema, record);
  if (obj) r |= dyn_members(o, schema, names, obj, record != NULL, record == NULL, &n);
  if (!o->mp) r |= tks_buf_putc(o->b, '}');
  return r ? -ENOMEM : 0;
}

int tks_record_json(const struct tks_schema *s, const struct tks_symtab *symbols,
                    const struct tks_symtab *strings, const void *record, struct tks_buf *out) {
  const struct out o = {.b = out, .symbols = symbols, .strings = strings};
  return tick_out(&o, s, NULL, record, NULL);
}

int tks_dynobj_json(const struct tks_schema *schema, const struct tks_symtab *names,
                    const struct tks_symtab *symbols, const struct tks_symtab *strings,
                    const struct tks_dynobj *obj, struct tks_buf *out) {
  const struct out o = {.b = out, .symbols = symbols, .strings = strings};
  return tick_out(&o, schema, names, NULL, obj);
}

int tks_tick_json_as(const struct tks_schema *schema, const struct tks_symtab *names,
                     const struct tks_symtab *symbols, const struct tks_symtab *strings,
                     const void *record, const struct tks_dynobj *obj, enum tks_ts_format tf,
                     struct tks_buf *out) {
  const struct out o = {.b = out, .tf = tf, .symbols = symbols, .strings = strings};
  return tick_out(&o, schema, names, record, obj);
}

/* Big-endian x in n bytes (1, 2, 4 or 8) at p; returns p + n.  One
 * byte swap and one store (the compiler does not merge a byte loop). */
static inline uint8_t *be(uint8_t *p, uint64_t x, unsigned n) {
  if (n == 8) {
    uint64_t v = __builtin_bswap64(x);
    memcpy(p, &v, 8);
  } else if (n == 4) {
    uint32_t v = __builtin_bswap32((uint32_t)x);
    memcpy(p, &v, 4);
  } else if (n == 2) {
    uint16_t v = __builtin_bswap16((uint16_t)x);
    memcpy(p, &v, 2);
  } else {
    for (unsigned i = 0; i < n; i++) p[i] = (uint8_t)(x >> (8 * (n - 1 - i)));
  }
  return p + n;
}

static inline uint8_t *w_uint(uint8_t *p, uint64_t u) {
  if (u < 128) {
    *p = (uint8_t)u;
    return p + 1;
  }
  if (u > UINT32_MAX) return *p = 0xcf, be(p + 1, u, 8); /* a ts in ns: first */
  if (u <= UINT8_MAX) return *p = 0xcc, be(p + 1, u, 1);
  if (u <= UINT16_MAX) return *p = 0xcd, be(p + 1, u, 2);
  return *p = 0xce, be(p + 1, u, 4);
}

static inline uint8_t *w_int(uint8_t *p, int64_t i) {
  if (i >= 0) return w_uint(p, (uint64_t)i);
  if (i >= -32) {
    *p = (uint8_t)(int8_t)i;
    return p + 1;
  }
  if (i >= INT8_MIN) return *p = 0xd0, be(p + 1, (uint8_t)(int8_t)i, 1);
  if (i >= INT16_MIN) return *p = 0xd1, be(p + 1, (uint16_t)(int16_t)i, 2);
  if (i >= INT32_MIN) return *p = 0xd2, be(p + 1, (uint32_t)(int32_t)i, 4);
  return *p = 0xd3, be(p + 1, (uint64_t)i, 8);
}

/* n bytes from s to p with no call for the short ones (names, tickers):
 * two overlapping copies of 8 or 4 bytes, or three single bytes. */
static inline void copy_short(uint8_t *p, const uint8_t *s, size_t n) {
  if (n > 16) {
    memcpy(p, s, n);
  } else if (n >= 8) {
    memcpy(p, s, 8);
    memcpy(p + n - 8, s + n - 8, 8);
  } else if (n >= 4) {
    memcpy(p, s, 4);
    memcpy(p + n - 4, s + n - 4, 4);
  } else if (n) {
    p[0] = s[0];
    p[n / 2] = s[n / 2];
    p[n - 1] = s[n - 1];
  }
}

static inline uint8_t *w_str(uint8_t *p, const char *s, size_t n) {
  if (n < 32)
    *p++ = (uint8_t)(0xa0 | n);
  else if (n <= UINT8_MAX)
    *p = 0xd9, p = be(p + 1, n, 1);
  else if (n <= UINT16_MAX)
    *p = 0xda, p = be(p + 1, n, 2);
  else
    *p = 0xdb, p = be(p + 1, n, 4);
  memcpy(p, s, n);
  return p + n;
}

/* A record alone, the common case of subscriptions and export: room for
 * its fixed part is reserved once (a text that does not fit the slack
 * reserves again), then written with no further check. */
#define MP_SLACK 256 /* bytes of text a record takes without another reserve */
__attribute__((noinline)) static int record_msgpack(const struct tks_schema *s,
                                                    const struct tks_symtab *symbols,
                                                    const struct tks_symtab *strings,
                                                    const void *record, struct tks_buf *out) {
  /* A bound, not a sum of the names (a loop here cost half the render):
   * the header, the last name's whole-array copy, and for each field its
   * name and at most 9 bytes of value or a 5-byte string header. */
  size_t fixed = 3 + TKS_FIELD_NAME_MAX + s->nfields * (size_t)(1 + TKS_FIELD_NAME_MAX + 9 + 5);
  if (out->cap - out->len < fixed + MP_SLACK && tks_buf_reserve(out, fixed + MP_SLACK))
    return -ENOMEM;
  size_t was = out->len;
  uint8_t *p = (uint8_t *)out->data + out->len;
  size_t slack = MP_SLACK; /* text room left */
  if (s->nfields < 16)
    *p++ = (uint8_t)(0x80 | s->nfields);
  else
    *p = 0xde, p = be(p + 1, s->nfields, 2);
  for (const struct tks_field *f = s->fields, *end = f + s->nfields; f < end; f++) {
    /* A name is under 32 bytes: a fixstr, copied as the whole array (one
     * fixed-size copy; the bytes past it are overwritten next). */
    memcpy(p, f->mp_key, sizeof f->mp_key);
    p += 1 + f->name_len;
    const char *at = (const char *)record + f->offset;
    switch (f->vtype) {
    case TKS_V_INT: {
      int64_t i;
      if (f->size == 8) {
        memcpy(&i, at, 8);
      } else {
        uint32_t u;
        memcpy(&u, at, 4);
        i = u;
      }
      p = w_int(p, i);
      break;
    }
    case TKS_V_F64: {
      uint64_t bits;
      memcpy(&bits, at, 8);
      *p = 0xcb;
      p = be(p + 1, bits, 8);
      break;
    }
    case TKS_V_BOOL: *p++ = *(const bool *)at ? 0xc3 : 0xc2; break;
    case TKS_V_SYM:
    case TKS_V_ISTR: {
      uint32_t id;
      memcpy(&id, at, 4);
      const struct tks_symtab *t = f->vtype == TKS_V_SYM ? symbols : strings;
      if (id == 0) { /* "" */
        *p++ = 0xa0;
        break;
      }
      if (id - 1u < tks_symtab_count(t)) { /* the common case: a name under 32 bytes */
        const uint8_t *ln = tks_symtab_lname(t, id);
        if (ln[0] < 32) {
          *p = (uint8_t)(0xa0 | ln[0]);
          copy_short(p + 1, ln + 1, ln[0]);
          p += 1 + ln[0];
          break;
        }
      }
      size_t len = 0;
      const char *text = tks_symtab_name(t, id, &len);
      if (!text) {
        *p++ = 0xc0;
        break;
      }
      if (len > slack) {
        size_t used = (size_t)((char *)p - out->data);
        out->len = used;
        if (tks_buf_reserve(out, fixed + len + MP_SLACK)) {
          out->len = was;
          return -ENOMEM;
        }
        p = (uint8_t *)out->data + used;
        slack = len + MP_SLACK;
      }
      slack -= len;
      p = w_str(p, text, len);
      break;
    }
    default: *p++ = 0xc0; break; /* no declared type holds the others */
    }
  }
  out->len = (size_t)((char *)p - out->data);
  return 0;
}

/* A text (id in t) the long way: a name over 31 bytes, or an id not in
 * the table (nil), with room reserved for it past the slack. */
__attribute__((noinline)) static uint8_t *long_text(struct tks_buf *out, uint8_t *p,
                                                    const struct tks_symtab *t, uint32_t id,
                                                    size_t fixed, size_t *slack) {
  size_t len = 0;
  const char *text = tks_symtab_name(t, id, &len);
  if (!text) {
    *p = 0xc0;
    return p + 1;
  }
  if (len > *slack) {
    size_t used = (size_t)((char *)p - out->data);
    if (tks_buf_reserve(out, (used - out->len) + fixed + len + MP_SLACK)) return NULL;
    p = (uint8_t *)out->data + used;
    *slack = len + MP_SLACK;
  }
  *slack -= len;
  return w_str(p, text, len);
}

/* record_msgpack() by the schema's plan (schema.h, mp_plan): the same
 * bytes, a field a 32-byte step (key, offset and value kind in one line),
 * each step's code going straight to the next one's (threaded code: no
 * loop test, no bounds check of a switch). */
static int record_msgpack_plan(const struct tks_schema *s, const struct tks_symtab *symbols,
                               const struct tks_symtab *strings, const void *record,
                               struct tks_buf *out) {
  size_t fixed = s->mp_bound;
  if (out->cap - out->len < fixed + MP_SLACK && tks_buf_reserve(out, fixed + MP_SLACK))
    return -ENOMEM;
  static const void *const ops[] = {
      [TKS_MP_I64] = &&op_i64,   [TKS_MP_U32] = &&op_u32, [TKS_MP_F64] = &&op_f64,
      [TKS_MP_BOOL] = &&op_bool, [TKS_MP_SYM] = &&op_sym, [TKS_MP_ISTR] = &&op_istr,
  };
  uint8_t *p = (uint8_t *)out->data + out->len;
  size_t slack = MP_SLACK; /* text room left */
  if (s->nfields < 16)
    *p++ = (uint8_t)(0x80 | s->nfields);
  else
    *p = 0xde, p = be(p + 1, s->nfields, 2);
  const char *rec = record, *at;
  const struct tks_mp_step *st = s->mp_plan, *end = st + s->nfields;
  const struct tks_symtab *t;
  uint32_t id;
#define NEXT()                          \
  do {                                  \
    if (++st == end) goto done;         \
    memcpy(p, st->key, sizeof st->key); \
    p += st->klen;                      \
    at = rec + st->offset;              \
    goto *ops[st->op];                  \
  } while (0)
  if (st == end) goto done;
  memcpy(p, st->key, sizeof st->key);
  p += st->klen;
  at = rec + st->offset;
  goto *ops[st->op];
op_i64 : {
  int64_t i;
  memcpy(&i, at, 8);
  p = w_int(p, i);
  NEXT();
}
op_u32 : {
  uint32_t u;
  memcpy(&u, at, 4);
  p = w_uint(p, u);
  NEXT();
}
op_f64 : {
  uint64_t bits;
  memcpy(&bits, at, 8);
  *p = 0xcb;
  p = be(p + 1, bits, 8);
  NEXT();
}
op_bool:
  *p++ = *(const bool *)at ? 0xc3 : 0xc2;
  NEXT();
op_sym:
  t = symbols;
  goto text;
op_istr:
  t = strings;
text:
  memcpy(&id, at, 4);
  if (id == 0) { /* "" */
    *p++ = 0xa0;
    NEXT();
  }
  if (id - 1u < tks_symtab_count(t)) { /* the common case: a name under 32 bytes */
    const uint8_t *ln = tks_symtab_lname(t, id);
    if (ln[0] < 32) {
      *p = (uint8_t)(0xa0 | ln[0]);
      copy_short(p + 1, ln + 1, ln[0]);
      p += 1 + ln[0];
      NEXT();
    }
  }
  p = long_text(out, p, t, id, fixed, &slack);
  if (!p) return -ENOMEM;
  NEXT();
#undef NEXT
done:
  out->len = (size_t)((char *)p - out->data);
  return 0;
}

/* An object, or a record and its overflow map (off the common path, so
 * that the record's calls above take no frame). */
__attribute__((noinline)) static int
tick_msgpack(const struct tks_schema *schema, const struct tks_symtab *names,
             const struct tks_symtab *symbols, const struct tks_symtab *strings, const void *record,
             const struct tks_dynobj *obj, struct tks_buf *out) {
  const struct out o = {.b = out, .mp = true, .symbols = symbols, .strings = strings};
  size_t was = out->len;
  int r = tick_out(&o, schema, names, record, obj);
  if (r) out->len = was;
  return r;
}

int tks_tick_msgpack(const struct tks_schema *schema, const struct tks_symtab *names,
                     const struct tks_symtab *symbols, const struct tks_symtab *strings,
                     const void *record, const struct tks_dynobj *obj, struct tks_buf *out) {
  if (record && !obj)
    return schema->mp_plan_ok ? record_msgpack_plan(schema, symbols, strings, record, out)
                              : record_msgpack(schema, symbols, strings, record, out);
  return tick_msgpack(schema, names, symbols, strings, record, obj, out);
}

int tks_tick_json(const struct tks_schema *schema, const struct tks_symtab *names,
                  const struct tks_symtab *symbols, const struct tks_symtab *strings,
                  const void *record, const struct tks_dynobj *obj, struct tks_buf *out) {
  return tks_tick_json_as(schema, names, symbols, strings, record, obj, TKS_TS_NS, out);
}

/* A CSV field: as JSON would write a number; text unquoted unless it holds
 * a comma, a quote or a line break (then quoted, quotes doubled). */
int tks_csv_text(struct tks_buf *b, const char *s, size_t n) {
  bool quote = memchr(s, ',', n) || memchr(s, '"', n) || memchr(s, '\n', n) || memchr(s, '\r', n);
  if (!quote) return tks_buf_append(b, s, n);
  int r = tks_buf_putc(b, '"');
  for (size_t i = 0; i < n && r == 0; i++) {
    if (s[i] == '"') r = tks_buf_putc(b, '"');
    if (r == 0) r = tks_buf_putc(b, s[i]);
  }
  return r ? r : tks_buf_putc(b, '"');
}

static int csv_value(struct tks_buf *b, const struct tks_value *v, const struct tks_symtab *symbols,
                     const struct tks_symtab *strings, bool ts, enum tks_ts_format tf) {
  if (ts && v->type == TKS_V_INT) {
    if (tf == TKS_TS_ISO) {
      char iso[TKS_ISO8601_LEN + 1];
      tks_format_iso8601(v->v.i, iso);
      return tks_buf_puts(b, iso);
    }
    return tks_buf_printf(b, "%lld", (long long)v->v.i);
  }
  switch (v->type) {
  case TKS_V_NIL: return 0;
  case TKS_V_BOOL: return tks_buf_puts(b, v->v.b ? "true" : "false");
  case TKS_V_INT: return tks_buf_printf(b, "%lld", (long long)v->v.i);
  case TKS_V_UINT: return tks_buf_printf(b, "%llu", (unsigned long long)v->v.u);
  case TKS_V_F64: return isfinite(v->v.f) ? tks_json_double(b, v->v.f) : 0;
  case TKS_V_STR: return tks_csv_text(b, v->v.s.p, v->v.s.len);
  case TKS_V_SYM:
  case TKS_V_ISTR: {
    size_t len = 0;
    const char *n = tks_symtab_name(v->type == TKS_V_SYM ? symbols : strings, v->v.id, &len);
    return n ? tks_csv_text(b, n, len) : 0;
  }
  }
  return 0;
}

int tks_schema_csv_header(const struct tks_schema *schema, struct tks_buf *out) {
  int r = 0;
  for (unsigned fi = 0; fi < schema->nfields; fi++) {
    if (fi) r |= tks_buf_putc(out, ',');
    r |= tks_csv_text(out, schema->fields[fi].name, schema->fields[fi].name_len);
  }
  r |= tks_buf_putc(out, '\n');
  return r ? -ENOMEM : 0;
}

int tks_tick_csv(const struct tks_schema *schema, const struct tks_symtab *names,
                 const struct tks_symtab *symbols, const struct tks_symtab *strings,
                 const void *record, const struct tks_dynobj *obj, enum tks_ts_format tf,
                 struct tks_buf *out) {
  size_t was = out->len;
  int r = 0;
  for (unsigned fi = 0; fi < schema->nfields && r == 0; fi++) {
    const struct tks_field *f = &schema->fields[fi];
    if (fi) r |= tks_buf_putc(out, ',');
    struct tks_value v = {.type = TKS_V_NIL};
    if (record) {
      v = tks_field_value(f, record);
    } else {
      uint32_t id;
      const struct tks_dyn_slot *sl = NULL;
      if (tks_symtab_lookup(names, f->name, f->name_len, &id) == 0) sl = tks_dynobj_get(obj, id);
      if (sl) v = tks_dynobj_value(obj, sl);
    }
    r |= csv_value(out, &v, symbols, strings, (int)fi == schema->ts_field, tf);
  }
  r |= tks_buf_putc(out, '\n');
  if (r) out->len = was;
  return r ? -ENOMEM : 0;
}

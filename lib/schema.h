/*
 * Schemas: the declared, fixed list of fields ("slots") of a record, as
 * __slots__ is declared on a Python class.  tks_schema_layout() computes
 * each field's offset so that no padding is wasted (fields sorted by
 * alignment, largest first, declaration order kept within an alignment),
 * and the record size.  The default schema is MarketEvent: 32 bytes.
 */
#ifndef TKS_SCHEMA_H
#define TKS_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "value.h"

#define TKS_SCHEMA_MAX_FIELDS 32
#define TKS_FIELD_NAME_MAX 32 /* bytes, including the NUL */
#define TKS_RECORD_MAX 128    /* bytes: a larger record is refused */

/* A field's declared type: what its slot holds and in how many bytes.  Each
 * maps to one value type (tks_type_vtype()): INT for timestamp, i64 and
 * u32, SYM for symbol, ISTR for string, F64, BOOL. */
enum tks_type {
  TKS_TYPE_TIMESTAMP, /* int64 ns since the Unix epoch */
  TKS_TYPE_SYMBOL,    /* interned string, uint32 id */
  TKS_TYPE_STRING,    /* interned short string, uint32 id */
  TKS_TYPE_I64,
  TKS_TYPE_U32,
  TKS_TYPE_F64,
  TKS_TYPE_BOOL,
  TKS_TYPE__COUNT
};

union tks_scalar {
  int64_t i64;
  uint32_t u32; /* also symbol and string ids; 0 is the empty string */
  double f64;
  bool b;
};

struct tks_field {
  char name[TKS_FIELD_NAME_MAX];
  enum tks_type type;
  bool required;
  union tks_scalar dflt; /* value when absent and not required */
  uint32_t offset;       /* computed by tks_schema_layout() */
  uint32_t size;
  uint32_t name_len;     /* computed: strlen(name) */
  enum tks_vtype vtype;  /* computed: tks_type_vtype(type) */
  uint64_t name_head;    /* computed: the first 8 bytes of name, zero-padded */
  /* computed for the msgpack renderer: the name as a fixstr (its header
   * byte, then the name; name_len + 1 bytes of the 32 are used). */
  uint8_t mp_key[TKS_FIELD_NAME_MAX];
};

struct tks_schema {
  char name[TKS_FIELD_NAME_MAX]; /* "MarketEvent" */
  struct tks_field fields[TKS_SCHEMA_MAX_FIELDS]; /* declaration (slot) order */
  unsigned nfields;
  uint32_t record_size; /* computed */
  int ts_field;         /* index of the timestamp field, or -1 */
  int symbol_field;     /* index of the first symbol field (the series key) */
  /* Computed for the decoder's hot path: */
  uint32_t required_mask; /* bit i: field i is required */
  uint32_t intern_mask;   /* bit i: field i is a symbol or a string */
  uint8_t name_index[64]; /* tks_schema_name_slot(): field + 1, 0 none, 255 several */
  /* Computed for the msgpack renderer of a record (lib/render.c): a step a
   * field, in slot order: its key as a fixstr (zeros past klen bytes), the
   * field's offset and what its value is (enum tks_mp_op).  mp_plan_ok:
   * every key fits a step; mp_bound: the most bytes a record takes but for
   * texts over 31 bytes. */
  bool mp_plan_ok;
  uint32_t mp_bound;
  struct tks_mp_step {
    uint8_t key[24];
    uint8_t klen, op;
    uint16_t offset;
  } mp_plan[TKS_SCHEMA_MAX_FIELDS];
};
/* What a record's field holds, for the msgpack renderer. */
enum tks_mp_op { TKS_MP_I64, TKS_MP_U32, TKS_MP_F64, TKS_MP_BOOL, TKS_MP_SYM, TKS_MP_ISTR };

/* The name_index slot of a field name (len > 0). */
static inline unsigned tks_schema_name_slot(const char *name, size_t len) {
  return ((unsigned)len * 7u + (unsigned char)name[0] * 3u + (unsigned char)name[len - 1]) & 63u;
}

/* How ticks are kept: every tick slotted (an undeclared field is rejected),
 * every tick a dynamic object, or slotted where it fits and a dynamic object
 * where it carries undeclared fields. */
enum tks_mode { TKS_MODE_SLOTTED, TKS_MODE_DYNAMIC, TKS_MODE_FALLBACK };
#define TKS_MODE_COUNT (TKS_MODE_FALLBACK + 1)
/* "slotted", "dynamic", "fallback": the names store.mode takes, in the enum's order. */
extern const char *const tks_mode_names[TKS_MODE_COUNT];
/* The mode's name, or "?" for a value outside the enum. */
const char *tks_mode_name(enum tks_mode m);
int tks_mode_parse(const char *s, enum tks_mode *out);

const char *tks_type_name(enum tks_type t);
/* Returns 0 and sets *out, or -EINVAL for an unknown type name. */
int tks_type_parse(const char *s, enum tks_type *out);
uint32_t tks_type_size(enum tks_type t);
/* The value type a field of type t holds (see enum tks_type); TKS_V_NIL for
 * an unknown t.  The one mapping from declared types to value types. */
enum tks_vtype tks_type_vtype(enum tks_type t);

/* The value in field f of a record (f laid out by tks_schema_layout()):
 * ints widened to int64, symbol and string ids as SYM and ISTR. */
static inline struct tks_value tks_field_value(const struct tks_field *f, const void *record) {
  const char *at = (const char *)record + f->offset;
  struct tks_value v = {.type = f->vtype};
  switch (f->vtype) {
  case TKS_V_INT:
    if (f->size == 8) {
      memcpy(&v.v.i, at, 8);
    } else {
      uint32_t u;
      memcpy(&u, at, 4);
      v.v.i = u;
    }
    break;
  case TKS_V_F64: memcpy(&v.v.f, at, 8); break;
  case TKS_V_BOOL: v.v.b = *(const bool *)at; break;
  case TKS_V_SYM:
  case TKS_V_ISTR: memcpy(&v.v.id, at, 4); break;
  case TKS_V_NIL:
  case TKS_V_UINT:
  case TKS_V_STR: break; /* no declared type holds these */
  }
  return v;
}

/* Fills s with MarketEvent (ts, ticker, price, volume, flags) and lays it out. */
void tks_schema_default(struct tks_schema *s);

/*
 * Checks the declared fields and computes offsets, record size, ts_field and
 * symbol_field.  Returns 0, or -EINVAL with a one-line reason in err:
 * no fields, a duplicate or empty name, no symbol field, more than one
 * timestamp field, a record over TKS_RECORD_MAX.
 */
int tks_schema_layout(struct tks_schema *s, char *err, size_t errlen);

/* Index of the field with that name, or -1. */
int tks_schema_find(const struct tks_schema *s, const char *name, size_t len);

#endif

/*
 * Schema layout: fields are placed largest alignment first (declaration
 * order kept among equals), so a record has no holes but the tail padding
 * that rounds it to its own alignment.  MarketEvent: ts, price, volume
 * (8 bytes each), ticker, flags (4 each): 32 bytes, no padding.
 */
#include "schema.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* The declared types: config name, slot size, and the value type a slot
 * holds (the one place these are mapped). */
static const struct {
  const char *name;
  uint32_t size;
  enum tks_vtype vtype;
} types[TKS_TYPE__COUNT] = {
    [TKS_TYPE_TIMESTAMP] = {"timestamp", 8, TKS_V_INT},
    [TKS_TYPE_SYMBOL] = {"symbol", 4, TKS_V_SYM},
    [TKS_TYPE_STRING] = {"string", 4, TKS_V_ISTR},
    [TKS_TYPE_I64] = {"i64", 8, TKS_V_INT},
    [TKS_TYPE_U32] = {"u32", 4, TKS_V_INT},
    [TKS_TYPE_F64] = {"f64", 8, TKS_V_F64},
    [TKS_TYPE_BOOL] = {"bool", 1, TKS_V_BOOL},
};

const char *const tks_mode_names[TKS_MODE_COUNT] = {"slotted", "dynamic", "fallback"};

const char *tks_mode_name(enum tks_mode m) {
  return (unsigned)m < TKS_MODE_COUNT ? tks_mode_names[m] : "?";
}

int tks_mode_parse(const char *s, enum tks_mode *out) {
  int i = tks_name_index(tks_mode_names, TKS_MODE_COUNT, s);
  if (i < 0) return -EINVAL;
  *out = (enum tks_mode)i;
  return 0;
}

const char *tks_type_name(enum tks_type t) {
  return (unsigned)t < TKS_TYPE__COUNT ? types[t].name : "?";
}

uint32_t tks_type_size(enum tks_type t) { return (unsigned)t < TKS_TYPE__COUNT ? types[t].size : 0; }

enum tks_vtype tks_type_vtype(enum tks_type t) {
  return (unsigned)t < TKS_TYPE__COUNT ? types[t].vtype : TKS_V_NIL;
}

int tks_type_parse(const char *s, enum tks_type *out) {
  for (unsigned i = 0; i < TKS_TYPE__COUNT; i++)
    if (strcmp(s, types[i].name) == 0) {
      *out = (enum tks_type)i;
      return 0;
    }
  return -EINVAL;
}

static void add_field(struct tks_schema *s, const char *name, enum tks_type type, int required) {
  struct tks_field *f = &s->fields[s->nfields++];
  memset(f, 0, sizeof *f);
  snprintf(f->name, sizeof f->name, "%s", name);
  f->type = type;
  f->required = required;
}

void tks_schema_default(struct tks_schema *s) {
  memset(s, 0, sizeof *s);
  snprintf(s->name, sizeof s->name, "MarketEvent");
  add_field(s, "ts", TKS_TYPE_TIMESTAMP, 0);
  add_field(s, "ticker", TKS_TYPE_SYMBOL, 1);
  add_field(s, "price", TKS_TYPE_F64, 1);
  add_field(s, "volume", TKS_TYPE_I64, 1);
  add_field(s, "flags", TKS_TYPE_STRING, 0);
  char err[128];
  int r = tks_schema_layout(s, err, sizeof err);
  (void)r; /* the default schema is valid by construction */
}

int tks_schema_find(const struct tks_schema *s, const char *name, size_t len) {
  for (unsigned i = 0; i < s->nfields; i++)
    if (strncmp(s->fields[i].name, name, len) == 0 && s->fields[i].name[len] == '\0' &&
        len < TKS_FIELD_NAME_MAX)
      return (int)i;
  return -1;
}

int tks_schema_layout(struct tks_schema *s, char *err, size_t errlen) {
  if (s->nfields == 0) {
    snprintf(err, errlen, "the schema declares no fields");
    return -EINVAL;
  }
  if (s->nfields > TKS_SCHEMA_MAX_FIELDS) {
    snprintf(err, errlen, "the schema declares %u fields, the most is %d", s->nfields,
             TKS_SCHEMA_MAX_FIELDS);
    return -EINVAL;
  }
  s->ts_field = -1;
  s->symbol_field = -1;
  for (unsigned i = 0; i < s->nfields; i++) {
    struct tks_field *f = &s->fields[i];
    if (f->name[0] == '\0') {
      snprintf(err, errlen, "field %u has an empty name", i + 1);
      return -EINVAL;
    }
    if (strcmp(f->name, "$") == 0) {
      /* Control messages (subscriptions, acknowledgements) are the maps
       * whose first key is "$". */
      snprintf(err, errlen, "field %u: '$' is reserved for control messages", i + 1);
      return -EINVAL;
    }
    if ((unsigned)f->type >= TKS_TYPE__COUNT) {
      snprintf(err, errlen, "field '%s' has an unknown type", f->name);
      return -EINVAL;
    }
    for (unsigned j = 0; j < i; j++)
      if (strcmp(s->fields[j].name, f->name) == 0) {
        snprintf(err, errlen, "field '%s' is declared twice", f->name);
        return -EINVAL;
      }
    if (f->type == TKS_TYPE_TIMESTAMP) {
      if (s->ts_field >= 0) {
        snprintf(err, errlen, "fields '%s' and '%s' are both timestamps; declare one",
                 s->fields[s->ts_field].name, f->name);
        return -EINVAL;
      }
      s->ts_field = (int)i;
    }
    if (f->type == TKS_TYPE_SYMBOL && s->symbol_field < 0) s->symbol_field = (int)i;
    f->size = tks_type_size(f->type);
    f->vtype = tks_type_vtype(f->type);
    f->name_len = (uint32_t)strnlen(f->name, TKS_FIELD_NAME_MAX - 1);
    f->name_head = tks_head8(f->name, f->name_len);
    f->mp_key[0] = (uint8_t)(0xa0 | f->name_len);
    memcpy(f->mp_key + 1, f->name, f->name_len);
  }
  s->required_mask = s->intern_mask = 0;
  memset(s->name_index, 0, sizeof s->name_index);
  for (unsigned i = 0; i < s->nfields; i++) {
    const struct tks_field *f = &s->fields[i];
    if (f->required) s->required_mask |= 1u << i;
    if (f->type == TKS_TYPE_SYMBOL || f->type == TKS_TYPE_STRING) s->intern_mask |= 1u << i;
    uint8_t *slot = &s->name_index[tks_schema_name_slot(f->name, f->name_len)];
    *slot = *slot ? 255 : (uint8_t)(i + 1);
  }
  if (s->symbol_field < 0) {
    snprintf(err, errlen, "the schema has no field of type symbol to index ticks by");
    return -EINVAL;
  }
  if (s->ts_field < 0) {
    snprintf(err, errlen, "the schema has no field of type timestamp to order ticks by");
    return -EINVAL;
  }
  uint32_t off = 0, max_align = 1;
  for (uint32_t align = 8; align >= 1; align /= 2)
    for (unsigned i = 0; i < s->nfields; i++)
      if (s->fields[i].size == align) {
        s->fields[i].offset = off;
        off += align;
        if (align > max_align) max_align = align;
      }
  off = (off + max_align - 1) / max_align * max_align;
  if (off > TKS_RECORD_MAX) {
    snprintf(err, errlen, "the record would be %u bytes, the most is %d", off, TKS_RECORD_MAX);
    return -EINVAL;
  }
  s->record_size = off;
  /* The plan: 3 header bytes, and per field the whole key copy and at most
   * 32 bytes of value (a fixstr name) or a 5-byte text header. */
  s->mp_plan_ok = true;
  s->mp_bound = 3 + s->nfields * (uint32_t)(sizeof s->mp_plan[0].key + 32 + 5);
  memset(s->mp_plan, 0, sizeof s->mp_plan);
  for (unsigned i = 0; i < s->nfields; i++) {
    const struct tks_field *f = &s->fields[i];
    struct tks_mp_step *st = &s->mp_plan[i];
    size_t klen = f->name_len + 1;
    if (klen > sizeof st->key) s->mp_plan_ok = false;
    memcpy(st->key, f->mp_key, klen > sizeof st->key ? sizeof st->key : klen);
    st->klen = (uint8_t)klen;
    st->offset = (uint16_t)f->offset;
    switch (f->vtype) {
    case TKS_V_INT: st->op = f->size == 8 ? TKS_MP_I64 : TKS_MP_U32; break;
    case TKS_V_F64: st->op = TKS_MP_F64; break;
    case TKS_V_BOOL: st->op = TKS_MP_BOOL; break;
    case TKS_V_SYM: st->op = TKS_MP_SYM; break;
    case TKS_V_ISTR: st->op = TKS_MP_ISTR; break;
    default: s->mp_plan_ok = false; break; /* no declared type holds the others */
    }
  }
  return 0;
}

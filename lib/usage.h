/*
 * Undeclared-field usage: for each field name a tick carried that the
 * schema does not declare, how many ticks carried it, how many were kept
 * (overflow maps in fallback mode, dynamic objects in dynamic mode) or
 * rejected (slotted mode), the value types seen, and the bytes it cost: in
 * fallback mode its even share of the tick's overflow map and pointer, in
 * dynamic mode its own entry and string bytes.  A bounded table (the first
 * max_names names; later ones only counted in `overflow`), so hostile
 * input cannot grow it.  Read by the stats and by the schema advice.
 */
#ifndef TKS_USAGE_H
#define TKS_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema.h"
#include "value.h"

#define TKS_USAGE_MAX_NAMES 256

/* Bits of tks_usage_field.types. */
enum {
  TKS_USAGE_NIL = 1 << 0,
  TKS_USAGE_BOOL = 1 << 1,
  TKS_USAGE_INT = 1 << 2,
  TKS_USAGE_FLOAT = 1 << 3,
  TKS_USAGE_STRING = 1 << 4,
};

/* The bit a value of type t counts under: INT and UINT are int, F64 float,
 * STR (and the interned SYM, ISTR) string.  Inline: it is on the ingest
 * path, once per undeclared field. */
static inline unsigned tks_usage_type_bit(enum tks_vtype t) {
  switch (t) {
  case TKS_V_NIL: return TKS_USAGE_NIL;
  case TKS_V_BOOL: return TKS_USAGE_BOOL;
  case TKS_V_INT:
  case TKS_V_UINT: return TKS_USAGE_INT;
  case TKS_V_F64: return TKS_USAGE_FLOAT;
  case TKS_V_STR:
  case TKS_V_SYM:
  case TKS_V_ISTR: break;
  }
  return TKS_USAGE_STRING;
}
/* The name of one TKS_USAGE_* bit ("nil", "bool", "int", "float",
 * "string"), or "?". */
const char *tks_usage_type_name(unsigned bit);

/* Room for tks_usage_types_text() of every bit, NUL included. */
#define TKS_USAGE_TYPES_TEXT_MAX 32
/* Writes the names of the bits set in types, in bit order and comma
 * separated ("int,string"; "" for none), into buf (len bytes, cut to fit).
 * Returns buf. */
char *tks_usage_types_text(unsigned types, char *buf, size_t len);

struct tks_usage_field {
  char name[TKS_FIELD_NAME_MAX * 2]; /* cut at 63 bytes, between characters */
  uint64_t ticks;        /* ticks that carried it */
  uint64_t kept;         /* of those, stored (overflow map or dynamic object) */
  uint64_t rejected;     /* of those, rejected (slotted mode) */
  uint64_t cost_bytes;   /* what it costs beyond the slotted records (see above) */
  uint64_t string_bytes; /* bytes of its string values */
  unsigned types;        /* TKS_USAGE_* bits seen */
};

struct tks_usage {
  struct tks_usage_field fields[TKS_USAGE_MAX_NAMES];
  unsigned count;
  uint64_t overflow; /* ticks whose undeclared names did not fit the table */
};

/* Zeroes u. */
void tks_usage_init(struct tks_usage *u);
/* The entry of name (len bytes), adding it if there is room; NULL if the
 * table is full (u->overflow is then counted by the caller). */
struct tks_usage_field *tks_usage_get(struct tks_usage *u, const char *name, size_t len);
/* The entry of name, or NULL. */
const struct tks_usage_field *tks_usage_find(const struct tks_usage *u, const char *name);

#endif

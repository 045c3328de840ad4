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

#define TKS_USAGE_MAX_NAMES 256

/* Bits of tks_usage_field.types. */
enum {
  TKS_USAGE_NIL = 1 << 0,
  TKS_USAGE_BOOL = 1 << 1,
  TKS_USAGE_INT = 1 << 2,
  TKS_USAGE_FLOAT = 1 << 3,
  TKS_USAGE_STRING = 1 << 4,
};

struct tks_usage_field {
  char name[TKS_FIELD_NAME_MAX * 2]; /* cut at 63 bytes */
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

/*
 * Values: the one tagged scalar of tickslab.  The decoder reads tick fields
 * into it, dynamic objects are filled from it (and read back into it), the
 * encoder writes it and the JSON renderer prints it.  Strings are borrowed
 * (p, len), never owned; symbol and string ids point into the symbol tables.
 * A schema field's declared type (schema.h) maps to one of these types.
 */
#ifndef TKS_VALUE_H
#define TKS_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tks_vtype {
  TKS_V_NIL = 0,
  TKS_V_BOOL,
  TKS_V_INT,
  TKS_V_UINT, /* an unsigned value; the decoder gives it only beyond INT64_MAX */
  TKS_V_F64,
  TKS_V_STR,  /* bytes: v.s */
  TKS_V_SYM,  /* an interned symbol: v.id in the symbol table */
  TKS_V_ISTR, /* an interned string: v.id in the string table */
  /* lib/decode.c numbers two reading kinds of its own after the last type,
   * which never leave it: keep this the last. */
  TKS_V__LAST = TKS_V_ISTR
};

/* Bits of tks_value.flags. */
enum {
  /* Encoder: write this INT as an int64 in 9 bytes (0xd3 + big-endian)
   * whatever its value, so a generator can patch it in place in a
   * pre-encoded message. */
  TKS_VF_FIXED = 1 << 0,
};

struct tks_value {
  enum tks_vtype type;
  uint8_t flags; /* TKS_VF_* bits; 0 unless said otherwise */
  union {
    bool b;
    int64_t i;
    uint64_t u;
    double f;
    struct {
      const char *p;
      uint32_t len; /* 32 bits, as msgpack's str32 (and a message is at most
                       64 MiB, ingest.max_message_bytes): callers refuse longer */
    } s;
    uint32_t id; /* SYM, ISTR */
  } v;
};

#endif

/*
 * The encoder: ticks as msgpack maps (string keys) or arrays of values,
 * appended to a tks_buf by msgpack-c's packer.  Used by the CLI, the load
 * generator and the tests; the daemon only decodes (decode.h).  msgpack-c
 * stays inside encode.c: nothing here needs its headers.
 */
#ifndef TKS_ENCODE_H
#define TKS_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Values for the encoder. */
/* TKS_V_INT_FIXED: an int64 always written in 9 bytes (0xd3 + big-endian),
 * so that a generator can patch it in place in a pre-encoded message. */
enum tks_value_type { TKS_V_NIL, TKS_V_BOOL, TKS_V_INT, TKS_V_INT_FIXED, TKS_V_UINT, TKS_V_F64, TKS_V_STR };
struct tks_value {
  enum tks_value_type type;
  union {
    bool b;
    int64_t i;
    uint64_t u;
    double f;
    struct {
      const char *p;
      size_t len;
    } s;
  } v;
};
struct tks_kv {
  const char *key;
  struct tks_value v;
};

/* Append one msgpack map (string keys) / array to out.  0 or -ENOMEM. */
int tks_encode_map(struct tks_buf *out, const struct tks_kv *kv, size_t n);
int tks_encode_array(struct tks_buf *out, const struct tks_value *v, size_t n);

#endif

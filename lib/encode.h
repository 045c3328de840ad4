/*
 * The encoder: ticks as msgpack maps (string keys) or arrays of values,
 * appended to a tks_buf by msgpack-c's packer.  Used by the CLI, the load
 * generator and the tests; the daemon only decodes (decode.h).  msgpack-c
 * stays inside encode.c: nothing here needs its headers.
 */
#ifndef TKS_ENCODE_H
#define TKS_ENCODE_H

#include <stddef.h>

#include "util.h"
#include "value.h"

struct tks_kv {
  const char *key;
  struct tks_value v;
};

/*
 * Append one msgpack map of n entries (kv[i].key a NUL-terminated string)
 * or one array of n values to out.  Values of type NIL, BOOL, INT (in 9
 * bytes with TKS_VF_FIXED, else the shortest form), UINT, F64 (always a
 * float64) and STR.  Returns 0; -EINVAL for a SYM or ISTR value (an id
 * means nothing off this process's tables) or -ENOMEM, with out as it was.
 */
int tks_encode_map(struct tks_buf *out, const struct tks_kv *kv, size_t n);
int tks_encode_array(struct tks_buf *out, const struct tks_value *v, size_t n);

#endif

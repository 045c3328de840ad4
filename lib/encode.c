/*
 * The encoder: ticks as msgpack maps or arrays, written with msgpack-c's
 * packer into a tks_buf.  Used by the CLI, the load generator and the
 * tests; the daemon only decodes (decode.c).  This is the one file that
 * uses msgpack-c.
 */
#include "encode.h"

#include <errno.h>
#include <msgpack.h>
#include <string.h>

static int buf_write(void *data, const char *p, size_t n) {
  return tks_buf_append(data, p, n) ? -1 : 0;
}

/* 0, -1 when the packer failed (out of memory), or -EINVAL. */
static int pack_value(msgpack_packer *pk, const struct tks_value *v) {
  switch (v->type) {
  case TKS_V_NIL: return msgpack_pack_nil(pk);
  case TKS_V_BOOL: return v->v.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
  case TKS_V_INT:
    return v->flags & TKS_VF_FIXED ? msgpack_pack_fix_int64(pk, v->v.i)
                                   : msgpack_pack_int64(pk, v->v.i);
  case TKS_V_UINT: return msgpack_pack_uint64(pk, v->v.u);
  case TKS_V_F64: return msgpack_pack_double(pk, v->v.f);
  case TKS_V_STR:
    if (msgpack_pack_str(pk, v->v.s.len)) return -1;
    return msgpack_pack_str_body(pk, v->v.s.p, v->v.s.len);
  case TKS_V_SYM:
  case TKS_V_ISTR: break; /* an id without its table */
  }
  return -EINVAL;
}

/* The packer's result as the API's: out rolled back on failure. */
static int done(struct tks_buf *out, size_t mark, int r) {
  if (r == 0) return 0;
  out->len = mark;
  return r == -EINVAL ? -EINVAL : -ENOMEM;
}

int tks_encode_map(struct tks_buf *out, const struct tks_kv *kv, size_t n) {
  size_t mark = out->len;
  msgpack_packer pk;
  msgpack_packer_init(&pk, out, buf_write);
  int r = msgpack_pack_map(&pk, n);
  for (size_t i = 0; i < n && r == 0; i++) {
    size_t kl = strlen(kv[i].key);
    r = msgpack_pack_str(&pk, kl);
    if (r == 0) r = msgpack_pack_str_body(&pk, kv[i].key, kl);
    if (r == 0) r = pack_value(&pk, &kv[i].v);
  }
  return done(out, mark, r);
}

int tks_encode_array(struct tks_buf *out, const struct tks_value *v, size_t n) {
  size_t mark = out->len;
  msgpack_packer pk;
  msgpack_packer_init(&pk, out, buf_write);
  int r = msgpack_pack_array(&pk, n);
  for (size_t i = 0; i < n && r == 0; i++) r = pack_value(&pk, &v[i]);
  return done(out, mark, r);
}

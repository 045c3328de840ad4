/*
 * The subscribe request (subreq.h): tks_msgpack_skip bounds it, msgpack-c
 * reads it, each key and value is checked with a reason a client can act on.
 */
#include "subreq.h"

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "mpreq.h"
#include "utf8.h"
#include "util.h"

static int add_symbol(struct tks_subreq *r, const char *s, size_t len) {
  for (uint32_t i = 0; i < r->nsymbols; i++)
    if (strlen(r->symbols[i]) == len && memcmp(r->symbols[i], s, len) == 0) return 0;
  char **grown = realloc(r->symbols, (r->nsymbols + 1) * sizeof *grown);
  if (!grown) return -ENOMEM;
  r->symbols = grown;
  char *copy = malloc(len + 1);
  if (!copy) return -ENOMEM;
  memcpy(copy, s, len);
  copy[len] = '\0';
  r->symbols[r->nsymbols++] = copy;
  return 0;
}

static long symbols_of(const msgpack_object *v, struct tks_subreq *r, char *why, size_t n) {
  char b[48];
  if (v->type == MSGPACK_OBJECT_STR) {
    if (tks_mpreq_key_is(v, "*")) {
      r->all = true;
      return 0;
    }
    return tks_mpreq_fail(why, n, -EINVAL,
                          "subscribe: '%s' is not \"*\" (a list of symbols is an array)",
                          tks_mpreq_shown(v, b, sizeof b));
  }
  if (v->type != MSGPACK_OBJECT_ARRAY)
    return tks_mpreq_fail(why, n, -EINVAL, "subscribe: want an array of symbols or \"*\"");
  if (v->via.array.size == 0)
    return tks_mpreq_fail(why, n, -EINVAL, "subscribe: the array of symbols is empty");
  for (uint32_t i = 0; i < v->via.array.size; i++) {
    const msgpack_object *s = &v->via.array.ptr[i];
    if (s->type != MSGPACK_OBJECT_STR)
      return tks_mpreq_fail(why, n, -EINVAL, "subscribe: symbol %u is not a string", i);
    if (s->via.str.size == 0)
      return tks_mpreq_fail(why, n, -EINVAL, "subscribe: symbol %u is empty", i);
    if (s->via.str.size > TKS_SUBREQ_MAX_SYMBOL)
      return tks_mpreq_fail(why, n, -EINVAL, "subscribe: symbol %u is over %u bytes", i,
                            TKS_SUBREQ_MAX_SYMBOL);
    if (!tks_utf8_valid(s->via.str.ptr, s->via.str.size))
      return tks_mpreq_fail(why, n, -EINVAL, "subscribe: symbol %u is not valid UTF-8", i);
    if (add_symbol(r, s->via.str.ptr, s->via.str.size))
      return tks_mpreq_fail(why, n, -ENOMEM, "out of memory");
  }
  return 0;
}

static long from_of(const msgpack_object *v, struct tks_subreq *r, char *why, size_t n) {
  char b[64];
  switch (v->type) {
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    if (v->via.u64 > INT64_MAX)
      return tks_mpreq_fail(why, n, -EINVAL, "from: over the int64 range");
    r->from = (int64_t)v->via.u64;
    return 0;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: r->from = v->via.i64; return 0;
  case MSGPACK_OBJECT_STR:
    if (tks_mpreq_key_is(v, "now")) {
      r->from_now = true;
      return 0;
    }
    if (v->via.str.size < sizeof b) {
      memcpy(b, v->via.str.ptr, v->via.str.size);
      b[v->via.str.size] = '\0';
      if (strlen(b) == v->via.str.size && tks_parse_time(b, &r->from) == 0) return 0;
    }
    return tks_mpreq_fail(
        why, n, -EINVAL,
        "from: '%s' is not a time (ns since the epoch, \"now\", or ISO-8601 such as "
        "2026-12-02T09:30:00Z)",
        tks_mpreq_shown(v, b, 40));
  default:
    return tks_mpreq_fail(why, n, -EINVAL,
                          "from: want ns since the epoch, \"now\" or a time string");
  }
}

long tks_subreq_parse(const uint8_t *buf, size_t len, struct tks_subreq *out, char *why, size_t n) {
  memset(out, 0, sizeof *out);
  long size = tks_msgpack_skip(buf, len, TKS_SUBREQ_MAX_BYTES);
  if (size == 0)
    return len >= TKS_SUBREQ_MAX_BYTES
               ? tks_mpreq_fail(why, n, -E2BIG, "the request is over %u bytes",
                                TKS_SUBREQ_MAX_BYTES)
               : 0;
  if (size < 0) {
    enum tks_reason reason = (enum tks_reason)(-size - 1);
    if (reason == TKS_REASON_TOO_LARGE)
      return tks_mpreq_fail(why, n, -E2BIG, "the request is over %u bytes", TKS_SUBREQ_MAX_BYTES);
    return tks_mpreq_fail(why, n, -EINVAL, "the request is not msgpack (%s)",
                          tks_reason_name(reason));
  }
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  long r = size;
  if (msgpack_unpack_next(&u, (const char *)buf, (size_t)size, &off) != MSGPACK_UNPACK_SUCCESS) {
    r = tks_mpreq_fail(why, n, -EINVAL, "the request is not msgpack");
    goto done;
  }
  const msgpack_object *o = &u.data;
  if (o->type != MSGPACK_OBJECT_MAP) {
    r = tks_mpreq_fail(why, n, -EINVAL,
                       "the request is not a map (want {\"subscribe\": [...] or \"*\", "
                       "\"from\": ns or \"now\"})");
    goto done;
  }
  bool have_subscribe = false, have_from = false;
  out->from_now = true;
  for (uint32_t i = 0; i < o->via.map.size && r > 0; i++) {
    const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
    char b[48];
    long e = 0;
    if (tks_mpreq_key_is(k, "subscribe")) {
      if (have_subscribe) e = tks_mpreq_fail(why, n, -EINVAL, "subscribe: given twice");
      have_subscribe = true;
      if (!e) e = symbols_of(v, out, why, n);
    } else if (tks_mpreq_key_is(k, "from")) {
      if (have_from) e = tks_mpreq_fail(why, n, -EINVAL, "from: given twice");
      have_from = true;
      out->from_now = false;
      if (!e) e = from_of(v, out, why, n);
    } else {
      e = tks_mpreq_fail(why, n, -EINVAL, "unknown key '%s' (a request has subscribe and from)",
                         tks_mpreq_shown(k, b, sizeof b));
    }
    if (e) r = e;
  }
  if (r > 0 && !have_subscribe)
    r = tks_mpreq_fail(why, n, -EINVAL, "no subscribe key (want {\"subscribe\": [...] or \"*\"})");
done:
  msgpack_unpacked_destroy(&u);
  if (r <= 0) tks_subreq_finish(out);
  return r;
}

void tks_subreq_finish(struct tks_subreq *r) {
  for (uint32_t i = 0; i < r->nsymbols; i++) free(r->symbols[i]);
  free(r->symbols);
  r->symbols = NULL;
  r->nsymbols = 0;
}

/*
 * The producer hello and the messages written back (hello.h): the hello is
 * bounded by tks_msgpack_skip and read with msgpack-c, each key checked
 * with a reason a client can act on; the answers are written with the
 * msgpack pieces of render.h.
 */
#include "hello.h"

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include "decode.h"
#include "mpreq.h"
#include "render.h"
#include "utf8.h"

int tks_hello_is(const uint8_t *buf, size_t len) {
  if (len == 0) return -1;
  size_t h; /* the map header's length */
  if (buf[0] >= 0x81 && buf[0] <= 0x8f)
    h = 1;
  else if (buf[0] == 0xde)
    h = 3;
  else if (buf[0] == 0xdf)
    h = 5;
  else
    return 0;
  if (len < h) return -1;
  if (h > 1) { /* a map16/32 of no entries has no first key */
    bool zero = true;
    for (size_t i = 1; i < h; i++) zero &= buf[i] == 0;
    if (zero) return 0;
  }
  static const uint8_t key[2] = {0xa1, '$'}; /* fixstr "$" */
  for (size_t i = 0; i < 2; i++) {
    if (h + i >= len) return -1;
    if (buf[h + i] != key[i]) return 0;
  }
  return 1;
}

long tks_hello_parse(const uint8_t *buf, size_t len, struct tks_hello *out, char *why, size_t n) {
  memset(out, 0, sizeof *out);
  long size = tks_msgpack_skip(buf, len, TKS_HELLO_MAX_BYTES);
  if (size == 0)
    return len >= TKS_HELLO_MAX_BYTES
               ? tks_mpreq_fail(why, n, -E2BIG, "hello: over %u bytes", TKS_HELLO_MAX_BYTES)
               : 0;
  if (size < 0) {
    enum tks_reason reason = (enum tks_reason)(-size - 1);
    if (reason == TKS_REASON_TOO_LARGE)
      return tks_mpreq_fail(why, n, -E2BIG, "hello: over %u bytes", TKS_HELLO_MAX_BYTES);
    return tks_mpreq_fail(why, n, -EINVAL, "hello: not msgpack (%s)", tks_reason_name(reason));
  }
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  long r = size;
  if (msgpack_unpack_next(&u, (const char *)buf, (size_t)size, &off) != MSGPACK_UNPACK_SUCCESS) {
    r = tks_mpreq_fail(why, n, -EINVAL, "hello: not msgpack");
    goto done;
  }
  const msgpack_object *o = &u.data;
  if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size == 0 ||
      !tks_mpreq_key_is(&o->via.map.ptr[0].key, "$")) {
    r = tks_mpreq_fail(why, n, -EINVAL, "hello: not a map with \"$\" first");
    goto done;
  }
  bool have_acks = false, have_producer = false;
  for (uint32_t i = 0; i < o->via.map.size && r > 0; i++) {
    const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
    char b[40];
    if (i == 0) {
      if (!tks_mpreq_key_is(v, "hello"))
        r = tks_mpreq_fail(why, n, -EINVAL,
                           "a control message other than hello as the first message (\"$\" is %s)",
                           v->type == MSGPACK_OBJECT_STR ? tks_mpreq_shown(v, b, sizeof b)
                                                         : "not a string");
    } else if (tks_mpreq_key_is(k, "$")) {
      r = tks_mpreq_fail(why, n, -EINVAL, "hello: \"$\" given twice");
    } else if (tks_mpreq_key_is(k, "acks")) {
      if (have_acks)
        r = tks_mpreq_fail(why, n, -EINVAL, "hello: acks given twice");
      else if (v->type != MSGPACK_OBJECT_BOOLEAN)
        r = tks_mpreq_fail(why, n, -EINVAL, "hello: acks is not true or false");
      else
        out->acks = v->via.boolean;
      have_acks = true;
    } else if (tks_mpreq_key_is(k, "producer")) {
      if (have_producer) {
        r = tks_mpreq_fail(why, n, -EINVAL, "hello: producer given twice");
      } else if (v->type != MSGPACK_OBJECT_STR) {
        r = tks_mpreq_fail(why, n, -EINVAL, "hello: producer is not a string");
      } else if (v->via.str.size == 0) {
        r = tks_mpreq_fail(why, n, -EINVAL, "hello: producer is empty");
      } else if (v->via.str.size > TKS_PRODUCER_NAME_MAX) {
        r = tks_mpreq_fail(why, n, -EINVAL, "hello: producer is over %u bytes",
                           TKS_PRODUCER_NAME_MAX);
      } else if (tks_utf8_scan(v->via.str.ptr, v->via.str.size) &
                 (TKS_UTF8_INVALID | TKS_UTF8_CONTROL)) {
        r = tks_mpreq_fail(why, n, -EINVAL,
                           "hello: producer is not valid UTF-8 or holds a control character");
      } else {
        memcpy(out->producer, v->via.str.ptr, v->via.str.size);
        out->producer[v->via.str.size] = '\0';
        out->producer_len = (uint8_t)v->via.str.size;
      }
      have_producer = true;
    } else {
      r = tks_mpreq_fail(why, n, -EINVAL, "hello: unknown key '%s' (a hello has acks and producer)",
                         tks_mpreq_shown(k, b, sizeof b));
    }
  }
  if (r > 0 && !have_acks)
    r = tks_mpreq_fail(why, n, -EINVAL, "hello: acks missing (want \"acks\":true)");
  if (r > 0 && out->producer_len && !out->acks)
    r = tks_mpreq_fail(why, n, -EINVAL,
                       "hello: a producer needs \"acks\":true (its position comes back "
                       "in the welcome)");
done:
  msgpack_unpacked_destroy(&u);
  if (r <= 0) memset(out, 0, sizeof *out);
  return r;
}

static int kind(struct tks_buf *b, uint32_t entries, const char *what) {
  int r = tks_msgpack_map_header(b, entries);
  r |= tks_msgpack_str(b, "$", 1);
  r |= tks_msgpack_str(b, what, strlen(what));
  return r;
}

static int pair_uint(struct tks_buf *b, const char *key, uint64_t v) {
  return tks_msgpack_str(b, key, strlen(key)) | tks_msgpack_uint(b, v);
}

static int pair_str(struct tks_buf *b, const char *key, const char *s, size_t len) {
  return tks_msgpack_str(b, key, strlen(key)) | tks_msgpack_str(b, s, len);
}

/* Each writer: all or nothing (b as it was on -ENOMEM). */
#define WRITE(b, body)     \
  do {                     \
    size_t at_ = (b)->len; \
    int r_ = (body);       \
    if (r_) {              \
      (b)->len = at_;      \
      return -ENOMEM;      \
    }                      \
    return 0;              \
  } while (0)

int tks_hello_welcome(struct tks_buf *b, const char *producer, size_t len, uint64_t position,
                      bool journal, const char *fsync) {
  WRITE(b, kind(b, len ? 5 : 4, "welcome") | pair_uint(b, "position", position) |
               pair_str(b, "journal", journal ? "on" : "off", journal ? 2 : 3) |
               pair_str(b, "fsync", fsync, strlen(fsync)) |
               (len ? pair_str(b, "producer", producer, len) : 0));
}

int tks_hello_ack(struct tks_buf *b, uint64_t accepted, uint64_t rejected, uint64_t durable) {
  WRITE(b, kind(b, 4, "ack") | pair_uint(b, "accepted", accepted) |
               pair_uint(b, "rejected", rejected) | pair_uint(b, "durable", durable));
}

int tks_hello_reject(struct tks_buf *b, uint64_t seq, const char *reason, const char *field) {
  bool f = field && field[0];
  WRITE(b, kind(b, f ? 4 : 3, "reject") | pair_uint(b, "seq", seq) |
               pair_str(b, "reason", reason, strlen(reason)) |
               (f ? pair_str(b, "field", field, strlen(field)) : 0));
}

int tks_hello_omitted(struct tks_buf *b, uint64_t rejects) {
  WRITE(b, kind(b, 2, "omitted") | pair_uint(b, "rejects", rejects));
}

int tks_hello_error(struct tks_buf *b, const char *text, bool has_seq, uint64_t seq) {
  WRITE(b, kind(b, has_seq ? 3 : 2, "error") | pair_str(b, "error", text, strlen(text)) |
               (has_seq ? pair_uint(b, "seq", seq) : 0));
}

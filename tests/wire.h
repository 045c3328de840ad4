/*
 * A raw msgpack-c client for the daemon suites: ticks packed with
 * msgpack-c's own packer into an sbuffer (not our codec), then sent whole.
 */
#ifndef TKS_TEST_WIRE_H
#define TKS_TEST_WIRE_H

#include <errno.h>
#include <msgpack.h>
#include <string.h>

#include "harness.h"
#include "test.h"

struct wire {
  msgpack_sbuffer sb;
  msgpack_packer pk;
};

static inline void wire_init(struct wire *w) {
  msgpack_sbuffer_init(&w->sb);
  msgpack_packer_init(&w->pk, &w->sb, msgpack_sbuffer_write);
}

static inline void wire_finish(struct wire *w) { msgpack_sbuffer_destroy(&w->sb); }
static inline void wire_clear(struct wire *w) { msgpack_sbuffer_clear(&w->sb); }

/* Bytes as they are, e.g. garbage or a hand-made header. */
static inline void wire_raw(struct wire *w, const void *p, size_t n) {
  msgpack_sbuffer_write(&w->sb, p, n);
}

static inline void wire_send(int fd, const struct wire *w) {
  if (send_all(fd, w->sb.data, w->sb.size) < 0) TEST_FAIL("send: %s", strerror(errno));
}

static inline void pk_strn(msgpack_packer *pk, const char *s, size_t n) {
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

static inline void pk_str(msgpack_packer *pk, const char *s) { pk_strn(pk, s, strlen(s)); }

#endif

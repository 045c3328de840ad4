/*
 * libFuzzer target: the producer hello (lib/hello.c), as the ingest port
 * reads a connection's first message: tks_hello_is says whether it is one
 * (and stays "not known yet" only while the bytes are a map header and a
 * prefix of the key "$"), and the parser takes it, refuses it with a
 * reason, or waits for more.  Checked: a hello taken has its length inside
 * the input, a producer name of 1..64 bytes of valid UTF-8 without control
 * characters (NUL-terminated at its length) and only with acks; a refusal
 * has a reason; the hello alone parses the same; the messages written back
 * are msgpack maps whose first key is "$".
 */
#include <errno.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "hello.h"
#include "utf8.h"

static void check_message(const struct tks_buf *b) {
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  FUZZ_CHECK(msgpack_unpack_next(&u, b->data, b->len, &off) == MSGPACK_UNPACK_SUCCESS &&
                 off == b->len,
             "a message written back is not one msgpack object");
  FUZZ_CHECK(u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size > 0 &&
                 u.data.via.map.ptr[0].key.type == MSGPACK_OBJECT_STR &&
                 u.data.via.map.ptr[0].key.via.str.size == 1 &&
                 u.data.via.map.ptr[0].key.via.str.ptr[0] == '$',
             "a message written back does not begin with \"$\"");
  msgpack_unpacked_destroy(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int is = tks_hello_is(data, size);
  FUZZ_CHECK(is >= -1 && is <= 1, "tks_hello_is %d", is);
  if (is < 0) FUZZ_CHECK(size <= 6, "not known after %zu bytes", size);
  for (size_t k = 0; k < size && k < 8; k++) {
    int p = tks_hello_is(data, k);
    FUZZ_CHECK(p == -1 || p == is, "a prefix of %zu bytes decided %d, the whole %d", k, p, is);
  }
  if (is != 1) return 0;
  struct tks_hello h;
  char why[256];
  why[0] = '\0';
  long n = tks_hello_parse(data, size, &h, why, sizeof why);
  if (n < 0) {
    FUZZ_CHECK(why[0] != '\0', "a refusal without a reason (%ld)", n);
    FUZZ_CHECK(n == -EINVAL || n == -E2BIG, "hello %ld", n);
    return 0;
  }
  if (n == 0) {
    FUZZ_CHECK(size < TKS_HELLO_MAX_BYTES, "need more with %zu bytes", size);
    return 0;
  }
  FUZZ_CHECK((size_t)n <= size, "took %ld of %zu", n, size);
  FUZZ_CHECK(h.producer_len <= TKS_PRODUCER_NAME_MAX, "a name of %u bytes", h.producer_len);
  FUZZ_CHECK(strlen(h.producer) == h.producer_len, "a name not NUL-terminated at its length");
  FUZZ_CHECK(!(tks_utf8_scan(h.producer, h.producer_len) & (TKS_UTF8_INVALID | TKS_UTF8_CONTROL)),
             "a name not UTF-8 or with a control character");
  FUZZ_CHECK(!h.producer_len || h.acks, "a producer without acks");
  struct tks_hello again;
  long m = tks_hello_parse(data, (size_t)n, &again, why, sizeof why);
  FUZZ_CHECK(m == n && again.acks == h.acks && again.producer_len == h.producer_len &&
                 memcmp(again.producer, h.producer, h.producer_len) == 0,
             "the hello alone parses differently");
  struct tks_buf b = {0};
  FUZZ_CHECK(tks_hello_welcome(&b, h.producer, h.producer_len, (uint64_t)n, true, "always") == 0,
             "welcome");
  check_message(&b);
  b.len = 0;
  FUZZ_CHECK(tks_hello_reject(&b, (uint64_t)size, "bad_type", h.producer) == 0, "reject");
  check_message(&b);
  tks_buf_finish(&b);
  return 0;
}

/*
 * libFuzzer target: the HTTP request head of the /metrics port (lib/http.c)
 * as the daemon reads it, bounded at 8 KiB (the first input byte picks a
 * smaller bound, so the bound's edge is reached), and the ingest port's
 * look at a connection's first bytes.  Checked: a head taken lies inside
 * the bound and the input, its target inside the head, with visible ASCII
 * only; a result is one of the five; it waits only below the bound; a head
 * taken parses the same alone and with any bytes after it; the ingest look
 * says 1 only for an uppercase first byte, and never changes its answer
 * once it gave one.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  size_t max = data[0] & 1 ? 8192 : 1 + data[0];
  const char *p = (const char *)data + 1;
  size_t n = size - 1;
  /* An exact-size copy: a read past the end is an ASan error. */
  char *b = malloc(n ? n : 1);
  if (!b) return 0;
  memcpy(b, p, n);
  struct tks_http_request r;
  int got = tks_http_parse(b, n, max, &r);
  FUZZ_CHECK(got == 1 || got == 0 || got == -EINVAL || got == -E2BIG || got == -EPROTONOSUPPORT,
             "result %d", got);
  if (got == 0) FUZZ_CHECK(n < max, "waits with %zu bytes at bound %zu", n, max);
  if (got == 1) {
    FUZZ_CHECK(r.head_len > 0 && r.head_len <= n && r.head_len <= max, "head %zu of %zu (max %zu)",
               r.head_len, n, max);
    FUZZ_CHECK(r.target >= b && r.target + r.target_len <= b + r.head_len, "target outside");
    FUZZ_CHECK(r.target_len > 0, "empty target");
    for (size_t i = 0; i < r.target_len; i++)
      FUZZ_CHECK(r.target[i] > 0x20 && r.target[i] < 0x7f, "target byte %02x",
                 (unsigned char)r.target[i]);
    FUZZ_CHECK(r.minor <= 1, "minor %u", r.minor);
    struct tks_http_request again;
    char *h = malloc(r.head_len);
    if (h) {
      memcpy(h, b, r.head_len);
      FUZZ_CHECK(tks_http_parse(h, r.head_len, max, &again) == 1 && again.head_len == r.head_len &&
                     again.method == r.method && again.keep_alive == r.keep_alive &&
                     again.has_body == r.has_body,
                 "the head alone parses otherwise");
      free(h);
    }
  }
  int look = tks_http_looks_like(data + 1, n);
  FUZZ_CHECK(look >= -1 && look <= 1, "look %d", look);
  if (look == 1) FUZZ_CHECK(data[1] >= 'A' && data[1] <= 'Z', "HTTP not from an uppercase byte");
  if (look == -1) FUZZ_CHECK(n < 17, "not known after %zu bytes", n);
  for (size_t k = 0; k < n && k < 20; k++) {
    int early = tks_http_looks_like(data + 1, k);
    FUZZ_CHECK(early == -1 || early == look, "answer changed from %d at %zu to %d", early, k, look);
  }
  free(b);
  return 0;
}

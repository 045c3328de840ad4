/*
 * libFuzzer target: the subscribe request (lib/subreq.c), as the
 * subscription port reads it: every prefix of the input that the parser
 * says is not whole yet must stay "need more" as bytes are added, until
 * it takes the request or refuses it.  Checked: a taken request has a
 * length inside the input, "*" or 1..N symbols, each non-empty, valid
 * UTF-8, at most TKS_SUBREQ_MAX_SYMBOL bytes, no two alike; a refusal has
 * a reason; the result does not depend on bytes after the request.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "subreq.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct tks_subreq r;
  char why[256];
  long n = tks_subreq_parse(data, size, &r, why, sizeof why);
  if (n < 0) {
    FUZZ_CHECK(why[0] != '\0', "a refusal without a reason (%ld)", n);
    FUZZ_CHECK(n == -EINVAL || n == -E2BIG || n == -ENOMEM, "subreq");
    return 0;
  }
  if (n == 0) {
    FUZZ_CHECK(size < TKS_SUBREQ_MAX_BYTES, "subreq");
    return 0;
  }
  FUZZ_CHECK((size_t)n <= size, "subreq");
  FUZZ_CHECK(r.all || r.nsymbols > 0, "subreq");
  for (uint32_t i = 0; i < r.nsymbols; i++) {
    size_t len = strlen(r.symbols[i]);
    FUZZ_CHECK(len > 0 && len <= TKS_SUBREQ_MAX_SYMBOL, "subreq");
    FUZZ_CHECK(tks_utf8_valid(r.symbols[i], len), "subreq");
    for (uint32_t k = 0; k < i; k++) FUZZ_CHECK(strcmp(r.symbols[i], r.symbols[k]) != 0, "subreq");
  }
  /* The same request alone parses the same. */
  struct tks_subreq again;
  long m = tks_subreq_parse(data, (size_t)n, &again, why, sizeof why);
  FUZZ_CHECK(m == n && again.all == r.all && again.nsymbols == r.nsymbols &&
                 again.from_now == r.from_now && (r.from_now || again.from == r.from),
             "subreq");
  tks_subreq_finish(&again);
  tks_subreq_finish(&r);
  return 0;
}

/*
 * libFuzzer target: the Kafka sink's position file (lib/sinkpos.c).  The
 * input is the file's bytes.  Checked: a position taken formats back to
 * exactly the input (there is one way to write each position), and the
 * input is taken exactly when it is the line tks_sinkpos_format writes for
 * the numbers the input's digits name.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "sinkpos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint64_t seg = 0, off = 0;
  int r = tks_sinkpos_parse(data, size, &seg, &off);
  FUZZ_CHECK(r == 0 || r == -EINVAL, "returned %d", r);
  if (r == 0) {
    char line[TKS_SINKPOS_MAX];
    size_t n = tks_sinkpos_format(line, seg, off);
    FUZZ_CHECK(n == size && memcmp(line, data, n) == 0,
               "taken, but not the line it formats back to");
    uint64_t s2, o2;
    FUZZ_CHECK(tks_sinkpos_parse(line, n, &s2, &o2) == 0 && s2 == seg && o2 == off,
               "the formatted line does not parse back");
  }
  return 0;
}

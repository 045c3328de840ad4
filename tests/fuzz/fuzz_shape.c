/*
 * libFuzzer target, differential: the shape cache's fast path (lib/shape.c)
 * against tks_decode() on the same stream (tests/shape_diff.h: status,
 * consumed, reason, field, detail, has_ts, record bytes, dynamic fields and
 * the tables' ids, message by message).  The input's first three bytes
 * choose the schema, mode and check_only; max_message_bytes and the table
 * size; how often an accepted tick is then refused (its ids given back,
 * as tks_server_unintern does).  The rest is the stream, decoded twice
 * through one cache, so that the second pass meets the shapes the first
 * taught, and each mutation of a tick is a near miss of a learned shape.
 */
#include <stdint.h>
#include <stdio.h>

#include "fuzz.h"

#define DIFF_FAIL(...) FUZZ_CHECK(0, __VA_ARGS__)
#include "shape_diff.h"

#define NOW_NS 1700000000000000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  static const enum tks_mode modes[4] = {TKS_MODE_SLOTTED, TKS_MODE_SLOTTED, TKS_MODE_FALLBACK,
                                         TKS_MODE_DYNAMIC};
  const struct tks_schema *s = fuzz_schema(data[0] & 1);
  enum tks_mode mode = modes[(data[0] >> 1) & 3];
  bool check_only = (data[0] >> 3) & 1;
  size_t max = data[1] & 0x80 ? 16 + (data[1] & 0x7f) : 65536;
  uint32_t max_symbols = data[1] & 0x40 ? 4 : 0;
  unsigned unintern_every = data[2] & 7;
  static struct diff x;
  diff_init(&x, s, mode, max, max_symbols);
  for (int pass = 0; pass < 2; pass++)
    diff_stream(&x, data + 3, size - 3, NOW_NS, check_only, unintern_every);
  diff_finish(&x);
  return 0;
}

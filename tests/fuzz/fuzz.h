/*
 * What the libFuzzer targets of tests/fuzz share: a check that aborts with
 * a message (libFuzzer then keeps the input as a crash), and the schemas
 * the decoding targets run with: MarketEvent, and a wider one with every
 * declared type (parsed once through the real config reader).
 */
#ifndef TKS_FUZZ_H
#define TKS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "schema.h"

/* libFuzzer's entry point, one a target. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                  \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* ts, sym (required), venue (string), bid (f64), qty (u32), live (bool),
 * seq (i64, default 7). */
static const char fuzz_wide_yaml[] = "schema:\n"
                                     "  - {name: ts, type: timestamp}\n"
                                     "  - {name: sym, type: symbol, required: true}\n"
                                     "  - {name: venue, type: string}\n"
                                     "  - {name: bid, type: f64}\n"
                                     "  - {name: qty, type: u32}\n"
                                     "  - {name: live, type: bool}\n"
                                     "  - {name: seq, type: i64, default: 7}\n";

/* The schema of index i: 0 MarketEvent, 1 the wide one. */
static inline const struct tks_schema *fuzz_schema(unsigned i) {
  static struct tks_schema schemas[2];
  static int ready;
  if (!ready) {
    tks_schema_default(&schemas[0]);
    static struct tks_config c;
    char err[256];
    if (tks_config_parse(&c, fuzz_wide_yaml, sizeof fuzz_wide_yaml - 1, "wide", err, sizeof err) !=
        0) {
      fprintf(stderr, "fuzz: the wide schema does not parse: %s\n", err);
      abort();
    }
    schemas[1] = c.schema;
    ready = 1;
  }
  return &schemas[i & 1];
}

#endif

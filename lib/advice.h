/*
 * Schema advice, the operator's MEMORY DOCTOR: reads the live figures (what
 * each representation holds and costs, which undeclared fields were seen,
 * how often, what they cost) and says, with numbers, what to change.
 * Nothing here is canned: every sentence is computed from the input.
 */
#ifndef TKS_ADVICE_H
#define TKS_ADVICE_H

#include <stdint.h>

#include "schema.h"
#include "store.h"
#include "usage.h"
#include "util.h"

struct tks_advice_input {
  const struct tks_schema *schema;
  enum tks_mode mode;
  struct tks_store_repr repr;   /* tks_store_repr() */
  const struct tks_usage *usage;
  uint64_t ticks_accepted;
  uint64_t ticks_rejected;
  uint64_t rejected_unknown_field; /* ticks.rejected_by_reason.unknown_field */
  uint64_t symbol_bytes;        /* symbol + string tables */
  uint32_t symbols;             /* distinct symbols */
};

/*
 * Appends the advice to out: one JSON object per line, each with at least
 * "advice" (a kind: "declare_field", "use_fallback", "use_slotted",
 * "none", ...) and "text" (one sentence for a human, with the numbers).
 * Returns 0 or -ENOMEM.
 */
int tks_advice(const struct tks_advice_input *in, struct tks_buf *out);

#endif

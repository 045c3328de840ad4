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
 * "advice" (the kind) and "text" (one sentence for a human, with the
 * numbers).  The kinds:
 *   declare_field     declare an undeclared field: the bytes it saves, or
 *                     (slotted mode) the ticks it keeps;
 *   keep_dynamic      a slot would cost more than the field does now: keep
 *                     it undeclared, in an overflow map in fallback mode;
 *   cannot_declare    a type fits, but the schema cannot take the field;
 *   mixed_types       values of types no one slot holds;
 *   nil_only          no value but nil: no type to declare;
 *   use_fallback      slotted mode rejected ticks for undeclared fields:
 *                     fallback mode keeps them as slotted records plus
 *                     overflow maps, at an estimated cost;
 *   use_slotted       dynamic mode: slotted records (and, for ticks with
 *                     undeclared fields, overflow maps in fallback mode)
 *                     would cost less;
 *   overflow_share    fallback mode: the ticks with undeclared fields (and
 *                     their overflow maps) are over half of store memory;
 *   untracked_fields  undeclared names beyond the usage table's bound;
 *   none              nothing to change.
 * Returns 0 or -ENOMEM.
 */
int tks_advice(const struct tks_advice_input *in, struct tks_buf *out);

#endif

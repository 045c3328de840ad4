/*
 * Store operations journaled among the ticks ("records"), so that a replay
 * repeats them where they happened: an eviction (which ticks of a series
 * left memory) and the steps of an archive seal.  A record is the payload
 * of a journal frame whose receive time is TKS_OPREC_MARK (never a real
 * receive time: ticks' frames begin with one):
 *
 *   i64 TKS_OPREC_MARK | u8 kind | body
 *   evict        u8 rep, u8 symbol length, symbol, u64 ticks: the oldest
 *                `ticks` of that series (representation rep) left memory
 *   seal begin   u64 seal, i64 cut: the ticks before cut are being sealed
 *   seal commit  u64 seal: they are in the archive and left memory
 *   seal abort   u64 seal: the seal failed, memory kept them
 *   producer     u8 name length, name, u64 position, then optionally
 *                i64 receive time and the ticks of a read: the named
 *                producer (ingest acks) has handled `position` messages of
 *                its stream once the ticks of this frame are stored; one
 *                frame, so the position is durable exactly with them.
 *                Without ticks: its position restated at the start of a
 *                segment (after a rotation), for a replay from there
 *
 * Integers little-endian, as the journal writes them.  The parser checks
 * every length against the kind: a record that does not parse is an error,
 * never read past its end.
 */
#ifndef TKS_OPREC_H
#define TKS_OPREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "symtab.h"

#define TKS_OPREC_MARK INT64_MIN
#define TKS_OPREC_MAX (8 + 1 + 2 + TKS_SYMBOL_MAX_LEN + 8) /* the longest payload */

enum tks_oprec_kind {
  TKS_OPREC_EVICT = 1,
  TKS_OPREC_SEAL_BEGIN = 2,
  TKS_OPREC_SEAL_COMMIT = 3,
  TKS_OPREC_SEAL_ABORT = 4,
  TKS_OPREC_PRODUCER = 5,
};

#define TKS_OPREC_PRODUCER_MAX 64 /* bytes of a producer name (lib/hello.h's) */

struct tks_oprec {
  enum tks_oprec_kind kind;
  /* evict */
  uint8_t rep;        /* enum tks_store_rep, checked < TKS_STORE_REPS */
  const char *symbol; /* into the payload, not NUL-terminated */
  uint8_t symbol_len;
  uint64_t ticks;
  /* seals */
  uint64_t seal;
  int64_t cut; /* begin only */
  /* producer */
  const char *producer; /* into the payload, not NUL-terminated */
  uint8_t producer_len; /* 1..TKS_OPREC_PRODUCER_MAX */
  uint64_t position;
  bool has_ticks; /* a receive time and ticks follow */
  int64_t recv_ns;
  const void *data; /* into the payload: the msgpack ticks, data_len bytes */
  size_t data_len;
};

/* True when a journal payload is a record (begins with TKS_OPREC_MARK). */
bool tks_oprec_is(const void *payload, size_t len);

/* Writes the payload of r into out (TKS_OPREC_MAX bytes); returns its
 * length, or 0 for a record that cannot be written (an evict with an empty
 * symbol or a rep out of range, a producer name empty or too long, a kind
 * that is not one of the enum's).  A producer record is written without
 * ticks (has_ticks is ignored): the journal appends the receive time and
 * the ticks to that header itself. */
size_t tks_oprec_encode(const struct tks_oprec *r, uint8_t out[static TKS_OPREC_MAX]);

/* Parses a whole payload (the mark included).  Returns 0 and *out, or
 * -EINVAL: not a record, an unknown kind, a length that does not match the
 * kind, a rep out of range, an empty symbol or producer name (or one over
 * TKS_OPREC_PRODUCER_MAX), a producer record with 1..7 bytes after its
 * position (a cut receive time). */
int tks_oprec_parse(const void *payload, size_t len, struct tks_oprec *out);

#endif

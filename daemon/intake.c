/*
 * One tick from outside (a TCP client, a Kafka message) into the store:
 * what tks_intake (daemon.h) does off its fast path.  Ingest and the Kafka
 * source admit ticks alike: the same refusals, counters, log lines,
 * subscribers and journal.
 */
#include <inttypes.h>
#include <string.h>

#include "daemon.h"

/* A decoded tick's ts: the record's, or the dynamic tick's. */
static inline int64_t tick_ts(const struct tks_server *srv, enum tks_decode_status st,
                              const void *record, const struct tks_dyn_tick *dyn) {
  if (st == TKS_DECODE_DYNAMIC) return dyn->ts;
  int64_t ts;
  memcpy(&ts, (const char *)record + srv->cfg.schema.fields[srv->cfg.schema.ts_field].offset,
         sizeof ts);
  return ts;
}

bool tks_intake_journal_refusing(struct tks_server *srv) {
  bool failing = tks_durability_failing(srv);
  bool refusing = failing && srv->cfg.journal.on_error == TKS_ON_ERROR_REJECT;
  if (failing && !refusing && !tks_server_held(srv, TKS_HOLD_JOURNAL))
    tks_server_hold(srv, TKS_HOLD_JOURNAL, true);
  return refusing;
}

static enum tks_intake rejected(struct tks_server *srv, struct tks_intern_mark mark,
                                enum tks_reason reason, enum tks_reason *why) {
  tks_server_unintern(srv, mark);
  srv->rejected[reason]++;
  *why = reason;
  return TKS_INTAKE_REJECTED;
}

enum tks_intake tks_intake_failed(struct tks_server *srv, enum tks_admit a,
                                  struct tks_intern_mark mark, const struct tks_intake_ctx *ic,
                                  enum tks_reason *why) {
  /* Not stored: the tick adds no symbol (a paused tick interns again when
   * it is decoded again). */
  if (a == TKS_ADMIT_PAUSE) {
    tks_server_unintern(srv, mark);
    return TKS_INTAKE_PAUSE; /* held: the caller keeps the tick's bytes for the resume */
  }
  if (a == TKS_ADMIT_TOO_BIG) {
    tks_server_log_limited(srv,
                           "tick from %s rejected: bad_value (its undeclared fields need more "
                           "than a slab page, store.page_size)",
                           ic->from);
    return rejected(srv, mark, TKS_REASON_BAD_VALUE, why);
  }
  tks_server_log_limited(srv, "tick from %s rejected: store_full (no memory for the record)",
                         ic->from);
  return rejected(srv, mark, TKS_REASON_STORE_FULL, why);
}

enum tks_intake tks_intake_slow(struct tks_server *srv, enum tks_decode_status st,
                                const void *record, const struct tks_dyn_tick *dyn,
                                struct tks_intern_mark mark, const void *msg, size_t len,
                                bool verbatim, const struct tks_intake_ctx *ic,
                                enum tks_reason *why) {
  if (ic->refusing) {
    if (ic->refuse == TKS_REASON_SINK_FULL)
      tks_server_log_limited(srv,
                             "tick from %s rejected: sink_full (kafka.sink.max_queue_bytes wait "
                             "for Kafka, on_full: reject)",
                             ic->from);
    else
      tks_server_log_limited(
          srv, "tick from %s rejected: journal_error (journal writes failing, on_error: reject)",
          ic->from);
    return rejected(srv, mark, ic->refuse, why);
  }
  if (srv->seal_cut != INT64_MIN && tick_ts(srv, st, record, dyn) < srv->seal_cut) {
    /* A late tick of what a seal is taking to the archive: memory gives
     * those ticks up when the seal commits, so it cannot take one. */
    tks_server_log_limited(srv,
                           "tick from %s rejected: sealing (older than %" PRId64
                           ", the cut of the archive seal running; send it again after the seal)",
                           ic->from, srv->seal_cut);
    return rejected(srv, mark, TKS_REASON_SEALING, why);
  }
  enum tks_admit a = tks_admit(srv, st, record, dyn);
  if (a != TKS_ADMIT_STORED) return tks_intake_failed(srv, a, mark, ic, why);
  tks_intake_stored(srv, st, record, dyn, msg, len, verbatim, ic);
  return TKS_INTAKE_STORED;
}

void tks_intake_end(struct tks_server *srv) {
  if (srv->tap_end) srv->tap_end(srv);
  tks_durability_submit(srv);
}

/*
 * Admission: one decoded tick into the store, for ingest and for journal
 * replay alike.  lib/tick.c picks the representation and stores it; when
 * the store has no room, limits.c's when_full policy says whether room was
 * made (try again), the tick is refused, or ingest waits (backpressure).
 * The answer is one enum, so no caller reasons about the store's errors.
 */
#include <errno.h>

#include "daemon.h"

#define ATTEMPTS 8 /* evictions tried for one tick before it is refused */

enum tks_admit tks_admit_failed(struct tks_server *srv, enum tks_decode_status st,
                                const void *record, const struct tks_dyn_tick *dyn, int error) {
  for (int attempt = 1;; attempt++) {
    if (error == -E2BIG) return TKS_ADMIT_TOO_BIG;
    switch (tks_limits_on_full(srv)) {
    case TKS_FULL_RETRY: break;
    case TKS_FULL_REJECT: return TKS_ADMIT_FULL;
    case TKS_FULL_PAUSE: return TKS_ADMIT_PAUSE;
    }
    if (attempt == ATTEMPTS) return TKS_ADMIT_FULL;
    error = tks_tick_store(&srv->sink, st, record, dyn);
    if (error == 0) return TKS_ADMIT_STORED;
  }
}

/*
 * Memory limits and retention.  limits.max_memory caps the slab pages
 * (tks_slab_set_limit): the slab refuses a new page past it, the store
 * refuses the tick, and admission (admit.c) asks tks_limits_on_full() what
 * to do, as limits.when_full says: evict_oldest frees a slice of the oldest
 * blocks and has the tick stored again, reject refuses it, backpressure
 * holds ingest (the server's TKS_HOLD_LIMITS) until a 100 ms timer finds
 * room (tks_store_has_room).
 * limits.retention evicts, once a second, every block whose newest tick is
 * older than the retention.  Freed chunks go back to the slab's free lists
 * and are reused: the process stops growing, it does not shrink.
 *
 * What max_memory bounds: the slab pages, i.e. every tick record, block
 * and dynamic object.  The symbol, string and field-name tables and the
 * per-symbol index come on top; they are small (tens of bytes a symbol)
 * and `stats` shows them (memory.symbol_bytes, memory.index_bytes), as do
 * the connections' read buffers and the process itself (memory.rss_bytes).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"

#define MIB ((uint64_t)1 << 20)
#define RETENTION_PERIOD_MS 1000
#define ROOM_PERIOD_MS 100
#define SWEEP_MIN_NS 100000000u /* on_full retries a sweep that freed nothing after 100 ms */
#define LOG_PERIOD_NS 1000000000u

/* One server per process: the state is file-local. */
static struct {
  bool started;
  bool loading; /* until tks_limits_loaded: the replay repeats journaled evictions instead */
  uv_timer_t retention_timer, room_timer;
  bool timers_open;

  /* what is applied: the config as of start or the last reload */
  uint64_t max_memory, retention_ns;
  enum tks_when_full when_full;

  uint64_t paused_since_ns, paused_ns; /* mono clock */

  /* evict_oldest: eviction bytes since a tick was last stored, so that a
   * tick no eviction can help does not empty the store (see evict_oldest);
   * progress_mark is stored_ever() when futile_bytes was last reset */
  uint64_t progress_mark, futile_bytes, futile_since_ns;

  uint64_t last_sweep_ns;
  bool last_sweep_freed; /* the last early sweep evicted something */

  /* counters */
  uint64_t evictions, evicted_ticks_oldest, evicted_bytes_oldest;
  uint64_t retention_ticks, retention_bytes;
  uint64_t rejected_full, evict_failed, pauses;

  struct tks_ratelimit log_limit; /* the warn line's: one a second */
} L;

static double mib(uint64_t b) { return (double)b / (double)MIB; }

/* A warn line at most once a second; the ones in between are counted. */
static void warn_limited(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn_limited(const char *fmt, ...) {
  uint64_t held;
  if (!tks_ratelimit_pass(&L.log_limit, tks_mono_ns(), &held)) return;
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (held)
    tks_log(TKS_LOG_WARN, "%s (%llu more such actions since the last line)", msg,
            (unsigned long long)held);
  else
    tks_log(TKS_LOG_WARN, "%s", msg);
}

/* Evicts what retention says is expired.  Returns the ticks evicted. */
static uint64_t retention_sweep(struct tks_server *srv) {
  if (!L.retention_ns || L.loading) return 0;
  L.last_sweep_ns = tks_mono_ns();
  int64_t now = tks_now_ns();
  int64_t cutoff = now - (int64_t)L.retention_ns;
  /* With the day archive on, the ticks go there first (sealed, then taken
   * out of memory when the seal commits). */
  if (srv->on_retain && srv->on_retain(srv, cutoff)) return 0;
  uint64_t bytes0 = tks_store_evicted_bytes(srv->store);
  uint64_t ticks = tks_store_evict_before(srv->store, cutoff);
  if (ticks) {
    uint64_t bytes = tks_store_evicted_bytes(srv->store) - bytes0;
    L.retention_ticks += ticks;
    L.retention_bytes += bytes;
    tks_log(TKS_LOG_DEBUG, "retention: evicted %llu ticks (%llu bytes) older than %.3f s",
            (unsigned long long)ticks, (unsigned long long)bytes, (double)L.retention_ns / 1e9);
  }
  return ticks;
}

/* Paused is the server's hold (TKS_HOLD_LIMITS), not a copy of it. */
static bool paused(const struct tks_server *srv) {
  return L.started && tks_server_held(srv, TKS_HOLD_LIMITS);
}

static void resume(struct tks_server *srv, const char *why) {
  if (!paused(srv)) return;
  uint64_t ms = (tks_mono_ns() - L.paused_since_ns) / 1000000u;
  L.paused_ns += tks_mono_ns() - L.paused_since_ns;
  if (L.timers_open) uv_timer_stop(&L.room_timer);
  tks_log(TKS_LOG_INFO, "limits: resuming ingest after %llu ms paused (%s)", (unsigned long long)ms,
          why);
  tks_server_hold(srv, TKS_HOLD_LIMITS, false);
}

static void on_retention_timer(uv_timer_t *t) {
  struct tks_server *srv = t->data;
  if (srv->stopping) return;
  if (retention_sweep(srv) && paused(srv) && tks_store_has_room(srv->store))
    resume(srv, "retention made room");
}

/* evict_oldest's slice: max(max_memory / 32, 1 MiB), so that a full store
 * evicts once per slice of ticks, not per tick. */
static uint64_t evict_slice(void) { return L.max_memory / 32 > MIB ? L.max_memory / 32 : MIB; }

/* With the day archive on: true while the oldest slice must wait for a
 * seal (archiver.c); asking may begin one, of the oldest quarter. */
static bool archive_waits(struct tks_server *srv) {
  uint64_t slice = evict_slice();
  return srv->on_pressure && srv->ingesting &&
         srv->on_pressure(srv, L.max_memory / 4 > slice ? L.max_memory / 4 : slice, slice);
}

static void on_room_timer(uv_timer_t *t) {
  struct tks_server *srv = t->data;
  if (!paused(srv) || srv->stopping) return;
  if (tks_store_has_room(srv->store))
    resume(srv, "room in the store");
  else if (L.when_full == TKS_WHEN_FULL_EVICT_OLDEST && !archive_waits(srv))
    /* Held for the archive (a seal running, or a checkpoint before one can
     * begin): the oldest slice may go now. */
    resume(srv, "the archive took the oldest ticks");
}

/* Applies the limits section of srv->cfg. */
static void apply(struct tks_server *srv) {
  const struct tks_config *c = &srv->cfg;
  L.max_memory = c->limits.max_memory;
  L.when_full = c->limits.when_full;
  L.retention_ns = c->limits.retention_ns;
  /* While loading, the replay repeats the evictions the journal recorded,
   * so the store holds what it held before; its own policy evicting too
   * would take other ticks.  The blocks a checkpoint load builds are cut
   * differently from those ingest built, so the same ticks may need a
   * little more room: a quarter more, until loaded. */
  tks_slab_set_limit(srv->slab, L.loading ? L.max_memory + L.max_memory / 4 : L.max_memory);
  if (L.max_memory && !L.loading) {
    uint64_t page = tks_slab_page_size(srv->slab), held = tks_slab_bytes_allocated(srv->slab);
    /* Every size class in use holds at least one page of its own. */
    if (L.max_memory < 8 * page)
      tks_log(TKS_LOG_WARN,
              "limits.max_memory %.1f MiB is only %llu slab pages of %.1f MiB: each chunk size "
              "in use takes at least one page; a smaller store.page_size fits the limit better",
              mib(L.max_memory), (unsigned long long)(L.max_memory / page), mib(page));
    if (held > L.max_memory)
      tks_log(TKS_LOG_WARN,
              "limits.max_memory %.1f MiB is below the %.1f MiB of slab pages already held: no "
              "page is added until restart, freed chunks are reused",
              mib(L.max_memory), mib(held));
  }
  if (L.timers_open) {
    if (L.retention_ns)
      uv_timer_start(&L.retention_timer, on_retention_timer, RETENTION_PERIOD_MS,
                     RETENTION_PERIOD_MS);
    else
      uv_timer_stop(&L.retention_timer);
  }
  char max[32] = "none", ret[32] = "none";
  if (L.max_memory) snprintf(max, sizeof max, "%.1f MiB", mib(L.max_memory));
  if (L.retention_ns) snprintf(ret, sizeof ret, "%.3f s", (double)L.retention_ns / 1e9);
  tks_log(TKS_LOG_INFO, "limits: max_memory %s, when_full %s, retention %s", max,
          tks_when_full_name(L.when_full), ret);
}

int tks_limits_start(struct tks_server *srv) {
  if (L.started) return 0;
  memset(&L, 0, sizeof L);
  L.log_limit = (struct tks_ratelimit){.period_ns = LOG_PERIOD_NS, .burst = 1};
  uv_timer_init(srv->loop, &L.retention_timer);
  uv_timer_init(srv->loop, &L.room_timer);
  L.retention_timer.data = L.room_timer.data = srv;
  L.timers_open = true;
  L.started = true;
  L.loading = true;
  apply(srv);
  return 0;
}

void tks_limits_loaded(struct tks_server *srv) {
  if (!L.started || !L.loading) return;
  L.loading = false;
  apply(srv);
}

void tks_limits_stop(struct tks_server *srv) {
  if (!L.started) return;
  if (paused(srv)) L.paused_ns += tks_mono_ns() - L.paused_since_ns;
  L.started = false;
  if (L.timers_open) {
    L.timers_open = false;
    uv_timer_stop(&L.retention_timer);
    uv_timer_stop(&L.room_timer);
    uv_close((uv_handle_t *)&L.retention_timer, NULL);
    uv_close((uv_handle_t *)&L.room_timer, NULL);
  }
}

void tks_limits_recheck(struct tks_server *srv) {
  if (paused(srv) && L.when_full == TKS_WHEN_FULL_EVICT_OLDEST)
    resume(srv, "the archive seal ended"); /* a full store evicts again, or waits again */
}

void tks_limits_reload(struct tks_server *srv) {
  if (!L.started) return;
  uint64_t old_max = L.max_memory, old_ret = L.retention_ns;
  enum tks_when_full old_wf = L.when_full;
  const struct tks_config *c = &srv->cfg;
  if (c->limits.max_memory == old_max && c->limits.when_full == old_wf &&
      c->limits.retention_ns == old_ret)
    return;
  tks_log(TKS_LOG_INFO,
          "limits reloaded: max_memory %llu -> %llu, when_full %s -> %s, retention "
          "%llu -> %llu ns",
          (unsigned long long)old_max, (unsigned long long)c->limits.max_memory,
          tks_when_full_name(old_wf), tks_when_full_name(c->limits.when_full),
          (unsigned long long)old_ret, (unsigned long long)c->limits.retention_ns);
  apply(srv);
  L.futile_bytes = 0;
  if (paused(srv)) {
    if (L.when_full != TKS_WHEN_FULL_BACKPRESSURE)
      resume(srv, "when_full is no longer backpressure");
    else if (tks_store_has_room(srv->store))
      resume(srv, "the new limit leaves room");
  }
}

/* Holds ingest (TKS_HOLD_LIMITS) until the room timer finds room. */
static void pause_ingest(struct tks_server *srv, const char *why) {
  L.paused_since_ns = tks_mono_ns();
  L.pauses++;
  if (L.timers_open) uv_timer_start(&L.room_timer, on_room_timer, ROOM_PERIOD_MS, ROOM_PERIOD_MS);
  warn_limited("limits: store full at max_memory %.1f MiB: ingest paused (%s) until "
               "there is room; %llu ticks held, %llu pauses so far",
               mib(L.max_memory), why, (unsigned long long)tks_store_ticks(srv->store),
               (unsigned long long)L.pauses);
  tks_server_hold(srv, TKS_HOLD_LIMITS, true);
}

/* Ticks ever stored: held plus evicted, which eviction leaves unchanged and
 * every append advances, whoever stores (ingest, or replay, which does not
 * count ticks_accepted), so that both evict by the same rule. */
static uint64_t stored_ever(const struct tks_server *srv) {
  return tks_store_ticks(srv->store) + tks_store_evicted_ticks(srv->store);
}

/* evict_oldest: a slice of the oldest blocks, max(max_memory / 32, 1 MiB),
 * so that a full store evicts once per slice of ticks, not per tick.
 * Guard: the slab does not move pages between chunk sizes, so a tick whose
 * chunk size holds no free chunk and can get no page finds no room however
 * much is evicted.  Once the slices evicted since a tick was last stored
 * reach half of max_memory, the tick is refused (limits.evict_failed,
 * store_full) instead of emptying the store for it, and evicting is tried
 * again, one slice, at most once a second until a tick is stored.
 * "Stored" is stored_ever(), not ticks_accepted: replay stores ticks without
 * accepting any, and keyed on ticks_accepted it took every eviction of a
 * replay as futile, refusing the newest ticks once max_memory / 2 was
 * evicted (issue 8). */
static enum tks_full_action evict_oldest(struct tks_server *srv) {
  uint64_t now = tks_mono_ns();
  uint64_t stored = stored_ever(srv);
  if (stored != L.progress_mark) {
    L.progress_mark = stored;
    L.futile_bytes = 0;
  }
  uint64_t slice = evict_slice();
  uint64_t cap = L.max_memory / 2 > slice ? L.max_memory / 2 : slice;
  if (L.futile_bytes >= cap) {
    if (now - L.futile_since_ns < 1000000000u) {
      L.evict_failed++;
      return TKS_FULL_REJECT;
    }
    L.futile_bytes = cap - slice; /* one more slice, then wait again */
  }
  /* With the day archive on, the oldest ticks are sealed before they go:
   * a seal of the oldest quarter begins now, and the slices evicted while
   * it runs are below its cut (in the archive once it commits).  Past its
   * cut ingest waits for it (while serving ingest: a replay repeats the
   * journaled evictions, a stop evicts). */
  if (paused(srv)) return TKS_FULL_PAUSE;
  if (archive_waits(srv)) {
    pause_ingest(srv, "evict_oldest: waiting for the archive seal of the oldest ticks");
    return TKS_FULL_PAUSE;
  }
  uint64_t ticks0 = tks_store_evicted_ticks(srv->store);
  uint64_t freed = tks_store_evict_oldest(srv->store, slice);
  uint64_t ticks = tks_store_evicted_ticks(srv->store) - ticks0;
  if (!freed) {
    L.evict_failed++;
    warn_limited("limits: store full at max_memory %.1f MiB (slab %.1f MiB) and nothing left to "
                 "evict: tick refused (store_full)",
                 mib(L.max_memory), mib(tks_slab_bytes_allocated(srv->slab)));
    return TKS_FULL_REJECT;
  }
  L.evictions++;
  L.evicted_ticks_oldest += ticks;
  L.evicted_bytes_oldest += freed;
  L.futile_bytes += freed;
  if (L.futile_bytes >= cap) {
    L.futile_since_ns = now;
    warn_limited("limits: evicted %.1f MiB since the last stored tick and it still does not fit "
                 "(its chunk size has no free chunk and can get no page under max_memory %.1f "
                 "MiB): refusing such ticks (store_full) instead of evicting more",
                 mib(L.futile_bytes), mib(L.max_memory));
  } else {
    warn_limited("limits: store full at max_memory %.1f MiB: evicted the oldest %llu ticks "
                 "(%.2f MiB); %llu ticks held, %llu evicted in %llu rounds so far",
                 mib(L.max_memory), (unsigned long long)ticks, mib(freed),
                 (unsigned long long)tks_store_ticks(srv->store),
                 (unsigned long long)L.evicted_ticks_oldest, (unsigned long long)L.evictions);
  }
  return TKS_FULL_RETRY;
}

/* reject and backpressure drop nothing that is not due: expired ticks
 * (limits.retention) may go before the timer gets to them.  A sweep that
 * freed nothing is not tried again for 100 ms, so that a rejected stream
 * does not sweep per tick. */
static bool early_retention(struct tks_server *srv) {
  /* A sweep that freed ticks may be followed by another at once (the store
   * filled again with ticks that are due); only fruitless ones wait. */
  if (!L.retention_ns || (!L.last_sweep_freed && tks_mono_ns() - L.last_sweep_ns < SWEEP_MIN_NS))
    return false;
  L.last_sweep_freed = retention_sweep(srv) > 0;
  return L.last_sweep_freed;
}

enum tks_full_action tks_limits_on_full(struct tks_server *srv) {
  /* No limit: the OS refused memory (or a tick larger than a page); there is
   * no policy to apply. */
  if (!L.started || !L.max_memory) return TKS_FULL_REJECT;
  switch (L.when_full) {
  case TKS_WHEN_FULL_EVICT_OLDEST:
    return evict_oldest(srv);
  case TKS_WHEN_FULL_REJECT:
    if (early_retention(srv)) return TKS_FULL_RETRY;
    L.rejected_full++;
    warn_limited("limits: store full at max_memory %.1f MiB: tick rejected (store_full); %llu "
                 "rejected so far, %llu ticks held",
                 mib(L.max_memory), (unsigned long long)L.rejected_full,
                 (unsigned long long)tks_store_ticks(srv->store));
    return TKS_FULL_REJECT;
  case TKS_WHEN_FULL_BACKPRESSURE:
    if (paused(srv)) return TKS_FULL_PAUSE;
    if (early_retention(srv)) return TKS_FULL_RETRY;
    if (!srv->ingesting) {
      /* Journal replay (before ingest listens) or the stop: there is no
       * reading to pause, so the tick is refused and counted. */
      L.rejected_full++;
      warn_limited("limits: store full at max_memory %.1f MiB while not serving ingest (replay "
                   "or stop): tick refused (store_full); %llu so far",
                   mib(L.max_memory), (unsigned long long)L.rejected_full);
      return TKS_FULL_REJECT;
    }
    pause_ingest(srv, "backpressure");
    return TKS_FULL_PAUSE;
  }
  return TKS_FULL_REJECT;
}

static const struct tks_stat ST_LIMITS_MAX_MEMORY = TKS_STAT(
    "limits.max_memory", GAUGE, BYTES,
    "Limit on the slab pages in bytes (0: none); tables and index come on top");
static const struct tks_stat ST_LIMITS_WHEN_FULL = TKS_STAT_NAMED(
    "limits.when_full", GAUGE, NONE,
    "What the store does at max_memory: evict_oldest, reject or backpressure", "limits_when_full",
    "policy");
static const struct tks_stat ST_LIMITS_RETENTION_SECONDS = TKS_STAT(
    "limits.retention_seconds", GAUGE, SECONDS, "Ticks older than this are evicted (0: kept)");
static const struct tks_stat ST_LIMITS_USED_BYTES = TKS_STAT(
    "limits.used_bytes", GAUGE, BYTES, "Bytes of slab pages held, what max_memory limits");
static const struct tks_stat ST_LIMITS_EVICTED_TICKS = TKS_STAT(
    "limits.evicted_ticks", COUNTER, TICKS,
    "Ticks evicted from memory, by the memory limit or retention");
static const struct tks_stat ST_LIMITS_EVICTED_BYTES = TKS_STAT(
    "limits.evicted_bytes", COUNTER, BYTES,
    "Bytes of slab chunks freed by eviction, by the memory limit or retention");
static const struct tks_stat ST_LIMITS_EVICTIONS = TKS_STAT(
    "limits.evictions", COUNTER, NONE,
    "Rounds of evicting the oldest blocks at max_memory (evict_oldest)");
static const struct tks_stat ST_LIMITS_EVICT_FAILED = TKS_STAT(
    "limits.evict_failed", COUNTER, NONE,
    "Ticks refused under evict_oldest because evicting made no room for them");
static const struct tks_stat ST_LIMITS_REJECTED_FULL = TKS_STAT(
    "limits.rejected_full", COUNTER, NONE,
    "Ticks refused at max_memory by the reject policy (or by backpressure while ingest is not "
    "served: replay, stop)");
static const struct tks_stat ST_LIMITS_PAUSED = TKS_STAT(
    "limits.paused", GAUGE, NONE, "1 while ingest is paused at max_memory (backpressure)");
static const struct tks_stat ST_LIMITS_PAUSES = TKS_STAT(
    "limits.pauses", COUNTER, NONE, "Times ingest was paused at max_memory (backpressure)");
static const struct tks_stat ST_LIMITS_PAUSED_SECONDS = TKS_STAT(
    "limits.paused_seconds", COUNTER, SECONDS,
    "Seconds ingest spent paused at max_memory (backpressure)");
static const struct tks_stat ST_LIMITS_RETENTION_EVICTED_TICKS = TKS_STAT(
    "limits.retention_evicted_ticks", COUNTER, TICKS,
    "Ticks evicted because they were older than limits.retention");
static const struct tks_stat ST_LIMITS_RETENTION_EVICTED_BYTES = TKS_STAT(
    "limits.retention_evicted_bytes", COUNTER, BYTES, "Bytes of slab chunks freed by retention");

void tks_limits_stats(struct tks_server *srv, struct tks_stats *st) {
  bool is_paused = paused(srv);
  uint64_t paused_ns = L.paused_ns + (is_paused ? tks_mono_ns() - L.paused_since_ns : 0);
  const struct tks_config *c = &srv->cfg;
  /* Before start, the config is what will apply. */
  uint64_t max = L.started ? L.max_memory : c->limits.max_memory;
  uint64_t ret = L.started ? L.retention_ns : c->limits.retention_ns;
  enum tks_when_full wf = L.started ? L.when_full : c->limits.when_full;
  tks_stat_u64(st, &ST_LIMITS_MAX_MEMORY, max);
  tks_stat_str(st, &ST_LIMITS_WHEN_FULL, tks_when_full_name(wf));
  tks_stat_f64(st, &ST_LIMITS_RETENTION_SECONDS, (double)ret / 1e9);
  tks_stat_u64(st, &ST_LIMITS_USED_BYTES, tks_slab_bytes_allocated(srv->slab));
  tks_stat_u64(st, &ST_LIMITS_EVICTED_TICKS, tks_store_evicted_ticks(srv->store));
  tks_stat_u64(st, &ST_LIMITS_EVICTED_BYTES, tks_store_evicted_bytes(srv->store));
  tks_stat_u64(st, &ST_LIMITS_EVICTIONS, L.evictions);
  tks_stat_u64(st, &ST_LIMITS_EVICT_FAILED, L.evict_failed);
  tks_stat_u64(st, &ST_LIMITS_REJECTED_FULL, L.rejected_full);
  tks_stat_u64(st, &ST_LIMITS_PAUSED, is_paused);
  tks_stat_u64(st, &ST_LIMITS_PAUSES, L.pauses);
  tks_stat_f64(st, &ST_LIMITS_PAUSED_SECONDS, (double)paused_ns / 1e9);
  tks_stat_u64(st, &ST_LIMITS_RETENTION_EVICTED_TICKS, L.retention_ticks);
  tks_stat_u64(st, &ST_LIMITS_RETENTION_EVICTED_BYTES, L.retention_bytes);
}

/*
 * The daemon's life under a supervisor: SIGHUP re-reads the config file and
 * applies the keys that can change while running (log level, fsync policy,
 * memory limits, idle timeout, connection and row caps: the reload group of
 * each key in lib/config.c's table), refusing every other change with one
 * log line; sd_notify RELOADING=1/READY=1 around it (a SIGHUP while the
 * store loads is applied once it is loaded);
 * WATCHDOG=1 at half of $WATCHDOG_USEC, from before loading on; while
 * loading a STATUS=loading: line at once, 0.1 s in and then each second,
 * with EXTEND_TIMEOUT_USEC= when loading made progress since the last one
 * (systemd waits as long as loading moves on, and times the start out once
 * it stalls); READY=1 once loaded and ingest is served; then a STATUS=
 * line every 10 s; and
 * a sweep a second of the clients: ingest ones silent for longer than
 * ingest.idle_timeout or slow (message_timeout, min_rate), control ones
 * with a request line unfinished for message_timeout.
 * There is one server a process, so the state here is file-static.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"

#define STATUS_INTERVAL_MS 10000
#define IDLE_CHECK_MS 1000
#define LOAD_FIRST_MS 100            /* the first STATUS=loading: with progress */
#define LOAD_STATUS_MS 1000          /* then one a second */
#define LOAD_EXTEND_USEC 10000000ull /* each extension: 10 s from now */

static struct {
  bool started;
  uv_timer_t status_timer, idle_timer, watchdog_timer, load_timer;
  bool idle_running;
  bool reload_pending;    /* a SIGHUP while loading */
  uint64_t load_seen;     /* bytes_done + ticks at the last loading status */
  uint64_t watchdog_usec; /* 0: no watchdog */
  uint64_t reloads, reload_errors, reload_applied, reload_refused, idle_closed;
} lc;

/* ---- systemd status --------------------------------------------------- */

/* "STATUS=..." from the server's summary (the figures `stats` reports as
 * ingest.rate_1s, ticks.stored, memory.total_bytes, connections.current),
 * after prefix. */
static void send_status(struct tks_server *srv, const char *prefix) {
  char msg[256];
  struct tks_server_summary sum;
  tks_server_summary(srv, &sum);
  snprintf(msg, sizeof msg, "%sSTATUS=%llu ticks/s, %llu ticks held, %.1f MiB, %llu connections",
           prefix, (unsigned long long)sum.rate_1s, (unsigned long long)sum.ticks_stored,
           (double)sum.memory_bytes / (1024.0 * 1024.0), (unsigned long long)sum.connections);
  tks_notify(msg);
}

static void on_status_timer(uv_timer_t *t) {
  struct tks_server *srv = t->data;
  if (!srv->stopping) send_status(srv, "");
}

/* "STATUS=loading: N of M bytes (x%), ..." and, when loading moved on since
 * the last one, "EXTEND_TIMEOUT_USEC=": systemd's start timeout then runs
 * from now, so a long load is not killed while it makes progress, and one
 * that stalls still times out. */
static void send_loading_status(struct tks_server *srv, bool extend_on_progress) {
  char what[200], msg[320];
  struct tks_load_progress p;
  tks_load_progress(srv, &p);
  tks_load_describe(srv, what, sizeof what);
  uint64_t seen = p.bytes_done + p.ticks;
  bool extend = extend_on_progress && seen > lc.load_seen;
  lc.load_seen = seen;
  if (extend)
    snprintf(msg, sizeof msg, "STATUS=loading: %s\nEXTEND_TIMEOUT_USEC=%llu", what,
             LOAD_EXTEND_USEC);
  else
    snprintf(msg, sizeof msg, "STATUS=loading: %s", what);
  tks_notify(msg);
}

static void on_load_timer(uv_timer_t *t) {
  struct tks_server *srv = t->data;
  if (srv->loading && !srv->stopping) send_loading_status(srv, true);
}

/* ---- watchdog ----------------------------------------------------------- */

/* $WATCHDOG_USEC when it is meant for this process (sd_watchdog_enabled(3)). */
static uint64_t watchdog_usec_from_env(void) {
  const char *s = getenv("WATCHDOG_USEC");
  uint64_t usec, pid;
  if (!s || !*s) return 0;
  if (tks_parse_u64(s, &usec) != 0 || usec == 0) {
    tks_log(TKS_LOG_WARN, "WATCHDOG_USEC='%.32s' is not a positive number: no watchdog pings", s);
    return 0;
  }
  const char *p = getenv("WATCHDOG_PID");
  if (p && *p && (tks_parse_u64(p, &pid) != 0 || pid != (uint64_t)getpid())) {
    tks_log(TKS_LOG_DEBUG, "WATCHDOG_PID=%.32s is not this process: no watchdog pings", p);
    return 0;
  }
  return usec;
}

static void on_watchdog_timer(uv_timer_t *t) {
  (void)t;
  tks_notify("WATCHDOG=1");
}

/* ---- idle and slow clients -------------------------------------------- */

static void on_idle_timer(uv_timer_t *t) {
  struct tks_server *srv = t->data;
  uint64_t timeout_ns = srv->cfg.ingest.idle_timeout_ns;
  if (srv->stopping) return;
  uint64_t now = uv_now(srv->loop);
  tks_control_sweep(srv, now);
  tks_subscribe_sweep(srv, now);
  uint64_t timeouts = srv->conns_closed_timeout, slow = srv->conns_closed_slow;
  unsigned n = tks_ingest_sweep(srv, now);
  /* One line a sweep, whatever the per-connection lines' rate limit dropped. */
  timeouts = srv->conns_closed_timeout - timeouts;
  slow = srv->conns_closed_slow - slow;
  if (timeouts + slow)
    tks_log(TKS_LOG_INFO,
            "closed %llu ingest connection%s holding an unfinished message (%llu over "
            "ingest.message_timeout, %llu under ingest.min_rate)",
            (unsigned long long)(timeouts + slow), timeouts + slow == 1 ? "" : "s",
            (unsigned long long)timeouts, (unsigned long long)slow);
  if (n) {
    char d[32];
    lc.idle_closed += n;
    tks_format_duration(timeout_ns, d, sizeof d);
    tks_log(TKS_LOG_INFO, "closed %u idle ingest connection%s (ingest.idle_timeout %s)", n,
            n == 1 ? "" : "s", d);
  }
}

/* Runs the sweep while ingest.idle_timeout, message_timeout or min_rate is set. */
static void idle_update(struct tks_server *srv) {
  const struct tks_config *cfg = &srv->cfg;
  bool want = (cfg->ingest.idle_timeout_ns > 0 || cfg->ingest.message_timeout_ns > 0 ||
               cfg->ingest.min_rate > 0) &&
              !srv->stopping;
  if (want && !lc.idle_running)
    uv_timer_start(&lc.idle_timer, on_idle_timer, IDLE_CHECK_MS, IDLE_CHECK_MS);
  else if (!want && lc.idle_running)
    uv_timer_stop(&lc.idle_timer);
  lc.idle_running = want;
}

/* ---- reload ------------------------------------------------------------- */

static void notify_reloading(void) {
  char msg[80];
  snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
           (unsigned long long)(tks_mono_ns() / 1000));
  tks_notify(msg);
}

/* Compares next with the running config, key by key (lib/config.c's
 * table): copies the live keys that differ and runs their apply group's
 * hook, logs one line for each fixed key that differs. */
static void apply(struct tks_server *srv, const struct tks_config *next) {
  unsigned applied = 0, refused = 0;
  bool journal = false, limits = false;
  char change[2 * TKS_CONFIG_VALUE_MAX];
  size_t n;
  const struct tks_config_key *keys = tks_config_keys(&n);
  for (size_t i = 0; i < n; i++) {
    const struct tks_config_key *k = &keys[i];
    if (tks_config_key_equal(k, &srv->cfg, next)) continue;
    tks_config_key_diff(k, &srv->cfg, next, change, sizeof change);
    if (k->reload == TKS_RELOAD_FIXED) {
      refused++;
      tks_log(TKS_LOG_WARN, "reload: %s changed (%s): needs a restart, keeping the running value",
              k->name, change);
      continue;
    }
    tks_config_key_copy(k, &srv->cfg, next);
    applied++;
    tks_log(TKS_LOG_INFO, "reload: %s %s", k->name, change);
    switch (k->reload) {
    case TKS_RELOAD_LOG: tks_log_set_level(srv->cfg.log.level); break;
    case TKS_RELOAD_JOURNAL: journal = true; break;
    case TKS_RELOAD_LIMITS: limits = true; break;
    case TKS_RELOAD_IDLE: idle_update(srv); break;
    case TKS_RELOAD_LIVE: break; /* read from srv->cfg where used */
    case TKS_RELOAD_FIXED: break;
    }
  }
  /* After every value is in srv->cfg: a section is applied as a whole. */
  if (journal) tks_durability_reload(srv);
  if (limits) tks_limits_reload(srv);
  if (applied) tks_archiver_reload(srv); /* roll_at, retention: read where used */
  lc.reload_applied += applied;
  lc.reload_refused += refused;
  tks_log(TKS_LOG_INFO, "reload: applied %u change%s, refused %u", applied, applied == 1 ? "" : "s",
          refused);
}

void tks_lifecycle_reload(struct tks_server *srv) {
  if (srv->stopping) return;
  if (srv->loading) {
    /* A reload changes limits and the journal's policy, which the replay
     * is using: it waits until the store is loaded. */
    if (!lc.reload_pending)
      tks_log(TKS_LOG_INFO, "SIGHUP while loading: the config is reloaded once loaded");
    lc.reload_pending = true;
    return;
  }
  notify_reloading();
  char err[TKS_CONFIG_ERR_MAX];
  struct tks_config *next = NULL;
  if (!srv->cfg.path[0]) {
    tks_log(TKS_LOG_WARN,
            "SIGHUP: running on the built-in defaults (no --config file): nothing to reload");
    goto out;
  }
  tks_log(TKS_LOG_INFO, "SIGHUP: reloading %s", srv->cfg.path);
  next = malloc(sizeof *next);
  if (!next) {
    lc.reload_errors++;
    tks_log(TKS_LOG_ERROR, "reload failed, keeping the running config: out of memory");
    goto out;
  }
  if (tks_config_load(next, srv->cfg.path, err, sizeof err) != 0) {
    lc.reload_errors++;
    tks_log(TKS_LOG_ERROR, "reload failed, keeping the running config: %s", err);
    goto out;
  }
  lc.reloads++;
  apply(srv, next);
out:
  free(next);
  send_status(srv, "READY=1\n");
}

/* ---- start, stop, stats ------------------------------------------------- */

int tks_lifecycle_start(struct tks_server *srv) {
  uv_timer_init(srv->loop, &lc.status_timer);
  uv_timer_init(srv->loop, &lc.idle_timer);
  uv_timer_init(srv->loop, &lc.watchdog_timer);
  uv_timer_init(srv->loop, &lc.load_timer);
  lc.status_timer.data = lc.idle_timer.data = lc.watchdog_timer.data = lc.load_timer.data = srv;
  lc.started = true;
  idle_update(srv);
  lc.watchdog_usec = watchdog_usec_from_env();
  if (lc.watchdog_usec) {
    uint64_t every_ms = lc.watchdog_usec / 2000;
    if (every_ms == 0) every_ms = 1;
    uv_timer_start(&lc.watchdog_timer, on_watchdog_timer, every_ms, every_ms);
    tks_log(TKS_LOG_INFO, "systemd watchdog: WATCHDOG=1 every %llu ms (WATCHDOG_USEC=%llu)",
            (unsigned long long)every_ms, (unsigned long long)lc.watchdog_usec);
  }
  if (srv->loading) {
    lc.load_seen = 0;
    send_loading_status(srv, false);
    uv_timer_start(&lc.load_timer, on_load_timer, LOAD_FIRST_MS, LOAD_STATUS_MS);
  }
  return 0;
}

void tks_lifecycle_ready(struct tks_server *srv) {
  if (!lc.started) return;
  uv_timer_stop(&lc.load_timer);
  uv_timer_start(&lc.status_timer, on_status_timer, STATUS_INTERVAL_MS, STATUS_INTERVAL_MS);
  send_status(srv, "READY=1\n");
  if (lc.reload_pending) {
    lc.reload_pending = false;
    tks_lifecycle_reload(srv);
  }
}

void tks_lifecycle_stop(struct tks_server *srv) {
  (void)srv;
  if (!lc.started) return;
  lc.started = false;
  /* A last ping gives the rest of the stop a whole WatchdogSec (as long as
   * TimeoutStopSec in the unit), however long ago the previous one was. */
  if (lc.watchdog_usec) tks_notify("WATCHDOG=1");
  uv_close((uv_handle_t *)&lc.status_timer, NULL);
  uv_close((uv_handle_t *)&lc.idle_timer, NULL);
  uv_close((uv_handle_t *)&lc.watchdog_timer, NULL);
  uv_close((uv_handle_t *)&lc.load_timer, NULL);
  lc.idle_running = false;
}

static const struct tks_stat ST_LIFECYCLE_RELOADS = TKS_STAT(
    "lifecycle.reloads", COUNTER, NONE,
    "SIGHUP reloads of the config file that were read and applied");
static const struct tks_stat ST_LIFECYCLE_RELOAD_ERRORS = TKS_STAT(
    "lifecycle.reload_errors", COUNTER, NONE,
    "SIGHUP reloads refused (config unreadable or invalid; the running one kept)");
static const struct tks_stat ST_LIFECYCLE_RELOAD_APPLIED = TKS_STAT(
    "lifecycle.reload_applied", COUNTER, NONE, "Config keys changed by reloads");
static const struct tks_stat ST_LIFECYCLE_RELOAD_REFUSED = TKS_STAT(
    "lifecycle.reload_refused", COUNTER, NONE,
    "Config key changes refused by reloads (need a restart)");
static const struct tks_stat ST_LIFECYCLE_IDLE_CLOSED = TKS_STAT(
    "lifecycle.idle_closed", COUNTER, NONE,
    "Ingest connections closed for silence (ingest.idle_timeout)");
static const struct tks_stat ST_LIFECYCLE_WATCHDOG_USEC = TKS_STAT(
    "lifecycle.watchdog_usec", GAUGE, USEC, "systemd watchdog timeout (WATCHDOG_USEC), 0 when off");

void tks_lifecycle_stats(struct tks_server *srv, struct tks_stats *st) {
  (void)srv;
  tks_stat_u64(st, &ST_LIFECYCLE_RELOADS, lc.reloads);
  tks_stat_u64(st, &ST_LIFECYCLE_RELOAD_ERRORS, lc.reload_errors);
  tks_stat_u64(st, &ST_LIFECYCLE_RELOAD_APPLIED, lc.reload_applied);
  tks_stat_u64(st, &ST_LIFECYCLE_RELOAD_REFUSED, lc.reload_refused);
  tks_stat_u64(st, &ST_LIFECYCLE_IDLE_CLOSED, lc.idle_closed);
  tks_stat_u64(st, &ST_LIFECYCLE_WATCHDOG_USEC, lc.watchdog_usec);
}

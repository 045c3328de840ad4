/*
 * The daemon's life under a supervisor: SIGHUP re-reads the config file and
 * applies the keys that can change while running (log level, fsync policy,
 * memory limits, idle timeout, connection and row caps), refusing every
 * other change with one log line; sd_notify RELOADING=1/READY=1 around it;
 * WATCHDOG=1 at half of $WATCHDOG_USEC; a STATUS= line every 10 s; and
 * closing ingest clients silent for longer than ingest.idle_timeout.
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

static struct {
  bool started;
  uv_timer_t status_timer, idle_timer, watchdog_timer;
  bool idle_running;
  uint64_t watchdog_usec; /* 0: no watchdog */
  uint64_t reloads, reload_errors, reload_applied, reload_refused, idle_closed;
} lc;

/* ---- the keys, and which of them a reload may change ---------------- */

enum kind { K_LISTEN, K_STR, K_UINT, K_SIZE, K_DURATION, K_BOOL, K_F64, K_ENUM, K_LEVEL, K_SCHEMA };
/* What applying a changed key takes, beyond copying it into srv->cfg. */
enum apply { FIXED, LIVE, LIVE_LOG, LIVE_JOURNAL, LIVE_LIMITS, LIVE_IDLE };

struct key {
  const char *name; /* as written in the YAML file */
  enum kind kind;
  enum apply apply;
  size_t off, size;
  const char *const *names; /* K_ENUM: value names, in the enum's order (config.h) */
  unsigned nnames;
};

#define FIELD(f) offsetof(struct tks_config, f), sizeof(((struct tks_config *)0)->f)
#define NAMES(a) a, TKS_ARRAY_SIZE(a)

/* Every key of the config file (lib/config.c).  A key missing here is
 * caught by the whole-struct check in reload() and reported as unknown. */
static const struct key keys[] = {
    {"ingest.listen", K_LISTEN, FIXED, FIELD(ingest.listen), NULL, 0},
    {"ingest.max_connections", K_UINT, LIVE, FIELD(ingest.max_connections), NULL, 0},
    {"ingest.max_message_bytes", K_SIZE, FIXED, FIELD(ingest.max_message_bytes), NULL, 0},
    {"ingest.read_buffer", K_SIZE, FIXED, FIELD(ingest.read_buffer_bytes), NULL, 0},
    {"ingest.idle_timeout", K_DURATION, LIVE_IDLE, FIELD(ingest.idle_timeout_ns), NULL, 0},
    {"control.socket", K_STR, FIXED, FIELD(control.socket), NULL, 0},
    {"store.mode", K_ENUM, FIXED, FIELD(store.mode), NAMES(tks_mode_names)},
    {"store.page_size", K_SIZE, FIXED, FIELD(store.page_size), NULL, 0},
    {"store.growth_factor", K_F64, FIXED, FIELD(store.growth_factor), NULL, 0},
    {"store.max_symbols", K_UINT, FIXED, FIELD(store.max_symbols), NULL, 0},
    {"store.max_strings", K_UINT, FIXED, FIELD(store.max_strings), NULL, 0},
    {"schema", K_SCHEMA, FIXED, FIELD(schema), NULL, 0},
    {"journal.enabled", K_BOOL, FIXED, FIELD(journal.enabled), NULL, 0},
    {"journal.dir", K_STR, FIXED, FIELD(journal.dir), NULL, 0},
    {"journal.fsync", K_ENUM, LIVE_JOURNAL, FIELD(journal.fsync), NAMES(tks_fsync_names)},
    {"journal.fsync_interval", K_DURATION, LIVE_JOURNAL, FIELD(journal.fsync_interval_ns), NULL, 0},
    {"journal.on_corrupt", K_ENUM, FIXED, FIELD(journal.on_corrupt), NAMES(tks_on_corrupt_names)},
    {"journal.segment_size", K_SIZE, FIXED, FIELD(journal.segment_bytes), NULL, 0},
    {"journal.max_bytes", K_SIZE, FIXED, FIELD(journal.max_bytes), NULL, 0},
    {"journal.on_error", K_ENUM, LIVE_JOURNAL, FIELD(journal.on_error), NAMES(tks_on_error_names)},
    {"limits.max_memory", K_SIZE, LIVE_LIMITS, FIELD(limits.max_memory), NULL, 0},
    {"limits.when_full", K_ENUM, LIVE_LIMITS, FIELD(limits.when_full), NAMES(tks_when_full_names)},
    {"limits.retention", K_DURATION, LIVE_LIMITS, FIELD(limits.retention_ns), NULL, 0},
    {"query.max_rows", K_UINT, LIVE, FIELD(query.max_rows), NULL, 0},
    {"log.level", K_LEVEL, LIVE_LOG, FIELD(log.level), NULL, 0},
};

static uint64_t load_uint(const void *p, size_t size) {
  uint8_t u8;
  uint16_t u16;
  uint32_t u32;
  uint64_t u64;
  switch (size) {
  case 1: memcpy(&u8, p, 1); return u8;
  case 2: memcpy(&u16, p, 2); return u16;
  case 4: memcpy(&u32, p, 4); return u32;
  default: memcpy(&u64, p, 8); return u64;
  }
}

static bool same_default(const struct tks_field *a, const struct tks_field *b) {
  switch (a->type) {
  case TKS_TYPE_TIMESTAMP:
  case TKS_TYPE_I64: return a->dflt.i64 == b->dflt.i64;
  case TKS_TYPE_U32:
  case TKS_TYPE_SYMBOL:
  case TKS_TYPE_STRING: return a->dflt.u32 == b->dflt.u32;
  case TKS_TYPE_F64: return memcmp(&a->dflt.f64, &b->dflt.f64, sizeof a->dflt.f64) == 0;
  case TKS_TYPE_BOOL: return a->dflt.b == b->dflt.b;
  case TKS_TYPE__COUNT: break;
  }
  return true;
}

/* Describes the first difference between two schemas into buf ("" if none):
 * the declared fields, in order, with their types, required flags and defaults. */
static void schema_diff(const struct tks_schema *a, const struct tks_schema *b, char *buf,
                        size_t n) {
  buf[0] = '\0';
  unsigned common = a->nfields < b->nfields ? a->nfields : b->nfields;
  for (unsigned i = 0; i < common; i++) {
    const struct tks_field *x = &a->fields[i], *y = &b->fields[i];
    if (strcmp(x->name, y->name) != 0) {
      snprintf(buf, n, "field %u %s -> %s", i + 1, x->name, y->name);
      return;
    }
    if (x->type != y->type) {
      snprintf(buf, n, "field %s: %s -> %s", x->name, tks_type_name(x->type),
               tks_type_name(y->type));
      return;
    }
    if (x->required != y->required) {
      snprintf(buf, n, "field %s: %s -> %s", x->name, x->required ? "required" : "optional",
               y->required ? "required" : "optional");
      return;
    }
    if (!same_default(x, y)) {
      snprintf(buf, n, "field %s: another default", x->name);
      return;
    }
  }
  if (a->nfields != b->nfields)
    snprintf(buf, n, "%u fields -> %u fields", a->nfields, b->nfields);
}

/* The key's value in c, for a log line. */
static void fmt_value(const struct key *k, const struct tks_config *c, char *buf, size_t n) {
  const char *p = (const char *)c + k->off;
  uint64_t v = 0;
  double d;
  switch (k->kind) {
  case K_LISTEN:
  case K_STR: snprintf(buf, n, "%s", p); return;
  case K_SCHEMA:
    snprintf(buf, n, "%s, %u fields", c->schema.name, c->schema.nfields);
    return;
  case K_F64:
    memcpy(&d, p, sizeof d);
    snprintf(buf, n, "%g", d);
    return;
  default: break;
  }
  v = load_uint(p, k->size);
  switch (k->kind) {
  case K_UINT: snprintf(buf, n, "%llu", (unsigned long long)v); break;
  case K_SIZE: tks_format_size(v, buf, n); break;
  case K_DURATION: tks_format_duration(v, buf, n); break;
  case K_BOOL: snprintf(buf, n, "%s", v ? "true" : "false"); break;
  case K_ENUM: snprintf(buf, n, "%s", v < k->nnames ? k->names[v] : "?"); break;
  case K_LEVEL: snprintf(buf, n, "%s", tks_log_level_name((enum tks_log_level)v)); break;
  default: snprintf(buf, n, "?"); break;
  }
}

static bool same_value(const struct key *k, const struct tks_config *a,
                       const struct tks_config *b) {
  const char *p = (const char *)a + k->off, *q = (const char *)b + k->off;
  switch (k->kind) {
  case K_LISTEN: /* "localhost:7070" and "127.0.0.1:7070" are one address */
    return strcmp(a->ingest.host, b->ingest.host) == 0 && a->ingest.port == b->ingest.port;
  case K_STR: return strcmp(p, q) == 0;
  case K_SCHEMA: {
    char why[8];
    schema_diff(&a->schema, &b->schema, why, sizeof why);
    return why[0] == '\0';
  }
  default: return memcmp(p, q, k->size) == 0;
  }
}

/* ---- systemd status --------------------------------------------------- */

/* The value of path in `stats text` output, or 0. */
static uint64_t text_stat(const char *text, const char *path) {
  size_t n = strlen(path);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (strncmp(p, path, n) == 0 && p[n] == ' ') return strtoull(p + n + 1, NULL, 10);
  return 0;
}

/* "STATUS=..." from the same figures `stats` reports, after prefix. */
static void send_status(struct tks_server *srv, const char *prefix) {
  char msg[256];
  struct tks_stats *st = tks_stats_create();
  struct tks_buf text;
  tks_buf_init(&text);
  if (st) tks_server_stats(srv, st, false);
  if (st && tks_stats_text(st, &text) == 0 && tks_buf_putc(&text, '\0') == 0) {
    uint64_t mem = text_stat(text.data, "memory.total_bytes");
    snprintf(msg, sizeof msg, "%sSTATUS=%llu ticks/s, %llu ticks held, %.1f MiB, %llu connections",
             prefix, (unsigned long long)text_stat(text.data, "ingest.rate_1s"),
             (unsigned long long)text_stat(text.data, "ticks.stored"),
             (double)mem / (1024.0 * 1024.0),
             (unsigned long long)text_stat(text.data, "connections.current"));
  } else {
    snprintf(msg, sizeof msg, "%sSTATUS=%llu ticks held, %llu connections", prefix,
             (unsigned long long)tks_store_ticks(srv->store),
             (unsigned long long)srv->conns_current);
  }
  tks_buf_finish(&text);
  tks_stats_destroy(st);
  tks_notify(msg);
}

static void on_status_timer(uv_timer_t *t) {
  struct tks_server *srv = t->data;
  if (!srv->stopping) send_status(srv, "");
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

/* ---- idle clients ----------------------------------------------------- */

static void on_idle_timer(uv_timer_t *t) {
  struct tks_server *srv = t->data;
  uint64_t timeout_ns = srv->cfg.ingest.idle_timeout_ns;
  if (srv->stopping || timeout_ns == 0) return;
  uint64_t timeout_ms = (timeout_ns + 999999) / 1000000;
  unsigned n = tks_ingest_close_idle(srv, uv_now(srv->loop), timeout_ms);
  if (n) {
    char d[32];
    lc.idle_closed += n;
    tks_format_duration(timeout_ns, d, sizeof d);
    tks_log(TKS_LOG_INFO, "closed %u idle ingest connection%s (ingest.idle_timeout %s)", n,
            n == 1 ? "" : "s", d);
  }
}

/* Runs the idle check while ingest.idle_timeout is set. */
static void idle_update(struct tks_server *srv) {
  bool want = srv->cfg.ingest.idle_timeout_ns > 0 && !srv->stopping;
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

/* Compares next with the running config: applies the live keys that
 * differ, logs one line for each fixed key that differs. */
static void apply(struct tks_server *srv, const struct tks_config *next) {
  unsigned applied = 0, refused = 0;
  bool journal = false, limits = false;
  char was[160], now[160];
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(keys); i++) {
    const struct key *k = &keys[i];
    if (same_value(k, &srv->cfg, next)) continue;
    if (k->apply == FIXED) {
      refused++;
      if (k->kind == K_SCHEMA) {
        schema_diff(&srv->cfg.schema, &next->schema, now, sizeof now);
        tks_log(TKS_LOG_WARN,
                "reload: schema changed (%s): needs a restart, keeping the running value", now);
      } else {
        fmt_value(k, &srv->cfg, was, sizeof was);
        fmt_value(k, next, now, sizeof now);
        tks_log(TKS_LOG_WARN,
                "reload: %s changed (%s -> %s): needs a restart, keeping the running value",
                k->name, was, now);
      }
      continue;
    }
    fmt_value(k, &srv->cfg, was, sizeof was);
    fmt_value(k, next, now, sizeof now);
    memcpy((char *)&srv->cfg + k->off, (const char *)next + k->off, k->size);
    applied++;
    tks_log(TKS_LOG_INFO, "reload: %s %s -> %s", k->name, was, now);
    switch (k->apply) {
    case LIVE_LOG: tks_log_set_level(srv->cfg.log.level); break;
    case LIVE_JOURNAL: journal = true; break;
    case LIVE_LIMITS: limits = true; break;
    case LIVE_IDLE: idle_update(srv); break;
    default: break; /* read from srv->cfg where used */
    }
  }
  /* After every value is in srv->cfg: a section is applied as a whole. */
  if (journal) tks_durability_reload(srv);
  if (limits) tks_limits_reload(srv);
  lc.reload_applied += applied;
  lc.reload_refused += refused;
  tks_log(TKS_LOG_INFO, "reload: applied %u change%s, refused %u", applied, applied == 1 ? "" : "s",
          refused);
}

/* True if next differs from cfg anywhere the key table does not look (a
 * key added to the config but not here). */
static bool unlisted_change(const struct tks_config *cfg, const struct tks_config *next) {
  struct tks_config *probe = malloc(sizeof *probe);
  if (!probe) return false;
  memcpy(probe, cfg, sizeof *probe);
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(keys); i++)
    memcpy((char *)probe + keys[i].off, (const char *)next + keys[i].off, keys[i].size);
  memcpy(probe->ingest.host, next->ingest.host, sizeof probe->ingest.host);
  probe->ingest.port = next->ingest.port;
  memcpy(probe->path, next->path, sizeof probe->path);
  bool differs = memcmp(probe, next, sizeof *probe) != 0;
  free(probe);
  return differs;
}

void tks_lifecycle_reload(struct tks_server *srv) {
  if (srv->stopping) return;
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
  if (unlisted_change(&srv->cfg, next))
    tks_log(TKS_LOG_WARN,
            "reload: other settings changed that cannot be applied live: they need a restart");
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
  lc.status_timer.data = lc.idle_timer.data = lc.watchdog_timer.data = srv;
  lc.started = true;
  uv_timer_start(&lc.status_timer, on_status_timer, STATUS_INTERVAL_MS, STATUS_INTERVAL_MS);
  idle_update(srv);
  lc.watchdog_usec = watchdog_usec_from_env();
  if (lc.watchdog_usec) {
    uint64_t every_ms = lc.watchdog_usec / 2000;
    if (every_ms == 0) every_ms = 1;
    uv_timer_start(&lc.watchdog_timer, on_watchdog_timer, every_ms, every_ms);
    tks_log(TKS_LOG_INFO, "systemd watchdog: WATCHDOG=1 every %llu ms (WATCHDOG_USEC=%llu)",
            (unsigned long long)every_ms, (unsigned long long)lc.watchdog_usec);
  }
  send_status(srv, "READY=1\n");
  return 0;
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
  lc.idle_running = false;
}

void tks_lifecycle_stats(struct tks_server *srv, struct tks_stats *st) {
  (void)srv;
  tks_stats_u64(st, "lifecycle.reloads", lc.reloads, TKS_STAT_COUNTER,
                "SIGHUP reloads of the config file that were read and applied", NULL, NULL);
  tks_stats_u64(st, "lifecycle.reload_errors", lc.reload_errors, TKS_STAT_COUNTER,
                "SIGHUP reloads refused (config unreadable or invalid; the running one kept)",
                NULL, NULL);
  tks_stats_u64(st, "lifecycle.reload_applied", lc.reload_applied, TKS_STAT_COUNTER,
                "Config keys changed by reloads", NULL, NULL);
  tks_stats_u64(st, "lifecycle.reload_refused", lc.reload_refused, TKS_STAT_COUNTER,
                "Config key changes refused by reloads (need a restart)", NULL, NULL);
  tks_stats_u64(st, "lifecycle.idle_closed", lc.idle_closed, TKS_STAT_COUNTER,
                "Ingest connections closed for silence (ingest.idle_timeout)", NULL, NULL);
  tks_stats_u64(st, "lifecycle.watchdog_usec", lc.watchdog_usec, TKS_STAT_GAUGE,
                "systemd watchdog timeout (WATCHDOG_USEC), 0 when off", NULL, NULL);
}

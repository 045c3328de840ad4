/*
 * The server object, the one owner of the daemon's shared state: the store
 * and its tables, the counters every module adds to, the holds on ingest
 * (one bit a reason, one listener told on the first hold and the last
 * release), the per-second rate samples, and the composition of `stats`
 * (its own figures, then the sections the modules registered, in order)
 * and of the summary systemd's STATUS= line is built from.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"

#define RATE_PERIOD_MS 1000

int tks_server_init(struct tks_server *srv, uv_loop_t *loop) {
  const struct tks_config *cfg = &srv->cfg;
  srv->loop = loop;
  srv->start_mono_ns = tks_mono_ns();
  srv->slab = tks_slab_create(cfg->store.page_size, cfg->store.growth_factor, 32);
  srv->symbols = tks_symtab_create(cfg->store.max_symbols);
  srv->strings = tks_symtab_create(cfg->store.max_strings);
  srv->names = tks_symtab_create(TKS_MAX_FIELD_NAMES);
  if (!srv->slab || !srv->symbols || !srv->strings || !srv->names) return -ENOMEM;
  tks_usage_init(&srv->usage);
  srv->store = tks_store_create(&srv->cfg.schema, srv->slab);
  if (!srv->store) return -ENOMEM;
  srv->decoder = (struct tks_decoder){
      .schema = &srv->cfg.schema,
      .symbols = srv->symbols,
      .strings = srv->strings,
      .max_message_bytes = cfg->ingest.max_message_bytes,
      .mode = cfg->store.mode,
      .names = srv->names,
  };
  srv->sink = (struct tks_tick_sink){
      .store = srv->store, .usage = &srv->usage, .mode = cfg->store.mode};
  return 0;
}

void tks_server_finish(struct tks_server *srv) {
  tks_store_destroy(srv->store);
  tks_symtab_destroy(srv->symbols);
  tks_symtab_destroy(srv->strings);
  tks_symtab_destroy(srv->names);
  tks_slab_destroy(srv->slab);
  srv->store = NULL;
  srv->symbols = srv->strings = srv->names = NULL;
  srv->slab = NULL;
}

static void on_rate_timer(uv_timer_t *t) {
  struct tks_server *srv = t->data;
  srv->rate_pos++;
  srv->rate_ring[srv->rate_pos % TKS_RATE_WINDOW] = srv->ticks_accepted;
}

void tks_server_start(struct tks_server *srv) {
  uv_timer_init(srv->loop, &srv->rate_timer);
  srv->rate_timer.data = srv;
  srv->rate_timer_open = true;
  uv_timer_start(&srv->rate_timer, on_rate_timer, RATE_PERIOD_MS, RATE_PERIOD_MS);
}

void tks_server_stop(struct tks_server *srv) {
  if (!srv->rate_timer_open) return;
  srv->rate_timer_open = false;
  uv_timer_stop(&srv->rate_timer);
  uv_close((uv_handle_t *)&srv->rate_timer, NULL);
}

/* ---- wiring -------------------------------------------------------------- */

void tks_server_on_hold(struct tks_server *srv, tks_hold_fn fn) { srv->on_hold = fn; }
void tks_server_set_durable(struct tks_server *srv, tks_count_fn fn) { srv->durable = fn; }

void tks_server_add_stats(struct tks_server *srv, tks_stats_fn fn) {
  if (srv->nsections < TKS_MAX_STATS_SECTIONS) srv->sections[srv->nsections++] = fn;
}

/* ---- holds --------------------------------------------------------------- */

void tks_server_hold(struct tks_server *srv, unsigned reason, bool on) {
  unsigned before = srv->held;
  if (on)
    srv->held |= reason;
  else
    srv->held &= ~reason;
  if (before && !srv->held) {
    tks_log(TKS_LOG_INFO, "ingest resumed");
    if (srv->on_hold) srv->on_hold(srv, false);
  } else if (!before && srv->held) {
    srv->holds++;
    tks_log(TKS_LOG_WARN, "ingest held (%s): not reading from clients until there is room",
            (reason & TKS_HOLD_JOURNAL) ? "journal" : "memory limit");
    if (srv->on_hold) srv->on_hold(srv, true);
  }
}

void tks_server_unhold_quietly(struct tks_server *srv, unsigned reason) { srv->held &= ~reason; }

void tks_server_set_ingesting(struct tks_server *srv, const char *addr, uint16_t port) {
  srv->ingesting = addr != NULL;
  if (!addr) return;
  snprintf(srv->listen_addr, sizeof srv->listen_addr, "%s", addr);
  srv->port = port;
}

void tks_server_log_limited(struct tks_server *srv, const char *fmt, ...) {
  uint64_t now = tks_mono_ns();
  if (now - srv->log_window_start >= 1000000000u) {
    if (srv->log_suppressed)
      tks_log(TKS_LOG_WARN, "%llu more rejection messages suppressed in the last second",
              (unsigned long long)srv->log_suppressed);
    srv->log_window_start = now;
    srv->log_lines_in_window = 0;
    srv->log_suppressed = 0;
  }
  if (srv->log_lines_in_window >= 10) {
    srv->log_suppressed++;
    return;
  }
  srv->log_lines_in_window++;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  tks_log(TKS_LOG_WARN, "%s", msg);
}

/* ---- stats --------------------------------------------------------------- */

/* "undeclared.<name>.*": the fields ticks carried that the schema does not
 * declare (names are cut to what a stats path can carry). */
static void usage_stats(const struct tks_usage *u, struct tks_stats *st) {
  static const char *const type_names[] = {"nil", "bool", "int", "float", "string"};
  tks_stats_u64(st, "undeclared_overflow", u->overflow, TKS_STAT_COUNTER,
                "Ticks whose undeclared field names did not fit the usage table", NULL, NULL);
  for (unsigned i = 0; i < u->count; i++) {
    const struct tks_usage_field *f = &u->fields[i];
    char name[sizeof f->name], path[160], label[200];
    /* A dot would split the JSON path, a quote or a backslash the label. */
    size_t n = 0;
    for (const char *c = f->name; *c; c++) name[n++] = (*c == '.' || *c == '"' || *c == '\\' || (unsigned char)*c < 0x20) ? '_' : *c;
    name[n] = '\0';
    snprintf(label, sizeof label, "field=\"%s\"", name);
    const struct {
      const char *key, *help;
      uint64_t v;
    } figs[] = {
        {"ticks", "Ticks that carried the undeclared field", f->ticks},
        {"kept", "Ticks with the field kept (overflow map or dynamic object)", f->kept},
        {"rejected", "Ticks rejected for the field (slotted mode)", f->rejected},
        {"cost_bytes", "Bytes the field costs beyond the slotted records", f->cost_bytes},
        {"string_bytes", "Bytes of the field's string values", f->string_bytes},
    };
    for (unsigned k = 0; k < TKS_ARRAY_SIZE(figs); k++) {
      char prom[64];
      snprintf(path, sizeof path, "undeclared.%s.%s", name, figs[k].key);
      snprintf(prom, sizeof prom, "undeclared_field_%s", figs[k].key);
      tks_stats_u64(st, path, figs[k].v, TKS_STAT_GAUGE, figs[k].help, prom, label);
    }
    char types[64] = "";
    for (unsigned b = 0; b < TKS_ARRAY_SIZE(type_names); b++)
      if (f->types & (1u << b)) {
        if (types[0]) strcat(types, ",");
        strcat(types, type_names[b]);
      }
    snprintf(path, sizeof path, "undeclared.%s.types", name);
    tks_stats_str(st, path, types, NULL, NULL, NULL);
  }
}

/* memory.total_bytes: slab pages, symbol tables and index. */
static uint64_t symbol_bytes(const struct tks_server *srv) {
  return tks_symtab_bytes(srv->symbols) + tks_symtab_bytes(srv->strings) +
         tks_symtab_bytes(srv->names);
}

static uint64_t total_bytes(const struct tks_server *srv) {
  return tks_slab_bytes_allocated(srv->slab) + symbol_bytes(srv) +
         tks_store_index_bytes(srv->store);
}

static uint64_t rate_1s(const struct tks_server *srv) {
  unsigned p = srv->rate_pos;
  return srv->rate_ring[p % TKS_RATE_WINDOW] -
         srv->rate_ring[(p + TKS_RATE_WINDOW - 1) % TKS_RATE_WINDOW];
}

void tks_server_summary(struct tks_server *srv, struct tks_server_summary *out) {
  *out = (struct tks_server_summary){
      .rate_1s = rate_1s(srv),
      .ticks_stored = tks_store_ticks(srv->store),
      .memory_bytes = total_bytes(srv),
      .connections = srv->conns_current,
  };
}

void tks_server_stats(struct tks_server *srv, struct tks_stats *st, bool slabs_only) {
  if (slabs_only) {
    tks_slab_stats(srv->slab, st);
    return;
  }
  const struct tks_schema *sc = &srv->cfg.schema;
  uint64_t now = tks_mono_ns();
  tks_stats_str(st, "version", TKS_VERSION, "tickslabd version", "build_info", "version");
  tks_stats_u64(st, "pid", (uint64_t)getpid(), TKS_STAT_GAUGE, NULL, NULL, NULL);
  tks_stats_u64(st, "uptime_seconds", (now - srv->start_mono_ns) / 1000000000u, TKS_STAT_GAUGE,
                "Seconds since the daemon started", NULL, NULL);
  tks_stats_str(st, "config.path", srv->cfg.path[0] ? srv->cfg.path : "(defaults)", NULL, NULL, NULL);

  tks_stats_str(st, "store.mode", tks_mode_name(srv->cfg.store.mode), "Store mode", "store_mode",
                "mode");
  tks_store_stats(srv->store, st);

  tks_stats_str(st, "schema.name", sc->name, NULL, NULL, NULL);
  tks_stats_u64(st, "schema.record_size", sc->record_size, TKS_STAT_GAUGE,
                "Bytes of one slotted record", NULL, NULL);
  tks_stats_u64(st, "schema.field_count", sc->nfields, TKS_STAT_GAUGE, NULL, NULL, NULL);
  for (unsigned i = 0; i < sc->nfields; i++) {
    const struct tks_field *f = &sc->fields[i];
    char path[96];
    snprintf(path, sizeof path, "schema.fields.%s.type", f->name);
    tks_stats_str(st, path, tks_type_name(f->type), NULL, NULL, NULL);
    snprintf(path, sizeof path, "schema.fields.%s.offset", f->name);
    tks_stats_u64(st, path, f->offset, TKS_STAT_GAUGE, NULL, NULL, NULL);
    snprintf(path, sizeof path, "schema.fields.%s.size", f->name);
    tks_stats_u64(st, path, f->size, TKS_STAT_GAUGE, NULL, NULL, NULL);
    snprintf(path, sizeof path, "schema.fields.%s.required", f->name);
    tks_stats_u64(st, path, f->required, TKS_STAT_GAUGE, NULL, NULL, NULL);
  }

  tks_stats_str(st, "ingest.listen", srv->listen_addr, NULL, NULL, NULL);
  tks_stats_u64(st, "ingest.port", srv->port, TKS_STAT_GAUGE, NULL, NULL, NULL);
  tks_stats_u64(st, "ingest.bytes_received", srv->bytes_received, TKS_STAT_COUNTER,
                "Bytes read from ingest connections", NULL, NULL);
  unsigned p = srv->rate_pos;
  uint64_t ten_ago = srv->rate_ring[(p + TKS_RATE_WINDOW - 10) % TKS_RATE_WINDOW];
  tks_stats_u64(st, "ingest.rate_1s", rate_1s(srv), TKS_STAT_GAUGE,
                "Ticks accepted in the last whole second", NULL, NULL);
  tks_stats_f64(st, "ingest.rate_10s", (double)(srv->rate_ring[p % TKS_RATE_WINDOW] - ten_ago) / 10.0,
                TKS_STAT_GAUGE, "Ticks accepted per second over the last ten seconds", NULL, NULL);
  tks_stats_u64(st, "ingest.held", srv->held != 0, TKS_STAT_GAUGE,
                "1 while ingest is held back (memory limit or journal)", NULL, NULL);
  tks_stats_u64(st, "ingest.holds", srv->holds, TKS_STAT_COUNTER, "Times ingest was held back",
                NULL, NULL);

  uint64_t rejected = 0;
  for (unsigned r = 0; r < TKS_REASON__COUNT; r++) rejected += srv->rejected[r];
  tks_stats_u64(st, "ticks.accepted", srv->ticks_accepted, TKS_STAT_COUNTER,
                "Ticks accepted into the store", NULL, NULL);
  tks_stats_u64(st, "ticks.stored", tks_store_ticks(srv->store), TKS_STAT_GAUGE,
                "Ticks held in the store now", NULL, NULL);
  tks_stats_u64(st, "ticks.rejected", rejected, TKS_STAT_COUNTER,
                "Messages rejected, for any reason", NULL, NULL);
  for (unsigned r = 0; r < TKS_REASON__COUNT; r++) {
    char path[80], label[64];
    snprintf(path, sizeof path, "ticks.rejected_by_reason.%s", tks_reason_name(r));
    snprintf(label, sizeof label, "reason=\"%s\"", tks_reason_name(r));
    tks_stats_u64(st, path, srv->rejected[r], TKS_STAT_COUNTER, "Messages rejected, by reason",
                  "ticks_rejected_by_reason", label);
  }
  tks_stats_u64(st, "ticks.durable", srv->durable ? srv->durable(srv) : 0, TKS_STAT_GAUGE,
                "Ticks fsynced to the journal (replayed at start, and accepted since)", NULL, NULL);
  tks_stats_u64(st, "ticks.late", tks_store_late_ticks(srv->store), TKS_STAT_COUNTER,
                "Ticks older than the newest tick of their symbol, inserted in place", NULL, NULL);

  tks_stats_u64(st, "connections.current", srv->conns_current, TKS_STAT_GAUGE,
                "Open ingest connections", NULL, NULL);
  tks_stats_u64(st, "connections.total", srv->conns_total, TKS_STAT_COUNTER,
                "Ingest connections accepted", NULL, NULL);
  tks_stats_u64(st, "connections.closed_on_error", srv->conns_closed_on_error, TKS_STAT_COUNTER,
                "Ingest connections closed for a protocol error", NULL, NULL);
  tks_stats_u64(st, "connections.refused", srv->conns_refused, TKS_STAT_COUNTER,
                "Ingest connections closed at once (max_connections)", NULL, NULL);

  uint64_t slab = tks_slab_bytes_allocated(srv->slab);
  uint64_t total = total_bytes(srv);
  uint64_t ticks = tks_store_ticks(srv->store);
  tks_stats_u64(st, "memory.rss_bytes", tks_rss_bytes(), TKS_STAT_GAUGE,
                "Resident set size of the process (from /proc)", NULL, NULL);
  tks_stats_u64(st, "memory.slab_bytes", slab, TKS_STAT_GAUGE, "Bytes of slab pages", NULL, NULL);
  tks_stats_u64(st, "memory.slab_used_bytes", tks_slab_bytes_used(srv->slab), TKS_STAT_GAUGE,
                "Bytes of slab chunks in use", NULL, NULL);
  tks_stats_u64(st, "memory.symbol_bytes", symbol_bytes(srv), TKS_STAT_GAUGE,
                "Bytes of the symbol, string and field-name tables", NULL, NULL);
  tks_stats_u64(st, "memory.index_bytes", tks_store_index_bytes(srv->store), TKS_STAT_GAUGE,
                "Bytes of the per-symbol index", NULL, NULL);
  tks_stats_u64(st, "memory.total_bytes", total, TKS_STAT_GAUGE,
                "Bytes the store holds: slab pages, symbol tables and index", NULL, NULL);
  tks_stats_f64(st, "memory.bytes_per_tick", ticks ? (double)total / (double)ticks : 0.0,
                TKS_STAT_GAUGE, "memory.total_bytes divided by ticks stored", NULL, NULL);

  tks_stats_u64(st, "symbols.count", tks_symtab_count(srv->symbols), TKS_STAT_GAUGE,
                "Distinct symbols interned", NULL, NULL);
  tks_stats_u64(st, "symbols.bytes", tks_symtab_bytes(srv->symbols), TKS_STAT_GAUGE,
                "Bytes of the symbol table", NULL, NULL);
  tks_stats_u64(st, "strings.count", tks_symtab_count(srv->strings), TKS_STAT_GAUGE,
                "Distinct values of string fields interned", NULL, NULL);
  tks_stats_u64(st, "strings.bytes", tks_symtab_bytes(srv->strings), TKS_STAT_GAUGE,
                "Bytes of the string table", NULL, NULL);
  tks_stats_u64(st, "fields.names.count", tks_symtab_count(srv->names), TKS_STAT_GAUGE,
                "Distinct field names of dynamic ticks", NULL, NULL);
  tks_stats_u64(st, "fields.names.bytes", tks_symtab_bytes(srv->names), TKS_STAT_GAUGE,
                "Bytes of the field-name table", NULL, NULL);
  usage_stats(&srv->usage, st);
  for (unsigned i = 0; i < srv->nsections; i++) srv->sections[i](srv, st);
  tks_slab_stats(srv->slab, st);
}

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

static const struct tks_stat
    ST_TICKS_REJECTED_BY_REASON = {"ticks.rejected_by_reason.*", TKS_STAT_COUNTER, TKS_UNIT_NONE,
                                   "Messages rejected, by reason", "ticks_rejected_by_reason",
                                   "reason"},
    ST_SCHEMA_FIELD_TYPE = {"schema.fields.*.type", TKS_STAT_GAUGE, TKS_UNIT_NONE, NULL, NULL, NULL},
    ST_SCHEMA_FIELD_OFFSET = {"schema.fields.*.offset", TKS_STAT_GAUGE, TKS_UNIT_BYTES, NULL, NULL,
                              NULL},
    ST_SCHEMA_FIELD_SIZE = {"schema.fields.*.size", TKS_STAT_GAUGE, TKS_UNIT_BYTES, NULL, NULL, NULL},
    ST_SCHEMA_FIELD_REQUIRED = {"schema.fields.*.required", TKS_STAT_GAUGE, TKS_UNIT_NONE, NULL,
                                NULL, NULL},
    ST_UNDECLARED_TICKS = {"undeclared.*.ticks", TKS_STAT_GAUGE, TKS_UNIT_TICKS,
                           "Ticks that carried the undeclared field", "undeclared_field_ticks",
                           "field"},
    ST_UNDECLARED_KEPT = {"undeclared.*.kept", TKS_STAT_GAUGE, TKS_UNIT_TICKS,
                          "Ticks with the field kept (overflow map or dynamic object)",
                          "undeclared_field_kept", "field"},
    ST_UNDECLARED_REJECTED = {"undeclared.*.rejected", TKS_STAT_GAUGE, TKS_UNIT_TICKS,
                              "Ticks rejected for the field (slotted mode)",
                              "undeclared_field_rejected", "field"},
    ST_UNDECLARED_COST_BYTES = {"undeclared.*.cost_bytes", TKS_STAT_GAUGE, TKS_UNIT_BYTES,
                                "Bytes the field costs beyond the slotted records",
                                "undeclared_field_cost_bytes", "field"},
    ST_UNDECLARED_STRING_BYTES = {"undeclared.*.string_bytes", TKS_STAT_GAUGE, TKS_UNIT_BYTES,
                                  "Bytes of the field's string values",
                                  "undeclared_field_string_bytes", "field"},
    ST_UNDECLARED_TYPES = {"undeclared.*.types", TKS_STAT_GAUGE, TKS_UNIT_NONE, NULL, NULL, NULL},
    ST_UNDECLARED_OVERFLOW = {"undeclared_overflow", TKS_STAT_COUNTER, TKS_UNIT_NONE,
                              "Ticks whose undeclared field names did not fit the usage table",
                              NULL, NULL},
    ST_VERSION = {"version", TKS_STAT_GAUGE, TKS_UNIT_NONE,
                  "tickslabd version", "build_info", "version"},
    ST_PID = {"pid", TKS_STAT_GAUGE, TKS_UNIT_NONE, NULL, NULL, NULL},
    ST_UPTIME_SECONDS = {"uptime_seconds", TKS_STAT_GAUGE, TKS_UNIT_SECONDS,
                         "Seconds since the daemon started", NULL, NULL},
    ST_CONFIG_PATH = {"config.path", TKS_STAT_GAUGE, TKS_UNIT_NONE, NULL, NULL, NULL},
    ST_STORE_MODE = {"store.mode", TKS_STAT_GAUGE, TKS_UNIT_NONE,
                     "Store mode", "store_mode", "mode"},
    ST_SCHEMA_NAME = {"schema.name", TKS_STAT_GAUGE, TKS_UNIT_NONE, NULL, NULL, NULL},
    ST_SCHEMA_RECORD_SIZE = {"schema.record_size", TKS_STAT_GAUGE, TKS_UNIT_BYTES,
                             "Bytes of one slotted record", NULL, NULL},
    ST_SCHEMA_FIELD_COUNT = {"schema.field_count", TKS_STAT_GAUGE, TKS_UNIT_NONE, NULL, NULL, NULL},
    ST_INGEST_LISTEN = {"ingest.listen", TKS_STAT_GAUGE, TKS_UNIT_NONE, NULL, NULL, NULL},
    ST_INGEST_PORT = {"ingest.port", TKS_STAT_GAUGE, TKS_UNIT_NONE, NULL, NULL, NULL},
    ST_INGEST_BYTES_RECEIVED = {"ingest.bytes_received", TKS_STAT_COUNTER, TKS_UNIT_BYTES,
                                "Bytes read from ingest connections", NULL, NULL},
    ST_INGEST_RATE_1S = {"ingest.rate_1s", TKS_STAT_GAUGE, TKS_UNIT_TICKS_PER_SECOND,
                         "Ticks accepted in the last whole second", NULL, NULL},
    ST_INGEST_RATE_10S = {"ingest.rate_10s", TKS_STAT_GAUGE, TKS_UNIT_TICKS_PER_SECOND,
                          "Ticks accepted per second over the last ten seconds", NULL, NULL},
    ST_INGEST_HELD = {"ingest.held", TKS_STAT_GAUGE, TKS_UNIT_NONE,
                      "1 while ingest is held back (memory limit or journal)", NULL, NULL},
    ST_INGEST_HOLDS = {"ingest.holds", TKS_STAT_COUNTER, TKS_UNIT_NONE,
                       "Times ingest was held back", NULL, NULL},
    ST_TICKS_ACCEPTED = {"ticks.accepted", TKS_STAT_COUNTER, TKS_UNIT_TICKS,
                         "Ticks accepted into the store", NULL, NULL},
    ST_TICKS_STORED = {"ticks.stored", TKS_STAT_GAUGE, TKS_UNIT_TICKS,
                       "Ticks held in the store now", NULL, NULL},
    ST_TICKS_REJECTED = {"ticks.rejected", TKS_STAT_COUNTER, TKS_UNIT_NONE,
                         "Messages rejected, for any reason", NULL, NULL},
    ST_TICKS_DURABLE = {"ticks.durable", TKS_STAT_GAUGE, TKS_UNIT_TICKS,
                        "Ticks fsynced to the journal (replayed at start, and accepted since)",
                        NULL, NULL},
    ST_TICKS_LATE = {"ticks.late", TKS_STAT_COUNTER, TKS_UNIT_TICKS,
                     "Ticks older than the newest tick of their symbol, inserted in place",
                     NULL, NULL},
    ST_CONNECTIONS_CURRENT = {"connections.current", TKS_STAT_GAUGE, TKS_UNIT_NONE,
                              "Open ingest connections", NULL, NULL},
    ST_CONNECTIONS_TOTAL = {"connections.total", TKS_STAT_COUNTER, TKS_UNIT_NONE,
                            "Ingest connections accepted", NULL, NULL},
    ST_CONNECTIONS_CLOSED_ON_ERROR = {"connections.closed_on_error", TKS_STAT_COUNTER, TKS_UNIT_NONE,
                                      "Ingest connections closed for a protocol error", NULL, NULL},
    ST_CONNECTIONS_REFUSED = {"connections.refused", TKS_STAT_COUNTER, TKS_UNIT_NONE,
                              "Ingest connections closed at once (max_connections)", NULL, NULL},
    ST_MEMORY_RSS_BYTES = {"memory.rss_bytes", TKS_STAT_GAUGE, TKS_UNIT_BYTES,
                           "Resident set size of the process (from /proc)", NULL, NULL},
    ST_MEMORY_SLAB_BYTES = {"memory.slab_bytes", TKS_STAT_GAUGE, TKS_UNIT_BYTES,
                            "Bytes of slab pages", NULL, NULL},
    ST_MEMORY_SLAB_USED_BYTES = {"memory.slab_used_bytes", TKS_STAT_GAUGE, TKS_UNIT_BYTES,
                                 "Bytes of slab chunks in use", NULL, NULL},
    ST_MEMORY_SYMBOL_BYTES = {"memory.symbol_bytes", TKS_STAT_GAUGE, TKS_UNIT_BYTES,
                              "Bytes of the symbol, string and field-name tables", NULL, NULL},
    ST_MEMORY_INDEX_BYTES = {"memory.index_bytes", TKS_STAT_GAUGE, TKS_UNIT_BYTES,
                             "Bytes of the per-symbol index", NULL, NULL},
    ST_MEMORY_TOTAL_BYTES = {"memory.total_bytes", TKS_STAT_GAUGE, TKS_UNIT_BYTES,
                             "Bytes the store holds: slab pages, symbol tables and index",
                             NULL, NULL},
    ST_MEMORY_BYTES_PER_TICK = {"memory.bytes_per_tick", TKS_STAT_GAUGE, TKS_UNIT_BYTES_PER_TICK,
                                "memory.total_bytes divided by ticks stored", NULL, NULL},
    ST_SYMBOLS_COUNT = {"symbols.count", TKS_STAT_GAUGE, TKS_UNIT_NONE,
                        "Distinct symbols interned", NULL, NULL},
    ST_SYMBOLS_BYTES = {"symbols.bytes", TKS_STAT_GAUGE, TKS_UNIT_BYTES,
                        "Bytes of the symbol table", NULL, NULL},
    ST_STRINGS_COUNT = {"strings.count", TKS_STAT_GAUGE, TKS_UNIT_NONE,
                        "Distinct values of string fields interned", NULL, NULL},
    ST_STRINGS_BYTES = {"strings.bytes", TKS_STAT_GAUGE, TKS_UNIT_BYTES,
                        "Bytes of the string table", NULL, NULL},
    ST_FIELDS_NAMES_COUNT = {"fields.names.count", TKS_STAT_GAUGE, TKS_UNIT_NONE,
                             "Distinct field names of dynamic ticks", NULL, NULL},
    ST_FIELDS_NAMES_BYTES = {"fields.names.bytes", TKS_STAT_GAUGE, TKS_UNIT_BYTES,
                             "Bytes of the field-name table", NULL, NULL};

/* "undeclared.<name>.*": the fields ticks carried that the schema does not
 * declare (names are cut to what a stats path can carry). */
static void usage_stats(const struct tks_usage *u, struct tks_stats *st) {
  tks_stat_u64(st, &ST_UNDECLARED_OVERFLOW, u->overflow);
  for (unsigned i = 0; i < u->count; i++) {
    const struct tks_usage_field *f = &u->fields[i];
    char name[sizeof f->name];
    /* A dot would split the JSON path, a quote or a backslash the label. */
    size_t n = 0;
    for (const char *c = f->name; *c; c++)
      name[n++] = (*c == '.' || *c == '"' || *c == '\\' || (unsigned char)*c < 0x20) ? '_' : *c;
    name[n] = '\0';
    tks_stat_u64_of(st, &ST_UNDECLARED_TICKS, name, f->ticks);
    tks_stat_u64_of(st, &ST_UNDECLARED_KEPT, name, f->kept);
    tks_stat_u64_of(st, &ST_UNDECLARED_REJECTED, name, f->rejected);
    tks_stat_u64_of(st, &ST_UNDECLARED_COST_BYTES, name, f->cost_bytes);
    tks_stat_u64_of(st, &ST_UNDECLARED_STRING_BYTES, name, f->string_bytes);
    char types[TKS_USAGE_TYPES_TEXT_MAX];
    tks_usage_types_text(f->types, types, sizeof types);
    tks_stat_str_of(st, &ST_UNDECLARED_TYPES, name, types);
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
  tks_stat_str(st, &ST_VERSION, TKS_VERSION);
  tks_stat_u64(st, &ST_PID, (uint64_t)getpid());
  tks_stat_u64(st, &ST_UPTIME_SECONDS, (now - srv->start_mono_ns) / 1000000000u);
  tks_stat_str(st, &ST_CONFIG_PATH, srv->cfg.path[0] ? srv->cfg.path : "(defaults)");

  tks_stat_str(st, &ST_STORE_MODE, tks_mode_name(srv->cfg.store.mode));
  tks_store_stats(srv->store, st);

  tks_stat_str(st, &ST_SCHEMA_NAME, sc->name);
  tks_stat_u64(st, &ST_SCHEMA_RECORD_SIZE, sc->record_size);
  tks_stat_u64(st, &ST_SCHEMA_FIELD_COUNT, sc->nfields);
  for (unsigned i = 0; i < sc->nfields; i++) {
    const struct tks_field *f = &sc->fields[i];
    tks_stat_str_of(st, &ST_SCHEMA_FIELD_TYPE, f->name, tks_type_name(f->type));
    tks_stat_u64_of(st, &ST_SCHEMA_FIELD_OFFSET, f->name, f->offset);
    tks_stat_u64_of(st, &ST_SCHEMA_FIELD_SIZE, f->name, f->size);
    tks_stat_u64_of(st, &ST_SCHEMA_FIELD_REQUIRED, f->name, f->required);
  }

  tks_stat_str(st, &ST_INGEST_LISTEN, srv->listen_addr);
  tks_stat_u64(st, &ST_INGEST_PORT, srv->port);
  tks_stat_u64(st, &ST_INGEST_BYTES_RECEIVED, srv->bytes_received);
  unsigned p = srv->rate_pos;
  uint64_t ten_ago = srv->rate_ring[(p + TKS_RATE_WINDOW - 10) % TKS_RATE_WINDOW];
  tks_stat_u64(st, &ST_INGEST_RATE_1S, rate_1s(srv));
  tks_stat_f64(st, &ST_INGEST_RATE_10S, (double)(srv->rate_ring[p % TKS_RATE_WINDOW] - ten_ago) / 10.0);
  tks_stat_u64(st, &ST_INGEST_HELD, srv->held != 0);
  tks_stat_u64(st, &ST_INGEST_HOLDS, srv->holds);

  uint64_t rejected = 0;
  for (unsigned r = 0; r < TKS_REASON__COUNT; r++) rejected += srv->rejected[r];
  tks_stat_u64(st, &ST_TICKS_ACCEPTED, srv->ticks_accepted);
  tks_stat_u64(st, &ST_TICKS_STORED, tks_store_ticks(srv->store));
  tks_stat_u64(st, &ST_TICKS_REJECTED, rejected);
  for (unsigned r = 0; r < TKS_REASON__COUNT; r++)
    tks_stat_u64_of(st, &ST_TICKS_REJECTED_BY_REASON, tks_reason_name(r), srv->rejected[r]);
  tks_stat_u64(st, &ST_TICKS_DURABLE, srv->durable ? srv->durable(srv) : 0);
  tks_stat_u64(st, &ST_TICKS_LATE, tks_store_late_ticks(srv->store));

  tks_stat_u64(st, &ST_CONNECTIONS_CURRENT, srv->conns_current);
  tks_stat_u64(st, &ST_CONNECTIONS_TOTAL, srv->conns_total);
  tks_stat_u64(st, &ST_CONNECTIONS_CLOSED_ON_ERROR, srv->conns_closed_on_error);
  tks_stat_u64(st, &ST_CONNECTIONS_REFUSED, srv->conns_refused);

  uint64_t slab = tks_slab_bytes_allocated(srv->slab);
  uint64_t total = total_bytes(srv);
  uint64_t ticks = tks_store_ticks(srv->store);
  tks_stat_u64(st, &ST_MEMORY_RSS_BYTES, tks_rss_bytes());
  tks_stat_u64(st, &ST_MEMORY_SLAB_BYTES, slab);
  tks_stat_u64(st, &ST_MEMORY_SLAB_USED_BYTES, tks_slab_bytes_used(srv->slab));
  tks_stat_u64(st, &ST_MEMORY_SYMBOL_BYTES, symbol_bytes(srv));
  tks_stat_u64(st, &ST_MEMORY_INDEX_BYTES, tks_store_index_bytes(srv->store));
  tks_stat_u64(st, &ST_MEMORY_TOTAL_BYTES, total);
  tks_stat_f64(st, &ST_MEMORY_BYTES_PER_TICK, ticks ? (double)total / (double)ticks : 0.0);

  tks_stat_u64(st, &ST_SYMBOLS_COUNT, tks_symtab_count(srv->symbols));
  tks_stat_u64(st, &ST_SYMBOLS_BYTES, tks_symtab_bytes(srv->symbols));
  tks_stat_u64(st, &ST_STRINGS_COUNT, tks_symtab_count(srv->strings));
  tks_stat_u64(st, &ST_STRINGS_BYTES, tks_symtab_bytes(srv->strings));
  tks_stat_u64(st, &ST_FIELDS_NAMES_COUNT, tks_symtab_count(srv->names));
  tks_stat_u64(st, &ST_FIELDS_NAMES_BYTES, tks_symtab_bytes(srv->names));
  usage_stats(&srv->usage, st);
  for (unsigned i = 0; i < srv->nsections; i++) srv->sections[i](srv, st);
  tks_slab_stats(srv->slab, st);
}

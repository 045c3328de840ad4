/*
 * The server object, the one owner of the daemon's shared state: the store
 * and its tables, the counters every module adds to, the holds on ingest
 * (one bit a reason, one listener told on the first hold and the last
 * release), the per-second rate samples, and the composition of `stats`
 * (its own figures, then the sections the modules registered, in order)
 * and of the summary systemd's STATUS= line is built from.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"

#define RATE_PERIOD_MS 1000

/* The store's eviction hook: every run of ticks an eviction removes goes to
 * the listeners (the journal records it), unless the server is quiet (a
 * trim the journal records another way, a replay). */
static void on_store_evict(void *ctx, enum tks_store_rep rep, uint32_t symbol, const void *entries,
                           uint32_t count) {
  struct tks_server *srv = ctx;
  if (srv->evict_quiet) return;
  for (unsigned i = 0; i < srv->nevict; i++) srv->on_evict[i](srv, rep, symbol, entries, count);
}

int tks_server_init(struct tks_server *srv, uv_loop_t *loop) {
  const struct tks_config *cfg = &srv->cfg;
  srv->loop = loop;
  srv->start_mono_ns = tks_mono_ns();
  srv->log_limit = (struct tks_ratelimit){.period_ns = 1000000000u, .burst = 10};
  srv->slab = tks_slab_create(cfg->store.page_size, cfg->store.growth_factor, 32);
  if (srv->slab) tks_slab_set_huge_pages(srv->slab, cfg->store.huge_pages);
  srv->symbols = tks_symtab_create(cfg->store.max_symbols);
  srv->strings = tks_symtab_create(cfg->store.max_strings);
  srv->names = tks_symtab_create(TKS_MAX_FIELD_NAMES);
  if (!srv->slab || !srv->symbols || !srv->strings || !srv->names) return -ENOMEM;
  tks_usage_init(&srv->usage);
  srv->store = tks_store_create(&srv->cfg.schema, srv->slab);
  if (!srv->store) return -ENOMEM;
  tks_store_set_evict_hook(srv->store, on_store_evict, srv);
  srv->seal_cut = INT64_MIN;
  srv->journal_keep_from = UINT64_MAX;
  srv->decoder = (struct tks_decoder){
      .schema = &srv->cfg.schema,
      .symbols = srv->symbols,
      .strings = srv->strings,
      .max_message_bytes = cfg->ingest.max_message_bytes,
      .mode = cfg->store.mode,
      .names = srv->names,
      .max_object_bytes = tks_slab_page_size(srv->slab),
  };
  srv->sink = (struct tks_tick_sink){
      .store = srv->store, .usage = &srv->usage, .mode = cfg->store.mode};
  return 0;
}

int tks_server_reset_store(struct tks_server *srv) {
  tks_store_destroy(srv->store);
  tks_symtab_truncate(srv->symbols, 0);
  tks_symtab_truncate(srv->strings, 0);
  tks_symtab_truncate(srv->names, 0);
  tks_usage_init(&srv->usage);
  srv->store = srv->sink.store = tks_store_create(&srv->cfg.schema, srv->slab);
  if (!srv->store) return -ENOMEM;
  tks_store_set_evict_hook(srv->store, on_store_evict, srv);
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
void tks_server_set_subscriber_buffers(struct tks_server *srv, tks_count_fn fn) {
  srv->subscriber_buffers = fn;
}

void tks_server_set_journal_buffers(struct tks_server *srv, tks_count_fn fn) {
  srv->journal_buffers = fn;
}
void tks_server_on_pressure(struct tks_server *srv, tks_pressure_fn fn) { srv->on_pressure = fn; }
void tks_server_on_retain(struct tks_server *srv, tks_retain_fn fn) { srv->on_retain = fn; }
void tks_server_on_evict(struct tks_server *srv, tks_evict_fn fn) {
  if (srv->nevict < TKS_MAX_EVICT_LISTENERS) srv->on_evict[srv->nevict++] = fn;
}

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
            (reason & TKS_HOLD_JOURNAL) ? "journal"
            : (reason & TKS_HOLD_SINK)  ? "Kafka sink queue full"
                                        : "memory limit");
    if (srv->on_hold) srv->on_hold(srv, true);
  }
}

void tks_server_unhold_quietly(struct tks_server *srv, unsigned reason) { srv->held &= ~reason; }

void tks_server_set_listen_addr(struct tks_server *srv, const char *addr, uint16_t port) {
  snprintf(srv->listen_addr, sizeof srv->listen_addr, "%s", addr);
  srv->port = port;
}

void tks_server_set_ingesting(struct tks_server *srv, bool on) { srv->ingesting = on; }

void tks_server_log_limited(struct tks_server *srv, const char *fmt, ...) {
  uint64_t held;
  if (!tks_ratelimit_pass(&srv->log_limit, tks_mono_ns(), &held)) return;
  if (held)
    tks_log(TKS_LOG_WARN, "%llu more rejection messages suppressed in the last second",
            (unsigned long long)held);
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  tks_log(TKS_LOG_WARN, "%s", msg);
}

/* ---- stats --------------------------------------------------------------- */

static const struct tks_stat ST_TICKS_REJECTED_BY_REASON = TKS_STAT_NAMED(
    "ticks.rejected_by_reason.*", COUNTER, NONE, "Messages rejected, by reason",
    "ticks_rejected_by_reason", "reason");
static const struct tks_stat ST_SCHEMA_FIELD_TYPE = TKS_STAT("schema.fields.*.type", GAUGE, NONE,
                                                             NULL);
static const struct tks_stat ST_SCHEMA_FIELD_OFFSET = TKS_STAT("schema.fields.*.offset", GAUGE,
                                                               BYTES, NULL);
static const struct tks_stat ST_SCHEMA_FIELD_SIZE = TKS_STAT("schema.fields.*.size", GAUGE, BYTES,
                                                             NULL);
static const struct tks_stat ST_SCHEMA_FIELD_REQUIRED = TKS_STAT("schema.fields.*.required", GAUGE,
                                                                 NONE, NULL);
static const struct tks_stat ST_UNDECLARED_TICKS = TKS_STAT_NAMED(
    "undeclared.*.ticks", GAUGE, TICKS, "Ticks that carried the undeclared field",
    "undeclared_field_ticks", "field");
static const struct tks_stat ST_UNDECLARED_KEPT = TKS_STAT_NAMED(
    "undeclared.*.kept", GAUGE, TICKS, "Ticks with the field kept (overflow map or dynamic object)",
    "undeclared_field_kept", "field");
static const struct tks_stat ST_UNDECLARED_REJECTED = TKS_STAT_NAMED(
    "undeclared.*.rejected", GAUGE, TICKS, "Ticks rejected for the field (slotted mode)",
    "undeclared_field_rejected", "field");
static const struct tks_stat ST_UNDECLARED_COST_BYTES = TKS_STAT_NAMED(
    "undeclared.*.cost_bytes", GAUGE, BYTES, "Bytes the field costs beyond the slotted records",
    "undeclared_field_cost_bytes", "field");
static const struct tks_stat ST_UNDECLARED_STRING_BYTES = TKS_STAT_NAMED(
    "undeclared.*.string_bytes", GAUGE, BYTES, "Bytes of the field's string values",
    "undeclared_field_string_bytes", "field");
static const struct tks_stat ST_UNDECLARED_TYPES = TKS_STAT("undeclared.*.types", GAUGE, NONE,
                                                            NULL);
static const struct tks_stat ST_UNDECLARED_OVERFLOW = TKS_STAT(
    "undeclared_overflow", COUNTER, NONE,
    "Ticks whose undeclared field names did not fit the usage table");
static const struct tks_stat ST_STATE = TKS_STAT_NAMED(
    "state", GAUGE, NONE, "loading (the store is being rebuilt at start) or ready", "state",
    "state");
static const struct tks_stat ST_VERSION = TKS_STAT_NAMED(
    "version", GAUGE, NONE, "tickslabd version", "build_info", "version");
static const struct tks_stat ST_PID = TKS_STAT("pid", GAUGE, NONE, NULL);
static const struct tks_stat ST_UPTIME_SECONDS = TKS_STAT("uptime_seconds", GAUGE, SECONDS,
                                                          "Seconds since the daemon started");
static const struct tks_stat ST_CONFIG_PATH = TKS_STAT("config.path", GAUGE, NONE, NULL);
static const struct tks_stat ST_STORE_MODE = TKS_STAT_NAMED("store.mode", GAUGE, NONE, "Store mode",
                                                            "store_mode", "mode");
static const struct tks_stat ST_SCHEMA_NAME = TKS_STAT("schema.name", GAUGE, NONE, NULL);
static const struct tks_stat ST_SCHEMA_RECORD_SIZE = TKS_STAT("schema.record_size", GAUGE, BYTES,
                                                              "Bytes of one slotted record");
static const struct tks_stat ST_SCHEMA_FIELD_COUNT = TKS_STAT("schema.field_count", GAUGE, NONE,
                                                              NULL);
static const struct tks_stat ST_INGEST_LISTEN = TKS_STAT("ingest.listen", GAUGE, NONE, NULL);
static const struct tks_stat ST_INGEST_PORT = TKS_STAT("ingest.port", GAUGE, NONE, NULL);
static const struct tks_stat ST_INGEST_BYTES_RECEIVED = TKS_STAT_NAMED(
    "ingest.bytes_received", COUNTER, BYTES, "Bytes read from ingest connections",
    "ingest_received_bytes", NULL);
static const struct tks_stat ST_INGEST_RATE_1S = TKS_STAT(
    "ingest.rate_1s", GAUGE, TICKS_PER_SECOND, "Ticks accepted in the last whole second");
static const struct tks_stat ST_INGEST_RATE_10S = TKS_STAT(
    "ingest.rate_10s", GAUGE, TICKS_PER_SECOND,
    "Ticks accepted per second over the last ten seconds");
static const struct tks_stat ST_INGEST_HELD = TKS_STAT(
    "ingest.held", GAUGE, NONE, "1 while ingest is held back (memory limit or journal)");
static const struct tks_stat ST_INGEST_HTTP_REQUESTS = TKS_STAT(
    "ingest.http_requests", COUNTER, NONE,
    "Ingest connections that began with an HTTP request (closed, not counted as rejected ticks)");
static const struct tks_stat ST_INGEST_HOLDS = TKS_STAT("ingest.holds", COUNTER, NONE,
                                                        "Times ingest was held back");
static const struct tks_stat ST_TICKS_ACCEPTED = TKS_STAT("ticks.accepted", COUNTER, TICKS,
                                                          "Ticks accepted into the store");
static const struct tks_stat ST_TICKS_STORED = TKS_STAT("ticks.stored", GAUGE, TICKS,
                                                        "Ticks held in the store now");
static const struct tks_stat ST_TICKS_REJECTED = TKS_STAT("ticks.rejected", COUNTER, NONE,
                                                          "Messages rejected, for any reason");
static const struct tks_stat ST_TICKS_DURABLE = TKS_STAT(
    "ticks.durable", COUNTER, TICKS,
    "Ticks fsynced to the journal (replayed at start, and accepted since)");
static const struct tks_stat ST_TICKS_LATE = TKS_STAT(
    "ticks.late", COUNTER, TICKS,
    "Ticks older than the newest tick of their symbol, inserted in place");
static const struct tks_stat ST_CONNECTIONS_CURRENT = TKS_STAT("connections.current", GAUGE, NONE,
                                                               "Open ingest connections");
static const struct tks_stat ST_CONNECTIONS_TOTAL = TKS_STAT("connections.total", COUNTER, NONE,
                                                             "Ingest connections accepted");
static const struct tks_stat ST_CONNECTIONS_CLOSED_ON_ERROR = TKS_STAT(
    "connections.closed_on_error", COUNTER, NONE, "Ingest connections closed for a protocol error");
static const struct tks_stat ST_CONNECTIONS_REFUSED = TKS_STAT(
    "connections.refused", COUNTER, NONE, "Ingest connections closed at once (max_connections)");
static const struct tks_stat ST_CONNECTIONS_REFUSED_PER_IP = TKS_STAT(
    "connections.refused_per_ip", COUNTER, NONE,
    "Ingest connections closed at once (max_connections_per_ip from their address)");
static const struct tks_stat ST_CONNECTIONS_CLOSED_FOR_NEW = TKS_STAT(
    "connections.closed_for_new", COUNTER, NONE,
    "Slow or idle ingest connections closed to let a new one in (max_connections)");
static const struct tks_stat ST_CONNECTIONS_CLOSED_TIMEOUT = TKS_STAT(
    "connections.closed_timeout", COUNTER, NONE,
    "Ingest connections closed holding an unfinished message (message_timeout)");
static const struct tks_stat ST_CONNECTIONS_CLOSED_SLOW = TKS_STAT(
    "connections.closed_slow", COUNTER, NONE,
    "Ingest connections closed sending an unfinished message too slowly (min_rate)");
static const struct tks_stat ST_MEMORY_HUGE_BYTES = TKS_STAT(
    "memory.huge_page_bytes", GAUGE, BYTES,
    "Bytes of the process backed by transparent huge pages (store.huge_pages)");
static const struct tks_stat ST_STORE_HUGE_PAGES = TKS_STAT_NAMED(
    "store.huge_pages", GAUGE, NONE, "Transparent huge pages for the store: auto, on or off",
    "store_huge_pages", "setting");
static const struct tks_stat ST_MEMORY_RSS_BYTES = TKS_STAT(
    "memory.rss_bytes", GAUGE, BYTES, "Resident set size of the process (from /proc)");
static const struct tks_stat ST_MEMORY_SLAB_BYTES = TKS_STAT("memory.slab_bytes", GAUGE, BYTES,
                                                             "Bytes of slab pages");
static const struct tks_stat ST_MEMORY_SLAB_USED_BYTES = TKS_STAT(
    "memory.slab_used_bytes", GAUGE, BYTES, "Bytes of slab chunks in use");
static const struct tks_stat ST_MEMORY_SLAB_UNTOUCHED_BYTES = TKS_STAT(
    "memory.slab_untouched_bytes", GAUGE, BYTES,
    "Bytes of slab pages no chunk was cut from yet, not resident (not in memory.total_bytes)");
static const struct tks_stat ST_MEMORY_SYMBOL_BYTES = TKS_STAT(
    "memory.symbol_bytes", GAUGE, BYTES, "Bytes of the symbol, string and field-name tables");
static const struct tks_stat ST_MEMORY_INDEX_BYTES = TKS_STAT("memory.index_bytes", GAUGE, BYTES,
                                                              "Bytes of the per-symbol index");
static const struct tks_stat ST_MEMORY_JOURNAL_BUFFER_BYTES = TKS_STAT(
    "memory.journal_buffer_bytes", GAUGE, BYTES,
    "Bytes of the journal's buffers: the batch, the queue, the writer's and the journal's");
static const struct tks_stat ST_MEMORY_READ_BUFFER_BYTES = TKS_STAT(
    "memory.read_buffer_bytes", GAUGE, BYTES, "Bytes of the ingest connections' read buffers");
static const struct tks_stat ST_MEMORY_QUERY_BUFFER_BYTES = TKS_STAT(
    "memory.query_buffer_bytes", GAUGE, BYTES,
    "Bytes of control connections' buffers: requests read, answers not yet written");
static const struct tks_stat ST_MEMORY_SUBSCRIBER_BUFFER_BYTES = TKS_STAT(
    "memory.subscriber_buffer_bytes", GAUGE, BYTES,
    "Bytes of subscribers' queues and requests, and the live tick being fanned out");
static const struct tks_stat ST_MEMORY_TOTAL_BYTES = TKS_STAT(
    "memory.total_bytes", GAUGE, BYTES,
    "Bytes the daemon holds: slab pages as far as touched, symbol tables, index and buffers");
static const struct tks_stat ST_MEMORY_TOTAL_BYTES_PER_TICK = TKS_STAT(
    "memory.total_bytes_per_tick", GAUGE, BYTES_PER_TICK,
    "memory.total_bytes divided by ticks.stored");
/* The old name of memory.total_bytes_per_tick, kept for scripts (JSON and
 * text only: no help, so no second Prometheus family). */
static const struct tks_stat ST_MEMORY_BYTES_PER_TICK = TKS_STAT("memory.bytes_per_tick", GAUGE,
                                                                 BYTES_PER_TICK, NULL);
static const struct tks_stat ST_SYMBOLS_COUNT = TKS_STAT_NAMED(
    "symbols.count", GAUGE, NONE, "Distinct symbols interned", "symbols", NULL);
static const struct tks_stat ST_SYMBOLS_BYTES = TKS_STAT("symbols.bytes", GAUGE, BYTES,
                                                         "Bytes of the symbol table");
static const struct tks_stat ST_STRINGS_COUNT = TKS_STAT_NAMED(
    "strings.count", GAUGE, NONE, "Distinct values of string fields interned", "strings", NULL);
static const struct tks_stat ST_STRINGS_BYTES = TKS_STAT("strings.bytes", GAUGE, BYTES,
                                                         "Bytes of the string table");
static const struct tks_stat ST_FIELDS_NAMES_COUNT = TKS_STAT_NAMED(
    "fields.names.count", GAUGE, NONE, "Distinct field names of dynamic ticks", "field_names",
    NULL);
static const struct tks_stat ST_FIELDS_NAMES_BYTES = TKS_STAT("fields.names.bytes", GAUGE, BYTES,
                                                              "Bytes of the field-name table");

/* "undeclared.<name>.*": the fields ticks carried that the schema does not
 * declare (names are cut to what a stats path can carry). */
static void usage_stats(const struct tks_usage *u, struct tks_stats *st) {
  tks_stat_u64(st, &ST_UNDECLARED_OVERFLOW, u->overflow);
  for (unsigned i = 0; i < u->count; i++) {
    const struct tks_usage_field *f = &u->fields[i];
    /* The name as sent (valid UTF-8, no control characters: the decoder
     * saw to it); lib/stats.c makes it safe for each format. */
    const char *name = f->name;
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

void tks_server_unintern(struct tks_server *srv, struct tks_intern_mark m) {
  tks_symtab_truncate(srv->symbols, m.symbols);
  tks_symtab_truncate(srv->strings, m.strings);
  tks_symtab_truncate(srv->names, m.names);
}

/* memory.total_bytes: slab pages (but their never-touched ends, as a
 * buffer counts what was written into it), symbol tables, index and the
 * buffers. */
static uint64_t symbol_bytes(const struct tks_server *srv) {
  return tks_symtab_bytes(srv->symbols) + tks_symtab_bytes(srv->strings) +
         tks_symtab_bytes(srv->names);
}

static uint64_t journal_buffer_bytes(struct tks_server *srv) {
  return srv->journal_buffers ? srv->journal_buffers(srv) : 0;
}

static uint64_t subscriber_buffer_bytes(struct tks_server *srv) {
  return srv->subscriber_buffers ? srv->subscriber_buffers(srv) : 0;
}

static uint64_t total_bytes(struct tks_server *srv, uint64_t journal) {
  return tks_slab_bytes_allocated(srv->slab) - tks_slab_bytes_untouched(srv->slab) +
         symbol_bytes(srv) + tks_store_index_bytes(srv->store) + journal + srv->read_buffer_bytes +
         srv->query_buffer_bytes + subscriber_buffer_bytes(srv);
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
      .memory_bytes = total_bytes(srv, journal_buffer_bytes(srv)),
      .connections = srv->conns_current,
  };
}

/* What `stats` begins with, loading or not. */
static void head_stats(struct tks_server *srv, struct tks_stats *st) {
  tks_stat_str(st, &ST_STATE, srv->loading ? "loading" : "ready");
  tks_stat_str(st, &ST_VERSION, TKS_VERSION);
  tks_stat_u64(st, &ST_PID, (uint64_t)getpid());
  tks_stat_u64(st, &ST_UPTIME_SECONDS, (tks_mono_ns() - srv->start_mono_ns) / 1000000000u);
  tks_stat_str(st, &ST_CONFIG_PATH, srv->cfg.path[0] ? srv->cfg.path : "(defaults)");
}

void tks_server_stats_loading(struct tks_server *srv, struct tks_stats *st) {
  head_stats(srv, st);
  tks_stat_str(st, &ST_INGEST_LISTEN, srv->listen_addr);
  tks_stat_u64(st, &ST_INGEST_PORT, srv->port);
}

void tks_server_stats(struct tks_server *srv, struct tks_stats *st, bool slabs_only) {
  if (slabs_only) {
    tks_slab_stats(srv->slab, st);
    return;
  }
  const struct tks_schema *sc = &srv->cfg.schema;
  head_stats(srv, st);

  tks_stat_str(st, &ST_STORE_MODE, tks_mode_name(srv->cfg.store.mode));
  tks_stat_str(st, &ST_STORE_HUGE_PAGES,
               tks_huge_pages_names[srv->cfg.store.huge_pages < TKS_HUGE_PAGES_COUNT
                                        ? srv->cfg.store.huge_pages
                                        : 0]);
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
  tks_stat_f64(st, &ST_INGEST_RATE_10S,
               (double)(srv->rate_ring[p % TKS_RATE_WINDOW] - ten_ago) / 10.0);
  tks_stat_u64(st, &ST_INGEST_HELD, srv->held != 0);
  tks_stat_u64(st, &ST_INGEST_HOLDS, srv->holds);
  tks_stat_u64(st, &ST_INGEST_HTTP_REQUESTS, srv->http_on_ingest);

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
  tks_stat_u64(st, &ST_CONNECTIONS_REFUSED_PER_IP, srv->conns_refused_per_ip);
  tks_stat_u64(st, &ST_CONNECTIONS_CLOSED_FOR_NEW, srv->conns_closed_for_new);
  tks_stat_u64(st, &ST_CONNECTIONS_CLOSED_TIMEOUT, srv->conns_closed_timeout);
  tks_stat_u64(st, &ST_CONNECTIONS_CLOSED_SLOW, srv->conns_closed_slow);

  uint64_t slab = tks_slab_bytes_allocated(srv->slab);
  uint64_t journal = journal_buffer_bytes(srv);
  uint64_t total = total_bytes(srv, journal);
  uint64_t ticks = tks_store_ticks(srv->store);
  tks_stat_u64(st, &ST_MEMORY_RSS_BYTES, tks_rss_bytes());
  tks_stat_u64(st, &ST_MEMORY_HUGE_BYTES, tks_anon_huge_bytes());
  tks_stat_u64(st, &ST_MEMORY_SLAB_BYTES, slab);
  tks_stat_u64(st, &ST_MEMORY_SLAB_USED_BYTES, tks_slab_bytes_used(srv->slab));
  tks_stat_u64(st, &ST_MEMORY_SLAB_UNTOUCHED_BYTES, tks_slab_bytes_untouched(srv->slab));
  tks_stat_u64(st, &ST_MEMORY_SYMBOL_BYTES, symbol_bytes(srv));
  tks_stat_u64(st, &ST_MEMORY_INDEX_BYTES, tks_store_index_bytes(srv->store));
  tks_stat_u64(st, &ST_MEMORY_JOURNAL_BUFFER_BYTES, journal);
  tks_stat_u64(st, &ST_MEMORY_READ_BUFFER_BYTES, srv->read_buffer_bytes);
  tks_stat_u64(st, &ST_MEMORY_QUERY_BUFFER_BYTES, srv->query_buffer_bytes);
  tks_stat_u64(st, &ST_MEMORY_SUBSCRIBER_BUFFER_BYTES, subscriber_buffer_bytes(srv));
  tks_stat_u64(st, &ST_MEMORY_TOTAL_BYTES, total);
  tks_stat_f64(st, &ST_MEMORY_TOTAL_BYTES_PER_TICK, ticks ? (double)total / (double)ticks : 0.0);
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

/* ---- TCP listeners and peers (ingest.c, subscribe.c) ---- */

/* The peer as text ("1.2.3.4:5678") and its address as 16 bytes (all
 * zeros when unknown). */
void tks_tcp_peer(uv_tcp_t *tcp, char *out, size_t outlen, uint8_t ip[16]) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  snprintf(out, outlen, "?");
  memset(ip, 0, 16);
  if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0) return;
  char host[64];
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    uv_ip4_name(in, host, sizeof host);
    snprintf(out, outlen, "%s:%u", host, ntohs(in->sin_port));
    ip[10] = ip[11] = 0xff;
    memcpy(ip + 12, &in->sin_addr, 4);
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    uv_ip6_name(in6, host, sizeof host);
    snprintf(out, outlen, "[%s]:%u", host, ntohs(in6->sin6_port));
    memcpy(ip, &in6->sin6_addr, 16);
  }
}

/* A listening TCP socket on ss, made as libuv's uv_tcp_bind + uv_listen
 * make one (SO_REUSEADDR; IPv6 sockets take IPv4 too), but without
 * watching it.  Returns the fd
 * or -errno. */
static int listen_socket(const struct sockaddr_storage *ss) {
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  int on = 1, off = 0;
  socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                            : sizeof(struct sockaddr_in);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
      (ss->ss_family == AF_INET6 &&
       setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) < 0) ||
      bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, SOMAXCONN) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

int tks_tcp_listen(uv_loop_t *loop, const char *key, const char *as_written, const char *host,
                   uint16_t port, uv_tcp_t *h, bool *open, char *addr, size_t addrlen,
                   uint16_t *bound) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  int r = strchr(host, ':') ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss)
                            : uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
  if (r) {
    tks_log(TKS_LOG_ERROR, "%s %s: %s", key, as_written, uv_strerror(r));
    return r;
  }
  int fd = listen_socket(&ss);
  if (fd < 0) {
    tks_log(TKS_LOG_ERROR, "cannot listen on %s: %s (%s)", as_written, strerror(-fd), key);
    return fd;
  }
  uv_tcp_init(loop, h);
  *open = true;
  r = uv_tcp_open(h, fd);
  if (r) {
    close(fd); /* not the handle's: uv_close leaves it alone */
    tks_log(TKS_LOG_ERROR, "cannot listen on %s: %s (%s)", as_written, uv_strerror(r), key);
    return r;
  }
  int len = sizeof ss;
  uv_tcp_getsockname(h, (struct sockaddr *)&ss, &len);
  char name[64];
  if (ss.ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6 *)&ss, name, sizeof name);
    *bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    snprintf(addr, addrlen, "[%s]:%u", name, *bound);
  } else {
    uv_ip4_name((struct sockaddr_in *)&ss, name, sizeof name);
    *bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    snprintf(addr, addrlen, "%s:%u", name, *bound);
  }
  return 0;
}

/*
 * tickslabd: reads the config, builds the store (slab allocator, symbol
 * tables, schema), opens the ingest listener and the control socket, tells
 * systemd it is ready and runs the libuv loop until SIGTERM or SIGINT.
 * Exit codes: 0 clean stop, 1 runtime failure, 2 bad usage or config.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"

static const char usage[] =
    "Usage: tickslabd [--config FILE] [--check-config]\n"
    "\n"
    "The tickslab tick-data ingestion daemon: takes msgpack ticks over TCP, keeps\n"
    "them in slab-allocated fixed-layout records, and answers stats and queries on\n"
    "a Unix control socket.  It runs in the foreground and logs to stderr.\n"
    "\n"
    "  -c, --config FILE   read FILE (default " TKS_DEFAULT_CONFIG_PATH
    " if it exists,\n"
    "                      else the built-in defaults)\n"
    "      --check-config  check the config, print what is wrong, and exit\n"
    "                      (0 valid, 2 invalid)\n"
    "  -h, --help          show this help and exit\n"
    "  -V, --version       show the version and exit\n"
    "\n"
    "At start it replays the journal (journal.dir) into the store before it\n"
    "listens.  Signals: SIGTERM and SIGINT stop it cleanly (what was read is\n"
    "journaled and fsynced first); SIGHUP reloads the config's live keys\n"
    "(log.level, journal.fsync*, journal.on_error, limits.*, ingest.idle_timeout,\n"
    "ingest.max_connections, query.max_rows) and logs the others as refused.\n"
    "With $NOTIFY_SOCKET set it speaks sd_notify (READY=1, RELOADING=1, STOPPING=1,\n"
    "STATUS=, and WATCHDOG=1 when $WATCHDOG_USEC is set).\n";

/* "undeclared.<name>.*": the fields ticks carried that the schema does not
 * declare (names are cut to what a stats path can carry). */
static void usage_stats(const struct tks_usage *u, struct tks_stats *st) {
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
    char types[TKS_USAGE_TYPES_TEXT_MAX];
    snprintf(path, sizeof path, "undeclared.%s.types", name);
    tks_stats_str(st, path, tks_usage_types_text(f->types, types, sizeof types), NULL, NULL, NULL);
  }
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
  uint64_t acc = srv->ticks_accepted;
  unsigned p = srv->rate_pos;
  uint64_t one_ago = srv->rate_ring[(p + RATE_WINDOW - 1) % RATE_WINDOW];
  uint64_t ten_ago = srv->rate_ring[(p + RATE_WINDOW - 10) % RATE_WINDOW];
  tks_stats_u64(st, "ingest.rate_1s", srv->rate_ring[p % RATE_WINDOW] - one_ago, TKS_STAT_GAUGE,
                "Ticks accepted in the last whole second", NULL, NULL);
  tks_stats_f64(st, "ingest.rate_10s", (double)(srv->rate_ring[p % RATE_WINDOW] - ten_ago) / 10.0,
                TKS_STAT_GAUGE, "Ticks accepted per second over the last ten seconds", NULL, NULL);
  tks_stats_u64(st, "ingest.held", srv->ingest_held != 0, TKS_STAT_GAUGE,
                "1 while ingest is held back (memory limit or journal)", NULL, NULL);
  tks_stats_u64(st, "ingest.holds", srv->ingest_holds, TKS_STAT_COUNTER,
                "Times ingest was held back", NULL, NULL);

  uint64_t rejected = 0;
  for (unsigned r = 0; r < TKS_REASON__COUNT; r++) rejected += srv->rejected[r];
  tks_stats_u64(st, "ticks.accepted", acc, TKS_STAT_COUNTER, "Ticks accepted into the store", NULL, NULL);
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
  tks_stats_u64(st, "ticks.durable", tks_durability_durable(srv), TKS_STAT_GAUGE,
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
  uint64_t sym = tks_symtab_bytes(srv->symbols) + tks_symtab_bytes(srv->strings) +
                 tks_symtab_bytes(srv->names);
  uint64_t idx = tks_store_index_bytes(srv->store);
  uint64_t total = slab + sym + idx;
  uint64_t ticks = tks_store_ticks(srv->store);
  tks_stats_u64(st, "memory.rss_bytes", tks_rss_bytes(), TKS_STAT_GAUGE,
                "Resident set size of the process (from /proc)", NULL, NULL);
  tks_stats_u64(st, "memory.slab_bytes", slab, TKS_STAT_GAUGE, "Bytes of slab pages", NULL, NULL);
  tks_stats_u64(st, "memory.slab_used_bytes", tks_slab_bytes_used(srv->slab), TKS_STAT_GAUGE,
                "Bytes of slab chunks in use", NULL, NULL);
  tks_stats_u64(st, "memory.symbol_bytes", sym, TKS_STAT_GAUGE,
                "Bytes of the symbol, string and field-name tables", NULL, NULL);
  tks_stats_u64(st, "memory.index_bytes", idx, TKS_STAT_GAUGE, "Bytes of the per-symbol index", NULL,
                NULL);
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
  tks_durability_stats(srv, st);
  tks_limits_stats(srv, st);
  tks_lifecycle_stats(srv, st);
  tks_slab_stats(srv->slab, st);
}

static void on_tick_timer(uv_timer_t *t) {
  struct tks_server *srv = t->data;
  srv->rate_pos++;
  srv->rate_ring[srv->rate_pos % RATE_WINDOW] = srv->ticks_accepted;
}

static void shutdown_server(struct tks_server *srv, const char *why) {
  if (srv->stopping) return;
  srv->stopping = true;
  tks_log(TKS_LOG_INFO, "%s: stopping", why);
  tks_notify("STOPPING=1");
  tks_lifecycle_stop(srv);
  tks_ingest_stop(srv);
  tks_durability_stop(srv); /* after the drain: what was read is journaled */
  tks_limits_stop(srv);
  tks_control_stop(srv);
  uv_timer_stop(&srv->tick_timer);
  uv_close((uv_handle_t *)&srv->tick_timer, NULL);
  uv_close((uv_handle_t *)&srv->sig_term, NULL);
  uv_close((uv_handle_t *)&srv->sig_int, NULL);
  uv_close((uv_handle_t *)&srv->sig_hup, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct tks_server *srv = h->data;
  if (signum == SIGHUP) {
    tks_lifecycle_reload(srv);
    return;
  }
  shutdown_server(srv, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static int build_store(struct tks_server *srv) {
  const struct tks_config *cfg = &srv->cfg;
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
  return 0;
}

static void destroy_store(struct tks_server *srv) {
  tks_store_destroy(srv->store);
  tks_symtab_destroy(srv->symbols);
  tks_symtab_destroy(srv->strings);
  tks_symtab_destroy(srv->names);
  tks_slab_destroy(srv->slab);
}

static int run(struct tks_server *srv) {
  uv_loop_t *loop = srv->loop;
  conn_list_init(&srv->ingest_conns);
  conn_list_init(&srv->control_conns);
  srv->start_mono_ns = tks_mono_ns();
  int r = build_store(srv);
  if (r) {
    tks_log(TKS_LOG_ERROR, "cannot set up the store: %s", strerror(-r));
    destroy_store(srv);
    return 1;
  }
  uv_signal_init(loop, &srv->sig_term);
  uv_signal_init(loop, &srv->sig_int);
  uv_signal_init(loop, &srv->sig_hup);
  srv->sig_term.data = srv->sig_int.data = srv->sig_hup.data = srv;
  uv_signal_start(&srv->sig_term, on_signal, SIGTERM);
  uv_signal_start(&srv->sig_int, on_signal, SIGINT);
  uv_signal_start(&srv->sig_hup, on_signal, SIGHUP);
  uv_timer_init(loop, &srv->tick_timer);
  srv->tick_timer.data = srv;
  uv_timer_start(&srv->tick_timer, on_tick_timer, 1000, 1000);

  int status = 0;
  /* The journal is replayed before anything listens: nothing is accepted,
   * and no one is told the daemon is ready, before the store is whole. */
  if (tks_limits_start(srv) != 0 || tks_durability_start(srv) != 0) {
    tks_log(TKS_LOG_ERROR, "cannot start: the journal could not be replayed or opened");
    uv_close((uv_handle_t *)&srv->tick_timer, NULL);
    uv_close((uv_handle_t *)&srv->sig_term, NULL);
    uv_close((uv_handle_t *)&srv->sig_int, NULL);
    uv_close((uv_handle_t *)&srv->sig_hup, NULL);
    tks_limits_stop(srv);
    uv_run(loop, UV_RUN_DEFAULT);
    destroy_store(srv);
    return 1;
  }
  if (tks_ingest_start(srv) != 0 || tks_control_start(srv) != 0) {
    status = 1;
    shutdown_server(srv, "start failed");
  } else {
    tks_log(TKS_LOG_INFO, "ready: mode %s, schema %s (%u bytes a record), slab pages of %llu bytes",
            tks_mode_name(srv->cfg.store.mode), srv->cfg.schema.name, srv->cfg.schema.record_size,
            (unsigned long long)srv->cfg.store.page_size);
    tks_lifecycle_start(srv); /* READY=1, STATUS=, watchdog, idle clients */
  }
  uv_run(loop, UV_RUN_DEFAULT);
  if (status == 0)
    tks_log(TKS_LOG_INFO, "stopped: %llu ticks accepted, %llu held",
            (unsigned long long)srv->ticks_accepted, (unsigned long long)tks_store_ticks(srv->store));
  destroy_store(srv);
  return status;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'C'},
      {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0},
  };
  const char *config_path = NULL;
  bool check_only = false;
  int o;
  while ((o = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
    switch (o) {
    case 'c': config_path = optarg; break;
    case 'C': check_only = true; break;
    case 'h': fputs(usage, stdout); return 0;
    case 'V': printf("tickslabd %s\n", TKS_VERSION); return 0;
    default: fputs("Try 'tickslabd --help'.\n", stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "tickslabd: unexpected argument '%s'\nTry 'tickslabd --help'.\n", argv[optind]);
    return 2;
  }

  static struct tks_server srv; /* large; zeroed */
  tks_config_defaults(&srv.cfg);
  if (!config_path && access(TKS_DEFAULT_CONFIG_PATH, F_OK) == 0) config_path = TKS_DEFAULT_CONFIG_PATH;
  if (config_path) {
    char err[TKS_CONFIG_ERR_MAX];
    if (tks_config_load(&srv.cfg, config_path, err, sizeof err) != 0) {
      fprintf(stderr, "%s\n", err);
      return 2;
    }
  }
  if (check_only) {
    printf("%s: ok\n", config_path ? config_path : "(built-in defaults)");
    return 0;
  }
  tks_log_set_level(srv.cfg.log.level);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN); /* a file-size limit fails the journal write (EFBIG), not the daemon */
  tks_log(TKS_LOG_INFO, "tickslabd %s starting with %s", TKS_VERSION,
          config_path ? config_path : "the built-in defaults");
  srv.loop = uv_default_loop();
  int status = run(&srv);
  uv_loop_close(srv.loop);
  return status;
}

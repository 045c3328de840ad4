/*
 * tickslabd: parses the options, reads the config, and wires the modules
 * together: the server (store and tables), limits, the ingest and control
 * sockets (bound first, so that a port in use fails the start at once),
 * the lifecycle, then the loading phase (the newest checkpoint loaded and
 * the journal after it replayed, in slices of
 * the event loop while the control socket answers); once loaded, ingest is
 * served and systemd told READY=1.  Stopped in reverse on SIGTERM or
 * SIGINT, loading or not.
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
#ifdef TKS_HAVE_KAFKA
#include "kafka.h"
#endif

static const char usage[] =
    "Usage: tickslabd [--config FILE] [--check-config]\n"
    "\n"
    "The tickslab tick-data ingestion daemon: takes msgpack ticks over TCP, keeps\n"
    "them in slab-allocated fixed-layout records, and answers stats and queries on\n"
    "a Unix control socket.  It runs in the foreground and logs to stderr: lines\n"
    "start with an sd-daemon priority (<3> error .. <7> debug) where stderr is\n"
    "the journal ($JOURNAL_STREAM), else with the UTC time, name and pid.\n"
    "\n"
    "  -c, --config FILE   read FILE (default " TKS_DEFAULT_CONFIG_PATH " if it exists,\n"
    "                      else the built-in defaults)\n"
    "      --check-config  parse and check the config, print what is wrong\n"
    "                      (file:line:column), and exit (0 valid, 2 invalid);\n"
    "                      nothing is opened, bound or written (the unit's\n"
    "                      ExecStartPre= and ExecReload= run it); the kafka\n"
    "                      properties are checked by librdkafka, no broker asked\n"
    "  -h, --help          show this help and exit\n"
    "  -V, --version       show the version and exit\n"
    "\n"
    "At start it locks journal.dir (a second daemon on the same directory exits\n"
    "1, naming the pid that holds it), binds its sockets, then loads the newest\n"
    "checkpoint in journal.dir and replays the journal after it into the store;\n"
    "meanwhile ping and stats answer with \"state\":\"loading\" and the\n"
    "progress, other requests get a loading error, and ingest connections wait\n"
    "unread until the store is loaded.  It writes checkpoints\n"
    "(journal.checkpoint_interval, journal.checkpoint_bytes, the control request\n"
    "`checkpoint`, a clean stop) and deletes the journal they cover.  At\n"
    "archive.roll_at and on `rollover` it seals the ticks of past UTC days into\n"
    "archive.dir (locked too) and takes them out of memory; queries read memory\n"
    "and the archive as one.  Signals:\n"
    "SIGTERM and SIGINT stop it cleanly, also while loading (what was read is\n"
    "journaled and fsynced, and a last checkpoint written); SIGHUP reloads the\n"
    "config's live keys\n";
/* print_usage() puts the live keys, from the config's key table, between the two. */
static const char usage_end[] =
    "With $NOTIFY_SOCKET set it speaks sd_notify (READY=1 once loaded, RELOADING=1,\n"
    "STOPPING=1, STATUS=, while loading STATUS=loading: and EXTEND_TIMEOUT_USEC=\n"
    "as long as loading makes progress, and WATCHDOG=1 when $WATCHDOG_USEC is set).\n";

/* Writes text to f in lines of at most width columns, broken at spaces. */
static void put_wrapped(FILE *f, const char *text, size_t width) {
  size_t col = 0;
  while (*text) {
    size_t w = strcspn(text, " ");
    if (col && col + 1 + w > width) {
      fputc('\n', f);
      col = 0;
    } else if (col) {
      fputc(' ', f);
      col++;
    }
    fwrite(text, 1, w, f);
    col += w;
    text += w;
    while (*text == ' ') text++;
  }
  fputc('\n', f);
}

/* The usage, with the keys a reload applies listed from the key table. */
static void print_usage(FILE *f) {
  size_t n;
  const struct tks_config_key *keys = tks_config_keys(&n);
  struct tks_buf live;
  tks_buf_init(&live);
  for (size_t i = 0; i < n; i++)
    if (keys[i].reload != TKS_RELOAD_FIXED)
      tks_buf_printf(&live, "%s%s", live.len ? ", " : "(", keys[i].name);
  tks_buf_puts(&live, ") and logs the others as refused.");
  fputs(usage, f);
  if (live.data) put_wrapped(f, live.data, 79);
  fputs(usage_end, f);
  tks_buf_finish(&live);
}

/* The signal handles and the exit status: main.c's own. */
static uv_signal_t sig_term, sig_int, sig_hup;
static int exit_status;

static void close_signals(void) {
  uv_close((uv_handle_t *)&sig_term, NULL);
  uv_close((uv_handle_t *)&sig_int, NULL);
  uv_close((uv_handle_t *)&sig_hup, NULL);
}

static void shutdown_server(struct tks_server *srv, const char *why) {
  if (srv->stopping) return;
  srv->stopping = true;
  /* "start failed: stopping" is an error, a signal's stop is not. */
  tks_log(exit_status ? TKS_LOG_ERROR : TKS_LOG_INFO, "%s: stopping", why);
  tks_notify("STOPPING=1");
  tks_lifecycle_stop(srv);
  tks_load_stop(srv);
  tks_ingest_stop(srv);
  tks_kafka_source_stop(srv); /* its last ticks journaled, its offsets committed */
  tks_subscribe_stop(srv);  /* after ingest's drain: no tick comes any more */
  tks_archiver_stop(srv);   /* a seal in progress ends before the last checkpoint */
  tks_checkpoint_stop(srv); /* the last one: ingest has stopped, the journal is open */
  tks_durability_stop(srv); /* after the drain: what was read is journaled */
  tks_kafka_sink_stop(srv); /* after the journal's last write: what is left, for a few seconds */
  tks_limits_stop(srv);
  tks_metrics_stop(srv);
  tks_control_stop(srv);
  tks_server_stop(srv);
  close_signals();
}

static void on_signal(uv_signal_t *h, int signum) {
  struct tks_server *srv = h->data;
  if (signum == SIGHUP) {
    tks_lifecycle_reload(srv);
    return;
  }
  shutdown_server(srv, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* Who hears of whom: the modules' callbacks and stats sections, in the
 * order `stats` shows them after the server's own figures. */
static void wire(struct tks_server *srv) {
  tks_server_on_hold(srv, tks_ingest_on_hold);
  tks_server_set_durable(srv, tks_durability_durable);
  tks_server_set_journal_buffers(srv, tks_durability_buffer_bytes);
  tks_server_set_subscriber_buffers(srv, tks_subscribe_buffer_bytes);
  tks_server_on_evict(srv, tks_durability_on_evict);
  tks_server_on_evict(srv, tks_archiver_on_evict);
  tks_server_on_pressure(srv, tks_archiver_on_pressure);
  tks_server_on_retain(srv, tks_archiver_on_retain);
  tks_server_add_stats(srv, tks_ingest_stats);
  tks_server_add_stats(srv, tks_durability_stats);
  tks_server_add_stats(srv, tks_checkpoint_stats);
  tks_server_add_stats(srv, tks_archiver_stats);
  tks_server_add_stats(srv, tks_limits_stats);
  tks_server_add_stats(srv, tks_subscribe_stats);
  tks_server_add_stats(srv, tks_kafka_source_stats);
  tks_server_add_stats(srv, tks_kafka_sink_stats);
  tks_server_add_stats(srv, tks_lifecycle_stats);
  tks_server_add_stats(srv, tks_metrics_stats);
}

/* The loading phase is over: serve ingest and say ready, or stop. */
static void on_loaded(struct tks_server *srv, int status) {
  if (status == 0) tks_limits_loaded(srv);
  if (status == 0 && tks_checkpoint_start(srv) == 0 && tks_archiver_start(srv) == 0 &&
      tks_ingest_serve(srv) == 0 && tks_subscribe_serve(srv) == 0 &&
      tks_kafka_sink_start(srv) == 0 && tks_kafka_source_start(srv) == 0) {
    tks_log(TKS_LOG_INFO, "ready: mode %s, schema %s (%u bytes a record), slab pages of %llu bytes",
            tks_mode_name(srv->cfg.store.mode), srv->cfg.schema.name, srv->cfg.schema.record_size,
            (unsigned long long)srv->cfg.store.page_size);
    tks_lifecycle_ready(srv); /* READY=1, STATUS= */
    return;
  }
  if (status) tks_log(TKS_LOG_ERROR, "cannot start: the journal could not be replayed or opened");
  exit_status = 1;
  shutdown_server(srv, "start failed");
}

static int run(struct tks_server *srv, uv_loop_t *loop) {
  int r = tks_server_init(srv, loop);
  if (r) {
    tks_log(TKS_LOG_ERROR, "cannot set up the store: %s", strerror(-r));
    tks_server_finish(srv);
    return 1;
  }
  wire(srv);
  uv_signal_init(loop, &sig_term);
  uv_signal_init(loop, &sig_int);
  uv_signal_init(loop, &sig_hup);
  sig_term.data = sig_int.data = sig_hup.data = srv;
  uv_signal_start(&sig_term, on_signal, SIGTERM);
  uv_signal_start(&sig_int, on_signal, SIGINT);
  uv_signal_start(&sig_hup, on_signal, SIGHUP);
  tks_server_start(srv);

  /* The sockets first, so that a port or a socket path in use fails the
   * start before a long load.  Nothing is accepted on the ingest port,
   * and no one is told the daemon is ready, before the store is whole;
   * meanwhile the control socket answers ping and stats (control.c). */
  exit_status = 0;
  if (tks_durability_lock(srv) != 0 || tks_archiver_open(srv) != 0 || tks_limits_start(srv) != 0 ||
      tks_ingest_bind(srv) != 0 || tks_subscribe_bind(srv) != 0 || tks_control_start(srv) != 0 ||
      tks_metrics_start(srv) != 0) {
    exit_status = 1;
    shutdown_server(srv, "start failed");
  } else if (tks_load_start(srv, on_loaded) != 0) {
    tks_log(TKS_LOG_ERROR, "cannot start: the journal could not be replayed or opened");
    exit_status = 1;
    shutdown_server(srv, "start failed");
  } else {
    tks_lifecycle_start(srv); /* watchdog, STATUS=loading: */
  }
  uv_run(loop, UV_RUN_DEFAULT);
  if (exit_status == 0)
    tks_log(TKS_LOG_INFO, "stopped: %llu ticks accepted, %llu held",
            (unsigned long long)srv->ticks_accepted,
            (unsigned long long)tks_store_ticks(srv->store));
  tks_archiver_close();
  tks_server_finish(srv);
  return exit_status;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'},
      {"check-config", no_argument, NULL, 'C'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0},
  };
  const char *config_path = NULL;
  bool check_only = false;
  int o;
  while ((o = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
    switch (o) {
    case 'c': config_path = optarg; break;
    case 'C': check_only = true; break;
    case 'h': print_usage(stdout); return 0;
    case 'V':
      printf("tickslabd %s (Kafka: %s)\n", TKS_VERSION,
             tks_kafka_build() ? tks_kafka_build() : "not built in");
      return 0;
    default: fputs("Try 'tickslabd --help'.\n", stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "tickslabd: unexpected argument '%s'\nTry 'tickslabd --help'.\n", argv[optind]);
    return 2;
  }

  static struct tks_server srv; /* large; zeroed */
  tks_config_defaults(&srv.cfg);
  if (!config_path && access(TKS_DEFAULT_CONFIG_PATH, F_OK) == 0)
    config_path = TKS_DEFAULT_CONFIG_PATH;
  if (config_path) {
    char err[TKS_CONFIG_ERR_MAX];
    if (tks_config_load(&srv.cfg, config_path, err, sizeof err) != 0) {
      /* Plain "file:line:column: what" (also for --check-config, which
       * ExecStartPre= and ExecReload= run), at error priority for journald. */
      fprintf(stderr, "%s%s\n", tks_log_is_journal() ? "<3>" : "", err);
      return 2;
    }
  }
  if (check_only) {
#ifdef TKS_HAVE_KAFKA
    char kerr[TKS_CONFIG_ERR_MAX];
    if (tks_kafka_check(&srv.cfg, kerr, sizeof kerr)) {
      fprintf(stderr, "%s%s: %s\n", tks_log_is_journal() ? "<3>" : "",
              config_path ? config_path : "(built-in defaults)", kerr);
      return 2;
    }
#else
    if (srv.cfg.kafka.source.brokers[0] || srv.cfg.kafka.sink.brokers[0]) {
      fprintf(stderr, "%s%s: kafka.*.brokers is set, but this tickslabd was built without Kafka\n",
              tks_log_is_journal() ? "<3>" : "", config_path ? config_path : "(built-in defaults)");
      return 2;
    }
#endif
    printf("%s: ok\n", config_path ? config_path : "(built-in defaults)");
    return 0;
  }
  tks_log_set_level(srv.cfg.log.level);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN); /* a file-size limit fails the journal write (EFBIG), not the daemon */
  tks_log(TKS_LOG_INFO, "tickslabd %s starting with %s", TKS_VERSION,
          config_path ? config_path : "the built-in defaults");
  uv_loop_t *loop = uv_default_loop();
  int status = run(&srv, loop);
  uv_loop_close(loop);
  return status;
}

/*
 * `tickslab top`: a live view of the daemon from `stats text`, asked for
 * once an interval on one control connection.  Rates come from the counters'
 * deltas over the measured interval.  On a terminal it draws a screen with
 * plain ANSI escapes (the alternate screen, cursor hidden, the terminal out
 * of canonical mode to read `q`), restored on q, ^C, SIGTERM or an error;
 * elsewhere (a pipe, a file) it prints one line an interval, with a header
 * line every 20, as `redis-cli --stat` does.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char top_help[] =
    "Usage: tickslab top [--interval SECONDS] [--count N]\n"
    "\n"
    "A live view of the daemon, from its 'stats text' asked for every interval\n"
    "(default 1 s): ingest rate (ticks/s from the counters' deltas), ticks\n"
    "accepted and rejected by reason, connections, memory by part and bytes per\n"
    "stored tick, the journal's state and fsync age, checkpoints, subscribers.\n"
    "\n"
    "On a terminal it redraws one screen (plain ANSI escapes, usable over ssh);\n"
    "q or ^C quits and restores the terminal.  When standard output is not a\n"
    "terminal it prints one line an interval (a header every 20 lines), like\n"
    "redis-cli --stat.\n"
    "\n"
    "  --interval SECONDS  time between refreshes (0.1 to 3600, default 1)\n"
    "  --count N           stop after N refreshes (default: until q or ^C)\n";

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

/* The terminal as it was, restored by term_restore (also from atexit). */
static struct {
  bool raw, screen;
  struct termios saved;
} T;

static void term_restore(void) {
  if (T.screen) {
    /* Cursor shown, main screen back. */
    fputs("\033[?25h\033[?1049l", stdout);
    fflush(stdout);
    T.screen = false;
  }
  if (T.raw) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &T.saved);
    T.raw = false;
  }
}

static void term_enter(void) {
  if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &T.saved) == 0) {
    struct termios t = T.saved;
    t.c_lflag &= (tcflag_t) ~(ICANON | ECHO); /* ISIG kept: ^C is SIGINT */
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0) T.raw = true;
  }
  fputs("\033[?1049h\033[?25l\033[H\033[2J", stdout);
  fflush(stdout);
  T.screen = true;
}

/* The figures of one refresh. */
struct snap {
  uint64_t mono_ns;
  char *text; /* `stats text` */
};

static double val(const struct snap *s, const char *key) {
  double v = 0;
  if (!s || !s->text) return 0;
  cli_stats_value(s->text, key, &v);
  return v;
}

static bool has(const struct snap *s, const char *key) {
  double v;
  return s && s->text && cli_stats_value(s->text, key, &v) != -ENOENT;
}

/* A string value, e.g. journal.state; "-" when absent. */
static const char *str(const struct snap *s, const char *key, char *out, size_t n) {
  size_t kl = strlen(key);
  snprintf(out, n, "-");
  for (const char *line = s->text; line && *line;) {
    const char *nl = strchr(line, '\n');
    size_t ll = nl ? (size_t)(nl - line) : strlen(line);
    if (ll > kl && memcmp(line, key, kl) == 0 && line[kl] == ' ') {
      int vl = (int)(ll - kl - 1);
      snprintf(out, n, "%.*s", vl, line + kl + 1);
      break;
    }
    line = nl ? nl + 1 : NULL;
  }
  return out;
}

/* Per second, from the deltas of key between two refreshes; before the
 * second refresh, fallback (a stat's own rate) or 0. */
static double rate(const struct snap *prev, const struct snap *cur, const char *key,
                   const char *fallback) {
  if (!prev || !prev->text || cur->mono_ns <= prev->mono_ns)
    return fallback ? val(cur, fallback) : 0;
  double d = val(cur, key) - val(prev, key);
  if (d < 0) d = 0; /* a restarted daemon */
  return d * 1e9 / (double)(cur->mono_ns - prev->mono_ns);
}

/* "12.3M", "512K": counts, powers of 1000. */
static const char *count(double v, char *out, size_t n) {
  if (v >= 1e9)
    snprintf(out, n, "%.2fG", v / 1e9);
  else if (v >= 1e6)
    snprintf(out, n, "%.2fM", v / 1e6);
  else if (v >= 1e4)
    snprintf(out, n, "%.1fK", v / 1e3);
  else
    snprintf(out, n, "%.0f", v);
  return out;
}

/* "1.50 GiB": sizes, powers of 1024. */
static const char *size(double v, char *out, size_t n) {
  static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  unsigned k = 0;
  while (v >= 1024 && k + 1 < TKS_ARRAY_SIZE(u)) v /= 1024, k++;
  snprintf(out, n, k ? "%.2f %s" : "%.0f %s", v, u[k]);
  return out;
}

/* The screen, into b: one line each, none longer than cols. */
struct screen {
  struct tks_buf *b;
  unsigned rows, cols, row;
};

static void line(struct screen *sc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(struct screen *sc, const char *fmt, ...) {
  if (sc->row >= sc->rows) return;
  char l[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(l, sizeof l, fmt, ap);
  va_end(ap);
  size_t len = strlen(l);
  if (len > sc->cols) len = sc->cols;
  tks_buf_append(sc->b, l, len);
  tks_buf_puts(sc->b, "\033[K\r\n"); /* the rest of the old line erased */
  sc->row++;
}

static void draw(struct screen *sc, const struct snap *prev, const struct snap *cur,
                 const char *path, double interval) {
  char a[32], b[32], c[32], d[32], e[32], f[32], s1[64], s2[64];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
  line(sc, "tickslabd %s  pid %.0f  %s  up %.0f s  %s UTC  (%s, every %.1f s; q quits)",
       str(cur, "version", s1, sizeof s1), val(cur, "pid"), str(cur, "state", s2, sizeof s2),
       val(cur, "uptime_seconds"), when, path, interval);
  line(sc, "%s", "");
  line(sc, "INGEST   %s ticks/s (%s over 10 s)   %s/s   held %s",
       count(rate(prev, cur, "ticks.accepted", "ingest.rate_1s"), a, sizeof a),
       count(val(cur, "ingest.rate_10s"), b, sizeof b),
       size(rate(prev, cur, "ingest.bytes_received", NULL), c, sizeof c),
       val(cur, "ingest.held") ? "YES" : "no");
  line(sc, "TICKS    accepted %s   stored %s   rejected %s (%s/s)   durable %s   late %s",
       count(val(cur, "ticks.accepted"), a, sizeof a), count(val(cur, "ticks.stored"), b, sizeof b),
       count(val(cur, "ticks.rejected"), c, sizeof c),
       count(rate(prev, cur, "ticks.rejected", NULL), d, sizeof d),
       count(val(cur, "ticks.durable"), e, sizeof e), count(val(cur, "ticks.late"), f, sizeof f));
  /* Every reason that has counted something, with its rate. */
  static const char pre[] = "ticks.rejected_by_reason.";
  char reasons[400] = "";
  size_t rl = 0;
  for (const char *l = cur->text; l && *l;) {
    const char *nl = strchr(l, '\n');
    char key[96];
    double v;
    if (strncmp(l, pre, sizeof pre - 1) == 0 && sscanf(l, "%95s %lf", key, &v) == 2 && v > 0 &&
        rl < sizeof reasons - 1) {
      int w = snprintf(reasons + rl, sizeof reasons - rl, "%s%s %s (%s/s)", rl ? "   " : "",
                       key + sizeof pre - 1, count(v, a, sizeof a),
                       count(rate(prev, cur, key, NULL), b, sizeof b));
      if (w > 0) rl += (size_t)w < sizeof reasons - rl ? (size_t)w : sizeof reasons - rl - 1;
    }
    l = nl ? nl + 1 : NULL;
  }
  line(sc, "  by reason: %s", rl ? reasons : "none");
  line(sc,
       "CONNS    current %.0f   total %.0f   closed on error %.0f   refused %.0f   "
       "timeout %.0f   slow %.0f",
       val(cur, "connections.current"), val(cur, "connections.total"),
       val(cur, "connections.closed_on_error"), val(cur, "connections.refused"),
       val(cur, "connections.closed_timeout"), val(cur, "connections.closed_slow"));
  line(sc, "%s", "");
  line(sc, "MEMORY   rss %s   held (memory.total_bytes) %s   %.1f B per stored tick",
       size(val(cur, "memory.rss_bytes"), a, sizeof a),
       size(val(cur, "memory.total_bytes"), b, sizeof b),
       has(cur, "memory.total_bytes_per_tick") ? val(cur, "memory.total_bytes_per_tick")
                                               : val(cur, "memory.bytes_per_tick"));
  line(sc, "  slab %s (used %s, untouched %s)   symbols %s   index %s",
       size(val(cur, "memory.slab_bytes"), a, sizeof a),
       size(val(cur, "memory.slab_used_bytes"), b, sizeof b),
       size(val(cur, "memory.slab_untouched_bytes"), c, sizeof c),
       size(val(cur, "memory.symbol_bytes"), d, sizeof d),
       size(val(cur, "memory.index_bytes"), e, sizeof e));
  line(sc, "  buffers: journal %s   read %s   query %s   subscribers %s",
       size(val(cur, "memory.journal_buffer_bytes"), a, sizeof a),
       size(val(cur, "memory.read_buffer_bytes"), b, sizeof b),
       size(val(cur, "memory.query_buffer_bytes"), c, sizeof c),
       size(val(cur, "memory.subscriber_buffer_bytes"), d, sizeof d));
  line(sc,
       "  record: %.0f B declared (schema.record_size), %.1f B packed "
       "(store.slotted.record_bytes); %s mode, %s series",
       val(cur, "schema.record_size"), val(cur, "store.slotted.record_bytes"),
       str(cur, "store.mode", s1, sizeof s1), count(val(cur, "store.series"), a, sizeof a));
  line(sc, "%s", "");
  if (val(cur, "journal.enabled")) {
    line(sc,
         "JOURNAL  %s   last fsync %.1f s ago   queued %s   %s in %.0f segments   "
         "fsyncs %.0f   write errors %.0f",
         str(cur, "journal.state", s1, sizeof s1), val(cur, "journal.last_fsync_age_seconds"),
         size(val(cur, "journal.queued_bytes"), a, sizeof a),
         size(val(cur, "journal.bytes"), b, sizeof b), val(cur, "journal.segments"),
         val(cur, "journal.fsyncs"), val(cur, "journal.write_errors"));
    if (has(cur, "checkpoint.count")) {
      double age = val(cur, "checkpoint.last_age_seconds");
      char newest[48] = "none yet";
      if (age >= 0) snprintf(newest, sizeof newest, "newest %.0f s old", age);
      line(sc, "  checkpoints %.0f (failed %.0f)%s   %s", val(cur, "checkpoint.count"),
           val(cur, "checkpoint.failed"),
           val(cur, "checkpoint.in_progress") ? ", one being written" : "", newest);
    }
  } else {
    line(sc, "JOURNAL  off (journal.enabled: false): nothing is durable");
  }
  char sub[32];
  str(cur, "subscribe.listen", sub, sizeof sub);
  if (has(cur, "subscribe.subscribers") && strcmp(sub, "off") != 0)
    line(sc,
         "SUBS     %.0f subscribers   %s ticks/s out   dropped %s   queued %s   "
         "max lag %.3f s",
         val(cur, "subscribe.subscribers"),
         count(rate(prev, cur, "subscribe.sent_ticks", NULL), a, sizeof a),
         count(val(cur, "subscribe.dropped_ticks"), b, sizeof b),
         size(val(cur, "subscribe.queue_bytes"), c, sizeof c),
         val(cur, "subscribe.max_lag_seconds"));
  else
    line(sc, "SUBS     off");
}

/* The one line a refresh when stdout is not a terminal. */
static void print_line(const struct snap *prev, const struct snap *cur, unsigned n) {
  if (n % 20 == 0)
    printf("%-8s %10s %12s %10s %12s %6s %10s %8s %8s %10s %5s\n", "time", "ticks/s", "accepted",
           "rejected", "stored", "conns", "rss", "B/tick", "journal", "fsync_age", "subs");
  char when[16], st[16];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(when, sizeof when, "%H:%M:%S", &tm);
  char rss[32];
  size(val(cur, "memory.rss_bytes"), rss, sizeof rss);
  for (char *p = rss; *p; p++)
    if (*p == ' ') memmove(p, p + 1, strlen(p));
  printf("%-8s %10.0f %12.0f %10.0f %12.0f %6.0f %10s %8.1f %8s %10.1f %5.0f\n", when,
         rate(prev, cur, "ticks.accepted", "ingest.rate_1s"), val(cur, "ticks.accepted"),
         val(cur, "ticks.rejected"), val(cur, "ticks.stored"), val(cur, "connections.current"), rss,
         has(cur, "memory.total_bytes_per_tick") ? val(cur, "memory.total_bytes_per_tick")
                                                 : val(cur, "memory.bytes_per_tick"),
         val(cur, "journal.enabled") ? str(cur, "journal.state", st, sizeof st) : "off",
         val(cur, "journal.enabled") ? val(cur, "journal.last_fsync_age_seconds") : -1.0,
         val(cur, "subscribe.subscribers"));
  fflush(stdout);
}

/* Waits up to ms, or until q (a tty) or a signal.  True: stop. */
static bool wait_or_quit(int ms, bool keys) {
  uint64_t end = tks_mono_ns() + (uint64_t)ms * 1000000u;
  for (;;) {
    if (stop_signal) return true;
    uint64_t now = tks_mono_ns();
    if (now >= end) return false;
    int left = (int)((end - now + 999999) / 1000000);
    struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
    int r = poll(&p, keys ? 1 : 0, left);
    if (r < 0 && errno == EINTR) continue;
    if (r > 0) {
      char k[16];
      ssize_t n = read(STDIN_FILENO, k, sizeof k);
      if (n == 0) keys = false; /* stdin closed: only signals stop us now */
      for (ssize_t i = 0; i < n; i++)
        if (k[i] == 'q' || k[i] == 'Q' || k[i] == 3 /* ^C without ISIG */) return true;
    }
  }
}

int cli_cmd_top(struct cli *c, int argc, char **argv) {
  double interval = 1.0;
  uint64_t max = 0;
  for (int i = 1; i < argc;) {
    const char *a = argv[i], *v;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(top_help, stdout);
      return CLI_OK;
    }
    int r = cli_opt_value(argc, argv, &i, "--interval", &v);
    if (r < 0) return CLI_USAGE;
    if (r > 0) {
      if (cli_parse_seconds(v, &interval) || interval < 0.1 || interval > 3600) {
        cli_err("top: bad --interval '%s' (seconds, 0.1 to 3600)", v);
        return CLI_USAGE;
      }
      continue;
    }
    r = cli_opt_value(argc, argv, &i, "--count", &v);
    if (r < 0) return CLI_USAGE;
    if (r > 0) {
      if (cli_parse_count(v, &max) || max == 0) {
        cli_err("top: bad --count '%s' (a whole number, 1 or more)", v);
        return CLI_USAGE;
      }
      continue;
    }
    r = cli_global_opt(c, argc, argv, &i);
    if (r < 0) return CLI_USAGE;
    if (r == 0) {
      cli_err("top: unexpected argument '%s' (see tickslab top --help)", a);
      return CLI_USAGE;
    }
  }
  const char *path;
  if (cli_control_socket(c, &path)) return CLI_FAIL;
  struct cli_ctl ctl;
  if (cli_ctl_open(&ctl, path, c->timeout_ms)) return CLI_FAIL;

  bool tty = isatty(STDOUT_FILENO);
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  if (tty) {
    atexit(term_restore);
    term_enter();
  }
  struct snap snaps[2] = {{0}};
  struct tks_buf resp = {0}, screen = {0};
  int rc = CLI_OK;
  char err[1024] = "";
  for (uint64_t n = 0; !max || n < max; n++) {
    struct snap *cur = &snaps[n % 2], *prev = n ? &snaps[(n + 1) % 2] : NULL;
    if (cli_ctl_request(&ctl, "stats text", &resp)) {
      /* Said on the alternate screen: said again once the terminal is back. */
      snprintf(err, sizeof err, "top: no answer from %s (see above)", path);
      rc = CLI_FAIL;
      break;
    }
    if (cli_response_error(resp.data ? resp.data : "", err, sizeof err)) {
      rc = CLI_FAIL;
      break;
    }
    err[0] = '\0';
    free(cur->text);
    cur->text = strdup(resp.data ? resp.data : "");
    cur->mono_ns = tks_mono_ns();
    if (!cur->text) {
      snprintf(err, sizeof err, "out of memory");
      rc = CLI_FAIL;
      break;
    }
    if (tty) {
      struct winsize ws = {0};
      unsigned rows = 24, cols = 80;
      if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col)
        rows = ws.ws_row, cols = ws.ws_col;
      screen.len = 0;
      tks_buf_puts(&screen, "\033[H");
      struct screen sc = {&screen, rows, cols, 0};
      draw(&sc, prev, cur, path, interval);
      tks_buf_puts(&screen, "\033[J"); /* below the last line: erased */
      fwrite(screen.data, 1, screen.len, stdout);
      fflush(stdout);
    } else {
      print_line(prev, cur, (unsigned)n);
    }
    if (max && n + 1 >= max) break;
    if (wait_or_quit((int)(interval * 1000), tty && T.raw)) break;
  }
  if (tty) term_restore();
  if (err[0]) cli_err("%s", err);
  for (int k = 0; k < 2; k++) free(snaps[k].text);
  tks_buf_finish(&resp);
  tks_buf_finish(&screen);
  cli_ctl_close(&ctl);
  return rc;
}

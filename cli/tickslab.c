/*
 * tickslab: the command-line client of tickslabd.  main parses the global
 * options and runs one command: ping and request talk to the control
 * socket here, the others are in stats.c, top.c, query.c, send.c, gen.c,
 * tail.c, export.c and fleet.c.  Where the
 * daemon is comes from resolve.c, cli_err and option parsing from cli.c.
 * Exit: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#ifndef TKS_VERSION
#define TKS_VERSION "unknown"
#endif

static const char usage_text[] =
    "Usage: tickslab [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "The client of tickslabd: queries its control socket and streams ticks\n"
    "to its ingest port.\n"
    "\n"
    "Commands:\n"
    "  ping                   check that the daemon answers\n"
    "  stats [SECTION] [--text|--json|--prometheus|--slabs]\n"
    "                         print the daemon's statistics, all or one section\n"
    "                         (memory, ticks, journal, ...; default: text;\n"
    "                         slabs: a table)\n"
    "  top [--interval S] [--count N]\n"
    "                         a live view of the daemon, refreshed each second\n"
    "  last SYMBOL [N]        the newest N ticks of SYMBOL (default 10), as JSON lines\n"
    "  range SYMBOL FROM TO [LIMIT] [--all]\n"
    "                         the ticks with FROM <= ts < TO (ns or ISO-8601),\n"
    "                         a page at a time, or --all pages\n"
    "                         (last, range --brokers B [--topic T] [--nodes-topic T]:\n"
    "                         from the node of a fleet on Kafka that owns SYMBOL)\n"
    "  nodes --brokers B [--nodes-topic T] [--json]\n"
    "                         the nodes of a fleet on Kafka, from its directory topic\n"
    "  symbols [LIMIT]        each symbol with its tick count and first/last ts\n"
    "  advice [--json]        what to change in the schema, from the live figures\n"
    "  export SYMBOL|'*' FROM TO [--format msgpack|csv|jsonl] [-o FILE]\n"
    "                         the ticks of a range in bulk (msgpack: as ingest takes them)\n"
    "  tail [SYMBOL...] [--from TIME] [--csv]\n"
    "                         follow the ticks as they are stored, like tail -f\n"
    "                         (from the subscription port, subscribe.listen)\n"
    "  request WORDS...       send one control request, print the answer\n"
    "  send [FILE|-] [--array] [--extra]\n"
    "                         stream ticks from CSV (a header names the schema's\n"
    "                         fields, in any order)\n"
    "  gen [--count N] [--rate R] [--symbols S] [--connections C] ...\n"
    "                         generate load (see tickslab gen --help)\n"
    "  help [COMMAND]         this text, or a command's\n"
    "\n"
    "Options (before or after the command):\n"
    "  --socket PATH          control socket (default: the config's control.socket)\n"
    "  --config FILE          read control.socket and ingest.listen from FILE\n"
    "                         (default: " TKS_DEFAULT_CONFIG_PATH " if it exists)\n"
    "  --connect HOST:PORT    ingest address (default: with --socket and no --config\n"
    "                         the one the daemon there listens on, else the\n"
    "                         config's ingest.listen, else 127.0.0.1:7070)\n"
    "  --timeout SECONDS      wait at most this long for an answer, a connect or a\n"
    "                         stalled write (default 10)\n"
    "  -h, --help             this text\n"
    "  -V, --version          the version\n"
    "\n"
    "Exit status: 0 ok, 1 failure (cannot connect, error answer), 2 usage error.\n";

static const char ping_help[] =
    "Usage: tickslab ping\n"
    "\n"
    "Sends 'ping' to the control socket; prints 'ok' and exits 0 if the daemon\n"
    "answers {\"ok\":true}, else prints why on stderr and exits 1.  While the\n"
    "daemon loads its store at start it prints 'ok (loading)' (tickslab stats\n"
    "shows the progress; other requests are refused until it is ready).\n";

static const char request_help[] =
    "Usage: tickslab request WORD...\n"
    "\n"
    "Sends the words, joined by single spaces, as one control request line\n"
    "(e.g. tickslab request last AAPL 10) and prints the answer's lines.  An\n"
    "error answer ({\"error\":...}) is printed on stderr and the exit status is 1.\n";

/* Sends one request and prints the answer: the body on stdout, an error
 * answer's message on stderr. */
static int run_request(struct cli *c, const char *request, bool is_ping) {
  const char *path;
  if (cli_control_socket(c, &path)) return CLI_FAIL;
  struct cli_ctl ctl;
  if (cli_ctl_open(&ctl, path, c->timeout_ms)) return CLI_FAIL;
  struct tks_buf resp = {0};
  int rc = CLI_FAIL;
  if (cli_ctl_ask(&ctl, request, &resp)) goto out;
  const char *body = resp.data ? resp.data : "";
  if (is_ping) {
    if (!strstr(body, "\"ok\":true") && !strstr(body, "\"ok\": true")) {
      size_t l = strcspn(body, "\n");
      cli_err("unexpected answer to ping from %s: %.*s", path, (int)(l > 200 ? 200 : l), body);
      goto out;
    }
    /* Alive but not ready yet: say so (the exit status is still 0). */
    puts(strstr(body, "\"state\":\"loading\"") ? "ok (loading)" : "ok");
  } else {
    fwrite(body, 1, resp.len, stdout);
  }
  rc = fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
  if (rc) cli_err("write to stdout: %s", strerror(errno));
out:
  tks_buf_finish(&resp);
  cli_ctl_close(&ctl);
  return rc;
}

static bool is_help(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

/* Parses the rest of a command that takes only global options: returns -1
 * to go on, else the exit code (after --help, or a usage error). */
static int no_args(struct cli *c, int argc, char **argv, const char *help) {
  for (int i = 1; i < argc;) {
    if (is_help(argv[i])) {
      fputs(help, stdout);
      return CLI_OK;
    }
    int r = cli_global_opt(c, argc, argv, &i);
    if (r < 0) return CLI_USAGE;
    if (r == 0) {
      cli_err("%s: unexpected argument '%s' (see tickslab %s --help)", argv[0], argv[i], argv[0]);
      return CLI_USAGE;
    }
  }
  return -1;
}

static int cmd_ping(struct cli *c, int argc, char **argv) {
  int r = no_args(c, argc, argv, ping_help);
  if (r >= 0) return r;
  return run_request(c, "ping", true);
}

static int cmd_request(struct cli *c, int argc, char **argv) {
  struct tks_buf req = {0};
  int rc = CLI_USAGE;
  bool words_only = false;
  for (int i = 1; i < argc;) {
    const char *a = argv[i];
    if (!words_only && strcmp(a, "--") == 0) {
      words_only = true;
      i++;
      continue;
    }
    if (!words_only && a[0] == '-' && a[1] != '\0') {
      if (is_help(a)) {
        fputs(request_help, stdout);
        rc = CLI_OK;
        goto out;
      }
      int r = cli_global_opt(c, argc, argv, &i);
      if (r < 0) goto out;
      if (r > 0) continue;
      /* Not ours: a word of the request (a negative number, say). */
    }
    if (strpbrk(a, "\n\r")) {
      cli_err("request: a request is one line; '%s' holds a line break", a);
      goto out;
    }
    if ((req.len && tks_buf_puts(&req, " ")) || tks_buf_puts(&req, a)) {
      cli_err("out of memory");
      rc = CLI_FAIL;
      goto out;
    }
    i++;
  }
  if (req.len == 0) {
    cli_err("request: no request given (e.g. tickslab request stats slabs)");
    goto out;
  }
  rc = run_request(c, req.data, false);
out:
  tks_buf_finish(&req);
  return rc;
}

static const struct {
  const char *name;
  int (*fn)(struct cli *c, int argc, char **argv);
} commands[] = {
    {"ping", cmd_ping},       {"stats", cli_cmd_stats},     {"request", cmd_request},
    {"send", cli_cmd_send},   {"gen", cli_cmd_gen},         {"last", cli_cmd_last},
    {"range", cli_cmd_range}, {"symbols", cli_cmd_symbols}, {"advice", cli_cmd_advice},
    {"tail", cli_cmd_tail},   {"export", cli_cmd_export},   {"top", cli_cmd_top},
    {"nodes", cli_cmd_nodes},
};

static int run_command(struct cli *c, int argc, char **argv) {
  if (strcmp(argv[0], "help") == 0) {
    if (argc < 2) {
      fputs(usage_text, stdout);
      return CLI_OK;
    }
    static char help_flag[] = "--help";
    char *sub[] = {argv[1], help_flag, NULL};
    return run_command(c, 2, sub);
  }
  for (unsigned k = 0; k < TKS_ARRAY_SIZE(commands); k++)
    if (strcmp(argv[0], commands[k].name) == 0) return commands[k].fn(c, argc, argv);
  cli_err("unknown command '%s' (see tickslab --help)", argv[0]);
  return CLI_USAGE;
}

int main(int argc, char **argv) {
  struct cli c = {.timeout_ms = 10000};
  int i = 1;
  while (i < argc && argv[i][0] == '-') {
    if (is_help(argv[i])) {
      fputs(usage_text, stdout);
      return CLI_OK;
    }
    if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
      printf("tickslab %s\n", TKS_VERSION);
      return CLI_OK;
    }
    int r = cli_global_opt(&c, argc, argv, &i);
    if (r < 0) return CLI_USAGE;
    if (r == 0) {
      cli_err("unknown option '%s' (see tickslab --help)", argv[i]);
      return CLI_USAGE;
    }
  }
  if (i >= argc) {
    cli_err("no command given (see tickslab --help)");
    return CLI_USAGE;
  }
  int rc = run_command(&c, argc - i, argv + i);
  free(c.config);
  return rc;
}

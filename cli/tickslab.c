/*
 * tickslab: the command-line client of tickslabd.  Parses the global
 * options, finds the daemon (control socket: --socket, else the config's
 * control.socket, else the default; ingest: --connect, else the config's
 * ingest.listen, else 127.0.0.1:7070) and runs one command: ping, stats and
 * request talk to the control socket here, last, range, symbols and advice
 * in query.c; send and gen (send.c, gen.c) stream ticks to the ingest port.
 * Exit: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    "  stats [--text|--json|--slabs|--prometheus]\n"
    "                         print the daemon's statistics (default: text)\n"
    "  last SYMBOL [N]        the newest N ticks of SYMBOL (default 10), as JSON lines\n"
    "  range SYMBOL FROM TO [LIMIT] [--all]\n"
    "                         the ticks with FROM <= ts < TO (ns or ISO-8601),\n"
    "                         a page at a time, or --all pages\n"
    "  symbols [LIMIT]        each symbol with its tick count and first/last ts\n"
    "  advice [--json]        what to change in the schema, from the live figures\n"
    "  request WORDS...       send one control request, print the answer\n"
    "  send [FILE|-] [--array]\n"
    "                         stream ticks from CSV (ticker,ts,price,volume,flags)\n"
    "  gen [--count N] [--rate R] [--symbols S] [--connections C] ...\n"
    "                         generate load (see tickslab gen --help)\n"
    "  help [COMMAND]         this text, or a command's\n"
    "\n"
    "Options (before or after the command):\n"
    "  --socket PATH          control socket (default: the config's control.socket)\n"
    "  --config FILE          read control.socket and ingest.listen from FILE\n"
    "                         (default: " TKS_DEFAULT_CONFIG_PATH " if it exists)\n"
    "  --connect HOST:PORT    ingest address (default: the config's ingest.listen,\n"
    "                         else 127.0.0.1:7070)\n"
    "  --timeout SECONDS      wait at most this long for an answer, a connect or a\n"
    "                         stalled write (default 10)\n"
    "  -h, --help             this text\n"
    "  -V, --version          the version\n"
    "\n"
    "Exit status: 0 ok, 1 failure (cannot connect, error answer), 2 usage error.\n";

static const char stats_help[] =
    "Usage: tickslab stats [--text | --json | --slabs | --prometheus]\n"
    "\n"
    "Prints the daemon's statistics:\n"
    "  --text         'dotted.name value' lines (the default; request 'stats text')\n"
    "  --json         one JSON object (request 'stats')\n"
    "  --slabs        the slab classes as JSON (request 'stats slabs')\n"
    "  --prometheus   Prometheus text exposition (request 'stats prometheus')\n";

static const char ping_help[] =
    "Usage: tickslab ping\n"
    "\n"
    "Sends 'ping' to the control socket; prints 'ok' and exits 0 if the daemon\n"
    "answers {\"ok\":true}, else prints why on stderr and exits 1.\n";

static const char request_help[] =
    "Usage: tickslab request WORD...\n"
    "\n"
    "Sends the words, joined by single spaces, as one control request line\n"
    "(e.g. tickslab request last AAPL 10) and prints the answer's lines.  An\n"
    "error answer ({\"error\":...}) is printed on stderr and the exit status is 1.\n";

void cli_err(const char *fmt, ...) {
  fflush(stdout);
  va_list ap;
  va_start(ap, fmt);
  tks_vwrite_line(2048, "tickslab: ", fmt, ap);
  va_end(ap);
}

int cli_opt_value(int argc, char **argv, int *i, const char *name, const char **value) {
  const char *a = argv[*i];
  size_t nl = strlen(name);
  if (strncmp(a, name, nl) != 0) return 0;
  if (a[nl] == '=') {
    *value = a + nl + 1;
    (*i)++;
    return 1;
  }
  if (a[nl] != '\0') return 0;
  if (*i + 1 >= argc) {
    cli_err("option %s needs a value (see tickslab --help)", name);
    return -1;
  }
  *value = argv[*i + 1];
  *i += 2;
  return 1;
}

int cli_parse_count(const char *s, uint64_t *out) {
  if (!s || *s < '0' || *s > '9') return -EINVAL;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s) return -EINVAL;
  double mult = 1;
  if (*end == 'k' || *end == 'K') mult = 1e3, end++;
  else if (*end == 'M') mult = 1e6, end++;
  else if (*end == 'G') mult = 1e9, end++;
  if (*end) return -EINVAL;
  v *= mult;
  if (!(v >= 0) || v >= 1.8e19 || v != floor(v)) return -EINVAL;
  *out = (uint64_t)v;
  return 0;
}

int cli_parse_seconds(const char *s, double *out) {
  if (!s || ((*s < '0' || *s > '9') && *s != '.')) return -EINVAL;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v) || v < 0) return -EINVAL;
  *out = v;
  return 0;
}

int cli_global_opt(struct cli *c, int argc, char **argv, int *i) {
  const char *v = NULL;
  int r;
  if ((r = cli_opt_value(argc, argv, i, "--socket", &v)) != 0) {
    if (r > 0) c->socket_opt = v;
    return r;
  }
  if ((r = cli_opt_value(argc, argv, i, "--config", &v)) != 0) {
    if (r > 0) c->config_opt = v;
    return r;
  }
  if ((r = cli_opt_value(argc, argv, i, "--connect", &v)) != 0) {
    if (r > 0) c->connect_opt = v;
    return r;
  }
  if ((r = cli_opt_value(argc, argv, i, "--timeout", &v)) != 0) {
    if (r < 0) return r;
    double s;
    if (cli_parse_seconds(v, &s) || s <= 0 || s > 86400) {
      cli_err("bad --timeout '%s': want seconds, more than 0", v);
      return -1;
    }
    c->timeout_ms = (int)ceil(s * 1000);
    return 1;
  }
  return 0;
}

/* Loads --config, or the default file if it exists.  0 or -1 (printed). */
static int load_config(struct cli *c) {
  if (c->config_state) return c->config_state < 0 ? -1 : 0;
  const char *path = c->config_opt;
  if (!path && access(TKS_DEFAULT_CONFIG_PATH, F_OK) == 0) path = TKS_DEFAULT_CONFIG_PATH;
  if (!path) {
    c->config_state = 2;
    return 0;
  }
  c->config = calloc(1, sizeof *c->config);
  if (!c->config) {
    cli_err("out of memory");
    c->config_state = -1;
    return -1;
  }
  char err[TKS_CONFIG_ERR_MAX];
  err[0] = '\0';
  if (tks_config_load(c->config, path, err, sizeof err)) {
    if (c->config_opt) {
      cli_err("%s", err[0] ? err : path);
      c->config_state = -1;
      return -1;
    }
    /* The default file exists but cannot be used (often: not readable by
     * this user).  Say so, and go on with the built-in defaults. */
    cli_err("warning: %s; using the defaults (see --config, --socket, --connect)",
            err[0] ? err : path);
    c->config_state = 2;
    return 0;
  }
  c->config_state = 1;
  return 0;
}

int cli_control_socket(struct cli *c, const char **path) {
  if (c->socket_opt) {
    *path = c->socket_opt;
    return 0;
  }
  if (!c->socket_path[0]) {
    if (load_config(c)) return -1;
    const char *p = c->config_state == 1 && c->config->control.socket[0]
                        ? c->config->control.socket
                        : TKS_DEFAULT_CONTROL_SOCKET;
    snprintf(c->socket_path, sizeof c->socket_path, "%s", p);
  }
  *path = c->socket_path;
  return 0;
}

/* Splits "host:port" or "[v6]:port". */
static int split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen) {
  const char *colon;
  size_t hl;
  const char *h = s;
  if (*s == '[') {
    const char *rb = strchr(s, ']');
    if (!rb || rb[1] != ':') return -EINVAL;
    h = s + 1;
    hl = (size_t)(rb - h);
    colon = rb + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon) return -EINVAL;
    hl = (size_t)(colon - s);
    if (memchr(s, ':', hl)) return -EINVAL; /* a bare IPv6 address needs brackets */
  }
  uint64_t p;
  if (hl == 0 || hl >= hostlen || tks_parse_u64(colon + 1, &p) || p == 0 || p > 65535)
    return -EINVAL;
  memcpy(host, h, hl);
  host[hl] = '\0';
  snprintf(port, portlen, "%u", (unsigned)p);
  return 0;
}

static void set_ingest_name(struct cli *c) {
  bool v6 = strchr(c->ingest_host, ':') != NULL;
  snprintf(c->ingest_name, sizeof c->ingest_name, "%s%s%s:%s", v6 ? "[" : "", c->ingest_host,
           v6 ? "]" : "", c->ingest_port);
}

/* The daemon listens on port 0 (any free port): ask it which. */
static int ask_ingest_port(struct cli *c) {
  const char *path;
  if (cli_control_socket(c, &path)) return -1;
  struct cli_ctl ctl;
  if (cli_ctl_open(&ctl, path, c->timeout_ms)) return -1;
  struct tks_buf resp = {0};
  int rc = -1;
  uint64_t port;
  if (cli_ctl_request(&ctl, "stats text", &resp) == 0) {
    if (cli_stats_u64(resp.data ? resp.data : "", "ingest.port", &port) == 0 && port > 0 &&
        port <= 65535) {
      snprintf(c->ingest_port, sizeof c->ingest_port, "%u", (unsigned)port);
      rc = 0;
    } else {
      cli_err("the config listens on port 0 and the daemon at %s does not report ingest.port: "
              "use --connect",
              path);
    }
  }
  tks_buf_finish(&resp);
  cli_ctl_close(&ctl);
  return rc;
}

int cli_ingest_address(struct cli *c) {
  if (c->ingest_name[0]) return 0;
  if (c->connect_opt) {
    if (split_hostport(c->connect_opt, c->ingest_host, sizeof c->ingest_host, c->ingest_port,
                       sizeof c->ingest_port)) {
      cli_err("bad --connect '%s': want HOST:PORT or [IPv6]:PORT", c->connect_opt);
      return -1;
    }
    set_ingest_name(c);
    return 0;
  }
  if (load_config(c)) return -1;
  if (c->config_state == 1 && c->config->ingest.host[0]) {
    const char *h = c->config->ingest.host;
    /* A daemon listening on every address is reached on loopback. */
    if (strcmp(h, "0.0.0.0") == 0) h = "127.0.0.1";
    else if (strcmp(h, "::") == 0) h = "::1";
    snprintf(c->ingest_host, sizeof c->ingest_host, "%s", h);
    snprintf(c->ingest_port, sizeof c->ingest_port, "%u", (unsigned)c->config->ingest.port);
    if (c->config->ingest.port == 0 && ask_ingest_port(c)) return -1;
  } else {
    snprintf(c->ingest_host, sizeof c->ingest_host, "%s", CLI_DEFAULT_INGEST_HOST);
    snprintf(c->ingest_port, sizeof c->ingest_port, "%d", CLI_DEFAULT_INGEST_PORT);
  }
  set_ingest_name(c);
  return 0;
}

const struct tks_schema *cli_schema(struct cli *c) {
  static struct tks_schema dflt;
  if (load_config(c)) return NULL;
  if (c->config_state == 1) return &c->config->schema;
  if (dflt.nfields == 0) tks_schema_default(&dflt);
  return &dflt;
}

/* Sends one request and prints the answer: the body on stdout, an error
 * answer's message on stderr. */
static int run_request(struct cli *c, const char *request, bool is_ping) {
  const char *path;
  if (cli_control_socket(c, &path)) return CLI_FAIL;
  struct cli_ctl ctl;
  if (cli_ctl_open(&ctl, path, c->timeout_ms)) return CLI_FAIL;
  struct tks_buf resp = {0};
  int rc = CLI_FAIL;
  if (cli_ctl_request(&ctl, request, &resp)) goto out;
  const char *body = resp.data ? resp.data : "";
  char msg[1024];
  if (cli_response_error(body, msg, sizeof msg)) {
    cli_err("%s", msg);
    goto out;
  }
  if (is_ping) {
    if (!strstr(body, "\"ok\":true") && !strstr(body, "\"ok\": true")) {
      size_t l = strcspn(body, "\n");
      cli_err("unexpected answer to ping from %s: %.*s", path, (int)(l > 200 ? 200 : l), body);
      goto out;
    }
    puts("ok");
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

static int cmd_stats(struct cli *c, int argc, char **argv) {
  static const struct {
    const char *flag;
    const char *request;
  } kinds[] = {
      {"--text", "stats text"},
      {"--json", "stats"},
      {"--slabs", "stats slabs"},
      {"--prometheus", "stats prometheus"},
  };
  const char *request = NULL, *flag = NULL;
  for (int i = 1; i < argc;) {
    if (is_help(argv[i])) {
      fputs(stats_help, stdout);
      return CLI_OK;
    }
    bool matched = false;
    for (unsigned k = 0; k < TKS_ARRAY_SIZE(kinds); k++)
      if (strcmp(argv[i], kinds[k].flag) == 0) {
        if (flag && strcmp(flag, kinds[k].flag) != 0) {
          cli_err("stats: %s and %s cannot be combined", flag, kinds[k].flag);
          return CLI_USAGE;
        }
        flag = kinds[k].flag;
        request = kinds[k].request;
        matched = true;
      }
    if (matched) {
      i++;
      continue;
    }
    int r = cli_global_opt(c, argc, argv, &i);
    if (r < 0) return CLI_USAGE;
    if (r == 0) {
      cli_err("stats: unexpected argument '%s' (see tickslab stats --help)", argv[i]);
      return CLI_USAGE;
    }
  }
  return run_request(c, request ? request : "stats text", false);
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
    {"ping", cmd_ping},         {"stats", cmd_stats},         {"request", cmd_request},
    {"send", cli_cmd_send},     {"gen", cli_cmd_gen},         {"last", cli_cmd_last},
    {"range", cli_cmd_range},   {"symbols", cli_cmd_symbols}, {"advice", cli_cmd_advice},
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

/*
 * Where the daemon is, resolved on first use: the control socket (--socket,
 * else the config's control.socket, else the default), the ingest address
 * (--connect; else, with --socket and no --config, the address the daemon
 * there listens on, from its stats; else the config's ingest.listen, asking
 * the daemon for the port when that is 0; else 127.0.0.1:7070) and the
 * subscription address alike, and the schema send and gen
 * encode for (send: the running daemon's, from its stats, unless --config).  The config is --config, else the default file if it exists.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

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

static void set_name(const char *host, const char *port, char *name, size_t n) {
  bool v6 = strchr(host, ':') != NULL;
  snprintf(name, n, "%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

/* The daemon listens on port 0 (any free port): ask it which (the stat). */
static int ask_port(struct cli *c, const char *stat, const char *opt, char *port, size_t n) {
  const char *path;
  if (cli_control_socket(c, &path)) return -1;
  struct cli_ctl ctl;
  if (cli_ctl_open(&ctl, path, c->timeout_ms)) return -1;
  struct tks_buf resp = {0};
  int rc = -1;
  uint64_t p;
  if (cli_ctl_request(&ctl, "stats text", &resp) == 0) {
    if (cli_stats_u64(resp.data ? resp.data : "", stat, &p) == 0 && p > 0 && p <= 65535) {
      snprintf(port, n, "%u", (unsigned)p);
      rc = 0;
    } else {
      cli_err("the config listens on port 0 and the daemon at %s does not report %s: use %s", path,
              stat, opt);
    }
  }
  tks_buf_finish(&resp);
  cli_ctl_close(&ctl);
  return rc;
}

/* An address: the option's value (opt_name), else the config's host and
 * port (a port 0 asked of the daemon as `stat`), else the default. */
struct where {
  const char *opt, *opt_name, *stat, *listen_stat;
  const char *dflt_host;
  int dflt_port;
  char *host, *port, *name;
  size_t host_len, port_len, name_len;
};

/* A daemon listening on every address is reached on loopback. */
static const char *reachable(const char *h) {
  return strcmp(h, "0.0.0.0") == 0 ? "127.0.0.1" : strcmp(h, "::") == 0 ? "::1" : h;
}

/* --socket without --config: the daemon there says where it listens, not
 * a config file (the default one may be another daemon's). */
static bool ask_daemon(const struct cli *c) { return c->socket_opt && !c->config_opt; }

/* The address the daemon at --socket listens on (ask_daemon). */
static int ask_listen(struct cli *c, const struct where *w) {
  struct cli_ctl ctl;
  if (cli_ctl_open(&ctl, c->socket_opt, c->timeout_ms)) return -1;
  struct tks_buf resp = {0};
  char v[320], host[300];
  int rc = -1;
  if (cli_ctl_request(&ctl, "stats text", &resp) == 0) {
    if (cli_stats_str(resp.data ? resp.data : "", w->listen_stat, v, sizeof v) != 0)
      cli_err("the daemon at %s does not report %s: use %s", c->socket_opt, w->listen_stat,
              w->opt_name);
    else if (strcmp(v, "off") == 0)
      cli_err("the daemon at %s has %s off", c->socket_opt, w->listen_stat);
    else if (split_hostport(v, host, sizeof host, w->port, w->port_len))
      cli_err("the daemon at %s reports %s '%s', not HOST:PORT: use %s", c->socket_opt,
              w->listen_stat, v, w->opt_name);
    else
      rc = 0;
  }
  tks_buf_finish(&resp);
  cli_ctl_close(&ctl);
  if (rc) return -1;
  snprintf(w->host, w->host_len, "%s", reachable(host));
  set_name(w->host, w->port, w->name, w->name_len);
  return 0;
}

static int resolve(struct cli *c, const struct where *w,
                   bool (*from_config)(const struct tks_config *, const char **, uint16_t *)) {
  if (w->opt) {
    if (split_hostport(w->opt, w->host, w->host_len, w->port, w->port_len)) {
      cli_err("bad %s '%s': want HOST:PORT or [IPv6]:PORT", w->opt_name, w->opt);
      return -1;
    }
    set_name(w->host, w->port, w->name, w->name_len);
    return 0;
  }
  if (ask_daemon(c)) return ask_listen(c, w);
  if (load_config(c)) return -1;
  const char *h;
  uint16_t port;
  if (c->config_state == 1 && from_config(c->config, &h, &port)) {
    snprintf(w->host, w->host_len, "%s", reachable(h));
    snprintf(w->port, w->port_len, "%u", (unsigned)port);
    if (port == 0 && ask_port(c, w->stat, w->opt_name, w->port, w->port_len)) return -1;
  } else {
    snprintf(w->host, w->host_len, "%s", w->dflt_host);
    snprintf(w->port, w->port_len, "%d", w->dflt_port);
  }
  set_name(w->host, w->port, w->name, w->name_len);
  return 0;
}

static bool ingest_of(const struct tks_config *cfg, const char **host, uint16_t *port) {
  *host = cfg->ingest.host;
  *port = cfg->ingest.port;
  return cfg->ingest.host[0] != '\0';
}

static bool subscribe_of(const struct tks_config *cfg, const char **host, uint16_t *port) {
  *host = cfg->subscribe.host;
  *port = cfg->subscribe.port;
  return cfg->subscribe.host[0] != '\0';
}

int cli_ingest_address(struct cli *c) {
  if (c->ingest_name[0]) return 0;
  const struct where w = {c->connect_opt,          "--connect",
                          "ingest.port",           "ingest.listen",
                          CLI_DEFAULT_INGEST_HOST, CLI_DEFAULT_INGEST_PORT,
                          c->ingest_host,          c->ingest_port,
                          c->ingest_name,          sizeof c->ingest_host,
                          sizeof c->ingest_port,   sizeof c->ingest_name};
  return resolve(c, &w, ingest_of);
}

int cli_subscribe_address(struct cli *c, const char *opt, char *host, size_t host_len, char *port,
                          size_t port_len, char *name, size_t name_len) {
  if (!opt && !ask_daemon(c) && load_config(c) == 0 && c->config_state == 1 &&
      !c->config->subscribe.host[0]) {
    cli_err("subscriptions are off in %s (subscribe.listen: off)", c->config->path);
    return -1;
  }
  const struct where w = {opt,
                          "--subscribe",
                          "subscribe.port",
                          "subscribe.listen",
                          CLI_DEFAULT_INGEST_HOST,
                          CLI_DEFAULT_SUBSCRIBE_PORT,
                          host,
                          port,
                          name,
                          host_len,
                          port_len,
                          name_len};
  return resolve(c, &w, subscribe_of);
}

const struct tks_schema *cli_schema(struct cli *c) {
  static struct tks_schema dflt;
  if (load_config(c)) return NULL;
  if (c->config_state == 1) return &c->config->schema;
  if (dflt.nfields == 0) tks_schema_default(&dflt);
  return &dflt;
}

/* Fills s from `stats text` lines schema.name and schema.fields.NAME.type
 * and .required (declaration order).  0 or -EINVAL. */
static int schema_of_stats(const char *text, struct tks_schema *s, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  snprintf(s->name, sizeof s->name, "?");
  static const char pre[] = "schema.fields.";
  for (const char *line = text; line && *line;) {
    const char *nl = strchr(line, '\n');
    size_t ll = nl ? (size_t)(nl - line) : strlen(line);
    char name[TKS_FIELD_NAME_MAX], what[16], value[32];
    if (ll > 12 && strncmp(line, "schema.name ", 12) == 0) {
      snprintf(s->name, sizeof s->name, "%.*s", (int)(ll - 12), line + 12);
    } else if (ll > sizeof pre && strncmp(line, pre, sizeof pre - 1) == 0 &&
               sscanf(line + sizeof pre - 1, "%31[A-Za-z0-9_].%15[a-z] %31s", name, what, value) ==
                   3) {
      unsigned i = 0;
      while (i < s->nfields && strcmp(s->fields[i].name, name) != 0) i++;
      if (i == s->nfields) {
        if (s->nfields == TKS_SCHEMA_MAX_FIELDS) return -EINVAL;
        snprintf(s->fields[s->nfields++].name, TKS_FIELD_NAME_MAX, "%s", name);
      }
      if (strcmp(what, "type") == 0 && tks_type_parse(value, &s->fields[i].type)) {
        snprintf(err, errlen, "the daemon's field %s has the type '%s', unknown here", name, value);
        return -EINVAL;
      }
      if (strcmp(what, "required") == 0) s->fields[i].required = strcmp(value, "1") == 0;
    }
    line = nl ? nl + 1 : NULL;
  }
  if (s->nfields == 0) {
    snprintf(err, errlen, "the daemon's stats have no schema.fields");
    return -EINVAL;
  }
  return tks_schema_layout(s, err, errlen);
}

const struct tks_schema *cli_send_schema(struct cli *c, char *src, size_t srclen) {
  static struct tks_schema daemon_schema;
  if (c->config_opt) {
    snprintf(src, srclen, "--config %s", c->config_opt);
    return cli_schema(c);
  }
  const char *path;
  if (cli_control_socket(c, &path)) return NULL;
  struct cli_ctl ctl;
  char why[300] = "no daemon answered";
  int r = cli_ctl_try_open(&ctl, path, c->timeout_ms);
  if (r == -EACCES || r == -EPERM) snprintf(why, sizeof why, "permission denied");
  if (r == 0) {
    struct tks_buf resp = {0};
    char err[256];
    /* The section alone where the daemon knows sections; all else.  A
     * daemon still loading has no schema in its stats yet. */
    if (cli_ctl_request(&ctl, "stats text schema", &resp) == 0 &&
        (!cli_response_error(resp.data ? resp.data : "", err, sizeof err) ||
         cli_ctl_request(&ctl, "stats text", &resp) == 0)) {
      if (cli_response_error(resp.data ? resp.data : "", err, sizeof err))
        snprintf(why, sizeof why, "it answered %.200s", err);
      else if (schema_of_stats(resp.data ? resp.data : "", &daemon_schema, err, sizeof err))
        snprintf(why, sizeof why, "%.200s", err);
      else
        r = 1;
    }
    tks_buf_finish(&resp);
    cli_ctl_close(&ctl);
    if (r == 1) {
      snprintf(src, srclen, "the daemon's at %s", path);
      return &daemon_schema;
    }
  }
  /* No daemon's schema: the config's, as the other commands take it. */
  const struct tks_schema *s = cli_schema(c);
  if (s)
    snprintf(src, srclen,
             "%s, as no schema came from the daemon at %s (%s); --config or --socket "
             "say which",
             c->config_state == 1 ? c->config->path : "the built-in MarketEvent", path, why);
  return s;
}

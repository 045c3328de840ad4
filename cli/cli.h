/*
 * What the parts of the `tickslab` CLI share, by the file that holds it:
 * cli_err and option parsing (cli.c), where the daemon is (resolve.c), the
 * control socket client and TCP helpers (net.c), and the commands (with
 * them fleet.c, the owner of a symbol in a fleet on Kafka, which query.c
 * asks).  Calls go one way: tickslab.c -> commands -> resolve.c -> net.c ->
 * cli.c.  Every
 * function that fails has already printed one "tickslab: ..." line on
 * stderr; callers only pass the exit code up.
 */
#ifndef TKS_CLI_H
#define TKS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "util.h"

/* Exit codes. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

#define CLI_DEFAULT_INGEST_HOST "127.0.0.1"
#define CLI_DEFAULT_INGEST_PORT 7070
#define CLI_DEFAULT_SUBSCRIBE_PORT 7071

struct cli {
  /* From the command line; NULL when not given. */
  const char *socket_opt;
  const char *config_opt;
  const char *connect_opt;
  int timeout_ms; /* --timeout: control replies, connects, stalled writes */
  bool timeout_set; /* --timeout was given */

  /* Resolved on first use. */
  int config_state; /* 0 not tried, 1 file loaded, 2 no file (defaults), -1 failed */
  struct tks_config *config;
  char socket_path[sizeof(((struct tks_config *)0)->control.socket)];
  char ingest_host[256];
  char ingest_port[8];
  char ingest_name[300]; /* "HOST:PORT" for messages */
};

/* cli.c: calls nothing of cli/, so every file of it may call these. */

/* "tickslab: " + message + "\n" on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Global options may appear before or after the command.  If argv[*i] is
 * one, consumes it (and its value) and returns 1; returns 0 if it is not,
 * -1 after printing a usage error. */
int cli_global_opt(struct cli *c, int argc, char **argv, int *i);

/* For command options: if argv[*i] is `name VALUE` or `name=VALUE`, sets
 * *value, advances *i past it and returns 1; 0 if not this option; -1
 * (printed) if the value is missing. */
int cli_opt_value(int argc, char **argv, int *i, const char *name, const char **value);

/* Whole decimal counts with an optional k/M/G suffix (powers of 1000):
 * "1000000", "10M", "1.5M".  Returns 0 or -EINVAL. */
int cli_parse_count(const char *s, uint64_t *out);
/* Seconds, fractions allowed: "10", "0.5".  Returns 0 or -EINVAL. */
int cli_parse_seconds(const char *s, double *out);

/* The fleet options of last, range and nodes (fleet.c): NULL when not given. */
struct cli_fleet_opts {
  const char *brokers;     /* --brokers: ask the fleet on Kafka, not the local daemon */
  const char *nodes_topic; /* --nodes-topic (default tickslab.nodes) */
  const char *topic;       /* --topic: the ticks' topic (default ticks) */
};
/* If argv[*i] is one of them, as cli_opt_value: 1 (consumed), 0, -1. */
int cli_fleet_opt(int argc, char **argv, int *i, struct cli_fleet_opts *f);

/* resolve.c: the control socket path, the ingest address (c->ingest_host,
 * ingest_port, ingest_name; a config listening on port 0 is asked for its
 * port over the control socket) and the schema, each resolved on first use.
 * Return 0 (the schema: non-NULL), or -1 (NULL) after printing why. */
int cli_control_socket(struct cli *c, const char **path);
int cli_ingest_address(struct cli *c);
const struct tks_schema *cli_schema(struct cli *c);
/* The schema a CSV's header maps to (send): --config's; else the running
 * daemon's, from its stats (schema.fields.*) on the control socket; else,
 * when no daemon answers there, cli_schema's.  src says which, for
 * messages ("the daemon's at PATH").  NULL after printing why. */
const struct tks_schema *cli_send_schema(struct cli *c, char *src, size_t srclen);
/* The subscription address, as the ingest one: opt (--subscribe), else
 * the config's subscribe.listen, else 127.0.0.1:7071. */
int cli_subscribe_address(struct cli *c, const char *opt, char *host, size_t host_len, char *port,
                          size_t port_len, char *name, size_t name_len);

/* net.c: the control socket client, `stats text` lookups, TCP. */

/* A control socket connection: requests are answered in order, each by
 * lines ending with an empty line. */
struct cli_ctl {
  int fd;
  int timeout_ms;
  char path[108];
  struct tks_buf in; /* bytes read past the last response */
};

/* Connects to path.  Returns 0 or -1 (printed: a permission problem, a
 * daemon not running, ...). */
int cli_ctl_open(struct cli_ctl *ctl, const char *path, int timeout_ms);
/* The same, quiet: 0 or a negative errno (-ENAMETOOLONG for a path over
 * sun_path). */
int cli_ctl_try_open(struct cli_ctl *ctl, const char *path, int timeout_ms);
/* Sends one request line and reads its response into resp (replacing its
 * contents): the lines, each with its '\n', without the closing empty line.
 * Returns 0, or -1 (printed) on a socket error, a timeout or a connection
 * closed before the end of the response.  An error response is returned as
 * any other: see cli_response_error. */
int cli_ctl_request(struct cli_ctl *ctl, const char *request, struct tks_buf *resp);
/* cli_ctl_request, an error response printed as a failure too: 0 and the
 * answer in resp, or -1 (printed). */
int cli_ctl_ask(struct cli_ctl *ctl, const char *request, struct tks_buf *resp);
void cli_ctl_close(struct cli_ctl *ctl);
/* If the response's first line is a JSON object whose first key is
 * "error", copies the unescaped message to msg (with ": " and the
 * "detail" that follows it, if one does) and returns true. */
bool cli_response_error(const char *resp, char *msg, size_t msglen);
/* Looks key up in `stats text` output (lines "dotted.key value").
 * Returns 0 or -ENOENT / -EINVAL (not a number). */
int cli_stats_value(const char *text, const char *key, double *out);
int cli_stats_u64(const char *text, const char *key, uint64_t *out);
/* A stat's value as text ("127.0.0.1:7070", "off"): 0, -ENOENT, -EINVAL (empty or over n). */
int cli_stats_str(const char *text, const char *key, char *out, size_t n);

/* TCP connection to host:port within timeout_ms.  name is used in messages.
 * Returns the fd (blocking, with SO_SNDTIMEO of timeout_ms) or -1 (printed). */
int cli_tcp_connect(const char *host, const char *port, const char *name, int timeout_ms);
/* Writes all of p.  Returns 0 or -errno (-EAGAIN: no progress within the
 * socket's send timeout). */
int cli_write_all(int fd, const void *p, size_t n);
/* Shuts down writing, waits up to timeout_ms for the peer to close (so that
 * it has read everything), and closes fd. */
void cli_finish_stream(int fd, int timeout_ms);

/* Commands, called by tickslab.c's dispatch: return an exit code.
 * ping and request are tickslab.c's own (static). */
int cli_cmd_stats(struct cli *c, int argc, char **argv); /* stats.c: all or one section */
int cli_cmd_top(struct cli *c, int argc, char **argv);   /* top.c: the live view */
int cli_cmd_send(struct cli *c, int argc, char **argv); /* send.c */
int cli_cmd_gen(struct cli *c, int argc, char **argv);  /* gen.c */
/* query.c: the read-back requests last, range, symbols, advice. */
int cli_cmd_last(struct cli *c, int argc, char **argv);
int cli_cmd_range(struct cli *c, int argc, char **argv);
int cli_cmd_symbols(struct cli *c, int argc, char **argv);
int cli_cmd_advice(struct cli *c, int argc, char **argv);
int cli_cmd_tail(struct cli *c, int argc, char **argv);   /* tail.c: follow the live ticks */
/* fleet.c (fleet_off.c without librdkafka: both answer "built without
 * Kafka", exit 2): `tickslab nodes`, and the node that owns symbol's
 * partition of f->topic, found in the directory topic: its control socket
 * and, for messages, its name, the partition and its record's age.  0, or
 * an exit code (printed). */
struct cli_fleet_owner {
  char path[108]; /* its control socket */
  char node[64];
  char topic[250];
  int32_t partition;
  double age_s;
  int stale_s; /* when a record is a node gone */
};
int cli_cmd_nodes(struct cli *c, int argc, char **argv);
int cli_fleet_control(struct cli *c, const struct cli_fleet_opts *f, const char *symbol,
                      struct cli_fleet_owner *owner);
int cli_cmd_export(struct cli *c, int argc, char **argv); /* export.c: a range in bulk */

#endif

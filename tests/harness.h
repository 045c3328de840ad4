/*
 * The black-box harness for the daemon suites: starts the real tickslabd
 * ($TICKSLABD) in a fresh temp dir with a config of our own (ingest on
 * 127.0.0.1:0, control socket in the temp dir), talks to it over real
 * sockets, and reads its stats and its log.  Setup failures fail the test
 * (with the daemon's log); checks on answers are left to the tests.
 *
 * Nothing is left behind: daemons run in the test's process group, which
 * the runner kills, and die with the test process (PR_SET_PDEATHSIG); a
 * janitor process removes the temp dirs when the test process ends,
 * however it ends (a failed ASSERT calls _exit).  HARNESS_KEEP=1 keeps
 * the temp dirs (config, daemon.log) for a post-mortem.
 */
#ifndef TKS_HARNESS_H
#define TKS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HARNESS_READY_MS 10000 /* bound on a start */
#define HARNESS_STOP_MS 10000  /* bound on a stop */
#define HARNESS_IO_MS 5000     /* bound on one control request */

/* 1 in a build with AddressSanitizer (gcc or clang), else 0. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

struct tks_daemon {
  pid_t pid;     /* 0 once reaped */
  int exit_code; /* once reaped: see daemon_wait_exit() */
  int port;      /* ingest port, read from the stats once ready */
  char dir[64];  /* the temp dir: config, log, control socket */
  char config[128];
  char sock[108]; /* control socket path (fits sun_path) */
  char log[128];  /* the daemon's stderr */
};

/* Paths of the binaries: $TICKSLABD / $TICKSLAB, else next to the test
 * executable (../daemon/tickslabd, ../cli/tickslab). */
const char *harness_tickslabd(void);
const char *harness_tickslab(void);

/* Makes a fresh temp dir /tmp/tks-test-XXXXXX into out (n >= 24 bytes);
 * it is removed when the test process ends (HARNESS_KEEP=1 keeps it). */
void harness_mkdtemp(char *out, size_t n);
void write_file(const char *path, const char *content);
/* The whole file, malloc'd and NUL-terminated, or NULL. */
char *read_file(const char *path);

/* ---- the daemon ---- */

/* Makes d->dir and writes d->config: ingest listen 127.0.0.1:0 plus
 * ingest_extra (lines indented by two spaces, or NULL), subscribe listen
 * 127.0.0.1:0 (unless extra_yaml has a subscribe section), the control
 * socket d->sock, then extra_yaml (top-level sections, or NULL). */
void daemon_prepare(struct tks_daemon *d, const char *ingest_extra, const char *extra_yaml);
/* Rewrites d->config (e.g. after changing d->sock). */
void daemon_write_config(struct tks_daemon *d, const char *ingest_extra, const char *extra_yaml);
/* Starts tickslabd --config d->config, stderr and stdout appended to d->log.
 * env: extra "NAME=value" strings, NULL-terminated, or NULL. */
void daemon_spawn(struct tks_daemon *d, char *const env[]);
/* Waits until ping answers as a ready daemon does (not "state":"loading")
 * and reads ingest.port.  Fails the test (showing the log) if the daemon
 * exits or HARNESS_READY_MS pass. */
void daemon_wait_ready(struct tks_daemon *d);
/* prepare + spawn + wait_ready. */
void daemon_start(struct tks_daemon *d, const char *extra_yaml);
void daemon_start_with(struct tks_daemon *d, const char *ingest_extra, const char *extra_yaml);

/* Waits up to timeout_ms for the daemon to exit.  Returns its exit code,
 * 128 + signal if it was killed, or -1 if it is still running. */
int daemon_wait_exit(struct tks_daemon *d, int timeout_ms);
/* Sends sig and waits HARNESS_STOP_MS; if it is still running it is
 * killed and -1 is returned.  Otherwise as daemon_wait_exit(). */
int daemon_stop(struct tks_daemon *d, int sig);
/* Kills the daemon if still running and removes the temp dir. */
void daemon_cleanup(struct tks_daemon *d);
/* The daemon's log so far, malloc'd (never NULL). */
char *daemon_log(const struct tks_daemon *d);

/* ---- the control socket ---- */

/* A connected fd to a Unix stream socket, or -1. */
int control_connect(const char *path);
/* One request on a new connection: writes "req\n" and reads until the
 * response's terminating empty line.  Returns the response, "\n\n"
 * included, malloc'd; NULL if the connection fails or times out. */
char *daemon_request(const struct tks_daemon *d, const char *req);
/* The same for an answer of any size (a long range): reads until its
 * empty line, scanning only what is new, for up to timeout_ms.  NULL if
 * the connection fails or the answer is not complete in time. */
char *daemon_request_big(const struct tks_daemon *d, const char *req, int timeout_ms);
/* Reads from fd until `count` occurrences of needle were read (count 0:
 * until EOF), EOF, or timeout.  Returns what was read (never NULL);
 * *eof (if given) tells whether EOF (or a reset) was seen. */
char *read_until(int fd, const char *needle, int count, int timeout_ms, bool *eof);

/* Looks path up in `stats text` output: the value after "path ", copied
 * to out.  Returns 0 or -1 if the line is absent. */
int stats_text_lookup(const char *text, const char *path, char *out, size_t n);
/* One stat as a number, from a fresh `stats text`.  Returns 0 or -1. */
int daemon_stat_get(const struct tks_daemon *d, const char *path, uint64_t *out);
/* Same, failing the test if the stat is absent. */
uint64_t daemon_stat(const struct tks_daemon *d, const char *path);
/* Polls until the stat reaches at least `want` or timeout_ms pass; returns
 * the last value seen. */
uint64_t daemon_wait_stat(const struct tks_daemon *d, const char *path, uint64_t want,
                          int timeout_ms);
/* Waits for the stat to reach `want`, then checks, after a short settle,
 * that it is exactly `want`; fails the test naming the stat otherwise. */
void daemon_expect_stat(const struct tks_daemon *d, const char *path, uint64_t want,
                        int timeout_ms);

/* Checks that text is one JSON value (trailing white space allowed) and
 * flattens it to `stats text` form: one "dotted.path value" line per
 * scalar (strings unquoted, array elements by index), so that
 * stats_text_lookup() works on it.  Returns malloc'd text, or NULL if the
 * JSON is invalid. */
char *json_flatten(const char *text);

/* ---- README.md's stats tables ---- */

/* The names documented in the first column of the table that follows the
 * text `heading` in README.md ("a.{b,c}" stands for a.b and a.c), at most
 * max, strdup'ed into names.  Returns how many; fails the test without one. */
unsigned readme_stat_names(const char *heading, char **names, unsigned max);
/* A README name against an emitted path: a "<...>" component matches any
 * one component of the path. */
bool stat_name_matches(const char *pattern, const char *path);
/* Both ways: every emitted path documented, every documented name emitted.
 * Prints each one that is not; returns how many. */
unsigned stat_names_compare(char **doc, unsigned ndoc, char **got, unsigned ngot);
/* The daemon's stats whose path begins with prefix ("kafka.source.")
 * against the README table after heading, both ways; fails the test when
 * either has fewer than min names.  Returns how many do not match. */
unsigned stats_match_readme(const struct tks_daemon *d, const char *prefix, const char *heading,
                            unsigned min);

/* ---- the ingest port ---- */

/* A TCP connection to the daemon's ingest port (TCP_NODELAY); fails the test. */
int daemon_connect_ingest(const struct tks_daemon *d);
/* Writes all n bytes.  Returns 0, or -1 (errno set) if the peer is gone. */
int send_all(int fd, const void *p, size_t n);
/* Waits for the peer to close: reads and drops data until EOF or a reset.
 * Returns true if the connection ended within timeout_ms. */
bool wait_closed(int fd, int timeout_ms);
/* The local port of a connected socket. */
int local_port(int fd);

/* ---- other programs ---- */

struct cmd_result {
  int code;  /* as daemon_wait_exit(); -1: killed after the timeout */
  char *out; /* stdout, malloc'd, NUL-terminated */
  char *err; /* stderr */
};
/* Runs argv[0] with argv, extra env (NULL-terminated, or NULL), stdin from
 * stdin_path (NULL: /dev/null), and captures both outputs. */
void run_cmd(char *const argv[], char *const env[], const char *stdin_path, int timeout_ms,
             struct cmd_result *r);
void cmd_result_finish(struct cmd_result *r);

/* A child process of parent (the daemon's forked checkpoint or seal
 * writer), looked for in /proc for up to timeout_ms; 0 if none. */
pid_t harness_child_of(pid_t parent, int timeout_ms);

/* ---- a Kafka cluster (tests/kafka_mock.c, librdkafka's mock cluster) ---- */

struct kafka_mock {
  pid_t pid;
  int in, out;          /* its stdin (commands), its stdout (answers) */
  char bootstraps[512]; /* "127.0.0.1:P1,127.0.0.1:P2,..." */
};
/* Starts $KAFKA_MOCK (next to the test executable otherwise) with its
 * arguments ("--brokers", "3", "ticks:6", NULL-terminated), waits for its
 * bootstraps; the test fails when it cannot.  The process ends with the
 * test's. */
void kafka_mock_start(struct kafka_mock *m, const char *const args[]);
/* Sends one command ("down 1", "up 1", "topic t 3") and fails the test
 * unless it answers ok. */
void kafka_mock_cmd(struct kafka_mock *m, const char *cmd);
void kafka_mock_stop(struct kafka_mock *m);
/* $KCAT, else kcat on PATH; NULL when there is none. */
const char *harness_kcat(void);

/* Milliseconds on the monotonic clock, and a sleep. */
uint64_t now_ms(void);
void sleep_ms(int ms);

#endif

/*
 * Black-box tests of tickslabd's life: the command line (--help,
 * --version, --check-config, unknown options), refusing a bad config with
 * FILE:LINE:COL before listening on anything, the systemd notify protocol
 * (READY=1 once serving, STOPPING=1 on the way out), a clean exit 0 on
 * SIGTERM and SIGINT, even with clients streaming, SIGHUP reloads (live keys
 * applied, fixed ones refused, a bad file kept out, RELOADING=1 then
 * READY=1), watchdog pings, idle ingest clients closed, and the log lines
 * (sd-daemon priorities under journald, else UTC timestamps).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "config.h"
#include "encode.h"
#include "harness.h"
#include "test.h"

#define TS0 INT64_C(1700000000000000000)

static void run_daemon(char *const args[], struct cmd_result *r) {
  char *argv[8] = {(char *)harness_tickslabd()};
  for (int i = 0; args[i] && i < 6; i++) argv[i + 1] = args[i];
  run_cmd(argv, NULL, NULL, 10000, r);
}

/* True if something accepts TCP connections on 127.0.0.1:port. */
static bool tcp_listening(int port) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  close(fd);
  return ok;
}

/* A port that was free a moment ago. */
static int free_port(void) {
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  int port = local_port(fd);
  close(fd);
  return port;
}

static void expect_stops_cleanly_on(int sig) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct stat st;
  ASSERT_EQ(stat(d.sock, &st), 0);
  int port = d.port;
  int code = daemon_stop(&d, sig);
  if (code != 0) {
    char *log = daemon_log(&d);
    TEST_FAIL("exit %d after signal %d, want 0; log:\n%s", code, sig, log);
  }
  errno = 0;
  ASSERT_EQ(stat(d.sock, &st), -1);
  ASSERT_EQ(errno, ENOENT);
  ASSERT(!tcp_listening(port));
  daemon_cleanup(&d);
}

TEST(sigterm_exits_0_and_removes_the_socket_file) { expect_stops_cleanly_on(SIGTERM); }

TEST(sigint_exits_0_and_removes_the_socket_file) { expect_stops_cleanly_on(SIGINT); }

TEST(version_prints_the_name_and_version) {
  struct cmd_result r;
  run_daemon((char *[]){"--version", NULL}, &r);
  ASSERT_EQ(r.code, 0);
  ASSERT_CONTAINS(r.out, "tickslabd 0.1.0");
  cmd_result_finish(&r);
}

TEST(help_prints_usage_on_stdout) {
  struct cmd_result r;
  run_daemon((char *[]){"--help", NULL}, &r);
  ASSERT_EQ(r.code, 0);
  ASSERT_CONTAINS(r.out, "--config");
  ASSERT_CONTAINS(r.out, "--check-config");
  ASSERT(strcasestr(r.out, "usage"));
  cmd_result_finish(&r);
}

TEST(help_lists_every_key_a_reload_applies) {
  struct cmd_result r;
  run_daemon((char *[]){"--help", NULL}, &r);
  ASSERT_EQ(r.code, 0);
  size_t n;
  const struct tks_config_key *keys = tks_config_keys(&n);
  for (size_t i = 0; i < n; i++)
    if (keys[i].reload != TKS_RELOAD_FIXED) ASSERT_CONTAINS(r.out, keys[i].name);
  ASSERT_CONTAINS(r.out, "and logs the others as refused.\n");
  cmd_result_finish(&r);
}

TEST(unknown_option_exits_2) {
  struct cmd_result r;
  run_daemon((char *[]){"--frobnicate", NULL}, &r);
  ASSERT_EQ(r.code, 2);
  ASSERT(r.err[0] != '\0');
  cmd_result_finish(&r);
}

TEST(check_config_accepts_a_good_file) {
  char dir[64], path[128];
  harness_mkdtemp(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/good.yaml", dir);
  write_file(path, "# every key the contract names\n"
                   "ingest:\n"
                   "  listen: \"127.0.0.1:0\"\n"
                   "  max_connections: 1024\n"
                   "  max_message_bytes: 65536\n"
                   "  read_buffer: 256KiB\n"
                   "control:\n"
                   "  socket: /tmp/nowhere/control.sock\n"
                   "store:\n"
                   "  mode: slotted\n"
                   "  page_size: 1MiB\n"
                   "  growth_factor: 1.25\n"
                   "  max_symbols: 1000000\n"
                   "  max_strings: 65536\n"
                   "log:\n"
                   "  level: info\n");
  struct cmd_result r;
  run_daemon((char *[]){"--config", path, "--check-config", NULL}, &r);
  if (r.code != 0) TEST_FAIL("exit %d, stderr: %s", r.code, r.err);
  cmd_result_finish(&r);
  write_file(path, ""); /* every key is optional */
  run_daemon((char *[]){"--config", path, "--check-config", NULL}, &r);
  if (r.code != 0) TEST_FAIL("empty file: exit %d, stderr: %s", r.code, r.err);
  cmd_result_finish(&r);
}

TEST(check_config_accepts_the_shipped_config) {
  const char *root = getenv("TKS_SOURCE_ROOT");
  char path[512];
  snprintf(path, sizeof path, "%s/config/tickslab.yaml", root ? root : ".");
  if (access(path, R_OK) != 0) TEST_FAIL("%s: %s", path, strerror(errno));
  struct cmd_result r;
  run_daemon((char *[]){"--config", path, "--check-config", NULL}, &r);
  if (r.code != 0) TEST_FAIL("exit %d, stderr: %s", r.code, r.err);
  cmd_result_finish(&r);
}

/* stderr has "path:line:col:" with the given line (col > 0, not checked if 0). */
static void expect_position(const char *err, const char *path, int line, int col) {
  const char *p = strstr(err, path);
  if (!p) TEST_FAIL("stderr does not name %s: \"%s\"", path, err);
  int l = -1, c = -1, n = 0;
  if (sscanf(p + strlen(path), ":%d:%d:%n", &l, &c, &n) != 2 || n == 0)
    TEST_FAIL("stderr has no FILE:LINE:COL: \"%s\"", err);
  if (line && l != line) TEST_FAIL("line %d, want %d: \"%s\"", l, line, err);
  if (col && c != col) TEST_FAIL("column %d, want %d: \"%s\"", c, col, err);
  if (c < 1) TEST_FAIL("column %d, want a 1-based column: \"%s\"", c, err);
}

TEST(check_config_reports_file_line_and_column_of_an_unknown_key) {
  char dir[64], path[128];
  harness_mkdtemp(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/bad.yaml", dir);
  write_file(path, "ingest:\n"
                   "  listen: \"127.0.0.1:0\"\n"
                   "  bogus_key: 1\n"
                   "log:\n"
                   "  level: info\n");
  struct cmd_result r;
  run_daemon((char *[]){"--config", path, "--check-config", NULL}, &r);
  ASSERT_EQ(r.code, 2);
  expect_position(r.err, path, 3, 3);
  ASSERT_CONTAINS(r.err, "bogus_key");
  cmd_result_finish(&r);
}

TEST(check_config_refuses_each_bad_file_at_its_line) {
  static const struct {
    const char *yaml;
    int line; /* 0: any */
  } bad[] = {
      {"log:\n  level: info\nfrobnicate:\n  x: 1\n", 3},
      {"store:\n  mode: sideways\n", 2},
      {"store:\n  page_size: 12 parsecs\n", 2},
      {"ingest:\n  max_connections: lots\n", 2},
      {"ingest:\n  max_connections: -5\n", 2},
      {"ingest:\n  max_message_bytes: 99999999999999999999999\n", 2},
      {"log:\n  level: chatty\n", 2},
      {"store:\n  growth_factor: 0.5\n", 2},
      {"ingest:\n  listen: \"127.0.0.1:99999\"\n", 2},
      {"ingest: [1, 2]\n", 1},
      {"ingest:\n  listen: [unclosed\n", 0},
      {"ingest:\n\tlisten: tab\n", 0},
  };
  char dir[64], path[128];
  harness_mkdtemp(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/bad.yaml", dir);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_file(path, bad[i].yaml);
    struct cmd_result r;
    run_daemon((char *[]){"--config", path, "--check-config", NULL}, &r);
    if (r.code != 2) TEST_FAIL("exit %d, want 2, for:\n%sstderr: %s", r.code, bad[i].yaml, r.err);
    expect_position(r.err, path, bad[i].line, 0);
    cmd_result_finish(&r);
  }
}

TEST(start_with_a_bad_config_exits_2_and_listens_on_nothing) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  int port = free_port();
  char yaml[512];
  snprintf(yaml, sizeof yaml,
           "ingest:\n"
           "  listen: \"127.0.0.1:%d\"\n"
           "control:\n"
           "  socket: \"%s\"\n"
           "store:\n"
           "  mode: sideways\n",
           port, d.sock);
  write_file(d.config, yaml);
  daemon_spawn(&d, NULL);
  int code = daemon_wait_exit(&d, HARNESS_STOP_MS);
  char *log = daemon_log(&d);
  if (code != 2) TEST_FAIL("exit %d, want 2; log:\n%s", code, log);
  expect_position(log, d.config, 6, 0);
  free(log);
  ASSERT(!tcp_listening(port));
  ASSERT_EQ(access(d.sock, F_OK), -1);
  daemon_cleanup(&d);
}

TEST(log_lines_name_the_daemon_and_its_pid) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  char *log = daemon_log(&d);
  char prefix[64];
  snprintf(prefix, sizeof prefix, "tickslabd[%d]: info: ", (int)d.pid);
  ASSERT_CONTAINS(log, prefix);
  free(log);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  daemon_cleanup(&d);
}

TEST(missing_config_file_is_refused_naming_it) {
  char dir[64], path[128];
  harness_mkdtemp(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/no-such.yaml", dir);
  struct cmd_result r;
  run_daemon((char *[]){"--config", path, "--check-config", NULL}, &r);
  if (r.code != 2) TEST_FAIL("--check-config: exit %d, want 2; stderr: %s", r.code, r.err);
  ASSERT_CONTAINS(r.err, path);
  cmd_result_finish(&r);
  run_daemon((char *[]){"--config", path, NULL}, &r);
  if (r.code != 2) TEST_FAIL("start: exit %d, want 2; stderr: %s", r.code, r.err);
  ASSERT_CONTAINS(r.err, path);
  cmd_result_finish(&r);
}

TEST(sigterm_with_idle_and_half_sent_clients_exits_0_promptly) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  int idle_ctl = control_connect(d.sock);
  int half_ctl = control_connect(d.sock);
  ASSERT(idle_ctl >= 0 && half_ctl >= 0);
  ASSERT_EQ(send_all(half_ctl, "sta", 3), 0);
  int idle_tcp = daemon_connect_ingest(&d);
  int half_tcp = daemon_connect_ingest(&d);
  ASSERT_EQ(send_all(half_tcp, "\x85\xa6tick", 6), 0); /* a tick cut short */
  sleep_ms(100);
  int code = daemon_stop(&d, SIGTERM);
  if (code != 0) {
    char *log = daemon_log(&d);
    TEST_FAIL("exit %d after SIGTERM, want 0 (-1: still running after %d ms); log:\n%s", code,
              HARNESS_STOP_MS, log);
  }
  ASSERT_EQ(access(d.sock, F_OK), -1);
  ASSERT(wait_closed(idle_tcp, 1000));
  close(idle_ctl);
  close(half_ctl);
  close(idle_tcp);
  close(half_tcp);
  daemon_cleanup(&d);
}

/* ---- systemd notify ---- */

/* Collects datagrams into all (with '\n' between) until one has the
 * line `want`; returns false on timeout. */
static bool await_notify(int fd, const char *want, char *all, size_t n, int timeout_ms) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    uint64_t now = now_ms();
    if (now >= deadline) return false;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, (int)(deadline - now)) <= 0) continue;
    char msg[1024];
    ssize_t r = recv(fd, msg, sizeof msg - 1, 0);
    if (r <= 0) continue;
    msg[r] = '\0';
    size_t used = strlen(all);
    snprintf(all + used, n - used, "%s\n", msg);
    for (char *line = strtok(msg, "\n"); line; line = strtok(NULL, "\n"))
      if (!strcmp(line, want)) return true;
  }
}

static void expect_ready_and_stopping(struct tks_daemon *d, int fd, const char *notify_env) {
  char env[160];
  snprintf(env, sizeof env, "NOTIFY_SOCKET=%s", notify_env);
  char *envv[] = {env, NULL};
  daemon_spawn(d, envv);
  char all[8192] = "";
  if (!await_notify(fd, "READY=1", all, sizeof all, 10000)) {
    char *log = daemon_log(d);
    TEST_FAIL("no READY=1 within 10 s; got \"%s\"; log:\n%s", all, log);
  }
  char *r = daemon_request(d, "ping"); /* ready means serving */
  ASSERT_STR_EQ(r, "{\"ok\":true}\n\n");
  free(r);
  kill(d->pid, SIGTERM);
  if (!await_notify(fd, "STOPPING=1", all, sizeof all, 10000))
    TEST_FAIL("no STOPPING=1 within 10 s after SIGTERM; got \"%s\"", all);
  ASSERT_EQ(daemon_wait_exit(d, HARNESS_STOP_MS), 0);
  ASSERT_CONTAINS(all, "STATUS=");
  ASSERT(strstr(all, "READY=1") < strstr(all, "STOPPING=1"));
}

TEST(notify_socket_gets_ready_then_stopping) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char path[128];
  snprintf(path, sizeof path, "%s/notify.sock", d.dir);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  strcpy(sa.sun_path, path);
  ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  expect_ready_and_stopping(&d, fd, path);
  close(fd);
  daemon_cleanup(&d);
}

TEST(notify_socket_may_be_an_abstract_name) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  char name[96];
  snprintf(name, sizeof name, "tks-test-notify-%d-%llu", (int)getpid(),
           (unsigned long long)now_ms());
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  memcpy(sa.sun_path + 1, name, strlen(name)); /* sun_path[0] == 0: abstract */
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
  ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, len), 0);
  char at[100];
  snprintf(at, sizeof at, "@%s", name);
  expect_ready_and_stopping(&d, fd, at);
  close(fd);
  daemon_cleanup(&d);
}

/* ---- stopping under load ---- */

/* Five clients write a batch of 5000 ticks over and over, SIGTERM comes
 * mid-stream, and the daemon must be gone within HARNESS_STOP_MS.  Without
 * ts the ticks are stamped on receipt, in order.  With `late`, 300000
 * ticks from later on are stored first, so that every streamed tick is
 * late (older than the last of its symbol), as in a backfill. */
static void stream_then_sigterm(bool late) {
  struct tks_daemon d;
  daemon_start(&d, NULL);
  struct tks_buf b;
  tks_buf_init(&b);
  if (late) {
    for (int i = 0; i < 300000; i++) {
      struct tks_kv kv[] = {
          {"ticker", {.type = TKS_V_STR, .v.s = {"LOAD", 4}}},
          {"price", {.type = TKS_V_F64, .v.f = 1.0}},
          {"volume", {.type = TKS_V_INT, .v.i = 1}},
          {"ts", {.type = TKS_V_INT, .v.i = TS0 + INT64_C(1000000000000) + i}},
      };
      ASSERT_EQ(tks_encode_map(&b, kv, 4), 0);
    }
    int fd = daemon_connect_ingest(&d);
    ASSERT_EQ(send_all(fd, b.data, b.len), 0);
    daemon_expect_stat(&d, "ticks.accepted", 300000, 30000);
    close(fd);
    b.len = 0;
  }
  uint64_t base = daemon_stat(&d, "ticks.accepted");
  for (int i = 0; i < 5000; i++) {
    struct tks_kv kv[] = {
        {"ticker", {.type = TKS_V_STR, .v.s = {"LOAD", 4}}},
        {"price", {.type = TKS_V_F64, .v.f = 1.0 + i}},
        {"volume", {.type = TKS_V_INT, .v.i = i}},
        {"ts", {.type = TKS_V_INT, .v.i = TS0 + i}},
    };
    ASSERT_EQ(tks_encode_map(&b, kv, late ? 4 : 3), 0);
  }
  int fds[5];
  size_t off[5] = {0};
  for (int c = 0; c < 5; c++) {
    fds[c] = daemon_connect_ingest(&d);
    fcntl(fds[c], F_SETFL, fcntl(fds[c], F_GETFL) | O_NONBLOCK);
  }
  /* SIGTERM once 20000 more ticks are in, or after 10 s in any case. */
  bool signalled = false;
  uint64_t start = now_ms(), sent_at = 0, last_check = 0, acc = base, slowest = 0;
  int unanswered = 0;
  while (daemon_wait_exit(&d, 0) < 0 && d.pid) {
    uint64_t now = now_ms();
    if (!signalled && now - last_check > 50) {
      uint64_t cur;
      if (daemon_stat_get(&d, "ticks.accepted", &cur) == 0)
        acc = cur;
      else
        unanswered++;
      last_check = now_ms();
      if (last_check - now > slowest) slowest = last_check - now;
      if (acc >= base + 20000 || last_check - start > 10000) {
        kill(d.pid, SIGTERM);
        signalled = true;
        sent_at = now = now_ms();
      }
    }
    if (signalled && now - sent_at > HARNESS_STOP_MS) {
      daemon_stop(&d, SIGKILL);
      char *log = daemon_log(&d);
      TEST_FAIL("still running %d ms after SIGTERM with clients streaming (%llu ticks in "
                "before it; `stats text` took up to %llu ms, %d unanswered); log:\n%s",
                HARNESS_STOP_MS, (unsigned long long)(acc - base), (unsigned long long)slowest,
                unanswered, log);
    }
    for (int c = 0; c < 5; c++) {
      if (fds[c] < 0) continue;
      ssize_t w = send(fds[c], b.data + off[c], b.len - off[c], MSG_NOSIGNAL);
      if (w > 0) off[c] = (off[c] + (size_t)w) % b.len;
      else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        close(fds[c]); /* the daemon hung up on its way out */
        fds[c] = -1;
      }
    }
    sleep_ms(1);
  }
  int code = daemon_wait_exit(&d, 0);
  if (!signalled) {
    char *log = daemon_log(&d);
    TEST_FAIL("exited with %d under load, before any signal; log:\n%s", code, log);
  }
  if (code != 0) {
    char *log = daemon_log(&d);
    TEST_FAIL("exit %d after SIGTERM under load, want 0; log:\n%s", code, log);
  }
  ASSERT_EQ(access(d.sock, F_OK), -1);
  for (int c = 0; c < 5; c++)
    if (fds[c] >= 0) close(fds[c]);
  tks_buf_finish(&b);
  daemon_cleanup(&d);
}

TEST_TIMEOUT(sigterm_while_five_clients_stream_exits_0_promptly, 60) { stream_then_sigterm(false); }

TEST_TIMEOUT(sigterm_while_five_clients_stream_late_ticks_exits_0_promptly, 90) {
  stream_then_sigterm(true);
}

/* ---- SIGHUP reload, watchdog, idle clients ---- */

/* A config of our own: like the harness's, but with any listen address. */
static void write_config_listen(const struct tks_daemon *d, const char *listen, const char *extra) {
  char yaml[2048];
  snprintf(yaml, sizeof yaml,
           "ingest:\n"
           "  listen: \"%s\"\n"
           "control:\n"
           "  socket: \"%s\"\n"
           "journal:\n"
           "  enabled: false\n"
           "%s"
           "subscribe:\n"
           "  listen: \"127.0.0.1:0\"\n",
           listen, d->sock, extra ? extra : "");
  write_file(d->config, yaml);
}

/* Polls the daemon's log until it holds needle; returns the log (malloc'd). */
static char *await_log(const struct tks_daemon *d, const char *needle, int timeout_ms) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    char *log = daemon_log(d);
    if (strstr(log, needle)) return log;
    if (now_ms() >= deadline)
      TEST_FAIL("no \"%s\" in the log within %d ms; log:\n%s", needle, timeout_ms, log);
    free(log);
    sleep_ms(20);
  }
}

static void send_tick(int fd, const char *sym, int64_t ts) {
  struct tks_buf b;
  tks_buf_init(&b);
  struct tks_kv kv[] = {
      {"ticker", {.type = TKS_V_STR, .v.s = {sym, strlen(sym)}}},
      {"ts", {.type = TKS_V_INT, .v.i = ts}},
      {"price", {.type = TKS_V_F64, .v.f = 1.5}},
      {"volume", {.type = TKS_V_INT, .v.i = 1}},
  };
  ASSERT_EQ(tks_encode_map(&b, kv, TKS_ARRAY_SIZE(kv)), 0);
  ASSERT_EQ(send_all(fd, b.data, b.len), 0);
  tks_buf_finish(&b);
}

static int count_lines(const char *s, const char *prefix) {
  int n = 0;
  size_t len = strlen(prefix);
  for (const char *p = s; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (!strncmp(p, prefix, len)) n++;
  return n;
}

TEST(sighup_reload_changes_a_live_key_and_refuses_a_fixed_one) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  write_config_listen(&d, "127.0.0.1:0", "query:\n  max_rows: 5\nlog:\n  level: info\n");
  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);
  int fd = daemon_connect_ingest(&d);
  for (int i = 0; i < 10; i++) send_tick(fd, "AAPL", TS0 + i);
  daemon_expect_stat(&d, "ticks.stored", 10, 10000);
  char *r = daemon_request(&d, "last AAPL 100");
  ASSERT_CONTAINS(r, "{\"truncated\":true,\"max_rows\":5}");
  free(r);

  int old_port = d.port, new_port = free_port();
  char listen[64];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", new_port);
  write_config_listen(&d, listen, "query:\n  max_rows: 7\nlog:\n  level: debug\n");
  ASSERT_EQ(kill(d.pid, SIGHUP), 0);
  char *log = await_log(&d, "reload: applied", 10000);
  char want[256];
  snprintf(want, sizeof want,
           "reload: ingest.listen changed (127.0.0.1:0 -> %s): needs a restart, keeping the "
           "running value\n",
           listen);
  ASSERT_CONTAINS(log, want);
  ASSERT_CONTAINS(log, "reload: query.max_rows 5 -> 7\n");
  ASSERT_CONTAINS(log, "reload: log.level info -> debug\n");
  ASSERT_CONTAINS(log, "reload: applied 2 changes, refused 1\n");
  free(log);

  r = daemon_request(&d, "last AAPL 100");
  ASSERT_CONTAINS(r, "{\"truncated\":true,\"max_rows\":7}");
  ASSERT_EQ(count_lines(r, "{\"ts\":"), 7);
  free(r);
  ASSERT_U64_EQ(daemon_stat(&d, "lifecycle.reloads"), 1);
  ASSERT_U64_EQ(daemon_stat(&d, "lifecycle.reload_errors"), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "ingest.port"), old_port);
  ASSERT(tcp_listening(old_port));
  ASSERT(!tcp_listening(new_port));
  /* The connection made before the reload still feeds the store. */
  send_tick(fd, "AAPL", TS0 + 10);
  daemon_expect_stat(&d, "ticks.stored", 11, 10000);
  close(fd);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  daemon_cleanup(&d);
}

TEST(sighup_with_a_bad_config_keeps_running_and_says_why) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, NULL);
  write_config_listen(&d, "127.0.0.1:0", "query:\n  max_rows: 5\n");
  daemon_spawn(&d, NULL);
  daemon_wait_ready(&d);
  write_config_listen(&d, "127.0.0.1:0", "query:\n  max_rows: lots\n");
  ASSERT_EQ(kill(d.pid, SIGHUP), 0);
  char *log = await_log(&d, "reload failed", 10000);
  const char *line = strstr(log, "reload failed");
  /* query: is on line 7 of write_config_listen()'s file, max_rows on line 8. */
  char where[192];
  snprintf(where, sizeof where, "%s:8:", d.config);
  ASSERT_CONTAINS(line, where);
  ASSERT_CONTAINS(line, "query.max_rows");
  ASSERT_CONTAINS(log, "error: reload failed, keeping the running config: ");
  free(log);
  daemon_expect_stat(&d, "lifecycle.reload_errors", 1, 5000);
  ASSERT_U64_EQ(daemon_stat(&d, "lifecycle.reloads"), 0);
  char *r = daemon_request(&d, "ping");
  ASSERT_STR_EQ(r, "{\"ok\":true}\n\n");
  free(r);
  /* Still on the old values: max_rows 5. */
  int fd = daemon_connect_ingest(&d);
  for (int i = 0; i < 6; i++) send_tick(fd, "MSFT", TS0 + i);
  daemon_expect_stat(&d, "ticks.stored", 6, 10000);
  close(fd);
  r = daemon_request(&d, "last MSFT 100");
  ASSERT_CONTAINS(r, "{\"truncated\":true,\"max_rows\":5}");
  free(r);
  /* A good file afterwards is taken. */
  write_config_listen(&d, "127.0.0.1:0", "query:\n  max_rows: 6\n");
  ASSERT_EQ(kill(d.pid, SIGHUP), 0);
  free(await_log(&d, "reload: applied 1 change, refused 0", 10000));
  ASSERT_U64_EQ(daemon_stat(&d, "lifecycle.reloads"), 1);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  daemon_cleanup(&d);
}

/* A datagram socket at dir/notify.sock for NOTIFY_SOCKET; env gets the
 * "NOTIFY_SOCKET=..." string. */
static int notify_listener(const struct tks_daemon *d, char *env, size_t n) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s/notify.sock", d->dir);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT(fd >= 0);
  ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  snprintf(env, n, "NOTIFY_SOCKET=%s", sa.sun_path);
  return fd;
}

static uint64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

TEST(notify_sees_reloading_then_ready_on_sighup) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, "journal:\n  enabled: false\n");
  char env[160];
  int fd = notify_listener(&d, env, sizeof env);
  daemon_spawn(&d, (char *[]){env, NULL});
  char all[8192] = "";
  if (!await_notify(fd, "READY=1", all, sizeof all, 10000)) {
    char *log = daemon_log(&d);
    TEST_FAIL("no READY=1 within 10 s; got \"%s\"; log:\n%s", all, log);
  }
  /* The status line at READY: rate, ticks held, memory, connections. */
  const char *status = strstr(all, "STATUS=");
  ASSERT(status);
  ASSERT_CONTAINS(status, " ticks/s, ");
  ASSERT_CONTAINS(status, " ticks held, ");
  ASSERT_CONTAINS(status, " MiB, ");
  ASSERT_CONTAINS(status, " connections");

  all[0] = '\0';
  uint64_t before_us = mono_us();
  ASSERT_EQ(kill(d.pid, SIGHUP), 0);
  if (!await_notify(fd, "READY=1", all, sizeof all, 10000))
    TEST_FAIL("no READY=1 within 10 s after SIGHUP; got \"%s\"", all);
  uint64_t after_us = mono_us();
  const char *rel = strstr(all, "RELOADING=1\nMONOTONIC_USEC=");
  if (!rel) TEST_FAIL("no RELOADING=1 with MONOTONIC_USEC= in one datagram; got \"%s\"", all);
  ASSERT(rel < strstr(all, "READY=1"));
  unsigned long long usec = strtoull(rel + strlen("RELOADING=1\nMONOTONIC_USEC="), NULL, 10);
  if (usec < before_us || usec > after_us)
    TEST_FAIL("MONOTONIC_USEC=%llu is not between %llu and %llu (CLOCK_MONOTONIC in us)", usec,
              (unsigned long long)before_us, (unsigned long long)after_us);
  ASSERT_CONTAINS(strstr(all, "READY=1"), "STATUS=");
  char *r = daemon_request(&d, "ping");
  ASSERT_STR_EQ(r, "{\"ok\":true}\n\n");
  free(r);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  close(fd);
  daemon_cleanup(&d);
}

/* Counts WATCHDOG=1 datagrams for ms milliseconds. */
static int count_watchdog(int fd, int ms) {
  int n = 0;
  uint64_t deadline = now_ms() + (uint64_t)ms;
  for (uint64_t now; (now = now_ms()) < deadline;) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, (int)(deadline - now)) <= 0) continue;
    char msg[1024];
    ssize_t r = recv(fd, msg, sizeof msg - 1, 0);
    if (r <= 0) continue;
    msg[r] = '\0';
    for (char *line = strtok(msg, "\n"); line; line = strtok(NULL, "\n"))
      if (!strcmp(line, "WATCHDOG=1")) n++;
  }
  return n;
}

TEST(watchdog_pings_arrive_at_half_the_interval) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, "journal:\n  enabled: false\n");
  char env[160];
  int fd = notify_listener(&d, env, sizeof env);
  daemon_spawn(&d, (char *[]){env, "WATCHDOG_USEC=400000", NULL});
  char all[8192] = "";
  if (!await_notify(fd, "READY=1", all, sizeof all, 10000)) {
    char *log = daemon_log(&d);
    TEST_FAIL("no READY=1 within 10 s; got \"%s\"; log:\n%s", all, log);
  }
  int n = count_watchdog(fd, 1000);
  if (n < 2) TEST_FAIL("%d WATCHDOG=1 in 1 s with WATCHDOG_USEC=400000, want at least 2", n);
  if (n > 8) TEST_FAIL("%d WATCHDOG=1 in 1 s with WATCHDOG_USEC=400000, want about 5", n);
  ASSERT_U64_EQ(daemon_stat(&d, "lifecycle.watchdog_usec"), 400000);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  close(fd);
  daemon_cleanup(&d);
}

TEST(watchdog_is_off_when_watchdog_pid_names_another_process) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, "journal:\n  enabled: false\n");
  char env[160];
  int fd = notify_listener(&d, env, sizeof env);
  daemon_spawn(&d, (char *[]){env, "WATCHDOG_USEC=200000", "WATCHDOG_PID=1", NULL});
  char all[8192] = "";
  ASSERT(await_notify(fd, "READY=1", all, sizeof all, 10000));
  ASSERT_EQ(count_watchdog(fd, 500), 0);
  ASSERT_U64_EQ(daemon_stat(&d, "lifecycle.watchdog_usec"), 0);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  close(fd);
  daemon_cleanup(&d);
}

TEST(idle_client_is_closed_after_idle_timeout) {
  struct tks_daemon d;
  daemon_start_with(&d, "  idle_timeout: 1s\n", "journal:\n  enabled: false\n");
  int idle = daemon_connect_ingest(&d);
  int active = daemon_connect_ingest(&d);
  uint64_t start = now_ms(), idle_closed_at = 0;
  int sent = 0;
  /* The active client sends a tick every 200 ms for 3.5 s. */
  while (now_ms() - start < 3500) {
    send_tick(active, "IBM", TS0 + sent++);
    struct pollfd pfd = {.fd = idle, .events = POLLIN};
    if (!idle_closed_at && poll(&pfd, 1, 200) > 0) {
      char buf[64];
      ssize_t r = recv(idle, buf, sizeof buf, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN)) idle_closed_at = now_ms();
    } else {
      sleep_ms(200);
    }
  }
  if (!idle_closed_at) {
    char *log = daemon_log(&d);
    TEST_FAIL("the idle client was not closed within 3.5 s (idle_timeout 1s); log:\n%s", log);
  }
  if (idle_closed_at - start > 3000)
    TEST_FAIL("the idle client was closed after %llu ms, want within ~3 s",
              (unsigned long long)(idle_closed_at - start));
  if (idle_closed_at - start < 900)
    TEST_FAIL("the idle client was closed after %llu ms, before the 1 s timeout",
              (unsigned long long)(idle_closed_at - start));
  /* The active one is still open and everything it sent was taken. */
  struct pollfd pfd = {.fd = active, .events = POLLIN | POLLRDHUP};
  ASSERT_EQ(poll(&pfd, 1, 0), 0);
  daemon_expect_stat(&d, "ticks.accepted", (uint64_t)sent, 10000);
  ASSERT_U64_EQ(daemon_stat(&d, "connections.current"), 1);
  ASSERT_U64_EQ(daemon_stat(&d, "lifecycle.idle_closed"), 1);
  close(idle);
  close(active);
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  daemon_cleanup(&d);
}

/* ---- log lines: for journald, or with a timestamp ---------------------- */

/* Starts a daemon at log.level debug, with JOURNAL_STREAM set to
 * journal_stream (NULL: "DEV:INODE" of its own log file, as systemd sets
 * it; "": not set by the test), then makes it log at every level: a checkpoint (its
 * fork is a debug line), a reload refusing a fixed key (warn), a reload of
 * a broken file (error).  Returns the log once stopped (malloc'd). */
static char *log_at_every_level(const char *journal_stream) {
  struct tks_daemon d;
  daemon_prepare(&d, NULL, "log:\n  level: debug\n");
  write_file(d.log, "");
  struct stat st;
  ASSERT_EQ(stat(d.log, &st), 0);
  char env[96];
  if (!journal_stream)
    snprintf(env, sizeof env, "JOURNAL_STREAM=%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
  else
    snprintf(env, sizeof env, "JOURNAL_STREAM=%s", journal_stream);
  char *envv[] = {env, NULL};
  /* "": not set here (one the test inherited names another file). */
  daemon_spawn(&d, !journal_stream || *journal_stream ? envv : NULL);
  daemon_wait_ready(&d);
  char *r = daemon_request(&d, "checkpoint");
  ASSERT(r && !strstr(r, "error"));
  free(r);
  daemon_write_config(&d, NULL, "log:\n  level: debug\nstore:\n  mode: dynamic\n");
  ASSERT_EQ(kill(d.pid, SIGHUP), 0);
  free(await_log(&d, "needs a restart", 10000));
  daemon_write_config(&d, NULL, "log:\n  level: loud\n");
  ASSERT_EQ(kill(d.pid, SIGHUP), 0);
  free(await_log(&d, "reload failed", 10000));
  ASSERT_EQ(daemon_stop(&d, SIGTERM), 0);
  char *log = daemon_log(&d);
  daemon_cleanup(&d);
  return log;
}

static const char *const level_words[] = {"error", "warn", "info", "debug"};
static const int level_prio[] = {3, 4, 6, 7};

/* The index of the level word at p ("warn: ..."), or -1. */
static int level_at(const char *p) {
  for (int i = 0; i < 4; i++) {
    size_t n = strlen(level_words[i]);
    if (!strncmp(p, level_words[i], n) && p[n] == ':' && p[n + 1] == ' ') return i;
  }
  return -1;
}

TEST_TIMEOUT(under_journald_every_line_has_its_priority_and_no_name_or_pid, 60) {
  char *log = log_at_every_level(NULL);
  int seen[4] = {0};
  unsigned lines = 0;
  for (char *line = log, *end; *line; line = end + 1) {
    end = strchr(line, '\n');
    if (!end) TEST_FAIL("last line cut: \"%s\"", line);
    *end = '\0';
    lines++;
    if (line[0] != '<' || line[2] != '>' || level_at(line + 3) < 0)
      TEST_FAIL("line %u does not start with <N>level: \"%s\"", lines, line);
    int lv = level_at(line + 3);
    if (line[1] - '0' != level_prio[lv])
      TEST_FAIL("line %u: <%c> for %s, want <%d>: \"%s\"", lines, line[1], level_words[lv],
                level_prio[lv], line);
    if (strstr(line, "tickslabd["))
      TEST_FAIL("line %u has its own name and pid (journald adds them): \"%s\"", lines, line);
    seen[lv]++;
  }
  for (int i = 0; i < 4; i++)
    if (!seen[i]) TEST_FAIL("no %s line (<%d>) in %u lines", level_words[i], level_prio[i], lines);
  free(log);
}

/* Each line: "2026-12-03T06:10:01.123Z tickslabd[PID]: level: ...". */
static void expect_timestamped(const char *journal_stream) {
  char *log = log_at_every_level(journal_stream);
  unsigned lines = 0;
  time_t now = time(NULL);
  for (char *line = log, *end; *line; line = end + 1) {
    end = strchr(line, '\n');
    if (!end) TEST_FAIL("last line cut: \"%s\"", line);
    *end = '\0';
    lines++;
    struct tm tm = {0};
    int ms = -1, pid = 0, n = 0;
    char z = 0;
    if (sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c tickslabd[%d]: %n", &tm.tm_year, &tm.tm_mon,
               &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &z, &pid, &n) != 9 ||
        z != 'Z' || n == 0 || line[10] != 'T' || line[19] != '.' || line[23] != 'Z' ||
        level_at(line + n) < 0)
      TEST_FAIL("line %u is not \"ISO-8601Z tickslabd[pid]: level: ...\": \"%s\"", lines, line);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    /* UTC (not local time): within a day of the clock, whatever TZ says. */
    if (t < now - 86400 || t > now + 86400) TEST_FAIL("line %u: a wrong date: \"%s\"", lines, line);
    if (line[0] == '<') TEST_FAIL("line %u has a priority prefix: \"%s\"", lines, line);
  }
  ASSERT(lines >= 10);
  free(log);
}

TEST_TIMEOUT(without_journald_every_line_has_a_utc_timestamp_with_ms_and_the_level, 60) {
  expect_timestamped("");
}

TEST_TIMEOUT(journal_stream_naming_another_file_gets_timestamps_not_priorities, 60) {
  /* Inherited from a parent whose stderr went to the journal, say. */
  expect_timestamped("1:1");
}

TEST(start_failure_is_logged_at_error) {
  struct tks_daemon d, holder;
  daemon_start(&holder, NULL);
  /* A second daemon on the same control socket and ingest port fails its start. */
  daemon_prepare(&d, NULL, NULL);
  char yaml[1024];
  snprintf(yaml, sizeof yaml,
           "ingest:\n  listen: \"127.0.0.1:%d\"\ncontrol:\n  socket: \"%s/x.sock\"\n"
           "journal:\n  enabled: false\nsubscribe:\n  listen: \"off\"\n",
           holder.port, d.dir);
  write_file(d.config, yaml);
  daemon_spawn(&d, NULL);
  int code = daemon_wait_exit(&d, HARNESS_STOP_MS);
  char *log = daemon_log(&d);
  if (code != 1) TEST_FAIL("exit %d, want 1; log:\n%s", code, log);
  ASSERT_CONTAINS(log, "error: start failed: stopping");
  ASSERT_NOT_CONTAINS(log, "info: start failed");
  free(log);
  daemon_cleanup(&d);
  ASSERT_EQ(daemon_stop(&holder, SIGTERM), 0);
  daemon_cleanup(&holder);
}

TEST_MAIN()

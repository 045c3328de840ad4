/*
 * The daemon harness: fork/exec of tickslabd and the CLI, a janitor that
 * removes temp dirs when the test process ends, and small blocking helpers
 * over real sockets (Unix for control, TCP on loopback for ingest), each
 * bounded by a deadline so that a silent daemon fails a test, not hangs it.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <arpa/inet.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "config.h"
#include "test.h"
#include "util.h"

extern char **environ;

/* Why the last daemon_request() failed, for the failure messages. */
static char request_error[160];

uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* ---- binaries ---- */

static const char *binary(const char *env, const char *rel, char *buf, size_t n) {
  const char *p = getenv(env);
  if (p && *p) return p;
  char exe[512];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len < 0) return rel;
  exe[len] = '\0';
  snprintf(buf, n, "%s/../%s", dirname(exe), rel);
  return buf;
}

const char *harness_tickslabd(void) {
  static char buf[600];
  return binary("TICKSLABD", "daemon/tickslabd", buf, sizeof buf);
}

const char *harness_tickslab(void) {
  static char buf[600];
  return binary("TICKSLAB", "cli/tickslab", buf, sizeof buf);
}

/* ---- temp dirs and the janitor ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

static void rm_rf(const char *dir) {
  if (dir[0]) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The janitor runs in its own process group (the runner kills the test's
 * group) and reads dir names from a pipe; at EOF, i.e. when the test
 * process is gone, it lets the runner kill the daemons, then removes the
 * dirs. */
static int janitor_fd = -1;

static void janitor_run(int rfd) {
  char names[4096];
  size_t len = 0;
  ssize_t r;
  while ((r = read(rfd, names + len, sizeof names - 1 - len)) != 0) {
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    len += (size_t)r;
    if (len == sizeof names - 1) break;
  }
  names[len] = '\0';
  sleep_ms(200);
  for (int attempt = 0; attempt < 3; attempt++) {
    for (char *line = names, *nl; *line; line = nl + 1) {
      nl = strchr(line, '\n');
      if (!nl) break;
      *nl = '\0';
      rm_rf(line);
      *nl = '\n';
    }
    sleep_ms(300);
  }
}

static void janitor_register(const char *dir) {
  const char *keep = getenv("HARNESS_KEEP");
  if (keep && *keep == '1') {
    fprintf(stderr, "  (keeping %s)\n", dir);
    return;
  }
  if (janitor_fd < 0) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) TEST_FAIL("pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) TEST_FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
      setpgid(0, 0);
      int null = open("/dev/null", O_RDWR);
      for (int fd = 0; fd < 3; fd++) dup2(null, fd);
      for (int fd = 3; fd < 1024; fd++)
        if (fd != p[0]) close(fd);
      janitor_run(p[0]);
      _exit(0);
    }
    setpgid(pid, pid); /* here too: the test may end before the child runs */
    close(p[0]);
    janitor_fd = p[1];
  }
  char line[128];
  int n = snprintf(line, sizeof line, "%s\n", dir);
  if (write(janitor_fd, line, (size_t)n) != n) TEST_FAIL("janitor: %s", strerror(errno));
}

void harness_mkdtemp(char *out, size_t n) {
  if (n < 24) TEST_FAIL("harness_mkdtemp: buffer too small");
  snprintf(out, n, "/tmp/tks-test-XXXXXX");
  if (!mkdtemp(out)) TEST_FAIL("mkdtemp: %s", strerror(errno));
  janitor_register(out);
}

void write_file(const char *path, const char *content) {
  FILE *f = fopen(path, "w");
  if (!f) TEST_FAIL("open %s: %s", path, strerror(errno));
  fputs(content, f);
  if (fclose(f) != 0) TEST_FAIL("write %s: %s", path, strerror(errno));
}

char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += r;
    if (cap - len - 1 == 0) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  if (!buf) TEST_FAIL("out of memory");
  buf[len] = '\0';
  return buf;
}

/* ---- processes ---- */

/* environ plus extras, without NOTIFY_SOCKET / LISTEN_* from outside (a test
 * run under systemd must not notify the real manager). */
static char **make_env(char *const extra[]) {
  size_t n = 0, k = 0;
  while (environ[n]) n++;
  while (extra && extra[k]) k++;
  char **env = calloc(n + k + 1, sizeof *env);
  if (!env) TEST_FAIL("out of memory");
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    if (!strncmp(environ[i], "NOTIFY_SOCKET=", 14) || !strncmp(environ[i], "LISTEN_", 7))
      continue;
    int shadowed = 0;
    for (size_t e = 0; e < k; e++) {
      const char *eq = strchr(extra[e], '=');
      size_t nl = eq ? (size_t)(eq - extra[e]) + 1 : strlen(extra[e]);
      if (!strncmp(environ[i], extra[e], nl)) shadowed = 1;
    }
    if (!shadowed) env[j++] = environ[i];
  }
  for (size_t e = 0; e < k; e++) env[j++] = extra[e];
  env[j] = NULL;
  return env;
}

/* In a child, before exec: default signal dispositions and mask (the
 * runner ignores SIGPIPE; a background shell may ignore SIGINT). */
static void child_reset_signals(pid_t parent) {
  /* Die with the test process, however it ends (a killed runner included). */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGALRM, SIG_DFL);
  alarm(0);
}

static int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

/* ---- the daemon ---- */

static void fail_with_log(const struct tks_daemon *d, const char *what) {
  char *log = daemon_log(d);
  size_t len = strlen(log);
  const char *tail = len > 4000 ? log + len - 4000 : log;
  TEST_FAIL("%s\n  --- daemon log (%s) ---\n%s  ---", what, d->log, tail);
}

void daemon_write_config(struct tks_daemon *d, const char *ingest_extra, const char *extra_yaml) {
  char buf[8192], journal[256] = "";
  /* The journal goes to the temp dir unless the test configures it. */
  if (!extra_yaml || (strncmp(extra_yaml, "journal:", 8) != 0 && !strstr(extra_yaml, "\njournal:")))
    snprintf(journal, sizeof journal, "journal:\n  dir: \"%s/journal\"\n", d->dir);
  /* Subscriptions on a port of their own choosing, unless configured. */
  const char *subscribe = "subscribe:\n  listen: \"127.0.0.1:0\"\n";
  if (extra_yaml &&
      (strncmp(extra_yaml, "subscribe:", 10) == 0 || strstr(extra_yaml, "\nsubscribe:")))
    subscribe = "";
  snprintf(buf, sizeof buf,
           "# written by tests/harness.c\n"
           "ingest:\n"
           "  listen: \"127.0.0.1:0\"\n"
           "%s"
           "%s"
           "control:\n"
           "  socket: \"%s\"\n"
           "%s%s",
           ingest_extra ? ingest_extra : "", subscribe, d->sock, journal,
           extra_yaml ? extra_yaml : "");
  write_file(d->config, buf);
}

void daemon_prepare(struct tks_daemon *d, const char *ingest_extra, const char *extra_yaml) {
  memset(d, 0, sizeof *d);
  d->exit_code = -1;
  harness_mkdtemp(d->dir, sizeof d->dir);
  snprintf(d->config, sizeof d->config, "%s/tickslab.yaml", d->dir);
  snprintf(d->sock, sizeof d->sock, "%s/control.sock", d->dir);
  snprintf(d->log, sizeof d->log, "%s/daemon.log", d->dir);
  daemon_write_config(d, ingest_extra, extra_yaml);
}

/* Before the daemon runs: no test may write the real /var/lib/tickslab or
 * /run/tickslab or take the default ports.  The config is read as the
 * daemon will read it; one that does not parse is the daemon's to refuse. */
static void refuse_default_dirs(const struct tks_daemon *d) {
  struct tks_config *c = malloc(sizeof *c);
  if (!c) TEST_FAIL("out of memory");
  char err[TKS_CONFIG_ERR_MAX];
  if (tks_config_load(c, d->config, err, sizeof err) == 0) {
    const char *why = NULL;
    size_t jl = strlen(TKS_DEFAULT_JOURNAL_DIR);
    if (c->journal.enabled && strncmp(c->journal.dir, TKS_DEFAULT_JOURNAL_DIR, jl) == 0 &&
        (c->journal.dir[jl] == '\0' || c->journal.dir[jl] == '/'))
      why = "journals into " TKS_DEFAULT_JOURNAL_DIR;
    else if (strncmp(c->control.socket, "/run/tickslab/", 14) == 0)
      why = "puts its control socket in /run/tickslab";
    else if (c->ingest.port == 7070 || c->subscribe.port == 7071)
      why = "listens on a default port (7070, 7071): use port 0";
    if (why) {
      free(c);
      TEST_FAIL("%s: the test's config %s (not started)", d->config, why);
    }
  }
  free(c);
}

void daemon_spawn(struct tks_daemon *d, char *const env[]) {
  const char *bin = harness_tickslabd();
  if (access(bin, X_OK) != 0) TEST_FAIL("tickslabd not found at %s (set TICKSLABD)", bin);
  refuse_default_dirs(d);
  int logfd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logfd < 0) TEST_FAIL("open %s: %s", d->log, strerror(errno));
  char **envp = make_env(env);
  char *argv[] = {(char *)bin, "--config", d->config, NULL};
  pid_t self = getpid();
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) TEST_FAIL("fork: %s", strerror(errno));
  if (pid == 0) {
    child_reset_signals(self);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(logfd, 1);
    dup2(logfd, 2);
    execve(bin, argv, envp);
    dprintf(2, "harness: exec %s: %s\n", bin, strerror(errno));
    _exit(127);
  }
  free(envp);
  close(logfd);
  d->pid = pid;
  d->exit_code = -1;
}

void daemon_wait_ready(struct tks_daemon *d) {
  uint64_t deadline = now_ms() + HARNESS_READY_MS;
  for (;;) {
    if (daemon_wait_exit(d, 0) >= 0) {
      char what[96];
      snprintf(what, sizeof what, "tickslabd exited with %d before it was ready", d->exit_code);
      fail_with_log(d, what);
    }
    char *r = daemon_request(d, "ping");
    /* Alive and done loading ("state":"loading" while it replays). */
    int ok = r && strstr(r, "\"ok\":true") && !strstr(r, "\"loading\"");
    free(r);
    if (ok) break;
    if (now_ms() > deadline) {
      char what[256];
      snprintf(what, sizeof what, "tickslabd did not answer ping within 10 s (%s)", request_error);
      fail_with_log(d, what);
    }
    sleep_ms(20);
  }
  uint64_t port = 0;
  if (daemon_stat_get(d, "ingest.port", &port) < 0 || port == 0 || port > 65535)
    fail_with_log(d, "stats text has no usable ingest.port");
  d->port = (int)port;
  /* No test may write the real /var/lib/tickslab or take the default
   * ports: every config names its own journal dir, socket and port 0 (the
   * harness's do, unless a test writes its own). */
  char *text = daemon_request(d, "stats text");
  char dir[512], sub[16];
  bool real = text && stats_text_lookup(text, "journal.dir", dir, sizeof dir) == 0 &&
              strcmp(dir, TKS_DEFAULT_JOURNAL_DIR) == 0;
  bool sub_default = text && stats_text_lookup(text, "subscribe.port", sub, sizeof sub) == 0 &&
                     strcmp(sub, "7071") == 0;
  free(text);
  if (real) fail_with_log(d, "the test's config journals into " TKS_DEFAULT_JOURNAL_DIR);
  if (d->port == 7070 || sub_default)
    fail_with_log(d, "the test's config listens on a default port (7070, 7071): use port 0");
  if (strcmp(d->sock, TKS_DEFAULT_CONTROL_SOCKET) == 0)
    fail_with_log(d, "the test's control socket is " TKS_DEFAULT_CONTROL_SOCKET);
}

void daemon_start_with(struct tks_daemon *d, const char *ingest_extra, const char *extra_yaml) {
  daemon_prepare(d, ingest_extra, extra_yaml);
  daemon_spawn(d, NULL);
  daemon_wait_ready(d);
}

void daemon_start(struct tks_daemon *d, const char *extra_yaml) {
  daemon_start_with(d, NULL, extra_yaml);
}

int daemon_wait_exit(struct tks_daemon *d, int timeout_ms) {
  if (d->pid == 0) return d->exit_code;
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    int status;
    pid_t r = waitpid(d->pid, &status, WNOHANG);
    if (r == d->pid) {
      d->pid = 0;
      d->exit_code = decode_status(status);
      return d->exit_code;
    }
    if (r < 0 && errno != EINTR) {
      d->pid = 0;
      return d->exit_code = -1;
    }
    if (now_ms() >= deadline) return -1;
    sleep_ms(5);
  }
}

int daemon_stop(struct tks_daemon *d, int sig) {
  if (d->pid == 0) return d->exit_code;
  kill(d->pid, sig);
  int code = daemon_wait_exit(d, HARNESS_STOP_MS);
  if (d->pid != 0) {
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
    d->exit_code = -1;
    return -1;
  }
  return code;
}

void daemon_cleanup(struct tks_daemon *d) {
  if (d->pid > 0) {
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
  }
  const char *keep = getenv("HARNESS_KEEP");
  if (!(keep && *keep == '1')) rm_rf(d->dir);
}

char *daemon_log(const struct tks_daemon *d) {
  char *s = read_file(d->log);
  return s ? s : strdup("");
}

/* ---- sockets ---- */

int control_connect(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) return -1;
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static size_t count_occurrences(const char *hay, size_t len, const char *needle) {
  size_t n = 0, nl = strlen(needle);
  const char *p = hay, *end = hay + len;
  while ((p = memmem(p, (size_t)(end - p), needle, nl))) {
    n++;
    p += nl;
  }
  return n;
}

char *read_until(int fd, const char *needle, int count, int timeout_ms, bool *eof) {
  size_t cap = 8192, len = 0;
  char *buf = malloc(cap);
  if (!buf) TEST_FAIL("out of memory");
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  bool closed = false;
  while (!(count > 0 && count_occurrences(buf, len, needle) >= (size_t)count)) {
    uint64_t now = now_ms();
    if (now >= deadline) break;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int pr = poll(&pfd, 1, (int)(deadline - now));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) break;
    if (cap - len < 4096) {
      buf = realloc(buf, cap *= 2);
      if (!buf) TEST_FAIL("out of memory");
    }
    ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) {
      closed = true;
      break;
    }
    len += (size_t)r;
  }
  buf[len] = '\0';
  if (eof) *eof = closed;
  return buf;
}

char *daemon_request(const struct tks_daemon *d, const char *req) {
  int fd = control_connect(d->sock);
  if (fd < 0) {
    snprintf(request_error, sizeof request_error, "connect %s: %s", d->sock, strerror(errno));
    return NULL;
  }
  size_t n = strlen(req);
  char *line = malloc(n + 2);
  if (!line) TEST_FAIL("out of memory");
  memcpy(line, req, n);
  line[n] = '\n';
  int w = send_all(fd, line, n + 1);
  int werr = errno;
  free(line);
  bool eof = false;
  char *resp = w == 0 ? read_until(fd, "\n\n", 1, HARNESS_IO_MS, &eof) : NULL;
  close(fd);
  if (!resp) {
    snprintf(request_error, sizeof request_error, "\"%s\": send: %s", req, strerror(werr));
  } else if (!strstr(resp, "\n\n")) {
    snprintf(request_error, sizeof request_error, "\"%s\": %s after %zu bytes of response", req,
             eof ? "connection closed" : "timeout", strlen(resp));
    if (!resp[0]) {
      free(resp);
      resp = NULL;
    }
  }
  return resp;
}

int stats_text_lookup(const char *text, const char *path, char *out, size_t n) {
  size_t pl = strlen(path);
  for (const char *line = text; line && *line;) {
    const char *nl = strchr(line, '\n');
    size_t ll = nl ? (size_t)(nl - line) : strlen(line);
    if (ll > pl && !strncmp(line, path, pl) && line[pl] == ' ') {
      size_t vl = ll - pl - 1;
      if (vl && line[pl + 1 + vl - 1] == '\r') vl--;
      if (vl >= n) vl = n - 1;
      memcpy(out, line + pl + 1, vl);
      out[vl] = '\0';
      return 0;
    }
    line = nl ? nl + 1 : NULL;
  }
  return -1;
}

int daemon_stat_get(const struct tks_daemon *d, const char *path, uint64_t *out) {
  char *text = daemon_request(d, "stats text");
  char val[64];
  int rc = text ? stats_text_lookup(text, path, val, sizeof val) : -1;
  free(text);
  if (rc < 0) return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(val, &end, 10);
  if (end == val || errno) return -1;
  *out = v;
  return 0;
}

uint64_t daemon_stat(const struct tks_daemon *d, const char *path) {
  uint64_t v;
  if (daemon_stat_get(d, path, &v) < 0) {
    char what[400];
    snprintf(what, sizeof what,
             "stat %s absent from `stats text` (or not a number; last request error: %s)", path,
             request_error);
    fail_with_log(d, what);
  }
  return v;
}

uint64_t daemon_wait_stat(const struct tks_daemon *d, const char *path, uint64_t want,
                          int timeout_ms) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms, v = 0;
  bool seen = false;
  for (;;) {
    uint64_t cur;
    if (daemon_stat_get(d, path, &cur) == 0) {
      v = cur;
      seen = true;
      if (v >= want) return v;
    }
    if (now_ms() >= deadline) break;
    sleep_ms(5);
  }
  if (!seen) {
    char what[400];
    snprintf(what, sizeof what,
             "stat %s absent from `stats text` (or daemon silent; last request error: %s)", path,
             request_error);
    fail_with_log(d, what);
  }
  return v;
}

void daemon_expect_stat(const struct tks_daemon *d, const char *path, uint64_t want,
                        int timeout_ms) {
  uint64_t got = daemon_wait_stat(d, path, want, timeout_ms);
  if (got != want)
    TEST_FAIL("stat %s: got %llu, want %llu (after %d ms)", path, (unsigned long long)got,
              (unsigned long long)want, timeout_ms);
  sleep_ms(50);
  got = daemon_stat(d, path);
  if (got != want)
    TEST_FAIL("stat %s: got %llu, want %llu (overshoot after settling)", path,
              (unsigned long long)got, (unsigned long long)want);
}

int daemon_connect_ingest(const struct tks_daemon *d) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) TEST_FAIL("socket: %s", strerror(errno));
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    TEST_FAIL("connect 127.0.0.1:%d: %s", d->port, strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

int send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, HARNESS_IO_MS) <= 0) return -1;
        continue;
      }
      return -1;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

bool wait_closed(int fd, int timeout_ms) {
  bool eof = false;
  free(read_until(fd, "", 0, timeout_ms, &eof));
  return eof;
}

int local_port(int fd) {
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) return -1;
  return ntohs(sa.sin_port);
}

/* ---- other programs ---- */

void run_cmd(char *const argv[], char *const env[], const char *stdin_path, int timeout_ms,
             struct cmd_result *r) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
    TEST_FAIL("pipe: %s", strerror(errno));
  char **envp = make_env(env);
  pid_t self = getpid();
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) TEST_FAIL("fork: %s", strerror(errno));
  if (pid == 0) {
    child_reset_signals(self);
    int in = open(stdin_path ? stdin_path : "/dev/null", O_RDONLY);
    if (in < 0) {
      dprintf(err[1], "harness: open %s: %s\n", stdin_path, strerror(errno));
      _exit(127);
    }
    dup2(in, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execve(argv[0], argv, envp);
    dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  free(envp);
  close(out[1]);
  close(err[1]);
  struct tks_buf_lite {
    char *p;
    size_t len, cap;
  } bufs[2] = {{NULL, 0, 0}, {NULL, 0, 0}};
  struct pollfd pfd[2] = {{.fd = out[0], .events = POLLIN}, {.fd = err[0], .events = POLLIN}};
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  bool timed_out = false;
  while (pfd[0].fd >= 0 || pfd[1].fd >= 0) {
    uint64_t now = now_ms();
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    int pr = poll(pfd, 2, (int)(deadline - now));
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) break;
    for (int i = 0; i < 2; i++) {
      if (pfd[i].fd < 0 || !pfd[i].revents) continue;
      struct tks_buf_lite *b = &bufs[i];
      if (b->cap - b->len < 4096) {
        b->cap = b->cap ? b->cap * 2 : 8192;
        b->p = realloc(b->p, b->cap);
        if (!b->p) TEST_FAIL("out of memory");
      }
      ssize_t n = read(pfd[i].fd, b->p + b->len, b->cap - b->len - 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        close(pfd[i].fd);
        pfd[i].fd = -1;
      } else {
        b->len += (size_t)n;
      }
    }
  }
  for (int i = 0; i < 2; i++)
    if (pfd[i].fd >= 0) close(pfd[i].fd);
  int status = 0;
  if (timed_out) {
    if (waitpid(pid, &status, WNOHANG) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      r->code = -1;
    } else {
      r->code = decode_status(status);
    }
  } else {
    /* Both pipes are closed; the program exits now or soon. */
    uint64_t until = now_ms() + (uint64_t)timeout_ms;
    pid_t w;
    while ((w = waitpid(pid, &status, WNOHANG)) == 0 && now_ms() < until) sleep_ms(5);
    if (w == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      r->code = -1;
    } else {
      r->code = decode_status(status);
    }
  }
  for (int i = 0; i < 2; i++) {
    if (!bufs[i].p) bufs[i].p = malloc(1);
    if (!bufs[i].p) TEST_FAIL("out of memory");
    bufs[i].p[bufs[i].len] = '\0';
  }
  r->out = bufs[0].p;
  r->err = bufs[1].p;
}

void cmd_result_finish(struct cmd_result *r) {
  free(r->out);
  free(r->err);
  r->out = r->err = NULL;
}

/* ---- README's stats tables ---- */

/* Expands "a.{b,c}.d" into names[] (one brace group at a time). */
static void expand_braces(const char *item, char **names, unsigned *n, unsigned max) {
  const char *open = strchr(item, '{');
  if (!open) {
    if (*n < max) names[(*n)++] = strdup(item);
    return;
  }
  const char *close = strchr(open, '}');
  if (!close) TEST_FAIL("README stats table: unclosed brace in `%s`", item);
  for (const char *alt = open + 1; alt < close;) {
    const char *end = memchr(alt, ',', (size_t)(close - alt));
    if (!end) end = close;
    char buf[256];
    snprintf(buf, sizeof buf, "%.*s%.*s%s", (int)(open - item), item, (int)(end - alt), alt,
             close + 1);
    expand_braces(buf, names, n, max);
    alt = end + 1;
  }
}

unsigned readme_stat_names(const char *heading, char **names, unsigned max) {
  char path[4096];
  snprintf(path, sizeof path, "%s/README.md",
           getenv("TKS_SOURCE_ROOT") ? getenv("TKS_SOURCE_ROOT") : ".");
  char *readme = read_file(path);
  if (!readme) TEST_FAIL("cannot read %s", path);
  const char *t = strstr(readme, heading);
  if (!t) TEST_FAIL("README.md has no stats table after \"%s\"", heading);
  t = strstr(t, "\n|---|");
  if (!t) TEST_FAIL("README.md: no table after \"%s\"", heading);
  unsigned n = 0;
  for (const char *line = strchr(t + 1, '\n') + 1; *line == '|'; line = strchr(line, '\n') + 1) {
    const char *cell_end = strstr(line + 1, " | ");
    if (!cell_end) TEST_FAIL("README.md: a row of the table after \"%s\" has one cell", heading);
    for (const char *q = line; (q = memchr(q, '`', (size_t)(cell_end - q))) != NULL;) {
      const char *e = memchr(q + 1, '`', (size_t)(cell_end - q - 1));
      if (!e) TEST_FAIL("README.md: an unclosed ` in the table after \"%s\"", heading);
      char item[256];
      snprintf(item, sizeof item, "%.*s", (int)(e - q - 1), q + 1);
      expand_braces(item, names, &n, max);
      q = e + 1;
    }
  }
  free(readme);
  return n;
}

unsigned stats_match_readme(const struct tks_daemon *d, const char *prefix, const char *heading,
                            unsigned min) {
  enum { MAX = 128 };
  char *doc[MAX], *got[MAX];
  unsigned ndoc = readme_stat_names(heading, doc, MAX), ngot = 0;
  char *text = daemon_request(d, "stats text");
  if (!text) TEST_FAIL("no answer to stats text");
  size_t pl = strlen(prefix);
  for (char *line = text, *nl; (nl = strchr(line, '\n')) && nl != line; line = nl + 1)
    if (strncmp(line, prefix, pl) == 0 && ngot < MAX)
      got[ngot++] = strndup(line, strcspn(line, " "));
  free(text);
  if (ndoc < min || ngot < min)
    TEST_FAIL("%u names after \"%s\" in README.md, %u %s* stats emitted: want %u or more", ndoc,
              heading, ngot, prefix, min);
  unsigned missing = stat_names_compare(doc, ndoc, got, ngot);
  for (unsigned i = 0; i < ngot; i++) free(got[i]);
  for (unsigned i = 0; i < ndoc; i++) free(doc[i]);
  return missing;
}

bool stat_name_matches(const char *pattern, const char *path) {
  while (*pattern && *path) {
    if (*pattern == '<') {
      pattern = strchr(pattern, '>');
      if (!pattern) return false;
      pattern++;
      path += strcspn(path, ".");
      continue;
    }
    if (*pattern++ != *path++) return false;
  }
  return *pattern == '\0' && *path == '\0';
}

unsigned stat_names_compare(char **doc, unsigned ndoc, char **got, unsigned ngot) {
  unsigned missing = 0;
  for (unsigned i = 0; i < ngot; i++) {
    bool found = false;
    for (unsigned j = 0; j < ndoc && !found; j++) found = stat_name_matches(doc[j], got[i]);
    if (!found) printf("  emitted but not in README.md's table: %s\n", got[i]), missing++;
  }
  for (unsigned j = 0; j < ndoc; j++) {
    bool found = false;
    for (unsigned i = 0; i < ngot && !found; i++) found = stat_name_matches(doc[j], got[i]);
    if (!found) printf("  in README.md's table but not emitted: %s\n", doc[j]), missing++;
  }
  fflush(stdout);
  return missing;
}

/* ---- JSON ---- */

struct jflat {
  const char *p;
  struct tks_buf out;
  char path[512];
  size_t plen;
  int depth;
};

static void j_ws(struct jflat *j) {
  while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r') j->p++;
}

static bool j_string(struct jflat *j, const char **s, size_t *n) {
  if (*j->p != '"') return false;
  const char *start = ++j->p;
  while (*j->p != '"') {
    unsigned char c = (unsigned char)*j->p;
    if (c < 0x20) return false; /* also the NUL at the end */
    if (c == '\\') {
      j->p++;
      if (!*j->p || !strchr("\"\\/bfnrtu", *j->p)) return false;
      if (*j->p == 'u')
        for (int i = 1; i <= 4; i++)
          if (!strchr("0123456789abcdefABCDEF", j->p[i]) || !j->p[i]) return false;
    }
    j->p++;
  }
  *s = start;
  *n = (size_t)(j->p - start);
  j->p++;
  return true;
}

static bool j_digits(struct jflat *j) {
  if (*j->p < '0' || *j->p > '9') return false;
  while (*j->p >= '0' && *j->p <= '9') j->p++;
  return true;
}

static bool j_number(struct jflat *j) {
  if (*j->p == '-') j->p++;
  if (*j->p == '0')
    j->p++;
  else if (!j_digits(j))
    return false;
  if (*j->p == '.') {
    j->p++;
    if (!j_digits(j)) return false;
  }
  if (*j->p == 'e' || *j->p == 'E') {
    j->p++;
    if (*j->p == '+' || *j->p == '-') j->p++;
    if (!j_digits(j)) return false;
  }
  return true;
}

static void j_leaf(struct jflat *j, const char *v, size_t n) {
  tks_buf_append(&j->out, j->path, j->plen);
  tks_buf_putc(&j->out, ' ');
  tks_buf_append(&j->out, v, n);
  tks_buf_putc(&j->out, '\n');
}

/* Appends ".name" (or "name" at the top) to the path; returns the old length. */
static size_t j_push(struct jflat *j, const char *name, size_t n) {
  size_t old = j->plen;
  if (j->plen && j->plen < sizeof j->path - 1) j->path[j->plen++] = '.';
  if (n > sizeof j->path - 1 - j->plen) n = sizeof j->path - 1 - j->plen;
  memcpy(j->path + j->plen, name, n);
  j->plen += n;
  return old;
}

static bool j_value(struct jflat *j) {
  j_ws(j);
  if (++j->depth > 64) return false;
  bool ok = true;
  const char *start = j->p;
  if (*j->p == '{' || *j->p == '[') {
    bool obj = *j->p == '{';
    char close = obj ? '}' : ']';
    j->p++;
    j_ws(j);
    if (*j->p == close) {
      j->p++;
      j_leaf(j, obj ? "{}" : "[]", 2);
    } else {
      for (unsigned idx = 0;; idx++) {
        const char *name;
        size_t n;
        char num[16];
        if (obj) {
          j_ws(j);
          if (!j_string(j, &name, &n)) return false;
          j_ws(j);
          if (*j->p++ != ':') return false;
        } else {
          n = (size_t)snprintf(num, sizeof num, "%u", idx);
          name = num;
        }
        size_t old = j_push(j, name, n);
        if (!j_value(j)) return false;
        j->plen = old;
        j_ws(j);
        if (*j->p == ',') {
          j->p++;
          continue;
        }
        if (*j->p++ != close) return false;
        break;
      }
    }
  } else if (*j->p == '"') {
    const char *s;
    size_t n;
    ok = j_string(j, &s, &n);
    if (ok) j_leaf(j, s, n);
  } else if (!strncmp(j->p, "true", 4) || !strncmp(j->p, "null", 4)) {
    j->p += 4;
    j_leaf(j, start, 4);
  } else if (!strncmp(j->p, "false", 5)) {
    j->p += 5;
    j_leaf(j, start, 5);
  } else {
    ok = j_number(j);
    if (ok) j_leaf(j, start, (size_t)(j->p - start));
  }
  j->depth--;
  return ok;
}

char *json_flatten(const char *text) {
  struct jflat j = {.p = text};
  tks_buf_init(&j.out);
  bool ok = text && j_value(&j);
  if (ok) {
    j_ws(&j);
    ok = *j.p == '\0';
  }
  if (!ok || tks_buf_putc(&j.out, '\0') < 0) {
    tks_buf_finish(&j.out);
    return NULL;
  }
  return j.out.data;
}

pid_t harness_child_of(pid_t parent, int timeout_ms) {
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  do {
    DIR *dd = opendir("/proc");
    if (!dd) return 0;
    struct dirent *de;
    pid_t found = 0;
    while (!found && (de = readdir(dd))) {
      char path[300], buf[512];
      if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
      snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
      int fd = open(path, O_RDONLY);
      if (fd < 0) continue;
      ssize_t n = read(fd, buf, sizeof buf - 1);
      close(fd);
      if (n <= 0) continue;
      buf[n] = 0;
      const char *rp = strrchr(buf, ')'); /* pid (comm) state ppid ... */
      int ppid;
      char state;
      if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == parent)
        found = (pid_t)atoi(de->d_name);
    }
    closedir(dd);
    if (found) return found;
    sleep_ms(10);
  } while (now_ms() < deadline);
  return 0;
}

char *daemon_request_big(const struct tks_daemon *d, const char *req, int timeout_ms) {
  int fd = control_connect(d->sock);
  if (fd < 0) return NULL;
  size_t rl = strlen(req);
  char *line = malloc(rl + 2);
  if (!line) {
    close(fd);
    return NULL;
  }
  memcpy(line, req, rl);
  line[rl] = '\n';
  int sent = send_all(fd, line, rl + 1);
  free(line);
  size_t cap = 1 << 16, len = 0;
  char *buf = sent == 0 ? malloc(cap) : NULL;
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  bool complete = false;
  while (buf && !complete && now_ms() < deadline) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int pr = poll(&pfd, 1, 1000);
    if (pr < 0 && errno == EINTR) continue;
    if (pr == 0) continue;
    if (pr < 0) break;
    if (cap - len < (1 << 15)) {
      char *more = realloc(buf, cap * 2);
      if (!more) break;
      buf = more;
      cap *= 2;
    }
    ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) break;
    size_t from = len ? len - 1 : 0;
    len += (size_t)r;
    complete = memmem(buf + from, len - from, "\n\n", 2) != NULL;
  }
  close(fd);
  if (!complete) {
    free(buf);
    return NULL;
  }
  buf[len] = '\0';
  return buf;
}

/* ---- a Kafka cluster ---- */

void kafka_mock_start(struct kafka_mock *m, const char *const args[]) {
  static char buf[600];
  const char *bin = binary("KAFKA_MOCK", "tests/kafka_mock", buf, sizeof buf);
  const char *argv[32] = {bin};
  unsigned n = 1;
  for (; args && args[n - 1] && n < 31; n++) argv[n] = args[n - 1];
  argv[n] = NULL;
  /* Sockets, not pipes: read_until and send_all use recv and send. */
  int in[2], out[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0 ||
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out) < 0)
    TEST_FAIL("socketpair: %s", strerror(errno));
  pid_t self = getpid();
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) TEST_FAIL("fork: %s", strerror(errno));
  if (pid == 0) {
    child_reset_signals(self);
    dup2(in[0], 0);
    dup2(out[1], 1);
    execv(bin, (char *const *)argv);
    dprintf(2, "harness: exec %s: %s\n", bin, strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  memset(m, 0, sizeof *m);
  m->pid = pid;
  m->in = in[1];
  m->out = out[0];
  bool eof = false;
  char *line = read_until(m->out, "\n", 1, 10000, &eof);
  if (!line || strncmp(line, "bootstraps ", 11) != 0)
    TEST_FAIL("%s did not print its bootstraps (got '%s')", bin, line ? line : "");
  snprintf(m->bootstraps, sizeof m->bootstraps, "%.*s", (int)strcspn(line + 11, "\n"), line + 11);
  free(line);
}

void kafka_mock_cmd(struct kafka_mock *m, const char *cmd) {
  char line[300];
  snprintf(line, sizeof line, "%s\n", cmd);
  if (send_all(m->in, line, strlen(line)) != 0) TEST_FAIL("kafka_mock: cannot send '%s'", cmd);
  bool eof = false;
  char *got = read_until(m->out, "\n", 1, 10000, &eof);
  if (!got || strncmp(got, "ok", 2) != 0)
    TEST_FAIL("kafka_mock: '%s' answered '%s'", cmd, got ? got : "(nothing)");
  free(got);
}

void kafka_mock_stop(struct kafka_mock *m) {
  if (m->pid <= 0) return;
  close(m->in);
  int st;
  uint64_t end = now_ms() + 10000;
  while (waitpid(m->pid, &st, WNOHANG) == 0) {
    if (now_ms() > end) {
      kill(m->pid, SIGKILL);
      waitpid(m->pid, &st, 0);
      break;
    }
    sleep_ms(20);
  }
  close(m->out);
  m->pid = 0;
}

const char *harness_kcat(void) {
  const char *p = getenv("KCAT");
  if (p && *p) return p;
  static const char *const dirs[] = {"/usr/bin/kcat", "/usr/local/bin/kcat", "/bin/kcat"};
  for (unsigned i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
    if (access(dirs[i], X_OK) == 0) return dirs[i];
  return NULL;
}

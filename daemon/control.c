/*
 * The control socket: a Unix stream socket (mode 0600) taking one request
 * per line and answering each, in order, with one or more lines ended by
 * an empty line.  Requests: ping, stats, stats slabs, stats prometheus,
 * stats text (each also of one section: stats memory, stats text journal), sync, checkpoint, and the queries of query.c.  While the store is loading at
 * start only ping and stats (json, text, prometheus) are answered, with
 * "state":"loading" and the progress; the rest get a `loading` error.
 * When a client shuts down its sending side, every request
 * already read is answered before the connection is closed.  A client that
 * leaves a request line unfinished for ingest.message_timeout is closed
 * (lifecycle.c's sweep calls tks_control_sweep).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"

#define REQUEST_MAX 4096
#define IN_CAP (64u << 10) /* requests buffered behind a waiting `sync` before reading stops */
#define OUT_CAP (1u << 20) /* answers queued to a client that does not read before we stop */
#define IN_KEEP (2 * REQUEST_MAX) /* an empty request buffer larger than this is freed */
#define REQUESTS                                                                               \
  "ping, stats, stats slabs, stats prometheus, stats text, sync, checkpoint, rollover, last, " \
  "range, "                                                                                    \
  "symbols, advice, export, subscribers"

struct cconn {
  uv_pipe_t pipe; /* first */
  struct conn_link link;
  struct tks_server *srv;
  struct tks_buf in;
  size_t in_counted; /* tks_buf_bytes(&in) as counted in srv->query_buffer_bytes */
  char rbuf[REQUEST_MAX + 1];
  bool closing;
  bool waiting;   /* a `sync` or `checkpoint` is not answered yet: later requests wait */
  bool reading;   /* uv_read_start'ed */
  bool finishing; /* shutting down after the last answer */
  bool in_lines;  /* inside handle_lines (a sync answered at once must not re-enter it) */
  struct tks_export *export; /* an export streaming (waiting is set meanwhile) */
  bool eof;       /* the client has shut down its side */
  bool partial;   /* c->in ends inside a line, begun at partial_since_ms (uv_now) */
  uint64_t partial_since_ms;
};

#define CCONN_OF(l) ((struct cconn *)((char *)(l)-offsetof(struct cconn, link)))

/* One server a process: the socket and its connections are file-local. */
static struct {
  uv_pipe_t pipe;
  bool open;
  struct conn_link conns; /* list head */
} C = {.conns = {&C.conns, &C.conns}};

struct write_req {
  uv_write_t req;
  struct tks_buf buf;
};

/* memory.query_buffer_bytes follows what c->in holds. */
static void count_in(struct cconn *c) {
  c->srv->query_buffer_bytes += tks_buf_bytes(&c->in);
  c->srv->query_buffer_bytes -= c->in_counted;
  c->in_counted = tks_buf_bytes(&c->in);
}

static void on_cconn_closed(uv_handle_t *h) {
  struct cconn *c = (struct cconn *)h;
  tks_buf_finish(&c->in);
  count_in(c);
  free(c);
}

static void cconn_close(struct cconn *c) {
  if (c->closing) return;
  c->closing = true;
  tks_query_export_end(c->export);
  c->export = NULL;
  if (c->waiting)
    tks_durability_cancel(c->srv, c), tks_checkpoint_cancel(c->srv, c),
        tks_archiver_cancel(c->srv, c);
  conn_list_del(&c->link);
  uv_close((uv_handle_t *)&c->pipe, on_cconn_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  struct cconn *c = req->data;
  free(req);
  cconn_close(c);
}

/* Closes once every queued response has been written. */
static void cconn_finish(struct cconn *c) {
  if (c->closing || c->finishing) return;
  c->finishing = true;
  uv_read_stop((uv_stream_t *)&c->pipe);
  c->reading = false;
  uv_shutdown_t *req = malloc(sizeof *req);
  if (!req || uv_shutdown(req, (uv_stream_t *)&c->pipe, on_shutdown) != 0) {
    free(req);
    cconn_close(c);
    return;
  }
  req->data = c;
}

static void pump(struct cconn *c);
static void export_more(struct cconn *c, struct tks_buf *out);

static void on_written(uv_write_t *req, int status) {
  struct write_req *w = (struct write_req *)req;
  struct cconn *c = (struct cconn *)req->handle;
  if (status < 0 && status != UV_ECANCELED)
    tks_log(TKS_LOG_DEBUG, "control write failed: %s", uv_strerror(status));
  c->srv->query_buffer_bytes -= tks_buf_bytes(&w->buf);
  tks_buf_finish(&w->buf);
  free(w);
  /* An export goes on as its chunks are taken. */
  if (status == 0 && !c->closing && c->export && c->pipe.write_queue_size <= OUT_CAP) {
    struct tks_buf out;
    tks_buf_init(&out);
    export_more(c, &out);
  }
  /* Answers held back for a client that reads slowly can go on now. */
  if (status == 0 && !c->closing && !c->in_lines) pump(c);
}

/* Queues resp (which it takes over) on c. */
static void send_response(struct cconn *c, struct tks_buf *resp) {
  struct write_req *w = malloc(sizeof *w);
  if (!w) {
    tks_buf_finish(resp);
    cconn_close(c);
    return;
  }
  w->buf = *resp;
  tks_buf_init(resp);
  uv_buf_t b = uv_buf_init(w->buf.data, (unsigned)w->buf.len);
  c->srv->query_buffer_bytes += tks_buf_bytes(&w->buf); /* until written */
  if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, on_written) != 0) {
    c->srv->query_buffer_bytes -= tks_buf_bytes(&w->buf);
    tks_buf_finish(&w->buf);
    free(w);
    cconn_close(c);
  }
}

static int error_response(struct tks_buf *out, const char *msg, const char *arg) {
  int r = tks_buf_puts(out, "{\"error\":");
  struct tks_buf m;
  tks_buf_init(&m);
  r |= tks_buf_puts(&m, msg);
  if (arg) {
    r |= tks_buf_puts(&m, " '");
    r |= tks_buf_append(&m, arg, strnlen(arg, 200));
    r |= tks_buf_puts(&m, "'");
  }
  r |= tks_buf_json_string(out, m.data ? m.data : "", m.len);
  tks_buf_finish(&m);
  r |= tks_buf_puts(out, "}\n");
  return r;
}

static void cconn_finish(struct cconn *c);

/* {"error":"loading","detail":"..."}: what every request but ping and
 * stats gets while the store is loading. */
static int loading_response(struct tks_server *srv, struct tks_buf *out) {
  char progress[160], detail[400];
  tks_load_describe(srv, progress, sizeof progress);
  snprintf(detail, sizeof detail,
           "the store is loading (%s): only ping and stats are answered until it is ready",
           progress);
  int r = tks_buf_puts(out, "{\"error\":\"loading\",\"detail\":");
  r |= tks_buf_json_string(out, detail, strlen(detail));
  r |= tks_buf_puts(out, "}\n");
  return r;
}

enum stats_format { STATS_JSON, STATS_TEXT, STATS_PROMETHEUS };

/* `stats [text|prometheus] [SECTION]`: true for a stats request, with its
 * format and section ("" for all; `stats slabs` is the section slabs,
 * collected alone).  A word after the section is not a stats request. */
static bool parse_stats(const char *line, enum stats_format *fmt, char *section, size_t n) {
  *fmt = STATS_JSON;
  section[0] = '\0';
  if (strncmp(line, "stats", 5) != 0 || (line[5] != '\0' && line[5] != ' ' && line[5] != '\t'))
    return false;
  const char *p = line + 5;
  for (int word = 0;; word++) {
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) return true;
    size_t l = strcspn(p, " \t");
    if (word == 0 && l == 4 && memcmp(p, "text", 4) == 0) {
      *fmt = STATS_TEXT;
    } else if (word == 0 && l == 10 && memcmp(p, "prometheus", 10) == 0) {
      *fmt = STATS_PROMETHEUS;
    } else {
      if (section[0] || l >= n) return false;
      memcpy(section, p, l);
      section[l] = '\0';
    }
    p += l;
  }
}

static bool is_stats(const char *line) {
  enum stats_format f;
  char sec[64];
  return parse_stats(line, &f, sec, sizeof sec);
}

/* The answer to `sync`: every tick accepted before it is fsynced. */
static void sync_done(void *ctx, uint64_t durable) {
  struct cconn *c = ctx;
  struct tks_buf out;
  tks_buf_init(&out);
  tks_buf_printf(&out, "{\"ok\":true,\"durable\":%llu}\n\n", (unsigned long long)durable);
  c->waiting = false;
  send_response(c, &out);
  /* Answered at once (inside handle_lines): the loop in progress goes on;
   * later: the requests that queued up behind it. */
  if (!c->closing && !c->in_lines) pump(c);
}

/* The answer to `checkpoint`, once it is durable (or failed). */
static void checkpoint_done(void *ctx, const struct tks_checkpoint_result *r) {
  struct cconn *c = ctx;
  struct tks_buf out;
  tks_buf_init(&out);
  if (r->error == 0)
    tks_buf_printf(&out, "{\"ok\":true,\"ticks\":%llu,\"bytes\":%llu,\"seconds\":%.3f}\n",
                   (unsigned long long)r->ticks, (unsigned long long)r->bytes, r->seconds);
  else
    error_response(&out, "checkpoint failed:", r->message);
  tks_buf_putc(&out, '\n');
  c->waiting = false;
  send_response(c, &out);
  if (!c->closing && !c->in_lines) pump(c);
}

/* The answer to `rollover`, once the days before today are sealed. */
static void rollover_done(void *ctx, const struct tks_rollover_result *r) {
  struct cconn *c = ctx;
  struct tks_buf out;
  tks_buf_init(&out);
  if (r->error == 0)
    tks_buf_printf(
        &out, "{\"ok\":true,\"ticks\":%llu,\"bytes\":%llu,\"parts\":%u,\"seconds\":%.3f}\n",
        (unsigned long long)r->ticks, (unsigned long long)r->bytes, r->parts, r->seconds);
  else
    error_response(&out, "rollover failed:", r->message);
  tks_buf_putc(&out, '\n');
  c->waiting = false;
  send_response(c, &out);
  if (!c->closing && !c->in_lines) pump(c);
}

#define EXPORT_CHUNK (256u << 10) /* bytes of an export a write */

/* The next chunk of c's export into out (which it sends); at the end the
 * trailer and the empty line, and requests after it are read again. */
static void export_more(struct cconn *c, struct tks_buf *out) {
  /* The chunk's room at once (a chunk passes EXPORT_CHUNK by a row or a
   * few): no copies while it grows. */
  int r = tks_buf_reserve(out, EXPORT_CHUNK + (16u << 10)) ? -ENOMEM : 0;
  if (r == 0) r = tks_query_export_next(c->export, out, EXPORT_CHUNK);
  if (r < 0) {
    /* Cut short: a zero-length chunk, then the error line. */
    tks_buf_append(out, "\0\0\0\0", 4);
    error_response(out, r == -ENOMEM ? "export: out of memory" : "export: archive error:",
                   r == -ENOMEM ? NULL : strerror(-r));
  }
  if (r <= 0) {
    tks_buf_putc(out, '\n');
    tks_query_export_end(c->export);
    c->export = NULL;
    c->waiting = false;
  }
  send_response(c, out);
}

static void handle_request(struct cconn *c, char *line) {
  struct tks_server *srv = c->srv;
  struct tks_buf out;
  tks_buf_init(&out);
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) line[--n] = '\0';
  while (*line == ' ' || *line == '\t') line++;
  int r = 0;
  if (strcmp(line, "ping") == 0) {
    r = tks_buf_puts(&out,
                     srv->loading ? "{\"ok\":true,\"state\":\"loading\"}\n" : "{\"ok\":true}\n");
  } else if (srv->loading && (!is_stats(line) || strcmp(line, "stats slabs") == 0)) {
    r = loading_response(srv, &out);
  } else if (strcmp(line, "stats prometheus") == 0) {
    r = tks_metrics_render(srv, &out); /* the text GET /metrics answers */
  } else if (is_stats(line)) {
    enum stats_format fmt;
    char section[64];
    parse_stats(line, &fmt, section, sizeof section);
    struct tks_stats *st = tks_stats_create();
    if (!st) {
      r = -ENOMEM;
    } else {
      if (srv->loading) {
        tks_server_stats_loading(srv, st);
        tks_load_stats(srv, st);
      } else {
        tks_server_stats(srv, st, strcmp(section, "slabs") == 0);
      }
      struct tks_buf names;
      tks_buf_init(&names);
      if (section[0] && (r = tks_stats_sections(st, &names)) == 0 &&
          tks_stats_keep_section(st, section) == 0) {
        /* Name the sections there are, as the answer to a typo. */
        char msg[1024];
        snprintf(msg, sizeof msg, "unknown stats section '%.63s' (sections: %s%s)", section,
                 names.data ? names.data : "", srv->loading ? "; loading" : "");
        r = error_response(&out, msg, NULL);
      } else if (r == 0 && fmt == STATS_PROMETHEUS) {
        r = tks_stats_prometheus(st, &out);
      } else if (r == 0 && fmt == STATS_TEXT) {
        r = tks_stats_text(st, &out);
      } else if (r == 0) {
        r = tks_stats_json(st, &out) | tks_buf_putc(&out, '\n');
      }
      tks_buf_finish(&names);
      tks_stats_destroy(st);
    }
  } else if (strcmp(line, "sync") == 0) {
    c->waiting = true;
    int e = tks_durability_sync(srv, sync_done, c);
    if (e == 0) {
      tks_buf_finish(&out);
      return; /* answered by sync_done, now or later */
    }
    c->waiting = false;
    r = error_response(&out,
                       e == -ENOTSUP ? "sync: the journal is disabled (journal.enabled: false)"
                                     : "sync: out of memory",
                       NULL);
  } else if (strcmp(line, "checkpoint") == 0) {
    c->waiting = true;
    int e = tks_checkpoint_request(srv, checkpoint_done, c);
    if (e == 0) {
      tks_buf_finish(&out);
      return; /* answered by checkpoint_done */
    }
    c->waiting = false;
    char why[160];
    snprintf(why, sizeof why, "checkpoint: %s",
             e == -ENOTSUP ? "the journal is disabled (journal.enabled: false)" : strerror(-e));
    r = error_response(&out, why, NULL);
  } else if (strcmp(line, "rollover") == 0) {
    c->waiting = true;
    int e = tks_archiver_rollover(srv, rollover_done, c);
    if (e == 0) {
      tks_buf_finish(&out);
      return; /* answered by rollover_done, now or later */
    }
    c->waiting = false;
    char why[160];
    snprintf(why, sizeof why, "rollover: %s",
             e == -ENOTSUP ? "the archive is disabled (archive.enabled: false)" : strerror(-e));
    r = error_response(&out, why, NULL);
  } else if (tks_query_export_begin(srv, line, &out, &c->export)) {
    if (c->export) {
      /* Streamed: chunks follow as the client takes them (on_written),
       * two in flight, so that the next is made while the client reads
       * the last (a chunk is larger than a Unix socket's buffer). */
      c->waiting = true;
      export_more(c, &out);
      if (c->export && !c->closing) {
        tks_buf_init(&out);
        export_more(c, &out);
      }
      return;
    }
    r = 0; /* an error answer */
  } else if (strcmp(line, "subscribers") == 0) {
    r = tks_subscribe_list(srv, &out); /* one line a subscriber, none: only the empty line */
  } else if (*line == '\0') {
    r = error_response(&out, "empty request (try: " REQUESTS ")", NULL);
  } else if (tks_query_handle(srv, line, &out)) {
    r = 0; /* answered (an error answer included) */
  } else {
    r = error_response(&out, "unknown request (try: " REQUESTS "):", line);
  }
  if (r) {
    tks_buf_finish(&out);
    r = error_response(&out, "out of memory", NULL);
  }
  tks_buf_putc(&out, '\n'); /* the empty line that ends every response */
  send_response(c, &out);
}

/* Answers every complete line in c->in (up to a `sync` still waiting). */
static void handle_lines(struct cconn *c) {
  size_t start = 0;
  c->in_lines = true;
  while (!c->closing && !c->waiting && c->pipe.write_queue_size <= OUT_CAP && start < c->in.len) {
    char *nl = memchr(c->in.data + start, '\n', c->in.len - start);
    if (!nl) break;
    *nl = '\0';
    handle_request(c, c->in.data + start);
    start = (size_t)(nl - c->in.data) + 1;
  }
  c->in_lines = false;
  tks_buf_consume(&c->in, start);
  if (c->in.len == 0 && c->in.cap > IN_KEEP) tks_buf_finish(&c->in); /* a burst of requests */
  count_in(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out) {
  (void)suggested;
  struct cconn *c = (struct cconn *)h;
  *out = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/*
 * Answers what can be answered, then decides whether to read on: not while
 * a client leaves more than OUT_CAP of answers unread, nor while requests
 * pile up behind a waiting `sync`, so no client grows the daemon's memory
 * without bound.  At EOF, closes once everything read is answered.
 */
static void pump(struct cconn *c) {
  if (c->closing || c->finishing) return;
  handle_lines(c);
  if (c->closing) return;
  /* Only the unfinished last line can be too long. */
  const char *nl = c->in.len ? memrchr(c->in.data, '\n', c->in.len) : NULL;
  size_t tail = nl ? c->in.len - (size_t)(nl - c->in.data) - 1 : c->in.len;
  if (tail > REQUEST_MAX) {
    struct tks_buf out;
    tks_buf_init(&out);
    error_response(&out, "request line too long (the most is 4096 bytes)", NULL);
    tks_buf_putc(&out, '\n');
    send_response(c, &out);
    cconn_finish(c);
    return;
  }
  bool blocked = c->waiting || c->pipe.write_queue_size > OUT_CAP;
  if (c->eof) {
    if (blocked) return; /* sync_done or on_written comes back here */
    if (c->in.len > 0 && !nl) {
      /* A last request without its newline still gets its answer. */
      tks_buf_putc(&c->in, '\n');
      handle_lines(c);
      if (c->closing || c->waiting || c->pipe.write_queue_size > OUT_CAP) return;
    }
    if (c->in.len == 0) cconn_finish(c);
    return;
  }
  bool want = c->pipe.write_queue_size <= OUT_CAP && !(c->waiting && c->in.len > IN_CAP);
  if (want && !c->reading) {
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    c->reading = true;
    c->partial_since_ms = uv_now(c->srv->loop); /* not read meanwhile: its time starts now */
  } else if (!want && c->reading) {
    uv_read_stop((uv_stream_t *)&c->pipe);
    c->reading = false;
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct cconn *c = (struct cconn *)s;
  if (nread > 0) {
    if (tks_buf_append(&c->in, buf->base, (size_t)nread)) {
      cconn_close(c);
      return;
    }
    count_in(c);
    /* The line left unfinished began in this read, unless none ended in it. */
    bool ended = memchr(buf->base, '\n', (size_t)nread) != NULL;
    if (ended || !c->partial) c->partial_since_ms = uv_now(c->srv->loop);
    c->partial = buf->base[nread - 1] != '\n';
    pump(c);
    return;
  }
  if (nread == 0) return;
  if (c->closing) return;
  uv_read_stop((uv_stream_t *)&c->pipe);
  c->reading = false;
  if (nread != UV_EOF) {
    cconn_close(c);
    return;
  }
  c->eof = true;
  pump(c);
}

static void on_connection(uv_stream_t *server, int status) {
  struct tks_server *srv = server->data;
  if (status < 0) return;
  struct cconn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->srv = srv;
  conn_list_init(&c->link);
  uv_pipe_init(srv->loop, &c->pipe, 0);
  if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
    c->closing = true;
    uv_close((uv_handle_t *)&c->pipe, on_cconn_closed);
    return;
  }
  conn_list_add(&C.conns, &c->link);
  uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
  c->reading = true;
}

/* A socket file at path: is a daemon answering there?  1 yes, 0 no (stale),
 * -errno when the path is something else than a socket. */
static int socket_in_use(const char *path) {
  struct stat sb;
  if (lstat(path, &sb) != 0) return errno == ENOENT ? 0 : -errno;
  if (!S_ISSOCK(sb.st_mode)) return -EEXIST;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  close(fd);
  return r == 0 ? 1 : 0;
}

static void make_parent_dir(const char *path) {
  char dir[sizeof((struct sockaddr_un *)0)->sun_path];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) return;
  *slash = '\0';
  if (mkdir(dir, 0755) == 0) tks_log(TKS_LOG_INFO, "created directory %s", dir);
}

/* control.socket_group, then control.socket_mode, on the bound socket
 * file (the config checked both).  0 or a negative errno (logged). */
static int apply_owner_and_mode(struct tks_server *srv, const char *path) {
  const char *group = srv->cfg.control.socket_group;
  if (group[0]) {
    errno = 0;
    struct group *g = getgrnam(group);
    int e = g ? 0 : errno ? errno : ENOENT;
    if (g && chown(path, (uid_t)-1, g->gr_gid) != 0) e = errno;
    if (e) {
      tks_log(TKS_LOG_ERROR,
              "control socket %s: cannot give it to group %s (control.socket_group): %s", path,
              group, strerror(e));
      return -e;
    }
  }
  mode_t mode = (mode_t)strtoul(srv->cfg.control.socket_mode, NULL, 8);
  if (chmod(path, mode) != 0) {
    int e = errno;
    tks_log(TKS_LOG_ERROR, "control socket %s: cannot set mode %s (control.socket_mode): %s", path,
            srv->cfg.control.socket_mode, strerror(e));
    return -e;
  }
  return 0;
}

int tks_control_start(struct tks_server *srv) {
  const char *path = srv->cfg.control.socket;
  make_parent_dir(path);
  int used = socket_in_use(path);
  if (used == 1) {
    tks_log(TKS_LOG_ERROR, "control socket %s is in use by a running daemon", path);
    return -EADDRINUSE;
  }
  if (used < 0) {
    tks_log(TKS_LOG_ERROR, "control socket path %s exists and is not a socket: %s", path,
            strerror(-used));
    return used;
  }
  if (unlink(path) == 0) tks_log(TKS_LOG_INFO, "removed stale control socket %s", path);
  uv_pipe_init(srv->loop, &C.pipe, 0);
  C.pipe.data = srv;
  C.open = true;
  mode_t old = umask(0177); /* the socket is born 0600 */
  int r = uv_pipe_bind(&C.pipe, path);
  umask(old);
  if (r == 0) r = apply_owner_and_mode(srv, path);
  if (r == 0) r = uv_listen((uv_stream_t *)&C.pipe, SOMAXCONN, on_connection);
  if (r) {
    tks_log(TKS_LOG_ERROR, "cannot listen on control socket %s: %s", path, uv_strerror(r));
    return r;
  }
  tks_log(TKS_LOG_INFO, "control socket %s (mode %s%s%s)", path, srv->cfg.control.socket_mode,
          srv->cfg.control.socket_group[0] ? ", group " : "", srv->cfg.control.socket_group);
  return 0;
}

unsigned tks_control_sweep(struct tks_server *srv, uint64_t now_ms) {
  uint64_t timeout_ms = (srv->cfg.ingest.message_timeout_ns + 999999) / 1000000;
  unsigned n = 0;
  if (!timeout_ms) return 0;
  for (struct conn_link *l = C.conns.next, *next; l != &C.conns; l = next) {
    next = l->next;
    struct cconn *c = CCONN_OF(l);
    /* Only a line the client could have finished: not one we stopped reading. */
    if (!c->partial || !c->reading || c->finishing || now_ms - c->partial_since_ms < timeout_ms)
      continue;
    tks_log(TKS_LOG_INFO,
            "closing control connection: a request line unfinished after %llu ms "
            "(ingest.message_timeout)",
            (unsigned long long)(now_ms - c->partial_since_ms));
    cconn_close(c);
    n++;
  }
  return n;
}

void tks_control_stop(struct tks_server *srv) {
  if (C.open) {
    C.open = false;
    uv_close((uv_handle_t *)&C.pipe, NULL);
    unlink(srv->cfg.control.socket);
  }
  while (C.conns.next != &C.conns) cconn_close(CCONN_OF(C.conns.next));
}

/*
 * GET /metrics over HTTP (metrics.listen), on the event loop: the same
 * Prometheus text as `stats prometheus` (tks_metrics_render, which the
 * control socket calls too), HEAD as GET without the body, 404 for other
 * paths, 405 for other methods.  A connection reads one request head into
 * a fixed 8 KiB buffer (lib/http.c parses it; over that: 431), answers it,
 * and reads the next (HTTP/1.1 keep-alive; a request with a body, an
 * error or "Connection: close" is answered with Connection: close, the
 * write side shut and the rest read away).  A whole request is due within
 * METRICS_REQUEST_MS of the connection or of its first byte; a connection
 * kept alive after an answer may wait METRICS_IDLE_MS for the next (a
 * Prometheus scrapes every 15 s to a minute); an answer is to be taken
 * within METRICS_WRITE_MS; at most METRICS_MAX_CONNECTIONS at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "http.h"

#define METRICS_MAX_HEAD 8192      /* bytes of a request head */
#define METRICS_MAX_CONNECTIONS 16 /* open at once; more are answered 503 and closed */
#define METRICS_REQUEST_MS 5000    /* a whole request within this, or closed */
#define METRICS_WRITE_MS 30000     /* an answer taken by the peer within this, or closed */
#define METRICS_IDLE_MS 120000     /* kept alive: the next request begun within this, or closed */
#define METRICS_SWEEP_MS 1000

struct mconn {
  uv_tcp_t tcp; /* first: the handle's address is the conn's */
  struct conn_link link;
  struct tks_server *srv;
  uv_write_t write;
  uv_shutdown_t shutdown;
  struct tks_buf out; /* the answer being written */
  size_t counted;     /* in srv->query_buffer_bytes: the conn, and out while written */
  uint64_t since_ms;  /* waiting for a whole request, or writing, since */
  bool closing, writing, reading;
  bool ending;   /* answered with Connection: close: shut, reading away what comes */
  bool answered; /* kept alive after an answer: idle until the next request begins */
  size_t len;
  char peer[80];
  char buf[METRICS_MAX_HEAD];
};

#define MCONN_OF(l) ((struct mconn *)((char *)(l)-offsetof(struct mconn, link)))

static struct {
  uv_tcp_t listener;
  bool listener_open;
  uv_timer_t sweep;
  bool sweep_open;
  struct conn_link conns;
  unsigned n;
  char addr[320];
  uint16_t port;
  uint64_t connections_total, scrapes, errors, refused, closed_timeout;
} M = {.conns = {&M.conns, &M.conns}};

int tks_metrics_render(struct tks_server *srv, struct tks_buf *out) {
  struct tks_stats *st = tks_stats_create();
  if (!st) return -ENOMEM;
  if (srv->loading) {
    tks_server_stats_loading(srv, st);
    tks_load_stats(srv, st);
  } else {
    tks_server_stats(srv, st, false);
  }
  int r = tks_stats_prometheus(st, out);
  if (r == 0) {
    /* The start by the daemon's clocks, for when /proc/stat is hidden. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double up = (double)(tks_mono_ns() - srv->start_mono_ns) / 1e9;
    r = tks_stats_process(out, (double)now.tv_sec + now.tv_nsec / 1e9 - up);
  }
  tks_stats_destroy(st);
  return r;
}

/* memory.query_buffer_bytes: the connection (its read buffer; calloc'd,
 * so touched) and the answer being written. */
static void count(struct mconn *c) {
  size_t now = sizeof *c + tks_buf_bytes(&c->out);
  c->srv->query_buffer_bytes += now;
  c->srv->query_buffer_bytes -= c->counted;
  c->counted = now;
}

static void on_closed(uv_handle_t *h) {
  struct mconn *c = (struct mconn *)h;
  c->srv->query_buffer_bytes -= c->counted;
  tks_buf_finish(&c->out);
  free(c);
}

static void mconn_close(struct mconn *c) {
  if (c->closing) return;
  c->closing = true;
  conn_list_del(&c->link);
  M.n--;
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out) {
  (void)suggested;
  struct mconn *c = (struct mconn *)h;
  if (c->ending) { /* read away: the bytes are not kept */
    out->base = c->buf;
    out->len = sizeof c->buf;
    return;
  }
  out->base = c->buf + c->len;
  out->len = sizeof c->buf - c->len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void process(struct mconn *c);

static void start_reading(struct mconn *c) {
  if (c->reading || c->closing) return;
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = true;
}

static void stop_reading(struct mconn *c) {
  if (!c->reading) return;
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = false;
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct mconn *c = req->data;
  if (status < 0) mconn_close(c); /* else the peer's EOF, or the sweep, closes it */
}

static void on_written(uv_write_t *req, int status) {
  struct mconn *c = req->data;
  c->writing = false;
  tks_buf_finish(&c->out);
  count(c);
  if (c->closing) return;
  if (status < 0) {
    mconn_close(c);
    return;
  }
  c->since_ms = uv_now(c->srv->loop);
  c->answered = true;
  if (c->ending) {
    /* Closing now, with bytes of the peer unread, would reset the
     * connection and could lose the answer: shut our side, read away. */
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
      mconn_close(c);
      return;
    }
    c->len = 0;
    start_reading(c);
    return;
  }
  process(c); /* a request that came with the last one */
  if (!c->writing && !c->closing) start_reading(c);
}

/* Writes status (and body, unless head) with the connection kept or not. */
static void answer(struct mconn *c, int status, bool keep, bool http10_keep, const char *extra,
                   const char *type, const char *body, size_t body_len, bool head) {
  struct tks_buf *o = &c->out;
  int r = tks_buf_printf(o, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                         status, tks_http_reason(status), type, body_len, extra,
                         !keep         ? "Connection: close\r\n"
                         : http10_keep ? "Connection: keep-alive\r\n"
                                       : "");
  if (!head && body_len) r |= tks_buf_append(o, body, body_len);
  if (status == 200)
    M.scrapes++;
  else
    M.errors++;
  if (r) {
    mconn_close(c);
    return;
  }
  c->ending = !keep;
  count(c);
  stop_reading(c);
  c->writing = true;
  c->since_ms = uv_now(c->srv->loop);
  c->write.data = c;
  uv_buf_t b = uv_buf_init(o->data, (unsigned)o->len);
  if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
    c->writing = false;
    mconn_close(c);
  }
}

static void answer_error(struct mconn *c, int status, const char *extra, const char *why) {
  char body[200];
  int n = snprintf(body, sizeof body, "%d %s: %s\n", status, tks_http_reason(status), why);
  answer(c, status, false, false, extra, "text/plain; charset=utf-8", body, (size_t)n, false);
}

/* The request at the front of c->buf, if it is whole. */
static void process(struct mconn *c) {
  struct tks_server *srv = c->srv;
  if (c->writing || c->closing || c->ending || c->len == 0) return;
  struct tks_http_request req;
  int r = tks_http_parse(c->buf, c->len, sizeof c->buf, &req);
  if (r == 0) return;
  if (r < 0) {
    int status = r == -E2BIG ? 431 : r == -EPROTONOSUPPORT ? 505 : 400;
    tks_server_log_limited(srv, "metrics: %d %s for %s", status, tks_http_reason(status), c->peer);
    answer_error(c, status, "",
                 status == 431   ? "the request head is over 8 KiB"
                 : status == 505 ? "HTTP/1.0 and HTTP/1.1 only"
                                 : "not an HTTP/1.x request");
    return;
  }
  size_t path_len = req.target_len;
  const char *q = memchr(req.target, '?', req.target_len);
  if (q) path_len = (size_t)(q - req.target);
  bool metrics = path_len == 8 && memcmp(req.target, "/metrics", 8) == 0;
  /* The body of a request is never read: answer it, then close. */
  bool keep = req.keep_alive && !req.has_body;
  bool http10_keep = keep && req.minor == 0;
  memmove(c->buf, c->buf + req.head_len, c->len - req.head_len);
  c->len -= req.head_len;
  if (!metrics) {
    static const char nf[] = "404 Not Found: the metrics are at /metrics\n";
    answer(c, 404, keep, http10_keep, "", "text/plain; charset=utf-8", nf, sizeof nf - 1,
           req.method == TKS_HTTP_HEAD);
    return;
  }
  if (req.method == TKS_HTTP_OTHER) {
    static const char na[] = "405 Method Not Allowed: GET or HEAD /metrics\n";
    answer(c, 405, keep, http10_keep, "Allow: GET, HEAD\r\n", "text/plain; charset=utf-8", na,
           sizeof na - 1, false);
    return;
  }
  struct tks_buf body = {0};
  if (tks_metrics_render(srv, &body) != 0) {
    tks_buf_finish(&body);
    answer_error(c, 500, "", "out of memory");
    return;
  }
  answer(c, 200, keep, http10_keep, "", "text/plain; version=0.0.4; charset=utf-8", body.data,
         body.len, req.method == TKS_HTTP_HEAD);
  tks_buf_finish(&body);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  struct mconn *c = (struct mconn *)s;
  if (nread > 0) {
    if (c->ending) return; /* read away */
    if (c->len == 0) c->since_ms = uv_now(c->srv->loop); /* a request begins: its clock */
    c->len += (size_t)nread;
    process(c);
    return;
  }
  if (nread == 0) return;
  mconn_close(c); /* EOF or an error: an unfinished request is dropped */
}

static void on_connection(uv_stream_t *server, int status) {
  struct tks_server *srv = server->data;
  if (status < 0) return;
  struct mconn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->srv = srv;
  count(c);
  uv_tcp_init(srv->loop, &c->tcp);
  conn_list_init(&c->link);
  conn_list_add(&M.conns, &c->link);
  M.n++;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    mconn_close(c);
    return;
  }
  uint8_t ip[16];
  tks_tcp_peer(&c->tcp, c->peer, sizeof c->peer, ip);
  M.connections_total++;
  c->since_ms = uv_now(srv->loop);
  if (M.n > METRICS_MAX_CONNECTIONS) {
    M.refused++;
    if (M.n > 2 * METRICS_MAX_CONNECTIONS) { /* a flood: not even an answer */
      mconn_close(c);
      return;
    }
    tks_server_log_limited(srv, "metrics: refusing %s: %u connections are open", c->peer,
                           METRICS_MAX_CONNECTIONS);
    answer_error(c, 503, "Retry-After: 1\r\n", "too many connections to /metrics");
    return;
  }
  start_reading(c);
}

/* Closes connections without a whole request for METRICS_REQUEST_MS (a
 * slow or silent client: slowloris), ending ones, and ones not taking
 * their answer for METRICS_WRITE_MS. */
static void on_sweep(uv_timer_t *t) {
  struct tks_server *srv = t->data;
  uint64_t now = uv_now(srv->loop);
  for (struct conn_link *l = M.conns.next, *next; l != &M.conns; l = next) {
    next = l->next;
    struct mconn *c = MCONN_OF(l);
    uint64_t age = now - c->since_ms;
    uint64_t limit = c->writing                             ? METRICS_WRITE_MS
                     : c->answered && !c->ending && !c->len ? METRICS_IDLE_MS
                                                            : METRICS_REQUEST_MS;
    if (c->closing || age < limit) continue;
    if (!c->ending && !c->writing) {
      M.closed_timeout++;
      if (c->len)
        tks_server_log_limited(srv, "metrics: closing %s: no whole request in %u ms (%zu bytes)",
                               c->peer, METRICS_REQUEST_MS, c->len);
    }
    mconn_close(c);
  }
}

int tks_metrics_start(struct tks_server *srv) {
  const struct tks_config *cfg = &srv->cfg;
  if (!cfg->metrics.host[0]) return 0; /* off */
  int r = tks_tcp_listen(srv->loop, "metrics.listen", cfg->metrics.listen, cfg->metrics.host,
                         cfg->metrics.port, &M.listener, &M.listener_open, M.addr, sizeof M.addr,
                         &M.port);
  if (r) return r;
  M.listener.data = srv;
  r = uv_listen((uv_stream_t *)&M.listener, SOMAXCONN, on_connection);
  if (r) {
    tks_log(TKS_LOG_ERROR, "cannot listen on %s (metrics.listen): %s", M.addr, uv_strerror(r));
    return r;
  }
  uv_timer_init(srv->loop, &M.sweep);
  M.sweep.data = srv;
  M.sweep_open = true;
  uv_timer_start(&M.sweep, on_sweep, METRICS_SWEEP_MS, METRICS_SWEEP_MS);
  snprintf(srv->metrics_addr, sizeof srv->metrics_addr, "%s", M.addr);
  tks_log(TKS_LOG_INFO, "metrics on http://%s/metrics (Prometheus text, max %u connections)",
          M.addr, METRICS_MAX_CONNECTIONS);
  return 0;
}

void tks_metrics_stop(struct tks_server *srv) {
  (void)srv;
  if (M.listener_open) {
    M.listener_open = false;
    uv_close((uv_handle_t *)&M.listener, NULL);
  }
  if (M.sweep_open) {
    M.sweep_open = false;
    uv_close((uv_handle_t *)&M.sweep, NULL);
  }
  while (M.conns.next != &M.conns) mconn_close(MCONN_OF(M.conns.next));
}

static const struct tks_stat ST_METRICS_LISTEN = TKS_STAT("metrics.listen", GAUGE, NONE, NULL);
static const struct tks_stat ST_METRICS_PORT = TKS_STAT("metrics.port", GAUGE, NONE, NULL);
static const struct tks_stat ST_METRICS_CONNECTIONS = TKS_STAT(
    "metrics.connections", GAUGE, NONE, "HTTP connections to /metrics open now");
static const struct tks_stat ST_METRICS_CONNECTIONS_TOTAL = TKS_STAT(
    "metrics.connections_total", COUNTER, NONE, "HTTP connections to the metrics port accepted");
static const struct tks_stat ST_METRICS_SCRAPES = TKS_STAT("metrics.scrapes", COUNTER, NONE,
                                                           "GET and HEAD /metrics answered 200");
static const struct tks_stat ST_METRICS_ERRORS = TKS_STAT(
    "metrics.errors", COUNTER, NONE, "HTTP requests answered with an error (404, 405, 4xx, 5xx)");
static const struct tks_stat ST_METRICS_REFUSED = TKS_STAT(
    "metrics.refused", COUNTER, NONE, "HTTP connections refused (503) at the connection limit");
static const struct tks_stat ST_METRICS_CLOSED_TIMEOUT = TKS_STAT(
    "metrics.closed_timeout", COUNTER, NONE,
    "HTTP connections closed without a whole request in time");

void tks_metrics_stats(struct tks_server *srv, struct tks_stats *st) {
  (void)srv;
  tks_stat_str(st, &ST_METRICS_LISTEN, M.listener_open ? M.addr : "off");
  tks_stat_u64(st, &ST_METRICS_PORT, M.listener_open ? M.port : 0);
  tks_stat_u64(st, &ST_METRICS_CONNECTIONS, M.n);
  tks_stat_u64(st, &ST_METRICS_CONNECTIONS_TOTAL, M.connections_total);
  tks_stat_u64(st, &ST_METRICS_SCRAPES, M.scrapes);
  tks_stat_u64(st, &ST_METRICS_ERRORS, M.errors);
  tks_stat_u64(st, &ST_METRICS_REFUSED, M.refused);
  tks_stat_u64(st, &ST_METRICS_CLOSED_TIMEOUT, M.closed_timeout);
}

/*
 * The ingest server: a libuv TCP listener; each connection reads into its
 * own buffer (read_buffer bytes), decodes every complete msgpack message in
 * it and appends the ticks to the store, keeping a partial message at the
 * front of the buffer for the next read.  Per-tick problems are counted and
 * the stream goes on; protocol errors close that connection only.  Slow and
 * idle clients: a read notes when the unfinished message began, and one
 * sweep a second (tks_ingest_sweep) closes what is too slow; connections
 * are limited per address, and a full server makes room by closing the
 * slowest or longest idle one.  The listening socket is made before the
 * store is loaded, so that a port in use fails the start at once, but it is
 * watched only once loaded (tks_ingest_serve): until then connections wait
 * in the kernel's backlog, neither accepted nor read.
 *
 * Producer acknowledgements (README "Producer acknowledgements"): a
 * connection whose first message is a hello asking for acks gets a struct
 * ack; its reads count accepted and rejected messages from the totals
 * (nothing per accepted tick), rejects note their seq and reason, and a
 * 50 ms timer and each fsync (durability.c's synced listener) write the
 * counts back with uv_write, the bytes in flight bounded.  A connection
 * without one pays one predictable branch a read.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "http.h"
#include "shape.h"

#define ACK_INTERVAL_MS 50        /* counts are written back at most this often */
#define ACK_OUT_MAX (64u << 10)   /* bytes written to a producer and not yet sent, at most */
#define ACK_MARKS 64              /* reads whose ticks wait for their fsync, kept apart */
#define REJECT_DETAILS_PER_S 1000 /* reject messages a connection gets a second, at most */

/* A connection that asked for acknowledgements (its hello). */
struct conn;
struct ack {
  struct conn_link link; /* in I.acks */
  struct conn *conn;
  struct tks_producer *prod; /* named, or NULL */
  uint64_t seq;              /* the seq of the next message */
  uint64_t accepted, rejected, durable;
  uint64_t sent_accepted, sent_rejected, sent_durable;
  bool sent_once;
  /* During a read: srv->ticks_accepted when it began, rejects so far. */
  uint64_t accepted0, read_rejected;
  /* Reads with accepted ticks not yet durable: the global accepted count
   * at their end, and this connection's accepted count then. */
  struct {
    uint64_t global, mine;
  } mark[ACK_MARKS];
  unsigned nmarks;
  struct tks_buf details; /* reject messages not yet written */
  uint64_t omitted;       /* reject details dropped since the last written */
  uint64_t window_ms;     /* REJECT_DETAILS_PER_S's second, and its count */
  unsigned window_rejects;
  size_t out_bytes; /* handed to uv_write, not yet written */
};

struct conn {
  uv_tcp_t tcp; /* first: the handle's address is the conn's */
  struct conn_link link;
  struct tks_server *srv;
  char *buf;
  size_t len, cap;
  char peer[80];
  bool closing;
  bool reading;            /* uv_read_start'ed */
  bool yielded;            /* stopped for one loop turn so others get theirs */
  unsigned burst;          /* reads since the connection last yielded */
  uint64_t last_active_ms; /* uv_now of the last read */
  /* An unfinished message at the front of buf: since when, and min_rate's
   * window (from its first byte, then every TKS_INGEST_RATE_WINDOW_MS). */
  bool partial;
  uint64_t partial_since_ms, window_start_ms, window_bytes;
  struct conn_link ip_link; /* in the bucket of its address */
  uint8_t ip[16];           /* IPv6, or IPv4 as ::ffff:a.b.c.d */
  struct tks_shape_cache shape; /* the keys this client sends, its recent symbols */
  bool fresh;                   /* its first message is not read yet: it may be a hello */
  bool ending;                  /* its last answer is being written, then it is closed */
  uint64_t ending_since_ms;
  struct ack *ack; /* NULL: fire-and-forget */
};

/* libuv reads a busy stream up to 32 times in one poll; a few reads of
 * READ_BURST buffers at most, then the connection yields the loop for one
 * turn, so signals, the control socket and other clients are served. */
#define READ_BURST 4
#define STOP_DRAIN_NS 3000000000u /* the most a stop spends reading what was queued */

#define CONN_OF(l) ((struct conn *)((char *)(l) - offsetof(struct conn, link)))
#define IP_BUCKETS 4096  /* connections by address, for max_connections_per_ip */
#define NO_VICTIM_MS 100 /* a full server that found none to close looks again after this */

/* One server a process: the listener and its connections are file-local. */
static struct {
  uv_tcp_t listener;
  bool listener_open;
  uv_idle_t yield_idle; /* restarts connections that yielded the loop */
  bool yield_started;
  struct conn_link conns; /* list head */
  struct conn_link by_ip[IP_BUCKETS];
  uint64_t no_victim_until_ms; /* refuse at max_connections without a scan until then */
  struct conn_link acks;       /* the connections with acks (struct ack's link) */
  uv_timer_t ack_timer;
  bool ack_timer_open;
  uint64_t nacks, acks_sent, welcomes, rejects_reported, rejects_omitted, hellos_refused, takeovers;
} I = {.conns = {&I.conns, &I.conns}, .acks = {&I.acks, &I.acks}};

static void ack_end(struct conn *c);

static struct conn *conn_of_ip(struct conn_link *l) {
  return (struct conn *)((char *)l - offsetof(struct conn, ip_link));
}

static struct conn_link *ip_bucket(const uint8_t ip[16]) {
  return &I.by_ip[tks_fnv1a(ip, 16) & (IP_BUCKETS - 1)];
}

/* Open connections from ip, counted up to limit. */
static unsigned count_from(const uint8_t ip[16], unsigned limit) {
  struct conn_link *head = ip_bucket(ip);
  unsigned n = 0;
  for (struct conn_link *l = head->next; l != head && n < limit; l = l->next)
    if (memcmp(conn_of_ip(l)->ip, ip, 16) == 0) n++;
  return n;
}

static void on_conn_closed(uv_handle_t *h) {
  struct conn *c = (struct conn *)h;
  if (c->buf) c->srv->read_buffer_bytes -= c->cap;
  if (c->ack) tks_buf_finish(&c->ack->details);
  free(c->ack);
  free(c->buf);
  free(c);
}

static void conn_close(struct conn *c) {
  if (c->closing) return;
  c->closing = true;
  c->srv->conns_current--;
  conn_list_del(&c->link);
  conn_list_del(&c->ip_link);
  if (c->ack) ack_end(c);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* ---- acknowledgements ------------------------------------------------- */

static struct ack *ack_of(struct conn_link *l) {
  return (struct ack *)((char *)l - offsetof(struct ack, link));
}

struct out_req {
  uv_write_t req;
  struct conn *c;
  size_t len;
  char data[];
};

static void ack_flush(struct conn *c);

static void on_out_written(uv_write_t *req, int status) {
  struct out_req *w = (struct out_req *)req;
  struct conn *c = w->c;
  if (c->ack) c->ack->out_bytes -= w->len;
  free(w);
  (void)status; /* what waited for room goes with the next tick of the ack timer */
}

/* Writes b's bytes to c (a copy; b is emptied).  0 or -errno. */
static int conn_write(struct conn *c, struct tks_buf *b) {
  if (b->len == 0) return 0;
  struct out_req *w = malloc(sizeof *w + b->len);
  if (!w) return -ENOMEM;
  w->c = c;
  w->len = b->len;
  memcpy(w->data, b->data, b->len);
  b->len = 0;
  uv_buf_t ub = uv_buf_init(w->data, (unsigned)w->len);
  int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, on_out_written);
  if (r) {
    free(w);
    return r;
  }
  if (c->ack) c->ack->out_bytes += w->len;
  return 0;
}

/* What changed goes out: the reject details kept, a note of those left
 * out, and the counts.  Nothing while ACK_OUT_MAX bytes wait for the peer
 * (the ack timer comes back here): a producer that does not read gets the
 * newest counts once it does, and no unbounded queue. */
static void ack_write(struct conn *c, bool forced) {
  struct ack *a = c->ack;
  if (c->closing || (!forced && a->out_bytes >= ACK_OUT_MAX)) return;
  bool counts = !a->sent_once || a->accepted != a->sent_accepted ||
                a->rejected != a->sent_rejected || a->durable != a->sent_durable;
  if (!counts && a->details.len == 0 && a->omitted == 0) return;
  int r = 0;
  if (a->omitted) r |= tks_hello_omitted(&a->details, a->omitted);
  r |= tks_hello_ack(&a->details, a->accepted, a->rejected, a->durable);
  if (r == 0) r = conn_write(c, &a->details);
  a->details.len = 0;
  if (r) {
    tks_server_log_limited(c->srv, "acks to %s not written: %s", c->peer, uv_strerror(r));
    return;
  }
  a->omitted = 0;
  a->sent_once = true;
  a->sent_accepted = a->accepted;
  a->sent_rejected = a->rejected;
  a->sent_durable = a->durable;
  I.acks_sent++;
}

static void ack_flush(struct conn *c) { ack_write(c, false); }

/* The durable count of a: its accepted ticks whose global number is
 * fsynced.  True when it grew. */
static bool ack_durable(struct ack *a, uint64_t synced) {
  unsigned k = 0;
  while (k < a->nmarks && a->mark[k].global <= synced) k++;
  if (k == 0) return false;
  a->durable = a->mark[k - 1].mine;
  memmove(a->mark, a->mark + k, (a->nmarks - k) * sizeof a->mark[0]);
  a->nmarks -= k;
  return true;
}

/* durability.c's synced listener: the counts go at once. */
static void on_synced(struct tks_server *srv, uint64_t synced) {
  (void)srv;
  for (struct conn_link *l = I.acks.next; l != &I.acks; l = l->next) {
    struct ack *a = ack_of(l);
    if (ack_durable(a, synced) && !a->conn->ending) ack_flush(a->conn);
  }
}

static void on_ack_timer(uv_timer_t *t) {
  (void)t;
  for (struct conn_link *l = I.acks.next; l != &I.acks; l = l->next)
    if (!ack_of(l)->conn->ending) ack_flush(ack_of(l)->conn);
}

/* A connection with acks is closing: out of the list, its producer free. */
static void ack_end(struct conn *c) {
  struct ack *a = c->ack;
  conn_list_del(&a->link);
  if (a->prod && a->prod->conn == c) a->prod->conn = NULL;
  a->prod = NULL;
  if (--I.nacks == 0 && I.ack_timer_open) uv_timer_stop(&I.ack_timer);
}

/* A reject of the message being read: counted for the read, and told
 * (seq, reason, field) within REJECT_DETAILS_PER_S and ACK_OUT_MAX. */
static __attribute__((noinline)) void ack_reject(struct conn *c, enum tks_reason reason,
                                                 const char *field) {
  struct ack *a = c->ack;
  struct tks_server *srv = c->srv;
  uint64_t seq = a->seq + (srv->ticks_accepted - a->accepted0) + a->read_rejected;
  a->read_rejected++;
  if (a->prod) a->prod->rejected++;
  uint64_t now = uv_now(srv->loop);
  if (now - a->window_ms >= 1000) {
    a->window_ms = now;
    a->window_rejects = 0;
  }
  if (a->window_rejects < REJECT_DETAILS_PER_S && a->details.len + a->out_bytes < ACK_OUT_MAX &&
      tks_hello_reject(&a->details, seq, tks_reason_name(reason), field) == 0) {
    a->window_rejects++;
    I.rejects_reported++;
  } else {
    a->omitted++;
    I.rejects_omitted++;
  }
}

/* The field a decode reject names: the schema's, or the key sent. */
static const char *reject_field(const struct tks_server *srv, const struct tks_decode_result *res) {
  if (res->field >= 0) return srv->cfg.schema.fields[res->field].name;
  if (res->reason == TKS_REASON_UNKNOWN_FIELD || res->reason == TKS_REASON_BAD_KEY)
    return res->detail;
  return NULL;
}

static void ack_read_begin(struct conn *c, bool journal) {
  struct ack *a = c->ack;
  struct tks_server *srv = c->srv;
  a->accepted0 = srv->ticks_accepted;
  a->read_rejected = 0;
  if (a->prod) {
    a->prod->position = a->seq;
    a->prod->accepted0 = srv->ticks_accepted;
    a->prod->rejected = 0;
    if (journal) tks_durability_batch_producer(srv, a->prod);
  }
}

static void ack_read_end(struct conn *c, bool journal) {
  struct ack *a = c->ack;
  struct tks_server *srv = c->srv;
  uint64_t acc = srv->ticks_accepted - a->accepted0;
  a->accepted += acc;
  a->rejected += a->read_rejected;
  a->seq += acc + a->read_rejected;
  a->accepted0 = srv->ticks_accepted;
  a->read_rejected = 0;
  if (a->prod) {
    a->prod->position = a->seq;
    a->prod->accepted0 = srv->ticks_accepted;
    a->prod->rejected = 0;
  }
  if (acc && journal) {
    if (a->nmarks == ACK_MARKS) a->nmarks--; /* the newest takes the last one's place */
    a->mark[a->nmarks].global = srv->ticks_accepted;
    a->mark[a->nmarks++].mine = a->accepted;
  }
}

static void on_shutdown_done(uv_shutdown_t *req, int status) {
  (void)status;
  struct conn *c = req->data;
  free(req);
  conn_close(c);
}

/* Ends c after writing what is in b (an error, the last counts): reading
 * stops, the unread bytes are dropped, the socket closes once the writes
 * are done (or the sweep gives up on a peer that does not read). */
static void conn_end(struct conn *c, struct tks_buf *b) {
  if (c->closing || c->ending) return;
  if (c->reading) uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = false;
  c->ending = true;
  c->ending_since_ms = uv_now(c->srv->loop);
  c->len = 0;
  c->partial = false;
  uv_shutdown_t *req = malloc(sizeof *req);
  if (!req || conn_write(c, b) != 0 ||
      uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown_done) != 0) {
    free(req);
    conn_close(c);
    return;
  }
  req->data = c;
}

/* The stream of c ends here (its EOF or a protocol error): the last
 * counts and details, and error if given, then the close. */
static void ack_finish(struct conn *c, const char *error, bool has_seq) {
  struct ack *a = c->ack;
  ack_write(c, true);
  struct tks_buf b = {0};
  if (error) tks_hello_error(&b, error, has_seq, a ? a->seq : 0);
  conn_end(c, &b);
  tks_buf_finish(&b);
}

/* A connection whose first bytes are an HTTP request: told where the
 * metrics are (in the log, and in a 400 answer for whoever reads it) and
 * closed; counted ingest.http_requests, not as a rejected tick. */
static void http_request(struct conn *c) {
  struct tks_server *srv = c->srv;
  srv->http_on_ingest++;
  char where[400];
  if (srv->metrics_addr[0])
    snprintf(where, sizeof where, "metrics are on http://%s/metrics (metrics.listen)",
             srv->metrics_addr);
  else
    snprintf(where, sizeof where, "metrics are off (set metrics.listen, e.g. 127.0.0.1:9170)");
  tks_server_log_limited(srv,
                         "ingest connection from %s looks like HTTP; %s; this port takes msgpack "
                         "ticks: closing it",
                         c->peer, where);
  struct tks_buf b = {0};
  char body[512];
  int n = snprintf(body, sizeof body, "This is tickslab's ingest port (msgpack ticks); %s\n",
                   where);
  if (tks_buf_printf(&b,
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     n, body) != 0)
    tks_buf_finish(&b);
  conn_end(c, &b);
  tks_buf_finish(&b);
}

/* The hello, when the first message is one: 1 read on (ticks follow, or
 * it was no hello), 0 wait for more bytes, -1 refused (c is ending). */
static int first_message(struct conn *c) {
  struct tks_server *srv = c->srv;
  const uint8_t *p = (const uint8_t *)c->buf;
  /* 'A'..'Z' are positive fixints to msgpack, never a tick: is it HTTP
   * (a Prometheus target pointed at this port)? */
  if (__builtin_expect(c->len && p[0] >= 'A' && p[0] <= 'Z', 0)) {
    int http = tks_http_looks_like(p, c->len);
    if (http < 0) return 0;
    if (http > 0) {
      http_request(c);
      return -1;
    }
  }
  int is = tks_hello_is(p, c->len);
  /* Not known yet: wait, unless the bytes so far are a protocol error
   * already (a huge length prefix), which the decoder tells as ever. */
  if (is < 0 && tks_msgpack_skip(p, c->len, srv->cfg.ingest.max_message_bytes) == 0) return 0;
  if (is < 0) is = 0;
  if (is == 0) {
    c->fresh = false;
    return 1;
  }
  struct tks_hello h;
  char why[200];
  long n = tks_hello_parse(p, c->len, &h, why, sizeof why);
  if (n == 0 && c->len < c->cap) return 0;
  if (n == 0) snprintf(why, sizeof why, "hello: over the read buffer (%zu bytes)", c->cap);
  c->fresh = false;
  struct tks_producer *prod = NULL;
  if (n > 0 && h.producer_len >= 6 && memcmp(h.producer, "kafka:", 6) == 0) {
    snprintf(why, sizeof why, "hello: producer names beginning with kafka: are the Kafka source's");
    n = -EINVAL;
  }
  if (n > 0 && h.producer_len &&
      !(prod = tks_durability_producer(srv, h.producer, h.producer_len, true))) {
    snprintf(why, sizeof why, "hello: %u producers are known, no room for another",
             TKS_MAX_PRODUCERS);
    n = -ENOSPC;
  }
  struct ack *a = n > 0 && h.acks ? calloc(1, sizeof *a) : NULL;
  if (n > 0 && h.acks && !a) {
    snprintf(why, sizeof why, "out of memory");
    n = -ENOMEM;
  }
  if (n <= 0) {
    I.hellos_refused++;
    srv->conns_closed_on_error++;
    tks_server_log_limited(srv, "closing ingest connection from %s: %s", c->peer, why);
    struct tks_buf b = {0};
    tks_hello_error(&b, why, false, 0);
    conn_end(c, &b);
    tks_buf_finish(&b);
    return -1;
  }
  memmove(c->buf, c->buf + n, c->len - (size_t)n);
  c->len -= (size_t)n;
  if (!a) return 1; /* acks: false, fire-and-forget */
  if (prod && prod->conn) {
    /* The producer is back on a new connection: the old one goes, what
     * it had not read with it; the welcome says what was handled. */
    struct conn *old = prod->conn;
    I.takeovers++;
    tks_log(TKS_LOG_INFO, "producer %s reconnected from %s: closing its connection from %s",
            prod->name, c->peer, old->peer);
    conn_close(old);
  }
  c->ack = a;
  a->conn = c;
  a->prod = prod;
  a->seq = prod ? prod->position : 0;
  if (prod) prod->conn = c;
  conn_list_add(&I.acks, &a->link);
  if (I.nacks++ == 0 && I.ack_timer_open)
    uv_timer_start(&I.ack_timer, on_ack_timer, ACK_INTERVAL_MS, ACK_INTERVAL_MS);
  bool journal = srv->cfg.journal.enabled;
  struct tks_buf b = {0};
  int r = tks_hello_welcome(&b, prod ? prod->name : NULL, prod ? prod->len : 0, a->seq, journal,
                            journal ? tks_fsync_name(srv->cfg.journal.fsync) : "off");
  if (r == 0) r = conn_write(c, &b);
  tks_buf_finish(&b);
  if (r) tks_server_log_limited(srv, "welcome to %s not written: %s", c->peer, uv_strerror(r));
  I.welcomes++;
  tks_log(TKS_LOG_DEBUG, "ingest connection from %s: acks%s%s at position %" PRIu64, c->peer,
          prod ? ", producer " : "", prod ? prod->name : "", a->seq);
  return 1;
}

/* Decodes and stores every complete message in c->buf, and hands the bytes
 * of the accepted ticks to the journal.  Returns false when the connection
 * has been closed for a protocol error. */

static bool process(struct conn *c) {
  struct tks_server *srv = c->srv;
  if (__builtin_expect(c->fresh, 0)) {
    int h = first_message(c);
    if (h <= 0) return h == 0;
  }
  const uint8_t *p = (const uint8_t *)c->buf;
  size_t off = 0;
  int64_t now = tks_now_ns(); /* receive time for ticks without ts */
  _Alignas(8) char record[TKS_RECORD_MAX];
  struct tks_dyn_tick dyn;
  struct tks_decode_result res = {.dyn = &dyn};
  /* Journal writes failing: refuse the ticks of this read, or held. */
  bool refusing = tks_intake_journal_refusing(srv);
  /* The Kafka sink's queue over max_queue_bytes under on_full: reject
   * (kafka_sink.c sets it on the loop): refused alike, sink_full. */
  enum tks_reason refused = TKS_REASON_JOURNAL_ERROR;
  if (!refusing && srv->sink_refusing) refusing = true, refused = TKS_REASON_SINK_FULL;
  bool journal = tks_durability_batch(srv, now);
  bool closed = false;
  struct ack *ack = c->ack;
  if (ack) ack_read_begin(c, journal);
  /* Ticks refused for the journal are decoded (protocol errors still close
   * the stream) but not interned: a refused tick adds no symbol. */
  struct tks_decoder check = srv->decoder;
  check.check_only = true;
  const struct tks_decoder *dec = refusing ? &check : &srv->decoder;
  const struct tks_intake_ctx ic = {
      .refusing = refusing, .refuse = refused, .journal = journal, .from = c->peer};
  while (!srv->held) {
    struct tks_intern_mark mark = tks_server_intern_mark(srv);
    enum tks_decode_status st = tks_shape_decode(&c->shape, dec, p + off, c->len - off, now, record,
                                                 &res);
    if (st == TKS_DECODE_NEED_MORE) break;
    if (st == TKS_DECODE_OK || st == TKS_DECODE_DYNAMIC) {
      enum tks_reason why;
      enum tks_intake a = tks_intake(srv, st, record, &dyn, mark, p + off, res.consumed,
                                     res.verbatim, &ic, &why);
      if (a == TKS_INTAKE_PAUSE) break; /* held: the tick stays in c->buf for the resume */
      off += res.consumed;
      if (a == TKS_INTAKE_REJECTED && ack) ack_reject(c, why, NULL);
      continue;
    }
    tks_server_unintern(srv, mark); /* a table filled part-way (too_many_symbols) */
    srv->rejected[res.reason]++;
    if (st == TKS_DECODE_REJECT) {
      off += res.consumed;
      if (ack) ack_reject(c, res.reason, reject_field(srv, &res));
      if (res.reason == TKS_REASON_UNKNOWN_FIELD) tks_tick_note_rejected(&srv->sink, res.detail);
      tks_server_log_limited(srv, "tick from %s rejected: %s%s%s", c->peer,
                             tks_reason_name(res.reason), res.detail[0] ? " " : "", res.detail);
      continue;
    }
    srv->conns_closed_on_error++;
    tks_log(TKS_LOG_WARN, "closing ingest connection from %s: %s%s%s at stream byte offset %zu",
            c->peer, tks_reason_name(res.reason), res.detail[0] ? ", " : "", res.detail, off);
    closed = true;
    break;
  }
  tks_intake_end(srv);
  if (ack) ack_read_end(c, journal);
  if (closed) {
    if (ack) {
      /* Told, with the seq of the message that ended the stream. */
      char why[160];
      snprintf(why, sizeof why, "%s%s%s: the stream cannot go on", tks_reason_name(res.reason),
               res.detail[0] ? ", " : "", res.detail);
      ack_finish(c, why, true);
    } else {
      conn_close(c);
    }
    return false;
  }
  if (off) {
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
  }
  return true;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out) {
  (void)suggested;
  struct conn *c = (struct conn *)h;
  out->base = c->buf + c->len;
  out->len = c->cap - c->len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* After process(): what is left of c->buf (had bytes before) is an
 * unfinished message, begun at now unless it was there before and nothing
 * was consumed. */
static void note_partial(struct conn *c, size_t had, uint64_t now) {
  if (c->len == 0) {
    c->partial = false;
  } else if (!c->partial || c->len < had) {
    c->partial = true;
    c->partial_since_ms = c->window_start_ms = now;
    c->window_bytes = c->len;
  }
}

/* One loop turn later: the connections that yielded read on. */
static void on_yield_idle(uv_idle_t *h) {
  struct tks_server *srv = h->data;
  uv_idle_stop(h);
  for (struct conn_link *l = I.conns.next; l != &I.conns; l = l->next) {
    struct conn *c = CONN_OF(l);
    c->burst = 0;
    if (!c->yielded) continue;
    c->yielded = false;
    if (!c->closing && !c->ending && !c->reading && !srv->held && c->len < c->cap) {
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
      c->reading = true;
    }
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  struct conn *c = (struct conn *)s;
  if (nread > 0) {
    c->len += (size_t)nread;
    c->srv->bytes_received += (uint64_t)nread;
    c->last_active_ms = uv_now(c->srv->loop);
    c->window_bytes += (uint64_t)nread;
    size_t had = c->len;
    if (process(c)) note_partial(c, had, c->last_active_ms);
    if (!c->closing && c->reading && !c->srv->held && ++c->burst >= READ_BURST) {
      uv_read_stop((uv_stream_t *)&c->tcp);
      c->reading = false;
      c->yielded = true;
      if (!uv_is_active((uv_handle_t *)&I.yield_idle)) uv_idle_start(&I.yield_idle, on_yield_idle);
      return;
    }
    /* Held (backpressure) or full with a partial message: read no more for now. */
    if (!c->closing && (c->srv->held || c->len == c->cap) && c->reading) {
      uv_read_stop((uv_stream_t *)&c->tcp);
      c->reading = false;
    }
    return;
  }
  if (nread == 0) return; /* EAGAIN */
  if (nread != UV_EOF)
    tks_log(TKS_LOG_INFO, "ingest connection from %s: %s", c->peer, uv_strerror((int)nread));
  if (c->len)
    tks_log(TKS_LOG_WARN, "ingest connection from %s ended inside a message: %zu bytes dropped",
            c->peer, c->len);
  if (c->ack && nread == UV_EOF) {
    ack_finish(c, NULL, false); /* the last counts, then the close */
    return;
  }
  conn_close(c);
}

/* The yardstick of slow and idle at max_connections: message_timeout, or
 * its default when it is off. */
static uint64_t evict_after_ms(const struct tks_server *srv) {
  uint64_t ns = srv->cfg.ingest.message_timeout_ns;
  return ns ? (ns + 999999) / 1000000 : 10000;
}

/* max_connections are open: closes the connection holding an unfinished
 * message longest, if for over a quarter of the yardstick, else the one
 * silent longest, if for over the yardstick, to let newcomer in.  Returns
 * whether one was closed.  A held ingest has none to close (every client
 * waits for us), and after a scan that found none the next comes only
 * NO_VICTIM_MS later, so a flood of connects costs no scan each. */
static bool make_room(struct tks_server *srv, const char *newcomer) {
  uint64_t now = uv_now(srv->loop);
  if (srv->held || now < I.no_victim_until_ms) return false;
  uint64_t yard = evict_after_ms(srv), slow_age = 0, idle_age = 0;
  struct conn *slow = NULL, *idle = NULL;
  for (struct conn_link *l = I.conns.next; l != &I.conns; l = l->next) {
    struct conn *c = CONN_OF(l);
    uint64_t age = c->partial ? now - c->partial_since_ms : 0;
    uint64_t silent = now - c->last_active_ms;
    if (c->partial && age * 4 > yard && age > slow_age) {
      slow = c;
      slow_age = age;
    } else if (silent > yard && silent > idle_age) {
      idle = c;
      idle_age = silent;
    }
  }
  struct conn *v = slow ? slow : idle;
  if (!v) {
    I.no_victim_until_ms = now + NO_VICTIM_MS;
    return false;
  }
  if (v == slow)
    tks_server_log_limited(srv,
                           "closing ingest connection from %s for one from %s: a message of %zu "
                           "bytes unfinished for %llu ms (max_connections %u reached)",
                           v->peer, newcomer, v->len, (unsigned long long)slow_age,
                           srv->cfg.ingest.max_connections);
  else
    tks_server_log_limited(srv,
                           "closing ingest connection from %s for one from %s: silent for %llu ms "
                           "(max_connections %u reached)",
                           v->peer, newcomer, (unsigned long long)idle_age,
                           srv->cfg.ingest.max_connections);
  srv->conns_closed_for_new++;
  conn_close(v);
  return true;
}

static void on_connection(uv_stream_t *server, int status) {
  struct tks_server *srv = server->data;
  if (status < 0) {
    tks_log(TKS_LOG_WARN, "accept failed: %s", uv_strerror(status));
    return;
  }
  struct conn *c = calloc(1, sizeof *c);
  if (!c) {
    tks_log(TKS_LOG_ERROR, "out of memory accepting a connection");
    return;
  }
  c->srv = srv;
  c->fresh = true;
  tks_shape_init(&c->shape);
  conn_list_init(&c->link);
  uv_tcp_init(srv->loop, &c->tcp);
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  tks_tcp_peer(&c->tcp, c->peer, sizeof c->peer, c->ip);
  conn_list_init(&c->ip_link);
  unsigned per_ip = srv->cfg.ingest.max_connections_per_ip;
  if (per_ip && !srv->stopping && count_from(c->ip, per_ip) >= per_ip) {
    srv->conns_refused_per_ip++;
    tks_server_log_limited(srv,
                           "refusing ingest connection from %s: %u connections from that address "
                           "open (max_connections_per_ip)",
                           c->peer, per_ip);
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  uint64_t max = srv->cfg.ingest.max_connections;
  if (srv->stopping || srv->conns_current > max ||
      (srv->conns_current == max && !make_room(srv, c->peer))) {
    srv->conns_refused++;
    tks_server_log_limited(srv, "refusing ingest connection from %s: %llu connections open (max_connections)",
                           c->peer, (unsigned long long)srv->conns_current);
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  c->cap = srv->cfg.ingest.read_buffer_bytes;
  c->buf = malloc(c->cap);
  if (!c->buf) {
    tks_log(TKS_LOG_ERROR, "out of memory for the read buffer of %s", c->peer);
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  srv->read_buffer_bytes += c->cap;
  srv->conns_current++;
  srv->conns_total++;
  conn_list_add(&I.conns, &c->link);
  conn_list_add(ip_bucket(c->ip), &c->ip_link);
  c->last_active_ms = uv_now(srv->loop);
  tks_log(TKS_LOG_DEBUG, "ingest connection from %s", c->peer);
  if (!srv->held) {
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    c->reading = true;
  }
}

/* The server's hold listener: while any reason holds, no connection is
 * read, so TCP flow control slows the senders; on release, the bytes kept
 * are processed and reading resumes. */
void tks_ingest_on_hold(struct tks_server *srv, bool held) {
  if (!held) {
    for (struct conn_link *l = I.conns.next, *next; l != &I.conns; l = next) {
      next = l->next;
      struct conn *c = CONN_OF(l);
      if (c->ending || (c->len && !process(c))) continue;
      /* What is left waited for us: its time starts now. */
      c->partial = false;
      note_partial(c, c->len, uv_now(srv->loop));
      if (!srv->held && !c->reading && c->len < c->cap) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        c->reading = true;
        c->yielded = false;
        c->last_active_ms = uv_now(srv->loop); /* it waited for us, it was not idle */
      }
    }
    return;
  }
  for (struct conn_link *l = I.conns.next; l != &I.conns; l = l->next) {
    struct conn *c = CONN_OF(l);
    if (c->reading) {
      uv_read_stop((uv_stream_t *)&c->tcp);
      c->reading = false;
    }
  }
}

/* Closes c if its unfinished message is over message_timeout or under
 * min_rate; returns whether it did. */
static bool close_if_slow(struct conn *c, uint64_t now, uint64_t message_ms, uint64_t rate) {
  struct tks_server *srv = c->srv;
  uint64_t age = now - c->partial_since_ms;
  if (message_ms && age >= message_ms) {
    srv->conns_closed_timeout++;
    tks_server_log_limited(srv,
                           "closing ingest connection from %s: a message unfinished after %llu ms "
                           "(%zu bytes of it; message_timeout)",
                           c->peer, (unsigned long long)age, c->len);
    conn_close(c);
    return true;
  }
  uint64_t span = now - c->window_start_ms;
  if (!rate || span < TKS_INGEST_RATE_WINDOW_MS) return false;
  if (c->window_bytes * 1000 < rate * span) {
    srv->conns_closed_slow++;
    tks_server_log_limited(
        srv,
        "closing ingest connection from %s: %llu bytes in %llu ms of an "
        "unfinished message (%zu bytes so far, %llu ms), under min_rate %llu B/s",
        c->peer, (unsigned long long)c->window_bytes, (unsigned long long)span, c->len,
        (unsigned long long)age, (unsigned long long)rate);
    conn_close(c);
    return true;
  }
  c->window_start_ms = now;
  c->window_bytes = 0;
  return false;
}

unsigned tks_ingest_sweep(struct tks_server *srv, uint64_t now_ms) {
  /* A client held back by backpressure is neither slow nor idle: it is
   * waiting for us. */
  if (srv->held) return 0;
  const struct tks_config *cfg = &srv->cfg;
  uint64_t timeout_ms = (cfg->ingest.idle_timeout_ns + 999999) / 1000000;
  uint64_t message_ms = (cfg->ingest.message_timeout_ns + 999999) / 1000000;
  uint64_t rate = cfg->ingest.min_rate;
  unsigned n = 0;
  for (struct conn_link *l = I.conns.next, *next; l != &I.conns; l = next) {
    next = l->next;
    struct conn *c = CONN_OF(l);
    if (c->ending) {
      /* Its last answer waits for a peer that does not read. */
      if (now_ms - c->ending_since_ms >= evict_after_ms(srv)) conn_close(c);
      continue;
    }
    if (c->partial && close_if_slow(c, now_ms, message_ms, rate)) continue;
    if (!timeout_ms || now_ms - c->last_active_ms < timeout_ms) continue;
    tks_log(TKS_LOG_INFO, "closing idle ingest connection from %s (nothing for %llu ms)", c->peer,
            (unsigned long long)(now_ms - c->last_active_ms));
    conn_close(c);
    n++;
  }
  return n;
}

int tks_ingest_bind(struct tks_server *srv) {
  const struct tks_config *cfg = &srv->cfg;
  for (unsigned i = 0; i < IP_BUCKETS; i++) conn_list_init(&I.by_ip[i]);
  uv_idle_init(srv->loop, &I.yield_idle);
  I.yield_idle.data = srv;
  I.yield_started = true;
  uv_timer_init(srv->loop, &I.ack_timer);
  I.ack_timer_open = true;
  tks_durability_on_synced(srv, on_synced);
  char addr[sizeof srv->listen_addr];
  uint16_t port;
  int r = tks_tcp_listen(srv->loop, "ingest.listen", cfg->ingest.listen, cfg->ingest.host,
                         cfg->ingest.port, &I.listener, &I.listener_open, addr, sizeof addr, &port);
  if (r) return r;
  I.listener.data = srv;
  tks_server_set_listen_addr(srv, addr, port);
  tks_log(TKS_LOG_INFO, "ingest bound to %s (connections wait until the store is loaded)", addr);
  return 0;
}

int tks_ingest_serve(struct tks_server *srv) {
  const struct tks_config *cfg = &srv->cfg;
  /* The socket listens already; this makes libuv watch it. */
  int r = uv_listen((uv_stream_t *)&I.listener, SOMAXCONN, on_connection);
  if (r) {
    tks_log(TKS_LOG_ERROR, "cannot listen on %s: %s", cfg->ingest.listen, uv_strerror(r));
    return r;
  }
  tks_server_set_ingesting(srv, true);
  tks_log(TKS_LOG_INFO,
          "ingest listening on %s (msgpack ticks, max %u connections, max message %u bytes)",
          srv->listen_addr, cfg->ingest.max_connections, cfg->ingest.max_message_bytes);
  return 0;
}

/* Reads what the kernel already held for c when the stop began, without
 * blocking, so ticks a client sent before the shutdown are not lost; a
 * client that keeps writing cannot hold the stop up, as only the bytes
 * queued at that moment (FIONREAD) are read. */
static void drain(struct conn *c, uint64_t deadline_ns) {
  uv_os_fd_t fd;
  int queued = 0;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || ioctl(fd, FIONREAD, &queued) != 0) return;
  size_t budget = queued > 0 ? (size_t)queued : 0;
  while (budget > 0 && !c->closing && !c->ending && c->len < c->cap &&
         tks_mono_ns() < deadline_ns) {
    size_t want = c->cap - c->len < budget ? c->cap - c->len : budget;
    ssize_t n = recv(fd, c->buf + c->len, want, MSG_DONTWAIT);
    if (n <= 0) break;
    budget -= (size_t)n;
    c->len += (size_t)n;
    c->srv->bytes_received += (uint64_t)n;
    if (!process(c)) return;
  }
  if (c->len && !c->closing)
    tks_log(TKS_LOG_INFO, "stopping: %zu bytes of an unfinished message from %s dropped", c->len,
            c->peer);
}

void tks_ingest_stop(struct tks_server *srv) {
  if (I.listener_open) {
    I.listener_open = false;
    uv_close((uv_handle_t *)&I.listener, NULL);
  }
  tks_server_set_ingesting(srv, false);
  /* A journal that is only behind is flushed at stop anyway: read on. */
  tks_server_unhold_quietly(srv, TKS_HOLD_JOURNAL);
  if (srv->held)
    tks_log(TKS_LOG_WARN, "stopping while ingest is held: what clients sent since is not read");
  /* What the clients sent before the stop is read and stored, within a
   * bound: a stop never waits on the senders for long. */
  uint64_t deadline = tks_mono_ns() + STOP_DRAIN_NS;
  unsigned cut = 0;
  while (I.conns.next != &I.conns) {
    struct conn *c = CONN_OF(I.conns.next);
    if (!srv->held) {
      if (tks_mono_ns() < deadline)
        drain(c, deadline);
      else
        cut++;
    }
    conn_close(c);
  }
  if (cut)
    tks_log(TKS_LOG_WARN, "stopping: the %u s drain budget ran out; %u connections were not read",
            STOP_DRAIN_NS / 1000000000u, cut);
  if (I.yield_started) {
    I.yield_started = false;
    uv_close((uv_handle_t *)&I.yield_idle, NULL);
  }
  if (I.ack_timer_open) {
    I.ack_timer_open = false;
    uv_close((uv_handle_t *)&I.ack_timer, NULL);
  }
}

static const struct tks_stat ST_ACKS_CONNECTIONS = TKS_STAT(
    "acks.connections", GAUGE, NONE, "Ingest connections with acknowledgements (a hello)");
static const struct tks_stat ST_ACKS_PRODUCERS = TKS_STAT(
    "acks.producers", GAUGE, NONE, "Named producers known (their positions kept)");
static const struct tks_stat ST_ACKS_WELCOMES = TKS_STAT("acks.welcomes", COUNTER, NONE,
                                                         "Hellos answered with a welcome");
static const struct tks_stat ST_ACKS_SENT = TKS_STAT("acks.sent", COUNTER, NONE,
                                                     "Ack messages written to producers");
static const struct tks_stat ST_ACKS_REJECTS_REPORTED = TKS_STAT(
    "acks.rejects_reported", COUNTER, NONE,
    "Rejected ticks told to their producer with seq and reason");
static const struct tks_stat ST_ACKS_REJECTS_OMITTED = TKS_STAT(
    "acks.rejects_omitted", COUNTER, NONE,
    "Rejected ticks only counted (over the rate, or a producer not reading)");
static const struct tks_stat ST_ACKS_HELLOS_REFUSED = TKS_STAT(
    "acks.hellos_refused", COUNTER, NONE, "Hellos refused (the connection closed with an error)");
static const struct tks_stat ST_ACKS_TAKEOVERS = TKS_STAT(
    "acks.takeovers", COUNTER, NONE,
    "Producers that said hello while their older connection was open (it was closed)");

void tks_ingest_stats(struct tks_server *srv, struct tks_stats *st) {
  tks_stat_u64(st, &ST_ACKS_CONNECTIONS, I.nacks);
  tks_stat_u64(st, &ST_ACKS_PRODUCERS, tks_durability_producer_count(srv));
  tks_stat_u64(st, &ST_ACKS_WELCOMES, I.welcomes);
  tks_stat_u64(st, &ST_ACKS_SENT, I.acks_sent);
  tks_stat_u64(st, &ST_ACKS_REJECTS_REPORTED, I.rejects_reported);
  tks_stat_u64(st, &ST_ACKS_REJECTS_OMITTED, I.rejects_omitted);
  tks_stat_u64(st, &ST_ACKS_HELLOS_REFUSED, I.hellos_refused);
  tks_stat_u64(st, &ST_ACKS_TAKEOVERS, I.takeovers);
}

/*
 * Subscriptions: a TCP port of their own (subscribe.listen).  A subscriber
 * writes one msgpack map (lib/subreq.h) and reads a stream of msgpack maps:
 * ticks in the form ingest takes them, and control messages whose first key
 * is "$" ({"$":"live"}, {"$":"dropped",...}, {"$":"error",...}).
 *
 * From a past `from`, the stored ticks (memory merged with the day archive,
 * in ts order per symbol, a symbol at a time) are sent in pages as the
 * socket drains, then the live ticks ingest hands over (the server's tap),
 * each exactly once across the seam.  The rule that makes it so, per
 * subscriber and symbol: a symbol's replay goes by a cursor `cur` (every
 * stored tick with ts < cur has been sent; a page ends after all the ties
 * of its last ts).  A live tick with ts >= cur is left to the replay, which
 * will find it in the store; one below cur (a late tick behind the cursor)
 * is queued at once.  A symbol whose replay ended, and one that did not
 * exist when the subscription began, takes every live tick.  With "now"
 * there is no replay.  Ticks older than `from` are never sent.
 *
 * A live tick whose bytes say exactly what the store holds (the tap's
 * wire, lib/decode.h's verbatim) goes as those bytes: while every
 * subscriber takes "*", the ticks of a read that follow each other are one
 * run (srv->wire, grown in tks_intake_stored with no call), handed to each
 * subscriber's socket when a tick breaks it or the read ends (tap_end),
 * uncopied where the socket takes it; otherwise each subscriber keeps a run
 * of its own the same way.  That was the biggest cost of a subscriber
 * after the kernel's: rendering and copying every tick.
 *
 * Ingest never waits for a subscriber: other live ticks are rendered once and
 * appended to each subscriber's queue (subscribe.max_queue_bytes of unsent
 * bytes); a full queue disconnects the subscriber (slow_policy disconnect:
 * what was not handed to the kernel is dropped and an error says why) or
 * drops the tick (drop: counted, and a {"$":"dropped"} tells how many
 * before the next tick sent).  A queue is written at the end of each loop
 * turn (a uv_check), and at once when it holds its share of FLUSH_BYTES
 * (1 MiB among the live subscribers, 64 KiB each at least, a quarter of
 * max_queue_bytes at most), so a turn's read of thousands of ticks costs one
 * subscriber one write: each write costs the kernel a wakeup of the reader
 * (on a VM an IPI, the biggest single cost of one subscriber when it was a
 * write every 64 KiB), while 20 subscribers' queues still fit the cache.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "daemon.h"
#include "subreq.h"
#include "tick.h"

#define PAGE_ROWS 512           /* replay rows a page, then the ties of the last one */
#define REPLAY_LOW (256u << 10) /* replay goes on while less than this is unsent */
#define READ_MAX 4096           /* the read buffer after the request */
/* A queue this full is written at once, not at the turn's end: FLUSH_BYTES
 * shared by the live subscribers, at least FLUSH_MIN each (all of them in
 * the cache at once), and at most a quarter of subscribe.max_queue_bytes. */
#define FLUSH_BYTES (1u << 20)
#define FLUSH_MIN (64u << 10)
#define ERROR_MAX 512
#define TRANSIT_MAX (32u << 20) /* see unsent_bytes */

enum sub_state { SUB_REQUEST, SUB_REPLAY, SUB_LIVE };
enum sym_want { WANT_NO, WANT_PENDING, WANT_LIVE };

struct sub {
  uv_tcp_t tcp; /* first: the handle's address is the sub's */
  struct conn_link link;
  struct tks_server *srv;
  char peer[80];
  uint8_t ip[16];
  bool closing, shutting; /* closing: uv_close'd; shutting: an error is being written last */
  bool shut_begun;        /* uv_shutdown called */
  uint64_t shutting_since_ms;
  enum sub_state state;
  uint64_t since_ms; /* connected (uv_now) */
  /* The request, read until whole. */
  uint8_t *req;
  size_t req_len;
  struct tks_subreq want;
  /* Per symbol id, below nsym: wanted, and the replay cursor. */
  uint8_t *sym;
  int64_t *cur;
  uint32_t nsym, cap;   /* ids decided (0..nsym-1); room */
  uint32_t nsym_start;  /* the ids that existed at the start */
  uint32_t replay_id;   /* the next id to replay */
  uint32_t replay_name; /* then the next archive-only name (archive_names) */
  char **archive_names;
  uint32_t narchive_names;
  /* The queue: pending is filled, inflight is being written (from
   * inflight_off: what the kernel took at once is not queued). */
  struct tks_buf pending, inflight;
  size_t inflight_off;
  /* Live ticks taken as their producer's bytes (the tap's wire), one after
   * another in the batch being taken: written after the queue when the
   * batch ends (run_flush), or when it is a queue's share. */
  const char *run;
  size_t run_len;
  uv_write_t wr;
  bool writing;
  /* With the send thread (subscribe.send_thread), from the request on:
   * pending is handed to it whole instead of written here. */
  struct tks_sender_chan *chan;
  uint64_t pending_since_ns, inflight_since_ns;
  uint64_t sent, dropped, untold_drops, replayed;
};

#define SUB_OF(l) ((struct sub *)((char *)(l)-offsetof(struct sub, link)))

/* One server a process. */
static struct {
  uv_tcp_t listener;
  bool listener_open, serving;
  uv_check_t flush;
  bool flush_open;
  struct conn_link subs;
  struct conn_link detaching; /* closed, waiting for the send thread to let go */
  uint32_t live_subs; /* past the request: following the live ticks */
  size_t flush_share; /* FLUSH_BYTES / live_subs, FLUSH_MIN at least */
  char addr[320];
  uint16_t port;
  bool wire_on;  /* every live subscriber takes every tick from srv->wire.from on */
  void *obj_mem; /* a dynamic tick's object, built to render it */
  size_t obj_cap;
  uint64_t conns_total, refused, closed_slow, closed_error, sent, dropped, replayed;
} S = {.subs = {&S.subs, &S.subs}, .detaching = {&S.detaching, &S.detaching}};

static void tap(struct tks_server *srv, enum tks_decode_status st, const void *record,
                const struct tks_dyn_tick *dyn, const void *wire, size_t wire_len);
static void tap_end(struct tks_server *srv);
static void wire_update(struct tks_server *srv);
static void wire_hand(struct tks_server *srv, bool end);

/* The bytes queued here, not yet handed to the kernel or the send thread. */
static uint64_t local_bytes(const struct sub *s) {
  return s->pending.len + s->inflight.len - s->inflight_off + s->run_len;
}

static uint64_t queue_bytes(const struct sub *s) {
  return local_bytes(s) + (s->chan ? tks_sender_queued(s->chan) : 0);
}

/* What slow_policy weighs: the bytes queued here and those the send
 * thread found the socket would not take.  The bytes on their way to the
 * thread are the thread's delay, not the subscriber's: they count only
 * past TRANSIT_MAX (which bounds them where the thread falls behind). */
static uint64_t unsent_bytes(const struct sub *s) {
  uint64_t b = local_bytes(s);
  if (s->chan) {
    uint64_t unsent = tks_sender_unsent(s->chan), queued = tks_sender_queued(s->chan);
    uint64_t transit = queued > unsent ? queued - unsent : 0;
    b += unsent + (transit > TRANSIT_MAX ? transit - TRANSIT_MAX : 0);
  }
  return b;
}

static void on_closed(uv_handle_t *h) {
  struct sub *s = (struct sub *)h;
  free(s->req);
  tks_subreq_finish(&s->want);
  free(s->sym);
  free(s->cur);
  for (uint32_t i = 0; i < s->narchive_names; i++) free(s->archive_names[i]);
  free(s->archive_names);
  tks_buf_finish(&s->pending);
  tks_buf_finish(&s->inflight);
  tks_sender_free(s->chan);
  free(s);
}

static void set_live_count(struct tks_server *srv, int delta) {
  S.live_subs = (uint32_t)((int)S.live_subs + delta);
  srv->tap = S.live_subs ? tap : NULL;
  srv->tap_end = S.live_subs ? tap_end : NULL;
  srv->decoder.verbatim = S.live_subs > 0; /* (a few instructions a tick: only for them) */
  S.flush_share = S.live_subs > 1 ? FLUSH_BYTES / S.live_subs : FLUSH_BYTES;
  if (S.flush_share < FLUSH_MIN) S.flush_share = FLUSH_MIN;
  wire_update(srv);
}

static void sub_close(struct sub *s) {
  if (s->closing) return;
  s->closing = true;
  if (s->state != SUB_REQUEST) set_live_count(s->srv, -1);
  conn_list_del(&s->link);
  if (s->chan && !tks_sender_close(s->chan)) {
    /* The socket is closed once the send thread let go of it (on_sender). */
    uv_read_stop((uv_stream_t *)&s->tcp);
    conn_list_add(&S.detaching, &s->link);
    return;
  }
  uv_close((uv_handle_t *)&s->tcp, on_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  struct sub *s = req->data;
  free(req);
  sub_close(s);
}

static void flush(struct sub *s);

/* Ends the subscription with {"$":"error","reason":...}: what was not
 * handed to the kernel yet is dropped, the error is written, then the
 * connection is shut down and closed. */
static void fail(struct sub *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct sub *s, const char *fmt, ...) {
  if (s->closing || s->shutting) return;
  char reason[ERROR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  tks_server_log_limited(s->srv, "closing subscriber %s: %s", s->peer, reason);
  s->pending.len = 0;
  s->run_len = 0;
  if (s->chan) tks_sender_discard(s->chan);
  int r = tks_msgpack_map_header(&s->pending, 2);
  r |= tks_msgpack_str(&s->pending, "$", 1);
  r |= tks_msgpack_str(&s->pending, "error", 5);
  r |= tks_msgpack_str(&s->pending, "reason", 6);
  r |= tks_msgpack_str(&s->pending, reason, strlen(reason));
  s->shutting = true;
  s->shutting_since_ms = uv_now(s->srv->loop);
  wire_update(s->srv);
  uv_read_stop((uv_stream_t *)&s->tcp);
  if (r) {
    sub_close(s);
    return;
  }
  flush(s);
}

static void replay(struct sub *s);

static void on_written(uv_write_t *req, int status) {
  struct sub *s = req->data;
  s->writing = false;
  s->inflight.len = s->inflight_off = 0;
  if (s->closing) return;
  if (status < 0) {
    sub_close(s);
    return;
  }
  if (s->state == SUB_REPLAY && !s->shutting)
    replay(s); /* then flushes */
  else
    flush(s);
}

/* Hands what is pending to the kernel when nothing is being written: what
 * it takes at once (uv_try_write, the bytes still in cache, the buffer
 * reused), the rest by a queued write.  Once an ending error is written,
 * shuts down.  In replay every write is queued: its completion makes the
 * next page (on_written), so the replay goes on a page a loop turn. */
static void flush(struct sub *s) {
  if (s->closing || s->writing) return;
  if (s->chan) {
    /* The send thread writes it; the replay goes on, and an ending error
     * shuts down, once it has written enough (on_sender). */
    if (s->pending.len && tks_sender_hand(s->chan, &s->pending, s->pending_since_ns)) {
      sub_close(s);
      return;
    }
    if (s->shutting && tks_sender_queued(s->chan)) {
      tks_sender_notify_below(s->chan, 1);
      return;
    }
    if (!s->shutting && s->state == SUB_REPLAY) tks_sender_notify_below(s->chan, REPLAY_LOW);
  } else if (s->pending.len) {
    uv_buf_t b = uv_buf_init(s->pending.data, (unsigned)s->pending.len);
    int n = s->state == SUB_REPLAY ? UV_EAGAIN : uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
    if (n < 0 && n != UV_EAGAIN) {
      s->pending.len = 0;
      sub_close(s);
      return;
    }
    size_t took = n > 0 ? (size_t)n : 0;
    if (took < s->pending.len) {
      struct tks_buf t = s->inflight;
      s->inflight = s->pending;
      s->inflight_off = took;
      s->pending = t;
      s->pending.len = 0;
      s->inflight_since_ns = s->pending_since_ns;
      b = uv_buf_init(s->inflight.data + took, (unsigned)(s->inflight.len - took));
      s->wr.data = s;
      if (uv_write(&s->wr, (uv_stream_t *)&s->tcp, &b, 1, on_written) != 0) {
        s->inflight.len = s->inflight_off = 0;
        sub_close(s);
        return;
      }
      s->writing = true;
      return;
    }
    s->pending.len = 0;
  }
  if (s->shutting && !s->shut_begun) {
    s->shut_begun = true; /* (once: a send thread's LOW may come twice) */
    uv_shutdown_t *sd = malloc(sizeof *sd);
    if (!sd || uv_shutdown(sd, (uv_stream_t *)&s->tcp, on_shutdown) != 0) {
      free(sd);
      sub_close(s);
      return;
    }
    sd->data = s;
  }
}

/* A control message {"$": what, key: n, ...} (n pairs of key and count). */
static int put_control(struct tks_buf *b, const char *what, unsigned n, const char *const *keys,
                       const uint64_t *vals) {
  int r = tks_msgpack_map_header(b, 1 + n);
  r |= tks_msgpack_str(b, "$", 1);
  r |= tks_msgpack_str(b, what, strlen(what));
  for (unsigned i = 0; i < n; i++) {
    r |= tks_msgpack_str(b, keys[i], strlen(keys[i]));
    r |= tks_msgpack_uint(b, vals[i]);
  }
  return r ? -ENOMEM : 0;
}

static void mark_pending(struct sub *s) {
  if (!s->pending.len) s->pending_since_ns = tks_mono_ns();
}

/* Drops told before the next tick: {"$":"dropped","count":N,"total":T}. */
static void tell_drops(struct sub *s) {
  if (!s->untold_drops) return;
  mark_pending(s);
  if (put_control(&s->pending, "dropped", 2, (const char *const[]){"count", "total"},
                  (const uint64_t[]){s->untold_drops, s->dropped}) == 0)
    s->untold_drops = 0;
}

/* ---- which symbols, and where the replay is ---- */

static bool name_wanted(const struct sub *s, const char *name, size_t len) {
  if (s->want.all) return true;
  for (uint32_t i = 0; i < s->want.nsymbols; i++)
    if (strlen(s->want.symbols[i]) == len && memcmp(s->want.symbols[i], name, len) == 0)
      return true;
  return false;
}

/* Decides the want of every id up to `id` (interned, all of them): those
 * new since the start are live, if wanted.  -ENOMEM. */
static int grow_syms(struct sub *s, uint32_t id) {
  if (id < s->nsym) return 0;
  if (id >= s->cap) {
    uint32_t n = s->cap * 2 > id + 1 ? s->cap * 2 : id + 1;
    if (n < 64) n = 64;
    uint8_t *sym = realloc(s->sym, n);
    if (!sym) return -ENOMEM;
    s->sym = sym;
    int64_t *cur = realloc(s->cur, (size_t)n * sizeof *cur);
    if (!cur) return -ENOMEM;
    s->cur = cur;
    s->cap = n;
  }
  for (uint32_t i = s->nsym; i <= id; i++) {
    size_t len = 0;
    const char *name = i ? tks_symtab_name(s->srv->symbols, i, &len) : NULL;
    s->sym[i] = name && name_wanted(s, name, len) ? WANT_LIVE : WANT_NO;
    s->cur[i] = s->want.from;
  }
  s->nsym = id + 1;
  return 0;
}

static void go_live(struct sub *s) {
  if (s->srv->wire.len) wire_hand(s->srv, false); /* (a run is the ticks before it) */
  s->state = SUB_LIVE;
  wire_update(s->srv);
  mark_pending(s);
  if (put_control(&s->pending, "live", 0, NULL, NULL)) fail(s, "out of memory");
}

/* ---- the replay: pages of stored ticks, merged with the archive ---- */

static int replay_row(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct sub *s = ctx;
  struct tks_server *srv = s->srv;
  return tks_tick_msgpack(&srv->cfg.schema, srv->names, srv->symbols, srv->strings, record, obj,
                          &s->pending) != 0;
}

/* One page of symbol (id, or 0 for an archive-only name) from *cur
 * (query.c's pages: memory merged with the archive, no run of equal ts
 * split).  Returns 1 while there is more (cur advanced), 0 at its end, -errno. */
static int replay_page(struct sub *s, uint32_t id, const char *name, size_t len, int64_t *cur) {
  uint64_t rows = 0;
  mark_pending(s);
  int r = tks_query_page(s->srv, id, name, len, cur, INT64_MAX, PAGE_ROWS, replay_row, s, &rows);
  s->replayed += rows;
  S.replayed += rows;
  s->sent += rows;
  S.sent += rows;
  return r;
}

/* Archive-only symbols a "*" replay sends after the memory ones. */
struct names_ctx {
  struct sub *s;
  int err;
};

static int collect_archive_name(void *ctx, const struct tks_archive_symbol_info *info) {
  struct names_ctx *nc = ctx;
  struct sub *s = nc->s;
  uint32_t id;
  if (tks_symtab_lookup(s->srv->symbols, info->name, info->len, &id) == 0) return 0;
  if (!name_wanted(s, info->name, info->len)) return 0;
  char **grown = realloc(s->archive_names, (s->narchive_names + 1) * sizeof *grown);
  char *copy = grown ? malloc(info->len + 1) : NULL;
  if (grown) s->archive_names = grown;
  if (!copy) {
    nc->err = -ENOMEM;
    return 1;
  }
  memcpy(copy, info->name, info->len);
  copy[info->len] = '\0';
  s->archive_names[s->narchive_names++] = copy;
  return 0;
}

/* Replays while less than REPLAY_LOW is unsent, then waits for the
 * socket; ends with {"$":"live"}. */
static void replay(struct sub *s) {
  while (s->state == SUB_REPLAY && !s->closing && !s->shutting && queue_bytes(s) < REPLAY_LOW) {
    int r;
    if (s->replay_id < s->nsym_start) {
      uint32_t id = s->replay_id;
      if (s->sym[id] != WANT_PENDING) {
        s->replay_id++;
        continue;
      }
      size_t len = 0;
      const char *name = tks_symtab_name(s->srv->symbols, id, &len);
      tell_drops(s);
      r = replay_page(s, id, name ? name : "", len, &s->cur[id]);
      if (r == 0) {
        s->sym[id] = WANT_LIVE;
        s->replay_id++;
      }
    } else if (s->replay_name < s->narchive_names) {
      const char *name = s->archive_names[s->replay_name];
      int64_t *cur = &s->cur[0]; /* id 0 is no symbol's: the archive-only cursor */
      r = replay_page(s, 0, name, strlen(name), cur);
      if (r == 0) {
        s->replay_name++;
        *cur = s->want.from;
      }
    } else {
      go_live(s);
      break;
    }
    if (r < 0) {
      fail(s, "replay failed: %s", r == -ENOMEM ? "out of memory" : strerror(-r));
      return;
    }
  }
  flush(s);
}

/* ---- live ticks ---- */

/* A full queue: slow_policy (the subscriber is closed, or the tick dropped). */
static void too_slow(struct sub *s, uint64_t max) {
  if (s->srv->cfg.subscribe.slow_policy == TKS_SLOW_DISCONNECT) {
    S.closed_slow++;
    fail(s,
         "too slow: %" PRIu64 " bytes unsent, over subscribe.max_queue_bytes (%" PRIu64
         "); slow_policy disconnect",
         unsent_bytes(s), max);
    return;
  }
  s->dropped++;
  s->untold_drops++;
  S.dropped++;
}

/* Whether s takes a live tick of symbol at ts now. */
static bool takes(struct sub *s, uint32_t symbol, int64_t ts) {
  if (s->state == SUB_REQUEST || s->closing || s->shutting) return false;
  if (symbol >= s->nsym && grow_syms(s, symbol)) {
    fail(s, "out of memory");
    return false;
  }
  uint8_t w = s->sym[symbol];
  if (w == WANT_NO) return false;
  if (!s->want.from_now && ts < s->want.from) return false;
  return w != WANT_PENDING || ts < s->cur[symbol]; /* else the replay will send it */
}

/* A queue this full is written at once (FLUSH_BYTES' share). */
static size_t flush_at(const struct tks_server *srv) {
  uint64_t max = srv->cfg.subscribe.max_queue_bytes;
  return S.flush_share < max / 4 ? S.flush_share : (size_t)(max / 4);
}

/* The run after what is queued: straight to the kernel when nothing is
 * queued before it and the batch ended or the run is a queue's share (its
 * bytes still in cache, not copied; what the kernel does not take is),
 * else appended to the queue. */
static void run_flush(struct sub *s, bool end, size_t at) {
  const char *p = s->run;
  size_t n = s->run_len;
  s->run_len = 0;
  if ((end || n >= at) && !s->pending.len && !s->writing && !s->chan) {
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int w = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
    if (w < 0 && w != UV_EAGAIN) {
      sub_close(s);
      return;
    }
    if (w > 0) p += w, n -= (size_t)w;
    if (!n) return;
  }
  mark_pending(s);
  if (tks_buf_append(&s->pending, p, n)) {
    fail(s, "out of memory");
    return;
  }
  if (s->pending.len >= at) flush(s);
}

/* A live subscriber takes one tick as its producer's bytes (wire, len):
 * into its run when it follows the run's last, else after the run so far,
 * or by slow_policy where the queue has no room. */
static void take_wire(struct sub *s, const char *wire, size_t len, size_t at_once, uint64_t max) {
  /* The common case: the tick right after the run's last. */
  if (s->run_len && s->run + s->run_len == wire && s->run_len < at_once &&
      unsent_bytes(s) + len <= max) {
    s->run_len += len;
  } else {
    if (s->run_len) run_flush(s, false, at_once);
    if (s->closing || s->shutting) return;
    if (unsent_bytes(s) + len > max) {
      too_slow(s, max);
      return;
    }
    tell_drops(s);
    s->run = wire;
    s->run_len = len;
  }
  s->sent++;
  S.sent++;
}

/* A run the queue has no room for, tick by tick as fan_out takes them. */
static void hand_ticks(struct sub *s, const char *p, size_t n, size_t at_once, uint64_t max) {
  size_t max_tick = s->srv->cfg.ingest.max_message_bytes;
  while (n && !s->closing && !s->shutting) {
    long t = tks_msgpack_skip((const uint8_t *)p, n, max_tick);
    size_t len = t > 0 ? (size_t)t : n; /* (a run holds whole ticks) */
    take_wire(s, p, len, at_once, max);
    p += len, n -= len;
  }
}

/* The server's run (srv->wire) to each subscriber, after its own run. */
static void wire_hand(struct tks_server *srv, bool end) {
  const char *p = srv->wire.p;
  size_t n = srv->wire.len;
  uint64_t ticks = srv->wire.ticks, max = srv->cfg.subscribe.max_queue_bytes;
  srv->wire.len = 0; /* taken, before a subscriber's end changes who takes the next */
  size_t at_once = flush_at(srv);
  for (struct conn_link *l = S.subs.next, *next; l != &S.subs; l = next) {
    next = l->next;
    struct sub *s = SUB_OF(l);
    if (s->state != SUB_LIVE || s->closing || s->shutting) continue;
    if (s->run_len) {
      run_flush(s, false, at_once);
      if (s->closing || s->shutting) continue;
    }
    if (unsent_bytes(s) + n > max) {
      hand_ticks(s, p, n, at_once, max);
      continue;
    }
    tell_drops(s);
    s->run = p;
    s->run_len = n;
    s->sent += ticks;
    S.sent += ticks;
    run_flush(s, end, at_once);
  }
}

/* Whether the live ticks may go by the server's run: every subscriber
 * that follows them is live and takes "*" (from the latest `from`). */
static void wire_update(struct tks_server *srv) {
  if (srv->wire.len) wire_hand(srv, false);
  bool on = true;
  unsigned takers = 0;
  int64_t from = INT64_MIN;
  for (struct conn_link *l = S.subs.next; l != &S.subs; l = l->next) {
    const struct sub *s = SUB_OF(l);
    if (s->state == SUB_REQUEST || s->closing || s->shutting) continue;
    if (s->state != SUB_LIVE || !s->want.all) on = false;
    if (!s->want.from_now && s->want.from > from) from = s->want.from;
    takers++;
  }
  const struct tks_schema *sc = &srv->cfg.schema;
  S.wire_on = on && takers > 0 && sc->ts_field >= 0;
  srv->wire.from = from; /* (wire.max is set as a run begins, in tap) */
  srv->wire.ts_off = sc->ts_field >= 0 ? sc->fields[sc->ts_field].offset : 0;
}

/* The live tick into the queue of each subscriber that takes it: as the
 * producer's bytes (wire) where they say what the store holds, in a run
 * while it takes the ticks one after another, else rendered once into the
 * first taker's queue and copied from there to the others. */
static void fan_out(struct tks_server *srv, uint32_t symbol, int64_t ts, const void *record,
                    const struct tks_dynobj *obj, const char *wire, size_t wire_len) {
  uint64_t max = srv->cfg.subscribe.max_queue_bytes;
  size_t at_once = flush_at(srv);
  struct sub *src = NULL;
  size_t src_at = 0, len = wire_len;
  for (struct conn_link *l = S.subs.next, *next; l != &S.subs; l = next) {
    next = l->next;
    struct sub *s = SUB_OF(l);
    if (!takes(s, symbol, ts)) continue;
    if (wire && s->state == SUB_LIVE) {
      take_wire(s, wire, wire_len, at_once, max);
      continue;
    }
    if (s->run_len) {
      run_flush(s, false, at_once);
      if (s->closing || s->shutting) continue;
    }
    bool known = wire || src; /* the tick's length, before it is queued */
    if (known && unsent_bytes(s) + len > max) {
      too_slow(s, max);
      continue;
    }
    tell_drops(s);
    mark_pending(s);
    size_t at = s->pending.len;
    int r = wire  ? tks_buf_append(&s->pending, wire, wire_len)
            : src ? tks_buf_append(&s->pending, src->pending.data + src_at, len)
                  : tks_tick_msgpack(&srv->cfg.schema, srv->names, srv->symbols, srv->strings,
                                     record, obj, &s->pending);
    if (r) {
      fail(s, "out of memory");
      continue;
    }
    if (!known && unsent_bytes(s) > max) {
      s->pending.len = at; /* over: the tick is not queued */
      too_slow(s, max);
      continue;
    }
    if (!known) {
      src = s;
      src_at = at;
      len = s->pending.len - at;
    } else if (s->pending.len >= at_once) {
      flush(s);
    }
    s->sent++;
    S.sent++;
  }
  /* The first taker's last, once the others have copied the tick. */
  if (src && src->pending.len >= at_once) flush(src);
}

static void tap(struct tks_server *srv, enum tks_decode_status st, const void *record,
                const struct tks_dyn_tick *dyn, const void *wire, size_t wire_len) {
  const struct tks_dynobj *obj = NULL;
  uint32_t symbol;
  int64_t ts;
  const struct tks_schema *sc = &srv->cfg.schema;
  if (st == TKS_DECODE_DYNAMIC) {
    size_t need = tks_tick_object_size(srv->cfg.store.mode, dyn);
    if (need > S.obj_cap) {
      void *m = NULL;
      if (posix_memalign(&m, 8, need)) return;
      free(S.obj_mem);
      S.obj_mem = m;
      S.obj_cap = need;
    }
    obj = tks_tick_object(srv->cfg.store.mode, dyn, S.obj_mem);
    if (!obj) return;
    symbol = dyn->symbol;
    ts = dyn->ts;
    if (srv->cfg.store.mode == TKS_MODE_DYNAMIC) record = NULL;
    wire = NULL;
  } else {
    memcpy(&symbol, (const char *)record + sc->fields[sc->symbol_field].offset, sizeof symbol);
    memcpy(&ts, (const char *)record + sc->fields[sc->ts_field].offset, sizeof ts);
  }
  /* Not the run's next (tks_intake_stored): the run so far goes first. */
  if (srv->wire.len) wire_hand(srv, false);
  if (wire && S.wire_on && ts >= srv->wire.from) {
    srv->wire.p = wire;
    srv->wire.len = wire_len;
    srv->wire.ticks = 1;
    srv->wire.max = flush_at(srv); /* (subscribe.max_queue_bytes is reloaded live) */
    return;
  }
  fan_out(srv, symbol, ts, record, obj, wire, wire_len);
}

/* The batch ended: its bytes go, so the runs go to the kernel now. */
static void tap_end(struct tks_server *srv) {
  if (srv->wire.len) wire_hand(srv, true);
  size_t at_once = flush_at(srv);
  for (struct conn_link *l = S.subs.next, *next; l != &S.subs; l = next) {
    next = l->next;
    struct sub *s = SUB_OF(l);
    if (s->run_len) run_flush(s, true, at_once);
  }
}

/* Once a loop turn: writes what the taps queued. */
static void on_check(uv_check_t *h) {
  (void)h;
  for (struct conn_link *l = S.subs.next, *next; l != &S.subs; l = next) {
    next = l->next;
    struct sub *s = SUB_OF(l);
    if (s->pending.len && !s->writing) flush(s);
  }
}

/* ---- the request ---- */

static void start(struct sub *s) {
  struct tks_server *srv = s->srv;
  if (tks_sender_running()) {
    /* From here on the send thread writes to the socket (nothing was
     * written to it before the request). */
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&s->tcp, &fd) == 0) s->chan = tks_sender_open(fd, s);
    if (!s->chan) {
      fail(s, "out of memory");
      return;
    }
  }
  if (grow_syms(s, tks_symtab_count(srv->symbols))) {
    fail(s, "out of memory");
    return;
  }
  s->nsym_start = s->nsym;
  for (uint32_t i = 0; i < s->nsym; i++)
    if (s->sym[i] == WANT_LIVE && !s->want.from_now) s->sym[i] = WANT_PENDING;
  set_live_count(srv, +1);
  if (s->want.from_now) {
    go_live(s);
    flush(s);
    return;
  }
  s->state = SUB_REPLAY;
  wire_update(srv);
  struct tks_archive_view v;
  struct tks_archive *a = tks_archiver_reader(srv, &v);
  if (a) {
    struct names_ctx nc = {.s = s};
    int r;
    if (s->want.all) {
      r = tks_archive_symbols(a, INT32_MIN, INT32_MAX, collect_archive_name, &nc);
    } else {
      r = 0;
      for (uint32_t i = 0; i < s->want.nsymbols && !nc.err; i++) {
        struct tks_archive_symbol_info ai;
        if (tks_archive_symbol(a, s->want.symbols[i], strlen(s->want.symbols[i]), &ai) == 0)
          collect_archive_name(&nc, &ai);
      }
    }
    if (r < 0 || nc.err) {
      fail(s, "archive: %s", tks_archive_error(a)[0] ? tks_archive_error(a) : strerror(-r));
      return;
    }
  }
  replay(s);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct sub *s = (struct sub *)h;
  if (!s->req) s->req = malloc(TKS_SUBREQ_MAX_BYTES);
  if (!s->req || s->req_len >= TKS_SUBREQ_MAX_BYTES) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init((char *)s->req + s->req_len, (unsigned)(TKS_SUBREQ_MAX_BYTES - s->req_len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  struct sub *s = (struct sub *)stream;
  if (s->closing || s->shutting) return;
  if (nread == UV_ENOBUFS) {
    fail(s, "out of memory");
    return;
  }
  if (nread < 0) {
    /* EOF or an error: the subscriber is gone (or half-closed before its
     * request was whole). */
    if (s->state == SUB_REQUEST && s->req_len) {
      S.closed_error++;
      fail(s, "the request ended unfinished (%zu bytes)", s->req_len);
    } else {
      /* EOF ends the subscription, a half-close too: the daemon learns at
       * once that a subscriber is gone, not at its next write. */
      sub_close(s);
    }
    return;
  }
  if (nread == 0) return;
  if (s->state != SUB_REQUEST) {
    S.closed_error++;
    fail(s, "unexpected bytes after the subscribe request (a connection takes one request)");
    return;
  }
  s->req_len += (size_t)nread;
  char why[ERROR_MAX];
  long r = tks_subreq_parse(s->req, s->req_len, &s->want, why, sizeof why);
  if (r == 0) return;
  if (r < 0) {
    S.closed_error++;
    fail(s, "bad request: %s", why);
    return;
  }
  if ((size_t)r < s->req_len) {
    S.closed_error++;
    tks_subreq_finish(&s->want);
    fail(s, "unexpected bytes after the subscribe request (a connection takes one request)");
    return;
  }
  free(s->req);
  s->req = NULL;
  s->req_len = 0;
  tks_log(TKS_LOG_INFO, "subscriber %s: %s%s, from %s", s->peer, s->want.all ? "every symbol" : "",
          s->want.all ? "" : "symbols", s->want.from_now ? "now" : "a past time");
  start(s);
}

/* ---- connections ---- */

static unsigned count_from(const uint8_t ip[16]) {
  unsigned n = 0;
  for (struct conn_link *l = S.subs.next; l != &S.subs; l = l->next)
    if (memcmp(SUB_OF(l)->ip, ip, 16) == 0) n++;
  return n;
}

static void on_connection(uv_stream_t *server, int status) {
  struct tks_server *srv = server->data;
  if (status < 0) return;
  struct sub *s = calloc(1, sizeof *s);
  if (!s) return;
  s->srv = srv;
  uv_tcp_init(srv->loop, &s->tcp);
  conn_list_init(&s->link);
  if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0) {
    s->closing = true;
    uv_close((uv_handle_t *)&s->tcp, on_closed);
    return;
  }
  tks_tcp_peer(&s->tcp, s->peer, sizeof s->peer, s->ip);
  s->since_ms = uv_now(srv->loop);
  conn_list_add(&S.subs, &s->link);
  S.conns_total++;
  const struct tks_config *cfg = &srv->cfg;
  uint64_t n = 0;
  for (struct conn_link *l = S.subs.next; l != &S.subs; l = l->next) n++;
  if (n > cfg->subscribe.max_connections) {
    S.refused++;
    fail(s, "too many subscribers (subscribe.max_connections %u)", cfg->subscribe.max_connections);
    return;
  }
  if (cfg->subscribe.max_connections_per_ip &&
      count_from(s->ip) > cfg->subscribe.max_connections_per_ip) {
    S.refused++;
    fail(s, "too many subscribers from %s (subscribe.max_connections_per_ip %u)", s->peer,
         cfg->subscribe.max_connections_per_ip);
    return;
  }
  uv_tcp_nodelay(&s->tcp, 1);
  uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
}

int tks_subscribe_bind(struct tks_server *srv) {
  const struct tks_config *cfg = &srv->cfg;
  if (!cfg->subscribe.host[0]) return 0; /* off */
  int r = tks_tcp_listen(srv->loop, "subscribe.listen", cfg->subscribe.listen, cfg->subscribe.host,
                         cfg->subscribe.port, &S.listener, &S.listener_open, S.addr, sizeof S.addr,
                         &S.port);
  if (r) return r;
  snprintf(srv->subscribe_addr, sizeof srv->subscribe_addr, "%s", S.addr);
  S.listener.data = srv;
  uv_check_init(srv->loop, &S.flush);
  S.flush_open = true;
  tks_log(TKS_LOG_INFO, "subscriptions bound to %s (served once the store is loaded)", S.addr);
  return 0;
}

/* A closed subscriber the send thread let go of (or that stopped). */
static void close_detached(struct sub *s) {
  conn_list_del(&s->link);
  uv_close((uv_handle_t *)&s->tcp, on_closed);
}

/* An event of a subscriber's send-thread channel, on the loop. */
static void on_sender(void *owner, unsigned events) {
  struct sub *s = owner;
  if (events & TKS_SEND_DETACHED) {
    close_detached(s);
    return;
  }
  if (s->closing) return;
  if (events & TKS_SEND_ERROR) {
    sub_close(s); /* the peer is gone */
  } else if (events & TKS_SEND_LOW) {
    if (s->state == SUB_REPLAY && !s->shutting)
      replay(s); /* then flushes */
    else
      flush(s);
  }
}

/* subscribe.send_thread: auto where this process may run on 2 CPUs. */
static void start_send_thread(struct tks_server *srv) {
  enum tks_send_thread want = srv->cfg.subscribe.send_thread;
  int cpus = 1;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
  if (want == TKS_SEND_THREAD_OFF || (want == TKS_SEND_THREAD_AUTO && cpus < 2)) return;
  int r = tks_sender_start(srv->loop, on_sender);
  if (r) {
    tks_log(TKS_LOG_WARN,
            "subscribe.send_thread: cannot start the send thread (%s): writes on the loop",
            strerror(-r));
  }
}

int tks_subscribe_serve(struct tks_server *srv) {
  if (!S.listener_open) return 0;
  int r = uv_listen((uv_stream_t *)&S.listener, SOMAXCONN, on_connection);
  if (r) {
    tks_log(TKS_LOG_ERROR, "cannot listen on %s (subscribe.listen): %s", S.addr, uv_strerror(r));
    return r;
  }
  uv_check_start(&S.flush, on_check);
  S.serving = true;
  start_send_thread(srv);
  tks_log(TKS_LOG_INFO,
          "subscriptions on %s (max %u subscribers, %" PRIu64 " bytes queued each; writes %s)",
          S.addr, srv->cfg.subscribe.max_connections, srv->cfg.subscribe.max_queue_bytes,
          tks_sender_running() ? "on a send thread" : "on the loop");
  return 0;
}

void tks_subscribe_stop(struct tks_server *srv) {
  if (S.listener_open) {
    S.listener_open = false;
    uv_close((uv_handle_t *)&S.listener, NULL);
  }
  if (S.flush_open) {
    S.flush_open = false;
    uv_close((uv_handle_t *)&S.flush, NULL);
  }
  /* The send thread first: then every socket is the loop's to close. */
  tks_sender_stop();
  while (S.subs.next != &S.subs) sub_close(SUB_OF(S.subs.next));
  while (S.detaching.next != &S.detaching) close_detached(SUB_OF(S.detaching.next));
  srv->tap = NULL;
  srv->tap_end = NULL;
  srv->decoder.verbatim = false;
  srv->wire.len = 0;
  free(S.obj_mem);
  S.obj_mem = NULL;
  S.obj_cap = 0;
}

void tks_subscribe_sweep(struct tks_server *srv, uint64_t now_ms) {
  uint64_t request_ms = (srv->cfg.ingest.message_timeout_ns + 999999) / 1000000;
  for (struct conn_link *l = S.subs.next, *next; l != &S.subs; l = next) {
    next = l->next;
    struct sub *s = SUB_OF(l);
    if (s->closing) continue;
    if (s->shutting && now_ms - s->shutting_since_ms >= TKS_SUBSCRIBE_END_MS) {
      tks_server_log_limited(srv,
                             "closing subscriber %s: it did not take its last %zu bytes in %u s",
                             s->peer, queue_bytes(s), TKS_SUBSCRIBE_END_MS / 1000);
      sub_close(s);
    } else if (!s->shutting && s->state == SUB_REQUEST && request_ms &&
               now_ms - s->since_ms >= request_ms) {
      S.closed_error++;
      fail(s, "no whole subscribe request within %llu ms (ingest.message_timeout)",
           (unsigned long long)request_ms);
    }
  }
}

/* ---- figures ---- */

static double lag_seconds(const struct sub *s, uint64_t now) {
  uint64_t since = s->writing ? s->inflight_since_ns : s->pending.len ? s->pending_since_ns : now;
  uint64_t sending = s->chan ? tks_sender_oldest_ns(s->chan) : 0; /* (older than pending) */
  if (sending && sending < since) since = sending;
  return now > since ? (double)(now - since) / 1e9 : 0;
}

static const struct tks_stat ST_LISTEN = TKS_STAT("subscribe.listen", GAUGE, NONE, NULL);
static const struct tks_stat ST_PORT = TKS_STAT("subscribe.port", GAUGE, NONE, NULL);
static const struct tks_stat ST_SUBS = TKS_STAT("subscribe.subscribers", GAUGE, NONE,
                                                "Subscribers connected");
static const struct tks_stat ST_TOTAL = TKS_STAT("subscribe.connections_total", COUNTER, NONE,
                                                 "Subscription connections accepted");
static const struct tks_stat ST_REFUSED = TKS_STAT("subscribe.refused", COUNTER, NONE,
                                                   "Subscribers refused (max_connections, per ip)");
static const struct tks_stat ST_SENT = TKS_STAT("subscribe.sent_ticks", COUNTER, TICKS,
                                                "Ticks queued to subscribers, replay and live");
static const struct tks_stat ST_REPLAYED = TKS_STAT("subscribe.replayed_ticks", COUNTER, TICKS,
                                                    "Stored ticks sent by replays");
static const struct tks_stat ST_DROPPED = TKS_STAT(
    "subscribe.dropped_ticks", COUNTER, TICKS, "Live ticks dropped for full queues (policy drop)");
static const struct tks_stat ST_CLOSED_SLOW = TKS_STAT("subscribe.closed_slow", COUNTER, NONE,
                                                       "Subscribers disconnected for a full queue");
static const struct tks_stat ST_CLOSED_ERROR = TKS_STAT(
    "subscribe.closed_error", COUNTER, NONE,
    "Subscribers closed for a bad request or bytes after it");
static const struct tks_stat ST_QUEUE = TKS_STAT("subscribe.queue_bytes", GAUGE, BYTES,
                                                 "Bytes queued to subscribers, not yet sent");
static const struct tks_stat ST_SEND_THREAD = TKS_STAT("subscribe.send_thread", GAUGE, NONE, NULL);
static const struct tks_stat ST_SEND_WRITES = TKS_STAT(
    "subscribe.send_thread_writes", COUNTER, NONE,
    "Writes of the send thread to subscriber sockets");
static const struct tks_stat ST_SEND_FULL = TKS_STAT(
    "subscribe.send_thread_full", COUNTER, NONE,
    "Writes of the send thread that found a subscriber socket full");
static const struct tks_stat ST_MAX_LAG = TKS_STAT(
    "subscribe.max_lag_seconds", GAUGE, SECONDS, "Age of the oldest unsent byte of any subscriber");

void tks_subscribe_stats(struct tks_server *srv, struct tks_stats *st) {
  (void)srv;
  uint64_t n = 0, queued = 0, now = tks_mono_ns();
  double lag = 0;
  for (struct conn_link *l = S.subs.next; l != &S.subs; l = l->next) {
    const struct sub *s = SUB_OF(l);
    n++;
    queued += queue_bytes(s);
    double x = lag_seconds(s, now);
    if (x > lag) lag = x;
  }
  tks_stat_str(st, &ST_LISTEN, S.listener_open ? S.addr : "off");
  tks_stat_u64(st, &ST_PORT, S.port);
  tks_stat_u64(st, &ST_SUBS, n);
  tks_stat_u64(st, &ST_TOTAL, S.conns_total);
  tks_stat_u64(st, &ST_REFUSED, S.refused);
  tks_stat_u64(st, &ST_SENT, S.sent);
  tks_stat_u64(st, &ST_REPLAYED, S.replayed);
  tks_stat_u64(st, &ST_DROPPED, S.dropped);
  tks_stat_u64(st, &ST_CLOSED_SLOW, S.closed_slow);
  tks_stat_u64(st, &ST_CLOSED_ERROR, S.closed_error);
  tks_stat_u64(st, &ST_QUEUE, queued);
  tks_stat_f64(st, &ST_MAX_LAG, lag);
  uint64_t writes, full;
  tks_sender_counts(&writes, &full);
  tks_stat_str(st, &ST_SEND_THREAD, tks_sender_running() ? "on" : "off");
  tks_stat_u64(st, &ST_SEND_WRITES, writes);
  tks_stat_u64(st, &ST_SEND_FULL, full);
}

uint64_t tks_subscribe_buffer_bytes(struct tks_server *srv) {
  (void)srv;
  uint64_t b = S.obj_cap;
  for (struct conn_link *l = S.subs.next; l != &S.subs; l = l->next) {
    const struct sub *s = SUB_OF(l);
    b += tks_buf_bytes(&s->pending) + tks_buf_bytes(&s->inflight);
    if (s->chan) b += tks_sender_buffer_bytes(s->chan);
    if (s->req) b += TKS_SUBREQ_MAX_BYTES;
  }
  return b;
}

int tks_subscribe_list(struct tks_server *srv, struct tks_buf *out) {
  uint64_t now = tks_mono_ns(), now_ms = uv_now(srv->loop);
  int r = 0;
  for (struct conn_link *l = S.subs.next; l != &S.subs && r == 0; l = l->next) {
    const struct sub *s = SUB_OF(l);
    const char *state = s->state == SUB_REQUEST  ? "request"
                        : s->state == SUB_REPLAY ? "replay"
                                                 : "live";
    r |= tks_buf_puts(out, "{\"peer\":");
    r |= tks_buf_json_string(out, s->peer, strlen(s->peer));
    r |= tks_buf_printf(out, ",\"state\":\"%s\",\"symbols\":", state);
    if (s->want.all)
      r |= tks_buf_puts(out, "\"*\"");
    else
      r |= tks_buf_printf(out, "%" PRIu32, s->want.nsymbols);
    r |= tks_buf_printf(out,
                        ",\"sent\":%" PRIu64 ",\"replayed\":%" PRIu64 ",\"dropped\":%" PRIu64
                        ",\"queue_bytes\":%" PRIu64
                        ",\"lag_seconds\":%.3f,\"connected_seconds\":%" PRIu64 "}\n",
                        s->sent, s->replayed, s->dropped, queue_bytes(s), lag_seconds(s, now),
                        (now_ms - s->since_ms) / 1000);
  }
  return r ? -ENOMEM : 0;
}

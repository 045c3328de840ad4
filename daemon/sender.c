/*
 * The send thread (subscribe.send_thread): subscribe.c's writes to its
 * subscribers' sockets, moved off the loop thread, as Redis's io-threads
 * move a reply's write: the loop decides everything (what is queued, the
 * slow policies, the end of a subscription) and hands whole buffers over;
 * this thread only writes them, in the order handed, and says when a
 * socket failed, drained below a mark, or was let go.
 *
 * On loopback a send also runs the reader's TCP input, on the sender's CPU:
 * with one subscriber that was a quarter of the loop's time a tick
 * (bench/README.md, "Ticks out"), the one cost left that a second CPU can
 * take.
 *
 * A channel is one socket.  The loop hands a struct tks_buf by swapping it
 * with an empty one the channel kept (its memory reused, no copy); under
 * the one mutex the handed buffers wait in `in`, the thread moves them to
 * its own `out` and writes them with sendmsg (MSG_DONTWAIT), waiting in
 * epoll for EPOLLOUT where the socket is full.  What is queued is
 * `handed - done`, both counted in bytes (done: written, or discarded).
 * The loop learns of a channel's events through one uv_async.  A socket's
 * fd is the loop's uv_tcp_t's: it is closed only after the thread let it go
 * (tks_sender_close, then TKS_SEND_DETACHED).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "daemon.h"

#define IOV_BATCH 64 /* buffers a sendmsg */
#define KEEP_EMPTY 4 /* empty buffers a channel keeps for the loop's next hands */
#define EVENTS_BATCH 64

struct node {
  struct tks_buf b;
  uint64_t since_ns; /* when its first byte was queued */
  struct node *next;
};

struct tks_sender_chan {
  int fd;
  void *owner;
  /* Under S.mu. */
  struct node *in, **in_tail;
  struct node *empty; /* kept for hands */
  unsigned nempty;
  bool dirty, discard, detach;
  unsigned events; /* TKS_SEND_*, not yet delivered */
  struct tks_sender_chan *next_dirty, *next_event;
  /* The thread's own. */
  struct node *out, **out_tail;
  size_t off; /* of out's first buffer, written */
  bool polled, failed, listed;
  struct tks_sender_chan *next_work;
  /* Both sides. */
  /* Bytes: handed by the loop, seen (taken by the thread, or dropped),
   * done (written, or dropped): done <= seen <= handed. */
  atomic_uint_fast64_t handed, seen, done, oldest_ns, low, buffer_bytes;
  /* The socket would not take all of out (EAGAIN): set by the thread,
   * cleared once out is written. */
  atomic_bool full;
};

static struct {
  pthread_mutex_t mu;
  pthread_t thread;
  bool running, stop, asleep;
  struct tks_sender_chan *dirty, *events;
  int ep, wake_fd;
  uv_async_t async;
  bool async_open;
  tks_sender_event_fn fn;
  atomic_uint_fast64_t writes, blocked;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER, .ep = -1, .wake_fd = -1};

static void node_free(struct node *n) {
  tks_buf_finish(&n->b);
  free(n);
}

/* Frees a list; count: its bytes are dropped (unseen: not taken before). */
enum drop { DROP_NONE, DROP_SEEN, DROP_UNSEEN };
static void free_list(struct tks_sender_chan *c, struct node *n, enum drop count) {
  while (n) {
    struct node *next = n->next;
    if (count == DROP_UNSEEN) atomic_fetch_add(&c->seen, n->b.len);
    if (count != DROP_NONE) atomic_fetch_add(&c->done, n->b.len);
    atomic_fetch_sub(&c->buffer_bytes, tks_buf_bytes(&n->b) + sizeof *n);
    node_free(n);
    n = next;
  }
}

/* Under S.mu: a written buffer, emptied, kept for the loop's next hand. */
static void keep_empty(struct tks_sender_chan *c, struct node *n) {
  if (c->nempty >= KEEP_EMPTY) {
    n->next = NULL;
    free_list(c, n, DROP_NONE);
    return;
  }
  n->b.len = 0;
  n->next = c->empty;
  c->empty = n;
  c->nempty++;
}

/* Under S.mu: drops what the thread holds (out, a buffer begun too: its
 * written bytes were counted done already) and what waits for it (in). */
static void drop_out(struct tks_sender_chan *c) {
  atomic_fetch_sub(&c->done, c->off);
  c->off = 0;
  free_list(c, c->out, DROP_SEEN);
  c->out = NULL;
  c->out_tail = &c->out;
}

static void drop_in(struct tks_sender_chan *c) {
  free_list(c, c->in, DROP_UNSEEN);
  c->in = NULL;
  c->in_tail = &c->in;
}

/* The thread's: c into this turn's work, once. */
static void list_work(struct tks_sender_chan **work, struct tks_sender_chan *c) {
  if (c->listed) return;
  c->listed = true;
  c->next_work = *work;
  *work = c;
}

static void wake_thread(void) {
  uint64_t one = 1;
  while (write(S.wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

/* The loop's, holding S.mu: the channel has work for the thread; unlocks,
 * then wakes the thread if it sleeps. */
static void mark_dirty_unlock(struct tks_sender_chan *c) {
  if (!c->dirty) {
    c->dirty = true;
    c->next_dirty = S.dirty;
    S.dirty = c;
  }
  bool wake = S.asleep;
  S.asleep = false;
  pthread_mutex_unlock(&S.mu);
  if (wake) wake_thread();
}

/* Either side: tells the loop of events (the loop's own calls too, so
 * that a callback never runs inside the call that raised it). */
static void raise_event(struct tks_sender_chan *c, unsigned ev) {
  pthread_mutex_lock(&S.mu);
  if (!c->events) {
    c->next_event = S.events;
    S.events = c;
  }
  c->events |= ev;
  pthread_mutex_unlock(&S.mu);
  uv_async_send(&S.async);
}

uint64_t tks_sender_queued(const struct tks_sender_chan *c) {
  uint64_t h = atomic_load(&c->handed), d = atomic_load(&((struct tks_sender_chan *)c)->done);
  return h > d ? h - d : 0;
}

uint64_t tks_sender_unsent(const struct tks_sender_chan *c) {
  struct tks_sender_chan *m = (struct tks_sender_chan *)c;
  if (!atomic_load(&m->full)) return 0; /* being written: the thread's delay */
  uint64_t d = atomic_load(&m->done), s = atomic_load(&m->seen);
  return s > d ? s - d : 0;
}

static void check_low(struct tks_sender_chan *c) {
  uint64_t low = atomic_load(&c->low);
  if (low && tks_sender_queued(c) < low && atomic_exchange(&c->low, 0))
    raise_event(c, TKS_SEND_LOW);
}

/* ---- the thread ---- */

static void unpoll(struct tks_sender_chan *c) {
  if (!c->polled) return;
  epoll_ctl(S.ep, EPOLL_CTL_DEL, c->fd, NULL);
  c->polled = false;
}

/* Writes out until it is empty or the socket full. */
static void write_out(struct tks_sender_chan *c) {
  while (c->out && !c->failed) {
    struct iovec iov[IOV_BATCH];
    int n = 0;
    for (struct node *x = c->out; x && n < IOV_BATCH; x = x->next, n++) {
      size_t skip = n ? 0 : c->off;
      iov[n].iov_base = x->b.data + skip;
      iov[n].iov_len = x->b.len - skip;
    }
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t w = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    atomic_fetch_add(&S.writes, 1);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        atomic_fetch_add(&S.blocked, 1);
        atomic_store(&c->full, true);
        if (!c->polled) {
          struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
          if (epoll_ctl(S.ep, EPOLL_CTL_ADD, c->fd, &ev) == 0) c->polled = true;
        }
        break;
      }
      /* The peer is gone (EPIPE, ECONNRESET ...): nothing more is written. */
      c->failed = true;
      pthread_mutex_lock(&S.mu);
      drop_out(c);
      pthread_mutex_unlock(&S.mu);
      unpoll(c);
      raise_event(c, TKS_SEND_ERROR);
      break;
    }
    atomic_fetch_add(&c->done, (uint64_t)w);
    size_t left = (size_t)w;
    struct node *written = NULL;
    while (c->out && left >= c->out->b.len - c->off) {
      left -= c->out->b.len - c->off;
      struct node *x = c->out;
      c->out = x->next;
      c->off = 0;
      x->next = written;
      written = x;
    }
    if (!c->out) c->out_tail = &c->out;
    c->off += left;
    if (written) {
      pthread_mutex_lock(&S.mu);
      while (written) {
        struct node *x = written;
        written = x->next;
        keep_empty(c, x);
      }
      pthread_mutex_unlock(&S.mu);
    }
  }
  if (!c->out) {
    unpoll(c);
    atomic_store(&c->full, false);
  }
  atomic_store(&c->oldest_ns, c->out ? c->out->since_ns : 0);
  check_low(c);
}

/* Under S.mu: what the loop handed goes after out; a discard first drops
 * out but for a buffer begun (a message is never cut). */
static void take_in(struct tks_sender_chan *c) {
  if (c->discard) {
    c->discard = false;
    struct node *keep = c->out && c->off ? c->out : NULL;
    struct node *drop = keep ? keep->next : c->out;
    if (keep) keep->next = NULL;
    free_list(c, drop, DROP_SEEN);
    c->out = keep;
    c->out_tail = keep ? &keep->next : &c->out;
  }
  if (!c->in) return;
  if (c->failed) {
    drop_in(c);
    return;
  }
  if (!c->out) atomic_store(&c->oldest_ns, c->in->since_ns);
  uint64_t n = 0;
  for (struct node *x = c->in; x; x = x->next) n += x->b.len;
  atomic_fetch_add(&c->seen, n);
  *c->out_tail = c->in;
  c->out_tail = c->in_tail;
  c->in = NULL;
  c->in_tail = &c->in;
}

static void *run(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "tks-sub-send");
  struct epoll_event evs[EVENTS_BATCH];
  for (;;) {
    pthread_mutex_lock(&S.mu);
    bool idle = !S.dirty && !S.stop;
    S.asleep = idle;
    pthread_mutex_unlock(&S.mu);
    int n = epoll_wait(S.ep, evs, EVENTS_BATCH, idle ? -1 : 0);
    struct tks_sender_chan *work = NULL, *detached = NULL;
    for (int i = 0; i < n; i++) {
      struct tks_sender_chan *c = evs[i].data.ptr;
      if (!c) {
        uint64_t v;
        while (read(S.wake_fd, &v, sizeof v) < 0 && errno == EINTR) {
        }
        continue;
      }
      list_work(&work, c);
    }
    pthread_mutex_lock(&S.mu);
    bool stop = S.stop;
    struct tks_sender_chan *d = S.dirty;
    S.dirty = NULL;
    while (d) {
      struct tks_sender_chan *c = d;
      d = c->next_dirty;
      c->dirty = false;
      if (c->detach) {
        /* Let go of the socket: nothing of it is written any more. */
        unpoll(c);
        drop_out(c);
        drop_in(c);
        c->failed = true;
        c->next_dirty = detached;
        detached = c;
        continue;
      }
      take_in(c);
      list_work(&work, c);
    }
    pthread_mutex_unlock(&S.mu);
    if (stop) break;
    for (struct tks_sender_chan *c = work, *next; c; c = next) {
      next = c->next_work;
      c->listed = false;
      if (!c->failed) write_out(c);
    }
    /* Last: once told, the loop may free the channel. */
    for (struct tks_sender_chan *c = detached, *next; c; c = next) {
      next = c->next_dirty;
      raise_event(c, TKS_SEND_DETACHED);
    }
  }
  return NULL;
}

/* ---- the loop's side ---- */

static void on_async(uv_async_t *h) {
  (void)h;
  /* The events raised so far only: those the callbacks (or the thread,
   * meanwhile) raise go to the next loop turn, by their own
   * uv_async_send, or a busy channel would keep the loop here. */
  pthread_mutex_lock(&S.mu);
  struct tks_sender_chan *c = S.events;
  S.events = NULL;
  pthread_mutex_unlock(&S.mu);
  while (c) {
    pthread_mutex_lock(&S.mu);
    struct tks_sender_chan *next = c->next_event;
    unsigned ev = c->events;
    c->events = 0;
    pthread_mutex_unlock(&S.mu);
    S.fn(c->owner, ev); /* (DETACHED: c is freed in a later phase, on_closed) */
    c = next;
  }
}

int tks_sender_start(uv_loop_t *loop, tks_sender_event_fn fn) {
  if (S.running) return 0;
  S.fn = fn;
  S.stop = false;
  S.ep = epoll_create1(EPOLL_CLOEXEC);
  S.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int r = 0;
  if (S.ep < 0 || S.wake_fd < 0) r = -errno;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (!r && epoll_ctl(S.ep, EPOLL_CTL_ADD, S.wake_fd, &ev) != 0) r = -errno;
  if (!r) r = uv_async_init(loop, &S.async, on_async);
  if (!r) {
    S.async_open = true;
    uv_unref((uv_handle_t *)&S.async);
    r = -pthread_create(&S.thread, NULL, run, NULL);
  }
  if (r) {
    tks_sender_stop();
    return r;
  }
  S.running = true;
  return 0;
}

void tks_sender_stop(void) {
  if (S.running) {
    pthread_mutex_lock(&S.mu);
    S.stop = true;
    bool wake = S.asleep;
    S.asleep = false;
    pthread_mutex_unlock(&S.mu);
    if (wake) wake_thread();
    pthread_join(S.thread, NULL);
    S.running = false;
  }
  if (S.async_open) {
    S.async_open = false;
    uv_close((uv_handle_t *)&S.async, NULL);
  }
  if (S.ep >= 0) close(S.ep);
  if (S.wake_fd >= 0) close(S.wake_fd);
  S.ep = S.wake_fd = -1;
  S.dirty = S.events = NULL;
}

bool tks_sender_running(void) { return S.running; }

struct tks_sender_chan *tks_sender_open(int fd, void *owner) {
  if (!S.running) return NULL;
  struct tks_sender_chan *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->fd = fd;
  c->owner = owner;
  c->in_tail = &c->in;
  c->out_tail = &c->out;
  return c;
}

int tks_sender_hand(struct tks_sender_chan *c, struct tks_buf *b, uint64_t since_ns) {
  if (!b->len) return 0;
  pthread_mutex_lock(&S.mu);
  struct node *n = c->empty;
  if (n) {
    c->empty = n->next;
    c->nempty--;
  } else {
    n = calloc(1, sizeof *n);
    if (!n) {
      pthread_mutex_unlock(&S.mu);
      return -ENOMEM;
    }
    atomic_fetch_add(&c->buffer_bytes, sizeof *n);
  }
  /* The buffer changes hands: the loop gets the node's empty one. */
  struct tks_buf t = n->b;
  size_t was = tks_buf_bytes(&t);
  n->b = *b;
  *b = t;
  b->len = 0;
  atomic_fetch_add(&c->buffer_bytes, tks_buf_bytes(&n->b));
  atomic_fetch_sub(&c->buffer_bytes, was);
  n->since_ns = since_ns;
  n->next = NULL;
  *c->in_tail = n;
  c->in_tail = &n->next;
  atomic_fetch_add(&c->handed, n->b.len);
  mark_dirty_unlock(c);
  return 0;
}

void tks_sender_discard(struct tks_sender_chan *c) {
  pthread_mutex_lock(&S.mu);
  drop_in(c);
  c->discard = true;
  mark_dirty_unlock(c);
}

void tks_sender_notify_below(struct tks_sender_chan *c, uint64_t bytes) {
  atomic_store(&c->low, bytes);
  check_low(c); /* (the thread may have drained it already) */
}

uint64_t tks_sender_oldest_ns(const struct tks_sender_chan *c) {
  return atomic_load(&((struct tks_sender_chan *)c)->oldest_ns);
}

uint64_t tks_sender_buffer_bytes(const struct tks_sender_chan *c) {
  return atomic_load(&((struct tks_sender_chan *)c)->buffer_bytes);
}

bool tks_sender_close(struct tks_sender_chan *c) {
  if (!S.running) return true;
  pthread_mutex_lock(&S.mu);
  c->detach = true;
  mark_dirty_unlock(c);
  return false;
}

void tks_sender_free(struct tks_sender_chan *c) {
  if (!c) return;
  free_list(c, c->in, DROP_NONE);
  free_list(c, c->out, DROP_NONE);
  free_list(c, c->empty, DROP_NONE);
  free(c);
}

void tks_sender_counts(uint64_t *writes, uint64_t *blocked) {
  *writes = atomic_load(&S.writes);
  *blocked = atomic_load(&S.blocked);
}

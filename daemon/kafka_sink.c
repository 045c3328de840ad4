/*
 * kafka.sink: every tick accepted over TCP produced to kafka.sink.topic,
 * keyed by its symbol, with librdkafka's idempotent producer (acks=all).
 * The journal is the outbox: a thread of its own follows the journal's
 * segments behind the writer's published end (lib/journal.h's tail
 * reader), takes the ticks of each frame (a read's, or a named producer's
 * record; not the records of evictions and seals, nor the Kafka source's
 * ticks) and produces each one, its bytes exactly as the client sent them.
 * Delivery reports come per partition, out of order across partitions: a
 * ring of the frames in flight advances the position (segment, offset
 * after a frame) over the frames whose ticks are all acknowledged; it is
 * saved in journal.dir/kafka-sink.position (lib/sinkpos.h) every 100 ms
 * while it moves and at the stop, and the checkpoints' prune keeps the
 * segments from it on.  A failed delivery rewinds the reader to the
 * position: nothing is lost, what was after it is produced again.  The
 * backlog (journal bytes after the position) is held to max_queue_bytes
 * by on_full, looked at from a loop timer.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "daemon.h"
#include "journal.h"
#include "kafka.h"
#include "oprec.h"
#include "sinkpos.h"

#define SAVE_NS 100000000ull  /* the position file, at most this often while it moves */
#define POLL_MS 20            /* the thread's wait for delivery reports and new frames */
#define WATCH_MS 50           /* the loop's look at the queue (on_full) */
#define STOP_NS 5000000000ull /* the stop produces what is left for this long at most */
#define RING_MAX (1u << 16)   /* frames in flight */
#define LOG_EVERY_NS 1000000000ull
#define SOURCE_PREFIX "kafka:" /* the Kafka source's producer records (its own ticks) */

struct frame {
  uint64_t seg, end;    /* the position after it */
  uint32_t outstanding; /* ticks not yet acknowledged (+1 while it is being produced) */
  int64_t recv_ns;
};

static struct {
  struct tks_server *srv;
  bool on;
  rd_kafka_t *rk;
  rd_kafka_topic_t *rkt;
  struct tks_journal_tail *tail;
  pthread_t thread;
  bool thread_started;
  uv_timer_t watch;
  bool watch_open;
  char topic[250];
  char dir[4096];

  /* The sink thread's. */
  struct frame *ring; /* RING_MAX */
  uint64_t base;      /* frame number of ring[head] */
  uint32_t head, count;
  uint64_t next_fno;         /* the next frame's number (never reused: a rewind skips ahead) */
  uint64_t pos_seg, pos_off; /* acknowledged up to here */
  int64_t pos_recv_ns;
  uint64_t saved_seg, saved_off;
  uint64_t last_save_ns;
  bool rewind;
  struct tks_ratelimit log_limit; /* sink_log's: one line a second */

  /* Between the threads (the loop's timer and stats read them). */
  atomic_bool stop; /* the stop asked: drain until stop_deadline */
  atomic_uint_fast64_t stop_deadline;
  atomic_bool fatal;        /* librdkafka's fatal error: a new producer */
  atomic_bool brokers_down; /* all brokers down, until a delivery succeeds */
  atomic_uint_fast64_t produced, acknowledged, failed, rewinds, journal_errors, frames;
  atomic_uint_fast64_t queued_bytes, lag_ns, a_seg, a_off, in_flight;
  atomic_bool caught_up;

  /* The loop's. */
  bool holding;
} K;

static void sink_log(enum tks_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The sink thread's rate-limited log: one line a second, the rest counted. */
static void sink_log(enum tks_log_level level, const char *fmt, ...) {
  uint64_t held;
  if (!tks_ratelimit_pass(&K.log_limit, tks_mono_ns(), &held)) return;
  char line[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (held)
    tks_log(level, "kafka.sink: %s (%" PRIu64 " more such lines suppressed)", line, held);
  else
    tks_log(level, "kafka.sink: %s", line);
}

/* ---- librdkafka's callbacks (the sink thread's rd_kafka_poll) ---------- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk, (void)opaque;
  uint64_t fno = (uint64_t)(uintptr_t)m->_private;
  /* A report of a frame from before a rewind (purged, or in flight then):
   * those ticks are produced again anyway. */
  bool current = fno >= K.base && fno - K.base < K.count;
  if (m->err) {
    if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
      return;
    atomic_fetch_add(&K.failed, 1);
    if (!current) return;
    sink_log(TKS_LOG_WARN, "a delivery failed (%s): producing again from the position",
             rd_kafka_err2str(m->err));
    K.rewind = true;
    return;
  }
  atomic_fetch_add(&K.acknowledged, 1);
  atomic_store(&K.brokers_down, false);
  if (!current) return;
  struct frame *f = &K.ring[(K.head + (fno - K.base)) % RING_MAX];
  if (f->outstanding) f->outstanding--;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  (void)rk, (void)opaque;
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) atomic_store(&K.brokers_down, true);
  if (err == RD_KAFKA_RESP_ERR__FATAL) atomic_store(&K.fatal, true);
  /* librdkafka's threads: tks_log is thread-safe, but not the limiter. */
  static _Atomic uint64_t last;
  uint64_t now = tks_mono_ns(), was = atomic_load(&last);
  if (err == RD_KAFKA_RESP_ERR__FATAL || now - was >= 10 * LOG_EVERY_NS || !was) {
    atomic_store(&last, now);
    tks_log(err == RD_KAFKA_RESP_ERR__FATAL ? TKS_LOG_ERROR : TKS_LOG_WARN, "kafka.sink: %s: %s",
            rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
  }
}

/* librdkafka's own log (its threads): into ours, a line every 10 s at most. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  (void)rk;
  static _Atomic uint64_t last;
  uint64_t now = tks_mono_ns(), was = atomic_load(&last);
  if (was && now - was < 10 * LOG_EVERY_NS) return;
  atomic_store(&last, now);
  tks_log(level <= 3 ? TKS_LOG_WARN : TKS_LOG_INFO, "kafka.sink: librdkafka %s: %s", fac, buf);
}

/* ---- the producer ------------------------------------------------------ */

/* A property the producer cannot run with (kafka.sink.properties): the
 * idempotent producer with acks=all is what makes "nothing lost, no
 * retry's duplicate" true. */
static int check_properties(const char *props, char *err, size_t n) {
  size_t pos = 0;
  const char *name, *value;
  while (tks_config_props_next(props, &pos, &name, &value)) {
    if (strcmp(name, "enable.idempotence") == 0 && strcmp(value, "true") != 0) {
      snprintf(err, n,
               "kafka.sink.properties: enable.idempotence must be true (the sink is the idempotent "
               "producer), not '%s'",
               value);
      return -EINVAL;
    }
    if ((strcmp(name, "acks") == 0 || strcmp(name, "request.required.acks") == 0) &&
        strcmp(value, "all") != 0 && strcmp(value, "-1") != 0) {
      snprintf(
          err, n,
          "kafka.sink.properties: %s must be all (every in-sync replica acknowledges), not '%s'",
          name, value);
      return -EINVAL;
    }
    if (strcmp(name, "transactional.id") == 0) {
      snprintf(err, n,
               "kafka.sink.properties: transactional.id: the sink is not a transactional producer");
      return -EINVAL;
    }
  }
  return 0;
}

/* The producer and its topic handle, or -errno with err set. */
static int producer_new(const struct tks_config *cfg, char *err, size_t n) {
  const char *props = cfg->kafka.sink.properties;
  char why[512];
  /* Brokers, then the properties; then the defaults the properties did not
   * set: the partitioner of kafka.source (murmur2, as the Java client) and
   * librdkafka's queue bounded (the journal holds the backlog). */
  rd_kafka_conf_t *conf = tks_kafka_conf(cfg->kafka.sink.brokers, props, "kafka.sink.properties",
                                         err, n);
  if (!conf) return -EINVAL;
  static const char *const defaults[][2] = {{"partitioner", "murmur2_random"},
                                            {"queue.buffering.max.kbytes", "65536"},
                                            {"queue.buffering.max.messages", "100000"}};
  for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
    bool given = false;
    size_t pos = 0;
    const char *name, *value;
    while (tks_config_props_next(props, &pos, &name, &value))
      if (strcmp(name, defaults[i][0]) == 0) given = true;
    if (!given && tks_kafka_set(conf, defaults[i][0], defaults[i][1], why, sizeof why)) {
      snprintf(err, n, "%s: %s", defaults[i][0], why);
      rd_kafka_conf_destroy(conf);
      return -EINVAL;
    }
  }
  /* What the sink's promise needs, after the properties (checked above). */
  if (tks_kafka_set(conf, "enable.idempotence", "true", why, sizeof why) ||
      tks_kafka_set(conf, "acks", "all", why, sizeof why)) {
    snprintf(err, n, "%s", why);
    rd_kafka_conf_destroy(conf);
    return -EINVAL;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_error_cb(conf, on_error);
  rd_kafka_conf_set_log_cb(conf, on_log);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
  if (!rk) {
    snprintf(err, n, "cannot make the producer: %s", why);
    rd_kafka_conf_destroy(conf);
    return -EINVAL;
  }
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, cfg->kafka.sink.topic, NULL);
  if (!rkt) {
    snprintf(err, n, "topic %s: %s", cfg->kafka.sink.topic,
             rd_kafka_err2str(rd_kafka_last_error()));
    rd_kafka_destroy(rk);
    return -EINVAL;
  }
  K.rk = rk;
  K.rkt = rkt;
  return 0;
}

static void producer_destroy(void) {
  if (K.rk) {
    /* What is left is in the journal after the position: produced again. */
    rd_kafka_purge(K.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(K.rk, 0);
  }
  if (K.rkt) rd_kafka_topic_destroy(K.rkt);
  if (K.rk) rd_kafka_destroy(K.rk);
  K.rkt = NULL;
  K.rk = NULL;
}

/* ---- the position ------------------------------------------------------ */

static void save_position(bool force) {
  if (!force && K.pos_seg == K.saved_seg && K.pos_off == K.saved_off) return;
  char line[TKS_SINKPOS_MAX];
  size_t n = tks_sinkpos_format(line, K.pos_seg, K.pos_off);
  int r = tks_write_file_atomic(K.dir, TKS_SINKPOS_FILE, line, n);
  if (r) {
    sink_log(TKS_LOG_ERROR, "cannot save the position in %s/%s: %s", K.dir, TKS_SINKPOS_FILE,
             strerror(-r));
    return;
  }
  K.saved_seg = K.pos_seg, K.saved_off = K.pos_off;
  K.last_save_ns = tks_mono_ns();
}

/* Where to begin: the position file's, else (missing: a new sink) the
 * journal's end now, else (unreadable) the oldest segment present. */
static void load_position(uint64_t end_seg, uint64_t end_off) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", K.dir, TKS_SINKPOS_FILE);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  uint64_t oldest = end_seg;
  if (tks_journal_oldest(K.dir, &oldest) != 0) oldest = end_seg;
  if (fd < 0) {
    K.pos_seg = end_seg, K.pos_off = end_off;
    tks_log(TKS_LOG_INFO,
            "kafka.sink: no %s: a new sink, producing from the journal's end (segment %" PRIu64
            ", offset %" PRIu64 ")",
            path, end_seg, end_off);
    save_position(true);
    return;
  }
  char buf[TKS_SINKPOS_MAX + 1];
  ssize_t n = read(fd, buf, sizeof buf);
  close(fd);
  uint64_t seg, off;
  if (n < 0 || tks_sinkpos_parse(buf, (size_t)n, &seg, &off) != 0) {
    tks_log(TKS_LOG_ERROR,
            "kafka.sink: %s is unreadable or corrupt: producing from the oldest journal segment "
            "(%" PRIu64 "): ticks already on the topic are produced again",
            path, oldest);
    K.pos_seg = oldest, K.pos_off = 0;
    return;
  }
  if (seg < oldest) {
    tks_log(TKS_LOG_WARN,
            "kafka.sink: the position (segment %" PRIu64 ") is before the oldest journal segment "
            "(%" PRIu64 "): the ticks between are not in the journal any more and are not produced",
            seg, oldest);
    seg = oldest, off = 0;
  } else if (seg > end_seg || (seg == end_seg && off > end_off)) {
    tks_log(TKS_LOG_WARN,
            "kafka.sink: the position (segment %" PRIu64 ", offset %" PRIu64 ") is past the "
            "journal's end: producing from the end",
            seg, off);
    seg = end_seg, off = end_off;
  }
  K.pos_seg = seg, K.pos_off = off;
  tks_log(TKS_LOG_INFO, "kafka.sink: producing from segment %" PRIu64 ", offset %" PRIu64, seg,
          off);
}

/* ---- the sink thread --------------------------------------------------- */

static void ring_reset(void) {
  K.base = K.next_fno;
  K.head = K.count = 0;
}

/* Over the frames at the ring's head whose ticks are all acknowledged. */
static void advance(void) {
  while (K.count && K.ring[K.head].outstanding == 0) {
    struct frame *f = &K.ring[K.head];
    K.pos_seg = f->seg, K.pos_off = f->end;
    if (f->recv_ns) K.pos_recv_ns = f->recv_ns;
    K.head = (K.head + 1) % RING_MAX;
    K.count--;
    K.base++;
  }
}

static void do_rewind(void) {
  K.rewind = false;
  atomic_fetch_add(&K.rewinds, 1);
  /* What is queued and not sent is produced again from the position;
   * what is in flight may land (a duplicate), its report is ignored. */
  rd_kafka_purge(K.rk, RD_KAFKA_PURGE_F_QUEUE);
  rd_kafka_poll(K.rk, 0);
  K.rewind = false;
  ring_reset();
  int r = tks_journal_tail_seek(K.tail, K.pos_seg, K.pos_off);
  if (r) {
    sink_log(TKS_LOG_ERROR, "rewinding to the position: %s; from the segment's start",
             tks_journal_tail_error(K.tail));
    tks_journal_tail_seek(K.tail, K.pos_seg, 0);
  }
}

static bool stopping_now(void) {
  return atomic_load(&K.stop) && tks_mono_ns() >= atomic_load(&K.stop_deadline);
}

static void publish(uint64_t end_seg, uint64_t end_off) {
  atomic_store(&K.a_seg, K.pos_seg);
  atomic_store(&K.a_off, K.pos_off);
  uint64_t q = tks_journal_tail_bytes(K.tail, K.pos_seg, K.pos_off, end_seg, end_off);
  atomic_store(&K.queued_bytes, q);
  uint64_t in_flight = 0;
  int64_t oldest = 0;
  if (K.count) oldest = K.ring[K.head].recv_ns;
  for (uint32_t i = 0; i < K.count; i++) in_flight += K.ring[(K.head + i) % RING_MAX].outstanding;
  atomic_store(&K.in_flight, in_flight);
  int64_t now = tks_now_ns();
  atomic_store(&K.lag_ns, q && oldest && now > oldest ? (uint64_t)(now - oldest) : 0);
}

/* Between produce calls and rounds: delivery reports, the position. */
static void housekeeping(uint64_t end_seg, uint64_t end_off, int wait_ms) {
  rd_kafka_poll(K.rk, wait_ms);
  advance();
  if (tks_mono_ns() - K.last_save_ns >= SAVE_NS) save_position(false);
  publish(end_seg, end_off);
}

/* Produces one tick; waits while librdkafka's queue is full.  False when
 * the stop's time is up first (the frame stays unacknowledged). */
static bool produce(uint64_t fno, const uint8_t *tick, size_t len, const char *key,
                    uint32_t key_len, int64_t recv_ns, uint64_t end_seg, uint64_t end_off) {
  for (;;) {
    rd_kafka_resp_err_t e = rd_kafka_producev(
        K.rk, RD_KAFKA_V_RKT(K.rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE((void *)tick, len), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_TIMESTAMP(recv_ns / 1000000), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)fno),
        RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
      atomic_fetch_add(&K.produced, 1);
      return true;
    }
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      atomic_fetch_add(&K.failed, 1);
      sink_log(TKS_LOG_WARN, "producing a tick: %s", rd_kafka_err2str(e));
      K.rewind = true;
      return false;
    }
    if (stopping_now() || atomic_load(&K.fatal)) return false;
    housekeeping(end_seg, end_off, POLL_MS);
    if (K.rewind) return false;
  }
}

/* One journal frame: its ticks produced, the frame in the ring. */
static void take_frame(const uint8_t *p, size_t len, uint64_t end_seg, uint64_t end_off) {
  uint64_t seg, off;
  tks_journal_tail_where(K.tail, &seg, &off);
  const uint8_t *ticks = NULL;
  size_t tlen = 0;
  int64_t recv = 0;
  if (tks_oprec_is(p, len)) {
    struct tks_oprec r;
    if (tks_oprec_parse(p, len, &r) == 0 && r.kind == TKS_OPREC_PRODUCER && r.has_ticks &&
        !(r.producer_len >= sizeof SOURCE_PREFIX - 1 &&
          memcmp(r.producer, SOURCE_PREFIX, sizeof SOURCE_PREFIX - 1) == 0)) {
      ticks = r.data, tlen = r.data_len, recv = r.recv_ns;
    }
  } else if (len >= 8) {
    memcpy(&recv, p, 8);
    ticks = p + 8, tlen = len - 8;
  }
  atomic_fetch_add(&K.frames, 1);
  if (tlen == 0 && K.count == 0) { /* nothing to wait for */
    K.pos_seg = seg, K.pos_off = off;
    if (recv) K.pos_recv_ns = recv;
    return;
  }
  uint64_t fno = K.next_fno++;
  struct frame *f = &K.ring[(K.head + K.count) % RING_MAX];
  *f = (struct frame){.seg = seg, .end = off, .outstanding = 1, .recv_ns = recv};
  K.count++;
  const struct tks_schema *schema = &K.srv->cfg.schema;
  size_t at = 0;
  while (at < tlen) {
    long n = tks_msgpack_skip(ticks + at, tlen - at, tlen - at);
    if (n <= 0) {
      atomic_fetch_add(&K.journal_errors, 1);
      sink_log(TKS_LOG_ERROR,
               "segment %" PRIu64 ": a frame's ticks end in bytes that are not msgpack (%zu "
               "bytes skipped)",
               seg, tlen - at);
      break;
    }
    const char *key = NULL;
    uint32_t key_len = 0;
    if (tks_decode_symbol(schema, ticks + at, (size_t)n, &key, &key_len) != 0) key = NULL;
    f->outstanding++;
    if (!produce(fno, ticks + at, (size_t)n, key, key_len, recv, end_seg, end_off)) {
      /* Not produced: the frame never completes; a rewind or the stop follows. */
      if (!K.rewind && !stopping_now() && !atomic_load(&K.fatal)) K.rewind = true;
      return;
    }
    /* The ring may have moved under produce's polls: f stays valid (its
     * outstanding count is above 0, so advance never passes it). */
    at += (size_t)n;
  }
  f->outstanding--;
}

static void *sink_main(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "tks-kafka-sink");
  uint64_t end_seg = K.pos_seg, end_off = K.pos_off;
  for (;;) {
    tks_durability_written(&end_seg, &end_off);
    if (atomic_load(&K.fatal)) {
      /* The idempotent producer cannot go on: a new one, from the position. */
      char err[600];
      rd_kafka_purge(K.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      producer_destroy();
      atomic_store(&K.fatal, false);
      if (producer_new(&K.srv->cfg, err, sizeof err) != 0) {
        tks_log(TKS_LOG_ERROR, "kafka.sink: a new producer: %s: the sink stops", err);
        break;
      }
      K.rewind = true;
    }
    if (K.rewind) do_rewind();
    bool caught_up = false, read_error = false;
    while (K.count < RING_MAX && !K.rewind && !stopping_now() && !atomic_load(&K.fatal)) {
      const void *p;
      size_t len;
      int r = tks_journal_tail_next(K.tail, end_seg, end_off, &p, &len);
      if (r == 0) {
        caught_up = true;
        break;
      }
      if (r == -EBADMSG) {
        uint64_t seg, off;
        tks_journal_tail_where(K.tail, &seg, &off);
        sink_log(TKS_LOG_ERROR, "%s: the rest of segment %" PRIu64 " is skipped",
                 tks_journal_tail_error(K.tail), seg);
        atomic_fetch_add(&K.journal_errors, 1);
        tks_journal_tail_skip(K.tail);
        continue;
      }
      if (r < 0) { /* EMFILE, EIO, ENOMEM: the same again after a wait */
        sink_log(TKS_LOG_ERROR, "reading the journal: %s%s%s: trying again", strerror(-r),
                 tks_journal_tail_error(K.tail)[0] ? ": " : "", tks_journal_tail_error(K.tail));
        read_error = true;
        break;
      }
      take_frame(p, len, end_seg, end_off);
      if (K.count == 0) continue;
      /* Reports between frames, so that the ring drains as it fills. */
      rd_kafka_poll(K.rk, 0);
      advance();
    }
    atomic_store(&K.caught_up, caught_up && K.count == 0);
    bool stop = atomic_load(&K.stop);
    if (stop && ((caught_up && K.count == 0) || stopping_now())) break;
    /* Caught up, or waiting (the ring full, a read error): a wait for
     * reports; else on at once. */
    bool busy = !caught_up && !read_error && K.count < RING_MAX && !K.rewind;
    housekeeping(end_seg, end_off, busy ? 0 : POLL_MS);
  }
  /* The stop: what librdkafka holds is given the time left, then the
   * position of what was acknowledged is saved. */
  uint64_t now = tks_mono_ns(), deadline = atomic_load(&K.stop_deadline);
  if (K.rk) {
    rd_kafka_flush(K.rk, now < deadline ? (int)((deadline - now) / 1000000) : 0);
    rd_kafka_poll(K.rk, 0);
  }
  advance();
  save_position(false);
  publish(end_seg, end_off);
  return NULL;
}

/* ---- the loop's side: on_full, the keep of the journal ---------------- */

static void on_watch(uv_timer_t *t) {
  struct tks_server *srv = t->data;
  srv->journal_keep_from = atomic_load(&K.a_seg);
  uint64_t q = atomic_load(&K.queued_bytes), max = srv->cfg.kafka.sink.max_queue_bytes;
  /* Over the limit: the policy; released below seven eighths of it. */
  if (!K.holding && q > max) {
    K.holding = true;
    if (srv->cfg.kafka.sink.on_full == TKS_SINK_FULL_REJECT) {
      srv->sink_refusing = true;
      tks_log(TKS_LOG_WARN,
              "kafka.sink: %" PRIu64 " bytes of journal wait for Kafka (max_queue_bytes %" PRIu64
              "): rejecting TCP ticks (sink_full)",
              q, max);
    } else {
      tks_server_hold(srv, TKS_HOLD_SINK, true);
    }
  } else if (K.holding && q <= max - max / 8) {
    K.holding = false;
    if (srv->sink_refusing) {
      srv->sink_refusing = false;
      tks_log(TKS_LOG_INFO, "kafka.sink: the queue is down to %" PRIu64 " bytes: accepting again",
              q);
    }
    if (tks_server_held(srv, TKS_HOLD_SINK)) tks_server_hold(srv, TKS_HOLD_SINK, false);
  }
}

/* ---- start, stop, stats ------------------------------------------------ */

int tks_kafka_sink_start(struct tks_server *srv) {
  const struct tks_config *cfg = &srv->cfg;
  if (!cfg->kafka.sink.brokers[0]) return 0;
  K.log_limit = (struct tks_ratelimit){.period_ns = LOG_EVERY_NS, .burst = 1};
  char err[600];
  if (!cfg->journal.enabled) {
    tks_log(TKS_LOG_ERROR, "kafka.sink needs the journal (journal.enabled: true): the journal is "
                           "its outbox, what Kafka has not acknowledged is produced from it");
    return -EINVAL;
  }
  if (cfg->kafka.source.brokers[0] &&
      strcmp(cfg->kafka.source.brokers, cfg->kafka.sink.brokers) == 0 &&
      strcmp(cfg->kafka.source.topic, cfg->kafka.sink.topic) == 0) {
    tks_log(TKS_LOG_ERROR,
            "kafka.sink and kafka.source are the same topic %s on the same brokers: a loop "
            "(the sink would produce what the source consumes); refusing to start",
            cfg->kafka.sink.topic);
    return -EINVAL;
  }
  if (check_properties(cfg->kafka.sink.properties, err, sizeof err) ||
      producer_new(cfg, err, sizeof err)) {
    tks_log(TKS_LOG_ERROR, "kafka.sink: %s", err);
    return -EINVAL;
  }
  K.srv = srv;
  snprintf(K.dir, sizeof K.dir, "%s", cfg->journal.dir);
  snprintf(K.topic, sizeof K.topic, "%s", cfg->kafka.sink.topic);
  K.ring = calloc(RING_MAX, sizeof *K.ring);
  if (!K.ring) {
    producer_destroy();
    tks_log(TKS_LOG_ERROR, "kafka.sink: out of memory");
    return -ENOMEM;
  }
  uint64_t end_seg, end_off;
  if (!tks_durability_written(&end_seg, &end_off)) end_seg = 1, end_off = 0;
  load_position(end_seg, end_off);
  int r = tks_journal_tail_open(&K.tail, K.dir, K.pos_seg, K.pos_off, err, sizeof err);
  if (r == -EINVAL) {
    tks_log(TKS_LOG_ERROR, "kafka.sink: the position: %s: producing from the segment's start", err);
    K.pos_off = 0;
    r = tks_journal_tail_open(&K.tail, K.dir, K.pos_seg, 0, err, sizeof err);
  }
  if (r) {
    tks_log(TKS_LOG_ERROR, "kafka.sink: reading the journal: %s", err);
    producer_destroy();
    free(K.ring);
    K.ring = NULL;
    return r;
  }
  srv->journal_keep_from = K.pos_seg;
  atomic_store(&K.a_seg, K.pos_seg);
  atomic_store(&K.a_off, K.pos_off);
  K.on = true;
  if (pthread_create(&K.thread, NULL, sink_main, NULL) != 0) {
    tks_log(TKS_LOG_ERROR, "kafka.sink: cannot start its thread");
    tks_journal_tail_close(K.tail);
    K.tail = NULL;
    producer_destroy();
    K.on = false;
    return -EAGAIN;
  }
  K.thread_started = true;
  uv_timer_init(srv->loop, &K.watch);
  K.watch.data = srv;
  K.watch_open = true;
  uv_timer_start(&K.watch, on_watch, WATCH_MS, WATCH_MS);
  tks_log(TKS_LOG_INFO, "kafka.sink: producing the TCP ticks to %s on %s", cfg->kafka.sink.topic,
          cfg->kafka.sink.brokers);
  return 0;
}

void tks_kafka_sink_stop(struct tks_server *srv) {
  if (K.watch_open) {
    uv_timer_stop(&K.watch);
    uv_close((uv_handle_t *)&K.watch, NULL);
    K.watch_open = false;
  }
  if (K.holding) {
    tks_server_unhold_quietly(srv, TKS_HOLD_SINK);
    srv->sink_refusing = false;
    K.holding = false;
  }
  if (!K.thread_started) return;
  atomic_store(&K.stop_deadline, tks_mono_ns() + STOP_NS);
  atomic_store(&K.stop, true);
  pthread_join(K.thread, NULL);
  K.thread_started = false;
  uint64_t q = atomic_load(&K.queued_bytes);
  if (q)
    tks_log(TKS_LOG_WARN,
            "kafka.sink: stopping with %" PRIu64 " bytes of journal not acknowledged: produced "
            "after the next start",
            q);
  else
    tks_log(TKS_LOG_INFO, "kafka.sink: every journaled tick is acknowledged");
  producer_destroy();
  tks_journal_tail_close(K.tail);
  K.tail = NULL;
  free(K.ring);
  K.ring = NULL;
  K.on = false;
}

static const struct tks_stat ST_STATE = TKS_STAT_NAMED(
    "kafka.sink.state", GAUGE, NONE, "the Kafka sink: off, producing, caught_up or brokers_down",
    "kafka_sink_state", "state");
static const struct tks_stat ST_PRODUCED = TKS_STAT(
    "kafka.sink.produced", COUNTER, TICKS, "ticks handed to librdkafka (again after a rewind)");
static const struct tks_stat ST_ACKED = TKS_STAT("kafka.sink.acknowledged", COUNTER, TICKS,
                                                 "ticks Kafka acknowledged (acks=all)");
static const struct tks_stat ST_FAILED = TKS_STAT(
    "kafka.sink.failed", COUNTER, TICKS,
    "deliveries that failed (produced again from the position)");
static const struct tks_stat ST_REWINDS = TKS_STAT(
    "kafka.sink.rewinds", COUNTER, NONE,
    "times the sink went back to its position after a failure");
static const struct tks_stat ST_QUEUED = TKS_STAT("kafka.sink.queued_bytes", GAUGE, BYTES,
                                                  "journal bytes after the acknowledged position");
static const struct tks_stat ST_IN_FLIGHT = TKS_STAT("kafka.sink.in_flight", GAUGE, TICKS,
                                                     "ticks produced and not yet acknowledged");
static const struct tks_stat ST_LAG = TKS_STAT(
    "kafka.sink.lag_seconds", GAUGE, SECONDS,
    "how long the oldest tick not yet acknowledged has waited since it was received");
static const struct tks_stat ST_SEGMENT = TKS_STAT("kafka.sink.position.segment", GAUGE, NONE,
                                                   "the journal segment of the position");
static const struct tks_stat ST_OFFSET = TKS_STAT("kafka.sink.position.offset", GAUGE, BYTES,
                                                  "the byte offset of the position");
static const struct tks_stat ST_SKIPPED = TKS_STAT(
    "kafka.sink.journal_errors", COUNTER, NONE, "journal frames the sink could not read (skipped)");
static const struct tks_stat ST_HELD = TKS_STAT("kafka.sink.holding", GAUGE, NONE,
                                                "1 while on_full applies (held or rejecting)");

void tks_kafka_sink_stats(struct tks_server *srv, struct tks_stats *st) {
  (void)srv;
  if (!K.on) return; /* README: only with the sink on */
  const char *state = atomic_load(&K.brokers_down) ? "brokers_down"
                      : atomic_load(&K.caught_up)  ? "caught_up"
                                                   : "producing";
  tks_stat_str(st, &ST_STATE, state);
  tks_stat_u64(st, &ST_PRODUCED, atomic_load(&K.produced));
  tks_stat_u64(st, &ST_ACKED, atomic_load(&K.acknowledged));
  tks_stat_u64(st, &ST_FAILED, atomic_load(&K.failed));
  tks_stat_u64(st, &ST_REWINDS, atomic_load(&K.rewinds));
  tks_stat_u64(st, &ST_QUEUED, atomic_load(&K.queued_bytes));
  tks_stat_u64(st, &ST_IN_FLIGHT, atomic_load(&K.in_flight));
  tks_stat_f64(st, &ST_LAG, (double)atomic_load(&K.lag_ns) / 1e9);
  tks_stat_u64(st, &ST_SEGMENT, atomic_load(&K.a_seg));
  tks_stat_u64(st, &ST_OFFSET, atomic_load(&K.a_off));
  tks_stat_u64(st, &ST_SKIPPED, atomic_load(&K.journal_errors));
  tks_stat_u64(st, &ST_HELD, K.holding);
}

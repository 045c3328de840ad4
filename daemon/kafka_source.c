/*
 * kafka.source: this node as one consumer of a group on a topic of ticks
 * (see daemon.h).
 *
 * librdkafka runs its own threads; the loop takes what they fetched from
 * the consumer queue, which writes a byte to a pipe when it goes from empty
 * to not empty (rd_kafka_queue_io_event_enable): a uv_poll on the pipe
 * drains the queue in slices, and the rebalance callback runs inside those
 * calls, on the loop thread too.
 *
 * Exactly once across restarts: a partition is a named producer of the
 * journal, "kafka:<topic>/<partition>", whose position is the partition's
 * next offset.  The ticks of a run of messages of one partition go in one
 * journal frame with that position (durability.c's producer records), so
 * what the journal holds after a crash is a prefix of the partition and
 * the offset after it, together; checkpoints restate the positions at the
 * start of each segment.  On assignment a partition with a position
 * resumes there; one without starts from kafka.source.from.  The group's
 * committed offsets follow the fsynced positions, for monitoring and for
 * kafka.source.from: committed.
 *
 * On revocation the partition's ticks stay in memory, read-only: queries
 * of its symbols answer "not owned", and if the partition comes back the
 * node resumes from its own position.  (Dropping them would need the drop
 * journaled and replayed; keeping them costs memory until the day's
 * rollover or retention takes them, like any other ticks.)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "kafka.h"
#include "shape.h"

#define BATCH 512              /* messages taken from the queue at once */
#define SLICE_NS 5000000u      /* of draining a loop turn, then the loop goes on */
#define TIMER_MS 100           /* commits, lag, the held check */
#define COMMIT_MS 1000         /* the group's offsets follow the durable positions */
#define METADATA_TIMEOUT_MS 5000
#define OFFSETS_TIMEOUT_MS 5000
#define MAX_PARTITIONS 100000
#define MAX_NODES 256 /* of the directory kept */
#define DIR_POLL 256  /* directory records read a timer tick */

struct part {
  bool assigned;
  bool filter;            /* skip messages with a timestamp before from_ms */
  struct tks_producer *prod; /* "kafka:<topic>/<p>": the next offset, journaled */
  int64_t next;           /* the next offset expected (-1: not known yet) */
  int64_t high;           /* the partition's high watermark, as last seen */
  int64_t committed;      /* the offset last committed to the group (-1: none) */
  int64_t durable;        /* the position known fsynced */
  int64_t snap_pos;       /* the position at the last timer tick ... */
  uint64_t snap_mark;     /* ... and srv->ticks_accepted then */
  uint64_t messages, stored, rejected, skipped;
};

static struct {
  struct tks_server *srv;
  rd_kafka_t *rk;
  rd_kafka_queue_t *queue;
  int pipe[2];
  uv_poll_t poll;
  uv_timer_t timer;
  uv_idle_t idle;
  bool poll_open, timer_open, idle_open, idle_on;
  struct tks_shape_cache shape;
  int64_t from_ms;      /* start_of_day or a time: the first timestamp wanted; 0: committed */
  bool from_committed;
  int32_t nparts;       /* partitions of the topic (0: not known yet) */
  struct part *parts;   /* nparts of them */
  /* Messages taken from the queue and not yet handled (ingest was held). */
  rd_kafka_message_t *pending[BATCH];
  size_t npending, pending_at;
  uint64_t last_commit_ms;
  char state[32];
  /* The fleet's directory (kafka.source.nodes_topic, lib/kafka.h): this
   * node's record published by `dir_out`; the others' read by `dir_in`
   * (partition 0, from its start), the newest record of each node kept. */
  rd_kafka_t *dir_out, *dir_in;
  char node[64];
  uint64_t last_publish_ms;
  bool publish_due;
  struct tks_kafka_node *nodes[MAX_NODES];
  unsigned nnodes;
  uint64_t published, dir_records, dir_bad;
  /* Counters. */
  uint64_t messages, stored, rejected, skipped, misrouted, errors, rebalances, commits,
      commit_errors, not_owned;
} K = {.pipe = {-1, -1}};

/* ---- partitions ------------------------------------------------------ */

/* "kafka:<topic>/<p>", the topic cut to what fits with a hash of it. */
static size_t prod_name(int32_t p, char out[TKS_PRODUCER_NAME_MAX + 1]) {
  const char *topic = K.srv->cfg.kafka.source.topic;
  size_t tl = strlen(topic);
  int n;
  if (tl <= 40) {
    n = snprintf(out, TKS_PRODUCER_NAME_MAX + 1, "kafka:%s/%" PRId32, topic, p);
  } else {
    uint32_t h = tks_fnv1a(topic, tl);
    n = snprintf(out, TKS_PRODUCER_NAME_MAX + 1, "kafka:%.30s~%08x/%" PRId32, topic, h, p);
  }
  return (size_t)n;
}

/* Makes room for partitions 0..n-1. */
static int parts_grow(int32_t n) {
  if (n <= K.nparts) return 0;
  if (n > MAX_PARTITIONS) return -EINVAL;
  struct part *np = realloc(K.parts, (size_t)n * sizeof *np);
  if (!np) return -ENOMEM;
  for (int32_t i = K.nparts; i < n; i++)
    np[i] = (struct part){.next = -1, .high = -1, .committed = -1, .durable = -1, .snap_pos = -1};
  K.parts = np;
  K.nparts = n;
  return 0;
}

/* The topic's partition count, from the cluster (blocks the loop for up to
 * METADATA_TIMEOUT_MS, in a rebalance). */
static void learn_partitions(void) {
  rd_kafka_topic_t *t = rd_kafka_topic_new(K.rk, K.srv->cfg.kafka.source.topic, NULL);
  if (!t) return;
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t e = rd_kafka_metadata(K.rk, 0, t, &md, METADATA_TIMEOUT_MS);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md && md->topic_cnt == 1 && !md->topics[0].err) {
    if (parts_grow(md->topics[0].partition_cnt) == 0 && md->topics[0].partition_cnt != K.nparts)
      tks_log(TKS_LOG_WARN, "kafka: topic %s has %d partitions, fewer than before (%d)",
              md->topics[0].topic, md->topics[0].partition_cnt, K.nparts);
  } else {
    tks_log(TKS_LOG_WARN, "kafka: no metadata for topic %s: %s", K.srv->cfg.kafka.source.topic,
            rd_kafka_err2str(e ? e : md && md->topic_cnt ? md->topics[0].err : e));
  }
  if (md) rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(t);
}

/* Where an assigned partition starts: its journaled position, else
 * kafka.source.from. */
static void on_assign(rd_kafka_topic_partition_list_t *list) {
  learn_partitions();
  rd_kafka_topic_partition_list_t *times = NULL;
  for (int i = 0; i < list->cnt; i++) {
    rd_kafka_topic_partition_t *tp = &list->elems[i];
    if (parts_grow(tp->partition + 1)) continue;
    struct part *P = &K.parts[tp->partition];
    char name[TKS_PRODUCER_NAME_MAX + 1];
    size_t len = prod_name(tp->partition, name);
    P->prod = tks_durability_producer(K.srv, name, len, true);
    if (P->prod)
      P->prod->conn = &K; /* the source's, not a TCP client's */
    else
      tks_log(TKS_LOG_ERROR,
              "kafka: no room for partition %" PRId32 "'s position (%u producers known): its "
              "ticks are stored but a restart reads it again from kafka.source.from",
              tp->partition, TKS_MAX_PRODUCERS);
    P->assigned = true;
    P->filter = false;
    if (P->prod && P->prod->position > 0) {
      tp->offset = (int64_t)P->prod->position; /* resume where the journal ends */
      tks_log(TKS_LOG_INFO, "kafka: partition %s/%" PRId32 " assigned: resuming at offset %" PRId64,
              tp->topic, tp->partition, tp->offset);
    } else if (K.from_committed) {
      tp->offset = RD_KAFKA_OFFSET_STORED;
      tks_log(TKS_LOG_INFO,
              "kafka: partition %s/%" PRId32 " assigned: from the group's committed offset",
              tp->topic, tp->partition);
    } else {
      P->filter = true;
      if (!times) times = rd_kafka_topic_partition_list_new(list->cnt);
      if (times) rd_kafka_topic_partition_list_add(times, tp->topic, tp->partition)->offset = K.from_ms;
      tp->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    P->next = tp->offset >= 0 ? tp->offset : -1;
  }
  if (times) {
    /* The first offset at or after from_ms, per partition.  Where the
     * cluster has none (or cannot tell) the partition is read from its
     * beginning and the messages before from_ms skipped. */
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(K.rk, times, OFFSETS_TIMEOUT_MS);
    for (int i = 0; i < times->cnt; i++) {
      rd_kafka_topic_partition_t *t = &times->elems[i];
      rd_kafka_topic_partition_t *tp =
          rd_kafka_topic_partition_list_find(list, t->topic, t->partition);
      if (!tp) continue;
      if (!e && !t->err && t->offset >= 0) tp->offset = t->offset;
      K.parts[t->partition].next = tp->offset >= 0 ? tp->offset : -1;
      tks_log(TKS_LOG_INFO,
              "kafka: partition %s/%" PRId32 " assigned: from %s (offset %s%" PRId64 ")",
              t->topic, t->partition, K.srv->cfg.kafka.source.from,
              tp->offset >= 0 ? "" : "beginning, skipping what is older: ",
              tp->offset >= 0 ? tp->offset : K.from_ms);
    }
    rd_kafka_topic_partition_list_destroy(times);
  }
}

/* ---- the fleet's directory ------------------------------------------- */

/* This node's record (value NULL: the tombstone of a clean stop). */
static void publish(bool tombstone) {
  if (!K.dir_out) return;
  struct tks_server *srv = K.srv;
  struct tks_buf b;
  tks_buf_init(&b);
  if (!tombstone) {
    struct tks_kafka_node *n = calloc(1, sizeof *n);
    if (!n) return;
    snprintf(n->node, sizeof n->node, "%s", K.node);
    snprintf(n->group, sizeof n->group, "%s", srv->cfg.kafka.source.group);
    snprintf(n->topic, sizeof n->topic, "%s", srv->cfg.kafka.source.topic);
    snprintf(n->partitioner, sizeof n->partitioner, "%s",
             tks_partitioner_names[srv->cfg.kafka.source.partitioner]);
    snprintf(n->control, sizeof n->control, "%s", srv->cfg.control.socket);
    snprintf(n->subscribe, sizeof n->subscribe, "%s", srv->subscribe_addr);
    snprintf(n->ingest, sizeof n->ingest, "%s", srv->listen_addr);
    gethostname(n->host, sizeof n->host - 1);
    n->pid = getpid();
    n->ts = tks_now_ns();
    n->partition_count = K.nparts;
    for (int32_t p = 0; p < K.nparts && n->npartitions < TKS_KAFKA_NODE_MAX_PARTITIONS; p++)
      if (K.parts[p].assigned) n->partitions[n->npartitions++] = p;
    int e = tks_kafka_node_encode(n, &b);
    free(n);
    if (e) {
      tks_buf_finish(&b);
      return;
    }
  }
  rd_kafka_resp_err_t e = rd_kafka_producev(
      K.dir_out, RD_KAFKA_V_TOPIC(srv->cfg.kafka.source.nodes_topic),
      RD_KAFKA_V_KEY(K.node, strlen(K.node)), RD_KAFKA_V_VALUE(b.data, b.len),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  tks_buf_finish(&b);
  if (e)
    tks_server_log_limited(srv, "kafka: publishing to %s: %s", srv->cfg.kafka.source.nodes_topic,
                           rd_kafka_err2str(e));
  else
    K.published++;
  K.last_publish_ms = uv_now(srv->loop);
  K.publish_due = false;
}

/* Takes what the directory consumer fetched: the newest record of each
 * node; a tombstone removes it; what does not parse is counted, logged
 * and skipped. */
static void dir_read(void) {
  if (!K.dir_in) return;
  for (int i = 0; i < DIR_POLL; i++) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(K.dir_in, 0);
    if (!m) return;
    if (m->err || !m->key || !m->key_len || m->key_len >= sizeof K.nodes[0]->node) {
      if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        tks_server_log_limited(K.srv, "kafka: reading %s: %s", K.srv->cfg.kafka.source.nodes_topic,
                               rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    unsigned at = 0;
    while (at < K.nnodes && !(strlen(K.nodes[at]->node) == m->key_len &&
                              memcmp(K.nodes[at]->node, m->key, m->key_len) == 0))
      at++;
    if (!m->payload || !m->len) { /* a tombstone: the node stopped */
      if (at < K.nnodes) {
        free(K.nodes[at]);
        K.nodes[at] = K.nodes[--K.nnodes];
      }
      rd_kafka_message_destroy(m);
      continue;
    }
    struct tks_kafka_node *n = calloc(1, sizeof *n);
    char why[200];
    if (n && tks_kafka_node_parse(m->payload, m->len, n, why, sizeof why) == 0 &&
        strlen(n->node) == m->key_len && memcmp(n->node, m->key, m->key_len) == 0) {
      K.dir_records++;
      if (at < K.nnodes) {
        free(K.nodes[at]);
        K.nodes[at] = n;
      } else if (K.nnodes < MAX_NODES) {
        K.nodes[K.nnodes++] = n;
      } else {
        free(n);
      }
    } else {
      K.dir_bad++;
      tks_server_log_limited(K.srv, "kafka: a record of %s at offset %" PRId64 " skipped: %s",
                             K.srv->cfg.kafka.source.nodes_topic, m->offset,
                             n ? why : "out of memory");
      free(n);
    }
    rd_kafka_message_destroy(m);
  }
}

/* The node that publishes partition p of our topic, fresh, not this one. */
static const struct tks_kafka_node *owner_of(int32_t p) {
  int64_t now = tks_now_ns();
  for (unsigned i = 0; i < K.nnodes; i++) {
    const struct tks_kafka_node *n = K.nodes[i];
    if (strcmp(n->node, K.node) == 0 || strcmp(n->topic, K.srv->cfg.kafka.source.topic) != 0 ||
        now - n->ts > (int64_t)TKS_KAFKA_NODE_STALE_MS * 1000000)
      continue;
    if (tks_kafka_node_owns(n, p)) return n;
  }
  return NULL;
}

static void commit_durable(bool sync);

static void drop_pending_of(int32_t partition) {
  size_t w = K.pending_at;
  for (size_t i = K.pending_at; i < K.npending; i++) {
    if (K.pending[i]->partition == partition)
      rd_kafka_message_destroy(K.pending[i]);
    else
      K.pending[w++] = K.pending[i];
  }
  K.npending = w;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list, void *opaque) {
  (void)opaque;
  bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
  K.rebalances++;
  rd_kafka_error_t *error = NULL;
  rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    on_assign(list);
    if (cooperative)
      error = rd_kafka_incremental_assign(rk, list);
    else
      e = rd_kafka_assign(rk, list);
    snprintf(K.state, sizeof K.state, "assigned");
  } else {
    commit_durable(false);
    for (int i = 0; i < list->cnt; i++) {
      int32_t p = list->elems[i].partition;
      if (p >= 0 && p < K.nparts) {
        K.parts[p].assigned = false;
        if (K.parts[p].prod) K.parts[p].prod->conn = NULL;
      }
      drop_pending_of(p);
      tks_log(TKS_LOG_INFO, "kafka: partition %s/%" PRId32 " %s: its ticks stay, read-only",
              list->elems[i].topic, p,
              rd_kafka_assignment_lost(rk) ? "lost" : "revoked");
    }
    if (cooperative)
      error = rd_kafka_incremental_unassign(rk, list);
    else
      e = rd_kafka_assign(rk, NULL);
    snprintf(K.state, sizeof K.state, "revoked");
  }
  publish(false);
  if (error) {
    tks_log(TKS_LOG_ERROR, "kafka: rebalance: %s", rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
  } else if (e) {
    tks_log(TKS_LOG_ERROR, "kafka: rebalance: %s", rd_kafka_err2str(e));
  }
}

/* ---- messages -------------------------------------------------------- */

static int64_t tick_symbol(const struct tks_server *srv, enum tks_decode_status st,
                           const void *record, const struct tks_dyn_tick *dyn) {
  if (st == TKS_DECODE_DYNAMIC) return dyn->symbol;
  uint32_t id;
  memcpy(&id,
         (const char *)record + srv->cfg.schema.fields[srv->cfg.schema.symbol_field].offset,
         sizeof id);
  return id;
}

/* One message of partition P, in the journal frame begun for it.  Returns
 * false when ingest is held (the message waits for the resume). */
static bool take_one(struct part *P, const rd_kafka_message_t *m, int64_t now,
                     const struct tks_intake_ctx *ic) {
  struct tks_server *srv = K.srv;
  /* The producer's position is this message's offset until it is handled,
   * then the next one (tks_producer_position: +1 stored or rejected). */
  if (P->prod) {
    P->prod->position = (uint64_t)m->offset;
    P->prod->accepted0 = srv->ticks_accepted;
    P->prod->rejected = 0;
  }
  if (P->filter && K.from_ms > 0) {
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    if (ts >= 0 && ts < K.from_ms) {
      P->skipped++, K.skipped++;
      if (P->prod) P->prod->rejected = 1; /* handled: not wanted */
      P->next = m->offset + 1;
      return true;
    }
    P->filter = false; /* offsets grow with timestamps closely enough: the rest is wanted */
  }
  P->messages++, K.messages++;
  _Alignas(8) char record[TKS_RECORD_MAX];
  struct tks_dyn_tick dyn;
  struct tks_decode_result res = {.dyn = &dyn};
  struct tks_intern_mark mark = tks_server_intern_mark(srv);
  enum tks_decode_status st;
  enum tks_reason why = TKS_REASON_MALFORMED;
  const char *what = NULL;
  if (m->len > srv->cfg.ingest.max_message_bytes) {
    st = TKS_DECODE_ERROR;
    why = TKS_REASON_TOO_LARGE;
    what = "over ingest.max_message_bytes";
  } else if (m->len == 0 || !m->payload) {
    st = TKS_DECODE_ERROR;
    why = TKS_REASON_NOT_A_TICK;
    what = "an empty message";
  } else {
    st = tks_shape_decode(&K.shape, &srv->decoder, m->payload, m->len, now, record, &res);
    if ((st == TKS_DECODE_OK || st == TKS_DECODE_DYNAMIC) && res.consumed != m->len) {
      st = TKS_DECODE_ERROR;
      why = TKS_REASON_MALFORMED;
      what = "bytes after the tick (a message is one tick)";
    } else if (st == TKS_DECODE_NEED_MORE) {
      st = TKS_DECODE_ERROR;
      why = TKS_REASON_MALFORMED;
      what = "the tick is cut short";
    } else if (st == TKS_DECODE_REJECT || st == TKS_DECODE_ERROR) {
      why = res.reason;
      what = res.detail;
    }
  }
  if (st == TKS_DECODE_OK || st == TKS_DECODE_DYNAMIC) {
    enum tks_intake a = tks_intake(srv, st, record, &dyn, mark, m->payload, m->len, res.verbatim,
                                   ic, &why);
    if (a == TKS_INTAKE_PAUSE) return false;
    if (a == TKS_INTAKE_STORED) {
      P->stored++, K.stored++;
      if (K.nparts > 0) {
        size_t len;
        const char *name = tks_symtab_name(srv->symbols, (uint32_t)tick_symbol(srv, st, record, &dyn), &len);
        int32_t want = tks_kafka_partition(srv->cfg.kafka.source.partitioner, name, len, K.nparts);
        if (want != m->partition) {
          K.misrouted++;
          tks_server_log_limited(srv,
                                 "kafka: %.*s came on partition %" PRId32 ", but %s puts it in %" PRId32
                                 " (kafka.source.partitioner is not the producers')",
                                 (int)len, name, m->partition,
                                 tks_partitioner_names[srv->cfg.kafka.source.partitioner], want);
        }
      }
    } else {
      P->rejected++, K.rejected++;
      if (P->prod) P->prod->rejected = 1;
    }
  } else {
    tks_server_unintern(srv, mark);
    srv->rejected[why]++;
    P->rejected++, K.rejected++;
    if (P->prod) P->prod->rejected = 1;
    if (why == TKS_REASON_UNKNOWN_FIELD) tks_tick_note_rejected(&srv->sink, res.detail);
    tks_server_log_limited(srv, "tick from %s offset %" PRId64 " rejected: %s%s%s", ic->from,
                           m->offset, tks_reason_name(why), what && *what ? " " : "",
                           what ? what : "");
  }
  P->next = m->offset + 1;
  return true;
}

/* Handles K.pending[pending_at..npending), a run of one partition a
 * journal frame.  Returns false when ingest got held. */
static bool take_pending(void) {
  struct tks_server *srv = K.srv;
  bool refusing = tks_intake_journal_refusing(srv);
  int64_t now = tks_now_ns();
  while (K.pending_at < K.npending && !srv->held) {
    size_t first = K.pending_at;
    rd_kafka_message_t *m = K.pending[first];
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        K.errors++;
        tks_server_log_limited(srv, "kafka: %s", rd_kafka_message_errstr(m));
      }
      rd_kafka_message_destroy(m);
      K.pending_at++;
      continue;
    }
    int32_t p = m->partition;
    if (p < 0 || parts_grow(p + 1) || !K.parts[p].assigned) {
      rd_kafka_message_destroy(m); /* revoked meanwhile: the new owner reads it */
      K.pending_at++;
      continue;
    }
    struct part *P = &K.parts[p];
    char from[300];
    snprintf(from, sizeof from, "kafka %s/%" PRId32, srv->cfg.kafka.source.topic, p);
    bool journal = tks_durability_batch(srv, now);
    if (journal && P->prod) tks_durability_batch_producer(srv, P->prod);
    const struct tks_intake_ctx ic = {.refusing = refusing,
                                      .refuse = TKS_REASON_JOURNAL_ERROR,
                                      .journal = journal,
                                      .from = from};
    size_t i = first;
    bool held = false;
    for (; i < K.npending && !K.pending[i]->err && K.pending[i]->partition == p; i++) {
      if (srv->held || !take_one(P, K.pending[i], now, &ic)) {
        held = true;
        break;
      }
    }
    tks_intake_end(srv); /* the subscribers' bytes, the frame and its position, then they may go */
    if (P->prod) { /* handled up to here: the position stays put until the next message */
      P->prod->position = (uint64_t)(P->next >= 0 ? P->next : 0);
      P->prod->accepted0 = srv->ticks_accepted;
      P->prod->rejected = 0;
    }
    for (size_t j = first; j < i; j++) rd_kafka_message_destroy(K.pending[j]);
    K.pending_at = i;
    if (held) return false;
  }
  if (K.pending_at == K.npending) K.pending_at = K.npending = 0;
  return !srv->held;
}

static void idle_set(bool on);

/* Takes what the queue holds, for up to SLICE_NS; the idle handle brings
 * the loop back for the rest. */
static void drain(void) {
  if (!K.rk) return;
  uint64_t end = tks_mono_ns() + SLICE_NS;
  for (;;) {
    if (K.npending > K.pending_at && !take_pending()) {
      idle_set(false); /* held: the timer looks again */
      return;
    }
    if (tks_mono_ns() >= end) {
      idle_set(true);
      return;
    }
    ssize_t n = rd_kafka_consume_batch_queue(K.queue, 0, K.pending, BATCH);
    if (n <= 0) {
      idle_set(false);
      return;
    }
    K.pending_at = 0;
    K.npending = (size_t)n;
  }
}

static void on_idle(uv_idle_t *h) {
  (void)h;
  drain();
}

static void idle_set(bool on) {
  if (on == K.idle_on || !K.idle_open) return;
  K.idle_on = on;
  if (on)
    uv_idle_start(&K.idle, on_idle);
  else
    uv_idle_stop(&K.idle);
}

static void on_wake(uv_poll_t *h, int status, int events) {
  (void)h, (void)status, (void)events;
  char buf[256];
  while (read(K.pipe[0], buf, sizeof buf) > 0) {
  }
  drain();
}

/* ---- offsets to the group -------------------------------------------- */

/* The positions known fsynced become the group's committed offsets. */
static void commit_durable(bool sync) {
  if (!K.rk) return;
  struct tks_server *srv = K.srv;
  bool journal = srv->cfg.journal.enabled;
  uint64_t synced = journal ? tks_durability_synced(srv) : 0;
  rd_kafka_topic_partition_list_t *list = NULL;
  for (int32_t p = 0; p < K.nparts; p++) {
    struct part *P = &K.parts[p];
    if (!P->prod) continue;
    int64_t pos = (int64_t)P->prod->journaled;
    if (!journal) {
      P->durable = P->next;
    } else {
      /* Two steps: what was journaled at the last look is durable once the
       * ticks accepted by then are fsynced. */
      if (P->snap_pos >= 0 && synced >= P->snap_mark) P->durable = P->snap_pos;
      P->snap_pos = pos;
      P->snap_mark = srv->ticks_accepted;
    }
    if (P->assigned && P->durable > 0 && P->durable != P->committed) {
      if (!list) list = rd_kafka_topic_partition_list_new(8);
      if (!list) return;
      rd_kafka_topic_partition_list_add(list, srv->cfg.kafka.source.topic, p)->offset = P->durable;
      P->committed = P->durable;
    }
  }
  if (!list) return;
  rd_kafka_resp_err_t e = rd_kafka_commit(K.rk, list, sync ? 0 : 1);
  if (e) {
    K.commit_errors++;
    tks_server_log_limited(srv, "kafka: committing offsets: %s", rd_kafka_err2str(e));
  } else {
    K.commits++;
  }
  rd_kafka_topic_partition_list_destroy(list);
}

static void on_timer(uv_timer_t *t) {
  (void)t;
  if (!K.rk) return;
  uint64_t now = uv_now(K.srv->loop);
  if (now - K.last_commit_ms >= COMMIT_MS) {
    K.last_commit_ms = now;
    commit_durable(false);
    for (int32_t p = 0; p < K.nparts; p++) {
      int64_t lo, hi;
      if (K.parts[p].assigned &&
          rd_kafka_get_watermark_offsets(K.rk, K.srv->cfg.kafka.source.topic, p, &lo, &hi) == 0)
        K.parts[p].high = hi;
    }
  }
  if (K.dir_out) {
    rd_kafka_poll(K.dir_out, 0); /* delivery reports */
    if (now - K.last_publish_ms >= TKS_KAFKA_NODE_HEARTBEAT_MS) publish(false);
  }
  dir_read();
  drain(); /* after a hold, and what a wake-up may have missed */
}

/* ---- start, stop ------------------------------------------------------ */

static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  (void)rk;
  enum tks_log_level l = level <= 3 ? TKS_LOG_ERROR : level <= 4 ? TKS_LOG_WARN
                         : level <= 6                         ? TKS_LOG_INFO
                                                              : TKS_LOG_DEBUG;
  tks_log(l, "kafka source: %s: %s", fac, buf);
}

/* The directory's producer gets the consumer's properties (for security
 * and the like): that those are consumer ones is no news. */
static void on_dir_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "is a consumer property")) level = 7;
  on_kafka_log(rk, level, fac, buf);
}

static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  (void)rk, (void)opaque;
  K.errors++;
  tks_server_log_limited(K.srv, "kafka source: %s: %s", rd_kafka_err2name(err), reason);
}

/* Start of today (UTC), or the configured time, in ms; 0 for committed. */
static int from_ms(const char *from) {
  if (strcmp(from, "committed") == 0) {
    K.from_committed = true;
    return 0;
  }
  int64_t ns;
  if (strcmp(from, "start_of_day") == 0) {
    ns = tks_now_ns();
    ns -= ns % (86400LL * 1000000000LL);
  } else if (tks_parse_time(from, &ns) != 0) {
    return -EINVAL;
  }
  K.from_ms = ns / 1000000;
  if (K.from_ms <= 0) K.from_ms = 1;
  return 0;
}

const char *tks_kafka_build(void) {
  static char v[64];
  snprintf(v, sizeof v, "librdkafka %s", rd_kafka_version_str());
  return v;
}

/* The directory's producer and consumer (same brokers and properties). */
static int dir_start(char *err, size_t errlen) {
  const struct tks_config *cfg = &K.srv->cfg;
  char why[512];
  rd_kafka_conf_t *pc = tks_kafka_conf(cfg->kafka.source.brokers, cfg->kafka.source.properties,
                                       "kafka.source.properties", err, errlen);
  if (!pc) return -EINVAL;
  rd_kafka_conf_set_log_cb(pc, on_dir_log);
  if (tks_kafka_set(pc, "linger.ms", "5", why, sizeof why) == 0)
    K.dir_out = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, errlen);
  if (!K.dir_out) {
    rd_kafka_conf_destroy(pc);
    return -EINVAL;
  }
  rd_kafka_conf_t *cc = tks_kafka_conf(cfg->kafka.source.brokers, cfg->kafka.source.properties,
                                       "kafka.source.properties", err, errlen);
  if (!cc) return -EINVAL;
  rd_kafka_conf_set_log_cb(cc, on_kafka_log);
  /* Assigned, never joined: every node reads the directory whole (the id
   * is librdkafka's requirement; nothing is committed under it). */
  char gid[96];
  snprintf(gid, sizeof gid, "tickslab-directory-%s", K.node);
  if (tks_kafka_set(cc, "group.id", gid, why, sizeof why) == 0 &&
      tks_kafka_set(cc, "enable.auto.commit", "false", why, sizeof why) == 0)
    K.dir_in = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, errlen);
  if (!K.dir_in) {
    rd_kafka_conf_destroy(cc);
    return -EINVAL;
  }
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, cfg->kafka.source.nodes_topic, 0)->offset =
      RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_resp_err_t e = rd_kafka_assign(K.dir_in, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (e) {
    snprintf(err, errlen, "reading %s: %s", cfg->kafka.source.nodes_topic, rd_kafka_err2str(e));
    return -EINVAL;
  }
  return 0;
}

static void dir_stop(void) {
  if (K.dir_out) {
    publish(true); /* gone: the tombstone */
    if (rd_kafka_flush(K.dir_out, 2000)) {
      tks_log(TKS_LOG_WARN, "kafka: this node's tombstone in %s was not acknowledged",
              K.srv->cfg.kafka.source.nodes_topic);
      rd_kafka_purge(K.dir_out, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    }
    rd_kafka_destroy(K.dir_out);
    K.dir_out = NULL;
  }
  if (K.dir_in) {
    rd_kafka_consumer_close(K.dir_in);
    rd_kafka_destroy(K.dir_in);
    K.dir_in = NULL;
  }
  for (unsigned i = 0; i < K.nnodes; i++) free(K.nodes[i]);
  K.nnodes = 0;
}

int tks_kafka_source_start(struct tks_server *srv) {
  const struct tks_config *cfg = &srv->cfg;
  K.srv = srv;
  if (!cfg->kafka.source.brokers[0]) return 0;
  char err[600] = "", why[512] = "";
  if (from_ms(cfg->kafka.source.from)) {
    tks_log(TKS_LOG_ERROR, "kafka.source.from: '%s' is not a time", cfg->kafka.source.from);
    return -EINVAL;
  }
  rd_kafka_conf_t *conf = tks_kafka_conf(cfg->kafka.source.brokers, NULL, NULL, err, sizeof err);
  if (!conf) goto refused;
  char host[256] = "tickslabd";
  gethostname(host, sizeof host - 1);
  snprintf(K.node, sizeof K.node, "%.63s",
           cfg->kafka.source.node[0] ? cfg->kafka.source.node : host);
  char client[320];
  snprintf(client, sizeof client, "tickslabd-%s", K.node);
  /* Our defaults, then the operator's properties, then what the source
   * cannot work without. */
  if (tks_kafka_set(conf, "client.id", client, why, sizeof why) ||
      tks_kafka_set(conf, "auto.offset.reset", "earliest", why, sizeof why) ||
      tks_kafka_set(conf, "partition.assignment.strategy", "range,roundrobin", why, sizeof why) ||
      tks_kafka_apply(conf, cfg->kafka.source.properties, "kafka.source.properties", err,
                      sizeof err) ||
      tks_kafka_set(conf, "group.id", cfg->kafka.source.group, why, sizeof why) ||
      tks_kafka_set(conf, "enable.auto.commit", "false", why, sizeof why) ||
      tks_kafka_set(conf, "enable.auto.offset.store", "false", why, sizeof why) ||
      tks_kafka_set(conf, "enable.partition.eof", "false", why, sizeof why)) {
    if (!err[0] || strncmp(err, "kafka.source.properties", 23) != 0)
      snprintf(err, sizeof err, "%s", why);
    rd_kafka_conf_destroy(conf);
    goto refused;
  }
  rd_kafka_conf_set_log_cb(conf, on_kafka_log);
  rd_kafka_conf_set_error_cb(conf, on_kafka_error);
  rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
  K.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!K.rk) {
    rd_kafka_conf_destroy(conf);
    goto refused;
  }
  rd_kafka_poll_set_consumer(K.rk);
  K.queue = rd_kafka_queue_get_consumer(K.rk);
  if (pipe2(K.pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
    snprintf(err, sizeof err, "pipe: %s", strerror(errno));
    goto refused;
  }
  rd_kafka_queue_io_event_enable(K.queue, K.pipe[1], "1", 1);
  tks_shape_init(&K.shape);
  uv_poll_init(srv->loop, &K.poll, K.pipe[0]);
  K.poll_open = true;
  uv_poll_start(&K.poll, UV_READABLE, on_wake);
  uv_idle_init(srv->loop, &K.idle);
  K.idle_open = true;
  uv_timer_init(srv->loop, &K.timer);
  K.timer_open = true;
  uv_timer_start(&K.timer, on_timer, TIMER_MS, TIMER_MS);
  rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(sub, cfg->kafka.source.topic, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(K.rk, sub);
  rd_kafka_topic_partition_list_destroy(sub);
  if (e) {
    snprintf(err, sizeof err, "subscribing to %s: %s", cfg->kafka.source.topic,
             rd_kafka_err2str(e));
    goto refused;
  }
  if (dir_start(err, sizeof err)) goto refused;
  snprintf(K.state, sizeof K.state, "joining");
  tks_log(TKS_LOG_INFO, "kafka source: consuming %s as group %s from %s (from %s)",
          cfg->kafka.source.topic, cfg->kafka.source.group, cfg->kafka.source.brokers,
          cfg->kafka.source.from);
  return 0;
refused:
  tks_log(TKS_LOG_ERROR, "cannot start the Kafka source: %s", err);
  return -EINVAL;
}

static void on_closed(uv_handle_t *h) { (void)h; }

void tks_kafka_source_stop(struct tks_server *srv) {
  (void)srv;
  if (K.poll_open) uv_close((uv_handle_t *)&K.poll, on_closed);
  if (K.timer_open) uv_close((uv_handle_t *)&K.timer, on_closed);
  if (K.idle_open) uv_close((uv_handle_t *)&K.idle, on_closed);
  K.poll_open = K.timer_open = K.idle_open = K.idle_on = false;
  if (!K.rk) return;
  for (size_t i = K.pending_at; i < K.npending; i++) rd_kafka_message_destroy(K.pending[i]);
  K.npending = K.pending_at = 0;
  commit_durable(true);
  /* Leaves the group (the revocation runs its callback here). */
  rd_kafka_resp_err_t e = rd_kafka_consumer_close(K.rk);
  if (e) tks_log(TKS_LOG_WARN, "kafka source: closing: %s", rd_kafka_err2str(e));
  dir_stop();
  rd_kafka_queue_destroy(K.queue);
  rd_kafka_destroy(K.rk);
  K.rk = NULL;
  K.queue = NULL;
  close(K.pipe[0]);
  close(K.pipe[1]);
  K.pipe[0] = K.pipe[1] = -1;
  free(K.parts);
  K.parts = NULL;
  K.nparts = 0;
  tks_log(TKS_LOG_INFO, "kafka source: stopped after %" PRIu64 " messages (%" PRIu64
          " stored, %" PRIu64 " rejected)",
          K.messages, K.stored, K.rejected);
}

/* ---- the queries' side ------------------------------------------------ */

int32_t tks_kafka_source_partition(struct tks_server *srv, const char *name, size_t len,
                                   bool *owned) {
  *owned = true;
  if (!K.rk || K.nparts <= 0) return -1;
  int32_t p = tks_kafka_partition(srv->cfg.kafka.source.partitioner, name, len, K.nparts);
  *owned = K.parts[p].assigned;
  return p;
}

int tks_kafka_source_check(struct tks_server *srv, const char *name, size_t len, char *why,
                           size_t n) {
  bool owned;
  int32_t p = tks_kafka_source_partition(srv, name, len, &owned);
  if (owned) return 0;
  K.not_owned++;
  size_t used = (size_t)snprintf(why, n,
                                 "%.*s is in partition %" PRId32 " of %s, not assigned to this node",
                                 (int)len, name, p, srv->cfg.kafka.source.topic);
  const char *sep = " (it has ";
  for (int32_t i = 0; i < K.nparts && used < n; i++)
    if (K.parts[i].assigned) {
      used += (size_t)snprintf(why + used, n - used, "%s%" PRId32, sep, i);
      sep = ",";
    }
  if (used < n)
    used += (size_t)snprintf(why + used, n - used, "%s", *sep == ',' ? ")" : " (it has none)");
  dir_read();
  const struct tks_kafka_node *o = owner_of(p);
  if (o && used < n)
    snprintf(why + used, n - used, "; its owner is %s (host %s, control %s, subscribe %s)", o->node,
             o->host, o->control, o->subscribe[0] ? o->subscribe : "off");
  else if (used < n)
    snprintf(why + used, n - used, "; its owner is not known (%s has no fresh record of it)",
             srv->cfg.kafka.source.nodes_topic);
  return 1;
}

/* ---- stats ------------------------------------------------------------ */

static const struct tks_stat ST_STATE =
    TKS_STAT_NAMED("kafka.source.state", GAUGE, NONE,
                   "The Kafka source: joining, assigned or revoked (the last rebalance)",
                   "kafka_source_state", "state");
static const struct tks_stat ST_PARTITIONS = TKS_STAT(
    "kafka.source.partitions", GAUGE, NONE, "Partitions of kafka.source.topic (0: not known yet)");
static const struct tks_stat ST_ASSIGNED =
    TKS_STAT("kafka.source.assigned", GAUGE, NONE, "Partitions assigned to this node");
static const struct tks_stat ST_MESSAGES = TKS_STAT("kafka.source.messages", COUNTER, NONE,
                                                    "Kafka messages taken (not those skipped)");
static const struct tks_stat ST_STORED =
    TKS_STAT("kafka.source.stored", COUNTER, TICKS, "Ticks from Kafka stored");
static const struct tks_stat ST_REJECTED = TKS_STAT(
    "kafka.source.rejected", COUNTER, NONE,
    "Kafka messages that were not a tick or were refused (by reason in ticks.rejected_by_reason)");
static const struct tks_stat ST_SKIPPED =
    TKS_STAT("kafka.source.skipped", COUNTER, NONE,
             "Kafka messages older than kafka.source.from, skipped");
static const struct tks_stat ST_MISROUTED = TKS_STAT(
    "kafka.source.misrouted", COUNTER, NONE,
    "Ticks stored from a partition kafka.source.partitioner does not put their symbol in");
static const struct tks_stat ST_LAG = TKS_STAT(
    "kafka.source.lag_messages", GAUGE, NONE,
    "Messages of the assigned partitions not taken yet (high watermark minus next offset)");
static const struct tks_stat ST_ERRORS =
    TKS_STAT("kafka.source.errors", COUNTER, NONE, "Errors librdkafka reported (logged)");
static const struct tks_stat ST_REBALANCES =
    TKS_STAT("kafka.source.rebalances", COUNTER, NONE, "Assignments and revocations");
static const struct tks_stat ST_COMMITS =
    TKS_STAT("kafka.source.commits", COUNTER, NONE, "Offset commits to the group");
static const struct tks_stat ST_COMMIT_ERRORS =
    TKS_STAT("kafka.source.commit_errors", COUNTER, NONE, "Offset commits that failed");
static const struct tks_stat ST_NOT_OWNED =
    TKS_STAT("kafka.source.queries_not_owned", COUNTER, NONE,
             "Queries refused: the symbol's partition is not assigned to this node");
static const struct tks_stat ST_DIR_NODES = TKS_STAT(
    "kafka.source.directory_nodes", GAUGE, NONE,
    "Nodes of the fleet's directory (kafka.source.nodes_topic) known, this one included");
static const struct tks_stat ST_DIR_BAD = TKS_STAT(
    "kafka.source.directory_skipped", COUNTER, NONE,
    "Records of the fleet's directory that did not parse, skipped");
static const struct tks_stat ST_PUBLISHED = TKS_STAT(
    "kafka.source.directory_published", COUNTER, NONE,
    "This node's records published to the directory");
static const struct tks_stat ST_P_OFFSET = TKS_STAT_NAMED(
    "kafka.source.offset.*", GAUGE, NONE,
    "A partition's next offset: where this node's stored ticks of it end", "kafka_source_offset",
    "partition");
static const struct tks_stat ST_P_COMMITTED =
    TKS_STAT_NAMED("kafka.source.committed.*", GAUGE, NONE,
                   "A partition's offset last committed to the group (fsynced)",
                   "kafka_source_committed", "partition");
static const struct tks_stat ST_P_LAG =
    TKS_STAT_NAMED("kafka.source.lag.*", GAUGE, NONE, "A partition's messages not taken yet",
                   "kafka_source_lag", "partition");

static uint64_t part_offset(const struct part *P) { return P->next >= 0 ? (uint64_t)P->next : 0; }
static uint64_t part_committed(const struct part *P) {
  return P->committed >= 0 ? (uint64_t)P->committed : 0;
}
static uint64_t part_lag(const struct part *P) {
  return P->next >= 0 && P->high > P->next ? (uint64_t)(P->high - P->next) : 0;
}

/* One figure of each assigned partition, labelled with its number (the
 * figures of one path together, as the stats JSON wants them). */
static void per_partition(struct tks_stats *st, const struct tks_stat *d,
                          uint64_t (*value)(const struct part *)) {
  char part[16];
  for (int32_t p = 0; p < K.nparts; p++) {
    if (!K.parts[p].assigned) continue;
    snprintf(part, sizeof part, "%" PRId32, p);
    tks_stat_u64_of(st, d, part, value(&K.parts[p]));
  }
}

void tks_kafka_source_stats(struct tks_server *srv, struct tks_stats *st) {
  if (!srv->cfg.kafka.source.brokers[0] || !K.rk) return;
  uint32_t assigned = 0;
  uint64_t lag = 0;
  for (int32_t p = 0; p < K.nparts; p++) {
    const struct part *P = &K.parts[p];
    if (!P->assigned) continue;
    assigned++;
    lag += part_lag(P);
  }
  tks_stat_str(st, &ST_STATE, K.state);
  tks_stat_u64(st, &ST_PARTITIONS, (uint64_t)K.nparts);
  tks_stat_u64(st, &ST_ASSIGNED, assigned);
  tks_stat_u64(st, &ST_MESSAGES, K.messages);
  tks_stat_u64(st, &ST_STORED, K.stored);
  tks_stat_u64(st, &ST_REJECTED, K.rejected);
  tks_stat_u64(st, &ST_SKIPPED, K.skipped);
  tks_stat_u64(st, &ST_MISROUTED, K.misrouted);
  tks_stat_u64(st, &ST_LAG, lag);
  tks_stat_u64(st, &ST_ERRORS, K.errors);
  tks_stat_u64(st, &ST_REBALANCES, K.rebalances);
  tks_stat_u64(st, &ST_COMMITS, K.commits);
  tks_stat_u64(st, &ST_COMMIT_ERRORS, K.commit_errors);
  tks_stat_u64(st, &ST_NOT_OWNED, K.not_owned);
  tks_stat_u64(st, &ST_DIR_NODES, K.nnodes);
  tks_stat_u64(st, &ST_DIR_BAD, K.dir_bad);
  tks_stat_u64(st, &ST_PUBLISHED, K.published);
  per_partition(st, &ST_P_OFFSET, part_offset);
  per_partition(st, &ST_P_COMMITTED, part_committed);
  per_partition(st, &ST_P_LAG, part_lag);
}

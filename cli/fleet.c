/*
 * The fleet on Kafka (--brokers): the directory topic (--nodes-topic,
 * kafka.source.nodes_topic) read from its beginning to its end on every
 * partition by librdkafka's simple consumer (no group, nothing committed), the
 * newest record of each node kept (an empty value, a tombstone, removes
 * it; one older than TKS_KAFKA_NODE_STALE_MS is a node gone), a hostile
 * record skipped with a warning.  From it, `tickslab nodes` and the owner
 * of a symbol's partition, whose control socket `last` and `range` ask.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kafka.h"
#include "utf8.h"

#define FLEET_DEFAULT_TIMEOUT_MS 5000
#define FLEET_MAX_NODES 4096  /* node names kept from one directory */
#define FLEET_MAX_WARNINGS 10 /* skipped records told one by one, then counted */

static const char nodes_help[] =
    "Usage: tickslab nodes --brokers HOST:PORT[,...] [--nodes-topic T] [--json]\n"
    "\n"
    "Lists the fleet: the tickslabd nodes whose Kafka source publishes its\n"
    "record to the directory topic (kafka.source.nodes_topic), one line each:\n"
    "node, host, topic, partitions, control socket, subscription address and\n"
    "the age of its record.  The topic is read from its beginning to its end\n"
    "on every partition, within --timeout (default 5 s here); a node's newest\n"
    "record counts, a tombstone (empty value) removes it, and a record older\n"
    "than 60 s is a node gone (named on stderr, not listed).  A record that is\n"
    "not a directory record is skipped with a warning.\n"
    "\n"
    "  --brokers B       the Kafka bootstrap list\n"
    "  --nodes-topic T   the directory topic (default tickslab.nodes)\n"
    "  --json            one JSON object a line, every key of the record and\n"
    "                    age_ms\n";

/* One node name's newest record (node NULL: a tombstone). */
struct entry {
  char key[sizeof(((struct tks_kafka_node *)0)->node)];
  int32_t partition;
  int64_t msg_ts; /* the Kafka message's timestamp, ms */
  struct tks_kafka_node *node;
};

struct directory {
  struct entry *e;
  size_t n;
  size_t skipped; /* records not taken */
};

static void directory_finish(struct directory *d) {
  for (size_t i = 0; i < d->n; i++) free(d->e[i].node);
  free(d->e);
  memset(d, 0, sizeof *d);
}

/* librdkafka's own log lines: the last kept for a failure's message, none
 * printed (a broker not up yet is retried within the bound). */
static char last_log[512];
static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  (void)rk;
  if (level <= 4) snprintf(last_log, sizeof last_log, "%s: %s", fac, buf);
}

static int64_t remaining_ms(uint64_t deadline) {
  uint64_t now = tks_mono_ns();
  return now < deadline ? (int64_t)((deadline - now) / 1000000) : 0;
}

/* A record skipped: told (the first FLEET_MAX_WARNINGS), and counted. */
static void skipped(struct directory *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void skipped(struct directory *d, const char *fmt, ...) {
  if (d->skipped++ >= FLEET_MAX_WARNINGS) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  cli_err("warning: %s", line);
}

/* Keeps one message of the directory: the newest per key. */
static void take(struct directory *d, const char *topic, const rd_kafka_message_t *m) {
  char shown[200];
  if (!m->key || m->key_len == 0 || m->key_len >= sizeof(((struct entry *)0)->key) ||
      (tks_utf8_scan(m->key, m->key_len) & (TKS_UTF8_INVALID | TKS_UTF8_CONTROL))) {
    tks_utf8_escape(shown, sizeof shown, m->key ? m->key : "", m->key ? m->key_len : 0);
    skipped(d,
            "skipped a record of %s [partition %d, offset %lld]: its key '%s' is not a node name "
            "(1..%zu bytes of UTF-8)",
            topic, (int)m->partition, (long long)m->offset, shown,
            sizeof(((struct entry *)0)->key) - 1);
    return;
  }
  char key[sizeof(((struct entry *)0)->key)];
  memcpy(key, m->key, m->key_len);
  key[m->key_len] = '\0';
  struct tks_kafka_node *node = NULL;
  if (m->len) {
    char why[256];
    node = malloc(sizeof *node);
    if (!node) {
      skipped(d, "out of memory for the record of node '%s': skipped", key);
      return;
    }
    if (tks_kafka_node_parse(m->payload, m->len, node, why, sizeof why) ||
        (strcmp(node->node, key) &&
         snprintf(why, sizeof why, "its node '%s' is not its key", node->node) > 0)) {
      tks_utf8_escape(shown, sizeof shown, why, strlen(why));
      skipped(d, "skipped a record of %s [partition %d, offset %lld] (key '%s'): %s", topic,
              (int)m->partition, (long long)m->offset, key, shown);
      free(node);
      return;
    }
  }
  rd_kafka_timestamp_type_t tt;
  int64_t ts = rd_kafka_message_timestamp(m, &tt);
  size_t i = 0;
  while (i < d->n && strcmp(d->e[i].key, key)) i++;
  if (i == d->n) {
    if (d->n == FLEET_MAX_NODES) {
      skipped(d, "over %d node names in %s: node '%s' ignored", FLEET_MAX_NODES, topic, key);
      free(node);
      return;
    }
    if (d->n % 64 == 0) {
      struct entry *e = realloc(d->e, (d->n + 64) * sizeof *e);
      if (!e) {
        skipped(d, "out of memory for the directory: the record of node '%s' skipped", key);
        free(node);
        return;
      }
      d->e = e;
    }
    memset(&d->e[d->n], 0, sizeof d->e[0]);
    memcpy(d->e[d->n].key, key, sizeof key);
    d->n++;
  } else if (d->e[i].partition != m->partition && ts < d->e[i].msg_ts) {
    /* The same name in another partition (the directory was repartitioned):
     * the newer message counts.  In one partition the later one does. */
    free(node);
    return;
  }
  free(d->e[i].node);
  d->e[i].node = node;
  d->e[i].partition = m->partition;
  d->e[i].msg_ts = ts;
}

/* Reads the directory into d.  0, or -1 (printed).  The consumer is the
 * simple one (rd_kafka_consume_start on each partition, into one queue):
 * it joins no group and commits nothing, so reading needs no group
 * rights and leaves no trace in the cluster. */
static int read_directory(struct cli *c, const struct cli_fleet_opts *f, struct directory *d) {
  const char *topic = f->nodes_topic ? f->nodes_topic : "tickslab.nodes";
  int timeout_ms = c->timeout_set ? c->timeout_ms : FLEET_DEFAULT_TIMEOUT_MS;
  uint64_t deadline = tks_mono_ns() + (uint64_t)timeout_ms * 1000000;
  char err[512];
  memset(d, 0, sizeof *d);
  last_log[0] = '\0';
  rd_kafka_conf_t *conf = tks_kafka_conf(f->brokers, NULL, "--brokers", err, sizeof err);
  if (!conf) {
    cli_err("%s", err);
    return -1;
  }
  rd_kafka_conf_set_log_cb(conf, quiet_log);
  if (tks_kafka_set(conf, "enable.partition.eof", "true", err, sizeof err)) {
    cli_err("a Kafka consumer setting: %s", err);
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!rk) {
    cli_err("a Kafka consumer: %s", err);
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  int rc = -1, np = 0, started = 0;
  bool *eof = NULL;
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_queue_t *queue = NULL;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
  if (!rkt) {
    cli_err("the directory topic '%s': %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
    goto out;
  }
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, (int)remaining_ms(deadline));
  if (e) {
    cli_err("cannot read the fleet's directory from %s within %.1f s: %s%s%s%s", f->brokers,
            timeout_ms / 1000.0, rd_kafka_err2str(e), last_log[0] ? " (" : "", last_log,
            last_log[0] ? ")" : "");
    goto out;
  }
  if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt < 1) {
    cli_err("the directory topic '%s' is not on %s (%s): do the nodes publish to it "
            "(kafka.source.nodes_topic, --nodes-topic)?",
            topic, f->brokers,
            md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "no such topic");
    goto out;
  }
  np = md->topics[0].partition_cnt;
  eof = calloc((size_t)np, sizeof *eof);
  queue = rd_kafka_queue_new(rk);
  if (!eof || !queue) {
    cli_err("out of memory");
    goto out;
  }
  for (; started < np; started++)
    if (rd_kafka_consume_start_queue(rkt, md->topics[0].partitions[started].id,
                                     RD_KAFKA_OFFSET_BEGINNING, queue)) {
      cli_err("reading the directory topic '%s': %s", topic,
              rd_kafka_err2str(rd_kafka_last_error()));
      goto out;
    }
  int left = np;
  char last_err[256] = "";
  while (left > 0) {
    int64_t ms = remaining_ms(deadline);
    if (ms == 0) {
      cli_err("the directory topic '%s' on %s was not read to its end within %.1f s (%d of %d "
              "partitions%s%s)",
              topic, f->brokers, timeout_ms / 1000.0, np - left, np, last_err[0] ? "; " : "",
              last_err[0] ? last_err : "");
      goto out;
    }
    rd_kafka_message_t *m = rd_kafka_consume_queue(queue, ms < 100 ? (int)ms : 100);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      for (int i = 0; i < np; i++)
        if (md->topics[0].partitions[i].id == m->partition && !eof[i]) {
          eof[i] = true;
          left--;
        }
    } else if (m->err) {
      snprintf(last_err, sizeof last_err, "%s", rd_kafka_message_errstr(m));
    } else {
      take(d, topic, m);
    }
    rd_kafka_message_destroy(m);
  }
  if (d->skipped > FLEET_MAX_WARNINGS)
    cli_err("warning: %zu more records of %s skipped", d->skipped - FLEET_MAX_WARNINGS, topic);
  rc = 0;
out:
  for (int i = 0; i < started; i++) rd_kafka_consume_stop(rkt, md->topics[0].partitions[i].id);
  if (queue) rd_kafka_queue_destroy(queue);
  if (md) rd_kafka_metadata_destroy(md);
  if (rkt) rd_kafka_topic_destroy(rkt);
  free(eof);
  rd_kafka_destroy(rk);
  if (rc) directory_finish(d);
  return rc;
}

static bool is_stale(const struct tks_kafka_node *n, int64_t now) {
  return now - n->ts > (int64_t)TKS_KAFKA_NODE_STALE_MS * 1000000;
}

static int by_name(const void *a, const void *b) {
  const struct tks_kafka_node *x = *(const struct tks_kafka_node *const *)a;
  const struct tks_kafka_node *y = *(const struct tks_kafka_node *const *)b;
  return strcmp(x->node, y->node);
}

/* The live nodes of d, sorted by name, into a malloc'd array (*n of them);
 * the stale ones counted in *stale and, with `say`, named on stderr. */
static struct tks_kafka_node **live_nodes(const struct directory *d, size_t *n, size_t *stale,
                                          bool say) {
  int64_t now = tks_now_ns();
  struct tks_kafka_node **v = calloc(d->n ? d->n : 1, sizeof *v);
  *n = *stale = 0;
  if (!v) return NULL;
  for (size_t i = 0; i < d->n; i++) {
    struct tks_kafka_node *node = d->e[i].node;
    if (!node) continue;
    if (is_stale(node, now)) {
      (*stale)++;
      if (say)
        cli_err("note: node '%s' is gone: its record is %.0f s old (over %d s)", node->node,
                (double)(now - node->ts) / 1e9, TKS_KAFKA_NODE_STALE_MS / 1000);
      continue;
    }
    v[(*n)++] = node;
  }
  qsort(v, *n, sizeof *v, by_name);
  return v;
}

static enum tks_partitioner partitioner_of(const struct tks_kafka_node *n) {
  for (int p = 0; p < TKS_PARTITIONER_COUNT; p++)
    if (strcmp(n->partitioner, tks_partitioner_names[p]) == 0) return (enum tks_partitioner)p;
  return TKS_PARTITIONER_MURMUR2; /* the parser took no other */
}

/* "0,1,2" into b. */
static int put_partitions(struct tks_buf *b, const struct tks_kafka_node *n) {
  int r = 0;
  for (uint32_t i = 0; i < n->npartitions; i++)
    r |= tks_buf_printf(b, "%s%d", i ? "," : "", (int)n->partitions[i]);
  return r;
}

int cli_fleet_control(struct cli *c, const struct cli_fleet_opts *f, const char *symbol,
                      struct cli_fleet_owner *o) {
  struct directory d;
  if (read_directory(c, f, &d)) return CLI_FAIL;
  const char *topic = f->topic ? f->topic : "ticks";
  size_t nlive, stale;
  struct tks_kafka_node **live = live_nodes(&d, &nlive, &stale, false);
  int rc = CLI_FAIL;
  if (!live) {
    cli_err("out of memory");
    goto out;
  }
  const struct tks_kafka_node *owner = NULL, *newest = NULL;
  size_t serving = 0;
  int32_t part = -1, owned = -1;
  for (size_t i = 0; i < nlive; i++) {
    const struct tks_kafka_node *n = live[i];
    if (strcmp(n->topic, topic)) continue;
    serving++;
    int32_t p = tks_kafka_partition(partitioner_of(n), symbol, strlen(symbol), n->partition_count);
    if (!newest || n->ts > newest->ts) {
      newest = n;
      part = p;
    }
    /* While a rebalance is published, two may claim it: the newer record. */
    if (tks_kafka_node_owns(n, p) && (!owner || n->ts > owner->ts)) {
      owner = n;
      owned = p;
    }
  }
  if (owner) part = owned;
  const char *nodes_topic = f->nodes_topic ? f->nodes_topic : "tickslab.nodes";
  if (!serving) {
    cli_err("no node of the fleet serves the topic %s (the directory %s on %s: %zu live "
            "node%s, %zu gone)",
            topic, nodes_topic, f->brokers, nlive, nlive == 1 ? "" : "s", stale);
    goto out;
  }
  if (!owner) {
    struct tks_buf b = {0};
    int r = 0;
    for (size_t i = 0; i < nlive; i++) {
      if (strcmp(live[i]->topic, topic)) continue;
      r |= tks_buf_printf(&b, "%s%s [", b.len ? ", " : "", live[i]->node);
      r |= put_partitions(&b, live[i]) | tks_buf_putc(&b, ']');
    }
    cli_err("%s is in partition %d of %s: no node of the fleet owns it (%zu node%s known: %s)",
            symbol, (int)part, topic, serving, serving == 1 ? "" : "s",
            r ? "(out of memory)" : b.data);
    tks_buf_finish(&b);
    goto out;
  }
  if (!owner->control[0]) {
    cli_err("%s is in partition %d of %s, owned by node '%s', whose record names no control "
            "socket",
            symbol, (int)part, topic, owner->node);
    goto out;
  }
  snprintf(o->path, sizeof o->path, "%s", owner->control);
  snprintf(o->node, sizeof o->node, "%s", owner->node);
  snprintf(o->topic, sizeof o->topic, "%s", topic);
  o->partition = part;
  o->age_s = (double)(tks_now_ns() - owner->ts) / 1e9;
  o->stale_s = TKS_KAFKA_NODE_STALE_MS / 1000;
  rc = CLI_OK;
out:
  free(live);
  directory_finish(&d);
  return rc;
}

static int print_nodes(struct tks_kafka_node **v, size_t n, bool json) {
  int64_t now = tks_now_ns();
  struct tks_buf b = {0};
  int r = 0;
  if (!json && n) {
    /* Columns as wide as their widest value. */
    int w[5] = {4, 4, 5, 10, 7}; /* NODE HOST TOPIC PARTITIONS CONTROL */
    struct tks_buf p = {0};
    for (size_t i = 0; i < n; i++) {
      p.len = 0;
      r |= put_partitions(&p, v[i]);
      int lens[5] = {(int)strlen(v[i]->node), (int)strlen(v[i]->host), (int)strlen(v[i]->topic),
                     (int)p.len, (int)strlen(v[i]->control)};
      for (int k = 0; k < 5; k++)
        if (lens[k] > w[k]) w[k] = lens[k];
    }
    r |= tks_buf_printf(&b, "%-*s  %-*s  %-*s  %-*s  %-*s  %-21s  %s\n", w[0], "NODE", w[1], "HOST",
                        w[2], "TOPIC", w[3], "PARTITIONS", w[4], "CONTROL", "SUBSCRIBE", "AGE");
    for (size_t i = 0; i < n; i++) {
      p.len = 0;
      r |= put_partitions(&p, v[i]);
      r |= tks_buf_printf(&b, "%-*s  %-*s  %-*s  %-*s  %-*s  %-21s  %.1fs\n", w[0], v[i]->node,
                          w[1], v[i]->host[0] ? v[i]->host : "-", w[2], v[i]->topic, w[3],
                          p.len ? p.data : "-", w[4], v[i]->control[0] ? v[i]->control : "-",
                          v[i]->subscribe[0] ? v[i]->subscribe : "-",
                          (double)(now - v[i]->ts) / 1e9);
    }
    tks_buf_finish(&p);
  } else if (json) {
    for (size_t i = 0; i < n; i++) {
      const struct tks_kafka_node *x = v[i];
      const struct {
        const char *k, *v;
      } s[] = {{"node", x->node},
               {"host", x->host},
               {"group", x->group},
               {"topic", x->topic},
               {"partitioner", x->partitioner},
               {"control", x->control},
               {"subscribe", x->subscribe},
               {"ingest", x->ingest}};
      r |= tks_buf_putc(&b, '{');
      for (unsigned k = 0; k < TKS_ARRAY_SIZE(s); k++)
        r |= tks_buf_printf(&b, "%s\"%s\":", k ? "," : "", s[k].k) |
             tks_buf_json_string(&b, s[k].v, strlen(s[k].v));
      r |= tks_buf_puts(&b, ",\"partitions\":[") | put_partitions(&b, x);
      r |= tks_buf_printf(&b,
                          "],\"partition_count\":%d,\"pid\":%lld,\"ts\":%lld,\"age_ms\":%lld}\n",
                          (int)x->partition_count, (long long)x->pid, (long long)x->ts,
                          (long long)((now - x->ts) / 1000000));
    }
  }
  int rc = CLI_FAIL;
  if (r)
    cli_err("out of memory");
  else if ((b.len && fwrite(b.data, 1, b.len, stdout) != b.len) || fflush(stdout))
    cli_err("write to stdout: %s", strerror(errno));
  else
    rc = CLI_OK;
  tks_buf_finish(&b);
  return rc;
}

int cli_cmd_nodes(struct cli *c, int argc, char **argv) {
  struct cli_fleet_opts f = {0};
  bool json = false;
  for (int i = 1; i < argc;) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(nodes_help, stdout);
      return CLI_OK;
    }
    if (strcmp(a, "--json") == 0) {
      json = true;
      i++;
      continue;
    }
    int r = cli_fleet_opt(argc, argv, &i, &f);
    if (r == 0) r = cli_global_opt(c, argc, argv, &i);
    if (r < 0) return CLI_USAGE;
    if (r == 0) {
      cli_err("nodes: unexpected argument '%s' (see tickslab nodes --help)", a);
      return CLI_USAGE;
    }
  }
  if (!f.brokers) {
    cli_err("nodes: --brokers is needed (the Kafka bootstrap list of the fleet)");
    return CLI_USAGE;
  }
  if (f.topic) {
    cli_err("nodes: --topic is for last and range (nodes lists every topic's)");
    return CLI_USAGE;
  }
  struct directory d;
  if (read_directory(c, &f, &d)) return CLI_FAIL;
  size_t n, stale;
  struct tks_kafka_node **v = live_nodes(&d, &n, &stale, true);
  int rc = CLI_FAIL;
  if (!v) {
    cli_err("out of memory");
  } else {
    if (n == 0)
      cli_err("note: no live node in the directory topic %s on %s",
              f.nodes_topic ? f.nodes_topic : "tickslab.nodes", f.brokers);
    rc = print_nodes(v, n, json);
  }
  free(v);
  directory_finish(&d);
  return rc;
}

/*
 * Unit tests of lib/kafka.c's fleet directory records (kafka.h): a record
 * encoded parses back the same; what anyone may write to the directory
 * topic, cut at every byte, too long, nested too deep, not UTF-8, of the
 * wrong types, out of range, with keys missing or twice, or random bytes
 * and mutations of a good record, is refused with a reason and leaves the
 * record zeroed, and what is taken is well-formed.  Plus the partitioners'
 * range and tks_kafka_node_owns.
 */
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "test.h"
#include "utf8.h"
#include "util.h"

static struct tks_kafka_node *node_new(void) {
  struct tks_kafka_node *n = calloc(1, sizeof *n);
  ASSERT(n);
  return n;
}

static void sample(struct tks_kafka_node *n) {
  memset(n, 0, sizeof *n);
  snprintf(n->node, sizeof n->node, "node-a");
  snprintf(n->group, sizeof n->group, "tickslab");
  snprintf(n->topic, sizeof n->topic, "ticks");
  snprintf(n->partitioner, sizeof n->partitioner, "crc32");
  snprintf(n->control, sizeof n->control, "/run/tickslab/control.sock");
  snprintf(n->subscribe, sizeof n->subscribe, "127.0.0.1:7071");
  snprintf(n->ingest, sizeof n->ingest, "127.0.0.1:7070");
  snprintf(n->host, sizeof n->host, "md-1");
  n->pid = 4242;
  n->ts = 1795617000123456789LL;
  n->partition_count = 6;
  n->npartitions = 3;
  n->partitions[0] = 4;
  n->partitions[1] = 0;
  n->partitions[2] = 2;
}

/* Parses from an exact-size heap copy (a read past the end is an ASan error). */
static int parse(const void *data, size_t len, struct tks_kafka_node *n, char *why, size_t wl) {
  uint8_t *b = malloc(len ? len : 1);
  ASSERT(b);
  if (len) memcpy(b, data, len);
  why[0] = '\0';
  int r = tks_kafka_node_parse(b, len, n, why, wl);
  free(b);
  return r;
}

static bool all_zero(const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i]) return false;
  return true;
}

/* Refused with -EINVAL, a reason containing `want` (NULL: any) and *n zeroed. */
static void expect_refused(const void *data, size_t len, const char *want) {
  struct tks_kafka_node *n = node_new();
  char why[256];
  memset(n, 0x5a, sizeof *n);
  int r = parse(data, len, n, why, sizeof why);
  if (r != -EINVAL) TEST_FAIL("a bad record (%zu bytes) parsed: %d", len, r);
  if (!why[0]) TEST_FAIL("a refusal without a reason");
  if (want) ASSERT_CONTAINS(why, want);
  ASSERT(all_zero(n, sizeof *n));
  free(n);
}

/* ---- records packed key by key, one of them replaced or left out ---- */

struct rec {
  msgpack_sbuffer sb;
  msgpack_packer pk;
};

static void pstr(msgpack_packer *pk, const char *s) {
  msgpack_pack_str_with_body(pk, s, strlen(s));
}

static const char *const base_keys[] = {
    "node",        "group",   "topic",     "partitions", "partition_count",
    "partitioner", "control", "subscribe", "ingest",     "host",
    "pid",         "ts"};
#define NBASE (sizeof base_keys / sizeof base_keys[0])

static void base_value(msgpack_packer *pk, unsigned k) {
  switch (k) {
  case 0: pstr(pk, "node-a"); break;
  case 1: pstr(pk, "tickslab"); break;
  case 2: pstr(pk, "ticks"); break;
  case 3:
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 1);
    msgpack_pack_int(pk, 3);
    break;
  case 4: msgpack_pack_int(pk, 6); break;
  case 5: pstr(pk, "murmur2"); break;
  case 6: pstr(pk, "/tmp/a.sock"); break;
  case 7: pstr(pk, "127.0.0.1:7071"); break;
  case 8: pstr(pk, "127.0.0.1:7070"); break;
  case 9: pstr(pk, "md-1"); break;
  case 10: msgpack_pack_int(pk, 42); break;
  default: msgpack_pack_int64(pk, 1795617000000000000LL); break;
  }
}

/* The base record without `omit` (NULL: none), with key's value the raw
 * msgpack bytes given (key NULL: none; a key not of the base is added). */
static void build(struct rec *r, const char *omit, const char *key, const void *raw,
                  size_t rawlen) {
  msgpack_sbuffer_init(&r->sb);
  msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
  bool key_is_base = false;
  unsigned keys = 0;
  for (unsigned k = 0; k < NBASE; k++) {
    if (key && strcmp(key, base_keys[k]) == 0) key_is_base = true;
    if (!omit || strcmp(omit, base_keys[k])) keys++;
  }
  msgpack_pack_map(&r->pk, keys + (key && !key_is_base));
  for (unsigned k = 0; k < NBASE; k++) {
    if (omit && strcmp(omit, base_keys[k]) == 0) continue;
    pstr(&r->pk, base_keys[k]);
    if (key && strcmp(key, base_keys[k]) == 0)
      msgpack_sbuffer_write(&r->sb, raw, rawlen);
    else
      base_value(&r->pk, k);
  }
  if (key && !key_is_base) {
    pstr(&r->pk, key);
    msgpack_sbuffer_write(&r->sb, raw, rawlen);
  }
}

static void rec_finish(struct rec *r) { msgpack_sbuffer_destroy(&r->sb); }

/* One value's msgpack bytes, packed by the caller into v->pk. */
struct val {
  msgpack_sbuffer sb;
  msgpack_packer pk;
};
static msgpack_packer *val_begin(struct val *v) {
  msgpack_sbuffer_init(&v->sb);
  msgpack_packer_init(&v->pk, &v->sb, msgpack_sbuffer_write);
  return &v->pk;
}

/* The base record with key's value as v holds it: refused, why containing want. */
static void refused_with(const char *key, struct val *v, const char *want) {
  struct rec r;
  build(&r, NULL, key, v->sb.data, v->sb.size);
  expect_refused(r.sb.data, r.sb.size, want);
  rec_finish(&r);
  msgpack_sbuffer_destroy(&v->sb);
}

static void taken_with(const char *key, struct val *v, struct tks_kafka_node *n) {
  struct rec r;
  char why[256];
  build(&r, NULL, key, v->sb.data, v->sb.size);
  int got = parse(r.sb.data, r.sb.size, n, why, sizeof why);
  if (got) TEST_FAIL("refused (%s): %s", key, why);
  rec_finish(&r);
  msgpack_sbuffer_destroy(&v->sb);
}

/* ---- the tests ---- */

TEST(an_encoded_record_parses_back_the_same_with_its_partitions_sorted) {
  struct tks_kafka_node *a = node_new(), *b = node_new();
  sample(a);
  struct tks_buf buf = {0};
  ASSERT_EQ(tks_kafka_node_encode(a, &buf), 0);
  char why[256];
  ASSERT_EQ(parse(buf.data, buf.len, b, why, sizeof why), 0);
  ASSERT_STR_EQ(b->node, "node-a");
  ASSERT_STR_EQ(b->group, "tickslab");
  ASSERT_STR_EQ(b->topic, "ticks");
  ASSERT_STR_EQ(b->partitioner, "crc32");
  ASSERT_STR_EQ(b->control, "/run/tickslab/control.sock");
  ASSERT_STR_EQ(b->subscribe, "127.0.0.1:7071");
  ASSERT_STR_EQ(b->ingest, "127.0.0.1:7070");
  ASSERT_STR_EQ(b->host, "md-1");
  ASSERT_EQ(b->pid, 4242);
  ASSERT_EQ(b->ts, 1795617000123456789LL);
  ASSERT_EQ(b->partition_count, 6);
  ASSERT_EQ(b->npartitions, 3);
  ASSERT_EQ(b->partitions[0], 0);
  ASSERT_EQ(b->partitions[1], 2);
  ASSERT_EQ(b->partitions[2], 4);
  /* Appended: what the buffer held stays. */
  struct tks_buf two = {0};
  ASSERT_EQ(tks_buf_puts(&two, "xy"), 0);
  ASSERT_EQ(tks_kafka_node_encode(a, &two), 0);
  ASSERT_U64_EQ(two.len, buf.len + 2);
  ASSERT(memcmp(two.data + 2, buf.data, buf.len) == 0);
  tks_buf_finish(&two);
  tks_buf_finish(&buf);
  free(a);
  free(b);
}

TEST(a_record_of_the_most_partitions_round_trips_and_one_more_is_not_encoded) {
  struct tks_kafka_node *a = node_new(), *b = node_new();
  sample(a);
  a->partition_count = TKS_KAFKA_NODE_MAX_PARTITIONS;
  a->npartitions = TKS_KAFKA_NODE_MAX_PARTITIONS;
  for (int i = 0; i < TKS_KAFKA_NODE_MAX_PARTITIONS; i++)
    a->partitions[i] = TKS_KAFKA_NODE_MAX_PARTITIONS - 1 - i;
  /* Every string at its longest. */
  memset(a->control, 'c', sizeof a->control - 1);
  memset(a->topic, 't', sizeof a->topic - 1);
  memset(a->node, 'n', sizeof a->node - 1);
  struct tks_buf buf = {0};
  ASSERT_EQ(tks_kafka_node_encode(a, &buf), 0);
  ASSERT(buf.len <= TKS_KAFKA_NODE_MAX_BYTES);
  char why[256];
  ASSERT_EQ(parse(buf.data, buf.len, b, why, sizeof why), 0);
  ASSERT_EQ(b->npartitions, TKS_KAFKA_NODE_MAX_PARTITIONS);
  for (int i = 0; i < TKS_KAFKA_NODE_MAX_PARTITIONS; i++) ASSERT_EQ(b->partitions[i], i);
  ASSERT_STR_EQ(b->control, a->control);
  ASSERT_STR_EQ(b->node, a->node);
  a->npartitions = TKS_KAFKA_NODE_MAX_PARTITIONS + 1;
  size_t before = buf.len;
  ASSERT_EQ(tks_kafka_node_encode(a, &buf), -EINVAL);
  ASSERT_U64_EQ(buf.len, before);
  tks_buf_finish(&buf);
  free(a);
  free(b);
}

TEST(a_record_cut_at_every_byte_is_refused_and_bytes_after_it_too) {
  struct tks_kafka_node *a = node_new();
  sample(a);
  struct tks_buf buf = {0};
  ASSERT_EQ(tks_kafka_node_encode(a, &buf), 0);
  for (size_t k = 0; k < buf.len; k++) expect_refused(buf.data, k, NULL);
  expect_refused(buf.data, 0, "empty");
  expect_refused(buf.data, buf.len / 2, "truncated");
  ASSERT_EQ(tks_buf_putc(&buf, '\xc0'), 0); /* a nil after the map */
  expect_refused(buf.data, buf.len, "1 bytes after the map");
  tks_buf_finish(&buf);
  free(a);
}

TEST(a_record_over_64_KiB_is_refused_before_it_is_read) {
  /* A valid map whose unknown key holds a long string: too long however
   * well-formed. */
  size_t big = TKS_KAFKA_NODE_MAX_BYTES;
  char *s = malloc(big);
  ASSERT(s);
  memset(s, 'x', big);
  struct val v;
  msgpack_pack_str_with_body(val_begin(&v), s, big);
  struct rec r;
  build(&r, NULL, "padding", v.sb.data, v.sb.size);
  ASSERT(r.sb.size > TKS_KAFKA_NODE_MAX_BYTES);
  expect_refused(r.sb.data, r.sb.size, "over 65536");
  rec_finish(&r);
  msgpack_sbuffer_destroy(&v.sb);
  /* Just under: taken, the unknown key skipped. */
  struct tks_kafka_node *n = node_new();
  msgpack_pack_str_with_body(val_begin(&v), s, 1000);
  taken_with("padding", &v, n);
  ASSERT_STR_EQ(n->node, "node-a");
  free(n);
  free(s);
}

TEST(deep_nesting_is_refused_and_shallow_unknown_values_are_skipped) {
  struct val v;
  msgpack_packer *pk = val_begin(&v);
  for (int i = 0; i < 40; i++) msgpack_pack_array(pk, 1);
  msgpack_pack_nil(pk);
  refused_with("future", &v, "too_deep");
  /* A map32 header of 100000 entries cannot fit in 64 KiB; one of 10
   * entries without them is a truncated record. */
  pk = val_begin(&v);
  msgpack_pack_map(pk, 100000);
  refused_with("future", &v, "too_large");
  pk = val_begin(&v);
  msgpack_pack_map(pk, 10);
  refused_with("future", &v, "truncated");
  /* Unknown keys of any shape within the bound are skipped. */
  struct tks_kafka_node *n = node_new();
  pk = val_begin(&v);
  msgpack_pack_map(pk, 2);
  pstr(pk, "zone");
  pstr(pk, "eu-1");
  pstr(pk, "weights");
  msgpack_pack_array(pk, 2);
  msgpack_pack_double(pk, 0.5);
  msgpack_pack_nil(pk);
  taken_with("labels", &v, n);
  ASSERT_EQ(n->npartitions, 2);
  ASSERT_EQ(n->partitions[1], 3);
  free(n);
}

TEST(strings_not_utf8_or_with_control_characters_or_too_long_are_refused) {
  static const char *const keys[] = {"node",      "group",  "topic", "control",
                                     "subscribe", "ingest", "host"};
  static const char bad_utf8[] = "node-\xc3\x28";
  static const char overlong[] = "\xc0\xaf";
  static const char control[] = "a\nb";
  for (unsigned k = 0; k < sizeof keys / sizeof keys[0]; k++) {
    struct val v;
    msgpack_pack_str_with_body(val_begin(&v), bad_utf8, sizeof bad_utf8 - 1);
    refused_with(keys[k], &v, "not valid UTF-8");
    msgpack_pack_str_with_body(val_begin(&v), overlong, sizeof overlong - 1);
    refused_with(keys[k], &v, keys[k]);
    msgpack_pack_str_with_body(val_begin(&v), control, sizeof control - 1);
    refused_with(keys[k], &v, "control character");
  }
  /* Each field's longest string is taken, one byte more refused. */
  struct tks_kafka_node *n = node_new();
  const struct {
    const char *key;
    size_t cap;
  } lens[] = {{"node", sizeof n->node},
              {"group", sizeof n->group},
              {"topic", sizeof n->topic},
              {"control", sizeof n->control},
              {"subscribe", sizeof n->subscribe},
              {"ingest", sizeof n->ingest},
              {"host", sizeof n->host}};
  char s[400];
  memset(s, 'a', sizeof s);
  for (unsigned k = 0; k < sizeof lens / sizeof lens[0]; k++) {
    struct val v;
    msgpack_pack_str_with_body(val_begin(&v), s, lens[k].cap - 1);
    taken_with(lens[k].key, &v, n);
    msgpack_pack_str_with_body(val_begin(&v), s, lens[k].cap);
    refused_with(lens[k].key, &v, "bytes");
  }
  /* UTF-8 beyond ASCII is fine. */
  struct val v;
  msgpack_pack_str_with_body(val_begin(&v), "n\xc5\x93ud", 5);
  taken_with("node", &v, n);
  ASSERT_STR_EQ(n->node, "n\xc5\x93ud");
  free(n);
}

TEST(values_of_the_wrong_type_are_refused_naming_the_key) {
  struct val v;
  msgpack_pack_int(val_begin(&v), 7);
  refused_with("node", &v, "node: expected a string");
  msgpack_pack_nil(val_begin(&v));
  refused_with("host", &v, "host: expected a string");
  msgpack_pack_bin_with_body(val_begin(&v), "ticks", 5);
  refused_with("topic", &v, "topic: expected a string");
  msgpack_pack_map(val_begin(&v), 0);
  refused_with("partitions", &v, "partitions: expected an array of ints");
  msgpack_packer *pk = val_begin(&v);
  msgpack_pack_array(pk, 2);
  msgpack_pack_int(pk, 1);
  pstr(pk, "2");
  refused_with("partitions", &v, "partitions: expected an array of ints");
  pk = val_begin(&v);
  msgpack_pack_array(pk, 1);
  msgpack_pack_double(pk, 1.0);
  refused_with("partitions", &v, "partitions: expected an array of ints");
  pstr(val_begin(&v), "6");
  refused_with("partition_count", &v, "partition_count: expected an int");
  msgpack_pack_double(val_begin(&v), 1.7e18);
  refused_with("ts", &v, "ts: expected an int");
  msgpack_pack_uint64(val_begin(&v), (uint64_t)INT64_MAX + 1);
  refused_with("ts", &v, "ts: expected an int");
  msgpack_pack_true(val_begin(&v));
  refused_with("pid", &v, "pid: expected an int");
  /* Not a map at all. */
  pk = val_begin(&v);
  msgpack_pack_array(pk, 1);
  pstr(pk, "node-a");
  expect_refused(v.sb.data, v.sb.size, "not a msgpack map");
  msgpack_sbuffer_destroy(&v.sb);
  /* A key that is not a string. */
  pk = val_begin(&v);
  msgpack_pack_map(pk, 1);
  msgpack_pack_int(pk, 1);
  msgpack_pack_int(pk, 2);
  expect_refused(v.sb.data, v.sb.size, "a key that is not a string");
  msgpack_sbuffer_destroy(&v.sb);
}

TEST(values_out_of_range_and_partitions_twice_are_refused) {
  struct val v;
  msgpack_packer *pk = val_begin(&v);
  msgpack_pack_array(pk, 2);
  msgpack_pack_int(pk, 1);
  msgpack_pack_int(pk, 6);
  refused_with("partitions", &v, "partitions: 6 is not in 0..5");
  pk = val_begin(&v);
  msgpack_pack_array(pk, 1);
  msgpack_pack_int(pk, -1);
  refused_with("partitions", &v, "partitions: -1 is not in 0..5");
  pk = val_begin(&v);
  msgpack_pack_array(pk, 3);
  msgpack_pack_int(pk, 3);
  msgpack_pack_int(pk, 1);
  msgpack_pack_int(pk, 3);
  refused_with("partitions", &v, "partitions: 3 given twice");
  pk = val_begin(&v);
  msgpack_pack_array(pk, TKS_KAFKA_NODE_MAX_PARTITIONS + 1);
  for (int i = 0; i <= TKS_KAFKA_NODE_MAX_PARTITIONS; i++) msgpack_pack_int(pk, i);
  refused_with("partitions", &v, "partitions: over 4096");
  msgpack_pack_int(val_begin(&v), 0);
  refused_with("partition_count", &v, "partition_count: expected an int of 1..");
  msgpack_pack_int64(val_begin(&v), (int64_t)INT32_MAX + 1);
  refused_with("partition_count", &v, "partition_count");
  msgpack_pack_int(val_begin(&v), -5);
  refused_with("pid", &v, "pid: expected an int >= 0");
  pstr(val_begin(&v), "random");
  refused_with("partitioner", &v, "partitioner: 'random' is not murmur2 or crc32");
  pstr(val_begin(&v), "");
  refused_with("node", &v, "node: empty");
  pstr(val_begin(&v), "");
  refused_with("topic", &v, "topic: empty");
  /* Negative ts (before 1970) and an empty partition list are records. */
  struct tks_kafka_node *n = node_new();
  msgpack_pack_int64(val_begin(&v), -5);
  taken_with("ts", &v, n);
  ASSERT_EQ(n->ts, -5);
  msgpack_pack_array(val_begin(&v), 0);
  taken_with("partitions", &v, n);
  ASSERT_EQ(n->npartitions, 0);
  ASSERT(!tks_kafka_node_owns(n, 0));
  free(n);
}

TEST(each_required_key_missing_is_refused_and_the_optional_ones_may_be) {
  static const char *const required[] = {"node", "topic", "partitions", "partition_count", "ts"};
  for (unsigned k = 0; k < sizeof required / sizeof required[0]; k++) {
    struct rec r;
    build(&r, required[k], NULL, NULL, 0);
    char want[64];
    snprintf(want, sizeof want, "%s missing", required[k]);
    expect_refused(r.sb.data, r.sb.size, want);
    rec_finish(&r);
  }
  static const char *const optional[] = {"group",  "partitioner", "control", "subscribe",
                                         "ingest", "host",        "pid"};
  struct tks_kafka_node *n = node_new();
  for (unsigned k = 0; k < sizeof optional / sizeof optional[0]; k++) {
    struct rec r;
    char why[256];
    build(&r, optional[k], NULL, NULL, 0);
    int got = parse(r.sb.data, r.sb.size, n, why, sizeof why);
    if (got) TEST_FAIL("without %s: %s", optional[k], why);
    ASSERT_STR_EQ(n->partitioner, "murmur2"); /* the default, or given */
    rec_finish(&r);
  }
  free(n);
}

TEST(a_known_key_given_twice_is_refused) {
  struct val v;
  pstr(val_begin(&v), "node-b");
  struct rec r;
  /* "node" again, as an added key after the base's (build adds it only
   * when it is not a base key: write the map by hand). */
  msgpack_sbuffer_init(&r.sb);
  msgpack_packer_init(&r.pk, &r.sb, msgpack_sbuffer_write);
  msgpack_pack_map(&r.pk, NBASE + 1);
  for (unsigned k = 0; k < NBASE; k++) {
    pstr(&r.pk, base_keys[k]);
    base_value(&r.pk, k);
  }
  pstr(&r.pk, "node");
  msgpack_sbuffer_write(&r.sb, v.sb.data, v.sb.size);
  expect_refused(r.sb.data, r.sb.size, "node given twice");
  rec_finish(&r);
  msgpack_sbuffer_destroy(&v.sb);
}

/* What a record taken must hold. */
static void check_taken(const struct tks_kafka_node *n) {
  ASSERT(n->node[0] && n->topic[0]);
  ASSERT(n->partition_count >= 1);
  ASSERT(n->npartitions <= TKS_KAFKA_NODE_MAX_PARTITIONS);
  for (uint32_t i = 0; i < n->npartitions; i++) {
    ASSERT(n->partitions[i] >= 0 && n->partitions[i] < n->partition_count);
    if (i) ASSERT(n->partitions[i] > n->partitions[i - 1]);
    ASSERT(tks_kafka_node_owns(n, n->partitions[i]));
  }
  const char *strs[] = {n->node,    n->group,     n->topic,  n->partitioner,
                        n->control, n->subscribe, n->ingest, n->host};
  for (unsigned k = 0; k < sizeof strs / sizeof strs[0]; k++)
    ASSERT(!(tks_utf8_scan(strs[k], strlen(strs[k])) & (TKS_UTF8_INVALID | TKS_UTF8_CONTROL)));
  ASSERT(strcmp(n->partitioner, "murmur2") == 0 || strcmp(n->partitioner, "crc32") == 0);
  ASSERT(n->pid >= 0);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 11);
}

TEST_TIMEOUT(random_bytes_and_mutations_of_a_record_never_crash_and_what_is_taken_is_sound, 120) {
  struct tks_kafka_node *a = node_new(), *n = node_new();
  sample(a);
  struct tks_buf good = {0};
  ASSERT_EQ(tks_kafka_node_encode(a, &good), 0);
  uint8_t buf[512];
  char why[256];
  unsigned taken = 0, refused = 0;
  for (int iter = 0; iter < 20000; iter++) {
    size_t len;
    if (iter % 4 == 0) {
      /* Random bytes, often beginning with a map header. */
      len = next_rand() % sizeof buf;
      for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)next_rand();
      if (len && iter % 8 == 0) buf[0] = (uint8_t)(0x80 | (next_rand() % 16));
    } else {
      /* The good record with 1..4 bytes changed, and maybe cut. */
      len = good.len;
      memcpy(buf, good.data, len);
      int changes = 1 + (int)(next_rand() % 4);
      for (int c = 0; c < changes; c++) buf[next_rand() % len] = (uint8_t)next_rand();
      if (next_rand() % 4 == 0) len = next_rand() % (len + 1);
    }
    int r = parse(buf, len, n, why, sizeof why);
    if (r == 0) {
      check_taken(n);
      taken++;
    } else {
      ASSERT_EQ(r, -EINVAL);
      ASSERT(why[0] != '\0');
      ASSERT(all_zero(n, sizeof *n));
      refused++;
    }
  }
  /* Both outcomes were met (the mutations keep many records whole). */
  ASSERT(taken > 100);
  ASSERT(refused > 1000);
  tks_buf_finish(&good);
  free(a);
  free(n);
}

TEST(owns_tells_the_partitions_of_the_list) {
  struct tks_kafka_node *n = node_new();
  sample(n);
  ASSERT(tks_kafka_node_owns(n, 0));
  ASSERT(tks_kafka_node_owns(n, 2));
  ASSERT(tks_kafka_node_owns(n, 4));
  ASSERT(!tks_kafka_node_owns(n, 1));
  ASSERT(!tks_kafka_node_owns(n, 5));
  ASSERT(!tks_kafka_node_owns(n, -1));
  n->npartitions = 0;
  ASSERT(!tks_kafka_node_owns(n, 0));
  free(n);
}

TEST(a_symbol_goes_to_one_partition_in_range_by_either_partitioner) {
  static const char *const syms[] = {"AAPL", "MSFT", "X", "BRK.B", "SYM123"};
  for (unsigned k = 0; k < sizeof syms / sizeof syms[0]; k++)
    for (int32_t parts = 1; parts <= 64; parts++)
      for (int p = 0; p < TKS_PARTITIONER_COUNT; p++) {
        int32_t got = tks_kafka_partition((enum tks_partitioner)p, syms[k], strlen(syms[k]), parts);
        ASSERT(got >= 0 && got < parts);
        ASSERT_EQ(tks_kafka_partition((enum tks_partitioner)p, syms[k], strlen(syms[k]), parts),
                  got);
      }
}

TEST_MAIN()

/* Unit tests of lib/stats.c: JSON nesting, Prometheus families, text. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stats.h"
#include "test.h"

static struct tks_stats *sample(void) {
  struct tks_stats *s = tks_stats_create();
  tks_stats_str(s, "version", "1.2", "Version", "build_info", "version");
  tks_stats_u64(s, "ticks.accepted", 5, TKS_STAT_COUNTER, "Ticks accepted", NULL, NULL);
  tks_stats_u64(s, "ticks.rejected_by_reason.bad_type", 2, TKS_STAT_COUNTER, "By reason",
                "ticks_rejected_by_reason", "reason=\"bad_type\"");
  tks_stats_u64(s, "ticks.rejected_by_reason.too_large", 1, TKS_STAT_COUNTER, "By reason",
                "ticks_rejected_by_reason", "reason=\"too_large\"");
  tks_stats_i64(s, "ticks.delta", -3, TKS_STAT_GAUGE, NULL, NULL, NULL);
  tks_stats_f64(s, "memory.bytes_per_tick", 33.25, TKS_STAT_GAUGE, "Bytes per tick", NULL, NULL);
  tks_stats_str(s, "memory.note", "a \"quoted\" word", NULL, NULL, NULL);
  return s;
}

TEST(json_nests_dotted_paths) {
  struct tks_stats *s = sample();
  struct tks_buf b = {0};
  ASSERT_EQ(tks_stats_json(s, &b), 0);
  ASSERT_STR_EQ(b.data,
                "{\"version\":\"1.2\",\"ticks\":{\"accepted\":5,\"rejected_by_reason\":{\"bad_type\":2,"
                "\"too_large\":1},\"delta\":-3},\"memory\":{\"bytes_per_tick\":33.25,"
                "\"note\":\"a \\\"quoted\\\" word\"}}");
  tks_buf_finish(&b);
  tks_stats_destroy(s);
}

TEST(prometheus_groups_families_with_help_and_type_once) {
  struct tks_stats *s = sample();
  struct tks_buf b = {0};
  ASSERT_EQ(tks_stats_prometheus(s, &b), 0);
  ASSERT_CONTAINS(b.data, "# HELP tickslab_ticks_accepted_total Ticks accepted\n"
                          "# TYPE tickslab_ticks_accepted_total counter\n"
                          "tickslab_ticks_accepted_total 5\n");
  ASSERT_CONTAINS(b.data, "# TYPE tickslab_ticks_rejected_by_reason_total counter\n"
                          "tickslab_ticks_rejected_by_reason_total{reason=\"bad_type\"} 2\n"
                          "tickslab_ticks_rejected_by_reason_total{reason=\"too_large\"} 1\n");
  ASSERT_CONTAINS(b.data, "tickslab_build_info{version=\"1.2\"} 1\n");
  ASSERT_CONTAINS(b.data, "# TYPE tickslab_memory_bytes_per_tick gauge\ntickslab_memory_bytes_per_tick 33.25\n");
  ASSERT_NOT_CONTAINS(b.data, "delta"); /* no help: not exported */
  const char *first = strstr(b.data, "# HELP tickslab_ticks_rejected_by_reason_total");
  ASSERT(first && !strstr(first + 1, "# HELP tickslab_ticks_rejected_by_reason_total"));
  tks_buf_finish(&b);
  tks_stats_destroy(s);
}

TEST(text_is_one_path_value_per_line) {
  struct tks_stats *s = sample();
  struct tks_buf b = {0};
  ASSERT_EQ(tks_stats_text(s, &b), 0);
  ASSERT_CONTAINS(b.data, "version 1.2\nticks.accepted 5\n");
  ASSERT_CONTAINS(b.data, "ticks.delta -3\nmemory.bytes_per_tick 33.25\n");
  ASSERT_EQ(tks_stats_count(s), 7);
  tks_buf_finish(&b);
  tks_stats_destroy(s);
}

TEST(a_prefix_split_in_two_is_refused_rather_than_repeated) {
  struct tks_stats *s = tks_stats_create();
  tks_stats_u64(s, "ingest.port", 1, TKS_STAT_GAUGE, NULL, NULL, NULL);
  tks_stats_u64(s, "ticks.accepted", 2, TKS_STAT_GAUGE, NULL, NULL, NULL);
  tks_stats_u64(s, "ingest.held", 0, TKS_STAT_GAUGE, NULL, NULL, NULL);
  struct tks_buf b = {0};
  ASSERT_EQ(tks_stats_json(s, &b), -EINVAL);
  tks_buf_finish(&b);
  tks_stats_destroy(s);
}

TEST(empty_collection_is_an_empty_object) {
  struct tks_stats *s = tks_stats_create();
  struct tks_buf b = {0};
  ASSERT_EQ(tks_stats_json(s, &b), 0);
  ASSERT_STR_EQ(b.data, "{}");
  tks_buf_finish(&b);
  tks_stats_destroy(s);
  tks_stats_destroy(NULL);
}

TEST(a_descriptor_with_a_star_fills_in_the_path_and_labels_the_sample) {
  static const struct tks_stat by_reason = {
      "ticks.rejected_by_reason.*", TKS_STAT_COUNTER,           TKS_UNIT_NONE,
      "Rejected, by reason",        "ticks_rejected_by_reason", "reason"};
  static const struct tks_stat plain = {
      "ticks.accepted", TKS_STAT_COUNTER, TKS_UNIT_TICKS, "Accepted", NULL, NULL};
  struct tks_stats *s = tks_stats_create();
  tks_stat_u64(s, &plain, 7);
  tks_stat_u64_of(s, &by_reason, "bad_type", 2);
  tks_stat_u64_of(s, &by_reason, "malformed", 3);
  struct tks_buf b = {0};
  ASSERT_EQ(tks_stats_text(s, &b), 0);
  ASSERT_STR_EQ(b.data, "ticks.accepted 7\nticks.rejected_by_reason.bad_type 2\n"
                        "ticks.rejected_by_reason.malformed 3\n");
  b.len = 0;
  ASSERT_EQ(tks_stats_prometheus(s, &b), 0);
  ASSERT_CONTAINS(b.data, "tickslab_ticks_accepted_total 7\n");
  ASSERT_CONTAINS(b.data, "tickslab_ticks_rejected_by_reason_total{reason=\"bad_type\"} 2\n");
  ASSERT_CONTAINS(b.data, "tickslab_ticks_rejected_by_reason_total{reason=\"malformed\"} 3\n");
  tks_buf_finish(&b);
  tks_stats_destroy(s);
}

static const struct tks_stat ST_NAMED = TKS_STAT_NAMED(
    "undeclared.*.ticks", COUNTER, TICKS, "Ticks carrying it", "undeclared_ticks", "field");

TEST(a_name_in_a_path_is_safe_in_every_format) {
  struct tks_stats *s = tks_stats_create();
  const char *names[] = {"venue name", "a.b", "q\"uo\\te", "prix\xe2\x82\xac"};
  for (unsigned i = 0; i < 4; i++) tks_stat_u64_of(s, &ST_NAMED, names[i], i + 1);
  struct tks_buf b = {0};
  /* JSON: the name as a key, JSON-escaped, its dot as '_'. */
  ASSERT_EQ(tks_stats_json(s, &b), 0);
  ASSERT_STR_EQ(b.data, "{\"undeclared\":{\"venue name\":{\"ticks\":1},\"a_b\":{\"ticks\":2},"
                        "\"q\\\"uo\\\\te\":{\"ticks\":3},\"prix\xe2\x82\xac\":{\"ticks\":4}}}");
  /* Prometheus: the exact name, escaped as the exposition format says. */
  b.len = 0;
  ASSERT_EQ(tks_stats_prometheus(s, &b), 0);
  ASSERT_CONTAINS(b.data, "tickslab_undeclared_ticks_total{field=\"venue name\"} 1\n");
  ASSERT_CONTAINS(b.data, "tickslab_undeclared_ticks_total{field=\"a.b\"} 2\n");
  ASSERT_CONTAINS(b.data, "tickslab_undeclared_ticks_total{field=\"q\\\"uo\\\\te\"} 3\n");
  ASSERT_CONTAINS(b.data, "tickslab_undeclared_ticks_total{field=\"prix\xe2\x82\xac\"} 4\n");
  /* Text: one "path value" line each, the path in [A-Za-z0-9_.]. */
  b.len = 0;
  ASSERT_EQ(tks_stats_text(s, &b), 0);
  ASSERT_STR_EQ(b.data, "undeclared.venue_name.ticks 1\nundeclared.a_b.ticks 2\n"
                        "undeclared.q_uo_te.ticks 3\nundeclared.prix___.ticks 4\n");
  tks_buf_finish(&b);
  tks_stats_destroy(s);
}

TEST(prometheus_names_carry_the_unit_and_one_total) {
  static const struct {
    const char *prom;
    enum tks_stat_kind kind;
    enum tks_stat_unit unit;
    const char *want;
  } cases[] = {
      {"connections_total", TKS_STAT_COUNTER, TKS_UNIT_NONE, "tickslab_connections_total"},
      {"ticks_accepted", TKS_STAT_COUNTER, TKS_UNIT_TICKS, "tickslab_ticks_accepted_total"},
      {"limits_max_memory", TKS_STAT_GAUGE, TKS_UNIT_BYTES, "tickslab_limits_max_memory_bytes"},
      {"memory_rss_bytes", TKS_STAT_GAUGE, TKS_UNIT_BYTES, "tickslab_memory_rss_bytes"},
      {"limits_evicted_bytes", TKS_STAT_COUNTER, TKS_UNIT_BYTES,
       "tickslab_limits_evicted_bytes_total"},
      {"lifecycle_watchdog_usec", TKS_STAT_GAUGE, TKS_UNIT_USEC,
       "tickslab_lifecycle_watchdog_seconds"},
      {"checkpoint_seconds", TKS_STAT_GAUGE, TKS_UNIT_SECONDS, "tickslab_checkpoint_seconds"},
      {"retention", TKS_STAT_GAUGE, TKS_UNIT_SECONDS, "tickslab_retention_seconds"},
      {"limits_paused_seconds", TKS_STAT_COUNTER, TKS_UNIT_SECONDS,
       "tickslab_limits_paused_seconds_total"},
      {"memory_bytes_per_tick", TKS_STAT_GAUGE, TKS_UNIT_BYTES_PER_TICK,
       "tickslab_memory_bytes_per_tick"},
  };
  for (unsigned i = 0; i < sizeof cases / sizeof *cases; i++) {
    char out[128];
    tks_stats_prom_name(cases[i].prom, cases[i].kind, cases[i].unit, out, sizeof out);
    ASSERT_STR_EQ(out, cases[i].want);
  }
}

static const struct tks_stat ST_USEC = TKS_STAT("lifecycle.watchdog_usec", GAUGE, USEC,
                                                "The watchdog interval");

TEST(microseconds_are_given_in_seconds_to_prometheus_only) {
  struct tks_stats *s = tks_stats_create();
  tks_stat_u64(s, &ST_USEC, 30000000);
  struct tks_buf b = {0};
  ASSERT_EQ(tks_stats_prometheus(s, &b), 0);
  ASSERT_CONTAINS(b.data, "# TYPE tickslab_lifecycle_watchdog_seconds gauge\n");
  ASSERT_CONTAINS(b.data, "tickslab_lifecycle_watchdog_seconds 30\n");
  b.len = 0;
  ASSERT_EQ(tks_stats_json(s, &b), 0);
  ASSERT_STR_EQ(b.data, "{\"lifecycle\":{\"watchdog_usec\":30000000}}");
  tks_buf_finish(&b);
  tks_stats_destroy(s);
}

TEST(process_families_come_from_proc) {
  struct tks_buf b = {0};
  ASSERT_EQ(tks_stats_process(&b, 0), 0);
  static const char *const want[] = {
      "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ",
      "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds ",
      "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes ",
      "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes ",
      "# TYPE process_open_fds gauge\nprocess_open_fds ",
  };
  for (unsigned i = 0; i < sizeof want / sizeof *want; i++) ASSERT_CONTAINS(b.data, want[i]);
  const char *rss = strstr(b.data, "\nprocess_resident_memory_bytes ");
  ASSERT(rss && strtod(rss + 31, NULL) > 100000);
  /* From /proc: about when this test started, not the fallback given. */
  b.len = 0;
  ASSERT_EQ(tks_stats_process(&b, 1.0), 0);
  const char *st = strstr(b.data, "\nprocess_start_time_seconds ");
  ASSERT(st);
  double started = strtod(st + 28, NULL);
  ASSERT(started > (double)time(NULL) - 3600 && started <= (double)time(NULL) + 1);
  tks_buf_finish(&b);
}

TEST_MAIN()

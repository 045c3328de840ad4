/* Unit tests of lib/advice.c: the schema advice, from hand-made figures. */
#include "advice.h"
#include "test.h"

static struct tks_usage usage;
static struct tks_schema schema;

/* An input over the default schema and an empty usage table. */
static struct tks_advice_input input(enum tks_mode mode) {
  tks_schema_default(&schema);
  tks_usage_init(&usage);
  return (struct tks_advice_input){.schema = &schema, .mode = mode, .usage = &usage};
}

static struct tks_usage_field *field(const char *name, unsigned types) {
  struct tks_usage_field *f = tks_usage_get(&usage, name, strlen(name));
  ASSERT(f != NULL);
  f->types = types;
  return f;
}

/* A field kept in n ticks (in overflow maps or dynamic objects) costing cost bytes. */
static struct tks_usage_field *kept(const char *name, unsigned types, uint64_t n, uint64_t cost) {
  struct tks_usage_field *f = field(name, types);
  f->ticks = f->kept = n;
  f->cost_bytes = cost;
  return f;
}

/* A field whose n ticks were rejected (slotted mode). */
static struct tks_usage_field *rejected(const char *name, unsigned types, uint64_t n) {
  struct tks_usage_field *f = field(name, types);
  f->ticks = f->rejected = n;
  return f;
}

static struct tks_buf out;

static const char *advise(const struct tks_advice_input *in) {
  tks_buf_finish(&out);
  tks_buf_init(&out);
  ASSERT_EQ(tks_advice(in, &out), 0);
  ASSERT(out.data != NULL);
  return out.data;
}

/* The nth line (from 0) of the output, copied, or NULL. */
static const char *line(unsigned nth) {
  static char copy[4096];
  const char *p = out.data;
  for (unsigned i = 0; p && i < nth; i++) {
    p = strchr(p, '\n');
    if (p) p++;
  }
  if (!p || !*p) return NULL;
  const char *e = strchr(p, '\n');
  size_t n = e ? (size_t)(e - p) : strlen(p);
  if (n >= sizeof copy) n = sizeof copy - 1;
  memcpy(copy, p, n);
  copy[n] = '\0';
  return copy;
}

static unsigned lines(void) {
  unsigned n = 0;
  for (const char *p = out.data; p && *p; p++) n += *p == '\n';
  return n;
}

/* The first line holding both a and b, or NULL. */
static const char *line_with(const char *a, const char *b) {
  for (unsigned i = 0; line(i); i++) {
    const char *l = line(i);
    if (strstr(l, a) && (!b || strstr(l, b))) return l;
  }
  return NULL;
}

static void assert_json_lines(void) {
  ASSERT(out.len > 0);
  ASSERT_EQ(out.data[out.len - 1], '\n');
  for (unsigned i = 0; i < lines(); i++) {
    const char *l = line(i);
    if (strncmp(l, "{\"advice\":", 10) != 0) TEST_FAIL("line %u does not open an advice: %s", i, l);
    if (l[strlen(l) - 1] != '}') TEST_FAIL("line %u does not close its object: %s", i, l);
    ASSERT_CONTAINS(l, ",\"text\":\"");
  }
}

/*
 * A fallback store of 100 million ticks, 37% of which carry `exchange`:
 * 63M slotted records (33 bytes each with block overhead) and 37M overflow
 * ticks, each a 40-byte entry (the 32-byte record and the map pointer, 41.2
 * with block overhead) and a 40-byte overflow map (8 header + 8 index + 16
 * entry + 4 string bytes, rounded up to 8).  `exchange` costs the map and
 * the pointer: 48 bytes a tick.  5084400000 bytes in all, 50.8 a tick.
 */
static struct tks_advice_input fallback_workload(void) {
  struct tks_advice_input in = input(TKS_MODE_FALLBACK);
  in.ticks_accepted = 100000000;
  in.repr = (struct tks_store_repr){.slotted_ticks = 63000000,
                                    .slotted_bytes = 2079000000,
                                    .overflow_ticks = 37000000,
                                    .overflow_entry_bytes = 1524400000,
                                    .overflow_map_bytes = 1480000000};
  in.symbol_bytes = 1000000;
  in.symbols = 100;
  struct tks_usage_field *f = kept("exchange", TKS_USAGE_STRING, 37000000, 48 * 37000000ull);
  f->string_bytes = 4 * 37000000ull; /* "XNAS" */
  return in;
}

TEST(frequent_string_field_in_fallback_mode_is_advised_as_a_symbol_slot) {
  struct tks_advice_input in = fallback_workload();
  advise(&in);
  const char *l = line(0);
  ASSERT(l != NULL);
  ASSERT_CONTAINS(l, "{\"advice\":\"declare_field\"");
  /* Share 37M of 100M; cost 1776000000 B; slot: 8 more bytes on 100M ticks
   * (800000000) plus 4 bytes x 65536 values of string table (262144); saved
   * 975737856 of 5084400000 leaves 4108662144, 41.1 a tick. */
  ASSERT_CONTAINS(l, "field `exchange` is in 37.0% of ticks and costs 1.7 GiB in overflow maps; "
                     "declared as a `symbol` slot it would cost at most 763.2 MiB "
                     "(the record grows from 32 to 40 bytes, 762.9 MiB over 100000000 stored ticks, "
                     "plus at most 256.0 KiB of string table): 930.5 MiB less, "
                     "41.1 bytes per tick instead of 50.8");
  ASSERT_CONTAINS(l, "\"field\":\"exchange\"");
  ASSERT_CONTAINS(l, "\"type\":\"symbol\"");
  ASSERT_CONTAINS(l, "\"share_pct\":37.0");
  ASSERT_CONTAINS(l, "\"cost_bytes\":1776000000");
  ASSERT_CONTAINS(l, "\"record_size\":32,\"new_record_size\":40");
  ASSERT_CONTAINS(l, "\"record_bytes\":800000000");
  ASSERT_CONTAINS(l, "\"string_table_bytes_max\":262144");
  ASSERT_CONTAINS(l, "\"slot_bytes\":800262144");
  ASSERT_CONTAINS(l, "\"saved_bytes\":975737856");
  ASSERT_CONTAINS(l, "\"bytes_per_tick\":50.8");
  ASSERT_CONTAINS(l, "\"new_bytes_per_tick\":41.1");
  ASSERT_NOT_CONTAINS(l, "optional)");
  tks_buf_finish(&out);
}

TEST(fallback_mode_with_overflow_ticks_most_of_memory_says_so_after_the_fields) {
  struct tks_advice_input in = fallback_workload();
  advise(&in);
  ASSERT_EQ(lines(), 2);
  const char *l = line(1);
  /* 1524400000 + 1480000000 = 3004400000 of 5084400000 bytes */
  ASSERT_STR_EQ(l, "{\"advice\":\"overflow_share\",\"text\":\"ticks with undeclared fields are "
                   "37.0% of ticks (37000000 of 100000000) but 59.1% of store memory (2.8 GiB of "
                   "4.7 GiB, slotted records plus overflow maps)\",\"overflow_ticks\":37000000,"
                   "\"ticks\":100000000,\"ticks_pct\":37.0,\"overflow_bytes\":3004400000,"
                   "\"store_bytes\":5084400000,\"bytes_pct\":59.1}");
  assert_json_lines();
  tks_buf_finish(&out);
}

TEST(overflow_share_is_said_only_when_over_half_of_memory_as_shown) {
  struct tks_advice_input in = fallback_workload();
  tks_usage_init(&usage); /* no field lines: only the share, or none */
  /* 1000 slotted ticks of 2000 bytes; overflow bytes 1000 + 1002 = 2002 of
   * 4002: 50.02%, shown as 50.0%, not over half. */
  in.ticks_accepted = 1010;
  in.symbol_bytes = 0;
  in.repr = (struct tks_store_repr){.slotted_ticks = 1000,
                                    .slotted_bytes = 2000,
                                    .overflow_ticks = 10,
                                    .overflow_entry_bytes = 1000,
                                    .overflow_map_bytes = 1002};
  advise(&in);
  ASSERT_STR_EQ(out.data, "{\"advice\":\"none\",\"text\":\"nothing to change: 1010 ticks, 10 of "
                          "them with overflow maps, 4.0 bytes per tick\",\"ticks\":1010,"
                          "\"overflow_ticks\":10,\"dynamic_ticks\":0,\"store_bytes\":4002,"
                          "\"bytes_per_tick\":4.0}\n");
  in.repr.overflow_map_bytes = 1006; /* 2006 of 4006: 50.07%, shown as 50.1% */
  advise(&in);
  ASSERT_EQ(lines(), 1);
  ASSERT_CONTAINS(line(0), "{\"advice\":\"overflow_share\",\"text\":\"ticks with undeclared fields "
                           "are 1.0% of ticks (10 of 1010) but 50.1% of store memory (2.0 KiB of "
                           "3.9 KiB, slotted records plus overflow maps)\"");
  tks_buf_finish(&out);
}

TEST(long_string_values_are_advised_as_a_string_slot) {
  struct tks_advice_input in = fallback_workload();
  tks_usage_init(&usage);
  struct tks_usage_field *f = kept("comment", TKS_USAGE_STRING, 20000000, 3000000000);
  f->string_bytes = 40 * 20000000ull; /* 40 bytes a value: not a code */
  advise(&in);
  const char *l = line_with("\"declare_field\"", "`comment`");
  ASSERT(l != NULL);
  ASSERT_CONTAINS(l, "declared as a `string` slot");
  ASSERT_CONTAINS(l, "\"string_table_bytes_max\":2621440"); /* 40 x min(20M, 65536) */
  tks_buf_finish(&out);
}

TEST(int_field_is_advised_as_i64_and_float_fields_as_f64) {
  struct tks_advice_input in = fallback_workload();
  tks_usage_init(&usage);
  kept("seq", TKS_USAGE_INT, 30000000, 3000000000);
  kept("bid", TKS_USAGE_FLOAT, 20000000, 2000000000);
  kept("ask", TKS_USAGE_INT | TKS_USAGE_FLOAT, 10000000, 1000000000);
  kept("odd_lot", TKS_USAGE_BOOL, 5000000, 900000000);
  advise(&in);
  const char *l = line_with("`seq`", NULL);
  ASSERT_CONTAINS(l, "\"advice\":\"declare_field\"");
  ASSERT_CONTAINS(l, "declared as an `i64` slot it would cost 762.9 MiB (the record grows");
  ASSERT_CONTAINS(l, "\"type\":\"i64\"");
  ASSERT_CONTAINS(l, "\"string_table_bytes_max\":0");
  ASSERT_CONTAINS(l, "\"share_pct\":30.0");
  ASSERT_CONTAINS(line_with("`bid`", NULL), "\"type\":\"f64\"");
  ASSERT_CONTAINS(line_with("`ask`", NULL), "\"type\":\"f64\"");
  ASSERT_CONTAINS(line_with("`odd_lot`", NULL), "\"type\":\"bool\"");
  /* Most bytes saved first: seq, bid, ask, odd_lot. */
  ASSERT_CONTAINS(line(0), "`seq`");
  ASSERT_CONTAINS(line(1), "`bid`");
  ASSERT_CONTAINS(line(2), "`ask`");
  ASSERT_CONTAINS(line(3), "`odd_lot`");
  tks_buf_finish(&out);
}

TEST(nil_mixed_in_still_declares_the_type_and_says_make_it_optional) {
  struct tks_advice_input in = fallback_workload();
  tks_usage_init(&usage);
  kept("seq", TKS_USAGE_INT | TKS_USAGE_NIL, 30000000, 3000000000);
  advise(&in);
  const char *l = line(0);
  ASSERT_CONTAINS(l, "\"advice\":\"declare_field\"");
  ASSERT_CONTAINS(l, "\"type\":\"i64\"");
  ASSERT_CONTAINS(l, " (nil seen: make it optional)\"");
  ASSERT_CONTAINS(l, "\"optional\":true");
  tks_buf_finish(&out);
}

TEST(mixed_types_give_a_mixed_types_line_and_no_declaration) {
  struct tks_advice_input in = fallback_workload();
  tks_usage_init(&usage);
  kept("venue", TKS_USAGE_STRING | TKS_USAGE_INT, 12000000, 1500000000);
  kept("note", TKS_USAGE_NIL, 1000, 100000);
  advise(&in);
  ASSERT(line_with("declare_field", NULL) == NULL);
  const char *l = line_with("\"mixed_types\"", NULL);
  ASSERT(l != NULL);
  ASSERT_CONTAINS(l, "field `venue` is in 12.0% of ticks and costs 1.4 GiB in overflow maps; its "
                     "values were of types string and int, and no one slot type holds them all: it "
                     "stays undeclared, in the overflow maps\"");
  ASSERT_CONTAINS(l, "\"types\":[\"string\",\"int\"]");
  l = line_with("\"nil_only\"", NULL);
  ASSERT(l != NULL);
  ASSERT_CONTAINS(l, "field `note` is in 0.0% of ticks");
  ASSERT_CONTAINS(l, "no type to declare it as");
  assert_json_lines();
  tks_buf_finish(&out);
}

TEST(a_rare_field_whose_slot_costs_more_than_its_objects_is_kept_dynamic) {
  struct tks_advice_input in = fallback_workload();
  tks_usage_init(&usage);
  kept("halt_reason", TKS_USAGE_INT, 1000, 150000); /* 8 B more x 100M ticks is far more */
  advise(&in);
  ASSERT(line_with("declare_field", NULL) == NULL);
  const char *l = line_with("\"keep_dynamic\"", NULL);
  ASSERT(l != NULL);
  ASSERT_CONTAINS(l, "costs 146.5 KiB in overflow maps; declared as an `i64` slot it would cost "
                     "762.9 MiB");
  ASSERT_CONTAINS(l, "762.8 MiB more than now: keep it undeclared, in an overflow map in fallback "
                     "mode\"");
  ASSERT_CONTAINS(l, "\"saved_bytes\":-799850000");
  tks_buf_finish(&out);
}

TEST(slotted_mode_with_rejections_advises_fallback_naming_the_top_fields) {
  struct tks_advice_input in = input(TKS_MODE_SLOTTED);
  in.ticks_accepted = 900;
  in.ticks_rejected = 100;
  in.rejected_unknown_field = 100;
  in.repr = (struct tks_store_repr){.slotted_ticks = 900, .slotted_bytes = 29700};
  rejected("seq", TKS_USAGE_INT, 30);
  rejected("exchange", TKS_USAGE_STRING, 60)->string_bytes = 240;
  rejected("venue", TKS_USAGE_STRING, 20)->string_bytes = 60;
  rejected("odd_lot", TKS_USAGE_BOOL, 5);
  advise(&in);
  const char *l = line(0);
  ASSERT_CONTAINS(l, "{\"advice\":\"use_fallback\"");
  /* A typical rejected tick, kept in fallback mode: the 32-byte record, an
   * 8-byte map pointer, and a map of ceil(115/100) = 2 fields (4 index
   * slots) and ceil(300/100) = 3 string bytes: 8 + 8 + 2 x 16 + 3 -> 56. */
  ASSERT_CONTAINS(l, "100 ticks (10.0% of those received) were rejected for undeclared fields: "
                     "`exchange` (60), `seq` (30), `venue` (20) and 1 more; declare them (see below) "
                     "or set store.mode: fallback to keep them as slotted records plus overflow maps "
                     "at about 96 bytes each, 9.4 KiB in all\"");
  ASSERT_CONTAINS(l, "\"fields\":[{\"field\":\"exchange\",\"rejected\":60},{\"field\":\"seq\","
                     "\"rejected\":30},{\"field\":\"venue\",\"rejected\":20}],\"more_fields\":1");
  ASSERT_CONTAINS(l, "\"overflow_bytes_per_tick\":96,\"overflow_bytes\":9600}");
  /* Then one declaration per rejected field, most ticks lost first. */
  ASSERT_CONTAINS(line(1), "\"advice\":\"declare_field\",\"text\":\"field `exchange` was in 6.0% of "
                           "ticks: 60 ticks lost, rejected as undeclared; declared as a `symbol` slot "
                           "it would cost at most 7.3 KiB (the record grows from 32 to 40 bytes, "
                           "7.0 KiB over 900 stored ticks, plus at most 240 B of string table) and "
                           "keep those ticks\"");
  ASSERT_CONTAINS(line(1), "\"cost_bytes\":0,\"ticks_lost\":60");
  ASSERT_CONTAINS(line(2), "`seq`");
  ASSERT_CONTAINS(line(3), "`venue`");
  ASSERT_CONTAINS(line(4), "`odd_lot`");
  ASSERT_EQ(lines(), 5);
  assert_json_lines();
  tks_buf_finish(&out);
}

TEST(slotted_mode_rejections_without_tracked_names_still_advise_fallback) {
  struct tks_advice_input in = input(TKS_MODE_SLOTTED);
  in.ticks_accepted = 10;
  in.ticks_rejected = 15; /* 5 for other reasons */
  in.rejected_unknown_field = 10;
  in.repr = (struct tks_store_repr){.slotted_ticks = 10, .slotted_bytes = 330};
  usage.overflow = 10;
  advise(&in);
  /* No names: one undeclared field a tick, no strings: 32 + 8 + (8 + 8 + 16). */
  ASSERT_CONTAINS(line(0), "10 ticks (40.0% of those received) were rejected for undeclared "
                           "fields; declare the fields or set store.mode: fallback to keep them as "
                           "slotted records plus overflow maps at about 72 bytes each, 720 B in all\"");
  ASSERT_CONTAINS(line(1), "{\"advice\":\"untracked_fields\"");
  assert_json_lines();
  tks_buf_finish(&out);
}

/*
 * A dynamic store of 1M ticks over the default schema: each a 24-byte
 * series entry (24.5 with block overhead) and an object of the 5 declared
 * fields (8 header + 8 index + 5 x 16 = 96 bytes): 120.5 bytes a tick.
 */
TEST(dynamic_mode_advises_slotted_with_the_bytes_per_tick) {
  struct tks_advice_input in = input(TKS_MODE_DYNAMIC);
  in.ticks_accepted = 1000000;
  in.repr = (struct tks_store_repr){
      .dynamic_ticks = 1000000, .dynamic_entry_bytes = 24500000, .dynamic_object_bytes = 96000000};
  advise(&in);
  ASSERT_EQ(lines(), 1);
  /* 120.5 B a tick now; 32 x 1.03 = 32.96 a tick slotted: 120500000 - 32960000 */
  ASSERT_STR_EQ(line(0),
                "{\"advice\":\"use_slotted\",\"text\":\"all 1000000 ticks are held as "
                "dynamic objects at 120.5 bytes per tick; in slotted mode they would take "
                "at most 33.0 bytes per tick (the 32-byte record plus block overhead, less "
                "packed): 83.5 MiB less; set store.mode: slotted\",\"mode\":\"slotted\","
                "\"ticks\":1000000,\"ticks_slotted\":1000000,\"ticks_overflow\":0,"
                "\"dynamic_bytes_per_tick\":120.5,\"slotted_bytes_per_tick\":33.0,"
                "\"overflow_bytes_per_tick\":0,\"record_size\":32,"
                "\"dynamic_bytes\":120500000,\"new_bytes\":32960000,"
                "\"saved_bytes\":87540000}");
  tks_buf_finish(&out);
}

TEST(dynamic_mode_with_undeclared_fields_advises_fallback_with_overflow_maps) {
  struct tks_advice_input in = input(TKS_MODE_DYNAMIC);
  in.ticks_accepted = 1000000;
  /* 750000 objects of 96 bytes; 250000 carry `seq` too: 6 fields (16 index
   * slots) and 4 string bytes, 8 + 16 + 6 x 16 + 4 -> 128 bytes. */
  in.repr = (struct tks_store_repr){
      .dynamic_ticks = 1000000, .dynamic_entry_bytes = 24500000, .dynamic_object_bytes = 104000000};
  kept("seq", TKS_USAGE_INT | TKS_USAGE_STRING, 250000, 250000 * 16 + 1000000)->string_bytes =
      1000000;
  advise(&in);
  /* 128500000 B now; in fallback mode 750000 x 32.96 = 24720000 B of slotted
   * records and 250000 overflow ticks of 32 + 8 + (8 + 8 + 16 + 4 -> 40) =
   * 80 B, 20000000 B: 44720000 B. */
  ASSERT_EQ(lines(), 2);
  ASSERT_STR_EQ(
      line(0),
      "{\"advice\":\"use_slotted\",\"text\":\"all 1000000 ticks are held as "
      "dynamic objects at 128.5 bytes per tick; in fallback mode the 750000 that "
      "carry no undeclared field would take at most 33.0 bytes per tick (the 32-byte "
      "record plus block overhead, less packed) and the other 250000 about 80 bytes each as "
      "slotted records plus overflow maps: 79.9 MiB less; set store.mode: "
      "fallback\",\"mode\":\"fallback\",\"ticks\":1000000,"
      "\"ticks_slotted\":750000,\"ticks_overflow\":250000,"
      "\"dynamic_bytes_per_tick\":128.5,\"slotted_bytes_per_tick\":33.0,"
      "\"overflow_bytes_per_tick\":80,\"record_size\":32,"
      "\"dynamic_bytes\":128500000,\"new_bytes\":44720000,"
      "\"saved_bytes\":83780000}");
  /* After it, the field: its cost is its entries and strings in the objects. */
  ASSERT_CONTAINS(line(1), "{\"advice\":\"mixed_types\",\"text\":\"field `seq` is in 25.0% of ticks "
                           "and costs 4.8 MiB in the dynamic objects; its values were of types string "
                           "and int, and no one slot type holds them all: it stays undeclared, in the "
                           "dynamic objects\"");
  tks_buf_finish(&out);
}

TEST(dynamic_mode_where_every_tick_carries_an_undeclared_field_advises_fallback) {
  struct tks_advice_input in = input(TKS_MODE_DYNAMIC);
  in.ticks_accepted = 1000;
  /* Objects of 6 fields (16 index slots) and 4 string bytes: 8 + 16 + 6 x 16
   * + 4 -> 128 bytes, and a 24-byte entry: 152 a tick.  In fallback mode 32
   * + 8 + (8 + 8 + 16 + 4 -> 40) = 80: 72000 B less. */
  in.repr = (struct tks_store_repr){
      .dynamic_ticks = 1000, .dynamic_entry_bytes = 24000, .dynamic_object_bytes = 128000};
  kept("venue", TKS_USAGE_STRING, 1000, 20000)->string_bytes = 4000;
  advise(&in);
  const char *l = line_with("\"use_slotted\"", NULL);
  ASSERT(l != NULL);
  ASSERT_CONTAINS(l, "\"text\":\"all 1000 ticks are held as dynamic objects at 152.0 bytes per "
                     "tick; all carry undeclared fields, and in fallback mode they would take about "
                     "80 bytes each as slotted records plus overflow maps: 70.3 KiB less; set "
                     "store.mode: fallback\"");
  ASSERT_CONTAINS(l, "\"ticks_slotted\":0,\"ticks_overflow\":1000,");
  ASSERT_CONTAINS(l, "\"new_bytes\":80000,\"saved_bytes\":72000}");
  tks_buf_finish(&out);
}

TEST(dynamic_mode_where_overflow_maps_would_cost_more_gives_no_use_slotted) {
  struct tks_advice_input in = input(TKS_MODE_DYNAMIC);
  in.ticks_accepted = 1000;
  /* Every tick carries 3 undeclared fields with 30 string bytes: in
   * fallback 32 + 8 + (8 + 8 + 3 x 16 + 30 -> 96) = 136 B each, more than
   * the 130 B a tick they take now. */
  in.repr = (struct tks_store_repr){
      .dynamic_ticks = 1000, .dynamic_entry_bytes = 24000, .dynamic_object_bytes = 106000};
  kept("a", TKS_USAGE_STRING, 1000, 26000)->string_bytes = 10000;
  kept("b", TKS_USAGE_STRING, 1000, 26000)->string_bytes = 10000;
  kept("c", TKS_USAGE_STRING, 1000, 26000)->string_bytes = 10000;
  advise(&in);
  ASSERT(line_with("\"use_slotted\"", NULL) == NULL);
  /* One declaration would save in fallback or slotted mode only. */
  ASSERT_CONTAINS(line(0), "costs 25.4 KiB in the dynamic objects; declared as a `symbol` slot");
  ASSERT_CONTAINS(line(0), ", once store.mode is fallback or slotted");
  tks_buf_finish(&out);
}

TEST(nothing_to_change_reports_the_real_tick_count_and_bytes_per_tick) {
  struct tks_advice_input in = input(TKS_MODE_SLOTTED);
  in.ticks_accepted = 1000;
  in.repr = (struct tks_store_repr){.slotted_ticks = 1000, .slotted_bytes = 33000};
  in.symbol_bytes = 500;
  advise(&in);
  ASSERT_STR_EQ(out.data, "{\"advice\":\"none\",\"text\":\"nothing to change: 1000 ticks, all "
                          "slotted, 33.5 bytes per tick\",\"ticks\":1000,\"overflow_ticks\":0,"
                          "\"dynamic_ticks\":0,\"store_bytes\":33500,\"bytes_per_tick\":33.5}\n");
  /* Overflow and dynamic ticks too (a store whose mode changed): both named;
   * 34900 B over 1015 ticks. */
  in.mode = TKS_MODE_FALLBACK;
  in.repr.overflow_ticks = 10;
  in.repr.overflow_entry_bytes = 400;
  in.repr.overflow_map_bytes = 400;
  in.repr.dynamic_ticks = 5;
  in.repr.dynamic_entry_bytes = 120;
  in.repr.dynamic_object_bytes = 480;
  advise(&in);
  ASSERT_STR_EQ(out.data, "{\"advice\":\"none\",\"text\":\"nothing to change: 1015 ticks, 10 of "
                          "them with overflow maps and 5 of them dynamic objects, 34.4 bytes per "
                          "tick\",\"ticks\":1015,\"overflow_ticks\":10,\"dynamic_ticks\":5,"
                          "\"store_bytes\":34900,\"bytes_per_tick\":34.4}\n");
  tks_buf_finish(&out);
}

TEST(an_empty_store_gives_none_in_every_mode_without_dividing_by_zero) {
  enum tks_mode modes[] = {TKS_MODE_SLOTTED, TKS_MODE_DYNAMIC, TKS_MODE_FALLBACK};
  for (unsigned i = 0; i < 3; i++) {
    struct tks_advice_input in = input(modes[i]);
    advise(&in);
    ASSERT_STR_EQ(out.data, "{\"advice\":\"none\",\"text\":\"nothing to change: 0 ticks stored\","
                            "\"ticks\":0,\"overflow_ticks\":0,\"dynamic_ticks\":0,"
                            "\"store_bytes\":0,\"bytes_per_tick\":0.0}\n");
  }
  /* Usage with ticks but nothing stored or accepted: shares are 0.0%. */
  struct tks_advice_input in = input(TKS_MODE_FALLBACK);
  kept("seq", TKS_USAGE_INT, 10, 1000);
  advise(&in);
  assert_json_lines();
  ASSERT_CONTAINS(line(0), "0.0% of ticks");
  tks_buf_finish(&out);
}

TEST(a_schema_already_at_32_fields_says_the_field_cannot_be_added) {
  struct tks_advice_input in = fallback_workload();
  while (schema.nfields < TKS_SCHEMA_MAX_FIELDS) {
    struct tks_field *f = &schema.fields[schema.nfields];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "b%u", schema.nfields);
    f->type = TKS_TYPE_BOOL;
    schema.nfields++;
  }
  char err[128];
  ASSERT_EQ(tks_schema_layout(&schema, err, sizeof err), 0);
  advise(&in);
  ASSERT(line_with("declare_field", NULL) == NULL);
  const char *l = line_with("\"cannot_declare\"", NULL);
  ASSERT(l != NULL);
  ASSERT_CONTAINS(l, "field `exchange` is in 37.0% of ticks and costs 1.7 GiB in overflow maps, "
                     "but it cannot be declared as a `symbol` slot: the schema already declares 32 "
                     "fields, the most it can hold");
  ASSERT_CONTAINS(l, "\"reason\":\"the schema already declares 32 fields, the most it can hold\"");
  tks_buf_finish(&out);
}

TEST(a_record_that_would_outgrow_its_limit_says_so) {
  struct tks_advice_input in = fallback_workload();
  for (unsigned i = 0; i < 12; i++) { /* 32 + 96 = 128 bytes, the most */
    struct tks_field *f = &schema.fields[schema.nfields++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "q%u", i);
    f->type = TKS_TYPE_I64;
  }
  char err[128];
  ASSERT_EQ(tks_schema_layout(&schema, err, sizeof err), 0);
  ASSERT_EQ(schema.record_size, 128);
  advise(&in);
  ASSERT_CONTAINS(line_with("\"cannot_declare\"", NULL), "the record would be 136 bytes, the most is 128");
  tks_buf_finish(&out);
}

TEST(a_name_too_long_to_declare_says_so) {
  struct tks_advice_input in = fallback_workload();
  tks_usage_init(&usage);
  kept("a_field_name_well_over_thirty_one_bytes", TKS_USAGE_INT, 30000000, 3000000000);
  advise(&in);
  ASSERT_CONTAINS(line_with("\"cannot_declare\"", NULL),
                  "its name is 39 bytes long and a declared name holds at most 31");
  tks_buf_finish(&out);
}

TEST(output_is_one_json_object_per_line_even_for_hostile_names) {
  struct tks_advice_input in = fallback_workload();
  kept("ex\"ch\nange\\", TKS_USAGE_INT, 30000000, 3000000000);
  kept("t\x01", TKS_USAGE_STRING | TKS_USAGE_BOOL, 10, 1000);
  kept("rare", TKS_USAGE_FLOAT, 10, 10);
  usage.overflow = 3;
  advise(&in);
  ASSERT(lines() >= 5);
  assert_json_lines();
  ASSERT_CONTAINS(out.data, "\"field\":\"ex\\\"ch\\nange\\\\\"");
  ASSERT_CONTAINS(out.data, "\"field\":\"t\\u0001\"");
  tks_buf_finish(&out);
}

TEST(advice_is_appended_after_what_the_buffer_held) {
  struct tks_advice_input in = input(TKS_MODE_SLOTTED);
  struct tks_buf b;
  tks_buf_init(&b);
  ASSERT_EQ(tks_buf_puts(&b, "before\n"), 0);
  ASSERT_EQ(tks_advice(&in, &b), 0);
  const char *want = "before\n{\"advice\":\"none\"";
  ASSERT_EQ(strncmp(b.data, want, strlen(want)), 0);
  tks_buf_finish(&b);
}

TEST(the_same_input_gives_the_same_text) {
  struct tks_advice_input in = fallback_workload();
  kept("seq", TKS_USAGE_INT, 30000000, 3000000000);
  advise(&in);
  char first[8192];
  snprintf(first, sizeof first, "%s", out.data);
  advise(&in);
  ASSERT_STR_EQ(out.data, first);
  tks_buf_finish(&out);
}

TEST_MAIN()

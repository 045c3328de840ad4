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

/* A field kept as dynamic objects in n ticks (fallback and dynamic modes). */
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
 * 63M slotted records (33 bytes each with block overhead), 37M dynamic
 * objects of 160 bytes plus their series entries.
 */
static struct tks_advice_input fallback_workload(void) {
  struct tks_advice_input in = input(TKS_MODE_FALLBACK);
  in.ticks_accepted = 100000000;
  in.repr = (struct tks_store_repr){.slotted_ticks = 63000000,
                                    .slotted_bytes = 2079000000,
                                    .dynamic_ticks = 37000000,
                                    .dynamic_entry_bytes = 900000000,
                                    .dynamic_object_bytes = 5920000000,
                                    .dynamic_object_requested = 5624000000};
  in.symbol_bytes = 1000000;
  in.symbols = 100;
  struct tks_usage_field *f = kept("exchange", TKS_USAGE_STRING, 37000000, 5594000000);
  f->string_bytes = 4 * 37000000ull; /* "XNAS" */
  return in;
}

TEST(frequent_string_field_in_fallback_mode_is_advised_as_a_symbol_slot) {
  struct tks_advice_input in = fallback_workload();
  advise(&in);
  const char *l = line(0);
  ASSERT(l != NULL);
  ASSERT_CONTAINS(l, "{\"advice\":\"declare_field\"");
  /* Share 37M of 100M; cost 5594000000 B; slot: 8 more bytes on 100M ticks
   * (800000000) plus 4 bytes x 65536 values of string table (262144). */
  ASSERT_CONTAINS(l, "field `exchange` is in 37.0% of ticks and costs 5.2 GiB as dynamic objects; "
                     "declared as a `symbol` slot it would cost at most 763.2 MiB "
                     "(the record grows from 32 to 40 bytes, 762.9 MiB over 100000000 stored ticks, "
                     "plus at most 256.0 KiB of string table): 4.5 GiB less, "
                     "41.1 bytes per tick instead of 89.0");
  ASSERT_CONTAINS(l, "\"field\":\"exchange\"");
  ASSERT_CONTAINS(l, "\"type\":\"symbol\"");
  ASSERT_CONTAINS(l, "\"share_pct\":37.0");
  ASSERT_CONTAINS(l, "\"cost_bytes\":5594000000");
  ASSERT_CONTAINS(l, "\"record_size\":32,\"new_record_size\":40");
  ASSERT_CONTAINS(l, "\"record_bytes\":800000000");
  ASSERT_CONTAINS(l, "\"string_table_bytes_max\":262144");
  ASSERT_CONTAINS(l, "\"slot_bytes\":800262144");
  ASSERT_CONTAINS(l, "\"saved_bytes\":4793737856");
  ASSERT_CONTAINS(l, "\"bytes_per_tick\":89.0");
  ASSERT_CONTAINS(l, "\"new_bytes_per_tick\":41.1");
  ASSERT_NOT_CONTAINS(l, "optional)");
  tks_buf_finish(&out);
}

TEST(fallback_mode_with_dynamic_objects_most_of_memory_says_so_after_the_fields) {
  struct tks_advice_input in = fallback_workload();
  advise(&in);
  ASSERT_EQ(lines(), 2);
  const char *l = line(1);
  ASSERT_CONTAINS(l, "{\"advice\":\"dynamic_share\"");
  /* 6820000000 of 8900000000 bytes */
  ASSERT_CONTAINS(l, "dynamic objects are 37.0% of ticks (37000000 of 100000000) but 76.6% of "
                     "store memory (6.4 GiB of 8.3 GiB)");
  ASSERT_CONTAINS(l, "\"dynamic_bytes\":6820000000,\"store_bytes\":8900000000,\"bytes_pct\":76.6");
  assert_json_lines();
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
  ASSERT_CONTAINS(l, "field `venue` is in 12.0% of ticks and costs 1.4 GiB as dynamic objects; its "
                     "values were of types string and int, and no one slot type holds them all: it "
                     "stays a dynamic object");
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
  ASSERT_CONTAINS(l, "costs 146.5 KiB as dynamic objects; declared as an `i64` slot it would cost "
                     "762.9 MiB");
  ASSERT_CONTAINS(l, "762.8 MiB more than now: keep it undeclared");
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
  /* A typical rejected tick: 5 declared fields + ceil(115/100) = 7 fields
   * (16 slots), 2 x 8 + ceil(300/100) string bytes: 8 + 256 + 19 -> 288,
   * plus a 24-byte series entry. */
  ASSERT_CONTAINS(l, "100 ticks (10.0% of those received) were rejected for undeclared fields: "
                     "`exchange` (60), `seq` (30), `venue` (20) and 1 more; declare them (see below) "
                     "or set store.mode: fallback to keep them as dynamic objects at about 312 bytes "
                     "each, 30.5 KiB in all");
  ASSERT_CONTAINS(l, "\"fields\":[{\"field\":\"exchange\",\"rejected\":60},{\"field\":\"seq\","
                     "\"rejected\":30},{\"field\":\"venue\",\"rejected\":20}],\"more_fields\":1");
  ASSERT_CONTAINS(l, "\"dynamic_bytes_per_tick\":312,\"dynamic_bytes\":31200");
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
  ASSERT_CONTAINS(line(0), "10 ticks (40.0% of those received) were rejected for undeclared "
                           "fields; declare the fields or set store.mode: fallback");
  ASSERT_CONTAINS(line(1), "{\"advice\":\"untracked_fields\"");
  assert_json_lines();
  tks_buf_finish(&out);
}

TEST(dynamic_mode_advises_slotted_with_the_bytes_per_tick) {
  struct tks_advice_input in = input(TKS_MODE_DYNAMIC);
  in.ticks_accepted = 1000000;
  in.repr = (struct tks_store_repr){
      .dynamic_ticks = 1000000, .dynamic_entry_bytes = 24500000, .dynamic_object_bytes = 120000000};
  advise(&in);
  ASSERT_EQ(lines(), 1);
  /* 144.5 B a tick now; 32 x 1.03 = 32.96 a tick slotted: 144500000 - 32960000 */
  ASSERT_CONTAINS(line(0), "{\"advice\":\"use_slotted\",\"text\":\"all 1000000 ticks are held as "
                           "dynamic objects at 144.5 bytes per tick; in slotted mode they would take "
                           "about 33.0 bytes per tick (the 32-byte record plus block overhead): "
                           "106.4 MiB less; set store.mode: slotted\"");
  ASSERT_CONTAINS(line(0), "\"mode\":\"slotted\"");
  ASSERT_CONTAINS(line(0), "\"dynamic_bytes_per_tick\":144.5,\"slotted_bytes_per_tick\":33.0");
  ASSERT_CONTAINS(line(0), "\"saved_bytes\":111540000");
  tks_buf_finish(&out);
}

TEST(dynamic_mode_with_undeclared_fields_advises_fallback_for_the_rest) {
  struct tks_advice_input in = input(TKS_MODE_DYNAMIC);
  in.ticks_accepted = 1000000;
  in.repr = (struct tks_store_repr){
      .dynamic_ticks = 1000000, .dynamic_entry_bytes = 24500000, .dynamic_object_bytes = 120000000};
  kept("seq", TKS_USAGE_INT | TKS_USAGE_STRING, 250000, 30000000);
  advise(&in);
  /* 750000 ticks move: 108375000 B now, 24720000 B slotted. */
  const char *l = line_with("\"use_slotted\"", NULL);
  ASSERT(l != NULL);
  ASSERT_CONTAINS(l, "the 750000 that carry no undeclared field would take about 33.0 bytes per tick");
  ASSERT_CONTAINS(l, "79.8 MiB less; set store.mode: fallback to keep the other 250000 as dynamic "
                     "objects");
  ASSERT_CONTAINS(l, "\"mode\":\"fallback\"");
  ASSERT_CONTAINS(l, "\"saved_bytes\":83655000");
  ASSERT_CONTAINS(line(0), "\"use_slotted\""); /* before the mixed_types line */
  ASSERT_CONTAINS(line(1), "\"mixed_types\"");
  tks_buf_finish(&out);
}

TEST(nothing_to_change_reports_the_real_tick_count_and_bytes_per_tick) {
  struct tks_advice_input in = input(TKS_MODE_SLOTTED);
  in.ticks_accepted = 1000;
  in.repr = (struct tks_store_repr){.slotted_ticks = 1000, .slotted_bytes = 33000};
  in.symbol_bytes = 500;
  advise(&in);
  ASSERT_STR_EQ(out.data, "{\"advice\":\"none\",\"text\":\"nothing to change: 1000 ticks, all "
                          "slotted, 33.5 bytes per tick\",\"ticks\":1000,\"dynamic_ticks\":0,"
                          "\"store_bytes\":33500,\"bytes_per_tick\":33.5}\n");
  tks_buf_finish(&out);
}

TEST(an_empty_store_gives_none_in_every_mode_without_dividing_by_zero) {
  enum tks_mode modes[] = {TKS_MODE_SLOTTED, TKS_MODE_DYNAMIC, TKS_MODE_FALLBACK};
  for (unsigned i = 0; i < 3; i++) {
    struct tks_advice_input in = input(modes[i]);
    advise(&in);
    ASSERT_STR_EQ(out.data, "{\"advice\":\"none\",\"text\":\"nothing to change: 0 ticks stored\","
                            "\"ticks\":0,\"dynamic_ticks\":0,\"store_bytes\":0,"
                            "\"bytes_per_tick\":0.0}\n");
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
  ASSERT_CONTAINS(l, "field `exchange` is in 37.0% of ticks and costs 5.2 GiB as dynamic objects, "
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

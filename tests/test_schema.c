#include <errno.h>
/* Unit tests of lib/schema.c: record layout for several schemas. */
#include "schema.h"
#include "test.h"

static void add(struct tks_schema *s, const char *name, enum tks_type t) {
  struct tks_field *f = &s->fields[s->nfields++];
  memset(f, 0, sizeof *f);
  snprintf(f->name, sizeof f->name, "%s", name);
  f->type = t;
}

TEST(market_event_is_32_bytes_without_padding) {
  struct tks_schema s;
  tks_schema_default(&s);
  ASSERT_STR_EQ(s.name, "MarketEvent");
  ASSERT_EQ(s.nfields, 5);
  ASSERT_EQ(s.record_size, 32);
  ASSERT_STR_EQ(s.fields[s.ts_field].name, "ts");
  ASSERT_STR_EQ(s.fields[s.symbol_field].name, "ticker");
  /* 8-byte fields first, in declaration order, then the 4-byte ones. */
  ASSERT_EQ(s.fields[0].offset, 0);  /* ts */
  ASSERT_EQ(s.fields[2].offset, 8);  /* price */
  ASSERT_EQ(s.fields[3].offset, 16); /* volume */
  ASSERT_EQ(s.fields[1].offset, 24); /* ticker */
  ASSERT_EQ(s.fields[4].offset, 28); /* flags */
  ASSERT(s.fields[1].required && s.fields[2].required && s.fields[3].required);
  ASSERT(!s.fields[0].required && !s.fields[4].required);
}

TEST(seed_trade_shape_lays_out_in_32_bytes) {
  struct tks_schema s = {0};
  add(&s, "symbol", TKS_TYPE_SYMBOL);
  add(&s, "timestamp", TKS_TYPE_TIMESTAMP);
  add(&s, "bid", TKS_TYPE_F64);
  add(&s, "ask", TKS_TYPE_F64);
  char err[128];
  ASSERT_EQ(tks_schema_layout(&s, err, sizeof err), 0);
  ASSERT_EQ(s.record_size, 32); /* 8+8+8+4, rounded up to 8 */
  ASSERT_EQ(s.fields[1].offset, 0);
  ASSERT_EQ(s.fields[2].offset, 8);
  ASSERT_EQ(s.fields[3].offset, 16);
  ASSERT_EQ(s.fields[0].offset, 24);
}

TEST(mixed_sizes_pack_largest_first) {
  struct tks_schema s = {0};
  add(&s, "live", TKS_TYPE_BOOL);
  add(&s, "sym", TKS_TYPE_SYMBOL);
  add(&s, "ts", TKS_TYPE_TIMESTAMP);
  add(&s, "n", TKS_TYPE_U32);
  add(&s, "halt", TKS_TYPE_BOOL);
  char err[128];
  ASSERT_EQ(tks_schema_layout(&s, err, sizeof err), 0);
  ASSERT_EQ(s.fields[2].offset, 0);
  ASSERT_EQ(s.fields[1].offset, 8);
  ASSERT_EQ(s.fields[3].offset, 12);
  ASSERT_EQ(s.fields[0].offset, 16);
  ASSERT_EQ(s.fields[4].offset, 17);
  ASSERT_EQ(s.record_size, 24);
}

TEST(bad_schemas_are_refused_with_a_reason) {
  char err[128];
  struct tks_schema s = {0};
  ASSERT(tks_schema_layout(&s, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "no fields");

  memset(&s, 0, sizeof s);
  add(&s, "ts", TKS_TYPE_TIMESTAMP);
  add(&s, "price", TKS_TYPE_F64);
  ASSERT(tks_schema_layout(&s, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "symbol");

  memset(&s, 0, sizeof s);
  add(&s, "ts", TKS_TYPE_TIMESTAMP);
  add(&s, "sym", TKS_TYPE_SYMBOL);
  add(&s, "sym", TKS_TYPE_F64);
  ASSERT(tks_schema_layout(&s, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "'sym' is declared twice");

  memset(&s, 0, sizeof s);
  add(&s, "ts", TKS_TYPE_TIMESTAMP);
  add(&s, "ts2", TKS_TYPE_TIMESTAMP);
  add(&s, "sym", TKS_TYPE_SYMBOL);
  ASSERT(tks_schema_layout(&s, err, sizeof err) < 0);
  ASSERT_CONTAINS(err, "both timestamps");

  memset(&s, 0, sizeof s);
  add(&s, "ts", TKS_TYPE_TIMESTAMP);
  add(&s, "sym", TKS_TYPE_SYMBOL);
  for (int i = 0; i < 30; i++) {
    char n[16];
    snprintf(n, sizeof n, "f%d", i);
    add(&s, n, TKS_TYPE_I64);
  }
  ASSERT(tks_schema_layout(&s, err, sizeof err) < 0); /* 8*31+4 > 128 */
  ASSERT_CONTAINS(err, "the most is 128");
}

TEST(find_matches_whole_names_only) {
  struct tks_schema s;
  tks_schema_default(&s);
  ASSERT_EQ(tks_schema_find(&s, "price", 5), 2);
  ASSERT_EQ(tks_schema_find(&s, "pric", 4), -1);
  ASSERT_EQ(tks_schema_find(&s, "prices", 6), -1);
  ASSERT_EQ(tks_schema_find(&s, "tsx", 2), 0);
}

TEST(type_names_round_trip) {
  for (int t = 0; t < TKS_TYPE__COUNT; t++) {
    enum tks_type back;
    ASSERT_EQ(tks_type_parse(tks_type_name((enum tks_type)t), &back), 0);
    ASSERT_EQ(back, t);
  }
  enum tks_type x;
  ASSERT(tks_type_parse("float", &x) < 0);
}

TEST(every_declared_type_reads_back_as_its_value_type) {
  struct tks_schema s;
  memset(&s, 0, sizeof s);
  add(&s, "ts", TKS_TYPE_TIMESTAMP);
  add(&s, "sym", TKS_TYPE_SYMBOL);
  add(&s, "note", TKS_TYPE_STRING);
  add(&s, "i", TKS_TYPE_I64);
  add(&s, "n", TKS_TYPE_U32);
  add(&s, "x", TKS_TYPE_F64);
  add(&s, "ok", TKS_TYPE_BOOL);
  char err[128];
  ASSERT_EQ(tks_schema_layout(&s, err, sizeof err), 0);
  _Alignas(8) char rec[TKS_RECORD_MAX] = {0};
  int64_t ts = -5, i = INT64_MIN;
  uint32_t sym = 7, note = 9, n = UINT32_MAX;
  double x = 2.5;
  memcpy(rec + s.fields[0].offset, &ts, 8);
  memcpy(rec + s.fields[1].offset, &sym, 4);
  memcpy(rec + s.fields[2].offset, &note, 4);
  memcpy(rec + s.fields[3].offset, &i, 8);
  memcpy(rec + s.fields[4].offset, &n, 4);
  memcpy(rec + s.fields[5].offset, &x, 8);
  rec[s.fields[6].offset] = 1;
  struct tks_value v[7];
  for (int k = 0; k < 7; k++) {
    v[k] = tks_field_value(&s.fields[k], rec);
    ASSERT_EQ(v[k].type, tks_type_vtype(s.fields[k].type));
    ASSERT_EQ(v[k].flags, 0);
  }
  ASSERT_EQ(v[0].type, TKS_V_INT);
  ASSERT_EQ(v[0].v.i, -5);
  ASSERT_EQ(v[1].type, TKS_V_SYM);
  ASSERT_EQ(v[1].v.id, 7);
  ASSERT_EQ(v[2].type, TKS_V_ISTR);
  ASSERT_EQ(v[2].v.id, 9);
  ASSERT_EQ(v[3].type, TKS_V_INT);
  ASSERT(v[3].v.i == INT64_MIN);
  ASSERT_EQ(v[4].type, TKS_V_INT);
  ASSERT_EQ(v[4].v.i, 4294967295LL); /* u32 widened, not sign-extended */
  ASSERT_EQ(v[5].type, TKS_V_F64);
  ASSERT(v[5].v.f == 2.5);
  ASSERT_EQ(v[6].type, TKS_V_BOOL);
  ASSERT(v[6].v.b);
  ASSERT_EQ(tks_type_vtype(TKS_TYPE__COUNT), TKS_V_NIL);
}

TEST(a_field_named_dollar_is_refused_as_the_control_messages_key) {
  struct tks_schema s = {0};
  add(&s, "ts", TKS_TYPE_TIMESTAMP);
  add(&s, "ticker", TKS_TYPE_SYMBOL);
  add(&s, "$", TKS_TYPE_F64);
  char err[128];
  ASSERT_EQ(tks_schema_layout(&s, err, sizeof err), -EINVAL);
  ASSERT_CONTAINS(err, "'$' is reserved");
}

TEST_MAIN()

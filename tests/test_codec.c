/* Unit tests of lib/decode.c, with lib/encode.c and lib/render.c: every
 * accepted and rejected tick shape, the structural checks on hostile bytes,
 * and agreement with msgpack-c. */
#include <errno.h>
#include <math.h>
#include <msgpack.h>

#include "decode.h"
#include "dynobj.h"
#include "encode.h"
#include "render.h"
#include "schema.h"
#include "symtab.h"
#include "test.h"
#include "utf8.h"

struct rec {
  int64_t ts;
  double price;
  int64_t volume;
  uint32_t ticker;
  uint32_t flags;
};

static struct tks_schema schema;
static struct tks_decoder dec;

static void setup(size_t max) {
  tks_symtab_destroy(dec.symbols); /* from an earlier setup in the same test */
  tks_symtab_destroy(dec.strings);
  tks_symtab_destroy(dec.names);
  tks_schema_default(&schema);
  dec = (struct tks_decoder){.schema = &schema,
                             .symbols = tks_symtab_create(0),
                             .strings = tks_symtab_create(0),
                             .max_message_bytes = max};
}

/* Packing helpers on msgpack-c directly, independent of our encoder. */
static msgpack_sbuffer sb;
static msgpack_packer pk;
static void start(void) {
  msgpack_sbuffer_destroy(&sb); /* from an earlier start; free(NULL) at first */
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
}
static void str(const char *s) {
  msgpack_pack_str(&pk, strlen(s));
  msgpack_pack_str_body(&pk, s, strlen(s));
}

static enum tks_decode_status decode(struct rec *r, struct tks_decode_result *res) {
  return tks_decode(&dec, (const uint8_t *)sb.data, sb.size, 777, r, res);
}

static void pack_good_tick(void) {
  msgpack_pack_map(&pk, 5);
  str("ticker"); str("AAPL");
  str("ts"); msgpack_pack_int64(&pk, 1732500000000000000LL);
  str("price"); msgpack_pack_double(&pk, 150.05);
  str("volume"); msgpack_pack_int64(&pk, 100);
  str("flags"); str("R");
}

TEST(map_form_tick_fills_every_slot) {
  setup(65536);
  start();
  pack_good_tick();
  struct rec r;
  struct tks_decode_result res;
  ASSERT_EQ(decode(&r, &res), TKS_DECODE_OK);
  ASSERT_EQ(res.consumed, sb.size);
  ASSERT(res.has_ts);
  ASSERT_EQ(r.ts, 1732500000000000000LL);
  ASSERT(r.price == 150.05);
  ASSERT_EQ(r.volume, 100);
  ASSERT_STR_EQ(tks_symtab_name(dec.symbols, r.ticker, NULL), "AAPL");
  ASSERT_STR_EQ(tks_symtab_name(dec.strings, r.flags, NULL), "R");
}

TEST(array_form_tick_is_in_slot_order) {
  setup(65536);
  start();
  msgpack_pack_array(&pk, 5);
  msgpack_pack_int64(&pk, 5);
  str("MSFT");
  msgpack_pack_float(&pk, 2.5f);
  msgpack_pack_uint64(&pk, 7);
  msgpack_pack_nil(&pk);
  struct rec r;
  struct tks_decode_result res;
  ASSERT_EQ(decode(&r, &res), TKS_DECODE_OK);
  ASSERT_EQ(r.ts, 5);
  ASSERT(r.price == 2.5);
  ASSERT_EQ(r.volume, 7);
  ASSERT_EQ(r.flags, 0);
  ASSERT_STR_EQ(tks_symtab_name(dec.symbols, r.ticker, NULL), "MSFT");
}

TEST(decode_symbol_finds_the_series_key_in_map_and_array_form_and_refuses_the_rest) {
  setup(65536);
  const char *sym;
  uint32_t sl;
  start();
  pack_good_tick();
  ASSERT_EQ(tks_decode_symbol(&schema, (const uint8_t *)sb.data, sb.size, &sym, &sl), 0);
  ASSERT_EQ(sl, 4);
  ASSERT_EQ(memcmp(sym, "AAPL", 4), 0);
  /* The key after a nested undeclared value and other fields. */
  start();
  msgpack_pack_map(&pk, 3);
  str("extra");
  msgpack_pack_array(&pk, 2);
  msgpack_pack_int(&pk, 1);
  str("x");
  str("price");
  msgpack_pack_double(&pk, 1.5);
  str("ticker");
  str("MSFT.O");
  ASSERT_EQ(tks_decode_symbol(&schema, (const uint8_t *)sb.data, sb.size, &sym, &sl), 0);
  ASSERT_EQ(sl, 6);
  ASSERT_EQ(memcmp(sym, "MSFT.O", 6), 0);
  start();
  msgpack_pack_array(&pk, 5);
  msgpack_pack_int64(&pk, 5);
  str("IBM");
  msgpack_pack_float(&pk, 2.5f);
  msgpack_pack_uint64(&pk, 7);
  msgpack_pack_nil(&pk);
  ASSERT_EQ(tks_decode_symbol(&schema, (const uint8_t *)sb.data, sb.size, &sym, &sl), 0);
  ASSERT_EQ(sl, 3);
  ASSERT_EQ(memcmp(sym, "IBM", 3), 0);
  /* Every cut before the symbol's last byte is refused, never read past. */
  for (size_t cut = 0; cut < 6; cut++) { /* [5, "IBM": 6 bytes */
    uint8_t *b = malloc(cut ? cut : 1);
    ASSERT(b);
    memcpy(b, sb.data, cut);
    ASSERT_EQ(tks_decode_symbol(&schema, b, cut, &sym, &sl), -EINVAL);
    free(b);
  }
  start();
  msgpack_pack_map(&pk, 1);
  str("price");
  msgpack_pack_double(&pk, 1.5);
  ASSERT_EQ(tks_decode_symbol(&schema, (const uint8_t *)sb.data, sb.size, &sym, &sl), -EINVAL);
  start();
  msgpack_pack_map(&pk, 1);
  str("ticker");
  msgpack_pack_int(&pk, 5);
  ASSERT_EQ(tks_decode_symbol(&schema, (const uint8_t *)sb.data, sb.size, &sym, &sl), -EINVAL);
  start();
  msgpack_pack_int(&pk, 5);
  ASSERT_EQ(tks_decode_symbol(&schema, (const uint8_t *)sb.data, sb.size, &sym, &sl), -EINVAL);
}

TEST(missing_ts_gets_receive_time_and_int_price_is_accepted) {
  setup(65536);
  start();
  msgpack_pack_map(&pk, 3);
  str("ticker"); str("X");
  str("price"); msgpack_pack_int64(&pk, 150);
  str("volume"); msgpack_pack_int64(&pk, -5);
  struct rec r;
  struct tks_decode_result res;
  ASSERT_EQ(decode(&r, &res), TKS_DECODE_OK);
  ASSERT(!res.has_ts);
  ASSERT_EQ(r.ts, 777);
  ASSERT(r.price == 150.0);
  ASSERT_EQ(r.volume, -5);
}

TEST(msgpack_timestamp_extension_is_a_ts) {
  setup(65536);
  uint8_t buf[64];
  /* {"ticker":"A","price":1,"volume":1,"ts":ts64(sec=10, ns=5)} */
  size_t n = 0;
  buf[n++] = 0x84;
  memcpy(buf + n, "\xa6ticker\xa1" "A\xa5price\x01\xa6volume\x01\xa2ts", 27);
  n += 27;
  uint64_t d = ((uint64_t)5 << 34) | 10;
  buf[n++] = 0xd7;
  buf[n++] = 0xff;
  for (int i = 7; i >= 0; i--) buf[n++] = (uint8_t)(d >> (8 * i));
  struct rec r;
  struct tks_decode_result res;
  ASSERT_EQ(tks_decode(&dec, buf, n, 0, &r, &res), TKS_DECODE_OK);
  ASSERT_EQ(r.ts, 10000000005LL);
}

static void expect_reject(enum tks_reason why, const char *detail) {
  struct rec r;
  struct tks_decode_result res;
  uint32_t before = tks_symtab_count(dec.symbols);
  enum tks_decode_status st = decode(&r, &res);
  if (st != TKS_DECODE_REJECT) TEST_FAIL("status %d, want REJECT (%s)", st, tks_reason_name(why));
  ASSERT_STR_EQ(tks_reason_name(res.reason), tks_reason_name(why));
  ASSERT_EQ(res.consumed, sb.size); /* the whole message is skipped */
  if (detail) ASSERT_STR_EQ(res.detail, detail);
  ASSERT_EQ(tks_symtab_count(dec.symbols), before); /* nothing interned */
}

TEST(unknown_field_is_rejected_with_its_name) {
  setup(65536);
  start();
  msgpack_pack_map(&pk, 4);
  str("ticker"); str("NEWSYM");
  str("price"); msgpack_pack_double(&pk, 1);
  str("volume"); msgpack_pack_int64(&pk, 1);
  str("exchange"); str("XNAS");
  expect_reject(TKS_REASON_UNKNOWN_FIELD, "exchange");
}

TEST(missing_required_field_is_rejected) {
  const char *fields[] = {"ticker", "price", "volume"};
  for (int skip = 0; skip < 3; skip++) {
    setup(65536);
    start();
    msgpack_pack_map(&pk, 2);
    if (skip != 0) { str("ticker"); str("A"); }
    if (skip != 1) { str("price"); msgpack_pack_double(&pk, 1); }
    if (skip != 2) { str("volume"); msgpack_pack_int64(&pk, 1); }
    expect_reject(TKS_REASON_MISSING_FIELD, fields[skip]);
  }
}

TEST(wrong_value_types_are_rejected) {
  struct { const char *field; int kind; } cases[] = {
      {"price", 0}, {"volume", 1}, {"ticker", 2}, {"flags", 2}, {"ts", 1}, {"price", 3}, {"volume", 4}};
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(cases); i++) {
    setup(65536);
    start();
    msgpack_pack_map(&pk, 4);
    const char *f = cases[i].field;
    if (strcmp(f, "ticker")) { str("ticker"); str("A"); }
    if (strcmp(f, "price")) { str("price"); msgpack_pack_double(&pk, 1); }
    if (strcmp(f, "volume")) { str("volume"); msgpack_pack_int64(&pk, 1); }
    str(f);
    switch (cases[i].kind) {
    case 0: str("1.5"); break;                        /* string for a number */
    case 1: msgpack_pack_double(&pk, 1.5); break;     /* float for an int */
    case 2: msgpack_pack_int64(&pk, 3); break;        /* int for a string */
    case 3: msgpack_pack_map(&pk, 1); str("a"); msgpack_pack_int64(&pk, 1); break; /* nested map */
    case 4: msgpack_pack_array(&pk, 2); msgpack_pack_nil(&pk); msgpack_pack_nil(&pk); break;
    }
    if (strcmp(f, "flags") && strcmp(f, "ts")) {
      str("flags"); str("R");
    } else {
      /* keep four entries */
      sb.data[0] = (char)0x84;
    }
    expect_reject(TKS_REASON_BAD_TYPE, f);
  }
}

TEST(non_string_keys_are_bad_type) {
  setup(65536);
  start();
  msgpack_pack_map(&pk, 1);
  msgpack_pack_int64(&pk, 1);
  msgpack_pack_int64(&pk, 2);
  expect_reject(TKS_REASON_BAD_TYPE, "non-string key");
}

TEST(unusable_values_are_bad_value) {
  for (int c = 0; c < 3; c++) {
    setup(65536);
    start();
    msgpack_pack_map(&pk, 3);
    str("ticker"); str(c == 0 ? "" : "A");
    str("price"); msgpack_pack_double(&pk, c == 1 ? NAN : 1.0);
    str("volume");
    if (c == 2) msgpack_pack_uint64(&pk, UINT64_MAX); else msgpack_pack_int64(&pk, 1);
    expect_reject(TKS_REASON_BAD_VALUE, c == 0 ? "ticker" : c == 1 ? "price" : "volume");
  }
}

TEST(duplicate_keys_are_rejected) {
  setup(65536);
  start();
  msgpack_pack_map(&pk, 4);
  str("ticker"); str("A");
  str("price"); msgpack_pack_double(&pk, 1);
  str("volume"); msgpack_pack_int64(&pk, 1);
  str("price"); msgpack_pack_double(&pk, 2);
  expect_reject(TKS_REASON_DUPLICATE_FIELD, "price");
}

TEST(hundreds_of_fields_are_too_many) {
  setup(65536);
  start();
  msgpack_pack_map(&pk, 300);
  for (int i = 0; i < 300; i++) {
    char k[16];
    snprintf(k, sizeof k, "f%d", i);
    str(k);
    msgpack_pack_int64(&pk, i);
  }
  expect_reject(TKS_REASON_TOO_MANY_FIELDS, "300 fields");
}

TEST(very_long_field_name_is_unknown_and_cut_in_the_detail) {
  setup(65536);
  start();
  char k[2000];
  memset(k, 'k', sizeof k - 1);
  k[sizeof k - 1] = '\0';
  msgpack_pack_map(&pk, 1);
  str(k);
  msgpack_pack_int64(&pk, 1);
  expect_reject(TKS_REASON_UNKNOWN_FIELD, NULL);
}

TEST(array_of_wrong_length_is_rejected) {
  setup(65536);
  start();
  msgpack_pack_array(&pk, 3);
  msgpack_pack_nil(&pk); str("A"); msgpack_pack_double(&pk, 1);
  expect_reject(TKS_REASON_MISSING_FIELD, NULL);
  start();
  msgpack_pack_array(&pk, 6);
  for (int i = 0; i < 6; i++) msgpack_pack_nil(&pk);
  expect_reject(TKS_REASON_TOO_MANY_FIELDS, NULL);
}

static void expect_error(const void *bytes, size_t n, size_t max, enum tks_reason why) {
  setup(max);
  struct rec r;
  struct tks_decode_result res;
  enum tks_decode_status st = tks_decode(&dec, bytes, n, 0, &r, &res);
  if (st != TKS_DECODE_ERROR) TEST_FAIL("status %d, want ERROR %s", st, tks_reason_name(why));
  ASSERT_STR_EQ(tks_reason_name(res.reason), tks_reason_name(why));
  ASSERT(tks_reason_is_fatal(res.reason));
}

TEST(top_level_scalars_are_not_ticks) {
  expect_error("hello", 5, 65536, TKS_REASON_NOT_A_TICK);
  expect_error("\xa3" "abc", 4, 65536, TKS_REASON_NOT_A_TICK);
  expect_error("\xc0", 1, 65536, TKS_REASON_NOT_A_TICK);
}

TEST(never_used_byte_is_malformed) {
  expect_error("\xc1", 1, 65536, TKS_REASON_MALFORMED);
  expect_error("\x81\xa1" "a\xc1", 4, 65536, TKS_REASON_MALFORMED);
}

TEST(huge_length_prefixes_are_refused_before_any_allocation) {
  /* array32 of 2^32-1, map32, str32 and bin32 of ~2 GiB: 5 bytes each. */
  expect_error("\xdd\xff\xff\xff\xff", 5, 65536, TKS_REASON_TOO_LARGE);
  expect_error("\xdf\xff\xff\xff\xff", 5, 65536, TKS_REASON_TOO_LARGE);
  expect_error("\x81\xa1" "a\xdb\x7f\xff\xff\xff", 8, 65536, TKS_REASON_TOO_LARGE);
  expect_error("\x81\xa1" "a\xc6\x7f\xff\xff\xff", 8, 65536, TKS_REASON_TOO_LARGE);
  /* The msgpack-c reproduction from REFERENCES.md. */
  expect_error("\xdd\x00\x10\x00\x00\x00", 6, 65536, TKS_REASON_TOO_LARGE);
}

TEST(message_over_the_limit_is_too_large) {
  setup(64);
  start();
  msgpack_pack_map(&pk, 3);
  str("ticker");
  str("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
  str("price"); msgpack_pack_double(&pk, 1);
  str("volume"); msgpack_pack_int64(&pk, 1);
  expect_error(sb.data, sb.size, 64, TKS_REASON_TOO_LARGE);
  /* And when only the first 64 bytes have arrived. */
  expect_error(sb.data, 64, 64, TKS_REASON_TOO_LARGE);
  /* A good tick under the limit passes. */
  setup(64);
  start();
  msgpack_pack_map(&pk, 3);
  str("ticker"); str("A");
  str("price"); msgpack_pack_double(&pk, 1);
  str("volume"); msgpack_pack_int64(&pk, 1);
  struct rec r;
  struct tks_decode_result res;
  ASSERT_EQ(decode(&r, &res), TKS_DECODE_OK);
}

TEST(deep_nesting_is_too_deep) {
  uint8_t buf[200];
  size_t n = 0;
  buf[n++] = 0x81;
  buf[n++] = 0xa1;
  buf[n++] = 'a';
  for (int i = 0; i < 100; i++) buf[n++] = 0x91;
  buf[n++] = 0x01;
  expect_error(buf, n, 65536, TKS_REASON_TOO_DEEP);
  /* Even before the whole thing has arrived. */
  expect_error(buf, 40, 65536, TKS_REASON_TOO_DEEP);
}

/* {"a": [[...[1]...]]}: the map and `arrays` arrays inside it. */
static size_t nested(uint8_t *buf, int arrays) {
  size_t n = 0;
  buf[n++] = 0x81;
  buf[n++] = 0xa1;
  buf[n++] = 'a';
  for (int i = 0; i < arrays; i++) buf[n++] = 0x91;
  buf[n++] = 0x01;
  return n;
}

TEST(nesting_of_exactly_16_levels_is_read_and_17_is_too_deep) {
  ASSERT_EQ(TKS_DECODE_MAX_DEPTH, 16);
  uint8_t buf[64];
  struct rec r;
  struct tks_decode_result res;
  /* 16 levels (the tick's map and 15 arrays): read whole, and refused for
   * its undeclared field, not for its depth; the stream goes on. */
  size_t n = nested(buf, 15);
  setup(65536);
  ASSERT_EQ(tks_decode(&dec, buf, n, 0, &r, &res), TKS_DECODE_REJECT);
  ASSERT_STR_EQ(tks_reason_name(res.reason), "unknown_field");
  ASSERT_EQ(res.consumed, n);
  /* The same 16 levels where undeclared fields are kept. */
  for (int mode = 0; mode < 2; mode++) {
    setup(65536);
    dec.mode = mode ? TKS_MODE_DYNAMIC : TKS_MODE_FALLBACK;
    dec.names = tks_symtab_create(0);
    struct tks_dyn_tick dyn;
    struct tks_decode_result rd = {.dyn = &dyn};
    enum tks_decode_status st = tks_decode(&dec, buf, n, 0, &r, &rd);
    if (st == TKS_DECODE_ERROR)
      TEST_FAIL("mode %d: 16 levels refused: %s", mode, tks_reason_name(rd.reason));
    ASSERT_EQ(rd.consumed, n);
  }
  /* 17 levels: too deep, whole or in part, in every mode. */
  n = nested(buf, 16);
  expect_error(buf, n, 65536, TKS_REASON_TOO_DEEP);
  expect_error(buf, n - 1, 65536, TKS_REASON_TOO_DEEP);
  for (int mode = 0; mode < 2; mode++) {
    setup(65536);
    dec.mode = mode ? TKS_MODE_DYNAMIC : TKS_MODE_FALLBACK;
    dec.names = tks_symtab_create(0);
    struct tks_dyn_tick dyn;
    struct tks_decode_result rd = {.dyn = &dyn};
    enum tks_decode_status st = tks_decode(&dec, buf, n, 0, &r, &rd);
    if (st != TKS_DECODE_ERROR || rd.reason != TKS_REASON_TOO_DEEP)
      TEST_FAIL("mode %d: 17 levels: status %d (%s), want ERROR too_deep", mode, st,
                tks_reason_name(rd.reason));
  }
  /* The skipper on its own: 16 arrays deep is one value, 17 too deep. */
  uint8_t a[32];
  for (int depth = 15; depth <= 17; depth++) {
    for (int i = 0; i < depth; i++) a[i] = 0x91;
    a[depth] = 0x01;
    long got = tks_msgpack_skip(a, (size_t)depth + 1, 65536);
    if (depth <= 16 && got != depth + 1) TEST_FAIL("%d arrays deep: skip gave %ld", depth, got);
    if (depth == 17 && got >= 0) TEST_FAIL("17 arrays deep: skip gave %ld, want an error", got);
  }
}

/* A schema with a u32 field n (besides ts and the symbol). */
static struct tks_schema u32_schema;
static void setup_u32(void) {
  setup(65536);
  memset(&u32_schema, 0, sizeof u32_schema);
  snprintf(u32_schema.name, sizeof u32_schema.name, "U32Tick");
  static const struct {
    const char *name;
    enum tks_type type;
  } f[] = {{"ts", TKS_TYPE_TIMESTAMP}, {"sym", TKS_TYPE_SYMBOL}, {"n", TKS_TYPE_U32}};
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(f); i++) {
    struct tks_field *fl = &u32_schema.fields[u32_schema.nfields++];
    snprintf(fl->name, sizeof fl->name, "%s", f[i].name);
    fl->type = f[i].type;
    fl->required = true;
  }
  char err[128];
  if (tks_schema_layout(&u32_schema, err, sizeof err)) TEST_FAIL("layout: %s", err);
  dec.schema = &u32_schema;
}

TEST(u32_fields_take_0_to_4294967295_and_refuse_the_rest_as_bad_value) {
  static const struct {
    int64_t v;
    bool is_uint64; /* packed as a uint64 over INT64_MAX */
    bool ok;
  } cases[] = {{0, false, true},          {1, false, true},          {65535, false, true},
               {4294967294, false, true}, {4294967295, false, true}, {4294967296, false, false},
               {-1, false, false},        {INT64_MIN, false, false}, {INT64_MAX, false, false},
               {0, true, false}};
  for (size_t i = 0; i < TKS_ARRAY_SIZE(cases); i++) {
    setup_u32();
    start();
    msgpack_pack_map(&pk, 3);
    str("ts");
    msgpack_pack_int64(&pk, 5);
    str("sym");
    str("A");
    str("n");
    if (cases[i].is_uint64)
      msgpack_pack_uint64(&pk, UINT64_MAX);
    else if (cases[i].v >= 0)
      msgpack_pack_uint64(&pk, (uint64_t)cases[i].v); /* as a sender would: smallest form */
    else
      msgpack_pack_int64(&pk, cases[i].v);
    _Alignas(8) char rec[TKS_RECORD_MAX];
    struct tks_decode_result res;
    enum tks_decode_status st = tks_decode(&dec, (const uint8_t *)sb.data, sb.size, 0, rec, &res);
    const struct tks_field *nf = &u32_schema.fields[2];
    if (cases[i].ok) {
      if (st != TKS_DECODE_OK)
        TEST_FAIL("n = %lld: status %d (%s), want OK", (long long)cases[i].v, st,
                  tks_reason_name(res.reason));
      struct tks_value v = tks_field_value(nf, rec);
      if (v.v.i != cases[i].v)
        TEST_FAIL("n = %lld read back as %lld", (long long)cases[i].v, (long long)v.v.i);
    } else {
      if (st != TKS_DECODE_REJECT || res.reason != TKS_REASON_BAD_VALUE)
        TEST_FAIL("n = %lld%s: status %d (%s), want REJECT bad_value", (long long)cases[i].v,
                  cases[i].is_uint64 ? " (uint64 max)" : "", st, tks_reason_name(res.reason));
      ASSERT_STR_EQ(res.detail, "n");
      ASSERT_EQ(res.consumed, sb.size);
    }
  }
  /* Also packed as an int64 (msgpack-c's int64 packer picks the smallest
   * form, so force the 0xd3 encoding by hand): 4294967295 kept, 2^32 not. */
  static const int64_t wide[] = {4294967295, 4294967296};
  for (int k = 0; k < 2; k++) {
    setup_u32();
    uint8_t b[64];
    size_t n = 0;
    b[n++] = 0x83;
    memcpy(b + n,
           "\xa2ts\x05\xa3sym\xa1"
           "A\xa1n\xd3",
           13);
    n += 13;
    for (int i = 7; i >= 0; i--) b[n++] = (uint8_t)((uint64_t)wide[k] >> (8 * i));
    _Alignas(8) char rec[TKS_RECORD_MAX];
    struct tks_decode_result res;
    enum tks_decode_status st = tks_decode(&dec, b, n, 0, rec, &res);
    if (k == 0) {
      ASSERT_EQ(st, TKS_DECODE_OK);
      ASSERT_EQ(tks_field_value(&u32_schema.fields[2], rec).v.i, 4294967295);
    } else {
      ASSERT_EQ(st, TKS_DECODE_REJECT);
      ASSERT_STR_EQ(tks_reason_name(res.reason), "bad_value");
    }
  }
}

/* Found by tests/fuzz/fuzz_decode (its corpus keeps the input as
 * regress-too-deep-past-limit): a message over max_message_bytes is
 * too_large whatever its bytes past the limit hold and however many of
 * them came in the same read; before, nesting too deep, or a never-used
 * byte, past the limit was reported instead when it had arrived. */
TEST(bytes_past_the_limit_never_decide_the_reason) {
  uint8_t buf[160];
  size_t n = 0;
  /* {"ticker": "AAAA...A" (48 bytes), "price": [[[[...]]]] 20 deep}: the
   * nesting starts before byte 64 and is too deep only after it. */
  buf[n++] = 0x82;
  buf[n++] = 0xa6;
  memcpy(buf + n, "ticker", 6), n += 6;
  buf[n++] = 0xd9;
  buf[n++] = 48;
  memset(buf + n, 'A', 48), n += 48;
  buf[n++] = 0xa5;
  memcpy(buf + n, "price", 5), n += 5;
  for (int i = 0; i < 20; i++) buf[n++] = 0x91;
  buf[n++] = 0x01;
  for (size_t len = 64; len <= n; len++) expect_error(buf, len, 64, TKS_REASON_TOO_LARGE);
  /* {"ticker": "AAAA...A" (60 bytes), 0xc1}: malformed only past the limit. */
  n = 0;
  buf[n++] = 0x82;
  buf[n++] = 0xa6;
  memcpy(buf + n, "ticker", 6), n += 6;
  buf[n++] = 0xd9;
  buf[n++] = 60;
  memset(buf + n, 'A', 60), n += 60;
  buf[n++] = 0xc1;
  for (size_t len = 64; len <= n; len++) expect_error(buf, len, 64, TKS_REASON_TOO_LARGE);
}

TEST(split_message_at_every_byte_is_decoded_once) {
  setup(65536);
  start();
  pack_good_tick();
  for (size_t k = 0; k < sb.size; k++) {
    struct rec r;
    struct tks_decode_result res;
    ASSERT_EQ(tks_decode(&dec, (const uint8_t *)sb.data, k, 0, &r, &res), TKS_DECODE_NEED_MORE);
    ASSERT_EQ(res.consumed, 0);
  }
  ASSERT_EQ(tks_symtab_count(dec.symbols), 0);
  struct rec r;
  struct tks_decode_result res;
  ASSERT_EQ(decode(&r, &res), TKS_DECODE_OK);
  ASSERT_EQ(tks_symtab_count(dec.symbols), 1);
}

TEST(a_stream_of_mixed_messages_decodes_in_sequence) {
  setup(65536);
  start();
  for (int i = 0; i < 1000; i++) {
    if (i % 10 == 3) {
      msgpack_pack_map(&pk, 1);
      str("bogus");
      msgpack_pack_int64(&pk, i);
    } else {
      msgpack_pack_array(&pk, 5);
      msgpack_pack_int64(&pk, i);
      char t[8];
      snprintf(t, sizeof t, "S%d", i % 7);
      str(t);
      msgpack_pack_double(&pk, i * 0.5);
      msgpack_pack_int64(&pk, i);
      msgpack_pack_nil(&pk);
    }
  }
  size_t off = 0;
  int ok = 0, rej = 0;
  while (off < sb.size) {
    struct rec r;
    struct tks_decode_result res;
    enum tks_decode_status st =
        tks_decode(&dec, (const uint8_t *)sb.data + off, sb.size - off, 0, &r, &res);
    ASSERT(st == TKS_DECODE_OK || st == TKS_DECODE_REJECT);
    if (st == TKS_DECODE_OK) {
      ASSERT_EQ(r.volume, r.ts);
      ok++;
    } else {
      ASSERT_EQ(res.reason, TKS_REASON_UNKNOWN_FIELD);
      rej++;
    }
    off += res.consumed;
  }
  ASSERT_EQ(ok, 900);
  ASSERT_EQ(rej, 100);
  ASSERT_EQ(tks_symtab_count(dec.symbols), 7);
}

/* A random msgpack object of bounded depth, packed by msgpack-c. */
static void random_object(int depth) {
  int kind = rand() % (depth > 6 ? 8 : 10);
  switch (kind) {
  case 0: msgpack_pack_nil(&pk); break;
  case 1: msgpack_pack_int64(&pk, (int64_t)((uint64_t)rand() << 33 ^ (uint64_t)rand()) * (rand() % 2 ? 1 : -1)); break;
  case 2: msgpack_pack_uint64(&pk, (uint64_t)rand() * (uint64_t)rand() * 3u); break;
  case 3: msgpack_pack_double(&pk, rand() / 7.0); break;
  case 4: msgpack_pack_float(&pk, (float)rand()); break;
  case 5: {
    size_t len = (size_t)(rand() % (rand() % 4 == 0 ? 70000 : 40));
    static char junk[70000];
    msgpack_pack_str(&pk, len);
    msgpack_pack_str_body(&pk, junk, len);
    break;
  }
  case 6: {
    size_t len = (size_t)(rand() % 300);
    static char junk[300];
    msgpack_pack_bin(&pk, len);
    msgpack_pack_bin_body(&pk, junk, len);
    break;
  }
  case 7: {
    size_t len = (size_t)(rand() % 20);
    static char junk[20];
    msgpack_pack_ext(&pk, len, (int8_t)(rand() % 100));
    msgpack_pack_ext_body(&pk, junk, len);
    break;
  }
  case 8: {
    int n = rand() % (rand() % 8 == 0 ? 40 : 5);
    msgpack_pack_array(&pk, (size_t)n);
    for (int i = 0; i < n; i++) random_object(depth + 1);
    break;
  }
  default: {
    int n = rand() % 5;
    msgpack_pack_map(&pk, (size_t)n);
    for (int i = 0; i < n; i++) {
      random_object(depth + 1);
      random_object(depth + 1);
    }
  }
  }
}

TEST_TIMEOUT(skip_agrees_with_msgpack_c_on_random_objects, 120) {
  srand(1234);
  for (int iter = 0; iter < 3000; iter++) {
    start();
    random_object(1);
    /* What msgpack-c's own unpacker says the object's length is. */
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    ASSERT_EQ(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    msgpack_unpacked_destroy(&u);
    ASSERT_EQ(off, sb.size);
    long n = tks_msgpack_skip((const uint8_t *)sb.data, sb.size, sb.size);
    ASSERT_EQ(n, (long)sb.size);
    /* Every proper prefix needs more bytes (or is over a smaller limit). */
    for (size_t k = 0; k < sb.size; k += 1 + sb.size / 50)
      ASSERT_EQ(tks_msgpack_skip((const uint8_t *)sb.data, k, sb.size), 0);
    if (sb.size > 1)
      ASSERT_EQ(tks_msgpack_skip((const uint8_t *)sb.data, sb.size, sb.size - 1),
                -(1 + (long)TKS_REASON_TOO_LARGE));
  }
}

TEST_TIMEOUT(random_bytes_never_crash_the_decoder, 120) {
  setup(4096);
  srand(99);
  static uint8_t buf[8192];
  for (int iter = 0; iter < 20000; iter++) {
    size_t n = (size_t)(rand() % 600);
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)rand();
    if (n && iter % 3 == 0) buf[0] = (uint8_t)(0x80 | (rand() & 0x1f)); /* map or array */
    size_t off = 0;
    while (off < n) {
      struct rec r;
      struct tks_decode_result res;
      enum tks_decode_status st = tks_decode(&dec, buf + off, n - off, 0, &r, &res);
      if (st == TKS_DECODE_NEED_MORE || st == TKS_DECODE_ERROR) break;
      ASSERT(res.consumed > 0 && res.consumed <= n - off);
      off += res.consumed;
    }
  }
}

/* {"ticker":"A","price":1,"volume":1,"ts":ts96(sec, ns)} */
static size_t pack_ts96(uint8_t *buf, int64_t sec, uint32_t ns) {
  size_t n = 0;
  buf[n++] = 0x84;
  memcpy(buf + n,
         "\xa6ticker\xa1"
         "A\xa5price\x01\xa6volume\x01\xa2ts",
         27);
  n += 27;
  buf[n++] = 0xc7, buf[n++] = 12, buf[n++] = 0xff;
  for (int i = 3; i >= 0; i--) buf[n++] = (uint8_t)(ns >> (8 * i));
  for (int i = 7; i >= 0; i--) buf[n++] = (uint8_t)((uint64_t)sec >> (8 * i));
  return n;
}

/* The decoded ts of a ts96, or 1 for a bad_value rejection (never a ts here). */
static int64_t ts96(int64_t sec, uint32_t ns) {
  uint8_t buf[64];
  size_t n = pack_ts96(buf, sec, ns);
  struct rec r;
  struct tks_decode_result res;
  enum tks_decode_status st = tks_decode(&dec, buf, n, 0, &r, &res);
  if (st == TKS_DECODE_REJECT && res.reason == TKS_REASON_BAD_VALUE) return 1;
  ASSERT_EQ(st, TKS_DECODE_OK);
  return r.ts;
}

TEST(timestamp_extension_reaches_both_ends_of_the_int64_range) {
  setup(65536);
  /* INT64_MIN ns is -9223372037 s + 145224192 ns: the first 0.85 s of the
   * range have negative seconds whose product alone does not fit. */
  ASSERT_EQ(ts96(-9223372037LL, 145224192), INT64_MIN);
  ASSERT_EQ(ts96(-9223372037LL, 145224193), INT64_MIN + 1);
  ASSERT_EQ(ts96(-9223372037LL, 999999999), -9223372036000000001LL);
  ASSERT_EQ(ts96(-9223372036LL, 0), -9223372036000000000LL);
  ASSERT_EQ(ts96(-9223372036LL, 1), -9223372035999999999LL);
  ASSERT_EQ(ts96(-9223372037LL, 145224191), 1); /* one ns under INT64_MIN */
  ASSERT_EQ(ts96(-9223372037LL, 0), 1);
  ASSERT_EQ(ts96(-9223372038LL, 999999999), 1);
  ASSERT_EQ(ts96(INT64_MIN, 0), 1);
  ASSERT_EQ(ts96(-1, 999999999), -1);
  ASSERT_EQ(ts96(-1, 0), -1000000000);
  ASSERT_EQ(ts96(0, 0), 0);
  /* The top: INT64_MAX is 9223372036 s + 854775807 ns. */
  ASSERT_EQ(ts96(9223372036LL, 854775807), INT64_MAX);
  ASSERT_EQ(ts96(9223372036LL, 854775806), INT64_MAX - 1);
  ASSERT_EQ(ts96(9223372036LL, 854775808), 1);
  ASSERT_EQ(ts96(9223372037LL, 0), 1);
  ASSERT_EQ(ts96(INT64_MAX, 0), 1);
  ASSERT_EQ(ts96(5, 1000000000), 1); /* ns not under a second */
  ASSERT_EQ(ts96(-5, 1000000000), 1);
}

TEST(reason_names_are_the_stats_names) {
  ASSERT_STR_EQ(tks_reason_name(TKS_REASON_UNKNOWN_FIELD), "unknown_field");
  ASSERT_STR_EQ(tks_reason_name(TKS_REASON_TOO_LARGE), "too_large");
  for (int r = 0; r < TKS_REASON__COUNT; r++) ASSERT(tks_reason_name((enum tks_reason)r) != NULL);
  ASSERT(!tks_reason_is_fatal(TKS_REASON_BAD_TYPE));
  ASSERT(tks_reason_is_fatal(TKS_REASON_MALFORMED));
}

TEST(our_encoder_refuses_interned_ids_and_leaves_the_buffer) {
  struct tks_buf b = {0};
  struct tks_value v[] = {{.type = TKS_V_INT, .v.i = 1}, {.type = TKS_V_SYM, .v.id = 3}};
  ASSERT_EQ(tks_encode_array(&b, v, 1), 0);
  size_t len = b.len;
  ASSERT_EQ(tks_encode_array(&b, v, 2), -EINVAL);
  ASSERT_EQ(b.len, len);
  tks_buf_finish(&b);
}

TEST(our_encoder_round_trips_through_the_decoder) {
  setup(65536);
  struct tks_buf b = {0};
  struct tks_kv kv[] = {
      {"ticker", {.type = TKS_V_STR, .v.s = {"IBM", 3}}},
      {"ts", {.type = TKS_V_INT, .flags = TKS_VF_FIXED, .v.i = 42}},
      {"price", {.type = TKS_V_F64, .v.f = 99.5}},
      {"volume", {.type = TKS_V_UINT, .v.u = 12}},
      {"flags", {.type = TKS_V_NIL}},
  };
  ASSERT_EQ(tks_encode_map(&b, kv, 5), 0);
  ASSERT_EQ((unsigned char)b.data[15], 0xd3); /* fixed-width ts */
  struct rec r;
  struct tks_decode_result res;
  ASSERT_EQ(tks_decode(&dec, (const uint8_t *)b.data, b.len, 0, &r, &res), TKS_DECODE_OK);
  ASSERT_EQ(r.ts, 42);
  ASSERT(r.price == 99.5);
  ASSERT_EQ(r.volume, 12);
  struct tks_buf j = {0};
  ASSERT_EQ(tks_record_json(&schema, dec.symbols, dec.strings, &r, &j), 0);
  ASSERT_STR_EQ(j.data, "{\"ts\":42,\"ticker\":\"IBM\",\"price\":99.5,\"volume\":12,\"flags\":\"\"}");
  tks_buf_finish(&b);
  tks_buf_finish(&j);
}

/* tks_tick_msgpack: a record as the map ingest takes, read back by the
 * decoder to the same record, and by msgpack-c to the same values (ints in
 * their shortest form at every boundary, -0.0 and NaN kept bit for bit). */
TEST(a_record_rendered_as_msgpack_decodes_to_the_same_record) {
  setup(65536);
  static const int64_t ints[] = {0,
                                 1,
                                 127,
                                 128,
                                 255,
                                 256,
                                 65535,
                                 65536,
                                 -1,
                                 -32,
                                 -33,
                                 -128,
                                 -129,
                                 -32768,
                                 -32769,
                                 INT32_MIN,
                                 (int64_t)INT32_MIN - 1,
                                 INT64_MIN,
                                 INT64_MAX,
                                 4294967295,
                                 4294967296};
  uint32_t ibm;
  ASSERT_EQ(tks_symtab_intern(dec.symbols, "IBM", 3, &ibm), 0);
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
    double prices[] = {-0.0, NAN, 2.0};
    struct rec r = {
        .ts = ints[i], .price = prices[i % 3], .volume = ints[(i + 5) % 21], .ticker = ibm};
    struct tks_buf b = {0};
    ASSERT_EQ(tks_tick_msgpack(&schema, NULL, dec.symbols, dec.strings, &r, NULL, &b), 0);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    ASSERT_EQ(msgpack_unpack_next(&u, b.data, b.len, &off), MSGPACK_UNPACK_SUCCESS);
    ASSERT_EQ(off, b.len);
    ASSERT_EQ(u.data.type, MSGPACK_OBJECT_MAP);
    ASSERT_EQ(u.data.via.map.size, 5);
    msgpack_object ts = u.data.via.map.ptr[0].val;
    ASSERT(ts.type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
           ts.type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
    if (ints[i] >= 0)
      ASSERT_EQ(ts.via.u64, (uint64_t)ints[i]);
    else
      ASSERT_EQ(ts.via.i64, ints[i]);
    msgpack_unpacked_destroy(&u);
    if (i % 3 != 1) { /* the decoder refuses NaN in a declared field, as it should */
      struct rec back;
      struct tks_decode_result res;
      ASSERT_EQ(tks_decode(&dec, (const uint8_t *)b.data, b.len, 0, &back, &res), TKS_DECODE_OK);
      ASSERT_EQ(back.ts, r.ts);
      ASSERT_EQ(back.volume, r.volume);
      ASSERT_EQ(back.ticker, ibm);
      ASSERT(memcmp(&back.price, &r.price, sizeof r.price) == 0);
    }
    tks_buf_finish(&b);
  }
}

/* A schema of the given fields (name, type), laid out. */
static void make_schema(struct tks_schema *sc, unsigned n, const char *const *names,
                        const enum tks_type *types) {
  memset(sc, 0, sizeof *sc);
  snprintf(sc->name, sizeof sc->name, "T");
  for (unsigned i = 0; i < n; i++) {
    snprintf(sc->fields[i].name, sizeof sc->fields[i].name, "%s", names[i]);
    sc->fields[i].type = types[i];
  }
  sc->nfields = n;
  char err[128];
  ASSERT_EQ(tks_schema_layout(sc, err, sizeof err), 0);
}

/* The record renderer's plan (schema.h mp_plan, threaded code) and the
 * loop it falls back to for a key over 23 bytes write exactly the bytes of
 * the generic renderer (put_value, reached here with an empty overflow
 * object), for records of every type at every boundary of its forms: ints
 * of each width, -0.0, NaN, Inf, names of 0 to 255 bytes and ids not in
 * their table (nil), many to one buffer (texts past the reserved slack). */
TEST(the_record_renderer_writes_the_bytes_of_the_generic_one) {
  setup(65536);
  static const char *const short_names[] = {
      "ts", "s", "k", "abcdefgh", "flags", "p", "volume", "x_23_bytes_long_name_xx", "b"};
  static const char *const long_names[] = {"ts",    "s", "k",      "a_name_of_twenty_four_b",
                                           "flags", "p", "volume", "x_23_bytes_long_name_xxy",
                                           "b"};
  static const enum tks_type types[] = {TKS_TYPE_TIMESTAMP, TKS_TYPE_SYMBOL, TKS_TYPE_STRING,
                                        TKS_TYPE_I64,       TKS_TYPE_U32,    TKS_TYPE_F64,
                                        TKS_TYPE_I64,       TKS_TYPE_STRING, TKS_TYPE_BOOL};
  /* 18 fields (a map16 header): the nine, then again named with a "2". */
  static char wide_names[18][32];
  static const char *wide_ptrs[18];
  static enum tks_type wide_types[18];
  for (unsigned i = 0; i < 18; i++) {
    snprintf(wide_names[i], sizeof wide_names[i], i < 9 ? "%s" : "%.20s2", short_names[i % 9]);
    wide_ptrs[i] = wide_names[i];
    wide_types[i] = i >= 9 && types[i % 9] == TKS_TYPE_TIMESTAMP ? TKS_TYPE_I64 : types[i % 9];
  }
  static struct tks_schema schemas[3];
  make_schema(&schemas[0], 9, short_names, types);
  make_schema(&schemas[1], 9, long_names, types);
  make_schema(&schemas[2], 18, wide_ptrs, wide_types);
  ASSERT(schemas[0].mp_plan_ok && !schemas[1].mp_plan_ok && schemas[2].mp_plan_ok);
  struct tks_schema dflt;
  tks_schema_default(&dflt);
  ASSERT(dflt.mp_plan_ok);

  static const int64_t ints[] = {0,
                                 1,
                                 127,
                                 128,
                                 255,
                                 256,
                                 65535,
                                 65536,
                                 -1,
                                 -32,
                                 -33,
                                 -128,
                                 -129,
                                 -32768,
                                 -32769,
                                 INT32_MIN,
                                 (int64_t)INT32_MIN - 1,
                                 INT64_MIN,
                                 INT64_MAX,
                                 4294967295,
                                 4294967296,
                                 1764547200123456789};
  static const uint32_t u32s[] = {0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX};
  const double f64s[] = {0.0, -0.0, 1.5, -2.0, NAN, INFINITY, -INFINITY, 1e308, 5e-324};
  static const size_t lens[] = {0, 1, 3, 4, 7, 8, 16, 17, 31, 32, 33, 255};
  uint32_t ids[sizeof lens / sizeof lens[0] + 1];
  for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
    char name[256];
    for (size_t k = 0; k < lens[li]; k++) name[k] = (char)('a' + (k * 5 + li) % 26);
    ids[li] = 0;
    if (lens[li]) ASSERT_EQ(tks_symtab_intern(dec.symbols, name, lens[li], &ids[li]), 0);
    uint32_t sid = 0;
    if (lens[li]) ASSERT_EQ(tks_symtab_intern(dec.strings, name, lens[li], &sid), 0);
    ASSERT_EQ(sid, ids[li]); /* the same ids in both tables */
  }
  ids[sizeof lens / sizeof lens[0]] = 1000; /* in neither table: nil */
  const size_t nids = sizeof ids / sizeof ids[0];

  uint8_t objmem[256] __attribute__((aligned(8)));
  ASSERT(tks_dynobj_size(0, 0) <= sizeof objmem);
  const struct tks_dynobj *empty = tks_dynobj_init(objmem, 0, 0);
  struct tks_symtab *names = tks_symtab_create(0); /* the overflow's field names: none */
  ASSERT(empty && names);
  uint64_t x = 12345;
  unsigned compared = 0;
  for (unsigned si = 0; si < 4; si++) {
    const struct tks_schema *sc = si < 3 ? &schemas[si] : &dflt;
    struct tks_buf fast = {0}, slow = {0};
    for (unsigned round = 0; round < 3000; round++) {
      _Alignas(8) unsigned char rec[TKS_RECORD_MAX];
      memset(rec, 0, sizeof rec);
      for (unsigned fi = 0; fi < sc->nfields; fi++) {
        const struct tks_field *f = &sc->fields[fi];
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(x >> 33) + round;
        unsigned char *at = rec + f->offset;
        switch (f->type) {
        case TKS_TYPE_TIMESTAMP:
        case TKS_TYPE_I64: memcpy(at, &ints[r % (sizeof ints / sizeof ints[0])], 8); break;
        case TKS_TYPE_U32: memcpy(at, &u32s[r % (sizeof u32s / sizeof u32s[0])], 4); break;
        case TKS_TYPE_F64: memcpy(at, &f64s[r % (sizeof f64s / sizeof f64s[0])], 8); break;
        case TKS_TYPE_BOOL: *(bool *)at = r & 1; break;
        case TKS_TYPE_SYMBOL:
        case TKS_TYPE_STRING: memcpy(at, &ids[r % nids], 4); break;
        case TKS_TYPE__COUNT: break;
        }
      }
      size_t at_fast = fast.len, at_slow = slow.len;
      ASSERT_EQ(tks_tick_msgpack(sc, names, dec.symbols, dec.strings, rec, NULL, &fast), 0);
      ASSERT_EQ(tks_tick_msgpack(sc, names, dec.symbols, dec.strings, rec, empty, &slow), 0);
      ASSERT_EQ(fast.len - at_fast, slow.len - at_slow);
      ASSERT(memcmp(fast.data + at_fast, slow.data + at_slow, fast.len - at_fast) == 0);
      compared++;
    }
    /* The stream as a whole, too (no byte written past a record's end). */
    ASSERT_EQ(fast.len, slow.len);
    ASSERT(memcmp(fast.data, slow.data, fast.len) == 0);
    tks_buf_finish(&fast);
    tks_buf_finish(&slow);
  }
  ASSERT_EQ(compared, 4 * 3000);
  tks_symtab_destroy(names);
}

/* Symbol names of every length class the renderer copies differently
 * (1-3, 4-7, 8-16, 17-31 bytes, a str8 from 32, the longest) come back
 * byte for byte, "" (id 0) too. */
TEST(symbol_names_of_every_length_render_byte_for_byte) {
  setup(65536);
  static const size_t lens[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 200, 255};
  for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
    char name[256];
    for (size_t k = 0; k < lens[li]; k++) name[k] = (char)('A' + (k * 7 + li) % 26);
    uint32_t id = 0;
    if (lens[li]) ASSERT_EQ(tks_symtab_intern(dec.symbols, name, lens[li], &id), 0);
    struct rec r = {.ts = 1, .price = 1.5, .volume = 3, .ticker = id};
    struct tks_buf b = {0};
    ASSERT_EQ(tks_tick_msgpack(&schema, NULL, dec.symbols, dec.strings, &r, NULL, &b), 0);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    ASSERT_EQ(msgpack_unpack_next(&u, b.data, b.len, &off), MSGPACK_UNPACK_SUCCESS);
    ASSERT_EQ(off, b.len);
    const msgpack_object *t = NULL;
    for (uint32_t k = 0; k < u.data.via.map.size; k++)
      if (u.data.via.map.ptr[k].key.via.str.size == 6 &&
          memcmp(u.data.via.map.ptr[k].key.via.str.ptr, "ticker", 6) == 0)
        t = &u.data.via.map.ptr[k].val;
    ASSERT(t && t->type == MSGPACK_OBJECT_STR);
    ASSERT_EQ(t->via.str.size, lens[li]);
    ASSERT(memcmp(t->via.str.ptr, name, lens[li]) == 0);
    /* the header msgpack-c's packer would write: fixstr below 32, else str8
     * (msgpack-c's pointer for "" need not point into the buffer) */
    const uint8_t *raw = (const uint8_t *)t->via.str.ptr - (lens[li] < 32 ? 1 : 2);
    if (lens[li]) ASSERT_EQ(raw[0], (lens[li] < 32 ? (0xa0 | lens[li]) : 0xd9));
    msgpack_unpacked_destroy(&u);
    tks_buf_finish(&b);
  }
}

/* A float reads back as a float, exactly: "2.0" not "2", "-0.0" with its
 * sign, the shortest form that parses to the same double. */
TEST(a_float_renders_as_a_float_that_reads_back_exactly) {
  setup(65536);
  static const struct {
    double x;
    const char *json;
  } cases[] = {
      {2.0, "2.0"},          {-0.0, "-0.0"},
      {0.0, "0.0"},          {0.1, "0.1"},
      {150.05, "150.05"},    {1e20, "1e+20"},
      {-3.5e-7, "-3.5e-07"}, {123456789012345.0, "123456789012345.0"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct rec r = {.ts = 1, .price = cases[i].x, .volume = 1};
    struct tks_buf j = {0};
    ASSERT_EQ(tks_record_json(&schema, dec.symbols, dec.strings, &r, &j), 0);
    char want[128];
    snprintf(want, sizeof want, "\"price\":%s,", cases[i].json);
    ASSERT_CONTAINS(j.data, want);
    char *at = strstr(j.data, "\"price\":") + 8;
    double back = strtod(at, NULL);
    ASSERT(memcmp(&back, &cases[i].x, sizeof back) == 0); /* the same bits, -0.0 too */
    tks_buf_finish(&j);
  }
}

TEST(timestamp_extension_out_of_int64_range_is_bad_value) {
  /* ts64 (0xd7) with 2^34-1 seconds, and ts96 (0xc7) with ns past a second. */
  uint8_t d7[] = {0x84, 0xa6, 't', 'i', 'c', 'k', 'e', 'r', 0xa1, 'A', 0xa5, 'p', 'r', 'i', 'c', 'e',
                  0x01, 0xa6, 'v', 'o', 'l', 'u', 'm', 'e', 0x01, 0xa2, 't', 's',
                  0xd7, 0xff, 0x00, 0x00, 0x00, 0x03, 0xff, 0xff, 0xff, 0xff};
  uint8_t c7[] = {0x84, 0xa6, 't', 'i', 'c', 'k', 'e', 'r', 0xa1, 'A', 0xa5, 'p', 'r', 'i', 'c', 'e',
                  0x01, 0xa6, 'v', 'o', 'l', 'u', 'm', 'e', 0x01, 0xa2, 't', 's',
                  0xc7, 12, 0xff, 0x3b, 0x9a, 0xca, 0x00, 0, 0, 0, 0, 0, 0, 0, 1};
  const uint8_t *cases[] = {d7, c7};
  size_t lens[] = {sizeof d7, sizeof c7};
  for (int i = 0; i < 2; i++) {
    setup(65536);
    struct rec r;
    struct tks_decode_result res;
    ASSERT_EQ(tks_decode(&dec, cases[i], lens[i], 0, &r, &res), TKS_DECODE_REJECT);
    ASSERT_STR_EQ(tks_reason_name(res.reason), "bad_value");
    ASSERT_STR_EQ(res.detail, "ts");
  }
}

TEST(control_bytes_of_a_key_never_reach_the_detail) {
  setup(65536);
  start();
  msgpack_pack_map(&pk, 1);
  str("bad\nkey\x01");
  msgpack_pack_int64(&pk, 1);
  expect_reject(TKS_REASON_BAD_KEY, "bad\\x0akey\\x01");
}

/* A tick of the default schema whose ticker, flags or one more key is given. */
static void pack_tick_with(const char *ticker, size_t tlen, const char *flags, size_t flen) {
  msgpack_pack_map(&pk, 4);
  str("ticker");
  msgpack_pack_str(&pk, tlen);
  msgpack_pack_str_body(&pk, ticker, tlen);
  str("price");
  msgpack_pack_double(&pk, 1);
  str("volume");
  msgpack_pack_int64(&pk, 1);
  str("flags");
  msgpack_pack_str(&pk, flen);
  msgpack_pack_str_body(&pk, flags, flen);
}

TEST(a_ticker_not_utf8_is_bad_value_and_interns_nothing) {
  setup(65536);
  start();
  pack_tick_with("BAD\xff\xfe", 5, "R", 1);
  expect_reject(TKS_REASON_BAD_VALUE, "ticker");
  start();
  pack_tick_with("\xc0\xaf", 2, "R", 1); /* an overlong '/' */
  expect_reject(TKS_REASON_BAD_VALUE, "ticker");
  ASSERT_EQ(tks_symtab_count(dec.strings), 0);
}

TEST(a_ticker_with_a_space_or_a_control_character_is_bad_value) {
  setup(65536);
  const char *bad[] = {"BRK B", "AAPL\n", "A\tB", "\x1b[2J", "X\x7f", "NEL\xc2\x85"};
  for (size_t i = 0; i < TKS_ARRAY_SIZE(bad); i++) {
    start();
    pack_tick_with(bad[i], strlen(bad[i]), "R", 1);
    expect_reject(TKS_REASON_BAD_VALUE, "ticker");
  }
  /* Beyond ASCII is fine. */
  start();
  pack_tick_with("N\xc3\x96K", 4, "R", 1);
  struct rec r;
  struct tks_decode_result res;
  ASSERT_EQ(decode(&r, &res), TKS_DECODE_OK);
}

TEST(a_string_field_not_utf8_is_bad_value_but_may_hold_spaces) {
  setup(65536);
  start();
  pack_tick_with("A", 1, "R\xed\xa0\x80", 4); /* a surrogate */
  expect_reject(TKS_REASON_BAD_VALUE, "flags");
  ASSERT_EQ(tks_symtab_count(dec.strings), 0);
  start();
  pack_tick_with("A", 1, "odd lot\n", 8);
  struct rec r;
  struct tks_decode_result res;
  ASSERT_EQ(decode(&r, &res), TKS_DECODE_OK);
}

TEST(an_unknown_key_not_utf8_is_bad_key_with_its_bytes_escaped) {
  setup(65536);
  start();
  msgpack_pack_map(&pk, 4);
  str("ticker");
  str("A");
  str("price");
  msgpack_pack_double(&pk, 1);
  str("volume");
  msgpack_pack_int64(&pk, 1);
  str("ex\xff"
      "ch");
  str("XNAS");
  expect_reject(TKS_REASON_BAD_KEY, "ex\\xffch");
  /* A key with a space is an ordinary unknown field. */
  start();
  msgpack_pack_map(&pk, 4);
  str("ticker");
  str("A");
  str("price");
  msgpack_pack_double(&pk, 1);
  str("volume");
  msgpack_pack_int64(&pk, 1);
  str("venue name");
  str("XNAS");
  expect_reject(TKS_REASON_UNKNOWN_FIELD, "venue name");
}

TEST(a_long_unknown_key_is_cut_in_the_detail_between_characters) {
  setup(65536);
  start();
  char k[100];
  size_t n = 0;
  k[n++] = 'k';
  while (n + 2 <= 80) k[n++] = '\xc3', k[n++] = '\xa9'; /* e acute, from an odd offset */
  msgpack_pack_map(&pk, 1);
  msgpack_pack_str(&pk, n);
  msgpack_pack_str_body(&pk, k, n);
  msgpack_pack_int64(&pk, 1);
  struct rec r;
  struct tks_decode_result res;
  ASSERT_EQ(decode(&r, &res), TKS_DECODE_REJECT);
  ASSERT_EQ(res.reason, TKS_REASON_UNKNOWN_FIELD);
  ASSERT_EQ(strlen(res.detail), 63);
  ASSERT(tks_utf8_valid(res.detail, strlen(res.detail)));
}

TEST(a_key_repeated_after_a_nil_is_still_a_duplicate) {
  setup(65536);
  start();
  msgpack_pack_map(&pk, 4);
  str("ticker"); str("A");
  str("price"); msgpack_pack_nil(&pk);
  str("price"); msgpack_pack_double(&pk, 7);
  str("volume"); msgpack_pack_int64(&pk, 1);
  expect_reject(TKS_REASON_DUPLICATE_FIELD, "price");
}

/* ---- dynamic and fallback modes ---- */

static struct tks_dyn_tick dt;

static void setup_mode_names(enum tks_mode mode, uint32_t max_names) {
  setup(65536);
  dec.mode = mode;
  dec.names = tks_symtab_create(max_names);
}

static void setup_mode(enum tks_mode mode) { setup_mode_names(mode, 128); }

static enum tks_decode_status decode_dyn(struct rec *r, struct tks_decode_result *res) {
  memset(res, 0, sizeof *res);
  res->dyn = &dt;
  return tks_decode(&dec, (const uint8_t *)sb.data, sb.size, 777, r, res);
}

TEST(fallback_keeps_a_plain_tick_slotted) {
  setup_mode(TKS_MODE_FALLBACK);
  start();
  pack_good_tick();
  struct rec r;
  struct tks_decode_result res;
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_OK);
  ASSERT_EQ(tks_symtab_count(dec.names), 0);
}

TEST(fallback_turns_a_tick_with_extra_fields_into_a_dynamic_tick) {
  setup_mode(TKS_MODE_FALLBACK);
  start();
  msgpack_pack_map(&pk, 6);
  str("exchange"); str("XNAS");
  str("ticker"); str("AAPL");
  str("price"); msgpack_pack_double(&pk, 150.05);
  str("seq"); msgpack_pack_uint64(&pk, UINT64_MAX);
  str("volume"); msgpack_pack_int64(&pk, 100);
  str("halt"); msgpack_pack_true(&pk);
  struct rec r;
  struct tks_decode_result res;
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_DYNAMIC);
  ASSERT_EQ(res.consumed, sb.size);
  ASSERT(!res.has_ts);
  /* The record is filled too (fallback keeps it beside an overflow map). */
  ASSERT_EQ(r.ts, 777);
  ASSERT(r.price == 150.05);
  ASSERT_EQ(dt.undeclared, 3);
  ASSERT_EQ(dt.n, 7); /* ts (receive time), ticker, price, volume, then 3 undeclared */
  ASSERT_EQ(dt.ts, 777);
  ASSERT_STR_EQ(tks_symtab_name(dec.symbols, dt.symbol, NULL), "AAPL");
  ASSERT_EQ(dt.f[0].field, 0);
  ASSERT_EQ(dt.f[0].value.v.i, 777);
  ASSERT_EQ(dt.f[1].field, 1);
  ASSERT_EQ(dt.f[1].value.type, TKS_V_SYM);
  ASSERT_EQ(dt.f[4].field, -1);
  ASSERT_EQ(dt.f[4].value.type, TKS_V_STR);
  ASSERT_EQ(memcmp(dt.f[4].value.v.s.p, "XNAS", 4), 0);
  ASSERT_EQ(dt.f[5].value.type, TKS_V_UINT);
  ASSERT_U64_EQ(dt.f[5].value.v.u, UINT64_MAX);
  ASSERT_EQ(dt.f[6].value.type, TKS_V_BOOL);
  ASSERT_EQ(dt.string_bytes, 4);
  ASSERT_STR_EQ(tks_symtab_name(dec.names, dt.f[4].name, NULL), "exchange");
}

/* NaN and +-Inf in an undeclared field are refused as a declared f64
 * refuses them (bad_value, naming the field): JSON could not give them
 * back.  Finite floats, -0.0 included, are kept. */
TEST(a_non_finite_float_in_an_undeclared_field_is_bad_value) {
  const double bad[] = {NAN, INFINITY, -INFINITY};
  for (int m = 0; m < 2; m++) {
    for (size_t i = 0; i < 4; i++) {
      setup_mode(m ? TKS_MODE_DYNAMIC : TKS_MODE_FALLBACK);
      start();
      msgpack_pack_map(&pk, 4);
      str("ticker");
      str("AAPL");
      str("price");
      msgpack_pack_double(&pk, 150.05);
      str("volume");
      msgpack_pack_int64(&pk, 100);
      str("spread");
      msgpack_pack_double(&pk, i < 3 ? bad[i] : -0.0);
      struct rec r;
      struct tks_decode_result res;
      enum tks_decode_status st = decode_dyn(&r, &res);
      if (i == 3) {
        ASSERT_EQ(st, TKS_DECODE_DYNAMIC);
        continue;
      }
      ASSERT_EQ(st, TKS_DECODE_REJECT);
      ASSERT_EQ(res.reason, TKS_REASON_BAD_VALUE);
      ASSERT_STR_EQ(res.detail, "spread");
      ASSERT_EQ(res.consumed, sb.size);
    }
  }
}

TEST(dynamic_mode_makes_every_tick_dynamic) {
  setup_mode(TKS_MODE_DYNAMIC);
  start();
  pack_good_tick();
  struct rec r;
  struct tks_decode_result res;
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_DYNAMIC);
  ASSERT_EQ(dt.n, 5);
  ASSERT_EQ(dt.undeclared, 0);
  ASSERT_EQ(dt.ts, 1732500000000000000LL);
  /* Array form too. */
  start();
  msgpack_pack_array(&pk, 5);
  msgpack_pack_nil(&pk); str("B"); msgpack_pack_double(&pk, 1); msgpack_pack_int64(&pk, 2);
  msgpack_pack_nil(&pk);
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_DYNAMIC);
  ASSERT_EQ(dt.n, 4); /* ts added, no flags */
}

TEST(dynamic_ticks_are_still_checked_against_the_schema) {
  setup_mode(TKS_MODE_DYNAMIC);
  start();
  msgpack_pack_map(&pk, 3);
  str("ticker"); str("A");
  str("price"); str("1.5");
  str("volume"); msgpack_pack_int64(&pk, 1);
  struct rec r;
  struct tks_decode_result res;
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_REJECT);
  ASSERT_EQ(res.reason, TKS_REASON_BAD_TYPE);
  start();
  msgpack_pack_map(&pk, 2);
  str("ticker"); str("A");
  str("x"); msgpack_pack_int64(&pk, 1);
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_REJECT);
  ASSERT_EQ(res.reason, TKS_REASON_MISSING_FIELD);
}

static void pack_base(unsigned extra) {
  msgpack_pack_map(&pk, 3 + extra);
  str("ticker"); str("A");
  str("price"); msgpack_pack_double(&pk, 1);
  str("volume"); msgpack_pack_int64(&pk, 1);
}

/* A msgpack timestamp32 (0xd6, type -1) of sec seconds. */
static void pack_ts32(uint32_t sec) {
  char be[4] = {(char)(sec >> 24), (char)(sec >> 16), (char)(sec >> 8), (char)sec};
  msgpack_pack_ext(&pk, 4, -1);
  msgpack_pack_ext_body(&pk, be, 4);
}

TEST(a_timestamp_extension_is_an_int_only_where_no_type_is_declared) {
  /* In an i64 field it is the wrong type ... */
  setup(65536);
  start();
  msgpack_pack_map(&pk, 3);
  str("ticker"); str("A");
  str("price"); msgpack_pack_double(&pk, 1);
  str("volume"); pack_ts32(3);
  expect_reject(TKS_REASON_BAD_TYPE, "volume");
  /* ... and undeclared, an int of ns. */
  setup_mode(TKS_MODE_FALLBACK);
  start();
  pack_base(1);
  str("seen"); pack_ts32(3);
  struct rec r;
  struct tks_decode_result res;
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_DYNAMIC);
  ASSERT_EQ(dt.f[dt.n - 1].field, -1);
  ASSERT_EQ(dt.f[dt.n - 1].value.type, TKS_V_INT);
  ASSERT_EQ(dt.f[dt.n - 1].value.v.i, 3000000000LL);
  ASSERT_EQ(dt.f[dt.n - 1].value.flags, 0);
}

TEST(hostile_undeclared_fields_get_a_clear_reason) {
  setup_mode(TKS_MODE_FALLBACK);
  struct rec r;
  struct tks_decode_result res;
  /* A nested map as a value. */
  start();
  pack_base(1);
  str("nest"); msgpack_pack_map(&pk, 1); str("a"); msgpack_pack_int64(&pk, 1);
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_REJECT);
  ASSERT_EQ(res.reason, TKS_REASON_BAD_TYPE);
  ASSERT_STR_EQ(res.detail, "nest");
  /* A field name over 255 bytes. */
  start();
  pack_base(1);
  char k[300];
  memset(k, 'k', 299);
  k[299] = '\0';
  str(k); msgpack_pack_int64(&pk, 1);
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_REJECT);
  ASSERT_EQ(res.reason, TKS_REASON_BAD_VALUE);
  /* The same undeclared key twice. */
  start();
  pack_base(2);
  str("x"); msgpack_pack_int64(&pk, 1);
  str("x"); msgpack_pack_int64(&pk, 2);
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_REJECT);
  ASSERT_EQ(res.reason, TKS_REASON_DUPLICATE_FIELD);
  /* More fields than a dynamic tick may carry. */
  start();
  pack_base(62);
  for (int i = 0; i < 62; i++) {
    char n[8];
    snprintf(n, sizeof n, "x%d", i);
    str(n);
    msgpack_pack_int64(&pk, i);
  }
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_REJECT);
  ASSERT_EQ(res.reason, TKS_REASON_TOO_MANY_FIELDS);
  /* 61 extra fields (64 in all) fit. */
  start();
  pack_base(61);
  for (int i = 0; i < 61; i++) {
    char n[8];
    snprintf(n, sizeof n, "x%d", i);
    str(n);
    msgpack_pack_int64(&pk, i);
  }
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_DYNAMIC);
  ASSERT_EQ(dt.undeclared, 61);
  /* Nothing of the rejected ticks was interned. */
  ASSERT_EQ(tks_symtab_count(dec.names), 4 + 61);
}

TEST(undeclared_keys_and_values_not_utf8_add_nothing_to_any_table) {
  setup_mode(TKS_MODE_FALLBACK);
  struct rec r;
  struct tks_decode_result res;
  start();
  pack_base(1);
  str("ex\xff"
      "ch");
  str("XNAS");
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_REJECT);
  ASSERT_EQ(res.reason, TKS_REASON_BAD_KEY);
  ASSERT_STR_EQ(res.detail, "ex\\xffch");
  start();
  pack_base(1);
  str("line\nbreak");
  msgpack_pack_int64(&pk, 1);
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_REJECT);
  ASSERT_EQ(res.reason, TKS_REASON_BAD_KEY);
  start();
  pack_base(1);
  str("exch");
  str("XN\xf4\x90\x80\x80"); /* past U+10FFFF */
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_REJECT);
  ASSERT_EQ(res.reason, TKS_REASON_BAD_VALUE);
  ASSERT_STR_EQ(res.detail, "exch");
  ASSERT_EQ(tks_symtab_count(dec.names), 0);
  ASSERT_EQ(tks_symtab_count(dec.symbols), 0);
  ASSERT_EQ(tks_symtab_count(dec.strings), 0);
  /* In dynamic mode the same. */
  setup_mode(TKS_MODE_DYNAMIC);
  start();
  pack_base(1);
  str("\xfe");
  msgpack_pack_int64(&pk, 1);
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_REJECT);
  ASSERT_EQ(res.reason, TKS_REASON_BAD_KEY);
  ASSERT_EQ(tks_symtab_count(dec.names), 0);
}

TEST(an_object_over_the_page_size_is_bad_value_before_anything_is_interned) {
  setup_mode(TKS_MODE_FALLBACK);
  dec.max_object_bytes = 256;
  struct rec r;
  struct tks_decode_result res;
  char big[300];
  memset(big, 'v', sizeof big);
  start();
  pack_base(2);
  str("a");
  msgpack_pack_str(&pk, 200);
  msgpack_pack_str_body(&pk, big, 200);
  str("b");
  msgpack_pack_str(&pk, 100);
  msgpack_pack_str_body(&pk, big, 100);
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_REJECT);
  ASSERT_EQ(res.reason, TKS_REASON_BAD_VALUE);
  ASSERT_CONTAINS(res.detail, "slab page");
  ASSERT_EQ(tks_symtab_count(dec.names), 0);
  ASSERT_EQ(tks_symtab_count(dec.symbols), 0);
  /* Exactly what fits is kept. */
  start();
  pack_base(1);
  size_t room = 256 - tks_dynobj_size(1, 0);
  str("a");
  msgpack_pack_str(&pk, room);
  msgpack_pack_str_body(&pk, big, room);
  enum tks_decode_status st = decode_dyn(&r, &res);
  if (st != TKS_DECODE_DYNAMIC) TEST_FAIL("%s %s", tks_reason_name(res.reason), res.detail);
  ASSERT_EQ(tks_dynobj_size(1, dt.string_bytes), 256);
  /* In dynamic mode the declared fields count too. */
  setup_mode(TKS_MODE_DYNAMIC);
  dec.max_object_bytes = tks_dynobj_size(4, 0); /* ticker, price, volume, ts */
  start();
  pack_base(0);
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_DYNAMIC);
  start();
  pack_base(1);
  str("x");
  msgpack_pack_int64(&pk, 1);
  if (tks_dynobj_size(5, 0) > dec.max_object_bytes) {
    ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_REJECT);
    ASSERT_EQ(res.reason, TKS_REASON_BAD_VALUE);
  }
}

TEST(check_only_decodes_and_interns_nothing) {
  setup_mode(TKS_MODE_FALLBACK);
  dec.check_only = true;
  struct rec r;
  struct tks_decode_result res;
  start();
  pack_good_tick();
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_OK);
  start();
  pack_base(1);
  str("x");
  msgpack_pack_int64(&pk, 1);
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_DYNAMIC);
  ASSERT_EQ(res.consumed, sb.size);
  ASSERT_EQ(tks_symtab_count(dec.names), 0);
  ASSERT_EQ(tks_symtab_count(dec.symbols), 0);
  ASSERT_EQ(tks_symtab_count(dec.strings), 0);
}

TEST(field_name_table_full_is_too_many_symbols) {
  setup_mode_names(TKS_MODE_FALLBACK, 64);
  struct rec r;
  struct tks_decode_result res;
  for (int i = 0; i < 70; i++) { /* the table holds 64 names */
    start();
    pack_base(1);
    char n[16];
    snprintf(n, sizeof n, "f%d", i);
    str(n);
    msgpack_pack_int64(&pk, i);
    enum tks_decode_status st = decode_dyn(&r, &res);
    if (st == TKS_DECODE_REJECT) {
      ASSERT_EQ(res.reason, TKS_REASON_TOO_MANY_SYMBOLS);
      ASSERT(i >= 60);
      return;
    }
    ASSERT_EQ(st, TKS_DECODE_DYNAMIC);
  }
  TEST_FAIL("the name table never filled");
}

TEST(tick_json_renders_a_record_with_its_overflow_fields) {
  setup_mode(TKS_MODE_FALLBACK);
  start();
  pack_base(2);
  str("exchange"); str("XNAS");
  str("n"); msgpack_pack_int64(&pk, -3);
  struct rec r;
  struct tks_decode_result res;
  ASSERT_EQ(decode_dyn(&r, &res), TKS_DECODE_DYNAMIC);
  static _Alignas(8) char mem[512];
  struct tks_dynobj *o = tks_dynobj_init(mem, dt.undeclared, dt.string_bytes);
  for (unsigned i = 0; i < dt.n; i++)
    if (dt.f[i].field < 0) ASSERT_EQ(tks_dynobj_put(o, dt.f[i].name, &dt.f[i].value), 0);
  struct tks_buf b = {0};
  ASSERT_EQ(tks_tick_json(&schema, dec.names, dec.symbols, dec.strings, &r, o, &b), 0);
  ASSERT_STR_EQ(b.data, "{\"ts\":777,\"ticker\":\"A\",\"price\":1.0,\"volume\":1,\"flags\":\"\","
                        "\"exchange\":\"XNAS\",\"n\":-3}");
  /* The same tick as a whole dynamic object. */
  o = tks_dynobj_init(mem, dt.n, dt.string_bytes);
  for (unsigned i = 0; i < dt.n; i++) ASSERT_EQ(tks_dynobj_put(o, dt.f[i].name, &dt.f[i].value), 0);
  b.len = 0;
  ASSERT_EQ(tks_tick_json(&schema, dec.names, dec.symbols, dec.strings, NULL, o, &b), 0);
  ASSERT_STR_EQ(b.data, "{\"ts\":777,\"ticker\":\"A\",\"price\":1.0,\"volume\":1,"
                        "\"exchange\":\"XNAS\",\"n\":-3}");
  tks_buf_finish(&b);
}

/* Frees what the last setup() and start() made, so LeakSanitizer sees
 * only real leaks. */
__attribute__((destructor)) static void cleanup(void) {
  tks_symtab_destroy(dec.symbols);
  tks_symtab_destroy(dec.strings);
  tks_symtab_destroy(dec.names);
  dec.symbols = dec.strings = dec.names = NULL;
  msgpack_sbuffer_destroy(&sb);
  memset(&sb, 0, sizeof sb);
}

TEST_MAIN()

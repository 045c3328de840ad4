/*
 * Unit tests of lib/oprec.c, the journal's records: every kind encodes to
 * the bytes oprec.h documents and parses back to what was encoded (symbols
 * of 1 and 255 bytes, every rep, extreme seals and cuts); encode refuses
 * what it cannot write; parse refuses every truncation, a trailing byte, a
 * wrong mark, an oversized length, and reads a flipped bit as exactly what
 * the flipped bytes say or refuses it.  Every payload parse is given sits
 * in a heap buffer of exactly its length, so a read past the end is an
 * AddressSanitizer error in the ASan build.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oprec.h"
#include "store.h"
#include "test.h"

/* A copy of p[0..n) in a heap buffer of exactly n bytes (at least 1 to
 * malloc: n 0 still gets a buffer nothing may read). */
static uint8_t *exact(const void *p, size_t n) {
  uint8_t *b = malloc(n ? n : 1);
  ASSERT(b);
  if (n) memcpy(b, p, n);
  return b;
}

/* Parses p[0..n) from an exact-size copy; the result's symbol is checked
 * to lie inside the payload, then pointed at the same offset of p, so that
 * callers can read it after the copy is freed. */
static int parse_exact(const uint8_t *p, size_t n, struct tks_oprec *out) {
  uint8_t *b = exact(p, n);
  int rc = tks_oprec_parse(b, n, out);
  if (rc == 0 && out->kind == TKS_OPREC_EVICT) {
    const uint8_t *s = (const uint8_t *)out->symbol;
    ASSERT(s >= b + 11 && s + out->symbol_len <= b + n);
    out->symbol = (const char *)p + (s - b);
  }
  if (rc == 0 && out->kind == TKS_OPREC_PRODUCER) {
    const uint8_t *s = (const uint8_t *)out->producer;
    ASSERT(s == b + 10 && s + out->producer_len <= b + n);
    out->producer = (const char *)p + 10;
    if (out->has_ticks) out->data = p + (n - out->data_len);
  }
  free(b);
  return rc;
}

static void expect_same(const struct tks_oprec *got, const struct tks_oprec *want) {
  ASSERT_EQ(got->kind, want->kind);
  switch (want->kind) {
  case TKS_OPREC_EVICT:
    ASSERT_EQ(got->rep, want->rep);
    ASSERT_EQ(got->symbol_len, want->symbol_len);
    ASSERT(memcmp(got->symbol, want->symbol, want->symbol_len) == 0);
    ASSERT_U64_EQ(got->ticks, want->ticks);
    break;
  case TKS_OPREC_SEAL_BEGIN:
    ASSERT_U64_EQ(got->seal, want->seal);
    ASSERT_EQ(got->cut, want->cut);
    break;
  case TKS_OPREC_SEAL_COMMIT:
  case TKS_OPREC_SEAL_ABORT:
    ASSERT_U64_EQ(got->seal, want->seal);
    ASSERT_EQ(got->cut, 0); /* parse clears what the kind does not carry */
    break;
  case TKS_OPREC_PRODUCER: TEST_FAIL("producer records have tests of their own"); break;
  }
}

/* The length oprec.h gives each kind. */
static size_t documented_len(const struct tks_oprec *r) {
  switch (r->kind) {
  case TKS_OPREC_EVICT: return 8 + 1 + 1 + 1 + r->symbol_len + 8;
  case TKS_OPREC_SEAL_BEGIN: return 8 + 1 + 8 + 8;
  case TKS_OPREC_SEAL_COMMIT:
  case TKS_OPREC_SEAL_ABORT: return 8 + 1 + 8;
  case TKS_OPREC_PRODUCER: return 8 + 1 + 1 + r->producer_len + 8;
  }
  return 0;
}

/* ---- a set of valid records ------------------------------------------------ */

static char sym255[TKS_SYMBOL_MAX_LEN];

#define NVALID 40
static struct tks_oprec valid[NVALID];
static unsigned nvalid;

static void add_valid(struct tks_oprec r) {
  ASSERT(nvalid < NVALID);
  valid[nvalid++] = r;
}

/* Evicts of 1, 7 and 255 byte symbols in every rep, counts 0, 1 and
 * UINT64_MAX; seals of ids 0, 1 and UINT64_MAX with cuts at both ends of
 * int64 and around 0. */
static void make_valid(void) {
  for (size_t i = 0; i < sizeof sym255; i++) sym255[i] = (char)(0x21 + (i * 7) % 0x5e);
  sym255[3] = '\0'; /* a symbol is bytes, not a C string: a NUL inside goes through */
  sym255[200] = (char)0xff;
  static const uint64_t counts[] = {0, 1, UINT64_MAX};
  static const uint8_t lens[] = {1, 7, TKS_SYMBOL_MAX_LEN};
  for (uint8_t rep = 0; rep < TKS_STORE_REPS; rep++)
    for (unsigned l = 0; l < 3; l++)
      add_valid((struct tks_oprec){.kind = TKS_OPREC_EVICT,
                                   .rep = rep,
                                   .symbol = sym255,
                                   .symbol_len = lens[l],
                                   .ticks = counts[(rep + l) % 3]});
  static const uint64_t seals[] = {0, 1, UINT64_MAX};
  static const int64_t cuts[] = {INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX};
  for (unsigned i = 0; i < 6; i++)
    add_valid(
        (struct tks_oprec){.kind = TKS_OPREC_SEAL_BEGIN, .seal = seals[i % 3], .cut = cuts[i]});
  for (unsigned i = 0; i < 3; i++) {
    add_valid((struct tks_oprec){.kind = TKS_OPREC_SEAL_COMMIT, .seal = seals[i]});
    add_valid((struct tks_oprec){.kind = TKS_OPREC_SEAL_ABORT, .seal = seals[i]});
  }
}

static size_t encode(const struct tks_oprec *r, uint8_t out[static TKS_OPREC_MAX]) {
  size_t n = tks_oprec_encode(r, out);
  ASSERT_EQ(n, documented_len(r));
  ASSERT(n <= TKS_OPREC_MAX);
  return n;
}

/* ---- round trips ----------------------------------------------------------- */

TEST(every_kind_round_trips_through_encode_and_parse) {
  make_valid();
  ASSERT(nvalid >= 20);
  for (unsigned i = 0; i < nvalid; i++) {
    uint8_t buf[TKS_OPREC_MAX];
    size_t n = encode(&valid[i], buf);
    ASSERT(tks_oprec_is(buf, n));
    struct tks_oprec got;
    memset(&got, 0xa5, sizeof got); /* parse sets every field */
    ASSERT_EQ(parse_exact(buf, n, &got), 0);
    expect_same(&got, &valid[i]);
  }
}

TEST(the_longest_record_is_an_evict_of_255_bytes_and_fits_oprec_max) {
  uint8_t buf[TKS_OPREC_MAX];
  struct tks_oprec r = {.kind = TKS_OPREC_EVICT,
                        .rep = TKS_STORE_DYNAMIC,
                        .symbol = sym255,
                        .symbol_len = TKS_SYMBOL_MAX_LEN,
                        .ticks = 9};
  memset(sym255, 'x', sizeof sym255);
  ASSERT_EQ(tks_oprec_encode(&r, buf), TKS_OPREC_MAX);
  struct tks_oprec got;
  ASSERT_EQ(parse_exact(buf, TKS_OPREC_MAX, &got), 0);
  expect_same(&got, &r);
}

TEST(records_are_written_as_documented_little_endian) {
  uint8_t buf[TKS_OPREC_MAX];
  static const uint8_t mark[8] = {0, 0, 0, 0, 0, 0, 0, 0x80}; /* INT64_MIN */
  struct tks_oprec ev = {.kind = TKS_OPREC_EVICT,
                         .rep = TKS_STORE_OVERFLOW,
                         .symbol = "AB",
                         .symbol_len = 2,
                         .ticks = 0x0807060504030201ull};
  static const uint8_t want_ev[] = {0,   0,   0, 0, 0, 0, 0, 0x80, 1, 1, 2,
                                    'A', 'B', 1, 2, 3, 4, 5, 6,    7, 8};
  ASSERT_EQ(tks_oprec_encode(&ev, buf), sizeof want_ev);
  ASSERT(memcmp(buf, want_ev, sizeof want_ev) == 0);

  struct tks_oprec begin = {.kind = TKS_OPREC_SEAL_BEGIN, .seal = 0x1122334455667788ull, .cut = -2};
  static const uint8_t want_begin[] = {0,    0,    0,    0,    0,    0,    0,    0x80, 2,
                                       0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0xfe,
                                       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  ASSERT_EQ(tks_oprec_encode(&begin, buf), sizeof want_begin);
  ASSERT(memcmp(buf, want_begin, sizeof want_begin) == 0);

  struct tks_oprec abort_ = {.kind = TKS_OPREC_SEAL_ABORT, .seal = 5};
  ASSERT_EQ(tks_oprec_encode(&abort_, buf), 17);
  ASSERT(memcmp(buf, mark, 8) == 0);
  ASSERT_EQ(buf[8], 4);
  ASSERT_EQ(buf[9], 5);
  for (int i = 10; i < 17; i++) ASSERT_EQ(buf[i], 0);
}

TEST(a_flipped_value_bit_parses_to_exactly_that_value) {
  make_valid();
  for (unsigned i = 0; i < nvalid; i++) {
    uint8_t buf[TKS_OPREC_MAX];
    size_t n = encode(&valid[i], buf);
    /* The bytes after the kind that are values, not lengths or reps. */
    size_t from = valid[i].kind == TKS_OPREC_EVICT ? 11 : 9;
    for (size_t at = from; at < n; at++)
      for (int bit = 0; bit < 8; bit++) {
        uint8_t f[TKS_OPREC_MAX];
        memcpy(f, buf, n);
        f[at] ^= (uint8_t)(1u << bit);
        struct tks_oprec got, want = valid[i];
        char wsym[TKS_SYMBOL_MAX_LEN];
        ASSERT_EQ(parse_exact(f, n, &got), 0);
        if (want.kind == TKS_OPREC_EVICT) {
          memcpy(wsym, want.symbol, want.symbol_len);
          want.symbol = wsym;
          if (at < 11u + want.symbol_len)
            wsym[at - 11] ^= (char)(1u << bit);
          else
            want.ticks ^= 1ull << (8 * (at - 11 - want.symbol_len) + bit);
        } else if (at < 17) {
          want.seal ^= 1ull << (8 * (at - 9) + bit);
        } else {
          want.cut = (int64_t)((uint64_t)want.cut ^ (1ull << (8 * (at - 17) + bit)));
        }
        expect_same(&got, &want);
      }
  }
}

/* ---- encode refuses -------------------------------------------------------- */

TEST(encode_refuses_an_empty_symbol_a_rep_out_of_range_and_an_unknown_kind) {
  uint8_t buf[TKS_OPREC_MAX];
  struct tks_oprec r = {.kind = TKS_OPREC_EVICT, .rep = 0, .symbol = "A", .symbol_len = 0};
  ASSERT_EQ(tks_oprec_encode(&r, buf), 0);
  r.symbol_len = 1;
  ASSERT_EQ(tks_oprec_encode(&r, buf), 20); /* the same record with its byte is fine */
  for (unsigned rep = TKS_STORE_REPS; rep < 256; rep++) {
    r.rep = (uint8_t)rep;
    ASSERT_EQ(tks_oprec_encode(&r, buf), 0);
  }
  /* Kinds the enum can hold (0..7) but that are none of its values: a
   * value beyond its range would be undefined behaviour before encode. */
  static const int kinds[] = {0, 6, 7};
  for (unsigned i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    struct tks_oprec k = {.kind = (enum tks_oprec_kind)kinds[i], .seal = 1, .cut = 2};
    ASSERT_EQ(tks_oprec_encode(&k, buf), 0);
  }
}

/* ---- parse refuses --------------------------------------------------------- */

TEST(every_truncation_of_every_record_is_refused) {
  make_valid();
  for (unsigned i = 0; i < nvalid; i++) {
    uint8_t buf[TKS_OPREC_MAX];
    size_t n = encode(&valid[i], buf);
    for (size_t cut = 0; cut < n; cut++) {
      struct tks_oprec got;
      if (cut < 8) ASSERT(!tks_oprec_is(buf, cut));
      if (parse_exact(buf, cut, &got) != -EINVAL)
        TEST_FAIL("record %u (kind %d, %zu bytes) cut to %zu bytes parsed", i, valid[i].kind, n,
                  cut);
    }
  }
}

TEST(a_trailing_byte_after_any_record_is_refused) {
  make_valid();
  for (unsigned i = 0; i < nvalid; i++) {
    uint8_t buf[TKS_OPREC_MAX + 1];
    size_t n = encode(&valid[i], buf);
    if (n == 0 || n >= sizeof buf) TEST_FAIL("record %u encoded to %zu bytes", i, n);
    for (unsigned v = 0; v < 256; v += 85) {
      buf[n] = (uint8_t)v;
      struct tks_oprec got;
      if (parse_exact(buf, n + 1, &got) != -EINVAL)
        TEST_FAIL("record %u (kind %d) with byte %u after it parsed", i, valid[i].kind, v);
    }
  }
}

/* Kind, rep and length bytes: a flipped bit is read as the flipped value
 * means.  No single bit turns a kind into another of the same length
 * (evict is 20 bytes or more, begin 25, commit and abort 17; 1<->3 and
 * 2<->3 are one bit apart), so a flipped kind is always refused, but for
 * one that becomes a producer record (5), whose ticks make any length
 * past its header whole (its own tests cover it); a flipped
 * rep is that rep when it is one; a flipped symbol length no longer adds
 * up to the payload's length. */
TEST(a_flipped_kind_rep_or_length_bit_is_that_meaning_or_refused) {
  make_valid();
  unsigned reps_taken = 0;
  for (unsigned i = 0; i < nvalid; i++) {
    uint8_t buf[TKS_OPREC_MAX];
    size_t n = encode(&valid[i], buf);
    size_t last = valid[i].kind == TKS_OPREC_EVICT ? 10 : 8;
    for (size_t at = 8; at <= last; at++)
      for (int bit = 0; bit < 8; bit++) {
        uint8_t f[TKS_OPREC_MAX];
        memcpy(f, buf, n);
        f[at] ^= (uint8_t)(1u << bit);
        struct tks_oprec got;
        int rc = parse_exact(f, n, &got);
        if (at == 8 && f[8] == TKS_OPREC_PRODUCER) continue;
        if (at == 9 && f[9] < TKS_STORE_REPS) {
          ASSERT_EQ(rc, 0);
          struct tks_oprec want = valid[i];
          want.rep = f[9];
          expect_same(&got, &want);
          reps_taken++;
        } else if (rc != -EINVAL) {
          TEST_FAIL("record %u (kind %d): bit %d of byte %zu flipped gave %d, want -EINVAL", i,
                    valid[i].kind, bit, at, rc);
        }
      }
  }
  /* rep 0 -> 1 and 2, 1 -> 0, 2 -> 0, over the 3 evicts of each rep. */
  ASSERT_EQ(reps_taken, 3 * (2 + 1 + 1));
}

TEST(an_evict_of_an_empty_symbol_or_an_unknown_kind_is_refused) {
  /* 19 bytes whose length byte 0 adds up: the lengths agree, the symbol is empty. */
  uint8_t buf[TKS_OPREC_MAX];
  struct tks_oprec r = {.kind = TKS_OPREC_EVICT, .symbol = "A", .symbol_len = 1, .ticks = 4};
  size_t n = encode(&r, buf);
  buf[10] = 0;
  memmove(buf + 11, buf + 12, n - 12);
  struct tks_oprec got;
  ASSERT_EQ(parse_exact(buf, n - 1, &got), -EINVAL);
  /* Every kind byte that is no kind, at each kind's length. */
  static const size_t lens[] = {17, 20, 25};
  for (unsigned k = 0; k < 256; k++) {
    if (k >= TKS_OPREC_EVICT && k <= TKS_OPREC_SEAL_ABORT) continue;
    for (unsigned l = 0; l < 3; l++) {
      memset(buf + 8, 0, lens[l] - 8);
      buf[8] = (uint8_t)k;
      buf[10] = 1;
      ASSERT_EQ(parse_exact(buf, lens[l], &got), -EINVAL);
    }
  }
}

/* ---- producer positions ---------------------------------------------------- */

/* A producer record of name[0..nlen) and position, then `tail` bytes
 * (a receive time and ticks, or a cut one), into buf; its length. */
static size_t producer_payload(uint8_t *buf, const char *name, uint8_t nlen, uint64_t position,
                               const uint8_t *tail, size_t ntail) {
  struct tks_oprec r = {
      .kind = TKS_OPREC_PRODUCER, .producer = name, .producer_len = nlen, .position = position};
  size_t n = tks_oprec_encode(&r, buf);
  ASSERT_EQ(n, 8 + 1 + 1 + (size_t)nlen + 8);
  memcpy(buf + n, tail, ntail);
  return n + ntail;
}

TEST(a_producer_position_round_trips_alone_and_with_the_ticks_of_its_read) {
  char name[TKS_OPREC_PRODUCER_MAX];
  memset(name, 'p', sizeof name);
  static const uint8_t lens[] = {1, 9, TKS_OPREC_PRODUCER_MAX};
  static const uint64_t positions[] = {0, 77, UINT64_MAX};
  uint8_t tail[8 + 5] = {0};
  int64_t recv = -123456789;
  memcpy(tail, &recv, 8);
  memcpy(tail + 8, "\x81\xa1x\x01\x02", 5);
  for (unsigned l = 0; l < 3; l++)
    for (unsigned t = 0; t < 3; t++) {
      size_t ntail = t == 0 ? 0 : t == 1 ? 8 : sizeof tail; /* none, no ticks, ticks */
      uint8_t buf[TKS_OPREC_MAX + sizeof tail];
      size_t n = producer_payload(buf, name, lens[l], positions[(l + t) % 3], tail, ntail);
      struct tks_oprec got;
      memset(&got, 0xa5, sizeof got);
      uint8_t *b = exact(buf, n);
      ASSERT_EQ(tks_oprec_parse(b, n, &got), 0);
      ASSERT_EQ(got.kind, TKS_OPREC_PRODUCER);
      ASSERT_EQ(got.producer_len, lens[l]);
      ASSERT((const uint8_t *)got.producer == b + 10);
      ASSERT_U64_EQ(got.position, positions[(l + t) % 3]);
      ASSERT_EQ(got.has_ticks, ntail > 0);
      if (ntail) {
        ASSERT_EQ(got.recv_ns, recv);
        ASSERT_EQ(got.data_len, ntail - 8);
        ASSERT((const uint8_t *)got.data == b + n - (ntail - 8));
        if (ntail > 8) ASSERT(memcmp(got.data, tail + 8, ntail - 8) == 0);
      }
      free(b);
    }
}

TEST(a_producer_record_cut_anywhere_or_with_a_cut_receive_time_is_refused) {
  uint8_t buf[TKS_OPREC_MAX + 16];
  uint8_t tail[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  size_t n = producer_payload(buf, "feed-1", 6, 42, tail, 8);
  struct tks_oprec got;
  for (size_t cut = 0; cut < n; cut++) {
    uint8_t *b = exact(buf, cut);
    int rc = tks_oprec_parse(b, cut, &got);
    free(b);
    /* The header alone (the position restated) is a whole record. */
    if (cut == n - 8)
      ASSERT_EQ(rc, 0);
    else if (rc != -EINVAL)
      TEST_FAIL("a producer record cut to %zu of %zu bytes parsed", cut, n);
  }
}

TEST(a_producer_name_empty_or_over_the_limit_is_neither_written_nor_read) {
  uint8_t buf[TKS_OPREC_MAX + 1];
  char name[TKS_OPREC_PRODUCER_MAX + 1];
  memset(name, 'n', sizeof name);
  struct tks_oprec r = {.kind = TKS_OPREC_PRODUCER, .producer = name, .producer_len = 0};
  ASSERT_EQ(tks_oprec_encode(&r, buf), 0);
  r.producer_len = TKS_OPREC_PRODUCER_MAX + 1;
  ASSERT_EQ(tks_oprec_encode(&r, buf), 0);
  r.producer_len = TKS_OPREC_PRODUCER_MAX;
  size_t n = tks_oprec_encode(&r, buf);
  ASSERT(n > 0 && n <= TKS_OPREC_MAX);
  struct tks_oprec got;
  for (unsigned len = 0; len < 256; len++) {
    if (len >= 1 && len <= TKS_OPREC_PRODUCER_MAX) continue;
    buf[9] = (uint8_t)len; /* what the length byte says no longer fits the rules */
    uint8_t *b = exact(buf, n);
    ASSERT_EQ(tks_oprec_parse(b, n, &got), -EINVAL);
    free(b);
  }
}

TEST(a_wrong_mark_is_not_a_record) {
  make_valid();
  for (unsigned i = 0; i < nvalid; i++) {
    uint8_t buf[TKS_OPREC_MAX];
    size_t n = encode(&valid[i], buf);
    for (size_t at = 0; at < 8; at++)
      for (int bit = 0; bit < 8; bit++) {
        uint8_t f[TKS_OPREC_MAX];
        memcpy(f, buf, n);
        f[at] ^= (uint8_t)(1u << bit);
        uint8_t *b = exact(f, n);
        ASSERT(!tks_oprec_is(b, n));
        struct tks_oprec got;
        ASSERT_EQ(tks_oprec_parse(b, n, &got), -EINVAL);
        free(b);
      }
  }
  /* A tick frame's receive time next to the mark: INT64_MIN + 1, INT64_MAX, 0. */
  static const int64_t near[] = {INT64_MIN + 1, INT64_MAX, 0, -1};
  for (unsigned i = 0; i < 4; i++) {
    uint8_t buf[17] = {0};
    memcpy(buf, &near[i], 8);
    buf[8] = TKS_OPREC_SEAL_COMMIT;
    struct tks_oprec got;
    ASSERT(!tks_oprec_is(buf, sizeof buf));
    ASSERT_EQ(parse_exact(buf, sizeof buf, &got), -EINVAL);
  }
  uint8_t just_mark[8];
  int64_t m = TKS_OPREC_MARK;
  memcpy(just_mark, &m, 8);
  uint8_t *b = exact(just_mark, 8);
  ASSERT(tks_oprec_is(b, 8)); /* a record by its mark, but with no kind: refused */
  struct tks_oprec got;
  ASSERT_EQ(tks_oprec_parse(b, 8, &got), -EINVAL);
  free(b);
}

TEST(oversized_lengths_are_refused) {
  /* A valid record followed by padding up to sizes past TKS_OPREC_MAX, and
   * evicts whose length byte says more than the payload holds. */
  make_valid();
  static const size_t sizes[] = {TKS_OPREC_MAX + 1, TKS_OPREC_MAX + 19, 4096, 1u << 16, 1u << 20};
  for (unsigned i = 0; i < nvalid; i++) {
    uint8_t small[TKS_OPREC_MAX];
    size_t n = encode(&valid[i], small);
    for (unsigned s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      uint8_t *big = calloc(1, sizes[s]);
      ASSERT(big);
      memcpy(big, small, n);
      struct tks_oprec got;
      ASSERT_EQ(tks_oprec_parse(big, sizes[s], &got), -EINVAL);
      free(big);
    }
  }
  for (unsigned have = 1; have < TKS_SYMBOL_MAX_LEN; have++) {
    /* have symbol bytes and the count, the length byte says one more. */
    uint8_t buf[TKS_OPREC_MAX];
    struct tks_oprec r = {
        .kind = TKS_OPREC_EVICT, .symbol = sym255, .symbol_len = (uint8_t)have, .ticks = 3};
    size_t n = encode(&r, buf);
    buf[10] = (uint8_t)(have + 1);
    struct tks_oprec got;
    ASSERT_EQ(parse_exact(buf, n, &got), -EINVAL);
    buf[10] = TKS_SYMBOL_MAX_LEN;
    ASSERT_EQ(parse_exact(buf, n, &got), -EINVAL);
  }
}

/* ---- random bytes ---------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Random payloads, half of them behind the mark and a kind (so that the
 * length checks are reached), a third of those with a rep and a length
 * byte that agree with the payload's size.  Each parses or is refused;
 * what parses is canonical: encoding the result gives the same bytes. */
TEST(random_bytes_parse_only_as_canonical_records) {
  uint8_t buf[2 * TKS_OPREC_MAX];
  unsigned parsed[6] = {0};
  for (unsigned iter = 0; iter < 300000; iter++) {
    size_t n = (size_t)(next_rand() % sizeof buf);
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)next_rand();
    uint64_t how = next_rand();
    if (how & 1 && n >= 9) {
      int64_t m = TKS_OPREC_MARK;
      memcpy(buf, &m, 8);
      buf[8] = (uint8_t)(how >> 8) % 6;
      if (buf[8] == TKS_OPREC_EVICT && (how >> 16) % 3 == 0 && n >= 20 && n <= TKS_OPREC_MAX) {
        buf[9] = (uint8_t)((how >> 24) % 4);
        buf[10] = (uint8_t)(n - 19);
      } else if ((how >> 16) % 3 == 1) {
        n = buf[8] == TKS_OPREC_SEAL_BEGIN ? 25 : 17; /* the kinds' lengths, any kind */
      }
    }
    struct tks_oprec got;
    int rc = parse_exact(buf, n, &got);
    if (rc != 0) {
      ASSERT_EQ(rc, -EINVAL);
      continue;
    }
    ASSERT(got.kind >= TKS_OPREC_EVICT && got.kind <= TKS_OPREC_PRODUCER);
    parsed[got.kind]++;
    uint8_t again[TKS_OPREC_MAX];
    size_t m = tks_oprec_encode(&got, again);
    /* A producer record encodes its header; the rest is its ticks. */
    if (got.kind == TKS_OPREC_PRODUCER && got.has_ticks)
      ASSERT_EQ(m + 8 + got.data_len, n);
    else
      ASSERT_EQ(m, n);
    ASSERT(memcmp(again, buf, m) == 0);
  }
  /* The shaped inputs reach every kind. */
  for (int k = TKS_OPREC_EVICT; k <= TKS_OPREC_SEAL_ABORT; k++) ASSERT(parsed[k] > 100);
}

TEST_MAIN()

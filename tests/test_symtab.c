/* Unit tests of lib/symtab.c: interning, ids, limits, counting. */
#include <errno.h>
#include <stdbool.h>

#include "symtab.h"
#include "test.h"

TEST(interning_the_same_string_twice_gives_the_same_id) {
  struct tks_symtab *t = tks_symtab_create(0);
  uint32_t a, b, c;
  ASSERT_EQ(tks_symtab_intern(t, "AAPL", 4, &a), 0);
  ASSERT_EQ(tks_symtab_intern(t, "MSFT", 4, &b), 0);
  ASSERT_EQ(tks_symtab_intern(t, "AAPLX", 4, &c), 0); /* only 4 bytes: AAPL */
  ASSERT_EQ(a, 1);
  ASSERT_EQ(b, 2);
  ASSERT_EQ(c, a);
  ASSERT_EQ(tks_symtab_count(t), 2);
  size_t len;
  ASSERT_STR_EQ(tks_symtab_name(t, b, &len), "MSFT");
  ASSERT_EQ(len, 4);
  ASSERT(tks_symtab_name(t, 3, NULL) == NULL);
  tks_symtab_destroy(t);
}

TEST(empty_string_is_id_zero_and_not_counted) {
  struct tks_symtab *t = tks_symtab_create(0);
  uint32_t id = 99;
  ASSERT_EQ(tks_symtab_intern(t, "", 0, &id), 0);
  ASSERT_EQ(id, 0);
  ASSERT_EQ(tks_symtab_count(t), 0);
  ASSERT_STR_EQ(tks_symtab_name(t, 0, NULL), "");
  tks_symtab_destroy(t);
}

TEST(lookup_never_adds) {
  struct tks_symtab *t = tks_symtab_create(0);
  uint32_t id;
  ASSERT_EQ(tks_symtab_lookup(t, "X", 1, &id), -ENOENT);
  ASSERT_EQ(tks_symtab_count(t), 0);
  tks_symtab_intern(t, "X", 1, &id);
  uint32_t id2;
  ASSERT_EQ(tks_symtab_lookup(t, "X", 1, &id2), 0);
  ASSERT_EQ(id2, id);
  tks_symtab_destroy(t);
}

TEST(hundred_thousand_symbols_keep_their_ids_through_growth) {
  struct tks_symtab *t = tks_symtab_create(0);
  char name[32];
  for (uint32_t i = 0; i < 100000; i++) {
    int n = snprintf(name, sizeof name, "SYM%u", i);
    uint32_t id;
    ASSERT_EQ(tks_symtab_intern(t, name, (size_t)n, &id), 0);
    ASSERT_EQ(id, i + 1);
  }
  for (uint32_t i = 0; i < 100000; i += 7) {
    int n = snprintf(name, sizeof name, "SYM%u", i);
    uint32_t id;
    ASSERT_EQ(tks_symtab_lookup(t, name, (size_t)n, &id), 0);
    ASSERT_EQ(id, i + 1);
    ASSERT_STR_EQ(tks_symtab_name(t, id, NULL), name);
  }
  ASSERT_EQ(tks_symtab_count(t), 100000);
  /* Counted bytes cover at least the strings and a pointer and slot each. */
  ASSERT(tks_symtab_bytes(t) >= tks_symtab_string_bytes(t) + 100000 * 16);
  ASSERT(tks_symtab_bytes(t) < 100000 * 64);
  tks_symtab_destroy(t);
}

TEST(limit_on_distinct_symbols_is_enforced) {
  struct tks_symtab *t = tks_symtab_create(2);
  uint32_t id;
  ASSERT_EQ(tks_symtab_intern(t, "A", 1, &id), 0);
  ASSERT_EQ(tks_symtab_intern(t, "B", 1, &id), 0);
  ASSERT_EQ(tks_symtab_intern(t, "C", 1, &id), -ENOSPC);
  ASSERT_EQ(tks_symtab_intern(t, "A", 1, &id), 0); /* known ones still resolve */
  ASSERT_EQ(id, 1);
  tks_symtab_destroy(t);
}

TEST(overlong_and_binary_strings) {
  struct tks_symtab *t = tks_symtab_create(0);
  char big[300];
  memset(big, 'x', sizeof big);
  uint32_t id;
  ASSERT_EQ(tks_symtab_intern(t, big, 256, &id), -E2BIG);
  ASSERT_EQ(tks_symtab_intern(t, big, 255, &id), 0);
  const char bin[] = {'a', 0, 'b'};
  uint32_t id2, id3;
  ASSERT_EQ(tks_symtab_intern(t, bin, 3, &id2), 0);
  ASSERT_EQ(tks_symtab_intern(t, "a", 1, &id3), 0);
  ASSERT_NE(id2, id3);
  size_t len;
  tks_symtab_name(t, id2, &len);
  ASSERT_EQ(len, 3);
  tks_symtab_destroy(t);
}

TEST(truncate_forgets_the_newest_ids_and_gives_back_their_bytes) {
  struct tks_symtab *t = tks_symtab_create(0);
  uint32_t a, b, c, id;
  ASSERT_EQ(tks_symtab_intern(t, "A", 1, &a), 0);
  uint64_t bytes = tks_symtab_bytes(t), strings = tks_symtab_string_bytes(t);
  ASSERT_EQ(tks_symtab_intern(t, "B", 1, &b), 0);
  ASSERT_EQ(tks_symtab_intern(t, "CCCCCCCCCCCC", 12, &c), 0);
  ASSERT_EQ(c, 3);
  tks_symtab_truncate(t, 1);
  ASSERT_EQ(tks_symtab_count(t), 1);
  ASSERT_EQ(tks_symtab_lookup(t, "B", 1, &id), -ENOENT);
  ASSERT_EQ(tks_symtab_lookup(t, "CCCCCCCCCCCC", 12, &id), -ENOENT);
  ASSERT(tks_symtab_name(t, 2, NULL) == NULL);
  ASSERT_EQ(tks_symtab_lookup(t, "A", 1, &id), 0);
  ASSERT_EQ(id, a);
  ASSERT_U64_EQ(tks_symtab_bytes(t), bytes);
  ASSERT_U64_EQ(tks_symtab_string_bytes(t), strings);
  ASSERT_EQ(tks_symtab_intern(t, "B", 1, &b), 0);
  ASSERT_EQ(b, 2);
  ASSERT_STR_EQ(tks_symtab_name(t, 2, NULL), "B");
  tks_symtab_truncate(t, 2); /* nothing above 2: no change */
  ASSERT_EQ(tks_symtab_count(t), 2);
  tks_symtab_destroy(t);
}

TEST(the_generation_changes_when_a_truncate_removes_an_id_and_only_then) {
  struct tks_symtab *t = tks_symtab_create(0);
  uint32_t id;
  uint64_t g0 = tks_symtab_generation(t);
  ASSERT_EQ(tks_symtab_intern(t, "A", 1, &id), 0);
  ASSERT_EQ(tks_symtab_intern(t, "B", 1, &id), 0);
  ASSERT_U64_EQ(tks_symtab_generation(t), g0); /* interning keeps every id */
  tks_symtab_truncate(t, 2);
  tks_symtab_truncate(t, 5);
  ASSERT_U64_EQ(tks_symtab_generation(t), g0); /* nothing removed */
  tks_symtab_truncate(t, 1);
  uint64_t g1 = tks_symtab_generation(t);
  ASSERT_NE(g1, g0);
  /* id 2 is given again, to other bytes: a cache of g0 would be wrong. */
  ASSERT_EQ(tks_symtab_intern(t, "C", 1, &id), 0);
  ASSERT_EQ(id, 2);
  ASSERT_U64_EQ(tks_symtab_generation(t), g1);
  tks_symtab_truncate(t, 0);
  ASSERT_NE(tks_symtab_generation(t), g1);
  tks_symtab_destroy(t);
}

TEST(truncate_frees_an_arena_block_it_empties) {
  struct tks_symtab *t = tks_symtab_create(0);
  char s[255];
  uint32_t id;
  memset(s, 'x', sizeof s);
  for (int i = 0; i < 300; i++) { /* grow the table and names first: they keep their size */
    memcpy(s, &i, sizeof i);
    ASSERT_EQ(tks_symtab_intern(t, s, 8, &id), 0);
  }
  tks_symtab_truncate(t, 0);
  ASSERT_EQ(tks_symtab_count(t), 0);
  ASSERT_U64_EQ(tks_symtab_string_bytes(t), 0);
  uint64_t empty = tks_symtab_bytes(t);
  for (int i = 0; i < 200; i++) { /* 200 * 257 bytes: most of the first 64 KiB block */
    memcpy(s, &i, sizeof i);
    ASSERT_EQ(tks_symtab_intern(t, s, sizeof s, &id), 0);
  }
  uint64_t bytes = tks_symtab_bytes(t), strings = tks_symtab_string_bytes(t);
  ASSERT(bytes > empty);
  for (int i = 200; i < 300; i++) { /* past the first block */
    memcpy(s, &i, sizeof i);
    ASSERT_EQ(tks_symtab_intern(t, s, sizeof s, &id), 0);
  }
  ASSERT(tks_symtab_bytes(t) > bytes);
  tks_symtab_truncate(t, 200);
  ASSERT_U64_EQ(tks_symtab_bytes(t), bytes);
  ASSERT_U64_EQ(tks_symtab_string_bytes(t), strings);
  int i = 250;
  memcpy(s, &i, sizeof i);
  ASSERT_EQ(tks_symtab_lookup(t, s, sizeof s, &id), -ENOENT);
  i = 199;
  memcpy(s, &i, sizeof i);
  ASSERT_EQ(tks_symtab_lookup(t, s, sizeof s, &id), 0);
  ASSERT_EQ(id, 200);
  tks_symtab_truncate(t, 0);
  ASSERT_U64_EQ(tks_symtab_bytes(t), empty);
  tks_symtab_destroy(t);
}

/* A pool of strings (short, past 8 bytes, long) interned and truncated at
 * random; a plain array of ids is the model every lookup is checked against. */
TEST(random_interns_and_truncates_agree_with_a_simple_model) {
  enum { POOL = 3000, ROUNDS = 4000 };
  static char pool[POOL][40];
  static size_t plen[POOL];
  static uint32_t model[POOL]; /* id of pool[i], 0 = not interned */
  static uint32_t by_id[POOL + 1];
  uint64_t x = 88172645463325252ull;
#define NEXT() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
  for (int i = 0; i < POOL; i++) {
    plen[i] = 1 + NEXT() % 39;
    for (size_t k = 0; k < plen[i]; k++) pool[i][k] = (char)('A' + NEXT() % 3);
    bool dup = false; /* every pool string distinct */
    for (int j = 0; j < i && !dup; j++)
      dup = plen[j] == plen[i] && memcmp(pool[j], pool[i], plen[i]) == 0;
    if (dup) i--;
  }
  struct tks_symtab *t = tks_symtab_create(0);
  uint32_t count = 0;
  uint64_t sbytes = 0;
  for (int r = 0; r < ROUNDS; r++) {
    int n = (int)(NEXT() % 8);
    for (int k = 0; k < n; k++) {
      int i = (int)(NEXT() % POOL);
      uint32_t id;
      ASSERT_EQ(tks_symtab_intern(t, pool[i], plen[i], &id), 0);
      if (model[i]) {
        ASSERT_EQ(id, model[i]);
      } else {
        ASSERT_EQ(id, count + 1);
        by_id[++count] = (uint32_t)i;
        sbytes += plen[i] + 1;
        model[i] = id;
      }
    }
    if (NEXT() % 3 == 0) {
      uint32_t to = count ? (uint32_t)(count - NEXT() % (count < 10 ? count + 1 : 10)) : 0;
      tks_symtab_truncate(t, to);
      for (; count > to; count--) sbytes -= plen[by_id[count]] + 1;
    }
    for (int i = 0; i < POOL; i++)
      if (model[i] > count) model[i] = 0;
    ASSERT_EQ(tks_symtab_count(t), count);
    ASSERT_U64_EQ(tks_symtab_string_bytes(t), sbytes);
    if (r % 50 == 0 || r == ROUNDS - 1) {
      for (int i = 0; i < POOL; i++) {
        uint32_t id = 0;
        int e = tks_symtab_lookup(t, pool[i], plen[i], &id);
        if (model[i]) {
          ASSERT_EQ(e, 0);
          ASSERT_EQ(id, model[i]);
        } else {
          ASSERT_EQ(e, -ENOENT);
        }
      }
      for (uint32_t j = 1; j <= count; j++) {
        size_t len;
        const char *nm = tks_symtab_name(t, j, &len);
        ASSERT(nm != NULL);
        ASSERT_EQ(len, plen[by_id[j]]);
        ASSERT(memcmp(nm, pool[by_id[j]], len) == 0);
      }
    }
  }
#undef NEXT
  tks_symtab_destroy(t);
}

TEST_MAIN()

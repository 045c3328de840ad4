/* Unit tests of lib/symtab.c: interning, ids, limits, counting. */
#include <errno.h>

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

TEST_MAIN()

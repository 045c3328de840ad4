/* Unit tests of lib/usage.c: the bounded table of undeclared field names. */
#include "test.h"
#include "usage.h"

static struct tks_usage u;

TEST(names_are_added_once_and_found_again) {
  tks_usage_init(&u);
  struct tks_usage_field *a = tks_usage_get(&u, "exchange", 8);
  ASSERT(a);
  a->ticks = 3;
  ASSERT(tks_usage_get(&u, "exchange", 8) == a);
  ASSERT(tks_usage_get(&u, "exchangeX", 8) == a); /* only len bytes count */
  struct tks_usage_field *b = tks_usage_get(&u, "seq", 3);
  ASSERT(b && b != a);
  ASSERT_EQ(u.count, 2);
  ASSERT(tks_usage_find(&u, "exchange") == a);
  ASSERT(tks_usage_find(&u, "exch") == NULL);
  ASSERT_STR_EQ(a->name, "exchange");
  ASSERT_EQ(a->ticks, 3);
}

TEST(the_table_is_bounded_and_says_so) {
  tks_usage_init(&u);
  char name[16];
  for (unsigned i = 0; i < TKS_USAGE_MAX_NAMES; i++) {
    int n = snprintf(name, sizeof name, "f%u", i);
    ASSERT(tks_usage_get(&u, name, (size_t)n) != NULL);
  }
  ASSERT(tks_usage_get(&u, "one_more", 8) == NULL);
  ASSERT_EQ(u.count, TKS_USAGE_MAX_NAMES);
  /* Known names still resolve when it is full. */
  ASSERT(tks_usage_get(&u, "f7", 2) != NULL);
}

TEST(long_names_are_cut_to_the_entry) {
  tks_usage_init(&u);
  char big[300];
  memset(big, 'n', sizeof big);
  struct tks_usage_field *f = tks_usage_get(&u, big, sizeof big);
  ASSERT(f);
  ASSERT_EQ(strlen(f->name), sizeof f->name - 1);
  ASSERT(tks_usage_get(&u, big, sizeof big) == f); /* the same cut name */
}

TEST_MAIN()

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

TEST(value_types_count_under_their_usage_bit) {
  ASSERT_EQ(tks_usage_type_bit(TKS_V_NIL), TKS_USAGE_NIL);
  ASSERT_EQ(tks_usage_type_bit(TKS_V_BOOL), TKS_USAGE_BOOL);
  ASSERT_EQ(tks_usage_type_bit(TKS_V_INT), TKS_USAGE_INT);
  ASSERT_EQ(tks_usage_type_bit(TKS_V_UINT), TKS_USAGE_INT);
  ASSERT_EQ(tks_usage_type_bit(TKS_V_F64), TKS_USAGE_FLOAT);
  ASSERT_EQ(tks_usage_type_bit(TKS_V_STR), TKS_USAGE_STRING);
  ASSERT_EQ(tks_usage_type_bit(TKS_V_SYM), TKS_USAGE_STRING);
  ASSERT_EQ(tks_usage_type_bit(TKS_V_ISTR), TKS_USAGE_STRING);
  ASSERT_STR_EQ(tks_usage_type_name(TKS_USAGE_FLOAT), "float");
  ASSERT_STR_EQ(tks_usage_type_name(TKS_USAGE_INT | TKS_USAGE_NIL), "?");
}

TEST(types_text_lists_the_bits_in_bit_order) {
  char b[TKS_USAGE_TYPES_TEXT_MAX];
  ASSERT_STR_EQ(tks_usage_types_text(0, b, sizeof b), "");
  ASSERT_STR_EQ(tks_usage_types_text(TKS_USAGE_STRING | TKS_USAGE_INT, b, sizeof b), "int,string");
  ASSERT_STR_EQ(tks_usage_types_text(~0u, b, sizeof b), "nil,bool,int,float,string");
  char small[9];
  ASSERT_STR_EQ(tks_usage_types_text(~0u, small, sizeof small), "nil,bool"); /* whole names only */
}

TEST_MAIN()

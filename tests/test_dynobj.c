/* Unit tests of lib/dynobj.c: the per-tick hash map (the __dict__ analogue). */
#include <errno.h>

#include "dynobj.h"
#include "test.h"

static _Alignas(8) char mem[4096];

TEST(index_keeps_the_load_at_most_two_thirds) {
  ASSERT_EQ(tks_dynobj_cap(0), 4);
  ASSERT_EQ(tks_dynobj_cap(2), 4);
  ASSERT_EQ(tks_dynobj_cap(3), 8);
  ASSERT_EQ(tks_dynobj_cap(5), 8);
  ASSERT_EQ(tks_dynobj_cap(6), 16);
  ASSERT_EQ(tks_dynobj_cap(64), 128);
  /* Header, a byte per index slot (to 8), 16-byte entries for the fields
   * held, string bytes, rounded to 8: CPython's compact dict. */
  ASSERT_EQ(tks_dynobj_size(5, 0), 8 + 8 + 5 * 16);
  ASSERT_EQ(tks_dynobj_size(5, 3), 8 + 8 + 5 * 16 + 8);
  ASSERT_EQ(tks_dynobj_size(1, 4), 8 + 8 + 16 + 8);
  ASSERT_EQ(tks_dynobj_size(64, 0), 8 + 128 + 64 * 16);
}

TEST(entries_keep_insertion_order) {
  struct tks_dynobj *o = tks_dynobj_init(mem, 4, 0);
  uint32_t keys[] = {90, 3, 41, 7};
  for (unsigned i = 0; i < 4; i++) {
    struct tks_value v = {.type = TKS_V_INT, .v.i = i};
    ASSERT_EQ(tks_dynobj_put(o, keys[i], &v), 0);
  }
  const struct tks_dyn_slot *e = tks_dynobj_entries(o);
  for (unsigned i = 0; i < 4; i++) ASSERT_EQ(e[i].key, keys[i]);
  /* Replacing keeps the place. */
  struct tks_value v = {.type = TKS_V_INT, .v.i = 99};
  ASSERT_EQ(tks_dynobj_put(o, 41, &v), 0);
  ASSERT_EQ(o->count, 4);
  ASSERT_EQ(tks_dynobj_entries(o)[2].v.i, 99);
}

TEST(every_value_type_round_trips) {
  struct tks_dynobj *o = tks_dynobj_init(mem, 7, 5);
  struct tks_value v[] = {
      {.type = TKS_V_NIL},
      {.type = TKS_V_BOOL, .v.b = true},
      {.type = TKS_V_INT, .v.i = -42},
      {.type = TKS_V_UINT, .v.u = UINT64_MAX},
      {.type = TKS_V_F64, .v.f = 150.05},
      {.type = TKS_V_STR, .v.s = {"XNAS!", 5}},
      {.type = TKS_V_SYM, .v.id = 77},
  };
  for (unsigned i = 0; i < 7; i++) ASSERT_EQ(tks_dynobj_put(o, 100 + i * 13, &v[i]), 0);
  ASSERT_EQ(o->count, 7);
  const struct tks_dyn_slot *s;
  ASSERT((s = tks_dynobj_get(o, 100)) && s->type == TKS_V_NIL);
  ASSERT((s = tks_dynobj_get(o, 113)) && s->type == TKS_V_BOOL && s->v.b);
  ASSERT((s = tks_dynobj_get(o, 126)) && s->v.i == -42);
  ASSERT((s = tks_dynobj_get(o, 139)) && s->v.u == UINT64_MAX);
  ASSERT((s = tks_dynobj_get(o, 152)) && s->v.f == 150.05);
  ASSERT((s = tks_dynobj_get(o, 165)) && s->len == 5);
  ASSERT_EQ(memcmp(tks_dynobj_str(o, s), "XNAS!", 5), 0);
  ASSERT((s = tks_dynobj_get(o, 178)) && s->type == TKS_V_SYM && s->v.id == 77);
  ASSERT(tks_dynobj_get(o, 99) == NULL);
  /* Strings stay inside the object. */
  ASSERT(tks_dynobj_str(o, tks_dynobj_get(o, 165)) + 5 <= (const char *)o + o->bytes);
}

TEST(an_object_holds_no_more_than_it_was_sized_for) {
  struct tks_dynobj *o = tks_dynobj_init(mem, 3, 2);
  struct tks_value i = {.type = TKS_V_INT, .v.i = 1};
  struct tks_value str = {.type = TKS_V_STR, .v.s = {"abcdefghijklmnopq", 17}};
  ASSERT_EQ(tks_dynobj_put(o, 1, &i), 0);
  ASSERT_EQ(tks_dynobj_put(o, 2, &str), -ENOSPC); /* 17 string bytes, sized for 2 (8 with padding) */
  ASSERT_EQ(tks_dynobj_put(o, 2, &i), 0);
  ASSERT_EQ(tks_dynobj_put(o, 3, &i), 0);
  ASSERT_EQ(tks_dynobj_put(o, 4, &i), -ENOSPC); /* sized for three fields */
  ASSERT_EQ(tks_dynobj_put(o, 0, &i), -EINVAL);
  ASSERT_EQ(o->count, 3);
}

TEST(colliding_keys_are_all_found) {
  struct tks_dynobj *o = tks_dynobj_init(mem, 48, 0);
  for (uint32_t k = 1; k <= 48; k++) {
    struct tks_value v = {.type = TKS_V_INT, .v.i = k * 10};
    ASSERT_EQ(tks_dynobj_put(o, k * 64, &v), 0); /* keys chosen to share low bits */
  }
  for (uint32_t k = 1; k <= 48; k++) {
    const struct tks_dyn_slot *s = tks_dynobj_get(o, k * 64);
    ASSERT(s);
    ASSERT_EQ(s->v.i, k * 10);
  }
  ASSERT(tks_dynobj_get(o, 49 * 64) == NULL);
}

/* A copy of o's bytes with one change, checked. */
static int check_with(const struct tks_dynobj *o, size_t at, uint8_t value) {
  static _Alignas(8) char copy[4096];
  memcpy(copy, o, o->bytes);
  copy[at] = (char)value;
  const char *why;
  return tks_dynobj_check(copy, o->bytes, &why);
}

TEST(check_accepts_what_put_builds_and_refuses_each_defect) {
  struct tks_dynobj *o = tks_dynobj_init(mem, 5, 8);
  struct tks_value vi = {.type = TKS_V_INT, .v.i = 7}, vb = {.type = TKS_V_BOOL, .v.b = true};
  struct tks_value vs = {.type = TKS_V_STR, .v.s = {"abc", 3}};
  ASSERT_EQ(tks_dynobj_put(o, 3, &vi), 0);
  ASSERT_EQ(tks_dynobj_put(o, 9, &vb), 0);
  ASSERT_EQ(tks_dynobj_put(o, 12, &vs), 0);
  const char *why = NULL;
  ASSERT_EQ(tks_dynobj_check(o, o->bytes, &why), 0);
  ASSERT_EQ(tks_dynobj_check(o, o->bytes - 8, &why), -EINVAL); /* size disagrees */
  ASSERT(why != NULL);
  ASSERT_EQ(tks_dynobj_check(o, o->bytes + 1, &why), -EINVAL);
  size_t ents = (size_t)((const char *)tks_dynobj_entries(o) - (const char *)o);
  ASSERT_EQ(check_with(o, 0, 6), -EINVAL);  /* count over nfields */
  ASSERT_EQ(check_with(o, 1, 65), -EINVAL); /* nfields over the most */
  ASSERT_EQ(check_with(o, 2, 16), -EINVAL); /* index size wrong */
  ASSERT_EQ(check_with(o, 4, 0), -EINVAL);  /* bytes */
  for (unsigned i = 0; i < o->cap; i++) {   /* an index slot pointing past the entries */
    if (o->index[i]) continue;
    ASSERT_EQ(check_with(o, 8 + i, 4), -EINVAL);
    ASSERT_EQ(check_with(o, 8 + i, 1), -EINVAL); /* an entry twice */
    break;
  }
  ASSERT_EQ(check_with(o, ents + 0, 0), -EINVAL);        /* key 0 (key 3's low byte) */
  ASSERT_EQ(check_with(o, ents + 4, 99), -EINVAL);       /* unknown type */
  ASSERT_EQ(check_with(o, ents + 16 + 8, 2), -EINVAL);   /* bool 2 */
  ASSERT_EQ(check_with(o, ents + 32 + 8, 0), -EINVAL);   /* string inside the entries */
  ASSERT_EQ(check_with(o, ents + 32 + 6, 200), -EINVAL); /* string past the end */
  ASSERT_EQ(check_with(o, ents + 16 + 0, 3), -EINVAL);   /* key 9 becomes a second 3 */
  ASSERT_EQ(check_with(o, ents + 0, 4), -EINVAL);        /* a key the index does not lead to */
}

TEST_MAIN()

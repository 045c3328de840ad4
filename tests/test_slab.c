/* Unit tests of lib/slab.c: size classes, chunk reuse, and the figures
 * that `stats slabs` shows. */
#include <errno.h>

#include "slab.h"
#include "stats.h"
#include "test.h"

#define MIB (1024 * 1024)

TEST(classes_grow_by_the_factor_and_end_at_the_page_size) {
  struct tks_slab *s = tks_slab_create(MIB, 1.25, 32);
  ASSERT(s);
  unsigned n = tks_slab_nclasses(s);
  ASSERT(n > 10 && n <= TKS_SLAB_MAX_CLASSES);
  ASSERT_EQ(tks_slab_chunk_size(s, 1), 32);
  for (unsigned i = 2; i <= n; i++) {
    size_t a = tks_slab_chunk_size(s, i - 1), b = tks_slab_chunk_size(s, i);
    ASSERT(b > a);
    ASSERT_EQ(b % 8, 0);
    if (i < n) ASSERT(b <= (size_t)(a * 1.25) + 8);
  }
  ASSERT_EQ(tks_slab_chunk_size(s, n), MIB);
  tks_slab_destroy(s);
}

TEST(class_for_picks_the_smallest_class_that_fits) {
  struct tks_slab *s = tks_slab_create(MIB, 1.25, 32);
  ASSERT_EQ(tks_slab_class_for(s, 0), 0);
  ASSERT_EQ(tks_slab_class_for(s, 1), 1);
  ASSERT_EQ(tks_slab_class_for(s, 32), 1);
  ASSERT_EQ(tks_slab_class_for(s, 33), 2);
  ASSERT_EQ(tks_slab_class_for(s, MIB + 1), 0);
  for (size_t sz = 1; sz <= 70000; sz += 97) {
    unsigned id = tks_slab_class_for(s, sz);
    ASSERT(tks_slab_chunk_size(s, id) >= sz);
    if (id > 1) ASSERT(tks_slab_chunk_size(s, id - 1) < sz);
  }
  tks_slab_destroy(s);
}

TEST(bad_arguments_are_refused) {
  ASSERT(tks_slab_create(1000, 1.25, 32) == NULL);
  ASSERT_EQ(errno, EINVAL);
  ASSERT(tks_slab_create(MIB, 0.5, 32) == NULL);
  ASSERT(tks_slab_create(MIB, 1.25, 12) == NULL);
  ASSERT(tks_slab_create(MIB + 1, 1.25, 32) == NULL);
}

TEST(slab_free_returns_chunk_to_its_class) {
  struct tks_slab *s = tks_slab_create(MIB, 1.25, 32);
  void *a = tks_slab_alloc(s, 100);
  void *b = tks_slab_alloc(s, 100);
  ASSERT(a && b && a != b);
  unsigned id = tks_slab_class_for(s, 100);
  struct tks_slab_class_info ci;
  ASSERT_EQ(tks_slab_class_info(s, id, &ci), 0);
  ASSERT_EQ(ci.used_chunks, 2);
  ASSERT_EQ(ci.mem_requested, 200);
  ASSERT_EQ(ci.total_pages, 1);
  tks_slab_free(s, a, 100);
  tks_slab_class_info(s, id, &ci);
  ASSERT_EQ(ci.used_chunks, 1);
  ASSERT_EQ(ci.free_chunks, 1);
  ASSERT_EQ(ci.mem_requested, 100);
  void *c = tks_slab_alloc(s, 90); /* same class: the freed chunk comes back */
  ASSERT(c == a);
  tks_slab_class_info(s, id, &ci);
  ASSERT_EQ(ci.free_chunks, 0);
  ASSERT_EQ(ci.mem_requested, 190);
  tks_slab_destroy(s);
}

TEST(pages_are_cut_into_equal_chunks_and_counted) {
  struct tks_slab *s = tks_slab_create(65536, 2.0, 64);
  unsigned id = tks_slab_class_for(s, 1024);
  ASSERT_EQ(tks_slab_chunk_size(s, id), 1024);
  char *prev = NULL;
  for (int i = 0; i < 64; i++) { /* exactly one page */
    char *p = tks_slab_alloc(s, 1024);
    ASSERT(p);
    if (prev) ASSERT_EQ(p - prev, 1024);
    memset(p, 0xab, 1024); /* writable, whole chunk */
    prev = p;
  }
  ASSERT_EQ(tks_slab_pages(s), 1);
  struct tks_slab_class_info ci;
  tks_slab_class_info(s, id, &ci);
  ASSERT_EQ(ci.chunks_per_page, 64);
  ASSERT_EQ(ci.free_chunks_end, 0);
  ASSERT(tks_slab_alloc(s, 1000));
  ASSERT_EQ(tks_slab_pages(s), 2);
  tks_slab_class_info(s, id, &ci);
  ASSERT_EQ(ci.total_chunks, 128);
  ASSERT_EQ(ci.used_chunks, 65);
  ASSERT_EQ(ci.free_chunks_end, 63);
  ASSERT_EQ(tks_slab_bytes_allocated(s), 2 * 65536);
  ASSERT_EQ(tks_slab_bytes_used(s), 65 * 1024);
  ASSERT_EQ(tks_slab_bytes_requested(s), 64 * 1024 + 1000);
  tks_slab_destroy(s);
}

TEST(limit_stops_new_pages_but_not_reuse) {
  struct tks_slab *s = tks_slab_create(65536, 2.0, 64);
  tks_slab_set_limit(s, 65536);
  void *p[64];
  for (int i = 0; i < 64; i++) ASSERT((p[i] = tks_slab_alloc(s, 1024)) != NULL);
  ASSERT(tks_slab_alloc(s, 1024) == NULL);
  ASSERT(tks_slab_alloc(s, 64) == NULL); /* another class needs a page too */
  tks_slab_free(s, p[5], 1024);
  ASSERT(tks_slab_alloc(s, 1024) == p[5]);
  tks_slab_destroy(s);
}

TEST(oversized_and_zero_requests_get_null) {
  struct tks_slab *s = tks_slab_create(65536, 1.25, 32);
  ASSERT(tks_slab_alloc(s, 0) == NULL);
  ASSERT(tks_slab_alloc(s, 65537) == NULL);
  ASSERT(tks_slab_alloc(s, 65536) != NULL);
  tks_slab_destroy(s);
  tks_slab_destroy(NULL);
}

TEST(stats_report_each_class_with_pages) {
  struct tks_slab *s = tks_slab_create(MIB, 1.25, 32);
  tks_slab_alloc(s, 32);
  tks_slab_alloc(s, 4000);
  struct tks_stats *st = tks_stats_create();
  tks_slab_stats(s, st);
  struct tks_buf b = {0};
  ASSERT_EQ(tks_stats_text(st, &b), 0);
  ASSERT_CONTAINS(b.data, "slabs.total_pages 2\n");
  ASSERT_CONTAINS(b.data, "slabs.active_classes 2\n");
  ASSERT_CONTAINS(b.data, "slabs.classes.1.chunk_size 32\n");
  ASSERT_CONTAINS(b.data, "slabs.classes.1.used_chunks 1\n");
  ASSERT_CONTAINS(b.data, "slabs.classes.1.mem_requested 32\n");
  char want[64];
  snprintf(want, sizeof want, "slabs.classes.1.waste_bytes %d\n", MIB - 32);
  ASSERT_CONTAINS(b.data, want);
  tks_buf_finish(&b);
  tks_stats_destroy(st);
  tks_slab_destroy(s);
}

TEST(many_allocations_and_frees_keep_the_counts_consistent) {
  struct tks_slab *s = tks_slab_create(65536, 1.25, 32);
  enum { N = 20000 };
  static void *p[N];
  static size_t sz[N];
  srand(7);
  for (int i = 0; i < N; i++) {
    sz[i] = 1 + (size_t)(rand() % 3000);
    p[i] = tks_slab_alloc(s, sz[i]);
    ASSERT(p[i]);
    memset(p[i], i & 0xff, sz[i]);
  }
  for (int i = 0; i < N; i += 2) tks_slab_free(s, p[i], sz[i]);
  for (int i = 1; i < N; i += 2) { /* odd ones untouched by the frees */
    const unsigned char *q = p[i];
    ASSERT_EQ(q[0], i & 0xff);
    ASSERT_EQ(q[sz[i] - 1], i & 0xff);
  }
  uint64_t req = 0;
  for (int i = 1; i < N; i += 2) req += sz[i];
  ASSERT_U64_EQ(tks_slab_bytes_requested(s), req);
  uint64_t pages = tks_slab_pages(s);
  for (int i = 0; i < N; i += 2) ASSERT((p[i] = tks_slab_alloc(s, sz[i])) != NULL);
  ASSERT_U64_EQ(tks_slab_pages(s), pages); /* all reuse, no new page */
  tks_slab_destroy(s);
}

/* What the RSS really holds: a page's chunks never cut are never touched,
 * and are not resident (VmRSS grows by what was touched). */
TEST(untouched_page_ends_are_counted_and_go_as_chunks_are_cut) {
  struct tks_slab *s = tks_slab_create(MIB, 1.25, 32);
  ASSERT(s);
  tks_slab_set_huge_pages(s, TKS_HUGE_PAGES_OFF);
  ASSERT_U64_EQ(tks_slab_bytes_untouched(s), 0);
  size_t chunk = tks_slab_chunk_size(s, tks_slab_class_for(s, 1000));
  char *p = tks_slab_alloc(s, 1000);
  ASSERT(p);
  /* One chunk cut: the rest of the page from the next 4 KiB boundary. */
  uint64_t want = MIB - ((chunk + 4095) / 4096 * 4096);
  ASSERT_U64_EQ(tks_slab_bytes_untouched(s), want);
  /* The page filled: nothing untouched; a second class's page adds its own. */
  size_t per = MIB / chunk;
  for (size_t i = 1; i < per; i++) ASSERT(tks_slab_alloc(s, 1000));
  ASSERT_U64_EQ(tks_slab_bytes_untouched(s), 0);
  ASSERT(tks_slab_alloc(s, 100));
  uint64_t other = tks_slab_bytes_untouched(s);
  ASSERT(other > MIB - 8192 && other < MIB);
  /* Freeing gives no untouched bytes back: a freed chunk was touched. */
  tks_slab_free(s, p, 1000);
  ASSERT_U64_EQ(tks_slab_bytes_untouched(s), other);
  tks_slab_destroy(s);
  /* Pages of an extent asked for huge pages: a touch backs 2 MiB whole. */
  s = tks_slab_create(MIB, 1.25, 32);
  ASSERT(s);
  tks_slab_set_huge_pages(s, TKS_HUGE_PAGES_ON);
  ASSERT(tks_slab_alloc(s, 1000));
  ASSERT_U64_EQ(tks_slab_bytes_untouched(s), 0);
  tks_slab_destroy(s);
}

TEST_MAIN()

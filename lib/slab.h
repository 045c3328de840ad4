/*
 * Slab allocator after memcached: pages of page_size bytes obtained from
 * the OS with mmap, each page given to one size class and cut into equal
 * chunks; classes grow from min_chunk by a factor.  Freed chunks go on the
 * class's free list and are reused first.  Every page and every requested
 * byte is counted, so stats show allocated, used and wasted memory exactly.
 * Not thread-safe: one owner (the event loop thread).
 */
#ifndef TKS_SLAB_H
#define TKS_SLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TKS_SLAB_MAX_CLASSES 64

struct tks_stats;

struct tks_slab_class_info {
  unsigned id;            /* 1-based, as memcached numbers them */
  size_t chunk_size;
  size_t chunks_per_page;
  uint64_t total_pages;
  uint64_t total_chunks;  /* total_pages * chunks_per_page */
  uint64_t used_chunks;
  uint64_t free_chunks;   /* on the free list */
  uint64_t free_chunks_end; /* never handed out, at the end of the newest page */
  uint64_t mem_requested; /* sum of sizes asked for by live allocations */
};

struct tks_slab;

/*
 * page_size: 64 KiB to 1 GiB, a multiple of the OS page size.  growth: 1.01
 * to 4.  min_chunk: at least 16, a multiple of 8.  The largest class holds
 * page_size bytes.  Returns NULL on bad arguments (errno EINVAL) or ENOMEM.
 */
struct tks_slab *tks_slab_create(size_t page_size, double growth, size_t min_chunk);

/* Transparent huge pages for the slab's memory (store.huge_pages): ON asks
 * for them (MADV_HUGEPAGE), OFF refuses them (MADV_NOHUGEPAGE, also where
 * the system's /sys/kernel/mm/transparent_hugepage/enabled says "always"),
 * AUTO leaves it to the system (the daemon's auto switches between ON
 * and OFF: daemon/load.c).  For the extents mapped from the call on. */
enum tks_huge_pages { TKS_HUGE_PAGES_AUTO, TKS_HUGE_PAGES_ON, TKS_HUGE_PAGES_OFF };
#define TKS_HUGE_PAGES_COUNT (TKS_HUGE_PAGES_OFF + 1)
extern const char *const tks_huge_pages_names[TKS_HUGE_PAGES_COUNT]; /* "auto", "on", "off" */
void tks_slab_set_huge_pages(struct tks_slab *s, enum tks_huge_pages mode);
/* Unmaps every page.  NULL is a no-op. */
void tks_slab_destroy(struct tks_slab *s);

/* Class id that holds size bytes, or 0 if size is 0 or over page_size. */
unsigned tks_slab_class_for(const struct tks_slab *s, size_t size);
size_t tks_slab_chunk_size(const struct tks_slab *s, unsigned class_id);

/*
 * Returns a chunk of at least size bytes, 8-byte aligned, or NULL when size
 * is 0 or over page_size, when mmap fails, or when a new page would take the
 * total over the limit set with tks_slab_set_limit().
 */
void *tks_slab_alloc(struct tks_slab *s, size_t size);
/* Returns p (from tks_slab_alloc with the same size) to its class. */
void tks_slab_free(struct tks_slab *s, void *p, size_t size);

/* True when tks_slab_alloc(s, size) would succeed without freeing
 * anything: the class has a free chunk, or a new page fits under the
 * limit (mmap failing aside).  False for a size no class holds. */
bool tks_slab_can_alloc(const struct tks_slab *s, size_t size);

/* 0 = no limit (default). */
void tks_slab_set_limit(struct tks_slab *s, uint64_t max_bytes);

uint64_t tks_slab_bytes_allocated(const struct tks_slab *s); /* pages * page_size */
uint64_t tks_slab_bytes_used(const struct tks_slab *s);      /* used chunks * chunk size */
/* Bytes of allocated pages no chunk was ever cut from, to the OS page: the
 * end of each class's newest page, which the OS has not backed with memory
 * (0 for a page of an extent asked for huge pages, which a first touch
 * backs whole). */
uint64_t tks_slab_bytes_untouched(const struct tks_slab *s);
uint64_t tks_slab_bytes_requested(const struct tks_slab *s);
uint64_t tks_slab_pages(const struct tks_slab *s);
size_t tks_slab_page_size(const struct tks_slab *s);
unsigned tks_slab_nclasses(const struct tks_slab *s);
/* Fills *out for class id (1..nclasses).  Returns 0 or -EINVAL. */
int tks_slab_class_info(const struct tks_slab *s, unsigned id, struct tks_slab_class_info *out);

/* Adds "slabs.*" figures: totals and each class that has pages. */
void tks_slab_stats(const struct tks_slab *s, struct tks_stats *st);

#endif

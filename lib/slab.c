/*
 * Slab allocation after memcached's slabs.c: size classes growing by a
 * factor from min_chunk up to the page size; each class takes whole pages
 * (page_size bytes, carved from mmap'd extents) and cuts them into chunks.  A freed chunk is
 * pushed on its class's free list (the list link lives in the chunk) and
 * handed out again before any new chunk is cut from the newest page.
 */
#include "slab.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stats.h"

struct free_chunk {
  struct free_chunk *next;
};

struct slab_class {
  size_t size;
  size_t perpage;
  struct free_chunk *free_list;
  uint64_t free_count;
  char *end;          /* next never-used chunk of the newest page */
  size_t end_left;    /* chunks left at end */
  bool end_huge;      /* the newest page's extent was asked for huge pages */
  uint64_t pages;
  uint64_t used;
  uint64_t requested;
};

/* Pages are carved from extents: 2 MiB-aligned reservations, so that the
 * kernel can back them with transparent huge pages where they are asked
 * for (tks_slab_set_huge_pages; measured in bench/README.md). */
#define EXTENT_BYTES ((size_t)64 << 20)
#define HUGE_ALIGN ((size_t)2 << 20)

struct extent {
  void *base;
  size_t len;
};

/* The OS page size, for what of a page was never touched. */
static size_t os_page_size(void) {
  static size_t n;
  if (!n) n = (size_t)sysconf(_SC_PAGESIZE);
  return n;
}

struct tks_slab {
  size_t page_size;
  enum tks_huge_pages huge;
  char *ext_next;  /* next unused byte of the newest extent */
  size_t ext_left;
  bool ext_huge; /* the newest extent was madvised MADV_HUGEPAGE */
  struct extent *extents;
  size_t nextents, extents_cap;
  uint64_t limit;
  unsigned nclasses;
  struct slab_class cls[TKS_SLAB_MAX_CLASSES + 1]; /* 1-based */
  void **pages;
  uint64_t npages, pages_cap;
};

struct tks_slab *tks_slab_create(size_t page_size, double growth, size_t min_chunk) {
  long os_page = sysconf(_SC_PAGESIZE);
  if (page_size < 65536 || page_size > (1ul << 30) || page_size % (size_t)os_page != 0 ||
      !(growth >= 1.01 && growth <= 4.0) || min_chunk < 16 || min_chunk % 8 != 0 ||
      min_chunk > page_size / 2) {
    errno = EINVAL;
    return NULL;
  }
  struct tks_slab *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->page_size = page_size;
  double size = (double)min_chunk;
  unsigned n = 0;
  while (n < TKS_SLAB_MAX_CLASSES - 1 && size <= (double)page_size / 2) {
    size_t sz = ((size_t)size + 7) & ~(size_t)7;
    if (n == 0 || sz > s->cls[n].size) {
      n++;
      s->cls[n].size = sz;
      s->cls[n].perpage = page_size / sz;
    }
    size *= growth;
  }
  n++; /* the largest class holds a whole page, as memcached's does */
  s->cls[n].size = page_size;
  s->cls[n].perpage = 1;
  s->nclasses = n;
  return s;
}

void tks_slab_destroy(struct tks_slab *s) {
  if (!s) return;
  for (size_t i = 0; i < s->nextents; i++) munmap(s->extents[i].base, s->extents[i].len);
  free(s->extents);
  free(s->pages);
  free(s);
}

/* A fresh page_size piece of memory from the OS, or NULL. */
static void *page_from_os(struct tks_slab *s) {
  if (s->ext_left < s->page_size) {
    if (s->nextents == s->extents_cap) {
      size_t cap = s->extents_cap ? s->extents_cap * 2 : 16;
      struct extent *e = realloc(s->extents, cap * sizeof *e);
      if (!e) return NULL;
      s->extents = e;
      s->extents_cap = cap;
    }
    size_t len = EXTENT_BYTES / s->page_size * s->page_size;
    if (len < s->page_size) len = s->page_size;
    /* Over-reserve by the alignment, then trim to a 2 MiB boundary. */
    char *raw = mmap(NULL, len + HUGE_ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
    if (raw == MAP_FAILED) return NULL;
    char *base = (char *)(((uintptr_t)raw + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1));
    if (base > raw) munmap(raw, (size_t)(base - raw));
    size_t tail = (size_t)(raw + len + HUGE_ALIGN - (base + len));
    if (tail) munmap(base + len, tail);
    /* A hint: failure is fine. */
    if (s->huge == TKS_HUGE_PAGES_ON) madvise(base, len, MADV_HUGEPAGE);
    if (s->huge == TKS_HUGE_PAGES_OFF) madvise(base, len, MADV_NOHUGEPAGE);
    s->ext_huge = s->huge == TKS_HUGE_PAGES_ON;
    s->extents[s->nextents++] = (struct extent){base, len};
    s->ext_next = base;
    s->ext_left = len;
  }
  void *p = s->ext_next;
  s->ext_next += s->page_size;
  s->ext_left -= s->page_size;
  return p;
}

const char *const tks_huge_pages_names[TKS_HUGE_PAGES_COUNT] = {"auto", "on", "off"};

void tks_slab_set_huge_pages(struct tks_slab *s, enum tks_huge_pages mode) { s->huge = mode; }

unsigned tks_slab_class_for(const struct tks_slab *s, size_t size) {
  if (size == 0 || size > s->page_size) return 0;
  unsigned lo = 1, hi = s->nclasses;
  while (lo < hi) { /* smallest class with size >= the request */
    unsigned mid = (lo + hi) / 2;
    if (s->cls[mid].size >= size)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

size_t tks_slab_chunk_size(const struct tks_slab *s, unsigned id) {
  return id >= 1 && id <= s->nclasses ? s->cls[id].size : 0;
}

void tks_slab_set_limit(struct tks_slab *s, uint64_t max_bytes) { s->limit = max_bytes; }

static bool page_fits(const struct tks_slab *s) {
  return !s->limit || (s->npages + 1) * s->page_size <= s->limit;
}

bool tks_slab_can_alloc(const struct tks_slab *s, size_t size) {
  unsigned id = tks_slab_class_for(s, size);
  if (id == 0) return false;
  const struct slab_class *c = &s->cls[id];
  return c->free_list || c->end_left > 0 || page_fits(s);
}

static int new_page(struct tks_slab *s, struct slab_class *c) {
  if (!page_fits(s)) return -ENOMEM;
  if (s->npages == s->pages_cap) {
    uint64_t cap = s->pages_cap ? s->pages_cap * 2 : 64;
    void **p = realloc(s->pages, cap * sizeof *p);
    if (!p) return -ENOMEM;
    s->pages = p;
    s->pages_cap = cap;
  }
  void *page = page_from_os(s);
  if (!page) return -ENOMEM;
  s->pages[s->npages++] = page;
  c->pages++;
  c->end = page;
  c->end_left = c->perpage;
  c->end_huge = s->ext_huge;
  return 0;
}

void *tks_slab_alloc(struct tks_slab *s, size_t size) {
  unsigned id = tks_slab_class_for(s, size);
  if (id == 0) return NULL;
  struct slab_class *c = &s->cls[id];
  void *p;
  if (c->free_list) {
    p = c->free_list;
    c->free_list = c->free_list->next;
    c->free_count--;
  } else {
    if (c->end_left == 0 && new_page(s, c) != 0) return NULL;
    p = c->end;
    c->end += c->size;
    c->end_left--;
  }
  c->used++;
  c->requested += size;
  return p;
}

void tks_slab_free(struct tks_slab *s, void *p, size_t size) {
  if (!p) return;
  unsigned id = tks_slab_class_for(s, size);
  struct slab_class *c = &s->cls[id];
  struct free_chunk *f = p;
  f->next = c->free_list;
  c->free_list = f;
  c->free_count++;
  c->used--;
  c->requested -= size;
}

uint64_t tks_slab_bytes_allocated(const struct tks_slab *s) { return s->npages * s->page_size; }

uint64_t tks_slab_bytes_untouched(const struct tks_slab *s) {
  uint64_t n = 0;
  size_t os = os_page_size();
  for (unsigned i = 1; i <= s->nclasses; i++) {
    const struct slab_class *c = &s->cls[i];
    if (!c->pages || c->end_huge) continue;
    /* From the first OS page at or after the next chunk to the page's end
     * (the chunks never cut, and the remainder no chunk fills). */
    uintptr_t from = ((uintptr_t)c->end + os - 1) & ~(uintptr_t)(os - 1);
    uintptr_t to = (uintptr_t)c->end + c->end_left * c->size + s->page_size % c->size;
    if (to > from) n += to - from;
  }
  return n;
}

uint64_t tks_slab_bytes_used(const struct tks_slab *s) {
  uint64_t n = 0;
  for (unsigned i = 1; i <= s->nclasses; i++) n += s->cls[i].used * s->cls[i].size;
  return n;
}

uint64_t tks_slab_bytes_requested(const struct tks_slab *s) {
  uint64_t n = 0;
  for (unsigned i = 1; i <= s->nclasses; i++) n += s->cls[i].requested;
  return n;
}

uint64_t tks_slab_pages(const struct tks_slab *s) { return s->npages; }
size_t tks_slab_page_size(const struct tks_slab *s) { return s->page_size; }
unsigned tks_slab_nclasses(const struct tks_slab *s) { return s->nclasses; }

int tks_slab_class_info(const struct tks_slab *s, unsigned id, struct tks_slab_class_info *out) {
  if (id < 1 || id > s->nclasses) return -EINVAL;
  const struct slab_class *c = &s->cls[id];
  *out = (struct tks_slab_class_info){
      .id = id,
      .chunk_size = c->size,
      .chunks_per_page = c->perpage,
      .total_pages = c->pages,
      .total_chunks = c->pages * c->perpage,
      .used_chunks = c->used,
      .free_chunks = c->free_count,
      .free_chunks_end = c->end_left,
      .mem_requested = c->requested,
  };
  return 0;
}

static const struct tks_stat ST_SLABS_PAGE_SIZE = {"slabs.page_size",
                                                   TKS_STAT_GAUGE,
                                                   TKS_UNIT_BYTES,
                                                   "Size of one slab page in bytes",
                                                   NULL,
                                                   NULL},
                             ST_SLABS_TOTAL_PAGES = {"slabs.total_pages",
                                                     TKS_STAT_GAUGE,
                                                     TKS_UNIT_NONE,
                                                     "Slab pages obtained from the OS",
                                                     NULL,
                                                     NULL},
                             ST_SLABS_TOTAL_MALLOCED = {"slabs.total_malloced",
                                                        TKS_STAT_GAUGE,
                                                        TKS_UNIT_BYTES,
                                                        "Bytes of slab pages obtained from the OS",
                                                        NULL,
                                                        NULL},
                             ST_SLABS_ACTIVE_CLASSES = {"slabs.active_classes",
                                                        TKS_STAT_GAUGE,
                                                        TKS_UNIT_NONE,
                                                        "Slab classes that hold at least one page",
                                                        NULL,
                                                        NULL};

/* slabs.classes.<id>.*, in the order of the values in tks_slab_stats. */
#define CLASS_STAT(name, unit, help) \
  { "slabs.classes.*." name, TKS_STAT_GAUGE, unit, help, "slab_class_" name, "class" }
static const struct tks_stat class_stats[] = {
    CLASS_STAT("chunk_size", TKS_UNIT_BYTES, "Chunk size of the slab class in bytes"),
    CLASS_STAT("chunks_per_page", TKS_UNIT_NONE, "Chunks per page of the slab class"),
    CLASS_STAT("total_pages", TKS_UNIT_NONE, "Pages held by the slab class"),
    CLASS_STAT("total_chunks", TKS_UNIT_NONE, "Chunks held by the slab class"),
    CLASS_STAT("used_chunks", TKS_UNIT_NONE, "Chunks in use in the slab class"),
    CLASS_STAT("free_chunks", TKS_UNIT_NONE, "Freed chunks waiting for reuse in the slab class"),
    CLASS_STAT("free_chunks_end", TKS_UNIT_NONE,
               "Never used chunks at the end of the newest page of the slab class"),
    CLASS_STAT("mem_requested", TKS_UNIT_BYTES,
               "Bytes requested by live allocations in the slab class"),
    CLASS_STAT("waste_bytes", TKS_UNIT_BYTES,
               "Bytes of chunks held by the class minus bytes requested"),
};

void tks_slab_stats(const struct tks_slab *s, struct tks_stats *st) {
  tks_stat_u64(st, &ST_SLABS_PAGE_SIZE, s->page_size);
  tks_stat_u64(st, &ST_SLABS_TOTAL_PAGES, s->npages);
  tks_stat_u64(st, &ST_SLABS_TOTAL_MALLOCED, tks_slab_bytes_allocated(s));
  unsigned active = 0;
  for (unsigned id = 1; id <= s->nclasses; id++) active += s->cls[id].pages > 0;
  tks_stat_u64(st, &ST_SLABS_ACTIVE_CLASSES, active);
  for (unsigned id = 1; id <= s->nclasses; id++) {
    struct tks_slab_class_info ci;
    tks_slab_class_info(s, id, &ci);
    if (ci.total_pages == 0) continue;
    uint64_t v[] = {ci.chunk_size,   ci.chunks_per_page, ci.total_pages,
                    ci.total_chunks, ci.used_chunks,     ci.free_chunks,
                    ci.free_chunks_end, ci.mem_requested,
                    ci.total_chunks * ci.chunk_size - ci.mem_requested};
    _Static_assert(TKS_ARRAY_SIZE(v) == TKS_ARRAY_SIZE(class_stats), "a value a descriptor");
    char part[16];
    snprintf(part, sizeof part, "%u", id);
    for (unsigned f = 0; f < TKS_ARRAY_SIZE(class_stats); f++)
      tks_stat_u64_of(st, &class_stats[f], part, v[f]);
  }
}

/*
 * Symbol interning.  Strings live once in an arena of 64 KiB blocks, each
 * as [length byte][bytes][NUL]; ids index an array of pointers into the
 * arena.  Lookup is an open-addressing (linear probing) table of
 * (hash, id) pairs kept at most half full, so a probe rarely touches a
 * string it does not want.
 */
#include "symtab.h"

#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK 65536

/* A slot carries the first 8 bytes of its string and a tag of the length
 * and 24 hash bits, so that a symbol of up to 8 bytes (most tickers) is
 * matched without touching the arena. */
struct slot {
  uint64_t head; /* tks_head8() of the string */
  uint32_t tag;  /* length << 24 | 24 bits of the hash */
  uint32_t id;   /* 0 = empty */
};

static inline uint32_t tag_of(uint32_t hash, size_t len) {
  return (uint32_t)len << 24 | (hash & 0xffffff);
}

struct arena_block {
  struct arena_block *next;
  size_t used;
  char data[];
};

struct tks_symtab {
  struct tks_symtab_head head; /* first: head.count, ids 1..count are in use */
  uint32_t max;
  uint32_t mask;   /* table size - 1 */
  struct slot *table;
  uint32_t names_cap;
  struct arena_block *arena;
  uint64_t arena_bytes;
  uint64_t string_bytes;
};

static uint32_t hash_bytes(const char *s, size_t len) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (len * 0xff51afd7ed558ccdull);
  if (len > 8) {
    size_t i = 0;
    for (; i + 8 < len; i += 8) {
      uint64_t k;
      memcpy(&k, s + i, 8);
      h = (h ^ k) * 0xc4ceb9fe1a85ec53ull;
      h ^= h >> 29;
    }
    uint64_t k;
    memcpy(&k, s + len - 8, 8); /* the last 8 bytes, overlapping */
    h = (h ^ k) * 0xc4ceb9fe1a85ec53ull;
  } else {
    h = (h ^ tks_head8(s, len)) * 0xc4ceb9fe1a85ec53ull;
  }
  h ^= h >> 32;
  return (uint32_t)h;
}

struct tks_symtab *tks_symtab_create(uint32_t max_symbols) {
  struct tks_symtab *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->max = max_symbols ? max_symbols : (1u << 31);
  t->mask = 255;
  t->table = calloc(t->mask + 1, sizeof *t->table);
  t->names_cap = 128;
  t->head.names = calloc(t->names_cap, sizeof *t->head.names);
  if (!t->table || !t->head.names) {
    tks_symtab_destroy(t);
    return NULL;
  }
  return t;
}

void tks_symtab_destroy(struct tks_symtab *t) {
  if (!t) return;
  struct arena_block *b = t->arena;
  while (b) {
    struct arena_block *next = b->next;
    free(b);
    b = next;
  }
  free(t->table);
  free(t->head.names);
  free(t);
}

static uint32_t find(const struct tks_symtab *t, uint32_t h, const char *s, size_t len,
                     uint32_t *pos) {
  uint32_t i = h & t->mask, tag = tag_of(h, len);
  uint64_t head = tks_head8(s, len);
  for (;;) {
    const struct slot *sl = &t->table[i];
    if (sl->id == 0) break;
    if (sl->tag == tag && sl->head == head &&
        (len <= 8 || memcmp(t->head.names[sl->id] + 9, s + 8, len - 8) == 0)) {
      *pos = i;
      return sl->id;
    }
    i = (i + 1) & t->mask;
  }
  *pos = i;
  return 0;
}

static int grow_table(struct tks_symtab *t) {
  uint32_t size = (t->mask + 1) * 2;
  struct slot *nt = calloc(size, sizeof *nt);
  if (!nt) return -ENOMEM;
  for (uint32_t i = 0; i <= t->mask; i++) {
    struct slot sl = t->table[i];
    if (sl.id == 0) continue;
    const unsigned char *n = t->head.names[sl.id];
    uint32_t j = hash_bytes((const char *)n + 1, n[0]) & (size - 1);
    while (nt[j].id) j = (j + 1) & (size - 1);
    nt[j] = sl;
  }
  free(t->table);
  t->table = nt;
  t->mask = size - 1;
  return 0;
}

static unsigned char *arena_alloc(struct tks_symtab *t, size_t n) {
  struct arena_block *b = t->arena;
  if (!b || ARENA_BLOCK - b->used < n) {
    b = malloc(sizeof *b + ARENA_BLOCK);
    if (!b) return NULL;
    b->next = t->arena;
    b->used = 0;
    t->arena = b;
    t->arena_bytes += sizeof *b + ARENA_BLOCK;
  }
  unsigned char *p = (unsigned char *)b->data + b->used;
  b->used += n;
  return p;
}

int tks_symtab_lookup(const struct tks_symtab *t, const char *s, size_t len, uint32_t *id) {
  if (len == 0) {
    *id = 0;
    return 0;
  }
  if (len > TKS_SYMBOL_MAX_LEN) return -ENOENT;
  uint32_t pos;
  uint32_t found = find(t, hash_bytes(s, len), s, len, &pos);
  if (!found) return -ENOENT;
  *id = found;
  return 0;
}

int tks_symtab_intern(struct tks_symtab *t, const char *s, size_t len, uint32_t *id) {
  if (len == 0) {
    *id = 0;
    return 0;
  }
  if (len > TKS_SYMBOL_MAX_LEN) return -E2BIG;
  uint32_t h = hash_bytes(s, len), pos;
  uint32_t found = find(t, h, s, len, &pos);
  if (found) {
    *id = found;
    return 0;
  }
  if (t->head.count >= t->max) return -ENOSPC;
  if ((t->head.count + 1) * 2 > t->mask + 1) {
    if (grow_table(t)) return -ENOMEM;
    find(t, h, s, len, &pos);
  }
  uint32_t nid = t->head.count + 1;
  if (nid >= t->names_cap) {
    const unsigned char **nn = realloc(t->head.names, (size_t)t->names_cap * 2 * sizeof *nn);
    if (!nn) return -ENOMEM;
    t->head.names = nn;
    t->names_cap *= 2;
  }
  unsigned char *p = arena_alloc(t, len + 2);
  if (!p) return -ENOMEM;
  p[0] = (unsigned char)len;
  memcpy(p + 1, s, len);
  p[len + 1] = '\0';
  t->head.names[nid] = p;
  t->table[pos] = (struct slot){tks_head8(s, len), tag_of(h, len), nid};
  t->head.count = nid;
  t->string_bytes += len + 1;
  *id = nid;
  return 0;
}

/* Empties slot i and shifts back the entries after it in its cluster that
 * are no longer reachable from their home slot (linear probing deletion). */
static void delete_slot(struct tks_symtab *t, uint32_t i) {
  for (uint32_t j = (i + 1) & t->mask;; j = (j + 1) & t->mask) {
    struct slot sl = t->table[j];
    if (sl.id == 0) break;
    const unsigned char *n = t->head.names[sl.id];
    uint32_t home = hash_bytes((const char *)n + 1, n[0]) & t->mask;
    /* sl may stay at j if its home lies cyclically in (i, j]. */
    if (((j - home) & t->mask) < ((j - i) & t->mask)) continue;
    t->table[i] = sl;
    i = j;
  }
  t->table[i] = (struct slot){0};
}

void tks_symtab_truncate(struct tks_symtab *t, uint32_t count) {
  if (t->head.count > count) t->head.generation++;
  while (t->head.count > count) {
    uint32_t id = t->head.count;
    const unsigned char *n = t->head.names[id];
    size_t len = n[0];
    uint32_t i = hash_bytes((const char *)n + 1, len) & t->mask;
    while (t->table[i].id != id) i = (i + 1) & t->mask;
    delete_slot(t, i);
    struct arena_block *b = t->arena;
    if (b && (const char *)n + len + 2 == b->data + b->used) {
      b->used -= len + 2;
      if (b->used == 0) {
        t->arena = b->next;
        t->arena_bytes -= sizeof *b + ARENA_BLOCK;
        free(b);
      }
    }
    t->head.names[id] = NULL;
    t->string_bytes -= len + 1;
    t->head.count = id - 1;
  }
}

uint64_t tks_symtab_bytes(const struct tks_symtab *t) {
  return sizeof *t + (uint64_t)(t->mask + 1) * sizeof(struct slot) +
         (uint64_t)t->names_cap * sizeof *t->head.names + t->arena_bytes;
}

uint64_t tks_symtab_string_bytes(const struct tks_symtab *t) { return t->string_bytes; }

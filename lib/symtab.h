/*
 * Symbol interning: each distinct string is stored once, in an arena, and
 * named by a small integer id (1, 2, 3, ... in order of first sight; 0 is
 * reserved for the empty string).  Lookup is an open-addressing hash table
 * of ids.  Every byte is counted.
 */
#ifndef TKS_SYMTAB_H
#define TKS_SYMTAB_H

#include <stddef.h>
#include <stdint.h>

#define TKS_SYMBOL_MAX_LEN 255

struct tks_symtab;

/* max_symbols: the most distinct strings kept (0 = 2^31).  NULL on ENOMEM. */
struct tks_symtab *tks_symtab_create(uint32_t max_symbols);
void tks_symtab_destroy(struct tks_symtab *t);

/*
 * Returns the id of s (len bytes, need not be NUL-terminated), adding it if
 * new.  The empty string is id 0.  Returns 0 and sets *id, or -E2BIG (len over
 * TKS_SYMBOL_MAX_LEN), -ENOSPC (max_symbols reached) or -ENOMEM.
 */
int tks_symtab_intern(struct tks_symtab *t, const char *s, size_t len, uint32_t *id);
/* As intern, but never adds: -ENOENT if s is not known. */
int tks_symtab_lookup(const struct tks_symtab *t, const char *s, size_t len, uint32_t *id);

/*
 * Removes every id above count (count at most tks_symtab_count), newest
 * first: their strings are no longer found, their ids are given again in
 * order, and the arena bytes of the newest strings are given back (an arena
 * block left empty is freed).  For undoing the strings one tick added when
 * the tick is then refused.  The table keeps its size.
 */
void tks_symtab_truncate(struct tks_symtab *t, uint32_t count);

/* The first member of struct tks_symtab, so that the count is read inline
 * (ingest reads three counts a tick).  Only lib/symtab.c writes it. */
struct tks_symtab_head {
  uint32_t count;      /* ids in use, not counting 0 */
  uint64_t generation; /* tks_symtab_truncate calls that removed an id */
  const unsigned char **names; /* names[id] -> its length byte, then the bytes and a NUL */
};
static inline uint32_t tks_symtab_count(const struct tks_symtab *t) {
  return ((const struct tks_symtab_head *)(const void *)t)->count;
}
/*
 * Changes whenever an id is removed (tks_symtab_truncate), and only then:
 * while it reads the same, every id handed out still names the string it
 * named, so a cache of (string, id) pairs taken at one generation holds.
 */
static inline uint64_t tks_symtab_generation(const struct tks_symtab *t) {
  return ((const struct tks_symtab_head *)(const void *)t)->generation;
}
/* The string of id (NUL-terminated) and its length (if len), "" for 0,
 * NULL (length 0) for an id not in use.  Inline: renderers call it for
 * every symbol field of every tick they write. */
static inline const char *tks_symtab_name(const struct tks_symtab *t, uint32_t id, size_t *len) {
  const struct tks_symtab_head *h = (const struct tks_symtab_head *)(const void *)t;
  if (id == 0 || id > h->count) {
    if (len) *len = 0;
    return id ? NULL : "";
  }
  if (len) *len = h->names[id][0];
  return (const char *)h->names[id] + 1;
}
/* The same as a length byte followed by the bytes (id in use, not 0). */
static inline const unsigned char *tks_symtab_lname(const struct tks_symtab *t, uint32_t id) {
  return ((const struct tks_symtab_head *)(const void *)t)->names[id];
}
uint64_t tks_symtab_bytes(const struct tks_symtab *t); /* arena + table + headers */
uint64_t tks_symtab_string_bytes(const struct tks_symtab *t); /* string bytes incl. NULs */

#endif

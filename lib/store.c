/*
 * The tick store.  Each symbol has up to three series, one per
 * representation: slotted records (the schema's fields); overflow entries,
 * a slotted record and a pointer to an overflow map (a dynamic object of
 * the fields the schema does not declare: fallback mode); and dynamic
 * entries (ts and a pointer to an object holding every field: dynamic
 * mode).  Objects are slab chunks.  A series is a doubly linked chain of
 * blocks in time order; a block is one slab chunk: a 40-byte header, then
 * entries sorted by ts.
 *
 * Entries are packed: each block has a layout, the bytes each field takes
 * in it, and every entry of the block has that layout, so entry i is at
 * i * size (O(1) access by position, as unpacked records).  The series key
 * is not stored (it is the series'); ts is stored relative to the block's
 * base ts; an integer field takes the bytes its largest value in the block
 * needs (0 when it is 0 in every entry); floats and pointers take 8.  A
 * value that does not fit widens the block's layout (its entries are
 * rewritten in place, and moved into new blocks where they no longer fit);
 * a new tail block starts with its predecessor's layout, so a steady stream
 * widens nothing.  Layouts are interned per representation.  Outside the
 * store an entry has its unpacked form (tks_store_entry_size): queries,
 * walks and the eviction observer see unpacked copies.
 *
 * Appending in order touches only the tail block; a late tick is inserted
 * by binary search into the block that covers its ts, splitting the block
 * when it is full.  Blocks grow from TKS_STORE_BLOCK_MIN to
 * TKS_STORE_BLOCK_MAX bytes.  Queries merge the series of a symbol by ts.
 * Eviction (memory limits, retention) frees whole head blocks: the oldest
 * across all series through a heap of head blocks, or every block older
 * than a cutoff; the exact calls then cut the first entries off a head
 * block.  An observer sees every run of entries removed, before it goes.
 */
#include "store.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slab.h"
#include "stats.h"

struct block {
  struct block *prev, *next;
  uint32_t count;  /* entries held */
  uint32_t cap;    /* entries that fit, in its layout */
  uint32_t bytes;  /* chunk size asked of the slab */
  uint16_t layout; /* index in its set's layouts */
  uint16_t pad;
  int64_t base; /* an entry's ts is base plus its stored delta */
  /* entries follow, then at least SLACK bytes */
};
_Static_assert(sizeof(struct block) == 40, "block header is 40 bytes");

/* Bytes after a block's last entry: a field is read as one 8-byte load,
 * which may run past the entry. */
#define SLACK 8

/* How a field is packed: ts (signed, relative to the block's base), a
 * signed or unsigned integer (the bytes its value needs), or raw (all 8
 * bytes: floats, pointers). */
enum pkind { PK_TS, PK_SIGNED, PK_UNSIGNED, PK_RAW };

/* A field of an entry's unpacked form. */
struct pfield {
  uint16_t off; /* in the unpacked entry */
  uint8_t size; /* 1, 4 or 8 bytes there */
  uint8_t kind; /* enum pkind */
  int field;    /* the schema's field, or one of PF_* */
};
enum { PF_OBJ = -1, PF_TIES = -2, PF_DYN_TS = -3 }; /* the object pointer, ties, a dynamic ts */

#define PF_MAX (TKS_SCHEMA_MAX_FIELDS + 1) /* the fields and an overflow pointer */
#define LAYOUT_MAX 4096                    /* per set; then the widest is used */

/* How a layout packs one field, gathered for the hot paths: where it is
 * unpacked (src, size) and packed (dst), the mask of its bytes, the bias
 * that tests a signed value's range, the shift that sign-extends it, and
 * for ts the mask that makes it relative to the block's base. */
struct lfield {
  uint64_t lim, hi, bias; /* hi: ~lim, the bits a value must not have once biased */
  uint16_t src, dst;
  uint8_t sh;
};

/* A packed layout: the bytes of each field and their offsets (in the set's
 * field order, no padding). */
struct layout {
  uint64_t entries; /* held in blocks of this layout */
  uint32_t size;    /* bytes of a packed entry, at least 1 */
  uint8_t w[PF_MAX];
  struct lfield f[PF_MAX];
};

struct series {
  struct block *head, *tail;
  uint64_t count;
  int64_t last;          /* the newest ts, while count > 0 */
  struct block **blocks; /* the chain as an array, for binary search */
  uint32_t nblocks, bcap;
};

/* The series of one representation, for every symbol. */
struct set {
  uint32_t esize, ts_off, sym_off; /* the unpacked entry */
  /* The fields packed, but the series key: ts first, then the signed
   * 8-byte ones, the raw ones, the 4-byte and the 1-byte ones (unsigned),
   * each group ending at its index, so that the hot path needs no switch. */
  struct pfield pf[PF_MAX];
  unsigned npf, end_signed, end_raw, end_4;
  bool covers;             /* the fields and the key fill the unpacked entry: no padding to zero */
  int obj_pf, ties_pf;     /* the object pointer, an overflow entry's ties (-1: none) */
  struct layout **layouts; /* layouts[0]: every field at its widest */
  uint32_t nlayouts, lcap;
  struct series *series; /* indexed by symbol id */
  uint32_t cap;
  uint32_t used; /* series with at least one entry */
  uint64_t entries, late, block_bytes;
  uint64_t blockidx_bytes; /* bytes of the series' block arrays */
  uint64_t packed_bytes;   /* of the entries held, as packed */
};

/* A dynamic tick's unpacked entry. */
struct dyn_entry {
  int64_t ts;
  struct tks_dynobj *obj;
  uint32_t symbol;
  uint32_t pad;
};

enum { SET_SLOTTED, SET_OVERFLOW, SET_DYNAMIC, NSETS }; /* also the order of ties */
_Static_assert(SET_SLOTTED == (int)TKS_STORE_SLOTTED && SET_OVERFLOW == (int)TKS_STORE_OVERFLOW &&
                   SET_DYNAMIC == (int)TKS_STORE_DYNAMIC && NSETS == (int)TKS_STORE_REPS,
               "the public representations are the sets");
_Static_assert(TKS_STORE_ENTRY_MAX >= sizeof(struct dyn_entry), "a dynamic entry fits");

struct tks_store {
  const struct tks_schema *schema;
  struct tks_slab *slab;
  struct set sets[NSETS];
  uint32_t ovf_off, ties_off;      /* the overflow pointer and ties in an overflow entry */
  uint64_t obj_bytes[NSETS];       /* slab chunk bytes of objects (overflow maps, dynamic) */
  uint64_t obj_requested[NSETS];   /* bytes the objects asked for */
  uint64_t evicted_ticks, evicted_bytes;
  /* The eviction observer (tks_store_set_evict_hook), or NULL. */
  tks_store_evict_fn evict_fn;
  void *evict_ctx;
};

/* ---- packing ---- */

/* Bytes a value needs: unsigned, or signed (two's complement). */
static inline unsigned ubytes(uint64_t v) {
  return v ? (unsigned)(71 - __builtin_clzll(v)) / 8 : 0;
}

static inline unsigned sbytes(uint64_t v) {
  uint64_t m = (int64_t)v < 0 ? ~v : v; /* the magnitude's bits, plus a sign bit */
  return m ? (unsigned)(72 - __builtin_clzll(m)) / 8 : (v ? 1 : 0);
}

static unsigned need(enum pkind k, uint64_t code) {
  switch (k) {
  case PK_TS:
  case PK_SIGNED: return sbytes(code);
  case PK_UNSIGNED: return ubytes(code);
  case PK_RAW: break;
  }
  return 8;
}

static inline uint64_t load8(const char *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* The codes of an unpacked entry: each field as the 64 bits it packs to,
 * ts relative to base. */
static void codes_of(const struct set *s, const char *e, int64_t base, uint64_t *code) {
  for (unsigned i = 0; i < s->npf; i++) {
    const struct pfield *f = &s->pf[i];
    uint64_t v;
    if (f->size == 8) {
      v = load8(e + f->off);
    } else if (f->size == 4) {
      uint32_t u;
      memcpy(&u, e + f->off, sizeof u);
      v = u;
    } else {
      v = (unsigned char)e[f->off];
    }
    code[i] = f->kind == PK_TS ? v - (uint64_t)base : v;
  }
}

static bool fits(const struct layout *L, unsigned n, const uint64_t *code) {
  uint64_t over = 0;
  for (unsigned i = 0; i < n; i++) over |= (code[i] + L->f[i].bias) & L->f[i].hi;
  return over == 0;
}

/* Writes the codes in L's layout to dst (L->size bytes).  Each field is
 * stored as 8 bytes in declaration order, the next overwriting the spill. */
static void pack(const struct layout *L, unsigned n, const uint64_t *code, char *dst) {
  char tmp[PF_MAX * 8 + 8];
  for (unsigned i = 0; i < n; i++) memcpy(tmp + L->f[i].dst, &code[i], 8);
  memcpy(dst, tmp, L->size);
}

/* The hot path of in-order appends: packs the unpacked entry e into dst,
 * the free entry after a block's last (it and SLACK bytes are the block's
 * to scribble on), and tells whether every field fitted L.  When one did
 * not, dst holds garbage and is still free. */
static inline bool pack_tail(const struct set *s, const struct layout *L, const char *e,
                             uint64_t base, char *dst) {
  const struct lfield *f = L->f;
  uint64_t v = load8(e + f[0].src) - base; /* ts */
  uint64_t over = (v + f[0].bias) & f[0].hi;
  memcpy(dst + f[0].dst, &v, 8);
  unsigned i = 1;
  for (; i < s->end_signed; i++) {
    v = load8(e + f[i].src);
    over |= (v + f[i].bias) & f[i].hi;
    memcpy(dst + f[i].dst, &v, 8);
  }
  for (; i < s->end_raw; i++) memcpy(dst + f[i].dst, e + f[i].src, 8);
  for (; i < s->end_4; i++) {
    uint32_t u;
    memcpy(&u, e + f[i].src, sizeof u);
    v = u;
    over |= v & f[i].hi;
    memcpy(dst + f[i].dst, &v, 8);
  }
  for (; i < s->npf; i++) {
    v = (unsigned char)e[f[i].src];
    over |= v & f[i].hi;
    memcpy(dst + f[i].dst, &v, 8);
  }
  return over == 0;
}

/* Field i of a packed entry p (SLACK readable bytes after it): its code. */
static inline uint64_t code_at(const struct layout *L, unsigned i, const char *p) {
  const struct lfield *f = &L->f[i];
  uint64_t v = load8(p + f->dst) & f->lim;
  return (uint64_t)((int64_t)(v << f->sh) >> f->sh);
}

/* A packed entry p of L back in its unpacked form (s->esize bytes). */
static void unpack(const struct set *s, const struct layout *L, int64_t base, uint32_t sym,
                   const char *p, char *e) {
  /* By the groups of struct set, as pack_tail: no switch per field. */
  if (!s->covers) memset(e, 0, s->esize);
  const struct lfield *f = L->f;
  uint64_t v = code_at(L, 0, p) + (uint64_t)base; /* ts */
  memcpy(e + f[0].src, &v, 8);
  unsigned i = 1;
  for (; i < s->end_signed; i++) {
    v = code_at(L, i, p);
    memcpy(e + f[i].src, &v, 8);
  }
  for (; i < s->end_raw; i++) memcpy(e + f[i].src, p + f[i].dst, 8);
  for (; i < s->end_4; i++) {
    uint32_t u = (uint32_t)code_at(L, i, p);
    memcpy(e + f[i].src, &u, 4);
  }
  for (; i < s->npf; i++) e[f[i].src] = (char)code_at(L, i, p);
  memcpy(e + s->sym_off, &sym, sizeof sym);
}

/* The layout with widths w, made if it is new.  Its index, or 0 (the
 * widest, which fits anything) when the table is full or out of memory. */
static uint16_t layout_get(struct set *s, const uint8_t *w) {
  for (uint32_t i = 0; i < s->nlayouts; i++)
    if (memcmp(s->layouts[i]->w, w, s->npf) == 0) return (uint16_t)i;
  if (s->nlayouts == LAYOUT_MAX) return 0;
  if (s->nlayouts == s->lcap) {
    uint32_t cap = s->lcap ? s->lcap * 2 : 8;
    struct layout **nl = realloc(s->layouts, (size_t)cap * sizeof *nl);
    if (!nl) return 0;
    s->layouts = nl;
    s->lcap = cap;
  }
  struct layout *L = calloc(1, sizeof *L);
  if (!L) return 0;
  uint32_t off = 0;
  for (unsigned i = 0; i < s->npf; i++) {
    unsigned wi = w[i];
    bool sgn = s->pf[i].kind == PK_TS || s->pf[i].kind == PK_SIGNED;
    L->w[i] = (uint8_t)wi;
    struct lfield *f = &L->f[i];
    f->src = s->pf[i].off;
    f->dst = (uint16_t)off;
    f->lim = wi == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * wi)) - 1;
    f->hi = ~f->lim;
    f->bias = sgn && wi > 0 && wi < 8 ? UINT64_C(1) << (8 * wi - 1) : 0;
    f->sh = (uint8_t)(sgn && wi > 0 && wi < 8 ? 64 - 8 * wi : 0);
    off += wi;
  }
  L->size = off ? off : 1;
  s->layouts[s->nlayouts] = L;
  return (uint16_t)s->nlayouts++;
}

/* The layout for codes: L's widths (the narrowest when L is NULL) widened
 * to what code needs. */
static uint16_t layout_for(struct set *s, const struct layout *L, const uint64_t *code) {
  uint8_t w[PF_MAX];
  for (unsigned i = 0; i < s->npf; i++) {
    unsigned n = need((enum pkind)s->pf[i].kind, code[i]);
    w[i] = (uint8_t)(L && L->w[i] > n ? L->w[i] : n);
  }
  return layout_get(s, w);
}

static void set_init(struct set *s, uint32_t esize, uint32_t ts_off, uint32_t sym_off) {
  s->esize = esize;
  s->ts_off = ts_off;
  s->sym_off = sym_off;
  s->obj_pf = s->ties_pf = -1;
}

static void add_pf(struct set *s, uint32_t off, uint32_t size, enum pkind kind, int field) {
  s->pf[s->npf++] = (struct pfield){(uint16_t)off, (uint8_t)size, (uint8_t)kind, field};
}

/* The schema's fields but the series key, as slotted and overflow entries
 * hold them. */
static void add_schema_pfs(struct set *s, const struct tks_schema *sc) {
  for (unsigned i = 0; i < sc->nfields; i++) {
    const struct tks_field *f = &sc->fields[i];
    if ((int)i == sc->symbol_field) continue;
    enum pkind k = PK_UNSIGNED; /* u32, symbol and string ids, bool */
    if ((int)i == sc->ts_field)
      k = PK_TS;
    else if (f->type == TKS_TYPE_I64)
      k = PK_SIGNED;
    else if (f->type == TKS_TYPE_F64)
      k = PK_RAW;
    add_pf(s, f->offset, f->size, k, (int)i);
  }
}

/* Puts the fields in their groups (see struct set), declaration order
 * within each. */
static void order_pfs(struct set *s) {
  struct pfield in[PF_MAX];
  memcpy(in, s->pf, sizeof in);
  unsigned n = 0, *ends[] = {NULL, &s->end_signed, &s->end_raw, &s->end_4, NULL};
  for (unsigned g = 0; g < 5; g++) {
    for (unsigned i = 0; i < s->npf; i++) {
      const struct pfield *f = &in[i];
      unsigned group = f->kind == PK_TS       ? 0
                       : f->kind == PK_SIGNED ? 1
                       : f->kind == PK_RAW    ? 2
                       : f->size == 4         ? 3
                                              : 4;
      if (group != g) continue;
      if (f->field == PF_OBJ) s->obj_pf = (int)n;
      if (f->field == PF_TIES) s->ties_pf = (int)n;
      s->pf[n++] = *f;
    }
    if (ends[g]) *ends[g] = n;
  }
  assert(n == s->npf && s->pf[0].kind == PK_TS);
  uint32_t bytes = 4; /* the key */
  for (unsigned i = 0; i < s->npf; i++) bytes += s->pf[i].size;
  s->covers = bytes == s->esize; /* fields do not overlap: covered means no gap */
  for (unsigned i = 1; i < s->end_signed; i++) assert(s->pf[i].size == 8);
  for (unsigned i = s->end_4; i < s->npf; i++) assert(s->pf[i].size == 1);
}

/* layouts[0], the widest: made first, so that it is index 0. */
static int add_widest(struct set *s) {
  uint8_t w[PF_MAX];
  for (unsigned i = 0; i < s->npf; i++) w[i] = s->pf[i].kind == PK_TS ? 8 : s->pf[i].size;
  return layout_get(s, w) == 0 && s->nlayouts == 1 ? 0 : -ENOMEM;
}

struct tks_store *tks_store_create(const struct tks_schema *schema, struct tks_slab *slab) {
  struct tks_store *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->schema = schema;
  st->slab = slab;
  uint32_t ts_off = schema->fields[schema->ts_field].offset;
  uint32_t sym_off = schema->fields[schema->symbol_field].offset;
  struct set *sl = &st->sets[SET_SLOTTED], *ov = &st->sets[SET_OVERFLOW],
             *dy = &st->sets[SET_DYNAMIC];
  set_init(sl, schema->record_size, ts_off, sym_off);
  add_schema_pfs(sl, schema);
  uint32_t ovf_size = tks_store_overflow_entry_size(schema->record_size);
  st->ovf_off = (schema->record_size + 7) & ~7u;
  st->ties_off = st->ovf_off + (uint32_t)sizeof(struct tks_dynobj *);
  set_init(ov, ovf_size, ts_off, sym_off);
  add_schema_pfs(ov, schema);
  add_pf(ov, st->ovf_off, 8, PK_RAW, PF_OBJ);
  add_pf(ov, st->ties_off, 4, PK_UNSIGNED, PF_TIES);
  set_init(dy, sizeof(struct dyn_entry), offsetof(struct dyn_entry, ts),
           offsetof(struct dyn_entry, symbol));
  add_pf(dy, offsetof(struct dyn_entry, ts), 8, PK_TS, PF_DYN_TS);
  add_pf(dy, offsetof(struct dyn_entry, obj), 8, PK_RAW, PF_OBJ);
  for (int k = 0; k < NSETS; k++) {
    order_pfs(&st->sets[k]);
    if (add_widest(&st->sets[k])) {
      tks_store_destroy(st);
      return NULL;
    }
  }
  return st;
}

static inline const struct layout *lay(const struct set *s, const struct block *b) {
  return s->layouts[b->layout];
}

static inline char *ent_at(const struct set *s, const struct block *b, uint32_t i) {
  return (char *)(b + 1) + (size_t)i * lay(s, b)->size;
}

/* The ts of entry i of b. */
static inline int64_t ent_ts(const struct set *s, const struct block *b, uint32_t i) {
  const struct layout *L = lay(s, b);
  return (int64_t)(code_at(L, 0, (const char *)(b + 1) + (size_t)i * L->size) + (uint64_t)b->base);
}

/* The ts of an unpacked entry. */
static inline int64_t wide_ts(const struct set *s, const void *e) {
  int64_t ts;
  memcpy(&ts, (const char *)e + s->ts_off, sizeof ts);
  return ts;
}

/* The object entry i of b (set k) points to, or NULL. */
static struct tks_dynobj *ent_obj(const struct set *s, const struct block *b, uint32_t i) {
  if (s->obj_pf < 0) return NULL;
  uint64_t p = code_at(lay(s, b), (unsigned)s->obj_pf, ent_at(s, b, i));
  struct tks_dynobj *o;
  memcpy(&o, &p, sizeof o);
  return o;
}

/* The object an unpacked entry of set k points to, or NULL. */
static struct tks_dynobj *wide_obj(const struct tks_store *st, int k, const char *e) {
  struct tks_dynobj *o = NULL;
  if (k == SET_OVERFLOW) memcpy(&o, e + st->ovf_off, sizeof o);
  if (k == SET_DYNAMIC) o = ((const struct dyn_entry *)e)->obj;
  return o;
}

/* Entry i of block b of symbol sym, unpacked into e. */
static inline void ent_unpack(const struct set *s, const struct block *b, uint32_t sym, uint32_t i,
                              char *e) {
  unpack(s, lay(s, b), b->base, sym, ent_at(s, b, i), e);
}

static void set_free(struct tks_store *st, int k) {
  struct set *s = &st->sets[k];
  for (uint32_t i = 0; i < s->cap; i++) {
    free(s->series[i].blocks);
    struct block *b = s->series[i].head;
    while (b) {
      struct block *next = b->next;
      for (uint32_t j = 0; k != SET_SLOTTED && j < b->count; j++) {
        struct tks_dynobj *o = ent_obj(s, b, j);
        tks_slab_free(st->slab, o, o->bytes);
      }
      tks_slab_free(st->slab, b, b->bytes);
      b = next;
    }
  }
  free(s->series);
  for (uint32_t i = 0; i < s->nlayouts; i++) free(s->layouts[i]);
  free(s->layouts);
}

void tks_store_destroy(struct tks_store *st) {
  if (!st) return;
  for (int k = 0; k < NSETS; k++) set_free(st, k);
  free(st);
}

static inline uint32_t cap_for(uint32_t bytes, uint32_t size) {
  return (bytes - (uint32_t)sizeof(struct block) - SLACK) / size;
}

/* A new block of about want bytes with layout l and base ts. */
static struct block *block_new(struct tks_store *st, struct set *s, size_t want, uint16_t l,
                               int64_t base) {
  /* At least 8 entries of the widest layout, so that a split leaves both
   * halves non-empty whatever the block's layout becomes. */
  size_t least = sizeof(struct block) + SLACK + 8 * (size_t)s->layouts[0]->size;
  if (want < least) want = least;
  size_t bytes = tks_slab_chunk_size(st->slab, tks_slab_class_for(st->slab, want));
  struct block *b = tks_slab_alloc(st->slab, bytes);
  if (!b) return NULL;
  *b = (struct block){.bytes = (uint32_t)bytes, .layout = l, .base = base};
  b->cap = cap_for(b->bytes, s->layouts[l]->size);
  s->block_bytes += bytes;
  return b;
}

static void block_drop(struct tks_store *st, struct set *s, struct block *b) {
  s->block_bytes -= b->bytes;
  tks_slab_free(st->slab, b, b->bytes);
}

/* Room in sr->blocks for n more.  Returns 0 or -ENOMEM. */
static int reserve_blocks(struct set *s, struct series *sr, uint32_t n) {
  if (sr->nblocks + n <= sr->bcap) return 0;
  uint32_t cap = sr->bcap ? sr->bcap : 4;
  while (cap < sr->nblocks + n) cap *= 2;
  struct block **nbk = realloc(sr->blocks, (size_t)cap * sizeof *nbk);
  if (!nbk) return -ENOMEM;
  s->blockidx_bytes += (uint64_t)(cap - sr->bcap) * sizeof *nbk;
  sr->blocks = nbk;
  sr->bcap = cap;
  return 0;
}

/* Links nb after b, which is blocks[at - 1] (b NULL, at 0: nb becomes the
 * head).  Returns 0 or -ENOMEM (nothing changed). */
static int link_after(struct set *s, struct series *sr, struct block *b, uint32_t at,
                      struct block *nb) {
  if (reserve_blocks(s, sr, 1)) return -ENOMEM;
  memmove(sr->blocks + at + 1, sr->blocks + at, (size_t)(sr->nblocks - at) * sizeof *sr->blocks);
  sr->blocks[at] = nb;
  sr->nblocks++;
  nb->prev = b;
  nb->next = b ? b->next : sr->head;
  if (nb->next)
    nb->next->prev = nb;
  else
    sr->tail = nb;
  if (b)
    b->next = nb;
  else
    sr->head = nb;
  return 0;
}

/* Moves n entries of src from index i to the end of dst (both in the
 * layout l, the same base). */
static void move_entries(const struct set *s, struct block *dst, struct block *src, uint32_t i,
                         uint32_t n) {
  memcpy(ent_at(s, dst, dst->count), ent_at(s, src, i), (size_t)n * lay(s, src)->size);
  dst->count += n;
}

/*
 * Gives block blocks[at] of sr the layout l, wider than its own: its
 * entries are rewritten in l, and those past what the block then holds go
 * to new blocks (of its size, base and layout) after it.  Returns 0 or
 * -ENOMEM (nothing changed).
 */
static int relayout(struct tks_store *st, struct set *s, struct series *sr, uint32_t at,
                    uint16_t l) {
  struct block *b = sr->blocks[at];
  struct layout *from = s->layouts[b->layout], *to = s->layouts[l];
  uint32_t cap = cap_for(b->bytes, to->size);
  uint32_t extra = b->count > cap ? (b->count - cap + cap - 1) / cap : 0;
  struct block *nb[8]; /* cap >= b->count / 8 (block_new's least) */
  assert(extra <= 8);
  if (extra && reserve_blocks(s, sr, extra)) return -ENOMEM;
  for (uint32_t j = 0; j < extra; j++) {
    nb[j] = block_new(st, s, b->bytes, l, b->base);
    if (!nb[j]) {
      while (j-- > 0) block_drop(st, s, nb[j]);
      return -ENOMEM;
    }
  }
  uint64_t code[PF_MAX];
  const char *src = (const char *)(b + 1);
  for (uint32_t j = 0; j < extra; j++) {
    for (uint32_t i = cap * (j + 1); i < b->count && i < cap * (j + 2); i++) {
      for (unsigned f = 0; f < s->npf; f++)
        code[f] = code_at(from, f, src + (size_t)i * from->size);
      pack(to, s->npf, code, ent_at(s, nb[j], nb[j]->count++));
    }
    link_after(s, sr, j ? nb[j - 1] : b, at + 1 + j, nb[j]); /* room reserved: cannot fail */
  }
  /* In place, last first: entry i's new place starts at or after its old
   * one and ends before the new place of i + 1. */
  uint32_t keep = b->count < cap ? b->count : cap;
  char *dst = (char *)(b + 1);
  for (uint32_t i = keep; i-- > 0;) {
    for (unsigned f = 0; f < s->npf; f++) code[f] = code_at(from, f, src + (size_t)i * from->size);
    pack(to, s->npf, code, dst + (size_t)i * to->size);
  }
  from->entries -= b->count;
  to->entries += b->count;
  s->packed_bytes += (uint64_t)b->count * (to->size - from->size);
  b->count = keep;
  b->cap = cap;
  b->layout = l;
  return 0;
}

static int grow_series(struct set *s, uint32_t sym) {
  uint64_t want = s->cap ? s->cap : 64; /* 64-bit: doubling past 2^31 must not wrap */
  while (want <= sym) want *= 2;
  uint32_t cap = want > UINT32_MAX ? UINT32_MAX : (uint32_t)want;
  struct series *ns = realloc(s->series, (size_t)cap * sizeof *ns);
  if (!ns) return -ENOMEM;
  memset(ns + s->cap, 0, (size_t)(cap - s->cap) * sizeof *ns);
  s->series = ns;
  s->cap = cap;
  return 0;
}

static inline int ensure_series(struct set *s, uint32_t sym) {
  return sym < s->cap ? 0 : grow_series(s, sym);
}

/* Index of the first entry in b with ts > t (ties keep arrival order). */
static uint32_t upper_bound(const struct set *s, const struct block *b, int64_t t) {
  uint32_t lo = 0, hi = b->count;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (ent_ts(s, b, mid) <= t)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Index of the first entry in b with ts >= t. */
static uint32_t lower_bound(const struct set *s, const struct block *b, int64_t t) {
  uint32_t lo = 0, hi = b->count;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (ent_ts(s, b, mid) < t)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static inline int64_t first_ts(const struct set *s, const struct block *b) {
  return ent_ts(s, b, 0);
}

static inline int64_t last_ts(const struct set *s, const struct block *b) {
  return ent_ts(s, b, b->count - 1);
}

/* Stores the codes as entry pos of b (which has room and whose layout
 * fits them), after moving the entries from pos up. */
static void put_at(struct set *s, struct block *b, uint32_t pos, const uint64_t *code) {
  struct layout *L = s->layouts[b->layout];
  memmove(ent_at(s, b, pos + 1), ent_at(s, b, pos), (size_t)(b->count - pos) * L->size);
  pack(L, s->npf, code, ent_at(s, b, pos));
  b->count++;
  L->entries++;
  s->packed_bytes += L->size;
}

static int insert_late(struct tks_store *st, struct set *s, struct series *sr, const void *e,
                       int64_t ts) {
  uint64_t code[PF_MAX];
  for (;;) {
    /* The last block starting at or before ts (or the first block). */
    uint32_t lo = 0, hi = sr->nblocks;
    while (lo < hi) {
      uint32_t mid = (lo + hi) / 2;
      if (first_ts(s, sr->blocks[mid]) <= ts)
        lo = mid + 1;
      else
        hi = mid;
    }
    uint32_t at = lo ? lo - 1 : 0;
    struct block *b = sr->blocks[at];
    codes_of(s, e, b->base, code);
    const struct layout *L = lay(s, b);
    if (!fits(L, s->npf, code)) {
      if (relayout(st, s, sr, at, layout_for(s, L, code))) return -ENOMEM;
      continue; /* the entry's block may now be one of those split off */
    }
    uint32_t pos = upper_bound(s, b, ts);
    if (b->count == b->cap) {
      struct block *nb = block_new(st, s, b->bytes, b->layout, b->base);
      if (!nb) return -ENOMEM;
      if (link_after(s, sr, b, at + 1, nb)) {
        block_drop(st, s, nb);
        return -ENOMEM;
      }
      uint32_t half = b->count / 2;
      move_entries(s, nb, b, half, b->count - half);
      b->count = half;
      if (pos > half) {
        b = nb;
        pos -= half;
      }
    }
    put_at(s, b, pos, code);
    return 0;
  }
}

/* append_tail() when e does not go into the tail block as it is: the tail
 * is widened, or a new one made, with the layout its predecessor came to,
 * widened where e needs. */
static int append_tail_slow(struct tks_store *st, struct set *s, struct series *sr, const void *e,
                            int64_t ts) {
  uint64_t code[PF_MAX];
  struct block *b;
  while ((b = sr->tail) && b->count < b->cap) {
    struct layout *L = s->layouts[b->layout];
    codes_of(s, e, b->base, code);
    if (fits(L, s->npf, code)) {
      put_at(s, b, b->count, code);
      sr->last = ts;
      return 0;
    }
    if (relayout(st, s, sr, sr->nblocks - 1, layout_for(s, L, code))) return -ENOMEM;
  }
  size_t want = b ? (size_t)b->bytes * 2 : TKS_STORE_BLOCK_MIN;
  if (want > TKS_STORE_BLOCK_MAX) want = TKS_STORE_BLOCK_MAX;
  codes_of(s, e, ts, code);
  struct block *nb = block_new(st, s, want, layout_for(s, b ? lay(s, b) : NULL, code), ts);
  if (!nb) return -ENOMEM;
  if (link_after(s, sr, b, sr->nblocks, nb)) {
    block_drop(st, s, nb);
    return -ENOMEM;
  }
  put_at(s, nb, 0, code);
  sr->last = ts;
  return 0;
}

/* Appends e (not older than the series' newest) to the tail of sr. */
static inline int append_tail(struct tks_store *st, struct set *s, struct series *sr, const void *e,
                              int64_t ts) {
  struct block *b = sr->tail;
  if (b && b->count < b->cap) {
    struct layout *L = s->layouts[b->layout];
    if (pack_tail(s, L, e, (uint64_t)b->base, (char *)(b + 1) + (size_t)b->count * L->size)) {
      b->count++;
      L->entries++;
      s->packed_bytes += L->size;
      sr->last = ts;
      return 0;
    }
  }
  return append_tail_slow(st, s, sr, e, ts);
}

/* True when sym's newest tick in another representation than s is newer
 * than ts: late against the symbol, though not against its series in s. */
static __attribute__((noinline)) bool
late_elsewhere(const struct tks_store *st, const struct set *s, uint32_t sym, int64_t ts) {
  for (int k = 0; k < NSETS; k++) {
    const struct set *o = &st->sets[k];
    if (o == s || !o->used || sym >= o->cap) continue;
    if (o->series[sym].count && ts < o->series[sym].last) return true;
  }
  return false;
}

static int set_append(struct tks_store *st, struct set *s, const void *e) {
  uint32_t sym;
  memcpy(&sym, (const char *)e + s->sym_off, sizeof sym);
  if (ensure_series(s, sym)) return -ENOMEM;
  struct series *sr = &s->series[sym];
  int64_t ts = wide_ts(s, e);
  bool late = sr->count && ts < sr->last;
  int r = late ? insert_late(st, s, sr, e, ts) : append_tail(st, s, sr, e, ts);
  if (r) return r;
  /* Another representation with ticks (fallback, or a store converted):
   * the symbol's newest may be there. */
  bool others = st->sets[SET_SLOTTED].used + st->sets[SET_OVERFLOW].used +
                    st->sets[SET_DYNAMIC].used !=
                s->used;
  if (late || (others && late_elsewhere(st, s, sym, ts))) s->late++;
  if (sr->count++ == 0) s->used++;
  s->entries++;
  return 0;
}

int tks_store_append(struct tks_store *st, const void *record) {
  return set_append(st, &st->sets[SET_SLOTTED], record);
}

struct tks_dynobj *tks_store_new_dynobj(struct tks_store *st, unsigned nfields,
                                        size_t string_bytes) {
  size_t size = tks_dynobj_size(nfields, string_bytes);
  void *mem = tks_slab_alloc(st->slab, size);
  return mem ? tks_dynobj_init(mem, nfields, string_bytes) : NULL;
}

void tks_store_drop_dynobj(struct tks_store *st, struct tks_dynobj *obj) {
  if (obj) tks_slab_free(st->slab, obj, obj->bytes);
}

bool tks_store_dynobj_fits(const struct tks_store *st, unsigned nfields, size_t string_bytes) {
  return tks_dynobj_size(nfields, string_bytes) <= tks_slab_page_size(st->slab);
}

uint64_t tks_store_overflow_cost(const struct tks_store *st, const struct tks_dynobj *map) {
  return tks_slab_chunk_size(st->slab, tks_slab_class_for(st->slab, map->bytes)) + sizeof map;
}

bool tks_store_has_room(const struct tks_store *st) {
  /* The steady state allocates blocks of the largest size (block_new). */
  size_t want = sizeof(struct block) + SLACK + 8 * (size_t)st->sets[SET_OVERFLOW].layouts[0]->size;
  if (want < TKS_STORE_BLOCK_MAX) want = TKS_STORE_BLOCK_MAX;
  return tks_slab_can_alloc(st->slab, want);
}

static void count_obj(struct tks_store *st, int k, const struct tks_dynobj *obj) {
  st->obj_bytes[k] += tks_slab_chunk_size(st->slab, tks_slab_class_for(st->slab, obj->bytes));
  st->obj_requested[k] += obj->bytes;
}

int tks_store_append_dynamic(struct tks_store *st, uint32_t symbol, int64_t ts,
                             struct tks_dynobj *obj) {
  struct dyn_entry e = {.ts = ts, .obj = obj, .symbol = symbol};
  if (set_append(st, &st->sets[SET_DYNAMIC], &e)) return -ENOMEM;
  count_obj(st, SET_DYNAMIC, obj);
  return 0;
}

static uint32_t slotted_ties(const struct tks_store *st, uint32_t sym, int64_t t);

/* Sets the ties of an unpacked overflow entry e: the slotted ticks of its
 * symbol and ts held now, which arrived before it. */
static void set_ties(const struct tks_store *st, char *e) {
  const struct set *ov = &st->sets[SET_OVERFLOW];
  uint32_t sym, ties;
  memcpy(&sym, e + ov->sym_off, sizeof sym);
  ties = slotted_ties(st, sym, wide_ts(ov, e));
  memcpy(e + st->ties_off, &ties, sizeof ties);
}

int tks_store_append_overflow(struct tks_store *st, const void *record, struct tks_dynobj *overflow) {
  _Alignas(8) char e[TKS_STORE_ENTRY_MAX];
  tks_store_entry_make(st, TKS_STORE_OVERFLOW, e, record, 0, 0, overflow);
  set_ties(st, e);
  if (set_append(st, &st->sets[SET_OVERFLOW], e)) return -ENOMEM;
  count_obj(st, SET_OVERFLOW, overflow);
  return 0;
}

uint64_t tks_store_ticks(const struct tks_store *st) {
  uint64_t n = 0;
  for (int k = 0; k < NSETS; k++) n += st->sets[k].entries;
  return n;
}

uint64_t tks_store_late_ticks(const struct tks_store *st) {
  uint64_t n = 0;
  for (int k = 0; k < NSETS; k++) n += st->sets[k].late;
  return n;
}

static const struct series *get_series(const struct set *s, uint32_t sym) {
  if (sym >= s->cap || s->series[sym].count == 0) return NULL;
  return &s->series[sym];
}

uint32_t tks_store_symbol_limit(const struct tks_store *st) {
  uint32_t cap = 0;
  for (int k = 0; k < NSETS; k++)
    if (st->sets[k].cap > cap) cap = st->sets[k].cap;
  return cap;
}

uint32_t tks_store_series_count(const struct tks_store *st) {
  uint32_t n = 0, cap = tks_store_symbol_limit(st);
  for (uint32_t i = 0; i < cap; i++) {
    bool any = false;
    for (int k = 0; k < NSETS; k++) any |= get_series(&st->sets[k], i) != NULL;
    n += any;
  }
  return n;
}

uint64_t tks_store_block_bytes(const struct tks_store *st) {
  uint64_t n = 0;
  for (int k = 0; k < NSETS; k++) n += st->sets[k].block_bytes;
  return n;
}

uint64_t tks_store_index_bytes(const struct tks_store *st) {
  uint64_t n = sizeof *st;
  for (int k = 0; k < NSETS; k++)
    n += (uint64_t)st->sets[k].cap * sizeof(struct series) + st->sets[k].blockidx_bytes;
  return n;
}

void tks_store_repr(const struct tks_store *st, struct tks_store_repr *out) {
  const struct set *sl = &st->sets[SET_SLOTTED], *ov = &st->sets[SET_OVERFLOW],
                   *dy = &st->sets[SET_DYNAMIC];
  out->slotted_ticks = sl->entries;
  out->slotted_bytes = sl->block_bytes;
  out->overflow_ticks = ov->entries;
  out->overflow_entry_bytes = ov->block_bytes;
  out->overflow_map_bytes = st->obj_bytes[SET_OVERFLOW];
  out->dynamic_ticks = dy->entries;
  out->dynamic_entry_bytes = dy->block_bytes;
  out->dynamic_object_bytes = st->obj_bytes[SET_DYNAMIC];
  out->dynamic_object_requested = st->obj_requested[SET_DYNAMIC];
}

/* A position in one set's series. */
struct cur {
  const struct set *s;
  int k;                 /* which set */
  uint32_t sym;
  uint32_t run;          /* slotted: the entries before it with its ts */
  const struct block *b; /* NULL: past either end */
  uint32_t i;
};

static inline int64_t cur_ts(const struct cur *c) { return ent_ts(c->s, c->b, c->i); }

static inline void cur_next(struct cur *c) {
  if (++c->i >= c->b->count) {
    c->b = c->b->next;
    c->i = 0;
  }
}

static inline void cur_prev(struct cur *c) {
  if (c->i > 0) {
    c->i--;
  } else {
    c->b = c->b->prev;
    if (c->b) c->i = c->b->count - 1;
  }
}

/* The ties of the overflow entry under c. */
static inline uint32_t cur_ties(const struct cur *c) {
  const struct set *s = c->s;
  return (uint32_t)code_at(lay(s, c->b), (unsigned)s->ties_pf, ent_at(s, c->b, c->i));
}

/* The entries of c's series before c with its ts (ties are rare: short). */
static uint32_t run_before(const struct cur *c) {
  if (!c->b) return 0;
  struct cur p = *c;
  int64_t t = cur_ts(c);
  uint32_t n = 0;
  for (cur_prev(&p); p.b && cur_ts(&p) == t; cur_prev(&p)) n++;
  return n;
}

static struct cur seek(const struct tks_store *st, int k, uint32_t symbol, int64_t from);

/* The slotted entries of sym with ts t. */
static uint32_t slotted_ties(const struct tks_store *st, uint32_t sym, int64_t t) {
  const struct series *sr = get_series(&st->sets[SET_SLOTTED], sym);
  if (!sr || t > sr->last) return 0;
  struct cur c = seek(st, SET_SLOTTED, sym, t);
  uint32_t n = 0;
  for (; c.b && cur_ts(&c) == t && n < UINT32_MAX; cur_next(&c)) n++;
  return n;
}

/* Of a slotted and an overflow entry with the same ts: whether the
 * overflow one arrived first (its ties: the slotted ones before it). */
static inline bool overflow_first(const struct cur *slotted, const struct cur *overflow) {
  return cur_ties(overflow) <= slotted->run;
}

/* Merges forward cursors (one per set), visiting at most n entries with
 * ts < to, oldest first; equal ts in arrival order between slotted and
 * overflow entries, else in set order. */
static uint64_t merge_forward(const struct tks_store *st, struct cur *c, int64_t to, bool bounded,
                              uint64_t n, tks_tick_fn fn, void *ctx) {
  uint64_t done = 0;
  int only = -1, live = 0;
  for (int k = 0; k < NSETS; k++)
    if (c[k].b) only = k, live++;
  if (live == 1) { /* one representation (the common case): no merge, no ties */
    struct cur *x = &c[only];
    _Alignas(8) char e[TKS_STORE_ENTRY_MAX];
    while (done < n && x->b) {
      /* A block whose last entry is before `to` needs no test of each ts
       * (a series' entries are in ts order). */
      const struct block *b = x->b;
      bool check = bounded && last_ts(x->s, b) >= to;
      while (x->b == b && done < n) {
        if (check && cur_ts(x) >= to) return done;
        ent_unpack(x->s, b, x->sym, x->i, e);
        int stop = fn(ctx, x->k == SET_DYNAMIC ? NULL : e, wide_obj(st, x->k, e));
        cur_next(x);
        done++;
        if (stop) return done;
      }
    }
    return done;
  }
  while (done < n) {
    struct cur *best = NULL;
    int64_t best_ts = 0;
    for (int k = 0; k < NSETS; k++) {
      if (!c[k].b) continue;
      int64_t t = cur_ts(&c[k]);
      if ((!bounded || t < to) && (!best || t < best_ts)) best = &c[k], best_ts = t;
    }
    if (!best) break;
    struct cur *sl = &c[SET_SLOTTED], *ov = &c[SET_OVERFLOW];
    if (best == sl && ov->b && cur_ts(ov) == best_ts && overflow_first(sl, ov)) best = ov;
    _Alignas(8) char e[TKS_STORE_ENTRY_MAX];
    ent_unpack(best->s, best->b, best->sym, best->i, e);
    const struct tks_dynobj *o = wide_obj(st, best->k, e);
    int stop = fn(ctx, best->k == SET_DYNAMIC ? NULL : e, o);
    cur_next(best);
    if (best == sl) sl->run = sl->b && cur_ts(sl) == best_ts ? sl->run + 1 : 0;
    done++;
    if (stop) break;
  }
  return done;
}

/* The first entry of a series with ts >= from. */
static struct cur seek(const struct tks_store *st, int k, uint32_t symbol, int64_t from) {
  const struct set *s = &st->sets[k];
  const struct series *sr = get_series(s, symbol);
  struct cur c = {.s = s, .k = k, .sym = symbol};
  if (!sr) return c;
  uint32_t lo = 0, hi = sr->nblocks; /* the first block ending at or after from */
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (last_ts(s, sr->blocks[mid]) < from)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < sr->nblocks) {
    c.b = sr->blocks[lo];
    c.i = lower_bound(s, c.b, from);
  }
  return c;
}

uint64_t tks_store_range(const struct tks_store *st, uint32_t symbol, int64_t from, int64_t to,
                         uint64_t limit, tks_tick_fn fn, void *ctx) {
  if (from >= to) return 0;
  struct cur c[NSETS];
  for (int k = 0; k < NSETS; k++) c[k] = seek(st, k, symbol, from);
  return merge_forward(st, c, to, true, limit ? limit : UINT64_MAX, fn, ctx);
}

uint64_t tks_store_last(const struct tks_store *st, uint32_t symbol, uint64_t want, tks_tick_fn fn,
                        void *ctx) {
  struct cur c[NSETS];
  const struct series *sr[NSETS];
  for (int k = 0; k < NSETS; k++) {
    sr[k] = get_series(&st->sets[k], symbol);
    c[k] = (struct cur){.s = &st->sets[k],
                        .k = k,
                        .sym = symbol,
                        .b = sr[k] ? sr[k]->tail : NULL,
                        .i = sr[k] ? sr[k]->tail->count - 1 : 0};
  }
  /* Walk back over the newest `want`, newest first; on equal ts the entry
   * that the forward merge visits last is taken first. */
  struct cur *sl = &c[SET_SLOTTED], *ov = &c[SET_OVERFLOW];
  uint64_t n = 0;
  for (; n < want; n++) {
    struct cur *best = NULL;
    int64_t best_ts = 0;
    for (int k = NSETS - 1; k >= 0; k--) {
      if (!c[k].b) continue;
      int64_t t = cur_ts(&c[k]);
      if (!best || t > best_ts) best = &c[k], best_ts = t;
    }
    if (!best) break;
    if (best == ov && sl->b && cur_ts(sl) == best_ts) {
      sl->run = run_before(sl);
      if (overflow_first(sl, ov)) best = sl;
    }
    cur_prev(best);
  }
  /* Each cursor now sits just before its first entry in the window. */
  for (int k = 0; k < NSETS; k++) {
    if (c[k].b)
      cur_next(&c[k]);
    else if (sr[k])
      c[k].b = sr[k]->head, c[k].i = 0;
  }
  sl->run = run_before(sl);
  return merge_forward(st, c, INT64_MAX, false, n, fn, ctx); /* a tick at INT64_MAX counts too */
}

int tks_store_series(const struct tks_store *st, uint32_t symbol, struct tks_series_info *out) {
  out->symbol = symbol;
  out->count = 0;
  out->first_ts = INT64_MAX;
  out->last_ts = INT64_MIN;
  for (int k = 0; k < NSETS; k++) {
    const struct set *s = &st->sets[k];
    const struct series *sr = get_series(s, symbol);
    if (!sr) continue;
    out->count += sr->count;
    int64_t f = first_ts(s, sr->head), l = last_ts(s, sr->tail);
    if (f < out->first_ts) out->first_ts = f;
    if (l > out->last_ts) out->last_ts = l;
  }
  return out->count ? 0 : -ENOENT;
}

int tks_store_block_info(const struct tks_store *st, enum tks_store_rep rep, uint32_t symbol,
                         uint32_t i, struct tks_store_block_info *out) {
  if ((unsigned)rep >= NSETS) return -ENOENT;
  const struct set *s = &st->sets[rep];
  const struct series *sr = get_series(s, symbol);
  if (!sr || i >= sr->nblocks) return -ENOENT;
  const struct block *b = sr->blocks[i];
  *out = (struct tks_store_block_info){b->count, b->cap, b->bytes, lay(s, b)->size};
  return 0;
}

/* ---- checkpoints ---- */

uint32_t tks_store_entry_size(const struct tks_store *st, enum tks_store_rep rep) {
  return st->sets[rep].esize;
}

int64_t tks_store_entry_ts(const struct tks_store *st, enum tks_store_rep rep, const void *entry) {
  return wide_ts(&st->sets[rep], entry);
}

const struct tks_dynobj *tks_store_entry_obj(const struct tks_store *st, enum tks_store_rep rep,
                                             const void *entry) {
  return wide_obj(st, (int)rep, entry);
}

uint32_t tks_store_entry_ties(const struct tks_store *st, enum tks_store_rep rep,
                              const void *entry) {
  uint32_t ties = 0;
  if (rep == TKS_STORE_OVERFLOW) memcpy(&ties, (const char *)entry + st->ties_off, sizeof ties);
  return ties;
}

void tks_store_entry_make(const struct tks_store *st, enum tks_store_rep rep, void *entry,
                          const void *record, uint32_t symbol, int64_t ts, struct tks_dynobj *obj) {
  char *e = entry;
  uint32_t rs = st->schema->record_size;
  switch (rep) {
  case TKS_STORE_SLOTTED: memcpy(e, record, rs); break;
  case TKS_STORE_OVERFLOW:
    memcpy(e, record, rs);
    memset(e + rs, 0, st->sets[SET_OVERFLOW].esize - rs); /* ties 0: append sets them */
    memcpy(e + st->ovf_off, &obj, sizeof obj);
    break;
  case TKS_STORE_DYNAMIC: {
    struct dyn_entry d = {.ts = ts, .obj = obj, .symbol = symbol};
    memcpy(e, &d, sizeof d);
    break;
  }
  case TKS_STORE_REPS: break;
  }
}

void tks_store_walk_begin(const struct tks_store *st, enum tks_store_rep rep, uint32_t symbol,
                          struct tks_store_walk *w) {
  const struct series *sr = get_series(&st->sets[rep], symbol);
  w->set = &st->sets[rep];
  w->next = sr ? sr->head : NULL;
  w->at = 0;
  w->symbol = symbol;
}

bool tks_store_walk_next(struct tks_store_walk *w, const void **entries, uint32_t *count) {
  const struct set *s = w->set;
  const struct block *b = w->next;
  if (!b) return false;
  uint32_t n = b->count - w->at;
  if (n > TKS_STORE_WALK_CHUNK) n = TKS_STORE_WALK_CHUNK;
  for (uint32_t i = 0; i < n; i++)
    ent_unpack(s, b, w->symbol, w->at + i, w->buf + (size_t)i * s->esize);
  *entries = w->buf;
  *count = n;
  w->at += n;
  if (w->at == b->count) {
    w->next = b->next;
    w->at = 0;
  }
  return true;
}

int tks_store_append_many(struct tks_store *st, enum tks_store_rep rep, uint32_t symbol,
                          const void *entries, uint32_t n, uint32_t *done) {
  struct set *s = &st->sets[rep];
  *done = 0;
  if (n == 0) return 0;
  /* The series' invariants are checked before anything is stored. */
  const struct series *old = symbol < s->cap ? &s->series[symbol] : NULL;
  int64_t prev = old && old->count ? old->last : INT64_MIN;
  const char *src = entries;
  for (uint32_t i = 0; i < n; i++) {
    const char *e = src + (size_t)i * s->esize;
    uint32_t sym;
    memcpy(&sym, e + s->sym_off, sizeof sym);
    int64_t ts = wide_ts(s, e);
    if (sym != symbol || ts < prev) return -EINVAL;
    prev = ts;
  }
  if (ensure_series(s, symbol)) return -ENOMEM;
  struct series *sr = &s->series[symbol];
  for (; *done < n; ++*done) {
    const char *e = src + (size_t)*done * s->esize;
    _Alignas(8) char with_ties[TKS_STORE_ENTRY_MAX];
    if (rep == TKS_STORE_OVERFLOW) { /* the slotted ticks appended before it */
      memcpy(with_ties, e, s->esize);
      set_ties(st, with_ties);
      e = with_ties;
    }
    if (append_tail(st, s, sr, e, wide_ts(s, e))) return -ENOMEM;
    if (rep != TKS_STORE_SLOTTED) count_obj(st, (int)rep, wide_obj(st, (int)rep, e));
    if (sr->count++ == 0) s->used++;
    s->entries++;
  }
  return 0;
}

struct tks_dynobj *tks_store_copy_dynobj(struct tks_store *st, const void *src, size_t len) {
  if (len > tks_slab_page_size(st->slab)) return NULL;
  void *mem = tks_slab_alloc(st->slab, len);
  if (mem) memcpy(mem, src, len);
  return mem;
}

/* ---- eviction ---- */

void tks_store_set_evict_hook(struct tks_store *st, tks_store_evict_fn fn, void *ctx) {
  st->evict_fn = fn;
  st->evict_ctx = ctx;
}

/* Shows the observer the first n entries of block b of series sr of set k,
 * about to be removed. */
static void observe(const struct tks_store *st, int k, const struct series *sr,
                    const struct block *b, uint32_t n) {
  if (!st->evict_fn || n == 0) return;
  const struct set *s = &st->sets[k];
  uint32_t sym = (uint32_t)(sr - s->series);
  _Alignas(8) char buf[TKS_STORE_WALK_CHUNK * TKS_STORE_ENTRY_MAX];
  for (uint32_t i = 0; i < n;) {
    uint32_t m = n - i < TKS_STORE_WALK_CHUNK ? n - i : TKS_STORE_WALK_CHUNK;
    for (uint32_t j = 0; j < m; j++) ent_unpack(s, b, sym, i + j, buf + (size_t)j * s->esize);
    st->evict_fn(st->evict_ctx, (enum tks_store_rep)k, sym, buf, m);
    i += m;
  }
}

/* Frees the objects of the first n entries of b (set k), uncounting them.
 * Returns their chunk bytes. */
static uint64_t free_objs(struct tks_store *st, int k, const struct block *b, uint32_t n) {
  uint64_t freed = 0;
  for (uint32_t j = 0; k != SET_SLOTTED && j < n; j++) {
    struct tks_dynobj *o = ent_obj(&st->sets[k], b, j);
    uint64_t chunk = tks_slab_chunk_size(st->slab, tks_slab_class_for(st->slab, o->bytes));
    st->obj_bytes[k] -= chunk;
    st->obj_requested[k] -= o->bytes;
    freed += chunk;
    tks_slab_free(st->slab, o, o->bytes);
  }
  return freed;
}

/* Frees the head block of series sr of set k and the objects its entries
 * point to.  sr->blocks still lists it: fix_blocks() drops the freed blocks
 * from the array afterwards, once per series.  Returns the chunk bytes
 * given back to the slab; adds the block's ticks to *ticks. */
static uint64_t free_head(struct tks_store *st, int k, struct series *sr, uint64_t *ticks) {
  struct set *s = &st->sets[k];
  struct block *b = sr->head;
  observe(st, k, sr, b, b->count);
  uint64_t freed = b->bytes + free_objs(st, k, b, b->count);
  struct layout *L = s->layouts[b->layout];
  L->entries -= b->count;
  s->packed_bytes -= (uint64_t)b->count * L->size;
  sr->head = b->next;
  if (sr->head)
    sr->head->prev = NULL;
  else
    sr->tail = NULL;
  sr->count -= b->count;
  s->entries -= b->count;
  if (sr->count == 0) s->used--;
  s->block_bytes -= b->bytes;
  st->evicted_ticks += b->count;
  st->evicted_bytes += freed;
  *ticks += b->count;
  tks_slab_free(st->slab, b, b->bytes);
  return freed;
}

/* Removes the first n entries of the head block of series sr of set k,
 * fewer than it holds: the block stays (so the series and its block array
 * do too), its other entries move down.  Returns the object chunk bytes
 * given back. */
static uint64_t cut_head(struct tks_store *st, int k, struct series *sr, uint32_t n) {
  struct set *s = &st->sets[k];
  struct block *b = sr->head;
  assert(n < b->count);
  if (n == 0) return 0;
  observe(st, k, sr, b, n);
  uint64_t freed = free_objs(st, k, b, n);
  struct layout *L = s->layouts[b->layout];
  memmove(ent_at(s, b, 0), ent_at(s, b, n), (size_t)(b->count - n) * L->size);
  L->entries -= n;
  s->packed_bytes -= (uint64_t)n * L->size;
  b->count -= n;
  sr->count -= n;
  s->entries -= n;
  st->evicted_ticks += n;
  st->evicted_bytes += freed;
  return freed;
}

/* Drops from sr->blocks the leading blocks free_head() freed: those before
 * the current head (all of them when the series is empty; its array is
 * then released).  Compares pointers only: the freed blocks are not read. */
static void fix_blocks(struct set *s, struct series *sr) {
  if (sr->nblocks == 0 || sr->blocks[0] == sr->head) return;
  if (!sr->head) {
    s->blockidx_bytes -= (uint64_t)sr->bcap * sizeof *sr->blocks;
    free(sr->blocks);
    sr->blocks = NULL;
    sr->nblocks = sr->bcap = 0;
    return;
  }
  uint32_t n = 1;
  while (sr->blocks[n] != sr->head) n++;
  sr->nblocks -= n;
  memmove(sr->blocks, sr->blocks + n, (size_t)sr->nblocks * sizeof *sr->blocks);
}

/* A series in the eviction heap, keyed by the newest ts of its head block. */
struct cand {
  int64_t key;
  uint32_t sym, k;
};

static inline bool cand_less(const struct cand *a, const struct cand *b) {
  if (a->key != b->key) return a->key < b->key;
  return a->k != b->k ? a->k < b->k : a->sym < b->sym;
}

static void sift_down(struct cand *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    if (l < n && cand_less(&h[l], &h[m])) m = l;
    if (l + 1 < n && cand_less(&h[l + 1], &h[m])) m = l + 1;
    if (m == i) return;
    struct cand t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

/* Without memory for the heap: one scan of every series per block. */
static uint64_t evict_oldest_scan(struct tks_store *st, uint64_t bytes) {
  uint64_t freed = 0, ticks = 0;
  while (freed < bytes) {
    struct cand best = {0};
    bool found = false;
    for (uint32_t k = 0; k < NSETS; k++) {
      const struct set *s = &st->sets[k];
      for (uint32_t i = 0; i < s->cap; i++) {
        if (!s->series[i].count) continue;
        struct cand c = {last_ts(s, s->series[i].head), i, k};
        if (!found || cand_less(&c, &best)) best = c, found = true;
      }
    }
    if (!found) break;
    struct set *s = &st->sets[best.k];
    freed += free_head(st, (int)best.k, &s->series[best.sym], &ticks);
    fix_blocks(s, &s->series[best.sym]);
  }
  return freed;
}

uint64_t tks_store_evict_oldest(struct tks_store *st, uint64_t bytes) {
  if (bytes == 0) return 0;
  size_t n = 0;
  for (int k = 0; k < NSETS; k++) n += st->sets[k].used;
  if (n == 0) return 0;
  struct cand *h = malloc(n * sizeof *h);
  if (!h) return evict_oldest_scan(st, bytes);
  size_t total = 0;
  for (uint32_t k = 0; k < NSETS; k++) {
    const struct set *s = &st->sets[k];
    for (uint32_t i = 0; i < s->cap && total < n; i++)
      if (s->series[i].count) h[total++] = (struct cand){last_ts(s, s->series[i].head), i, k};
  }
  assert(total == n);
  for (size_t i = n / 2; i-- > 0;) sift_down(h, n, i);
  /* The heap is h[0, n); a series emptied by eviction leaves it by swapping
   * with the last, so h[0, total) keeps every series touched, for the
   * block arrays to be fixed once each at the end. */
  uint64_t freed = 0, ticks = 0;
  while (freed < bytes && n > 0) {
    struct set *s = &st->sets[h[0].k];
    struct series *sr = &s->series[h[0].sym];
    freed += free_head(st, (int)h[0].k, sr, &ticks);
    if (sr->head) {
      h[0].key = last_ts(s, sr->head);
    } else {
      struct cand t = h[0];
      h[0] = h[--n];
      h[n] = t;
    }
    sift_down(h, n, 0);
  }
  for (size_t i = 0; i < total; i++) {
    struct set *s = &st->sets[h[i].k];
    fix_blocks(s, &s->series[h[i].sym]);
  }
  free(h);
  return freed;
}

uint64_t tks_store_evict_before(struct tks_store *st, int64_t before_ts) {
  uint64_t ticks = 0;
  for (int k = 0; k < NSETS; k++) {
    struct set *s = &st->sets[k];
    for (uint32_t i = 0; i < s->cap && s->used; i++) {
      struct series *sr = &s->series[i];
      if (!sr->count || last_ts(s, sr->head) >= before_ts) continue;
      /* Blocks are in time order, so their newest ticks are too. */
      while (sr->head && last_ts(s, sr->head) < before_ts) free_head(st, k, sr, &ticks);
      fix_blocks(s, sr);
    }
  }
  return ticks;
}

uint64_t tks_store_evict_head(struct tks_store *st, enum tks_store_rep rep, uint32_t symbol,
                              uint64_t n) {
  if ((unsigned)rep >= NSETS || symbol >= st->sets[rep].cap) return 0;
  struct set *s = &st->sets[rep];
  struct series *sr = &s->series[symbol];
  uint64_t done = 0;
  while (sr->head && sr->head->count <= n - done) free_head(st, (int)rep, sr, &done);
  fix_blocks(s, sr);
  if (sr->head && done < n) {
    cut_head(st, (int)rep, sr, (uint32_t)(n - done)); /* less than the block holds */
    done = n;
  }
  return done;
}

uint64_t tks_store_trim_before(struct tks_store *st, int64_t before_ts) {
  uint64_t ticks = 0;
  for (int k = 0; k < NSETS; k++) {
    struct set *s = &st->sets[k];
    for (uint32_t i = 0; i < s->cap && s->used; i++) {
      struct series *sr = &s->series[i];
      if (!sr->count || first_ts(s, sr->head) >= before_ts) continue;
      while (sr->head && last_ts(s, sr->head) < before_ts) free_head(st, k, sr, &ticks);
      fix_blocks(s, sr);
      if (sr->head) {
        uint32_t n = lower_bound(s, sr->head, before_ts);
        cut_head(st, k, sr, n);
        ticks += n;
      }
    }
  }
  return ticks;
}

uint64_t tks_store_count_before(const struct tks_store *st, int64_t before_ts) {
  uint64_t n = 0;
  for (int k = 0; k < NSETS; k++) {
    const struct set *s = &st->sets[k];
    for (uint32_t i = 0; i < s->cap; i++) {
      const struct series *sr = &s->series[i];
      if (!sr->count || first_ts(s, sr->head) >= before_ts) continue;
      uint32_t lo = 0, hi = sr->nblocks; /* the first block ending at or after before_ts */
      while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (last_ts(s, sr->blocks[mid]) < before_ts)
          lo = mid + 1;
        else
          hi = mid;
      }
      /* Count whichever side of that block is shorter. */
      uint64_t below = 0;
      if (lo <= sr->nblocks / 2) {
        for (uint32_t j = 0; j < lo; j++) below += sr->blocks[j]->count;
      } else {
        below = sr->count;
        for (uint32_t j = lo; j < sr->nblocks; j++) below -= sr->blocks[j]->count;
      }
      if (lo < sr->nblocks) below += lower_bound(s, sr->blocks[lo], before_ts);
      n += below;
    }
  }
  return n;
}

/* The chunk bytes free_head() would give back for b of set k. */
static uint64_t block_cost(const struct tks_store *st, int k, const struct block *b) {
  uint64_t n = b->bytes;
  for (uint32_t j = 0; k != SET_SLOTTED && j < b->count; j++) {
    const struct tks_dynobj *o = ent_obj(&st->sets[k], b, j);
    n += tks_slab_chunk_size(st->slab, tks_slab_class_for(st->slab, o->bytes));
  }
  return n;
}

/* cut_for_bytes' heap: the next block evict_oldest would take of a series. */
struct peek {
  int64_t key; /* its newest ts */
  const struct block *b;
  uint32_t k;
};

static void peek_sift_down(struct peek *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    if (l < n && h[l].key < h[m].key) m = l;
    if (l + 1 < n && h[l + 1].key < h[m].key) m = l + 1;
    if (m == i) return;
    struct peek t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

static inline int64_t cut_after(int64_t x) { return x == INT64_MAX ? INT64_MAX : x + 1; }

/* The first block of sr whose newest ts is above x (any block: above
 * nothing), or sr->nblocks. */
static uint32_t first_block_above(const struct set *s, const struct series *sr, bool any,
                                  int64_t x) {
  uint32_t lo = 0, hi = sr->nblocks;
  while (!any && lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (last_ts(s, sr->blocks[mid]) <= x)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/*
 * Without memory for the heap.  evict_oldest takes blocks in the order of
 * their newest ts (each series' chain is in that order), so the cut is
 * after the smallest newest ts X at which the blocks ending at or before X
 * reach bytes: two scans (a binary search per series) per distinct X.
 */
static int64_t cut_scan(const struct tks_store *st, uint64_t bytes, uint64_t *ticks_below) {
  uint64_t acc = 0, ticks = 0;
  int64_t x = INT64_MIN;
  for (bool any = true; acc < bytes; any = false) {
    bool found = false;
    int64_t next = 0;
    for (int k = 0; k < NSETS; k++) {
      const struct set *s = &st->sets[k];
      for (uint32_t i = 0; i < s->cap; i++) {
        const struct series *sr = &s->series[i];
        uint32_t j = sr->count ? first_block_above(s, sr, any, x) : sr->nblocks;
        if (j == sr->nblocks) continue;
        int64_t t = last_ts(s, sr->blocks[j]);
        if (!found || t < next) next = t, found = true;
      }
    }
    if (!found) break;
    for (int k = 0; k < NSETS; k++) {
      const struct set *s = &st->sets[k];
      for (uint32_t i = 0; i < s->cap; i++) {
        const struct series *sr = &s->series[i];
        uint32_t j = sr->count ? first_block_above(s, sr, any, x) : sr->nblocks;
        for (; j < sr->nblocks && last_ts(s, sr->blocks[j]) == next; j++) {
          acc += block_cost(st, k, sr->blocks[j]);
          ticks += sr->blocks[j]->count;
        }
      }
    }
    x = next;
  }
  if (ticks_below) *ticks_below = ticks;
  return cut_after(x);
}

int64_t tks_store_cut_for_bytes(const struct tks_store *st, uint64_t bytes, uint64_t *ticks_below) {
  if (ticks_below) *ticks_below = 0;
  size_t n = 0;
  for (int k = 0; k < NSETS; k++) n += st->sets[k].used;
  if (bytes == 0 || n == 0) return INT64_MIN;
  struct peek *h = malloc(n * sizeof *h);
  if (!h) return cut_scan(st, bytes, ticks_below);
  size_t total = 0;
  for (uint32_t k = 0; k < NSETS; k++) {
    const struct set *s = &st->sets[k];
    for (uint32_t i = 0; i < s->cap && total < n; i++) {
      const struct block *b = s->series[i].count ? s->series[i].head : NULL;
      if (b) h[total++] = (struct peek){last_ts(s, b), b, k};
    }
  }
  assert(total == n);
  for (size_t i = n / 2; i-- > 0;) peek_sift_down(h, n, i);
  /* Blocks in evict_oldest's order until bytes is reached, then the rest
   * of the blocks ending at the same ts, which the cut takes too. */
  uint64_t acc = 0, ticks = 0;
  int64_t x = INT64_MIN;
  while (n > 0 && (acc < bytes || h[0].key == x)) {
    const struct block *b = h[0].b;
    x = h[0].key;
    acc += block_cost(st, (int)h[0].k, b);
    ticks += b->count;
    if (b->next)
      h[0] = (struct peek){last_ts(&st->sets[h[0].k], b->next), b->next, h[0].k};
    else
      h[0] = h[--n];
    peek_sift_down(h, n, 0);
  }
  free(h);
  if (ticks_below) *ticks_below = ticks;
  return cut_after(x);
}

uint64_t tks_store_evicted_ticks(const struct tks_store *st) { return st->evicted_ticks; }
uint64_t tks_store_evicted_bytes(const struct tks_store *st) { return st->evicted_bytes; }

static const struct tks_stat ST_STORE_TICKS = TKS_STAT("store.ticks", GAUGE, TICKS,
                                                       "Ticks held in the store");
static const struct tks_stat ST_STORE_SERIES = TKS_STAT("store.series", GAUGE, NONE,
                                                        "Symbols with at least one tick");
static const struct tks_stat ST_STORE_LATE_TICKS = TKS_STAT(
    "store.late_ticks", COUNTER, TICKS, "Ticks inserted before the newest tick of their symbol");
static const struct tks_stat ST_STORE_BLOCK_BYTES = TKS_STAT(
    "store.block_bytes", GAUGE, BYTES, "Bytes of slab chunks holding series blocks");
static const struct tks_stat ST_STORE_RECORD_BYTES = TKS_STAT(
    "store.record_bytes", GAUGE, BYTES,
    "Bytes of the slotted records as packed in their blocks (slotted and overflow ticks)");
/* The packed layout most slotted records have: bytes per field, + relative
 * to the block's first ts, - not stored (the series key).  Text: no help,
 * so not a Prometheus figure. */
static const struct tks_stat ST_STORE_LAYOUT = TKS_STAT("store.layout", GAUGE, NONE, NULL);
static const struct tks_stat ST_STORE_LAYOUTS = TKS_STAT(
    "store.layouts", GAUGE, NONE, "Packed layouts that blocks have, in every representation");
static const struct tks_stat ST_STORE_SLOTTED_RECORD_BYTES = TKS_STAT(
    "store.slotted.record_bytes", GAUGE, BYTES,
    "Bytes a slotted record takes packed, on average (schema.record_size unpacked)");
static const struct tks_stat ST_STORE_INDEX_BYTES = TKS_STAT(
    "store.index_bytes", GAUGE, BYTES, "Bytes of the per-symbol series tables and block arrays");
static const struct tks_stat ST_STORE_SLOTTED_TICKS = TKS_STAT("store.slotted.ticks", GAUGE, TICKS,
                                                               "Ticks held as slotted records");
static const struct tks_stat ST_STORE_SLOTTED_BYTES = TKS_STAT(
    "store.slotted.bytes", GAUGE, BYTES, "Bytes of the blocks holding slotted records");
static const struct tks_stat ST_STORE_SLOTTED_BLOCK_BYTES_PER_TICK = TKS_STAT(
    "store.slotted.block_bytes_per_tick", GAUGE, BYTES_PER_TICK,
    "store.slotted.bytes (the blocks holding slotted records) divided by store.slotted.ticks");
static const struct tks_stat ST_STORE_OVERFLOW_TICKS = TKS_STAT(
    "store.overflow.ticks", GAUGE, TICKS,
    "Ticks held as a slotted record plus an overflow map (fallback mode)");
static const struct tks_stat ST_STORE_OVERFLOW_BYTES = TKS_STAT(
    "store.overflow.bytes", GAUGE, BYTES, "Bytes of overflow entries and their maps");
static const struct tks_stat ST_STORE_OVERFLOW_ENTRY_AND_MAP_BYTES_PER_TICK = TKS_STAT(
    "store.overflow.entry_and_map_bytes_per_tick", GAUGE, BYTES_PER_TICK,
    "store.overflow.bytes (entry blocks and overflow maps) divided by store.overflow.ticks");
static const struct tks_stat ST_STORE_OVERFLOW_MAP_BYTES = TKS_STAT(
    "store.overflow.map_bytes", GAUGE, BYTES, "Slab chunk bytes of the overflow maps");
static const struct tks_stat ST_STORE_OVERFLOW_ENTRY_BYTES = TKS_STAT(
    "store.overflow.entry_bytes", GAUGE, BYTES, "Bytes of the blocks holding overflow entries");
static const struct tks_stat ST_STORE_DYNAMIC_TICKS = TKS_STAT("store.dynamic.ticks", GAUGE, TICKS,
                                                               "Ticks held as dynamic objects");
static const struct tks_stat ST_STORE_DYNAMIC_BYTES = TKS_STAT(
    "store.dynamic.bytes", GAUGE, BYTES, "Bytes of dynamic objects and their series entries");
static const struct tks_stat ST_STORE_DYNAMIC_OBJECT_AND_ENTRY_BYTES_PER_TICK = TKS_STAT(
    "store.dynamic.object_and_entry_bytes_per_tick", GAUGE, BYTES_PER_TICK,
    "store.dynamic.bytes (object chunks and series entries) divided by store.dynamic.ticks");
/* The old names of the three figures above, kept for scripts (JSON and text
 * only: no help, so no second Prometheus family). */
static const struct tks_stat ST_STORE_SLOTTED_BYTES_PER_TICK = TKS_STAT(
    "store.slotted.bytes_per_tick", GAUGE, BYTES_PER_TICK, NULL);
static const struct tks_stat ST_STORE_OVERFLOW_BYTES_PER_TICK = TKS_STAT(
    "store.overflow.bytes_per_tick", GAUGE, BYTES_PER_TICK, NULL);
static const struct tks_stat ST_STORE_DYNAMIC_BYTES_PER_TICK = TKS_STAT(
    "store.dynamic.bytes_per_tick", GAUGE, BYTES_PER_TICK, NULL);
static const struct tks_stat ST_STORE_DYNAMIC_OBJECT_BYTES = TKS_STAT(
    "store.dynamic.object_bytes", GAUGE, BYTES, "Slab chunk bytes of dynamic objects");
static const struct tks_stat ST_STORE_DYNAMIC_OBJECT_REQUESTED_BYTES = TKS_STAT(
    "store.dynamic.object_requested_bytes", GAUGE, BYTES,
    "Bytes the dynamic objects asked for (the rest is chunk waste)");
static const struct tks_stat ST_STORE_DYNAMIC_ENTRY_BYTES = TKS_STAT(
    "store.dynamic.entry_bytes", GAUGE, BYTES,
    "Bytes of the blocks holding dynamic series entries");

/* "ts:+3 ticker:- price:8 volume:2 flags:1": the slotted layout holding
 * the most entries (the widest when there are none), in declaration order. */
static const char *layout_text(const struct tks_store *st, char *out, size_t len) {
  const struct tks_schema *sc = st->schema;
  const struct set *s = &st->sets[SET_SLOTTED];
  const struct layout *best = s->layouts[0];
  for (uint32_t i = 1; i < s->nlayouts; i++)
    if (s->layouts[i]->entries > best->entries) best = s->layouts[i];
  size_t at = 0;
  out[0] = '\0';
  for (unsigned i = 0; i < sc->nfields && at < len; i++) {
    const char *sep = i ? " " : "";
    unsigned p = 0;
    while (p < s->npf && s->pf[p].field != (int)i) p++;
    int n;
    if (p == s->npf) /* the series key */
      n = snprintf(out + at, len - at, "%s%s:-", sep, sc->fields[i].name);
    else
      n = snprintf(out + at, len - at, "%s%s:%s%u", sep, sc->fields[i].name,
                   (int)i == sc->ts_field ? "+" : "", (unsigned)best->w[p]);
    if (n < 0) break;
    at += (size_t)n;
  }
  return out;
}

void tks_store_stats(const struct tks_store *st, struct tks_stats *s) {
  uint64_t ticks = tks_store_ticks(st);
  tks_stat_u64(s, &ST_STORE_TICKS, ticks);
  tks_stat_u64(s, &ST_STORE_SERIES, tks_store_series_count(st));
  tks_stat_u64(s, &ST_STORE_LATE_TICKS, tks_store_late_ticks(st));
  tks_stat_u64(s, &ST_STORE_BLOCK_BYTES, tks_store_block_bytes(st));
  const struct set *sl = &st->sets[SET_SLOTTED], *ov = &st->sets[SET_OVERFLOW];
  tks_stat_u64(s, &ST_STORE_RECORD_BYTES,
               sl->packed_bytes + ov->packed_bytes - ov->entries * sizeof(void *));
  tks_stat_u64(s, &ST_STORE_INDEX_BYTES, tks_store_index_bytes(st));
  char desc[PF_MAX * (TKS_FIELD_NAME_MAX + 4)];
  tks_stat_str(s, &ST_STORE_LAYOUT, layout_text(st, desc, sizeof desc));
  uint32_t layouts = 0;
  for (int k = 0; k < NSETS; k++)
    for (uint32_t i = 0; i < st->sets[k].nlayouts; i++)
      layouts += st->sets[k].layouts[i]->entries > 0;
  tks_stat_u64(s, &ST_STORE_LAYOUTS, layouts);

  struct tks_store_repr r;
  tks_store_repr(st, &r);
  uint64_t obytes = r.overflow_entry_bytes + r.overflow_map_bytes;
  uint64_t dbytes = r.dynamic_object_bytes + r.dynamic_entry_bytes;
#define PER(b, n) ((n) ? (double)(b) / (double)(n) : 0.0)
  tks_stat_u64(s, &ST_STORE_SLOTTED_TICKS, r.slotted_ticks);
  tks_stat_u64(s, &ST_STORE_SLOTTED_BYTES, r.slotted_bytes);
  tks_stat_f64(s, &ST_STORE_SLOTTED_BLOCK_BYTES_PER_TICK, PER(r.slotted_bytes, r.slotted_ticks));
  tks_stat_f64(s, &ST_STORE_SLOTTED_BYTES_PER_TICK, PER(r.slotted_bytes, r.slotted_ticks));
  tks_stat_f64(s, &ST_STORE_SLOTTED_RECORD_BYTES, PER(sl->packed_bytes, sl->entries));
  tks_stat_u64(s, &ST_STORE_OVERFLOW_TICKS, r.overflow_ticks);
  tks_stat_u64(s, &ST_STORE_OVERFLOW_BYTES, obytes);
  tks_stat_f64(s, &ST_STORE_OVERFLOW_ENTRY_AND_MAP_BYTES_PER_TICK, PER(obytes, r.overflow_ticks));
  tks_stat_f64(s, &ST_STORE_OVERFLOW_BYTES_PER_TICK, PER(obytes, r.overflow_ticks));
  tks_stat_u64(s, &ST_STORE_OVERFLOW_MAP_BYTES, r.overflow_map_bytes);
  tks_stat_u64(s, &ST_STORE_OVERFLOW_ENTRY_BYTES, r.overflow_entry_bytes);
  tks_stat_u64(s, &ST_STORE_DYNAMIC_TICKS, r.dynamic_ticks);
  tks_stat_u64(s, &ST_STORE_DYNAMIC_BYTES, dbytes);
  tks_stat_f64(s, &ST_STORE_DYNAMIC_OBJECT_AND_ENTRY_BYTES_PER_TICK, PER(dbytes, r.dynamic_ticks));
  tks_stat_f64(s, &ST_STORE_DYNAMIC_BYTES_PER_TICK, PER(dbytes, r.dynamic_ticks));
  tks_stat_u64(s, &ST_STORE_DYNAMIC_OBJECT_BYTES, r.dynamic_object_bytes);
  tks_stat_u64(s, &ST_STORE_DYNAMIC_OBJECT_REQUESTED_BYTES, r.dynamic_object_requested);
  tks_stat_u64(s, &ST_STORE_DYNAMIC_ENTRY_BYTES, r.dynamic_entry_bytes);
#undef PER
}

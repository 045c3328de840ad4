/*
 * libFuzzer target: the store's packed records (lib/store.c) against a
 * model.  The input is a program: appends of ticks whose every field's
 * value comes from the input (any width, either sign, ts jumping either
 * way, so that blocks widen, split and take late ticks below their base),
 * exact trims and evict_heads; after it, every series must come back from
 * range and from a walk exactly as the model holds it (stable ts order),
 * and the byte counts must match the slab's.  The first byte chooses the
 * schema (MarketEvent, or the wide one with a bool, a u32 and a string).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "slab.h"
#include "store.h"

enum { NSYM = 4, MAXTICKS = 4096 };

struct tick {
  int64_t ts;
  uint32_t sym;
  char rec[TKS_RECORD_MAX];
};

struct model {
  struct tick t[MAXTICKS];
  unsigned n;
};

struct input {
  const uint8_t *p;
  size_t n;
};

static uint64_t take(struct input *in, unsigned bytes) {
  uint64_t v = 0;
  for (unsigned i = 0; i < bytes && in->n; i++, in->p++, in->n--) v |= (uint64_t)*in->p << (8 * i);
  return v;
}

/* A value of 0 to 8 bytes (the low 4 bits of a control byte), sign-extended
 * when bit 4 is set. */
static uint64_t take_value(struct input *in) {
  unsigned c = (unsigned)take(in, 1), w = (c & 15) % 9;
  uint64_t v = take(in, w);
  if ((c & 16) && w > 0 && w < 8 && (v >> (8 * w - 1)) & 1) v |= ~UINT64_C(0) << (8 * w);
  return v;
}

/* Model ticks of sym in the store's order: ts, ties in arrival order. */
static unsigned series_of(const struct model *m, uint32_t sym, const struct tick **out) {
  unsigned n = 0;
  for (unsigned i = 0; i < m->n; i++) {
    if (m->t[i].sym != sym) continue;
    unsigned j = n++;
    while (j > 0 && out[j - 1]->ts > m->t[i].ts) {
      out[j] = out[j - 1];
      j--;
    }
    out[j] = &m->t[i];
  }
  return n;
}

struct seen {
  const struct tick **want;
  unsigned n, rs;
};

static int visit(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct seen *s = ctx;
  FUZZ_CHECK(record && !obj, "a slotted store gave an object");
  FUZZ_CHECK(memcmp(record, s->want[s->n]->rec, s->rs) == 0, "tick %u of range differs", s->n);
  s->n++;
  return 0;
}

static void check(struct tks_store *st, struct tks_slab *slab, const struct tks_schema *sc,
                  const struct model *m) {
  static const struct tick *want[MAXTICKS];
  static struct tks_store_walk w;
  FUZZ_CHECK(tks_store_ticks(st) == m->n, "%llu ticks held, model %u",
             (unsigned long long)tks_store_ticks(st), m->n);
  FUZZ_CHECK(tks_store_block_bytes(st) == tks_slab_bytes_used(slab), "block bytes %llu, slab %llu",
             (unsigned long long)tks_store_block_bytes(st),
             (unsigned long long)tks_slab_bytes_used(slab));
  for (uint32_t sym = 1; sym <= NSYM; sym++) {
    unsigned n = series_of(m, sym, want), below = n;
    while (below > 0 && want[below - 1]->ts == INT64_MAX) below--; /* range's to is exclusive */
    struct seen s = {want, 0, sc->record_size};
    uint64_t got = tks_store_range(st, sym, INT64_MIN, INT64_MAX, 0, visit, &s);
    FUZZ_CHECK(got == below, "symbol %u: range gave %llu of %u", sym, (unsigned long long)got,
               below);
    tks_store_walk_begin(st, TKS_STORE_SLOTTED, sym, &w);
    const void *e;
    uint32_t c, at = 0;
    while (tks_store_walk_next(&w, &e, &c))
      for (uint32_t i = 0; i < c; i++, at++)
        FUZZ_CHECK(at < n && memcmp((const char *)e + (size_t)i * sc->record_size, want[at]->rec,
                                    sc->record_size) == 0,
                   "symbol %u: walk entry %u differs", sym, at);
    FUZZ_CHECK(at == n, "symbol %u: walk gave %u of %u", sym, at, n);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const struct tks_schema *sc = fuzz_schema(data[0] & 1);
  struct input in = {data + 1, size - 1};
  struct tks_slab *slab = tks_slab_create(1 << 16, 1.25, 32);
  struct tks_store *st = slab ? tks_store_create(sc, slab) : NULL;
  FUZZ_CHECK(st, "out of memory");
  static struct model m;
  m.n = 0;
  int64_t last[NSYM + 1] = {0};
  while (in.n > 0) {
    unsigned op = (unsigned)take(&in, 1);
    uint32_t sym = 1 + (op >> 4) % NSYM;
    if ((op & 15) < 12) { /* append */
      if (m.n == MAXTICKS) break;
      struct tick *t = &m.t[m.n];
      memset(t, 0, sizeof *t);
      for (unsigned i = 0; i < sc->nfields; i++) {
        const struct tks_field *f = &sc->fields[i];
        uint64_t v = (int)i == sc->symbol_field ? sym : take_value(&in);
        if ((int)i == sc->ts_field) v = (op & 15) < 8 ? (uint64_t)last[sym] + v : v;
        if (f->type == TKS_TYPE_BOOL) v &= 1;
        memcpy(t->rec + f->offset, &v, f->size); /* little-endian: the low bytes */
        if ((int)i == sc->ts_field) t->ts = (int64_t)v;
      }
      t->sym = sym;
      last[sym] = t->ts;
      int r = tks_store_append(st, t->rec);
      FUZZ_CHECK(r == 0, "append: %d", r);
      m.n++;
    } else if ((op & 15) < 14) { /* trim_before */
      int64_t cut = (int64_t)take_value(&in);
      uint64_t below = tks_store_count_before(st, cut), removed = tks_store_trim_before(st, cut);
      FUZZ_CHECK(below == removed, "count_before %llu, trim_before %llu", (unsigned long long)below,
                 (unsigned long long)removed);
      unsigned kept = 0;
      for (unsigned i = 0; i < m.n; i++)
        if (m.t[i].ts >= cut) m.t[kept++] = m.t[i];
      FUZZ_CHECK(m.n - kept == removed, "trimmed %llu, model %u", (unsigned long long)removed,
                 m.n - kept);
      m.n = kept;
    } else { /* evict_head: the n oldest of one series */
      unsigned n = (unsigned)take(&in, 2) % 600;
      static const struct tick *order[MAXTICKS];
      unsigned len = series_of(&m, sym, order), drop = n < len ? n : len;
      uint64_t removed = tks_store_evict_head(st, TKS_STORE_SLOTTED, sym, n);
      FUZZ_CHECK(removed == drop, "evict_head removed %llu, model %u", (unsigned long long)removed,
                 drop);
      /* The dropped ticks are the first `drop` of the series' order. */
      static bool gone[MAXTICKS];
      memset(gone, 0, sizeof gone);
      for (unsigned i = 0; i < drop; i++) gone[order[i] - m.t] = true;
      unsigned kept = 0;
      for (unsigned i = 0; i < m.n; i++)
        if (!gone[i]) m.t[kept++] = m.t[i];
      m.n = kept;
    }
  }
  check(st, slab, sc, &m);
  tks_store_destroy(st);
  tks_slab_destroy(slab);
  return 0;
}

/*
 * archive_bench: what a sealed day of the archive (lib/archive.c) costs on
 * disk and how fast it is written and read, for two kinds of ticks:
 *
 *   bench  the ticks `tickslab gen` sends (cli/gen.c): S0000.. symbols in
 *          rounds, ts = max(last + 1, now) with now moving as a 3 M ticks/s
 *          sender's clock does (one reading per 256 KiB batch), prices a
 *          random walk in cents (+-5), volumes 1..1000, flags "R" 1 in 8;
 *   real   real-looking ticks: symbols of Zipf(1) frequencies, ns
 *          timestamps of a Poisson stream over a 6.5 h session, prices a
 *          random walk in ticks of 0.01 (70% of symbols), 0.001 (20%) or
 *          0.0001 (10%), volumes in round lots of 100 (odd lots 15%), a few
 *          flags of skewed frequency.
 *
 * The ticks go into a real store (slotted mode, MarketEvent), the store is
 * written as one part of one day through tks_archive_writer_visit, sealed
 * (fsync included), and read back: every symbol's whole range, then `last
 * 1` of every symbol, through a view of the same schema and tables.  For
 * each zstd level and block size asked for, one line: bytes a tick of the
 * part file (header, index and footer included), write and read rates.
 *
 *   build/bench/archive_bench [--count N] [--symbols S] [--kind bench|real|both]
 *                             [--levels 1,3,6] [--blocks 4096,16384,65536]
 *                             [--one-shot] [--dir DIR] [--mode slotted|fallback|dynamic]
 *                             [--open-days N]
 *
 * --open-days N instead seals N days of one small part each and times
 * tks_archive_open() over them and a first query (one index loaded).
 * --one-shot compresses each block in one zstd call instead of a flush
 * after each column (the writer's way), for the A/B; --mode stores the
 * ticks as fallback (a tenth with an undeclared integer x1) or dynamic.
 * Timings are wall clock on whatever machine runs it: read them as rough.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive-internal.h"
#include "archive.h"
#include "schema.h"
#include "slab.h"
#include "store.h"
#include "symtab.h"
#include "util.h"

struct rec { /* MarketEvent's layout */
  int64_t ts;
  double price;
  int64_t volume;
  uint32_t ticker;
  uint32_t flags;
};

static uint64_t rng = 1;
static uint64_t rnd(void) {
  uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static double unit(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

struct world {
  struct tks_schema schema;
  enum tks_mode mode;
  struct tks_slab *slab;
  struct tks_store *st;
  struct tks_symtab *symbols, *strings, *names;
  uint32_t extra_name; /* "x1", for fallback and dynamic */
  uint64_t ticks;
};

static uint32_t intern(struct tks_symtab *t, const char *s) {
  uint32_t id;
  if (tks_symtab_intern(t, s, strlen(s), &id)) {
    fprintf(stderr, "intern failed\n");
    exit(1);
  }
  return id;
}

static void put(struct world *w, const struct rec *r, bool extra) {
  int rc;
  if (w->mode == TKS_MODE_SLOTTED || (w->mode == TKS_MODE_FALLBACK && !extra)) {
    rc = tks_store_append(w->st, r);
  } else if (w->mode == TKS_MODE_FALLBACK) {
    struct tks_dynobj *o = tks_store_new_dynobj(w->st, 1, 0);
    struct tks_value v = {.type = TKS_V_INT, .v.i = (int64_t)(rnd() % 10000)};
    rc = !o || tks_dynobj_put(o, w->extra_name, &v) || tks_store_append_overflow(w->st, r, o);
  } else {
    static const char *const names[] = {"ts", "ticker", "price", "volume", "flags"};
    struct tks_value v[6] = {{.type = TKS_V_INT, .v.i = r->ts},
                             {.type = TKS_V_SYM, .v.id = r->ticker},
                             {.type = TKS_V_F64, .v.f = r->price},
                             {.type = TKS_V_INT, .v.i = r->volume},
                             {.type = TKS_V_ISTR, .v.id = r->flags},
                             {.type = TKS_V_INT, .v.i = (int64_t)(rnd() % 10000)}};
    unsigned n = extra ? 6 : 5;
    struct tks_dynobj *o = tks_store_new_dynobj(w->st, n, 0);
    rc = !o;
    for (unsigned i = 0; i < n && !rc; i++)
      rc = tks_dynobj_put(o, i < 5 ? intern(w->names, names[i]) : w->extra_name, &v[i]);
    if (!rc) rc = tks_store_append_dynamic(w->st, r->ticker, r->ts, o);
  }
  if (rc) {
    fprintf(stderr, "the store is full after %" PRIu64 " ticks\n", w->ticks);
    exit(1);
  }
  w->ticks++;
}

static int64_t day_start;

/* cli/gen.c's ticks, with its clock: a batch of 256 KiB (about 6,500 ticks
 * of 40 bytes) reads the clock once; at 3 M ticks/s it moves 2.2 ms. */
static void gen_bench(struct world *w, uint64_t count, unsigned nsym) {
  int64_t *last = calloc(nsym, sizeof *last);
  int64_t *cents = calloc(nsym, sizeof *cents);
  uint32_t *ids = calloc(nsym, sizeof *ids);
  uint32_t r_flag = intern(w->strings, "R"), none = intern(w->strings, "");
  for (unsigned s = 0; s < nsym; s++) {
    char name[16];
    snprintf(name, sizeof name, "S%04u", s);
    ids[s] = intern(w->symbols, name);
    cents[s] = 1000 + (int64_t)(rnd() % 49000);
  }
  const uint64_t batch = 6500;
  int64_t now = day_start + 9 * 3600000000000ll + 30 * 60000000000ll;
  for (uint64_t i = 0; i < count; i++) {
    if (i % batch == 0) now += (int64_t)(batch * 1e9 / 3e6);
    unsigned s = (unsigned)(i % nsym);
    int64_t ts = last[s] + 1;
    if (ts < now) ts = now;
    last[s] = ts;
    cents[s] += (int64_t)(rnd() % 11) - 5;
    if (cents[s] < 1) cents[s] = 1;
    struct rec r = {.ts = ts,
                    .price = (double)cents[s] / 100.0,
                    .volume = 1 + (int64_t)(rnd() % 1000),
                    .ticker = ids[s],
                    .flags = rnd() % 8 == 0 ? r_flag : none};
    put(w, &r, i % 10 == 3);
  }
  free(last);
  free(cents);
  free(ids);
}

/* Real-looking ticks over a 6.5 h session. */
static void gen_real(struct world *w, uint64_t count, unsigned nsym) {
  double *cdf = malloc(nsym * sizeof *cdf);
  double *px = malloc(nsym * sizeof *px);
  int64_t *ticks = malloc(nsym * sizeof *ticks); /* price in ticks */
  double *tick = malloc(nsym * sizeof *tick);
  int *dec = malloc(nsym * sizeof *dec);
  uint32_t *ids = malloc(nsym * sizeof *ids);
  double sum = 0;
  for (unsigned s = 0; s < nsym; s++) sum += 1.0 / (s + 1);
  double acc = 0;
  for (unsigned s = 0; s < nsym; s++) {
    acc += 1.0 / (s + 1) / sum;
    cdf[s] = acc;
    char name[16];
    /* Tickers of 1 to 5 letters, as listings have. */
    unsigned len = 1 + (unsigned)(rnd() % 5), k = s;
    for (unsigned c = 0; c < len; c++, k /= 26) name[c] = (char)('A' + (k + rnd()) % 26);
    snprintf(name + len, sizeof name - len, "%u", s);
    ids[s] = intern(w->symbols, name);
    double u = unit();
    dec[s] = u < 0.7 ? 2 : u < 0.9 ? 3 : 4;
    tick[s] = pow(10, -dec[s]);
    px[s] = exp(log(5) + unit() * (log(500) - log(5)));
    ticks[s] = llround(px[s] / tick[s]);
  }
  static const char *const fl[] = {"", "R", "F", "X", "@", "T"};
  static const double fp[] = {0.85, 0.90, 0.94, 0.97, 0.99, 1.0};
  uint32_t fid[6];
  for (int k = 0; k < 6; k++) fid[k] = intern(w->strings, fl[k]);
  int64_t t = day_start + (int64_t)(13.5 * 3600e9); /* 09:30 New York */
  double gap = 6.5 * 3600e9 / (double)count;        /* mean ns between ticks */
  /* Ticks come to the store per symbol in time order: a global stream,
   * each tick given to a symbol by its frequency. */
  for (uint64_t i = 0; i < count; i++) {
    t += (int64_t)(-log(1 - unit()) * gap) + 1;
    double u = unit();
    unsigned lo = 0, hi = nsym - 1;
    while (lo < hi) {
      unsigned mid = (lo + hi) / 2;
      if (cdf[mid] < u)
        lo = mid + 1;
      else
        hi = mid;
    }
    unsigned s = lo;
    double m = unit();
    int64_t step = m < 0.6 ? 0 : m < 0.9 ? 1 : 2 + (int64_t)(rnd() % 4);
    if (rnd() & 1) step = -step;
    if (ticks[s] + step > 0) ticks[s] += step;
    double f = unit();
    int k = 0;
    while (f > fp[k]) k++;
    int64_t vol = unit() < 0.15 ? 1 + (int64_t)(rnd() % 99)
                                : 100 * (1 + (int64_t)floor(log(1 - unit()) / log(0.7)));
    /* The price as a sender prints it: the decimal of k places. */
    char num[32];
    snprintf(num, sizeof num, "%.*f", dec[s], (double)ticks[s] * tick[s]);
    struct rec r = {
        .ts = t, .price = strtod(num, NULL), .volume = vol, .ticker = ids[s], .flags = fid[k]};
    put(w, &r, i % 10 == 3);
  }
  free(cdf);
  free(px);
  free(ticks);
  free(tick);
  free(dec);
  free(ids);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static int count_fn(void *ctx, const void *record, const struct tks_dynobj *obj) {
  (void)record, (void)obj;
  ++*(uint64_t *)ctx;
  return 0;
}

/* One line: write the world with level and block ticks, read it back. */
static void run(struct world *w, const char *kind, const char *base, int level, uint32_t block) {
  char dir[600];
  snprintf(dir, sizeof dir, "%s/l%d-b%u", base, level, block);
  char err[256];
  struct tks_archive_tables t = {w->symbols, w->strings, w->names};
  struct tks_archive_writer_opts o = {.level = level, .block_ticks = block};
  uint64_t t0 = tks_mono_ns();
  struct tks_archive_writer *wr = tks_archive_writer_create(
      dir, tks_archive_day_of(day_start), &w->schema, w->mode, &t, &o, err, sizeof err);
  if (!wr) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
  for (uint32_t id = 1; id <= tks_symtab_count(w->symbols); id++)
    tks_store_range(w->st, id, INT64_MIN, INT64_MAX, 0, tks_archive_writer_visit, wr);
  struct tks_archive_part_info pi;
  if (tks_archive_writer_seal(wr, &pi, err, sizeof err)) {
    fprintf(stderr, "seal: %s\n", err);
    exit(1);
  }
  double wsec = (double)(tks_mono_ns() - t0) / 1e9;
  struct tks_archive *a = tks_archive_open(dir, err, sizeof err);
  if (!a) {
    fprintf(stderr, "open: %s\n", err);
    exit(1);
  }
  struct tks_archive_view v = {&w->schema, w->symbols, w->strings, w->names};
  uint64_t got = 0;
  t0 = tks_mono_ns();
  for (uint32_t id = 1; id <= tks_symtab_count(w->symbols); id++) {
    size_t len;
    const char *name = tks_symtab_name(w->symbols, id, &len);
    uint64_t n;
    if (tks_archive_range(a, &v, name, len, INT64_MIN, INT64_MAX, 0, count_fn, &got, &n)) {
      fprintf(stderr, "range: %s\n", tks_archive_error(a));
      exit(1);
    }
  }
  double rsec = (double)(tks_mono_ns() - t0) / 1e9;
  uint64_t lasts = 0, before = tks_archive_blocks_read(a);
  t0 = tks_mono_ns();
  for (uint32_t id = 1; id <= tks_symtab_count(w->symbols); id++) {
    size_t len;
    const char *name = tks_symtab_name(w->symbols, id, &len);
    tks_archive_last(a, &v, name, len, 1, count_fn, &lasts, NULL);
  }
  double lsec = (double)(tks_mono_ns() - t0) / 1e9;
  uint64_t lblocks = tks_archive_blocks_read(a) - before;
  tks_archive_close(a);
  if (got != w->ticks) {
    fprintf(stderr, "read %" PRIu64 " of %" PRIu64 " ticks\n", got, w->ticks);
    exit(1);
  }
  printf("%-6s %-8s %9" PRIu64 " %6u %5d %6u %12" PRIu64 " %7.2f %11.0f %11.0f %9.1f %7.2f\n", kind,
         tks_mode_name(w->mode), w->ticks, tks_symtab_count(w->symbols), level, block, pi.bytes,
         (double)pi.bytes / (double)w->ticks, (double)w->ticks / wsec, (double)w->ticks / rsec,
         lsec * 1e6 / tks_symtab_count(w->symbols), (double)lblocks / tks_symtab_count(w->symbols));
  fflush(stdout);
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The cost of opening an archive of ndays days (one part each, of 1000
 * ticks of 10 symbols), and of a first query that loads one day's index. */
static void open_days(const char *base, unsigned ndays) {
  struct world w = {0};
  tks_schema_default(&w.schema);
  w.symbols = tks_symtab_create(0);
  w.strings = tks_symtab_create(0);
  w.names = tks_symtab_create(0);
  char dir[600], err[256];
  snprintf(dir, sizeof dir, "%s/days", base);
  struct tks_archive_tables t = {w.symbols, w.strings, w.names};
  uint32_t ids[10];
  for (int s = 0; s < 10; s++) {
    char name[8];
    snprintf(name, sizeof name, "S%d", s);
    ids[s] = intern(w.symbols, name);
  }
  int32_t first = tks_archive_day_of(day_start) - (int32_t)ndays;
  uint64_t t0 = tks_mono_ns();
  for (unsigned d = 0; d < ndays; d++) {
    int32_t day = first + (int32_t)d;
    struct tks_archive_writer *wr = tks_archive_writer_create(dir, day, &w.schema, TKS_MODE_SLOTTED,
                                                              &t, NULL, err, sizeof err);
    if (!wr) {
      fprintf(stderr, "%s\n", err);
      exit(1);
    }
    for (int i = 0; i < 1000; i++) {
      struct rec r = {.ts = tks_archive_day_start(day) + i, .price = 1, .ticker = ids[i % 10]};
      tks_archive_writer_add(wr, &r, NULL);
    }
    if (tks_archive_writer_seal(wr, NULL, err, sizeof err)) {
      fprintf(stderr, "%s\n", err);
      exit(1);
    }
  }
  double wsec = (double)(tks_mono_ns() - t0) / 1e9;
  t0 = tks_mono_ns();
  struct tks_archive *a = tks_archive_open(dir, err, sizeof err);
  double osec = (double)(tks_mono_ns() - t0) / 1e9;
  struct tks_archive_view v = {&w.schema, w.symbols, w.strings, w.names};
  uint64_t n = 0;
  t0 = tks_mono_ns();
  tks_archive_last(a, &v, "S3", 2, 1, count_fn, &n, NULL);
  double lsec = (double)(tks_mono_ns() - t0) / 1e9;
  struct tks_archive_totals tot;
  tks_archive_totals(a, &tot);
  printf("%u days (%u parts, %" PRIu64 " ticks): sealed in %.2f s (%.1f ms a part, fsyncs "
         "included), open in %.2f ms, a first `last S3 1` in %.3f ms\n",
         tot.days, tot.parts, tot.ticks, wsec, wsec * 1e3 / ndays, osec * 1e3, lsec * 1e3);
  tks_archive_close(a);
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  tks_symtab_destroy(w.symbols);
  tks_symtab_destroy(w.strings);
  tks_symtab_destroy(w.names);
}

static int parse_list(const char *s, long *out, int max) {
  int n = 0;
  while (*s && n < max) {
    char *end;
    out[n++] = strtol(s, &end, 10);
    if (end == s) return -1;
    s = *end == ',' ? end + 1 : end;
  }
  return n;
}

int main(int argc, char **argv) {
  uint64_t count = 2000000;
  unsigned bench_sym = 100, real_sym = 2000;
  const char *kind = "both", *base = NULL, *mode = "slotted";
  long levels[16] = {1, 3, 6, 9}, blocks[16] = {4096, 16384, 65536};
  int nlevels = 4, nblocks = 3;
  bool sym_set = false;
  unsigned sym = 0, days = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--one-shot")) {
      tks_archive_set_column_flush(0);
      continue;
    }
    if (!v) {
      fprintf(stderr, "usage: see the top of bench/archive_bench.c\n");
      return 2;
    }
    i++;
    if (!strcmp(a, "--count"))
      count = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--symbols"))
      sym = (unsigned)strtoul(v, NULL, 10), sym_set = true;
    else if (!strcmp(a, "--kind"))
      kind = v;
    else if (!strcmp(a, "--dir"))
      base = v;
    else if (!strcmp(a, "--mode"))
      mode = v;
    else if (!strcmp(a, "--open-days"))
      days = (unsigned)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--levels"))
      nlevels = parse_list(v, levels, 16);
    else if (!strcmp(a, "--blocks"))
      nblocks = parse_list(v, blocks, 16);
    else {
      fprintf(stderr, "unknown option %s (see the top of bench/archive_bench.c)\n", a);
      return 2;
    }
  }
  if (nlevels <= 0 || nblocks <= 0) return 2;
  char tmpl[] = "/tmp/archive-bench-XXXXXX";
  if (!base && !(base = mkdtemp(tmpl))) return 1;
  int32_t day;
  tks_archive_day_parse("2026-11-25", 10, &day);
  day_start = tks_archive_day_start(day);
  if (days) {
    open_days(base, days);
    if (base == tmpl) rmdir(tmpl);
    return 0;
  }
  printf("%-6s %-8s %9s %6s %5s %6s %12s %7s %11s %11s %9s %7s\n", "ticks", "mode", "count", "syms",
         "level", "block", "part bytes", "B/tick", "write t/s", "read t/s", "last1 us", "blocks");
  for (int k = 0; k < 2; k++) {
    const char *name = k == 0 ? "bench" : "real";
    if (strcmp(kind, "both") && strcmp(kind, name)) continue;
    struct world w = {0};
    tks_schema_default(&w.schema);
    if (tks_mode_parse(mode, &w.mode)) return 2;
    w.slab = tks_slab_create(1 << 20, 1.25, 32);
    w.st = tks_store_create(&w.schema, w.slab);
    w.symbols = tks_symtab_create(0);
    w.strings = tks_symtab_create(0);
    w.names = tks_symtab_create(0);
    w.extra_name = intern(w.names, "x1");
    if (k == 0)
      gen_bench(&w, count, sym_set ? sym : bench_sym);
    else
      gen_real(&w, count, sym_set ? sym : real_sym);
    for (int l = 0; l < nlevels; l++)
      for (int b = 0; b < nblocks; b++) run(&w, name, base, (int)levels[l], (uint32_t)blocks[b]);
    tks_store_destroy(w.st);
    tks_slab_destroy(w.slab);
    tks_symtab_destroy(w.symbols);
    tks_symtab_destroy(w.strings);
    tks_symtab_destroy(w.names);
  }
  if (base == tmpl) rmdir(tmpl);
  return 0;
}

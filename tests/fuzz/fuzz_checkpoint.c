/*
 * libFuzzer target: checkpoint loading (lib/checkpoint.c) of a file made
 * of the input, into a fresh store, a few chunks a call.  The first byte
 * says how:
 *   bit 0    the CRC of every chunk is made right before loading, so that
 *            the fuzzer gets past the checksums to the ids, lengths,
 *            orders and counts behind them;
 *   bits 1-2 the target's mode (slotted, dynamic, fallback), and
 *   bit 3    its schema (MarketEvent or the wide one): any difference
 *            from the file's makes the load convert;
 * the rest is the file.  Checked: a load fails only with a negative errno
 * and a message naming the file and an offset, every later call says the
 * same, and nothing crashes or leaks (ASan); a load that succeeds holds
 * exactly the ticks its header says, every one readable.  The seeds in
 * corpus/checkpoint are files of the three representations.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "checkpoint.h"
#include "fuzz.h"
#include "journal.h"
#include "render.h"
#include "slab.h"
#include "store.h"
#include "symtab.h"
#include "usage.h"

struct visit {
  const struct tks_schema *schema;
  const struct tks_symtab *names, *symbols, *strings;
  struct tks_buf out;
  uint64_t n;
};

static int visit_fn(void *ctx, const void *record, const struct tks_dynobj *obj) {
  struct visit *v = ctx;
  v->out.len = 0;
  FUZZ_CHECK(tks_tick_json(v->schema, v->names, v->symbols, v->strings, record, obj, &v->out) == 0,
             "render");
  v->n++;
  return 0;
}

/* Recomputes every chunk's CRC, as far as the lengths lead. */
static void fix_crcs(uint8_t *p, size_t n) {
  for (size_t off = 16; off + 12 <= n;) {
    uint32_t len;
    memcpy(&len, p + off + 4, 4);
    if (len > n - off - 12) break;
    uint32_t crc = tks_crc32c(tks_crc32c(0, p + off, 8), p + off + 12, len);
    memcpy(p + off + 8, &crc, 4);
    off += 12 + (size_t)len;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  unsigned how = data[0];
  const uint8_t *file = data + 1;
  size_t n = size - 1;
  uint8_t *copy = NULL;
  if (how & 1) {
    copy = malloc(n ? n : 1);
    FUZZ_CHECK(copy, "malloc");
    memcpy(copy, file, n);
    fix_crcs(copy, n);
    file = copy;
  }
  int fd = memfd_create("fuzz.tkc", MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0, "memfd_create");
  FUZZ_CHECK(write(fd, file, n) == (ssize_t)n, "write");
  free(copy);

  const struct tks_schema *schema = fuzz_schema((how >> 3) & 1);
  static const enum tks_mode modes[4] = {TKS_MODE_SLOTTED, TKS_MODE_DYNAMIC, TKS_MODE_FALLBACK,
                                         TKS_MODE_FALLBACK};
  enum tks_mode mode = modes[(how >> 1) & 3];
  struct tks_slab *slab = tks_slab_create(64u << 10, 1.25, 32);
  struct tks_symtab *symbols = tks_symtab_create(1u << 16), *strings = tks_symtab_create(1u << 16),
                    *names = tks_symtab_create(4096);
  struct tks_store *store = tks_store_create(schema, slab);
  FUZZ_CHECK(slab && symbols && strings && names && store, "setup");
  tks_slab_set_limit(slab, 64u << 20); /* an absurd count must not take the machine */
  static struct tks_usage usage;
  tks_usage_init(&usage);
  struct tks_checkpoint_target t = {schema, mode, store, symbols, strings, names, &usage};
  char err[1200] = "";
  struct tks_checkpoint_load *l = tks_checkpoint_open_fd(fd, "fuzz.tkc", &t, err, sizeof err);
  if (!l) {
    FUZZ_CHECK(strstr(err, "fuzz.tkc") != NULL, "open failed without naming the file: %s", err);
  } else {
    int r;
    uint64_t done = 0, total = 0, last = 0;
    while ((r = tks_checkpoint_next(l, 4096, err, sizeof err)) == 1) {
      tks_checkpoint_progress(l, &done, &total);
      FUZZ_CHECK(done <= total, "progress %llu of %llu", (unsigned long long)done,
                 (unsigned long long)total);
      last = done;
    }
    (void)last;
    if (r < 0) {
      FUZZ_CHECK(strstr(err, "fuzz.tkc: offset ") != NULL, "error without file and offset: %s",
                 err);
      char again[1200];
      FUZZ_CHECK(tks_checkpoint_next(l, 4096, again, sizeof again) == r, "an error is final");
      FUZZ_CHECK(strcmp(again, err) == 0, "the same message");
    } else {
      FUZZ_CHECK(r == 0, "next returned %d", r);
      const struct tks_checkpoint_info *h = tks_checkpoint_header(l);
      FUZZ_CHECK(tks_store_ticks(store) == h->ticks, "%llu ticks stored, the header says %llu",
                 (unsigned long long)tks_store_ticks(store), (unsigned long long)h->ticks);
      struct visit v = {schema, names, symbols, strings, {0}, 0};
      uint32_t limit = tks_store_symbol_limit(store);
      for (uint32_t s = 0; s < limit; s++)
        tks_store_range(store, s, INT64_MIN, INT64_MAX, 0, visit_fn, &v);
      tks_buf_finish(&v.out);
      FUZZ_CHECK(v.n == h->ticks, "%llu ticks visited of %llu", (unsigned long long)v.n,
                 (unsigned long long)h->ticks);
    }
    tks_checkpoint_close(l);
  }
  tks_store_destroy(store);
  tks_symtab_destroy(symbols);
  tks_symtab_destroy(strings);
  tks_symtab_destroy(names);
  tks_slab_destroy(slab);
  return 0;
}

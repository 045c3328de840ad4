/*
 * Checkpoints (see checkpoint.h for the format).  The writer walks every
 * symbol's three series at once, merging them by ts, and copies entries
 * into an mmap'd chunk buffer: a slotted record is copied as it is (a whole
 * block in one memcpy when a symbol has only slotted ticks), a map or
 * object inline after its record.  The loader reads a chunk with pread,
 * checks its CRC, then every id, length and order in it, and appends runs
 * to the store with tks_store_append_many (raw), or, when the schema or
 * mode changed, takes each tick apart into named fields and builds it
 * again as the decoder would under the new schema.
 */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "journal.h"
#include "symtab.h"
#include "tick.h"
#include "utf8.h"
#include "util.h"

#define MAGIC "TKSCKPT1"
#define FILE_HEADER 16
#define CHUNK_HEADER 12
#define HEADER_FIXED 128 /* HEADER's payload before the fields */
#define FIELD_BYTES 64   /* one field in HEADER */
#define END_BYTES 56
#define RUN_HEADER 16
#define BYTE_ORDER_MARK 0x01020304u
#define MAX_NAMES (1u << 24) /* a field-name table larger than this is corruption */

enum { CK_HEADER = 1, CK_SYMBOLS, CK_STRINGS, CK_NAMES, CK_TICKS, CK_END };
enum { TAB_SYMBOLS, TAB_STRINGS, TAB_NAMES, NTABS };

static const char *const rep_names[TKS_STORE_REPS] = {"slotted", "overflow", "dynamic"};

/* ---- little-endian fields --------------------------------------------- */

static inline uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p + 4) << 32 | le32(p); }
static inline void put_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}
static inline void put_le64(uint8_t *p, uint64_t v) {
  put_le32(p, (uint32_t)v);
  put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t chunk_crc(const uint8_t *hdr8, const uint8_t *payload, size_t len) {
  return tks_crc32c(tks_crc32c(0, hdr8, 8), payload, len);
}

/* ---- names ------------------------------------------------------------- */

void tks_checkpoint_name(char out[TKS_CHECKPOINT_NAME_MAX], uint64_t seq) {
  snprintf(out, TKS_CHECKPOINT_NAME_MAX, "checkpoint-%020" PRIu64 ".tkc", seq);
}

/* "checkpoint-" 20 digits, then suffix exactly. */
static bool parse_name(const char *name, const char *suffix, uint64_t *seq) {
  if (strncmp(name, "checkpoint-", 11) != 0) return false;
  uint64_t v = 0;
  for (int i = 0; i < 20; i++) {
    char ch = name[11 + i];
    if (ch < '0' || ch > '9') return false;
    unsigned d = (unsigned)(ch - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (strcmp(name + 31, suffix) != 0) return false;
  *seq = v;
  return true;
}

bool tks_checkpoint_parse_name(const char *name, uint64_t *seq) {
  return parse_name(name, ".tkc", seq);
}

/* ---- the writer ---------------------------------------------------------- */

/* A chunk being built in mem: CHUNK_HEADER bytes, then len bytes of
 * payload.  mem is mmap'd (no malloc in a forked child); the first error
 * sticks in err and every later call does nothing. */
struct writer {
  int fd;
  uint8_t *mem;
  size_t cap, len;
  uint32_t type;
  uint64_t off, chunks;
  int err;
  /* The open run of a TICKS chunk: its header at payload offset run_at. */
  bool run_open;
  size_t run_at;
  uint32_t run_sym, run_rep, run_count;
  uint64_t ticks, rep_ticks[TKS_STORE_REPS], series;
};

static uint8_t *w_room(struct writer *w, size_t n) {
  if (w->err) return NULL;
  size_t need = CHUNK_HEADER + w->len + n;
  if (need > w->cap) {
    size_t ncap = w->cap;
    while (ncap < need) ncap *= 2;
    void *m = mremap(w->mem, w->cap, ncap, MREMAP_MAYMOVE);
    if (m == MAP_FAILED) {
      w->err = -ENOMEM;
      return NULL;
    }
    w->mem = m;
    w->cap = ncap;
  }
  uint8_t *p = w->mem + CHUNK_HEADER + w->len;
  w->len += n;
  return p;
}

static void w_u32(struct writer *w, uint32_t v) {
  uint8_t *p = w_room(w, 4);
  if (p) put_le32(p, v);
}
static void w_u64(struct writer *w, uint64_t v) {
  uint8_t *p = w_room(w, 8);
  if (p) put_le64(p, v);
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t r = write(fd, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) return -EIO;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static void run_close(struct writer *w) {
  if (!w->run_open) return;
  w->run_open = false;
  if (!w->err) put_le32(w->mem + CHUNK_HEADER + w->run_at + 8, w->run_count);
}

static void w_begin(struct writer *w, uint32_t type) {
  w->type = type;
  w->len = 0;
}

static void w_end(struct writer *w) {
  run_close(w);
  if (w->err) return;
  uint8_t *h = w->mem;
  put_le32(h, w->type);
  put_le32(h + 4, (uint32_t)w->len);
  put_le32(h + 8, chunk_crc(h, h + CHUNK_HEADER, w->len));
  int r = write_all(w->fd, w->mem, CHUNK_HEADER + w->len);
  if (r) {
    w->err = r;
    return;
  }
  w->off += CHUNK_HEADER + w->len;
  w->chunks++;
  w->len = 0;
}

/* Room for n bytes of entries of (sym, rep): a new TICKS chunk when this
 * one would pass its size, a new run when the open one is another's. */
static uint8_t *run_room(struct writer *w, uint32_t sym, uint32_t rep, size_t n) {
  bool cont = w->run_open && w->run_sym == sym && w->run_rep == rep;
  if (w->len && w->len + n + (cont ? 0 : RUN_HEADER) > TKS_CHECKPOINT_CHUNK) {
    w_end(w);
    w_begin(w, CK_TICKS);
    cont = false;
  }
  if (!cont) {
    run_close(w);
    size_t at = w->len;
    uint8_t *h = w_room(w, RUN_HEADER);
    if (!h) return NULL;
    put_le32(h, sym);
    put_le32(h + 4, rep);
    put_le32(h + 8, 0);
    put_le32(h + 12, 0);
    w->run_open = true;
    w->run_at = at;
    w->run_sym = sym;
    w->run_rep = rep;
    w->run_count = 0;
  }
  return w_room(w, n);
}

/* Slotted records, as many to a run as the chunk takes. */
static void emit_records(struct writer *w, uint32_t sym, const uint8_t *e, uint32_t count,
                         uint32_t rs) {
  while (count && !w->err) {
    bool cont = w->run_open && w->run_sym == sym && w->run_rep == TKS_STORE_SLOTTED;
    size_t used = w->len + (cont ? 0 : RUN_HEADER);
    uint32_t k = used < TKS_CHECKPOINT_CHUNK ? (uint32_t)((TKS_CHECKPOINT_CHUNK - used) / rs) : 0;
    if (k == 0 && w->len) {
      w_end(w);
      w_begin(w, CK_TICKS);
      continue;
    }
    if (k == 0) k = 1;
    if (k > count) k = count;
    uint8_t *d = run_room(w, sym, TKS_STORE_SLOTTED, (size_t)k * rs);
    if (!d) return;
    memcpy(d, e, (size_t)k * rs);
    w->run_count += k;
    w->ticks += k;
    w->rep_ticks[TKS_STORE_SLOTTED] += k;
    e += (size_t)k * rs;
    count -= k;
  }
}

/* One entry of any representation; a map or object goes inline. */
static void emit_entry(struct writer *w, const struct tks_store *st, uint32_t rep, uint32_t sym,
                       const uint8_t *e, uint32_t rs) {
  if (rep == TKS_STORE_SLOTTED) {
    emit_records(w, sym, e, 1, rs);
    return;
  }
  const struct tks_dynobj *o = tks_store_entry_obj(st, rep, e);
  size_t head = rep == TKS_STORE_OVERFLOW ? rs + 8 : 16;
  uint8_t *d = run_room(w, sym, rep, head + o->bytes);
  if (!d) return;
  if (rep == TKS_STORE_OVERFLOW) {
    memcpy(d, e, rs);
  } else {
    put_le64(d, (uint64_t)tks_store_entry_ts(st, rep, e));
  }
  put_le32(d + head - 8, o->bytes);
  put_le32(d + head - 4, 0);
  memcpy(d + head, o, o->bytes);
  w->run_count++;
  w->ticks++;
  w->rep_ticks[rep]++;
}

/* A position in one series: the block being read and what is left of it. */
struct wcur {
  struct tks_store_walk walk;
  const uint8_t *e;
  uint32_t left, esize;
};

static bool wcur_ready(struct wcur *c) {
  while (c->left == 0) {
    const void *ents;
    if (!tks_store_walk_next(&c->walk, &ents, &c->left)) return false;
    c->e = ents;
  }
  return true;
}

/* Every tick of symbol sym, its three series merged by ts (ties in the
 * store's order), as runs. */
static void write_symbol(struct writer *w, const struct tks_store *st, uint32_t sym, uint32_t rs) {
  struct wcur c[TKS_STORE_REPS];
  bool live[TKS_STORE_REPS];
  unsigned nlive = 0;
  for (unsigned k = 0; k < TKS_STORE_REPS; k++) {
    tks_store_walk_begin(st, k, sym, &c[k].walk);
    c[k].left = 0;
    c[k].esize = tks_store_entry_size(st, k);
    live[k] = wcur_ready(&c[k]);
    nlive += live[k];
  }
  if (nlive == 0) return;
  w->series++;
  if (nlive == 1 && live[TKS_STORE_SLOTTED]) {
    /* The common case: whole blocks of records. */
    const void *ents = c[0].e;
    uint32_t n = c[0].left;
    do emit_records(w, sym, ents, n, rs);
    while (!w->err && tks_store_walk_next(&c[0].walk, &ents, &n));
    return;
  }
  /* Equal ts in arrival order, as the store's queries merge them: an
   * overflow entry before the slotted one of its ts with its ties before
   * it (run: the slotted entries of ts run_ts written so far). */
  uint32_t run = 0;
  int64_t run_ts = 0;
  while (!w->err) {
    int best = -1;
    int64_t best_ts = 0;
    for (unsigned k = 0; k < TKS_STORE_REPS; k++) {
      if (!live[k]) continue;
      int64_t ts = tks_store_entry_ts(st, k, c[k].e);
      if (best < 0 || ts < best_ts) best = (int)k, best_ts = ts;
    }
    if (best < 0) break;
    if (best == TKS_STORE_SLOTTED && live[TKS_STORE_OVERFLOW] &&
        tks_store_entry_ts(st, TKS_STORE_OVERFLOW, c[TKS_STORE_OVERFLOW].e) == best_ts &&
        tks_store_entry_ties(st, TKS_STORE_OVERFLOW, c[TKS_STORE_OVERFLOW].e) <=
            (run_ts == best_ts ? run : 0))
      best = TKS_STORE_OVERFLOW;
    if (best == TKS_STORE_SLOTTED) {
      run = run_ts == best_ts ? run + 1 : 1;
      run_ts = best_ts;
    }
    struct wcur *b = &c[best];
    emit_entry(w, st, (uint32_t)best, sym, b->e, rs);
    b->e += b->esize;
    b->left--;
    live[best] = wcur_ready(b);
  }
}

static void write_table(struct writer *w, uint32_t type, const struct tks_symtab *t) {
  uint32_t n = tks_symtab_count(t), id = 1;
  while (id <= n && !w->err) {
    w_begin(w, type);
    size_t at = w->len;
    w_u32(w, id);
    w_u32(w, 0);
    uint32_t k = 0;
    while (id <= n && w->len < TKS_CHECKPOINT_CHUNK && !w->err) {
      size_t len = 0;
      const char *s = tks_symtab_name(t, id, &len);
      uint8_t *d = w_room(w, 1 + len);
      if (!d) break;
      d[0] = (uint8_t)len;
      memcpy(d + 1, s, len);
      id++;
      k++;
    }
    if (!w->err) put_le32(w->mem + CHUNK_HEADER + at + 4, k);
    w_end(w);
  }
}

static void write_header(struct writer *w, const struct tks_checkpoint_src *src,
                         const struct tks_checkpoint_info *h) {
  const struct tks_schema *s = src->schema;
  w_begin(w, CK_HEADER);
  w_u32(w, (uint32_t)src->mode);
  w_u32(w, s->nfields);
  w_u32(w, s->record_size);
  w_u32(w, (uint32_t)s->ts_field);
  w_u32(w, (uint32_t)s->symbol_field);
  uint32_t bom = BYTE_ORDER_MARK;
  uint8_t *p = w_room(w, 4);
  if (p) memcpy(p, &bom, 4);
  w_u64(w, h->next_segment);
  w_u64(w, (uint64_t)h->created_ns);
  w_u64(w, h->ticks);
  for (unsigned k = 0; k < TKS_STORE_REPS; k++) w_u64(w, h->rep_ticks[k]);
  w_u64(w, h->series);
  w_u32(w, h->symbols);
  w_u32(w, h->strings);
  w_u32(w, h->names);
  w_u32(w, 0);
  p = w_room(w, TKS_FIELD_NAME_MAX);
  if (p) memcpy(p, s->name, TKS_FIELD_NAME_MAX);
  for (unsigned i = 0; i < s->nfields; i++) {
    const struct tks_field *f = &s->fields[i];
    p = w_room(w, FIELD_BYTES);
    if (!p) return;
    memset(p, 0, FIELD_BYTES);
    memcpy(p, f->name, TKS_FIELD_NAME_MAX);
    put_le32(p + 32, (uint32_t)f->type);
    put_le32(p + 36, f->required);
    put_le32(p + 40, f->offset);
    put_le32(p + 44, f->size);
    memcpy(p + 48, &f->dflt, sizeof f->dflt);
  }
  w_end(w);
}

int tks_checkpoint_write(int fd, const struct tks_checkpoint_src *src,
                         struct tks_checkpoint_info *out) {
  struct writer w = {.fd = fd, .cap = TKS_CHECKPOINT_CHUNK + (1u << 20)};
  w.mem = mmap(NULL, w.cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (w.mem == MAP_FAILED) return -ENOMEM;
  const struct tks_store *st = src->store;
  struct tks_store_repr r;
  tks_store_repr(st, &r);
  struct tks_checkpoint_info h = {
      .next_segment = src->next_segment,
      .created_ns = src->created_ns,
      .mode = src->mode,
      .nfields = src->schema->nfields,
      .ticks = tks_store_ticks(st),
      .series = tks_store_series_count(st),
      .rep_ticks = {r.slotted_ticks, r.overflow_ticks, r.dynamic_ticks},
      .symbols = tks_symtab_count(src->symbols),
      .strings = tks_symtab_count(src->strings),
      .names = tks_symtab_count(src->names),
  };
  memcpy(h.schema_name, src->schema->name, sizeof h.schema_name);

  uint8_t fh[FILE_HEADER] = {0};
  memcpy(fh, MAGIC, 8);
  put_le32(fh + 8, TKS_CHECKPOINT_VERSION);
  w.err = write_all(fd, fh, sizeof fh);
  w.off = FILE_HEADER;
  write_header(&w, src, &h);
  write_table(&w, CK_SYMBOLS, src->symbols);
  write_table(&w, CK_STRINGS, src->strings);
  write_table(&w, CK_NAMES, src->names);
  uint32_t limit = tks_store_symbol_limit(st), rs = src->schema->record_size;
  w_begin(&w, CK_TICKS);
  for (uint32_t sym = 0; sym < limit && !w.err; sym++) write_symbol(&w, st, sym, rs);
  if (w.len) w_end(&w);
  uint64_t end_at = w.off;
  w_begin(&w, CK_END);
  w_u64(&w, w.ticks);
  for (unsigned k = 0; k < TKS_STORE_REPS; k++) w_u64(&w, w.rep_ticks[k]);
  w_u64(&w, w.series);
  w_u64(&w, w.chunks);
  w_u64(&w, end_at);
  w_end(&w);
  munmap(w.mem, w.cap);
  if (w.err) return w.err;
  h.bytes = w.off;
  h.chunks = w.chunks;
  if (out) *out = h;
  return 0;
}

/* ---- files --------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int tks_checkpoint_save(const char *dir, const struct tks_checkpoint_src *src,
                        struct tks_checkpoint_info *out, char *err, size_t errlen) {
  char name[TKS_CHECKPOINT_NAME_MAX], path[4200], tmp[4200];
  tks_checkpoint_name(name, src->next_segment);
  int n1 = snprintf(path, sizeof path, "%s/%s", dir, name);
  int n2 = snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
  if (n1 < 0 || n2 < 0 || (size_t)n2 >= sizeof tmp) {
    set_err(err, errlen, "%s: path too long", dir);
    return -ENAMETOOLONG;
  }
  unlink(tmp); /* a temp file a crash left */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) {
    int rc = -errno;
    set_err(err, errlen, "%s: %s", tmp, strerror(-rc));
    return rc;
  }
  int rc = tks_checkpoint_write(fd, src, out);
  const char *what = "writing";
  if (!rc && fsync(fd) < 0) rc = -errno, what = "fsync";
  if (close(fd) < 0 && !rc) rc = -errno, what = "close";
  if (!rc && rename(tmp, path) < 0) rc = -errno, what = "rename";
  if (rc) {
    unlink(tmp);
    set_err(err, errlen, "%s: %s: %s", tmp, what, strerror(-rc));
    return rc;
  }
  if ((rc = tks_fsync_dir(dir))) {
    set_err(err, errlen, "%s: fsync of the directory: %s", dir, strerror(-rc));
    return rc;
  }
  return 0;
}

static int cmp_desc(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x > y ? -1 : x < y;
}

/* Calls fn for each checkpoint (tmp false) and temp file (tmp true) of dir. */
static int scan_dir(const char *dir,
                    void (*fn)(void *ctx, const char *name, uint64_t seq, bool tmp), void *ctx) {
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? 0 : -errno;
  struct dirent *de;
  errno = 0;
  while ((de = readdir(d))) {
    uint64_t seq;
    if (parse_name(de->d_name, ".tkc", &seq))
      fn(ctx, de->d_name, seq, false);
    else if (parse_name(de->d_name, ".tkc.tmp", &seq))
      fn(ctx, de->d_name, seq, true);
    errno = 0;
  }
  int rc = errno ? -errno : 0;
  closedir(d);
  return rc;
}

struct list_ctx {
  uint64_t *seqs;
  size_t cap, n;
};

/* Keeps the cap largest. */
static void list_one(void *arg, const char *name, uint64_t seq, bool tmp) {
  struct list_ctx *c = arg;
  (void)name;
  if (tmp) return;
  if (c->n < c->cap) {
    c->seqs[c->n] = seq;
  } else if (c->cap) {
    size_t min = 0;
    for (size_t i = 1; i < c->cap; i++)
      if (c->seqs[i] < c->seqs[min]) min = i;
    if (seq > c->seqs[min]) c->seqs[min] = seq;
  }
  c->n++;
}

int tks_checkpoint_list(const char *dir, uint64_t *seqs, size_t cap, size_t *n) {
  struct list_ctx c = {seqs, cap, 0};
  int rc = scan_dir(dir, list_one, &c);
  size_t kept = c.n < cap ? c.n : cap;
  if (kept > 1) qsort(seqs, kept, sizeof *seqs, cmp_desc);
  *n = c.n;
  return rc;
}

struct prune_ctx {
  const char *dir;
  uint64_t oldest_kept;
  int err;
  bool removed;
};

static void prune_one(void *arg, const char *name, uint64_t seq, bool tmp) {
  struct prune_ctx *c = arg;
  if (!tmp && seq >= c->oldest_kept) return;
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", c->dir, name);
  if (unlink(path) == 0)
    c->removed = true;
  else if (errno != ENOENT && !c->err)
    c->err = -errno;
}

int tks_checkpoint_prune(const char *dir, unsigned keep, uint64_t *oldest_kept) {
  uint64_t seqs[16];
  size_t n;
  if (keep > 16) keep = 16;
  int rc = tks_checkpoint_list(dir, seqs, keep, &n);
  if (rc) return rc;
  size_t kept = n < keep ? n : keep;
  struct prune_ctx c = {.dir = dir, .oldest_kept = kept ? seqs[kept - 1] : UINT64_MAX};
  if (keep == 0) c.oldest_kept = UINT64_MAX;
  rc = scan_dir(dir, prune_one, &c);
  if (!rc) rc = c.err;
  if (c.removed) {
    int r = tks_fsync_dir(dir);
    if (!rc) rc = r;
  }
  if (oldest_kept) *oldest_kept = kept ? seqs[kept - 1] : 0;
  return rc;
}

/* ---- the loader ---------------------------------------------------------- */

/* A field of a tick taken apart for conversion. */
struct lfield {
  uint32_t key;     /* its id in the field-name table, 0 if it has none yet */
  const char *name; /* when key is 0: the old schema's name of it */
  int bf;           /* the target schema's field of that name, or -1 */
  struct tks_value v;
};

struct ltick {
  unsigned n;
  struct lfield f[TKS_SCHEMA_MAX_FIELDS + TKS_DYNOBJ_MAX_FIELDS];
  int b2l[TKS_SCHEMA_MAX_FIELDS]; /* target field -> f[], or -1 */
};

/* Why a tick could not take a target field, counted by the first pass. */
enum { FAIL_MISSING, FAIL_TYPE, FAIL_VALUE, NFAILS };

struct tks_checkpoint_load {
  int fd;
  char name[512];
  uint64_t size;      /* of the file, at open */
  uint64_t off;       /* of the next chunk */
  uint64_t tables_at; /* where the chunks after HEADER begin */
  struct tks_checkpoint_target t;
  struct tks_checkpoint_info hdr;
  struct tks_schema a; /* the checkpoint's schema */
  int a2b[TKS_SCHEMA_MAX_FIELDS];
  bool raw[TKS_STORE_REPS]; /* copied as they are */
  bool convert;             /* some ticks are not raw */
  bool two_passes;          /* ... and some could fail: a first pass checks them */
  int pass;                 /* 0: the first pass of a converting load (stores nothing) */
  int rc;                   /* sticky: 0, or the error */
  bool done;
  char err[1100];
  char conversion[256];

  /* Where this pass is. */
  int table;        /* the table being read (TAB_*), NTABS when all are */
  uint32_t next_id; /* of the table being read */
  uint64_t ticks, rep_ticks[TKS_STORE_REPS], series, chunks;
  uint32_t sym; /* of the last run */
  bool any_sym;
  int64_t last_ts; /* of the last tick of sym */

  /* Field names: their old and target schema fields (-1 none). */
  int8_t *name_a, *name_b;

  /* What A's records need checked: symbol, string and bool fields. */
  unsigned ncheck;
  struct {
    uint32_t off;
    enum tks_type type;
  } check[TKS_SCHEMA_MAX_FIELDS];

  uint8_t *buf; /* a chunk's payload, 8-aligned */
  size_t bufcap;
  uint8_t *scratch; /* entries for tks_store_append_many */
  size_t scratchcap;
  struct tks_dynobj **objs; /* the objects of scratch's entries, to give back on failure */
  size_t objscap;

  struct ltick lt; /* the tick being converted */
  /* A record of the old schema into one of the new by a fixed plan, where
   * no record can fail and the series key and ts are copied (see
   * make_plan): a slotted record is then converted without being taken
   * apart.  Old fields the new schema lacks make a record leave the plan
   * when they hold a value, unless the target is slotted (dropped). */
  bool plan;
  unsigned nplan, ndrop;
  struct plan_op {
    uint32_t dst, src, size;
    bool copy;                 /* else the default */
    bool keep_if_default;      /* copy even what equals the old default */
    union tks_scalar from, to; /* old default, new default */
  } ops[TKS_SCHEMA_MAX_FIELDS];
  struct {
    uint32_t off, size;
    bool required;
    union tks_scalar dflt;
  } drops[TKS_SCHEMA_MAX_FIELDS];
  uint32_t batched; /* records of the run in scratch, not yet appended */
  uint64_t fails[TKS_SCHEMA_MAX_FIELDS][NFAILS];
  enum tks_vtype fail_vtype[TKS_SCHEMA_MAX_FIELDS];
  uint64_t dropped_ticks, dropped_fields;
};

static int failf(struct tks_checkpoint_load *l, uint64_t off, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int failf(struct tks_checkpoint_load *l, uint64_t off, int rc, const char *fmt, ...) {
  if (l->rc) return l->rc;
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(l->err, sizeof l->err, "%s: offset %" PRIu64 ": %s", l->name, off, what);
  l->rc = rc;
  return rc;
}

static int read_at(struct tks_checkpoint_load *l, void *p, size_t n, uint64_t off) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(l->fd, (char *)p + got, n - got, (off_t)(off + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return failf(l, off + got, -errno, "read: %s", strerror(errno));
    }
    if (r == 0) return failf(l, off + got, -EBADMSG, "the file ends early (truncated?)");
    got += (size_t)r;
  }
  return 0;
}

/* Reads the chunk at l->off: its type and payload (in l->buf), CRC checked.
 * Returns 0 or the error. */
static int read_chunk(struct tks_checkpoint_load *l, uint32_t *type, uint32_t *len) {
  uint64_t off = l->off;
  if (l->size - off < CHUNK_HEADER)
    return failf(l, off, -EBADMSG,
                 off == l->size ? "the file ends before its END chunk (truncated)"
                                : "a chunk header cut short (truncated)");
  uint8_t h[CHUNK_HEADER];
  int rc = read_at(l, h, sizeof h, off);
  if (rc) return rc;
  *type = le32(h);
  *len = le32(h + 4);
  if (*type < CK_HEADER || *type > CK_END)
    return failf(l, off, -EBADMSG, "unknown chunk type %" PRIu32, *type);
  if (*len > TKS_CHECKPOINT_MAX_CHUNK)
    return failf(l, off, -EBADMSG, "chunk length %" PRIu32 " over the most, %u", *len,
                 TKS_CHECKPOINT_MAX_CHUNK);
  if (*len > l->size - off - CHUNK_HEADER)
    return failf(l, off, -EBADMSG,
                 "chunk length %" PRIu32 " runs past the end of the file (truncated?)", *len);
  if (*len > l->bufcap) {
    size_t cap = l->bufcap ? l->bufcap : 1u << 16;
    while (cap < *len) cap *= 2;
    void *nb = NULL;
    if (posix_memalign(&nb, 64, cap)) return failf(l, off, -ENOMEM, "out of memory");
    free(l->buf);
    l->buf = nb;
    l->bufcap = cap;
  }
  if ((rc = read_at(l, l->buf, *len, off + CHUNK_HEADER))) return rc;
  if (chunk_crc(h, l->buf, *len) != le32(h + 8))
    return failf(l, off, -EBADMSG, "chunk CRC mismatch (a %s chunk of %" PRIu32 " bytes)",
                 *type == CK_HEADER    ? "HEADER"
                 : *type == CK_SYMBOLS ? "SYMBOLS"
                 : *type == CK_STRINGS ? "STRINGS"
                 : *type == CK_NAMES   ? "NAMES"
                 : *type == CK_TICKS   ? "TICKS"
                                       : "END",
                 *len);
  return 0;
}

static bool same_default(const struct tks_field *x, const struct tks_field *y) {
  return memcmp(&x->dflt, &y->dflt, x->size) == 0;
}

/* Same names, types, flags, defaults and places: records copy as they are. */
static bool same_layout(const struct tks_schema *a, const struct tks_schema *b) {
  if (a->nfields != b->nfields || a->record_size != b->record_size) return false;
  for (unsigned i = 0; i < a->nfields; i++) {
    const struct tks_field *x = &a->fields[i], *y = &b->fields[i];
    if (strcmp(x->name, y->name) || x->type != y->type || x->required != y->required ||
        x->offset != y->offset || x->size != y->size || !same_default(x, y))
      return false;
  }
  return true;
}

/* The same declared names with the same types and flags, in any order:
 * dynamic objects are kept as they are. */
static bool same_fields(const struct tks_schema *a, const struct tks_schema *b, const int *a2b) {
  if (a->nfields != b->nfields) return false;
  for (unsigned i = 0; i < a->nfields; i++) {
    if (a2b[i] < 0) return false;
    const struct tks_field *x = &a->fields[i], *y = &b->fields[a2b[i]];
    if (x->type != y->type || x->required != y->required) return false;
  }
  return a->ts_field >= 0 && a2b[a->ts_field] == b->ts_field &&
         a2b[a->symbol_field] == b->symbol_field;
}

/* The plan for slotted records, when every target field is either an old
 * field of the same type (copied; one holding the old default takes the
 * new default, as an absent field does) that cannot turn up missing (not
 * newly required), or new and optional (its default); the ts and series key
 * are copied; the target is not dynamic.  Otherwise records are taken
 * apart like the rest. */
static void make_plan(struct tks_checkpoint_load *l) {
  const struct tks_schema *a = &l->a, *b = l->t.schema;
  l->plan = false;
  if (l->t.mode == TKS_MODE_DYNAMIC) return;
  int b2a[TKS_SCHEMA_MAX_FIELDS];
  for (unsigned bi = 0; bi < b->nfields; bi++) b2a[bi] = -1;
  for (unsigned ai = 0; ai < a->nfields; ai++)
    if (l->a2b[ai] >= 0) b2a[l->a2b[ai]] = (int)ai;
  if (b2a[b->ts_field] != a->ts_field || b2a[b->symbol_field] != a->symbol_field) return;
  l->nplan = l->ndrop = 0;
  for (unsigned bi = 0; bi < b->nfields; bi++) {
    const struct tks_field *y = &b->fields[bi];
    struct plan_op *op = &l->ops[l->nplan++];
    *op = (struct plan_op){.dst = y->offset, .size = y->size, .to = y->dflt};
    if (b2a[bi] < 0) {
      if (y->required || (int)bi == b->ts_field) return;
      continue;
    }
    const struct tks_field *x = &a->fields[b2a[bi]];
    if (x->type != y->type || (y->required && !x->required)) return;
    op->copy = true;
    op->src = x->offset;
    op->from = x->dflt;
    op->keep_if_default = x->required || (int)bi == b->ts_field || same_default(x, y);
  }
  for (unsigned ai = 0; ai < a->nfields; ai++) {
    if (l->a2b[ai] >= 0) continue;
    const struct tks_field *x = &a->fields[ai];
    l->drops[l->ndrop].off = x->offset;
    l->drops[l->ndrop].size = x->size;
    l->drops[l->ndrop].required = x->required;
    l->drops[l->ndrop++].dflt = x->dflt;
  }
  l->plan = true;
}

/* A record by the plan into out (the target's record_size bytes).  Returns
 * how many old fields the target lacks hold a value. */
static unsigned plan_record(const struct tks_checkpoint_load *l, const uint8_t *rec, char *out) {
  memset(out, 0, l->t.schema->record_size);
  for (unsigned i = 0; i < l->nplan; i++) {
    const struct plan_op *op = &l->ops[i];
    if (op->copy && (op->keep_if_default || memcmp(rec + op->src, &op->from, op->size) != 0))
      memcpy(out + op->dst, rec + op->src, op->size);
    else
      memcpy(out + op->dst, &op->to, op->size);
  }
  unsigned left = 0;
  for (unsigned i = 0; i < l->ndrop; i++)
    left += l->drops[i].required ||
            memcmp(rec + l->drops[i].off, &l->drops[i].dflt, l->drops[i].size) != 0;
  return left;
}

/* Describes what changed between the checkpoint's schema and mode and the
 * target's, into l->conversion. */
static void describe_conversion(struct tks_checkpoint_load *l) {
  const struct tks_schema *a = &l->a, *b = l->t.schema;
  struct tks_buf d;
  tks_buf_init(&d);
  if (l->hdr.mode != l->t.mode)
    tks_buf_printf(&d, "mode %s -> %s", tks_mode_name(l->hdr.mode), tks_mode_name(l->t.mode));
  for (unsigned i = 0; i < b->nfields; i++) {
    int ai = tks_schema_find(a, b->fields[i].name, strlen(b->fields[i].name));
    if (ai < 0)
      tks_buf_printf(&d, "%sfield %s declared", d.len ? ", " : "", b->fields[i].name);
    else if (a->fields[ai].type != b->fields[i].type)
      tks_buf_printf(&d, "%sfield %s %s -> %s", d.len ? ", " : "", b->fields[i].name,
                     tks_type_name(a->fields[ai].type), tks_type_name(b->fields[i].type));
    else if (a->fields[ai].required != b->fields[i].required)
      tks_buf_printf(&d, "%sfield %s %s", d.len ? ", " : "", b->fields[i].name,
                     b->fields[i].required ? "now required" : "now optional");
  }
  for (unsigned i = 0; i < a->nfields; i++)
    if (l->a2b[i] < 0)
      tks_buf_printf(&d, "%sfield %s dropped", d.len ? ", " : "", a->fields[i].name);
  if (!d.len) tks_buf_puts(&d, "field layout changed");
  snprintf(l->conversion, sizeof l->conversion, "%s", d.data ? d.data : "");
  tks_buf_finish(&d);
}

static int parse_header(struct tks_checkpoint_load *l, const uint8_t *p, uint32_t len) {
  uint64_t off = FILE_HEADER;
  if (len < HEADER_FIXED) return failf(l, off, -EBADMSG, "HEADER chunk of %" PRIu32 " bytes", len);
  uint32_t mode = le32(p), nfields = le32(p + 4), rs = le32(p + 8);
  int32_t tsf = (int32_t)le32(p + 12), symf = (int32_t)le32(p + 16);
  uint32_t bom;
  memcpy(&bom, p + 20, 4);
  if (bom != BYTE_ORDER_MARK)
    return failf(l, off, -EBADMSG, "written on a machine of another byte order");
  if (mode >= TKS_MODE_COUNT) return failf(l, off, -EBADMSG, "unknown mode %" PRIu32, mode);
  if (nfields == 0 || nfields > TKS_SCHEMA_MAX_FIELDS)
    return failf(l, off, -EBADMSG, "%" PRIu32 " fields in the schema", nfields);
  if (len != HEADER_FIXED + nfields * FIELD_BYTES)
    return failf(l, off, -EBADMSG, "HEADER chunk of %" PRIu32 " bytes for %" PRIu32 " fields", len,
                 nfields);
  struct tks_checkpoint_info *h = &l->hdr;
  h->mode = (enum tks_mode)mode;
  h->nfields = nfields;
  h->next_segment = le64(p + 24);
  h->created_ns = (int64_t)le64(p + 32);
  h->ticks = le64(p + 40);
  for (unsigned k = 0; k < TKS_STORE_REPS; k++) h->rep_ticks[k] = le64(p + 48 + 8 * k);
  h->series = le64(p + 72);
  h->symbols = le32(p + 80);
  h->strings = le32(p + 84);
  h->names = le32(p + 88);
  if (memchr(p + 96, 0, TKS_FIELD_NAME_MAX) == NULL)
    return failf(l, off, -EBADMSG, "schema name not terminated");
  memcpy(h->schema_name, p + 96, TKS_FIELD_NAME_MAX);
  /* Counts the file cannot hold are corruption (a tick takes 8 bytes or
   * more, a table entry 2). */
  uint64_t sum = h->rep_ticks[0] + h->rep_ticks[1] + h->rep_ticks[2];
  if (h->ticks > l->size / 8 || sum != h->ticks || h->series > h->ticks ||
      h->symbols > l->size / 2 || h->strings > l->size / 2 || h->names > l->size / 2 ||
      h->names >= MAX_NAMES || h->symbols == UINT32_MAX || h->strings == UINT32_MAX)
    return failf(l, off, -EBADMSG,
                 "counts the file cannot hold (%" PRIu64 " ticks, %" PRIu32 " symbols, %" PRIu32
                 " strings, %" PRIu32 " names in %" PRIu64 " bytes)",
                 h->ticks, h->symbols, h->strings, h->names, l->size);

  /* The schema as it was: laid out again, it must give the places the
   * header says, so no offset is trusted that the layout would not give. */
  struct tks_schema *a = &l->a;
  memset(a, 0, sizeof *a);
  memcpy(a->name, h->schema_name, sizeof a->name);
  a->nfields = nfields;
  for (unsigned i = 0; i < nfields; i++) {
    const uint8_t *q = p + HEADER_FIXED + i * FIELD_BYTES;
    struct tks_field *f = &a->fields[i];
    if (memchr(q, 0, TKS_FIELD_NAME_MAX) == NULL)
      return failf(l, off, -EBADMSG, "field %u: name not terminated", i + 1);
    memcpy(f->name, q, TKS_FIELD_NAME_MAX);
    uint32_t type = le32(q + 32), req = le32(q + 36);
    if (type >= TKS_TYPE__COUNT || req > 1)
      return failf(l, off, -EBADMSG, "field %u: bad type or flag", i + 1);
    f->type = (enum tks_type)type;
    f->required = req;
    memcpy(&f->dflt, q + 48, sizeof f->dflt);
    if (f->type == TKS_TYPE_BOOL && q[48] > 1)
      return failf(l, off, -EBADMSG, "field %u: bad bool default", i + 1);
  }
  char why[160];
  if (tks_schema_layout(a, why, sizeof why))
    return failf(l, off, -EBADMSG, "the schema does not lay out: %s", why);
  if (a->record_size != rs || a->ts_field != tsf || a->symbol_field != symf || rs % 8)
    return failf(l, off, -EBADMSG, "the schema's layout disagrees with the header");
  for (unsigned i = 0; i < nfields; i++) {
    const uint8_t *q = p + HEADER_FIXED + i * FIELD_BYTES;
    if (le32(q + 40) != a->fields[i].offset || le32(q + 44) != a->fields[i].size)
      return failf(l, off, -EBADMSG, "field %s: offset or size disagrees with the layout",
                   a->fields[i].name);
  }
  for (unsigned i = 0; i < nfields; i++) {
    const struct tks_field *f = &a->fields[i];
    if (f->type == TKS_TYPE_SYMBOL || f->type == TKS_TYPE_STRING || f->type == TKS_TYPE_BOOL)
      l->check[l->ncheck].off = f->offset, l->check[l->ncheck++].type = f->type;
  }

  /* Compare with the target. */
  const struct tks_schema *b = l->t.schema;
  for (unsigned i = 0; i < nfields; i++)
    l->a2b[i] = tks_schema_find(b, a->fields[i].name, strlen(a->fields[i].name));
  bool layout = same_layout(a, b);
  l->raw[TKS_STORE_SLOTTED] = layout && l->t.mode != TKS_MODE_DYNAMIC;
  l->raw[TKS_STORE_OVERFLOW] = layout && l->t.mode == TKS_MODE_FALLBACK;
  l->raw[TKS_STORE_DYNAMIC] = l->t.mode == TKS_MODE_DYNAMIC && same_fields(a, b, l->a2b);
  for (unsigned k = 0; k < TKS_STORE_REPS; k++)
    if (h->rep_ticks[k] && !l->raw[k]) l->convert = true;
  if (l->convert || h->mode != l->t.mode || !layout) describe_conversion(l);
  if (l->convert) make_plan(l);
  /* The first pass is for what some tick could fail: not needed when every
   * tick is raw or goes by the plan and cannot leave it. */
  bool can_fail = false;
  for (unsigned k = 0; k < TKS_STORE_REPS; k++)
    if (h->rep_ticks[k] && !l->raw[k])
      can_fail |= k != TKS_STORE_SLOTTED || !l->plan || (l->ndrop && l->t.mode != TKS_MODE_SLOTTED);
  l->pass = can_fail ? 0 : 1;
  l->two_passes = can_fail;
  l->name_a = malloc((size_t)h->names + 1);
  l->name_b = malloc((size_t)h->names + 1);
  if (!l->name_a || !l->name_b) return failf(l, off, -ENOMEM, "out of memory");
  memset(l->name_a, -1, (size_t)h->names + 1);
  memset(l->name_b, -1, (size_t)h->names + 1);
  return 0;
}

/* Starts a pass over the chunks after HEADER. */
static void begin_pass(struct tks_checkpoint_load *l) {
  l->off = l->tables_at;
  l->table = TAB_SYMBOLS;
  l->next_id = 1;
  l->ticks = l->series = 0;
  memset(l->rep_ticks, 0, sizeof l->rep_ticks);
  l->chunks = 1; /* HEADER */
  l->any_sym = false;
  l->last_ts = INT64_MIN;
  /* The tables with no entries are complete already. */
  while (l->table < NTABS) {
    uint32_t n = l->table == TAB_SYMBOLS   ? l->hdr.symbols
                 : l->table == TAB_STRINGS ? l->hdr.strings
                                           : l->hdr.names;
    if (n) break;
    l->table++;
  }
}

struct tks_checkpoint_load *tks_checkpoint_open_fd(int fd, const char *name,
                                                   const struct tks_checkpoint_target *t, char *err,
                                                   size_t errlen) {
  struct tks_checkpoint_load *l = calloc(1, sizeof *l);
  if (!l) {
    close(fd);
    set_err(err, errlen, "%s: out of memory", name);
    return NULL;
  }
  l->fd = fd;
  l->t = *t;
  snprintf(l->name, sizeof l->name, "%s", name);
  struct stat sb;
  if (fstat(fd, &sb) < 0) {
    failf(l, 0, -errno, "%s", strerror(errno));
    goto fail;
  }
  if (!S_ISREG(sb.st_mode)) {
    failf(l, 0, -EINVAL, "not a regular file");
    goto fail;
  }
  l->size = (uint64_t)sb.st_size;
  if (tks_store_ticks(t->store) || tks_symtab_count(t->symbols) || tks_symtab_count(t->strings) ||
      tks_symtab_count(t->names)) {
    failf(l, 0, -EINVAL, "the store to load into is not empty");
    goto fail;
  }
  uint8_t fh[FILE_HEADER];
  if (l->size < FILE_HEADER) {
    failf(l, 0, -EBADMSG, "%" PRIu64 " bytes: not a checkpoint (truncated?)", l->size);
    goto fail;
  }
  if (read_at(l, fh, sizeof fh, 0)) goto fail;
  if (memcmp(fh, MAGIC, 8) != 0) {
    failf(l, 0, -EBADMSG, "not a checkpoint (no TKSCKPT1 magic)");
    goto fail;
  }
  if (le32(fh + 8) != TKS_CHECKPOINT_VERSION || le32(fh + 12) != 0) {
    failf(l, 8, -EBADMSG, "checkpoint format version %" PRIu32 ", this build reads %d",
          le32(fh + 8), TKS_CHECKPOINT_VERSION);
    goto fail;
  }
  l->off = FILE_HEADER;
  uint32_t type, len;
  if (read_chunk(l, &type, &len)) goto fail;
  if (type != CK_HEADER) {
    failf(l, FILE_HEADER, -EBADMSG, "the first chunk is not HEADER");
    goto fail;
  }
  if (parse_header(l, l->buf, len)) goto fail;
  l->hdr.bytes = l->size;
  l->tables_at = FILE_HEADER + CHUNK_HEADER + len;
  begin_pass(l);
  return l;

fail:
  set_err(err, errlen, "%s", l->err);
  tks_checkpoint_close(l);
  return NULL;
}

struct tks_checkpoint_load *tks_checkpoint_open(const char *path,
                                                const struct tks_checkpoint_target *t, char *err,
                                                size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    set_err(err, errlen, "%s: %s", path, strerror(errno));
    return NULL;
  }
  return tks_checkpoint_open_fd(fd, path, t, err, errlen);
}

const struct tks_checkpoint_info *tks_checkpoint_header(const struct tks_checkpoint_load *l) {
  return &l->hdr;
}

/* ---- tables ---- */

static int load_table(struct tks_checkpoint_load *l, uint32_t type, const uint8_t *p,
                      uint32_t len) {
  uint64_t off = l->off;
  static const uint32_t types[NTABS] = {CK_SYMBOLS, CK_STRINGS, CK_NAMES};
  static const char *const what[NTABS] = {"symbol", "string", "field-name"};
  if (l->table >= NTABS || type != types[l->table])
    return failf(l, off, -EBADMSG, "a table chunk out of order");
  if (len < 8) return failf(l, off, -EBADMSG, "table chunk of %" PRIu32 " bytes", len);
  uint32_t first = le32(p), n = le32(p + 4);
  uint32_t total = l->table == TAB_SYMBOLS   ? l->hdr.symbols
                   : l->table == TAB_STRINGS ? l->hdr.strings
                                             : l->hdr.names;
  if (first != l->next_id || n == 0 || n > total - (first - 1))
    return failf(l, off, -EBADMSG,
                 "%s table chunk of ids %" PRIu32 "+%" PRIu32 ", expected %" PRIu32, what[l->table],
                 first, n, l->next_id);
  struct tks_symtab *tabs[NTABS] = {l->t.symbols, l->t.strings, l->t.names};
  size_t pos = 8;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t id = first + i;
    if (pos >= len) return failf(l, off, -EBADMSG, "%s table chunk cut short", what[l->table]);
    uint8_t sl = p[pos];
    if (sl == 0 || sl > len - pos - 1)
      return failf(l, off, -EBADMSG, "%s %" PRIu32 ": bad length %u", what[l->table], id, sl);
    const char *s = (const char *)p + pos + 1;
    /* The rules the decoder applied when it interned them. */
    unsigned bad = l->table == TAB_SYMBOLS   ? ~0u
                   : l->table == TAB_STRINGS ? (unsigned)TKS_UTF8_INVALID
                                             : (unsigned)(TKS_UTF8_INVALID | TKS_UTF8_CONTROL);
    if (tks_utf8_scan(s, sl) & bad)
      return failf(l, off, -EBADMSG, "%s %" PRIu32 ": not a valid %s", what[l->table], id,
                   what[l->table]);
    if (l->table == TAB_NAMES) {
      /* Which declared field each name is, old and new. */
      l->name_a[id] = (int8_t)tks_schema_find(&l->a, s, sl);
      l->name_b[id] = (int8_t)tks_schema_find(l->t.schema, s, sl);
    }
    if (l->pass == 1) {
      uint32_t got;
      int r = tks_symtab_intern(tabs[l->table], s, sl, &got);
      if (r == -ENOSPC)
        return failf(l, off, r,
                     "the %s table is full at id %" PRIu32 " of %" PRIu32
                     " (store.max_symbols / store.max_strings)",
                     what[l->table], id, total);
      if (r) return failf(l, off, r, "%s %" PRIu32 ": %s", what[l->table], id, strerror(-r));
      if (got != id)
        return failf(l, off, -EBADMSG, "%s %" PRIu32 " is a duplicate of id %" PRIu32,
                     what[l->table], id, got);
    }
    pos += 1 + (size_t)sl;
  }
  if (pos != len)
    return failf(l, off, -EBADMSG, "%s table chunk with bytes after its entries", what[l->table]);
  l->next_id = first + n;
  if (l->next_id - 1 == total) {
    l->table++;
    l->next_id = 1;
    while (l->table < NTABS) {
      uint32_t t2 = l->table == TAB_STRINGS ? l->hdr.strings : l->hdr.names;
      if (t2) break;
      l->table++;
    }
  }
  return 0;
}

/* ---- ticks ---- */

/* The ids, bools of a record of the old schema. */
static bool record_ok(const struct tks_checkpoint_load *l, const uint8_t *rec) {
  for (unsigned i = 0; i < l->ncheck; i++) {
    const uint8_t *at = rec + l->check[i].off;
    uint32_t id;
    switch (l->check[i].type) {
    case TKS_TYPE_SYMBOL:
      memcpy(&id, at, 4);
      if (id > l->hdr.symbols) return false;
      break;
    case TKS_TYPE_STRING:
      memcpy(&id, at, 4);
      if (id > l->hdr.strings) return false;
      break;
    case TKS_TYPE_BOOL:
      if (*at > 1) return false;
      break;
    default: break;
    }
  }
  return true;
}

/* An overflow map or dynamic object at p (len bytes): well formed, its
 * ids in range, its strings UTF-8, and a map holding no declared field. */
static int object_ok(struct tks_checkpoint_load *l, const uint8_t *p, size_t len, bool map,
                     uint64_t off) {
  const char *why;
  if (tks_dynobj_check(p, len, &why)) return failf(l, off, -EBADMSG, "%s", why);
  const struct tks_dynobj *o = (const struct tks_dynobj *)p;
  const struct tks_dyn_slot *e = tks_dynobj_entries(o);
  for (unsigned i = 0; i < o->count; i++) {
    const struct tks_dyn_slot *s = &e[i];
    if (s->key > l->hdr.names) return failf(l, off, -EBADMSG, "object field-name id out of range");
    if (map && l->name_a[s->key] >= 0)
      return failf(l, off, -EBADMSG, "overflow map holds the declared field %s",
                   l->a.fields[l->name_a[s->key]].name);
    if ((s->type == TKS_V_SYM && s->v.id > l->hdr.symbols) ||
        (s->type == TKS_V_ISTR && s->v.id > l->hdr.strings))
      return failf(l, off, -EBADMSG, "object value id out of range");
    if (s->type == TKS_V_STR && !tks_utf8_valid(tks_dynobj_str(o, s), s->len))
      return failf(l, off, -EBADMSG, "object string not UTF-8");
  }
  return 0;
}

static void lt_add(struct ltick *t, uint32_t key, const char *name, int bf,
                   const struct tks_value *v) {
  if (bf >= 0) t->b2l[bf] = (int)t->n;
  t->f[t->n++] = (struct lfield){.key = key, .name = name, .bf = bf, .v = *v};
}

/* Takes a tick apart: the old record's fields (an optional one holding its
 * default counts as absent, as the decoder wrote absent ones), then those
 * of its map or object. */
static void take_apart(const struct tks_checkpoint_load *l, const uint8_t *rec,
                       const struct tks_dynobj *o, struct ltick *t) {
  t->n = 0;
  for (unsigned i = 0; i < l->t.schema->nfields; i++) t->b2l[i] = -1;
  const struct tks_schema *a = &l->a;
  for (unsigned i = 0; rec && i < a->nfields; i++) {
    const struct tks_field *f = &a->fields[i];
    if ((int)i != a->ts_field && !f->required && memcmp(rec + f->offset, &f->dflt, f->size) == 0)
      continue;
    struct tks_value v = tks_field_value(f, rec);
    lt_add(t, 0, f->name, l->a2b[i], &v);
  }
  if (!o) return;
  const struct tks_dyn_slot *e = tks_dynobj_entries(o);
  for (unsigned i = 0; i < o->count; i++) {
    struct tks_value v = tks_dynobj_value(o, &e[i]);
    lt_add(t, e[i].key, NULL, l->name_b[e[i].key], &v);
  }
}

/* v into target field bi of rec, by the decoder's rules (put_field); a
 * string is interned when apply.  Returns 0, FAIL_TYPE or FAIL_VALUE, or
 * -errno (a table full). */
static int fit(struct tks_checkpoint_load *l, int bi, const struct tks_value *v, char *rec,
               bool apply) {
  const struct tks_schema *b = l->t.schema;
  const struct tks_field *f = &b->fields[bi];
  char *at = rec + f->offset;
  switch (f->type) {
  case TKS_TYPE_TIMESTAMP:
  case TKS_TYPE_I64:
    if (v->type == TKS_V_INT) return memcpy(at, &v->v.i, 8), 0;
    return v->type == TKS_V_UINT ? FAIL_VALUE : FAIL_TYPE;
  case TKS_TYPE_U32:
    if (v->type == TKS_V_INT && v->v.i >= 0 && v->v.i <= UINT32_MAX) {
      uint32_t u = (uint32_t)v->v.i;
      return memcpy(at, &u, 4), 0;
    }
    return v->type == TKS_V_INT || v->type == TKS_V_UINT ? FAIL_VALUE : FAIL_TYPE;
  case TKS_TYPE_F64: {
    double x;
    if (v->type == TKS_V_F64)
      x = v->v.f;
    else if (v->type == TKS_V_INT)
      x = (double)v->v.i;
    else if (v->type == TKS_V_UINT)
      x = (double)v->v.u;
    else
      return FAIL_TYPE;
    if (!isfinite(x)) return FAIL_VALUE;
    return memcpy(at, &x, 8), 0;
  }
  case TKS_TYPE_BOOL:
    if (v->type != TKS_V_BOOL) return FAIL_TYPE;
    *(bool *)at = v->v.b;
    return 0;
  case TKS_TYPE_SYMBOL:
  case TKS_TYPE_STRING: {
    bool sym = f->type == TKS_TYPE_SYMBOL;
    if (v->type == (sym ? TKS_V_SYM : TKS_V_ISTR)) return memcpy(at, &v->v.id, 4), 0;
    if (v->type != TKS_V_STR) return FAIL_TYPE;
    if (v->v.s.len > TKS_SYMBOL_MAX_LEN || (bi == b->symbol_field && v->v.s.len == 0) ||
        (tks_utf8_scan(v->v.s.p, v->v.s.len) & (sym ? ~0u : (unsigned)TKS_UTF8_INVALID)))
      return FAIL_VALUE;
    uint32_t id = 0;
    if (apply) {
      int r = tks_symtab_intern(sym ? l->t.symbols : l->t.strings, v->v.s.p, v->v.s.len, &id);
      if (r) return r < 0 ? r : -EIO;
    }
    return memcpy(at, &id, 4), 0;
  }
  case TKS_TYPE__COUNT: break;
  }
  return FAIL_TYPE;
}

/* The name id of a field for a new object: interned when it has none. */
static int name_id(struct tks_checkpoint_load *l, const char *name, uint32_t *id) {
  int r = tks_symtab_intern(l->t.names, name, strlen(name), id);
  return r == -ENOSPC ? -ENOSPC : r;
}

/* A new object of the fields in (keys, vals), n of them, from the store's
 * slab; NULL with *rc set. */
static struct tks_dynobj *make_obj(struct tks_checkpoint_load *l, const uint32_t *keys,
                                   const struct tks_value *vals, unsigned n, int *rc) {
  size_t sbytes = 0;
  for (unsigned i = 0; i < n; i++)
    if (vals[i].type == TKS_V_STR) sbytes += vals[i].v.s.len;
  if (!tks_store_dynobj_fits(l->t.store, n, sbytes)) {
    *rc = -E2BIG;
    return NULL;
  }
  struct tks_dynobj *o = tks_store_new_dynobj(l->t.store, n, sbytes);
  if (!o) {
    *rc = -ENOMEM;
    return NULL;
  }
  for (unsigned i = 0; i < n; i++)
    if (tks_dynobj_put(o, keys[i], &vals[i])) {
      tks_store_drop_dynobj(l->t.store, o);
      *rc = -EBADMSG; /* a key twice */
      return NULL;
    }
  return o;
}

/* A symbol or string id that leaves a declared field becomes its text, as
 * replay would keep an undeclared string. */
static struct tks_value undeclared_value(const struct tks_checkpoint_load *l,
                                         const struct tks_value *v) {
  if (v->type != TKS_V_SYM && v->type != TKS_V_ISTR) return *v;
  size_t len = 0;
  const char *s = tks_symtab_name(v->type == TKS_V_SYM ? l->t.symbols : l->t.strings, v->v.id,
                                  &len);
  struct tks_value out = {.type = TKS_V_STR, .v.s = {s ? s : "", s ? (uint32_t)len : 0}};
  return out;
}

/* The undeclared fields of a map or object just stored, in the usage table. */
static void note_stored(const struct tks_checkpoint_load *l, const struct tks_dynobj *o) {
  if (!l->t.usage) return;
  struct tks_tick_sink k = {l->t.store, l->t.usage, l->t.mode};
  tks_tick_note_stored(&k, l->t.schema, l->t.names, o);
}

/* Builds a tick taken apart again under the target's schema and mode, and
 * (apply) stores it; the first pass only counts what does not fit. */
static int rebuild(struct tks_checkpoint_load *l, struct ltick *t, uint64_t off) {
  const struct tks_schema *b = l->t.schema;
  bool apply = l->pass == 1;
  _Alignas(8) char rec[TKS_RECORD_MAX];
  memset(rec, 0, b->record_size);
  bool failed = false;
  for (unsigned bi = 0; bi < b->nfields; bi++) {
    const struct tks_field *f = &b->fields[bi];
    int li = t->b2l[bi];
    if (li < 0 || t->f[li].v.type == TKS_V_NIL) {
      if (f->required || (int)bi == b->ts_field) {
        l->fails[bi][FAIL_MISSING]++;
        failed = true;
      } else {
        memcpy(rec + f->offset, &f->dflt, f->size);
      }
      continue;
    }
    int r = fit(l, (int)bi, &t->f[li].v, rec, apply);
    if (r < 0)
      return failf(l, off, r, "field %s: %s (the %s table is full?)", f->name, strerror(-r),
                   f->type == TKS_TYPE_SYMBOL ? "symbol" : "string");
    if (r > 0) {
      if (!l->fails[bi][FAIL_TYPE] && !l->fails[bi][FAIL_VALUE])
        l->fail_vtype[bi] = t->f[li].v.type;
      l->fails[bi][r]++;
      failed = true;
    }
  }
  if (failed) {
    if (apply) return failf(l, off, -EBADMSG, "a tick the first pass found convertible is not");
    return 0;
  }
  if (!apply) return 0;

  unsigned leftovers = 0;
  for (unsigned i = 0; i < t->n; i++) leftovers += t->f[i].bf < 0;
  uint32_t symbol;
  int64_t ts;
  memcpy(&symbol, rec + b->fields[b->symbol_field].offset, 4);
  memcpy(&ts, rec + b->fields[b->ts_field].offset, 8);
  struct tks_store *st = l->t.store;
  int r = 0;
  if (l->t.mode == TKS_MODE_SLOTTED || (l->t.mode == TKS_MODE_FALLBACK && leftovers == 0)) {
    if (leftovers) l->dropped_ticks++, l->dropped_fields += leftovers;
    r = tks_store_append(st, rec);
  } else {
    uint32_t keys[TKS_SCHEMA_MAX_FIELDS + TKS_DYNOBJ_MAX_FIELDS + 1];
    struct tks_value vals[TKS_SCHEMA_MAX_FIELDS + TKS_DYNOBJ_MAX_FIELDS + 1];
    unsigned n = 0;
    if (l->t.mode == TKS_MODE_DYNAMIC) {
      /* Declared fields first, in slot order, as they read back from the
       * record (the decoder's finish_dynamic): those present, and ts. */
      for (unsigned bi = 0; bi < b->nfields; bi++) {
        int li = t->b2l[bi];
        bool present = li >= 0 && t->f[li].v.type != TKS_V_NIL;
        if (!present && (int)bi != b->ts_field) continue;
        if ((r = name_id(l, b->fields[bi].name, &keys[n]))) break;
        vals[n++] = tks_field_value(&b->fields[bi], rec);
      }
    }
    for (unsigned i = 0; i < t->n && r == 0; i++) {
      const struct lfield *lf = &t->f[i];
      if (lf->bf >= 0) continue;
      keys[n] = lf->key;
      if (!keys[n] && (r = name_id(l, lf->name, &keys[n]))) break;
      vals[n++] = undeclared_value(l, &lf->v);
    }
    if (n > TKS_DYNOBJ_MAX_FIELDS && r == 0) r = -E2BIG;
    if (r)
      return failf(l, off, r, "a tick's fields: %s (the field-name table full?)", strerror(-r));
    struct tks_dynobj *o = make_obj(l, keys, vals, n, &r);
    if (!o)
      return failf(l, off, r, "%s",
                   r == -E2BIG ? "a converted tick does not fit a slab page"
                               : "out of memory (limits.max_memory?)");
    r = l->t.mode == TKS_MODE_DYNAMIC ? tks_store_append_dynamic(st, symbol, ts, o)
                                      : tks_store_append_overflow(st, rec, o);
    if (r)
      tks_store_drop_dynobj(st, o);
    else
      note_stored(l, o);
  }
  if (r) return failf(l, off, r, "out of memory storing a tick (limits.max_memory?)");
  return 0;
}

static int grow(void **p, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t ncap = *cap ? *cap : 4096;
  while (ncap < need) ncap *= 2;
  void *np = realloc(*p, ncap);
  if (!np) return -ENOMEM;
  *p = np;
  *cap = ncap;
  return 0;
}

/* Appends the scratch entries built for a run (raw overflow, dynamic). */
static int append_scratch(struct tks_checkpoint_load *l, uint32_t rep, uint32_t sym, uint32_t n,
                          uint64_t off) {
  uint32_t done = 0;
  int r = tks_store_append_many(l->t.store, rep, sym, l->scratch, n, &done);
  for (uint32_t i = 0; i < done; i++) note_stored(l, l->objs[i]);
  for (uint32_t i = done; i < n; i++) tks_store_drop_dynobj(l->t.store, l->objs[i]);
  if (r == -EINVAL) return failf(l, off, -EBADMSG, "ticks of symbol %" PRIu32 " out of order", sym);
  if (r) return failf(l, off, r, "out of memory storing ticks (limits.max_memory?)");
  return 0;
}

/* Appends the records the plan converted into scratch (target layout). */
static int flush_batch(struct tks_checkpoint_load *l, uint32_t sym, uint64_t off) {
  uint32_t done, n = l->batched;
  l->batched = 0;
  int r = tks_store_append_many(l->t.store, TKS_STORE_SLOTTED, sym, l->scratch, n, &done);
  if (r == -EINVAL) return failf(l, off, -EBADMSG, "ticks of symbol %" PRIu32 " out of order", sym);
  if (r) return failf(l, off, r, "out of memory storing ticks (limits.max_memory?)");
  return 0;
}

/* One run at p (its header included, avail bytes left in the chunk).
 * Returns its length or a negative error. */
static long load_run(struct tks_checkpoint_load *l, const uint8_t *p, size_t avail, uint64_t off) {
  if (avail < RUN_HEADER) return failf(l, off, -EBADMSG, "a run header cut short");
  uint32_t sym = le32(p), rep = le32(p + 4), count = le32(p + 8);
  if (rep >= TKS_STORE_REPS || count == 0 || le32(p + 12) != 0)
    return failf(l, off, -EBADMSG, "bad run header (representation %" PRIu32 ", %" PRIu32 " ticks)",
                 rep, count);
  if (sym > l->hdr.symbols)
    return failf(l, off, -EBADMSG, "symbol id %" PRIu32 " out of range (%" PRIu32 " symbols)", sym,
                 l->hdr.symbols);
  if (l->any_sym && sym < l->sym)
    return failf(l, off, -EBADMSG, "symbol %" PRIu32 " after symbol %" PRIu32, sym, l->sym);
  if (!l->any_sym || sym != l->sym) {
    l->series++;
    l->last_ts = INT64_MIN;
  }
  l->any_sym = true;
  l->sym = sym;
  if (l->rep_ticks[rep] + count > l->hdr.rep_ticks[rep])
    return failf(l, off, -EBADMSG, "more %s ticks than the header says", rep_names[rep]);

  const struct tks_schema *a = &l->a;
  uint32_t rs = a->record_size, sym_off = a->fields[a->symbol_field].offset;
  uint32_t ts_off = a->fields[a->ts_field].offset;
  bool apply = l->pass == 1, raw = l->raw[rep];
  size_t pos = RUN_HEADER;
  /* Each entry takes its record or 16 bytes at least: a count the chunk
   * cannot hold is refused before anything is sized by it. */
  size_t least = rep == TKS_STORE_SLOTTED ? rs : rep == TKS_STORE_OVERFLOW ? rs + 8 : 16;
  if (count > (avail - RUN_HEADER) / least)
    return failf(l, off, -EBADMSG, "a run of %" PRIu32 " %s ticks cut short", count,
                 rep_names[rep]);
  struct tks_store *st = l->t.store;
  uint32_t esize = tks_store_entry_size(st, rep);
  bool planned = !raw && rep == TKS_STORE_SLOTTED && l->plan;
  if (apply && raw && rep != TKS_STORE_SLOTTED &&
      (grow((void **)&l->scratch, &l->scratchcap, (size_t)count * esize) ||
       grow((void **)&l->objs, &l->objscap, (size_t)count * sizeof *l->objs)))
    return failf(l, off, -ENOMEM, "out of memory");
  uint32_t brs = l->t.schema->record_size;
  if (apply && planned && grow((void **)&l->scratch, &l->scratchcap, (size_t)count * brs))
    return failf(l, off, -ENOMEM, "out of memory");
  l->batched = 0;
  struct ltick *t = &l->lt;
  uint32_t built = 0;
  int rc = 0;
  for (uint32_t i = 0; i < count && rc == 0; i++) {
    const uint8_t *rec = NULL, *obj = NULL;
    size_t objlen = 0;
    int64_t ts;
    if (rep == TKS_STORE_DYNAMIC) {
      if (avail - pos < 16) goto cut;
      ts = (int64_t)le64(p + pos);
      objlen = le32(p + pos + 8);
      if (le32(p + pos + 12) != 0) {
        rc = failf(l, off, -EBADMSG, "bad dynamic entry");
        break;
      }
      pos += 16;
    } else {
      if (avail - pos < rs) goto cut;
      rec = p + pos;
      pos += rs;
      uint32_t rsym;
      memcpy(&rsym, rec + sym_off, 4);
      memcpy(&ts, rec + ts_off, 8);
      if (rsym != sym) {
        rc = failf(l, off, -EBADMSG, "a record of symbol %" PRIu32 " in a run of symbol %" PRIu32,
                   rsym, sym);
        break;
      }
      if (!record_ok(l, rec)) {
        rc = failf(l, off, -EBADMSG, "a record with an id or bool out of range");
        break;
      }
      if (rep == TKS_STORE_OVERFLOW) {
        if (avail - pos < 8) goto cut;
        objlen = le32(p + pos);
        if (le32(p + pos + 4) != 0) {
          rc = failf(l, off, -EBADMSG, "bad overflow entry");
          break;
        }
        pos += 8;
      }
    }
    if (ts < l->last_ts) {
      rc = failf(l, off, -EBADMSG, "ticks of symbol %" PRIu32 " out of time order", sym);
      break;
    }
    l->last_ts = ts;
    if (rep != TKS_STORE_SLOTTED) {
      if (objlen > avail - pos) goto cut;
      obj = p + pos;
      pos += objlen;
      if ((rc = object_ok(l, obj, objlen, rep == TKS_STORE_OVERFLOW, off))) break;
    }
    if (raw) {
      if (!apply || rep == TKS_STORE_SLOTTED) continue;
      struct tks_dynobj *o = tks_store_copy_dynobj(st, obj, objlen);
      if (!o) {
        rc = failf(l, off, -ENOMEM, "out of memory storing an object (limits.max_memory?)");
        break;
      }
      l->objs[built] = o;
      tks_store_entry_make(st, rep, l->scratch + (size_t)built * esize, rec, sym, ts, o);
      built++;
      continue;
    }
    if (planned) {
      _Alignas(8) char one[TKS_RECORD_MAX];
      char *out = apply ? (char *)l->scratch + (size_t)l->batched * brs : one;
      unsigned left = plan_record(l, rec, out);
      if (left == 0 || l->t.mode == TKS_MODE_SLOTTED) {
        if (apply) {
          if (left) l->dropped_ticks++, l->dropped_fields += left;
          l->batched++;
        }
        continue;
      }
      /* A value the target keeps in a map: this one is taken apart, after
       * the records before it are stored (time order). */
      if (apply && (rc = flush_batch(l, sym, off))) break;
    }
    take_apart(l, rec, (const struct tks_dynobj *)obj, t);
    rc = rebuild(l, t, off);
  }
  if (rc == 0 && apply && planned) rc = flush_batch(l, sym, off);
  if (rc) {
    for (uint32_t i = 0; i < built; i++) tks_store_drop_dynobj(st, l->objs[i]);
    return rc;
  }
  if (apply && raw) {
    if (rep == TKS_STORE_SLOTTED) {
      uint32_t done;
      int r = tks_store_append_many(st, rep, sym, p + RUN_HEADER, count, &done);
      if (r == -EINVAL)
        return failf(l, off, -EBADMSG, "ticks of symbol %" PRIu32 " out of order", sym);
      if (r) return failf(l, off, r, "out of memory storing ticks (limits.max_memory?)");
    } else if ((rc = append_scratch(l, rep, sym, built, off))) {
      return rc;
    }
  }
  l->rep_ticks[rep] += count;
  l->ticks += count;
  return (long)pos;

cut:
  for (uint32_t i = 0; i < built; i++) tks_store_drop_dynobj(st, l->objs[i]);
  return failf(l, off, -EBADMSG, "a run of %" PRIu32 " %s ticks cut short", count, rep_names[rep]);
}

static int load_ticks(struct tks_checkpoint_load *l, const uint8_t *p, uint32_t len) {
  if (l->table < NTABS) return failf(l, l->off, -EBADMSG, "TICKS before the tables are whole");
  if (len == 0) return failf(l, l->off, -EBADMSG, "an empty TICKS chunk");
  size_t pos = 0;
  while (pos < len) {
    long n = load_run(l, p + pos, len - pos, l->off);
    if (n < 0) return (int)n;
    pos += (size_t)n;
  }
  return 0;
}

/* The first pass's verdict: the first target field some tick cannot take. */
static int conversion_verdict(struct tks_checkpoint_load *l) {
  const struct tks_schema *b = l->t.schema;
  for (unsigned bi = 0; bi < b->nfields; bi++) {
    const struct tks_field *f = &b->fields[bi];
    const uint64_t *n = l->fails[bi];
    if (n[FAIL_MISSING])
      return failf(l, l->off, -ENOTSUP,
                   "cannot convert to the current schema: field %s is %s but %" PRIu64
                   " ticks in the checkpoint lack it (%s)",
                   f->name, (int)bi == b->ts_field ? "the timestamp" : "required", n[FAIL_MISSING],
                   l->conversion);
    if (n[FAIL_TYPE] || n[FAIL_VALUE]) {
      static const char *const vnames[] = {"a nil",   "a bool",   "an int",      "a uint",
                                           "a float", "a string", "a symbol id", "a string id"};
      enum tks_vtype vt = l->fail_vtype[bi];
      return failf(l, l->off, -ENOTSUP,
                   "cannot convert to the current schema: field %s (%s) cannot take the values of "
                   "%" PRIu64 " ticks in the checkpoint (e.g. %s) (%s)",
                   f->name, tks_type_name(f->type), n[FAIL_TYPE] + n[FAIL_VALUE],
                   (unsigned)vt < TKS_ARRAY_SIZE(vnames) ? vnames[vt] : "?", l->conversion);
    }
  }
  return 0;
}

static int load_end(struct tks_checkpoint_load *l, const uint8_t *p, uint32_t len) {
  uint64_t off = l->off;
  if (l->table < NTABS) return failf(l, off, -EBADMSG, "END before the tables are whole");
  if (len != END_BYTES) return failf(l, off, -EBADMSG, "END chunk of %" PRIu32 " bytes", len);
  uint64_t ticks = le64(p), series = le64(p + 32), chunks = le64(p + 40), at = le64(p + 48);
  bool reps_ok = true;
  for (unsigned k = 0; k < TKS_STORE_REPS; k++)
    reps_ok &= le64(p + 8 + 8 * k) == l->hdr.rep_ticks[k] && l->rep_ticks[k] == l->hdr.rep_ticks[k];
  if (ticks != l->hdr.ticks || l->ticks != ticks || !reps_ok)
    return failf(l, off, -EBADMSG,
                 "%" PRIu64 " ticks read, the header says %" PRIu64 ", END says %" PRIu64, l->ticks,
                 l->hdr.ticks, ticks);
  if (series != l->hdr.series || l->series != series)
    return failf(l, off, -EBADMSG, "%" PRIu64 " series read, the header says %" PRIu64, l->series,
                 l->hdr.series);
  if (chunks != l->chunks || at != off)
    return failf(l, off, -EBADMSG, "END's chunk count or offset disagrees with the file");
  if (off + CHUNK_HEADER + len != l->size)
    return failf(l, off + CHUNK_HEADER + len, -EBADMSG, "bytes after the END chunk");
  l->hdr.chunks = chunks + 1;
  if (l->pass == 0) {
    int rc = conversion_verdict(l);
    if (rc) return rc;
    l->pass = 1;
    begin_pass(l);
    return 1; /* the second pass begins */
  }
  l->done = true;
  return 0;
}

int tks_checkpoint_next(struct tks_checkpoint_load *l, uint64_t budget, char *err, size_t errlen) {
  uint64_t start = l->off;
  int rc = l->rc;
  while (!rc && !l->done) {
    uint32_t type, len;
    uint64_t at = l->off;
    if ((rc = read_chunk(l, &type, &len))) break;
    switch (type) {
    case CK_SYMBOLS:
    case CK_STRINGS:
    case CK_NAMES: rc = load_table(l, type, l->buf, len); break;
    case CK_TICKS: rc = load_ticks(l, l->buf, len); break;
    case CK_END: rc = load_end(l, l->buf, len); break;
    default: rc = failf(l, at, -EBADMSG, "a second HEADER chunk"); break;
    }
    if (rc < 0) break;
    if (rc == 1) { /* the second pass begins: l->off is back at the tables */
      rc = 0;
      break;
    }
    l->off = at + CHUNK_HEADER + len;
    l->chunks++;
    if (l->off - start >= budget) break;
  }
  if (rc < 0) {
    set_err(err, errlen, "%s", l->err);
    return rc;
  }
  return l->done ? 0 : 1;
}

void tks_checkpoint_progress(const struct tks_checkpoint_load *l, uint64_t *done, uint64_t *total) {
  uint64_t passes = l->two_passes ? 2 : 1;
  *total = passes * l->size;
  uint64_t before = l->two_passes && l->pass == 1 ? l->size : 0;
  *done = l->done ? *total : before + l->off;
}

void tks_checkpoint_load_info(const struct tks_checkpoint_load *l,
                              struct tks_checkpoint_load_info *out) {
  memset(out, 0, sizeof *out);
  out->converted = l->convert;
  snprintf(out->conversion, sizeof out->conversion, "%s", l->conversion);
  out->ticks = l->pass == 1 ? l->ticks : 0;
  out->dropped_ticks = l->dropped_ticks;
  out->dropped_fields = l->dropped_fields;
}

void tks_checkpoint_close(struct tks_checkpoint_load *l) {
  if (!l) return;
  if (l->fd >= 0) close(l->fd);
  free(l->buf);
  free(l->scratch);
  free(l->objs);
  free(l->name_a);
  free(l->name_b);
  free(l);
}

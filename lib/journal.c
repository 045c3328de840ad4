/*
 * The journal (see journal.h for the format): a writer that buffers frames
 * in memory and writes them in large pwrite() batches to numbered segment
 * files, and a replay that maps each segment, checks every frame's length
 * and CRC32C, and tells a torn tail (cut, or refused, by policy) from
 * corruption with good frames after it (always refused); a thread checks a
 * large segment's CRCs ahead of the reader.  CRC32C uses the SSE4.2 crc32
 * instruction (three chains at once) when the CPU has it, else
 * slicing-by-8 tables.
 */
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define MAGIC "TKSJRNL1"
#define MIN_SEGMENT_BYTES (1ull << 20)
#define MAX_UNSYNCED 4             /* rotated segments kept open until the next fsync */
#define BUF_KEEP (8u << 20)        /* an empty write buffer larger than this is freed */
#define REPLAY_DROP_BEHIND (64u << 20) /* replay releases mapped pages in steps of this */
#define VERIFY_MIN (256u << 10)        /* a segment this large gets a verify-ahead thread */
#define VERIFY_LEAD (16u << 20)        /* how far it runs ahead of the reader at most */

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
/* An 8-byte little-endian load that compiles to one mov on x86. */
static inline uint64_t load_le64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

/* ---- CRC32C ------------------------------------------------------------ */

static uint32_t crc_tab[8][256];
static bool crc_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

/* The SSE4.2 path runs three crc32 chains side by side over three blocks of
 * CRC_LONG (or CRC_SHORT) bytes, then folds them into one with the operator
 * "append that many zero bytes" (as Mark Adler's crc32c.c does): the
 * instruction's latency is three times its throughput, so one chain uses a
 * third of it.  crc_long and crc_short apply the operator a byte of the CRC
 * at a time; both lengths are powers of two. */
#define CRC_LONG 8192
#define CRC_SHORT 256
static uint32_t crc_long[4][256], crc_short[4][256];

/* A 32x32 matrix over GF(2) (mat[j]: the image of bit j) times vec. */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec) {
  uint32_t sum = 0;
  for (; vec; vec >>= 1, mat++)
    if (vec & 1) sum ^= *mat;
  return sum;
}

/* The tables of the operator that appends `bytes` zero bytes (a power of
 * two) to a CRC register. */
static void crc_zeros_tables(uint32_t tab[4][256], size_t bytes) {
  uint32_t op[32], sq[32];
  op[0] = 0x82F63B78u; /* one zero bit */
  for (int j = 1; j < 32; j++) op[j] = 1u << (j - 1);
  for (size_t bits = 1; bits < 8 * bytes; bits *= 2) {
    for (int j = 0; j < 32; j++) sq[j] = gf2_times(op, op[j]);
    memcpy(op, sq, sizeof op);
  }
  for (uint32_t n = 0; n < 256; n++)
    for (int k = 0; k < 4; k++) tab[k][n] = gf2_times(op, n << (8 * k));
}

static inline uint32_t crc_shift(const uint32_t tab[4][256], uint32_t c) {
  return tab[0][c & 0xff] ^ tab[1][(c >> 8) & 0xff] ^ tab[2][(c >> 16) & 0xff] ^ tab[3][c >> 24];
}

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    crc_tab[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int k = 1; k < 8; k++)
      crc_tab[k][i] = (crc_tab[k - 1][i] >> 8) ^ crc_tab[0][crc_tab[k - 1][i] & 0xff];
#if defined(__x86_64__)
  __builtin_cpu_init();
  crc_hw = __builtin_cpu_supports("sse4.2");
  if (crc_hw) {
    crc_zeros_tables(crc_long, CRC_LONG);
    crc_zeros_tables(crc_short, CRC_SHORT);
  }
#endif
}

uint32_t tks_crc32c_sw(uint32_t crc, const void *data, size_t len) {
  pthread_once(&crc_once, crc_init);
  const uint8_t *p = data;
  crc = ~crc;
  while (len && ((uintptr_t)p & 7)) {
    crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p++) & 0xff];
    len--;
  }
  while (len >= 8) {
    uint64_t w = load_le64(p) ^ crc;
    crc = crc_tab[7][w & 0xff] ^ crc_tab[6][(w >> 8) & 0xff] ^ crc_tab[5][(w >> 16) & 0xff] ^
          crc_tab[4][(w >> 24) & 0xff] ^ crc_tab[3][(w >> 32) & 0xff] ^
          crc_tab[2][(w >> 40) & 0xff] ^ crc_tab[1][(w >> 48) & 0xff] ^ crc_tab[0][w >> 56];
    p += 8;
    len -= 8;
  }
  while (len--) crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p++) & 0xff];
  return ~crc;
}

#if defined(__x86_64__)
/* The CRC register c after the 3 * block bytes at p (block a multiple of
 * 32), three chains side by side, folded with tab (see CRC_LONG). */
__attribute__((target("sse4.2"), always_inline)) static inline uint64_t
crc3_sse42(uint64_t c, const uint8_t *p, size_t block, const uint32_t tab[4][256]) {
  uint64_t c1 = 0, c2 = 0;
  for (const uint8_t *end = p + block; p < end; p += 32) {
    uint64_t w[12];
    for (int k = 0; k < 4; k++) {
      memcpy(&w[k], p + 8 * k, 8);
      memcpy(&w[4 + k], p + block + 8 * k, 8);
      memcpy(&w[8 + k], p + 2 * block + 8 * k, 8);
    }
    for (int k = 0; k < 4; k++) {
      c = __builtin_ia32_crc32di(c, w[k]);
      c1 = __builtin_ia32_crc32di(c1, w[4 + k]);
      c2 = __builtin_ia32_crc32di(c2, w[8 + k]);
    }
  }
  c = crc_shift(tab, (uint32_t)c) ^ c1;
  return crc_shift(tab, (uint32_t)c) ^ c2;
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const void *data,
                                                               size_t len) {
  const uint8_t *p = data;
  uint64_t c = ~crc;
  while (len && ((uintptr_t)p & 7)) {
    c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    len--;
  }
  /* Three chains over three blocks, folded (see CRC_LONG). */
  while (len >= 3 * CRC_LONG) {
    c = crc3_sse42(c, p, CRC_LONG, crc_long);
    p += 3 * CRC_LONG;
    len -= 3 * CRC_LONG;
  }
  while (len >= 3 * CRC_SHORT) {
    c = crc3_sse42(c, p, CRC_SHORT, crc_short);
    p += 3 * CRC_SHORT;
    len -= 3 * CRC_SHORT;
  }
  /* Four independent loads per round keep the loop overhead off the
   * crc32 instruction's dependency chain. */
  while (len >= 32) {
    uint64_t w0, w1, w2, w3;
    memcpy(&w0, p, 8);
    memcpy(&w1, p + 8, 8);
    memcpy(&w2, p + 16, 8);
    memcpy(&w3, p + 24, 8);
    c = __builtin_ia32_crc32di(c, w0);
    c = __builtin_ia32_crc32di(c, w1);
    c = __builtin_ia32_crc32di(c, w2);
    c = __builtin_ia32_crc32di(c, w3);
    p += 32;
    len -= 32;
  }
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    c = __builtin_ia32_crc32di(c, w);
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    c = __builtin_ia32_crc32si((uint32_t)c, w);
    p += 4;
    len -= 4;
  }
  while (len--) c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
  return ~(uint32_t)c;
}
#endif

bool tks_crc32c_hw_available(void) {
  pthread_once(&crc_once, crc_init);
  return crc_hw;
}

uint32_t tks_crc32c_hw(uint32_t crc, const void *data, size_t len) {
#if defined(__x86_64__)
  if (tks_crc32c_hw_available()) return crc32c_sse42(crc, data, len);
#endif
  return tks_crc32c_sw(crc, data, len);
}

uint32_t tks_crc32c(uint32_t crc, const void *data, size_t len) {
  return tks_crc32c_hw(crc, data, len);
}

/* ---- helpers ------------------------------------------------------------ */

const char *const tks_on_corrupt_names[TKS_ON_CORRUPT_COUNT] = {"truncate", "refuse"};

const char *tks_on_corrupt_name(enum tks_on_corrupt p) {
  return (unsigned)p < TKS_ON_CORRUPT_COUNT ? tks_on_corrupt_names[p] : "?";
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* "journal-" 20 digits ".tkj", nothing else. */
static bool parse_segment_name(const char *name, uint64_t *seq) {
  if (strncmp(name, "journal-", 8) != 0) return false;
  uint64_t v = 0;
  for (int i = 0; i < 20; i++) {
    char ch = name[8 + i];
    if (ch < '0' || ch > '9') return false;
    unsigned d = (unsigned)(ch - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (strcmp(name + 28, ".tkj") != 0) return false;
  *seq = v;
  return true;
}

static void segment_name(char out[40], uint64_t seq) {
  snprintf(out, 40, "journal-%020" PRIu64 ".tkj", seq);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The segments of an open directory, sorted by sequence; with their total
 * size when bytes is given.  Returns 0 or -errno. */
static int list_segments(int dirfd, uint64_t **out, size_t *n, uint64_t *bytes) {
  int fd = dup(dirfd);
  if (fd < 0) return -errno;
  DIR *d = fdopendir(fd);
  if (!d) {
    int e = -errno;
    close(fd);
    return e;
  }
  rewinddir(d);
  uint64_t *v = NULL;
  size_t len = 0, cap = 0;
  uint64_t total = 0;
  int rc = 0;
  struct dirent *de;
  errno = 0;
  while ((de = readdir(d))) {
    uint64_t seq;
    if (!parse_segment_name(de->d_name, &seq)) continue;
    if (bytes) {
      struct stat st;
      if (fstatat(dirfd, de->d_name, &st, 0) == 0 && S_ISREG(st.st_mode))
        total += (uint64_t)st.st_size;
    }
    if (len == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      uint64_t *nv = realloc(v, ncap * sizeof *v);
      if (!nv) {
        rc = -ENOMEM;
        break;
      }
      v = nv, cap = ncap;
    }
    v[len++] = seq;
    errno = 0;
  }
  if (!rc && errno) rc = -errno;
  closedir(d);
  if (rc) {
    free(v);
    return rc;
  }
  if (len > 1) qsort(v, len, sizeof *v, cmp_u64);
  *out = v;
  *n = len;
  if (bytes) *bytes = total;
  return 0;
}

static int write_all_at(int fd, const uint8_t *p, size_t n, uint64_t off, size_t *done) {
  size_t w = 0;
  int rc = 0;
  while (w < n) {
    ssize_t r = pwrite(fd, p + w, n - w, (off_t)(off + w));
    if (r < 0) {
      if (errno == EINTR) continue;
      rc = -errno;
      break;
    }
    if (r == 0) {
      rc = -EIO;
      break;
    }
    w += (size_t)r;
  }
  if (done) *done = w;
  return rc;
}

/* ---- the writer ------------------------------------------------------- */

struct tks_journal {
  char *dir;
  int dirfd;
  uint64_t segment_bytes, max_bytes;
  int fd;             /* the current segment, -1 until the first flush with data */
  uint64_t seq;       /* of the current segment, or the newest existing one */
  uint64_t seg_size;  /* header and whole frames in the current segment */
  bool seg_dirty;     /* written since its last fsync */
  bool dir_dirty;     /* a segment was created since the last directory fsync */
  int sync_failed;    /* -errno of a failed fsync: sticky, see sync_all() */
  bool need_cut;      /* a failed write left bytes past seg_size that ftruncate could not cut */
  bool rotate;        /* tks_journal_rotate(): the next frame starts a new segment */
  int unsynced[MAX_UNSYNCED]; /* rotated-out segments written since their last fsync */
  unsigned n_unsynced;
  uint8_t *buf;       /* frames appended and not yet written, headers included */
  size_t len, cap;
  struct tks_journal_info info;
};

struct tks_journal *tks_journal_open(const char *dir, uint64_t segment_bytes, uint64_t max_bytes,
                                     char *err, size_t errlen) {
  struct tks_journal *j = calloc(1, sizeof *j);
  uint64_t *seqs = NULL;
  size_t n = 0;
  int rc = -ENOMEM;
  if (!j) goto fail;
  j->dirfd = -1;
  j->fd = -1;
  if (!(j->dir = strdup(dir))) goto fail;
  j->segment_bytes = segment_bytes < MIN_SEGMENT_BYTES ? MIN_SEGMENT_BYTES : segment_bytes;
  j->max_bytes = max_bytes;
  if ((rc = tks_mkdir_p(dir))) goto fail;
  j->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (j->dirfd < 0) {
    rc = -errno;
    goto fail;
  }
  if ((rc = list_segments(j->dirfd, &seqs, &n, &j->info.bytes))) goto fail;
  j->info.segments = n;
  j->seq = n ? seqs[n - 1] : 0;
  free(seqs);
  return j;

fail:
  set_err(err, errlen, "%s: %s", dir, strerror(-rc));
  if (j) {
    if (j->dirfd >= 0) close(j->dirfd);
    free(j->dir);
    free(j);
  }
  return NULL;
}

void tks_journal_close(struct tks_journal *j) {
  if (!j) return;
  for (unsigned i = 0; i < j->n_unsynced; i++) close(j->unsynced[i]);
  if (j->fd >= 0) close(j->fd);
  if (j->dirfd >= 0) close(j->dirfd);
  free(j->buf);
  free(j->dir);
  free(j);
}

int tks_journal_append(struct tks_journal *j, const void *payload, size_t len) {
  if (len == 0) return -EINVAL;
  if (len > TKS_JOURNAL_MAX_PAYLOAD) return -E2BIG;
  size_t need = TKS_JOURNAL_FRAME_HEADER + len;
  if (j->cap - j->len < need) {
    size_t ncap = j->cap ? j->cap : 64 * 1024;
    while (ncap - j->len < need) ncap *= 2;
    uint8_t *nb = realloc(j->buf, ncap);
    if (!nb) return -ENOMEM;
    j->buf = nb, j->cap = ncap;
  }
  uint8_t *p = j->buf + j->len;
  put_le32(p, (uint32_t)len);
  put_le32(p + 4, tks_crc32c(0, payload, len));
  memcpy(p + TKS_JOURNAL_FRAME_HEADER, payload, len);
  j->len += need;
  return 0;
}

size_t tks_journal_pending(const struct tks_journal *j) { return j->len; }

size_t tks_journal_buffer_bytes(const struct tks_journal *j) { return j->cap; }

void tks_journal_trim(struct tks_journal *j, size_t keep) {
  if (j->len || j->cap <= keep) return;
  free(j->buf);
  j->buf = NULL;
  j->cap = 0;
}

void tks_journal_set_max_bytes(struct tks_journal *j, uint64_t max_bytes) {
  j->max_bytes = max_bytes;
}

void tks_journal_info(const struct tks_journal *j, struct tks_journal_info *out) { *out = j->info; }

static size_t frame_len_at(const struct tks_journal *j, size_t off) {
  return TKS_JOURNAL_FRAME_HEADER + le32(j->buf + off);
}

/* fsyncs everything written since the last fsync: rotated-out segments, the
 * current one, and the directory when a segment was created.  Returns 0 or
 * the first -errno; *synced says whether there was anything to sync. */
static int sync_all(struct tks_journal *j, bool *synced) {
  int rc = 0;
  *synced = false;
  /* After a failed fsync the kernel may have dropped the pages it could not
   * write, and a later fsync succeeds without them: the failure is sticky,
   * nothing written since the last good fsync is ever reported synced. */
  if (j->sync_failed) return j->sync_failed;
  for (unsigned i = 0; i < j->n_unsynced; i++) {
    if (fdatasync(j->unsynced[i]) < 0 && !rc) rc = -errno;
    close(j->unsynced[i]); /* after a failed fsync Linux has dropped the pages: no retry */
    *synced = true;
  }
  j->n_unsynced = 0;
  if (j->fd >= 0 && j->seg_dirty) {
    if (fdatasync(j->fd) < 0 && !rc) rc = -errno;
    j->seg_dirty = false;
    *synced = true;
  }
  if (j->dir_dirty) {
    if (fsync(j->dirfd) < 0 && !rc) rc = -errno;
    j->dir_dirty = false;
    *synced = true;
  }
  if (rc) j->sync_failed = rc;
  return rc;
}

/* Creates the next segment and makes it current.  The one it replaces is
 * kept open until the next fsync if it has unsynced data. */
static int new_segment(struct tks_journal *j) {
  if (j->seq == UINT64_MAX) return -EOVERFLOW;
  uint64_t seq = j->seq + 1;
  char name[40];
  segment_name(name, seq);
  int fd = openat(j->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) return -errno;
  uint8_t hdr[TKS_JOURNAL_SEGMENT_HEADER];
  memcpy(hdr, MAGIC, 8);
  put_le64(hdr + 8, seq);
  int rc = write_all_at(fd, hdr, sizeof hdr, 0, NULL);
  if (rc) {
    close(fd);
    unlinkat(j->dirfd, name, 0);
    return rc;
  }
  if (j->fd >= 0) {
    if (!j->seg_dirty) {
      close(j->fd);
    } else {
      if (j->n_unsynced == MAX_UNSYNCED) {
        /* Many rotations without an fsync: settle the oldest now. */
        int old = j->unsynced[0];
        if (fdatasync(old) < 0) rc = j->sync_failed = -errno;
        close(old);
        memmove(j->unsynced, j->unsynced + 1, (MAX_UNSYNCED - 1) * sizeof(int));
        j->n_unsynced--;
      }
      j->unsynced[j->n_unsynced++] = j->fd;
    }
  }
  j->fd = fd;
  j->seq = seq;
  j->seg_size = TKS_JOURNAL_SEGMENT_HEADER;
  j->seg_dirty = true;
  j->dir_dirty = true;
  j->need_cut = false;
  j->rotate = false;
  j->info.bytes += TKS_JOURNAL_SEGMENT_HEADER;
  j->info.segments++;
  return rc;
}

/* Writes the frames buf[start, end) at the end of the current segment.  On a
 * failure, the whole frames that made it stay written, a partial one is cut
 * off again, and *written says how many bytes of whole frames were written. */
static int write_frames(struct tks_journal *j, size_t start, size_t end, size_t *written) {
  size_t done = 0;
  int rc = write_all_at(j->fd, j->buf + start, end - start, j->seg_size, &done);
  size_t whole = 0;
  uint64_t frames = 0;
  if (!rc) {
    whole = end - start;
    for (size_t o = start; o < end; o += frame_len_at(j, o)) frames++;
  } else {
    for (size_t o = start; o < end; o += frame_len_at(j, o)) {
      size_t fl = frame_len_at(j, o);
      if (whole + fl > done) break;
      whole += fl;
      frames++;
    }
  }
  if (done || whole) j->seg_dirty = true;
  j->seg_size += whole;
  j->info.bytes += whole;
  j->info.frames_written += frames;
  if (done > whole && ftruncate(j->fd, (off_t)j->seg_size) < 0) j->need_cut = true;
  *written = whole;
  return rc;
}

int tks_journal_flush(struct tks_journal *j, bool do_fsync) {
  int rc = 0;
  size_t off = 0;
  if (j->need_cut) {
    if (ftruncate(j->fd, (off_t)j->seg_size) < 0) {
      rc = -errno;
      goto done;
    }
    j->need_cut = false;
  }
  while (off < j->len) {
    size_t fl = frame_len_at(j, off);
    if (j->fd < 0 || j->rotate ||
        (j->seg_size > TKS_JOURNAL_SEGMENT_HEADER && j->seg_size + fl > j->segment_bytes)) {
      if (j->max_bytes && j->info.bytes + TKS_JOURNAL_SEGMENT_HEADER + fl > j->max_bytes) {
        rc = -ENOSPC;
        goto done;
      }
      if ((rc = new_segment(j))) goto done;
    }
    /* As many frames as fit in this segment and under the cap, in one write. */
    size_t end = off;
    uint64_t seg = j->seg_size, total = j->info.bytes;
    while (end < j->len) {
      size_t l = frame_len_at(j, end);
      if (end > off && seg + l > j->segment_bytes) break;
      if (j->max_bytes && total + l > j->max_bytes) break;
      seg += l, total += l, end += l;
    }
    if (end == off) {
      rc = -ENOSPC;
      goto done;
    }
    size_t written;
    rc = write_frames(j, off, end, &written);
    off += written;
    if (rc) goto done;
  }

done:
  if (off) {
    memmove(j->buf, j->buf + off, j->len - off);
    j->len -= off;
  }
  if (j->len == 0 && j->cap > BUF_KEEP) {
    free(j->buf);
    j->buf = NULL;
    j->cap = 0;
  }
  if (do_fsync) {
    /* Even after a failed write, make durable what was written, so that
     * frames_synced says what a crash would keep. */
    bool synced;
    uint64_t frames = j->info.frames_written;
    int src = sync_all(j, &synced);
    if (!src) {
      j->info.frames_synced = frames;
      if (synced) j->info.fsyncs++;
    } else if (!rc) {
      rc = src;
    }
  }
  if (rc) {
    j->info.write_errors++;
    j->info.last_error = rc;
  } else {
    j->info.last_error = 0;
  }
  return rc;
}

int tks_journal_rotate(struct tks_journal *j, uint64_t *next) {
  if (j->len) return -EBUSY;
  if (j->fd >= 0 && j->seg_size == TKS_JOURNAL_SEGMENT_HEADER) {
    *next = j->seq; /* no frame in it yet */
    return 0;
  }
  /* With no segment open, the next flush creates seq + 1 anyway. */
  j->rotate = j->fd >= 0;
  *next = j->seq + 1;
  return 0;
}

int tks_journal_remove_below(struct tks_journal *j, uint64_t seq) {
  uint64_t *seqs = NULL;
  size_t n = 0;
  int rc = list_segments(j->dirfd, &seqs, &n, NULL);
  if (rc) return rc;
  int removed = 0;
  for (size_t i = 0; i < n && seqs[i] < seq; i++) {
    if (j->fd >= 0 && seqs[i] == j->seq) continue;
    char name[40];
    segment_name(name, seqs[i]);
    struct stat st;
    uint64_t size = fstatat(j->dirfd, name, &st, 0) == 0 ? (uint64_t)st.st_size : 0;
    if (unlinkat(j->dirfd, name, 0) < 0) {
      if (errno == ENOENT) continue;
      rc = -errno;
      break;
    }
    removed++;
    j->info.bytes -= size < j->info.bytes ? size : j->info.bytes;
    if (j->info.segments) j->info.segments--;
  }
  free(seqs);
  if (removed && fsync(j->dirfd) < 0 && !rc) rc = -errno;
  return rc ? rc : removed;
}

/* ---- replay -------------------------------------------------------------- */

/* 1 if a frame with a plausible length and a matching CRC starts anywhere in
 * m[from, size), 0 if none does, -1 if the scan ran out of budget. */
static bool frame_ok(const uint8_t *m, uint64_t size, uint64_t p, uint32_t *len_out) {
  if (size - p < TKS_JOURNAL_FRAME_HEADER) return false;
  uint32_t len = le32(m + p);
  if (len == 0 || len > TKS_JOURNAL_MAX_PAYLOAD || len > size - p - TKS_JOURNAL_FRAME_HEADER)
    return false;
  *len_out = len;
  return tks_crc32c(0, m + p + TKS_JOURNAL_FRAME_HEADER, len) == le32(m + p + 4);
}

/* True if good frames run from p exactly to the end of the file. */
static bool chain_to_end(const uint8_t *m, uint64_t size, uint64_t p) {
  uint32_t len;
  while (p < size && frame_ok(m, size, p, &len)) p += TKS_JOURNAL_FRAME_HEADER + len;
  return p == size;
}

/* 1 if a frame with a plausible length and a matching CRC starts anywhere in
 * m[from, size) (and, with to_end, is the first of frames running exactly to
 * the end of the file), 0 if none does, -1 if the scan ran out of budget. */
static int good_frame_after(const uint8_t *m, uint64_t size, uint64_t from, bool to_end) {
  uint64_t budget = TKS_JOURNAL_SCAN_BUDGET;
  for (uint64_t p = from; p + TKS_JOURNAL_FRAME_HEADER < size; p++) {
    uint32_t len = le32(m + p);
    if (len == 0 || len > TKS_JOURNAL_MAX_PAYLOAD || len > size - p - TKS_JOURNAL_FRAME_HEADER)
      continue;
    if (len > budget) return -1;
    budget -= len;
    if (tks_crc32c(0, m + p + TKS_JOURNAL_FRAME_HEADER, len) == le32(m + p + 4) &&
        (!to_end || chain_to_end(m, size, p)))
      return 1;
  }
  return 0;
}

/* Keeps data[0, n) in "<path>.corrupt-<off>" (or .corrupt-<off>.<k> if that
 * exists), fsynced; its name in side.  Returns 0 or -errno. */
static int keep_side_file(const char *path, uint64_t off, const uint8_t *data, size_t n,
                          char side[PATH_MAX]) {
  int fd = -1;
  for (unsigned k = 0; k < 1000 && fd < 0; k++) {
    int w = k == 0 ? snprintf(side, PATH_MAX, "%s.corrupt-%" PRIu64, path, off)
                   : snprintf(side, PATH_MAX, "%s.corrupt-%" PRIu64 ".%u", path, off, k);
    if (w < 0 || w >= PATH_MAX) return -ENAMETOOLONG;
    fd = open(side, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0 && errno != EEXIST) return -errno;
  }
  if (fd < 0) return -EEXIST;
  int rc = write_all_at(fd, data, n, 0, NULL);
  if (!rc && fsync(fd) < 0) rc = -errno;
  close(fd);
  if (rc) unlink(side);
  return rc;
}

/* Copies s into a fixed field of a result, cut to fit. */
static void copy_field(char *dst, size_t cap, const char *s) {
  size_t n = strlen(s);
  if (n >= cap) n = cap - 1;
  memcpy(dst, s, n);
  dst[n] = 0;
}

struct segment {
  int dirfd;
  char name[40];
  char path[PATH_MAX + 48];
  uint64_t size;
  const uint8_t *data; /* the whole file: mapped, or read when shorter than a header */
};

/* A torn or corrupt tail of the newest segment at off: cut (keeping the cut
 * bytes in a side file) or refuse.  off == 0 is a torn header: the file is
 * removed. */
static int handle_tail(const struct segment *s, uint64_t off, enum tks_on_corrupt policy,
                       struct tks_replay_result *res, char *err, size_t errlen) {
  uint64_t cut = s->size - off;
  if (policy == TKS_CORRUPT_REFUSE) {
    if (off == 0)
      set_err(err, errlen,
              "%s: corrupt or torn journal tail at offset 0 (%" PRIu64 " bytes, a torn segment "
              "header); journal.on_corrupt is refuse: remove the file or set on_corrupt: truncate",
              s->path, cut);
    else
      set_err(err, errlen,
              "%s: corrupt or torn journal tail at offset %" PRIu64 " (%" PRIu64 " bytes); "
              "journal.on_corrupt is refuse: truncate the file to %" PRIu64 " bytes or set "
              "on_corrupt: truncate",
              s->path, off, cut, off);
    return -EBADMSG;
  }
  int rc = 0;
  const char *what = s->path;
  char side[PATH_MAX] = "";
  if (cut) {
    rc = keep_side_file(s->path, off, s->data + off, (size_t)cut, side);
    if (rc) {
      if (side[0]) what = side;
      goto fail;
    }
  }
  if (off == 0) {
    if (unlinkat(s->dirfd, s->name, 0) < 0) goto fail_errno;
  } else {
    int fd = openat(s->dirfd, s->name, O_WRONLY | O_CLOEXEC);
    if (fd < 0) goto fail_errno;
    if (ftruncate(fd, (off_t)off) < 0 || fsync(fd) < 0) {
      rc = -errno;
      close(fd);
      goto fail;
    }
    close(fd);
  }
  if (fsync(s->dirfd) < 0) goto fail_errno;
  res->truncated_bytes = cut;
  res->truncated_at = off;
  copy_field(res->truncated_file, sizeof res->truncated_file, s->path);
  copy_field(res->side_file, sizeof res->side_file, side);
  return 0;

fail_errno:
  rc = -errno;
fail:
  set_err(err, errlen, "%s: cutting a torn journal tail at offset %" PRIu64 ": %s", what, off,
          strerror(-rc));
  return rc;
}

/* ---- the reader ---------------------------------------------------------- */

struct tks_journal_reader {
  char dir[PATH_MAX];
  int dirfd; /* -1: no directory, an empty journal */
  enum tks_on_corrupt policy;
  uint64_t *seqs;                     /* the segments to read, in order, without a gap */
  uint64_t *sizes;                    /* their sizes when the reader was opened */
  size_t n, next;                     /* how many; the index of the one to open next */
  uint64_t bytes_total, bytes_before; /* of all of them; of those finished */

  /* The segment being read (in_segment). */
  bool in_segment, newest;
  struct segment s;
  int fd;
  uint8_t *map;
  uint64_t off, dropped;
  uint8_t small[TKS_JOURNAL_SEGMENT_HEADER];

  /* The verify-ahead thread of the segment being read (see verify_main). */
  bool verifying;
  pthread_t verifier;
  _Atomic uint64_t verified; /* frames in [header, verified) are good */
  _Atomic uint64_t read_off; /* r->off, for the verifier's lead */
  atomic_bool verify_stop;

  int rc;    /* sticky: an error, returned by every later call */
  bool done; /* every segment read */
  struct tks_replay_result res;
  char err[1024];
};

/*
 * The verify-ahead thread: walks the frames of the mapped segment from its
 * header on, checking each one's length and CRC as tks_journal_reader_next()
 * does, and publishes in r->verified the offset up to which every frame is
 * good; it stops at the first frame that is not, or at the end.  The reader
 * skips the CRC of a frame below that offset and decides everything else
 * itself, so what a replay does is the same whether the thread ran ahead,
 * lagged or never ran: it only takes the checksum (and the page faults of
 * the mapping, a tenth of a replay's time) off the thread that decodes.
 * It stays within VERIFY_LEAD bytes of the reader, so that the mapping's
 * pages it touches are soon released behind the reader, and is joined
 * before the segment is cut, unmapped or closed.
 */
static void *verify_main(void *arg) {
  struct tks_journal_reader *r = arg;
  const uint8_t *map = r->map;
  const uint64_t size = r->s.size;
  uint64_t off = TKS_JOURNAL_SEGMENT_HEADER;
  while (!atomic_load_explicit(&r->verify_stop, memory_order_relaxed)) {
    uint64_t read = atomic_load_explicit(&r->read_off, memory_order_relaxed);
    if (off < read) off = read; /* it lags: frames the reader checked are no use to it */
    if (off - read > VERIFY_LEAD) {
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, NULL);
      continue;
    }
    if (size - off < TKS_JOURNAL_FRAME_HEADER) break;
    uint32_t l = le32(map + off);
    if (l == 0 || l > TKS_JOURNAL_MAX_PAYLOAD || l > size - off - TKS_JOURNAL_FRAME_HEADER) break;
    if (tks_crc32c(0, map + off + TKS_JOURNAL_FRAME_HEADER, l) != le32(map + off + 4)) break;
    off += TKS_JOURNAL_FRAME_HEADER + l;
    atomic_store_explicit(&r->verified, off, memory_order_release);
  }
  return NULL;
}

static void verify_start(struct tks_journal_reader *r) {
  atomic_store(&r->verified, 0);
  atomic_store(&r->read_off, r->off);
  atomic_store(&r->verify_stop, false);
  if (r->s.size < VERIFY_MIN) return;
  (void)tks_crc32c_hw_available(); /* the tables are made before the thread reads them */
  r->verifying = pthread_create(&r->verifier, NULL, verify_main, r) == 0;
}

/* Stops and joins the verify-ahead thread, if it runs: from here on the
 * reader checks every CRC itself. */
static void verify_stop(struct tks_journal_reader *r) {
  if (!r->verifying) return;
  atomic_store(&r->verify_stop, true);
  pthread_join(r->verifier, NULL);
  r->verifying = false;
  atomic_store(&r->verified, 0);
}

static void close_segment(struct tks_journal_reader *r) {
  if (!r->in_segment) return;
  verify_stop(r);
  r->in_segment = false;
  if (r->map) munmap(r->map, (size_t)r->s.size);
  if (r->fd >= 0) close(r->fd);
  r->map = NULL;
  r->fd = -1;
  r->bytes_before += r->sizes[r->next - 1];
}

/* Names the first missing segment of the reader's list, if any: the first
 * must be `from` (when given), and each the one after the one before. */
static int check_gaps(struct tks_journal_reader *r, uint64_t from) {
  char want[40], have[40];
  if (from && r->n && r->seqs[0] != from) {
    segment_name(want, from);
    segment_name(have, r->seqs[0]);
    set_err(r->err, sizeof r->err,
            "journal: segment %s/%s is missing (the replay starts at segment %" PRIu64
            ", the oldest after it is %s): refusing to replay past a gap (put it back, or move "
            "the newer segments aside to start without them)",
            r->dir, want, from, have);
    return -EBADMSG;
  }
  for (size_t i = 1; i < r->n; i++) {
    if (r->seqs[i] == r->seqs[i - 1] + 1) continue;
    char before[40];
    segment_name(want, r->seqs[i - 1] + 1);
    segment_name(before, r->seqs[i - 1]);
    segment_name(have, r->seqs[i]);
    set_err(r->err, sizeof r->err,
            "journal: segment %s/%s is missing (between %s and %s): refusing to replay past a "
            "gap (put it back, or move the segments on one side of the gap aside to start "
            "without them)",
            r->dir, want, before, have);
    return -EBADMSG;
  }
  return 0;
}

int tks_journal_reader_open(struct tks_journal_reader **out, const char *dir, uint64_t from,
                            enum tks_on_corrupt policy, char *err, size_t errlen) {
  *out = NULL;
  if (err && errlen) err[0] = 0;
  struct tks_journal_reader *r = calloc(1, sizeof *r);
  if (!r) {
    set_err(err, errlen, "%s: %s", dir, strerror(ENOMEM));
    return -ENOMEM;
  }
  r->fd = -1;
  r->policy = policy;
  int rc = 0;
  if (strlen(dir) >= sizeof r->dir) {
    rc = -ENAMETOOLONG;
    set_err(r->err, sizeof r->err, "%s: %s", dir, strerror(-rc));
    goto fail;
  }
  strcpy(r->dir, dir);
  r->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (r->dirfd < 0) {
    if (errno == ENOENT) goto done; /* an empty journal */
    rc = -errno;
    set_err(r->err, sizeof r->err, "%s: %s", dir, strerror(-rc));
    goto fail;
  }
  size_t n = 0;
  if ((rc = list_segments(r->dirfd, &r->seqs, &n, NULL))) {
    set_err(r->err, sizeof r->err, "%s: %s", dir, strerror(-rc));
    goto fail;
  }
  /* Segments before `from` are covered by what was loaded before. */
  size_t skip = 0;
  while (skip < n && r->seqs[skip] < from) skip++;
  if (skip) memmove(r->seqs, r->seqs + skip, (n - skip) * sizeof *r->seqs);
  r->n = n - skip;
  if ((rc = check_gaps(r, from))) goto fail;
  if (r->n && !(r->sizes = calloc(r->n, sizeof *r->sizes))) {
    rc = -ENOMEM;
    set_err(r->err, sizeof r->err, "%s: %s", dir, strerror(-rc));
    goto fail;
  }
  for (size_t i = 0; i < r->n; i++) {
    char name[40];
    struct stat st;
    segment_name(name, r->seqs[i]);
    if (fstatat(r->dirfd, name, &st, 0) == 0 && S_ISREG(st.st_mode))
      r->sizes[i] = (uint64_t)st.st_size;
    r->bytes_total += r->sizes[i];
  }
done:
  *out = r;
  return 0;

fail:
  if (err && errlen) copy_field(err, errlen, r->err);
  tks_journal_reader_close(r);
  return rc;
}

void tks_journal_reader_close(struct tks_journal_reader *r) {
  if (!r) return;
  close_segment(r);
  if (r->dirfd >= 0) close(r->dirfd);
  free(r->seqs);
  free(r->sizes);
  free(r);
}

/* Opens segment r->seqs[r->next] and checks its header; a torn header of
 * the newest is handled as a tail here (the segment is then finished).
 * Returns 0 or -errno with r->err set. */
static int open_segment(struct tks_journal_reader *r) {
  struct segment *s = &r->s;
  uint64_t seq = r->seqs[r->next];
  struct tks_replay_result *res = &r->res;
  char *err = r->err;
  size_t errlen = sizeof r->err;
  int rc = 0;
  *s = (struct segment){.dirfd = r->dirfd};
  r->map = NULL;
  r->newest = r->next + 1 == r->n;
  r->next++;
  r->in_segment = true; /* from here on close_segment() undoes it */
  r->off = TKS_JOURNAL_SEGMENT_HEADER;
  r->dropped = 0;
  segment_name(s->name, seq);
  snprintf(s->path, sizeof s->path, "%s/%s", r->dir, s->name);
  r->fd = openat(r->dirfd, s->name, O_RDONLY | O_CLOEXEC);
  if (r->fd < 0) goto fail_errno;
  struct stat st;
  if (fstat(r->fd, &st) < 0) goto fail_errno;
  if (!S_ISREG(st.st_mode)) {
    set_err(err, errlen, "%s: not a regular file", s->path);
    return -EBADMSG;
  }
  s->size = (uint64_t)st.st_size;

  if (s->size < TKS_JOURNAL_SEGMENT_HEADER) {
    if (!r->newest) {
      set_err(err, errlen, "%s: bad segment header", s->path);
      return -EBADMSG;
    }
    ssize_t n;
    do n = pread(r->fd, r->small, (size_t)s->size, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) goto fail_errno;
    s->size = (uint64_t)n;
    s->data = r->small;
    res->segments++;
    rc = handle_tail(s, 0, r->policy, res, err, errlen);
    close_segment(r);
    return rc;
  }

  if ((uint64_t)(size_t)s->size != s->size) {
    rc = -EFBIG;
    goto fail;
  }
  void *map = mmap(NULL, (size_t)s->size, PROT_READ, MAP_PRIVATE, r->fd, 0);
  if (map == MAP_FAILED) goto fail_errno;
  r->map = map;
  madvise(map, (size_t)s->size, MADV_SEQUENTIAL);
  s->data = map;
  static const uint8_t zeros[TKS_JOURNAL_SEGMENT_HEADER];
  if (r->newest && memcmp(map, zeros, sizeof zeros) == 0) {
    /* A crash can leave a new file's size on disk without its data (zeros):
     * the header never made it, so nothing after it did either. */
    res->segments++;
    rc = handle_tail(s, 0, r->policy, res, err, errlen);
    close_segment(r);
    return rc;
  }
  if (memcmp(map, MAGIC, 8) != 0 || le64(r->map + 8) != seq) {
    set_err(err, errlen, "%s: bad segment header", s->path);
    return -EBADMSG;
  }
  res->segments++;
  verify_start(r);
  return 0;

fail_errno:
  rc = -errno;
fail:
  set_err(err, errlen, "%s: %s", s->path, strerror(-rc));
  return rc;
}

/* The frames of the segment end at r->off with something that is not a
 * good frame: the tail (cut or refused by policy) or corruption with more
 * after it (refused).  Returns 0 (cut) or -errno with r->err set. */
static int bad_frame(struct tks_journal_reader *r) {
  const struct segment *s = &r->s;
  const uint8_t *map = r->map;
  const uint64_t size = s->size, off = r->off;
  char *err = r->err;
  size_t errlen = sizeof r->err;
  if (!r->newest) {
    set_err(err, errlen,
            "%s: corrupt frame at offset %" PRIu64 " followed by newer segments: refusing to "
            "skip it (move the segment aside to start without it)",
            s->path, off);
    return -EBADMSG;
  }
  /* A frame whose plausible length runs past the end of the file looks like
   * a torn write.  Its payload is client bytes and may hold frame-like bytes,
   * so "good frames follow" needs frames that run from a later offset exactly
   * to the end of the file (as they would after a flipped length field); for
   * a frame that fits but fails its CRC any good frame after it counts. */
  uint64_t flen = size - off >= TKS_JOURNAL_FRAME_HEADER ? le32(map + off) : 0;
  bool runs_past = size - off < TKS_JOURNAL_FRAME_HEADER ||
                   (flen <= TKS_JOURNAL_MAX_PAYLOAD && off + TKS_JOURNAL_FRAME_HEADER + flen > size);
  int after = good_frame_after(map, size, off + 1, runs_past);
  if (after > 0) {
    set_err(err, errlen,
            "%s: corrupt frame at offset %" PRIu64 " followed by good frames: refusing to skip "
            "it (move the segment aside to start without it)",
            s->path, off);
    return -EBADMSG;
  }
  if (after < 0) {
    set_err(err, errlen,
            "%s: corrupt frame at offset %" PRIu64 " with too much damage after it to tell "
            "whether good frames follow: refusing to skip it (move the segment aside to start "
            "without it)",
            s->path, off);
    return -EBADMSG;
  }
  return handle_tail(s, off, r->policy, &r->res, err, errlen);
}

int tks_journal_reader_next(struct tks_journal_reader *r, const void **payload, size_t *len) {
  for (;;) {
    if (r->rc) return r->rc;
    if (r->done) return 0;
    if (!r->in_segment) {
      if (r->next == r->n) {
        r->done = true;
        continue;
      }
      int rc = open_segment(r);
      if (rc) {
        close_segment(r);
        r->rc = rc;
      }
      continue;
    }
    const uint8_t *map = r->map;
    const uint64_t size = r->s.size, off = r->off;
    if (size - off >= TKS_JOURNAL_FRAME_HEADER) {
      uint32_t l = le32(map + off);
      if (l != 0 && l <= TKS_JOURNAL_MAX_PAYLOAD && l <= size - off - TKS_JOURNAL_FRAME_HEADER) {
        const uint8_t *p = map + off + TKS_JOURNAL_FRAME_HEADER;
        uint64_t end = off + TKS_JOURNAL_FRAME_HEADER + l;
        /* The verifier walks the same chain of frames: one that ends at
         * or below its mark is one whose CRC it found good. */
        if (end <= atomic_load_explicit(&r->verified, memory_order_acquire) ||
            tks_crc32c(0, p, l) == le32(map + off + 4)) {
          r->res.frames++;
          r->res.bytes += TKS_JOURNAL_FRAME_HEADER + l;
          r->off = end;
          atomic_store_explicit(&r->read_off, end, memory_order_relaxed);
          /* Give back the pages behind us so a large segment does not sit
           * in RSS (they end at least a frame's length before p). */
          if (r->off - r->dropped >= 2 * (uint64_t)REPLAY_DROP_BEHIND) {
            madvise(r->map + r->dropped, REPLAY_DROP_BEHIND, MADV_DONTNEED);
            r->dropped += REPLAY_DROP_BEHIND;
          }
          *payload = p;
          *len = l;
          return 1;
        }
      }
    }
    /* The end of the segment's good frames.  The verifier goes first: a
     * cut tail must not shrink the file under its reads. */
    verify_stop(r);
    r->res.bytes += TKS_JOURNAL_SEGMENT_HEADER;
    int rc = off == size ? 0 : bad_frame(r);
    close_segment(r);
    r->rc = rc;
  }
}

const char *tks_journal_reader_error(const struct tks_journal_reader *r) { return r->err; }

const struct tks_replay_result *tks_journal_reader_result(const struct tks_journal_reader *r) {
  return &r->res;
}

void tks_journal_reader_progress(const struct tks_journal_reader *r,
                                 struct tks_journal_progress *out) {
  uint64_t done = r->bytes_before;
  if (r->in_segment) done += r->off < r->sizes[r->next - 1] ? r->off : r->sizes[r->next - 1];
  *out = (struct tks_journal_progress){
      .bytes_done = r->done ? r->bytes_total : done,
      .bytes_total = r->bytes_total,
      .segment = r->in_segment ? r->seqs[r->next - 1] : 0,
      .segments_done = r->in_segment ? r->next - 1 : r->next,
      .segments = r->n,
  };
}

int tks_journal_replay(const char *dir, enum tks_on_corrupt policy, tks_replay_fn fn, void *ctx,
                       struct tks_replay_result *res, char *err, size_t errlen) {
  return tks_journal_replay_from(dir, 0, policy, fn, ctx, res, err, errlen);
}

int tks_journal_replay_from(const char *dir, uint64_t from, enum tks_on_corrupt policy,
                            tks_replay_fn fn, void *ctx, struct tks_replay_result *res, char *err,
                            size_t errlen) {
  struct tks_journal_reader *r;
  if (res) memset(res, 0, sizeof *res);
  int rc = tks_journal_reader_open(&r, dir, from, policy, err, errlen);
  if (rc) return rc;
  const void *payload;
  size_t len;
  while ((rc = tks_journal_reader_next(r, &payload, &len)) == 1)
    if ((rc = fn(ctx, payload, len))) break;
  if (rc < 0 && err && errlen) copy_field(err, errlen, r->err);
  if (res) *res = r->res;
  tks_journal_reader_close(r);
  return rc;
}

/* ---- the writer's end, and a tail reader behind it -------------------- */

void tks_journal_written(const struct tks_journal *j, uint64_t *seq, uint64_t *off) {
  if (j->fd >= 0) {
    *seq = j->seq, *off = j->seg_size;
  } else {
    *seq = j->seq + 1, *off = 0; /* every existing segment is whole; the next is not made yet */
  }
}

struct tks_journal_tail {
  int dirfd;
  int fd;        /* segment seq, or -1 */
  uint64_t seq;  /* the segment being read */
  uint64_t off;  /* after the last frame returned (0: before the header is read) */
  uint64_t size; /* of segment seq when it was last looked at */
  uint64_t gaps; /* segments found missing and stepped over */
  uint8_t *buf;
  size_t cap;
  char err[300];
};

static void tail_close_segment(struct tks_journal_tail *t) {
  if (t->fd >= 0) close(t->fd);
  t->fd = -1;
}

/* Opens segment t->seq and checks its header: 1, 0 (not there: ENOENT) or
 * -EBADMSG (a bad header, t->err set). */
static int tail_open_segment(struct tks_journal_tail *t) {
  char name[40];
  segment_name(name, t->seq);
  int fd = openat(t->dirfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return 0;
    snprintf(t->err, sizeof t->err, "%s: %s", name, strerror(errno));
    return -errno;
  }
  uint8_t hdr[TKS_JOURNAL_SEGMENT_HEADER];
  ssize_t n = pread(fd, hdr, sizeof hdr, 0);
  if (n != (ssize_t)sizeof hdr || memcmp(hdr, MAGIC, 8) != 0 || le64(hdr + 8) != t->seq) {
    close(fd);
    snprintf(t->err, sizeof t->err, "%s: not a journal segment header", name);
    return -EBADMSG;
  }
  t->fd = fd;
  if (t->off < TKS_JOURNAL_SEGMENT_HEADER) t->off = TKS_JOURNAL_SEGMENT_HEADER;
  return 1;
}

/* The lowest segment number above seq present in the directory, or 0. */
static uint64_t next_present(int dirfd, uint64_t seq) {
  uint64_t *seqs = NULL, found = 0;
  size_t n = 0;
  if (list_segments(dirfd, &seqs, &n, NULL)) return 0;
  for (size_t i = 0; i < n; i++)
    if (seqs[i] > seq) {
      found = seqs[i];
      break;
    }
  free(seqs);
  return found;
}

int tks_journal_oldest(const char *dir, uint64_t *seq) {
  int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) return -errno;
  uint64_t *seqs = NULL;
  size_t n = 0;
  int rc = list_segments(dirfd, &seqs, &n, NULL);
  close(dirfd);
  if (rc) return rc;
  *seq = n ? seqs[0] : 0;
  free(seqs);
  return n ? 0 : -ENOENT;
}

int tks_journal_tail_open(struct tks_journal_tail **out, const char *dir, uint64_t seq,
                          uint64_t off, char *err, size_t errlen) {
  *out = NULL;
  struct tks_journal_tail *t = calloc(1, sizeof *t);
  if (!t) {
    set_err(err, errlen, "out of memory");
    return -ENOMEM;
  }
  t->fd = -1;
  t->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (t->dirfd < 0) {
    int e = -errno;
    set_err(err, errlen, "%s: %s", dir, strerror(errno));
    free(t);
    return e;
  }
  int rc = tks_journal_tail_seek(t, seq, off);
  if (rc) {
    set_err(err, errlen, "%s", t->err);
    tks_journal_tail_close(t);
    return rc;
  }
  *out = t;
  return 0;
}

int tks_journal_tail_seek(struct tks_journal_tail *t, uint64_t seq, uint64_t off) {
  tail_close_segment(t);
  t->seq = seq;
  t->off = off < TKS_JOURNAL_SEGMENT_HEADER ? 0 : off;
  t->err[0] = '\0';
  if (t->off == 0) return 0;
  /* Inside a segment: off must be where a frame ends (walked from the
   * header, lengths only), else the reader would take bytes in the middle
   * of a frame for one. */
  int r = tail_open_segment(t);
  if (r <= 0) {
    if (r == 0) snprintf(t->err, sizeof t->err, "segment %" PRIu64 " is missing", seq);
    return r == 0 ? -ENOENT : r;
  }
  struct stat st;
  if (fstat(t->fd, &st) < 0) return -errno;
  uint64_t p = TKS_JOURNAL_SEGMENT_HEADER, size = (uint64_t)st.st_size;
  while (p < off) {
    uint8_t h[TKS_JOURNAL_FRAME_HEADER];
    if (size - p < sizeof h || pread(t->fd, h, sizeof h, (off_t)p) != (ssize_t)sizeof h) break;
    uint32_t len = le32(h);
    if (len == 0 || len > TKS_JOURNAL_MAX_PAYLOAD) break;
    p += TKS_JOURNAL_FRAME_HEADER + len;
  }
  if (p != off) {
    tail_close_segment(t);
    snprintf(t->err, sizeof t->err,
             "offset %" PRIu64 " of segment %" PRIu64 " is not where a frame ends", off, seq);
    return -EINVAL;
  }
  return 0;
}

int tks_journal_tail_next(struct tks_journal_tail *t, uint64_t end_seq, uint64_t end_off,
                          const void **payload, size_t *len) {
  for (;;) {
    if (t->seq > end_seq || (t->seq == end_seq && end_off <= TKS_JOURNAL_SEGMENT_HEADER))
      return 0; /* at the writer's end */
    if (t->fd < 0) {
      int r = tail_open_segment(t);
      if (r < 0) return r;
      if (r == 0) {
        /* Missing below the writer's end: stepped over (counted). */
        uint64_t next = next_present(t->dirfd, t->seq);
        if (next == 0 || next > end_seq) {
          if (t->seq >= end_seq) return 0;
          next = end_seq;
        }
        t->gaps++;
        t->seq = next;
        t->off = 0;
        continue;
      }
    }
    uint64_t limit;
    if (t->seq == end_seq) {
      limit = end_off;
    } else {
      struct stat st;
      if (fstat(t->fd, &st) < 0) return -errno;
      limit = (uint64_t)st.st_size;
    }
    if (t->off >= limit) {
      if (t->seq == end_seq) return 0;
      tail_close_segment(t); /* a whole segment behind the writer: the next one */
      t->seq++;
      t->off = 0;
      continue;
    }
    uint8_t h[TKS_JOURNAL_FRAME_HEADER];
    uint32_t flen = 0;
    bool ok = limit - t->off >= sizeof h &&
              pread(t->fd, h, sizeof h, (off_t)t->off) == (ssize_t)sizeof h;
    if (ok) {
      flen = le32(h);
      ok = flen != 0 && flen <= TKS_JOURNAL_MAX_PAYLOAD &&
           flen <= limit - t->off - TKS_JOURNAL_FRAME_HEADER;
    }
    if (ok && t->cap < flen) {
      size_t ncap = t->cap ? t->cap : 64 * 1024;
      while (ncap < flen) ncap *= 2;
      uint8_t *nb = realloc(t->buf, ncap);
      if (!nb) return -ENOMEM;
      t->buf = nb, t->cap = ncap;
    }
    ok = ok &&
         pread(t->fd, t->buf, flen, (off_t)(t->off + TKS_JOURNAL_FRAME_HEADER)) == (ssize_t)flen;
    ok = ok && tks_crc32c(0, t->buf, flen) == le32(h + 4);
    if (!ok) {
      snprintf(t->err, sizeof t->err,
               "journal-%020" PRIu64 ".tkj: no good frame at offset %" PRIu64 " (of %" PRIu64
               " bytes readable)",
               t->seq, t->off, limit);
      return -EBADMSG;
    }
    t->off += TKS_JOURNAL_FRAME_HEADER + flen;
    *payload = t->buf;
    *len = flen;
    return 1;
  }
}

int tks_journal_tail_skip(struct tks_journal_tail *t) {
  tail_close_segment(t);
  t->seq++;
  t->off = 0;
  t->err[0] = '\0';
  return 0;
}

void tks_journal_tail_where(const struct tks_journal_tail *t, uint64_t *seq, uint64_t *off) {
  *seq = t->seq;
  *off = t->off;
}

uint64_t tks_journal_tail_gaps(const struct tks_journal_tail *t) { return t->gaps; }

const char *tks_journal_tail_error(const struct tks_journal_tail *t) { return t->err; }

uint64_t tks_journal_tail_bytes(const struct tks_journal_tail *t, uint64_t seq, uint64_t off,
                                uint64_t end_seq, uint64_t end_off) {
  if (off < TKS_JOURNAL_SEGMENT_HEADER) off = TKS_JOURNAL_SEGMENT_HEADER;
  if (end_off < TKS_JOURNAL_SEGMENT_HEADER) end_off = TKS_JOURNAL_SEGMENT_HEADER;
  if (seq > end_seq || (seq == end_seq && off >= end_off)) return 0;
  if (seq == end_seq) return end_off - off;
  if (end_seq - seq > 100000)
    seq = end_seq - 100000, off = TKS_JOURNAL_SEGMENT_HEADER; /* hostile */
  uint64_t total = 0;
  for (uint64_t s = seq; s < end_seq; s++) {
    char name[40];
    struct stat st;
    segment_name(name, s);
    if (fstatat(t->dirfd, name, &st, 0) != 0) continue;
    uint64_t size = (uint64_t)st.st_size, from = s == seq ? off : TKS_JOURNAL_SEGMENT_HEADER;
    if (size > from) total += size - from;
  }
  return total + (end_off - TKS_JOURNAL_SEGMENT_HEADER);
}

void tks_journal_tail_close(struct tks_journal_tail *t) {
  if (!t) return;
  tail_close_segment(t);
  if (t->dirfd >= 0) close(t->dirfd);
  free(t->buf);
  free(t);
}

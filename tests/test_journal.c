/* Unit tests of lib/journal.c: CRC32C (both paths), writing and rotating
 * segments, replay in order, torn tails cut at every byte and flipped bits
 * under both corruption policies, the size cap and write errors, fsync
 * counting, and a printed (never asserted) replay throughput.  Every test
 * works in its own directory under /tmp and removes it at the end. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "journal.h"
#include "test.h"

#define MIB (1u << 20)

/* ---- helpers ------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Frame i's payload: a length in [lo, hi] and bytes, both from i alone. */
struct gen {
  size_t lo, hi;
};

static size_t gen_len(const struct gen *g, uint64_t i) {
  uint64_t s = i * 7919 + 1;
  return g->lo + (size_t)(splitmix(&s) % (g->hi - g->lo + 1));
}

static size_t gen_payload(const struct gen *g, uint64_t i, uint8_t *out) {
  size_t len = gen_len(g, i);
  uint64_t s = i ^ 0xABCDEF12345ull;
  for (size_t k = 0; k < len; k += 8) {
    uint64_t v = splitmix(&s);
    memcpy(out + k, &v, len - k < 8 ? len - k : 8);
  }
  return len;
}

static char *make_dir(void) {
  char *d = strdup("/tmp/tkj-test-XXXXXX");
  ASSERT(d && mkdtemp(d));
  return d;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static void rm_rf(char *dir) {
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(dir);
}

static void seg_path(char *out, size_t cap, const char *dir, uint64_t seq) {
  snprintf(out, cap, "%s/journal-%020llu.tkj", dir, (unsigned long long)seq);
}

static uint8_t *slurp(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return NULL;
  struct stat st;
  ASSERT(fstat(fd, &st) == 0);
  uint8_t *b = malloc((size_t)st.st_size + 1);
  ASSERT(b);
  size_t n = 0;
  while (n < (size_t)st.st_size) {
    ssize_t r = read(fd, b + n, (size_t)st.st_size - n);
    ASSERT(r > 0);
    n += (size_t)r;
  }
  close(fd);
  *len = n;
  return b;
}

static void spill(const char *path, const uint8_t *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
  ASSERT(fd >= 0);
  ASSERT_EQ(write(fd, data, len), (ssize_t)len);
  close(fd);
}

static bool exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static long long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static unsigned count_entries(const char *dir) {
  unsigned n = 0;
  DIR *d = opendir(dir);
  ASSERT(d);
  struct dirent *de;
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
  closedir(d);
  return n;
}

/* Appends frames [from, to) of g and flushes with an fsync. */
static void write_range(struct tks_journal *j, const struct gen *g, uint64_t from, uint64_t to) {
  uint8_t *p = malloc(g->hi + 8);
  ASSERT(p);
  for (uint64_t i = from; i < to; i++) {
    size_t len = gen_payload(g, i, p);
    ASSERT_EQ(tks_journal_append(j, p, len), 0);
  }
  free(p);
  ASSERT_EQ(tks_journal_flush(j, true), 0);
  ASSERT_EQ(tks_journal_pending(j), 0);
}

static void write_journal(const char *dir, const struct gen *g, uint64_t n, uint64_t seg_bytes) {
  char err[512] = "";
  struct tks_journal *j = tks_journal_open(dir, seg_bytes, 0, err, sizeof err);
  if (!j) TEST_FAIL("open: %s", err);
  write_range(j, g, 0, n);
  tks_journal_close(j);
}

/* Offset in a one-segment journal of frame i's header. */
static uint64_t frame_off(const struct gen *g, uint64_t i) {
  uint64_t off = TKS_JOURNAL_SEGMENT_HEADER;
  for (uint64_t k = 0; k < i; k++) off += TKS_JOURNAL_FRAME_HEADER + gen_len(g, k);
  return off;
}

/* Replay checking each frame against the generator. */
struct check {
  const struct gen *g;
  uint64_t n;
  uint64_t stop_at; /* return 42 at this frame if not 0 */
  uint8_t *want;
};

static int check_fn(void *ctx, const void *payload, size_t len) {
  struct check *c = ctx;
  size_t wl = gen_payload(c->g, c->n, c->want);
  if (len != wl || memcmp(payload, c->want, len) != 0)
    TEST_FAIL("frame %llu differs (len %zu, want %zu)", (unsigned long long)c->n, len, wl);
  c->n++;
  if (c->stop_at && c->n == c->stop_at) return 42;
  return 0;
}

static int replay(const char *dir, enum tks_on_corrupt pol, const struct gen *g, uint64_t *frames,
                  struct tks_replay_result *res, char *err, size_t errlen) {
  struct check c = {.g = g, .want = malloc(g->hi + 8)};
  ASSERT(c.want);
  int rc = tks_journal_replay(dir, pol, check_fn, &c, res, err, errlen);
  free(c.want);
  *frames = c.n;
  return rc;
}

/* ---- CRC32C -------------------------------------------------------------- */

TEST(crc32c_matches_the_known_test_vectors) {
  uint8_t buf[32];
  ASSERT_U64_EQ(tks_crc32c(0, "123456789", 9), 0xE3069283u);
  ASSERT_U64_EQ(tks_crc32c_sw(0, "123456789", 9), 0xE3069283u);
  ASSERT_U64_EQ(tks_crc32c_hw(0, "123456789", 9), 0xE3069283u);
  ASSERT_U64_EQ(tks_crc32c(0, "", 0), 0);
  /* RFC 3720 (iSCSI) B.4. */
  memset(buf, 0, sizeof buf);
  ASSERT_U64_EQ(tks_crc32c(0, buf, 32), 0x8A9136AAu);
  ASSERT_U64_EQ(tks_crc32c_sw(0, buf, 32), 0x8A9136AAu);
  memset(buf, 0xff, sizeof buf);
  ASSERT_U64_EQ(tks_crc32c(0, buf, 32), 0x62A8AB43u);
  ASSERT_U64_EQ(tks_crc32c_sw(0, buf, 32), 0x62A8AB43u);
  for (int i = 0; i < 32; i++) buf[i] = (uint8_t)i;
  ASSERT_U64_EQ(tks_crc32c(0, buf, 32), 0x46DD794Eu);
  ASSERT_U64_EQ(tks_crc32c_sw(0, buf, 32), 0x46DD794Eu);
  for (int i = 0; i < 32; i++) buf[i] = (uint8_t)(31 - i);
  ASSERT_U64_EQ(tks_crc32c(0, buf, 32), 0x113FDB5Cu);
  ASSERT_U64_EQ(tks_crc32c_sw(0, buf, 32), 0x113FDB5Cu);
  /* Chaining: the CRC of a then b from the CRC of a. */
  ASSERT_U64_EQ(tks_crc32c(tks_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
  ASSERT_U64_EQ(tks_crc32c_sw(tks_crc32c_sw(0, "12345", 5), "6789", 4), 0xE3069283u);
}

TEST(crc32c_hardware_and_software_paths_agree_on_random_buffers) {
  if (!tks_crc32c_hw_available())
    TEST_SKIP("this CPU has no SSE4.2: tks_crc32c_hw is the software path");
  enum { MAXLEN = 5000 };
  uint8_t *buf = malloc(MAXLEN + 16);
  ASSERT(buf);
  uint64_t s = 12345;
  for (int t = 0; t < 1000; t++) {
    size_t len = (size_t)(splitmix(&s) % (MAXLEN + 1));
    size_t align = (size_t)(splitmix(&s) % 16);
    for (size_t k = 0; k < len; k++) buf[align + k] = (uint8_t)splitmix(&s);
    uint32_t seed = t % 3 ? 0 : (uint32_t)splitmix(&s);
    uint32_t hw = tks_crc32c_hw(seed, buf + align, len), sw = tks_crc32c_sw(seed, buf + align, len);
    if (hw != sw) TEST_FAIL("len %zu align %zu: hw %08x sw %08x", len, align, hw, sw);
  }
  free(buf);
}

/* The hardware path runs three chains over blocks of 3 x 256 and 3 x 8192
 * bytes and folds them: lengths on and around those block edges, from every
 * alignment, and long buffers that take both kinds and a tail. */
TEST(crc32c_hardware_path_agrees_across_its_block_edges) {
  if (!tks_crc32c_hw_available())
    TEST_SKIP("this CPU has no SSE4.2: tks_crc32c_hw is the software path");
  enum { MAXLEN = 4 * 3 * 8192 + 3 * 256 + 100 };
  uint8_t *buf = malloc(MAXLEN + 16);
  ASSERT(buf);
  uint64_t s = 777;
  for (size_t k = 0; k < MAXLEN + 16; k++) buf[k] = (uint8_t)splitmix(&s);
  static const size_t edges[] = {3 * 256, 3 * 8192, 2 * 3 * 8192, 3 * 8192 + 3 * 256,
                                 4 * 3 * 8192 + 3 * 256};
  for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++)
    for (size_t d = 0; d < 80; d++)
      for (size_t align = 0; align < 16; align += 5) {
        size_t len = edges[e] + d - 40;
        uint32_t seed = (uint32_t)(d * 2654435761u);
        uint32_t hw = tks_crc32c_hw(seed, buf + align, len);
        uint32_t sw = tks_crc32c_sw(seed, buf + align, len);
        if (hw != sw) TEST_FAIL("len %zu align %zu: hw %08x sw %08x", len, align, hw, sw);
      }
  for (int t = 0; t < 200; t++) {
    size_t len = (size_t)(splitmix(&s) % (MAXLEN + 1)), align = (size_t)(splitmix(&s) % 16);
    uint32_t hw = tks_crc32c_hw(0, buf + align, len), sw = tks_crc32c_sw(0, buf + align, len);
    if (hw != sw) TEST_FAIL("len %zu align %zu: hw %08x sw %08x", len, align, hw, sw);
  }
  /* A frame's CRC in one call is the same in two, split anywhere. */
  size_t len = 3 * 8192 * 2 + 1000;
  uint32_t whole = tks_crc32c_hw(0, buf, len);
  for (size_t cut = 0; cut <= len; cut += 997)
    ASSERT_U64_EQ(tks_crc32c_hw(tks_crc32c_hw(0, buf, cut), buf + cut, len - cut), whole);
  free(buf);
}

/* ---- writing and replaying ------------------------------------------------ */

TEST(frames_written_then_closed_replay_in_order) {
  char *dir = make_dir();
  struct gen g = {1, 300};
  write_journal(dir, &g, 1000, MIB);
  char path[600];
  seg_path(path, sizeof path, dir, 1);
  ASSERT_EQ(file_size(path), frame_off(&g, 1000));
  uint64_t n;
  struct tks_replay_result res;
  char err[1024] = "";
  ASSERT_EQ(replay(dir, TKS_CORRUPT_REFUSE, &g, &n, &res, err, sizeof err), 0);
  ASSERT_STR_EQ(err, "");
  ASSERT_EQ(n, 1000);
  ASSERT_EQ(res.frames, 1000);
  ASSERT_EQ(res.segments, 1);
  ASSERT_EQ(res.bytes, frame_off(&g, 1000));
  ASSERT_EQ(res.truncated_bytes, 0);
  ASSERT_STR_EQ(res.truncated_file, "");
  rm_rf(dir);
}

TEST(segments_rotate_at_segment_bytes_without_splitting_a_frame) {
  char *dir = make_dir();
  struct gen g = {1000, 70000};
  char err[512] = "";
  struct tks_journal *j = tks_journal_open(dir, MIB, 0, err, sizeof err);
  ASSERT(j);
  /* In several flushes, so rotation happens both inside a batch and between. */
  write_range(j, &g, 0, 40);
  write_range(j, &g, 40, 150);
  write_range(j, &g, 150, 160);
  struct tks_journal_info info;
  tks_journal_info(j, &info);
  tks_journal_close(j);
  ASSERT_EQ(info.frames_written, 160);
  ASSERT(info.segments >= 4);
  uint64_t total = 0;
  for (uint64_t s = 1; s <= info.segments; s++) {
    char path[600];
    seg_path(path, sizeof path, dir, s);
    long long sz = file_size(path);
    ASSERT(sz > TKS_JOURNAL_SEGMENT_HEADER);
    ASSERT(sz <= (long long)MIB);
    total += (uint64_t)sz;
  }
  ASSERT_EQ(info.bytes, total);
  ASSERT_EQ(count_entries(dir), info.segments);
  uint64_t n;
  struct tks_replay_result res;
  ASSERT_EQ(replay(dir, TKS_CORRUPT_REFUSE, &g, &n, &res, err, sizeof err), 0);
  ASSERT_EQ(n, 160);
  ASSERT_EQ(res.segments, info.segments);
  ASSERT_EQ(res.bytes, total);
  rm_rf(dir);
}

TEST(reopening_appends_a_new_segment_after_the_existing_ones) {
  char *dir = make_dir();
  struct gen g = {10, 100};
  char err[512] = "";
  write_journal(dir, &g, 50, MIB);
  char p1[600], p2[600], p3[600];
  seg_path(p1, sizeof p1, dir, 1);
  seg_path(p2, sizeof p2, dir, 2);
  seg_path(p3, sizeof p3, dir, 3);
  long long size1 = file_size(p1);

  struct tks_journal *j = tks_journal_open(dir, MIB, 0, err, sizeof err);
  ASSERT(j);
  struct tks_journal_info info;
  tks_journal_info(j, &info);
  ASSERT_EQ(info.segments, 1);
  ASSERT_EQ(info.bytes, size1);
  write_range(j, &g, 50, 80);
  tks_journal_close(j);
  ASSERT_EQ(file_size(p1), size1); /* the old segment is left as it was */
  ASSERT(exists(p2));

  j = tks_journal_open(dir, MIB, 0, err, sizeof err);
  ASSERT(j);
  write_range(j, &g, 80, 81);
  tks_journal_info(j, &info);
  ASSERT_EQ(info.segments, 3);
  tks_journal_close(j);
  ASSERT(exists(p3));

  uint64_t n;
  struct tks_replay_result res;
  ASSERT_EQ(replay(dir, TKS_CORRUPT_REFUSE, &g, &n, &res, err, sizeof err), 0);
  ASSERT_EQ(n, 81);
  ASSERT_EQ(res.segments, 3);
  rm_rf(dir);
}

TEST(open_and_close_with_nothing_written_leaves_no_segment) {
  char *dir = make_dir();
  char err[512] = "";
  struct tks_journal *j = tks_journal_open(dir, MIB, 0, err, sizeof err);
  ASSERT(j);
  ASSERT_EQ(tks_journal_flush(j, true), 0); /* nothing to write */
  struct tks_journal_info info;
  tks_journal_info(j, &info);
  ASSERT_EQ(info.segments, 0);
  ASSERT_EQ(info.bytes, 0);
  ASSERT_EQ(info.fsyncs, 0);
  tks_journal_close(j);
  ASSERT_EQ(count_entries(dir), 0);
  tks_journal_close(NULL);
  rm_rf(dir);
}

TEST(open_creates_missing_directories_with_mode_0750) {
  char *dir = make_dir();
  char sub[600], err[512] = "";
  snprintf(sub, sizeof sub, "%s/a/b/journal", dir);
  mode_t old = umask(0);
  struct tks_journal *j = tks_journal_open(sub, MIB, 0, err, sizeof err);
  umask(old);
  if (!j) TEST_FAIL("open: %s", err);
  struct stat st;
  ASSERT_EQ(stat(sub, &st), 0);
  ASSERT(S_ISDIR(st.st_mode));
  ASSERT_EQ(st.st_mode & 07777, 0750);
  tks_journal_close(j);

  /* A path through a file cannot be a journal directory: named in err. */
  char file[600], bad[700];
  snprintf(file, sizeof file, "%s/plain", dir);
  spill(file, (const uint8_t *)"x", 1);
  snprintf(bad, sizeof bad, "%s/sub", file);
  ASSERT(tks_journal_open(bad, MIB, 0, err, sizeof err) == NULL);
  ASSERT_CONTAINS(err, bad);
  ASSERT_CONTAINS(err, strerror(ENOTDIR));
  rm_rf(dir);
}

TEST(append_refuses_empty_and_oversized_payloads) {
  char *dir = make_dir();
  char err[512] = "";
  struct tks_journal *j = tks_journal_open(dir, MIB, 0, err, sizeof err);
  ASSERT(j);
  ASSERT_EQ(tks_journal_append(j, "x", 0), -EINVAL);
  ASSERT_EQ(tks_journal_append(j, "x", (size_t)TKS_JOURNAL_MAX_PAYLOAD + 1), -E2BIG);
  ASSERT_EQ(tks_journal_pending(j), 0);
  ASSERT_EQ(tks_journal_append(j, "abc", 3), 0);
  ASSERT_EQ(tks_journal_pending(j), TKS_JOURNAL_FRAME_HEADER + 3);
  tks_journal_close(j); /* pending frames are dropped, not written */
  ASSERT_EQ(count_entries(dir), 0);
  rm_rf(dir);
}

TEST(replay_stops_with_the_callbacks_value) {
  char *dir = make_dir();
  struct gen g = {5, 50};
  write_journal(dir, &g, 100, MIB);
  struct check c = {.g = &g, .stop_at = 10, .want = malloc(64)};
  char err[512] = "";
  ASSERT_EQ(tks_journal_replay(dir, TKS_CORRUPT_REFUSE, check_fn, &c, NULL, err, sizeof err), 42);
  ASSERT_EQ(c.n, 10);
  free(c.want);
  rm_rf(dir);
}

TEST(missing_dir_is_an_empty_journal) {
  char *dir = make_dir();
  char sub[600], err[512] = "";
  snprintf(sub, sizeof sub, "%s/never-made", dir);
  struct gen g = {1, 2};
  uint64_t n;
  struct tks_replay_result res;
  ASSERT_EQ(replay(sub, TKS_CORRUPT_REFUSE, &g, &n, &res, err, sizeof err), 0);
  ASSERT_EQ(n, 0);
  ASSERT_EQ(res.frames, 0);
  ASSERT_EQ(res.segments, 0);
  ASSERT(!exists(sub));
  rm_rf(dir);
}

TEST(files_not_named_like_segments_are_ignored) {
  char *dir = make_dir();
  struct gen g = {1, 64};
  write_journal(dir, &g, 20, MIB);
  static const char *junk[] = {
      "journal-1.tkj",  "journal-0000000000000000000x.tkj", "journal-00000000000000000009.tkj.bak",
      "journal-000000000000000000099.tkj", "JOURNAL-00000000000000000009.tkj", "notes.txt",
      "journal-00000000000000000001.tkj.corrupt-16", "journal-99999999999999999999.tkj"};
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, junk[i]);
    spill(p, (const uint8_t *)"garbage, not a segment", 22);
  }
  uint64_t n;
  struct tks_replay_result res;
  char err[1024] = "";
  ASSERT_EQ(replay(dir, TKS_CORRUPT_REFUSE, &g, &n, &res, err, sizeof err), 0);
  ASSERT_EQ(n, 20);
  ASSERT_EQ(res.segments, 1);
  /* The writer too: the next segment is 2, and its bytes count segments only. */
  struct tks_journal *j = tks_journal_open(dir, MIB, 0, err, sizeof err);
  ASSERT(j);
  struct tks_journal_info info;
  tks_journal_info(j, &info);
  ASSERT_EQ(info.segments, 1);
  ASSERT_EQ(info.bytes, frame_off(&g, 20));
  write_range(j, &g, 20, 21);
  tks_journal_close(j);
  char p2[600];
  seg_path(p2, sizeof p2, dir, 2);
  ASSERT(exists(p2));
  rm_rf(dir);
}

/* ---- torn tails and corruption ------------------------------------------- */

/* One reference journal of N frames in one segment, kept in memory. */
struct ref {
  struct gen g;
  uint64_t n;
  uint8_t *bytes;
  size_t len;
};

static void make_ref_of(struct ref *r, uint64_t n, size_t lo, size_t hi, uint64_t seg_bytes) {
  char *dir = make_dir();
  r->g = (struct gen){lo, hi};
  r->n = n;
  write_journal(dir, &r->g, n, seg_bytes);
  char path[600];
  seg_path(path, sizeof path, dir, 1);
  r->bytes = slurp(path, &r->len);
  ASSERT(r->bytes);
  ASSERT_EQ(r->len, frame_off(&r->g, n));
  rm_rf(dir);
}

static void make_ref(struct ref *r, uint64_t n, size_t lo, size_t hi) {
  make_ref_of(r, n, lo, hi, MIB);
}

/* A fresh dir holding data as segment 1; its path in seg. */
static char *stage(const uint8_t *data, size_t len, char *seg, size_t segcap) {
  char *dir = make_dir();
  seg_path(seg, segcap, dir, 1);
  spill(seg, data, len);
  return dir;
}

TEST(torn_tail_at_every_byte_of_the_last_frames_is_cut_under_truncate) {
  struct ref r;
  make_ref(&r, 30, 1, 40);
  uint64_t from = frame_off(&r.g, r.n - 3);
  for (uint64_t cut = from; cut <= r.len; cut++) {
    /* Whole frames below the cut, and where the last of them ends. */
    uint64_t whole = 0;
    while (whole < r.n && frame_off(&r.g, whole + 1) <= cut) whole++;
    uint64_t good_end = frame_off(&r.g, whole);
    char seg[600], err[1024] = "";
    char *dir = stage(r.bytes, cut, seg, sizeof seg);
    uint64_t n;
    struct tks_replay_result res;
    int rc = replay(dir, TKS_CORRUPT_TRUNCATE, &r.g, &n, &res, err, sizeof err);
    if (rc) TEST_FAIL("cut %llu: %d %s", (unsigned long long)cut, rc, err);
    ASSERT_EQ(n, whole);
    ASSERT_EQ(res.frames, whole);
    ASSERT_EQ(file_size(seg), good_end);
    char side[700];
    snprintf(side, sizeof side, "%s.corrupt-%llu", seg, (unsigned long long)good_end);
    if (cut == good_end) {
      ASSERT_EQ(res.truncated_bytes, 0);
      ASSERT_STR_EQ(res.side_file, "");
      ASSERT(!exists(side));
      ASSERT_EQ(count_entries(dir), 1);
    } else {
      ASSERT_EQ(res.truncated_bytes, cut - good_end);
      ASSERT_EQ(res.truncated_at, good_end);
      ASSERT_STR_EQ(res.truncated_file, seg);
      ASSERT_STR_EQ(res.side_file, side);
      size_t sl;
      uint8_t *sb = slurp(side, &sl);
      ASSERT(sb);
      ASSERT_EQ(sl, cut - good_end);
      ASSERT(memcmp(sb, r.bytes + good_end, sl) == 0);
      free(sb);
    }
    /* Replaying again is clean: nothing more to cut. */
    rc = replay(dir, TKS_CORRUPT_REFUSE, &r.g, &n, &res, err, sizeof err);
    if (rc) TEST_FAIL("cut %llu, second replay: %s", (unsigned long long)cut, err);
    ASSERT_EQ(n, whole);
    ASSERT_EQ(res.truncated_bytes, 0);
    rm_rf(dir);
  }
  free(r.bytes);
}

TEST(torn_tail_at_every_byte_of_the_last_frames_is_refused_under_refuse) {
  struct ref r;
  make_ref(&r, 30, 1, 40);
  uint64_t from = frame_off(&r.g, r.n - 3);
  for (uint64_t cut = from; cut < r.len; cut++) {
    uint64_t whole = 0;
    while (whole < r.n && frame_off(&r.g, whole + 1) <= cut) whole++;
    uint64_t good_end = frame_off(&r.g, whole);
    char seg[600], err[1024] = "";
    char *dir = stage(r.bytes, cut, seg, sizeof seg);
    uint64_t n;
    struct tks_replay_result res;
    int rc = replay(dir, TKS_CORRUPT_REFUSE, &r.g, &n, &res, err, sizeof err);
    if (cut == good_end) {
      ASSERT_EQ(rc, 0);
      ASSERT_EQ(n, whole);
    } else {
      ASSERT_EQ(rc, -EBADMSG);
      char want[1200];
      snprintf(want, sizeof want,
               "%s: corrupt or torn journal tail at offset %llu (%llu bytes); journal.on_corrupt "
               "is refuse: truncate the file to %llu bytes or set on_corrupt: truncate",
               seg, (unsigned long long)good_end, (unsigned long long)(cut - good_end),
               (unsigned long long)good_end);
      ASSERT_STR_EQ(err, want);
      ASSERT_EQ(n, whole); /* the good frames before it were seen */
      ASSERT_EQ(res.truncated_bytes, 0);
    }
    /* The file is left exactly as it was, with nothing beside it. */
    size_t l;
    uint8_t *b = slurp(seg, &l);
    ASSERT_EQ(l, cut);
    ASSERT(memcmp(b, r.bytes, l) == 0);
    free(b);
    ASSERT_EQ(count_entries(dir), 1);
    rm_rf(dir);
  }
  free(r.bytes);
}

TEST(flipped_bit_anywhere_in_the_last_frame_is_cut_under_truncate) {
  struct ref r;
  make_ref(&r, 20, 20, 60);
  uint64_t last = frame_off(&r.g, r.n - 1);
  uint8_t *copy = malloc(r.len);
  ASSERT(copy);
  for (uint64_t bit = last * 8; bit < r.len * 8; bit++) {
    memcpy(copy, r.bytes, r.len);
    copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    char seg[600], err[1024] = "";
    char *dir = stage(copy, r.len, seg, sizeof seg);
    uint64_t n;
    struct tks_replay_result res;
    int rc = replay(dir, TKS_CORRUPT_TRUNCATE, &r.g, &n, &res, err, sizeof err);
    if (rc) TEST_FAIL("bit %llu: %s", (unsigned long long)bit, err);
    ASSERT_EQ(n, r.n - 1);
    ASSERT_EQ(res.truncated_at, last);
    ASSERT_EQ(res.truncated_bytes, r.len - last);
    ASSERT_EQ(file_size(seg), last);
    size_t sl;
    uint8_t *sb = slurp(res.side_file, &sl);
    ASSERT(sb);
    ASSERT_EQ(sl, r.len - last);
    ASSERT(memcmp(sb, copy + last, sl) == 0);
    free(sb);
    /* And under refuse, the same damage is refused with the offset. */
    memcpy(copy, r.bytes, r.len);
    copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    spill(seg, copy, r.len);
    ASSERT_EQ(replay(dir, TKS_CORRUPT_REFUSE, &r.g, &n, &res, err, sizeof err), -EBADMSG);
    char want[64];
    snprintf(want, sizeof want, "at offset %llu (", (unsigned long long)last);
    ASSERT_CONTAINS(err, want);
    ASSERT_EQ(file_size(seg), r.len);
    rm_rf(dir);
  }
  free(copy);
  free(r.bytes);
}

/* Every bit of frame k of the reference flipped: refused under both
 * policies as corruption followed by good frames, the file untouched. */
static void check_middle_flips(const struct ref *r, uint64_t k) {
  uint64_t at = frame_off(&r->g, k), end = frame_off(&r->g, k + 1);
  uint8_t *copy = malloc(r->len);
  ASSERT(copy);
  for (uint64_t bit = at * 8; bit < end * 8; bit++) {
    memcpy(copy, r->bytes, r->len);
    copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    char seg[600], err[1024] = "";
    char *dir = stage(copy, r->len, seg, sizeof seg);
    for (int pol = 0; pol < 2; pol++) {
      uint64_t n;
      struct tks_replay_result res;
      int rc = replay(dir, pol ? TKS_CORRUPT_REFUSE : TKS_CORRUPT_TRUNCATE, &r->g, &n, &res, err,
                      sizeof err);
      if (rc != -EBADMSG) TEST_FAIL("bit %llu policy %d: rc %d", (unsigned long long)bit, pol, rc);
      char want[1200];
      snprintf(want, sizeof want,
               "%s: corrupt frame at offset %llu followed by good frames: refusing to skip it "
               "(move the segment aside to start without it)",
               seg, (unsigned long long)at);
      ASSERT_STR_EQ(err, want);
      ASSERT_EQ(n, k);
      ASSERT_EQ(res.truncated_bytes, 0);
      size_t l;
      uint8_t *b = slurp(seg, &l);
      ASSERT_EQ(l, r->len);
      ASSERT(memcmp(b, copy, l) == 0);
      free(b);
      ASSERT_EQ(count_entries(dir), 1);
    }
    rm_rf(dir);
  }
  free(copy);
}

TEST(flipped_bit_in_a_middle_frame_is_refused_under_both_policies) {
  struct ref r;
  make_ref(&r, 20, 20, 60);
  check_middle_flips(&r, 10);
  check_middle_flips(&r, 0);
  check_middle_flips(&r, r.n - 2); /* one good frame after it is enough */
  free(r.bytes);
}

TEST(length_claiming_more_than_the_file_is_a_tail_at_the_end_and_an_error_in_the_middle) {
  struct ref r;
  make_ref(&r, 20, 20, 60);
  static const uint32_t lens[] = {0x00FFFFFFu, TKS_JOURNAL_MAX_PAYLOAD, 0xFFFFFFFFu, 100000u};
  uint8_t *copy = malloc(r.len);
  ASSERT(copy);
  for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
    for (int middle = 0; middle < 2; middle++) {
      uint64_t k = middle ? 7 : r.n - 1, at = frame_off(&r.g, k);
      memcpy(copy, r.bytes, r.len);
      uint32_t v = lens[li];
      memcpy(copy + at, &v, 4); /* the tests run on little-endian machines */
      char seg[600], err[1024] = "";
      char *dir = stage(copy, r.len, seg, sizeof seg);
      uint64_t n;
      struct tks_replay_result res;
      int rc = replay(dir, TKS_CORRUPT_TRUNCATE, &r.g, &n, &res, err, sizeof err);
      ASSERT_EQ(n, k);
      if (middle) {
        ASSERT_EQ(rc, -EBADMSG);
        ASSERT_CONTAINS(err, "followed by good frames");
        ASSERT_EQ(file_size(seg), r.len);
      } else {
        if (rc) TEST_FAIL("len %u: %s", v, err);
        ASSERT_EQ(res.truncated_at, at);
        ASSERT_EQ(file_size(seg), at);
      }
      rm_rf(dir);
    }
  }
  free(copy);
  free(r.bytes);
}

TEST(zero_filled_tail_after_a_crash_is_cut_as_a_torn_tail) {
  /* A filesystem can keep a file's new size but not its data after a power
   * loss: the tail reads as zeros, which a zero length field catches. */
  struct ref r;
  make_ref(&r, 20, 20, 60);
  uint8_t *copy = calloc(1, r.len + 4096);
  ASSERT(copy);
  memcpy(copy, r.bytes, r.len);
  char seg[600], err[1024] = "";
  char *dir = stage(copy, r.len + 4096, seg, sizeof seg);
  uint64_t n;
  struct tks_replay_result res;
  ASSERT_EQ(replay(dir, TKS_CORRUPT_TRUNCATE, &r.g, &n, &res, err, sizeof err), 0);
  ASSERT_EQ(n, r.n);
  ASSERT_EQ(res.truncated_at, r.len);
  ASSERT_EQ(res.truncated_bytes, 4096);
  ASSERT_EQ(file_size(seg), r.len);
  rm_rf(dir);

  /* A whole new segment of zeros (header never written) is removed. */
  dir = make_dir();
  write_journal(dir, &r.g, 5, MIB);
  char seg2[600];
  seg_path(seg2, sizeof seg2, dir, 2);
  spill(seg2, copy + r.len, 4096);
  ASSERT_EQ(replay(dir, TKS_CORRUPT_TRUNCATE, &r.g, &n, &res, err, sizeof err), 0);
  ASSERT_EQ(n, 5);
  ASSERT_EQ(res.truncated_at, 0);
  ASSERT_EQ(res.truncated_bytes, 4096);
  ASSERT(!exists(seg2));
  ASSERT_EQ(file_size(res.side_file), 4096);
  rm_rf(dir);
  free(copy);
  free(r.bytes);
}

TEST(torn_end_of_an_older_segment_is_refused_under_both_policies) {
  char *dir = make_dir();
  struct gen g = {5000, 60000};
  write_journal(dir, &g, 60, MIB);
  char p1[600], p2[600];
  seg_path(p1, sizeof p1, dir, 1);
  seg_path(p2, sizeof p2, dir, 2);
  ASSERT(exists(p2));
  long long size1 = file_size(p1);
  ASSERT_EQ(truncate(p1, size1 - 3), 0);
  for (int pol = 0; pol < 2; pol++) {
    uint64_t n;
    struct tks_replay_result res;
    char err[1024] = "";
    ASSERT_EQ(replay(dir, pol ? TKS_CORRUPT_REFUSE : TKS_CORRUPT_TRUNCATE, &g, &n, &res, err,
                     sizeof err),
              -EBADMSG);
    ASSERT_CONTAINS(err, p1);
    ASSERT_CONTAINS(err, "corrupt frame at offset");
    ASSERT_CONTAINS(err, "refusing to skip it");
    ASSERT_EQ(file_size(p1), size1 - 3);
  }
  rm_rf(dir);
}

TEST(bad_segment_header_is_refused) {
  struct ref r;
  make_ref(&r, 10, 5, 50);
  for (int field = 0; field < 2; field++) {
    for (int newest = 0; newest < 2; newest++) {
      char *dir = make_dir();
      char p1[600], p2[600], err[1024] = "";
      seg_path(p1, sizeof p1, dir, 1);
      seg_path(p2, sizeof p2, dir, 2);
      uint8_t *copy = malloc(r.len);
      ASSERT(copy);
      memcpy(copy, r.bytes, r.len);
      if (newest) memcpy(copy + 8, "\x02\0\0\0\0\0\0\0", 8); /* segment 2 */
      copy[field ? 9 : 3] ^= 0x10; /* the magic, or the sequence */
      if (newest) spill(p1, r.bytes, r.len);
      spill(newest ? p2 : p1, copy, r.len);
      for (int pol = 0; pol < 2; pol++) {
        uint64_t n;
        struct tks_replay_result res;
        int rc = replay(dir, pol ? TKS_CORRUPT_REFUSE : TKS_CORRUPT_TRUNCATE, &r.g, &n, &res, err,
                        sizeof err);
        ASSERT_EQ(rc, -EBADMSG);
        char want[700];
        snprintf(want, sizeof want, "%s: bad segment header", newest ? p2 : p1);
        ASSERT_STR_EQ(err, want);
      }
      ASSERT_EQ(count_entries(dir), newest ? 2 : 1);
      free(copy);
      rm_rf(dir);
    }
  }
  /* A header cut short in an older segment is bad too. */
  char *dir = make_dir();
  char p1[600], p2[600], err[1024] = "";
  seg_path(p1, sizeof p1, dir, 1);
  seg_path(p2, sizeof p2, dir, 2);
  spill(p1, r.bytes, 10);
  memcpy(r.bytes + 8, "\x02\0\0\0\0\0\0\0", 8);
  spill(p2, r.bytes, r.len);
  uint64_t n;
  struct tks_replay_result res;
  ASSERT_EQ(replay(dir, TKS_CORRUPT_TRUNCATE, &r.g, &n, &res, err, sizeof err), -EBADMSG);
  ASSERT_CONTAINS(err, p1);
  ASSERT_CONTAINS(err, "bad segment header");
  rm_rf(dir);
  free(r.bytes);
}

TEST(torn_segment_header_in_the_newest_segment_is_removed_under_truncate_and_refused_under_refuse) {
  struct gen g = {5, 50};
  for (size_t cut = 0; cut < TKS_JOURNAL_SEGMENT_HEADER; cut++) {
    char *dir = make_dir();
    write_journal(dir, &g, 10, MIB);
    char p2[600], err[1024] = "";
    seg_path(p2, sizeof p2, dir, 2);
    uint8_t hdr[16];
    memcpy(hdr, "TKSJRNL1\x02\0\0\0\0\0\0\0", 16);
    spill(p2, hdr, cut);
    uint64_t n;
    struct tks_replay_result res;
    ASSERT_EQ(replay(dir, TKS_CORRUPT_REFUSE, &g, &n, &res, err, sizeof err), -EBADMSG);
    ASSERT_CONTAINS(err, p2);
    ASSERT_CONTAINS(err, "at offset 0");
    ASSERT_EQ(file_size(p2), cut);
    ASSERT_EQ(replay(dir, TKS_CORRUPT_TRUNCATE, &g, &n, &res, err, sizeof err), 0);
    ASSERT_EQ(n, 10);
    ASSERT(!exists(p2));
    ASSERT_STR_EQ(res.truncated_file, p2);
    ASSERT_EQ(res.truncated_at, 0);
    ASSERT_EQ(res.truncated_bytes, cut);
    if (cut) {
      size_t sl;
      uint8_t *sb = slurp(res.side_file, &sl);
      ASSERT(sb);
      ASSERT_EQ(sl, cut);
      ASSERT(memcmp(sb, hdr, cut) == 0);
      free(sb);
    } else {
      ASSERT_STR_EQ(res.side_file, "");
    }
    ASSERT_EQ(replay(dir, TKS_CORRUPT_REFUSE, &g, &n, &res, err, sizeof err), 0);
    ASSERT_EQ(n, 10);
    /* The writer carries on from there. */
    struct tks_journal *j = tks_journal_open(dir, MIB, 0, err, sizeof err);
    ASSERT(j);
    write_range(j, &g, 10, 12);
    tks_journal_close(j);
    ASSERT_EQ(replay(dir, TKS_CORRUPT_REFUSE, &g, &n, &res, err, sizeof err), 0);
    ASSERT_EQ(n, 12);
    rm_rf(dir);
  }
}

TEST(side_file_never_overwrites_an_earlier_one) {
  struct ref r;
  make_ref(&r, 10, 5, 50);
  char seg[600], err[1024] = "";
  char *dir = stage(r.bytes, r.len - 1, seg, sizeof seg);
  uint64_t n;
  struct tks_replay_result res;
  ASSERT_EQ(replay(dir, TKS_CORRUPT_TRUNCATE, &r.g, &n, &res, err, sizeof err), 0);
  char first[600];
  snprintf(first, sizeof first, "%s", res.side_file);
  spill(seg, r.bytes, r.len - 2); /* torn again at the same frame */
  ASSERT_EQ(replay(dir, TKS_CORRUPT_TRUNCATE, &r.g, &n, &res, err, sizeof err), 0);
  ASSERT(strcmp(first, res.side_file) != 0);
  ASSERT_EQ(file_size(first), res.truncated_bytes + 1);
  ASSERT_EQ(file_size(res.side_file), res.truncated_bytes);
  rm_rf(dir);
  free(r.bytes);
}

/* ---- size cap, write errors, fsync ----------------------------------------- */

TEST(max_bytes_fails_flushes_with_enospc_and_keeps_the_rest_pending) {
  char *dir = make_dir();
  struct gen g = {100, 100};
  const uint64_t fl = TKS_JOURNAL_FRAME_HEADER + 100;
  const uint64_t cap = TKS_JOURNAL_SEGMENT_HEADER + 10 * fl + fl / 2;
  char err[512] = "";
  struct tks_journal *j = tks_journal_open(dir, MIB, cap, err, sizeof err);
  ASSERT(j);
  uint8_t p[128];
  for (uint64_t i = 0; i < 15; i++) ASSERT_EQ(tks_journal_append(j, p, gen_payload(&g, i, p)), 0);
  ASSERT_EQ(tks_journal_flush(j, true), -ENOSPC);
  struct tks_journal_info info;
  tks_journal_info(j, &info);
  ASSERT_EQ(info.frames_written, 10);
  ASSERT_EQ(info.frames_synced, 10); /* what fitted was still made durable */
  ASSERT_EQ(info.bytes, TKS_JOURNAL_SEGMENT_HEADER + 10 * fl);
  ASSERT(info.bytes <= cap);
  ASSERT_EQ(info.write_errors, 1);
  ASSERT_EQ(info.last_error, -ENOSPC);
  ASSERT_EQ(tks_journal_pending(j), 5 * fl);
  /* Still full: the same again, nothing lost. */
  ASSERT_EQ(tks_journal_flush(j, false), -ENOSPC);
  ASSERT_EQ(tks_journal_pending(j), 5 * fl);
  tks_journal_info(j, &info);
  ASSERT_EQ(info.write_errors, 2);
  ASSERT_EQ(info.frames_written, 10);

  /* What is on disk now is exactly the 10 frames: no torn one. */
  uint64_t n;
  struct tks_replay_result res;
  ASSERT_EQ(replay(dir, TKS_CORRUPT_REFUSE, &g, &n, &res, err, sizeof err), 0);
  ASSERT_EQ(n, 10);

  /* Room is made: the next flush writes the held frames. */
  tks_journal_set_max_bytes(j, cap + 5 * fl);
  ASSERT_EQ(tks_journal_flush(j, true), 0);
  ASSERT_EQ(tks_journal_pending(j), 0);
  tks_journal_info(j, &info);
  ASSERT_EQ(info.frames_written, 15);
  ASSERT_EQ(info.frames_synced, 15);
  ASSERT_EQ(info.last_error, 0);
  ASSERT_EQ(info.write_errors, 2);
  tks_journal_close(j);
  ASSERT_EQ(replay(dir, TKS_CORRUPT_REFUSE, &g, &n, &res, err, sizeof err), 0);
  ASSERT_EQ(n, 15);
  ASSERT_EQ(res.truncated_bytes, 0);
  rm_rf(dir);
}

TEST(max_bytes_closed_while_full_replays_exactly_the_frames_written) {
  char *dir = make_dir();
  struct gen g = {10, 200};
  char err[512] = "";
  const uint64_t cap = 5000;
  struct tks_journal *j = tks_journal_open(dir, MIB, cap, err, sizeof err);
  ASSERT(j);
  uint8_t p[256];
  int rc = 0;
  uint64_t i = 0;
  while (rc == 0 && i < 1000) {
    ASSERT_EQ(tks_journal_append(j, p, gen_payload(&g, i, p)), 0);
    i++;
    rc = tks_journal_flush(j, i % 2);
  }
  ASSERT_EQ(rc, -ENOSPC);
  struct tks_journal_info info;
  tks_journal_info(j, &info);
  ASSERT_EQ(info.frames_written, i - 1);
  ASSERT(info.bytes <= cap);
  tks_journal_close(j);
  uint64_t n;
  struct tks_replay_result res;
  ASSERT_EQ(replay(dir, TKS_CORRUPT_REFUSE, &g, &n, &res, err, sizeof err), 0);
  ASSERT_EQ(n, i - 1);
  rm_rf(dir);
}

TEST(max_bytes_counts_the_segments_already_in_the_dir) {
  char *dir = make_dir();
  struct gen g = {100, 100};
  write_journal(dir, &g, 10, MIB);
  uint64_t existing = frame_off(&g, 10);
  char err[512] = "";
  /* Room for the new segment's header and one frame, not two. */
  struct tks_journal *j =
      tks_journal_open(dir, MIB, existing + TKS_JOURNAL_SEGMENT_HEADER + 108 + 50, err, sizeof err);
  ASSERT(j);
  uint8_t p[128];
  for (uint64_t i = 10; i < 12; i++) ASSERT_EQ(tks_journal_append(j, p, gen_payload(&g, i, p)), 0);
  ASSERT_EQ(tks_journal_flush(j, false), -ENOSPC);
  struct tks_journal_info info;
  tks_journal_info(j, &info);
  ASSERT_EQ(info.frames_written, 1);
  ASSERT_EQ(info.segments, 2);
  ASSERT_EQ(tks_journal_pending(j), 108);
  tks_journal_close(j);
  uint64_t n;
  struct tks_replay_result res;
  ASSERT_EQ(replay(dir, TKS_CORRUPT_REFUSE, &g, &n, &res, err, sizeof err), 0);
  ASSERT_EQ(n, 11);

  /* With no room even for a header, nothing is created. */
  j = tks_journal_open(dir, MIB, existing + 20, err, sizeof err);
  ASSERT(j);
  ASSERT_EQ(tks_journal_append(j, p, gen_payload(&g, 11, p)), 0);
  ASSERT_EQ(tks_journal_flush(j, true), -ENOSPC);
  tks_journal_info(j, &info);
  ASSERT_EQ(info.segments, 2);
  tks_journal_close(j);
  ASSERT_EQ(count_entries(dir), 2);
  rm_rf(dir);
}

TEST(failed_write_cuts_the_partial_frame_and_keeps_the_rest_pending) {
  /* RLIMIT_FSIZE makes a write past the limit short, then EFBIG: a real
   * failing write(), without root or a full disk.  This test's process is
   * its own, so the limit goes with it. */
  char *dir = make_dir();
  struct gen g = {100, 100};
  const uint64_t fl = TKS_JOURNAL_FRAME_HEADER + 100;
  char err[512] = "";
  struct tks_journal *j = tks_journal_open(dir, MIB, 0, err, sizeof err);
  ASSERT(j);
  uint8_t p[128];
  for (uint64_t i = 0; i < 2; i++) ASSERT_EQ(tks_journal_append(j, p, gen_payload(&g, i, p)), 0);
  ASSERT_EQ(tks_journal_flush(j, true), 0);

  signal(SIGXFSZ, SIG_IGN);
  struct rlimit old, lim;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  lim = old;
  lim.rlim_cur = TKS_JOURNAL_SEGMENT_HEADER + 5 * fl + fl / 2; /* 3.5 more frames fit */
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
  for (uint64_t i = 2; i < 10; i++) ASSERT_EQ(tks_journal_append(j, p, gen_payload(&g, i, p)), 0);
  ASSERT_EQ(tks_journal_flush(j, true), -EFBIG);
  struct tks_journal_info info;
  tks_journal_info(j, &info);
  ASSERT_EQ(info.frames_written, 5);
  ASSERT_EQ(info.frames_synced, 5);
  ASSERT_EQ(info.write_errors, 1);
  ASSERT_EQ(info.last_error, -EFBIG);
  ASSERT_EQ(tks_journal_pending(j), 5 * fl);
  char seg[600];
  seg_path(seg, sizeof seg, dir, 1);
  ASSERT_EQ(file_size(seg), TKS_JOURNAL_SEGMENT_HEADER + 5 * fl); /* the half frame is cut */
  ASSERT_EQ(info.bytes, TKS_JOURNAL_SEGMENT_HEADER + 5 * fl);
  ASSERT_EQ(tks_journal_flush(j, false), -EFBIG); /* still failing: nothing changes */
  ASSERT_EQ(tks_journal_pending(j), 5 * fl);
  ASSERT_EQ(file_size(seg), TKS_JOURNAL_SEGMENT_HEADER + 5 * fl);

  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
  ASSERT_EQ(tks_journal_flush(j, true), 0);
  tks_journal_info(j, &info);
  ASSERT_EQ(info.frames_written, 10);
  ASSERT_EQ(info.last_error, 0);
  ASSERT_EQ(info.write_errors, 2);
  tks_journal_close(j);
  uint64_t n;
  struct tks_replay_result res;
  ASSERT_EQ(replay(dir, TKS_CORRUPT_REFUSE, &g, &n, &res, err, sizeof err), 0);
  ASSERT_EQ(n, 10);
  ASSERT_EQ(res.truncated_bytes, 0);
  rm_rf(dir);
}

TEST(flush_with_fsync_counts_an_fsync_and_flush_without_does_not) {
  char *dir = make_dir();
  struct gen g = {10, 20};
  char err[512] = "";
  struct tks_journal *j = tks_journal_open(dir, MIB, 0, err, sizeof err);
  ASSERT(j);
  uint8_t p[32];
  struct tks_journal_info info;
  ASSERT_EQ(tks_journal_append(j, p, gen_payload(&g, 0, p)), 0);
  ASSERT_EQ(tks_journal_flush(j, false), 0);
  tks_journal_info(j, &info);
  ASSERT_EQ(info.fsyncs, 0);
  ASSERT_EQ(info.frames_written, 1);
  ASSERT_EQ(info.frames_synced, 0);
  ASSERT_EQ(tks_journal_append(j, p, gen_payload(&g, 1, p)), 0);
  ASSERT_EQ(tks_journal_flush(j, true), 0);
  tks_journal_info(j, &info);
  ASSERT_EQ(info.fsyncs, 1);
  ASSERT_EQ(info.frames_synced, 2);
  for (int k = 0; k < 5; k++) {
    ASSERT_EQ(tks_journal_append(j, p, gen_payload(&g, 2 + k, p)), 0);
    ASSERT_EQ(tks_journal_flush(j, false), 0);
  }
  tks_journal_info(j, &info);
  ASSERT_EQ(info.fsyncs, 1);
  ASSERT_EQ(info.frames_synced, 2);
  /* Written earlier without an fsync: a flush(true) with nothing new syncs it. */
  ASSERT_EQ(tks_journal_flush(j, true), 0);
  tks_journal_info(j, &info);
  ASSERT_EQ(info.fsyncs, 2);
  ASSERT_EQ(info.frames_synced, 7);
  /* Nothing unsynced: no fsync to do. */
  ASSERT_EQ(tks_journal_flush(j, true), 0);
  tks_journal_info(j, &info);
  ASSERT_EQ(info.fsyncs, 2);
  ASSERT_EQ(info.write_errors, 0);
  tks_journal_close(j);
  rm_rf(dir);
}

TEST(rotation_without_fsync_is_made_durable_by_the_next_fsync) {
  char *dir = make_dir();
  struct gen g = {60000, 65000};
  char err[512] = "";
  struct tks_journal *j = tks_journal_open(dir, MIB, 0, err, sizeof err);
  ASSERT(j);
  uint8_t *p = malloc(g.hi);
  ASSERT(p);
  /* ~ 8 segments written with flush(false): none counted as synced. */
  for (uint64_t i = 0; i < 130; i++) {
    ASSERT_EQ(tks_journal_append(j, p, gen_payload(&g, i, p)), 0);
    ASSERT_EQ(tks_journal_flush(j, false), 0);
  }
  struct tks_journal_info info;
  tks_journal_info(j, &info);
  ASSERT(info.segments >= 8);
  ASSERT_EQ(info.fsyncs, 0);
  ASSERT_EQ(info.frames_synced, 0);
  ASSERT_EQ(tks_journal_flush(j, true), 0);
  tks_journal_info(j, &info);
  ASSERT_EQ(info.fsyncs, 1);
  ASSERT_EQ(info.frames_synced, 130);
  tks_journal_close(j);
  free(p);
  uint64_t n;
  struct tks_replay_result res;
  ASSERT_EQ(replay(dir, TKS_CORRUPT_REFUSE, &g, &n, &res, err, sizeof err), 0);
  ASSERT_EQ(n, 130);
  rm_rf(dir);
}

/* ---- throughput (printed, never asserted) --------------------------------- */

/* ---- rotation and removal for checkpoints ---- */

/* Counts frames, and which frame came first from segment `from` on. */
struct tally {
  uint64_t n;
  uint8_t first[16];
};

static int tally_fn(void *ctx, const void *payload, size_t len) {
  struct tally *c = ctx;
  if (c->n++ == 0) memcpy(c->first, payload, len < 16 ? len : 16);
  return 0;
}

TEST(rotate_puts_every_later_frame_in_the_segment_it_names) {
  char *dir = make_dir();
  char err[512];
  struct tks_journal *j = tks_journal_open(dir, 64 * MIB, 0, err, sizeof err);
  ASSERT(j);
  uint64_t next;
  /* Nothing open yet: the first segment is the next one. */
  ASSERT_EQ(tks_journal_rotate(j, &next), 0);
  ASSERT_U64_EQ(next, 1);
  struct gen g = {10, 100};
  write_range(j, &g, 0, 50);
  /* Frames buffered: the cut has to wait for the flush. */
  uint8_t p[8] = "abcdefg";
  ASSERT_EQ(tks_journal_append(j, p, 8), 0);
  ASSERT_EQ(tks_journal_rotate(j, &next), -EBUSY);
  ASSERT_EQ(tks_journal_flush(j, true), 0);
  ASSERT_EQ(tks_journal_rotate(j, &next), 0);
  ASSERT_U64_EQ(next, 2);
  /* Asked again before a frame: the same segment, not another. */
  uint64_t again;
  ASSERT_EQ(tks_journal_rotate(j, &again), 0);
  ASSERT_U64_EQ(again, 2);
  ASSERT_EQ(tks_journal_append(j, "second", 6), 0);
  ASSERT_EQ(tks_journal_flush(j, true), 0);
  char path[512];
  seg_path(path, sizeof path, dir, 2);
  ASSERT(exists(path));
  struct tks_journal_info info;
  tks_journal_info(j, &info);
  ASSERT_U64_EQ(info.segments, 2);
  tks_journal_close(j);
  /* Replay from 2: exactly the frames after the cut. */
  struct tally c = {0};
  ASSERT_EQ(
      tks_journal_replay_from(dir, 2, TKS_CORRUPT_REFUSE, tally_fn, &c, NULL, err, sizeof err), 0);
  ASSERT_U64_EQ(c.n, 1);
  ASSERT(memcmp(c.first, "second", 6) == 0);
  c.n = 0;
  ASSERT_EQ(
      tks_journal_replay_from(dir, 0, TKS_CORRUPT_REFUSE, tally_fn, &c, NULL, err, sizeof err), 0);
  ASSERT_U64_EQ(c.n, 52);
  rm_rf(dir);
}

TEST(remove_below_deletes_covered_segments_and_keeps_the_counts_true) {
  char *dir = make_dir();
  char err[512];
  struct tks_journal *j = tks_journal_open(dir, 1 * MIB, 0, err, sizeof err);
  ASSERT(j);
  struct gen g = {1000, 4000};
  write_range(j, &g, 0, 2000); /* several 1 MiB segments */
  struct tks_journal_info before, after;
  tks_journal_info(j, &before);
  ASSERT(before.segments >= 4);
  uint64_t next;
  ASSERT_EQ(tks_journal_rotate(j, &next), 0);
  ASSERT_EQ(tks_journal_append(j, "x", 1), 0);
  ASSERT_EQ(tks_journal_flush(j, true), 0);
  char path[512];
  seg_path(path, sizeof path, dir, 2);
  long long seg2 = file_size(path);
  ASSERT_EQ(tks_journal_remove_below(j, 3), 2);
  ASSERT(!exists(path));
  tks_journal_info(j, &after);
  ASSERT_U64_EQ(after.segments, before.segments + 1 - 2);
  ASSERT(after.bytes < before.bytes - (uint64_t)seg2);
  /* The current segment is never removed, whatever seq says. */
  ASSERT_EQ(tks_journal_remove_below(j, UINT64_MAX), (int)(after.segments - 1));
  tks_journal_info(j, &after);
  ASSERT_U64_EQ(after.segments, 1);
  seg_path(path, sizeof path, dir, next);
  ASSERT(exists(path));
  ASSERT_EQ(count_entries(dir), 1);
  ASSERT_U64_EQ(after.bytes, (uint64_t)file_size(path));
  tks_journal_close(j);
  rm_rf(dir);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct sink {
  uint64_t frames, bytes, x;
};

static int sink_fn(void *ctx, const void *payload, size_t len) {
  struct sink *s = ctx;
  s->frames++;
  s->bytes += len;
  s->x += ((const uint8_t *)payload)[len - 1];
  return 0;
}

static void throughput(size_t frame, uint64_t total) {
  char *dir = make_dir();
  char err[512] = "";
  struct tks_journal *j = tks_journal_open(dir, 64 * MIB, 0, err, sizeof err);
  ASSERT(j);
  uint8_t *p = malloc(frame);
  ASSERT(p);
  uint64_t s = 99;
  for (size_t k = 0; k < frame; k++) p[k] = (uint8_t)splitmix(&s);
  uint64_t n = total / frame;
  double t0 = now_s();
  for (uint64_t i = 0; i < n; i++) {
    memcpy(p, &i, sizeof i);
    ASSERT_EQ(tks_journal_append(j, p, frame), 0);
    if (tks_journal_pending(j) >= 8 * MIB) ASSERT_EQ(tks_journal_flush(j, false), 0);
  }
  ASSERT_EQ(tks_journal_flush(j, true), 0);
  double tw = now_s() - t0;
  tks_journal_close(j);
  free(p);

  double mb = (double)n * (double)(frame + TKS_JOURNAL_FRAME_HEADER) / 1e6;
  printf("# %zu-byte frames, %.0f MB: append+write+fsync %.0f MB/s\n", frame, mb, mb / tw);
  /* Cold: the segments dropped from the page cache first (they are clean
   * after the fsync, so posix_fadvise can drop them without root); then
   * warm, read again from the cache. */
  for (int warm = 0; warm < 2; warm++) {
    if (!warm) {
      for (uint64_t seq = 1;; seq++) {
        char path[600];
        seg_path(path, sizeof path, dir, seq);
        int fd = open(path, O_RDONLY);
        if (fd < 0) break;
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
      }
    }
    struct sink sk = {0};
    struct tks_replay_result res;
    t0 = now_s();
    ASSERT_EQ(tks_journal_replay(dir, TKS_CORRUPT_REFUSE, sink_fn, &sk, &res, err, sizeof err), 0);
    double tr = now_s() - t0;
    ASSERT_EQ(sk.frames, n);
    mb = (double)res.bytes / 1e6;
    printf("#   replay (%s page cache), %llu segments: %.0f MB/s, %.0f frames/s (%.3f s), i.e. "
           "%.1f M ticks/s at 57.6 B/tick\n",
           warm ? "warm" : "cold", (unsigned long long)res.segments, mb / tr, (double)n / tr, tr,
           (double)res.bytes / 57.6 / tr / 1e6);
  }
  rm_rf(dir);
}

TEST_TIMEOUT(replay_throughput_is_printed, 600) {
  throughput(64 * 1024, 200ull * 1000 * 1000);
  throughput(256, 50ull * 1000 * 1000);
  enum { LEN = 64 * 1024, ROUNDS = 4000 };
  uint8_t *b = malloc(LEN);
  ASSERT(b);
  memset(b, 0x5a, LEN);
  uint32_t c = 0;
  double t0 = now_s();
  for (int i = 0; i < ROUNDS; i++) c = tks_crc32c_hw(c, b, LEN);
  double thw = now_s() - t0;
  t0 = now_s();
  for (int i = 0; i < ROUNDS / 4; i++) c = tks_crc32c_sw(c, b, LEN);
  double tsw = now_s() - t0;
  printf("# crc32c: hardware %.2f GB/s%s, software %.2f GB/s (%08x)\n",
         (double)LEN * ROUNDS / thw / 1e9, tks_crc32c_hw_available() ? "" : " (not available)",
         (double)LEN * ROUNDS / 4 / tsw / 1e9, c);
  free(b);
}


static int count_fn(void *ctx, const void *payload, size_t len) {
  (void)payload;
  (void)len;
  (*(uint64_t *)ctx)++;
  return 0;
}

TEST(torn_frame_holding_frame_like_client_bytes_is_still_a_tail) {
  char *dir = make_dir();
  char err[600];
  struct tks_journal *j = tks_journal_open(dir, 1u << 20, 0, err, sizeof err);
  ASSERT(j);
  uint8_t a[64], b[200];
  memset(a, 'a', sizeof a);
  memset(b, 'b', sizeof b);
  /* A client string in frame b that is itself a valid frame: [4][crc]["XNAS"]. */
  uint8_t inner[4] = {'X', 'N', 'A', 'S'};
  uint32_t len = 4, crc = tks_crc32c(0, inner, 4);
  memcpy(b + 40, &len, 4);
  memcpy(b + 44, &crc, 4);
  memcpy(b + 48, inner, 4);
  ASSERT_EQ(tks_journal_append(j, a, sizeof a), 0);
  ASSERT_EQ(tks_journal_append(j, b, sizeof b), 0);
  ASSERT_EQ(tks_journal_flush(j, true), 0);
  tks_journal_close(j);
  char seg[4200];
  seg_path(seg, sizeof seg, dir, 1);
  long long size = file_size(seg);
  ASSERT_EQ(truncate(seg, size - 100), 0); /* a crash in the middle of writing b */
  uint64_t frames = 0;
  struct tks_replay_result res;
  int rc = tks_journal_replay(dir, TKS_CORRUPT_TRUNCATE, count_fn, &frames, &res, err, sizeof err);
  if (rc) TEST_FAIL("replay: %d %s", rc, err);
  ASSERT_EQ(frames, 1);
  ASSERT_EQ(res.truncated_bytes, size - 100 - (16 + 8 + 64));
  rm_rf(dir);
}

/* ---- the reader: resumable replay, progress, segment gaps ---------------- */

/* Which segment each frame of dir is in (frame i in seg[i]), read with the
 * reader; returns the number of frames. */
static uint64_t frame_segments(const char *dir, uint64_t *seg, uint64_t cap) {
  struct tks_journal_reader *r;
  char err[1024];
  ASSERT_EQ(tks_journal_reader_open(&r, dir, 0, TKS_CORRUPT_REFUSE, err, sizeof err), 0);
  const void *p;
  size_t len;
  uint64_t n = 0;
  while (tks_journal_reader_next(r, &p, &len) == 1) {
    struct tks_journal_progress pr;
    tks_journal_reader_progress(r, &pr);
    ASSERT(n < cap);
    seg[n++] = pr.segment;
  }
  tks_journal_reader_close(r);
  return n;
}

TEST(reader_gives_the_frames_replay_gives_and_can_stop_between_any_two) {
  char *dir = make_dir();
  struct gen g = {20000, 60000};
  write_journal(dir, &g, 100, MIB);
  uint64_t n;
  struct tks_replay_result want;
  char err[1024] = "x";
  ASSERT_EQ(replay(dir, TKS_CORRUPT_REFUSE, &g, &n, &want, err, sizeof err), 0);
  ASSERT_EQ(n, 100);
  ASSERT(want.segments >= 3);
  uint64_t total = 0;
  for (uint64_t seq = 1; seq <= want.segments; seq++) {
    char path[600];
    seg_path(path, sizeof path, dir, seq);
    total += (uint64_t)file_size(path);
  }
  /* Pulled one frame at a time, with a progress look between frames: the
   * same frames, bytes_done growing to bytes_total, the same result. */
  struct tks_journal_reader *r;
  ASSERT_EQ(tks_journal_reader_open(&r, dir, 0, TKS_CORRUPT_REFUSE, err, sizeof err), 0);
  ASSERT_STR_EQ(err, "");
  struct tks_journal_progress pr;
  tks_journal_reader_progress(r, &pr);
  ASSERT_U64_EQ(pr.bytes_done, 0);
  ASSERT_U64_EQ(pr.bytes_total, total);
  ASSERT_U64_EQ(pr.segments, want.segments);
  uint8_t *buf = malloc(g.hi);
  ASSERT(buf);
  uint64_t last_done = 0, last_seg = 0;
  const void *p;
  size_t len;
  int rc;
  for (uint64_t i = 0; (rc = tks_journal_reader_next(r, &p, &len)) == 1; i++) {
    size_t wl = gen_payload(&g, i, buf);
    ASSERT_EQ(len, wl);
    ASSERT(memcmp(p, buf, len) == 0);
    tks_journal_reader_progress(r, &pr);
    ASSERT(pr.bytes_done > last_done);
    ASSERT(pr.bytes_done <= pr.bytes_total);
    ASSERT(pr.segment >= last_seg && pr.segment >= 1);
    last_done = pr.bytes_done;
    last_seg = pr.segment;
  }
  ASSERT_EQ(rc, 0);
  ASSERT_EQ(tks_journal_reader_next(r, &p, &len), 0); /* and again */
  tks_journal_reader_progress(r, &pr);
  ASSERT_U64_EQ(pr.bytes_done, total);
  ASSERT_U64_EQ(pr.segments_done, want.segments);
  const struct tks_replay_result *got = tks_journal_reader_result(r);
  ASSERT_U64_EQ(got->frames, want.frames);
  ASSERT_U64_EQ(got->bytes, want.bytes);
  ASSERT_U64_EQ(got->segments, want.segments);
  ASSERT_STR_EQ(tks_journal_reader_error(r), "");
  tks_journal_reader_close(r);

  /* Closed part way, in the middle of a segment: nothing written, and a
   * new reader starts from the beginning. */
  ASSERT_EQ(tks_journal_reader_open(&r, dir, 0, TKS_CORRUPT_TRUNCATE, err, sizeof err), 0);
  for (int i = 0; i < 37; i++) ASSERT_EQ(tks_journal_reader_next(r, &p, &len), 1);
  tks_journal_reader_close(r);
  tks_journal_reader_close(NULL);
  ASSERT_EQ(count_entries(dir), want.segments);
  ASSERT_EQ(replay(dir, TKS_CORRUPT_REFUSE, &g, &n, NULL, err, sizeof err), 0);
  ASSERT_EQ(n, 100);
  free(buf);
  rm_rf(dir);
}

/* Pulls every frame of dir through a reader, checking each against g, with
 * a pause after the first so that a segment's verify-ahead thread is well
 * ahead when the damage comes.  Returns what next() ended with; *n frames. */
static int pull_all(const char *dir, enum tks_on_corrupt pol, const struct gen *g, uint64_t *n,
                    struct tks_replay_result *res, char *err, size_t errlen) {
  struct tks_journal_reader *r;
  int rc = tks_journal_reader_open(&r, dir, 0, pol, err, errlen);
  if (rc) return rc;
  uint8_t *buf = malloc(g->hi + 8);
  ASSERT(buf);
  const void *p;
  size_t len;
  *n = 0;
  while ((rc = tks_journal_reader_next(r, &p, &len)) == 1) {
    size_t wl = gen_payload(g, *n, buf);
    if (len != wl || memcmp(p, buf, len) != 0)
      TEST_FAIL("frame %llu differs", (unsigned long long)*n);
    if (++*n == 1) nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
  }
  snprintf(err, errlen, "%s", tks_journal_reader_error(r));
  *res = *tks_journal_reader_result(r);
  tks_journal_reader_close(r);
  free(buf);
  return rc;
}

/* A segment large enough for the reader's verify-ahead thread: damage in
 * it is judged as in a small one, whether the thread reached it first or
 * not (the reader checks what the thread did not find good). */
TEST(damage_in_a_segment_verified_ahead_is_judged_as_in_a_small_one) {
  struct ref r;
  make_ref_of(&r, 1500, 1000, 3000, 8 * MIB); /* about 3 MB in one segment */
  ASSERT(r.len > 2 * MIB);
  uint8_t *copy = malloc(r.len);
  ASSERT(copy);
  const uint64_t ks[] = {1, 2, r.n / 2, r.n - 2, r.n - 1};
  for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
    uint64_t k = ks[i], at = frame_off(&r.g, k), end = frame_off(&r.g, k + 1);
    for (int pol = 0; pol < 2; pol++) {
      memcpy(copy, r.bytes, r.len);
      copy[at + 8 + (end - at - 8) / 2] ^= 0x10; /* a payload bit: a bad CRC */
      char seg[600], err[1024] = "";
      char *dir = stage(copy, r.len, seg, sizeof seg);
      uint64_t n;
      struct tks_replay_result res;
      int rc = pull_all(dir, pol ? TKS_CORRUPT_REFUSE : TKS_CORRUPT_TRUNCATE, &r.g, &n, &res, err,
                        sizeof err);
      ASSERT_EQ(n, k);
      if (k < r.n - 1) {
        ASSERT_EQ(rc, -EBADMSG);
        ASSERT_CONTAINS(err, "followed by good frames");
        ASSERT_EQ(file_size(seg), r.len);
      } else if (pol) {
        ASSERT_EQ(rc, -EBADMSG);
        ASSERT_CONTAINS(err, "journal.on_corrupt is refuse");
        ASSERT_EQ(file_size(seg), r.len);
      } else {
        if (rc) TEST_FAIL("frame %llu: %s", (unsigned long long)k, err);
        ASSERT_EQ(res.truncated_at, at);
        ASSERT_EQ(file_size(seg), at);
      }
      rm_rf(dir);
    }
  }
  /* Torn: the file cut inside its last frame. */
  uint64_t last = frame_off(&r.g, r.n - 1);
  char seg[600], err[1024] = "";
  char *dir = stage(r.bytes, last + 100, seg, sizeof seg);
  uint64_t n;
  struct tks_replay_result res;
  ASSERT_EQ(pull_all(dir, TKS_CORRUPT_TRUNCATE, &r.g, &n, &res, err, sizeof err), 0);
  ASSERT_EQ(n, r.n - 1);
  ASSERT_EQ(res.truncated_at, last);
  ASSERT_EQ(res.truncated_bytes, 100);
  ASSERT_EQ(file_size(seg), last);
  rm_rf(dir);
  free(copy);
  free(r.bytes);
}

TEST(reader_keeps_the_torn_tail_semantics_of_replay) {
  /* A torn newest segment under both policies, through the reader: the
   * frames before the tear, then 0 (cut, side file) or -EBADMSG (refuse),
   * and the same error on every later call. */
  struct ref r;
  make_ref(&r, 20, 20, 60);
  for (int pol = 0; pol < 2; pol++) {
    char seg[600];
    char *dir = stage(r.bytes, r.len - 5, seg, sizeof seg);
    struct tks_journal_reader *rd;
    char err[1024];
    ASSERT_EQ(tks_journal_reader_open(&rd, dir, 0, pol ? TKS_CORRUPT_REFUSE : TKS_CORRUPT_TRUNCATE,
                                      err, sizeof err),
              0);
    const void *p;
    size_t len;
    int rc, frames = 0;
    while ((rc = tks_journal_reader_next(rd, &p, &len)) == 1) frames++;
    ASSERT_EQ(frames, r.n - 1);
    uint64_t at = frame_off(&r.g, r.n - 1);
    if (pol) {
      ASSERT_EQ(rc, -EBADMSG);
      ASSERT_EQ(tks_journal_reader_next(rd, &p, &len), -EBADMSG);
      char want[700];
      snprintf(want, sizeof want, "%s: corrupt or torn journal tail at offset %llu (", seg,
               (unsigned long long)at);
      ASSERT_CONTAINS(tks_journal_reader_error(rd), want);
      ASSERT_EQ(file_size(seg), r.len - 5);
    } else {
      ASSERT_EQ(rc, 0);
      ASSERT_EQ(tks_journal_reader_result(rd)->truncated_at, at);
      ASSERT_EQ(file_size(seg), at);
      ASSERT_EQ(count_entries(dir), 2); /* the segment and its side file */
    }
    tks_journal_reader_close(rd);
    rm_rf(dir);
  }
  free(r.bytes);
}

/* A journal of 4+ segments of 1 MiB, its frames' segments in seg[]. */
static char *four_segments(const struct gen *g, uint64_t *seg, uint64_t *nframes) {
  char *dir = make_dir();
  write_journal(dir, g, 120, MIB);
  *nframes = frame_segments(dir, seg, 120);
  ASSERT_EQ(*nframes, 120);
  ASSERT(seg[119] >= 4);
  return dir;
}

TEST(missing_middle_segment_is_refused_under_both_policies_naming_it) {
  struct gen g = {20000, 60000};
  uint64_t seg[120], n;
  for (int missing = 0; missing < 2; missing++) { /* segment 2, or 2 and 3 */
    char *dir = four_segments(&g, seg, &n);
    char p1[600], p2[600], p3[600], p4[600];
    seg_path(p1, sizeof p1, dir, 1);
    seg_path(p2, sizeof p2, dir, 2);
    seg_path(p3, sizeof p3, dir, 3);
    seg_path(p4, sizeof p4, dir, 4);
    ASSERT_EQ(unlink(p2), 0);
    if (missing) ASSERT_EQ(unlink(p3), 0);
    unsigned entries = count_entries(dir);
    long long size1 = file_size(p1);
    for (int pol = 0; pol < 2; pol++) {
      char err[1024] = "";
      uint64_t frames = 99;
      struct tks_replay_result res;
      int rc = replay(dir, pol ? TKS_CORRUPT_REFUSE : TKS_CORRUPT_TRUNCATE, &g, &frames, &res, err,
                      sizeof err);
      ASSERT_EQ(rc, -EBADMSG);
      ASSERT_EQ(frames, 0); /* refused before any frame: nothing half-loaded */
      char want[1400];
      snprintf(want, sizeof want,
               "journal: segment %s is missing (between journal-00000000000000000001.tkj and "
               "%s): refusing to replay past a gap",
               p2,
               missing ? "journal-00000000000000000004.tkj" : "journal-00000000000000000003.tkj");
      ASSERT_CONTAINS(err, want);
      /* Nothing cut or moved. */
      ASSERT_EQ(count_entries(dir), entries);
      ASSERT_EQ(file_size(p1), size1);
      struct tks_journal_reader *r = (struct tks_journal_reader *)1;
      ASSERT_EQ(tks_journal_reader_open(&r, dir, 0, TKS_CORRUPT_TRUNCATE, err, sizeof err),
                -EBADMSG);
      ASSERT(r == NULL);
      ASSERT_CONTAINS(err, "is missing");
    }
    rm_rf(dir);
  }
}

TEST(gap_before_a_torn_newest_segment_is_still_refused) {
  /* 1, 2, 4 where 4 is a zero-filled file: the gap wins over the tail rule. */
  struct gen g = {20000, 60000};
  uint64_t seg[120], n;
  char *dir = four_segments(&g, seg, &n);
  char p3[600], p4[600], err[1024] = "";
  seg_path(p3, sizeof p3, dir, 3);
  seg_path(p4, sizeof p4, dir, 4);
  ASSERT_EQ(unlink(p3), 0);
  uint8_t zeros[4096] = {0};
  spill(p4, zeros, sizeof zeros);
  uint64_t frames;
  struct tks_replay_result res;
  ASSERT_EQ(replay(dir, TKS_CORRUPT_TRUNCATE, &g, &frames, &res, err, sizeof err), -EBADMSG);
  ASSERT_CONTAINS(err, p3);
  ASSERT_EQ(file_size(p4), (long long)sizeof zeros);
  rm_rf(dir);
}

TEST(oldest_segments_removed_without_a_start_segment_are_not_a_gap) {
  struct gen g = {20000, 60000};
  uint64_t seg[120], n;
  char *dir = four_segments(&g, seg, &n);
  char p1[600], err[1024] = "";
  seg_path(p1, sizeof p1, dir, 1);
  ASSERT_EQ(unlink(p1), 0);
  uint64_t first = 0;
  while (seg[first] == 1) first++;
  struct check c = {.g = &g, .n = first, .want = malloc(g.hi + 8)};
  ASSERT(c.want);
  ASSERT_EQ(tks_journal_replay(dir, TKS_CORRUPT_REFUSE, check_fn, &c, NULL, err, sizeof err), 0);
  ASSERT_EQ(c.n, 120);
  free(c.want);
  rm_rf(dir);
}

/* Reads dir from segment `from` and checks that exactly the frames of
 * segments >= from come, in order. */
static void expect_from(const char *dir, const struct gen *g, const uint64_t *seg, uint64_t n,
                        uint64_t from) {
  uint64_t first = 0;
  while (first < n && seg[first] < from) first++;
  struct tks_journal_reader *r;
  char err[1024];
  int rc = tks_journal_reader_open(&r, dir, from, TKS_CORRUPT_REFUSE, err, sizeof err);
  if (rc) TEST_FAIL("from %llu: %s", (unsigned long long)from, err);
  struct check c = {.g = g, .n = first, .want = malloc(g->hi + 8)};
  ASSERT(c.want);
  const void *p;
  size_t len;
  uint64_t total = 0;
  while ((rc = tks_journal_reader_next(r, &p, &len)) == 1) ASSERT_EQ(check_fn(&c, p, len), 0);
  ASSERT_EQ(rc, 0);
  ASSERT_U64_EQ(c.n, n);
  struct tks_journal_progress pr;
  tks_journal_reader_progress(r, &pr);
  for (uint64_t s = from; s <= seg[n - 1]; s++) {
    char path[600];
    seg_path(path, sizeof path, dir, s);
    total += (uint64_t)file_size(path);
  }
  ASSERT_U64_EQ(pr.bytes_total, total);
  ASSERT_U64_EQ(pr.segments, from <= seg[n - 1] ? seg[n - 1] - from + 1 : 0);
  tks_journal_reader_close(r);
  free(c.want);
}

TEST(reader_from_a_segment_skips_the_older_ones_and_refuses_a_gap_after_them) {
  struct gen g = {20000, 60000};
  uint64_t seg[120], n;
  char *dir = four_segments(&g, seg, &n);
  uint64_t newest = seg[n - 1];
  for (uint64_t from = 1; from <= newest + 2; from++) expect_from(dir, &g, seg, n, from);
  /* The segments a checkpoint covered may be gone already: the same. */
  char p1[600], p2[600], p3[600], err[1024] = "";
  seg_path(p1, sizeof p1, dir, 1);
  seg_path(p2, sizeof p2, dir, 2);
  seg_path(p3, sizeof p3, dir, 3);
  ASSERT_EQ(unlink(p1), 0);
  expect_from(dir, &g, seg, n, 2);
  expect_from(dir, &g, seg, n, 3);
  /* But from 2 with 2 missing (3 and after there) is a gap, named. */
  ASSERT_EQ(unlink(p2), 0);
  struct tks_journal_reader *r;
  for (int pol = 0; pol < 2; pol++) {
    ASSERT_EQ(tks_journal_reader_open(&r, dir, 2, pol ? TKS_CORRUPT_REFUSE : TKS_CORRUPT_TRUNCATE,
                                      err, sizeof err),
              -EBADMSG);
    char want[1200];
    snprintf(want, sizeof want,
             "journal: segment %s is missing (the replay starts at segment 2, the oldest after "
             "it is journal-00000000000000000003.tkj): refusing to replay past a gap",
             p2);
    ASSERT_CONTAINS(err, want);
  }
  expect_from(dir, &g, seg, n, 3);
  rm_rf(dir);
}

TEST(reader_of_a_missing_dir_is_empty_and_of_a_file_is_an_error) {
  char *dir = make_dir();
  char sub[600], err[1024];
  snprintf(sub, sizeof sub, "%s/never-made", dir);
  struct tks_journal_reader *r;
  ASSERT_EQ(tks_journal_reader_open(&r, sub, 7, TKS_CORRUPT_REFUSE, err, sizeof err), 0);
  const void *p;
  size_t len;
  ASSERT_EQ(tks_journal_reader_next(r, &p, &len), 0);
  struct tks_journal_progress pr;
  tks_journal_reader_progress(r, &pr);
  ASSERT_U64_EQ(pr.bytes_total, 0);
  ASSERT_U64_EQ(pr.bytes_done, 0);
  tks_journal_reader_close(r);
  spill(sub, (const uint8_t *)"x", 1);
  ASSERT_EQ(tks_journal_reader_open(&r, sub, 0, TKS_CORRUPT_REFUSE, err, sizeof err), -ENOTDIR);
  ASSERT_CONTAINS(err, sub);
  rm_rf(dir);
}

/* ---- the tail reader ------------------------------------------------------ */

/* Reads every frame the tail gives before (es, eo), checking them against
 * g from frame *n on; returns what the last call returned. */
static int tail_drain(struct tks_journal_tail *t, const struct gen *g, uint64_t *n, uint64_t es,
                      uint64_t eo) {
  uint8_t *want = malloc(g->hi + 8);
  ASSERT(want);
  const void *p;
  size_t len;
  int rc;
  while ((rc = tks_journal_tail_next(t, es, eo, &p, &len)) == 1) {
    size_t wl = gen_payload(g, *n, want);
    if (len != wl || memcmp(p, want, len) != 0)
      TEST_FAIL("tail frame %llu differs (len %zu, want %zu)", (unsigned long long)*n, len, wl);
    (*n)++;
  }
  free(want);
  return rc;
}

TEST(tail_reads_whole_frames_only_up_to_the_writers_end_across_segments) {
  char *dir = make_dir();
  char err[512] = "";
  struct gen g = {20000, 60000};
  struct tks_journal *j = tks_journal_open(dir, MIB, 0, err, sizeof err);
  ASSERT(j);
  uint64_t es, eo;
  tks_journal_written(j, &es, &eo);
  ASSERT_U64_EQ(es, 1);
  ASSERT_U64_EQ(eo, 0);
  struct tks_journal_tail *t;
  ASSERT_EQ(tks_journal_tail_open(&t, dir, es, eo, err, sizeof err), 0);
  uint64_t n = 0;
  ASSERT_EQ(tail_drain(t, &g, &n, es, eo), 0); /* nothing yet: segment 1 not made */
  write_range(j, &g, 0, 100);                  /* several segments */
  /* Frames appended and flushed after the end given are not read. */
  uint64_t es1, eo1;
  tks_journal_written(j, &es1, &eo1);
  ASSERT(es1 > 2);
  write_range(j, &g, 100, 130);
  ASSERT_EQ(tail_drain(t, &g, &n, es1, eo1), 0);
  ASSERT_U64_EQ(n, 100);
  uint64_t ws, wo;
  tks_journal_tail_where(t, &ws, &wo);
  ASSERT_U64_EQ(ws, es1);
  ASSERT_U64_EQ(wo, eo1);
  tks_journal_written(j, &es, &eo);
  ASSERT(tks_journal_tail_bytes(t, ws, wo, es, eo) > 30 * 20000);
  ASSERT_U64_EQ(tks_journal_tail_bytes(t, es, eo, es, eo), 0);
  ASSERT_U64_EQ(tks_journal_tail_bytes(t, es, eo, ws, wo), 0);
  ASSERT_EQ(tail_drain(t, &g, &n, es, eo), 0);
  ASSERT_U64_EQ(n, 130);
  ASSERT_U64_EQ(tks_journal_tail_gaps(t), 0);
  /* A seek back to a frame's end reads again from there. */
  tks_journal_tail_close(t);
  ASSERT_EQ(tks_journal_tail_open(&t, dir, ws, wo, err, sizeof err), 0);
  n = 100;
  ASSERT_EQ(tail_drain(t, &g, &n, es, eo), 0);
  ASSERT_U64_EQ(n, 130);
  ASSERT_EQ(tks_journal_tail_seek(t, 1, 0), 0);
  n = 0;
  ASSERT_EQ(tail_drain(t, &g, &n, es, eo), 0);
  ASSERT_U64_EQ(n, 130);
  tks_journal_tail_close(t);
  tks_journal_close(j);
  rm_rf(dir);
}

TEST(tail_seek_refuses_an_offset_inside_a_frame_and_a_missing_segment) {
  char *dir = make_dir();
  char err[512] = "";
  struct gen g = {10, 300};
  write_journal(dir, &g, 20, MIB);
  struct tks_journal_tail *t;
  uint64_t f3 = frame_off(&g, 3);
  ASSERT_EQ(tks_journal_tail_open(&t, dir, 1, f3, err, sizeof err), 0);
  uint64_t n = 3;
  ASSERT_EQ(tail_drain(t, &g, &n, 2, 0), 0);
  ASSERT_U64_EQ(n, 20);
  /* Every offset between two frame ends is refused. */
  for (uint64_t o = f3 + 1; o < frame_off(&g, 4); o++)
    ASSERT_EQ(tks_journal_tail_seek(t, 1, o), -EINVAL);
  ASSERT_CONTAINS(tks_journal_tail_error(t), "not where a frame ends");
  ASSERT_EQ(tks_journal_tail_seek(t, 1, frame_off(&g, 20) + 1), -EINVAL);
  ASSERT_EQ(tks_journal_tail_seek(t, 9, 100), -ENOENT);
  tks_journal_tail_close(t);
  ASSERT_EQ(tks_journal_tail_open(&t, dir, 1, f3 + 2, err, sizeof err), -EINVAL);
  ASSERT(t == NULL);
  ASSERT_CONTAINS(err, "not where a frame ends");
  rm_rf(dir);
}

TEST(tail_stops_at_a_bad_crc_a_bad_length_or_a_torn_frame_and_skips_the_segment) {
  char *dir = make_dir();
  char err[512] = "", path[600];
  struct gen g = {100, 400};
  /* Two segments: 0..9 in 1, 10..19 in 2. */
  struct tks_journal *j = tks_journal_open(dir, MIB, 0, err, sizeof err);
  ASSERT(j);
  write_range(j, &g, 0, 10);
  uint64_t next;
  ASSERT_EQ(tks_journal_rotate(j, &next), 0);
  write_range(j, &g, 10, 20);
  uint64_t es, eo;
  tks_journal_written(j, &es, &eo);
  tks_journal_close(j);
  ASSERT_U64_EQ(es, 2);
  seg_path(path, sizeof path, dir, 1);
  size_t len;
  uint8_t *orig = slurp(path, &len);
  for (int kind = 0; kind < 4; kind++) {
    uint8_t *b = malloc(len);
    ASSERT(b);
    memcpy(b, orig, len);
    size_t blen = len;
    uint64_t f5 = frame_off(&g, 5);
    if (kind == 0) b[f5 + TKS_JOURNAL_FRAME_HEADER + 3] ^= 0x10; /* payload bit */
    if (kind == 1) b[f5 + 3] = 0x7f;                             /* length far too long */
    if (kind == 2) memset(b + f5, 0, 4);                         /* zero length */
    if (kind == 3) blen = f5 + 6;                                /* torn */
    spill(path, b, blen);
    struct tks_journal_tail *t;
    ASSERT_EQ(tks_journal_tail_open(&t, dir, 1, 0, err, sizeof err), 0);
    uint64_t n = 0;
    ASSERT_EQ(tail_drain(t, &g, &n, es, eo), -EBADMSG);
    ASSERT_U64_EQ(n, 5);
    ASSERT_CONTAINS(tks_journal_tail_error(t), "no good frame at offset");
    uint64_t ws, wo;
    tks_journal_tail_where(t, &ws, &wo);
    ASSERT_U64_EQ(ws, 1);
    ASSERT_U64_EQ(wo, f5);
    ASSERT_EQ(tail_drain(t, &g, &n, es, eo), -EBADMSG); /* it stays */
    ASSERT_EQ(tks_journal_tail_skip(t), 0);
    n = 10;
    ASSERT_EQ(tail_drain(t, &g, &n, es, eo), 0);
    ASSERT_U64_EQ(n, 20);
    tks_journal_tail_close(t);
    free(b);
  }
  /* An end past the file's bytes (a hostile end) reads no torn frame. */
  spill(path, orig, len);
  struct tks_journal_tail *t;
  ASSERT_EQ(tks_journal_tail_open(&t, dir, 2, 0, err, sizeof err), 0);
  uint64_t n = 10;
  ASSERT_EQ(tail_drain(t, &g, &n, 2, eo + 5000), -EBADMSG);
  ASSERT_U64_EQ(n, 20);
  tks_journal_tail_close(t);
  /* A segment of garbage (no header) is refused, not read. */
  uint8_t junk[4096];
  uint64_t s = 7;
  for (size_t k = 0; k < sizeof junk; k++) junk[k] = (uint8_t)splitmix(&s);
  spill(path, junk, sizeof junk);
  ASSERT_EQ(tks_journal_tail_open(&t, dir, 1, 0, err, sizeof err), 0);
  n = 0;
  ASSERT_EQ(tail_drain(t, &g, &n, es, eo), -EBADMSG);
  ASSERT_U64_EQ(n, 0);
  ASSERT_CONTAINS(tks_journal_tail_error(t), "not a journal segment header");
  ASSERT_EQ(tks_journal_tail_skip(t), 0);
  n = 10;
  ASSERT_EQ(tail_drain(t, &g, &n, es, eo), 0);
  ASSERT_U64_EQ(n, 20);
  tks_journal_tail_close(t);
  free(orig);
  rm_rf(dir);
}

TEST(tail_steps_over_a_missing_segment_and_counts_the_gap) {
  char *dir = make_dir();
  char err[512] = "", path[600];
  struct gen g = {100, 400};
  struct tks_journal *j = tks_journal_open(dir, MIB, 0, err, sizeof err);
  ASSERT(j);
  uint64_t next;
  for (uint64_t k = 0; k < 3; k++) {
    write_range(j, &g, 10 * k, 10 * k + 10);
    ASSERT_EQ(tks_journal_rotate(j, &next), 0);
  }
  uint64_t es, eo;
  tks_journal_written(j, &es, &eo);
  tks_journal_close(j);
  seg_path(path, sizeof path, dir, 2);
  ASSERT_EQ(unlink(path), 0);
  uint64_t oldest = 0;
  ASSERT_EQ(tks_journal_oldest(dir, &oldest), 0);
  ASSERT_U64_EQ(oldest, 1);
  struct tks_journal_tail *t;
  ASSERT_EQ(tks_journal_tail_open(&t, dir, 1, 0, err, sizeof err), 0);
  /* Frames 0..9, then 20..29: segment 2 is stepped over. */
  uint8_t *want = malloc(g.hi + 8);
  ASSERT(want);
  const void *p;
  size_t len;
  uint64_t got = 0;
  while (tks_journal_tail_next(t, es, eo, &p, &len) == 1) {
    uint64_t i = got < 10 ? got : got + 10;
    size_t wl = gen_payload(&g, i, want);
    ASSERT(len == wl && memcmp(p, want, len) == 0);
    got++;
  }
  free(want);
  ASSERT_U64_EQ(got, 20);
  ASSERT_U64_EQ(tks_journal_tail_gaps(t), 1);
  tks_journal_tail_close(t);
  rm_rf(dir);
}

TEST_MAIN()

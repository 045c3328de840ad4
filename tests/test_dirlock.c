/*
 * Unit tests of lib/dirlock.c: the lock is taken, refused to a second open
 * file (in this process, or in another one) with the holder's pid, free
 * again once the holder closes it or dies (kill -9), and the pid text a
 * holder left is read safely whatever the file holds: truncated,
 * bit-flipped, oversized and random contents, checked against a parser of
 * this file's own.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dirlock.h"
#include "harness.h"
#include "test.h"

#define ERR_MAX 1024

static void lock_path(char *out, size_t n, const char *dir) {
  snprintf(out, n, "%s/%s", dir, TKS_DIRLOCK_NAME);
}

static char *file_text(const char *path) {
  char *s = read_file(path);
  if (!s) TEST_FAIL("cannot read %s", path);
  return s;
}

static void expect_busy_with_pid(const char *dir, long pid) {
  char err[ERR_MAX], want[ERR_MAX];
  int fd = 12345;
  ASSERT_EQ(tks_dirlock_take(dir, "journal.dir", &fd, err, sizeof err), -EBUSY);
  ASSERT_EQ(fd, -1);
  snprintf(want, sizeof want, "journal.dir %s is in use by pid %ld", dir, pid);
  ASSERT_STR_EQ(err, want);
}

TEST(take_creates_the_directory_and_writes_the_pid) {
  char base[64], dir[128], path[256], want[32];
  harness_mkdtemp(base, sizeof base);
  snprintf(dir, sizeof dir, "%s/a/b/journal", base);
  char err[ERR_MAX] = "junk";
  int fd = -1;
  ASSERT_EQ(tks_dirlock_take(dir, "journal.dir", &fd, err, sizeof err), 0);
  ASSERT(fd >= 0);
  ASSERT_STR_EQ(err, "");
  struct stat st;
  ASSERT_EQ(stat(dir, &st), 0);
  ASSERT(S_ISDIR(st.st_mode));
  ASSERT_EQ(st.st_mode & 07777 & ~0750u, 0);
  lock_path(path, sizeof path, dir);
  ASSERT_EQ(stat(path, &st), 0);
  ASSERT(S_ISREG(st.st_mode));
  ASSERT_EQ(st.st_mode & 07777 & ~0640u, 0);
  snprintf(want, sizeof want, "%ld\n", (long)getpid());
  char *text = file_text(path);
  ASSERT_STR_EQ(text, want);
  free(text);
  ASSERT((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  tks_dirlock_release(fd);
}

TEST(a_second_take_is_refused_naming_the_holders_pid_until_it_is_released) {
  char dir[64];
  harness_mkdtemp(dir, sizeof dir);
  char err[ERR_MAX];
  int fd;
  ASSERT_EQ(tks_dirlock_take(dir, "journal.dir", &fd, err, sizeof err), 0);
  /* flock belongs to the open file: a second open in the same process is
   * refused as another process would be. */
  expect_busy_with_pid(dir, (long)getpid());
  expect_busy_with_pid(dir, (long)getpid());
  tks_dirlock_release(fd);
  int fd2;
  ASSERT_EQ(tks_dirlock_take(dir, "journal.dir", &fd2, err, sizeof err), 0);
  tks_dirlock_release(fd2);
  tks_dirlock_release(-1); /* a no-op */
}

TEST(the_what_names_the_directory_in_the_message) {
  char dir[64], err[ERR_MAX], want[ERR_MAX];
  harness_mkdtemp(dir, sizeof dir);
  int fd, fd2;
  ASSERT_EQ(tks_dirlock_take(dir, "archive.dir", &fd, err, sizeof err), 0);
  ASSERT_EQ(tks_dirlock_take(dir, "archive.dir", &fd2, err, sizeof err), -EBUSY);
  snprintf(want, sizeof want, "archive.dir %s is in use by pid %ld", dir, (long)getpid());
  ASSERT_STR_EQ(err, want);
  ASSERT_EQ(tks_dirlock_take(dir, "archive.dir", &fd2, NULL, 0), -EBUSY); /* no err buffer */
  tks_dirlock_release(fd);
}

/* A child takes the lock and waits; the parent is refused with the child's
 * pid; once the child is killed (-9), the parent takes it and its own pid
 * replaces the dead one's in the file. */
TEST(a_lock_held_by_a_process_killed_with_sigkill_is_free_again) {
  char dir[64], path[128], want[32];
  harness_mkdtemp(dir, sizeof dir);
  lock_path(path, sizeof path, dir);
  /* A longer stale text before: the new pid must not keep its tail. */
  write_file(path, "2147483647\ntrailing bytes of an older holder\n");
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT(child >= 0);
  if (child == 0) {
    char err[ERR_MAX];
    int fd;
    char ok = tks_dirlock_take(dir, "journal.dir", &fd, err, sizeof err) == 0 ? 'y' : 'n';
    if (write(ready[1], &ok, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char ok = 0;
  ASSERT_EQ(read(ready[0], &ok, 1), 1);
  close(ready[0]);
  ASSERT_EQ(ok, 'y');
  snprintf(want, sizeof want, "%ld\n", (long)child);
  char *text = file_text(path);
  ASSERT_STR_EQ(text, want);
  free(text);
  expect_busy_with_pid(dir, (long)child);

  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT(WIFSIGNALED(status));
  /* The file is still there, naming the dead child: it blocks no one. */
  text = file_text(path);
  ASSERT_STR_EQ(text, want);
  free(text);
  char err[ERR_MAX];
  int fd;
  ASSERT_EQ(tks_dirlock_take(dir, "journal.dir", &fd, err, sizeof err), 0);
  snprintf(want, sizeof want, "%ld\n", (long)getpid());
  text = file_text(path);
  ASSERT_STR_EQ(text, want);
  free(text);
  tks_dirlock_release(fd);
}

/* kill -9 of a daemon whose forked child (a checkpoint writer) still holds
 * the lock for a moment: the next take waits for the child, it is not
 * refused; a dead holder's child that never lets go is refused after
 * TKS_DIRLOCK_DEAD_WAIT_MS. */
static pid_t holder_with_child(const char *dir, int child_ms, pid_t *grandchild) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t p = fork();
  ASSERT(p >= 0);
  if (p == 0) {
    char err[ERR_MAX];
    int fd;
    if (tks_dirlock_take(dir, "journal.dir", &fd, err, sizeof err) != 0) _exit(1);
    pid_t g = fork();
    if (g == 0) { /* holds the inherited open file for child_ms */
      char msg[1 + sizeof(pid_t)] = {'y'};
      pid_t me = getpid();
      memcpy(msg + 1, &me, sizeof me);
      if (write(ready[1], msg, sizeof msg) != (ssize_t)sizeof msg) _exit(1);
      usleep((useconds_t)child_ms * 1000);
      _exit(0);
    }
    pause();
    _exit(0);
  }
  close(ready[1]);
  char y = 0;
  ASSERT_EQ(read(ready[0], &y, 1), 1);
  ASSERT_EQ(y, 'y');
  ASSERT_EQ(read(ready[0], grandchild, sizeof *grandchild), (ssize_t)sizeof *grandchild);
  close(ready[0]);
  return p;
}

TEST(a_lock_a_dead_holders_child_still_holds_is_waited_for) {
  char dir[64];
  harness_mkdtemp(dir, sizeof dir);
  pid_t g;
  pid_t p = holder_with_child(dir, 400, &g);
  ASSERT_EQ(kill(p, SIGKILL), 0);
  ASSERT_EQ(waitpid(p, NULL, 0), p);
  char err[ERR_MAX];
  int fd;
  uint64_t t0 = now_ms();
  ASSERT_EQ(tks_dirlock_take(dir, "journal.dir", &fd, err, sizeof err), -EBUSY); /* no wait */
  ASSERT_EQ(
      tks_dirlock_take_waiting(dir, "journal.dir", TKS_DIRLOCK_DEAD_WAIT_MS, &fd, err, sizeof err),
      0);
  printf("  taken %llu ms after the holder died (its child held it 400 ms)\n",
         (unsigned long long)(now_ms() - t0));
  tks_dirlock_release(fd);
  /* A live holder is refused at once, child or not. */
  p = holder_with_child(dir, 60000, &g);
  t0 = now_ms();
  ASSERT_EQ(
      tks_dirlock_take_waiting(dir, "journal.dir", TKS_DIRLOCK_DEAD_WAIT_MS, &fd, err, sizeof err),
      -EBUSY);
  ASSERT(now_ms() - t0 < 1000);
  kill(g, SIGKILL);
  kill(p, SIGKILL);
  waitpid(p, NULL, 0);
}

/* The lock held by a bare open + flock over a file of the given content:
 * take is refused, naming the pid when the text holds one, else saying
 * that it does not; the refused take leaves the file as it was. */
static void expect_busy_over(const char *dir, const void *content, size_t len, long pid) {
  char path[128], err[ERR_MAX], want[ERR_MAX];
  lock_path(path, sizeof path, dir);
  int h = open(path, O_RDWR | O_CREAT | O_TRUNC, 0640);
  ASSERT(h >= 0);
  ASSERT_EQ(write(h, content, len), (ssize_t)len);
  ASSERT_EQ(flock(h, LOCK_EX | LOCK_NB), 0);
  int fd = 7;
  ASSERT_EQ(tks_dirlock_take(dir, "journal.dir", &fd, err, sizeof err), -EBUSY);
  ASSERT_EQ(fd, -1);
  if (pid > 0) {
    snprintf(want, sizeof want, "journal.dir %s is in use by pid %ld", dir, pid);
    ASSERT_STR_EQ(err, want);
  } else {
    snprintf(want, sizeof want, "journal.dir %s is in use by another process (no pid in %s: ", dir,
             path);
    ASSERT_CONTAINS(err, want);
  }
  close(h);
  /* The refused take changed nothing in the file. */
  char *text = read_file(path);
  ASSERT(text);
  ASSERT_EQ(memcmp(text, content, len < 64 ? len : 64), 0);
  free(text);
}

TEST(a_refused_take_says_so_when_the_holders_file_has_no_pid) {
  char dir[64];
  harness_mkdtemp(dir, sizeof dir);
  expect_busy_over(dir, "", 0, 0);
  expect_busy_over(dir, "abc\n", 4, 0);
  expect_busy_over(dir, " 42\n", 4, 0);
  expect_busy_over(dir, "-42\n", 4, 0);
  expect_busy_over(dir, "+42\n", 4, 0);
  expect_busy_over(dir, "42 \n", 4, 0);
  expect_busy_over(dir, "0\n", 2, 0);
  expect_busy_over(dir, "2147483648\n", 11, 0);
  expect_busy_over(dir, "99999999999999999999999\n", 24, 0);
  expect_busy_over(dir, "4\0002\n", 4, 0);
  expect_busy_over(dir, "42\n", 3, 42);
  expect_busy_over(dir, "42", 2, 42);
  expect_busy_over(dir, "2147483647\n", 11, 2147483647);
  expect_busy_over(dir, "77\nanything after the line\x01\xff", 28, 77);
  /* Oversized: only the first TKS_DIRLOCK_READ_MAX bytes are read. */
  static char big[1 << 20];
  memset(big, '7', sizeof big);
  expect_busy_over(dir, big, sizeof big, 0);
  memcpy(big, "31337\n", 6);
  expect_busy_over(dir, big, sizeof big, 31337);
  char err[ERR_MAX];
  int fd;
  ASSERT_EQ(tks_dirlock_take(dir, "journal.dir", &fd, err, sizeof err), 0);
  tks_dirlock_release(fd);
}

TEST(a_lock_path_that_is_not_a_regular_file_is_refused) {
  char dir[64], path[128], err[ERR_MAX];
  harness_mkdtemp(dir, sizeof dir);
  lock_path(path, sizeof path, dir);
  ASSERT_EQ(mkdir(path, 0750), 0);
  int fd = 3;
  ASSERT_EQ(tks_dirlock_take(dir, "journal.dir", &fd, err, sizeof err), -EISDIR);
  ASSERT_EQ(fd, -1);
  ASSERT_CONTAINS(err, "cannot lock");
  ASSERT_CONTAINS(err, path);
  ASSERT_EQ(rmdir(path), 0);
  /* A FIFO opens (O_RDWR does not wait for a peer) but is no lock file. */
  ASSERT_EQ(mkfifo(path, 0640), 0);
  fd = 3;
  ASSERT_EQ(tks_dirlock_take(dir, "journal.dir", &fd, err, sizeof err), -EINVAL);
  ASSERT_EQ(fd, -1);
  ASSERT_CONTAINS(err, "not a regular file");
  ASSERT_CONTAINS(err, path);
  ASSERT_EQ(unlink(path), 0);
  /* A symlink is not followed (it might point anywhere). */
  char target[128];
  snprintf(target, sizeof target, "%s/elsewhere", dir);
  ASSERT_EQ(symlink(target, path), 0);
  ASSERT_EQ(tks_dirlock_take(dir, "journal.dir", &fd, err, sizeof err), -ELOOP);
  ASSERT_EQ(fd, -1);
  ASSERT_CONTAINS(err, "cannot lock");
  ASSERT_EQ(access(target, F_OK), -1);
}

TEST(a_directory_that_cannot_be_made_is_an_error_naming_it) {
  char base[64], dir[128], err[ERR_MAX];
  harness_mkdtemp(base, sizeof base);
  snprintf(dir, sizeof dir, "%s/file", base);
  write_file(dir, "not a directory\n");
  int fd = 3;
  ASSERT_EQ(tks_dirlock_take(dir, "journal.dir", &fd, err, sizeof err), -ENOTDIR);
  ASSERT_EQ(fd, -1);
  ASSERT_CONTAINS(err, "journal.dir ");
  ASSERT_CONTAINS(err, dir);
  ASSERT_CONTAINS(err, "Not a directory");
  ASSERT_EQ(tks_dirlock_take("", "journal.dir", &fd, err, sizeof err), -ENOENT);
  /* A path over PATH_MAX. */
  static char longdir[PATH_MAX + 16];
  memset(longdir, 'x', sizeof longdir - 1);
  longdir[0] = '/';
  ASSERT_EQ(tks_dirlock_take(longdir, "journal.dir", &fd, err, sizeof err), -ENAMETOOLONG);
  ASSERT_EQ(fd, -1);
}

/* ---- the pid text ---- */

/* The reference: digits, then '\n' or the end; 1..INT_MAX. */
static int ref_parse(const unsigned char *p, size_t len, long long *out) {
  if (len == 0) return -ENODATA;
  size_t i = 0;
  while (i < len && p[i] >= '0' && p[i] <= '9') i++;
  if (i == 0) return -EINVAL;
  if (i < len && p[i] != '\n') return -EINVAL;
  if (i > 10) return -ERANGE;
  long long v = 0;
  for (size_t k = 0; k < i; k++) v = v * 10 + (p[k] - '0');
  if (v == 0 || v > INT_MAX) return -ERANGE;
  *out = v;
  return 0;
}

/* Parses exactly len bytes (a malloc of that size, so ASan sees a read
 * past them) and compares with the reference. */
static void check_parse(const void *data, size_t len) {
  unsigned char *p = calloc(len ? len : 1, 1);
  ASSERT(p);
  if (len) memcpy(p, data, len);
  pid_t pid = -7;
  long long want = 0;
  int rc = tks_dirlock_parse_pid(p, len, &pid);
  int ref = ref_parse(p, len, &want);
  if (rc != ref) {
    /* More than 10 digits then a bad byte: either error is fine. */
    if (!(rc < 0 && ref < 0)) TEST_FAIL("parse of %zu bytes: got %d, reference %d", len, rc, ref);
  }
  if (rc == 0) {
    ASSERT_EQ(pid, want);
    ASSERT(pid > 0);
  } else {
    ASSERT_EQ(pid, -7); /* untouched */
    ASSERT(rc == -ENODATA || rc == -EINVAL || rc == -ERANGE);
  }
  free(p);
}

TEST(the_pid_text_is_parsed_strictly) {
  pid_t pid;
  ASSERT_EQ(tks_dirlock_parse_pid("1234\n", 5, &pid), 0);
  ASSERT_EQ(pid, 1234);
  ASSERT_EQ(tks_dirlock_parse_pid("1234", 4, &pid), 0);
  ASSERT_EQ(pid, 1234);
  ASSERT_EQ(tks_dirlock_parse_pid("1234\nxyz", 8, &pid), 0);
  ASSERT_EQ(pid, 1234);
  ASSERT_EQ(tks_dirlock_parse_pid("0001\n", 5, &pid), 0);
  ASSERT_EQ(pid, 1);
  ASSERT_EQ(tks_dirlock_parse_pid("", 0, &pid), -ENODATA);
  ASSERT_EQ(tks_dirlock_parse_pid("\n", 1, &pid), -EINVAL);
  ASSERT_EQ(tks_dirlock_parse_pid("12x\n", 4, &pid), -EINVAL);
  ASSERT_EQ(tks_dirlock_parse_pid("12\r\n", 4, &pid), -EINVAL);
  ASSERT_EQ(tks_dirlock_parse_pid("0\n", 2, &pid), -ERANGE);
  ASSERT_EQ(tks_dirlock_parse_pid("2147483648", 10, &pid), -ERANGE);
  ASSERT_EQ(tks_dirlock_parse_pid("12345678901", 11, &pid), -ERANGE);
}

TEST(every_prefix_and_every_bit_flip_of_a_pid_text_parses_as_the_reference_does) {
  const char text[] = "4194304\n";
  size_t n = sizeof text - 1;
  for (size_t len = 0; len <= n; len++) check_parse(text, len);
  unsigned char buf[sizeof text];
  for (size_t i = 0; i < n; i++)
    for (int bit = 0; bit < 8; bit++) {
      memcpy(buf, text, n);
      buf[i] ^= (unsigned char)(1u << bit);
      check_parse(buf, n);
    }
}

TEST(random_and_oversized_pid_texts_parse_as_the_reference_does) {
  unsigned seed = 12345;
  static unsigned char buf[1 << 16];
  static const char alphabet[] = "0123456789\n\n0123456789x -+\r";
  for (int round = 0; round < 20000; round++) {
    size_t len = (size_t)(rand_r(&seed) % 40);
    bool digits = rand_r(&seed) % 2;
    for (size_t i = 0; i < len; i++)
      buf[i] = digits ? (unsigned char)alphabet[rand_r(&seed) % (sizeof alphabet - 1)]
                      : (unsigned char)rand_r(&seed);
    check_parse(buf, len);
  }
  memset(buf, '9', sizeof buf);
  check_parse(buf, sizeof buf);
  memcpy(buf, "1\n", 2);
  check_parse(buf, sizeof buf);
}

TEST_MAIN()

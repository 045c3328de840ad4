/*
 * The directory lock: open (or create) <dir>/tickslabd.lock, flock it
 * LOCK_EX | LOCK_NB, then write our pid over what a dead holder left
 * (pwrite first, ftruncate after, so a reader never sees an empty file
 * between two pids, only an old or a new one).  A process refused reads
 * the pid back to name the holder.  flock, not fcntl locks: an fcntl lock
 * is dropped when any fd of the file is closed in the process, a flock
 * only with the open file it was taken on.
 */
#include "dirlock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

int tks_dirlock_parse_pid(const void *buf, size_t len, pid_t *pid) {
  const unsigned char *p = buf;
  if (len == 0) return -ENODATA;
  uint64_t v = 0;
  size_t i = 0;
  for (; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
    if (i == 10) return -ERANGE;
    v = v * 10 + (uint64_t)(p[i] - '0');
  }
  if (i == 0 || (i < len && p[i] != '\n')) return -EINVAL;
  if (v == 0 || v > INT_MAX) return -ERANGE;
  *pid = (pid_t)v;
  return 0;
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

/* True when the file names a process that is gone: the lock is then held
 * by a forked child of it (a checkpoint or seal writer: they share the
 * open file), which dies with its parent (PR_SET_PDEATHSIG) in a moment. */
static bool holder_gone(int fd) {
  char buf[TKS_DIRLOCK_READ_MAX];
  ssize_t n;
  do n = pread(fd, buf, sizeof buf, 0);
  while (n < 0 && errno == EINTR);
  pid_t pid;
  if (n <= 0 || tks_dirlock_parse_pid(buf, (size_t)n, &pid) != 0 || pid == getpid()) return false;
  return kill(pid, 0) < 0 && errno == ESRCH;
}

/* The lock is held by another open file: name its holder from the file. */
static void explain_busy(int fd, const char *what, const char *dir, const char *path, char *err,
                         size_t errlen) {
  char buf[TKS_DIRLOCK_READ_MAX];
  ssize_t n;
  do n = pread(fd, buf, sizeof buf, 0);
  while (n < 0 && errno == EINTR);
  pid_t pid = 0;
  int rc = n < 0 ? -errno : tks_dirlock_parse_pid(buf, (size_t)n, &pid);
  if (rc == 0) {
    set_err(err, errlen, "%s %s is in use by pid %ld", what, dir, (long)pid);
    return;
  }
  const char *why = n < 0            ? strerror(-rc)
                    : rc == -ENODATA ? "the file is empty (its holder may be starting)"
                    : rc == -ERANGE  ? "its number is out of range"
                                     : "it holds no pid";
  set_err(err, errlen, "%s %s is in use by another process (no pid in %s: %s)", what, dir, path,
          why);
}

int tks_dirlock_take(const char *dir, const char *what, int *fd_out, char *err, size_t errlen) {
  return tks_dirlock_take_waiting(dir, what, 0, fd_out, err, errlen);
}

int tks_dirlock_take_waiting(const char *dir, const char *what, unsigned dead_wait_ms, int *fd_out,
                             char *err, size_t errlen) {
  char path[PATH_MAX];
  int fd = -1, rc;
  *fd_out = -1;
  if (err && errlen) err[0] = 0;
  int len = snprintf(path, sizeof path, "%s/%s", dir, TKS_DIRLOCK_NAME);
  if (len < 0 || (size_t)len >= sizeof path) {
    rc = -ENAMETOOLONG;
    goto fail;
  }
  if ((rc = tks_mkdir_p(dir))) goto fail;
  /* O_NOFOLLOW: the lock is this file, not what a link points to. */
  fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
  if (fd < 0) goto fail_errno;
  struct stat st;
  if (fstat(fd, &st) < 0) goto fail_errno;
  if (!S_ISREG(st.st_mode)) {
    rc = -EINVAL;
    set_err(err, errlen, "%s %s: cannot lock %s: not a regular file", what, dir, path);
    goto out;
  }
  unsigned waited_ms = 0;
  while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK && waited_ms < dead_wait_ms && holder_gone(fd)) {
      usleep(10000); /* the dead holder's child is going too */
      waited_ms += 10;
      continue;
    }
    if (errno == EWOULDBLOCK) {
      explain_busy(fd, what, dir, path, err, errlen);
      rc = -EBUSY;
      goto out;
    }
    goto fail_errno;
  }
  /* The pid is for the message of the one refused; the lock holds without
   * it, so a failed write (a full disk) is not an error. */
  char text[24];
  int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
  if (pwrite(fd, text, (size_t)n, 0) == n) {
    /* Cut what a longer old pid left after ours; failing that, ours still
     * reads (the parser stops at the newline). */
    if (ftruncate(fd, n) < 0) errno = 0;
  }
  *fd_out = fd;
  return 0;

fail_errno:
  rc = -errno;
fail:
  set_err(err, errlen, "%s %s: cannot lock %s: %s", what, dir, path, strerror(-rc));
out:
  if (fd >= 0) close(fd);
  return rc;
}

void tks_dirlock_release(int fd) {
  if (fd >= 0) close(fd);
}

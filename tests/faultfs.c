/*
 * A fault seam for the daemon suites: an LD_PRELOAD library that makes
 * write, pwrite, fsync and fdatasync fail on files under one directory, as
 * a failing disk would.  Set by the environment of the process it is loaded
 * into (read once, at the first call):
 *
 *   FAULTFS_DIR     the directory (a prefix of the file's /proc/self/fd path)
 *   FAULTFS_OPS     which calls fail: a comma list of write, pwrite, fsync,
 *                   fdatasync ("sync" is both fsync and fdatasync)
 *   FAULTFS_ERRNO   EIO (default), ENOSPC, or none: the calls succeed (slowed
 *                   by FAULTFS_DELAY_MS)
 *   FAULTFS_DELAY_MS milliseconds each matching call sleeps first (0), as a
 *                   slow disk would
 *   FAULTFS_AFTER   matching calls that succeed before the first failure (0)
 *   FAULTFS_TIMES   failures, then calls succeed again (0: fail forever)
 *   FAULTFS_ARM     if set, a file: calls fail only while it exists, and
 *                   AFTER and TIMES count the calls made while it does
 *
 * Only calls on files under FAULTFS_DIR count.  The real calls are found
 * with dlsym(RTLD_NEXT), so the library works under AddressSanitizer too
 * (whose interceptors come next) once ASAN_OPTIONS has
 * verify_asan_link_order=0.  Not thread-safe in its counting beyond what
 * the atomics give; the daemon's journal has one writer thread.
 */
#undef _FILE_OFFSET_BITS /* define pwrite and pwrite64 both, not pwrite as pwrite64 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

enum { OP_WRITE = 1, OP_PWRITE = 2, OP_FSYNC = 4, OP_FDATASYNC = 8 };

static struct {
  atomic_int ready; /* 0 not read, 1 reading, 2 read */
  char dir[PATH_MAX];
  size_t dir_len;
  char arm[PATH_MAX];
  int ops, err;
  long after, times, delay_ms;
  atomic_long calls;
} F;

static void setup(void) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&F.ready, &expected, 1)) {
    while (atomic_load(&F.ready) != 2) {
    }
    return;
  }
  const char *d = getenv("FAULTFS_DIR");
  if (d && *d) {
    snprintf(F.dir, sizeof F.dir, "%s", d);
    F.dir_len = strlen(F.dir);
    while (F.dir_len > 1 && F.dir[F.dir_len - 1] == '/') F.dir[--F.dir_len] = '\0';
  }
  const char *o = getenv("FAULTFS_OPS");
  if (o) {
    if (strstr(o, "pwrite")) F.ops |= OP_PWRITE;
    /* "write" alone, not only as part of "pwrite" */
    for (const char *p = o; (p = strstr(p, "write")); p += 5)
      if (p == o || p[-1] != 'p') F.ops |= OP_WRITE;
    if (strstr(o, "fsync")) F.ops |= OP_FSYNC;
    if (strstr(o, "fdatasync")) F.ops |= OP_FDATASYNC;
    for (const char *p = o; (p = strstr(p, "sync")); p += 4)
      if (p == o || p[-1] == ',') F.ops |= OP_FSYNC | OP_FDATASYNC;
  }
  const char *e = getenv("FAULTFS_ERRNO");
  F.err = e && strcmp(e, "ENOSPC") == 0 ? ENOSPC : e && strcmp(e, "none") == 0 ? 0 : EIO;
  const char *dl = getenv("FAULTFS_DELAY_MS");
  F.delay_ms = dl ? strtol(dl, NULL, 10) : 0;
  const char *a = getenv("FAULTFS_AFTER");
  F.after = a ? strtol(a, NULL, 10) : 0;
  const char *arm = getenv("FAULTFS_ARM");
  if (arm) snprintf(F.arm, sizeof F.arm, "%s", arm);
  const char *t = getenv("FAULTFS_TIMES");
  F.times = t ? strtol(t, NULL, 10) : 0;
  atomic_store(&F.ready, 2);
}

/* Whether this call on fd is to fail (and then errno is set). */
static int should_fail(int op, int fd) {
  if (atomic_load(&F.ready) != 2) setup();
  if (!(F.ops & op) || F.dir_len == 0) return 0;
  char link[64], path[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return 0;
  path[n] = '\0';
  if ((size_t)n < F.dir_len || memcmp(path, F.dir, F.dir_len) != 0 ||
      (path[F.dir_len] != '/' && path[F.dir_len] != '\0'))
    return 0;
  if (F.arm[0] && access(F.arm, F_OK) != 0) return 0;
  long k = atomic_fetch_add(&F.calls, 1);
  if (k < F.after || (F.times > 0 && k >= F.after + F.times)) return 0;
  if (F.delay_ms > 0) usleep((useconds_t)F.delay_ms * 1000);
  if (!F.err) return 0;
  errno = F.err;
  return 1;
}

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void *, size_t, off64_t);
typedef int (*sync_fn)(int);

#define REAL(name, type)   \
  static type real_##name; \
  if (!real_##name) real_##name = (type)dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t n) {
  REAL(write, write_fn);
  if (should_fail(OP_WRITE, fd)) return -1;
  return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  REAL(pwrite, pwrite_fn);
  if (should_fail(OP_PWRITE, fd)) return -1;
  return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
  REAL(pwrite64, pwrite64_fn);
  if (should_fail(OP_PWRITE, fd)) return -1;
  return real_pwrite64(fd, buf, n, off);
}

int fsync(int fd) {
  REAL(fsync, sync_fn);
  if (should_fail(OP_FSYNC, fd)) return -1;
  return real_fsync(fd);
}

int fdatasync(int fd) {
  REAL(fdatasync, sync_fn);
  if (should_fail(OP_FDATASYNC, fd)) return -1;
  return real_fdatasync(fd);
}

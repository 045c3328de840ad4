/*
 * libFuzzer target: the directory lock's reading of a holder's lock file
 * (lib/dirlock.c).  The input is the file's content: parsed directly
 * (tks_dirlock_parse_pid on exactly the input's bytes, checked against a
 * parser of this file's own), and read by a refused tks_dirlock_take while
 * another open file holds the lock, in a temporary directory (on /dev/shm
 * where there is one).  Checked: the parse agrees with the reference; the
 * refusal is -EBUSY with one of the two messages, naming the pid exactly
 * when the first TKS_DIRLOCK_READ_MAX bytes hold one; the file is left as
 * it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "dirlock.h"
#include "fuzz.h"

static char dir[64], path[128];

/* digits, then '\n' or the end; 1..INT_MAX. */
static int ref_parse(const uint8_t *p, size_t len, long long *out) {
  if (len == 0) return -ENODATA;
  size_t i = 0;
  while (i < len && p[i] >= '0' && p[i] <= '9') i++;
  if (i == 0 || (i < len && p[i] != '\n')) return -EINVAL;
  if (i > 10) return -ERANGE;
  long long v = 0;
  for (size_t k = 0; k < i; k++) v = v * 10 + (p[k] - '0');
  if (v == 0 || v > INT_MAX) return -ERANGE;
  *out = v;
  return 0;
}

static void remove_dir(void) {
  unlink(path);
  rmdir(dir);
}

static void setup(void) {
  if (dir[0]) return;
  const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(dir, sizeof dir, "%s/fuzz-dirlock-XXXXXX", base);
  FUZZ_CHECK(mkdtemp(dir), "mkdtemp %s", dir);
  snprintf(path, sizeof path, "%s/%s", dir, TKS_DIRLOCK_NAME);
  atexit(remove_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  pid_t pid = -1;
  long long want = 0;
  int rc = tks_dirlock_parse_pid(data, size, &pid);
  int ref = ref_parse(data, size, &want);
  FUZZ_CHECK(rc == ref || (rc < 0 && ref < 0), "parse %d, reference %d", rc, ref);
  FUZZ_CHECK(rc == 0 ? pid == want && pid > 0 : pid == -1, "pid %ld", (long)pid);
  FUZZ_CHECK(rc == 0 || rc == -ENODATA || rc == -EINVAL || rc == -ERANGE, "rc %d", rc);

  /* The same bytes as a holder's file. */
  int h = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  FUZZ_CHECK(h >= 0, "open %s", path);
  FUZZ_CHECK(size == 0 || write(h, data, size) == (ssize_t)size, "write %s", path);
  FUZZ_CHECK(flock(h, LOCK_EX | LOCK_NB) == 0, "flock %s", path);
  char err[1024];
  int fd = 99;
  int r = tks_dirlock_take(dir, "journal.dir", &fd, err, sizeof err);
  FUZZ_CHECK(r == -EBUSY && fd == -1, "take %d fd %d", r, fd);
  size_t head = size < TKS_DIRLOCK_READ_MAX ? size : TKS_DIRLOCK_READ_MAX;
  long long hp = 0;
  char want_msg[1024];
  if (ref_parse(data, head, &hp) == 0)
    snprintf(want_msg, sizeof want_msg, "journal.dir %s is in use by pid %lld", dir, hp);
  else
    snprintf(want_msg, sizeof want_msg, "journal.dir %s is in use by another process (no pid in ",
             dir);
  FUZZ_CHECK(strncmp(err, want_msg, strlen(want_msg)) == 0 &&
                 (hp == 0 || strlen(err) == strlen(want_msg)),
             "message \"%s\", want \"%s\"", err, want_msg);
  /* Left as it was. */
  uint8_t back[TKS_DIRLOCK_READ_MAX];
  ssize_t n = pread(h, back, sizeof back, 0);
  FUZZ_CHECK(n == (ssize_t)head && memcmp(back, data, head) == 0, "the file changed");
  close(h);
  return 0;
}

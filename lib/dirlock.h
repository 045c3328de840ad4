/*
 * One process per directory: an exclusive flock(2) on a lock file in the
 * directory (TKS_DIRLOCK_NAME), taken before anything in it is read and
 * held for the life of the process.  The kernel releases it when the
 * process ends however it ends (kill -9 too), so a stale file left behind
 * blocks no one: the lock is the flock, not the file.  The file holds the
 * holder's pid as text ("1234\n"), written once the lock is held, so that
 * the one refused can say who holds it (in the moment between a new
 * holder's flock and its write, the file still names the one before).
 * The file is never removed: removing it would let two processes lock two
 * different inodes.
 */
#ifndef TKS_DIRLOCK_H
#define TKS_DIRLOCK_H

#include <stddef.h>
#include <sys/types.h>

#define TKS_DIRLOCK_NAME "tickslabd.lock"
#define TKS_DIRLOCK_READ_MAX 64       /* bytes of the file read for the pid */
#define TKS_DIRLOCK_DEAD_WAIT_MS 5000 /* see tks_dirlock_take: a dead holder's child */

/*
 * Takes the lock of dir, creating dir (mode 0750, as tks_mkdir_p) and the
 * lock file (mode 0640) if missing, and writes this process's pid into
 * the file.  what names the directory in messages ("journal.dir").
 * Returns 0 and the lock's fd in *fd_out (close-on-exec; the lock lasts
 * until it is closed or the process ends), or:
 *   -EBUSY  another open file (another process) holds it; err says
 *           "<what> <dir> is in use by pid N", or, when the file holds no
 *           pid that can be read, "<what> <dir> is in use by another
 *           process (no pid in <file>: <why>)";
 *   -errno  the directory or the file cannot be made, opened or locked
 *           (err: "<what> <dir>: cannot lock <file>: <strerror>"), or the
 *           lock file is not a regular file (-EINVAL).
 * A pid that cannot be written after the lock is held (a full disk) is
 * not an error: the lock holds, and the file says less.  *fd_out is -1
 * on every error.
 */
int tks_dirlock_take(const char *dir, const char *what, int *fd_out, char *err, size_t errlen);

/* The same, but when the file names a process that is gone and the lock is
 * still held, the holder is a child it forked (they share the open file: a
 * checkpoint or archive seal writer, which dies with its parent), so the
 * lock is tried again for up to dead_wait_ms (the daemon gives
 * TKS_DIRLOCK_DEAD_WAIT_MS) before it is refused: a restart right after
 * kill -9 does not fail for a child still exiting. */
int tks_dirlock_take_waiting(const char *dir, const char *what, unsigned dead_wait_ms, int *fd_out,
                             char *err, size_t errlen);

/* Gives the lock up (closes fd).  A negative fd is a no-op. */
void tks_dirlock_release(int fd);

/*
 * The pid in the first len bytes of a lock file: decimal digits (no sign,
 * no space), then a newline or the end of the bytes;
 * what follows the newline is ignored.  Returns 0 and *pid, -ENODATA (no
 * bytes), -EINVAL (not that form) or -ERANGE (0, over INT_MAX, or more
 * than 10 digits).
 */
int tks_dirlock_parse_pid(const void *buf, size_t len, pid_t *pid);

#endif

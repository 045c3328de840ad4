/*
 * The runner behind test.h: forks one child per test, kills it after its
 * timeout, and reports each result on its own line.
 */
#include "test.h"

#include <errno.h>
#include <time.h>

const char *test_current = "";

/* 0 passed, 1 failed, 2 skipped. */
static int run_one(const struct test_case *t) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    printf("FAIL %s: fork: %s\n", t->name, strerror(errno));
    return 1;
  }
  if (pid == 0) {
    setpgid(0, 0); /* so the parent can kill daemons the test started */
    alarm(t->timeout_s);
    test_current = t->name;
    t->fn();
    fflush(stdout);
    exit(0); /* not _exit: LeakSanitizer checks at exit */
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  kill(-pid, SIGKILL); /* anything the test left running */
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    printf("ok %s\n", t->name);
    return 0;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == TEST_SKIP_CODE) return 2; /* it said why */
  if (WIFSIGNALED(status))
    printf("FAIL %s: %s%s\n", t->name, strsignal(WTERMSIG(status)),
           WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
  else
    printf("FAIL %s: exit %d\n", t->name, WEXITSTATUS(status));
  return 1;
}

int test_main(int argc, char **argv) {
  unsigned passed = 0, failed = 0, skipped = 0;
  const char *suite = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
  signal(SIGPIPE, SIG_IGN);
  for (unsigned i = 0; i < test_count; i++) {
    if (argc > 1) {
      int wanted = 0;
      for (int a = 1; a < argc; a++)
        if (strcmp(argv[a], test_cases[i].name) == 0) wanted = 1;
      if (!wanted) continue;
    }
    int r = run_one(&test_cases[i]);
    if (r == 1)
      failed++;
    else if (r == 2)
      skipped++;
    else
      passed++;
  }
  if (skipped)
    printf("# %s: %u passed, %u failed, %u skipped\n", suite, passed, failed, skipped);
  else
    printf("# %s: %u passed, %u failed\n", suite, passed, failed);
  fflush(stdout);
  return failed ? 1 : (passed ? 0 : 77);
}

/*
 * A minimal test runner in the manner of libuv's: each test is a function,
 * run in its own forked process with a timeout, so one crash or hang fails
 * one test and not the suite.  Output: "ok <name>", "FAIL <name>: ..." or
 * "skip <name>: reason" (a precondition missing here: TEST_SKIP), then
 * "# <suite>: N passed, M failed" (", K skipped" when some were).  A failed
 * check prints both sides.  Run one test with `./test_x <name>`.  The
 * executable exits 0, 1 when a test failed, or 77 (meson's skip) when none
 * passed or failed.
 *
 *   TEST(slab_free_returns_chunk_to_its_class) { ... ASSERT_EQ(a, b); }
 *   TEST_MAIN()
 */
#ifndef TKS_TEST_H
#define TKS_TEST_H

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef void (*test_fn)(void);
struct test_case {
  const char *name;
  test_fn fn;
  unsigned timeout_s;
};

#define TEST_MAX 256
extern struct test_case test_cases[TEST_MAX];
extern unsigned test_count;

#define TEST_TIMEOUT(name, secs)                                                         \
  static void test_##name(void);                                                         \
  __attribute__((constructor)) static void register_##name(void) {                       \
    if (test_count < TEST_MAX)                                                           \
      test_cases[test_count++] = (struct test_case){#name, test_##name, (secs)};         \
  }                                                                                      \
  static void test_##name(void)
#define TEST(name) TEST_TIMEOUT(name, 30)

#define TEST_FAIL(...)                                                                   \
  do {                                                                                   \
    fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                                    \
    fprintf(stderr, __VA_ARGS__);                                                        \
    fputc('\n', stderr);                                                                 \
    fflush(stderr);                                                                      \
    _exit(1);                                                                            \
  } while (0)

/* Ends the test as skipped, neither passed nor failed: for a precondition
 * this machine lacks (no IPv6 loopback, prlimit refused, no SSE4.2), never
 * for a check that went wrong.  Prints "skip <name>: reason". */
#define TEST_SKIP_CODE 77
extern const char *test_current;
#define TEST_SKIP(...)                                                  \
  do {                                                                  \
    fflush(stderr);                                                     \
    printf("skip %s: ", test_current);                                  \
    printf(__VA_ARGS__);                                                \
    putchar('\n');                                                      \
    fflush(stdout);                                                     \
    exit(TEST_SKIP_CODE); /* not _exit: LeakSanitizer checks at exit */ \
  } while (0)

#define ASSERT(cond)                                                                     \
  do {                                                                                   \
    if (!(cond)) TEST_FAIL("assertion failed: %s", #cond);                               \
  } while (0)

#define ASSERT_EQ(got, want)                                                             \
  do {                                                                                   \
    long long got_ = (long long)(got), want_ = (long long)(want);                        \
    if (got_ != want_)                                                                   \
      TEST_FAIL("%s == %s: got %lld, want %lld", #got, #want, got_, want_);              \
  } while (0)

#define ASSERT_U64_EQ(got, want)                                                         \
  do {                                                                                   \
    unsigned long long got_ = (unsigned long long)(got), want_ = (unsigned long long)(want); \
    if (got_ != want_)                                                                   \
      TEST_FAIL("%s == %s: got %llu, want %llu", #got, #want, got_, want_);              \
  } while (0)

#define ASSERT_NE(got, notwant)                                                          \
  do {                                                                                   \
    long long got_ = (long long)(got), nw_ = (long long)(notwant);                       \
    if (got_ == nw_) TEST_FAIL("%s != %s: both are %lld", #got, #notwant, got_);         \
  } while (0)

#define ASSERT_STR_EQ(got, want)                                                         \
  do {                                                                                   \
    const char *got_ = (got), *want_ = (want);                                           \
    if (!got_ || !want_ || strcmp(got_, want_) != 0)                                     \
      TEST_FAIL("%s == %s: got \"%s\", want \"%s\"", #got, #want, got_ ? got_ : "(null)", \
                want_ ? want_ : "(null)");                                               \
  } while (0)

#define ASSERT_CONTAINS(hay, needle)                                                     \
  do {                                                                                   \
    const char *hay_ = (hay), *needle_ = (needle);                                       \
    if (!hay_ || !strstr(hay_, needle_))                                                 \
      TEST_FAIL("%s contains \"%s\": got \"%s\"", #hay, needle_, hay_ ? hay_ : "(null)"); \
  } while (0)

#define ASSERT_NOT_CONTAINS(hay, needle)                                                 \
  do {                                                                                   \
    const char *hay_ = (hay), *needle_ = (needle);                                       \
    if (hay_ && strstr(hay_, needle_))                                                   \
      TEST_FAIL("%s does not contain \"%s\": got \"%s\"", #hay, needle_, hay_);          \
  } while (0)

int test_main(int argc, char **argv);

#define TEST_MAIN()                                                                      \
  struct test_case test_cases[TEST_MAX];                                                 \
  unsigned test_count;                                                                   \
  int main(int argc, char **argv) { return test_main(argc, argv); }

#endif

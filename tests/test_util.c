/* Unit tests of lib/util.c: sizes, durations, times, buffers, JSON strings, mkdir -p,
 * the log line's prefix ($JOURNAL_STREAM). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "test.h"
#include "util.h"

TEST(sizes_accept_binary_units) {
  uint64_t v;
  ASSERT_EQ(tks_parse_size("4096", &v), 0);
  ASSERT_EQ(v, 4096);
  ASSERT_EQ(tks_parse_size("1MiB", &v), 0);
  ASSERT_EQ(v, 1048576);
  ASSERT_EQ(tks_parse_size("64 KiB", &v), 0);
  ASSERT_EQ(v, 65536);
  ASSERT_EQ(tks_parse_size("4GiB", &v), 0);
  ASSERT_U64_EQ(v, 4ull << 30);
  ASSERT_EQ(tks_parse_size("1.5KiB", &v), 0);
  ASSERT_EQ(v, 1536);
  ASSERT_EQ(tks_parse_size("12B", &v), 0);
  ASSERT_EQ(v, 12);
}

TEST(bad_sizes_are_refused) {
  uint64_t v;
  ASSERT_EQ(tks_parse_size("", &v), -EINVAL);
  ASSERT_EQ(tks_parse_size("MiB", &v), -EINVAL);
  ASSERT_EQ(tks_parse_size("-1", &v), -EINVAL);
  ASSERT_EQ(tks_parse_size("12XB", &v), -EINVAL);
  ASSERT_EQ(tks_parse_size("99999999999999999999", &v), -ERANGE);
  ASSERT_EQ(tks_parse_size("99999999999TiB", &v), -ERANGE);
}

TEST(durations_need_a_unit_unless_zero) {
  uint64_t v;
  ASSERT_EQ(tks_parse_duration("1s", &v), 0);
  ASSERT_U64_EQ(v, 1000000000ull);
  ASSERT_EQ(tks_parse_duration("250ms", &v), 0);
  ASSERT_U64_EQ(v, 250000000ull);
  ASSERT_EQ(tks_parse_duration("24h", &v), 0);
  ASSERT_U64_EQ(v, 86400000000000ull);
  ASSERT_EQ(tks_parse_duration("0", &v), 0);
  ASSERT_EQ(v, 0);
  ASSERT_EQ(tks_parse_duration("5", &v), -EINVAL);
  ASSERT_EQ(tks_parse_duration("5 weeks", &v), -EINVAL);
}

TEST(sizes_and_durations_are_formatted_in_the_largest_exact_unit) {
  static const struct {
    uint64_t v;
    const char *size, *duration;
  } cases[] = {
      {0, "0", "0"},
      {1, "1B", "1ns"},
      {1000, "1000B", "1us"},
      {1024, "1KiB", "1024ns"},
      {65536, "64KiB", "65536ns"},
      {3ull << 20, "3MiB", "3145728ns"},
      {1ull << 40, "1024GiB", "1099511627776ns"},
      {1500000000ull, "1500000000B", "1500ms"},
      {90000000000ull, "87890625KiB", "90s"},
      {7200000000000ull, "7031250000KiB", "2h"},
  };
  char buf[32];
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(cases); i++) {
    tks_format_size(cases[i].v, buf, sizeof buf);
    ASSERT_STR_EQ(buf, cases[i].size);
    tks_format_duration(cases[i].v, buf, sizeof buf);
    ASSERT_STR_EQ(buf, cases[i].duration);
    /* What is formatted parses back to the same value. */
    uint64_t back;
    tks_format_size(cases[i].v, buf, sizeof buf);
    ASSERT_EQ(tks_parse_size(buf, &back), 0);
    ASSERT_U64_EQ(back, cases[i].v);
    tks_format_duration(cases[i].v, buf, sizeof buf);
    ASSERT_EQ(tks_parse_duration(buf, &back), 0);
    ASSERT_U64_EQ(back, cases[i].v);
  }
  tks_format_size(3ull << 30, buf, 3);
  ASSERT_STR_EQ(buf, "3G");
}

TEST(times_take_integer_nanoseconds_with_an_optional_minus) {
  int64_t ns = -1;
  ASSERT_EQ(tks_parse_time("0", &ns), 0);
  ASSERT_EQ(ns, 0);
  ASSERT_EQ(tks_parse_time("1700000000000000000", &ns), 0);
  ASSERT_EQ(ns, 1700000000000000000LL);
  ASSERT_EQ(tks_parse_time("0000000000000000000000000042", &ns), 0);
  ASSERT_EQ(ns, 42);
  ASSERT_EQ(tks_parse_time("9223372036854775807", &ns), 0);
  ASSERT_EQ(ns, INT64_MAX);
  ASSERT_EQ(tks_parse_time("9223372036854775808", &ns), -ERANGE);
  ASSERT_EQ(tks_parse_time("99999999999999999999999", &ns), -ERANGE);
  static const char *const bad[] = {"",     "+5",  "-",    "--1",   "-+1",   "+-1",  "- 1",
                                    "-1-",  "-x",  "1.5",  "-1.5",  "12abc", " 12",  "12 ",
                                    " -12", "1e9", "0x10", "-0x10", "abc",   "2026x"};
  for (size_t i = 0; i < TKS_ARRAY_SIZE(bad); i++)
    if (tks_parse_time(bad[i], &ns) != -EINVAL) TEST_FAIL("'%s' is not a time", bad[i]);
  ASSERT_EQ(tks_parse_time(NULL, &ns), -EINVAL);
}

TEST(negative_times_reach_int64_min_and_no_further) {
  int64_t ns = 7;
  ASSERT_EQ(tks_parse_time("-1", &ns), 0);
  ASSERT_EQ(ns, -1);
  ns = 7;
  ASSERT_EQ(tks_parse_time("-0", &ns), 0);
  ASSERT_EQ(ns, 0);
  ASSERT_EQ(tks_parse_time("-1700000000000000000", &ns), 0);
  ASSERT_EQ(ns, -1700000000000000000LL);
  ASSERT_EQ(tks_parse_time("-0000000000000000000000000042", &ns), 0);
  ASSERT_EQ(ns, -42);
  ASSERT_EQ(tks_parse_time("-9223372036854775807", &ns), 0);
  ASSERT_EQ(ns, -INT64_MAX);
  ASSERT_EQ(tks_parse_time("-9223372036854775808", &ns), 0);
  ASSERT(ns == INT64_MIN);
  ns = 7;
  ASSERT_EQ(tks_parse_time("-9223372036854775809", &ns), -ERANGE);
  ASSERT_EQ(tks_parse_time("-99999999999999999999999", &ns), -ERANGE);
  ASSERT_EQ(ns, 7); /* left alone on an error */
  /* What `range` answers as next_from, printed with PRId64, parses back. */
  static const int64_t round[] = {INT64_MIN, INT64_MIN + 1, -1000000000, -1, 0, 1, INT64_MAX};
  for (size_t i = 0; i < TKS_ARRAY_SIZE(round); i++) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, round[i]);
    ASSERT_EQ(tks_parse_time(buf, &ns), 0);
    if (ns != round[i]) TEST_FAIL("'%s' parsed as %" PRId64, buf, ns);
  }
}

/* Every int64 ns formats as ISO-8601 and reads back to itself. */
TEST(iso8601_formats_every_ns_and_reads_back) {
  static const struct {
    int64_t ns;
    const char *iso;
  } cases[] = {
      {0, "1970-01-01T00:00:00.000000000Z"},
      {-1, "1969-12-31T23:59:59.999999999Z"},
      {1795617000123456789, "2026-11-25T14:30:00.123456789Z"},
      {951782400000000000, "2000-02-29T00:00:00.000000000Z"},
      {INT64_MAX, "2262-04-11T23:47:16.854775807Z"},
      {INT64_MIN, "1677-09-21T00:12:43.145224192Z"},
  };
  char buf[TKS_ISO8601_LEN + 1];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tks_format_iso8601(cases[i].ns, buf);
    ASSERT_STR_EQ(buf, cases[i].iso);
  }
  uint64_t x = 1;
  for (int i = 0; i < 200000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int64_t ns = (int64_t)x;
    tks_format_iso8601(ns, buf);
    ASSERT_EQ(strlen(buf), TKS_ISO8601_LEN);
    int64_t back;
    ASSERT_EQ(tks_parse_iso8601(buf, strlen(buf), &back), 0);
    if (back != ns)
      TEST_FAIL("%lld formats as %s, which reads back as %lld", (long long)ns, buf,
                (long long)back);
  }
}

TEST(times_take_iso8601_with_zone_fractions_and_offsets) {
  int64_t ns;
  ASSERT_EQ(tks_parse_time("2026-11-25T14:30:00Z", &ns), 0);
  ASSERT_EQ(ns, 1795617000000000000LL);
  ASSERT_EQ(tks_parse_time("2026-11-25T14:30:00.123456789Z", &ns), 0);
  ASSERT_EQ(ns, 1795617000123456789LL);
  ASSERT_EQ(tks_parse_time("2026-11-25T14:30:00.5z", &ns), 0);
  ASSERT_EQ(ns, 1795617000500000000LL);
  ASSERT_EQ(tks_parse_time("2026-11-25t14:30Z", &ns), 0);
  ASSERT_EQ(ns, 1795617000000000000LL);
  ASSERT_EQ(tks_parse_time("2026-11-25T20:00:00+05:30", &ns), 0);
  ASSERT_EQ(ns, 1795617000000000000LL);
  ASSERT_EQ(tks_parse_time("2026-11-25T09:30:00-05:00", &ns), 0);
  ASSERT_EQ(ns, 1795617000000000000LL);
  ASSERT_EQ(tks_parse_time("2026-11-25T09:30:00-0500", &ns), 0);
  ASSERT_EQ(ns, 1795617000000000000LL);
  ASSERT_EQ(tks_parse_time("1970-01-01T00:00:00.000000001Z", &ns), 0);
  ASSERT_EQ(ns, 1);
  /* Before the epoch is a negative time, as ISO-8601 says it. */
  ASSERT_EQ(tks_parse_time("1969-12-31T23:59:59Z", &ns), 0);
  ASSERT_EQ(ns, -1000000000LL);
  ASSERT_EQ(tks_parse_time("2262-04-11T23:47:16.854775807Z", &ns), 0);
  ASSERT_EQ(ns, INT64_MAX);
  ASSERT_EQ(tks_parse_time("2262-04-11T23:47:16.854775808Z", &ns), -ERANGE);
}

TEST(a_bare_date_is_midnight_utc) {
  int64_t ns, want;
  ASSERT_EQ(tks_parse_time("2026-11-25", &ns), 0);
  ASSERT_EQ(tks_parse_time("2026-11-25T00:00:00Z", &want), 0);
  ASSERT_EQ(ns, want);
  ASSERT_EQ(ns, 1795564800000000000LL);
  ASSERT_EQ(tks_parse_time("1970-01-01", &ns), 0);
  ASSERT_EQ(ns, 0);
  ASSERT_EQ(tks_parse_time("2024-02-29", &ns), 0);
  ASSERT_EQ(tks_parse_time("2023-02-29", &ns), -ERANGE);
  ASSERT_EQ(tks_parse_time("2026-13-01", &ns), -ERANGE);
  /* The strict date-time reader still wants a time and a zone. */
  ASSERT_EQ(tks_parse_iso8601("2026-11-25", 10, &ns), -EINVAL);
}

TEST(bad_times_are_refused_with_einval_or_erange) {
  int64_t ns = 77;
  static const char *const einval[] = {
      "2026-11-25T14:30:00",       /* no zone */
      "2026-11-25T",               "2026-11-25T14", "2026-11-25T14:30:00.Z",
      "2026-11-25T14:30:00.1234567891Z", /* finer than a nanosecond */
      "2026-11-25T14:30:00ZZ",     "2026-11-25T14:30:00+5", "2026/11/25",
      "26-11-25",                  "2026-1-25",     "2026-11-25 ",   "2026-11-2x",
      "2026-11-25T14:30:00 Z",     "yesterday",
  };
  for (size_t i = 0; i < TKS_ARRAY_SIZE(einval); i++)
    if (tks_parse_time(einval[i], &ns) != -EINVAL) TEST_FAIL("'%s' should be -EINVAL", einval[i]);
  static const char *const erange[] = {
      "2026-11-25T24:00:00Z", "2026-11-25T10:60:00Z", "2026-11-25T10:00:60Z",
      "2026-00-01",           "2026-04-31",           "9999-12-31T23:59:59Z",
      "2026-11-25T10:00:00+24:00",
  };
  for (size_t i = 0; i < TKS_ARRAY_SIZE(erange); i++)
    if (tks_parse_time(erange[i], &ns) != -ERANGE) TEST_FAIL("'%s' should be -ERANGE", erange[i]);
  ASSERT_EQ(ns, 77); /* untouched on failure */
}

TEST(buffer_grows_and_consumes) {
  struct tks_buf b;
  tks_buf_init(&b);
  for (int i = 0; i < 1000; i++) ASSERT_EQ(tks_buf_printf(&b, "%d,", i), 0);
  ASSERT_EQ(strncmp(b.data, "0,1,2,", 6), 0);
  size_t len = b.len;
  tks_buf_consume(&b, 2);
  ASSERT_EQ(b.len, len - 2);
  ASSERT_EQ(strncmp(b.data, "1,2,", 4), 0);
  tks_buf_consume(&b, b.len + 5);
  ASSERT_EQ(b.len, 0);
  tks_buf_finish(&b);
  tks_buf_finish(&b);
}

TEST(buffer_bytes_are_what_was_written_since_allocated_not_the_capacity) {
  struct tks_buf b = {0};
  ASSERT_U64_EQ(tks_buf_bytes(&b), 0);
  char chunk[3000] = {0};
  for (int i = 0; i < 3; i++) ASSERT_EQ(tks_buf_append(&b, chunk, sizeof chunk), 0);
  ASSERT_U64_EQ(tks_buf_bytes(&b), 9001); /* and its NUL; the capacity is 16384 */
  ASSERT(b.cap > 9001);
  tks_buf_consume(&b, b.len); /* what was written stays held */
  ASSERT_U64_EQ(tks_buf_bytes(&b), 9001);
  ASSERT_EQ(tks_buf_append(&b, chunk, 10), 0);
  ASSERT_U64_EQ(tks_buf_bytes(&b), 9001);
  tks_buf_finish(&b);
  ASSERT_U64_EQ(tks_buf_bytes(&b), 0);
}

TEST(json_strings_escape_quotes_and_control_bytes) {
  struct tks_buf b = {0};
  ASSERT_EQ(tks_buf_json_string(&b, "a\"b\\c\n\x01", 7), 0);
  ASSERT_STR_EQ(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
  tks_buf_finish(&b);
}

TEST(rss_is_read_from_proc) {
  uint64_t rss = tks_rss_bytes();
  ASSERT(rss > 100000);
  volatile char *p = malloc(64 << 20);
  ASSERT(p);
  for (size_t i = 0; i < (64 << 20); i += 4096) p[i] = 1;
  uint64_t rss2 = tks_rss_bytes();
  ASSERT(rss2 >= rss + (60 << 20));
  free((void *)p);
}

TEST(a_log_line_escapes_newlines_controls_and_bytes_not_utf8) {
  char path[] = "/tmp/tks-util-log-XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  unlink(path);
  ASSERT(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
  tks_log(TKS_LOG_WARN, "tick rejected: %s", "x\ninfo: forged\x1b[1m BAD\xff\xfe caf\xc3\xa9");
  char buf[512];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  ASSERT(n > 0);
  buf[n] = '\0';
  ASSERT_CONTAINS(buf,
                  ": warn: tick rejected: x\\x0ainfo: forged\\x1b[1m BAD\\xff\\xfe caf\xc3\xa9\n");
  ASSERT_EQ(strchr(buf, '\n'), buf + n - 1); /* one line */
}

/* One warn line logged by a child whose stderr is a fresh file and whose
 * $JOURNAL_STREAM is env (NULL: unset; "MATCH": the file's DEV:INODE;
 * "MATCH+1": its inode plus one); the line, in out. */
static void log_line_with(const char *env, char *out, size_t n) {
  char path[] = "/tmp/tks-util-log-XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  char value[128];
  if (env && !strcmp(env, "MATCH"))
    snprintf(value, sizeof value, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
  else if (env && !strcmp(env, "MATCH+1"))
    snprintf(value, sizeof value, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
  else if (env)
    snprintf(value, sizeof value, "%s", env);
  pid_t pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) { /* a process of its own: the choice is made once a process */
    if (env)
      setenv("JOURNAL_STREAM", value, 1);
    else
      unsetenv("JOURNAL_STREAM");
    dup2(fd, STDERR_FILENO);
    tks_log(TKS_LOG_WARN, "hello");
    _exit(0);
  }
  int status;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ssize_t r = pread(fd, out, n - 1, 0);
  ASSERT(r > 0);
  out[r] = '\0';
  close(fd);
  unlink(path);
}

TEST(a_log_line_has_a_priority_only_when_journal_stream_names_stderr) {
  char line[256];
  log_line_with("MATCH", line, sizeof line);
  ASSERT_STR_EQ(line, "<4>warn: hello\n");
  /* Anything else: the UTC time, name and pid, never a priority. */
  const char *others[] = {NULL,      "",     "x",   "1:",  ":1",
                          "MATCH+1", "1:1x", "1;1", "1 1", "99999999999999999999999999:1"};
  for (size_t i = 0; i < TKS_ARRAY_SIZE(others); i++) {
    log_line_with(others[i], line, sizeof line);
    if (line[0] == '<' || strlen(line) < 25 || line[4] != '-' || line[10] != 'T' ||
        line[19] != '.' || line[23] != 'Z' || !strstr(line, " tickslabd[") ||
        !strstr(line, "]: warn: hello\n"))
      TEST_FAIL("JOURNAL_STREAM=%s: \"%s\"", others[i] ? others[i] : "(unset)", line);
  }
}

TEST(mkdir_p_makes_every_missing_directory_and_takes_an_existing_one) {
  char base[64], dir[160];
  harness_mkdtemp(base, sizeof base);
  snprintf(dir, sizeof dir, "%s/a/b//c/", base);
  ASSERT_EQ(tks_mkdir_p(dir), 0);
  struct stat st;
  snprintf(dir, sizeof dir, "%s/a/b/c", base);
  ASSERT_EQ(stat(dir, &st), 0);
  ASSERT(S_ISDIR(st.st_mode));
  ASSERT_EQ(st.st_mode & 07777 & ~0750u, 0);
  ASSERT_EQ(tks_mkdir_p(dir), 0); /* exists: fine */
  ASSERT_EQ(tks_mkdir_p(base), 0);
  snprintf(dir, sizeof dir, "%s/file", base);
  write_file(dir, "x");
  ASSERT_EQ(tks_mkdir_p(dir), -ENOTDIR); /* there, but not a directory */
  snprintf(dir, sizeof dir, "%s/file/sub", base);
  ASSERT_EQ(tks_mkdir_p(dir), -ENOTDIR);
  ASSERT_EQ(tks_mkdir_p(""), -ENOENT);
  static char longdir[PATH_MAX + 8];
  memset(longdir, 'x', sizeof longdir - 1);
  ASSERT_EQ(tks_mkdir_p(longdir), -ENAMETOOLONG);
}

TEST(a_rate_limit_lets_a_burst_a_window_through_and_counts_the_rest) {
  struct tks_ratelimit r = {.period_ns = 1000, .burst = 2};
  uint64_t held = 99;
  ASSERT(tks_ratelimit_pass(&r, 5000, &held));
  ASSERT_U64_EQ(held, 0);
  ASSERT(tks_ratelimit_pass(&r, 5100, &held));
  ASSERT(!tks_ratelimit_pass(&r, 5200, &held));
  ASSERT(!tks_ratelimit_pass(&r, 5999, &held));
  /* A new window from the first line after the last one ended. */
  ASSERT(tks_ratelimit_pass(&r, 6000, &held));
  ASSERT_U64_EQ(held, 2);
  ASSERT(tks_ratelimit_pass(&r, 6500, &held));
  ASSERT_U64_EQ(held, 0);
  ASSERT(!tks_ratelimit_pass(&r, 6999, &held));
  ASSERT(tks_ratelimit_pass(&r, 9000, &held)); /* long after: a window of its own */
  ASSERT_U64_EQ(held, 1);
  /* One a period: the window starts at the line that went. */
  struct tks_ratelimit one = {.period_ns = 1000, .burst = 1};
  ASSERT(tks_ratelimit_pass(&one, 1, &held));
  ASSERT(!tks_ratelimit_pass(&one, 999, &held));
  ASSERT(tks_ratelimit_pass(&one, 1001, &held));
  ASSERT_U64_EQ(held, 1);
}

TEST_MAIN()

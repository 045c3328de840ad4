/*
 * Shared helpers: leveled logging to stderr (sd-daemon priority prefixes
 * when stderr is the journal, else a UTC timestamp), size and duration parsing and
 * formatting, time parsing, clocks, the growable tks_buf, mkdir -p, and the
 * RSS reading used by stats.
 * ISO-8601 dates become ns with the civil-to-days formula (H. Hinnant's
 * days_from_civil), so the result does not depend on TZ or timegm.
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "utf8.h"

static enum tks_log_level log_level = TKS_LOG_INFO;
const char *const tks_log_level_names[TKS_LOG_LEVEL_COUNT] = {"error", "warn", "info", "debug"};

void tks_log_set_level(enum tks_log_level level) { log_level = level; }
enum tks_log_level tks_log_get_level(void) { return log_level; }

const char *tks_log_level_name(enum tks_log_level level) {
  return (unsigned)level < TKS_LOG_LEVEL_COUNT ? tks_log_level_names[level] : "?";
}

int tks_name_index(const char *const *names, unsigned n, const char *s) {
  for (unsigned i = 0; i < n; i++)
    if (strcmp(s, names[i]) == 0) return (int)i;
  return -1;
}

int tks_log_level_parse(const char *s, enum tks_log_level *out) {
  int i = tks_name_index(tks_log_level_names, TKS_LOG_LEVEL_COUNT, s);
  if (i < 0) return -EINVAL;
  *out = (enum tks_log_level)i;
  return 0;
}

void tks_vwrite_line(size_t max, const char *prefix, const char *fmt, va_list ap) {
  char line[2048], msg[2048];
  if (max > sizeof line) max = sizeof line;
  int n = snprintf(line, max, "%s", prefix);
  if (n < 0 || (size_t)n >= max) n = 0;
  int m = vsnprintf(msg, max - (size_t)n - 1, fmt, ap);
  size_t mlen = m < 0 ? 0 : (size_t)m;
  if (mlen > max - (size_t)n - 2) mlen = max - (size_t)n - 2;
  /* A message carries client bytes (peer names, keys, requests): a newline
   * must not start a forged line, nor bytes not UTF-8 reach journald or a log
   * reader.  Escaped \xHH, cut at a character (tks_utf8_escape). */
  size_t len = (size_t)n + tks_utf8_escape(line + n, max - (size_t)n - 1, msg, mlen);
  line[len++] = '\n';
  /* One write so that lines from concurrent processes do not interleave. */
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}

/* 1 when stderr is the stream systemd's journal gave us: $JOURNAL_STREAM
 * ("DEV:INODE") names the device and inode of fd 2 (sd_journal_stream_fd(3)
 * and systemd.exec(5) say to compare them, since a child whose stderr was
 * redirected inherits the variable).  Decided once, at the first line. */
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static bool log_to_journal;

static void log_detect(void) {
  const char *e = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  char tail;
  struct stat st;
  log_to_journal = e && sscanf(e, "%llu:%llu%c", &dev, &ino, &tail) == 2 &&
                   fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
                   (unsigned long long)st.st_ino == ino;
}

bool tks_log_is_journal(void) {
  pthread_once(&log_once, log_detect);
  return log_to_journal;
}

/* The sd-daemon(3) priorities of the levels: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const int log_priority[TKS_LOG_LEVEL_COUNT] = {3, 4, 6, 7};

void tks_log_prefix(enum tks_log_level level, char *buf, size_t n) {
  if ((unsigned)level >= TKS_LOG_LEVEL_COUNT) level = TKS_LOG_ERROR;
  if (tks_log_is_journal()) {
    /* journald adds the time, the name and the pid itself. */
    snprintf(buf, n, "<%d>%s: ", log_priority[level], tks_log_level_name(level));
    return;
  }
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ tickslabd[%d]: %s: ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
           (int)getpid(), tks_log_level_name(level));
}

void tks_log(enum tks_log_level level, const char *fmt, ...) {
  if (level > log_level) return;
  char prefix[96];
  tks_log_prefix(level, prefix, sizeof prefix);
  va_list ap;
  va_start(ap, fmt);
  tks_vwrite_line(1024, prefix, fmt, ap);
  va_end(ap);
}

int tks_parse_u64(const char *s, uint64_t *out) {
  if (!s || !isdigit((unsigned char)*s)) return -EINVAL;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno == ERANGE) return -ERANGE;
  if (*end) return -EINVAL;
  *out = v;
  return 0;
}

/* Splits "12.5 MiB" into a number and a unit, for sizes and durations. */
static int split_number(const char *s, double *num, uint64_t *whole, int *is_whole, const char **unit) {
  while (isspace((unsigned char)*s)) s++;
  if (!isdigit((unsigned char)*s)) return -EINVAL;
  char *end;
  errno = 0;
  unsigned long long w = strtoull(s, &end, 10);
  if (errno == ERANGE) return -ERANGE;
  *whole = w;
  *is_whole = 1;
  *num = (double)w;
  if (*end == '.') {
    *num = strtod(s, &end);
    *is_whole = 0;
  }
  while (isspace((unsigned char)*end)) end++;
  *unit = end;
  return 0;
}

static int scale(double num, uint64_t whole, int is_whole, uint64_t mult, uint64_t *out) {
  if (is_whole) {
    if (whole != 0 && mult > UINT64_MAX / whole) return -ERANGE;
    *out = whole * mult;
    return 0;
  }
  double v = num * (double)mult;
  if (v >= 18446744073709551615.0) return -ERANGE;
  *out = (uint64_t)v;
  return 0;
}

int tks_parse_size(const char *s, uint64_t *out) {
  static const struct {
    const char *unit;
    uint64_t mult;
  } units[] = {
      {"", 1},           {"B", 1},           {"KiB", 1ull << 10}, {"KB", 1ull << 10},
      {"K", 1ull << 10}, {"MiB", 1ull << 20}, {"MB", 1ull << 20},  {"M", 1ull << 20},
      {"GiB", 1ull << 30}, {"GB", 1ull << 30}, {"G", 1ull << 30},  {"TiB", 1ull << 40},
  };
  double num;
  uint64_t whole;
  int is_whole;
  const char *unit;
  int r = split_number(s, &num, &whole, &is_whole, &unit);
  if (r) return r;
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(units); i++)
    if (strcasecmp(unit, units[i].unit) == 0) return scale(num, whole, is_whole, units[i].mult, out);
  return -EINVAL;
}

int tks_parse_duration(const char *s, uint64_t *out_ns) {
  static const struct {
    const char *unit;
    uint64_t mult;
  } units[] = {
      {"ns", 1},
      {"us", 1000},
      {"ms", 1000000},
      {"s", 1000000000ull},
      {"m", 60000000000ull},
      {"h", 3600000000000ull},
      {"d", 86400000000000ull},
  };
  double num;
  uint64_t whole;
  int is_whole;
  const char *unit;
  int r = split_number(s, &num, &whole, &is_whole, &unit);
  if (r) return r;
  if (*unit == '\0') {
    /* A bare number is only unambiguous when it is zero. */
    if (is_whole && whole == 0) {
      *out_ns = 0;
      return 0;
    }
    return -EINVAL;
  }
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(units); i++)
    if (strcmp(unit, units[i].unit) == 0) return scale(num, whole, is_whole, units[i].mult, out_ns);
  return -EINVAL;
}

void tks_format_size(uint64_t v, char *buf, size_t n) {
  if (v == 0)
    snprintf(buf, n, "0");
  else if (v % (1ull << 30) == 0)
    snprintf(buf, n, "%lluGiB", (unsigned long long)(v >> 30));
  else if (v % (1ull << 20) == 0)
    snprintf(buf, n, "%lluMiB", (unsigned long long)(v >> 20));
  else if (v % (1ull << 10) == 0)
    snprintf(buf, n, "%lluKiB", (unsigned long long)(v >> 10));
  else
    snprintf(buf, n, "%lluB", (unsigned long long)v);
}

void tks_format_duration(uint64_t ns, char *buf, size_t n) {
  static const struct {
    uint64_t ns;
    const char *unit;
  } units[] = {{3600000000000ull, "h"}, {60000000000ull, "m"}, {1000000000ull, "s"},
               {1000000ull, "ms"},      {1000ull, "us"},       {1ull, "ns"}};
  if (ns == 0) {
    snprintf(buf, n, "0");
    return;
  }
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(units); i++)
    if (ns % units[i].ns == 0) {
      snprintf(buf, n, "%llu%s", (unsigned long long)(ns / units[i].ns), units[i].unit);
      return;
    }
}

#define NS_PER_S 1000000000LL

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Exactly n digits at s. */
static bool take_digits(const char *s, size_t n, unsigned *out) {
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_digit(s[i])) return false;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  *out = v;
  return true;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t mp = m > 2 ? (int64_t)m - 3 : (int64_t)m + 9;
  int64_t doy = (153 * mp + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* Howard Hinnant's civil_from_days, days_from_civil's inverse. */
void tks_civil_from_days(int64_t day, int *y, unsigned *m, unsigned *d) {
  int64_t z = day + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

void tks_format_iso8601(int64_t ns, char out[static TKS_ISO8601_LEN + 1]) {
  /* Floor division: a time before 1970 is a day before plus a positive
   * remainder. */
  int64_t sec = ns / NS_PER_S, frac = ns % NS_PER_S;
  if (frac < 0) frac += NS_PER_S, sec--;
  int64_t day = sec / 86400, rem = sec % 86400;
  if (rem < 0) rem += 86400, day--;
  int y;
  unsigned mo, d;
  tks_civil_from_days(day, &y, &mo, &d);
  snprintf(out, TKS_ISO8601_LEN + 1, "%04d-%02u-%02uT%02u:%02u:%02u.%09uZ", y, mo, d,
           (unsigned)(rem / 3600), (unsigned)(rem / 60 % 60), (unsigned)(rem % 60), (unsigned)frac);
}

static unsigned days_in_month(unsigned y, unsigned m) {
  static const unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) return 29;
  return days[m - 1];
}

/* The one ISO-8601 reader; date_alone: a bare YYYY-MM-DD is midnight UTC. */
static int parse_iso(const char *s, size_t len, bool date_alone, int64_t *out_ns) {
  unsigned y, mo, d, h = 0, mi = 0, sec = 0;
  int64_t frac = 0, offset_s = 0;
  if (len < 10 || !take_digits(s, 4, &y) || s[4] != '-' || !take_digits(s + 5, 2, &mo) ||
      s[7] != '-' || !take_digits(s + 8, 2, &d))
    return -EINVAL;
  size_t i = 10;
  if (len == 10) {
    if (!date_alone) return -EINVAL;
    goto convert;
  }
  /* YYYY-MM-DDTHH:MM is the shortest form with a time. */
  if (len < 16) return -EINVAL;
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return -EINVAL;
  if (!take_digits(s + 11, 2, &h) || s[13] != ':' || !take_digits(s + 14, 2, &mi)) return -EINVAL;
  i = 16;
  if (i < len && s[i] == ':') {
    if (i + 3 > len || !take_digits(s + i + 1, 2, &sec)) return -EINVAL;
    i += 3;
  }
  if (i < len && s[i] == '.') {
    i++;
    size_t nd = 0;
    while (i < len && is_digit(s[i])) {
      if (++nd > 9) return -EINVAL; /* finer than a nanosecond */
      frac = frac * 10 + (s[i] - '0');
      i++;
    }
    if (nd == 0) return -EINVAL;
    for (; nd < 9; nd++) frac *= 10;
  }
  if (i >= len) return -EINVAL; /* no zone */
  if (s[i] == 'Z' || s[i] == 'z') {
    i++;
  } else if (s[i] == '+' || s[i] == '-') {
    int sign = s[i] == '-' ? -1 : 1;
    unsigned oh, om = 0;
    i++;
    if (i + 2 > len || !take_digits(s + i, 2, &oh)) return -EINVAL;
    i += 2;
    if (i < len && s[i] == ':') i++;
    if (i < len) {
      if (i + 2 > len || !take_digits(s + i, 2, &om)) return -EINVAL;
      i += 2;
    }
    if (oh > 23 || om > 59) return -ERANGE;
    offset_s = sign * (int64_t)(oh * 3600 + om * 60);
  } else {
    return -EINVAL;
  }
  if (i != len) return -EINVAL;
convert:
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
    return -ERANGE;
  int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
  /* Borrow a second so that the last representable instants near INT64_MIN
   * do not overflow on the way. */
  if (secs < 0 && frac > 0) {
    secs += 1;
    frac -= NS_PER_S;
  }
  int64_t ns;
  if (__builtin_mul_overflow(secs, NS_PER_S, &ns) || __builtin_add_overflow(ns, frac, &ns))
    return -ERANGE;
  *out_ns = ns;
  return 0;
}

int tks_parse_iso8601(const char *s, size_t len, int64_t *out_ns) {
  return parse_iso(s, len, false, out_ns);
}

int tks_parse_time(const char *s, int64_t *out_ns) {
  if (!s) return -EINVAL;
  size_t len = strlen(s);
  /* An ISO date has '-' at index 4; an integer never does. */
  if (len >= 5 && s[4] == '-') return parse_iso(s, len, true, out_ns);
  /* ns: an optional '-', then digits; the most is INT64_MAX, or its
   * magnitude + 1 (INT64_MIN) after a '-'. */
  bool neg = len > 0 && s[0] == '-';
  size_t i = neg ? 1 : 0;
  if (i == len) return -EINVAL;
  uint64_t v = 0, max = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; i < len; i++) {
    if (!is_digit(s[i])) return -EINVAL;
    unsigned dg = (unsigned)(s[i] - '0');
    if (v > (max - dg) / 10) return -ERANGE;
    v = v * 10 + dg;
  }
  *out_ns = !neg ? (int64_t)v : v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
  return 0;
}

int64_t tks_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t tks_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tks_buf_init(struct tks_buf *b) { memset(b, 0, sizeof *b); }

void tks_buf_finish(struct tks_buf *b) {
  if (!b) return;
  free(b->data);
  memset(b, 0, sizeof *b);
}

int tks_buf_reserve(struct tks_buf *b, size_t extra) {
  size_t want = b->len + extra + 1; /* room for a NUL */
  if (b->cap - b->len > extra) {
    if (want > b->peak) b->peak = want;
    return 0;
  }
  size_t cap = b->cap ? b->cap : 256;
  while (cap < want) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) return -ENOMEM;
  b->data = p;
  b->cap = cap;
  b->peak = want;
  return 0;
}

int tks_buf_append(struct tks_buf *b, const void *p, size_t n) {
  if (tks_buf_reserve(b, n)) return -ENOMEM;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int tks_buf_puts(struct tks_buf *b, const char *s) { return tks_buf_append(b, s, strlen(s)); }

int tks_buf_putc(struct tks_buf *b, char c) { return tks_buf_append(b, &c, 1); }

int tks_buf_printf(struct tks_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return -EINVAL;
  if (tks_buf_reserve(b, (size_t)n)) return -ENOMEM;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

int tks_buf_json_string(struct tks_buf *b, const char *s, size_t n) {
  if (tks_buf_reserve(b, n * 6 + 2)) return -ENOMEM;
  char *o = b->data + b->len;
  *o++ = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '"': *o++ = '\\'; *o++ = '"'; break;
    case '\\': *o++ = '\\'; *o++ = '\\'; break;
    case '\n': *o++ = '\\'; *o++ = 'n'; break;
    case '\r': *o++ = '\\'; *o++ = 'r'; break;
    case '\t': *o++ = '\\'; *o++ = 't'; break;
    default:
      if (c < 0x20 || c == 0x7f) {
        o += sprintf(o, "\\u%04x", c);
      } else {
        *o++ = (char)c;
      }
    }
  }
  *o++ = '"';
  b->len = (size_t)(o - b->data);
  b->data[b->len] = '\0';
  return 0;
}

size_t tks_buf_bytes(const struct tks_buf *b) { return b->data ? b->peak : 0; }

void tks_buf_consume(struct tks_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
  } else {
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
  }
  if (b->data) b->data[b->len] = '\0';
}

int tks_fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) < 0 ? -errno : 0;
  close(fd);
  return rc;
}

uint64_t tks_rss_bytes(void) {
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  unsigned long long size, resident;
  if (sscanf(buf, "%llu %llu", &size, &resident) != 2) return 0;
  return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

uint64_t tks_anon_huge_bytes(void) {
  FILE *f = fopen("/proc/self/smaps_rollup", "re");
  if (!f) return 0;
  char line[256];
  unsigned long long kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "AnonHugePages: %llu kB", &kb) == 1) break;
  fclose(f);
  return (uint64_t)kb << 10;
}

/* mkdir(path) unless it exists; a new entry is made durable by an fsync of
 * the directory holding it. */
static int make_one_dir(char *path) {
  if (mkdir(path, 0750) < 0) {
    if (errno != EEXIST) return -errno;
    struct stat st; /* there already: as a directory (or a link to one)? */
    if (stat(path, &st) < 0) return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
  }
  char *slash = strrchr(path, '/');
  const char *parent = ".";
  if (slash == path)
    parent = "/";
  else if (slash)
    *slash = 0, parent = path;
  int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  if (slash && slash != path) *slash = '/';
  return 0;
}

int tks_mkdir_p(const char *dir) {
  char tmp[PATH_MAX];
  size_t n = strlen(dir);
  int rc;
  if (n == 0) return -ENOENT;
  if (n >= sizeof tmp) return -ENAMETOOLONG;
  memcpy(tmp, dir, n + 1);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if ((rc = make_one_dir(tmp))) return rc;
    *p = '/';
  }
  return make_one_dir(tmp);
}

int tks_write_file_atomic(const char *dir, const char *name, const void *data, size_t len) {
  char path[4200], tmp[4210];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) return -ENAMETOOLONG;
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return -errno;
  int rc = 0;
  const char *p = data;
  while (len && rc == 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      rc = w < 0 ? -errno : -EIO;
    else
      p += w, len -= (size_t)w;
  }
  if (rc == 0 && fsync(fd) < 0) rc = -errno;
  if (close(fd) < 0 && rc == 0) rc = -errno;
  if (rc == 0 && rename(tmp, path) < 0) rc = -errno;
  if (rc) {
    unlink(tmp);
    return rc;
  }
  return tks_fsync_dir(dir);
}

int tks_child_init(pid_t parent, int keep_a, int keep_b) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) return -1;
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  unsigned lo = (unsigned)(keep_a < keep_b ? keep_a : keep_b);
  unsigned hi = (unsigned)(keep_a < keep_b ? keep_b : keep_a);
  /* close_range where the kernel has it, else they stay till _exit. */
  if (lo > 3) syscall(SYS_close_range, 3u, lo - 1, 0u);
  if (hi > lo + 1) syscall(SYS_close_range, lo + 1, hi - 1, 0u);
  syscall(SYS_close_range, hi + 1, ~0u, 0u);
  return 0;
}

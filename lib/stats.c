/*
 * Stats collector and formatters.  Entries are kept in the order added;
 * the JSON writer opens and closes nested objects as consecutive paths
 * share or leave prefixes, the Prometheus writer groups entries by family
 * and emits HELP/TYPE once per family, the text writer prints "path value".
 */
#include "stats.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum vtype { V_U64, V_I64, V_F64, V_STR };

struct entry {
  char *path;
  char *help;
  char *prom;   /* family name, without prefix */
  char *labels; /* or NULL */
  enum tks_stat_kind kind;
  enum tks_stat_unit unit; /* TKS_UNIT_NONE from the primitives */
  enum vtype type;
  union {
    uint64_t u;
    int64_t i;
    double f;
    char *s;
  } v;
};

struct tks_stats {
  struct entry *e;
  unsigned n, cap;
  int oom;
};

struct tks_stats *tks_stats_create(void) { return calloc(1, sizeof(struct tks_stats)); }

void tks_stats_destroy(struct tks_stats *s) {
  if (!s) return;
  for (unsigned i = 0; i < s->n; i++) {
    free(s->e[i].path);
    free(s->e[i].help);
    free(s->e[i].prom);
    free(s->e[i].labels);
    if (s->e[i].type == V_STR) free(s->e[i].v.s);
  }
  free(s->e);
  free(s);
}

unsigned tks_stats_count(const struct tks_stats *s) { return s->n; }

static char *dup_or_null(const char *p, int *oom) {
  if (!p) return NULL;
  char *d = strdup(p);
  if (!d) *oom = 1;
  return d;
}

static struct entry *add(struct tks_stats *s, const char *path, enum tks_stat_kind kind,
                         const char *help, const char *prom, const char *labels) {
  if (s->n == s->cap) {
    unsigned cap = s->cap ? s->cap * 2 : 128;
    struct entry *e = realloc(s->e, cap * sizeof *e);
    if (!e) {
      s->oom = 1;
      return NULL;
    }
    s->e = e;
    s->cap = cap;
  }
  struct entry *e = &s->e[s->n];
  memset(e, 0, sizeof *e);
  e->kind = kind;
  e->path = dup_or_null(path, &s->oom);
  e->help = dup_or_null(help, &s->oom);
  e->labels = dup_or_null(labels, &s->oom);
  if (prom) {
    e->prom = dup_or_null(prom, &s->oom);
  } else if (e->path) {
    e->prom = dup_or_null(path, &s->oom);
    for (char *c = e->prom; c && *c; c++)
      if (*c == '.') *c = '_';
  }
  if (!e->path) return NULL;
  s->n++;
  return e;
}

void tks_stats_u64(struct tks_stats *s, const char *path, uint64_t v, enum tks_stat_kind kind,
                   const char *help, const char *prom, const char *labels) {
  struct entry *e = add(s, path, kind, help, prom, labels);
  if (e) e->type = V_U64, e->v.u = v;
}

void tks_stats_i64(struct tks_stats *s, const char *path, int64_t v, enum tks_stat_kind kind,
                   const char *help, const char *prom, const char *labels) {
  struct entry *e = add(s, path, kind, help, prom, labels);
  if (e) e->type = V_I64, e->v.i = v;
}

void tks_stats_f64(struct tks_stats *s, const char *path, double v, enum tks_stat_kind kind,
                   const char *help, const char *prom, const char *labels) {
  struct entry *e = add(s, path, kind, help, prom, labels);
  if (e) e->type = V_F64, e->v.f = v;
}

void tks_stats_str(struct tks_stats *s, const char *path, const char *v, const char *help,
                   const char *prom, const char *label_name) {
  struct entry *e = add(s, path, TKS_STAT_GAUGE, help, prom, label_name);
  if (!e) return;
  e->type = V_STR;
  e->v.s = dup_or_null(v ? v : "", &s->oom);
}

/* The unit of the entry just added, if it was added. */
static void set_unit(struct tks_stats *s, unsigned before, enum tks_stat_unit unit) {
  if (s->n > before) s->e[s->n - 1].unit = unit;
}

void tks_stat_u64(struct tks_stats *s, const struct tks_stat *d, uint64_t v) {
  unsigned n = s->n;
  tks_stats_u64(s, d->path, v, d->kind, d->help, d->prom, NULL);
  set_unit(s, n, d->unit);
}

void tks_stat_f64(struct tks_stats *s, const struct tks_stat *d, double v) {
  unsigned n = s->n;
  tks_stats_f64(s, d->path, v, d->kind, d->help, d->prom, NULL);
  set_unit(s, n, d->unit);
}

void tks_stat_str(struct tks_stats *s, const struct tks_stat *d, const char *v) {
  tks_stats_str(s, d->path, v, d->help, d->prom, d->label);
}

/* Appends v to out (len bytes used of cap) as a Prometheus label value:
 * backslash, double quote and newline as \\, \" and \n (the exposition
 * format's escapes); cut whole, never inside an escape. */
static size_t label_value(char *out, size_t len, size_t cap, const char *v) {
  for (; *v; v++) {
    const char *e = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
    size_t k = e ? 2 : 1;
    if (len + k >= cap) break;
    if (e)
      memcpy(out + len, e, 2);
    else
      out[len] = *v;
    len += k;
  }
  out[len] = '\0';
  return len;
}

/*
 * d->path with its "*" replaced by part, and the label text for it.  The
 * one rule for a name in a path: a '.' in it becomes '_' (it would split
 * the path); JSON keys are then escaped by JSON's rules (tks_stats_json),
 * `stats text` writes '_' for any other byte outside [A-Za-z0-9_]
 * (tks_stats_text); the Prometheus label holds the name exactly, escaped.
 */
static void fill(const struct tks_stat *d, const char *part, char *path, size_t pathlen,
                 char *label, size_t labellen) {
  const char *star = strchr(d->path, '*');
  if (star) {
    int n = snprintf(path, pathlen, "%.*s%s%s", (int)(star - d->path), d->path, part, star + 1);
    size_t end = n < 0 ? 0 : (size_t)n < pathlen ? (size_t)n : pathlen - 1;
    size_t from = (size_t)(star - d->path), to = from + strlen(part);
    for (size_t i = from; i < to && i < end; i++)
      if (path[i] == '.') path[i] = '_';
  } else {
    snprintf(path, pathlen, "%s", d->path);
  }
  label[0] = '\0';
  if (d->label) {
    int n = snprintf(label, labellen, "%s=\"", d->label);
    size_t len = n < 0 || (size_t)n + 2 >= labellen ? 0 : (size_t)n;
    if (len == 0) return;
    len = label_value(label, len, labellen - 1, part);
    label[len++] = '"';
    label[len] = '\0';
  }
}

void tks_stat_u64_of(struct tks_stats *s, const struct tks_stat *d, const char *part, uint64_t v) {
  char path[256], label[256];
  fill(d, part, path, sizeof path, label, sizeof label);
  unsigned n = s->n;
  tks_stats_u64(s, path, v, d->kind, d->help, d->prom, label[0] ? label : NULL);
  set_unit(s, n, d->unit);
}

void tks_stat_str_of(struct tks_stats *s, const struct tks_stat *d, const char *part,
                     const char *v) {
  char path[256], label[256];
  fill(d, part, path, sizeof path, label, sizeof label);
  tks_stats_str(s, path, v, d->help, d->prom, NULL);
}

static int put_number(struct tks_buf *out, const struct entry *e) {
  switch (e->type) {
  case V_U64: return tks_buf_printf(out, "%llu", (unsigned long long)e->v.u);
  case V_I64: return tks_buf_printf(out, "%lld", (long long)e->v.i);
  case V_F64:
    if (!isfinite(e->v.f)) return tks_buf_puts(out, "0");
    return tks_buf_printf(out, "%.6g", e->v.f);
  case V_STR: return 0;
  }
  return 0;
}

/* Number of dot-separated components in a path. */
static unsigned components(const char *p) {
  unsigned n = 1;
  for (; *p; p++)
    if (*p == '.') n++;
  return n;
}

/* Start of component k of path p and its length. */
static const char *component(const char *p, unsigned k, size_t *len) {
  while (k--) p = strchr(p, '.') + 1;
  const char *dot = strchr(p, '.');
  *len = dot ? (size_t)(dot - p) : strlen(p);
  return p;
}

int tks_stats_json(const struct tks_stats *s, struct tks_buf *out) {
  if (s->oom) return -ENOMEM;
  int r = tks_buf_putc(out, '{');
  const char *prev = NULL; /* the path whose objects are open */
  unsigned open = 0;       /* objects open besides the outermost */
  for (unsigned i = 0; i < s->n && r == 0; i++) {
    const struct entry *e = &s->e[i];
    unsigned nc = components(e->path);
    /* How many of the open objects does this path stay inside? */
    unsigned keep = 0;
    while (keep < open && keep < nc - 1) {
      size_t la, lb;
      const char *a = component(prev, keep, &la), *b = component(e->path, keep, &lb);
      if (la != lb || memcmp(a, b, la) != 0) break;
      keep++;
    }
    for (; open > keep; open--) r |= tks_buf_putc(out, '}');
    if (i > 0 && out->data[out->len - 1] != '{') r |= tks_buf_putc(out, ',');
    for (; open < nc - 1; open++) {
      size_t l;
      const char *c = component(e->path, open, &l);
      /* A top-level object opened twice would repeat its key: entries with
       * a common prefix were not added together.  Refuse, so a test sees it. */
      if (open == 0)
        for (unsigned k = 0; k < i; k++) {
          size_t pl;
          const char *pc = component(s->e[k].path, 0, &pl);
          if (components(s->e[k].path) > 1 && pl == l && memcmp(pc, c, l) == 0) return -EINVAL;
        }
      r |= tks_buf_json_string(out, c, l);
      r |= tks_buf_puts(out, ":{");
    }
    size_t l;
    const char *leaf = component(e->path, nc - 1, &l);
    r |= tks_buf_json_string(out, leaf, l);
    r |= tks_buf_putc(out, ':');
    if (e->type == V_STR)
      r |= tks_buf_json_string(out, e->v.s, strlen(e->v.s));
    else
      r |= put_number(out, e);
    prev = e->path;
  }
  for (; open > 0; open--) r |= tks_buf_putc(out, '}');
  r |= tks_buf_putc(out, '}');
  return r ? -ENOMEM : 0;
}

static int prom_label_value(struct tks_buf *out, const char *v) {
  int r = 0;
  for (; *v && r == 0; v++) {
    if (*v == '\\' || *v == '"')
      r = tks_buf_printf(out, "\\%c", *v);
    else if (*v == '\n')
      r = tks_buf_puts(out, "\\n");
    else
      r = tks_buf_putc(out, *v);
  }
  return r;
}

static bool ends_with(const char *s, size_t n, const char *suffix) {
  size_t k = strlen(suffix);
  return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

void tks_stats_prom_name(const char *prom, enum tks_stat_kind kind, enum tks_stat_unit unit,
                         char *out, size_t size) {
  size_t n = strlen(prom);
  if (kind == TKS_STAT_COUNTER && ends_with(prom, n, "_total")) n -= 6;
  const char *add = "";
  if (unit == TKS_UNIT_USEC && ends_with(prom, n, "_usec"))
    n -= 5, add = "_seconds";
  else if (unit == TKS_UNIT_USEC || (unit == TKS_UNIT_SECONDS && !ends_with(prom, n, "_seconds")))
    add = "_seconds";
  else if (unit == TKS_UNIT_BYTES && !ends_with(prom, n, "_bytes"))
    add = "_bytes";
  snprintf(out, size, "tickslab_%.*s%s%s", (int)n, prom, add,
           kind == TKS_STAT_COUNTER ? "_total" : "");
}

/* A sample's value in the family's unit: microseconds become seconds. */
static int put_prom_number(struct tks_buf *out, const struct entry *e) {
  if (e->unit != TKS_UNIT_USEC) return put_number(out, e);
  double v = e->type == V_U64 ? (double)e->v.u : e->type == V_I64 ? (double)e->v.i : e->v.f;
  return tks_buf_printf(out, "%.6g", v / 1e6);
}

int tks_stats_prometheus(const struct tks_stats *s, struct tks_buf *out) {
  if (s->oom) return -ENOMEM;
  int r = 0;
  char *done = calloc(s->n ? s->n : 1, 1);
  if (!done) return -ENOMEM;
  for (unsigned i = 0; i < s->n && r == 0; i++) {
    const struct entry *e = &s->e[i];
    if (done[i] || !e->help) continue;
    const char *type = e->kind == TKS_STAT_COUNTER ? "counter" : "gauge";
    char name[300];
    tks_stats_prom_name(e->prom, e->kind, e->unit, name, sizeof name);
    r |= tks_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, e->help, name, type);
    for (unsigned j = i; j < s->n && r == 0; j++) {
      const struct entry *f = &s->e[j];
      if (done[j] || !f->help || strcmp(f->prom, e->prom) != 0) continue;
      done[j] = 1;
      r |= tks_buf_puts(out, name);
      if (f->type == V_STR) {
        r |= tks_buf_printf(out, "{%s=\"", f->labels ? f->labels : "value");
        r |= prom_label_value(out, f->v.s);
        r |= tks_buf_puts(out, "\"} 1\n");
        continue;
      }
      if (f->labels) r |= tks_buf_printf(out, "{%s}", f->labels);
      r |= tks_buf_putc(out, ' ');
      r |= put_prom_number(out, f);
      r |= tks_buf_putc(out, '\n');
    }
  }
  free(done);
  return r ? -ENOMEM : 0;
}

/* Field k (1-based, as proc(5) numbers them) of /proc/self/stat. */
static bool proc_stat_field(const char *stat, unsigned k, unsigned long long *v) {
  const char *p = strrchr(stat, ')'); /* the command name may hold spaces */
  if (!p || k < 3) return false;
  p++;
  for (unsigned f = 3; f <= k; f++) {
    while (*p == ' ') p++;
    if (!*p) return false;
    if (f == k) return sscanf(p, "%llu", v) == 1;
    while (*p && *p != ' ') p++;
  }
  return false;
}

static size_t read_small(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  buf[n > 0 ? n : 0] = '\0';
  return n > 0 ? (size_t)n : 0;
}

static int process_sample(struct tks_buf *out, const char *name, const char *type, const char *help,
                          double v) {
  return tks_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", name, help, name, type, name,
                        v);
}

int tks_stats_process(struct tks_buf *out, double started_unix) {
  int r = 0;
  char stat[1024], buf[4096];
  long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
  bool have = read_small("/proc/self/stat", stat, sizeof stat) > 0 && tick > 0;
  unsigned long long utime, stime, start, vsize, rss;
  if (have && proc_stat_field(stat, 14, &utime) && proc_stat_field(stat, 15, &stime))
    r |= process_sample(out, "process_cpu_seconds_total", "counter",
                        "Total user and system CPU time spent in seconds.",
                        (double)(utime + stime) / (double)tick);
  /* The start: boot time (btime of /proc/stat) plus field 22, in ticks since boot. */
  unsigned long long btime = 0;
  if (read_small("/proc/stat", buf, sizeof buf) > 0) {
    const char *b = strstr(buf, "\nbtime ");
    if (b) sscanf(b + 7, "%llu", &btime);
  }
  double started = 0;
  if (have && btime && proc_stat_field(stat, 22, &start))
    started = (double)btime + (double)start / (double)tick;
  else
    started = started_unix;
  if (started > 0)
    r |= process_sample(out, "process_start_time_seconds", "gauge",
                        "Start time of the process since unix epoch in seconds.", started);
  if (have && proc_stat_field(stat, 23, &vsize))
    r |= process_sample(out, "process_virtual_memory_bytes", "gauge",
                        "Virtual memory size in bytes.", (double)vsize);
  if (have && page > 0 && proc_stat_field(stat, 24, &rss))
    r |= process_sample(out, "process_resident_memory_bytes", "gauge",
                        "Resident memory size in bytes.", (double)rss * (double)page);
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    unsigned long long fds = 0;
    for (struct dirent *de; (de = readdir(d));)
      if (de->d_name[0] != '.') fds++;
    closedir(d);
    r |= process_sample(out, "process_open_fds", "gauge", "Number of open file descriptors.",
                        (double)(fds ? fds - 1 : 0)); /* less the one reading the directory */
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    r |= process_sample(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
                        (double)rl.rlim_cur);
  return r ? -ENOMEM : 0;
}

int tks_stats_text(const struct tks_stats *s, struct tks_buf *out) {
  if (s->oom) return -ENOMEM;
  int r = 0;
  for (unsigned i = 0; i < s->n && r == 0; i++) {
    const struct entry *e = &s->e[i];
    /* Only the path's own bytes: a name with a space or a quote in it
     * must not split the "path value" line (see fill()). */
    size_t at = out->len;
    r |= tks_buf_printf(out, "%s ", e->path);
    if (r == 0)
      for (size_t k = at; k < out->len - 1; k++) {
        unsigned char c = (unsigned char)out->data[k];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.'))
          out->data[k] = '_';
      }
    if (e->type == V_STR)
      r |= tks_buf_puts(out, e->v.s);
    else
      r |= put_number(out, e);
    r |= tks_buf_putc(out, '\n');
  }
  return r ? -ENOMEM : 0;
}

/* Length of the first component of a path that has more than one. */
static size_t group_len(const char *path) {
  const char *dot = strchr(path, '.');
  return dot ? (size_t)(dot - path) : 0;
}

unsigned tks_stats_keep_section(struct tks_stats *s, const char *section) {
  size_t sl = strlen(section);
  unsigned k = 0;
  for (unsigned i = 0; i < s->n; i++) {
    struct entry *e = &s->e[i];
    if (sl > 0 && group_len(e->path) == sl && memcmp(e->path, section, sl) == 0) {
      s->e[k++] = *e;
      continue;
    }
    free(e->path);
    free(e->help);
    free(e->prom);
    free(e->labels);
    if (e->type == V_STR) free(e->v.s);
  }
  s->n = k;
  return k;
}

int tks_stats_sections(const struct tks_stats *s, struct tks_buf *out) {
  int r = 0;
  bool any = false;
  for (unsigned i = 0; i < s->n && r == 0; i++) {
    size_t l = group_len(s->e[i].path);
    if (l == 0) continue;
    bool seen = false;
    for (unsigned k = 0; k < i && !seen; k++)
      seen = group_len(s->e[k].path) == l && memcmp(s->e[k].path, s->e[i].path, l) == 0;
    if (seen) continue;
    if (any) r |= tks_buf_puts(out, ", ");
    r |= tks_buf_append(out, s->e[i].path, l);
    any = true;
  }
  return r ? -ENOMEM : 0;
}

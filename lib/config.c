/*
 * Config loading: libyaml's event API drives a small recursive-descent
 * reader that knows the expected shape (a mapping of sections, each a
 * mapping of scalars; schema a list of field mappings), so it never builds
 * a tree and stops at the first thing that is wrong.  Every error names
 * "file:line:column" (1-based).  Anchors, aliases, nesting deeper than
 * CONFIG_MAX_DEPTH and files over TKS_CONFIG_MAX_BYTES are refused.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#define CONFIG_MAX_DEPTH 16
#define CONFIG_MAX_KEYS 8 /* per mapping; the largest section has 5 */
#define SUN_PATH_MAX 107  /* sizeof(sun_path) - 1 */

/* ---- the config's enums ---------------------------------------------- */

const char *const tks_fsync_names[TKS_FSYNC_COUNT] = {"always", "interval", "never"};
const char *const tks_on_error_names[TKS_ON_ERROR_COUNT] = {"backpressure", "reject"};
const char *const tks_when_full_names[TKS_WHEN_FULL_COUNT] = {"evict_oldest", "reject",
                                                              "backpressure"};

const char *tks_fsync_name(enum tks_fsync f) {
  return (unsigned)f < TKS_FSYNC_COUNT ? tks_fsync_names[f] : "?";
}

const char *tks_on_error_name(enum tks_on_error e) {
  return (unsigned)e < TKS_ON_ERROR_COUNT ? tks_on_error_names[e] : "?";
}

const char *tks_when_full_name(enum tks_when_full w) {
  return (unsigned)w < TKS_WHEN_FULL_COUNT ? tks_when_full_names[w] : "?";
}

/* ---- defaults -------------------------------------------------------- */

static void set_str(char *dst, size_t size, const char *src) {
  /* Zero the whole buffer so that configs compare equal with memcmp. */
  memset(dst, 0, size);
  snprintf(dst, size, "%s", src);
}

void tks_config_defaults(struct tks_config *c) {
  memset(c, 0, sizeof *c);
  set_str(c->ingest.listen, sizeof c->ingest.listen, "127.0.0.1:7070");
  set_str(c->ingest.host, sizeof c->ingest.host, "127.0.0.1");
  c->ingest.port = 7070;
  c->ingest.max_connections = 1024;
  c->ingest.max_message_bytes = 65536;
  c->ingest.read_buffer_bytes = 256u << 10;
  c->query.max_rows = 10000;
  c->journal.enabled = true;
  set_str(c->journal.dir, sizeof c->journal.dir, TKS_DEFAULT_JOURNAL_DIR);
  c->journal.fsync = TKS_FSYNC_INTERVAL;
  c->journal.fsync_interval_ns = 1000000000;
  c->journal.on_corrupt = TKS_CORRUPT_TRUNCATE;
  c->journal.segment_bytes = 256ull << 20;
  c->journal.max_bytes = 0;
  c->journal.on_error = TKS_ON_ERROR_BACKPRESSURE;
  c->limits.max_memory = 0;
  c->limits.when_full = TKS_WHEN_FULL_EVICT_OLDEST;
  c->limits.retention_ns = 0;
  set_str(c->control.socket, sizeof c->control.socket, TKS_DEFAULT_CONTROL_SOCKET);
  c->store.mode = TKS_MODE_SLOTTED;
  c->store.page_size = 1u << 20;
  c->store.growth_factor = 1.25;
  c->store.max_symbols = 1000000;
  c->store.max_strings = 65536;
  tks_schema_default(&c->schema);
  c->log.level = TKS_LOG_INFO;
}

/* ---- listen addresses ------------------------------------------------ */

static int listen_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int listen_fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -EINVAL;
}

int tks_config_parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port, char *err,
                            size_t errlen) {
  char h[INET6_ADDRSTRLEN + 1];
  const char *p; /* the port text */
  size_t n;
  int family;

  if (!s || !*s) return listen_fail(err, errlen, "empty address (expected host:port)");
  if (strlen(s) > 255) return listen_fail(err, errlen, "address is too long");
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (!close) return listen_fail(err, errlen, "missing ']' in '%s' (expected [v6]:port)", s);
    n = (size_t)(close - s - 1);
    if (close[1] != ':')
      return listen_fail(err, errlen, "missing port in '%s' (expected [v6]:port)", s);
    if (n == 0 || n >= sizeof h)
      return listen_fail(err, errlen, "'%s' is not a numeric IPv6 address", s);
    memcpy(h, s + 1, n);
    h[n] = '\0';
    p = close + 2;
    family = AF_INET6;
  } else {
    const char *colon = strrchr(s, ':');
    if (!colon) return listen_fail(err, errlen, "missing port in '%s' (expected host:port)", s);
    if (memchr(s, ':', (size_t)(colon - s)))
      return listen_fail(err, errlen, "an IPv6 address must be in brackets, as in [::1]:7070");
    n = (size_t)(colon - s);
    if (n == 0)
      return listen_fail(err, errlen,
                         "missing host in '%s' (use 0.0.0.0:port to listen on every interface)", s);
    if (n >= sizeof h)
      return listen_fail(err, errlen, "host in '%s' is not a numeric IPv4 address", s);
    memcpy(h, s, n);
    h[n] = '\0';
    if (strcmp(h, "localhost") == 0) strcpy(h, "127.0.0.1");
    p = colon + 1;
    family = AF_INET;
  }

  unsigned char addr[sizeof(struct in6_addr)];
  if (inet_pton(family, h, addr) != 1)
    return listen_fail(err, errlen,
                       family == AF_INET6
                           ? "'%s' is not a numeric IPv6 address"
                           : "host '%s' is not a numeric IPv4 address (names are not resolved; "
                             "'localhost' is accepted)",
                       h);
  if (!*p) return listen_fail(err, errlen, "missing port in '%s' (expected host:port)", s);
  uint64_t v;
  int r = tks_parse_u64(p, &v);
  if (r == -EINVAL) return listen_fail(err, errlen, "port '%s' is not a number (0..65535)", p);
  if (r == -ERANGE || v > 65535)
    return listen_fail(err, errlen, "port %s is out of range (0..65535)", p);
  if (strlen(h) >= hostlen) return listen_fail(err, errlen, "host '%s' is too long", h);
  strcpy(host, h);
  *port = (uint16_t)v;
  return 0;
}

/* ---- the reader ------------------------------------------------------ */

struct reader {
  yaml_parser_t yp;
  yaml_event_t ev;
  bool have_ev;
  int depth;
  const char *name; /* file name for messages */
  const char *text;
  size_t len;
  char *err;
  size_t errlen;
  struct tks_config *c; /* the copy being filled */
  /* For checks that span keys (read_buffer >= max_message_bytes). */
  bool have_read_buffer, have_max_message;
  yaml_mark_t read_buffer_mark, max_message_mark;
};

static int fail(struct reader *r, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct reader *r, yaml_mark_t m, const char *fmt, ...) {
  if (r->err && r->errlen) {
    int n = snprintf(r->err, r->errlen, "%s:%zu:%zu: ", r->name, m.line + 1, m.column + 1);
    if (n >= 0 && (size_t)n < r->errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return -EINVAL;
}

/* A short, printable rendition of user text for messages. */
static const char *show(const char *s, char *buf, size_t size) {
  size_t i = 0, max = size - 4;
  for (; *s && i < max; s++) buf[i++] = isprint((unsigned char)*s) ? *s : '?';
  if (*s) {
    memcpy(buf + i, "...", 3);
    i += 3;
  }
  buf[i] = '\0';
  return buf;
}

static const char *event_kind(const yaml_event_t *ev) {
  switch (ev->type) {
  case YAML_MAPPING_START_EVENT: return "a mapping";
  case YAML_SEQUENCE_START_EVENT: return "a sequence";
  case YAML_SCALAR_EVENT: return "a scalar";
  default: return "nothing";
  }
}

/* Line and column of a byte offset, for reader errors that carry no mark. */
static yaml_mark_t mark_at(const struct reader *r, size_t offset) {
  yaml_mark_t m = {offset, 0, 0};
  if (offset > r->len) offset = r->len;
  for (size_t i = 0; i < offset; i++) {
    if (r->text[i] == '\n') {
      m.line++;
      m.column = 0;
    } else if (((unsigned char)r->text[i] & 0xc0) != 0x80) {
      m.column++;
    }
  }
  return m;
}

static int syntax_error(struct reader *r) {
  const yaml_parser_t *yp = &r->yp;
  if (yp->error == YAML_MEMORY_ERROR) {
    if (r->err && r->errlen) snprintf(r->err, r->errlen, "%s: out of memory", r->name);
    return -ENOMEM;
  }
  const char *problem = yp->problem ? yp->problem : "syntax error";
  if (yp->error == YAML_READER_ERROR) {
    if (yp->problem_value != -1)
      return fail(r, mark_at(r, yp->problem_offset), "%s (byte #x%02X)", problem,
                  (unsigned)yp->problem_value & 0xff);
    return fail(r, mark_at(r, yp->problem_offset), "%s", problem);
  }
  if (yp->context)
    return fail(r, yp->problem_mark, "%s (%s at line %zu, column %zu)", problem, yp->context,
                yp->context_mark.line + 1, yp->context_mark.column + 1);
  return fail(r, yp->problem_mark, "%s", problem);
}

/* Reads the next event into r->ev, refusing what the config never needs. */
static int next(struct reader *r) {
  if (r->have_ev) yaml_event_delete(&r->ev);
  r->have_ev = false;
  if (!yaml_parser_parse(&r->yp, &r->ev)) return syntax_error(r);
  r->have_ev = true;
  const yaml_event_t *ev = &r->ev;
  const yaml_char_t *anchor = NULL;
  switch (ev->type) {
  case YAML_ALIAS_EVENT:
    return fail(r, ev->start_mark, "aliases (*%s) are not allowed in the config",
                (const char *)ev->data.alias.anchor);
  case YAML_SCALAR_EVENT:
    anchor = ev->data.scalar.anchor;
    if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length)
      return fail(r, ev->start_mark, "a value holds a NUL byte");
    break;
  case YAML_SEQUENCE_START_EVENT:
    anchor = ev->data.sequence_start.anchor;
    r->depth++;
    break;
  case YAML_MAPPING_START_EVENT:
    anchor = ev->data.mapping_start.anchor;
    r->depth++;
    break;
  case YAML_SEQUENCE_END_EVENT:
  case YAML_MAPPING_END_EVENT: r->depth--; break;
  default: break;
  }
  if (anchor)
    return fail(r, ev->start_mark, "anchors (&%.64s) and aliases are not allowed in the config",
                (const char *)anchor);
  if (r->depth > CONFIG_MAX_DEPTH)
    return fail(r, ev->start_mark, "nesting deeper than %d levels", CONFIG_MAX_DEPTH);
  return 0;
}

static const char *ev_str(const struct reader *r) { return (const char *)r->ev.data.scalar.value; }

/* An empty plain scalar, "~" or "null": a key given without a value. */
static bool ev_is_null(const struct reader *r) {
  if (r->ev.type != YAML_SCALAR_EVENT || r->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return false;
  const char *s = ev_str(r);
  return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
         !strcmp(s, "NULL");
}

/* Takes the event just read as the scalar value of path; a null value is
 * refused unless allow_null. */
static int this_scalar(struct reader *r, const char *path, bool allow_null, const char **out) {
  if (r->ev.type != YAML_SCALAR_EVENT)
    return fail(r, r->ev.start_mark, "%s: expected a scalar value, got %s", path,
                event_kind(&r->ev));
  if (!allow_null && ev_is_null(r)) return fail(r, r->ev.start_mark, "%s: expected a value", path);
  *out = ev_str(r);
  return 0;
}

/* Reads the next event as the scalar value of path. */
static int scalar(struct reader *r, const char *path, bool allow_null, const char **out) {
  int e = next(r);
  return e ? e : this_scalar(r, path, allow_null, out);
}

static int get_uint(struct reader *r, const char *path, uint64_t min, uint64_t max, uint64_t *out) {
  const char *s = NULL;
  char b[80];
  int e = scalar(r, path, false, &s);
  if (e) return e;
  uint64_t v;
  e = tks_parse_u64(s, &v);
  if (e == -EINVAL)
    return fail(r, r->ev.start_mark, "%s: '%s' is not a whole number", path, show(s, b, sizeof b));
  if (e == -ERANGE || v < min || v > max)
    return fail(r, r->ev.start_mark, "%s: %s is out of range (%llu..%llu)", path,
                show(s, b, sizeof b), (unsigned long long)min, (unsigned long long)max);
  *out = v;
  return 0;
}

static int get_size(struct reader *r, const char *path, uint64_t min, uint64_t max, uint64_t *out) {
  const char *s = NULL;
  char b[80], lo[32], hi[32];
  int e = scalar(r, path, false, &s);
  if (e) return e;
  uint64_t v;
  e = tks_parse_size(s, &v);
  if (e == -EINVAL)
    return fail(r, r->ev.start_mark, "%s: '%s' is not a size (e.g. 1MiB)", path,
                show(s, b, sizeof b));
  if (e == -ERANGE || v < min || v > max) {
    /* "0B", not tks_format_size's "0": the message has always said so. */
    if (min)
      tks_format_size(min, lo, sizeof lo);
    else
      snprintf(lo, sizeof lo, "0B");
    tks_format_size(max, hi, sizeof hi);
    return fail(r, r->ev.start_mark, "%s: %s is out of range (%s..%s)", path, show(s, b, sizeof b),
                lo, hi);
  }
  *out = v;
  return 0;
}

static int get_duration(struct reader *r, const char *path, uint64_t min_ns, uint64_t max_ns,
                        uint64_t *out) {
  const char *s = NULL;
  char b[80];
  int e = scalar(r, path, false, &s);
  if (e) return e;
  uint64_t v = 0;
  e = tks_parse_duration(s, &v);
  if (e == -EINVAL)
    return fail(r, r->ev.start_mark, "%s: '%s' is not a duration (e.g. 500ms, 1s, 5m, 24h, or 0)",
                path, show(s, b, sizeof b));
  if (e == -ERANGE || v < min_ns || v > max_ns)
    return fail(r, r->ev.start_mark, "%s: %s is out of range", path, show(s, b, sizeof b));
  *out = v;
  return 0;
}

/* One of names (n of them, listed in the message). */
static int get_enum(struct reader *r, const char *path, const char *const *names, unsigned n,
                    unsigned *out) {
  const char *s = NULL;
  char b[80], list[160] = "";
  int e = scalar(r, path, false, &s);
  if (e) return e;
  int found = tks_name_index(names, n, s);
  if (found >= 0) {
    *out = (unsigned)found;
    return 0;
  }
  for (unsigned i = 0; i < n; i++) {
    size_t l = strlen(list);
    snprintf(list + l, sizeof list - l, "%s%s", i ? (i + 1 == n ? " or " : ", ") : "", names[i]);
  }
  return fail(r, r->ev.start_mark, "%s: unknown value '%s' (expected %s)", path,
              show(s, b, sizeof b), list);
}

static int parse_bool(const char *s, bool *out) {
  if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
    *out = true;
    return 0;
  }
  if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
    *out = false;
    return 0;
  }
  return -EINVAL;
}

static int get_bool(struct reader *r, const char *path, bool *out) {
  const char *s = NULL;
  char b[80];
  int e = scalar(r, path, false, &s);
  if (e) return e;
  if (parse_bool(s, out))
    return fail(r, r->ev.start_mark, "%s: expected true or false, got '%s'", path,
                show(s, b, sizeof b));
  return 0;
}

/* A finite decimal number, the whole string. */
static int parse_f64(const char *s, double *out) {
  if (!(isdigit((unsigned char)*s) || *s == '-' || *s == '+' || *s == '.')) return -EINVAL;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || !isfinite(v)) return -EINVAL;
  *out = v;
  return 0;
}

static int parse_i64(const char *s, int64_t *out) {
  const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
  if (!isdigit((unsigned char)*d)) return -EINVAL;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (*end) return -EINVAL;
  if (errno == ERANGE) return -ERANGE;
  *out = v;
  return 0;
}

/*
 * Reads the entries of a mapping whose MAPPING_START was just read.  Keys
 * must be among keys[] and appear once; for each, on_value reads the value.
 * where names the mapping in messages ("in 'ingest'", "at the top level").
 */
typedef int (*value_fn)(struct reader *r, void *ctx, unsigned key);

static int read_mapping(struct reader *r, const char *where, const char *const *keys,
                        unsigned nkeys, value_fn on_value, void *ctx) {
  size_t first_line[CONFIG_MAX_KEYS] = {0};
  bool seen[CONFIG_MAX_KEYS] = {false};
  char b[80];
  for (;;) {
    int e = next(r);
    if (e) return e;
    if (r->ev.type == YAML_MAPPING_END_EVENT) return 0;
    if (r->ev.type != YAML_SCALAR_EVENT)
      return fail(r, r->ev.start_mark, "expected a key %s, got %s", where, event_kind(&r->ev));
    const char *k = ev_str(r);
    unsigned i = 0;
    while (i < nkeys && strcmp(k, keys[i]) != 0) i++;
    if (i == nkeys) {
      char known[256] = "";
      size_t n = 0;
      for (unsigned j = 0; j < nkeys && n < sizeof known; j++)
        n += (size_t)snprintf(known + n, sizeof known - n, "%s%s", j ? ", " : "", keys[j]);
      return fail(r, r->ev.start_mark, "unknown key '%s' %s (known: %s)", show(k, b, sizeof b),
                  where, known);
    }
    if (seen[i])
      return fail(r, r->ev.start_mark, "duplicate key '%s' %s (first at line %zu)", keys[i], where,
                  first_line[i]);
    seen[i] = true;
    first_line[i] = r->ev.start_mark.line + 1;
    e = on_value(r, ctx, i);
    if (e) return e;
  }
}

/*
 * Reads the value of a section key: a mapping (read with read_mapping), or
 * a null value, which leaves the section at its defaults.
 */
static int read_section(struct reader *r, const char *section, const char *const *keys,
                        unsigned nkeys, value_fn on_value, void *ctx) {
  int e = next(r);
  if (e) return e;
  if (ev_is_null(r)) return 0;
  if (r->ev.type != YAML_MAPPING_START_EVENT)
    return fail(r, r->ev.start_mark, "%s: expected a mapping, got %s", section,
                event_kind(&r->ev));
  char where[64];
  snprintf(where, sizeof where, "in '%s'", section);
  return read_mapping(r, where, keys, nkeys, on_value, ctx);
}

/* ---- sections -------------------------------------------------------- */

enum { INGEST_LISTEN, INGEST_MAX_CONNECTIONS, INGEST_MAX_MESSAGE_BYTES, INGEST_READ_BUFFER,
       INGEST_IDLE_TIMEOUT };
static const char *const ingest_keys[] = {"listen", "max_connections", "max_message_bytes",
                                          "read_buffer", "idle_timeout"};

static int ingest_value(struct reader *r, void *ctx, unsigned key) {
  struct tks_config *c = r->c;
  const char *s = NULL;
  char why[256], b[300];
  uint64_t v;
  int e;
  (void)ctx;
  switch (key) {
  case INGEST_LISTEN:
    if ((e = next(r))) return e;
    /* Unquoted, [::1]:7070 is a YAML flow sequence. */
    if (r->ev.type == YAML_SEQUENCE_START_EVENT)
      return fail(r, r->ev.start_mark,
                  "ingest.listen: expected a scalar value, got a sequence (quote an IPv6 "
                  "address: listen: \"[::1]:7070\")");
    if ((e = this_scalar(r, "ingest.listen", false, &s))) return e;
    if (strlen(s) >= sizeof c->ingest.listen)
      return fail(r, r->ev.start_mark, "ingest.listen: the address is too long");
    if (tks_config_parse_listen(s, c->ingest.host, sizeof c->ingest.host, &c->ingest.port, why,
                                sizeof why))
      return fail(r, r->ev.start_mark, "ingest.listen: %s", show(why, b, sizeof b));
    set_str(c->ingest.listen, sizeof c->ingest.listen, s);
    return 0;
  case INGEST_MAX_CONNECTIONS:
    if ((e = get_uint(r, "ingest.max_connections", 1, 1000000, &v))) return e;
    c->ingest.max_connections = (uint32_t)v;
    return 0;
  case INGEST_MAX_MESSAGE_BYTES:
    if ((e = get_size(r, "ingest.max_message_bytes", 64, 64u << 20, &v))) return e;
    c->ingest.max_message_bytes = (uint32_t)v;
    r->have_max_message = true;
    r->max_message_mark = r->ev.start_mark;
    return 0;
  case INGEST_READ_BUFFER:
    if ((e = get_size(r, "ingest.read_buffer", 64, 1u << 30, &v))) return e;
    c->ingest.read_buffer_bytes = (uint32_t)v;
    r->have_read_buffer = true;
    r->read_buffer_mark = r->ev.start_mark;
    return 0;
  case INGEST_IDLE_TIMEOUT:
    return get_duration(r, "ingest.idle_timeout", 0, 7ull * 86400 * 1000000000, &c->ingest.idle_timeout_ns);
  }
  return -EINVAL;
}

static const char *const control_keys[] = {"socket"};

static int control_value(struct reader *r, void *ctx, unsigned key) {
  struct tks_config *c = r->c;
  const char *s = NULL;
  int e;
  (void)ctx;
  (void)key;
  if ((e = scalar(r, "control.socket", false, &s))) return e;
  size_t n = strlen(s);
  if (n == 0) return fail(r, r->ev.start_mark, "control.socket: the path is empty");
  if (n > SUN_PATH_MAX)
    return fail(r, r->ev.start_mark,
                "control.socket: the path is %zu bytes, a Unix socket path can have at most %d",
                n, SUN_PATH_MAX);
  set_str(c->control.socket, sizeof c->control.socket, s);
  return 0;
}

enum { STORE_MODE, STORE_PAGE_SIZE, STORE_GROWTH_FACTOR, STORE_MAX_SYMBOLS, STORE_MAX_STRINGS };
static const char *const store_keys[] = {"mode", "page_size", "growth_factor", "max_symbols",
                                         "max_strings"};

static int store_value(struct reader *r, void *ctx, unsigned key) {
  struct tks_config *c = r->c;
  const char *s = NULL;
  char b[80];
  uint64_t v;
  double d;
  enum tks_mode m;
  int e;
  (void)ctx;
  switch (key) {
  case STORE_MODE:
    if ((e = scalar(r, "store.mode", false, &s))) return e;
    if (tks_mode_parse(s, &m))
      return fail(r, r->ev.start_mark,
                  "store.mode: unknown mode '%s' (expected slotted, dynamic or fallback)",
                  show(s, b, sizeof b));
    c->store.mode = m;
    return 0;
  case STORE_PAGE_SIZE:
    if ((e = get_size(r, "store.page_size", 64u << 10, 1u << 30, &v))) return e;
    if (v % 4096)
      return fail(r, r->ev.start_mark, "store.page_size: %s is not a multiple of 4096",
                  show(ev_str(r), b, sizeof b));
    c->store.page_size = v;
    return 0;
  case STORE_GROWTH_FACTOR:
    if ((e = scalar(r, "store.growth_factor", false, &s))) return e;
    if (parse_f64(s, &d))
      return fail(r, r->ev.start_mark, "store.growth_factor: '%s' is not a number",
                  show(s, b, sizeof b));
    if (d < 1.01 || d > 4)
      return fail(r, r->ev.start_mark, "store.growth_factor: %s is out of range (1.01..4)",
                  show(s, b, sizeof b));
    c->store.growth_factor = d;
    return 0;
  case STORE_MAX_SYMBOLS:
    if ((e = get_uint(r, "store.max_symbols", 1, 1u << 31, &v))) return e;
    c->store.max_symbols = (uint32_t)v;
    return 0;
  case STORE_MAX_STRINGS:
    if ((e = get_uint(r, "store.max_strings", 1, 1u << 31, &v))) return e;
    c->store.max_strings = (uint32_t)v;
    return 0;
  }
  return -EINVAL;
}

static const char *const log_keys[] = {"level"};

static int log_value(struct reader *r, void *ctx, unsigned key) {
  const char *s = NULL;
  char b[80];
  int e;
  (void)ctx;
  (void)key;
  if ((e = scalar(r, "log.level", false, &s))) return e;
  if (tks_log_level_parse(s, &r->c->log.level))
    return fail(r, r->ev.start_mark,
                "log.level: unknown level '%s' (expected error, warn, info or debug)",
                show(s, b, sizeof b));
  return 0;
}

enum { JOURNAL_ENABLED, JOURNAL_DIR, JOURNAL_FSYNC, JOURNAL_FSYNC_INTERVAL, JOURNAL_ON_CORRUPT,
       JOURNAL_SEGMENT_SIZE, JOURNAL_MAX_BYTES, JOURNAL_ON_ERROR };
static const char *const journal_keys[] = {"enabled",        "dir",          "fsync",
                                           "fsync_interval", "on_corrupt",   "segment_size",
                                           "max_bytes",      "on_error"};

static int journal_value(struct reader *r, void *ctx, unsigned key) {
  struct tks_config *c = r->c;
  const char *s = NULL;
  uint64_t v = 0;
  unsigned u = 0;
  int e;
  (void)ctx;
  switch (key) {
  case JOURNAL_ENABLED: return get_bool(r, "journal.enabled", &c->journal.enabled);
  case JOURNAL_DIR:
    if ((e = scalar(r, "journal.dir", false, &s))) return e;
    if (!*s) return fail(r, r->ev.start_mark, "journal.dir: the path is empty (to run without a journal: enabled: false)");
    if (strlen(s) >= sizeof c->journal.dir)
      return fail(r, r->ev.start_mark, "journal.dir: the path is too long");
    set_str(c->journal.dir, sizeof c->journal.dir, s);
    return 0;
  case JOURNAL_FSYNC:
    if ((e = get_enum(r, "journal.fsync", tks_fsync_names, TKS_FSYNC_COUNT, &u)))
      return e;
    c->journal.fsync = (enum tks_fsync)u;
    return 0;
  case JOURNAL_FSYNC_INTERVAL:
    return get_duration(r, "journal.fsync_interval", 1000000, 3600ull * 1000000000,
                        &c->journal.fsync_interval_ns);
  case JOURNAL_ON_CORRUPT:
    if ((e = get_enum(r, "journal.on_corrupt", tks_on_corrupt_names, TKS_ON_CORRUPT_COUNT, &u)))
      return e;
    c->journal.on_corrupt = (enum tks_on_corrupt)u;
    return 0;
  case JOURNAL_SEGMENT_SIZE:
    if ((e = get_size(r, "journal.segment_size", 1u << 20, 1ull << 40, &v))) return e;
    c->journal.segment_bytes = v;
    return 0;
  case JOURNAL_MAX_BYTES:
    if ((e = get_size(r, "journal.max_bytes", 0, 1ull << 50, &v))) return e;
    c->journal.max_bytes = v;
    return 0;
  case JOURNAL_ON_ERROR:
    if ((e = get_enum(r, "journal.on_error", tks_on_error_names, TKS_ON_ERROR_COUNT, &u)))
      return e;
    c->journal.on_error = (enum tks_on_error)u;
    return 0;
  }
  return -EINVAL;
}

enum { LIMITS_MAX_MEMORY, LIMITS_WHEN_FULL, LIMITS_RETENTION };
static const char *const limits_keys[] = {"max_memory", "when_full", "retention"};

static int limits_value(struct reader *r, void *ctx, unsigned key) {
  struct tks_config *c = r->c;
  uint64_t v = 0;
  unsigned u = 0;
  int e;
  (void)ctx;
  switch (key) {
  case LIMITS_MAX_MEMORY:
    if ((e = get_size(r, "limits.max_memory", 0, 1ull << 50, &v))) return e;
    if (v && v < (8u << 20))
      return fail(r, r->ev.start_mark, "limits.max_memory: at least 8MiB, or 0 for no limit");
    c->limits.max_memory = v;
    return 0;
  case LIMITS_WHEN_FULL:
    if ((e = get_enum(r, "limits.when_full", tks_when_full_names, TKS_WHEN_FULL_COUNT, &u)))
      return e;
    c->limits.when_full = (enum tks_when_full)u;
    return 0;
  case LIMITS_RETENTION:
    return get_duration(r, "limits.retention", 0, 3650ull * 86400 * 1000000000,
                        &c->limits.retention_ns);
  }
  return -EINVAL;
}

static const char *const query_keys[] = {"max_rows"};

static int query_value(struct reader *r, void *ctx, unsigned key) {
  uint64_t v = 0;
  int e;
  (void)ctx;
  (void)key;
  if ((e = get_uint(r, "query.max_rows", 1, 1000000, &v))) return e;
  r->c->query.max_rows = (uint32_t)v;
  return 0;
}

/* ---- schema ---------------------------------------------------------- */

enum { FIELD_NAME, FIELD_TYPE, FIELD_REQUIRED, FIELD_DEFAULT };
static const char *const field_keys[] = {"name", "type", "required", "default"};

struct field_ctx {
  struct tks_field *f;
  unsigned number; /* 1-based, for messages */
  char path[48];   /* "schema field 3" */
  bool have_name, have_type, have_default;
  yaml_mark_t name_mark, default_mark;
  char dflt[80];
  bool dflt_too_long;
};

static bool valid_field_name(const char *s) {
  if (!(isalpha((unsigned char)*s) || *s == '_')) return false;
  for (s++; *s; s++)
    if (!(isalnum((unsigned char)*s) || *s == '_')) return false;
  return true;
}

static int field_value(struct reader *r, void *ctx, unsigned key) {
  struct field_ctx *fc = ctx;
  char path[64], b[80];
  const char *s = NULL;
  int e;
  snprintf(path, sizeof path, "%s: %s", fc->path, field_keys[key]);
  switch (key) {
  case FIELD_NAME:
    if ((e = scalar(r, path, false, &s))) return e;
    if (strlen(s) >= TKS_FIELD_NAME_MAX)
      return fail(r, r->ev.start_mark, "%s: '%s' is longer than %d bytes", path,
                  show(s, b, sizeof b), TKS_FIELD_NAME_MAX - 1);
    if (!valid_field_name(s))
      return fail(r, r->ev.start_mark,
                  "%s: '%s' is not a valid field name (letters, digits and _, not starting "
                  "with a digit)",
                  path, show(s, b, sizeof b));
    set_str(fc->f->name, sizeof fc->f->name, s);
    fc->have_name = true;
    fc->name_mark = r->ev.start_mark;
    return 0;
  case FIELD_TYPE:
    if ((e = scalar(r, path, false, &s))) return e;
    if (tks_type_parse(s, &fc->f->type))
      return fail(r, r->ev.start_mark,
                  "%s: unknown type '%s' (expected timestamp, symbol, string, i64, u32, f64 or "
                  "bool)",
                  path, show(s, b, sizeof b));
    fc->have_type = true;
    return 0;
  case FIELD_REQUIRED:
    return get_bool(r, path, &fc->f->required);
  case FIELD_DEFAULT:
    /* Checked against the type once the whole field is read: keys come in any order. */
    if ((e = scalar(r, path, true, &s))) return e;
    fc->have_default = true;
    fc->default_mark = r->ev.start_mark;
    fc->dflt_too_long = strlen(s) >= sizeof fc->dflt;
    snprintf(fc->dflt, sizeof fc->dflt, "%s", s);
    return 0;
  }
  return -EINVAL;
}

static int check_default(struct reader *r, struct field_ctx *fc) {
  struct tks_field *f = fc->f;
  yaml_mark_t m = fc->default_mark;
  const char *s = fc->dflt;
  char b[80];
  int e;
  if (f->required)
    return fail(r, m, "%s '%s': a required field cannot have a default", fc->path, f->name);
  if (fc->dflt_too_long)
    return fail(r, m, "%s '%s': default '%s' is not a valid %s", fc->path, f->name,
                show(s, b, sizeof b), tks_type_name(f->type));
  switch (f->type) {
  case TKS_TYPE_TIMESTAMP:
  case TKS_TYPE_I64:
    e = parse_i64(s, &f->dflt.i64);
    if (e == -ERANGE)
      return fail(r, m, "%s '%s': default %s is out of range for %s", fc->path, f->name,
                  show(s, b, sizeof b), tks_type_name(f->type));
    if (e)
      return fail(r, m, "%s '%s': default '%s' is not a whole number", fc->path, f->name,
                  show(s, b, sizeof b));
    return 0;
  case TKS_TYPE_U32: {
    uint64_t v;
    e = tks_parse_u64(s, &v);
    if (e == -EINVAL)
      return fail(r, m, "%s '%s': default '%s' is not a whole number", fc->path, f->name,
                  show(s, b, sizeof b));
    if (e || v > UINT32_MAX)
      return fail(r, m, "%s '%s': default %s is out of range (0..4294967295)", fc->path,
                  f->name, show(s, b, sizeof b));
    f->dflt.u32 = (uint32_t)v;
    return 0;
  }
  case TKS_TYPE_F64:
    if (parse_f64(s, &f->dflt.f64))
      return fail(r, m, "%s '%s': default '%s' is not a finite number", fc->path, f->name,
                  show(s, b, sizeof b));
    return 0;
  case TKS_TYPE_BOOL:
    if (parse_bool(s, &f->dflt.b))
      return fail(r, m, "%s '%s': default must be true or false, got '%s'", fc->path, f->name,
                  show(s, b, sizeof b));
    return 0;
  case TKS_TYPE_SYMBOL:
  case TKS_TYPE_STRING:
    if (*s)
      return fail(r, m,
                  "%s '%s': a %s field's default can only be \"\" (strings are interned as "
                  "ticks arrive)",
                  fc->path, f->name, tks_type_name(f->type));
    return 0;
  case TKS_TYPE__COUNT: break;
  }
  return -EINVAL;
}

/* A declared schema identical to MarketEvent keeps its name. */
static bool is_default_schema(const struct tks_schema *s) {
  struct tks_schema d;
  tks_schema_default(&d);
  if (s->nfields != d.nfields) return false;
  for (unsigned i = 0; i < s->nfields; i++)
    if (memcmp(&s->fields[i], &d.fields[i], sizeof d.fields[i]) != 0) return false;
  return true;
}

static int schema_value(struct reader *r) {
  struct tks_schema *sc = &r->c->schema;
  int e = next(r);
  if (e) return e;
  if (ev_is_null(r)) return 0;
  if (r->ev.type != YAML_SEQUENCE_START_EVENT)
    return fail(r, r->ev.start_mark, "schema: expected a list of fields, got %s",
                event_kind(&r->ev));
  yaml_mark_t schema_mark = r->ev.start_mark;
  memset(sc, 0, sizeof *sc);
  set_str(sc->name, sizeof sc->name, "custom");
  for (;;) {
    if ((e = next(r))) return e;
    if (r->ev.type == YAML_SEQUENCE_END_EVENT) break;
    if (sc->nfields == TKS_SCHEMA_MAX_FIELDS)
      return fail(r, r->ev.start_mark, "schema: more than %d fields (the most is %d)",
                  TKS_SCHEMA_MAX_FIELDS, TKS_SCHEMA_MAX_FIELDS);
    struct field_ctx fc = {.f = &sc->fields[sc->nfields], .number = sc->nfields + 1};
    snprintf(fc.path, sizeof fc.path, "schema field %u", fc.number);
    if (r->ev.type != YAML_MAPPING_START_EVENT)
      return fail(r, r->ev.start_mark, "%s: expected a mapping {name: ..., type: ...}, got %s",
                  fc.path, event_kind(&r->ev));
    yaml_mark_t field_mark = r->ev.start_mark;
    char where[64];
    snprintf(where, sizeof where, "in %s", fc.path);
    if ((e = read_mapping(r, where, field_keys, TKS_ARRAY_SIZE(field_keys), field_value, &fc)))
      return e;
    if (!fc.have_name) return fail(r, field_mark, "%s: 'name' is missing", fc.path);
    if (!fc.have_type)
      return fail(r, field_mark, "%s '%s': 'type' is missing", fc.path, fc.f->name);
    for (unsigned j = 0; j < sc->nfields; j++)
      if (strcmp(sc->fields[j].name, fc.f->name) == 0)
        return fail(r, fc.name_mark, "%s: name '%s' is already used by field %u", fc.path,
                    fc.f->name, j + 1);
    if (fc.have_default && (e = check_default(r, &fc))) return e;
    sc->nfields++;
  }
  char why[256];
  if (tks_schema_layout(sc, why, sizeof why)) return fail(r, schema_mark, "schema: %s", why);
  if (is_default_schema(sc)) set_str(sc->name, sizeof sc->name, "MarketEvent");
  return 0;
}

/* ---- top level ------------------------------------------------------- */

enum { TOP_INGEST, TOP_CONTROL, TOP_STORE, TOP_SCHEMA, TOP_JOURNAL, TOP_LIMITS, TOP_QUERY, TOP_LOG };
static const char *const top_keys[] = {"ingest", "control", "store",  "schema",
                                       "journal", "limits", "query", "log"};

static int top_value(struct reader *r, void *ctx, unsigned key) {
  (void)ctx;
  switch (key) {
  case TOP_INGEST:
    return read_section(r, "ingest", ingest_keys, TKS_ARRAY_SIZE(ingest_keys), ingest_value, NULL);
  case TOP_CONTROL:
    return read_section(r, "control", control_keys, TKS_ARRAY_SIZE(control_keys), control_value,
                        NULL);
  case TOP_STORE:
    return read_section(r, "store", store_keys, TKS_ARRAY_SIZE(store_keys), store_value, NULL);
  case TOP_SCHEMA: return schema_value(r);
  case TOP_JOURNAL:
    return read_section(r, "journal", journal_keys, TKS_ARRAY_SIZE(journal_keys), journal_value,
                        NULL);
  case TOP_LIMITS:
    return read_section(r, "limits", limits_keys, TKS_ARRAY_SIZE(limits_keys), limits_value, NULL);
  case TOP_QUERY:
    return read_section(r, "query", query_keys, TKS_ARRAY_SIZE(query_keys), query_value, NULL);
  case TOP_LOG: return read_section(r, "log", log_keys, TKS_ARRAY_SIZE(log_keys), log_value, NULL);
  }
  return -EINVAL;
}

static int check_whole(struct reader *r) {
  struct tks_config *c = r->c;
  if (c->ingest.read_buffer_bytes < c->ingest.max_message_bytes) {
    char rb[32], mm[32];
    tks_format_size(c->ingest.read_buffer_bytes, rb, sizeof rb);
    tks_format_size(c->ingest.max_message_bytes, mm, sizeof mm);
    return fail(r, r->have_read_buffer ? r->read_buffer_mark : r->max_message_mark,
                "ingest.read_buffer (%s%s) must be at least ingest.max_message_bytes (%s)", rb,
                r->have_read_buffer ? "" : ", the default", mm);
  }
  return 0;
}

static int read_stream(struct reader *r) {
  int e;
  if ((e = next(r))) return e; /* STREAM_START */
  if ((e = next(r))) return e;
  if (r->ev.type == YAML_STREAM_END_EVENT) return 0; /* empty, or only comments */
  if ((e = next(r))) return e;                       /* past DOCUMENT_START */
  if (r->ev.type == YAML_MAPPING_START_EVENT) {
    if ((e = read_mapping(r, "at the top level", top_keys, TKS_ARRAY_SIZE(top_keys), top_value,
                          NULL)))
      return e;
  } else if (!ev_is_null(r)) {
    return fail(r, r->ev.start_mark, "expected a mapping at the top level, got %s",
                event_kind(&r->ev));
  }
  if ((e = next(r))) return e; /* DOCUMENT_END */
  if ((e = next(r))) return e;
  if (r->ev.type != YAML_STREAM_END_EVENT)
    return fail(r, r->ev.start_mark, "expected one YAML document, found another");
  return check_whole(r);
}

int tks_config_parse(struct tks_config *c, const char *text, size_t len, const char *name,
                     char *err, size_t errlen) {
  char dummy[8];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof dummy;
  }
  err[0] = '\0';
  if (!name) name = "<config>";
  if (len > TKS_CONFIG_MAX_BYTES) {
    snprintf(err, errlen, "%s: the file is %zu bytes, more than the %d a config may have", name,
             len, TKS_CONFIG_MAX_BYTES);
    tks_config_defaults(c);
    return -EFBIG;
  }
  struct tks_config *tmp = malloc(sizeof *tmp);
  if (!tmp) {
    snprintf(err, errlen, "%s: out of memory", name);
    tks_config_defaults(c);
    return -ENOMEM;
  }
  tks_config_defaults(tmp);
  struct reader r = {.name = name, .text = text, .len = len, .err = err, .errlen = errlen, .c = tmp};
  int e;
  if (!yaml_parser_initialize(&r.yp)) {
    snprintf(err, errlen, "%s: out of memory", name);
    e = -ENOMEM;
    goto out_free;
  }
  yaml_parser_set_input_string(&r.yp, (const unsigned char *)(text ? text : ""), text ? len : 0);
  e = read_stream(&r);
  if (r.have_ev) yaml_event_delete(&r.ev);
  yaml_parser_delete(&r.yp);
out_free:
  if (e)
    tks_config_defaults(c);
  else
    memcpy(c, tmp, sizeof *c);
  free(tmp);
  return e;
}

int tks_config_load(struct tks_config *c, const char *path, char *err, size_t errlen) {
  char dummy[8];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof dummy;
  }
  int e = 0;
  char *buf = NULL;
  size_t len = 0;
  if (strlen(path) >= sizeof c->path) {
    e = -ENAMETOOLONG;
    snprintf(err, errlen, "%.64s...: %s", path, strerror(-e));
    goto fail;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    e = -errno;
    snprintf(err, errlen, "%s: %s", path, strerror(-e));
    goto fail;
  }
  /* Read at most one byte past the limit: a FIFO or /dev/zero must not hang us. */
  buf = malloc(TKS_CONFIG_MAX_BYTES + 1);
  if (!buf) {
    close(fd);
    e = -ENOMEM;
    snprintf(err, errlen, "%s: %s", path, strerror(-e));
    goto fail;
  }
  while (len <= TKS_CONFIG_MAX_BYTES) {
    ssize_t n = read(fd, buf + len, TKS_CONFIG_MAX_BYTES + 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      e = -errno;
      close(fd);
      snprintf(err, errlen, "%s: %s", path, strerror(-e));
      goto fail;
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  close(fd);
  if (len > TKS_CONFIG_MAX_BYTES) {
    e = -EFBIG;
    snprintf(err, errlen, "%s: the file is larger than %d bytes (1 MiB), the most a config may be",
             path, TKS_CONFIG_MAX_BYTES);
    goto fail;
  }
  e = tks_config_parse(c, buf, len, path, err, errlen);
  free(buf);
  if (e == 0) set_str(c->path, sizeof c->path, path);
  return e;

fail:
  free(buf);
  tks_config_defaults(c);
  return e;
}

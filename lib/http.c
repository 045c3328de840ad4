/*
 * HTTP/1.x request heads, parsed in place: the request line, then header
 * lines up to the empty one.  Each whole line is checked as it is met; the
 * unfinished last one only for bytes no request may have, so that garbage
 * is refused at once rather than after the size bound.  Only the headers
 * the daemon acts on are read (Connection, Content-Length,
 * Transfer-Encoding, Host); the rest are checked for form and skipped.
 */
#include "http.h"

#include <errno.h>
#include <string.h>

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A byte of a field value: VCHAR, SP, HTAB, obs-text. */
static bool is_value_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

static bool name_is(const char *p, size_t n, const char *want) {
  if (strlen(want) != n) return false;
  for (size_t i = 0; i < n; i++)
    if (lower(p[i]) != want[i]) return false;
  return true;
}

/* The end of the line starting at p (the index of its LF), or -1 when
 * there is none before end; *bad is set for a byte no line may hold
 * (a NUL, a control character, a CR not followed by LF). */
static long line_end(const char *buf, size_t at, size_t end, bool *bad) {
  for (size_t i = at; i < end; i++) {
    unsigned char c = (unsigned char)buf[i];
    if (c == '\n') return (long)i;
    if (c == '\r') {
      if (i + 1 < end && buf[i + 1] != '\n') *bad = true;
      continue;
    }
    if (!is_value_char(c)) *bad = true;
    if (*bad) return -1;
  }
  return -1;
}

static int request_line(const char *p, size_t n, struct tks_http_request *req) {
  size_t i = 0;
  while (i < n && is_tchar((unsigned char)p[i])) i++;
  if (i == 0 || i > 32 || i >= n || p[i] != ' ') return -EINVAL;
  req->method = i == 3 && memcmp(p, "GET", 3) == 0    ? TKS_HTTP_GET
                : i == 4 && memcmp(p, "HEAD", 4) == 0 ? TKS_HTTP_HEAD
                                                      : TKS_HTTP_OTHER;
  size_t t = ++i;
  while (i < n && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f) i++;
  if (i == t || i >= n || p[i] != ' ') return -EINVAL;
  req->target = p + t;
  req->target_len = i - t;
  i++;
  if (n - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 6] != '.') return -EINVAL;
  char major = p[i + 5], minor = p[i + 7];
  if (major < '0' || major > '9' || minor < '0' || minor > '9') return -EINVAL;
  if (major != '1' || minor > '1') return -EPROTONOSUPPORT;
  req->minor = (unsigned)(minor - '0');
  return 0;
}

/* Connection: a comma-separated list of tokens. */
static void connection_header(const char *v, size_t n, bool *close, bool *keep) {
  size_t i = 0;
  while (i < n) {
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    size_t s = i;
    while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t') i++;
    if (name_is(v + s, i - s, "close")) *close = true;
    if (name_is(v + s, i - s, "keep-alive")) *keep = true;
  }
}

int tks_http_parse(const char *buf, size_t len, size_t max, struct tks_http_request *req) {
  size_t end = len < max ? len : max;
  memset(req, 0, sizeof *req);
  size_t at = 0;
  /* Empty lines before the request line are skipped (RFC 9112 2.2). */
  while (at < end && (buf[at] == '\r' || buf[at] == '\n')) {
    if (buf[at] == '\r' && at + 1 < end && buf[at + 1] != '\n') return -EINVAL;
    at++;
  }
  bool first = true, bad = false, close = false, keep = false, host = false, te = false;
  bool have_length = false;
  unsigned long long length = 0;
  unsigned headers = 0;
  for (;;) {
    long lf = line_end(buf, at, end, &bad);
    if (bad) return -EINVAL;
    if (lf < 0) {
      /* Unfinished: a request line must begin with a method name. */
      if (first && at < end && !is_tchar((unsigned char)buf[at])) return -EINVAL;
      return len >= max ? -E2BIG : 0;
    }
    size_t n = (size_t)lf - at;
    if (n && buf[at + n - 1] == '\r') n--;
    const char *p = buf + at;
    at = (size_t)lf + 1;
    if (first) {
      int r = request_line(p, n, req);
      if (r) return r;
      first = false;
      continue;
    }
    if (n == 0) break; /* the empty line: the head is whole */
    if (++headers > TKS_HTTP_MAX_HEADERS) return -E2BIG;
    size_t c = 0;
    while (c < n && is_tchar((unsigned char)p[c])) c++;
    if (c == 0 || c >= n || p[c] != ':') return -EINVAL; /* also obs-fold and "Name :" */
    const char *v = p + c + 1;
    size_t vn = n - c - 1;
    while (vn && (*v == ' ' || *v == '\t')) v++, vn--;
    while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) vn--;
    if (name_is(p, c, "connection")) {
      connection_header(v, vn, &close, &keep);
    } else if (name_is(p, c, "content-length")) {
      unsigned long long x = 0;
      if (vn == 0 || vn > 18) return -EINVAL;
      for (size_t i = 0; i < vn; i++) {
        if (v[i] < '0' || v[i] > '9') return -EINVAL;
        x = x * 10 + (unsigned)(v[i] - '0');
      }
      if (have_length && x != length) return -EINVAL;
      have_length = true;
      length = x;
    } else if (name_is(p, c, "transfer-encoding")) {
      te = true;
    } else if (name_is(p, c, "host")) {
      if (host) return -EINVAL;
      host = true;
    }
  }
  /* Both framings at once is how requests are smuggled (RFC 9112 6.1). */
  if (te && have_length) return -EINVAL;
  if (req->minor == 1 && !host) return -EINVAL;
  req->has_body = te || length > 0;
  req->keep_alive = !close && (req->minor == 1 || keep);
  req->head_len = at;
  return 1;
}

int tks_http_looks_like(const uint8_t *p, size_t n) {
  static const char *const starts[] = {
      "GET ",   "HEAD ",    "POST ",    "PUT ",   "DELETE ",
      "PATCH ", "OPTIONS ", "CONNECT ", "TRACE ", "PRI * HTTP/2.0\r\n"};
  if (n == 0) return -1;
  if (p[0] < 'A' || p[0] > 'Z') return 0;
  bool maybe = false;
  for (size_t i = 0; i < sizeof starts / sizeof *starts; i++) {
    size_t k = strlen(starts[i]);
    size_t m = n < k ? n : k;
    if (memcmp(p, starts[i], m) != 0) continue;
    if (m == k) return 1;
    maybe = true;
  }
  return maybe ? -1 : 0;
}

const char *tks_http_reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 413: return "Content Too Large";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  }
  return "";
}

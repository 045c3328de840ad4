/*
 * A small HTTP/1.x request-head parser, for the daemon's /metrics port:
 * the request line and the headers up to the empty line, checked as RFC
 * 9112 says (tokens, visible target, no obs-fold, one Content-Length),
 * nothing allocated; the caller bounds the bytes it offers.  Also the test
 * the ingest port makes of a connection's first bytes: do they begin an
 * HTTP request rather than a msgpack tick?
 */
#ifndef TKS_HTTP_H
#define TKS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TKS_HTTP_MAX_HEADERS 100 /* header lines a request may have */

enum tks_http_method { TKS_HTTP_GET, TKS_HTTP_HEAD, TKS_HTTP_OTHER };

struct tks_http_request {
  enum tks_http_method method;
  const char *target; /* into the parsed bytes, not NUL-terminated */
  size_t target_len;
  unsigned minor;  /* HTTP/1.<minor>: 0 or 1 */
  bool keep_alive; /* HTTP/1.1 without "Connection: close", or 1.0 with keep-alive */
  bool has_body;   /* a Content-Length over 0, or a Transfer-Encoding */
  size_t head_len; /* bytes of the request line and headers, final empty line included */
};

/*
 * Parses the request head at the start of buf's len bytes, at most max of
 * them.  Returns 1 with *req filled (req->head_len bytes taken), 0 when the
 * bytes so far are a valid beginning and the head is not whole yet (and
 * len < max), -E2BIG when no whole head is within max bytes (431),
 * -EPROTONOSUPPORT for a version other than HTTP/1.0 or 1.1 (505), -EINVAL
 * for anything malformed (400).  Bare LF is taken for CRLF.
 */
int tks_http_parse(const char *buf, size_t len, size_t max, struct tks_http_request *req);

/*
 * What a connection's first bytes say: 1 they begin an HTTP request (a
 * known method name and a space: "GET ", "POST ", "HEAD ", ...; or the
 * HTTP/2 preface), 0 they do not, -1 not known yet (a prefix of one of
 * those, shorter than it).  Only bytes 'A'..'Z' can begin one: to msgpack
 * they are positive fixints, never a tick.
 */
int tks_http_looks_like(const uint8_t *p, size_t n);

/* The reason phrase of a status code ("Not Found"), "" for one not used here. */
const char *tks_http_reason(int status);

#endif

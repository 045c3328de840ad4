/*
 * Unit tests of lib/http.c, the request-head parser of the /metrics port
 * and the ingest port's look at a connection's first bytes: whole heads
 * are taken with their method, target, version and keep-alive; heads cut
 * at every byte wait; bad ones are refused at once (malformed), at the
 * bound (too large) or by version; random and invalid UTF-8 bytes never
 * crash it and what it takes lies inside the input.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "test.h"

#define MAX 8192

/* Parses from an exact-size heap copy (a read past the end is an ASan error). */
static int parse_n(const char *s, size_t n, size_t max, struct tks_http_request *req) {
  char *b = malloc(n ? n : 1);
  ASSERT(b);
  memcpy(b, s, n);
  int r = tks_http_parse(b, n, max, req);
  if (r == 1) {
    ASSERT(req->head_len <= n);
    ASSERT(req->target >= b && req->target + req->target_len <= b + n);
  }
  free(b);
  return r;
}

static int parse(const char *s, struct tks_http_request *req) {
  return parse_n(s, strlen(s), MAX, req);
}

TEST(get_metrics_http11_is_taken_with_keep_alive) {
  struct tks_http_request r;
  const char *s = "GET /metrics HTTP/1.1\r\nHost: x\r\nUser-Agent: Prometheus/2.42.0\r\n"
                  "Accept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\n\r\n";
  ASSERT_EQ(parse(s, &r), 1);
  ASSERT_EQ(r.method, TKS_HTTP_GET);
  ASSERT_EQ(r.target_len, 8);
  ASSERT_EQ(r.minor, 1);
  ASSERT(r.keep_alive);
  ASSERT(!r.has_body);
  ASSERT_EQ(r.head_len, strlen(s));
}

TEST(bytes_after_the_head_are_not_taken) {
  struct tks_http_request r;
  const char *a = "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  char two[200];
  snprintf(two, sizeof two, "%sGET / HTTP/1.1\r\nHost: x\r\n\r\n", a);
  ASSERT_EQ(parse(two, &r), 1);
  ASSERT_EQ(r.method, TKS_HTTP_HEAD);
  ASSERT_EQ(r.head_len, strlen(a));
  ASSERT_EQ(parse(two + r.head_len, &r), 1);
  ASSERT_EQ(r.target_len, 1);
}

TEST(connection_close_and_http10_are_not_kept_alive) {
  struct tks_http_request r;
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, Close\r\n\r\n", &r), 1);
  ASSERT(!r.keep_alive);
  ASSERT_EQ(parse("GET / HTTP/1.0\r\n\r\n", &r), 1);
  ASSERT(!r.keep_alive);
  ASSERT_EQ(r.minor, 0);
  ASSERT_EQ(parse("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n", &r), 1);
  ASSERT(r.keep_alive);
}

TEST(bare_lf_and_leading_empty_lines_are_taken) {
  struct tks_http_request r;
  ASSERT_EQ(parse("\r\n\nGET /metrics HTTP/1.1\nHost: x\n\n", &r), 1);
  ASSERT_EQ(r.method, TKS_HTTP_GET);
}

TEST(other_methods_are_parsed_as_other) {
  struct tks_http_request r;
  ASSERT_EQ(parse("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", &r), 1);
  ASSERT_EQ(r.method, TKS_HTTP_OTHER);
  ASSERT(r.has_body);
  ASSERT_EQ(parse("PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", &r), 1);
  ASSERT(r.has_body);
  ASSERT_EQ(parse("get / HTTP/1.1\r\nHost: x\r\n\r\n", &r), 1); /* methods are case-sensitive */
  ASSERT_EQ(r.method, TKS_HTTP_OTHER);
}

TEST(a_head_cut_at_every_byte_waits) {
  const char *s = "GET /metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9170\r\nAccept: */*\r\n\r\n";
  size_t n = strlen(s);
  struct tks_http_request r;
  for (size_t k = 0; k < n; k++)
    if (parse_n(s, k, MAX, &r) != 0) TEST_FAIL("cut at %zu of %zu: not 0", k, n);
  ASSERT_EQ(parse_n(s, n, MAX, &r), 1);
}

TEST(malformed_heads_are_refused_at_once) {
  static const char *const bad[] = {
      "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",           /* two spaces */
      "GET / HTTP/1.1 \r\nHost: x\r\n\r\n",           /* trailing space */
      "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",         /* space in target */
      "GET / HTTP/1.x\r\nHost: x\r\n\r\n",            /* version */
      "GET / HTTQ/1.1\r\nHost: x\r\n\r\n",            /* protocol */
      "GET /\r\n\r\n",                                /* HTTP/0.9 */
      "GET / HTTP/1.1\r\nHost x\r\n\r\n",             /* no colon */
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n",           /* space before colon */
      "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", /* obs-fold */
      "GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n",         /* bare CR */
      "GET / HTTP/1.1\r\nHost: x\r\nA: \x01\r\n\r\n", /* control byte */
      "GET / HTTP/1.1\r\n\r\n",                       /* 1.1 without Host */
      "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", /* two Hosts */
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
      "\x82\xa6ticker\244AAPL",  /* a msgpack tick */
      "{\"ticker\":\"AAPL\"}\n", /* JSON */
  };
  struct tks_http_request r;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int got = parse(bad[i], &r);
    if (got != -EINVAL) TEST_FAIL("bad head %zu: %d, want -EINVAL", i, got);
  }
  ASSERT_EQ(parse_n("GET\0/ HTTP/1.1\r\n", 16, MAX, &r), -EINVAL);
  /* Garbage is refused within its first bytes, not after the bound. */
  ASSERT_EQ(parse_n("\x16\x03\x01\x02\x00", 5, MAX, &r), -EINVAL); /* a TLS hello */
  ASSERT_EQ(parse_n("GET / HTTP/1.1\r\nHo\x01", 19, MAX, &r), -EINVAL);
}

TEST(other_versions_are_not_supported) {
  struct tks_http_request r;
  ASSERT_EQ(parse("GET / HTTP/2.0\r\n\r\n", &r), -EPROTONOSUPPORT);
  ASSERT_EQ(parse("GET / HTTP/1.2\r\nHost: x\r\n\r\n", &r), -EPROTONOSUPPORT);
}

TEST(a_head_over_the_bound_is_too_large) {
  struct tks_http_request r;
  size_t n = 20000;
  char *s = malloc(n + 1);
  ASSERT(s);
  memcpy(s, "GET / HTTP/1.1\r\nHost: x\r\nCookie: ", 33);
  memset(s + 33, 'a', n - 33);
  s[n] = '\0';
  ASSERT_EQ(parse_n(s, n, MAX, &r), -E2BIG);
  ASSERT_EQ(parse_n(s, MAX, MAX, &r), -E2BIG);
  ASSERT_EQ(parse_n(s, MAX - 1, MAX, &r), 0);
  /* A long target alone. */
  memcpy(s, "GET /", 5);
  memset(s + 5, 'b', n - 5);
  ASSERT_EQ(parse_n(s, n, MAX, &r), -E2BIG);
  free(s);
  /* Too many header lines. */
  struct tks_buf_like {
    char d[MAX];
    size_t n;
  } *b = calloc(1, sizeof *b);
  ASSERT(b);
  b->n = (size_t)snprintf(b->d, sizeof b->d, "GET / HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < TKS_HTTP_MAX_HEADERS + 1; i++)
    b->n += (size_t)snprintf(b->d + b->n, sizeof b->d - b->n, "X-%d: y\r\n", i);
  b->n += (size_t)snprintf(b->d + b->n, sizeof b->d - b->n, "\r\n");
  ASSERT_EQ(parse_n(b->d, b->n, MAX, &r), -E2BIG);
  free(b);
}

TEST(invalid_utf8_in_values_is_taken_and_in_names_refused) {
  struct tks_http_request r;
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\nX-A: \xff\xfe\xc3\r\n\r\n", &r), 1);
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\nX-\xff: a\r\n\r\n", &r), -EINVAL);
  ASSERT_EQ(parse("GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", &r), -EINVAL);
}

TEST(random_bytes_never_crash_and_stay_inside) {
  unsigned seed = 12;
  struct tks_http_request r;
  static const char alphabet[] = "GET /metrics HTTP/1.1\r\nHost: x:\t\x00\xff"
                                 "ABCZ0-,";
  for (int round = 0; round < 20000; round++) {
    char b[256];
    size_t n = (size_t)(rand_r(&seed) % sizeof b);
    bool text = rand_r(&seed) & 1;
    for (size_t i = 0; i < n; i++)
      b[i] = text ? alphabet[rand_r(&seed) % (sizeof alphabet - 1)] : (char)rand_r(&seed);
    if (round % 3 == 0 && n > 24) memcpy(b, "GET /metrics HTTP/1.1\r\n", 23);
    size_t max = 1 + (size_t)(rand_r(&seed) % 300);
    int got = parse_n(b, n, max, &r);
    if (got != 1 && got != 0 && got != -EINVAL && got != -E2BIG && got != -EPROTONOSUPPORT)
      TEST_FAIL("round %d: %d", round, got);
    if (got == 1 && r.head_len > max)
      TEST_FAIL("round %d: took %zu of max %zu", round, r.head_len, max);
    if (got == 0 && n >= max) TEST_FAIL("round %d: waits at the bound", round);
  }
}

TEST(looks_like_http_knows_methods_and_waits_on_a_prefix) {
  ASSERT_EQ(tks_http_looks_like((const uint8_t *)"GET /metrics", 12), 1);
  ASSERT_EQ(tks_http_looks_like((const uint8_t *)"POST /", 6), 1);
  ASSERT_EQ(tks_http_looks_like((const uint8_t *)"HEAD ", 5), 1);
  ASSERT_EQ(tks_http_looks_like((const uint8_t *)"PRI * HTTP/2.0\r\n\r\nSM", 20), 1);
  ASSERT_EQ(tks_http_looks_like((const uint8_t *)"GE", 2), -1);
  ASSERT_EQ(tks_http_looks_like((const uint8_t *)"P", 1), -1);
  ASSERT_EQ(tks_http_looks_like((const uint8_t *)"", 0), -1);
  ASSERT_EQ(tks_http_looks_like((const uint8_t *)"GETX", 4), 0);
  ASSERT_EQ(tks_http_looks_like((const uint8_t *)"\x85\xa6ticker", 8), 0);
  ASSERT_EQ(tks_http_looks_like((const uint8_t *)"\x95\xa4", 2), 0);
  ASSERT_EQ(tks_http_looks_like((const uint8_t *)"Z", 1), 0);
}

TEST_MAIN()

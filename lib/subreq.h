/*
 * The subscribe request, as a subscriber writes it on the subscription
 * port: one msgpack map
 *
 *   {"subscribe": ["AAPL", "MSFT"] | "*", "from": <ts ns> | "now" | "<time>"}
 *
 * "from" is optional ("now": live ticks only); a time string is what
 * tks_parse_time() takes (ISO-8601, a date, digits).  Checked structurally
 * (tks_msgpack_skip) before msgpack-c reads it, so no length prefix is
 * trusted before its bytes are there.
 */
#ifndef TKS_SUBREQ_H
#define TKS_SUBREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TKS_SUBREQ_MAX_BYTES (64u << 10) /* a larger request is refused */
#define TKS_SUBREQ_MAX_SYMBOL 255        /* bytes of one symbol */

struct tks_subreq {
  bool all;      /* "*" */
  bool from_now; /* no replay */
  int64_t from;  /* ns, when !from_now */
  uint32_t nsymbols;
  char **symbols; /* NUL-terminated, valid UTF-8, none empty, no duplicates kept */
};

/*
 * Reads the request at the front of buf[0..len).  Returns the bytes it
 * took (> 0) with *out filled (free with tks_subreq_finish), 0 when more
 * bytes are needed (len is under TKS_SUBREQ_MAX_BYTES), or -EINVAL with a
 * one-line reason in why (-E2BIG: too large; -ENOMEM).
 */
long tks_subreq_parse(const uint8_t *buf, size_t len, struct tks_subreq *out, char *why, size_t n);
void tks_subreq_finish(struct tks_subreq *r);

#endif

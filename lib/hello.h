/*
 * The producer protocol of the ingest port (README "Producer
 * acknowledgements"): the hello a client may send as its connection's first
 * message, and the msgpack maps the daemon writes back to one that asked
 * for acknowledgements:
 *
 *   in   {"$":"hello","acks":true}  or  {"$":"hello","acks":true,"producer":"NAME"}
 *   out  {"$":"welcome","position":N,"journal":"on"|"off","fsync":F[,"producer":NAME]}
 *        {"$":"ack","accepted":A,"rejected":R,"durable":D}
 *        {"$":"reject","seq":N,"reason":R[,"field":F]}
 *        {"$":"omitted","rejects":K}
 *        {"$":"error","error":TEXT[,"seq":N]}
 *
 * The hello is checked structurally (tks_msgpack_skip) before msgpack-c
 * reads it: no length prefix is trusted before its bytes are there.
 */
#ifndef TKS_HELLO_H
#define TKS_HELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define TKS_HELLO_MAX_BYTES 1024u /* a larger hello is refused */
#define TKS_PRODUCER_NAME_MAX 64u /* bytes of a producer's name */

struct tks_hello {
  bool acks;
  uint8_t producer_len;                     /* 0: anonymous */
  char producer[TKS_PRODUCER_NAME_MAX + 1]; /* NUL-terminated */
};

/*
 * Whether buf[0..len) begins with a map whose first key is "$" (a control
 * message, a hello where one may be): 1 yes, 0 no, -1 not known yet (the
 * bytes so far are a map header and a prefix of the key "$").
 */
int tks_hello_is(const uint8_t *buf, size_t len);

/*
 * Reads the hello at the front of buf[0..len) (tks_hello_is said yes).
 * Returns the bytes it took (> 0) with *out filled, 0 when more bytes are
 * needed (len is under TKS_HELLO_MAX_BYTES), or -EINVAL / -E2BIG with a
 * one-line reason in why.  Refused: not a map, "$" not "hello", a key
 * other than "$", "acks", "producer", or one twice, "acks" missing or not
 * a boolean, a producer name empty, over TKS_PRODUCER_NAME_MAX bytes, not
 * valid UTF-8 or holding a control character, or given with acks false.
 */
long tks_hello_parse(const uint8_t *buf, size_t len, struct tks_hello *out, char *why, size_t n);

/* The messages written back, appended to b.  0 or -ENOMEM. */
int tks_hello_welcome(struct tks_buf *b, const char *producer, size_t len, uint64_t position,
                      bool journal, const char *fsync);
int tks_hello_ack(struct tks_buf *b, uint64_t accepted, uint64_t rejected, uint64_t durable);
/* field: NULL or "" for none. */
int tks_hello_reject(struct tks_buf *b, uint64_t seq, const char *reason, const char *field);
int tks_hello_omitted(struct tks_buf *b, uint64_t rejects);
/* has_seq: the message at seq closed the stream. */
int tks_hello_error(struct tks_buf *b, const char *text, bool has_seq, uint64_t seq);

#endif

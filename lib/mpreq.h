/*
 * Pieces shared by the readers of small msgpack requests that msgpack-c
 * has unpacked (the subscribe request, subreq.h; the producer hello,
 * hello.h): a reason written for the client, a key compared, a string shown
 * safely inside a reason.
 */
#ifndef TKS_MPREQ_H
#define TKS_MPREQ_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

/* Formats the reason into why (n bytes) and returns r. */
long tks_mpreq_fail(char *why, size_t n, long r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Whether k is the string s. */
bool tks_mpreq_key_is(const msgpack_object *k, const char *s);
/* o for a reason, in buf (n >= 8 bytes): printable ASCII ('?' for any other
 * byte), cut with "..." to fit, or "(not a string)". */
const char *tks_mpreq_shown(const msgpack_object *o, char *buf, size_t n);

#endif

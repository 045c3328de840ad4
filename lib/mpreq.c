/* The shared pieces of the msgpack request readers (mpreq.h). */
#include "mpreq.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

long tks_mpreq_fail(char *why, size_t n, long r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, n, fmt, ap);
  va_end(ap);
  return r;
}

bool tks_mpreq_key_is(const msgpack_object *k, const char *s) {
  return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(s) &&
         memcmp(k->via.str.ptr, s, k->via.str.size) == 0;
}

const char *tks_mpreq_shown(const msgpack_object *o, char *buf, size_t n) {
  if (o->type != MSGPACK_OBJECT_STR) return "(not a string)";
  size_t len = o->via.str.size < n - 4 ? o->via.str.size : n - 4;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)o->via.str.ptr[i];
    buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
  }
  strcpy(buf + len, len < o->via.str.size ? "..." : "");
  return buf;
}

/*
 * UTF-8 checking for strings that come from outside: one pass that tells
 * whether bytes are well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF, no truncated sequence) and whether
 * they hold a space or a control character, plus an escaper that makes
 * any bytes safe for a log line.  ASCII goes 8 bytes at a time.
 */
#ifndef TKS_UTF8_H
#define TKS_UTF8_H

#include <stddef.h>

/* Bits of tks_utf8_scan()'s answer. */
enum {
  TKS_UTF8_INVALID = 1 << 0, /* not well-formed UTF-8 (the scan stops there) */
  TKS_UTF8_CONTROL = 1 << 1, /* a control character: U+0000-U+001F, U+007F-U+009F */
  TKS_UTF8_SPACE = 1 << 2,   /* U+0020 */
};

/*
 * Scans s[0..n): 0 for well-formed UTF-8 with neither a control character
 * nor a space, else the TKS_UTF8_* bits found (INVALID alone tells the
 * bytes are refused; what was found before the bad byte may be set too).
 */
unsigned tks_utf8_scan(const char *s, size_t n);

/* True when s[0..n) is well-formed UTF-8 (controls and spaces allowed). */
static inline int tks_utf8_valid(const char *s, size_t n) {
  return !(tks_utf8_scan(s, n) & TKS_UTF8_INVALID);
}

/*
 * Copies s[0..n) into out (cap bytes, cap >= 1, always NUL-terminated) with
 * every byte that is not part of a well-formed character, and every byte of
 * a control character, written as the four characters \xHH; the rest,
 * backslashes included, as it is.  Stops before a character or an escape
 * that would not fit whole, so the output is valid UTF-8 without control
 * bytes.  Returns the output length.
 */
size_t tks_utf8_escape(char *out, size_t cap, const char *s, size_t n);

#endif

/*
 * UTF-8 checking: ASCII 8 bytes at a time (a word with no high bit is
 * ASCII; a borrow trick finds bytes under 0x21 and DEL), anything else one
 * character at a time by the well-formed ranges of Unicode's table 3-7,
 * which leave out overlong forms, surrogates and code points past
 * U+10FFFF.  The escaper uses the same per-character reader.
 */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

#define ONES 0x0101010101010101ull
#define HIGH 0x8080808080808080ull

/* Control and space bits of one ASCII byte. */
static inline unsigned ascii_class(unsigned char c) {
  if (c < 0x20 || c == 0x7f) return TKS_UTF8_CONTROL;
  return c == 0x20 ? TKS_UTF8_SPACE : 0;
}

/* Of 8 ASCII bytes in w: whether any is under 0x21 or DEL, exactly (the
 * borrow may mark the wrong byte, never a wrong word: bytes are < 0x80). */
static inline int word_has_special(uint64_t w) {
  uint64_t del = w ^ (0x7f * ONES);
  return (((w - 0x21 * ONES) & ~w) | ((del - ONES) & ~del)) & HIGH ? 1 : 0;
}

static unsigned ascii_bytes_class(const unsigned char *p, size_t n) {
  unsigned f = 0;
  for (size_t i = 0; i < n; i++) f |= ascii_class(p[i]);
  return f;
}

/*
 * One character at p (avail >= 1 bytes, p[0] >= 0x80): its length, or 0
 * when the bytes there are not a well-formed character.  A C1 control
 * (U+0080-U+009F: C2 80..C2 9F) sets TKS_UTF8_CONTROL in *flags.
 */
static inline size_t multibyte(const unsigned char *p, size_t avail, unsigned *flags) {
  unsigned char c = p[0];
  size_t len;
  unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
  if (c < 0xc2) return 0;             /* a continuation byte, or an overlong C0/C1 lead */
  if (c < 0xe0) {
    len = 2;
  } else if (c < 0xf0) {
    len = 3;
    if (c == 0xe0) lo = 0xa0; /* overlong below U+0800 */
    if (c == 0xed) hi = 0x9f; /* surrogates U+D800-U+DFFF */
  } else if (c < 0xf5) {
    len = 4;
    if (c == 0xf0) lo = 0x90; /* overlong below U+10000 */
    if (c == 0xf4) hi = 0x8f; /* past U+10FFFF */
  } else {
    return 0;
  }
  if (avail < len || p[1] < lo || p[1] > hi) return 0;
  for (size_t k = 2; k < len; k++)
    if ((p[k] & 0xc0) != 0x80) return 0;
  if (c == 0xc2 && p[1] < 0xa0) *flags |= TKS_UTF8_CONTROL;
  return len;
}

unsigned tks_utf8_scan(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  unsigned flags = 0;
  /* Short strings (tickers, field names) in one or two overlapping loads. */
  if (n >= 4 && n < 8) {
    uint32_t a, b;
    memcpy(&a, p, 4);
    memcpy(&b, p + n - 4, 4);
    uint64_t w = (uint64_t)b << 32 | a;
    if (!(w & HIGH)) return word_has_special(w) ? ascii_bytes_class(p, n) : 0;
  }
  size_t i = 0;
  while (i < n) {
    if (n - i >= 8) {
      uint64_t w;
      memcpy(&w, p + i, 8);
      if (!(w & HIGH)) {
        if (word_has_special(w)) flags |= ascii_bytes_class(p + i, 8);
        i += 8;
        continue;
      }
    } else if (n >= 8) {
      /* The tail as the last 8 bytes: those before i are checked already,
       * and if all 8 are ASCII, classing them again changes nothing. */
      uint64_t w;
      memcpy(&w, p + n - 8, 8);
      if (!(w & HIGH)) return word_has_special(w) ? flags | ascii_bytes_class(p + n - 8, 8) : flags;
    }
    if (p[i] < 0x80) {
      flags |= ascii_class(p[i]);
      i++;
      continue;
    }
    size_t len = multibyte(p + i, n - i, &flags);
    if (len == 0) return flags | TKS_UTF8_INVALID;
    i += len;
  }
  return flags;
}

size_t tks_utf8_escape(char *out, size_t cap, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  size_t o = 0, i = 0;
  while (i < n) {
    unsigned ctrl = 0;
    size_t len = 1;
    if (p[i] < 0x80)
      ctrl = ascii_class(p[i]) & TKS_UTF8_CONTROL;
    else
      len = multibyte(p + i, n - i, &ctrl);
    int escape = len == 0 || ctrl;
    if (len == 0) len = 1; /* a byte that starts no character: that byte alone */
    size_t need = escape ? 4 * len : len;
    if (o + need >= cap) break;
    if (!escape) {
      memcpy(out + o, p + i, len);
    } else {
      for (size_t k = 0; k < len; k++) {
        char *e = out + o + 4 * k;
        e[0] = '\\', e[1] = 'x', e[2] = hex[p[i + k] >> 4], e[3] = hex[p[i + k] & 15];
      }
    }
    i += len;
    o += need;
  }
  if (cap) out[o] = '\0';
  return o;
}

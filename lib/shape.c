/*
 * The shape cache (see shape.h).  The fast path reads a tick only as far as
 * it matches the learned shape and only in the value encodings it knows,
 * and changes nothing outside the record until the whole tick is known to
 * be one tks_decode() accepts: header and keys byte for byte, every value of
 * its field's type and in range, required fields there, strings checked as
 * tks_decode() checks them.  Then it interns, in field order as tks_decode()
 * does.  Anything else is left to tks_decode(), a failed intern too (a full
 * table: tks_decode() finds the strings added before it and fails alike).
 */
#include "shape.h"

#include <math.h>
#include <string.h>

#include "symtab.h"
#include "utf8.h"
#include "util.h"

/* Accepted ticks of another shape before it replaces the learned one. */
#define RELEARN_AFTER 4

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

void tks_shape_init(struct tks_shape_cache *c) { memset(c, 0, sizeof *c); }

/* ---- recent strings ---------------------------------------------------- */

/* The first min(n, 8) bytes at p, zeros after them, with one 8-byte load
 * (the caller has 8 bytes at p to read). */
static inline uint64_t head8(const uint8_t *p, size_t n) {
  static const uint8_t ones[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  uint64_t x, m;
  memcpy(&x, p, 8);
  memcpy(&m, ones + 8 - (n < 8 ? n : 8), 8);
  return x & m;
}

static inline uint32_t sym_key(size_t len, int kind) {
  return (uint32_t)len | (uint32_t)kind << 16;
}

static inline unsigned sym_slot(uint64_t head, uint32_t key) {
  uint64_t x = (head ^ key) * 0x9e3779b97f4a7c15ull;
  return (unsigned)(x >> 55); /* 9 bits: TKS_SHAPE_SYMS */
}

static void syms_clear(struct tks_shape_cache *c) {
  memset(c->syms, 0, sizeof c->syms);
  c->nsyms = 0;
}

/* Empties the recent strings if a table is another or removed ids since. */
static inline void syms_check(struct tks_shape_cache *c, const struct tks_decoder *d) {
  if (c->tables[0] == d->symbols && c->tables[1] == d->strings &&
      c->generations[0] == tks_symtab_generation(d->symbols) &&
      c->generations[1] == tks_symtab_generation(d->strings))
    return;
  syms_clear(c);
  c->tables[0] = d->symbols, c->generations[0] = tks_symtab_generation(d->symbols);
  c->tables[1] = d->strings, c->generations[1] = tks_symtab_generation(d->strings);
}

/* The slot of s (len > 0) of that kind, or the free slot where it goes.  Up
 * to 8 bytes, the key and head8() are the whole string. */
static inline struct tks_shape_sym *sym_find(struct tks_shape_cache *c, int kind, const char *s,
                                             size_t len, uint64_t head) {
  uint32_t key = sym_key(len, kind);
  for (unsigned i = sym_slot(head, key);; i = (i + 1) % TKS_SHAPE_SYMS) {
    struct tks_shape_sym *e = &c->syms[i];
    if (e->key == 0) return e;
    if (e->key == key && e->head == head &&
        (len <= 8 ||
         memcmp(tks_symtab_name(c->tables[kind], e->id, NULL) + 8, s + 8, len - 8) == 0))
      return e;
  }
}

/* s's id, if it is among the recent strings.  The first slot probed is
 * where nearly every string is found: the rest off line. */
__attribute__((noinline)) static bool sym_probe(struct tks_shape_cache *c, int kind, const char *s,
                                                size_t len, uint64_t head, uint32_t *id) {
  const struct tks_shape_sym *e = sym_find(c, kind, s, len, head);
  *id = e->id;
  return e->key != 0;
}
static inline bool sym_lookup(struct tks_shape_cache *c, int kind, const char *s, size_t len,
                              uint64_t head, uint32_t *id) {
  uint32_t key = sym_key(len, kind);
  const struct tks_shape_sym *e = &c->syms[sym_slot(head, key)];
  if (e->key == key && e->head == head && len <= 8) {
    *id = e->id;
    return true;
  }
  return e->key != 0 && sym_probe(c, kind, s, len, head, id);
}

/* Notes s's id (after a miss); a cache more than half full starts again
 * empty. */
static void sym_add(struct tks_shape_cache *c, int kind, const char *s, size_t len, uint64_t head,
                    uint32_t id) {
  if (c->nsyms >= TKS_SHAPE_SYMS / 2) syms_clear(c);
  struct tks_shape_sym *e = sym_find(c, kind, s, len, head);
  if (e->key) return; /* the same string in two fields of the tick */
  *e = (struct tks_shape_sym){head, id, sym_key(len, kind)};
  c->nsyms++;
}

/* ---- learning ----------------------------------------------------------- */

/* Header of a map or array at p: its length (0 if neither) and count. */
static size_t container_header(const uint8_t *p, size_t len, bool *is_map, uint64_t *count) {
  uint8_t b = p[0];
  if (b >= 0x80 && b <= 0x9f) {
    *is_map = b <= 0x8f, *count = b & 0x0f;
    return 1;
  }
  if ((b == 0xde || b == 0xdc) && len >= 3) {
    *is_map = b == 0xde, *count = be16(p + 1);
    return 3;
  }
  if ((b == 0xdf || b == 0xdd) && len >= 5) {
    *is_map = b == 0xdf, *count = be32(p + 1);
    return 5;
  }
  return 0;
}

/* Header length and string length of a str at p, or 0 for another type. */
static size_t str_header(const uint8_t *p, size_t avail, size_t *n) {
  uint8_t b = p[0];
  if ((b & 0xe0) == 0xa0) return *n = b & 0x1f, 1;
  if (b == 0xd9 && avail >= 2) return *n = p[1], 2;
  if (b == 0xda && avail >= 3) return *n = be16(p + 1), 3;
  if (b == 0xdb && avail >= 5) return *n = be32(p + 1), 5;
  return 0;
}

/* The most bytes a value of type t takes on the fast path. */
static unsigned value_room(enum tks_type t) {
  switch (t) {
  case TKS_TYPE_SYMBOL:
  case TKS_TYPE_STRING: return 2 + 255; /* str8 */
  case TKS_TYPE_BOOL: return 1;
  default: return 9; /* int64, float64 */
  }
}

static void set_key(struct tks_shape_key *k, const struct tks_field *f, int field, const uint8_t *p,
                    size_t len) {
  memset(k, 0, sizeof *k);
  memcpy(k->bytes, p, len);
  k->len = (uint8_t)len;
  k->field = (uint8_t)field;
  k->type = (uint8_t)f->type;
  k->offset = (uint8_t)f->offset;
  k->room = (uint16_t)(len + value_room(f->type));
  uint8_t m[8] = {0};
  memset(m, 0xff, len < 8 ? len : 8);
  memcpy(&k->mask, m, 8);
  memcpy(&k->head, k->bytes, 8); /* bytes past len are zeros */
}

/* Learns the shape of buf[0..n), a tick tks_decode() accepted (so its keys
 * are declared field names, each once).  Leaves no shape where one key is
 * too long to keep. */
__attribute__((noinline, cold)) static void
learn(struct tks_shape_cache *c, const struct tks_decoder *d, const uint8_t *buf, size_t n) {
  const struct tks_schema *s = d->schema;
  bool is_map;
  uint64_t count;
  c->schema = NULL;
  size_t pos = container_header(buf, n, &is_map, &count);
  if (pos == 0 || count > TKS_SCHEMA_MAX_FIELDS) return;
  memcpy(c->hdr, buf, pos);
  c->hdr_len = (uint8_t)pos;
  c->mask = 0;
  c->room = (uint32_t)pos + 8; /* + 8: a key is compared in one 8-byte load */
  uint32_t bytes = 0;
  for (unsigned i = 0; i < count; i++) {
    int fi = (int)i;
    size_t klen = 0;
    if (is_map) {
      size_t kn, kh = str_header(buf + pos, n - pos, &kn);
      if (kh == 0 || kh + kn > TKS_SHAPE_KEY_MAX || kh + kn > n - pos) return;
      fi = tks_schema_find(s, (const char *)buf + pos + kh, kn);
      if (fi < 0) return;
      klen = kh + kn;
    }
    set_key(&c->keys[i], &s->fields[fi], fi, buf + pos, klen);
    c->mask |= 1u << fi;
    c->room += c->keys[i].room;
    bytes += s->fields[fi].size;
    pos += klen;
    long v = tks_msgpack_skip(buf + pos, n - pos, d->max_message_bytes);
    if (v <= 0) return;
    pos += (size_t)v;
  }
  memset(c->tmpl, 0, sizeof c->tmpl);
  for (unsigned fi = 0; fi < s->nfields; fi++)
    if ((int)fi != s->ts_field)
      memcpy(c->tmpl + s->fields[fi].offset, &s->fields[fi].dflt, s->fields[fi].size);
  c->full = bytes == s->record_size;
  c->verbatim = is_map && c->mask == (s->nfields >= 32 ? ~0u : (1u << s->nfields) - 1);
  c->string_fields = 0;
  for (unsigned fi = 0; fi < s->nfields; fi++)
    if (s->fields[fi].type == TKS_TYPE_STRING) c->string_fields |= 1u << fi;
  c->strs = c->mask & s->intern_mask;
  c->ts_mask = s->ts_field >= 0 ? c->mask & 1u << s->ts_field : 0;
  c->long_keys = false;
  for (unsigned i = 0; i < count; i++) c->long_keys |= c->keys[i].len > 8;
  c->n = (uint8_t)count;
  c->misses = 0;
  c->schema = s;
}

/* ---- the fast path ------------------------------------------------------ */

/* An integer as tks_decode() reads one into an int64 (a uint64 over
 * INT64_MAX is not): its length, or 0. */
static inline size_t read_int(const uint8_t *q, int64_t *x) {
  uint8_t b = q[0];
  if (b <= 0x7f || b >= 0xe0) return *x = (int8_t)b, 1; /* (int8_t) of 0..0x7f is itself */
  switch (b) {
  case 0xcc: return *x = q[1], 2;
  case 0xcd: return *x = be16(q + 1), 3;
  case 0xce: return *x = be32(q + 1), 5;
  case 0xcf: {
    uint64_t u = be64(q + 1);
    if (u > INT64_MAX) return 0;
    return *x = (int64_t)u, 9;
  }
  case 0xd0: return *x = (int8_t)q[1], 2;
  case 0xd1: return *x = (int16_t)be16(q + 1), 3;
  case 0xd2: return *x = (int32_t)be32(q + 1), 5;
  case 0xd3: return *x = (int64_t)be64(q + 1), 9;
  }
  return 0;
}

/* A number for an f64 field, as put_field() takes one: its length, or 0. */
static inline size_t read_f64(const uint8_t *q, double *x) {
  if (q[0] == 0xcb) {
    uint64_t u = be64(q + 1);
    memcpy(x, &u, 8);
    return 9;
  }
  if (q[0] == 0xca) {
    uint32_t u = be32(q + 1);
    float f;
    memcpy(&f, &u, 4);
    return *x = f, 5;
  }
  int64_t i = 0;
  size_t n = read_int(q, &i);
  *x = (double)i;
  return n;
}

enum fast { FAST_HIT, FAST_OTHER_SHAPE, FAST_UNSURE };

/* The strings of a tick not among the recent ones, by field: checked and
 * interned once the whole tick is read. */
struct misses {
  uint32_t fields;
  const char *s[TKS_SCHEMA_MAX_FIELDS];
  uint8_t len[TKS_SCHEMA_MAX_FIELDS];
  uint64_t head[TKS_SCHEMA_MAX_FIELDS];
};

/*
 * Reads the keys and values of a tick of the shape from buf into rec, as
 * put_field() checks them, a recent string's id too; a string not among
 * them is noted in *ms and its place left 0.  buf holds c->room bytes,
 * which no tick of the shape can read past (every key and value within its
 * key's room, one 8-byte load past a key or into a string at most), so no
 * read checks a bound: the caller compares the end, *pos, with what it has.
 * Sets the fields with a nil (*nils).
 */
static inline __attribute__((always_inline)) enum fast
read_tick(struct tks_shape_cache *c, const bool long_keys, const bool track, int symbol_field,
          const uint8_t *buf, char *rec, size_t *pos, uint32_t *nils, bool *inexact,
          struct misses *ms) {
  const uint8_t *p = buf + c->hdr_len;
  for (const struct tks_shape_key *k = c->keys, *end = k + c->n; k < end; k++) {
    uint64_t x;
    memcpy(&x, p, 8);
    if ((x & k->mask) != k->head ||
        (long_keys && k->len > 8 && memcmp(p + 8, k->bytes + 8, k->len - 8) != 0))
      return FAST_OTHER_SHAPE;
    p += k->len;
    char *at = rec + k->offset;
    uint8_t b = p[0];
    size_t n = 0;
    switch ((enum tks_type)k->type) {
    case TKS_TYPE_TIMESTAMP:
      if (b == 0xd3) { /* what a sender of ns timestamps uses: no second dispatch */
        uint64_t u = be64(p + 1);
        memcpy(at, &u, 8);
        n = 9;
        break;
      }
      /* fall through */
    case TKS_TYPE_I64: {
      int64_t i;
      n = read_int(p, &i);
      if (n) memcpy(at, &i, 8);
      break;
    }
    case TKS_TYPE_U32: {
      int64_t i;
      n = read_int(p, &i);
      if (n && i >= 0 && i <= UINT32_MAX) {
        uint32_t u = (uint32_t)i;
        memcpy(at, &u, 4);
      } else {
        n = 0;
      }
      break;
    }
    case TKS_TYPE_F64: {
      double f;
      if (track && b != 0xcb) *inexact = true; /* an int or a float32 becomes a float64 */
      n = read_f64(p, &f);
      if (n && isfinite(f))
        memcpy(at, &f, 8);
      else
        n = 0;
      break;
    }
    case TKS_TYPE_SYMBOL:
    case TKS_TYPE_STRING: {
      size_t h = (b & 0xe0) == 0xa0 ? 1 : b == 0xd9 ? 2 : 0, len = h == 1 ? b & 0x1fu : p[1];
      if (!h) break;
      n = h + len;
      const char *s = (const char *)p + h;
      uint32_t id = 0;
      if (len > 0) {
        int kind = k->type == TKS_TYPE_STRING;
        uint64_t head = head8(p + h, len);
        if (!sym_lookup(c, kind, s, len, head, &id)) {
          id = 0;
          ms->fields |= 1u << k->field;
          ms->s[k->field] = s, ms->len[k->field] = (uint8_t)len, ms->head[k->field] = head;
        }
      } else if (k->field == symbol_field) {
        return FAST_UNSURE; /* an empty series key: bad_value */
      }
      memcpy(at, &id, 4);
      break;
    }
    case TKS_TYPE_BOOL:
      if (b == 0xc2 || b == 0xc3) *(bool *)at = b == 0xc3, n = 1;
      break;
    case TKS_TYPE__COUNT: break;
    }
    if (n == 0) {
      /* No type takes a nil (0xc0): it is an absent field, looked for
       * only here, off the common path. */
      if (b != 0xc0) return FAST_UNSURE;
      *nils |= 1u << k->field;
      n = 1;
    }
    p += n;
  }
  *pos = (size_t)(p - buf);
  return FAST_HIT;
}

/* The strings of a tick not among the recent ones: all checked before any
 * is interned, as tks_decode() interns only a tick it accepts; then
 * interned in field order, as it does.  With d->check_only none is, and
 * every present string's place is 0, as tks_decode() leaves it.  Returns
 * false where tks_decode() must decide. */
__attribute__((noinline)) static bool new_strings(struct tks_shape_cache *c,
                                                  const struct tks_decoder *d, char *rec,
                                                  uint32_t seen, const struct misses *ms) {
  const struct tks_schema *s = d->schema;
  for (uint32_t m = ms->fields; m; m &= m - 1) {
    int fi = __builtin_ctz(m);
    bool string = (c->string_fields >> fi) & 1;
    /* A symbol is a word of the control protocol: no space, no control. */
    if (tks_utf8_scan(ms->s[fi], ms->len[fi]) & (string ? (unsigned)TKS_UTF8_INVALID : ~0u))
      return false;
  }
  if (d->check_only) {
    for (uint32_t m = seen & s->intern_mask; m; m &= m - 1)
      memset(rec + s->fields[__builtin_ctz(m)].offset, 0, 4);
    return true;
  }
  for (uint32_t m = ms->fields; m; m &= m - 1) {
    int fi = __builtin_ctz(m), kind = (c->string_fields >> fi) & 1;
    uint32_t id;
    /* A full table: tks_decode() interns the same strings again (they
     * are there: no change) and refuses the tick at the same one. */
    if (tks_symtab_intern(kind ? d->strings : d->symbols, ms->s[fi], ms->len[fi], &id) != 0)
      return false;
    sym_add(c, kind, ms->s[fi], ms->len[fi], ms->head[fi], id);
    memcpy(rec + s->fields[fi].offset, &id, 4);
  }
  return true;
}

/* The fast path on buf[0..len), len >= c->room (see read_tick): FAST_HIT
 * with the tick decoded as tks_decode() would (status OK), else nothing
 * outside rec changed. */
static inline __attribute__((always_inline)) enum fast
fast_decode(struct tks_shape_cache *c, const struct tks_decoder *d, const uint8_t *buf, size_t len,
            int64_t now_ns, char *rec, struct tks_decode_result *res, const bool track) {
  const struct tks_schema *s = d->schema;
  /* A header of one byte (fixmap, fixarray) needs no memcmp call. */
  if (buf[0] != c->hdr[0] || (c->hdr_len > 1 && memcmp(buf, c->hdr, c->hdr_len) != 0))
    return FAST_OTHER_SHAPE;
  if (!c->full) memcpy(rec, c->tmpl, s->record_size);
  if (c->strs) syms_check(c, d);
  size_t pos;
  uint32_t nils = 0;
  bool inexact = false;
  struct misses ms;
  ms.fields = 0;
  /* Keys of up to 8 bytes, the common case, need no second compare. */
  enum fast f =
      c->long_keys
          ? read_tick(c, true, track, s->symbol_field, buf, rec, &pos, &nils, &inexact, &ms)
          : read_tick(c, false, track, s->symbol_field, buf, rec, &pos, &nils, &inexact, &ms);
  if (f != FAST_HIT) return f;
  if (pos > len) return FAST_UNSURE; /* more bytes needed, or over max_message_bytes */
  uint32_t seen = c->mask & ~nils;
  /* The keys name every required field (tks_decode() accepted the tick
   * learned): only a nil leaves one out. */
  if (nils) {
    if (s->required_mask & ~seen) return FAST_UNSURE;
    /* An absent field holds its default (the template has them all). */
    for (uint32_t m = c->full ? nils : 0; m; m &= m - 1) {
      const struct tks_field *fl = &s->fields[__builtin_ctz(m)];
      memcpy(rec + fl->offset, &fl->dflt, fl->size);
    }
  }
  if ((ms.fields || d->check_only) && !new_strings(c, d, rec, seen, &ms)) return FAST_UNSURE;
  bool has_ts = seen & c->ts_mask;
  if (!has_ts && s->ts_field >= 0) memcpy(rec + s->fields[s->ts_field].offset, &now_ns, 8);
  if (d->mode != TKS_MODE_SLOTTED && res->dyn)
    res->dyn->n = res->dyn->undeclared = 0, res->dyn->string_bytes = 0;
  res->consumed = pos;
  res->field = -1;
  res->detail[0] = '\0';
  res->has_ts = has_ts;
  if (track) res->verbatim = c->verbatim && !nils && !inexact; /* else left as it was */
  return FAST_HIT;
}

/* The most bytes read_tick() may read: c->room for the largest shape. */
#define ROOM_MAX (5 + 8 + TKS_SCHEMA_MAX_FIELDS * (TKS_SHAPE_KEY_MAX + 2 + 255))

/* The fast path on fewer than c->room bytes (the end of a read, a single
 * tick): on a copy of them with zeros after, which read_tick() may read
 * (only a tick ending within len is taken). */
__attribute__((noinline)) static enum fast
fast_decode_short(struct tks_shape_cache *c, const struct tks_decoder *d, const uint8_t *buf,
                  size_t len, int64_t now_ns, char *rec, struct tks_decode_result *res) {
  uint8_t copy[ROOM_MAX];
  memcpy(copy, buf, len);
  memset(copy + len, 0, c->room - len);
  /* The strings noted point into the copy, but only until it returns. */
  return fast_decode(c, d, copy, len, now_ns, rec, res, d->verbatim);
}

/* The fallback: tks_decode(), and learning from what it accepts. */
__attribute__((noinline)) static enum tks_decode_status
decode_slow(struct tks_shape_cache *c, const struct tks_decoder *d, const uint8_t *buf, size_t len,
            int64_t now_ns, void *record, struct tks_decode_result *res, enum fast f) {
  bool usable = d->mode != TKS_MODE_DYNAMIC;
  c->fallbacks++;
  enum tks_decode_status st = tks_decode(d, buf, len, now_ns, record, res);
  if (st == TKS_DECODE_OK && usable &&
      (c->schema != d->schema || (f == FAST_OTHER_SHAPE && ++c->misses >= RELEARN_AFTER)))
    learn(c, d, buf, res->consumed);
  return st;
}

enum tks_decode_status tks_shape_decode(struct tks_shape_cache *c, const struct tks_decoder *d,
                                        const uint8_t *buf, size_t len, int64_t now_ns,
                                        void *record, struct tks_decode_result *res) {
  enum fast f = FAST_UNSURE;
  /* Dynamic mode makes every tick a dynamic one: not the fast path's. */
  if (d->mode != TKS_MODE_DYNAMIC && c->schema == d->schema && len > 0) {
    size_t n = len > d->max_message_bytes ? d->max_message_bytes : len; /* as tks_decode() */
    /* d->verbatim: the same path, telling whether a float came as
     * another type (a few instructions a tick, only for subscribers). */
    f = n >= c->room ? d->verbatim ? fast_decode(c, d, buf, n, now_ns, record, res, true)
                                   : fast_decode(c, d, buf, n, now_ns, record, res, false)
                     : fast_decode_short(c, d, buf, n, now_ns, record, res);
    if (f == FAST_HIT) {
      c->hits++;
      c->misses = 0;
      return TKS_DECODE_OK;
    }
  }
  return decode_slow(c, d, buf, len, now_ns, record, res, f);
}

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

static inline unsigned sym_slot(uint64_t head, size_t len, int kind) {
  uint64_t x = (head ^ len ^ (uint64_t)kind << 63) * 0x9e3779b97f4a7c15ull;
  return (unsigned)(x >> 55); /* 9 bits: TKS_SHAPE_SYMS */
}

static void syms_clear(struct tks_shape_cache *c) {
  memset(c->syms, 0, sizeof c->syms);
  c->nsyms = 0;
}

/* Empties the recent strings if a table is another or removed ids since. */
static void syms_check(struct tks_shape_cache *c, const struct tks_decoder *d) {
  const struct tks_symtab *t[2] = {d->symbols, d->strings};
  for (int k = 0; k < 2; k++) {
    if (c->tables[k] == t[k] && c->generations[k] == tks_symtab_generation(t[k])) continue;
    syms_clear(c);
    for (int j = 0; j < 2; j++)
      c->tables[j] = t[j], c->generations[j] = tks_symtab_generation(t[j]);
    return;
  }
}

/* The slot of s (len > 0) of that kind, or the free slot where it goes.  Up
 * to 8 bytes, length and tks_head8() are the whole string. */
static inline struct tks_shape_sym *sym_find(struct tks_shape_cache *c, int kind, const char *s,
                                             size_t len, uint64_t head) {
  for (unsigned i = sym_slot(head, len, kind);; i = (i + 1) % TKS_SHAPE_SYMS) {
    struct tks_shape_sym *e = &c->syms[i];
    if (e->len == 0) return e;
    if (e->len == len && e->head == head && e->kind == kind &&
        (len <= 8 ||
         memcmp(tks_symtab_name(c->tables[kind], e->id, NULL) + 8, s + 8, len - 8) == 0))
      return e;
  }
}

/* Notes s's id (after a miss); a cache more than half full starts again
 * empty. */
static void sym_add(struct tks_shape_cache *c, int kind, const char *s, size_t len, uint64_t head,
                    uint32_t id) {
  if (c->nsyms >= TKS_SHAPE_SYMS / 2) syms_clear(c);
  struct tks_shape_sym *e = sym_find(c, kind, s, len, head);
  if (e->len) return; /* the same string in two fields of the tick */
  *e = (struct tks_shape_sym){head, id, (uint16_t)len, (uint16_t)kind};
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
  c->string_fields = 0;
  for (unsigned fi = 0; fi < s->nfields; fi++)
    if (s->fields[fi].type == TKS_TYPE_STRING) c->string_fields |= 1u << fi;
  c->n = (uint8_t)count;
  c->misses = 0;
  c->schema = s;
}

/* ---- the fast path ------------------------------------------------------ */

/* p[0..k->len) == the key's bytes, with one 8-byte compare where the key
 * fits in it and 8 bytes may be read. */
static inline bool key_matches(const struct tks_shape_key *k, const uint8_t *p, size_t avail) {
  if (avail < 8) return memcmp(p, k->bytes, k->len) == 0;
  uint64_t x;
  memcpy(&x, p, 8);
  if ((x & k->mask) != k->head) return false;
  return k->len <= 8 || memcmp(p + 8, k->bytes + 8, k->len - 8) == 0;
}

/* An integer as tks_decode() reads one into an int64 (a uint64 over
 * INT64_MAX is not): its length, or 0. */
static inline size_t read_int(const uint8_t *q, size_t avail, int64_t *x) {
  uint8_t b = q[0];
  if (b <= 0x7f || b >= 0xe0) return *x = (int8_t)b, 1;    /* (int8_t) of 0..0x7f is itself */
  static const uint8_t size[8] = {2, 3, 5, 9, 2, 3, 5, 9}; /* 0xcc..0xcf, 0xd0..0xd3 */
  if (b < 0xcc || b > 0xd3) return 0;
  size_t n = size[b - 0xcc];
  if (avail < n) return 0;
  switch (b) {
  case 0xcc: *x = q[1]; break;
  case 0xcd: *x = be16(q + 1); break;
  case 0xce: *x = be32(q + 1); break;
  case 0xcf: {
    uint64_t u = be64(q + 1);
    if (u > INT64_MAX) return 0;
    *x = (int64_t)u;
    break;
  }
  case 0xd0: *x = (int8_t)q[1]; break;
  case 0xd1: *x = (int16_t)be16(q + 1); break;
  case 0xd2: *x = (int32_t)be32(q + 1); break;
  default: *x = (int64_t)be64(q + 1); break;
  }
  return n;
}

/* Reads the value at q into its field's place at, checked as put_field()
 * checks it.  Returns its length, or 0 where tks_decode() must decide.  A
 * string is noted in *sp and *sn (interned later). */
static inline size_t read_value(enum tks_type type, const uint8_t *q, size_t avail, char *at,
                                const char **sp, size_t *sn) {
  uint8_t b = q[0];
  int64_t i;
  size_t n;
  switch (type) {
  case TKS_TYPE_TIMESTAMP:
  case TKS_TYPE_I64:
    n = read_int(q, avail, &i);
    if (n) memcpy(at, &i, 8);
    return n;
  case TKS_TYPE_U32: {
    n = read_int(q, avail, &i);
    if (!n || i < 0 || i > UINT32_MAX) return 0;
    uint32_t u = (uint32_t)i;
    memcpy(at, &u, 4);
    return n;
  }
  case TKS_TYPE_F64: {
    double x;
    if (b == 0xcb && avail >= 9) {
      uint64_t u = be64(q + 1);
      memcpy(&x, &u, 8);
      n = 9;
    } else if (b == 0xca && avail >= 5) {
      uint32_t u = be32(q + 1);
      float fl;
      memcpy(&fl, &u, 4);
      x = fl, n = 5;
    } else {
      n = read_int(q, avail, &i);
      x = (double)i;
    }
    if (!n || !isfinite(x)) return 0;
    memcpy(at, &x, 8);
    return n;
  }
  case TKS_TYPE_SYMBOL:
  case TKS_TYPE_STRING: {
    size_t h = (b & 0xe0) == 0xa0 ? 1 : b == 0xd9 && avail >= 2 ? 2 : 0;
    if (!h) return 0;
    *sn = h == 1 ? b & 0x1f : q[1];
    if (avail < h + *sn) return 0;
    *sp = (const char *)q + h;
    return h + *sn;
  }
  case TKS_TYPE_BOOL:
    if (b != 0xc2 && b != 0xc3) return 0;
    *(bool *)at = b == 0xc3;
    return 1;
  case TKS_TYPE__COUNT: break;
  }
  return 0;
}

enum fast { FAST_HIT, FAST_OTHER_SHAPE, FAST_UNSURE };

/*
 * Reads the keys and values of a tick of the shape into rec.  With roomy,
 * the caller has seen that c->room bytes are there, which no tick of the
 * shape can run past (every key and value within its key's room, one
 * 8-byte load past a key at most): no read checks its bounds.  Sets *pos,
 * the strings (sp, sn) and the fields with a nil (*nils).
 */
static inline enum fast read_tick(const struct tks_shape_cache *c, const uint8_t *buf, size_t len,
                                  const bool roomy, char *rec, size_t *pos_out, const char **sp,
                                  size_t *sn, uint32_t *nils) {
  size_t pos = c->hdr_len;
  for (unsigned i = 0; i < c->n; i++) {
    const struct tks_shape_key *k = &c->keys[i];
    /* Unless roomy: the key and the first byte of its value are there. */
    if (!roomy && len - pos <= k->len) return FAST_UNSURE;
    if (!key_matches(k, buf + pos, roomy ? 8 : len - pos)) return FAST_OTHER_SHAPE;
    pos += k->len;
    size_t n = read_value((enum tks_type)k->type, buf + pos, roomy ? SIZE_MAX : len - pos,
                          rec + k->offset, &sp[k->field], &sn[k->field]);
    if (n == 0) {
      /* No type takes a nil (0xc0): it is an absent field, looked for
       * only here, off the common path. */
      if (buf[pos] != 0xc0) return FAST_UNSURE;
      *nils |= 1u << k->field;
      n = 1;
    }
    pos += n;
  }
  *pos_out = pos;
  return FAST_HIT;
}

/* The fast path: FAST_HIT with the tick decoded as tks_decode() would
 * (status OK), else nothing outside rec changed. */
static enum fast fast_decode(struct tks_shape_cache *c, const struct tks_decoder *d,
                             const uint8_t *buf, size_t len, int64_t now_ns, char *rec,
                             struct tks_decode_result *res) {
  const struct tks_schema *s = d->schema;
  if (len > d->max_message_bytes) len = d->max_message_bytes; /* as tks_decode() */
  /* len > 0; a header of one byte (fixmap, fixarray) needs no memcmp call. */
  if (buf[0] != c->hdr[0] ||
      (c->hdr_len > 1 && (len < c->hdr_len || memcmp(buf, c->hdr, c->hdr_len) != 0)))
    return FAST_OTHER_SHAPE;
  if (!c->full) memcpy(rec, c->tmpl, s->record_size);
  const char *sp[TKS_SCHEMA_MAX_FIELDS];
  size_t sn[TKS_SCHEMA_MAX_FIELDS], pos = 0;
  uint32_t nils = 0;
  enum fast f = len >= c->room ? read_tick(c, buf, len, true, rec, &pos, sp, sn, &nils)
                               : read_tick(c, buf, len, false, rec, &pos, sp, sn, &nils);
  if (f != FAST_HIT) return f;
  uint32_t seen = c->mask & ~nils;
  if (s->required_mask & ~seen) return FAST_UNSURE;
  /* An absent field holds its default (the template has them all). */
  for (uint32_t m = c->full ? nils : 0; m; m &= m - 1) {
    const struct tks_field *fl = &s->fields[__builtin_ctz(m)];
    memcpy(rec + fl->offset, &fl->dflt, fl->size);
  }

  /* Strings: known (checked when noted) or checked now, all before any is
   * interned, as tks_decode() interns only a tick it accepts. */
  uint32_t strs = seen & s->intern_mask, todo = 0, ids[TKS_SCHEMA_MAX_FIELDS];
  uint64_t heads[TKS_SCHEMA_MAX_FIELDS];
  if (strs) syms_check(c, d);
  for (uint32_t m = strs; m; m &= m - 1) {
    int fi = __builtin_ctz(m), kind = (c->string_fields >> fi) & 1;
    ids[fi] = 0;
    if (sn[fi] == 0) {
      if (fi == s->symbol_field) return FAST_UNSURE; /* an empty series key: bad_value */
      continue;
    }
    heads[fi] = tks_head8(sp[fi], sn[fi]);
    const struct tks_shape_sym *e = sym_find(c, kind, sp[fi], sn[fi], heads[fi]);
    if (e->len) {
      ids[fi] = e->id;
      continue;
    }
    /* A symbol is a word of the control protocol: no space, no control. */
    if (tks_utf8_scan(sp[fi], sn[fi]) & (kind ? (unsigned)TKS_UTF8_INVALID : ~0u))
      return FAST_UNSURE;
    todo |= 1u << fi;
  }
  if (!d->check_only) {
    for (uint32_t m = todo; m; m &= m - 1) {
      int fi = __builtin_ctz(m), kind = (c->string_fields >> fi) & 1;
      /* A full table: tks_decode() interns the same strings again (they
       * are there: no change) and refuses the tick at the same one. */
      if (tks_symtab_intern(kind ? d->strings : d->symbols, sp[fi], sn[fi], &ids[fi]) != 0)
        return FAST_UNSURE;
      sym_add(c, kind, sp[fi], sn[fi], heads[fi], ids[fi]);
    }
  }
  /* With check_only tks_decode() leaves a present string's place 0. */
  for (uint32_t m = strs; m; m &= m - 1) {
    int fi = __builtin_ctz(m);
    uint32_t id = d->check_only ? 0 : ids[fi];
    memcpy(rec + s->fields[fi].offset, &id, 4);
  }

  bool has_ts = s->ts_field >= 0 && (seen & (1u << s->ts_field));
  if (s->ts_field >= 0 && !has_ts) memcpy(rec + s->fields[s->ts_field].offset, &now_ns, 8);
  if (d->mode != TKS_MODE_SLOTTED && res->dyn)
    res->dyn->n = res->dyn->undeclared = 0, res->dyn->string_bytes = 0;
  res->consumed = pos;
  res->field = -1;
  res->detail[0] = '\0';
  res->has_ts = has_ts;
  return FAST_HIT;
}

enum tks_decode_status tks_shape_decode(struct tks_shape_cache *c, const struct tks_decoder *d,
                                        const uint8_t *buf, size_t len, int64_t now_ns,
                                        void *record, struct tks_decode_result *res) {
  /* Dynamic mode makes every tick a dynamic one: not the fast path's. */
  bool usable = d->mode != TKS_MODE_DYNAMIC;
  enum fast f = FAST_UNSURE;
  if (usable && c->schema == d->schema && len > 0) {
    f = fast_decode(c, d, buf, len, now_ns, record, res);
    if (f == FAST_HIT) {
      c->hits++;
      c->misses = 0;
      return TKS_DECODE_OK;
    }
  }
  c->fallbacks++;
  enum tks_decode_status st = tks_decode(d, buf, len, now_ns, record, res);
  if (st == TKS_DECODE_OK && usable &&
      (c->schema != d->schema || (f == FAST_OTHER_SHAPE && ++c->misses >= RELEARN_AFTER)))
    learn(c, d, buf, res->consumed);
  return st;
}

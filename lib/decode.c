/*
 * The decoder: one bounded pass over a message, every length prefix checked
 * against max_message_bytes before it is trusted, fills a record (and
 * outside slotted mode a tks_dyn_tick) field by field.  Nested values and
 * the rest of an unacceptable message are measured by tks_msgpack_skip()
 * (a fixed stack, a nesting limit).  Nothing is allocated; strings are
 * interned only once the whole tick is known good.
 */
#include "decode.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "symtab.h"
#include "utf8.h"
#include "util.h"

static const char *const reason_names[TKS_REASON__COUNT] = {
    [TKS_REASON_UNKNOWN_FIELD] = "unknown_field",
    [TKS_REASON_MISSING_FIELD] = "missing_field",
    [TKS_REASON_BAD_TYPE] = "bad_type",
    [TKS_REASON_BAD_VALUE] = "bad_value",
    [TKS_REASON_DUPLICATE_FIELD] = "duplicate_field",
    [TKS_REASON_TOO_MANY_FIELDS] = "too_many_fields",
    [TKS_REASON_TOO_MANY_SYMBOLS] = "too_many_symbols",
    [TKS_REASON_STORE_FULL] = "store_full",
    [TKS_REASON_JOURNAL_ERROR] = "journal_error",
    [TKS_REASON_BAD_KEY] = "bad_key",
    [TKS_REASON_SEALING] = "sealing",
    [TKS_REASON_SINK_FULL] = "sink_full",
    [TKS_REASON_TOO_LARGE] = "too_large",
    [TKS_REASON_TOO_DEEP] = "too_deep",
    [TKS_REASON_MALFORMED] = "malformed",
    [TKS_REASON_NOT_A_TICK] = "not_a_tick",
};

const char *tks_reason_name(enum tks_reason r) {
  return (unsigned)r < TKS_REASON__COUNT ? reason_names[r] : "?";
}

bool tks_reason_is_fatal(enum tks_reason r) { return r >= TKS_REASON_TOO_LARGE; }

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

#define SKIP_ERR(reason) (-(1 + (long)(reason)))

/*
 * Header length, body length and child count of the object starting with
 * byte b, given the bytes after it.  Returns 0, or a SKIP_ERR, or 1 when
 * more bytes are needed to read the header.
 */
static int object_shape(const uint8_t *p, size_t avail, size_t *hdr, uint64_t *body,
                        uint64_t *children) {
  uint8_t b = p[0];
  *hdr = 1;
  *body = 0;
  *children = 0;
  if (b <= 0x7f || b >= 0xe0) return 0;
  if (b <= 0x8f) {
    *children = 2u * (b & 0x0f);
    return 0;
  }
  if (b <= 0x9f) {
    *children = b & 0x0f;
    return 0;
  }
  if (b <= 0xbf) {
    *body = b & 0x1f;
    return 0;
  }
  size_t lenbytes = 0; /* bytes of the length field after b */
  int kind = 0;        /* 0 fixed, 1 bytes, 2 ext (type byte follows length), 3 array, 4 map */
  switch (b) {
  case 0xc0: case 0xc2: case 0xc3: return 0;
  case 0xc1: return (int)SKIP_ERR(TKS_REASON_MALFORMED);
  case 0xc4: lenbytes = 1; kind = 1; break;
  case 0xc5: lenbytes = 2; kind = 1; break;
  case 0xc6: lenbytes = 4; kind = 1; break;
  case 0xc7: lenbytes = 1; kind = 2; break;
  case 0xc8: lenbytes = 2; kind = 2; break;
  case 0xc9: lenbytes = 4; kind = 2; break;
  case 0xca: *hdr = 5; return 0;
  case 0xcb: *hdr = 9; return 0;
  case 0xcc: *hdr = 2; return 0;
  case 0xcd: *hdr = 3; return 0;
  case 0xce: *hdr = 5; return 0;
  case 0xcf: *hdr = 9; return 0;
  case 0xd0: *hdr = 2; return 0;
  case 0xd1: *hdr = 3; return 0;
  case 0xd2: *hdr = 5; return 0;
  case 0xd3: *hdr = 9; return 0;
  case 0xd4: *hdr = 3; return 0;
  case 0xd5: *hdr = 4; return 0;
  case 0xd6: *hdr = 6; return 0;
  case 0xd7: *hdr = 10; return 0;
  case 0xd8: *hdr = 18; return 0;
  case 0xd9: lenbytes = 1; kind = 1; break;
  case 0xda: lenbytes = 2; kind = 1; break;
  case 0xdb: lenbytes = 4; kind = 1; break;
  case 0xdc: lenbytes = 2; kind = 3; break;
  case 0xdd: lenbytes = 4; kind = 3; break;
  case 0xde: lenbytes = 2; kind = 4; break;
  case 0xdf: lenbytes = 4; kind = 4; break;
  }
  if (avail < 1 + lenbytes) return 1;
  uint64_t n = lenbytes == 1 ? p[1] : lenbytes == 2 ? be16(p + 1) : be32(p + 1);
  *hdr = 1 + lenbytes + (kind == 2);
  if (kind == 1 || kind == 2)
    *body = n;
  else if (kind == 3)
    *children = n;
  else
    *children = 2 * n;
  return 0;
}

/* tks_msgpack_skip with a nesting budget: a value nested inside a tick gets
 * what its container left. */
static long skip_depth(const uint8_t *p, size_t len, size_t max, int max_depth) {
  uint64_t left[TKS_DECODE_MAX_DEPTH + 1]; /* objects still to read at each level */
  int depth = 0;
  size_t pos = 0;
  left[0] = 1;
  for (;;) {
    while (left[depth] == 0) {
      if (depth == 0) return (long)pos;
      depth--;
    }
    /* Out of bytes: with max or more in hand the message is over the limit. */
    if (pos >= len) return len >= max ? SKIP_ERR(TKS_REASON_TOO_LARGE) : 0;
    size_t hdr;
    uint64_t body, children;
    int r = object_shape(p + pos, len - pos, &hdr, &body, &children);
    if (r < 0) return r;
    if (r == 1) return len >= max ? SKIP_ERR(TKS_REASON_TOO_LARGE) : 0;
    /* Each child takes at least one byte: a count or length beyond the
     * limit is refused before anything trusts it. */
    if (body > max || children > max || pos + hdr + body > max)
      return SKIP_ERR(TKS_REASON_TOO_LARGE);
    left[depth]--;
    pos += hdr + (size_t)body;
    if (pos > len) return len >= max ? SKIP_ERR(TKS_REASON_TOO_LARGE) : 0;
    if (children) {
      if (depth + 1 > max_depth) return SKIP_ERR(TKS_REASON_TOO_DEEP);
      left[++depth] = children;
    }
  }
}

long tks_msgpack_skip(const uint8_t *p, size_t len, size_t max) {
  return skip_depth(p, len, max, TKS_DECODE_MAX_DEPTH);
}

/* Values are read into struct tks_value, with two kinds beside the value
 * types that never leave this file: a msgpack timestamp (ns since the
 * epoch in v.i: only a timestamp field takes it, an undeclared field keeps
 * it as an INT), and a value no field takes (array, map, bin, another ext),
 * measured and skipped.  As types of their own, past the last value type,
 * they cost no check on the path of the common values.  The reader never
 * sets flags. */
#define V_TS ((enum tks_vtype)(TKS_V__LAST + 1))
#define V_OTHER ((enum tks_vtype)(TKS_V__LAST + 2))

/* A msgpack timestamp as ns since the epoch; out of int64 range, or ns not
 * under a second, is reported as TKS_V_UINT so the tick is rejected bad_value.
 * Before the epoch the seconds are negative and ns counts up from them:
 * borrowing a second first keeps sec * 1e9 in range down to INT64_MIN. */
static void ts_from(struct tks_value *v, int64_t sec, uint32_t ns) {
  int64_t t, add = ns;
  if (sec < 0 && ns > 0) sec += 1, add -= 1000000000;
  if (ns > 999999999 || __builtin_mul_overflow(sec, (int64_t)1000000000, &t) ||
      __builtin_add_overflow(t, add, &t)) {
    v->type = TKS_V_UINT, v->v.u = 0;
    return;
  }
  v->type = V_TS, v->v.i = t;
}

/*
 * Reads one value at p[*pos] of a message of which len bytes have arrived.
 * Returns 1 (read, *pos advanced), 0 (more bytes needed) or a SKIP_ERR.
 * Containers, bin and ext values are measured with skip_depth() and
 * reported as V_OTHER.
 */
static int read_val_slow(const uint8_t *p, size_t *pos, size_t len, size_t max, struct tks_value *v) {
  const uint8_t *q = p + *pos;
  size_t avail = len - *pos;
  if (avail == 0) return 0;
  uint8_t b = q[0];
  if (b <= 0x7f) {
    v->type = TKS_V_INT, v->v.i = b, *pos += 1;
    return 1;
  }
  if (b >= 0xe0) {
    v->type = TKS_V_INT, v->v.i = (int8_t)b, *pos += 1;
    return 1;
  }
  size_t hdr;
  uint64_t body, children;
  int r = object_shape(q, avail, &hdr, &body, &children);
  if (r < 0) return r;
  if (r == 1) return 0;
  if (body > max) return (int)SKIP_ERR(TKS_REASON_TOO_LARGE);
  int other = children > 0 || (b >= 0x80 && b <= 0x9f) || (b >= 0xc4 && b <= 0xc9) ||
              (b >= 0xd4 && b <= 0xd8) || (b >= 0xdc && b <= 0xdf);
  int is_ts = (b == 0xd6 || b == 0xd7 || (b == 0xc7 && body == 12)) && avail >= 3 &&
              (int8_t)q[b == 0xc7 ? 2 : 1] == -1;
  if (other && !is_ts) {
    long n = skip_depth(q, avail, max, TKS_DECODE_MAX_DEPTH - 1);
    if (n <= 0) return (int)n;
    v->type = V_OTHER;
    *pos += (size_t)n;
    return 1;
  }
  if (hdr + body > avail) return 0;
  if (b >= 0xa0 && b <= 0xbf) {
    v->type = TKS_V_STR, v->v.s.p = (const char *)q + 1, v->v.s.len = b & 0x1f;
    *pos += 1 + (b & 0x1f);
    return 1;
  }
  switch (b) {
  case 0xc0: v->type = TKS_V_NIL; *pos += 1; return 1;
  case 0xc2: v->type = TKS_V_BOOL; v->v.b = false; *pos += 1; return 1;
  case 0xc3: v->type = TKS_V_BOOL; v->v.b = true; *pos += 1; return 1;
  case 0xca: {
    uint32_t u = be32(q + 1);
    float f;
    memcpy(&f, &u, 4);
    v->type = TKS_V_F64, v->v.f = f, *pos += 5;
    return 1;
  }
  case 0xcb: {
    uint64_t u = be64(q + 1);
    memcpy(&v->v.f, &u, 8);
    v->type = TKS_V_F64, *pos += 9;
    return 1;
  }
  case 0xcc: v->type = TKS_V_INT, v->v.i = q[1], *pos += 2; return 1;
  case 0xcd: v->type = TKS_V_INT, v->v.i = be16(q + 1), *pos += 3; return 1;
  case 0xce: v->type = TKS_V_INT, v->v.i = be32(q + 1), *pos += 5; return 1;
  case 0xcf: {
    uint64_t u = be64(q + 1);
    if (u > INT64_MAX)
      v->type = TKS_V_UINT, v->v.u = u;
    else
      v->type = TKS_V_INT, v->v.i = (int64_t)u;
    *pos += 9;
    return 1;
  }
  case 0xd0: v->type = TKS_V_INT, v->v.i = (int8_t)q[1], *pos += 2; return 1;
  case 0xd1: v->type = TKS_V_INT, v->v.i = (int16_t)be16(q + 1), *pos += 3; return 1;
  case 0xd2: v->type = TKS_V_INT, v->v.i = (int32_t)be32(q + 1), *pos += 5; return 1;
  case 0xd3: v->type = TKS_V_INT, v->v.i = (int64_t)be64(q + 1), *pos += 9; return 1;
  case 0xd9: v->type = TKS_V_STR, v->v.s.p = (const char *)q + 2, v->v.s.len = q[1]; *pos += 2 + q[1]; return 1;
  case 0xda: v->type = TKS_V_STR, v->v.s.p = (const char *)q + 3, v->v.s.len = be16(q + 1);
    *pos += 3 + v->v.s.len;
    return 1;
  case 0xdb: v->type = TKS_V_STR, v->v.s.p = (const char *)q + 5, v->v.s.len = be32(q + 1);
    *pos += 5 + (size_t)v->v.s.len;
    return 1;
  /* The msgpack timestamp extension (type -1) in its three sizes. */
  case 0xd6:
    if ((int8_t)q[1] == -1) {
      v->type = V_TS, v->v.i = (int64_t)be32(q + 2) * 1000000000, *pos += 6;
      return 1;
    }
    break;
  case 0xd7:
    if ((int8_t)q[1] == -1) {
      uint64_t d = be64(q + 2);
      ts_from(v, (int64_t)(d & 0x3ffffffffull), (uint32_t)(d >> 34));
      *pos += 10;
      return 1;
    }
    break;
  case 0xc7:
    if (q[1] == 12 && (int8_t)q[2] == -1) {
      ts_from(v, (int64_t)be64(q + 7), be32(q + 3));
      *pos += 15;
      return 1;
    }
    break;
  }
  return (int)SKIP_ERR(TKS_REASON_MALFORMED); /* not reached: other kinds are measured above */
}

/* The common tick values (small ints, fixstr, float64, int64, str8) on a
 * short path; everything else goes to read_val_slow(). */
static inline int read_val(const uint8_t *p, size_t *pos, size_t len, size_t max,
                           struct tks_value *v) {
  const uint8_t *q = p + *pos;
  size_t avail = len - *pos;
  if (avail == 0) return 0;
  uint8_t b = q[0];
  if (b <= 0x7f) {
    v->type = TKS_V_INT, v->v.i = b, *pos += 1;
    return 1;
  }
  if ((b & 0xe0) == 0xa0) {
    uint32_t n = b & 0x1f;
    if (1 + n > avail) return 0;
    v->type = TKS_V_STR, v->v.s.p = (const char *)q + 1, v->v.s.len = n, *pos += 1 + n;
    return 1;
  }
  if (b == 0xcb && avail >= 9) {
    uint64_t u = be64(q + 1);
    memcpy(&v->v.f, &u, 8);
    v->type = TKS_V_F64, *pos += 9;
    return 1;
  }
  if (b == 0xd3 && avail >= 9) {
    v->type = TKS_V_INT, v->v.i = (int64_t)be64(q + 1), *pos += 9;
    return 1;
  }
  if (b == 0xcd && avail >= 3) {
    v->type = TKS_V_INT, v->v.i = be16(q + 1), *pos += 3;
    return 1;
  }
  if (b == 0xcc && avail >= 2) {
    v->type = TKS_V_INT, v->v.i = q[1], *pos += 2;
    return 1;
  }
  return read_val_slow(p, pos, len, max, v);
}

static enum tks_decode_status reject(struct tks_decode_result *res, enum tks_reason r, int field,
                                     const char *detail, size_t dlen) {
  res->reason = r;
  res->field = field;
  /* Client bytes go to the log and to the usage table: valid UTF-8 without
   * control bytes (no forged log lines), cut at a character. */
  tks_utf8_escape(res->detail, sizeof res->detail, detail, dlen);
  return TKS_DECODE_REJECT;
}

static enum tks_decode_status reject_field(const struct tks_schema *s,
                                           struct tks_decode_result *res, enum tks_reason r,
                                           int field) {
  const char *n = s->fields[field].name;
  return reject(res, r, field, n, strlen(n));
}

/* Checks v against field f and writes it into the record.  Strings are
 * only noted here (in strs) and interned once the tick is known good. */
static enum tks_decode_status put_field(const struct tks_decoder *d, int fi, const struct tks_value *v,
                                        char *rec, struct tks_value *strs, struct tks_decode_result *res) {
  const struct tks_schema *s = d->schema;
  const struct tks_field *f = &s->fields[fi];
  char *at = rec + f->offset;
  switch (f->type) {
  case TKS_TYPE_TIMESTAMP:
    if (v->type == TKS_V_INT || v->type == V_TS) {
      memcpy(at, &v->v.i, 8);
      res->has_ts = true;
      return TKS_DECODE_OK;
    }
    if (v->type == TKS_V_UINT) return reject_field(s, res, TKS_REASON_BAD_VALUE, fi);
    break;
  case TKS_TYPE_I64:
    if (v->type == TKS_V_INT) {
      memcpy(at, &v->v.i, 8);
      return TKS_DECODE_OK;
    }
    if (v->type == TKS_V_UINT) return reject_field(s, res, TKS_REASON_BAD_VALUE, fi);
    break;
  case TKS_TYPE_U32:
    if (v->type == TKS_V_INT) {
      if (v->v.i < 0 || v->v.i > UINT32_MAX) return reject_field(s, res, TKS_REASON_BAD_VALUE, fi);
      uint32_t u = (uint32_t)v->v.i;
      memcpy(at, &u, 4);
      return TKS_DECODE_OK;
    }
    if (v->type == TKS_V_UINT) return reject_field(s, res, TKS_REASON_BAD_VALUE, fi);
    break;
  case TKS_TYPE_F64: {
    double x;
    if (v->type == TKS_V_F64)
      x = v->v.f;
    else if (v->type == TKS_V_INT)
      x = (double)v->v.i;
    else if (v->type == TKS_V_UINT)
      x = (double)v->v.u;
    else
      break;
    if (!isfinite(x)) return reject_field(s, res, TKS_REASON_BAD_VALUE, fi);
    memcpy(at, &x, 8);
    return TKS_DECODE_OK;
  }
  case TKS_TYPE_SYMBOL:
  case TKS_TYPE_STRING:
    if (v->type != TKS_V_STR) break;
    if (v->v.s.len > TKS_SYMBOL_MAX_LEN || (fi == s->symbol_field && v->v.s.len == 0))
      return reject_field(s, res, TKS_REASON_BAD_VALUE, fi);
    /* A symbol is a word of the control protocol (`last AAPL`): no space,
     * no control character; any string is UTF-8, as JSON answers need. */
    if (tks_utf8_scan(v->v.s.p, v->v.s.len) &
        (f->type == TKS_TYPE_SYMBOL ? ~0u : (unsigned)TKS_UTF8_INVALID))
      return reject_field(s, res, TKS_REASON_BAD_VALUE, fi);
    strs[fi] = *v;
    return TKS_DECODE_OK;
  case TKS_TYPE_BOOL:
    if (v->type != TKS_V_BOOL) break;
    *(bool *)at = v->v.b;
    return TKS_DECODE_OK;
  case TKS_TYPE__COUNT: break;
  }
  return reject_field(s, res, TKS_REASON_BAD_TYPE, fi);
}

static inline int field_matches(const struct tks_field *f, const char *name, uint32_t len,
                                uint64_t head) {
  return f->name_len == len && f->name_head == head &&
         (len <= 8 || memcmp(f->name + 8, name + 8, len - 8) == 0);
}

/* Field lookup on the hot path: one probe of the schema's name_index, then
 * length and tks_head8() before any memcmp. */
static int find_field(const struct tks_schema *s, const char *name, uint32_t len) {
  if (len == 0 || len >= TKS_FIELD_NAME_MAX) return -1;
  uint64_t head = tks_head8(name, len);
  uint8_t slot = s->name_index[tks_schema_name_slot(name, len)];
  if (slot == 0) return -1;
  if (slot != 255) return field_matches(&s->fields[slot - 1], name, len, head) ? slot - 1 : -1;
  for (unsigned i = 0; i < s->nfields; i++)
    if (field_matches(&s->fields[i], name, len, head)) return (int)i;
  return -1;
}

/* Notes an undeclared field of a dynamic tick: any scalar value. */
static enum tks_decode_status add_undeclared(struct tks_dyn_tick *dt, const struct tks_value *key,
                                             const struct tks_value *v,
                                             struct tks_decode_result *res) {
  if (key->v.s.len == 0 || key->v.s.len > TKS_SYMBOL_MAX_LEN)
    return reject(res, TKS_REASON_BAD_VALUE, -1, key->v.s.len ? "field name over 255 bytes" : "empty field name",
                  key->v.s.len ? 25 : 16);
  for (unsigned j = 0; j < dt->n; j++)
    if (dt->f[j].field < 0 && dt->f[j].key_len == key->v.s.len &&
        memcmp(dt->f[j].key, key->v.s.p, key->v.s.len) == 0)
      return reject(res, TKS_REASON_DUPLICATE_FIELD, -1, key->v.s.p, key->v.s.len);
  if (v->type == V_OTHER) return reject(res, TKS_REASON_BAD_TYPE, -1, key->v.s.p, key->v.s.len);
  /* As a declared f64 refuses them: no output (JSON) could carry them. */
  if (v->type == TKS_V_F64 && !isfinite(v->v.f))
    return reject(res, TKS_REASON_BAD_VALUE, -1, key->v.s.p, key->v.s.len);
  if (v->type == TKS_V_STR) {
    if (v->v.s.len > UINT16_MAX || !tks_utf8_valid(v->v.s.p, v->v.s.len))
      return reject(res, TKS_REASON_BAD_VALUE, -1, key->v.s.p, key->v.s.len);
    dt->string_bytes += v->v.s.len;
  }
  dt->f[dt->n] = (struct tks_dyn_field){
      .field = -1,
      .key = key->v.s.p,
      .key_len = (uint32_t)key->v.s.len,
      .value = {.type = v->type == V_TS ? TKS_V_INT : v->type, .v = v->v},
  };
  dt->n++;
  dt->undeclared++;
  return TKS_DECODE_OK;
}

/* Completes a dynamic tick once it is known good: the declared fields it
 * has (values as the record holds them, strings interned), a receive-time
 * ts if it had none, then every field name interned. */
static enum tks_decode_status finish_dynamic(const struct tks_decoder *d, const char *rec,
                                             uint32_t seen, struct tks_decode_result *res) {
  const struct tks_schema *s = d->schema;
  struct tks_dyn_tick *dt = res->dyn;
  /* Declared fields go first, in slot order: shift the undeclared up. */
  unsigned ndecl = (unsigned)__builtin_popcount(seen) + !(seen & (1u << s->ts_field));
  memmove(&dt->f[ndecl], &dt->f[0], dt->n * sizeof dt->f[0]);
  unsigned k = 0;
  for (unsigned fi = 0; fi < s->nfields; fi++) {
    if (!(seen & (1u << fi)) && (int)fi != s->ts_field) continue;
    const struct tks_field *f = &s->fields[fi];
    dt->f[k++] = (struct tks_dyn_field){
        .field = (int)fi,
        .key = f->name,
        .key_len = f->name_len,
        .value = tks_field_value(f, rec),
    };
  }
  dt->n += ndecl;
  for (unsigned i = 0; i < dt->n; i++)
    if (tks_symtab_intern(d->names, dt->f[i].key, dt->f[i].key_len, &dt->f[i].name))
      return reject(res, TKS_REASON_TOO_MANY_SYMBOLS, -1, "field-name table full", 21);
  memcpy(&dt->symbol, rec + s->fields[s->symbol_field].offset, 4);
  memcpy(&dt->ts, rec + s->fields[s->ts_field].offset, 8);
  return TKS_DECODE_DYNAMIC;
}

/* The end of a message already found to be unacceptable, so the stream can
 * skip it: REJECT when it is whole, NEED_MORE or ERROR otherwise. */
static enum tks_decode_status skip_rejected(const struct tks_decoder *d, const uint8_t *buf,
                                            size_t len, struct tks_decode_result *res) {
  long n = tks_msgpack_skip(buf, len, d->max_message_bytes);
  if (n == 0) return TKS_DECODE_NEED_MORE;
  if (n < 0) {
    res->reason = (enum tks_reason)(-n - 1);
    res->field = -1;
    res->detail[0] = '\0';
    return TKS_DECODE_ERROR;
  }
  res->consumed = (size_t)n;
  return TKS_DECODE_REJECT;
}

enum tks_decode_status tks_decode(const struct tks_decoder *d, const uint8_t *buf, size_t len,
                                  int64_t now_ns, void *record, struct tks_decode_result *res) {
  const struct tks_schema *s = d->schema;
  const size_t max = d->max_message_bytes;
  res->consumed = 0;
  res->field = -1;
  res->detail[0] = '\0';
  res->has_ts = false;
  res->verbatim = false;
  if (len == 0) return TKS_DECODE_NEED_MORE;
  /* Nothing past the limit is looked at: a message longer than max is
   * too_large whatever its later bytes hold and however the stream was cut
   * into reads (they could otherwise decide another reason, too_deep or
   * malformed, only when they happened to arrive with the rest). */
  if (len > max) len = max;

  uint8_t b = buf[0];
  int is_map;
  uint64_t count;
  size_t pos;
  if (b >= 0x80 && b <= 0x8f) is_map = 1, count = b & 0x0f, pos = 1;
  else if (b >= 0x90 && b <= 0x9f) is_map = 0, count = b & 0x0f, pos = 1;
  else if (b == 0xde || b == 0xdc) {
    if (len < 3) return TKS_DECODE_NEED_MORE;
    is_map = b == 0xde, count = be16(buf + 1), pos = 3;
  } else if (b == 0xdf || b == 0xdd) {
    if (len < 5) return TKS_DECODE_NEED_MORE;
    is_map = b == 0xdf, count = be32(buf + 1), pos = 5;
  } else {
    res->reason = b == 0xc1 ? TKS_REASON_MALFORMED : TKS_REASON_NOT_A_TICK;
    snprintf(res->detail, sizeof res->detail, "top-level byte 0x%02x", b);
    return TKS_DECODE_ERROR;
  }
  /* Each entry takes at least one byte (two for a map): refuse a count the
   * limit cannot hold before reading any of it. */
  if (count > max / (is_map ? 2 : 1)) {
    res->reason = TKS_REASON_TOO_LARGE;
    snprintf(res->detail, sizeof res->detail, "%s of %llu entries", is_map ? "map" : "array",
             (unsigned long long)count);
    return TKS_DECODE_ERROR;
  }

  char *rec = record;
  /* Zero the record in words: a memset call per tick shows in profiles. */
  uint32_t words = s->record_size / 8;
  for (uint32_t w = 0; w < words; w++) memcpy(rec + 8 * w, &(uint64_t){0}, 8);
  for (uint32_t k = words * 8; k < s->record_size; k++) rec[k] = 0;
  /* Outside slotted mode undeclared fields are collected for a dynamic object. */
  struct tks_dyn_tick *dt = d->mode != TKS_MODE_SLOTTED ? res->dyn : NULL;
  if (dt) dt->n = dt->undeclared = 0, dt->string_bytes = 0;
  struct tks_value strs[TKS_SCHEMA_MAX_FIELDS];
  uint32_t seen = 0, present = 0; /* fields with a value; keys met (nil too) */
  struct tks_value v, key;
  enum tks_decode_status st = TKS_DECODE_OK;
  int r;

/* Reads the next value; leaves for more bytes or a protocol error. */
#define READ(val)                                                        \
  do {                                                                   \
    r = read_val(buf, &pos, len, max, (val));                            \
    if (r <= 0) goto incomplete_or_bad;                                  \
  } while (0)

  if (is_map) {
    /* More entries than any tick may carry.  (A few more than the schema
     * declares are met key by key: an undeclared one is unknown_field.) */
    if (count > TKS_DYNOBJ_MAX_FIELDS) {
      snprintf(res->detail, sizeof res->detail, "%llu fields", (unsigned long long)count);
      res->reason = TKS_REASON_TOO_MANY_FIELDS;
      return skip_rejected(d, buf, len, res);
    }
    for (uint64_t i = 0; i < count; i++) {
      READ(&key);
      if (key.type != TKS_V_STR) {
        st = reject(res, TKS_REASON_BAD_TYPE, -1, "non-string key", 14);
        break;
      }
      int fi = find_field(s, key.v.s.p, key.v.s.len);
      if (fi < 0) {
        /* Declared names are the config's; an undeclared one becomes a
         * table entry, a stats name and a log word: checked here. */
        /* "$" is the control messages' key, never a field: a map with it
         * (a hello after the first message) is refused, in every mode. */
        if ((key.v.s.len == 1 && key.v.s.p[0] == '$') ||
            (tks_utf8_scan(key.v.s.p, key.v.s.len) & (TKS_UTF8_INVALID | TKS_UTF8_CONTROL))) {
          st = reject(res, TKS_REASON_BAD_KEY, -1, key.v.s.p, key.v.s.len);
          break;
        }
        if (!dt) {
          st = reject(res, TKS_REASON_UNKNOWN_FIELD, -1, key.v.s.p, key.v.s.len);
          break;
        }
        READ(&v);
        st = add_undeclared(dt, &key, &v, res);
        if (st != TKS_DECODE_OK) break;
        continue;
      }
      if ((seen | present) & (1u << fi)) {
        st = reject_field(s, res, TKS_REASON_DUPLICATE_FIELD, fi);
        break;
      }
      present |= 1u << fi;
      READ(&v);
      if (v.type == TKS_V_NIL) continue; /* an explicit nil is an absent field */
      seen |= 1u << fi;
      st = put_field(d, fi, &v, rec, strs, res);
      if (st != TKS_DECODE_OK) break;
    }
  } else {
    if (count != s->nfields) {
      snprintf(res->detail, sizeof res->detail, "array of %llu, schema has %u fields",
               (unsigned long long)count, s->nfields);
      res->reason = count < s->nfields ? TKS_REASON_MISSING_FIELD : TKS_REASON_TOO_MANY_FIELDS;
      return skip_rejected(d, buf, len, res);
    }
    for (unsigned fi = 0; fi < s->nfields; fi++) {
      READ(&v);
      if (v.type == TKS_V_NIL) continue;
      seen |= 1u << fi;
      st = put_field(d, (int)fi, &v, rec, strs, res);
      if (st != TKS_DECODE_OK) break;
    }
  }
#undef READ
  if (st != TKS_DECODE_OK) return skip_rejected(d, buf, len, res);
  res->consumed = pos; /* pos <= len <= max */

  uint32_t missing = s->required_mask & ~seen;
  if (missing) return reject_field(s, res, TKS_REASON_MISSING_FIELD, __builtin_ctz(missing));
  uint32_t all = s->nfields == 32 ? UINT32_MAX : (1u << s->nfields) - 1;
  for (uint32_t absent = all & ~seen; absent; absent &= absent - 1) {
    int fi = __builtin_ctz(absent);
    const struct tks_field *f = &s->fields[fi];
    if (fi == s->ts_field)
      memcpy(rec + f->offset, &now_ns, 8);
    else
      memcpy(rec + f->offset, &f->dflt, f->size);
  }
  /* A dynamic object or overflow map no slab page holds: refused here,
   * before anything is interned (the store would refuse it after). */
  bool dynamic = dt && (d->mode == TKS_MODE_DYNAMIC || dt->undeclared > 0);
  if (dynamic && d->max_object_bytes) {
    unsigned n = d->mode == TKS_MODE_FALLBACK
                     ? dt->undeclared
                     : dt->n + (unsigned)__builtin_popcount(seen) + !(seen & (1u << s->ts_field));
    if (tks_dynobj_size(n, dt->string_bytes) > d->max_object_bytes) {
      static const char why[] = "(its fields need more than a slab page, store.page_size)";
      return reject(res, TKS_REASON_BAD_VALUE, -1, why, sizeof why - 1);
    }
  }
  if (d->check_only) return dynamic ? TKS_DECODE_DYNAMIC : TKS_DECODE_OK;
  /* The tick is good: intern its strings. */
  for (uint32_t todo = seen & s->intern_mask; todo; todo &= todo - 1) {
    int fi = __builtin_ctz(todo);
    const struct tks_field *f = &s->fields[fi];
    struct tks_symtab *t = f->type == TKS_TYPE_SYMBOL ? d->symbols : d->strings;
    uint32_t id;
    if (tks_symtab_intern(t, strs[fi].v.s.p, strs[fi].v.s.len, &id))
      return reject(res, TKS_REASON_TOO_MANY_SYMBOLS, fi, strs[fi].v.s.p, strs[fi].v.s.len);
    memcpy(rec + f->offset, &id, 4);
  }
  if (dynamic) return finish_dynamic(d, rec, seen, res);
  return TKS_DECODE_OK;

incomplete_or_bad:
  if (r < 0) {
    res->reason = (enum tks_reason)(-r - 1);
    return TKS_DECODE_ERROR;
  }
  if (len >= max) {
    res->reason = TKS_REASON_TOO_LARGE;
    snprintf(res->detail, sizeof res->detail, "message over %zu bytes", max);
    return TKS_DECODE_ERROR;
  }
  return TKS_DECODE_NEED_MORE;
}

int tks_decode_symbol(const struct tks_schema *s, const uint8_t *buf, size_t len, const char **sym,
                      uint32_t *sym_len) {
  if (len == 0 || s->symbol_field < 0) return -EINVAL;
  uint8_t b = buf[0];
  int is_map;
  uint64_t count;
  size_t pos;
  if (b >= 0x80 && b <= 0x8f)
    is_map = 1, count = b & 0x0f, pos = 1;
  else if (b >= 0x90 && b <= 0x9f)
    is_map = 0, count = b & 0x0f, pos = 1;
  else if ((b == 0xde || b == 0xdc) && len >= 3)
    is_map = b == 0xde, count = be16(buf + 1), pos = 3;
  else if ((b == 0xdf || b == 0xdd) && len >= 5)
    is_map = b == 0xdf, count = be32(buf + 1), pos = 5;
  else
    return -EINVAL;
  struct tks_value v;
  for (uint64_t i = 0; i < count; i++) {
    bool is_sym;
    if (is_map) {
      if (read_val(buf, &pos, len, len, &v) <= 0) return -EINVAL;
      is_sym = v.type == TKS_V_STR && find_field(s, v.v.s.p, v.v.s.len) == s->symbol_field;
    } else {
      is_sym = i == (uint64_t)s->symbol_field;
    }
    if (is_sym) {
      if (read_val(buf, &pos, len, len, &v) <= 0 || v.type != TKS_V_STR) return -EINVAL;
      *sym = v.v.s.p;
      *sym_len = v.v.s.len;
      return 0;
    }
    long n = tks_msgpack_skip(buf + pos, len - pos, len - pos);
    if (n <= 0) return -EINVAL;
    pos += (size_t)n;
  }
  return -EINVAL;
}

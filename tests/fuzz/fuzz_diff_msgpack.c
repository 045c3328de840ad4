/*
 * libFuzzer target, differential: our msgpack reading (lib/decode.c)
 * against msgpack-c's unpacker (msgpack_unpack_next) on the same bytes.
 *   - tks_msgpack_skip(): where it measures one complete object, msgpack-c
 *     must find one of the same length; where it wants more bytes,
 *     msgpack-c must too; where it finds a never-used byte (malformed),
 *     msgpack-c must fail to parse.  (Where it refuses a length or a depth
 *     over our limits, msgpack-c is not asked: it would allocate first.)
 *   - tks_decode() in slotted mode, with MarketEvent and with the wide
 *     schema: a tick it accepts must be, to msgpack-c, a map or array of
 *     the same length whose values equal the record's fields (integers,
 *     doubles bit for bit, booleans, strings equal to the interned strings,
 *     timestamps as msgpack_object_to_timestamp() reads them; an absent or
 *     nil field holds its default).  A message msgpack-c reads as one map
 *     or array within our limits is never a protocol error to the decoder,
 *     and a whole one (accepted or rejected) is as long as msgpack-c says.
 */
#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <string.h>

#include "decode.h"
#include "fuzz.h"
#include "symtab.h"

#define MAX_BYTES 65536
#define NOW_NS 1234567890123LL

static int obj_depth(const msgpack_object *o) {
  int d = 0;
  if (o->type == MSGPACK_OBJECT_ARRAY) {
    for (uint32_t i = 0; i < o->via.array.size; i++) {
      int c = obj_depth(&o->via.array.ptr[i]);
      if (c > d) d = c;
    }
    return d + 1;
  }
  if (o->type == MSGPACK_OBJECT_MAP) {
    for (uint32_t i = 0; i < o->via.map.size; i++) {
      int k = obj_depth(&o->via.map.ptr[i].key), v = obj_depth(&o->via.map.ptr[i].val);
      if (k > d) d = k;
      if (v > d) d = v;
    }
    return d + 1;
  }
  return 0;
}

static bool obj_int(const msgpack_object *o, int64_t *out) {
  if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    *out = o->via.i64;
    return true;
  }
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
    *out = (int64_t)o->via.u64;
    return true;
  }
  return false;
}

/* The value of field f in rec against msgpack-c's o (nil: the default). */
static void check_field(const struct tks_decoder *d, const struct tks_field *f, int fi,
                        const char *rec, const msgpack_object *o) {
  const struct tks_schema *s = d->schema;
  const char *at = rec + f->offset;
  if (o == NULL || o->type == MSGPACK_OBJECT_NIL) {
    if (fi == s->ts_field) {
      int64_t ts;
      memcpy(&ts, at, 8);
      FUZZ_CHECK(ts == NOW_NS, "absent ts is %lld", (long long)ts);
    } else {
      FUZZ_CHECK(!f->required, "required field %s absent", f->name);
      FUZZ_CHECK(memcmp(at, &f->dflt, f->size) == 0, "absent %s is not its default", f->name);
    }
    return;
  }
  int64_t i;
  switch (f->type) {
  case TKS_TYPE_TIMESTAMP: {
    int64_t got;
    memcpy(&got, at, 8);
    msgpack_timestamp t;
    if (msgpack_object_to_timestamp(o, &t)) {
      FUZZ_CHECK(got == t.tv_sec * 1000000000 + t.tv_nsec, "%s: %lld, msgpack-c %lld s %u ns",
                 f->name, (long long)got, (long long)t.tv_sec, (unsigned)t.tv_nsec);
    } else {
      FUZZ_CHECK(obj_int(o, &i) && got == i, "%s: %lld, msgpack-c type %d", f->name, (long long)got,
                 o->type);
    }
    break;
  }
  case TKS_TYPE_I64: {
    int64_t got;
    memcpy(&got, at, 8);
    FUZZ_CHECK(obj_int(o, &i) && got == i, "%s: %lld, msgpack-c type %d", f->name, (long long)got,
               o->type);
    break;
  }
  case TKS_TYPE_U32: {
    uint32_t got;
    memcpy(&got, at, 4);
    FUZZ_CHECK(obj_int(o, &i) && got == i, "%s: %u, msgpack-c type %d", f->name, got, o->type);
    break;
  }
  case TKS_TYPE_F64: {
    double got, want;
    memcpy(&got, at, 8);
    if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
      want = o->via.f64;
    else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
      want = (double)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
      want = (double)o->via.i64;
    else
      FUZZ_CHECK(0, "%s: a double from msgpack-c type %d", f->name, o->type);
    FUZZ_CHECK(memcmp(&got, &want, 8) == 0, "%s: %a, msgpack-c %a", f->name, got, want);
    break;
  }
  case TKS_TYPE_SYMBOL:
  case TKS_TYPE_STRING: {
    uint32_t id;
    memcpy(&id, at, 4);
    FUZZ_CHECK(o->type == MSGPACK_OBJECT_STR, "%s: a string from msgpack-c type %d", f->name,
               o->type);
    size_t len;
    const char *name = tks_symtab_name(f->type == TKS_TYPE_SYMBOL ? d->symbols : d->strings, id,
                                       &len);
    FUZZ_CHECK(name && len == o->via.str.size && memcmp(name, o->via.str.ptr, len) == 0,
               "%s: id %u is not the string msgpack-c read", f->name, id);
    break;
  }
  case TKS_TYPE_BOOL:
    FUZZ_CHECK(o->type == MSGPACK_OBJECT_BOOLEAN && *(const bool *)at == o->via.boolean,
               "%s: bool, msgpack-c type %d", f->name, o->type);
    break;
  case TKS_TYPE__COUNT: FUZZ_CHECK(0, "field type"); break;
  }
}

static void check_tick(const struct tks_decoder *d, const char *rec, const msgpack_object *o) {
  const struct tks_schema *s = d->schema;
  const msgpack_object *val[TKS_SCHEMA_MAX_FIELDS] = {0};
  if (o->type == MSGPACK_OBJECT_ARRAY) {
    FUZZ_CHECK(o->via.array.size == s->nfields, "array of %u", o->via.array.size);
    for (unsigned fi = 0; fi < s->nfields; fi++) val[fi] = &o->via.array.ptr[fi];
  } else {
    FUZZ_CHECK(o->type == MSGPACK_OBJECT_MAP, "an accepted tick is msgpack-c type %d", o->type);
    for (uint32_t k = 0; k < o->via.map.size; k++) {
      const msgpack_object *key = &o->via.map.ptr[k].key;
      FUZZ_CHECK(key->type == MSGPACK_OBJECT_STR, "key of type %d", key->type);
      int fi = tks_schema_find(s, key->via.str.ptr, key->via.str.size);
      FUZZ_CHECK(fi >= 0, "key '%.*s' is not a field", (int)key->via.str.size, key->via.str.ptr);
      FUZZ_CHECK(!val[fi], "key '%s' twice", s->fields[fi].name);
      val[fi] = &o->via.map.ptr[k].val;
    }
  }
  for (unsigned fi = 0; fi < s->nfields; fi++)
    check_field(d, &s->fields[fi], (int)fi, rec, val[fi]);
}

static msgpack_zone zone;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) msgpack_zone_init(&zone, 4096), ready = 1;
  long n = tks_msgpack_skip(data, size, MAX_BYTES);
  bool ask = n >= 0 || n == -(1 + (long)TKS_REASON_MALFORMED);
  msgpack_object obj;
  size_t off = 0;
  msgpack_unpack_return ur = MSGPACK_UNPACK_NOMEM_ERROR;
  if (ask) {
    ur = msgpack_unpack((const char *)data, size, &off, &zone, &obj);
    if (n > 0)
      FUZZ_CHECK((ur == MSGPACK_UNPACK_SUCCESS || ur == MSGPACK_UNPACK_EXTRA_BYTES) &&
                     off == (size_t)n,
                 "tks_msgpack_skip: one object of %ld bytes; msgpack-c: %d, %zu bytes", n, ur, off);
    else if (n == 0)
      FUZZ_CHECK(ur == MSGPACK_UNPACK_CONTINUE, "tks_msgpack_skip: more bytes; msgpack-c: %d", ur);
    else
      FUZZ_CHECK(ur == MSGPACK_UNPACK_PARSE_ERROR, "tks_msgpack_skip: malformed; msgpack-c: %d",
                 ur);
  }
  bool whole = ask && (ur == MSGPACK_UNPACK_SUCCESS || ur == MSGPACK_UNPACK_EXTRA_BYTES);
  bool container = whole && (obj.type == MSGPACK_OBJECT_MAP || obj.type == MSGPACK_OBJECT_ARRAY);

  for (unsigned si = 0; si < 2; si++) {
    struct tks_decoder d = {
        .schema = fuzz_schema(si),
        .symbols = tks_symtab_create(0),
        .strings = tks_symtab_create(0),
        .max_message_bytes = MAX_BYTES,
        .mode = TKS_MODE_SLOTTED,
    };
    FUZZ_CHECK(d.symbols && d.strings, "no memory");
    _Alignas(8) char rec[TKS_RECORD_MAX];
    struct tks_decode_result res = {0};
    enum tks_decode_status st = tks_decode(&d, data, size, NOW_NS, rec, &res);
    if (st == TKS_DECODE_OK) {
      FUZZ_CHECK(whole && res.consumed == off, "accepted %zu bytes; msgpack-c: %d, %zu bytes",
                 res.consumed, ur, off);
      check_tick(&d, rec, &obj);
    } else if (st == TKS_DECODE_REJECT) {
      FUZZ_CHECK(whole && res.consumed == off, "rejected %zu bytes (%s); msgpack-c: %d, %zu bytes",
                 res.consumed, tks_reason_name(res.reason), ur, off);
    } else if (st == TKS_DECODE_ERROR && container && off <= MAX_BYTES &&
               obj_depth(&obj) <= TKS_DECODE_MAX_DEPTH) {
      FUZZ_CHECK(0, "decoder: %s (%s); msgpack-c: a %s of %zu bytes, depth %d",
                 tks_reason_name(res.reason), res.detail,
                 obj.type == MSGPACK_OBJECT_MAP ? "map" : "array", off, obj_depth(&obj));
    } else if (st == TKS_DECODE_NEED_MORE) {
      FUZZ_CHECK(!whole, "decoder: more bytes; msgpack-c: %d, %zu bytes", ur, off);
    }
    tks_symtab_destroy(d.symbols);
    tks_symtab_destroy(d.strings);
  }
  msgpack_zone_clear(&zone);
  return 0;
}

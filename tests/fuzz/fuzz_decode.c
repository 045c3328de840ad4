/*
 * libFuzzer target: the decoder fed as daemon/ingest.c feeds it.  The
 * input's first bytes choose the mode (slotted, fallback, dynamic), the
 * schema, max_message_bytes and the sizes of the reads the rest is cut
 * into; each read is appended to a buffer, every complete message in it is
 * decoded and the accepted ticks stored (lib/tick.c, a real store), and a
 * partial message is kept at the front for the next read, as process()
 * does.  The same stream is also decoded in one piece with fresh tables:
 * both runs must give the same statuses, lengths and records.
 *
 * Checked on every message: consumed <= len; NEED_MORE consumes nothing and
 * comes only while fewer than max_message_bytes are pending (else a full
 * read buffer would wait forever); a whole message (OK, DYNAMIC, REJECT) is
 * exactly the length tks_msgpack_skip() measures, at most max bytes; ERROR
 * carries a fatal reason and REJECT a non-fatal one; slotted mode never
 * gives DYNAMIC; an accepted record's symbol and string ids are valid in
 * their tables, its ts is now_ns when it carried none; a dynamic tick's
 * fields fit and their name ids are valid.
 */
#include <stdint.h>
#include <string.h>

#include "decode.h"
#include "fuzz.h"
#include "slab.h"
#include "store.h"
#include "symtab.h"
#include "tick.h"
#include "usage.h"

#define NOW_NS 1700000000000000000LL
#define MAX_EVENTS 4096

struct event {
  enum tks_decode_status st;
  size_t consumed;
  enum tks_reason reason;
  unsigned char record[TKS_RECORD_MAX];
  uint32_t dyn_symbol;
  unsigned dyn_n;
  int64_t dyn_ts;
};

struct run {
  struct tks_decoder d;
  struct tks_slab *slab;
  struct tks_store *store;
  struct tks_usage usage;
  struct tks_tick_sink sink;
  struct event ev[MAX_EVENTS];
  unsigned nev;
  bool closed; /* a protocol error ended the stream */
};

static void run_init(struct run *r, const struct tks_schema *s, enum tks_mode mode, size_t max) {
  r->d = (struct tks_decoder){
      .schema = s,
      .symbols = tks_symtab_create(8), /* small tables: too_many_symbols is reached */
      .strings = tks_symtab_create(8),
      .names = tks_symtab_create(24),
      .max_message_bytes = max,
      .mode = mode,
  };
  r->slab = tks_slab_create(64 * 1024, 1.25, 32);
  r->store = tks_store_create(s, r->slab);
  FUZZ_CHECK(r->d.symbols && r->d.strings && r->d.names && r->slab && r->store, "no memory");
  tks_usage_init(&r->usage);
  r->sink = (struct tks_tick_sink){.store = r->store, .usage = &r->usage, .mode = mode};
  r->nev = 0;
  r->closed = false;
}

static void run_finish(struct run *r) {
  tks_store_destroy(r->store);
  tks_slab_destroy(r->slab);
  tks_symtab_destroy(r->d.symbols);
  tks_symtab_destroy(r->d.strings);
  tks_symtab_destroy(r->d.names);
}

static void check_record(const struct run *r, const char *rec,
                         const struct tks_decode_result *res) {
  const struct tks_schema *s = r->d.schema;
  for (unsigned fi = 0; fi < s->nfields; fi++) {
    const struct tks_field *f = &s->fields[fi];
    if (f->type != TKS_TYPE_SYMBOL && f->type != TKS_TYPE_STRING) continue;
    uint32_t id;
    memcpy(&id, rec + f->offset, 4);
    const struct tks_symtab *t = f->type == TKS_TYPE_SYMBOL ? r->d.symbols : r->d.strings;
    FUZZ_CHECK(id == 0 || tks_symtab_name(t, id, NULL) != NULL, "field %s: id %u unknown", f->name,
               id);
    if ((int)fi == s->symbol_field)
      FUZZ_CHECK(id != 0 && id <= tks_symtab_count(r->d.symbols), "symbol id %u", id);
  }
  if (!res->has_ts && s->ts_field >= 0) {
    int64_t ts;
    memcpy(&ts, rec + s->fields[s->ts_field].offset, 8);
    FUZZ_CHECK(ts == NOW_NS, "a tick without ts has ts %lld", (long long)ts);
  }
}

static void check_dynamic(const struct run *r, const struct tks_dyn_tick *dt) {
  FUZZ_CHECK(r->d.mode != TKS_MODE_SLOTTED, "DYNAMIC in slotted mode");
  FUZZ_CHECK(dt->n >= 1 && dt->n <= TKS_DYNOBJ_MAX_FIELDS + 1, "dynamic tick of %u fields", dt->n);
  FUZZ_CHECK(dt->undeclared <= dt->n, "%u undeclared of %u", dt->undeclared, dt->n);
  FUZZ_CHECK(r->d.mode == TKS_MODE_DYNAMIC || dt->undeclared > 0,
             "fallback gave DYNAMIC without undeclared fields");
  FUZZ_CHECK(dt->symbol != 0 && tks_symtab_name(r->d.symbols, dt->symbol, NULL),
             "dynamic symbol %u", dt->symbol);
  for (unsigned i = 0; i < dt->n; i++) {
    const struct tks_dyn_field *f = &dt->f[i];
    FUZZ_CHECK(f->key_len > 0 && f->key_len <= TKS_SYMBOL_MAX_LEN, "key of %u bytes", f->key_len);
    size_t len;
    const char *name = tks_symtab_name(r->d.names, f->name, &len);
    FUZZ_CHECK(name && len == f->key_len && memcmp(name, f->key, len) == 0,
               "field %u: name id %u does not name its key", i, f->name);
    FUZZ_CHECK(f->field < (int)r->d.schema->nfields, "field index %d", f->field);
  }
}

/* Decodes every complete message of buf[0..len); returns the bytes used
 * (what process() moves out of the buffer). */
static size_t process(struct run *r, const uint8_t *buf, size_t len) {
  const struct tks_schema *s = r->d.schema;
  size_t off = 0;
  _Alignas(8) char record[TKS_RECORD_MAX];
  struct tks_dyn_tick dyn;
  struct tks_decode_result res = {.dyn = &dyn};
  while (!r->closed) {
    size_t avail = len - off;
    enum tks_decode_status st = tks_decode(&r->d, buf + off, avail, NOW_NS, record, &res);
    FUZZ_CHECK(res.consumed <= avail, "consumed %zu of %zu", res.consumed, avail);
    if (st == TKS_DECODE_NEED_MORE) {
      FUZZ_CHECK(res.consumed == 0, "NEED_MORE consumed %zu", res.consumed);
      FUZZ_CHECK(avail < r->d.max_message_bytes, "NEED_MORE with %zu bytes pending, max %zu", avail,
                 r->d.max_message_bytes);
      break;
    }
    struct event *e = r->nev < MAX_EVENTS ? &r->ev[r->nev++] : NULL;
    if (e) {
      memset(e, 0, sizeof *e);
      e->st = st;
      e->consumed = res.consumed;
      e->reason = st == TKS_DECODE_ERROR || st == TKS_DECODE_REJECT ? res.reason : 0;
    }
    if (st == TKS_DECODE_ERROR) {
      FUZZ_CHECK(tks_reason_is_fatal(res.reason), "ERROR with reason %s",
                 tks_reason_name(res.reason));
      r->closed = true;
      break;
    }
    long whole = tks_msgpack_skip(buf + off, avail, r->d.max_message_bytes);
    FUZZ_CHECK(whole > 0 && (size_t)whole == res.consumed,
               "status %d consumed %zu, tks_msgpack_skip says %ld", st, res.consumed, whole);
    FUZZ_CHECK(res.consumed <= r->d.max_message_bytes, "message of %zu bytes", res.consumed);
    if (st == TKS_DECODE_REJECT) {
      FUZZ_CHECK(!tks_reason_is_fatal(res.reason) && res.reason < TKS_REASON__COUNT,
                 "REJECT with reason %d", res.reason);
      FUZZ_CHECK(strlen(res.detail) < sizeof res.detail, "detail");
      for (const char *p = res.detail; *p; p++)
        FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte in the detail");
    } else if (st == TKS_DECODE_OK) {
      check_record(r, record, &res);
      if (e) memcpy(e->record, record, s->record_size);
      tks_tick_store(&r->sink, st, record, &dyn);
    } else {
      FUZZ_CHECK(st == TKS_DECODE_DYNAMIC, "status %d", st);
      check_dynamic(r, &dyn);
      if (r->d.mode == TKS_MODE_FALLBACK) check_record(r, record, &res);
      if (e) e->dyn_symbol = dyn.symbol, e->dyn_n = dyn.n, e->dyn_ts = dyn.ts;
      tks_tick_store(&r->sink, st, record, &dyn);
    }
    off += res.consumed;
  }
  return off;
}

static struct run whole, split;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  static const size_t maxes[4] = {64, 256, 4096, 65536};
  enum tks_mode mode = data[0] % 3 == 0   ? TKS_MODE_SLOTTED
                       : data[0] % 3 == 1 ? TKS_MODE_FALLBACK
                                          : TKS_MODE_DYNAMIC;
  const struct tks_schema *s = fuzz_schema(data[0] / 3 % 2);
  size_t max = maxes[data[0] / 6 % 4];
  unsigned nsizes = data[1] % 8 + 1;
  if (size < 2 + nsizes) return 0;
  const uint8_t *sizes = data + 2;
  const uint8_t *stream = data + 2 + nsizes;
  size_t len = size - 2 - nsizes;

  /* In one piece. */
  run_init(&whole, s, mode, max);
  process(&whole, stream, len);

  /* In reads, with a partial message kept for the next one. */
  run_init(&split, s, mode, max);
  uint8_t *buf = malloc(len + 1);
  size_t have = 0, pos = 0;
  for (unsigned k = 0; pos < len && !split.closed; k++) {
    size_t n = (size_t)sizes[k % nsizes] + 1;
    if (n > len - pos) n = len - pos;
    memcpy(buf + have, stream + pos, n);
    have += n;
    pos += n;
    size_t used = process(&split, buf, have);
    memmove(buf, buf + used, have - used);
    have -= used;
  }
  free(buf);

  FUZZ_CHECK(whole.nev == split.nev && whole.closed == split.closed,
             "in one piece %u messages (closed %d), in reads %u (closed %d)", whole.nev,
             whole.closed, split.nev, split.closed);
  for (unsigned i = 0; i < whole.nev; i++) {
    const struct event *a = &whole.ev[i], *b = &split.ev[i];
    FUZZ_CHECK(a->st == b->st && a->consumed == b->consumed && a->reason == b->reason,
               "message %u: in one piece status %d, %zu bytes, %s; in reads %d, %zu, %s", i, a->st,
               a->consumed, tks_reason_name(a->reason), b->st, b->consumed,
               tks_reason_name(b->reason));
    FUZZ_CHECK(memcmp(a->record, b->record, sizeof a->record) == 0 &&
                   a->dyn_symbol == b->dyn_symbol && a->dyn_n == b->dyn_n && a->dyn_ts == b->dyn_ts,
               "message %u: the records differ", i);
  }
  run_finish(&whole);
  run_finish(&split);
  return 0;
}

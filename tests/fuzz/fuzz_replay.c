/*
 * libFuzzer target: journal replay (lib/journal.c) of a segment made of the
 * input, in a temporary directory (on /dev/shm where there is one: replay
 * fsyncs what it cuts).  The first byte chooses the layout:
 *   0  the rest is the whole segment file, header included;
 *   1  a valid header ("TKSJRNL1", the sequence), then the rest as is;
 *   2  a valid header, then frames with good CRCs made of the rest (a
 *      length byte, then that many payload bytes + 1 each), what is left
 *      over appended raw (a torn tail);
 *   3  as 2, but the first frame goes into an older segment of its own and
 *      the rest into the newest (corruption before the tail is refused);
 *      with bit 3 set the newest is numbered one further on, a missing
 *      middle segment that both policies refuse before any frame;
 * and bit 2 the decoder's mode (slotted or dynamic).  The frames are pulled
 * through the reader (tks_journal_reader_next), its progress checked after
 * each: growing, never past the total, the total at the end.  Each frame is
 * replayed as daemon/durability.c's replay_frame() does: a tick frame (a
 * receive time, then msgpack ticks) decoded and stored in a real store; a
 * record (lib/oprec.h: the payload begins with TKS_OPREC_MARK) parsed and
 * applied (an evict of a known symbol is tks_store_evict_head, a seal begin
 * is remembered, the commit of a remembered seal trims the store before
 * its cut, an abort forgets it).  Checked: a record never adds ticks; an
 * evict removes at most the count it names, all of its rep and symbol
 * (the store's eviction observer sees each run); a trim leaves nothing
 * before its cut and removes only ticks before it; refuse and truncate see
 * the same good frames and records; both fail only with -EBADMSG and a
 * message; refuse fails where truncate cuts and nowhere else; after
 * truncate a replay with refuse is clean and sees the same frames; a
 * well-formed journal replays every frame.
 *
 * Seeds with records (corpus/replay/records-*) are layout 2 inputs made by
 * tests/fuzz/replay_seeds.py.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "decode.h"
#include "fuzz.h"
#include "journal.h"
#include "oprec.h"
#include "slab.h"
#include "store.h"
#include "symtab.h"
#include "tick.h"
#include "usage.h"

static char dir[64];

#define MAX_PENDING_SEALS 64 /* as durability.c's */

struct replay_ctx {
  struct tks_decoder d;
  struct tks_tick_sink sink;
  uint64_t frames, ticks, rejected;
  uint64_t records, bad_records, evicted, trimmed;
  uint32_t hash; /* CRC32C of every payload seen, in order */
  struct {
    uint64_t seal;
    int64_t cut;
  } pending[MAX_PENDING_SEALS]; /* seals begun, not yet committed or aborted */
  unsigned npending;
  /* What the store's eviction observer saw during one record's call. */
  struct {
    bool trim; /* runs must be of entries before cut */
    enum tks_store_rep rep;
    uint32_t symbol;
    int64_t cut;
    uint64_t seen;
  } ev;
};

/* The store's eviction observer: every run an evict or trim removes. */
static void on_evict(void *arg, enum tks_store_rep rep, uint32_t symbol, const void *entries,
                     uint32_t count) {
  struct replay_ctx *rc = arg;
  const struct tks_store *st = rc->sink.store;
  FUZZ_CHECK(count > 0, "an empty run of rep %d symbol %u", rep, symbol);
  rc->ev.seen += count;
  if (!rc->ev.trim) {
    FUZZ_CHECK(rep == rc->ev.rep && symbol == rc->ev.symbol,
               "evict_head of rep %d symbol %u removed ticks of rep %d symbol %u", rc->ev.rep,
               rc->ev.symbol, rep, symbol);
    return;
  }
  size_t size = tks_store_entry_size(st, rep);
  for (uint32_t i = 0; i < count; i++) {
    int64_t ts = tks_store_entry_ts(st, rep, (const char *)entries + i * size);
    FUZZ_CHECK(ts < rc->ev.cut, "trim before %lld removed a tick at %lld", (long long)rc->ev.cut,
               (long long)ts);
  }
}

static void on_ticks(struct replay_ctx *rc, int64_t recv_ns, const uint8_t *p, size_t n);

/* As daemon/durability.c's replay_record() (without its committed-seal
 * limit: every remembered seal that commits is trimmed). */
static void on_record(struct replay_ctx *rc, const void *payload, size_t len) {
  struct tks_store *st = rc->sink.store;
  struct tks_oprec r;
  rc->records++;
  int err = tks_oprec_parse(payload, len, &r);
  if (err != 0) {
    FUZZ_CHECK(err == -EINVAL, "tks_oprec_parse returned %d", err);
    rc->bad_records++;
    return;
  }
  FUZZ_CHECK(len <= TKS_OPREC_MAX || (r.kind == TKS_OPREC_PRODUCER && r.has_ticks),
             "a record of %zu bytes parsed", len);
  if (r.kind == TKS_OPREC_PRODUCER) {
    /* A named producer's position, and the ticks of its read, as a frame
     * of ticks (durability.c's replay_ticks). */
    FUZZ_CHECK(r.producer_len > 0 && r.producer_len <= TKS_OPREC_PRODUCER_MAX,
               "a producer name of %u bytes", r.producer_len);
    if (r.has_ticks) {
      FUZZ_CHECK((const uint8_t *)r.data + r.data_len == (const uint8_t *)payload + len,
                 "the ticks of a producer record do not end with it");
      on_ticks(rc, r.recv_ns, r.data, r.data_len);
    }
    return;
  }
  uint64_t before = tks_store_ticks(st);
  rc->ev.seen = 0;
  switch (r.kind) {
  case TKS_OPREC_EVICT: {
    FUZZ_CHECK(r.rep < TKS_STORE_REPS && r.symbol_len > 0, "rep %d, symbol of %u bytes", r.rep,
               r.symbol_len);
    uint32_t id;
    if (tks_symtab_lookup(rc->d.symbols, r.symbol, r.symbol_len, &id) != 0) break;
    rc->ev.trim = false;
    rc->ev.rep = (enum tks_store_rep)r.rep;
    rc->ev.symbol = id;
    uint64_t n = tks_store_evict_head(st, (enum tks_store_rep)r.rep, id, r.ticks);
    FUZZ_CHECK(n <= r.ticks, "evict_head of %llu removed %llu", (unsigned long long)r.ticks,
               (unsigned long long)n);
    FUZZ_CHECK(tks_store_ticks(st) == before - n, "evict_head removed %llu, ticks %llu -> %llu",
               (unsigned long long)n, (unsigned long long)before,
               (unsigned long long)tks_store_ticks(st));
    FUZZ_CHECK(rc->ev.seen == n, "evict_head says %llu, the observer saw %llu",
               (unsigned long long)n, (unsigned long long)rc->ev.seen);
    rc->evicted += n;
    break;
  }
  case TKS_OPREC_SEAL_BEGIN:
    if (rc->npending < MAX_PENDING_SEALS) {
      rc->pending[rc->npending].seal = r.seal;
      rc->pending[rc->npending++].cut = r.cut;
    }
    break;
  case TKS_OPREC_SEAL_COMMIT:
  case TKS_OPREC_SEAL_ABORT:
    for (unsigned i = 0; i < rc->npending; i++) {
      if (rc->pending[i].seal != r.seal) continue;
      if (r.kind == TKS_OPREC_SEAL_COMMIT) {
        int64_t cut = rc->pending[i].cut;
        uint64_t below = tks_store_count_before(st, cut);
        rc->ev.trim = true;
        rc->ev.cut = cut;
        uint64_t n = tks_store_trim_before(st, cut);
        FUZZ_CHECK(n == below, "trim before %lld removed %llu of the %llu before it",
                   (long long)cut, (unsigned long long)n, (unsigned long long)below);
        FUZZ_CHECK(tks_store_count_before(st, cut) == 0, "ticks before %lld left by its trim",
                   (long long)cut);
        FUZZ_CHECK(tks_store_ticks(st) == before - n && rc->ev.seen == n,
                   "trim removed %llu, ticks %llu -> %llu, observer %llu", (unsigned long long)n,
                   (unsigned long long)before, (unsigned long long)tks_store_ticks(st),
                   (unsigned long long)rc->ev.seen);
        rc->trimmed += n;
      }
      rc->pending[i] = rc->pending[--rc->npending];
      break;
    }
    break;
  case TKS_OPREC_PRODUCER: break; /* above */
  }
  FUZZ_CHECK(tks_store_ticks(st) <= before, "a record (kind %d) added ticks: %llu -> %llu", r.kind,
             (unsigned long long)before, (unsigned long long)tks_store_ticks(st));
  FUZZ_CHECK(r.kind == TKS_OPREC_EVICT || r.kind == TKS_OPREC_SEAL_COMMIT || rc->ev.seen == 0,
             "a record of kind %d evicted %llu", r.kind, (unsigned long long)rc->ev.seen);
}

/* As daemon/durability.c's replay_frame(). */
static int on_frame(void *arg, const void *payload, size_t len) {
  struct replay_ctx *rc = arg;
  FUZZ_CHECK(len > 0 && len <= TKS_JOURNAL_MAX_PAYLOAD, "payload of %zu bytes", len);
  rc->frames++;
  rc->hash = tks_crc32c(rc->hash, payload, len);
  if (len < sizeof(int64_t)) {
    rc->rejected++;
    return 0;
  }
  if (tks_oprec_is(payload, len)) {
    on_record(rc, payload, len);
    return 0;
  }
  int64_t recv_ns;
  memcpy(&recv_ns, payload, sizeof recv_ns);
  FUZZ_CHECK(recv_ns != TKS_OPREC_MARK, "tks_oprec_is missed the mark");
  on_ticks(rc, recv_ns, (const uint8_t *)payload + sizeof recv_ns, len - sizeof recv_ns);
  return 0;
}

static void on_ticks(struct replay_ctx *rc, int64_t recv_ns, const uint8_t *p, size_t n) {
  size_t off = 0;
  _Alignas(8) char record[TKS_RECORD_MAX];
  struct tks_dyn_tick dyn;
  struct tks_decode_result res = {.dyn = &dyn};
  while (off < n) {
    enum tks_decode_status st = tks_decode(&rc->d, p + off, n - off, recv_ns, record, &res);
    FUZZ_CHECK(res.consumed <= n - off, "consumed %zu of %zu", res.consumed, n - off);
    if (st == TKS_DECODE_NEED_MORE || st == TKS_DECODE_ERROR) {
      rc->rejected++;
      break;
    }
    FUZZ_CHECK(res.consumed > 0, "status %d consumed nothing", st);
    off += res.consumed;
    if (st == TKS_DECODE_REJECT) {
      rc->rejected++;
      continue;
    }
    if (tks_tick_store(&rc->sink, st, record, &dyn) == 0)
      rc->ticks++;
    else
      rc->rejected++;
  }
}

static void clear_dir(void) {
  DIR *dp = opendir(dir);
  FUZZ_CHECK(dp, "opendir %s", dir);
  struct dirent *e;
  char path[600];
  while ((e = readdir(dp)))
    if (e->d_name[0] != '.') {
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      unlink(path);
    }
  closedir(dp);
}

static void write_file(uint64_t seq, const uint8_t *p, size_t n) {
  char path[600];
  snprintf(path, sizeof path, "%s/journal-%020llu.tkj", dir, (unsigned long long)seq);
  FILE *f = fopen(path, "wb");
  FUZZ_CHECK(f && fwrite(p, 1, n, f) == n && fclose(f) == 0, "writing %s", path);
}

static size_t put_header(uint8_t *out, uint64_t seq) {
  memcpy(out, "TKSJRNL1", 8);
  for (int i = 0; i < 8; i++) out[8 + i] = (uint8_t)(seq >> (8 * i));
  return TKS_JOURNAL_SEGMENT_HEADER;
}

static size_t put_frame(uint8_t *out, const uint8_t *payload, uint32_t len) {
  uint32_t crc = tks_crc32c(0, payload, len);
  for (int i = 0; i < 4; i++) {
    out[i] = (uint8_t)(len >> (8 * i));
    out[4 + i] = (uint8_t)(crc >> (8 * i));
  }
  memcpy(out + 8, payload, len);
  return TKS_JOURNAL_FRAME_HEADER + len;
}

struct outcome {
  int rc;
  char err[700];
  struct tks_replay_result res;
  uint64_t frames, records, bad_records, removed; /* removed: by the records */
  uint64_t ticks;                                 /* in the store at the end */
  uint32_t hash;
};

static void replay(enum tks_on_corrupt policy, enum tks_mode mode, struct outcome *o) {
  struct replay_ctx rc = {0};
  struct tks_slab *slab = tks_slab_create(64 * 1024, 1.25, 32);
  const struct tks_schema *s = fuzz_schema(0);
  struct tks_store *store = tks_store_create(s, slab);
  struct tks_usage usage;
  tks_usage_init(&usage);
  rc.d = (struct tks_decoder){
      .schema = s,
      .symbols = tks_symtab_create(16),
      .strings = tks_symtab_create(16),
      .names = tks_symtab_create(32),
      .max_message_bytes = 4096,
      .mode = mode,
  };
  rc.sink = (struct tks_tick_sink){.store = store, .usage = &usage, .mode = mode};
  FUZZ_CHECK(slab && store && rc.d.symbols && rc.d.strings && rc.d.names, "no memory");
  tks_store_set_evict_hook(store, on_evict, &rc);
  struct tks_journal_reader *r;
  o->rc = tks_journal_reader_open(&r, dir, 0, policy, o->err, sizeof o->err);
  memset(&o->res, 0, sizeof o->res);
  if (o->rc == 0) {
    const void *payload;
    size_t len;
    uint64_t done = 0;
    struct tks_journal_progress pr;
    while ((o->rc = tks_journal_reader_next(r, &payload, &len)) == 1) {
      on_frame(&rc, payload, len);
      tks_journal_reader_progress(r, &pr);
      FUZZ_CHECK(pr.bytes_done > done && pr.bytes_done <= pr.bytes_total,
                 "progress %llu after %llu of %llu", (unsigned long long)pr.bytes_done,
                 (unsigned long long)done, (unsigned long long)pr.bytes_total);
      done = pr.bytes_done;
    }
    tks_journal_reader_progress(r, &pr);
    if (o->rc == 0)
      FUZZ_CHECK(pr.bytes_done == pr.bytes_total, "done at %llu of %llu",
                 (unsigned long long)pr.bytes_done, (unsigned long long)pr.bytes_total);
    snprintf(o->err, sizeof o->err, "%s", tks_journal_reader_error(r));
    o->res = *tks_journal_reader_result(r);
    tks_journal_reader_close(r);
  }
  o->frames = rc.frames;
  o->records = rc.records;
  o->bad_records = rc.bad_records;
  o->removed = rc.evicted + rc.trimmed;
  o->ticks = tks_store_ticks(store);
  o->hash = rc.hash;
  FUZZ_CHECK(o->ticks == rc.ticks - o->removed, "%llu ticks stored, %llu removed, %llu left",
             (unsigned long long)rc.ticks, (unsigned long long)o->removed,
             (unsigned long long)o->ticks);
  FUZZ_CHECK(o->rc == 0 || o->rc == -EBADMSG, "replay (%s) returned %d: %s",
             tks_on_corrupt_name(policy), o->rc, o->err);
  FUZZ_CHECK(o->rc == 0 || o->err[0], "an error without a message");
  FUZZ_CHECK(o->res.frames == rc.frames, "result says %llu frames, the callback saw %llu",
             (unsigned long long)o->res.frames, (unsigned long long)rc.frames);
  tks_store_destroy(store);
  tks_slab_destroy(slab);
  tks_symtab_destroy(rc.d.symbols);
  tks_symtab_destroy(rc.d.strings);
  tks_symtab_destroy(rc.d.names);
}

static void remove_dir(void) {
  clear_dir();
  rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!dir[0]) {
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/tks-fuzz-replay-XXXXXX", base);
    FUZZ_CHECK(mkdtemp(dir), "mkdtemp %s", dir);
    atexit(remove_dir);
  }
  if (size < 1) return 0;
  unsigned layout = data[0] & 3;
  enum tks_mode mode = data[0] & 4 ? TKS_MODE_DYNAMIC : TKS_MODE_SLOTTED;
  const uint8_t *in = data + 1;
  size_t n = size - 1;
  uint8_t *file = malloc(2 * TKS_JOURNAL_SEGMENT_HEADER + n + 8 * (n + 1));
  size_t flen = 0;
  uint64_t seq = 1 + data[0] / 8; /* any sequence: the name and header agree */
  uint64_t frames_made = 0;
  bool clean = false; /* a well-formed journal: replay must take all of it */
  bool gap = layout == 3 && (data[0] & 8);

  clear_dir();
  if (layout == 0) {
    write_file(seq, in, n);
  } else if (layout == 1) {
    flen = put_header(file, seq);
    memcpy(file + flen, in, n);
    write_file(seq, file, flen + n);
  } else {
    flen = put_header(file, seq);
    size_t pos = 0;
    while (pos < n && 1 + (size_t)in[pos] + 1 <= n - pos) {
      uint32_t len = (uint32_t)in[pos] + 1;
      flen += put_frame(file + flen, in + pos + 1, len);
      pos += 1 + len;
      frames_made++;
      if (layout == 3 && frames_made == 1) { /* the older segment ends here */
        write_file(seq, file, flen);
        seq += gap ? 2 : 1;
        flen = put_header(file, seq);
      }
    }
    clean = pos == n;
    memcpy(file + flen, in + pos, n - pos);
    flen += n - pos;
    write_file(seq, file, flen);
  }
  free(file);

  struct outcome refuse, cut, again;
  replay(TKS_CORRUPT_REFUSE, mode, &refuse);
  replay(TKS_CORRUPT_TRUNCATE, mode, &cut);
  FUZZ_CHECK(refuse.frames == cut.frames && refuse.hash == cut.hash,
             "refuse saw %llu frames, truncate %llu", (unsigned long long)refuse.frames,
             (unsigned long long)cut.frames);
  FUZZ_CHECK(refuse.records == cut.records && refuse.bad_records == cut.bad_records &&
                 refuse.removed == cut.removed && refuse.ticks == cut.ticks,
             "refuse: %llu records (%llu bad) removed %llu, %llu ticks; truncate: %llu (%llu) "
             "%llu, %llu",
             (unsigned long long)refuse.records, (unsigned long long)refuse.bad_records,
             (unsigned long long)refuse.removed, (unsigned long long)refuse.ticks,
             (unsigned long long)cut.records, (unsigned long long)cut.bad_records,
             (unsigned long long)cut.removed, (unsigned long long)cut.ticks);
  if (refuse.rc == 0)
    FUZZ_CHECK(cut.rc == 0 && cut.res.truncated_file[0] == '\0',
               "refuse took the journal, truncate (%d) cut %s", cut.rc, cut.res.truncated_file);
  if (cut.rc != 0) FUZZ_CHECK(refuse.rc != 0, "truncate failed where refuse did not: %s", cut.err);
  if (cut.rc == 0 && refuse.rc != 0)
    FUZZ_CHECK(cut.res.truncated_file[0], "refuse failed (%s), truncate cut nothing", refuse.err);
  if (cut.res.truncated_bytes)
    FUZZ_CHECK(cut.res.side_file[0] && access(cut.res.side_file, R_OK) == 0,
               "no side file for %llu bytes cut", (unsigned long long)cut.res.truncated_bytes);
  if (cut.rc == 0) {
    replay(TKS_CORRUPT_REFUSE, mode, &again);
    FUZZ_CHECK(again.rc == 0, "after truncate, refuse fails: %s", again.err);
    FUZZ_CHECK(again.frames == cut.frames && again.hash == cut.hash &&
                   again.records == cut.records && again.ticks == cut.ticks,
               "after truncate %llu frames (%llu records, %llu ticks), before %llu (%llu, %llu)",
               (unsigned long long)again.frames, (unsigned long long)again.records,
               (unsigned long long)again.ticks, (unsigned long long)cut.frames,
               (unsigned long long)cut.records, (unsigned long long)cut.ticks);
  }
  if (gap && frames_made >= 1) {
    FUZZ_CHECK(refuse.rc == -EBADMSG && cut.rc == -EBADMSG && strstr(cut.err, "is missing"),
               "a gap taken: %d %d %s", refuse.rc, cut.rc, cut.err);
    FUZZ_CHECK(refuse.frames == 0, "%llu frames replayed before a gap",
               (unsigned long long)refuse.frames);
  } else if (clean) {
    FUZZ_CHECK(refuse.rc == 0, "a well-formed journal refused: %s", refuse.err);
    FUZZ_CHECK(refuse.frames == frames_made, "%llu of %llu frames replayed",
               (unsigned long long)refuse.frames, (unsigned long long)frames_made);
  }
  return 0;
}

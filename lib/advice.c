/*
 * Schema advice, the MEMORY DOCTOR: turns the store's per-representation
 * figures and the undeclared-field usage table into JSON lines, each one
 * suggestion with its numbers.  Every candidate is first analysed into a
 * plan (what type to declare, what the slot would cost, what it saves), the
 * plans are ordered by value (ticks lost first, then bytes saved, then
 * what is only for information), and then written.  All arithmetic is
 * integer, so one input always gives the same text, to the byte.
 */
#include "advice.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The most string bytes one map holds: a uint16 length per field. */
#define MAP_STRING_BYTES_MAX ((uint64_t)TKS_DYNOBJ_MAX_FIELDS * UINT16_MAX)
/* A string field whose values average at most this many bytes looks like a
 * code (an exchange, a venue): declare it as a symbol, else as a string. */
#define SYMBOL_MAX_AVG_BYTES 16
/* The string-table estimate assumes at most this many distinct values. */
#define STRING_VALUES_MAX 65536
/* Slotted records cost at most about 3% more than record_size: block
 * headers and the unfilled tails of the newest blocks.  Packed in their
 * blocks (lib/store.c) they take less, by how many bytes their values need,
 * which the advice cannot know before the ticks are slotted: its figures
 * for slotted records are upper bounds.  In percent. */
#define SLOTTED_OVERHEAD_PCT 103
/* fallback mode: the overflow ticks' share of memory worth a summary. */
#define OVERFLOW_SHARE_PCT 50

/* ---- integer arithmetic ---- */

/* a * b / c rounded to the nearest integer; 0 when c is 0.  Exact unless
 * (a % c) * b overflows 64 bits, then within a unit of the last place. */
static uint64_t muldiv(uint64_t a, uint64_t b, uint64_t c) {
  if (c == 0) return 0;
  uint64_t q = a / c, r = a % c;
  if (r == 0 || b == 0) return q * b;
  if (b <= (UINT64_MAX - c / 2) / r) return q * b + (r * b + c / 2) / c;
  return q * b + (uint64_t)((long double)r * (long double)b / (long double)c + 0.5L);
}

/* n / d in tenths of a percent (370 is 37.0%). */
static uint64_t pct10(uint64_t n, uint64_t d) { return muldiv(n, 1000, d); }
/* n / d in tenths (335 is 33.5). */
static uint64_t tenths(uint64_t n, uint64_t d) { return muldiv(n, 10, d); }

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static int64_t to_i64(uint64_t v) { return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v; }

static uint64_t abs_i64(int64_t v) { return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v; }

/* ---- formatting ---- */

struct num {
  char s[32];
};

/* "37.0" from 370. */
static struct num fmt_tenths(uint64_t t) {
  struct num n;
  snprintf(n.s, sizeof n.s, "%" PRIu64 ".%" PRIu64, t / 10, t % 10);
  return n;
}

/* "512 B", "1.5 KiB", "310.0 MiB", "2.1 GiB": binary units, one decimal. */
static struct num fmt_size(uint64_t bytes) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  struct num n;
  if (bytes < 1024) {
    snprintf(n.s, sizeof n.s, "%" PRIu64 " B", bytes);
    return n;
  }
  unsigned u = 0;
  uint64_t div = 1024;
  while (u + 1 < TKS_ARRAY_SIZE(units) && bytes / div >= 1024) {
    div *= 1024;
    u++;
  }
  uint64_t t = muldiv(bytes, 10, div);
  if (t >= 10240 && u + 1 < TKS_ARRAY_SIZE(units)) { /* 1023.96 KiB shows as 1.0 MiB */
    div *= 1024;
    u++;
    t = muldiv(bytes, 10, div);
  }
  snprintf(n.s, sizeof n.s, "%" PRIu64 ".%" PRIu64 " %s", t / 10, t % 10, units[u]);
  return n;
}

/* One sentence, built on the stack: names are at most 63 bytes, so it fits. */
struct text {
  char s[1024];
  size_t n;
};

__attribute__((format(printf, 2, 3))) static void say(struct text *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = vsnprintf(t->s + t->n, sizeof t->s - t->n, fmt, ap);
  va_end(ap);
  if (r > 0) t->n = t->n + (size_t)r < sizeof t->s ? t->n + (size_t)r : sizeof t->s - 1;
}

/* ---- JSON lines; the first failure sticks and the rest are skipped ---- */

struct out {
  struct tks_buf *b;
  int err;
};

static void put_begin(struct out *o, const char *kind, const struct text *t) {
  if (!o->err) o->err = tks_buf_printf(o->b, "{\"advice\":\"%s\",\"text\":", kind);
  if (!o->err) o->err = tks_buf_json_string(o->b, t->s, t->n);
}
static void put_u64(struct out *o, const char *k, uint64_t v) {
  if (!o->err) o->err = tks_buf_printf(o->b, ",\"%s\":%" PRIu64, k, v);
}
static void put_i64(struct out *o, const char *k, int64_t v) {
  if (!o->err) o->err = tks_buf_printf(o->b, ",\"%s\":%" PRId64, k, v);
}
static void put_tenths(struct out *o, const char *k, uint64_t t) {
  if (!o->err) o->err = tks_buf_printf(o->b, ",\"%s\":%s", k, fmt_tenths(t).s);
}
static void put_bool(struct out *o, const char *k, bool v) {
  if (!o->err) o->err = tks_buf_printf(o->b, ",\"%s\":%s", k, v ? "true" : "false");
}
static void put_str(struct out *o, const char *k, const char *s) {
  if (!o->err) o->err = tks_buf_printf(o->b, ",\"%s\":", k);
  if (!o->err) o->err = tks_buf_json_string(o->b, s, strlen(s));
}
static void put_end(struct out *o) {
  if (!o->err) o->err = tks_buf_puts(o->b, "}\n");
}

/* ---- the figures every line uses ---- */

struct figures {
  bool slotted;        /* strict mode: undeclared fields were rejected */
  bool fallback;       /* undeclared fields go in overflow maps */
  uint64_t seen;       /* accepted + rejected for unknown fields */
  uint64_t received;   /* accepted + rejected for any reason */
  uint64_t stored;     /* slotted + overflow + dynamic ticks in the store */
  uint64_t ovf_bytes;  /* overflow entries and their maps (fallback mode) */
  uint64_t dyn_bytes;  /* dynamic objects and their series entries */
  uint64_t store_bytes; /* records, entries, maps, objects, symbol tables */
};

static void figures_of(const struct tks_advice_input *in, struct figures *g) {
  const struct tks_store_repr *r = &in->repr;
  uint64_t rejected = in->ticks_rejected > in->rejected_unknown_field ? in->ticks_rejected
                                                                      : in->rejected_unknown_field;
  g->slotted = in->mode == TKS_MODE_SLOTTED;
  g->fallback = in->mode == TKS_MODE_FALLBACK;
  g->seen = in->ticks_accepted + in->rejected_unknown_field;
  g->received = in->ticks_accepted + rejected;
  g->stored = r->slotted_ticks + r->overflow_ticks + r->dynamic_ticks;
  g->ovf_bytes = r->overflow_entry_bytes + r->overflow_map_bytes;
  g->dyn_bytes = r->dynamic_object_bytes + r->dynamic_entry_bytes;
  g->store_bytes = r->slotted_bytes + g->ovf_bytes + g->dyn_bytes + in->symbol_bytes;
}

/* The bytes of one overflow tick (fallback mode) for ticks ticks that carry
 * fields undeclared fields in all, with strings bytes of string values: the
 * record rounded up to 8 bytes, the map pointer, and an overflow map of the
 * tick's share of the fields (at least one) and of the string bytes, both
 * rounded up.  The map's slab chunk rounding and the block overhead are
 * left out. */
static uint64_t overflow_tick_bytes(uint32_t record_size, uint64_t fields, uint64_t strings,
                                    uint64_t ticks) {
  uint64_t k = ticks && fields > ticks ? fields / ticks + (fields % ticks != 0) : 1;
  uint64_t s = ticks ? strings / ticks + (strings % ticks != 0) : 0;
  k = min_u64(k, TKS_DYNOBJ_MAX_FIELDS);
  s = min_u64(s, MAP_STRING_BYTES_MAX);
  return ((record_size + 7) & ~7u) + TKS_STORE_OVERFLOW_ENTRY_EXTRA +
         tks_dynobj_size((unsigned)k, (size_t)s);
}

/* ---- one undeclared field ---- */

enum verdict {
  V_DECLARE,      /* declare it: it saves bytes, or keeps ticks slotted mode loses */
  V_KEEP_DYNAMIC, /* a slot would cost more than the overflow maps (or objects) do */
  V_CANNOT,       /* a type fits, but the schema cannot take the field */
  V_MIXED,        /* values of incompatible types */
  V_NIL_ONLY,     /* no value but nil: no type to declare */
};

struct plan {
  const struct tks_usage_field *f;
  enum verdict v;
  enum tks_type type;
  bool optional;           /* nil values seen */
  uint64_t count;          /* kept (fallback, dynamic) or rejected (slotted) */
  uint64_t share;          /* f->ticks of the ticks seen, tenths of a percent */
  uint64_t avg_string;     /* bytes per string value */
  uint32_t new_record_size;
  uint64_t record_bytes;   /* the record's growth over every stored tick */
  uint64_t table_bytes;    /* string table growth, an upper estimate */
  uint64_t slot_bytes;     /* record_bytes + table_bytes */
  int64_t saved;           /* cost_bytes - slot_bytes (negative: costs more) */
  char reason[160];        /* V_CANNOT */
};

static bool interned(enum tks_type t) { return t == TKS_TYPE_SYMBOL || t == TKS_TYPE_STRING; }

static void analyse(const struct tks_advice_input *in, const struct figures *g,
                    const struct tks_usage_field *f, struct plan *p) {
  memset(p, 0, sizeof *p);
  p->f = f;
  p->count = g->slotted ? f->rejected : f->kept;
  p->share = pct10(f->ticks, g->seen);
  p->optional = (f->types & TKS_USAGE_NIL) != 0;
  p->avg_string = f->ticks ? f->string_bytes / f->ticks : 0;
  unsigned t = f->types & ~(unsigned)TKS_USAGE_NIL;
  if (t == TKS_USAGE_STRING)
    p->type = p->avg_string <= SYMBOL_MAX_AVG_BYTES ? TKS_TYPE_SYMBOL : TKS_TYPE_STRING;
  else if (t == TKS_USAGE_INT)
    p->type = TKS_TYPE_I64; /* the range is unknown: never u32 */
  else if (t == TKS_USAGE_FLOAT || t == (TKS_USAGE_INT | TKS_USAGE_FLOAT))
    p->type = TKS_TYPE_F64;
  else if (t == TKS_USAGE_BOOL)
    p->type = TKS_TYPE_BOOL;
  else {
    p->v = t ? V_MIXED : V_NIL_ONLY;
    return;
  }

  /* A longer name is never matched by the decoder: a cut one would not help. */
  size_t len = strlen(f->name);
  if (len >= TKS_FIELD_NAME_MAX) {
    p->v = V_CANNOT;
    snprintf(p->reason, sizeof p->reason,
             "its name is %zu bytes long and a declared name holds at most %d", len,
             TKS_FIELD_NAME_MAX - 1);
    return;
  }
  if (in->schema->nfields >= TKS_SCHEMA_MAX_FIELDS) {
    p->v = V_CANNOT;
    snprintf(p->reason, sizeof p->reason,
             "the schema already declares %u fields, the most it can hold", in->schema->nfields);
    return;
  }
  struct tks_schema s = *in->schema;
  struct tks_field *nf = &s.fields[s.nfields++];
  memset(nf, 0, sizeof *nf);
  memcpy(nf->name, f->name, len + 1);
  nf->type = p->type;
  nf->required = false;
  if (tks_schema_layout(&s, p->reason, sizeof p->reason) != 0) {
    p->v = V_CANNOT;
    return;
  }
  p->new_record_size = s.record_size;
  uint32_t old_size = in->schema->record_size;
  uint32_t growth = s.record_size > old_size ? s.record_size - old_size : 0;
  p->record_bytes = (uint64_t)growth * g->stored;
  if (interned(p->type)) p->table_bytes = p->avg_string * min_u64(f->ticks, STRING_VALUES_MAX);
  p->slot_bytes = p->record_bytes + p->table_bytes;
  p->saved = g->slotted ? -to_i64(p->slot_bytes) : to_i64(f->cost_bytes) - to_i64(p->slot_bytes);
  p->v = g->slotted || p->saved > 0 ? V_DECLARE : V_KEEP_DYNAMIC;
}

static const char *article(enum tks_type t) {
  return t == TKS_TYPE_I64 || t == TKS_TYPE_F64 ? "an" : "a";
}

/* The value types of tks_usage_field.types, in the order they are listed
 * (named by tks_usage_type_name()). */
static const unsigned value_types[] = {TKS_USAGE_STRING, TKS_USAGE_INT, TKS_USAGE_FLOAT,
                                       TKS_USAGE_BOOL, TKS_USAGE_NIL};

/* "string and int", "string, int and nil". */
static void say_types(struct text *t, unsigned types) {
  unsigned total = 0, done = 0;
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(value_types); i++) total += (types & value_types[i]) != 0;
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(value_types); i++) {
    if (!(types & value_types[i])) continue;
    done++;
    say(t, "%s%s",
        done == 1       ? ""
        : done == total ? " and "
                        : ", ",
        tks_usage_type_name(value_types[i]));
  }
}

static void put_types(struct out *o, unsigned types) {
  if (!o->err) o->err = tks_buf_puts(o->b, ",\"types\":[");
  bool first = true;
  for (unsigned i = 0; i < TKS_ARRAY_SIZE(value_types); i++) {
    if (!(types & value_types[i])) continue;
    if (!o->err)
      o->err = tks_buf_printf(o->b, "%s\"%s\"", first ? "" : ",",
                              tks_usage_type_name(value_types[i]));
    first = false;
  }
  if (!o->err) o->err = tks_buf_putc(o->b, ']');
}

/* The first words of every field line: how often it is seen and what it costs now. */
static void say_field_head(struct text *t, const struct figures *g, const struct plan *p) {
  if (g->slotted)
    say(t, "field `%s` was in %s%% of ticks: %" PRIu64 " ticks lost, rejected as undeclared",
        p->f->name, fmt_tenths(p->share).s, p->count);
  else
    say(t, "field `%s` is in %s%% of ticks and costs %s %s", p->f->name, fmt_tenths(p->share).s,
        fmt_size(p->f->cost_bytes).s,
        g->fallback ? "in overflow maps" : "in the dynamic objects");
}

static void put_field_head(struct out *o, const struct figures *g, const struct plan *p) {
  put_str(o, "field", p->f->name);
  put_u64(o, "ticks", p->f->ticks);
  put_tenths(o, "share_pct", p->share);
  put_u64(o, "kept", p->f->kept);
  put_u64(o, "rejected", p->f->rejected);
  put_u64(o, "cost_bytes", g->slotted ? 0 : p->f->cost_bytes);
  if (g->slotted) put_u64(o, "ticks_lost", p->count);
}

static void write_field(struct out *o, const struct tks_advice_input *in, const struct figures *g,
                        const struct plan *p) {
  struct text t = {.n = 0};
  const char *type = tks_type_name(p->type);
  uint32_t old_size = in->schema->record_size;
  say_field_head(&t, g, p);
  switch (p->v) {
  case V_DECLARE:
  case V_KEEP_DYNAMIC: {
    say(&t, "; declared as %s `%s` slot it would cost %s%s (the record grows from %u to %u bytes",
        article(p->type), type, p->table_bytes ? "at most " : "", fmt_size(p->slot_bytes).s,
        old_size, p->new_record_size);
    if (g->stored)
      say(&t, ", %s over %" PRIu64 " stored ticks", fmt_size(p->record_bytes).s, g->stored);
    if (p->table_bytes) say(&t, ", plus at most %s of string table", fmt_size(p->table_bytes).s);
    say(&t, ")");
    uint64_t per_tick = tenths(g->store_bytes, g->stored);
    uint64_t after = p->saved > 0 ? g->store_bytes - min_u64((uint64_t)p->saved, g->store_bytes)
                                  : g->store_bytes + abs_i64(p->saved);
    uint64_t new_per_tick = tenths(after, g->stored);
    if (g->slotted) {
      say(&t, " and keep those ticks");
    } else if (p->v == V_DECLARE) {
      say(&t, ": %s less", fmt_size((uint64_t)p->saved).s);
      if (g->stored)
        say(&t, ", %s bytes per tick instead of %s", fmt_tenths(new_per_tick).s,
            fmt_tenths(per_tick).s);
      if (in->mode == TKS_MODE_DYNAMIC) say(&t, ", once store.mode is fallback or slotted");
    } else {
      say(&t, ", %s more than now: keep it undeclared, in an overflow map in fallback mode",
          fmt_size(abs_i64(p->saved)).s);
    }
    if (p->optional && p->v == V_DECLARE) say(&t, " (nil seen: make it optional)");
    put_begin(o, p->v == V_DECLARE ? "declare_field" : "keep_dynamic", &t);
    put_field_head(o, g, p);
    put_str(o, "type", type);
    put_bool(o, "optional", p->optional);
    put_u64(o, "record_size", old_size);
    put_u64(o, "new_record_size", p->new_record_size);
    put_u64(o, "record_bytes", p->record_bytes);
    put_u64(o, "string_table_bytes_max", p->table_bytes);
    put_u64(o, "slot_bytes", p->slot_bytes);
    put_i64(o, "saved_bytes", p->saved);
    put_tenths(o, "bytes_per_tick", per_tick);
    put_tenths(o, "new_bytes_per_tick", new_per_tick);
    break;
  }
  case V_CANNOT:
    say(&t, ", but it cannot be declared as %s `%s` slot: %s", article(p->type), type, p->reason);
    if (g->slotted) say(&t, "; only store.mode: fallback keeps those ticks");
    put_begin(o, "cannot_declare", &t);
    put_field_head(o, g, p);
    put_str(o, "type", type);
    put_str(o, "reason", p->reason);
    break;
  case V_MIXED:
  case V_NIL_ONLY:
    if (p->v == V_MIXED) {
      say(&t, "; its values were of types ");
      say_types(&t, p->f->types);
      say(&t, ", and no one slot type holds them all");
    } else {
      say(&t, "; its values were all nil, so there is no type to declare it as");
    }
    say(&t, g->slotted    ? ": only store.mode: fallback keeps those ticks"
            : g->fallback ? ": it stays undeclared, in the overflow maps"
                          : ": it stays undeclared, in the dynamic objects");
    put_begin(o, p->v == V_MIXED ? "mixed_types" : "nil_only", &t);
    put_field_head(o, g, p);
    put_types(o, p->f->types);
    break;
  }
  put_end(o);
}

/* ---- the lines not about one field ---- */

static void write_use_fallback(struct out *o, const struct tks_advice_input *in,
                               const struct figures *g) {
  const struct tks_usage *u = in->usage;
  uint64_t n = in->rejected_unknown_field;
  /* The three names with the most rejections (ties: first seen first). */
  const struct tks_usage_field *top[3] = {NULL, NULL, NULL};
  unsigned named = 0;
  uint64_t extra = 0, strings = 0;
  for (unsigned i = 0; u && i < u->count; i++) {
    const struct tks_usage_field *f = &u->fields[i];
    if (!f->rejected) continue;
    named++;
    extra += f->rejected;
    strings += muldiv(f->string_bytes, f->rejected, f->ticks);
    for (unsigned k = 0; k < 3; k++)
      if (!top[k] || f->rejected > top[k]->rejected) {
        for (unsigned m = 2; m > k; m--) top[m] = top[m - 1];
        top[k] = f;
        break;
      }
  }
  /* A typical rejected tick, kept in fallback mode: its record, the map
   * pointer, and a map of its share of the undeclared fields (at least one)
   * and of their string bytes. */
  uint64_t per_tick = overflow_tick_bytes(in->schema->record_size, extra, strings, n);

  struct text t = {.n = 0};
  uint64_t pct = pct10(n, g->received);
  say(&t, "%" PRIu64 " ticks (%s%% of those received) were rejected for undeclared fields", n,
      fmt_tenths(pct).s);
  if (top[0]) {
    say(&t, ":");
    for (unsigned k = 0; k < 3 && top[k]; k++)
      say(&t, "%s `%s` (%" PRIu64 ")", k ? "," : "", top[k]->name, top[k]->rejected);
    if (named > 3) say(&t, " and %u more", named - 3);
  }
  say(&t,
      "; declare %s or set store.mode: fallback to keep them as slotted records plus overflow maps"
      " at about %" PRIu64 " bytes each, %s in all",
      named > 1 ? "them (see below)" : named ? "it (see below)" : "the fields", per_tick,
      fmt_size(per_tick * n).s);
  put_begin(o, "use_fallback", &t);
  put_u64(o, "rejected", n);
  put_u64(o, "received", g->received);
  put_tenths(o, "rejected_pct", pct);
  if (!o->err) o->err = tks_buf_puts(o->b, ",\"fields\":[");
  for (unsigned k = 0; k < 3 && top[k]; k++) {
    if (!o->err) o->err = tks_buf_puts(o->b, k ? ",{\"field\":" : "{\"field\":");
    if (!o->err) o->err = tks_buf_json_string(o->b, top[k]->name, strlen(top[k]->name));
    if (!o->err) o->err = tks_buf_printf(o->b, ",\"rejected\":%" PRIu64 "}", top[k]->rejected);
  }
  if (!o->err) o->err = tks_buf_putc(o->b, ']');
  put_u64(o, "more_fields", named > 3 ? named - 3 : 0);
  put_u64(o, "overflow_bytes_per_tick", per_tick);
  put_u64(o, "overflow_bytes", per_tick * n);
  put_end(o);
}

/* Dynamic mode: what slotted records would cost instead. */
struct use_slotted {
  uint64_t moved;     /* ticks with no undeclared field: slotted records */
  uint64_t overflow;  /* ticks with undeclared fields: overflow ticks in fallback mode */
  uint64_t ovf_tick;  /* bytes of one of those */
  uint64_t now, then; /* bytes of the dynamic ticks now, and in the other mode */
  int64_t saved;      /* now - then, 0 if not less */
};

/* Ticks that carry undeclared fields are at most the sum of the fields'
 * kept counts (and of the untracked ones): in fallback mode they become a
 * slotted record plus an overflow map of those fields; the rest become
 * slotted records. */
static void use_slotted_of(const struct tks_advice_input *in, const struct figures *g,
                           struct use_slotted *s) {
  const struct tks_usage *u = in->usage;
  uint64_t dyn = in->repr.dynamic_ticks, fields = 0, strings = 0;
  for (unsigned i = 0; u && i < u->count; i++) {
    fields += u->fields[i].kept;
    strings += muldiv(u->fields[i].string_bytes, u->fields[i].kept, u->fields[i].ticks);
  }
  memset(s, 0, sizeof *s);
  s->overflow = min_u64(fields + (u ? u->overflow : 0), dyn);
  s->moved = dyn - s->overflow;
  if (s->overflow)
    s->ovf_tick = overflow_tick_bytes(in->schema->record_size, fields, strings, s->overflow);
  s->now = g->dyn_bytes;
  s->then = muldiv(s->moved, (uint64_t)in->schema->record_size * SLOTTED_OVERHEAD_PCT, 100) +
            s->overflow * s->ovf_tick;
  s->saved = s->now > s->then ? to_i64(s->now - s->then) : 0;
}

static void write_use_slotted(struct out *o, const struct tks_advice_input *in,
                              const struct figures *g) {
  struct use_slotted u;
  use_slotted_of(in, g, &u);
  uint64_t dyn = in->repr.dynamic_ticks;
  uint64_t d = tenths(g->dyn_bytes, dyn);
  uint64_t sl = ((uint64_t)in->schema->record_size * SLOTTED_OVERHEAD_PCT + 5) / 10;
  const char *mode = tks_mode_name(u.overflow ? TKS_MODE_FALLBACK : TKS_MODE_SLOTTED);
  struct text t = {.n = 0};
  say(&t, "all %" PRIu64 " ticks are held as dynamic objects at %s bytes per tick; ", dyn,
      fmt_tenths(d).s);
  if (u.moved == 0) {
    say(&t, "all carry undeclared fields, and in fallback mode they would take about %" PRIu64
            " bytes each as slotted records plus overflow maps",
        u.ovf_tick);
  } else {
    if (u.overflow)
      say(&t, "in fallback mode the %" PRIu64 " that carry no undeclared field would take", u.moved);
    else
      say(&t, "in slotted mode they would take");
    say(&t, " at most %s bytes per tick (the %u-byte record plus block overhead, less packed)",
        fmt_tenths(sl).s, in->schema->record_size);
    if (u.overflow)
      say(&t, " and the other %" PRIu64 " about %" PRIu64
              " bytes each as slotted records plus overflow maps",
          u.overflow, u.ovf_tick);
  }
  say(&t, ": %s less; set store.mode: %s", fmt_size((uint64_t)u.saved).s, mode);
  put_begin(o, "use_slotted", &t);
  put_str(o, "mode", mode);
  put_u64(o, "ticks", dyn);
  put_u64(o, "ticks_slotted", u.moved);
  put_u64(o, "ticks_overflow", u.overflow);
  put_tenths(o, "dynamic_bytes_per_tick", d);
  put_tenths(o, "slotted_bytes_per_tick", sl);
  put_u64(o, "overflow_bytes_per_tick", u.ovf_tick);
  put_u64(o, "record_size", in->schema->record_size);
  put_u64(o, "dynamic_bytes", u.now);
  put_u64(o, "new_bytes", u.then);
  put_i64(o, "saved_bytes", u.saved);
  put_end(o);
}

/* Fallback mode: the ticks with undeclared fields against their memory. */
static void write_overflow_share(struct out *o, const struct tks_advice_input *in,
                                 const struct figures *g) {
  uint64_t n = in->repr.overflow_ticks;
  uint64_t tp = pct10(n, g->stored), bp = pct10(g->ovf_bytes, g->store_bytes);
  struct text t = {.n = 0};
  say(&t,
      "ticks with undeclared fields are %s%% of ticks (%" PRIu64 " of %" PRIu64 ") but %s%% of"
      " store memory (%s of %s, slotted records plus overflow maps)",
      fmt_tenths(tp).s, n, g->stored, fmt_tenths(bp).s, fmt_size(g->ovf_bytes).s,
      fmt_size(g->store_bytes).s);
  put_begin(o, "overflow_share", &t);
  put_u64(o, "overflow_ticks", n);
  put_u64(o, "ticks", g->stored);
  put_tenths(o, "ticks_pct", tp);
  put_u64(o, "overflow_bytes", g->ovf_bytes);
  put_u64(o, "store_bytes", g->store_bytes);
  put_tenths(o, "bytes_pct", bp);
  put_end(o);
}

static void write_untracked(struct out *o, const struct tks_advice_input *in) {
  struct text t = {.n = 0};
  say(&t, "%" PRIu64 " ticks carried undeclared field names beyond the %d the usage table tracks; "
          "those names are not in this advice",
      in->usage->overflow, TKS_USAGE_MAX_NAMES);
  put_begin(o, "untracked_fields", &t);
  put_u64(o, "ticks", in->usage->overflow);
  put_u64(o, "names_tracked", TKS_USAGE_MAX_NAMES);
  put_end(o);
}

static void write_none(struct out *o, const struct tks_advice_input *in, const struct figures *g) {
  struct text t = {.n = 0};
  uint64_t per_tick = tenths(g->store_bytes, g->stored);
  uint64_t ovf = in->repr.overflow_ticks, dyn = in->repr.dynamic_ticks;
  if (g->stored == 0) {
    say(&t, "nothing to change: 0 ticks stored");
  } else {
    say(&t, "nothing to change: %" PRIu64 " ticks, ", g->stored);
    if (ovf == 0 && dyn == 0) say(&t, "all slotted");
    if (ovf) say(&t, "%" PRIu64 " of them with overflow maps", ovf);
    if (ovf && dyn) say(&t, " and ");
    if (dyn) say(&t, "%" PRIu64 " of them dynamic objects", dyn);
    say(&t, ", %s bytes per tick", fmt_tenths(per_tick).s);
  }
  put_begin(o, "none", &t);
  put_u64(o, "ticks", g->stored);
  put_u64(o, "overflow_ticks", ovf);
  put_u64(o, "dynamic_ticks", dyn);
  put_u64(o, "store_bytes", g->store_bytes);
  put_tenths(o, "bytes_per_tick", per_tick);
  put_end(o);
}

/* ---- ordering ---- */

enum line_kind { L_FIELD, L_USE_FALLBACK, L_USE_SLOTTED, L_OVERFLOW_SHARE, L_UNTRACKED };

/* group 0: ticks being lost, by count; 1: bytes saved; 2: for information. */
struct line {
  uint8_t kind;
  uint8_t group;
  uint16_t field;
  uint32_t seq;
  uint64_t key;
};

static int line_cmp(const void *a, const void *b) {
  const struct line *x = a, *y = b;
  if (x->group != y->group) return x->group < y->group ? -1 : 1;
  if (x->key != y->key) return x->key > y->key ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void add_line(struct line *lines, unsigned *n, enum line_kind kind, unsigned group,
                     unsigned field, uint64_t key) {
  lines[*n] = (struct line){(uint8_t)kind, (uint8_t)group, (uint16_t)field, *n, key};
  (*n)++;
}

int tks_advice(const struct tks_advice_input *in, struct tks_buf *out) {
  struct figures g;
  figures_of(in, &g);
  const struct tks_usage *u = in->usage;
  struct line lines[TKS_USAGE_MAX_NAMES + 4];
  unsigned n = 0;
  struct plan p;

  if (g.slotted && in->rejected_unknown_field > 0)
    add_line(lines, &n, L_USE_FALLBACK, 0, 0, UINT64_MAX); /* before the fields it names */
  for (unsigned i = 0; u && i < u->count && i < TKS_USAGE_MAX_NAMES; i++) {
    analyse(in, &g, &u->fields[i], &p);
    if (p.count == 0) continue;
    if (g.slotted)
      add_line(lines, &n, L_FIELD, 0, i, p.count); /* by ticks lost */
    else if (p.v == V_DECLARE)
      add_line(lines, &n, L_FIELD, 1, i, (uint64_t)p.saved);
    else
      add_line(lines, &n, L_FIELD, 2, i, u->fields[i].cost_bytes);
  }
  if (in->mode == TKS_MODE_DYNAMIC && in->repr.dynamic_ticks > 0) {
    struct use_slotted us;
    use_slotted_of(in, &g, &us);
    if (us.saved > 0) add_line(lines, &n, L_USE_SLOTTED, 1, 0, (uint64_t)us.saved);
  }
  if (g.fallback && in->repr.overflow_ticks > 0 &&
      pct10(g.ovf_bytes, g.store_bytes) > OVERFLOW_SHARE_PCT * 10) /* as the line shows it */
    add_line(lines, &n, L_OVERFLOW_SHARE, 2, 0, g.ovf_bytes);
  if (u && u->overflow > 0) add_line(lines, &n, L_UNTRACKED, 2, 0, 0);
  qsort(lines, n, sizeof lines[0], line_cmp);

  size_t start = out->len;
  struct out o = {.b = out, .err = 0};
  for (unsigned i = 0; i < n; i++) {
    switch (lines[i].kind) {
    case L_FIELD:
      analyse(in, &g, &u->fields[lines[i].field], &p);
      write_field(&o, in, &g, &p);
      break;
    case L_USE_FALLBACK: write_use_fallback(&o, in, &g); break;
    case L_USE_SLOTTED: write_use_slotted(&o, in, &g); break;
    case L_OVERFLOW_SHARE: write_overflow_share(&o, in, &g); break;
    case L_UNTRACKED: write_untracked(&o, in); break;
    }
  }
  if (n == 0) write_none(&o, in, &g);
  if (o.err) { /* leave out as it was */
    out->len = start;
    if (out->data) out->data[start] = '\0';
    return -ENOMEM;
  }
  return 0;
}

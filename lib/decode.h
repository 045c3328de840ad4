/*
 * The decoder: a zero-copy, zero-allocation reader of the msgpack tick
 * stream (one map or array per tick, no other framing) that checks every
 * length prefix and nesting level against the configured limits before
 * trusting it, then fills a record of the schema's layout, interning symbol
 * and string fields, or describes a dynamic tick field by field.
 */
#ifndef TKS_DECODE_H
#define TKS_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dynobj.h"
#include "schema.h"
#include "value.h"

#define TKS_DECODE_MAX_DEPTH 16

enum tks_reason {
  /* The tick is rejected, the stream goes on. */
  TKS_REASON_UNKNOWN_FIELD,   /* a key the schema does not declare */
  TKS_REASON_MISSING_FIELD,   /* a required field absent (or array too short) */
  TKS_REASON_BAD_TYPE,        /* a value of the wrong msgpack type, or a non-string key */
  TKS_REASON_BAD_VALUE,       /* right type, unusable value (NaN, out of range, empty ticker,
                                 a string not UTF-8, a symbol with a space or control) */
  TKS_REASON_DUPLICATE_FIELD, /* the same key twice */
  TKS_REASON_TOO_MANY_FIELDS, /* a map of over TKS_DYNOBJ_MAX_FIELDS entries, or an array too long */
  TKS_REASON_TOO_MANY_SYMBOLS, /* the symbol table is full */
  TKS_REASON_STORE_FULL,       /* no memory for the record */
  TKS_REASON_JOURNAL_ERROR,    /* journal writes failing and journal.on_error is reject */
  TKS_REASON_BAD_KEY,          /* an undeclared key not valid UTF-8, or with a control character */
  TKS_REASON_SEALING,          /* a late tick older than the cut of the archive seal running */
  TKS_REASON_SINK_FULL,        /* kafka.sink.max_queue_bytes wait for Kafka and on_full is reject */
  /* Protocol errors: the stream cannot go on, the connection is closed. */
  TKS_REASON_TOO_LARGE,  /* a message or length prefix over max_message_bytes */
  TKS_REASON_TOO_DEEP,   /* nesting deeper than TKS_DECODE_MAX_DEPTH */
  TKS_REASON_MALFORMED,  /* bytes that are not msgpack (0xc1, bad ext) */
  TKS_REASON_NOT_A_TICK, /* a top-level value that is not a map or array */
  TKS_REASON__COUNT
};

/* "unknown_field", "missing_field", ... (the stats names). */
const char *tks_reason_name(enum tks_reason r);
/* True for the reasons after which the connection is closed. */
bool tks_reason_is_fatal(enum tks_reason r);

enum tks_decode_status {
  TKS_DECODE_OK,        /* a tick: record filled, *consumed bytes used */
  TKS_DECODE_NEED_MORE, /* the buffer ends inside a message; nothing consumed */
  TKS_DECODE_REJECT,    /* a whole message that is not an acceptable tick: skip *consumed */
  TKS_DECODE_ERROR,     /* protocol error: close the stream */
  TKS_DECODE_DYNAMIC,   /* a tick for a dynamic object: res->dyn filled */
};

struct tks_symtab;

/* One field of a decoded tick bound for a dynamic object. */
struct tks_dyn_field {
  uint32_t name;   /* id in the field-name table */
  int field;       /* the schema field, or -1 for an undeclared one */
  const char *key; /* the name as sent (points into the input) */
  uint32_t key_len;
  struct tks_value value; /* STR bytes point into the input; declared
                             symbol and string fields are SYM and ISTR */
};

/* A decoded tick bound for a dynamic object (filled by tks_decode). */
struct tks_dyn_tick {
  uint32_t symbol; /* series key */
  int64_t ts;
  unsigned n;      /* fields */
  unsigned undeclared;
  size_t string_bytes; /* of STR values */
  struct tks_dyn_field f[TKS_DYNOBJ_MAX_FIELDS + 1]; /* + a receive-time ts */
};

struct tks_decoder {
  const struct tks_schema *schema;
  struct tks_symtab *symbols; /* for TKS_TYPE_SYMBOL fields */
  struct tks_symtab *strings; /* for TKS_TYPE_STRING fields */
  size_t max_message_bytes;
  enum tks_mode mode;         /* TKS_MODE_SLOTTED unless set */
  struct tks_symtab *names;   /* field names of dynamic ticks (not slotted mode) */
  size_t max_object_bytes;    /* a dynamic object (or overflow map) larger is bad_value;
                                 0: no limit.  The daemon's slab page size. */
  bool check_only;            /* check the tick, intern nothing: for a tick refused anyway */
  bool verbatim;              /* tks_shape_decode() tells res->verbatim (else leaves
                                 it as it was): a few instructions a tick, for subscribers */
};

struct tks_decode_result {
  size_t consumed;
  enum tks_reason reason;  /* for REJECT and ERROR */
  int field;               /* schema field concerned, or -1 */
  char detail[64];         /* e.g. the unknown key: cut at a character, bytes not UTF-8
                              and control characters as \xHH (tks_utf8_escape) */
  bool has_ts;             /* the tick carried its own ts */
  /* On OK: buf[0..consumed) says exactly what the record holds, as a map
   * naming every declared field with the values of the record's types (any
   * integer width, floats as float64, no nil), so a subscriber may be sent
   * these bytes instead of the record rendered (the key order and integer
   * widths are the producer's).  Only the shape cache's fast path
   * (lib/shape.h) finds it, where d->verbatim asks (without, it is left as
   * it was); tks_decode() sets it false. */
  bool verbatim;
  struct tks_dyn_tick *dyn; /* set by the caller outside slotted mode: where a
                               dynamic tick is described */
};

/*
 * Decodes the first message of buf[0..len).  On OK the record (the schema's
 * record_size bytes) is filled; a tick without ts gets now_ns.  Outside
 * slotted mode (d->mode), a tick with undeclared fields (fallback), or every
 * tick (dynamic), yields DYNAMIC instead: res->dyn lists every field with
 * its name id and value (strings point into buf), declared fields checked
 * as in slotted mode, and a receive-time ts added when it had none.  Symbols
 * and names are interned only once the whole tick is known to be valid, so
 * a rejected tick adds nothing to the tables (one exception: when a table
 * fills up part way through a tick's strings, too_many_symbols, the strings
 * interned before stay).  Valid means, beside the schema's types: every
 * string value well-formed UTF-8 (else bad_value), a symbol field's value
 * without spaces or control characters (bad_value), an undeclared key
 * well-formed UTF-8 without control characters (bad_key), and a dynamic
 * object within d->max_object_bytes (bad_value).  With d->check_only
 * nothing is interned (ids and names are left unset): the answer only.
 */
enum tks_decode_status tks_decode(const struct tks_decoder *d, const uint8_t *buf, size_t len,
                                  int64_t now_ns, void *record, struct tks_decode_result *res);

/*
 * Length of the first msgpack object in buf, checking structure only:
 * returns > 0, 0 if more bytes are needed, or -(1 + reason) on a protocol
 * error (TOO_LARGE, TOO_DEEP, MALFORMED).
 */
long tks_msgpack_skip(const uint8_t *buf, size_t len, size_t max_bytes);

/*
 * The symbol (the schema's symbol_field, the series key) of the one tick
 * in buf[0..len): in a map the value of that field's key, in an array the
 * element at its index, found as tks_decode finds it, without checking
 * the rest.  0 with *sym (into buf) and *sym_len, or -EINVAL: not a map or
 * an array, no such field, a value that is not a string, bytes cut short.
 * For ticks already accepted (the Kafka sink's key).
 */
int tks_decode_symbol(const struct tks_schema *s, const uint8_t *buf, size_t len, const char **sym,
                      uint32_t *sym_len);

#endif

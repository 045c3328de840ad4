/*
 * The shape cache: a fast path in front of tks_decode() for the ticks one
 * connection keeps sending, the same keys in the same order (the idea of
 * CPython's key-sharing dictionaries).  It learns the key sequence of an
 * accepted tick; a later tick whose keys are those bytes again has its values
 * read straight into the fields they name, with no key lookup, no duplicate
 * check and no per-value dispatch.  Beside it, the ids of the symbols and
 * strings the connection sent recently: a repeated one costs a compare, not
 * a hash and a probe of the table.  Whatever the fast path cannot prove it
 * decodes as tks_decode() would goes to tks_decode(): the answer is the same.
 */
#ifndef TKS_SHAPE_H
#define TKS_SHAPE_H

#include <stdbool.h>
#include <stdint.h>

#include "decode.h"
#include "schema.h"

#define TKS_SHAPE_KEY_MAX 36 /* a key's msgpack bytes: a str32 header and a field name */
#define TKS_SHAPE_SYMS 512   /* slots of the recent strings, at most half of them used */

/* One key of the shape: its bytes as sent (none in the array form) and the
 * field it names.  head and mask: the first 8 of them, for one compare. */
struct tks_shape_key {
  uint64_t head, mask;
  uint8_t len;
  uint8_t field;
  uint8_t type;   /* the field's enum tks_type */
  uint8_t offset; /* the field's in the record */
  uint16_t room;  /* bytes the key and its value may take (see fast_decode) */
  uint8_t bytes[TKS_SHAPE_KEY_MAX];
};

/* A string checked as tks_decode() checks a value of its kind, and its id. */
struct tks_shape_sym {
  uint64_t head; /* its first 8 bytes, zeros past its end */
  uint32_t id;
  uint32_t key; /* length | kind << 16 (kind 0 a symbol field's, d->symbols; 1 a
                   string field's, d->strings); 0: a free slot (the empty string
                   is never kept) */
};

/* Per connection; all zeros (or tks_shape_init) is empty.  About 10 KiB. */
struct tks_shape_cache {
  const struct tks_schema *schema; /* the shape's; NULL: none learned */
  uint8_t hdr[5];                  /* the map or array header as sent */
  uint8_t hdr_len;
  uint8_t n;              /* keys (array form: values) */
  uint8_t misses;         /* accepted ticks of another shape since the last hit */
  bool full;              /* the keys fill every byte of the record: no template */
  bool verbatim;          /* a map naming every declared field: a tick of it with
                             floats as float64 and no nil is res->verbatim */
  bool long_keys;         /* a key over 8 bytes */
  uint32_t mask;          /* the fields the keys name */
  uint32_t string_fields; /* the schema's fields of type string */
  uint32_t room;          /* the most bytes a tick of the shape may take, + 8 */
  uint32_t strs;          /* the symbol and string fields the keys name */
  uint32_t ts_mask;       /* the timestamp field's bit, if the keys name it */
  struct tks_shape_key keys[TKS_SCHEMA_MAX_FIELDS];
  /* The record with every field absent: defaults, ts left 0. */
  _Alignas(8) unsigned char tmpl[TKS_RECORD_MAX];
  /* Recent strings (open addressing), valid while both tables keep their
   * generation (tks_symtab_generation); emptied when half full. */
  const struct tks_symtab *tables[2];
  uint64_t generations[2];
  unsigned nsyms;
  struct tks_shape_sym syms[TKS_SHAPE_SYMS];
  uint64_t hits, fallbacks; /* ticks the fast path decoded; ticks it left */
};

void tks_shape_init(struct tks_shape_cache *c);

/*
 * tks_decode(d, buf, len, now_ns, record, res) with c as its memory: the same
 * status, record, res (consumed, reason, field, detail, has_ts, res->dyn) and
 * the same ids interned in the same order, for any bytes.  A tick of the
 * learned shape with values of the common encodings (ints, float32/64,
 * bools, fixstr and str8, nil) is decoded here; any other goes to
 * tks_decode(), and an accepted one of another shape is learned after a few
 * (so two shapes sent in turn do not evict each other).  Ids are cached only
 * while their table's generation stands (tks_symtab_generation): a truncate
 * (tks_server_unintern) drops them.  Dynamic mode always goes to tks_decode.
 */
enum tks_decode_status tks_shape_decode(struct tks_shape_cache *c, const struct tks_decoder *d,
                                        const uint8_t *buf, size_t len, int64_t now_ns,
                                        void *record, struct tks_decode_result *res);

#endif

/*
 * Rendering of stored ticks, for query answers (JSON) and subscriptions and
 * export (msgpack): a slotted record, a
 * dynamic object, or a record with its overflow map, each as one JSON
 * object of its fields.  Every field is read into a struct tks_value
 * (value.h) and printed by one value printer: doubles in their shortest
 * exact form, NaN and Inf as null, symbol and string ids by their text.
 */
#ifndef TKS_RENDER_H
#define TKS_RENDER_H

#include "dynobj.h"
#include "schema.h"
#include "util.h"

struct tks_symtab;

/* Render a decoded record as a JSON object of its fields, in slot order.
 * 0 or -ENOMEM. */
int tks_record_json(const struct tks_schema *schema, const struct tks_symtab *symbols,
                    const struct tks_symtab *strings, const void *record, struct tks_buf *out);

/* Render a dynamic object as a JSON object: the schema's fields it holds
 * first, in slot order, then its other fields in the order of their name
 * ids.  names: the field-name table the object's keys come from.
 * 0 or -ENOMEM. */
int tks_dynobj_json(const struct tks_schema *schema, const struct tks_symtab *names,
                    const struct tks_symtab *symbols, const struct tks_symtab *strings,
                    const struct tks_dynobj *obj, struct tks_buf *out);

/* Render what a store visitor is given (tks_tick_fn): a record, an object,
 * or a record and its overflow map (the map's fields follow the record's).
 * 0 or -ENOMEM. */
int tks_tick_json(const struct tks_schema *schema, const struct tks_symtab *names,
                  const struct tks_symtab *symbols, const struct tks_symtab *strings,
                  const void *record, const struct tks_dynobj *obj, struct tks_buf *out);

/* How the timestamp field is written: ns as a JSON number (the default;
 * JavaScript's JSON.parse and jq round it past 2^53), ISO-8601 in UTC with
 * every ns digit as a string, or the ns as a string of digits. */
enum tks_ts_format { TKS_TS_NS, TKS_TS_ISO, TKS_TS_STRING };
#define TKS_TS_FORMAT_COUNT (TKS_TS_STRING + 1)
extern const char *const tks_ts_format_names[TKS_TS_FORMAT_COUNT]; /* "ns", "iso", "string" */
/* Returns 0 and sets *out, or -EINVAL for another name. */
int tks_ts_format_parse(const char *s, size_t len, enum tks_ts_format *out);
/* Appends a timestamp in format f. 0 or -ENOMEM. */
int tks_ts_json(int64_t ns, enum tks_ts_format f, struct tks_buf *out);

/* A double as JSON: the shortest form that reads back as the same value,
 * and as a float ("2.0", "-0.0"); NaN and Inf are null.  0 or -ENOMEM. */
int tks_json_double(struct tks_buf *out, double x);

/* tks_tick_json with the timestamp field written in format f. */
int tks_tick_json_as(const struct tks_schema *schema, const struct tks_symtab *names,
                     const struct tks_symtab *symbols, const struct tks_symtab *strings,
                     const void *record, const struct tks_dynobj *obj, enum tks_ts_format f,
                     struct tks_buf *out);

/* tks_tick_json's tick as one msgpack map, in the form ingest takes
 * (string keys; ints in their shortest form, ts too; f64 as float64 with
 * NaN and Inf kept; symbols and strings by their text).  0 or -ENOMEM
 * (out as it was). */
int tks_tick_msgpack(const struct tks_schema *schema, const struct tks_symtab *names,
                     const struct tks_symtab *symbols, const struct tks_symtab *strings,
                     const void *record, const struct tks_dynobj *obj, struct tks_buf *out);

/* CSV: the schema's field names as a header line, and a tick as a row of
 * its declared fields in slot order (an absent one empty; a tick's
 * undeclared fields are left out), ts in format f (iso and string
 * unquoted), text quoted only when it holds a comma, quote or line break.
 * 0 or -ENOMEM (out as it was). */
int tks_schema_csv_header(const struct tks_schema *schema, struct tks_buf *out);
/* n bytes of text as a CSV field: as they are, or in double quotes (a
 * quote doubled) when they hold a comma, quote or line break. */
int tks_csv_text(struct tks_buf *b, const char *s, size_t n);
int tks_tick_csv(const struct tks_schema *schema, const struct tks_symtab *names,
                 const struct tks_symtab *symbols, const struct tks_symtab *strings,
                 const void *record, const struct tks_dynobj *obj, enum tks_ts_format f,
                 struct tks_buf *out);

/* msgpack pieces, appended to b in their shortest form: a map header of n
 * entries, a str, an int.  0 or -ENOMEM. */
int tks_msgpack_map_header(struct tks_buf *b, uint32_t n);
int tks_msgpack_str(struct tks_buf *b, const char *s, size_t n);
int tks_msgpack_uint(struct tks_buf *b, uint64_t u);
int tks_msgpack_int(struct tks_buf *b, int64_t i);

#endif

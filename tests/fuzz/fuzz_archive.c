/*
 * libFuzzer target: the day archive's reader (lib/archive.c) on the input,
 * layer by layer.  The first byte chooses:
 *   bits 0-1  0  the rest is a decompressed index (of 2026-11-25, part 1);
 *             1  the rest is a decompressed block payload, written under
 *                schema (bit 2) and read through schema (bit 3);
 *             2  the rest is a whole part file, CRCs as they are;
 *             3  the same with every CRC made to match first
 *                (tks_archive_fix_crcs), so zstd frames and lengths are
 *                what is tested;
 *   bit 2     the schema a block was written with: MarketEvent or the wide
 *             one of fuzz.h (a part names its own: for a part, bit 2 is
 *             the schema ticks are converted to);
 *   bit 3     the schema a block's ticks are converted to.
 * Checked: every layer answers 0 or -EBADMSG (-E2BIG for an object of more
 * fields than a dynamic object holds), never crashes, leaks or reads out of
 * bounds; every tick handed out renders as JSON and holds the block's
 * symbol where it holds the symbol field; the counts agree with the ticks
 * visited.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "archive-internal.h"
#include "fuzz.h"
#include "render.h"
#include "symtab.h"

struct ctx {
  const struct tks_schema *schema;
  struct tks_symtab *symbols, *strings, *names;
  bool check_symbol; /* every record is of symbol "SYM" */
  struct tks_buf out;
  uint64_t ticks;
};

static int visit(void *arg, const void *record, const struct tks_dynobj *obj) {
  struct ctx *c = arg;
  FUZZ_CHECK(record || obj, "a tick with neither record nor object");
  c->out.len = 0;
  FUZZ_CHECK(tks_tick_json(c->schema, c->names, c->symbols, c->strings, record, obj, &c->out) == 0,
             "render failed");
  if (record && c->check_symbol) {
    uint32_t id;
    memcpy(&id, (const char *)record + c->schema->fields[c->schema->symbol_field].offset, 4);
    size_t len;
    const char *s = tks_symtab_name(c->symbols, id, &len);
    FUZZ_CHECK(s && len == 3 && memcmp(s, "SYM", 3) == 0, "a record of another symbol");
  }
  c->ticks++;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t how = data[0];
  data++, size--;
  static int32_t day;
  if (!day) tks_archive_day_parse("2026-11-25", 10, &day);
  bool part = (how & 3) >= 2;
  struct ctx c = {.schema = fuzz_schema(part ? how >> 2 & 1 : how >> 3 & 1), .check_symbol = !part};
  c.symbols = tks_symtab_create(0);
  c.strings = tks_symtab_create(0);
  c.names = tks_symtab_create(0);
  FUZZ_CHECK(c.symbols && c.strings && c.names, "out of memory");
  struct tks_archive_view v = {c.schema, c.symbols, c.strings, c.names};
  char err[256] = "";
  uint64_t ticks = 0;
  int rc = 0;
  switch (how & 3) {
  case 0:
    rc = tks_archive_check_index(data, size, day, 1, 1u << 30, &ticks, err, sizeof err);
    break;
  case 1:
    rc = tks_archive_check_block(fuzz_schema(how >> 2 & 1), data, size, 0, "SYM", 3, &v, visit, &c,
                                 &ticks, err, sizeof err);
    break;
  case 2:
  case 3: {
    uint8_t *fixed = NULL;
    size_t flen = size;
    const uint8_t *file = data;
    if ((how & 3) == 3 && tks_archive_fix_crcs(data, size, &fixed, &flen) == 0) file = fixed;
    rc = tks_archive_check_part(file, flen, day, 1, &v, visit, &c, &ticks, err, sizeof err);
    free(fixed);
    break;
  }
  }
  FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -E2BIG, "answer %d (%s)", rc, err);
  FUZZ_CHECK(rc == 0 || err[0], "an error without a message");
  if ((how & 3) && rc == 0)
    FUZZ_CHECK(ticks == c.ticks, "%llu ticks, %llu visited", (unsigned long long)ticks,
               (unsigned long long)c.ticks);
  tks_buf_finish(&c.out);
  tks_symtab_destroy(c.symbols);
  tks_symtab_destroy(c.strings);
  tks_symtab_destroy(c.names);
  return 0;
}

/*
 * libFuzzer target: tks_config_parse() on the input as a file named
 * "fuzz.yaml".  Checked: an error names the file and leaves the defaults;
 * a config that parses has every number of the key table in its range and
 * a schema that is laid out (a ts and a symbol field, a record that fits),
 * and every key formats, compares and diffs against the defaults.
 */
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

static struct tks_config c, dflt;

static uint64_t key_uint(const struct tks_config_key *k, const struct tks_config *cfg) {
  const char *at = (const char *)cfg + k->off;
  if (k->size == 4) {
    uint32_t v;
    memcpy(&v, at, 4);
    return v;
  }
  uint64_t v;
  memcpy(&v, at, 8);
  return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) tks_config_defaults(&dflt), ready = 1;
  char err[512];
  int r = tks_config_parse(&c, (const char *)data, size, "fuzz.yaml", err, sizeof err);
  size_t n;
  const struct tks_config_key *keys = tks_config_keys(&n);
  if (r != 0) {
    FUZZ_CHECK(r < 0, "returned %d", r);
    FUZZ_CHECK(strncmp(err, "fuzz.yaml", 9) == 0, "error not naming the file: %s", err);
    for (size_t i = 0; i < n; i++)
      FUZZ_CHECK(tks_config_key_equal(&keys[i], &c, &dflt), "%s not the default after: %s",
                 keys[i].name, err);
    return 0;
  }
  const struct tks_schema *s = &c.schema;
  FUZZ_CHECK(s->nfields >= 1 && s->nfields <= TKS_SCHEMA_MAX_FIELDS, "%u fields", s->nfields);
  FUZZ_CHECK(s->record_size <= TKS_RECORD_MAX, "record of %u bytes", s->record_size);
  FUZZ_CHECK(s->symbol_field >= 0 && s->symbol_field < (int)s->nfields, "symbol field %d",
             s->symbol_field);
  FUZZ_CHECK(s->ts_field >= 0 && s->ts_field < (int)s->nfields, "ts field %d", s->ts_field);
  for (unsigned i = 0; i < s->nfields; i++) {
    const struct tks_field *f = &s->fields[i];
    FUZZ_CHECK(f->name_len > 0 && f->name_len < TKS_FIELD_NAME_MAX &&
                   strlen(f->name) == f->name_len,
               "field %u name", i);
    FUZZ_CHECK(f->offset + f->size <= s->record_size, "field %s out of the record", f->name);
    FUZZ_CHECK(tks_schema_find(s, f->name, f->name_len) == (int)i, "field %s not found", f->name);
  }
  for (size_t i = 0; i < n; i++) {
    const struct tks_config_key *k = &keys[i];
    if (k->type == TKS_CONFIG_UINT || k->type == TKS_CONFIG_SIZE ||
        k->type == TKS_CONFIG_DURATION) {
      uint64_t v = key_uint(k, &c);
      FUZZ_CHECK(v >= k->min && v <= k->max, "%s = %llu outside %llu..%llu", k->name,
                 (unsigned long long)v, (unsigned long long)k->min, (unsigned long long)k->max);
    }
    char buf[TKS_CONFIG_VALUE_MAX], diff[2 * TKS_CONFIG_VALUE_MAX];
    tks_config_key_format(k, &c, buf, sizeof buf);
    FUZZ_CHECK(strlen(buf) < sizeof buf, "%s", k->name);
    tks_config_key_diff(k, &dflt, &c, diff, sizeof diff);
    FUZZ_CHECK(tks_config_key_equal(k, &c, &c), "%s not equal to itself", k->name);
  }
  return 0;
}

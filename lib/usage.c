/*
 * Undeclared-field usage table: a small array searched linearly (at most
 * TKS_USAGE_MAX_NAMES names, touched only for ticks that carry undeclared
 * fields); and the value types it counts, with their names for the stats
 * and the advice.
 */
#include "usage.h"

#include <string.h>

#include "util.h"

/* Indexed by bit number: TKS_USAGE_NIL is bit 0. */
static const char *const type_names[] = {"nil", "bool", "int", "float", "string"};

const char *tks_usage_type_name(unsigned bit) {
  for (unsigned b = 0; b < TKS_ARRAY_SIZE(type_names); b++)
    if (bit == 1u << b) return type_names[b];
  return "?";
}

char *tks_usage_types_text(unsigned types, char *buf, size_t len) {
  if (len == 0) return buf;
  size_t n = 0;
  buf[0] = '\0';
  for (unsigned b = 0; b < TKS_ARRAY_SIZE(type_names); b++) {
    if (!(types & (1u << b))) continue;
    size_t sep = n > 0, name = strlen(type_names[b]);
    if (n + sep + name >= len) break;
    if (sep) buf[n++] = ',';
    memcpy(buf + n, type_names[b], name + 1);
    n += name;
  }
  return buf;
}

void tks_usage_init(struct tks_usage *u) { memset(u, 0, sizeof *u); }

struct tks_usage_field *tks_usage_get(struct tks_usage *u, const char *name, size_t len) {
  if (len >= sizeof u->fields[0].name) {
    len = sizeof u->fields[0].name - 1;
    while (len > 0 && ((unsigned char)name[len] & 0xc0) == 0x80) len--; /* at a character */
  }
  for (unsigned i = 0; i < u->count; i++)
    if (strncmp(u->fields[i].name, name, len) == 0 && u->fields[i].name[len] == '\0')
      return &u->fields[i];
  if (u->count == TKS_USAGE_MAX_NAMES) return NULL;
  struct tks_usage_field *f = &u->fields[u->count++];
  memset(f, 0, sizeof *f);
  memcpy(f->name, name, len);
  f->name[len] = '\0';
  return f;
}

const struct tks_usage_field *tks_usage_find(const struct tks_usage *u, const char *name) {
  for (unsigned i = 0; i < u->count; i++)
    if (strcmp(u->fields[i].name, name) == 0) return &u->fields[i];
  return NULL;
}

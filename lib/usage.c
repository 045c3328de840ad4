/*
 * Undeclared-field usage table: a small array searched linearly (at most
 * TKS_USAGE_MAX_NAMES names, touched only for ticks that carry undeclared
 * fields).
 */
#include "usage.h"

#include <string.h>

void tks_usage_init(struct tks_usage *u) { memset(u, 0, sizeof *u); }

struct tks_usage_field *tks_usage_get(struct tks_usage *u, const char *name, size_t len) {
  if (len >= sizeof u->fields[0].name) len = sizeof u->fields[0].name - 1;
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

/* store: work in progress */
#include "store.h"

#include <errno.h>
#include <string.h>

static const char *const mode_names[] = {"slotted", "dynamic", "fallback"};

const char *tks_mode_name(enum tks_mode m) {
  return (unsigned)m < 3 ? mode_names[m] : "?";
}

int tks_mode_parse(const char *s, enum tks_mode *out) {
  for (unsigned i = 0; i < 3; i++)
    if (strcmp(s, mode_names[i]) == 0) {
      *out = (enum tks_mode)i;
      return 0;
    }
  return -EINVAL;
}

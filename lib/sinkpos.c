/* The Kafka sink's position file: see sinkpos.h. */
#include "sinkpos.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "journal.h"

#define HEAD "tickslab-sink-position 1 "

size_t tks_sinkpos_format(char out[static TKS_SINKPOS_MAX], uint64_t segment, uint64_t offset) {
  int n = snprintf(out, TKS_SINKPOS_MAX, HEAD "%" PRIu64 " %" PRIu64, segment, offset);
  uint32_t crc = tks_crc32c(0, out, (size_t)n);
  n += snprintf(out + n, TKS_SINKPOS_MAX - (size_t)n, " %08" PRIx32 "\n", crc);
  return (size_t)n;
}

/* A decimal u64 at p[*i], ending at a space: no sign, no leading zero. */
static bool parse_u64(const char *p, size_t len, size_t *i, uint64_t *out) {
  size_t k = *i;
  uint64_t v = 0;
  if (k >= len || p[k] < '0' || p[k] > '9') return false;
  if (p[k] == '0' && k + 1 < len && p[k + 1] >= '0' && p[k + 1] <= '9') return false;
  for (; k < len && p[k] >= '0' && p[k] <= '9'; k++) {
    unsigned d = (unsigned)(p[k] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *i = k;
  *out = v;
  return true;
}

int tks_sinkpos_parse(const void *buf, size_t len, uint64_t *segment, uint64_t *offset) {
  const char *p = buf;
  size_t hl = sizeof HEAD - 1, i = hl;
  uint64_t seg, off;
  if (len > TKS_SINKPOS_MAX || len < hl || memcmp(p, HEAD, hl) != 0) return -EINVAL;
  if (!parse_u64(p, len, &i, &seg) || i >= len || p[i] != ' ') return -EINVAL;
  i++;
  if (!parse_u64(p, len, &i, &off) || i >= len || p[i] != ' ') return -EINVAL;
  size_t body = i++;
  if (len - i != 9 || p[len - 1] != '\n') return -EINVAL;
  uint32_t crc = 0;
  for (size_t k = i; k < i + 8; k++) {
    char c = p[k];
    unsigned d;
    if (c >= '0' && c <= '9')
      d = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = (unsigned)(c - 'a' + 10);
    else
      return -EINVAL;
    crc = crc << 4 | d;
  }
  if (crc != tks_crc32c(0, p, body)) return -EINVAL;
  *segment = seg;
  *offset = off;
  return 0;
}

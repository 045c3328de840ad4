/* Store operations journaled among the ticks: see oprec.h. */
#include "oprec.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "store.h"

bool tks_oprec_is(const void *payload, size_t len) {
  int64_t mark;
  if (len < sizeof mark) return false;
  memcpy(&mark, payload, sizeof mark);
  return mark == TKS_OPREC_MARK;
}

size_t tks_oprec_encode(const struct tks_oprec *r, uint8_t out[static TKS_OPREC_MAX]) {
  int64_t mark = TKS_OPREC_MARK;
  memcpy(out, &mark, 8);
  out[8] = (uint8_t)r->kind;
  switch (r->kind) {
  case TKS_OPREC_EVICT:
    if (r->symbol_len == 0 || r->rep >= TKS_STORE_REPS) return 0;
    out[9] = r->rep;
    out[10] = r->symbol_len;
    memcpy(out + 11, r->symbol, r->symbol_len);
    memcpy(out + 11 + r->symbol_len, &r->ticks, 8);
    return 11u + r->symbol_len + 8;
  case TKS_OPREC_SEAL_BEGIN:
    memcpy(out + 9, &r->seal, 8);
    memcpy(out + 17, &r->cut, 8);
    return 25;
  case TKS_OPREC_SEAL_COMMIT:
  case TKS_OPREC_SEAL_ABORT: memcpy(out + 9, &r->seal, 8); return 17;
  case TKS_OPREC_PRODUCER:
    if (r->producer_len == 0 || r->producer_len > TKS_OPREC_PRODUCER_MAX) return 0;
    out[9] = r->producer_len;
    memcpy(out + 10, r->producer, r->producer_len);
    memcpy(out + 10 + r->producer_len, &r->position, 8);
    return 18u + r->producer_len;
  }
  return 0;
}

int tks_oprec_parse(const void *payload, size_t len, struct tks_oprec *out) {
  const uint8_t *p = payload;
  if (!tks_oprec_is(payload, len) || len < 9) return -EINVAL;
  memset(out, 0, sizeof *out);
  out->kind = (enum tks_oprec_kind)p[8];
  switch (p[8]) {
  case TKS_OPREC_EVICT:
    if (len < 11 || p[9] >= TKS_STORE_REPS || p[10] == 0 || len != 11u + p[10] + 8) return -EINVAL;
    out->rep = p[9];
    out->symbol_len = p[10];
    out->symbol = (const char *)p + 11;
    memcpy(&out->ticks, p + 11 + p[10], 8);
    return 0;
  case TKS_OPREC_SEAL_BEGIN:
    if (len != 25) return -EINVAL;
    memcpy(&out->seal, p + 9, 8);
    memcpy(&out->cut, p + 17, 8);
    return 0;
  case TKS_OPREC_SEAL_COMMIT:
  case TKS_OPREC_SEAL_ABORT:
    if (len != 17) return -EINVAL;
    memcpy(&out->seal, p + 9, 8);
    return 0;
  case TKS_OPREC_PRODUCER: {
    if (len < 10 || p[9] == 0 || p[9] > TKS_OPREC_PRODUCER_MAX) return -EINVAL;
    size_t head = 18u + p[9];
    if (len < head || (len > head && len < head + 8)) return -EINVAL;
    out->producer_len = p[9];
    out->producer = (const char *)p + 10;
    memcpy(&out->position, p + 10 + p[9], 8);
    if (len > head) {
      out->has_ticks = true;
      memcpy(&out->recv_ns, p + head, 8);
      out->data = p + head + 8;
      out->data_len = len - head - 8;
    }
    return 0;
  }
  }
  return -EINVAL;
}

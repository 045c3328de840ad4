/*
 * Unit tests of lib/sinkpos.c, the Kafka sink's position file: a line
 * formatted parses back to its numbers (0, large, UINT64_MAX); every
 * truncation, every flipped byte, a trailing byte, leading zeros, signs,
 * overflow and random bytes are refused.  Each input sits in a heap buffer
 * of exactly its length (a read past it is an ASan error).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "sinkpos.h"
#include "test.h"

static int parse_exact(const void *p, size_t n, uint64_t *s, uint64_t *o) {
  uint8_t *b = malloc(n ? n : 1);
  ASSERT(b);
  if (n) memcpy(b, p, n);
  int r = tks_sinkpos_parse(b, n, s, o);
  free(b);
  return r;
}

/* The line with a right CRC for the text before it. */
static size_t with_crc(char *out, const char *body) {
  uint32_t crc = tks_crc32c(0, body, strlen(body));
  return (size_t)snprintf(out, 200, "%s %08x\n", body, crc);
}

TEST(a_formatted_position_parses_back_to_its_numbers) {
  const uint64_t cases[][2] = {{0, 0}, {1, 16}, {123456789, 987654321}, {UINT64_MAX, UINT64_MAX}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char line[TKS_SINKPOS_MAX];
    size_t n = tks_sinkpos_format(line, cases[k][0], cases[k][1]);
    ASSERT(n < TKS_SINKPOS_MAX);
    ASSERT_EQ(line[n - 1], '\n');
    uint64_t s = 7, o = 7;
    ASSERT_EQ(parse_exact(line, n, &s, &o), 0);
    ASSERT_U64_EQ(s, cases[k][0]);
    ASSERT_U64_EQ(o, cases[k][1]);
  }
  char line[TKS_SINKPOS_MAX];
  size_t n = tks_sinkpos_format(line, 3, 4096);
  ASSERT_EQ(strncmp(line, "tickslab-sink-position 1 3 4096 ", 32), 0);
  ASSERT_U64_EQ(n, 32 + 9);
}

TEST(every_truncation_and_every_flipped_byte_is_refused) {
  char line[TKS_SINKPOS_MAX];
  size_t n = tks_sinkpos_format(line, 42, 123456);
  uint64_t s = 0, o = 0;
  for (size_t cut = 0; cut < n; cut++) ASSERT_EQ(parse_exact(line, cut, &s, &o), -EINVAL);
  for (size_t i = 0; i < n; i++)
    for (int bit = 0; bit < 8; bit++) {
      char b[TKS_SINKPOS_MAX];
      memcpy(b, line, n);
      b[i] ^= (char)(1 << bit);
      ASSERT_EQ(parse_exact(b, n, &s, &o), -EINVAL);
    }
  char longer[TKS_SINKPOS_MAX + 1];
  memcpy(longer, line, n);
  longer[n] = '\n';
  ASSERT_EQ(parse_exact(longer, n + 1, &s, &o), -EINVAL);
}

TEST(signs_leading_zeros_overflow_and_garbage_are_refused_even_with_a_right_crc) {
  const char *bodies[] = {
      "tickslab-sink-position 1 01 16",
      "tickslab-sink-position 1 -1 16",
      "tickslab-sink-position 1 +1 16",
      "tickslab-sink-position 1 1  16",
      "tickslab-sink-position 1 18446744073709551616 16",
      "tickslab-sink-position 1 1 99999999999999999999",
      "tickslab-sink-position 2 1 16",
      "tickslab-sink-position 1 1",
      "tickslab-sink-position 1 1 16 5",
      "tickslab-sink-position 1 1 0x10",
  };
  uint64_t s, o;
  for (size_t k = 0; k < sizeof bodies / sizeof bodies[0]; k++) {
    char line[200];
    size_t n = with_crc(line, bodies[k]);
    if (parse_exact(line, n, &s, &o) != -EINVAL) TEST_FAIL("taken: %s", bodies[k]);
  }
  char line[200];
  size_t n = with_crc(line, "tickslab-sink-position 1 0 16");
  ASSERT_EQ(parse_exact(line, n, &s, &o), 0);
  /* An uppercase CRC is not the format. */
  for (size_t i = n - 9; i < n - 1; i++)
    if (line[i] >= 'a') line[i] = (char)(line[i] - 'a' + 'A');
  if (strpbrk(line + n - 9, "ABCDEF")) ASSERT_EQ(parse_exact(line, n, &s, &o), -EINVAL);
  uint64_t r = 99;
  for (int k = 0; k < 20000; k++) {
    uint8_t junk[TKS_SINKPOS_MAX];
    size_t jl = (size_t)(k % (TKS_SINKPOS_MAX + 1));
    for (size_t i = 0; i < jl; i++) {
      r = r * 6364136223846793005ull + 1442695040888963407ull;
      junk[i] = (uint8_t)(r >> 56);
    }
    ASSERT_EQ(parse_exact(junk, jl, &s, &o), -EINVAL);
  }
}

TEST_MAIN()

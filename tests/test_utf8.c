/* Unit tests of lib/utf8.c: the cases of Markus Kuhn's UTF-8 decoder
 * stress test (boundaries, malformed sequences, overlong forms, surrogates),
 * every string length around the 8-byte fast path, and the escaper. */
#include "test.h"
#include "utf8.h"

static unsigned scan(const char *s) { return tks_utf8_scan(s, strlen(s)); }
static int valid(const char *s) { return tks_utf8_valid(s, strlen(s)); }

TEST(plain_ascii_and_the_empty_string_are_clean) {
  ASSERT_EQ(scan(""), 0);
  ASSERT_EQ(scan("AAPL"), 0);
  ASSERT_EQ(scan("BRK.B"), 0);
  ASSERT_EQ(scan("a-very-long-ticker-name-of-many-words"), 0);
  ASSERT_EQ(tks_utf8_scan("\0", 1), TKS_UTF8_CONTROL);
}

TEST(well_formed_characters_of_every_length_are_valid) {
  ASSERT_EQ(scan("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), 0); /* Greek "kosme" */
  ASSERT_EQ(scan("\xc2\xa0"), 0);                                     /* U+00A0 */
  ASSERT_EQ(scan("\xdf\xbf"), 0);                                     /* U+07FF */
  ASSERT_EQ(scan("\xe0\xa0\x80"), 0);                                 /* U+0800 */
  ASSERT_EQ(scan("\xed\x9f\xbf"), 0);                                 /* U+D7FF */
  ASSERT_EQ(scan("\xee\x80\x80"), 0);                                 /* U+E000 */
  ASSERT_EQ(scan("\xef\xbf\xbd"), 0);                                 /* U+FFFD */
  ASSERT_EQ(scan("\xef\xbf\xbf"), 0);                                 /* U+FFFF */
  ASSERT_EQ(scan("\xf0\x90\x80\x80"), 0);                             /* U+10000 */
  ASSERT_EQ(scan("\xf4\x8f\xbf\xbf"), 0);                             /* U+10FFFF */
  ASSERT_EQ(scan("prix\xe2\x82\xac"
                 "_en_euros,8+bytes"),
            0);
}

TEST(control_characters_and_spaces_are_reported) {
  ASSERT_EQ(scan("A B"), TKS_UTF8_SPACE);
  ASSERT_EQ(scan("AB\n"), TKS_UTF8_CONTROL);
  ASSERT_EQ(scan("A\tB"), TKS_UTF8_CONTROL);
  ASSERT_EQ(scan("\x7f"), TKS_UTF8_CONTROL);
  ASSERT_EQ(scan("x\xc2\x85y"), TKS_UTF8_CONTROL); /* U+0085 NEL, a C1 control */
  ASSERT_EQ(scan("\xc2\x9f"), TKS_UTF8_CONTROL);
  ASSERT_EQ(scan("long-enough-words\x1b[31m"), TKS_UTF8_CONTROL);
  ASSERT_EQ(scan("long enough words with spaces"), TKS_UTF8_SPACE);
  ASSERT_EQ(scan("longer than eight\n bytes"), TKS_UTF8_CONTROL | TKS_UTF8_SPACE);
  /* 0x21 and 0x7e are the printable ends. */
  ASSERT_EQ(scan("!!!!!!!!~~~~~~~~"), 0);
}

TEST(a_special_byte_is_found_at_every_position_of_every_length) {
  char buf[40];
  for (size_t n = 1; n < sizeof buf; n++)
    for (size_t at = 0; at < n; at++) {
      memset(buf, 'a', n);
      buf[at] = ' ';
      ASSERT_EQ(tks_utf8_scan(buf, n), TKS_UTF8_SPACE);
      buf[at] = '\x01';
      ASSERT_EQ(tks_utf8_scan(buf, n), TKS_UTF8_CONTROL);
      buf[at] = '\x7f';
      ASSERT_EQ(tks_utf8_scan(buf, n), TKS_UTF8_CONTROL);
      buf[at] = '\xff';
      ASSERT_EQ(tks_utf8_scan(buf, n), TKS_UTF8_INVALID);
      buf[at] = '\x80';
      ASSERT_EQ(tks_utf8_scan(buf, n), TKS_UTF8_INVALID);
      if (at + 1 < n) {
        buf[at] = '\xc3', buf[at + 1] = '\xa9'; /* e acute */
        ASSERT_EQ(tks_utf8_scan(buf, n), 0);
      } else {
        buf[at] = '\xc3'; /* cut in two by the end */
        ASSERT_EQ(tks_utf8_scan(buf, n), TKS_UTF8_INVALID);
      }
    }
}

TEST(lone_and_unexpected_continuation_bytes_are_invalid) {
  ASSERT(!valid("\x80"));
  ASSERT(!valid("\xbf"));
  ASSERT(!valid("\x80\xbf"));
  ASSERT(!valid("ab\x80\xbf\x80"));
  char all[64];
  for (int i = 0; i < 64; i++) all[i] = (char)(0x80 + i);
  ASSERT(!tks_utf8_valid(all, 64));
}

TEST(lead_bytes_followed_by_a_space_are_invalid) {
  char s[3] = {0, ' ', 0};
  for (int c = 0xc0; c <= 0xff; c++) {
    s[0] = (char)c;
    ASSERT(!valid(s));
  }
}

TEST(sequences_with_their_last_byte_missing_are_invalid) {
  ASSERT(!valid("\xc2"));
  ASSERT(!valid("\xe0\xa0"));
  ASSERT(!valid("\xf0\x90\x80"));
  ASSERT(!valid("\xdf"));
  ASSERT(!valid("\xef\xbf"));
  ASSERT(!valid("\xf4\x8f\xbf"));
  /* All ten concatenated (Kuhn 3.4). */
  ASSERT(!valid("\xc0\xe0\x80\xf0\x80\x80\xf8\x80\x80\x80\xfc\x80\x80\x80\x80"
                "\xdf\xef\xbf\xf7\xbf\xbf\xfb\xbf\xbf\xbf\xfd\xbf\xbf\xbf\xbf"));
  ASSERT(!valid("AAPL\xe2\x82"));
}

TEST(impossible_bytes_and_five_or_six_byte_forms_are_invalid) {
  ASSERT(!valid("\xfe"));
  ASSERT(!valid("\xff"));
  ASSERT(!valid("\xfe\xfe\xff\xff"));
  ASSERT(!valid("\xf8\x88\x80\x80\x80"));     /* U+200000 in 5 bytes */
  ASSERT(!valid("\xfc\x84\x80\x80\x80\x80")); /* U+4000000 in 6 bytes */
  ASSERT(!valid("\xf5\x80\x80\x80"));         /* past U+10FFFF */
  ASSERT(!valid("\xf4\x90\x80\x80"));         /* U+110000 */
  ASSERT(!valid("\xf7\xbf\xbf\xbf"));         /* U+1FFFFF */
}

TEST(overlong_forms_are_invalid) {
  ASSERT(!valid("\xc0\xaf")); /* '/' in 2, 3, 4 bytes */
  ASSERT(!valid("\xe0\x80\xaf"));
  ASSERT(!valid("\xf0\x80\x80\xaf"));
  ASSERT(!valid("\xc1\xbf")); /* the largest overlongs */
  ASSERT(!valid("\xe0\x9f\xbf"));
  ASSERT(!valid("\xf0\x8f\xbf\xbf"));
  ASSERT(!valid("\xc0\x80")); /* NUL overlong */
  ASSERT(!valid("\xe0\x80\x80"));
  ASSERT(!valid("\xf0\x80\x80\x80"));
}

TEST(surrogates_single_and_paired_are_invalid) {
  ASSERT(!valid("\xed\xa0\x80")); /* U+D800 */
  ASSERT(!valid("\xed\xad\xbf"));
  ASSERT(!valid("\xed\xae\x80"));
  ASSERT(!valid("\xed\xaf\xbf"));
  ASSERT(!valid("\xed\xb0\x80"));
  ASSERT(!valid("\xed\xbe\x80"));
  ASSERT(!valid("\xed\xbf\xbf"));             /* U+DFFF */
  ASSERT(!valid("\xed\xa0\x80\xed\xb0\x80")); /* U+D800 U+DC00, CESU-8 */
  ASSERT(!valid("\xed\xaf\xbf\xed\xbf\xbf"));
}

TEST(bad_continuation_inside_a_sequence_is_invalid) {
  ASSERT(!valid("\xe2\x28\xa1"));
  ASSERT(!valid("\xe2\x82\x28"));
  ASSERT(!valid("\xf0\x90\x28\xbc"));
  ASSERT(!valid("\xf0\x28\x8c\x28"));
  ASSERT(!valid("\xc3\x28"));
}

TEST(noncharacters_are_valid_utf8) {
  /* U+FFFE, U+FFFF, U+FDD0: well-formed, only "not for interchange". */
  ASSERT(valid("\xef\xbf\xbe"));
  ASSERT(valid("\xef\xb7\x90"));
  ASSERT(valid("\xf4\x8f\xbf\xbe"));
}

TEST(escape_writes_bad_and_control_bytes_as_hex_and_keeps_the_rest) {
  char out[64];
  ASSERT_EQ(tks_utf8_escape(out, sizeof out, "BAD\xff\xfe", 5), 11);
  ASSERT_STR_EQ(out, "BAD\\xff\\xfe");
  tks_utf8_escape(out, sizeof out, "a\nb\tc\x7f", 6);
  ASSERT_STR_EQ(out, "a\\x0ab\\x09c\\x7f");
  tks_utf8_escape(out, sizeof out, "caf\xc3\xa9 \\x41", 10);
  ASSERT_STR_EQ(out, "caf\xc3\xa9 \\x41");
  tks_utf8_escape(out, sizeof out, "\xc2\x85", 2); /* C1 control: both bytes */
  ASSERT_STR_EQ(out, "\\xc2\\x85");
  tks_utf8_escape(out, sizeof out, "\xed\xa0\x80", 3); /* a surrogate: byte by byte */
  ASSERT_STR_EQ(out, "\\xed\\xa0\\x80");
  ASSERT_EQ(tks_utf8_escape(out, sizeof out, "", 0), 0);
  ASSERT_STR_EQ(out, "");
}

TEST(escape_never_cuts_a_character_or_an_escape) {
  char out[6];
  ASSERT_EQ(tks_utf8_escape(out, sizeof out, "abcd\xc3\xa9", 6), 4);
  ASSERT_STR_EQ(out, "abcd");
  ASSERT_EQ(tks_utf8_escape(out, sizeof out, "a\xff", 2), 5);
  ASSERT_STR_EQ(out, "a\\xff");
  ASSERT_EQ(tks_utf8_escape(out, sizeof out, "ab\xff", 3), 2);
  ASSERT_STR_EQ(out, "ab");
  /* Whatever it is given, the output is clean. */
  char in[256], big[64];
  for (int i = 0; i < 256; i++) in[i] = (char)(255 - i);
  size_t n = tks_utf8_escape(big, sizeof big, in, sizeof in);
  ASSERT(n < sizeof big);
  ASSERT_EQ(tks_utf8_scan(big, n) & (TKS_UTF8_INVALID | TKS_UTF8_CONTROL), 0);
}

TEST_MAIN()

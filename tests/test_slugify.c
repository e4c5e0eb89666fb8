/*
 * test_slugify.c -- text to slug, no database: one table of cases across
 * scripts and edge cases (empty, symbols only, emoji, over-long, reserved,
 * digits, separators, junk at the ends), then the rules the table cannot
 * show: cuts never mid-character and always leave room for a suffix, the
 * fallback, the reserved list, and the argument checks.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct slug_case {
  const char *text;
  size_t max_length; /* 0: default (50, base at most 43) */
  const char *want;
  int reserved;      /* nodup_slug_is_reserved() with default options */
};

#define LONG_WORDS                                                             \
  "The quick brown fox jumps over the lazy dog and keeps running"

static const struct slug_case cases[] = {
    /* Plain ASCII. */
    {"My Team", 0, "my-team", 0},
    {"my-team", 0, "my-team", 0},
    {"MY TEAM", 0, "my-team", 0},
    {"Hello, World!", 0, "hello-world", 0},
    {"  leading and trailing  ", 0, "leading-and-trailing", 0},
    {"--__..Junk at both ends..__--", 0, "junk-at-both-ends", 0},
    {"mixed_separators.and/slashes\\back|pipe", 0,
     "mixed-separators-and-slashes-back-pipe", 0},
    {"tabs\tnew\nlines\r\nand   spaces", 0, "tabs-new-lines-and-spaces", 0},
    {"a---b___c   d", 0, "a-b-c-d", 0},
    {"Don't stop", 0, "dont-stop", 0},
    {"Don\xe2\x80\x99t stop", 0, "dont-stop", 0},
    {"C++ & C#", 0, "c-c", 0},
    {"rap-metal", 0, "rap-metal", 0},
    {"Version 2.0", 0, "version-2-0", 0},
    /* Latin with diacritics. */
    {"Cr\xc3\xa8me Br\xc3\xbbl\xc3\xa9" "e", 0, "creme-brulee", 0},
    {"\xc5\x81\xc3\xb3\x64\xc5\xba", 0, "lodz", 0},
    {"Stra\xc3\x9f" "e", 0, "strasse", 0},
    {"\xc3\x86sir \xc3\x98resund", 0, "aesir-oresund", 0},
    {"Vi\xe1\xbb\x87t Nam", 0, "viet-nam", 0},
    {"\xc4\xb0stanbul", 0, "istanbul", 0},
    {"e\xcc\x81" "clair", 0, "eclair", 0},  /* e + combining acute */
    {"\xef\xac\x81ne \xef\xbc\xa6\xef\xbd\x95\xef\xbd\x8c\xef\xbd\x8c", 0,
     "fine-full", 0},                    /* ligature, full-width */
    /* Other scripts. */
    {"\xd0\x9c\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0", 0, "moskva", 0},
    {"\xd0\xa3\xd0\xba\xd1\x80\xd0\xb0\xd1\x97\xd0\xbd\xd0\xb0", 0, "ukraina", 0},
    {"\xce\x95\xce\xbb\xce\xbb\xce\xb7\xce\xbd\xce\xb9\xce\xba\xce\xac", 0,
     "ellenika", 0},
    {"\xe6\x9d\xb1\xe4\xba\xac", 0, "dong-jing", 0},         /* 東京 */
    {"\xe4\xb8\xad\xe6\x96\x87 ABC", 0, "zhong-wen-abc", 0},  /* 中文 */
    {"\xe3\x81\x99\xe3\x81\x97", 0, "sushi", 0},             /* すし */
    {"\xe3\x82\xb4\xe3\x82\xb8\xe3\x83\xa9", 0, "gojira", 0}, /* ゴジラ */
    {"\xec\x84\x9c\xec\x9a\xb8", 0, "seoul", 0},             /* 서울 */
    {"\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7", 0, "mrhba", 0},
    {"\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d", 0, "slwm", 0},
    /* Nothing to keep: the fallback. */
    {"", 0, "n-a", 0},
    {"   ", 0, "n-a", 0},
    {"!@#$%^&*()", 0, "n-a", 0},
    {"\xf0\x9f\x98\x80\xf0\x9f\x8e\x89", 0, "n-a", 0},      /* emoji only */
    {"\xf0\x9f\x98\x80 Party \xf0\x9f\x8e\x89", 0, "party", 0},
    {"\xff\xfe invalid \xc3", 0, "invalid", 0},             /* bad UTF-8 */
    /* Reserved words and digits: returned as they are, flagged. */
    {"New", 0, "new", 1},
    {"ADMIN", 0, "admin", 1},
    {"Settings!", 0, "settings", 1},
    {"administrator", 0, "administrator", 0},
    {"2024", 0, "2024", 1},
    {"  007  ", 0, "007", 1},
    {"2010-2015", 0, "2010-2015", 0},
    {"Area 51", 0, "area-51", 0},
    /* Length: max 20 keeps 13 for the base; cut at a separator when that
     * keeps at least half, else hard. */
    {"one two three four", 20, "one-two-three", 0},
    {"one two three four five", 20, "one-two-three", 0},
    {"abcdefghijklmnopqrstuvwxyz", 20, "abcdefghijklm", 0},
    {"a bcdefghijklmnopqrstuvwxyz", 20, "a-bcdefghijkl", 0},
    {"abcdefghijklm nop", 20, "abcdefghijklm", 0},
    {"abcdefghijkl- nop", 20, "abcdefghijkl", 0},
    {LONG_WORDS, 0, "the-quick-brown-fox-jumps-over-the-lazy-dog", 0},
    {LONG_WORDS, 30, "the-quick-brown-fox", 0},
    {"\xc5\x81\xc3\xb3\x64\xc5\xba \xc5\x81\xc3\xb3\x64\xc5\xba \xc5\x81\xc3\xb3"
     "\x64\xc5\xba",
     20, "lodz-lodz", 0},
    {"x", 8, "x", 0},
};

static void test_cases(void **state) {
  (void)state;
  char out[256];
  int failures = 0;
  assert_true(COUNT_OF(cases) >= 40);
  for (size_t i = 0; i < COUNT_OF(cases); i++) {
    nodup_slug_options opt = {0};
    opt.max_length = cases[i].max_length;
    int rc = nodup_slugify(out, sizeof out, cases[i].text, &opt);
    if (rc != NODUP_OK || strcmp(out, cases[i].want) != 0) {
      print_error("case %zu \"%s\": got \"%s\" (rc %d), want \"%s\"\n", i,
                  cases[i].text, out, rc, cases[i].want);
      failures++;
    }
    if (nodup_slug_is_reserved(out, NULL) != cases[i].reserved) {
      print_error("case %zu \"%s\": reserved %d, want %d\n", i, out,
                  !cases[i].reserved, cases[i].reserved);
      failures++;
    }
  }
  if (failures) fail_msg("%d slugify cases failed", failures);
}

/* Every cut, at every length, leaves a slug of whole words where it can,
 * never ends with '-', and leaves NODUP_SLUG_SUFFIX_ROOM free. */
static void test_cut_keeps_suffix_room(void **state) {
  (void)state;
  /* "Ä" is two bytes in UTF-8: a byte cut would split it. */
  const char *text = "\xc3\x84pfel und Birnen und Kirschen \xc3\x84\xc3\x84\xc3\x84";
  char out[128];
  for (size_t max = NODUP_SLUG_SUFFIX_ROOM + 1; max < 60; max++) {
    nodup_slug_options opt = {0};
    opt.max_length = max;
    assert_int_equal(nodup_slugify(out, max + 1, text, &opt), NODUP_OK);
    size_t len = strlen(out);
    assert_true(len >= 1);
    assert_true(len <= max - NODUP_SLUG_SUFFIX_ROOM);
    assert_true(out[len - 1] != '-');
    assert_true(out[0] != '-');
    for (size_t i = 0; i < len; i++)
      assert_true((out[i] >= 'a' && out[i] <= 'z') || (out[i] >= '0' && out[i] <= '9') ||
                  out[i] == '-');
    /* The base of a longer limit starts with the shorter one's words. */
    assert_int_equal(strncmp(out, "apfel-und-birnen-und-kirschen-aaa", len), 0);
  }
}

/* A huge text is read only in part, and never split inside a character. */
static void test_huge_text(void **state) {
  (void)state;
  size_t n = 100000;
  char *text = malloc(n * 2 + 1);
  char out[64];
  assert_non_null(text);
  for (size_t i = 0; i < n; i++) memcpy(text + 2 * i, "\xc3\xa9", 2); /* é */
  text[2 * n] = '\0';
  int rc = nodup_slugify(out, sizeof out, text, NULL);
  free(text);
  assert_int_equal(rc, NODUP_OK);
  assert_int_equal(strlen(out), NODUP_SLUG_MAX_LENGTH - NODUP_SLUG_SUFFIX_ROOM);
  for (size_t i = 0; out[i]; i++) assert_int_equal(out[i], 'e');
}

static void test_fallback(void **state) {
  (void)state;
  char out[64];
  nodup_slug_options opt = {0};
  opt.fallback = "Untitled Team";
  assert_int_equal(nodup_slugify(out, sizeof out, "\xe2\x9c\xa8", &opt), NODUP_OK);
  assert_string_equal(out, "untitled-team");
  opt.fallback = "!!!"; /* nothing left of it either */
  assert_int_equal(nodup_slugify(out, sizeof out, "", &opt), NODUP_OK);
  assert_string_equal(out, "n-a");
  assert_int_equal(nodup_slugify(out, sizeof out, "Real text", &opt), NODUP_OK);
  assert_string_equal(out, "real-text");
}

static void test_reserved_list(void **state) {
  (void)state;
  const char *mine[] = {"team", "teams"};
  nodup_slug_options opt = {0};
  opt.reserved = mine;
  opt.nreserved = COUNT_OF(mine);
  assert_true(nodup_slug_is_reserved("team", &opt));
  assert_false(nodup_slug_is_reserved("new", &opt)); /* replaces the default */
  assert_true(nodup_slug_is_reserved("42", &opt));   /* digits always */
  opt.nreserved = 0;
  assert_false(nodup_slug_is_reserved("team", &opt));
  assert_true(nodup_slug_is_reserved("login", NULL));
  assert_false(nodup_slug_is_reserved("", NULL));
  assert_false(nodup_slug_is_reserved(NULL, NULL));
  assert_false(nodup_slug_is_reserved("4a", NULL));
}

static void test_usage(void **state) {
  (void)state;
  char out[64];
  nodup_slug_options opt = {0};
  assert_int_equal(nodup_slugify(NULL, 10, "x", NULL), NODUP_ERR_USAGE);
  assert_int_equal(nodup_slugify(out, sizeof out, NULL, NULL), NODUP_ERR_USAGE);
  assert_string_equal(out, "");
  /* Default max 50 needs 51 bytes. */
  assert_int_equal(nodup_slugify(out, 50, "x", NULL), NODUP_ERR_USAGE);
  assert_int_equal(nodup_slugify(out, 51, "x", NULL), NODUP_OK);
  opt.max_length = NODUP_SLUG_SUFFIX_ROOM; /* no room for a base */
  assert_int_equal(nodup_slugify(out, sizeof out, "x", &opt), NODUP_ERR_USAGE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cases),
      cmocka_unit_test(test_cut_keeps_suffix_room),
      cmocka_unit_test(test_huge_text),
      cmocka_unit_test(test_fallback),
      cmocka_unit_test(test_reserved_list),
      cmocka_unit_test(test_usage),
  };
  return cmocka_run_group_tests_name("slugify", tests, NULL, NULL);
}

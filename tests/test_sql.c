/*
 * test_sql.c -- sql.c's builders without a server: the exact text each
 * writes, on both placeholder styles. Every statement that names a key
 * writes it through sql_key_term(); these cases pin the shapes so that a
 * key term that becomes an expression changes them visibly, in one place.
 * And merge's batch sizing, arithmetic that needs no server either.
 */
#include "harness.h"
#include "internal.h"
#include "merge_int.h"

#include <stdlib.h>
#include <string.h>

/* A handle with only what the builders read: the backend's placeholder. */
static struct nodup_backend fake_pg, fake_sqlite;
static nodup_db pg_db, sqlite_db;
static buf b;   /* what the case under test writes */

static int setup(void **state) {
  (void)state;
  fake_pg.placeholder = '$';
  fake_sqlite.placeholder = '?';
  pg_db.be = &fake_pg;
  sqlite_db.be = &fake_sqlite;
  buf_init(&b);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  buf_free(&b);
  return 0;
}

/* Run `call`, which writes into b; compare b's text with want, then empty
 * b for the next case. */
#define EXPECT(call, want)                                                     \
  do {                                                                         \
    call;                                                                      \
    assert_false(b.oom);                                                       \
    assert_string_equal(buf_str(&b), want);                                    \
    buf_reset(&b);                                                             \
  } while (0)

static const key_term key2[] = {{"email", 0, {0}}, {"Org \"x\"", 0, {0}}};

static void test_quoting(void **state) {
  (void)state;
  EXPECT(sql_ident(&b, "we\"ird"), "\"we\"\"ird\"");
  EXPECT(sql_name_literal(&b, "it's"), "'it''s'");
}

static void test_key_list_and_rows(void **state) {
  (void)state;
  EXPECT(sql_key_list(&b, key2, 2, NULL), "\"email\", \"Org \"\"x\"\"\"");
  EXPECT(sql_key_list(&b, key2, 1, "x"), "x.\"email\"");
  EXPECT(sql_key_rows(&b, key2, 2, "active", 0, "g"),
         "1 = 1 AND g.\"email\" IS NOT NULL AND g.\"Org \"\"x\"\"\" IS NOT NULL AND (active)");
  EXPECT(sql_key_rows(&b, key2, 2, "", 1, NULL), "1 = 1");
  /* The bridge for keys held as names writes the same. */
  {
    char *names[] = {"email", "Org \"x\""};
    EXPECT(sql_key_filter(&b, names, 2, "active", 0, "g"),
           "1 = 1 AND g.\"email\" IS NOT NULL AND g.\"Org \"\"x\"\"\" IS NOT NULL AND (active)");
  }
}

static void test_key_match(void **state) {
  int p;
  (void)state;
  /* Positional (a prepared key's lookup): a NULL value keeps its number. */
  p = 1;
  EXPECT(sql_key_match(&b, &pg_db, key2, 2, 1u, 0, "o", &p),
         "o.\"email\" IS NULL AND o.\"Org \"\"x\"\"\" = $2");
  assert_int_equal(p, 3);
  /* Dense (slug's range query): only non-NULL values are parameters. */
  p = 1;
  EXPECT(sql_key_match(&b, &sqlite_db, key2, 2, 1u, 1, NULL, &p),
         "\"email\" IS NULL AND \"Org \"\"x\"\"\" = ?1");
  assert_int_equal(p, 2);
}

static void test_on_conflict_and_params(void **state) {
  (void)state;
  EXPECT(sql_on_conflict(&b, key2, 1, NULL), " ON CONFLICT (\"email\") DO NOTHING");
  EXPECT(sql_on_conflict(&b, key2, 2, "active"),
         " ON CONFLICT (\"email\", \"Org \"\"x\"\"\") WHERE active DO NOTHING");
  EXPECT(sql_params(&b, &pg_db, 4, 3), "$4, $5, $6");
  EXPECT(sql_params(&b, &sqlite_db, 1, 1), "?1");
}

static void test_index_rows(void **state) {
  char *cols[] = {"a", "b"};
  nodup_index_info ix;
  (void)state;
  memset(&ix, 0, sizeof ix);
  ix.ncols = 2;
  ix.cols = cols;
  ix.predicate = "a > 0";
  EXPECT(sql_index_rows(&b, &ix, "c"),
         "1 = 1 AND c.\"a\" IS NOT NULL AND c.\"b\" IS NOT NULL AND (a > 0)");
  ix.nulls_equal = 1;
  ix.predicate = NULL;
  EXPECT(sql_index_rows(&b, &ix, "c"), "1 = 1");
}

/* keyterm.c: spellings in, terms out, and the canonical spelling every
 * layer carries decoded back exactly (and nothing else). */
static void expect_term(const char *spelling, int catalog, const char *want) {
  key_term t;
  buf col;
  const char *why;
  buf_init(&col);
  why = keyterm_parse(spelling, catalog, &t, &col);
  if (why) fail_msg("%s: %s", spelling, why);
  t.column = buf_str(&col);
  sql_key_term(&b, &t, NULL);
  buf_free(&col);
  if (strcmp(buf_str(&b), want) != 0) fail_msg("%s: got %s, want %s", spelling, buf_str(&b), want);
  buf_reset(&b);
}

static void expect_refused(const char *spelling, const char *why_has) {
  key_term t;
  buf col;
  const char *why;
  buf_init(&col);
  why = keyterm_parse(spelling, 0, &t, &col);
  buf_free(&col);
  if (!why || !strstr(why, why_has))
    fail_msg("%s: %s, want a reason with \"%s\"", spelling, why ? why : "accepted", why_has);
}

static void test_keyterm_parse(void **state) {
  (void)state;
  expect_term("email", 0, "\"email\"");
  expect_term("lower(email)", 0, "lower(\"email\")");
  expect_term(" LOWER ( trim( \"E\"\"x\" ) ) ", 0, "lower(trim(\"E\"\"x\"))");
  expect_term("upper(ltrim(rtrim((name))))", 0, "upper(ltrim(rtrim(\"name\")))");
  /* The engines' renderings of index expressions. */
  expect_term("lower((email)::text)", 1, "lower(\"email\")");
  expect_term("lower(TRIM(BOTH FROM email))", 1, "lower(trim(\"email\"))");
  expect_term("rtrim(TRIM(LEADING FROM (e)::character varying::text))", 1,
              "rtrim(ltrim(\"e\"))");
  expect_term("btrim(\"Email\")", 1, "trim(\"Email\")");
  expect_term("lower(`email`) DESC", 1, "lower(\"email\")");
  expect_refused("md5(email)", "only lower, upper, trim, ltrim and rtrim");
  expect_refused("lower(email, 'x')", "one column");
  expect_refused("lower(email", "");
  expect_refused("lower(email::text)", "");   /* casts only from the catalog */
  expect_refused("lower(lower(lower(lower(lower(x)))))", "too deep");
  expect_refused("lower()", "");
  expect_refused("lower(a) b", "unexpected text");
}

static void test_keyterm_decode(void **state) {
  char col[64];
  key_term t;
  char *names[] = {"lower(trim(\"a\"\"b\"))", "lower(x)", "plain", "lower(\"x\")y"};
  key_term *terms;
  (void)state;
  assert_true(keyterm_decode(names[0], &t, col));
  assert_int_equal(t.nfunc, 2);
  assert_string_equal(col, "a\"b");
  assert_false(keyterm_decode(names[1], &t, col));
  assert_int_equal(t.nfunc, 0);
  assert_false(keyterm_decode(names[2], &t, col));
  assert_false(keyterm_decode(names[3], &t, col));
  terms = key_terms_of(names, 4);
  assert_non_null(terms);
  EXPECT(sql_key_list(&b, terms, 4, "x"),
         "lower(trim(x.\"a\"\"b\")), x.\"lower(x)\", x.\"plain\", x.\"lower(\"\"x\"\")y\"");
  /* A value compared with a term is wrapped like it. */
  {
    int p = 1;
    EXPECT(sql_key_match(&b, &pg_db, terms, 2, 0u, 0, NULL, &p),
           "lower(trim(\"a\"\"b\")) = lower(trim($1)) AND \"lower(x)\" = $2");
  }
  free(terms);
}

/* Merge batches sized by time (merge.c): they aim at MERGE_BATCH_MS, at
 * most double from one batch to the next, never below one group, and one
 * slow batch (a lock wait) only halves the average. */
static void test_batch_sizing(void **state) {
  double rate = 0.0;
  size_t n;
  (void)state;
  /* 1000 groups in 50 ms: 20 a ms would want 10,000; doubled at most. */
  n = merge_next_batch(1000, &rate, 1000, 50.0);
  assert_int_equal(n, 2000);
  n = merge_next_batch(n, &rate, 2000, 100.0);
  assert_int_equal(n, 4000);
  /* At the target's pace it stays. */
  rate = 0.0;
  assert_int_equal(merge_next_batch(1000, &rate, 1000, MERGE_BATCH_MS), 1000);
  /* A batch 10 times too slow after that one: the average halves it. */
  n = merge_next_batch(1000, &rate, 1000, 10.0 * MERGE_BATCH_MS);
  assert_int_equal(n, 550);
  /* One group in a minute: never below one. */
  rate = 0.0;
  assert_int_equal(merge_next_batch(1, &rate, 1, 60000.0), 1);
  /* A batch faster than the clock's millisecond is not a division by 0. */
  rate = 0.0;
  assert_int_equal(merge_next_batch(10, &rate, 10, 0.0), 20);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batch_sizing),
      cmocka_unit_test(test_quoting),
      cmocka_unit_test(test_key_list_and_rows),
      cmocka_unit_test(test_key_match),
      cmocka_unit_test(test_on_conflict_and_params),
      cmocka_unit_test(test_index_rows),
      cmocka_unit_test(test_keyterm_parse),
      cmocka_unit_test(test_keyterm_decode),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

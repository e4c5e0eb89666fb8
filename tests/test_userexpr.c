/*
 * test_userexpr.c -- SQL that users write (a key's predicate, --where,
 * --keep) is exactly one expression, on both engines: stacked statements
 * and unbalanced payloads are refused by every call that takes such a
 * text, before anything is written, and a table named `victim` survives
 * them all. A merge resumed from a nodup_runs row someone rewrote is
 * refused the same way. The lexical rule is unit-tested first.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* internal.h's lexical check (linked from the static library, where
 * src/namespace.h gives it the nodup__ prefix). */
const char *nodup__userexpr_lex(const char *s, size_t *at);
#define userexpr_lex nodup__userexpr_lex

static void test_lexical_rule(void **state) {
  static const char *const ok[] = {
      "is_active",
      "a = 'x;y' AND b = 'it''s (here'",
      "\"odd;name\" = 1",
      "note = E'\\'' OR note = 'z'",  /* E'\'' is one quote */
      "body = $$a;b$$ OR body = $t$c)$t$",
      "x IN (1, (2), 3)",
      "[weird;col] = 1",
      "a = $1",
  };
  static const char *const bad[] = {
      "1=1)) AS z; DROP TABLE victim; SELECT * FROM (SELECT 1 AS a WHERE (1=1",
      "1=1; DROP TABLE victim",
      "a) OR (b",
      "(a",
      "a = 1 -- and the rest",
      "a = 1 /* x */",
      "a = 'unterminated",
      "\"unterminated",
      "body = $$never closed",
  };
  size_t at;
  (void)state;
  for (size_t i = 0; i < COUNT_OF(ok); i++)
    if (userexpr_lex(ok[i], &at) != NULL)
      fail_msg("refused one expression: %s (%s at %zu)", ok[i], userexpr_lex(ok[i], &at), at);
  for (size_t i = 0; i < COUNT_OF(bad); i++)
    if (userexpr_lex(bad[i], &at) == NULL) fail_msg("accepted: %s", bad[i]);
}

static const char *const payloads[] = {
    "1=1)) AS z; DROP TABLE victim; SELECT * FROM (SELECT 1 AS a WHERE (1=1",
    "1=1); DROP TABLE victim; SELECT (1",
    "1=1; DROP TABLE victim",
    "k = 'a') OR (1=1",
    "k = 'a' -- ",
};

static void setup_tables(nodup_db *db) {
  harness_exec(db, "CREATE TABLE victim ({id}, v TEXT);"
                   "INSERT INTO victim (v) VALUES ('still here');"
                   "CREATE TABLE p ({id}, k TEXT);"
                   "INSERT INTO p (k) VALUES ('a'), ('a'), ('b'), ('b')");
}

static long long p_rows = 4;   /* rows of p the test expects */

static void expect_untouched(nodup_db *db, const char *what, const char *payload, int rc) {
  if (rc != NODUP_ERR_USAGE)
    fail_msg("%s with %s: %s, want a usage refusal: %s", what, payload, nodup_strerror(rc),
             nodup_errmsg(db));
  assert_int_equal(harness_count(db, "SELECT count(*) FROM victim", NULL), 1);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM p", NULL), p_rows);
}

/* Every call that takes user SQL refuses every payload; nothing runs, and
 * merge writes no journal (nodup_runs) for a refused argument. */
static void test_stacked_payloads_refused(void **state) {
  nodup_db *db = *state;
  static const char *const k[] = {"k"};
  setup_tables(db);
  p_rows = 4;
  for (size_t i = 0; i < COUNT_OF(payloads); i++) {
    const char *pl = payloads[i];
    nodup_merge_report *m = NULL;
    nodup_merge_options mo;
    nodup_scan_report *s = NULL;
    nodup_enforce_report *e = NULL;
    nodup_enforce_options eo;
    nodup_key *key = NULL;
    char name[64];
    long long g;
    memset(&mo, 0, sizeof mo);
    memset(&eo, 0, sizeof eo);
    expect_untouched(db, "merge --where", pl, nodup_merge(&m, db, "p", k, 1, pl, &mo));
    mo.keep = pl;
    expect_untouched(db, "merge --keep", pl, nodup_merge(&m, db, "p", k, 1, NULL, &mo));
    mo.dry_run = 1;
    expect_untouched(db, "merge --dry-run --keep", pl, nodup_merge(&m, db, "p", k, 1, NULL, &mo));
    expect_untouched(db, "scan --where", pl, nodup_scan(&s, db, "p", k, 1, pl, NULL));
    expect_untouched(db, "count_duplicates", pl, nodup_count_duplicates(db, "p", k, 1, pl, &g, NULL));
    expect_untouched(db, "key_prepare", pl, nodup_key_prepare(&key, db, "p", k, 1, pl));
    expect_untouched(db, "key_check", pl, nodup_key_check(db, "p", k, 1, pl, name, sizeof name));
    eo.merge = 1;
    expect_untouched(db, "enforce --where", pl, nodup_enforce(&e, db, "p", k, 1, pl, &eo));
  }
  /* No journal was created for refused arguments. */
  assert_int_equal(harness_count(db,
                                 harness_is_pg()
                                     ? "SELECT count(*) FROM pg_class WHERE relname = 'nodup_runs'"
                                     : "SELECT count(*) FROM sqlite_schema WHERE name = 'nodup_runs'",
                                 NULL),
                   0);
}

/* A typo is named, not run. */
static void test_unknown_column_named(void **state) {
  nodup_db *db = *state;
  static const char *const k[] = {"k"};
  nodup_merge_report *m = NULL;
  setup_tables(db);
  int rc = nodup_merge(&m, db, "p", k, 1, "kk = 'a'", NULL);
  /* PostgreSQL names it by SQLSTATE 42703 (NO_COLUMN); SQLite's message
   * says "no such column" (USAGE): either way the column is named. */
  assert_true(rc == NODUP_ERR_NO_COLUMN || rc == NODUP_ERR_USAGE);
  assert_non_null(strstr(nodup_errmsg(db), "kk"));
}

/* resume re-checks the texts stored in nodup_runs: a row rewritten to
 * carry a payload is refused, and the victim survives. */
static void test_resume_rechecks_stored_sql(void **state) {
  nodup_db *db = *state;
  static const char *const k[] = {"k"};
  nodup_merge_report *m = NULL;
  nodup_merge_options mo;
  char run[64], sql[512];
  setup_tables(db);
  memset(&mo, 0, sizeof mo);
  assert_nodup(db, NODUP_OK, nodup_merge(&m, db, "p", k, 1, "k = 'a'", &mo));
  snprintf(run, sizeof run, "%s", m->run);
  nodup_merge_free(m);
  p_rows = 3;
  for (size_t i = 0; i < COUNT_OF(payloads); i++) {
    char *quoted = calloc(1, 2 * strlen(payloads[i]) + 1), *q = quoted;
    for (const char *p = payloads[i]; *p; p++) {
      if (*p == '\'') *q++ = '\'';
      *q++ = *p;
    }
    snprintf(sql, sizeof sql, "UPDATE {j}nodup_runs SET status = 'failed', %s = '%s' WHERE run = '%s'",
             i % 2 ? "keep_sql" : "where_sql", quoted, run);
    free(quoted);
    harness_exec(db, sql);
    expect_untouched(db, "resume", payloads[i], nodup_merge_resume(&m, db, run, NULL));
    harness_exec(db, "UPDATE {j}nodup_runs SET where_sql = NULL, keep_sql = NULL");
  }
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lexical_rule),
      T(test_stacked_payloads_refused),
      T(test_unknown_column_named),
      T(test_resume_rechecks_stored_sql),
  };
#undef T
  return cmocka_run_group_tests_name(harness_is_pg() ? "userexpr_pg" : "userexpr_sqlite", tests,
                                     NULL, NULL);
}

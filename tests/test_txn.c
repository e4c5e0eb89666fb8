/*
 * test_txn.c -- every call inside the caller's open transaction, on both
 * engines, as nodup.h's "Inside the caller's transaction" promises: what
 * the call writes commits or rolls back with the caller's transaction; a
 * failed call leaves an SQLite transaction usable (savepoint) and aborts a
 * PostgreSQL one (no savepoint, by design); calls that commit as they go
 * refuse, changing nothing; read-only calls see the transaction's own rows.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

static const char *const email_col[] = {"email"};

static nodup_key *people(nodup_db *db) {
  harness_exec(db, "CREATE TABLE \"people\" ({id}, \"email\" TEXT NOT NULL, \"name\" TEXT,"
                   " \"age\" INTEGER CHECK (\"age\" >= 0), \"slug\" TEXT);"
                   "CREATE UNIQUE INDEX \"people_email_key\" ON \"people\" (\"email\");"
                   "CREATE UNIQUE INDEX \"people_slug_key\" ON \"people\" (\"slug\")");
  return harness_key(db, "people", email_col, 1, NULL);
}

static long long rows(nodup_db *db) {
  return harness_count(db, "SELECT count(*) FROM \"people\"", NULL);
}

/* PostgreSQL's view of the caller's transaction: 'T' open, 'E' aborted,
 * 'I' none. SQLite: 'T' or 'I'. */
static char txn_state(nodup_db *db) {
  if (harness_is_pg()) {
    switch (PQtransactionStatus(nodup_db_handle(db))) {
    case PQTRANS_INTRANS: return 'T';
    case PQTRANS_INERROR: return 'E';
    case PQTRANS_IDLE: return 'I';
    default: return '?';
    }
  }
  return harness_in_transaction(db) ? 'T' : 'I';
}

/* What get-or-create writes inside the caller's transaction is the
 * caller's: gone with ROLLBACK, kept with COMMIT; a hit is a hit. */
static void test_get_or_create_commits_and_rolls_back_with_caller(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people(db);
  const char *ada[] = {"ada@example.org"};
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];

  harness_exec(db, "BEGIN");
  assert_int_equal(harness_goc(db, key, ada, NULL, NULL, 0, id), 1);
  assert_int_equal(harness_goc(db, key, ada, NULL, NULL, 0, again), 0);
  assert_string_equal(id, again);
  assert_int_equal(txn_state(db), 'T');
  harness_exec(db, "ROLLBACK");
  assert_int_equal(rows(db), 0);

  harness_exec(db, "BEGIN");
  assert_int_equal(harness_goc(db, key, ada, NULL, NULL, 0, id), 1);
  harness_exec(db, "COMMIT");
  assert_int_equal(rows(db), 1);
  harness_exec(db, "BEGIN");
  assert_int_equal(harness_goc(db, key, ada, NULL, NULL, 0, again), 0);
  assert_string_equal(id, again);
  harness_exec(db, "COMMIT");
}

/* A call that fails on another constraint: SQLite rolls back to its
 * savepoint and the caller's transaction goes on (its earlier row
 * commits); PostgreSQL's transaction is aborted, as after any failed
 * statement, and the caller rolls back. */
static void test_failed_call_inside_caller_transaction(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people(db);
  const char *ada[] = {"ada@example.org"}, *bob[] = {"bob@example.org"};
  const char *age[] = {"age"}, *minus[] = {"-1"};
  nodup_result r = {NULL, 0};
  char id[HARNESS_ID_MAX];

  harness_exec(db, "BEGIN");
  assert_int_equal(harness_goc(db, key, ada, NULL, NULL, 0, id), 1);
  assert_nodup(db, NODUP_ERR_CONSTRAINT, nodup_get_or_create(key, bob, age, minus, 1, &r));
  if (harness_is_pg()) {
    assert_int_equal(txn_state(db), 'E');
    harness_exec(db, "ROLLBACK");
    assert_int_equal(rows(db), 0);
  } else {
    assert_int_equal(txn_state(db), 'T');
    assert_int_equal(harness_goc(db, key, bob, NULL, NULL, 0, id), 1);
    harness_exec(db, "COMMIT");
    assert_int_equal(rows(db), 2);
  }
}

/* Slugs and imports inside the caller's transaction roll back with it; an
 * import refused as already done leaves the transaction usable on both
 * engines (its own savepoint). */
static void test_slug_and_import_inside_caller_transaction(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people(db);
  const char *set_cols[] = {"email"}, *set_vals[] = {"team@example.org"};
  nodup_slug_result slug = {NULL, NULL, 0, 0};
  nodup_import_report *rep = NULL;
  char path[] = "/tmp/nodup-txn-XXXXXX";
  FILE *f;
  int fd = mkstemp(path);
  char id[HARNESS_ID_MAX];
  const char *ada[] = {"ada@example.org"};
  assert_true(fd >= 0);
  assert_non_null(f = fdopen(fd, "w+"));
  fputs("email,name\nada@example.org,Ada\nbob@example.org,Bob\n", f);

  harness_exec(db, "BEGIN");
  assert_nodup(db, NODUP_OK, nodup_slug_create(&slug, db, "people", "slug", NULL, NULL, 0,
                                               set_cols, set_vals, 1, "My Team", NULL));
  assert_string_equal(slug.slug, "my-team");
  nodup_slug_result_free(&slug);
  rewind(f);
  assert_nodup(db, NODUP_OK, nodup_import_csv(&rep, db, "people", email_col, 1, NULL, f, NULL));
  nodup_import_free(rep);
  rep = NULL;
  assert_int_equal(rows(db), 3);
  /* The same file again: refused, nothing of it inserted, the caller's
   * transaction still usable and still holding its rows. */
  rewind(f);
  assert_int_equal(nodup_import_csv(&rep, db, "people", email_col, 1, NULL, f, NULL),
                   NODUP_ERR_DUPLICATE);
  nodup_import_free(rep);
  assert_int_equal(txn_state(db), 'T');
  assert_int_equal(harness_goc(db, key, ada, NULL, NULL, 0, id), 0);
  assert_int_equal(rows(db), 3);
  harness_exec(db, "ROLLBACK");
  assert_int_equal(rows(db), 0);
  fclose(f);
  unlink(path);
}

/* Read-only calls see the caller's own uncommitted rows and leave its
 * transaction as it was. */
static void test_read_only_calls_see_the_transaction(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people(db);
  const char *ada[] = {"ada@example.org"};
  nodup_scan_report *scan = NULL;
  nodup_result r = {NULL, 0};
  long long groups = -1;
  char name[128], id[HARNESS_ID_MAX];

  harness_exec(db, "CREATE TABLE \"loose\" ({id}, \"k\" TEXT)");
  harness_exec(db, "BEGIN");
  harness_exec(db, "INSERT INTO \"loose\" (\"k\") VALUES ('a'), ('a')");
  assert_int_equal(harness_goc(db, key, ada, NULL, NULL, 0, id), 1);
  assert_nodup(db, NODUP_OK, nodup_find(key, ada, &r));
  assert_string_equal(r.id, id);
  assert_nodup(db, NODUP_OK, nodup_key_check(db, "people", email_col, 1, NULL, name, sizeof name));
  assert_nodup(db, NODUP_OK, nodup_count_duplicates(db, "loose", (const char *const[]){"k"}, 1,
                                                    NULL, &groups, NULL));
  assert_int_equal(groups, 1);
  assert_nodup(db, NODUP_OK, nodup_scan(&scan, db, "loose", (const char *const[]){"k"}, 1, NULL,
                                        NULL));
  assert_int_equal(scan->groups, 1);
  nodup_scan_free(scan);
  assert_int_equal(txn_state(db), 'T');
  harness_exec(db, "COMMIT");
  assert_int_equal(rows(db), 1);
}

/* Calls that commit as they go cannot be one step of the caller's
 * transaction: refused, with nothing changed and the transaction intact. */
static void test_committing_calls_refuse(void **state) {
  nodup_db *db = *state;
  static const char *const k[] = {"k"};
  nodup_merge_report *m = NULL;
  nodup_enforce_report *e = NULL;
  long long restored = 0, reverted = 0;
  harness_exec(db, "CREATE TABLE \"loose\" ({id}, \"k\" TEXT)");
  harness_exec(db, "INSERT INTO \"loose\" (\"k\") VALUES ('a'), ('a')");
  harness_exec(db, "BEGIN");
  assert_nodup(db, NODUP_ERR_USAGE, nodup_merge(&m, db, "loose", k, 1, NULL, NULL));
  assert_non_null(strstr(nodup_errmsg(db), "transaction"));
  assert_nodup(db, NODUP_ERR_USAGE, nodup_enforce(&e, db, "loose", k, 1, NULL, NULL));
  assert_non_null(strstr(nodup_errmsg(db), "transaction"));
  assert_nodup(db, NODUP_ERR_USAGE, nodup_undo(db, "no-such-run", &restored, &reverted));
  assert_non_null(strstr(nodup_errmsg(db), "transaction"));
  assert_int_equal(txn_state(db), 'T');
  harness_exec(db, "COMMIT");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"loose\"", NULL), 2);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
  const struct CMUnitTest tests[] = {
      T(test_get_or_create_commits_and_rolls_back_with_caller),
      T(test_failed_call_inside_caller_transaction),
      T(test_slug_and_import_inside_caller_transaction),
      T(test_read_only_calls_see_the_transaction),
      T(test_committing_calls_refuse),
  };
#undef T
  return cmocka_run_group_tests_name(harness_is_pg() ? "txn_pg" : "txn_sqlite", tests, NULL,
                                     NULL);
}

/*
 * test_keys.c -- preparing keys: which keys a unique index backs, what the
 * refusal says, nodup_key_check, nodup_key_ddl, and nodup_count_duplicates
 * on tables that nothing protects yet. Conformance suite: the same tests on
 * SQLite and PostgreSQL.
 *
 * A key that no unique index backs exactly would let duplicates through
 * (seed 001's bug: the creator in `defaults` rather than in the lookup), so
 * every such key must be refused with the DDL that would fix it.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANNOTATIONS_DDL(false_literal)                                         \
  "CREATE TABLE \"annotations\" ({id},"                                        \
  " \"document_id\" INTEGER NOT NULL, \"corpus_id\" INTEGER NOT NULL,"         \
  " \"annotation_label_id\" INTEGER NOT NULL, \"page\" INTEGER NOT NULL,"      \
  " \"raw_text\" TEXT NOT NULL, \"creator_id\" INTEGER NOT NULL,"              \
  " \"structural\" BOOLEAN NOT NULL DEFAULT " false_literal ");"

/* The lookup of seed 001's fixed code: all six columns. */
static const char *const six_cols[] = {"document_id", "corpus_id",
                                       "annotation_label_id", "page",
                                       "raw_text", "creator_id"};
/* ... and of its buggy code, with creator_id left in the defaults. */
static const char *const five_cols[] = {"document_id", "corpus_id",
                                        "annotation_label_id", "page",
                                        "raw_text"};

static const char *not_structural(void) {
  return harness_pick("\"structural\" = 0", "\"structural\" = false");
}

/* Seed 001's table, with a unique index on `index_cols` (a SQL column list)
 * among non-structural rows, or no index when index_cols is NULL. */
static void create_annotations(nodup_db *db, const char *index_cols) {
  harness_exec(db, harness_pick(ANNOTATIONS_DDL("0"), ANNOTATIONS_DDL("false")));
  if (index_cols == NULL)
    return;
  char sql[512];
  snprintf(sql, sizeof sql,
           "CREATE UNIQUE INDEX \"annotations_grounding_key\""
           " ON \"annotations\" (%s) WHERE %s",
           index_cols, not_structural());
  harness_exec(db, sql);
}

/*
 * Preparing the key must fail with NODUP_ERR_UNBACKED, leave *out NULL, and
 * explain itself with the DDL nodup_key_ddl() gives for the same key;
 * nodup_key_check must agree.
 */
static void expect_unbacked(nodup_db *db, const char *table,
                            const char *const *cols, size_t ncols,
                            const char *where) {
  static char sentinel;
  nodup_key *key = (nodup_key *)&sentinel;
  char ddl[2048];
  int n = nodup_key_ddl(db, table, cols, ncols, where, ddl, sizeof ddl);
  assert_true(n > 0 && (size_t)n < sizeof ddl);
  assert_contains(ddl, "CREATE UNIQUE INDEX");

  assert_nodup(db, NODUP_ERR_UNBACKED,
               nodup_key_prepare(&key, db, table, cols, ncols, where));
  assert_null(key);
  assert_contains(nodup_errmsg(db), "CREATE UNIQUE INDEX");
  assert_contains(nodup_errmsg(db), ddl);

  char name[128] = "untouched";
  assert_nodup(db, NODUP_ERR_UNBACKED,
               nodup_key_check(db, table, cols, ncols, where, name,
                               sizeof name));
  assert_contains(nodup_errmsg(db), ddl);
}

/* Seed 001's bug: the index includes the creator, the lookup does not, so
 * two creators' rows both match the lookup. */
static void test_unbacked_lookup_narrower_than_index(void **state) {
  nodup_db *db = *state;
  create_annotations(db, "\"document_id\", \"corpus_id\","
                         " \"annotation_label_id\", \"page\", \"raw_text\","
                         " \"creator_id\"");
  expect_unbacked(db, "annotations", five_cols, 5, not_structural());
  /* The exact key is fine. */
  nodup_key *key = harness_key(db, "annotations", six_cols, 6, not_structural());
  assert_string_equal(nodup_key_index(key), "annotations_grounding_key");
}

/* The other way round: a column in the key that the index does not have
 * makes the lookup miss rows the index would conflict with. */
static void test_unbacked_lookup_wider_than_index(void **state) {
  nodup_db *db = *state;
  create_annotations(db, "\"document_id\", \"corpus_id\","
                         " \"annotation_label_id\", \"page\", \"raw_text\"");
  expect_unbacked(db, "annotations", six_cols, 6, not_structural());
  harness_key(db, "annotations", five_cols, 5, not_structural());
}

static void test_unbacked_no_index(void **state) {
  nodup_db *db = *state;
  create_annotations(db, NULL);
  expect_unbacked(db, "annotations", six_cols, 6, not_structural());
  expect_unbacked(db, "annotations", six_cols, 6, NULL);
  /* A plain (non-unique) index backs nothing. */
  harness_exec(db, "CREATE INDEX \"annotations_text\""
                   " ON \"annotations\" (\"raw_text\")");
  const char *text_col[] = {"raw_text"};
  expect_unbacked(db, "annotations", text_col, 1, NULL);
}

/* A partial index backs only its own predicate. */
static void test_unbacked_predicate_mismatch(void **state) {
  nodup_db *db = *state;
  create_annotations(db, "\"document_id\", \"corpus_id\","
                         " \"annotation_label_id\", \"page\", \"raw_text\","
                         " \"creator_id\"");
  expect_unbacked(db, "annotations", six_cols, 6, NULL);
  expect_unbacked(db, "annotations", six_cols, 6,
                  harness_pick("\"structural\" = 1", "\"structural\" = true"));
}

static void test_key_check(void **state) {
  nodup_db *db = *state;
  create_annotations(db, "\"document_id\", \"corpus_id\","
                         " \"annotation_label_id\", \"page\", \"raw_text\","
                         " \"creator_id\"");
  harness_exec(db, "CREATE TABLE \"people\" ({id}, \"email\" TEXT NOT NULL,"
                   " \"handle\" TEXT,"
                   " CONSTRAINT \"people_handle_uq\" UNIQUE (\"handle\"));"
                   "CREATE UNIQUE INDEX \"people_email_key\""
                   " ON \"people\" (\"email\")");
  const char *email[] = {"email"};
  const char *handle[] = {"handle"};
  char name[128];

  assert_nodup(db, NODUP_OK,
               nodup_key_check(db, "people", email, 1, NULL, name, sizeof name));
  assert_string_equal(name, "people_email_key");
  assert_string_equal(nodup_errmsg(db), "");
  assert_nodup(db, NODUP_OK,
               nodup_key_check(db, "people", email, 1, NULL, NULL, 0));
  /* At most `size` bytes, NUL-terminated. */
  char small[5] = "xxxx";
  assert_nodup(db, NODUP_OK,
               nodup_key_check(db, "people", email, 1, NULL, small,
                               sizeof small));
  assert_string_equal(small, "peop");

  assert_nodup(db, NODUP_OK,
               nodup_key_check(db, "annotations", six_cols, 6,
                               not_structural(), name, sizeof name));
  assert_string_equal(name, "annotations_grounding_key");

  /* A UNIQUE constraint backs a key too. SQLite does not keep constraint
   * names; PostgreSQL names the index after the constraint. */
  assert_nodup(db, NODUP_OK,
               nodup_key_check(db, "people", handle, 1, NULL, name,
                               sizeof name));
  if (harness_is_pg())
    assert_string_equal(name, "people_handle_uq");
  else
    assert_true(name[0] != '\0');
  nodup_key *key = harness_key(db, "people", handle, 1, NULL);
  assert_string_equal(nodup_key_index(key), name);
  /* Checking prepares nothing and inserts nothing. */
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"people\"", NULL),
                   0);
}

/* Run the suggested DDL, then the key it was suggested for must prepare. */
static void apply_ddl_and_prepare(nodup_db *db, const char *table,
                                  const char *const *cols, size_t ncols,
                                  const char *where) {
  int n = nodup_key_ddl(db, table, cols, ncols, where, NULL, 0);
  assert_true(n > 0);
  char *ddl = malloc((size_t)n + 1);
  assert_non_null(ddl);
  int again = nodup_key_ddl(db, table, cols, ncols, where, ddl, (size_t)n + 1);
  if (again != n || strlen(ddl) != (size_t)n ||
      strncmp(ddl, "CREATE UNIQUE INDEX", 19) != 0) {
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", ddl);
    free(ddl);
    fail_msg("nodup_key_ddl gave %d then %d: \"%s\"", n, again, copy);
  }
  int rc = nodup_exec(db, ddl);
  if (rc != NODUP_OK) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: %s", ddl, nodup_errmsg(db));
    free(ddl);
    fail_msg("the suggested DDL does not run: %s", msg);
  }
  free(ddl);
  harness_key(db, table, cols, ncols, where);
}

static void test_key_ddl(void **state) {
  nodup_db *db = *state;
  create_annotations(db, NULL);
  harness_exec(db, "CREATE TABLE \"my table\" ({id}, \"we\"\"ird\" TEXT,"
                   " \"CamelCase\" TEXT, \"Flag\" INTEGER)");

  /* Like snprintf: the full length whatever the size, a truncated but
   * terminated copy in a short buffer. */
  char small[8];
  int n = nodup_key_ddl(db, "annotations", six_cols, 6, NULL, small,
                        sizeof small);
  assert_true(n >= (int)sizeof small);
  assert_int_equal(strlen(small), sizeof small - 1);
  assert_memory_equal(small, "CREATE ", 7);

  apply_ddl_and_prepare(db, "annotations", six_cols, 6, not_structural());
  const char *weird[] = {"we\"ird", "CamelCase"};
  apply_ddl_and_prepare(db, "my table", weird, 2, "\"Flag\" = 1");
  apply_ddl_and_prepare(db, "my table", weird, 1, NULL);

  assert_int_equal(nodup_key_ddl(db, NULL, six_cols, 6, NULL, small,
                                 sizeof small),
                   -1);
  assert_int_equal(nodup_key_ddl(db, "annotations", six_cols, 0, NULL, small,
                                 sizeof small),
                   -1);
  assert_int_equal(nodup_key_ddl(db, "annotations", NULL, 6, NULL, small,
                                 sizeof small),
                   -1);
}

/* Suggested index names must not collide: two keys on one table, each
 * with its suggested index, must both end up backed. Long column lists are
 * where a name truncated to the engine's limit (63 bytes on PostgreSQL)
 * would make them collide. */
static void test_key_ddl_names_distinct(void **state) {
  nodup_db *db = *state;
  create_annotations(db, NULL);
  apply_ddl_and_prepare(db, "annotations", six_cols, 6, not_structural());
  apply_ddl_and_prepare(db, "annotations", five_cols, 5, NULL);
  apply_ddl_and_prepare(db, "annotations", six_cols, 6, NULL);
  /* Short names too: the same columns with and without a predicate are two
   * keys, and need two indexes. */
  harness_exec(db, "CREATE TABLE \"tags\" ({id}, \"k\" TEXT, \"live\" INTEGER)");
  const char *k[] = {"k"};
  apply_ddl_and_prepare(db, "tags", k, 1, "\"live\" = 1");
  apply_ddl_and_prepare(db, "tags", k, 1, NULL);
}

static void test_unknown_table_and_column(void **state) {
  nodup_db *db = *state;
  create_annotations(db, "\"raw_text\"");
  const char *cols[] = {"raw_text"};
  const char *bad_cols[] = {"raw_text", "no_such_column"};
  nodup_key *key = NULL;
  long long groups;

  assert_nodup(db, NODUP_ERR_NO_TABLE,
               nodup_key_prepare(&key, db, "no_such_table", cols, 1, NULL));
  assert_null(key);
  assert_contains(nodup_errmsg(db), "no_such_table");
  assert_nodup(db, NODUP_ERR_NO_TABLE,
               nodup_key_check(db, "no_such_table", cols, 1, NULL, NULL, 0));
  assert_contains(nodup_errmsg(db), "no_such_table");
  assert_nodup(db, NODUP_ERR_NO_TABLE,
               nodup_count_duplicates(db, "no_such_table", cols, 1, NULL,
                                      &groups, NULL));
  assert_contains(nodup_errmsg(db), "no_such_table");

  assert_nodup(db, NODUP_ERR_NO_COLUMN,
               nodup_key_prepare(&key, db, "annotations", bad_cols, 2, NULL));
  assert_null(key);
  assert_contains(nodup_errmsg(db), "no_such_column");
  assert_nodup(db, NODUP_ERR_NO_COLUMN,
               nodup_key_check(db, "annotations", bad_cols, 2, NULL, NULL, 0));
  assert_contains(nodup_errmsg(db), "no_such_column");
  assert_nodup(db, NODUP_ERR_NO_COLUMN,
               nodup_count_duplicates(db, "annotations", bad_cols, 2, NULL,
                                      &groups, NULL));
  assert_contains(nodup_errmsg(db), "no_such_column");
}

static void test_usage_errors(void **state) {
  nodup_db *db = *state;
  create_annotations(db, "\"raw_text\"");
  const char *cols[] = {"raw_text"};
  nodup_key *key = NULL;

  assert_nodup(db, NODUP_ERR_USAGE,
               nodup_key_prepare(&key, db, "annotations", cols, 0, NULL));
  assert_null(key);
  assert_nodup(db, NODUP_ERR_USAGE,
               nodup_key_prepare(&key, db, "annotations", NULL, 1, NULL));
  assert_null(key);
  assert_nodup(db, NODUP_ERR_USAGE,
               nodup_key_prepare(&key, db, NULL, cols, 1, NULL));
  assert_null(key);
  assert_nodup(db, NODUP_ERR_USAGE,
               nodup_key_check(db, "annotations", cols, 0, NULL, NULL, 0));
}

/* An unbacked key can look up and insert (check-then-insert, for showing
 * the race), but get-or-create on it stays refused. */
static void test_prepare_unbacked(void **state) {
  nodup_db *db = *state;
  harness_exec(db, "CREATE TABLE \"loose\" ({id}, \"k\" TEXT NOT NULL);"
                   "CREATE TABLE \"tight\" ({id}, \"k\" TEXT NOT NULL);"
                   "CREATE UNIQUE INDEX \"tight_k\" ON \"tight\" (\"k\")");
  const char *cols[] = {"k"};
  const char *vals[] = {"v"};
  nodup_result result = {"sentinel", 0};
  char first[HARNESS_ID_MAX], id[HARNESS_ID_MAX];

  nodup_key *loose = harness_key_unbacked(db, "loose", cols, 1, NULL);
  assert_null(nodup_key_index(loose));
  assert_nodup(db, NODUP_ERR_UNBACKED,
               nodup_get_or_create(loose, vals, NULL, NULL, 0, &result));
  /* Checked last, so that the rest runs even if this fails. */
  char refusal[1024];
  snprintf(refusal, sizeof refusal, "%s", nodup_errmsg(db));
  assert_nodup(db, NODUP_OK, nodup_find(loose, vals, &result));
  assert_null(result.id);
  assert_nodup(db, NODUP_OK, nodup_insert(loose, vals, NULL, NULL, 0, &result));
  assert_int_equal(result.created, 1);
  snprintf(first, sizeof first, "%s", result.id);
  /* Nothing stops a second insert: that is the bug being demonstrated. */
  assert_nodup(db, NODUP_OK, nodup_insert(loose, vals, NULL, NULL, 0, &result));
  assert_string_not_equal(result.id, first);
  long long groups = -1, redundant = -1;
  assert_nodup(db, NODUP_OK,
               nodup_count_duplicates(db, "loose", cols, 1, NULL, &groups,
                                      &redundant));
  assert_int_equal(groups, 1);
  assert_int_equal(redundant, 1);

  /* Where an index does back it, it is a full key. */
  nodup_key *tight = harness_key_unbacked(db, "tight", cols, 1, NULL);
  assert_non_null(nodup_key_index(tight));
  assert_string_equal(nodup_key_index(tight), "tight_k");
  assert_int_equal(harness_goc(db, tight, vals, NULL, NULL, 0, first), 1);
  assert_int_equal(harness_goc(db, tight, vals, NULL, NULL, 0, id), 0);
  assert_string_equal(first, id);

  /* Unknown names are still refused. */
  nodup_key *key = NULL;
  assert_nodup(db, NODUP_ERR_NO_TABLE,
               nodup_key_prepare_unbacked(&key, db, "no_such_table", cols, 1,
                                          NULL));
  assert_null(key);

  /* The refusal is as actionable as nodup_key_prepare's: it carries the
   * DDL that would back the key. */
  assert_contains(refusal, "CREATE UNIQUE INDEX");
}

/* ---------------------------------------------------------------------------
 * nodup_count_duplicates
 */

static void fill_loose(nodup_db *db) {
  harness_exec(db,
               "CREATE TABLE \"loose\" ({id}, \"a\" TEXT, \"b\" TEXT,"
               " \"flag\" INTEGER NOT NULL);"
               "INSERT INTO \"loose\" (\"a\", \"b\", \"flag\") VALUES"
               /* (x, 1): three rows, all inside the predicate */
               " ('x', '1', 1), ('x', '1', 1), ('x', '1', 1),"
               /* (y, 2): two inside, one outside */
               " ('y', '2', 1), ('y', '2', 1), ('y', '2', 0),"
               /* (w, 4): two rows, both outside */
               " ('w', '4', 0), ('w', '4', 0),"
               /* unique keys */
               " ('z', '3', 1), ('x', '2', 1), ('y', '1', 0),"
               /* NULL keys never conflict in a unique index */
               " ('x', NULL, 1), ('x', NULL, 1),"
               " (NULL, NULL, 1), (NULL, NULL, 1), (NULL, '1', 1)");
}

static void test_count_duplicates(void **state) {
  nodup_db *db = *state;
  fill_loose(db);
  const char *cols[] = {"a", "b"};
  long long groups = -1, redundant = -1;

  /* Whole table: (x,1) x3, (y,2) x3, (w,4) x2. */
  assert_nodup(db, NODUP_OK,
               nodup_count_duplicates(db, "loose", cols, 2, NULL, &groups,
                                      &redundant));
  assert_int_equal(groups, 3);
  assert_int_equal(redundant, 2 + 2 + 1);

  /* Inside the predicate: (x,1) x3, (y,2) x2. */
  groups = redundant = -1;
  assert_nodup(db, NODUP_OK,
               nodup_count_duplicates(db, "loose", cols, 2, "\"flag\" = 1",
                                      &groups, &redundant));
  assert_int_equal(groups, 2);
  assert_int_equal(redundant, 2 + 1);

  /* Either output may be NULL. */
  groups = -1;
  assert_nodup(db, NODUP_OK,
               nodup_count_duplicates(db, "loose", cols, 2, NULL, &groups,
                                      NULL));
  assert_int_equal(groups, 3);
  redundant = -1;
  assert_nodup(db, NODUP_OK,
               nodup_count_duplicates(db, "loose", cols, 2, NULL, NULL,
                                      &redundant));
  assert_int_equal(redundant, 5);
  assert_nodup(db, NODUP_OK,
               nodup_count_duplicates(db, "loose", cols, 2, NULL, NULL, NULL));

  /* One column: a = x (3 + 1 + 2 NULL-b rows = 6), y (3 + 1 = 4), w (2). */
  const char *a_only[] = {"a"};
  assert_nodup(db, NODUP_OK,
               nodup_count_duplicates(db, "loose", a_only, 1, NULL, &groups,
                                      &redundant));
  assert_int_equal(groups, 3);
  assert_int_equal(redundant, 5 + 3 + 1);

  /* Counting reads only. */
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"loose\"", NULL),
                   16);
}

static void test_count_duplicates_none(void **state) {
  nodup_db *db = *state;
  harness_exec(db, "CREATE TABLE \"tidy\" ({id}, \"k\" TEXT);"
                   "CREATE UNIQUE INDEX \"tidy_k\" ON \"tidy\" (\"k\");"
                   "INSERT INTO \"tidy\" (\"k\") VALUES ('a'), ('b'), (NULL),"
                   " (NULL)");
  const char *cols[] = {"k"};
  long long groups = -1, redundant = -1;
  assert_nodup(db, NODUP_OK,
               nodup_count_duplicates(db, "tidy", cols, 1, NULL, &groups,
                                      &redundant));
  assert_int_equal(groups, 0);
  assert_int_equal(redundant, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
      T(test_unbacked_lookup_narrower_than_index),
      T(test_unbacked_lookup_wider_than_index),
      T(test_unbacked_no_index),
      T(test_unbacked_predicate_mismatch),
      T(test_key_check),
      T(test_key_ddl),
      T(test_key_ddl_names_distinct),
      T(test_unknown_table_and_column),
      T(test_usage_errors),
      T(test_prepare_unbacked),
      T(test_count_duplicates),
      T(test_count_duplicates_none),
#undef T
  };
  return cmocka_run_group_tests_name(harness_is_pg() ? "keys_pg" : "keys_sqlite",
                                     tests, NULL, NULL);
}

/*
 * test_upsert.c -- nodup_update_or_create: the conformance suite, run
 * unchanged against SQLite and PostgreSQL (and PostgreSQL through
 * PgBouncer): created, updated and unchanged; nothing written when
 * unchanged (PostgreSQL: the row's xmin stays; SQLite: no change counted,
 * no commit seen by another connection, no write lock taken); partial
 * keys; other constraints named; refusals that change nothing; the
 * caller's transaction; and real concurrency, threads and processes, on
 * the same few keys with different values.
 *
 * What the library wrote is read back through the raw handle, never
 * through the library.
 */
#include "harness.h"
#include "rig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COUNT_PEOPLE "SELECT count(*) FROM \"people\""
#define NAME_OF "SELECT \"name\" FROM \"people\" WHERE \"email\" = $1"

static const char *const email_col[] = {"email"};

/* people(email) unique, with a CHECK, a NOT NULL and another unique
 * index: the table most tests start from. */
static nodup_key *people_key(nodup_db *db) {
  harness_exec(db, "CREATE TABLE \"people\" ({id}, \"email\" TEXT NOT NULL,"
                   " \"name\" TEXT, \"age\" INTEGER CONSTRAINT \"people_age_check\""
                   " CHECK (\"age\" >= 0), \"nick\" TEXT NOT NULL DEFAULT 'x',"
                   " \"handle\" TEXT, \"made\" TEXT);"
                   "CREATE UNIQUE INDEX \"people_email_key\" ON \"people\" (\"email\");"
                   "CREATE UNIQUE INDEX \"people_handle_key\" ON \"people\" (\"handle\")");
  return harness_key(db, "people", email_col, 1, NULL);
}

/* PostgreSQL: people partitioned by hash of the email, whose upserts
 * cannot return system columns (the library then compares, updates and
 * inserts in three statements); SQLite, which has no partitions: people. */
static nodup_key *partitioned_people_key(nodup_db *db) {
  if (!harness_is_pg()) return people_key(db);
  harness_exec(db, "CREATE TABLE \"people\" (\"id\" BIGSERIAL, \"email\" TEXT NOT NULL,"
                   " \"name\" TEXT, \"age\" INTEGER CONSTRAINT \"people_age_check\""
                   " CHECK (\"age\" >= 0), \"nick\" TEXT NOT NULL DEFAULT 'x',"
                   " \"handle\" TEXT, \"made\" TEXT, PRIMARY KEY (\"id\", \"email\"))"
                   " PARTITION BY HASH (\"email\");"
                   "CREATE TABLE \"people_0\" PARTITION OF \"people\""
                   " FOR VALUES WITH (MODULUS 2, REMAINDER 0);"
                   "CREATE TABLE \"people_1\" PARTITION OF \"people\""
                   " FOR VALUES WITH (MODULUS 2, REMAINDER 1);"
                   "CREATE UNIQUE INDEX \"people_email_key\" ON \"people\" (\"email\")");
  return harness_key(db, "people", email_col, 1, NULL);
}

/* One update-or-create that must succeed: returns its outcome, the id
 * copied into `id` (HARNESS_ID_MAX bytes), and checks that `created`
 * agrees with the outcome. */
static int upsert(nodup_db *db, nodup_key *key, const char *email, const char *const *ccols,
                  const char *const *cvals, size_t nc, const char *const *scols,
                  const char *const *svals, size_t ns, char *id) {
  const char *vals[] = {email};
  nodup_result r = {NULL, -1};
  int outcome = -1;
  assert_nodup(db, NODUP_OK,
               nodup_update_or_create(key, vals, ccols, cvals, nc, scols, svals, ns, &r,
                                      &outcome));
  assert_non_null(r.id);
  assert_true(strlen(r.id) < HARNESS_ID_MAX);
  strcpy(id, r.id);
  assert_int_equal(r.created, outcome == NODUP_CREATED);
  return outcome;
}

/* Just a name to set. */
static int set_name(nodup_db *db, nodup_key *key, const char *email, const char *name,
                    char *id) {
  const char *scols[] = {"name"};
  const char *svals[] = {name};
  return upsert(db, key, email, NULL, NULL, 0, scols, svals, 1, id);
}

/* ---------------------------------------------------------------------------
 * Outcomes
 */

/* ada@example.org created with `first` (and made = today), unchanged by
 * `first` again, updated by `second`: one id throughout, and the
 * create-only column never rewritten. */
static void expect_three_outcomes(nodup_db *db, nodup_key *key, const char *const *scols,
                                  const char *const *first, const char *const *second,
                                  size_t ns, char *id) {
  const char *ccols[] = {"made"}, *today[] = {"today"}, *later[] = {"later"};
  char again[HARNESS_ID_MAX];
  assert_int_equal(upsert(db, key, "ada@example.org", ccols, today, 1, scols, first, ns, id),
                   NODUP_CREATED);
  assert_int_equal(upsert(db, key, "ada@example.org", ccols, later, 1, scols, first, ns, again),
                   NODUP_UNCHANGED);
  assert_string_equal(id, again);
  assert_int_equal(upsert(db, key, "ada@example.org", ccols, later, 1, scols, second, ns, again),
                   NODUP_UPDATED);
  assert_string_equal(id, again);
  harness_expect(db, "SELECT \"made\" FROM \"people\" WHERE \"email\" = $1",
                 "ada@example.org", "today");
}

static void test_created_updated_unchanged(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  const char *scols[] = {"name", "age"};
  const char *ada30[] = {"Ada", "30"}, *ada31[] = {"Ada", "31"}, *nulls[] = {NULL, NULL};
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];

  expect_three_outcomes(db, key, scols, ada30, ada31, 2, id);
  harness_expect(db, "SELECT \"age\" FROM \"people\" WHERE \"id\" = $1", id, "31");
  /* NULL is a value to set, and equals a NULL in the row. */
  assert_int_equal(upsert(db, key, "ada@example.org", NULL, NULL, 0, scols, nulls, 2, again),
                   NODUP_UPDATED);
  harness_expect(db, NAME_OF, "ada@example.org", NULL);
  assert_int_equal(upsert(db, key, "ada@example.org", NULL, NULL, 0, scols, nulls, 2, again),
                   NODUP_UNCHANGED);
  /* A number given as other text of the same value is the same value. */
  assert_int_equal(upsert(db, key, "ada@example.org", NULL, NULL, 0, scols, ada31, 2, again),
                   NODUP_UPDATED);
  const char *plus31[] = {"Ada", "+31"};
  assert_int_equal(upsert(db, key, "ada@example.org", NULL, NULL, 0, scols, plus31, 2, again),
                   NODUP_UNCHANGED);
  /* Another key is another row. */
  assert_int_equal(set_name(db, key, "bob@example.org", "Bob", again), NODUP_CREATED);
  assert_string_not_equal(id, again);
  assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL), 2);
  assert_false(harness_in_transaction(db));
}

/* Nothing to set: get-or-create, with an outcome. */
static void test_nothing_to_set_is_get_or_create(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];
  const char *ccols[] = {"name"};
  const char *cvals[] = {"Ada"};
  assert_int_equal(upsert(db, key, "ada@example.org", ccols, cvals, 1, NULL, NULL, 0, id),
                   NODUP_CREATED);
  assert_int_equal(upsert(db, key, "ada@example.org", NULL, NULL, 0, NULL, NULL, 0, again),
                   NODUP_UNCHANGED);
  assert_string_equal(id, again);
  harness_expect(db, NAME_OF, "ada@example.org", "Ada");
}

/* The outcome may be left out; `created` still says it. */
static void test_outcome_optional(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  const char *vals[] = {"ada@example.org"};
  const char *scols[] = {"name"}, *svals[] = {"Ada"};
  nodup_result r;
  assert_nodup(db, NODUP_OK,
               nodup_update_or_create(key, vals, NULL, NULL, 0, scols, svals, 1, &r, NULL));
  assert_int_equal(r.created, 1);
  assert_nodup(db, NODUP_OK,
               nodup_update_or_create(key, vals, NULL, NULL, 0, scols, svals, 1, &r, NULL));
  assert_int_equal(r.created, 0);
}

/* ---------------------------------------------------------------------------
 * Nothing written when nothing changes
 */

static void test_unchanged_writes_nothing(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  nodup_db *other = harness_connect();
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX], before[64], after[64];
  /* PostgreSQL: the row version; SQLite: this connection's change count
   * and what another connection sees of commits. */
  const char *probe = harness_pick("SELECT total_changes()",
                                   "SELECT \"xmin\"::text FROM \"people\"");
  char data_version[64], data_version_after[64];

  assert_int_equal(set_name(db, key, "ada@example.org", "Ada", id), NODUP_CREATED);
  harness_query_into(db, probe, NULL, before, sizeof before);
  if (!harness_is_pg())
    harness_query_into(other, "PRAGMA data_version", NULL, data_version, sizeof data_version);
  for (int i = 0; i < 50; i++) {
    assert_int_equal(set_name(db, key, "ada@example.org", "Ada", again), NODUP_UNCHANGED);
    assert_string_equal(id, again);
  }
  harness_query_into(db, probe, NULL, after, sizeof after);
  if (strcmp(before, after) != 0)
    fail_msg("50 unchanged calls wrote: %s -> %s", before, after);
  if (!harness_is_pg()) {
    harness_query_into(other, "PRAGMA data_version", NULL, data_version_after,
                       sizeof data_version_after);
    assert_string_equal(data_version, data_version_after);
    /* No write lock either: it proceeds while another holds it. */
    harness_exec(other, "BEGIN IMMEDIATE");
    assert_int_equal(set_name(db, key, "ada@example.org", "Ada", again), NODUP_UNCHANGED);
    harness_exec(other, "ROLLBACK");
  }
  /* And an update does write (the probes see writes at all). */
  assert_int_equal(set_name(db, key, "ada@example.org", "Ada L.", again), NODUP_UPDATED);
  harness_query_into(db, probe, NULL, after, sizeof after);
  assert_string_not_equal(before, after);
}

/* The same promises where the engine cannot say inserted from updated in
 * one statement (PostgreSQL, a partitioned table). */
static void test_partitioned_table(void **state) {
  nodup_db *db = *state;
  nodup_key *key = partitioned_people_key(db);
  char id[HARNESS_ID_MAX];
  const char *scols[] = {"name"}, *ada[] = {"Ada"}, *bob[] = {"Bob"};
  expect_three_outcomes(db, key, scols, ada, bob, 1, id);
  harness_expect(db, NAME_OF, "ada@example.org", "Bob");
  const char *age[] = {"age"}, *negative[] = {"-1"}, *vals[] = {"ada@example.org"};
  nodup_result r;
  assert_nodup(db, NODUP_ERR_CONSTRAINT,
               nodup_update_or_create(key, vals, NULL, NULL, 0, age, negative, 1, &r, NULL));
  assert_contains(nodup_errmsg(db), "people_age_check");
  assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL), 1);
}

/* ---------------------------------------------------------------------------
 * Partial keys
 */

static void test_partial_key(void **state) {
  nodup_db *db = *state;
  harness_exec(db, "CREATE TABLE \"accounts\" ({id}, \"email\" TEXT NOT NULL,"
                   " \"name\" TEXT, \"deleted_at\" TEXT);"
                   "CREATE UNIQUE INDEX \"accounts_live_email\" ON \"accounts\" (\"email\")"
                   " WHERE \"deleted_at\" IS NULL;"
                   "INSERT INTO \"accounts\" (\"email\", \"name\", \"deleted_at\")"
                   " VALUES ('ada@example.org', 'Old Ada', '2020-01-01')");
  nodup_key *key = harness_key(db, "accounts", email_col, 1, "\"deleted_at\" IS NULL");
  const char *vals[] = {"ada@example.org"};
  const char *scols[] = {"name"}, *ada[] = {"Ada"}, *ada2[] = {"Ada 2"};
  const char *gone_cols[] = {"deleted_at"}, *gone[] = {"2024-01-01"};
  nodup_result r;
  int outcome;
  char id[HARNESS_ID_MAX];

  /* The deleted row is outside the key: a new one is created beside it. */
  assert_nodup(db, NODUP_OK,
               nodup_update_or_create(key, vals, NULL, NULL, 0, scols, ada, 1, &r, &outcome));
  assert_int_equal(outcome, NODUP_CREATED);
  strcpy(id, r.id);
  assert_nodup(db, NODUP_OK,
               nodup_update_or_create(key, vals, NULL, NULL, 0, scols, ada, 1, &r, &outcome));
  assert_int_equal(outcome, NODUP_UNCHANGED);
  assert_string_equal(r.id, id);
  assert_nodup(db, NODUP_OK,
               nodup_update_or_create(key, vals, NULL, NULL, 0, scols, ada2, 1, &r, &outcome));
  assert_int_equal(outcome, NODUP_UPDATED);
  assert_string_equal(r.id, id);
  harness_expect(db, "SELECT \"name\" FROM \"accounts\" WHERE \"deleted_at\" IS NOT NULL",
                 NULL, "Old Ada");

  /* Setting what takes the row out of the key is refused, nothing
   * written; so is creating a row outside it. */
  char *dump = harness_dump(db);
  assert_nodup(db, NODUP_ERR_PREDICATE,
               nodup_update_or_create(key, vals, NULL, NULL, 0, gone_cols, gone, 1, &r,
                                      &outcome));
  const char *bob[] = {"bob@example.org"};
  assert_nodup(db, NODUP_ERR_PREDICATE,
               nodup_update_or_create(key, bob, NULL, NULL, 0, gone_cols, gone, 1, &r,
                                      &outcome));
  char *after = harness_dump(db);
  int same = strcmp(dump, after) == 0;
  free(dump);
  free(after);
  assert_true(same);
  assert_false(harness_in_transaction(db));
}

/* ---------------------------------------------------------------------------
 * Refusals: other constraints, NULL keys, bad columns
 */

/* A violation of `constraint` (part of the message) with nothing changed. */
static void expect_constraint(nodup_db *db, nodup_key *key, const char *email,
                              const char *const *ccols, const char *const *cvals, size_t nc,
                              const char *const *scols, const char *const *svals, size_t ns,
                              const char *constraint) {
  const char *vals[] = {email};
  nodup_result r = {"sentinel", 1};
  int outcome = -1;
  char *before = harness_dump(db);
  int rc = nodup_update_or_create(key, vals, ccols, cvals, nc, scols, svals, ns, &r, &outcome);
  char *after = harness_dump(db);
  int same = strcmp(before, after) == 0;
  free(before);
  free(after);
  if (rc != NODUP_ERR_CONSTRAINT)
    fail_msg("%s: expected NODUP_ERR_CONSTRAINT, got %s: %s", constraint, nodup_strerror(rc),
             nodup_errmsg(db));
  assert_contains(nodup_errmsg(db), constraint);
  assert_null(r.id);
  assert_int_equal(r.created, 0);
  assert_int_equal(outcome, 0);
  assert_true(same);
  assert_false(harness_in_transaction(db));
}

static void test_other_constraints_named(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  const char *scols[] = {"name", "handle"}, *ada[] = {"Ada", "ada"};
  char id[HARNESS_ID_MAX];
  assert_int_equal(upsert(db, key, "ada@example.org", NULL, NULL, 0, scols, ada, 2, id),
                   NODUP_CREATED);
  assert_int_equal(set_name(db, key, "bob@example.org", "Bob", id), NODUP_CREATED);

  /* Another unique index, on update and on create: never "existing". */
  const char *handle[] = {"handle"}, *taken[] = {"ada"};
  const char *handle_index = harness_pick("handle", "people_handle_key");
  expect_constraint(db, key, "bob@example.org", NULL, NULL, 0, handle, taken, 1, handle_index);
  expect_constraint(db, key, "eve@example.org", NULL, NULL, 0, handle, taken, 1, handle_index);
  expect_constraint(db, key, "eve@example.org", handle, taken, 1, NULL, NULL, 0, handle_index);
  /* CHECK, named on both engines. */
  const char *age[] = {"age"}, *negative[] = {"-1"};
  expect_constraint(db, key, "bob@example.org", NULL, NULL, 0, age, negative, 1,
                    "people_age_check");
  expect_constraint(db, key, "eve@example.org", NULL, NULL, 0, age, negative, 1,
                    "people_age_check");
  /* NOT NULL. */
  const char *nick[] = {"nick"}, *null[] = {NULL};
  expect_constraint(db, key, "bob@example.org", NULL, NULL, 0, nick, null, 1, "nick");
  expect_constraint(db, key, "eve@example.org", NULL, NULL, 0, nick, null, 1, "nick");
  assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL), 2);
}

static void test_null_key_refused(void **state) {
  nodup_db *db = *state;
  people_key(db);
  harness_exec(db, "CREATE TABLE \"pairs\" ({id}, \"a\" TEXT, \"b\" TEXT, \"v\" TEXT);"
                   "CREATE UNIQUE INDEX \"pairs_key\" ON \"pairs\" (\"a\", \"b\")");
  const char *cols[] = {"a", "b"};
  nodup_key *key = harness_key(db, "pairs", cols, 2, NULL);
  const char *half_null[] = {"x", NULL};
  const char *scols[] = {"v"}, *svals[] = {"1"};
  nodup_result r;
  int outcome = -1;
  assert_nodup(db, NODUP_ERR_NULL_KEY,
               nodup_update_or_create(key, half_null, NULL, NULL, 0, scols, svals, 1, &r,
                                      &outcome));
  assert_contains(nodup_errmsg(db), "\"b\"");
  assert_int_equal(outcome, 0);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"pairs\"", NULL), 0);
}

/* Each bad column is refused by name before anything is written. */
static void expect_refused(nodup_db *db, nodup_key *key, int want, const char *const *ccols,
                           const char *const *cvals, size_t nc, const char *const *scols,
                           const char *const *svals, size_t ns, const char *named) {
  const char *vals[] = {"ada@example.org"};
  nodup_result r;
  int outcome = -1;
  char *before = harness_dump(db);
  assert_nodup(db, want,
               nodup_update_or_create(key, vals, ccols, cvals, nc, scols, svals, ns, &r,
                                      &outcome));
  char *after = harness_dump(db);
  int same = strcmp(before, after) == 0;
  free(before);
  free(after);
  assert_contains(nodup_errmsg(db), named);
  assert_int_equal(outcome, 0);
  assert_true(same);
}

static void test_bad_columns_refused(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  char id[HARNESS_ID_MAX];
  assert_int_equal(set_name(db, key, "ada@example.org", "Ada", id), NODUP_CREATED);

  const char *nope[] = {"name", "no_such_column"}, *two[] = {"Ada 2", "1"};
  expect_refused(db, key, NODUP_ERR_NO_COLUMN, NULL, NULL, 0, nope, two, 2, "no_such_column");
  expect_refused(db, key, NODUP_ERR_NO_COLUMN, nope, two, 2, NULL, NULL, 0, "no_such_column");
  /* Updating the key: the key finds the row and cannot change. */
  const char *email[] = {"email"}, *other[] = {"other@example.org"};
  expect_refused(db, key, NODUP_ERR_USAGE, NULL, NULL, 0, email, other, 1, "in the key");
  expect_refused(db, key, NODUP_ERR_USAGE, email, other, 1, NULL, NULL, 0, "in the key");
  /* One column both created and set, or set twice. */
  const char *name[] = {"name"}, *bob[] = {"Bob"};
  expect_refused(db, key, NODUP_ERR_USAGE, name, bob, 1, name, bob, 1, "given twice");
  const char *names[] = {"name", "name"}, *bobs[] = {"Bob", "Bobby"};
  expect_refused(db, key, NODUP_ERR_USAGE, NULL, NULL, 0, names, bobs, 2, "given twice");
  /* A value its column cannot hold (SQLite checks the declared type; on
   * PostgreSQL the server refuses it): nothing written either way. */
  const char *age[] = {"age"}, *word[] = {"old"};
  expect_refused(db, key, harness_is_pg() ? NODUP_ERR_DB : NODUP_ERR_USAGE, NULL, NULL, 0, age,
                 word, 1, "old");
  harness_expect(db, NAME_OF, "ada@example.org", "Ada");
}

/* An unbacked key is refused, as by get-or-create. */
static void test_unbacked_key_refused(void **state) {
  nodup_db *db = *state;
  harness_exec(db, "CREATE TABLE \"loose\" ({id}, \"email\" TEXT, \"name\" TEXT)");
  nodup_key *key = harness_key_unbacked(db, "loose", email_col, 1, NULL);
  const char *vals[] = {"ada@example.org"};
  const char *scols[] = {"name"}, *svals[] = {"Ada"};
  nodup_result r;
  assert_nodup(db, NODUP_ERR_UNBACKED,
               nodup_update_or_create(key, vals, NULL, NULL, 0, scols, svals, 1, &r, NULL));
  assert_contains(nodup_errmsg(db), "CREATE UNIQUE INDEX");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"loose\"", NULL), 0);
}

/* ---------------------------------------------------------------------------
 * The caller's transaction
 */

static void test_inside_caller_transaction(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];

  harness_exec(db, "BEGIN");
  assert_int_equal(set_name(db, key, "ada@example.org", "Ada", id), NODUP_CREATED);
  assert_int_equal(set_name(db, key, "ada@example.org", "Ada", again), NODUP_UNCHANGED);
  assert_true(harness_in_transaction(db));
  harness_exec(db, "ROLLBACK");
  assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL), 0);

  assert_int_equal(set_name(db, key, "ada@example.org", "Ada", id), NODUP_CREATED);
  harness_exec(db, "BEGIN");
  assert_int_equal(set_name(db, key, "ada@example.org", "Ada 2", again), NODUP_UPDATED);
  assert_string_equal(id, again);
  assert_true(harness_in_transaction(db));
  harness_exec(db, "ROLLBACK");
  harness_expect(db, NAME_OF, "ada@example.org", "Ada");
}

/*
 * PostgreSQL under REPEATABLE READ and SERIALIZABLE: a row inserted, or
 * updated, by another transaction after the caller's snapshot cannot be
 * updated by it (40001): NODUP_ERR_RETRY, and after a rollback it works.
 * SQLite: a deferred transaction whose snapshot another connection has
 * overtaken cannot take the write lock: NODUP_ERR_RETRY too.
 */
static void test_stale_snapshot_asks_to_retry(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  nodup_db *other = harness_connect();
  nodup_key *other_key = harness_key(other, "people", email_col, 1, NULL);
  const char *pg_levels[] = {"BEGIN ISOLATION LEVEL REPEATABLE READ",
                             "BEGIN ISOLATION LEVEL SERIALIZABLE"};
  const char *sqlite_levels[] = {"BEGIN"};
  const char *const *levels = harness_is_pg() ? pg_levels : sqlite_levels;
  size_t nlevels = harness_is_pg() ? 2 : 1;
  const char *scols[] = {"name"};
  const char *svals[] = {"Mine"};

  for (size_t i = 0; i < nlevels; i++) {
    char email[64], id[HARNESS_ID_MAX], winner[HARNESS_ID_MAX];
    const char *vals[] = {email};
    nodup_result r;
    int outcome = -1;
    snprintf(email, sizeof email, "new-%zu@example.org", i);

    /* Inserted by another after our snapshot. */
    harness_exec(db, levels[i]);
    assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL), (long long)(2 * i));
    assert_int_equal(set_name(other, other_key, email, "Theirs", winner), NODUP_CREATED);
    assert_nodup(db, NODUP_ERR_RETRY,
                 nodup_update_or_create(key, vals, NULL, NULL, 0, scols, svals, 1, &r,
                                        &outcome));
    harness_exec(db, "ROLLBACK");
    harness_exec(db, levels[i]);
    assert_int_equal(set_name(db, key, email, "Mine", id), NODUP_UPDATED);
    assert_string_equal(id, winner);
    harness_exec(db, "COMMIT");

    /* Updated by another after our snapshot (to a third value: SQLite
     * would rightly find our snapshot's row equal to "Mine"). */
    snprintf(email, sizeof email, "old-%zu@example.org", i);
    assert_int_equal(set_name(db, key, email, "Mine", id), NODUP_CREATED);
    harness_exec(db, levels[i]);
    assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL), (long long)(2 * i + 2));
    assert_int_equal(set_name(other, other_key, email, "Theirs", winner), NODUP_UPDATED);
    svals[0] = "Again";
    assert_nodup(db, NODUP_ERR_RETRY,
                 nodup_update_or_create(key, vals, NULL, NULL, 0, scols, svals, 1, &r,
                                        &outcome));
    harness_exec(db, "ROLLBACK");
    harness_expect(db, NAME_OF, email, "Theirs");
    svals[0] = "Mine";
  }
}

/* ---------------------------------------------------------------------------
 * Concurrency: threads and processes on the same few keys
 */

#define THREADS 16
#define PROCESSES 6
#define KEYS 4
#define ROUNDS 10
#define OPS (KEYS * ROUNDS) /* op j is on key j % KEYS */

struct call {
  int rc, outcome;
  char id[HARNESS_ID_MAX];
};

struct racer {
  nodup_db *db;
  nodup_key *key;
  int index;
  pthread_barrier_t *barrier;
  struct call calls[OPS];
  char error[512];
};

/* Racer i's value for op `op`: one of three per round, so that racers
 * also find the row equal (unchanged) and not only update it. */
static void racer_value(char *out, size_t size, int racer, int op) {
  snprintf(out, size, "round %d value %d", op / KEYS, racer % 3);
}

static void racer_call(struct racer *w, int op) {
  char email[64], name[64];
  const char *vals[] = {email}, *scols[] = {"name"}, *svals[] = {name};
  const char *ccols[] = {"made"}, *cvals[] = {name};
  nodup_result r = {NULL, 0};
  struct call *c = &w->calls[op];
  snprintf(email, sizeof email, "key-%d@example.org", op % KEYS);
  racer_value(name, sizeof name, w->index, op);
  c->rc = nodup_update_or_create(w->key, vals, ccols, cvals, 1, scols, svals, 1, &r,
                                 &c->outcome);
  snprintf(c->id, sizeof c->id, "%s", r.id ? r.id : "");
  if (c->rc == NODUP_OK && r.created != (c->outcome == NODUP_CREATED))
    snprintf(w->error, sizeof w->error, "op %d: created %d but outcome %d", op, r.created,
             c->outcome);
  if (c->rc != NODUP_OK && !w->error[0])
    snprintf(w->error, sizeof w->error, "op %d: %s: %s", op, nodup_strerror(c->rc),
             nodup_errmsg(w->db));
}

static void *racer_thread(void *arg) {
  struct racer *w = arg;
  /* Every thread reaches every barrier, even after a failure. */
  for (int op = 0; op < OPS; op++) {
    pthread_barrier_wait(w->barrier);
    racer_call(w, op);
  }
  return NULL;
}

/* Static: a failed assertion longjmps out of the test. */
static struct racer racers[THREADS];

/*
 * The verdict: no error; per key exactly one NODUP_CREATED, at least one
 * NODUP_UPDATED, and one id for every call; one row per key; its value
 * one that a call created or updated it with; its create-only value the
 * creating call's.
 */
static void verify(nodup_db *db, struct racer *w, int n) {
  for (int i = 0; i < n; i++)
    if (w[i].error[0]) fail_msg("racer %d: %s", i, w[i].error);
  for (int k = 0; k < KEYS; k++) {
    const char *id = NULL;
    char email[64], created_by[64] = "", name[128], made[128];
    int created = 0, updated = 0, written = 0;
    snprintf(email, sizeof email, "key-%d@example.org", k);
    for (int i = 0; i < n; i++)
      for (int op = k; op < OPS; op += KEYS) {
        const struct call *c = &w[i].calls[op];
        if (!id) id = c->id;
        else if (strcmp(id, c->id) != 0) fail_msg("key %d: ids %s and %s", k, id, c->id);
        if (c->outcome == NODUP_CREATED) {
          created++;
          racer_value(created_by, sizeof created_by, w[i].index, op);
        }
        updated += c->outcome == NODUP_UPDATED;
      }
    if (created != 1) fail_msg("key %d: NODUP_CREATED %d times", k, created);
    /* Every racer's last call is of the last round, whose values the
     * first round's are not: some call updated the row. */
    if (!updated) fail_msg("key %d: never NODUP_UPDATED", k);
    harness_query_into(db, "SELECT \"name\" FROM \"people\" WHERE \"email\" = $1", email, name,
                       sizeof name);
    harness_query_into(db, "SELECT \"made\" FROM \"people\" WHERE \"email\" = $1", email, made,
                       sizeof made);
    assert_string_equal(made, created_by);
    for (int i = 0; i < n; i++)
      for (int op = k; op < OPS; op += KEYS) {
        char v[64];
        racer_value(v, sizeof v, w[i].index, op);
        written += w[i].calls[op].outcome != NODUP_UNCHANGED && strcmp(v, name) == 0;
      }
    if (!written) fail_msg("key %d: final value '%s' is no write's", k, name);
  }
  assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL), KEYS);
  long long groups = -1, redundant = -1;
  assert_nodup(db, NODUP_OK,
               nodup_count_duplicates(db, "people", email_col, 1, NULL, &groups, &redundant));
  assert_int_equal(groups, 0);
}

static void race_threads(nodup_db *db, int n, nodup_key *(*create)(nodup_db *)) {
  pthread_barrier_t barrier;
  create(db);
  assert_int_equal(pthread_barrier_init(&barrier, NULL, (unsigned)n), 0);
  memset(racers, 0, sizeof racers);
  for (int i = 0; i < n; i++) {
    racers[i].db = harness_connect();
    racers[i].key = harness_key(racers[i].db, "people", email_col, 1, NULL);
    racers[i].index = i;
    racers[i].barrier = &barrier;
  }
  rig_threads_run(n, racer_thread, racers, sizeof racers[0]);
  pthread_barrier_destroy(&barrier);
  verify(db, racers, n);
}

static void test_threads_same_keys(void **state) { race_threads(*state, THREADS, people_key); }

static void test_threads_partitioned(void **state) {
  race_threads(*state, THREADS, partitioned_people_key);
}

/* The database's default isolation SERIALIZABLE (PostgreSQL): the
 * library's own transactions retry 40001 and 40P01 inside the call. */
static void test_threads_serializable(void **state) {
  nodup_db *db = *state;
  if (harness_is_pg()) {
    const char *name = strstr(harness_url(), "dbname=");
    char sql[256];
    assert_non_null(name);
    snprintf(sql, sizeof sql,
             "ALTER DATABASE \"%s\" SET default_transaction_isolation = 'serializable'",
             name + strlen("dbname="));
    harness_exec(db, sql);
  }
  race_threads(db, THREADS, people_key);
}

/* A child's report of one call; writes of this size to a pipe are atomic. */
struct record {
  int racer, op;
  struct call call;
  char error[512];
};
_Static_assert(sizeof(struct record) <= 4096, "a record must fit in PIPE_BUF");

static int racer_child(struct rig_child *child, int index, void *arg) {
  static struct racer w; /* OPS calls are too big for a stack */
  int out_fd = *(int *)arg, rc;
  memset(&w, 0, sizeof w);
  w.index = index;
  rc = nodup_open(&w.db, harness_url());
  if (rc == NODUP_OK) rc = nodup_key_prepare(&w.key, w.db, "people", email_col, 1, NULL);
  rig_child_ready(child);
  for (int op = 0; op < OPS; op++) {
    struct record rec;
    memset(&rec, 0, sizeof rec);
    rec.racer = index;
    rec.op = op;
    if (rc == NODUP_OK) racer_call(&w, op);
    else w.calls[op].rc = rc;
    rec.call = w.calls[op];
    snprintf(rec.error, sizeof rec.error, "%s", w.error);
    if (write(out_fd, &rec, sizeof rec) != (ssize_t)sizeof rec) return 4;
  }
  close(out_fd);
  nodup_key_free(w.key);
  nodup_close(w.db);
  return 0;
}

static struct racer seen[PROCESSES];

static int take_record(void *ctx, const void *record) {
  const struct record *rec = record;
  (void)ctx;
  if (rec->racer < 0 || rec->racer >= PROCESSES || rec->op < 0 || rec->op >= OPS) return 1;
  seen[rec->racer].index = rec->racer;
  seen[rec->racer].calls[rec->op] = rec->call;
  if (rec->error[0] && !seen[rec->racer].error[0])
    snprintf(seen[rec->racer].error, sizeof seen[rec->racer].error, "%s", rec->error);
  return 0;
}

static void test_processes_same_keys(void **state) {
  people_key(*state);
  memset(seen, 0, sizeof seen);
  nodup_db *db = rig_procs_report(state, PROCESSES, racer_child, sizeof(struct record),
                                  PROCESSES * OPS, take_record, NULL);
  verify(db, seen, PROCESSES);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
      T(test_created_updated_unchanged),
      T(test_nothing_to_set_is_get_or_create),
      T(test_outcome_optional),
      T(test_unchanged_writes_nothing),
      T(test_partitioned_table),
      T(test_partial_key),
      T(test_other_constraints_named),
      T(test_null_key_refused),
      T(test_bad_columns_refused),
      T(test_unbacked_key_refused),
      T(test_inside_caller_transaction),
      T(test_stale_snapshot_asks_to_retry),
      T(test_threads_same_keys),
      T(test_threads_serializable),
      T(test_threads_partitioned),
      T(test_processes_same_keys),
#undef T
  };
  return cmocka_run_group_tests_name(harness_is_pg() ? "upsert_pg" : "upsert_sqlite", tests,
                                     NULL, NULL);
}

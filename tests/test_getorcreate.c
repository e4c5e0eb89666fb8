/*
 * test_getorcreate.c -- nodup_get_or_create, nodup_find and nodup_insert:
 * the conformance suite, run unchanged against SQLite and PostgreSQL.
 * Partial keys have their own suite (test_partial.c).
 *
 * Each test gets a fresh database (harness.h). What the library wrote is
 * read back through the raw handle, never through the library, so a test
 * fails when the library lies about what it did.
 */
#include "harness.h"
#include "internal.h" /* key->strategy: each round forced in turn */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT_PEOPLE "SELECT count(*) FROM \"people\""

static const char *const email_col[] = {"email"};

/* people(email) with a unique index: the table most tests start from. */
static nodup_key *people_key(nodup_db *db) {
  harness_exec(db, "CREATE TABLE \"people\" ({id}, \"email\" TEXT NOT NULL,"
                   " \"name\" TEXT);"
                   "CREATE UNIQUE INDEX \"people_email_key\""
                   " ON \"people\" (\"email\")");
  return harness_key(db, "people", email_col, 1, NULL);
}

static int all_digits(const char *s) {
  if (*s == '\0')
    return 0;
  for (; *s != '\0'; s++)
    if (!isdigit((unsigned char)*s))
      return 0;
  return 1;
}

/* ---------------------------------------------------------------------------
 * Created, then existing
 */

static void test_created_then_existing(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  const char *vals[] = {"ada@example.org"};
  const char *name_col[] = {"name"};
  const char *ada[] = {"Ada"};
  const char *bob[] = {"Bob"};
  char first[HARNESS_ID_MAX], second[HARNESS_ID_MAX];

  assert_string_equal(nodup_key_index(key), "people_email_key");
  assert_int_equal(nodup_key_nulls_equal(key), 0);

  assert_int_equal(harness_goc(db, key, vals, name_col, ada, 1, first), 1);
  assert_string_equal(nodup_errmsg(db), "");
  assert_int_equal(harness_goc(db, key, vals, name_col, bob, 1, second), 0);
  assert_string_equal(first, second);

  /* One row, holding the defaults of the call that created it. */
  assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL), 1);
  harness_expect(db, "SELECT \"name\" FROM \"people\" WHERE \"email\" = $1",
                 vals[0], "Ada");
  /* The id is the row's primary key, as the database stores it. */
  harness_expect(db, "SELECT \"id\" FROM \"people\" WHERE \"email\" = $1",
                 vals[0], first);
  assert_true(all_digits(first));

  /* Another key is another row. */
  const char *other[] = {"bob@example.org"};
  assert_int_equal(harness_goc(db, key, other, name_col, bob, 1, second), 1);
  assert_string_not_equal(first, second);
  assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL), 2);
}

static void test_defaults_optional(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  const char *vals[] = {"ada@example.org"};
  char id[HARNESS_ID_MAX];

  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 1);
  harness_expect(db, "SELECT \"name\" FROM \"people\" WHERE \"id\" = $1", id,
                 NULL);
  /* An explicit NULL default is SQL NULL, not the string "NULL". */
  const char *name_col[] = {"name"};
  const char *null_val[] = {NULL};
  const char *other[] = {"bob@example.org"};
  assert_int_equal(harness_goc(db, key, other, name_col, null_val, 1, id), 1);
  harness_expect(db, "SELECT \"name\" FROM \"people\" WHERE \"id\" = $1", id,
                 NULL);
}

static void test_find(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  const char *vals[] = {"ada@example.org"};
  nodup_result result = {"sentinel", 7};
  char id[HARNESS_ID_MAX];

  /* A miss is NODUP_OK with no id, and creates nothing. */
  assert_nodup(db, NODUP_OK, nodup_find(key, vals, &result));
  assert_null(result.id);
  assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL), 0);

  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 1);
  result.created = 7;
  assert_nodup(db, NODUP_OK, nodup_find(key, vals, &result));
  assert_non_null(result.id);
  assert_string_equal(result.id, id);
  assert_int_equal(result.created, 0);
}

/* nodup_insert is a plain INSERT: a duplicate fails, naming the index. */
static void test_insert(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  const char *vals[] = {"ada@example.org"};
  nodup_result result = {NULL, 0};
  char id[HARNESS_ID_MAX];

  assert_nodup(db, NODUP_OK, nodup_insert(key, vals, NULL, NULL, 0, &result));
  assert_non_null(result.id);
  assert_int_equal(result.created, 1);
  snprintf(id, sizeof id, "%s", result.id);
  harness_expect(db, "SELECT \"id\" FROM \"people\" WHERE \"email\" = $1",
                 vals[0], id);

  assert_nodup(db, NODUP_ERR_CONSTRAINT,
               nodup_insert(key, vals, NULL, NULL, 0, &result));
  assert_contains(nodup_errmsg(db),
                  harness_pick("email", "people_email_key"));
  assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL), 1);
  assert_false(harness_in_transaction(db));

  char again[HARNESS_ID_MAX];
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, again), 0);
  assert_string_equal(again, id);
}

/* ---------------------------------------------------------------------------
 * Primary keys: what `id` is
 */

static void test_uuid_primary_key(void **state) {
  nodup_db *db = *state;
  harness_exec(db, harness_pick(
      "CREATE TABLE \"tokens\" (\"id\" TEXT PRIMARY KEY"
      " DEFAULT (lower(hex(randomblob(16)))), \"name\" TEXT NOT NULL);",
      "CREATE TABLE \"tokens\" (\"id\" uuid PRIMARY KEY"
      " DEFAULT gen_random_uuid(), \"name\" TEXT NOT NULL);"));
  harness_exec(db, "CREATE UNIQUE INDEX \"tokens_name_key\""
                   " ON \"tokens\" (\"name\")");
  const char *cols[] = {"name"};
  nodup_key *key = harness_key(db, "tokens", cols, 1, NULL);
  const char *vals[] = {"alpha"};
  char first[HARNESS_ID_MAX], second[HARNESS_ID_MAX];

  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, first), 1);
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, second), 0);
  assert_string_equal(first, second);
  /* The declared primary key, not SQLite's rowid ("1"). */
  harness_expect(db,
                 harness_pick("SELECT \"id\" FROM \"tokens\" WHERE \"name\" = $1",
                              "SELECT \"id\"::text FROM \"tokens\""
                              " WHERE \"name\" = $1"),
                 vals[0], first);
  assert_int_equal(strlen(first), harness_is_pg() ? 36 : 32);
}

/* The columns of a composite primary key, in the key's order (which here
 * differs from the table's column order), joined with ','. */
static void test_composite_primary_key(void **state) {
  nodup_db *db = *state;
  harness_exec(db, "CREATE TABLE \"memberships\" (\"org\" TEXT NOT NULL,"
                   " \"seq\" INTEGER NOT NULL, \"email\" TEXT NOT NULL,"
                   " PRIMARY KEY (\"seq\", \"org\"));"
                   "CREATE UNIQUE INDEX \"memberships_email_key\""
                   " ON \"memberships\" (\"email\")");
  nodup_key *key = harness_key(db, "memberships", email_col, 1, NULL);
  const char *vals[] = {"ada@example.org"};
  const char *dcols[] = {"org", "seq"};
  const char *dvals[] = {"acme", "7"};
  char id[HARNESS_ID_MAX];

  assert_int_equal(harness_goc(db, key, vals, dcols, dvals, 2, id), 1);
  assert_string_equal(id, "7,acme");
  assert_int_equal(harness_goc(db, key, vals, dcols, dvals, 2, id), 0);
  assert_string_equal(id, "7,acme");
}

/* A key may be the primary key itself, including SQLite's rowid alias,
 * which no entry in PRAGMA index_list shows. */
static void test_key_is_primary_key(void **state) {
  nodup_db *db = *state;
  harness_exec(db, "CREATE TABLE \"settings\" (\"id\" INTEGER PRIMARY KEY,"
                   " \"value\" TEXT);"
                   "CREATE TABLE \"flags\" (\"name\" TEXT PRIMARY KEY,"
                   " \"value\" TEXT)");
  const char *id_col[] = {"id"};
  const char *name_col[] = {"name"};
  nodup_key *by_id = harness_key(db, "settings", id_col, 1, NULL);
  nodup_key *by_name = harness_key(db, "flags", name_col, 1, NULL);
  const char *forty_two[] = {"42"};
  const char *beta[] = {"beta"};
  const char *value_col[] = {"value"};
  const char *on[] = {"on"};
  char id[HARNESS_ID_MAX];

  assert_int_equal(harness_goc(db, by_id, forty_two, value_col, on, 1, id), 1);
  assert_string_equal(id, "42");
  assert_int_equal(harness_goc(db, by_id, forty_two, value_col, on, 1, id), 0);
  assert_string_equal(id, "42");
  assert_int_equal(harness_goc(db, by_name, beta, value_col, on, 1, id), 1);
  assert_string_equal(id, "beta");
  assert_int_equal(harness_goc(db, by_name, beta, value_col, on, 1, id), 0);
  assert_string_equal(id, "beta");
}

/* PostgreSQL: no primary key, no id to return. SQLite: the rowid is one. */
static void test_table_without_primary_key(void **state) {
  nodup_db *db = *state;
  harness_exec(db, "CREATE TABLE \"nopk\" (\"email\" TEXT NOT NULL);"
                   "CREATE UNIQUE INDEX \"nopk_email_key\""
                   " ON \"nopk\" (\"email\")");
  if (harness_is_pg()) {
    static char sentinel;
    nodup_key *key = (nodup_key *)&sentinel; /* must be reset to NULL */
    assert_nodup(db, NODUP_ERR_NO_PKEY,
                 nodup_key_prepare(&key, db, "nopk", email_col, 1, NULL));
    assert_null(key);
    assert_contains(nodup_errmsg(db), "nopk");
    return;
  }
  nodup_key *key = harness_key(db, "nopk", email_col, 1, NULL);
  const char *vals[] = {"ada@example.org"};
  char id[HARNESS_ID_MAX];
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 1);
  harness_expect(db, "SELECT rowid FROM \"nopk\" WHERE \"email\" = $1",
                 vals[0], id);
}

/* A unique index on (a, b) backs the key (b, a); values follow the key. */
static void test_key_columns_in_any_order(void **state) {
  nodup_db *db = *state;
  harness_exec(db, "CREATE TABLE \"pairs\" ({id}, \"a\" TEXT NOT NULL,"
                   " \"b\" TEXT NOT NULL);"
                   "CREATE UNIQUE INDEX \"pairs_a_b_key\""
                   " ON \"pairs\" (\"a\", \"b\")");
  const char *cols[] = {"b", "a"};
  nodup_key *key = harness_key(db, "pairs", cols, 2, NULL);
  const char *vals[] = {"value-of-b", "value-of-a"};
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];

  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 1);
  harness_expect(db, "SELECT \"a\" FROM \"pairs\" WHERE \"id\" = $1", id,
                 "value-of-a");
  harness_expect(db, "SELECT \"b\" FROM \"pairs\" WHERE \"id\" = $1", id,
                 "value-of-b");
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, again), 0);
  assert_string_equal(id, again);
}

/* ---------------------------------------------------------------------------
 * Other constraints: surfaced, never reported as "existing"
 */

static const char *const member_cols[] = {"handle", "nickname", "age",
                                          "parent_id"};

static nodup_key *create_members(nodup_db *db) {
  harness_exec(db,
               "CREATE TABLE \"parents\" ({id}, \"name\" TEXT);"
               "INSERT INTO \"parents\" (\"id\", \"name\") VALUES (1, 'p');"
               "CREATE TABLE \"members\" ({id}, \"email\" TEXT NOT NULL,"
               " \"handle\" TEXT, \"nickname\" TEXT NOT NULL,"
               " \"age\" INTEGER, \"parent_id\" INTEGER,"
               " CONSTRAINT \"members_age_nonnegative\" CHECK (\"age\" >= 0),"
               " CONSTRAINT \"members_parent_fk\" FOREIGN KEY (\"parent_id\")"
               " REFERENCES \"parents\" (\"id\"));"
               "CREATE UNIQUE INDEX \"members_email_key\""
               " ON \"members\" (\"email\");"
               "CREATE UNIQUE INDEX \"members_handle_key\""
               " ON \"members\" (\"handle\")");
  return harness_key(db, "members", email_col, 1, NULL);
}

/* get_or_create of `email` must fail with NODUP_ERR_CONSTRAINT, name
 * `names_it`, insert nothing, and leave no transaction open. */
static void expect_constraint(nodup_db *db, nodup_key *key, const char *email,
                              const char *const *dvals, size_t ndefaults,
                              const char *names_it) {
  const char *vals[] = {email};
  nodup_result result = {NULL, 0};
  assert_nodup(db, NODUP_ERR_CONSTRAINT,
               nodup_get_or_create(key, vals, member_cols, dvals, ndefaults,
                                   &result));
  assert_contains(nodup_errmsg(db), names_it);
  assert_int_equal(harness_count(db,
                                 "SELECT count(*) FROM \"members\""
                                 " WHERE \"email\" = $1",
                                 email),
                   0);
  assert_false(harness_in_transaction(db));
}

static void test_constraint_violations(void **state) {
  nodup_db *db = *state;
  nodup_key *key = create_members(db);
  const char *vals[] = {"ada@example.org"};
  const char *valid[] = {"h1", "ada", "30", "1"};
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];
  assert_int_equal(harness_goc(db, key, vals, member_cols, valid, 4, id), 1);

  /* Another unique index: the classic way to be told "existing" wrongly. */
  const char *same_handle[] = {"h1", "bob", "30", "1"};
  expect_constraint(db, key, "bob@example.org", same_handle, 4,
                    harness_pick("handle", "members_handle_key"));
  /* NOT NULL: nickname not given at all, then given as NULL. */
  const char *no_nickname[] = {"h2"};
  expect_constraint(db, key, "bob@example.org", no_nickname, 1, "nickname");
  const char *null_nickname[] = {"h2", NULL, "30", "1"};
  expect_constraint(db, key, "bob@example.org", null_nickname, 4, "nickname");
  /* CHECK, named on both backends. */
  const char *negative_age[] = {"h2", "bob", "-1", "1"};
  expect_constraint(db, key, "bob@example.org", negative_age, 4,
                    "members_age_nonnegative");
  /* FOREIGN KEY: SQLite does not name it, PostgreSQL does. */
  const char *no_parent[] = {"h2", "bob", "30", "999"};
  expect_constraint(db, key, "bob@example.org", no_parent, 4,
                    harness_pick("FOREIGN KEY", "members_parent_fk"));

  /* The connection is still usable, and the failures left no trace. */
  const char *bob_ok[] = {"h2", "bob", "30", "1"};
  const char *bob[] = {"bob@example.org"};
  assert_int_equal(harness_goc(db, key, bob, member_cols, bob_ok, 4, again), 1);
  assert_string_not_equal(id, again);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"members\"", NULL),
                   2);
}

/* Defaults are never evaluated on a hit, even ones that would violate
 * every constraint of the table. */
static void test_hit_ignores_invalid_defaults(void **state) {
  nodup_db *db = *state;
  nodup_key *key = create_members(db);
  const char *vals[] = {"ada@example.org"};
  const char *valid[] = {"h1", "ada", "30", "1"};
  const char *invalid[] = {"h1", NULL, "-1", "999"};
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];

  assert_int_equal(harness_goc(db, key, vals, member_cols, valid, 4, id), 1);
  assert_int_equal(harness_goc(db, key, vals, member_cols, invalid, 4, again),
                   0);
  assert_string_equal(id, again);
  harness_expect(db, "SELECT \"age\" FROM \"members\" WHERE \"id\" = $1", id,
                 "30");
}

static void test_unknown_default_column(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  const char *vals[] = {"ada@example.org"};
  const char *dcols[] = {"no_such_default"};
  const char *dvals[] = {"x"};
  nodup_result result;

  int rc = nodup_get_or_create(key, vals, dcols, dvals, 1, &result);
  if (rc == NODUP_OK)
    fail_msg("a default for a missing column was accepted");
  assert_contains(nodup_errmsg(db), "no_such_default");
  assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL), 0);
  assert_false(harness_in_transaction(db));
}

/* ---------------------------------------------------------------------------
 * NULL in a key
 */

static void test_null_key_refused(void **state) {
  nodup_db *db = *state;
  harness_exec(db, "CREATE TABLE \"pairs\" ({id}, \"first_part\" TEXT,"
                   " \"second_part\" TEXT);"
                   "CREATE UNIQUE INDEX \"pairs_key\""
                   " ON \"pairs\" (\"first_part\", \"second_part\")");
  const char *cols[] = {"first_part", "second_part"};
  nodup_key *key = harness_key(db, "pairs", cols, 2, NULL);
  assert_int_equal(nodup_key_nulls_equal(key), 0);
  const char *half_null[] = {"x", NULL};
  const char *all_null[] = {NULL, NULL};
  nodup_result result;

  /* NULLs never conflict: the index cannot enforce such a key. */
  assert_nodup(db, NODUP_ERR_NULL_KEY,
               nodup_get_or_create(key, half_null, NULL, NULL, 0, &result));
  assert_nodup(db, NODUP_ERR_NULL_KEY,
               nodup_get_or_create(key, all_null, NULL, NULL, 0, &result));
  assert_nodup(db, NODUP_ERR_NULL_KEY, nodup_find(key, half_null, &result));
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"pairs\"", NULL),
                   0);
  /* The message says which column was NULL. */
  assert_contains(nodup_errmsg(db), "second_part");
}

/* The empty string is a value, not NULL. */
static void test_empty_string_key(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  const char *empty[] = {""};
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];
  assert_int_equal(harness_goc(db, key, empty, NULL, NULL, 0, id), 1);
  assert_int_equal(harness_goc(db, key, empty, NULL, NULL, 0, again), 0);
  assert_string_equal(id, again);
  harness_expect(db, "SELECT \"email\" FROM \"people\" WHERE \"id\" = $1", id,
                 "");
}

/* ---------------------------------------------------------------------------
 * Identifiers and values that need care
 */

static void test_identifiers_needing_quotes(void **state) {
  nodup_db *db = *state;
  harness_exec(db,
               "CREATE TABLE \"order\" ({id}, \"CamelCase\" TEXT NOT NULL,"
               " \"we\"\"ird\" TEXT, \"select\" TEXT);"
               "CREATE UNIQUE INDEX \"order by camel\""
               " ON \"order\" (\"CamelCase\");"
               "CREATE TABLE \"my table\" ({id}, \"we\"\"ird\" TEXT NOT NULL,"
               " \"Flag\" TEXT NOT NULL);"
               "CREATE UNIQUE INDEX \"my table we\"\"ird\""
               " ON \"my table\" (\"we\"\"ird\") WHERE \"Flag\" = 'on'");
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];

  const char *camel[] = {"CamelCase"};
  nodup_key *order = harness_key(db, "order", camel, 1, NULL);
  assert_string_equal(nodup_key_index(order), "order by camel");
  const char *vals[] = {"first"};
  const char *dcols[] = {"we\"ird", "select"};
  const char *dvals[] = {"quoted", "reserved"};
  assert_int_equal(harness_goc(db, order, vals, dcols, dvals, 2, id), 1);
  assert_int_equal(harness_goc(db, order, vals, dcols, dvals, 2, again), 0);
  assert_string_equal(id, again);
  harness_expect(db, "SELECT \"we\"\"ird\" FROM \"order\" WHERE \"id\" = $1",
                 id, "quoted");
  harness_expect(db, "SELECT \"select\" FROM \"order\" WHERE \"id\" = $1", id,
                 "reserved");

  const char *weird[] = {"we\"ird"};
  nodup_key *spaced =
      harness_key(db, "my table", weird, 1, "\"Flag\" = 'on'");
  assert_string_equal(nodup_key_index(spaced), "my table we\"ird");
  const char *flag_col[] = {"Flag"};
  const char *on[] = {"on"};
  assert_int_equal(harness_goc(db, spaced, vals, flag_col, on, 1, id), 1);
  assert_int_equal(harness_goc(db, spaced, vals, flag_col, on, 1, again), 0);
  assert_string_equal(id, again);
  harness_expect(db,
                 "SELECT \"we\"\"ird\" FROM \"my table\" WHERE \"id\" = $1",
                 id, "first");

  /* count_duplicates quotes them too. */
  long long groups = -1;
  assert_nodup(db, NODUP_OK,
               nodup_count_duplicates(db, "order", camel, 1, NULL, &groups,
                                      NULL));
  assert_int_equal(groups, 0);
}

/* Values are bound, never spliced: each is stored and found verbatim. */
static void test_hostile_values(void **state) {
  nodup_db *db = *state;
  harness_exec(db, "CREATE TABLE \"x\" (\"v\" INTEGER);"
                   "INSERT INTO \"x\" (\"v\") VALUES (1)");
  nodup_key *key = people_key(db);
  static const char *const hostile[] = {
      "'; DROP TABLE x; --",
      "Robert'); DROP TABLE \"people\";--",
      "O'Brien \"quoted\" back\\slash \\x00 \\' %s%n $1 ?",
      "Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x8e\x89",
      "line one\nline two\ttab\r",
      "  padded  ",
      "NULL",
  };
  const char *name_col[] = {"name"};
  char ids[COUNT_OF(hostile)][HARNESS_ID_MAX];
  char again[HARNESS_ID_MAX];

  for (size_t i = 0; i < COUNT_OF(hostile); i++) {
    const char *vals[] = {hostile[i]};
    const char *dvals[] = {hostile[i]};
    assert_int_equal(harness_goc(db, key, vals, name_col, dvals, 1, ids[i]), 1);
  }
  for (size_t i = 0; i < COUNT_OF(hostile); i++) {
    const char *vals[] = {hostile[i]};
    nodup_result found = {NULL, 0};
    assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, again), 0);
    assert_string_equal(again, ids[i]);
    assert_nodup(db, NODUP_OK, nodup_find(key, vals, &found));
    assert_non_null(found.id);
    assert_string_equal(found.id, ids[i]);
    harness_expect(db, "SELECT \"email\" FROM \"people\" WHERE \"id\" = $1",
                   ids[i], hostile[i]);
    harness_expect(db, "SELECT \"name\" FROM \"people\" WHERE \"id\" = $1",
                   ids[i], hostile[i]);
  }
  assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL),
                   (long long)COUNT_OF(hostile));
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"x\"", NULL), 1);
}

/* ---------------------------------------------------------------------------
 * Transactions
 */

/* Inside the caller's transaction the insert is the caller's: a rollback
 * takes it back. */
static void test_inside_caller_transaction(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  const char *vals[] = {"ada@example.org"};
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];

  harness_exec(db, "BEGIN");
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 1);
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, again), 0);
  assert_string_equal(id, again);
  assert_true(harness_in_transaction(db));
  harness_exec(db, "ROLLBACK");
  assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL), 0);

  harness_exec(db, "BEGIN");
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 1);
  assert_true(harness_in_transaction(db));
  harness_exec(db, "COMMIT");
  assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL), 1);
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, again), 0);
  assert_string_equal(id, again);
}

/* Outside one, the library owns the transaction and ends it on every path. */
static void test_no_transaction_left_open(void **state) {
  nodup_db *db = *state;
  nodup_key *key = create_members(db);
  const char *vals[] = {"ada@example.org"};
  const char *valid[] = {"h1", "ada", "30", "1"};
  const char *null_vals[] = {NULL};
  nodup_result result;
  char id[HARNESS_ID_MAX];

  assert_int_equal(harness_goc(db, key, vals, member_cols, valid, 4, id), 1);
  assert_false(harness_in_transaction(db));
  assert_int_equal(harness_goc(db, key, vals, member_cols, valid, 4, id), 0);
  assert_false(harness_in_transaction(db));
  assert_nodup(db, NODUP_OK, nodup_find(key, vals, &result));
  assert_false(harness_in_transaction(db));
  assert_nodup(db, NODUP_ERR_NULL_KEY,
               nodup_get_or_create(key, null_vals, NULL, NULL, 0, &result));
  assert_false(harness_in_transaction(db));
  const char *other[] = {"bob@example.org"};
  assert_nodup(db, NODUP_ERR_CONSTRAINT,
               nodup_get_or_create(key, other, member_cols, valid, 4, &result));
  assert_false(harness_in_transaction(db));
  /* A message does not outlive the next successful call. */
  assert_string_not_equal(nodup_errmsg(db), "");
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 0);
  assert_string_equal(nodup_errmsg(db), "");
}

/* ---------------------------------------------------------------------------
 * Rounds: PostgreSQL picks how a call starts (lookup alone, pipelined,
 * insert alone) from the hit rate its key observes. Each, forced, keeps
 * every promise; SQLite has one round and ignores the choice.
 */

static void strategy_promises(nodup_db *db, key_strategy how) {
  nodup_key *key = create_members(db);
  const char *ada[] = {"ada@example.org"}, *bob[] = {"bob@example.org"};
  const char *eve[] = {"eve@example.org"};
  const char *valid[] = {"h1", "ada", "30", "1"}, *valid2[] = {"h2", "bob", "30", "1"};
  const char *valid3[] = {"h3", "eve", "30", "1"};
  const char *invalid[] = {"h1", NULL, "-1", "999"};
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX], next[HARNESS_ID_MAX];
  key->strategy = how;

  assert_int_equal(harness_goc(db, key, ada, member_cols, valid, 4, id), 1);
  /* Hits: the same row, defaults never evaluated, no sequence value. */
  for (int i = 0; i < 5; i++) {
    assert_int_equal(harness_goc(db, key, ada, member_cols, invalid, 4, again), 0);
    assert_string_equal(id, again);
  }
  assert_int_equal(harness_goc(db, key, bob, member_cols, valid2, 4, next), 1);
  assert_int_equal(atoll(next), atoll(id) + 1);
  /* Another constraint is named, and not taken for the key's. */
  expect_constraint(db, key, "eve@example.org", valid, 4,
                    harness_pick("handle", "members_handle_key"));
  assert_false(harness_in_transaction(db));
  /* Inside the caller's transaction, the insert is the caller's. */
  harness_exec(db, "BEGIN");
  assert_int_equal(harness_goc(db, key, eve, member_cols, valid3, 4, id), 1);
  assert_int_equal(harness_goc(db, key, eve, member_cols, valid3, 4, again), 0);
  assert_string_equal(id, again);
  harness_exec(db, "ROLLBACK");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"members\"", NULL), 2);
  harness_exec(db, "DROP TABLE \"members\"; DROP TABLE \"parents\"");
}

static void test_each_round_keeps_the_promises(void **state) {
  nodup_db *db = *state;
  strategy_promises(db, KEY_LOOKUP_FIRST);
  strategy_promises(db, KEY_PIPELINED);
  strategy_promises(db, KEY_INSERT_FIRST);
  strategy_promises(db, KEY_ADAPTIVE);
}

/* The observed hit rate follows the workload, both ways. */
static void test_hit_rate_follows_the_workload(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  char v[64], id[HARNESS_ID_MAX];
  const char *vals[] = {v};
  assert_int_equal(key->strategy, KEY_ADAPTIVE);
  assert_int_equal(key->hit_rate, KEY_HIT_ONE / 2);
  snprintf(v, sizeof v, "hit@example.org");
  for (int i = 0; i < 40; i++) harness_goc(db, key, vals, NULL, NULL, 0, id);
  assert_true(key->hit_rate >= KEY_HIT_ONE * 9 / 10);
  for (int i = 0; i < 60; i++) {
    snprintf(v, sizeof v, "miss-%d@example.org", i);
    assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 1);
  }
  assert_true(key->hit_rate <= KEY_HIT_ONE / 10);
  assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL), 61);
}

/* What each round sends for a miss, from the state the call leaves on the
 * key (PostgreSQL; SQLite has one round): the last send and how many
 * statements it carried. A lookup that missed is followed by the insert
 * alone, not by the insert and the lookup again; the pipelined round
 * carries both; a key at 20% hits starts with the insert alone. */
static void test_each_round_sends_what_a_miss_needs(void **state) {
  nodup_db *db = *state;
  nodup_key *key;
  char v[64], id[HARNESS_ID_MAX];
  const char *vals[] = {v};
  if (!harness_is_pg()) skip();
  key = people_key(db);
  key->strategy = KEY_LOOKUP_FIRST;
  snprintf(v, sizeof v, "first@example.org");
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 1);
  assert_int_equal(key->call.how, KEY_LOOKUP_FIRST);
  assert_int_equal(key->call.rd.nsent, 1);
  key->strategy = KEY_PIPELINED;
  snprintf(v, sizeof v, "second@example.org");
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 1);
  assert_int_equal(key->call.rd.nsent, 2);
  key->strategy = KEY_ADAPTIVE;
  key->hit_rate = KEY_HIT_ONE / 5;
  snprintf(v, sizeof v, "third@example.org");
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 1);
  assert_int_equal(key->call.how, KEY_INSERT_FIRST);
  assert_int_equal(key->call.rd.nsent, 1);
  assert_int_equal(harness_count(db, COUNT_PEOPLE, NULL), 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
      T(test_created_then_existing),
      T(test_defaults_optional),
      T(test_find),
      T(test_insert),
      T(test_uuid_primary_key),
      T(test_composite_primary_key),
      T(test_key_is_primary_key),
      T(test_table_without_primary_key),
      T(test_key_columns_in_any_order),
      T(test_constraint_violations),
      T(test_hit_ignores_invalid_defaults),
      T(test_unknown_default_column),
      T(test_null_key_refused),
      T(test_empty_string_key),
      T(test_identifiers_needing_quotes),
      T(test_hostile_values),
      T(test_inside_caller_transaction),
      T(test_no_transaction_left_open),
      T(test_each_round_keeps_the_promises),
      T(test_hit_rate_follows_the_workload),
      T(test_each_round_sends_what_a_miss_needs),
#undef T
  };
  return cmocka_run_group_tests_name(harness_is_pg() ? "getorcreate_pg"
                                                     : "getorcreate_sqlite",
                                     tests, NULL, NULL);
}

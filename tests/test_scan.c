/*
 * test_scan.c -- nodup_scan against both backends: duplicate groups, and
 * for every referencing table what a merge would re-point and what would
 * collide. The numbers below are worked out by hand from the fixtures; a
 * wrong mapping (keeper chosen differently, loser-vs-loser collisions
 * missed, an FK counted twice) changes them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "nodup.h"
#include "fixtures.h"


static const nodup_scan_ref *find_ref(const nodup_scan_report *r, const char *table,
                                      const char *col) {
  size_t i;
  for (i = 0; i < r->nrefs; i++)
    if (strstr(r->refs[i].table, table) && !strcmp(r->refs[i].cols[0], col))
      return &r->refs[i];
  fail_msg("no reference from %s(%s)", table, col);
  return NULL;
}

static void test_seed000(void **state) {
  nodup_db *db = *state;
  nodup_scan_report *r = NULL;
  const char *key[] = {"conference_id", "app_id"};
  const nodup_scan_ref *f;

  harness_exec(db, seed000);
  assert_int_equal(nodup_scan(&r, db, "conference", key, 2, NULL, NULL), NODUP_OK);
  /* (c1, 7) x3: keeper 1, losers 2 and 3. NULL conference_ids never group. */
  assert_int_equal(r->groups, 1);
  assert_int_equal(r->redundant, 2);
  assert_int_equal(r->nlargest, 1);
  assert_string_equal(r->largest[0].values[0], "c1");
  assert_string_equal(r->largest[0].values[1], "7");
  assert_int_equal(r->largest[0].rows, 3);
  /* event, conference_participant, summary, conference itself: the audit
   * log has no declared FK. */
  assert_int_equal(r->nrefs, 4);

  f = find_ref(r, "\"event\"", "conference");
  assert_int_equal(f->repoint, 3);
  assert_int_equal(f->collide, 0);
  assert_false(f->one_to_one);

  /* Link table: (2,1) and (3,1) collide with the keeper's (1,1); (2,2) and
   * (3,2) collide with each other, no keeper row involved. */
  f = find_ref(r, "conference_participant", "conference");
  assert_int_equal(f->repoint, 5);
  assert_int_equal(f->collide, 3);
  assert_non_null(f->collide_index);
  assert_false(f->one_to_one);

  f = find_ref(r, "summary", "conference");
  assert_true(f->one_to_one);
  assert_int_equal(f->repoint, 2);
  assert_int_equal(f->collide, 2);

  f = find_ref(r, "\"conference\"", "parent_id");
  assert_int_equal(f->repoint, 1);
  assert_string_equal(f->ref_cols[0], "id");
  nodup_scan_free(r);
}

static void test_nulls_equal_and_where(void **state) {
  nodup_db *db = *state;
  nodup_scan_report *r = NULL;
  const char *key[] = {"conference_id", "app_id"};
  nodup_scan_options opt;

  harness_exec(db, seed000);
  memset(&opt, 0, sizeof opt);
  opt.nulls_equal = 1;
  assert_int_equal(nodup_scan(&r, db, "conference", key, 2, NULL, &opt), NODUP_OK);
  assert_int_equal(r->groups, 2);
  assert_int_equal(r->redundant, 3);
  assert_null(r->largest[1].values[0]); /* the NULL group */
  nodup_scan_free(r);

  /* A predicate narrows the rows that can be duplicates. */
  assert_int_equal(nodup_scan(&r, db, "conference", key, 2, "\"id\" <> 3", NULL), NODUP_OK);
  assert_int_equal(r->groups, 1);
  assert_int_equal(r->redundant, 1);
  nodup_scan_free(r);
}

static void test_user_declared_reference(void **state) {
  nodup_db *db = *state;
  nodup_scan_report *r = NULL;
  const char *key[] = {"conference_id", "app_id"};
  const char *refs[] = {"audit_log(object_id)"};
  const char *bad[] = {"audit_log"};
  nodup_scan_options opt;
  const nodup_scan_ref *f;

  harness_exec(db, seed000);
  memset(&opt, 0, sizeof opt);
  opt.refs = refs;
  opt.nrefs = 1;
  assert_int_equal(nodup_scan(&r, db, "conference", key, 2, NULL, &opt), NODUP_OK);
  assert_int_equal(r->nrefs, 5);
  f = find_ref(r, "audit_log", "object_id");
  assert_false(f->declared);
  assert_null(f->constraint);
  assert_int_equal(f->repoint, 3);
  nodup_scan_free(r);

  opt.refs = bad;
  r = NULL;
  assert_int_equal(nodup_scan(&r, db, "conference", key, 2, NULL, &opt), NODUP_ERR_USAGE);
  assert_null(r);
  assert_non_null(strstr(nodup_errmsg(db), "audit_log"));
}

/* A two-column FK to a unique key other than the primary key: losers are
 * mapped by the referenced columns' values, in constraint order. */
static void test_multicolumn_fk_to_unique(void **state) {
  nodup_db *db = *state;
  nodup_scan_report *r = NULL;
  const char *key[] = {"name", "country"};
  const nodup_scan_ref *f;

  harness_exec(db, seed000);
  assert_int_equal(nodup_scan(&r, db, "region", key, 2, NULL, NULL), NODUP_OK);
  assert_int_equal(r->groups, 1);
  assert_int_equal(r->nrefs, 1);
  f = &r->refs[0];
  assert_int_equal(f->ncols, 2);
  assert_string_equal(f->cols[0], "region_code");
  assert_string_equal(f->ref_cols[0], "code");
  assert_string_equal(f->cols[1], "region_country");
  assert_string_equal(f->ref_cols[1], "country");
  assert_int_equal(f->repoint, 2);
  nodup_scan_free(r);
}

static void test_errors(void **state) {
  nodup_db *db = *state;
  nodup_scan_report *r = NULL;
  const char *key[] = {"conference_id"};
  const char *nokey[] = {"nope"};
  harness_exec(db, seed000);
  assert_int_equal(nodup_scan(&r, db, "nope", key, 1, NULL, NULL), NODUP_ERR_NO_TABLE);
  assert_non_null(strstr(nodup_errmsg(db), "nope"));
  assert_int_equal(nodup_scan(&r, db, "conference", nokey, 1, NULL, NULL), NODUP_ERR_NO_COLUMN);
  assert_non_null(strstr(nodup_errmsg(db), "nope"));
  assert_null(r);
  nodup_scan_free(NULL);
}

/* Chinook: the playlists "Music" (1, 8) share the same 3,290 tracks and
 * "TV Shows" (3, 10) the same 213; "Movies" and "Audiobooks" are empty
 * duplicates. Every re-pointed link collides. */
static void test_chinook_playlists(void **state) {
  nodup_db *db = *state;
  nodup_scan_report *r = NULL;
  const char *key_sqlite[] = {"Name"}, *key_pg[] = {"name"};
  const nodup_scan_ref *f;

  db = harness_load_chinook(state);
  assert_int_equal(nodup_scan(&r, db, harness_is_pg() ? "playlist" : "Playlist",
                              harness_is_pg() ? key_pg : key_sqlite, 1, NULL, NULL),
                   NODUP_OK);
  assert_int_equal(r->groups, 4);
  assert_int_equal(r->redundant, 4);
  assert_int_equal(r->nrefs, 1);
  f = &r->refs[0];
  assert_int_equal(f->repoint, 3290 + 213);
  assert_int_equal(f->collide, 3290 + 213);
  nodup_scan_free(r);
}

/* References no foreign key declares, on both engines: the rules that
 * suspect a column, those that leave one alone, and what refs and
 * ignore_refs do to the list. */
static const char *const suspects_schema =
    "CREATE TABLE \"users\" ({id}, \"email\" TEXT NOT NULL);"
    "CREATE TABLE \"orders\" ({id}, \"user_id\" INTEGER REFERENCES \"users\" (\"id\"));"
    /* Same name and type as orders' key: suspected (same_name). */
    "CREATE TABLE \"invoices\" ({id}, \"user_id\" INTEGER);"
    /* <table>_id: suspected (table_id). */
    "CREATE TABLE \"visits\" ({id}, \"users_id\" INTEGER);"
    /* A link table without keys: its primary key's columns may be
     * references (same_name). */
    "CREATE TABLE \"user_groups\" (\"user_id\" INTEGER NOT NULL, \"group_id\" INTEGER NOT NULL,"
    " PRIMARY KEY (\"user_id\", \"group_id\"));"
    /* Rails: x_id beside a text x_type: suspected, for class User. */
    "CREATE TABLE \"comments\" ({id}, \"commentable_type\" VARCHAR(40),"
    " \"commentable_id\" INTEGER);"
    /* Never suspected: another type, a primary key, nodup's own table, a
     * name that says nothing, a column with a key to another table. */
    "CREATE TABLE \"logins\" ({id}, \"user_id\" TEXT);"
    "CREATE TABLE \"badges\" (\"user_id\" INTEGER PRIMARY KEY, \"label\" TEXT);"
    "CREATE TABLE \"nodup_notes\" ({id}, \"user_id\" INTEGER);"
    "CREATE TABLE \"audit\" ({id}, \"owner_id\" INTEGER);"
    "CREATE TABLE \"posts\" ({id}, \"users_id\" INTEGER REFERENCES \"orders\" (\"id\"));"
    "INSERT INTO \"users\" (\"id\", \"email\") VALUES (1, 'a'), (2, 'a'), (3, 'b');"
    "INSERT INTO \"orders\" (\"id\", \"user_id\") VALUES (1, 2);"
    "INSERT INTO \"invoices\" (\"user_id\") VALUES (2), (2), (1), (3);"
    "INSERT INTO \"visits\" (\"users_id\") VALUES (2), (3);"
    "INSERT INTO \"user_groups\" (\"user_id\", \"group_id\") VALUES (2, 10), (1, 10), (2, 11);"
    "INSERT INTO \"comments\" (\"commentable_type\", \"commentable_id\") VALUES"
    " ('User', 2), ('Post', 2), ('User', 1);"
    "INSERT INTO \"logins\" (\"user_id\") VALUES ('2');"
    "INSERT INTO \"badges\" (\"user_id\", \"label\") VALUES (2, 'x');"
    "INSERT INTO \"nodup_notes\" (\"user_id\") VALUES (2);"
    "INSERT INTO \"audit\" (\"owner_id\") VALUES (2);"
    "INSERT INTO \"posts\" (\"users_id\") VALUES (1)";

static const nodup_scan_suspect *find_suspect(const nodup_scan_report *r, const char *table) {
  size_t i;
  for (i = 0; i < r->nsuspects; i++)
    if (!strcmp(r->suspects[i].table_name, table)) return &r->suspects[i];
  return NULL;
}

static void test_suspected_references(void **state) {
  nodup_db *db = *state;
  nodup_scan_report *r = NULL;
  const char *key[] = {"email"};
  const nodup_scan_suspect *s;

  harness_exec(db, suspects_schema);
  assert_nodup(db, NODUP_OK, nodup_scan(&r, db, "users", key, 1, NULL, NULL));
  assert_int_equal(r->nrefs, 1); /* orders */
  assert_int_equal(r->nsuspects, 4);

  s = find_suspect(r, "user_groups");
  assert_non_null(s);
  assert_int_equal(s->kind, NODUP_SUSPECT_SAME_NAME);
  assert_string_equal(s->column, "user_id");
  assert_int_equal(s->rows, 2);

  s = find_suspect(r, "invoices");
  assert_non_null(s);
  assert_int_equal(s->kind, NODUP_SUSPECT_SAME_NAME);
  assert_string_equal(s->column, "user_id");
  assert_string_equal(s->ref_column, "id");
  assert_null(s->condition);
  assert_int_equal(s->rows, 2); /* keeper 1, loser 2 */
  assert_string_equal(s->ref, "invoices(user_id)");
  assert_string_equal(s->ignore, "invoices(user_id)");
  assert_contains(s->why, "orders");

  s = find_suspect(r, "visits");
  assert_non_null(s);
  assert_int_equal(s->kind, NODUP_SUSPECT_TABLE_ID);
  assert_string_equal(s->column, "users_id");
  assert_int_equal(s->rows, 1);

  s = find_suspect(r, "comments");
  assert_non_null(s);
  assert_int_equal(s->kind, NODUP_SUSPECT_RAILS);
  assert_string_equal(s->column, "commentable_id");
  assert_string_equal(s->condition, "commentable_type = 'User'");
  assert_string_equal(s->ref, "comments(commentable_id) WHERE commentable_type = 'User'");
  assert_int_equal(s->rows, 1); /* not the Post's comment */
  nodup_scan_free(r);

  /* A reference the caller gives (with its condition) is a reference, no
   * longer a suspect; an ignored one is not listed. */
  {
    const char *refs[] = {"comments(commentable_id) WHERE commentable_type = 'User'"};
    const char *ignore[] = {"visits( users_id )"};
    nodup_scan_options opt;
    const nodup_scan_ref *f;
    memset(&opt, 0, sizeof opt);
    opt.refs = refs;
    opt.nrefs = 1;
    opt.ignore_refs = ignore;
    opt.nignore_refs = 1;
    assert_nodup(db, NODUP_OK, nodup_scan(&r, db, "users", key, 1, NULL, &opt));
    assert_int_equal(r->nsuspects, 2);
    assert_non_null(find_suspect(r, "invoices"));
    assert_non_null(find_suspect(r, "user_groups"));
    assert_int_equal(r->nrefs, 2);
    f = find_ref(r, "comments", "commentable_id");
    assert_false(f->declared);
    assert_false(f->inferred);
    assert_string_equal(f->condition, "commentable_type = 'User'");
    assert_int_equal(f->repoint, 1);
    nodup_scan_free(r);
  }
}

/* What refs and ignore_refs refuse: each by name, nothing scanned. */
static void test_reference_specs_refused(void **state) {
  nodup_db *db = *state;
  nodup_scan_report *r = NULL;
  const char *key[] = {"email"};
  static const struct {
    const char *ref, *ignore;
    int rc;
    const char *says;
  } bad[] = {
      {NULL, "visits(nope)", NODUP_ERR_NO_COLUMN, "nope"},
      {NULL, "nope(users_id)", NODUP_ERR_NO_TABLE, "nope"},
      {NULL, "visits", NODUP_ERR_USAGE, "TABLE(COL)"},
      {NULL, "visits(users_id) WHERE 1 = 1", NODUP_ERR_USAGE, "TABLE(COL)"},
      {"comments(commentable_id) WHERE", NULL, NODUP_ERR_USAGE, "[WHERE condition]"},
      {"comments(commentable_id) WHEN x = 1", NULL, NODUP_ERR_USAGE, "[WHERE condition]"},
      /* SQLite says "no such column" as a plain SQL error: NODUP_ERR_USAGE. */
      {"comments(commentable_id) WHERE nope = 1", NULL, -1, "nope"},
      {"comments(commentable_id) WHERE 1 = 1; DROP TABLE audit", NULL, NODUP_ERR_USAGE,
       "one SQL expression"},
      {"comments(commentable_id) WHERE 1 = 1) OR (1 = 1", NULL, NODUP_ERR_USAGE,
       "one SQL expression"},
  };
  size_t i;
  harness_exec(db, suspects_schema);
  for (i = 0; i < COUNT_OF(bad); i++) {
    nodup_scan_options opt;
    int rc, want;
    memset(&opt, 0, sizeof opt);
    opt.refs = &bad[i].ref;
    opt.nrefs = bad[i].ref ? 1 : 0;
    opt.ignore_refs = &bad[i].ignore;
    opt.nignore_refs = bad[i].ignore ? 1 : 0;
    rc = nodup_scan(&r, db, "users", key, 1, NULL, &opt);
    want = bad[i].rc >= 0 ? bad[i].rc : harness_is_pg() ? NODUP_ERR_NO_COLUMN : NODUP_ERR_USAGE;
    if (rc != want)
      fail_msg("%s / %s: %s, want %s: %s", bad[i].ref ? bad[i].ref : "-",
               bad[i].ignore ? bad[i].ignore : "-", nodup_strerror(rc),
               nodup_strerror(want), nodup_errmsg(db));
    assert_null(r);
    assert_contains(nodup_errmsg(db), bad[i].says);
  }
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"audit\"", NULL), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
      T(test_seed000),
      T(test_nulls_equal_and_where),
      T(test_user_declared_reference),
      T(test_multicolumn_fk_to_unique),
      T(test_errors),
      T(test_chinook_playlists),
      T(test_suspected_references),
      T(test_reference_specs_refused),
#undef T
  };
  return cmocka_run_group_tests_name(harness_is_pg() ? "scan_pg" : "scan_sqlite", tests,
                                     NULL, NULL);
}

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

/* Seed 000's shape: conferences with events, a many-to-many participant
 * link, a one-to-one summary, a self-reference; plus a parent referenced
 * through a two-column foreign key to a unique key that is not the primary
 * key, and an audit table whose reference the catalog cannot see. */
static const char *const seed000 =
    "CREATE TABLE \"conference\" ({id}, \"conference_id\" TEXT, \"app_id\" INTEGER NOT NULL,"
    " \"parent_id\" INTEGER REFERENCES \"conference\" (\"id\"));"
    "CREATE TABLE \"event\" ({id}, \"conference\" INTEGER NOT NULL REFERENCES \"conference\" (\"id\"));"
    "CREATE TABLE \"participant\" ({id}, \"name\" TEXT NOT NULL);"
    "CREATE TABLE \"conference_participant\" ({id},"
    " \"conference\" INTEGER NOT NULL REFERENCES \"conference\" (\"id\"),"
    " \"participant\" INTEGER NOT NULL REFERENCES \"participant\" (\"id\"),"
    " UNIQUE (\"conference\", \"participant\"));"
    "CREATE TABLE \"summary\" ({id}, \"conference\" INTEGER NOT NULL UNIQUE"
    " REFERENCES \"conference\" (\"id\"), \"text\" TEXT);"
    "CREATE TABLE \"audit_log\" ({id}, \"object_id\" INTEGER);"
    "INSERT INTO \"conference\" (\"id\", \"conference_id\", \"app_id\") VALUES"
    " (1, 'c1', 7), (2, 'c1', 7), (3, 'c1', 7), (4, 'c2', 7), (5, NULL, 7), (6, NULL, 7);"
    "UPDATE \"conference\" SET \"parent_id\" = 2 WHERE \"id\" = 4;"
    "INSERT INTO \"event\" (\"conference\") VALUES (1), (2), (2), (3), (4);"
    "INSERT INTO \"participant\" (\"id\", \"name\") VALUES (1, 'p1'), (2, 'p2'), (3, 'p3');"
    "INSERT INTO \"conference_participant\" (\"conference\", \"participant\") VALUES"
    " (1, 1), (2, 1), (3, 1), (2, 2), (3, 2), (3, 3), (4, 3);"
    "INSERT INTO \"summary\" (\"conference\", \"text\") VALUES (1, 'a'), (2, 'b'), (3, 'c');"
    "INSERT INTO \"audit_log\" (\"object_id\") VALUES (1), (2), (3), (3);"
    "CREATE TABLE \"region\" ({id}, \"code\" TEXT NOT NULL, \"country\" TEXT NOT NULL,"
    " \"name\" TEXT NOT NULL, UNIQUE (\"code\", \"country\"));"
    "CREATE TABLE \"store\" ({id}, \"region_code\" TEXT, \"region_country\" TEXT,"
    " FOREIGN KEY (\"region_code\", \"region_country\")"
    " REFERENCES \"region\" (\"code\", \"country\"));"
    "INSERT INTO \"region\" (\"id\", \"code\", \"country\", \"name\") VALUES"
    " (1, 'N', 'FR', 'Nord'), (2, 'NO', 'FR', 'Nord'), (3, 'S', 'FR', 'Sud');"
    "INSERT INTO \"store\" (\"region_code\", \"region_country\") VALUES"
    " ('N', 'FR'), ('NO', 'FR'), ('NO', 'FR'), ('S', 'FR')";

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
static void load_chinook(nodup_db **db) {
  const char *dir = getenv("NODUP_DATASETS");
  char path[4096];
  assert_non_null(dir);
  if (!harness_is_pg()) {
    char cmd[8192];
    nodup_db *copy = NULL;
    const char *src;
    snprintf(path, sizeof path, "%s/chinook/Chinook_Sqlite.sqlite", dir);
    src = harness_url();
    /* harness_url() is file:PATH?mode=rwc: copy the dataset over it. */
    snprintf(cmd, sizeof cmd, "cp '%s' '%.*s' && chmod u+w '%.*s'", path,
             (int)(strchr(src, '?') - src - 5), src + 5, (int)(strchr(src, '?') - src - 5),
             src + 5);
    nodup_close(*db);
    *db = NULL;
    assert_int_equal(system(cmd), 0);
    assert_int_equal(nodup_open(&copy, src), NODUP_OK);
    *db = copy;
  } else {
    FILE *f;
    long n;
    char *sql, *start;
    snprintf(path, sizeof path, "%s/chinook/Chinook_PostgreSql.sql", dir);
    f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    sql = calloc(1, (size_t)n + 1);
    assert_non_null(sql);
    assert_int_equal(fread(sql, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    /* The script creates and connects to its own database; run what
     * follows "\c chinook;" in ours. */
    start = strstr(sql, "\\c chinook;");
    assert_non_null(start);
    harness_exec(*db, start + strlen("\\c chinook;"));
    free(sql);
  }
}

static void test_chinook_playlists(void **state) {
  nodup_db *db = *state;
  nodup_scan_report *r = NULL;
  const char *key_sqlite[] = {"Name"}, *key_pg[] = {"name"};
  const nodup_scan_ref *f;

  load_chinook(&db);
  *state = db;
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

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
      T(test_seed000),
      T(test_nulls_equal_and_where),
      T(test_user_declared_reference),
      T(test_multicolumn_fk_to_unique),
      T(test_errors),
      T(test_chinook_playlists),
#undef T
  };
  return cmocka_run_group_tests_name(harness_is_pg() ? "scan_pg" : "scan_sqlite", tests,
                                     NULL, NULL);
}

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

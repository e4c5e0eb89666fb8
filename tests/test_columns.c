/*
 * test_columns.c -- nothing disappears silently, on both backends: the
 * survivorship policies (nodup_merge_options.columns) on the merged table
 * and on colliding children, the per-column report of what colliding rows
 * held that their survivor does not, undo after a policy merge (the whole
 * database compared), resume keeping the policies, and every refused spec
 * refused before anything is written. Expected values worked out by hand:
 * the kept row is the lowest id; a colliding child already pointing at it
 * survives.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "rig.h"
#include "nodup.h"

static const char *const email[] = {"email"};

/* Persons a (1, 2, 3) and b (4, 5) are duplicates, c (6) is not. Team 1
 * has memberships of 1, 2, 3, 4 and 5: they collide; 2's team 2 one is
 * only re-pointed. Profiles (one-to-one) of 2 and 5 collide with 1's and
 * 4's. */
static const char *const people =
    "CREATE TABLE \"person\" ({id}, \"email\" TEXT NOT NULL, \"score\" INTEGER,"
    " \"visits\" INTEGER, \"nick\" TEXT, \"bio\" TEXT, \"seen\" INTEGER, \"city\" TEXT,"
    " \"note\" TEXT);"
    "CREATE TABLE \"team\" ({id}, \"name\" TEXT NOT NULL);"
    "CREATE TABLE \"membership\" ({id},"
    " \"person\" INTEGER NOT NULL REFERENCES \"person\" (\"id\"),"
    " \"team\" INTEGER NOT NULL REFERENCES \"team\" (\"id\"), \"role\" TEXT, \"points\" INTEGER,"
    " UNIQUE (\"person\", \"team\"));"
    "CREATE TABLE \"profile\" ({id},"
    " \"person\" INTEGER NOT NULL UNIQUE REFERENCES \"person\" (\"id\"), \"headline\" TEXT,"
    " \"note\" TEXT);"
    "INSERT INTO \"person\" (\"id\", \"email\", \"score\", \"visits\", \"nick\", \"bio\","
    " \"seen\", \"city\", \"note\") VALUES"
    " (1, 'a', 10, 1, 'al', NULL, 5, 'Paris', NULL),"
    " (2, 'a', 30, 2, 'alexander', 'x', 9, 'Lyon', 'n2'),"
    " (3, 'a', 20, NULL, NULL, 'yy', NULL, 'Nice', 'n3'),"
    " (4, 'b', NULL, 5, 'bo', NULL, 1, NULL, NULL),"
    " (5, 'b', 7, 6, 'bob', 'z', 2, 'Rome', 'n5'),"
    " (6, 'c', 1, 1, 'cy', NULL, 1, 'Oslo', NULL);"
    "INSERT INTO \"team\" (\"id\", \"name\") VALUES (1, 't1'), (2, 't2');"
    "INSERT INTO \"membership\" (\"id\", \"person\", \"team\", \"role\", \"points\") VALUES"
    " (1, 1, 1, 'member', 5), (2, 2, 1, 'admin', 7), (3, 3, 1, 'member', 1),"
    " (4, 2, 2, 'owner', 3), (5, 5, 1, 'x', 2), (6, 4, 1, 'x', 9);"
    "INSERT INTO \"profile\" (\"id\", \"person\", \"headline\", \"note\") VALUES"
    " (1, 1, 'h1', NULL), (2, 2, 'h2', 'p2'), (3, 4, 'h4', 'p4'), (4, 5, 'h4', 'p5')";

static const char *person_sql =
    "SELECT %s(v, ' ') FROM (SELECT CAST(\"id\" AS TEXT) || ':' ||"
    " coalesce(CAST(\"score\" AS TEXT), '-') || ',' || coalesce(CAST(\"visits\" AS TEXT), '-')"
    " || ',' || coalesce(\"nick\", '-') || ',' || coalesce(\"bio\", '-') || ',' ||"
    " coalesce(\"city\", '-') || ',' || coalesce(\"note\", '-') AS v FROM \"person\""
    " ORDER BY \"id\") s";

/* Persons as "id:score,visits,nick,bio,city,note", '-' for NULL. */
static void expect_people(nodup_db *db, const char *want) {
  char sql[1024];
  snprintf(sql, sizeof sql, person_sql, harness_pick("group_concat", "string_agg"));
  harness_expect(db, sql, NULL, want);
}

static const nodup_merge_table *table_of(const nodup_merge_report *r, const char *name) {
  size_t i;
  for (i = 0; i < r->ntables; i++)
    if (!strcmp(r->tables[i].table_name, name)) return &r->tables[i];
  fail_msg("no table %s in the report", name);
  return NULL;
}

/* Rows of `t` whose `col` differed (-1: the column is not listed). */
static long long differed(const nodup_merge_report *r, const char *t, const char *col) {
  const nodup_merge_table *mt = table_of(r, t);
  size_t i;
  for (i = 0; i < mt->ndiffered; i++)
    if (!strcmp(mt->differed[i].column, col)) return mt->differed[i].rows;
  return -1;
}

static void assert_no_journal(nodup_db *db) {
  assert_int_equal(harness_count(db,
                                 harness_pick("SELECT count(*) FROM sqlite_schema"
                                              " WHERE name LIKE 'nodup%'",
                                              "SELECT count(*) FROM pg_class"
                                              " WHERE relname LIKE 'nodup%' AND relkind = 'r'"),
                                 NULL),
                   0);
  if (harness_is_pg())
    assert_int_equal(
        harness_count(db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'nodup'", NULL), 0);
}

/* Without policies the survivor keeps its own values, and the report says
 * per column how many collided rows held another. */
static void test_collisions_reported(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  harness_exec(db, people);
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "person", email, 1, NULL, NULL));
  assert_int_equal(r->groups, 2);
  /* Link rows 2, 3 (into 1) and 5 (into 6): role differs for 2 only
   * (3 and 5 hold their survivor's), points for all three. */
  assert_int_equal(table_of(r, "membership")->deleted, 3);
  assert_int_equal(differed(r, "membership", "role"), 1);
  assert_int_equal(differed(r, "membership", "points"), 3);
  assert_int_equal(table_of(r, "membership")->ndiffered, 2);
  /* Profiles 2 (into 1: headline and note) and 4 (into 3: note). */
  assert_int_equal(table_of(r, "profile")->deleted, 2);
  assert_int_equal(differed(r, "profile", "headline"), 1);
  assert_int_equal(differed(r, "profile", "note"), 2);
  /* The merged table's own losers are not "collisions". */
  assert_int_equal(table_of(r, "person")->ndiffered, 0);
  nodup_merge_free(r);
  expect_people(db, "1:10,1,al,-,Paris,- 4:-,5,bo,-,-,- 6:1,1,cy,-,Oslo,-");
  harness_expect(db, "SELECT \"role\" || CAST(\"points\" AS TEXT) FROM \"membership\" WHERE \"id\" = 1",
                 NULL, "member5");
}

/* Every policy on the merged table, and one on a child's colliding rows. */
static void test_policies(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  const char *cols[] = {"score=max",        "visits=sum",          "nick=longest",
                        "bio = min",        "city=newest(seen)",   "note=first-non-null",
                        "membership.points=sum", "profile.headline=longest"};
  harness_exec(db, people);
  memset(&opt, 0, sizeof opt);
  opt.columns = cols;
  opt.ncolumns = COUNT_OF(cols);
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "person", email, 1, NULL, &opt));
  assert_int_equal(table_of(r, "person")->filled, 2);
  /* Counted before the policies ran. */
  assert_int_equal(differed(r, "membership", "points"), 3);
  /* Link row 1 took 7 + 1, row 6 took 2; profile 1 kept its headline
   * ('h1' and 'h2' are as long: the survivor's). */
  assert_int_equal(table_of(r, "membership")->filled, 2);
  assert_int_equal(table_of(r, "profile")->filled, 0);
  nodup_merge_free(r);
  /* 1: max(10,30,20), 1+2, 'alexander', min('x','yy'), Lyon (seen 9),
   * n2 (its own is NULL; 2 ranks before 3). 4: max(NULL,7), 5+6, 'bob',
   * 'z', Rome (seen 2 > 1), n5. 6 alone: untouched. */
  expect_people(db, "1:30,3,alexander,x,Lyon,n2 4:7,11,bob,z,Rome,n5 6:1,1,cy,-,Oslo,-");
  harness_expect(db,
                 harness_pick("SELECT group_concat(v, ' ') FROM (SELECT CAST(\"id\" AS TEXT) || ':'"
                              " || CAST(\"points\" AS TEXT) AS v FROM \"membership\" ORDER BY \"id\")",
                              "SELECT string_agg(CAST(\"id\" AS TEXT) || ':' || CAST(\"points\" AS TEXT),"
                              " ' ' ORDER BY \"id\") FROM \"membership\""),
                 NULL, "1:13 4:3 6:11");
  harness_expect(db, "SELECT \"headline\" FROM \"profile\" WHERE \"person\" = 1", NULL, "h1");
}

/* newest: NULL orders last, ties go to the kept row, then `keep` order;
 * --keep decides which row is kept, and so the ranks. */
static void test_newest_ties(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  const char *cols[] = {"v=newest(o)", "w=longest"};
  const char *key[] = {"k"};
  harness_exec(db, "CREATE TABLE \"t\" ({id}, \"k\" TEXT, \"v\" TEXT, \"o\" INTEGER, \"w\" TEXT);"
                   "INSERT INTO \"t\" (\"id\", \"k\", \"v\", \"o\", \"w\") VALUES"
                   " (1, 'a', 'x', NULL, NULL), (2, 'a', 'y', 3, 'bb'), (3, 'a', 'z', 3, 'cc'),"
                   " (4, 'b', 'p', 5, 'dd'), (5, 'b', 'q', 5, 'ee'), (6, 'b', 'r', NULL, 'f')");
  memset(&opt, 0, sizeof opt);
  opt.columns = cols;
  opt.ncolumns = 2;
  opt.keep = "\"id\" DESC";   /* kept: 3 and 6; ranks 2, 1 and 5, 4 */
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "t", key, 1, NULL, &opt));
  nodup_merge_free(r);
  /* a: o 3 ties between 3 (kept) and 2: z; w 'cc' ties 'bb': the kept.
   * b: o 5 ties between 5 and 4, 6's is NULL: 5 ranks first: q; w: 'ee'
   * (longest, 5 before 4). */
  harness_expect(db,
                 harness_pick("SELECT group_concat(v, ' ') FROM (SELECT CAST(\"id\" AS TEXT) || ':'"
                              " || \"v\" || ',' || \"w\" AS v FROM \"t\" ORDER BY \"id\")",
                              "SELECT string_agg(CAST(\"id\" AS TEXT) || ':' || \"v\" || ',' || \"w\","
                              " ' ' ORDER BY \"id\") FROM \"t\""),
                 NULL, "3:z,cc 6:q,ee");
}

/* fill_nulls is first-non-null everywhere; keeper turns it off for one
 * column. */
static void test_keeper_overrides_fill_nulls(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  const char *cols[] = {"bio=keeper"};
  harness_exec(db, people);
  memset(&opt, 0, sizeof opt);
  opt.fill_nulls = 1;
  opt.columns = cols;
  opt.ncolumns = 1;
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "person", email, 1, NULL, &opt));
  nodup_merge_free(r);
  expect_people(db, "1:10,1,al,-,Paris,n2 4:7,5,bo,-,Rome,n5 6:1,1,cy,-,Oslo,-");
  /* The one-to-one child's NULL note was filled from the collided one. */
  harness_expect(db, "SELECT \"note\" FROM \"profile\" WHERE \"person\" = 1", NULL, "p2");
}

/* Undo after a policy merge puts every value back exactly. */
static void test_undo_restores_policies(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  const char *cols[] = {"score=max", "visits=sum", "nick=longest", "city=newest(seen)",
                        "bio=min", "membership.points=max", "membership.role=longest",
                        "profile.note=first-non-null"};
  long long restored = -1, reverted = -1;
  char *before, *after, run[40];
  harness_exec(db, people);
  before = harness_dump(db);
  memset(&opt, 0, sizeof opt);
  opt.columns = cols;
  opt.ncolumns = COUNT_OF(cols);
  opt.fill_nulls = 1;
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "person", email, 1, NULL, &opt));
  snprintf(run, sizeof run, "%s", r->run);
  nodup_merge_free(r);
  harness_expect(db, "SELECT \"role\" FROM \"membership\" WHERE \"id\" = 1", NULL, "member");
  harness_expect(db, "SELECT CAST(\"points\" AS TEXT) FROM \"membership\" WHERE \"id\" = 1", NULL,
                 "7");
  after = harness_dump(db);
  assert_string_not_equal(before, after);
  free(after);
  assert_nodup(db, NODUP_OK, nodup_undo(db, run, &restored, &reverted));
  assert_int_equal(restored, 3 + 3 + 2);   /* persons, link rows, profiles */
  rig_expect_same(before, harness_dump(db), "the dump after undo");
  free(before);
}

/* A failed run resumed applies the same policies to the rest. */
static void test_resume_keeps_policies(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  const char *cols[] = {"score=max", "nick=longest"};
  char run[40];
  harness_exec(db, people);
  memset(&opt, 0, sizeof opt);
  opt.columns = cols;
  opt.ncolumns = COUNT_OF(cols);
  opt.batch = 1;
  /* Batch 1 merges 'a'; batch 2 ('b') fails setting person 4's values. */
  harness_exec(db, harness_pick("CREATE TRIGGER \"no4\" BEFORE UPDATE ON \"person\""
                                " WHEN NEW.\"id\" = 4 BEGIN SELECT RAISE(ABORT, 'no 4'); END",
                                "CREATE FUNCTION no4() RETURNS trigger LANGUAGE plpgsql AS"
                                " $$BEGIN IF NEW.id = 4 THEN RAISE EXCEPTION 'no 4'; END IF;"
                                " RETURN NEW; END$$;"
                                "CREATE TRIGGER no4 BEFORE UPDATE ON person FOR EACH ROW"
                                " EXECUTE FUNCTION no4()"));
  assert_int_not_equal(nodup_merge(&r, db, "person", email, 1, NULL, &opt), NODUP_OK);
  assert_null(r);
  expect_people(db, "1:30,1,alexander,-,Paris,- 4:-,5,bo,-,-,- 5:7,6,bob,z,Rome,n5"
                    " 6:1,1,cy,-,Oslo,-");
  harness_query_into(db, "SELECT run FROM {j}nodup_runs", NULL, run, sizeof run);
  harness_exec(db, harness_pick("DROP TRIGGER \"no4\"",
                                "DROP TRIGGER no4 ON person; DROP FUNCTION no4()"));
  assert_nodup(db, NODUP_OK, nodup_merge_resume(&r, db, run, NULL));
  nodup_merge_free(r);
  expect_people(db, "1:30,1,alexander,-,Paris,- 4:7,5,bob,-,-,- 6:1,1,cy,-,Oslo,-");
}

/* Every bad spec refused, naming what is wrong, before anything is
 * written. */
static void test_bad_specs_write_nothing(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  static const struct {
    const char *spec, *says;
  } bad[] = {
      {"score", "COL=POLICY"},
      {"score=avg", "the policy is"},
      {"score=newest", "the policy is"},
      {"score=max(seen)", "the policy is"},
      {"city=newest(nope)", "nope"},
      {"nope=max", "nope"},
      {"nosuch.score=max", "nosuch"},
      {"team.name=max", "merges no rows"},
      {"id=max", "primary key"},
      {"email=max", "merge key"},
      {"membership.team=max", "unique index"},
      {"profile.person=max", "unique index"},
      {"membership.nope=max", "nope"},
  };
  const char *twice[] = {"score=max", "score=min"};
  size_t i;
  harness_exec(db, people);
  memset(&opt, 0, sizeof opt);
  for (i = 0; i < COUNT_OF(bad); i++) {
    opt.columns = &bad[i].spec;
    opt.ncolumns = 1;
    assert_nodup(db, NODUP_ERR_USAGE, nodup_merge(&r, db, "person", email, 1, NULL, &opt));
    assert_null(r);
    assert_contains(nodup_errmsg(db), bad[i].says);
  }
  opt.columns = twice;
  opt.ncolumns = 2;
  assert_nodup(db, NODUP_ERR_USAGE, nodup_merge(&r, db, "person", email, 1, NULL, &opt));
  assert_contains(nodup_errmsg(db), "one already");
  if (harness_is_pg()) {
    const char *sum_text[] = {"nick=sum"};
    opt.columns = sum_text;
    opt.ncolumns = 1;
    assert_nodup(db, NODUP_ERR_USAGE, nodup_merge(&r, db, "person", email, 1, NULL, &opt));
    assert_contains(nodup_errmsg(db), "not a number");
    harness_exec(db, "ALTER TABLE \"person\" ADD COLUMN \"vip\" BOOLEAN");
    sum_text[0] = "vip=max";
    assert_nodup(db, NODUP_ERR_USAGE, nodup_merge(&r, db, "person", email, 1, NULL, &opt));
    assert_contains(nodup_errmsg(db), "no order");
  }
  opt.dry_run = 1;
  opt.columns = twice;
  opt.ncolumns = 2;
  assert_nodup(db, NODUP_ERR_USAGE, nodup_merge(&r, db, "person", email, 1, NULL, &opt));
  assert_no_journal(db);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"person\"", NULL), 6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
      T(test_collisions_reported),
      T(test_policies),
      T(test_newest_ties),
      T(test_keeper_overrides_fill_nulls),
      T(test_undo_restores_policies),
      T(test_resume_keeps_policies),
      T(test_bad_specs_write_nothing),
#undef T
  };
  return cmocka_run_group_tests_name(harness_is_pg() ? "merge_columns_pg" : "merge_columns_sqlite",
                                     tests, NULL, NULL);
}

/*
 * test_orm.c -- keys on schemas as the ORMs write them, on both engines:
 * the DDL Django (sqlmigrate) and ActiveRecord really generate, kept in
 * tests/orm (regen.sh, rails_ddl.rb say how). A boolean column with a
 * partial unique index `WHERE "is_active"` is where check-then-insert code
 * meets nodup first.
 *
 * What is checked: a value is converted by its column's declared type the
 * way the ORM means it (SQLite stores the text 'true' otherwise, which its
 * own WHERE reads as false), or refused naming the column; no value puts a
 * row outside the predicate it was checked against; a key is backed only
 * by an index whose predicate is the key's, in any of the spellings users
 * type, and check and get-or-create agree; PostgreSQL's log gets no ERROR
 * line from probing a key.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const title_col[] = {"title"};

/* Run tests/orm/<name>_<engine>.sql on db. */
static void load_ddl(nodup_db *db, const char *name) {
  const char *dir = getenv("NODUP_ORM");
  char path[4096];
  FILE *f;
  long n;
  char *sql;
  if (!dir) fail_msg("NODUP_ORM is not set (ctest sets it to tests/orm)");
  snprintf(path, sizeof path, "%s/%s_%s.sql", dir, name, harness_is_pg() ? "pg" : "sqlite");
  if (!(f = fopen(path, "rb"))) fail_msg("ORM schema %s is missing", path);
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  sql = calloc(1, (size_t)n + 1);
  assert_non_null(sql);
  assert_int_equal(fread(sql, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  harness_exec(db, sql);
  free(sql);
}

/* get-or-create of title `t` with is_active given as `flag`; returns the
 * call's code and sets *created. */
static int team(nodup_key *key, const char *flag_col, const char *t, const char *flag,
                int *created) {
  const char *vals[] = {t};
  const char *dcols[] = {flag_col};
  const char *dvals[] = {flag};
  nodup_result r = {NULL, 0};
  int rc = nodup_get_or_create(key, vals, dcols, dvals, 1, &r);
  *created = r.created;
  return rc;
}

/* Django: BooleanField + UniqueConstraint(condition=Q(is_active=True)).
 * Every spelling of true finds the one row; false and nonsense are
 * refused, and the table holds exactly the rows the predicate covers. */
static void test_django_boolean_partial_key(void **state) {
  nodup_db *db = *state;
  nodup_key *key;
  static const char *const trues[] = {"true", "t", "1", "yes", "TRUE", "on", "True"};
  int created, rc;
  load_ddl(db, "django");
  key = harness_key(db, "teams_team", title_col, 1, "\"is_active\"");
  for (size_t i = 0; i < COUNT_OF(trues); i++) {
    rc = team(key, "is_active", "Blue", trues[i], &created);
    if (rc != NODUP_OK) fail_msg("is_active=%s: %s: %s", trues[i], nodup_strerror(rc), nodup_errmsg(db));
    if (created != (i == 0)) fail_msg("is_active=%s: created = %d", trues[i], created);
  }
  /* A row outside the predicate is never inserted (the index would not
   * see it: the next call would create again). */
  assert_int_equal(team(key, "is_active", "Red", "false", &created), NODUP_ERR_PREDICATE);
  assert_int_equal(team(key, "is_active", "Red", "0", &created), NODUP_ERR_PREDICATE);
  /* Not a boolean at all: refused (SQLite by nodup, naming the column;
   * PostgreSQL by the type's input function). */
  rc = team(key, "is_active", "Red", "maybe", &created);
  assert_true(rc == NODUP_ERR_USAGE || rc == NODUP_ERR_DB);
  assert_non_null(strstr(nodup_errmsg(db), harness_is_pg() ? "boolean" : "is_active"));
  assert_int_equal(harness_count(db, "SELECT count(*) FROM teams_team", NULL), 1);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM teams_team WHERE is_active", NULL), 1);
}

/* Integers and reals: numbers are stored as numbers; anything else is
 * refused by name before it reaches the table (SQLite would store the
 * text 'abc' in an INTEGER column without a word). */
static void test_values_by_declared_type(void **state) {
  nodup_db *db = *state;
  nodup_key *key;
  const char *vals[] = {"Blue"};
  const char *dcols[] = {"is_active", "score", "ratio"};
  const char *good[] = {"t", "12", "0.25"};
  const char *bad_int[] = {"t", "abc", "0.25"};
  const char *bad_real[] = {"t", "12", "x1"};
  nodup_result r = {NULL, 0};
  load_ddl(db, "django");
  key = harness_key(db, "teams_team", title_col, 1, "\"is_active\"");
  assert_nodup(db, harness_is_pg() ? NODUP_ERR_DB : NODUP_ERR_USAGE,
               nodup_get_or_create(key, vals, dcols, bad_int, 3, &r));
  if (!harness_is_pg()) assert_non_null(strstr(nodup_errmsg(db), "\"score\""));
  assert_nodup(db, harness_is_pg() ? NODUP_ERR_DB : NODUP_ERR_USAGE,
               nodup_get_or_create(key, vals, dcols, bad_real, 3, &r));
  if (!harness_is_pg()) assert_non_null(strstr(nodup_errmsg(db), "\"ratio\""));
  assert_int_equal(harness_count(db, "SELECT count(*) FROM teams_team", NULL), 0);
  assert_nodup(db, NODUP_OK, nodup_get_or_create(key, vals, dcols, good, 3, &r));
  assert_int_equal(r.created, 1);
  if (!harness_is_pg())
    harness_expect(db, "SELECT typeof(is_active) || ' ' || typeof(score) || ' ' || typeof(ratio)"
                       " FROM teams_team", NULL, "integer integer real");
  /* The lookup converts too: "yes" finds the row stored as 1 / true. */
  {
    const char *lookup[] = {"Blue"};
    assert_nodup(db, NODUP_OK, nodup_find(key, lookup, &r));
    assert_non_null(r.id);
  }
}

/* ActiveRecord: `t.boolean :active, default: true` and
 * add_index ..., unique: true, where: "active". Rails sets the timestamps
 * itself (NOT NULL, no default). */
static int rails_team(nodup_key *key, const char *t, const char *active, int *created) {
  const char *vals[] = {t};
  const char *dcols[] = {"active", "created_at", "updated_at"};
  const char *dvals[] = {active, "2026-12-02 12:00:00", "2026-12-02 12:00:00"};
  nodup_result r = {NULL, 0};
  int rc = nodup_get_or_create(key, vals, dcols, dvals, 3, &r);
  *created = r.created;
  return rc;
}

static void test_rails_boolean_partial_key(void **state) {
  nodup_db *db = *state;
  nodup_key *key;
  int created;
  load_ddl(db, "rails");
  key = harness_key(db, "teams", title_col, 1, "active");
  assert_nodup(db, NODUP_OK, rails_team(key, "Blue", "true", &created));
  assert_int_equal(created, 1);
  assert_nodup(db, NODUP_OK, rails_team(key, "Blue", "1", &created));
  assert_int_equal(created, 0);
  assert_int_equal(rails_team(key, "Red", "false", &created), NODUP_ERR_PREDICATE);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM teams", NULL), 1);
}

/* The spellings of one predicate users type are one key, on both
 * engines; check and get-or-create agree on every one. */
static void test_predicate_spellings(void **state) {
  nodup_db *db = *state;
  static const char *const same[] = {"is_active", "\"is_active\"", "is_active = true",
                                     "(is_active)", "is_active = TRUE", " is_active "};
  char name[128];
  load_ddl(db, "django");
  for (size_t i = 0; i < COUNT_OF(same); i++) {
    nodup_key *key = NULL;
    int rc = nodup_key_check(db, "teams_team", title_col, 1, same[i], name, sizeof name);
    if (rc != NODUP_OK) fail_msg("check WHERE %s: %s: %s", same[i], nodup_strerror(rc), nodup_errmsg(db));
    assert_string_equal(name, "uniq_active_title");
    rc = nodup_key_prepare(&key, db, "teams_team", title_col, 1, same[i]);
    if (rc != NODUP_OK) fail_msg("prepare WHERE %s: %s: %s", same[i], nodup_strerror(rc), nodup_errmsg(db));
    {
      const char *vals[] = {"Blue"};
      const char *dcols[] = {"is_active"};
      const char *dvals[] = {"true"};
      nodup_result r = {NULL, 0};
      rc = nodup_get_or_create(key, vals, dcols, dvals, 1, &r);
      if (rc != NODUP_OK) fail_msg("WHERE %s: %s: %s", same[i], nodup_strerror(rc), nodup_errmsg(db));
      assert_int_equal(r.created, i == 0);
    }
    nodup_key_free(key);
  }
}

/* A narrower or wider predicate than the index's is not the index's key:
 * check refuses it as get-or-create does (before, check said "backed" and
 * get-or-create failed five tries later), and the refusal gives the
 * index's predicate ready to paste. */
static void test_other_predicates_refused(void **state) {
  nodup_db *db = *state;
  static const char *const other[] = {"is_active AND title = 'x'", "NOT is_active",
                                      "is_active OR score > 1", "score > 1"};
  char name[128];
  load_ddl(db, "django");
  for (size_t i = 0; i < COUNT_OF(other); i++) {
    nodup_key *key = NULL;
    int rc = nodup_key_check(db, "teams_team", title_col, 1, other[i], name, sizeof name);
    if (rc != NODUP_ERR_UNBACKED)
      fail_msg("check WHERE %s: %s, want unbacked: %s", other[i], nodup_strerror(rc), nodup_errmsg(db));
    assert_non_null(strstr(nodup_errmsg(db), "--where '"));
    assert_nodup(db, NODUP_ERR_UNBACKED,
                 nodup_key_prepare(&key, db, "teams_team", title_col, 1, other[i]));
  }
  /* Without a predicate: told which one to give. */
  assert_int_equal(nodup_key_check(db, "teams_team", title_col, 1, NULL, name, sizeof name),
                   NODUP_ERR_UNBACKED);
  assert_non_null(strstr(nodup_errmsg(db), harness_is_pg() ? "--where 'is_active'"
                                                           : "--where '\"is_active\"'"));
}

/* ERROR lines of this test's database in the test server's log
 * (PostgreSQL; scripts/pgcluster.sh puts "db=<name> " in every line, so
 * the suites running beside this one do not count). */
static long error_lines(nodup_db *db) {
  const char *log = getenv("NODUP_TEST_PG_LOG");
  char line[4096], dbname[128], tag[160];
  long n = 0;
  FILE *f;
  if (!log) fail_msg("NODUP_TEST_PG_LOG is not set (ctest sets it)");
  harness_query_into(db, "SELECT current_database()", NULL, dbname, sizeof dbname);
  snprintf(tag, sizeof tag, " db=%s ", dbname);
  if (!(f = fopen(log, "r"))) fail_msg("cannot read the server log %s", log);
  while (fgets(line, sizeof line, f))
    if (strstr(line, "ERROR:") && strstr(line, tag)) n++;
  fclose(f);
  return n;
}

/* Probing keys that no index backs writes nothing to the server's log:
 * the catalog rules them out before any statement that would fail. */
static void test_probing_writes_no_server_error(void **state) {
  nodup_db *db = *state;
  static const char *const cols_title[] = {"title"}, *const cols_score[] = {"score"};
  char name[128];
  long before;
  load_ddl(db, "django");
  harness_exec(db, "CREATE TABLE deferred (id serial PRIMARY KEY, k text,"
                   " CONSTRAINT deferred_k UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)");
  /* The count sees this database's errors (else the check below could
   * never fail): one on purpose, then the baseline. */
  before = error_lines(db);
  assert_int_not_equal(nodup_exec(db, "SELECT * FROM nodup_orm_no_such_table"), NODUP_OK);
  assert_int_equal(error_lines(db), before + 1);
  before = error_lines(db);
  for (int round = 0; round < 3; round++) {
    assert_int_equal(nodup_key_check(db, "teams_team", cols_score, 1, NULL, name, sizeof name),
                     NODUP_ERR_UNBACKED);
    assert_int_equal(nodup_key_check(db, "teams_team", cols_title, 1, NULL, name, sizeof name),
                     NODUP_ERR_UNBACKED);
    assert_int_equal(nodup_key_check(db, "teams_team", cols_title, 1, "is_active AND score > 1",
                                     name, sizeof name),
                     NODUP_ERR_UNBACKED);
    assert_int_equal(nodup_key_check(db, "deferred", (const char *const[]){"k"}, 1, NULL, name,
                                     sizeof name),
                     NODUP_ERR_UNBACKED);
    assert_non_null(strstr(nodup_errmsg(db), "DEFERRABLE"));
  }
  assert_int_equal(error_lines(db), before);
}
/* enforce --merge on Django's schema: its foreign keys are DEFERRABLE
 * INITIALLY DEFERRED, so the merge's deletes leave pending trigger events
 * in the transaction that must then build the index (PostgreSQL refused:
 * 55006), with or without child rows. */
static void test_django_enforce_merge(void **state) {
  nodup_db *db = *state;
  nodup_enforce_options opt;
  nodup_enforce_report *r = NULL;
  load_ddl(db, "django");
  harness_exec(db, "DROP INDEX uniq_active_title");
  harness_exec(db, harness_is_pg()
                       ? "INSERT INTO teams_team (id, title, is_active) VALUES"
                         " (1, 'Blue', true), (2, 'Blue', true), (3, 'Red', true), (4, 'Red', true)"
                       : "INSERT INTO teams_team (id, title, is_active) VALUES"
                         " (1, 'Blue', 1), (2, 'Blue', 1), (3, 'Red', 1), (4, 'Red', 1)");
  /* Children of one loser only: Red's loser (4) has none. */
  harness_exec(db, "INSERT INTO teams_member (name, team_id) VALUES ('a', 1), ('b', 2), ('c', 2)");
  memset(&opt, 0, sizeof opt);
  opt.merge = 1;
  opt.name = "uniq_active_title";
  assert_nodup(db, NODUP_OK, nodup_enforce(&r, db, "teams_team", title_col, 1, "\"is_active\"", &opt));
  assert_int_equal(r->merged_groups, 2);
  nodup_enforce_free(r);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM teams_team", NULL), 2);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM teams_member WHERE team_id = 1", NULL), 3);
  {
    char name[128];
    assert_nodup(db, NODUP_OK, nodup_key_check(db, "teams_team", title_col, 1, "is_active", name,
                                               sizeof name));
  }
}

/* teams_comment as "id:content_type_id:object_id" words in id order. */
static char *dump_comments(nodup_db *db) {
  return harness_query(db,
                       harness_pick("SELECT group_concat(v, ' ') FROM (SELECT id || ':' ||"
                                    " content_type_id || ':' || object_id AS v FROM teams_comment"
                                    " ORDER BY id)",
                                    "SELECT string_agg(id || ':' || content_type_id || ':' ||"
                                    " object_id, ' ' ORDER BY id) FROM teams_comment"),
                       NULL);
}

/* Django's generic relation (teams_comment: content_type_id, a foreign key
 * to django_content_type, beside object_id, which no key declares) on the
 * DDL Django writes. Comment 1 and 2 are on team 2, a duplicate of team 1;
 * comment 3 is on team 1; comment 4 is on member 2, whose id is a loser's
 * too. A merge of the teams must refuse until told, then move comments 1
 * and 2 only. */
static void test_django_generic_relation(void **state) {
  nodup_db *db = *state;
  const char *ignore[] = {"teams_comment(object_id)"};
  const char *refs[1];
  nodup_scan_report *s = NULL;
  nodup_merge_report *r = NULL;
  nodup_merge_options mo;
  char ref[128], *before;
  size_t i;
  long long moved = 0;

  load_ddl(db, "django");
  harness_exec(db, "DROP INDEX uniq_active_title");
  harness_exec(db, "INSERT INTO django_content_type (id, app_label, model) VALUES"
                   " (7, 'teams', 'team'), (8, 'teams', 'member'), (9, 'teams', 'comment')");
  harness_exec(db, harness_is_pg()
                       ? "INSERT INTO teams_team (id, title, is_active) VALUES"
                         " (1, 'Blue', true), (2, 'Blue', true), (3, 'Red', true)"
                       : "INSERT INTO teams_team (id, title, is_active) VALUES"
                         " (1, 'Blue', 1), (2, 'Blue', 1), (3, 'Red', 1)");
  harness_exec(db, "INSERT INTO teams_member (id, name, team_id) VALUES (1, 'a', 1), (2, 'b', 2);"
                   "INSERT INTO teams_comment (id, content_type_id, object_id, text) VALUES"
                   " (1, 7, 2, 'on team 2'), (2, 7, 2, 'again on team 2'), (3, 7, 1, 'on team 1'),"
                   " (4, 8, 2, 'on member 2')");

  /* scan: the pair, with the content type read from django_content_type. */
  assert_nodup(db, NODUP_OK, nodup_scan(&s, db, "teams_team", title_col, 1, NULL, NULL));
  assert_int_equal(s->groups, 1);
  assert_int_equal(s->nsuspects, 1);
  assert_string_equal(s->suspects[0].table_name, "teams_comment");
  assert_string_equal(s->suspects[0].column, "object_id");
  assert_string_equal(s->suspects[0].ref_column, "id");
  assert_int_equal(s->suspects[0].kind, NODUP_SUSPECT_DJANGO);
  assert_string_equal(s->suspects[0].condition, "content_type_id = 7");
  assert_string_equal(s->suspects[0].ref, "teams_comment(object_id) WHERE content_type_id = 7");
  assert_string_equal(s->suspects[0].ignore, "teams_comment(object_id)");
  assert_int_equal(s->suspects[0].rows, 2); /* not the member's comment */
  snprintf(ref, sizeof ref, "%s", s->suspects[0].ref);
  nodup_scan_free(s);

  /* merge: refused, nothing written (not even the journal), dry run alike. */
  memset(&mo, 0, sizeof mo);
  before = dump_comments(db);
  assert_nodup(db, NODUP_ERR_REFERENCED, nodup_merge(&r, db, "teams_team", title_col, 1, NULL, &mo));
  assert_null(r);
  assert_contains(nodup_errmsg(db), "\"teams_comment\" (object_id) WHERE content_type_id = 7");
  assert_contains(nodup_errmsg(db), "Django generic relation");
  assert_contains(nodup_errmsg(db), "--ref 'teams_comment(object_id) WHERE content_type_id = 7'");
  assert_contains(nodup_errmsg(db), "--ignore-ref 'teams_comment(object_id)'");
  mo.dry_run = 1;
  assert_nodup(db, NODUP_ERR_REFERENCED, nodup_merge(&r, db, "teams_team", title_col, 1, NULL, &mo));
  assert_int_equal(harness_count(db, "SELECT count(*) FROM teams_team", NULL), 3);
  assert_int_equal(harness_count(db, harness_pick("SELECT count(*) FROM sqlite_schema"
                                                  " WHERE name = 'nodup_runs'",
                                                  "SELECT count(*) FROM pg_class"
                                                  " WHERE relname = 'nodup_runs'"),
                                 NULL),
                   0);

  /* --ref as suggested: comments 1 and 2 follow team 2 into team 1; the
   * member's comment (content type 8) stays on object 2. */
  memset(&mo, 0, sizeof mo);
  refs[0] = ref;
  mo.refs = refs;
  mo.nrefs = 1;
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "teams_team", title_col, 1, NULL, &mo));
  assert_int_equal(r->groups, 1);
  for (i = 0; i < r->ntables; i++)
    if (!strcmp(r->tables[i].table_name, "teams_comment")) moved = r->tables[i].repointed;
  assert_int_equal(moved, 2);
  {
    char *after = dump_comments(db);
    assert_string_equal(after, "1:7:1 2:7:1 3:7:1 4:8:2");
    free(after);
  }
  assert_int_equal(harness_count(db, "SELECT count(*) FROM teams_member WHERE team_id = 1", NULL), 2);
  /* Undo puts the comments back on team 2 (the log holds the condition's
   * rows only). */
  assert_nodup(db, NODUP_OK, nodup_undo(db, r->run, NULL, NULL));
  nodup_merge_free(r);
  {
    char *after = dump_comments(db);
    assert_string_equal(after, before);
    free(after);
  }

  /* --ignore-ref: merged, the comments left on the deleted team, as asked. */
  memset(&mo, 0, sizeof mo);
  mo.ignore_refs = ignore;
  mo.nignore_refs = 1;
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "teams_team", title_col, 1, NULL, &mo));
  nodup_merge_free(r);
  {
    char *after = dump_comments(db);
    assert_string_equal(after, before);
    free(after);
  }
  assert_int_equal(harness_count(db, "SELECT count(*) FROM teams_team", NULL), 2);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM teams_comment WHERE object_id = 2"
                                     " AND content_type_id = 7", NULL),
                   2);
  free(before);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
  const struct CMUnitTest tests[] = {
      T(test_django_boolean_partial_key),
      T(test_values_by_declared_type),
      T(test_rails_boolean_partial_key),
      T(test_predicate_spellings),
      T(test_other_predicates_refused),
      T(test_django_enforce_merge),
      T(test_django_generic_relation),
  };
  const struct CMUnitTest pg_only[] = {
      T(test_probing_writes_no_server_error),
  };
#undef T
  int failed = cmocka_run_group_tests_name(harness_is_pg() ? "orm_pg" : "orm_sqlite", tests,
                                           NULL, NULL);
  if (harness_is_pg()) failed += cmocka_run_group_tests_name("orm_pg_log", pg_only, NULL, NULL);
  return failed;
}

/*
 * test_undo.c -- what a merge run records, on both backends: undo puts the
 * database back exactly (compared as a dump of every table), resume
 * finishes a failed run under the same id, and the options that change
 * what a merge writes (--fill-nulls, --one-to-one keep, --nulls-equal)
 * plus the progress callback and SQLite's foreign_keys warning.
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
#include "fixtures.h"

static const char *const conf_key[] = {"conference_id", "app_id"};

static void test_undo_seed000_exact(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  const char *refs[] = {"audit_log(object_id)"};
  long long restored = -1, reverted = -1;
  char *before, *merged, run[40];

  harness_exec(db, seed000);
  /* Values the fill and the undo must carry exactly. */
  harness_exec(db, "ALTER TABLE \"conference\" ADD COLUMN \"note\" TEXT;"
                   "UPDATE \"conference\" SET \"note\" = 'two''s' WHERE \"id\" = 2");
  before = harness_dump(db);
  memset(&opt, 0, sizeof opt);
  opt.refs = refs;
  opt.nrefs = 1;
  opt.fill_nulls = 1;
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, &opt), NODUP_OK);
  snprintf(run, sizeof run, "%s", r->run);
  nodup_merge_free(r);
  merged = harness_dump(db);
  assert_string_not_equal(merged, before);
  harness_expect(db, "SELECT \"note\" FROM \"conference\" WHERE \"id\" = 1", NULL, "two's");

  assert_int_equal(nodup_undo(db, run, &restored, &reverted), NODUP_OK);
  /* 2 conferences, 3 link rows, 2 summaries back; events 3, links 2,
   * audit 3, the self-reference 1, the fill 1 set back. */
  assert_int_equal(restored, 7);
  assert_int_equal(reverted, 3 + 2 + 3 + 1 + 1);
  rig_expect_same(before, harness_dump(db), "the dump");
  harness_expect(db, "SELECT status FROM {j}nodup_runs WHERE run = $1", run, "undone");
  assert_false(harness_in_transaction(db));

  /* Twice: refused, nothing changed. */
  assert_int_equal(nodup_undo(db, run, NULL, NULL), NODUP_ERR_NO_RUN);
  assert_non_null(strstr(nodup_errmsg(db), "already undone"));
  assert_int_equal(nodup_undo(db, "no-such-run", NULL, NULL), NODUP_ERR_NO_RUN);
  assert_non_null(strstr(nodup_errmsg(db), "no-such-run"));
  rig_expect_same(before, harness_dump(db), "the dump");
  free(merged);
  free(before);
}

static void test_undo_chinook_exact(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  const char *key_sqlite[] = {"Name"}, *key_pg[] = {"name"};
  int pg = harness_is_pg();
  long long restored = 0;
  char *before, run[40];

  db = harness_load_chinook(state);
  before = harness_dump(db);
  assert_int_equal(nodup_merge(&r, db, pg ? "playlist" : "Playlist", pg ? key_pg : key_sqlite, 1,
                               NULL, NULL),
                   NODUP_OK);
  assert_int_equal(r->groups, 4);
  snprintf(run, sizeof run, "%s", r->run);
  nodup_merge_free(r);
  assert_int_equal(nodup_undo(db, run, &restored, NULL), NODUP_OK);
  /* 4 playlists and the 3,290 + 213 link rows that collided. */
  assert_true(restored >= 4 + 3290 + 213);
  rig_expect_same(before, harness_dump(db), "the dump");
  if (!pg) assert_int_equal(harness_count(db, "SELECT count(*) FROM pragma_foreign_key_check", NULL), 0);
  free(before);
}

/* A row the merge re-pointed was deleted since: undo refuses, changes
 * nothing, and says which table. */
static void test_undo_refuses_changed_rows(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  char *merged, run[40];
  harness_exec(db, seed000);
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, NULL), NODUP_OK);
  snprintf(run, sizeof run, "%s", r->run);
  nodup_merge_free(r);
  harness_exec(db, "DELETE FROM \"event\" WHERE \"id\" = 4");
  merged = harness_dump(db);
  assert_int_equal(nodup_undo(db, run, NULL, NULL), NODUP_ERR_CHANGED);
  assert_non_null(strstr(nodup_errmsg(db), "event"));
  rig_expect_same(merged, harness_dump(db), "the dump");
  harness_expect(db, "SELECT status FROM {j}nodup_runs WHERE run = $1", run, "done");
  assert_false(harness_in_transaction(db));
  free(merged);
}

static void test_no_archive_cannot_undo(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  char run[40];
  memset(&opt, 0, sizeof opt);
  opt.no_archive = 1;
  harness_exec(db, seed000);
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, &opt), NODUP_OK);
  snprintf(run, sizeof run, "%s", r->run);
  nodup_merge_free(r);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM {j}nodup_archive", NULL), 0);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM {j}nodup_log", NULL), 0);
  assert_int_equal(nodup_undo(db, run, NULL, NULL), NODUP_ERR_NO_RUN);
  assert_non_null(strstr(nodup_errmsg(db), "no-archive"));
}

/* A run that fails in its second batch keeps its first; resumed, it
 * finishes under the same id, and one undo takes back both parts. */
static void test_resume_failed_run_then_undo(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  char *before, run[40];

  harness_exec(db, "CREATE TABLE \"team\" ({id}, \"slug\" TEXT, \"size\" INTEGER);"
                   "CREATE TABLE \"member\" ({id}, \"team\" INTEGER REFERENCES \"team\" (\"id\"));"
                   "INSERT INTO \"team\" (\"id\", \"slug\", \"size\") VALUES"
                   " (1, 'a', NULL), (2, 'a', 5), (3, 'b', NULL), (4, 'b', 7);"
                   "INSERT INTO \"member\" (\"team\") VALUES (1), (2), (3), (4), (4)");
  before = harness_dump(db);
  memset(&opt, 0, sizeof opt);
  opt.batch = 1;
  opt.fill_nulls = 1;
  /* Batch 1 merges key 'a'; batch 2 (key 'b') must re-point members to
   * team 3, which a trigger forbids for now. */
  harness_exec(db, harness_pick("CREATE TRIGGER \"no3\" BEFORE UPDATE ON \"member\""
                                " WHEN NEW.\"team\" = 3 BEGIN SELECT RAISE(ABORT, 'no team 3'); END",
                                "CREATE FUNCTION no3() RETURNS trigger LANGUAGE plpgsql AS"
                                " $$BEGIN IF NEW.team = 3 THEN RAISE EXCEPTION 'no team 3'; END IF;"
                                " RETURN NEW; END$$;"
                                "CREATE TRIGGER no3 BEFORE UPDATE ON member FOR EACH ROW"
                                " EXECUTE FUNCTION no3()"));
  {
    const char *key[] = {"slug"};
    assert_int_not_equal(nodup_merge(&r, db, "team", key, 1, NULL, &opt), NODUP_OK);
    assert_null(r);
    assert_non_null(strstr(nodup_errmsg(db), "no team 3"));
  }
  assert_false(harness_in_transaction(db));
  /* Batch 1 (key a) committed, batch 2 rolled back; the run is failed. */
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"team\"", NULL), 3);
  harness_query_into(db, "SELECT run FROM {j}nodup_runs", NULL, run, sizeof run);
  harness_expect(db, "SELECT status FROM {j}nodup_runs WHERE run = $1", run, "failed");
  harness_exec(db, harness_pick("DROP TRIGGER \"no3\"",
                                "DROP TRIGGER no3 ON member; DROP FUNCTION no3()"));

  assert_int_equal(nodup_merge_resume(&r, db, "no-such-run", NULL), NODUP_ERR_NO_RUN);
  assert_int_equal(nodup_merge_resume(&r, db, run, NULL), NODUP_OK);
  assert_string_equal(r->run, run);
  assert_int_equal(r->groups, 1);
  nodup_merge_free(r);
  harness_expect(db, "SELECT status FROM {j}nodup_runs WHERE run = $1", run, "done");
  harness_expect(db, "SELECT CAST(groups AS TEXT) FROM {j}nodup_runs WHERE run = $1", run, "2");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"team\"", NULL), 2);
  harness_expect(db, "SELECT CAST(\"size\" AS TEXT) FROM \"team\" WHERE \"id\" = 1", NULL, "5");
  harness_expect(db, "SELECT CAST(\"size\" AS TEXT) FROM \"team\" WHERE \"id\" = 3", NULL, "7");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"member\" WHERE \"team\" IN (2, 4)", NULL), 0);
  /* Done: nothing to resume. */
  assert_int_equal(nodup_merge_resume(&r, db, run, NULL), NODUP_ERR_NO_RUN);

  assert_int_equal(nodup_undo(db, run, NULL, NULL), NODUP_OK);
  rig_expect_same(before, harness_dump(db), "the dump");
  free(before);
}

/* --fill-nulls: the keeper's NULLs take the first non-NULL value of the
 * others in keep order; its own values stay; a value under another unique
 * index moves from the deleted loser without tripping it. */
static void test_fill_nulls(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  const char *key[] = {"name"};
  harness_exec(db, "CREATE TABLE \"person\" ({id}, \"name\" TEXT NOT NULL, \"email\" TEXT UNIQUE,"
                   " \"phone\" TEXT, \"city\" TEXT);"
                   "INSERT INTO \"person\" (\"id\", \"name\", \"email\", \"phone\", \"city\") VALUES"
                   " (1, 'ann', NULL, NULL, 'Oslo'), (2, 'ann', 'ann@x', NULL, 'Rome'),"
                   " (3, 'ann', NULL, '555', 'Nice'), (4, 'bob', NULL, NULL, NULL)");
  memset(&opt, 0, sizeof opt);
  opt.fill_nulls = 1;
  assert_int_equal(nodup_merge(&r, db, "person", key, 1, NULL, &opt), NODUP_OK);
  assert_int_equal(r->tables[r->ntables - 1].filled, 1);
  nodup_merge_free(r);
  harness_expect(db, "SELECT \"email\" || ' ' || \"phone\" || ' ' || \"city\" FROM \"person\""
                     " WHERE \"id\" = 1", NULL, "ann@x 555 Oslo");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"person\"", NULL), 2);

  /* keep order decides which loser's value comes first. */
  harness_exec(db, "DELETE FROM \"person\";"
                   "INSERT INTO \"person\" (\"id\", \"name\", \"phone\") VALUES"
                   " (1, 'ann', NULL), (2, 'ann', '222'), (3, 'ann', '333')");
  opt.keep = "\"id\" DESC"; /* keeper 3 has a phone: untouched */
  assert_int_equal(nodup_merge(&r, db, "person", key, 1, NULL, &opt), NODUP_OK);
  nodup_merge_free(r);
  harness_expect(db, "SELECT \"phone\" FROM \"person\"", NULL, "333");
  harness_exec(db, "DELETE FROM \"person\";"
                   "INSERT INTO \"person\" (\"id\", \"name\", \"phone\") VALUES"
                   " (1, 'ann', '111'), (2, 'ann', '222'), (3, 'ann', NULL)");
  assert_int_equal(nodup_merge(&r, db, "person", key, 1, NULL, &opt), NODUP_OK);
  nodup_merge_free(r);
  /* Keeper 3; losers in keep order: 2 then 1. */
  harness_expect(db, "SELECT CAST(\"id\" AS TEXT) || ' ' || \"phone\" FROM \"person\"", NULL,
                 "3 222");
}

/* One-to-one children: merge fills the kept child from the others', keep
 * leaves it as it was; both archive the others and re-point their
 * referrers. */
static void test_one_to_one_keep_vs_merge(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  const char *key[] = {"code"};
  const char *schema =
      "CREATE TABLE \"org\" ({id}, \"code\" TEXT);"
      "CREATE TABLE \"profile\" ({id}, \"org\" INTEGER NOT NULL UNIQUE REFERENCES \"org\" (\"id\"),"
      " \"bio\" TEXT, \"logo\" TEXT);"
      "CREATE TABLE \"note\" ({id}, \"profile\" INTEGER REFERENCES \"profile\" (\"id\"));"
      "INSERT INTO \"org\" (\"id\", \"code\") VALUES (1, 'o'), (2, 'o');"
      "INSERT INTO \"profile\" (\"id\", \"org\", \"bio\", \"logo\") VALUES"
      " (10, 1, 'kept', NULL), (20, 2, 'other', 'logo.png');"
      "INSERT INTO \"note\" (\"profile\") VALUES (20)";
  memset(&opt, 0, sizeof opt);
  opt.fill_nulls = 1;
  opt.one_to_one = NODUP_ONE_TO_ONE_KEEP;
  harness_exec(db, schema);
  assert_int_equal(nodup_merge(&r, db, "org", key, 1, NULL, &opt), NODUP_OK);
  nodup_merge_free(r);
  harness_expect(db, "SELECT \"bio\" || '/' || coalesce(\"logo\", '-') FROM \"profile\"", NULL,
                 "kept/-");
  harness_expect(db, "SELECT CAST(\"profile\" AS TEXT) FROM \"note\"", NULL, "10");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM {j}nodup_archive WHERE row LIKE '%logo.png%'",
                                 NULL),
                   1);

  harness_exec(db, "DROP TABLE \"note\"; DROP TABLE \"profile\"; DROP TABLE \"org\"");
  harness_exec(db, schema);
  opt.one_to_one = NODUP_ONE_TO_ONE_MERGE;
  assert_int_equal(nodup_merge(&r, db, "org", key, 1, NULL, &opt), NODUP_OK);
  nodup_merge_free(r);
  harness_expect(db, "SELECT \"bio\" || '/' || coalesce(\"logo\", '-') FROM \"profile\"", NULL,
                 "kept/logo.png");
  harness_expect(db, "SELECT CAST(\"profile\" AS TEXT) FROM \"note\"", NULL, "10");
}

/* NULL key values: not duplicates by default; with nulls_equal, they are. */
static void test_nulls_equal(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  harness_exec(db, seed000);
  memset(&opt, 0, sizeof opt);
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, &opt), NODUP_OK);
  assert_int_equal(r->groups, 1);
  nodup_merge_free(r);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"conference\" WHERE \"conference_id\" IS NULL", NULL), 2);
  opt.nulls_equal = 1;
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, &opt), NODUP_OK);
  assert_int_equal(r->groups, 1);
  nodup_merge_free(r);
  harness_expect(db, "SELECT CAST(\"id\" AS TEXT) FROM \"conference\" WHERE \"conference_id\" IS NULL",
                 NULL, "5");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"conference\"", NULL), 3);
}

typedef struct progress_log {
  long long calls, last, total;
  int backwards;
} progress_log;

static void on_progress(void *ctx, long long done, long long total) {
  progress_log *p = ctx;
  if (done < p->last) p->backwards = 1;
  p->calls++;
  p->last = done;
  p->total = total;
}

static void test_progress(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  progress_log p = {0, 0, 0, 0};
  harness_exec(db, seed000);
  harness_exec(db, "INSERT INTO \"conference\" (\"id\", \"conference_id\", \"app_id\") VALUES"
                   " (10, 'c9', 1), (11, 'c9', 1), (12, 'c8', 1), (13, 'c8', 1)");
  memset(&opt, 0, sizeof opt);
  opt.batch = 1;
  opt.progress = on_progress;
  opt.progress_ctx = &p;
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, &opt), NODUP_OK);
  nodup_merge_free(r);
  assert_int_equal(p.total, 3);
  assert_int_equal(p.last, 3);
  assert_int_equal(p.calls, 4); /* the start, then one per batch */
  assert_false(p.backwards);
}

static void test_foreign_keys_off_reported(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  harness_exec(db, seed000);
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, NULL), NODUP_OK);
  assert_false(r->foreign_keys_off);
  nodup_merge_free(r);
  if (harness_is_pg()) return;
  harness_exec(db, "PRAGMA foreign_keys = OFF;"
                   "INSERT INTO \"conference\" (\"id\", \"conference_id\", \"app_id\") VALUES"
                   " (20, 'z', 1), (21, 'z', 1)");
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, NULL), NODUP_OK);
  assert_true(r->foreign_keys_off);
  nodup_merge_free(r);
}

/* A polymorphic reference given as "T(C) WHERE cond": only cond's rows
 * are re-pointed, merged when they collide in a unique index, logged, and
 * put back by undo; rows of another type with the same ids are never
 * touched. Keeper 1, losers 2 and 3. */
static void test_ref_with_condition(void **state) {
  nodup_db *db = *state;
  const char *key[] = {"email"};
  const char *refs[] = {"likes(likeable_id) WHERE likeable_type = 'Account'",
                        "tags(taggable_id) WHERE taggable_type = 'Account'"};
  nodup_scan_options so;
  nodup_scan_report *s = NULL;
  nodup_merge_options mo;
  nodup_merge_report *r = NULL;
  char *before;
  size_t i;

  harness_exec(db, "CREATE TABLE \"account\" ({id}, \"email\" TEXT NOT NULL);"
                   "CREATE TABLE \"likes\" ({id}, \"likeable_type\" TEXT NOT NULL,"
                   " \"likeable_id\" INTEGER NOT NULL, \"n\" INTEGER,"
                   " UNIQUE (\"likeable_type\", \"likeable_id\"));"
                   "CREATE TABLE \"tags\" ({id}, \"taggable_type\" TEXT, \"taggable_id\" INTEGER);"
                   "INSERT INTO \"account\" (\"id\", \"email\") VALUES"
                   " (1, 'a'), (2, 'a'), (3, 'a'), (4, 'b');"
                   "INSERT INTO \"likes\" (\"id\", \"likeable_type\", \"likeable_id\", \"n\") VALUES"
                   " (1, 'Account', 1, 10), (2, 'Account', 2, 20), (3, 'Account', 3, 30),"
                   " (4, 'Photo', 2, 40), (5, 'Account', 4, 50);"
                   "INSERT INTO \"tags\" (\"id\", \"taggable_type\", \"taggable_id\") VALUES"
                   " (1, 'Account', 2), (2, 'Account', 3), (3, 'Photo', 3), (4, 'Account', 4)");
  before = harness_dump(db);

  /* Unnamed, both are suspected (Rails pairs, class Account) and refused. */
  memset(&mo, 0, sizeof mo);
  assert_nodup(db, NODUP_ERR_REFERENCED, nodup_merge(&r, db, "account", key, 1, NULL, &mo));
  assert_contains(nodup_errmsg(db), "\"likes\" (likeable_id) WHERE likeable_type = 'Account'");
  assert_contains(nodup_errmsg(db), "\"tags\" (taggable_id) WHERE taggable_type = 'Account'");
  rig_expect_same(before, harness_dump(db), "the dump");

  memset(&so, 0, sizeof so);
  so.refs = refs;
  so.nrefs = 2;
  assert_nodup(db, NODUP_OK, nodup_scan(&s, db, "account", key, 1, NULL, &so));
  assert_int_equal(s->nsuspects, 0);
  assert_int_equal(s->nrefs, 2);
  for (i = 0; i < s->nrefs; i++) {
    const nodup_scan_ref *f = &s->refs[i];
    assert_non_null(f->condition);
    assert_int_equal(f->repoint, 2);
    /* likes: (Account, 2) and (Account, 3) land on (Account, 1); the
     * Photo's like of 2 does not move, so it collides with nothing. */
    assert_int_equal(f->collide, strstr(f->table, "likes") ? 2 : 0);
  }
  nodup_scan_free(s);

  mo.refs = refs;
  mo.nrefs = 2;
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "account", key, 1, NULL, &mo));
  harness_expect(db, harness_pick("SELECT group_concat(v, ' ') FROM (SELECT \"id\" || ':' ||"
                                  " \"likeable_type\" || ':' || \"likeable_id\" AS v FROM \"likes\""
                                  " ORDER BY \"id\")",
                                  "SELECT string_agg(id || ':' || likeable_type || ':' ||"
                                  " likeable_id, ' ' ORDER BY id) FROM likes"),
                 NULL, "1:Account:1 4:Photo:2 5:Account:4");
  harness_expect(db, harness_pick("SELECT group_concat(v, ' ') FROM (SELECT \"id\" || ':' ||"
                                  " \"taggable_type\" || ':' || \"taggable_id\" AS v FROM \"tags\""
                                  " ORDER BY \"id\")",
                                  "SELECT string_agg(id || ':' || taggable_type || ':' ||"
                                  " taggable_id, ' ' ORDER BY id) FROM tags"),
                 NULL, "1:Account:1 2:Account:1 3:Photo:3 4:Account:4");
  /* The log holds the condition's rows only: the two tags re-pointed. */
  assert_int_equal(harness_count(db, "SELECT count(*) FROM {j}nodup_log WHERE run = $1", r->run), 2);
  assert_nodup(db, NODUP_OK, nodup_undo(db, r->run, NULL, NULL));
  nodup_merge_free(r);
  rig_expect_same(before, harness_dump(db), "the dump");
  free(before);
}

/* A resumed run keeps what it was told to leave (nodup_run_args, kind
 * 'ignore') and its references with their conditions: the suspect it
 * ignored does not stop the resume. */
static void test_resume_keeps_ignored_refs(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  const char *key[] = {"slug"};
  const char *ignore[] = {"note(team_id)"};
  const char *refs[] = {"pin(pinned_id) WHERE pinned_type = 'Team'"};
  char run[40];

  harness_exec(db, "CREATE TABLE \"team\" ({id}, \"slug\" TEXT);"
                   "CREATE TABLE \"member\" ({id}, \"team\" INTEGER REFERENCES \"team\" (\"id\"));"
                   "CREATE TABLE \"note\" ({id}, \"team_id\" INTEGER);"
                   "CREATE TABLE \"pin\" ({id}, \"pinned_type\" TEXT, \"pinned_id\" INTEGER);"
                   "INSERT INTO \"team\" (\"id\", \"slug\") VALUES (1, 'a'), (2, 'a'), (3, 'b'),"
                   " (4, 'b');"
                   "INSERT INTO \"member\" (\"team\") VALUES (1), (2), (3), (4);"
                   "INSERT INTO \"note\" (\"team_id\") VALUES (2), (4);"
                   "INSERT INTO \"pin\" (\"pinned_type\", \"pinned_id\") VALUES ('Team', 4),"
                   " ('Other', 4)");
  harness_exec(db, harness_pick("CREATE TRIGGER \"no3\" BEFORE UPDATE ON \"member\""
                                " WHEN NEW.\"team\" = 3 BEGIN SELECT RAISE(ABORT, 'no team 3'); END",
                                "CREATE FUNCTION no3() RETURNS trigger LANGUAGE plpgsql AS"
                                " $$BEGIN IF NEW.team = 3 THEN RAISE EXCEPTION 'no team 3'; END IF;"
                                " RETURN NEW; END$$;"
                                "CREATE TRIGGER no3 BEFORE UPDATE ON member FOR EACH ROW"
                                " EXECUTE FUNCTION no3()"));
  memset(&opt, 0, sizeof opt);
  opt.batch = 1;
  opt.ignore_refs = ignore;
  opt.nignore_refs = 1;
  opt.refs = refs;
  opt.nrefs = 1;
  assert_int_not_equal(nodup_merge(&r, db, "team", key, 1, NULL, &opt), NODUP_OK);
  assert_contains(nodup_errmsg(db), "no team 3");
  harness_query_into(db, "SELECT run FROM {j}nodup_runs", NULL, run, sizeof run);
  harness_expect(db, "SELECT value FROM {j}nodup_run_args WHERE run = $1 AND kind = 'ignore'", run,
                 "note(team_id)");
  harness_exec(db, harness_pick("DROP TRIGGER \"no3\"",
                                "DROP TRIGGER no3 ON member; DROP FUNCTION no3()"));
  assert_nodup(db, NODUP_OK, nodup_merge_resume(&r, db, run, NULL));
  nodup_merge_free(r);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"team\"", NULL), 2);
  /* Left as told; the Team's pin followed its team, the other stayed. */
  harness_expect(db, harness_pick("SELECT group_concat(\"team_id\", ',') FROM \"note\"",
                                  "SELECT string_agg(team_id::text, ',' ORDER BY id) FROM note"),
                 NULL, "2,4");
  harness_expect(db, harness_pick("SELECT group_concat(\"pinned_id\", ',') FROM \"pin\"",
                                  "SELECT string_agg(pinned_id::text, ',' ORDER BY id) FROM pin"),
                 NULL, "3,4");
}

/* Groups that appear while a merge runs (a later pass) are checked
 * against the suspected references too: here deleting team 2 makes two
 * new teams 'z' and a note on the second, as a writer could; the next pass
 * refuses to merge them, after batch 1 committed. */
static void test_later_pass_checks_suspects(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  const char *key[] = {"slug"};
  char run[40];

  harness_exec(db, "CREATE TABLE \"team\" ({id}, \"slug\" TEXT);"
                   "CREATE TABLE \"note\" ({id}, \"team_id\" INTEGER);"
                   "INSERT INTO \"team\" (\"id\", \"slug\") VALUES (1, 'a'), (2, 'a'), (3, 'b')");
  harness_exec(db, harness_pick("CREATE TRIGGER \"writer\" AFTER DELETE ON \"team\""
                                " WHEN OLD.\"id\" = 2 BEGIN"
                                " INSERT INTO \"team\" (\"id\", \"slug\") VALUES (10, 'z'), (11, 'z');"
                                " INSERT INTO \"note\" (\"team_id\") VALUES (11); END",
                                "CREATE FUNCTION writer() RETURNS trigger LANGUAGE plpgsql AS"
                                " $$BEGIN IF OLD.id = 2 THEN"
                                " INSERT INTO team (id, slug) VALUES (10, 'z'), (11, 'z');"
                                " INSERT INTO note (team_id) VALUES (11); END IF;"
                                " RETURN OLD; END$$;"
                                "CREATE TRIGGER writer AFTER DELETE ON team FOR EACH ROW"
                                " EXECUTE FUNCTION writer()"));
  memset(&opt, 0, sizeof opt);
  opt.batch = 1;
  assert_nodup(db, NODUP_ERR_REFERENCED, nodup_merge(&r, db, "team", key, 1, NULL, &opt));
  assert_null(r);
  assert_contains(nodup_errmsg(db), "1 row(s) of ");
  assert_contains(nodup_errmsg(db), "(team_id)");
  assert_contains(nodup_errmsg(db), "the batches before it are committed");
  /* Batch 1 (key a) stands; the new group is untouched. */
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"team\" WHERE \"id\" = 2", NULL), 0);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"team\" WHERE \"slug\" = 'z'", NULL), 2);
  harness_query_into(db, "SELECT run FROM {j}nodup_runs", NULL, run, sizeof run);
  harness_expect(db, "SELECT status FROM {j}nodup_runs WHERE run = $1", run, "failed");
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
      T(test_undo_seed000_exact),
      T(test_undo_chinook_exact),
      T(test_undo_refuses_changed_rows),
      T(test_no_archive_cannot_undo),
      T(test_resume_failed_run_then_undo),
      T(test_fill_nulls),
      T(test_one_to_one_keep_vs_merge),
      T(test_nulls_equal),
      T(test_progress),
      T(test_foreign_keys_off_reported),
      T(test_ref_with_condition),
      T(test_resume_keeps_ignored_refs),
      T(test_later_pass_checks_suspects),
#undef T
  };
  return cmocka_run_group_tests_name(harness_is_pg() ? "undo_pg" : "undo_sqlite", tests, NULL,
                                     NULL);
}

/*
 * test_merge.c -- nodup_merge against both backends, on seed 000's shape
 * (events, a many-to-many link with keeper-vs-loser and loser-vs-loser
 * collisions, a one-to-one summary, a self-reference) and on Chinook's
 * duplicate playlists. Every expected row below is worked out by hand:
 * the keeper is the lowest id, a colliding link row already pointing at
 * the keeper wins, otherwise the lowest id.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "harness.h"
#include "nodup.h"
#include "fixtures.h"

static const char *const conf_key[] = {"conference_id", "app_id"};

static char *rows(nodup_db *db, const char *sql) {
  /* All rows of a one-column query joined by ' ' (the harness returns the
   * first row only, so aggregate in SQL). */
  return harness_query(db, sql, NULL);
}

static void expect(nodup_db *db, const char *sql, const char *want) {
  char *got = rows(db, sql);
  if (!got || strcmp(got, want) != 0) fail_msg("%s\n  got  %s\n  want %s", sql, got ? got : "NULL", want);
  free(got);
}

static const char *agg(void) { return harness_pick("group_concat", "string_agg"); }

static void check_seed000_merged(nodup_db *db) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT %s(CAST(\"id\" AS TEXT), ',') FROM (SELECT \"id\" FROM \"conference\" ORDER BY 1) s",
           agg());
  expect(db, sql, "1,4,5,6");
  snprintf(sql, sizeof sql,
           "SELECT %s(CAST(\"conference\" AS TEXT), ',') FROM (SELECT \"conference\" FROM \"event\""
           " ORDER BY \"id\") s", agg());
  expect(db, sql, "1,1,1,1,4");
  snprintf(sql, sizeof sql,
           "SELECT %s(v, ' ') FROM (SELECT CAST(\"conference\" AS TEXT) || ':' || "
           "CAST(\"participant\" AS TEXT) AS v FROM \"conference_participant\" ORDER BY 1) s", agg());
  expect(db, sql, "1:1 1:2 1:3 4:3");
  snprintf(sql, sizeof sql,
           "SELECT %s(v, ' ') FROM (SELECT CAST(\"conference\" AS TEXT) || ':' || \"text\" AS v"
           " FROM \"summary\" ORDER BY 1) s", agg());
  expect(db, sql, "1:a");
  expect(db, "SELECT CAST(\"parent_id\" AS TEXT) FROM \"conference\" WHERE \"id\" = 4", "1");
}

static void test_seed000(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_scan_report *s = NULL;
  char sql[256];
  size_t i;
  long long deleted = 0;

  harness_exec(db, seed000);
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, NULL), NODUP_OK);
  assert_int_equal(r->groups, 1);
  assert_int_equal(r->self_references, 0);
  for (i = 0; i < r->ntables; i++) deleted += r->tables[i].deleted;
  assert_int_equal(deleted, 2 + 3 + 2); /* conferences, link rows, summaries */
  check_seed000_merged(db);

  /* Lossless: every deleted row is in the archive, with its keeper. */
  snprintf(sql, sizeof sql, "SELECT count(*) FROM {j}nodup_archive WHERE run = $1");
  assert_int_equal(harness_count(db, sql, r->run), 7);
  expect(db, "SELECT keeper FROM {j}nodup_archive WHERE tbl LIKE '%summary%' ORDER BY pk LIMIT 1", "1");
  if (!harness_is_pg()) assert_int_equal(harness_count(db, "SELECT count(*) FROM pragma_foreign_key_check", NULL), 0);
  nodup_merge_free(r);

  /* Done is done: nothing left, and a second run changes nothing. */
  assert_int_equal(nodup_scan(&s, db, "conference", conf_key, 2, NULL, NULL), NODUP_OK);
  assert_int_equal(s->groups, 0);
  nodup_scan_free(s);
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, NULL), NODUP_OK);
  assert_int_equal(r->groups, 0);
  nodup_merge_free(r);
  check_seed000_merged(db);
}

static void test_dry_run_changes_nothing(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  memset(&opt, 0, sizeof opt);
  opt.dry_run = 1;
  harness_exec(db, seed000);
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, &opt), NODUP_OK);
  assert_int_equal(r->groups, 1);
  assert_true(r->ntables >= 3);
  nodup_merge_free(r);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"conference\"", NULL), 6);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"conference_participant\"", NULL), 7);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"summary\"", NULL), 3);
  assert_false(harness_in_transaction(db));
}

static void test_one_to_one_fail(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  memset(&opt, 0, sizeof opt);
  opt.one_to_one = NODUP_ONE_TO_ONE_FAIL;
  harness_exec(db, seed000);
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, &opt),
                   NODUP_ERR_CONSTRAINT);
  assert_null(r);
  assert_non_null(strstr(nodup_errmsg(db), "summary"));
  /* Nothing changed, nothing left open. */
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"conference\"", NULL), 6);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"event\" WHERE \"conference\" = 1", NULL), 1);
  assert_false(harness_in_transaction(db));
}

/* A reference the catalog cannot see would be left dangling; declared with
 * refs it is re-pointed like a foreign key. */
static void test_user_reference_and_keep(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  const char *refs[] = {"audit_log(object_id)"};
  char sql[256];
  memset(&opt, 0, sizeof opt);
  opt.refs = refs;
  opt.nrefs = 1;
  opt.keep = "\"id\" DESC"; /* keep the newest: 3 */
  harness_exec(db, seed000);
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, &opt), NODUP_OK);
  nodup_merge_free(r);
  snprintf(sql, sizeof sql,
           "SELECT %s(CAST(\"object_id\" AS TEXT), ',') FROM (SELECT \"object_id\" FROM \"audit_log\""
           " ORDER BY \"id\") s", agg());
  /* Keeper 3; losers 1 and 2: every audit row now names 3. */
  expect(db, sql, "3,3,3,3");
  expect(db, "SELECT \"conference_id\" FROM \"conference\" WHERE \"id\" = 3", "c1");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"conference\" WHERE \"id\" IN (1, 2)", NULL), 0);
}

/* Small batches: each is its own transaction, and together they do what
 * one does. */
static void test_batches(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  memset(&opt, 0, sizeof opt);
  opt.batch = 1;
  harness_exec(db, seed000);
  harness_exec(db, "INSERT INTO \"conference\" (\"id\", \"conference_id\", \"app_id\") VALUES"
                   " (10, 'c9', 1), (11, 'c9', 1), (12, 'c8', 1), (13, 'c8', 1)");
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, &opt), NODUP_OK);
  assert_int_equal(r->groups, 3);
  assert_int_equal(r->batches, 3);
  nodup_merge_free(r);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"conference\"", NULL), 6);
}

/* Batches sized by time (opt.batch 0): the first takes 1000 groups, the
 * next at most twice the last, and together they merge every group. The
 * progress callback is called once before the first batch (0 done), then
 * after each. */
struct progress_log {
  long long done[64];
  int n;
};

static void log_progress(void *ctx, long long done, long long total) {
  struct progress_log *p = ctx;
  (void)total;
  if (p->n < 64) p->done[p->n++] = done;
}

static void test_timed_batches(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  struct progress_log log;
  memset(&opt, 0, sizeof opt);
  memset(&log, 0, sizeof log);
  opt.progress = log_progress;
  opt.progress_ctx = &log;
  harness_exec(db, seed000);
  harness_exec(db, "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 4999)"
                   " INSERT INTO \"conference\" (\"id\", \"conference_id\", \"app_id\")"
                   " SELECT 1000 + i, 'g' || CAST(i / 2 AS TEXT), 1 FROM n");
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, &opt), NODUP_OK);
  assert_int_equal(r->groups, 2501);
  assert_true(r->batches >= 2);
  assert_int_equal(log.n, (int)r->batches + 1);
  assert_int_equal(log.done[0], 0);
  assert_int_equal(log.done[1], 1000);
  for (int i = 2; i < log.n; i++) {
    long long step = log.done[i] - log.done[i - 1], last = log.done[i - 1] - log.done[i - 2];
    assert_true(step > 0);
    assert_true(step <= 2 * last);
  }
  assert_int_equal(log.done[log.n - 1], 2501);
  nodup_merge_free(r);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"conference\" WHERE \"id\" >= 1000",
                                 NULL), 2500);
}

/* SQLite: a batched merge postpones the WAL's automatic checkpoints to
 * its end (db_sqlite.c), then puts the connection's setting back and
 * truncates the WAL it let grow. */
static void test_batches_leave_wal_as_found(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  char wal[4096];
  struct stat st;
  char *got;
  if (harness_is_pg()) skip();
  memset(&opt, 0, sizeof opt);
  opt.batch = 1;
  harness_exec(db, seed000);
  harness_exec(db, "INSERT INTO \"conference\" (\"id\", \"conference_id\", \"app_id\") VALUES"
                   " (10, 'c9', 1), (11, 'c9', 1)");
  harness_exec(db, "PRAGMA wal_autocheckpoint = 777");
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, &opt), NODUP_OK);
  assert_true(r->batches > 1);
  nodup_merge_free(r);
  got = harness_query(db, "PRAGMA wal_autocheckpoint", NULL);
  assert_string_equal(got, "777");
  free(got);
  /* The harness's URL is "file:DIR/test.db?mode=rwc". */
  snprintf(wal, sizeof wal, "%.*s-wal", (int)(strcspn(harness_url() + 5, "?")),
           harness_url() + 5);
  assert_int_equal(stat(wal, &st), 0);
  assert_int_equal(st.st_size, 0);
  /* Failed runs put it back too: a table that does not exist. */
  assert_int_not_equal(nodup_merge(&r, db, "no_such_table", conf_key, 2, NULL, &opt), NODUP_OK);
  got = harness_query(db, "PRAGMA wal_autocheckpoint", NULL);
  assert_string_equal(got, "777");
  free(got);
}

/* PostgreSQL: a batch plans for its rows, not its tables' sizes (db_pg.c
 * says why): no merge joins, random reads priced as on an SSD, settings of
 * the batch's transaction only. A trigger on the re-pointed table sees
 * them, and the connection has its own again afterwards. */
static void test_batches_plan_for_their_rows(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  if (!harness_is_pg()) skip();
  memset(&opt, 0, sizeof opt);
  opt.batch = 1;
  harness_exec(db, seed000);
  harness_exec(db, "CREATE TABLE seen (v text);"
                   "CREATE FUNCTION note_setting() RETURNS trigger LANGUAGE plpgsql AS $$"
                   " BEGIN INSERT INTO seen VALUES (current_setting('enable_mergejoin') || ' ' ||"
                   " current_setting('random_page_cost'));"
                   " RETURN NEW; END $$;"
                   "CREATE TRIGGER note BEFORE UPDATE ON \"event\" FOR EACH ROW"
                   " EXECUTE FUNCTION note_setting()");
  harness_exec(db, "INSERT INTO \"conference\" (\"id\", \"conference_id\", \"app_id\") VALUES"
                   " (10, 'c9', 1), (11, 'c9', 1)");
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, &opt), NODUP_OK);
  assert_int_equal(r->batches, 2);
  nodup_merge_free(r);
  assert_true(harness_count(db, "SELECT count(*) FROM seen", NULL) > 0);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM seen WHERE v <> 'off 1.1'", NULL), 0);
  expect(db, "SELECT current_setting('enable_mergejoin') || ' ' || current_setting('random_page_cost')",
         "on 4");
  /* A server's own lower price stays. Not behind a pooler: a session's SET
   * would stay on whichever server connection ran it. */
  if (harness_is_pooled()) return;
  harness_exec(db, "SET random_page_cost = 1; TRUNCATE seen");
  harness_exec(db, "INSERT INTO \"conference\" (\"id\", \"conference_id\", \"app_id\") VALUES"
                   " (20, 'c7', 1), (21, 'c7', 1)");
  harness_exec(db, "INSERT INTO \"event\" (\"conference\") VALUES (21)");
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, &opt), NODUP_OK);
  nodup_merge_free(r);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM seen WHERE v = 'off 1'", NULL), 1);
  harness_exec(db, "RESET random_page_cost");
}

static void test_chinook_playlists(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  const char *key_sqlite[] = {"Name"}, *key_pg[] = {"name"};
  int pg = harness_is_pg();
  const char *tracks = pg ? "SELECT count(DISTINCT track_id) FROM playlist_track"
                          : "SELECT count(DISTINCT TrackId) FROM PlaylistTrack";
  long long before;

  db = harness_load_chinook(state);
  before = harness_count(db, tracks, NULL);
  assert_int_equal(nodup_merge(&r, db, pg ? "playlist" : "Playlist", pg ? key_pg : key_sqlite, 1,
                               NULL, NULL),
                   NODUP_OK);
  assert_int_equal(r->groups, 4);
  nodup_merge_free(r);
  /* One playlist per name, holding the union of the tracks; no track lost. */
  assert_int_equal(harness_count(db, tracks, NULL), before);
  assert_int_equal(harness_count(db, pg ? "SELECT count(*) FROM playlist_track WHERE playlist_id = 1"
                                        : "SELECT count(*) FROM PlaylistTrack WHERE PlaylistId = 1",
                                 NULL),
                   3290);
  assert_int_equal(harness_count(db, pg ? "SELECT count(*) FROM playlist_track WHERE playlist_id = 3"
                                        : "SELECT count(*) FROM PlaylistTrack WHERE PlaylistId = 3",
                                 NULL),
                   213);
  assert_int_equal(harness_count(db, pg ? "SELECT count(*) FROM (SELECT name FROM playlist GROUP BY name HAVING count(*) > 1) g"
                                        : "SELECT count(*) FROM (SELECT Name FROM Playlist GROUP BY Name HAVING count(*) > 1)",
                                 NULL),
                   0);
  if (!pg) assert_int_equal(harness_count(db, "SELECT count(*) FROM pragma_foreign_key_check", NULL), 0);
}

static void test_errors(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  const char *nope[] = {"nope"};
  const char *bad_ref[] = {"audit_log"};
  nodup_merge_options opt;
  harness_exec(db, seed000);
  assert_int_equal(nodup_merge(&r, db, "nope", conf_key, 2, NULL, NULL), NODUP_ERR_NO_TABLE);
  assert_non_null(strstr(nodup_errmsg(db), "nope"));
  assert_int_equal(nodup_merge(&r, db, "conference", nope, 1, NULL, NULL), NODUP_ERR_NO_COLUMN);
  assert_non_null(strstr(nodup_errmsg(db), "nope"));
  memset(&opt, 0, sizeof opt);
  opt.refs = bad_ref;
  opt.nrefs = 1;
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, &opt), NODUP_ERR_USAGE);
  assert_null(r);
  /* Inside the caller's transaction: refused, nothing done. */
  harness_exec(db, "BEGIN");
  assert_int_equal(nodup_merge(&r, db, "conference", conf_key, 2, NULL, NULL), NODUP_ERR_USAGE);
  harness_exec(db, "ROLLBACK");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"conference\"", NULL), 6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
      T(test_seed000),
      T(test_dry_run_changes_nothing),
      T(test_one_to_one_fail),
      T(test_user_reference_and_keep),
      T(test_batches),
      T(test_timed_batches),
      T(test_batches_leave_wal_as_found),
      T(test_batches_plan_for_their_rows),
      T(test_chinook_playlists),
      T(test_errors),
#undef T
  };
  return cmocka_run_group_tests_name(harness_is_pg() ? "merge_pg" : "merge_sqlite", tests, NULL,
                                     NULL);
}

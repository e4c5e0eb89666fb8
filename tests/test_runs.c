/*
 * test_runs.c -- the merge journal stays out of the way, on both backends
 * (and through PgBouncer): a refused merge creates nothing; on PostgreSQL
 * the journal lives in its own schema (nodup, or one chosen with
 * nodup_db_set_journal) and one an earlier nodup left in public is still
 * read, resumed, undone and forgotten there; nodup_runs_list says which
 * runs are running, interrupted, done, failed or undone, judged by their
 * owner (server process, process on this host, heartbeat); a merge killed
 * with SIGKILL shows as interrupted and resumes; nodup_runs_forget removes
 * a run's journal and refuses a running one.
 */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "rig.h"
#include "nodup.h"

/* Tables (and on PostgreSQL the schema) a journal would be: none exist. */
static void assert_no_journal(nodup_db *db) {
  assert_int_equal(harness_count(db,
                                 harness_pick("SELECT count(*) FROM sqlite_schema"
                                              " WHERE name LIKE 'nodup%'",
                                              "SELECT count(*) FROM pg_class"
                                              " WHERE relname LIKE 'nodup%' AND relkind = 'r'"),
                                 NULL),
                   0);
  if (harness_is_pg())
    assert_int_equal(harness_count(db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'nodup'",
                                   NULL),
                     0);
}

/* The run `run` of a report (NULL: not listed). */
static const nodup_run_info *find_run(const nodup_runs_report *r, const char *run) {
  size_t i;
  for (i = 0; i < r->nruns; i++)
    if (!strcmp(r->runs[i].run, run)) return &r->runs[i];
  return NULL;
}

/* The state nodup_runs_list gives run (-1: not listed). */
static int state_of(nodup_db *db, const char *run) {
  nodup_runs_report *r = NULL;
  const nodup_run_info *u;
  int state;
  assert_nodup(db, NODUP_OK, nodup_runs_list(&r, db));
  u = find_run(r, run);
  state = u ? u->state : -1;
  nodup_runs_free(r);
  return state;
}

static void expect_state(nodup_db *db, const char *run, int want) {
  int got = state_of(db, run);
  if (got != want)
    fail_msg("run %s is %s, expected %s", run, got < 0 ? "not listed" : nodup_run_state_name(got),
             nodup_run_state_name(want));
}

static const char *const org_schema =
    "CREATE TABLE \"org\" ({id}, \"code\" TEXT);"
    "CREATE TABLE \"profile\" ({id}, \"org\" INTEGER NOT NULL UNIQUE REFERENCES \"org\" (\"id\"),"
    " \"bio\" TEXT);"
    "INSERT INTO \"org\" (\"id\", \"code\") VALUES (1, 'o'), (2, 'o'), (3, 'p'), (4, 'p');"
    "INSERT INTO \"profile\" (\"org\", \"bio\") VALUES (1, 'a'), (2, 'b')";

/* Every refusal comes before anything is written: no journal table, no
 * schema, no run. */
static void test_refusals_create_nothing(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options mo;
  nodup_enforce_options eo;
  nodup_enforce_report *e = NULL;
  nodup_runs_report *list = NULL;
  const char *key[] = {"code"}, *bad_key[] = {"nope"};
  const char *bad_ref[] = {"nosuch(x)"};
  harness_exec(db, org_schema);

  memset(&mo, 0, sizeof mo);
  assert_int_not_equal(nodup_merge(&r, db, "org", key, 1, "nope = 1", &mo), NODUP_OK);
  assert_contains(nodup_errmsg(db), "--where");
  assert_no_journal(db);
  mo.keep = "nope DESC";
  assert_int_not_equal(nodup_merge(&r, db, "org", key, 1, NULL, &mo), NODUP_OK);
  assert_contains(nodup_errmsg(db), "--keep");
  assert_no_journal(db);
  mo.keep = NULL;
  assert_nodup(db, NODUP_ERR_NO_COLUMN, nodup_merge(&r, db, "org", bad_key, 1, NULL, &mo));
  mo.refs = bad_ref;
  mo.nrefs = 1;
  assert_int_not_equal(nodup_merge(&r, db, "org", key, 1, NULL, &mo), NODUP_OK);
  mo.refs = NULL;
  mo.nrefs = 0;
  mo.ignore_refs = bad_ref;
  mo.nignore_refs = 1;
  assert_int_not_equal(nodup_merge(&r, db, "org", key, 1, NULL, &mo), NODUP_OK);
  mo.ignore_refs = NULL;
  mo.nignore_refs = 0;
  assert_no_journal(db);

  /* --one-to-one fail: org 2's profile would collide with org 1's. */
  mo.one_to_one = NODUP_ONE_TO_ONE_FAIL;
  assert_nodup(db, NODUP_ERR_CONSTRAINT, nodup_merge(&r, db, "org", key, 1, NULL, &mo));
  assert_null(r);
  assert_contains(nodup_errmsg(db), "\"profile\"");
  assert_contains(nodup_errmsg(db), "nothing changed");
  assert_no_journal(db);
  mo.dry_run = 1;
  assert_nodup(db, NODUP_ERR_CONSTRAINT, nodup_merge(&r, db, "org", key, 1, NULL, &mo));
  mo.dry_run = 0;
  memset(&eo, 0, sizeof eo);
  eo.merge = 1;
  eo.merge_opt = &mo;
  assert_nodup(db, NODUP_ERR_CONSTRAINT, nodup_enforce(&e, db, "org", key, 1, NULL, &eo));
  assert_no_journal(db);

  /* A suspected reference pointing at a loser. */
  harness_exec(db, "CREATE TABLE \"note\" ({id}, \"org_id\" INTEGER);"
                   "INSERT INTO \"note\" (\"org_id\") VALUES (2)");
  mo.one_to_one = NODUP_ONE_TO_ONE_MERGE;
  assert_nodup(db, NODUP_ERR_REFERENCED, nodup_merge(&r, db, "org", key, 1, NULL, &mo));
  assert_no_journal(db);

  /* Listing reads only. */
  assert_nodup(db, NODUP_OK, nodup_runs_list(&list, db));
  assert_int_equal(list->nruns, 0);
  nodup_runs_free(list);
  assert_no_journal(db);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"org\"", NULL), 4);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"profile\"", NULL), 2);
}

/* A new run that fails before any batch commits leaves no journal rows:
 * nothing to resume or undo. */
static void test_failed_first_batch_leaves_no_run(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_runs_report *list = NULL;
  const char *key[] = {"slug"};
  harness_exec(db, "CREATE TABLE \"team\" ({id}, \"slug\" TEXT);"
                   "CREATE TABLE \"member\" ({id}, \"team\" INTEGER REFERENCES \"team\" (\"id\"));"
                   "INSERT INTO \"team\" (\"id\", \"slug\") VALUES (1, 'a'), (2, 'a');"
                   "INSERT INTO \"member\" (\"team\") VALUES (1), (2)");
  harness_exec(db, harness_pick("CREATE TRIGGER \"no1\" BEFORE UPDATE ON \"member\""
                                " WHEN NEW.\"team\" = 1 BEGIN SELECT RAISE(ABORT, 'no team 1'); END",
                                "CREATE FUNCTION no1() RETURNS trigger LANGUAGE plpgsql AS"
                                " $$BEGIN IF NEW.team = 1 THEN RAISE EXCEPTION 'no team 1'; END IF;"
                                " RETURN NEW; END$$;"
                                "CREATE TRIGGER no1 BEFORE UPDATE ON member FOR EACH ROW"
                                " EXECUTE FUNCTION no1()"));
  assert_int_not_equal(nodup_merge(&r, db, "team", key, 1, NULL, NULL), NODUP_OK);
  assert_contains(nodup_errmsg(db), "no team 1");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM {j}nodup_runs", NULL), 0);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM {j}nodup_run_args", NULL), 0);
  assert_nodup(db, NODUP_OK, nodup_runs_list(&list, db));
  assert_int_equal(list->nruns, 0);
  nodup_runs_free(list);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"team\"", NULL), 2);
}

/* Where the journal is: PostgreSQL's own schema, "nodup" or chosen, with
 * its version; SQLite's main database. */
static void test_journal_location(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_runs_report *list = NULL;
  const nodup_run_info *u;
  const char *key[] = {"code"};
  char run[40], other[40];
  long long changed = 0;
  size_t i;

  harness_exec(db, "CREATE TABLE \"org\" ({id}, \"code\" TEXT);"
                   "CREATE TABLE \"member\" ({id}, \"org\" INTEGER REFERENCES \"org\" (\"id\"));"
                   "INSERT INTO \"org\" (\"id\", \"code\") VALUES (1, 'o'), (2, 'o'), (3, 'o');"
                   "INSERT INTO \"member\" (\"org\") VALUES (1), (2), (3), (3)");
  if (!harness_is_pg()) {
    assert_nodup(db, NODUP_ERR_USAGE, nodup_db_set_journal(db, "ops"));
    assert_contains(nodup_errmsg(db), "SQLite has no schemas");
  }
  assert_nodup(db, NODUP_OK, nodup_db_set_journal(db, NULL));
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "org", key, 1, NULL, NULL));
  snprintf(run, sizeof run, "%s", r->run);
  for (i = 0; i < r->ntables; i++) changed += r->tables[i].repointed + r->tables[i].deleted;
  nodup_merge_free(r);
  assert_int_equal(changed, 3 + 2);
  harness_expect(db, "SELECT value FROM {j}nodup_meta WHERE key = 'version'", NULL, "2");
  if (harness_is_pg()) {
    /* Six tables in "nodup", none in public. */
    assert_int_equal(harness_count(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'nodup'",
                                   NULL),
                     6);
    assert_int_equal(harness_count(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                                       " AND tablename LIKE 'nodup%'",
                                   NULL),
                     0);
  }
  assert_nodup(db, NODUP_OK, nodup_runs_list(&list, db));
  assert_int_equal(list->nruns, 1);
  u = &list->runs[0];
  assert_string_equal(u->run, run);
  assert_string_equal(u->table, "org");
  assert_int_equal(u->nkey, 1);
  assert_string_equal(u->key[0], "code");
  assert_int_equal(u->state, NODUP_RUN_DONE);
  assert_int_equal(u->groups, 1);
  assert_int_equal(u->repointed, 3);
  assert_int_equal(u->deleted, 2);
  assert_int_equal(u->filled, 0);
  assert_int_equal(u->changed, 5);
  assert_true(u->archived);
  assert_false(u->legacy);
  assert_non_null(u->started);
  assert_non_null(u->finished);
  assert_non_null(u->host);
  assert_int_equal(u->pid, (long long)getpid());
  if (harness_is_pg()) assert_string_equal(u->journal, "nodup");
  else assert_null(u->journal);
  nodup_runs_free(list);
  if (!harness_is_pg()) {
    assert_nodup(db, NODUP_OK, nodup_undo(db, run, NULL, NULL));
    expect_state(db, run, NODUP_RUN_UNDONE);
    return;
  }

  /* A schema of one's own, quoted everywhere. */
  assert_nodup(db, NODUP_ERR_USAGE, nodup_db_set_journal(db, ""));
  assert_nodup(db, NODUP_ERR_USAGE, nodup_db_set_journal(db, "pg_journal"));
  assert_nodup(db, NODUP_ERR_USAGE,
               nodup_db_set_journal(db, "a123456789b123456789c123456789d123456789e123456789"
                                        "f123456789g1234"));
  assert_nodup(db, NODUP_OK, nodup_db_set_journal(db, "Ops \"Journal\""));
  harness_exec(db, "INSERT INTO \"org\" (\"id\", \"code\") VALUES (10, 'q'), (11, 'q')");
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "org", key, 1, NULL, NULL));
  snprintf(other, sizeof other, "%s", r->run);
  nodup_merge_free(r);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM pg_tables"
                                     " WHERE schemaname = 'Ops \"Journal\"'",
                                 NULL),
                   6);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM nodup.nodup_runs", NULL), 1);
  assert_int_equal(state_of(db, run), -1);
  expect_state(db, other, NODUP_RUN_DONE);
  /* The default journal does not know it; its own does. */
  assert_nodup(db, NODUP_OK, nodup_db_set_journal(db, NULL));
  expect_state(db, run, NODUP_RUN_DONE);
  assert_int_equal(state_of(db, other), -1);
  assert_nodup(db, NODUP_ERR_NO_RUN, nodup_undo(db, other, NULL, NULL));
  assert_nodup(db, NODUP_OK, nodup_db_set_journal(db, "Ops \"Journal\""));
  assert_nodup(db, NODUP_OK, nodup_undo(db, other, NULL, NULL));
  expect_state(db, other, NODUP_RUN_UNDONE);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"org\"", NULL), 3);
  assert_nodup(db, NODUP_OK, nodup_db_set_journal(db, NULL));
  assert_nodup(db, NODUP_OK, nodup_undo(db, run, NULL, NULL));
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"org\"", NULL), 5);
}

/* PostgreSQL, a role that may not create the schema or its tables: the
 * message names the schema and what to grant, and nothing is created.
 * (Not through PgBouncer: SET ROLE is a session setting.) */
static void test_journal_rights(void **state) {
  nodup_db *db = *state, *app;
  nodup_merge_report *r = NULL;
  const char *key[] = {"code"};
  char role[64], sql[1024];
  if (!harness_is_pg() || harness_is_pooled()) return;
  snprintf(role, sizeof role, "nodup_app_%ld", (long)getpid());
  snprintf(sql, sizeof sql,
           "CREATE ROLE %s NOLOGIN;"
           "CREATE TABLE \"org\" ({id}, \"code\" TEXT);"
           "INSERT INTO \"org\" (\"id\", \"code\") VALUES (1, 'o'), (2, 'o');"
           "ALTER TABLE \"org\" OWNER TO %s",
           role, role);
  harness_exec(db, sql);
  app = harness_connect();
  snprintf(sql, sizeof sql, "SET ROLE %s", role);
  assert_nodup(app, NODUP_OK, nodup_exec(app, sql));
  assert_nodup(app, NODUP_ERR_DB, nodup_merge(&r, app, "org", key, 1, NULL, NULL));
  assert_contains(nodup_errmsg(app), "cannot create the merge journal's schema \"nodup\"");
  snprintf(sql, sizeof sql, "CREATE SCHEMA \"nodup\" AUTHORIZATION \"%s\"", role);
  assert_contains(nodup_errmsg(app), sql);
  assert_no_journal(db);

  harness_exec(db, "CREATE SCHEMA \"nodup\"");
  assert_nodup(app, NODUP_ERR_DB, nodup_merge(&r, app, "org", key, 1, NULL, NULL));
  snprintf(sql, sizeof sql, "GRANT USAGE, CREATE ON SCHEMA \"nodup\" TO \"%s\"", role);
  assert_contains(nodup_errmsg(app), sql);
  snprintf(sql, sizeof sql, "GRANT USAGE ON SCHEMA \"nodup\" TO %s", role);
  harness_exec(db, sql);
  assert_nodup(app, NODUP_ERR_DB, nodup_merge(&r, app, "org", key, 1, NULL, NULL));
  snprintf(sql, sizeof sql, "GRANT CREATE ON SCHEMA \"nodup\" TO \"%s\"", role);
  assert_contains(nodup_errmsg(app), sql);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'nodup'",
                                 NULL),
                   0);
  snprintf(sql, sizeof sql, "GRANT CREATE ON SCHEMA \"nodup\" TO %s", role);
  harness_exec(db, sql);
  /* An administrator made the schema: the role needs no more. */
  assert_nodup(app, NODUP_OK, nodup_merge(&r, app, "org", key, 1, NULL, NULL));
  nodup_merge_free(r);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"org\"", NULL), 1);
  assert_nodup(app, NODUP_OK, nodup_exec(app, "RESET ROLE"));
  snprintf(sql, sizeof sql, "DROP TABLE \"org\"; DROP SCHEMA \"nodup\" CASCADE; DROP OWNED BY %s;"
                            " DROP ROLE %s",
           role, role);
  harness_exec(db, sql);
}

/* Make the journal in `schema` (NULL: SQLite's) look as an earlier nodup
 * left it: version 1, no nodup_meta, no owner or counter columns. */
static void downgrade_to_v1(nodup_db *db, const char *schema) {
  static const char *const cols[] = {"owner", "host", "pid", "pid_start", "backend",
                                     "heartbeat", "repointed", "deleted", "filled"};
  char sql[256], prefix[64];
  size_t i;
  snprintf(prefix, sizeof prefix, "%s%s", schema ? schema : "", schema ? "." : "");
  snprintf(sql, sizeof sql, "DROP TABLE %snodup_meta", prefix);
  harness_exec(db, sql);
  for (i = 0; i < COUNT_OF(cols); i++) {
    snprintf(sql, sizeof sql, "ALTER TABLE %snodup_runs DROP COLUMN %s", prefix, cols[i]);
    harness_exec(db, sql);
  }
}

static const char *const team_schema =
    "CREATE TABLE \"team\" ({id}, \"slug\" TEXT);"
    "CREATE TABLE \"member\" ({id}, \"team\" INTEGER REFERENCES \"team\" (\"id\"));"
    "INSERT INTO \"team\" (\"id\", \"slug\") VALUES (1, 'a'), (2, 'a'), (3, 'b'), (4, 'b');"
    "INSERT INTO \"member\" (\"team\") VALUES (1), (2), (3), (4), (4)";

/* A run that fails in its second batch (a trigger refuses team 3), its
 * first batch committed; its journal's nodup_runs is `runs`. */
static void failing_second_batch(nodup_db *db, const char *runs, char *run, size_t size) {
  char sql[256];
  nodup_merge_report *r = NULL;
  nodup_merge_options mo;
  const char *key[] = {"slug"};
  harness_exec(db, harness_pick("CREATE TRIGGER \"no3\" BEFORE UPDATE ON \"member\""
                                " WHEN NEW.\"team\" = 3 BEGIN SELECT RAISE(ABORT, 'no team 3'); END",
                                "CREATE FUNCTION no3() RETURNS trigger LANGUAGE plpgsql AS"
                                " $$BEGIN IF NEW.team = 3 THEN RAISE EXCEPTION 'no team 3'; END IF;"
                                " RETURN NEW; END$$;"
                                "CREATE TRIGGER no3 BEFORE UPDATE ON member FOR EACH ROW"
                                " EXECUTE FUNCTION no3()"));
  memset(&mo, 0, sizeof mo);
  mo.batch = 1;
  assert_int_not_equal(nodup_merge(&r, db, "team", key, 1, NULL, &mo), NODUP_OK);
  snprintf(sql, sizeof sql, "SELECT run FROM %s WHERE status = 'failed'", runs);
  harness_query_into(db, sql, NULL, run, size);
  harness_exec(db, harness_pick("DROP TRIGGER \"no3\"",
                                "DROP TRIGGER no3 ON member; DROP FUNCTION no3()"));
}

/* A journal an earlier nodup wrote (version 1; on PostgreSQL in public):
 * listed, undone and forgotten where it is; resuming one of its runs
 * upgrades it in place; forgetting its last run drops it. */
static void test_earlier_journal(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_runs_report *list = NULL;
  const nodup_run_info *u;
  const char *key[] = {"code"};
  char a[40], b[40], c[40];
  int pg = harness_is_pg();

  harness_exec(db, "CREATE TABLE \"org\" ({id}, \"code\" TEXT);"
                   "CREATE TABLE \"staff\" ({id}, \"org\" INTEGER REFERENCES \"org\" (\"id\"));"
                   "INSERT INTO \"org\" (\"id\", \"code\") VALUES (1, 'o'), (2, 'o'), (3, 'o');"
                   "INSERT INTO \"staff\" (\"org\") VALUES (1), (2), (3), (3)");
  harness_exec(db, team_schema);
  /* Written where an earlier nodup wrote, by today's code, then taken back
   * to version 1. */
  if (pg) assert_nodup(db, NODUP_OK, nodup_db_set_journal(db, "public"));
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "org", key, 1, NULL, NULL));
  snprintf(a, sizeof a, "%s", r->run);
  nodup_merge_free(r);
  failing_second_batch(db, pg ? "public.nodup_runs" : "nodup_runs", b, sizeof b);
  downgrade_to_v1(db, pg ? "public" : NULL);
  /* An earlier nodup killed mid-run left it running, naming no owner. */
  harness_exec(db, pg ? "UPDATE public.nodup_runs SET status = 'running' WHERE status = 'failed'"
                      : "UPDATE nodup_runs SET status = 'running' WHERE status = 'failed'");
  assert_nodup(db, NODUP_OK, nodup_db_set_journal(db, NULL));

  assert_nodup(db, NODUP_OK, nodup_runs_list(&list, db));
  assert_int_equal(list->nruns, 2);
  u = find_run(list, a);
  assert_non_null(u);
  assert_int_equal(u->state, NODUP_RUN_DONE);
  /* Counted from its log and archive. */
  assert_int_equal(u->repointed, 3);
  assert_int_equal(u->deleted, 2);
  assert_int_equal(u->changed, 5);
  assert_null(u->heartbeat);
  assert_int_equal(u->legacy, pg);
  if (pg) assert_string_equal(u->journal, "public");
  u = find_run(list, b);
  assert_non_null(u);
  assert_int_equal(u->state, NODUP_RUN_INTERRUPTED);
  assert_int_equal(u->groups, 1);
  nodup_runs_free(list);

  /* Undone where it is (a read of the old layout, no upgrade). */
  assert_nodup(db, NODUP_OK, nodup_undo(db, a, NULL, NULL));
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"org\"", NULL), 3);
  expect_state(db, a, NODUP_RUN_UNDONE);
  assert_int_equal(harness_count(db, harness_pick("SELECT count(*) FROM sqlite_schema"
                                                  " WHERE name = 'nodup_meta'",
                                                  "SELECT count(*) FROM pg_tables WHERE"
                                                  " tablename = 'nodup_meta'"),
                                 NULL),
                   0);
  if (pg) {
    /* New runs go to the journal's own schema; public is left as it is. */
    const char *tkey[] = {"slug"};
    harness_exec(db, "CREATE TABLE \"t2\" ({id}, \"slug\" TEXT);"
                     "INSERT INTO \"t2\" (\"slug\") VALUES ('x'), ('x')");
    assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "t2", tkey, 1, NULL, NULL));
    snprintf(c, sizeof c, "%s", r->run);
    nodup_merge_free(r);
    harness_expect(db, "SELECT status FROM nodup.nodup_runs WHERE run = $1", c, "done");
    assert_int_equal(harness_count(db, "SELECT count(*) FROM public.nodup_runs", NULL), 2);
  }

  /* Resumed: finished under its id; its journal upgraded where it is. */
  assert_nodup(db, NODUP_OK, nodup_merge_resume(&r, db, b, NULL));
  assert_string_equal(r->run, b);
  assert_int_equal(r->groups, 1);
  nodup_merge_free(r);
  harness_expect(db, pg ? "SELECT value FROM public.nodup_meta WHERE key = 'version'"
                        : "SELECT value FROM nodup_meta WHERE key = 'version'",
                 NULL, "2");
  assert_nodup(db, NODUP_OK, nodup_runs_list(&list, db));
  u = find_run(list, b);
  assert_non_null(u);
  assert_int_equal(u->state, NODUP_RUN_DONE);
  assert_int_equal(u->groups, 2);
  /* Batch 1 (counted from the log at the upgrade), then batch 2. */
  assert_int_equal(u->repointed, 3);
  assert_int_equal(u->deleted, 2);
  nodup_runs_free(list);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"team\"", NULL), 2);
  assert_nodup(db, NODUP_OK, nodup_undo(db, b, NULL, NULL));
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"team\"", NULL), 4);

  /* Forgotten; with its last run the earlier journal goes. */
  assert_nodup(db, NODUP_OK, nodup_runs_forget(db, a));
  assert_int_equal(state_of(db, a), -1);
  if (pg)
    assert_int_equal(harness_count(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                                       " AND tablename LIKE 'nodup%'",
                                   NULL),
                     6);
  assert_nodup(db, NODUP_OK, nodup_runs_forget(db, b));
  if (pg) {
    assert_int_equal(harness_count(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                                       " AND tablename LIKE 'nodup%'",
                                   NULL),
                     0);
    expect_state(db, c, NODUP_RUN_DONE);
  }
}

static void set_owner(nodup_db *db, const char *run, const char *assignments) {
  char sql[2048];
  snprintf(sql, sizeof sql, "UPDATE {j}nodup_runs SET %s WHERE run = '%s'", assignments, run);
  harness_exec(db, sql);
}

/* The state a running record gets from its owner: the server process
 * (direct PostgreSQL), the process on this host, else the heartbeat. A
 * running run is never resumed, undone nor forgotten. */
/* A child that ends at once: a process of this host that is gone. */
static int exit_at_once(struct rig_child *child, int index, void *ctx) {
  (void)index;
  (void)ctx;
  rig_child_ready(child);
  return 0;
}

static void test_owner_decides_state(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  const char *key[] = {"slug"};
  char run[40], host[256], sql[1024];
  pid_t gone;
  harness_exec(db, team_schema);
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "team", key, 1, NULL, NULL));
  snprintf(run, sizeof run, "%s", r->run);
  nodup_merge_free(r);
  gethostname(host, sizeof host);
  host[sizeof host - 1] = '\0';

  /* This very process, on this host: running. */
  snprintf(sql, sizeof sql,
           "status = 'running', finished = NULL, host = '%s', pid = %ld, pid_start = NULL,"
           " backend = NULL",
           host, (long)getpid());
  set_owner(db, run, sql);
  expect_state(db, run, NODUP_RUN_RUNNING);
  assert_nodup(db, NODUP_ERR_NO_RUN, nodup_merge_resume(&r, db, run, NULL));
  assert_contains(nodup_errmsg(db), "is running");
  assert_nodup(db, NODUP_ERR_NO_RUN, nodup_runs_forget(db, run));
  assert_contains(nodup_errmsg(db), "cannot be forgotten");
  assert_nodup(db, NODUP_ERR_NO_RUN, nodup_undo(db, run, NULL, NULL));
  assert_contains(nodup_errmsg(db), "cannot be undone");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"team\"", NULL), 2);
  /* ... and a start time that is not this process's: its pid was reused. */
  set_owner(db, run, "pid_start = '1'");
  expect_state(db, run, NODUP_RUN_INTERRUPTED);

  /* A process of this host that is gone. */
  gone = rig_fork(exit_at_once, NULL);
  rig_reap(gone, 0);
  snprintf(sql, sizeof sql, "pid = %ld, pid_start = NULL", (long)gone);
  set_owner(db, run, sql);
  expect_state(db, run, NODUP_RUN_INTERRUPTED);

  /* Another host: the heartbeat, fresh or older than the lease. */
  snprintf(sql, sizeof sql, "host = 'elsewhere.invalid', heartbeat = %s",
           harness_pick("datetime('now')",
                        "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"));
  set_owner(db, run, sql);
  expect_state(db, run, NODUP_RUN_RUNNING);
  set_owner(db, run, "heartbeat = '2000-01-01 00:00:00'");
  expect_state(db, run, NODUP_RUN_INTERRUPTED);

  if (harness_is_pg()) {
    /* The server process decides when one is recorded: a live one (this
     * statement's), then one that is gone. */
    set_owner(db, run, "backend = (SELECT pg_backend_pid()::text || ' ' ||"
                       " extract(epoch FROM backend_start)::text FROM pg_stat_activity"
                       " WHERE pid = pg_backend_pid())");
    expect_state(db, run, NODUP_RUN_RUNNING);
    set_owner(db, run, "backend = '1 1'");
    expect_state(db, run, NODUP_RUN_INTERRUPTED);
  }

  /* Interrupted: undone (what its batches did), then nothing to resume. */
  assert_nodup(db, NODUP_OK, nodup_undo(db, run, NULL, NULL));
  expect_state(db, run, NODUP_RUN_UNDONE);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"team\"", NULL), 4);
  assert_nodup(db, NODUP_ERR_NO_RUN, nodup_merge_resume(&r, db, run, NULL));
}

/* Forgetting: every journal row of the run goes; unknown runs and calls
 * inside a transaction are refused. */
static void test_forget(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  const char *key[] = {"slug"};
  char run[40];
  static const char *const tables[] = {"nodup_runs", "nodup_run_args", "nodup_steps", "nodup_log",
                                       "nodup_archive"};
  size_t i;
  harness_exec(db, team_schema);
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "team", key, 1, NULL, NULL));
  snprintf(run, sizeof run, "%s", r->run);
  nodup_merge_free(r);
  for (i = 0; i < COUNT_OF(tables); i++) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM {j}%s WHERE run = $1", tables[i]);
    assert_true(harness_count(db, sql, run) > 0);
  }
  assert_nodup(db, NODUP_ERR_NO_RUN, nodup_runs_forget(db, "no-such-run"));
  assert_nodup(db, NODUP_OK, nodup_exec(db, "BEGIN"));
  assert_nodup(db, NODUP_ERR_USAGE, nodup_runs_forget(db, run));
  assert_nodup(db, NODUP_OK, nodup_exec(db, "ROLLBACK"));
  assert_nodup(db, NODUP_OK, nodup_runs_forget(db, run));
  assert_false(harness_in_transaction(db));
  for (i = 0; i < COUNT_OF(tables); i++) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM {j}%s WHERE run = $1", tables[i]);
    assert_int_equal(harness_count(db, sql, run), 0);
  }
  assert_int_equal(state_of(db, run), -1);
  assert_nodup(db, NODUP_ERR_NO_RUN, nodup_undo(db, run, NULL, NULL));
  assert_nodup(db, NODUP_ERR_NO_RUN, nodup_runs_forget(db, run));
  /* The merge itself stands. */
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"team\"", NULL), 2);
}

/* A run another process took over (resumed it after judging it
 * interrupted) stops at its next batch, that batch rolled back. */
typedef struct takeover {
  nodup_db *other;
  const char *sql;
  int done;
} takeover;

static void take_over(void *ctx, long long done, long long total) {
  takeover *t = ctx;
  (void)total;
  if (done == 1 && !t->done) {
    harness_exec(t->other, t->sql);
    t->done = 1;
  }
}

static void test_taken_over_run_stops(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options mo;
  const char *key[] = {"slug"};
  takeover t = {NULL, NULL, 0};
  harness_exec(db, team_schema);
  t.other = harness_connect();
  t.sql = "UPDATE {j}nodup_runs SET owner = 'another process'";
  memset(&mo, 0, sizeof mo);
  mo.batch = 1;
  mo.progress = take_over;
  mo.progress_ctx = &t;
  assert_nodup(db, NODUP_ERR_NO_RUN, nodup_merge(&r, db, "team", key, 1, NULL, &mo));
  assert_contains(nodup_errmsg(db), "no longer this process's");
  assert_true(t.done);
  assert_false(harness_in_transaction(db));
  /* Batch 1 stands, batch 2 was not made; the row is the new owner's. */
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"team\"", NULL), 3);
  harness_expect(db, "SELECT CAST(groups AS TEXT) || ' ' || status FROM {j}nodup_runs", NULL,
                 "1 running");
}

/* ---- a merge killed with SIGKILL ---- */

static const char *const conf_key[] = {"conference_id"};

/* Fork a merge of conference in batches of one group; once it has
 * archived `rows` more conference rows, stop it. Returns its pid and its
 * run id in run. */
static pid_t start_and_stop(nodup_db *db, long long rows, char *run, size_t size) {
  static const struct rig_merge_job job = {"conference", conf_key, 1, 1};
  struct rig_archived point = {db, NULL, 0};
  pid_t pid;
  point.target = harness_count(db, "SELECT count(*) FROM {j}nodup_archive", NULL) + rows;
  pid = rig_fork(rig_merge_child, (void *)&job);
  if (rig_wait_point(pid, rig_archived_past, &point, 30000, NULL) == 0)
    fail_msg("the merge ended before it was stopped");
  assert_int_equal(kill(pid, SIGSTOP), 0);
  harness_query_into(db, "SELECT run FROM {j}nodup_runs WHERE status = 'running'", NULL, run,
                     size);
  return pid;
}

/* Poll until run is interrupted (a killed client's server process may
 * take a moment to notice). */
static void wait_interrupted(nodup_db *db, const char *run) {
  struct timespec tick = {0, 20000000L};
  int i, s = -1;
  for (i = 0; i < 1000; i++) {
    if ((s = state_of(db, run)) == NODUP_RUN_INTERRUPTED) return;
    nanosleep(&tick, NULL);
  }
  fail_msg("run %s is %s, not interrupted, 20 s after its process was killed", run,
           s < 0 ? "not listed" : nodup_run_state_name(s));
}

static long long dangling_events(nodup_db *db) {
  return harness_count(db,
                       "SELECT count(*) FROM \"event\" e LEFT JOIN \"conference\" c"
                       " ON c.\"id\" = e.\"conference\" WHERE c.\"id\" IS NULL",
                       NULL);
}

static void groups_table(nodup_db *db, const char *run, const char *schema, long long want) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM pg_tables WHERE tablename = 'nodup_groups_' || $1"
           " AND schemaname = '%s'",
           schema);
  assert_int_equal(harness_count(db, sql, run), want);
}

static void test_killed_run_is_interrupted(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_runs_report *list = NULL;
  const nodup_run_info *u;
  const char *wkey[] = {"k"};
  char run[40], second[40];
  pid_t pid;
  int status, rc;
  size_t i;

  harness_exec(db, "CREATE TABLE \"conference\" ({id}, \"conference_id\" TEXT);"
                   "CREATE TABLE \"event\" ({id}, \"conference\" INTEGER NOT NULL"
                   " REFERENCES \"conference\" (\"id\"));"
                   "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600)"
                   " INSERT INTO \"conference\" (\"id\", \"conference_id\")"
                   " SELECT i, 'c' || CAST((i - 1) / 3 AS TEXT) FROM n;"
                   "INSERT INTO \"event\" (\"conference\") SELECT \"id\" FROM \"conference\";"
                   /* A first merge makes the journal, which the parent polls. */
                   "CREATE TABLE \"warm\" ({id}, \"k\" TEXT);"
                   "INSERT INTO \"warm\" (\"k\") VALUES ('w'), ('w')");
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "warm", wkey, 1, NULL, NULL));
  nodup_merge_free(r);

  pid = start_and_stop(db, 20, run, sizeof run);
  /* Stopped, not dead: running, and not to be taken over. */
  expect_state(db, run, NODUP_RUN_RUNNING);
  if (harness_is_pg()) {
    /* PostgreSQL never waits for a batch in progress: a row it holds is a
     * running run's. (SQLite's stopped writer may hold the database lock
     * a forget would wait 5 s for.) */
    assert_nodup(db, NODUP_ERR_NO_RUN, nodup_runs_forget(db, run));
    assert_contains(nodup_errmsg(db), "is running");
    assert_nodup(db, NODUP_ERR_NO_RUN, nodup_merge_resume(&r, db, run, NULL));
  }
  assert_int_equal(kill(pid, SIGKILL), 0);
  status = rig_reap(pid, 0);
  assert_true(WIFSIGNALED(status));
  wait_interrupted(db, run);
  assert_int_equal(dangling_events(db), 0);
  /* Through a pooler the pass table outlives the process, in the
   * journal's schema. */
  if (harness_is_pg()) {
    groups_table(db, run, "nodup", harness_is_pooled() ? 1 : 0);
    groups_table(db, run, "public", 0);
  }

  assert_nodup(db, NODUP_OK, nodup_merge_resume(&r, db, run, NULL));
  assert_string_equal(r->run, run);
  nodup_merge_free(r);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"conference\"", NULL), 200);
  assert_int_equal(dangling_events(db), 0);
  if (harness_is_pg()) groups_table(db, run, "nodup", 0);
  assert_nodup(db, NODUP_OK, nodup_runs_list(&list, db));
  u = find_run(list, run);
  assert_non_null(u);
  assert_int_equal(u->state, NODUP_RUN_DONE);
  assert_int_equal(u->groups, 200);
  assert_int_equal(u->deleted, 400);
  assert_int_equal(u->repointed, 400);
  assert_int_equal(u->pid, (long long)getpid());   /* the resumer's */
  nodup_runs_free(list);

  /* Killed again, then forgotten: no journal row, no pass table; the
   * batches it committed stand. */
  harness_exec(db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)"
                   " INSERT INTO \"conference\" (\"id\", \"conference_id\")"
                   " SELECT 1000 + i, 'd' || CAST((i - 1) / 3 AS TEXT) FROM n;"
                   "INSERT INTO \"event\" (\"conference\") SELECT \"id\" FROM \"conference\""
                   " WHERE \"id\" > 1000");
  pid = start_and_stop(db, 20, second, sizeof second);
  assert_int_equal(kill(pid, SIGKILL), 0);
  status = rig_reap(pid, 0);
  wait_interrupted(db, second);
  rc = nodup_runs_forget(db, second);
  assert_nodup(db, NODUP_OK, rc);
  assert_int_equal(state_of(db, second), -1);
  {
    static const char *const tables[] = {"nodup_runs", "nodup_run_args", "nodup_steps",
                                         "nodup_log", "nodup_archive"};
    for (i = 0; i < COUNT_OF(tables); i++) {
      char sql[128];
      snprintf(sql, sizeof sql, "SELECT count(*) FROM {j}%s WHERE run = $1", tables[i]);
      assert_int_equal(harness_count(db, sql, second), 0);
    }
  }
  if (harness_is_pg()) groups_table(db, second, "nodup", 0);
  assert_nodup(db, NODUP_ERR_NO_RUN, nodup_undo(db, second, NULL, NULL));
  assert_int_equal(dangling_events(db), 0);
  expect_state(db, run, NODUP_RUN_DONE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
      T(test_refusals_create_nothing),
      T(test_failed_first_batch_leaves_no_run),
      T(test_journal_location),
      T(test_journal_rights),
      T(test_earlier_journal),
      T(test_owner_decides_state),
      T(test_forget),
      T(test_taken_over_run_stops),
      T(test_killed_run_is_interrupted),
#undef T
  };
  return cmocka_run_group_tests_name(harness_is_pg() ? "runs_pg" : "runs_sqlite", tests, NULL,
                                     NULL);
}

/*
 * test_interrupt.c -- kill a merging process at many points and show the
 * database is always consistent, and that running the merge again finishes
 * with the same result as an uninterrupted merge.
 *
 * Fixture: 600 groups of 3 conferences (ids 3k+1..3k+3, keeper 3k+1),
 * 2 events each, a participant link table (UNIQUE(conference,
 * participant)) and a one-to-one summary on odd ids. The merge runs in a
 * child process (its own connection) in batches of 5 groups; the parent
 * SIGKILLs it at points spread over the run.
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

#define GROUPS 600
#define KILLS 8

static const char *const key[] = {"conference_id", "app_id"};

static const char *const fixture =
    "CREATE TABLE \"conference\" ({id}, \"conference_id\" TEXT, \"app_id\" INTEGER NOT NULL);"
    "CREATE TABLE \"event\" ({id}, \"conference\" INTEGER NOT NULL REFERENCES \"conference\" (\"id\"));"
    "CREATE TABLE \"participant\" ({id}, \"name\" TEXT NOT NULL);"
    "CREATE TABLE \"conference_participant\" ({id},"
    " \"conference\" INTEGER NOT NULL REFERENCES \"conference\" (\"id\"),"
    " \"participant\" INTEGER NOT NULL REFERENCES \"participant\" (\"id\"),"
    " UNIQUE (\"conference\", \"participant\"));"
    "CREATE TABLE \"summary\" ({id}, \"conference\" INTEGER NOT NULL UNIQUE"
    " REFERENCES \"conference\" (\"id\"), \"text\" TEXT);"
    "CREATE TABLE IF NOT EXISTS {j}nodup_archive (run TEXT NOT NULL, step INTEGER NOT NULL,"
    " tbl TEXT NOT NULL, pk TEXT NOT NULL, keeper TEXT NOT NULL, row TEXT NOT NULL);"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1800)"
    " INSERT INTO \"conference\" (\"id\", \"conference_id\", \"app_id\")"
    " SELECT i, 'c' || CAST((i - 1) / 3 AS TEXT), 1 FROM n;"
    "INSERT INTO \"participant\" (\"id\", \"name\") VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd');"
    "INSERT INTO \"event\" (\"conference\") SELECT \"id\" FROM \"conference\";"
    "INSERT INTO \"event\" (\"conference\") SELECT \"id\" FROM \"conference\";"
    "INSERT INTO \"conference_participant\" (\"conference\", \"participant\")"
    " SELECT c.\"id\", p.\"id\" FROM \"conference\" c, \"participant\" p"
    " WHERE (c.\"id\" + p.\"id\") % 3 <> 0 ORDER BY c.\"id\", p.\"id\";"
    "INSERT INTO \"summary\" (\"conference\", \"text\") SELECT \"id\", 's' || CAST(\"id\" AS TEXT)"
    " FROM \"conference\" WHERE \"id\" % 2 = 1 ORDER BY \"id\"";

static const char *const logical_links =
    "SELECT count(*) FROM (SELECT DISTINCT c.\"conference_id\", cp.\"participant\""
    " FROM \"conference_participant\" cp JOIN \"conference\" c ON c.\"id\" = cp.\"conference\") d";

/* What must hold at every instant, whatever was killed when. */
static void check_consistent(nodup_db *db, long long links) {
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"event\"", NULL), 2 * 3 * GROUPS);
  assert_int_equal(harness_count(db, logical_links, NULL), links);
  assert_int_equal(harness_count(db,
                                 "SELECT count(*) FROM \"event\" e LEFT JOIN \"conference\" c"
                                 " ON c.\"id\" = e.\"conference\" WHERE c.\"id\" IS NULL",
                                 NULL),
                   0);
  assert_int_equal(harness_count(db,
                                 "SELECT count(*) FROM \"conference_participant\" e LEFT JOIN"
                                 " \"conference\" c ON c.\"id\" = e.\"conference\" WHERE c.\"id\" IS NULL",
                                 NULL),
                   0);
  assert_int_equal(harness_count(db,
                                 "SELECT count(*) FROM \"summary\" e LEFT JOIN \"conference\" c"
                                 " ON c.\"id\" = e.\"conference\" WHERE c.\"id\" IS NULL",
                                 NULL),
                   0);
  /* Nothing lost: every row is live or archived, never both, never neither. */
  assert_int_equal(harness_count(db,
                                 "SELECT (SELECT count(*) FROM \"conference\") + (SELECT count(*)"
                                 " FROM {j}nodup_archive WHERE tbl LIKE '%\"conference\"')",
                                 NULL),
                   3 * GROUPS);
  assert_int_equal(harness_count(db,
                                 "SELECT (SELECT count(*) FROM \"summary\") + (SELECT count(*)"
                                 " FROM {j}nodup_archive WHERE tbl LIKE '%\"summary\"')",
                                 NULL),
                   3 * GROUPS / 2);
  if (!harness_is_pg())
    assert_int_equal(harness_count(db, "SELECT count(*) FROM pragma_foreign_key_check", NULL), 0);
}

/* The merge a kill interrupts, in batches of 5 groups. */
static const struct rig_merge_job merge_job = {"conference", key, 2, 5};

static void test_kill_and_resume(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  long long links;
  int k, killed = 0;

  /* The fixture makes the journal's archive, which the parent polls
   * before the child's merge creates the rest (in its schema on PostgreSQL). */
  harness_exec(db, harness_pick("SELECT 1", "CREATE SCHEMA IF NOT EXISTS \"nodup\""));
  harness_exec(db, fixture);
  links = harness_count(db, logical_links, NULL);
  check_consistent(db, links);
  srand((unsigned)time(NULL));
  for (k = 0; k < KILLS; k++) {
    /* Kill once the merge has archived past a threshold spread over the
     * run, plus 0-3 ms: the signal lands inside a batch, at a different
     * statement each time. Progress-driven, so a slow machine cannot make
     * every kill land before the first commit. */
    struct rig_archived point = {db, "%\"conference\"", (long long)(k + 1) * 2 * GROUPS / (KILLS + 1)};
    struct timespec jitter;
    pid_t pid;
    int status = 0, at;
    pid = rig_fork(rig_merge_child, (void *)&merge_job);
    at = rig_wait_point(pid, rig_archived_past, &point, 20000, &status);
    jitter.tv_sec = 0;
    jitter.tv_nsec = (rand() % 4) * 1000000L;
    nanosleep(&jitter, NULL);
    if (at != 0) {   /* still running (reached the point, or timed out) */
      if (kill(pid, SIGKILL) == 0) killed++;
      status = rig_reap(pid, 0);
    }
    /* Killed, or finished cleanly before the signal: never a failure. */
    assert_true(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
    check_consistent(db, links);
  }
  print_message("killed %d of %d merges mid-run; %lld groups left\n", killed, KILLS,
                harness_count(db,
                              "SELECT count(*) FROM (SELECT \"conference_id\" FROM \"conference\""
                              " GROUP BY \"conference_id\" HAVING count(*) > 1) g",
                              NULL));

  /* Running it again finishes the job, with the uninterrupted result. */
  assert_int_equal(nodup_merge(&r, db, "conference", key, 2, NULL, NULL), NODUP_OK);
  nodup_merge_free(r);
  check_consistent(db, links);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"conference\"", NULL), GROUPS);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"conference\" WHERE \"id\" % 3 <> 1",
                                 NULL),
                   0);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"event\" WHERE \"conference\" % 3 <> 1",
                                 NULL),
                   0);
  /* Each group's summary: the keeper's own if it had one, else the next
   * odd id's (the lowest colliding row). */
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"summary\"", NULL), GROUPS);
  assert_int_equal(harness_count(db,
                                 "SELECT count(*) FROM \"summary\" WHERE \"text\" <> 's' || CAST("
                                 "CASE WHEN \"conference\" % 2 = 1 THEN \"conference\""
                                 " ELSE \"conference\" + 1 END AS TEXT)",
                                 NULL),
                   0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_kill_and_resume, harness_setup, harness_teardown),
  };
  return cmocka_run_group_tests_name(harness_is_pg() ? "interrupt_pg" : "interrupt_sqlite", tests,
                                     NULL, NULL);
}

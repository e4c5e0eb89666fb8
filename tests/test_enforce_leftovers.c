/*
 * test_enforce_leftovers.c -- what an interrupted `nodup enforce --online`
 * leaves on a PostgreSQL table, and what every later command says about it
 * (issue 12, point 5).
 *
 *  - The server restarts (pg_ctl -m immediate, through scripts/pgcluster.sh
 *    kill/resume) while the online run builds its index: its message must
 *    say it could not remove or check what it left and name each thing,
 *    never that it removed them; after the restart the guard trigger, its
 *    function and the INVALID index are there, and get-or-create (key
 *    prepare), check, scan and merge say so and how to finish or remove;
 *    --abort removes all of it, once, and a rerun enforces the key.
 *  - The enforcing client is stopped (SIGSTOP) once its guard is in: every
 *    command sees the run as alive in its backend, and enforce and --abort
 *    refuse to pull the guard from under it; killed, it becomes a leftover
 *    the guard of which refuses writes naming itself, and a rerun finishes.
 *  - The enforcing backend is terminated mid-build: the message says that
 *    nothing is left, and the catalog agrees.
 *  - Orphan guard functions (no trigger uses them) go with the next enforce
 *    or --abort on any table; lookalikes and used guards stay.
 *  - A partitioned table: --abort removes our partition index and an
 *    INVALID one, keeps a user's index on a partition.
 *
 * PostgreSQL only (SQLite has no online mode). Checks read the catalog on
 * the raw handle (harness_query), not through the library. The suite
 * restarts the test cluster, so ctest runs it alone (RUN_SERIAL).
 */
#include "harness.h"
#include "rig.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const key_k[] = {"k"};

/* Assert that `hay` does not contain `needle`. */
#define assert_lacks(hay, needle)                                              \
  do {                                                                         \
    const char *h_ = (hay);                                                    \
    if (h_ != NULL && strstr(h_, (needle)) != NULL)                            \
      fail_msg("expected \"%s\" not to contain \"%s\"", h_, (needle));         \
  } while (0)

/* ---- the catalog, read on the raw handle ---- */

static long long guard_triggers(nodup_db *db, const char *table) {
  return harness_count(db,
                       "SELECT count(*) FROM pg_catalog.pg_trigger WHERE tgrelid ="
                       " CAST($1 AS regclass) AND tgname LIKE 'nodup\\_guard\\_%'"
                       " AND tgparentid = 0",
                       table);
}

static long long guard_functions(nodup_db *db) {
  return harness_count(db,
                       "SELECT count(*) FROM pg_catalog.pg_proc"
                       " WHERE proname LIKE 'nodup\\_guard\\_%'",
                       NULL);
}

static long long invalid_indexes(nodup_db *db, const char *table) {
  return harness_count(db,
                       "SELECT count(*) FROM pg_catalog.pg_index WHERE indrelid ="
                       " CAST($1 AS regclass) AND NOT indisvalid",
                       table);
}

static long long index_named(nodup_db *db, const char *name) {
  return harness_count(db,
                       "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = $1"
                       " AND relkind IN ('i', 'I')",
                       name);
}

static long long constraints_named(nodup_db *db, const char *name) {
  return harness_count(db,
                       "SELECT count(*) FROM pg_catalog.pg_constraint WHERE conname = $1"
                       " AND contype = 'u'",
                       name);
}

/* Other backends in the test's database (the enforcing one, if alive). */
static long long other_backends(nodup_db *db) {
  return harness_count(db,
                       "SELECT count(*) FROM pg_catalog.pg_stat_activity"
                       " WHERE datname = current_database()"
                       " AND pid <> pg_backend_pid()",
                       NULL);
}

static void wait_for_other_backends_to_go(nodup_db *db) {
  double deadline = rig_now_ms() + 60000;
  while (other_backends(db) > 0) {
    if (rig_now_ms() > deadline)
      fail_msg("the enforcing backend is still there after 60 s");
    rig_sleep_ms(10);
  }
}

/* `rows` distinct md5 keys plus 20 duplicated: the index build takes a
 * moment, and the online run merges first. */
static void create_big(nodup_db *db, const char *table, long rows) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "CREATE TABLE \"%s\" ({id}, \"k\" TEXT NOT NULL);"
           "INSERT INTO \"%s\" (\"k\") SELECT md5(CAST(g AS TEXT))"
           " FROM generate_series(1, %ld) g;"
           "INSERT INTO \"%s\" (\"k\") SELECT md5(CAST(g AS TEXT))"
           " FROM generate_series(1, 20) g",
           table, table, rows, table);
  harness_exec(db, sql);
}

static nodup_enforce_options online_opt(void) {
  nodup_enforce_options opt;
  memset(&opt, 0, sizeof opt);
  opt.merge = 1;
  opt.mode = NODUP_ENFORCE_ONLINE;
  opt.lock_timeout_ms = 2000;
  return opt;
}

/* An enforce whose report and message are copied, so that a failing
 * assertion leaks nothing. */
struct outcome {
  int rc;
  int already, constraint;
  char index[128];
  char removed[2048];
  int has_removed;
  char msg[4096];
  char notice[4096];
  int has_notice;
};

static struct outcome enforce(nodup_db *db, const char *table, const char *const *cols,
                              size_t ncols, const nodup_enforce_options *opt) {
  struct outcome o;
  nodup_enforce_report *r = NULL;
  memset(&o, 0, sizeof o);
  o.rc = nodup_enforce(&r, db, table, cols, ncols, NULL, opt);
  snprintf(o.msg, sizeof o.msg, "%s", nodup_errmsg(db));
  if (nodup_notice(db) != NULL) {
    o.has_notice = 1;
    snprintf(o.notice, sizeof o.notice, "%s", nodup_notice(db));
  }
  if (r != NULL) {
    o.already = r->already;
    o.constraint = r->constraint;
    snprintf(o.index, sizeof o.index, "%s", r->index ? r->index : "");
    if (r->removed != NULL) {
      o.has_removed = 1;
      snprintf(o.removed, sizeof o.removed, "%s", r->removed);
    }
  }
  nodup_enforce_free(r);
  return o;
}

static struct outcome abort_run(nodup_db *db, const char *table, const char *const *cols,
                                size_t ncols) {
  nodup_enforce_options opt;
  memset(&opt, 0, sizeof opt);
  opt.mode = NODUP_ENFORCE_ABORT;
  return enforce(db, table, cols, ncols, &opt);
}

static void expect_ok(const struct outcome *o) {
  if (o->rc != NODUP_OK)
    fail_msg("enforce: %s: %s", nodup_strerror(o->rc), o->msg);
}

/* ---- the server restart ---- */

/* The cluster's socket directory, from NODUP_TEST_PG's host=. */
static void cluster_sock(char *out, size_t size) {
  const char *ci = getenv("NODUP_TEST_PG"), *h = ci ? strstr(ci, "host=") : NULL;
  size_t n;
  if (!h)
    fail_msg("NODUP_TEST_PG has no host= (the socket directory): %s", ci ? ci : "(unset)");
  h += 5;
  n = strcspn(h, " \t");
  if (n + 1 > size)
    fail_msg("socket path too long");
  memcpy(out, h, n);
  out[n] = '\0';
}

/* scripts/pgcluster.sh kill|resume on the test cluster. */
static int cluster(const char *cmd) {
  const char *script = getenv("NODUP_PGCLUSTER");
  char sock[512], line[1200];
  if (!script)
    fail_msg("NODUP_PGCLUSTER (scripts/pgcluster.sh) is not set (ctest sets it)");
  cluster_sock(sock, sizeof sock);
  snprintf(line, sizeof line, "'%s' %s '%s'", script, cmd, sock);
  return system(line);
}

/* What a forked enforcer runs on, and where it reports. */
struct enforcer {
  const char *table;
  int out;
};

/* nodup_enforce (online, merge) in a child on its own connection, ready
 * once connected; it writes its code and message to `out` and exits. */
static int enforcer_main(struct rig_child *child, int index, void *arg) {
  const struct enforcer *e = arg;
  nodup_db *db = NULL;
  nodup_enforce_report *rep = NULL;
  nodup_enforce_options opt = online_opt();
  char msg[8192];
  int rc, len;
  (void)index;
  rc = nodup_open(&db, harness_url());
  rig_child_ready(child);
  if (rc == NODUP_OK)
    rc = nodup_enforce(&rep, db, e->table, key_k, 1, NULL, &opt);
  len = snprintf(msg, sizeof msg, "%d\n%s", rc, nodup_errmsg(db));
  if (len > (int)sizeof msg - 1)
    len = (int)sizeof msg - 1;
  if (write(e->out, msg, (size_t)len) != len)
    return 4;
  nodup_enforce_free(rep);
  nodup_close(db);
  return 0;
}

/* Fork an enforcer of `table` reporting to `out`; returns its pid once it
 * has connected. The caller's connections must be closed first. */
static pid_t fork_enforcer(const char *table, int out) {
  struct enforcer e = {table, out};
  return rig_fork(enforcer_main, &e);
}

/* Read all of fd into buf (NUL-terminated). */
static void read_all(int fd, char *buf, size_t size) {
  size_t len = 0;
  ssize_t n;
  while (len + 1 < size && ((n = read(fd, buf + len, size - 1 - len)) > 0 ||
                            (n < 0 && errno == EINTR)))
    if (n > 0)
      len += (size_t)n;
  buf[len] = '\0';
}

static int index_build_running(void *watcher) {
  return harness_count(watcher,
                       "SELECT count(*) FROM pg_catalog.pg_stat_activity"
                       " WHERE datname = current_database() AND state = 'active'"
                       " AND query ILIKE 'CREATE UNIQUE INDEX CONCURRENTLY%'",
                       NULL) > 0;
}

/*
 * The server restarts while `enforce --online` builds its index, and stays
 * down until the client has given up: it cannot clean up, and must say so
 * and name what may be left. Then every command says what is there, and
 * --abort removes it.
 */
static void test_server_restart_mid_build(void **state) {
  char table[32], want_index[64], msg[8192], expect[256];
  int attempt, caught = 0, rc = -1;
  nodup_db *db = *state;

  for (attempt = 1; attempt <= 3 && !caught; attempt++) {
    int out[2];
    pid_t pid;
    nodup_db *watcher;
    snprintf(table, sizeof table, "big%d", attempt);
    snprintf(want_index, sizeof want_index, "%s_k_key", table);
    create_big(db, table, 300000L * attempt);
    nodup_close(db);
    *state = NULL;
    assert_int_equal(pipe(out), 0);
    pid = fork_enforcer(table, out[1]);
    close(out[1]);
    watcher = NULL;
    assert_nodup(watcher, NODUP_OK, nodup_open(&watcher, harness_url()));
    caught = rig_wait_point(pid, index_build_running, watcher, 60000, NULL) == 1;
    nodup_close(watcher);
    if (caught) {
      /* Down, and kept down until the client has finished failing. */
      int killed = cluster("kill");
      rig_reap(pid, 0);
      read_all(out[0], msg, sizeof msg);
      close(out[0]);
      assert_int_equal(cluster("resume"), 0);
      assert_int_equal(killed, 0);
    } else {
      rig_reap(pid, 0);
      read_all(out[0], msg, sizeof msg);
      close(out[0]);
      print_message("attempt %d: enforce finished before the restart (%s)\n", attempt, msg);
    }
    db = rig_reopen(state);
  }
  if (!caught)
    fail_msg("could not restart the server during the index build in 3 attempts");
  rc = atoi(msg);
  print_message("the client after the restart: %s\n", msg);

  /* The client: an error, and what may be left, never "removed". */
  if (rc == NODUP_OK)
    fail_msg("enforce returned NODUP_OK although the server restarted mid-build");
  assert_lacks(msg, "removed)");
  snprintf(expect, sizeof expect, "could not remove or check what this run left on"
                                  " \"public\".\"%s\"", table);
  assert_contains(msg, expect);
  assert_contains(msg, "it may still hold guard trigger nodup_guard_");
  assert_lacks(msg, "\n)");
  snprintf(expect, sizeof expect, "INVALID unique index %s", want_index);
  assert_contains(msg, expect);
  snprintf(expect, sizeof expect, "`nodup enforce --abort --table public.%s --key k`", table);
  assert_contains(msg, expect);
  snprintf(expect, sizeof expect, "`nodup enforce --table public.%s --key k --online`", table);
  assert_contains(msg, expect);

  /* ... which is what the catalog shows after the restart. */
  assert_int_equal(guard_triggers(db, table), 1);
  assert_int_equal(guard_functions(db), 1);
  assert_int_equal(invalid_indexes(db, table), 1);
  assert_int_equal(index_named(db, want_index), 1);

  /* get-or-create: refused (no valid index), saying what is left. */
  {
    nodup_key *key = NULL;
    char left[4096];
    rc = nodup_key_prepare(&key, db, table, key_k, 1, NULL);
    nodup_key_free(key);
    assert_int_equal(rc, NODUP_ERR_UNBACKED);
    snprintf(expect, sizeof expect, "an interrupted `nodup enforce --online` left on"
                                    " \"public\".\"%s\": guard trigger nodup_guard_", table);
    assert_contains(nodup_errmsg(db), expect);
    snprintf(expect, sizeof expect, "INVALID unique index \"public\".\"%s\"", want_index);
    assert_contains(nodup_errmsg(db), expect);
    snprintf(expect, sizeof expect, "Finish it with `nodup enforce --table public.%s --key k"
                                    " --online`", table);
    assert_contains(nodup_errmsg(db), expect);
    snprintf(expect, sizeof expect, "remove it with `nodup enforce --abort --table public.%s"
                                    " --key k`", table);
    assert_contains(nodup_errmsg(db), expect);
    assert_non_null(nodup_notice(db));
    snprintf(left, sizeof left, "%s", nodup_notice(db));
    assert_contains(nodup_errmsg(db), left);

    /* check: the same. */
    rc = nodup_key_check(db, table, key_k, 1, NULL, NULL, 0);
    assert_int_equal(rc, NODUP_ERR_UNBACKED);
    assert_contains(nodup_errmsg(db), left);
  }
  /* scan and merge work, and report it. */
  {
    nodup_scan_report *s = NULL;
    nodup_merge_report *m = NULL;
    assert_nodup(db, NODUP_OK, nodup_scan(&s, db, table, key_k, 1, NULL, NULL));
    nodup_scan_free(s);
    assert_non_null(nodup_notice(db));
    assert_contains(nodup_notice(db), "guard trigger nodup_guard_");
    assert_nodup(db, NODUP_OK, nodup_merge(&m, db, table, key_k, 1, NULL, NULL));
    nodup_merge_free(m);
    assert_non_null(nodup_notice(db));
    assert_contains(nodup_notice(db), "INVALID unique index");
  }

  /* --abort removes all three, and says so; then nothing is left. */
  {
    struct outcome o = abort_run(db, table, key_k, 1);
    expect_ok(&o);
    assert_true(o.has_removed);
    assert_contains(o.removed, "guard trigger nodup_guard_");
    assert_contains(o.removed, "and its function \"public\".\"nodup_guard_");
    snprintf(expect, sizeof expect, "INVALID unique index \"public\".\"%s\"", want_index);
    assert_contains(o.removed, expect);
    assert_false(o.has_notice);
    assert_int_equal(guard_triggers(db, table), 0);
    assert_int_equal(guard_functions(db), 0);
    assert_int_equal(invalid_indexes(db, table), 0);
    assert_int_equal(index_named(db, want_index), 0);
    /* Nothing else: the rows are all there (the merge ran before the
     * restart), and no index was added or dropped besides ours. */
    o = abort_run(db, table, key_k, 1);
    expect_ok(&o);
    assert_false(o.has_removed);
  }
  {
    nodup_key *key = NULL;
    rc = nodup_key_prepare(&key, db, table, key_k, 1, NULL);
    nodup_key_free(key);
    assert_int_equal(rc, NODUP_ERR_UNBACKED);
    assert_lacks(nodup_errmsg(db), "interrupted");
    assert_null(nodup_notice(db));
  }
  /* And the key can be enforced. */
  {
    nodup_enforce_options opt = online_opt();
    struct outcome o = enforce(db, table, key_k, 1, &opt);
    expect_ok(&o);
    assert_false(o.has_removed);
    assert_int_equal(constraints_named(db, want_index), 1);
    assert_int_equal(guard_functions(db), 0);
  }
}

/* The point to stop the client at: its guard trigger on "live" is in. */
static int guard_in(void *watcher) { return guard_triggers(watcher, "live") > 0; }

/*
 * The enforcing client is stopped once its guard is in: the run is alive
 * (its backend is), and nothing may take its guard. Killed, its leftovers
 * are a dead run's: the guard refuses writes naming itself, and a rerun
 * removes it and finishes.
 */
static void test_stopped_then_killed_client(void **state) {
  nodup_db *db = *state;
  char backend[32], expect[256], existing[64];
  int out[2];
  pid_t pid;
  int seen = 0;
  nodup_db *watcher = NULL;

  create_big(db, "live", 200000L);
  nodup_close(db);
  *state = NULL;
  assert_int_equal(pipe(out), 0);
  pid = fork_enforcer("live", out[1]);
  close(out[1]);
  assert_nodup(watcher, NODUP_OK, nodup_open(&watcher, harness_url()));
  if (rig_wait_point(pid, guard_in, watcher, 60000, NULL) == 1) {
    kill(pid, SIGSTOP);
    seen = 1;
  }
  nodup_close(watcher);
  if (!seen) {
    rig_kill(pid);
    close(out[0]);
    rig_reopen(state);
    fail_msg("the guard never appeared in 60 s");
  }
  db = rig_reopen(state);
  harness_query_into(db,
                     "SELECT CAST(pid AS text) FROM pg_catalog.pg_stat_activity"
                     " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                     " ORDER BY backend_start LIMIT 1",
                     NULL, backend, sizeof backend);
  print_message("enforcing client stopped; its backend is %s\n", backend);

  /* Alive: every command says so, and nothing removes its guard. */
  {
    nodup_scan_report *s = NULL;
    struct outcome o;
    nodup_enforce_options opt = online_opt();
    assert_nodup(db, NODUP_OK, nodup_scan(&s, db, "live", key_k, 1, NULL, NULL));
    nodup_scan_free(s);
    snprintf(expect, sizeof expect, "is running in backend %s", backend);
    assert_non_null(nodup_notice(db));
    assert_contains(nodup_notice(db), expect);
    assert_lacks(nodup_notice(db), "an interrupted");
    o = enforce(db, "live", key_k, 1, &opt);
    assert_int_equal(o.rc, NODUP_ERR_RETRY);
    assert_contains(o.msg, expect);
    assert_contains(o.msg, "nothing changed");
    o = abort_run(db, "live", key_k, 1);
    assert_int_equal(o.rc, NODUP_ERR_RETRY);
    assert_contains(o.msg, expect);
    assert_int_equal(guard_triggers(db, "live"), 1);
  }

  /* Killed: its backend goes (once a build it started ends). */
  rig_kill(pid);
  close(out[0]);
  wait_for_other_backends_to_go(db);
  assert_int_equal(guard_triggers(db, "live"), 1);

  /* The guard of a dead run: a later command calls it interrupted, and a
   * write of an existing key is refused with a message naming the guard. */
  {
    nodup_key *key = NULL;
    char sql[256];
    int rc = nodup_key_prepare(&key, db, "live", key_k, 1, NULL);
    nodup_key_free(key);
    assert_true(rc == NODUP_OK || rc == NODUP_ERR_UNBACKED);
    assert_non_null(nodup_notice(db));
    assert_contains(nodup_notice(db), "an interrupted `nodup enforce --online` left on"
                                      " \"public\".\"live\": guard trigger nodup_guard_");
    assert_lacks(nodup_notice(db), "running");
    harness_query_into(db, "SELECT \"k\" FROM \"live\" ORDER BY \"id\" LIMIT 1", NULL,
                       existing, sizeof existing);
    snprintf(sql, sizeof sql, "INSERT INTO \"live\" (\"k\") VALUES ('%s')", existing);
    rc = nodup_exec(db, sql);
    assert_int_not_equal(rc, NODUP_OK);
    assert_contains(nodup_errmsg(db), "refused by its guard trigger nodup_guard_");
    assert_contains(nodup_errmsg(db), "nodup enforce --abort");
  }

  /* A rerun removes it and finishes. */
  {
    nodup_enforce_options opt = online_opt();
    struct outcome o = enforce(db, "live", key_k, 1, &opt);
    expect_ok(&o);
    assert_true(o.has_removed);
    assert_contains(o.removed, "guard trigger nodup_guard_");
    assert_false(o.has_notice);
    assert_int_equal(guard_triggers(db, "live"), 0);
    assert_int_equal(guard_functions(db), 0);
    assert_int_equal(invalid_indexes(db, "live"), 0);
    assert_int_equal(constraints_named(db, "live_k_key"), 1);
  }
}


/* The backend is terminated mid-build and the server stays up: the run
 * cleans up on a new connection, and its message says nothing is left,
 * which the catalog confirms. */
static void test_terminated_mid_build_says_nothing_left(void **state) {
  nodup_db *db = *state, *watcher = harness_connect();
  static struct rig_terminator killer;
  nodup_enforce_options opt = online_opt();
  struct outcome o;
  char table[32], expect[160];
  int attempt;
  memset(&o, 0, sizeof o);
  for (attempt = 1; attempt <= 3; attempt++) {
    snprintf(table, sizeof table, "t%d", attempt);
    create_big(db, table, 300000L * attempt);
    rig_terminate_start(&killer, watcher, "CREATE UNIQUE INDEX CONCURRENTLY%");
    o = enforce(db, table, key_k, 1, &opt);
    if (rig_terminate_stop(&killer))
      break;
  }
  if (attempt > 3)
    fail_msg("could not catch CREATE UNIQUE INDEX CONCURRENTLY in 3 attempts");
  print_message("terminated mid-build: %s\n", o.msg);
  assert_int_not_equal(o.rc, NODUP_OK);
  snprintf(expect, sizeof expect, "nothing of this run is left on \"public\".\"%s\"", table);
  assert_contains(o.msg, expect);
  assert_int_equal(guard_triggers(db, table), 0);
  assert_int_equal(guard_functions(db), 0);
  assert_int_equal(invalid_indexes(db, table), 0);
}

/* FNV-1a of the table's quoted name: the guard name nodup gives it. */
static void guard_name_of(const char *qualified, char *out, size_t size) {
  unsigned h = 2166136261u;
  const char *s;
  for (s = qualified; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  snprintf(out, size, "nodup_guard_%08x", h);
}

static void create_guard_function(nodup_db *db, const char *qualified_name) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql"
           " AS $f$ BEGIN RETURN NEW; END $f$",
           qualified_name);
  harness_exec(db, sql);
}

/*
 * Guard functions no trigger uses: this table's is named by every command
 * on its key; --abort removes it with every other orphan, and so does the
 * next enforce of any table. Functions that only look alike, and a guard
 * that a trigger still uses, stay.
 */
static void test_orphan_guard_functions(void **state) {
  nodup_db *db = *state;
  char own[64], qualified_own[96], expect[256];
  harness_exec(db, "CREATE SCHEMA other;"
                   "CREATE TABLE plain ({id}, \"k\" TEXT NOT NULL);"
                   "CREATE UNIQUE INDEX plain_k_key ON plain (\"k\");"
                   "CREATE TABLE plain2 ({id}, \"k\" TEXT NOT NULL);"
                   "CREATE TABLE guarded ({id}, \"k\" TEXT NOT NULL);"
                   "CREATE FUNCTION nodup_guard_feedface() RETURNS integer"
                   " LANGUAGE sql AS 'SELECT 1';"
                   "CREATE FUNCTION nodup_guard_notes() RETURNS trigger LANGUAGE plpgsql"
                   " AS $f$ BEGIN RETURN NEW; END $f$;");
  guard_name_of("\"public\".\"plain\"", own, sizeof own);
  snprintf(qualified_own, sizeof qualified_own, "public.%s", own);
  create_guard_function(db, qualified_own);
  create_guard_function(db, "public.nodup_guard_deadbeef");
  create_guard_function(db, "other.nodup_guard_0000beef");
  create_guard_function(db, "public.nodup_guard_cafe0000");
  harness_exec(db, "CREATE TRIGGER nodup_guard_cafe0000 BEFORE INSERT ON guarded"
                   " FOR EACH ROW EXECUTE FUNCTION nodup_guard_cafe0000()");

  /* A command on plain's key names plain's own orphan only. */
  {
    nodup_key *key = harness_key(db, "plain", key_k, 1, NULL);
    (void)key;
    assert_non_null(nodup_notice(db));
    snprintf(expect, sizeof expect, "guard function \"public\".\"%s\"(), which no trigger uses",
             own);
    assert_contains(nodup_notice(db), expect);
    assert_lacks(nodup_notice(db), "deadbeef");
  }

  /* --abort on plain: its own orphan, and every other one. */
  {
    struct outcome o = abort_run(db, "plain", key_k, 1);
    expect_ok(&o);
    assert_true(o.has_removed);
    snprintf(expect, sizeof expect, "guard function \"public\".\"%s\"()", own);
    assert_contains(o.removed, expect);
    assert_contains(o.removed, "orphan guard function \"public\".\"nodup_guard_deadbeef\"()");
    assert_contains(o.removed, "orphan guard function \"other\".\"nodup_guard_0000beef\"()");
    assert_lacks(o.removed, "cafe0000");
    assert_lacks(o.removed, "feedface");
    assert_lacks(o.removed, "notes");
  }
  harness_expect(db,
                 "SELECT string_agg(proname::text, ',' ORDER BY proname) FROM pg_catalog.pg_proc"
                 " WHERE proname LIKE 'nodup\\_guard\\_%'",
                 NULL, "nodup_guard_cafe0000,nodup_guard_feedface,nodup_guard_notes");

  /* An orphan alone goes with the next enforce, of any table. */
  create_guard_function(db, "public.nodup_guard_deadbeef");
  {
    struct outcome o = enforce(db, "plain2", key_k, 1, NULL);
    expect_ok(&o);
    assert_true(o.has_removed);
    assert_contains(o.removed, "orphan guard function \"public\".\"nodup_guard_deadbeef\"()");
  }
  harness_expect(db,
                 "SELECT string_agg(proname::text, ',' ORDER BY proname) FROM pg_catalog.pg_proc"
                 " WHERE proname LIKE 'nodup\\_guard\\_%'",
                 NULL, "nodup_guard_cafe0000,nodup_guard_feedface,nodup_guard_notes");
  assert_int_equal(index_named(db, "plain2_k_key"), 1);
}

/*
 * A partitioned table, as a partitioned online run leaves it: our index on
 * one partition (valid, no parent index uses it), an INVALID one on
 * another, and a user's own unique index on a third. --abort removes ours,
 * keeps the user's, and changes nothing on a second run.
 */
static void test_abort_partitioned(void **state) {
  nodup_db *db = *state;
  static const char *const key_rk[] = {"region", "k"};
  harness_exec(db,
               "CREATE TABLE pt (\"id\" BIGSERIAL, \"region\" TEXT NOT NULL,"
               " \"k\" TEXT NOT NULL, PRIMARY KEY (\"id\", \"region\"))"
               " PARTITION BY LIST (\"region\");"
               "CREATE TABLE pt_a PARTITION OF pt FOR VALUES IN ('a');"
               "CREATE TABLE pt_b PARTITION OF pt FOR VALUES IN ('b');"
               "CREATE TABLE pt_c PARTITION OF pt FOR VALUES IN ('c');"
               "INSERT INTO pt (\"region\", \"k\") SELECT r, 'k' || g"
               " FROM unnest(ARRAY['a', 'b', 'c']) r, generate_series(1, 100) g;"
               "INSERT INTO pt (\"region\", \"k\") VALUES ('c', 'k1');"
               "CREATE UNIQUE INDEX my_own_idx ON pt_b (\"region\", \"k\")");
  harness_exec(db, "CREATE UNIQUE INDEX CONCURRENTLY pt_a_region_k_key"
                   " ON pt_a (\"region\", \"k\")");
  /* A build that fails on the duplicate leaves its index INVALID. */
  assert_int_not_equal(nodup_exec(db, "CREATE UNIQUE INDEX CONCURRENTLY pt_c_region_k_key"
                                      " ON pt_c (\"region\", \"k\")"),
                       NODUP_OK);
  assert_int_equal(invalid_indexes(db, "pt_c"), 1);

  {
    nodup_scan_report *s = NULL;
    assert_nodup(db, NODUP_OK, nodup_scan(&s, db, "pt", key_rk, 2, NULL, NULL));
    nodup_scan_free(s);
    assert_non_null(nodup_notice(db));
    assert_contains(nodup_notice(db), "unique index \"public\".\"pt_a_region_k_key\" on partition"
                                      " \"public\".\"pt_a\" (region, k), which no index of"
                                      " \"public\".\"pt\" uses");
    assert_contains(nodup_notice(db), "INVALID unique index \"public\".\"pt_c_region_k_key\"");
    assert_lacks(nodup_notice(db), "my_own_idx");
  }
  {
    struct outcome o;
    static const char *const key_k_only[] = {"k"};
    nodup_enforce_options bad;
    o = abort_run(db, "pt", key_rk, 2);
    expect_ok(&o);
    assert_true(o.has_removed);
    assert_contains(o.removed, "partition index \"public\".\"pt_a_region_k_key\"");
    assert_contains(o.removed, "INVALID unique index \"public\".\"pt_c_region_k_key\"");
    assert_int_equal(index_named(db, "pt_a_region_k_key"), 0);
    assert_int_equal(index_named(db, "pt_c_region_k_key"), 0);
    assert_int_equal(index_named(db, "my_own_idx"), 1);
    o = abort_run(db, "pt", key_rk, 2);
    expect_ok(&o);
    assert_false(o.has_removed);
    /* A key without the partition key: nothing of ours, nothing refused. */
    o = abort_run(db, "pt", key_k_only, 1);
    expect_ok(&o);
    assert_false(o.has_removed);
    /* --abort only removes. */
    memset(&bad, 0, sizeof bad);
    bad.mode = NODUP_ENFORCE_ABORT;
    bad.merge = 1;
    o = enforce(db, "pt", key_rk, 2, &bad);
    assert_int_equal(o.rc, NODUP_ERR_USAGE);
    assert_contains(o.msg, "--abort only removes");
  }
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
  const struct CMUnitTest tests[] = {
      T(test_orphan_guard_functions),
      T(test_abort_partitioned),
      T(test_terminated_mid_build_says_nothing_left),
      T(test_stopped_then_killed_client),
      T(test_server_restart_mid_build),
  };
#undef T
  if (!harness_is_pg()) {
    print_error("test_enforce_leftovers runs on PostgreSQL only (NODUP_TEST_BACKEND=pg)\n");
    return 1;
  }
  return cmocka_run_group_tests(tests, NULL, NULL);
}

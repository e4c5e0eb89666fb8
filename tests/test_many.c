/*
 * test_many.c -- nodup_get_or_create_many: the conformance suite, run
 * unchanged against SQLite and PostgreSQL (and PostgreSQL through
 * PgBouncer): results in input order, a key given twice created once,
 * defaults only on create, values that need quoting in arrays and JSON,
 * typed and partial keys, refusals that change nothing, an error that
 * leaves nothing of the call, the caller's transaction, a winner that
 * commits while the call inserts, a statement count
 * independent of the number of keys, and real concurrency: overlapping
 * batches from threads and from processes.
 *
 * What the library wrote is read back through the raw handle, never
 * through the library.
 */
#include "harness.h"
#include "rig.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COUNT_TAGS "SELECT count(*) FROM \"tags\""

static const char *const name_col[] = {"name"};

/* tags(name) unique, with a CHECK on `uses` and another unique index. */
static nodup_key *tags_key(nodup_db *db) {
  harness_exec(db, "CREATE TABLE \"tags\" ({id}, \"name\" TEXT NOT NULL,"
                   " \"uses\" INTEGER CONSTRAINT \"tags_uses_check\" CHECK (\"uses\" >= 0),"
                   " \"color\" TEXT, \"code\" TEXT);"
                   "CREATE UNIQUE INDEX \"tags_name_key\" ON \"tags\" (\"name\");"
                   "CREATE UNIQUE INDEX \"tags_code_key\" ON \"tags\" (\"code\")");
  return harness_key(db, "tags", name_col, 1, NULL);
}

/* The many-keys call that must succeed. */
static void many(nodup_db *db, nodup_key *key, size_t n, const char *const *vals,
                 const char *const *dcols, const char *const *dvals, size_t nd,
                 nodup_result *out) {
  assert_nodup(db, NODUP_OK, nodup_get_or_create_many(key, n, vals, dcols, dvals, nd, out));
}

/* Row r's id is the id of the row named vals[r]. */
static void expect_ids(nodup_db *db, size_t n, const char *const *names, const nodup_result *out) {
  for (size_t r = 0; r < n; r++) {
    assert_non_null(out[r].id);
    harness_expect(db, "SELECT CAST(\"id\" AS TEXT) FROM \"tags\" WHERE \"name\" = $1", names[r],
                   out[r].id);
  }
}

/* ---------------------------------------------------------------------------
 * Results
 */

static void test_input_order_and_repeats(void **state) {
  nodup_db *db = *state;
  nodup_key *key = tags_key(db);
  const char *before[] = {"b", "d"};
  const char *names[] = {"a", "b", "c", "a", "d", "c", "e"};
  const int created[] = {1, 0, 1, 0, 0, 0, 1};
  nodup_result out[7], old[2];
  many(db, key, 2, before, NULL, NULL, 0, old);
  assert_true(old[0].created && old[1].created);
  many(db, key, 7, names, NULL, NULL, 0, out);
  /* A batch's own repeats are no concurrent writer: on PostgreSQL the
   * plain insert takes each once, with nothing to fall back from. */
  assert_int_equal(nodup_retries(db), 0);
  for (int r = 0; r < 7; r++) assert_int_equal(out[r].created, created[r]);
  expect_ids(db, 7, names, out);
  assert_string_equal(out[0].id, out[3].id);
  assert_string_equal(out[2].id, out[5].id);
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 5);
  /* Again: every key exists, nothing created, the same ids. */
  nodup_result again[7];
  char first[7][HARNESS_ID_MAX];
  for (int r = 0; r < 7; r++) snprintf(first[r], sizeof first[r], "%s", out[r].id);
  many(db, key, 7, names, NULL, NULL, 0, again);
  for (int r = 0; r < 7; r++) {
    assert_int_equal(again[r].created, 0);
    assert_string_equal(again[r].id, first[r]);
  }
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 5);
}

/* Defaults are written for created rows only, from a repeated key's first
 * occurrence; an existing row keeps its own. */
static void test_defaults_on_create_only(void **state) {
  nodup_db *db = *state;
  nodup_key *key = tags_key(db);
  const char *dcols[] = {"color", "uses"};
  const char *old[] = {"old"}, *oldd[] = {"grey", "9"};
  const char *names[] = {"old", "new", "new"};
  const char *dvals[] = {"red", "1", "blue", "2", "green", "3"};
  nodup_result out[3];
  many(db, key, 1, old, dcols, oldd, 2, out);
  many(db, key, 3, names, dcols, dvals, 2, out);
  assert_int_equal(out[0].created, 0);
  assert_int_equal(out[1].created, 1);
  assert_int_equal(out[2].created, 0);
  harness_expect(db, "SELECT \"color\" FROM \"tags\" WHERE \"name\" = $1", "old", "grey");
  harness_expect(db, "SELECT \"color\" FROM \"tags\" WHERE \"name\" = $1", "new", "blue");
  harness_expect(db, "SELECT CAST(\"uses\" AS TEXT) FROM \"tags\" WHERE \"name\" = $1", "new",
                 "2");
}

/* Values an array literal or a JSON text must escape arrive intact, and
 * the text "NULL" is not SQL NULL. */
static void test_values_that_need_quoting(void **state) {
  nodup_db *db = *state;
  nodup_key *key = tags_key(db);
  const char *names[] = {"a,b", "{c}", "say \"hi\"", "back\\slash", "NULL", "",
                         "tab\there", "new\nline", "ünïcödé ✓", "  spaced  "};
  const char *dcols[] = {"color"};
  const char *dvals[] = {NULL, "x", NULL, "y", NULL, "z", NULL, "w", NULL, "v"};
  nodup_result out[10];
  many(db, key, 10, names, dcols, dvals, 1, out);
  for (int r = 0; r < 10; r++) assert_int_equal(out[r].created, 1);
  expect_ids(db, 10, names, out);
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 10);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"tags\" WHERE \"color\" IS NULL",
                                 NULL), 5);
}

/* An integer and a boolean key column: the values are converted as a
 * single key's are (SQLite: by the declared type; PostgreSQL: by the
 * column type's input function). */
static void test_typed_key(void **state) {
  nodup_db *db = *state;
  const char *const cols[] = {"team", "active"};
  harness_exec(db, "CREATE TABLE \"members\" ({id}, \"team\" INTEGER NOT NULL,"
                   " \"active\" BOOLEAN NOT NULL);"
                   "CREATE UNIQUE INDEX \"members_key\" ON \"members\" (\"team\", \"active\")");
  nodup_key *key = harness_key(db, "members", cols, 2, NULL);
  const char *vals[] = {"7", "true", "7", "t", "8", "false", "07", "yes"};
  nodup_result out[4];
  many(db, key, 4, vals, NULL, NULL, 0, out);
  assert_int_equal(out[0].created, 1);
  assert_int_equal(out[1].created, 0);
  assert_int_equal(out[2].created, 1);
  assert_int_equal(out[3].created, 0);
  assert_string_equal(out[0].id, out[1].id);
  assert_string_equal(out[0].id, out[3].id);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"members\"", NULL), 2);
  /* A value the column cannot hold is refused, naming its row. */
  const char *bad[] = {"9", "true", "nine", "true"};
  int rc = nodup_get_or_create_many(key, 2, bad, NULL, NULL, 0, out);
  assert_int_not_equal(rc, NODUP_OK);
  assert_null(out[0].id);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"members\"", NULL), 2);
}

/* A partial key: rows inside the predicate are created; a new row outside
 * it fails the whole call, which then leaves nothing. */
static void test_partial_key(void **state) {
  nodup_db *db = *state;
  harness_exec(db, "CREATE TABLE \"convs\" ({id}, \"a\" TEXT NOT NULL, \"b\" TEXT NOT NULL,"
                   " \"kind\" TEXT NOT NULL DEFAULT 'direct');"
                   "CREATE UNIQUE INDEX \"convs_direct\" ON \"convs\" (\"a\", \"b\")"
                   " WHERE \"kind\" = 'direct'");
  const char *const cols[] = {"a", "b"};
  nodup_key *key = harness_key(db, "convs", cols, 2, "\"kind\" = 'direct'");
  const char *vals[] = {"u1", "u2", "u1", "u3", "u1", "u2"};
  nodup_result out[3];
  many(db, key, 3, vals, NULL, NULL, 0, out);
  assert_int_equal(out[0].created + out[1].created + out[2].created, 2);
  assert_string_equal(out[0].id, out[2].id);
  /* A group conversation (outside the predicate) is another row. */
  harness_exec(db, "INSERT INTO \"convs\" (\"a\", \"b\", \"kind\") VALUES ('u1', 'u2', 'group')");
  many(db, key, 3, vals, NULL, NULL, 0, out);
  assert_int_equal(out[0].created + out[1].created + out[2].created, 0);
  const char *dcols[] = {"kind"};
  const char *outside[] = {"u5", "u6", "u7", "u8"};
  const char *kinds[] = {"direct", "group"};
  assert_nodup(db, NODUP_ERR_PREDICATE,
               nodup_get_or_create_many(key, 2, outside, dcols, kinds, 1, out));
  assert_null(out[0].id);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"convs\"", NULL), 3);
}

/* ---------------------------------------------------------------------------
 * Refusals and errors: nothing written
 */

static void test_null_key_refused(void **state) {
  nodup_db *db = *state;
  nodup_key *key = tags_key(db);
  const char *names[] = {"a", NULL, "c"};
  nodup_result out[3];
  assert_nodup(db, NODUP_ERR_NULL_KEY, nodup_get_or_create_many(key, 3, names, NULL, NULL, 0, out));
  assert_non_null(strstr(nodup_errmsg(db), "row 2"));
  assert_non_null(strstr(nodup_errmsg(db), "tags"));
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 0);
}

/* Another constraint's violation in the third row: named, and the first
 * two rows are not left behind. */
static void test_other_constraint_leaves_nothing(void **state) {
  nodup_db *db = *state;
  nodup_key *key = tags_key(db);
  const char *names[] = {"a", "b", "c"};
  const char *dcols[] = {"uses"};
  const char *uses[] = {"1", "2", "-1"};
  const char *codes[] = {"x", "y", "x"};
  const char *ccols[] = {"code"};
  nodup_result out[3];
  assert_nodup(db, NODUP_ERR_CONSTRAINT,
               nodup_get_or_create_many(key, 3, names, dcols, uses, 1, out));
  assert_non_null(strstr(nodup_errmsg(db), harness_pick("CHECK", "tags_uses_check")));
  assert_null(out[0].id);
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 0);
  /* Another unique index (not the key's) is a violation too, never
   * "existing". */
  assert_nodup(db, NODUP_ERR_CONSTRAINT,
               nodup_get_or_create_many(key, 3, names, ccols, codes, 1, out));
  assert_non_null(strstr(nodup_errmsg(db), harness_pick("code", "tags_code_key")));
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 0);
}

static void test_bad_input_refused(void **state) {
  nodup_db *db = *state;
  nodup_key *key = tags_key(db);
  const char *names[] = {"a"};
  const char *nocol[] = {"nope"}, *keycol[] = {"name"}, *v[] = {"x"};
  nodup_result out[1];
  assert_nodup(db, NODUP_ERR_NO_COLUMN, nodup_get_or_create_many(key, 1, names, nocol, v, 1, out));
  assert_non_null(strstr(nodup_errmsg(db), "nope"));
  assert_nodup(db, NODUP_ERR_USAGE, nodup_get_or_create_many(key, 1, names, keycol, v, 1, out));
  assert_nodup(db, NODUP_ERR_USAGE, nodup_get_or_create_many(key, 1, NULL, NULL, NULL, 0, out));
  assert_int_equal(nodup_get_or_create_many(NULL, 1, names, NULL, NULL, 0, out), NODUP_ERR_USAGE);
  /* No rows: nothing to do, and nothing done. */
  assert_nodup(db, NODUP_OK, nodup_get_or_create_many(key, 0, NULL, NULL, NULL, 0, NULL));
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 0);
  nodup_key *unbacked = harness_key_unbacked(db, "tags", (const char *const[]){"color"}, 1, NULL);
  assert_nodup(db, NODUP_ERR_UNBACKED,
               nodup_get_or_create_many(unbacked, 1, names, NULL, NULL, 0, out));
  assert_non_null(strstr(nodup_errmsg(db), "CREATE UNIQUE INDEX"));
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 0);
}

/* Inside the caller's transaction: its rollback takes the call's rows. */
static void test_inside_caller_transaction(void **state) {
  nodup_db *db = *state;
  nodup_key *key = tags_key(db);
  const char *names[] = {"a", "b"};
  nodup_result out[2];
  assert_nodup(db, NODUP_OK, nodup_exec(db, "BEGIN"));
  many(db, key, 2, names, NULL, NULL, 0, out);
  assert_int_equal(out[0].created + out[1].created, 2);
  assert_true(harness_in_transaction(db));
  assert_nodup(db, NODUP_OK, nodup_exec(db, "ROLLBACK"));
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 0);
  assert_nodup(db, NODUP_OK, nodup_exec(db, "BEGIN"));
  many(db, key, 2, names, NULL, NULL, 0, out);
  assert_nodup(db, NODUP_OK, nodup_exec(db, "COMMIT"));
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 2);
}

/* A key another connection created after the caller's snapshot: the
 * caller must roll back and retry (PostgreSQL at REPEATABLE READ and
 * SERIALIZABLE; SQLite: a read transaction that would have to write), and
 * the retry gets the winner's row. */
static void test_stale_snapshot_asks_to_retry(void **state) {
  nodup_db *db = *state;
  nodup_key *key = tags_key(db);
  nodup_db *other = harness_connect();
  nodup_key *other_key = harness_key(other, "tags", name_col, 1, NULL);
  const char *pg_levels[] = {"BEGIN ISOLATION LEVEL REPEATABLE READ",
                             "BEGIN ISOLATION LEVEL SERIALIZABLE"};
  const char *sqlite_levels[] = {"BEGIN"};
  const char *const *levels = harness_is_pg() ? pg_levels : sqlite_levels;
  size_t nlevels = harness_is_pg() ? 2 : 1;
  for (size_t i = 0; i < nlevels; i++) {
    char theirs[32], mine[32];
    const char *vals[] = {mine, theirs};
    nodup_result out[2], won;
    snprintf(theirs, sizeof theirs, "theirs-%zu", i);
    snprintf(mine, sizeof mine, "mine-%zu", i);
    harness_exec(db, levels[i]);
    assert_int_equal(harness_count(db, COUNT_TAGS, NULL), (long long)(2 * i));
    assert_nodup(other, NODUP_OK,
                 nodup_get_or_create_many(other_key, 1, &vals[1], NULL, NULL, 0, &won));
    assert_int_equal(won.created, 1);
    assert_nodup(db, NODUP_ERR_RETRY, nodup_get_or_create_many(key, 2, vals, NULL, NULL, 0, out));
    harness_exec(db, "ROLLBACK");
    harness_exec(db, levels[i]);
    many(db, key, 2, vals, NULL, NULL, 0, out);
    assert_int_equal(out[0].created, 1);
    assert_int_equal(out[1].created, 0);
    assert_string_equal(out[1].id, won.id);
    harness_exec(db, "COMMIT");
  }
}

/* ---------------------------------------------------------------------------
 * A winner that commits while the call inserts
 */

struct blocked_many {
  nodup_db *db;
  nodup_key *key;
  const char *const *vals;
  nodup_result out[3];
  int rc;
  char error[512];
};

static void *blocked_many_main(void *arg) {
  struct blocked_many *call = arg;
  call->rc = nodup_get_or_create_many(call->key, 3, call->vals, NULL, NULL, 0, call->out);
  if (call->rc != NODUP_OK)
    snprintf(call->error, sizeof call->error, "%s", nodup_errmsg(call->db));
  return NULL;
}

/* Wait until a session waits for `winner`'s open transaction (PostgreSQL:
 * pg_locks and pg_blocking_pids, read live, so no other suite's waits on
 * the shared server count); SQLite cannot show it, so a pause. */
static void await_waiter(nodup_db *winner) {
  if (!harness_is_pg()) {
    rig_sleep_ms(200);
    return;
  }
  for (int i = 0; i < 1000; i++) {
    if (harness_count(winner,
                      "SELECT count(*) FROM pg_locks WHERE NOT granted"
                      " AND pg_backend_pid() = ANY (pg_blocking_pids(pid))",
                      NULL) > 0)
      return;
    rig_sleep_ms(10);
  }
  fail_msg("no session waited for the winner's row within 10 s");
}

/* Another connection inserts a key of the batch and commits while the
 * call waits for it: no error, the winner's row for that key (not
 * created), ours for the others. On PostgreSQL the call's plain insert met
 * the winner's row, failed as a whole and ran again with ON CONFLICT: one
 * retry, counted. A second collision right after costs none: the next
 * rounds go to ON CONFLICT directly. */
static void test_winner_commits_during_insert(void **state) {
  nodup_db *db = *state;
  nodup_key *key = tags_key(db);
  nodup_db *winner = harness_connect();
  nodup_key *winner_key = harness_key(winner, "tags", name_col, 1, NULL);
  for (int i = 0; i < 2; i++) {
    char mine[32], theirs[32], mine2[32], winner_id[HARNESS_ID_MAX];
    const char *vals[] = {mine, theirs, mine2};
    struct blocked_many call = {.db = db, .key = key, .vals = vals};
    struct rig_threads thread;
    unsigned long long retries = nodup_retries(db);
    snprintf(mine, sizeof mine, "a-mine-%d", i);
    snprintf(theirs, sizeof theirs, "b-theirs-%d", i);
    snprintf(mine2, sizeof mine2, "c-mine-%d", i);
    harness_exec(winner, harness_pick("BEGIN IMMEDIATE", "BEGIN"));
    assert_int_equal(harness_goc(winner, winner_key, &vals[1], NULL, NULL, 0, winner_id), 1);
    rig_threads_start(&thread, 1, blocked_many_main, &call, 0);
    await_waiter(winner);
    harness_exec(winner, "COMMIT");
    rig_threads_join(&thread);
    if (call.rc != NODUP_OK) fail_msg("call %d: %s: %s", i, nodup_strerror(call.rc), call.error);
    assert_int_equal(call.out[0].created, 1);
    assert_int_equal(call.out[1].created, 0);
    assert_string_equal(call.out[1].id, winner_id);
    assert_int_equal(call.out[2].created, 1);
    expect_ids(db, 3, vals, call.out);
    assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 3 * (i + 1));
    if (harness_is_pg()) assert_int_equal(nodup_retries(db) - retries, i == 0 ? 1 : 0);
  }
}

/* ---------------------------------------------------------------------------
 * Statements independent of the number of keys: counted on SQLite by the
 * raw handle's trace. PostgreSQL has no per-connection statement count
 * without an extension; there the test runs 10 and 10,000 keys, and the
 * benchmark (bench_many) shows the round trips.
 */

static int count_stmt(unsigned type, void *ctx, void *p, void *x) {
  (void)type;
  (void)p;
  (void)x;
  ++*(int *)ctx;
  return 0;
}

static int statements_for(nodup_db *db, nodup_key *key, size_t n, int base) {
  char **names = calloc(n, sizeof *names);
  nodup_result *out = calloc(n, sizeof *out);
  int count = 0;
  assert_non_null(names);
  assert_non_null(out);
  for (size_t i = 0; i < n; i++) {
    names[i] = malloc(32);
    snprintf(names[i], 32, "tag-%d-%zu", base, i);
  }
  sqlite3_trace_v2(nodup_db_handle(db), SQLITE_TRACE_STMT, count_stmt, &count);
  int rc = nodup_get_or_create_many(key, n, (const char *const *)names, NULL, NULL, 0, out);
  sqlite3_trace_v2(nodup_db_handle(db), 0, NULL, NULL);
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  free(out);
  assert_nodup(db, NODUP_OK, rc);
  return count;
}

static void test_statements_independent_of_n(void **state) {
  nodup_db *db = *state;
  nodup_key *key = tags_key(db);
  if (harness_is_pg()) {
    for (size_t n = 10; n <= 10000; n *= 1000) {
      char **names = calloc(n, sizeof *names);
      nodup_result *out = calloc(n, sizeof *out);
      for (size_t i = 0; i < n; i++) {
        names[i] = malloc(32);
        snprintf(names[i], 32, "tag-%zu", i);
      }
      assert_nodup(db, NODUP_OK,
                   nodup_get_or_create_many(key, n, (const char *const *)names, NULL, NULL, 0,
                                            out));
      assert_int_equal(out[n - 1].created, 1);
      for (size_t i = 0; i < n; i++) free(names[i]);
      free(names);
      free(out);
    }
    assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 10000);
    return;
  }
  /* A miss batch: lookup, BEGIN, insert, lookup, COMMIT, whatever n. */
  int small = statements_for(db, key, 10, 1), large = statements_for(db, key, 10000, 2);
  assert_int_equal(small, large);
  assert_true(small <= 5);
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 10010);
}

/* ---------------------------------------------------------------------------
 * Concurrency: overlapping batches
 */

#define THREADS 8
#define PROCESSES 4
#define POOL 60     /* keys */
#define BATCH 40    /* keys per call, drawn from the pool */
#define CALLS 6     /* calls per racer */

/* Ids here are one integer: 24 bytes keep a call's record in PIPE_BUF. */
struct result {
  int key, created;
  char id[24];
};

struct racer {
  nodup_db *db;
  nodup_key *key;
  int index;
  pthread_barrier_t *barrier;
  struct result res[CALLS * BATCH];
  char error[512];
};

/* Racer i's j-th key of call c: a walk through the pool that overlaps
 * every other racer's, in a different order, with repeats. */
static int racer_key(int racer, int call, int j) {
  return (racer * 7 + call * 13 + j * (racer % 2 ? 1 : POOL - 1)) % POOL;
}

static void racer_call(struct racer *w, int call) {
  char names[BATCH][32];
  const char *vals[BATCH];
  nodup_result out[BATCH];
  for (int j = 0; j < BATCH; j++) {
    snprintf(names[j], sizeof names[j], "key-%d", racer_key(w->index, call, j % (BATCH - 5)));
    vals[j] = names[j];
  }
  int rc = nodup_get_or_create_many(w->key, BATCH, vals, NULL, NULL, 0, out);
  if (rc != NODUP_OK) {
    if (!w->error[0])
      snprintf(w->error, sizeof w->error, "call %d: %s: %s", call, nodup_strerror(rc),
               nodup_errmsg(w->db));
    return;
  }
  for (int j = 0; j < BATCH; j++) {
    struct result *r = &w->res[call * BATCH + j];
    r->key = racer_key(w->index, call, j % (BATCH - 5));
    r->created = out[j].created;
    snprintf(r->id, sizeof r->id, "%s", out[j].id ? out[j].id : "");
  }
}

static void *racer_thread(void *arg) {
  struct racer *w = arg;
  for (int c = 0; c < CALLS; c++) {
    pthread_barrier_wait(w->barrier);
    racer_call(w, c);
  }
  return NULL;
}

static struct racer racers[THREADS];

/* No error; per key one id everywhere and exactly one created; one row
 * per key used. */
static void verify(nodup_db *db, struct racer *w, int n) {
  static char ids[POOL][24];
  int created[POOL] = {0}, used = 0;
  memset(ids, 0, sizeof ids);
  for (int i = 0; i < n; i++)
    if (w[i].error[0]) fail_msg("racer %d: %s", i, w[i].error);
  for (int i = 0; i < n; i++)
    for (int k = 0; k < CALLS * BATCH; k++) {
      const struct result *r = &w[i].res[k];
      if (!r->id[0]) fail_msg("racer %d result %d: no id", i, k);
      if (!ids[r->key][0]) {
        snprintf(ids[r->key], sizeof ids[r->key], "%s", r->id);
        used++;
      } else if (strcmp(ids[r->key], r->id) != 0) {
        fail_msg("key %d: ids %s and %s", r->key, ids[r->key], r->id);
      }
      created[r->key] += r->created;
    }
  for (int k = 0; k < POOL; k++)
    if (ids[k][0] && created[k] != 1) fail_msg("key %d: created %d times", k, created[k]);
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), used);
}

static void test_threads_overlapping_batches(void **state) {
  nodup_db *db = *state;
  pthread_barrier_t barrier;
  tags_key(db);
  assert_int_equal(pthread_barrier_init(&barrier, NULL, THREADS), 0);
  memset(racers, 0, sizeof racers);
  for (int i = 0; i < THREADS; i++) {
    racers[i].db = harness_connect();
    racers[i].key = harness_key(racers[i].db, "tags", name_col, 1, NULL);
    racers[i].index = i;
    racers[i].barrier = &barrier;
  }
  rig_threads_run(THREADS, racer_thread, racers, sizeof racers[0]);
  pthread_barrier_destroy(&barrier);
  verify(db, racers, THREADS);
}

/* The database's default isolation SERIALIZABLE (PostgreSQL): the
 * library's own transactions retry 40001 and 40P01 inside the call. */
static void test_threads_serializable(void **state) {
  nodup_db *db = *state;
  if (harness_is_pg()) {
    const char *name = strstr(harness_url(), "dbname=");
    char sql[256];
    assert_non_null(name);
    snprintf(sql, sizeof sql,
             "ALTER DATABASE \"%s\" SET default_transaction_isolation = 'serializable'",
             name + strlen("dbname="));
    harness_exec(db, sql);
  }
  test_threads_overlapping_batches(state);
}

/* A child's report: one call's results; atomic in a pipe. */
struct record {
  int racer, call;
  struct result res[BATCH];
  char error[256];
};
_Static_assert(sizeof(struct record) <= 4096, "a record must fit in PIPE_BUF");

static int racer_child(struct rig_child *child, int index, void *arg) {
  static struct racer w;
  int out_fd = *(int *)arg, rc;
  memset(&w, 0, sizeof w);
  w.index = index;
  rc = nodup_open(&w.db, harness_url());
  if (rc == NODUP_OK) rc = nodup_key_prepare(&w.key, w.db, "tags", name_col, 1, NULL);
  rig_child_ready(child);
  for (int c = 0; c < CALLS; c++) {
    struct record rec;
    memset(&rec, 0, sizeof rec);
    rec.racer = index;
    rec.call = c;
    if (rc == NODUP_OK) racer_call(&w, c);
    else snprintf(w.error, sizeof w.error, "open: %d", rc);
    memcpy(rec.res, &w.res[c * BATCH], sizeof rec.res);
    snprintf(rec.error, sizeof rec.error, "%.200s", w.error);
    if (write(out_fd, &rec, sizeof rec) != (ssize_t)sizeof rec) return 4;
  }
  close(out_fd);
  nodup_key_free(w.key);
  nodup_close(w.db);
  return 0;
}

static struct racer seen[PROCESSES];

static int take_record(void *ctx, const void *record) {
  const struct record *rec = record;
  (void)ctx;
  if (rec->racer < 0 || rec->racer >= PROCESSES || rec->call < 0 || rec->call >= CALLS) return 1;
  seen[rec->racer].index = rec->racer;
  memcpy(&seen[rec->racer].res[rec->call * BATCH], rec->res, sizeof rec->res);
  if (rec->error[0] && !seen[rec->racer].error[0])
    snprintf(seen[rec->racer].error, sizeof seen[rec->racer].error, "%s", rec->error);
  return 0;
}

static void test_processes_overlapping_batches(void **state) {
  tags_key(*state);
  memset(seen, 0, sizeof seen);
  nodup_db *db = rig_procs_report(state, PROCESSES, racer_child, sizeof(struct record),
                                  PROCESSES * CALLS, take_record, NULL);
  verify(db, seen, PROCESSES);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
      T(test_input_order_and_repeats),
      T(test_defaults_on_create_only),
      T(test_values_that_need_quoting),
      T(test_typed_key),
      T(test_partial_key),
      T(test_null_key_refused),
      T(test_other_constraint_leaves_nothing),
      T(test_bad_input_refused),
      T(test_inside_caller_transaction),
      T(test_stale_snapshot_asks_to_retry),
      T(test_winner_commits_during_insert),
      T(test_statements_independent_of_n),
      T(test_threads_overlapping_batches),
      T(test_threads_serializable),
      T(test_processes_overlapping_batches),
#undef T
  };
  return cmocka_run_group_tests_name(harness_is_pg() ? "many_pg" : "many_sqlite", tests, NULL,
                                     NULL);
}

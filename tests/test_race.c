/*
 * test_race.c -- get-or-create under real concurrency, on SQLite and
 * PostgreSQL: threads and processes, each with its own connection, all
 * calling for the same keys at the same moment. No mocks: the database
 * decides who wins, and the test checks that exactly one caller per key was
 * told "created", that everyone got the same id, and that the table holds
 * one row per key.
 *
 * Contention comes from barriers (threads) or a start gate (processes),
 * never from sleeps, and nothing here asserts on time.
 */
#include "harness.h"
#include "internal.h" /* key->strategy: each get-or-create round forced */
#include "rig.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define THREADS 16
#define MANY_THREADS 64 /* the isolation-level races */
#define PROCESSES 6
#define KEYS 20
#define ROUNDS 3
#define OPS (KEYS * ROUNDS) /* op j is on key j % KEYS */
#define MAX_COLS 6
#define VALUE_MAX 64

/* One race: a table, a key on it, and how to spell key k's values. */
struct scenario {
  const char *table;
  const char *cols[MAX_COLS];
  size_t ncols;
  const char *where;
  const char *formats[MAX_COLS]; /* printf format of column c, given k */
  const char *default_cols[2];
  const char *default_vals[2];
  size_t ndefaults;
  /* Rows the key covers (its predicate), to count them; and, given an id
   * as $1, 1 when that row is inside the predicate. */
  const char *count_sql;
  const char *inside_sql;
};

struct outcome {
  int rc;
  int created;
  char id[HARNESS_ID_MAX];
};

/* One thread or process and everything it saw. */
struct worker {
  const struct scenario *scenario;
  nodup_db *db;
  nodup_key *key;
  pthread_barrier_t *barrier;
  int naive;
  struct outcome out[OPS];
  char error[512]; /* the first failure, with the library's message */
};

static void key_values(const struct scenario *sc, int k,
                       char text[MAX_COLS][VALUE_MAX], const char **vals) {
  for (size_t c = 0; c < sc->ncols; c++) {
    snprintf(text[c], VALUE_MAX, sc->formats[c], k);
    vals[c] = text[c];
  }
}

/* One call: get-or-create, or the naive find-then-insert it replaces. */
static void run_op(struct worker *w, int op) {
  const struct scenario *sc = w->scenario;
  char text[MAX_COLS][VALUE_MAX];
  const char *vals[MAX_COLS];
  nodup_result result = {NULL, 0};
  struct outcome *out = &w->out[op];
  int rc;

  key_values(sc, op % KEYS, text, vals);
  if (w->naive) {
    rc = nodup_find(w->key, vals, &result);
    if (rc == NODUP_OK && result.id == NULL)
      rc = nodup_insert(w->key, vals, sc->default_cols, sc->default_vals,
                        sc->ndefaults, &result);
  } else {
    rc = nodup_get_or_create(w->key, vals, sc->default_cols, sc->default_vals,
                             sc->ndefaults, &result);
  }
  out->rc = rc;
  out->created = result.created;
  snprintf(out->id, sizeof out->id, "%s", result.id != NULL ? result.id : "");
  if (rc != NODUP_OK && w->error[0] == '\0')
    snprintf(w->error, sizeof w->error, "key %d: %s: %s", op % KEYS,
             nodup_strerror(rc), nodup_errmsg(w->db));
}

static void *thread_main(void *arg) {
  struct worker *w = arg;
  /* Every thread reaches every barrier, even after a failure: one that
   * stopped early would leave the others waiting forever. */
  for (int op = 0; op < OPS; op++) {
    pthread_barrier_wait(w->barrier);
    run_op(w, op);
  }
  return NULL;
}

/* Static rather than malloc'd: a failed assertion longjmps out of the test,
 * and must not leak them. One race at a time uses each array. */
static struct worker thread_workers[MANY_THREADS];
static struct worker process_workers[PROCESSES];

/* The round every worker's key uses (KEY_ADAPTIVE: the library's choice). */
static key_strategy race_strategy = KEY_ADAPTIVE;

/* n workers on their own connections, prepared before the start. */
static struct worker *start_workers(const struct scenario *sc, int naive,
                                    pthread_barrier_t *barrier, int n) {
  struct worker *workers = thread_workers;
  memset(thread_workers, 0, sizeof thread_workers);
  for (int i = 0; i < n; i++) {
    workers[i].scenario = sc;
    workers[i].db = harness_connect();
    workers[i].key =
        naive ? harness_key_unbacked(workers[i].db, sc->table, sc->cols,
                                     sc->ncols, sc->where)
              : harness_key(workers[i].db, sc->table, sc->cols, sc->ncols,
                            sc->where);
    workers[i].key->strategy = race_strategy;
    workers[i].barrier = barrier;
    workers[i].naive = naive;
  }
  return workers;
}

static void run_threads(struct worker *workers, int n) {
  rig_threads_run(n, thread_main, workers, sizeof workers[0]);
}

/*
 * The race's verdict: no errors; per key exactly one "created" and one id
 * for everyone; distinct keys, distinct rows; each id inside the key's
 * predicate; one row per key in the table; no duplicate groups.
 */
static void verify(nodup_db *db, const struct scenario *sc,
                   struct worker *workers, int nworkers) {
  const char *key_ids[KEYS];
  for (int i = 0; i < nworkers; i++)
    if (workers[i].error[0] != '\0')
      fail_msg("worker %d: %s", i, workers[i].error);

  for (int k = 0; k < KEYS; k++) {
    int created = 0;
    key_ids[k] = NULL;
    for (int i = 0; i < nworkers; i++) {
      for (int op = k; op < OPS; op += KEYS) {
        const struct outcome *o = &workers[i].out[op];
        created += o->created;
        if (key_ids[k] == NULL)
          key_ids[k] = o->id;
        else if (strcmp(key_ids[k], o->id) != 0)
          fail_msg("key %d: ids \"%s\" and \"%s\"", k, key_ids[k], o->id);
      }
    }
    if (created != 1)
      fail_msg("key %d: created = 1 returned %d times", k, created);
    for (int j = 0; j < k; j++)
      if (strcmp(key_ids[j], key_ids[k]) == 0)
        fail_msg("keys %d and %d share id %s", j, k, key_ids[k]);
    if (sc->inside_sql != NULL &&
        harness_count(db, sc->inside_sql, key_ids[k]) != 1)
      fail_msg("key %d: id %s is a row outside the key's predicate", k,
               key_ids[k]);
  }
  assert_int_equal(harness_count(db, sc->count_sql, NULL), KEYS);
  long long groups = -1, redundant = -1;
  assert_nodup(db, NODUP_OK,
               nodup_count_duplicates(db, sc->table, sc->cols, sc->ncols,
                                      sc->where, &groups, &redundant));
  assert_int_equal(groups, 0);
  assert_int_equal(redundant, 0);
}

static void race_n_threads(nodup_db *db, const struct scenario *sc, int n) {
  pthread_barrier_t barrier;
  assert_int_equal(pthread_barrier_init(&barrier, NULL, (unsigned)n), 0);
  struct worker *workers = start_workers(sc, 0, &barrier, n);
  run_threads(workers, n);
  pthread_barrier_destroy(&barrier);
  verify(db, sc, workers, n);
}

static void race_threads(nodup_db *db, const struct scenario *sc) {
  race_n_threads(db, sc, THREADS);
}

/* ---------------------------------------------------------------------------
 * Scenarios
 */

static const struct scenario plain = {
    .table = "people",
    .cols = {"email"},
    .ncols = 1,
    .formats = {"user-%d@example.org"},
    .default_cols = {"name"},
    .default_vals = {"racer"},
    .ndefaults = 1,
    .count_sql = "SELECT count(*) FROM \"people\"",
};

static void create_people(nodup_db *db) {
  harness_exec(db, "CREATE TABLE \"people\" ({id}, \"email\" TEXT NOT NULL,"
                   " \"name\" TEXT);"
                   "CREATE UNIQUE INDEX \"people_email_key\""
                   " ON \"people\" (\"email\")");
}

#define AGENCY_INQUIRY "\"context_type\" = 'agency_inquiry'"

/* Seed 004: the conversation for (agency, user), unique among inquiries. */
static const struct scenario conversation = {
    .table = "conversations",
    .cols = {"context_type", "context_id", "created_by"},
    .ncols = 3,
    .where = AGENCY_INQUIRY,
    .formats = {"agency_inquiry", "agency-%d", "user-42"},
    .count_sql = "SELECT count(*) FROM \"conversations\" WHERE " AGENCY_INQUIRY,
    .inside_sql = "SELECT count(*) FROM \"conversations\""
                  " WHERE \"id\" = $1 AND " AGENCY_INQUIRY,
};

/* Seed 004's table, plus a support conversation for every (agency, user)
 * the race will ask for: outside the predicate, never to be returned. */
static void create_conversations(nodup_db *db) {
  harness_exec(db, "CREATE TABLE \"conversations\" ({id},"
                   " \"context_type\" TEXT NOT NULL,"
                   " \"context_id\" TEXT NOT NULL,"
                   " \"created_by\" TEXT NOT NULL);"
                   "CREATE UNIQUE INDEX \"unique_agency_user_conversation\""
                   " ON \"conversations\" (\"context_type\", \"context_id\","
                   " \"created_by\") WHERE " AGENCY_INQUIRY);
  for (int k = 0; k < KEYS; k++) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO \"conversations\" (\"context_type\","
             " \"context_id\", \"created_by\")"
             " VALUES ('support', 'agency-%d', 'user-42')",
             k);
    harness_exec(db, sql);
  }
}

/* Seed 001: the grounding annotation, unique among non-structural rows. The
 * predicate's column is not in the key; it comes in as a default. */
static struct scenario annotation_scenario(void) {
  struct scenario sc = {
      .table = "annotations",
      .cols = {"document_id", "corpus_id", "annotation_label_id", "page",
               "raw_text", "creator_id"},
      .ncols = 6,
      .where = harness_pick("\"structural\" = 0", "\"structural\" = false"),
      .formats = {"1", "2", "3", "0", "Acme Holdings %d", "7"},
      .default_cols = {"structural"},
      .default_vals = {"0"},
      .ndefaults = 1,
      .count_sql = "SELECT count(*) FROM \"annotations\""
                   " WHERE NOT \"structural\"",
      .inside_sql = "SELECT count(*) FROM \"annotations\""
                    " WHERE \"id\" = $1 AND NOT \"structural\"",
  };
  return sc;
}

static void create_annotations(nodup_db *db, const struct scenario *sc) {
  char sql[512];
  harness_exec(db, "CREATE TABLE \"annotations\" ({id},"
                   " \"document_id\" INTEGER NOT NULL,"
                   " \"corpus_id\" INTEGER NOT NULL,"
                   " \"annotation_label_id\" INTEGER NOT NULL,"
                   " \"page\" INTEGER NOT NULL, \"raw_text\" TEXT NOT NULL,"
                   " \"creator_id\" INTEGER NOT NULL,"
                   " \"structural\" BOOLEAN NOT NULL)");
  snprintf(sql, sizeof sql,
           "CREATE UNIQUE INDEX \"annotation_unique_grounding_key\""
           " ON \"annotations\" (\"document_id\", \"corpus_id\","
           " \"annotation_label_id\", \"page\", \"raw_text\", \"creator_id\")"
           " WHERE %s",
           sc->where);
  harness_exec(db, sql);
  /* A structural twin of every key: same values, outside the predicate. */
  for (int k = 0; k < KEYS; k++) {
    snprintf(sql, sizeof sql,
             "INSERT INTO \"annotations\" (\"document_id\", \"corpus_id\","
             " \"annotation_label_id\", \"page\", \"raw_text\","
             " \"creator_id\", \"structural\")"
             " VALUES (1, 2, 3, 0, 'Acme Holdings %d', 7, %s)",
             k, harness_pick("1", "true"));
    harness_exec(db, sql);
  }
}

/* ---------------------------------------------------------------------------
 * Threads
 */

static void test_threads_same_keys(void **state) {
  nodup_db *db = *state;
  create_people(db);
  race_threads(db, &plain);
}

static void test_threads_partial_key_in_columns(void **state) {
  nodup_db *db = *state;
  create_conversations(db);
  race_threads(db, &conversation);
  assert_int_equal(
      harness_count(db, "SELECT count(*) FROM \"conversations\"", NULL),
      2 * KEYS);
}

static void test_threads_partial_key_predicate_default(void **state) {
  nodup_db *db = *state;
  struct scenario sc = annotation_scenario();
  create_annotations(db, &sc);
  race_threads(db, &sc);
  assert_int_equal(
      harness_count(db, "SELECT count(*) FROM \"annotations\"", NULL),
      2 * KEYS);
}

/* Each PostgreSQL round, forced on every racer: the lookup alone first
 * (a miss then races with the insert alone, and its loser looks up
 * again), the pipelined round, and the insert alone (the loser then looks
 * up on its own); plain and partial keys. SQLite has one round: the same
 * race runs there. */
static void race_with(nodup_db *db, key_strategy how) {
  create_people(db);
  create_conversations(db);
  race_strategy = how;
  race_threads(db, &plain);
  race_threads(db, &conversation);
  race_strategy = KEY_ADAPTIVE;
}

static void test_threads_lookup_first(void **state) { race_with(*state, KEY_LOOKUP_FIRST); }
static void test_threads_pipelined(void **state) { race_with(*state, KEY_PIPELINED); }
static void test_threads_insert_first(void **state) { race_with(*state, KEY_INSERT_FIRST); }

/*
 * What the seeds did: look, and insert when nothing was found, on a table
 * that no unique index protects. Duplicates are likely but not certain, so
 * the count is reported, not asserted; what is asserted is that every call
 * worked and that nodup_count_duplicates agrees with what the threads saw.
 * The indexed twin, raced the same way through get-or-create, never
 * duplicates.
 */
static void test_threads_naive_check_then_insert(void **state) {
  nodup_db *db = *state;
  static const struct scenario naive = {
      .table = "naive_twin",
      .cols = {"k"},
      .ncols = 1,
      .formats = {"key-%d"},
      .count_sql = "SELECT count(*) FROM \"naive_twin\"",
  };
  static const struct scenario indexed = {
      .table = "indexed_twin",
      .cols = {"k"},
      .ncols = 1,
      .formats = {"key-%d"},
      .count_sql = "SELECT count(*) FROM \"indexed_twin\"",
  };
  harness_exec(db, "CREATE TABLE \"naive_twin\" ({id}, \"k\" TEXT NOT NULL);"
                   "CREATE TABLE \"indexed_twin\" ({id}, \"k\" TEXT NOT NULL);"
                   "CREATE UNIQUE INDEX \"indexed_twin_k\""
                   " ON \"indexed_twin\" (\"k\")");

  /* nodup_key_prepare_unbacked gives the plain SELECT (nodup_find) and
   * INSERT (nodup_insert) the seeds ran, on a table no index protects. */
  pthread_barrier_t barrier;
  assert_int_equal(pthread_barrier_init(&barrier, NULL, THREADS), 0);
  struct worker *workers = start_workers(&naive, 1, &barrier, THREADS);
  run_threads(workers, THREADS);

  long long inserted = 0, dup_keys = 0, extra = 0;
  for (int i = 0; i < THREADS; i++)
    if (workers[i].error[0] != '\0')
      fail_msg("naive worker %d: %s", i, workers[i].error);
  for (int k = 0; k < KEYS; k++) {
    long long created = 0;
    for (int i = 0; i < THREADS; i++)
      for (int op = k; op < OPS; op += KEYS)
        created += workers[i].out[op].created;
    /* Someone inserted it; everyone who found nothing inserted it too. */
    assert_true(created >= 1);
    inserted += created;
    dup_keys += created > 1;
    extra += created - 1;
  }
  assert_int_equal(harness_count(db, naive.count_sql, NULL), inserted);
  long long groups = -1, redundant = -1;
  assert_nodup(db, NODUP_OK,
               nodup_count_duplicates(db, "naive_twin", naive.cols, 1, NULL,
                                      &groups, &redundant));
  assert_int_equal(groups, dup_keys);
  assert_int_equal(redundant, extra);
  print_message("naive check-then-insert, %d threads: %lld of %d keys "
                "duplicated, %lld redundant rows\n",
                THREADS, dup_keys, KEYS, extra);
  pthread_barrier_destroy(&barrier);

  race_threads(db, &indexed);
}

/* ---------------------------------------------------------------------------
 * Processes
 */

/* A child's report of one call; PIPE_BUF-sized writes do not interleave. */
struct record {
  int worker;
  int op;
  struct outcome outcome;
  char error[512];
};
_Static_assert(sizeof(struct record) <= 4096, "a record must fit in PIPE_BUF");

static int write_full(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Returns 1 for a full read, 0 at end of file, -1 on error. */
static int read_full(int fd, void *data, size_t len) {
  char *p = data;
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, p + got, len - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0)
      return got == 0 ? 0 : -1;
    got += (size_t)n;
  }
  return 1;
}

/*
 * A child: its own connection and key, then wait at the gate, then every
 * op, reported through `out_fd`. No cmocka here (a failed assertion would
 * run the parent's remaining tests in the child), and _exit so that the
 * parent's stdio buffers and atexit handlers are not run twice.
 */
struct child_args {
  const struct scenario *sc;
  int out_fd;
};

static int child_main(struct rig_child *child, int index, void *arg) {
  static struct worker w; /* static: OPS outcomes are too big for a stack */
  const struct scenario *sc = ((const struct child_args *)arg)->sc;
  int out_fd = ((const struct child_args *)arg)->out_fd;
  int rc;

  w.scenario = sc;
  rc = nodup_open(&w.db, harness_url());
  if (rc == NODUP_OK)
    rc = nodup_key_prepare(&w.key, w.db, sc->table, sc->cols, sc->ncols,
                           sc->where);
  if (rc != NODUP_OK)
    snprintf(w.error, sizeof w.error, "setup: %s: %s", nodup_strerror(rc),
             nodup_errmsg(w.db));
  rig_child_ready(child); /* then wait at the gate: everyone starts at once */

  for (int op = 0; op < OPS; op++) {
    struct record rec;
    memset(&rec, 0, sizeof rec);
    rec.worker = index;
    rec.op = op;
    if (rc == NODUP_OK) {
      w.error[0] = '\0';
      run_op(&w, op);
      rec.outcome = w.out[op];
    } else {
      rec.outcome.rc = rc;
    }
    snprintf(rec.error, sizeof rec.error, "%s", w.error);
    if (write_full(out_fd, &rec, sizeof rec) != 0)
      return 4;
  }
  close(out_fd);
  nodup_key_free(w.key);
  nodup_close(w.db);
  return 0;
}

/*
 * Race PROCESSES children. The test's own connection is closed across the
 * forks and reopened afterwards: a connection must not be carried into a
 * child (SQLite's rule for fork; in PostgreSQL the child would share the
 * socket), and a child that inherited one would hand valgrind its memory.
 */
static void race_processes(void **state, const struct scenario *sc) {
  int results[2];
  struct rig_procs procs;
  struct worker *workers = process_workers;
  memset(process_workers, 0, sizeof process_workers);
  assert_int_equal(pipe(results), 0);

  rig_detach(state);
  /* A failed fork is reported at the end, once the children that did
   * start have been released and reaped. The children write to
   * results[1]; the parent's copy goes, so the reads below end with the
   * last child. */
  struct child_args args = {sc, results[1]};
  rig_procs_start(&procs, PROCESSES, child_main, &args);
  close(results[1]);
  /* Every child is connected (or has died trying): start them all. */
  rig_procs_go(&procs);

  struct record rec;
  int nrecords = 0, r;
  while ((r = read_full(results[0], &rec, sizeof rec)) == 1) {
    if (rec.worker < 0 || rec.worker >= PROCESSES || rec.op < 0 ||
        rec.op >= OPS)
      break;
    workers[rec.worker].out[rec.op] = rec.outcome;
    if (rec.outcome.rc != NODUP_OK && workers[rec.worker].error[0] == '\0')
      snprintf(workers[rec.worker].error, sizeof workers[rec.worker].error,
               "%s", rec.error);
    nrecords++;
  }
  close(results[0]);

  int all_exited = rig_procs_wait(&procs) == PROCESSES;
  nodup_db *db = rig_reopen(state);
  if (!all_exited || nrecords != PROCESSES * OPS)
    fail_msg("children: %s, %d of %d reports", all_exited ? "ok" : "failed",
             nrecords, PROCESSES * OPS);
  verify(db, sc, workers, PROCESSES);
}

static void test_processes_same_keys(void **state) {
  nodup_db *db = *state;
  create_people(db);
  race_processes(state, &plain);
}

static void test_processes_partial_key(void **state) {
  nodup_db *db = *state;
  create_conversations(db);
  race_processes(state, &conversation);
}

/* ---------------------------------------------------------------------------
 * Waiting for an uncommitted winner
 */

struct blocked_call {
  nodup_db *db;
  nodup_key *key;
  const char *const *vals;
  struct outcome out;
  char error[512];
};

static void *blocked_call_main(void *arg) {
  struct blocked_call *call = arg;
  nodup_result result = {NULL, 0};
  call->out.rc =
      nodup_get_or_create(call->key, call->vals, NULL, NULL, 0, &result);
  call->out.created = result.created;
  snprintf(call->out.id, sizeof call->out.id, "%s",
           result.id != NULL ? result.id : "");
  if (call->out.rc != NODUP_OK)
    snprintf(call->error, sizeof call->error, "%s",
             nodup_errmsg(call->db));
  return NULL;
}

/*
 * Another connection has inserted the key but not committed. A caller must
 * wait for it and then report its row (commit) or create the row itself
 * (rollback); whether the caller arrives before or after the end of the
 * other transaction, the answer is the same, so the short pause only makes
 * the waiting path likely, and is not asserted on.
 */
static void test_waits_for_uncommitted_winner(void **state) {
  nodup_db *db = *state;
  create_people(db);
  nodup_key *key = harness_key(db, "people", plain.cols, 1, NULL);
  nodup_db *winner = harness_connect();
  nodup_key *winner_key = harness_key(winner, "people", plain.cols, 1, NULL);
  static const char *const endings[] = {"COMMIT", "ROLLBACK"};

  for (size_t i = 0; i < COUNT_OF(endings); i++) {
    char email[64], winner_id[HARNESS_ID_MAX];
    snprintf(email, sizeof email, "pending-%zu@example.org", i);
    const char *vals[] = {email};
    struct blocked_call call = {.db = db, .key = key, .vals = vals};
    struct rig_threads thread;

    harness_exec(winner, harness_pick("BEGIN IMMEDIATE", "BEGIN"));
    assert_int_equal(
        harness_goc(winner, winner_key, vals, NULL, NULL, 0, winner_id), 1);
    rig_threads_start(&thread, 1, blocked_call_main, &call, 0);
    nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 200000000}, NULL);
    harness_exec(winner, endings[i]);
    rig_threads_join(&thread);

    if (call.out.rc != NODUP_OK)
      fail_msg("after the winner's %s: %s: %s", endings[i],
               nodup_strerror(call.out.rc), call.error);
    if (i == 0) {
      assert_int_equal(call.out.created, 0);
      assert_string_equal(call.out.id, winner_id);
    } else {
      assert_int_equal(call.out.created, 1);
    }
    assert_int_equal(harness_count(db,
                                   "SELECT count(*) FROM \"people\""
                                   " WHERE \"email\" = $1",
                                   email),
                     1);
  }
}

/* ---------------------------------------------------------------------------
 * Isolation levels
 */

/* 64 callers on 20 keys with the database's default isolation set to
 * `level` (PostgreSQL; every new session starts there, as under
 * ALTER DATABASE ... SET default_transaction_isolation in production and on
 * engines whose default is SERIALIZABLE). Exactly one `created` per key and
 * no error: serialization failures and deadlocks are retried inside the
 * call, which owns its transaction. SQLite's transactions are serializable
 * by construction; there the same 64-caller race runs once. */
static void race_at_level(nodup_db *db, const char *level) {
  char sql[256], got[64];
  const char *name = strstr(harness_url(), "dbname=");
  if (harness_is_pg()) {
    assert_non_null(name);
    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" SET default_transaction_isolation = '%s'",
             name + strlen("dbname="), level);
    harness_exec(db, sql);
  }
  create_people(db);
  if (harness_is_pg() && !harness_is_pooled()) {
    /* A new session starts at the level (through a pooler the server
     * sessions were opened before the ALTER, and keep their default). */
    nodup_db *probe = harness_connect();
    harness_query_into(probe, "SHOW transaction_isolation", NULL, got, sizeof got);
    assert_string_equal(got, level);
  }
  race_n_threads(db, &plain, MANY_THREADS);
}

static void test_64_callers_read_committed(void **state) {
  race_at_level(*state, "read committed");
}

static void test_64_callers_repeatable_read(void **state) {
  race_at_level(*state, "repeatable read");
}

static void test_64_callers_serializable(void **state) {
  race_at_level(*state, "serializable");
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
      T(test_threads_same_keys),
      T(test_threads_lookup_first),
      T(test_threads_pipelined),
      T(test_threads_insert_first),
      T(test_threads_partial_key_in_columns),
      T(test_threads_partial_key_predicate_default),
      T(test_threads_naive_check_then_insert),
      T(test_processes_same_keys),
      T(test_processes_partial_key),
      T(test_waits_for_uncommitted_winner),
      T(test_64_callers_read_committed),
      T(test_64_callers_repeatable_read),
      T(test_64_callers_serializable),
#undef T
  };
  return cmocka_run_group_tests_name(harness_is_pg() ? "race_pg" : "race_sqlite",
                                     tests, NULL, NULL);
}

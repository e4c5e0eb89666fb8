/*
 * test_nonblock.c -- nodup_get_or_create_start/_poll, the non-blocking
 * get-or-create an event loop drives: the same outcomes as the blocking
 * call, never a wait inside the library (a call blocked on another
 * transaction's row answers NODUP_AGAIN at once, for as long as that
 * transaction lasts), a retried round's backoff handed to the caller as
 * a timeout, errors that end the call and leave the connection usable,
 * and real concurrency from threads and processes, each round forced in
 * turn. SQLite refuses the calls (nothing to wait for but a file lock).
 *
 * What the library wrote is read back through the raw handle.
 */
#include "harness.h"
#include "rig.h"

#include "internal.h"   /* struct nodup_key's strategy: force each round */

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COUNT_TAGS "SELECT count(*) FROM \"tags\""

static const char *const name_col[] = {"name"};
static const char *const code_col[] = {"code"};

static nodup_key *tags_key(nodup_db *db) {
  harness_exec(db, "CREATE TABLE \"tags\" ({id}, \"name\" TEXT NOT NULL, \"code\" TEXT,"
                   " \"uses\" INTEGER CONSTRAINT \"tags_uses_check\" CHECK (\"uses\" >= 0));"
                   "CREATE UNIQUE INDEX \"tags_name_key\" ON \"tags\" (\"name\");"
                   "CREATE UNIQUE INDEX \"tags_code_key\" ON \"tags\" (\"code\")");
  return harness_key(db, "tags", name_col, 1, NULL);
}

/* What an event loop saw while driving one call. */
struct drive {
  int socket_waits;
  int timer_waits;
  long timeout_us;   /* the last backoff asked for */
};

/* Drive a call to its end as an event loop does: wait for the socket with
 * poll(2), sleep out a backoff. -1 when the socket stays silent for 20 s
 * (no assertion: threads and children use it too). */
static int drive(nodup_key *key, int rc, nodup_result *out, nodup_wait *w, struct drive *d) {
  while (rc == NODUP_AGAIN) {
    if (w->fd >= 0) {
      struct pollfd p = {w->fd, POLLIN, 0};
      if (poll(&p, 1, 20000) != 1) return -1;
      d->socket_waits++;
    } else {
      if (w->timeout_us < 0) return -1;
      rig_sleep_ms((w->timeout_us + 999) / 1000);
      d->timer_waits++;
      d->timeout_us = w->timeout_us;
    }
    rc = nodup_get_or_create_poll(key, out, w);
  }
  return rc;
}

/* Start and drive one call. */
static int goc_nb(nodup_key *key, const char *name, nodup_result *out, struct drive *d) {
  const char *vals[] = {name};
  nodup_wait w;
  struct drive ignored = {0, 0, 0};
  int rc = nodup_get_or_create_start(key, vals, NULL, NULL, 0, out, &w);
  return drive(key, rc, out, &w, d ? d : &ignored);
}

static void set_strategy(nodup_key *key, key_strategy how) { key->strategy = how; }

/* Wait until a statement of this database waits on a lock (ours, on the
 * row another transaction inserted): only then does that transaction's
 * commit race with our statement, not precede it. Asked on `watch`, a
 * connection of its own outside any transaction (pg_stat_activity is read
 * once per transaction). */
static void wait_blocked(nodup_db *watch) {
  for (int i = 0; i < 2000; i++) {
    if (harness_count(watch,
                      "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                      " AND wait_event_type = 'Lock'",
                      NULL) > 0)
      return;
    rig_sleep_ms(5);
  }
  fail_msg("no statement waited on the lock within 10 s");
}

static const key_strategy rounds[] = {KEY_ADAPTIVE, KEY_LOOKUP_FIRST, KEY_PIPELINED,
                                      KEY_INSERT_FIRST};
#define NROUNDS ((int)(sizeof rounds / sizeof rounds[0]))

/* ---------------------------------------------------------------------------
 * Outcomes
 */

static void test_sqlite_refuses(void **state) {
  nodup_db *db = *state;
  nodup_key *key = tags_key(db);
  const char *vals[] = {"a"};
  nodup_result out;
  nodup_wait w;
  assert_nodup(db, NODUP_ERR_UNSUPPORTED,
               nodup_get_or_create_start(key, vals, NULL, NULL, 0, &out, &w));
  assert_non_null(strstr(nodup_errmsg(db), "PostgreSQL"));
  assert_nodup(db, NODUP_ERR_UNSUPPORTED, nodup_get_or_create_poll(key, &out, &w));
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 0);
  /* The blocking call is unaffected. */
  char id[HARNESS_ID_MAX];
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 1);
}

/* Miss, then hit, under each round: created once, one id, defaults only
 * on create, and the same answers the blocking call gives. */
static void test_miss_then_hit(void **state) {
  nodup_db *db = *state;
  nodup_key *key = tags_key(db);
  for (int r = 0; r < NROUNDS; r++) {
    char name[32], first[HARNESS_ID_MAX], again[HARNESS_ID_MAX];
    const char *vals[] = {name};
    const char *dcols[] = {"uses"}, *dvals[] = {"7"}, *dvals2[] = {"9"};
    nodup_result out;
    nodup_wait w;
    struct drive d = {0, 0, 0};
    set_strategy(key, rounds[r]);
    snprintf(name, sizeof name, "tag-%d", r);
    int rc = nodup_get_or_create_start(key, vals, dcols, dvals, 1, &out, &w);
    assert_int_equal(rc, NODUP_AGAIN);   /* the server answers later, always */
    assert_true(w.fd >= 0);
    assert_nodup(db, NODUP_OK, drive(key, rc, &out, &w, &d));
    assert_true(d.socket_waits >= 1);
    assert_int_equal(out.created, 1);
    snprintf(first, sizeof first, "%s", out.id);
    harness_expect(db, "SELECT CAST(\"uses\" AS TEXT) FROM \"tags\" WHERE \"name\" = $1", name,
                   "7");
    rc = nodup_get_or_create_start(key, vals, dcols, dvals2, 1, &out, &w);
    assert_nodup(db, NODUP_OK, drive(key, rc, &out, &w, &d));
    assert_int_equal(out.created, 0);
    assert_string_equal(out.id, first);
    harness_expect(db, "SELECT CAST(\"uses\" AS TEXT) FROM \"tags\" WHERE \"name\" = $1", name,
                   "7");
    /* The blocking call agrees. */
    assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, again), 0);
    assert_string_equal(again, first);
  }
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), NROUNDS);
}

/* Another transaction holds the key's row uncommitted: the call waits on
 * it in the server, and the library answers NODUP_AGAIN at once however
 * long that lasts; when the winner commits, the call returns its row,
 * created = 0. Under each round (the lookup alone sees nothing and sends
 * the insert, which waits). */
static void test_never_waits_inside(void **state) {
  nodup_db *db = *state;
  nodup_key *key = tags_key(db);
  nodup_db *other = harness_connect();
  for (int r = 0; r < NROUNDS; r++) {
    char name[32], winner[HARNESS_ID_MAX];
    const char *vals[] = {name};
    nodup_result out;
    nodup_wait w;
    struct drive d = {0, 0, 0};
    snprintf(name, sizeof name, "held-%d", r);
    set_strategy(key, rounds[r]);
    harness_exec(other, "BEGIN");
    nodup_key *okey = harness_key(other, "tags", name_col, 1, NULL);
    assert_int_equal(harness_goc(other, okey, vals, NULL, NULL, 0, winner), 1);
    int rc = nodup_get_or_create_start(key, vals, NULL, NULL, 0, &out, &w);
    for (int i = 0; i < 20; i++) {
      assert_int_equal(rc, NODUP_AGAIN);
      assert_true(w.fd >= 0);
      rig_sleep_ms(10);
      rc = nodup_get_or_create_poll(key, &out, &w);
    }
    assert_int_equal(rc, NODUP_AGAIN);   /* 200 ms later, still waiting: in the server */
    harness_exec(other, "COMMIT");
    assert_nodup(db, NODUP_OK, drive(key, rc, &out, &w, &d));
    assert_int_equal(out.created, 0);
    assert_string_equal(out.id, winner);
  }
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), NROUNDS);
}

/* ---------------------------------------------------------------------------
 * Retries and errors
 */

/* SERIALIZABLE: our insert waits on a concurrent insert of the key, which
 * commits a row our snapshot cannot see: 40001. In the library's own
 * transaction the round is retried after a backoff the caller sleeps
 * (a timeout, no socket), then finds the row; inside the caller's
 * transaction the call ends with NODUP_ERR_RETRY. Through a transaction
 * pooler a session's default isolation does not follow the client, so
 * there only the caller's transaction is tested. */
static void test_backoff_is_the_callers_timer(void **state) {
  nodup_db *db = *state;
  nodup_key *key = tags_key(db);
  nodup_db *other = harness_connect();
  nodup_key *okey = harness_key(other, "tags", name_col, 1, NULL);
  nodup_db *watch = harness_connect();
  int pooled = harness_is_pooled();
  if (!pooled) harness_exec(db, "SET default_transaction_isolation = 'serializable'");
  for (int inside = pooled; inside < 2; inside++) {
    char winner[HARNESS_ID_MAX];
    const char *vals[] = {inside ? "s-inside" : "s-own"};
    nodup_result out;
    nodup_wait w;
    struct drive d = {0, 0, 0};
    unsigned long long retries = nodup_retries(db);
    set_strategy(key, KEY_PIPELINED);
    harness_exec(other, "BEGIN");
    assert_int_equal(harness_goc(other, okey, vals, NULL, NULL, 0, winner), 1);
    if (inside) harness_exec(db, "BEGIN ISOLATION LEVEL SERIALIZABLE");
    int rc = nodup_get_or_create_start(key, vals, NULL, NULL, 0, &out, &w);
    assert_int_equal(rc, NODUP_AGAIN);
    wait_blocked(watch);
    harness_exec(other, "COMMIT");
    rc = drive(key, rc, &out, &w, &d);
    if (inside) {
      assert_int_equal(rc, NODUP_ERR_RETRY);
      assert_int_equal(d.timer_waits, 0);
      harness_exec(db, "ROLLBACK");
      continue;
    }
    assert_nodup(db, NODUP_OK, rc);
    assert_int_equal(out.created, 0);
    assert_string_equal(out.id, winner);
    assert_true(d.timer_waits >= 1);
    assert_true(d.timeout_us > 0 && d.timeout_us < 1000000);
    assert_true(nodup_retries(db) > retries);
  }
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 2 - pooled);
  if (pooled) return;

  /* Freed while it backs off: nothing is in flight, nothing new is sent,
   * and the connection is free for the next call, which finds the
   * winner's row. */
  nodup_key *spare;
  char winner[HARNESS_ID_MAX], again[HARNESS_ID_MAX];
  const char *vals[] = {"s-freed"};
  nodup_result out;
  nodup_wait w;
  assert_nodup(db, NODUP_OK, nodup_key_prepare(&spare, db, "tags", name_col, 1, NULL));
  set_strategy(spare, KEY_PIPELINED);
  harness_exec(other, "BEGIN");
  assert_int_equal(harness_goc(other, okey, vals, NULL, NULL, 0, winner), 1);
  int rc = nodup_get_or_create_start(spare, vals, NULL, NULL, 0, &out, &w);
  wait_blocked(watch);
  harness_exec(other, "COMMIT");
  while (rc == NODUP_AGAIN && w.fd >= 0) {
    struct pollfd p = {w.fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 20000), 1);
    rc = nodup_get_or_create_poll(spare, &out, &w);
  }
  assert_int_equal(rc, NODUP_AGAIN);   /* waiting out a backoff */
  nodup_key_free(spare);
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, again), 0);
  assert_string_equal(again, winner);
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 3);
}

/* Another constraint ends the call with its name, nothing inserted; a
 * NULL key is refused at start; the connection serves the next call. */
static void test_errors_end_the_call(void **state) {
  nodup_db *db = *state;
  nodup_key *key = tags_key(db);
  const char *vals[] = {"neg"}, *dcols[] = {"uses"}, *dvals[] = {"-1"};
  nodup_result out;
  nodup_wait w;
  struct drive d = {0, 0, 0};
  for (int r = 0; r < NROUNDS; r++) {
    set_strategy(key, rounds[r]);
    int rc = nodup_get_or_create_start(key, vals, dcols, dvals, 1, &out, &w);
    assert_nodup(db, NODUP_ERR_CONSTRAINT, drive(key, rc, &out, &w, &d));
    assert_non_null(strstr(nodup_errmsg(db), "tags_uses_check"));
    assert_non_null(strstr(nodup_errmsg(db), "tags"));
    assert_null(out.id);
  }
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 0);
  /* NULL in the key: refused before anything is sent. */
  nodup_key *code = harness_key(db, "tags", code_col, 1, NULL);
  const char *null_vals[] = {NULL};
  assert_nodup(db, NODUP_ERR_NULL_KEY,
               nodup_get_or_create_start(code, null_vals, NULL, NULL, 0, &out, &w));
  /* The connection is usable: the next call creates. */
  assert_nodup(db, NODUP_OK, goc_nb(key, "fine", &out, &d));
  assert_int_equal(out.created, 1);
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 1);
}

/* One call at a time on a connection: a second start, a blocking call, or
 * a poll with nothing under way are refused, and change nothing. Freeing
 * the key mid-call finishes it (its row is created) and leaves the
 * connection clean. */
static void test_one_call_at_a_time(void **state) {
  nodup_db *db = *state;
  nodup_key *key = tags_key(db);
  nodup_key *second = harness_key(db, "tags", name_col, 1, NULL);
  nodup_key *spare;
  const char *a[] = {"a"}, *b[] = {"b"};
  nodup_result out, out2;
  nodup_wait w, w2;
  nodup_key *other_key;
  assert_nodup(db, NODUP_OK, nodup_key_prepare(&other_key, db, "tags", name_col, 1, NULL));
  assert_nodup(db, NODUP_ERR_USAGE, nodup_get_or_create_poll(key, &out, &w));
  int rc = nodup_get_or_create_start(key, a, NULL, NULL, 0, &out, &w);
  assert_int_equal(rc, NODUP_AGAIN);
  assert_nodup(db, NODUP_ERR_USAGE,
               nodup_get_or_create_start(second, b, NULL, NULL, 0, &out2, &w2));
  assert_nodup(db, NODUP_ERR_USAGE, nodup_get_or_create(second, b, NULL, NULL, 0, &out2));
  assert_non_null(strstr(nodup_errmsg(db), "under way"));
  /* Every other call that would use the connection, on this key or
   * another, is refused too; freeing another key sends nothing. */
  const char *set_cols[] = {"uses"}, *set_vals[] = {"3"};
  assert_nodup(db, NODUP_ERR_USAGE,
               nodup_update_or_create(key, a, NULL, NULL, 0, set_cols, set_vals, 1, &out2, NULL));
  assert_nodup(db, NODUP_ERR_USAGE,
               nodup_get_or_create_many(second, 1, b, NULL, NULL, 0, &out2));
  assert_nodup(db, NODUP_ERR_USAGE, nodup_find(key, a, &out2));
  assert_nodup(db, NODUP_ERR_USAGE, nodup_exec(db, "SELECT 1"));
  long long groups = -1, redundant = -1;   /* a call without a key, as merge's are */
  assert_nodup(db, NODUP_ERR_USAGE,
               nodup_count_duplicates(db, "tags", name_col, 1, NULL, &groups, &redundant));
  assert_nodup(db, NODUP_ERR_USAGE, nodup_key_prepare(&spare, db, "tags", name_col, 1, NULL));
  nodup_key_free(other_key);
  struct drive d = {0, 0, 0};
  assert_nodup(db, NODUP_OK, drive(key, rc, &out, &w, &d));
  assert_int_equal(out.created, 1);
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 1);
  /* Freed mid-call while it waits on another transaction's row: the
   * call is cancelled at once, not waited for (here the holder commits
   * only after the free: waiting would never end), it leaves nothing,
   * and the connection serves the next call, which finds the winner. */
  nodup_db *other = harness_connect(), *watch = harness_connect();
  nodup_key *okey = harness_key(other, "tags", name_col, 1, NULL);
  char winner[HARNESS_ID_MAX], found[HARNESS_ID_MAX];
  harness_exec(other, "BEGIN");
  assert_int_equal(harness_goc(other, okey, b, NULL, NULL, 0, winner), 1);
  assert_nodup(db, NODUP_OK, nodup_key_prepare(&spare, db, "tags", name_col, 1, NULL));
  assert_int_equal(nodup_get_or_create_start(spare, b, NULL, NULL, 0, &out, &w), NODUP_AGAIN);
  wait_blocked(watch);
  nodup_key_free(spare);
  harness_exec(other, "COMMIT");
  assert_int_equal(harness_goc(db, second, b, NULL, NULL, 0, found), 0);
  assert_string_equal(found, winner);
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), 2);
  assert_nodup(db, NODUP_OK, goc_nb(second, "c", &out, &d));
  assert_int_equal(out.created, 1);
}

/* ---------------------------------------------------------------------------
 * Concurrency: every racer drives non-blocking calls over the same keys,
 * in its own order, with a round of its own.
 */

#define THREADS 8
#define PROCESSES 4
#define KEYS 120

struct result {
  int created;
  char id[24];
};

struct racer {
  nodup_db *db;
  nodup_key *key;
  int index;
  struct result res[KEYS];
  char error[256];
};

static void racer_run(struct racer *w) {
  set_strategy(w->key, rounds[w->index % NROUNDS]);
  for (int i = 0; i < KEYS && !w->error[0]; i++) {
    int k = (i * 7 + w->index * 13) % KEYS;   /* 7 is prime to KEYS: a permutation */
    char name[32];
    nodup_result out;
    snprintf(name, sizeof name, "race-%d", k);
    int rc = goc_nb(w->key, name, &out, NULL);
    if (rc != NODUP_OK) {
      snprintf(w->error, sizeof w->error, "key %d: %d %s", k, rc, nodup_errmsg(w->db));
      break;
    }
    w->res[k].created = out.created;
    snprintf(w->res[k].id, sizeof w->res[k].id, "%s", out.id);
  }
}

static void *racer_thread(void *arg) {
  racer_run(arg);
  return NULL;
}

static void verify(nodup_db *db, struct racer *w, int n) {
  for (int i = 0; i < n; i++)
    if (w[i].error[0]) fail_msg("racer %d: %s", i, w[i].error);
  for (int k = 0; k < KEYS; k++) {
    int created = 0;
    for (int i = 0; i < n; i++) {
      if (!w[i].res[k].id[0]) fail_msg("racer %d key %d: no id", i, k);
      if (strcmp(w[i].res[k].id, w[0].res[k].id) != 0)
        fail_msg("key %d: ids %s and %s", k, w[0].res[k].id, w[i].res[k].id);
      created += w[i].res[k].created;
    }
    if (created != 1) fail_msg("key %d: created %d times", k, created);
  }
  assert_int_equal(harness_count(db, COUNT_TAGS, NULL), KEYS);
}

static struct racer racers[THREADS];

static void test_threads(void **state) {
  nodup_db *db = *state;
  tags_key(db);
  memset(racers, 0, sizeof racers);
  for (int i = 0; i < THREADS; i++) {
    racers[i].db = harness_connect();
    racers[i].key = harness_key(racers[i].db, "tags", name_col, 1, NULL);
    racers[i].index = i;
  }
  rig_threads_run(THREADS, racer_thread, racers, sizeof racers[0]);
  verify(db, racers, THREADS);
}

/* A child's report: one key's outcome; atomic in a pipe. */
struct record {
  int racer, key;
  struct result res;
  char error[256];
};

static int racer_child(struct rig_child *child, int index, void *arg) {
  static struct racer w;
  int out_fd = *(int *)arg, rc;
  memset(&w, 0, sizeof w);
  w.index = index;
  rc = nodup_open(&w.db, harness_url());
  if (rc == NODUP_OK) rc = nodup_key_prepare(&w.key, w.db, "tags", name_col, 1, NULL);
  rig_child_ready(child);
  if (rc == NODUP_OK) racer_run(&w);
  else snprintf(w.error, sizeof w.error, "open: %d", rc);
  for (int k = 0; k < KEYS; k++) {
    struct record rec;
    memset(&rec, 0, sizeof rec);
    rec.racer = index;
    rec.key = k;
    rec.res = w.res[k];
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
  if (rec->racer < 0 || rec->racer >= PROCESSES || rec->key < 0 || rec->key >= KEYS) return 1;
  seen[rec->racer].res[rec->key] = rec->res;
  if (rec->error[0] && !seen[rec->racer].error[0])
    snprintf(seen[rec->racer].error, sizeof seen[rec->racer].error, "%s", rec->error);
  return 0;
}

static void test_processes(void **state) {
  tags_key(*state);
  memset(seen, 0, sizeof seen);
  nodup_db *db = rig_procs_report(state, PROCESSES, racer_child, sizeof(struct record),
                                  PROCESSES * KEYS, take_record, NULL);
  verify(db, seen, PROCESSES);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
  const struct CMUnitTest pg[] = {
      T(test_miss_then_hit),
      T(test_never_waits_inside),
      T(test_backoff_is_the_callers_timer),
      T(test_errors_end_the_call),
      T(test_one_call_at_a_time),
      T(test_threads),
      T(test_processes),
  };
  const struct CMUnitTest sqlite[] = {
      T(test_sqlite_refuses),
  };
#undef T
  if (harness_is_pg()) return cmocka_run_group_tests_name("nonblock_pg", pg, NULL, NULL);
  return cmocka_run_group_tests_name("nonblock_sqlite", sqlite, NULL, NULL);
}

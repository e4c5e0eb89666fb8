/*
 * test_backend.c -- what only one backend has: PostgreSQL sequences,
 * isolation levels, NULLS NOT DISTINCT and schemas; SQLite connection
 * settings, file handling and locking. One executable, one test list per
 * backend (chosen by NODUP_TEST_BACKEND), so nothing here is ever skipped.
 */
#include "harness.h"
#include "rig.h"

#include <errno.h>
#include <pthread.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const email_col[] = {"email"};

static nodup_key *people_key(nodup_db *db) {
  harness_exec(db, "CREATE TABLE \"people\" ({id}, \"email\" TEXT NOT NULL,"
                   " \"name\" TEXT);"
                   "CREATE UNIQUE INDEX \"people_email_key\""
                   " ON \"people\" (\"email\")");
  return harness_key(db, "people", email_col, 1, NULL);
}

/* ===========================================================================
 * PostgreSQL
 */

static void test_pg_backend(void **state) {
  nodup_db *db = *state;
  assert_string_equal(nodup_db_backend(db), "postgresql");
  assert_non_null(nodup_db_handle(db));
}

/* A hit must not touch the sequence: insert-first designs burn one value per
 * call, and a busy get-or-create table then runs through its ids. */
static void test_pg_hit_consumes_no_sequence_value(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  const char *vals[] = {"ada@example.org"};
  const char *seq_sql = "SELECT \"last_value\"::text || ' ' ||"
                        " \"is_called\"::text FROM \"people_id_seq\"";
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];

  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 1);
  char before[64], after[64];
  harness_query_into(db, seq_sql, NULL, before, sizeof before);
  for (int i = 0; i < 100; i++) {
    assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, again), 0);
    assert_string_equal(id, again);
  }
  harness_query_into(db, seq_sql, NULL, after, sizeof after);
  if (strcmp(before, after) != 0)
    fail_msg("100 hits moved the sequence: %s -> %s", before, after);

  /* And a miss takes exactly the next value. */
  const char *other[] = {"bob@example.org"};
  assert_int_equal(harness_goc(db, key, other, NULL, NULL, 0, again), 1);
  assert_int_equal(strtoll(again, NULL, 10), strtoll(id, NULL, 10) + 1);
}

/*
 * Under REPEATABLE READ or SERIALIZABLE, a row committed after the caller's
 * snapshot is invisible to it, yet blocks its insert. The library cannot
 * return that row (the caller could not read it) nor retry (the transaction
 * is the caller's): NODUP_ERR_RETRY, and after a rollback it works.
 */
static void test_pg_snapshot_isolation_asks_to_retry(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  nodup_db *other = harness_connect();
  nodup_key *other_key = harness_key(other, "people", email_col, 1, NULL);
  static const char *const levels[] = {"REPEATABLE READ", "SERIALIZABLE"};
  static const char *const emails[] = {"rr@example.org", "ser@example.org"};

  for (size_t i = 0; i < COUNT_OF(levels); i++) {
    const char *vals[] = {emails[i]};
    char begin[64], winner[HARNESS_ID_MAX], id[HARNESS_ID_MAX];
    nodup_result result = {"sentinel", 0};
    snprintf(begin, sizeof begin, "BEGIN ISOLATION LEVEL %s", levels[i]);

    harness_exec(db, begin);
    /* The lookup takes the snapshot, and sees nothing. */
    assert_nodup(db, NODUP_OK, nodup_find(key, vals, &result));
    assert_null(result.id);
    assert_int_equal(harness_goc(other, other_key, vals, NULL, NULL, 0, winner),
                     1);
    assert_nodup(db, NODUP_ERR_RETRY,
                 nodup_get_or_create(key, vals, NULL, NULL, 0, &result));
    harness_exec(db, "ROLLBACK");

    harness_exec(db, begin);
    assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 0);
    assert_string_equal(id, winner);
    harness_exec(db, "COMMIT");
  }
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"people\"", NULL),
                   2);
}

/* Under READ COMMITTED inside the caller's transaction, a row committed by
 * someone else since the transaction began is found, not duplicated. */
static void test_pg_read_committed_sees_new_winner(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  nodup_db *other = harness_connect();
  nodup_key *other_key = harness_key(other, "people", email_col, 1, NULL);
  const char *vals[] = {"ada@example.org"};
  nodup_result result = {"sentinel", 0};
  char winner[HARNESS_ID_MAX], id[HARNESS_ID_MAX];

  harness_exec(db, "BEGIN");
  assert_nodup(db, NODUP_OK, nodup_find(key, vals, &result));
  assert_null(result.id);
  assert_int_equal(harness_goc(other, other_key, vals, NULL, NULL, 0, winner),
                   1);
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 0);
  assert_string_equal(id, winner);
  harness_exec(db, "COMMIT");
}

/* PostgreSQL 15: an index that treats NULLs as equal can back NULL keys.
 * Before 15 there is no such index (the server refuses the DDL), so a NULL
 * key value is refused with a message saying 15 would allow it. */
static void test_pg_nulls_not_distinct(void **state) {
  nodup_db *db = *state;
  const char *cols[] = {"a", "b"};
  const char *half_null[] = {"x", NULL};
  const char *all_null[] = {NULL, NULL};
  nodup_result found = {NULL, 0};
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX], nulls[HARNESS_ID_MAX];
  nodup_key *key;

  if (harness_pg_version(db) < 150000) {
    harness_exec(db, "CREATE TABLE \"pairs\" ({id}, \"a\" TEXT, \"b\" TEXT)");
    assert_nodup(db, NODUP_ERR_DB,
                 nodup_exec(db, "CREATE UNIQUE INDEX \"pairs_key\" ON \"pairs\""
                                " (\"a\", \"b\") NULLS NOT DISTINCT"));
    harness_exec(db, "CREATE UNIQUE INDEX \"pairs_key\" ON \"pairs\" (\"a\", \"b\")");
    key = harness_key(db, "pairs", cols, 2, NULL);
    assert_int_equal(nodup_key_nulls_equal(key), 0);
    assert_nodup(db, NODUP_ERR_NULL_KEY, nodup_get_or_create(key, half_null, NULL, NULL, 0, &found));
    assert_contains(nodup_errmsg(db), "PostgreSQL 15+");
    assert_nodup(db, NODUP_ERR_NULL_KEY, nodup_get_or_create(key, all_null, NULL, NULL, 0, &found));
    assert_int_equal(harness_count(db, "SELECT count(*) FROM \"pairs\"", NULL), 0);
    return;
  }

  harness_exec(db, "CREATE TABLE \"pairs\" ({id}, \"a\" TEXT, \"b\" TEXT);"
                   "CREATE UNIQUE INDEX \"pairs_key\" ON \"pairs\" (\"a\","
                   " \"b\") NULLS NOT DISTINCT");
  key = harness_key(db, "pairs", cols, 2, NULL);
  assert_int_equal(nodup_key_nulls_equal(key), 1);

  assert_int_equal(harness_goc(db, key, half_null, NULL, NULL, 0, id), 1);
  assert_int_equal(harness_goc(db, key, half_null, NULL, NULL, 0, again), 0);
  assert_string_equal(id, again);
  assert_nodup(db, NODUP_OK, nodup_find(key, half_null, &found));
  assert_non_null(found.id);
  assert_string_equal(found.id, id);
  harness_expect(db, "SELECT \"b\" FROM \"pairs\" WHERE \"id\" = $1", id, NULL);

  assert_int_equal(harness_goc(db, key, all_null, NULL, NULL, 0, nulls), 1);
  assert_string_not_equal(nulls, id);
  assert_int_equal(harness_goc(db, key, all_null, NULL, NULL, 0, again), 0);
  assert_string_equal(nulls, again);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"pairs\"", NULL),
                   2);
}

/* "app.conference" is table conference in schema app, not the public one. */
static void test_pg_schema_qualified_table(void **state) {
  nodup_db *db = *state;
  harness_exec(db, "CREATE SCHEMA \"app\";"
                   "CREATE TABLE \"app\".\"conference\" ({id},"
                   " \"conference_id\" TEXT NOT NULL, \"app_id\" TEXT NOT NULL);"
                   "CREATE UNIQUE INDEX \"conference_app_key\""
                   " ON \"app\".\"conference\" (\"conference_id\", \"app_id\");"
                   "CREATE TABLE \"public\".\"conference\" ({id},"
                   " \"conference_id\" TEXT NOT NULL, \"app_id\" TEXT NOT NULL)");
  const char *cols[] = {"conference_id", "app_id"};
  nodup_key *key = harness_key(db, "app.conference", cols, 2, NULL);
  assert_string_equal(nodup_key_index(key), "conference_app_key");
  const char *vals[] = {"c1", "zoom"};
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];

  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 1);
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, again), 0);
  assert_string_equal(id, again);
  assert_int_equal(
      harness_count(db, "SELECT count(*) FROM \"app\".\"conference\"", NULL),
      1);
  assert_int_equal(
      harness_count(db, "SELECT count(*) FROM \"public\".\"conference\"", NULL),
      0);

  /* Unqualified is public.conference, which nothing protects. */
  nodup_key *unqualified = NULL;
  assert_nodup(db, NODUP_ERR_UNBACKED,
               nodup_key_prepare(&unqualified, db, "conference", cols, 2, NULL));
  assert_null(unqualified);
}

/* Names are matched exactly, as quoted identifiers. */
static void test_pg_names_are_case_sensitive(void **state) {
  nodup_db *db = *state;
  harness_exec(db, "CREATE TABLE \"CamelTable\" ({id}, \"Name\" TEXT NOT NULL);"
                   "CREATE UNIQUE INDEX \"CamelTable_Name\""
                   " ON \"CamelTable\" (\"Name\")");
  const char *exact[] = {"Name"};
  const char *folded[] = {"name"};
  nodup_key *key = NULL;

  assert_nodup(db, NODUP_ERR_NO_TABLE,
               nodup_key_prepare(&key, db, "cameltable", exact, 1, NULL));
  assert_null(key);
  assert_nodup(db, NODUP_ERR_NO_COLUMN,
               nodup_key_prepare(&key, db, "CamelTable", folded, 1, NULL));
  assert_null(key);
  key = harness_key(db, "CamelTable", exact, 1, NULL);
  assert_string_equal(nodup_key_index(key), "CamelTable_Name");
}

/*
 * Errors injected at each position of the get-or-create pipeline: the
 * insert (a BEFORE trigger), the lookup (a row-security policy that fires
 * only for SELECT statements), and the implicit transaction's COMMIT at the
 * Sync (a deferred constraint trigger, which is how SERIALIZABLE's 40001
 * "could not serialize access" arrives at commit). Each fault fires a set
 * number of times, counted by a sequence (nextval is never rolled back).
 */
static const char fault_schema[] =
    "CREATE TABLE \"people\" (\"id\" serial PRIMARY KEY, \"email\" text NOT NULL);"
    "CREATE UNIQUE INDEX \"people_email_key\" ON \"people\" (\"email\");"
    "CREATE SEQUENCE fault_calls;"
    "CREATE TABLE fault (pos int, code text, times int);"
    "CREATE FUNCTION fault_hit(p int) RETURNS boolean LANGUAGE plpgsql AS $$"
    " DECLARE f record; BEGIN"
    "  SELECT * INTO f FROM fault WHERE pos = p;"
    "  IF FOUND AND nextval('fault_calls') <= f.times THEN"
    "   RAISE EXCEPTION 'fault injected at position %', p USING ERRCODE = f.code;"
    "  END IF; RETURN true; END $$;"
    "CREATE FUNCTION fault_insert() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN PERFORM fault_hit(0); RETURN NEW; END $$;"
    "CREATE TRIGGER fault_insert BEFORE INSERT ON \"people\""
    " FOR EACH ROW EXECUTE FUNCTION fault_insert();"
    "CREATE FUNCTION fault_commit() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN PERFORM fault_hit(2); RETURN NULL; END $$;"
    "CREATE CONSTRAINT TRIGGER fault_commit AFTER INSERT ON \"people\""
    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fault_commit();"
    "CREATE FUNCTION fault_lookup() RETURNS boolean LANGUAGE plpgsql AS $$"
    " BEGIN RETURN current_query() NOT ILIKE 'select%' OR fault_hit(1); END $$;"
    "ALTER TABLE \"people\" ENABLE ROW LEVEL SECURITY;"
    "CREATE POLICY fault_lookup ON \"people\" FOR SELECT USING (fault_lookup());"
    "CREATE POLICY fault_write ON \"people\" FOR INSERT WITH CHECK (true);"
    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nodup_fault') THEN"
    "  CREATE ROLE nodup_fault; END IF; END $$;"
    "GRANT ALL ON \"people\", \"people_id_seq\", fault_calls, fault TO nodup_fault";

/* Arm one fault: position, SQLSTATE, how many times it fires. */
static void fault_arm(nodup_db *admin, int pos, const char *code, int times) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "DELETE FROM fault; ALTER SEQUENCE fault_calls RESTART;"
           " INSERT INTO fault VALUES (%d, '%s', %d)", pos, code, times);
  harness_exec(admin, sql);
}

/* After any failure the connection is out of pipeline mode, outside any
 * transaction the call owned, and a new call works. */
static void expect_clean(nodup_db *conn, nodup_key *key, int owned, const char *email) {
  PGconn *c = nodup_db_handle(conn);
  const char *vals[] = {email};
  char id[HARNESS_ID_MAX];
  assert_int_equal(PQpipelineStatus(c), PQ_PIPELINE_OFF);
  if (!owned) {
    assert_int_equal(PQtransactionStatus(c), PQTRANS_INERROR);
    harness_exec(conn, "ROLLBACK");
  }
  assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
  assert_int_equal(harness_goc(conn, key, vals, NULL, NULL, 0, id), 1);
  assert_int_equal(harness_goc(conn, key, vals, NULL, NULL, 0, id), 0);
}

static void test_pg_error_at_each_pipeline_position(void **state) {
  nodup_db *db = *state;
  nodup_db *conn = harness_connect();
  nodup_key *key;
  static const struct {
    int pos;
    const char *code;
    int times;
    int owned;  /* the call owns its transaction (else: inside the caller's) */
    int want;   /* the call's result */
  } cases[] = {
      {0, "23514", 1, 1, NODUP_ERR_CONSTRAINT}, /* the insert: not retried */
      {0, "40001", 3, 1, NODUP_OK},             /* retried */
      {0, "40001", 1, 0, NODUP_ERR_RETRY},      /* the caller's to retry */
      {1, "P0001", 1, 1, NODUP_ERR_DB},         /* the lookup */
      {1, "40P01", 3, 1, NODUP_OK},             /* a deadlock, retried */
      {1, "40001", 1, 0, NODUP_ERR_RETRY},
      {2, "40001", 3, 1, NODUP_OK},             /* at COMMIT, retried */
      {2, "40001", 1000, 1, NODUP_ERR_RETRY},   /* more than the retries */
      {2, "23505", 1, 1, NODUP_ERR_CONSTRAINT}, /* a deferred constraint */
  };
  harness_exec(db, fault_schema);
  harness_exec(conn, "SET SESSION AUTHORIZATION nodup_fault");
  key = harness_key(conn, "people", email_col, 1, NULL);
  for (size_t i = 0; i < COUNT_OF(cases); i++) {
    char email[64], after[64];
    const char *vals[] = {email};
    nodup_result r = {NULL, 0};
    long long rows;
    int rc;
    snprintf(email, sizeof email, "case%zu@example.org", i);
    snprintf(after, sizeof after, "after%zu@example.org", i);
    unsigned long long retries = nodup_retries(conn);
    fault_arm(db, cases[i].pos, cases[i].code, cases[i].times);
    if (!cases[i].owned) harness_exec(conn, "BEGIN");
    rc = nodup_get_or_create(key, vals, NULL, NULL, 0, &r);
    /* Each transient failure the call absorbed is counted, once. */
    if (rc == NODUP_OK && cases[i].code[0] == '4')
      assert_int_equal(nodup_retries(conn) - retries, (unsigned long long)cases[i].times);
    if (rc != cases[i].want)
      fail_msg("case %zu (position %d, %s x%d): %s, want %s: %s", i, cases[i].pos,
               cases[i].code, cases[i].times, nodup_strerror(rc),
               nodup_strerror(cases[i].want), nodup_errmsg(conn));
    if (rc == NODUP_OK) assert_int_equal(r.created, 1);
    else if (cases[i].want == NODUP_ERR_RETRY || cases[i].want == NODUP_ERR_DB)
      assert_non_null(strstr(nodup_errmsg(conn), "SQLSTATE"));
    fault_arm(db, 0, "00000", 0);
    expect_clean(conn, key, cases[i].owned, after);
    /* Exactly the rows the successful calls made. */
    rows = harness_count(db, "SELECT count(*) FROM \"people\" WHERE \"email\" = $1", email);
    assert_int_equal(rows, rc == NODUP_OK ? 1 : 0);
  }
}

/*
 * A trigger that does the key's index job before ON CONFLICT can (nodup
 * enforce --online's guard, live or left behind by a dead run: advisory
 * lock per key, then a fresh-snapshot check, then unique_violation naming
 * the index) must not turn a lost race into an error: 16 callers on the
 * same keys still get exactly one `created` each and the winner's id.
 */
static void *guard_racer(void *arg);
struct guard_race {
  pthread_barrier_t *barrier;
  nodup_db *db;
  nodup_key *key;
  int created[5], rc[5];
  char id[5][HARNESS_ID_MAX];
};

static void *guard_racer(void *arg) {
  struct guard_race *g = arg;
  for (int k = 0; k < 5; k++) {
    char email[32];
    const char *vals[] = {email};
    nodup_result r = {NULL, 0};
    snprintf(email, sizeof email, "k%d@example.org", k);
    pthread_barrier_wait(g->barrier);
    g->rc[k] = nodup_get_or_create(g->key, vals, NULL, NULL, 0, &r);
    g->created[k] = r.created;
    snprintf(g->id[k], sizeof g->id[k], "%s", r.id ? r.id : "");
  }
  return NULL;
}

static void test_pg_guard_refusal_is_a_lost_race(void **state) {
  nodup_db *db = *state;
  enum { N = 16 };
  static struct guard_race g[N];
  pthread_barrier_t barrier;
  people_key(db);
  harness_exec(db,
               "CREATE FUNCTION guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
               " PERFORM pg_advisory_xact_lock(hashtextextended(NEW.email, 0));"
               " IF EXISTS (SELECT 1 FROM people o WHERE o.email = NEW.email) THEN"
               "  RAISE unique_violation USING MESSAGE = 'refused by a guard',"
               "   CONSTRAINT = 'people_email_key'; END IF; RETURN NEW; END $$;"
               "CREATE TRIGGER guard BEFORE INSERT ON people FOR EACH ROW EXECUTE FUNCTION guard()");
  assert_int_equal(pthread_barrier_init(&barrier, NULL, N), 0);
  for (int i = 0; i < N; i++) {
    g[i].barrier = &barrier;
    g[i].db = harness_connect();
    g[i].key = harness_key(g[i].db, "people", email_col, 1, NULL);
  }
  rig_threads_run(N, guard_racer, g, sizeof g[0]);
  pthread_barrier_destroy(&barrier);
  for (int k = 0; k < 5; k++) {
    int created = 0;
    for (int i = 0; i < N; i++) {
      if (g[i].rc[k] != NODUP_OK)
        fail_msg("key %d, caller %d: %s: %s", k, i, nodup_strerror(g[i].rc[k]),
                 nodup_errmsg(g[i].db));
      created += g[i].created[k];
      assert_string_equal(g[i].id[k], g[0].id[k]);
    }
    assert_int_equal(created, 1);
  }
  assert_int_equal(harness_count(db, "SELECT count(*) FROM people", NULL), 5);
}

/* ===========================================================================
 * SQLite
 */

static void test_sqlite_connection_settings(void **state) {
  nodup_db *db = *state;
  nodup_db *second = harness_connect();
  nodup_db *conns[] = {db, second};
  assert_string_equal(nodup_db_backend(db), "sqlite");
  for (size_t i = 0; i < COUNT_OF(conns); i++) {
    harness_expect(conns[i], "PRAGMA journal_mode", NULL, "wal");
    harness_expect(conns[i], "PRAGMA foreign_keys", NULL, "1");
    harness_expect(conns[i], "PRAGMA busy_timeout", NULL, "5000");
  }
}

static int file_exists(const char *path) {
  return access(path, F_OK) == 0 || errno != ENOENT;
}

/* A typo in a path must not silently create an empty database. */
static void test_sqlite_missing_file_is_not_created(void **state) {
  (void)state;
  char dir[] = "/tmp/nodup-missing-XXXXXX";
  char path[PATH_MAX], url[PATH_MAX + 16];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/missing.db", dir);

  const char *forms[] = {path, url};
  snprintf(url, sizeof url, "sqlite:%s", path);
  for (size_t i = 0; i < COUNT_OF(forms); i++) {
    nodup_db *db = NULL;
    int rc = nodup_open(&db, forms[i]);
    int created = file_exists(path);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", nodup_errmsg(db));
    nodup_close(db);
    unlink(path);
    if (rc != NODUP_ERR_CONNECT || created || msg[0] == '\0') {
      rmdir(dir);
      fail_msg("nodup_open(\"%s\") = %s, file %s, message \"%s\"", forms[i],
               nodup_strerror(rc), created ? "created" : "not created", msg);
    }
  }
  rmdir(dir);
}

/* A plain path and "sqlite:PATH" open a file that exists. */
static void test_sqlite_plain_path_opens_existing_file(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  const char *vals[] = {"ada@example.org"};
  char id[HARNESS_ID_MAX];
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 1);

  /* harness_url() is "file:PATH?mode=rwc". */
  char path[PATH_MAX], url[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s", harness_url() + strlen("file:"));
  *strchr(path, '?') = '\0';
  snprintf(url, sizeof url, "sqlite:%s", path);
  const char *forms[] = {path, url};
  for (size_t i = 0; i < COUNT_OF(forms); i++) {
    nodup_db *plain = NULL;
    int rc = nodup_open(&plain, forms[i]);
    if (rc != NODUP_OK) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", nodup_errmsg(plain));
      nodup_close(plain);
      fail_msg("nodup_open(\"%s\"): %s", forms[i], msg);
    }
    long long n = harness_count(plain, "SELECT count(*) FROM \"people\"", NULL);
    nodup_close(plain);
    assert_int_equal(n, 1);
  }
}

/* A hit is a plain read: it proceeds while another connection holds the
 * write lock. (Were it to take the lock, it would wait out the 5 s busy
 * timeout and fail.) */
static void test_sqlite_hit_takes_no_write_lock(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  nodup_db *writer = harness_connect();
  const char *vals[] = {"ada@example.org"};
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];

  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 1);
  harness_exec(writer, "BEGIN IMMEDIATE");
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, again), 0);
  assert_string_equal(id, again);
  harness_exec(writer, "ROLLBACK");
}

/* Inside the caller's deferred transaction, a miss needs to upgrade a read
 * snapshot that another connection has since overtaken: SQLite answers
 * SQLITE_BUSY_SNAPSHOT at once, which must come back as NODUP_ERR_RETRY. */
static void test_sqlite_stale_caller_transaction_asks_to_retry(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);
  nodup_db *other = harness_connect();
  nodup_key *other_key = harness_key(other, "people", email_col, 1, NULL);
  const char *vals[] = {"ada@example.org"};
  const char *unrelated[] = {"bob@example.org"};
  nodup_result result = {"sentinel", 0};
  char id[HARNESS_ID_MAX];

  harness_exec(db, "BEGIN");
  assert_nodup(db, NODUP_OK, nodup_find(key, vals, &result));
  assert_null(result.id);
  assert_int_equal(harness_goc(other, other_key, unrelated, NULL, NULL, 0, id),
                   1);
  assert_nodup(db, NODUP_ERR_RETRY,
               nodup_get_or_create(key, vals, NULL, NULL, 0, &result));
  harness_exec(db, "ROLLBACK");

  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 1);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"people\"", NULL),
                   2);
}

/* A file in rollback-journal mode, made with SQLite itself (the harness's
 * own file was opened by nodup, hence WAL): people(email) with one row. */
static void make_journal_file(const char *path) {
  sqlite3 *h = NULL;
  assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
  assert_int_equal(sqlite3_exec(h,
                                "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT NOT NULL);"
                                "CREATE UNIQUE INDEX people_email_key ON people (email);"
                                "INSERT INTO people (email) VALUES ('ada@example.org')",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(h);
}

/* The journal mode SQLite reads from the file, through a connection of
 * its own (which changes nothing). */
static void expect_journal_mode(const char *path, const char *mode) {
  sqlite3 *h = NULL;
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), mode);
  sqlite3_finalize(st);
  sqlite3_close(h);
}

/* What nodup check and nodup scan do, on a read-only connection: returns
 * 0 when every step behaved, else the number of the step that did not
 * (usable in a forked child, where cmocka's assertions must not run). */
static int readonly_session(const char *path) {
  nodup_db *db = NULL;
  nodup_key *key = NULL;
  nodup_scan_report *scan = NULL;
  nodup_result r = {NULL, 0};
  const char *vals[] = {"ada@example.org"};
  int step = 0;
  if (nodup_open_ext(&db, path, NODUP_OPEN_READONLY) != NODUP_OK) { step = 1; goto done; }
  if (nodup_key_prepare(&key, db, "people", email_col, 1, NULL) != NODUP_OK) { step = 2; goto done; }
  if (nodup_find(key, vals, &r) != NODUP_OK || r.id == NULL) { step = 3; goto done; }
  if (nodup_scan(&scan, db, "people", email_col, 1, NULL, NULL) != NODUP_OK) { step = 4; goto done; }
  /* A write is refused by SQLite, named. */
  if (nodup_exec(db, "INSERT INTO people (email) VALUES ('bob@example.org')") != NODUP_ERR_DB ||
      strstr(nodup_errmsg(db), "readonly") == NULL) { step = 5; goto done; }
done:
  nodup_scan_free(scan);
  nodup_key_free(key);
  nodup_close(db);
  return step;
}

/* Read-only use stays read-only: a rollback-journal file inspected through
 * NODUP_OPEN_READONLY keeps its mode and gets no -wal file; an ordinary
 * open still switches it to WAL. */
static void test_sqlite_readonly_open_keeps_journal_mode(void **state) {
  char dir[] = "/tmp/nodup-ro-XXXXXX";
  char path[PATH_MAX], wal[PATH_MAX + 8];
  nodup_db *db = NULL;
  (void)state;
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/j.db", dir);
  snprintf(wal, sizeof wal, "%s-wal", path);
  make_journal_file(path);

  assert_int_equal(readonly_session(path), 0);
  expect_journal_mode(path, "delete");
  assert_false(file_exists(wal));

  /* Unknown flag bits are refused, naming them. */
  assert_int_equal(nodup_open_ext(&db, path, 0x80), NODUP_ERR_USAGE);
  assert_non_null(strstr(nodup_errmsg(db), "0x80"));
  nodup_close(db);

  assert_int_equal(nodup_open(&db, path), NODUP_OK);
  nodup_close(db);
  expect_journal_mode(path, "wal");
  unlink(path);
  rmdir(dir);
}

/* The read-only session in a child, which drops to nobody when root. */
static int readonly_child(struct rig_child *child, int index, void *path) {
  (void)index;
  rig_child_ready(child);
  if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) return 100;
  return readonly_session(path);
}

/* On a file and directory the process cannot write, read-only use works.
 * As root permissions do not apply, so a forked child drops to nobody. */
static void test_sqlite_readonly_file_and_directory(void **state) {
  char dir[] = "/tmp/nodup-ro-XXXXXX";
  char path[PATH_MAX];
  int status = -1;
  pid_t pid;
  (void)state;
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/j.db", dir);
  make_journal_file(path);
  assert_int_equal(chmod(path, 0444), 0);
  assert_int_equal(chmod(dir, 0555), 0);
  pid = rig_fork(readonly_child, path);
  status = rig_reap(pid, 0);
  assert_int_not_equal(status, -1);
  chmod(dir, 0755);
  expect_journal_mode(path, "delete");
  unlink(path);
  rmdir(dir);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail_msg("read-only session on a read-only file and directory failed at step %d",
             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}


/* Errors as data: the SQLSTATE and the constraint of the last failure,
 * matched without reading the message; cleared by the next call. */
static void test_errors_as_data(void **state) {
  nodup_db *db = *state;
  nodup_key *key = people_key(db);   /* the harness frees it */
  int pg = harness_is_pg();
  assert_string_equal(nodup_sqlstate(db), "");
  harness_exec(db, "INSERT INTO \"people\" (\"email\") VALUES ('a@x')");
  assert_int_equal(nodup_exec(db, "INSERT INTO \"people\" (\"email\") VALUES ('a@x')"),
                   NODUP_ERR_CONSTRAINT);
  assert_string_equal(nodup_sqlstate(db), "23505");
  /* PostgreSQL names the index; SQLite does not name it in its errors. */
  assert_string_equal(nodup_errconstraint(db), pg ? "people_email_key" : "");
  assert_int_equal(nodup_exec(db, "INSERT INTO \"people\" (\"email\") VALUES (NULL)"),
                   NODUP_ERR_CONSTRAINT);
  assert_string_equal(nodup_sqlstate(db), "23502");
  assert_int_not_equal(nodup_exec(db, "SELECT * FROM \"no_such_table\""), NODUP_OK);
  assert_string_equal(nodup_sqlstate(db), pg ? "42P01" : "HV000");
  assert_string_equal(nodup_errconstraint(db), "");
  assert_int_equal(nodup_exec(db, "SELECT 1"), NODUP_OK);
  assert_string_equal(nodup_sqlstate(db), "");
  assert_string_equal(nodup_errmsg(db), "");
  /* A refusal of nodup's own carries none. */
  key = NULL;
  assert_int_equal(nodup_key_prepare(&key, db, "no_such_table", email_col, 1, NULL),
                   NODUP_ERR_NO_TABLE);
  assert_null(key);
  assert_string_equal(nodup_sqlstate(db), "");
  assert_string_equal(nodup_sqlstate(NULL), "");
  assert_string_equal(nodup_errconstraint(NULL), "");
}


/* nodup_close with a key still open: the key keeps working on the
 * connection, and freeing it closes the connection (ASan and valgrind see
 * a use after free or a leak if either half is wrong). */
static void test_close_with_key_open(void **state) {
  nodup_db *db = *state, *own = NULL;
  nodup_key *key = NULL;
  nodup_result r;
  const char *const vals[] = {"late@x"};
  (void)people_key(db);
  assert_int_equal(nodup_open(&own, harness_url()), NODUP_OK);
  assert_int_equal(nodup_key_prepare(&key, own, "people", email_col, 1, NULL), NODUP_OK);
  nodup_close(own);
  assert_int_equal(nodup_get_or_create(key, vals, NULL, NULL, 0, &r), NODUP_OK);
  assert_int_equal(r.created, 1);
  nodup_key_free(key);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"people\"", NULL), 1);
}


/* Versioned options: the INIT macros and init functions set the version;
 * a struct newer than the library is refused, naming both versions,
 * before anything is written; a zeroed struct reads as version 1. */
static void test_options_versions(void **state) {
  nodup_db *db = *state;
  static const char *const k[] = {"email"};
  nodup_merge_options m = NODUP_MERGE_OPTIONS_INIT, m2;
  nodup_enforce_options e = NODUP_ENFORCE_OPTIONS_INIT;
  nodup_scan_options so;
  nodup_import_options io;
  nodup_slug_options sl;
  nodup_merge_report *mr = NULL;
  nodup_enforce_report *er = NULL;
  nodup_scan_report *sr = NULL;
  (void)people_key(db);
  harness_exec(db, "CREATE TABLE \"dup\" ({id}, \"email\" TEXT)");
  harness_exec(db, "INSERT INTO \"dup\" (\"email\") VALUES ('a'), ('a')");
  assert_int_equal(m.version, NODUP_MERGE_OPTIONS_VERSION);
  assert_int_equal(e.version, NODUP_ENFORCE_OPTIONS_VERSION);
  assert_int_equal(nodup_merge_options_init(&m2, NODUP_MERGE_OPTIONS_VERSION), NODUP_OK);
  assert_int_equal(m2.version, NODUP_MERGE_OPTIONS_VERSION);
  assert_int_equal(m2.batch, 0);
  assert_int_equal(nodup_merge_options_init(&m2, NODUP_MERGE_OPTIONS_VERSION + 1),
                   NODUP_ERR_USAGE);
  assert_int_equal(nodup_merge_options_init(NULL, 1), NODUP_ERR_USAGE);
  assert_int_equal(nodup_scan_options_init(&so, 1), NODUP_OK);
  assert_int_equal(nodup_import_options_init(&io, 1), NODUP_OK);
  assert_int_equal(nodup_slug_options_init(&sl, 1), NODUP_OK);
  assert_int_equal(nodup_enforce_options_init(&e, 0), NODUP_ERR_USAGE);

  /* From a newer header: refused, nothing written (no journal, no index). */
  m.version = NODUP_MERGE_OPTIONS_VERSION + 1;
  assert_int_equal(nodup_merge(&mr, db, "dup", k, 1, NULL, &m), NODUP_ERR_USAGE);
  assert_null(mr);
  assert_non_null(strstr(nodup_errmsg(db), "nodup_merge_options version 2 is newer"));
  nodup_enforce_options_init(&e, NODUP_ENFORCE_OPTIONS_VERSION);
  e.merge = 1;
  e.merge_opt = &m;   /* still a newer version */
  assert_int_equal(nodup_enforce(&er, db, "dup", k, 1, NULL, &e), NODUP_ERR_USAGE);
  assert_null(er);
  assert_non_null(strstr(nodup_errmsg(db), "merge_opt"));
  so.version = NODUP_SCAN_OPTIONS_VERSION + 1;
  assert_int_equal(nodup_scan(&sr, db, "dup", k, 1, NULL, &so), NODUP_ERR_USAGE);
  assert_null(sr);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"dup\"", NULL), 2);

  /* A zeroed struct is version 1: accepted. */
  memset(&m2, 0, sizeof m2);
  assert_int_equal(nodup_merge(&mr, db, "dup", k, 1, NULL, &m2), NODUP_OK);
  assert_int_equal(mr->groups, 1);
  nodup_merge_free(mr);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"dup\"", NULL), 1);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
  const struct CMUnitTest pg_tests[] = {
      T(test_pg_backend),
      T(test_pg_hit_consumes_no_sequence_value),
      T(test_pg_snapshot_isolation_asks_to_retry),
      T(test_pg_read_committed_sees_new_winner),
      T(test_pg_nulls_not_distinct),
      T(test_pg_schema_qualified_table),
      T(test_pg_names_are_case_sensitive),
      T(test_pg_error_at_each_pipeline_position),
      T(test_pg_guard_refusal_is_a_lost_race),
      T(test_errors_as_data),
      T(test_close_with_key_open),
      T(test_options_versions),
  };
  const struct CMUnitTest sqlite_tests[] = {
      T(test_sqlite_connection_settings),
      cmocka_unit_test(test_sqlite_missing_file_is_not_created),
      T(test_sqlite_plain_path_opens_existing_file),
      T(test_sqlite_hit_takes_no_write_lock),
      T(test_sqlite_stale_caller_transaction_asks_to_retry),
      cmocka_unit_test(test_sqlite_readonly_open_keeps_journal_mode),
      cmocka_unit_test(test_sqlite_readonly_file_and_directory),
      T(test_errors_as_data),
      T(test_close_with_key_open),
      T(test_options_versions),
  };
#undef T
  if (harness_is_pg())
    return cmocka_run_group_tests_name("backend_pg", pg_tests, NULL, NULL);
  return cmocka_run_group_tests_name("backend_sqlite", sqlite_tests, NULL, NULL);
}

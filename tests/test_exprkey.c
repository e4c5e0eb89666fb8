/*
 * test_exprkey.c -- expression key terms (lower(email), trim(name),
 * lower(trim(email))) and PostgreSQL's citext, run unchanged against
 * SQLite and PostgreSQL (and PostgreSQL through PgBouncer): check accepts
 * a key an expression index backs and refuses one only a plain index
 * backs, with the DDL; get-or-create and update-or-create find the row
 * whatever the case or the spaces, and the row keeps its first spelling;
 * threads and processes racing on keys that differ only in case create
 * one row per key; scan groups by the expression, merge merges the group
 * (the keeper keeps its spelling, references re-pointed) and enforce
 * builds the expression index; spellings that are not a term are refused
 * by name.
 *
 * What the library wrote is read back through the raw handle.
 */
#include "harness.h"
#include "rig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const lower_email[] = {"lower(email)"};

/* u(email, org_id, name) with `index` (SQL after ON "u"), and o(uid)
 * referencing it. */
static void users(nodup_db *db, const char *index) {
  char sql[512];
  harness_exec(db, "CREATE TABLE \"u\" ({id}, \"email\" TEXT, \"org_id\" INTEGER,"
                   " \"name\" TEXT)");
  if (index) {
    snprintf(sql, sizeof sql, "CREATE UNIQUE INDEX \"u_key\" ON \"u\" %s", index);
    harness_exec(db, sql);
  }
}

static int goc(nodup_db *db, nodup_key *key, const char *email, char *id) {
  const char *vals[] = {email};
  return harness_goc(db, key, vals, NULL, NULL, 0, id);
}

static void test_check_accepts_expression_index(void **state) {
  nodup_db *db = *state;
  static const char *const spellings[][1] = {
      {"lower(email)"}, {"LOWER( \"email\" )"}, {"lower((email))"}};
  char name[128];
  size_t i;
  users(db, "(lower(\"email\"))");
  for (i = 0; i < sizeof spellings / sizeof *spellings; i++) {
    assert_nodup(db, NODUP_OK, nodup_key_check(db, "u", spellings[i], 1, NULL, name, sizeof name));
    assert_string_equal(name, "u_key");
  }
  /* The column itself is another key, which nothing backs. */
  static const char *const plain[] = {"email"};
  assert_int_equal(nodup_key_check(db, "u", plain, 1, NULL, NULL, 0), NODUP_ERR_UNBACKED);
  static const char *const upper[] = {"upper(email)"};
  assert_int_equal(nodup_key_check(db, "u", upper, 1, NULL, NULL, 0), NODUP_ERR_UNBACKED);
}

static void test_check_refuses_with_ddl(void **state) {
  nodup_db *db = *state;
  char ddl[256];
  users(db, "(\"email\")");
  assert_int_equal(nodup_key_check(db, "u", lower_email, 1, NULL, NULL, 0), NODUP_ERR_UNBACKED);
  if (!strstr(nodup_errmsg(db), "CREATE UNIQUE INDEX \"u_lower_email_key\" ON ") ||
      !strstr(nodup_errmsg(db), "(lower(\"email\"));"))
    fail_msg("no DDL in: %s", nodup_errmsg(db));
  assert_true(nodup_key_ddl(db, "u", lower_email, 1, NULL, ddl, sizeof ddl) > 0);
  assert_non_null(strstr(ddl, "(lower(\"email\"));"));
  /* The DDL it gives backs the key. */
  harness_exec(db, ddl);
  assert_nodup(db, NODUP_OK, nodup_key_check(db, "u", lower_email, 1, NULL, NULL, 0));
}

static void test_get_or_create_any_case(void **state) {
  nodup_db *db = *state;
  char first[HARNESS_ID_MAX], id[HARNESS_ID_MAX];
  users(db, "(lower(\"email\"))");
  nodup_key *key = harness_key(db, "u", lower_email, 1, NULL);
  assert_int_equal(goc(db, key, "Foo@X.com", first), 1);
  assert_int_equal(goc(db, key, "foo@x.com", id), 0);
  assert_string_equal(id, first);
  assert_int_equal(goc(db, key, "FOO@X.COM", id), 0);
  assert_string_equal(id, first);
  harness_expect(db, "SELECT \"email\" FROM \"u\"", NULL, "Foo@X.com");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"u\"", NULL), 1);
  /* lower(NULL) is NULL: the NULL rule is the column's. */
  const char *none[] = {NULL};
  nodup_result r;
  assert_int_equal(nodup_get_or_create(key, none, NULL, NULL, 0, &r), NODUP_ERR_NULL_KEY);
}

static void test_trim_and_two_terms(void **state) {
  nodup_db *db = *state;
  static const char *const key2[] = {"lower(trim(email))", "org_id"};
  char first[HARNESS_ID_MAX], id[HARNESS_ID_MAX], other[HARNESS_ID_MAX];
  users(db, "(lower(trim(email)), org_id)");
  nodup_key *key = harness_key(db, "u", key2, 2, NULL);
  const char *a[] = {"  Ann@X.org ", "1"}, *b[] = {"ann@x.ORG", "1"}, *c[] = {"ann@x.org", "2"};
  assert_int_equal(harness_goc(db, key, a, NULL, NULL, 0, first), 1);
  assert_int_equal(harness_goc(db, key, b, NULL, NULL, 0, id), 0);
  assert_string_equal(id, first);
  assert_int_equal(harness_goc(db, key, c, NULL, NULL, 0, other), 1);
  assert_string_not_equal(other, first);
  harness_expect(db, "SELECT \"email\" FROM \"u\" WHERE \"org_id\" = 1", NULL, "  Ann@X.org ");
  /* trim alone is another key: lower(trim(email)) does not back it. */
  static const char *const trim_only[] = {"trim(email)", "org_id"};
  assert_int_equal(nodup_key_check(db, "u", trim_only, 2, NULL, NULL, 0), NODUP_ERR_UNBACKED);
  if (!strstr(nodup_errmsg(db), "Index \"u_key\" is on (lower(trim(\"email\")), org_id)") ||
      !strstr(nodup_errmsg(db), "a key column in another form"))
    fail_msg("the near index is not explained: %s", nodup_errmsg(db));
}

static void test_spellings_refused(void **state) {
  nodup_db *db = *state;
  static const struct {
    const char *term;
    int rc;
    const char *says;
  } bad[] = {
      {"md5(email)", NODUP_ERR_USAGE, "only lower, upper, trim, ltrim and rtrim"},
      {"lower(email, 'x')", NODUP_ERR_USAGE, "one column"},
      {"lower(email", NODUP_ERR_USAGE, "lower(email"},
      {"lower(email) || 'x'", NODUP_ERR_USAGE, "unexpected text"},
      {"lower(nope)", NODUP_ERR_NO_COLUMN, "no column \"nope\""},
  };
  size_t i;
  users(db, "(lower(\"email\"))");
  for (i = 0; i < sizeof bad / sizeof *bad; i++) {
    const char *cols[] = {bad[i].term};
    assert_int_equal(nodup_key_check(db, "u", cols, 1, NULL, NULL, 0), bad[i].rc);
    if (!strstr(nodup_errmsg(db), bad[i].says))
      fail_msg("%s: \"%s\" not in: %s", bad[i].term, bad[i].says, nodup_errmsg(db));
  }
  /* Two terms over one column. */
  static const char *const twice[] = {"lower(email)", "email"};
  assert_int_equal(nodup_key_check(db, "u", twice, 2, NULL, NULL, 0), NODUP_ERR_USAGE);
  assert_non_null(strstr(nodup_errmsg(db), "in the key twice"));
}

/* A column whose name holds parentheses is still a column: a name that is
 * a column is never parsed. */
static void test_column_named_like_expression(void **state) {
  nodup_db *db = *state;
  static const char *const odd[] = {"lower(x)"};
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];
  harness_exec(db, "CREATE TABLE \"w\" ({id}, \"lower(x)\" TEXT, \"x\" TEXT);"
                   "CREATE UNIQUE INDEX \"w_key\" ON \"w\" (\"lower(x)\")");
  nodup_key *key = harness_key(db, "w", odd, 1, NULL);
  assert_int_equal(goc(db, key, "A", id), 1);
  assert_int_equal(goc(db, key, "a", again), 1);   /* a column: case counts */
  assert_string_not_equal(id, again);
}

/* Many keys in one call: spellings of one key in one batch get one id,
 * created for the first only, and a row already there is found. */
static void test_many_keys(void **state) {
  nodup_db *db = *state;
  const char *vals[] = {"Bob@X.org", "ann@x.org", "BOB@x.ORG", "Cy@x.org", "bob@x.org"};
  nodup_result out[5];
  char ann[HARNESS_ID_MAX];
  users(db, "(lower(\"email\"))");
  nodup_key *key = harness_key(db, "u", lower_email, 1, NULL);
  assert_int_equal(goc(db, key, "ANN@X.ORG", ann), 1);
  assert_nodup(db, NODUP_OK, nodup_get_or_create_many(key, 5, vals, NULL, NULL, 0, out));
  assert_int_equal(out[0].created, 1);
  assert_int_equal(out[1].created, 0);
  assert_string_equal(out[1].id, ann);
  assert_int_equal(out[2].created, 0);
  assert_string_equal(out[2].id, out[0].id);
  assert_int_equal(out[3].created, 1);
  assert_string_equal(out[4].id, out[0].id);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"u\"", NULL), 3);
  harness_expect(db, "SELECT \"email\" FROM \"u\" WHERE lower(\"email\") = 'bob@x.org'", NULL,
                 "Bob@X.org");
}

static void test_upsert_expression_key(void **state) {
  nodup_db *db = *state;
  static const char *const scols[] = {"name"};
  const char *v1[] = {"Ann@X.org"}, *v2[] = {"ANN@x.org"};
  const char *s1[] = {"first"}, *s2[] = {"second"};
  nodup_result r;
  char first[HARNESS_ID_MAX];
  int outcome = -1;
  users(db, "(lower(\"email\"))");
  nodup_key *key = harness_key(db, "u", lower_email, 1, NULL);
  assert_nodup(db, NODUP_OK,
               nodup_update_or_create(key, v1, NULL, NULL, 0, scols, s1, 1, &r, &outcome));
  assert_int_equal(outcome, NODUP_CREATED);
  snprintf(first, sizeof first, "%s", r.id);
  assert_nodup(db, NODUP_OK,
               nodup_update_or_create(key, v2, NULL, NULL, 0, scols, s2, 1, &r, &outcome));
  assert_int_equal(outcome, NODUP_UPDATED);
  assert_string_equal(r.id, first);
  assert_nodup(db, NODUP_OK,
               nodup_update_or_create(key, v2, NULL, NULL, 0, scols, s2, 1, &r, &outcome));
  assert_int_equal(outcome, NODUP_UNCHANGED);
  harness_expect(db, "SELECT \"email\" || ' ' || \"name\" FROM \"u\"", NULL, "Ann@X.org second");
}

/* Duplicates that differ only in case and spaces, with references. */
static void duplicates(nodup_db *db) {
  users(db, NULL);
  harness_exec(db, "CREATE TABLE \"o\" ({id}, \"uid\" INTEGER REFERENCES \"u\" (\"id\"));"
                   "INSERT INTO \"u\" (\"email\", \"name\") VALUES ('Foo@X.com', 'a'),"
                   " ('foo@x.com', 'b'), ('bar@x.com', 'c'), ('FOO@X.COM ', 'd'), (NULL, 'e'),"
                   " (NULL, 'f');"
                   "INSERT INTO \"o\" (\"uid\") VALUES (2), (4), (3), (1)");
}

static void test_scan_merge_enforce(void **state) {
  nodup_db *db = *state;
  static const char *const key[] = {"lower(trim(email))"};
  nodup_scan_report *s = NULL;
  nodup_merge_report *m = NULL;
  nodup_enforce_report *e = NULL;
  nodup_enforce_options eo = NODUP_ENFORCE_OPTIONS_INIT;
  long long groups = -1, redundant = -1;
  duplicates(db);
  assert_nodup(db, NODUP_OK, nodup_scan(&s, db, "u", lower_email, 1, NULL, NULL));
  assert_int_equal(s->groups, 1);
  assert_int_equal(s->redundant, 1);   /* 'FOO@X.COM ' has a space: not lower(email)'s */
  nodup_scan_free(s);
  assert_nodup(db, NODUP_OK, nodup_scan(&s, db, "u", key, 1, NULL, NULL));
  assert_int_equal(s->groups, 1);
  assert_int_equal(s->redundant, 2);
  nodup_scan_free(s);
  /* Refused while there are duplicates, with nothing changed. */
  assert_int_equal(nodup_enforce(&e, db, "u", key, 1, NULL, &eo), NODUP_ERR_DUPLICATE);
  nodup_enforce_free(e);
  e = NULL;
  assert_nodup(db, NODUP_OK, nodup_merge(&m, db, "u", key, 1, NULL, NULL));
  assert_int_equal(m->groups, 1);
  nodup_merge_free(m);
  /* The keeper (lowest id) keeps its spelling; the references follow it. */
  harness_expect(db, "SELECT \"email\" FROM \"u\" WHERE \"name\" = 'a'", NULL, "Foo@X.com");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"u\"", NULL), 4);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"o\" WHERE \"uid\" = 1", NULL), 3);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"o\" WHERE \"uid\" = 3", NULL), 1);
  assert_nodup(db, NODUP_OK, nodup_count_duplicates(db, "u", key, 1, NULL, &groups, &redundant));
  assert_int_equal(groups, 0);
  /* enforce builds the expression index, which then backs the key. */
  assert_nodup(db, NODUP_OK, nodup_enforce(&e, db, "u", key, 1, NULL, &eo));
  assert_string_equal(e->index, "u_lower_trim_email_key");
  assert_int_equal(e->constraint, 0);   /* PostgreSQL's constraints take columns only */
  nodup_enforce_free(e);
  char name[128];
  assert_nodup(db, NODUP_OK, nodup_key_check(db, "u", key, 1, NULL, name, sizeof name));
  assert_string_equal(name, "u_lower_trim_email_key");
  /* ... and refuses what it would have merged. */
  assert_int_equal(nodup_exec(db, "INSERT INTO \"u\" (\"email\") VALUES (' FOO@x.com')"),
                   NODUP_ERR_CONSTRAINT);
  /* Again: already there. */
  e = NULL;
  assert_nodup(db, NODUP_OK, nodup_enforce(&e, db, "u", key, 1, NULL, &eo));
  assert_int_equal(e->already, 1);
  nodup_enforce_free(e);
}

/* enforce --merge, and online on PostgreSQL (the guard compares the
 * expression). */
static void test_enforce_merge_online(void **state) {
  nodup_db *db = *state;
  nodup_enforce_report *e = NULL;
  nodup_enforce_options eo = NODUP_ENFORCE_OPTIONS_INIT;
  duplicates(db);
  eo.merge = 1;
  if (harness_is_pg()) eo.mode = NODUP_ENFORCE_ONLINE;
  assert_nodup(db, NODUP_OK, nodup_enforce(&e, db, "u", lower_email, 1, NULL, &eo));
  assert_int_equal(e->merged_groups, 1);
  assert_string_equal(e->index, "u_lower_email_key");
  nodup_enforce_free(e);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"u\"", NULL), 5);
  assert_nodup(db, NODUP_OK, nodup_key_check(db, "u", lower_email, 1, NULL, NULL, 0));
  assert_null(nodup_notice(db));   /* nothing left behind */
}

/* PostgreSQL's citext: a plain column key, case-insensitive by its type. */
static void test_citext(void **state) {
  nodup_db *db = *state;
  static const char *const email[] = {"email"};
  char first[HARNESS_ID_MAX], id[HARNESS_ID_MAX];
  nodup_scan_report *s = NULL;
  nodup_merge_report *m = NULL;
  if (!harness_is_pg()) skip();   /* SQLite has no citext (NOCASE is another test's) */
  if (nodup_exec(db, "CREATE EXTENSION IF NOT EXISTS citext") != NODUP_OK) {
    print_message("skipped: this server has no citext extension: %s\n", nodup_errmsg(db));
    skip();
  }
  harness_exec(db, "CREATE TABLE \"c\" ({id}, \"email\" citext);"
                   "CREATE UNIQUE INDEX \"c_key\" ON \"c\" (\"email\");"
                   "CREATE TABLE \"d\" ({id}, \"email\" citext, \"name\" TEXT);"
                   "CREATE TABLE \"dref\" ({id}, \"did\" BIGINT REFERENCES \"d\" (\"id\"));"
                   "INSERT INTO \"d\" (\"email\", \"name\") VALUES ('Foo@X.com', 'a'),"
                   " ('foo@x.com', 'b'), ('bar', 'c');"
                   "INSERT INTO \"dref\" (\"did\") VALUES (2)");
  nodup_key *key = harness_key(db, "c", email, 1, NULL);
  assert_int_equal(goc(db, key, "Foo@X.com", first), 1);
  assert_int_equal(goc(db, key, "FOO@x.com", id), 0);
  assert_string_equal(id, first);
  harness_expect(db, "SELECT \"email\"::text FROM \"c\"", NULL, "Foo@X.com");
  assert_nodup(db, NODUP_OK, nodup_scan(&s, db, "d", email, 1, NULL, NULL));
  assert_int_equal(s->groups, 1);
  nodup_scan_free(s);
  assert_nodup(db, NODUP_OK, nodup_merge(&m, db, "d", email, 1, NULL, NULL));
  assert_int_equal(m->groups, 1);
  nodup_merge_free(m);
  harness_expect(db, "SELECT \"email\"::text || ' ' || \"name\" FROM \"d\" WHERE \"id\" = 1", NULL,
                 "Foo@X.com a");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"dref\" WHERE \"did\" = 1", NULL), 1);
}

/* ---- races: keys that differ only in case ---- */

#define KEYS 7   /* a child reports its keys in 7 bits of its exit status */
#define OPS 40
#define THREADS 8
#define PROCESSES 6

/* Call op's key: key op % KEYS, spelled by the racer in its own case. */
static void spelled(char *out, size_t size, int racer, int op) {
  static const char *const forms[] = {"User%d@Example.org", "user%d@example.org",
                                      "USER%d@EXAMPLE.ORG", "uSeR%d@eXaMpLe.OrG"};
  snprintf(out, size, forms[(racer + op) % 4], op % KEYS);
}

struct racer {
  nodup_db *db;
  nodup_key *key;
  int index;
  int rc;                     /* first failure, NODUP_OK when none */
  char error[256];
  unsigned char created[OPS];
  char id[OPS][32];
};

static struct racer racers[THREADS];

static void race(struct racer *w) {
  for (int op = 0; op < OPS; op++) {
    char email[64];
    const char *vals[] = {email};
    nodup_result r;
    int rc;
    spelled(email, sizeof email, w->index, op);
    rc = nodup_get_or_create(w->key, vals, NULL, NULL, 0, &r);
    if (rc != NODUP_OK) {
      if (w->rc == NODUP_OK) snprintf(w->error, sizeof w->error, "%s", nodup_errmsg(w->db));
      if (w->rc == NODUP_OK) w->rc = rc;
      continue;
    }
    w->created[op] = (unsigned char)r.created;
    snprintf(w->id[op], sizeof w->id[op], "%s", r.id);
  }
}

static void *racer_thread(void *arg) {
  race(arg);
  return NULL;
}

/* One created per lowered key, every call of a key the same id, and one
 * row per key in the table. */
static void verify(nodup_db *db, const struct racer *w, int n) {
  for (int k = 0; k < KEYS; k++) {
    int created = 0;
    const char *id = NULL;
    for (int i = 0; i < n; i++) {
      if (w[i].rc != NODUP_OK) fail_msg("racer %d: %d %s", i, w[i].rc, w[i].error);
      for (int op = k; op < OPS; op += KEYS) {
        created += w[i].created[op];
        if (!id) id = w[i].id[op];
        else if (strcmp(id, w[i].id[op]) != 0) fail_msg("key %d: ids %s and %s", k, id, w[i].id[op]);
      }
    }
    if (created != 1) fail_msg("key %d: created %d times", k, created);
  }
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"u\"", NULL), KEYS);
}

static void test_threads_case_race(void **state) {
  nodup_db *db = *state;
  users(db, "(lower(\"email\"))");
  memset(racers, 0, sizeof racers);
  for (int i = 0; i < THREADS; i++) {
    racers[i].db = harness_connect();
    racers[i].key = harness_key(racers[i].db, "u", lower_email, 1, NULL);
    racers[i].index = i;
  }
  rig_threads_run(THREADS, racer_thread, racers, sizeof racers[0]);
  verify(db, racers, THREADS);
}

/* A child reports in its exit status: bit k set when it created key k,
 * 128 and up when a call failed or its calls of one key got two ids. */
static int racer_child(struct rig_child *child, int index, void *arg) {
  static struct racer w;
  int created = 0;
  (void)arg;
  memset(&w, 0, sizeof w);
  w.index = index;
  w.rc = nodup_open(&w.db, harness_url());
  if (w.rc == NODUP_OK) w.rc = nodup_key_prepare(&w.key, w.db, "u", lower_email, 1, NULL);
  rig_child_ready(child);
  if (w.rc == NODUP_OK) race(&w);
  for (int op = 0; op < OPS && w.rc == NODUP_OK; op++) {
    if (strcmp(w.id[op], w.id[op % KEYS]) != 0) w.rc = -1;
    if (w.created[op]) created |= 1 << (op % KEYS);
  }
  nodup_key_free(w.key);
  nodup_close(w.db);
  return w.rc == NODUP_OK ? created : 128 + (w.rc & 63);
}

static void test_processes_case_race(void **state) {
  struct rig_procs procs;
  int created[KEYS] = {0};
  users(*state, "(lower(\"email\"))");
  rig_detach(state);
  rig_procs_start(&procs, PROCESSES, racer_child, NULL);
  rig_procs_go(&procs);
  rig_procs_wait(&procs);
  nodup_db *db = rig_reopen(state);
  assert_int_equal(procs.n, PROCESSES);
  for (int i = 0; i < PROCESSES; i++) {
    int st = procs.status[i];
    if (!WIFEXITED(st) || WEXITSTATUS(st) >= 128) fail_msg("child %d: status %d", i, st);
    for (int k = 0; k < KEYS; k++) created[k] += (WEXITSTATUS(st) >> k) & 1;
  }
  for (int k = 0; k < KEYS; k++)
    if (created[k] != 1) fail_msg("key %d: created %d times", k, created[k]);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"u\"", NULL), KEYS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
      T(test_check_accepts_expression_index),
      T(test_check_refuses_with_ddl),
      T(test_get_or_create_any_case),
      T(test_trim_and_two_terms),
      T(test_spellings_refused),
      T(test_column_named_like_expression),
      T(test_many_keys),
      T(test_upsert_expression_key),
      T(test_scan_merge_enforce),
      T(test_enforce_merge_online),
      T(test_citext),
      T(test_threads_case_race),
      T(test_processes_case_race),
#undef T
  };
  return cmocka_run_group_tests_name(harness_is_pooled() ? "exprkey_pgbouncer"
                                     : harness_is_pg()   ? "exprkey_pg"
                                                         : "exprkey_sqlite",
                                     tests, NULL, NULL);
}

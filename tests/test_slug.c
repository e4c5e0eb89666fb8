/*
 * test_slug.c -- nodup_slug_create() on SQLite and PostgreSQL: sequential
 * suffixes from the highest taken one, what counts as a suffix, gaps,
 * reserved words, real concurrency (threads and processes, each with its
 * own connection), per-tenant scopes, a constant statement count at 10,000
 * copies, and the refusals: an unbacked column, another constraint's
 * violation (returned at once, never retried). Then the prepared handle
 * (nodup_slug_prepare / nodup_slug_next): reused for many allocations and
 * scopes at the allocation's statements alone, its refusals, threads each
 * with their own connection and handle, options copied, and a connection
 * closed while handles are open.
 */
#include "harness.h"
#include "rig.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 64
#define PROCESSES 8
#define PER_PROCESS 8

/* Statements per uncontended allocation: the range query and the insert,
 * plus BEGIN IMMEDIATE and COMMIT on SQLite. */
static unsigned long statements_per_attempt(void) { return harness_is_pg() ? 2 : 4; }

static void create_teams(nodup_db *db) {
  harness_exec(db, "CREATE TABLE \"teams\" ({id}, \"slug\" TEXT NOT NULL,"
                   " \"name\" TEXT NOT NULL DEFAULT 'team');"
                   "CREATE UNIQUE INDEX \"teams_slug_key\" ON \"teams\" (\"slug\")");
}

static void create_scoped(nodup_db *db) {
  harness_exec(db, "CREATE TABLE \"projects\" ({id}, \"tenant\" INTEGER NOT NULL,"
                   " \"slug\" TEXT NOT NULL);"
                   "CREATE UNIQUE INDEX \"projects_tenant_slug_key\""
                   " ON \"projects\" (\"tenant\", \"slug\")");
}

/* Create a team slug from `from`, asserting success, and check the row. */
static void expect_slug(nodup_db *db, const char *from, const char *want) {
  nodup_slug_result r = {NULL, NULL, 0, 0};
  char sql[128], slug[128];
  int rc = nodup_slug_create(&r, db, "teams", "slug", NULL, NULL, 0, NULL, NULL, 0,
                             from, NULL);
  if (rc != NODUP_OK) fail_msg("slug of \"%s\": %s: %s", from, nodup_strerror(rc), nodup_errmsg(db));
  snprintf(slug, sizeof slug, "%s", r.slug);
  snprintf(sql, sizeof sql, "SELECT \"slug\" FROM \"teams\" WHERE \"id\" = %s", r.id);
  unsigned attempts = r.attempts;
  unsigned long statements = r.statements;
  nodup_slug_result_free(&r);
  assert_null(r.slug);
  assert_string_equal(slug, want);
  assert_int_equal(attempts, 1);
  assert_int_equal(statements, statements_per_attempt());
  harness_expect(db, sql, NULL, want);
}

static void test_sequential_suffixes(void **state) {
  nodup_db *db = *state;
  create_teams(db);
  expect_slug(db, "My Team", "my-team");
  expect_slug(db, "My Team", "my-team-2");
  expect_slug(db, "my team!", "my-team-3");
  expect_slug(db, "  MY-TEAM  ", "my-team-4");
  expect_slug(db, "Crème Brûlée", "creme-brulee");
  expect_slug(db, "Crème Brûlée", "creme-brulee-2");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"teams\"", NULL), 6);
}

/* Only "<base>-" followed by digits without a leading zero is a suffix. */
static void test_only_digit_suffixes_count(void **state) {
  nodup_db *db = *state;
  create_teams(db);
  harness_exec(db, "INSERT INTO \"teams\" (\"slug\") VALUES ('rap-metal'),"
                   " ('rap-2010-2015'), ('rap-07'), ('rap-0'), ('rap-'), ('rap-9x'),"
                   " ('rapper'), ('rap-metal-5'), ('ra'), ('rap.5')");
  expect_slug(db, "Rap", "rap");
  expect_slug(db, "Rap", "rap-2");
  expect_slug(db, "Rap", "rap-3");
  /* Suffixes compare as numbers, not text: 10 > 9. */
  harness_exec(db, "INSERT INTO \"teams\" (\"slug\") VALUES ('rap-9'), ('rap-10')");
  expect_slug(db, "Rap", "rap-11");
  expect_slug(db, "Rap Metal", "rap-metal-6");
}

/* The range query ranks rows by length and keeps the first copy among the
 * top 32; when more than 32 rows that are not copies ("rap-5-old-1"...)
 * rank above every copy, one exact query more finds it. */
static void test_many_non_copies_rank_first(void **state) {
  nodup_db *db = *state;
  nodup_slug_result r = {NULL, NULL, 0, 0};
  create_teams(db);
  harness_exec(db, "INSERT INTO \"teams\" (\"slug\") VALUES ('rap'), ('rap-2'), ('rap-3')");
  for (int i = 1; i <= 40; i++) {
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO \"teams\" (\"slug\") VALUES ('rap-5-old-%d')", i);
    harness_exec(db, sql);
  }
  assert_nodup(db, NODUP_OK, nodup_slug_create(&r, db, "teams", "slug", NULL, NULL, 0, NULL,
                                               NULL, 0, "Rap", NULL));
  assert_string_equal(r.slug, "rap-4");
  assert_int_equal(r.attempts, 1);
  assert_int_equal(r.statements, statements_per_attempt() + 1);
  nodup_slug_result_free(&r);
  /* 31 of them: the top 32 rows hold a copy, one query is enough. */
  harness_exec(db, "DELETE FROM \"teams\" WHERE \"slug\" LIKE 'rap-5-old-%' AND \"id\" % 4 <> 0");
  assert_true(harness_count(db, "SELECT count(*) FROM \"teams\" WHERE \"slug\" LIKE 'rap-5-old-%'",
                            NULL) < 32);
  expect_slug(db, "Rap", "rap-5");
}

/* Highest taken + 1, not count + 1: a gap stays a gap. */
static void test_deleted_row_leaves_gap(void **state) {
  nodup_db *db = *state;
  create_teams(db);
  expect_slug(db, "My Team", "my-team");
  expect_slug(db, "My Team", "my-team-2");
  expect_slug(db, "My Team", "my-team-3");
  harness_exec(db, "DELETE FROM \"teams\" WHERE \"slug\" = 'my-team-2'");
  expect_slug(db, "My Team", "my-team-4");
  harness_exec(db, "DELETE FROM \"teams\" WHERE \"slug\" = 'my-team'");
  expect_slug(db, "My Team", "my-team-5");
  harness_exec(db, "DELETE FROM \"teams\" WHERE \"slug\" <> 'my-team-5'");
  expect_slug(db, "My Team", "my-team-6");
  harness_exec(db, "DELETE FROM \"teams\"");
  expect_slug(db, "My Team", "my-team");
}

static void test_reserved_and_digits(void **state) {
  nodup_db *db = *state;
  create_teams(db);
  expect_slug(db, "New", "new-2");
  expect_slug(db, "new", "new-3");
  expect_slug(db, "2024", "2024-2");
  expect_slug(db, "2024", "2024-3");
  expect_slug(db, "\xf0\x9f\x98\x80", "n-a");
  expect_slug(db, "!!!", "n-a-2");

  /* A caller's own list replaces the default one. */
  const char *mine[] = {"teams"};
  nodup_slug_options opt = {0};
  opt.reserved = mine;
  opt.nreserved = 1;
  opt.fallback = "unnamed";
  nodup_slug_result r = {NULL, NULL, 0, 0};
  assert_nodup(db, NODUP_OK, nodup_slug_create(&r, db, "teams", "slug", NULL, NULL, 0,
                                               NULL, NULL, 0, "Teams", &opt));
  assert_string_equal(r.slug, "teams-2");
  nodup_slug_result_free(&r);
  assert_nodup(db, NODUP_OK, nodup_slug_create(&r, db, "teams", "slug", NULL, NULL, 0,
                                               NULL, NULL, 0, "Admin", &opt));
  assert_string_equal(r.slug, "admin");
  nodup_slug_result_free(&r);
  assert_nodup(db, NODUP_OK, nodup_slug_create(&r, db, "teams", "slug", NULL, NULL, 0,
                                               NULL, NULL, 0, "", &opt));
  assert_string_equal(r.slug, "unnamed");
  nodup_slug_result_free(&r);
}

/* The base keeps room for the suffix, so it is the same at -2 and -10. */
static void test_max_length(void **state) {
  nodup_db *db = *state;
  nodup_slug_options opt = {0};
  nodup_slug_result r = {NULL, NULL, 0, 0};
  create_teams(db);
  opt.max_length = 20;
  for (int i = 1; i <= 12; i++) {
    char want[32];
    if (i == 1) snprintf(want, sizeof want, "the-quick-fox");
    else snprintf(want, sizeof want, "the-quick-fox-%d", i);
    assert_nodup(db, NODUP_OK,
                 nodup_slug_create(&r, db, "teams", "slug", NULL, NULL, 0, NULL, NULL, 0,
                                   "The quick fox jumps over the lazy dog", &opt));
    assert_string_equal(r.slug, want);
    assert_true(strlen(r.slug) <= 20);
    nodup_slug_result_free(&r);
  }
}

/* Other columns, and the values given for them. */
static void test_set_columns(void **state) {
  nodup_db *db = *state;
  const char *cols[] = {"name"};
  const char *vals[] = {"Ops & Support"};
  nodup_slug_result r = {NULL, NULL, 0, 0};
  create_teams(db);
  assert_nodup(db, NODUP_OK, nodup_slug_create(&r, db, "teams", "slug", NULL, NULL, 0,
                                               cols, vals, 1, vals[0], NULL));
  assert_string_equal(r.slug, "ops-support");
  harness_expect(db, "SELECT \"name\" FROM \"teams\" WHERE \"slug\" = $1", "ops-support",
                 "Ops & Support");
  nodup_slug_result_free(&r);
  /* A column that does not exist. */
  cols[0] = "nope";
  assert_nodup(db, NODUP_ERR_NO_COLUMN,
               nodup_slug_create(&r, db, "teams", "slug", NULL, NULL, 0, cols, vals, 1,
                                 "x", NULL));
  assert_null(r.slug);
  assert_null(r.id);
}

/* ---------------------------------------------------------------------------
 * Concurrency
 */

struct creator {
  nodup_db *db;
  pthread_barrier_t *barrier;
  const char *tenant; /* NULL: the unscoped teams table */
  int rc;
  unsigned attempts;
  char slug[64];
  char error[512];
};

static struct creator creators[THREADS];

static void *creator_main(void *arg) {
  struct creator *c = arg;
  nodup_slug_result r = {NULL, NULL, 0, 0};
  const char *scope_cols[] = {"tenant"};
  const char *scope_vals[] = {c->tenant};
  pthread_barrier_wait(c->barrier);
  if (c->tenant)
    c->rc = nodup_slug_create(&r, c->db, "projects", "slug", scope_cols, scope_vals, 1,
                              NULL, NULL, 0, "My Team", NULL);
  else
    c->rc = nodup_slug_create(&r, c->db, "teams", "slug", NULL, NULL, 0, NULL, NULL, 0,
                              "My Team", NULL);
  c->attempts = r.attempts;
  snprintf(c->slug, sizeof c->slug, "%s", r.slug ? r.slug : "");
  if (c->rc != NODUP_OK)
    snprintf(c->error, sizeof c->error, "%s: %s", nodup_strerror(c->rc),
             nodup_errmsg(c->db));
  nodup_slug_result_free(&r);
  return NULL;
}

/* `n` rows in `table` (where `scope` holds, if given): exactly my-team,
 * my-team-2 ... my-team-n, each once. */
static void expect_sequence(nodup_db *db, const char *table, const char *scope, int n) {
  char sql[256], slug[64];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"%s%s", table,
           scope ? " WHERE " : "", scope ? scope : "");
  assert_int_equal(harness_count(db, sql, NULL), n);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\" WHERE \"slug\" = $1%s%s", table,
           scope ? " AND " : "", scope ? scope : "");
  for (int i = 1; i <= n; i++) {
    if (i == 1) snprintf(slug, sizeof slug, "my-team");
    else snprintf(slug, sizeof slug, "my-team-%d", i);
    if (harness_count(db, sql, slug) != 1) fail_msg("%s: no row with slug %s", table, slug);
  }
}

static void run_creators(const char *const *tenants) {
  pthread_barrier_t barrier;
  memset(creators, 0, sizeof creators);
  assert_int_equal(pthread_barrier_init(&barrier, NULL, THREADS), 0);
  for (int i = 0; i < THREADS; i++) {
    creators[i].db = harness_connect();
    creators[i].barrier = &barrier;
    creators[i].tenant = tenants ? tenants[i % 2] : NULL;
  }
  rig_threads_run(THREADS, creator_main, creators, sizeof creators[0]);
  pthread_barrier_destroy(&barrier);
  unsigned retried = 0;
  for (int i = 0; i < THREADS; i++) {
    if (creators[i].rc != NODUP_OK) fail_msg("creator %d: %s", i, creators[i].error);
    if (creators[i].attempts > 1) retried++;
    for (int j = 0; j < i; j++)
      if (creators[i].tenant == creators[j].tenant &&
          strcmp(creators[i].slug, creators[j].slug) == 0)
        fail_msg("creators %d and %d both got %s", j, i, creators[i].slug);
  }
  print_message("%u of %d creators lost a race and retried\n", retried, THREADS);
}

static void test_threads_same_text(void **state) {
  nodup_db *db = *state;
  create_teams(db);
  run_creators(NULL);
  expect_sequence(db, "teams", NULL, THREADS);
}

static void test_threads_scoped(void **state) {
  nodup_db *db = *state;
  const char *tenants[] = {"1", "2"};
  create_scoped(db);
  run_creators(tenants);
  expect_sequence(db, "projects", "\"tenant\" = 1", THREADS / 2);
  expect_sequence(db, "projects", "\"tenant\" = 2", THREADS / 2);
}

/* A child: its own connection, PER_PROCESS creations once the gate opens.
 * No cmocka in here; the exit status says how it went. */
static int creator_child(struct rig_child *child, int index, void *ctx) {
  nodup_db *db = NULL;
  (void)index;
  (void)ctx;
  int rc = nodup_open(&db, harness_url());
  rig_child_ready(child);
  for (int i = 0; rc == NODUP_OK && i < PER_PROCESS; i++) {
    nodup_slug_result r = {NULL, NULL, 0, 0};
    rc = nodup_slug_create(&r, db, "teams", "slug", NULL, NULL, 0, NULL, NULL, 0,
                           "My Team", NULL);
    nodup_slug_result_free(&r);
  }
  if (rc != NODUP_OK) fprintf(stderr, "child: %s: %s\n", nodup_strerror(rc), nodup_errmsg(db));
  nodup_close(db);
  return rc == NODUP_OK ? 0 : 1;
}

static void test_processes_same_text(void **state) {
  struct rig_procs procs;
  create_teams(*state);
  rig_detach(state);
  rig_procs_start(&procs, PROCESSES, creator_child, NULL);
  rig_procs_go(&procs); /* everyone starts now */
  int ok = rig_procs_wait(&procs) == PROCESSES;
  nodup_db *db = rig_reopen(state);
  if (!ok || procs.n != PROCESSES) fail_msg("%d of %d children forked, some failed", procs.n, PROCESSES);
  expect_sequence(db, "teams", NULL, PROCESSES * PER_PROCESS);
}

/* ---------------------------------------------------------------------------
 * Cost at any N
 */

static void test_ten_thousand_copies(void **state) {
  nodup_db *db = *state;
  nodup_slug_result r = {NULL, NULL, 0, 0};
  create_teams(db);
  /* The cost of the first allocation, for comparison. */
  assert_nodup(db, NODUP_OK, nodup_slug_create(&r, db, "teams", "slug", NULL, NULL, 0,
                                               NULL, NULL, 0, "Other", NULL));
  unsigned long first = r.statements;
  nodup_slug_result_free(&r);
  harness_exec(db, harness_pick(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)"
      " INSERT INTO \"teams\" (\"slug\") SELECT CASE WHEN i = 1 THEN 'my-team'"
      " ELSE 'my-team-' || i END FROM n",
      "INSERT INTO \"teams\" (\"slug\") SELECT CASE WHEN i = 1 THEN 'my-team'"
      " ELSE 'my-team-' || i END FROM generate_series(1, 10000) AS i"));
  assert_nodup(db, NODUP_OK, nodup_slug_create(&r, db, "teams", "slug", NULL, NULL, 0,
                                               NULL, NULL, 0, "My Team", NULL));
  assert_string_equal(r.slug, "my-team-10001");
  assert_int_equal(r.attempts, 1);
  assert_int_equal(r.statements, first);
  assert_true(r.statements <= statements_per_attempt());
  nodup_slug_result_free(&r);
  assert_nodup(db, NODUP_OK, nodup_slug_create(&r, db, "teams", "slug", NULL, NULL, 0,
                                               NULL, NULL, 0, "My Team", NULL));
  assert_string_equal(r.slug, "my-team-10002");
  assert_int_equal(r.statements, first);
  nodup_slug_result_free(&r);
}

/* ---------------------------------------------------------------------------
 * Refusals
 */

static void test_unbacked_refused(void **state) {
  nodup_db *db = *state;
  nodup_slug_result r = {NULL, NULL, 0, 0};
  const char *scope_cols[] = {"tenant"};
  const char *scope_vals[] = {"1"};
  harness_exec(db, "CREATE TABLE \"loose\" ({id}, \"slug\" TEXT NOT NULL)");
  assert_nodup(db, NODUP_ERR_UNBACKED,
               nodup_slug_create(&r, db, "loose", "slug", NULL, NULL, 0, NULL, NULL, 0,
                                 "My Team", NULL));
  assert_contains(nodup_errmsg(db), "CREATE UNIQUE INDEX");
  assert_null(r.slug);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"loose\"", NULL), 0);

  /* A scoped slug needs the index on (scope, slug): the slug alone is not it. */
  harness_exec(db, "CREATE TABLE \"tenanted\" ({id}, \"tenant\" INTEGER NOT NULL,"
                   " \"slug\" TEXT NOT NULL);"
                   "CREATE UNIQUE INDEX \"tenanted_slug\" ON \"tenanted\" (\"slug\")");
  assert_nodup(db, NODUP_ERR_UNBACKED,
               nodup_slug_create(&r, db, "tenanted", "slug", scope_cols, scope_vals, 1,
                                 NULL, NULL, 0, "My Team", NULL));
  assert_contains(nodup_errmsg(db), "(\"tenant\", \"slug\")");
  /* Nor the other way round: an index on (scope, slug) for an unscoped one. */
  create_scoped(db);
  assert_nodup(db, NODUP_ERR_UNBACKED,
               nodup_slug_create(&r, db, "projects", "slug", NULL, NULL, 0, NULL, NULL, 0,
                                 "My Team", NULL));
  assert_nodup(db, NODUP_ERR_NO_TABLE,
               nodup_slug_create(&r, db, "nowhere", "slug", NULL, NULL, 0, NULL, NULL, 0,
                                 "My Team", NULL));
  assert_nodup(db, NODUP_ERR_NO_COLUMN,
               nodup_slug_create(&r, db, "loose", "handle", NULL, NULL, 0, NULL, NULL, 0,
                                 "My Team", NULL));
}

/* NOT NULL on a --set column, and another unique index: returned at once as
 * CONSTRAINT, never retried as if the slug were taken. */
static void test_other_constraint_not_retried(void **state) {
  nodup_db *db = *state;
  nodup_slug_result r = {NULL, NULL, 0, 0};
  const char *cols[] = {"name"};
  const char *null_val[] = {NULL};
  const char *dup_val[] = {"taken"};
  create_teams(db);
  harness_exec(db, "CREATE UNIQUE INDEX \"teams_name_key\" ON \"teams\" (\"name\")");
  assert_nodup(db, NODUP_ERR_CONSTRAINT,
               nodup_slug_create(&r, db, "teams", "slug", NULL, NULL, 0, cols, null_val, 1,
                                 "My Team", NULL));
  assert_int_equal(r.attempts, 1);
  assert_null(r.slug);
  assert_contains(nodup_errmsg(db), "name");
  assert_false(harness_in_transaction(db));

  assert_nodup(db, NODUP_OK, nodup_slug_create(&r, db, "teams", "slug", NULL, NULL, 0,
                                               cols, dup_val, 1, "My Team", NULL));
  nodup_slug_result_free(&r);
  assert_nodup(db, NODUP_ERR_CONSTRAINT,
               nodup_slug_create(&r, db, "teams", "slug", NULL, NULL, 0, cols, dup_val, 1,
                                 "My Team", NULL));
  assert_int_equal(r.attempts, 1);
  assert_contains(nodup_errmsg(db), "name");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"teams\"", NULL), 1);
}

static void test_null_scope_refused(void **state) {
  nodup_db *db = *state;
  nodup_slug_result r = {NULL, NULL, 0, 0};
  const char *scope_cols[] = {"tenant"};
  const char *scope_vals[] = {NULL};
  harness_exec(db, "CREATE TABLE \"maybe\" ({id}, \"tenant\" INTEGER,"
                   " \"slug\" TEXT NOT NULL);"
                   "CREATE UNIQUE INDEX \"maybe_key\" ON \"maybe\" (\"tenant\", \"slug\")");
  assert_nodup(db, NODUP_ERR_NULL_KEY,
               nodup_slug_create(&r, db, "maybe", "slug", scope_cols, scope_vals, 1, NULL,
                                 NULL, 0, "My Team", NULL));
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"maybe\"", NULL), 0);
}

static void test_usage_errors(void **state) {
  nodup_db *db = *state;
  nodup_slug_result r = {NULL, NULL, 0, 0};
  nodup_slug_options opt = {0};
  create_teams(db);
  assert_int_equal(nodup_slug_create(NULL, db, "teams", "slug", NULL, NULL, 0, NULL, NULL,
                                     0, "x", NULL),
                   NODUP_ERR_USAGE);
  assert_nodup(db, NODUP_ERR_USAGE, nodup_slug_create(&r, db, "teams", "slug", NULL, NULL,
                                                      0, NULL, NULL, 0, NULL, NULL));
  opt.max_length = 5;
  assert_nodup(db, NODUP_ERR_USAGE, nodup_slug_create(&r, db, "teams", "slug", NULL, NULL,
                                                      0, NULL, NULL, 0, "x", &opt));
  nodup_slug_result_free(NULL);
}

/* ---------------------------------------------------------------------------
 * The prepared handle
 */

/* Handles a test holds across its assertions: freed by slug_teardown
 * (before the harness closes their connections), so a failed assertion
 * leaks nothing. */
static nodup_slug *held[4];

static nodup_slug *hold(nodup_slug *s) {
  for (size_t i = 0; i < COUNT_OF(held); i++)
    if (!held[i]) return held[i] = s;
  fail_msg("more than %zu handles held", COUNT_OF(held));
  return NULL;
}

static void release(nodup_slug *s) {
  for (size_t i = 0; i < COUNT_OF(held); i++)
    if (held[i] == s) held[i] = NULL;
  nodup_slug_free(s);
}

static int slug_teardown(void **state) {
  for (size_t i = 0; i < COUNT_OF(held); i++) {
    nodup_slug_free(held[i]);
    held[i] = NULL;
  }
  return harness_teardown(state);
}

/* nodup_slug_prepare, asserting success; the handle is held. */
static nodup_slug *prepare(nodup_db *db, const char *table, const char *const *scope_cols,
                           size_t nscope, const char *const *set_cols, size_t nset,
                           const nodup_slug_options *opt) {
  nodup_slug *s = NULL;
  assert_nodup(db, NODUP_OK, nodup_slug_prepare(&s, db, table, "slug", scope_cols, nscope,
                                                set_cols, nset, opt));
  assert_non_null(s);
  return hold(s);
}

/* One allocation through `s`, asserting success in one attempt at the
 * allocation's statements alone and the slug `want`; its id into `id`. */
static void expect_next(nodup_db *db, nodup_slug *s, const char *const *scope_vals,
                        const char *const *set_vals, const char *from, const char *want,
                        char *id) {
  nodup_slug_result r = {NULL, NULL, 0, 0};
  char slug[128];
  int rc = nodup_slug_next(&r, s, scope_vals, set_vals, from);
  if (rc != NODUP_OK) fail_msg("slug of \"%s\": %s: %s", from, nodup_strerror(rc), nodup_errmsg(db));
  snprintf(slug, sizeof slug, "%s", r.slug);
  if (id) snprintf(id, HARNESS_ID_MAX, "%s", r.id);
  unsigned attempts = r.attempts;
  unsigned long statements = r.statements;
  nodup_slug_result_free(&r);
  assert_string_equal(slug, want);
  assert_int_equal(attempts, 1);
  assert_int_equal(statements, statements_per_attempt());
}

/* One handle, many allocations: the same text, other texts between, after
 * deletes, and at 10,000 copies; each its statements alone (2 on
 * PostgreSQL), each row as the one-call form would make it. */
static void test_handle_many_allocations(void **state) {
  nodup_db *db = *state;
  char id[HARNESS_ID_MAX], want[32];
  create_teams(db);
  nodup_slug *s = prepare(db, "teams", NULL, 0, NULL, 0, NULL);
  for (int i = 1; i <= 50; i++) {
    if (i == 1) snprintf(want, sizeof want, "my-team");
    else snprintf(want, sizeof want, "my-team-%d", i);
    expect_next(db, s, NULL, NULL, "My Team", want, id);
    harness_expect(db, "SELECT \"slug\" FROM \"teams\" WHERE \"id\" = CAST($1 AS INTEGER)", id,
                   want);
    if (i % 10) continue;
    /* Another text between: its own sequence. */
    if (i == 10) snprintf(want, sizeof want, "creme-brulee");
    else snprintf(want, sizeof want, "creme-brulee-%d", i / 10);
    expect_next(db, s, NULL, NULL, "Crème Brûlée", want, NULL);
  }
  expect_next(db, s, NULL, NULL, "New", "new-2", NULL);
  /* Highest taken + 1 through the handle too. */
  harness_exec(db, "DELETE FROM \"teams\" WHERE \"slug\" = 'my-team-50'");
  expect_next(db, s, NULL, NULL, "My Team", "my-team-50", NULL);
  harness_exec(db, "DELETE FROM \"teams\" WHERE \"slug\" = 'my-team-49'");
  expect_next(db, s, NULL, NULL, "My Team", "my-team-51", NULL);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"teams\"", NULL), 50 + 5 + 1);
  /* The same statements at 10,000 copies. */
  harness_exec(db, harness_pick(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)"
      " INSERT INTO \"teams\" (\"slug\") SELECT 'big-' || i FROM n",
      "INSERT INTO \"teams\" (\"slug\") SELECT 'big-' || i FROM generate_series(1, 10000) AS i"));
  harness_exec(db, "INSERT INTO \"teams\" (\"slug\") VALUES ('big')");
  expect_next(db, s, NULL, NULL, "Big", "big-10001", NULL);
  expect_next(db, s, NULL, NULL, "Big", "big-10002", NULL);
  release(s);
}

/* One handle, many scopes: each tenant its own sequence; set columns
 * written with each allocation's values. */
static void test_handle_scopes_and_set_columns(void **state) {
  nodup_db *db = *state;
  const char *scope_cols[] = {"tenant"};
  const char *set_cols[] = {"name"};
  char id[HARNESS_ID_MAX], want[32];
  harness_exec(db, "CREATE TABLE \"boards\" ({id}, \"tenant\" INTEGER NOT NULL,"
                   " \"slug\" TEXT NOT NULL, \"name\" TEXT NOT NULL);"
                   "CREATE UNIQUE INDEX \"boards_tenant_slug\" ON \"boards\" (\"tenant\", \"slug\")");
  nodup_slug *s = prepare(db, "boards", scope_cols, 1, set_cols, 1, NULL);
  for (int i = 1; i <= 4; i++)
    for (int t = 1; t <= 3; t++) {
      char tenant[8], name[32];
      snprintf(tenant, sizeof tenant, "%d", t);
      snprintf(name, sizeof name, "Road Map %d/%d", t, i);
      const char *scope_vals[] = {tenant}, *set_vals[] = {name};
      if (i == 1) snprintf(want, sizeof want, "road-map");
      else snprintf(want, sizeof want, "road-map-%d", i);
      expect_next(db, s, scope_vals, set_vals, "Road Map", want, id);
      harness_expect(db, "SELECT \"name\" FROM \"boards\" WHERE \"id\" = CAST($1 AS INTEGER)",
                     id, name);
    }
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"boards\" WHERE \"tenant\" = 2",
                                 NULL), 4);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"boards\"", NULL), 12);
  release(s);
}

/* Refusals at prepare (nothing is made) and at each allocation (the
 * handle stays usable). */
static void test_handle_refusals(void **state) {
  nodup_db *db = *state;
  nodup_slug *s = (nodup_slug *)&s;  /* not NULL: prepare must set it */
  nodup_slug_result r = {NULL, NULL, 0, 0};
  const char *scope_cols[] = {"tenant"};
  const char *cols[] = {"name"};
  nodup_slug_options opt = {0};

  /* An unbacked key is refused at prepare, with the DDL. */
  harness_exec(db, "CREATE TABLE \"loose\" ({id}, \"slug\" TEXT NOT NULL)");
  assert_nodup(db, NODUP_ERR_UNBACKED,
               nodup_slug_prepare(&s, db, "loose", "slug", NULL, 0, NULL, 0, NULL));
  assert_null(s);
  assert_contains(nodup_errmsg(db), "CREATE UNIQUE INDEX");
  harness_exec(db, "CREATE TABLE \"tenanted\" ({id}, \"tenant\" INTEGER NOT NULL,"
                   " \"slug\" TEXT NOT NULL);"
                   "CREATE UNIQUE INDEX \"tenanted_slug\" ON \"tenanted\" (\"slug\")");
  assert_nodup(db, NODUP_ERR_UNBACKED,
               nodup_slug_prepare(&s, db, "tenanted", "slug", scope_cols, 1, NULL, 0, NULL));
  assert_contains(nodup_errmsg(db), "(\"tenant\", \"slug\")");
  create_teams(db);
  assert_nodup(db, NODUP_ERR_NO_TABLE,
               nodup_slug_prepare(&s, db, "nowhere", "slug", NULL, 0, NULL, 0, NULL));
  /* A set column the table lacks, or one in the key: at prepare, too. */
  cols[0] = "nope";
  assert_nodup(db, NODUP_ERR_NO_COLUMN,
               nodup_slug_prepare(&s, db, "teams", "slug", NULL, 0, cols, 1, NULL));
  cols[0] = "slug";
  assert_nodup(db, NODUP_ERR_USAGE,
               nodup_slug_prepare(&s, db, "teams", "slug", NULL, 0, cols, 1, NULL));
  assert_null(s);
  /* Arguments. */
  assert_int_equal(nodup_slug_prepare(NULL, db, "teams", "slug", NULL, 0, NULL, 0, NULL),
                   NODUP_ERR_USAGE);
  assert_int_equal(nodup_slug_prepare(&s, NULL, "teams", "slug", NULL, 0, NULL, 0, NULL),
                   NODUP_ERR_USAGE);
  assert_nodup(db, NODUP_ERR_USAGE,
               nodup_slug_prepare(&s, db, "teams", NULL, NULL, 0, NULL, 0, NULL));
  assert_nodup(db, NODUP_ERR_USAGE,
               nodup_slug_prepare(&s, db, "teams", "slug", NULL, 1, NULL, 0, NULL));
  opt.max_length = 5;
  assert_nodup(db, NODUP_ERR_USAGE,
               nodup_slug_prepare(&s, db, "teams", "slug", NULL, 0, NULL, 0, &opt));
  assert_contains(nodup_errmsg(db), "max_length 5");
  assert_null(s);
  assert_int_equal(nodup_slug_next(NULL, NULL, NULL, NULL, "x"), NODUP_ERR_USAGE);
  assert_int_equal(nodup_slug_next(&r, NULL, NULL, NULL, "x"), NODUP_ERR_USAGE);
  nodup_slug_free(NULL);

  /* Another constraint's violation: at once, never retried; then the
   * handle goes on. */
  harness_exec(db, "CREATE UNIQUE INDEX \"teams_name_key\" ON \"teams\" (\"name\")");
  cols[0] = "name";
  s = prepare(db, "teams", NULL, 0, cols, 1, NULL);
  const char *taken[] = {"taken"}, *null_val[] = {NULL}, *other[] = {"other"};
  expect_next(db, s, NULL, taken, "My Team", "my-team", NULL);
  assert_nodup(db, NODUP_ERR_CONSTRAINT, nodup_slug_next(&r, s, NULL, taken, "My Team"));
  assert_int_equal(r.attempts, 1);
  assert_null(r.slug);
  assert_null(r.id);
  assert_contains(nodup_errmsg(db), "name");
  assert_false(harness_in_transaction(db));
  assert_nodup(db, NODUP_ERR_CONSTRAINT, nodup_slug_next(&r, s, NULL, null_val, "My Team"));
  assert_int_equal(r.attempts, 1);
  assert_nodup(db, NODUP_ERR_USAGE, nodup_slug_next(&r, s, NULL, taken, NULL));
  assert_nodup(db, NODUP_ERR_USAGE, nodup_slug_next(&r, s, NULL, NULL, "My Team"));
  expect_next(db, s, NULL, other, "My Team", "my-team-2", NULL);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"teams\"", NULL), 2);
  release(s);

  /* A NULL scope value where the index treats NULLs as distinct: refused
   * at the allocation, the handle still usable. */
  harness_exec(db, "CREATE TABLE \"maybe\" ({id}, \"tenant\" INTEGER,"
                   " \"slug\" TEXT NOT NULL);"
                   "CREATE UNIQUE INDEX \"maybe_key\" ON \"maybe\" (\"tenant\", \"slug\")");
  s = prepare(db, "maybe", scope_cols, 1, NULL, 0, NULL);
  const char *no_tenant[] = {NULL}, *tenant[] = {"7"};
  assert_nodup(db, NODUP_ERR_NULL_KEY, nodup_slug_next(&r, s, no_tenant, NULL, "My Team"));
  assert_contains(nodup_errmsg(db), "tenant");
  assert_null(r.slug);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"maybe\"", NULL), 0);
  expect_next(db, s, tenant, NULL, "My Team", "my-team", NULL);
  release(s);
}

/* The options are copied: the caller's strings may change or go. */
static void test_handle_copies_options(void **state) {
  nodup_db *db = *state;
  char word[16] = "teams", fallback[16] = "unnamed";
  const char *mine[] = {word};
  nodup_slug_options opt = {0};
  create_teams(db);
  opt.reserved = mine;
  opt.nreserved = 1;
  opt.fallback = fallback;
  opt.max_length = 20;
  nodup_slug *s = prepare(db, "teams", NULL, 0, NULL, 0, &opt);
  strcpy(word, "xxxxx");
  strcpy(fallback, "zzzzz");
  mine[0] = NULL;
  memset(&opt, 0, sizeof opt);
  expect_next(db, s, NULL, NULL, "Teams", "teams-2", NULL);
  expect_next(db, s, NULL, NULL, "Admin", "admin", NULL);
  expect_next(db, s, NULL, NULL, "!!!", "unnamed", NULL);
  expect_next(db, s, NULL, NULL, "The quick fox jumps over the lazy dog", "the-quick-fox", NULL);
  release(s);
  /* A reserved list of no words reserves nothing, also once copied. */
  opt.reserved = mine;
  opt.nreserved = 0;
  s = prepare(db, "teams", NULL, 0, NULL, 0, &opt);
  expect_next(db, s, NULL, NULL, "New", "new", NULL);
  release(s);
}

/* nodup_close with a handle (and a key) open only marks the connection:
 * the handle keeps working, and the last free closes it. Under ASan and
 * valgrind a leak or a use after free here fails the run. */
static void test_handle_outlives_close(void **state) {
  nodup_db *db = NULL;
  nodup_slug *s = NULL;
  nodup_key *key = NULL;
  nodup_slug_result r = {NULL, NULL, 0, 0};
  const char *key_cols[] = {"slug"};
  create_teams(*state);
  assert_int_equal(nodup_open(&db, harness_url()), NODUP_OK);
  assert_nodup(db, NODUP_OK, nodup_slug_prepare(&s, db, "teams", "slug", NULL, 0, NULL, 0, NULL));
  nodup_close(db);
  int rc = nodup_slug_next(&r, s, NULL, NULL, "My Team");
  char slug[32];
  snprintf(slug, sizeof slug, "%s", r.slug ? r.slug : "");
  nodup_slug_result_free(&r);
  nodup_slug_free(s);  /* closes db */
  assert_int_equal(rc, NODUP_OK);
  assert_string_equal(slug, "my-team");

  /* A key and a handle: whichever is freed last closes it. */
  db = NULL;
  s = NULL;
  assert_int_equal(nodup_open(&db, harness_url()), NODUP_OK);
  rc = nodup_slug_prepare(&s, db, "teams", "slug", NULL, 0, NULL, 0, NULL);
  if (rc == NODUP_OK) rc = nodup_key_prepare(&key, db, "teams", key_cols, 1, NULL);
  nodup_close(db);
  nodup_key_free(key);
  if (rc == NODUP_OK) rc = nodup_slug_next(&r, s, NULL, NULL, "My Team");
  nodup_slug_result_free(&r);
  nodup_slug_free(s);
  assert_int_equal(rc, NODUP_OK);
  assert_int_equal(harness_count(*state, "SELECT count(*) FROM \"teams\"", NULL), 2);
}

/* Inside the caller's transaction: the allocation is the caller's to keep
 * or roll back, and the handle survives the rollback. */
static void test_handle_in_caller_transaction(void **state) {
  nodup_db *db = *state;
  create_teams(db);
  nodup_slug *s = prepare(db, "teams", NULL, 0, NULL, 0, NULL);
  harness_exec(db, "BEGIN");
  expect_next(db, s, NULL, NULL, "My Team", "my-team", NULL);
  expect_next(db, s, NULL, NULL, "My Team", "my-team-2", NULL);
  harness_exec(db, "ROLLBACK");
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"teams\"", NULL), 0);
  expect_next(db, s, NULL, NULL, "My Team", "my-team", NULL);
  release(s);
}

/* Threads, each with its own connection and handle, allocating in two
 * tenants through one handle: every slug once per tenant, no gap. */
#define HANDLE_THREADS 16
#define PER_THREAD 8

struct allocator {
  nodup_db *db;
  pthread_barrier_t *barrier;
  int rc;
  unsigned retried;
  unsigned long max_statements;
  char slugs[PER_THREAD][32];
  char error[512];
};

static struct allocator allocators[HANDLE_THREADS];

static void *allocator_main(void *arg) {
  struct allocator *a = arg;
  const char *scope_cols[] = {"tenant"};
  nodup_slug *s = NULL;
  a->rc = nodup_slug_prepare(&s, a->db, "projects", "slug", scope_cols, 1, NULL, 0, NULL);
  pthread_barrier_wait(a->barrier);
  for (int i = 0; a->rc == NODUP_OK && i < PER_THREAD; i++) {
    const char *scope_vals[] = {i % 2 ? "2" : "1"};
    nodup_slug_result r = {NULL, NULL, 0, 0};
    a->rc = nodup_slug_next(&r, s, scope_vals, NULL, "My Team");
    if (a->rc == NODUP_OK) snprintf(a->slugs[i], sizeof a->slugs[i], "%s", r.slug);
    if (r.attempts > 1) a->retried++;
    else if (r.statements > a->max_statements) a->max_statements = r.statements;
    nodup_slug_result_free(&r);
  }
  if (a->rc != NODUP_OK)
    snprintf(a->error, sizeof a->error, "%s: %s", nodup_strerror(a->rc), nodup_errmsg(a->db));
  nodup_slug_free(s);
  return NULL;
}

static void test_handle_threads(void **state) {
  nodup_db *db = *state;
  pthread_barrier_t barrier;
  unsigned retried = 0;
  create_scoped(db);
  memset(allocators, 0, sizeof allocators);
  assert_int_equal(pthread_barrier_init(&barrier, NULL, HANDLE_THREADS), 0);
  for (int i = 0; i < HANDLE_THREADS; i++) {
    allocators[i].db = harness_connect();
    allocators[i].barrier = &barrier;
  }
  rig_threads_run(HANDLE_THREADS, allocator_main, allocators, sizeof allocators[0]);
  pthread_barrier_destroy(&barrier);
  for (int i = 0; i < HANDLE_THREADS; i++) {
    if (allocators[i].rc != NODUP_OK) fail_msg("allocator %d: %s", i, allocators[i].error);
    retried += allocators[i].retried;
    /* An uncontended allocation is its statements alone. */
    assert_true(allocators[i].max_statements <= statements_per_attempt());
  }
  print_message("%u of %d allocations lost a race and retried\n", retried,
                HANDLE_THREADS * PER_THREAD);
  expect_sequence(db, "projects", "\"tenant\" = 1", HANDLE_THREADS * PER_THREAD / 2);
  expect_sequence(db, "projects", "\"tenant\" = 2", HANDLE_THREADS * PER_THREAD / 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
      T(test_sequential_suffixes),
      T(test_only_digit_suffixes_count),
      T(test_many_non_copies_rank_first),
      T(test_deleted_row_leaves_gap),
      T(test_reserved_and_digits),
      T(test_max_length),
      T(test_set_columns),
      T(test_threads_same_text),
      T(test_threads_scoped),
      T(test_processes_same_text),
      T(test_ten_thousand_copies),
      T(test_unbacked_refused),
      T(test_other_constraint_not_retried),
      T(test_null_scope_refused),
      T(test_usage_errors),
#undef T
#define H(f) cmocka_unit_test_setup_teardown(f, harness_setup, slug_teardown)
      H(test_handle_many_allocations),
      H(test_handle_scopes_and_set_columns),
      H(test_handle_refusals),
      H(test_handle_copies_options),
      H(test_handle_outlives_close),
      H(test_handle_in_caller_transaction),
      H(test_handle_threads),
#undef H
  };
  return cmocka_run_group_tests_name(harness_is_pg() ? "slug_pg" : "slug_sqlite", tests,
                                     NULL, NULL);
}

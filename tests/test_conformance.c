/*
 * test_conformance.c -- what every backend must do, asked through struct
 * nodup_backend and the db_* wrappers as the feature files ask it. One
 * test list, run unchanged against each backend (conformance_sqlite,
 * conformance_pg, conformance_pgbouncer): a third backend passes it before
 * anything above the boundary is tried on it.
 *
 * Capabilities are checked against behaviour: a backend claiming one must
 * do what the flag promises, and one without it must refuse, so a flag
 * cannot be set (or left out) by mistake. Nothing here asks which backend
 * answers.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* `sql` with ?N turned into the backend's placeholders, as the library's
 * shared statements are written. Owned by b. */
static const char *sqlp(buf *b, const nodup_db *db, const char *sql) {
  const char *s;
  buf_reset(b);
  for (s = sql; *s; s++) buf_putc(b, *s == '?' ? db->be->placeholder : *s);
  assert_false(b->oom);
  return buf_str(b);
}

/* One value of one query (first column, first row; "" for none). */
static char *one(nodup_db *db, const char *sql, const char *const *p, int n) {
  buf q, out;
  char *r;
  buf_init(&q);
  buf_init(&out);
  assert_int_equal(db->be->query(db, sqlp(&q, db, sql), p, n, db_read_text, &out), NODUP_OK);
  r = nodup_strdup(buf_str(&out));
  buf_free(&q);
  buf_free(&out);
  assert_non_null(r);
  return r;
}

static void expect_one(nodup_db *db, const char *sql, const char *const *p, int n,
                       const char *want) {
  char *got = one(db, sql, p, n);
  assert_string_equal(got, want);
  free(got);
}

/* people: id, email (unique), name, live; a partial unique index on name
 * among the live rows; a composite unique (name, email). */
static const char people_sql[] =
    "CREATE TABLE people ({id}, email TEXT NOT NULL, name TEXT, live INTEGER);"
    "CREATE UNIQUE INDEX people_email_key ON people (email);"
    "CREATE UNIQUE INDEX people_live_name ON people (name) WHERE live = 1;"
    "CREATE UNIQUE INDEX people_name_email ON people (name, email)";

static void people(nodup_db *db) { harness_exec(db, people_sql); }

/* ---- the table itself ---- */

/* Every member a feature file calls without checking is there, and the
 * optional ones come in the groups that work together. */
static void test_members(void **state) {
  nodup_db *db = *state;
  const struct nodup_backend *be = db->be;
  assert_non_null(be->name);
  assert_true(be->placeholder == '$' || be->placeholder == '?');
  assert_non_null(be->accepts);
  assert_non_null(be->predicate_guard);
  assert_non_null(be->connect);
  assert_non_null(be->disconnect);
  assert_non_null(be->exec);
  assert_non_null(be->query);
  assert_non_null(be->table_info);
  assert_non_null(be->arbiters);
  assert_non_null(be->prepare);
  assert_non_null(be->run);
  assert_non_null(be->finalize);
  /* The get-or-create round: whole, or in steps (which also serve the
   * non-blocking calls), one or the other. */
  assert_true((be->get_or_create != NULL) != (be->goc_start != NULL));
  assert_true((be->goc_start != NULL) == (be->goc_step != NULL));
  assert_non_null(be->update_or_create);
  assert_non_null(be->in_transaction);
  assert_non_null(be->references);
  assert_non_null(be->row_json);
  assert_non_null(be->json_object);
  assert_non_null(be->restore_rows);
  assert_non_null(be->restore_cols);
  assert_non_null(be->begin_write);
  assert_non_null(be->lock_rows);
  assert_non_null(be->changes);
  assert_non_null(be->predicate_canon);
  assert_non_null(be->columns);
  assert_non_null(be->index_columns);
  assert_non_null(be->distinct_fmt);
  assert_non_null(be->utc_now);
  assert_non_null(be->utc_ago_fmt);
  assert_non_null(be->table_exists);
  assert_true(be->max_params > 0);
  /* Bulk load: all four or none. */
  assert_true(!!be->copy_begin == !!be->copy_row && !!be->copy_row == !!be->copy_put &&
              !!be->copy_put == !!be->copy_end);
  /* A session that can be named can be asked after. */
  assert_true(!!be->session_id == !!be->session_alive);
  /* Schemas come with rights on them and a search path. */
  assert_true(db_can(db, BE_CAP_SCHEMAS) == !!be->schema_rights);
  assert_true(db_can(db, BE_CAP_SCHEMAS) == !!be->search_path_table);
  /* Partitions have leaves; indexes built online can be left invalid. */
  assert_true(db_can(db, BE_CAP_PARTITIONS) == !!be->leaves);
  assert_true(!db_can(db, BE_CAP_ONLINE_INDEX) || be->index_invalid);
  /* The online mode's guard and its leftovers come with the capability. */
  assert_true(db_can(db, BE_CAP_ONLINE_INDEX) == !!be->guard_function);
  assert_true(db_can(db, BE_CAP_ONLINE_INDEX) == !!be->online_ddl);
  assert_true(db_can(db, BE_CAP_ONLINE_INDEX) == !!be->online_leftovers);
  assert_true(db_can(db, BE_CAP_ONLINE_INDEX) == !!be->orphan_guards);
}

/* nodup_open asks nodup_backends[] in order: this database's URL goes to
 * this backend, the first that accepts it. */
static void test_accepts(void **state) {
  nodup_db *db = *state;
  size_t i;
  for (i = 0; nodup_backends[i]; i++)
    if (nodup_backends[i]->accepts(harness_url())) break;
  assert_non_null(nodup_backends[i]);
  assert_ptr_equal(nodup_backends[i], db->be);
  assert_string_equal(nodup_db_backend(db), db->be->name);
}

/* ---- statements ---- */

static void test_query_params(void **state) {
  nodup_db *db = *state;
  const char *p[3] = {"o'Brien \"x\" ?1 $1", NULL, "3"};
  buf q;
  buf_init(&q);
  harness_exec(db, "CREATE TABLE t ({id}, a TEXT, b TEXT, n INTEGER)");
  assert_int_equal(
      db_exec_params(db, "INSERT INTO t (a, b, n) VALUES (?1, ?2, CAST(?3 AS INTEGER))", p, 3),
      NODUP_OK);
  /* Values arrive as given, never as SQL: quotes and placeholders in them
   * are text. NULL is NULL. */
  expect_one(db, "SELECT a FROM t WHERE n = CAST(?1 AS INTEGER)", p + 2, 1, p[0]);
  expect_one(db, "SELECT count(*) FROM t WHERE b IS NULL", NULL, 0, "1");
  expect_one(db, "SELECT count(*) FROM t WHERE a = ?1", p, 1, "1");
  /* A query whose row_fn is NULL runs for its effect. */
  assert_int_equal(db->be->query(db, sqlp(&q, db, "UPDATE t SET n = n + 1"), NULL, 0, NULL, NULL),
                   NODUP_OK);
  expect_one(db, "SELECT n FROM t", NULL, 0, "4");
  buf_free(&q);
}

static void test_prepare_run(void **state) {
  nodup_db *db = *state;
  nodup_stmt *s = NULL;
  const char *p[1];
  buf q;
  int i;
  buf_init(&q);
  harness_exec(db, "CREATE TABLE t ({id}, a TEXT)");
  assert_int_equal(db->be->prepare(db, sqlp(&q, db, "INSERT INTO t (a) VALUES (?1)"), 1, NULL,
                                   &s),
                   NODUP_OK);
  /* One statement, run many times. */
  for (i = 0; i < 3; i++) {
    p[0] = i == 1 ? "two" : "other";
    assert_int_equal(db->be->run(db, s, p, 1, NULL, NULL), NODUP_OK);
  }
  db->be->finalize(db, s);
  expect_one(db, "SELECT count(*) FROM t", NULL, 0, "3");
  expect_one(db, "SELECT id FROM t WHERE a = 'two'", NULL, 0, "2");
  buf_free(&q);
}

static void test_changes(void **state) {
  nodup_db *db = *state;
  const char *p[1] = {"x"};
  long long n = -1;
  buf q;
  buf_init(&q);
  harness_exec(db, "CREATE TABLE t ({id}, a TEXT);"
                   "INSERT INTO t (a) VALUES ('x'), ('x'), ('y')");
  assert_int_equal(db->be->changes(db, sqlp(&q, db, "UPDATE t SET a = 'z' WHERE a = ?1"), p, 1,
                                   &n),
                   NODUP_OK);
  assert_int_equal(n, 2);
  assert_int_equal(db->be->changes(db, sqlp(&q, db, "DELETE FROM t WHERE a = ?1"), p, 1, &n),
                   NODUP_OK);
  assert_int_equal(n, 0);
  buf_free(&q);
}

static void test_transactions(void **state) {
  nodup_db *db = *state;
  harness_exec(db, "CREATE TABLE t ({id}, a TEXT)");
  assert_false(db->be->in_transaction(db));
  assert_int_equal(db_begin_write(db), NODUP_OK);
  assert_true(db->be->in_transaction(db));
  harness_exec(db, "INSERT INTO t (a) VALUES ('gone')");
  assert_int_equal(db->be->exec(db, "ROLLBACK"), NODUP_OK);
  assert_false(db->be->in_transaction(db));
  expect_one(db, "SELECT count(*) FROM t", NULL, 0, "0");
  assert_int_equal(db_begin_write(db), NODUP_OK);
  harness_exec(db, "INSERT INTO t (a) VALUES ('kept')");
  assert_int_equal(db->be->exec(db, "COMMIT"), NODUP_OK);
  expect_one(db, "SELECT a FROM t", NULL, 0, "kept");
}

/* A unique violation is data: the SQLSTATE (SQLite's code mapped to
 * PostgreSQL's), and the constraint where the engine names it. */
static void test_unique_violation(void **state) {
  nodup_db *db = *state;
  const char *p[1] = {"a@example.org"};
  people(db);
  assert_int_equal(db_exec_params(db, "INSERT INTO people (email) VALUES (?1)", p, 1), NODUP_OK);
  assert_int_not_equal(db_exec_params(db, "INSERT INTO people (email) VALUES (?1)", p, 1),
                       NODUP_OK);
  assert_string_equal(nodup_sqlstate(db), "23505");
  if (*nodup_errconstraint(db)) assert_string_equal(nodup_errconstraint(db), "people_email_key");
  assert_int_not_equal(db->be->exec(db, "SELECT * FROM no_such_table"), NODUP_OK);
  assert_string_not_equal(nodup_sqlstate(db), "23505");
}

/* ---- the catalog ---- */

static const nodup_index_info *index_named(const nodup_table_info *t, const char *name) {
  size_t i;
  for (i = 0; i < t->nidx; i++)
    if (!strcmp(t->idx[i].name, name)) return &t->idx[i];
  return NULL;
}

static void test_table_info(void **state) {
  nodup_db *db = *state;
  nodup_table_info *t = NULL;
  const nodup_index_info *ix;
  people(db);
  assert_int_equal(db->be->table_info(db, "people", &t), NODUP_OK);
  assert_string_equal(t->name, "people");
  assert_non_null(t->qualified);
  assert_int_equal(t->ncols, 4);
  assert_string_equal(t->cols[0], "id");
  assert_string_equal(t->cols[3], "live");
  assert_int_equal(t->npk, 1);
  assert_string_equal(t->pk[0], "id");
  assert_true(t->notnull[1]);
  assert_false(t->notnull[2]);
  /* Unique indexes only, each with its columns in order. */
  assert_int_equal(t->nidx, 4);
  assert_non_null(ix = index_named(t, "people_email_key"));
  assert_int_equal(ix->ncols, 1);
  assert_string_equal(ix->cols[0], "email");
  assert_null(ix->predicate);
  assert_false(ix->primary);
  assert_non_null(ix = index_named(t, "people_live_name"));
  assert_non_null(ix->predicate);
  assert_non_null(ix = index_named(t, "people_name_email"));
  assert_int_equal(ix->ncols, 2);
  assert_string_equal(ix->cols[0], "name");
  assert_string_equal(ix->cols[1], "email");
  table_info_free(t);
  t = NULL;
  assert_int_equal(db->be->table_info(db, "no_such_table", &t), NODUP_ERR_NO_TABLE);
  assert_null(t);
  /* Names fold only where the engine says they do. */
  if (db_can(db, BE_CAP_FOLDS_NAMES)) {
    assert_int_equal(db->be->table_info(db, "PEOPLE", &t), NODUP_OK);
    assert_string_equal(t->name, "people");
    table_info_free(t);
  } else {
    assert_int_equal(db->be->table_info(db, "PEOPLE", &t), NODUP_ERR_NO_TABLE);
  }
}

static void test_references(void **state) {
  nodup_db *db = *state;
  nodup_table_info *t = NULL;
  nodup_fk_info *fks = NULL;
  size_t n = 0;
  people(db);
  harness_exec(db, "CREATE TABLE posts ({id}, author INTEGER REFERENCES people (id) "
                   "ON DELETE CASCADE, body TEXT)");
  assert_int_equal(db->be->table_info(db, "people", &t), NODUP_OK);
  assert_int_equal(db->be->references(db, t, &fks, &n), NODUP_OK);
  assert_int_equal(n, 1);
  assert_int_equal(fks[0].ncols, 1);
  assert_string_equal(fks[0].cols[0], "author");
  assert_string_equal(fks[0].refcols[0], "id");
  assert_int_equal(fks[0].on_delete, 'c');
  assert_non_null(strstr(fks[0].table, "posts"));
  fk_info_free(fks, n);
  table_info_free(t);
}

/* The engine's own ON CONFLICT inference backs a key with a unique index
 * (a partial one only under its predicate), or refuses. */
static void test_arbiters(void **state) {
  nodup_db *db = *state;
  nodup_table_info *t = NULL;
  char *email[] = {"email"}, *name[] = {"name"}, *live[] = {"live"};
  buf names;
  buf_init(&names);
  people(db);
  assert_int_equal(db->be->table_info(db, "people", &t), NODUP_OK);
  assert_int_equal(db->be->arbiters(db, t, email, 1, NULL, &names), NODUP_OK);
  assert_int_equal(db->be->arbiters(db, t, name, 1, "live = 1", &names), NODUP_OK);
  assert_int_equal(db->be->arbiters(db, t, name, 1, NULL, &names), NODUP_ERR_UNBACKED);
  assert_int_equal(db->be->arbiters(db, t, live, 1, NULL, &names), NODUP_ERR_UNBACKED);
  buf_free(&names);
  table_info_free(t);
}

static int count_rows(void *ctx, int n, const char *const *v) {
  (void)n;
  (void)v;
  (*(int *)ctx)++;
  return 0;
}

static void test_index_and_columns(void **state) {
  nodup_db *db = *state;
  nodup_table_info *t = NULL;
  int rows = 0;
  people(db);
  assert_int_equal(db->be->table_info(db, "people", &t), NODUP_OK);
  /* Non-partial indexes: email, (name, email) and, where it has one, the
   * primary key's. */
  assert_int_equal(db->be->index_columns(db, t, count_rows, &rows), NODUP_OK);
  assert_true(rows >= 2 && rows <= 3);
  rows = 0;
  assert_int_equal(db->be->columns(db, count_rows, &rows), NODUP_OK);
  assert_true(rows >= 4);
  table_info_free(t);
}

/* Archived as row_json, put back by restore_rows; logged as json_object,
 * put back by restore_cols: the undo path, on a table of the caller's. */
static void test_json_round_trip(void **state) {
  nodup_db *db = *state;
  nodup_table_info *t = NULL;
  const char *p[2] = {"r1", "1"};
  const char *keys[2] = {"id", "name"}, *exprs[2] = {"x.id", "x.name"};
  db_json_rows src = {"arch AS a", NULL, "a.row", "a.pk", "a.row", "a.row"};
  long long n = 0;
  buf q, w;
  buf_init(&q);
  buf_init(&w);
  people(db);
  harness_exec(db, "CREATE TABLE arch (run TEXT, step INTEGER, pk TEXT, row TEXT);"
                   "INSERT INTO people (email, name, live) VALUES "
                   "('a@x', 'Ann \"A\" O''Neil', 1), ('b@x', NULL, 0)");
  assert_int_equal(db->be->table_info(db, "people", &t), NODUP_OK);
  buf_puts(&q, "INSERT INTO arch SELECT 'r1', 1, CAST(x.id AS TEXT), ");
  db->be->row_json(&q, t, "x");
  buf_puts(&q, " FROM people AS x");
  assert_int_equal(db->be->exec(db, buf_str(&q)), NODUP_OK);
  harness_exec(db, "DELETE FROM people");
  src.where = sqlp(&w, db, "a.run = ?1 AND a.step = CAST(?2 AS INTEGER)");
  buf_reset(&q);
  db->be->restore_rows(&q, t, &src);
  assert_int_equal(db->be->changes(db, buf_str(&q), p, 2, &n), NODUP_OK);
  assert_int_equal(n, 2);
  expect_one(db, "SELECT name FROM people WHERE email = 'a@x'", NULL, 0, "Ann \"A\" O'Neil");
  expect_one(db, "SELECT count(*) FROM people WHERE name IS NULL AND live = 0", NULL, 0, "1");
  /* The columns: logged, changed, put back. */
  harness_exec(db, "DELETE FROM arch");
  buf_reset(&q);
  buf_puts(&q, "INSERT INTO arch SELECT 'r1', 1, NULL, ");
  db->be->json_object(&q, 2, keys, exprs);
  buf_puts(&q, " FROM people AS x");
  assert_int_equal(db->be->exec(db, buf_str(&q)), NODUP_OK);
  harness_exec(db, "UPDATE people SET name = 'changed'");
  buf_reset(&q);
  db->be->restore_cols(&q, t, (char *const *)keys + 1, 1, &src);
  assert_int_equal(db->be->changes(db, buf_str(&q), p, 2, &n), NODUP_OK);
  assert_int_equal(n, 2);
  expect_one(db, "SELECT name FROM people WHERE email = 'a@x'", NULL, 0, "Ann \"A\" O'Neil");
  expect_one(db, "SELECT count(*) FROM people WHERE name IS NULL", NULL, 0, "1");
  table_info_free(t);
  buf_free(&q);
  buf_free(&w);
}

/* ---- capabilities are what the engine does ---- */

/* 1 when `sql` runs, 0 when the engine refuses it (rolled back after, so
 * that a refusal inside a transaction leaves none behind). */
static int runs(nodup_db *db, const char *sql, int in_txn) {
  int rc;
  if (in_txn) assert_int_equal(db->be->exec(db, "BEGIN"), NODUP_OK);
  rc = db->be->exec(db, sql);
  if (in_txn) db->be->exec(db, "ROLLBACK");
  return rc == NODUP_OK;
}

static void test_caps_behave(void **state) {
  nodup_db *db = *state;
  /* A connection may lack what its engine can do, never the reverse. */
  assert_int_equal(db->caps & ~db->be->caps, 0);
  people(db);
  harness_exec(db, "CREATE TABLE kids ({id}, parent INTEGER REFERENCES people (id) "
                   "DEFERRABLE INITIALLY DEFERRED)");
  assert_int_equal(runs(db, "CREATE INDEX CONCURRENTLY people_name ON people (name)", 0),
                   db_can(db, BE_CAP_ONLINE_INDEX));
  assert_int_equal(runs(db, "CREATE SCHEMA conformance_s", 0), db_can(db, BE_CAP_SCHEMAS));
  assert_int_equal(runs(db, "LOCK TABLE people IN SHARE ROW EXCLUSIVE MODE", 1),
                   db_can(db, BE_CAP_TABLE_LOCKS));
  assert_int_equal(runs(db, "SET CONSTRAINTS ALL IMMEDIATE", 1),
                   db_can(db, BE_CAP_DEFERRABLE_FKS));
  /* The connection's capability: PostgreSQL before 15 lacks the syntax,
   * and connect() clears it there. */
  assert_int_equal(runs(db, "CREATE UNIQUE INDEX people_nnd ON people (name) NULLS NOT DISTINCT",
                        0),
                   db_can(db, BE_CAP_NULLS_NOT_DISTINCT));
  assert_int_equal(runs(db, "CREATE TABLE parts (k INTEGER) PARTITION BY RANGE (k)", 0),
                   db_can(db, BE_CAP_PARTITIONS));
  assert_int_equal(runs(db, "SELECT rowid FROM kids", 0), db_can(db, BE_CAP_ROWID));
  harness_exec(db, "CREATE UNIQUE INDEX people_c ON people (email, name)");
  assert_int_equal(runs(db, "ALTER TABLE people ADD CONSTRAINT people_c UNIQUE USING INDEX "
                            "people_c", 0),
                   db_can(db, BE_CAP_CONSTRAINTS));
}

static int last_row(void *ctx, int n, const char *const *v) {
  buf *b = ctx;
  int i;
  buf_reset(b);
  for (i = 0; i < n; i++) buf_printf(b, "%s%s", i ? "|" : "", v[i] ? v[i] : "NULL");
  return 0;
}

/* A partitioned table's key and leaves, each leaf a table of its own. */
static void test_partitions(void **state) {
  nodup_db *db = *state;
  nodup_table_info *t = NULL;
  buf last;
  int rows = 0;
  buf_init(&last);
  people(db);
  assert_int_equal(db->be->table_info(db, "people", &t), NODUP_OK);
  assert_int_equal(db_partition_key(db, t, count_rows, &rows), NODUP_OK);
  assert_int_equal(rows, 0);
  table_info_free(t);
  if (!db_can(db, BE_CAP_PARTITIONS)) {
    assert_null(db->be->leaves);
    assert_null(db->be->partition_key);
    return;
  }
  harness_exec(db, "CREATE TABLE parts (k INTEGER, j INTEGER) PARTITION BY RANGE (k, j);"
                   "CREATE TABLE parts_a PARTITION OF parts FOR VALUES FROM (0, 0) TO (10, 0);"
                   "CREATE TABLE \"Parts_B\" PARTITION OF parts "
                   "FOR VALUES FROM (10, 0) TO (20, 0)");
  assert_int_equal(db->be->leaves(db, "parts", count_rows, &rows), NODUP_OK);
  assert_int_equal(rows, 2);
  assert_int_equal(db->be->leaves(db, "parts", last_row, &last), NODUP_OK);
  assert_string_equal(buf_str(&last), "public.parts_a|public.parts_a|parts_a");
  assert_int_equal(db->be->table_info(db, "parts", &t), NODUP_OK);
  assert_int_equal(db_partition_key(db, t, last_row, &last), NODUP_OK);
  assert_string_equal(buf_str(&last), "j");
  table_info_free(t);
  buf_free(&last);
}

/* One index's state: ours to attach, to drop, or to leave. */
static void test_index_state(void **state) {
  nodup_db *db = *state;
  nodup_table_info *t = NULL;
  db_index_state s;
  people(db);
  harness_exec(db, "CREATE UNIQUE INDEX \"Bare\" ON people (live, email)");
  assert_int_equal(db->be->table_info(db, "people", &t), NODUP_OK);
  assert_int_equal(db_index_find(db, t, "people_email_key", &s), NODUP_OK);
  assert_true(s.exists && s.valid);
  assert_false(s.attached);
  assert_int_equal(db_index_find(db, t, "Bare", &s), NODUP_OK);
  assert_true(s.exists && s.valid);
  assert_false(s.constrained);
  assert_non_null(strstr(s.qualified, "\"Bare\""));
  assert_int_equal(db_index_find(db, t, "no_such_index", &s), NODUP_OK);
  assert_false(s.exists);
  table_info_free(t);
}

/* ---- the online mode's guard and leftovers ---- */

/* Rows of online_leftovers' layout, "kind|name|extra|cols|state|ready"
 * each, '\n'-joined. */
static int leftover_rows(void *ctx, int n, const char *const *v) {
  buf *b = ctx;
  int i;
  assert_int_equal(n, 9);
  for (i = 0; i < 8; i++)
    if (i != 4 && i != 5)
      buf_printf(b, "%s%s", i ? "|" : (b->len ? "\n" : ""), v[i] ? v[i] : "NULL");
  return 0;
}

/* The guard does the unique index's job (one writer per key, a taken key
 * refused as the index will refuse it, NULL keys left alone); what an
 * interrupted run leaves is found: the guard function alone, then with
 * its trigger, and an INVALID index a failed online build left. Without
 * BE_CAP_ONLINE_INDEX there is no guard, and nothing is ever left. */
static void test_online_guard(void **state) {
  nodup_db *db = *state;
  nodup_table_info *t = NULL;
  char guard[64], *key[1] = {"email"};
  buf q, rows;
  int online = db_can(db, BE_CAP_ONLINE_INDEX);
  harness_exec(db, "CREATE TABLE guarded ({id}, email TEXT)");
  harness_exec(db, "INSERT INTO guarded (email) VALUES ('dup'); "
                   "INSERT INTO guarded (email) VALUES ('dup')");
  assert_int_equal(db->be->table_info(db, "guarded", &t), NODUP_OK);
  enforce_guard_name(t, guard);
  buf_init(&q);
  buf_init(&rows);
  assert_int_equal(db_guard_function(db, &q, guard, t, key, 1, NULL, 0, "taken: guarded_key",
                                     "guarded_key"),
                   online ? NODUP_OK : NODUP_ERR_UNSUPPORTED);
  if (!online) {
    buf_reset(&q);
    assert_int_equal(db_online_ddl(db, &q, ONLINE_GUARD_TRIGGER, guard, t, key, 1, NULL),
                     NODUP_ERR_UNSUPPORTED);
    assert_int_equal(db_online_leftovers(db, t, guard, leftover_rows, &rows), NODUP_OK);
    assert_int_equal(db_orphan_guards(db, leftover_rows, &rows), NODUP_OK);
    assert_int_equal(rows.len, 0);
    goto done;
  }
  assert_int_equal(db->be->exec(db, buf_str(&q)), NODUP_OK);
  /* A function no trigger uses: t's, and an orphan anywhere. */
  assert_int_equal(db_online_leftovers(db, t, guard, leftover_rows, &rows), NODUP_OK);
  assert_true(rows.len && buf_str(&rows)[0] == 'f' && !strchr(buf_str(&rows), '\n'));
  assert_non_null(strstr(buf_str(&rows), guard));
  buf_reset(&rows);
  assert_int_equal(db_orphan_guards(db, leftover_rows, &rows), NODUP_OK);
  assert_true(rows.len && buf_str(&rows)[0] == 'f' && !strchr(buf_str(&rows), '\n'));
  /* With its trigger (the backend's, as enforce_online.c installs it): a
   * guard, no orphan, and no comment naming a live run. */
  buf_reset(&q);
  assert_int_equal(db_online_ddl(db, &q, ONLINE_GUARD_TRIGGER, guard, t, key, 1, NULL),
                   NODUP_OK);
  assert_int_equal(db->be->exec(db, buf_str(&q)), NODUP_OK);
  buf_reset(&rows);
  assert_int_equal(db_orphan_guards(db, leftover_rows, &rows), NODUP_OK);
  assert_int_equal(rows.len, 0);
  assert_int_equal(db_online_leftovers(db, t, guard, leftover_rows, &rows), NODUP_OK);
  assert_true(!strncmp(buf_str(&rows), "g|", 2) && !strchr(buf_str(&rows), '\n'));
  assert_non_null(strstr(buf_str(&rows), "|email|0|0"));
  /* Its refusal is the index's: 23505 naming the constraint; NULL keys
   * are not compared. */
  assert_int_not_equal(db->be->exec(db, "INSERT INTO guarded (email) VALUES ('dup')"),
                       NODUP_OK);
  assert_string_equal(nodup_sqlstate(db), "23505");
  assert_string_equal(nodup_errconstraint(db), "guarded_key");
  assert_non_null(strstr(nodup_errmsg(db), "taken: guarded_key"));
  harness_exec(db, "INSERT INTO guarded (email) VALUES ('new'); "
                   "INSERT INTO guarded (email) VALUES (NULL); "
                   "INSERT INTO guarded (email) VALUES (NULL)");
  /* A failed online build leaves its index INVALID. */
  assert_false(runs(db, "CREATE UNIQUE INDEX CONCURRENTLY guarded_key ON guarded (email)", 0));
  buf_reset(&rows);
  assert_int_equal(db_online_leftovers(db, t, guard, leftover_rows, &rows), NODUP_OK);
  assert_non_null(strstr(buf_str(&rows), "\ni|"));
  assert_non_null(strstr(buf_str(&rows), "|guarded_key|email|0|"));
done:
  assert_false(q.oom || rows.oom);
  buf_free(&q);
  buf_free(&rows);
  table_info_free(t);
}

/* ---- the journal's members ---- */

/* A journal statement (templated as journal_sql's), asserted to run. */
static void jexec(nodup_db *db, const char *schema, const char *tmpl) {
  buf q;
  buf_init(&q);
  journal_sql(&q, db, schema, tmpl);
  assert_int_equal(db->be->exec(db, buf_str(&q)), NODUP_OK);
  buf_free(&q);
}

/* journal_ensure in a write transaction of its own: rc, then (when it
 * succeeded) the version it left. */
static void ensure(nodup_db *db, const char *schema, int rc) {
  int version = -1;
  assert_int_equal(db_begin_write(db), NODUP_OK);
  assert_int_equal(journal_ensure(db, schema), rc);
  assert_int_equal(db->be->exec(db, rc == NODUP_OK ? "COMMIT" : "ROLLBACK"), NODUP_OK);
  if (rc != NODUP_OK) return;
  assert_int_equal(journal_version(db, schema, &version), NODUP_OK);
  assert_int_equal(version, JOURNAL_VERSION);
}

static void test_time_and_catalog(void **state) {
  nodup_db *db = *state;
  const char *schema = journal_schema(db);
  db_schema_rights r;
  int exists = 1;
  buf q;
  buf_init(&q);
  /* UTC text that compares as time does. */
  buf_puts(&q, "SELECT CASE WHEN ");
  db_utc_now(&q, db);
  buf_puts(&q, " > ");
  db_utc_ago(&q, db, 60);
  buf_puts(&q, " THEN 'later' ELSE 'not' END");
  expect_one(db, buf_str(&q), NULL, 0, "later");
  buf_reset(&q);
  buf_puts(&q, "SELECT length(");
  db_utc_now(&q, db);
  buf_putc(&q, ')');
  expect_one(db, buf_str(&q), NULL, 0, "19");
  /* Existence, also of a schema not made yet. */
  assert_int_equal(db_table_exists(db, schema, "nodup_runs", &exists), NODUP_OK);
  assert_false(exists);
  assert_int_equal(db_schema_access(db, schema ? schema : "main", &r), NODUP_OK);
  assert_true(r.may_create);
  ensure(db, schema, NODUP_OK);
  assert_int_equal(db_table_exists(db, schema, "nodup_runs", &exists), NODUP_OK);
  assert_true(exists);
  assert_int_equal(db_schema_access(db, schema ? schema : "main", &r), NODUP_OK);
  assert_true(r.exists && r.may_use && r.may_create);
  buf_free(&q);
}

/* A lock for the transaction; the session, when the engine names one, is
 * alive while this connection is. */
static void test_lock_and_session(void **state) {
  nodup_db *db = *state;
  buf id, q;
  buf_init(&id);
  buf_init(&q);
  assert_int_equal(db_begin_write(db), NODUP_OK);
  assert_int_equal(db_xact_lock(db, "conformance"), NODUP_OK);
  assert_int_equal(db_xact_lock(db, "conformance"), NODUP_OK);
  assert_int_equal(db->be->exec(db, "COMMIT"), NODUP_OK);
  assert_int_equal(db_session_id(db, &id), NODUP_OK);
  if (id.len) {
    buf lit;
    buf_init(&lit);
    sql_name_literal(&lit, buf_str(&id));
    buf_puts(&q, "SELECT CASE WHEN ");
    assert_true(db_session_alive(&q, db, buf_str(&lit)));
    buf_puts(&q, " THEN 'alive' ELSE 'gone' END");
    expect_one(db, buf_str(&q), NULL, 0, "alive");
    buf_reset(&q);
    buf_puts(&q, "SELECT CASE WHEN ");
    db_session_alive(&q, db, "'1 0'");
    buf_puts(&q, " THEN 'alive' ELSE 'gone' END");
    expect_one(db, buf_str(&q), NULL, 0, "gone");
    buf_free(&lit);
  } else if (!db->be->session_id) {
    /* No sessions to name: none to ask after either. */
    assert_false(db_session_alive(&q, db, "'1 0'"));
    assert_int_equal(q.len, 0);
  }
  buf_free(&id);
  buf_free(&q);
}

/* An earlier nodup's journal where the search path finds it (schemas
 * only; without them there is one journal). */
static void test_search_path(void **state) {
  nodup_db *db = *state;
  buf s;
  buf_init(&s);
  assert_int_equal(db_search_path_table(db, "nodup_runs", "nodup", &s), NODUP_OK);
  assert_int_equal(s.len, 0);
  if (db_can(db, BE_CAP_SCHEMAS)) {
    char *at;
    harness_exec(db, "CREATE TABLE nodup_runs (run TEXT)");
    assert_int_equal(db_search_path_table(db, "nodup_runs", "nodup", &s), NODUP_OK);
    at = one(db, "SELECT current_schema()", NULL, 0);
    assert_string_equal(buf_str(&s), at);
    /* Not the one it is told to pass over. */
    buf_reset(&s);
    assert_int_equal(db_search_path_table(db, "nodup_runs", at, &s), NODUP_OK);
    assert_int_equal(s.len, 0);
    free(at);
  }
  buf_free(&s);
}

/* The journal's versions: made at the current one, a newer one refused
 * (a later nodup wrote it), an older one upgraded in place. */
static void test_journal_versions(void **state) {
  nodup_db *db = *state;
  const char *schema = journal_schema(db);
  int version = -1;
  buf q;
  buf_init(&q);
  assert_int_equal(journal_version(db, schema, &version), NODUP_OK);
  assert_int_equal(version, 0);
  ensure(db, schema, NODUP_OK);
  /* Newer than this nodup's: refused, naming why. */
  jexec(db, schema, "UPDATE {s}nodup_meta SET value = '99' WHERE key = 'version'");
  ensure(db, schema, NODUP_ERR_USAGE);
  assert_non_null(strstr(nodup_errmsg(db), "newer"));
  /* Version 1 (no nodup_meta, no owner columns): upgraded. */
  jexec(db, schema, "DROP TABLE {s}nodup_runs");
  jexec(db, schema, "DROP TABLE {s}nodup_meta");
  jexec(db, schema,
        "CREATE TABLE {s}nodup_runs (run TEXT PRIMARY KEY, tbl TEXT NOT NULL, "
        "where_sql TEXT, keep_sql TEXT, batch INTEGER NOT NULL, nulls_equal INTEGER NOT "
        "NULL, fill_nulls INTEGER NOT NULL, one_to_one INTEGER NOT NULL, archive INTEGER "
        "NOT NULL, status TEXT NOT NULL, groups INTEGER NOT NULL DEFAULT 0, started TEXT, "
        "finished TEXT)");
  jexec(db, schema,
        "INSERT INTO {s}nodup_runs (run, tbl, batch, nulls_equal, fill_nulls, one_to_one, "
        "archive, status, started) VALUES ('old', 't', 10, 0, 0, 0, 1, 'done', "
        "'2020-01-01 00:00:00')");
  assert_int_equal(journal_version(db, schema, &version), NODUP_OK);
  assert_int_equal(version, 1);
  ensure(db, schema, NODUP_OK);
  journal_sql(&q, db, schema, "SELECT status || ' ' || repointed FROM {s}nodup_runs");
  expect_one(db, buf_str(&q), NULL, 0, "done 0");
  buf_free(&q);
}

/* Run q (np parameters) and count step 1's rows of conf1 as undo does. */
static void write_step_row(nodup_db *db, const char *schema, buf *q, const char *const *p,
                           int np, int deleted) {
  long long n = 0;
  assert_int_equal(db->be->query(db, buf_str(q), p, np, NULL, NULL), NODUP_OK);
  assert_int_equal(journal_step_rows(db, schema, "conf1", "1", deleted, &n), NODUP_OK);
  assert_int_equal(n, 1);
  buf_reset(q);
}

/* What merge.c writes for run conf1: a step, its archived row (rekeyed),
 * a logged change. */
static void journal_changes(nodup_db *db, const char *schema) {
  const char *p[3] = {"conf1", "\"people\"", "1"}, *after[3] = {"conf1", "\"people\"", "0"};
  long long n = 0;
  buf q;
  buf_init(&q);
  assert_int_equal(journal_step(db, schema, "conf1", "1", "delete", "people", NULL, 0), NODUP_OK);
  journal_archive_insert(&q, db, schema);
  buf_puts(&q, "'7', '1', '{}'");
  write_step_row(db, schema, &q, p, 3, 1);
  journal_rekey_begin(&q, db, schema);
  buf_puts(&q, "SELECT '1' AS nodup_old, '2' AS nodup_new");
  journal_rekey_end(&q, db);
  assert_int_equal(db->be->changes(db, buf_str(&q), after, 3, &n), NODUP_OK);
  assert_int_equal(n, 1);
  buf_reset(&q);
  journal_log_insert(&q, db, schema);
  buf_puts(&q, "'{}', '{}'");
  p[1] = "1";   /* the log's parameters: run, step */
  write_step_row(db, schema, &q, p, 2, 0);
  buf_free(&q);
}

/* A run recorded, owned, heartbeat, finished and removed. */
static void test_journal_run(void **state) {
  nodup_db *db = *state;
  const char *schema = journal_schema(db);
  nodup_merge_options opt;
  journal_owner o;
  journal_row r;
  char *key[1] = {"email"};
  memset(&opt, 0, sizeof opt);
  people(db);
  assert_int_equal(db_begin_write(db), NODUP_OK);
  assert_int_equal(journal_ensure(db, schema), NODUP_OK);
  assert_int_equal(journal_owner_init(db, &o), NODUP_OK);
  assert_int_equal(journal_record(db, schema, "conf1", &o, "people", key, 1, NULL, &opt, 100),
                   NODUP_OK);
  assert_int_equal(db->be->exec(db, "COMMIT"), NODUP_OK);
  assert_int_equal(journal_read_row(db, schema, JOURNAL_VERSION, "conf1", 0, &r), NODUP_OK);
  assert_int_equal(r.state, NODUP_RUN_RUNNING);
  assert_int_equal(db_begin_write(db), NODUP_OK);
  assert_int_equal(journal_heartbeat(db, schema, "conf1", &o), NODUP_OK);
  assert_int_equal(journal_batch_done(db, schema, "conf1", &o, 1, 2, 3, 0), NODUP_OK);
  assert_int_equal(journal_status(db, schema, "conf1", &o, "done"), NODUP_OK);
  assert_int_equal(db->be->exec(db, "COMMIT"), NODUP_OK);
  assert_int_equal(journal_read_row(db, schema, JOURNAL_VERSION, "conf1", 0, &r), NODUP_OK);
  assert_int_equal(r.state, NODUP_RUN_DONE);
  /* Only the owner, only while it runs. */
  assert_int_equal(journal_heartbeat(db, schema, "conf1", &o), NODUP_ERR_NO_RUN);
  journal_changes(db, schema);
  assert_int_equal(db_begin_write(db), NODUP_OK);
  assert_int_equal(journal_remove(db, schema, "conf1"), NODUP_OK);
  assert_int_equal(db->be->exec(db, "COMMIT"), NODUP_OK);
  assert_int_equal(journal_read_row(db, schema, JOURNAL_VERSION, "conf1", 0, &r),
                   NODUP_ERR_NO_RUN);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
  const struct CMUnitTest tests[] = {
      T(test_members),
      T(test_accepts),
      T(test_query_params),
      T(test_prepare_run),
      T(test_changes),
      T(test_transactions),
      T(test_unique_violation),
      T(test_table_info),
      T(test_references),
      T(test_arbiters),
      T(test_index_and_columns),
      T(test_json_round_trip),
      T(test_caps_behave),
      T(test_partitions),
      T(test_index_state),
      T(test_online_guard),
      T(test_time_and_catalog),
      T(test_lock_and_session),
      T(test_search_path),
      T(test_journal_versions),
      T(test_journal_run),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}

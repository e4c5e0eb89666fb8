/*
 * test_fkindex.c -- references whose columns have no index, on both
 * engines: scan names them with the rows each deleted loser's check would
 * read; merge and enforce --merge build a temporary index first and drop it
 * afterwards (or keep it when asked, or build none when told not to); an
 * index a killed run left is reused; enforce reports how long it held its
 * lock, having merged before taking it.
 */
#include "harness.h"
#include "rig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const key_k[] = {"k"};

/* p: 30 rows over 10 keys; c: 90 children, c.p with no index; d: children
 * whose d.p has one. */
static void schema(nodup_db *db) {
  harness_exec(db,
               "CREATE TABLE p ({id}, k TEXT NOT NULL);"
               "CREATE TABLE c ({id}, p INTEGER NOT NULL REFERENCES p (id), note TEXT);"
               "CREATE TABLE d ({id}, p INTEGER NOT NULL REFERENCES p (id));"
               "CREATE INDEX d_p ON d (p)");
  for (int i = 1; i <= 30; i++) {
    char sql[160];
    snprintf(sql, sizeof sql,
             "INSERT INTO p (id, k) VALUES (%d, 'k%d');"
             "INSERT INTO c (p) VALUES (%d), (%d), (%d);"
             "INSERT INTO d (p) VALUES (%d)",
             i, i % 10, i, i, i, i);
    harness_exec(db, sql);
  }
}

/* Indexes named nodup_fk_* on the database. */
static long long temp_indexes(nodup_db *db) {
  return harness_count(db,
                       harness_is_pg()
                           ? "SELECT count(*) FROM pg_class WHERE relkind = 'i'"
                             " AND relname LIKE 'nodup\\_fk\\_%'"
                           : "SELECT count(*) FROM sqlite_schema WHERE type = 'index'"
                             " AND name LIKE 'nodup\\_fk\\_%' ESCAPE '\\'",
                       NULL);
}

static void expect_merged(nodup_db *db) {
  assert_int_equal(harness_count(db, "SELECT count(*) FROM p", NULL), 10);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM c", NULL), 90);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM c WHERE p NOT IN (SELECT id FROM p)",
                                 NULL),
                   0);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM d WHERE p NOT IN (SELECT id FROM p)",
                                 NULL),
                   0);
}

static void test_scan_names_unindexed_references(void **state) {
  nodup_db *db = *state;
  nodup_scan_report *r = NULL;
  int seen_c = 0, seen_d = 0;
  schema(db);
  assert_nodup(db, NODUP_OK, nodup_scan(&r, db, "p", key_k, 1, NULL, NULL));
  for (size_t i = 0; i < r->nrefs; i++) {
    const nodup_scan_ref *f = &r->refs[i];
    if (!strcmp(f->table_name, "c")) {
      seen_c = 1;
      assert_int_equal(f->unindexed, 1);
      assert_int_equal(f->unindexed_rows, 90);
    } else if (!strcmp(f->table_name, "d")) {
      seen_d = 1;
      assert_int_equal(f->unindexed, 0);
    }
  }
  nodup_scan_free(r);
  assert_true(seen_c && seen_d);
  assert_int_equal(temp_indexes(db), 0);   /* scan builds nothing */
}

static void test_merge_builds_and_drops_a_temporary_index(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  schema(db);
  memset(&opt, 0, sizeof opt);
  opt.batch = 3;
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "p", key_k, 1, NULL, &opt));
  assert_int_equal(r->groups, 10);
  assert_non_null(r->temp_indexes);
  assert_non_null(strstr(r->temp_indexes, "nodup_fk_"));
  assert_non_null(strstr(r->temp_indexes, "\"c\""));
  assert_null(strstr(r->temp_indexes, "\"d\""));   /* d.p has its own */
  nodup_merge_free(r);
  assert_int_equal(temp_indexes(db), 0);
  expect_merged(db);
}

static void test_merge_keeps_or_skips_when_asked(void **state) {
  nodup_db *db = *state;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  schema(db);
  memset(&opt, 0, sizeof opt);
  opt.no_temp_index = 1;
  harness_exec(db, "INSERT INTO p (id, k) VALUES (100, 'k1')");
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "p", key_k, 1, "k = 'k1'", &opt));
  assert_null(r->temp_indexes);
  nodup_merge_free(r);
  assert_int_equal(temp_indexes(db), 0);

  memset(&opt, 0, sizeof opt);
  opt.keep_temp_index = 1;
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "p", key_k, 1, NULL, &opt));
  assert_non_null(r->temp_indexes);
  nodup_merge_free(r);
  assert_int_equal(temp_indexes(db), 1);
  expect_merged(db);

  /* The kept index now serves the reference: a later scan and merge see
   * it as indexed, and build nothing. */
  harness_exec(db, "INSERT INTO p (id, k) VALUES (200, 'k2')");
  memset(&opt, 0, sizeof opt);
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "p", key_k, 1, NULL, &opt));
  assert_null(r->temp_indexes);
  nodup_merge_free(r);
  assert_int_equal(temp_indexes(db), 1);
}

static void test_enforce_merges_before_its_lock(void **state) {
  nodup_db *db = *state;
  nodup_enforce_report *r = NULL;
  nodup_enforce_options opt;
  nodup_merge_options mo;
  char name[64];
  schema(db);
  memset(&opt, 0, sizeof opt);
  opt.merge = 1;
  opt.merge_opt = &mo;
  memset(&mo, 0, sizeof mo);
  mo.batch = 4;
  assert_nodup(db, NODUP_OK, nodup_enforce(&r, db, "p", key_k, 1, NULL, &opt));
  assert_int_equal(r->merged_groups, 10);
  assert_non_null(r->temp_indexes);
  assert_true(r->lock_ms > 0);
  nodup_enforce_free(r);
  assert_int_equal(temp_indexes(db), 0);
  expect_merged(db);
  assert_nodup(db, NODUP_OK, nodup_key_check(db, "p", key_k, 1, NULL, name, sizeof name));
}

/* 8 writers insert parents (new keys and copies of existing ones) and
 * children of random parents for as long as enforce runs. */
static void parent_child_write(struct rig_writer *w) {
  char sql[160];
  unsigned r = rig_writer_random(w);
  double start = rig_now_ms();
  /* Failures are expected (a duplicate once the index is there, a
   * child of a parent just merged away): only what remains is checked. */
  snprintf(sql, sizeof sql, "INSERT INTO p (k) VALUES ('k%u')", (r >> 8) % 400);
  rig_live_record(w, nodup_exec(w->db, sql), start);
  snprintf(sql, sizeof sql,
           "INSERT INTO c (p) SELECT id FROM p WHERE id %% 97 = %u LIMIT 1", (r >> 4) % 97);
  start = rig_now_ms();
  rig_live_record(w, nodup_exec(w->db, sql), start);
}

/* enforce --merge with an unindexed child while 8 writers keep adding
 * duplicates and children: it ends with the index, no duplicate, no
 * dangling child, no temporary index left, and reports its lock time. */
static void test_enforce_unindexed_child_under_live_writers(void **state) {
  nodup_db *db = *state;
  enum { N = 8 };
  static struct rig_live live;
  nodup_enforce_report *r = NULL;
  nodup_enforce_options opt;
  nodup_merge_options mo;
  long long groups = -1;
  char name[64];
  harness_exec(db,
               "CREATE TABLE p ({id}, k TEXT NOT NULL);"
               "CREATE TABLE c ({id}, p INTEGER NOT NULL REFERENCES p (id))");
  harness_exec(db, harness_is_pg()
                       ? "INSERT INTO p (k) SELECT 'k' || (g % 400) FROM generate_series(1, 4000) g;"
                         "INSERT INTO c (p) SELECT 1 + (g % 4000) FROM generate_series(1, 3000) g"
                       : "WITH RECURSIVE n(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM n WHERE g < 4000)"
                         " INSERT INTO p (k) SELECT 'k' || (g % 400) FROM n;"
                         "WITH RECURSIVE n(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM n WHERE g < 3000)"
                         " INSERT INTO c (p) SELECT 1 + (g % 4000) FROM n");
  rig_live_connect(&live, N);
  for (int i = 0; i < N; i++) live.writers[i].seed = 7u * (unsigned)i + 1u;
  rig_live_start(&live, parent_child_write, NULL);
  memset(&opt, 0, sizeof opt);
  opt.merge = 1;
  opt.merge_opt = &mo;
  memset(&mo, 0, sizeof mo);
  mo.batch = 50;
  opt.lock_timeout_ms = 2000;
  int rc = nodup_enforce(&r, db, "p", key_k, 1, NULL, &opt);
  rig_live_stop(&live);
  if (rc != NODUP_OK) fail_msg("enforce: %s: %s", nodup_strerror(rc), nodup_errmsg(db));
  assert_true(r->merged_groups >= 400);
  assert_non_null(r->temp_indexes);
  assert_true(r->lock_ms > 0);
  print_message("enforce under 8 writers: %lld groups merged, lock held %.0f ms\n",
                r->merged_groups, r->lock_ms);
  nodup_enforce_free(r);
  assert_nodup(db, NODUP_OK, nodup_key_check(db, "p", key_k, 1, NULL, name, sizeof name));
  assert_nodup(db, NODUP_OK, nodup_count_duplicates(db, "p", key_k, 1, NULL, &groups, NULL));
  assert_int_equal(groups, 0);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM c WHERE p NOT IN (SELECT id FROM p)",
                                 NULL),
                   0);
  assert_int_equal(temp_indexes(db), 0);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
  const struct CMUnitTest tests[] = {
      T(test_scan_names_unindexed_references),
      T(test_merge_builds_and_drops_a_temporary_index),
      T(test_merge_keeps_or_skips_when_asked),
      T(test_enforce_merges_before_its_lock),
      T(test_enforce_unindexed_child_under_live_writers),
  };
#undef T
  return cmocka_run_group_tests_name(harness_is_pg() ? "fkindex_pg" : "fkindex_sqlite", tests,
                                     NULL, NULL);
}

/*
 * test_enforce.c -- nodup_enforce on SQLite and PostgreSQL: a unique index
 * made the arbiter of a key with no window for live writers.
 *
 * The centre piece runs real writers: 8 threads, each on its own
 * connection, inserting colliding keys the naive way (INSERT ... SELECT
 * ... WHERE NOT EXISTS) at full speed before, during and after enforce, on
 * a table that starts with duplicates and a child table referencing them.
 * Afterwards the index must exist (valid, on PostgreSQL), no duplicate may
 * remain, every writer error must be a unique violation raised after
 * enforce started, and no writer statement may have waited much longer
 * than the lock timeout. Around it: idempotence, refusal without merge,
 * NULL keys both ways, partial keys, dry runs, misuse, and interruptions:
 * the enforcing backend terminated mid-build (PostgreSQL) and the
 * enforcing process killed (both), each followed by a rerun that must
 * succeed and leave nothing temporary behind.
 *
 * Checks read the catalog through the raw handle (harness_query), not
 * through the library under test, except nodup_key_check, which is the
 * documented "afterwards `nodup check` passes" promise.
 */
#include "harness.h"
#include "rig.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define WRITERS 8
#define LOCK_TIMEOUT_MS 2000
#define LATENCY_BOUND_MS 10000.0 /* lock timeout + a generous final step */
#define NAME_MAX_LEN 128

static const char *const key_k[] = {"k"};

/* ---------------------------------------------------------------------------
 * Small helpers
 */

/* strstr ignoring ASCII case: "UNIQUE constraint failed" and "violates
 * unique constraint" are both unique violations. */
static int contains_nocase(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; hay != NULL && *hay != '\0'; hay++) {
    size_t i = 0;
    while (i < n && hay[i] != '\0' &&
           (hay[i] | 0x20) == (needle[i] | 0x20))
      i++;
    if (i == n)
      return 1;
  }
  return 0;
}

static int is_unique_violation(int rc, const char *msg) {
  return rc == NODUP_ERR_CONSTRAINT &&
         (contains_nocase(msg, "unique") || contains_nocase(msg, "duplicate"));
}

/* The parts of a report the tests look at, copied so that a failing
 * assertion leaks nothing. */
struct outcome {
  int rc;
  char msg[1024];
  char index[NAME_MAX_LEN];
  int already, constraint, builds, fell_back;
  long long merged_groups;
  char run[40];
};

static struct outcome enforce(nodup_db *db, const char *table,
                              const char *const *cols, size_t ncols,
                              const char *where,
                              const nodup_enforce_options *opt) {
  struct outcome o;
  nodup_enforce_report *rep = NULL;
  memset(&o, 0, sizeof o);
  o.rc = nodup_enforce(&rep, db, table, cols, ncols, where, opt);
  snprintf(o.msg, sizeof o.msg, "%s", nodup_errmsg(db));
  if (rep != NULL) {
    snprintf(o.index, sizeof o.index, "%s", rep->index ? rep->index : "");
    o.already = rep->already;
    o.constraint = rep->constraint;
    o.builds = rep->builds;
    o.fell_back = rep->fell_back;
    o.merged_groups = rep->merged_groups;
    snprintf(o.run, sizeof o.run, "%s", rep->run);
  }
  if (o.rc != NODUP_OK && rep != NULL) {
    nodup_enforce_free(rep);
    fail_msg("nodup_enforce failed (%s) but returned a report",
             nodup_strerror(o.rc));
  }
  if (o.rc == NODUP_OK && rep == NULL)
    fail_msg("nodup_enforce returned NODUP_OK without a report");
  nodup_enforce_free(rep);
  return o;
}

static void expect_ok(const struct outcome *o) {
  if (o->rc != NODUP_OK)
    fail_msg("nodup_enforce: %s: %s", nodup_strerror(o->rc), o->msg);
}

static void expect_rc(const struct outcome *o, int want) {
  if (o->rc != want)
    fail_msg("nodup_enforce returned %s, expected %s; errmsg: %s",
             nodup_strerror(o->rc), nodup_strerror(want), o->msg);
  if (want != NODUP_OK && o->msg[0] == '\0')
    fail_msg("nodup_enforce failed (%s) without a message",
             nodup_strerror(o->rc));
}

/*
 * `rows` rows over `keys` keys "k0".."k<keys-1>" (v = 1..rows), and a child
 * row for every second one: 2,000 rows over 300 keys make 300 duplicate
 * groups for the merge, with references to re-point.
 */
static void create_item_tables(nodup_db *db) {
  harness_exec(db,
               "CREATE TABLE \"item\" ({id}, \"k\" TEXT,"
               " \"v\" INTEGER NOT NULL DEFAULT 0);"
               "CREATE TABLE \"child\" ({id}, \"item\" INTEGER NOT NULL"
               " REFERENCES \"item\" (\"id\"), \"note\" TEXT)");
}

static void create_items(nodup_db *db, int rows, int keys) {
  char sql[1024];
  create_item_tables(db);
  snprintf(sql, sizeof sql,
           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
           " WHERE i < %d) INSERT INTO \"item\" (\"k\", \"v\")"
           " SELECT 'k' || CAST(i %% %d AS TEXT), i FROM n ORDER BY i;"
           "INSERT INTO \"child\" (\"item\", \"note\") SELECT \"id\", 'c'"
           " FROM \"item\" WHERE \"v\" %% 2 = 0 ORDER BY \"id\"",
           rows, keys);
  harness_exec(db, sql);
}

#define ITEM_EXPR "coalesce(\"k\", '~') || '/' || CAST(\"v\" AS TEXT)"
#define CHILD_EXPR "CAST(\"item\" AS TEXT)"

/* What "nothing changed" compares: item and child rows, and the number of
 * indexes and constraints on item. */
struct snapshot {
  char *items;
  char *children;
  long long indexes;
  long long constraints;
};

static long long index_count(nodup_db *db, const char *table) {
  return harness_count(
      db,
      harness_pick("SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                   " AND tbl_name = $1",
                   "SELECT count(*) FROM pg_catalog.pg_index"
                   " WHERE indrelid = CAST($1 AS regclass)"),
      table);
}

/* Table constraints on `table` (PostgreSQL; 0 on SQLite). NOT NULL is not
 * one: PostgreSQL 18 catalogues each NOT NULL column in pg_constraint too
 * (contype 'n'), which would make the count depend on the version. */
static long long constraint_count(nodup_db *db, const char *table) {
  if (!harness_is_pg())
    return 0;
  return harness_count(db,
                       "SELECT count(*) FROM pg_catalog.pg_constraint"
                       " WHERE conrelid = CAST($1 AS regclass) AND contype <> 'n'",
                       table);
}

static void snapshot_take(nodup_db *db, struct snapshot *s) {
  s->items = rig_rows(db, "item", ITEM_EXPR, "1 = 1");
  s->children = rig_rows(db, "child", CHILD_EXPR, "1 = 1");
  s->indexes = index_count(db, "item");
  s->constraints = constraint_count(db, "item");
}

static void snapshot_free(struct snapshot *s) {
  free(s->items);
  free(s->children);
  s->items = s->children = NULL;
}

/* Assert that item and child are exactly as in `before` (freed here). */
static void expect_unchanged(nodup_db *db, struct snapshot *before,
                             const char *what) {
  struct snapshot after;
  snapshot_take(db, &after);
  int items = strcmp(before->items, after.items) == 0;
  int children = strcmp(before->children, after.children) == 0;
  long long ix0 = before->indexes, ix1 = after.indexes;
  long long c0 = before->constraints, c1 = after.constraints;
  snapshot_free(before);
  snapshot_free(&after);
  if (!items || !children || ix0 != ix1 || c0 != c1)
    fail_msg("%s changed the database: item rows %s, child rows %s,"
             " indexes %lld -> %lld, constraints %lld -> %lld",
             what, items ? "same" : "CHANGED", children ? "same" : "CHANGED",
             ix0, ix1, c0, c1);
}

static void expect_no_rows(nodup_db *db, const char *what, const char *sql) {
  char *names = harness_query(db, sql, NULL);
  if (names != NULL) {
    char copy[512];
    snprintf(copy, sizeof copy, "%s", names);
    free(names);
    fail_msg("left behind: %s: %s", what, copy);
  }
}

/* No guard trigger or function, no INVALID index, no open transaction. */
static void expect_nothing_temporary(nodup_db *db) {
  if (harness_is_pg()) {
    expect_no_rows(db, "trigger",
                   "SELECT string_agg(tgname::text, ', ')"
                   " FROM pg_catalog.pg_trigger WHERE tgname LIKE 'nodup%'");
    expect_no_rows(db, "function",
                   "SELECT string_agg(proname::text, ', ')"
                   " FROM pg_catalog.pg_proc WHERE proname LIKE 'nodup%'");
    expect_no_rows(db, "invalid index",
                   "SELECT string_agg(c.relname::text, ', ')"
                   " FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c"
                   " ON c.oid = i.indexrelid"
                   " WHERE NOT i.indisvalid OR NOT i.indisready");
  } else {
    expect_no_rows(db, "trigger",
                   "SELECT group_concat(name, ', ') FROM sqlite_master"
                   " WHERE type = 'trigger'");
  }
  assert_false(harness_in_transaction(db));
}

/*
 * The key is backed, as `nodup check` sees it (nodup_key_check), by the
 * unique index `want`, which the catalog shows as unique (and valid and
 * ready on PostgreSQL).
 */
static void expect_backed(nodup_db *db, const char *table,
                          const char *const *cols, size_t ncols,
                          const char *where, const char *want) {
  char name[NAME_MAX_LEN], sql[256];
  assert_nodup(db, NODUP_OK,
               nodup_key_check(db, table, cols, ncols, where, name,
                               sizeof name));
  assert_string_equal(name, want);
  if (harness_is_pg()) {
    assert_int_equal(
        harness_count(db,
                      "SELECT count(*) FROM pg_catalog.pg_index i"
                      " JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
                      " WHERE c.relname = $1 AND i.indisunique"
                      " AND i.indisvalid AND i.indisready",
                      want),
        1);
  } else {
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pragma_index_list('%s')"
             " WHERE name = $1 AND \"unique\" = 1",
             table);
    assert_int_equal(harness_count(db, sql, want), 1);
  }
}

static void expect_unbacked(nodup_db *db, const char *table,
                            const char *const *cols, size_t ncols,
                            const char *where) {
  assert_nodup(db, NODUP_ERR_UNBACKED,
               nodup_key_check(db, table, cols, ncols, where, NULL, 0));
}

static void expect_no_duplicates(nodup_db *db, const char *table,
                                 const char *const *cols, size_t ncols,
                                 const char *where) {
  long long groups = -1, redundant = -1;
  assert_nodup(db, NODUP_OK,
               nodup_count_duplicates(db, table, cols, ncols, where, &groups,
                                      &redundant));
  assert_int_equal(groups, 0);
  assert_int_equal(redundant, 0);
}

/* PostgreSQL: the number of UNIQUE constraints named `name`. */
static long long unique_constraints_named(nodup_db *db, const char *name) {
  return harness_count(db,
                       "SELECT count(*) FROM pg_catalog.pg_constraint"
                       " WHERE conname = $1 AND contype = 'u'",
                       name);
}

/* PostgreSQL: 1 when index `name` is NULLS NOT DISTINCT, 0 when not. */
static long long index_nulls_not_distinct(nodup_db *db, const char *name) {
  return harness_count(db,
                       "SELECT CAST(i.indnullsnotdistinct AS int) FROM pg_catalog.pg_index i"
                       " JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
                       " WHERE c.relname = $1",
                       name);
}

/* item's rows (`filter`) and all of child's are exactly `items` and
 * `children` (rows_text fingerprints); fails naming both as they are. */
static void expect_item_rows(nodup_db *db, const char *filter, const char *items,
                             const char *children, const char *what) {
  char *got_items = rig_rows(db, "item", ITEM_EXPR, filter);
  char *got_children = rig_rows(db, "child", CHILD_EXPR, "1 = 1");
  int ok = strcmp(got_items, items) == 0 && strcmp(got_children, children) == 0;
  char copy[512];
  snprintf(copy, sizeof copy, "%s | %s", got_items, got_children);
  free(got_items);
  free(got_children);
  if (!ok) fail_msg("%s: item and child rows are %s, expected %s | %s", what, copy, items,
                    children);
}

/* ---------------------------------------------------------------------------
 * Live writers
 */

/* Unique violations are what the writers expect once the index (or the
 * online guard) is in. */
static int expected_violation(int rc, nodup_db *db) {
  return is_unique_violation(rc, nodup_errmsg(db));
}

/*
 * Check-then-insert, the two ways applications do it: in one statement
 * (INSERT ... SELECT ... WHERE NOT EXISTS, racy under READ COMMITTED) or
 * in two (SELECT, then INSERT when nothing was found: racy everywhere,
 * SQLite included). Keys come from a window of 8 that moves every 5 ms,
 * so the writers keep inserting and keep colliding.
 */
static void naive_write(struct rig_writer *w) {
  char value[64], sql[256];
  long window = (long)((rig_now_ms() - w->live->origin_ms) / 5.0);
  snprintf(value, sizeof value, "w%ld-%u", window, (rig_writer_random(w) >> 16) % 8u);
  double start = rig_now_ms();
  if (w->key == NULL) {
    snprintf(sql, sizeof sql,
             "INSERT INTO \"item\" (\"k\", \"v\") SELECT '%s', -1"
             " WHERE NOT EXISTS (SELECT 1 FROM \"item\""
             " WHERE \"k\" = '%s')",
             value, value);
    rig_live_record(w, nodup_exec(w->db, sql), start);
    return;
  }
  const char *vals[1] = {value};
  nodup_result found = {NULL, 0};
  int rc = nodup_find(w->key, vals, &found);
  rig_live_record(w, rc, start);
  if (rc != NODUP_OK || found.id != NULL)
    return;
  nodup_result inserted = {NULL, 0};
  start = rig_now_ms();
  rig_live_record(w, nodup_insert(w->key, vals, NULL, NULL, 0, &inserted), start);
}

/* Static: a failed assertion longjmps out of the test. */
static struct rig_live live_state;

/* Connect the writers (odd ones check and insert in two statements) and
 * start them all, or fail. */
static void live_start(struct rig_live *live) {
  rig_live_connect(live, WRITERS);
  for (int i = 1; i < WRITERS; i += 2)
    live->writers[i].key = harness_key_unbacked(live->writers[i].db, "item", key_k, 1, NULL);
  rig_live_start(live, naive_write, expected_violation);
}

/*
 * 2,000 rows over 300 keys and 1,000 children; writers running from
 * 300 ms before enforce until 300 ms after it returned.
 */
static void live_writers(void **state, int online) {
  nodup_db *db = *state;
  struct rig_live *live = &live_state;
  nodup_enforce_options opt;
  memset(&opt, 0, sizeof opt);
  opt.merge = 1;
  opt.mode = online ? NODUP_ENFORCE_ONLINE : NODUP_ENFORCE_LOCKED;
  opt.lock_timeout_ms = LOCK_TIMEOUT_MS;
  create_items(db, 2000, 300);

  live_start(live);
  rig_sleep_ms(300);
  long long before = atomic_load(&live->statements);
  double started = rig_now_ms() - live->origin_ms;
  nodup_enforce_report *rep = NULL;
  int rc = nodup_enforce(&rep, db, "item", key_k, 1, NULL, &opt);
  double ended = rig_now_ms() - live->origin_ms;
  long long during = atomic_load(&live->statements) - before;
  struct outcome o;
  memset(&o, 0, sizeof o);
  o.rc = rc;
  snprintf(o.msg, sizeof o.msg, "%s", nodup_errmsg(db));
  if (rep != NULL) {
    snprintf(o.index, sizeof o.index, "%s", rep->index ? rep->index : "");
    o.constraint = rep->constraint;
    o.merged_groups = rep->merged_groups;
    o.builds = rep->builds;
    o.fell_back = rep->fell_back;
    o.already = rep->already;
  }
  nodup_enforce_free(rep);
  rig_sleep_ms(300);
  rig_live_stop(live);

  long long statements = 0, violations = 0;
  double max_latency = 0;
  for (int i = 0; i < WRITERS; i++) {
    const struct rig_writer *w = &live->writers[i];
    statements += w->statements;
    violations += w->expected;
    if (w->max_latency_ms > max_latency)
      max_latency = w->max_latency_ms;
  }
  print_message("enforce %s: %.0f ms; writers: %lld statements (%lld while"
                " enforce ran), %lld unique violations, max statement"
                " latency %.1f ms; merged %lld groups, %d build(s)%s\n",
                online ? "online" : "locked", ended - started, statements,
                during, violations, max_latency, o.merged_groups, o.builds,
                o.fell_back ? ", fell back to locked" : "");

  expect_ok(&o);
  assert_false(o.already);
  assert_string_equal(o.index, "item_k_key");
  for (int i = 0; i < WRITERS; i++) {
    const struct rig_writer *w = &live->writers[i];
    if (w->other_rc != NODUP_OK)
      fail_msg("writer %d failed with %s, not a unique violation: %s", i,
               nodup_strerror(w->other_rc), w->other_msg);
    if (w->expected > 0 && w->first_expected_ms < started)
      fail_msg("writer %d got a unique violation at %.1f ms, before enforce"
               " started (%.1f ms): %s",
               i, w->first_expected_ms, started, w->expected_msg);
    if (w->max_latency_ms >= LATENCY_BOUND_MS)
      fail_msg("writer %d waited %.0f ms for one statement (bound %.0f ms)",
               i, w->max_latency_ms, LATENCY_BOUND_MS);
    if (w->statements == 0)
      fail_msg("writer %d never ran", i);
  }

  expect_backed(db, "item", key_k, 1, NULL, "item_k_key");
  expect_no_duplicates(db, "item", key_k, 1, NULL);
  /* The first 300 keys were all duplicated; more came from the race. */
  assert_true(o.merged_groups >= 300);
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"item\""
                                     " WHERE \"k\" LIKE 'k%'", NULL), 300);
  /* Children re-pointed, none lost, none dangling. */
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"child\"", NULL),
                   1000);
  assert_int_equal(harness_count(db,
                                 "SELECT count(*) FROM \"child\" c WHERE NOT"
                                 " EXISTS (SELECT 1 FROM \"item\" i"
                                 " WHERE i.\"id\" = c.\"item\")",
                                 NULL),
                   0);
  if (harness_is_pg()) {
    assert_int_equal(o.constraint, 1);
    assert_int_equal(unique_constraints_named(db, "item_k_key"), 1);
  } else {
    assert_int_equal(
        harness_count(db, "SELECT count(*) FROM pragma_foreign_key_check",
                      NULL),
        0);
  }
  expect_nothing_temporary(db);
}

static void test_live_writers_locked(void **state) { live_writers(state, 0); }

static void test_live_writers_online(void **state) { live_writers(state, 1); }

/* ---------------------------------------------------------------------------
 * Idempotence, refusal, names
 */

static void test_idempotent(void **state) {
  nodup_db *db = *state;
  nodup_enforce_options opt;
  struct snapshot before;
  memset(&opt, 0, sizeof opt);
  opt.merge = 1;
  create_items(db, 40, 7);

  struct outcome first = enforce(db, "item", key_k, 1, NULL, &opt);
  expect_ok(&first);
  assert_false(first.already);
  assert_string_equal(first.index, "item_k_key");
  assert_int_equal(first.merged_groups, 7);
  assert_true(first.run[0] != '\0');
  assert_int_equal(first.constraint, harness_is_pg());
  expect_backed(db, "item", key_k, 1, NULL, "item_k_key");

  snapshot_take(db, &before);
  struct outcome second = enforce(db, "item", key_k, 1, NULL, &opt);
  expect_ok(&second);
  assert_true(second.already);
  assert_string_equal(second.index, "item_k_key");
  assert_int_equal(second.merged_groups, 0);
  assert_string_equal(second.run, "");
  expect_unchanged(db, &before, "a second enforce");

  /* Without merge too: a backed key is done, whatever the options. */
  opt.merge = 0;
  snapshot_take(db, &before);
  struct outcome third = enforce(db, "item", key_k, 1, NULL, &opt);
  expect_ok(&third);
  assert_true(third.already);
  expect_unchanged(db, &before, "a third enforce");
  expect_nothing_temporary(db);
}

/* An index the application made itself backs the key: reported, and no
 * second index or constraint is added. */
static void test_existing_index_is_reported(void **state) {
  nodup_db *db = *state;
  nodup_enforce_options opt;
  struct snapshot before;
  memset(&opt, 0, sizeof opt);
  opt.merge = 1;
  create_items(db, 10, 10);
  harness_exec(db, "CREATE UNIQUE INDEX \"hand_made\" ON \"item\" (\"k\")");
  snapshot_take(db, &before);
  struct outcome o = enforce(db, "item", key_k, 1, NULL, &opt);
  expect_ok(&o);
  assert_true(o.already);
  assert_string_equal(o.index, "hand_made");
  assert_int_equal(o.merged_groups, 0);
  expect_unchanged(db, &before, "enforce on a backed key");
}

static void test_refuses_duplicates_without_merge(void **state) {
  nodup_db *db = *state;
  nodup_enforce_options opt;
  struct snapshot before;
  memset(&opt, 0, sizeof opt);
  create_items(db, 30, 10); /* 10 keys, 3 rows each */
  /* Two NULL keys: not duplicates for a unique index, not counted. */
  harness_exec(db, "INSERT INTO \"item\" (\"k\", \"v\") VALUES (NULL, 100),"
                   " (NULL, 101)");

  for (int online = 0; online <= harness_is_pg(); online++) {
    opt.mode = online ? NODUP_ENFORCE_ONLINE : NODUP_ENFORCE_LOCKED;
    snapshot_take(db, &before);
    struct outcome o = enforce(db, "item", key_k, 1, NULL, &opt);
    expect_rc(&o, NODUP_ERR_DUPLICATE);
    assert_contains(o.msg, "10");
    expect_unchanged(db, &before, online ? "a refused online enforce"
                                         : "a refused enforce");
    expect_unbacked(db, "item", key_k, 1, NULL);
    expect_nothing_temporary(db);
  }
}

/* No duplicates: no merge needed, none run, whatever opt.merge says. */
static void test_clean_table_custom_name(void **state) {
  nodup_db *db = *state;
  nodup_enforce_options opt;
  memset(&opt, 0, sizeof opt);
  opt.name = "item_k_uniq";
  create_items(db, 10, 10);
  struct outcome o = enforce(db, "item", key_k, 1, NULL, &opt);
  expect_ok(&o);
  assert_false(o.already);
  assert_string_equal(o.index, "item_k_uniq");
  assert_int_equal(o.merged_groups, 0);
  assert_string_equal(o.run, "");
  expect_backed(db, "item", key_k, 1, NULL, "item_k_uniq");
  if (harness_is_pg()) {
    /* A key without predicate gets a real UNIQUE constraint. */
    assert_int_equal(o.constraint, 1);
    assert_int_equal(unique_constraints_named(db, "item_k_uniq"), 1);
  } else {
    assert_int_equal(o.constraint, 0);
  }
  assert_nodup(db, NODUP_ERR_CONSTRAINT,
               nodup_exec(db, "INSERT INTO \"item\" (\"k\") VALUES ('k3')"));
  expect_nothing_temporary(db);
}

/* ---------------------------------------------------------------------------
 * NULL keys
 */

/* Three NULL keys (children on two), 'a' twice, 'b' once. */
static void create_null_items(nodup_db *db) {
  create_item_tables(db);
  harness_exec(db, "INSERT INTO \"item\" (\"id\", \"k\", \"v\") VALUES"
                   " (1, NULL, 1), (2, NULL, 2), (3, NULL, 3), (4, 'a', 4),"
                   " (5, 'a', 5), (6, 'b', 6);"
                   "INSERT INTO \"child\" (\"item\") VALUES (2), (3), (5)");
}

static void test_null_keys_stay_distinct(void **state) {
  nodup_db *db = *state;
  nodup_enforce_options opt;
  memset(&opt, 0, sizeof opt);
  opt.merge = 1;
  create_null_items(db);
  struct outcome o = enforce(db, "item", key_k, 1, NULL, &opt);
  expect_ok(&o);
  assert_int_equal(o.merged_groups, 1); /* 'a' only */
  expect_item_rows(db, "\"k\" IS NULL", "1=~/1;2=~/2;3=~/3", "1=2;2=3;3=4",
                   "NULL keys kept apart");
  expect_backed(db, "item", key_k, 1, NULL, "item_k_key");
  if (harness_is_pg() && harness_pg_version(db) >= 150000)
    assert_int_equal(index_nulls_not_distinct(db, "item_k_key"), 0);
  /* The index lets NULLs repeat and stops 'a'. */
  assert_nodup(db, NODUP_OK,
               nodup_exec(db, "INSERT INTO \"item\" (\"id\", \"k\")"
                              " VALUES (10, NULL)"));
  assert_nodup(db, NODUP_ERR_CONSTRAINT,
               nodup_exec(db, "INSERT INTO \"item\" (\"id\", \"k\")"
                              " VALUES (11, 'a')"));
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"item\""
                                     " WHERE \"k\" IS NULL", NULL), 4);
}

/*
 * nulls_equal: on PostgreSQL 15+ the NULL rows are one group, merged like
 * any other, and the index is NULLS NOT DISTINCT; SQLite (and older
 * PostgreSQL) refuse with nothing changed.
 */
static void test_nulls_equal(void **state) {
  nodup_db *db = *state;
  nodup_enforce_options opt;
  struct snapshot before;
  memset(&opt, 0, sizeof opt);
  opt.nulls_equal = 1;
  create_null_items(db);

  if (!harness_is_pg() || harness_pg_version(db) < 150000) {
    opt.merge = 1;
    snapshot_take(db, &before);
    struct outcome o = enforce(db, "item", key_k, 1, NULL, &opt);
    expect_rc(&o, NODUP_ERR_USAGE);
    assert_contains(o.msg, "this database has no NULLS NOT DISTINCT unique index");
    expect_unchanged(db, &before, "a refused nulls_equal enforce");
    expect_unbacked(db, "item", key_k, 1, NULL);
    return;
  }

  /* Without merge the NULL rows count as a duplicate group too. */
  snapshot_take(db, &before);
  struct outcome refused = enforce(db, "item", key_k, 1, NULL, &opt);
  expect_rc(&refused, NODUP_ERR_DUPLICATE);
  assert_contains(refused.msg, "2");
  expect_unchanged(db, &before, "a refused nulls_equal enforce");

  opt.merge = 1;
  struct outcome o = enforce(db, "item", key_k, 1, NULL, &opt);
  expect_ok(&o);
  assert_int_equal(o.merged_groups, 2);
  expect_item_rows(db, "1 = 1", "1=~/1;4=a/4;6=b/6", "1=1;2=1;3=4", "a nulls_equal merge");
  expect_backed(db, "item", key_k, 1, NULL, "item_k_key");
  assert_int_equal(index_nulls_not_distinct(db, "item_k_key"), 1);
  assert_nodup(db, NODUP_ERR_CONSTRAINT,
               nodup_exec(db, "INSERT INTO \"item\" (\"id\", \"k\")"
                              " VALUES (10, NULL)"));
  expect_nothing_temporary(db);
}

/* ---------------------------------------------------------------------------
 * Partial keys
 */

static const char *const key_slug[] = {"slug"};
#define LIVE_DOCS "\"deleted_at\" IS NULL"

/*
 * Live documents: 'a' twice, 'b' once, 'c' three times; deleted ones
 * repeat too ('a' twice, 'b' twice) and must be left alone. References
 * to a merged live row move to its keeper, references to deleted rows
 * stay.
 */
static void partial_key(nodup_db *db, int online) {
  nodup_enforce_options opt;
  memset(&opt, 0, sizeof opt);
  opt.merge = 1;
  opt.mode = online ? NODUP_ENFORCE_ONLINE : NODUP_ENFORCE_LOCKED;
  harness_exec(db,
               "CREATE TABLE \"doc\" ({id}, \"slug\" TEXT NOT NULL,"
               " \"deleted_at\" TEXT);"
               "CREATE TABLE \"doc_ref\" ({id}, \"doc\" INTEGER NOT NULL"
               " REFERENCES \"doc\" (\"id\"));"
               "INSERT INTO \"doc\" (\"id\", \"slug\", \"deleted_at\") VALUES"
               " (1, 'a', NULL), (2, 'a', NULL), (3, 'a', '2024-01-01'),"
               " (4, 'a', '2024-01-02'), (5, 'b', NULL), (6, 'b', '2024-01-03'),"
               " (7, 'b', '2024-01-03'), (8, 'c', NULL), (9, 'c', NULL),"
               " (10, 'c', NULL);"
               "INSERT INTO \"doc_ref\" (\"doc\") VALUES (2), (3), (9), (10), (7)");
  struct outcome o = enforce(db, "doc", key_slug, 1, LIVE_DOCS, &opt);
  expect_ok(&o);
  assert_string_equal(o.index, "doc_slug_key");
  assert_int_equal(o.merged_groups, 2);
  assert_int_equal(o.constraint, 0); /* a partial index cannot back one */

  harness_expect(db,
                 harness_pick("SELECT group_concat(r, ';') FROM (SELECT"
                              " CAST(\"id\" AS TEXT) || '=' || \"slug\" || '@'"
                              " || coalesce(\"deleted_at\", '-') AS r"
                              " FROM \"doc\" ORDER BY \"id\")",
                              "SELECT string_agg(CAST(\"id\" AS TEXT) || '='"
                              " || \"slug\" || '@' || coalesce(\"deleted_at\","
                              " '-'), ';' ORDER BY \"id\") FROM \"doc\""),
                 NULL,
                 "1=a@-;3=a@2024-01-01;4=a@2024-01-02;5=b@-;6=b@2024-01-03;"
                 "7=b@2024-01-03;8=c@-");
  harness_expect(db,
                 harness_pick("SELECT group_concat(d, ',') FROM (SELECT"
                              " CAST(\"doc\" AS TEXT) AS d FROM \"doc_ref\""
                              " ORDER BY \"id\")",
                              "SELECT string_agg(CAST(\"doc\" AS TEXT), ','"
                              " ORDER BY \"id\") FROM \"doc_ref\""),
                 NULL, "1,3,8,8,7");

  expect_backed(db, "doc", key_slug, 1, LIVE_DOCS, "doc_slug_key");
  expect_unbacked(db, "doc", key_slug, 1, NULL);
  if (harness_is_pg()) {
    assert_int_equal(harness_count(db,
                                   "SELECT count(*) FROM pg_catalog.pg_index i"
                                   " JOIN pg_catalog.pg_class c"
                                   " ON c.oid = i.indexrelid"
                                   " WHERE c.relname = $1"
                                   " AND i.indpred IS NOT NULL",
                                   "doc_slug_key"),
                     1);
    /* No constraint on the index; the primary key is the only one. */
    assert_int_equal(harness_count(db,
                                   "SELECT count(*) FROM pg_catalog.pg_constraint"
                                   " WHERE conname = $1",
                                   "doc_slug_key"),
                     0);
    assert_int_equal(constraint_count(db, "doc"), 1);
  } else {
    assert_int_equal(harness_count(db,
                                   "SELECT count(*) FROM pragma_index_list('doc')"
                                   " WHERE name = $1 AND partial = 1",
                                   "doc_slug_key"),
                     1);
  }
  /* Deleted rows may repeat; live ones may not. */
  assert_nodup(db, NODUP_OK,
               nodup_exec(db, "INSERT INTO \"doc\" (\"id\", \"slug\","
                              " \"deleted_at\") VALUES (20, 'a', '2024-02-01')"));
  assert_nodup(db, NODUP_ERR_CONSTRAINT,
               nodup_exec(db, "INSERT INTO \"doc\" (\"id\", \"slug\","
                              " \"deleted_at\") VALUES (21, 'a', NULL)"));
  expect_nothing_temporary(db);
}

static void test_partial_key(void **state) { partial_key(*state, 0); }

static void test_partial_key_online(void **state) { partial_key(*state, 1); }

/* ---------------------------------------------------------------------------
 * Dry run and misuse
 */

static void test_dry_run(void **state) {
  nodup_db *db = *state;
  nodup_enforce_options opt;
  struct snapshot before;
  memset(&opt, 0, sizeof opt);
  opt.merge = 1;
  opt.dry_run = 1;
  create_items(db, 40, 7);
  snapshot_take(db, &before);
  struct outcome dry = enforce(db, "item", key_k, 1, NULL, &opt);
  expect_ok(&dry);
  assert_false(dry.already);
  assert_string_equal(dry.index, "item_k_key");
  assert_int_equal(dry.merged_groups, 7);
  assert_int_equal(dry.constraint, harness_is_pg());
  expect_unchanged(db, &before, "a dry run");
  expect_unbacked(db, "item", key_k, 1, NULL);
  long long groups = -1;
  assert_nodup(db, NODUP_OK,
               nodup_count_duplicates(db, "item", key_k, 1, NULL, &groups,
                                      NULL));
  assert_int_equal(groups, 7);
  expect_nothing_temporary(db);

  /* The real run does what the dry run said. */
  opt.dry_run = 0;
  struct outcome real = enforce(db, "item", key_k, 1, NULL, &opt);
  expect_ok(&real);
  assert_int_equal(real.merged_groups, dry.merged_groups);
  assert_int_equal(real.constraint, dry.constraint);
  expect_backed(db, "item", key_k, 1, NULL, "item_k_key");
}

static void test_usage_refusals(void **state) {
  nodup_db *db = *state;
  nodup_enforce_options opt;
  struct snapshot before;
  static const char *const nope[] = {"nope"};
  memset(&opt, 0, sizeof opt);
  opt.merge = 1;
  create_items(db, 20, 5);

  /* Inside the caller's transaction. */
  snapshot_take(db, &before);
  harness_exec(db, harness_pick("BEGIN IMMEDIATE", "BEGIN"));
  struct outcome in_txn = enforce(db, "item", key_k, 1, NULL, &opt);
  harness_exec(db, "ROLLBACK");
  expect_rc(&in_txn, NODUP_ERR_USAGE);
  expect_unchanged(db, &before, "enforce inside a transaction");

  /* SQLite has no online mode; an online run cannot be a dry run. */
  opt.mode = NODUP_ENFORCE_ONLINE;
  opt.dry_run = harness_is_pg();
  snapshot_take(db, &before);
  struct outcome mode = enforce(db, "item", key_k, 1, NULL, &opt);
  expect_rc(&mode, NODUP_ERR_USAGE);
  expect_unchanged(db, &before, harness_is_pg() ? "an online dry run"
                                                : "online on SQLite");
  opt.mode = NODUP_ENFORCE_LOCKED;
  opt.dry_run = 0;

  struct outcome no_table = enforce(db, "nope", key_k, 1, NULL, &opt);
  expect_rc(&no_table, NODUP_ERR_NO_TABLE);
  struct outcome no_column = enforce(db, "item", nope, 1, NULL, &opt);
  expect_rc(&no_column, NODUP_ERR_NO_COLUMN);
  expect_unbacked(db, "item", key_k, 1, NULL);
  expect_nothing_temporary(db);
}

/* ---------------------------------------------------------------------------
 * Interruptions
 */

/* `rows` distinct md5 keys plus 20 duplicated: big enough that the index
 * build takes a moment. */
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

/* What the terminator looks for: the backend building the index. */
#define CIC_QUERY "CREATE UNIQUE INDEX CONCURRENTLY%"

/*
 * PostgreSQL: the backend building the index concurrently is terminated.
 * Enforce must fail with a message and leave nothing behind; a rerun
 * must succeed. If the build finished before the killer saw it, the
 * attempt is repeated on a bigger table.
 */
static void test_backend_terminated_mid_build(void **state) {
  nodup_db *db = *state;
  static struct rig_terminator killer;
  nodup_enforce_options opt;
  struct outcome o;
  char table[32];
  memset(&o, 0, sizeof o);
  memset(&opt, 0, sizeof opt);
  opt.merge = 1;
  opt.mode = NODUP_ENFORCE_ONLINE;
  opt.lock_timeout_ms = LOCK_TIMEOUT_MS;
  nodup_db *watcher = harness_connect();

  int attempt;
  for (attempt = 1; attempt <= 3; attempt++) {
    snprintf(table, sizeof table, "big%d", attempt);
    create_big(db, table, 300000L * attempt);
    rig_terminate_start(&killer, watcher, CIC_QUERY);
    o = enforce(db, table, key_k, 1, NULL, &opt);
    if (rig_terminate_stop(&killer))
      break;
    print_message("attempt %d: the build finished before it was seen (%s);"
                  " trying a bigger table\n",
                  attempt, nodup_strerror(o.rc));
  }
  if (attempt > 3)
    fail_msg("could not catch CREATE UNIQUE INDEX CONCURRENTLY in 3 attempts");
  print_message("terminated mid-build on attempt %d; enforce: %s: %s\n",
                attempt, nodup_strerror(o.rc), o.msg);
  if (o.rc == NODUP_OK)
    fail_msg("enforce returned NODUP_OK although its backend was terminated"
             " (report: index %s, builds %d)", o.index, o.builds);
  assert_true(o.msg[0] != '\0');
  int usable = nodup_exec(db, "SELECT 1") == NODUP_OK;
  print_message("the enforcing connection is %s after the failure\n",
                usable ? "usable" : "broken");

  /* Nothing left behind, seen from a connection of its own. */
  nodup_db *check = harness_connect();
  expect_nothing_temporary(check);

  /* A rerun, as a user would do it: a fresh connection. */
  nodup_db *again = harness_connect();
  struct outcome rerun = enforce(again, table, key_k, 1, NULL, &opt);
  expect_ok(&rerun);
  char want[64];
  snprintf(want, sizeof want, "%s_k_key", table);
  expect_backed(again, table, key_k, 1, NULL, want);
  expect_no_duplicates(again, table, key_k, 1, NULL);
  assert_int_equal(unique_constraints_named(again, want), 1);
  expect_nothing_temporary(again);
}

/* What a forked enforcer runs: the table and the options. */
struct enforcer {
  const char *table;
  const nodup_enforce_options *opt;
};

/*
 * nodup_enforce in a child process on its own connection, ready (for
 * rig_fork to return) once connected. It exits 0 on NODUP_OK, 1
 * otherwise; it never touches cmocka.
 */
static int enforcer_main(struct rig_child *child, int index, void *arg) {
  const struct enforcer *e = arg;
  nodup_db *db = NULL;
  nodup_enforce_report *rep = NULL;
  (void)index;
  int rc = nodup_open(&db, harness_url());
  rig_child_ready(child);
  if (rc == NODUP_OK)
    rc = nodup_enforce(&rep, db, e->table, key_k, 1, NULL, e->opt);
  nodup_enforce_free(rep);
  nodup_close(db);
  return rc == NODUP_OK ? 0 : 1;
}

/* Fork an enforcer of `table`; returns its pid once it has connected. The
 * test's connection must be closed first (rig_detach). */
static pid_t fork_enforcer(const char *table, const nodup_enforce_options *opt) {
  struct enforcer e = {table, opt};
  return rig_fork(enforcer_main, &e);
}

/* SQLite: 10,000 rows over 9,000 keys, so 1,000 duplicate groups. */
static void create_sqlite_big(nodup_db *db, const char *table) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "CREATE TABLE \"%s\" ({id}, \"k\" TEXT NOT NULL);"
           "WITH RECURSIVE n(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM n"
           " WHERE g < 10000) INSERT INTO \"%s\" (\"k\")"
           " SELECT 'k' || CAST(g %% 9000 AS TEXT) FROM n",
           table, table);
  harness_exec(db, sql);
}

/*
 * SQLite: the enforcing process is killed at points spread over the run
 * (fractions of the time one uninterrupted run takes here). Enforce merges
 * in batches before it takes the lock for the rest and the index, and each
 * batch is one transaction, so after each kill every duplicate group is
 * either untouched or wholly merged (rows = 9,000 + the groups left), and
 * the index is there only when no group is: never anything in between. A
 * rerun then succeeds.
 */
static void kill_client_sqlite(void **state) {
  static const double fractions[] = {0.05, 0.25, 0.5, 0.75, 0.95};
  nodup_enforce_options opt;
  memset(&opt, 0, sizeof opt);
  opt.merge = 1;
  int untouched = 0, done = 0;

  create_sqlite_big(*state, "calibration");
  double start = rig_now_ms();
  struct outcome calibration = enforce(*state, "calibration", key_k, 1, NULL,
                                       &opt);
  double full_ms = rig_now_ms() - start;
  expect_ok(&calibration);

  for (size_t i = 0; i < COUNT_OF(fractions); i++) {
    char table[32], sql[128], want[64];
    nodup_db *db = *state;
    long delay = (long)(full_ms * fractions[i]);
    snprintf(table, sizeof table, "big%zu", i);
    snprintf(want, sizeof want, "%s_k_key", table);
    create_sqlite_big(db, table);
    rig_detach(state);
    pid_t pid = fork_enforcer(table, &opt);
    rig_sleep_ms(delay);
    int status = rig_kill(pid);
    db = rig_reopen(state);

    long long groups = -1;
    assert_nodup(db, NODUP_OK,
                 nodup_count_duplicates(db, table, key_k, 1, NULL, &groups,
                                        NULL));
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", table);
    long long rows = harness_count(db, sql, NULL);
    long long indexes = index_count(db, table);
    if (indexes == 0 && groups >= 0 && groups <= 1000 && rows == 9000 + groups)
      untouched++;   /* no index yet; the batches merged so far are whole */
    else if (indexes == 1 && groups == 0 && rows == 9000)
      done++;
    else
      fail_msg("after a kill at %ld ms (status %d): %lld indexes,"
               " %lld duplicate groups, %lld rows: half-done",
               delay, status, indexes, groups, rows);
    harness_expect(db, "PRAGMA integrity_check", NULL, "ok");

    struct outcome rerun = enforce(db, table, key_k, 1, NULL, &opt);
    expect_ok(&rerun);
    expect_backed(db, table, key_k, 1, NULL, want);
    expect_no_duplicates(db, table, key_k, 1, NULL);
    expect_nothing_temporary(db);
  }
  print_message("one enforce: %.0f ms; killed it %zu times: %d before"
                " commit, %d after\n",
                full_ms, COUNT_OF(fractions), untouched, done);
}

/* The point to kill the client at: its backend builds the index. */
static int cic_running(void *db) {
  return harness_count(db,
                       "SELECT count(*) FROM pg_catalog.pg_stat_activity"
                       " WHERE datname = current_database()"
                       " AND state = 'active' AND query ILIKE $1",
                       CIC_QUERY) > 0;
}

/*
 * PostgreSQL: the enforcing process is killed while its backend builds
 * the index concurrently (online mode). The server finishes the
 * statement for a client that is gone; the guard trigger stays until
 * someone removes it. A rerun must leave the key backed by a valid index
 * with its constraint and nothing temporary.
 */
static void kill_client_pg(void **state) {
  nodup_enforce_options opt;
  memset(&opt, 0, sizeof opt);
  opt.merge = 1;
  opt.mode = NODUP_ENFORCE_ONLINE;
  opt.lock_timeout_ms = LOCK_TIMEOUT_MS;
  char table[32], want[64];
  int attempt, caught = 0;

  for (attempt = 1; attempt <= 3 && !caught; attempt++) {
    nodup_db *db = *state;
    snprintf(table, sizeof table, "big%d", attempt);
    snprintf(want, sizeof want, "%s_k_key", table);
    create_big(db, table, 300000L * attempt);
    rig_detach(state);
    pid_t pid = fork_enforcer(table, &opt);
    db = rig_reopen(state);
    int at = rig_wait_point(pid, cic_running, db, 30000, NULL);
    if (at == 1) {
      caught = 1;
      rig_kill(pid);
    } else if (at == -1) {
      rig_kill(pid);
      fail_msg("enforce neither built the index nor finished in 30 s");
    }
    if (!caught)
      print_message("attempt %d: enforce finished before it was killed\n",
                    attempt);
  }
  if (!caught)
    fail_msg("could not kill enforce during its build in 3 attempts");

  /* Wait for the orphaned backend to finish and go. */
  nodup_db *db = *state;
  double deadline = rig_now_ms() + 60000;
  while (harness_count(db,
                       "SELECT count(*) FROM pg_catalog.pg_stat_activity"
                       " WHERE datname = current_database()"
                       " AND pid <> pg_backend_pid()",
                       NULL) > 0) {
    if (rig_now_ms() > deadline)
      fail_msg("the killed client's backend is still running after 60 s");
    rig_sleep_ms(10);
  }
  char *left = harness_query(db,
                             "SELECT string_agg(tgname::text, ', ')"
                             " FROM pg_catalog.pg_trigger"
                             " WHERE tgname LIKE 'nodup%'",
                             NULL);
  print_message("after the kill: index %s, triggers left: %s\n",
                index_count(db, table) > 1 ? "built" : "not built",
                left != NULL ? left : "none");
  free(left);

  struct outcome rerun = enforce(db, table, key_k, 1, NULL, &opt);
  expect_ok(&rerun);
  print_message("rerun: already = %d, merged %lld groups\n", rerun.already,
                rerun.merged_groups);
  expect_backed(db, table, key_k, 1, NULL, want);
  expect_no_duplicates(db, table, key_k, 1, NULL);
  /* Both leftovers of the killed run in one message: the guard (which
   * would otherwise serialise every insert on the table forever) and the
   * constraint that was never attached. */
  left = harness_query(db,
                       "SELECT string_agg(tgname::text, ', ')"
                       " FROM pg_catalog.pg_trigger"
                       " WHERE tgname LIKE 'nodup%'",
                       NULL);
  long long constraints = unique_constraints_named(db, want);
  if (left != NULL || constraints != 1) {
    char copy[256];
    snprintf(copy, sizeof copy, "%s", left != NULL ? left : "none");
    free(left);
    fail_msg("after the rerun (already = %d): guard triggers left: %s;"
             " UNIQUE constraints named %s: %lld (want 1)",
             rerun.already, copy, want, constraints);
  }
  expect_nothing_temporary(db);
}

static void test_client_killed_mid_enforce(void **state) {
  if (harness_is_pg())
    kill_client_pg(state);
  else
    kill_client_sqlite(state);
}

/* ---------------------------------------------------------------------------
 * PostgreSQL: partitioned tables
 */

/* A table partitioned by region, 600 rows over 100 keys per region (so 200
 * duplicate groups across two partitions), and a child referencing it. */
static void create_partitioned(nodup_db *db, const char *t) {
  char sql[2048];
  snprintf(sql, sizeof sql,
           "CREATE TABLE %1$s (id bigint GENERATED ALWAYS AS IDENTITY, region int NOT NULL,"
           " k text, v int NOT NULL DEFAULT 0, PRIMARY KEY (id, region))"
           " PARTITION BY LIST (region);"
           "CREATE TABLE %1$s_r1 PARTITION OF %1$s FOR VALUES IN (1);"
           "CREATE TABLE %1$s_r2 PARTITION OF %1$s FOR VALUES IN (2);"
           "CREATE TABLE %1$s_child (id serial PRIMARY KEY, item bigint NOT NULL,"
           " region int NOT NULL, FOREIGN KEY (item, region) REFERENCES %1$s (id, region));"
           "INSERT INTO %1$s (region, k, v) SELECT 1 + i %% 2, 'k' || (i / 2) %% 100, i"
           " FROM generate_series(0, 1199) AS i;"
           "INSERT INTO %1$s_child (item, region) SELECT id, region FROM %1$s WHERE v %% 3 = 0",
           t);
  harness_exec(db, sql);
}

static void partitioned(void **state, int online) {
  nodup_db *db = *state;
  const char *const key[] = {"region", "k"};
  const char *t = online ? "pon" : "plock";
  char sql[512], want[64];
  nodup_enforce_options opt;
  memset(&opt, 0, sizeof opt);
  opt.mode = online ? NODUP_ENFORCE_ONLINE : NODUP_ENFORCE_LOCKED;
  opt.lock_timeout_ms = LOCK_TIMEOUT_MS;
  create_partitioned(db, t);
  snprintf(want, sizeof want, "%s_region_k_key", t);

  /* Without the partition key: refused up front, naming it, nothing done. */
  opt.merge = 1;
  struct outcome o = enforce(db, t, key + 1, 1, NULL, &opt);
  expect_rc(&o, NODUP_ERR_USAGE);
  if (strstr(o.msg, "partitioned by region") == NULL)
    fail_msg("refusal does not name the partition key: %s", o.msg);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", t);
  assert_int_equal(harness_count(db, sql, NULL), 1200);

  /* With it: merged, then the parent's index (each partition's attached)
   * and the constraint. */
  o = enforce(db, t, key, 2, NULL, &opt);
  expect_ok(&o);
  assert_false(o.already);
  assert_string_equal(o.index, want);
  assert_int_equal(o.merged_groups, 200);
  assert_int_equal(o.constraint, 1);
  /* Online: each partition's index was built concurrently (one round). */
  assert_int_equal(o.builds, online ? 1 : 0);
  assert_int_equal(unique_constraints_named(db, want), 1);
  expect_backed(db, t, key, 2, NULL, want);
  expect_no_duplicates(db, t, key, 2, NULL);
  assert_int_equal(harness_count(db, sql, NULL), 200);
  /* Each partition's unique index hangs under the parent's. */
  assert_int_equal(harness_count(db,
                                 "SELECT count(*) FROM pg_catalog.pg_inherits h"
                                 " JOIN pg_catalog.pg_index i ON i.indexrelid = h.inhrelid"
                                 " WHERE h.inhparent = CAST($1 AS regclass)"
                                 " AND i.indisunique AND i.indisvalid",
                                 want),
                   2);
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM %1$s_child c WHERE NOT EXISTS (SELECT 1 FROM %1$s p"
           " WHERE p.id = c.item AND p.region = c.region)", t);
  assert_int_equal(harness_count(db, sql, NULL), 0);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s_child", t);
  assert_int_equal(harness_count(db, sql, NULL), 400);
  /* A duplicate now fails on the index. */
  snprintf(sql, sizeof sql, "INSERT INTO %s (region, k) VALUES (1, 'k7')", t);
  assert_int_equal(nodup_exec(db, sql), NODUP_ERR_CONSTRAINT);
  expect_nothing_temporary(db);

  /* Twice: reported, nothing changed. */
  o = enforce(db, t, key, 2, NULL, &opt);
  expect_ok(&o);
  assert_true(o.already);
  assert_string_equal(o.index, want);
}

static void test_partitioned_locked(void **state) { partitioned(state, 0); }

static void test_partitioned_online(void **state) { partitioned(state, 1); }

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
  const struct CMUnitTest sqlite_tests[] = {
      T(test_live_writers_locked),
      T(test_idempotent),
      T(test_existing_index_is_reported),
      T(test_refuses_duplicates_without_merge),
      T(test_clean_table_custom_name),
      T(test_null_keys_stay_distinct),
      T(test_nulls_equal),
      T(test_partial_key),
      T(test_dry_run),
      T(test_usage_refusals),
      T(test_client_killed_mid_enforce),
  };
  /* The same, plus what only PostgreSQL has: the online mode. */
  const struct CMUnitTest pg_tests[] = {
      T(test_live_writers_locked),
      T(test_live_writers_online),
      T(test_idempotent),
      T(test_existing_index_is_reported),
      T(test_refuses_duplicates_without_merge),
      T(test_clean_table_custom_name),
      T(test_null_keys_stay_distinct),
      T(test_nulls_equal),
      T(test_partial_key),
      T(test_partial_key_online),
      T(test_dry_run),
      T(test_usage_refusals),
      T(test_backend_terminated_mid_build),
      T(test_client_killed_mid_enforce),
      T(test_partitioned_locked),
      T(test_partitioned_online),
  };
#undef T
  if (harness_is_pg())
    return cmocka_run_group_tests_name("enforce_pg", pg_tests, NULL, NULL);
  return cmocka_run_group_tests_name("enforce_sqlite", sqlite_tests, NULL,
                                     NULL);
}

/* fixtures.h -- schemas and sample databases shared by the scan and merge
 * suites. Needs cmocka, stdio, stdlib and string first. */
#ifndef NODUP_TEST_FIXTURES_H
#define NODUP_TEST_FIXTURES_H

#include <unistd.h> /* getpid */

/* Seed 000's shape: conferences with events, a many-to-many participant
 * link, a one-to-one summary, a self-reference; plus a parent referenced
 * through a two-column foreign key to a unique key that is not the primary
 * key, and an audit table whose reference the catalog cannot see. */
static const char *const seed000 __attribute__((unused)) =
    "CREATE TABLE \"conference\" ({id}, \"conference_id\" TEXT, \"app_id\" INTEGER NOT NULL,"
    " \"parent_id\" INTEGER REFERENCES \"conference\" (\"id\"));"
    "CREATE TABLE \"event\" ({id}, \"conference\" INTEGER NOT NULL REFERENCES \"conference\" (\"id\"));"
    "CREATE TABLE \"participant\" ({id}, \"name\" TEXT NOT NULL);"
    "CREATE TABLE \"conference_participant\" ({id},"
    " \"conference\" INTEGER NOT NULL REFERENCES \"conference\" (\"id\"),"
    " \"participant\" INTEGER NOT NULL REFERENCES \"participant\" (\"id\"),"
    " UNIQUE (\"conference\", \"participant\"));"
    "CREATE TABLE \"summary\" ({id}, \"conference\" INTEGER NOT NULL UNIQUE"
    " REFERENCES \"conference\" (\"id\"), \"text\" TEXT);"
    "CREATE TABLE \"audit_log\" ({id}, \"object_id\" INTEGER);"
    "INSERT INTO \"conference\" (\"id\", \"conference_id\", \"app_id\") VALUES"
    " (1, 'c1', 7), (2, 'c1', 7), (3, 'c1', 7), (4, 'c2', 7), (5, NULL, 7), (6, NULL, 7);"
    "UPDATE \"conference\" SET \"parent_id\" = 2 WHERE \"id\" = 4;"
    "INSERT INTO \"event\" (\"conference\") VALUES (1), (2), (2), (3), (4);"
    "INSERT INTO \"participant\" (\"id\", \"name\") VALUES (1, 'p1'), (2, 'p2'), (3, 'p3');"
    "INSERT INTO \"conference_participant\" (\"conference\", \"participant\") VALUES"
    " (1, 1), (2, 1), (3, 1), (2, 2), (3, 2), (3, 3), (4, 3);"
    "INSERT INTO \"summary\" (\"conference\", \"text\") VALUES (1, 'a'), (2, 'b'), (3, 'c');"
    "INSERT INTO \"audit_log\" (\"object_id\") VALUES (1), (2), (3), (3);"
    "CREATE TABLE \"region\" ({id}, \"code\" TEXT NOT NULL, \"country\" TEXT NOT NULL,"
    " \"name\" TEXT NOT NULL, UNIQUE (\"code\", \"country\"));"
    "CREATE TABLE \"store\" ({id}, \"region_code\" TEXT, \"region_country\" TEXT,"
    " FOREIGN KEY (\"region_code\", \"region_country\")"
    " REFERENCES \"region\" (\"code\", \"country\"));"
    "INSERT INTO \"region\" (\"id\", \"code\", \"country\", \"name\") VALUES"
    " (1, 'N', 'FR', 'Nord'), (2, 'NO', 'FR', 'Nord'), (3, 'S', 'FR', 'Sud');"
    "INSERT INTO \"store\" (\"region_code\", \"region_country\") VALUES"
    " ('N', 'FR'), ('NO', 'FR'), ('NO', 'FR'), ('S', 'FR')";

/* The path of `relpath` under NODUP_DATASETS (the unpacked tests/data) in
 * out, or NULL after printing which file is missing and why: a missing
 * dataset is a test failure that names the file, never a crash. */
__attribute__((unused)) static const char *harness_dataset(char *out, size_t size,
                                                           const char *relpath) {
  const char *dir = getenv("NODUP_DATASETS");
  FILE *f;
  if (dir == NULL || *dir == '\0') {
    print_error("NODUP_DATASETS is not set: it names the unpacked tests/data directory"
                " (ctest sets it; %s is needed)\n", relpath);
    return NULL;
  }
  snprintf(out, size, "%s/%s", dir, relpath);
  if ((f = fopen(out, "rb")) == NULL) {
    print_error("test data file %s is missing (NODUP_DATASETS=%s; the build unpacks"
                " tests/data/*.tar.xz there)\n", out, dir);
    return NULL;
  }
  fclose(f);
  return out;
}

/* SQLite: replace the fresh test database file with a copy of `relpath`
 * under NODUP_DATASETS (never the file itself) and reopen on the copy.
 * `state` is the test's state (the nodup_db *): it is cleared before the
 * old handle is closed and set to the new one, so a failed assertion here
 * leaves teardown nothing to close twice. Returns the new connection. */
__attribute__((unused)) static nodup_db *harness_copy_sqlite_dataset(void **state,
                                                                     const char *relpath) {
  const char *src = harness_url();
  char path[4096], cmd[8192];
  nodup_db *copy = NULL;
  int len;
  if (harness_dataset(path, sizeof path, relpath) == NULL) fail();
  assert_non_null(strchr(src, '?'));
  /* harness_url() is file:PATH?mode=rwc: copy the dataset over PATH. */
  len = (int)(strchr(src, '?') - src - 5);
  snprintf(cmd, sizeof cmd, "cp '%s' '%.*s' && chmod u+w '%.*s'", path, len, src + 5, len,
           src + 5);
  nodup_close(*state);
  *state = NULL;
  assert_int_equal(system(cmd), 0);
  assert_int_equal(nodup_open(&copy, src), NODUP_OK);
  *state = copy;
  return copy;
}

/* Replace the fresh test database with a copy of Chinook (never the file
 * itself). Pass the test's state; returns the connection, which is also
 * the new state. Needs cmocka, stdio, stdlib and string first. */
__attribute__((unused)) static nodup_db *harness_load_chinook(void **state) {
  char path[4096];
  if (!harness_is_pg())
    return harness_copy_sqlite_dataset(state, "chinook/Chinook_Sqlite.sqlite");
  {
    FILE *f;
    long n;
    char *sql, *start;
    if (harness_dataset(path, sizeof path, "chinook/Chinook_PostgreSql.sql") == NULL) fail();
    f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    sql = calloc(1, (size_t)n + 1);
    assert_non_null(sql);
    assert_int_equal(fread(sql, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    /* The script creates and connects to its own database; run what
     * follows "\c chinook;" in ours. */
    start = strstr(sql, "\\c chinook;");
    assert_non_null(start);
    harness_exec(*state, start + strlen("\\c chinook;"));
    free(sql);
  }
  return *state;
}

/* Sakila (SQLite only: sakila-sqlite/sakila.db) in place of the fresh test
 * database. Pass the test's state; returns the connection to the copy,
 * which is also the new state. */
__attribute__((unused)) static nodup_db *harness_load_sakila(void **state) {
  assert_false(harness_is_pg());
  return harness_copy_sqlite_dataset(state, "sakila-sqlite/sakila.db");
}

/*
 * Pagila (PostgreSQL only). Its schema has functions with $$ bodies and its
 * data is COPY ... FROM stdin, so psql loads it, once per suite, into a
 * template database (harness_pagila_setup, a cmocka group setup); each test
 * then gets a fresh copy with CREATE DATABASE ... TEMPLATE (0.2 s instead
 * of 1 s per load). The template is dropped by harness_pagila_teardown.
 */
__attribute__((unused)) static char harness_pagila_template[64];

/* NODUP_TEST_PG with its dbname replaced by `dbname` (its values are plain
 * words, as harness.c assumes too). */
__attribute__((unused)) static int harness_pg_conninfo(char *out, size_t size,
                                                       const char *dbname) {
  const char *p = getenv("NODUP_TEST_PG");
  size_t len = 0;
  int n;
  if (p == NULL) return -1;
  out[0] = '\0';
  while (*p != '\0') {
    const char *start;
    while (*p == ' ' || *p == '\t') p++;
    start = p;
    while (*p != '\0' && *p != ' ' && *p != '\t') p++;
    if (p == start || strncmp(start, "dbname=", 7) == 0) continue;
    n = snprintf(out + len, size - len, "%.*s ", (int)(p - start), start);
    if (n < 0 || (size_t)n >= size - len) return -1;
    len += (size_t)n;
  }
  n = snprintf(out + len, size - len, "dbname=%s", dbname);
  return n < 0 || (size_t)n >= size - len ? -1 : 0;
}

/* Run one statement on the server's maintenance database. */
__attribute__((unused)) static int harness_pg_admin(const char *sql) {
  nodup_db *admin = NULL;
  int rc = nodup_open(&admin, getenv("NODUP_TEST_PG"));
  if (rc == NODUP_OK) rc = nodup_exec(admin, sql);
  if (rc != NODUP_OK) print_error("%s: %s\n", sql, nodup_errmsg(admin));
  nodup_close(admin);
  return rc;
}

__attribute__((unused)) static int harness_pagila_setup(void **state) {
  char conninfo[1024], sql[160], cmd[10240], schema[4096], data[4096];
  (void)state;
  if (harness_dataset(schema, sizeof schema, "pagila/pagila-schema.sql") == NULL ||
      harness_dataset(data, sizeof data, "pagila/pagila-data.sql") == NULL)
    return -1;
  if (getenv("NODUP_TEST_PG") == NULL) {
    print_error("Pagila needs NODUP_TEST_PG\n");
    return -1;
  }
  snprintf(harness_pagila_template, sizeof harness_pagila_template, "nodup_pagila_%ld",
           (long)getpid());
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\"", harness_pagila_template);
  if (harness_pg_admin(sql) != NODUP_OK) return -1;
  snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", harness_pagila_template);
  if (harness_pg_admin(sql) != NODUP_OK ||
      harness_pg_conninfo(conninfo, sizeof conninfo, harness_pagila_template) != 0)
    return -1;
  /* ON_ERROR_STOP: a half-loaded template must fail the suite, not its
   * tests one by one. Query results (setval) go to /dev/null, errors to
   * the test log. */
  snprintf(cmd, sizeof cmd,
           "psql -X -q -v ON_ERROR_STOP=1 -d '%s' -f '%s' -f '%s' >/dev/null", conninfo,
           schema, data);
  if (system(cmd) != 0) {
    print_error("loading Pagila with psql failed (is psql on PATH?): %s\n", cmd);
    return -1;
  }
  return 0;
}

__attribute__((unused)) static int harness_pagila_teardown(void **state) {
  char sql[160];
  (void)state;
  if (harness_pagila_template[0] == '\0') return 0;
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)",
           harness_pagila_template);
  harness_pagila_template[0] = '\0';
  return harness_pg_admin(sql) == NODUP_OK ? 0 : -1;
}

/* A copy of the Pagila template in place of the fresh test database (same
 * name, so harness_teardown drops it). Pass the test's state; returns the
 * connection to the copy, which is also the new state. */
__attribute__((unused)) static nodup_db *harness_load_pagila(void **state) {
  const char *name = strstr(harness_url(), "dbname=");
  nodup_db *db = NULL;
  char sql[256];
  assert_true(harness_is_pg());
  assert_true(harness_pagila_template[0] != '\0');
  assert_non_null(name);
  name += strlen("dbname=");
  nodup_close(*state);
  *state = NULL;
  /* Two calls: neither statement may run inside a transaction block. */
  snprintf(sql, sizeof sql, "DROP DATABASE \"%s\"", name);
  assert_int_equal(harness_pg_admin(sql), NODUP_OK);
  snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\" TEMPLATE \"%s\"", name,
           harness_pagila_template);
  assert_int_equal(harness_pg_admin(sql), NODUP_OK);
  assert_int_equal(nodup_open(&db, harness_url()), NODUP_OK);
  *state = db;
  return db;
}

#endif

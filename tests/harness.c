/*
 * harness.c -- fresh databases for the test suites (see harness.h).
 *
 * The harness creates databases with the library itself (nodup_open,
 * nodup_exec), so a suite that cannot even set up fails loudly rather than
 * testing against a half-made fixture. Reads go through the raw sqlite3 /
 * PGconn handle so that what a test asserts does not come from the code
 * under test.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#define HARNESS_MAX_TRACKED 128

static char current_url[PATH_MAX + 64];
static char current_dir[PATH_MAX]; /* SQLite: the mkdtemp directory */
static char current_pg_name[64];   /* PostgreSQL: the database name */
static int db_counter;

static nodup_key *tracked_keys[HARNESS_MAX_TRACKED];
static size_t ntracked_keys;
static nodup_db *tracked_dbs[HARNESS_MAX_TRACKED];
static size_t ntracked_dbs;

int harness_is_pg(void) {
  const char *backend = getenv("NODUP_TEST_BACKEND");
  return backend != NULL && strcmp(backend, "pg") == 0;
}

int harness_is_pooled(void) {
  const char *pooler = getenv("NODUP_TEST_POOLER");
  return pooler != NULL && *pooler != '\0';
}

const char *harness_url(void) { return current_url; }

const char *harness_pick(const char *sqlite_sql, const char *pg_sql) {
  return harness_is_pg() ? pg_sql : sqlite_sql;
}

/*
 * The admin conninfo with its dbname replaced by `dbname`. Conninfo values
 * in NODUP_TEST_PG are plain words (a socket path, a user name): quoting is
 * not supported, which keeps this a token filter.
 */
static int pg_conninfo_for(char *out, size_t size, const char *admin,
                           const char *dbname) {
  size_t len = 0;
  const char *p = admin;
  out[0] = '\0';
  while (*p != '\0') {
    while (*p == ' ' || *p == '\t')
      p++;
    const char *start = p;
    while (*p != '\0' && *p != ' ' && *p != '\t')
      p++;
    size_t toklen = (size_t)(p - start);
    if (toklen == 0 || strncmp(start, "dbname=", 7) == 0)
      continue;
    int n = snprintf(out + len, size - len, "%.*s ", (int)toklen, start);
    if (n < 0 || (size_t)n >= size - len)
      return -1;
    len += (size_t)n;
  }
  int n = snprintf(out + len, size - len, "dbname=%s", dbname);
  return (n < 0 || (size_t)n >= size - len) ? -1 : 0;
}

/* Open the server's maintenance database, where CREATE/DROP DATABASE run. */
static int pg_admin_open(nodup_db **admin) {
  const char *conninfo = getenv("NODUP_TEST_PG");
  *admin = NULL;
  if (conninfo == NULL || conninfo[0] == '\0') {
    print_error("NODUP_TEST_BACKEND=pg but NODUP_TEST_PG is not set; "
                "PostgreSQL tests fail rather than skip\n");
    return NODUP_ERR_CONNECT;
  }
  if (strstr(conninfo, "://") != NULL) {
    print_error("NODUP_TEST_PG must be a conninfo string "
                "(host=... user=... dbname=...), not a URL\n");
    return NODUP_ERR_URL;
  }
  int rc = nodup_open(admin, conninfo);
  if (rc != NODUP_OK) {
    print_error("cannot reach the test PostgreSQL server (%s): %s\n", conninfo,
                nodup_errmsg(*admin));
    nodup_close(*admin);
    *admin = NULL;
  }
  return rc;
}

static int pg_create(nodup_db **db) {
  nodup_db *admin = NULL;
  char sql[128];
  int rc = pg_admin_open(&admin);
  if (rc != NODUP_OK)
    return rc;
  snprintf(current_pg_name, sizeof current_pg_name, "nodup_t_%ld_%d",
           (long)getpid(), ++db_counter);
  snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", current_pg_name);
  rc = nodup_exec(admin, sql);
  if (rc != NODUP_OK) {
    print_error("%s: %s\n", sql, nodup_errmsg(admin));
    current_pg_name[0] = '\0';
    nodup_close(admin);
    return rc;
  }
  nodup_close(admin);
  if (pg_conninfo_for(current_url, sizeof current_url, getenv("NODUP_TEST_PG"),
                      current_pg_name) != 0) {
    print_error("NODUP_TEST_PG is too long\n");
    return NODUP_ERR_USAGE;
  }
  return nodup_open(db, current_url);
}

static int sqlite_create(nodup_db **db) {
  snprintf(current_dir, sizeof current_dir, "/tmp/nodup-t-XXXXXX");
  if (mkdtemp(current_dir) == NULL) {
    print_error("mkdtemp: %s\n", strerror(errno));
    current_dir[0] = '\0';
    return NODUP_ERR_CONNECT;
  }
  snprintf(current_url, sizeof current_url, "file:%s/test.db?mode=rwc",
           current_dir);
  return nodup_open(db, current_url);
}

int harness_open(nodup_db **db) {
  int rc = harness_is_pg() ? pg_create(db) : sqlite_create(db);
  if (rc != NODUP_OK && *db != NULL) {
    print_error("nodup_open(%s): %s: %s\n", current_url, nodup_strerror(rc),
                nodup_errmsg(*db));
    nodup_close(*db);
    *db = NULL;
  }
  return rc;
}

/* Remove the mkdtemp directory: test.db, its -wal and -shm, whatever else. */
static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  char path[PATH_MAX + 256];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

void harness_cleanup(void) {
  if (harness_is_pg()) {
    nodup_db *admin = NULL;
    char sql[160];
    if (current_pg_name[0] == '\0')
      return;
    /* FORCE: a test that failed half-way may have left connections open. */
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)",
             current_pg_name);
    if (pg_admin_open(&admin) == NODUP_OK && nodup_exec(admin, sql) != NODUP_OK)
      print_error("%s: %s\n", sql, nodup_errmsg(admin));
    nodup_close(admin);
    current_pg_name[0] = '\0';
  } else if (current_dir[0] != '\0') {
    remove_dir(current_dir);
    current_dir[0] = '\0';
  }
  current_url[0] = '\0';
}

int harness_setup(void **state) {
  nodup_db *db = NULL;
  int rc = harness_open(&db);
  if (rc != NODUP_OK) {
    harness_cleanup();
    return -1; /* cmocka reports the test as failed */
  }
  *state = db;
  return 0;
}

int harness_teardown(void **state) {
  /* Keys before the connections they were prepared on (nodup.h). */
  while (ntracked_keys > 0)
    nodup_key_free(tracked_keys[--ntracked_keys]);
  while (ntracked_dbs > 0)
    nodup_close(tracked_dbs[--ntracked_dbs]);
  nodup_close(*state);
  *state = NULL;
  harness_cleanup();
  return 0;
}

nodup_db *harness_connect(void) {
  nodup_db *db = NULL;
  int rc = nodup_open(&db, current_url);
  if (rc != NODUP_OK) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", nodup_errmsg(db));
    nodup_close(db);
    fail_msg("nodup_open(%s) for a second connection: %s: %s", current_url,
             nodup_strerror(rc), msg);
  }
  if (ntracked_dbs == HARNESS_MAX_TRACKED)
    fail_msg("harness: too many connections in one test");
  tracked_dbs[ntracked_dbs++] = db;
  return db;
}

static nodup_key *track_key(nodup_key *key) {
  assert_non_null(key);
  if (ntracked_keys == HARNESS_MAX_TRACKED) {
    nodup_key_free(key);
    fail_msg("harness: too many keys in one test");
  }
  tracked_keys[ntracked_keys++] = key;
  return key;
}

nodup_key *harness_key(nodup_db *db, const char *table, const char *const *cols,
                       size_t ncols, const char *where) {
  nodup_key *key = NULL;
  assert_nodup(db, NODUP_OK,
               nodup_key_prepare(&key, db, table, cols, ncols, where));
  return track_key(key);
}

nodup_key *harness_key_unbacked(nodup_db *db, const char *table,
                                const char *const *cols, size_t ncols,
                                const char *where) {
  nodup_key *key = NULL;
  assert_nodup(db, NODUP_OK,
               nodup_key_prepare_unbacked(&key, db, table, cols, ncols, where));
  return track_key(key);
}

/* `sql` with every `mark` replaced by `by`. */
static char *expand(const char *sql, const char *mark, const char *by) {
  size_t n = 0, m = strlen(mark);
  for (const char *p = sql; (p = strstr(p, mark)) != NULL; p += m)
    n++;
  char *out = malloc(strlen(sql) + n * strlen(by) + 1);
  assert_non_null(out);
  char *o = out;
  const char *p = sql;
  const char *hit;
  while ((hit = strstr(p, mark)) != NULL) {
    memcpy(o, p, (size_t)(hit - p));
    o += hit - p;
    memcpy(o, by, strlen(by));
    o += strlen(by);
    p = hit + m;
  }
  strcpy(o, p);
  return out;
}

/* `sql` with every "{j}" replaced by the journal's schema prefix. */
static char *expand_journal(const char *sql) {
  return expand(sql, "{j}", harness_pick("", "\"nodup\"."));
}

/* `sql` with every "{id}" replaced by the backend's serial primary key,
 * and "{j}" by the journal's schema prefix. */
static char *expand_ddl(const char *sql) {
  char *j = expand_journal(sql);
  char *out = expand(j, "{id}", harness_pick("\"id\" INTEGER PRIMARY KEY",
                                             "\"id\" BIGSERIAL PRIMARY KEY"));
  free(j);
  return out;
}

void harness_exec(nodup_db *db, const char *sql) {
  char *expanded = expand_ddl(sql);
  int rc = nodup_exec(db, expanded);
  if (rc != NODUP_OK) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", nodup_errmsg(db));
    free(expanded);
    fail_msg("setup SQL failed (%s): %s\nSQL: %s", nodup_strerror(rc), msg,
             sql);
  }
  free(expanded);
}

static char *sqlite_query(sqlite3 *conn, const char *sql, const char *param) {
  sqlite3_stmt *stmt = NULL;
  char *value = NULL;
  if (sqlite3_prepare_v2(conn, sql, -1, &stmt, NULL) != SQLITE_OK)
    fail_msg("harness_query: %s\nSQL: %s", sqlite3_errmsg(conn), sql);
  if (param != NULL)
    sqlite3_bind_text(stmt, 1, param, -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL) {
    value = strdup((const char *)sqlite3_column_text(stmt, 0));
    assert_non_null(value);
  } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(conn));
    sqlite3_finalize(stmt);
    fail_msg("harness_query: %s\nSQL: %s", msg, sql);
  }
  sqlite3_finalize(stmt);
  return value;
}

static char *pg_query(PGconn *conn, const char *sql, const char *param) {
  const char *params[1] = {param};
  char *value = NULL;
  PGresult *res =
      PQexecParams(conn, sql, param != NULL ? 1 : 0, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK &&
      PQresultStatus(res) != PGRES_COMMAND_OK) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQerrorMessage(conn));
    PQclear(res);
    fail_msg("harness_query: %s\nSQL: %s", msg, sql);
  }
  if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) {
    value = strdup(PQgetvalue(res, 0, 0));
    assert_non_null(value);
  }
  PQclear(res);
  return value;
}

char *harness_query(nodup_db *db, const char *sql, const char *param) {
  void *handle = nodup_db_handle(db);
  assert_non_null(handle);
  char *expanded = expand_journal(sql);
  char *value = NULL;
  /* The expansion is freed on the way out of a failed assertion too:
   * copied into a stack buffer when it fits, which most statements do. */
  char local[8192];
  const char *text = expanded;
  if (strlen(expanded) < sizeof local) {
    strcpy(local, expanded);
    free(expanded);
    expanded = NULL;
    text = local;
  }
  value = harness_is_pg() ? pg_query(handle, text, param) : sqlite_query(handle, text, param);
  free(expanded);
  return value;
}

void harness_query_into(nodup_db *db, const char *sql, const char *param,
                        char *buf, size_t size) {
  char *text = harness_query(db, sql, param);
  if (text == NULL)
    fail_msg("no value from %s", sql);
  size_t len = strlen(text);
  if (len >= size) {
    free(text);
    fail_msg("value of %s is %zu bytes, more than %zu", sql, len, size - 1);
  }
  memcpy(buf, text, len + 1);
  free(text);
}

long long harness_count(nodup_db *db, const char *sql, const char *param) {
  char *text = harness_query(db, sql, param);
  if (text == NULL)
    fail_msg("harness_count: no value from %s", sql);
  char *end;
  long long n = strtoll(text, &end, 10);
  if (*end != '\0') {
    char copy[128];
    snprintf(copy, sizeof copy, "%s", text);
    free(text);
    fail_msg("harness_count: \"%s\" is not an integer (%s)", copy, sql);
  }
  free(text);
  return n;
}

long long harness_pg_version(nodup_db *db) {
  assert_true(harness_is_pg());
  return harness_count(db, "SELECT current_setting('server_version_num')", NULL);
}

void harness_expect(nodup_db *db, const char *sql, const char *param,
                    const char *want) {
  char *got = harness_query(db, sql, param);
  int same = (got == NULL && want == NULL) ||
             (got != NULL && want != NULL && strcmp(got, want) == 0);
  if (!same) {
    char copy[512];
    snprintf(copy, sizeof copy, "%s", got != NULL ? got : "(null)");
    free(got);
    fail_msg("%s [$1 = %s]: got \"%s\", expected \"%s\"", sql,
             param != NULL ? param : "(none)", copy,
             want != NULL ? want : "(null)");
  }
  free(got);
}

int harness_goc(nodup_db *db, nodup_key *key, const char *const *vals,
                const char *const *default_cols,
                const char *const *default_vals, size_t ndefaults, char *id) {
  nodup_result result = {NULL, -1};
  assert_nodup(db, NODUP_OK,
               nodup_get_or_create(key, vals, default_cols, default_vals,
                                   ndefaults, &result));
  if (result.id == NULL || result.id[0] == '\0')
    fail_msg("nodup_get_or_create succeeded without an id");
  if (result.created != 0 && result.created != 1)
    fail_msg("created = %d, expected 0 or 1", result.created);
  if (strlen(result.id) >= HARNESS_ID_MAX)
    fail_msg("id longer than %d bytes", HARNESS_ID_MAX);
  strcpy(id, result.id);
  return result.created;
}

int harness_in_transaction(nodup_db *db) {
  void *handle = nodup_db_handle(db);
  assert_non_null(handle);
  if (harness_is_pg())
    return PQtransactionStatus(handle) != PQTRANS_IDLE;
  return sqlite3_get_autocommit(handle) == 0;
}

/* Every row of every table except nodup's own, as text, in a fixed order:
 * PostgreSQL's row-to-text cast; on SQLite quote() of each column (which
 * keeps types apart: 1, '1' and X'01' differ). The caller frees. */
char *harness_dump(nodup_db *db) {
  char *tables, *out = NULL, *save = NULL, *name;
  size_t len = 0;
  tables = harness_query(
      db,
      harness_pick("SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_schema"
                   " WHERE type = 'table' AND name NOT LIKE 'nodup%' AND name NOT LIKE 'sqlite%'"
                   " ORDER BY name)",
                   "SELECT string_agg(tablename, ' ' ORDER BY tablename) FROM pg_tables"
                   " WHERE schemaname = 'public' AND tablename NOT LIKE 'nodup%'"),
      NULL);
  assert_non_null(tables);
  for (name = strtok_r(tables, " ", &save); name; name = strtok_r(NULL, " ", &save)) {
    char sql[4096], *cols = NULL, *rows;
    size_t n;
    if (harness_is_pg()) {
      snprintf(sql, sizeof sql,
               "SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM \"%s\" t",
               name);
    } else {
      cols = harness_query(db,
                           "SELECT group_concat('quote(\"' || name || '\")', ' || '','' || ')"
                           " FROM pragma_table_info($1)",
                           name);
      assert_non_null(cols);
      snprintf(sql, sizeof sql,
               "SELECT coalesce(group_concat(r, char(10)), '') FROM (SELECT %s AS r FROM \"%s\""
               " ORDER BY 1)",
               cols, name);
    }
    rows = harness_query(db, sql, NULL);
    free(cols);
    assert_non_null(rows);
    n = strlen(name) + strlen(rows) + 3;
    out = realloc(out, len + n + 1);
    assert_non_null(out);
    snprintf(out + len, n + 1, "%s:\n%s\n", name, rows);
    len += strlen(out + len);
    free(rows);
  }
  free(tables);
  return out;
}

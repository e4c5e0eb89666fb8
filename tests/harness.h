/*
 * harness.h -- a fresh, empty database per test, on the backend named by
 * NODUP_TEST_BACKEND: "sqlite" (the default) or "pg".
 *
 * SQLite: a new file in a mkdtemp directory, opened as an SQLite URI with
 * mode=rwc. PostgreSQL: a new database `nodup_t_<pid>_<n>` created through
 * the server named by NODUP_TEST_PG (a libpq conninfo string such as
 * "host=/tmp/sock user=postgres dbname=postgres"). PostgreSQL suites never
 * skip: if NODUP_TEST_PG is unset or the server is down, setup fails.
 *
 * Everything goes through the public API (nodup_open, nodup_exec); the raw
 * handle (nodup_db_handle) is used only to read back what the library wrote,
 * so a check does not depend on the code it checks.
 *
 * The assert_* helpers are for the main thread only: cmocka is not
 * thread-safe, and in a forked child a failed assertion would carry on
 * running the parent's test list.
 */
#ifndef NODUP_TEST_HARNESS_H
#define NODUP_TEST_HARNESS_H

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "nodup.h"

/* Room for any id the tests produce (integers, UUIDs, composites). */
#define HARNESS_ID_MAX 256

/* 1 when NODUP_TEST_BACKEND is "pg". */
int harness_is_pg(void);

/* 1 when the PostgreSQL server is reached through a transaction-mode
 * pooler (NODUP_TEST_POOLER, set by the pgbouncer suites): a session's
 * SET or new default may land on any server connection. */
int harness_is_pooled(void);

/*
 * Create a fresh empty database and open *db on it. Returns NODUP_OK or the
 * failing call's code (after printing why). The database stays current until
 * harness_cleanup(); harness_url() names it.
 */
int harness_open(nodup_db **db);

/* The URL of the current fresh database, to open more connections to it. */
const char *harness_url(void);

/* Drop the current database (PostgreSQL) or remove its files (SQLite).
 * Connections to it should be closed first. */
void harness_cleanup(void);

/*
 * cmocka fixtures: a fresh database per test, *state = the nodup_db *.
 * Teardown frees every key from harness_key(), closes every connection from
 * harness_connect() and the main one, then drops the database, so a failed
 * assertion in the middle of a test leaks nothing.
 */
int harness_setup(void **state);
int harness_teardown(void **state);

/* The SQL for the current backend. */
const char *harness_pick(const char *sqlite_sql, const char *pg_sql);

/*
 * Run setup SQL, asserting success. "{id}" in `sql` becomes an integer
 * primary key column named "id" that the database numbers by itself
 * (INTEGER PRIMARY KEY on SQLite, BIGSERIAL PRIMARY KEY on PostgreSQL), the
 * one difference most test tables have. "{j}" becomes the merge journal's
 * schema prefix ("nodup". on PostgreSQL, nothing on SQLite), as in
 * harness_query: "SELECT status FROM {j}nodup_runs".
 */
void harness_exec(nodup_db *db, const char *sql);

/* Another connection to the current database; closed by teardown. */
nodup_db *harness_connect(void);

/* nodup_key_prepare, asserting success; the key is freed by teardown. */
nodup_key *harness_key(nodup_db *db, const char *table, const char *const *cols,
                       size_t ncols, const char *where);

/* nodup_key_prepare_unbacked, asserting success; freed by teardown. */
nodup_key *harness_key_unbacked(nodup_db *db, const char *table,
                                const char *const *cols, size_t ncols,
                                const char *where);

/*
 * Run `sql` on the raw handle with at most one text parameter ($1, NULL for
 * none) and return the first column of the first row as a malloc'd string,
 * or NULL when there is no row or the value is SQL NULL. Asserts that the
 * statement ran. "{j}" in `sql` is the journal's schema prefix (see
 * harness_exec).
 */
char *harness_query(nodup_db *db, const char *sql, const char *param);

/* harness_query into `buf` (`size` bytes), asserting a non-NULL value that
 * fits: nothing to free, so a failing assertion leaks nothing. */
void harness_query_into(nodup_db *db, const char *sql, const char *param,
                        char *buf, size_t size);

/* harness_query for a single integer (a count); asserts it is not NULL. */
long long harness_count(nodup_db *db, const char *sql, const char *param);

/* PostgreSQL's server_version_num (150004 for 15.4); asserts a PostgreSQL
 * connection. For tests whose expectation depends on the version: a
 * feature the server lacks is tested as refused there, never skipped. */
long long harness_pg_version(nodup_db *db);

/* Assert that harness_query(db, sql, param) returns `want` (NULL: no value). */
void harness_expect(nodup_db *db, const char *sql, const char *param,
                    const char *want);

/*
 * nodup_get_or_create, asserting NODUP_OK and a non-empty id. Copies the id
 * (borrowed from the key) into `id`, HARNESS_ID_MAX bytes, and returns the
 * created flag, which it asserts is 0 or 1.
 */
int harness_goc(nodup_db *db, nodup_key *key, const char *const *vals,
                const char *const *default_cols,
                const char *const *default_vals, size_t ndefaults, char *id);

/* Every row of every table except nodup's own, as text, in a fixed order
 * (PostgreSQL: each row cast to text; SQLite: quote() of each column, which
 * keeps 1, '1' and X'01' apart). The caller frees. */
char *harness_dump(nodup_db *db);

/* 1 when the connection is inside a transaction (seen on the raw handle). */
int harness_in_transaction(nodup_db *db);

/*
 * Assert that `call` returned `want`, printing both codes' names and the
 * connection's message when it did not.
 */
#define assert_nodup(db, want, call)                                           \
  do {                                                                         \
    int got_rc_ = (call);                                                      \
    int want_rc_ = (want);                                                     \
    if (got_rc_ != want_rc_)                                                   \
      fail_msg("%s returned %d (%s), expected %d (%s); errmsg: %s", #call,     \
               got_rc_, nodup_strerror(got_rc_), want_rc_,                     \
               nodup_strerror(want_rc_), nodup_errmsg(db));                    \
  } while (0)

/* Assert that `haystack` contains `needle`, showing both when it does not. */
#define assert_contains(haystack, needle)                                      \
  do {                                                                         \
    const char *hay_ = (haystack);                                             \
    const char *needle_ = (needle);                                            \
    if (hay_ == NULL || strstr(hay_, needle_) == NULL)                         \
      fail_msg("expected \"%s\" to contain \"%s\"", hay_ ? hay_ : "(null)",    \
               needle_);                                                       \
  } while (0)

/* Number of elements of an array. */
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

#endif /* NODUP_TEST_HARNESS_H */

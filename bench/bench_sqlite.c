/*
 * bench_sqlite.c -- the ways of doing get-or-create on SQLite that the
 * benchmark compares nodup with, each on its own connection per thread,
 * opened as nodup opens its own:
 *
 *  - raw: hand-written prepared statements, the speed limit. A prepared
 *    SELECT; on a miss BEGIN IMMEDIATE, INSERT ... ON CONFLICT DO NOTHING
 *    RETURNING, COMMIT (and SELECT again inside the transaction if the
 *    INSERT returned nothing because another connection won).
 *  - django: what Django's QuerySet.get_or_create() sends on SQLite: SELECT;
 *    on a miss BEGIN (deferred, Django's default), SAVEPOINT, INSERT ...
 *    RETURNING, RELEASE, COMMIT; on a unique violation ROLLBACK TO the
 *    savepoint, ROLLBACK, SELECT again.
 *  - select: raw's prepared SELECT alone, the floor of a hit (what Django
 *    runs on one); it runs only on pure hits.
 */
#include <stdio.h>

#include "bench.h"

int bench_sqlite_synchronous(sqlite3 *db) {
  sqlite3_stmt *stmt = NULL;
  int level = -1;
  if (db != NULL &&
      sqlite3_prepare_v2(db, "PRAGMA synchronous", -1, &stmt, NULL) ==
          SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW)
    level = sqlite3_column_int(stmt, 0);
  sqlite3_finalize(stmt);
  return level;
}

/*
 * Open the file as nodup opens its own (no per-connection mutex: one thread
 * per connection; WAL; busy timeout 5 s; extended result codes) and prepare
 * `sql`.
 */
static int lite_open(bench_worker *w, const char *const *sql, int n) {
  int rc = sqlite3_open_v2(w->target, &w->lite,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_extended_result_codes(w->lite, 1);
    rc = sqlite3_busy_timeout(w->lite, 5000);
  }
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(w->lite, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  for (int i = 0; rc == SQLITE_OK && i < n; i++)
    rc = sqlite3_prepare_v2(w->lite, sql[i], -1, &w->stmt[i], NULL);
  if (rc != SQLITE_OK) {
    bench_worker_error(w, "sqlite open: %s", sqlite3_errmsg(w->lite));
    return -1;
  }
  w->sqlite_synchronous = bench_sqlite_synchronous(w->lite);
  return 0;
}

static void lite_close(bench_worker *w) {
  for (int i = 0; i < BENCH_MAX_STMTS; i++) {
    sqlite3_finalize(w->stmt[i]);
    w->stmt[i] = NULL;
  }
  sqlite3_close(w->lite);
  w->lite = NULL;
}

/*
 * Step statement `i` once, after binding up to two text parameters, and
 * reset it. Returns the step's code (SQLITE_ROW, SQLITE_DONE or an error,
 * recorded); *id receives column 0 of a row.
 */
static int lite_step(bench_worker *w, int i, const char *p1, const char *p2,
                     sqlite3_int64 *id) {
  sqlite3_stmt *stmt = w->stmt[i];
  if (p1 != NULL)
    sqlite3_bind_text(stmt, 1, p1, -1, SQLITE_STATIC);
  if (p2 != NULL)
    sqlite3_bind_text(stmt, 2, p2, -1, SQLITE_STATIC);
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW && id != NULL)
    *id = sqlite3_column_int64(stmt, 0);
  /* Extended result codes are on: a unique violation is rc itself. */
  if (rc != SQLITE_ROW && rc != SQLITE_DONE && rc != SQLITE_CONSTRAINT_UNIQUE)
    bench_worker_error(w, "%s: %s", sqlite3_sql(stmt), sqlite3_errmsg(w->lite));
  sqlite3_reset(stmt);
  return rc;
}

/* Roll back whatever transaction an error left open. */
static void lite_rollback(bench_worker *w) {
  if (!sqlite3_get_autocommit(w->lite))
    sqlite3_exec(w->lite, "ROLLBACK", NULL, NULL, NULL);
}

/* --- raw --------------------------------------------------------------- */

enum { RAW_SELECT, RAW_BEGIN, RAW_INSERT, RAW_COMMIT, RAW_NSTMTS };

static int raw_lite_open(bench_worker *w) {
  static const char *const sql[RAW_NSTMTS] = {
      [RAW_SELECT] = "SELECT \"id\" FROM \"t\" WHERE \"k\" = ?1",
      [RAW_BEGIN] = "BEGIN IMMEDIATE",
      [RAW_INSERT] = ("INSERT INTO \"t\" (\"k\", \"v\") VALUES (?1, ?2) "
                      "ON CONFLICT DO NOTHING RETURNING \"id\""),
      [RAW_COMMIT] = "COMMIT",
  };
  return lite_open(w, sql, RAW_NSTMTS);
}

static bench_outcome raw_lite_op(bench_worker *w, const char *key,
                                 const char *value) {
  bench_outcome out = {0, 0, 0};
  sqlite3_int64 id = 0;
  int rc = lite_step(w, RAW_SELECT, key, NULL, &id);
  if (rc == SQLITE_ROW) {
    out.ok = out.found = out.has_id = 1;
    return out;
  }
  if (rc != SQLITE_DONE ||
      lite_step(w, RAW_BEGIN, NULL, NULL, NULL) != SQLITE_DONE)
    goto fail;
  rc = lite_step(w, RAW_INSERT, key, value, &id);
  if (rc == SQLITE_DONE) {
    /* Someone else inserted it between our SELECT and our BEGIN. */
    rc = lite_step(w, RAW_SELECT, key, NULL, &id);
    out.found = 1;
  }
  if (rc != SQLITE_ROW ||
      lite_step(w, RAW_COMMIT, NULL, NULL, NULL) != SQLITE_DONE)
    goto fail;
  out.ok = out.has_id = 1;
  return out;
fail:
  lite_rollback(w);
  out.found = 0;
  return out;
}

/* --- select ------------------------------------------------------------ */

static int select_lite_open(bench_worker *w) {
  static const char *const sql[] = {
      "SELECT \"id\" FROM \"t\" WHERE \"k\" = ?1"};
  return lite_open(w, sql, 1);
}

static bench_outcome select_lite_op(bench_worker *w, const char *key,
                                    const char *value) {
  (void)value;
  bench_outcome out = {0, 1, 0};
  sqlite3_int64 id = 0;
  int rc = lite_step(w, 0, key, NULL, &id);
  out.ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
  out.has_id = rc == SQLITE_ROW;
  return out;
}

/* --- django ------------------------------------------------------------ */

enum {
  DJ_GET,
  DJ_BEGIN,
  DJ_SAVEPOINT,
  DJ_INSERT,
  DJ_RELEASE,
  DJ_COMMIT,
  DJ_ROLLBACK_TO,
  DJ_ROLLBACK,
  DJ_NSTMTS
};

static int django_lite_open(bench_worker *w) {
  static const char *const sql[DJ_NSTMTS] = {
      /* Model.objects.get(): every column, LIMIT 21 (MAX_GET_RESULTS). */
      [DJ_GET] = ("SELECT \"t\".\"id\", \"t\".\"k\", \"t\".\"v\" FROM \"t\" "
                  "WHERE \"t\".\"k\" = ?1 LIMIT 21"),
      [DJ_BEGIN] = "BEGIN",
      [DJ_SAVEPOINT] = "SAVEPOINT \"s1\"",
      [DJ_INSERT] = ("INSERT INTO \"t\" (\"k\", \"v\") VALUES (?1, ?2) "
                     "RETURNING \"t\".\"id\""),
      [DJ_RELEASE] = "RELEASE SAVEPOINT \"s1\"",
      [DJ_COMMIT] = "COMMIT",
      [DJ_ROLLBACK_TO] = "ROLLBACK TO SAVEPOINT \"s1\"",
      [DJ_ROLLBACK] = "ROLLBACK",
  };
  return lite_open(w, sql, DJ_NSTMTS);
}

static bench_outcome django_lite_op(bench_worker *w, const char *key,
                                    const char *value) {
  bench_outcome out = {0, 0, 0};
  sqlite3_int64 id = 0;
  int rc = lite_step(w, DJ_GET, key, NULL, &id);
  if (rc == SQLITE_ROW) {
    out.ok = out.found = out.has_id = 1;
    return out;
  }
  if (rc != SQLITE_DONE ||
      lite_step(w, DJ_BEGIN, NULL, NULL, NULL) != SQLITE_DONE ||
      lite_step(w, DJ_SAVEPOINT, NULL, NULL, NULL) != SQLITE_DONE)
    goto fail;
  rc = lite_step(w, DJ_INSERT, key, value, &id);
  if (rc == SQLITE_ROW) {
    if (lite_step(w, DJ_RELEASE, NULL, NULL, NULL) != SQLITE_DONE ||
        lite_step(w, DJ_COMMIT, NULL, NULL, NULL) != SQLITE_DONE)
      goto fail;
    out.ok = out.has_id = 1;
    return out;
  }
  if (rc != SQLITE_CONSTRAINT_UNIQUE ||
      lite_step(w, DJ_ROLLBACK_TO, NULL, NULL, NULL) != SQLITE_DONE ||
      lite_step(w, DJ_ROLLBACK, NULL, NULL, NULL) != SQLITE_DONE)
    goto fail;
  rc = lite_step(w, DJ_GET, key, NULL, &id);
  if (rc != SQLITE_ROW)
    goto fail;
  out.ok = out.found = out.has_id = 1;
  return out;
fail:
  lite_rollback(w);
  return out;
}

const bench_method bench_sqlite_raw = {"raw", 0, raw_lite_open, raw_lite_op,
                                       lite_close};
const bench_method bench_sqlite_django = {"django", 0, django_lite_open,
                                          django_lite_op, lite_close};
const bench_method bench_sqlite_select = {"select", 0, select_lite_open,
                                          select_lite_op, lite_close};

/*
 * bench_pg.c -- the ways of doing get-or-create on PostgreSQL that the
 * benchmark compares nodup with, each on its own connection per thread:
 *
 *  - nodup: nodup_get_or_create() (bench_nodup.c, shared with SQLite).
 *  - raw: the single statement written by hand: one round trip for a hit
 *    and for a miss. It is the speed limit, not a correct implementation:
 *    its one snapshot cannot see a row a concurrent winner committed while
 *    it waited.
 *  - django: what Django's QuerySet.get_or_create() sends, one statement
 *    and one round trip per step: SELECT; on a miss BEGIN, SAVEPOINT,
 *    INSERT, RELEASE, COMMIT; on a unique violation ROLLBACK TO the
 *    savepoint, end the transaction and SELECT again.
 *  - select, insert: one plain statement each, the cheapest way to serve a
 *    hit (what Django runs on one) and a miss (INSERT ... ON CONFLICT DO
 *    NOTHING RETURNING). Neither is a get-or-create: each runs only on the
 *    mix it can serve, as the floor nodup's hit and miss are measured
 *    against.
 *  - lookup, insertfirst: the two correct get-or-creates written by hand
 *    from those statements, autocommit, one round trip each. lookup-first:
 *    SELECT; if none, INSERT ... ON CONFLICT DO NOTHING; if that returned
 *    nothing (a concurrent winner), SELECT again. insert-first: the INSERT;
 *    if it returned nothing, SELECT. Which one is faster depends on the hit
 *    rate, which is why nodup is compared with the better of the two.
 *
 * On a direct connection each statement is prepared once (PQprepare) and
 * run with PQexecPrepared. Through a transaction-mode pooler that breaks: a
 * prepared statement belongs to one server session, and the next
 * transaction may run on another (PgBouncer before 1.21 does not track
 * them). The pooled variants therefore send each statement unnamed, the
 * fastest form that works there: PQexecParams (Parse, Bind, Execute and
 * Sync in one round trip) when it has parameters, PQexec (one simple Query
 * message) when it has none. nodup does the same when it detects a pooler.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

/* One statement: the name it is prepared under, its text, its arity. */
typedef struct pg_stmt {
  const char *name, *sql;
  int nparams;
} pg_stmt;

static const pg_stmt raw_goc = {
    "goc",
    "WITH ins AS (INSERT INTO \"t\" (\"k\", \"v\") "
    "VALUES ($1, $2) ON CONFLICT (\"k\") DO NOTHING "
    "RETURNING \"id\") "
    "SELECT \"id\" FROM ins UNION ALL "
    "SELECT \"id\" FROM \"t\" WHERE \"k\" = $1 LIMIT 1",
    2};

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

static const pg_stmt django_stmts[DJ_NSTMTS] = {
    /* Model.objects.get(): every column, LIMIT 21 (MAX_GET_RESULTS). */
    [DJ_GET] = {"get",
                "SELECT \"t\".\"id\", \"t\".\"k\", \"t\".\"v\" FROM \"t\" "
                "WHERE \"t\".\"k\" = $1 LIMIT 21",
                1},
    [DJ_BEGIN] = {"begin", "BEGIN", 0},
    [DJ_SAVEPOINT] = {"savepoint", "SAVEPOINT \"s1\"", 0},
    [DJ_INSERT] = {"insert",
                   "INSERT INTO \"t\" (\"k\", \"v\") VALUES ($1, $2) "
                   "RETURNING \"t\".\"id\"",
                   2},
    [DJ_RELEASE] = {"release", "RELEASE SAVEPOINT \"s1\"", 0},
    [DJ_COMMIT] = {"commit", "COMMIT", 0},
    [DJ_ROLLBACK_TO] = {"rollback_to", "ROLLBACK TO SAVEPOINT \"s1\"", 0},
    [DJ_ROLLBACK] = {"rollback", "ROLLBACK", 0},
};

/* The hand-written pieces: a hit's SELECT and a miss's INSERT, each a new
 * statement (a new snapshot) in autocommit. */
static const pg_stmt stmt_select = {
    "sel", "SELECT \"id\" FROM \"t\" WHERE \"k\" = $1", 1};

static const pg_stmt stmt_insert = {
    "ins",
    "INSERT INTO \"t\" (\"k\", \"v\") VALUES ($1, $2) "
    "ON CONFLICT (\"k\") DO NOTHING RETURNING \"id\"",
    2};

/* Connect with libpq; 0 on success. */
static int pg_connect(bench_worker *w) {
  w->pg = PQconnectdb(w->target);
  if (PQstatus(w->pg) != CONNECTION_OK) {
    bench_worker_error(w, "connect: %s", PQerrorMessage(w->pg));
    return -1;
  }
  w->backend_pid = PQbackendPID(w->pg);
  return 0;
}

/* Prepare `s` under its name with parameters of inferred type; nothing to
 * do when the worker sends statements unnamed. */
static int pg_prepare(bench_worker *w, const pg_stmt *s) {
  if (w->unnamed)
    return 0;
  PGresult *res = PQprepare(w->pg, s->name, s->sql, s->nparams, NULL);
  int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
  if (!ok)
    bench_worker_error(w, "prepare %s: %s", s->name, PQerrorMessage(w->pg));
  PQclear(res);
  return ok ? 0 : -1;
}

/* Run `s` once, prepared or unnamed as the worker does. */
static PGresult *pg_exec(bench_worker *w, const pg_stmt *s,
                         const char *const *params) {
  if (!w->unnamed)
    return PQexecPrepared(w->pg, s->name, s->nparams, params, NULL, NULL, 0);
  if (s->nparams == 0)
    return PQexec(w->pg, s->sql);
  return PQexecParams(w->pg, s->sql, s->nparams, NULL, params, NULL, NULL, 0);
}

/*
 * Run `s` and return its result when its status is `want`; otherwise
 * record the error, clear it and return NULL.
 */
static PGresult *pg_run(bench_worker *w, const pg_stmt *s,
                        const char *const *params, ExecStatusType want) {
  PGresult *res = pg_exec(w, s, params);
  if (PQresultStatus(res) == want)
    return res;
  bench_worker_error(w, "%s: %s", s->name, PQerrorMessage(w->pg));
  PQclear(res);
  return NULL;
}

/* Run a statement that returns no rows; 0 on success. */
static int pg_command(bench_worker *w, int stmt) {
  PGresult *res = pg_run(w, &django_stmts[stmt], NULL, PGRES_COMMAND_OK);
  PQclear(res);
  return res ? 0 : -1;
}

static void pg_close(bench_worker *w) {
  PQfinish(w->pg);
  w->pg = NULL;
}

/* --- raw --------------------------------------------------------------- */

static int raw_pg_open(bench_worker *w) {
  if (pg_connect(w) != 0)
    return -1;
  return pg_prepare(w, &raw_goc);
}

static int raw_pg_open_pooled(bench_worker *w) {
  w->unnamed = 1;
  return raw_pg_open(w);
}

/* The statement cannot say whether it inserted: found stays unknown (-1). */
static bench_outcome raw_pg_op(bench_worker *w, const char *key,
                               const char *value) {
  const char *params[] = {key, value};
  bench_outcome out = {0, -1, 0};
  PGresult *res = pg_run(w, &raw_goc, params, PGRES_TUPLES_OK);
  if (res == NULL)
    return out;
  out.ok = 1;
  out.has_id = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
  PQclear(res);
  return out;
}

/* --- django ------------------------------------------------------------ */

static int django_pg_open(bench_worker *w) {
  if (pg_connect(w) != 0)
    return -1;
  for (int i = 0; i < DJ_NSTMTS; i++)
    if (pg_prepare(w, &django_stmts[i]) != 0)
      return -1;
  return 0;
}

static int django_pg_open_pooled(bench_worker *w) {
  w->unnamed = 1;
  return django_pg_open(w);
}

/* get(): 1 when a row was found, 0 when none, -1 on error. */
static int django_get(bench_worker *w, const char *key) {
  const char *params[] = {key};
  PGresult *res = pg_run(w, &django_stmts[DJ_GET], params, PGRES_TUPLES_OK);
  if (res == NULL)
    return -1;
  int found = PQntuples(res) > 0;
  PQclear(res);
  return found;
}

/*
 * INSERT inside the savepoint: 1 when inserted, 0 on a unique violation
 * (the savepoint has been rolled back to), -1 on another error.
 */
static int django_insert(bench_worker *w, const char *key, const char *value) {
  const char *params[] = {key, value};
  PGresult *res = pg_exec(w, &django_stmts[DJ_INSERT], params);
  int rc;
  if (PQresultStatus(res) == PGRES_TUPLES_OK) {
    rc = PQntuples(res) == 1 ? 1 : -1;
  } else {
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    rc = state != NULL && strcmp(state, "23505") == 0 ? 0 : -1;
    if (rc < 0)
      bench_worker_error(w, "insert: %s", PQerrorMessage(w->pg));
  }
  PQclear(res);
  if (rc == 0 && pg_command(w, DJ_ROLLBACK_TO) != 0)
    rc = -1;
  return rc;
}

static bench_outcome django_pg_op(bench_worker *w, const char *key,
                                  const char *value) {
  bench_outcome out = {0, 0, 0};
  int found = django_get(w, key);
  if (found < 0)
    return out;
  if (found) {
    out.ok = out.found = out.has_id = 1;
    return out;
  }
  /* with transaction.atomic(): create() */
  if (pg_command(w, DJ_BEGIN) != 0)
    return out;
  int inserted = -1;
  if (pg_command(w, DJ_SAVEPOINT) == 0)
    inserted = django_insert(w, key, value);
  if (inserted == 1) {
    if (pg_command(w, DJ_RELEASE) != 0 || pg_command(w, DJ_COMMIT) != 0) {
      pg_command(w, DJ_ROLLBACK);
      return out;
    }
    out.ok = out.has_id = 1;
    return out;
  }
  /* IntegrityError leaves atomic() (its transaction is rolled back), then
   * get() again. */
  if (pg_command(w, DJ_ROLLBACK) != 0 || inserted < 0)
    return out;
  found = django_get(w, key);
  if (found < 0)
    return out;
  out.ok = 1;
  out.found = out.has_id = found;
  return out;
}

/* --- select, insert, lookup, insertfirst ------------------------------- */

/* Every one of these methods prepares both statements: it costs nothing
 * measured, and one open function serves all four. */
static int hand_pg_open(bench_worker *w) {
  if (pg_connect(w) != 0)
    return -1;
  return pg_prepare(w, &stmt_select) != 0 || pg_prepare(w, &stmt_insert) != 0
             ? -1
             : 0;
}

static int hand_pg_open_pooled(bench_worker *w) {
  w->unnamed = 1;
  return hand_pg_open(w);
}

/* Run `s`: 1 when it returned an id, 0 when no row, -1 on error. */
static int hand_id(bench_worker *w, const pg_stmt *s, const char *key,
                   const char *value) {
  const char *params[] = {key, value};
  PGresult *res = pg_run(w, s, params, PGRES_TUPLES_OK);
  if (res == NULL)
    return -1;
  int got = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
  PQclear(res);
  return got;
}

/*
 * Run the `n` statements of `steps` in turn until one returns an id (or
 * fails): the call found its row when that one was the lookup.
 */
static bench_outcome hand_run(bench_worker *w, const pg_stmt *const *steps,
                              int n, const char *key, const char *value) {
  int i = 0, got;
  while ((got = hand_id(w, steps[i], key, value)) == 0 && i + 1 < n)
    i++;
  bench_outcome out = {got >= 0, steps[i] == &stmt_select, got == 1};
  return out;
}

static bench_outcome select_pg_op(bench_worker *w, const char *key,
                                  const char *value) {
  static const pg_stmt *const steps[] = {&stmt_select};
  return hand_run(w, steps, 1, key, value);
}

static bench_outcome insert_pg_op(bench_worker *w, const char *key,
                                  const char *value) {
  static const pg_stmt *const steps[] = {&stmt_insert};
  return hand_run(w, steps, 1, key, value);
}

/* An INSERT that returned nothing met a concurrent winner, and ON CONFLICT
 * waited for its commit: the SELECT after it, a new snapshot, sees the
 * row. */
static bench_outcome lookup_pg_op(bench_worker *w, const char *key,
                                  const char *value) {
  static const pg_stmt *const steps[] = {&stmt_select, &stmt_insert,
                                         &stmt_select};
  return hand_run(w, steps, 3, key, value);
}

static bench_outcome insertfirst_pg_op(bench_worker *w, const char *key,
                                       const char *value) {
  static const pg_stmt *const steps[] = {&stmt_insert, &stmt_select};
  return hand_run(w, steps, 2, key, value);
}

const bench_method bench_pg_raw = {"raw", 0, raw_pg_open, raw_pg_op, pg_close};
const bench_method bench_pg_django = {"django", 0, django_pg_open, django_pg_op,
                                      pg_close};
const bench_method bench_pg_raw_pooled = {"raw", 0, raw_pg_open_pooled,
                                          raw_pg_op, pg_close};
const bench_method bench_pg_django_pooled = {"django", 0, django_pg_open_pooled,
                                             django_pg_op, pg_close};

/* Each hand-written method twice: prepared on a direct connection, sent
 * unnamed through the pooler. */
#define HAND_METHOD(var, name, op)                                             \
  const bench_method bench_pg_##var = {name, 0, hand_pg_open, op, pg_close};   \
  const bench_method bench_pg_##var##_pooled = {name, 0, hand_pg_open_pooled,  \
                                                op, pg_close}

HAND_METHOD(select, "select", select_pg_op);
HAND_METHOD(insert, "insert", insert_pg_op);
HAND_METHOD(lookup, "lookup", lookup_pg_op);
HAND_METHOD(insertfirst, "insertfirst", insertfirst_pg_op);

/*
 * db_pg.c -- the PostgreSQL backend (libpq).
 *
 * Get-or-create is one network round trip, hit or miss: in pipeline mode we
 * send an insert-if-absent and a lookup, then one Sync. Under READ COMMITTED
 * the lookup takes a fresh snapshot, so it sees a winner that committed
 * while our insert waited on its row lock; a single statement cannot (one
 * snapshot: the CTE + UNION ALL form returns nothing about once per 1,000
 * contended calls, measured with 16 clients; PostgreSQL's manual, "INSERT
 * ... ON CONFLICT" and "Read Committed Isolation Level", says why: the
 * conflicting row is not visible to the statement's snapshot, and DO NOTHING
 * returns no row for it; see docs/DESIGN.md). No savepoint is
 * needed: an insert that conflicts on the arbiter does nothing, it does not
 * fail. The insert's SELECT ... WHERE NOT EXISTS means a hit evaluates no
 * column default, so no sequence value is consumed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "internal.h"

#define PG_MAX_RETRIES 10
/* The text the predicate guard fails to cast: recognised in pg_fail. */
#define PG_PREDICATE_GUARD "nodup: the new row is outside the key predicate"

/* A prepared statement. On a connection that keeps its server session
 * (db->pooled == 0) it is a named server-side statement, parsed once. Behind
 * a transaction-mode pooler the next transaction may run on another server
 * session, where that name does not exist (or names another statement), so
 * the statement is kept as text and sent unnamed with each execution: Parse,
 * Bind and Execute travel in the one transaction they serve. */
struct nodup_stmt {
  char name[32];   /* server-side name; "" when sent unnamed */
  char *sql;       /* the text, for unnamed execution */
  int nparams;
  Oid *types;      /* nparams type OIDs (0: let the server infer) */
};

/* Send one execution of s (pipeline mode or not). 1 on success. */
static int pg_send(PGconn *c, const nodup_stmt *s, int nparams, const char *const *params) {
  if (s->name[0]) return PQsendQueryPrepared(c, s->name, nparams, params, NULL, NULL, 0);
  return PQsendQueryParams(c, s->sql, nparams, s->types, params, NULL, NULL, 0);
}

/* Run one execution of s and wait for its result (the caller clears it). */
static PGresult *pg_exec_stmt(PGconn *c, const nodup_stmt *s, int nparams,
                              const char *const *params) {
  if (s->name[0]) return PQexecPrepared(c, s->name, nparams, params, NULL, NULL, 0);
  return PQexecParams(c, s->sql, nparams, s->types, params, NULL, NULL, 0);
}

static void pg_stmt_free(nodup_stmt *s) {
  if (!s) return;
  free(s->sql);
  free(s->types);
  free(s);
}

static PGconn *C(nodup_db *db) { return (PGconn *)db->native; }

/* libpq's messages end in a newline and continue on tab-indented lines
 * ("...refused\n\tIs the server running..."): one line, for logs and the
 * CLI's single-line errors. */
static void chomp(buf *b) {
  size_t i;
  while (b->len && (b->p[b->len - 1] == '\n' || b->p[b->len - 1] == ' '))
    b->p[--b->len] = '\0';
  for (i = 0; i < b->len; i++) {
    if (b->p[i] == '\n') b->p[i] = ';';
    else if (b->p[i] == '\t') b->p[i] = ' ';
  }
}

/* Map a failed result to a nodup code, with a message that names the
 * table, constraint and column the server reported, and the SQLSTATE. */
static int pg_fail(nodup_db *db, const PGresult *res, const char *what) {
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
  const char *cons = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
  int code = NODUP_ERR_DB;

  db_set_sqlstate(db, state, cons);
  if (PQstatus(C(db)) == CONNECTION_BAD) code = NODUP_ERR_CONNECT;
  else if (state && strncmp(state, "23", 2) == 0) code = NODUP_ERR_CONSTRAINT;
  else if (state && (!strcmp(state, "40001") || !strcmp(state, "40P01")))
    code = NODUP_ERR_RETRY;
  else if (state && !strcmp(state, "42P01")) code = NODUP_ERR_NO_TABLE;
  else if (state && !strcmp(state, "42703")) code = NODUP_ERR_NO_COLUMN;
  else if (state && !strncmp(state, "08", 2)) code = NODUP_ERR_CONNECT;
  else if (state && !strcmp(state, "53300")) code = NODUP_ERR_CONNECT;
  else if (state && !strcmp(state, "22P02") && primary && strstr(primary, PG_PREDICATE_GUARD))
    return nodup_fail(db, NODUP_ERR_PREDICATE,
                      "the new row does not satisfy the key's predicate: nothing inserted");

  buf_reset(&db->err);
  if (what) buf_printf(&db->err, "%s: ", what);
  if (primary) {
    buf_puts(&db->err, primary);
    if (cons && !strstr(primary, cons)) buf_printf(&db->err, " (constraint \"%s\")", cons);
    if (detail) buf_printf(&db->err, "; %s", detail);
  } else {
    buf_puts(&db->err, PQerrorMessage(C(db)));
    chomp(&db->err);
  }
  if (state) buf_printf(&db->err, " [SQLSTATE %s]", state);
  return code;
}

static int pg_ok(const PGresult *res) {
  ExecStatusType s = PQresultStatus(res);
  return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

static void ignore_notice(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

/* Which engine is this, and does this connection keep one server session? A pooler (PgBouncer,
 * pgcat, Odyssey, RDS Proxy) answers the startup itself and hands the client
 * its own BackendKeyData, so the process id libpq was given at connect is
 * not the server process that runs our statements. Equal ids prove a
 * direct session; anything else is treated as pooled (a session-mode pooler
 * too: the safe side costs a Parse per statement, nothing else). */
static int pg_session_check(nodup_db *db) {
  /* One round trip also tells which engine answers (engine.c): Citus,
   * CockroachDB and YugabyteDB refuse up front what cannot hold there. A
   * failure fails the connect: guessing "PostgreSQL" would skip those
   * refusals. */
  PGresult *res = PQexec(C(db), ENGINE_SQL_DETECT);
  int rc = NODUP_OK;
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == 3) {
    engine_detect(&db->engine, PQgetvalue(res, 0, 0),
                  PQparameterStatus(C(db), "server_version"),
                  PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1));
    db->pooled = atoi(PQgetvalue(res, 0, 2)) != PQbackendPID(C(db));
  } else {
    rc = pg_fail(db, res, "identifying the server");
  }
  PQclear(res);
  return rc;
}

static int pg_accepts(const char *url) {
  return !strncmp(url, "postgres://", 11) || !strncmp(url, "postgresql://", 13) ||
         db_looks_like_conninfo(url);
}

static int pg_connect(nodup_db *db, const char *target) {
  const char *keys[] = {"dbname", "fallback_application_name", NULL};
  const char *vals[] = {target, "nodup", NULL};
  char *err = NULL;
  PQconninfoOption *opts = PQconninfoParse(target, &err);
  PGconn *c;
  /* Malformed: said before any connection attempt, and without the password. */
  if (!opts) {
    int rc = db_fail_url(db, target, "malformed PostgreSQL URL", err);
    if (err) PQfreemem(err);
    return rc;
  }
  PQconninfoFree(opts);
  c = PQconnectdbParams(keys, vals, 1);
  if (!c) return nodup_fail(db, NODUP_ERR_NOMEM, "out of memory connecting");
  db->native = c;
  if (PQstatus(c) != CONNECTION_OK) {
    buf_reset(&db->err);
    buf_printf(&db->err, "cannot connect to PostgreSQL: %s", PQerrorMessage(c));
    chomp(&db->err);
    for (size_t i = 0; i < db->err.len; i++)
      if (db->err.p[i] == '\n') db->err.p[i] = ' ';
    PQfinish(c);
    db->native = NULL;
    return NODUP_ERR_CONNECT;
  }
  db->server_version = PQserverVersion(c);
  /* NULLS NOT DISTINCT is PostgreSQL 15's syntax. */
  if (db->server_version < 150000) db->caps &= ~(unsigned)BE_CAP_NULLS_NOT_DISTINCT;
  /* A library must not write to the caller's stderr (libpq's default for
   * NOTICEs such as "relation already exists, skipping"). */
  PQsetNoticeProcessor(c, ignore_notice, NULL);
  return pg_session_check(db);
}

static void pg_disconnect(nodup_db *db) {
  PQfinish(C(db));
  db->native = NULL;
}

/* Every statement outside a get-or-create's own steps goes through one of
 * the functions below, and none may while a non-blocking call's answers
 * are on their way (db_idle): the public calls ask first, these make sure
 * for those that do not (merge, scan, enforce...). */
#define PG_IDLE(db)                                \
  do {                                             \
    if ((db)->waiting) return db_idle(db);         \
  } while (0)

static int pg_exec(nodup_db *db, const char *sql) {
  PG_IDLE(db);
  PGresult *res = PQexec(C(db), sql);
  int rc = pg_ok(res) ? NODUP_OK : pg_fail(db, res, NULL);
  PQclear(res);
  return rc;
}

static int pg_changes(nodup_db *db, const char *sql, const char *const *params, int nparams,
                      long long *n) {
  PG_IDLE(db);
  PGresult *res = PQexecParams(C(db), sql, nparams, NULL, params, NULL, NULL, 0);
  int rc = pg_ok(res) ? NODUP_OK : pg_fail(db, res, NULL);
  if (rc == NODUP_OK) *n = atoll(PQcmdTuples(res));
  PQclear(res);
  return rc;
}

static int pg_rows(PGresult *res, row_fn fn, void *ctx) {
  const char *vals[64];
  int r, i, nr = PQntuples(res), nc = PQnfields(res);
  if (nc > 64) nc = 64;
  for (r = 0; fn && r < nr; r++) {
    for (i = 0; i < nc; i++)
      vals[i] = PQgetisnull(res, r, i) ? NULL : PQgetvalue(res, r, i);
    if (fn(ctx, nc, vals)) break;
  }
  return NODUP_OK;
}

static int pg_query(nodup_db *db, const char *sql, const char *const *params,
                    int nparams, row_fn fn, void *ctx) {
  PG_IDLE(db);
  PGresult *res = PQexecParams(C(db), sql, nparams, NULL, params, NULL, NULL, 0);
  int rc = pg_ok(res) ? pg_rows(res, fn, ctx) : pg_fail(db, res, NULL);
  PQclear(res);
  return rc;
}

/* Parse the statement now either way, so a mistake is reported at prepare
 * time; pooled, the unnamed statement's parse is discarded by the next one
 * and the text is what is kept. */
static int pg_prepare(nodup_db *db, const char *sql, int nparams,
                      const unsigned *types, nodup_stmt **out) {
  nodup_stmt *s;
  PGresult *res;
  int rc;
  PG_IDLE(db);
  if (!(s = calloc(1, sizeof *s))) return NODUP_ERR_NOMEM;
  s->nparams = nparams;
  if (db->pooled) {
    s->sql = nodup_strdup(sql);
    s->types = calloc(nparams > 0 ? (size_t)nparams : 1, sizeof *s->types);
    if (!s->sql || !s->types) {
      pg_stmt_free(s);
      return NODUP_ERR_NOMEM;
    }
    if (types) memcpy(s->types, types, (size_t)nparams * sizeof *s->types);
  } else {
    snprintf(s->name, sizeof s->name, "nodup_%u", db->next_stmt++);
  }
  res = PQprepare(C(db), s->name, sql, nparams, (const Oid *)types);
  rc = pg_ok(res) ? NODUP_OK : pg_fail(db, res, NULL);
  PQclear(res);
  if (rc != NODUP_OK) {
    pg_stmt_free(s);
    return rc;
  }
  *out = s;
  return NODUP_OK;
}

static int pg_run(nodup_db *db, nodup_stmt *s, const char *const *params,
                  int nparams, row_fn fn, void *ctx) {
  PG_IDLE(db);
  PGresult *res = pg_exec_stmt(C(db), s, nparams, params);
  int rc = pg_ok(res) ? pg_rows(res, fn, ctx) : pg_fail(db, res, NULL);
  PQclear(res);
  return rc;
}

static void pg_finalize(nodup_db *db, nodup_stmt *s) {
  if (!s) return;
  /* Best effort: inside an aborted transaction DEALLOCATE fails, and the
   * statement then dies with the session. */
  /* Not while a non-blocking call's answers are on their way either: the
   * DEALLOCATE would read them. */
  if (s->name[0] && db->native && PQstatus(C(db)) == CONNECTION_OK &&
      PQtransactionStatus(C(db)) != PQTRANS_INERROR && !db->waiting) {
    char sql[64];
    snprintf(sql, sizeof sql, "DEALLOCATE \"%s\"", s->name);
    PQclear(PQexec(C(db), sql));
  }
  pg_stmt_free(s);
}

static int pg_in_transaction(nodup_db *db) {
  return PQtransactionStatus(C(db)) != PQTRANS_IDLE;
}

/* ---- catalog ---- */

typedef struct pg_tctx {
  nodup_db *db;
  nodup_table_info *t;
  size_t cap;
  int oom;
  char oid[16];
  char relkind;
} pg_tctx;

static int pg_table_row(void *vctx, int n, const char *const *v) {
  pg_tctx *c = vctx;
  buf q;
  (void)n;
  snprintf(c->oid, sizeof c->oid, "%s", v[0]);
  c->relkind = v[3][0];
  c->t->name = nodup_strdup(v[2]);
  c->t->schema = nodup_strdup(v[1]);
  buf_init(&q);
  sql_ident(&q, v[1]);
  buf_putc(&q, '.');
  sql_ident(&q, v[2]);
  c->t->qualified = q.oom ? NULL : nodup_strdup(buf_str(&q));
  buf_free(&q);
  if (!c->t->name || !c->t->qualified || !c->t->schema) c->oom = 1;
  return 1;
}

static int pg_column_row(void *vctx, int n, const char *const *v) {
  pg_tctx *c = vctx;
  nodup_table_info *t = c->t;
  (void)n;
  if (t->ncols == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 16;
    char **cols = realloc(t->cols, cap * sizeof *cols);
    unsigned *types;
    int *nn;
    if (!cols) return c->oom = 1;
    t->cols = cols;
    if (!(types = realloc(t->types, cap * sizeof *types))) return c->oom = 1;
    t->types = types;
    if (!(nn = realloc(t->notnull, cap * sizeof *nn))) return c->oom = 1;
    t->notnull = nn;
    c->cap = cap;
  }
  if (!(t->cols[t->ncols] = nodup_strdup(v[0]))) return c->oom = 1;
  t->types[t->ncols] = (unsigned)strtoul(v[1], NULL, 10);
  t->notnull[t->ncols] = v[2][0] == 't';
  t->ncols++;
  return 0;
}

/* Rows: index name, primary, deferrable, predicate, nulls-not-distinct,
 * constraint, ordinal, column (NULL for an expression). One row per key
 * column, ordered by index then ordinal. */
static int pg_index_row(void *vctx, int n, const char *const *v) {
  pg_tctx *c = vctx;
  nodup_table_info *t = c->t;
  nodup_index_info *ix;
  char **cols;
  (void)n;
  if (!t->nidx || strcmp(t->idx[t->nidx - 1].name, v[0]) != 0) {
    if (t->nidx == c->cap) {
      size_t cap = c->cap ? c->cap * 2 : 8;
      nodup_index_info *idx = realloc(t->idx, cap * sizeof *idx);
      if (!idx) return c->oom = 1;
      t->idx = idx;
      c->cap = cap;
    }
    ix = &t->idx[t->nidx++];
    memset(ix, 0, sizeof *ix);
    ix->name = nodup_strdup(v[0]);
    ix->primary = v[1][0] == '1';
    ix->deferrable = v[2][0] == '1';
    ix->predicate = v[3] ? nodup_strdup(v[3]) : NULL;
    ix->nulls_equal = v[4][0] == '1';
    ix->constraint = v[5] ? nodup_strdup(v[5]) : NULL;
    if (!ix->name || (v[3] && !ix->predicate) || (v[5] && !ix->constraint))
      return c->oom = 1;
  }
  ix = &t->idx[t->nidx - 1];
  cols = realloc(ix->cols, (ix->ncols + 1) * sizeof *cols);
  if (!cols) return c->oom = 1;
  ix->cols = cols;
  cols = realloc(ix->terms, (ix->ncols + 1) * sizeof *cols);
  if (!cols) return c->oom = 1;
  ix->terms = cols;
  ix->cols[ix->ncols] = v[7] ? nodup_strdup(v[7]) : NULL;
  ix->terms[ix->ncols] = NULL;
  ix->ncols++;   /* counted now: freed with t, even half made */
  if (v[7] && !ix->cols[ix->ncols - 1]) return c->oom = 1;
  /* An expression column's text (pg_get_indexdef: lower((email)::text)),
   * read as a key term when it is one. */
  if (keyterm_index(c->db, t, v[7], v[8], &ix->terms[ix->ncols - 1]) != NODUP_OK)
    return c->oom = 1;
  return 0;
}

/* t's unique indexes (valid ones: a failed CONCURRENTLY build is not one),
 * and its primary key's columns from the index backing it. */
static int pg_table_indexes(nodup_db *db, pg_tctx *c) {
  nodup_table_info *t = c->t;
  const char *oidp[1] = {c->oid};
  char sql[2000];
  size_t i, j;
  int rc;
  c->cap = 0;
  snprintf(sql, sizeof sql,
           "SELECT ci.relname, i.indisprimary::int, (NOT i.indimmediate)::int, "
           "  pg_catalog.pg_get_expr(i.indpred, i.indrelid), %s, con.conname, "
           "  k.ord, a.attname, "
           "  CASE WHEN k.attnum = 0 THEN pg_catalog.pg_get_indexdef(i.indexrelid, "
           "    k.ord::int, true) END "
           "FROM pg_catalog.pg_index i "
           "JOIN pg_catalog.pg_class ci ON ci.oid = i.indexrelid "
           "LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid "
           "  AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u') "
           "CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) "
           "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid "
           "  AND a.attnum = k.attnum AND k.attnum > 0 "
           "WHERE i.indrelid = $1::oid AND i.indisunique AND i.indisvalid "
           "  AND k.ord <= i.indnkeyatts "
           "ORDER BY ci.relname, k.ord",
           db->server_version >= 150000 ? "i.indnullsnotdistinct::int" : "0");
  rc = pg_query(db, sql, oidp, 1, pg_index_row, c);
  if (rc == NODUP_OK && c->oom) rc = NODUP_ERR_NOMEM;
  for (i = 0; rc == NODUP_OK && i < t->nidx; i++) {
    if (!t->idx[i].primary) continue;
    if (!(t->pk = calloc(t->idx[i].ncols, sizeof *t->pk))) return NODUP_ERR_NOMEM;
    for (j = 0; j < t->idx[i].ncols; j++) {
      t->pk[j] = nodup_strdup(t->idx[i].cols[j] ? t->idx[i].cols[j] : "?");
      if (!t->pk[j]) return NODUP_ERR_NOMEM;
      t->npk++;
    }
  }
  return rc;
}

static int pg_table_info(nodup_db *db, const char *table, nodup_table_info **out) {
  nodup_table_info *t = calloc(1, sizeof *t);
  pg_tctx c;
  const char *p[1] = {table};
  const char *oidp[1];
  int rc;

  *out = NULL;
  if (!t) return NODUP_ERR_NOMEM;
  memset(&c, 0, sizeof c);
  c.db = db;
  c.t = t;
  /* Names are exact (quoted): "Order" is not "order". A dot splits schema
   * from table only when no relation has the whole name. */
  rc = pg_query(db,
                "SELECT c.oid, n.nspname, c.relname, c.relkind "
                "FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.oid = coalesce(to_regclass(quote_ident($1::text)), "
                "  CASE WHEN strpos($1::text, '.') > 0 THEN to_regclass("
                "    quote_ident(split_part($1::text, '.', 1)) || '.' || "
                "    quote_ident(substr($1::text, strpos($1::text, '.') + 1))) END)",
                p, 1, pg_table_row, &c);
  if (rc == NODUP_OK && c.oom) rc = NODUP_ERR_NOMEM;
  if (rc != NODUP_OK) goto done;
  if (!c.t->name) {
    rc = nodup_fail(db, NODUP_ERR_NO_TABLE, "table \"%s\" does not exist", table);
    goto done;
  }
  if (c.relkind != 'r' && c.relkind != 'p') {
    rc = nodup_fail(db, NODUP_ERR_NO_TABLE, "\"%s\" is not a table (relkind %c)",
                    table, c.relkind);
    goto done;
  }
  oidp[0] = c.oid;
  rc = pg_query(db,
                "SELECT attname, atttypid, attnotnull FROM pg_catalog.pg_attribute "
                "WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped "
                "ORDER BY attnum",
                oidp, 1, pg_column_row, &c);
  if (rc == NODUP_OK && c.oom) rc = NODUP_ERR_NOMEM;
  if (rc == NODUP_OK) rc = pg_table_indexes(db, &c);
done:
  if (rc == NODUP_OK) *out = t;
  else table_info_free(t);
  return rc;
}

/* EXPLAIN's lines: what follows `tag` on the lines that have it, to out
 * (with `first`, the first such line only). */
typedef struct explain_ctx {
  buf *out;
  const char *tag;
  int first;
} explain_ctx;

static int explain_row(void *vctx, int n, const char *const *v) {
  explain_ctx *c = vctx;
  const char *s;
  (void)n;
  if ((c->first && c->out->len) || !v[0] || !(s = strstr(v[0], c->tag))) return 0;
  buf_puts(c->out, s + strlen(c->tag));
  return c->first;
}

/* The planner's ON CONFLICT inference is the authority on which unique
 * indexes back (cols) WHERE pred (with its implication proof for partial
 * indexes). EXPLAIN runs it without executing anything and names them. */
static int pg_arbiters(nodup_db *db, const nodup_table_info *t,
                       char *const *cols, size_t ncols, const char *where,
                       buf *names) {
  buf q;
  size_t i;
  unsigned *types = calloc(ncols ? ncols : 1, sizeof *types);
  const char **vals = calloc(ncols ? ncols : 1, sizeof *vals);
  PGresult *res = NULL;
  explain_ctx ec = {names, "Conflict Arbiter Indexes: ", 0};
  int rc;

  buf_init(&q);
  if (!types || !vals) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  for (i = 0; i < ncols; i++) {
    int c = keyterm_column(db, t, cols[i]);
    types[i] = c >= 0 ? t->types[c] : 0;
  }
  buf_puts(&q, "EXPLAIN (COSTS OFF) ");
  db_conflict_insert(&q, db, t, cols, ncols, where);
  if (q.oom) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  res = PQexecParams(C(db), buf_str(&q), (int)ncols, (const Oid *)types, vals,
                     NULL, NULL, 0);
  if (pg_ok(res)) {
    rc = pg_rows(res, explain_row, &ec);
  } else {
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    rc = pg_fail(db, res, NULL);
    /* 42P10: no matching index; 55000: a deferrable one cannot arbitrate. */
    if (state && (!strcmp(state, "42P10") || !strcmp(state, "55000")))
      rc = NODUP_ERR_UNBACKED;
  }
done:
  PQclear(res);
  buf_free(&q);
  free(types);
  free((void *)vals);
  return rc;
}

/* Leave pipeline mode after a failure that stopped us reading: whatever
 * is still pending is read and dropped so the connection is usable (or,
 * when it is broken, left for pg_fail to report as NODUP_ERR_CONNECT). */
static void pg_pipeline_abandon(nodup_db *db) {
  PGconn *c = C(db);
  PGresult *res;
  int nulls = 0;
  while (PQpipelineStatus(c) != PQ_PIPELINE_OFF && PQstatus(c) == CONNECTION_OK) {
    if (PQexitPipelineMode(c)) return;
    res = PQgetResult(c);
    if (!res) {
      if (++nulls > 1) break;
      continue;
    }
    nulls = 0;
    PQclear(res);
  }
}

/* The planner's own form of a predicate: EXPLAIN VERBOSE prints the
 * expression after parsing and constant folding, so `is_active = true`,
 * `"is_active"` and `is_active` all read `is_active`, and an index's
 * stored predicate (pg_get_expr) reads the same as the key's. Selected,
 * not filtered, so no index or partition choice changes the text; ONLY,
 * so a partitioned table prints its own columns. One statement through
 * the extended protocol: a predicate cannot smuggle in a second one. */
static int pg_predicate_canon(nodup_db *db, const nodup_table_info *t, const char *pred,
                              buf *out) {
  buf q;
  explain_ctx c = {out, "Output: ", 1};
  int rc;
  buf_reset(out);
  buf_init(&q);
  buf_printf(&q, "EXPLAIN (VERBOSE, COSTS OFF) SELECT (%s) FROM ONLY %s", pred, t->qualified);
  rc = q.oom ? NODUP_ERR_NOMEM : pg_query(db, buf_str(&q), NULL, 0, explain_row, &c);
  buf_free(&q);
  if (rc == NODUP_OK && out->oom) rc = NODUP_ERR_NOMEM;
  return rc;
}

/* Jittered, growing pause (µs) so two retrying transactions drift apart.
 * A per-connection xorshift: rand() is neither thread-safe nor private. */
static long backoff_us(nodup_db *db, int attempt) {
  unsigned x = db->seed ? db->seed : (unsigned)(size_t)db | 1u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  db->seed = x;
  return (long)(x % 1000 + 1) * (attempt + 1);
}

static long long monotonic_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(long us) {
  struct timespec ts;
  ts.tv_sec = us / 1000000;
  ts.tv_nsec = (us % 1000000) * 1000L;
  nanosleep(&ts, NULL);
}

static void backoff(nodup_db *db, int attempt) { sleep_us(backoff_us(db, attempt)); }

/* What one round does with its rows: fn[0] gets the insert's, fn[1] the
 * lookup's, both with ctx; `attempt` (may be NULL) is called before each
 * attempt, so rows of an attempt that failed and was rolled back can be
 * forgotten. The single-key round keeps the first row of each
 * (goc_sink); the many-keys round every row (getorcreate_many.c). */
typedef struct pg_sink {
  row_fn fn[2];
  void (*attempt)(void *ctx);
  void *ctx;
} pg_sink;

/* Send one pipelined round: insert-if-absent, lookup (unless NULL, with
 * the first nlookup parameters), Sync; rd is set to read its results. */
static int pg_round_send(nodup_db *db, nodup_stmt *insert, nodup_stmt *lookup,
                         const char *const *params, int nparams, int nlookup,
                         round_read *rd) {
  PGconn *c = C(db);
  int rc;
  memset(rd, 0, sizeof *rd);
  rd->pipelined = 1;
  rd->fresh = 1;
  rd->nsent = lookup ? 2 : 1;
  if (!PQenterPipelineMode(c)) return pg_fail(db, NULL, "entering pipeline mode");
  if (!pg_send(c, insert, nparams, params) ||
      (lookup && !pg_send(c, lookup, nlookup, params)) || !PQpipelineSync(c)) {
    rc = pg_fail(db, NULL, "sending get-or-create");
    pg_pipeline_abandon(db);
    return rc;
  }
  return NODUP_OK;
}

/* Send one statement alone (no pipeline: what PQexecPrepared sends). */
static int pg_stmt_send(nodup_db *db, nodup_stmt *s, const char *const *params, int nparams,
                        round_read *rd) {
  memset(rd, 0, sizeof *rd);
  rd->fresh = 1;
  rd->nsent = 1;
  if (!pg_send(C(db), s, nparams, params)) return pg_fail(db, NULL, "sending the lookup");
  return NODUP_OK;
}

/* Read what was sent, handing rows to the sink. On error, the message is
 * set and the SQLSTATE and constraint kept in rd. Non-blocking, return
 * NODUP_AGAIN as soon as a result has not arrived (call again when the
 * socket is readable); blocking, wait in PQgetResult as PQexec does.
 *
 * A round's results are read up to the Sync whatever happens, so the
 * connection leaves pipeline mode clean after an error at any position:
 * the insert's (another constraint), the lookup's, or the implicit
 * transaction's COMMIT at the Sync (a deferred constraint trigger, or
 * SERIALIZABLE's 40001 "could not serialize access" raised at commit),
 * which arrives as one more error result before PGRES_PIPELINE_SYNC. A
 * failed COMMIT rolled the insert back: the caller forgets its rows. */
static int pg_round_read(nodup_db *db, round_read *rd, const pg_sink *sink, int nonblock) {
  PGconn *c = C(db);
  PGresult *res;
  ExecStatusType st;
  int rc;

  /* pos: 0 insert, 1 lookup if sent, then (nsent) the COMMIT at the Sync.
   * PQgetResult returns NULL after each statement's results. */
  for (;;) {
    if (nonblock && rd->fresh) {
      /* Just sent: the answer cannot be there yet, so no read to find
       * out (a system call per call); the socket says when it is. */
      rd->fresh = 0;
      return NODUP_AGAIN;
    }
    if (nonblock && PQisBusy(c)) {
      if (!PQconsumeInput(c)) break;
      if (PQisBusy(c)) return NODUP_AGAIN;
    }
    res = PQgetResult(c);
    if (!res) {
      /* Alone, the statement's NULL ends it. In a pipeline, two NULLs in
       * a row mean nothing more will come (a broken connection); one ends
       * a statement's results. */
      if (!rd->pipelined && PQstatus(c) == CONNECTION_OK) return rd->rc;
      if (!rd->pipelined || ++rd->nulls > 1 || PQstatus(c) == CONNECTION_BAD) break;
      rd->pos++;
      continue;
    }
    rd->nulls = 0;
    st = PQresultStatus(res);
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(res);
      PQexitPipelineMode(c);
      return rd->rc;
    }
    if (st == PGRES_TUPLES_OK && rd->pos < rd->nsent) {
      if (rd->rc == NODUP_OK) pg_rows(res, sink->fn[rd->pos], sink->ctx);
    } else if (st != PGRES_PIPELINE_ABORTED && st != PGRES_COMMAND_OK && rd->rc == NODUP_OK) {
      const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
      const char *k = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
      snprintf(rd->state, sizeof rd->state, "%s", s ? s : "");
      snprintf(rd->cons, sizeof rd->cons, "%s", k ? k : "");
      rd->rc = pg_fail(db, res, rd->pipelined && rd->pos >= rd->nsent ? "at commit" : NULL);
    }
    PQclear(res);
  }
  rc = rd->rc != NODUP_OK ? rd->rc : pg_fail(db, NULL, "reading get-or-create results");
  if (rd->pipelined) pg_pipeline_abandon(db);
  return rc;
}

/* One round, sent and read to its end. */
static int pg_round(nodup_db *db, nodup_stmt *insert, nodup_stmt *lookup,
                    const char *const *params, int nparams, int nlookup,
                    const pg_sink *sink, round_read *rd) {
  int rc = pg_round_send(db, insert, lookup, params, nparams, nlookup, rd);
  return rc != NODUP_OK ? rc : pg_round_read(db, rd, sink, 0);
}

/* The single-key round's rows (ctx: the key): the insert's first row is
 * ours (created, unless an upsert's row says it was updated); the
 * lookup's first row is the one found when the insert returned none. */
static int goc_inserted(void *ctx, int n, const char *const *v) {
  nodup_key *key = ctx;
  if (key->id.len) return 1;
  key_store_id(key, n, v);
  key->call.created = !key->row_flag;
  return 1;
}

static int goc_found(void *ctx, int n, const char *const *v) {
  nodup_key *key = ctx;
  if (!key->id.len) key_store_id(key, n, v);
  return 1;
}

static void goc_attempt(void *ctx) {
  nodup_key *key = ctx;
  key->call.created = 0;
  buf_reset(&key->id);
}

/* Is `cons` one of the key's arbiter indexes (key->index: "a, b", names
 * possibly schema-qualified)? A unique violation naming it can only come
 * from a trigger doing the index's job before ON CONFLICT could absorb the
 * conflict: nodup enforce --online's guard, live or left by a dead run. */
static int own_index(const nodup_key *key, const char *cons) {
  const char *p = key->index, *hit;
  size_t n = strlen(cons);
  if (!n) return 0;
  for (; (hit = strstr(p, cons)) != NULL; p = hit + 1)
    if ((hit == key->index || hit[-1] == ' ' || hit[-1] == '.') &&
        (hit[n] == '\0' || hit[n] == ','))
      return 1;
  return 0;
}

/* The round a call starts with, from the hit rate the key observed
 * (getorcreate.c keeps it). A hit costs one SELECT when the lookup goes
 * alone, and a miss one INSERT when the insert does; each pays a second
 * round trip for the other outcome, and the pipelined round pays both
 * statements' server time for one round trip. The thresholds sit between
 * the mixes of bench_goc runs with each round forced (docs/BENCHMARKS.md):
 * the pipelined round won at 50/50 with 1 client, the lookup alone at
 * 90/10 and hits, the insert alone at 10/90 and misses. The insert goes
 * alone up to 25% hits, not just 10%: the rate is an average of about 16
 * calls, so a 10/90 workload crossed 10% on every other hit and its calls
 * paid the pipelined lookup about half the time, a statement the server
 * runs for nothing on a miss (1.55 statements a call, now 1.11). Where
 * exactly each crossover lies is not measured. */
#define HIT_LOOKUP_FIRST (KEY_HIT_ONE * 6 / 10)
#define HIT_INSERT_FIRST (KEY_HIT_ONE / 4)

static key_strategy pg_strategy(const nodup_key *key) {
  if (key->strategy != KEY_ADAPTIVE) return key->strategy;
  if (key->hit_rate >= HIT_LOOKUP_FIRST) return KEY_LOOKUP_FIRST;
  if (key->hit_rate <= HIT_INSERT_FIRST) return KEY_INSERT_FIRST;
  return KEY_PIPELINED;
}

/* The lookup alone, a statement of its own: its snapshot is taken after
 * everything committed before it was sent. */
static int pg_lookup(nodup_key *key, nodup_stmt *lookup, const char *const *params) {
  buf_reset(&key->id);
  return pg_run(key->db, lookup, params, (int)key->ncols, key_store_id, key);
}

/* What a failed round means for the next: a unique violation from an
 * online enforce's guard on our own index (the winner's row exists: the
 * next round's lookup returns it) or a serialization failure is
 * NODUP_ERR_RETRY; the caller retries it only in its own transaction.
 * Inside the caller's transaction both are the caller's. */
static int pg_round_verdict(nodup_key *key, int rc, const round_read *rd, int owned) {
  if (rc == NODUP_ERR_CONSTRAINT && !strcmp(rd->state, "23505") && own_index(key, rd->cons)) {
    if (!owned)
      return nodup_fail(key->db, NODUP_ERR_RETRY,
                        "a concurrent transaction created this key, and the guard of an "
                        "online enforce refused ours (%s): roll back and retry",
                        rd->cons);
    rc = NODUP_ERR_RETRY;
  }
  return rc;
}

/* Rounds until one ends with a row or an error that a retry cannot cure
 * (pg_round_verdict). Update-or-create and many keys run these; a single
 * key's get-or-create runs the same rounds as steps (pg_goc_step). */
static int pg_rounds(nodup_key *key, nodup_stmt *insert, nodup_stmt *lookup,
                     const char *const *params, int nparams, int nlookup,
                     const pg_sink *sink) {
  int owned = PQtransactionStatus(C(key->db)) == PQTRANS_IDLE;
  int attempt, rc = NODUP_OK;
  round_read rd;
  for (attempt = 0; attempt < PG_MAX_RETRIES; attempt++) {
    if (sink->attempt) sink->attempt(sink->ctx);
    rc = pg_round(key->db, insert, lookup, params, nparams, nlookup, sink, &rd);
    /* Nothing of a failed round survives: the implicit transaction (or
     * the caller's) is rolled back or aborted. */
    if (rc != NODUP_OK && sink->attempt) sink->attempt(sink->ctx);
    rc = pg_round_verdict(key, rc, &rd, owned);
    if (rc == NODUP_ERR_RETRY && owned) {
      key->db->retries++;
      if (attempt + 1 < PG_MAX_RETRIES) backoff(key->db, attempt);   /* none after the last */
      continue;
    }
    return rc;
  }
  return rc;
}

/* The single-key rounds: key->id gets the row, *created whether ours. */
static int pg_goc_rounds(nodup_key *key, nodup_stmt *insert, nodup_stmt *lookup,
                         const char *const *params, int nparams, int *created) {
  pg_sink sink = {{goc_inserted, goc_found}, goc_attempt, NULL};
  int rc;
  sink.ctx = key;
  key->call.created = 0;
  rc = pg_rounds(key, insert, lookup, params, nparams, (int)key->ncols, &sink);
  *created = rc == NODUP_OK && key->call.created;
  if (rc == NODUP_OK && key->id.p && key->id.oom) rc = NODUP_ERR_NOMEM;
  return rc;
}

/* ---- get-or-create, one key, in steps ----
 *
 * Whatever the round, `created` comes only from our insert's RETURNING
 * (ON CONFLICT DO NOTHING lets one insert of a key win), a hit evaluates
 * no column default (the lookup alone, or the insert's NOT EXISTS), and
 * a row found after our insert added nothing comes from a statement
 * started after it: the winner committed before that snapshot.
 *
 * The steps, each one send and its results:
 *   GOC_LOOKUP      the lookup alone (KEY_LOOKUP_FIRST); a hit ends the
 *                   round, a miss sends GOC_ROUND
 *   GOC_ROUND       insert-if-absent, pipelined with the lookup only for
 *                   KEY_PIPELINED; a failure that a retry cures waits
 *                   (GOC_BACKOFF) and sends it again
 *   GOC_LOOKUP_AFTER  the lookup after an insert alone that added nothing
 * After a lookup that missed, the insert goes alone: it creates the row
 * unless another creator won since, and only then (a race, rare) is the
 * lookup needed; pipelining it would cost the server a statement on every
 * miss to save a round trip on those races.
 * A blocking call waits for each result and sleeps its backoffs; a
 * non-blocking one returns NODUP_AGAIN with what to wait for. */
enum { GOC_LOOKUP, GOC_ROUND, GOC_LOOKUP_AFTER, GOC_BACKOFF };

static const pg_sink goc_lookup_sink = {{goc_found, NULL}, NULL, NULL};
static const pg_sink goc_round_sink = {{goc_inserted, goc_found}, NULL, NULL};

static int pg_goc_send(nodup_key *key, int step) {
  key_call *k = &key->call;
  const key_shape *s = k->s;
  k->step = step;
  if (step != GOC_ROUND)
    return pg_stmt_send(key->db, s->lookup, k->p.v, (int)key->ncols, &k->rd);
  goc_attempt(key);
  return pg_round_send(key->db, s->insert, k->how == KEY_PIPELINED ? s->lookup : NULL,
                       k->p.v, (int)k->p.n, (int)key->ncols, &k->rd);
}

static int pg_goc_start(nodup_key *key) {
  key_call *k = &key->call;
  k->how = pg_strategy(key);
  k->owned = PQtransactionStatus(C(key->db)) == PQTRANS_IDLE;
  k->attempt = 0;
  k->created = 0;
  buf_reset(&key->id);
  return pg_goc_send(key, k->how == KEY_LOOKUP_FIRST ? GOC_LOOKUP : GOC_ROUND);
}

/* A call given up on (nodup_key_free): ask the server to cancel what it
 * runs, then read and drop the answers to what was sent. A statement the
 * cancel stops fails, and the implicit transaction with it; one that had
 * finished stands. Nothing new is sent: after a backoff nothing is in
 * flight, and a call blocked on another transaction's row must not wait
 * for it (that transaction may be the caller's own, on another
 * connection). */
static void pg_goc_cancel(nodup_key *key) {
  PGconn *c = C(key->db);
  PGcancel *cancel;
  PGresult *res;
  char err[256];
  if (key->call.step == GOC_BACKOFF || PQstatus(c) != CONNECTION_OK) return;
  if ((cancel = PQgetCancel(c)) != NULL) {
    PQcancel(cancel, err, sizeof err);
    PQfreeCancel(cancel);
  }
  if (key->call.rd.pipelined) {
    pg_pipeline_abandon(key->db);
    return;
  }
  while ((res = PQgetResult(c)) != NULL) PQclear(res);
}

static int pg_goc_step(nodup_key *key, nodup_wait *wait) {
  key_call *k = &key->call;
  pg_sink sink;
  int rc;
  for (;;) {
    if (k->step == GOC_BACKOFF) {   /* only non-blocking: blocking sleeps it below */
      long left = (long)(k->until_us - monotonic_us());
      if (left > 0) {   /* polled before the backoff is over */
        wait->fd = -1;
        wait->timeout_us = left;
        return NODUP_AGAIN;
      }
      if ((rc = pg_goc_send(key, GOC_ROUND)) != NODUP_OK) return rc;
      continue;
    }
    sink = k->step == GOC_ROUND ? goc_round_sink : goc_lookup_sink;
    sink.ctx = key;
    rc = pg_round_read(key->db, &k->rd, &sink, k->nonblock);
    if (rc == NODUP_AGAIN) {
      wait->fd = PQsocket(C(key->db));
      wait->timeout_us = -1;
      return rc;
    }
    if (rc == NODUP_OK && key->id.p && key->id.oom) rc = NODUP_ERR_NOMEM;
    if (k->step != GOC_ROUND) {
      /* A lookup: a row ends the round; none after the lookup alone
       * sends the insert (alone), after an insert that added nothing it
       * ends the round empty. */
      if (rc != NODUP_OK || key->id.len) return rc;
      if (k->step == GOC_LOOKUP_AFTER) return NODUP_ERR_CONFLICT;
      if ((rc = pg_goc_send(key, GOC_ROUND)) != NODUP_OK) return rc;
      continue;
    }
    /* Nothing of a failed round survives: the implicit transaction (or
     * the caller's) is rolled back or aborted. */
    if (rc != NODUP_OK) goc_attempt(key);
    rc = pg_round_verdict(key, rc, &k->rd, k->owned);
    if (rc == NODUP_ERR_RETRY && k->owned) key->db->retries++;
    if (rc == NODUP_ERR_RETRY && k->owned && ++k->attempt < PG_MAX_RETRIES) {
      if (!k->nonblock) {
        backoff(key->db, k->attempt - 1);
        if ((rc = pg_goc_send(key, GOC_ROUND)) != NODUP_OK) return rc;
        continue;
      }
      k->step = GOC_BACKOFF;
      wait->fd = -1;
      wait->timeout_us = backoff_us(key->db, k->attempt - 1);
      k->until_us = monotonic_us() + wait->timeout_us;
      return NODUP_AGAIN;
    }
    if (rc != NODUP_OK || key->id.len) return rc;
    if (k->how == KEY_PIPELINED) return NODUP_ERR_CONFLICT;
    if ((rc = pg_goc_send(key, GOC_LOOKUP_AFTER)) != NODUP_OK) return rc;
  }
}

/* Update-or-create: the upsert alone, in the get-or-create rounds (retries
 * of 40001 and 40P01 in our own transaction, NODUP_ERR_RETRY in the
 * caller's). It returns the row it inserted or updated; nothing when the
 * row exists and already holds the values (DO UPDATE's WHERE was false:
 * the row is locked, not rewritten). Then the lookup, a statement of its
 * own and so a fresh snapshot under READ COMMITTED, gives the id. Not
 * pipelined with the upsert: a lookup on every call would cost the
 * server a second statement for the one outcome that needs it. */
static int pg_upsert_one(nodup_key *key, const key_shape *s, const char *const *params,
                         int nparams, int *outcome) {
  int created = 0;
  int rc = pg_goc_rounds(key, s->upsert, NULL, params, nparams, &created);
  if (rc != NODUP_OK) return rc;
  if (key->id.len) {
    *outcome = created ? NODUP_CREATED : NODUP_UPDATED;
    return NODUP_OK;
  }
  if ((rc = pg_lookup(key, s->lookup, params)) != NODUP_OK) return rc;
  *outcome = NODUP_UNCHANGED;
  return key->id.len ? NODUP_OK : NODUP_ERR_CONFLICT;
}

/* Where the upsert cannot say inserted from updated (a partitioned table:
 * pg_row_existed), three statements, each in a snapshot of its own: the
 * compare; an equal row ends the call with nothing written. A differing
 * row is updated while it still differs; a missing one is inserted if
 * still absent (ON CONFLICT DO NOTHING: one insert of a key wins). A
 * write that finds nothing to do lost a race: NODUP_ERR_CONFLICT, and the
 * next step's compare sees the winner. */
static int pg_upsert_step(nodup_key *key, const key_shape *s, const char *const *params,
                          int nparams, int *outcome) {
  nodup_db *db = key->db;
  int rc;
  buf_reset(&key->id);
  *outcome = NODUP_UNCHANGED;
  rc = pg_run(db, s->compare, params, nparams, key_store_id, key);
  if (rc != NODUP_OK || (key->id.len && !key->row_flag)) return rc;
  *outcome = key->id.len ? NODUP_UPDATED : NODUP_CREATED;
  buf_reset(&key->id);
  rc = pg_run(db, *outcome == NODUP_UPDATED ? s->update : s->insert, params, nparams,
              key_store_id, key);
  return rc == NODUP_OK && !key->id.len ? NODUP_ERR_CONFLICT : rc;
}

/* Steps until one ends the call: lost races and, in our own transaction,
 * serialization failures and deadlocks are tried again (a bounded number
 * of times, with jitter); inside the caller's these are the caller's. */
static int pg_upsert_steps(nodup_key *key, const key_shape *s, const char *const *params,
                           int nparams, int *outcome) {
  int owned = PQtransactionStatus(C(key->db)) == PQTRANS_IDLE;
  int attempt, rc = NODUP_OK;
  for (attempt = 0; attempt < PG_MAX_RETRIES; attempt++) {
    rc = pg_upsert_step(key, s, params, nparams, outcome);
    if (rc == NODUP_ERR_CONFLICT || (rc == NODUP_ERR_RETRY && owned)) {
      key->db->retries += rc == NODUP_ERR_RETRY;
      backoff(key->db, attempt);
      continue;
    }
    break;
  }
  return rc;
}

static int pg_update_or_create(nodup_key *key, const key_shape *s, const char *const *params,
                               int nparams, int *outcome) {
  if (s->upsert) return pg_upsert_one(key, s, params, nparams, outcome);
  return pg_upsert_steps(key, s, params, nparams, outcome);
}

/* The upsert's "existed" flag, from xmax of the row version it returns: 0
 * for the tuple it inserted; for the one it updated, the lock ON CONFLICT
 * DO UPDATE took on the old version, carried to the new (a MultiXact with
 * other lockers). Undocumented (the manual calls xmax the deleting
 * transaction's id) but the idiom the ORM threads cite, unchanged since
 * 9.5, and test_upsert checks it under races; PostgreSQL 18's RETURNING
 * old.* is the documented way once older servers need not be served. A
 * partitioned table cannot return system columns ("cannot retrieve a
 * system column in this context", SQLSTATE 0A000): nothing, so key.c
 * builds the compare, update and insert instead. */
static int pg_flag(void *ctx, int n, const char *const *v);

static int pg_row_existed(nodup_db *db, const nodup_table_info *t, const char *alias, buf *q) {
  const char *p[1] = {t->qualified};
  int partitioned = 0;
  int rc = pg_query(db,
                    "SELECT true FROM pg_catalog.pg_partitioned_table "
                    "WHERE partrelid = $1::regclass",
                    p, 1, pg_flag, &partitioned);
  if (rc == NODUP_OK && !partitioned)
    buf_printf(q, "CASE WHEN %s.xmax = 0 THEN 0 ELSE 1 END", alias);
  return rc;
}

/* ---- many keys (getorcreate_many.c) ---- */

/* Fills the next of `types` with each row's typarray. */
typedef struct pg_arrays {
  unsigned *types;
  size_t n, max;
} pg_arrays;

static int pg_array_type(void *ctx, int n, const char *const *v) {
  pg_arrays *a = ctx;
  if (a->n < a->max && n > 0 && v[0]) a->types[a->n] = (unsigned)strtoul(v[0], NULL, 10);
  a->n++;
  return 0;
}

/* One array parameter per column, of the column's own array type: the
 * server converts each element by the column's type input function, as
 * it converts a single key's value. The array types come from one
 * catalog query, skipped when `types` holds them already (the lookup
 * reads a prefix of the insert's columns). */
static int pg_many_input(nodup_db *db, const nodup_table_info *t, const int *cols, size_t n,
                         size_t total, buf *q, unsigned *types, int *nparams) {
  size_t i;
  int rc = NODUP_OK;
  (void)total;
  for (i = 0; i < n && types[i]; i++)
    ;
  if (i < n) {
    pg_arrays a = {types, 0, n};
    buf oids;
    const char *p[1];
    buf_init(&oids);
    buf_putc(&oids, '{');
    for (i = 0; i < n; i++) buf_printf(&oids, "%s%u", i ? "," : "", t->types[cols[i]]);
    buf_putc(&oids, '}');
    p[0] = buf_str(&oids);
    rc = oids.oom ? NODUP_ERR_NOMEM
                  : pg_query(db,
                             "SELECT a.typarray FROM unnest($1::oid[]) WITH ORDINALITY AS c(o, i) "
                             "JOIN pg_catalog.pg_type a ON a.oid = c.o ORDER BY c.i",
                             p, 1, pg_array_type, &a);
    buf_free(&oids);
    if (rc != NODUP_OK) return rc;
  }
  for (i = 0; i < n; i++)
    if (!types[i])
      return nodup_fail(db, NODUP_ERR_USAGE,
                        "column \"%s\": its type has no array type, which the many-keys "
                        "call passes its values in",
                        t->cols[cols[i]]);
  buf_puts(q, "unnest(");
  for (i = 0; i < n; i++) buf_printf(q, "%s$%zu", i ? ", " : "", i + 1);
  buf_puts(q, ") WITH ORDINALITY AS nodup_in(");
  for (i = 0; i < n; i++) buf_printf(q, "nodup_c%zu, ", i + 1);
  buf_puts(q, "nodup_ord)");
  *nparams = (int)n;
  return rc;
}

/* An array literal's element: double-quoted, with '"' and '\\'
 * backslash-escaped (the manual's array input syntax), the runs between
 * them copied whole; NULL unquoted. */
static void pg_array_elem(buf *b, const char *v) {
  if (!v) {
    buf_puts(b, "NULL");
    return;
  }
  buf_putc(b, '"');
  for (;;) {
    size_t n = strcspn(v, "\"\\");
    buf_putn(b, v, n);
    v += n;
    if (!*v) break;
    buf_putc(b, '\\');
    buf_putc(b, *v++);
  }
  buf_putc(b, '"');
}

static int pg_many_params(size_t nrows, size_t n, const char *const *vals, char ***out) {
  char **p = calloc(n ? n : 1, sizeof *p);
  size_t i, r;
  if (!p) return NODUP_ERR_NOMEM;
  for (i = 0; i < n; i++) {
    buf b;
    buf_init(&b);
    buf_putc(&b, '{');
    for (r = 0; r < nrows; r++) {
      if (r) buf_putc(&b, ',');
      pg_array_elem(&b, vals[r * n + i]);
    }
    buf_putc(&b, '}');
    if (b.oom) {
      buf_free(&b);
      strv_free(p, n);
      return NODUP_ERR_NOMEM;
    }
    p[i] = b.p;
  }
  *out = p;
  return NODUP_OK;
}

/* Rounds that skip the plain insert after one met a concurrent writer: a
 * batch that collided once is likely to again (hot keys), and each
 * collision costs the plain round as a whole. */
#define MANY_GUARDED_ROUNDS 16

/* What makes the plain insert's round run again with ON CONFLICT: a
 * unique or exclusion violation (a concurrent writer's row for one of the
 * keys, or another constraint's, which the ON CONFLICT round raises again
 * and names), a serialization failure or a deadlock (retried there). */
static int many_falls_back(const char *state) {
  return !strcmp(state, "23505") || !strcmp(state, "23P01") || !strcmp(state, "40001") ||
         !strcmp(state, "40P01");
}

/* The insert and the lookup in one round trip. In our own transaction,
 * the plain insert first (getorcreate_many.c's many_build): it either
 * inserts every missing key or fails as a whole and leaves nothing, and
 * then the single key's rounds run with ON CONFLICT DO NOTHING, retried
 * there (NODUP_ERR_RETRY in the caller's transaction, which the plain
 * insert never enters: its failure would abort the caller's work). A
 * plain round that commits but leaves an input row without its row (one
 * deleted between insert and lookup) makes getorcreate_many.c ask again,
 * and the next rounds use ON CONFLICT. The predicate guard raises, so
 * `outside` never holds. */
static int pg_get_or_create_many(nodup_key *key, const key_shape *s, const char *const *params,
                                 int nparams, int nlookup, const many_sink *sink) {
  pg_sink ps = {{sink->inserted, sink->found}, sink->attempt, sink->ctx};
  round_read rd;
  int rc;
  if (key->many_guarded || !s->plain || PQtransactionStatus(C(key->db)) != PQTRANS_IDLE) {
    if (key->many_guarded) key->many_guarded--;
    return pg_rounds(key, s->insert, s->lookup, params, nparams, nlookup, &ps);
  }
  sink->attempt(sink->ctx);
  rc = pg_round(key->db, s->plain, s->lookup, params, nparams, nlookup, &ps, &rd);
  if (rc == NODUP_OK) {
    if (!sink->complete(sink->ctx)) key->many_guarded = MANY_GUARDED_ROUNDS;
    return rc;
  }
  sink->attempt(sink->ctx);   /* the implicit transaction was rolled back */
  if (!many_falls_back(rd.state)) return rc;
  key->many_guarded = MANY_GUARDED_ROUNDS;
  key->db->retries++;
  nodup_clear_error(key->db);
  return pg_rounds(key, s->insert, s->lookup, params, nparams, nlookup, &ps);
}

/* Every foreign key to $1, one row per column. conparentid <> 0 marks the
 * copies a partitioned table's foreign key leaves on each partition: the
 * parent's key covers them. Pairs of (conkey, confkey) are unnested
 * together so column order is kept. */
#define PG_FK_ROWS                                                                   \
  "SELECT con.oid, con.conname, con.conrelid, con.conparentid, con.confdeltype, k.ord, " \
  "  a.attname, af.attname AS refname "                                               \
  "FROM pg_catalog.pg_constraint con "                                                \
  "CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(attnum, fattnum, ord) " \
  "JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum " \
  "JOIN pg_catalog.pg_attribute af ON af.attrelid = con.confrelid AND af.attnum = k.fattnum " \
  "WHERE con.contype = 'f' AND con.confrelid = $1::regclass"

static int pg_references(nodup_db *db, const nodup_table_info *t, nodup_fk_info **out,
                         size_t *n) {
  /* Partitions whose siblings declare a key they lack (Pagila's
   * payment_p2022_07) reference t just the same: each gets one inferred
   * key per distinct column list its siblings declare on their own
   * (conparentid = 0), unless it, or a partition of it, has one on those
   * columns. pg_partition_tree is PostgreSQL's (12+); other engines get the
   * declared keys only. */
  int infer = db->engine.kind == ENGINE_POSTGRES || db->engine.kind == ENGINE_CITUS;
  if (!infer)
    return fk_collect_query(db, t,
                            "WITH fk AS (" PG_FK_ROWS ") "
                            "SELECT fk.conname, n.nspname || '.' || c.relname, fk.ord, fk.attname, "
                            "  fk.refname, fk.confdeltype "
                            "FROM fk JOIN pg_catalog.pg_class c ON c.oid = fk.conrelid "
                            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE fk.conparentid = 0 "
                            "ORDER BY n.nspname, c.relname, fk.conname, fk.ord",
                            t->qualified, out, n);
  return fk_collect_query(
      db, t,
      "WITH fk AS (" PG_FK_ROWS "), "
      "sig AS (SELECT oid, conname, conrelid, conparentid, array_agg(attname ORDER BY ord) AS cols "
      "  FROM fk GROUP BY oid, conname, conrelid, conparentid), "
      "inf AS (SELECT DISTINCT ON (s.inhrelid, d.cols) s.inhrelid AS relid, d.oid "
      "  FROM sig d "
      "  JOIN pg_catalog.pg_inherits p ON p.inhrelid = d.conrelid "
      "  JOIN pg_catalog.pg_class pc ON pc.oid = p.inhparent AND pc.relkind = 'p' "
      "  JOIN pg_catalog.pg_inherits s ON s.inhparent = p.inhparent "
      "  JOIN pg_catalog.pg_class sc ON sc.oid = s.inhrelid AND sc.relkind IN ('r', 'p') "
      "  WHERE d.conparentid = 0 AND NOT EXISTS (SELECT 1 FROM sig e WHERE e.cols = d.cols "
      "    AND e.conrelid IN (SELECT s.inhrelid UNION ALL "
      "      SELECT relid FROM pg_catalog.pg_partition_tree(s.inhrelid))) "
      "  ORDER BY s.inhrelid, d.cols, d.conname) "
      "SELECT fk.conname, n.nspname || '.' || c.relname, fk.ord, fk.attname, fk.refname, "
      "  fk.confdeltype, 0, n.nspname, c.relname "
      "FROM fk JOIN pg_catalog.pg_class c ON c.oid = fk.conrelid "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      "WHERE fk.conparentid = 0 "
      "UNION ALL "
      "SELECT fk.conname, n.nspname || '.' || c.relname, fk.ord, fk.attname, fk.refname, "
      "  fk.confdeltype, 1, n.nspname, c.relname "
      "FROM inf JOIN fk ON fk.oid = inf.oid "
      "JOIN pg_catalog.pg_class c ON c.oid = inf.relid "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      "ORDER BY 8, 9, 1, 3",
      t->qualified, out, n);
}

/* suspect.c's view of the schema. The type class: a domain is its base
 * type; smallint, integer and bigint are "int" and text, varchar and char
 * "text", since a foreign key may join across each family. A partitioned
 * table has the foreign keys of its partitions (by column name): Pagila's
 * payment declares none itself, its partitions do. */
static int pg_columns(nodup_db *db, row_fn fn, void *ctx) {
  int tree = db->engine.kind == ENGINE_POSTGRES || db->engine.kind == ENGINE_CITUS;
  char sql[4096];
  snprintf(sql, sizeof sql,
           "SELECT n.nspname, c.relname, "
           "  CASE WHEN pg_catalog.pg_table_is_visible(c.oid) THEN c.relname "
           "  ELSE n.nspname || '.' || c.relname END, a.attname, "
           "  CASE WHEN b.t IN (20, 21, 23) THEN 'int' WHEN b.t IN (25, 1042, 1043) THEN 'text' "
           "  ELSE b.t::text END, "
           "  (SELECT count(*) FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid "
           "    AND i.indisprimary AND a.attnum = ANY (i.indkey)), "
           "  (SELECT CASE WHEN pg_catalog.pg_table_is_visible(fc.oid) THEN fc.relname "
           "     ELSE fn.nspname || '.' || fc.relname END "
           "   FROM pg_catalog.pg_constraint k "
           "   JOIN pg_catalog.pg_attribute ka ON ka.attrelid = k.conrelid "
           "     AND ka.attnum = ANY (k.conkey) "
           "   JOIN pg_catalog.pg_class fc ON fc.oid = k.confrelid "
           "   JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace "
           "   WHERE k.contype = 'f' AND ka.attname = a.attname AND k.conrelid IN (%s) "
           "   ORDER BY fc.relname LIMIT 1), "
           "  %s "
           "FROM pg_catalog.pg_class c "
           "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
           "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
           "  AND NOT a.attisdropped "
           "JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid "
           "CROSS JOIN LATERAL (SELECT CASE WHEN ty.typtype = 'd' THEN ty.typbasetype "
           "  ELSE ty.oid END AS t) AS b "
           "WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' "
           "  AND n.nspname NOT LIKE 'pg\\_%%' AND c.relname NOT LIKE 'nodup\\_%%' "
           "ORDER BY n.nspname, c.relname, a.attnum",
           tree ? "SELECT c.oid UNION ALL SELECT relid FROM pg_catalog.pg_partition_tree(c.oid)"
                : "SELECT c.oid",
           tree ? "c.relispartition::int" : "0");
  return pg_query(db, sql, NULL, 0, fn, ctx);
}

static void pg_row_json(buf *q, const nodup_table_info *t, const char *alias) {
  (void)t;
  buf_printf(q, "row_to_json(%s.*)::text", alias);
}

/* json_build_object takes at most 100 arguments: wider objects are built
 * in chunks and concatenated as jsonb. */
static void pg_json_object(buf *q, size_t n, const char *const *keys,
                           const char *const *exprs) {
  size_t i;
  buf_puts(q, "(json_build_object(");
  for (i = 0; i < n; i++) {
    if (i && i % 50 == 0) buf_puts(q, ")::jsonb || json_build_object(");
    else if (i) buf_puts(q, ", ");
    sql_name_literal(q, keys[i]);
    buf_printf(q, ", %s", exprs[i]);
  }
  buf_puts(q, n > 50 ? ")::jsonb)::text" : "))::text");
}

/* json_populate_record turns the archived JSON back into a row of t with
 * each column's own type input (bytea, timestamps, arrays alike).
 * OVERRIDING SYSTEM VALUE: identity columns take the archived values. */
static void pg_restore_rows(buf *q, const nodup_table_info *t, const db_json_rows *src) {
  buf_printf(q, "INSERT INTO %s OVERRIDING SYSTEM VALUE SELECT r.* FROM %s, "
                "json_populate_record(NULL::%s, %s::json) AS r WHERE %s",
             t->qualified, src->from, t->qualified, src->row, src->where);
}

static void pg_restore_cols(buf *q, const nodup_table_info *t, char *const *cols, size_t n,
                            const db_json_rows *src) {
  size_t i;
  buf_printf(q, "UPDATE %s AS c SET ", t->qualified);
  for (i = 0; i < n; i++) {
    if (i) buf_puts(q, ", ");
    sql_ident(q, cols[i]);
    buf_puts(q, " = o.");
    sql_ident(q, cols[i]);
  }
  buf_printf(q, " FROM %s, json_populate_record(NULL::%s, %s::json) AS o, "
                "json_populate_record(NULL::%s, %s::json) AS p WHERE %s",
             src->from, t->qualified, src->old, t->qualified, src->cur, src->where);
  for (i = 0; i < t->npk; i++) {
    buf_puts(q, " AND c.");
    sql_ident(q, t->pk[i]);
    buf_puts(q, " = p.");
    sql_ident(q, t->pk[i]);
  }
}

static int pg_reconnect(nodup_db *db) {
  if (PQstatus(db->native) == CONNECTION_OK) return NODUP_OK;
  PQreset(db->native);
  /* A new server session: through a pooler or not, the same engine. */
  if (PQstatus(db->native) == CONNECTION_OK) return pg_session_check(db);
  return nodup_fail(db, NODUP_ERR_CONNECT, "lost the connection and could not reconnect: %s",
                    PQerrorMessage(db->native));
}

/* Valid, non-partial indexes of t, leading columns first (an expression
 * keeps its place as an empty name). */
static int pg_index_columns(nodup_db *db, const nodup_table_info *t, row_fn fn, void *ctx) {
  const char *p[1] = {t->qualified};
  return pg_query(db,
                  "SELECT array_to_string(ARRAY(SELECT coalesce(a.attname, '') "
                  "  FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(n, o) "
                  "  LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid "
                  "    AND a.attnum = k.n AND k.n > 0 "
                  "  ORDER BY k.o), E'\\x1f') "
                  "FROM pg_catalog.pg_index i "
                  "WHERE i.indrelid = $1::regclass AND i.indisvalid AND i.indpred IS NULL",
                  p, 1, fn, ctx);
}

static int pg_leaves(nodup_db *db, const char *table, row_fn fn, void *ctx) {
  nodup_table_info *t = NULL;
  const char *p[1];
  int rc = pg_table_info(db, table, &t);
  if (rc != NODUP_OK) return rc;
  p[0] = t->qualified;
  rc = pg_query(db,
                "SELECT n.nspname || '.' || c.relname, format('%I.%I', n.nspname, c.relname), "
                "  c.relname FROM pg_catalog.pg_partition_tree($1::regclass) AS pt "
                "JOIN pg_catalog.pg_class c ON c.oid = pt.relid "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE pt.isleaf AND pt.relid <> $1::regclass ORDER BY 1",
                p, 1, fn, ctx);
  table_info_free(t);
  return rc;
}

static int pg_index_invalid(nodup_db *db, const char *qualified, int *invalid) {
  const char *p[1] = {qualified};
  long long n = 0;
  int rc = pg_query(db,
                    "SELECT count(*) FROM pg_catalog.pg_index "
                    "WHERE indexrelid = to_regclass($1) AND NOT indisvalid",
                    p, 1, db_read_count, &n);
  *invalid = n > 0;
  return rc;
}

static int pg_first_flag(void *ctx, int n, const char *const *v) {
  (void)n;
  *(int *)ctx = v[0] && v[0][0] == '1';
  return 1;
}

/* The C or POSIX collation, the column's own or the database's default:
 * text compares in byte order. */
static int pg_byte_order(nodup_db *db, const nodup_table_info *t, const char *col, int *out) {
  const char *p[2] = {t->qualified, col};
  *out = 0;
  return pg_query(db,
                  "SELECT CASE WHEN c.collname IN ('C', 'POSIX') OR (c.collname = 'default' "
                  "AND d.datcollate IN ('C', 'POSIX')) THEN '1' ELSE '0' END "
                  "FROM pg_attribute AS a JOIN pg_collation AS c ON c.oid = a.attcollation "
                  "JOIN pg_database AS d ON d.datname = current_database() "
                  "WHERE a.attrelid = CAST($1 AS regclass) AND a.attname = $2",
                  p, 2, pg_first_flag, out);
}

static int pg_copy_begin(nodup_db *db, const nodup_table_info *t, char *const *cols,
                         size_t n);
static void pg_copy_row(buf *out, const char *const *vals, size_t n);
static int pg_copy_put(nodup_db *db, const buf *data);
static int pg_copy_end(nodup_db *db, const char *abort_msg);

/* ---- partitions and indexes (enforce) ---- */

static int pg_partition_key(nodup_db *db, const nodup_table_info *t, row_fn fn, void *ctx) {
  const char *p[1] = {t->qualified};
  return pg_query(db,
                  "SELECT coalesce(a.attname::text, '') FROM pg_catalog.pg_partitioned_table pt "
                  "CROSS JOIN LATERAL unnest(pt.partattrs::int2[]) WITH ORDINALITY AS k(n, o) "
                  "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = pt.partrelid "
                  "AND a.attnum = k.n WHERE pt.partrelid = $1::regclass ORDER BY k.o",
                  p, 1, fn, ctx);
}

static int pg_index_state_row(void *ctx, int n, const char *const *v) {
  db_index_state *s = ctx;
  (void)n;
  s->exists = 1;
  snprintf(s->qualified, sizeof s->qualified, "%s", v[0]);
  s->valid = v[1][0] == '1';
  s->attached = v[2][0] == '1';
  s->constrained = v[3][0] == '1';
  return 1;
}

static int pg_index_state(nodup_db *db, const nodup_table_info *t, const char *index,
                          db_index_state *out) {
  const char *p[2] = {t->qualified, index};
  return pg_query(db,
                  "SELECT format('%I.%I', n.nspname, x.relname), i.indisvalid::int, "
                  "EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h "
                  "WHERE h.inhrelid = i.indexrelid)::int, EXISTS (SELECT 1 FROM "
                  "pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid)::int "
                  "FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid "
                  "JOIN pg_catalog.pg_namespace n ON n.oid = x.relnamespace "
                  "WHERE i.indrelid = $1::regclass AND x.relname = $2",
                  p, 2, pg_index_state_row, out);
}

/* ---- time, schemas and sessions (the journal) ---- */

static int pg_flag(void *ctx, int n, const char *const *v) {
  (void)n;
  *(int *)ctx = v[0] && !strcmp(v[0], "t");
  return 1;
}

/* pg_class and pg_namespace: readable without any right on the schema. */
static int pg_table_exists(nodup_db *db, const char *schema, const char *name, int *exists) {
  const char *p[2] = {name, schema};
  if (!schema)
    return pg_query(db, "SELECT to_regclass(quote_ident($1::text)) IS NOT NULL", p, 1, pg_flag,
                    exists);
  return pg_query(db,
                  "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c "
                  "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                  "WHERE n.nspname = $2 AND c.relname = $1)",
                  p, 2, pg_flag, exists);
}

static int pg_rights_row(void *ctx, int n, const char *const *v) {
  db_schema_rights *r = ctx;
  (void)n;
  r->exists = v[0] && !strcmp(v[0], "t");
  r->may_create = v[1] && !strcmp(v[1], "t");
  r->may_use = v[2] && !strcmp(v[2], "t");
  snprintf(r->user, sizeof r->user, "%s", v[3] ? v[3] : "");
  snprintf(r->database, sizeof r->database, "%s", v[4] ? v[4] : "");
  return 1;
}

static int pg_schema_rights(nodup_db *db, const char *schema, db_schema_rights *out) {
  const char *p[1] = {schema};
  return pg_query(db,
                  "SELECT n.oid IS NOT NULL, CASE WHEN n.oid IS NULL THEN "
                  "has_database_privilege(current_database(), 'CREATE') "
                  "ELSE has_schema_privilege(n.oid, 'CREATE') END, "
                  "n.oid IS NOT NULL AND has_schema_privilege(n.oid, 'USAGE'), "
                  "current_user, current_database() "
                  "FROM (SELECT $1::text AS s) AS a "
                  "LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = a.s",
                  p, 1, pg_rights_row, out);
}

static int pg_search_path_table(nodup_db *db, const char *name, const char *except, buf *out) {
  const char *p[2] = {name, except};
  /* The schemas of the path in order, the first holding the table. */
  return pg_query(db, "SELECT s FROM unnest(current_schemas(false)) WITH ORDINALITY AS p(s, i) "
                      "WHERE s IS DISTINCT FROM $2 AND EXISTS (SELECT 1 FROM pg_catalog.pg_class "
                      "c, pg_catalog.pg_namespace n WHERE n.oid = c.relnamespace AND n.nspname = s "
                      "AND c.relname = $1 AND c.relkind IN ('r', 'p')) ORDER BY i LIMIT 1",
                  p, 2, db_read_text, out);
}

/* Advisory locks exist on PostgreSQL and Citus only; elsewhere nothing
 * is taken (CockroachDB and YugabyteDB lack them). */
static int pg_xact_lock(nodup_db *db, const char *name) {
  const char *p[1] = {name};
  if (db->engine.kind != ENGINE_POSTGRES && db->engine.kind != ENGINE_CITUS) return NODUP_OK;
  return pg_query(db, "SELECT pg_catalog.pg_advisory_xact_lock(1852796272, "
                      "pg_catalog.hashtext($1))",
                  p, 1, NULL, NULL);
}

/* "pid backend_start-epoch": the pid alone is reused. Through a pooler
 * each transaction may run in another server process, and the other
 * engines' sessions are not server processes: none. */
static int pg_session_id(nodup_db *db, buf *out) {
  if (db->pooled || (db->engine.kind != ENGINE_POSTGRES && db->engine.kind != ENGINE_CITUS))
    return NODUP_OK;
  return pg_query(db,
                  "SELECT pg_catalog.pg_backend_pid()::text || ' ' || "
                  "extract(epoch FROM backend_start)::text "
                  "FROM pg_catalog.pg_stat_activity WHERE pid = pg_catalog.pg_backend_pid()",
                  NULL, 0, db_read_text, out);
}

static void pg_session_alive(buf *q, const char *id) {
  buf_printf(q, "EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.pid = "
                "CAST(split_part(%s, ' ', 1) AS integer) AND (a.backend_start IS NULL "
                "OR extract(epoch FROM a.backend_start)::text = split_part(%s, ' ', 2)))",
             id, id);
}

/* ---- enforce --online: the guard and what a dead run leaves ---- */

/* The guard (a plpgsql trigger function): for each new or re-keyed row
 * inside the predicate, take a transaction-scoped advisory lock on the
 * key's value (writers of one key go one at a time) and refuse the row if
 * the key is taken, as the unique index will. Each statement of a plpgsql
 * function sees rows committed before it started, so the second writer
 * sees the first's row once the lock is his (READ COMMITTED; a stricter
 * writer that slips through makes the index build fail, which enforce
 * retries). */
static void pg_guard_function(buf *q, const char *name, const nodup_table_info *t,
                              char *const *key, size_t nkey, const char *where, int nulls_equal,
                              const char *message, const char *constraint) {
  key_term *terms = key_terms_of(key, nkey);   /* lower(NEW."email") for lower(email) */
  size_t i;
  if (!terms) {
    q->oom = 1;
    return;
  }
  buf_printf(q, "CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $nodup$ BEGIN IF ",
             name);
  for (i = 0; i < nkey && !nulls_equal; i++) {
    sql_key_term(q, &terms[i], "NEW");
    buf_puts(q, " IS NOT NULL AND ");
  }
  if (where)
    buf_printf(q, "EXISTS (SELECT 1 FROM (SELECT NEW.*) AS nodup_new WHERE (%s))", where);
  else
    buf_puts(q, "TRUE");
  buf_puts(q, " THEN PERFORM pg_advisory_xact_lock(hashtextextended(ROW(");
  sql_key_list(q, terms, nkey, "NEW");
  buf_printf(q, ")::text, TG_RELID::bigint)); IF EXISTS (SELECT 1 FROM %s AS nodup_o WHERE ",
             t->qualified);
  for (i = 0; i < nkey; i++) {
    if (i) buf_puts(q, " AND ");
    sql_key_term(q, &terms[i], "nodup_o");
    buf_puts(q, nulls_equal ? " IS NOT DISTINCT FROM " : " = ");
    sql_key_term(q, &terms[i], "NEW");
  }
  free(terms);
  if (where) buf_printf(q, " AND (%s)", where);
  /* An UPDATE must not find its own row. */
  buf_puts(q, " AND (TG_OP = 'INSERT' OR (");
  for (i = 0; i < t->npk; i++) {
    buf_puts(q, i ? ", nodup_o." : "nodup_o.");
    sql_ident(q, t->pk[i]);
  }
  buf_puts(q, ") IS DISTINCT FROM (");
  for (i = 0; i < t->npk; i++) {
    buf_puts(q, i ? ", OLD." : "OLD.");
    sql_ident(q, t->pk[i]);
  }
  buf_puts(q, "))) THEN RAISE unique_violation USING MESSAGE = ");
  sql_name_literal(q, message);
  buf_puts(q, ", CONSTRAINT = ");
  sql_name_literal(q, constraint);
  buf_puts(q, "; END IF; END IF; RETURN NEW; END $nodup$");
}

/* A guard's name, as enforce_guard_name makes it (a regular expression). */
#define PG_GUARD_NAME "'^nodup_guard_[0-9a-f]{8}$'"

/* Guard functions (no arguments, returning trigger) whose name passes
 * `name_test` and that no trigger uses, as rows of online_leftovers'
 * layout (kind 'f'). */
#define PG_UNUSED_GUARDS(name_test)                                                     \
  "SELECT 'f', format('\"%s\".\"%s\"()', replace(n.nspname, '\"', '\"\"'), "           \
  "  replace(p.proname, '\"', '\"\"')), NULL, NULL, NULL, NULL, 0, 0, '0' "            \
  "FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace " \
  "WHERE p.proname " name_test " AND p.pronargs = 0 "                                   \
  "  AND p.prorettype = 'pg_catalog.trigger'::pg_catalog.regtype "                      \
  "  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger u WHERE u.tgfoid = p.oid) "

static void pg_online_ddl(buf *q, online_stmt what, const char *name,
                          const nodup_table_info *t, char *const *key, size_t nkey,
                          const char *note) {
  switch (what) {
  case ONLINE_GUARD_TRIGGER:
    buf_printf(q, "CREATE TRIGGER %s BEFORE INSERT OR UPDATE OF ", name);
    {
      /* Columns: an expression term fires on its column. */
      key_term *terms = key_terms_of(key, nkey);
      if (terms) sql_key_columns(q, terms, nkey);
      else q->oom = 1;
      free(terms);
    }
    buf_printf(q, " ON %s FOR EACH ROW EXECUTE FUNCTION %s()", t->qualified, name);
    break;
  case ONLINE_GUARD_NOTE:
    buf_printf(q, "COMMENT ON FUNCTION %s() IS ", name);
    sql_name_literal(q, note);
    break;
  case ONLINE_DROP_TRIGGER:
    buf_puts(q, "DROP TRIGGER IF EXISTS ");
    sql_ident(q, name);
    buf_printf(q, " ON %s", t->qualified);
    break;
  case ONLINE_DROP_FUNCTION:
    buf_printf(q, "DROP FUNCTION IF EXISTS %s", name);
    break;
  case ONLINE_DROP_INDEX:
    buf_printf(q, "DROP INDEX CONCURRENTLY IF EXISTS %s", name);
    break;
  }
}

/* One catalog query: the guard triggers with their function, the columns
 * they fire on and whether the backend that installed them (from the
 * function's comment) is still there; t's guard function with no trigger;
 * unique indexes on t and its leaf partitions that are INVALID (with
 * whether a build runs now), or valid on a leaf but used by no index of t
 * and no constraint. */
static int pg_online_leftovers(nodup_db *db, const nodup_table_info *t, const char *guard,
                               row_fn fn, void *ctx) {
  const char *p[2];
  long long maybe = 1;
  int rc;
  p[0] = t->qualified;
  p[1] = guard;
  /* Every key prepare, scan and merge asks, and nearly every table has
   * nothing left: the full query below costs ~7 ms to plan (PostgreSQL 15;
   * it reads pg_stat_activity and pg_stat_progress_create_index), where
   * this probe, cheap to plan, says whether it can find anything. It is
   * exact for a table without partitions or children (the full query's
   * tree is then the table alone); with them, the full query decides. */
  rc = pg_query(db,
                "SELECT (c.relkind = 'p' OR c.relhassubclass "
                "  OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger tg WHERE tg.tgrelid = c.oid "
                "    AND tg.tgname ~ " PG_GUARD_NAME ") "
                "  OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc f WHERE f.proname = $2) "
                "  OR EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid "
                "    AND i.indisunique AND NOT i.indisvalid))::int "
                "FROM pg_catalog.pg_class c WHERE c.oid = $1::regclass",
                p, 2, db_read_count, &maybe);
  if (rc != NODUP_OK || !maybe) return rc;
  return pg_query(
      db,
      "WITH nodup_tree AS (SELECT $1::regclass AS relid UNION "
      "  SELECT relid FROM pg_catalog.pg_partition_tree($1::regclass) WHERE isleaf), "
      "nodup_g AS (SELECT tg.tgname::text AS name, format('\"%s\".\"%s\"()', "
      "  replace(pn.nspname, '\"', '\"\"'), replace(p.proname, '\"', '\"\"')) AS fn, "
      "  (SELECT string_agg(a.attname::text, E'\\x1f' ORDER BY k.o) "
      "   FROM unnest(tg.tgattr::int2[]) WITH ORDINALITY AS k(n, o) "
      "   JOIN pg_catalog.pg_attribute a ON a.attrelid = tg.tgrelid AND a.attnum = k.n) AS cols, "
      "  pg_catalog.obj_description(p.oid, 'pg_proc') AS note "
      "  FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_proc p ON p.oid = tg.tgfoid "
      "  JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace "
      "  WHERE tg.tgrelid = $1::regclass AND tg.tgname ~ " PG_GUARD_NAME "), "
      "nodup_o AS (SELECT g.*, substring(g.note FROM '; backend ([0-9]+) [0-9.]+$') AS pid, "
      "  substring(g.note FROM '; backend [0-9]+ ([0-9.]+)$') AS born FROM nodup_g g) "
      "SELECT 'g', o.name, o.fn, o.cols, NULL, NULL, "
      "  CASE WHEN o.note ~ '; backend pooled$' THEN -1 WHEN o.pid IS NULL THEN 0 "
      "  ELSE coalesce((SELECT CASE WHEN a.backend_start IS NULL THEN -1 ELSE 1 END "
      "    FROM pg_catalog.pg_stat_activity a WHERE a.pid = o.pid::int "
      "    AND a.pid <> pg_catalog.pg_backend_pid() AND (a.backend_start IS NULL "
      "    OR extract(epoch FROM a.backend_start)::text = o.born) LIMIT 1), 0) END, "
      "  0, coalesce(o.pid, '0') FROM nodup_o o "
      "UNION ALL " PG_UNUSED_GUARDS("= $2") "UNION ALL "
      "SELECT CASE WHEN i.indisvalid THEN 'p' ELSE 'i' END, "
      "  format('\"%s\".\"%s\"', replace(n.nspname, '\"', '\"\"'), "
      "  replace(x.relname, '\"', '\"\"')), "
      "  x.relname::text, "
      "  (SELECT string_agg(coalesce(a.attname::text, "
      "     pg_catalog.pg_get_indexdef(i.indexrelid, k.o::int, true)), E'\\x1f' ORDER BY k.o) "
      "   FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(n, o) "
      "   LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n "
      "   WHERE k.o <= i.indnkeyatts), "
      "  format('\"%s\".\"%s\"', replace(rn.nspname, '\"', '\"\"'), "
      "  replace(r.relname, '\"', '\"\"')), r.relname::text, "
      "  (EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_create_index b "
      "   WHERE b.index_relid = i.indexrelid))::int, i.indisready::int, '0' "
      "FROM nodup_tree JOIN pg_catalog.pg_index i ON i.indrelid = nodup_tree.relid "
      "JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid "
      "JOIN pg_catalog.pg_namespace n ON n.oid = x.relnamespace "
      "JOIN pg_catalog.pg_class r ON r.oid = i.indrelid "
      "JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace "
      "WHERE i.indisunique AND (NOT i.indisvalid OR (i.indrelid <> $1::regclass "
      "  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid = i.indexrelid) "
      "  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k "
      "   WHERE k.conindid = i.indexrelid))) "
      "ORDER BY 1, 2",
      p, 2, fn, ctx);
}

static int pg_orphan_guards(nodup_db *db, row_fn fn, void *ctx) {
  return pg_query(db, PG_UNUSED_GUARDS("~ " PG_GUARD_NAME) "ORDER BY 2", NULL, 0, fn, ctx);
}

const struct nodup_backend nodup_pg_backend = {
    .name = "postgresql",
    .caps = BE_CAP_SCHEMAS | BE_CAP_TABLE_LOCKS | BE_CAP_ONLINE_INDEX |
            BE_CAP_NULLS_NOT_DISTINCT | BE_CAP_DEFERRABLE_FKS | BE_CAP_PARTITIONS |
            BE_CAP_CONSTRAINTS | BE_CAP_DISTINCT_ON,
    .placeholder = '$',
    .accepts = pg_accepts,
    .predicate_guard = "(CASE WHEN (%s) THEN '1' ELSE '" PG_PREDICATE_GUARD "' END)::int",
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .exec = pg_exec,
    .query = pg_query,
    .table_info = pg_table_info,
    .arbiters = pg_arbiters,
    .prepare = pg_prepare,
    .run = pg_run,
    .finalize = pg_finalize,
    .goc_start = pg_goc_start,
    .goc_step = pg_goc_step,
    .goc_cancel = pg_goc_cancel,
    .update_or_create = pg_update_or_create,
    .row_existed = pg_row_existed,
    .many_input = pg_many_input,
    .many_params = pg_many_params,
    .get_or_create_many = pg_get_or_create_many,
    .in_transaction = pg_in_transaction,
    .references = pg_references,
    .row_json = pg_row_json,
    .json_object = pg_json_object,
    .restore_rows = pg_restore_rows,
    .restore_cols = pg_restore_cols,
    .reconnect = pg_reconnect,
    .begin_write = "BEGIN",
    /* A batch's statements should cost what its rows cost, not what its
     * tables' sizes cost, or the merge is quadratic. With the planner's
     * defaults they did not once a mapping held a few thousand losers
     * (the merge benchmark's --batch 4000, EXPLAIN ANALYZE): a batch's
     * losers are a narrow range of ids (batches go in the order of their
     * newest row), so merge joins looked cheap, but each walks its index
     * from the first entry, 690,000 entries of child's for its UPDATE
     * (2.1 s against 0.4 s by nested loop). Without merge joins, at
     * random_page_cost 4, a hash join over a scan of all 1,000,000 parents
     * looked cheaper than 4,000 index probes for the archive (286 ms
     * against 30 ms). So each batch's transaction prices random reads as
     * an SSD does (1.1 seq_page_cost, or the server's own when lower) and
     * plans no merge joins. Plans stay cost-based: a reference with no
     * index is still scanned. Through pg_settings, so that a
     * PostgreSQL-compatible engine without these settings runs on. */
    .batch_settings =
        "SELECT set_config(name, CASE name WHEN 'enable_mergejoin' THEN 'off' ELSE "
        "CAST(least(CAST(setting AS float8), "
        "1.1 * CAST(current_setting('seq_page_cost') AS float8)) AS text) END, true) "
        "FROM pg_settings WHERE name IN ('enable_mergejoin', 'random_page_cost')",
    .lock_rows = " FOR UPDATE",
    .temp_schema = "pg_temp",
    .changes = pg_changes,
    .begin_write_urgent = NULL,
    .predicate_canon = pg_predicate_canon,
    .columns = pg_columns,
    .index_columns = pg_index_columns,
    .index_invalid = pg_index_invalid,
    .leaves = pg_leaves,
    .fk_enforced = NULL,
    .bulk_writes = NULL,
    .byte_order = pg_byte_order,
    .copy_begin = pg_copy_begin,
    .copy_row = pg_copy_row,
    .copy_put = pg_copy_put,
    .copy_end = pg_copy_end,
    .max_params = 65535,
    .distinct_fmt = "CAST(%s AS TEXT) IS DISTINCT FROM CAST(%s AS TEXT)",
    .utc_now = "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')",
    .utc_ago_fmt = "to_char((clock_timestamp() - interval '%d seconds') AT TIME ZONE 'UTC', "
                   "'YYYY-MM-DD HH24:MI:SS')",
    .table_exists = pg_table_exists,
    .schema_rights = pg_schema_rights,
    .search_path_table = pg_search_path_table,
    .xact_lock = pg_xact_lock,
    .session_id = pg_session_id,
    .session_alive = pg_session_alive,
    .partition_key = pg_partition_key,
    .index_state = pg_index_state,
    .guard_function = pg_guard_function,
    .online_ddl = pg_online_ddl,
    .online_leftovers = pg_online_leftovers,
    .orphan_guards = pg_orphan_guards,
};

/* ---- COPY FROM STDIN (import.c) ---- */

static int pg_copy_begin(nodup_db *db, const nodup_table_info *t, char *const *cols,
                         size_t n) {
  PGresult *res;
  buf q;
  int rc;
  PG_IDLE(db);
  buf_init(&q);
  buf_printf(&q, "COPY %s (", t->qualified);
  sql_ident_list(&q, cols, n);
  buf_puts(&q, ") FROM STDIN");
  if (q.oom) {
    buf_free(&q);
    return NODUP_ERR_NOMEM;
  }
  res = PQexec(C(db), buf_str(&q));
  rc = PQresultStatus(res) == PGRES_COPY_IN ? NODUP_OK : pg_fail(db, res, NULL);
  PQclear(res);
  buf_free(&q);
  return rc;
}

/* COPY's text format: tab between values, newline after the row, \N for
 * NULL, and backslash, tab, newline and carriage return escaped. */
static void pg_copy_row(buf *out, const char *const *vals, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    const char *v = vals[i], *run;
    if (i) buf_putc(out, '\t');
    if (!v) {
      buf_puts(out, "\\N");
      continue;
    }
    for (run = v; *v; v++) {
      const char *esc = *v == '\\' ? "\\\\" : *v == '\t' ? "\\t" : *v == '\n' ? "\\n"
                        : *v == '\r' ? "\\r" : NULL;
      if (!esc) continue;
      buf_putn(out, run, (size_t)(v - run));
      buf_puts(out, esc);
      run = v + 1;
    }
    buf_putn(out, run, (size_t)(v - run));
  }
  buf_putc(out, '\n');
}

/* Read every result up to the end, so the connection is ready for the
 * next statement; the first failure is the outcome. */
static int pg_copy_results(nodup_db *db, int rc, int quiet) {
  PGresult *res;
  while ((res = PQgetResult(C(db))) != NULL) {
    if (rc == NODUP_OK && !pg_ok(res) && !quiet) rc = pg_fail(db, res, NULL);
    PQclear(res);
  }
  return rc;
}

/* When the server has already failed the COPY (a row it could not take),
 * libpq refuses more data: the server's error is the one to report, and
 * the COPY is over. */
static int pg_copy_put(nodup_db *db, const buf *data) {
  int rc;
  if (data->oom) return NODUP_ERR_NOMEM;
  if (!data->len || PQputCopyData(C(db), data->p, (int)data->len) == 1) return NODUP_OK;
  if (PQstatus(C(db)) == CONNECTION_BAD) return pg_fail(db, NULL, "COPY");
  rc = pg_copy_results(db, NODUP_OK, 0);
  return rc != NODUP_OK ? rc : pg_fail(db, NULL, "COPY");
}

static int pg_copy_end(nodup_db *db, const char *abort_msg) {
  int rc = NODUP_OK;
  if (PQputCopyEnd(C(db), abort_msg) != 1) rc = pg_fail(db, NULL, "COPY");
  return pg_copy_results(db, rc, abort_msg != NULL);
}

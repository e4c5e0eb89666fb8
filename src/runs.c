/*
 * runs.c -- reading a recorded merge run back: resume and undo.
 *
 * nodup_merge records each run (nodup_runs, nodup_run_args), each changing
 * statement (nodup_steps), the old values of changed rows (nodup_log) and
 * the deleted rows (nodup_archive); merge.c writes them. Resume reads the
 * run's settings and hands them back to merge_run(); undo replays the
 * steps newest first in one transaction, refusing (changing nothing) when
 * a row it must put back has changed since.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- reading a run back: resume and undo ---- */

typedef struct run_info {
  char *tbl, *where, *keep, *status;
  long long batch, laststep;
  int nulls_equal, fill_nulls, one_to_one, archive, found;
  char **keys, **refs, **ignores;
  size_t nkeys, nrefs, nignores;
} run_info;

static void run_info_free(run_info *r) {
  free(r->tbl);
  free(r->where);
  free(r->keep);
  free(r->status);
  strv_free(r->keys, r->nkeys);
  strv_free(r->refs, r->nrefs);
  strv_free(r->ignores, r->nignores);
  memset(r, 0, sizeof *r);
}

static char *dup_or_null(const char *s) { return s ? nodup_strdup(s) : NULL; }

static int read_run(void *ctx, int n, const char *const *v) {
  run_info *r = ctx;
  (void)n;
  r->found = 1;
  r->tbl = dup_or_null(v[0]);
  r->where = dup_or_null(v[1]);
  r->keep = dup_or_null(v[2]);
  r->batch = v[3] ? atoll(v[3]) : 0;
  r->nulls_equal = v[4] && atoi(v[4]);
  r->fill_nulls = v[5] && atoi(v[5]);
  r->one_to_one = v[6] ? atoi(v[6]) : 0;
  r->archive = v[7] && atoi(v[7]);
  r->status = dup_or_null(v[8]);
  r->laststep = v[9] ? atoll(v[9]) : 0;
  return 1;
}

static int read_arg(void *ctx, int n, const char *const *v) {
  run_info *r = ctx;
  int key = !strcmp(v[0], "key"), ignore = !strcmp(v[0], "ignore");
  char ***list = key ? &r->keys : ignore ? &r->ignores : &r->refs;
  size_t *len = key ? &r->nkeys : ignore ? &r->nignores : &r->nrefs;
  char **grown = realloc(*list, (*len + 1) * sizeof *grown);
  (void)n;
  if (!grown) return 1;
  *list = grown;
  if (((*list)[*len] = nodup_strdup(v[1]))) (*len)++;
  return 0;
}

static int load_run(nodup_db *db, const char *run, run_info *r) {
  const char *p[1] = {run};
  int rc, exists = 0;
  memset(r, 0, sizeof *r);
  {
    /* Without the table there are no runs: say so, not "no such table". */
    long long n = 0;
    buf q;
    buf_init(&q);
    buf_puts(&q, db->be == &nodup_sqlite_backend
                     ? "SELECT count(*) FROM sqlite_schema WHERE name = 'nodup_runs'"
                     : "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = 'nodup_runs'"
                       " AND schemaname = ANY (current_schemas(false))");
    rc = db->be->query(db, buf_str(&q), NULL, 0, db_read_count, &n);
    buf_free(&q);
    if (rc != NODUP_OK) return rc;
    exists = n > 0;
  }
  if (exists) {
    buf q;
    buf_init(&q);
    buf_puts(&q, "SELECT tbl, where_sql, keep_sql, batch, nulls_equal, fill_nulls, one_to_one, "
                 "archive, status, (SELECT max(step) FROM nodup_steps AS s WHERE s.run = r.run) "
                 "FROM nodup_runs AS r WHERE run = ");
    sql_param(&q, db, 1);
    rc = db->be->query(db, buf_str(&q), p, 1, read_run, r);
    buf_reset(&q);
    buf_puts(&q, "SELECT kind, value FROM nodup_run_args WHERE run = ");
    sql_param(&q, db, 1);
    buf_puts(&q, " ORDER BY kind, pos");
    if (rc == NODUP_OK && r->found) rc = db->be->query(db, buf_str(&q), p, 1, read_arg, r);
    buf_free(&q);
    if (rc != NODUP_OK) return rc;
  }
  if (!r->found) return nodup_fail(db, NODUP_ERR_NO_RUN, "no merge run \"%s\" in this database", run);
  if (!r->tbl || !r->status || !r->nkeys) return NODUP_ERR_NOMEM;
  return NODUP_OK;
}

int nodup_merge_resume(nodup_merge_report **out, nodup_db *db, const char *run,
                       const nodup_merge_options *opt) {
  nodup_merge_options o;
  run_info r;
  int rc;
  if (!out) return NODUP_ERR_USAGE;
  *out = NULL;
  if (!db || !db->native || !run || !*run)
    return db ? nodup_fail(db, NODUP_ERR_USAGE, "resume needs a run id") : NODUP_ERR_USAGE;
  nodup_clear_error(db);
  if (db->be->in_transaction(db))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "merge runs its own transactions: call it outside one");
  if ((rc = load_run(db, run, &r)) != NODUP_OK) goto done;
  if (strcmp(r.status, "running") && strcmp(r.status, "failed")) {
    rc = nodup_fail(db, NODUP_ERR_NO_RUN, "merge run \"%s\" is %s: nothing to resume", run,
                    r.status);
    goto done;
  }
  memset(&o, 0, sizeof o);
  o.keep = r.keep;
  o.refs = (const char *const *)r.refs;
  o.nrefs = r.nrefs;
  o.ignore_refs = (const char *const *)r.ignores;
  o.nignore_refs = r.nignores;
  o.batch = (size_t)r.batch;
  o.one_to_one = r.one_to_one;
  o.nulls_equal = r.nulls_equal;
  o.fill_nulls = r.fill_nulls;
  o.no_archive = !r.archive;
  if (opt) {
    o.progress = opt->progress;
    o.progress_ctx = opt->progress_ctx;
  }
  rc = merge_run(out, db, r.tbl, (const char *const *)r.keys, r.nkeys, r.where, &o, run,
                 r.laststep, 1, 0);
done:
  run_info_free(&r);
  return rc;
}

/* ---- undo ---- */

typedef struct undo_step {
  long long step;
  char *kind, *tbl;
  char **cols;
  size_t ncols;
} undo_step;

typedef struct undo_steps {
  undo_step *v;
  size_t n;
  int oom;
} undo_steps;

/* Rows (step, kind, tbl, col) ordered by step DESC, pos: one undo_step per
 * step with its columns. */
static int read_step(void *ctx, int n, const char *const *v) {
  undo_steps *s = ctx;
  long long step = atoll(v[0]);
  undo_step *u;
  (void)n;
  if (!s->n || s->v[s->n - 1].step != step) {
    undo_step *g = realloc(s->v, (s->n + 1) * sizeof *g);
    if (!g) return s->oom = 1;
    s->v = g;
    u = &s->v[s->n++];
    memset(u, 0, sizeof *u);
    u->step = step;
    u->kind = nodup_strdup(v[1]);
    u->tbl = nodup_strdup(v[2]);
    if (!u->kind || !u->tbl) return s->oom = 1;
  }
  u = &s->v[s->n - 1];
  if (v[3]) {
    char **g = realloc(u->cols, (u->ncols + 1) * sizeof *g);
    if (!g) return s->oom = 1;
    u->cols = g;
    if (!(u->cols[u->ncols] = nodup_strdup(v[3]))) return s->oom = 1;
    u->ncols++;
  }
  return 0;
}

static int undo_step_run(nodup_db *db, const char *run, const undo_step *u, long long *restored,
                         long long *reverted) {
  nodup_table_info *t = NULL;
  char stepno[24];
  const char *p[2] = {run, stepno};
  long long want = 0, got = 0;
  int del = !strcmp(u->kind, "delete");
  buf q;
  int rc;
  buf_init(&q);
  snprintf(stepno, sizeof stepno, "%lld", u->step);
  if ((rc = db->be->table_info(db, u->tbl, &t)) != NODUP_OK) goto done;
  buf_printf(&q, "SELECT count(*) FROM %s WHERE run = ", del ? "nodup_archive" : "nodup_log");
  sql_param(&q, db, 1);
  buf_puts(&q, " AND step = CAST(");
  sql_param(&q, db, 2);
  buf_puts(&q, " AS INTEGER)");
  if ((rc = db->be->query(db, buf_str(&q), p, 2, db_read_count, &want)) != NODUP_OK) goto done;
  buf_reset(&q);
  if (del) db->be->restore_rows(&q, t);
  else db->be->restore_cols(&q, t, u->cols, u->ncols);
  if (q.oom) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  if ((rc = db->be->changes(db, buf_str(&q), p, 2, &got)) != NODUP_OK) goto done;
  if (got != want) {
    rc = nodup_fail(db, NODUP_ERR_CHANGED,
                    "undo of run \"%s\": %lld of %lld row(s) of %s changed by the merge are no "
                    "longer where it left them (changed or deleted since): nothing undone",
                    run, want - got, want, t->qualified);
    goto done;
  }
  if (del) *restored += got;
  else *reverted += got;
done:
  table_info_free(t);
  buf_free(&q);
  return rc;
}

int nodup_undo(nodup_db *db, const char *run, long long *restored, long long *reverted) {
  undo_steps s = {NULL, 0, 0};
  long long nres = 0, nrev = 0;
  const char *p[1] = {run};
  run_info r;
  size_t i;
  int rc, in_txn = 0;
  buf q;

  if (restored) *restored = 0;
  if (reverted) *reverted = 0;
  if (!db || !db->native || !run || !*run)
    return db ? nodup_fail(db, NODUP_ERR_USAGE, "undo needs a run id") : NODUP_ERR_USAGE;
  nodup_clear_error(db);
  if (db->be->in_transaction(db))
    return nodup_fail(db, NODUP_ERR_USAGE, "undo runs its own transaction: call it outside one");
  if ((rc = engine_check(db, NULL, ENGINE_OP_MERGE, NULL, 0)) != NODUP_OK) return rc;
  buf_init(&q);
  memset(&r, 0, sizeof r);
  if ((rc = db->be->exec(db, db->be->begin_write)) != NODUP_OK) goto done;
  in_txn = 1;
  if ((rc = load_run(db, run, &r)) != NODUP_OK) goto done;
  if (!strcmp(r.status, "undone")) {
    rc = nodup_fail(db, NODUP_ERR_NO_RUN, "merge run \"%s\" was already undone", run);
    goto done;
  }
  if (!r.archive) {
    rc = nodup_fail(db, NODUP_ERR_NO_RUN,
                    "merge run \"%s\" was made with --no-archive: nothing to undo it from", run);
    goto done;
  }
  /* Undo looks rows up by (run, step): index them now rather than pay for
   * the index on every merge. */
  rc = db->be->exec(db, "CREATE INDEX IF NOT EXISTS nodup_log_step ON nodup_log (run, step);"
                        "CREATE INDEX IF NOT EXISTS nodup_archive_step ON nodup_archive "
                        "(run, step)");
  if (rc != NODUP_OK) goto done;
  buf_puts(&q, "SELECT step, kind, tbl, col FROM nodup_steps WHERE run = ");
  sql_param(&q, db, 1);
  buf_puts(&q, " ORDER BY step DESC, pos");
  if ((rc = db->be->query(db, buf_str(&q), p, 1, read_step, &s)) != NODUP_OK) goto done;
  if (s.oom) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  /* Backwards: each step's rows are put back as the next-older step left
   * them (parents re-inserted before the children that point at them). */
  for (i = 0; i < s.n; i++)
    if ((rc = undo_step_run(db, run, &s.v[i], &nres, &nrev)) != NODUP_OK) goto done;
  {
    const char *u[2] = {run, "undone"};
    rc = db_exec_params(db, "UPDATE nodup_runs SET status = ?2, finished = CURRENT_TIMESTAMP "
                         "WHERE run = ?1", u, 2);
  }
  if (rc == NODUP_OK && (rc = db->be->exec(db, "COMMIT")) == NODUP_OK) in_txn = 0;
done:
  if (in_txn) {
    char *msg = nodup_strdup(nodup_errmsg(db));
    db->be->exec(db, "ROLLBACK");
    if (msg) nodup_fail(db, rc, "%s", msg);
    free(msg);
  }
  for (i = 0; i < s.n; i++) {
    free(s.v[i].kind);
    free(s.v[i].tbl);
    strv_free(s.v[i].cols, s.v[i].ncols);
  }
  free(s.v);
  run_info_free(&r);
  buf_free(&q);
  if (rc == NODUP_OK) {
    if (restored) *restored = nres;
    if (reverted) *reverted = nrev;
  }
  return rc;
}

/*
 * runs.c -- reading a recorded merge run back: resume and undo.
 *
 * nodup_merge records each run (nodup_runs, nodup_run_args), each changing
 * statement (nodup_steps), the old values of changed rows (nodup_log) and
 * the deleted rows (nodup_archive) in the journal (journal.c says where);
 * merge.c writes them. A run is read back from the journal that holds it
 * (the configured one, or an earlier nodup's). Resume reads the run's
 * settings and hands them back to merge_run(), which takes the run over
 * unless it is still running; undo replays the steps newest first in one
 * transaction, refusing (changing nothing) when a row it must put back has
 * changed since or the run is still running.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- reading a run back: resume and undo ---- */

typedef struct run_info {
  char *tbl, *where, *keep, *status;
  char *journal;        /* the schema of the journal holding it (NULL: SQLite) */
  int version;          /* that journal's version */
  int state;            /* NODUP_RUN_* */
  char host[256], pid[24];
  long long batch, laststep;
  int nulls_equal, fill_nulls, one_to_one, archive, found;
  char **keys, **refs, **ignores, **columns;
  size_t nkeys, nrefs, nignores, ncolumns;
} run_info;

static void run_info_free(run_info *r) {
  free(r->tbl);
  free(r->where);
  free(r->keep);
  free(r->status);
  free(r->journal);
  strv_free(r->keys, r->nkeys);
  strv_free(r->refs, r->nrefs);
  strv_free(r->ignores, r->nignores);
  strv_free(r->columns, r->ncolumns);
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
  r->state = journal_state(v + 10);
  snprintf(r->host, sizeof r->host, "%s", v[11] ? v[11] : "?");
  snprintf(r->pid, sizeof r->pid, "%s", v[12] ? v[12] : "?");
  return 1;
}

static int read_arg(void *ctx, int n, const char *const *v) {
  run_info *r = ctx;
  int key = !strcmp(v[0], "key"), ignore = !strcmp(v[0], "ignore"),
      column = !strcmp(v[0], "column");
  char ***list = key ? &r->keys : ignore ? &r->ignores : column ? &r->columns : &r->refs;
  size_t *len = key ? &r->nkeys : ignore ? &r->nignores : column ? &r->ncolumns : &r->nrefs;
  char **grown = realloc(*list, (*len + 1) * sizeof *grown);
  (void)n;
  if (!grown) return 1;
  *list = grown;
  if (((*list)[*len] = nodup_strdup(v[1]))) (*len)++;
  return 0;
}

/* Read run back from the journal that holds it. */
static int load_run(nodup_db *db, const char *run, run_info *r) {
  char *schema = NULL;
  int rc, version = 0;
  memset(r, 0, sizeof *r);
  if ((rc = journal_find(db, run, &schema, &version)) != NODUP_OK) return rc;
  r->journal = schema;
  r->version = version;
  rc = journal_load_run(db, schema, version, run, read_run, r);
  if (rc == NODUP_OK && r->found) rc = journal_load_args(db, schema, run, read_arg, r);
  if (rc != NODUP_OK) return rc;
  if (!r->found)
    return nodup_fail(db, NODUP_ERR_NO_RUN, "no merge run \"%s\" in this database", run);
  if (!r->tbl || !r->status || !r->nkeys) return NODUP_ERR_NOMEM;
  return NODUP_OK;
}

/* NODUP_ERR_NO_RUN for a run whose process is alive: `what` it cannot. */
static int refuse_running(nodup_db *db, const char *run, const run_info *r, const char *what) {
  return nodup_fail(db, NODUP_ERR_NO_RUN,
                    "merge run \"%s\" is running (process %s on %s): %s until it stops", run,
                    r->pid, r->host, what);
}

int nodup_merge_resume(nodup_merge_report **out, nodup_db *db, const char *run,
                       const nodup_merge_options *opt) {
  nodup_merge_options o;
  merge_resume resume;
  run_info r;
  int rc;
  if (!out) return NODUP_ERR_USAGE;
  *out = NULL;
  if (!db || !db->native || !run || !*run)
    return db ? nodup_fail(db, NODUP_ERR_USAGE, "resume needs a run id") : NODUP_ERR_USAGE;
  nodup_clear_error(db);
  if (opt && options_check(db, opt->version, NODUP_MERGE_OPTIONS_VERSION, "nodup_merge_options"))
    return NODUP_ERR_USAGE;
  if (db->be->in_transaction(db))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "merge runs its own transactions: call it outside one");
  if ((rc = load_run(db, run, &r)) != NODUP_OK) goto done;
  /* Judged again, its row locked, when merge_run takes it over. */
  if (r.state == NODUP_RUN_RUNNING) {
    rc = refuse_running(db, run, &r, "it cannot be resumed");
    goto done;
  }
  if (r.state != NODUP_RUN_FAILED && r.state != NODUP_RUN_INTERRUPTED) {
    rc = nodup_fail(db, NODUP_ERR_NO_RUN, "merge run \"%s\" is %s: nothing to resume", run,
                    nodup_run_state_name(r.state));
    goto done;
  }
  memset(&o, 0, sizeof o);
  o.keep = r.keep;
  o.refs = (const char *const *)r.refs;
  o.nrefs = r.nrefs;
  o.ignore_refs = (const char *const *)r.ignores;
  o.nignore_refs = r.nignores;
  o.columns = (const char *const *)r.columns;
  o.ncolumns = r.ncolumns;
  o.batch = (size_t)r.batch;
  o.one_to_one = r.one_to_one;
  o.nulls_equal = r.nulls_equal;
  o.fill_nulls = r.fill_nulls;
  o.no_archive = !r.archive;
  if (opt) {
    o.progress = opt->progress;
    o.progress_ctx = opt->progress_ctx;
  }
  resume.run = run;
  resume.journal = r.journal;
  resume.laststep = r.laststep;
  rc = merge_run(out, db, r.tbl, (const char *const *)r.keys, r.nkeys, r.where, &o, MERGE_BATCHED,
                 &resume);
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

static int undo_step_run(nodup_db *db, const char *run, const char *journal, const undo_step *u,
                         long long *restored, long long *reverted) {
  nodup_table_info *t = NULL;
  char stepno[24];
  long long want = 0, got = 0;
  int del = !strcmp(u->kind, "delete");
  int rc;
  snprintf(stepno, sizeof stepno, "%lld", u->step);
  if ((rc = db->be->table_info(db, u->tbl, &t)) != NODUP_OK) goto done;
  if ((rc = journal_step_rows(db, journal, run, stepno, del, &want)) != NODUP_OK) goto done;
  rc = journal_restore(db, journal, t, run, stepno, del, u->cols, u->ncols, &got);
  if (rc != NODUP_OK) goto done;
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
  return rc;
}

static void undo_step_clear(undo_step *u) {
  free(u->kind);
  free(u->tbl);
  strv_free(u->cols, u->ncols);
}

static void undo_steps_free(undo_steps *s) {
  size_t i;
  for (i = 0; i < s->n; i++) undo_step_clear(&s->v[i]);
  free(s->v);
  memset(s, 0, sizeof *s);
}

/* Whether run can be undone: not running (its row locked to the end, so no
 * batch of it can start meanwhile), not undone already, archived. */
static int undo_refuse(nodup_db *db, const char *run, const run_info *r) {
  journal_row row;
  int rc;
  if ((rc = journal_read_row(db, r->journal, r->version, run, 1, &row)) != NODUP_OK) return rc;
  if (row.state == NODUP_RUN_RUNNING) return journal_refuse_running(db, run, &row, "it cannot be undone");
  if (!strcmp(r->status, "undone"))
    return nodup_fail(db, NODUP_ERR_NO_RUN, "merge run \"%s\" was already undone", run);
  if (!r->archive)
    return nodup_fail(db, NODUP_ERR_NO_RUN,
                      "merge run \"%s\" was made with --no-archive: nothing to undo it from", run);
  return NODUP_OK;
}

/* The run's steps, newest first, each with its columns. */
static int undo_load_steps(nodup_db *db, const char *run, const run_info *r, undo_steps *s) {
  int rc = journal_steps(db, r->journal, run, read_step, s);
  return rc == NODUP_OK && s->oom ? NODUP_ERR_NOMEM : rc;
}

/* An interrupted run's row says running: undone now, so that its process,
 * were it only paused, stops at its next batch. */
static int undo_mark(nodup_db *db, const char *run, const run_info *r) {
  return journal_mark_undone(db, r->journal, run);
}

int nodup_undo(nodup_db *db, const char *run, long long *restored, long long *reverted) {
  undo_steps s = {NULL, 0, 0};
  long long nres = 0, nrev = 0;
  run_info r;
  size_t i;
  int rc, in_txn = 0;

  if (restored) *restored = 0;
  if (reverted) *reverted = 0;
  if (!db || !db->native || !run || !*run)
    return db ? nodup_fail(db, NODUP_ERR_USAGE, "undo needs a run id") : NODUP_ERR_USAGE;
  nodup_clear_error(db);
  if (db->be->in_transaction(db))
    return nodup_fail(db, NODUP_ERR_USAGE, "undo runs its own transaction: call it outside one");
  if ((rc = engine_check(db, NULL, ENGINE_OP_MERGE, NULL, 0)) != NODUP_OK) return rc;
  memset(&r, 0, sizeof r);
  if ((rc = db_begin_write(db)) != NODUP_OK) goto done;
  in_txn = 1;
  if ((rc = load_run(db, run, &r)) != NODUP_OK) goto done;
  if ((rc = undo_refuse(db, run, &r)) != NODUP_OK) goto done;
  if ((rc = undo_load_steps(db, run, &r, &s)) != NODUP_OK) goto done;
  /* Backwards: each step's rows are put back as the next-older step left
   * them (parents re-inserted before the children that point at them). */
  for (i = 0; i < s.n; i++)
    if ((rc = undo_step_run(db, run, r.journal, &s.v[i], &nres, &nrev)) != NODUP_OK) goto done;
  rc = undo_mark(db, run, &r);
done:
  if (in_txn) rc = db_end(db, rc);
  undo_steps_free(&s);
  run_info_free(&r);
  if (rc == NODUP_OK) {
    if (restored) *restored = nres;
    if (reverted) *reverted = nrev;
  }
  return rc;
}

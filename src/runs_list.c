/*
 * runs_list.c -- the runs a journal holds: listing them, forgetting one.
 *
 * `nodup runs` and nodup_runs_list() read every run of the journal
 * (journal.c) and of an earlier nodup's journal, with the state its owner's
 * liveness gives (journal_state); nodup_runs_forget() deletes one run's
 * rows from every journal table, never a running one's. Listing writes
 * nothing, so it never creates a journal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void nodup_runs_free(nodup_runs_report *r) {
  size_t i;
  if (!r) return;
  for (i = 0; i < r->nruns; i++) {
    nodup_run_info *u = &r->runs[i];
    free(u->run);
    free(u->table);
    strv_free(u->key, u->nkey);
    free(u->started);
    free(u->finished);
    free(u->heartbeat);
    free(u->host);
    free(u->journal);
  }
  free(r->runs);
  free(r);
}

typedef struct list_ctx {
  nodup_runs_report *r;
  const char *journal;  /* the schema being read */
  int legacy, oom;
} list_ctx;

static char *dup_or_null(const char *s, int *oom) {
  char *d;
  if (!s) return NULL;
  if (!(d = nodup_strdup(s))) *oom = 1;
  return d;
}

static long long count_or_unknown(const char *v) { return v ? atoll(v) : -1; }

/* Rows: run, tbl, started, finished, groups, archive, heartbeat,
 * repointed, deleted, filled, then journal_state_columns()' six. */
static int read_list_row(void *ctx, int n, const char *const *v) {
  list_ctx *l = ctx;
  nodup_runs_report *r = l->r;
  nodup_run_info *u = realloc(r->runs, (r->nruns + 1) * sizeof *u);
  (void)n;
  if (!u) return l->oom = 1;
  r->runs = u;
  u = &r->runs[r->nruns++];
  memset(u, 0, sizeof *u);
  u->run = dup_or_null(v[0], &l->oom);
  u->table = dup_or_null(v[1], &l->oom);
  u->started = dup_or_null(v[2], &l->oom);
  u->finished = dup_or_null(v[3], &l->oom);
  u->groups = v[4] ? atoll(v[4]) : 0;
  u->heartbeat = dup_or_null(v[6], &l->oom);
  u->repointed = count_or_unknown(v[7]);
  u->deleted = count_or_unknown(v[8]);
  u->filled = count_or_unknown(v[9]);
  u->changed = u->repointed < 0 || u->deleted < 0 || u->filled < 0
                   ? -1
                   : u->repointed + u->deleted + u->filled;
  u->state = journal_state(v + 10);
  u->archived = v[5] && atoi(v[5]) && u->state != NODUP_RUN_UNDONE;
  u->host = dup_or_null(v[11], &l->oom);
  u->pid = v[12] ? atoll(v[12]) : 0;
  u->journal = dup_or_null(l->journal, &l->oom);
  u->legacy = l->legacy;
  return l->oom;
}

static int read_key(void *ctx, int n, const char *const *v) {
  list_ctx *l = ctx;
  nodup_runs_report *r = l->r;
  size_t i;
  (void)n;
  for (i = r->nruns; i-- > 0;) {
    nodup_run_info *u = &r->runs[i];
    char **grown;
    if (!u->run || strcmp(u->run, v[0]) || (u->journal == NULL) != (l->journal == NULL) ||
        (u->journal && strcmp(u->journal, l->journal)))
      continue;
    if (!(grown = realloc(u->key, (u->nkey + 1) * sizeof *grown))) return l->oom = 1;
    u->key = grown;
    if (!(u->key[u->nkey] = nodup_strdup(v[1]))) return l->oom = 1;
    u->nkey++;
    break;
  }
  return 0;
}

/* Append the runs of the journal in `schema` (of `version`). */
static int list_journal(nodup_db *db, nodup_runs_report *r, const char *schema, int version,
                        int legacy) {
  list_ctx l;
  int rc;
  memset(&l, 0, sizeof l);
  l.r = r;
  l.journal = schema;
  l.legacy = legacy;
  rc = journal_list(db, schema, version, read_list_row, read_key, &l);
  if (rc == NODUP_OK && l.oom) rc = NODUP_ERR_NOMEM;
  return rc;
}

static int by_start(const void *a, const void *b) {
  const nodup_run_info *x = a, *y = b;
  int c = strcmp(x->started ? x->started : "", y->started ? y->started : "");
  return c ? c : strcmp(x->run ? x->run : "", y->run ? y->run : "");
}

int nodup_runs_list(nodup_runs_report **out, nodup_db *db) {
  nodup_runs_report *r = NULL;
  char *legacy = NULL;
  int rc, version = 0;
  if (!out) return NODUP_ERR_USAGE;
  *out = NULL;
  if (!db || !db->native) return NODUP_ERR_USAGE;
  nodup_clear_error(db);
  if (!(r = calloc(1, sizeof *r))) return NODUP_ERR_NOMEM;
  if ((rc = journal_version(db, journal_schema(db), &version)) != NODUP_OK) goto done;
  if (version && (rc = list_journal(db, r, journal_schema(db), version, 0)) != NODUP_OK)
    goto done;
  if ((rc = journal_legacy(db, &legacy)) != NODUP_OK) goto done;
  if (legacy && (rc = journal_version(db, legacy, &version)) == NODUP_OK && version)
    rc = list_journal(db, r, legacy, version, 1);
  if (rc != NODUP_OK) goto done;
  if (r->nruns) qsort(r->runs, r->nruns, sizeof *r->runs, by_start);
done:
  free(legacy);
  if (rc == NODUP_OK) *out = r;
  else nodup_runs_free(r);
  return rc;
}

int nodup_runs_forget(nodup_db *db, const char *run) {
  char *schema = NULL;
  journal_row row;
  int rc, version = 0, in_txn = 0;
  if (!db || !db->native || !run || !*run)
    return db ? nodup_fail(db, NODUP_ERR_USAGE, "forget needs a run id") : NODUP_ERR_USAGE;
  nodup_clear_error(db);
  if (db->be->in_transaction(db))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "forget runs its own transaction: call it outside one");
  if ((rc = db_begin_write(db)) != NODUP_OK) return rc;
  in_txn = 1;
  if ((rc = journal_find(db, run, &schema, &version)) != NODUP_OK) goto done;
  /* Locked: a batch in progress is waited for, then its owner judged. */
  if ((rc = journal_read_row(db, schema, version, run, 1, &row)) != NODUP_OK) goto done;
  if (row.state == NODUP_RUN_RUNNING) {
    rc = journal_refuse_running(db, run, &row, "it cannot be forgotten");
    goto done;
  }
  if ((rc = journal_remove(db, schema, run)) != NODUP_OK) goto done;
  if (schema && strcmp(schema, journal_schema(db)) &&
      (rc = journal_drop_if_empty(db, schema)) != NODUP_OK)
    goto done;
done:
  if (in_txn) rc = db_end(db, rc);
  free(schema);
  return rc;
}

/*
 * merge_log.c -- what a merge records so that undo can replay it.
 *
 * Each change is a step of the run (nodup_steps): a re-point or a fill
 * logs the rows it changes with their old values (nodup_log), keyed by
 * the primary key they will have; a delete archives the rows as JSON with
 * the keeper each merged into (nodup_archive). The tables and their
 * columns are journal.c's: this file writes the SELECT of what to record
 * and journal.c the INSERT (or UPDATE) around it, so only journal.c knows
 * the journal's layout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge_int.h"

/* Record the run's next step: its kind ('delete', 'repoint', 'fill'), the
 * table as table_info() accepts it, and the columns it sets (one row per
 * column). `stepno` (24 bytes) gets the step number as text. */
static int log_step(merge_ctx *c, const char *kind, const char *tname, char *const *cols,
                    size_t n, char *stepno) {
  c->step++;
  snprintf(stepno, 24, "%lld", c->step);
  return journal_step(c->db, c->journal, c->rep->run, stepno, kind, tname, cols, n);
}

/* "a.col" for each of cols, as new strings (NULL: out of memory). */
static char **alias_cols(const char *a, char *const *cols, size_t n) {
  char **out = calloc(n + 1, sizeof *out);
  buf e;
  size_t i;
  if (!out) return NULL;
  buf_init(&e);
  for (i = 0; i < n; i++) {
    buf_reset(&e);
    buf_printf(&e, "%s.", a);
    sql_ident(&e, cols[i]);
    if (e.oom || !(out[i] = nodup_strdup(buf_str(&e)))) break;
  }
  buf_free(&e);
  if (i < n) {
    strv_free(out, n);
    return NULL;
  }
  return out;
}

/* Record step `kind` of table `tname` setting `cols`, then log, before
 * the UPDATE, the rows it will change: `curx` holds t's primary key as it
 * will be after the update (curx[i] for t->pk[i]; NULL: as it is, alias
 * a), `old` the columns `cols` (alias a) as they are now. `from` is the
 * FROM ... WHERE that selects the rows. */
int merge_log_rows(merge_ctx *c, const char *kind, const char *tname, const nodup_table_info *t,
                   const char *a, char *const *curx, char *const *cols, size_t n,
                   const char *from) {
  nodup_db *db = c->db;
  char stepno[24];
  const char *p[2] = {c->rep->run, stepno};
  char **oldx = alias_cols(a, cols, n), **pkx = curx ? NULL : alias_cols(a, t->pk, t->npk);
  buf q;
  int rc;
  buf_init(&q);
  if (!oldx || (!curx && !pkx)) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  if ((rc = log_step(c, kind, tname, cols, n, stepno)) != NODUP_OK) goto done;
  journal_log_insert(&q, db, c->journal);
  db->be->json_object(&q, t->npk, (const char *const *)t->pk,
                      (const char *const *)(curx ? curx : pkx));
  buf_puts(&q, ", ");
  if (!q.oom) db->be->json_object(&q, n, (const char *const *)cols, (const char *const *)oldx);
  buf_printf(&q, " %s", from);
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), p, 2, NULL, NULL);
done:
  strv_free(oldx, n);
  strv_free(pkx, t->npk);
  buf_free(&q);
  return rc;
}

/*
 * The archive names, for each deleted row, the row it merged into. A child
 * row that absorbed a collision may itself point at a loser and so be
 * re-pointed next, and when its primary key holds the reference (link
 * tables) that changes its key: "110,8" becomes "101,8". Rewrite the
 * keepers archived since step `since` to the keys they are about to get,
 * so the archive never names a row that no longer exists.
 */
int merge_log_rekey(merge_ctx *c, const nodup_table_info *x, const char *m,
                    const nodup_table_info *child, const nodup_fk_info *fk,
                    long long since) {
  nodup_db *db = c->db;
  char sincetext[24];
  const char *p[3] = {c->rep->run, child->qualified, sincetext};
  size_t i;
  int rekeyed = 0;
  buf q;
  int rc;
  for (i = 0; i < child->npk; i++) rekeyed |= merge_fk_position(db, child, fk, child->pk[i]) >= 0;
  if (!rekeyed) return NODUP_OK;
  snprintf(sincetext, sizeof sincetext, "%lld", since);
  buf_init(&q);
  journal_rekey_begin(&q, db, c->journal);
  buf_puts(&q, "SELECT ");
  merge_pk_text(&q, child, "c");
  buf_puts(&q, " AS nodup_old, ");
  for (i = 0; i < child->npk; i++) {
    buf_puts(&q, i ? " || ',' || CAST(" : "CAST(");
    merge_pk_after_repoint(&q, db, x, child, fk, i);
    buf_puts(&q, " AS TEXT)");
  }
  buf_printf(&q, " AS nodup_new FROM %s AS c JOIN %s AS m ON ", child->qualified, m);
  merge_fk_on_losers(&q, db, x, fk);
  journal_rekey_end(&q, db);
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), p, 3, NULL, NULL);
  buf_free(&q);
  return rc;
}

/* The losers of mapping m, each as JSON with its primary key and its
 * keeper's, as step 'delete' (undo re-inserts them). */
int merge_log_archive(merge_ctx *c, const nodup_table_info *x, const char *tname,
                      const char *m) {
  nodup_db *db = c->db;
  char stepno[24];
  const char *p[3] = {c->rep->run, x->qualified, stepno};
  buf q;
  int rc;
  if ((rc = log_step(c, "delete", tname, NULL, 0, stepno)) != NODUP_OK) return rc;
  buf_init(&q);
  journal_archive_insert(&q, db, c->journal);
  merge_pk_text(&q, x, "x");
  buf_puts(&q, ", ");
  merge_pk_text(&q, x, "k");
  buf_puts(&q, ", ");
  db->be->row_json(&q, x, "x");
  buf_printf(&q, " FROM %s AS x JOIN %s AS m ON ", x->qualified, m);
  merge_pk_join(&q, db, x, "m", "l", "x");
  buf_printf(&q, " JOIN %s AS k ON ", x->qualified);
  merge_pk_join(&q, db, x, "m", "k", "k");
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), p, 3, NULL, NULL);
  buf_free(&q);
  return rc;
}

/*
 * merge_repoint.c -- one level of a merge: re-point, check, delete.
 *
 * One level of a merge is a table X and a temporary mapping of its losers
 * to their keepers, carrying every column of X that something references
 * (nodup_l<i> / nodup_k<i> for X's column i). For each table C that
 * references X:
 *   1. rows of C that would collide in one of C's unique indexes once
 *      re-pointed are duplicates of each other: merge_collide.c merges
 *      them, one level down, through this same function;
 *   2. one UPDATE re-points what remains.
 * Then the level checks that nothing references a loser any more, archives
 * the losers as JSON and deletes them. All set-based: the number of
 * statements depends on the schema, never on the number of rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge_int.h"

/* One level: table x, its mapping m and policy table f (temp tables of
 * the run), the references to re-point (the catalog's, then `extra`). */
typedef struct level {
  const nodup_table_info *x;
  const char *tname;         /* x as table_info() accepts it (for undo) */
  char m[32], f[32];
  const nodup_fk_info *fks, *extra;
  size_t nfks, nextra;
  int depth, fill;
  char *const *fixed;        /* columns no policy changes (the key) */
  size_t nfixed;
} level;

/* Reference i of the level: the catalog's first, then the caller's. */
static const nodup_fk_info *level_ref(const level *lv, size_t i) {
  return i < lv->nfks ? &lv->fks[i] : &lv->extra[i - lv->nfks];
}

/* Log each row's reference as it is, and its primary key as it will be
 * (the key may contain the reference: link tables). */
static int repoint_log(merge_ctx *c, const level *lv, const nodup_table_info *child,
                       const nodup_fk_info *fk) {
  nodup_db *db = c->db;
  char **curx = calloc(child->npk + 1, sizeof *curx);
  buf q, e;
  size_t j;
  int rc;
  buf_init(&q);
  buf_init(&e);
  for (j = 0; curx && j < child->npk; j++) {
    buf_reset(&e);
    merge_pk_after_repoint(&e, db, lv->x, child, fk, j);
    if (e.oom || !(curx[j] = nodup_strdup(buf_str(&e)))) break;
  }
  buf_printf(&q, "FROM %s AS c JOIN %s AS m ON ", child->qualified, lv->m);
  merge_fk_on_losers(&q, db, lv->x, fk);
  rc = !curx || j < child->npk || q.oom
           ? NODUP_ERR_NOMEM
           : merge_log_rows(c, "repoint", fk->table, child, "c", curx, fk->cols, fk->ncols,
                            buf_str(&q));
  strv_free(curx, child->npk);
  buf_free(&e);
  buf_free(&q);
  return rc;
}

/* A self-reference re-pointed onto its own row: counted for the report,
 * never hidden. */
static int count_self_references(merge_ctx *c, const level *lv, const nodup_fk_info *fk) {
  nodup_db *db = c->db;
  const nodup_table_info *x = lv->x;
  long long self = 0;
  buf q;
  size_t i;
  int rc;
  buf_init(&q);
  buf_printf(&q, "SELECT count(*) FROM %s AS c JOIN %s AS m ON ", x->qualified, lv->m);
  merge_pk_join(&q, db, x, "m", "k", "c");
  for (i = 0; i < fk->ncols; i++) {
    buf_puts(&q, " AND c.");
    sql_ident(&q, fk->cols[i]);
    buf_puts(&q, " = c.");
    sql_ident(&q, fk->refcols[i]);
  }
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, db_read_count, &self);
  c->rep->self_references += self;
  buf_free(&q);
  return rc;
}

/* The UPDATE that re-points fk's rows of child from the losers to their
 * keepers; *n gets how many it changed. */
static int repoint_update(merge_ctx *c, const level *lv, const nodup_table_info *child,
                          const nodup_fk_info *fk, long long *n) {
  nodup_db *db = c->db;
  buf q;
  size_t i;
  int rc;
  buf_init(&q);
  buf_printf(&q, "UPDATE %s AS c SET ", child->qualified);
  for (i = 0; i < fk->ncols; i++) {
    if (i) buf_puts(&q, ", ");
    sql_ident(&q, fk->cols[i]);
    buf_printf(&q, " = m.nodup_k%d", merge_col(db, lv->x, fk->refcols[i]));
  }
  buf_printf(&q, " FROM %s AS m WHERE ", lv->m);
  merge_fk_on_losers(&q, db, lv->x, fk);
  rc = merge_sql(c, &q, n);
  buf_free(&q);
  return rc;
}

/* Re-point one reference: collisions first (merged one level down), then
 * one UPDATE for the rest. */
static int repoint(merge_ctx *c, const level *lv, const nodup_fk_info *fk) {
  const nodup_table_info *child = NULL;
  nodup_merge_table *st;
  long long n = 0, before_step, before_deleted;
  int rc;

  if ((rc = merge_schema_table(c, fk->table, &child)) != NODUP_OK) return rc;
  before_step = c->step;
  if ((st = merge_stats(c, child)) == NULL) return NODUP_ERR_NOMEM;
  before_deleted = st->deleted;
  if ((rc = merge_collide(c, lv->x, lv->m, child, fk, lv->depth)) != NODUP_OK) return rc;
  /* merge_stats() may have moved the table array: look the row up again. */
  if (c->log && (st = merge_stats(c, child)) != NULL && st->deleted > before_deleted &&
      (rc = merge_log_rekey(c, lv->x, lv->m, child, fk, before_step)) != NODUP_OK)
    return rc;
  if (c->log && (rc = repoint_log(c, lv, child, fk)) != NODUP_OK) return rc;
  if ((rc = repoint_update(c, lv, child, fk, &n)) != NODUP_OK) return rc;
  if (!(st = merge_stats(c, child))) return NODUP_ERR_NOMEM;
  st->repointed += n;
  if (fk->inferred) st->inferred = 1;
  if (!strcmp(child->qualified, lv->x->qualified)) rc = count_self_references(c, lv, fk);
  return rc;
}

/* Nothing may reference a loser any more; otherwise roll the batch back. */
static int verify(merge_ctx *c, const level *lv, const nodup_fk_info *fk) {
  const nodup_table_info *child = NULL;
  long long left = 0;
  int rc;
  /* fk->table is the table_info spelling; quote through the catalog. */
  if ((rc = merge_schema_table(c, fk->table, &child)) != NODUP_OK ||
      (rc = merge_count_on_losers(c, lv->x, lv->m, child, fk, &left)) != NODUP_OK)
    return rc;
  if (left)
    rc = nodup_fail(c->db, NODUP_ERR_REFERENCED,
                    "%lld row(s) of %s still reference rows of %s being deleted: batch rolled back",
                    left, fk->table, lv->x->qualified);
  return rc;
}

/* Delete the losers (archived first, merge_log.c, unless the run keeps no
 * archive). */
static int delete_losers(merge_ctx *c, const level *lv) {
  nodup_db *db = c->db;
  const nodup_table_info *x = lv->x;
  nodup_merge_table *st;
  long long n = 0;
  buf q;
  size_t i;
  int rc;
  if (c->log && (rc = merge_log_archive(c, x, lv->tname, lv->m)) != NODUP_OK) return rc;
  buf_init(&q);
  /* (pk) IN (SELECT ...), not a correlated EXISTS: SQLite runs EXISTS
   * once per row of X, scanning the mapping each time (5 s a batch at
   * 100,000 rows), while IN drives the delete from the mapping through
   * the primary key. */
  buf_printf(&q, "DELETE FROM %s WHERE (", x->qualified);
  sql_ident_list(&q, x->pk, x->npk);
  buf_puts(&q, ") IN (SELECT ");
  for (i = 0; i < x->npk; i++)
    buf_printf(&q, "%snodup_l%d", i ? ", " : "", merge_col(db, x, x->pk[i]));
  buf_printf(&q, " FROM %s)", lv->m);
  rc = merge_sql(c, &q, &n);
  buf_free(&q);
  if (rc != NODUP_OK) return rc;
  if (!(st = merge_stats(c, x))) return NODUP_ERR_NOMEM;
  st->deleted += n;
  return NODUP_OK;
}

/* " JOIN x AS a ON a.pk0 = p.<prefix>0 AND ...": the rows the pairs name. */
static void pairs_join(buf *q, const nodup_table_info *x, const char *a, const char *prefix) {
  size_t i;
  buf_printf(q, " JOIN %s AS %s ON ", x->qualified, a);
  for (i = 0; i < x->npk; i++) {
    buf_printf(q, "%s%s.", i ? " AND " : "", a);
    sql_ident(q, x->pk[i]);
    buf_printf(q, " = p.%s%zu", prefix, i);
  }
}

/* The columns of x the mapping carries: those a reference targets
 * (foreign keys may target a unique column other than the primary key),
 * outside the primary key. NULL: out of memory. */
static char *level_columns(const nodup_db *db, const level *lv) {
  const nodup_table_info *x = lv->x;
  char *need = calloc(x->ncols + 2, 1);
  size_t i, j;
  if (!need) return NULL;
  for (i = 0; i < lv->nfks + lv->nextra; i++) {
    const nodup_fk_info *fk = level_ref(lv, i);
    for (j = 0; j < fk->ncols; j++) {
      int col = merge_col(db, x, fk->refcols[j]);
      if (col < (int)x->ncols) need[col] = 1;
    }
  }
  for (j = 0; j < x->npk; j++) need[merge_col(db, x, x->pk[j])] = 0;
  return need;
}

/* Build the level's mapping m from `pairs` and analyse it; *nmap gets its
 * number of rows. */
static int level_mapping(merge_ctx *c, const level *lv, const char *pairs, long long *nmap) {
  nodup_db *db = c->db;
  const nodup_table_info *x = lv->x;
  char *need = level_columns(db, lv);
  buf q;
  size_t i;
  int rc, extra_cols = 0;
  if (!need) return NODUP_ERR_NOMEM;
  buf_init(&q);
  buf_printf(&q, "CREATE TEMP TABLE %s AS SELECT p.nodup_rn AS nodup_rn", lv->m);
  for (i = 0; i < x->npk; i++)
    buf_printf(&q, ", p.nodup_lp%zu AS nodup_l%d, p.nodup_kp%zu AS nodup_k%d", i,
               merge_col(db, x, x->pk[i]), i, merge_col(db, x, x->pk[i]));
  for (i = 0; i < x->ncols; i++) {
    if (!need[i]) continue;
    extra_cols = 1;
    buf_puts(&q, ", l.");
    sql_ident(&q, x->cols[i]);
    buf_printf(&q, " AS nodup_l%zu, k.", i);
    sql_ident(&q, x->cols[i]);
    buf_printf(&q, " AS nodup_k%zu", i);
  }
  buf_printf(&q, " FROM (%s) AS p", pairs);
  /* Referenced columns other than the key come from the rows themselves
   * (two primary key lookups per loser, skipped when nothing needs them). */
  if (extra_cols) {
    pairs_join(&q, x, "l", "nodup_lp");
    pairs_join(&q, x, "k", "nodup_kp");
  }
  if ((rc = merge_sql(c, &q, NULL)) != NODUP_OK) goto done;
  /* Temp tables have no statistics until analysed: without them PostgreSQL
   * guesses the mapping large and scans each child whole, every batch. */
  buf_reset(&q);
  buf_printf(&q, "ANALYZE %s", lv->m);
  if ((rc = merge_sql(c, &q, NULL)) != NODUP_OK) goto done;
  buf_reset(&q);
  buf_printf(&q, "SELECT count(*) FROM %s", lv->m);
  rc = db->be->query(db, buf_str(&q), NULL, 0, db_read_count, nmap);
done:
  free(need);
  buf_free(&q);
  return rc;
}

/* The level once its mapping holds rows: re-point every reference,
 * verify, count what collided rows held, collect the policies' values,
 * archive and delete, write the policies' values (*have_f: table f was
 * made). */
static int level_merge(merge_ctx *c, const level *lv, int *have_f) {
  const nodup_table_info *x = lv->x;
  int *pol = NULL, *ord = NULL;
  size_t i, npol = 0, nrefs = lv->nfks + lv->nextra;
  int rc = NODUP_OK;
  for (i = 0; i < nrefs && rc == NODUP_OK; i++) rc = repoint(c, lv, level_ref(lv, i));
  for (i = 0; i < nrefs && rc == NODUP_OK; i++) rc = verify(c, lv, level_ref(lv, i));
  /* Rows below the merged table collided: say what they held that their
   * survivor does not, before a policy takes any of it. */
  if (rc == NODUP_OK && lv->depth > 0)
    rc = merge_differed(c, x, lv->m, lv->fixed, lv->nfixed);
  if (rc == NODUP_OK)
    rc = merge_policies(c, x, lv->fill, lv->fixed, lv->nfixed, &pol, &ord, &npol);
  if (rc == NODUP_OK && npol && (rc = merge_policies_collect(c, x, lv->m, lv->f, pol, ord)) ==
                                    NODUP_OK)
    *have_f = 1;
  if (rc == NODUP_OK) rc = delete_losers(c, lv);
  if (rc == NODUP_OK && *have_f) rc = merge_policies_apply(c, x, lv->tname, lv->f, pol, npol);
  free(pol);
  free(ord);
  return rc;
}

static int drop_table(merge_ctx *c, const char *name) {
  buf q;
  int rc;
  buf_init(&q);
  buf_printf(&q, "DROP TABLE %s", name);
  rc = merge_sql(c, &q, NULL);
  buf_free(&q);
  return rc;
}

/* Build X's mapping from `pairs` (nodup_lp<i>/nodup_kp<i> per primary key
 * column, nodup_rn the loser's rank in its group), re-point every
 * reference, verify, archive, delete, and apply the survivorship policies
 * (the rules for X's columns; with `fill`, first-non-null for the others;
 * never the `fixed` columns: the key). `tname` is X's name as
 * table_info() accepts it (for undo). */
int merge_level(merge_ctx *c, const nodup_table_info *x, const char *tname, const char *pairs,
                int depth, const nodup_fk_info *extra, size_t nextra, int fill,
                char *const *fixed, size_t nfixed) {
  level lv = {.x = x, .tname = tname, .extra = extra, .nextra = nextra, .depth = depth,
              .fill = fill, .fixed = fixed, .nfixed = nfixed};
  long long nmap = 0;
  int rc, have_f = 0;

  if (depth > MERGE_MAX_DEPTH)
    return nodup_fail(c->db, NODUP_ERR_DB, "merge recursion deeper than %d levels at %s",
                      MERGE_MAX_DEPTH, x->qualified);
  if ((rc = merge_schema_references(c, x, &lv.fks, &lv.nfks)) != NODUP_OK) return rc;
  snprintf(lv.m, sizeof lv.m, "nodup_m%u", c->ntemp);
  snprintf(lv.f, sizeof lv.f, "nodup_f%u", c->ntemp++);
  if ((rc = level_mapping(c, &lv, pairs, &nmap)) != NODUP_OK) return rc;
  if (nmap) rc = level_merge(c, &lv, &have_f);
  /* Dropped only on success: a failure rolls the batch back, tables too. */
  if (rc == NODUP_OK) rc = drop_table(c, lv.m);
  if (rc == NODUP_OK && have_f) rc = drop_table(c, lv.f);
  return rc;
}

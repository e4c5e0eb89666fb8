/*
 * merge_collide.c -- the rows a re-point would make collide.
 *
 * Re-pointing a reference that a unique index of the referencing table
 * holds (link tables, one-to-one children) would make rows equal under
 * that index: the loser's row and the keeper's, or two losers'. They are
 * duplicates of each other, so they get their own mapping (a row already
 * pointing at the keeper wins, then the lowest primary key) and are merged
 * by merge_level() one level down, before the re-point. Also here: what
 * follows from that before a run starts (the tables a merge can reach,
 * the --one-to-one fail check).
 */
#include <stdlib.h>
#include <string.h>

#include "merge_int.h"

/* The rows of child C (referencing X through fk) that would collide in
 * unique index ix after re-pointing through mapping m: merge them. */
static int merge_collisions(merge_ctx *c, const nodup_table_info *x, const char *m,
                            const nodup_table_info *child, const nodup_fk_info *fk,
                            const nodup_index_info *ix, int depth, int fill) {
  nodup_db *db = c->db;
  buf q;
  size_t i, j;
  int rc;

  buf_init(&q);
  merge_pk_pairs(&q, child, "c");
  /* Only rows pointing at a loser (moved) or at a keeper (staying) can
   * collide: join them in, index-friendly, instead of windowing all of C.
   * nodup_t<i> is the value after re-pointing. */
  buf_printf(&q, "%s AS c JOIN (SELECT ", child->qualified);
  for (i = 0; i < fk->ncols; i++) {
    int g = merge_col(db, x, fk->refcols[i]);
    buf_printf(&q, "nodup_l%d AS nodup_v%zu, nodup_k%d AS nodup_t%zu, ", g, i, g, i);
  }
  buf_printf(&q, "1 AS nodup_moved FROM %s UNION SELECT ", m);
  for (i = 0; i < fk->ncols; i++) {
    int g = merge_col(db, x, fk->refcols[i]);
    buf_printf(&q, "nodup_k%d, nodup_k%d, ", g, g);
  }
  buf_printf(&q, "0 FROM %s) AS mm ON ", m);
  for (i = 0; i < fk->ncols; i++) {
    if (i) buf_puts(&q, " AND ");
    buf_puts(&q, "c.");
    sql_ident(&q, fk->cols[i]);
    buf_printf(&q, " = mm.nodup_v%zu", i);
  }
  /* Only rows the index constrains (non-null key, its predicate). */
  buf_puts(&q, " WHERE ");
  sql_key_filter(&q, ix->cols, ix->ncols, ix->predicate, ix->nulls_equal, "c");
  /* Rows outside a reference's condition (another content type) neither
   * move nor stay on the keeper: they are not this reference's. */
  merge_fk_condition(&q, fk);
  buf_puts(&q, " WINDOW nodup_w AS (PARTITION BY ");
  for (j = 0; j < ix->ncols; j++) {
    int f = merge_fk_position(db, child, fk, ix->cols[j]);
    if (j) buf_puts(&q, ", ");
    if (f >= 0) {
      buf_printf(&q, "mm.nodup_t%d", f);
    } else {
      buf_puts(&q, "c.");
      sql_ident(&q, ix->cols[j]);
    }
  }
  /* A row that already points at the keeper stays; then the oldest. */
  buf_puts(&q, " ORDER BY mm.nodup_moved");
  for (i = 0; i < child->npk; i++) {
    buf_puts(&q, ", c.");
    sql_ident(&q, child->pk[i]);
  }
  buf_puts(&q, ")) AS nodup_r WHERE nodup_rn > 1");
  /* The index's columns are equal within a group: never "filled". */
  rc = q.oom ? NODUP_ERR_NOMEM
             : merge_level(c, child, fk->table, buf_str(&q), depth + 1, NULL, 0, fill,
                           ix->cols, ix->ncols);
  buf_free(&q);
  return rc;
}

/* "Holds": every column of fk is in unique index ix of child (an
 * expression index holds nothing); *exact: and nothing else (a one-to-one
 * child). */
static int index_contains_fk(const nodup_db *db, const nodup_table_info *child,
                             const nodup_index_info *ix, const nodup_fk_info *fk, int *exact) {
  size_t i, j, hit = 0;
  for (j = 0; j < ix->ncols; j++)
    if (!ix->cols[j]) return 0;
  for (i = 0; i < fk->ncols; i++)
    for (j = 0; j < ix->ncols; j++)
      if (merge_col(db, child, fk->cols[i]) == merge_col(db, child, ix->cols[j])) {
        hit++;
        break;
      }
  *exact = hit == fk->ncols && ix->ncols == fk->ncols;
  return hit == fk->ncols;
}

/* --one-to-one fail: `clash` rows of one-to-one child `child` sit on rows
 * this run would delete. */
static int one_to_one_refuse(merge_ctx *c, const nodup_table_info *child, long long clash) {
  if (!clash) return NODUP_OK;
  return nodup_fail(c->db, NODUP_ERR_CONSTRAINT,
                    "one-to-one child %s has %lld row(s) on rows being merged "
                    "(--one-to-one fail): nothing changed",
                    child->qualified, clash);
}

int merge_collide(merge_ctx *c, const nodup_table_info *x, const char *m,
                  const nodup_table_info *child, const nodup_fk_info *fk, int depth) {
  int one_to_one = c->opt->one_to_one, rc = NODUP_OK, exact;
  long long clash = 0;
  size_t i;
  for (i = 0; i < child->nidx && rc == NODUP_OK; i++) {
    if (!index_contains_fk(c->db, child, &child->idx[i], fk, &exact)) continue;
    /* Checked again per batch: writers may have added groups meanwhile. */
    if (exact && one_to_one == NODUP_ONE_TO_ONE_FAIL &&
        ((rc = merge_count_on_losers(c, x, m, child, fk, &clash)) != NODUP_OK ||
         (rc = one_to_one_refuse(c, child, clash)) != NODUP_OK))
      break;
    /* --one-to-one keep: the surviving child is left as it is. */
    rc = merge_collisions(c, x, m, child, fk, &child->idx[i], depth,
                          c->opt->fill_nulls && !(exact && one_to_one == NODUP_ONE_TO_ONE_KEEP));
  }
  return rc;
}

/* --one-to-one fail, before anything is written (the journal included):
 * refuse while a one-to-one child (a unique index on exactly its
 * reference) has rows on a row this run would delete. Counted with scan's
 * mapping under the run's --keep, as the suspects are; each batch checks
 * again, one level down too, for groups that writers add meanwhile. */
int merge_one_to_one_check(merge_ctx *c, const nodup_table_info *t, char *const *key,
                           size_t nkey, const char *where, const nodup_fk_info *extra,
                           size_t nextra) {
  const nodup_fk_info *fks = NULL;
  size_t nfks = 0, i, j;
  buf q;
  int rc, exact = 0;
  if (c->opt->one_to_one != NODUP_ONE_TO_ONE_FAIL) return NODUP_OK;
  if ((rc = merge_schema_references(c, t, &fks, &nfks)) != NODUP_OK) return rc;
  buf_init(&q);
  for (i = 0; rc == NODUP_OK && i < nfks + nextra; i++) {
    const nodup_fk_info *fk = i < nfks ? &fks[i] : &extra[i - nfks];
    const nodup_table_info *child = NULL;
    long long clash = 0;
    if ((rc = merge_schema_table(c, fk->table, &child)) != NODUP_OK) break;
    for (j = 0; j < child->nidx; j++)
      if (index_contains_fk(c->db, child, &child->idx[j], fk, &exact) && exact) break;
    if (j == child->nidx) continue;
    buf_reset(&q);
    scan_mapping_cte(&q, t, key, nkey, where, c->opt->nulls_equal, c->opt->keep, fk->refcols,
                     fk->ncols);
    buf_printf(&q, "SELECT count(*) FROM %s AS c JOIN nodup_map AS m ON ", child->qualified);
    for (j = 0; j < fk->ncols; j++) {
      buf_puts(&q, j ? " AND c." : "c.");
      sql_ident(&q, fk->cols[j]);
      buf_printf(&q, " = m.nodup_r%zu", j + 1);
    }
    merge_fk_condition(&q, fk);
    rc = q.oom ? NODUP_ERR_NOMEM
               : c->db->be->query(c->db, buf_str(&q), NULL, 0, db_read_count, &clash);
    if (rc == NODUP_OK) rc = one_to_one_refuse(c, child, clash);
  }
  buf_free(&q);
  return rc;
}

/* The tables whose rows this merge can merge: t, and every table with a
 * unique index holding a reference to one of them (declared, or opt->refs
 * to t), since re-pointing makes such rows collide. *reach gets their
 * qualified names, t's first. */
int merge_reach(merge_ctx *c, const nodup_table_info *t, const nodup_fk_info *extra,
                size_t nextra, char ***reach, size_t *n) {
  const nodup_table_info **seen = malloc(sizeof *seen), **grown;
  size_t nseen = 1, at, i, j, k;
  int rc = NODUP_OK, exact;
  *reach = NULL;
  *n = 0;
  if (!seen) return NODUP_ERR_NOMEM;
  seen[0] = t;
  for (at = 0; at < nseen && rc == NODUP_OK; at++) {
    const nodup_fk_info *fks = NULL;
    size_t nfks = 0;
    if ((rc = merge_schema_references(c, seen[at], &fks, &nfks)) != NODUP_OK) break;
    for (i = 0; i < nfks + (at ? 0 : nextra) && rc == NODUP_OK; i++) {
      const nodup_fk_info *fk = i < nfks ? &fks[i] : &extra[i - nfks];
      const nodup_table_info *child = NULL;
      if ((rc = merge_schema_table(c, fk->table, &child)) != NODUP_OK) break;
      for (k = 0; k < nseen && strcmp(seen[k]->qualified, child->qualified); k++) {}
      if (k < nseen) continue;
      for (j = 0; j < child->nidx; j++)
        if (index_contains_fk(c->db, child, &child->idx[j], fk, &exact)) break;
      if (j == child->nidx) continue;
      if (!(grown = realloc(seen, (nseen + 1) * sizeof *seen))) {
        rc = NODUP_ERR_NOMEM;
        break;
      }
      seen = grown;
      seen[nseen++] = child;
    }
  }
  if (rc == NODUP_OK && !(*reach = calloc(nseen, sizeof **reach))) rc = NODUP_ERR_NOMEM;
  for (i = 0; rc == NODUP_OK && i < nseen; i++) {
    if (!((*reach)[i] = nodup_strdup(seen[i]->qualified))) rc = NODUP_ERR_NOMEM;
    else *n = i + 1;
  }
  free(seen);
  return rc;
}

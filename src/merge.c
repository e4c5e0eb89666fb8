/*
 * merge.c -- merging existing duplicates, losing nothing.
 *
 * One level of a merge is a table X and a temporary mapping of its losers
 * to their keepers, carrying every column of X that something references
 * (nodup_l<i> / nodup_k<i> for X's column i). For each table C that
 * references X:
 *   1. rows of C that would collide in one of C's unique indexes once
 *      re-pointed are duplicates of each other: they get their own mapping
 *      (a row already pointing at the keeper wins, then the lowest primary
 *      key) and are merged by the same function, one level down;
 *   2. one UPDATE re-points what remains.
 * Then the level checks that nothing references a loser any more, archives
 * the losers as JSON and deletes them. All set-based: the number of
 * statements depends on the schema, never on the number of rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define MERGE_MAX_DEPTH 8
#define MERGE_DEFAULT_BATCH 1000

typedef struct merge_ctx {
  nodup_db *db;
  const nodup_merge_options *opt;
  nodup_merge_report *rep;
  unsigned ntemp;
} merge_ctx;

void nodup_merge_free(nodup_merge_report *r) {
  size_t i;
  if (!r) return;
  for (i = 0; i < r->ntables; i++) free(r->tables[i].table);
  free(r->tables);
  free(r);
}

static nodup_merge_table *stats_for(merge_ctx *c, const char *table) {
  nodup_merge_report *r = c->rep;
  nodup_merge_table *t;
  size_t i;
  for (i = 0; i < r->ntables; i++)
    if (!strcmp(r->tables[i].table, table)) return &r->tables[i];
  t = realloc(r->tables, (r->ntables + 1) * sizeof *t);
  if (!t) return NULL;
  r->tables = t;
  t = &r->tables[r->ntables];
  memset(t, 0, sizeof *t);
  if (!(t->table = nodup_strdup(table))) return NULL;
  r->ntables++;
  return t;
}

/* A column's position, naming the mapping's nodup_l<i>/nodup_k<i>. SQLite's
 * implicit rowid is not in the catalog's column list: it gets ncols. */
static int mcol(const nodup_db *db, const nodup_table_info *t, const char *name) {
  int i = table_info_column(db, t, name);
  return i >= 0 ? i : (int)t->ncols;
}

static int count_rows(void *ctx, int n, const char *const *v) {
  (void)n;
  (void)v;
  (*(long long *)ctx)++;
  return 0;
}

static int read_count(void *ctx, int n, const char *const *v) {
  (void)n;
  *(long long *)ctx = v[0] ? atoll(v[0]) : 0;
  return 1;
}

static int run_sql(merge_ctx *c, buf *q, long long *rows) {
  long long ignore = 0;
  if (q->oom) return NODUP_ERR_NOMEM;
  return c->db->be->query(c->db, buf_str(q), NULL, 0, rows ? count_rows : NULL,
                          rows ? rows : &ignore);
}

/* Primary key columns of t as text joined by ',' for alias a. */
static void pk_text(buf *q, const nodup_table_info *t, const char *a) {
  size_t i;
  for (i = 0; i < t->npk; i++) {
    if (i) buf_puts(q, " || ',' || ");
    buf_printf(q, "CAST(%s.", a);
    sql_ident(q, t->pk[i]);
    buf_puts(q, " AS TEXT)");
  }
}

/* "m.nodup_l3 = x.col" for the primary key, joined by AND. */
static void pk_join(buf *q, const nodup_db *db, const nodup_table_info *t, const char *m,
                    const char *which, const char *a) {
  size_t i;
  for (i = 0; i < t->npk; i++) {
    if (i) buf_puts(q, " AND ");
    buf_printf(q, "%s.nodup_%s%d = %s.", m, which, mcol(db, t, t->pk[i]), a);
    sql_ident(q, t->pk[i]);
  }
}

static int merge_level(merge_ctx *c, const nodup_table_info *x, const char *pairs, int depth,
                       const nodup_fk_info *extra, size_t nextra);


/* The rows of child C (referencing X through fk) that would collide in
 * unique index ix after re-pointing through mapping m: merge them. */
static int merge_collisions(merge_ctx *c, const nodup_table_info *x, const char *m,
                            const nodup_table_info *child, const nodup_fk_info *fk,
                            const nodup_index_info *ix, int depth) {
  nodup_db *db = c->db;
  buf q;
  size_t i, j;
  int rc;

  buf_init(&q);
  buf_puts(&q, "SELECT * FROM (SELECT ");
  for (i = 0; i < child->npk; i++) {
    buf_printf(&q, "%sc.", i ? ", " : "");
    sql_ident(&q, child->pk[i]);
    buf_printf(&q, " AS nodup_lp%zu, first_value(c.", i);
    sql_ident(&q, child->pk[i]);
    buf_printf(&q, ") OVER nodup_w AS nodup_kp%zu", i);
  }
  /* Only rows pointing at a loser (moved) or at a keeper (staying) can
   * collide: join them in, index-friendly, instead of windowing all of C.
   * nodup_t<i> is the value after re-pointing. */
  buf_puts(&q, ", row_number() OVER nodup_w AS nodup_rn FROM ");
  buf_printf(&q, "%s AS c JOIN (SELECT ", child->qualified);
  for (i = 0; i < fk->ncols; i++) {
    int g = mcol(db, x, fk->refcols[i]);
    buf_printf(&q, "nodup_l%d AS nodup_v%zu, nodup_k%d AS nodup_t%zu, ", g, i, g, i);
  }
  buf_printf(&q, "1 AS nodup_moved FROM %s UNION SELECT ", m);
  for (i = 0; i < fk->ncols; i++) {
    int g = mcol(db, x, fk->refcols[i]);
    buf_printf(&q, "nodup_k%d, nodup_k%d, ", g, g);
  }
  buf_printf(&q, "0 FROM %s) AS mm ON ", m);
  for (i = 0; i < fk->ncols; i++) {
    if (i) buf_puts(&q, " AND ");
    buf_puts(&q, "c.");
    sql_ident(&q, fk->cols[i]);
    buf_printf(&q, " = mm.nodup_v%zu", i);
  }
  buf_puts(&q, " WHERE 1 = 1");
  for (j = 0; j < ix->ncols && !ix->nulls_equal; j++) {
    buf_puts(&q, " AND c.");
    sql_ident(&q, ix->cols[j]);
    buf_puts(&q, " IS NOT NULL");
  }
  if (ix->predicate) buf_printf(&q, " AND (%s)", ix->predicate);
  buf_puts(&q, " WINDOW nodup_w AS (PARTITION BY ");
  for (j = 0; j < ix->ncols; j++) {
    int f = -1;
    for (i = 0; i < fk->ncols; i++)
      if (mcol(db, child, ix->cols[j]) == mcol(db, child, fk->cols[i]))
        f = (int)i;
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
  rc = q.oom ? NODUP_ERR_NOMEM : merge_level(c, child, buf_str(&q), depth + 1, NULL, 0);
  buf_free(&q);
  return rc;
}

static int index_contains_fk(const nodup_db *db, const nodup_table_info *child,
                             const nodup_index_info *ix, const nodup_fk_info *fk, int *exact) {
  size_t i, j, hit = 0;
  for (j = 0; j < ix->ncols; j++)
    if (!ix->cols[j]) return 0;
  for (i = 0; i < fk->ncols; i++)
    for (j = 0; j < ix->ncols; j++)
      if (mcol(db, child, fk->cols[i]) == mcol(db, child, ix->cols[j])) {
        hit++;
        break;
      }
  *exact = hit == fk->ncols && ix->ncols == fk->ncols;
  return hit == fk->ncols;
}

/* Re-point one reference: collisions first (merged one level down), then
 * one UPDATE for the rest. */
static int repoint(merge_ctx *c, const nodup_table_info *x, const char *m,
                   const nodup_fk_info *fk, int depth) {
  nodup_db *db = c->db;
  nodup_table_info *child = NULL;
  nodup_merge_table *st;
  long long n = 0;
  buf q;
  size_t i;
  int rc, exact;

  buf_init(&q);
  if ((rc = db->be->table_info(db, fk->table, &child)) != NODUP_OK) goto done;
  for (i = 0; i < child->nidx; i++) {
    if (!index_contains_fk(db, child, &child->idx[i], fk, &exact)) continue;
    if (exact && c->opt->one_to_one == NODUP_ONE_TO_ONE_FAIL) {
      long long clash = 0;
      buf_reset(&q);
      buf_printf(&q, "SELECT count(*) FROM %s AS c JOIN %s AS m ON ", child->qualified, m);
      for (size_t k = 0; k < fk->ncols; k++) {
        if (k) buf_puts(&q, " AND ");
        buf_puts(&q, "c.");
        sql_ident(&q, fk->cols[k]);
        buf_printf(&q, " = m.nodup_l%d", mcol(db, x, fk->refcols[k]));
      }
      rc = db->be->query(db, buf_str(&q), NULL, 0, read_count, &clash);
      if (rc == NODUP_OK && clash) {
        rc = nodup_fail(db, NODUP_ERR_CONSTRAINT,
                        "one-to-one child %s has %lld row(s) on rows being merged "
                        "(--one-to-one fail): nothing changed",
                        child->qualified, clash);
      }
      if (rc != NODUP_OK) goto done;
    }
    if ((rc = merge_collisions(c, x, m, child, fk, &child->idx[i], depth)) != NODUP_OK) goto done;
  }
  buf_reset(&q);
  buf_printf(&q, "UPDATE %s AS c SET ", child->qualified);
  for (i = 0; i < fk->ncols; i++) {
    if (i) buf_puts(&q, ", ");
    sql_ident(&q, fk->cols[i]);
    buf_printf(&q, " = m.nodup_k%d", mcol(db, x, fk->refcols[i]));
  }
  buf_printf(&q, " FROM %s AS m WHERE ", m);
  for (i = 0; i < fk->ncols; i++) {
    if (i) buf_puts(&q, " AND ");
    buf_puts(&q, "c.");
    sql_ident(&q, fk->cols[i]);
    buf_printf(&q, " = m.nodup_l%d", mcol(db, x, fk->refcols[i]));
  }
  buf_puts(&q, " RETURNING 1");
  if ((rc = run_sql(c, &q, &n)) != NODUP_OK) goto done;
  if (!(st = stats_for(c, child->qualified))) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  st->repointed += n;
  if (!strcmp(child->qualified, x->qualified)) {
    /* A self-reference re-pointed onto its own row: report, never hide. */
    long long self = 0;
    buf_reset(&q);
    buf_printf(&q, "SELECT count(*) FROM %s AS c JOIN %s AS m ON ", x->qualified, m);
    pk_join(&q, db, x, "m", "k", "c");
    for (i = 0; i < fk->ncols; i++) {
      buf_puts(&q, " AND c.");
      sql_ident(&q, fk->cols[i]);
      buf_puts(&q, " = c.");
      sql_ident(&q, fk->refcols[i]);
    }
    rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, read_count, &self);
    c->rep->self_references += self;
  }
done:
  table_info_free(child);
  buf_free(&q);
  return rc;
}

/* Nothing may reference a loser any more; otherwise roll the batch back. */
static int verify(merge_ctx *c, const nodup_table_info *x, const char *m,
                  const nodup_fk_info *fk) {
  nodup_db *db = c->db;
  long long left = 0;
  buf q;
  size_t i;
  int rc;
  buf_init(&q);
  /* fk->table is the table_info spelling; quote through the catalog. */
  {
    nodup_table_info *child = NULL;
    if ((rc = db->be->table_info(db, fk->table, &child)) != NODUP_OK) {
      buf_free(&q);
      return rc;
    }
    buf_printf(&q, "SELECT count(*) FROM %s AS c JOIN %s AS m ON ", child->qualified, m);
    table_info_free(child);
  }
  for (i = 0; i < fk->ncols; i++) {
    if (i) buf_puts(&q, " AND ");
    buf_puts(&q, "c.");
    sql_ident(&q, fk->cols[i]);
    buf_printf(&q, " = m.nodup_l%d", mcol(db, x, fk->refcols[i]));
  }
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, read_count, &left);
  buf_free(&q);
  if (rc == NODUP_OK && left)
    rc = nodup_fail(db, NODUP_ERR_REFERENCED,
                    "%lld row(s) of %s still reference rows of %s being deleted: batch rolled back",
                    left, fk->table, x->qualified);
  return rc;
}

static int archive_and_delete(merge_ctx *c, const nodup_table_info *x, const char *m) {
  nodup_db *db = c->db;
  nodup_merge_table *st;
  long long n = 0;
  buf q;
  int rc = NODUP_OK;
  buf_init(&q);
  if (!c->opt->no_archive) {
    const char *p[2] = {c->rep->run, x->qualified};
    buf_puts(&q, "INSERT INTO nodup_archive (run, tbl, pk, keeper, row) SELECT ");
    sql_param(&q, db, 1);
    buf_puts(&q, ", ");
    sql_param(&q, db, 2);
    buf_puts(&q, ", ");
    pk_text(&q, x, "x");
    buf_puts(&q, ", ");
    pk_text(&q, x, "k");
    buf_puts(&q, ", ");
    db->be->row_json(&q, x, "x");
    buf_printf(&q, " FROM %s AS x JOIN %s AS m ON ", x->qualified, m);
    pk_join(&q, db, x, "m", "l", "x");
    buf_printf(&q, " JOIN %s AS k ON ", x->qualified);
    pk_join(&q, db, x, "m", "k", "k");
    rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), p, 2, NULL, NULL);
    if (rc != NODUP_OK) goto done;
  }
  buf_reset(&q);
  buf_printf(&q, "DELETE FROM %s WHERE EXISTS (SELECT 1 FROM %s AS m WHERE ", x->qualified, m);
  pk_join(&q, db, x, "m", "l", x->qualified);
  buf_puts(&q, ") RETURNING 1");
  if ((rc = run_sql(c, &q, &n)) != NODUP_OK) goto done;
  if (!(st = stats_for(c, x->qualified))) rc = NODUP_ERR_NOMEM;
  else st->deleted += n;
done:
  buf_free(&q);
  return rc;
}

/* Build X's mapping from `pairs` (nodup_lp<i>/nodup_kp<i> per primary key
 * column), re-point every reference, verify, archive, delete. */
static int merge_level(merge_ctx *c, const nodup_table_info *x, const char *pairs, int depth,
                       const nodup_fk_info *extra, size_t nextra) {
  nodup_db *db = c->db;
  nodup_fk_info *fks = NULL;
  size_t nfks = 0, i, j;
  char m[32];
  char *need = NULL;      /* columns of X the mapping carries */
  long long nmap = 0;
  buf q;
  int rc;

  buf_init(&q);
  if (depth > MERGE_MAX_DEPTH)
    return nodup_fail(db, NODUP_ERR_DB, "merge recursion deeper than %d levels at %s",
                      MERGE_MAX_DEPTH, x->qualified);
  if ((rc = db->be->references(db, x, &fks, &nfks)) != NODUP_OK) return rc;
  need = calloc(x->ncols + 2, 1);
  if (!need) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  for (i = 0; i < nfks + nextra; i++) {
    const nodup_fk_info *fk = i < nfks ? &fks[i] : &extra[i - nfks];
    for (j = 0; j < fk->ncols; j++) {
      int col = mcol(db, x, fk->refcols[j]);
      if (col < (int)x->ncols) need[col] = 1;
    }
  }
  snprintf(m, sizeof m, "nodup_m%u", c->ntemp++);
  buf_printf(&q, "CREATE TEMP TABLE %s AS SELECT ", m);
  for (i = 0; i < x->npk; i++)
    buf_printf(&q, "%sp.nodup_lp%zu AS nodup_l%d, p.nodup_kp%zu AS nodup_k%d", i ? ", " : "", i,
               mcol(db, x, x->pk[i]), i, mcol(db, x, x->pk[i]));
  for (i = 0; i < x->ncols; i++) {
    int is_pk = 0;
    for (j = 0; j < x->npk; j++) is_pk |= mcol(db, x, x->pk[j]) == (int)i;
    if (!need[i] || is_pk) continue;
    buf_puts(&q, ", l.");
    sql_ident(&q, x->cols[i]);
    buf_printf(&q, " AS nodup_l%zu, k.", i);
    sql_ident(&q, x->cols[i]);
    buf_printf(&q, " AS nodup_k%zu", i);
  }
  buf_printf(&q, " FROM (%s) AS p JOIN %s AS l ON ", pairs, x->qualified);
  for (i = 0; i < x->npk; i++) {
    buf_printf(&q, "%sl.", i ? " AND " : "");
    sql_ident(&q, x->pk[i]);
    buf_printf(&q, " = p.nodup_lp%zu", i);
  }
  buf_printf(&q, " JOIN %s AS k ON ", x->qualified);
  for (i = 0; i < x->npk; i++) {
    buf_printf(&q, "%sk.", i ? " AND " : "");
    sql_ident(&q, x->pk[i]);
    buf_printf(&q, " = p.nodup_kp%zu", i);
  }
  if ((rc = run_sql(c, &q, NULL)) != NODUP_OK) goto done;
  buf_reset(&q);
  buf_printf(&q, "SELECT count(*) FROM %s", m);
  if ((rc = db->be->query(db, buf_str(&q), NULL, 0, read_count, &nmap)) != NODUP_OK) goto drop;
  if (nmap == 0) goto drop;
  for (i = 0; i < nfks + nextra; i++) {
    const nodup_fk_info *fk = i < nfks ? &fks[i] : &extra[i - nfks];
    if ((rc = repoint(c, x, m, fk, depth)) != NODUP_OK) goto drop;
  }
  for (i = 0; i < nfks + nextra; i++) {
    const nodup_fk_info *fk = i < nfks ? &fks[i] : &extra[i - nfks];
    if ((rc = verify(c, x, m, fk)) != NODUP_OK) goto drop;
  }
  rc = archive_and_delete(c, x, m);
drop:
  if (rc == NODUP_OK) {
    buf_reset(&q);
    buf_printf(&q, "DROP TABLE %s", m);
    rc = run_sql(c, &q, NULL);
  }
done:
  free(need);
  fk_info_free(fks, nfks);
  buf_free(&q);
  return rc;
}

/* The batch: the first `batch` duplicate groups in key order, materialised
 * once (a correlated GROUP BY subquery would be re-run per row). */
static int batch_groups(merge_ctx *c, const nodup_table_info *t, char *const *key, size_t nkey,
                        const char *where, size_t batch) {
  buf q;
  int rc;
  buf_init(&q);
  buf_puts(&q, "CREATE TEMP TABLE nodup_batch AS SELECT ");
  sql_ident_list(&q, key, nkey);
  buf_printf(&q, " FROM %s AS g WHERE ", t->qualified);
  sql_key_filter(&q, key, nkey, where, 0, "g");
  buf_puts(&q, " GROUP BY ");
  sql_ident_list(&q, key, nkey);
  buf_puts(&q, " HAVING count(*) > 1 ORDER BY ");
  sql_ident_list(&q, key, nkey);
  buf_printf(&q, " LIMIT %zu", batch);
  rc = run_sql(c, &q, NULL);
  buf_free(&q);
  return rc;
}

static void batch_join(buf *q, char *const *key, size_t nkey) {
  size_t i;
  buf_puts(q, " JOIN nodup_batch AS b ON ");
  for (i = 0; i < nkey; i++) {
    if (i) buf_puts(q, " AND ");
    buf_puts(q, "b.");
    sql_ident(q, key[i]);
    buf_puts(q, " = x.");
    sql_ident(q, key[i]);
  }
}

static int ensure_archive(nodup_db *db) {
  return db->be->exec(db,
                      "CREATE TABLE IF NOT EXISTS nodup_archive (run TEXT NOT NULL, "
                      "tbl TEXT NOT NULL, pk TEXT NOT NULL, keeper TEXT NOT NULL, "
                      "row TEXT NOT NULL)");
}

/* One batch in one transaction: lock, map, merge, commit. *groups gets the
 * number of groups merged (0: nothing left). */
static int merge_batch(merge_ctx *c, const nodup_table_info *t, char *const *key, size_t nkey,
                       const char *where, const nodup_fk_info *extra, size_t nextra,
                       size_t batch, long long *groups) {
  nodup_db *db = c->db;
  const char *keep = c->opt->keep;
  buf q;
  size_t i;
  int rc;

  buf_init(&q);
  *groups = 0;
  if ((rc = batch_groups(c, t, key, nkey, where, batch)) != NODUP_OK) goto done;
  if (db->be->lock_rows[0]) {
    /* Keepers and losers locked in primary key order (no deadlock between
     * two merges), so no child row can be added to a loser between
     * re-pointing and deleting. */
    buf_printf(&q, "SELECT 1 FROM %s AS x", t->qualified);
    batch_join(&q, key, nkey);
    buf_puts(&q, " WHERE ");
    sql_key_filter(&q, key, nkey, where, 0, "x");
    buf_puts(&q, " ORDER BY ");
    for (i = 0; i < t->npk; i++) {
      buf_printf(&q, "%sx.", i ? ", " : "");
      sql_ident(&q, t->pk[i]);
    }
    buf_puts(&q, db->be->lock_rows);
    if ((rc = run_sql(c, &q, NULL)) != NODUP_OK) goto done;
  }
  buf_reset(&q);
  buf_puts(&q, "SELECT * FROM (SELECT ");
  for (i = 0; i < t->npk; i++) {
    buf_printf(&q, "%sx.", i ? ", " : "");
    sql_ident(&q, t->pk[i]);
    buf_printf(&q, " AS nodup_lp%zu, first_value(x.", i);
    sql_ident(&q, t->pk[i]);
    buf_printf(&q, ") OVER nodup_w AS nodup_kp%zu", i);
  }
  buf_printf(&q, ", row_number() OVER nodup_w AS nodup_rn FROM %s AS x", t->qualified);
  batch_join(&q, key, nkey);
  buf_puts(&q, " WHERE ");
  sql_key_filter(&q, key, nkey, where, 0, "x");
  buf_puts(&q, " WINDOW nodup_w AS (PARTITION BY ");
  for (i = 0; i < nkey; i++) {
    buf_printf(&q, "%sx.", i ? ", " : "");
    sql_ident(&q, key[i]);
  }
  buf_puts(&q, " ORDER BY ");
  if (keep && *keep) buf_printf(&q, "%s, ", keep);
  for (i = 0; i < t->npk; i++) {
    buf_printf(&q, "%sx.", i ? ", " : "");
    sql_ident(&q, t->pk[i]);
  }
  buf_puts(&q, ")) AS nodup_r WHERE nodup_rn > 1");
  if (q.oom) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  {
    /* How many groups this batch holds, for the report. */
    buf g;
    long long n = 0;
    buf_init(&g);
    buf_printf(&g, "SELECT count(DISTINCT nodup_kp0) FROM (%s) AS nodup_c", buf_str(&q));
    rc = g.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&g), NULL, 0, read_count, &n);
    buf_free(&g);
    if (rc != NODUP_OK) goto done;
    *groups = n;
    if (!n) goto done;
  }
  rc = merge_level(c, t, buf_str(&q), 0, extra, nextra);
done:
  if (rc == NODUP_OK) {
    buf_reset(&q);
    buf_puts(&q, "DROP TABLE nodup_batch");
    rc = run_sql(c, &q, NULL);
  }
  buf_free(&q);
  return rc;
}

int nodup_merge(nodup_merge_report **out, nodup_db *db, const char *table,
                const char *const *cols, size_t ncols, const char *where,
                const nodup_merge_options *opt) {
  nodup_merge_options none;
  nodup_merge_report *rep = NULL;
  nodup_table_info *t = NULL;
  nodup_fk_info *extra = NULL;
  size_t nextra = 0, i, batch;
  char **key = NULL;
  merge_ctx c;
  long long groups;
  int rc, in_txn = 0;

  if (!out) return NODUP_ERR_USAGE;
  *out = NULL;
  if (!db || !db->native || !table || !cols || !ncols)
    return db ? nodup_fail(db, NODUP_ERR_USAGE, "merge needs a table and key columns")
              : NODUP_ERR_USAGE;
  memset(&none, 0, sizeof none);
  if (!opt) opt = &none;
  if (where && !*where) where = NULL;
  batch = opt->batch ? opt->batch : MERGE_DEFAULT_BATCH;
  nodup_clear_error(db);
  if (db->be->in_transaction(db))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "merge runs its own transactions: call it outside one");

  if ((rc = db->be->table_info(db, table, &t)) != NODUP_OK) goto done;
  if (t->npk == 0) {
    rc = nodup_fail(db, NODUP_ERR_NO_PKEY, "table %s has no primary key to keep rows by",
                    t->qualified);
    goto done;
  }
  if (!(rep = calloc(1, sizeof *rep)) || !(extra = calloc(opt->nrefs + 1, sizeof *extra))) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  if ((rc = table_info_key(db, t, cols, ncols, &key, NULL)) != NODUP_OK) goto done;
  for (i = 0; i < opt->nrefs; i++) {
    rc = fk_parse_ref(db, t, opt->refs[i] ? opt->refs[i] : "", &extra[nextra]);
    nextra++;
    if (rc != NODUP_OK) goto done;
  }
  {
    /* Run ids sort by time and differ between processes. */
    static unsigned counter;
    snprintf(rep->run, sizeof rep->run, "%lld-%d-%u", (long long)time(NULL), (int)getpid(),
             counter++);
  }
  memset(&c, 0, sizeof c);
  c.db = db;
  c.opt = opt;
  c.rep = rep;
  if (!opt->no_archive && !opt->dry_run && (rc = ensure_archive(db)) != NODUP_OK) goto done;

  if (opt->dry_run) batch = (size_t)-1 / 2; /* one transaction for everything */
  for (;;) {
    if ((rc = db->be->exec(db, db->be->begin_write)) != NODUP_OK) goto done;
    in_txn = 1;
    /* A dry run archives too, into a table its rollback removes again. */
    if (opt->dry_run && !opt->no_archive && (rc = ensure_archive(db)) != NODUP_OK) goto done;
    rc = merge_batch(&c, t, key, ncols, where, extra, nextra, batch, &groups);
    if (rc != NODUP_OK) goto done;
    rep->groups += groups;
    if (groups) rep->batches++;
    if (opt->dry_run) break;
    if ((rc = db->be->exec(db, "COMMIT")) != NODUP_OK) goto done;
    in_txn = 0;
    if (!groups) break;
  }
done:
  if (in_txn) {
    /* Keep the failing statement's message, not the rollback's. */
    char *msg = nodup_strdup(nodup_errmsg(db));
    db->be->exec(db, "ROLLBACK");
    if (msg) {
      nodup_fail(db, rc, "%s", msg);
      free(msg);
    }
  }
  fk_info_free(extra, nextra);
  if (key)
    for (i = 0; i < ncols; i++) free(key[i]);
  free(key);
  table_info_free(t);
  if (rc == NODUP_OK) *out = rep;
  else nodup_merge_free(rep);
  return rc;
}

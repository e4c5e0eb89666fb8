/*
 * scan.c -- read-only report on a key's duplicates and on what merging them
 * would touch.
 *
 * Everything is set-based: one mapping of every redundant row ("loser") to
 * the row that would be kept ("keeper"), built with window functions, and
 * one statement per referencing table (and per unique index of it) on top.
 * The keeper is the first row by primary key, as `nodup merge` keeps by
 * default. References come from the catalog, never a hand list; callers
 * can add the ones the catalog cannot see (generic relations).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define SCAN_DEFAULT_LIMIT 10

void nodup_scan_free(nodup_scan_report *r) {
  size_t i;
  if (!r) return;
  strv_free(r->key, r->nkey);
  for (i = 0; i < r->nlargest; i++) strv_free(r->largest[i].values, r->nkey);
  free(r->largest);
  for (i = 0; i < r->nrefs; i++) {
    nodup_scan_ref *f = &r->refs[i];
    free(f->table);
    free(f->constraint);
    strv_free(f->cols, f->ncols);
    strv_free(f->ref_cols, f->ncols);
    free(f->collide_index);
    free(f->table_schema);
    free(f->table_name);
  }
  free(r->refs);
  free(r);
}

/* WITH nodup_map: one row per loser with its referenced columns
 * (nodup_r1..) and its keeper's (nodup_k1..). */
static void mapping_cte(buf *q, const nodup_table_info *t, char **key, size_t nkey,
                        const char *where, int nulls_equal, char **refcols, size_t nref) {
  size_t i;
  buf_puts(q, "WITH nodup_ranked AS (SELECT ");
  for (i = 0; i < nref; i++) {
    sql_ident(q, refcols[i]);
    buf_printf(q, " AS nodup_r%zu, first_value(", i + 1);
    sql_ident(q, refcols[i]);
    buf_printf(q, ") OVER nodup_w AS nodup_k%zu, ", i + 1);
  }
  buf_printf(q, "row_number() OVER nodup_w AS nodup_rn FROM %s", t->qualified);
  buf_puts(q, " WHERE ");
  sql_key_filter(q, key, nkey, where, nulls_equal, NULL);
  buf_puts(q, " WINDOW nodup_w AS (PARTITION BY ");
  sql_ident_list(q, key, nkey);
  buf_puts(q, " ORDER BY ");
  sql_ident_list(q, t->pk, t->npk);
  buf_puts(q, ")), nodup_map AS (SELECT * FROM nodup_ranked WHERE nodup_rn > 1) ");
}

typedef struct ll2 {
  long long a, b;
} ll2;

static int read_ll2(void *ctx, int n, const char *const *v) {
  ll2 *r = ctx;
  r->a = v[0] ? atoll(v[0]) : 0;
  r->b = n > 1 && v[1] ? atoll(v[1]) : 0;
  return 1;
}

typedef struct groups_ctx {
  nodup_scan_report *r;
  int oom;
} groups_ctx;

static int read_group(void *ctx, int n, const char *const *v) {
  groups_ctx *g = ctx;
  nodup_scan_report *r = g->r;
  nodup_scan_group *grp = &r->largest[r->nlargest];
  size_t i;
  (void)n;
  grp->values = calloc(r->nkey, sizeof *grp->values);
  if (!grp->values) return g->oom = 1;
  r->nlargest++;
  for (i = 0; i < r->nkey; i++)
    if (v[i] && !(grp->values[i] = nodup_strdup(v[i]))) return g->oom = 1;
  grp->rows = atoll(v[r->nkey]);
  return 0;
}

static int index_covers(const nodup_db *db, const nodup_table_info *child,
                        const nodup_index_info *ix, char **cols, size_t n, int *exact) {
  size_t i, j, hit = 0;
  for (i = 0; i < ix->ncols; i++)
    if (!ix->cols[i]) return 0; /* expression index: cannot reason about it */
  for (i = 0; i < n; i++)
    for (j = 0; j < ix->ncols; j++)
      if (table_info_column(db, child, cols[i]) == table_info_column(db, child, ix->cols[j])) {
        hit++;
        break;
      }
  *exact = hit == n && ix->ncols == n;
  return hit == n;
}

/* Rows of `child` pointing at losers, and the collisions re-pointing them
 * would cause in each unique index of `child` that contains the FK. */
static int scan_reference(nodup_db *db, const nodup_table_info *t, char **key, size_t nkey,
                          const char *where, int nulls_equal, nodup_scan_ref *ref,
                          const char *lookup) {
  nodup_table_info *child = NULL;
  buf q, cte;
  ll2 res = {0, 0};
  size_t i, j;
  int rc, exact;

  buf_init(&q);
  buf_init(&cte);
  mapping_cte(&cte, t, key, nkey, where, nulls_equal, ref->ref_cols, ref->ncols);
  buf_printf(&q, "%sSELECT count(*) FROM %s AS c JOIN nodup_map AS m ON ", buf_str(&cte),
             ref->table);
  for (i = 0; i < ref->ncols; i++) {
    if (i) buf_puts(&q, " AND ");
    buf_puts(&q, "c.");
    sql_ident(&q, ref->cols[i]);
    buf_printf(&q, " = m.nodup_r%zu", i + 1);
  }
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, read_ll2, &res);
  if (rc != NODUP_OK) goto done;
  ref->repoint = res.a;
  if (ref->repoint == 0 && !ref->declared) goto done;

  /* The referencing table's own unique indexes decide what collides. */
  rc = db->be->table_info(db, lookup, &child);
  if (rc != NODUP_OK) goto done;
  for (i = 0; i < child->nidx; i++) {
    const nodup_index_info *ix = &child->idx[i];
    if (!index_covers(db, child, ix, ref->cols, ref->ncols, &exact)) continue;
    if (exact) ref->one_to_one = 1;
    if (ref->repoint == 0) continue;
    buf_reset(&q);
    buf_printf(&q, "%sSELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM (SELECT ",
               buf_str(&cte));
    for (j = 0; j < ix->ncols; j++) {
      size_t f;
      int is_fk = -1;
      for (f = 0; f < ref->ncols; f++)
        if (table_info_column(db, child, ix->cols[j]) == table_info_column(db, child, ref->cols[f]))
          is_fk = (int)f;
      if (j) buf_puts(&q, ", ");
      if (is_fk >= 0) {
        buf_printf(&q, "coalesce(m.nodup_k%d, c.", is_fk + 1);
        sql_ident(&q, ix->cols[j]);
        buf_putc(&q, ')');
      } else {
        buf_puts(&q, "c.");
        sql_ident(&q, ix->cols[j]);
      }
      buf_printf(&q, " AS nodup_c%zu", j + 1);
    }
    buf_printf(&q, " FROM %s AS c LEFT JOIN nodup_map AS m ON ", child->qualified);
    for (j = 0; j < ref->ncols; j++) {
      if (j) buf_puts(&q, " AND ");
      buf_puts(&q, "c.");
      sql_ident(&q, ref->cols[j]);
      buf_printf(&q, " = m.nodup_r%zu", j + 1);
    }
    buf_puts(&q, " WHERE 1 = 1");
    for (j = 0; j < ix->ncols && !ix->nulls_equal; j++) {
      buf_puts(&q, " AND c.");
      sql_ident(&q, ix->cols[j]);
      buf_puts(&q, " IS NOT NULL");
    }
    if (ix->predicate) buf_printf(&q, " AND (%s)", ix->predicate);
    buf_puts(&q, ") AS nodup_img GROUP BY ");
    for (j = 0; j < ix->ncols; j++) buf_printf(&q, "%snodup_c%zu", j ? ", " : "", j + 1);
    buf_puts(&q, " HAVING count(*) > 1) AS nodup_g");
    res.a = 0;
    rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, read_ll2, &res);
    if (rc != NODUP_OK) goto done;
    if (res.a > ref->collide) {
      ref->collide = res.a;
      free(ref->collide_index);
      if (!(ref->collide_index = nodup_strdup(ix->name))) {
        rc = NODUP_ERR_NOMEM;
        goto done;
      }
    }
  }
done:
  table_info_free(child);
  buf_free(&q);
  buf_free(&cte);
  return rc;
}

/* Copy a foreign key into the report. */
static int add_ref(nodup_db *db, nodup_scan_report *r, const nodup_fk_info *fk, int declared) {
  nodup_scan_ref *f = &r->refs[r->nrefs];
  nodup_table_info *child = NULL;
  size_t i;
  int rc;
  memset(f, 0, sizeof *f);
  rc = db->be->table_info(db, fk->table, &child);
  if (rc != NODUP_OK) return rc;
  r->nrefs++;
  f->declared = declared;
  f->on_delete = fk->on_delete;
  f->table = nodup_strdup(child->qualified);
  f->table_name = nodup_strdup(child->name);
  f->table_schema = child->schema ? nodup_strdup(child->schema) : NULL;
  f->constraint = declared ? nodup_strdup(fk->name) : NULL;
  f->ncols = fk->ncols;
  f->cols = calloc(fk->ncols, sizeof *f->cols);
  f->ref_cols = calloc(fk->ncols, sizeof *f->ref_cols);
  if (!f->table || !f->table_name || (child->schema && !f->table_schema) ||
      (declared && !f->constraint) || !f->cols || !f->ref_cols)
    rc = NODUP_ERR_NOMEM;
  for (i = 0; rc == NODUP_OK && i < fk->ncols; i++) {
    int c = table_info_column(db, child, fk->cols[i]);
    if (c < 0) {
      rc = nodup_fail(db, NODUP_ERR_NO_COLUMN, "table %s has no column \"%s\"",
                      child->qualified, fk->cols[i]);
      break;
    }
    f->cols[i] = nodup_strdup(child->cols[c]);
    f->ref_cols[i] = nodup_strdup(fk->refcols[i]);
    if (!f->cols[i] || !f->ref_cols[i]) rc = NODUP_ERR_NOMEM;
  }
  table_info_free(child);
  return rc;
}

int nodup_scan(nodup_scan_report **out, nodup_db *db, const char *table,
               const char *const *cols, size_t ncols, const char *where,
               const nodup_scan_options *opt) {
  nodup_scan_options none = {0, 0, NULL, 0};
  nodup_scan_report *r = NULL;
  nodup_table_info *t = NULL;
  nodup_fk_info *fks = NULL, extra;
  char **lookup = NULL;     /* each reference's table, as table_info takes it */
  size_t nfks = 0, i, limit;
  groups_ctx g;
  buf q;
  ll2 tot = {0, 0};
  int rc;

  if (!out) return NODUP_ERR_USAGE;
  *out = NULL;
  if (!db || !db->native || !table || !cols || !ncols)
    return db ? nodup_fail(db, NODUP_ERR_USAGE, "scan needs a table and key columns")
              : NODUP_ERR_USAGE;
  if (!opt) opt = &none;
  if (where && !*where) where = NULL;
  limit = opt->limit ? opt->limit : SCAN_DEFAULT_LIMIT;
  nodup_clear_error(db);
  buf_init(&q);
  memset(&extra, 0, sizeof extra);

  if ((rc = db->be->table_info(db, table, &t)) != NODUP_OK) goto done;
  if (!(r = calloc(1, sizeof *r))) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  if ((rc = table_info_key(db, t, cols, ncols, &r->key, NULL)) != NODUP_OK) goto done;
  r->nkey = ncols;
  if ((rc = userexpr_check(db, t, where, 0, "--where")) != NODUP_OK) goto done;
  if (t->npk == 0) {
    rc = nodup_fail(db, NODUP_ERR_NO_PKEY, "table %s has no primary key to keep rows by",
                    t->qualified);
    goto done;
  }

  /* Totals and the largest groups. */
  buf_puts(&q, "SELECT count(*), coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM ");
  buf_puts(&q, t->qualified);
  buf_puts(&q, " WHERE ");
  sql_key_filter(&q, r->key, r->nkey, where, opt->nulls_equal, NULL);
  buf_puts(&q, " GROUP BY ");
  sql_ident_list(&q, r->key, r->nkey);
  buf_puts(&q, " HAVING count(*) > 1) AS nodup_g");
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, read_ll2, &tot);
  if (rc != NODUP_OK) goto done;
  r->groups = tot.a;
  r->redundant = tot.b;

  r->largest = calloc(limit, sizeof *r->largest);
  if (!r->largest) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  buf_reset(&q);
  buf_puts(&q, "SELECT ");
  sql_ident_list(&q, r->key, r->nkey);
  buf_printf(&q, ", count(*) FROM %s", t->qualified);
  buf_puts(&q, " WHERE ");
  sql_key_filter(&q, r->key, r->nkey, where, opt->nulls_equal, NULL);
  buf_puts(&q, " GROUP BY ");
  sql_ident_list(&q, r->key, r->nkey);
  buf_puts(&q, " HAVING count(*) > 1 ORDER BY count(*) DESC, ");
  sql_ident_list(&q, r->key, r->nkey);
  buf_printf(&q, " LIMIT %zu", limit);
  g.r = r;
  g.oom = 0;
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, read_group, &g);
  if (rc == NODUP_OK && g.oom) rc = NODUP_ERR_NOMEM;
  if (rc != NODUP_OK) goto done;

  /* References: the catalog's, then the caller's. */
  if ((rc = db->be->references(db, t, &fks, &nfks)) != NODUP_OK) goto done;
  r->refs = calloc(nfks + opt->nrefs + 1, sizeof *r->refs);
  lookup = calloc(nfks + opt->nrefs + 1, sizeof *lookup);
  if (!r->refs || !lookup) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  for (i = 0; i < nfks; i++) {
    if ((rc = add_ref(db, r, &fks[i], 1)) != NODUP_OK) goto done;
    lookup[r->nrefs - 1] = fks[i].table;  /* borrowed from fks */
  }
  for (i = 0; i < opt->nrefs; i++) {
    rc = fk_parse_ref(db, t, opt->refs[i] ? opt->refs[i] : "", &extra);
    if (rc == NODUP_OK) rc = add_ref(db, r, &extra, 0);
    if (rc == NODUP_OK && !(lookup[r->nrefs - 1] = nodup_strdup(extra.table)))
      rc = NODUP_ERR_NOMEM;
    free(extra.name);
    free(extra.table);
    strv_free(extra.cols, extra.ncols);
    strv_free(extra.refcols, extra.ncols);
    memset(&extra, 0, sizeof extra);
    if (rc != NODUP_OK) goto done;
  }
  for (i = 0; i < r->nrefs; i++) {
    rc = scan_reference(db, t, r->key, r->nkey, where, opt->nulls_equal, &r->refs[i],
                        lookup[i]);
    if (rc != NODUP_OK) goto done;
  }
done:
  if (lookup && r)
    for (i = nfks; i < r->nrefs; i++) free(lookup[i]);
  free(lookup);
  fk_info_free(fks, nfks);
  table_info_free(t);
  buf_free(&q);
  if (rc == NODUP_OK) *out = r;
  else nodup_scan_free(r);
  return rc;
}

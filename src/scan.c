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

static void scan_ref_clear(nodup_scan_ref *f) {
  free(f->table);
  free(f->constraint);
  strv_free(f->cols, f->ncols);
  strv_free(f->ref_cols, f->ncols);
  free(f->collide_index);
  free(f->table_schema);
  free(f->table_name);
  free(f->inferred_from);
  free(f->condition);
  memset(f, 0, sizeof *f);
}

void nodup_scan_free(nodup_scan_report *r) {
  size_t i;
  if (!r) return;
  strv_free(r->key, r->nkey);
  for (i = 0; i < r->nlargest; i++) strv_free(r->largest[i].values, r->nkey);
  free(r->largest);
  for (i = 0; i < r->nrefs; i++) scan_ref_clear(&r->refs[i]);
  free(r->refs);
  suspect_free(r->suspects, r->nsuspects);
  free(r);
}

/* WITH nodup_map: one row per loser with its referenced columns
 * (nodup_r1..) and its keeper's (nodup_k1..). */
void scan_mapping_cte(buf *q, const nodup_table_info *t, char *const *key, size_t nkey,
                      const char *where, int nulls_equal, const char *keep,
                      char *const *refcols, size_t nref) {
  size_t i;
  buf_puts(q, "WITH nodup_ranked AS (SELECT ");
  for (i = 0; i < nref; i++) {
    sql_ident(q, refcols[i]);
    buf_printf(q, " AS nodup_r%zu, first_value(", i + 1);
    sql_ident(q, refcols[i]);
    buf_printf(q, ") OVER nodup_w AS nodup_k%zu, ", i + 1);
  }
  /* Aliased x as in merge, where --where and --keep were checked. */
  buf_printf(q, "row_number() OVER nodup_w AS nodup_rn FROM %s AS x", t->qualified);
  buf_puts(q, " WHERE ");
  sql_key_filter(q, key, nkey, where, nulls_equal, NULL);
  buf_puts(q, " WINDOW nodup_w AS (PARTITION BY ");
  sql_ident_list(q, key, nkey);
  buf_puts(q, " ORDER BY ");
  /* merge's order: --keep first (checked by userexpr_check), then the
   * primary key, so both name the same losers. */
  if (keep && *keep) buf_printf(q, "%s, ", keep);
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
  scan_mapping_cte(&cte, t, key, nkey, where, nulls_equal, NULL, ref->ref_cols, ref->ncols);
  buf_printf(&q, "%sSELECT count(*) FROM %s AS c JOIN nodup_map AS m ON ", buf_str(&cte),
             ref->table);
  for (i = 0; i < ref->ncols; i++) {
    if (i) buf_puts(&q, " AND ");
    buf_puts(&q, "c.");
    sql_ident(&q, ref->cols[i]);
    buf_printf(&q, " = m.nodup_r%zu", i + 1);
  }
  /* A user reference's condition names its columns bare: here they can
   * only be c's (the mapping's columns are all nodup_*). */
  if (ref->condition) buf_printf(&q, " AND (%s)", ref->condition);
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, read_ll2, &res);
  if (rc != NODUP_OK) goto done;
  ref->repoint = res.a;
  if (ref->repoint == 0 && !ref->declared && !ref->inferred) goto done;

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
    /* Rows outside a reference's condition are not re-pointed: they keep
     * their value in the image. */
    if (ref->condition) buf_printf(&q, " AND (%s)", ref->condition);
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

/* Copy a foreign key into the report: declared (from the catalog, where an
 * inferred one is not declared) or the caller's. */
static int add_ref(nodup_db *db, nodup_scan_report *r, const nodup_fk_info *fk, int declared) {
  nodup_scan_ref *f = &r->refs[r->nrefs];
  nodup_table_info *child = NULL;
  size_t i;
  int rc;
  memset(f, 0, sizeof *f);
  rc = db->be->table_info(db, fk->table, &child);
  if (rc != NODUP_OK) return rc;
  r->nrefs++;
  f->inferred = declared && fk->inferred;
  f->declared = declared && !fk->inferred;
  f->on_delete = fk->on_delete;
  if (f->inferred && !(f->inferred_from = nodup_strdup(fk->name))) rc = NODUP_ERR_NOMEM;
  if (fk->where && !(f->condition = nodup_strdup(fk->where))) rc = NODUP_ERR_NOMEM;
  f->table = nodup_strdup(child->qualified);
  f->table_name = nodup_strdup(child->name);
  f->table_schema = child->schema ? nodup_strdup(child->schema) : NULL;
  f->constraint = f->declared ? nodup_strdup(fk->name) : NULL;
  f->ncols = fk->ncols;
  f->cols = calloc(fk->ncols, sizeof *f->cols);
  f->ref_cols = calloc(fk->ncols, sizeof *f->ref_cols);
  if (!f->table || !f->table_name || (child->schema && !f->table_schema) ||
      (f->declared && !f->constraint) || !f->cols || !f->ref_cols)
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

/* 1 when the last reference of r repeats an earlier one of the catalog:
 * same table, columns, referenced columns, and no condition. */
static int ref_known(const nodup_db *db, const nodup_scan_report *r) {
  const nodup_scan_ref *last = &r->refs[r->nrefs - 1];
  int fold = db_can(db, BE_CAP_FOLDS_NAMES);
  size_t i, j;
  if (last->condition) return 0;
  for (i = 0; i + 1 < r->nrefs; i++) {
    const nodup_scan_ref *f = &r->refs[i];
    int same = (f->declared || f->inferred) && f->ncols == last->ncols &&
               !strcmp(f->table, last->table);
    for (j = 0; same && j < f->ncols; j++)
      same = fold ? !strcasecmp(f->cols[j], last->cols[j]) &&
                        !strcasecmp(f->ref_cols[j], last->ref_cols[j])
                  : !strcmp(f->cols[j], last->cols[j]) && !strcmp(f->ref_cols[j], last->ref_cols[j]);
    if (same) return 1;
  }
  return 0;
}

static void drop_last_ref(nodup_scan_report *r) { scan_ref_clear(&r->refs[--r->nrefs]); }

int nodup_scan(nodup_scan_report **out, nodup_db *db, const char *table,
               const char *const *cols, size_t ncols, const char *where,
               const nodup_scan_options *opt) {
  nodup_scan_options none;
  nodup_scan_report *r = NULL;
  nodup_table_info *t = NULL;
  nodup_fk_info *fks = NULL, *user = NULL;
  char **lookup = NULL;     /* each reference's table, as table_info takes it */
  size_t nfks = 0, nuser = 0, i, limit;
  groups_ctx g;
  buf q;
  ll2 tot = {0, 0};
  int rc;

  if (!out) return NODUP_ERR_USAGE;
  *out = NULL;
  if (!db || !db->native || !table || !cols || !ncols)
    return db ? nodup_fail(db, NODUP_ERR_USAGE, "scan needs a table and key columns")
              : NODUP_ERR_USAGE;
  memset(&none, 0, sizeof none);
  if (!opt) opt = &none;
  if (where && !*where) where = NULL;
  nodup_clear_error(db);
  if (options_check(db, opt->version, NODUP_SCAN_OPTIONS_VERSION, "nodup_scan_options"))
    return NODUP_ERR_USAGE;
  limit = opt->limit ? opt->limit : SCAN_DEFAULT_LIMIT;
  nodup_clear_error(db);
  buf_init(&q);

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
  if ((rc = enforce_leftovers_note(db, t, r->key, r->nkey, where, NODUP_OK)) != NODUP_OK) goto done;

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

  /* References: the catalog's (declared, and inferred partitions), then the
   * caller's. */
  if ((rc = db->be->references(db, t, &fks, &nfks)) != NODUP_OK) goto done;
  r->refs = calloc(nfks + opt->nrefs + 1, sizeof *r->refs);
  lookup = calloc(nfks + opt->nrefs + 1, sizeof *lookup);
  user = calloc(opt->nrefs + 1, sizeof *user);
  if (!r->refs || !lookup || !user) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  for (i = 0; i < nfks; i++) {
    if ((rc = add_ref(db, r, &fks[i], 1)) != NODUP_OK) goto done;
    lookup[r->nrefs - 1] = fks[i].table;  /* borrowed from fks */
  }
  for (i = 0; i < opt->nrefs; i++) {
    nodup_fk_info *u = &user[nuser++];
    if ((rc = fk_parse_ref(db, t, opt->refs[i] ? opt->refs[i] : "", u)) != NODUP_OK ||
        (rc = add_ref(db, r, u, 0)) != NODUP_OK)
      goto done;
    if (ref_known(db, r)) {
      /* The catalog has it already (an inferred partition the caller
       * named, say): counted once. */
      drop_last_ref(r);
      continue;
    }
    if (!(lookup[r->nrefs - 1] = nodup_strdup(u->table))) {
      rc = NODUP_ERR_NOMEM;
      goto done;
    }
  }
  for (i = 0; i < r->nrefs; i++) {
    rc = scan_reference(db, t, r->key, r->nkey, where, opt->nulls_equal, &r->refs[i],
                        lookup[i]);
    if (rc != NODUP_OK) goto done;
  }
  /* References with no index on their columns (fkindex.c): each deleted
   * loser would read the referencing table whole. */
  {
    fk_gap *gaps = NULL;
    size_t ngaps = 0, gi, j;
    rc = fkindex_plan(db, fks, nfks, user, nuser, &gaps, &ngaps);
    for (gi = 0; rc == NODUP_OK && gi < ngaps; gi++)
      for (i = 0; i < r->nrefs; i++) {
        nodup_scan_ref *f = &r->refs[i];
        if (strcmp(lookup[i], gaps[gi].table) || f->ncols != gaps[gi].ncols) continue;
        for (j = 0; j < f->ncols && !strcmp(f->cols[j], gaps[gi].cols[j]); j++)
          ;
        if (j < f->ncols) continue;
        f->unindexed = 1;
        f->unindexed_rows = gaps[gi].rows;
      }
    fkindex_free(gaps, ngaps);
    if (rc != NODUP_OK) goto done;
  }
  /* What no constraint declares: a merge refuses while one of these points
   * at a loser, so the scan shows it first, with the same count. */
  rc = suspect_find(db, t, r->key, r->nkey, fks, nfks, user, nuser, opt->ignore_refs,
                    opt->nignore_refs, &r->suspects, &r->nsuspects);
  if (rc == NODUP_OK)
    rc = suspect_count(db, t, r->key, r->nkey, where, opt->nulls_equal, NULL, r->suspects,
                       r->nsuspects);
done:
  if (lookup && r)
    for (i = nfks; i < r->nrefs; i++) free(lookup[i]);
  free(lookup);
  fk_info_free(fks, nfks);
  fk_info_free(user, nuser);
  table_info_free(t);
  buf_free(&q);
  if (rc == NODUP_OK) *out = r;
  else nodup_scan_free(r);
  return rc;
}

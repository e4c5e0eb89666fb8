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
static void mapping_cte(buf *q, const nodup_table_info *t, const key_term *key, size_t nkey,
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
  sql_key_rows(q, key, nkey, where, nulls_equal, NULL);
  buf_puts(q, " WINDOW nodup_w AS (PARTITION BY ");
  sql_key_list(q, key, nkey, NULL);
  buf_puts(q, " ORDER BY ");
  /* merge's order: --keep first (checked by userexpr_check), then the
   * primary key, so both name the same losers. */
  if (keep && *keep) buf_printf(q, "%s, ", keep);
  sql_ident_list(q, t->pk, t->npk);
  buf_puts(q, ")), nodup_map AS (SELECT * FROM nodup_ranked WHERE nodup_rn > 1) ");
}

/* mapping_cte() for a key held as column names (merge.c, suspect.c). */
void scan_mapping_cte(buf *q, const nodup_table_info *t, char *const *key, size_t nkey,
                      const char *where, int nulls_equal, const char *keep,
                      char *const *refcols, size_t nref) {
  key_term *terms = key_terms_of(key, nkey);
  if (!terms) {
    q->oom = 1;
    return;
  }
  mapping_cte(q, t, terms, nkey, where, nulls_equal, keep, refcols, nref);
  free(terms);
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

/* Run q (no parameters) and read its first row's two numbers into *res. */
static int query_ll2(nodup_db *db, const buf *q, ll2 *res) {
  res->a = res->b = 0;
  return q->oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(q), NULL, 0, read_ll2, res);
}

/* Everything one nodup_scan() call holds. */
typedef struct scan_ctx {
  nodup_db *db;
  const nodup_scan_options *opt;
  const char *where;
  nodup_table_info *t;
  nodup_scan_report *r;
  key_term *key;            /* r->key as statements write it */
  nodup_fk_info *fks, *user;  /* the catalog's references, the caller's */
  size_t nfks, nuser;
  char **lookup;            /* each reference's table, as table_info takes it */
} scan_ctx;

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

/* " c.col1 = m.nodup_r1 AND ... [AND (condition)]": the referencing rows
 * (c) joined to the loser they point at (m). A user reference's condition
 * names its columns bare: here they can only be c's (the mapping's
 * columns are all nodup_*); rows outside it are not re-pointed. */
static void join_map(buf *q, const nodup_scan_ref *ref) {
  size_t i;
  for (i = 0; i < ref->ncols; i++) {
    buf_puts(q, i ? " AND c." : "c.");
    sql_ident(q, ref->cols[i]);
    buf_printf(q, " = m.nodup_r%zu", i + 1);
  }
  if (ref->condition) buf_printf(q, " AND (%s)", ref->condition);
}

/* The image of index ix's columns once the reference is re-pointed: the
 * keeper's value (nodup_k) where the row points at a loser, else its own. */
static void collide_image(buf *q, const nodup_db *db, const nodup_table_info *child,
                          const nodup_index_info *ix, const nodup_scan_ref *ref) {
  size_t j, f;
  for (j = 0; j < ix->ncols; j++) {
    int is_fk = -1;
    for (f = 0; f < ref->ncols; f++)
      if (table_info_column(db, child, ix->cols[j]) == table_info_column(db, child, ref->cols[f]))
        is_fk = (int)f;
    if (j) buf_puts(q, ", ");
    if (is_fk >= 0) buf_printf(q, "coalesce(m.nodup_k%d, ", is_fk + 1);
    buf_puts(q, "c.");
    sql_ident(q, ix->cols[j]);
    if (is_fk >= 0) buf_putc(q, ')');
    buf_printf(q, " AS nodup_c%zu", j + 1);
  }
}

/* How many rows of `child` would collide in its unique index ix once
 * re-pointed: the surplus of each group of equal images. */
static int collide_count(nodup_db *db, const char *cte, const nodup_table_info *child,
                         const nodup_index_info *ix, const nodup_scan_ref *ref, long long *n) {
  buf q;
  ll2 res;
  size_t j;
  int rc;
  buf_init(&q);
  buf_printf(&q, "%sSELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM (SELECT ",
             cte);
  collide_image(&q, db, child, ix, ref);
  buf_printf(&q, " FROM %s AS c LEFT JOIN nodup_map AS m ON ", child->qualified);
  join_map(&q, ref);
  buf_puts(&q, " WHERE ");
  sql_index_rows(&q, ix, "c");
  buf_puts(&q, ") AS nodup_img GROUP BY ");
  for (j = 0; j < ix->ncols; j++) buf_printf(&q, "%snodup_c%zu", j ? ", " : "", j + 1);
  buf_puts(&q, " HAVING count(*) > 1) AS nodup_g");
  rc = query_ll2(db, &q, &res);
  buf_free(&q);
  *n = res.a;
  return rc;
}

/* Rows of the reference's table pointing at losers, and the collisions
 * re-pointing them would cause in each unique index of that table that
 * contains the FK (the worst one is reported). */
static int scan_reference(scan_ctx *c, nodup_scan_ref *ref, const char *lookup) {
  nodup_db *db = c->db;
  nodup_table_info *child = NULL;
  buf q, cte;
  ll2 res;
  size_t i;
  int rc, exact;

  buf_init(&q);
  buf_init(&cte);
  mapping_cte(&cte, c->t, c->key, c->r->nkey, c->where, c->opt->nulls_equal, NULL,
              ref->ref_cols, ref->ncols);
  buf_printf(&q, "%sSELECT count(*) FROM %s AS c JOIN nodup_map AS m ON ", buf_str(&cte),
             ref->table);
  join_map(&q, ref);
  rc = query_ll2(db, &q, &res);
  if (rc != NODUP_OK) goto done;
  ref->repoint = res.a;
  if (ref->repoint == 0 && !ref->declared && !ref->inferred) goto done;

  /* The referencing table's own unique indexes decide what collides. */
  rc = db->be->table_info(db, lookup, &child);
  for (i = 0; rc == NODUP_OK && i < child->nidx; i++) {
    const nodup_index_info *ix = &child->idx[i];
    long long n;
    if (!index_covers(db, child, ix, ref->cols, ref->ncols, &exact)) continue;
    if (exact) ref->one_to_one = 1;
    if (ref->repoint == 0) continue;
    if ((rc = collide_count(db, buf_str(&cte), child, ix, ref, &n)) != NODUP_OK) break;
    if (n > ref->collide) {
      ref->collide = n;
      free(ref->collide_index);
      if (!(ref->collide_index = nodup_strdup(ix->name))) rc = NODUP_ERR_NOMEM;
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

/* The duplicate groups, the shape both group queries share: "SELECT
 * key..., count(*)" (list_key) or "SELECT count(*) AS n", then "FROM t
 * WHERE <rows the index constrains> GROUP BY key HAVING count(*) > 1". */
static void groups_sql(buf *q, const scan_ctx *c, int list_key) {
  buf_puts(q, "SELECT ");
  if (list_key) {
    sql_key_list(q, c->key, c->r->nkey, NULL);
    buf_puts(q, ", count(*)");
  } else {
    buf_puts(q, "count(*) AS n");
  }
  buf_printf(q, " FROM %s WHERE ", c->t->qualified);
  sql_key_rows(q, c->key, c->r->nkey, c->where, c->opt->nulls_equal, NULL);
  buf_puts(q, " GROUP BY ");
  sql_key_list(q, c->key, c->r->nkey, NULL);
  buf_puts(q, " HAVING count(*) > 1");
}

/* Totals (groups, redundant rows) and the `limit` largest groups. */
static int scan_groups(scan_ctx *c, size_t limit) {
  nodup_scan_report *r = c->r;
  groups_ctx g = {r, 0};
  ll2 tot;
  buf q;
  int rc;
  buf_init(&q);
  buf_puts(&q, "SELECT count(*), coalesce(sum(n - 1), 0) FROM (");
  groups_sql(&q, c, 0);
  buf_puts(&q, ") AS nodup_g");
  rc = query_ll2(c->db, &q, &tot);
  r->groups = tot.a;
  r->redundant = tot.b;
  if (rc == NODUP_OK && !(r->largest = calloc(limit, sizeof *r->largest)))
    rc = NODUP_ERR_NOMEM;
  buf_reset(&q);
  groups_sql(&q, c, 1);
  buf_puts(&q, " ORDER BY count(*) DESC, ");
  sql_key_list(&q, c->key, r->nkey, NULL);
  buf_printf(&q, " LIMIT %zu", limit);
  if (rc == NODUP_OK)
    rc = q.oom ? NODUP_ERR_NOMEM : c->db->be->query(c->db, buf_str(&q), NULL, 0, read_group, &g);
  if (rc == NODUP_OK && g.oom) rc = NODUP_ERR_NOMEM;
  buf_free(&q);
  return rc;
}

/* The references into the report: the catalog's (declared, and inferred
 * partitions), then the caller's, each once. */
static int collect_refs(scan_ctx *c) {
  nodup_db *db = c->db;
  nodup_scan_report *r = c->r;
  size_t i, nrefs = c->opt->nrefs;
  int rc;
  if ((rc = db->be->references(db, c->t, &c->fks, &c->nfks)) != NODUP_OK) return rc;
  r->refs = calloc(c->nfks + nrefs + 1, sizeof *r->refs);
  c->lookup = calloc(c->nfks + nrefs + 1, sizeof *c->lookup);
  c->user = calloc(nrefs + 1, sizeof *c->user);
  if (!r->refs || !c->lookup || !c->user) return NODUP_ERR_NOMEM;
  for (i = 0; i < c->nfks; i++) {
    if ((rc = add_ref(db, r, &c->fks[i], 1)) != NODUP_OK) return rc;
    c->lookup[r->nrefs - 1] = c->fks[i].table;  /* borrowed from fks */
  }
  for (i = 0; i < nrefs; i++) {
    nodup_fk_info *u = &c->user[c->nuser++];
    const char *spec = c->opt->refs[i] ? c->opt->refs[i] : "";
    if ((rc = fk_parse_ref(db, c->t, spec, u)) != NODUP_OK || (rc = add_ref(db, r, u, 0)) != NODUP_OK)
      return rc;
    if (ref_known(db, r)) {
      /* The catalog has it already (an inferred partition the caller
       * named, say): counted once. */
      drop_last_ref(r);
      continue;
    }
    if (!(c->lookup[r->nrefs - 1] = nodup_strdup(u->table))) return NODUP_ERR_NOMEM;
  }
  return NODUP_OK;
}

/* References with no index on their columns (fkindex.c): each deleted
 * loser would read the referencing table whole. */
static int mark_unindexed(scan_ctx *c) {
  nodup_scan_report *r = c->r;
  fk_gap *gaps = NULL;
  size_t ngaps = 0, gi, i, j;
  int rc = fkindex_plan(c->db, c->fks, c->nfks, c->user, c->nuser, &gaps, &ngaps);
  for (gi = 0; rc == NODUP_OK && gi < ngaps; gi++)
    for (i = 0; i < r->nrefs; i++) {
      nodup_scan_ref *f = &r->refs[i];
      if (strcmp(c->lookup[i], gaps[gi].table) || f->ncols != gaps[gi].ncols) continue;
      for (j = 0; j < f->ncols && !strcmp(f->cols[j], gaps[gi].cols[j]); j++)
        ;
      if (j < f->ncols) continue;
      f->unindexed = 1;
      f->unindexed_rows = gaps[gi].rows;
    }
  fkindex_free(gaps, ngaps);
  return rc;
}

/* The table and its key, checked: a primary key to keep rows by, a
 * --where that is one expression. */
static int scan_open(scan_ctx *c, const char *table, const char *const *cols, size_t ncols) {
  nodup_db *db = c->db;
  int rc;
  if ((rc = db->be->table_info(db, table, &c->t)) != NODUP_OK) return rc;
  if (!(c->r = calloc(1, sizeof *c->r))) return NODUP_ERR_NOMEM;
  if ((rc = table_info_key(db, c->t, cols, ncols, &c->r->key, NULL)) != NODUP_OK) return rc;
  c->r->nkey = ncols;
  if (!(c->key = key_terms_of(c->r->key, ncols))) return NODUP_ERR_NOMEM;
  if ((rc = userexpr_check(db, c->t, c->where, 0, "--where")) != NODUP_OK) return rc;
  if (c->t->npk == 0)
    return nodup_fail(db, NODUP_ERR_NO_PKEY, "table %s has no primary key to keep rows by",
                      c->t->qualified);
  return enforce_leftovers_note(db, c->t, c->r->key, c->r->nkey, c->where, NODUP_OK);
}

int nodup_scan(nodup_scan_report **out, nodup_db *db, const char *table,
               const char *const *cols, size_t ncols, const char *where,
               const nodup_scan_options *opt) {
  static const nodup_scan_options defaults;  /* zeroed: version 1, every default */
  scan_ctx c;
  nodup_scan_report *r;
  size_t i;
  int rc;

  if (!out) return NODUP_ERR_USAGE;
  *out = NULL;
  rc = key_args_check(db, table, cols, ncols, "scan needs a table and key columns");
  if (rc != NODUP_OK) return rc;
  if (!opt) opt = &defaults;
  nodup_clear_error(db);
  if (options_check(db, opt->version, NODUP_SCAN_OPTIONS_VERSION, "nodup_scan_options"))
    return NODUP_ERR_USAGE;
  nodup_clear_error(db);
  memset(&c, 0, sizeof c);
  c.db = db;
  c.opt = opt;
  c.where = where && *where ? where : NULL;

  rc = scan_open(&c, table, cols, ncols);
  if (rc == NODUP_OK) rc = scan_groups(&c, opt->limit ? opt->limit : SCAN_DEFAULT_LIMIT);
  if (rc == NODUP_OK) rc = collect_refs(&c);
  r = c.r;
  for (i = 0; rc == NODUP_OK && i < r->nrefs; i++)
    rc = scan_reference(&c, &r->refs[i], c.lookup[i]);
  if (rc == NODUP_OK) rc = mark_unindexed(&c);
  /* What no constraint declares: a merge refuses while one of these points
   * at a loser, so the scan shows it first, with the same count. */
  if (rc == NODUP_OK)
    rc = suspect_find(db, c.t, r->key, r->nkey, c.fks, c.nfks, c.user, c.nuser,
                      opt->ignore_refs, opt->nignore_refs, &r->suspects, &r->nsuspects);
  if (rc == NODUP_OK)
    rc = suspect_count(db, c.t, r->key, r->nkey, c.where, opt->nulls_equal, NULL, r->suspects,
                       r->nsuspects);
  if (c.lookup && r)
    for (i = c.nfks; i < r->nrefs; i++) free(c.lookup[i]);
  free(c.lookup);
  free(c.key);
  fk_info_free(c.fks, c.nfks);
  fk_info_free(c.user, c.nuser);
  table_info_free(c.t);
  if (rc == NODUP_OK) *out = r;
  else nodup_scan_free(r);
  return rc;
}

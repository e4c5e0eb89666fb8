/*
 * merge_survive.c -- which values the kept rows end with, and what went.
 *
 * survive.c parses the policies ("[TABLE.]COL=POLICY") before a merge
 * writes anything; here a level applies them: each policy column's
 * surviving value is computed over the group's members (the keeper, rank
 * 0, and its losers) before the losers are deleted, and written to the
 * keepers after. Rows merged below the merged table (collisions) are
 * compared with their survivor first, so the report says, per column, how
 * many held something else.
 */
#include <stdlib.h>
#include <string.h>

#include "merge_int.h"

/* "a IS DISTINCT FROM b" in the engine's words (the backend's
 * distinct_fmt). */
static void distinct_expr(buf *q, const nodup_db *db, const char *a, const char *b) {
  buf_printf(q, db->be->distinct_fmt, a, b);
}

/* "s.nodup_c<i>" or "k.col": a column of x for an expression. */
static void col_sql(buf *q, const char *a, const nodup_table_info *x, size_t i, int member) {
  if (member) {
    buf_printf(q, "%s.nodup_c%zu", a, i);
  } else {
    buf_printf(q, "%s.", a);
    sql_ident(q, x->cols[i]);
  }
}

/* Whether column i of x is one no policy changes and no count compares:
 * the primary key or one of `fixed` (the merge key, the colliding index). */
static int fixed_column(const nodup_db *db, const nodup_table_info *x, size_t i,
                        char *const *fixed, size_t nfixed) {
  size_t j;
  for (j = 0; j < x->npk; j++)
    if (merge_col(db, x, x->pk[j]) == (int)i) return 1;
  for (j = 0; j < nfixed; j++)
    if (fixed[j] && merge_col(db, x, fixed[j]) == (int)i) return 1;
  return 0;
}

/* A level's survivorship: per column of x that a policy may change (not
 * the primary key, not `fixed`), its policy: the column's rule, else
 * first-non-null for a nullable one if `fill`. pol[i] is -1 for columns
 * left as the kept row has them; ord[i] the newest policy's column. *n
 * gets how many columns a policy changes. */
int merge_policies(merge_ctx *c, const nodup_table_info *x, int fill, char *const *fixed,
                   size_t nfixed, int **pol, int **ord, size_t *n) {
  nodup_db *db = c->db;
  size_t i;
  *n = 0;
  *pol = malloc((x->ncols + 1) * sizeof **pol);
  *ord = malloc((x->ncols + 1) * sizeof **ord);
  if (!*pol || !*ord) return NODUP_ERR_NOMEM;
  for (i = 0; i < x->ncols; i++) {
    const survive_rule *r = survive_find(c->rules, c->nrules, x, x->cols[i]);
    (*pol)[i] = fixed_column(db, x, i, fixed, nfixed) ? -1
                : r                                   ? r->policy
                : fill && !x->notnull[i]              ? SURVIVE_FIRST_NON_NULL
                                                      : -1;
    if ((*pol)[i] == SURVIVE_KEEPER) (*pol)[i] = -1;
    (*ord)[i] = r && r->order ? table_info_column(db, x, r->order) : -1;
    if ((*pol)[i] >= 0) (*n)++;
  }
  return NODUP_OK;
}

/* Survivorship, part 1, before the losers are deleted: for each keeper,
 * each policy column's surviving value among its members (the keeper,
 * rank 0, and its losers, by rank), into temp table f (nodup_k<pk>,
 * nodup_f<i> for column i). Only the batch's rows are read: the losers
 * through the mapping, the keepers by primary key. */
int merge_policies_collect(merge_ctx *c, const nodup_table_info *x, const char *m,
                           const char *f, const int *pol, const int *ord) {
  nodup_db *db = c->db;
  char *need = calloc(x->ncols + 1, 1);
  size_t i;
  buf q, part, v, o;
  int rc, keeper;
  if (!need) return NODUP_ERR_NOMEM;
  buf_init(&q);
  buf_init(&part);
  buf_init(&v);
  buf_init(&o);
  for (i = 0; i < x->ncols; i++)
    if (pol[i] >= 0) {
      need[i] = 1;
      if (ord[i] >= 0) need[ord[i]] = 1;
    }
  for (i = 0; i < x->npk; i++)
    buf_printf(&part, "%ss.nodup_k%d", i ? ", " : "", merge_col(db, x, x->pk[i]));
  buf_printf(&q, "CREATE TEMP TABLE %s AS SELECT * FROM (SELECT %s, s.nodup_rn", f,
             buf_str(&part));
  for (i = 0; i < x->ncols; i++) {
    if (pol[i] < 0) continue;
    buf_reset(&v);
    buf_reset(&o);
    col_sql(&v, "s", x, i, 1);
    if (ord[i] >= 0) col_sql(&o, "s", x, (size_t)ord[i], 1);
    buf_puts(&q, ", ");
    survive_expr(&q, pol[i], buf_str(&v), buf_str(&o), buf_str(&part));
    buf_printf(&q, " AS nodup_f%zu", i);
  }
  /* The members: losers (their rank) and keepers (rank 0). */
  for (keeper = 0; keeper < 2; keeper++) {
    buf_puts(&q, keeper ? " UNION ALL SELECT " : " FROM (SELECT ");
    for (i = 0; i < x->npk; i++)
      buf_printf(&q, "%sm.nodup_k%d", i ? ", " : "", merge_col(db, x, x->pk[i]));
    buf_puts(&q, keeper ? ", 0 AS nodup_rn" : ", m.nodup_rn");
    for (i = 0; i < x->ncols; i++) {
      if (!need[i]) continue;
      buf_puts(&q, ", l.");
      sql_ident(&q, x->cols[i]);
      buf_printf(&q, " AS nodup_c%zu", i);
    }
    if (keeper) {
      buf_puts(&q, " FROM (SELECT DISTINCT ");
      for (i = 0; i < x->npk; i++)
        buf_printf(&q, "%snodup_k%d", i ? ", " : "", merge_col(db, x, x->pk[i]));
      buf_printf(&q, " FROM %s) AS m JOIN %s AS l ON ", m, x->qualified);
      merge_pk_join(&q, db, x, "m", "k", "l");
    } else {
      buf_printf(&q, " FROM %s AS m JOIN %s AS l ON ", m, x->qualified);
      merge_pk_join(&q, db, x, "m", "l", "l");
    }
  }
  /* Every member's row carries its group's values: the keeper's is one. */
  buf_puts(&q, ") AS s) AS w WHERE nodup_rn = 0");
  if (part.oom || v.oom || o.oom) q.oom = 1;
  rc = merge_sql(c, &q, NULL);
  /* Analysed, so that the UPDATE joining it to x goes by primary key. */
  buf_reset(&q);
  buf_printf(&q, "ANALYZE %s", f);
  if (rc == NODUP_OK) rc = merge_sql(c, &q, NULL);
  buf_free(&o);
  buf_free(&v);
  buf_free(&part);
  buf_free(&q);
  free(need);
  return rc;
}

/* The kept value of policy column i (a: "k.col") and the chosen one (b:
 * "f.nodup_f<i>"). */
static void kept_and_chosen(buf *a, buf *b, const nodup_table_info *x, size_t i) {
  buf_reset(a);
  buf_reset(b);
  col_sql(a, "k", x, i, 0);
  buf_printf(b, "f.nodup_f%zu", i);
}

/* " WHERE k.pk = f.nodup_k<pk> AND (k.c IS DISTINCT FROM f.nodup_f<c> OR
 * ...)" into w: the keepers (alias k) whose value changes, f joined on
 * the primary key. *cols gets the policy columns' names (npol; strv_free). */
static int changed_keepers(const nodup_db *db, const nodup_table_info *x, const int *pol,
                           size_t npol, buf *w, char ***cols) {
  buf a, b;
  size_t i, n = 0;
  int rc = NODUP_OK;
  if (!(*cols = calloc(npol + 1, sizeof **cols))) return NODUP_ERR_NOMEM;
  buf_init(&a);
  buf_init(&b);
  for (i = 0; i < x->npk; i++) {
    buf_puts(w, i ? " AND k." : " WHERE k.");
    sql_ident(w, x->pk[i]);
    buf_printf(w, " = f.nodup_k%d", merge_col(db, x, x->pk[i]));
  }
  buf_puts(w, " AND (");
  for (i = 0; i < x->ncols && rc == NODUP_OK; i++) {
    if (pol[i] < 0) continue;
    if (!((*cols)[n] = nodup_strdup(x->cols[i]))) rc = NODUP_ERR_NOMEM;
    kept_and_chosen(&a, &b, x, i);
    if (n++) buf_puts(w, " OR ");
    distinct_expr(w, db, buf_str(&a), buf_str(&b));
  }
  buf_putc(w, ')');
  if (a.oom || b.oom || w->oom) rc = NODUP_ERR_NOMEM;
  buf_free(&b);
  buf_free(&a);
  return rc;
}

/* Survivorship, part 2, after the losers are gone (so no other unique
 * index trips on a value both hold): log the keepers whose values change,
 * as step kind 'fill' (undo sets them back), then set them. */
int merge_policies_apply(merge_ctx *c, const nodup_table_info *x, const char *tname,
                         const char *f, const int *pol, size_t npol) {
  nodup_db *db = c->db;
  nodup_merge_table *st;
  long long rows = 0;
  char **cols = NULL;
  buf q, w, a, b;
  size_t i, n = 0;
  int rc;
  buf_init(&q);
  buf_init(&w);
  buf_init(&a);
  buf_init(&b);
  if ((rc = changed_keepers(db, x, pol, npol, &w, &cols)) != NODUP_OK) goto done;
  if (c->log) {
    buf_printf(&q, "FROM %s AS k, %s AS f%s", x->qualified, f, buf_str(&w));
    rc = q.oom ? NODUP_ERR_NOMEM
               : merge_log_rows(c, "fill", tname, x, "k", NULL, cols, npol, buf_str(&q));
    if (rc != NODUP_OK) goto done;
  }
  /* A column whose value stays is set to itself, not to an equal value
   * spelled otherwise (1.0 for 1.00). */
  buf_reset(&q);
  buf_printf(&q, "UPDATE %s AS k SET ", x->qualified);
  for (i = 0; i < x->ncols; i++) {
    if (pol[i] < 0) continue;
    kept_and_chosen(&a, &b, x, i);
    if (n++) buf_puts(&q, ", ");
    sql_ident(&q, x->cols[i]);
    buf_puts(&q, " = CASE WHEN ");
    distinct_expr(&q, db, buf_str(&a), buf_str(&b));
    buf_printf(&q, " THEN %s ELSE %s END", buf_str(&b), buf_str(&a));
  }
  buf_printf(&q, " FROM %s AS f%s", f, buf_str(&w));
  if (a.oom || b.oom) q.oom = 1;
  if ((rc = merge_sql(c, &q, &rows)) != NODUP_OK) goto done;
  if (!(st = merge_stats(c, x))) rc = NODUP_ERR_NOMEM;
  else st->filled += rows;
done:
  strv_free(cols, npol);
  buf_free(&b);
  buf_free(&a);
  buf_free(&w);
  buf_free(&q);
  return rc;
}

typedef struct differed_read {
  long long *n;
  size_t count;
} differed_read;

static int read_differed(void *ctx, int n, const char *const *v) {
  differed_read *d = ctx;
  size_t i;
  for (i = 0; i < d->count && i < (size_t)n; i++) d->n[i] = v[i] ? atoll(v[i]) : 0;
  return 1;
}

/* Add `rows` to st's count of rows that differed in `column`. */
static int differed_add(nodup_merge_table *st, const char *column, long long rows) {
  nodup_merge_column *grown;
  size_t j;
  for (j = 0; j < st->ndiffered; j++)
    if (!strcmp(st->differed[j].column, column)) break;
  if (j == st->ndiffered) {
    if (!(grown = realloc(st->differed, (j + 1) * sizeof *grown))) return NODUP_ERR_NOMEM;
    st->differed = grown;
    grown[j].rows = 0;
    if (!(grown[j].column = nodup_strdup(column))) return NODUP_ERR_NOMEM;
    st->ndiffered++;
  }
  st->differed[j].rows += rows;
  return NODUP_OK;
}

/* Colliding rows about to be deleted into a surviving one (a level below
 * the merged table): per column outside the primary key and the colliding
 * index (`fixed`), how many held a value other than their survivor's,
 * before any policy runs. Added to x's report: content that would
 * otherwise go silently (the rows are archived, not their differences). */
int merge_differed(merge_ctx *c, const nodup_table_info *x, const char *m, char *const *fixed,
                   size_t nfixed) {
  nodup_db *db = c->db;
  nodup_merge_table *st;
  size_t *idx = calloc(x->ncols + 1, sizeof *idx), n = 0, i;
  long long *got = calloc(x->ncols + 1, sizeof *got);
  differed_read d;
  buf q, a, b;
  int rc = NODUP_OK;
  buf_init(&q);
  buf_init(&a);
  buf_init(&b);
  if (!idx || !got) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  for (i = 0; i < x->ncols; i++) {
    if (fixed_column(db, x, i, fixed, nfixed)) continue;
    buf_reset(&a);
    buf_reset(&b);
    col_sql(&a, "l", x, i, 0);
    col_sql(&b, "k", x, i, 0);
    buf_puts(&q, n ? ", " : "SELECT ");
    buf_puts(&q, "sum(CASE WHEN ");
    distinct_expr(&q, db, buf_str(&a), buf_str(&b));
    buf_puts(&q, " THEN 1 ELSE 0 END)");
    idx[n++] = i;
  }
  if (!n) goto done;
  buf_printf(&q, " FROM %s AS m JOIN %s AS l ON ", m, x->qualified);
  merge_pk_join(&q, db, x, "m", "l", "l");
  buf_printf(&q, " JOIN %s AS k ON ", x->qualified);
  merge_pk_join(&q, db, x, "m", "k", "k");
  if (a.oom || b.oom) q.oom = 1;
  d.n = got;
  d.count = n;
  if (q.oom) rc = NODUP_ERR_NOMEM;
  else rc = db->be->query(db, buf_str(&q), NULL, 0, read_differed, &d);
  if (rc != NODUP_OK) goto done;
  if (!(st = merge_stats(c, x))) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  for (i = 0; i < n && rc == NODUP_OK; i++)
    if (got[i]) rc = differed_add(st, x->cols[idx[i]], got[i]);
done:
  buf_free(&b);
  buf_free(&a);
  buf_free(&q);
  free(got);
  free(idx);
  return rc;
}

static int survive_lookup(void *ctx, const char *name, const nodup_table_info **out) {
  return merge_schema_table(ctx, name, out);
}

/* opt->columns, parsed and checked into c->rules before anything is
 * written. */
int merge_rules(merge_ctx *c, const nodup_table_info *t, char *const *key, size_t nkey,
                const nodup_fk_info *extra, size_t nextra) {
  char **reach = NULL;
  size_t nreach = 0;
  int rc;
  if (!c->opt->ncolumns) return NODUP_OK;
  if (!c->opt->columns)
    return nodup_fail(c->db, NODUP_ERR_USAGE, "ncolumns is %zu but columns is NULL",
                      c->opt->ncolumns);
  rc = merge_reach(c, t, extra, nextra, &reach, &nreach);
  if (rc == NODUP_OK)
    rc = survive_parse(c->db, t, key, nkey, c->opt->columns, c->opt->ncolumns, reach, nreach,
                       survive_lookup, c, &c->rules, &c->nrules);
  strv_free(reach, nreach);
  return rc;
}

/*
 * merge_plan.c -- what a merge reads once and the SQL its statements share.
 *
 * The schema (tables, who references them) is read from the catalog once
 * per run, not per batch. The fragments below are the pieces every level
 * joins with: the mapping's columns (nodup_l<i> / nodup_k<i>), primary
 * keys as text, the rows that reference a loser. Then the plan of a run:
 * its passes and batches of duplicate groups, the references it re-points
 * beyond the catalog's, the suspected ones it must refuse on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge_int.h"

/* The run's cached view of table `name` (borrowed until merge_schema_free). */
static int schema_entry_get(merge_ctx *c, const char *name, merge_schema_entry **out) {
  merge_schema_entry *e;
  size_t i;
  int rc;
  for (i = 0; i < c->nschema; i++)
    if (!strcmp(c->schema[i].name, name)) {
      *out = &c->schema[i];
      return NODUP_OK;
    }
  e = realloc(c->schema, (c->nschema + 1) * sizeof *e);
  if (!e) return NODUP_ERR_NOMEM;
  c->schema = e;
  e = &c->schema[c->nschema];
  memset(e, 0, sizeof *e);
  if (!(e->name = nodup_strdup(name))) return NODUP_ERR_NOMEM;
  if ((rc = c->db->be->table_info(c->db, name, &e->info)) != NODUP_OK) {
    free(e->name);
    return rc;
  }
  c->nschema++;
  *out = e;
  return NODUP_OK;
}

int merge_schema_table(merge_ctx *c, const char *name, const nodup_table_info **out) {
  merge_schema_entry *e;
  int rc = schema_entry_get(c, name, &e);
  *out = rc == NODUP_OK ? e->info : NULL;
  return rc;
}

/* The foreign keys that reference x, from the catalog, once per run. */
int merge_schema_references(merge_ctx *c, const nodup_table_info *x, const nodup_fk_info **fks,
                            size_t *n) {
  merge_schema_entry *e = NULL;
  size_t i;
  int rc;
  for (i = 0; i < c->nschema && !e; i++)
    if (c->schema[i].info == x) e = &c->schema[i];
  if (!e)
    return nodup_fail(c->db, NODUP_ERR_DB, "internal: %s not in the run's schema", x->qualified);
  if (!e->have_fks) {
    if ((rc = c->db->be->references(c->db, x, &e->fks, &e->nfks)) != NODUP_OK) return rc;
    e->have_fks = 1;
  }
  *fks = e->fks;
  *n = e->nfks;
  return NODUP_OK;
}

void merge_schema_free(merge_ctx *c) {
  size_t i;
  for (i = 0; i < c->nschema; i++) {
    free(c->schema[i].name);
    table_info_free(c->schema[i].info);
    fk_info_free(c->schema[i].fks, c->schema[i].nfks);
  }
  free(c->schema);
  c->schema = NULL;
  c->nschema = 0;
}

/* A column's position, naming the mapping's nodup_l<i>/nodup_k<i>. SQLite's
 * implicit rowid is not in the catalog's column list: it gets ncols. */
int merge_col(const nodup_db *db, const nodup_table_info *t, const char *name) {
  int i = table_info_column(db, t, name);
  return i >= 0 ? i : (int)t->ncols;
}

/* One statement, never a multi-statement exec: the text may carry the
 * user's --where or --keep (checked, userexpr.c; this is the second wall). */
int merge_sql(merge_ctx *c, buf *q, long long *rows) {
  if (q->oom) return NODUP_ERR_NOMEM;
  if (rows) return c->db->be->changes(c->db, buf_str(q), NULL, 0, rows);
  return c->db->be->query(c->db, buf_str(q), NULL, 0, NULL, NULL);
}

/* Primary key columns of t as text joined by ',' for alias a. */
void merge_pk_text(buf *q, const nodup_table_info *t, const char *a) {
  size_t i;
  for (i = 0; i < t->npk; i++) {
    if (i) buf_puts(q, " || ',' || ");
    buf_printf(q, "CAST(%s.", a);
    sql_ident(q, t->pk[i]);
    buf_puts(q, " AS TEXT)");
  }
}

/* "m.nodup_l3 = x.col" for the primary key, joined by AND. */
void merge_pk_join(buf *q, const nodup_db *db, const nodup_table_info *t, const char *m,
                   const char *which, const char *a) {
  size_t i;
  for (i = 0; i < t->npk; i++) {
    if (i) buf_puts(q, " AND ");
    buf_printf(q, "%s.nodup_%s%d = %s.", m, which, merge_col(db, t, t->pk[i]), a);
    sql_ident(q, t->pk[i]);
  }
}

/* " AND (cond)" for a user reference "T(C) WHERE cond": only those rows of
 * T reference X, in every statement that re-points, logs, checks or merges
 * them. cond names T's columns bare (userexpr_check proved it one
 * expression on T); every statement here aliases T as c and the others it
 * joins (mappings) have only nodup_* columns, so the names are c's. */
void merge_fk_condition(buf *q, const nodup_fk_info *fk) {
  if (fk->where) buf_printf(q, " AND (%s)", fk->where);
}

/* "c.fk1 = m.nodup_l3 AND ...": child rows (alias c) that reference a
 * loser of mapping m (of table x) through fk. */
void merge_fk_on_losers(buf *q, const nodup_db *db, const nodup_table_info *x,
                        const nodup_fk_info *fk) {
  size_t i;
  for (i = 0; i < fk->ncols; i++) {
    if (i) buf_puts(q, " AND ");
    buf_puts(q, "c.");
    sql_ident(q, fk->cols[i]);
    buf_printf(q, " = m.nodup_l%d", merge_col(db, x, fk->refcols[i]));
  }
  merge_fk_condition(q, fk);
}

/* *n: how many rows of child reference a loser of mapping m through fk
 * (the one-to-one check before a re-point, the check after it). */
int merge_count_on_losers(merge_ctx *c, const nodup_table_info *x, const char *m,
                          const nodup_table_info *child, const nodup_fk_info *fk, long long *n) {
  nodup_db *db = c->db;
  buf q;
  int rc;
  *n = 0;
  buf_init(&q);
  buf_printf(&q, "SELECT count(*) FROM %s AS c JOIN %s AS m ON ", child->qualified, m);
  merge_fk_on_losers(&q, db, x, fk);
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, db_read_count, n);
  buf_free(&q);
  return rc;
}

/* The position in fk of child's column `col` (-1: fk does not hold it). */
int merge_fk_position(const nodup_db *db, const nodup_table_info *child, const nodup_fk_info *fk,
                      const char *col) {
  size_t k;
  for (k = 0; k < fk->ncols; k++)
    if (merge_col(db, child, col) == merge_col(db, child, fk->cols[k])) return (int)k;
  return -1;
}

/* Child's primary key column j as it will be once re-pointed through
 * mapping m: the keeper's value where the key holds the reference (link
 * tables), the column itself otherwise. */
void merge_pk_after_repoint(buf *q, const nodup_db *db, const nodup_table_info *x,
                            const nodup_table_info *child, const nodup_fk_info *fk, size_t j) {
  int k = merge_fk_position(db, child, fk, child->pk[j]);
  if (k >= 0) {
    buf_printf(q, "m.nodup_k%d", merge_col(db, x, fk->refcols[k]));
  } else {
    buf_puts(q, "c.");
    sql_ident(q, child->pk[j]);
  }
}

/* Each row's primary key (nodup_lp<i>), its group's first one in window
 * nodup_w (nodup_kp<i>, the keeper) and its rank (nodup_rn); the caller
 * appends the table aliased `a`, its joins and the window. */
void merge_pk_pairs(buf *q, const nodup_table_info *t, const char *a) {
  size_t i;
  buf_puts(q, "SELECT * FROM (SELECT ");
  for (i = 0; i < t->npk; i++) {
    buf_printf(q, "%s%s.", i ? ", " : "", a);
    sql_ident(q, t->pk[i]);
    buf_printf(q, " AS nodup_lp%zu, first_value(%s.", i, a);
    sql_ident(q, t->pk[i]);
    buf_printf(q, ") OVER nodup_w AS nodup_kp%zu", i);
  }
  buf_puts(q, ", row_number() OVER nodup_w AS nodup_rn FROM ");
}

/*
 * A pass: every duplicate group there is now, numbered (see below), in
 * c->groups (kept across the batches' commits). One
 * aggregate over X per pass, not per batch: each batch takes its slice by
 * number, so a run is linear in the table, not quadratic. *n gets the
 * number of groups.
 */
/* Whether t's primary key is one column of integers, whose greatest value
 * in a group says where the group's newest row sits (SQLite's types are
 * 0: its max() takes any value, and a rowid is an integer). */
static int pk_is_integer(const nodup_db *db, const nodup_table_info *t) {
  int i;
  if (t->npk != 1) return 0;
  i = table_info_column(db, t, t->pk[0]);
  if (i < 0 || !t->types) return 1;
  /* PostgreSQL's int2, int4, int8 (pg_type.h). */
  return t->types[i] == 0 || t->types[i] == 20 || t->types[i] == 21 || t->types[i] == 23;
}

/* "term AS name, ...": each term's value under its name in the key. */
static void key_values(buf *q, char *const *key, size_t nkey) {
  key_term *terms = key_terms_of(key, nkey);
  size_t i;
  if (!terms) {
    q->oom = 1;
    return;
  }
  for (i = 0; i < nkey; i++) {
    if (i) buf_puts(q, ", ");
    sql_key_term(q, &terms[i], NULL);
    buf_puts(q, " AS ");
    sql_ident(q, key[i]);
  }
  free(terms);
}

int merge_pass_groups(merge_ctx *c, const nodup_table_info *t, char *const *key, size_t nkey,
                      const char *where, long long *n) {
  int newest = pk_is_integer(c->db, t);
  buf q;
  int rc;
  buf_init(&q);
  if (c->have_groups || c->db->pooled) {
    /* Pooled, the table is named after the run and outlives a killed
     * process: a resume finds its predecessor's. */
    buf_printf(&q, "DROP TABLE %s%s", c->have_groups ? "" : "IF EXISTS ", c->groups);
  } else {
    /* An earlier merge on this connection whose clean-up DROP failed left
     * its temporary table (found by the fault tests). Named through the
     * temporary schema, so a user's table of the same name is never hit. */
    buf_printf(&q, "DROP TABLE IF EXISTS %s.%s", c->db->be->temp_schema, c->groups);
  }
  if ((rc = merge_sql(c, &q, NULL)) != NODUP_OK) goto done;
  c->have_groups = 0;
  buf_reset(&q);
  buf_printf(&q, "CREATE %s TABLE %s AS SELECT ", c->db->pooled ? "UNLOGGED" : "TEMP",
             c->groups);
  sql_ident_list(&q, key, nkey);
  /* The groups' columns are named by the key's names; an expression
   * term's column (lower("email")) holds its value, named by its
   * canonical spelling (quoted), so the batch reads every key alike. */
  /* Numbered by their newest row where the primary key is one column:
   * a batch then deletes losers that sit near each other in the table
   * and in every index on a reference to it, not ids scattered over all
   * of them as key order would give. */
  buf_puts(&q, ", row_number() OVER (ORDER BY ");
  if (newest) buf_puts(&q, "nodup_o, ");
  sql_ident_list(&q, key, nkey);
  buf_puts(&q, ") AS nodup_g FROM (SELECT ");
  key_values(&q, key, nkey);
  if (newest) {
    buf_puts(&q, ", max(");
    sql_ident(&q, t->pk[0]);
    buf_puts(&q, ") AS nodup_o");
  }
  buf_printf(&q, " FROM %s AS g WHERE ", t->qualified);
  sql_key_filter(&q, key, nkey, where, c->opt->nulls_equal, "g");
  buf_puts(&q, " GROUP BY ");
  sql_key_names(&q, key, nkey, NULL);
  buf_puts(&q, " HAVING count(*) > 1) AS nodup_d");
  if ((rc = merge_sql(c, &q, NULL)) != NODUP_OK) goto done;
  c->have_groups = 1;
  buf_reset(&q);
  /* Pooled, the table's name is the run's and the index is named by
   * PostgreSQL; a temp table's index can have a fixed name. */
  if (c->db->pooled) buf_printf(&q, "CREATE INDEX ON %s (nodup_g)", c->groups);
  else buf_puts(&q, "CREATE INDEX nodup_groups_g ON nodup_groups (nodup_g)");
  rc = merge_sql(c, &q, NULL);
  buf_reset(&q);
  buf_printf(&q, "SELECT count(*) FROM %s", c->groups);
  if (rc == NODUP_OK)
    rc = c->db->be->query(c->db, buf_str(&q), NULL, 0, db_read_count, n);
done:
  buf_free(&q);
  return rc;
}

/* The batch: groups first + 1 .. first + batch of the pass. Its columns
 * are nodup_k0, nodup_k1, ...: named like the key, they would make a
 * user's --where or --keep that names a key column ambiguous in the
 * queries that join the batch to the table. */
int merge_batch_groups(merge_ctx *c, char *const *key, size_t nkey, long long first,
                       size_t batch) {
  buf q;
  size_t i;
  int rc;
  buf_init(&q);
  buf_puts(&q, "CREATE TEMP TABLE nodup_batch AS SELECT ");
  for (i = 0; i < nkey; i++) {
    if (i) buf_puts(&q, ", ");
    sql_ident(&q, key[i]);
    buf_printf(&q, " AS nodup_k%zu", i);
  }
  buf_printf(&q, " FROM %s WHERE nodup_g > %lld AND nodup_g <= %lld", c->groups, first,
             first + (long long)batch);
  rc = merge_sql(c, &q, NULL);
  /* Analysed, so that the planners drive the batch's joins from it
   * (SQLite otherwise walks X's whole key index once per batch). */
  if (rc == NODUP_OK) rc = c->db->be->exec(c->db, "ANALYZE nodup_batch");
  buf_free(&q);
  return rc;
}

/* " JOIN nodup_batch AS b ON ...": the rows of x (alias x) in the batch's
 * groups, NULL keys matching each other only under nulls_equal. */
static void batch_join(buf *q, char *const *key, size_t nkey, int nulls_equal) {
  key_term *terms = key_terms_of(key, nkey);
  size_t i;
  if (!terms) {
    q->oom = 1;
    return;
  }
  buf_puts(q, " JOIN nodup_batch AS b ON ");
  for (i = 0; i < nkey; i++) {
    if (i) buf_puts(q, " AND ");
    /* Spelled out rather than IS NOT DISTINCT FROM, which SQLite has only
     * from 3.39; used only when asked, as it defeats an index on x. */
    buf_printf(q, "%sb.nodup_k%zu = ", nulls_equal ? "(" : "", i);
    sql_key_term(q, &terms[i], "x");
    if (nulls_equal) {
      buf_printf(q, " OR (b.nodup_k%zu IS NULL AND ", i);
      sql_key_term(q, &terms[i], "x");
      buf_puts(q, " IS NULL))");
    }
  }
  free(terms);
}

/* "x.a, x.b": columns `cols` of x. */
static void x_list(buf *q, char *const *cols, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    buf_puts(q, i ? ", x." : "x.");
    sql_ident(q, cols[i]);
  }
}

int merge_batch_lock(merge_ctx *c, const nodup_table_info *t, char *const *key, size_t nkey,
                     const char *where) {
  nodup_db *db = c->db;
  int ne = c->opt->nulls_equal, rc;
  long long locked = 0;
  buf q;
  if (!db->be->lock_rows[0]) return NODUP_OK;
  /* Keepers and losers locked in primary key order (no deadlock between
   * two merges), so no child row can be added to a loser between
   * re-pointing and deleting. */
  buf_init(&q);
  buf_printf(&q, "SELECT count(*) FROM (SELECT 1 FROM %s AS x", t->qualified);
  batch_join(&q, key, nkey, ne);
  buf_puts(&q, " WHERE ");
  sql_key_filter(&q, key, nkey, where, ne, "x");
  buf_puts(&q, " ORDER BY ");
  x_list(&q, t->pk, t->npk);
  /* Counted, not fetched: a row per locked row would grow our memory
   * with the batch. */
  buf_printf(&q, "%s) AS nodup_locked", db->be->lock_rows);
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, db_read_count, &locked);
  buf_free(&q);
  return rc;
}

/* Each loser of the batch, its keeper (first by --keep, then primary
 * key) and its rank. */
void merge_batch_pairs(buf *q, merge_ctx *c, const nodup_table_info *t, char *const *key,
                       size_t nkey, const char *where) {
  int ne = c->opt->nulls_equal;
  merge_pk_pairs(q, t, "x");
  buf_printf(q, "%s AS x", t->qualified);
  batch_join(q, key, nkey, ne);
  buf_puts(q, " WHERE ");
  sql_key_filter(q, key, nkey, where, ne, "x");
  sql_keep_window(q, key, nkey, c->opt->keep, t->pk, t->npk, "x");
  buf_puts(q, ") AS nodup_r WHERE nodup_rn > 1");
}

/* Drop the references of extra[0..*n) that repeat one the catalog has
 * (an inferred partition the caller also named, say): re-pointed once. */
int merge_drop_known_refs(merge_ctx *c, const nodup_table_info *t, nodup_fk_info *extra,
                          size_t *n) {
  const nodup_fk_info *fks = NULL;
  size_t nfks = 0, i = 0, j;
  int rc;
  if ((rc = merge_schema_references(c, t, &fks, &nfks)) != NODUP_OK) return rc;
  while (i < *n) {
    const nodup_table_info *e = NULL, *f = NULL;
    int known = 0;
    if ((rc = merge_schema_table(c, extra[i].table, &e)) != NODUP_OK) return rc;
    for (j = 0; j < nfks && !known; j++) {
      if ((rc = merge_schema_table(c, fks[j].table, &f)) != NODUP_OK) return rc;
      known = fk_same(c->db, e->qualified, &extra[i], f->qualified, &fks[j]);
    }
    if (!known) {
      i++;
      continue;
    }
    fk_info_clear(&extra[i]);
    memmove(&extra[i], &extra[i + 1], (*n - i - 1) * sizeof *extra);
    (*n)--;
  }
  return NODUP_OK;
}

/* The suspected references to t (suspect.c) that neither opt->refs
 * (extra) nor opt->ignore_refs name. */
int merge_suspects_find(merge_ctx *c, const nodup_table_info *t, char *const *key, size_t nkey,
                        const nodup_fk_info *extra, size_t nextra, nodup_scan_suspect **s,
                        size_t *n) {
  const nodup_fk_info *fks = NULL;
  size_t nfks = 0;
  int rc = merge_schema_references(c, t, &fks, &nfks);
  if (rc != NODUP_OK) return rc;
  return suspect_find(c->db, t, key, nkey, fks, nfks, extra, nextra, c->opt->ignore_refs,
                      c->opt->nignore_refs, s, n);
}

/* Refuse while a suspected reference points at a row this run would
 * delete: counted with scan's mapping, under the run's own --keep, so the
 * losers are the merge's. */
int merge_suspects_check(merge_ctx *c, const nodup_table_info *t, char *const *key, size_t nkey,
                         const char *where, nodup_scan_suspect *s, size_t n, const char *when) {
  int rc;
  if (!n) return NODUP_OK;
  rc = suspect_count(c->db, t, key, nkey, where, c->opt->nulls_equal, c->opt->keep, s, n);
  return rc != NODUP_OK ? rc : suspect_refuse(c->db, t, s, n, when);
}

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
  long long step;   /* the run's last step number: undo replays steps backwards */
  int log;          /* archive deleted rows and log changed ones (undo) */
  int have_groups;  /* the pass's groups table exists (pass_groups) */
  /* The pass's groups table, quoted: temp table nodup_groups on a session
   * of our own; behind a transaction-mode pooler a temp table would be
   * gone (or another client's) in the next batch's transaction, so it is
   * an unlogged table named after the run, dropped at the end. */
  char groups[200];
  const char *journal;  /* the run's journal schema (journal.c; NULL on SQLite) */
  journal_owner owner;  /* this call, as the run's row names its owner */
  /* The schema, read once per run rather than per batch (schema_*). */
  struct schema_entry {
    char *name;                /* as table_info() was asked */
    nodup_table_info *info;
    nodup_fk_info *fks;        /* who references it (NULL until asked) */
    size_t nfks;
    int have_fks;
  } *schema;
  size_t nschema;
  survive_rule *rules;  /* opt->columns, parsed (survive.c) */
  size_t nrules;
} merge_ctx;

/* The run's cached view of table `name` (borrowed until schema_free). */
static int schema_entry_get(merge_ctx *c, const char *name, struct schema_entry **out) {
  struct schema_entry *e;
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

static int schema_table(merge_ctx *c, const char *name, const nodup_table_info **out) {
  struct schema_entry *e;
  int rc = schema_entry_get(c, name, &e);
  *out = rc == NODUP_OK ? e->info : NULL;
  return rc;
}

/* The foreign keys that reference x, from the catalog, once per run. */
static int schema_references(merge_ctx *c, const nodup_table_info *x, const nodup_fk_info **fks,
                             size_t *n) {
  struct schema_entry *e = NULL;
  size_t i;
  int rc;
  for (i = 0; i < c->nschema && !e; i++)
    if (c->schema[i].info == x) e = &c->schema[i];
  if (!e) return nodup_fail(c->db, NODUP_ERR_DB, "internal: %s not in the run's schema", x->qualified);
  if (!e->have_fks) {
    if ((rc = c->db->be->references(c->db, x, &e->fks, &e->nfks)) != NODUP_OK) return rc;
    e->have_fks = 1;
  }
  *fks = e->fks;
  *n = e->nfks;
  return NODUP_OK;
}

static void schema_free(merge_ctx *c) {
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

void nodup_merge_free(nodup_merge_report *r) {
  size_t i, j;
  if (!r) return;
  for (i = 0; i < r->ntables; i++) {
    free(r->tables[i].table);
    free(r->tables[i].table_schema);
    free(r->tables[i].table_name);
    for (j = 0; j < r->tables[i].ndiffered; j++) free(r->tables[i].differed[j].column);
    free(r->tables[i].differed);
  }
  free(r->tables);
  free(r->temp_indexes);
  free(r);
}

static nodup_merge_table *stats_for(merge_ctx *c, const nodup_table_info *info) {
  nodup_merge_report *r = c->rep;
  nodup_merge_table *t;
  size_t i;
  for (i = 0; i < r->ntables; i++)
    if (!strcmp(r->tables[i].table, info->qualified)) return &r->tables[i];
  t = realloc(r->tables, (r->ntables + 1) * sizeof *t);
  if (!t) return NULL;
  r->tables = t;
  t = &r->tables[r->ntables];
  memset(t, 0, sizeof *t);
  t->table = nodup_strdup(info->qualified);
  t->table_name = nodup_strdup(info->name);
  t->table_schema = info->schema ? nodup_strdup(info->schema) : NULL;
  if (!t->table || !t->table_name || (info->schema && !t->table_schema)) {
    free(t->table);
    free(t->table_name);
    free(t->table_schema);
    return NULL;
  }
  r->ntables++;
  return t;
}

/* A column's position, naming the mapping's nodup_l<i>/nodup_k<i>. SQLite's
 * implicit rowid is not in the catalog's column list: it gets ncols. */
static int mcol(const nodup_db *db, const nodup_table_info *t, const char *name) {
  int i = table_info_column(db, t, name);
  return i >= 0 ? i : (int)t->ncols;
}

/* One statement; with `rows`, *rows gets how many rows it changed. */
/* One statement, never a multi-statement exec: the text may carry the
 * user's --where or --keep (checked, userexpr.c; this is the second wall). */
static int run_sql(merge_ctx *c, buf *q, long long *rows) {
  if (q->oom) return NODUP_ERR_NOMEM;
  if (rows) return c->db->be->changes(c->db, buf_str(q), NULL, 0, rows);
  return c->db->be->query(c->db, buf_str(q), NULL, 0, NULL, NULL);
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

/* " AND (cond)" for a user reference "T(C) WHERE cond": only those rows of
 * T reference X, in every statement that re-points, logs, checks or merges
 * them. cond names T's columns bare (userexpr_check proved it one
 * expression on T); every statement here aliases T as c and the others it
 * joins (mappings) have only nodup_* columns, so the names are c's. */
static void fk_condition(buf *q, const nodup_fk_info *fk) {
  if (fk->where) buf_printf(q, " AND (%s)", fk->where);
}

/* "c.fk1 = m.nodup_l3 AND ...": child rows (alias c) that reference a
 * loser of mapping m (of table x) through fk. */
static void fk_on_losers(buf *q, const nodup_db *db, const nodup_table_info *x,
                         const nodup_fk_info *fk) {
  size_t i;
  for (i = 0; i < fk->ncols; i++) {
    if (i) buf_puts(q, " AND ");
    buf_puts(q, "c.");
    sql_ident(q, fk->cols[i]);
    buf_printf(q, " = m.nodup_l%d", mcol(db, x, fk->refcols[i]));
  }
  fk_condition(q, fk);
}

/* Child's primary key column j as it will be once re-pointed through
 * mapping m: the keeper's value where the key holds the reference (link
 * tables), the column itself otherwise. */
static void pk_after_repoint(buf *q, const nodup_db *db, const nodup_table_info *x,
                             const nodup_table_info *child, const nodup_fk_info *fk, size_t j) {
  size_t k;
  for (k = 0; k < fk->ncols; k++)
    if (mcol(db, child, child->pk[j]) == mcol(db, child, fk->cols[k])) break;
  if (k < fk->ncols) {
    buf_printf(q, "m.nodup_k%d", mcol(db, x, fk->refcols[k]));
  } else {
    buf_puts(q, "c.");
    sql_ident(q, child->pk[j]);
  }
}

/* Record the run's next step: its kind ('delete', 'repoint', 'fill'), the
 * table as table_info() accepts it, and the columns it sets (one row per
 * column). `stepno` (24 bytes) gets the step number as text. */
static int step_begin(merge_ctx *c, const char *kind, const char *tname, char *const *cols,
                      size_t n, char *stepno) {
  nodup_db *db = c->db;
  char pos[24];
  size_t i;
  buf q;
  int rc = NODUP_OK;
  buf_init(&q);
  buf_puts(&q, "INSERT INTO ");
  journal_table(&q, c->journal, "nodup_steps");
  buf_puts(&q, " (run, step, kind, tbl, pos, col) VALUES (");
  for (i = 1; i <= 6; i++) {
    if (i > 1) buf_puts(&q, ", ");
    if (i == 2 || i == 5) buf_puts(&q, "CAST(");
    sql_param(&q, db, (int)i);
    if (i == 2 || i == 5) buf_puts(&q, " AS INTEGER)");
  }
  buf_putc(&q, ')');
  c->step++;
  snprintf(stepno, 24, "%lld", c->step);
  for (i = 0; i < (n ? n : 1) && rc == NODUP_OK; i++) {
    const char *p[6] = {c->rep->run, stepno, kind, tname, pos, n ? cols[i] : NULL};
    snprintf(pos, sizeof pos, "%zu", i);
    rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), p, 6, NULL, NULL);
  }
  buf_free(&q);
  return rc;
}

/* Log, before an UPDATE, the rows it will change: `cur` holds t's primary
 * key as it will be after the update (curx[i] for t->pk[i]), `old` the
 * columns `cols` (alias a) as they are now. `from` is the FROM ... WHERE
 * that selects the rows. */
static int log_rows(merge_ctx *c, const char *stepno, const nodup_table_info *t, const char *a,
                    char *const *curx, char *const *cols, size_t n, const char *from) {
  nodup_db *db = c->db;
  const char *p[2] = {c->rep->run, stepno};
  char **oldx = calloc(n + 1, sizeof *oldx);
  buf q, e;
  size_t i;
  int rc;
  if (!oldx) return NODUP_ERR_NOMEM;
  buf_init(&q);
  buf_init(&e);
  for (i = 0; i < n; i++) {
    buf_reset(&e);
    buf_printf(&e, "%s.", a);
    sql_ident(&e, cols[i]);
    oldx[i] = e.oom ? NULL : nodup_strdup(buf_str(&e));
    if (!oldx[i]) q.oom = 1;
  }
  buf_puts(&q, "INSERT INTO ");
  journal_table(&q, c->journal, "nodup_log");
  buf_puts(&q, " (run, step, cur, old) SELECT ");
  sql_param(&q, db, 1);
  buf_puts(&q, ", CAST(");
  sql_param(&q, db, 2);
  buf_puts(&q, " AS INTEGER), ");
  db->be->json_object(&q, t->npk, (const char *const *)t->pk, (const char *const *)curx);
  buf_puts(&q, ", ");
  if (!q.oom) db->be->json_object(&q, n, (const char *const *)cols, (const char *const *)oldx);
  buf_printf(&q, " %s", from);
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), p, 2, NULL, NULL);
  for (i = 0; i < n; i++) free(oldx[i]);
  free(oldx);
  buf_free(&e);
  buf_free(&q);
  return rc;
}

static int merge_level(merge_ctx *c, const nodup_table_info *x, const char *tname,
                       const char *pairs, int depth, const nodup_fk_info *extra, size_t nextra,
                       int fill, char *const *fixed, size_t nfixed);


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
  /* Rows outside a reference's condition (another content type) neither
   * move nor stay on the keeper: they are not this reference's. */
  fk_condition(&q, fk);
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
  /* The index's columns are equal within a group: never "filled". */
  rc = q.oom ? NODUP_ERR_NOMEM
             : merge_level(c, child, fk->table, buf_str(&q), depth + 1, NULL, 0, fill,
                           ix->cols, ix->ncols);
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

/*
 * The archive names, for each deleted row, the row it merged into. A child
 * row that absorbed a collision may itself point at a loser and so be
 * re-pointed next, and when its primary key holds the reference (link
 * tables) that changes its key: "110,8" becomes "101,8". Rewrite the
 * keepers archived since step `since` to the keys they are about to get,
 * so the archive never names a row that no longer exists.
 */
static int archive_rekey(merge_ctx *c, const nodup_table_info *x, const char *m,
                         const nodup_table_info *child, const nodup_fk_info *fk,
                         long long since) {
  nodup_db *db = c->db;
  char sincetext[24];
  const char *p[3] = {c->rep->run, child->qualified, sincetext};
  size_t i, k;
  int rekeyed = 0;
  buf q;
  int rc;
  for (i = 0; i < child->npk; i++)
    for (k = 0; k < fk->ncols; k++)
      rekeyed |= mcol(db, child, child->pk[i]) == mcol(db, child, fk->cols[k]);
  if (!rekeyed) return NODUP_OK;
  snprintf(sincetext, sizeof sincetext, "%lld", since);
  buf_init(&q);
  buf_puts(&q, "UPDATE ");
  journal_table(&q, c->journal, "nodup_archive");
  buf_puts(&q, " AS a SET keeper = u.nodup_new FROM (SELECT ");
  pk_text(&q, child, "c");
  buf_puts(&q, " AS nodup_old, ");
  for (i = 0; i < child->npk; i++) {
    buf_puts(&q, i ? " || ',' || CAST(" : "CAST(");
    pk_after_repoint(&q, db, x, child, fk, i);
    buf_puts(&q, " AS TEXT)");
  }
  buf_printf(&q, " AS nodup_new FROM %s AS c JOIN %s AS m ON ", child->qualified, m);
  fk_on_losers(&q, db, x, fk);
  buf_puts(&q, ") AS u WHERE a.run = ");
  sql_param(&q, db, 1);
  buf_puts(&q, " AND a.tbl = ");
  sql_param(&q, db, 2);
  buf_puts(&q, " AND a.step > CAST(");
  sql_param(&q, db, 3);
  buf_puts(&q, " AS INTEGER) AND a.keeper = u.nodup_old");
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), p, 3, NULL, NULL);
  buf_free(&q);
  return rc;
}

/* Re-point one reference: collisions first (merged one level down), then
 * one UPDATE for the rest. */
static int repoint(merge_ctx *c, const nodup_table_info *x, const char *m,
                   const nodup_fk_info *fk, int depth) {
  nodup_db *db = c->db;
  const nodup_table_info *child = NULL;
  nodup_merge_table *st;
  long long n = 0, before_step, before_deleted;
  buf q;
  size_t i;
  int rc, exact;

  buf_init(&q);
  if ((rc = schema_table(c, fk->table, &child)) != NODUP_OK) goto done;
  before_step = c->step;
  if ((st = stats_for(c, child)) == NULL) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  before_deleted = st->deleted;
  for (i = 0; i < child->nidx; i++) {
    if (!index_contains_fk(db, child, &child->idx[i], fk, &exact)) continue;
    if (exact && c->opt->one_to_one == NODUP_ONE_TO_ONE_FAIL) {
      long long clash = 0;
      buf_reset(&q);
      buf_printf(&q, "SELECT count(*) FROM %s AS c JOIN %s AS m ON ", child->qualified, m);
      fk_on_losers(&q, db, x, fk);
      rc = db->be->query(db, buf_str(&q), NULL, 0, db_read_count, &clash);
      if (rc == NODUP_OK && clash) {
        rc = nodup_fail(db, NODUP_ERR_CONSTRAINT,
                        "one-to-one child %s has %lld row(s) on rows being merged "
                        "(--one-to-one fail): nothing changed",
                        child->qualified, clash);
      }
      if (rc != NODUP_OK) goto done;
    }
    /* --one-to-one keep: the surviving child is left as it is. */
    rc = merge_collisions(c, x, m, child, fk, &child->idx[i], depth,
                          c->opt->fill_nulls &&
                              !(exact && c->opt->one_to_one == NODUP_ONE_TO_ONE_KEEP));
    if (rc != NODUP_OK) goto done;
  }
  /* stats_for() may have moved the table array: look the row up again. */
  if (c->log && (st = stats_for(c, child)) != NULL && st->deleted > before_deleted &&
      (rc = archive_rekey(c, x, m, child, fk, before_step)) != NODUP_OK)
    goto done;
  if (c->log) {
    /* Log each row's reference as it is, and its primary key as it will
     * be (the key may contain the reference: link tables). */
    char stepno[24], **curx = calloc(child->npk + 1, sizeof *curx);
    buf e;
    size_t j;
    buf_init(&e);
    for (j = 0; curx && j < child->npk; j++) {
      buf_reset(&e);
      pk_after_repoint(&e, db, x, child, fk, j);
      if (e.oom || !(curx[j] = nodup_strdup(buf_str(&e)))) break;
    }
    buf_reset(&q);
    buf_printf(&q, "FROM %s AS c JOIN %s AS m ON ", child->qualified, m);
    fk_on_losers(&q, db, x, fk);
    if (!curx || j < child->npk || q.oom) rc = NODUP_ERR_NOMEM;
    if (rc == NODUP_OK) rc = step_begin(c, "repoint", fk->table, fk->cols, fk->ncols, stepno);
    if (rc == NODUP_OK)
      rc = log_rows(c, stepno, child, "c", curx, fk->cols, fk->ncols, buf_str(&q));
    strv_free(curx, child->npk);
    buf_free(&e);
    if (rc != NODUP_OK) goto done;
  }
  buf_reset(&q);
  buf_printf(&q, "UPDATE %s AS c SET ", child->qualified);
  for (i = 0; i < fk->ncols; i++) {
    if (i) buf_puts(&q, ", ");
    sql_ident(&q, fk->cols[i]);
    buf_printf(&q, " = m.nodup_k%d", mcol(db, x, fk->refcols[i]));
  }
  buf_printf(&q, " FROM %s AS m WHERE ", m);
  fk_on_losers(&q, db, x, fk);
  if ((rc = run_sql(c, &q, &n)) != NODUP_OK) goto done;
  if (!(st = stats_for(c, child))) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  st->repointed += n;
  if (fk->inferred) st->inferred = 1;
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
    rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, db_read_count, &self);
    c->rep->self_references += self;
  }
done:
  buf_free(&q);
  return rc;
}

/* Nothing may reference a loser any more; otherwise roll the batch back. */
static int verify(merge_ctx *c, const nodup_table_info *x, const char *m,
                  const nodup_fk_info *fk) {
  nodup_db *db = c->db;
  long long left = 0;
  buf q;
  int rc;
  buf_init(&q);
  /* fk->table is the table_info spelling; quote through the catalog. */
  {
    const nodup_table_info *child = NULL;
    if ((rc = schema_table(c, fk->table, &child)) != NODUP_OK) {
      buf_free(&q);
      return rc;
    }
    buf_printf(&q, "SELECT count(*) FROM %s AS c JOIN %s AS m ON ", child->qualified, m);
  }
  fk_on_losers(&q, db, x, fk);
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, db_read_count, &left);
  buf_free(&q);
  if (rc == NODUP_OK && left)
    rc = nodup_fail(db, NODUP_ERR_REFERENCED,
                    "%lld row(s) of %s still reference rows of %s being deleted: batch rolled back",
                    left, fk->table, x->qualified);
  return rc;
}

static int archive_and_delete(merge_ctx *c, const nodup_table_info *x, const char *tname,
                              const char *m) {
  nodup_db *db = c->db;
  nodup_merge_table *st;
  long long n = 0;
  char stepno[24];
  buf q;
  size_t i;
  int rc = NODUP_OK;
  buf_init(&q);
  if (c->log) {
    const char *p[3] = {c->rep->run, x->qualified, stepno};
    if ((rc = step_begin(c, "delete", tname, NULL, 0, stepno)) != NODUP_OK) goto done;
    buf_puts(&q, "INSERT INTO ");
    journal_table(&q, c->journal, "nodup_archive");
    buf_puts(&q, " (run, step, tbl, pk, keeper, row) SELECT ");
    sql_param(&q, db, 1);
    buf_puts(&q, ", CAST(");
    sql_param(&q, db, 3);
    buf_puts(&q, " AS INTEGER), ");
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
    rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), p, 3, NULL, NULL);
    if (rc != NODUP_OK) goto done;
  }
  buf_reset(&q);
  /* (pk) IN (SELECT ...), not a correlated EXISTS: SQLite runs EXISTS
   * once per row of X, scanning the mapping each time (5 s a batch at
   * 100,000 rows), while IN drives the delete from the mapping through
   * the primary key. */
  buf_printf(&q, "DELETE FROM %s WHERE (", x->qualified);
  sql_ident_list(&q, x->pk, x->npk);
  buf_puts(&q, ") IN (SELECT ");
  for (i = 0; i < x->npk; i++)
    buf_printf(&q, "%snodup_l%d", i ? ", " : "", mcol(db, x, x->pk[i]));
  buf_printf(&q, " FROM %s)", m);
  if ((rc = run_sql(c, &q, &n)) != NODUP_OK) goto done;
  if (!(st = stats_for(c, x))) rc = NODUP_ERR_NOMEM;
  else st->deleted += n;
done:
  buf_free(&q);
  return rc;
}

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

/* A level's survivorship: per column of x that a policy may change (not
 * the primary key, not `fixed`), its policy: the column's rule, else
 * first-non-null for a nullable one if `fill`. pol[i] is -1 for columns
 * left as the kept row has them; ord[i] the newest policy's column. *n
 * gets how many columns a policy changes. */
static int level_policies(merge_ctx *c, const nodup_table_info *x, int fill, char *const *fixed,
                          size_t nfixed, int **pol, int **ord, size_t *n) {
  nodup_db *db = c->db;
  size_t i, j;
  *n = 0;
  *pol = malloc((x->ncols + 1) * sizeof **pol);
  *ord = malloc((x->ncols + 1) * sizeof **ord);
  if (!*pol || !*ord) return NODUP_ERR_NOMEM;
  for (i = 0; i < x->ncols; i++) {
    const survive_rule *r = survive_find(c->rules, c->nrules, x, x->cols[i]);
    int skip = 0;
    for (j = 0; j < x->npk; j++) skip |= mcol(db, x, x->pk[j]) == (int)i;
    for (j = 0; j < nfixed; j++) skip |= fixed[j] && mcol(db, x, fixed[j]) == (int)i;
    (*pol)[i] = skip                           ? -1
                : r                            ? r->policy
                : fill && !x->notnull[i]       ? SURVIVE_FIRST_NON_NULL
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
static int policy_collect(merge_ctx *c, const nodup_table_info *x, const char *m, const char *f,
                          const int *pol, const int *ord) {
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
    buf_printf(&part, "%ss.nodup_k%d", i ? ", " : "", mcol(db, x, x->pk[i]));
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
      buf_printf(&q, "%sm.nodup_k%d", i ? ", " : "", mcol(db, x, x->pk[i]));
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
        buf_printf(&q, "%snodup_k%d", i ? ", " : "", mcol(db, x, x->pk[i]));
      buf_printf(&q, " FROM %s) AS m JOIN %s AS l ON ", m, x->qualified);
      pk_join(&q, db, x, "m", "k", "l");
    } else {
      buf_printf(&q, " FROM %s AS m JOIN %s AS l ON ", m, x->qualified);
      pk_join(&q, db, x, "m", "l", "l");
    }
  }
  /* Every member's row carries its group's values: the keeper's is one. */
  buf_puts(&q, ") AS s) AS w WHERE nodup_rn = 0");
  if (part.oom || v.oom || o.oom) q.oom = 1;
  rc = run_sql(c, &q, NULL);
  /* Analysed, so that the UPDATE joining it to x goes by primary key. */
  buf_reset(&q);
  buf_printf(&q, "ANALYZE %s", f);
  if (rc == NODUP_OK) rc = run_sql(c, &q, NULL);
  buf_free(&o);
  buf_free(&v);
  buf_free(&part);
  buf_free(&q);
  free(need);
  return rc;
}

/* Survivorship, part 2, after the losers are gone (so no other unique
 * index trips on a value both hold): log the keepers whose values change,
 * as step kind 'fill' (undo sets them back), then set them. */
static int policy_apply(merge_ctx *c, const nodup_table_info *x, const char *tname, const char *f,
                        const int *pol, size_t npol) {
  nodup_db *db = c->db;
  nodup_merge_table *st;
  long long rows = 0;
  char **cols = calloc(npol + 1, sizeof *cols);
  buf q, w, a, b;
  size_t i, n = 0;
  int rc = NODUP_OK;
  buf_init(&q);
  buf_init(&w);
  buf_init(&a);
  buf_init(&b);
  if (!cols) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  /* Keepers whose value changes: f joined on the primary key. */
  for (i = 0; i < x->npk; i++) {
    buf_puts(&w, i ? " AND k." : " WHERE k.");
    sql_ident(&w, x->pk[i]);
    buf_printf(&w, " = f.nodup_k%d", mcol(db, x, x->pk[i]));
  }
  buf_puts(&w, " AND (");
  for (i = 0; i < x->ncols; i++) {
    if (pol[i] < 0) continue;
    if (!(cols[n] = nodup_strdup(x->cols[i]))) {
      rc = NODUP_ERR_NOMEM;
      goto done;
    }
    buf_reset(&a);
    buf_reset(&b);
    col_sql(&a, "k", x, i, 0);
    buf_printf(&b, "f.nodup_f%zu", i);
    if (n++) buf_puts(&w, " OR ");
    distinct_expr(&w, db, buf_str(&a), buf_str(&b));
  }
  buf_putc(&w, ')');
  if (c->log) {
    char stepno[24], **curx = calloc(x->npk + 1, sizeof *curx);
    buf e;
    buf_init(&e);
    for (i = 0; curx && i < x->npk; i++) {
      buf_reset(&e);
      buf_puts(&e, "k.");
      sql_ident(&e, x->pk[i]);
      if (e.oom || !(curx[i] = nodup_strdup(buf_str(&e)))) break;
    }
    buf_printf(&q, "FROM %s AS k, %s AS f%s", x->qualified, f, buf_str(&w));
    rc = !curx || i < x->npk || q.oom || w.oom ? NODUP_ERR_NOMEM
                                               : step_begin(c, "fill", tname, cols, n, stepno);
    if (rc == NODUP_OK) rc = log_rows(c, stepno, x, "k", curx, cols, n, buf_str(&q));
    strv_free(curx, x->npk);
    buf_free(&e);
    if (rc != NODUP_OK) goto done;
  }
  /* A column whose value stays is set to itself, not to an equal value
   * spelled otherwise (1.0 for 1.00). */
  buf_reset(&q);
  buf_printf(&q, "UPDATE %s AS k SET ", x->qualified);
  for (i = 0, n = 0; i < x->ncols; i++) {
    if (pol[i] < 0) continue;
    buf_reset(&a);
    buf_reset(&b);
    col_sql(&a, "k", x, i, 0);
    buf_printf(&b, "f.nodup_f%zu", i);
    if (n++) buf_puts(&q, ", ");
    sql_ident(&q, x->cols[i]);
    buf_puts(&q, " = CASE WHEN ");
    distinct_expr(&q, db, buf_str(&a), buf_str(&b));
    buf_printf(&q, " THEN %s ELSE %s END", buf_str(&b), buf_str(&a));
  }
  buf_printf(&q, " FROM %s AS f%s", f, buf_str(&w));
  if (w.oom || a.oom || b.oom) q.oom = 1;
  if ((rc = run_sql(c, &q, &rows)) != NODUP_OK) goto done;
  if (!(st = stats_for(c, x))) rc = NODUP_ERR_NOMEM;
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

/* Colliding rows about to be deleted into a surviving one (a level below
 * the merged table): per column outside the primary key and the colliding
 * index (`fixed`), how many held a value other than their survivor's,
 * before any policy runs. Added to x's report: content that would
 * otherwise go silently (the rows are archived, not their differences). */
static int count_differed(merge_ctx *c, const nodup_table_info *x, const char *m,
                          char *const *fixed, size_t nfixed) {
  nodup_db *db = c->db;
  nodup_merge_table *st;
  size_t *idx = calloc(x->ncols + 1, sizeof *idx), n = 0, i, j;
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
    int skip = 0;
    for (j = 0; j < x->npk; j++) skip |= mcol(db, x, x->pk[j]) == (int)i;
    for (j = 0; j < nfixed; j++) skip |= fixed[j] && mcol(db, x, fixed[j]) == (int)i;
    if (skip) continue;
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
  pk_join(&q, db, x, "m", "l", "l");
  buf_printf(&q, " JOIN %s AS k ON ", x->qualified);
  pk_join(&q, db, x, "m", "k", "k");
  if (a.oom || b.oom) q.oom = 1;
  d.n = got;
  d.count = n;
  if (q.oom) rc = NODUP_ERR_NOMEM;
  else rc = db->be->query(db, buf_str(&q), NULL, 0, read_differed, &d);
  if (rc != NODUP_OK) goto done;
  if (!(st = stats_for(c, x))) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  for (i = 0; i < n; i++) {
    nodup_merge_column *grown;
    if (!got[i]) continue;
    for (j = 0; j < st->ndiffered; j++)
      if (!strcmp(st->differed[j].column, x->cols[idx[i]])) break;
    if (j == st->ndiffered) {
      if (!(grown = realloc(st->differed, (j + 1) * sizeof *grown))) {
        rc = NODUP_ERR_NOMEM;
        goto done;
      }
      st->differed = grown;
      grown[j].rows = 0;
      if (!(grown[j].column = nodup_strdup(x->cols[idx[i]]))) {
        rc = NODUP_ERR_NOMEM;
        goto done;
      }
      st->ndiffered++;
    }
    st->differed[j].rows += got[i];
  }
done:
  buf_free(&b);
  buf_free(&a);
  buf_free(&q);
  free(got);
  free(idx);
  return rc;
}

/* Build X's mapping from `pairs` (nodup_lp<i>/nodup_kp<i> per primary key
 * column, nodup_rn the loser's rank in its group), re-point every
 * reference, verify, archive, delete, and apply the survivorship policies
 * (the rules for X's columns; with `fill`, first-non-null for the others;
 * never the `fixed` columns: the key). `tname` is X's name as
 * table_info() accepts it (for undo). */
static int merge_level(merge_ctx *c, const nodup_table_info *x, const char *tname,
                       const char *pairs, int depth, const nodup_fk_info *extra, size_t nextra,
                       int fill, char *const *fixed, size_t nfixed) {
  nodup_db *db = c->db;
  const nodup_fk_info *fks = NULL;
  size_t nfks = 0, i, j, npol = 0;
  char m[32], f[32];
  char *need = NULL;      /* columns of X the mapping carries */
  int *pol = NULL, *ord = NULL;  /* level_policies */
  long long nmap = 0;
  buf q;
  int rc, have_f = 0, extra_cols = 0;

  buf_init(&q);
  if (depth > MERGE_MAX_DEPTH)
    return nodup_fail(db, NODUP_ERR_DB, "merge recursion deeper than %d levels at %s",
                      MERGE_MAX_DEPTH, x->qualified);
  if ((rc = schema_references(c, x, &fks, &nfks)) != NODUP_OK) return rc;
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
  snprintf(m, sizeof m, "nodup_m%u", c->ntemp);
  snprintf(f, sizeof f, "nodup_f%u", c->ntemp++);
  buf_printf(&q, "CREATE TEMP TABLE %s AS SELECT p.nodup_rn AS nodup_rn", m);
  for (i = 0; i < x->npk; i++)
    buf_printf(&q, ", p.nodup_lp%zu AS nodup_l%d, p.nodup_kp%zu AS nodup_k%d", i,
               mcol(db, x, x->pk[i]), i, mcol(db, x, x->pk[i]));
  for (i = 0; i < x->ncols; i++) {
    int is_pk = 0;
    for (j = 0; j < x->npk; j++) is_pk |= mcol(db, x, x->pk[j]) == (int)i;
    if (!need[i] || is_pk) continue;
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
    buf_printf(&q, " JOIN %s AS l ON ", x->qualified);
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
  }
  if ((rc = run_sql(c, &q, NULL)) != NODUP_OK) goto done;
  /* Temp tables have no statistics until analysed: without them PostgreSQL
   * guesses the mapping large and scans each child whole, every batch. */
  buf_reset(&q);
  buf_printf(&q, "ANALYZE %s", m);
  if ((rc = run_sql(c, &q, NULL)) != NODUP_OK) goto drop;
  buf_reset(&q);
  buf_printf(&q, "SELECT count(*) FROM %s", m);
  if ((rc = db->be->query(db, buf_str(&q), NULL, 0, db_read_count, &nmap)) != NODUP_OK) goto drop;
  if (nmap == 0) goto drop;
  for (i = 0; i < nfks + nextra; i++) {
    const nodup_fk_info *fk = i < nfks ? &fks[i] : &extra[i - nfks];
    if ((rc = repoint(c, x, m, fk, depth)) != NODUP_OK) goto drop;
  }
  for (i = 0; i < nfks + nextra; i++) {
    const nodup_fk_info *fk = i < nfks ? &fks[i] : &extra[i - nfks];
    if ((rc = verify(c, x, m, fk)) != NODUP_OK) goto drop;
  }
  /* Rows below the merged table collided: say what they held that their
   * survivor does not, before a policy takes any of it. */
  if (depth > 0 && (rc = count_differed(c, x, m, fixed, nfixed)) != NODUP_OK) goto drop;
  if ((rc = level_policies(c, x, fill, fixed, nfixed, &pol, &ord, &npol)) != NODUP_OK) goto drop;
  if (npol) {
    if ((rc = policy_collect(c, x, m, f, pol, ord)) != NODUP_OK) goto drop;
    have_f = 1;
  }
  if ((rc = archive_and_delete(c, x, tname, m)) != NODUP_OK) goto drop;
  if (have_f) rc = policy_apply(c, x, tname, f, pol, npol);
drop:
  if (rc == NODUP_OK) {
    buf_reset(&q);
    buf_printf(&q, "DROP TABLE %s", m);
    rc = run_sql(c, &q, NULL);
  }
  if (rc == NODUP_OK && have_f) {
    buf_reset(&q);
    buf_printf(&q, "DROP TABLE %s", f);
    rc = run_sql(c, &q, NULL);
  }
done:
  free(pol);
  free(ord);
  free(need);
  buf_free(&q);
  return rc;
}

/*
 * A pass: every duplicate group there is now, numbered in key order, in
 * c->groups (kept across the batches' commits). One
 * aggregate over X per pass, not per batch: each batch takes its slice by
 * number, so a run is linear in the table, not quadratic. *n gets the
 * number of groups.
 */
static int pass_groups(merge_ctx *c, const nodup_table_info *t, char *const *key, size_t nkey,
                       const char *where, long long *n) {
  buf q;
  int rc;
  buf_init(&q);
  if (c->have_groups || c->db->pooled) {
    /* Pooled, the table is named after the run and outlives a killed
     * process: a resume finds its predecessor's. */
    buf_printf(&q, "DROP TABLE %s%s", c->have_groups ? "" : "IF EXISTS ", c->groups);
    if ((rc = run_sql(c, &q, NULL)) != NODUP_OK) goto done;
    c->have_groups = 0;
    buf_reset(&q);
  }
  buf_printf(&q, "CREATE %s TABLE %s AS SELECT ", c->db->pooled ? "UNLOGGED" : "TEMP",
             c->groups);
  sql_ident_list(&q, key, nkey);
  buf_puts(&q, ", row_number() OVER (ORDER BY ");
  sql_ident_list(&q, key, nkey);
  buf_puts(&q, ") AS nodup_g FROM (SELECT ");
  sql_ident_list(&q, key, nkey);
  buf_printf(&q, " FROM %s AS g WHERE ", t->qualified);
  sql_key_filter(&q, key, nkey, where, c->opt->nulls_equal, "g");
  buf_puts(&q, " GROUP BY ");
  sql_ident_list(&q, key, nkey);
  buf_puts(&q, " HAVING count(*) > 1) AS nodup_d");
  if ((rc = run_sql(c, &q, NULL)) != NODUP_OK) goto done;
  c->have_groups = 1;
  buf_reset(&q);
  /* Pooled, the table's name is the run's and the index is named by
   * PostgreSQL; a temp table's index can have a fixed name. */
  if (c->db->pooled) buf_printf(&q, "CREATE INDEX ON %s (nodup_g)", c->groups);
  else buf_puts(&q, "CREATE INDEX nodup_groups_g ON nodup_groups (nodup_g)");
  rc = run_sql(c, &q, NULL);
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
static int batch_groups(merge_ctx *c, char *const *key, size_t nkey, long long first,
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
  rc = run_sql(c, &q, NULL);
  /* Analysed, so that the planners drive the batch's joins from it
   * (SQLite otherwise walks X's whole key index once per batch). */
  if (rc == NODUP_OK) rc = c->db->be->exec(c->db, "ANALYZE nodup_batch");
  buf_free(&q);
  return rc;
}

static void batch_join(buf *q, char *const *key, size_t nkey, int nulls_equal) {
  size_t i;
  buf_puts(q, " JOIN nodup_batch AS b ON ");
  for (i = 0; i < nkey; i++) {
    if (i) buf_puts(q, " AND ");
    /* Spelled out rather than IS NOT DISTINCT FROM, which SQLite has only
     * from 3.39; used only when asked, as it defeats an index on x. */
    buf_printf(q, "%sb.nodup_k%zu = x.", nulls_equal ? "(" : "", i);
    sql_ident(q, key[i]);
    if (nulls_equal) {
      buf_printf(q, " OR (b.nodup_k%zu IS NULL AND x.", i);
      sql_ident(q, key[i]);
      buf_puts(q, " IS NULL))");
    }
  }
}

/* One batch, inside the caller's transaction: lock, map, merge. *groups
 * gets the number of groups merged (0: nothing left). */
static int merge_batch(merge_ctx *c, const nodup_table_info *t, const char *tname,
                       char *const *key, size_t nkey, const char *where,
                       const nodup_fk_info *extra, size_t nextra, long long first,
                       size_t batch, long long *groups) {
  nodup_db *db = c->db;
  const char *keep = c->opt->keep;
  int ne = c->opt->nulls_equal;
  buf q;
  size_t i;
  int rc;

  buf_init(&q);
  *groups = 0;
  if ((rc = batch_groups(c, key, nkey, first, batch)) != NODUP_OK) goto done;
  if (db->be->lock_rows[0]) {
    /* Keepers and losers locked in primary key order (no deadlock between
     * two merges), so no child row can be added to a loser between
     * re-pointing and deleting. */
    long long locked = 0;
    buf_printf(&q, "SELECT count(*) FROM (SELECT 1 FROM %s AS x", t->qualified);
    batch_join(&q, key, nkey, ne);
    buf_puts(&q, " WHERE ");
    sql_key_filter(&q, key, nkey, where, ne, "x");
    buf_puts(&q, " ORDER BY ");
    for (i = 0; i < t->npk; i++) {
      buf_printf(&q, "%sx.", i ? ", " : "");
      sql_ident(&q, t->pk[i]);
    }
    /* Counted, not fetched: a row per locked row would grow our memory
     * with the batch. */
    buf_printf(&q, "%s) AS nodup_locked", db->be->lock_rows);
    rc = q.oom ? NODUP_ERR_NOMEM
               : db->be->query(db, buf_str(&q), NULL, 0, db_read_count, &locked);
    if (rc != NODUP_OK) goto done;
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
  batch_join(&q, key, nkey, ne);
  buf_puts(&q, " WHERE ");
  sql_key_filter(&q, key, nkey, where, ne, "x");
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
    long long n = 0;
    rc = db->be->query(db, "SELECT count(*) FROM nodup_batch", NULL, 0, db_read_count, &n);
    if (rc != NODUP_OK) goto done;
    *groups = n;
    if (!n) goto done;
  }
  rc = merge_level(c, t, tname, buf_str(&q), 0, extra, nextra, c->opt->fill_nulls, key, nkey);
done:
  if (rc == NODUP_OK) {
    buf_reset(&q);
    buf_puts(&q, "DROP TABLE nodup_batch");
    rc = run_sql(c, &q, NULL);
  }
  buf_free(&q);
  return rc;
}

/* Drop the references of extra[0..*n) that repeat one the catalog has
 * (an inferred partition the caller also named, say): re-pointed once. */
static int drop_known_refs(merge_ctx *c, const nodup_table_info *t, nodup_fk_info *extra,
                           size_t *n) {
  const nodup_fk_info *fks = NULL;
  size_t nfks = 0, i = 0, j;
  int rc;
  if ((rc = schema_references(c, t, &fks, &nfks)) != NODUP_OK) return rc;
  while (i < *n) {
    const nodup_table_info *e = NULL, *f = NULL;
    int known = 0;
    if ((rc = schema_table(c, extra[i].table, &e)) != NODUP_OK) return rc;
    for (j = 0; j < nfks && !known; j++) {
      if ((rc = schema_table(c, fks[j].table, &f)) != NODUP_OK) return rc;
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
static int suspects_find(merge_ctx *c, const nodup_table_info *t, char *const *key, size_t nkey,
                         const nodup_fk_info *extra, size_t nextra, nodup_scan_suspect **s,
                         size_t *n) {
  const nodup_fk_info *fks = NULL;
  size_t nfks = 0;
  int rc = schema_references(c, t, &fks, &nfks);
  if (rc != NODUP_OK) return rc;
  return suspect_find(c->db, t, key, nkey, fks, nfks, extra, nextra, c->opt->ignore_refs,
                      c->opt->nignore_refs, s, n);
}

/* Refuse while a suspected reference points at a row this run would
 * delete: counted with scan's mapping, under the run's own --keep, so the
 * losers are the merge's. */
static int suspects_check(merge_ctx *c, const nodup_table_info *t, char *const *key, size_t nkey,
                          const char *where, nodup_scan_suspect *s, size_t n, const char *when) {
  int rc;
  if (!n) return NODUP_OK;
  rc = suspect_count(c->db, t, key, nkey, where, c->opt->nulls_equal, c->opt->keep, s, n);
  return rc != NODUP_OK ? rc : suspect_refuse(c->db, t, s, n, when);
}

/* --one-to-one fail, before anything is written (the journal included):
 * refuse while a one-to-one child (a unique index on exactly its
 * reference) has rows on a row this run would delete. Counted with scan's
 * mapping under the run's --keep, as the suspects are; each batch checks
 * again, one level down too, for groups that writers add meanwhile. */
static int one_to_one_check(merge_ctx *c, const nodup_table_info *t, char *const *key,
                            size_t nkey, const char *where, const nodup_fk_info *extra,
                            size_t nextra) {
  const nodup_fk_info *fks = NULL;
  size_t nfks = 0, i, j;
  buf q;
  int rc, exact = 0;
  if (c->opt->one_to_one != NODUP_ONE_TO_ONE_FAIL) return NODUP_OK;
  if ((rc = schema_references(c, t, &fks, &nfks)) != NODUP_OK) return rc;
  buf_init(&q);
  for (i = 0; rc == NODUP_OK && i < nfks + nextra; i++) {
    const nodup_fk_info *fk = i < nfks ? &fks[i] : &extra[i - nfks];
    const nodup_table_info *child = NULL;
    long long clash = 0;
    if ((rc = schema_table(c, fk->table, &child)) != NODUP_OK) break;
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
    fk_condition(&q, fk);
    rc = q.oom ? NODUP_ERR_NOMEM
               : c->db->be->query(c->db, buf_str(&q), NULL, 0, db_read_count, &clash);
    if (rc == NODUP_OK && clash)
      rc = nodup_fail(c->db, NODUP_ERR_CONSTRAINT,
                      "one-to-one child %s has %lld row(s) on rows being merged "
                      "(--one-to-one fail): nothing changed",
                      child->qualified, clash);
  }
  buf_free(&q);
  return rc;
}

/* The tables whose rows this merge can merge: t, and every table with a
 * unique index holding a reference to one of them (declared, or opt->refs
 * to t), since re-pointing makes such rows collide. *reach gets their
 * qualified names, t's first. */
static int merge_reach(merge_ctx *c, const nodup_table_info *t, const nodup_fk_info *extra,
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
    if ((rc = schema_references(c, seen[at], &fks, &nfks)) != NODUP_OK) break;
    for (i = 0; i < nfks + (at ? 0 : nextra) && rc == NODUP_OK; i++) {
      const nodup_fk_info *fk = i < nfks ? &fks[i] : &extra[i - nfks];
      const nodup_table_info *child = NULL;
      if ((rc = schema_table(c, fk->table, &child)) != NODUP_OK) break;
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

static int survive_lookup(void *ctx, const char *name, const nodup_table_info **out) {
  return schema_table(ctx, name, out);
}

/* opt->columns, parsed and checked into c->rules before anything is
 * written. */
static int merge_rules(merge_ctx *c, const nodup_table_info *t, char *const *key, size_t nkey,
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

/* Rows the report says were re-pointed, deleted and filled so far. */
static void report_rows(const nodup_merge_report *r, long long n[3]) {
  size_t i;
  n[0] = n[1] = n[2] = 0;
  for (i = 0; i < r->ntables; i++) {
    n[0] += r->tables[i].repointed;
    n[1] += r->tables[i].deleted;
    n[2] += r->tables[i].filled;
  }
}

/* The whole run. `run` is a run to resume (NULL: a new one); `own_txn`:
 * one transaction per batch (0: everything inside the caller's
 * transaction, as nodup enforce does). */
int merge_run(nodup_merge_report **out, nodup_db *db, const char *table,
              const char *const *cols, size_t ncols, const char *where,
              const nodup_merge_options *opt, const char *run, const char *journal,
              long long laststep, int own_txn, int one_pass) {
  nodup_merge_report *rep = NULL;
  const nodup_table_info *t = NULL;
  nodup_fk_info *extra = NULL;
  nodup_scan_suspect *sus = NULL;
  fk_gap *gaps = NULL;
  size_t nextra = 0, nsus = 0, ngaps = 0, i, batch;
  char **key = NULL;
  merge_ctx c;
  long long groups, total = 0, first = 0, ngroups = 0;
  int rc, in_txn = 0, recorded = 0, one_txn, groups_in_txn = 0, committed = 0;

  memset(&c, 0, sizeof c);
  c.db = db;
  c.opt = opt;
  if (where && !*where) where = NULL;
  batch = opt->batch ? opt->batch : MERGE_DEFAULT_BATCH;
  /* t belongs to the run's schema cache (freed with it). */
  if ((rc = schema_table(&c, table, &t)) != NODUP_OK) goto done;
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
  if ((rc = engine_check(db, t, ENGINE_OP_MERGE, key, ncols)) != NODUP_OK) goto done;
  if ((rc = enforce_leftovers_note(db, t, key, ncols, where, NODUP_OK)) != NODUP_OK) goto done;
  /* Before anything is written (the journal included), and again on a
   * resume, whose texts come from nodup_runs, which anyone who can write
   * that table could have changed. */
  if ((rc = userexpr_check(db, t, where, 0, "--where")) != NODUP_OK ||
      (rc = userexpr_check(db, t, opt->keep && *opt->keep ? opt->keep : NULL, 1, "--keep")) !=
          NODUP_OK)
    goto done;
  for (i = 0; i < opt->nrefs; i++) {
    rc = fk_parse_ref(db, t, opt->refs[i] ? opt->refs[i] : "", &extra[nextra]);
    nextra++;
    if (rc != NODUP_OK) goto done;
  }
  if ((rc = drop_known_refs(&c, t, extra, &nextra)) != NODUP_OK) goto done;
  /* References no constraint declares: before anything is written, none
   * may point at a row this run would delete. */
  if ((rc = suspects_find(&c, t, key, ncols, extra, nextra, &sus, &nsus)) != NODUP_OK ||
      (rc = suspects_check(&c, t, key, ncols, where, sus, nsus, "nothing changed")) != NODUP_OK)
    goto done;
  if ((rc = one_to_one_check(&c, t, key, ncols, where, extra, nextra)) != NODUP_OK) goto done;
  if ((rc = merge_rules(&c, t, key, ncols, extra, nextra)) != NODUP_OK) goto done;
  c.journal = journal ? journal : journal_schema(db);
  if ((rc = journal_owner_init(db, &c.owner)) != NODUP_OK) goto done;
  if (run) {
    snprintf(rep->run, sizeof rep->run, "%s", run);
  } else {
    /* Run ids sort by time and differ between processes and threads (a
     * clash between hosts is refused by nodup_runs' primary key). */
    snprintf(rep->run, sizeof rep->run, "%lld-%d-%u", (long long)time(NULL), (int)getpid(),
             db_serial());
  }
  if (db->be->fk_enforced) {
    int on = 1;
    if ((rc = db->be->fk_enforced(db, &on)) != NODUP_OK) goto done;
    rep->foreign_keys_off = !on;
  }
  if (db->pooled) {
    buf g;
    char name[80];
    buf_init(&g);
    snprintf(name, sizeof name, "nodup_groups_%s", rep->run);
    /* In the journal's schema, out of the application's (and found there
     * by nodup runs --forget, should a killed run leave it). */
    journal_table(&g, c.journal, name);
    snprintf(c.groups, sizeof c.groups, "%s", buf_str(&g));
    buf_free(&g);
  } else {
    snprintf(c.groups, sizeof c.groups, "nodup_groups");
  }
  c.rep = rep;
  c.step = laststep;
  c.log = !opt->no_archive;
  if (opt->dry_run || !own_txn) {
    /* One transaction for everything (a dry run's is rolled back, with
     * the bookkeeping it wrote). */
    batch = (size_t)-1 / 2;
    if (opt->dry_run && (rc = db_begin_write(db)) != NODUP_OK) goto done;
    in_txn = opt->dry_run;
    if ((rc = journal_ensure(db, c.journal)) != NODUP_OK) goto done;
    if (!run && (rc = journal_record(db, c.journal, rep->run, &c.owner, table, key, ncols, where,
                                     opt, opt->batch ? opt->batch : MERGE_DEFAULT_BATCH)) !=
                    NODUP_OK)
      goto done;
  } else {
    /* Recorded in its own transaction first, so a run killed in its first
     * batch can still be resumed. */
    if ((rc = db_begin_write(db)) != NODUP_OK) goto done;
    in_txn = 1;
    if ((rc = journal_ensure(db, c.journal)) != NODUP_OK) goto done;
    if (!run && (rc = journal_record(db, c.journal, rep->run, &c.owner, table, key, ncols, where,
                                     opt, batch)) != NODUP_OK)
      goto done;
    /* A failed or interrupted run becomes ours; a live one is refused. */
    if (run && (rc = journal_claim(db, c.journal, run, &c.owner)) != NODUP_OK) goto done;
    if ((rc = db->be->exec(db, "COMMIT")) != NODUP_OK) goto done;
    in_txn = 0;
    recorded = 1;
  }
  /* Deleting a loser makes the engine look for its referencing rows, once
   * per row: a reference with no index on its columns is read whole each
   * time (fkindex.c). Indexes for those are built now, outside any
   * transaction (CONCURRENTLY on PostgreSQL), and dropped at the end. In
   * one transaction (a dry run, enforce's locked step) they cannot be:
   * enforce builds them itself before it locks. */
  if (own_txn && !opt->dry_run && !opt->no_temp_index) {
    const nodup_fk_info *fks = NULL;
    size_t nfks = 0;
    if ((rc = schema_references(&c, t, &fks, &nfks)) != NODUP_OK ||
        (rc = fkindex_plan(db, fks, nfks, extra, nextra, &gaps, &ngaps)) != NODUP_OK ||
        (rc = fkindex_build(db, gaps, ngaps)) != NODUP_OK)
      goto done;
    if (ngaps) {
      buf d;
      buf_init(&d);
      fkindex_describe(&d, gaps, ngaps);
      rep->temp_indexes = d.oom ? NULL : nodup_strdup(buf_str(&d));
      buf_free(&d);
      if (!rep->temp_indexes) {
        rc = NODUP_ERR_NOMEM;
        goto done;
      }
    }
  }
  /* In one transaction (a dry run, enforce's locked step) one batch takes
   * the whole pass; otherwise each batch commits, and a pass that ends is
   * followed by another, for groups that writers made meanwhile, until a
   * pass finds none (`one_pass`: after the first). */
  one_txn = opt->dry_run || !own_txn;
  if ((rc = pass_groups(&c, t, key, ncols, where, &ngroups)) != NODUP_OK) goto done;
  groups_in_txn = in_txn;
  total = ngroups;
  if (opt->progress) opt->progress(opt->progress_ctx, 0, total);
  for (;;) {
    if (first >= ngroups) {
      if (one_txn || one_pass || !ngroups) break;
      /* A pass reads the whole table: say we are alive before it. */
      if ((rc = journal_heartbeat(db, c.journal, rep->run, &c.owner)) != NODUP_OK ||
          (rc = pass_groups(&c, t, key, ncols, where, &ngroups)) != NODUP_OK)
        goto done;
      first = 0;
      total = rep->groups + ngroups;
      if (!ngroups) break;
      /* Writers made these groups since the check: check them too. */
      if ((rc = suspects_check(&c, t, key, ncols, where, sus, nsus,
                               "the merge stopped there; the batches before it are "
                               "committed")) != NODUP_OK)
        goto done;
    }
    if (!one_txn) {
      if ((rc = db_begin_write(db)) != NODUP_OK) goto done;
      in_txn = 1;
    }
    {
      /* The run's row first (held until the batch ends, so nobody takes
       * the run over meanwhile), its counters last. */
      long long before[3], after[3];
      report_rows(rep, before);
      if ((rc = journal_heartbeat(db, c.journal, rep->run, &c.owner)) != NODUP_OK) goto done;
      rc = merge_batch(&c, t, table, key, ncols, where, extra, nextra, first, batch, &groups);
      if (rc != NODUP_OK) goto done;
      report_rows(rep, after);
      if (groups &&
          (rc = journal_batch_done(db, c.journal, rep->run, &c.owner, groups,
                                   after[0] - before[0], after[1] - before[1],
                                   after[2] - before[2])) != NODUP_OK)
        goto done;
    }
    first += (long long)batch;
    rep->groups += groups;
    if (groups) rep->batches++;
    if (one_txn) continue;
    if ((rc = db->be->exec(db, "COMMIT")) != NODUP_OK) goto done;
    in_txn = 0;
    committed = 1;
    if (opt->progress) opt->progress(opt->progress_ctx, rep->groups, total);
  }
  if (!opt->dry_run) rc = journal_status(db, c.journal, rep->run, &c.owner, "done");
done:
  if (in_txn) {
    /* Keep the failing statement's message, not the rollback's. */
    db_rollback(db, rc);   /* rc == NODUP_OK: the dry run's planned rollback */
    if (groups_in_txn) c.have_groups = 0;        /* rolled back with it */
  }
  if (c.have_groups && !(rc != NODUP_OK && !own_txn)) {
    /* Best effort: a failure here must not mask the run's result. */
    char drop[256];
    db_error e;
    int drc;
    db_error_save(db, &e);
    snprintf(drop, sizeof drop, "DROP TABLE %s", c.groups);
    drc = db->be->exec(db, drop);
    rc = rc == NODUP_OK ? drc : db_error_restore(db, rc, &e);
    free(e.msg);
  }
  if (rc != NODUP_OK && recorded) {
    /* A new run that changed nothing (no batch committed) leaves no trace
     * in the journal; one that did is failed, to resume or undo. */
    db_error e;
    db_error_save(db, &e);
    if (!run && !committed) journal_discard(db, c.journal, rep->run, &c.owner);
    else journal_status(db, c.journal, rep->run, &c.owner, "failed");
    db_error_restore(db, rc, &e);
  }
  if (ngaps && !opt->keep_temp_index) {
    /* Dropped after a failure too; its own failure must not mask the run's. */
    db_error e;
    int drc;
    db_error_save(db, &e);
    drc = fkindex_drop(db, gaps, ngaps);
    rc = rc == NODUP_OK ? drc : db_error_restore(db, rc, &e);
    free(e.msg);
  }
  fkindex_free(gaps, ngaps);
  fk_info_free(extra, nextra);
  suspect_free(sus, nsus);
  survive_free(c.rules, c.nrules);
  if (key)
    for (i = 0; i < ncols; i++) free(key[i]);
  free(key);
  schema_free(&c);
  /* A dry run's id names nothing: its nodup_runs row was rolled back. */
  if (rc == NODUP_OK && opt->dry_run) rep->run[0] = '\0';
  if (rc == NODUP_OK) *out = rep;
  else nodup_merge_free(rep);
  return rc;
}

int nodup_merge(nodup_merge_report **out, nodup_db *db, const char *table,
                const char *const *cols, size_t ncols, const char *where,
                const nodup_merge_options *opt) {
  nodup_merge_options none;
  if (!out) return NODUP_ERR_USAGE;
  *out = NULL;
  if (!db || !db->native || !table || !cols || !ncols)
    return db ? nodup_fail(db, NODUP_ERR_USAGE, "merge needs a table and key columns")
              : NODUP_ERR_USAGE;
  memset(&none, 0, sizeof none);
  if (!opt) opt = &none;
  nodup_clear_error(db);
  if (options_check(db, opt->version, NODUP_MERGE_OPTIONS_VERSION, "nodup_merge_options"))
    return NODUP_ERR_USAGE;
  if (opt->one_to_one < NODUP_ONE_TO_ONE_MERGE || opt->one_to_one > NODUP_ONE_TO_ONE_FAIL)
    return nodup_fail(db, NODUP_ERR_USAGE, "unknown one_to_one mode %d", opt->one_to_one);
  if (db->be->in_transaction(db))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "merge runs its own transactions: call it outside one");
  return merge_run(out, db, table, cols, ncols, where, opt, NULL, NULL, 0, 1, 0);
}

int merge_in_transaction(nodup_merge_report **out, nodup_db *db, const char *table,
                         const char *const *cols, size_t ncols, const char *where,
                         const nodup_merge_options *opt) {
  *out = NULL;
  return merge_run(out, db, table, cols, ncols, where, opt, NULL, NULL, 0, 0, 0);
}

int merge_one_pass(nodup_merge_report **out, nodup_db *db, const char *table,
                   const char *const *cols, size_t ncols, const char *where,
                   const nodup_merge_options *opt) {
  *out = NULL;
  return merge_run(out, db, table, cols, ncols, where, opt, NULL, NULL, 0, 1, 1);
}

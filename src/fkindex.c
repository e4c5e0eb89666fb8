/*
 * fkindex.c -- supporting indexes for the foreign keys a merge deletes
 * under.
 *
 * Deleting a loser makes the engine look for rows still referencing it (the
 * foreign key's check, PostgreSQL's RI trigger, SQLite's foreign_keys
 * pragma) once per deleted row. Without an index whose leading columns are
 * the referencing columns, each lookup reads the whole child table: 50,000
 * losers and a 66,666-row child held a table lock for minutes. PostgreSQL
 * creates no index for a foreign key by itself (its manual, "Foreign Keys":
 * "it is often a good idea to index the referencing columns too"), and
 * applications that are not Django or Rails often have none.
 *
 * So a merge (and enforce --merge) first finds the references with no
 * supporting index (fkindex_plan), builds a temporary one for each
 * (fkindex_build: CREATE INDEX CONCURRENTLY on PostgreSQL, outside any
 * transaction, so writers go on; a plain CREATE INDEX on SQLite, one write
 * transaction), and drops them at the end (fkindex_drop) unless asked to
 * keep them. They are named nodup_fk_<hash of table and columns>, so a run
 * killed in between leaves an index that the next run finds, and reuses or
 * drops. scan reports the same gaps, with the rows each delete would read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void fkindex_free(fk_gap *g, size_t n) {
  size_t i;
  if (!g) return;
  for (i = 0; i < n; i++) {
    free(g[i].table);
    free(g[i].qualified);
    free(g[i].index);
    free(g[i].index_qualified);
    strv_free(g[i].cols, g[i].ncols);
  }
  free(g);
}

typedef struct cover_ctx {
  const nodup_db *db;
  char *const *cols;
  size_t n;
  int covered;
} cover_ctx;

/* One index's columns, '\x1f'-joined in index order: does it lead with
 * exactly the foreign key's columns (in any order)? */
static int cover_row(void *vctx, int ncols, const char *const *v) {
  cover_ctx *c = vctx;
  const char *p = v[0];
  size_t k, j;
  (void)ncols;
  if (!p) return 0;
  for (k = 0; k < c->n; k++) {
    const char *end = strchr(p, '\x1f');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    int found = 0;
    for (j = 0; j < c->n && !found; j++)
      found = strlen(c->cols[j]) == len && !strncmp(c->cols[j], p, len);
    if (!found) return 0;
    if (!end) {
      if (k + 1 < c->n) return 0;
      break;
    }
    p = end + 1;
  }
  c->covered = 1;
  return 1;
}

/* The index name: nodup_fk_ and an FNV-1a hash of the table's quoted name
 * and the columns, the same for every run. */
static void gap_name(fk_gap *g, char out[32]) {
  unsigned h = 2166136261u;
  const char *s;
  size_t i;
  for (s = g->qualified; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  for (i = 0; i < g->ncols; i++) {
    h = (h ^ 0x1f) * 16777619u;
    for (s = g->cols[i]; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  }
  snprintf(out, 32, "nodup_fk_%08x", h);
}

/* Is (table, cols) a gap already listed? (Two keys to one table, a --ref
 * repeating a catalog key, two parents' keys to one partition.) */
static int listed(const fk_gap *g, size_t n, const char *table, char *const *cols, size_t ncols) {
  size_t j, k;
  for (j = 0; j < n; j++)
    if (!strcmp(g[j].table, table) && g[j].ncols == ncols) {
      for (k = 0; k < ncols && !strcmp(g[j].cols[k], cols[k]); k++)
        ;
      if (k == ncols) return 1;
    }
  return 0;
}

/* Plan one table: append a gap to g (room for it is there) when no index
 * of `table` leads with cols. */
static int plan_table(nodup_db *db, const char *table, char *const *cols, size_t ncols,
                      fk_gap *g, size_t *n) {
  nodup_table_info *t = NULL;
  cover_ctx c = {db, cols, ncols, 0};
  size_t j, k;
  int rc;
  if (listed(g, *n, table, cols, ncols)) return NODUP_OK;
  if ((rc = db->be->table_info(db, table, &t)) != NODUP_OK) return rc;
  /* A child whose key is exactly the referencing columns is served by its
   * primary key (SQLite's rowid included). */
  if (t->npk == ncols) {
    for (k = 0; k < ncols; k++) {
      for (j = 0; j < t->npk && strcmp(t->pk[j], cols[k]); j++)
        ;
      if (j == t->npk) break;
    }
    c.covered = k == ncols;
  }
  if (!c.covered) rc = db->be->index_columns(db, t, cover_row, &c);
  if (rc == NODUP_OK && !c.covered) {
    fk_gap *x = &g[*n];
    char name[32];
    buf q;
    x->table = nodup_strdup(table);
    x->qualified = nodup_strdup(t->qualified);
    x->cols = calloc(ncols, sizeof *x->cols);
    if (!x->table || !x->qualified || !x->cols) rc = NODUP_ERR_NOMEM;
    for (k = 0; rc == NODUP_OK && k < ncols; k++, x->ncols++)
      if (!(x->cols[k] = nodup_strdup(cols[k]))) rc = NODUP_ERR_NOMEM;
    ++*n;
    if (rc == NODUP_OK) {
      gap_name(x, name);
      x->index = nodup_strdup(name);
      buf_init(&q);
      if (t->schema) {
        sql_ident(&q, t->schema);
        buf_putc(&q, '.');
      }
      sql_ident(&q, name);
      x->index_qualified = q.oom ? NULL : nodup_strdup(buf_str(&q));
      buf_free(&q);
      if (!x->index || !x->index_qualified) rc = NODUP_ERR_NOMEM;
    }
    if (rc == NODUP_OK) {
      /* Counted, for scan's report: what each delete would read. */
      buf_init(&q);
      buf_printf(&q, "SELECT count(*) FROM %s", t->qualified);
      rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, db_read_count, &x->rows);
      buf_free(&q);
    }
  }
  table_info_free(t);
  return rc;
}

typedef struct leaves_ctx {
  char **v;
  size_t n, cap;
  int oom;
} leaves_ctx;

static int leaf_row(void *vctx, int ncols, const char *const *v) {
  leaves_ctx *c = vctx;
  (void)ncols;
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 8;
    char **nv = realloc(c->v, cap * sizeof *nv);
    if (!nv) return c->oom = 1;
    c->v = nv;
    c->cap = cap;
  }
  if (!(c->v[c->n] = nodup_strdup(v[0]))) return c->oom = 1;
  c->n++;
  return 0;
}

int fkindex_plan(nodup_db *db, const nodup_fk_info *fks, size_t nfks,
                 const nodup_fk_info *extra, size_t nextra, fk_gap **out, size_t *nout) {
  fk_gap *g = NULL;
  size_t i, n = 0, cap = nfks + nextra;
  int rc = NODUP_OK;
  *out = NULL;
  *nout = 0;
  if (!cap) return NODUP_OK;
  if (!(g = calloc(cap, sizeof *g))) return NODUP_ERR_NOMEM;
  for (i = 0; i < nfks + nextra && rc == NODUP_OK; i++) {
    const nodup_fk_info *fk = i < nfks ? &fks[i] : &extra[i - nfks];
    leaves_ctx lv = {NULL, 0, 0, 0};
    size_t j;
    /* A partitioned child: an index cannot be built CONCURRENTLY on its
     * parent, and the checks read its partitions, so each leaf partition
     * gets its own (PostgreSQL; none elsewhere). */
    if (db->be->leaves) {
      rc = db->be->leaves(db, fk->table, leaf_row, &lv);
      if (rc == NODUP_OK && lv.oom) rc = NODUP_ERR_NOMEM;
    }
    if (rc == NODUP_OK && n + lv.n + 1 > cap) {
      fk_gap *ng = realloc(g, (n + lv.n + 1) * sizeof *g);
      if (!ng) {
        rc = NODUP_ERR_NOMEM;
      } else {
        g = ng;
        memset(g + cap, 0, (n + lv.n + 1 - cap) * sizeof *g);
        cap = n + lv.n + 1;
      }
    }
    if (rc == NODUP_OK && !lv.n) rc = plan_table(db, fk->table, fk->cols, fk->ncols, g, &n);
    for (j = 0; rc == NODUP_OK && j < lv.n; j++)
      rc = plan_table(db, lv.v[j], fk->cols, fk->ncols, g, &n);
    strv_free(lv.v, lv.n);
  }
  if (rc != NODUP_OK) {
    fkindex_free(g, n);
    return rc;
  }
  if (!n) {
    free(g);
    g = NULL;
  }
  *out = g;
  *nout = n;
  return NODUP_OK;
}

/* One index statement: on PostgreSQL alone (CONCURRENTLY cannot be in a
 * transaction); on SQLite in a write transaction taken like a merge batch's
 * (db_begin_write), which live writers would otherwise keep from it. */
static int ddl(nodup_db *db, const buf *q, int pg) {
  int rc;
  if (q->oom) return NODUP_ERR_NOMEM;
  if (pg) return db->be->query(db, buf_str(q), NULL, 0, NULL, NULL);
  if ((rc = db_begin_write(db)) != NODUP_OK) return rc;
  rc = db->be->query(db, buf_str(q), NULL, 0, NULL, NULL);
  /* A COMMIT that fails (SQLite: busy, I/O, full) may leave the
   * transaction open: roll it back too. */
  if (rc == NODUP_OK) rc = db->be->exec(db, "COMMIT");
  if (rc != NODUP_OK) db_rollback(db, rc);
  return rc;
}

int fkindex_build(nodup_db *db, fk_gap *g, size_t n) {
  size_t i;
  int rc = NODUP_OK;
  int pg = db->be->index_invalid != NULL;   /* CONCURRENTLY, INVALID builds */
  for (i = 0; i < n && rc == NODUP_OK; i++) {
    buf q;
    buf_init(&q);
    if (pg) {
      /* A build a killed run left INVALID cannot be used or re-created:
       * drop it first. A valid one of ours is reused (IF NOT EXISTS). */
      buf_printf(&q, "DROP INDEX CONCURRENTLY IF EXISTS %s", g[i].index_qualified);
      int invalid = 0;
      rc = db->be->index_invalid(db, g[i].index_qualified, &invalid);
      if (rc == NODUP_OK && invalid)
        rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, NULL, NULL);
      buf_reset(&q);
    }
    buf_printf(&q, "CREATE INDEX %sIF NOT EXISTS ", pg ? "CONCURRENTLY " : "");
    sql_ident(&q, g[i].index);
    buf_printf(&q, " ON %s (", g[i].qualified);
    sql_ident_list(&q, g[i].cols, g[i].ncols);
    buf_putc(&q, ')');
    if (rc == NODUP_OK) rc = ddl(db, &q, pg);
    if (rc == NODUP_OK) g[i].built = 1;
    buf_free(&q);
  }
  return rc;
}

int fkindex_drop(nodup_db *db, fk_gap *g, size_t n) {
  size_t i;
  int rc = NODUP_OK, pg = db->be->index_invalid != NULL;
  for (i = 0; i < n; i++) {
    buf q;
    int drc;
    if (!g[i].built) continue;
    buf_init(&q);
    buf_printf(&q, "DROP INDEX %sIF EXISTS %s", pg ? "CONCURRENTLY " : "", g[i].index_qualified);
    drc = ddl(db, &q, pg);
    if (drc == NODUP_OK) g[i].built = 0;
    else if (rc == NODUP_OK) rc = drc;
    buf_free(&q);
  }
  return rc;
}

void fkindex_describe(buf *b, const fk_gap *g, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (i) buf_puts(b, "; ");
    buf_printf(b, "%s on %s (", g[i].index, g[i].qualified);
    sql_ident_list(b, g[i].cols, g[i].ncols);
    buf_putc(b, ')');
  }
}

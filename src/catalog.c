/*
 * catalog.c -- the engine-neutral view of a table's schema.
 *
 * Each backend fills a nodup_table_info from its own catalog (pragmas on
 * SQLite, pg_catalog on PostgreSQL); the rest of the library reads only
 * this shape. Name comparison follows the engine: SQLite identifiers are
 * case-insensitive, PostgreSQL's quoted identifiers are exact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

static void free_strings(char **v, size_t n) {
  size_t i;
  if (!v) return;
  for (i = 0; i < n; i++) free(v[i]);
  free(v);
}

void table_info_free(nodup_table_info *t) {
  size_t i;
  if (!t) return;
  free(t->name);
  free(t->qualified);
  free(t->schema);
  free_strings(t->cols, t->ncols);
  free(t->types);
  free(t->vclass);
  free(t->notnull);
  free_strings(t->pk, t->npk);
  for (i = 0; i < t->nidx; i++) {
    free(t->idx[i].name);
    free(t->idx[i].constraint);
    free_strings(t->idx[i].cols, t->idx[i].ncols);
    free_strings(t->idx[i].terms, t->idx[i].ncols);
    free(t->idx[i].predicate);
  }
  free(t->idx);
  free(t);
}

void fk_info_free(nodup_fk_info *fks, size_t n) {
  size_t i;
  if (!fks) return;
  for (i = 0; i < n; i++) {
    free(fks[i].name);
    free(fks[i].table);
    free_strings(fks[i].cols, fks[i].ncols);
    free_strings(fks[i].refcols, fks[i].ncols);
    free(fks[i].where);
  }
  free(fks);
}

void fk_info_clear(nodup_fk_info *fk) {
  free(fk->name);
  free(fk->table);
  free_strings(fk->cols, fk->ncols);
  free_strings(fk->refcols, fk->ncols);
  free(fk->where);
  memset(fk, 0, sizeof *fk);
}

int fk_same(const nodup_db *db, const char *aq, const nodup_fk_info *a, const char *bq,
            const nodup_fk_info *b) {
  int fold = db_can(db, BE_CAP_FOLDS_NAMES);
  size_t i;
  if (strcmp(aq, bq) != 0 || a->ncols != b->ncols) return 0;
  if ((a->where == NULL) != (b->where == NULL) || (a->where && strcmp(a->where, b->where)))
    return 0;
  for (i = 0; i < a->ncols; i++)
    if (fold ? strcasecmp(a->cols[i], b->cols[i]) || strcasecmp(a->refcols[i], b->refcols[i])
             : strcmp(a->cols[i], b->cols[i]) || strcmp(a->refcols[i], b->refcols[i]))
      return 0;
  return 1;
}

typedef struct fk_collect {
  const nodup_table_info *target;
  nodup_fk_info *fks;
  size_t n;
  char last_id[128];
  int oom;
} fk_collect;

/* Consecutive rows of one constraint are one foreign key. */
static int fk_collect_row(void *ctx, int ncols, const char *const *v) {
  fk_collect *c = ctx;
  nodup_fk_info *fk;
  char **cols, **refs;
  if (!c->n || strcmp(c->last_id, v[0]) != 0 || strcmp(c->fks[c->n - 1].table, v[1]) != 0) {
    nodup_fk_info *fks = realloc(c->fks, (c->n + 1) * sizeof *fks);
    if (!fks) return c->oom = 1;
    c->fks = fks;
    fk = &c->fks[c->n++];
    memset(fk, 0, sizeof *fk);
    fk->name = nodup_strdup(v[0]);
    fk->table = nodup_strdup(v[1]);
    fk->on_delete = v[5] ? v[5][0] : 'a';
    fk->inferred = ncols > 6 && v[6] && !strcmp(v[6], "1");
    snprintf(c->last_id, sizeof c->last_id, "%s", v[0]);
    if (!fk->name || !fk->table) return c->oom = 1;
  }
  fk = &c->fks[c->n - 1];
  cols = realloc(fk->cols, (fk->ncols + 1) * sizeof *cols);
  if (!cols) return c->oom = 1;
  fk->cols = cols;
  refs = realloc(fk->refcols, (fk->ncols + 1) * sizeof *refs);
  if (!refs) return c->oom = 1;
  fk->refcols = refs;
  fk->cols[fk->ncols] = nodup_strdup(v[3]);
  /* SQLite leaves "to" NULL when the key targets the primary key. */
  fk->refcols[fk->ncols] = v[4] ? nodup_strdup(v[4])
                         : (fk->ncols < c->target->npk ? nodup_strdup(c->target->pk[fk->ncols]) : NULL);
  fk->ncols++;
  if (!fk->cols[fk->ncols - 1] || !fk->refcols[fk->ncols - 1]) return c->oom = 1;
  return 0;
}

#define FK_SPACE " \t\n\v\f\r"

/* The condition of "T(C) WHERE cond": NULL when `rest` (what follows the
 * ')') is blank, else *cond gets cond, trimmed; -1 for anything else. */
static int ref_condition(const char *rest, char **cond) {
  const char *end;
  *cond = NULL;
  rest += strspn(rest, FK_SPACE);
  if (!*rest) return 0;
  if (strncasecmp(rest, "WHERE", 5) != 0 || !strchr(FK_SPACE "(", rest[5]) || !rest[5])
    return -1;
  rest += 5;
  rest += strspn(rest, FK_SPACE);
  for (end = rest + strlen(rest); end > rest && strchr(FK_SPACE, end[-1]); end--) {}
  if (end == rest) return -1;
  return (*cond = strndup(rest, (size_t)(end - rest))) ? 0 : -2;
}

/* "TABLE(COL[,COL...]) [WHERE cond]" -> a reference to t's primary key. */
int fk_parse_ref(nodup_db *db, const nodup_table_info *t, const char *spec,
                 nodup_fk_info *fk) {
  const char *open = strchr(spec, '('), *close = open ? strchr(open, ')') : NULL;
  char *inner, *p, *next;
  int rc;
  memset(fk, 0, sizeof *fk);
  if (!open || !close || open == spec)
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "reference \"%s\" is not TABLE(COL[,COL...]) [WHERE condition]", spec);
  if ((rc = ref_condition(close + 1, &fk->where)) != 0)
    return rc == -2 ? NODUP_ERR_NOMEM
                    : nodup_fail(db, NODUP_ERR_USAGE,
                                 "reference \"%s\" is not TABLE(COL[,COL...]) [WHERE condition]",
                                 spec);
  fk->table = strndup(spec, (size_t)(open - spec));
  inner = strndup(open + 1, (size_t)(close - open - 1));
  fk->cols = calloc(t->npk ? t->npk : 1, sizeof *fk->cols);
  fk->refcols = calloc(t->npk ? t->npk : 1, sizeof *fk->refcols);
  if (!fk->table || !inner || !fk->cols || !fk->refcols) {
    free(inner);
    return NODUP_ERR_NOMEM;
  }
  /* As the CLI's --key: names are trimmed of ASCII whitespace, and an
   * empty one ("T(a,)", "T(,a)") is refused rather than skipped, which
   * would silently make another reference. */
  for (p = inner; p; p = next) {
    char *end;
    if ((next = strchr(p, ','))) *next++ = '\0';
    p += strspn(p, FK_SPACE);
    for (end = p + strlen(p); end > p && strchr(FK_SPACE, end[-1]); end--) {}
    *end = '\0';
    if (!*p) {
      free(inner);
      return nodup_fail(db, NODUP_ERR_USAGE, "reference \"%s\" has an empty column name", spec);
    }
    if (fk->ncols == t->npk) {
      fk->ncols++; /* report the mismatch below */
      break;
    }
    fk->cols[fk->ncols] = nodup_strdup(p);
    fk->refcols[fk->ncols] = nodup_strdup(t->pk[fk->ncols]);
    fk->ncols++;
  }
  free(inner);
  if (fk->ncols != t->npk) {
    if (fk->ncols > t->npk) fk->ncols = t->npk;
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "reference \"%s\" must name %zu column(s), one per primary key column of %s",
                      spec, t->npk, t->qualified);
  }
  fk->on_delete = 'a';
  if (fk->where) {
    /* The condition is pasted into the statements that re-point, check and
     * log the reference: one expression on the referencing table, exactly
     * like --where on the merged one. */
    nodup_table_info *child = NULL;
    if ((rc = db->be->table_info(db, fk->table, &child)) == NODUP_OK)
      rc = userexpr_check(db, child, fk->where, 0, "--ref's WHERE");
    table_info_free(child);
    if (rc != NODUP_OK) return rc;
  }
  return NODUP_OK;
}

int fk_collect_query(nodup_db *db, const nodup_table_info *t, const char *sql,
                     const char *param, nodup_fk_info **out, size_t *n) {
  fk_collect c;
  const char *p[1] = {param};
  int rc;
  memset(&c, 0, sizeof c);
  c.target = t;
  rc = db->be->query(db, sql, p, 1, fk_collect_row, &c);
  if (rc == NODUP_OK && c.oom) rc = NODUP_ERR_NOMEM;
  if (rc != NODUP_OK) {
    fk_info_free(c.fks, c.n);
    return rc;
  }
  *out = c.fks;
  *n = c.n;
  return NODUP_OK;
}

/* Key name `given` resolved in t: a column (exactly as given, today's
 * rule, so a column literally named lower(x) stays reachable), else an
 * expression term, spelled canonically into *out; *pos its column. */
static int key_name(nodup_db *db, const nodup_table_info *t, size_t i, const char *given,
                    char **out, int *pos) {
  key_term term;
  buf col, spelled;
  const char *why;
  int c = table_info_column(db, t, given), rc = NODUP_OK;
  *out = NULL;
  if (c >= 0) {
    char *scratch = malloc(strlen(t->cols[c]) + 1);
    int odd = scratch && keyterm_decode(t->cols[c], &term, scratch);
    free(scratch);
    if (!scratch) return NODUP_ERR_NOMEM;
    if (odd)
      return nodup_fail(db, NODUP_ERR_USAGE,
                        "column \"%s\" is named like an expression key term: nodup cannot "
                        "key on it", t->cols[c]);
    *pos = c;
    return (*out = nodup_strdup(t->cols[c])) ? NODUP_OK : NODUP_ERR_NOMEM;
  }
  if (!strchr(given, '(') && given[0] != '"')
    return nodup_fail(db, NODUP_ERR_NO_COLUMN, "table %s has no column \"%s\"", t->qualified,
                      given);
  buf_init(&col);
  buf_init(&spelled);
  if ((why = keyterm_parse(given, 0, &term, &col)) != NULL) {
    rc = nodup_fail(db, NODUP_ERR_USAGE,
                    "key term %zu \"%s\": %s; a key term is a column, or a column inside "
                    "lower, upper, trim, ltrim or rtrim (lower(trim(email)))",
                    i + 1, given, why);
  } else if ((c = table_info_column(db, t, buf_str(&col))) < 0) {
    rc = nodup_fail(db, NODUP_ERR_NO_COLUMN, "table %s has no column \"%s\" (key term \"%s\")",
                    t->qualified, buf_str(&col), given);
  } else {
    term.column = t->cols[c];
    sql_key_term(&spelled, &term, NULL);
    *pos = c;
    if (spelled.oom || !(*out = nodup_strdup(term.nfunc ? buf_str(&spelled) : t->cols[c])))
      rc = NODUP_ERR_NOMEM;
  }
  buf_free(&col);
  buf_free(&spelled);
  return rc;
}

int table_info_key(nodup_db *db, const nodup_table_info *t, const char *const *cols,
                   size_t n, char ***names, int **idx) {
  char **out = calloc(n ? n : 1, sizeof *out);
  int *pos = calloc(n ? n : 1, sizeof *pos);
  size_t i, j;
  int rc = NODUP_OK;
  if (!out || !pos) rc = NODUP_ERR_NOMEM;
  for (i = 0; rc == NODUP_OK && i < n; i++) {
    if (!cols[i] || !*cols[i]) {
      rc = nodup_fail(db, NODUP_ERR_USAGE, "key column %zu is empty", i + 1);
      break;
    }
    if ((rc = key_name(db, t, i, cols[i], &out[i], &pos[i])) != NODUP_OK) break;
    /* Two terms over one column (email, lower(email)) would make the key
     * no narrower than the stricter one: refused, as a column twice is. */
    for (j = 0; j < i; j++)
      if (pos[j] == pos[i])
        rc = nodup_fail(db, NODUP_ERR_USAGE, "column \"%s\" is in the key twice%s",
                        strcmp(out[i], t->cols[pos[i]]) ? t->cols[pos[i]] : cols[i],
                        strcmp(out[i], t->cols[pos[i]]) || strcmp(out[j], t->cols[pos[j]])
                            ? " (one key term per column)"
                            : "");
  }
  if (rc != NODUP_OK) {
    free_strings(out, out ? n : 0);
    free(pos);
    out = NULL;
    pos = NULL;
  }
  *names = out;
  if (idx) *idx = pos;
  else free(pos);
  return rc;
}

int table_info_column(const nodup_db *db, const nodup_table_info *t,
                      const char *name) {
  size_t i;
  int fold = db_can(db, BE_CAP_FOLDS_NAMES);
  for (i = 0; i < t->ncols; i++)
    if (fold ? strcasecmp(t->cols[i], name) == 0 : strcmp(t->cols[i], name) == 0)
      return (int)i;
  return -1;
}

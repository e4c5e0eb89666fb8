/*
 * suspect.c -- references the catalog does not declare.
 *
 * A merge re-points what foreign keys declare; schemas hold other
 * references too: a column named like a declared key's column, <table>_id,
 * Django's generic relations (content_type_id + object_id) and Rails'
 * polymorphic associations (<x>_type + <x>_id). A merge that does not know
 * them leaves their rows pointing at deleted rows, and says nothing. This
 * file suspects them from names and types (one catalog query through the
 * backend's columns(), suspect_find), counts the rows that point at a
 * merge's losers with the mapping scan uses (suspect_count) and words the
 * refusal (suspect_refuse). scan lists them; merge refuses to start while
 * one points at a loser, until the caller re-points it (--ref, with a WHERE
 * for a polymorphic one) or leaves it on purpose (--ignore-ref).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* One row of the backend's columns(). */
typedef struct col_row {
  char *schema, *table, *spell, *col, *type, *fk_target;
  int pk, partition;
  int identity;     /* the table's whole primary key: its own id, no reference */
} col_row;

typedef struct col_list {
  col_row *v;
  size_t n;
  int oom;
} col_list;

static char *dup_null(const char *s) { return s ? nodup_strdup(s) : NULL; }

static int read_col(void *ctx, int n, const char *const *v) {
  col_list *l = ctx;
  col_row *r, *grown;
  if (n < 8) return l->oom = 1;
  if (!(grown = realloc(l->v, (l->n + 1) * sizeof *grown))) return l->oom = 1;
  l->v = grown;
  r = &l->v[l->n++];
  memset(r, 0, sizeof *r);
  r->schema = dup_null(v[0]);
  r->table = dup_null(v[1]);
  r->spell = dup_null(v[2]);
  r->col = dup_null(v[3]);
  r->type = dup_null(v[4]);
  r->fk_target = dup_null(v[6]);
  r->pk = v[5] && strcmp(v[5], "0") != 0;
  r->partition = v[7] && strcmp(v[7], "0") != 0;
  if (!r->table || !r->spell || !r->col || !r->type || (v[0] && !r->schema) ||
      (v[6] && !r->fk_target))
    l->oom = 1;
  return 0;
}

static void col_list_free(col_list *l) {
  size_t i;
  for (i = 0; i < l->n; i++) {
    col_row *r = &l->v[i];
    free(r->schema);
    free(r->table);
    free(r->spell);
    free(r->col);
    free(r->type);
    free(r->fk_target);
  }
  free(l->v);
}

/* Identifiers as the engine compares them: SQLite folds case. */
static int ident_eq(const nodup_db *db, const char *a, const char *b) {
  if (!a || !b) return a == b;
  return db_can(db, BE_CAP_FOLDS_NAMES) ? !strcasecmp(a, b) : !strcmp(a, b);
}

/* Row r is in table (schema, name). */
static int row_in(const nodup_db *db, const col_row *r, const char *schema, const char *name) {
  return ident_eq(db, r->schema, schema) && ident_eq(db, r->table, name);
}

/* The part of a spelling after its schema: "public.django_content_type". */
static const char *bare(const char *spell) {
  const char *dot = strrchr(spell, '.');
  return dot ? dot + 1 : spell;
}

/* Name rules compare without case: users_id, Users_id and USERS_ID are one
 * convention. `prefix` + `suffix` == name. */
static int named(const char *name, const char *prefix, size_t plen, const char *suffix) {
  size_t n = strlen(name), s = strlen(suffix);
  return n == plen + s && !strncasecmp(name, prefix, plen) && !strcasecmp(name + plen, suffix);
}

/* name ends with suffix (without case); *plen gets the length before it,
 * which may be 0. */
static int ends_with(const char *name, const char *suffix, size_t *plen) {
  size_t n = strlen(name), s = strlen(suffix);
  if (n < s || strcasecmp(name + n - s, suffix) != 0) return 0;
  *plen = n - s;
  return 1;
}

/* The singular of an English plural table name as Rails forms its
 * associations (users -> user, categories -> category, boxes -> box,
 * addresses -> address), into out; the name itself when it is not plural. */
static void singular(const char *name, char *out, size_t size) {
  size_t n = strlen(name), cut = 0;
  const char *add = "";
  if (n > 3 && !strcasecmp(name + n - 3, "ies")) cut = 3, add = "y";
  else if (n > 4 && (!strcasecmp(name + n - 4, "sses") || !strcasecmp(name + n - 4, "ches") ||
                     !strcasecmp(name + n - 4, "shes")))
    cut = 2;
  else if (n > 3 && (!strcasecmp(name + n - 3, "xes") || !strcasecmp(name + n - 3, "zes")))
    cut = 2;
  else if (n > 1 && (name[n - 1] | 0x20) == 's' && (name[n - 2] | 0x20) != 's')
    cut = 1;
  snprintf(out, size, "%.*s%s", (int)(n - cut), name, add);
}

/* The class name Rails gives table `name`: blog_posts -> BlogPost. */
static void rails_class(const char *name, buf *out) {
  char one[256];
  const char *p;
  int up = 1;
  singular(name, one, sizeof one);
  for (p = one; *p; p++) {
    if (*p == '_') {
      up = 1;
      continue;
    }
    buf_putc(out, up ? (char)toupper((unsigned char)*p) : *p);
    up = 0;
  }
}

/* A column name as users write it in a condition: bare when the engine
 * reads it back unchanged, else quoted. */
static void cond_ident(buf *q, const nodup_db *db, const char *name) {
  int fold = db_can(db, BE_CAP_FOLDS_NAMES);
  const char *p = name;
  int plain = (*p == '_' || (*p >= 'a' && *p <= 'z') || (fold && *p >= 'A' && *p <= 'Z'));
  for (; plain && *p; p++)
    plain = *p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            (fold && *p >= 'A' && *p <= 'Z');
  if (plain) buf_puts(q, name);
  else sql_ident(q, name);
}

/* What the Django content types say about t: its id and model name. */
typedef struct ct_info {
  int asked;
  char id[32];
  char model[128];
} ct_info;

static int read_ct(void *ctx, int n, const char *const *v) {
  ct_info *ct = ctx;
  (void)n;
  if (v[0]) snprintf(ct->id, sizeof ct->id, "%s", v[0]);
  if (v[1]) snprintf(ct->model, sizeof ct->model, "%s", v[1]);
  return 1;
}

/* Django names a model's table app_label + '_' + model, and lists every
 * model in django_content_type (table `spell`): the row naming t, if any. */
static int django_ct(nodup_db *db, const nodup_table_info *t, const char *spell, ct_info *ct) {
  nodup_table_info *ctt = NULL;
  const char *p[1] = {t->name};
  buf q;
  int rc;
  if (ct->asked) return NODUP_OK;
  ct->asked = 1;
  if ((rc = db->be->table_info(db, spell, &ctt)) != NODUP_OK) return rc;
  buf_init(&q);
  buf_printf(&q, "SELECT CAST(id AS TEXT), model FROM %s WHERE app_label || '_' || model = ",
             ctt->qualified);
  sql_param(&q, db, 1);
  buf_puts(&q, " ORDER BY id");
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), p, 1, read_ct, ct);
  buf_free(&q);
  table_info_free(ctt);
  return rc;
}

/* A resolved "TABLE(COL)": the table as the catalog names it and the
 * column in its spelling. */
typedef struct named_col {
  char *schema, *name, *col;
} named_col;

static void named_cols_free(named_col *v, size_t n) {
  size_t i;
  for (i = 0; v && i < n; i++) {
    free(v[i].schema);
    free(v[i].name);
    free(v[i].col);
  }
  free(v);
}

/* Resolve table `spell` and column `col` into *nc (by the catalog). */
static int resolve(nodup_db *db, const char *spell, const char *col, const char *what,
                   named_col *nc) {
  nodup_table_info *t = NULL;
  int rc, c;
  if ((rc = db->be->table_info(db, spell, &t)) != NODUP_OK) return rc;
  if ((c = table_info_column(db, t, col)) < 0) {
    rc = nodup_fail(db, NODUP_ERR_NO_COLUMN, "%s: table %s has no column \"%s\"", what,
                    t->qualified, col);
  } else {
    nc->schema = dup_null(t->schema);
    nc->name = nodup_strdup(t->name);
    nc->col = nodup_strdup(t->cols[c]);
    if ((t->schema && !nc->schema) || !nc->name || !nc->col) rc = NODUP_ERR_NOMEM;
  }
  table_info_free(t);
  return rc;
}

/* "TABLE(COL)", one column and nothing after it: an ignored suspect. */
static int parse_ignore(nodup_db *db, const char *spec, named_col *nc) {
  const char *open = strchr(spec, '('), *close = open ? strchr(open, ')') : NULL;
  char *table, *col, *p, *end;
  int rc;
  if (!open || !close || open == spec || close[1 + strspn(close + 1, " \t\n\r")] != '\0' ||
      memchr(open, ',', (size_t)(close - open)))
    return nodup_fail(db, NODUP_ERR_USAGE, "ignored reference \"%s\" is not TABLE(COL)", spec);
  table = strndup(spec, (size_t)(open - spec));
  col = strndup(open + 1, (size_t)(close - open - 1));
  if (!table || !col) {
    free(table);
    free(col);
    return NODUP_ERR_NOMEM;
  }
  for (p = col; *p == ' ' || *p == '\t'; p++) {}
  for (end = p + strlen(p); end > p && (end[-1] == ' ' || end[-1] == '\t'); end--) {}
  *end = '\0';
  rc = *p ? resolve(db, table, p, "ignored reference", nc)
          : nodup_fail(db, NODUP_ERR_USAGE, "ignored reference \"%s\" has an empty column name",
                       spec);
  free(table);
  free(col);
  return rc;
}

static int listed(const nodup_db *db, const named_col *v, size_t n, const col_row *r) {
  size_t i;
  for (i = 0; i < n; i++)
    if (row_in(db, r, v[i].schema, v[i].name) && ident_eq(db, r->col, v[i].col)) return 1;
  return 0;
}

/* Row index of column `col` in r's table, or -1. */
static long sibling(const nodup_db *db, const col_list *l, const col_row *r, const char *col) {
  size_t i;
  for (i = 0; i < l->n; i++)
    if (row_in(db, &l->v[i], r->schema, r->table) && !strcasecmp(l->v[i].col, col))
      return (long)i;
  return -1;
}

/* The suspicion for row r, if any: its kind, condition and reason. */
typedef struct verdict {
  int kind;
  buf cond, why;
  int ct_unknown;   /* Django pair whose content type is not in django_content_type */
} verdict;

/* Django: r is <p>object_id (or <p>id for <p>content_type_id, <p>ct_id)
 * beside a foreign key to django_content_type. */
static int judge_django(nodup_db *db, const nodup_table_info *t, const col_list *l,
                        const col_row *r, ct_info *ct, verdict *v) {
  size_t i, plen;
  int rc;
  for (i = 0; i < l->n; i++) {
    const col_row *c = &l->v[i];
    if (!c->fk_target || strcasecmp(bare(c->fk_target), "django_content_type") ||
        !row_in(db, c, r->schema, r->table))
      continue;
    if (!ends_with(c->col, "content_type_id", &plen) && !ends_with(c->col, "ct_id", &plen))
      continue;
    if (!named(r->col, c->col, plen, "object_id") && !(plen && named(r->col, c->col, plen, "id")))
      continue;
    if ((rc = django_ct(db, t, c->fk_target, ct)) != NODUP_OK) return rc;
    v->kind = NODUP_SUSPECT_DJANGO;
    buf_printf(&v->why, "a Django generic relation: %s beside %s, a foreign key to %s", r->col,
               c->col, c->fk_target);
    if (ct->id[0]) {
      cond_ident(&v->cond, db, c->col);
      buf_printf(&v->cond, " = %s", ct->id);
      buf_printf(&v->why, ", where %s's content type is %s", t->name, ct->id);
    } else {
      v->ct_unknown = 1;
      buf_printf(&v->why, "; no row of it names %s (app_label || '_' || model), so every row "
                          "counts until --ref gives the content type",
                 t->name);
    }
    return NODUP_OK;
  }
  return NODUP_OK;
}

/* Rails: r is <x>_id beside a text <x>_type. */
static void judge_rails(const nodup_db *db, const nodup_table_info *t, const col_list *l,
                        const col_row *r, verdict *v) {
  char typecol[256];
  size_t plen;
  long s;
  if (!ends_with(r->col, "_id", &plen) || !plen || plen + 6 > sizeof typecol) return;
  snprintf(typecol, sizeof typecol, "%.*s_type", (int)plen, r->col);
  if ((s = sibling(db, l, r, typecol)) < 0 || strcmp(l->v[s].type, "text") != 0) return;
  v->kind = NODUP_SUSPECT_RAILS;
  cond_ident(&v->cond, db, l->v[s].col);
  buf_puts(&v->cond, " = '");
  rails_class(t->name, &v->cond);
  buf_putc(&v->cond, '\'');
  buf_printf(&v->why, "a Rails polymorphic association: %s beside %s, rows of class ", r->col,
             l->v[s].col);
  rails_class(t->name, &v->why);
}

static int judge(nodup_db *db, const nodup_table_info *t, const col_list *l, const col_row *r,
                 const nodup_fk_info *fks, size_t nfks, ct_info *ct, const char *ct_spell,
                 verdict *v) {
  char one[256];
  size_t i;
  int rc;
  /* Only a schema with django_content_type has Django pairs. */
  if (ct_spell && ((rc = judge_django(db, t, l, r, ct, v)) != NODUP_OK || v->kind)) return rc;
  judge_rails(db, t, l, r, v);
  if (v->kind) return NODUP_OK;
  for (i = 0; i < nfks; i++) {
    const nodup_fk_info *fk = &fks[i];
    if (fk->ncols == 1 && ident_eq(db, fk->refcols[0], t->pk[0]) &&
        !strcasecmp(fk->cols[0], r->col)) {
      v->kind = NODUP_SUSPECT_SAME_NAME;
      buf_printf(&v->why, "same name and type as %s(%s), %s %s", fk->table, fk->cols[0],
                 fk->inferred ? "inferred from sibling partitions' foreign key"
                              : "a reference by foreign key",
                 fk->name);
      return NODUP_OK;
    }
  }
  singular(t->name, one, sizeof one);
  if (named(r->col, t->name, strlen(t->name), "_id") || named(r->col, one, strlen(one), "_id")) {
    v->kind = NODUP_SUSPECT_TABLE_ID;
    buf_printf(&v->why, "named after %s, with the type of its primary key", t->name);
    return NODUP_OK;
  }
  if (ct_spell) {
    if ((rc = django_ct(db, t, ct_spell, ct)) != NODUP_OK) return rc;
    if (ct->model[0] && named(r->col, ct->model, strlen(ct->model), "_id")) {
      v->kind = NODUP_SUSPECT_TABLE_ID;
      buf_printf(&v->why, "named after Django's model %s (table %s), with the type of its "
                          "primary key",
                 ct->model, t->name);
    }
  }
  return NODUP_OK;
}

/* Add row r's suspicion to the list. */
static int add_suspect(nodup_db *db, const nodup_table_info *t, const col_row *r,
                       const verdict *v, nodup_scan_suspect **out, size_t *n) {
  nodup_scan_suspect *s, *grown;
  nodup_table_info *c = NULL;
  buf e;
  int rc;
  if (v->cond.oom || v->why.oom) return NODUP_ERR_NOMEM;
  if ((rc = db->be->table_info(db, r->spell, &c)) != NODUP_OK) return rc;
  if (!(grown = realloc(*out, (*n + 1) * sizeof *grown))) {
    table_info_free(c);
    return NODUP_ERR_NOMEM;
  }
  *out = grown;
  s = &grown[(*n)++];
  memset(s, 0, sizeof *s);
  s->kind = v->kind;
  s->table = nodup_strdup(c->qualified);
  s->table_schema = dup_null(c->schema);
  s->table_name = nodup_strdup(c->name);
  s->column = nodup_strdup(r->col);
  s->ref_column = nodup_strdup(t->pk[0]);
  s->condition = v->cond.len ? nodup_strdup(buf_str(&v->cond)) : NULL;
  s->why = nodup_strdup(buf_str(&v->why));
  buf_init(&e);
  buf_printf(&e, "%s(%s)", r->spell, r->col);
  s->ignore = e.oom ? NULL : nodup_strdup(buf_str(&e));
  if (!v->ct_unknown) {
    if (s->condition) buf_printf(&e, " WHERE %s", s->condition);
    s->ref = e.oom ? NULL : nodup_strdup(buf_str(&e));
  }
  buf_free(&e);
  table_info_free(c);
  if (!s->table || !s->table_name || !s->column || !s->ref_column || !s->why ||
      !s->ignore || (v->cond.len && !s->condition) || (!v->ct_unknown && !s->ref))
    return NODUP_ERR_NOMEM;
  return NODUP_OK;
}

void suspect_free(nodup_scan_suspect *s, size_t n) {
  size_t i;
  for (i = 0; s && i < n; i++) {
    free(s[i].table);
    free(s[i].table_schema);
    free(s[i].table_name);
    free(s[i].column);
    free(s[i].ref_column);
    free(s[i].condition);
    free(s[i].ref);
    free(s[i].ignore);
    free(s[i].why);
  }
  free(s);
}

int suspect_find(nodup_db *db, const nodup_table_info *t, char *const *key, size_t nkey,
                 const nodup_fk_info *fks, size_t nfks, const nodup_fk_info *user,
                 size_t nuser, const char *const *ignore, size_t nignore,
                 nodup_scan_suspect **out, size_t *n) {
  col_list l = {NULL, 0, 0};
  named_col *skip = calloc(nuser + nignore + 1, sizeof *skip);
  size_t nskip = 0, i, j;
  const char *reftype = NULL, *ct_spell = NULL;
  ct_info ct;
  int rc = NODUP_OK;

  *out = NULL;
  *n = 0;
  memset(&ct, 0, sizeof ct);
  if (!skip) return NODUP_ERR_NOMEM;
  /* What the caller names is checked even when nothing can be suspected:
   * a typo in --ignore-ref must not pass for a decision. */
  for (i = 0; rc == NODUP_OK && i < nignore; i++)
    if ((rc = parse_ignore(db, ignore[i] ? ignore[i] : "", &skip[nskip])) == NODUP_OK) nskip++;
  for (i = 0; rc == NODUP_OK && i < nuser; i++)
    if (user[i].ncols == 1 &&
        (rc = resolve(db, user[i].table, user[i].cols[0], "reference", &skip[nskip])) == NODUP_OK)
      nskip++;
  if (rc != NODUP_OK || t->npk != 1 || !db->be->columns) goto done;
  if ((rc = db->be->columns(db, read_col, &l)) != NODUP_OK) goto done;
  if (l.oom) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  for (i = 0; i < l.n; i++) {
    if (row_in(db, &l.v[i], t->schema, t->name) && ident_eq(db, l.v[i].col, t->pk[0]))
      reftype = l.v[i].type;
    if (l.v[i].fk_target && !strcasecmp(bare(l.v[i].fk_target), "django_content_type"))
      ct_spell = l.v[i].fk_target;
  }
  /* A primary key of one column is the table's own identity; a column of a
   * composite one may well be a reference (a link table without keys). The
   * rows come grouped by table. */
  for (i = 0; i < l.n; i = j) {
    size_t npk = 0;
    for (j = i; j < l.n && row_in(db, &l.v[j], l.v[i].schema, l.v[i].table); j++) npk += l.v[j].pk;
    for (j = i; j < l.n && row_in(db, &l.v[j], l.v[i].schema, l.v[i].table); j++)
      l.v[j].identity = l.v[j].pk && npk == 1;
  }
  /* SQLite's implicit rowid is an integer, and in no column list. */
  if (!reftype && db_can(db, BE_CAP_ROWID) && !strcasecmp(t->pk[0], "rowid"))
    reftype = "int";
  if (!reftype) goto done;
  for (i = 0; rc == NODUP_OK && i < l.n; i++) {
    const col_row *r = &l.v[i];
    verdict v;
    int own_key = 0;
    if (r->identity || r->partition || r->fk_target || strcmp(r->type, reftype) != 0 ||
        listed(db, skip, nskip, r))
      continue;
    if (row_in(db, r, t->schema, t->name))
      for (j = 0; j < nkey; j++) {
        int c = keyterm_column(db, t, key[j]);   /* lower(email) is email's */
        own_key |= ident_eq(db, r->col, c >= 0 ? t->cols[c] : key[j]);
      }
    if (own_key) continue;
    memset(&v, 0, sizeof v);
    buf_init(&v.cond);
    buf_init(&v.why);
    rc = judge(db, t, &l, r, fks, nfks, &ct, ct_spell, &v);
    if (rc == NODUP_OK && v.kind) rc = add_suspect(db, t, r, &v, out, n);
    buf_free(&v.cond);
    buf_free(&v.why);
  }
done:
  col_list_free(&l);
  named_cols_free(skip, nskip);
  if (rc != NODUP_OK) {
    suspect_free(*out, *n);
    *out = NULL;
    *n = 0;
  }
  return rc;
}

int suspect_count(nodup_db *db, const nodup_table_info *t, char *const *key, size_t nkey,
                  const char *where, int nulls_equal, const char *keep,
                  nodup_scan_suspect *s, size_t n) {
  char *pk[1];
  size_t i;
  buf q;
  int rc = NODUP_OK;
  if (!n) return NODUP_OK;
  pk[0] = t->pk[0];
  buf_init(&q);
  for (i = 0; rc == NODUP_OK && i < n; i++) {
    buf_reset(&q);
    scan_mapping_cte(&q, t, key, nkey, where, nulls_equal, keep, pk, 1);
    buf_printf(&q, "SELECT count(*) FROM %s AS c JOIN nodup_map AS m ON c.", s[i].table);
    sql_ident(&q, s[i].column);
    buf_puts(&q, " = m.nodup_r1");
    if (s[i].condition) buf_printf(&q, " AND (%s)", s[i].condition);
    s[i].rows = 0;
    rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, db_read_count, &s[i].rows);
  }
  buf_free(&q);
  return rc;
}

/* s as one shell word, since users paste what the refusal suggests: as it
 * is when no shell gives its characters a meaning, else single-quoted, or
 * double-quoted when it holds a single quote and nothing a shell expands
 * inside double quotes (a Rails condition: x_type = 'Post'), else
 * single-quoted with each quote as '\''. */
static void shell_word(buf *b, const char *s) {
  static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "0123456789@%+=:,./_-";
  const char *p;
  if (*s && strspn(s, plain) == strlen(s)) {
    buf_puts(b, s);
    return;
  }
  if (strchr(s, '\'') && !strpbrk(s, "\"$`\\!")) {
    buf_printf(b, "\"%s\"", s);
    return;
  }
  buf_putc(b, '\'');
  for (p = s; *p; p++)
    if (*p == '\'') buf_puts(b, "'\\''");
    else buf_putc(b, *p);
  buf_putc(b, '\'');
}

static const char *kind_words(int kind) {
  switch (kind) {
  case NODUP_SUSPECT_SAME_NAME: return "named like a declared foreign key's column";
  case NODUP_SUSPECT_TABLE_ID: return "named after the table";
  case NODUP_SUSPECT_DJANGO: return "a Django generic relation";
  default: return "a Rails polymorphic association";
  }
}

int suspect_refuse(nodup_db *db, const nodup_table_info *t, const nodup_scan_suspect *s,
                   size_t n, const char *when) {
  size_t i, hits = 0;
  buf m;
  int rc;
  buf_init(&m);
  for (i = 0; i < n; i++) {
    if (!s[i].rows) continue;
    buf_printf(&m, "%s%lld row(s) of %s (%s)%s%s point at rows of %s this merge would delete "
                   "and no foreign key declares it (%s): re-point them with --ref ",
               hits++ ? "; " : "", s[i].rows, s[i].table, s[i].column,
               s[i].condition ? " WHERE " : "", s[i].condition ? s[i].condition : "",
               t->qualified, kind_words(s[i].kind));
    if (s[i].ref) {
      shell_word(&m, s[i].ref);
    } else {
      buf e;
      buf_init(&e);
      buf_printf(&e, "%s WHERE <content type column> = <%s's content type id>", s[i].ignore,
                 t->name);
      shell_word(&m, buf_str(&e));
      if (e.oom) m.oom = 1;
      buf_free(&e);
    }
    buf_puts(&m, " or leave them with --ignore-ref ");
    shell_word(&m, s[i].ignore);
  }
  if (!hits) {
    buf_free(&m);
    return NODUP_OK;
  }
  rc = m.oom ? NODUP_ERR_NOMEM
             : nodup_fail(db, NODUP_ERR_REFERENCED, "%s; %s", buf_str(&m), when);
  buf_free(&m);
  return rc;
}

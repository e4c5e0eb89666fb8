/*
 * key.c -- prepared keys: which unique index backs a key, and the
 * statements that use it.
 *
 * A key is only safe when a unique index makes exactly its columns (and its
 * predicate) unique: a narrower index lets a lookup "find" a row that
 * differs in a column the caller cares about; a wider one lets duplicates
 * through (seed 001). The engines' own ON CONFLICT inference decides; the
 * catalog explains refusals and names the index where the engine cannot.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define KEY_MAX_COLS 32

static int same_name(const nodup_db *db, const char *a, const char *b) {
  return db_can(db, BE_CAP_FOLDS_NAMES) ? strcasecmp(a, b) == 0 : strcmp(a, b) == 0;
}

/* Key terms compare by their canonical spelling (table_info_key's and the
 * catalog's, keyterm_index): lower("email") is backed by an index on
 * lower(email), lower((email)::text) or LOWER("email") alike. */
static int index_has(const nodup_db *db, const nodup_index_info *ix, const char *col) {
  size_t i;
  for (i = 0; i < ix->ncols; i++)
    if (ix->terms && ix->terms[i] && same_name(db, ix->terms[i], col)) return 1;
  return 0;
}

/* Number of key columns the index has, and whether it has others. */
static size_t index_overlap(const nodup_db *db, const nodup_index_info *ix,
                            char *const *cols, size_t n, int *extra) {
  size_t i, k = 0;
  for (i = 0; i < n; i++) k += index_has(db, ix, cols[i]);
  *extra = ix->ncols > k;
  return k;
}

/* Whether ix has a term over one of the key's columns that is none of the
 * key's terms: lower(trim(email)) for a key on lower(email) or email. */
static int index_rewraps(const nodup_db *db, const nodup_table_info *t,
                         const nodup_index_info *ix, char *const *cols, size_t n) {
  size_t i, j;
  for (j = 0; j < ix->ncols; j++) {
    int c = ix->terms && ix->terms[j] ? keyterm_column(db, t, ix->terms[j]) : -1;
    if (c < 0) continue;
    for (i = 0; i < n; i++)
      if (keyterm_column(db, t, cols[i]) == c && !same_name(db, ix->terms[j], cols[i])) return 1;
  }
  return 0;
}

/* The CREATE UNIQUE INDEX that would back the key (terms) WHERE where. */
static void ddl(buf *b, const nodup_table_info *t, const char *table,
                const key_term *terms, size_t n, const char *where) {
  buf name;
  size_t i;
  buf_init(&name);
  buf_puts(&name, t ? t->name : table);
  for (i = 0; i < n; i++) keyterm_name(&name, &terms[i]);
  if (where) {
    /* A partial and a full index on the same columns need two names. */
    unsigned h = 2166136261u;
    const char *w;
    for (w = where; *w; w++) h = (h ^ (unsigned char)*w) * 16777619u;
    buf_printf(&name, "_where_%08x", h);
  }
  buf_puts(&name, "_key");
  if (name.len > 63) {
    /* Truncated names could collide; a hash of the full name keeps them
     * apart (FNV-1a). */
    unsigned h = 2166136261u;
    for (i = 0; i < name.len; i++) h = (h ^ (unsigned char)name.p[i]) * 16777619u;
    name.len = 54;
    buf_printf(&name, "_%08x", h);
  }
  buf_puts(b, "CREATE UNIQUE INDEX ");
  sql_ident(b, buf_str(&name));
  buf_puts(b, " ON ");
  if (t) buf_puts(b, t->qualified);
  else sql_ident(b, table);
  buf_puts(b, " (");
  sql_key_list(b, terms, n, NULL);
  buf_putc(b, ')');
  if (where) buf_printf(b, " WHERE %s", where);
  buf_putc(b, ';');
  buf_free(&name);
}

/* s as one shell word: single quotes, each ' written '\'' (POSIX sh), so a
 * refusal's suggestion can be pasted into a command line as it is. */
static void shell_quote(buf *b, const char *s) {
  buf_putc(b, '\'');
  for (; *s; s++) {
    if (*s == '\'') buf_puts(b, "'\\''");
    else buf_putc(b, *s);
  }
  buf_putc(b, '\'');
}

/* Explain why no index backs the key, using the indexes that come close,
 * and end with the DDL that would back it. */
static int refuse(nodup_db *db, const nodup_table_info *t, char *const *cols,
                  size_t n, const char *where, const char *reason) {
  key_term *terms = key_terms_of(cols, n);
  buf m;
  size_t i, j;
  int extra;
  if (!terms) return NODUP_ERR_NOMEM;
  buf_init(&m);
  buf_printf(&m, "table %s: no unique index backs the key (", t->qualified);
  sql_key_list(&m, terms, n, NULL);
  buf_putc(&m, ')');
  if (where) buf_printf(&m, " WHERE %s", where);
  if (reason && *reason) buf_printf(&m, " (%s)", reason);
  buf_puts(&m, ".");
  for (i = 0; i < t->nidx; i++) {
    const nodup_index_info *ix = &t->idx[i];
    size_t k = index_overlap(db, ix, cols, n, &extra);
    int rewraps = index_rewraps(db, t, ix, cols, n);
    if (!k && !rewraps) continue;
    buf_printf(&m, " Index \"%s\" is on (", ix->name);
    for (j = 0; j < ix->ncols; j++)
      buf_printf(&m, "%s%s", j ? ", " : "",
                 ix->cols[j] ? ix->cols[j] : ix->terms && ix->terms[j] ? ix->terms[j] : "<expression>");
    buf_putc(&m, ')');
    if (ix->predicate) buf_printf(&m, " WHERE %s", ix->predicate);
    if (rewraps) {
      buf_puts(&m, ": it has a key column in another form (plain, or in other "
                   "functions); an index backs a key only when its terms are exactly "
                   "the key's.");
    } else if (k == n && !extra) {
      if (ix->predicate && !where) {
        buf_puts(&m, ": give the key its predicate (--where ");
        shell_quote(&m, ix->predicate);
        buf_puts(&m, ").");
      } else if (ix->predicate) {
        buf_puts(&m, ": the key's predicate must be the index's (--where ");
        shell_quote(&m, ix->predicate);
        buf_puts(&m, "); a narrower or wider one would find rows the index does not "
                     "arbitrate, or miss rows it does.");
      } else if (ix->deferrable) {
        buf_puts(&m, ": it is DEFERRABLE.");
      } else {
        buf_puts(&m, ".");
      }
    } else if (extra) {
      buf_puts(&m, ": it has columns the key lacks; a lookup without them can "
                   "still create duplicates of the key (move them from the "
                   "defaults into the key).");
    } else {
      buf_puts(&m, ": it already makes fewer columns unique; key on those and "
                   "pass the rest as defaults.");
    }
  }
  buf_puts(&m, " To back this key: ");
  ddl(&m, t, t->name, terms, n, where);
  free(terms);
  return db_fail_buf(db, NODUP_ERR_UNBACKED, &m);
}

static void shape_clear(nodup_db *db, key_shape *s);

/* Which indexes could back (cols) WHERE where, from the catalog alone:
 * the same set of columns, not DEFERRABLE (a deferrable constraint cannot
 * arbitrate ON CONFLICT), and the same predicate, compared in the engine's
 * canonical form (be->predicate_canon) so that `is_active = true` and
 * `"is_active"` are one predicate and `is_active AND title = 'x'` is not
 * `is_active`. *effective gets the predicate text to use in statements:
 * the index's own when the canonical forms matched (SQLite's ON CONFLICT
 * matching is structural, and the index's text is what it matches), else
 * the key's. Returns how many indexes qualify, or may qualify where the
 * engine has no canonical form (SQLite, beyond boolean tests), in *found;
 * an error (a predicate the engine cannot parse) with db's message set.
 * Asking the catalog first means an unbacked key is
 * refused without sending a statement that fails: PostgreSQL would write
 * each failed ON CONFLICT probe into its log. */
static int candidates(nodup_db *db, const nodup_table_info *t, char *const *cols, size_t n,
                      const char *where, const char **effective, int *why_deferrable,
                      int *nfound) {
  buf ck, ci;
  size_t i;
  int extra, found = 0, rc = NODUP_OK;
  *effective = where;
  *why_deferrable = 0;
  buf_init(&ck);
  buf_init(&ci);
  if (where) rc = db->be->predicate_canon(db, t, where, &ck);
  for (i = 0; rc == NODUP_OK && i < t->nidx; i++) {
    const nodup_index_info *ix = &t->idx[i];
    if (index_overlap(db, ix, cols, n, &extra) != n || extra || ix->ncols != n) continue;
    if (ix->deferrable) {
      *why_deferrable = 1;
      continue;
    }
    if (!where) {
      found += !ix->predicate;
      continue;
    }
    if (!ix->predicate) {
      found++;  /* refused by find_backing, with its own reason */
      continue;
    }
    if ((rc = db->be->predicate_canon(db, t, ix->predicate, &ci)) != NODUP_OK) break;
    if (ck.len && ci.len) {
      if (strcmp(buf_str(&ck), buf_str(&ci)) != 0) continue;
      *effective = ix->predicate;
    }
    found++;
  }
  buf_free(&ck);
  buf_free(&ci);
  *nfound = found;
  return rc;
}

/* Find the backing index(es): the catalog narrows the choice (candidates,
 * above), then the engine's ON CONFLICT inference decides, and the catalog
 * names them (SQLite cannot) and refuses a partial key backed by a
 * non-partial index (rows outside the predicate would conflict unseen).
 * *where is replaced by the predicate text the statements must use. */
static int find_backing(nodup_db *db, const nodup_table_info *t, char *const *cols,
                        size_t n, const char **wherep, buf *names, int *nulls_equal) {
  const char *where = *wherep;
  size_t i;
  int rc, extra, any = 0, deferrable, found;
  /* Citus, CockroachDB, YugabyteDB: what cannot hold there is refused
   * before anything else is asked. */
  if ((rc = engine_check(db, t, ENGINE_OP_GET_OR_CREATE, cols, n)) != NODUP_OK) return rc;
  if ((rc = userexpr_check(db, t, where, 0, "the key's predicate")) != NODUP_OK) return rc;
  if ((rc = candidates(db, t, cols, n, where, wherep, &deferrable, &found)) != NODUP_OK)
    return rc;
  if (found == 0)
    return refuse(db, t, cols, n, where,
                  deferrable ? "a DEFERRABLE unique constraint cannot arbitrate INSERT ... "
                               "ON CONFLICT; make it NOT DEFERRABLE or add a unique index"
                             : NULL);
  where = *wherep;
  rc = db->be->arbiters(db, t, cols, n, where, names);
  if (rc == NODUP_ERR_UNBACKED) {
    char *reason = nodup_strdup(buf_str(&db->err));
    rc = refuse(db, t, cols, n, where, reason);
    free(reason);
    return rc;
  }
  if (rc != NODUP_OK) return rc;
  *nulls_equal = 1;
  for (i = 0; i < t->nidx; i++) {
    const nodup_index_info *ix = &t->idx[i];
    int named;
    if (index_overlap(db, ix, cols, n, &extra) != n || extra || ix->ncols != n) continue;
    if (names->len) {
      /* PostgreSQL named the arbiters: "a, b" (possibly schema-qualified). */
      const char *p = buf_str(names), *hit = strstr(p, ix->name);
      size_t L = strlen(ix->name);
      named = hit && (hit == p || hit[-1] == ' ' || hit[-1] == '.') &&
              (hit[L] == '\0' || hit[L] == ',');
    } else {
      /* SQLite: the upsert matched an index with these columns whose
       * predicate is the key's (partial) or absent (non-partial). */
      named = where ? 1 : !ix->predicate;
      if (named) {
        if (any) buf_puts(names, ", ");
        buf_puts(names, ix->name);
      }
    }
    if (!named) continue;
    any = 1;
    if (where && !ix->predicate) {
      buf m;
      buf_init(&m);
      buf_printf(&m, "table %s: index \"%s\" makes (", t->qualified, ix->name);
      sql_ident_list(&m, cols, n);
      buf_printf(&m, ") unique in every row, not only WHERE %s: rows outside the "
                     "predicate would still block inserts while the lookup skips "
                     "them. Drop the predicate from the key.", where);
      return db_fail_buf(db, NODUP_ERR_UNBACKED, &m);
    }
    if (!ix->nulls_equal) *nulls_equal = 0;
  }
  if (!any) *nulls_equal = 0;
  if (!names->len) buf_puts(names, "(unnamed unique index)");
  return NODUP_OK;
}

int key_args_check(nodup_db *db, const char *table, const char *const *cols, size_t ncols,
                   const char *what) {
  if (!db || !db->native || !table || !cols || ncols == 0)
    return db ? nodup_fail(db, NODUP_ERR_USAGE, "%s", what) : NODUP_ERR_USAGE;
  return NODUP_OK;
}

static int load(nodup_db *db, const char *table, const char *const *cols,
                size_t ncols, nodup_table_info **t, char ***names, int **idx) {
  int rc;
  *t = NULL;
  *names = NULL;
  *idx = NULL;
  rc = key_args_check(db, table, cols, ncols, "a key needs a table and at least one column");
  if (rc != NODUP_OK) return rc;
  if (ncols > KEY_MAX_COLS)
    return nodup_fail(db, NODUP_ERR_USAGE, "a key has at most %d columns", KEY_MAX_COLS);
  nodup_clear_error(db);
  if ((rc = db->be->table_info(db, table, t)) != NODUP_OK) return rc;
  return table_info_key(db, *t, cols, ncols, names, idx);
}

int nodup_key_check(nodup_db *db, const char *table, const char *const *cols,
                    size_t ncols, const char *where, char *index_name, size_t size) {
  nodup_table_info *t;
  char **names;
  int *idx, nulls_equal, rc;
  buf arb;
  buf_init(&arb);
  rc = load(db, table, cols, ncols, &t, &names, &idx);
  if (where && !*where) where = NULL;
  if (rc == NODUP_OK) rc = find_backing(db, t, names, ncols, &where, &arb, &nulls_equal);
  rc = enforce_leftovers_note(db, t, names, ncols, where, rc);
  if (rc == NODUP_OK && index_name && size) {
    strncpy(index_name, buf_str(&arb), size - 1);
    index_name[size - 1] = '\0';
  }
  buf_free(&arb);
  strv_free(names, ncols);
  free(idx);
  table_info_free(t);
  return rc;
}

int nodup_key_ddl(nodup_db *db, const char *table, const char *const *cols,
                  size_t ncols, const char *where, char *out, size_t size) {
  nodup_table_info *t = NULL;
  key_term *terms;
  char **names = NULL, **use;
  buf b;
  int len;
  size_t i;
  if (!db || !db->native || !table || !cols || !ncols) return -1;
  for (i = 0; i < ncols; i++)
    if (!cols[i]) return -1;
  if (db->be->table_info(db, table, &t) != NODUP_OK) t = NULL;
  /* Columns as given; an expression term as the table resolves it
   * (lower(Email) -> lower("email")) when it can. */
  if (t && table_info_key(db, t, cols, ncols, &names, NULL) != NODUP_OK) names = NULL;
  nodup_clear_error(db);
  use = calloc(ncols, sizeof *use);
  for (i = 0; use && i < ncols; i++)
    use[i] = names && table_info_column(db, t, names[i]) < 0 ? names[i] : (char *)cols[i];
  terms = use ? key_terms_of(use, ncols) : NULL;
  free(use);
  if (!terms) {
    strv_free(names, names ? ncols : 0);
    table_info_free(t);
    return -1;
  }
  buf_init(&b);
  ddl(&b, t, table, terms, ncols, where);
  table_info_free(t);
  free(terms);
  strv_free(names, names ? ncols : 0);
  if (b.oom) {
    buf_free(&b);
    return -1;
  }
  len = (int)b.len;
  if (out && size) {
    strncpy(out, buf_str(&b), size - 1);
    out[size - 1] = '\0';
  }
  buf_free(&b);
  return len;
}

static int key_open(nodup_key **out, nodup_db *db, const char *table,
                    const char *const *cols, size_t ncols, const char *where,
                    int need_backing) {
  nodup_key *key = NULL;
  nodup_table_info *t = NULL;
  char **names = NULL;
  int *idx = NULL, nulls_equal = 0, rc;
  buf arb;

  if (!out) return NODUP_ERR_USAGE;
  *out = NULL;
  buf_init(&arb);
  if (where && !*where) where = NULL;
  if (db && (rc = db_idle(db)) != NODUP_OK) return rc;
  rc = load(db, table, cols, ncols, &t, &names, &idx);
  if (rc != NODUP_OK) goto done;
  if (t->npk == 0) {
    rc = nodup_fail(db, NODUP_ERR_NO_PKEY,
                    "table %s has no primary key: get-or-create returns the "
                    "row's primary key",
                    t->qualified);
    goto done;
  }
  {
    const char *effective = where;
    rc = find_backing(db, t, names, ncols, &effective, &arb, &nulls_equal);
    rc = enforce_leftovers_note(db, t, names, ncols, where, rc);
    if (rc == NODUP_ERR_UNBACKED && !need_backing) {
      rc = NODUP_OK;
      nodup_clear_error(db);
      buf_reset(&arb);
    } else if (rc == NODUP_OK) {
      where = effective;   /* borrowed from t, copied below */
    }
  }
  if (rc != NODUP_OK) goto done;

  key = calloc(1, sizeof *key);
  if (!key || arb.oom) {
    /* Not a key yet (no db, not counted): nodup_key_free is for keys. */
    free(key);
    key = NULL;
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  key->db = db;
  db->nkeys++;           /* nodup_close waits for it: see there */
  key->hit_rate = KEY_HIT_ONE / 2;   /* no guess: one round trip either way */
  key->table = t;
  key->ncols = ncols;
  key->cols = names;
  key->terms = key_terms_of(names, ncols);
  key->colidx = idx;
  key->nulls_equal = nulls_equal;
  key->backed = arb.len > 0;
  key->index = nodup_strdup(key->backed ? buf_str(&arb) : "(none)");
  key->where = where ? nodup_strdup(where) : NULL;
  buf_init(&key->id);
  t = NULL;
  names = NULL;
  idx = NULL;
  if (!key->index || !key->terms || (where && !key->where)) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  *out = key;
  key = NULL;
done:
  nodup_key_free(key);
  buf_free(&arb);
  strv_free(names, ncols);
  free(idx);
  table_info_free(t);
  return rc;
}

int nodup_key_prepare(nodup_key **out, nodup_db *db, const char *table,
                      const char *const *cols, size_t ncols, const char *where) {
  return key_open(out, db, table, cols, ncols, where, 1);
}

int nodup_key_prepare_unbacked(nodup_key **out, nodup_db *db, const char *table,
                               const char *const *cols, size_t ncols,
                               const char *where) {
  return key_open(out, db, table, cols, ncols, where, 0);
}

void nodup_key_free(nodup_key *key) {
  nodup_db *db;
  size_t i;
  if (!key) return;
  if (key->call.active) goc_abandon(key);  /* its statements are in flight */
  for (i = 0; i < key->nshapes; i++) shape_clear(key->db, &key->shapes[i]);
  free(key->shapes);
  many_ids_free(key);
  free(key->terms);
  strv_free(key->cols, key->ncols);
  free(key->colidx);
  free(key->where);
  free(key->index);
  buf_free(&key->id);
  table_info_free(key->table);
  db = key->db;
  free(key);
  if (--db->nkeys == 0 && db->closing) nodup_close(db);
}

const char *nodup_key_index(const nodup_key *key) {
  return key && key->backed ? key->index : NULL;
}

int nodup_key_nulls_equal(const nodup_key *key) { return key ? key->nulls_equal : 0; }

int key_store_id(void *vkey, int ncols, const char *const *vals) {
  nodup_key *key = vkey;
  int i, npk = (int)key->table->npk;
  buf_reset(&key->id);
  if (ncols > npk)
    key->in_predicate = vals[npk] && strcmp(vals[npk], "0") != 0;
  key->row_flag = ncols > npk + 1 && vals[npk + 1] && strcmp(vals[npk + 1], "0") != 0;
  for (i = 0; i < ncols && i < npk; i++) {
    if (i) buf_putc(&key->id, ',');
    buf_puts(&key->id, vals[i] ? vals[i] : "");
  }
  if (!key->id.len) buf_putc(&key->id, '\0');  /* an empty id is still an id */
  return 1;
}

/* ---- statement shapes ---- */

/* The row with the shape's key values: NULL ones (mask) tested IS NULL,
 * each value in its place among the parameters ($1 is the first key
 * value whether NULL or not), and the key's predicate. */
static void key_condition(buf *q, const nodup_key *key, unsigned mask, const char *alias) {
  int param = 1;
  sql_key_match(q, key->db, key->terms, key->ncols, mask, 0, alias, &param);
  if (key->where) buf_printf(q, " AND (%s)", key->where);
}

/* The columns a shape's inserts write: the key's, then its defaults'
 * (`dcols`, catalog spelling). Columns, not terms: an expression key
 * still inserts the columns it is computed from. */
static const char *shape_column(const nodup_key *key, char *const *dcols, size_t i) {
  return i < key->ncols ? key->terms[i].column : dcols[i - key->ncols];
}

/* Lookup: the key, exactly as the index sees it. */
static void lookup_sql(buf *q, const nodup_key *key, unsigned mask) {
  buf_puts(q, "SELECT ");
  sql_ident_list(q, key->table->pk, key->table->npk);
  buf_printf(q, " FROM %s WHERE ", key->table->qualified);
  key_condition(q, key, mask, NULL);
}

void key_insert_tail(buf *q, const nodup_key *key) {
  sql_on_conflict(q, key->terms, key->ncols, key->where);
  key_returning(q, key);
}

void key_returning(buf *q, const nodup_key *key) {
  buf_puts(q, " RETURNING ");
  sql_ident_list(q, key->table->pk, key->table->npk);
  if (key->where) {
    /* Evaluated on the row as inserted (column defaults and triggers
     * applied): a row outside the predicate is not covered by the index. */
    buf_puts(q, ", ");
    buf_printf(q, key->db->be->predicate_guard, key->where);
  }
}

/* Insert-if-absent. The new values form a one-row relation nodup_new so
 * the key's predicate can be checked on them (a row outside it would not
 * be covered by the index). NOT EXISTS keeps a hit from evaluating column
 * defaults (no sequence value used); ON CONFLICT ... DO NOTHING absorbs
 * the loser's unique violation on exactly this index, and only that one:
 * any other constraint still raises. */
static void insert_sql(buf *q, const nodup_key *key, unsigned mask, const char *cols,
                       char *const *dcols, size_t n) {
  const nodup_table_info *t = key->table;
  size_t i;
  buf_printf(q, "INSERT INTO %s (%s) SELECT %s FROM (SELECT ", t->qualified, cols, cols);
  for (i = 0; i < n; i++) {
    if (i) buf_puts(q, ", ");
    sql_param(q, key->db, (int)i + 1);
    buf_puts(q, " AS ");
    sql_ident(q, shape_column(key, dcols, i));
  }
  buf_puts(q, ") AS nodup_new WHERE ");
  buf_printf(q, "NOT EXISTS (SELECT 1 FROM %s AS nodup_old WHERE ", t->qualified);
  key_condition(q, key, mask, "nodup_old");
  buf_putc(q, ')');
  key_insert_tail(q, key);
}

/* Plain insert: the "then INSERT" half of check-then-insert. */
static void plain_sql(buf *q, const nodup_key *key, const char *cols, size_t n) {
  buf_printf(q, "INSERT INTO %s (%s) VALUES (", key->table->qualified, cols);
  sql_params(q, key->db, 1, n);
  buf_puts(q, ") RETURNING ");
  sql_ident_list(q, key->table->pk, key->table->npk);
}

/* The update-or-create statements. Parameters as the inserts': the key's
 * values, then the create columns', then the nset set columns' (the last
 * nset of dcols). */
static int set_param(const nodup_key *key, size_t n, size_t nset, size_t j) {
  return (int)(key->ncols + (n - key->ncols - nset) + j) + 1;
}

/* The predicate guard (1 when the key has no predicate), so that the row
 * callback finds any flag after it in a fixed place. */
static void guard_column(buf *q, const nodup_key *key) {
  if (key->where) buf_printf(q, key->db->be->predicate_guard, key->where);
  else buf_putc(q, '1');
}

/* The set columns differ from their new values: each column `old_alias`
 * ("" or "x.") against EXCLUDED.c (new_param 0), or against its parameter. */
static void set_differs(buf *q, const nodup_key *key, char *const *dcols, size_t n,
                        size_t nset, const char *old_alias, int new_param) {
  size_t j;
  for (j = 0; j < nset; j++) {
    buf old, new;
    buf_init(&old);
    buf_init(&new);
    buf_puts(&old, old_alias);
    sql_ident(&old, shape_column(key, dcols, n - nset + j));
    if (new_param) {
      sql_param(&new, key->db, set_param(key, n, nset, j));
    } else {
      buf_puts(&new, "EXCLUDED.");
      sql_ident(&new, shape_column(key, dcols, n - nset + j));
    }
    if (j) buf_puts(q, " OR ");
    buf_printf(q, key->db->be->distinct_fmt, buf_str(&old), buf_str(&new));
    q->oom |= old.oom | new.oom;
    buf_free(&old);
    buf_free(&new);
  }
}

/* One statement (where row_existed answers, `existed` its expression):
 * insert, or update when a set column differs; a row already equal is
 * locked by ON CONFLICT but not rewritten, and nothing is returned. */
static void upsert_sql(buf *q, const nodup_key *key, const char *cols, char *const *dcols,
                       size_t n, size_t nset, const char *existed) {
  const nodup_table_info *t = key->table;
  size_t j;
  buf_printf(q, "INSERT INTO %s AS nodup_t (%s) VALUES (", t->qualified, cols);
  sql_params(q, key->db, 1, n);
  buf_putc(q, ')');
  sql_conflict_target(q, key->terms, key->ncols, key->where);
  buf_puts(q, " DO UPDATE SET ");
  for (j = 0; j < nset; j++) {
    const char *c = shape_column(key, dcols, n - nset + j);
    if (j) buf_puts(q, ", ");
    sql_ident(q, c);
    buf_puts(q, " = EXCLUDED.");
    sql_ident(q, c);
  }
  buf_puts(q, " WHERE ");
  set_differs(q, key, dcols, n, nset, "nodup_t.", 0);
  buf_puts(q, " RETURNING ");
  sql_ident_list(q, t->pk, t->npk);
  buf_puts(q, ", ");
  guard_column(q, key);
  buf_printf(q, ", %s", existed);
}

/* Elsewhere, read before writing: the row's id, the guard's place, and 1
 * when a set column differs from its new value (key_store_id's row_flag). */
static void compare_sql(buf *q, const nodup_key *key, unsigned mask, char *const *dcols,
                        size_t n, size_t nset) {
  buf_puts(q, "SELECT ");
  sql_ident_list(q, key->table->pk, key->table->npk);
  buf_puts(q, ", 1, CASE WHEN ");
  set_differs(q, key, dcols, n, nset, "", 1);
  buf_printf(q, " THEN 1 ELSE 0 END FROM %s WHERE ", key->table->qualified);
  key_condition(q, key, mask, NULL);
}

/* ... and the update of the row the key finds, once compare said it
 * differs: only while it still does (a concurrent writer may have set the
 * values meanwhile where no write lock was taken first). */
static void update_sql(buf *q, const nodup_key *key, unsigned mask, char *const *dcols,
                       size_t n, size_t nset) {
  size_t j;
  buf_printf(q, "UPDATE %s SET ", key->table->qualified);
  for (j = 0; j < nset; j++) {
    if (j) buf_puts(q, ", ");
    sql_ident(q, shape_column(key, dcols, n - nset + j));
    buf_puts(q, " = ");
    sql_param(q, key->db, set_param(key, n, nset, j));
  }
  buf_puts(q, " WHERE ");
  key_condition(q, key, mask, NULL);
  buf_puts(q, " AND (");
  set_differs(q, key, dcols, n, nset, "", 1);
  buf_puts(q, ") RETURNING ");
  sql_ident_list(q, key->table->pk, key->table->npk);
  buf_puts(q, ", ");
  guard_column(q, key);
}

/* Prepare the statement in q (n parameters of `types`) into *out. */
static int shape_prepare(nodup_db *db, buf *q, size_t n, const unsigned *types,
                         nodup_stmt **out) {
  int rc = q->oom ? NODUP_ERR_NOMEM : db->be->prepare(db, buf_str(q), (int)n, types, out);
  buf_reset(q);
  return rc;
}

/* An update-or-create shape's statements besides the lookup: the one
 * upsert, or (where the engine cannot tell insert from update in it) the
 * compare, the update and the insert-if-absent. */
static int upsert_build(nodup_key *key, key_shape *s, buf *q, const char *cols,
                        char *const *dcols, size_t n, const unsigned *types) {
  nodup_db *db = key->db;
  buf existed;
  int rc = NODUP_OK;
  buf_init(&existed);
  if (db->be->row_existed) rc = db->be->row_existed(db, key->table, "nodup_t", &existed);
  if (rc == NODUP_OK && existed.len) {
    upsert_sql(q, key, cols, dcols, n, s->nset, buf_str(&existed));
    rc = shape_prepare(db, q, n, types, &s->upsert);
  }
  buf_free(&existed);
  if (rc != NODUP_OK || s->upsert) return rc;
  compare_sql(q, key, s->mask, dcols, n, s->nset);
  rc = shape_prepare(db, q, n, types, &s->compare);
  if (rc == NODUP_OK) {
    update_sql(q, key, s->mask, dcols, n, s->nset);
    rc = shape_prepare(db, q, n, types, &s->update);
  }
  if (rc == NODUP_OK) {
    insert_sql(q, key, s->mask, cols, dcols, n);
    rc = shape_prepare(db, q, n, types, &s->insert);
  }
  return rc;
}

/* Build and prepare the statements of one shape: the lookup takes the key
 * values, the inserts the key values then the defaults' (`dcols`, catalog
 * spelling). An unbacked key has no arbiter to conflict on, so no
 * insert-if-absent. */
static int shape_build(nodup_key *key, key_shape *s, char *const *dcols, size_t nd) {
  nodup_db *db = key->db;
  const nodup_table_info *t = key->table;
  size_t n = key->ncols + nd, i;
  unsigned *types = calloc(n, sizeof *types);
  buf q, cols;
  int rc;

  if (!types) return NODUP_ERR_NOMEM;
  buf_init(&q);
  buf_init(&cols);
  for (i = 0; i < n; i++) {
    types[i] = t->types[table_info_column(db, t, shape_column(key, dcols, i))];
    if (i) buf_puts(&cols, ", ");
    sql_ident(&cols, shape_column(key, dcols, i));
  }
  if (cols.oom) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  lookup_sql(&q, key, s->mask);
  rc = shape_prepare(db, &q, key->ncols, types, &s->lookup);
  if (rc == NODUP_OK && s->nset) {
    rc = upsert_build(key, s, &q, buf_str(&cols), dcols, n, types);
    goto done;
  }
  if (rc == NODUP_OK && key->backed) {
    insert_sql(&q, key, s->mask, buf_str(&cols), dcols, n);
    rc = shape_prepare(db, &q, n, types, &s->insert);
  }
  if (rc == NODUP_OK) {
    plain_sql(&q, key, buf_str(&cols), n);
    rc = shape_prepare(db, &q, n, types, &s->plain);
  }
done:
  buf_free(&q);
  buf_free(&cols);
  free(types);
  return rc;
}

/* Release what one shape holds (its statements, names), leaving it zeroed. */
static void shape_clear(nodup_db *db, key_shape *s) {
  size_t j;
  if (s->insert) db->be->finalize(db, s->insert);
  if (s->plain) db->be->finalize(db, s->plain);
  if (s->lookup) db->be->finalize(db, s->lookup);
  if (s->upsert) db->be->finalize(db, s->upsert);
  if (s->compare) db->be->finalize(db, s->compare);
  if (s->update) db->be->finalize(db, s->update);
  for (j = 0; j < s->ngiven; j++) free(s->given[j]);
  free(s->given);
  free(s->pcol);
  free(s->sig);
  memset(s, 0, sizeof *s);
}

/* The common case, every call after the first: same NULLs, same default
 * names as given. Compared as given: no allocation, no catalog. */
static key_shape *shape_find_given(nodup_key *key, unsigned mask, const char *const *dcols,
                                   size_t nd, size_t nset, int many) {
  size_t i, j;
  for (i = 0; i < key->nshapes; i++) {
    key_shape *s = &key->shapes[i];
    if (s->mask != mask || s->ngiven != nd || s->nset != nset || s->many != many) continue;
    for (j = 0; j < nd && dcols[j] && !strcmp(s->given[j], dcols[j]); j++)
      ;
    if (j == nd) return s;
  }
  return NULL;
}

/* The default columns in catalog spelling (canon, borrowed from the
 * table info) and joined into the shape's signature, refusing a column
 * the table lacks, one of the key's, or one given twice. The last nset
 * are an update-or-create's set columns. */
static int shape_canon(nodup_key *key, const char *const *dcols, size_t nd, size_t nset,
                       char **canon, buf *sig) {
  nodup_db *db = key->db;
  size_t i, j;
  for (i = 0; i < nd; i++) {
    int c = dcols[i] ? table_info_column(db, key->table, dcols[i]) : -1;
    if (c < 0)
      return nodup_fail(db, NODUP_ERR_NO_COLUMN, "no column \"%s\"",
                        dcols[i] ? dcols[i] : "(null)");
    for (j = 0; j < key->ncols; j++)
      if (key->colidx[j] == c)
        return nodup_fail(db, NODUP_ERR_USAGE,
                          i >= nd - nset
                              ? "column \"%s\" is in the key: the key finds the row, "
                                "so update-or-create cannot change it"
                              : "column \"%s\" is in the key: give its value with the "
                                "key values, not as a default",
                          dcols[i]);
    for (j = 0; j < i; j++)
      if (strcmp(canon[j], key->table->cols[c]) == 0)
        return nodup_fail(db, NODUP_ERR_USAGE, "column \"%s\" is given twice", dcols[i]);
    canon[i] = key->table->cols[c];
    if (i) buf_putc(sig, '\x1f');
    buf_puts(sig, canon[i]);
  }
  return sig->oom ? NODUP_ERR_NOMEM : NODUP_OK;
}

/* Defaults spelled differently but naming the same columns: the same
 * statements. */
static key_shape *shape_find_sig(nodup_key *key, unsigned mask, const char *sig, size_t nset,
                                 int many) {
  size_t i;
  for (i = 0; i < key->nshapes; i++)
    if (key->shapes[i].mask == mask && key->shapes[i].nset == nset &&
        key->shapes[i].many == many &&
        strcmp(key->shapes[i].sig, sig) == 0)
      return &key->shapes[i];
  return NULL;
}

/* A new shape at the end of key->shapes, its statements prepared; nothing
 * is added when any step fails. */
static int shape_add(nodup_key *key, unsigned mask, const char *sig, const char *const *dcols,
                     char **canon, size_t nd, size_t nset, int many, key_shape **out) {
  nodup_db *db = key->db;
  key_shape *s = realloc(key->shapes, (key->nshapes + 1) * sizeof *s);
  size_t i;
  int rc = NODUP_OK;
  if (!s) return NODUP_ERR_NOMEM;
  key->shapes = s;
  s = &key->shapes[key->nshapes];
  memset(s, 0, sizeof *s);
  s->mask = mask;
  s->nset = nset;
  s->many = many;
  if (!(s->sig = nodup_strdup(sig)) || (nd && !(s->given = calloc(nd, sizeof *s->given))) ||
      !(s->pcol = calloc(key->ncols + nd + 1, sizeof *s->pcol)))
    rc = NODUP_ERR_NOMEM;
  for (i = 0; rc == NODUP_OK && i < nd; i++)
    if (!(s->given[s->ngiven++] = nodup_strdup(dcols[i]))) rc = NODUP_ERR_NOMEM;
  if (rc == NODUP_OK) {
    /* Each parameter's column, for value conversion (key_coerce). */
    for (i = 0; i < key->ncols; i++) s->pcol[i] = key->colidx[i];
    for (i = 0; i < nd; i++) s->pcol[key->ncols + i] = table_info_column(db, key->table, canon[i]);
    for (i = 0; key->table->vclass && i < key->ncols + nd; i++)
      s->coerce |= s->pcol[i] >= 0 && key->table->vclass[s->pcol[i]] != VALUE_TEXT;
    rc = many ? many_build(key, s, canon, nd) : shape_build(key, s, canon, nd);
  }
  if (rc != NODUP_OK) {
    shape_clear(db, s);
    return rc;
  }
  key->nshapes++;
  *out = s;
  return NODUP_OK;
}

static int shape_get(nodup_key *key, const char *const *vals, const char *const *dcols,
                     size_t nd, size_t nset, key_shape **out) {
  unsigned mask = 0;
  size_t i;
  char **canon = NULL;
  buf sig;
  int rc, many = vals == NULL;

  for (i = 0; vals && i < key->ncols; i++)
    if (!vals[i]) mask |= 1u << i;
  if ((*out = shape_find_given(key, mask, dcols, nd, nset, many))) return NODUP_OK;
  if (nd && !(canon = calloc(nd, sizeof *canon))) return NODUP_ERR_NOMEM;
  buf_init(&sig);
  rc = shape_canon(key, dcols, nd, nset, canon, &sig);
  if (rc == NODUP_OK && !(*out = shape_find_sig(key, mask, buf_str(&sig), nset, many)))
    rc = shape_add(key, mask, buf_str(&sig), dcols, canon, nd, nset, many, out);
  free(canon);
  buf_free(&sig);
  return rc;
}

int key_shape_get(nodup_key *key, const char *const *vals, const char *const *dcols,
                  size_t nd, key_shape **out) {
  return shape_get(key, vals, dcols, nd, 0, out);
}

int key_upsert_shape_get(nodup_key *key, const char *const *vals, const char *const *dcols,
                         size_t nd, size_t nset, key_shape **out) {
  return shape_get(key, vals, dcols, nd, nset, out);
}

int key_many_shape_get(nodup_key *key, const char *const *dcols, size_t nd, key_shape **out) {
  return shape_get(key, NULL, dcols, nd, 0, out);
}

/* ---- value conversion (SQLite's declared types) ---- */

static int ieq(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if ((*a | 0x20) != (*b | 0x20)) return 0;
  return *a == *b;
}

/* PostgreSQL's boolean spellings (boolin), which ORMs send and users type. */
static const char *as_bool(const char *v) {
  static const char *const yes[] = {"true", "t", "yes", "y", "on", "1"};
  static const char *const no[] = {"false", "f", "no", "n", "off", "0"};
  size_t i;
  for (i = 0; i < sizeof yes / sizeof *yes; i++) {
    if (ieq(v, yes[i])) return "1";
    if (ieq(v, no[i])) return "0";
  }
  return NULL;
}

static int is_int(const char *v) {
  const char *p = v + (*v == '-' || *v == '+');
  size_t digits = strspn(p, "0123456789");
  /* 19 digits fit in a signed 64-bit integer when below its maximum;
   * longer ones SQLite would store as REAL, rounded. */
  if (!digits || p[digits] || digits > 19) return 0;
  return digits < 19 || strcmp(p, "9223372036854775807") <= 0 ||
         (*v == '-' && !strcmp(p, "9223372036854775808"));
}

static int is_real(const char *v) {
  char *end;
  if (!*v || *v == ' ' || *v == '\t') return 0;
  (void)strtod(v, &end);
  return *end == '\0';
}

int value_coerce(nodup_db *db, const nodup_table_info *t, int c, const char **v) {
  const char *in = *v, *why = NULL, *out = in;
  if (!t->vclass || c < 0 || !in) return NODUP_OK;
  switch (t->vclass[c]) {
  case VALUE_BOOL:
    if ((out = as_bool(in)) == NULL) why = "is not a boolean (true/false, t/f, yes/no, on/off, 1/0)";
    break;
  case VALUE_INT:
    if (!is_int(in)) why = "is not a whole number";
    break;
  case VALUE_REAL:
    if (!is_real(in)) why = "is not a number";
    break;
  default:
    break;
  }
  if (why) return nodup_fail(db, NODUP_ERR_USAGE, "column \"%s\": '%s' %s", t->cols[c], in, why);
  *v = out;
  return NODUP_OK;
}

int key_coerce(nodup_key *key, const key_shape *s, const char **params, size_t n) {
  size_t i;
  int rc;
  /* Most keys are text: a hit then pays nothing here. */
  if (!s->coerce) return NODUP_OK;
  for (i = 0; i < n; i++)
    if ((rc = value_coerce(key->db, key->table, s->pcol[i], &params[i])) != NODUP_OK) return rc;
  return NODUP_OK;
}

/*
 * getorcreate.c -- the core call: return the row for a key, creating it
 * exactly once.
 *
 * The backends run one engine-specific round (db_pg.c: a pipelined
 * insert-if-absent + fresh lookup; db_sqlite.c: lock-free lookup, then
 * BEGIN IMMEDIATE insert-if-absent). This file owns what is common: input
 * checks, the NULL rule, and the rare round in which neither statement
 * yields a row. That happens when the winner was deleted between our insert
 * and our lookup (retry), or when the new row would not satisfy the key's
 * predicate (explain, never retry).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define GOC_MAX_ROUNDS 5

/* Prefix the connection's message with the table, so every failure of a
 * keyed call names it. */
static int name_table(nodup_key *key, int rc) {
  buf m;
  if (rc == NODUP_OK) return rc;
  buf_init(&m);
  buf_printf(&m, "table %s: %s", key->table->qualified, buf_str(&key->db->err));
  if (!m.oom) {
    buf_free(&key->db->err);
    key->db->err = m;
  } else {
    buf_free(&m);
  }
  return rc;
}

static int check_nulls(nodup_key *key, const char *const *vals) {
  size_t i;
  for (i = 0; i < key->ncols; i++)
    if (!vals[i] && !key->nulls_equal)
      return nodup_fail(key->db, NODUP_ERR_NULL_KEY,
                        "key column \"%s\" is NULL, and index %s treats NULLs as "
                        "distinct, so it cannot stop duplicates of this key "
                        "(PostgreSQL 15+: CREATE UNIQUE INDEX ... NULLS NOT DISTINCT)",
                        key->cols[i], key->index);
  return NODUP_OK;
}

static int collect_bool(void *ctx, int n, const char *const *v) {
  (void)n;
  *(int *)ctx = v[0] && (v[0][0] == 't' || v[0][0] == '1');
  return 1;
}

/* Does the new row satisfy the key's predicate? Runs only on the rare
 * both-empty path, so its statement is prepared lazily. */
static int new_row_in_predicate(nodup_key *key, key_shape *s,
                                const char *const *params, int n, int *in) {
  nodup_db *db = key->db;
  *in = 1;
  if (!key->where) return NODUP_OK;
  if (!s->pred) {
    buf q;
    size_t i;
    int rc;
    unsigned *types = calloc((size_t)n + 1, sizeof *types);
    char *dup = nodup_strdup(s->sig);
    char *p = dup;
    if (!types || !dup) {
      free(types);
      free(dup);
      return NODUP_ERR_NOMEM;
    }
    buf_init(&q);
    buf_printf(&q, "SELECT (%s) FROM (SELECT ", key->where);
    for (i = 0; i < (size_t)n; i++) {
      const char *col;
      if (i) buf_puts(&q, ", ");
      if (i < key->ncols) {
        col = key->cols[i];
      } else {
        col = p;
        p = strchr(p, '\x1f');
        if (p) *p++ = '\0';
      }
      sql_param(&q, db, (int)i + 1);
      buf_puts(&q, " AS ");
      sql_ident(&q, col);
      types[i] = key->table->types[table_info_column(db, key->table, col)];
    }
    buf_puts(&q, ") AS nodup_new");
    rc = q.oom ? NODUP_ERR_NOMEM : db->be->prepare(db, buf_str(&q), n, types, &s->pred);
    buf_free(&q);
    free(types);
    free(dup);
    if (rc != NODUP_OK) return rc;
  }
  return db->be->run(db, s->pred, params, n, collect_bool, in);
}

int nodup_get_or_create(nodup_key *key, const char *const *vals,
                        const char *const *default_cols,
                        const char *const *default_vals, size_t ndefaults,
                        nodup_result *out) {
  const char *small[32];
  const char **params = small;
  key_shape *s;
  size_t i, n;
  int rc, round, created = 0, in;

  if (!key || !out || (key->ncols && !vals) ||
      (ndefaults && (!default_cols || !default_vals)))
    return key ? nodup_fail(key->db, NODUP_ERR_USAGE, "get_or_create: NULL argument")
               : NODUP_ERR_USAGE;
  out->id = NULL;
  out->created = 0;
  nodup_clear_error(key->db);
  if (!key->backed)
    return name_table(key, nodup_fail(key->db, NODUP_ERR_UNBACKED,
                                      "no unique index backs this key, so "
                                      "get-or-create cannot be race-free"));
  if ((rc = check_nulls(key, vals)) != NODUP_OK) return name_table(key, rc);
  rc = key_shape_get(key, vals, default_cols, ndefaults, &s);
  if (rc != NODUP_OK) return name_table(key, rc);

  n = key->ncols + ndefaults;
  if (n > 32 && !(params = malloc(n * sizeof *params))) return NODUP_ERR_NOMEM;
  for (i = 0; i < key->ncols; i++) params[i] = vals[i];
  for (i = 0; i < ndefaults; i++) params[key->ncols + i] = default_vals[i];

  for (round = 0; round < GOC_MAX_ROUNDS; round++) {
    rc = key->db->be->get_or_create(key, s->insert, s->lookup, params, (int)n,
                                    &created);
    if (rc != NODUP_ERR_CONFLICT) break;
    rc = new_row_in_predicate(key, s, params, (int)n, &in);
    if (rc != NODUP_OK) break;
    if (!in) {
      rc = nodup_fail(key->db, NODUP_ERR_PREDICATE,
                      "the new row does not satisfy the key's predicate (%s): "
                      "nothing inserted",
                      key->where);
      break;
    }
    rc = NODUP_ERR_CONFLICT;  /* the winner vanished; look again */
  }
  if (rc == NODUP_ERR_CONFLICT)
    nodup_fail(key->db, rc,
               "the insert conflicts on %s with a row that the key's lookup "
               "does not see (%d tries); is the key's predicate narrower than "
               "the index's?",
               key->index, GOC_MAX_ROUNDS);
  if (params != small) free(params);
  if (rc != NODUP_OK) return name_table(key, rc);
  out->id = buf_str(&key->id);
  out->created = created;
  return NODUP_OK;
}

int nodup_find(nodup_key *key, const char *const *vals, nodup_result *out) {
  key_shape *s;
  int rc;
  if (!key || !out || !vals) return NODUP_ERR_USAGE;
  out->id = NULL;
  out->created = 0;
  nodup_clear_error(key->db);
  if ((rc = check_nulls(key, vals)) != NODUP_OK) return name_table(key, rc);
  if ((rc = key_shape_get(key, vals, NULL, 0, &s)) != NODUP_OK)
    return name_table(key, rc);
  buf_reset(&key->id);
  rc = key->db->be->run(key->db, s->lookup, vals, (int)key->ncols, key_store_id, key);
  if (rc != NODUP_OK) return name_table(key, rc);
  out->id = key->id.len ? buf_str(&key->id) : NULL;
  return NODUP_OK;
}

int nodup_insert(nodup_key *key, const char *const *vals,
                 const char *const *default_cols,
                 const char *const *default_vals, size_t ndefaults,
                 nodup_result *out) {
  const char *small[32];
  const char **params = small;
  key_shape *s;
  size_t i, n;
  int rc;
  if (!key || !out || !vals || (ndefaults && (!default_cols || !default_vals)))
    return NODUP_ERR_USAGE;
  out->id = NULL;
  out->created = 0;
  nodup_clear_error(key->db);
  if ((rc = key_shape_get(key, vals, default_cols, ndefaults, &s)) != NODUP_OK)
    return name_table(key, rc);
  n = key->ncols + ndefaults;
  if (n > 32 && !(params = malloc(n * sizeof *params))) return NODUP_ERR_NOMEM;
  for (i = 0; i < key->ncols; i++) params[i] = vals[i];
  for (i = 0; i < ndefaults; i++) params[key->ncols + i] = default_vals[i];
  buf_reset(&key->id);
  rc = key->db->be->run(key->db, s->plain, params, (int)n, key_store_id, key);
  if (params != small) free(params);
  if (rc != NODUP_OK) return name_table(key, rc);
  out->id = buf_str(&key->id);
  out->created = 1;
  return NODUP_OK;
}

/*
 * upsert.c -- update-or-create: make the key's row hold some values,
 * creating it exactly once, and writing nothing when it holds them already.
 *
 * The backends run the engine-specific round (db_pg.c: one INSERT ... ON
 * CONFLICT DO UPDATE ... WHERE the values differ, and a fresh lookup when
 * it returns nothing; db_sqlite.c: a lock-free compare, then under the
 * write lock compare again and insert, update or leave alone). This file
 * owns what is common: input checks, the NULL rule (and the parameters,
 * through getorcreate.c's goc_params), and the rare round in which no
 * statement yields a row because the row was deleted between two of them
 * (retry, bounded, as get-or-create does).
 */
#include <stdlib.h>

#include "internal.h"

/* With nothing to set, update-or-create is get-or-create. */
static int as_get_or_create(nodup_key *key, const char *const *vals,
                            const char *const *create_cols, const char *const *create_vals,
                            size_t ncreate, nodup_result *out, int *outcome) {
  int rc = nodup_get_or_create(key, vals, create_cols, create_vals, ncreate, out);
  if (rc == NODUP_OK && outcome) *outcome = out->created ? NODUP_CREATED : NODUP_UNCHANGED;
  return rc;
}

/* The create and set columns as one list (the shape's "defaults"): into
 * small when they fit, else a new array in *heap the caller frees. */
static const char *const *all_columns(const char **small, const char ***heap,
                                      const char *const *create_cols, size_t ncreate,
                                      const char *const *set_cols, size_t nset) {
  const char **c = small;
  size_t i;
  *heap = NULL;
  if (ncreate + nset > GOC_PARAMS_SMALL) {
    if (!(*heap = malloc((ncreate + nset) * sizeof **heap))) return NULL;
    c = *heap;
  }
  for (i = 0; i < ncreate; i++) c[i] = create_cols[i];
  for (i = 0; i < nset; i++) c[ncreate + i] = set_cols[i];
  return c;
}

int nodup_update_or_create(nodup_key *key, const char *const *vals,
                           const char *const *create_cols, const char *const *create_vals,
                           size_t ncreate, const char *const *set_cols,
                           const char *const *set_vals, size_t nset, nodup_result *out,
                           int *outcome) {
  const char *small_cols[GOC_PARAMS_SMALL];
  const char **heap_cols = NULL;
  const char *const *cols;
  goc_params p;
  key_shape *s;
  int rc, round, how = 0;

  if (!key || !out || (key->ncols && !vals) || (ncreate && (!create_cols || !create_vals)) ||
      (nset && (!set_cols || !set_vals)))
    return key ? nodup_fail(key->db, NODUP_ERR_USAGE, "update_or_create: NULL argument")
               : NODUP_ERR_USAGE;
  out->id = NULL;
  out->created = 0;
  if (outcome) *outcome = 0;
  if (!nset) return as_get_or_create(key, vals, create_cols, create_vals, ncreate, out, outcome);
  if ((rc = db_idle(key->db)) != NODUP_OK) return rc;
  nodup_clear_error(key->db);
  if (!key->backed) return goc_refuse_unbacked(key, "update-or-create");
  if ((rc = goc_check_nulls(key, vals)) != NODUP_OK) return goc_name_table(key, rc);
  if (!(cols = all_columns(small_cols, &heap_cols, create_cols, ncreate, set_cols, nset)))
    return NODUP_ERR_NOMEM;
  rc = key_upsert_shape_get(key, vals, cols, ncreate + nset, nset, &s);
  free(heap_cols);
  if (rc != NODUP_OK) return goc_name_table(key, rc);
  /* In the order key_upsert_shape_get numbered them. */
  rc = goc_params_init(&p, key, vals, create_vals, ncreate, set_vals, nset);
  if (rc != NODUP_OK) return rc;
  rc = key_coerce(key, s, p.v, p.n);

  /* No row from any statement: the row was deleted between the write that
   * found it and the lookup (look again), or the insert conflicts with a
   * row the lookup cannot see (give up after a few rounds). */
  for (round = 1; rc == NODUP_OK; round++) {
    rc = key->db->be->update_or_create(key, s, p.v, (int)p.n, &how);
    if (rc != NODUP_ERR_CONFLICT || round == KEY_MAX_ROUNDS) break;
    rc = NODUP_OK;
  }
  if (rc == NODUP_ERR_CONFLICT) goc_fail_rounds(key, "the key");
  goc_params_free(&p);
  if (rc != NODUP_OK) return goc_name_table(key, rc);
  out->id = buf_str(&key->id);
  out->created = how == NODUP_CREATED;
  if (outcome) *outcome = how;
  return NODUP_OK;
}

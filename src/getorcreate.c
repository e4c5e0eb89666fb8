/*
 * getorcreate.c -- the core call: return the row for a key, creating it
 * exactly once.
 *
 * The backends run one engine-specific round (db_pg.c: insert-if-absent
 * and a fresh lookup, alone or pipelined as the key's hit rate suggests;
 * db_sqlite.c: lock-free lookup, then BEGIN IMMEDIATE insert-if-absent).
 * This file owns what is common: input checks, the NULL rule, the hit
 * rate, and the rare round in which neither statement yields a row
 * because the winner was deleted between our insert and our lookup
 * (retry, bounded).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Prefix the connection's message with the table, so every failure of a
 * keyed call names it. */
int goc_name_table(nodup_key *key, int rc) {
  buf m;
  if (rc == NODUP_OK) return rc;
  buf_init(&m);
  buf_printf(&m, "table %s: %s", key->table->qualified, buf_str(&key->db->err));
  return db_fail_buf(key->db, rc, &m);
}

int goc_check_nulls(nodup_key *key, const char *const *vals) {
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

int goc_params_init(goc_params *p, const nodup_key *key, const char *const *vals,
                    const char *const *a, size_t na, const char *const *b, size_t nb) {
  size_t i;
  p->n = key->ncols + na + nb;
  p->v = p->small;
  if (p->n > GOC_PARAMS_SMALL && !(p->v = malloc(p->n * sizeof *p->v))) return NODUP_ERR_NOMEM;
  for (i = 0; i < key->ncols; i++) p->v[i] = vals[i];
  for (i = 0; i < na; i++) p->v[key->ncols + i] = a[i];
  for (i = 0; i < nb; i++) p->v[key->ncols + na + i] = b[i];
  return NODUP_OK;
}

void goc_params_free(goc_params *p) {
  if (p->v != p->small) free(p->v);
}

/* The refusal of an unbacked key, with the DDL that would back it. */
int goc_refuse_unbacked(nodup_key *key, const char *what) {
  char ddl[2048];
  nodup_key_ddl(key->db, key->table->name, (const char *const *)key->cols, key->ncols,
                key->where, ddl, sizeof ddl);
  return goc_name_table(key, nodup_fail(key->db, NODUP_ERR_UNBACKED,
                                        "no unique index backs this key, so "
                                        "%s cannot be race-free. To back it: %s",
                                        what, ddl));
}

int goc_fail_rounds(nodup_key *key, const char *what) {
  return nodup_fail(key->db, NODUP_ERR_CONFLICT,
                    "%s found no row in %d tries: the row was deleted each time between "
                    "the insert and the lookup, or the key's predicate is narrower than "
                    "index %s's (the insert conflicts with a row the lookup does not see)",
                    what, KEY_MAX_ROUNDS, key->index);
}

/* Check a call's input and make its statements and parameters ready in
 * key->call (nothing sent yet). */
static int goc_begin(nodup_key *key, const char *const *vals, const char *const *default_cols,
                     const char *const *default_vals, size_t ndefaults, nodup_result *out) {
  key_call *k;
  int rc;

  if (!key || !out || (key->ncols && !vals) ||
      (ndefaults && (!default_cols || !default_vals)))
    return key ? nodup_fail(key->db, NODUP_ERR_USAGE, "get_or_create: NULL argument")
               : NODUP_ERR_USAGE;
  out->id = NULL;
  out->created = 0;
  if ((rc = db_idle(key->db)) != NODUP_OK) return rc;
  nodup_clear_error(key->db);
  if (!key->backed) return goc_refuse_unbacked(key, "get-or-create");
  if ((rc = goc_check_nulls(key, vals)) != NODUP_OK) return goc_name_table(key, rc);
  k = &key->call;
  rc = key_shape_get(key, vals, default_cols, ndefaults, &k->s);
  if (rc != NODUP_OK) return goc_name_table(key, rc);
  rc = goc_params_init(&k->p, key, vals, default_vals, ndefaults, NULL, 0);
  if (rc != NODUP_OK) return rc;
  if ((rc = key_coerce(key, k->s, k->p.v, k->p.n)) != NODUP_OK) {
    goc_params_free(&k->p);
    return goc_name_table(key, rc);
  }
  k->active = 1;
  k->rounds = 0;
  k->created = 0;
  return NODUP_OK;
}

/* Run the call's rounds until one ends it, or (non-blocking) until the
 * backend must wait. Both statements empty: the winner was deleted
 * between our insert and our lookup (look again), or the insert conflicts
 * with a row the lookup cannot see (give up after a few rounds). */
static int goc_finish(nodup_key *key, int rc, nodup_result *out);

static int goc_advance(nodup_key *key, int rc, nodup_result *out, nodup_wait *wait) {
  key_call *k = &key->call;
  for (;;) {
    if (rc == NODUP_OK) rc = key->db->be->goc_step(key, wait);
    if (rc == NODUP_AGAIN) return rc;
    if (rc != NODUP_ERR_CONFLICT || ++k->rounds >= KEY_MAX_ROUNDS) break;
    rc = key->db->be->goc_start(key);
  }
  return goc_finish(key, rc, out);
}

/* End the call: its parameters go, the hit rate learns its outcome. */
static int goc_finish(nodup_key *key, int rc, nodup_result *out) {
  key_call *k = &key->call;
  k->active = 0;
  key->db->waiting = NULL;
  goc_params_free(&k->p);
  if (rc == NODUP_ERR_CONFLICT) goc_fail_rounds(key, "the key");
  if (rc != NODUP_OK) return goc_name_table(key, rc);
  /* Each call moves the average 1/16 of the way to its outcome. */
  key->hit_rate += ((k->created ? 0 : KEY_HIT_ONE) - key->hit_rate) / 16;
  out->id = buf_str(&key->id);
  out->created = k->created;
  return NODUP_OK;
}

int nodup_get_or_create(nodup_key *key, const char *const *vals,
                        const char *const *default_cols,
                        const char *const *default_vals, size_t ndefaults,
                        nodup_result *out) {
  key_call *k;
  nodup_wait unused;
  int rc, round;

  if ((rc = goc_begin(key, vals, default_cols, default_vals, ndefaults, out)) != NODUP_OK)
    return rc;
  k = &key->call;
  if (key->db->be->goc_step) {
    k->nonblock = 0;
    return goc_advance(key, key->db->be->goc_start(key), out, &unused);
  }
  for (round = 0; round < KEY_MAX_ROUNDS; round++) {
    rc = key->db->be->get_or_create(key, k->s->insert, k->s->lookup, k->p.v, (int)k->p.n,
                                    &k->created);
    if (rc != NODUP_ERR_CONFLICT) break;
  }
  return goc_finish(key, rc, out);
}

void goc_abandon(nodup_key *key) {
  key_call *k = &key->call;
  if (key->db->be->goc_cancel) key->db->be->goc_cancel(key);
  k->active = 0;
  key->db->waiting = NULL;
  goc_params_free(&k->p);
}

static int goc_nonblocking(nodup_key *key) {
  if (key->db->be->goc_step) return NODUP_OK;
  return nodup_fail(key->db, NODUP_ERR_UNSUPPORTED,
                    "non-blocking get-or-create needs PostgreSQL; on SQLite, run "
                    "nodup_get_or_create() in a thread of its own");
}

int nodup_get_or_create_start(nodup_key *key, const char *const *vals,
                              const char *const *default_cols,
                              const char *const *default_vals, size_t ndefaults,
                              nodup_result *out, nodup_wait *wait) {
  int rc;
  if (!key || !wait) return key ? nodup_fail(key->db, NODUP_ERR_USAGE,
                                             "get_or_create_start: NULL argument")
                                : NODUP_ERR_USAGE;
  wait->fd = -1;
  wait->timeout_us = -1;
  if ((rc = goc_nonblocking(key)) != NODUP_OK) return rc;
  if ((rc = goc_begin(key, vals, default_cols, default_vals, ndefaults, out)) != NODUP_OK)
    return rc;
  key->call.nonblock = 1;
  key->db->waiting = key;
  return goc_advance(key, key->db->be->goc_start(key), out, wait);
}

int nodup_get_or_create_poll(nodup_key *key, nodup_result *out, nodup_wait *wait) {
  int rc;
  if (!key || !out || !wait) return key ? nodup_fail(key->db, NODUP_ERR_USAGE,
                                                     "get_or_create_poll: NULL argument")
                                        : NODUP_ERR_USAGE;
  out->id = NULL;
  out->created = 0;
  wait->fd = -1;
  wait->timeout_us = -1;
  if ((rc = goc_nonblocking(key)) != NODUP_OK) return rc;
  if (!key->call.active || !key->call.nonblock)
    return nodup_fail(key->db, NODUP_ERR_USAGE,
                      "get_or_create_poll: no non-blocking get-or-create is under way "
                      "on this key");
  return goc_advance(key, NODUP_OK, out, wait);
}

/* Run statement `which` of shape s (the lookup or the plain insert) with
 * p, converted, as its parameters; key->id gets the row's id, or is left
 * empty when there is none. */
static int run_shape(nodup_key *key, key_shape *s, nodup_stmt *which, goc_params *p) {
  int rc = key_coerce(key, s, p->v, p->n);
  buf_reset(&key->id);
  if (rc == NODUP_OK) rc = key->db->be->run(key->db, which, p->v, (int)p->n, key_store_id, key);
  goc_params_free(p);
  return rc;
}

int nodup_find(nodup_key *key, const char *const *vals, nodup_result *out) {
  goc_params p;
  key_shape *s;
  int rc;
  if (!key || !out || !vals) return NODUP_ERR_USAGE;
  out->id = NULL;
  out->created = 0;
  if ((rc = db_idle(key->db)) != NODUP_OK) return rc;
  nodup_clear_error(key->db);
  if ((rc = goc_check_nulls(key, vals)) != NODUP_OK) return goc_name_table(key, rc);
  if ((rc = key_shape_get(key, vals, NULL, 0, &s)) != NODUP_OK) return goc_name_table(key, rc);
  if ((rc = goc_params_init(&p, key, vals, NULL, 0, NULL, 0)) != NODUP_OK) return rc;
  if ((rc = run_shape(key, s, s->lookup, &p)) != NODUP_OK) return goc_name_table(key, rc);
  out->id = key->id.len ? buf_str(&key->id) : NULL;
  return NODUP_OK;
}

int nodup_insert(nodup_key *key, const char *const *vals,
                 const char *const *default_cols,
                 const char *const *default_vals, size_t ndefaults,
                 nodup_result *out) {
  key_shape *s;
  goc_params p;
  int rc;
  if (!key || !out || !vals || (ndefaults && (!default_cols || !default_vals)))
    return NODUP_ERR_USAGE;
  out->id = NULL;
  out->created = 0;
  if ((rc = db_idle(key->db)) != NODUP_OK) return rc;
  nodup_clear_error(key->db);
  if ((rc = key_shape_get(key, vals, default_cols, ndefaults, &s)) != NODUP_OK)
    return goc_name_table(key, rc);
  if ((rc = goc_params_init(&p, key, vals, default_vals, ndefaults, NULL, 0)) != NODUP_OK) return rc;
  if ((rc = run_shape(key, s, s->plain, &p)) != NODUP_OK) return goc_name_table(key, rc);
  out->id = buf_str(&key->id);
  out->created = 1;
  return NODUP_OK;
}

/*
 * enforce_online.c -- the online mode of nodup_enforce (PostgreSQL), for
 * tables too big to lock: merge in batches while writers run; install a
 * guard trigger that does the unique index's job (one writer per key at a
 * time, duplicates refused with 23505); merge what slipped in; build the
 * index CONCURRENTLY (on a partitioned table, each leaf partition's, then
 * the parent's, which attaches them); attach the constraint; drop the
 * guard. Each step commits, so a run that dies leaves what it made so far
 * (enforce_leftovers.c finds it); this file also holds the abort mode,
 * which removes that, and the step that finishes a run killed after its
 * build.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enforce_int.h"

#define ENFORCE_BUILDS 3

static int ddl_retry(enforce_ctx *c, const char *sql) {
  return enforce_ddl(c->db, c->timeout, &sql, 1);
}

/* ---- the guard ---- */

/* The guard's refusal: the message names the index being built, as its
 * violation will, and the guard, for whoever meets one that a dead run
 * left; the constraint is the index's name, as the index itself will
 * report it: get-or-create then knows this refusal is its own key's (a
 * lost race to absorb), not another constraint's. The guard function
 * itself, which does the index's job until it is built, is the backend's
 * (guard_function). */
static int guard_function(enforce_ctx *c, buf *q) {
  buf m;
  int rc;
  buf_init(&m);
  buf_puts(&m, "duplicate key value violates unique constraint \"");
  buf_puts(&m, c->rep->index);
  buf_printf(&m, "\" (nodup enforce is building it; refused by its guard trigger %s, which "
                 "`nodup enforce --abort` removes if no enforce of this table is running)",
             c->guard);
  rc = m.oom ? NODUP_ERR_NOMEM
             : db_guard_function(c->db, q, c->guard, c->t, c->key, c->nkey, c->where,
                                 c->opt->nulls_equal, buf_str(&m), c->rep->index);
  buf_free(&m);
  return rc;
}

/* The function, its comment (naming this backend) and its trigger, in one
 * transaction: no moment shows a function without its trigger, which the
 * next enforce anywhere would take for an orphan. */
static int guard_install(enforce_ctx *c) {
  buf q, comment, trigger;
  const char *sql[3];
  int rc;
  buf_init(&q);
  buf_init(&comment);
  buf_init(&trigger);
  if ((rc = guard_function(c, &q)) != NODUP_OK) goto done;
  if ((rc = enforce_guard_comment(c->db, c->guard, c->rep->index, &comment)) != NODUP_OK) goto done;
  if ((rc = db_online_ddl(c->db, &trigger, ONLINE_GUARD_TRIGGER, c->guard, c->t, c->key, c->nkey,
                          NULL)) != NODUP_OK)
    goto done;
  sql[0] = buf_str(&q);
  sql[1] = buf_str(&comment);
  sql[2] = buf_str(&trigger);
  rc = q.oom || trigger.oom ? NODUP_ERR_NOMEM : enforce_ddl(c->db, c->timeout, sql, 3);
  if (rc == NODUP_OK) c->guarded = 1;
done:
  buf_free(&q);
  buf_free(&comment);
  buf_free(&trigger);
  return rc;
}

/* ---- the index ---- */

/* Whether t has a valid index named `index` that no constraint uses. */
static int bare_index(enforce_ctx *c, const char *index, int *bare) {
  db_index_state s;
  int rc = db_index_find(c->db, c->t, index, &s);
  *bare = rc == NODUP_OK && s.exists && s.valid && !s.constrained;
  return rc;
}

/* Drop an INVALID index of ours (a failed CONCURRENTLY build leaves one). */
static int drop_invalid_index(enforce_ctx *c) {
  db_index_state s;
  int rc = db_index_find(c->db, c->t, c->rep->index, &s);
  if (rc != NODUP_OK || !s.exists || s.valid) return rc;
  return enforce_drop_index(c->db, s.qualified);
}

/* Drop the guard (trigger and function, in one transaction) and INVALID
 * indexes on the key: this run's own, on a connection that works. */
static int online_cleanup(enforce_ctx *c) {
  nodup_db *db = c->db;
  buf ignored;
  int rc;
  if (db->be->reconnect && (rc = db->be->reconnect(db)) != NODUP_OK) return rc;
  buf_init(&ignored);
  rc = enforce_leftovers_remove(db, c->t, c->key, c->nkey, c->timeout, 0, &ignored);
  buf_free(&ignored);
  return rc;
}

/* ---- partitioned tables ---- */

/* The leaf partitions, quoted, and the index each gets (PostgreSQL's own
 * name for it: <partition>_<cols>_key). */
/* leaves()'s row: (name, quoted name, bare name); the last two are ours. */
static int read_leaf(void *ctx, int n, const char *const *v) {
  return enforce_read_names(ctx, n - 1, v + 1);
}

static int partitions_load(enforce_ctx *c) {
  enforce_names l;
  size_t i;
  int rc;
  memset(&l, 0, sizeof l);
  rc = c->db->be->leaves ? c->db->be->leaves(c->db, c->table, read_leaf, &l) : NODUP_OK;
  if (rc == NODUP_OK && l.oom) rc = NODUP_ERR_NOMEM;
  if (rc != NODUP_OK) enforce_names_free(&l);
  if (rc != NODUP_OK) return rc;
  c->parts = l.a;
  c->nparts = l.n;
  c->part_index = calloc(l.n + 1, sizeof *c->part_index);
  rc = c->part_index ? NODUP_OK : NODUP_ERR_NOMEM;
  for (i = 0; rc == NODUP_OK && i < l.n; i++)
    if (!(c->part_index[i] = enforce_default_name(l.b[i], c->key, c->nkey))) rc = NODUP_ERR_NOMEM;
  strv_free(l.b, l.n);
  return rc;
}

void enforce_partitions_free(enforce_ctx *c) {
  size_t i;
  for (i = 0; i < c->nparts; i++) {
    free(c->parts[i]);
    if (c->part_index) free(c->part_index[i]);
  }
  free(c->parts);
  free(c->part_index);
  c->parts = c->part_index = NULL;
  c->nparts = 0;
}

/* Partition i's index of ours, if it exists and is not attached to a
 * parent index yet: its quoted name, and whether it is valid. */
static int partition_index(enforce_ctx *c, size_t i, char **qualified, int *valid) {
  nodup_table_info part;
  db_index_state s;
  int rc;
  memset(&part, 0, sizeof part);
  part.qualified = c->parts[i];   /* index_state reads the name only */
  *qualified = NULL;
  rc = db_index_find(c->db, &part, c->part_index[i], &s);
  if (rc == NODUP_OK && s.exists && !s.attached) {
    *valid = s.valid;
    if (!(*qualified = nodup_strdup(s.qualified))) rc = NODUP_ERR_NOMEM;
  }
  return rc;
}

/* Drop our partition indexes that no parent index took: INVALID leftovers,
 * and the valid ones this run built (built[i]; NULL: none). */
static int partitions_cleanup(enforce_ctx *c, const int *built) {
  size_t i;
  int rc = NODUP_OK;
  for (i = 0; i < c->nparts && rc == NODUP_OK; i++) {
    char *name = NULL;
    int valid = 0;
    if ((rc = partition_index(c, i, &name, &valid)) != NODUP_OK || !name) continue;
    if (!valid || (built && built[i])) rc = enforce_drop_index(c->db, name);
    free(name);
  }
  return rc;
}

/* ---- the steps ---- */

/* Step 3, CONCURRENTLY: a plain table's index, or each leaf partition's
 * (one there already is kept: the parent will take it). built[i]:
 * partition i's index is this run's. */
static int online_build(enforce_ctx *c, int *built) {
  buf q;
  size_t i;
  int rc = NODUP_OK;
  buf_init(&q);
  c->building = 1;
  if (!c->partitioned) {
    enforce_index_ddl(c, &q, 1);
    rc = enforce_exec(c->db, &q);
  }
  for (i = 0; c->partitioned && i < c->nparts && rc == NODUP_OK; i++) {
    char *name = NULL;
    int valid = 0;
    if ((rc = partition_index(c, i, &name, &valid)) != NODUP_OK) break;
    free(name);
    if (name && valid) continue;
    buf_reset(&q);
    enforce_index_ddl_on(c, &q, 1, c->part_index[i], c->parts[i]);
    if ((rc = enforce_exec(c->db, &q)) == NODUP_OK) built[i] = 1;
  }
  buf_free(&q);
  return rc;
}

/* Step 4, a brief lock and no scan: a plain table's constraint on the
 * built index; a partitioned table's own index (with its constraint unless
 * partial), which attaches the leaves' indexes instead of building. */
static int online_finish(enforce_ctx *c) {
  buf q;
  int rc = NODUP_OK;
  int bare = c->where || c->expression;   /* an index without constraint */
  buf_init(&q);
  if (c->partitioned && bare) enforce_index_ddl(c, &q, 0);
  else if (c->partitioned) enforce_constraint_ddl(c, &q);
  else if (!bare) enforce_using_index_ddl(c, &q);
  if (q.len || q.oom) rc = q.oom ? NODUP_ERR_NOMEM : ddl_retry(c, buf_str(&q));
  if (rc == NODUP_OK) c->rep->constraint = !bare;
  buf_free(&q);
  return rc;
}

/* Steps 2 to 4, the guard in place: merge what slipped in, build, attach.
 * A build that a duplicate broke (a writer outside READ COMMITTED, which
 * the guard cannot stop) is dropped and tried again after a merge; when
 * such writers keep racing the guard, the locked mode finishes. */
static int build_behind_guard(enforce_ctx *c, int *built) {
  nodup_db *db = c->db;
  int rc, crc;
  for (;;) {
    if ((rc = enforce_clean(c, ENFORCE_PASS_ALL)) != NODUP_OK) return rc;
    c->rep->builds++;
    if ((rc = online_build(c, built)) == NODUP_OK) return online_finish(c);
    {
      db_error e;
      int again = !strcmp(nodup_sqlstate(db), "23505");
      db_error_save(db, &e);
      crc = partitions_cleanup(c, built);
      if (crc == NODUP_OK) crc = drop_invalid_index(c);
      db_error_restore(db, rc, &e);
      memset(built, 0, (c->nparts + 1) * sizeof *built);
      if (crc != NODUP_OK || !again) return rc;
    }
    if (c->rep->builds >= ENFORCE_BUILDS) {
      c->rep->fell_back = 1;
      return enforce_locked(c);
    }
  }
}

/* A failed run's message (or a finished one's that could not remove its
 * guard): the error, then what the catalog shows is left of the run or,
 * when it cannot be read (the server went away), what may be. */
static int left_behind(enforce_ctx *c, int rc, const char *err, int crc, const char *cerr) {
  nodup_db *db = c->db;
  buf m, left;
  int lrc;
  buf_init(&m);
  buf_init(&left);
  buf_puts(&m, err ? err : nodup_strerror(rc));
  lrc = crc == NODUP_OK ? enforce_leftovers(db, c->t, c->key, c->nkey, c->where, 1, &left) : crc;
  if (lrc == NODUP_OK && left.len)
    buf_printf(&m, "; %s", buf_str(&left));
  else if (lrc == NODUP_OK)
    buf_printf(&m, "; nothing of this run is left on %s%s", c->t->qualified,
               c->guarded || c->building ? " (its guard trigger, function and index build "
                                           "were removed)" : "");
  else
    enforce_leftovers_unknown(&m, c->t, c->key, c->nkey, c->where,
                              crc != NODUP_OK && cerr ? cerr : nodup_errmsg(db),
                              c->guarded ? c->guard : NULL,
                              c->building ? c->rep->index : NULL, c->partitioned);
  buf_free(&left);
  c->told = 1;
  return db_fail_buf(db, rc, &m);
}

/* The index is built and valid: remove the guard. Failing that, the run
 * failed, and its message says what is left. */
static int online_done(enforce_ctx *c) {
  nodup_db *db = c->db;
  char *cmsg;
  buf m;
  int rc;
  c->building = 0;
  if ((rc = online_cleanup(c)) == NODUP_OK) return NODUP_OK;
  cmsg = nodup_strdup(nodup_errmsg(db));
  buf_init(&m);
  buf_printf(&m, "index %s is built and enforces the key, but removing the guard failed: %s",
             c->rep->index, cmsg ? cmsg : nodup_strerror(rc));
  rc = left_behind(c, rc, m.oom ? NULL : buf_str(&m), rc, cmsg);
  buf_free(&m);
  free(cmsg);
  return rc;
}

/* Clean up on a connection that works (the server may have dropped ours),
 * then say exactly what is left, from the catalog. */
static int online_failed(enforce_ctx *c, int rc, const int *built) {
  nodup_db *db = c->db;
  char *msg = nodup_strdup(nodup_errmsg(db)), *cmsg = NULL;
  int crc = db->be->reconnect ? db->be->reconnect(db) : NODUP_OK;
  if (crc == NODUP_OK && c->partitioned) crc = partitions_cleanup(c, built);
  if (crc == NODUP_OK) crc = online_cleanup(c);
  if (crc != NODUP_OK) cmsg = nodup_strdup(nodup_errmsg(db));
  rc = left_behind(c, rc, msg, crc, cmsg);
  free(msg);
  free(cmsg);
  return rc;
}

int enforce_online(enforce_ctx *c) {
  int *built = NULL;
  int rc;
  if (c->partitioned && (rc = partitions_load(c)) != NODUP_OK) return rc;
  if (!(built = calloc(c->nparts + 1, sizeof *built))) return NODUP_ERR_NOMEM;
  /* (nodup_enforce removed an interrupted run's guard and INVALID indexes.) */
  rc = partitions_cleanup(c, NULL);
  /* 1: the bulk of the merge, in batches, writers running: one pass over
   * the groups there are now. */
  if (rc == NODUP_OK) rc = enforce_clean(c, ENFORCE_PASS_BOUNDED);
  /* 2: from now on no writer adds a duplicate. (Counted as there from the
   * first try: a failed COMMIT may have made it.) */
  if (rc == NODUP_OK) {
    c->guarded = 1;
    rc = guard_install(c);
  }
  if (rc == NODUP_OK) rc = build_behind_guard(c, built);
  rc = rc == NODUP_OK ? online_done(c) : online_failed(c, rc, built);
  free(built);
  return rc;
}

/* ---- a run killed after its build; --abort ---- */

/*
 * The key is backed already. An online run killed after its index was
 * built leaves two things behind: its guard trigger (removed by
 * nodup_enforce before this, with the other leftovers) and, for a key
 * without predicate, the constraint it never attached. Attach it when the
 * index has the name this run would give it and no constraint uses it
 * yet. Anything else is the user's index: reported, not touched. *changed
 * tells whether the constraint was attached.
 */
int enforce_finish_interrupted(enforce_ctx *c, const char *index, int *changed) {
  int bare = 0, rc;
  *changed = 0;
  if (!db_can(c->db, BE_CAP_ONLINE_INDEX) || c->opt->dry_run) return NODUP_OK;
  /* (A partitioned table's constraint comes with its index, never after.) */
  if (c->where || c->expression || c->partitioned || strcmp(index, c->rep->index) != 0)
    return NODUP_OK;
  rc = bare_index(c, index, &bare);
  if (rc == NODUP_OK && bare) {
    buf q;
    buf_init(&q);
    enforce_using_index_ddl(c, &q);   /* index is c->rep->index (checked above) */
    rc = q.oom ? NODUP_ERR_NOMEM : ddl_retry(c, buf_str(&q));
    buf_free(&q);
    if (rc == NODUP_OK) *changed = c->rep->constraint = 1;
  }
  return rc;
}

/*
 * --abort: remove what an interrupted online run left for this key (its
 * guard, INVALID indexes on the key, the partition indexes it built, and
 * orphan guard functions anywhere); change nothing else. A valid index it
 * built stays (it backs the key): the notice says so, and that `nodup
 * enforce` attaches its constraint. Removing is allowed wherever the run
 * could have been: no engine or partition-key refusal stands between a
 * user and a leftover.
 */
int enforce_abort(enforce_ctx *c) {
  nodup_db *db = c->db;
  buf left;
  int bare = 0, rc = NODUP_OK;
  if (db_can(db, BE_CAP_PARTITIONS) && (rc = enforce_partition_check(c)) == NODUP_ERR_USAGE) {
    rc = NODUP_OK;
    nodup_clear_error(db);
  }
  if (rc != NODUP_OK) return rc;
  rc = enforce_leftovers_remove(db, c->t, c->key, c->nkey, c->timeout,
                                LEFTOVERS_KEY_GUARD_ONLY | LEFTOVERS_PARTITIONS, &c->removed);
  c->told = 1;
  if (rc != NODUP_OK) return rc;
  /* What stays: a guard of another key, an index being built. */
  buf_init(&left);
  rc = enforce_leftovers(db, c->t, c->key, c->nkey, c->where, 0, &left);
  if (rc == NODUP_OK && !c->where && !c->expression && !c->partitioned)
    rc = bare_index(c, c->rep->index, &bare);
  buf_reset(&db->notice);
  if (rc == NODUP_OK && left.len) buf_printf(&db->notice, "still there: %s", buf_str(&left));
  if (rc == NODUP_OK && bare)
    buf_printf(&db->notice, "%skept index %s: it is valid and backs the key, but its UNIQUE "
                            "constraint was never attached (`nodup enforce` with this key "
                            "attaches it)", db->notice.len ? "; " : "", c->rep->index);
  if (rc == NODUP_OK && (left.oom || db->notice.oom)) rc = NODUP_ERR_NOMEM;
  buf_free(&left);
  return rc;
}

/*
 * enforce_locked.c -- the locked mode of nodup_enforce: the last clean-up,
 * the index and its constraint in one transaction under one lock (SQLite's
 * write lock; PostgreSQL's SHARE ROW EXCLUSIVE, which lets readers on and
 * queues writers), so no writer can add a duplicate in between. A lock not
 * granted within lock_timeout is given up and asked for again after a
 * back-off, so the writers queued behind the request never wait longer
 * than that. The short DDL transactions of the online mode and of the
 * leftovers' removal are retried the same way (enforce_ddl).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "enforce_int.h"

#define ENFORCE_LOCK_TRIES 8

/* Before try `attempt` (from 0): 100 ms, 200 ms, ... at most 1.6 s. */
static void back_off(int attempt) {
  long ms = attempt ? 50L << (attempt < 5 ? attempt : 5) : 0;
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  if (ms) nanosleep(&ts, NULL);
}

/* PostgreSQL's lock_not_available: our lock_timeout ran out. */
static int lock_timed_out(nodup_db *db) { return !strcmp(nodup_sqlstate(db), "55P03"); }

static int set_lock_timeout(nodup_db *db, long timeout_ms) {
  char sql[64];
  snprintf(sql, sizeof sql, "SET LOCAL lock_timeout = %ld", timeout_ms);
  return db->be->exec(db, sql);
}

/* A short DDL transaction with lock_timeout, retried like the locked mode.
 * Each statement alone (some carry the user's WHERE): never a
 * multi-statement exec. */
int enforce_ddl(nodup_db *db, long timeout_ms, const char *const *sql, size_t n) {
  size_t i;
  int rc = NODUP_OK, attempt;
  for (attempt = 0; attempt < ENFORCE_LOCK_TRIES; attempt++) {
    back_off(attempt);
    if ((rc = db->be->exec(db, "BEGIN")) != NODUP_OK) return rc;
    rc = set_lock_timeout(db, timeout_ms);
    for (i = 0; rc == NODUP_OK && i < n; i++) rc = db->be->query(db, sql[i], NULL, 0, NULL, NULL);
    if (rc == NODUP_OK && (rc = db->be->exec(db, "COMMIT")) == NODUP_OK) return NODUP_OK;
    {
      int retry = lock_timed_out(db);
      db_rollback(db, rc);
      if (!retry) return rc;
    }
  }
  return rc;
}

static int begin(enforce_ctx *c) {
  nodup_db *db = c->db;
  return db->be->begin_write_urgent ? db->be->begin_write_urgent(db, c->timeout)
                                    : db->be->exec(db, db->be->begin_write);
}

/* PostgreSQL: the table lock, under lock_timeout. */
static int lock_table(enforce_ctx *c, buf *q) {
  int rc;
  buf_reset(q);
  buf_printf(q, "LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE", c->t->qualified);
  if ((rc = set_lock_timeout(c->db, c->timeout)) == NODUP_OK) rc = enforce_exec(c->db, q);
  return rc;
}

static int attach_constraint(enforce_ctx *c, buf *q) {
  int rc;
  if (!db_can(c->db, BE_CAP_CONSTRAINTS) || c->where || c->expression) return NODUP_OK;
  buf_reset(q);
  enforce_using_index_ddl(c, q);
  if ((rc = enforce_exec(c->db, q)) == NODUP_OK) c->rep->constraint = 1;
  return rc;
}

/* Under the lock: clean, then the index and its constraint (a partitioned
 * table's constraint, which brings its index). */
static int clean_and_index(enforce_ctx *c, buf *q) {
  nodup_db *db = c->db;
  int rc = enforce_clean(c, ENFORCE_PASS_LOCKED);
  /* A merge's deletes and updates queue the checks of DEFERRABLE
   * INITIALLY DEFERRED foreign keys (every Django foreign key) until
   * COMMIT, and PostgreSQL refuses to build an index on a table with
   * pending trigger events (55006): run the checks now. */
  if (rc == NODUP_OK && db_can(db, BE_CAP_DEFERRABLE_FKS))
    rc = db->be->exec(db, "SET CONSTRAINTS ALL IMMEDIATE");
  if (rc != NODUP_OK) return rc;
  buf_reset(q);
  if (c->partitioned && !c->where && !c->expression) {
    enforce_constraint_ddl(c, q);
    if ((rc = enforce_exec(db, q)) == NODUP_OK) c->rep->constraint = 1;
    return rc;
  }
  enforce_index_ddl(c, q, 0);
  if ((rc = enforce_exec(db, q)) == NODUP_OK) rc = attach_constraint(c, q);
  return rc;
}

int enforce_locked(enforce_ctx *c) {
  nodup_db *db = c->db;
  int table_locks = db_can(db, BE_CAP_TABLE_LOCKS), commit = !c->opt->dry_run;
  buf q;
  int rc = NODUP_OK, attempt;
  buf_init(&q);
  for (attempt = 0; attempt < ENFORCE_LOCK_TRIES; attempt++) {
    double held = 0;
    back_off(attempt);
    rc = begin(c);
    if (rc == NODUP_ERR_RETRY && !table_locks) {
      /* SQLite: busy until the deadline; back off and ask again. */
      rc = nodup_fail(db, NODUP_ERR_RETRY,
                      "could not get the write lock on %s within %ld ms in %d tries: "
                      "writers kept it busy",
                      c->t->qualified, c->timeout, attempt + 1);
      continue;
    }
    if (rc != NODUP_OK) break;
    if (table_locks) rc = lock_table(c, &q);
    if (rc == NODUP_OK) {
      held = db_now_ms();
      rc = clean_and_index(c, &q);
    }
    if (rc == NODUP_OK && commit && (rc = db->be->exec(db, "COMMIT")) == NODUP_OK) {
      c->rep->lock_ms += db_now_ms() - held;
      break;
    }
    {
      int retry = rc != NODUP_OK && table_locks && lock_timed_out(db);
      db_rollback(db, rc);
      if (held > 0) c->rep->lock_ms += db_now_ms() - held;
      if (!retry) break;
      rc = nodup_fail(db, NODUP_ERR_RETRY,
                      "could not lock %s within %ld ms in %d tries: writers kept it busy",
                      c->t->qualified, c->timeout, ENFORCE_LOCK_TRIES);
    }
  }
  buf_free(&q);
  return rc;
}

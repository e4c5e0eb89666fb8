/*
 * error.c -- error codes as sentences, and the per-connection message.
 *
 * The sentences come from the same X-macro table as the enum in nodup.h, so
 * a code can never lack its text. The detailed message (which table, which
 * constraint) lives on the connection, like sqlite3_errmsg().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

const char *nodup_libversion(void) { return NODUP_VERSION; }

int nodup_libversion_number(void) { return NODUP_VERSION_NUMBER; }

const char *nodup_strerror(int code) {
  switch (code) {
#define NODUP_X_TEXT(name, num, text) \
  case num:                           \
    return text;
    NODUP_ERROR_MAP(NODUP_X_TEXT)
#undef NODUP_X_TEXT
  }
  return "unknown error code";
}

const char *nodup_errmsg(const nodup_db *db) {
  if (!db) return "out of memory (no connection object)";
  return buf_str(&db->err);
}

const char *nodup_notice(const nodup_db *db) {
  return db && db->notice.len ? buf_str(&db->notice) : NULL;
}

int nodup_fail(nodup_db *db, int code, const char *fmt, ...) {
  va_list ap;
  char tmp[2048];
  if (!db) return code;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  buf_reset(&db->err);
  buf_puts(&db->err, tmp);
  return code;
}

const char *nodup_sqlstate(const nodup_db *db) { return db ? db->sqlstate : ""; }

const char *nodup_errconstraint(const nodup_db *db) { return db ? db->constraint : ""; }

void nodup_clear_error(nodup_db *db) {
  if (!db) return;
  buf_reset(&db->err);
  db->sqlstate[0] = db->constraint[0] = '\0';
}

void db_set_sqlstate(nodup_db *db, const char *state, const char *constraint) {
  snprintf(db->sqlstate, sizeof db->sqlstate, "%s", state ? state : "");
  snprintf(db->constraint, sizeof db->constraint, "%s", constraint ? constraint : "");
}

void db_error_save(const nodup_db *db, db_error *e) {
  e->msg = nodup_strdup(buf_str(&db->err));
  memcpy(e->sqlstate, db->sqlstate, sizeof e->sqlstate);
  memcpy(e->constraint, db->constraint, sizeof e->constraint);
}

int db_error_restore(nodup_db *db, int rc, db_error *e) {
  if (rc == NODUP_OK) {
    nodup_clear_error(db);
  } else {
    buf_reset(&db->err);
    buf_puts(&db->err, e->msg ? e->msg : nodup_strerror(rc));
    memcpy(db->sqlstate, e->sqlstate, sizeof db->sqlstate);
    memcpy(db->constraint, e->constraint, sizeof db->constraint);
  }
  free(e->msg);
  e->msg = NULL;
  return rc;
}

int db_rollback_sql(nodup_db *db, int rc, const char *sql) {
  db_error e;
  db_error_save(db, &e);
  db->be->exec(db, sql);
  return db_error_restore(db, rc, &e);
}

int db_rollback(nodup_db *db, int rc) { return db_rollback_sql(db, rc, "ROLLBACK"); }

int db_fail_buf(nodup_db *db, int code, buf *m) {
  if (m->oom) {
    buf_free(m);
    return NODUP_ERR_NOMEM;
  }
  buf_free(&db->err);
  db->err = *m;
  buf_init(m);
  return code;
}

int db_end(nodup_db *db, int rc) {
  if (rc == NODUP_OK && (rc = db->be->exec(db, "COMMIT")) == NODUP_OK) return NODUP_OK;
  return db_rollback(db, rc);
}

/*
 * error.c -- error codes as sentences, and the per-connection message.
 *
 * The sentences come from the same X-macro table as the enum in nodup.h, so
 * a code can never lack its text. The detailed message (which table, which
 * constraint) lives on the connection, like sqlite3_errmsg().
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

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

void nodup_clear_error(nodup_db *db) {
  if (db) buf_reset(&db->err);
}

/*
 * db.c -- connections: choosing a backend from the URL, opening, closing.
 *
 * The URL decides the backend once; everything after goes through the
 * backend's function table (curl's struct Curl_ssl, SQLite's VFS).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "internal.h"

static int starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A libpq conninfo string is "keyword = value ..."; a path never starts
 * with an identifier followed by '='. */
static int looks_like_conninfo(const char *s) {
  while (isspace((unsigned char)*s)) s++;
  if (!isalpha((unsigned char)*s) && *s != '_') return 0;
  while (isalnum((unsigned char)*s) || *s == '_') s++;
  while (isspace((unsigned char)*s)) s++;
  return *s == '=';
}

static int check_pg_url(nodup_db *db, const char *url) {
  char *err = NULL;
  PQconninfoOption *opts = PQconninfoParse(url, &err);
  if (!opts) {
    int rc = nodup_fail(db, NODUP_ERR_URL, "malformed PostgreSQL URL \"%s\": %s",
                        url, err ? err : "out of memory");
    if (err) PQfreemem(err);
    /* PQconninfoParse's message ends with a newline; keep one line. */
    if (db->err.len && db->err.p[db->err.len - 1] == '\n')
      db->err.p[--db->err.len] = '\0';
    return rc;
  }
  PQconninfoFree(opts);
  return NODUP_OK;
}

int nodup_open(nodup_db **out, const char *url) { return nodup_open_ext(out, url, 0); }

int nodup_open_ext(nodup_db **out, const char *url, unsigned flags) {
  nodup_db *db;
  const char *target = url;
  int rc;

  if (!out) return NODUP_ERR_USAGE;
  *out = db = calloc(1, sizeof *db);
  if (!db) return NODUP_ERR_NOMEM;
  buf_init(&db->err);
  db->flags = flags;

  if (flags & ~NODUP_OPEN_READONLY)
    return nodup_fail(db, NODUP_ERR_USAGE, "unknown nodup_open_ext flags 0x%x",
                      flags & ~NODUP_OPEN_READONLY);
  if (!url || !*url)
    return nodup_fail(db, NODUP_ERR_URL, "empty database URL");
  if (starts_with(url, "postgres://") || starts_with(url, "postgresql://") ||
      looks_like_conninfo(url)) {
    db->be = &nodup_pg_backend;
    if ((rc = check_pg_url(db, url)) != NODUP_OK) return rc;
  } else if (starts_with(url, "sqlite:")) {
    db->be = &nodup_sqlite_backend;
    target = url + strlen("sqlite:");
    if (starts_with(target, "//")) target += 2;
    if (!*target) return nodup_fail(db, NODUP_ERR_URL, "sqlite: URL without a path");
  } else if (strstr(url, "://")) {
    return nodup_fail(db, NODUP_ERR_URL,
                      "unsupported database URL \"%s\": use a file path, "
                      "sqlite:PATH, postgres://... or a libpq conninfo string",
                      url);
  } else {
    db->be = &nodup_sqlite_backend;
  }
  rc = db->be->connect(db, target);
  if (rc == NODUP_OK) nodup_clear_error(db);
  return rc;
}

void nodup_close(nodup_db *db) {
  if (!db) return;
  if (db->be && db->native) db->be->disconnect(db);
  buf_free(&db->err);
  free(db);
}

const char *nodup_db_backend(const nodup_db *db) {
  return db && db->be ? db->be->name : "none";
}

void *nodup_db_handle(nodup_db *db) { return db ? db->native : NULL; }

int nodup_exec(nodup_db *db, const char *sql) {
  if (!db || !db->native || !sql) return NODUP_ERR_USAGE;
  nodup_clear_error(db);
  return db->be->exec(db, sql);
}

/* Statements shared by both backends are written with ?N; PostgreSQL
 * spells the placeholders $N. */
int db_exec_params(nodup_db *db, const char *sql, const char *const *p, int n) {
  buf q;
  const char *s;
  int rc;
  buf_init(&q);
  for (s = sql; *s; s++) buf_putc(&q, *s == '?' ? db->be->placeholder : *s);
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), p, n, NULL, NULL);
  buf_free(&q);
  return rc;
}

int db_read_count(void *ctx, int n, const char *const *v) {
  (void)n;
  *(long long *)ctx = v[0] ? atoll(v[0]) : 0;
  return 1;
}

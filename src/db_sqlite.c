/*
 * db_sqlite.c -- the SQLite backend.
 *
 * Connections run in WAL mode (readers never block the writer) with a busy
 * timeout, extended result codes and foreign_keys=ON. WAL persists in the
 * file, so only a connection that may write switches to it: a read-only
 * open (nodup check, nodup scan) leaves a rollback-journal file as it is.
 * Get-or-create reads first without any lock (a hit never waits for a
 * writer) and only a miss takes the write lock, with BEGIN IMMEDIATE: a
 * deferred transaction that reads and then writes fails with
 * SQLITE_BUSY_SNAPSHOT when another connection committed since its read,
 * and the busy timeout does not apply to that upgrade (SQLite's "WAL mode"
 * and "BEGIN" pages; measured here with 4 threads: millions of BUSY errors
 * deferred, none immediate).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sqlite3.h>

#include "internal.h"

#define SQLITE_BUSY_MS 5000

static sqlite3 *H(nodup_db *db) { return (sqlite3 *)db->native; }

/* Map an SQLite result code to a nodup code and set the message. */
/* nodup_sqlstate() for an SQLite result code: what PostgreSQL would say,
 * so that callers (and nodup itself) match one code on both engines. */
static const char *sq_sqlstate(int rc) {
  switch (rc) {
  case SQLITE_CONSTRAINT_UNIQUE:
  case SQLITE_CONSTRAINT_PRIMARYKEY:
    return "23505";
  case SQLITE_CONSTRAINT_FOREIGNKEY:
    return "23503";
  case SQLITE_CONSTRAINT_NOTNULL:
    return "23502";
  case SQLITE_CONSTRAINT_CHECK:
    return "23514";
  }
  switch (rc & 0xff) {
  case SQLITE_CONSTRAINT:
    return "23000";
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return "55P03";
  case SQLITE_NOMEM:
    return "53200";
  }
  return "HV000";
}

static int sq_fail(nodup_db *db, int rc, const char *what) {
  sqlite3 *h = H(db);
  const char *msg = h ? sqlite3_errmsg(h) : sqlite3_errstr(rc);
  int primary = rc & 0xff;
  int code = NODUP_ERR_DB;
  db_set_sqlstate(db, sq_sqlstate(rc), NULL);
  if (primary == SQLITE_CONSTRAINT) code = NODUP_ERR_CONSTRAINT;
  else if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) code = NODUP_ERR_RETRY;
  else if (primary == SQLITE_NOMEM) code = NODUP_ERR_NOMEM;
  return nodup_fail(db, code, "%s%s%s (SQLite %s)", what ? what : "",
                    what ? ": " : "", msg, sqlite3_errstr(rc));
}

/* nodup_unhex(text): the bytes of a hex string; undo restores archived
 * BLOBs with it (SQLite has unhex() only from 3.41). */
static void sq_unhex(sqlite3_context *ctx, int n, sqlite3_value **v) {
  const unsigned char *s = sqlite3_value_text(v[0]);
  int len = sqlite3_value_bytes(v[0]), i;
  unsigned char *out;
  (void)n;
  if (!s) {
    sqlite3_result_null(ctx);
    return;
  }
  if (!(out = sqlite3_malloc(len / 2 + 1))) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  for (i = 0; i + 1 < len; i += 2) {
    int hi = s[i] <= '9' ? s[i] - '0' : (s[i] | 0x20) - 'a' + 10;
    int lo = s[i + 1] <= '9' ? s[i + 1] - '0' : (s[i + 1] | 0x20) - 'a' + 10;
    out[i / 2] = (unsigned char)(hi << 4 | lo);
  }
  sqlite3_result_blob(ctx, out, len / 2, sqlite3_free);
}

/* A read-only open of an SQLite URI whose mode= asks for more (rw, rwc):
 * SQLite refuses a mode less restrictive than the open flags ("access mode
 * not allowed"), so the copy in *out says mode=ro instead. *out is NULL
 * when target needs no change; the caller frees it. */
static int sq_readonly_uri(const char *target, char **out) {
  const char *q = strchr(target, '?'), *m;
  buf b;
  *out = NULL;
  if (strncmp(target, "file:", 5) != 0 || !q) return NODUP_OK;
  for (m = q; (m = strstr(m + 1, "mode=")) != NULL;)
    if (m[-1] == '?' || m[-1] == '&') break;
  if (!m) return NODUP_OK;
  buf_init(&b);
  buf_putn(&b, target, (size_t)(m - target));
  buf_puts(&b, "mode=ro");
  buf_puts(&b, m + 5 + strcspn(m + 5, "&#"));
  if (b.oom) return NODUP_ERR_NOMEM;
  *out = b.p;
  return NODUP_OK;
}

/* The embedded default: sqlite:PATH, sqlite://PATH, or any path (so it
 * is asked last); another scheme's URL is not a path. */
static int sq_accepts(const char *url) {
  return !strncmp(url, "sqlite:", 7) || !strstr(url, "://");
}

static int read_flag(void *ctx, int n, const char *const *v) {
  (void)n;
  *(int *)ctx = v[0] && !strcmp(v[0], "1");
  return 1;
}

static int sq_fk_enforced(nodup_db *db, int *on) {
  return db->be->query(db, "PRAGMA foreign_keys", NULL, 0, read_flag, on);
}

/*
 * A batched merge rewrites pages all over the file, batch after batch. At
 * each commit WAL's automatic checkpoint (past 1,000 pages, SQLite's
 * default) copied the batch's pages into the file and synced it: a page
 * dirtied by many batches was written to the file as many times. Postponed
 * to the run's end, each reaches it once (measured in docs/BENCHMARKS.md,
 * "At the limit (issue 14)"). The WAL grows meanwhile (at most
 * SQ_BULK_CHECKPOINT pages, 400 MiB at 4 KiB a page, before a checkpoint
 * runs anyway); the final checkpoint truncates it again, unless a reader
 * is in the way, when the next checkpoint that finds none does. Other
 * connections keep their own setting: this connection's commits alone are
 * postponed.
 */
#define SQ_BULK_CHECKPOINT 100000

static int read_long(void *ctx, int n, const char *const *v) {
  (void)n;
  *(long *)ctx = v[0] ? atol(v[0]) : -1;
  return 1;
}

static int sq_bulk_writes(nodup_db *db, int begin, long *saved) {
  char sql[64];
  buf mode;
  int rc;
  if (!begin) {
    if (*saved < 0) return NODUP_OK;
    snprintf(sql, sizeof sql, "PRAGMA wal_autocheckpoint = %ld", *saved);
    if ((rc = db->be->exec(db, sql)) != NODUP_OK) return rc;
    /* Best effort: the merge is committed; a reader in the way (busy)
     * leaves the WAL to a later checkpoint. */
    db->be->exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    return NODUP_OK;
  }
  *saved = -1;
  buf_init(&mode);
  rc = db->be->query(db, "PRAGMA journal_mode", NULL, 0, db_read_text, &mode);
  if (rc == NODUP_OK && mode.oom) rc = NODUP_ERR_NOMEM;
  if (rc == NODUP_OK && !strcmp(buf_str(&mode), "wal"))
    rc = db->be->query(db, "PRAGMA wal_autocheckpoint", NULL, 0, read_long, saved);
  buf_free(&mode);
  if (rc != NODUP_OK || *saved < 0) return rc;
  snprintf(sql, sizeof sql, "PRAGMA wal_autocheckpoint = %d", SQ_BULK_CHECKPOINT);
  return db->be->exec(db, sql);
}

static int sq_connect(nodup_db *db, const char *target) {
  sqlite3 *h = NULL;
  int readonly = (db->flags & NODUP_OPEN_READONLY) != 0;
  int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
              SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
  int rc;
  char *err = NULL;

  if (!strncmp(target, "sqlite:", 7)) {
    target += 7;
    if (!strncmp(target, "//", 2)) target += 2;
    if (!*target) return nodup_fail(db, NODUP_ERR_URL, "sqlite: URL without a path");
  }
  /* A plain path must exist; an explicit URI may create (mode=rwc). A
   * read-only open never creates (SQLite ignores mode=rwc under it). */
  if (strncmp(target, "file:", 5) == 0 && !readonly) flags |= SQLITE_OPEN_CREATE;
  if (readonly) {
    char *ro = NULL;
    if ((rc = sq_readonly_uri(target, &ro)) != NODUP_OK) return rc;
    rc = sqlite3_open_v2(ro ? ro : target, &h, flags, NULL);
    free(ro);
  } else {
    rc = sqlite3_open_v2(target, &h, flags, NULL);
  }
  if (rc != SQLITE_OK) {
    nodup_fail(db, NODUP_ERR_CONNECT,
               "cannot open SQLite database \"%s\": %s%s", target,
               h ? sqlite3_errmsg(h) : sqlite3_errstr(rc),
               (rc & 0xff) == SQLITE_CANTOPEN
                   ? " (the file must exist; use file:PATH?mode=rwc to create)"
                   : "");
    sqlite3_close(h);
    return NODUP_ERR_CONNECT;
  }
  db->native = h;
  db->server_version = sqlite3_libversion_number();
  sqlite3_extended_result_codes(h, 1);
  sqlite3_busy_timeout(h, SQLITE_BUSY_MS);
  sqlite3_create_function(h, "nodup_unhex", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                          sq_unhex, NULL, NULL);
  /* A file SQLite could only open read-only (permissions, a read-only
   * directory, mode=ro) keeps its journal mode: switching is a write. */
  if (sqlite3_db_readonly(h, "main") == 1) readonly = 1;
  rc = sqlite3_exec(h, readonly ? "PRAGMA foreign_keys=ON;"
                                : "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;",
                    NULL, NULL, &err);
  if (rc != SQLITE_OK) {
    nodup_fail(db, NODUP_ERR_CONNECT, "cannot use SQLite database \"%s\": %s",
               target, err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    sqlite3_close(h);
    db->native = NULL;
    return NODUP_ERR_CONNECT;
  }
  return NODUP_OK;
}

static void sq_disconnect(nodup_db *db) {
  /* close_v2: statements the caller leaked do not keep the file open. */
  sqlite3_close_v2(H(db));
  db->native = NULL;
}

static int sq_exec(nodup_db *db, const char *sql) {
  int rc = sqlite3_exec(H(db), sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? NODUP_OK : sq_fail(db, rc, NULL);
}

static int sq_bind(nodup_db *db, sqlite3_stmt *st, const char *const *params,
                   int n) {
  int i, rc;
  for (i = 0; i < n; i++) {
    rc = params[i] ? sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_STATIC)
                   : sqlite3_bind_null(st, i + 1);
    /* A shape may not reference every parameter (IS NULL columns). */
    if (rc != SQLITE_OK && rc != SQLITE_RANGE) return sq_fail(db, rc, "bind");
  }
  return NODUP_OK;
}

/* v as decimal text into out (at least 21 bytes); returns its length. */
static size_t int_format(char *out, sqlite3_int64 v) {
  char tmp[21];
  size_t n = 0, i = 0;
  /* Through unsigned: -INT64_MIN overflows a signed negation. */
  sqlite3_uint64 u = v < 0 ? 0 - (sqlite3_uint64)v : (sqlite3_uint64)v;
  do tmp[n++] = (char)('0' + u % 10); while ((u /= 10) != 0);
  if (v < 0) out[i++] = '-';
  while (n) out[i++] = tmp[--n];
  out[i] = '\0';
  return i;
}

static const char *int_text(char *out, sqlite3_int64 v) {
  int_format(out, v);
  return out;
}

/* Step to completion, handing each row to fn. Stops calling fn (but keeps
 * stepping, so the statement's effect is complete) once fn returns nonzero.
 * Integer values (ids, mostly) are formatted here: sqlite3_column_text
 * would convert them to text inside SQLite on every row. Measured, not
 * explained: hits with 4 threads went from 0.85-0.88x a prepared SELECT
 * to 1.01x with this change (docs/BENCHMARKS.md). */
static int sq_row(sqlite3_stmt *st, row_fn fn, void *ctx) {
  const char *vals[64];
  char num[4][21];
  int i, n = sqlite3_column_count(st);
  if (n > 64) n = 64;
  for (i = 0; i < n; i++)
    vals[i] = i < 4 && sqlite3_column_type(st, i) == SQLITE_INTEGER
                  ? int_text(num[i], sqlite3_column_int64(st, i))
                  : (const char *)sqlite3_column_text(st, i);
  return fn(ctx, n, vals);
}

static int sq_steps(nodup_db *db, sqlite3_stmt *st, row_fn fn, void *ctx) {
  int rc, stop = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    if (fn && !stop) stop = sq_row(st, fn, ctx);
  if (rc != SQLITE_DONE) {
    int ext = sqlite3_extended_errcode(H(db));
    return sq_fail(db, ext ? ext : rc, NULL);
  }
  return NODUP_OK;
}

/* One statement: a text with more after it (a tail SQLite would silently
 * ignore, or that a later exec would run) is refused. */
static int sq_query(nodup_db *db, const char *sql, const char *const *params,
                    int nparams, row_fn fn, void *ctx) {
  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  int rc = sqlite3_prepare_v2(H(db), sql, -1, &st, &tail);
  if (rc != SQLITE_OK) return sq_fail(db, rc, NULL);
  while (tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == '\r' || *tail == ';'))
    tail++;
  if (tail && *tail) {
    sqlite3_finalize(st);
    return nodup_fail(db, NODUP_ERR_USAGE, "more than one SQL statement: %s", sql);
  }
  rc = sq_bind(db, st, params, nparams);
  if (rc == NODUP_OK) rc = sq_steps(db, st, fn, ctx);
  sqlite3_finalize(st);
  return rc;
}

/* sqlite3_changes() counts the last statement's rows, finalized or not. */
static int sq_changes(nodup_db *db, const char *sql, const char *const *params, int nparams,
                      long long *n) {
  int rc = sq_query(db, sql, params, nparams, NULL, NULL);
  if (rc == NODUP_OK) *n = sqlite3_changes(H(db));
  return rc;
}

static int sq_prepare(nodup_db *db, const char *sql, int nparams,
                      const unsigned *types, nodup_stmt **out) {
  sqlite3_stmt *st = NULL;
  int rc;
  (void)nparams;
  (void)types;
  rc = sqlite3_prepare_v3(H(db), sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
  if (rc != SQLITE_OK) return sq_fail(db, rc, NULL);
  *out = (nodup_stmt *)st;
  return NODUP_OK;
}

static int sq_run(nodup_db *db, nodup_stmt *s, const char *const *params,
                  int nparams, row_fn fn, void *ctx) {
  sqlite3_stmt *st = (sqlite3_stmt *)s;
  int rc;
  /* No clear_bindings: every parameter is bound again below. The reset
   * after stepping leaves the statement ready, so none is needed first. */
  rc = sq_bind(db, st, params, nparams);
  if (rc == NODUP_OK) rc = sq_steps(db, st, fn, ctx);
  sqlite3_reset(st);
  return rc;
}

static void sq_finalize(nodup_db *db, nodup_stmt *s) {
  (void)db;
  sqlite3_finalize((sqlite3_stmt *)s);
}

static int sq_in_transaction(nodup_db *db) { return !sqlite3_get_autocommit(H(db)); }

/*
 * SQLite's write lock has no queue: whoever asks when it is free gets it.
 * The default busy handler backs off to 100 ms sleeps, so a connection
 * that needs the lock once (nodup enforce) loses every free moment to
 * writers that keep re-taking it, and starves. This one asks again every
 * millisecond until the deadline, then the usual handler comes back.
 */
static int sq_busy_poll(void *deadline, int count) {
  (void)count;
  if (sqlite3_sleep(1) < 0 || db_now_ms() >= *(double *)deadline) return 0;
  return 1;
}

static int sq_begin_write_urgent(nodup_db *db, long timeout_ms) {
  double deadline = db_now_ms() + (double)timeout_ms;
  int rc;
  sqlite3_busy_handler(H(db), sq_busy_poll, &deadline);
  rc = sq_exec(db, "BEGIN IMMEDIATE");
  sqlite3_busy_timeout(H(db), SQLITE_BUSY_MS);
  return rc;
}

/* ---- catalog ---- */

typedef struct sq_collect {
  buf b;      /* values joined by '\x1e' */
  size_t n;
} sq_collect;

static int collect_first(void *ctx, int ncols, const char *const *vals) {
  sq_collect *c = ctx;
  (void)ncols;
  if (c->n) buf_putc(&c->b, '\x1e');
  buf_puts(&c->b, vals[0] ? vals[0] : "");
  c->n++;
  return 0;
}

/* Split a '\x1e'-joined list into a fresh array of strings. */
static char **split_list(const char *s, size_t n) {
  char **out = calloc(n ? n : 1, sizeof *out);
  size_t i;
  if (!out) return NULL;
  for (i = 0; i < n; i++) {
    const char *e = strchr(s, '\x1e');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    out[i] = malloc(len + 1);
    if (!out[i]) return out; /* caller frees what exists; checked by caller */
    memcpy(out[i], s, len);
    out[i][len] = '\0';
    s = e ? e + 1 : s + len;
  }
  return out;
}

/* From the opening quote at p (', ", ` or [) to its closing one (quotes
 * doubled inside are skipped), or to the end when there is none. */
static const char *skip_quoted(const char *p) {
  char end = *p == '[' ? ']' : *p;
  for (p++; *p && !(*p == end && p[1] != end); p++)
    if (*p == end) p++;
  return p;
}

/* The WHERE clause of a CREATE INDEX statement: SQLite keeps partial-index
 * predicates only in sqlite_schema.sql, so we find the text after the
 * column list's closing parenthesis, skipping quoted names and strings. */
static char *index_predicate(const char *sql) {
  const char *p = sql;
  int depth = 0, seen = 0;
  for (; *p; p++) {
    char q = *p;
    if (q == '\'' || q == '"' || q == '`' || q == '[') {
      if (!*(p = skip_quoted(p))) return NULL;
    } else if (q == '(') {
      depth++;
      seen = 1;
    } else if (q == ')') {
      if (--depth == 0 && seen) {
        p++;
        break;
      }
    }
  }
  while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
  if (strncasecmp(p, "WHERE", 5) != 0) return NULL;
  p += 5;
  while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
  {
    size_t n = strlen(p);
    char *r;
    while (n && (p[n - 1] == ';' || p[n - 1] == ' ' || p[n - 1] == '\n')) n--;
    r = malloc(n + 1);
    if (!r) return NULL;
    memcpy(r, p, n);
    r[n] = '\0';
    return r;
  }
}

/* Column k (from 0) of a CREATE INDEX statement's column list, as written
 * (an expression: lower(email)), to out; the list found as
 * index_predicate finds it. Left empty when the list has no such column. */
static void index_column_text(const char *sql, size_t k, buf *out) {
  const char *p = sql, *start = NULL;
  int depth = 0;
  size_t item = 0;
  for (; *p; p++) {
    char q = *p;
    if (q == '\'' || q == '"' || q == '`' || q == '[') {
      if (!*(p = skip_quoted(p))) break;
    } else if (q == '(') {
      if (depth++ == 0) start = p + 1;
    } else if ((q == ',' && depth == 1) || (q == ')' && depth == 1)) {
      if (item++ == k && start) {
        buf_putn(out, start, (size_t)(p - start));
        return;
      }
      start = p + 1;
      if (q == ')') return;
    } else if (q == ')') {
      depth--;
    }
  }
}

typedef struct sq_tinfo_ctx {
  nodup_table_info *t;
  size_t cap;
  int pkpos[64];
  char *pktype;
  int oom;
} sq_tinfo_ctx;

/* The value class of a declared type: SQLite's affinity rules (its
 * "Datatypes" page, 3.1: INT, then CHAR/CLOB/TEXT, BLOB, REAL/FLOA/DOUB),
 * with BOOL/BOOLEAN first, which Django and Rails write and SQLite gives
 * NUMERIC affinity. */
static unsigned char sq_value_class(const char *decl) {
  char up[64];
  size_t i;
  if (!decl) return VALUE_TEXT;
  while (*decl == ' ') decl++;
  for (i = 0; decl[i] && i + 1 < sizeof up; i++)
    up[i] = (char)(decl[i] >= 'a' && decl[i] <= 'z' ? decl[i] - 'a' + 'A' : decl[i]);
  up[i] = '\0';
  if (!strncmp(up, "BOOL", 4)) return VALUE_BOOL;
  if (strstr(up, "INT")) return VALUE_INT;
  if (strstr(up, "CHAR") || strstr(up, "CLOB") || strstr(up, "TEXT") || strstr(up, "BLOB"))
    return VALUE_TEXT;
  if (strstr(up, "REAL") || strstr(up, "FLOA") || strstr(up, "DOUB")) return VALUE_REAL;
  return VALUE_TEXT;   /* NUMERIC affinity (DECIMAL, DATE, ...): SQLite's own rules */
}

static int add_column(void *vctx, int ncols, const char *const *v) {
  sq_tinfo_ctx *c = vctx;
  nodup_table_info *t = c->t;
  size_t i = t->ncols;
  (void)ncols;
  if (i == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 16;
    char **cols = realloc(t->cols, cap * sizeof *cols);
    int *nn;
    unsigned char *vc;
    if (!cols) return c->oom = 1;
    t->cols = cols;
    nn = realloc(t->notnull, cap * sizeof *nn);
    if (!nn) return c->oom = 1;
    t->notnull = nn;
    vc = realloc(t->vclass, cap * sizeof *vc);
    if (!vc) return c->oom = 1;
    t->vclass = vc;
    c->cap = cap;
  }
  t->vclass[i] = sq_value_class(v[1]);
  t->cols[i] = nodup_strdup(v[0]);
  if (!t->cols[i]) return c->oom = 1;
  t->notnull[i] = v[2] && atoi(v[2]);
  t->ncols++;
  if (v[3] && atoi(v[3]) > 0 && atoi(v[3]) <= 64) {
    c->pkpos[atoi(v[3]) - 1] = (int)i + 1;
    if (t->npk < (size_t)atoi(v[3])) t->npk = (size_t)atoi(v[3]);
    free(c->pktype);
    c->pktype = nodup_strdup(v[1] ? v[1] : "");
  }
  return 0;
}

typedef struct sq_idx_row {
  buf names;   /* '\x1e'-joined */
  buf origins;
  buf partial;
  size_t n;
} sq_idx_row;

static int collect_index(void *ctx, int ncols, const char *const *v) {
  sq_idx_row *r = ctx;
  (void)ncols;
  if (r->n) {
    buf_putc(&r->names, '\x1e');
    buf_putc(&r->origins, '\x1e');
    buf_putc(&r->partial, '\x1e');
  }
  buf_puts(&r->names, v[0]);
  buf_puts(&r->origins, v[1] ? v[1] : "c");
  buf_puts(&r->partial, v[2] ? v[2] : "0");
  r->n++;
  return 0;
}

static int sq_index_details(nodup_db *db, const nodup_table_info *t, nodup_index_info *ix,
                            int partial) {
  sq_collect c = {{0}, 0};
  const char *p[1] = {ix->name};
  int rc, expr = 0;
  size_t i;
  buf_init(&c.b);
  /* name is NULL for an expression column; keep it NULL so the index never
   * matches a plain-column key. */
  rc = sq_query(db, "SELECT coalesce(name, char(1)) FROM pragma_index_info(?1) ORDER BY seqno",
                p, 1, collect_first, &c);
  if (rc == NODUP_OK) {
    ix->ncols = c.n;
    ix->cols = split_list(buf_str(&c.b), c.n);
    if (!ix->cols || c.b.oom) rc = NODUP_ERR_NOMEM;
    for (i = 0; rc == NODUP_OK && i < c.n; i++) {
      if (!ix->cols[i]) rc = NODUP_ERR_NOMEM;
      else if (strcmp(ix->cols[i], "\x01") == 0) {
        free(ix->cols[i]);
        ix->cols[i] = NULL;
        expr = 1;
      }
    }
  }
  buf_reset(&c.b);
  c.n = 0;
  if (rc == NODUP_OK && (partial || expr)) {
    rc = sq_query(db, "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?1",
                  p, 1, collect_first, &c);
    if (rc == NODUP_OK && c.b.oom) rc = NODUP_ERR_NOMEM;
    if (rc == NODUP_OK && c.n && partial) ix->predicate = index_predicate(buf_str(&c.b));
  }
  /* Each column as a key term; an expression's from the CREATE INDEX text
   * (the pragma names none), read as a term when it is one. */
  if (rc == NODUP_OK && !(ix->terms = calloc(ix->ncols ? ix->ncols : 1, sizeof *ix->terms)))
    rc = NODUP_ERR_NOMEM;
  for (i = 0; rc == NODUP_OK && i < ix->ncols; i++) {
    buf text;
    buf_init(&text);
    if (!ix->cols[i] && c.n) index_column_text(buf_str(&c.b), i, &text);
    rc = text.oom ? NODUP_ERR_NOMEM
                  : keyterm_index(db, t, ix->cols[i], text.len ? buf_str(&text) : NULL,
                                  &ix->terms[i]);
    buf_free(&text);
  }
  buf_free(&c.b);
  return rc;
}

/* t's name as the catalog spells it (names compare case-insensitively),
 * quoted too; a view is refused. */
static int sq_table_name(nodup_db *db, const char *table, nodup_table_info *t) {
  sq_collect kind = {{0}, 0};
  const char *p[1] = {table};
  buf q;
  int rc;
  buf_init(&kind.b);
  buf_init(&q);
  rc = sq_query(db,
                "SELECT type || char(30) || name FROM sqlite_schema "
                "WHERE type IN ('table', 'view') AND name = ?1 COLLATE NOCASE",
                p, 1, collect_first, &kind);
  if (rc == NODUP_OK && kind.b.oom) rc = NODUP_ERR_NOMEM;
  if (rc != NODUP_OK) goto done;
  if (kind.n == 0) {
    rc = nodup_fail(db, NODUP_ERR_NO_TABLE, "table \"%s\" does not exist", table);
    goto done;
  }
  if (strncmp(buf_str(&kind.b), "view", 4) == 0) {
    rc = nodup_fail(db, NODUP_ERR_NO_TABLE, "\"%s\" is a view, not a table", table);
    goto done;
  }
  t->name = nodup_strdup(strchr(buf_str(&kind.b), '\x1e') + 1);
  if (t->name) sql_ident(&q, t->name);
  t->qualified = q.oom || !t->name ? NULL : nodup_strdup(buf_str(&q));
  if (!t->name || !t->qualified) rc = NODUP_ERR_NOMEM;
done:
  buf_free(&kind.b);
  buf_free(&q);
  return rc;
}

/* t's columns and primary key; a table without a declared one is a rowid
 * table. *rowid_alias: the key is an INTEGER PRIMARY KEY, the rowid under
 * another name, which has no index of its own. */
static int sq_table_columns(nodup_db *db, nodup_table_info *t, int *rowid_alias) {
  sq_tinfo_ctx c;
  const char *p[1] = {t->name};
  size_t i;
  int rc;
  memset(&c, 0, sizeof c);
  c.t = t;
  rc = sq_query(db, "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)",
                p, 1, add_column, &c);
  if (rc == NODUP_OK && c.oom) rc = NODUP_ERR_NOMEM;
  if (rc != NODUP_OK) goto done;
  t->types = calloc(t->ncols ? t->ncols : 1, sizeof *t->types);
  t->pk = calloc(t->npk ? t->npk : 1, sizeof *t->pk);
  if (!t->types || !t->pk) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  if (t->npk == 0) {
    t->npk = 1;
    t->pk[0] = nodup_strdup("rowid");
  } else {
    for (i = 0; i < t->npk; i++)
      t->pk[i] = nodup_strdup(c.pkpos[i] ? t->cols[c.pkpos[i] - 1] : "rowid");
    *rowid_alias = t->npk == 1 && c.pktype && strcasecmp(c.pktype, "INTEGER") == 0;
  }
  for (i = 0; i < t->npk; i++)
    if (!t->pk[i]) rc = NODUP_ERR_NOMEM;
done:
  free(c.pktype);
  return rc;
}

/* The rowid alias's "index": the primary key SQLite keeps without one. */
static int sq_rowid_index(nodup_table_info *t) {
  nodup_index_info *ix = &t->idx[t->nidx++];  /* counted first: freed with t, even half made */
  ix->primary = 1;
  ix->name = nodup_strdup("PRIMARY KEY");
  if (!(ix->cols = calloc(1, sizeof *ix->cols)) || !(ix->terms = calloc(1, sizeof *ix->terms)))
    return NODUP_ERR_NOMEM;
  ix->ncols = 1;
  return ix->name && (ix->cols[0] = nodup_strdup(t->pk[0])) &&
                 (ix->terms[0] = nodup_strdup(t->pk[0]))
             ? NODUP_OK
             : NODUP_ERR_NOMEM;
}

/* t's unique indexes, with room for the rowid alias's after them. */
static int sq_table_indexes(nodup_db *db, nodup_table_info *t, int rowid_alias) {
  sq_idx_row ir;
  const char *p[1] = {t->name};
  char **names = NULL, **origins = NULL, **partial = NULL;
  size_t i, n = 0;
  int rc;
  memset(&ir, 0, sizeof ir);
  buf_init(&ir.names);
  buf_init(&ir.origins);
  buf_init(&ir.partial);
  rc = sq_query(db,
                "SELECT name, origin, partial FROM pragma_index_list(?1) "
                "WHERE \"unique\" = 1 ORDER BY name",
                p, 1, collect_index, &ir);
  if (rc == NODUP_OK && (ir.names.oom || ir.origins.oom || ir.partial.oom)) rc = NODUP_ERR_NOMEM;
  if (rc != NODUP_OK) goto done;
  n = ir.n;
  t->idx = calloc(n + 1, sizeof *t->idx);
  names = split_list(buf_str(&ir.names), n);
  origins = split_list(buf_str(&ir.origins), n);
  partial = split_list(buf_str(&ir.partial), n);
  if (!t->idx || !names || !origins || !partial) rc = NODUP_ERR_NOMEM;
  for (i = 0; rc == NODUP_OK && i < n; i++) {
    nodup_index_info *ix = &t->idx[t->nidx];
    if (!names[i] || !origins[i] || !partial[i]) {
      rc = NODUP_ERR_NOMEM;
      break;
    }
    ix->name = names[i];
    names[i] = NULL;
    ix->primary = strcmp(origins[i], "pk") == 0;
    t->nidx++;
    rc = sq_index_details(db, t, ix, strcmp(partial[i], "1") == 0);
  }
  if (rc == NODUP_OK && rowid_alias) rc = sq_rowid_index(t);
done:
  strv_free(names, names ? n : 0);
  strv_free(origins, origins ? n : 0);
  strv_free(partial, partial ? n : 0);
  buf_free(&ir.names);
  buf_free(&ir.origins);
  buf_free(&ir.partial);
  return rc;
}

static int sq_table_info(nodup_db *db, const char *table, nodup_table_info **out) {
  nodup_table_info *t = calloc(1, sizeof *t);
  int rc, rowid_alias = 0;
  *out = NULL;
  if (!t) return NODUP_ERR_NOMEM;
  rc = sq_table_name(db, table, t);
  if (rc == NODUP_OK) rc = sq_table_columns(db, t, &rowid_alias);
  if (rc == NODUP_OK) rc = sq_table_indexes(db, t, rowid_alias);
  if (rc == NODUP_OK) *out = t;
  else table_info_free(t);
  return rc;
}

/* SQLite's upsert analysis is the authority: preparing an ON CONFLICT whose
 * target matches no unique index (columns as a set, partial predicate
 * structurally equal) fails. It cannot name the index; key.c does that from
 * the catalog. */
static int sq_arbiters(nodup_db *db, const nodup_table_info *t,
                       char *const *cols, size_t ncols, const char *where,
                       buf *names) {
  buf q;
  sqlite3_stmt *st = NULL;
  int rc;
  (void)names;
  buf_init(&q);
  db_conflict_insert(&q, db, t, cols, ncols, where);
  if (q.oom) {
    buf_free(&q);
    return NODUP_ERR_NOMEM;
  }
  rc = sqlite3_prepare_v2(H(db), buf_str(&q), -1, &st, NULL);
  sqlite3_finalize(st);
  buf_free(&q);
  if (rc == SQLITE_OK) return NODUP_OK;
  if (strstr(sqlite3_errmsg(H(db)), "ON CONFLICT"))
    return nodup_fail(db, NODUP_ERR_UNBACKED, "%s", sqlite3_errmsg(H(db)));
  return sq_fail(db, rc, "checking the key's unique index");
}

/* Skip spaces and one SQL identifier (bare, "double", `back` or
 * [bracket] quoted) into name; returns the rest, or NULL. */
static const char *sq_ident(const char *p, char *name, size_t size) {
  size_t n = 0;
  char close = 0;
  while (*p == ' ' || *p == '\t' || *p == '\n') p++;
  if (*p == '"' || *p == '`') close = *p++;
  else if (*p == '[') close = ']', p++;
  if (close) {
    for (; *p && !(*p == close && p[1] != close); p++) {
      if (*p == close) p++;   /* a doubled quote */
      if (n + 1 < size) name[n++] = *p;
    }
    if (*p != close) return NULL;
    p++;
  } else {
    if (!(*p == '_' || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z'))) return NULL;
    for (; *p == '_' || (*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z'); p++)
      if (n + 1 < size) name[n++] = *p;
  }
  name[n] = '\0';
  return p;
}

/* The one canonical form SQLite needs: a test of a boolean column, the
 * partial-index predicate Django (`WHERE "is_active"`) and Rails
 * (`WHERE active = 1`) write, in the spellings users type: c, "c", (c),
 * c = 1, c = TRUE, c == 1, and NOT c, c = 0, c = FALSE. Each becomes `"c"`
 * or `NOT "c"` with the catalog's spelling of the column: the forms
 * PostgreSQL's planner folds into one (c IS TRUE it keeps apart, and so
 * does this, so both engines accept the same spellings). Anything else
 * gets no canonical form: SQLite's ON CONFLICT matching, structural, is
 * the judge. */
static int sq_predicate_canon(nodup_db *db, const nodup_table_info *t, const char *pred,
                              buf *out) {
  char name[256], word[16];
  const char *p = pred;
  int neg = 0, col, truth = 1, parens = 0;
  size_t n;
  buf_reset(out);
  while (*p == ' ' || *p == '(') parens += *p++ == '(';
  if (!strncasecmp(p, "NOT", 3) && (p[3] == ' ' || p[3] == '(' || p[3] == '"')) {
    neg = 1;
    p += 3;
    while (*p == ' ' || *p == '(') parens += *p++ == '(';
  }
  if (!(p = sq_ident(p, name, sizeof name))) return NODUP_OK;
  while (*p == ' ') p++;
  if (*p && *p != ')') {
    size_t op = !strncmp(p, "==", 2) ? 2 : *p == '=' ? 1 : 0;
    if (!op) return NODUP_OK;
    p += op;
    while (*p == ' ') p++;
    for (n = 0; ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') || (*p >= '0' && *p <= '9'); p++)
      if (n + 1 < sizeof word) word[n++] = *p;
    word[n] = '\0';
    if (!strcasecmp(word, "TRUE") || !strcmp(word, "1")) truth = 1;
    else if (!strcasecmp(word, "FALSE") || !strcmp(word, "0")) truth = 0;
    else return NODUP_OK;
  }
  while (*p == ' ' || *p == ')') parens -= *p++ == ')';
  if (*p || parens != 0 || (col = table_info_column(db, t, name)) < 0) return NODUP_OK;
  if (neg ^ !truth) buf_puts(out, "NOT ");
  sql_ident(out, t->cols[col]);
  return out->oom ? NODUP_ERR_NOMEM : NODUP_OK;
}

/* The write lock for a miss: BEGIN IMMEDIATE, or a savepoint when the
 * caller owns a transaction (`owned` 0). */
static int sq_write_begin(nodup_db *db, int owned) {
  return sq_exec(db, owned ? "BEGIN IMMEDIATE" : "SAVEPOINT nodup_goc");
}

/* End what sq_write_begin opened: keep it when rc is NODUP_OK, else undo
 * it; a failed COMMIT (busy) is undone too. Returns the outcome. */
static int sq_write_end(nodup_db *db, int owned, int rc) {
  if (rc == NODUP_OK) {
    int crc = sqlite3_exec(H(db), owned ? "COMMIT" : "RELEASE nodup_goc", NULL, NULL, NULL);
    if (crc == SQLITE_OK) return NODUP_OK;
    rc = sq_fail(db, crc, "COMMIT");
  }
  sqlite3_exec(H(db), owned ? "ROLLBACK" : "ROLLBACK TO nodup_goc; RELEASE nodup_goc", NULL,
               NULL, NULL);
  return rc;
}

/* Run a write returning (pk, predicate guard): key->id gets the row's id,
 * or stays empty when it wrote nothing. A row the write left outside the
 * key's predicate is refused (the caller's sq_write_end undoes it). */
static int sq_write_row(nodup_key *key, nodup_stmt *write, const char *const *params,
                        int nparams, const char *refusal) {
  int rc;
  buf_reset(&key->id);
  key->in_predicate = 1;
  rc = sq_run(key->db, write, params, nparams, key_store_id, key);
  if (rc == NODUP_OK && key->id.len && !key->in_predicate) {
    buf_reset(&key->id);
    rc = nodup_fail(key->db, NODUP_ERR_PREDICATE, "%s", refusal);
  }
  return rc;
}

#define SQ_OUTSIDE_NEW "the new row does not satisfy the key's predicate: nothing inserted"

/* A get-or-create's first lookup, the whole of a hit. A unique index
 * makes it one row at most: the first step gives it, and no second step
 * looks for another. A key whose row's id is one integer (a rowid,
 * mostly) has it formatted straight into key->id, the caller's answer: no
 * row callback, no text copied out of SQLite. Any other row goes through
 * key_store_id as elsewhere. */
static int sq_lookup(nodup_key *key, nodup_stmt *lookup, const char *const *params) {
  nodup_db *db = key->db;
  sqlite3_stmt *st = (sqlite3_stmt *)lookup;
  int rc = sq_bind(db, st, params, (int)key->ncols), step;
  char num[21];
  if (rc == NODUP_OK) {
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
      if (key->table->npk == 1 && sqlite3_column_count(st) == 1 &&
          sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
        buf_putn(&key->id, num, int_format(num, sqlite3_column_int64(st, 0)));
        key->row_flag = 0;
        if (key->id.oom) rc = NODUP_ERR_NOMEM;
      } else {
        sq_row(st, key_store_id, key);
      }
    } else if (step != SQLITE_DONE) {
      int ext = sqlite3_extended_errcode(H(db));
      rc = sq_fail(db, ext ? ext : step, NULL);
    }
  }
  sqlite3_reset(st);
  return rc;
}

/* Hit: one SELECT, no lock. Miss: BEGIN IMMEDIATE (a savepoint when the
 * caller owns a transaction), insert-if-absent, and if a concurrent writer
 * got there first (we waited for its lock), the lookup again. A new row
 * outside the key's predicate is rolled back. Returns NODUP_ERR_CONFLICT
 * when neither statement yields a row; getorcreate.c explains or retries. */
static int sq_get_or_create(nodup_key *key, nodup_stmt *insert,
                            nodup_stmt *lookup, const char *const *params,
                            int nparams, int *created) {
  nodup_db *db = key->db;
  int owned, rc;

  *created = 0;
  buf_reset(&key->id);
  rc = sq_lookup(key, lookup, params);
  if (rc != NODUP_OK || key->id.len) return rc;
  owned = sqlite3_get_autocommit(H(db));
  if ((rc = sq_write_begin(db, owned)) != NODUP_OK) return rc;
  rc = sq_write_row(key, insert, params, nparams, SQ_OUTSIDE_NEW);
  if (rc == NODUP_OK && key->id.len) {
    *created = 1;
  } else if (rc == NODUP_OK) {
    rc = sq_run(db, lookup, params, (int)key->ncols, key_store_id, key);
    if (rc == NODUP_OK && !key->id.len) rc = NODUP_ERR_CONFLICT;
  }
  return sq_write_end(db, owned, rc);
}

/* ---- many keys (getorcreate_many.c) ---- */

/* One parameter, a JSON array: of the values when a call has one column
 * (json_each's value is then the value itself), else of rows, each an
 * array of values read with json_extract. Either way a JSON string comes
 * back as text and a JSON null as NULL, so each value meets its column as
 * a bound text value would. The flat form matters: with 10,000 keys
 * json_extract's parse of each row doubled a lookup's time. */
static int sq_many_input(nodup_db *db, const nodup_table_info *t, const int *cols, size_t n,
                         size_t total, buf *q, unsigned *types, int *nparams) {
  size_t i;
  (void)db;
  (void)t;
  (void)cols;
  buf_puts(q, "(SELECT ");
  if (total == 1)
    buf_puts(q, "nodup_j.value AS nodup_c1, ");
  else
    for (i = 0; i < n; i++)
      buf_printf(q, "json_extract(nodup_j.value, '$[%zu]') AS nodup_c%zu, ", i, i + 1);
  buf_puts(q, "nodup_j.key + 1 AS nodup_ord FROM json_each(?1) AS nodup_j) AS nodup_in");
  types[0] = 0;
  *nparams = 1;
  return NODUP_OK;
}

/* A JSON string (RFC 8259): '"', '\\' and control characters escaped,
 * the runs between them copied whole (10,000 keys are one call's text). */
static void sq_json_string(buf *b, const char *v) {
  buf_putc(b, '"');
  for (;;) {
    size_t n = 0;
    while ((unsigned char)v[n] >= 0x20 && v[n] != '"' && v[n] != '\\') n++;
    buf_putn(b, v, n);
    v += n;
    if (!*v) break;
    if (*v == '"' || *v == '\\') buf_printf(b, "\\%c", *v);
    else buf_printf(b, "\\u%04x", (unsigned char)*v);
    v++;
  }
  buf_putc(b, '"');
}

static int sq_many_params(size_t nrows, size_t n, const char *const *vals, char ***out) {
  char **p = calloc(1, sizeof *p);
  size_t i, r;
  buf b;
  if (!p) return NODUP_ERR_NOMEM;
  buf_init(&b);
  buf_putc(&b, '[');
  for (r = 0; r < nrows; r++) {
    if (r) buf_putc(&b, ',');
    if (n > 1) buf_putc(&b, '[');
    for (i = 0; i < n; i++) {
      if (i) buf_putc(&b, ',');
      if (vals[r * n + i]) sq_json_string(&b, vals[r * n + i]);
      else buf_puts(&b, "null");
    }
    if (n > 1) buf_putc(&b, ']');
  }
  buf_putc(&b, ']');
  if (b.oom) {
    buf_free(&b);
    free(p);
    return NODUP_ERR_NOMEM;
  }
  p[0] = b.p;
  *out = p;
  return NODUP_OK;
}

/* One write transaction (a savepoint inside the caller's): the insert,
 * then the lookup, which sees every row; a new row outside the predicate
 * undoes it. When the key's last call created nothing, the lookup runs
 * first without any lock, and a batch of hits ends there. Not always: a
 * batch with misses would pay a third pass over its rows (measured: 7 of
 * 38 ms for 10,000 keys, half of them new). */
static int sq_get_or_create_many(nodup_key *key, const key_shape *s, const char *const *params,
                                 int nparams, int nlookup, const many_sink *sink) {
  nodup_db *db = key->db;
  int owned = sqlite3_get_autocommit(H(db));
  int rc;
  sink->attempt(sink->ctx);
  if (key->many_found_all) {
    rc = sq_run(db, s->lookup, params, nlookup, sink->found, sink->ctx);
    if (rc != NODUP_OK || sink->complete(sink->ctx)) return rc;
  }
  if ((rc = sq_write_begin(db, owned)) != NODUP_OK) return rc;
  rc = sq_run(db, s->insert, params, nparams, sink->inserted, sink->ctx);
  if (rc == NODUP_OK && sink->outside(sink->ctx))
    rc = nodup_fail(db, NODUP_ERR_PREDICATE,
                    "a new row does not satisfy the key's predicate: nothing inserted");
  if (rc == NODUP_OK) rc = sq_run(db, s->lookup, params, nlookup, sink->found, sink->ctx);
  rc = sq_write_end(db, owned, rc);
  if (rc != NODUP_OK) sink->attempt(sink->ctx);
  return rc;
}

/* The compare statement: key->id the row's id (empty: none), *differs 1
 * when a set column differs from its new value. */
static int sq_compare(nodup_key *key, const key_shape *s, const char *const *params,
                      int nparams, int *differs) {
  int rc;
  buf_reset(&key->id);
  rc = sq_run(key->db, s->compare, params, nparams, key_store_id, key);
  *differs = key->row_flag;
  return rc;
}

/* Update-or-create: a compare without any lock, so a row that holds the
 * values already costs one SELECT and no write at all (no lock, no
 * change counted, the file untouched). Otherwise, under the write lock,
 * compare again (a concurrent writer may have got there first) and
 * insert, update through the key, or leave alone. SQLite's own UPSERT
 * (ON CONFLICT DO UPDATE ... WHERE) would take the write lock even for
 * an equal row, and its RETURNING cannot tell insert from update. */
static int sq_update_or_create(nodup_key *key, const key_shape *s, const char *const *params,
                               int nparams, int *outcome) {
  nodup_db *db = key->db;
  int owned = sqlite3_get_autocommit(H(db));
  int rc, differs;

  *outcome = NODUP_UNCHANGED;
  rc = sq_compare(key, s, params, nparams, &differs);
  if (rc != NODUP_OK || (key->id.len && !differs)) return rc;
  if ((rc = sq_write_begin(db, owned)) != NODUP_OK) return rc;
  rc = sq_compare(key, s, params, nparams, &differs);
  if (rc == NODUP_OK && key->id.len && differs) {
    *outcome = NODUP_UPDATED;
    rc = sq_write_row(key, s->update, params, nparams,
                      "the updated row would not satisfy the key's predicate: nothing written");
  } else if (rc == NODUP_OK && !key->id.len) {
    *outcome = NODUP_CREATED;
    rc = sq_write_row(key, s->insert, params, nparams, SQ_OUTSIDE_NEW);
  }
  if (rc == NODUP_OK && !key->id.len) rc = NODUP_ERR_CONFLICT;
  return sq_write_end(db, owned, rc);
}

static int sq_references(nodup_db *db, const nodup_table_info *t, nodup_fk_info **out,
                         size_t *n) {
  /* on_delete: map SQLite's words to PostgreSQL's one-letter codes. */
  return fk_collect_query(db, t,
                "SELECT 'fk' || f.id, m.name, f.seq, f.\"from\", f.\"to\", "
                "  CASE f.on_delete WHEN 'CASCADE' THEN 'c' WHEN 'SET NULL' THEN 'n' "
                "  WHEN 'SET DEFAULT' THEN 'd' WHEN 'RESTRICT' THEN 'r' ELSE 'a' END "
                "FROM sqlite_schema AS m JOIN pragma_foreign_key_list(m.name) AS f "
                "WHERE m.type = 'table' AND f.\"table\" = ?1 COLLATE NOCASE "
                "ORDER BY m.name, f.id, f.seq",
                          t->name, out, n);
}

/* suspect.c's view of the schema: the type class is the declared type's
 * affinity (SQLite's own rules, in their order), "int" and "text" named as
 * on PostgreSQL. Virtual tables are left out: nothing updates through them. */
static int sq_columns(nodup_db *db, row_fn fn, void *ctx) {
  return sq_query(db,
                  "SELECT NULL, m.name, m.name, c.name, "
                  "  CASE WHEN c.type LIKE '%INT%' THEN 'int' "
                  "  WHEN c.type LIKE '%CHAR%' OR c.type LIKE '%CLOB%' OR c.type LIKE '%TEXT%' "
                  "    THEN 'text' "
                  "  WHEN c.type LIKE '%BLOB%' OR c.type = '' THEN 'blob' "
                  "  WHEN c.type LIKE '%REAL%' OR c.type LIKE '%FLOA%' OR c.type LIKE '%DOUB%' "
                  "    THEN 'real' ELSE 'numeric' END, "
                  "  c.pk > 0, "
                  "  (SELECT f.\"table\" FROM pragma_foreign_key_list(m.name) AS f "
                  "   WHERE f.\"from\" = c.name COLLATE NOCASE LIMIT 1), 0 "
                  "FROM sqlite_schema AS m JOIN pragma_table_info(m.name) AS c "
                  "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                  "  AND m.name NOT LIKE 'nodup\\_%' ESCAPE '\\' "
                  "  AND coalesce(m.sql, '') NOT LIKE 'CREATE VIRTUAL%' "
                  "ORDER BY m.name, c.cid",
                  NULL, 0, fn, ctx);
}

/* One JSON value keeping the SQLite type; a BLOB (which JSON cannot hold)
 * becomes {"blob": "<hex>"}, an object no other value produces, so
 * sq_json_get() can turn it back into the same bytes. */
static void sq_json_value(buf *q, const char *expr) {
  buf_printf(q, "CASE WHEN typeof(%s) = 'blob' THEN json_object('blob', hex(%s)) ELSE %s END",
             expr, expr, expr);
}

static void sq_json_object(buf *q, size_t n, const char *const *keys,
                           const char *const *exprs) {
  size_t i;
  buf_puts(q, "json_object(");
  for (i = 0; i < n; i++) {
    if (i) buf_puts(q, ", ");
    sql_name_literal(q, keys[i]);
    buf_puts(q, ", ");
    sq_json_value(q, exprs[i]);
  }
  buf_putc(q, ')');
}

static void sq_row_json(buf *q, const nodup_table_info *t, const char *alias) {
  size_t i;
  buf_puts(q, "json_object(");
  for (i = 0; i < t->ncols; i++) {
    buf e;
    buf_init(&e);
    buf_printf(&e, "%s.", alias);
    sql_ident(&e, t->cols[i]);
    if (i) buf_puts(q, ", ");
    sql_name_literal(q, t->cols[i]);
    buf_puts(q, ", ");
    sq_json_value(q, buf_str(&e));
    if (e.oom) q->oom = 1;
    buf_free(&e);
  }
  buf_putc(q, ')');
}

/* The value stored under `key` in JSON text `json`, with its type back.
 * json_each compares keys as plain strings: no path syntax to escape. */
static void sq_json_get(buf *q, const char *json, const char *key) {
  buf_printf(q, "(SELECT CASE WHEN j.type = 'object' THEN "
                "nodup_unhex(json_extract(j.value, '$.blob')) ELSE j.value END "
                "FROM json_each(%s) AS j WHERE j.key = ", json);
  sql_name_literal(q, key);
  buf_putc(q, ')');
}

static void sq_restore_rows(buf *q, const nodup_table_info *t, const db_json_rows *src) {
  size_t i;
  int rowid = t->npk == 1;
  for (i = 0; rowid && i < t->ncols; i++)
    if (!strcasecmp(t->cols[i], t->pk[0])) rowid = 0;
  buf_printf(q, "INSERT INTO %s (", t->qualified);
  sql_ident_list(q, t->cols, t->ncols);
  if (rowid) buf_puts(q, ", rowid");
  buf_puts(q, ") SELECT ");
  for (i = 0; i < t->ncols; i++) {
    if (i) buf_puts(q, ", ");
    sq_json_get(q, src->row, t->cols[i]);
  }
  /* An implicit rowid is not in the row's JSON: the archive keeps it. */
  if (rowid) buf_printf(q, ", CAST(%s AS INTEGER)", src->rowid);
  buf_printf(q, " FROM %s WHERE %s", src->from, src->where);
}

static void sq_restore_cols(buf *q, const nodup_table_info *t, char *const *cols, size_t n,
                            const db_json_rows *src) {
  size_t i;
  buf_printf(q, "UPDATE %s AS c SET ", t->qualified);
  for (i = 0; i < n; i++) {
    if (i) buf_puts(q, ", ");
    sql_ident(q, cols[i]);
    buf_puts(q, " = ");
    sq_json_get(q, src->old, cols[i]);
  }
  buf_printf(q, " FROM %s WHERE %s", src->from, src->where);
  for (i = 0; i < t->npk; i++) {
    buf_puts(q, " AND c.");
    sql_ident(q, t->pk[i]);
    buf_puts(q, " = ");
    sq_json_get(q, src->cur, t->pk[i]);
  }
}

/* Non-partial indexes of t, columns in index order (an expression's
 * column is NULL in index_info: an empty name). */
static int sq_index_columns(nodup_db *db, const nodup_table_info *t, row_fn fn, void *ctx) {
  const char *p[1] = {t->name};
  return sq_query(db,
                  "SELECT (SELECT group_concat(coalesce(name, ''), char(31)) FROM "
                  "  (SELECT name FROM pragma_index_info(il.name) ORDER BY seqno)) "
                  "FROM pragma_index_list(?1) AS il WHERE il.partial = 0",
                  p, 1, fn, ctx);
}

static int sq_index_state_row(void *ctx, int n, const char *const *v) {
  db_index_state *s = ctx;
  (void)n;
  s->exists = s->valid = 1;
  snprintf(s->qualified, sizeof s->qualified, "%s", v[0]);
  s->constrained = v[1][0] == '1';
  return 1;
}

/* Built in one transaction, never left half-made; a UNIQUE or PRIMARY
 * KEY clause's index is the constraint's. */
static int sq_index_state(nodup_db *db, const nodup_table_info *t, const char *index,
                          db_index_state *out) {
  const char *p[2] = {t->name, index};
  return sq_query(db,
                  "SELECT '\"' || replace(name, '\"', '\"\"') || '\"', origin <> 'c' "
                  "FROM pragma_index_list(?1) WHERE name = ?2",
                  p, 2, sq_index_state_row, out);
}

/* The main database's tables (no schemas: `schema` is NULL). */
static int sq_table_exists(nodup_db *db, const char *schema, const char *name, int *exists) {
  const char *p[1] = {name};
  (void)schema;
  return sq_query(db, "SELECT count(*) > 0 FROM sqlite_schema WHERE name = ?1", p, 1,
                  read_flag, exists);
}

const struct nodup_backend nodup_sqlite_backend = {
    .name = "sqlite",
    .caps = BE_CAP_FOLDS_NAMES | BE_CAP_WRITE_LOCK_FIRST | BE_CAP_ROWID,
    .placeholder = '?',
    .accepts = sq_accepts,
    /* The guard is the predicate's truth, not its value: coalesce(pred, 0)
     * returned the text 'true' for `WHERE is_active` on a row holding
     * 'true', which the guard then read as inside while SQLite's index
     * (and every WHERE) reads it as false. */
    .predicate_guard = "CASE WHEN (%s) THEN 1 ELSE 0 END",
    .connect = sq_connect,
    .disconnect = sq_disconnect,
    .exec = sq_exec,
    .query = sq_query,
    .table_info = sq_table_info,
    .arbiters = sq_arbiters,
    .prepare = sq_prepare,
    .run = sq_run,
    .finalize = sq_finalize,
    .get_or_create = sq_get_or_create,
    .update_or_create = sq_update_or_create,
    .row_existed = NULL,      /* no way to tell in RETURNING: compare first */
    .many_input = sq_many_input,
    .many_params = sq_many_params,
    .get_or_create_many = sq_get_or_create_many,
    .in_transaction = sq_in_transaction,
    .references = sq_references,
    .row_json = sq_row_json,
    .json_object = sq_json_object,
    .restore_rows = sq_restore_rows,
    .restore_cols = sq_restore_cols,
    .reconnect = NULL,
    .begin_write = "BEGIN IMMEDIATE",
    .lock_rows = "",
    .temp_schema = "temp",
    .changes = sq_changes,
    .begin_write_urgent = sq_begin_write_urgent,
    .predicate_canon = sq_predicate_canon,
    .columns = sq_columns,
    .index_columns = sq_index_columns,
    .index_invalid = NULL,
    .leaves = NULL,
    .fk_enforced = sq_fk_enforced,
    .bulk_writes = sq_bulk_writes,
    .byte_order = NULL,   /* BINARY unless a column says otherwise: byte order */
    .copy_begin = NULL,
    .copy_row = NULL,
    .copy_put = NULL,
    .copy_end = NULL,
    .max_params = 32766,   /* SQLITE_MAX_VARIABLE_NUMBER's default since 3.32 */
    .distinct_fmt = "%s IS NOT %s",
    .utc_now = "datetime('now')",
    .utc_ago_fmt = "datetime('now', '-%d seconds')",
    .table_exists = sq_table_exists,
    .schema_rights = NULL,
    .search_path_table = NULL,
    .xact_lock = NULL,      /* BEGIN IMMEDIATE locks the database */
    .session_id = NULL,
    .session_alive = NULL,
    .partition_key = NULL,
    .index_state = sq_index_state,
};

/*
 * db.c -- connections: choosing a backend from the URL, opening, closing,
 * and showing a URL without its password.
 *
 * The URL decides the backend once; everything after goes through the
 * backend's function table (curl's struct Curl_ssl, SQLite's VFS).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#include "internal.h"

/* A libpq conninfo string is "keyword = value ..."; a path never starts
 * with an identifier followed by '='. */
int db_looks_like_conninfo(const char *s) {
  while (isspace((unsigned char)*s)) s++;
  if (!isalpha((unsigned char)*s) && *s != '_') return 0;
  while (isalnum((unsigned char)*s) || *s == '_') s++;
  while (isspace((unsigned char)*s)) s++;
  return *s == '=';
}

/* ---- redaction: no password in any message ----
 *
 * A connection string is echoed in messages (a malformed one, above all),
 * and libpq's own messages quote parts of it: "invalid percent-encoded
 * token: \"<the password>\"", "unexpected spaces found in \"...\"", "missing
 * \"=\" after \"<word>\"", the whole URI for a bad IPv6 host. So the string
 * is shown with its passwords taken out, and every password text found in
 * it is replaced by *** in whatever libpq said.
 *
 * The syntax, from libpq's manual ("Connection Strings") and its parser
 * (fe-connect.c: conninfo_parse, conninfo_uri_parse_options):
 *  - keyword/value: `keyword = value` pairs separated by whitespace, spaces
 *    around '=' optional; a value is a run of non-space characters or is
 *    single-quoted; in both a backslash escapes the next character. After
 *    '=' libpq skips blanks and takes the next run, so in "password= host=x"
 *    the password is "host=x". "password" and "sslpassword" are secrets
 *    (matched in any case here, though libpq's keywords are lower case).
 *  - URI: postgresql://[user[:password]@][host][:port][,...][/dbname]
 *    [?param=value&...]; any part may be percent-encoded (libpq decodes
 *    query keywords too, so pass%77ord is password), and a `password`
 *    query parameter is a password like the userspec's.
 * Malformed strings are read for safety, not as libpq would: the userspec
 * ends at the last '@' before the query (libpq takes the first '@' before
 * any '/', so an unencoded '@' or '/' in a password would leak its tail);
 * bare words after a password (no '=': "password=two words") and query
 * pieces without '=' after a password ("?password=a&b") belong to it. */

/* The passwords found in a string: the string without them (`out`), and
 * each password text as written and decoded (`secrets`, NUL-separated,
 * each after a kind byte: SECRET_WHOLE or SECRET_PIECE). */
typedef struct redaction {
  buf out;
  buf secrets;
} redaction;

/* A whole password is scrubbed wherever it appears. A piece of a malformed
 * URI password (split where libpq splits: "p/ss" is taken as port "p") only
 * where it stands alone, between delimiters or quotes as libpq quotes
 * values, so that a piece "p" does not garble "option". */
#define SECRET_WHOLE 'w'
#define SECRET_PIECE 'p'
#define SECRET_BOUNDARY "\"' \t\n@/?:,&#="

static void secret_add_kind(redaction *r, const char *s, size_t n, char kind) {
  if (n == 0) return;
  buf_putc(&r->secrets, kind);
  buf_putn(&r->secrets, s, n);
  buf_putc(&r->secrets, '\0');
}

static void secret_add(redaction *r, const char *s, size_t n) {
  secret_add_kind(r, s, n, SECRET_WHOLE);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The byte that the percent-encoded triplet at s[i] (of n) stands for, or
 * -1 when there is none there. %00 is none: libpq refuses it, and a NUL
 * would end the secret early. */
static int percent_byte(const char *s, size_t i, size_t n) {
  int hi, lo;
  if (s[i] != '%' || i + 2 >= n) return -1;
  hi = hexval(s[i + 1]);
  lo = hexval(s[i + 2]);
  return hi < 0 || lo < 0 || (hi == 0 && lo == 0) ? -1 : hi * 16 + lo;
}

/* A URI password as written, decoded, and in pieces. */
static void secret_add_uri(redaction *r, const char *s, size_t n) {
  buf d;
  size_t i, from = 0;
  secret_add(r, s, n);
  buf_init(&d);
  for (i = 0; i < n; i++) {
    int c = percent_byte(s, i, n);
    buf_putc(&d, c < 0 ? s[i] : (char)c);
    if (c >= 0) i += 2;
  }
  secret_add(r, buf_str(&d), d.len);
  buf_free(&d);
  for (i = 0; i <= n; i++)
    if (i == n || strchr("@/?:,&#", s[i])) {
      if (i - from < n) secret_add_kind(r, s + from, i - from, SECRET_PIECE);
      from = i + 1;
    }
}

/* Is the keyword s[0..n) (percent-decoded when `uri`) a secret one? */
static int secret_keyword(const char *s, size_t n, int uri) {
  char k[16];
  size_t i, len = 0;
  for (i = 0; i < n; i++) {
    int c = uri ? percent_byte(s, i, n) : -1;
    if (c >= 0) i += 2;
    else c = (unsigned char)s[i];
    if (len == sizeof k - 1) return 0;
    k[len++] = (char)tolower(c);
  }
  k[len] = '\0';
  return !strcmp(k, "password") || !strcmp(k, "sslpassword");
}

static const char *span_chr(const char *s, const char *end, char c) {
  for (; s < end; s++)
    if (*s == c) return s;
  return NULL;
}

/* Is there a ':' in the authority [s, end) that does not start a port
 * (digits up to '/' or ','), as "alice:pa?ss" has and "host:5432/db"
 * has not? IPv6 brackets are skipped. */
static int has_password_colon(const char *s, const char *end) {
  const char *p = s;
  if (p < end && *p == '[') {
    p = span_chr(p, end, ']');
    if (!p) return 0;
  }
  p = span_chr(p, end, ':');
  if (!p) return 0;
  for (p++; p < end && *p != '/' && *p != ','; p++)
    if (!isdigit((unsigned char)*p)) return 1;
  return 0;
}

/* The end of the query piece starting at p: its '&' or the end. */
static const char *piece_end(const char *p, const char *end) {
  const char *amp = span_chr(p, end, '&');
  return amp ? amp : end;
}

/* s[0..n) is a URI whose authority starts at `start` (after "://"). */
static void redact_uri(redaction *r, const char *s, size_t n, const char *start) {
  const char *end = s + n, *q = span_chr(start, end, '?'), *at = NULL, *p, *stop;
  int first = 1;
  for (p = start; p < (q ? q : end); p++)
    if (*p == '@') at = p;
  if (!at && q && has_password_colon(start, q))
    for (p = q; p < end; p++)
      if (*p == '@') at = p;
  if (at) {
    const char *colon = span_chr(start, at, ':');
    buf_putn(&r->out, s, (size_t)((colon ? colon : at) - s));
    if (colon) secret_add_uri(r, colon + 1, (size_t)(at - colon - 1));
    s = at;
    q = span_chr(at, end, '?');
  }
  buf_putn(&r->out, s, (size_t)((q ? q : end) - s));
  for (p = q ? q + 1 : NULL; p; p = stop < end ? stop + 1 : NULL) {
    const char *eq;
    stop = piece_end(p, end);
    eq = span_chr(p, stop, '=');
    if (eq && secret_keyword(p, (size_t)(eq - p), 1)) {
      /* Pieces without '=' continue the password ("?password=a&b"). */
      while (stop < end && !span_chr(stop + 1, piece_end(stop + 1, end), '='))
        stop = piece_end(stop + 1, end);
      secret_add_uri(r, eq + 1, (size_t)(stop - eq - 1));
      continue;
    }
    buf_putc(&r->out, first ? '?' : '&');
    buf_putn(&r->out, p, (size_t)(stop - p));
    first = 0;
  }
}

/* Length of a URI scheme and its "://" at the start of s[0..n), or 0. */
static size_t uri_prefix(const char *s, size_t n) {
  size_t i = 0;
  if (n == 0 || !isalpha((unsigned char)s[0])) return 0;
  while (i < n && (isalnum((unsigned char)s[i]) || strchr("+-.", s[i]))) i++;
  return i + 3 <= n && !memcmp(s + i, "://", 3) ? i + 3 : 0;
}

/* Bare words (no '=' after them) following a password belong to it:
 * libpq reads "password=two words" as the password "two" and then fails
 * with `missing "=" after "words"`. Returns where the next pair starts. */
static const char *swallow_bare_words(redaction *r, const char *p, const char *end) {
  for (;;) {
    const char *w = p, *w_end, *q;
    while (w < end && isspace((unsigned char)*w)) w++;
    if (w == end) return p;
    for (w_end = w; w_end < end && *w_end != '=' && !isspace((unsigned char)*w_end); w_end++) {}
    for (q = w_end; q < end && isspace((unsigned char)*q); q++) {}
    if (q < end && *q == '=') return p;
    secret_add(r, w, (size_t)(w_end - w));
    p = w_end;
  }
}

/* A keyword/value string, read as libpq's conninfo_parse reads it. */
static void redact_conninfo(redaction *r, const char *s, size_t n) {
  const char *end = s + n, *p = s;
  size_t base = r->out.len;
  while (p < end) {
    const char *pair = p, *key, *key_end, *raw;
    size_t scheme;
    int secret, quoted;
    buf val;
    while (p < end && isspace((unsigned char)*p)) p++;
    if (r->out.len == base) pair = p;  /* no blank before a first pair left after a password */
    if (p == end) {
      buf_putn(&r->out, pair, (size_t)(p - pair));
      break;
    }
    for (key = p; p < end && *p != '=' && !isspace((unsigned char)*p); p++) {}
    key_end = p;
    while (p < end && isspace((unsigned char)*p)) p++;
    secret = secret_keyword(key, (size_t)(key_end - key), 0);
    if (p == end || *p != '=') {
      /* libpq refuses this (`missing "="`); a lone "password" hides what follows. */
      if (secret) p = swallow_bare_words(r, key_end, end);
      else buf_putn(&r->out, pair, (size_t)((p = key_end) - pair));
      continue;
    }
    for (p++; p < end && isspace((unsigned char)*p); p++) {}
    quoted = p < end && *p == '\'';
    raw = p += quoted;
    buf_init(&val);
    while (p < end && (quoted ? *p != '\'' : !isspace((unsigned char)*p))) {
      if (*p == '\\' && ++p == end) break;
      buf_putc(&val, *p++);
    }
    scheme = uri_prefix(raw, (size_t)(p - raw));
    if (secret) {
      secret_add(r, raw, (size_t)(p - raw));
      secret_add(r, buf_str(&val), val.len);
      p = swallow_bare_words(r, p + (quoted && p < end), end);
    } else if (scheme) {
      /* libpq does not expand dbname=postgresql://... inside a keyword/
       * value string: the server would quote it as a database name. */
      buf_putn(&r->out, pair, (size_t)(raw - pair));
      redact_uri(r, raw, (size_t)(p - raw), raw + scheme);
      if (quoted && p < end) buf_putc(&r->out, *p++);
    } else {
      p += quoted && p < end;
      buf_putn(&r->out, pair, (size_t)(p - pair));
    }
    buf_free(&val);
  }
}

/* Read `url` the way nodup_open routes it; r is freed with redaction_free. */
static void redact(redaction *r, const char *url) {
  const char *scheme = strstr(url, "://");
  buf_init(&r->out);
  buf_init(&r->secrets);
  if (db_looks_like_conninfo(url)) redact_conninfo(r, url, strlen(url));
  else if (scheme) redact_uri(r, url, strlen(url), scheme + 3);
  else buf_puts(&r->out, url);
}

static void redaction_free(redaction *r) {
  buf_free(&r->out);
  buf_free(&r->secrets);
}

static int longer_first(const void *a, const void *b) {
  size_t la = strlen(*(const char *const *)a), lb = strlen(*(const char *const *)b);
  return la < lb ? 1 : la > lb ? -1 : 0;
}

/* Does the secret `v` (kind byte first) stand at `hit` in msg as the kind
 * requires? */
static int secret_at(const char *msg, const char *hit, const char *v) {
  size_t n = strlen(v + 1);
  if (v[0] == SECRET_WHOLE) return 1;
  return (hit == msg || strchr(SECRET_BOUNDARY, hit[-1])) &&
         (hit[n] == '\0' || strchr(SECRET_BOUNDARY, hit[n]));
}

/* Replace every password text of `r` in `msg` by ***, the longest first
 * (a whole password before its pieces). Without the whole list (out of
 * memory) nothing in msg can be trusted, so it is replaced. */
static void scrub(buf *msg, const redaction *r) {
  const char **v = NULL, *s = buf_str(&r->secrets), *end = s + r->secrets.len;
  size_t n = 0, i;
  for (; s < end; s += strlen(s) + 1) n++;
  if (!n && !r->secrets.oom) return;
  if (r->secrets.oom || !(v = malloc(n * sizeof *v))) {
    buf_reset(msg);
    buf_puts(msg, "(details withheld: out of memory)");
    return;
  }
  for (i = 0, s = buf_str(&r->secrets); i < n; s += strlen(s) + 1) v[i++] = s;
  qsort(v, n, sizeof *v, longer_first);
  for (i = 0; i < n; i++) {
    const char *text = v[i] + 1, *start = buf_str(msg), *from = start, *hit;
    buf out;
    if (!strstr(from, text)) continue;
    buf_init(&out);
    while ((hit = strstr(from, text)) != NULL) {
      int at = secret_at(start, hit, v[i]);
      buf_putn(&out, from, (size_t)(hit - from));
      buf_puts(&out, at ? "***" : text);
      from = hit + strlen(text);
    }
    buf_puts(&out, from);
    buf_free(msg);
    *msg = out;
  }
  free(v);
}

int nodup_url_redact(char *out, size_t size, const char *url) {
  redaction r;
  int n;
  if (!url || (size && !out)) return -1;
  redact(&r, url);
  n = r.out.oom ? -1 : (int)r.out.len;
  if (size) snprintf(out, size, "%s", n < 0 ? "" : buf_str(&r.out));
  redaction_free(&r);
  return n;
}

/* Scrub what a backend or libpq put in db's message: it may quote parts
 * of `url`. */
static void scrub_error(nodup_db *db, const char *url) {
  redaction r;
  redact(&r, url);
  scrub(&db->err, &r);
  redaction_free(&r);
}

int db_fail_url(nodup_db *db, const char *url, const char *what, const char *detail) {
  redaction r;
  buf d;
  int rc;
  redact(&r, url);
  buf_init(&d);
  buf_puts(&d, detail ? detail : "out of memory");
  /* libpq's messages end with a newline; keep one line. */
  while (d.len && d.p[d.len - 1] == '\n') d.p[--d.len] = '\0';
  scrub(&d, &r);
  rc = nodup_fail(db, NODUP_ERR_URL, "%s \"%s\": %s", what, buf_str(&r.out), buf_str(&d));
  buf_free(&d);
  redaction_free(&r);
  return rc;
}

/* Asked in this order: the embedded default, which takes any path, last. */
const struct nodup_backend *const nodup_backends[] = {&nodup_pg_backend, &nodup_sqlite_backend,
                                                      NULL};

int nodup_open(nodup_db **out, const char *url) { return nodup_open_ext(out, url, 0); }

int nodup_open_ext(nodup_db **out, const char *url, unsigned flags) {
  nodup_db *db;
  size_t i;
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
  for (i = 0; nodup_backends[i] && !nodup_backends[i]->accepts(url); i++) {
  }
  if (!nodup_backends[i]) {
    char shown[256];
    nodup_url_redact(shown, sizeof shown, url);
    return nodup_fail(db, NODUP_ERR_URL,
                      "unsupported database URL \"%s\": use a file path, "
                      "sqlite:PATH, postgres://... or a libpq conninfo string",
                      shown);
  }
  db->be = nodup_backends[i];
  db->caps = db->be->caps;
  rc = db->be->connect(db, url);
  if (rc == NODUP_OK) nodup_clear_error(db);
  else scrub_error(db, url);
  return rc;
}

void nodup_close(nodup_db *db) {
  if (!db) return;
  /* Keys hold statements prepared on the connection and free them through
   * it: like sqlite3_close_v2(), a close with keys open only marks the
   * connection, and the last nodup_key_free() closes it. */
  if (db->nkeys) {
    db->closing = 1;
    return;
  }
  if (db->be && db->native) db->be->disconnect(db);
  buf_free(&db->err);
  buf_free(&db->notice);
  free(db);
}

const char *nodup_db_backend(const nodup_db *db) {
  return db && db->be ? db->be->name : "none";
}

void *nodup_db_handle(nodup_db *db) { return db ? db->native : NULL; }

unsigned long long nodup_retries(const nodup_db *db) { return db ? db->retries : 0; }

int db_idle(nodup_db *db) {
  if (!db->waiting) return NODUP_OK;
  return nodup_fail(db, NODUP_ERR_USAGE,
                    "a non-blocking get-or-create is under way on this connection: "
                    "poll it to its end first");
}

int nodup_exec(nodup_db *db, const char *sql) {
  int rc;
  if (!db || !db->native || !sql) return NODUP_ERR_USAGE;
  if ((rc = db_idle(db)) != NODUP_OK) return rc;
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

unsigned db_serial(void) {
  /* Connections are used by one thread at a time, but several threads may
   * each run a merge on their own: the counter they share is atomic. */
  static _Atomic unsigned serial;
  return atomic_fetch_add_explicit(&serial, 1, memory_order_relaxed);
}

int db_begin_write(nodup_db *db) {
  /* 5 s: SQLite's busy timeout, the wait a plain BEGIN IMMEDIATE gets. */
  return db->be->begin_write_urgent ? db->be->begin_write_urgent(db, 5000)
                                    : db->be->exec(db, db->be->begin_write);
}

double db_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

int db_read_count(void *ctx, int n, const char *const *v) {
  (void)n;
  *(long long *)ctx = v[0] ? atoll(v[0]) : 0;
  return 1;
}

int db_read_text(void *ctx, int n, const char *const *v) {
  (void)n;
  if (v[0]) buf_puts(ctx, v[0]);
  return 1;
}

/* ---- time, schemas and sessions: the optional members' defaults ---- */

void db_utc_now(buf *q, const nodup_db *db) { buf_puts(q, db->be->utc_now); }

void db_utc_ago(buf *q, const nodup_db *db, int seconds) {
  buf_printf(q, db->be->utc_ago_fmt, seconds);
}

int db_table_exists(nodup_db *db, const char *schema, const char *name, int *exists) {
  *exists = 0;
  return db->be->table_exists(db, schema, name, exists);
}

int db_schema_access(nodup_db *db, const char *schema, db_schema_rights *out) {
  memset(out, 0, sizeof *out);
  if (db->be->schema_rights) return db->be->schema_rights(db, schema, out);
  /* No schemas: nothing to grant on one; the database's own rights show
   * at the statement. */
  out->exists = out->may_create = out->may_use = 1;
  return NODUP_OK;
}

int db_search_path_table(nodup_db *db, const char *name, const char *except, buf *out) {
  return db->be->search_path_table ? db->be->search_path_table(db, name, except, out)
                                   : NODUP_OK;
}

int db_xact_lock(nodup_db *db, const char *name) {
  return db->be->xact_lock ? db->be->xact_lock(db, name) : NODUP_OK;
}

int db_session_id(nodup_db *db, buf *out) {
  return db->be->session_id ? db->be->session_id(db, out) : NODUP_OK;
}

int db_session_alive(buf *q, const nodup_db *db, const char *id) {
  if (!db->be->session_alive) return 0;
  db->be->session_alive(q, id);
  return 1;
}

void db_conflict_insert(buf *q, const nodup_db *db, const nodup_table_info *t, char *const *cols,
                        size_t n, const char *where) {
  key_term *terms = key_terms_of(cols, n);
  if (!terms) {
    q->oom = 1;
    return;
  }
  buf_printf(q, "INSERT INTO %s (", t->qualified);
  sql_key_columns(q, terms, n);   /* lower(email) inserts email */
  buf_puts(q, ") VALUES (");
  sql_params(q, db, 1, n);
  buf_putc(q, ')');
  sql_on_conflict(q, terms, n, where);
  free(terms);
}

int db_partition_key(nodup_db *db, const nodup_table_info *t, row_fn fn, void *ctx) {
  return db->be->partition_key ? db->be->partition_key(db, t, fn, ctx) : NODUP_OK;
}

int db_index_find(nodup_db *db, const nodup_table_info *t, const char *index,
                  db_index_state *out) {
  memset(out, 0, sizeof *out);
  return db->be->index_state(db, t, index, out);
}

int db_guard_function(nodup_db *db, buf *q, const char *name, const nodup_table_info *t,
                      char *const *key, size_t nkey, const char *where, int nulls_equal,
                      const char *message, const char *constraint) {
  if (!db->be->guard_function)
    return nodup_fail(db, NODUP_ERR_UNSUPPORTED, "%s has no guard trigger for an index "
                      "built online", db->be->name);
  db->be->guard_function(q, name, t, key, nkey, where, nulls_equal, message, constraint);
  return q->oom ? NODUP_ERR_NOMEM : NODUP_OK;
}

int db_online_ddl(nodup_db *db, buf *q, online_stmt what, const char *name,
                  const nodup_table_info *t, char *const *key, size_t nkey, const char *note) {
  if (!db->be->online_ddl)
    return nodup_fail(db, NODUP_ERR_UNSUPPORTED, "%s has no online index build", db->be->name);
  db->be->online_ddl(q, what, name, t, key, nkey, note);
  return q->oom ? NODUP_ERR_NOMEM : NODUP_OK;
}

int db_online_leftovers(nodup_db *db, const nodup_table_info *t, const char *guard, row_fn fn,
                        void *ctx) {
  return db->be->online_leftovers ? db->be->online_leftovers(db, t, guard, fn, ctx) : NODUP_OK;
}

int db_orphan_guards(nodup_db *db, row_fn fn, void *ctx) {
  return db->be->orphan_guards ? db->be->orphan_guards(db, fn, ctx) : NODUP_OK;
}

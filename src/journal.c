/*
 * journal.c -- where merge runs are recorded, and whether they still run.
 *
 * The journal is six tables: nodup_runs (one row per run: its settings,
 * status, counters, owner and heartbeat), nodup_run_args (key columns and
 * references), nodup_steps (each changing statement), nodup_log (old values
 * of changed rows), nodup_archive (deleted rows) and nodup_meta (the
 * layout's version, so a later nodup can migrate it). On PostgreSQL they
 * live in a schema of their own (nodup_db_set_journal(), default "nodup"),
 * out of the application's; on SQLite, which has no schemas, in the main
 * database beside the data (an attached file would not commit atomically
 * with it). Nothing is created before a merge has passed every check.
 *
 * Version 1 is what nodup wrote before nodup_meta existed: the same five
 * tables without the owner and counter columns, in the first schema of the
 * search path (SQLite: the main database). Such a journal is read where it
 * is; the first write to it (resuming one of its runs; on SQLite, any
 * merge) upgrades it in place.
 *
 * Who runs a run: its row records the process (host, pid, and the start
 * time /proc gives, so a reused pid is not taken for it), on a direct
 * PostgreSQL connection the server process too (pid and backend_start),
 * and a heartbeat every batch refreshes. journal_state() reads them.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

const char *journal_schema(const nodup_db *db) {
  if (!db_can(db, BE_CAP_SCHEMAS)) return NULL;
  return db->journal[0] ? db->journal : JOURNAL_DEFAULT_SCHEMA;
}

int nodup_db_set_journal(nodup_db *db, const char *schema) {
  size_t n;
  if (!db) return NODUP_ERR_USAGE;
  nodup_clear_error(db);
  if (!schema) {
    db->journal[0] = '\0';
    return NODUP_OK;
  }
  if (!db->be || !db_can(db, BE_CAP_SCHEMAS))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "SQLite has no schemas: its journal is the nodup_* tables of the main "
                      "database (give no journal schema)");
  n = strlen(schema);
  if (n == 0 || n >= sizeof db->journal)
    return nodup_fail(db, NODUP_ERR_USAGE, "a journal schema name has 1 to %zu bytes",
                      sizeof db->journal - 1);
  if (!strncmp(schema, "pg_", 3))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "\"%s\" cannot be the journal schema: PostgreSQL reserves names "
                      "starting with pg_",
                      schema);
  memcpy(db->journal, schema, n + 1);
  return NODUP_OK;
}

void journal_table(buf *q, const char *schema, const char *name) {
  if (schema) {
    sql_ident(q, schema);
    buf_putc(q, '.');
  }
  sql_ident(q, name);
}

/* Statement text from a template: "{s}" is the schema prefix ("nodup".),
 * "{now}" the time now and "{ago}" JOURNAL_LEASE_SECONDS before it, both
 * as UTC text "YYYY-MM-DD HH:MM:SS" (so they compare as text on both
 * engines; the backend writes them), and ?N the backend's placeholder. */
void journal_sql(buf *q, const nodup_db *db, const char *schema, const char *tmpl) {
  const char *s;
  for (s = tmpl; *s; s++) {
    if (!strncmp(s, "{s}", 3)) {
      if (schema) {
        sql_ident(q, schema);
        buf_putc(q, '.');
      }
      s += 2;
    } else if (!strncmp(s, "{now}", 5)) {
      db_utc_now(q, db);
      s += 4;
    } else if (!strncmp(s, "{ago}", 5)) {
      db_utc_ago(q, db, JOURNAL_LEASE_SECONDS);
      s += 4;
    } else {
      buf_putc(q, *s == '?' ? db->be->placeholder : *s);
    }
  }
}

/* One templated statement: rows to fn (may be NULL), or with `changed`
 * the number of rows it changed. */
static int journal_run(nodup_db *db, const char *schema, const char *tmpl,
                       const char *const *p, int n, row_fn fn, void *ctx, long long *changed) {
  buf q;
  int rc;
  buf_init(&q);
  journal_sql(&q, db, schema, tmpl);
  if (q.oom) rc = NODUP_ERR_NOMEM;
  else if (changed) rc = db->be->changes(db, buf_str(&q), p, n, changed);
  else rc = db->be->query(db, buf_str(&q), p, n, fn, ctx);
  buf_free(&q);
  return rc;
}

/* ---- layout and versions ---- */

/* Version 1: the tables as nodup first made them. */
static const char *const layout_v1[] = {
    "CREATE TABLE IF NOT EXISTS {s}nodup_runs (run TEXT PRIMARY KEY, tbl TEXT NOT NULL, "
    "where_sql TEXT, keep_sql TEXT, batch INTEGER NOT NULL, nulls_equal INTEGER NOT NULL, "
    "fill_nulls INTEGER NOT NULL, one_to_one INTEGER NOT NULL, archive INTEGER NOT NULL, "
    "status TEXT NOT NULL, groups INTEGER NOT NULL DEFAULT 0, started TEXT, finished TEXT)",
    "CREATE TABLE IF NOT EXISTS {s}nodup_run_args (run TEXT NOT NULL, kind TEXT NOT NULL, "
    "pos INTEGER NOT NULL, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}nodup_steps (run TEXT NOT NULL, step INTEGER NOT NULL, "
    "kind TEXT NOT NULL, tbl TEXT NOT NULL, pos INTEGER NOT NULL, col TEXT)",
    "CREATE TABLE IF NOT EXISTS {s}nodup_log (run TEXT NOT NULL, step INTEGER NOT NULL, "
    "cur TEXT NOT NULL, old TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}nodup_archive (run TEXT NOT NULL, step INTEGER NOT NULL, "
    "tbl TEXT NOT NULL, pk TEXT NOT NULL, keeper TEXT NOT NULL, row TEXT NOT NULL)",
    /* merge's archive_rekey() reads the run's latest steps while merging. */
    "CREATE INDEX IF NOT EXISTS nodup_archive_step ON {s}nodup_archive (run, step)",
    NULL};

/* Version 2: who runs a run (owner token, host, pid and its start time,
 * PostgreSQL server process, heartbeat), what it changed, and nodup_meta.
 * Runs recorded before get their counters from their log and archive
 * (NULL when they kept none). */
static const char *const layout_v2[] = {
    "ALTER TABLE {s}nodup_runs ADD COLUMN owner TEXT",
    "ALTER TABLE {s}nodup_runs ADD COLUMN host TEXT",
    "ALTER TABLE {s}nodup_runs ADD COLUMN pid INTEGER",
    "ALTER TABLE {s}nodup_runs ADD COLUMN pid_start TEXT",
    "ALTER TABLE {s}nodup_runs ADD COLUMN backend TEXT",
    "ALTER TABLE {s}nodup_runs ADD COLUMN heartbeat TEXT",
    "ALTER TABLE {s}nodup_runs ADD COLUMN repointed INTEGER",
    "ALTER TABLE {s}nodup_runs ADD COLUMN deleted INTEGER",
    "ALTER TABLE {s}nodup_runs ADD COLUMN filled INTEGER",
    "UPDATE {s}nodup_runs SET repointed = (SELECT count(*) FROM {s}nodup_log AS l JOIN "
    "{s}nodup_steps AS t ON t.run = l.run AND t.step = l.step AND t.pos = 0 "
    "WHERE l.run = nodup_runs.run AND t.kind = 'repoint'), "
    "filled = (SELECT count(*) FROM {s}nodup_log AS l JOIN {s}nodup_steps AS t "
    "ON t.run = l.run AND t.step = l.step AND t.pos = 0 "
    "WHERE l.run = nodup_runs.run AND t.kind = 'fill'), "
    "deleted = (SELECT count(*) FROM {s}nodup_archive AS a WHERE a.run = nodup_runs.run) "
    "WHERE archive = 1",
    "CREATE TABLE {s}nodup_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "INSERT INTO {s}nodup_meta (key, value) VALUES ('version', '2')",
    NULL};

static const char *const *const layouts[] = {layout_v1, layout_v2};

/* "... lacks USAGE on schema "x": GRANT USAGE ... TO "u"" */
static int no_usage(nodup_db *db, const char *schema, const db_schema_rights *p) {
  buf s, u;
  int rc;
  buf_init(&s);
  buf_init(&u);
  sql_ident(&s, schema);
  sql_ident(&u, p->user);
  rc = nodup_fail(db, NODUP_ERR_DB,
                  "the merge journal is in schema %s, which role %s may not use: run (as its "
                  "owner) GRANT USAGE, CREATE ON SCHEMA %s TO %s; GRANT SELECT, INSERT, UPDATE, "
                  "DELETE ON ALL TABLES IN SCHEMA %s TO %s; or choose another schema "
                  "(--journal SCHEMA, nodup_db_set_journal)",
                  buf_str(&s), buf_str(&u), buf_str(&s), buf_str(&u), buf_str(&s), buf_str(&u));
  buf_free(&s);
  buf_free(&u);
  return rc;
}

int journal_version(nodup_db *db, const char *schema, int *version) {
  db_schema_rights p;
  buf v;
  int rc, exists = 0;
  *version = 0;
  buf_init(&v);
  /* The catalog first: it needs no right on the schema. */
  if ((rc = db_table_exists(db, schema, "nodup_runs", &exists)) != NODUP_OK || !exists)
    goto done;
  if (schema) {
    if ((rc = db_schema_access(db, schema, &p)) != NODUP_OK) goto done;
    if (!p.may_use) {
      rc = no_usage(db, schema, &p);
      goto done;
    }
  }
  *version = 1;
  if ((rc = db_table_exists(db, schema, "nodup_meta", &exists)) != NODUP_OK || !exists)
    goto done;
  rc = journal_run(db, schema, "SELECT value FROM {s}nodup_meta WHERE key = 'version'", NULL, 0,
                   db_read_text, &v, NULL);
  if (rc == NODUP_OK) *version = v.oom ? 0 : atoi(buf_str(&v));
  if (rc == NODUP_OK && *version < 2) *version = 2;   /* a meta table says 2 at least */
done:
  buf_free(&v);
  return rc;
}

/* Refuse, naming the schema and the statement that would allow it, what
 * the role may not create (checked first, so that the error is ours and
 * not the server's). */
static int may_create(nodup_db *db, const char *schema, const db_schema_rights *p) {
  buf s, u, d;
  int rc = NODUP_OK;
  if (p->exists ? p->may_use && p->may_create : p->may_create) return NODUP_OK;
  buf_init(&s);
  buf_init(&u);
  buf_init(&d);
  sql_ident(&s, schema);
  sql_ident(&u, p->user);
  sql_ident(&d, p->database);
  if (!p->exists)
    rc = nodup_fail(db, NODUP_ERR_DB,
                    "cannot create the merge journal's schema %s: role %s may not create "
                    "schemas in database %s; have an administrator run CREATE SCHEMA %s "
                    "AUTHORIZATION %s (or GRANT CREATE ON DATABASE %s TO %s), or choose a "
                    "schema the role may create tables in (--journal SCHEMA, "
                    "nodup_db_set_journal); nothing changed",
                    buf_str(&s), buf_str(&u), buf_str(&d), buf_str(&s), buf_str(&u),
                    buf_str(&d), buf_str(&u));
  else if (!p->may_use)
    rc = no_usage(db, schema, p);
  else
    rc = nodup_fail(db, NODUP_ERR_DB,
                    "cannot create the merge journal's tables in schema %s: role %s may not "
                    "create tables there; have its owner run GRANT CREATE ON SCHEMA %s TO %s, "
                    "or choose another schema (--journal SCHEMA, nodup_db_set_journal); nothing "
                    "changed",
                    buf_str(&s), buf_str(&u), buf_str(&s), buf_str(&u));
  buf_free(&s);
  buf_free(&u);
  buf_free(&d);
  return rc;
}

int journal_ensure(nodup_db *db, const char *schema) {
  int version = 0, rc;
  size_t v, i;
  if ((rc = journal_version(db, schema, &version)) != NODUP_OK) return rc;
  if (version == JOURNAL_VERSION) return NODUP_OK;
  if (version > JOURNAL_VERSION)
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "the merge journal%s%s has version %d, newer than this nodup's (%d): "
                      "use a newer nodup",
                      schema ? " in schema " : "", schema ? schema : "", version,
                      JOURNAL_VERSION);
  if (schema) {
    /* Two first merges at once would both create: one waits for the
     * other, then finds the journal made (a transaction-scoped lock, held
     * by the caller's transaction; without one, the write transaction
     * serializes them already). */
    db_schema_rights pl;
    rc = db_xact_lock(db, schema);
    if (rc == NODUP_OK) rc = journal_version(db, schema, &version);
    if (rc != NODUP_OK || version == JOURNAL_VERSION) return rc;
    if ((rc = db_schema_access(db, schema, &pl)) != NODUP_OK) return rc;
    if ((rc = may_create(db, schema, &pl)) != NODUP_OK) return rc;
    if (!pl.exists) {
      buf q;
      buf_init(&q);
      buf_puts(&q, "CREATE SCHEMA IF NOT EXISTS ");
      sql_ident(&q, schema);
      rc = q.oom ? NODUP_ERR_NOMEM : db->be->exec(db, buf_str(&q));
      buf_free(&q);
      if (rc != NODUP_OK) return rc;
    }
  }
  /* From the version found up, each layout's statements in order. */
  for (v = version ? (size_t)version : 0; v < JOURNAL_VERSION; v++)
    for (i = 0; layouts[v][i]; i++)
      if ((rc = journal_run(db, schema, layouts[v][i], NULL, 0, NULL, NULL, NULL)) != NODUP_OK)
        return rc;
  return NODUP_OK;
}

int journal_legacy(nodup_db *db, char **schema) {
  const char *here = journal_schema(db);
  buf s;
  int rc;
  *schema = NULL;
  if (!here) return NODUP_OK;
  buf_init(&s);
  /* Where an unqualified nodup_runs was created: the first schema of the
   * search path that holds one (not the journal's own). */
  rc = db_search_path_table(db, "nodup_runs", here, &s);
  if (rc == NODUP_OK && s.len && !(*schema = nodup_strdup(buf_str(&s)))) rc = NODUP_ERR_NOMEM;
  buf_free(&s);
  return rc;
}

int journal_find(nodup_db *db, const char *run, char **schema, int *version) {
  const char *here = journal_schema(db);
  char *legacy = NULL;
  long long n = 0;
  int rc, pass;
  const char *p[1] = {run};
  *schema = NULL;
  *version = 0;
  for (pass = 0; pass < 2; pass++) {
    const char *s = here;
    int v = 0;
    if (pass == 1) {
      if ((rc = journal_legacy(db, &legacy)) != NODUP_OK || !legacy) break;
      s = legacy;
    }
    if ((rc = journal_version(db, s, &v)) != NODUP_OK) break;
    if (!v) continue;
    n = 0;
    rc = journal_run(db, s, "SELECT count(*) FROM {s}nodup_runs WHERE run = ?1", p, 1,
                     db_read_count, &n, NULL);
    if (rc != NODUP_OK) break;
    if (n) {
      *version = v;
      if (s && !(*schema = nodup_strdup(s))) rc = NODUP_ERR_NOMEM;
      break;
    }
  }
  free(legacy);
  if (rc == NODUP_OK && !*version)
    rc = nodup_fail(db, NODUP_ERR_NO_RUN, "no merge run \"%s\" in this database", run);
  return rc;
}

/* ---- owners ---- */

/* The start time of process pid, in clock ticks after boot (/proc's
 * field 22), into out; "" where there is no /proc. With the pid it names a
 * process even after the pid is reused. */
static void proc_start(long pid, char *out, size_t size) {
  char path[64], line[1024], *p;
  FILE *f;
  int field;
  out[0] = '\0';
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  if (!(f = fopen(path, "r"))) return;
  p = fgets(line, sizeof line, f);
  fclose(f);
  /* The command name (field 2) is in parentheses and may hold anything. */
  if (!p || !(p = strrchr(line, ')'))) return;
  for (field = 2; *p && field < 22; p++)
    if (*p == ' ') field++;
  if (field == 22) snprintf(out, size, "%.*s", (int)strcspn(p, " \n"), p);
}

/* Is the process pid of this host, started at pid_start ("" or NULL:
 * unknown), alive? A process we may not signal (EPERM) exists. */
static int process_alive(const char *pid, const char *pid_start) {
  long p = pid ? atol(pid) : 0;
  char now[32];
  if (p <= 0) return 0;
  if (kill((pid_t)p, 0) != 0 && errno != EPERM) return 0;
  if (pid_start && *pid_start) {
    proc_start(p, now, sizeof now);
    if (*now && strcmp(now, pid_start)) return 0;   /* the pid was reused */
  }
  return 1;
}

static void this_host(char *out, size_t size) {
  if (gethostname(out, size) != 0) snprintf(out, size, "unknown");
  out[size - 1] = '\0';
}

int journal_owner_init(nodup_db *db, journal_owner *o) {
  buf b;
  int rc = NODUP_OK;
  memset(o, 0, sizeof *o);
  this_host(o->host, sizeof o->host);
  snprintf(o->pid, sizeof o->pid, "%ld", (long)getpid());
  proc_start((long)getpid(), o->pid_start, sizeof o->pid_start);
  snprintf(o->token, sizeof o->token, "%.64s/%s/%lld/%u", o->host, o->pid,
           (long long)time(NULL), db_serial());
  /* A server session of its own (a direct PostgreSQL connection) is one
   * for the whole run: it names the run's owner exactly, also across
   * hosts. Through a pooler each transaction may run in another: none. */
  buf_init(&b);
  rc = db_session_id(db, &b);
  if (rc == NODUP_OK && !b.oom) snprintf(o->backend, sizeof o->backend, "%s", buf_str(&b));
  buf_free(&b);
  return rc;
}

void journal_state_columns(buf *q, const nodup_db *db, const char *schema, int version) {
  if (version < 2) {
    buf_puts(q, "r.status, NULL, NULL, NULL, NULL, NULL");
    return;
  }
  buf_puts(q, "r.status, r.host, r.pid, r.pid_start, ");
  if (db->be->session_alive) {
    buf_puts(q, "CASE WHEN r.backend IS NULL THEN NULL WHEN ");
    db_session_alive(q, db, "r.backend");
    buf_puts(q, " THEN 1 ELSE 0 END, ");
  } else {
    buf_puts(q, "NULL, ");
  }
  buf_puts(q, "CASE WHEN r.heartbeat IS NOT NULL AND r.heartbeat > ");
  journal_sql(q, db, schema, "{ago}");
  buf_puts(q, " THEN 1 ELSE 0 END");
}

/* "SELECT <head> <journal_state()'s six> FROM nodup_runs AS r <tail>":
 * head ends with ", " and may use {s}; tail may be "". */
static void select_runs(buf *q, const nodup_db *db, const char *schema, int version,
                        const char *head, const char *tail) {
  journal_sql(q, db, schema, head);
  journal_state_columns(q, db, schema, version);
  journal_sql(q, db, schema, " FROM {s}nodup_runs AS r");
  journal_sql(q, db, schema, tail);
}

int journal_state(const char *const *v) {
  const char *status = v[0], *host = v[1], *pid = v[2], *pid_start = v[3], *backend = v[4],
             *fresh = v[5];
  char me[256];
  if (!status) return NODUP_RUN_FAILED;
  if (!strcmp(status, "done")) return NODUP_RUN_DONE;
  if (!strcmp(status, "failed")) return NODUP_RUN_FAILED;
  if (!strcmp(status, "undone")) return NODUP_RUN_UNDONE;
  /* Recorded running: is its owner still there? Its server process, when
   * it had one of its own (exact); else its process, when it is on this
   * host; else a heartbeat within the lease. A run an earlier nodup
   * recorded names no owner: nothing can be alive. */
  if (backend) return !strcmp(backend, "1") ? NODUP_RUN_RUNNING : NODUP_RUN_INTERRUPTED;
  if (!host) return NODUP_RUN_INTERRUPTED;
  this_host(me, sizeof me);
  if (!strcmp(host, me))
    return process_alive(pid, pid_start) ? NODUP_RUN_RUNNING : NODUP_RUN_INTERRUPTED;
  return fresh && !strcmp(fresh, "1") ? NODUP_RUN_RUNNING : NODUP_RUN_INTERRUPTED;
}

const char *nodup_run_state_name(int state) {
  switch (state) {
  case NODUP_RUN_RUNNING: return "running";
  case NODUP_RUN_INTERRUPTED: return "interrupted";
  case NODUP_RUN_DONE: return "done";
  case NODUP_RUN_FAILED: return "failed";
  case NODUP_RUN_UNDONE: return "undone";
  default: return "unknown";
  }
}

/* ---- writing a run ---- */

int journal_record(nodup_db *db, const char *schema, const char *run, const journal_owner *o,
                   const char *table, char *const *key, size_t nkey, const char *where,
                   const nodup_merge_options *opt, size_t batch) {
  char nb[24], ne[4], fl[4], oo[4], ar[4], pos[24];
  const char *p[15];
  size_t i;
  int rc;
  snprintf(nb, sizeof nb, "%zu", batch);
  snprintf(ne, sizeof ne, "%d", opt->nulls_equal ? 1 : 0);
  snprintf(fl, sizeof fl, "%d", opt->fill_nulls ? 1 : 0);
  snprintf(oo, sizeof oo, "%d", opt->one_to_one);
  snprintf(ar, sizeof ar, "%d", opt->no_archive ? 0 : 1);
  p[0] = run, p[1] = table, p[2] = where, p[3] = opt->keep && *opt->keep ? opt->keep : NULL;
  p[4] = nb, p[5] = ne, p[6] = fl, p[7] = oo, p[8] = ar;
  p[9] = o->token, p[10] = o->host, p[11] = o->pid, p[12] = o->pid_start[0] ? o->pid_start : NULL;
  p[13] = o->backend[0] ? o->backend : NULL;
  rc = journal_run(db, schema,
                   "INSERT INTO {s}nodup_runs (run, tbl, where_sql, keep_sql, batch, nulls_equal, "
                   "fill_nulls, one_to_one, archive, status, started, owner, host, pid, "
                   "pid_start, backend, heartbeat, repointed, deleted, filled) VALUES (?1, ?2, "
                   "?3, ?4, CAST(?5 AS INTEGER), CAST(?6 AS INTEGER), CAST(?7 AS INTEGER), "
                   "CAST(?8 AS INTEGER), CAST(?9 AS INTEGER), 'running', {now}, ?10, ?11, "
                   "CAST(?12 AS INTEGER), ?13, ?14, {now}, 0, 0, 0)",
                   p, 14, NULL, NULL, NULL);
  for (i = 0; rc == NODUP_OK && i < nkey + opt->nrefs + opt->nignore_refs + opt->ncolumns;
       i++) {
    /* The key, the references, the ignored ones and the column policies:
     * resume uses them all. */
    size_t nr = nkey + opt->nrefs, ni = nr + opt->nignore_refs;
    int k = i < nkey ? 0 : i < nr ? 1 : i < ni ? 2 : 3;
    size_t at = k == 0 ? i : k == 1 ? i - nkey : k == 2 ? i - nr : i - ni;
    const char *a[4] = {run, k == 0 ? "key" : k == 1 ? "ref" : k == 2 ? "ignore" : "column", pos,
                        k == 0   ? key[i]
                        : k == 1 ? opt->refs[at]
                        : k == 2 ? opt->ignore_refs[at]
                                 : opt->columns[at]};
    snprintf(pos, sizeof pos, "%zu", at);
    rc = journal_run(db, schema,
                     "INSERT INTO {s}nodup_run_args (run, kind, pos, value) "
                     "VALUES (?1, ?2, CAST(?3 AS INTEGER), ?4)",
                     a, 4, NULL, NULL, NULL);
  }
  return rc;
}

int journal_claim(nodup_db *db, const char *schema, const char *run, const journal_owner *o) {
  const char *p[6] = {run, o->token, o->host, o->pid, o->pid_start[0] ? o->pid_start : NULL,
                      o->backend[0] ? o->backend : NULL};
  journal_row r;
  int rc;
  if ((rc = journal_read_row(db, schema, JOURNAL_VERSION, run, 1, &r)) != NODUP_OK) return rc;
  switch (r.state) {
  case NODUP_RUN_RUNNING:
    rc = journal_refuse_running(db, run, &r, "it cannot be resumed");
    break;
  case NODUP_RUN_DONE:
  case NODUP_RUN_UNDONE:
    rc = nodup_fail(db, NODUP_ERR_NO_RUN, "merge run \"%s\" is %s: nothing to resume", run,
                    nodup_run_state_name(r.state));
    break;
  default:
    rc = journal_run(db, schema,
                     "UPDATE {s}nodup_runs SET status = 'running', finished = NULL, owner = ?2, "
                     "host = ?3, pid = CAST(?4 AS INTEGER), pid_start = ?5, backend = ?6, "
                     "heartbeat = {now} WHERE run = ?1",
                     p, 6, NULL, NULL, NULL);
  }
  return rc;
}

/* An UPDATE of the run's row that only its owner, while it runs, may
 * make: anything else means another process took the run over (resumed
 * it after judging it interrupted), or it was undone or forgotten. */
static int owner_update(nodup_db *db, const char *schema, const char *run, const journal_owner *o,
                        const char *tmpl, const char *const *extra, int nextra) {
  const char *p[8] = {run, o->token};
  long long n = 0;
  int i, rc;
  for (i = 0; i < nextra && i < 6; i++) p[2 + i] = extra[i];
  rc = journal_run(db, schema, tmpl, p, 2 + nextra, NULL, NULL, &n);
  if (rc == NODUP_OK && n != 1)
    rc = nodup_fail(db, NODUP_ERR_NO_RUN,
                    "merge run \"%s\" is no longer this process's (resumed elsewhere, undone or "
                    "forgotten meanwhile): stopped, the batch rolled back",
                    run);
  return rc;
}

int journal_heartbeat(nodup_db *db, const char *schema, const char *run, const journal_owner *o) {
  return owner_update(db, schema, run, o,
                      "UPDATE {s}nodup_runs SET heartbeat = {now} WHERE run = ?1 AND owner = ?2 "
                      "AND status = 'running'",
                      NULL, 0);
}

int journal_batch_done(nodup_db *db, const char *schema, const char *run, const journal_owner *o,
                       long long groups, long long repointed, long long deleted,
                       long long filled) {
  char n[4][24];
  const char *p[4] = {n[0], n[1], n[2], n[3]};
  snprintf(n[0], sizeof n[0], "%lld", groups);
  snprintf(n[1], sizeof n[1], "%lld", repointed);
  snprintf(n[2], sizeof n[2], "%lld", deleted);
  snprintf(n[3], sizeof n[3], "%lld", filled);
  /* NULL counters (a --no-archive run an earlier nodup recorded) stay
   * NULL: their total is unknown. */
  return owner_update(db, schema, run, o,
                      "UPDATE {s}nodup_runs SET groups = groups + CAST(?3 AS INTEGER), "
                      "repointed = repointed + CAST(?4 AS INTEGER), "
                      "deleted = deleted + CAST(?5 AS INTEGER), "
                      "filled = filled + CAST(?6 AS INTEGER), heartbeat = {now} "
                      "WHERE run = ?1 AND owner = ?2 AND status = 'running'",
                      p, 4);
}

int journal_status(nodup_db *db, const char *schema, const char *run, const journal_owner *o,
                   const char *status) {
  const char *p[1] = {status};
  return owner_update(db, schema, run, o,
                      "UPDATE {s}nodup_runs SET status = ?3, finished = {now}, heartbeat = {now} "
                      "WHERE run = ?1 AND owner = ?2 AND status = 'running'",
                      p, 1);
}

int journal_remove(nodup_db *db, const char *schema, const char *run) {
  static const char *const del[] = {
      "DELETE FROM {s}nodup_archive WHERE run = ?1", "DELETE FROM {s}nodup_log WHERE run = ?1",
      "DELETE FROM {s}nodup_steps WHERE run = ?1", "DELETE FROM {s}nodup_run_args WHERE run = ?1",
      "DELETE FROM {s}nodup_runs WHERE run = ?1", NULL};
  const char *p[1] = {run};
  size_t i;
  int rc = NODUP_OK;
  for (i = 0; rc == NODUP_OK && del[i]; i++)
    rc = journal_run(db, schema, del[i], p, 1, NULL, NULL, NULL);
  if (rc == NODUP_OK && schema) {
    /* The pass table a pooled run keeps between its transactions (in the
     * journal's schema; without schemas a run's is temporary). */
    buf q;
    buf_init(&q);
    buf_puts(&q, "DROP TABLE IF EXISTS ");
    journal_pass_table(&q, schema, run);
    rc = q.oom ? NODUP_ERR_NOMEM : db->be->exec(db, buf_str(&q));
    buf_free(&q);
  }
  return rc;
}

void journal_discard(nodup_db *db, const char *schema, const char *run, const journal_owner *o) {
  const char *p[2] = {run, o->token};
  long long n = 0;
  int rc;
  if (db_begin_write(db) != NODUP_OK) return;
  rc = journal_run(db, schema,
                   "DELETE FROM {s}nodup_runs WHERE run = ?1 AND owner = ?2 AND status = 'running'",
                   p, 2, NULL, NULL, &n);
  if (rc == NODUP_OK && n == 1) rc = journal_remove(db, schema, run);
  db->be->exec(db, rc == NODUP_OK && n == 1 ? "COMMIT" : "ROLLBACK");
}

int journal_refuse_running(nodup_db *db, const char *run, const journal_row *r,
                           const char *what) {
  if (r->busy)
    return nodup_fail(db, NODUP_ERR_NO_RUN,
                      "merge run \"%s\" is running (a batch of it is in progress in another "
                      "session): %s until it stops",
                      run, what);
  return nodup_fail(db, NODUP_ERR_NO_RUN,
                    "merge run \"%s\" is running (process %s on %s): %s until it stops", run,
                    r->pid[0] ? r->pid : "?", r->host[0] ? r->host : "?", what);
}

/* ---- reading one run's row ---- */

static int read_row(void *ctx, int n, const char *const *v) {
  journal_row *r = ctx;
  (void)n;
  r->found = 1;
  r->state = journal_state(v);
  snprintf(r->status, sizeof r->status, "%s", v[0] ? v[0] : "");
  snprintf(r->host, sizeof r->host, "%s", v[1] ? v[1] : "");
  snprintf(r->pid, sizeof r->pid, "%s", v[2] ? v[2] : "");
  return 1;
}

int journal_read_row(nodup_db *db, const char *schema, int version, const char *run, int lock,
                     journal_row *r) {
  const char *p[1] = {run};
  buf q;
  int rc;
  memset(r, 0, sizeof *r);
  buf_init(&q);
  select_runs(&q, db, schema, version, "SELECT ", " WHERE r.run = ?1");
  /* Locked until the caller's transaction ends, so that no batch starts
   * meanwhile. A batch in progress holds the row from its first statement:
   * PostgreSQL skips it rather than wait (a stopped process would hold it
   * for ever), and a row we could not lock is a running run's. SQLite's
   * write transaction is the lock. */
  if (lock && db->be->lock_rows[0]) buf_printf(&q, "%s SKIP LOCKED", db->be->lock_rows);
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), p, 1, read_row, r);
  if (rc == NODUP_OK && !r->found && lock && db->be->lock_rows[0]) {
    buf_reset(&q);
    select_runs(&q, db, schema, version, "SELECT ", " WHERE r.run = ?1");
    rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), p, 1, read_row, r);
    if (r->found) r->state = NODUP_RUN_RUNNING, r->busy = 1;
  }
  buf_free(&q);
  if (rc == NODUP_OK && !r->found)
    rc = nodup_fail(db, NODUP_ERR_NO_RUN, "no merge run \"%s\" in this database", run);
  return rc;
}

/* ---- reading a run back, and undoing it (runs.c) ---- */

int journal_load_run(nodup_db *db, const char *schema, int version, const char *run, row_fn fn,
                     void *ctx) {
  const char *p[1] = {run};
  buf q;
  int rc;
  buf_init(&q);
  select_runs(&q, db, schema, version,
              "SELECT tbl, where_sql, keep_sql, batch, nulls_equal, fill_nulls, one_to_one, "
              "archive, status, (SELECT max(step) FROM {s}nodup_steps AS s "
              "WHERE s.run = r.run), ",
              " WHERE run = ?1");
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), p, 1, fn, ctx);
  buf_free(&q);
  return rc;
}

int journal_load_args(nodup_db *db, const char *schema, const char *run, row_fn fn, void *ctx) {
  const char *p[1] = {run};
  return journal_run(db, schema,
                     "SELECT kind, value FROM {s}nodup_run_args WHERE run = ?1 ORDER BY kind, pos",
                     p, 1, fn, ctx, NULL);
}

int journal_steps(nodup_db *db, const char *schema, const char *run, row_fn fn, void *ctx) {
  const char *p[1] = {run};
  int rc;
  /* Undo looks rows up by (run, step): index them now rather than pay for
   * the index on every merge. */
  rc = journal_run(db, schema, "CREATE INDEX IF NOT EXISTS nodup_log_step ON {s}nodup_log "
                               "(run, step)", NULL, 0, NULL, NULL, NULL);
  if (rc == NODUP_OK)
    rc = journal_run(db, schema, "CREATE INDEX IF NOT EXISTS nodup_archive_step ON "
                                 "{s}nodup_archive (run, step)", NULL, 0, NULL, NULL, NULL);
  if (rc == NODUP_OK)
    rc = journal_run(db, schema, "SELECT step, kind, tbl, col FROM {s}nodup_steps "
                                 "WHERE run = ?1 ORDER BY step DESC, pos", p, 1, fn, ctx, NULL);
  return rc;
}

int journal_step_rows(nodup_db *db, const char *schema, const char *run, const char *step,
                      int deleted, long long *n) {
  const char *p[2] = {run, step};
  *n = 0;
  return journal_run(db, schema,
                     deleted ? "SELECT count(*) FROM {s}nodup_archive "
                               "WHERE run = ?1 AND step = CAST(?2 AS INTEGER)"
                             : "SELECT count(*) FROM {s}nodup_log "
                               "WHERE run = ?1 AND step = CAST(?2 AS INTEGER)",
                     p, 2, db_read_count, n, NULL);
}

int journal_restore(nodup_db *db, const char *schema, const nodup_table_info *t, const char *run,
                    const char *step, int deleted, char *const *cols, size_t ncols,
                    long long *changed) {
  const char *p[2] = {run, step};
  db_json_rows src = {NULL, NULL, "a.row", "a.pk", "a.old", "a.cur"};
  buf from, where, q;
  int rc;
  buf_init(&from);
  buf_init(&where);
  buf_init(&q);
  journal_sql(&from, db, schema, deleted ? "{s}nodup_archive AS a" : "{s}nodup_log AS a");
  journal_sql(&where, db, schema, "a.run = ?1 AND a.step = ?2");
  src.from = buf_str(&from);
  src.where = buf_str(&where);
  if (deleted) db->be->restore_rows(&q, t, &src);
  else db->be->restore_cols(&q, t, cols, ncols, &src);
  rc = q.oom || from.oom || where.oom ? NODUP_ERR_NOMEM
                                      : db->be->changes(db, buf_str(&q), p, 2, changed);
  buf_free(&from);
  buf_free(&where);
  buf_free(&q);
  return rc;
}

int journal_mark_undone(nodup_db *db, const char *schema, const char *run) {
  const char *p[1] = {run};
  return journal_run(db, schema,
                     "UPDATE {s}nodup_runs SET status = 'undone', finished = {now} WHERE run = ?1",
                     p, 1, NULL, NULL, NULL);
}

/* ---- listing and forgetting (runs_list.c) ---- */

int journal_list(nodup_db *db, const char *schema, int version, row_fn runs_fn, row_fn keys_fn,
                 void *ctx) {
  buf q;
  int rc;
  buf_init(&q);
  /* An earlier nodup kept no counters: count what its log and archive
   * hold (nothing to count without them). */
  select_runs(&q, db, schema, version,
              version >= 2
                  ? "SELECT r.run, r.tbl, r.started, r.finished, r.groups, r.archive, "
                    "r.heartbeat, r.repointed, r.deleted, r.filled, "
                  : "SELECT r.run, r.tbl, r.started, r.finished, r.groups, r.archive, "
                    "NULL, CASE WHEN r.archive = 1 THEN (SELECT count(*) FROM {s}nodup_log AS l "
                    "JOIN {s}nodup_steps AS t ON t.run = l.run AND t.step = l.step AND t.pos = 0 "
                    "WHERE l.run = r.run AND t.kind = 'repoint') END, "
                    "CASE WHEN r.archive = 1 THEN (SELECT count(*) FROM {s}nodup_archive AS a "
                    "WHERE a.run = r.run) END, "
                    "CASE WHEN r.archive = 1 THEN (SELECT count(*) FROM {s}nodup_log AS l "
                    "JOIN {s}nodup_steps AS t ON t.run = l.run AND t.step = l.step AND t.pos = 0 "
                    "WHERE l.run = r.run AND t.kind = 'fill') END, ",
              "");
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, runs_fn, ctx);
  buf_reset(&q);
  journal_sql(&q, db, schema,
              "SELECT run, value FROM {s}nodup_run_args WHERE kind = 'key' ORDER BY run, pos");
  if (rc == NODUP_OK)
    rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, keys_fn, ctx);
  buf_free(&q);
  return rc;
}

/* When an earlier nodup's journal holds no run any more, its tables go:
 * what is left of nodup in the application's schema. */
int journal_drop_if_empty(nodup_db *db, const char *schema) {
  long long n = 0;
  buf q;
  int rc;
  buf_init(&q);
  journal_sql(&q, db, schema, "SELECT count(*) FROM {s}nodup_runs");
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, db_read_count, &n);
  if (rc == NODUP_OK && n == 0) {
    buf_reset(&q);
    journal_sql(&q, db, schema,
                "DROP TABLE IF EXISTS {s}nodup_runs, {s}nodup_run_args, {s}nodup_steps, "
                "{s}nodup_log, {s}nodup_archive, {s}nodup_meta");
    rc = q.oom ? NODUP_ERR_NOMEM : db->be->exec(db, buf_str(&q));
  }
  buf_free(&q);
  return rc;
}


/* ---- a run's changes, as merge.c writes them ---- */

void journal_pass_table(buf *q, const char *schema, const char *run) {
  char name[96];
  snprintf(name, sizeof name, "nodup_groups_%s", run);
  journal_table(q, schema, name);
}

int journal_step(nodup_db *db, const char *schema, const char *run, const char *step,
                 const char *kind, const char *table, char *const *cols, size_t n) {
  static const char insert[] = "INSERT INTO {s}nodup_steps (run, step, kind, tbl, pos, col) "
                               "VALUES (?1, CAST(?2 AS INTEGER), ?3, ?4, CAST(?5 AS INTEGER), ?6)";
  const char *p[6] = {run, step, kind, table, NULL, NULL};
  char pos[24];
  size_t i;
  int rc = NODUP_OK;
  for (i = 0; i < (n ? n : 1) && rc == NODUP_OK; i++) {
    snprintf(pos, sizeof pos, "%zu", i);
    p[4] = pos, p[5] = n ? cols[i] : NULL;
    rc = journal_run(db, schema, insert, p, 6, NULL, NULL, NULL);
  }
  return rc;
}

void journal_log_insert(buf *q, const nodup_db *db, const char *schema) {
  journal_sql(q, db, schema,
              "INSERT INTO {s}nodup_log (run, step, cur, old) SELECT ?1, CAST(?2 AS INTEGER), ");
}

void journal_archive_insert(buf *q, const nodup_db *db, const char *schema) {
  journal_sql(q, db, schema,
              "INSERT INTO {s}nodup_archive (run, step, tbl, pk, keeper, row) "
              "SELECT ?1, CAST(?3 AS INTEGER), ?2, ");
}

void journal_rekey_begin(buf *q, const nodup_db *db, const char *schema) {
  journal_sql(q, db, schema, "UPDATE {s}nodup_archive AS a SET keeper = u.nodup_new FROM (");
}

void journal_rekey_end(buf *q, const nodup_db *db) {
  journal_sql(q, db, NULL,
              ") AS u WHERE a.run = ?1 AND a.tbl = ?2 AND a.step > CAST(?3 AS INTEGER) "
              "AND a.keeper = u.nodup_old");
}

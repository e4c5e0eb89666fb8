/*
 * enforce_leftovers.c -- what an interrupted `nodup enforce --online` leaves
 * on a PostgreSQL table, how every command finds it, and how enforce (run
 * again, or with --abort) removes it.
 *
 * An online run commits as it goes: its guard trigger and function, the
 * index it builds CONCURRENTLY (INVALID until the build ends), a
 * partitioned table's leaf indexes. A run that dies (client killed, backend
 * terminated, server restarted) cannot remove them, and the guard goes on
 * serialising writers per key and refusing existing keys. So one catalog
 * read (leftovers_load, the backend's online_leftovers) finds them; the
 * commands that look at a key (key prepare and check, scan, merge) pass
 * what it found on as the connection's notice (nodup_notice) and, when
 * they fail, in their message; enforce removes them before it starts,
 * --abort only removes them. The guard's function carries a comment naming the backend that
 * installed it, so a run that is still going is told from a dead one and
 * never loses its guard under it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enforce_int.h"

/* One thing an online run can leave, one row of leftovers_load. */
typedef struct leftover {
  char kind;      /* 'g' guard trigger, 'f' this table's guard function with no
                   * trigger, 'i' INVALID unique index, 'p' unique index on a
                   * leaf partition that no index of the parent uses */
  char *name;     /* g: trigger; f: function "s"."f"(); i, p: index "s"."i" */
  char *extra;    /* g: its function "s"."f"(); i, p: the index's own name */
  char *cols;     /* g: the columns it guards; i, p: the index's key columns;
                   * joined by '\x1f' ("" for an expression) */
  char *on;       /* i, p: the indexed table or partition, "s"."t" */
  char *relname;  /* i, p: that table's own name */
  int state;      /* g: 1 its run is alive, -1 cannot tell, 0 dead;
                   * i, p: 1 CREATE INDEX is building it right now */
  int ready;      /* i: writes maintain it (and a unique one refuses duplicates) */
  char *pid;      /* g: the backend that installed it, "0" if unknown */
} leftover;

typedef struct leftovers {
  leftover *a;
  size_t n;
  int oom;
} leftovers;

static void leftovers_free(leftovers *l) {
  size_t i;
  for (i = 0; i < l->n; i++) {
    leftover *x = &l->a[i];
    free(x->name);
    free(x->extra);
    free(x->cols);
    free(x->on);
    free(x->relname);
    free(x->pid);
  }
  free(l->a);
  memset(l, 0, sizeof *l);
}

static char *dup_or_empty(const char *s) { return nodup_strdup(s ? s : ""); }

static int read_leftover(void *ctx, int n, const char *const *v) {
  leftovers *l = ctx;
  leftover *a, *x;
  if (n < 9 || !v[0]) return 0;
  if (!(a = realloc(l->a, (l->n + 1) * sizeof *a))) {
    l->oom = 1;
    return 1;
  }
  l->a = a;
  x = &a[l->n++];
  memset(x, 0, sizeof *x);
  x->kind = v[0][0];
  x->name = dup_or_empty(v[1]);
  x->extra = dup_or_empty(v[2]);
  x->cols = dup_or_empty(v[3]);
  x->on = dup_or_empty(v[4]);
  x->relname = dup_or_empty(v[5]);
  x->state = v[6] ? atoi(v[6]) : 0;
  x->ready = v[7] ? atoi(v[7]) : 0;
  x->pid = dup_or_empty(v[8]);
  if (!x->name || !x->extra || !x->cols || !x->on || !x->relname || !x->pid) l->oom = 1;
  return l->oom;
}

/* Where this is worth asking: a backend with online builds (its
 * online_leftovers member reads the catalog), on an engine that runs
 * enforce --online at all (engine.c refuses it on CockroachDB and
 * YugabyteDB, whose catalogs lack some of what the query reads). */
static int leftovers_possible(const nodup_db *db) {
  engine_request r;
  buf m;
  int rc;
  if (!db || !db_can(db, BE_CAP_ONLINE_INDEX)) return 0;
  memset(&r, 0, sizeof r);
  r.op = ENGINE_OP_ENFORCE_ONLINE;
  buf_init(&m);
  rc = engine_refusal(&db->engine, &r, &m);
  buf_free(&m);
  return rc == NODUP_OK;
}

/* The guard's name: one per table, from its quoted name (FNV-1a), so a
 * rerun finds the guard a killed run installed. */
void enforce_guard_name(const nodup_table_info *t, char out[64]) {
  unsigned h = 2166136261u;
  const char *s;
  for (s = t->qualified; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  snprintf(out, 64, "nodup_guard_%08x", h);
}

/*
 * Everything an online run can leave on t, as the backend's
 * online_leftovers reads it from the catalog (PostgreSQL: one query):
 *  g  triggers named like a guard on t, with their function, the columns
 *     they fire on (the key) and whether the backend that installed them
 *     (from the function's comment, enforce_guard_comment) is still there;
 *  f  t's guard function when no trigger uses it (a crash between the two
 *     DROPs of earlier versions, or a hand-dropped trigger);
 *  i  INVALID unique indexes on t and its leaf partitions (a CONCURRENTLY
 *     build that did not end), and whether a build is running now;
 *  p  valid unique indexes on t's leaf partitions that no index of t uses
 *     and no constraint owns (built by a partitioned run before it died).
 * Callers keep the rows that concern their key.
 */
static int leftovers_load(nodup_db *db, const nodup_table_info *t, leftovers *out) {
  char guard[64];
  int rc;
  memset(out, 0, sizeof *out);
  enforce_guard_name(t, guard);
  rc = db_online_leftovers(db, t, guard, read_leftover, out);
  if (rc == NODUP_OK && out->oom) rc = NODUP_ERR_NOMEM;
  if (rc != NODUP_OK) leftovers_free(out);
  return rc;
}

/* Whether one entry of a catalog list, s[0..len), is key term `name`: a
 * column by its name; an expression term (lower("email")) by the
 * catalog's text of the index expression (lower(email)), parsed, or with
 * `columns` (a trigger's UPDATE OF list) by its column. */
static int term_is(const char *s, size_t len, const char *name, int columns) {
  key_term want, got;
  char *col = malloc(strlen(name) + 1), *text = malloc(len + 1);
  buf gotcol;
  int same = 0;
  buf_init(&gotcol);
  if (col && text) {
    memcpy(text, s, len);
    text[len] = '\0';
    if (!keyterm_decode(name, &want, col)) {
      same = !strcmp(text, name);
    } else if (columns) {
      same = !strcmp(text, col);
    } else if (!keyterm_parse(text, 1, &got, &gotcol)) {
      same = got.nfunc == want.nfunc && !memcmp(got.func, want.func, want.nfunc) &&
             !strcmp(buf_str(&gotcol), col);
    }
  }
  buf_free(&gotcol);
  free(col);
  free(text);
  return same;
}

/* Whether the '\x1f'-joined list `cols` holds exactly the key's terms,
 * in any order (the same key given in another order is the same key). */
static int same_columns(const char *cols, char *const *key, size_t nkey, int columns) {
  size_t i, n = 1;
  const char *s, *e;
  if (!*cols) return 0;
  for (s = cols; *s; s++) n += *s == '\x1f';
  if (n != nkey) return 0;
  for (i = 0; i < nkey; i++) {
    int found = 0;
    for (s = cols; s && !found; s = *e ? e + 1 : NULL) {
      e = s + strcspn(s, "\x1f");
      found = term_is(s, (size_t)(e - s), key[i], columns);
    }
    if (!found) return 0;
  }
  return 1;
}

/* A partition index is ours when it has the name online gives it,
 * <partition>_<cols>_key, for its columns in its own order (the run's key
 * order): an index a user made on one partition is not touched. */
static int partition_index_ours(const leftover *x) {
  char *cols[32], *copy = nodup_strdup(x->cols), *s, *name;
  size_t n = 0;
  int ours = 0;
  if (!copy) return 0;
  for (s = copy; s && n < 32; n++) {
    cols[n] = s;
    if ((s = strchr(s, '\x1f'))) *s++ = '\0';
  }
  if (!s && (name = enforce_default_name(x->relname, cols, n))) {
    ours = !strcmp(name, x->extra);
    free(name);
  }
  free(copy);
  return ours;
}

/* Whether guard x guards this key: its trigger fires on the key's columns
 * (UPDATE OF), or on every update (not nodup's making, but named as ours:
 * taken for this key's). */
static int guards_key(const leftover *x, char *const *key, size_t nkey) {
  return !*x->cols || same_columns(x->cols, key, nkey, 1);
}

/* Which rows concern a command on this key: the table's guard and guard
 * function whatever key they are for (writes to the whole table meet
 * them), INVALID unique indexes on exactly the key's columns, and our
 * partition indexes on them. An index being built is a live run's (told
 * with its guard, `running`) or someone else's CREATE INDEX: not ours. */
static int concerns(const leftover *x, char *const *key, size_t nkey, int running) {
  switch (x->kind) {
  case 'g':
  case 'f':
    return 1;
  case 'i':
    return same_columns(x->cols, key, nkey, 0) && (x->state != 1 || running);
  case 'p':
    return same_columns(x->cols, key, nkey, 0) && partition_index_ours(x) &&
           (x->state != 1 || running);
  }
  return 0;
}

/* s as one shell word: as it is when it needs no quoting, else in single
 * quotes with each ' written '\'' (POSIX sh). */
static void shell_word(buf *b, const char *s) {
  const char *c;
  for (c = s; *c; c++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,-/=:", *c))
      break;
  if (*s && !*c) {
    buf_puts(b, s);
    return;
  }
  buf_putc(b, '\'');
  for (c = s; *c; c++) {
    if (*c == '\'') buf_puts(b, "'\\''");
    else buf_putc(b, *c);
  }
  buf_putc(b, '\'');
}

/* "--table s.t --key a,b [--where ...]": the arguments that name the key,
 * for a command line to paste (without --db, which the reader knows). */
static void key_args(buf *b, const nodup_table_info *t, const char *cols, char *const *key,
                     size_t nkey, const char *where) {
  buf w;
  size_t i;
  buf_init(&w);
  if (t->schema) buf_printf(&w, "%s.", t->schema);
  buf_puts(&w, t->name);
  buf_puts(b, "--table ");
  shell_word(b, buf_str(&w));
  buf_reset(&w);
  if (cols && *cols) {
    for (; *cols; cols++) buf_putc(&w, *cols == '\x1f' ? ',' : *cols);
  } else {
    for (i = 0; i < nkey; i++) buf_printf(&w, "%s%s", i ? "," : "", key[i]);
  }
  buf_puts(b, " --key ");
  shell_word(b, buf_str(&w));
  if (where) {
    buf_puts(b, " --where ");
    shell_word(b, where);
  }
  if (w.oom) b->oom = 1;
  buf_free(&w);
}

/* "(a, b)" from a '\x1f'-joined list. */
static void col_list(buf *b, const char *cols) {
  buf_putc(b, '(');
  for (; *cols; cols++) {
    if (*cols == '\x1f') buf_puts(b, ", ");
    else buf_putc(b, *cols);
  }
  buf_putc(b, ')');
}

/* One item of the list of what is left, saying what it does to writers. */
static void describe_item(buf *m, const leftover *x, const nodup_table_info *t) {
  switch (x->kind) {
  case 'g':
    buf_printf(m, "guard trigger %s with its function %s", x->name, x->extra);
    if (*x->cols) {
      buf_puts(m, ", on ");
      col_list(m, x->cols);
    }
    buf_puts(m, " (writers of one key wait for each other on an advisory lock, and a key "
                "already in the table is refused with SQLSTATE 23505, so of concurrent "
                "first inserts of a key all but one fail instead of finding the row)");
    break;
  case 'f':
    buf_printf(m, "guard function %s, which no trigger uses", x->name);
    break;
  case 'i':
    buf_printf(m, "INVALID unique index %s on %s ", x->name, x->on);
    col_list(m, x->cols);
    if (x->state == 1)
      buf_puts(m, " (CREATE INDEX CONCURRENTLY is building it right now)");
    else if (x->ready)
      buf_puts(m, " (queries ignore it, but every write updates it and one that duplicates "
                  "a key in it is refused)");
    else
      buf_puts(m, " (an unfinished build: queries and writes ignore it)");
    break;
  case 'p':
    buf_printf(m, "unique index %s on partition %s ", x->name, x->on);
    col_list(m, x->cols);
    buf_printf(m, ", which no index of %s uses", t->qualified);
    break;
  }
}

/*
 * The sentence for what l (rows of leftovers_load) leaves on t for this
 * key, or nothing. `self`: said by the run that left them ("this run
 * left"), else by a later command ("an interrupted ... left").
 */
static void describe(buf *m, const leftovers *l, const nodup_table_info *t, char *const *key,
                     size_t nkey, const char *where, int self) {
  const leftover *guard = NULL;
  size_t i, items = 0;
  int running = 0, unknown = 0;
  for (i = 0; i < l->n; i++) {
    const leftover *x = &l->a[i];
    running |= x->kind == 'g' && x->state == 1;
    unknown |= x->kind == 'g' && x->state == -1;
  }
  for (i = 0; i < l->n; i++) {
    const leftover *x = &l->a[i];
    if (!concerns(x, key, nkey, running)) continue;
    if (x->kind == 'g' && (!guard || x->state == 1)) guard = x;
    items++;
  }
  if (!items) return;
  if (running)
    buf_printf(m, "a `nodup enforce --online` of %s is running in backend %s and has "
                  "installed: ", t->qualified, guard->pid);
  else if (self)
    buf_printf(m, "this run left on %s: ", t->qualified);
  else
    buf_printf(m, "an interrupted `nodup enforce --online` left on %s: ", t->qualified);
  for (i = 0, items = 0; i < l->n; i++) {
    if (!concerns(&l->a[i], key, nkey, running)) continue;
    if (items++) buf_puts(m, "; ");
    describe_item(m, &l->a[i], t);
  }
  if (running) {
    buf_printf(m, ". Wait for it to end, or stop it (SELECT pg_cancel_backend(%s)) and remove "
                  "what it leaves with `nodup enforce --abort ", guard->pid);
    key_args(m, t, guard->cols, key, nkey, NULL);
    buf_puts(m, "`");
    return;
  }
  if (unknown)
    buf_puts(m, " (installed through a connection pooler, so nodup cannot tell whether that "
                "run still goes on: if it does, let it end)");
  /* The guard's own key when it is not this one: that is the run to
   * finish. Our --where only when the key is ours. */
  {
    int ours = !guard || guards_key(guard, key, nkey);
    const char *cols = ours ? NULL : guard->cols;
    buf_puts(m, ". Finish it with `nodup enforce ");
    key_args(m, t, cols, key, nkey, ours ? where : NULL);
    buf_puts(m, " --online` (with the options it was given, such as --merge) or remove it "
                "with `nodup enforce --abort ");
    key_args(m, t, cols, key, nkey, NULL);
    buf_puts(m, "`");
  }
}

int enforce_leftovers(nodup_db *db, const nodup_table_info *t, char *const *key, size_t nkey,
                      const char *where, int self, buf *msg) {
  leftovers l;
  int rc;
  buf_reset(msg);
  if (!leftovers_possible(db) || !t) return NODUP_OK;
  if ((rc = leftovers_load(db, t, &l)) != NODUP_OK) return rc;
  describe(msg, &l, t, key, nkey, where, self);
  leftovers_free(&l);
  return msg->oom ? NODUP_ERR_NOMEM : NODUP_OK;
}

int enforce_leftovers_note(nodup_db *db, const nodup_table_info *t, char *const *key,
                           size_t nkey, const char *where, int rc) {
  buf m;
  char *err = NULL;
  int lrc;
  if (!db) return rc;
  buf_reset(&db->notice);
  if ((rc != NODUP_OK && rc != NODUP_ERR_UNBACKED) || !leftovers_possible(db) || !t) return rc;
  /* A failed query would replace the refusal's message: keep it. */
  if (rc != NODUP_OK && !(err = nodup_strdup(nodup_errmsg(db)))) return NODUP_ERR_NOMEM;
  buf_init(&m);
  lrc = enforce_leftovers(db, t, key, nkey, where, 0, &m);
  if (err) {
    buf_reset(&db->err);
    buf_puts(&db->err, err);
    free(err);
  }
  if (lrc == NODUP_OK && m.len) {
    buf_puts(&db->notice, buf_str(&m));
    if (rc != NODUP_OK) {
      /* The refusal may end with a sentence or a statement ("...;"). */
      const char *e = buf_str(&db->err);
      size_t n = strlen(e);
      buf_printf(&db->err, "%s%s", n && (e[n - 1] == ';' || e[n - 1] == '.') ? " " : "; ",
                 buf_str(&m));
    }
    if (db->notice.oom || db->err.oom) lrc = NODUP_ERR_NOMEM;
  }
  buf_free(&m);
  return rc != NODUP_OK ? rc : lrc;
}

/* Drop every guard function no trigger uses, on any table: what a crash
 * between dropping a guard's trigger and its function left (earlier versions
 * dropped them in two transactions). Best effort: one that cannot be
 * dropped (another owner) stays and is tried again next time. A guard is
 * created with its trigger in one transaction, so a run installing one now
 * has nothing visible here. */
static int sweep_orphans(nodup_db *db, buf *removed) {
  leftovers l;
  size_t i;
  int rc;
  memset(&l, 0, sizeof l);
  rc = db_orphan_guards(db, read_leftover, &l);
  if (rc == NODUP_OK && l.oom) rc = NODUP_ERR_NOMEM;
  for (i = 0; rc == NODUP_OK && i < l.n; i++) {
    buf q;
    buf_init(&q);
    if (db_online_ddl(db, &q, ONLINE_DROP_FUNCTION, l.a[i].name, NULL, NULL, 0, NULL) ==
            NODUP_OK &&
        db->be->query(db, buf_str(&q), NULL, 0, NULL, NULL) == NODUP_OK)
      buf_printf(removed, "%sorphan guard function %s", removed->len ? "; " : "", l.a[i].name);
    buf_free(&q);
  }
  /* The drops' failures are forgotten; the query's is the caller's. */
  if (rc == NODUP_OK) nodup_clear_error(db);
  leftovers_free(&l);
  return rc;
}

int enforce_drop_index(nodup_db *db, const char *qualified) {
  buf q;
  int rc;
  buf_init(&q);
  rc = db_online_ddl(db, &q, ONLINE_DROP_INDEX, qualified, NULL, NULL, 0, NULL);
  if (rc == NODUP_OK) rc = db->be->query(db, buf_str(&q), NULL, 0, NULL, NULL);
  buf_free(&q);
  return rc;
}

int enforce_leftovers_remove(nodup_db *db, const nodup_table_info *t, char *const *key,
                             size_t nkey, long timeout_ms, unsigned flags, buf *removed) {
  leftovers l;
  buf q;
  const char *ddl[16];
  size_t i, nddl = 0;
  int rc;
  char *owned[16];

  if (!leftovers_possible(db) || !t) return NODUP_OK;
  if ((rc = leftovers_load(db, t, &l)) != NODUP_OK) return rc;
  buf_init(&q);
  for (i = 0; i < l.n; i++) {
    const leftover *x = &l.a[i];
    if (x->kind == 'g' && x->state == 1) {
      rc = nodup_fail(db, NODUP_ERR_RETRY,
                      "a `nodup enforce --online` of %s is running in backend %s (its guard "
                      "trigger %s is in place): wait for it to end, or stop it with SELECT "
                      "pg_cancel_backend(%s) and run this again; nothing changed",
                      t->qualified, x->pid, x->name, x->pid);
      goto done;
    }
  }
  /* Guards and this table's orphan function: one transaction, so no
   * moment leaves a trigger without its function or the reverse. */
  for (i = 0; i < l.n && nddl + 2 <= 16; i++) {
    const leftover *x = &l.a[i];
    int mine = x->kind == 'f' || (x->kind == 'g' && (!(flags & LEFTOVERS_KEY_GUARD_ONLY) ||
                                                     guards_key(x, key, nkey)));
    if (!mine) continue;
    buf_reset(&q);
    if (x->kind == 'g') {
      if ((rc = db_online_ddl(db, &q, ONLINE_DROP_TRIGGER, x->name, t, NULL, 0, NULL)) !=
          NODUP_OK)
        goto done;
      if (!(owned[nddl] = nodup_strdup(buf_str(&q)))) goto oom;
      ddl[nddl] = owned[nddl];
      nddl++;
    }
    buf_reset(&q);
    if ((rc = db_online_ddl(db, &q, ONLINE_DROP_FUNCTION, x->kind == 'g' ? x->extra : x->name,
                            NULL, NULL, 0, NULL)) != NODUP_OK)
      goto done;
    if (!(owned[nddl] = nodup_strdup(buf_str(&q)))) goto oom;
    ddl[nddl] = owned[nddl];
    nddl++;
  }
  if (nddl && (rc = enforce_ddl(db, timeout_ms, ddl, nddl)) != NODUP_OK) goto done;
  for (i = 0; i < l.n; i++) {
    const leftover *x = &l.a[i];
    if (x->kind == 'g' && (!(flags & LEFTOVERS_KEY_GUARD_ONLY) || guards_key(x, key, nkey)))
      buf_printf(removed, "%sguard trigger %s and its function %s", removed->len ? "; " : "",
                 x->name, x->extra);
    else if (x->kind == 'f')
      buf_printf(removed, "%sguard function %s", removed->len ? "; " : "", x->name);
  }
  /* Indexes: CONCURRENTLY, one at a time, never one being built. */
  for (i = 0; i < l.n; i++) {
    const leftover *x = &l.a[i];
    if (x->state == 1 || !(x->kind == 'i' || (x->kind == 'p' && (flags & LEFTOVERS_PARTITIONS))) ||
        !concerns(x, key, nkey, 0))
      continue;
    if ((rc = enforce_drop_index(db, x->name)) != NODUP_OK) goto done;
    buf_printf(removed, "%s%s %s on %s", removed->len ? "; " : "",
               x->kind == 'i' ? "INVALID unique index" : "partition index", x->name, x->on);
  }
  rc = sweep_orphans(db, removed);
  if (rc == NODUP_OK && removed->oom) rc = NODUP_ERR_NOMEM;
  goto done;
oom:
  rc = NODUP_ERR_NOMEM;
done:
  while (nddl) free(owned[--nddl]);
  buf_free(&q);
  leftovers_free(&l);
  return rc;
}

int enforce_guard_comment(nodup_db *db, const char *guard, const char *index, buf *sql) {
  buf note;
  int rc;
  buf_init(&note);
  buf_puts(&note, "nodup enforce --online guard for index ");
  sql_ident(&note, index);
  buf_puts(&note, "; backend ");
  if (db->pooled) {
    /* The next transaction may run in another server session. */
    buf_puts(&note, "pooled");
  } else {
    rc = db_session_id(db, &note);
    if (rc != NODUP_OK) {
      buf_free(&note);
      return rc;
    }
  }
  if (note.oom) sql->oom = 1;
  rc = db_online_ddl(db, sql, ONLINE_GUARD_NOTE, guard, NULL, NULL, 0, buf_str(&note));
  buf_free(&note);
  return rc;
}

void enforce_leftovers_unknown(buf *m, const nodup_table_info *t, char *const *key, size_t nkey,
                               const char *where, const char *why, const char *guard,
                               const char *index, int partitioned) {
  size_t n = why ? strlen(why) : 0;
  /* libpq's messages end with a newline. */
  while (n && (why[n - 1] == '\n' || why[n - 1] == ' ')) n--;
  buf_printf(m, "; could not remove or check what this run left on %s (%.*s)", t->qualified,
             n ? (int)n : 9, n ? why : "no answer");
  if (guard || index) {
    buf_puts(m, ": it may still hold ");
    if (guard)
      buf_printf(m, "guard trigger %s with its function %s() (writers of one key wait for "
                    "each other, and a key already in the table is refused with SQLSTATE "
                    "23505)", guard, guard);
    if (guard && index) buf_puts(m, " and ");
    if (index && partitioned)
      buf_printf(m, "INVALID or unattached unique indexes on its partitions (<partition>_..._key)");
    else if (index)
      buf_printf(m, "INVALID unique index %s", index);
  }
  buf_puts(m, ". Once the server answers, any nodup command on this key says what is there; "
              "`nodup enforce --abort ");
  key_args(m, t, NULL, key, nkey, NULL);
  buf_puts(m, "` removes it and `nodup enforce ");
  key_args(m, t, NULL, key, nkey, where);
  buf_puts(m, " --online` (with the options of this run) finishes it");
}

/*
 * enforce.c -- the last step: a unique index, with no window in which a
 * live writer can slip a duplicate between the clean-up and the index.
 *
 * The window is closed by doing both under one lock (SQLite's write lock;
 * PostgreSQL's SHARE ROW EXCLUSIVE, which lets readers on and queues
 * writers) or, online, by a temporary trigger that does the index's job
 * (one writer per key at a time, duplicates refused with 23505) until the
 * concurrently built index takes over. Everything here is statements
 * around nodup_merge's machinery; the dialect SQL is PostgreSQL's, as only
 * it has the online mode, constraints and NULLS NOT DISTINCT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define ENFORCE_LOCK_TRIES 8
#define ENFORCE_BUILDS 3
#define ENFORCE_DEFAULT_TIMEOUT_MS 2000

typedef struct enforce_ctx {
  nodup_db *db;
  const nodup_enforce_options *opt;
  nodup_enforce_report *rep;
  nodup_table_info *t;
  const char *table;        /* as the caller named it (table_info accepts it) */
  char **key;
  size_t nkey;
  const char *where;
  long timeout;
  char guard[64];           /* online: trigger and function name */
  int partitioned;          /* PostgreSQL: a partitioned table */
  char **parts;             /* online, partitioned: each leaf partition, quoted */
  char **part_index;        /* ... and the name of the index built on it */
  size_t nparts;
  int guarded;              /* online: this run installed its guard (or tried to) */
  int building;             /* online: this run started an index build */
  int told;                 /* the message says what is left already */
  buf removed;              /* leftovers of earlier runs removed (report->removed) */
  fk_gap *gaps;             /* temporary indexes for unindexed references (fkindex.c) */
  size_t ngaps;
} enforce_ctx;

void nodup_enforce_free(nodup_enforce_report *r) {
  if (!r) return;
  free(r->index);
  free(r->removed);
  free(r->temp_indexes);
  free(r);
}

/* One statement (the index's WHERE is the user's): never a multi-statement
 * exec. */
static int exec_buf(nodup_db *db, buf *q) {
  return q->oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(q), NULL, 0, NULL, NULL);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* PostgreSQL's lock_not_available: our lock_timeout ran out. */
static int lock_timed_out(nodup_db *db) { return !strcmp(nodup_sqlstate(db), "55P03"); }

/* Default name: PostgreSQL's for a UNIQUE constraint, <table>_<cols>_key,
 * cut to 63 bytes (NAMEDATALEN - 1) on a character boundary. */
char *enforce_default_name(const char *table, char *const *key, size_t n) {
  buf b;
  size_t i, len;
  char *s;
  buf_init(&b);
  buf_puts(&b, table);
  for (i = 0; i < n; i++) buf_printf(&b, "_%s", key[i]);
  len = b.len > 59 ? 59 : b.len;
  while (len && b.len > len && ((unsigned char)b.p[len] & 0xC0) == 0x80) len--;
  s = b.oom ? NULL : malloc(len + 5);
  if (s) {
    memcpy(s, b.p, len);
    memcpy(s + len, "_key", 5);
  }
  buf_free(&b);
  return s;
}

static int count_groups(enforce_ctx *c, long long *n) {
  buf q;
  int rc;
  buf_init(&q);
  buf_printf(&q, "SELECT count(*) FROM (SELECT 1 FROM %s WHERE ", c->t->qualified);
  sql_key_filter(&q, c->key, c->nkey, c->where, c->opt->nulls_equal, NULL);
  buf_puts(&q, " GROUP BY ");
  sql_ident_list(&q, c->key, c->nkey);
  buf_puts(&q, " HAVING count(*) > 1) AS nodup_g");
  rc = q.oom ? NODUP_ERR_NOMEM : c->db->be->query(c->db, buf_str(&q), NULL, 0, db_read_count, n);
  buf_free(&q);
  return rc;
}

/* Inside the lock (or online, between steps): refuse or merge what
 * duplicates there are. `bounded`: merge only as many groups as exist
 * now (online, before the guard: writers may add groups as fast as a
 * merge removes them). */
static int clean(enforce_ctx *c, int in_txn, int bounded) {
  nodup_merge_options mo = c->opt->merge_opt;
  nodup_merge_report *m = NULL;
  long long groups = 0;
  int rc;
  if ((rc = count_groups(c, &groups)) != NODUP_OK) return rc;
  if (!groups) return NODUP_OK;
  if (!c->opt->merge)
    return nodup_fail(c->db, NODUP_ERR_DUPLICATE,
                      "%s has %lld duplicate group(s) on (%s...): merge them first "
                      "(nodup merge, or enforce --merge); nothing changed",
                      c->t->qualified, groups, c->key[0]);
  mo.nulls_equal = c->opt->nulls_equal;
  mo.dry_run = 0;
  if (in_txn)
    rc = merge_run(&m, c->db, c->table, (const char *const *)c->key, c->nkey, c->where, &mo,
                   MERGE_ONE_TRANSACTION, NULL);
  else if (bounded)
    rc = merge_run(&m, c->db, c->table, (const char *const *)c->key, c->nkey, c->where, &mo,
                   MERGE_ONE_PASS, NULL);
  else
    rc = nodup_merge(&m, c->db, c->table, (const char *const *)c->key, c->nkey, c->where, &mo);
  if (rc == NODUP_OK) {
    c->rep->merged_groups += m->groups;
    snprintf(c->rep->run, sizeof c->rep->run, "%s", m->run);
  }
  nodup_merge_free(m);
  return rc;
}

static void index_ddl_on(enforce_ctx *c, buf *q, int concurrently, const char *name,
                         const char *table) {
  buf_printf(q, "CREATE UNIQUE INDEX %s", concurrently ? "CONCURRENTLY " : "");
  sql_ident(q, name);
  buf_printf(q, " ON %s (", table);
  sql_ident_list(q, c->key, c->nkey);
  buf_putc(q, ')');
  if (c->opt->nulls_equal) buf_puts(q, " NULLS NOT DISTINCT");
  if (c->where) buf_printf(q, " WHERE (%s)", c->where);
}

static void index_ddl(enforce_ctx *c, buf *q, int concurrently) {
  index_ddl_on(c, q, concurrently, c->rep->index, c->t->qualified);
}

/* A constraint (what ORMs and \d show) can only use a plain index. */
static void using_index_ddl(enforce_ctx *c, buf *q) {
  buf_printf(q, "ALTER TABLE %s ADD CONSTRAINT ", c->t->qualified);
  sql_ident(q, c->rep->index);
  buf_puts(q, " UNIQUE USING INDEX ");
  sql_ident(q, c->rep->index);
}

static int attach_constraint(enforce_ctx *c) {
  buf q;
  int rc;
  if (!db_can(c->db, BE_CAP_CONSTRAINTS) || c->where) return NODUP_OK;
  buf_init(&q);
  using_index_ddl(c, &q);
  rc = exec_buf(c->db, &q);
  if (rc == NODUP_OK) c->rep->constraint = 1;
  buf_free(&q);
  return rc;
}

/* ALTER TABLE ... ADD CONSTRAINT name UNIQUE (key): on a partitioned
 * table the only way to a constraint (USING INDEX is not supported there);
 * PostgreSQL attaches a matching index each partition already has instead
 * of building one. */
static void constraint_ddl(enforce_ctx *c, buf *q) {
  buf_printf(q, "ALTER TABLE %s ADD CONSTRAINT ", c->t->qualified);
  sql_ident(q, c->rep->index);
  buf_puts(q, c->opt->nulls_equal ? " UNIQUE NULLS NOT DISTINCT (" : " UNIQUE (");
  sql_ident_list(q, c->key, c->nkey);
  buf_putc(q, ')');
}

static int set_lock_timeout(enforce_ctx *c) {
  char sql[64];
  snprintf(sql, sizeof sql, "SET LOCAL lock_timeout = %ld", c->timeout);
  return c->db->be->exec(c->db, sql);
}

/* One transaction under the table lock: clean, index, constraint. A lock
 * not granted within lock_timeout is retried after a back-off, so the
 * writers queued behind our request never wait longer than that. */
static int locked(enforce_ctx *c) {
  nodup_db *db = c->db;
  buf q;
  int rc = NODUP_OK, attempt;
  buf_init(&q);
  for (attempt = 0; attempt < ENFORCE_LOCK_TRIES; attempt++) {
    double held = 0;
    if (attempt) sleep_ms(50L << (attempt < 5 ? attempt : 5));
    rc = db->be->begin_write_urgent ? db->be->begin_write_urgent(db, c->timeout)
                                    : db->be->exec(db, db->be->begin_write);
    if (rc == NODUP_ERR_RETRY && !db_can(db, BE_CAP_TABLE_LOCKS)) {
      /* SQLite: busy until the deadline; back off and ask again. */
      rc = nodup_fail(db, NODUP_ERR_RETRY,
                      "could not get the write lock on %s within %ld ms in %d tries: "
                      "writers kept it busy",
                      c->t->qualified, c->timeout, attempt + 1);
      continue;
    }
    if (rc != NODUP_OK) break;
    if (db_can(db, BE_CAP_TABLE_LOCKS)) {
      buf_reset(&q);
      buf_printf(&q, "LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE", c->t->qualified);
      if ((rc = set_lock_timeout(c)) == NODUP_OK) rc = exec_buf(db, &q);
    }
    if (rc == NODUP_OK) held = now_ms();
    if (rc == NODUP_OK) rc = clean(c, 1, 0);
    /* A merge's deletes and updates queue the checks of DEFERRABLE
     * INITIALLY DEFERRED foreign keys (every Django foreign key) until
     * COMMIT, and PostgreSQL refuses to build an index on a table with
     * pending trigger events (55006): run the checks now. */
    if (rc == NODUP_OK && db_can(db, BE_CAP_DEFERRABLE_FKS))
      rc = db->be->exec(db, "SET CONSTRAINTS ALL IMMEDIATE");
    if (rc == NODUP_OK && c->partitioned && !c->where) {
      buf_reset(&q);
      constraint_ddl(c, &q);
      if ((rc = exec_buf(db, &q)) == NODUP_OK) c->rep->constraint = 1;
    } else if (rc == NODUP_OK) {
      buf_reset(&q);
      index_ddl(c, &q, 0);
      rc = exec_buf(db, &q);
      if (rc == NODUP_OK) rc = attach_constraint(c);
    }
    if (rc == NODUP_OK && !c->opt->dry_run) rc = db->be->exec(db, "COMMIT");
    if (held > 0 && rc == NODUP_OK && !c->opt->dry_run) c->rep->lock_ms += now_ms() - held;
    if (rc == NODUP_OK && !c->opt->dry_run) break;
    {
      int retry = rc != NODUP_OK && db_can(db, BE_CAP_TABLE_LOCKS) && lock_timed_out(db);
      db_rollback(db, rc);
      if (held > 0) c->rep->lock_ms += now_ms() - held;
      if (!retry) break;
      rc = nodup_fail(db, NODUP_ERR_RETRY,
                      "could not lock %s within %ld ms in %d tries: writers kept it busy",
                      c->t->qualified, c->timeout, ENFORCE_LOCK_TRIES);
    }
  }
  buf_free(&q);
  return rc;
}

/*
 * Before any lock: when there are duplicates to merge, build the supporting
 * indexes the merge's deletes need (fkindex.c: without one, each deleted
 * loser reads its referencing table whole, under the lock), then merge the
 * groups there are now in batches, while writers go on. The locked step
 * (or online's guard) is left only the groups writers made meanwhile and
 * the index build, so the lock is held for seconds, not for the merge.
 * (Online mode's own first pass is the same pass; a dry run merges inside
 * its one rolled-back transaction instead.)
 */
static int before_lock(enforce_ctx *c) {
  nodup_db *db = c->db;
  const nodup_merge_options *mo = &c->opt->merge_opt;
  nodup_fk_info *fks = NULL, *extra = NULL;
  size_t nfks = 0, nextra = 0, i;
  long long groups = 0;
  int rc;
  if (!c->opt->merge || c->opt->dry_run) return NODUP_OK;
  if ((rc = count_groups(c, &groups)) != NODUP_OK || !groups) return rc;
  if (!mo->no_temp_index) {
    if (!(extra = calloc(mo->nrefs + 1, sizeof *extra))) return NODUP_ERR_NOMEM;
    rc = db->be->references(db, c->t, &fks, &nfks);
    for (i = 0; rc == NODUP_OK && i < mo->nrefs; i++, nextra++)
      rc = fk_parse_ref(db, c->t, mo->refs[i] ? mo->refs[i] : "", &extra[i]);
    if (rc == NODUP_OK) rc = fkindex_plan(db, fks, nfks, extra, nextra, &c->gaps, &c->ngaps);
    if (rc == NODUP_OK) rc = fkindex_build(db, c->gaps, c->ngaps);
    if (rc == NODUP_OK && c->ngaps) {
      buf d;
      buf_init(&d);
      fkindex_describe(&d, c->gaps, c->ngaps);
      if (d.oom || !(c->rep->temp_indexes = nodup_strdup(buf_str(&d)))) rc = NODUP_ERR_NOMEM;
      buf_free(&d);
    }
    fk_info_free(fks, nfks);
    fk_info_free(extra, nextra);
    if (rc != NODUP_OK) return rc;
  }
  if (c->opt->online) return NODUP_OK;   /* online() starts with this very pass */
  return clean(c, 0, 1);
}

/* ---- online (PostgreSQL) ---- */

/* A short DDL transaction with lock_timeout, retried like locked(). Each
 * statement alone (some carry the user's WHERE): never a multi-statement
 * exec. */
int enforce_ddl(nodup_db *db, long timeout_ms, const char *const *sql, size_t n) {
  char timeout[64];
  size_t i;
  int rc = NODUP_OK, attempt;
  snprintf(timeout, sizeof timeout, "SET LOCAL lock_timeout = %ld", timeout_ms);
  for (attempt = 0; attempt < ENFORCE_LOCK_TRIES; attempt++) {
    if (attempt) sleep_ms(50L << (attempt < 5 ? attempt : 5));
    if ((rc = db->be->exec(db, "BEGIN")) != NODUP_OK) return rc;
    rc = db->be->exec(db, timeout);
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

static int ddl_retry(enforce_ctx *c, const char *sql) {
  return enforce_ddl(c->db, c->timeout, &sql, 1);
}

/* The guard trigger: for each new or re-keyed row inside the predicate,
 * take a transaction-scoped advisory lock on the key's value (writers of
 * one key go one at a time) and refuse the row if the key is taken, as
 * the unique index will. Each statement of a plpgsql function sees rows
 * committed before it started, so the second writer sees the first's row
 * once the lock is his (READ COMMITTED; a stricter writer that slips
 * through makes the index build fail, which is retried). */
static int guard_install(enforce_ctx *c) {
  const nodup_table_info *t = c->t;
  buf q, comment, trigger;
  const char *sql[3];
  size_t i;
  int rc;

  buf_init(&q);
  buf_printf(&q, "CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $nodup$ BEGIN IF ",
             c->guard);
  for (i = 0; i < c->nkey && !c->opt->nulls_equal; i++) {
    buf_puts(&q, "NEW.");
    sql_ident(&q, c->key[i]);
    buf_puts(&q, " IS NOT NULL AND ");
  }
  if (c->where)
    buf_printf(&q, "EXISTS (SELECT 1 FROM (SELECT NEW.*) AS nodup_new WHERE (%s))", c->where);
  else
    buf_puts(&q, "TRUE");
  buf_puts(&q, " THEN PERFORM pg_advisory_xact_lock(hashtextextended(ROW(");
  for (i = 0; i < c->nkey; i++) {
    buf_puts(&q, i ? ", NEW." : "NEW.");
    sql_ident(&q, c->key[i]);
  }
  buf_printf(&q, ")::text, TG_RELID::bigint)); IF EXISTS (SELECT 1 FROM %s AS nodup_o WHERE ",
             t->qualified);
  for (i = 0; i < c->nkey; i++) {
    buf_puts(&q, i ? " AND nodup_o." : "nodup_o.");
    sql_ident(&q, c->key[i]);
    buf_puts(&q, c->opt->nulls_equal ? " IS NOT DISTINCT FROM NEW." : " = NEW.");
    sql_ident(&q, c->key[i]);
  }
  if (c->where) buf_printf(&q, " AND (%s)", c->where);
  /* An UPDATE must not find its own row. */
  buf_puts(&q, " AND (TG_OP = 'INSERT' OR (");
  for (i = 0; i < t->npk; i++) {
    buf_puts(&q, i ? ", nodup_o." : "nodup_o.");
    sql_ident(&q, t->pk[i]);
  }
  buf_puts(&q, ") IS DISTINCT FROM (");
  for (i = 0; i < t->npk; i++) {
    buf_puts(&q, i ? ", OLD." : "OLD.");
    sql_ident(&q, t->pk[i]);
  }
  buf_puts(&q, "))) THEN RAISE unique_violation USING MESSAGE = ");
  {
    /* The message names the index being built, as its violation will,
     * and the guard, for whoever meets one that a dead run left. */
    buf m;
    buf_init(&m);
    buf_puts(&m, "duplicate key value violates unique constraint \"");
    buf_puts(&m, c->rep->index);
    buf_printf(&m, "\" (nodup enforce is building it; refused by its guard trigger %s, which "
                   "`nodup enforce --abort` removes if no enforce of this table is running)",
               c->guard);
    sql_name_literal(&q, buf_str(&m));
    /* The index's name as the violation's constraint, as the index itself
     * will report it: get-or-create then knows this refusal is its own
     * key's (a lost race to absorb), not another constraint's. */
    buf_puts(&q, ", CONSTRAINT = ");
    sql_name_literal(&q, c->rep->index);
    if (m.oom) q.oom = 1;
    buf_free(&m);
  }
  buf_puts(&q, "; END IF; END IF; RETURN NEW; END $nodup$");
  buf_init(&comment);
  buf_init(&trigger);
  if ((rc = enforce_guard_comment(c->db, c->guard, c->rep->index, &comment)) != NODUP_OK) goto done;
  buf_printf(&trigger, "CREATE TRIGGER %s BEFORE INSERT OR UPDATE OF ", c->guard);
  sql_ident_list(&trigger, c->key, c->nkey);
  buf_printf(&trigger, " ON %s FOR EACH ROW EXECUTE FUNCTION %s()", t->qualified, c->guard);
  /* One transaction: no moment shows a function without its trigger,
   * which the next enforce anywhere would take for an orphan. */
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

/* Drop an INVALID index of ours (a failed CONCURRENTLY build leaves one). */
static int drop_invalid_index(enforce_ctx *c) {
  nodup_db *db = c->db;
  long long invalid = 0;
  const char *p[2] = {c->t->qualified, c->rep->index};
  buf q;
  int rc;
  buf_init(&q);
  rc = db->be->query(db,
                       "SELECT count(*) FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class x "
                       "ON x.oid = i.indexrelid WHERE i.indrelid = $1::regclass "
                       "AND x.relname = $2 AND NOT i.indisvalid",
                       p, 2, db_read_count, &invalid);
  if (rc == NODUP_OK && invalid) {
    buf_reset(&q);
    buf_puts(&q, "DROP INDEX CONCURRENTLY IF EXISTS ");
    /* The index lives in the table's schema. */
    {
      const char *dot = strstr(c->t->qualified, "\".\"");
      if (dot) buf_printf(&q, "%.*s.", (int)(dot - c->t->qualified + 1), c->t->qualified);
    }
    sql_ident(&q, c->rep->index);
    rc = exec_buf(db, &q);
  }
  buf_free(&q);
  return rc;
}

/* Drop the guard (trigger and function, in one transaction) and INVALID
 * indexes on the key: leftovers of a failed or interrupted run, or this
 * run's own. `removed` gets what was there (NULL: this run's, not told). */
static int online_cleanup(enforce_ctx *c, buf *removed) {
  nodup_db *db = c->db;
  buf ignored;
  int rc;
  if (db->be->reconnect && (rc = db->be->reconnect(db)) != NODUP_OK) return rc;
  buf_init(&ignored);
  rc = enforce_leftovers_remove(db, c->t, c->key, c->nkey, c->timeout, 0,
                                removed ? removed : &ignored);
  buf_free(&ignored);
  return rc;
}

/* ---- partitioned tables (PostgreSQL) ---- */

typedef struct name_list {
  char **a, **b;            /* two columns per row */
  size_t n;
  int oom;
} name_list;

static int read_names(void *ctx, int n, const char *const *v) {
  name_list *l = ctx;
  char **a = realloc(l->a, (l->n + 1) * sizeof *a), **b;
  if (a) l->a = a;
  b = a ? realloc(l->b, (l->n + 1) * sizeof *b) : NULL;
  if (b) l->b = b;
  if (!a || !b) {
    l->oom = 1;
    return 1;
  }
  l->a[l->n] = nodup_strdup(v[0] ? v[0] : "");
  l->b[l->n] = nodup_strdup(n > 1 && v[1] ? v[1] : "");
  if (!l->a[l->n] || !l->b[l->n]) {
    free(l->a[l->n]);
    free(l->b[l->n]);
    l->oom = 1;
    return 1;
  }
  l->n++;
  return 0;
}

static void name_list_free(name_list *l) {
  size_t i;
  for (i = 0; i < l->n; i++) {
    free(l->a[i]);
    free(l->b[i]);
  }
  free(l->a);
  free(l->b);
  memset(l, 0, sizeof *l);
}

/*
 * Is T partitioned? Then a unique index on it must contain the partition
 * key (each partition can only check its own rows): refuse now, naming the
 * column, rather than after a merge. Both modes.
 */
static int partition_check(enforce_ctx *c) {
  nodup_db *db = c->db;
  const char *p[1] = {c->t->qualified};
  long long kind = 0;
  name_list cols;
  size_t i, j;
  int rc;
  memset(&cols, 0, sizeof cols);
  rc = db->be->query(db, "SELECT count(*) FROM pg_catalog.pg_class WHERE oid = $1::regclass "
                         "AND relkind = 'p'", p, 1, db_read_count, &kind);
  if (rc != NODUP_OK || !kind) return rc;
  c->partitioned = 1;
  rc = db->be->query(db,
                     "SELECT coalesce(a.attname::text, '') FROM pg_catalog.pg_partitioned_table pt "
                     "CROSS JOIN LATERAL unnest(pt.partattrs::int2[]) AS k(n) "
                     "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = pt.partrelid "
                     "AND a.attnum = k.n WHERE pt.partrelid = $1::regclass",
                     p, 1, read_names, &cols);
  if (rc == NODUP_OK && cols.oom) rc = NODUP_ERR_NOMEM;
  for (i = 0; rc == NODUP_OK && i < cols.n; i++) {
    int found = 0;
    for (j = 0; j < c->nkey; j++) found |= !strcmp(cols.a[i], c->key[j]);
    if (!found)
      rc = nodup_fail(db, NODUP_ERR_USAGE,
                      "%s is partitioned by %s, which is not in the key: PostgreSQL can only "
                      "enforce a unique key on a partitioned table when it contains the "
                      "partition key; nothing changed",
                      c->t->qualified, *cols.a[i] ? cols.a[i] : "an expression");
  }
  name_list_free(&cols);
  return rc;
}

/* The leaf partitions, quoted, and the index each gets (PostgreSQL's own
 * name for it: <partition>_<cols>_key). */
static int partitions_load(enforce_ctx *c) {
  nodup_db *db = c->db;
  const char *p[1] = {c->t->qualified};
  name_list l;
  size_t i;
  int rc;
  memset(&l, 0, sizeof l);
  rc = db->be->query(db,
                     "SELECT format('%I.%I', n.nspname, r.relname), r.relname "
                     "FROM pg_partition_tree($1::regclass) AS t "
                     "JOIN pg_catalog.pg_class r ON r.oid = t.relid "
                     "JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace "
                     "WHERE t.isleaf ORDER BY 1",
                     p, 1, read_names, &l);
  if (rc == NODUP_OK && l.oom) rc = NODUP_ERR_NOMEM;
  if (rc != NODUP_OK) {
    name_list_free(&l);
    return rc;
  }
  c->parts = l.a;
  c->nparts = l.n;
  c->part_index = calloc(l.n + 1, sizeof *c->part_index);
  rc = c->part_index ? NODUP_OK : NODUP_ERR_NOMEM;
  for (i = 0; rc == NODUP_OK && i < l.n; i++)
    if (!(c->part_index[i] = enforce_default_name(l.b[i], c->key, c->nkey))) rc = NODUP_ERR_NOMEM;
  for (i = 0; i < l.n; i++) free(l.b[i]);
  free(l.b);
  return rc;
}

static void partitions_free(enforce_ctx *c) {
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
  const char *p[2] = {c->parts[i], c->part_index[i]};
  name_list l;
  int rc;
  memset(&l, 0, sizeof l);
  *qualified = NULL;
  rc = c->db->be->query(c->db,
                        "SELECT format('%I.%I', n.nspname, x.relname), i.indisvalid::int "
                        "FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class x "
                        "ON x.oid = i.indexrelid JOIN pg_catalog.pg_namespace n "
                        "ON n.oid = x.relnamespace WHERE i.indrelid = $1::regclass "
                        "AND x.relname = $2 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h "
                        "WHERE h.inhrelid = i.indexrelid)",
                        p, 2, read_names, &l);
  if (rc == NODUP_OK && l.oom) rc = NODUP_ERR_NOMEM;
  if (rc == NODUP_OK && l.n) {
    *qualified = l.a[0];
    *valid = !strcmp(l.b[0], "1");
    l.a[0] = NULL;
  }
  name_list_free(&l);
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
    if (!valid || (built && built[i])) {
      buf q;
      buf_init(&q);
      buf_printf(&q, "DROP INDEX CONCURRENTLY IF EXISTS %s", name);
      rc = exec_buf(c->db, &q);
      buf_free(&q);
    }
    free(name);
  }
  return rc;
}

/* Step 3 of online, CONCURRENTLY: a plain table's index, or each leaf
 * partition's (one there already is kept: the parent will take it).
 * built[i]: partition i's index is this run's. */
static int online_build(enforce_ctx *c, int *built) {
  buf q;
  size_t i;
  int rc = NODUP_OK;
  buf_init(&q);
  c->building = 1;
  if (!c->partitioned) {
    index_ddl(c, &q, 1);
    rc = exec_buf(c->db, &q);
  }
  for (i = 0; c->partitioned && i < c->nparts && rc == NODUP_OK; i++) {
    char *name = NULL;
    int valid = 0;
    if ((rc = partition_index(c, i, &name, &valid)) != NODUP_OK) break;
    free(name);
    if (name && valid) continue;
    buf_reset(&q);
    index_ddl_on(c, &q, 1, c->part_index[i], c->parts[i]);
    if ((rc = exec_buf(c->db, &q)) == NODUP_OK) built[i] = 1;
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
  buf_init(&q);
  if (c->partitioned && c->where) index_ddl(c, &q, 0);
  else if (c->partitioned) constraint_ddl(c, &q);
  else if (!c->where) using_index_ddl(c, &q);
  if (q.len || q.oom) rc = q.oom ? NODUP_ERR_NOMEM : ddl_retry(c, buf_str(&q));
  if (rc == NODUP_OK) c->rep->constraint = !c->where;
  buf_free(&q);
  return rc;
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
  if (m.oom) {
    buf_free(&m);
    return NODUP_ERR_NOMEM;
  }
  buf_free(&db->err);
  db->err = m;
  return rc;
}

static int online(enforce_ctx *c) {
  nodup_db *db = c->db;
  int *built = NULL;
  int rc, crc;

  if (c->partitioned && (rc = partitions_load(c)) != NODUP_OK) return rc;
  if (!(built = calloc(c->nparts + 1, sizeof *built))) return NODUP_ERR_NOMEM;
  /* (nodup_enforce removed an interrupted run's guard and INVALID indexes.) */
  if ((rc = partitions_cleanup(c, NULL)) != NODUP_OK) goto fail;
  /* 1: the bulk of the merge, in batches, writers running: one pass over
   * the groups there are now. */
  if ((rc = clean(c, 0, 1)) != NODUP_OK) goto fail;
  /* 2: from now on no writer adds a duplicate; merge what slipped in.
   * (Counted as there from the first try: a failed COMMIT may have made
   * it.) */
  c->guarded = 1;
  if ((rc = guard_install(c)) != NODUP_OK) goto fail;
  for (;;) {
    if ((rc = clean(c, 0, 0)) != NODUP_OK) goto fail;
    /* 3: the index, without blocking writers. */
    c->rep->builds++;
    if ((rc = online_build(c, built)) == NODUP_OK) break;
    {
      /* A duplicate the guard could not stop (a writer outside READ
       * COMMITTED): drop what the build left, keep the guard, merge, retry. */
      db_error e;
      int again = !strcmp(nodup_sqlstate(db), "23505");
      db_error_save(db, &e);
      crc = partitions_cleanup(c, built);
      if (crc == NODUP_OK) crc = drop_invalid_index(c);
      db_error_restore(db, rc, &e);
      memset(built, 0, (c->nparts + 1) * sizeof *built);
      if (crc != NODUP_OK || !again) goto fail;
    }
    if (c->rep->builds >= ENFORCE_BUILDS) {
      /* Such writers keep racing the guard: finish under the lock. */
      c->rep->fell_back = 1;
      if ((rc = locked(c)) != NODUP_OK) goto fail;
      goto done;
    }
  }
  if ((rc = online_finish(c)) != NODUP_OK) goto fail;
done:
  c->building = 0;   /* the index is built and valid */
  if ((rc = online_cleanup(c, NULL)) != NODUP_OK) {
    char *cmsg = nodup_strdup(nodup_errmsg(db));
    buf m;
    buf_init(&m);
    buf_printf(&m, "index %s is built and enforces the key, but removing the guard failed: %s",
               c->rep->index, cmsg ? cmsg : nodup_strerror(rc));
    rc = left_behind(c, rc, m.oom ? NULL : buf_str(&m), rc, cmsg);
    buf_free(&m);
    free(cmsg);
    c->told = 1;
  }
  free(built);
  return rc;
fail:
  {
    /* Clean up on a connection that works (the server may have dropped
     * ours), then say exactly what is left, from the catalog. */
    char *msg = nodup_strdup(nodup_errmsg(db)), *cmsg = NULL;
    crc = db->be->reconnect ? db->be->reconnect(db) : NODUP_OK;
    if (crc == NODUP_OK && c->partitioned) crc = partitions_cleanup(c, built);
    if (crc == NODUP_OK) crc = online_cleanup(c, NULL);
    if (crc != NODUP_OK) cmsg = nodup_strdup(nodup_errmsg(db));
    rc = left_behind(c, rc, msg, crc, cmsg);
    free(msg);
    free(cmsg);
    c->told = 1;
  }
  free(built);
  return rc;
}

/* Whether t has a valid index named `index` that no constraint uses. */
static int bare_index(enforce_ctx *c, const char *index, long long *bare) {
  const char *p[2] = {c->t->qualified, index};
  *bare = 0;
  return c->db->be->query(c->db,
                          "SELECT count(*) FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class x "
                          "ON x.oid = i.indexrelid WHERE i.indrelid = $1::regclass "
                          "AND x.relname = $2 AND i.indisvalid AND NOT EXISTS (SELECT 1 FROM "
                          "pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid)",
                          p, 2, db_read_count, bare);
}

/*
 * The key is backed already. An online run killed after its index was
 * built leaves two things behind: its guard trigger (removed by
 * nodup_enforce before this, with the other leftovers) and, for a key
 * without predicate, the constraint it never attached. Attach it when the
 * index has the name this run would give it and no constraint uses it
 * yet. Anything else is the user's index: reported, not touched. *changed
 * tells whether the constraint was attached.
 */
static int finish_interrupted(enforce_ctx *c, const char *index, int *changed) {
  long long bare = 0;
  int rc;
  *changed = 0;
  if (!db_can(c->db, BE_CAP_ONLINE_INDEX) || c->opt->dry_run) return NODUP_OK;
  /* (A partitioned table's constraint comes with its index, never after.) */
  if (c->where || c->partitioned || strcmp(index, c->rep->index) != 0) return NODUP_OK;
  rc = bare_index(c, index, &bare);
  if (rc == NODUP_OK && bare) {
    buf q;
    buf_init(&q);
    using_index_ddl(c, &q);   /* index is c->rep->index (checked above) */
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
 * enforce` attaches its constraint.
 */
static int abort_run(enforce_ctx *c) {
  nodup_db *db = c->db;
  buf left;
  long long bare = 0;
  int rc;
  rc = enforce_leftovers_remove(db, c->t, c->key, c->nkey, c->timeout,
                                LEFTOVERS_KEY_GUARD_ONLY | LEFTOVERS_PARTITIONS, &c->removed);
  c->told = 1;
  if (rc != NODUP_OK) return rc;
  /* What stays: a guard of another key, an index being built. */
  buf_init(&left);
  rc = enforce_leftovers(db, c->t, c->key, c->nkey, c->where, 0, &left);
  if (rc == NODUP_OK && !c->where && !c->partitioned) rc = bare_index(c, c->rep->index, &bare);
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

int nodup_enforce(nodup_enforce_report **out, nodup_db *db, const char *table,
                  const char *const *cols, size_t ncols, const char *where,
                  const nodup_enforce_options *opt) {
  nodup_enforce_options none;
  nodup_key *k = NULL;
  enforce_ctx c;
  size_t i;
  int rc;

  if (!out) return NODUP_ERR_USAGE;
  *out = NULL;
  if (!db || !db->native || !table || !cols || !ncols)
    return db ? nodup_fail(db, NODUP_ERR_USAGE, "enforce needs a table and key columns")
              : NODUP_ERR_USAGE;
  memset(&none, 0, sizeof none);
  if (!opt) opt = &none;
  if (where && !*where) where = NULL;
  nodup_clear_error(db);
  if (options_check(db, opt->version, NODUP_ENFORCE_OPTIONS_VERSION, "nodup_enforce_options") ||
      options_check(db, opt->merge_opt.version, NODUP_MERGE_OPTIONS_VERSION,
                    "nodup_enforce_options.merge_opt"))
    return NODUP_ERR_USAGE;
  buf_reset(&db->notice);
  memset(&c, 0, sizeof c);
  c.db = db;
  c.opt = opt;
  c.table = table;
  c.where = where;
  c.timeout = opt->lock_timeout_ms > 0 ? opt->lock_timeout_ms : ENFORCE_DEFAULT_TIMEOUT_MS;
  buf_init(&c.removed);
  if (db->be->in_transaction(db))
    return nodup_fail(db, NODUP_ERR_USAGE, "enforce runs its own transactions: call it outside one");
  if (opt->abort && !db_can(db, BE_CAP_ONLINE_INDEX))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "--abort removes what an interrupted --online run left, and SQLite has "
                      "no online mode (one transaction does it all): there is nothing to remove");
  if (opt->abort && (opt->merge || opt->online || opt->dry_run))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "--abort only removes what an interrupted --online run left: it takes "
                      "no --merge, --online or --dry-run");
  if (opt->nulls_equal && !db_can(db, BE_CAP_NULLS_NOT_DISTINCT))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "SQLite has no NULLS NOT DISTINCT index: a unique index there always "
                      "lets NULL keys repeat; enforce without --nulls-equal");
  if (opt->nulls_equal && db->server_version < 150000 && !opt->abort)
    return nodup_fail(db, NODUP_ERR_USAGE, "NULLS NOT DISTINCT needs PostgreSQL 15 or later");
  if (opt->online && !db_can(db, BE_CAP_ONLINE_INDEX))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "--online is for PostgreSQL; SQLite's write lock makes the whole step atomic");
  if (opt->online && opt->dry_run)
    return nodup_fail(db, NODUP_ERR_USAGE, "--online cannot be a dry run: it commits as it goes");

  if (!(c.rep = calloc(1, sizeof *c.rep))) return NODUP_ERR_NOMEM;
  if ((rc = db->be->table_info(db, table, &c.t)) != NODUP_OK) goto done;
  if ((rc = table_info_key(db, c.t, cols, ncols, &c.key, NULL)) != NODUP_OK) goto done;
  c.nkey = ncols;
  if ((rc = userexpr_check(db, c.t, where, 0, "--where")) != NODUP_OK) goto done;
  c.rep->index = opt->name && *opt->name ? nodup_strdup(opt->name)
                                         : enforce_default_name(c.t->name, c.key, ncols);
  if (!c.rep->index) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  enforce_guard_name(c.t, c.guard);
  if (opt->abort) {
    /* Removing is allowed wherever the run could have been (no engine
     * or partition-key refusal stands between a user and a leftover). */
    if (db_can(db, BE_CAP_PARTITIONS) && (rc = partition_check(&c)) == NODUP_ERR_USAGE) {
      rc = NODUP_OK;
      nodup_clear_error(db);
    }
    if (rc == NODUP_OK) rc = abort_run(&c);
    goto done;
  }

  if (db_can(db, BE_CAP_PARTITIONS) && (rc = partition_check(&c)) != NODUP_OK) goto done;
  rc = engine_check(db, c.t, opt->online ? ENGINE_OP_ENFORCE_ONLINE : ENGINE_OP_ENFORCE_LOCKED,
                    c.key, ncols);
  if (rc == NODUP_OK && opt->merge) rc = engine_check(db, c.t, ENGINE_OP_MERGE, c.key, ncols);
  if (rc != NODUP_OK) goto done;

  /* What an interrupted online run left goes first, in either mode: its
   * guard would outlive this run, its INVALID index take this one's name.
   * A dry run changes nothing: its message or notice lists them. */
  if (db_can(db, BE_CAP_ONLINE_INDEX) && !opt->dry_run) {
    rc = enforce_leftovers_remove(db, c.t, c.key, c.nkey, c.timeout, 0, &c.removed);
    if (rc != NODUP_OK) {
      c.told = 1;
      goto done;
    }
  }

  /* Already backed (with the NULL semantics asked for)? Then done, once
   * an interrupted run of ours is finished. */
  rc = nodup_key_prepare(&k, db, table, cols, ncols, where);
  if (rc == NODUP_OK && (!opt->nulls_equal || nodup_key_nulls_equal(k))) {
    const char *ix = nodup_key_index(k);
    int changed = 0;
    char *name = nodup_strdup(ix ? ix : "");
    if (!name) {
      rc = NODUP_ERR_NOMEM;
      goto done;
    }
    rc = finish_interrupted(&c, name, &changed);
    free(c.rep->index);
    c.rep->index = name;
    c.rep->already = !changed;
    goto done;
  }
  if (rc != NODUP_OK && rc != NODUP_ERR_UNBACKED) goto done;
  nodup_clear_error(db);
  if ((rc = before_lock(&c)) == NODUP_OK) rc = opt->online ? online(&c) : locked(&c);
done:
  if (c.ngaps && !opt->merge_opt.keep_temp_index) {
    db_error e;
    int drc;
    db_error_save(db, &e);
    drc = fkindex_drop(db, c.gaps, c.ngaps);
    rc = rc == NODUP_OK ? drc : db_error_restore(db, rc, &e);
    free(e.msg);
  }
  fkindex_free(c.gaps, c.ngaps);
  /* The notice is what is left now (the merges on the way saw this run's
   * own guard); a failure's message says it too, unless it said already. */
  if (db_can(db, BE_CAP_ONLINE_INDEX) && c.t && c.key && !c.told && !opt->abort) {
    char *err = rc != NODUP_OK ? nodup_strdup(nodup_errmsg(db)) : NULL;
    buf left;
    buf_init(&left);
    buf_reset(&db->notice);
    if (enforce_leftovers(db, c.t, c.key, c.nkey, where, 0, &left) == NODUP_OK && left.len)
      buf_puts(&db->notice, buf_str(&left));
    if (rc != NODUP_OK) {
      buf_reset(&db->err);
      buf_puts(&db->err, err ? err : nodup_strerror(rc));
      if (left.len) buf_printf(&db->err, "; %s", buf_str(&left));
    }
    free(err);
    buf_free(&left);
  } else if (!opt->abort) {
    buf_reset(&db->notice);
  }
  /* Leftovers removed before a refusal: "nothing changed" is not true. */
  if (rc != NODUP_OK && !opt->abort && c.removed.len)
    buf_printf(&db->err, " (before that, removed what an interrupted `nodup enforce --online` "
                         "left: %s)", buf_str(&c.removed));
  if (rc == NODUP_OK && c.removed.len && !(c.rep->removed = nodup_strdup(buf_str(&c.removed))))
    rc = NODUP_ERR_NOMEM;
  buf_free(&c.removed);
  partitions_free(&c);
  nodup_key_free(k);
  if (c.key)
    for (i = 0; i < ncols; i++) free(c.key[i]);
  free(c.key);
  table_info_free(c.t);
  /* A dry run's merge was rolled back with its rows in nodup_runs. */
  if (rc == NODUP_OK && opt->dry_run) c.rep->run[0] = '\0';
  if (rc == NODUP_OK) *out = c.rep;
  else nodup_enforce_free(c.rep);
  return rc;
}

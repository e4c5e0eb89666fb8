/*
 * enforce.c -- the last step: a unique index, with no window in which a
 * live writer can slip a duplicate between the clean-up and the index.
 *
 * The window is closed by doing both under one lock (SQLite's write lock;
 * PostgreSQL's SHARE ROW EXCLUSIVE, which lets readers on and queues
 * writers: enforce_locked.c) or, online, by a temporary trigger that does
 * the index's job (one writer per key at a time, duplicates refused with
 * 23505) until the concurrently built index takes over (enforce_online.c).
 * This file is nodup_enforce itself: its refusals, the steps both modes
 * share (leftovers of an interrupted run, a key already backed, the merge
 * before the lock, the DDL), the dispatch over the mode and the report.
 * Everything is statements around nodup_merge's machinery; the dialect SQL
 * is PostgreSQL's, as only it has the online mode, constraints and NULLS
 * NOT DISTINCT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enforce_int.h"

#define ENFORCE_DEFAULT_TIMEOUT_MS 2000

void nodup_enforce_free(nodup_enforce_report *r) {
  if (!r) return;
  free(r->index);
  free(r->removed);
  free(r->temp_indexes);
  free(r);
}

int enforce_exec(nodup_db *db, buf *q) {
  return q->oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(q), NULL, 0, NULL, NULL);
}

/* Default name: PostgreSQL's for a UNIQUE constraint, <table>_<cols>_key,
 * cut to 63 bytes (NAMEDATALEN - 1) on a character boundary. */
char *enforce_default_name(const char *table, char *const *key, size_t n) {
  key_term *terms = key_terms_of(key, n);
  buf b;
  size_t i, len;
  char *s;
  buf_init(&b);
  buf_puts(&b, table);
  for (i = 0; terms && i < n; i++) keyterm_name(&b, &terms[i]);
  if (!terms) b.oom = 1;
  free(terms);
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
  sql_key_names(&q, c->key, c->nkey, NULL);
  buf_puts(&q, " HAVING count(*) > 1) AS nodup_g");
  rc = q.oom ? NODUP_ERR_NOMEM : c->db->be->query(c->db, buf_str(&q), NULL, 0, db_read_count, n);
  buf_free(&q);
  return rc;
}

/* Inside the lock (or online, between steps): refuse or merge what
 * duplicates there are. */
int enforce_clean(enforce_ctx *c, enforce_pass pass) {
  nodup_merge_options mo = *c->mo;
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
  switch (pass) {
  case ENFORCE_PASS_LOCKED:
    rc = merge_run(&m, c->db, c->table, (const char *const *)c->key, c->nkey, c->where, &mo,
                   MERGE_ONE_TRANSACTION, NULL);
    break;
  case ENFORCE_PASS_BOUNDED:
    rc = merge_run(&m, c->db, c->table, (const char *const *)c->key, c->nkey, c->where, &mo,
                   MERGE_ONE_PASS, NULL);
    break;
  case ENFORCE_PASS_ALL:
  default:
    rc = nodup_merge(&m, c->db, c->table, (const char *const *)c->key, c->nkey, c->where, &mo);
    break;
  }
  if (rc == NODUP_OK) {
    c->rep->merged_groups += m->groups;
    snprintf(c->rep->run, sizeof c->rep->run, "%s", m->run);
  }
  nodup_merge_free(m);
  return rc;
}

/* ---- the DDL both modes run ---- */

void enforce_index_ddl_on(enforce_ctx *c, buf *q, int concurrently, const char *name,
                          const char *table) {
  buf_printf(q, "CREATE UNIQUE INDEX %s", concurrently ? "CONCURRENTLY " : "");
  sql_ident(q, name);
  buf_printf(q, " ON %s (", table);
  sql_key_names(q, c->key, c->nkey, NULL);
  buf_putc(q, ')');
  if (c->opt->nulls_equal) buf_puts(q, " NULLS NOT DISTINCT");
  if (c->where) buf_printf(q, " WHERE (%s)", c->where);
}

void enforce_index_ddl(enforce_ctx *c, buf *q, int concurrently) {
  enforce_index_ddl_on(c, q, concurrently, c->rep->index, c->t->qualified);
}

/* A constraint (what ORMs and \d show) can only use a plain index. */
void enforce_using_index_ddl(enforce_ctx *c, buf *q) {
  buf_printf(q, "ALTER TABLE %s ADD CONSTRAINT ", c->t->qualified);
  sql_ident(q, c->rep->index);
  buf_puts(q, " UNIQUE USING INDEX ");
  sql_ident(q, c->rep->index);
}

/* ALTER TABLE ... ADD CONSTRAINT name UNIQUE (key): on a partitioned
 * table the only way to a constraint (USING INDEX is not supported there);
 * PostgreSQL attaches a matching index each partition already has instead
 * of building one. */
void enforce_constraint_ddl(enforce_ctx *c, buf *q) {
  buf_printf(q, "ALTER TABLE %s ADD CONSTRAINT ", c->t->qualified);
  sql_ident(q, c->rep->index);
  buf_puts(q, c->opt->nulls_equal ? " UNIQUE NULLS NOT DISTINCT (" : " UNIQUE (");
  sql_ident_list(q, c->key, c->nkey);
  buf_putc(q, ')');
}

/* ---- catalog names (PostgreSQL) ---- */

int enforce_read_names(void *ctx, int n, const char *const *v) {
  enforce_names *l = ctx;
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

void enforce_names_free(enforce_names *l) {
  strv_free(l->a, l->n);
  strv_free(l->b, l->n);
  memset(l, 0, sizeof *l);
}

int enforce_query_names(nodup_db *db, const char *sql, const char *const *params, int nparams,
                        enforce_names *out) {
  int rc;
  memset(out, 0, sizeof *out);
  rc = db->be->query(db, sql, params, nparams, enforce_read_names, out);
  if (rc == NODUP_OK && out->oom) rc = NODUP_ERR_NOMEM;
  if (rc != NODUP_OK) enforce_names_free(out);
  return rc;
}

/*
 * Is T partitioned? Then a unique index on it must contain the partition
 * key (each partition can only check its own rows): refuse now, naming the
 * column, rather than after a merge. Both modes.
 */
int enforce_partition_check(enforce_ctx *c) {
  nodup_db *db = c->db;
  enforce_names cols;
  size_t i, j;
  int rc;
  memset(&cols, 0, sizeof cols);
  rc = db_partition_key(db, c->t, enforce_read_names, &cols);
  if (rc == NODUP_OK && cols.oom) rc = NODUP_ERR_NOMEM;
  c->partitioned = rc == NODUP_OK && cols.n > 0;
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
  enforce_names_free(&cols);
  return rc;
}

/* ---- the steps both modes share ---- */

/* The supporting indexes a merge's deletes need (fkindex.c: without one,
 * each deleted loser reads its referencing table whole, under the lock),
 * for the catalog's references and the caller's. */
static int build_temp_indexes(enforce_ctx *c) {
  nodup_db *db = c->db;
  const nodup_merge_options *mo = c->mo;
  nodup_fk_info *fks = NULL, *extra = NULL;
  size_t nfks = 0, nextra = 0, i;
  int rc;
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
  return rc;
}

/*
 * Before any lock: when there are duplicates to merge, build the supporting
 * indexes, then merge the groups there are now in batches, while writers
 * go on. The locked step (or online's guard) is left only the groups
 * writers made meanwhile and the index build, so the lock is held for
 * seconds, not for the merge. (Online mode's own first pass is the same
 * pass; a dry run merges inside its one rolled-back transaction instead.)
 */
static int before_lock(enforce_ctx *c) {
  long long groups = 0;
  int rc;
  if (!c->opt->merge || c->opt->dry_run) return NODUP_OK;
  if ((rc = count_groups(c, &groups)) != NODUP_OK || !groups) return rc;
  if (!c->mo->no_temp_index && (rc = build_temp_indexes(c)) != NODUP_OK) return rc;
  if (c->opt->mode == NODUP_ENFORCE_ONLINE) return NODUP_OK;   /* its first step is this pass */
  return enforce_clean(c, ENFORCE_PASS_BOUNDED);
}

/* What an interrupted online run left goes first, in either mode: its
 * guard would outlive this run, its INVALID index take this one's name.
 * A dry run changes nothing: its message or notice lists them. */
static int remove_leftovers(enforce_ctx *c) {
  int rc;
  if (!db_can(c->db, BE_CAP_ONLINE_INDEX) || c->opt->dry_run) return NODUP_OK;
  rc = enforce_leftovers_remove(c->db, c->t, c->key, c->nkey, c->timeout, 0, &c->removed);
  if (rc != NODUP_OK) c->told = 1;
  return rc;
}

/* Already backed (with the NULL semantics asked for)? Then *done, once an
 * interrupted run of ours is finished. */
static int already_backed(enforce_ctx *c, int *done) {
  nodup_key *k = NULL;
  int rc, changed = 0;
  char *name;
  *done = 0;
  rc = nodup_key_prepare(&k, c->db, c->table, c->cols, c->nkey, c->where);
  if (rc != NODUP_OK || (c->opt->nulls_equal && !nodup_key_nulls_equal(k))) {
    nodup_key_free(k);
    if (rc != NODUP_OK && rc != NODUP_ERR_UNBACKED) return rc;
    nodup_clear_error(c->db);
    return NODUP_OK;
  }
  name = nodup_strdup(nodup_key_index(k) ? nodup_key_index(k) : "");
  nodup_key_free(k);
  if (!name) return NODUP_ERR_NOMEM;
  *done = 1;
  rc = enforce_finish_interrupted(c, name, &changed);
  free(c->rep->index);
  c->rep->index = name;
  c->rep->already = !changed;
  return rc;
}

/* Build the index, in the locked or the online mode. */
static int enforce_build(enforce_ctx *c) {
  nodup_db *db = c->db;
  int online = c->opt->mode == NODUP_ENFORCE_ONLINE, rc, done = 0;
  if (db_can(db, BE_CAP_PARTITIONS) && (rc = enforce_partition_check(c)) != NODUP_OK) return rc;
  rc = engine_check(db, c->t, online ? ENGINE_OP_ENFORCE_ONLINE : ENGINE_OP_ENFORCE_LOCKED,
                    c->key, c->nkey);
  if (rc == NODUP_OK && c->opt->merge) rc = engine_check(db, c->t, ENGINE_OP_MERGE, c->key, c->nkey);
  if (rc == NODUP_OK) rc = remove_leftovers(c);
  if (rc == NODUP_OK) rc = already_backed(c, &done);
  if (rc != NODUP_OK || done) return rc;
  if ((rc = before_lock(c)) != NODUP_OK) return rc;
  return online ? enforce_online(c) : enforce_locked(c);
}

/* ---- refusals, before anything is read or written ---- */

/* The combinations of mode, engine and options that cannot work. */
static int refuse_mode(nodup_db *db, const nodup_enforce_options *opt) {
  int online = opt->mode == NODUP_ENFORCE_ONLINE, abort = opt->mode == NODUP_ENFORCE_ABORT;
  if (opt->mode != NODUP_ENFORCE_LOCKED && !online && !abort)
    return nodup_fail(db, NODUP_ERR_USAGE, "unknown enforce mode %d", (int)opt->mode);
  if (abort && !db_can(db, BE_CAP_ONLINE_INDEX))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "--abort removes what an interrupted --online run left, and SQLite has "
                      "no online mode (one transaction does it all): there is nothing to remove");
  if (abort && (opt->merge || opt->dry_run))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "--abort only removes what an interrupted --online run left: it takes "
                      "no --merge, --online or --dry-run");
  if (opt->nulls_equal && !abort && !db_can(db, BE_CAP_NULLS_NOT_DISTINCT))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "this database has no NULLS NOT DISTINCT unique index (PostgreSQL has it "
                      "from version 15, SQLite not at all): a unique index here always lets "
                      "NULL keys repeat; enforce without --nulls-equal");
  if (online && !db_can(db, BE_CAP_ONLINE_INDEX))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "--online is for PostgreSQL; SQLite's write lock makes the whole step atomic");
  if (online && opt->dry_run)
    return nodup_fail(db, NODUP_ERR_USAGE, "--online cannot be a dry run: it commits as it goes");
  return NODUP_OK;
}

/* The call's arguments, the options' versions, the transaction state. */
static int refuse_call(nodup_db *db, const char *table, const char *const *cols, size_t ncols,
                       const nodup_enforce_options *opt) {
  if (!db || !db->native || !table || !cols || !ncols)
    return db ? nodup_fail(db, NODUP_ERR_USAGE, "enforce needs a table and key columns")
              : NODUP_ERR_USAGE;
  nodup_clear_error(db);
  if (options_check(db, opt->version, NODUP_ENFORCE_OPTIONS_VERSION, "nodup_enforce_options") ||
      (opt->merge_opt && options_check(db, opt->merge_opt->version, NODUP_MERGE_OPTIONS_VERSION,
                                       "nodup_enforce_options.merge_opt")))
    return NODUP_ERR_USAGE;
  buf_reset(&db->notice);
  if (db->be->in_transaction(db))
    return nodup_fail(db, NODUP_ERR_USAGE, "enforce runs its own transactions: call it outside one");
  return refuse_mode(db, opt);
}

/* The table, the key in the catalog's spelling, the index and guard names. */
static int load_table(enforce_ctx *c) {
  nodup_db *db = c->db;
  const nodup_enforce_options *opt = c->opt;
  size_t i;
  int rc;
  if (!(c->rep = calloc(1, sizeof *c->rep))) return NODUP_ERR_NOMEM;
  if ((rc = db->be->table_info(db, c->table, &c->t)) != NODUP_OK) return rc;
  if ((rc = table_info_key(db, c->t, c->cols, c->nkey, &c->key, NULL)) != NODUP_OK) return rc;
  for (i = 0; i < c->nkey; i++) c->expression |= table_info_column(db, c->t, c->key[i]) < 0;
  if ((rc = userexpr_check(db, c->t, c->where, 0, "--where")) != NODUP_OK) return rc;
  c->rep->index = opt->name && *opt->name ? nodup_strdup(opt->name)
                                          : enforce_default_name(c->t->name, c->key, c->nkey);
  if (!c->rep->index) return NODUP_ERR_NOMEM;
  enforce_guard_name(c->t, c->guard);
  return NODUP_OK;
}

/* ---- the report ---- */

/* Drop the temporary supporting indexes (unless asked to keep them),
 * keeping the failure rc when there is one. */
static int drop_temp_indexes(enforce_ctx *c, int rc) {
  db_error e;
  int drc;
  if (!c->ngaps || c->mo->keep_temp_index) return rc;
  db_error_save(c->db, &e);
  drc = fkindex_drop(c->db, c->gaps, c->ngaps);
  rc = rc == NODUP_OK ? drc : db_error_restore(c->db, rc, &e);
  free(e.msg);
  return rc;
}

/* The notice is what is left now (the merges on the way saw this run's
 * own guard); a failure's message says it too, unless it said already. */
static void tell_leftovers(enforce_ctx *c, int rc) {
  nodup_db *db = c->db;
  char *err;
  buf left;
  if (c->opt->mode == NODUP_ENFORCE_ABORT) return;
  buf_reset(&db->notice);
  if (!db_can(db, BE_CAP_ONLINE_INDEX) || !c->t || !c->key || c->told) return;
  err = rc != NODUP_OK ? nodup_strdup(nodup_errmsg(db)) : NULL;
  buf_init(&left);
  if (enforce_leftovers(db, c->t, c->key, c->nkey, c->where, 0, &left) == NODUP_OK && left.len)
    buf_puts(&db->notice, buf_str(&left));
  if (rc != NODUP_OK) {
    buf_reset(&db->err);
    buf_puts(&db->err, err ? err : nodup_strerror(rc));
    if (left.len) buf_printf(&db->err, "; %s", buf_str(&left));
  }
  free(err);
  buf_free(&left);
}

/* What was removed on the way: in the report, or (leftovers removed before
 * a refusal: "nothing changed" is not true) in the message. */
static int tell_removed(enforce_ctx *c, int rc) {
  if (rc != NODUP_OK && c->opt->mode != NODUP_ENFORCE_ABORT && c->removed.len)
    buf_printf(&c->db->err, " (before that, removed what an interrupted `nodup enforce --online` "
                            "left: %s)", buf_str(&c->removed));
  if (rc == NODUP_OK && c->removed.len && !(c->rep->removed = nodup_strdup(buf_str(&c->removed))))
    rc = NODUP_ERR_NOMEM;
  /* A dry run's merge was rolled back with its rows in nodup_runs. */
  if (rc == NODUP_OK && c->opt->dry_run) c->rep->run[0] = '\0';
  return rc;
}

int nodup_enforce(nodup_enforce_report **out, nodup_db *db, const char *table,
                  const char *const *cols, size_t ncols, const char *where,
                  const nodup_enforce_options *opt) {
  static const nodup_enforce_options no_options;
  static const nodup_merge_options no_merge_options;
  enforce_ctx c;
  int rc;

  if (!out) return NODUP_ERR_USAGE;
  *out = NULL;
  if (!opt) opt = &no_options;
  if ((rc = refuse_call(db, table, cols, ncols, opt)) != NODUP_OK) return rc;
  memset(&c, 0, sizeof c);
  c.db = db;
  c.opt = opt;
  c.mo = opt->merge_opt ? opt->merge_opt : &no_merge_options;
  c.table = table;
  c.cols = cols;
  c.nkey = ncols;
  c.where = where && *where ? where : NULL;
  c.timeout = opt->lock_timeout_ms > 0 ? opt->lock_timeout_ms : ENFORCE_DEFAULT_TIMEOUT_MS;
  buf_init(&c.removed);
  if ((rc = load_table(&c)) == NODUP_OK) {
    switch (opt->mode) {
    case NODUP_ENFORCE_ABORT:
      rc = enforce_abort(&c);
      break;
    case NODUP_ENFORCE_LOCKED:
    case NODUP_ENFORCE_ONLINE:
      rc = enforce_build(&c);
      break;
    }
  }
  rc = drop_temp_indexes(&c, rc);
  fkindex_free(c.gaps, c.ngaps);
  tell_leftovers(&c, rc);
  rc = tell_removed(&c, rc);
  buf_free(&c.removed);
  enforce_partitions_free(&c);
  strv_free(c.key, c.nkey);
  table_info_free(c.t);
  if (rc == NODUP_OK) *out = c.rep;
  else nodup_enforce_free(c.rep);
  return rc;
}

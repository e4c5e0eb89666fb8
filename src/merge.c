/*
 * merge.c -- merging existing duplicates, losing nothing: the driver.
 *
 * A run checks everything that can refuse before it writes anything,
 * records itself in the journal, then takes passes over the table: a pass
 * numbers the duplicate groups there are (merge_plan.c), batches take
 * slices of it, each batch one transaction in which merge_level()
 * (merge_repoint.c) merges the batch's groups. Passes go on until one
 * finds no group, unless the caller asks for one pass or one transaction
 * (enum merge_mode). The report's counters and the public entry points
 * live here too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "merge_int.h"

/*
 * Without --batch, a batch is sized by how long it takes, not by a count
 * of groups (pt-online-schema-change's --chunk-time): it holds its rows'
 * locks until it commits, so its duration is what a live writer can wait.
 * The first takes MERGE_FIRST_BATCH groups; each next one gets the groups
 * per millisecond measured so far (a moving average, so one slow batch
 * does not halve the next) times MERGE_BATCH_MS, at most twice the last.
 * A batch that waited for a writer's lock measures slow and shrinks the
 * next.
 */
#define MERGE_FIRST_BATCH 1000

/* One merge_run() call: the context every level shares, and what only the
 * driver holds. */
typedef struct merge_driver {
  merge_ctx c;
  const nodup_table_info *t;   /* the merged table (the schema cache's) */
  const char *table;           /* as the caller named it (table_info, undo) */
  const char *where;           /* NULL: none */
  char **key;                  /* the key's columns, catalog spelling */
  size_t nkey;
  nodup_fk_info *extra;        /* opt->refs, parsed, less the catalog's */
  size_t nextra;
  nodup_scan_suspect *sus;     /* suspected references (none may have rows) */
  size_t nsus;
  fk_gap *gaps;                /* indexes built for the run (fkindex.c) */
  size_t ngaps;
  size_t batch;                /* groups per batch (the next one's, when timed) */
  int timed;                   /* batches sized by time (no opt->batch) */
  double rate;                 /* timed: groups per millisecond, averaged */
  merge_mode mode;
  const merge_resume *resume;  /* NULL: a new run */
  int one_txn;                 /* everything in one transaction */
  int in_txn;                  /* a transaction of ours is open */
  int groups_in_txn;           /* the groups table goes with its rollback */
  int recorded;                /* the run's row is committed */
  int committed;               /* a batch is committed */
  int bulk;                    /* be->bulk_writes began: end it */
  long bulk_saved;             /* what it keeps for its end */
} merge_driver;

void nodup_merge_free(nodup_merge_report *r) {
  size_t i, j;
  if (!r) return;
  for (i = 0; i < r->ntables; i++) {
    free(r->tables[i].table);
    free(r->tables[i].table_schema);
    free(r->tables[i].table_name);
    for (j = 0; j < r->tables[i].ndiffered; j++) free(r->tables[i].differed[j].column);
    free(r->tables[i].differed);
  }
  free(r->tables);
  free(r->temp_indexes);
  free(r);
}

/* The report's row for table `info`, added on first use. */
nodup_merge_table *merge_stats(merge_ctx *c, const nodup_table_info *info) {
  nodup_merge_report *r = c->rep;
  nodup_merge_table *t;
  size_t i;
  for (i = 0; i < r->ntables; i++)
    if (!strcmp(r->tables[i].table, info->qualified)) return &r->tables[i];
  t = realloc(r->tables, (r->ntables + 1) * sizeof *t);
  if (!t) return NULL;
  r->tables = t;
  t = &r->tables[r->ntables];
  memset(t, 0, sizeof *t);
  t->table = nodup_strdup(info->qualified);
  t->table_name = nodup_strdup(info->name);
  t->table_schema = info->schema ? nodup_strdup(info->schema) : NULL;
  if (!t->table || !t->table_name || (info->schema && !t->table_schema)) {
    free(t->table);
    free(t->table_name);
    free(t->table_schema);
    return NULL;
  }
  r->ntables++;
  return t;
}


/* Rows the report says were re-pointed, deleted and filled so far. */
static void report_rows(const nodup_merge_report *r, long long n[3]) {
  size_t i;
  n[0] = n[1] = n[2] = 0;
  for (i = 0; i < r->ntables; i++) {
    n[0] += r->tables[i].repointed;
    n[1] += r->tables[i].deleted;
    n[2] += r->tables[i].filled;
  }
}

/* One batch, inside the caller's transaction: lock, map, merge. *groups
 * gets the number of groups merged (0: nothing left). */
static int merge_batch(merge_driver *d, long long first, long long *groups) {
  merge_ctx *c = &d->c;
  nodup_db *db = c->db;
  buf q;
  int rc;

  buf_init(&q);
  *groups = 0;
  if ((rc = merge_batch_groups(c, d->key, d->nkey, first, d->batch)) != NODUP_OK ||
      (rc = merge_batch_lock(c, d->t, d->key, d->nkey, d->where)) != NODUP_OK)
    goto done;
  merge_batch_pairs(&q, c, d->t, d->key, d->nkey, d->where);
  if (q.oom) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  /* How many groups this batch holds, for the report. */
  rc = db->be->query(db, "SELECT count(*) FROM nodup_batch", NULL, 0, db_read_count, groups);
  if (rc == NODUP_OK && *groups)
    rc = merge_level(c, d->t, d->table, buf_str(&q), 0, d->extra, d->nextra, c->opt->fill_nulls,
                     d->key, d->nkey);
done:
  if (rc == NODUP_OK) rc = db->be->query(db, "DROP TABLE nodup_batch", NULL, 0, NULL, NULL);
  buf_free(&q);
  return rc;
}

/* Every check that can refuse, reading only, before anything is written
 * (the journal included): the table, the key, --where and --keep, the
 * references (declared, given, suspected), --one-to-one fail and the
 * column policies. */
static int driver_check(merge_driver *d, const char *const *cols) {
  merge_ctx *c = &d->c;
  nodup_db *db = c->db;
  const nodup_merge_options *opt = c->opt;
  const nodup_table_info *t;
  size_t i;
  int rc;
  /* t belongs to the run's schema cache (freed with it). */
  if ((rc = merge_schema_table(c, d->table, &d->t)) != NODUP_OK) return rc;
  t = d->t;
  if (t->npk == 0)
    return nodup_fail(db, NODUP_ERR_NO_PKEY, "table %s has no primary key to keep rows by",
                      t->qualified);
  if (!(c->rep = calloc(1, sizeof *c->rep)) ||
      !(d->extra = calloc(opt->nrefs + 1, sizeof *d->extra)))
    return NODUP_ERR_NOMEM;
  if ((rc = table_info_key(db, t, cols, d->nkey, &d->key, NULL)) != NODUP_OK ||
      (rc = engine_check(db, t, ENGINE_OP_MERGE, d->key, d->nkey)) != NODUP_OK ||
      (rc = enforce_leftovers_note(db, t, d->key, d->nkey, d->where, NODUP_OK)) != NODUP_OK)
    return rc;
  /* Again on a resume, whose texts come from nodup_runs, which anyone who
   * can write that table could have changed. */
  if ((rc = userexpr_check(db, t, d->where, 0, "--where")) != NODUP_OK ||
      (rc = userexpr_check(db, t, opt->keep && *opt->keep ? opt->keep : NULL, 1, "--keep")) !=
          NODUP_OK)
    return rc;
  for (i = 0; i < opt->nrefs; i++) {
    rc = fk_parse_ref(db, t, opt->refs[i] ? opt->refs[i] : "", &d->extra[d->nextra]);
    d->nextra++;
    if (rc != NODUP_OK) return rc;
  }
  if ((rc = merge_drop_known_refs(c, t, d->extra, &d->nextra)) != NODUP_OK) return rc;
  /* References no constraint declares: none may point at a row this run
   * would delete. */
  if ((rc = merge_suspects_find(c, t, d->key, d->nkey, d->extra, d->nextra, &d->sus,
                                &d->nsus)) != NODUP_OK ||
      (rc = merge_suspects_check(c, t, d->key, d->nkey, d->where, d->sus, d->nsus,
                                 "nothing changed")) != NODUP_OK ||
      (rc = merge_one_to_one_check(c, t, d->key, d->nkey, d->where, d->extra, d->nextra)) !=
          NODUP_OK)
    return rc;
  return merge_rules(c, t, d->key, d->nkey, d->extra, d->nextra);
}

/* A write transaction of the run's own (d->in_txn: rolled back on failure). */
static int driver_begin(merge_driver *d) {
  nodup_db *db = d->c.db;
  int rc = db_begin_write(db);
  if (rc == NODUP_OK) d->in_txn = 1;
  if (rc == NODUP_OK && db->be->batch_settings) rc = db->be->exec(db, db->be->batch_settings);
  return rc;
}

static int driver_commit(merge_driver *d) {
  int rc = d->c.db->be->exec(d->c.db, "COMMIT");
  if (rc == NODUP_OK) d->in_txn = 0;
  return rc;
}

/* The run's id (new, or the resumed one's) and its groups table's name. */
static void driver_names(merge_driver *d) {
  merge_ctx *c = &d->c;
  nodup_merge_report *rep = c->rep;
  if (d->resume) {
    snprintf(rep->run, sizeof rep->run, "%s", d->resume->run);
  } else {
    /* Run ids sort by time and differ between processes and threads (a
     * clash between hosts is refused by nodup_runs' primary key). */
    snprintf(rep->run, sizeof rep->run, "%lld-%d-%u", (long long)time(NULL), (int)getpid(),
             db_serial());
  }
  if (c->db->pooled) {
    buf g;
    buf_init(&g);
    /* In the journal's schema, out of the application's (and found there
     * by nodup runs --forget, should a killed run leave it). */
    journal_pass_table(&g, c->journal, rep->run);
    snprintf(c->groups, sizeof c->groups, "%s", buf_str(&g));
    buf_free(&g);
  } else {
    snprintf(c->groups, sizeof c->groups, "nodup_groups");
  }
}

/* Record the run (or take over the one resumed). Batched: in a
 * transaction of its own, committed, so a run killed in its first batch
 * can still be resumed. In one transaction: a dry run opens it (and rolls
 * it back, with the bookkeeping it wrote); enforce's locked step is in
 * the caller's. */
static int driver_record(merge_driver *d) {
  merge_ctx *c = &d->c;
  nodup_db *db = c->db;
  const nodup_merge_options *opt = c->opt;
  const char *run = d->resume ? d->resume->run : NULL;
  int rc;
  if ((!d->one_txn || opt->dry_run) && (rc = driver_begin(d)) != NODUP_OK) return rc;
  if ((rc = journal_ensure(db, c->journal)) != NODUP_OK) return rc;
  if (!run && (rc = journal_record(db, c->journal, c->rep->run, &c->owner, d->table, d->key,
                                   d->nkey, d->where, opt,
                                   opt->batch)) != NODUP_OK)
    return rc;
  if (d->one_txn) return NODUP_OK;
  /* A failed or interrupted run becomes ours; a live one is refused. */
  if (run && (rc = journal_claim(db, c->journal, run, &c->owner)) != NODUP_OK) return rc;
  if ((rc = driver_commit(d)) != NODUP_OK) return rc;
  d->recorded = 1;
  return NODUP_OK;
}

static int driver_start(merge_driver *d) {
  merge_ctx *c = &d->c;
  nodup_db *db = c->db;
  int rc;
  c->journal = d->resume && d->resume->journal ? d->resume->journal : journal_schema(db);
  if ((rc = journal_owner_init(db, &c->owner)) != NODUP_OK) return rc;
  driver_names(d);
  if (db->be->fk_enforced) {
    int on = 1;
    if ((rc = db->be->fk_enforced(db, &on)) != NODUP_OK) return rc;
    c->rep->foreign_keys_off = !on;
  }
  c->step = d->resume ? d->resume->laststep : 0;
  c->log = !c->opt->no_archive;
  return driver_record(d);
}

/* Deleting a loser makes the engine look for its referencing rows, once
 * per row: a reference with no index on its columns is read whole each
 * time (fkindex.c). Indexes for those are built now, outside any
 * transaction (CONCURRENTLY on PostgreSQL), and dropped at the end. In
 * one transaction (a dry run, enforce's locked step) they cannot be:
 * enforce builds them itself before it locks. */
static int driver_temp_indexes(merge_driver *d) {
  merge_ctx *c = &d->c;
  const nodup_fk_info *fks = NULL;
  size_t nfks = 0;
  buf desc;
  int rc;
  if (d->one_txn || c->opt->no_temp_index) return NODUP_OK;
  if ((rc = merge_schema_references(c, d->t, &fks, &nfks)) != NODUP_OK ||
      (rc = fkindex_plan(c->db, fks, nfks, d->extra, d->nextra, &d->gaps, &d->ngaps)) !=
          NODUP_OK ||
      (rc = fkindex_build(c->db, d->gaps, d->ngaps)) != NODUP_OK)
    return rc;
  if (!d->ngaps) return NODUP_OK;
  buf_init(&desc);
  fkindex_describe(&desc, d->gaps, d->ngaps);
  c->rep->temp_indexes = desc.oom ? NULL : nodup_strdup(buf_str(&desc));
  buf_free(&desc);
  return c->rep->temp_indexes ? NODUP_OK : NODUP_ERR_NOMEM;
}

/* Many batches, each a commit, over the same pages: the backend may
 * adjust for that (db_sqlite.c's WAL checkpoints) until driver_finish. */
static int driver_bulk(merge_driver *d) {
  nodup_db *db = d->c.db;
  int rc;
  if (d->one_txn || !db->be->bulk_writes) return NODUP_OK;
  if ((rc = db->be->bulk_writes(db, 1, &d->bulk_saved)) == NODUP_OK) d->bulk = 1;
  return rc;
}

/* A pass is used up: another, for the groups writers made meanwhile
 * (*ngroups 0: none, the run is over). */
static int next_pass(merge_driver *d, long long *ngroups) {
  merge_ctx *c = &d->c;
  int rc;
  /* A pass reads the whole table: say we are alive before it. */
  if ((rc = journal_heartbeat(c->db, c->journal, c->rep->run, &c->owner)) != NODUP_OK ||
      (rc = merge_pass_groups(c, d->t, d->key, d->nkey, d->where, ngroups)) != NODUP_OK)
    return rc;
  if (!*ngroups) return NODUP_OK;
  /* Writers made these groups since the check: check them too. */
  return merge_suspects_check(c, d->t, d->key, d->nkey, d->where, d->sus, d->nsus,
                              "the merge stopped there; the batches before it are committed");
}

/* One batch, in a transaction of its own unless the run has one: the
 * run's row first (held until the batch ends, so nobody takes the run
 * over meanwhile), its counters last. */
static int run_batch(merge_driver *d, long long first, long long *groups) {
  merge_ctx *c = &d->c;
  nodup_db *db = c->db;
  nodup_merge_report *rep = c->rep;
  long long before[3], after[3];
  int rc;
  if (!d->one_txn && (rc = driver_begin(d)) != NODUP_OK) return rc;
  report_rows(rep, before);
  if ((rc = journal_heartbeat(db, c->journal, rep->run, &c->owner)) != NODUP_OK ||
      (rc = merge_batch(d, first, groups)) != NODUP_OK)
    return rc;
  report_rows(rep, after);
  if (*groups &&
      (rc = journal_batch_done(db, c->journal, rep->run, &c->owner, *groups,
                               after[0] - before[0], after[1] - before[1],
                               after[2] - before[2])) != NODUP_OK)
    return rc;
  rep->groups += *groups;
  if (*groups) rep->batches++;
  if (d->one_txn) return NODUP_OK;
  if ((rc = driver_commit(d)) != NODUP_OK) return rc;
  d->committed = 1;
  return NODUP_OK;
}

size_t merge_next_batch(size_t batch, double *rate, long long groups, double ms) {
  double now = (double)groups / (ms > 1.0 ? ms : 1.0), want;
  *rate = *rate > 0.0 ? 0.5 * *rate + 0.5 * now : now;
  want = *rate * MERGE_BATCH_MS;
  if (want > 2.0 * (double)batch) want = 2.0 * (double)batch;
  return want < 1.0 ? 1 : (size_t)want;
}

/* The passes. In one transaction (a dry run, enforce's locked step) one
 * batch takes the whole pass; otherwise each batch commits, and a pass
 * that ends is followed by another, for groups that writers made
 * meanwhile, until a pass finds none (MERGE_ONE_PASS: after the first). */
static int driver_passes(merge_driver *d) {
  merge_ctx *c = &d->c;
  const nodup_merge_options *opt = c->opt;
  nodup_merge_report *rep = c->rep;
  long long groups = 0, first = 0, ngroups = 0, total;
  double started;
  int rc;
  if ((rc = merge_pass_groups(c, d->t, d->key, d->nkey, d->where, &ngroups)) != NODUP_OK)
    return rc;
  d->groups_in_txn = d->in_txn;
  total = ngroups;
  if (opt->progress) opt->progress(opt->progress_ctx, 0, total);
  for (;;) {
    if (first >= ngroups) {
      if (d->one_txn || d->mode == MERGE_ONE_PASS || !ngroups) break;
      if ((rc = next_pass(d, &ngroups)) != NODUP_OK) return rc;
      first = 0;
      total = rep->groups + ngroups;
      if (!ngroups) break;
    }
    started = db_now_ms();
    if ((rc = run_batch(d, first, &groups)) != NODUP_OK) return rc;
    first += (long long)d->batch;
    if (d->timed && groups) d->batch = merge_next_batch(d->batch, &d->rate, groups, db_now_ms() - started);
    if (!d->one_txn && opt->progress) opt->progress(opt->progress_ctx, rep->groups, total);
  }
  if (opt->dry_run) return NODUP_OK;
  return journal_status(c->db, c->journal, rep->run, &c->owner, "done");
}

static int drop_groups(merge_driver *d) {
  char drop[256];
  snprintf(drop, sizeof drop, "DROP TABLE %s", d->c.groups);
  return d->c.db->be->exec(d->c.db, drop);
}

static int drop_temp_indexes(merge_driver *d) {
  return fkindex_drop(d->c.db, d->gaps, d->ngaps);
}

/* Best effort after the run: a cleanup's failure must not mask the run's
 * (whose message stays); it is the result only when the run succeeded. */
static int best_effort(merge_driver *d, int rc, int (*cleanup)(merge_driver *d)) {
  db_error e;
  int drc;
  db_error_save(d->c.db, &e);
  drc = cleanup(d);
  rc = rc == NODUP_OK ? drc : db_error_restore(d->c.db, rc, &e);
  free(e.msg);
  return rc;
}

static int bulk_end(merge_driver *d) {
  d->bulk = 0;
  return d->c.db->be->bulk_writes(d->c.db, 0, &d->bulk_saved);
}

/* After the run, whatever its result: roll back what is open, drop the
 * groups table and the temporary indexes, and mark a failed run. */
static int driver_finish(merge_driver *d, int rc) {
  merge_ctx *c = &d->c;
  nodup_db *db = c->db;
  if (d->in_txn) {
    /* Keep the failing statement's message, not the rollback's. */
    db_rollback(db, rc);   /* rc == NODUP_OK: the dry run's planned rollback */
    if (d->groups_in_txn) c->have_groups = 0;        /* rolled back with it */
  }
  /* A failure in the caller's transaction leaves it to the caller's rollback. */
  if (c->have_groups && !(rc != NODUP_OK && d->mode == MERGE_ONE_TRANSACTION))
    rc = best_effort(d, rc, drop_groups);
  if (rc != NODUP_OK && d->recorded) {
    /* A new run that changed nothing (no batch committed) leaves no trace
     * in the journal; one that did is failed, to resume or undo. */
    db_error e;
    db_error_save(db, &e);
    if (!d->resume && !d->committed) journal_discard(db, c->journal, c->rep->run, &c->owner);
    else journal_status(db, c->journal, c->rep->run, &c->owner, "failed");
    db_error_restore(db, rc, &e);
  }
  /* Dropped after a failure too. */
  if (d->ngaps && !c->opt->keep_temp_index) rc = best_effort(d, rc, drop_temp_indexes);
  if (d->bulk) rc = best_effort(d, rc, bulk_end);
  return rc;
}

int merge_run(nodup_merge_report **out, nodup_db *db, const char *table,
              const char *const *cols, size_t ncols, const char *where,
              const nodup_merge_options *opt, merge_mode mode, const merge_resume *resume) {
  merge_driver d;
  nodup_merge_report *rep;
  int rc;

  *out = NULL;
  memset(&d, 0, sizeof d);
  d.c.db = db;
  d.c.opt = opt;
  d.table = table;
  d.where = where && *where ? where : NULL;
  d.nkey = ncols;
  d.mode = mode;
  d.resume = resume;
  /* A dry run is one transaction too, rolled back. */
  d.one_txn = opt->dry_run || mode == MERGE_ONE_TRANSACTION;
  d.timed = !d.one_txn && !opt->batch;
  d.batch = d.one_txn ? (size_t)-1 / 2 : opt->batch ? opt->batch : MERGE_FIRST_BATCH;
  if ((rc = driver_check(&d, cols)) == NODUP_OK && (rc = driver_start(&d)) == NODUP_OK &&
      (rc = driver_temp_indexes(&d)) == NODUP_OK && (rc = driver_bulk(&d)) == NODUP_OK)
    rc = driver_passes(&d);
  rc = driver_finish(&d, rc);
  rep = d.c.rep;
  fkindex_free(d.gaps, d.ngaps);
  fk_info_free(d.extra, d.nextra);
  suspect_free(d.sus, d.nsus);
  survive_free(d.c.rules, d.c.nrules);
  strv_free(d.key, d.nkey);
  merge_schema_free(&d.c);
  /* A dry run's id names nothing: its nodup_runs row was rolled back. */
  if (rc == NODUP_OK && opt->dry_run) rep->run[0] = '\0';
  if (rc == NODUP_OK) *out = rep;
  else nodup_merge_free(rep);
  return rc;
}

/* What nodup_merge() refuses before it reads anything. */
static int merge_args_check(nodup_db *db, const char *table, const char *const *cols,
                            size_t ncols, const nodup_merge_options *opt) {
  if (!db || !db->native || !table || !cols || !ncols)
    return db ? nodup_fail(db, NODUP_ERR_USAGE, "merge needs a table and key columns")
              : NODUP_ERR_USAGE;
  nodup_clear_error(db);
  if (options_check(db, opt->version, NODUP_MERGE_OPTIONS_VERSION, "nodup_merge_options"))
    return NODUP_ERR_USAGE;
  if (opt->one_to_one < NODUP_ONE_TO_ONE_MERGE || opt->one_to_one > NODUP_ONE_TO_ONE_FAIL)
    return nodup_fail(db, NODUP_ERR_USAGE, "unknown one_to_one mode %d", opt->one_to_one);
  if (db->be->in_transaction(db))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "merge runs its own transactions: call it outside one");
  return NODUP_OK;
}

int nodup_merge(nodup_merge_report **out, nodup_db *db, const char *table,
                const char *const *cols, size_t ncols, const char *where,
                const nodup_merge_options *opt) {
  nodup_merge_options none;
  int rc;
  if (!out) return NODUP_ERR_USAGE;
  *out = NULL;
  memset(&none, 0, sizeof none);
  if ((rc = merge_args_check(db, table, cols, ncols, opt ? opt : &none)) != NODUP_OK) return rc;
  return merge_run(out, db, table, cols, ncols, where, opt ? opt : &none, MERGE_BATCHED, NULL);
}

/*
 * merge_int.h -- what the merge files share, and nothing else sees.
 *
 * A merge is split by concept: merge.c drives the run (batches, passes,
 * transactions, counters, the public entry points), merge_plan.c reads
 * the schema once and writes the SQL fragments every statement shares,
 * merge_repoint.c merges one level (mapping, re-point, check, delete),
 * merge_collide.c merges the rows a re-point would make collide,
 * merge_survive.c applies the survivorship policies and counts what
 * differed, merge_log.c records steps and the archive for undo. The rest
 * of the library calls merge_run() (internal.h) and never this header.
 */
#ifndef NODUP_MERGE_INT_H
#define NODUP_MERGE_INT_H

#include "internal.h"

/* How deep collisions may recurse (a link row merged into a link row...). */
#define MERGE_MAX_DEPTH 8

/* The run's cached view of one table, read once per run, not per batch. */
typedef struct merge_schema_entry {
  char *name;                /* as table_info() was asked */
  nodup_table_info *info;
  nodup_fk_info *fks;        /* who references it (NULL until asked) */
  size_t nfks;
  int have_fks;
} merge_schema_entry;

/* One run's state, shared by every level of every batch. */
typedef struct merge_ctx {
  nodup_db *db;
  const nodup_merge_options *opt;
  nodup_merge_report *rep;
  unsigned ntemp;
  long long step;   /* the run's last step number: undo replays steps backwards */
  int log;          /* archive deleted rows and log changed ones (undo) */
  int have_groups;  /* the pass's groups table exists (merge_pass_groups) */
  /* The pass's groups table, quoted: temp table nodup_groups on a session
   * of our own; behind a transaction-mode pooler a temp table would be
   * gone (or another client's) in the next batch's transaction, so it is
   * an unlogged table named after the run, dropped at the end. */
  char groups[200];
  const char *journal;  /* the run's journal schema (journal.c; NULL on SQLite) */
  journal_owner owner;  /* this call, as the run's row names its owner */
  merge_schema_entry *schema;
  size_t nschema;
  survive_rule *rules;  /* opt->columns, parsed (survive.c) */
  size_t nrules;
} merge_ctx;

/* ---- merge.c: the driver ---- */

/* x's counters in the run's report, added on first use (NULL: out of
 * memory). May move the report's table array: look it up again after. */
nodup_merge_table *merge_stats(merge_ctx *c, const nodup_table_info *info);

/* ---- merge_plan.c: the schema, once per run; shared SQL fragments ---- */

/* Table `name` from the run's cache (borrowed until merge_schema_free). */
int merge_schema_table(merge_ctx *c, const char *name, const nodup_table_info **out);
/* The foreign keys that reference x (a table of the cache), once per run. */
int merge_schema_references(merge_ctx *c, const nodup_table_info *x, const nodup_fk_info **fks,
                            size_t *n);
void merge_schema_free(merge_ctx *c);
/* A column's position, naming the mapping's nodup_l<i>/nodup_k<i>. SQLite's
 * implicit rowid is not in the catalog's column list: it gets ncols. */
int merge_col(const nodup_db *db, const nodup_table_info *t, const char *name);
/* One statement; with `rows`, *rows gets how many rows it changed. */
int merge_sql(merge_ctx *c, buf *q, long long *rows);
/* Primary key columns of t as text joined by ',' for alias a. */
void merge_pk_text(buf *q, const nodup_table_info *t, const char *a);
/* "m.nodup_l3 = a.col" for the primary key (`which` "l" or "k"), joined by AND. */
void merge_pk_join(buf *q, const nodup_db *db, const nodup_table_info *t, const char *m,
                   const char *which, const char *a);
/* "SELECT * FROM (SELECT a.pk AS nodup_lp0, first_value(a.pk) OVER
 * nodup_w AS nodup_kp0, ...": the start of a pairs query (merge_level). */
void merge_pk_pairs(buf *q, const nodup_table_info *t, const char *a);
/* " AND (cond)" for a user reference "T(C) WHERE cond". */
void merge_fk_condition(buf *q, const nodup_fk_info *fk);
/* "c.fk1 = m.nodup_l3 AND ...": child rows (alias c) that reference a
 * loser of mapping m (of table x) through fk. */
void merge_fk_on_losers(buf *q, const nodup_db *db, const nodup_table_info *x,
                        const nodup_fk_info *fk);
/* *n: the rows of child that reference a loser of mapping m through fk. */
int merge_count_on_losers(merge_ctx *c, const nodup_table_info *x, const char *m,
                          const nodup_table_info *child, const nodup_fk_info *fk, long long *n);
/* The position in fk of child's column `col` (-1: fk does not hold it). */
int merge_fk_position(const nodup_db *db, const nodup_table_info *child, const nodup_fk_info *fk,
                      const char *col);
/* Child's primary key column j as it will be once re-pointed through m. */
void merge_pk_after_repoint(buf *q, const nodup_db *db, const nodup_table_info *x,
                            const nodup_table_info *child, const nodup_fk_info *fk, size_t j);
/* A pass's duplicate groups into c->groups; *n their number. */
int merge_pass_groups(merge_ctx *c, const nodup_table_info *t, char *const *key, size_t nkey,
                      const char *where, long long *n);
/* A batch's duration, without --batch: what each aims at (merge.c). */
#define MERGE_BATCH_MS 500.0
/* The next timed batch's size, after `batch` took `ms` to merge `groups`
 * groups; *rate is the groups per millisecond averaged so far (0 before
 * the first). */
size_t merge_next_batch(size_t batch, double *rate, long long groups, double ms);
/* The batch's groups (first + 1 .. first + batch) into temp nodup_batch. */
int merge_batch_groups(merge_ctx *c, char *const *key, size_t nkey, long long first,
                       size_t batch);
/* Lock the batch's rows in primary key order (engines that lock rows). */
int merge_batch_lock(merge_ctx *c, const nodup_table_info *t, char *const *key, size_t nkey,
                     const char *where);
/* The batch's pairs query (loser, keeper, rank) for merge_level. */
void merge_batch_pairs(buf *q, merge_ctx *c, const nodup_table_info *t, char *const *key,
                       size_t nkey, const char *where);
/* Drop the references of extra[0..*n) that repeat one the catalog has. */
int merge_drop_known_refs(merge_ctx *c, const nodup_table_info *t, nodup_fk_info *extra,
                          size_t *n);
/* The suspected references to t that neither opt->refs nor opt->ignore_refs name. */
int merge_suspects_find(merge_ctx *c, const nodup_table_info *t, char *const *key, size_t nkey,
                        const nodup_fk_info *extra, size_t nextra, nodup_scan_suspect **s,
                        size_t *n);
/* Refuse while a suspected reference points at a row this run would delete. */
int merge_suspects_check(merge_ctx *c, const nodup_table_info *t, char *const *key,
                         size_t nkey, const char *where, nodup_scan_suspect *s, size_t n,
                         const char *when);

/* ---- merge_repoint.c: one level ---- */

/* Merge the rows `pairs` names (nodup_lp<i>/nodup_kp<i> per primary key
 * column of x, nodup_rn the loser's rank): re-point every reference (the
 * catalog's and `extra`), check, archive, delete, apply the policies
 * (with `fill`, first-non-null for columns without one; never `fixed`). */
int merge_level(merge_ctx *c, const nodup_table_info *x, const char *tname, const char *pairs,
                int depth, const nodup_fk_info *extra, size_t nextra, int fill,
                char *const *fixed, size_t nfixed);

/* ---- merge_collide.c: rows a re-point would make collide ---- */

/* Before re-pointing fk's rows of child through mapping m: merge, one
 * level down, the rows that would collide in each unique index of child
 * holding the reference (refusing under --one-to-one fail). */
int merge_collide(merge_ctx *c, const nodup_table_info *x, const char *m,
                  const nodup_table_info *child, const nodup_fk_info *fk, int depth);
/* --one-to-one fail, before anything is written. */
int merge_one_to_one_check(merge_ctx *c, const nodup_table_info *t, char *const *key,
                           size_t nkey, const char *where, const nodup_fk_info *extra,
                           size_t nextra);
/* The qualified names of the tables whose rows this merge can merge, t's first. */
int merge_reach(merge_ctx *c, const nodup_table_info *t, const nodup_fk_info *extra,
                size_t nextra, char ***reach, size_t *n);

/* ---- merge_survive.c: survivorship and what differed ---- */

/* opt->columns, parsed and checked into c->rules before anything is written. */
int merge_rules(merge_ctx *c, const nodup_table_info *t, char *const *key, size_t nkey,
                const nodup_fk_info *extra, size_t nextra);
/* Per column of x, the policy a level applies (-1: none); *n how many apply. */
int merge_policies(merge_ctx *c, const nodup_table_info *x, int fill, char *const *fixed,
                   size_t nfixed, int **pol, int **ord, size_t *n);
/* Before the delete: each keeper's surviving values into temp table f. */
int merge_policies_collect(merge_ctx *c, const nodup_table_info *x, const char *m,
                           const char *f, const int *pol, const int *ord);
/* After the delete: log and set the keepers' values from f. */
int merge_policies_apply(merge_ctx *c, const nodup_table_info *x, const char *tname,
                         const char *f, const int *pol, size_t npol);
/* Count, per column, the colliding rows that held a value their survivor does not. */
int merge_differed(merge_ctx *c, const nodup_table_info *x, const char *m, char *const *fixed,
                   size_t nfixed);

/* ---- merge_log.c: what undo replays (nodup_steps, nodup_log, nodup_archive) ---- */

/* Record step `kind` ('repoint', 'fill') of table `tname` (as
 * table_info() accepts it) setting `cols`, and log, before the UPDATE,
 * the rows `from` selects (alias a) with their old values and their
 * primary key as it will be: curx[i] for t->pk[i] (NULL: unchanged). */
int merge_log_rows(merge_ctx *c, const char *kind, const char *tname, const nodup_table_info *t,
                   const char *a, char *const *curx, char *const *cols, size_t n,
                   const char *from);
/* Rewrite the keepers of child archived since step `since` to the keys a
 * re-point through m is about to give them. */
int merge_log_rekey(merge_ctx *c, const nodup_table_info *x, const char *m,
                    const nodup_table_info *child, const nodup_fk_info *fk, long long since);
/* Archive the losers of mapping m as a 'delete' step, before they go. */
int merge_log_archive(merge_ctx *c, const nodup_table_info *x, const char *tname,
                      const char *m);

#endif

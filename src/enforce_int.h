/*
 * enforce_int.h -- what the files of nodup_enforce share, and nothing else
 * includes: the run's context, the clean-up passes, the DDL builders, and
 * each mode's entry point.
 *
 * enforce.c holds the public call (checks, the steps both modes share, the
 * report); enforce_locked.c the one-transaction mode and the retried DDL
 * transaction; enforce_online.c the guard trigger, the CONCURRENTLY builds,
 * partitioned tables and --abort; enforce_leftovers.c what an interrupted
 * online run leaves and how every command finds it (declared in
 * internal.h, as other files use it).
 */
#ifndef NODUP_ENFORCE_INT_H
#define NODUP_ENFORCE_INT_H

#include "internal.h"

/* One call of nodup_enforce. */
typedef struct enforce_ctx {
  nodup_db *db;
  const nodup_enforce_options *opt;
  const nodup_merge_options *mo;  /* opt->merge_opt, or the defaults */
  nodup_enforce_report *rep;
  nodup_table_info *t;
  const char *table;        /* as the caller named it (table_info accepts it) */
  const char *const *cols;  /* the key as the caller named it */
  char **key;               /* ... as the catalog spells it */
  size_t nkey;
  const char *where;
  long timeout;
  char guard[64];           /* online: trigger and function name */
  int partitioned;          /* PostgreSQL: a partitioned table */
  int expression;           /* a key term is an expression (lower(email)): a
                             * unique index, never a constraint (PostgreSQL's
                             * constraints take columns only), as with a
                             * predicate */
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

/* How much of the duplicates a clean-up merges, and how. */
typedef enum enforce_pass {
  ENFORCE_PASS_LOCKED,      /* inside the locked mode's transaction: all, no COMMIT */
  ENFORCE_PASS_BOUNDED,     /* in batches, the groups there are now (writers may add
                               groups as fast as a merge removes them) */
  ENFORCE_PASS_ALL          /* in batches, until none is left (behind the guard) */
} enforce_pass;

/* Two text columns per row, as enforce_query_names reads them. */
typedef struct enforce_names {
  char **a, **b;
  size_t n;
  int oom;
} enforce_names;

/* ---- enforce.c ---- */

/* Run one statement (never a multi-statement exec: some carry the user's
 * WHERE); NODUP_ERR_NOMEM when q ran out of memory. */
int enforce_exec(nodup_db *db, buf *q);
/* Refuse, or merge as `pass` says, the duplicates there are now. */
int enforce_clean(enforce_ctx *c, enforce_pass pass);
/* CREATE UNIQUE INDEX [CONCURRENTLY] name ON table (key) [NULLS NOT
 * DISTINCT] [WHERE ...]; enforce_index_ddl: the report's index on c->t. */
void enforce_index_ddl_on(enforce_ctx *c, buf *q, int concurrently, const char *name,
                          const char *table);
void enforce_index_ddl(enforce_ctx *c, buf *q, int concurrently);
/* ALTER TABLE ... ADD CONSTRAINT <index> UNIQUE USING INDEX <index>. */
void enforce_using_index_ddl(enforce_ctx *c, buf *q);
/* ALTER TABLE ... ADD CONSTRAINT <index> UNIQUE [NULLS NOT DISTINCT] (key). */
void enforce_constraint_ddl(enforce_ctx *c, buf *q);
/* Run a catalog query with two text columns into out (zeroed first; left
 * empty on failure). */
int enforce_query_names(nodup_db *db, const char *sql, const char *const *params, int nparams,
                        enforce_names *out);
void enforce_names_free(enforce_names *l);
/* A row_fn adding a row's first two columns to the enforce_names ctx. */
int enforce_read_names(void *ctx, int n, const char *const *v);
/* A partitioned table's unique key must contain the partition key:
 * NODUP_ERR_USAGE naming the missing column; sets c->partitioned. */
int enforce_partition_check(enforce_ctx *c);

/* ---- enforce_locked.c ---- */

/* The locked mode: clean, index and constraint in one transaction under
 * the table lock, retried when the lock is not granted in time. */
int enforce_locked(enforce_ctx *c);

/* ---- enforce_online.c ---- */

/* The online mode (PostgreSQL): guard, clean, CONCURRENTLY, constraint. */
int enforce_online(enforce_ctx *c);
/* The abort mode: remove what an interrupted online run left. */
int enforce_abort(enforce_ctx *c);
/* The key is backed by `index` already: attach the constraint an online
 * run killed after its build never attached (*changed), else nothing. */
int enforce_finish_interrupted(enforce_ctx *c, const char *index, int *changed);
void enforce_partitions_free(enforce_ctx *c);

/* ---- enforce_leftovers.c (beside what internal.h declares) ---- */

/* DROP INDEX CONCURRENTLY IF EXISTS `qualified` (already quoted). */
int enforce_drop_index(nodup_db *db, const char *qualified);

#endif

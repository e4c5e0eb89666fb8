/*
 * bench.h -- what the get-or-create benchmark's driver (bench_goc.c) and its
 * per-engine methods (bench_pg.c, bench_sqlite.c) share.
 *
 * A "method" is one way of doing get-or-create on one engine: nodup, the raw
 * hand-written statement (the speed limit) or the Django-style sequence. The
 * driver owns the table, the threads and the clock; a method only knows how
 * to open a connection for one worker, run one operation on it and close it.
 */
#ifndef NODUP_BENCH_H
#define NODUP_BENCH_H

#include <stdatomic.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "nodup.h"

/* The table every cell runs on; names are quoted wherever SQL uses them. */
#define BENCH_TABLE "t"

/* The value the non-key column gets when a row is created. */
#define BENCH_VALUE "v"

enum { BENCH_MAX_STMTS = 8, BENCH_ERRMSG = 256 };

/*
 * One client thread: its connection, its counters and the first error it
 * saw. `ops` is read by the driver while the thread runs, so it is atomic
 * and on its own cache line; everything else is the thread's own until it
 * is joined.
 */
typedef struct bench_worker {
  _Alignas(64) atomic_long ops;
  /* Set by the driver before the thread starts. */
  const char *target; /* PostgreSQL conninfo or SQLite file path */
  int index;

  /* Connection state, whichever the method uses. */
  nodup_db *db;
  nodup_key *key;
  PGconn *pg;
  sqlite3 *lite;
  sqlite3_stmt *stmt[BENCH_MAX_STMTS];

  /* Results, read by the driver after the join. */
  long hits;     /* hit operations that succeeded */
  long misses;   /* miss operations that succeeded (each created one row) */
  long wrong;    /* succeeded, but the created flag or the id was wrong */
  long errors;   /* operations that returned an error */
  int open_failed;
  int sqlite_synchronous; /* PRAGMA synchronous of an SQLite connection */
  char errmsg[BENCH_ERRMSG]; /* the first error, for the report */
} bench_worker;

/*
 * The outcome of one operation, as the method saw it. `ok` is 0 on error.
 * `found` is 1 when the row existed (a hit), 0 when this call created it,
 * -1 when the method cannot tell. `has_id` is 1 when an id came back.
 */
typedef struct bench_outcome {
  int ok;
  int found;
  int has_id;
} bench_outcome;

typedef struct bench_method {
  const char *name;
  /* Connect and prepare; 0 on success, else -1 with w->errmsg set. */
  int (*open)(bench_worker *w);
  /* Get or create the row with key `key`; `value` goes to the new row. */
  bench_outcome (*op)(bench_worker *w, const char *key, const char *value);
  void (*close)(bench_worker *w);
} bench_method;

/* bench_nodup.c: nodup_get_or_create(); `target` is a nodup URL. */
extern const bench_method bench_nodup;

/* bench_pg.c: `target` is a libpq conninfo string. */
extern const bench_method bench_pg_raw, bench_pg_django;

/* bench_sqlite.c: `target` is the database file's path. */
extern const bench_method bench_sqlite_raw, bench_sqlite_django;

/* PRAGMA synchronous of an SQLite connection, or -1. */
int bench_sqlite_synchronous(sqlite3 *db);

/* Record the first error of a worker (printf-style); later ones are only
 * counted. */
void bench_worker_error(bench_worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* NODUP_BENCH_H */

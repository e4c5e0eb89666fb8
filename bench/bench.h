/*
 * bench.h -- what the get-or-create benchmark's parts share: the driver
 * (bench_goc.c), the report (bench_report.c), the CPU clocks (bench_cpu.c)
 * and the methods (bench_nodup.c, bench_pg.c, bench_sqlite.c).
 *
 * A "method" is one way of doing get-or-create on one engine: nodup, the raw
 * hand-written statement (the speed limit), the Django-style sequence, or
 * one of the hand-written pieces and strategies issue 14 measures nodup
 * against (a lone SELECT, a lone INSERT, lookup-first, insert-first). The
 * driver owns the table, the threads and the clock; a method only knows how
 * to open a connection for one worker, run one operation on it and close it.
 * The "pooled" engine is PostgreSQL reached through a transaction-mode
 * pooler (PgBouncer): the same table, with methods that keep nothing on the
 * server between transactions.
 */
#ifndef NODUP_BENCH_H
#define NODUP_BENCH_H

#include <pthread.h>
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
  int unnamed; /* PostgreSQL: statements sent unnamed, none prepared */
  sqlite3 *lite;
  sqlite3_stmt *stmt[BENCH_MAX_STMTS];

  /* Results, read by the driver after the join. */
  long hits;   /* hit operations that succeeded */
  long misses; /* miss operations that succeeded (each created one row) */
  long wrong;  /* succeeded, but the created flag or the id was wrong */
  long errors; /* operations that returned an error */
  int open_failed;
  int sqlite_synchronous;    /* PRAGMA synchronous of an SQLite connection */
  int backend_pid;           /* PostgreSQL server process, for its CPU time */
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
  /* 1: the worker's target is the nodup URL (nodup_open()), 0: the
   * engine's native one (PQconnectdb(), sqlite3_open_v2()). */
  int nodup;
  /* Connect and prepare; 0 on success, else -1 with w->errmsg set. */
  int (*open)(bench_worker *w);
  /* Get or create the row with key `key`; `value` goes to the new row. */
  bench_outcome (*op)(bench_worker *w, const char *key, const char *value);
  void (*close)(bench_worker *w);
} bench_method;

/* bench_nodup.c: nodup_get_or_create(); `target` is a nodup URL. The
 * forced variants (PostgreSQL only) pin the key handle's strategy instead of
 * letting it choose from the hit rate it observes: lookup first, insert and
 * lookup pipelined, insert first. They are there to explain the adaptive
 * choice, not to be compared with the hand-written methods. */
extern const bench_method bench_nodup;
extern const bench_method bench_nodup_lookup, bench_nodup_pipe,
    bench_nodup_insert;

/* bench_pg.c: `target` is a libpq conninfo string. The pooled variants
 * send every statement unnamed (PQexecParams, or PQexec when it has no
 * parameters): a named prepared statement lives in one server session, and
 * a transaction-mode pooler gives each transaction whichever session is
 * free. `select` and `insert` are single statements that can only serve
 * one side of get-or-create (a hit, a miss); `lookup` and `insertfirst` are
 * the two ways of writing a correct get-or-create by hand, one statement
 * per round trip. */
extern const bench_method bench_pg_raw, bench_pg_django;
extern const bench_method bench_pg_raw_pooled, bench_pg_django_pooled;
extern const bench_method bench_pg_select, bench_pg_insert, bench_pg_lookup,
    bench_pg_insertfirst;
extern const bench_method bench_pg_select_pooled, bench_pg_insert_pooled,
    bench_pg_lookup_pooled, bench_pg_insertfirst_pooled;

/* bench_sqlite.c: `target` is the database file's path. `select` is the
 * raw method's prepared SELECT alone, for hits. */
extern const bench_method bench_sqlite_raw, bench_sqlite_django,
    bench_sqlite_select;

/* PRAGMA synchronous of an SQLite connection, or -1. */
int bench_sqlite_synchronous(sqlite3 *db);

/* --- the driver's tables of results ------------------------------------- */

/* Mixes in the order of their hit share; MIX_SHIFT runs 90/10 through the
 * warm-up and the first half of the measured time, then 10/90. */
enum { MIX_HITS, MIX_90, MIX_HALF, MIX_10, MIX_MISSES, MIX_SHIFT, NMIXES };
enum { ENGINE_PG, ENGINE_SQLITE, ENGINE_POOLED, NENGINES };
/* Methods in the order of the report's columns. An engine that has no such
 * method leaves its entry NULL (bench_engine.methods). */
enum {
  METHOD_NODUP,
  METHOD_NODUP_LOOKUP,
  METHOD_NODUP_PIPE,
  METHOD_NODUP_INSERT,
  METHOD_SELECT,
  METHOD_INSERT,
  METHOD_LOOKUP,
  METHOD_INSERTFIRST,
  METHOD_RAW,
  METHOD_DJANGO,
  NMETHODS
};
enum { MAX_THREAD_COUNTS = 8, MAX_ROUNDS = 15, MAX_ERRORS_PER_THREAD = 100 };

extern const char *const bench_mix_names[NMIXES];
extern const char *const bench_method_names[NMETHODS];
extern const char *const bench_engine_names[NENGINES];

/* Percent of calls that hit in `mix`; `phase` is 0 or 1, and matters only
 * for MIX_SHIFT. */
int bench_mix_hit_percent(int mix, int phase);

/* Does `method` mean anything on `mix`? A lone SELECT cannot create and a
 * lone INSERT cannot find: they run only on pure hits and pure misses. */
int bench_method_fits_mix(int method, int mix);

typedef struct bench_options {
  const char *pg;         /* conninfo, NULL when not given */
  const char *pooled;     /* the pooler's conninfo, NULL when not given */
  const char *pooler_label; /* e.g. "PgBouncer 1.18.0, pool size 16" */
  int pooler_pid;         /* the pooler's process, for its CPU; 0: unknown */
  const char *sqlite_dir; /* NULL: a fresh directory under $TMPDIR or /tmp */
  double seconds, warmup;
  int rounds;
  long keys;
  int run[NENGINES];
  int mix_on[NMIXES], method_on[NMETHODS];
  int threads[NENGINES][MAX_THREAD_COUNTS];
  int nthreads[NENGINES];
} bench_options;

/* What one (engine, threads, mix, method) cell measured over all rounds. */
typedef struct bench_cell {
  double ops[MAX_ROUNDS]; /* ops/s per round; < 0: the round failed */
  double cpu[MAX_ROUNDS]; /* CPU µs per operation; < 0: not measurable */
  double client[MAX_ROUNDS]; /* of which the client threads' */
  int nrounds;
  long checked; /* operations whose outcome was checked */
  long wrong, errors;
  int rows_bad; /* rounds whose final row count was off */
  char errmsg[BENCH_ERRMSG];
} bench_cell;

/* One engine: how to reset its table and where its connections go. */
typedef struct bench_engine {
  const char *name;
  int pooled;  /* clients go through the pooler; pg_admin does not */
  const bench_method *methods[NMETHODS];
  char nodup_target[4096];  /* URL given to nodup_open() */
  char native_target[4096]; /* given to PQconnectdb() / sqlite3_open_v2() */
  PGconn *pg_admin;
  sqlite3 *lite_admin;
  int synchronous[NMETHODS]; /* SQLite: PRAGMA synchronous seen per method */
  bench_cell results[MAX_THREAD_COUNTS][NMIXES][NMETHODS];
} bench_engine;

/* --- bench_cpu.c: CPU clocks (Linux) ------------------------------------ */

/* CPU seconds a thread has used, or -1. */
double bench_cpu_thread(pthread_t tid);

/* CPU seconds a process has used (/proc/PID/schedstat: kernel time
 * included), or -1 when it cannot be read. */
double bench_cpu_process(int pid);

/* Is `pid` a PostgreSQL server process on this machine? */
int bench_is_local_postgres(int pid);

enum { BENCH_POOL_MAX_PIDS = 256 };

/*
 * The server side of a pooled run: every client backend of the database
 * (the pool's server connections, whichever client they serve) and the
 * pooler process. Sampled before and after the measured window; a backend
 * that appears in between counts from zero.
 */
typedef struct bench_pool_cpu {
  int n;
  int pid[BENCH_POOL_MAX_PIDS];
  double seconds[BENCH_POOL_MAX_PIDS];
} bench_pool_cpu;

/* Sample through `admin` (a direct connection, whose own backend is left
 * out) and `pooler_pid` (0: none); 0 on success, -1 when some figure
 * cannot be read (a remote server, no /proc). */
int bench_pool_cpu_sample(PGconn *admin, int pooler_pid, bench_pool_cpu *out);

/* CPU seconds used between two samples. */
double bench_pool_cpu_delta(const bench_pool_cpu *before,
                            const bench_pool_cpu *after);

/* bench_options.c: fill `o` from the command line (exits 0 after --help);
 * 0 on success, -1 after printing what is wrong. */
int bench_parse_options(int argc, char **argv, bench_options *o);

/* bench_report.c: print the Markdown report of every engine that ran. */
void bench_report_print(const bench_engine *engines, const bench_options *o);

/* Record the first error of a worker (printf-style); later ones are only
 * counted. */
void bench_worker_error(bench_worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* NODUP_BENCH_H */

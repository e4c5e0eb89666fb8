/*
 * bench_goc.c -- get-or-create throughput, nodup against the hand-written
 * limit ("raw") and the Django-style sequence, side by side.
 *
 * For each engine, thread count, mix (pure hits, 90/10, 50/50 and 10/90
 * hits/misses, pure misses, and "shift", whose hit rate drops from 90% to
 * 10% halfway through the measured time) and method, a cell starts from a
 * fresh table
 * "t"("id" PRIMARY KEY, "k" UNIQUE, "v") holding --keys rows, gives every
 * thread its own connection, lets them run for a warm-up and then counts the
 * operations that complete in --seconds. A hit looks up a random existing
 * key; a miss uses a key nobody has used (thread number and a counter), so
 * every operation's expected outcome is known and checked: each method must
 * return an id, nodup's created flag must match, and the table must hold
 * exactly one new row per miss at the end. The driver prints one Markdown
 * table per engine on stdout (progress goes to stderr).
 *
 * With --pooled the same cells run a third time through a transaction-mode
 * pooler in front of the same server (the "pooled" engine): nodup detects
 * the pooler and sends its statements unnamed, and the raw and django
 * methods do the same (bench_pg.c). Tables are reset and counted over the
 * direct connection.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

const char *const bench_mix_names[NMIXES] = {"hits",  "90/10",  "50/50",
                                             "10/90", "misses", "shift"};
const char *const bench_method_names[NMETHODS] = {
    [METHOD_NODUP] = "nodup",
    [METHOD_NODUP_LOOKUP] = "nodup-lookup",
    [METHOD_NODUP_PIPE] = "nodup-pipe",
    [METHOD_NODUP_INSERT] = "nodup-insert",
    [METHOD_SELECT] = "select",
    [METHOD_INSERT] = "insert",
    [METHOD_LOOKUP] = "lookup",
    [METHOD_INSERTFIRST] = "insertfirst",
    [METHOD_RAW] = "raw",
    [METHOD_DJANGO] = "django",
};
const char *const bench_engine_names[NENGINES] = {"pg", "sqlite", "pooled"};

int bench_mix_hit_percent(int mix, int phase) {
  static const int percent[NMIXES] = {
      [MIX_HITS] = 100, [MIX_90] = 90,    [MIX_HALF] = 50,
      [MIX_10] = 10,    [MIX_MISSES] = 0, [MIX_SHIFT] = 90};
  return mix == MIX_SHIFT && phase ? 10 : percent[mix];
}

int bench_method_fits_mix(int method, int mix) {
  return method == METHOD_SELECT   ? mix == MIX_HITS
         : method == METHOD_INSERT ? mix == MIX_MISSES
                                   : 1;
}

/* The cell being run; the workers read it. `phase` turns 1 halfway through
 * the measured time (only MIX_SHIFT looks at it). */
static struct {
  const bench_method *method;
  int mix;
  long keys;
  atomic_int stop;
  atomic_int phase;
  pthread_barrier_t start;
} g_run;

void bench_worker_error(bench_worker *w, const char *fmt, ...) {
  if (w->errmsg[0] != '\0')
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->errmsg, sizeof w->errmsg, fmt, ap);
  va_end(ap);
  /* libpq messages end with a newline; the report wants one line. */
  for (char *p = w->errmsg; *p; p++)
    if (*p == '\n')
      *p = ' ';
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* splitmix64: a tiny per-thread generator with a fixed seed. */
static uint64_t rng_next(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

/* Record one operation's outcome against what the key implies. */
static void worker_check(bench_worker *w, bench_outcome o, int hit) {
  if (!o.ok) {
    w->errors++;
    return;
  }
  if (hit)
    w->hits++;
  else
    w->misses++;
  if (!o.has_id || (o.found >= 0 && o.found != hit)) {
    if (w->wrong == 0)
      bench_worker_error(w, "%s: expected a %s, got %s", g_run.method->name,
                         hit ? "hit" : "miss",
                         !o.has_id ? "no id" : (o.found ? "a hit" : "a miss"));
    w->wrong++;
  }
}

static void *worker_main(void *arg) {
  bench_worker *w = arg;
  const bench_method *m = g_run.method;
  uint64_t rng = 0x5eed0000u + (uint64_t)w->index;
  long seq = 0, done = 0;
  char key[64];

  w->open_failed = m->open(w) != 0;
  pthread_barrier_wait(&g_run.start);
  while (!w->open_failed &&
         !atomic_load_explicit(&g_run.stop, memory_order_relaxed) &&
         w->errors < MAX_ERRORS_PER_THREAD) {
    int percent = bench_mix_hit_percent(
        g_run.mix, atomic_load_explicit(&g_run.phase, memory_order_relaxed));
    int hit = percent == 100 ||
              (percent > 0 && rng_next(&rng) % 100 < (uint64_t)percent);
    if (hit)
      snprintf(key, sizeof key, "h%ld",
               (long)(rng_next(&rng) % (uint64_t)g_run.keys) + 1);
    else
      snprintf(key, sizeof key, "m%d.%ld", w->index, ++seq);
    bench_outcome o = m->op(w, key, BENCH_VALUE);
    worker_check(w, o, hit);
    if (o.ok)
      atomic_store_explicit(&w->ops, ++done, memory_order_relaxed);
  }
  m->close(w);
  return NULL;
}

/* --- tables -------------------------------------------------------------- */

static int pg_admin_exec(bench_engine *e, const char *sql, int nparams,
                         const char *const *params, char *err, size_t size) {
  PGresult *res =
      PQexecParams(e->pg_admin, sql, nparams, NULL, params, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(res);
  int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok)
    snprintf(err, size, "%s: %s", sql, PQerrorMessage(e->pg_admin));
  PQclear(res);
  return ok ? 0 : -1;
}

/* A fresh "t" with `keys` rows "h1".."hN". Autovacuum is off on it (an
 * insert-only table would be vacuumed every 1,000 rows or so, at random
 * moments, on the same cores), and CHECKPOINT so that no cell pays for
 * the previous one's dirty pages. */
static int pg_reset_table(bench_engine *e, long keys, char *err, size_t size) {
  char n[32];
  snprintf(n, sizeof n, "%ld", keys);
  const char *params[] = {n, BENCH_VALUE};
  if (pg_admin_exec(e, "DROP TABLE IF EXISTS \"t\"", 0, NULL, err, size) ||
      pg_admin_exec(e,
                    "CREATE TABLE \"t\" (\"id\" serial PRIMARY KEY, "
                    "\"k\" text UNIQUE, \"v\" text) "
                    "WITH (autovacuum_enabled = off)",
                    0, NULL, err, size) ||
      pg_admin_exec(e,
                    "INSERT INTO \"t\" (\"k\", \"v\") SELECT 'h' || g, $2 "
                    "FROM generate_series(1, $1::int) AS g",
                    2, params, err, size) ||
      pg_admin_exec(e, "ANALYZE \"t\"", 0, NULL, err, size))
    return -1;
  char ignored[BENCH_ERRMSG];
  pg_admin_exec(e, "CHECKPOINT", 0, NULL, ignored, sizeof ignored);
  return 0;
}

static long pg_count_rows(bench_engine *e) {
  PGresult *res = PQexec(e->pg_admin, "SELECT count(*) FROM \"t\"");
  long n = PQresultStatus(res) == PGRES_TUPLES_OK
               ? strtol(PQgetvalue(res, 0, 0), NULL, 10)
               : -1;
  PQclear(res);
  return n;
}

/* A new database file with WAL and `keys` rows "h1".."hN". */
static int lite_reset_table(bench_engine *e, long keys, char *err,
                            size_t size) {
  static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
  char path[4200];
  sqlite3_stmt *fill = NULL;
  int rc;

  sqlite3_close(e->lite_admin);
  e->lite_admin = NULL;
  for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
    snprintf(path, sizeof path, "%s%s", e->native_target, suffixes[i]);
    if (unlink(path) != 0 && errno != ENOENT) {
      snprintf(err, size, "unlink %.200s: %s", path, strerror(errno));
      return -1;
    }
  }
  rc = sqlite3_open_v2(e->native_target, &e->lite_admin,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_busy_timeout(e->lite_admin, 5000);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(e->lite_admin,
                      "PRAGMA journal_mode=WAL;"
                      "CREATE TABLE \"t\" (\"id\" INTEGER PRIMARY KEY, "
                      "\"k\" TEXT UNIQUE, \"v\" TEXT);"
                      "BEGIN",
                      NULL, NULL, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(e->lite_admin,
                            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL "
                            "SELECT n + 1 FROM g WHERE n < ?1) "
                            "INSERT INTO \"t\" (\"k\", \"v\") "
                            "SELECT 'h' || n, ?2 FROM g",
                            -1, &fill, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(fill, 1, keys);
    sqlite3_bind_text(fill, 2, BENCH_VALUE, -1, SQLITE_STATIC);
    rc = sqlite3_step(fill) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
  }
  sqlite3_finalize(fill);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(e->lite_admin, "COMMIT", NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    snprintf(err, size, "sqlite setup: %s", sqlite3_errmsg(e->lite_admin));
  return rc == SQLITE_OK ? 0 : -1;
}

static long lite_count_rows(bench_engine *e) {
  sqlite3_stmt *stmt = NULL;
  long n = -1;
  if (sqlite3_prepare_v2(e->lite_admin, "SELECT count(*) FROM \"t\"", -1, &stmt,
                         NULL) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW)
    n = (long)sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  return n;
}

/* --- cells --------------------------------------------------------------- */

static long sum_ops(bench_worker *w, int n) {
  long total = 0;
  for (int i = 0; i < n; i++)
    total += atomic_load_explicit(&w[i].ops, memory_order_relaxed);
  return total;
}

/*
 * CPU seconds used so far by the client threads and, on PostgreSQL, by the
 * server side: each client's own backend on a direct connection, the whole
 * pool and the pooler through one (`pool`, sampled into `sample`). -1 when
 * some of it cannot be read (a remote server, no /proc). `*client` gets
 * the client threads' share, which tells a gap in the library's own work
 * from one in the server's.
 */
static double cpu_seconds(const bench_worker *w, const pthread_t *tid, int n,
                          const bench_engine *e, const bench_options *o,
                          bench_pool_cpu *sample, double *client) {
  double total = 0;
  *client = 0;
  for (int i = 0; i < n; i++) {
    double s = bench_cpu_thread(tid[i]);
    if (s < 0)
      return -1;
    total += s;
    *client += s;
    if (w[i].backend_pid <= 0)
      continue;
    if ((s = bench_cpu_process(w[i].backend_pid)) < 0)
      return -1;
    total += s;
  }
  if (e->pooled &&
      bench_pool_cpu_sample(e->pg_admin, o->pooler_pid, sample) != 0)
    return -1;
  return total;
}

/* Fold the workers' counters into `r`; check the row count. */
static void collect(bench_engine *e, int method, bench_worker *w, int nthreads,
                    long keys, bench_cell *r) {
  long misses = 0, errors = 0;
  for (int i = 0; i < nthreads; i++) {
    misses += w[i].misses;
    errors += w[i].errors;
    r->checked += w[i].hits + w[i].misses;
    r->wrong += w[i].wrong;
    if (w[i].errmsg[0] != '\0' && r->errmsg[0] == '\0')
      snprintf(r->errmsg, sizeof r->errmsg, "%s", w[i].errmsg);
    if (w[i].sqlite_synchronous >= 0)
      e->synchronous[method] = w[i].sqlite_synchronous;
  }
  r->errors += errors;
  long rows = e->pg_admin ? pg_count_rows(e) : lite_count_rows(e);
  if (errors == 0 && rows != keys + misses) {
    r->rows_bad++;
    if (r->errmsg[0] == '\0')
      snprintf(r->errmsg, sizeof r->errmsg,
               "table has %ld rows, expected %ld + %ld misses", rows, keys,
               misses);
  }
}

/*
 * Run one cell once and append its ops/s to `r` (-1 when it could not run).
 */
static void run_cell(bench_engine *e, int method, int nthreads, int mix,
                     const bench_options *o, bench_cell *r) {
  const bench_method *m = e->methods[method];
  double *ops = &r->ops[r->nrounds], *cpu = &r->cpu[r->nrounds],
         *client = &r->client[r->nrounds];
  char err[BENCH_ERRMSG] = "";
  r->nrounds++;
  *ops = *cpu = *client = -1;
  int rc = e->pg_admin ? pg_reset_table(e, o->keys, err, sizeof err)
                       : lite_reset_table(e, o->keys, err, sizeof err);
  if (rc != 0) {
    snprintf(r->errmsg, sizeof r->errmsg, "%s", err);
    r->errors++;
    return;
  }
  bench_worker *w = aligned_alloc(64, sizeof *w * (size_t)nthreads);
  pthread_t *tid = calloc((size_t)nthreads, sizeof *tid);
  if (w == NULL || tid == NULL) {
    fprintf(stderr, "bench_goc: out of memory\n");
    exit(1);
  }
  memset(w, 0, sizeof *w * (size_t)nthreads);
  g_run.method = m;
  g_run.mix = mix;
  g_run.keys = o->keys;
  atomic_store(&g_run.stop, 0);
  atomic_store(&g_run.phase, 0);
  pthread_barrier_init(&g_run.start, NULL, (unsigned)nthreads + 1);
  for (int i = 0; i < nthreads; i++) {
    w[i].index = i;
    w[i].sqlite_synchronous = -1;
    w[i].target = m->nodup ? e->nodup_target : e->native_target;
    if (pthread_create(&tid[i], NULL, worker_main, &w[i]) != 0) {
      fprintf(stderr, "bench_goc: cannot start thread %d\n", i + 1);
      exit(1);
    }
  }
  pthread_barrier_wait(&g_run.start);
  int failed = 0;
  for (int i = 0; i < nthreads; i++) {
    failed |= w[i].open_failed;
    /* Through a pooler the "backend" libpq reports is the pooler's own
     * number; a remote server's process is not ours to read. */
    if (w[i].backend_pid > 0 &&
        (e->pooled || !bench_is_local_postgres(w[i].backend_pid)))
      w[i].backend_pid = -1;
  }
  if (!failed) {
    static bench_pool_cpu pool1, pool2; /* one cell runs at a time */
    sleep_seconds(o->warmup);
    long c1 = sum_ops(w, nthreads);
    double cl1, cl2, t1 = now_seconds(),
                     cpu1 = cpu_seconds(w, tid, nthreads, e, o, &pool1, &cl1);
    /* The warm-up belongs to the first phase: a shift cell measures
     * half its time on the workload the methods warmed up on. */
    sleep_seconds(o->seconds / 2);
    atomic_store(&g_run.phase, 1);
    sleep_seconds(o->seconds - o->seconds / 2);
    long c2 = sum_ops(w, nthreads);
    double t2 = now_seconds(),
           cpu2 = cpu_seconds(w, tid, nthreads, e, o, &pool2, &cl2);
    *ops = (double)(c2 - c1) / (t2 - t1);
    if (cpu1 >= 0 && cpu2 >= 0 && e->pooled)
      cpu2 += bench_pool_cpu_delta(&pool1, &pool2);
    if (cpu1 >= 0 && cpu2 >= 0 && c2 > c1) {
      *cpu = (cpu2 - cpu1) / (double)(c2 - c1) * 1e6;
      *client = (cl2 - cl1) / (double)(c2 - c1) * 1e6;
    }
  }
  atomic_store(&g_run.stop, 1);
  for (int i = 0; i < nthreads; i++)
    pthread_join(tid[i], NULL);
  pthread_barrier_destroy(&g_run.start);
  if (failed)
    r->errors++;
  collect(e, method, w, nthreads, o->keys, r);
  free(w);
  free(tid);
}

/* The methods that run on `mix` of engine `e`, in column order; their
 * count. */
static int methods_to_run(const bench_engine *e, int mix,
                          const bench_options *o, int *out) {
  int n = 0;
  for (int m = 0; m < NMETHODS; m++)
    if (o->method_on[m] && e->methods[m] != NULL &&
        bench_method_fits_mix(m, mix))
      out[n++] = m;
  return n;
}

/*
 * All rounds of one row (thread count, mix) run before the next row, the
 * methods interleaved and their order rotated every round. The machine's
 * load drifts over minutes, and a ratio is only fair between measurements
 * taken side by side: each round's nodup run is compared with the same
 * round's runs of the other methods.
 */
static void run_engine(bench_engine *e, int engine_id, const bench_options *o) {
  int order[NMETHODS];
  for (int t = 0; t < o->nthreads[engine_id]; t++)
    for (int mix = 0; mix < NMIXES; mix++) {
      int n = o->mix_on[mix] ? methods_to_run(e, mix, o, order) : 0;
      for (int round = 0; n > 0 && round < o->rounds; round++)
        for (int k = 0; k < n; k++) {
          int m = order[(round + k) % n];
          bench_cell *r = &e->results[t][mix][m];
          run_cell(e, m, o->threads[engine_id][t], mix, o, r);
          fprintf(
              stderr,
              "[%s %2d threads %-6s round %d/%d] %-12s %10.0f ops/s%s\n",
              e->name, o->threads[engine_id][t], bench_mix_names[mix],
              round + 1, o->rounds, e->methods[m]->name, r->ops[r->nrounds - 1],
              r->errors || r->wrong || r->rows_bad ? "  (check failed)" : "");
        }
    }
}

/* --- setup -------------------------------------------------------------- */

/* nodup and its forced strategies: the same on both PostgreSQL engines (the
 * library detects the pooler itself). */
static void set_pg_methods(bench_engine *e) {
  e->methods[METHOD_NODUP] = &bench_nodup;
  e->methods[METHOD_NODUP_LOOKUP] = &bench_nodup_lookup;
  e->methods[METHOD_NODUP_PIPE] = &bench_nodup_pipe;
  e->methods[METHOD_NODUP_INSERT] = &bench_nodup_insert;
}

static int open_pg(bench_engine *e, const bench_options *o) {
  e->name = "postgresql";
  set_pg_methods(e);
  e->methods[METHOD_SELECT] = &bench_pg_select;
  e->methods[METHOD_INSERT] = &bench_pg_insert;
  e->methods[METHOD_LOOKUP] = &bench_pg_lookup;
  e->methods[METHOD_INSERTFIRST] = &bench_pg_insertfirst;
  e->methods[METHOD_RAW] = &bench_pg_raw;
  e->methods[METHOD_DJANGO] = &bench_pg_django;
  snprintf(e->nodup_target, sizeof e->nodup_target, "%s", o->pg);
  snprintf(e->native_target, sizeof e->native_target, "%s", o->pg);
  e->pg_admin = PQconnectdb(o->pg);
  if (PQstatus(e->pg_admin) != CONNECTION_OK) {
    fprintf(stderr, "bench_goc: cannot connect to %s: %s", o->pg,
            PQerrorMessage(e->pg_admin));
    return -1;
  }
  PQclear(PQexec(e->pg_admin, "SET client_min_messages = warning"));
  return 0;
}

/* The pooled engine: clients connect to the pooler, the driver's own
 * connection (table resets, row counts, the pool's CPU) goes straight to the
 * server, so that it takes no server connection from the pool. */
static int open_pooled(bench_engine *e, const bench_options *o) {
  e->name = "pooled";
  e->pooled = 1;
  set_pg_methods(e);
  e->methods[METHOD_SELECT] = &bench_pg_select_pooled;
  e->methods[METHOD_INSERT] = &bench_pg_insert_pooled;
  e->methods[METHOD_LOOKUP] = &bench_pg_lookup_pooled;
  e->methods[METHOD_INSERTFIRST] = &bench_pg_insertfirst_pooled;
  e->methods[METHOD_RAW] = &bench_pg_raw_pooled;
  e->methods[METHOD_DJANGO] = &bench_pg_django_pooled;
  snprintf(e->nodup_target, sizeof e->nodup_target, "%s", o->pooled);
  snprintf(e->native_target, sizeof e->native_target, "%s", o->pooled);
  e->pg_admin = PQconnectdb(o->pg);
  if (PQstatus(e->pg_admin) != CONNECTION_OK) {
    fprintf(stderr, "bench_goc: cannot connect to %s: %s", o->pg,
            PQerrorMessage(e->pg_admin));
    return -1;
  }
  PQclear(PQexec(e->pg_admin, "SET client_min_messages = warning"));
  PGconn *probe = PQconnectdb(o->pooled);
  int ok = PQstatus(probe) == CONNECTION_OK;
  if (!ok)
    fprintf(stderr, "bench_goc: cannot connect to the pooler at %s: %s",
            o->pooled, PQerrorMessage(probe));
  PQfinish(probe);
  return ok ? 0 : -1;
}

static int open_sqlite(bench_engine *e, bench_options *o, char *made_dir,
                       size_t size) {
  e->name = "sqlite";
  /* No forced strategies: SQLite's get-or-create has one way (a lookup,
   * then the insert in a write transaction only on a miss). */
  e->methods[METHOD_NODUP] = &bench_nodup;
  e->methods[METHOD_SELECT] = &bench_sqlite_select;
  e->methods[METHOD_RAW] = &bench_sqlite_raw;
  e->methods[METHOD_DJANGO] = &bench_sqlite_django;
  for (int m = 0; m < NMETHODS; m++)
    e->synchronous[m] = -1;
  if (o->sqlite_dir == NULL) {
    const char *tmp = getenv("TMPDIR");
    snprintf(made_dir, size, "%s/nodup-bench.XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(made_dir) == NULL) {
      fprintf(stderr, "bench_goc: mkdtemp %s: %s\n", made_dir, strerror(errno));
      return -1;
    }
    o->sqlite_dir = made_dir;
  }
  if (snprintf(e->native_target, sizeof e->native_target, "%s/bench.db",
               o->sqlite_dir) >= (int)sizeof e->native_target ||
      snprintf(e->nodup_target, sizeof e->nodup_target, "sqlite:%s",
               e->native_target) >= (int)sizeof e->nodup_target) {
    fprintf(stderr, "bench_goc: --sqlite-dir too long\n");
    return -1;
  }
  return 0;
}

static void close_sqlite(bench_engine *e, const char *made_dir) {
  static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
  char path[4200];
  sqlite3_close(e->lite_admin);
  e->lite_admin = NULL;
  for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
    snprintf(path, sizeof path, "%s%s", e->native_target, suffixes[i]);
    unlink(path);
  }
  if (made_dir[0] != '\0')
    rmdir(made_dir);
}

int main(int argc, char **argv) {
  static bench_engine engines[NENGINES];
  char made_dir[4096] = "";
  bench_options o;
  int status = 0;

  if (bench_parse_options(argc, argv, &o) != 0)
    return 2;
  if ((o.run[ENGINE_PG] && open_pg(&engines[ENGINE_PG], &o) != 0) ||
      (o.run[ENGINE_SQLITE] && open_sqlite(&engines[ENGINE_SQLITE], &o,
                                           made_dir, sizeof made_dir) != 0) ||
      (o.run[ENGINE_POOLED] && open_pooled(&engines[ENGINE_POOLED], &o) != 0)) {
    PQfinish(engines[ENGINE_PG].pg_admin);
    PQfinish(engines[ENGINE_POOLED].pg_admin);
    return 1;
  }
  int cells = 0, order[NMETHODS];
  for (int id = 0; id < NENGINES; id++)
    for (int mix = 0; o.run[id] && mix < NMIXES; mix++)
      cells += o.mix_on[mix] ? o.nthreads[id] *
                                   methods_to_run(&engines[id], mix, &o, order)
                             : 0;
  fprintf(stderr, "bench_goc: %d cells × %d round(s), about %.0f s\n", cells,
          o.rounds, cells * o.rounds * (o.seconds + o.warmup + 0.3));
  for (int id = 0; id < NENGINES; id++)
    if (o.run[id])
      run_engine(&engines[id], id, &o);
  bench_report_print(engines, &o);
  for (int id = 0; id < NENGINES; id++)
    for (int t = 0; o.run[id] && t < o.nthreads[id]; t++)
      for (int mix = 0; mix < NMIXES; mix++)
        for (int m = 0; m < NMETHODS; m++) {
          const bench_cell *r = &engines[id].results[t][mix][m];
          if (r->errors || r->wrong || r->rows_bad)
            status = 1;
        }
  PQfinish(engines[ENGINE_PG].pg_admin);
  PQfinish(engines[ENGINE_POOLED].pg_admin);
  if (o.run[ENGINE_SQLITE])
    close_sqlite(&engines[ENGINE_SQLITE], made_dir);
  return status;
}

/*
 * bench_goc.c -- get-or-create throughput, nodup against the hand-written
 * limit ("raw") and the Django-style sequence, side by side.
 *
 * For each engine, thread count, mix (50% hits / 50% misses, pure hits, pure
 * misses) and method, a cell starts from a fresh table
 * "t"("id" PRIMARY KEY, "k" UNIQUE, "v") holding --keys rows, gives every
 * thread its own connection, lets them run for a warm-up and then counts the
 * operations that complete in --seconds. A hit looks up a random existing
 * key; a miss uses a key nobody has used (thread number and a counter), so
 * every operation's expected outcome is known and checked: each method must
 * return an id, nodup's created flag must match, and the table must hold
 * exactly one new row per miss at the end. The driver prints one Markdown
 * table per engine on stdout (progress goes to stderr).
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

enum { MIX_HALF, MIX_HITS, MIX_MISSES, NMIXES };
enum { ENGINE_PG, ENGINE_SQLITE, NENGINES };
enum { METHOD_NODUP, METHOD_RAW, METHOD_DJANGO, NMETHODS };
enum { MAX_THREAD_COUNTS = 8, MAX_ROUNDS = 15, MAX_ERRORS_PER_THREAD = 100 };

static const char *const mix_names[NMIXES] = {"50/50", "hits", "misses"};
static const char *const method_names[NMETHODS] = {"nodup", "raw", "django"};

typedef struct options {
  const char *pg;         /* conninfo, NULL when not given */
  const char *sqlite_dir; /* NULL: a fresh directory under $TMPDIR or /tmp */
  double seconds, warmup;
  int rounds;
  long keys;
  int run[NENGINES];
  int mix_on[NMIXES], method_on[NMETHODS];
  int threads[NENGINES][MAX_THREAD_COUNTS];
  int nthreads[NENGINES];
} options;

/* What one (engine, threads, mix, method) cell measured over all rounds. */
typedef struct cell_result {
  double ops[MAX_ROUNDS]; /* ops/s per round; < 0: the round failed */
  int nrounds;
  long checked; /* operations whose outcome was checked */
  long wrong, errors;
  int rows_bad; /* rounds whose final row count was off */
  char errmsg[BENCH_ERRMSG];
} cell_result;

/* One engine: how to reset its table and where its connections go. */
typedef struct engine {
  const char *name;
  const bench_method *methods[NMETHODS];
  char nodup_target[4096];  /* URL given to nodup_open() */
  char native_target[4096]; /* given to PQconnectdb() / sqlite3_open_v2() */
  PGconn *pg_admin;
  sqlite3 *lite_admin;
  int synchronous[NMETHODS]; /* SQLite: PRAGMA synchronous seen per method */
  cell_result results[MAX_THREAD_COUNTS][NMIXES][NMETHODS];
} engine;

/* The cell being run; the workers read it. */
static struct {
  const bench_method *method;
  int mix;
  long keys;
  atomic_int stop;
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
    int hit = g_run.mix == MIX_HITS ||
              (g_run.mix == MIX_HALF && (rng_next(&rng) >> 63) != 0);
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

static int pg_admin_exec(engine *e, const char *sql, int nparams,
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

/* A fresh "t" with `keys` rows "h1".."hN"; CHECKPOINT so that no cell pays
 * for the previous one's dirty pages. */
static int pg_reset_table(engine *e, long keys, char *err, size_t size) {
  char n[32];
  snprintf(n, sizeof n, "%ld", keys);
  const char *params[] = {n, BENCH_VALUE};
  if (pg_admin_exec(e, "DROP TABLE IF EXISTS \"t\"", 0, NULL, err, size) ||
      pg_admin_exec(e,
                    "CREATE TABLE \"t\" (\"id\" serial PRIMARY KEY, "
                    "\"k\" text UNIQUE, \"v\" text)",
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

static long pg_count_rows(engine *e) {
  PGresult *res = PQexec(e->pg_admin, "SELECT count(*) FROM \"t\"");
  long n = PQresultStatus(res) == PGRES_TUPLES_OK
               ? strtol(PQgetvalue(res, 0, 0), NULL, 10)
               : -1;
  PQclear(res);
  return n;
}

/* A new database file with WAL and `keys` rows "h1".."hN". */
static int lite_reset_table(engine *e, long keys, char *err, size_t size) {
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

static long lite_count_rows(engine *e) {
  sqlite3_stmt *stmt = NULL;
  long n = -1;
  if (sqlite3_prepare_v2(e->lite_admin, "SELECT count(*) FROM \"t\"", -1,
                         &stmt, NULL) == SQLITE_OK &&
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

/* Fold the workers' counters into `r`; check the row count. */
static void collect(engine *e, int method, bench_worker *w, int nthreads,
                    long keys, cell_result *r) {
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
static void run_cell(engine *e, int method, int nthreads, int mix,
                     const options *o, cell_result *r) {
  const bench_method *m = e->methods[method];
  double *ops = &r->ops[r->nrounds++];
  char err[BENCH_ERRMSG] = "";
  *ops = -1;
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
  pthread_barrier_init(&g_run.start, NULL, (unsigned)nthreads + 1);
  for (int i = 0; i < nthreads; i++) {
    w[i].index = i;
    w[i].sqlite_synchronous = -1;
    w[i].target = method == METHOD_NODUP ? e->nodup_target : e->native_target;
    pthread_create(&tid[i], NULL, worker_main, &w[i]);
  }
  pthread_barrier_wait(&g_run.start);
  int failed = 0;
  for (int i = 0; i < nthreads; i++)
    failed |= w[i].open_failed;
  if (!failed) {
    sleep_seconds(o->warmup);
    long c1 = sum_ops(w, nthreads);
    double t1 = now_seconds();
    sleep_seconds(o->seconds);
    long c2 = sum_ops(w, nthreads);
    double t2 = now_seconds();
    *ops = (double)(c2 - c1) / (t2 - t1);
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

/*
 * All rounds of one row (thread count, mix) run before the next row, the
 * methods interleaved and their order rotated every round. The machine's
 * load drifts over minutes, and a ratio is only fair between measurements
 * taken side by side: each round's nodup run is compared with the same
 * round's raw and django runs.
 */
static void run_engine(engine *e, int engine_id, const options *o) {
  for (int t = 0; t < o->nthreads[engine_id]; t++)
    for (int mix = 0; mix < NMIXES; mix++)
      for (int round = 0; o->mix_on[mix] && round < o->rounds; round++)
        for (int k = 0; k < NMETHODS; k++) {
          int m = (round + k) % NMETHODS;
          cell_result *r = &e->results[t][mix][m];
          if (!o->method_on[m])
            continue;
          run_cell(e, m, o->threads[engine_id][t], mix, o, r);
          fprintf(stderr,
                  "[%s %2d threads %-6s round %d/%d] %-6s %10.0f ops/s%s\n",
                  e->name, o->threads[engine_id][t], mix_names[mix],
                  round + 1, o->rounds, e->methods[m]->name,
                  r->ops[r->nrounds - 1],
                  r->errors || r->wrong || r->rows_bad ? "  (check failed)"
                                                       : "");
        }
}

/* --- report -------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The median of the rounds, -1 if any round failed, -2 if none ran. */
static double median_ops(const cell_result *r) {
  double v[MAX_ROUNDS];
  if (r->nrounds == 0)
    return -2;
  memcpy(v, r->ops, sizeof v[0] * (size_t)r->nrounds);
  qsort(v, (size_t)r->nrounds, sizeof v[0], cmp_double);
  if (v[0] < 0)
    return -1;
  return r->nrounds % 2 ? v[r->nrounds / 2]
                        : (v[r->nrounds / 2 - 1] + v[r->nrounds / 2]) / 2;
}

/* nodup's ops/s over another method's, round by round. */
typedef struct ratio {
  double median, lo, hi; /* median < 0: not available */
} ratio;

static ratio ratio_of(const cell_result *nodup, const cell_result *other) {
  ratio q = {-1, 0, 0};
  double v[MAX_ROUNDS];
  int n = nodup->nrounds;
  if (n == 0 || other->nrounds != n)
    return q;
  for (int i = 0; i < n; i++) {
    if (nodup->ops[i] < 0 || other->ops[i] <= 0)
      return q;
    v[i] = nodup->ops[i] / other->ops[i];
  }
  qsort(v, (size_t)n, sizeof v[0], cmp_double);
  q.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  q.lo = v[0];
  q.hi = v[n - 1];
  return q;
}

/* "12,345", "error" or "—" (not run). */
static const char *fmt_ops(double ops, char *buf, size_t size) {
  if (ops < 0)
    return snprintf(buf, size, ops < -1 ? "—" : "error"), buf;
  char digits[32];
  int n = snprintf(digits, sizeof digits, "%.0f", ops), j = 0;
  for (int i = 0; i < n && (size_t)j + 2 < size; i++) {
    if (i > 0 && (n - i) % 3 == 0)
      buf[j++] = ',';
    buf[j++] = digits[i];
  }
  buf[j] = '\0';
  return buf;
}

/* "0.93×", with the range over the rounds when there are several. */
static const char *fmt_ratio(ratio q, int rounds, char *buf, size_t size) {
  if (q.median < 0)
    snprintf(buf, size, "—");
  else if (rounds > 1)
    snprintf(buf, size, "%.2f× (%.2f–%.2f)", q.median, q.lo, q.hi);
  else
    snprintf(buf, size, "%.2f×", q.median);
  return buf;
}

/* The target column, on the median ratios: PostgreSQL wants >= 0.85x raw
 * and >= 3x django on every row; SQLite wants >= 0.9x raw on pure hits and
 * sets no target elsewhere. */
static const char *verdict(int engine_id, int mix, ratio raw, ratio django) {
  if (engine_id == ENGINE_SQLITE)
    return mix != MIX_HITS    ? "— (no target)"
           : raw.median < 0   ? "—"
           : raw.median >= 0.9 ? "PASS"
                               : "MISS (raw)";
  if (raw.median < 0 || django.median < 0)
    return "—";
  int raw_ok = raw.median >= 0.85, django_ok = django.median >= 3.0;
  return raw_ok && django_ok ? "PASS"
         : raw_ok            ? "MISS (django)"
         : django_ok         ? "MISS (raw)"
                             : "MISS (raw, django)";
}

static void print_table(const engine *e, int engine_id, const options *o) {
  printf("| threads | mix | nodup ops/s | raw ops/s | django ops/s "
         "| nodup/raw | nodup/django | target: %s |\n",
         engine_id == ENGINE_PG ? "≥ 0.85× raw and ≥ 3× django"
                                : "hits ≥ 0.9× raw");
  printf("|--:|---|--:|--:|--:|--:|--:|---|\n");
  for (int t = 0; t < o->nthreads[engine_id]; t++)
    for (int mix = 0; mix < NMIXES; mix++) {
      if (!o->mix_on[mix])
        continue;
      const cell_result *r = e->results[t][mix];
      char b[NMETHODS][32], r1[48], r2[48];
      ratio q_raw = ratio_of(&r[METHOD_NODUP], &r[METHOD_RAW]);
      ratio q_django = ratio_of(&r[METHOD_NODUP], &r[METHOD_DJANGO]);
      for (int m = 0; m < NMETHODS; m++)
        fmt_ops(median_ops(&r[m]), b[m], sizeof b[m]);
      printf("| %d | %s | %s | %s | %s | %s | %s | %s |\n",
             o->threads[engine_id][t], mix_names[mix], b[0], b[1], b[2],
             fmt_ratio(q_raw, o->rounds, r1, sizeof r1),
             fmt_ratio(q_django, o->rounds, r2, sizeof r2),
             verdict(engine_id, mix, q_raw, q_django));
    }
}

/* The correctness notes under a table: one line per cell that failed a
 * check, or one line saying all passed. */
static void print_checks(const engine *e, int engine_id, const options *o) {
  long checked = 0;
  int bad = 0;
  printf("\nChecks: ");
  for (int t = 0; t < o->nthreads[engine_id]; t++)
    for (int mix = 0; mix < NMIXES; mix++)
      for (int m = 0; m < NMETHODS; m++) {
        const cell_result *r = &e->results[t][mix][m];
        checked += r->checked;
        if (r->errors == 0 && r->wrong == 0 && r->rows_bad == 0)
          continue;
        printf("%s\n- %d threads, %s, %s: %ld errors, %ld wrong outcomes, "
               "%d bad row counts; first: %s",
               bad ? "" : "FAILED", o->threads[engine_id][t], mix_names[mix],
               e->methods[m]->name, r->errors, r->wrong, r->rows_bad,
               r->errmsg);
        bad = 1;
      }
  if (!bad)
    printf("%ld operations checked: every call returned an id, %s matched "
           "hit/miss on every call, and each table ended with exactly one "
           "new row per miss.",
           checked,
           engine_id == ENGINE_PG
               ? "nodup's created flag and django's path (the raw statement "
                 "cannot tell)"
               : "the created flag or path of every method");
  printf("\n\n");
}

static const char *synchronous_name(int level) {
  static const char *const names[] = {"OFF", "NORMAL", "FULL", "EXTRA"};
  return level >= 0 && level <= 3 ? names[level] : "?";
}

static void print_engine_heading(const engine *e, int engine_id,
                                 const options *o) {
  if (engine_id == ENGINE_PG) {
    PGresult *f = PQexec(e->pg_admin, "SHOW fsync");
    PGresult *s = PQexec(e->pg_admin, "SHOW synchronous_commit");
    const char *host = PQhost(e->pg_admin);
    printf("## PostgreSQL %s\n\n%s; fsync=%s, synchronous_commit=%s",
           PQparameterStatus(e->pg_admin, "server_version"),
           host && host[0] == '/' ? "Unix socket" : "TCP",
           PQresultStatus(f) == PGRES_TUPLES_OK ? PQgetvalue(f, 0, 0) : "?",
           PQresultStatus(s) == PGRES_TUPLES_OK ? PQgetvalue(s, 0, 0) : "?");
    printf("%s. One connection per client thread.\n\n",
           PQresultStatus(f) == PGRES_TUPLES_OK &&
                   strcmp(PQgetvalue(f, 0, 0), "off") == 0
               ? " (a throwaway cluster: nothing here is durable)"
               : "");
    PQclear(f);
    PQclear(s);
  } else {
    printf("## SQLite %s\n\nDatabase file under %s; WAL; busy timeout 5 s; "
           "synchronous=%s for nodup, %s for raw, %s for django. One "
           "connection per client thread.\n\n",
           sqlite3_libversion(), o->sqlite_dir,
           synchronous_name(e->synchronous[METHOD_NODUP]),
           synchronous_name(e->synchronous[METHOD_RAW]),
           synchronous_name(e->synchronous[METHOD_DJANGO]));
  }
}

static void print_report(engine *engines, const options *o) {
  printf("# nodup get-or-create benchmark\n\n"
         "nodup %s · %ld CPUs · %g s per cell after a %g s warm-up · median "
         "of %d round%s · %ld existing keys · ops/s summed over all client "
         "threads · every cell starts from a fresh table.\n\n",
         NODUP_VERSION, sysconf(_SC_NPROCESSORS_ONLN), o->seconds, o->warmup,
         o->rounds, o->rounds == 1 ? "" : "s", o->keys);
  for (int id = 0; id < NENGINES; id++) {
    if (!o->run[id])
      continue;
    print_engine_heading(&engines[id], id, o);
    print_table(&engines[id], id, o);
    print_checks(&engines[id], id, o);
  }
  fflush(stdout);
}

/* --- setup and command line ---------------------------------------------- */

static int open_pg(engine *e, const options *o) {
  e->name = "postgresql";
  e->methods[METHOD_NODUP] = &bench_nodup;
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

static int open_sqlite(engine *e, options *o, char *made_dir, size_t size) {
  e->name = "sqlite";
  e->methods[METHOD_NODUP] = &bench_nodup;
  e->methods[METHOD_RAW] = &bench_sqlite_raw;
  e->methods[METHOD_DJANGO] = &bench_sqlite_django;
  for (int m = 0; m < NMETHODS; m++)
    e->synchronous[m] = -1;
  if (o->sqlite_dir == NULL) {
    const char *tmp = getenv("TMPDIR");
    snprintf(made_dir, size, "%s/nodup-bench.XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(made_dir) == NULL) {
      fprintf(stderr, "bench_goc: mkdtemp %s: %s\n", made_dir,
              strerror(errno));
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

static void close_sqlite(engine *e, const char *made_dir) {
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

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_goc [--pg CONNINFO] [--sqlite-dir DIR] [--seconds S]\n"
          "                 [--warmup S] [--rounds N] [--keys N]\n"
          "                 [--only pg|sqlite] [--pg-threads 1,4,16]\n"
          "                 [--sqlite-threads 1,4] [--mix 50/50,hits,misses]\n"
          "                 [--method nodup,raw,django]\n"
          "Measures nodup_get_or_create against the raw single statement and\n"
          "the Django-style sequence; prints Markdown tables on stdout.\n"
          "--pg is required unless --only sqlite.\n");
}

/* A comma-separated subset of `names` into `on`; -1 on an unknown name. */
static int parse_subset(const char *s, const char *const *names, int n,
                        int *on) {
  for (int i = 0; i < n; i++)
    on[i] = 0;
  while (*s) {
    size_t len = strcspn(s, ",");
    int found = 0;
    for (int i = 0; i < n; i++)
      if (strlen(names[i]) == len && strncmp(s, names[i], len) == 0)
        on[i] = found = 1;
    if (!found)
      return -1;
    s += len + (s[len] == ',');
  }
  return 0;
}

/* "1,4,16" into `out`; the count, or -1 if malformed. */
static int parse_threads(const char *s, int *out) {
  int n = 0;
  while (*s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 1 || v > 256 || n == MAX_THREAD_COUNTS ||
        (*end != ',' && *end != '\0'))
      return -1;
    out[n++] = (int)v;
    s = *end == ',' ? end + 1 : end;
  }
  return n > 0 ? n : -1;
}

static int parse_options(int argc, char **argv, options *o) {
  *o = (options){.seconds = 1.5, .warmup = 0.3, .rounds = 3, .keys = 10000,
                 .run = {1, 1}, .mix_on = {1, 1, 1}, .method_on = {1, 1, 1},
                 .threads = {{1, 4, 16}, {1, 4}},
                 .nthreads = {3, 2}};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      exit(0);
    }
    if (v == NULL)
      goto bad;
    i++;
    if (strcmp(a, "--pg") == 0)
      o->pg = v;
    else if (strcmp(a, "--sqlite-dir") == 0)
      o->sqlite_dir = v;
    else if (strcmp(a, "--seconds") == 0)
      o->seconds = strtod(v, NULL);
    else if (strcmp(a, "--warmup") == 0)
      o->warmup = strtod(v, NULL);
    else if (strcmp(a, "--rounds") == 0)
      o->rounds = atoi(v);
    else if (strcmp(a, "--keys") == 0)
      o->keys = atol(v);
    else if (strcmp(a, "--only") == 0 && strcmp(v, "pg") == 0)
      o->run[ENGINE_SQLITE] = 0;
    else if (strcmp(a, "--only") == 0 && strcmp(v, "sqlite") == 0)
      o->run[ENGINE_PG] = 0;
    else if (strcmp(a, "--pg-threads") == 0)
      o->nthreads[ENGINE_PG] = parse_threads(v, o->threads[ENGINE_PG]);
    else if (strcmp(a, "--sqlite-threads") == 0)
      o->nthreads[ENGINE_SQLITE] = parse_threads(v, o->threads[ENGINE_SQLITE]);
    else if (strcmp(a, "--mix") == 0) {
      if (parse_subset(v, mix_names, NMIXES, o->mix_on) != 0)
        goto bad;
    } else if (strcmp(a, "--method") == 0) {
      if (parse_subset(v, method_names, NMETHODS, o->method_on) != 0)
        goto bad;
    } else
      goto bad;
  }
  if (o->seconds <= 0 || o->warmup < 0 || o->rounds < 1 ||
      o->rounds > MAX_ROUNDS || o->keys < 1 || o->nthreads[0] < 0 ||
      o->nthreads[1] < 0) {
    fprintf(stderr, "bench_goc: invalid --seconds, --warmup, --rounds "
                    "(1..15), --keys or thread list\n");
    return -1;
  }
  if (o->run[ENGINE_PG] && o->pg == NULL) {
    fprintf(stderr, "bench_goc: --pg CONNINFO is required (or --only sqlite)\n");
    return -1;
  }
  return 0;
bad:
  usage(stderr);
  return -1;
}

int main(int argc, char **argv) {
  static engine engines[NENGINES];
  char made_dir[4096] = "";
  options o;
  int status = 0;

  if (parse_options(argc, argv, &o) != 0)
    return 2;
  if ((o.run[ENGINE_PG] && open_pg(&engines[ENGINE_PG], &o) != 0) ||
      (o.run[ENGINE_SQLITE] &&
       open_sqlite(&engines[ENGINE_SQLITE], &o, made_dir, sizeof made_dir) !=
           0)) {
    PQfinish(engines[ENGINE_PG].pg_admin);
    return 1;
  }
  int cells = 0;
  for (int id = 0; id < NENGINES; id++)
    cells += o.run[id] ? o.nthreads[id] : 0;
  int per = 0;
  for (int mix = 0; mix < NMIXES; mix++)
    for (int m = 0; m < NMETHODS; m++)
      per += o.mix_on[mix] && o.method_on[m];
  cells *= per;
  fprintf(stderr, "bench_goc: %d cells × %d round(s), about %.0f s\n", cells,
          o.rounds, cells * o.rounds * (o.seconds + o.warmup + 0.3));
  for (int id = 0; id < NENGINES; id++)
    if (o.run[id])
      run_engine(&engines[id], id, &o);
  print_report(engines, &o);
  for (int id = 0; id < NENGINES; id++)
    for (int t = 0; o.run[id] && t < o.nthreads[id]; t++)
      for (int mix = 0; mix < NMIXES; mix++)
        for (int m = 0; m < NMETHODS; m++) {
          const cell_result *r = &engines[id].results[t][mix][m];
          if (r->errors || r->wrong || r->rows_bad)
            status = 1;
        }
  PQfinish(engines[ENGINE_PG].pg_admin);
  if (o.run[ENGINE_SQLITE])
    close_sqlite(&engines[ENGINE_SQLITE], made_dir);
  return status;
}

/*
 * bench_writers.c -- the live writers of bench/enforce_lock_run.sh: N
 * naive writers doing check-then-insert on random keys of parent(id, k,
 * name), the bug nodup exists for, while `nodup enforce --merge` runs.
 *
 *   bench_writers --pg CONNINFO | --sqlite PATH  --keys K [--threads 8]
 *                 [--rate R] [--seconds S] [--seed N]
 *
 * Each thread has its own connection and loops until SIGTERM/SIGINT (or
 * --seconds): pick a key index uniformly in [0, 2K): below K it is one of
 * the generated keys ('user-' || (kidx * 48271 % 2147483647) ||
 * '@example.com', as bench/merge/gen_*.sql and bench/lock/gen_*.sql make
 * them), above a key no row has yet; then
 *   SELECT id FROM parent WHERE k = $1 LIMIT 1
 * and, if no row came back, INSERT INTO parent (id, k, name) (PostgreSQL:
 * id from sequence parent_id_seq, which the driver creates; SQLite: the
 * rowid). Autocommit, one prepared statement per step. A unique violation
 * (after enforce built its index) counts as "refused", not as an error.
 * SQLite connections: WAL, 60 s busy timeout, so a writer waits out the
 * write lock instead of failing. --rate R paces each writer to R operations
 * a second (0, the default: as fast as it can); a writer that fell behind
 * (blocked by a lock) catches up for at most one second's worth.
 *
 * At exit it prints one line per second since start to stdout:
 *   <unix time of the second's start> ops inserts refused errors max_latency_ms
 * where an operation is counted in the second it ended and max_latency_ms is
 * the longest operation that ended in that second (a writer blocked by a
 * table lock shows up there). Exit status 0, 2 on a setup error.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAXSEC = 3600, MAXTHREADS = 64 };

typedef struct bucket {
  long ops, inserts, refused, errors;
  double maxlat;
} bucket;

static const char *pg_conninfo, *sqlite_path;
static long nkeys;
static int nthreads = 8;
static double seconds_limit;
static unsigned seed = 12;
static double rate;
static volatile sig_atomic_t stop;
static double t0;
static bucket buckets[MAXTHREADS][MAXSEC];

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static void key_of(unsigned long long *rng, char *buf, size_t n) {
  unsigned long long x;
  long kidx;
  *rng ^= *rng << 13;
  *rng ^= *rng >> 7;
  *rng ^= *rng << 17;
  x = *rng;
  kidx = (long)(x % (unsigned long long)(2 * nkeys));
  snprintf(buf, n, "user-%lld@example.com", ((long long)kidx * 48271) % 2147483647LL);
}

static void record(int t, double start, int inserted, int refused, int error) {
  double end = now();
  long s = (long)(end - t0);
  bucket *b;
  if (s < 0) s = 0;
  if (s >= MAXSEC) s = MAXSEC - 1;
  b = &buckets[t][s];
  b->ops += !error;
  b->inserts += inserted;
  b->refused += refused;
  b->errors += error;
  if ((end - start) * 1000 > b->maxlat) b->maxlat = (end - start) * 1000;
}

static int done(void) { return stop || (seconds_limit > 0 && now() - t0 >= seconds_limit); }

/* pace: with --rate, sleep until this writer's next slot */
static void pace(double *next) {
  double t;
  if (rate <= 0) return;
  t = now();
  if (*next == 0 || t - *next > 1.0) *next = t;
  if (*next > t) {
    struct timespec ts;
    double d = *next - t;
    ts.tv_sec = (time_t)d;
    ts.tv_nsec = (long)((d - ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
  }
  *next += 1.0 / rate;
}

static void *pg_writer(void *arg) {
  int t = (int)(long)arg;
  unsigned long long rng = 0x9E3779B97F4A7C15ULL * (unsigned long long)(t + 1) + seed;
  char key[64];
  const char *params[1] = {key};
  PGconn *c = PQconnectdb(pg_conninfo);
  PGresult *r;
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "bench_writers: %s", PQerrorMessage(c));
    exit(2);
  }
  r = PQprepare(c, "sel", "SELECT id FROM parent WHERE k = $1 LIMIT 1", 1, NULL);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    fprintf(stderr, "bench_writers: %s", PQerrorMessage(c));
    exit(2);
  }
  PQclear(r);
  r = PQprepare(c, "ins",
                "INSERT INTO parent (id, k, name) VALUES (nextval('parent_id_seq'), $1, 'writer')", 1,
                NULL);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    fprintf(stderr, "bench_writers: %s", PQerrorMessage(c));
    exit(2);
  }
  PQclear(r);
  double next = 0;
  while (!done()) {
    double start;
    int inserted = 0, refused = 0, error = 0;
    pace(&next);
    start = now();
    key_of(&rng, key, sizeof key);
    r = PQexecPrepared(c, "sel", 1, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) error = 1;
    else if (PQntuples(r) == 0) {
      PQclear(r);
      r = PQexecPrepared(c, "ins", 1, params, NULL, NULL, 0);
      if (PQresultStatus(r) == PGRES_COMMAND_OK) inserted = 1;
      else {
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (st && !strcmp(st, "23505")) refused = 1;
        else error = 1;
      }
    }
    if (error && !stop) fprintf(stderr, "bench_writers: %s", PQerrorMessage(c));
    PQclear(r);
    record(t, start, inserted, refused, error);
  }
  PQfinish(c);
  return NULL;
}

static void *sq_writer(void *arg) {
  int t = (int)(long)arg;
  unsigned long long rng = 0x9E3779B97F4A7C15ULL * (unsigned long long)(t + 1) + seed;
  char key[64];
  sqlite3 *db;
  sqlite3_stmt *sel, *ins;
  if (sqlite3_open_v2(sqlite_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
      SQLITE_OK) {
    fprintf(stderr, "bench_writers: %s\n", sqlite3_errmsg(db));
    exit(2);
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 60000);
  sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
  if (sqlite3_prepare_v2(db, "SELECT id FROM parent WHERE k = ?1 LIMIT 1", -1, &sel, NULL) ||
      sqlite3_prepare_v2(db, "INSERT INTO parent (k, name) VALUES (?1, 'writer')", -1, &ins,
                         NULL)) {
    fprintf(stderr, "bench_writers: %s\n", sqlite3_errmsg(db));
    exit(2);
  }
  double next = 0;
  while (!done()) {
    double start;
    int inserted = 0, refused = 0, error = 0, rc;
    pace(&next);
    start = now();
    key_of(&rng, key, sizeof key);
    sqlite3_bind_text(sel, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(sel);
    sqlite3_reset(sel);
    if (rc == SQLITE_DONE) {
      sqlite3_bind_text(ins, 1, key, -1, SQLITE_STATIC);
      rc = sqlite3_step(ins);
      sqlite3_reset(ins);
      if (rc == SQLITE_DONE) inserted = 1;
      else if (rc == SQLITE_CONSTRAINT_UNIQUE) refused = 1;
      else error = 1;
    } else if (rc != SQLITE_ROW) error = 1;
    if (error && !stop) fprintf(stderr, "bench_writers: %s\n", sqlite3_errmsg(db));
    record(t, start, inserted, refused, error);
  }
  sqlite3_finalize(sel);
  sqlite3_finalize(ins);
  sqlite3_close(db);
  return NULL;
}

int main(int argc, char **argv) {
  pthread_t th[MAXTHREADS];
  struct sigaction sa;
  long last = 0;
  int i;
  for (i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(argv[i], "--pg") && v) pg_conninfo = argv[++i];
    else if (!strcmp(argv[i], "--sqlite") && v) sqlite_path = argv[++i];
    else if (!strcmp(argv[i], "--keys") && v) nkeys = atol(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && v) nthreads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seconds") && v) seconds_limit = atof(argv[++i]);
    else if (!strcmp(argv[i], "--seed") && v) seed = (unsigned)atol(argv[++i]);
    else if (!strcmp(argv[i], "--rate") && v) rate = atof(argv[++i]);
    else {
      fprintf(stderr, "usage: bench_writers --pg CONNINFO | --sqlite PATH --keys K [--threads N]"
                      " [--rate R] [--seconds S] [--seed N]\n");
      return 2;
    }
  }
  if (!pg_conninfo == !sqlite_path || nkeys <= 0 || nthreads < 1 || nthreads > MAXTHREADS) {
    fprintf(stderr, "bench_writers: one of --pg or --sqlite, --keys > 0, 1..64 threads\n");
    return 2;
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  t0 = now();
  for (i = 0; i < nthreads; i++)
    if (pthread_create(&th[i], NULL, pg_conninfo ? pg_writer : sq_writer, (void *)(long)i)) {
      fprintf(stderr, "bench_writers: pthread_create failed\n");
      return 2;
    }
  for (i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
  for (long s = 0; s < MAXSEC; s++)
    for (i = 0; i < nthreads; i++)
      if (buckets[i][s].ops || buckets[i][s].errors) last = s;
  for (long s = 0; s <= last; s++) {
    bucket sum = {0, 0, 0, 0, 0};
    for (i = 0; i < nthreads; i++) {
      sum.ops += buckets[i][s].ops;
      sum.inserts += buckets[i][s].inserts;
      sum.refused += buckets[i][s].refused;
      sum.errors += buckets[i][s].errors;
      if (buckets[i][s].maxlat > sum.maxlat) sum.maxlat = buckets[i][s].maxlat;
    }
    printf("%.3f %ld %ld %ld %ld %.1f\n", t0 + s, sum.ops, sum.inserts, sum.refused, sum.errors,
           sum.maxlat);
  }
  return 0;
}

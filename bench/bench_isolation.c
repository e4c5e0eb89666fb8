/*
 * bench_isolation.c -- nodup_get_or_create() on a few hot keys at each
 * isolation level a database can default to: throughput, CPU per call and
 * the transactions nodup re-ran after a serialization failure or deadlock
 * (40001, 40P01; nodup_retries()), with the correctness of every cell
 * checked.
 *
 * A cell is one isolation level for one round: a new empty table
 * "hot"("id" serial, "k" text UNIQUE, "v" text), ALTER DATABASE ... SET
 * default_transaction_isolation to the level, then --threads new nodup
 * connections (each checks SHOW transaction_isolation), which start
 * together and call get-or-create on a random one of --keys keys for
 * --seconds. The first calls race to create the keys (the "creation race",
 * until the last key's creator returns); every later call is a hit. The
 * levels of a round run one after the other, their order rotating, and a
 * level's throughput is compared with READ COMMITTED's of the same round.
 *
 * A cell fails (exit status 1) unless the table ends with exactly --keys
 * rows, each key was reported created exactly once, every call returned
 * its key's id as the table has it, no call failed and every connection
 * ran at the level asked. The database's own setting is restored at the
 * end. Markdown on stdout, progress on stderr.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_isolation.h"

const char *const bench_level_names[NLEVELS] = {
    "read-committed", "repeatable-read", "serializable"};
const char *const bench_level_sql[NLEVELS] = {
    "read committed", "repeatable read", "serializable"};

/* One client thread of one cell. */
typedef struct client {
  _Alignas(64) atomic_long ops;
  int index;
  nodup_db *db;
  nodup_key *key;
  int backend_pid;
  int open_failed, wrong_level;
  long calls, errors, wrong;
  long race_calls, race_retries; /* calls begun before every key existed */
  unsigned long long retries, max_retries;
  long long seen_id[MAX_KEYS]; /* the id this client got per key; 0: none */
  char errmsg[BENCH_ERRMSG];
} client;

/* The cell being run; the clients read it. */
static struct {
  const iso_options *o;
  const char *level;
  const char *target;
  atomic_int stop;
  atomic_int created_total;
  atomic_int created[MAX_KEYS];
  double start, race_end;
  pthread_barrier_t barrier;
} g;

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

static uint64_t rng_next(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static void client_error(client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void client_error(client *c, const char *fmt, ...) {
  if (c->errmsg[0] != '\0')
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
  va_end(ap);
  for (char *p = c->errmsg; *p; p++)
    if (*p == '\n')
      *p = ' ';
}

/* Open, check the level the database gave the new session, prepare. */
static int client_open(client *c) {
  static const char *const cols[] = {"k"};
  int rc = nodup_open(&c->db, g.target);
  if (rc == NODUP_OK)
    rc = nodup_key_prepare(&c->key, c->db, "hot", cols, 1, NULL);
  if (rc != NODUP_OK) {
    client_error(c, "nodup: %s: %s", nodup_strerror(rc), nodup_errmsg(c->db));
    return -1;
  }
  PGconn *pg = nodup_db_handle(c->db);
  PGresult *res = PQexec(pg, "SHOW transaction_isolation");
  c->wrong_level = PQresultStatus(res) != PGRES_TUPLES_OK ||
                   strcmp(PQgetvalue(res, 0, 0), g.level) != 0;
  if (c->wrong_level)
    client_error(c, "the session runs at %s, not %s",
                 PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0)
                                                        : "?",
                 g.level);
  PQclear(res);
  c->backend_pid = PQbackendPID(pg);
  if (!bench_is_local_postgres(c->backend_pid))
    c->backend_pid = -1;
  return 0;
}

/* One call on key number `k`, checked and counted. */
static void client_call(client *c, int k) {
  static const char *const dcols[] = {"v"};
  const char *dvals[] = {BENCH_VALUE};
  char name[32];
  snprintf(name, sizeof name, "k%d", k + 1);
  const char *vals[] = {name};
  int racing = atomic_load(&g.created_total) < g.o->keys;
  unsigned long long before = nodup_retries(c->db);
  nodup_result r = {NULL, 0};
  int rc = nodup_get_or_create(c->key, vals, dcols, dvals, 1, &r);
  unsigned long long retried = nodup_retries(c->db) - before;

  c->calls++;
  c->retries += retried;
  if (retried > c->max_retries)
    c->max_retries = retried;
  if (racing) {
    c->race_calls++;
    c->race_retries += (long)retried;
  }
  if (rc != NODUP_OK) {
    c->errors++;
    client_error(c, "%s: %s: %s", name, nodup_strerror(rc),
                 nodup_errmsg(c->db));
    return;
  }
  long long id = r.id ? atoll(r.id) : 0;
  if (id <= 0 || (c->seen_id[k] != 0 && c->seen_id[k] != id)) {
    if (c->wrong++ == 0)
      client_error(c, "%s: id %s, earlier %lld", name, r.id ? r.id : "(none)",
                   c->seen_id[k]);
    return;
  }
  c->seen_id[k] = id;
  if (r.created) {
    atomic_fetch_add(&g.created[k], 1);
    if (atomic_fetch_add(&g.created_total, 1) + 1 == g.o->keys)
      g.race_end = now_seconds();
  }
}

static void *client_main(void *arg) {
  client *c = arg;
  uint64_t rng = 0x15011a7eu + (uint64_t)c->index;
  long done = 0;
  c->open_failed = client_open(c) != 0;
  pthread_barrier_wait(&g.barrier);
  while (!c->open_failed && !atomic_load_explicit(&g.stop, memory_order_relaxed) &&
         c->errors < MAX_ERRORS_PER_THREAD) {
    client_call(c, (int)(rng_next(&rng) % (uint64_t)g.o->keys));
    atomic_store_explicit(&c->ops, ++done, memory_order_relaxed);
  }
  nodup_key_free(c->key);
  nodup_close(c->db);
  return NULL;
}

/* --- the database ------------------------------------------------------- */

static int admin_exec(PGconn *admin, const char *sql, char *err, size_t size) {
  PGresult *res = PQexec(admin, sql);
  ExecStatusType st = PQresultStatus(res);
  int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok)
    snprintf(err, size, "%s: %s", sql, PQerrorMessage(admin));
  PQclear(res);
  return ok ? 0 : -1;
}

/* ALTER DATABASE <this one> SET default_transaction_isolation, or RESET
 * when `level` is NULL. New sessions take it; open ones keep theirs. */
static int set_default_level(PGconn *admin, const char *level, char *err,
                             size_t size) {
  PGresult *res = PQexec(admin, "SELECT current_database()");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    snprintf(err, size, "current_database(): %s", PQerrorMessage(admin));
    PQclear(res);
    return -1;
  }
  const char *name = PQgetvalue(res, 0, 0);
  char *db = PQescapeIdentifier(admin, name, strlen(name));
  PQclear(res);
  char *lit = level ? PQescapeLiteral(admin, level, strlen(level)) : NULL;
  char sql[1024];
  if (level)
    snprintf(sql, sizeof sql,
             "ALTER DATABASE %s SET default_transaction_isolation = %s", db,
             lit);
  else
    snprintf(sql, sizeof sql,
             "ALTER DATABASE %s RESET default_transaction_isolation", db);
  PQfreemem(db);
  PQfreemem(lit);
  return admin_exec(admin, sql, err, size);
}

/* The database's own setting before the benchmark, to put back; "" when
 * it has none. */
static void saved_default_level(PGconn *admin, char *out, size_t size) {
  PGresult *res = PQexec(
      admin, "SELECT split_part(c, '=', 2) FROM pg_catalog.pg_db_role_setting "
             "AS s, unnest(s.setconfig) AS c WHERE s.setrole = 0 AND "
             "s.setdatabase = (SELECT oid FROM pg_catalog.pg_database "
             "WHERE datname = current_database()) AND "
             "c LIKE 'default_transaction_isolation=%'");
  snprintf(out, size, "%s",
           PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
               ? PQgetvalue(res, 0, 0)
               : "");
  PQclear(res);
}

static int reset_table(PGconn *admin, const char *level, char *err,
                       size_t size) {
  if (admin_exec(admin, "DROP TABLE IF EXISTS \"hot\"", err, size) ||
      admin_exec(admin,
                 "CREATE TABLE \"hot\" (\"id\" serial PRIMARY KEY, "
                 "\"k\" text UNIQUE, \"v\" text) "
                 "WITH (autovacuum_enabled = off)",
                 err, size) ||
      set_default_level(admin, level, err, size))
    return -1;
  char ignored[BENCH_ERRMSG];
  admin_exec(admin, "CHECKPOINT", ignored, sizeof ignored);
  return 0;
}

/*
 * The table against the clients: exactly `keys` rows, each created once,
 * and every id a client got for a key is the table's. 0 when all holds;
 * else -1 with the first discrepancy in `r->errmsg`.
 */
static int check_table(PGconn *admin, const client *c, int n, int keys,
                       iso_cell *r) {
  PGresult *res = PQexec(admin, "SELECT \"k\", \"id\" FROM \"hot\"");
  int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
  if (!ok)
    snprintf(r->errmsg, sizeof r->errmsg, "reading hot: %s",
             PQerrorMessage(admin));
  else if (PQntuples(res) != keys) {
    ok = 0;
    snprintf(r->errmsg, sizeof r->errmsg, "the table has %d rows, not %d",
             PQntuples(res), keys);
  }
  for (int i = 0; ok && i < PQntuples(res); i++) {
    int k = atoi(PQgetvalue(res, i, 0) + 1) - 1;
    long long id = atoll(PQgetvalue(res, i, 1));
    if (k < 0 || k >= keys) {
      ok = 0;
      snprintf(r->errmsg, sizeof r->errmsg, "unexpected key %s",
               PQgetvalue(res, i, 0));
    }
    for (int t = 0; ok && t < n; t++)
      if (c[t].seen_id[k] != 0 && c[t].seen_id[k] != id) {
        ok = 0;
        snprintf(r->errmsg, sizeof r->errmsg,
                 "client %d got id %lld for k%d, the table has %lld", t + 1,
                 c[t].seen_id[k], k + 1, id);
      }
  }
  PQclear(res);
  for (int k = 0; ok && k < keys; k++)
    if (atomic_load(&g.created[k]) != 1) {
      ok = 0;
      snprintf(r->errmsg, sizeof r->errmsg, "k%d reported created %d times",
               k + 1, atomic_load(&g.created[k]));
    }
  return ok ? 0 : -1;
}

/* --- cells --------------------------------------------------------------- */

/* CPU seconds of the clients and their backends so far, or -1. */
static double cpu_seconds(const client *c, const pthread_t *tid, int n) {
  double total = 0;
  for (int i = 0; i < n; i++) {
    double s = bench_cpu_thread(tid[i]);
    double b = c[i].backend_pid > 0 ? bench_cpu_process(c[i].backend_pid) : -1;
    if (s < 0 || b < 0)
      return -1;
    total += s + b;
  }
  return total;
}

static long sum_ops(client *c, int n) {
  long total = 0;
  for (int i = 0; i < n; i++)
    total += atomic_load_explicit(&c[i].ops, memory_order_relaxed);
  return total;
}

static void run_cell(PGconn *admin, const char *target, const iso_options *o,
                     int level, iso_cell *r) {
  *r = (iso_cell){.ops = -1, .cpu_us = -1, .race_ms = -1};
  if (reset_table(admin, bench_level_sql[level], r->errmsg, sizeof r->errmsg) != 0) {
    r->bad = 1;
    return;
  }
  client *c = aligned_alloc(64, sizeof *c * (size_t)o->threads);
  pthread_t *tid = calloc((size_t)o->threads, sizeof *tid);
  if (c == NULL || tid == NULL) {
    fprintf(stderr, "bench_isolation: out of memory\n");
    exit(1);
  }
  memset(c, 0, sizeof *c * (size_t)o->threads);
  g.o = o;
  g.level = bench_level_sql[level];
  g.target = target;
  g.race_end = 0;
  atomic_store(&g.stop, 0);
  atomic_store(&g.created_total, 0);
  for (int k = 0; k < o->keys; k++)
    atomic_store(&g.created[k], 0);
  pthread_barrier_init(&g.barrier, NULL, (unsigned)o->threads + 1);
  for (int i = 0; i < o->threads; i++) {
    c[i].index = i;
    if (pthread_create(&tid[i], NULL, client_main, &c[i]) != 0) {
      fprintf(stderr, "bench_isolation: cannot start thread %d\n", i + 1);
      exit(1);
    }
  }
  pthread_barrier_wait(&g.barrier);
  g.start = now_seconds();
  double cpu0 = cpu_seconds(c, tid, o->threads);
  sleep_seconds(o->seconds);
  long ops = sum_ops(c, o->threads);
  double t1 = now_seconds(), cpu1 = cpu_seconds(c, tid, o->threads);
  atomic_store(&g.stop, 1);
  for (int i = 0; i < o->threads; i++)
    pthread_join(tid[i], NULL);
  pthread_barrier_destroy(&g.barrier);

  int failed = 0;
  for (int i = 0; i < o->threads; i++) {
    failed |= c[i].open_failed || c[i].wrong_level;
    r->calls += c[i].calls;
    r->errors += c[i].errors;
    r->wrong += c[i].wrong;
    r->race_calls += c[i].race_calls;
    r->race_retries += c[i].race_retries;
    r->retries += c[i].retries;
    if (c[i].max_retries > r->max_retries)
      r->max_retries = c[i].max_retries;
    if (c[i].errmsg[0] != '\0' && r->errmsg[0] == '\0')
      snprintf(r->errmsg, sizeof r->errmsg, "%s", c[i].errmsg);
  }
  if (!failed) {
    r->ops = (double)ops / (t1 - g.start);
    if (cpu0 >= 0 && cpu1 >= 0 && ops > 0)
      r->cpu_us = (cpu1 - cpu0) / (double)ops * 1e6;
    if (g.race_end > 0)
      r->race_ms = (g.race_end - g.start) * 1e3;
  }
  r->bad = failed || r->errors > 0 || r->wrong > 0 ||
           check_table(admin, c, o->threads, o->keys, r) != 0;
  free(c);
  free(tid);
}

/* --- command line -------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f, "usage: bench_isolation --pg CONNINFO [--threads 16] [--keys 20]\n"
             "                       [--seconds 1.5] [--rounds 5]\n"
             "                       [--isolation read-committed,"
             "repeatable-read,serializable]\n"
             "Changes the database's default_transaction_isolation while it "
             "runs\n(restored at the end) and drops and recreates table "
             "\"hot\".\n");
}

static int parse_levels(const char *s, int *on) {
  for (int i = 0; i < NLEVELS; i++)
    on[i] = 0;
  while (*s) {
    size_t len = strcspn(s, ",");
    int found = 0;
    for (int i = 0; i < NLEVELS; i++)
      if (strlen(bench_level_names[i]) == len && strncmp(s, bench_level_names[i], len) == 0)
        on[i] = found = 1;
    if (!found)
      return -1;
    s += len + (s[len] == ',');
  }
  return 0;
}

static int parse_options(int argc, char **argv, iso_options *o) {
  *o = (iso_options){.threads = 16, .keys = 20, .rounds = 5, .seconds = 1.5,
                 .level_on = {1, 1, 1}};
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
    else if (strcmp(a, "--threads") == 0)
      o->threads = atoi(v);
    else if (strcmp(a, "--keys") == 0)
      o->keys = atoi(v);
    else if (strcmp(a, "--seconds") == 0)
      o->seconds = strtod(v, NULL);
    else if (strcmp(a, "--rounds") == 0)
      o->rounds = atoi(v);
    else if (strcmp(a, "--isolation") == 0) {
      if (parse_levels(v, o->level_on) != 0)
        goto bad;
    } else
      goto bad;
  }
  if (o->pg == NULL || o->threads < 1 || o->threads > MAX_THREADS ||
      o->keys < 1 || o->keys > MAX_KEYS || o->rounds < 1 ||
      o->rounds > MAX_ROUNDS || o->seconds <= 0) {
    fprintf(stderr, "bench_isolation: --pg is required; --threads 1..%d, "
                    "--keys 1..%d, --rounds 1..%d, --seconds > 0\n",
            MAX_THREADS, MAX_KEYS, MAX_ROUNDS);
    return -1;
  }
  return 0;
bad:
  usage(stderr);
  return -1;
}

int main(int argc, char **argv) {
  static iso_cell cells[MAX_ROUNDS][NLEVELS];
  iso_options o;
  char saved[64], err[BENCH_ERRMSG];
  int status = 0;

  if (parse_options(argc, argv, &o) != 0)
    return 2;
  PGconn *admin = PQconnectdb(o.pg);
  if (PQstatus(admin) != CONNECTION_OK) {
    fprintf(stderr, "bench_isolation: cannot connect to %s: %s", o.pg,
            PQerrorMessage(admin));
    PQfinish(admin);
    return 1;
  }
  PQclear(PQexec(admin, "SET client_min_messages = warning"));
  saved_default_level(admin, saved, sizeof saved);
  int nlevels = 0;
  for (int l = 0; l < NLEVELS; l++)
    nlevels += o.level_on[l];
  fprintf(stderr, "bench_isolation: %d cells × %d round(s), about %.0f s\n",
          nlevels, o.rounds, nlevels * o.rounds * (o.seconds + 0.5));
  for (int i = 0; i < o.rounds; i++)
    for (int k = 0; k < NLEVELS; k++) {
      int l = (i + k) % NLEVELS;
      if (!o.level_on[l])
        continue;
      iso_cell *r = &cells[i][l];
      run_cell(admin, o.pg, &o, l, r);
      status |= r->bad;
      fprintf(stderr,
              "[isolation %-15s round %d/%d] %8.0f calls/s, %llu retries in "
              "%ld calls%s\n",
              bench_level_sql[l], i + 1, o.rounds, r->ops, r->retries, r->calls,
              r->bad ? "  (check failed)" : "");
    }
  if (set_default_level(admin, saved[0] ? saved : NULL, err, sizeof err) != 0) {
    fprintf(stderr, "bench_isolation: could not restore the database's "
                    "default_transaction_isolation: %s\n", err);
    status = 1;
  }
  bench_isolation_report(admin, &o, cells);
  admin_exec(admin, "DROP TABLE IF EXISTS \"hot\"", err, sizeof err);
  PQfinish(admin);
  return status;
}

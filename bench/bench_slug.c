/*
 * bench_slug.c -- what allocating the next "My Team" slug costs when 0, 100
 * or 10,000 copies ("my-team", "my-team-2", ...) already exist:
 * nodup_slug_create() (one call, which prepares its key every time) and
 * nodup_slug_next() through a handle prepared once (nodup_slug_prepare),
 * against the WordPress-style probe loop, measured side by side in one
 * run, on PostgreSQL and SQLite.
 *
 * The probe loop is wp_unique_post_slug(): `SELECT 1 ... WHERE slug = $1
 * LIMIT 1` for "my-team", then "my-team-2", "my-team-3"... until one is
 * free, then a plain INSERT (one prepared statement each, one round trip
 * per probe). It runs N + 1 queries at N copies. nodup runs one range query
 * and one insert whatever N is: the one-call form adds the catalog reads
 * and statement preparation of each call (the same at every N), the
 * prepared handle nothing.
 *
 * Every cell (engine, copies) starts from a fresh table holding the copies
 * and 10,000 unrelated slugs. Each allocation is timed alone; the row it
 * created is then deleted (not timed), so every allocation sees exactly N
 * copies and must return "my-team-<N+1>" ("my-team" at 0): the driver
 * checks it. Rounds alternate which method goes first; each round's figure
 * is the median allocation, and the table shows the median of the rounds
 * and the probe/nodup ratio taken round by round. Markdown on stdout,
 * progress on stderr; exit status 1 when a check failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "nodup.h"

#define MAX_COPIES 8
#define MAX_ROUNDS 15
#define MAX_OPS 5000
#define FILLER 10000
#define FROM "My Team"
#define BASE "my-team"

enum { NODUP, PREPARED, PROBE, NMETHODS };
static const char *const method_names[NMETHODS] = {"nodup", "nodup prepared", "probe loop"};

typedef struct options {
  const char *pg, *sqlite_dir;
  int run_pg, run_sqlite;
  long copies[MAX_COPIES];
  int ncopies;
  double seconds;
  int rounds;
} options;

/* One method's results in one cell. */
typedef struct cell {
  double us[MAX_ROUNDS];  /* median µs per allocation, per round */
  long ops;               /* allocations timed, all rounds */
  unsigned long nodup_statements;  /* nodup_slug_result.statements (last), both nodup methods */
  long probe_statements;  /* queries + insert of the probe loop (last) */
} cell;

typedef struct engine {
  const char *name;
  int pg;
  char version[128];
  char nodup_url[4200];  /* for nodup_open() */
  char path[4096];       /* SQLite file */
  PGconn *pgc;           /* the probe loop's connection, also setup and deletes */
  sqlite3 *lite;
  sqlite3_stmt *probe, *insert, *del;
  nodup_db *db;          /* nodup's own connection */
  nodup_slug *slug;      /* the prepared handle on it */
  cell cells[MAX_COPIES][NMETHODS];
  int failed;
} engine;

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_slug: %s: %s\n", what, msg);
  exit(1);
}

/* --- the table ----------------------------------------------------------- */

static void pg_exec(engine *e, const char *sql) {
  PGresult *res = PQexec(e->pgc, sql);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) die(sql, PQerrorMessage(e->pgc));
  PQclear(res);
}

static void lite_exec(engine *e, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(e->lite, sql, NULL, NULL, &msg) != SQLITE_OK) die(sql, msg);
}

/* A fresh "slug_bench" with `copies` copies of BASE and FILLER other slugs.
 * The slug column compares bytes (COLLATE "C" on PostgreSQL, as nodup.h
 * recommends; SQLite's default BINARY). */
static void reset_table(engine *e, long copies) {
  char sql[1024];
  if (e->pg) {
    pg_exec(e, "DROP TABLE IF EXISTS \"slug_bench\"");
    pg_exec(e, "CREATE TABLE \"slug_bench\" (\"id\" bigserial PRIMARY KEY,"
               " \"slug\" text COLLATE \"C\" NOT NULL, \"name\" text)"
               " WITH (autovacuum_enabled = off)");
    snprintf(sql, sizeof sql,
             "INSERT INTO \"slug_bench\" (\"slug\") SELECT CASE WHEN i = 1 THEN '%s'"
             " ELSE '%s-' || i END FROM generate_series(1, %ld) AS i",
             BASE, BASE, copies);
    pg_exec(e, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO \"slug_bench\" (\"slug\") SELECT 'team-' || i"
             " FROM generate_series(1, %d) AS i", FILLER);
    pg_exec(e, sql);
    pg_exec(e, "CREATE UNIQUE INDEX \"slug_bench_slug_key\" ON \"slug_bench\" (\"slug\")");
    pg_exec(e, "VACUUM ANALYZE \"slug_bench\"");
    pg_exec(e, "CHECKPOINT");
  } else {
    lite_exec(e, "DROP TABLE IF EXISTS \"slug_bench\";"
                 "CREATE TABLE \"slug_bench\" (\"id\" INTEGER PRIMARY KEY,"
                 " \"slug\" TEXT NOT NULL, \"name\" TEXT);"
                 "CREATE UNIQUE INDEX \"slug_bench_slug_key\" ON \"slug_bench\" (\"slug\");"
                 "BEGIN");
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %ld)"
             " INSERT INTO \"slug_bench\" (\"slug\") SELECT CASE WHEN i = 1 THEN '%s'"
             " ELSE '%s-' || i END FROM n WHERE %ld > 0",
             copies > 0 ? copies : 1, BASE, BASE, copies);
    lite_exec(e, sql);
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
             " INSERT INTO \"slug_bench\" (\"slug\") SELECT 'team-' || i FROM n", FILLER);
    lite_exec(e, sql);
    lite_exec(e, "COMMIT; ANALYZE");
  }
}

/* Delete the row an allocation made (not timed). */
static void delete_row(engine *e, const char *id) {
  if (e->pg) {
    const char *p[] = {id};
    PGresult *res = PQexecPrepared(e->pgc, "del", 1, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) die("delete", PQerrorMessage(e->pgc));
    PQclear(res);
  } else {
    sqlite3_bind_text(e->del, 1, id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(e->del) != SQLITE_DONE) die("delete", sqlite3_errmsg(e->lite));
    sqlite3_reset(e->del);
  }
}

/* --- the methods ----------------------------------------------------------- */

/* nodup: one call (`prepared` 0), or one allocation through the handle
 * prepared when the connection opened. */
static int alloc_nodup(engine *e, int prepared, char *slug, size_t size, char *id,
                       unsigned long *stmts) {
  nodup_slug_result r = {NULL, NULL, 0, 0};
  int rc = prepared ? nodup_slug_next(&r, e->slug, NULL, NULL, FROM)
                    : nodup_slug_create(&r, e->db, "slug_bench", "slug", NULL, NULL, 0, NULL,
                                        NULL, 0, FROM, NULL);
  if (rc != NODUP_OK) {
    fprintf(stderr, "bench_slug: %s: %s: %s\n", method_names[prepared ? PREPARED : NODUP],
            nodup_strerror(rc), nodup_errmsg(e->db));
    return -1;
  }
  snprintf(slug, size, "%s", r.slug);
  snprintf(id, 32, "%s", r.id);
  *stmts = r.statements;
  nodup_slug_result_free(&r);
  return 0;
}

/* Is `cand` taken? 1 yes, 0 no, -1 error. */
static int probe_taken(engine *e, const char *cand) {
  if (e->pg) {
    const char *p[] = {cand};
    PGresult *res = PQexecPrepared(e->pgc, "probe", 1, p, NULL, NULL, 0);
    int taken = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) > 0 : -1;
    if (taken < 0) fprintf(stderr, "bench_slug: probe: %s", PQerrorMessage(e->pgc));
    PQclear(res);
    return taken;
  }
  sqlite3_bind_text(e->probe, 1, cand, -1, SQLITE_STATIC);
  int rc = sqlite3_step(e->probe);
  sqlite3_reset(e->probe);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    fprintf(stderr, "bench_slug: probe: %s\n", sqlite3_errmsg(e->lite));
  return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The WordPress loop: the same slugify (ICU, nodup_slugify), then "base",
 * "base-2", "base-3"... one query each until one is free, then INSERT. */
static int alloc_probe(engine *e, char *slug, size_t size, char *id, long *stmts) {
  char base[NODUP_SLUG_MAX_LENGTH + 1], cand[NODUP_SLUG_MAX_LENGTH + 32];
  long n = 1;
  int taken;
  if (nodup_slugify(base, sizeof base, FROM, NULL) != NODUP_OK) return -1;
  snprintf(cand, sizeof cand, "%s", base);
  *stmts = 0;
  while (++*stmts, (taken = probe_taken(e, cand)) == 1)
    snprintf(cand, sizeof cand, "%s-%ld", base, ++n);
  if (taken < 0) return -1;
  ++*stmts;
  if (e->pg) {
    const char *p[] = {cand};
    PGresult *res = PQexecPrepared(e->pgc, "insert", 1, p, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (ok) snprintf(id, 32, "%s", PQgetvalue(res, 0, 0));
    else fprintf(stderr, "bench_slug: insert: %s", PQerrorMessage(e->pgc));
    PQclear(res);
    if (!ok) return -1;
  } else {
    sqlite3_bind_text(e->insert, 1, cand, -1, SQLITE_STATIC);
    int rc = sqlite3_step(e->insert);
    if (rc == SQLITE_ROW) snprintf(id, 32, "%lld", (long long)sqlite3_column_int64(e->insert, 0));
    else fprintf(stderr, "bench_slug: insert: %s\n", sqlite3_errmsg(e->lite));
    sqlite3_reset(e->insert);
    if (rc != SQLITE_ROW) return -1;
  }
  snprintf(slug, size, "%s", cand);
  return 0;
}

/* --- connections ------------------------------------------------------------ */

static void pg_prepare(engine *e, const char *name, const char *sql) {
  PGresult *res = PQprepare(e->pgc, name, sql, 1, NULL);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) die(sql, PQerrorMessage(e->pgc));
  PQclear(res);
}

static void lite_prepare(engine *e, sqlite3_stmt **st, const char *sql) {
  if (sqlite3_prepare_v2(e->lite, sql, -1, st, NULL) != SQLITE_OK)
    die(sql, sqlite3_errmsg(e->lite));
}

/* Open both connections once the table exists (statements need it). The
 * probe loop's SQLite connection is in WAL with a busy timeout and the
 * default `synchronous`, as nodup's own, so each commit costs the same. */
static void open_connections(engine *e) {
  int rc = nodup_open(&e->db, e->nodup_url);
  if (rc != NODUP_OK) die("nodup_open", nodup_errmsg(e->db));
  rc = nodup_slug_prepare(&e->slug, e->db, "slug_bench", "slug", NULL, 0, NULL, 0, NULL);
  if (rc != NODUP_OK) die("nodup_slug_prepare", nodup_errmsg(e->db));
  if (e->pg) {
    pg_prepare(e, "probe", "SELECT 1 FROM \"slug_bench\" WHERE \"slug\" = $1 LIMIT 1");
    pg_prepare(e, "insert", "INSERT INTO \"slug_bench\" (\"slug\") VALUES ($1) RETURNING \"id\"");
    pg_prepare(e, "del", "DELETE FROM \"slug_bench\" WHERE \"id\" = $1");
  } else {
    lite_prepare(e, &e->probe, "SELECT 1 FROM \"slug_bench\" WHERE \"slug\" = ?1 LIMIT 1");
    lite_prepare(e, &e->insert, "INSERT INTO \"slug_bench\" (\"slug\") VALUES (?1) RETURNING \"id\"");
    lite_prepare(e, &e->del, "DELETE FROM \"slug_bench\" WHERE \"id\" = ?1");
  }
}

static void close_connections(engine *e) {
  nodup_slug_free(e->slug);
  e->slug = NULL;
  nodup_close(e->db);
  e->db = NULL;
  if (e->pg) {
    pg_exec(e, "DEALLOCATE ALL");
  } else {
    sqlite3_finalize(e->probe);
    sqlite3_finalize(e->insert);
    sqlite3_finalize(e->del);
    e->probe = e->insert = e->del = NULL;
  }
}

static void engine_open(engine *e, const options *o) {
  if (e->pg) {
    e->pgc = PQconnectdb(o->pg);
    if (PQstatus(e->pgc) != CONNECTION_OK) die("connect", PQerrorMessage(e->pgc));
    PGresult *res = PQexec(e->pgc, "SHOW server_version");
    snprintf(e->version, sizeof e->version, "PostgreSQL %s",
             PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "?");
    PQclear(res);
    snprintf(e->nodup_url, sizeof e->nodup_url, "%s", o->pg);
  } else {
    snprintf(e->path, sizeof e->path, "%s/slug_bench.db", o->sqlite_dir);
    unlink(e->path);
    if (sqlite3_open_v2(e->path, &e->lite, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        NULL) != SQLITE_OK)
      die(e->path, sqlite3_errmsg(e->lite));
    sqlite3_busy_timeout(e->lite, 5000);
    lite_exec(e, "PRAGMA journal_mode=WAL");
    snprintf(e->version, sizeof e->version, "SQLite %s", sqlite3_libversion());
    snprintf(e->nodup_url, sizeof e->nodup_url, "sqlite:%s", e->path);
  }
}

/* --- the run ---------------------------------------------------------------- */

/* One method, one round: allocations for `seconds` (at least 3, at most
 * MAX_OPS), each checked and undone. Returns the median µs, -1 on error. */
static double run_round(engine *e, int method, long copies, const options *o, cell *c) {
  static double lat[MAX_OPS];
  char want[64], slug[128], id[32];
  int n = 0;
  double start = now_us();
  if (copies == 0) snprintf(want, sizeof want, "%s", BASE);
  else snprintf(want, sizeof want, "%s-%ld", BASE, copies + 1);
  while (n < MAX_OPS && (n < 3 || now_us() - start < o->seconds * 1e6)) {
    double t0 = now_us();
    int rc = method == PROBE
                 ? alloc_probe(e, slug, sizeof slug, id, &c->probe_statements)
                 : alloc_nodup(e, method == PREPARED, slug, sizeof slug, id, &c->nodup_statements);
    double t1 = now_us();
    if (rc != 0) return -1;
    if (strcmp(slug, want) != 0) {
      fprintf(stderr, "bench_slug: %s at %ld copies made \"%s\", expected \"%s\"\n",
              method_names[method], copies, slug, want);
      return -1;
    }
    lat[n++] = t1 - t0;
    delete_row(e, id);
  }
  c->ops += n;
  return median(lat, n);
}

static void run_engine(engine *e, const options *o) {
  engine_open(e, o);
  for (int k = 0; k < o->ncopies && !e->failed; k++) {
    fprintf(stderr, "bench_slug: %s, %ld copies\n", e->name, o->copies[k]);
    reset_table(e, o->copies[k]);
    open_connections(e);
    for (int r = 0; r < o->rounds && !e->failed; r++) {
      for (int i = 0; i < NMETHODS; i++) {
        int m = (i + r) % NMETHODS; /* alternate which goes first */
        cell *c = &e->cells[k][m];
        c->us[r] = run_round(e, m, o->copies[k], o, c);
        if (c->us[r] < 0) e->failed = 1;
      }
      if (e->pg) pg_exec(e, "VACUUM \"slug_bench\""); /* the deleted rows */
    }
    close_connections(e);
  }
  if (e->pg) PQfinish(e->pgc);
  else sqlite3_close(e->lite);
}

/* --- the report -------------------------------------------------------------- */

static void fmt_us(char *out, size_t size, double us) {
  if (us >= 10000) snprintf(out, size, "%.1f ms", us / 1000);
  else if (us >= 1000) snprintf(out, size, "%.2f ms", us / 1000);
  else snprintf(out, size, "%.0f µs", us);
}

/* The probe loop's time over method m's, round by round: median and range. */
static void ratio_cell(char *out, size_t size, engine *e, int k, int m, int rounds) {
  double ratio[MAX_ROUNDS] = {0};
  for (int r = 0; r < rounds; r++) ratio[r] = e->cells[k][PROBE].us[r] / e->cells[k][m].us[r];
  double rmin = ratio[0], rmax = ratio[0];
  for (int r = 1; r < rounds; r++) {
    if (ratio[r] < rmin) rmin = ratio[r];
    if (ratio[r] > rmax) rmax = ratio[r];
  }
  snprintf(out, size, "%.2f× (%.2f–%.2f)", median(ratio, rounds), rmin, rmax);
}

static void report(engine *e, const options *o) {
  double med[MAX_COPIES][NMETHODS];
  long ops[NMETHODS] = {0};
  printf("### %s: slug allocation\n\n", e->version);
  if (e->failed) {
    printf("The run failed (see stderr); no figures.\n\n");
    return;
  }
  printf("| existing copies | nodup (one call) per allocation | nodup prepared per allocation |"
         " probe loop per allocation | probe/nodup | probe/prepared | nodup statements |"
         " prepared statements | probe loop statements |\n");
  printf("|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  for (int k = 0; k < o->ncopies; k++) {
    double v[MAX_ROUNDS];
    char t[NMETHODS][32], rn[48], rp[48];
    for (int m = 0; m < NMETHODS; m++) {
      memcpy(v, e->cells[k][m].us, sizeof v);
      med[k][m] = median(v, o->rounds);
      fmt_us(t[m], sizeof t[m], med[k][m]);
      ops[m] += e->cells[k][m].ops;
    }
    ratio_cell(rn, sizeof rn, e, k, NODUP, o->rounds);
    ratio_cell(rp, sizeof rp, e, k, PREPARED, o->rounds);
    printf("| %ld | %s | %s | %s | %s | %s | %lu | %lu | %ld |\n", o->copies[k], t[NODUP],
           t[PREPARED], t[PROBE], rn, rp, e->cells[k][NODUP].nodup_statements,
           e->cells[k][PREPARED].nodup_statements, e->cells[k][PROBE].probe_statements);
  }
  printf("\n");
  if (o->ncopies > 1) {
    int last = o->ncopies - 1;
    printf("Growth from %ld to %ld copies: nodup %.2f×, nodup prepared %.2f×, probe loop"
           " %.0f×.\n\n",
           o->copies[0], o->copies[last], med[last][NODUP] / med[0][NODUP],
           med[last][PREPARED] / med[0][PREPARED], med[last][PROBE] / med[0][PROBE]);
  }
  printf("Checks: %ld nodup, %ld nodup prepared and %ld probe-loop allocations, every one"
         " returned the expected slug.\n\n",
         ops[NODUP], ops[PREPARED], ops[PROBE]);
}

/* --- options ------------------------------------------------------------------ */

static void usage(void) {
  fprintf(stderr,
          "usage: bench_slug [--pg CONNINFO] [--sqlite-dir DIR] [--only pg|sqlite]\n"
          "                  [--copies 0,100,10000] [--seconds S] [--rounds N]\n");
  exit(2);
}

static void parse(int argc, char **argv, options *o) {
  memset(o, 0, sizeof *o);
  o->run_pg = o->run_sqlite = 1;
  o->seconds = 1.0;
  o->rounds = 3;
  o->copies[0] = 0, o->copies[1] = 100, o->copies[2] = 10000, o->ncopies = 3;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    i++;
    if (!strcmp(a, "--pg")) o->pg = v;
    else if (!strcmp(a, "--sqlite-dir")) o->sqlite_dir = v;
    else if (!strcmp(a, "--only")) {
      o->run_pg = !strcmp(v, "pg");
      o->run_sqlite = !strcmp(v, "sqlite");
      if (!o->run_pg && !o->run_sqlite) usage();
    } else if (!strcmp(a, "--seconds")) o->seconds = atof(v);
    else if (!strcmp(a, "--rounds")) o->rounds = atoi(v);
    else if (!strcmp(a, "--copies")) {
      char *list = strdup(v), *save = NULL;
      o->ncopies = 0;
      for (char *p = strtok_r(list, ",", &save); p && o->ncopies < MAX_COPIES;
           p = strtok_r(NULL, ",", &save))
        o->copies[o->ncopies++] = atol(p);
      free(list);
    } else usage();
  }
  if (o->rounds < 1 || o->rounds > MAX_ROUNDS || o->seconds <= 0 || o->ncopies < 1) usage();
  if (o->run_pg && !o->pg) {
    fprintf(stderr, "bench_slug: --pg CONNINFO is required (or --only sqlite)\n");
    exit(2);
  }
}

int main(int argc, char **argv) {
  static engine engines[2];
  options o;
  char tmp[] = "/tmp/nodup-bench-slug.XXXXXX";
  int status = 0;
  parse(argc, argv, &o);
  if (o.run_sqlite && !o.sqlite_dir) {
    if (!mkdtemp(tmp)) die("mkdtemp", strerror(errno));
    o.sqlite_dir = tmp;
  }
  engines[0].name = "PostgreSQL", engines[0].pg = 1;
  engines[1].name = "SQLite";
  printf("## Slug allocation: nodup against the probe loop\n\n"
         "Per allocation of the next \"My Team\" with N copies already in the table (plus"
         " %d unrelated slugs), the median over %d interleaved rounds of %.1f s; a ratio is"
         " the probe loop's time over nodup's, round by round (median, range). \"nodup\" is"
         " one nodup_slug_create() call per allocation, \"prepared\" one nodup_slug_next()"
         " through a handle prepared once per connection.\n\n",
         FILLER, o.rounds, o.seconds);
  for (int i = 0; i < 2; i++) {
    if (i == 0 ? !o.run_pg : !o.run_sqlite) continue;
    run_engine(&engines[i], &o);
    report(&engines[i], &o);
    if (engines[i].failed) status = 1;
  }
  if (o.sqlite_dir == tmp) {
    char path[128];
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
      snprintf(path, sizeof path, "%s/slug_bench.db%s", tmp, suffixes[i]);
      unlink(path);
    }
    rmdir(tmp);
  }
  return status;
}

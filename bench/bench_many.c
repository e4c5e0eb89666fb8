/*
 * bench_many.c -- issue 15's two comparisons, side by side in one run, on
 * PostgreSQL and SQLite:
 *
 *  - many keys: 10,000 keys, half of them existing, through one
 *    nodup_get_or_create_many() call, through the same call held to its
 *    ON CONFLICT round (PostgreSQL: what it ran before it tried a plain
 *    insert first; set through the library's internal key struct, as
 *    bench_nodup.c forces a strategy), through 10,000 nodup_get_or_create()
 *    calls, through hand-written set-based SQL doing the same (one
 *    statement on PostgreSQL: the input unnested, an INSERT ... ON
 *    CONFLICT DO NOTHING RETURNING in a CTE, joined back for ids in input
 *    order; on SQLite the insert and the lookup over json_each in one
 *    write transaction), and on PostgreSQL the floor: the bare insert of
 *    the 5,000 new keys from one array, nothing else;
 *  - update-or-create: 2,000 keys, three passes (create, the same values
 *    again, new values), through nodup_update_or_create() and through the
 *    hand-written INSERT ... ON CONFLICT DO UPDATE ... WHERE ... IS
 *    DISTINCT FROM ... RETURNING, prepared, with a lookup when it returns
 *    nothing (an equal row: the caller still needs the id).
 *
 * Each round resets the table, then runs every method in an order that
 * rotates per round; the tables give the median milliseconds and the
 * ratios. The hand-written versions skip what nodup does besides (the
 * created flags per input row, the predicate guard); they are the bar.
 *
 *   bench_many --pg CONNINFO [--sqlite-dir DIR] [--label NAME] [--keys N] [--upsert-keys N]
 *              [--rounds R]
 */
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "nodup.h"

static int nkeys = 10000, nupsert = 2000, rounds = 5;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what, nodup_db *db) {
  fprintf(stderr, "bench_many: %s: %s\n", what, db ? nodup_errmsg(db) : "");
  exit(1);
}

static void exec(nodup_db *db, const char *sql) {
  if (nodup_exec(db, sql) != NODUP_OK) die(sql, db);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef struct engine {
  const char *name;
  nodup_db *db;
  int pg;
} engine;

static char **names;   /* "key-000000" ... */

/* The table, empty, then every even key present. */
static void reset(engine *e) {
  char sql[512];
  exec(e->db, e->pg ? "TRUNCATE bm_tags RESTART IDENTITY" : "DELETE FROM bm_tags");
  snprintf(sql, sizeof sql,
           e->pg ? "INSERT INTO bm_tags (name) SELECT 'key-' || lpad(g::text, 6, '0') "
                   "FROM generate_series(0, %d, 2) AS g"
                 : "WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 2 FROM g WHERE i + 2 "
                   "<= %d) INSERT INTO bm_tags (name) SELECT printf('key-%%06d', i) FROM g",
           nkeys - 1);
  exec(e->db, sql);
}

static void setup(engine *e) {
  exec(e->db, "DROP TABLE IF EXISTS bm_tags");
  exec(e->db, e->pg ? "CREATE TABLE bm_tags (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, "
                      "color TEXT)"
                    : "CREATE TABLE bm_tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                      "color TEXT)");
  exec(e->db, "CREATE UNIQUE INDEX bm_tags_name ON bm_tags (name)");
  if (e->pg) exec(e->db, "ANALYZE bm_tags");
}

/* ---- many keys ---- */

static double run_many(engine *e, nodup_key *key) {
  nodup_result *out = calloc((size_t)nkeys, sizeof *out);
  double t0 = now_ms();
  if (nodup_get_or_create_many(key, (size_t)nkeys, (const char *const *)names, NULL, NULL, 0,
                               out) != NODUP_OK)
    die("many", e->db);
  t0 = now_ms() - t0;
  if (out[0].created || !out[1].created) die("many: wrong created flags", NULL);
  free(out);
  return t0;
}

/* The many-keys call with its plain insert skipped (db_pg.c's guarded
 * rounds): the ON CONFLICT round alone. */
static double run_many_guarded(engine *e, nodup_key *key) {
  double t;
  key->many_guarded = 1000;
  t = run_many(e, key);
  key->many_guarded = 0;
  return t;
}

static double run_singles(engine *e, nodup_key *key) {
  nodup_result r;
  double t0 = now_ms();
  for (int i = 0; i < nkeys; i++)
    if (nodup_get_or_create(key, (const char *const *)&names[i], NULL, NULL, 0, &r) != NODUP_OK)
      die("single", e->db);
  return now_ms() - t0;
}

#define PG_HAND_MANY                                                                       \
  "WITH input AS (SELECT * FROM unnest($1::text[]) WITH ORDINALITY AS i(name, ord)), "    \
  "ins AS (INSERT INTO bm_tags (name) SELECT name FROM input ORDER BY name "              \
  "ON CONFLICT (name) DO NOTHING RETURNING id, name) "                                    \
  "SELECT input.ord, coalesce(ins.id, t.id), ins.id IS NOT NULL FROM input "              \
  "LEFT JOIN ins ON ins.name = input.name LEFT JOIN bm_tags t ON t.name = input.name "   \
  "ORDER BY input.ord"

/* names[first], names[first + step], ... quoted and joined by ',' between
 * `open` and `close`: a PostgreSQL array literal or a JSON array. */
static char *names_list(char open, char close, int first, int step) {
  size_t len = 3;
  char *list, *p;
  for (int i = first; i < nkeys; i += step) len += strlen(names[i]) + 3;
  p = list = malloc(len);
  *p++ = open;
  for (int i = first; i < nkeys; i += step)
    p += sprintf(p, "%s\"%s\"", i > first ? "," : "", names[i]);
  *p++ = close;
  *p = '\0';
  return list;
}

/* The prepared statement `stmt` on the array of every step-th name from
 * `first`, timed with the array's making; it must end with `status` and
 * `rows` rows (returned or, for a command, affected). */
static double run_pg_array(engine *e, const char *stmt, int first, int step,
                           ExecStatusType status, int rows) {
  PGconn *c = nodup_db_handle(e->db);
  double t0 = now_ms();
  char *arr = names_list('{', '}', first, step);
  const char *params[1] = {arr};
  PGresult *res = PQexecPrepared(c, stmt, 1, params, NULL, NULL, 0);
  int got = status == PGRES_TUPLES_OK ? PQntuples(res) : atoi(PQcmdTuples(res));
  if (PQresultStatus(res) != status || got != rows) {
    fprintf(stderr, "%s: %s\n", stmt, PQerrorMessage(c));
    exit(1);
  }
  PQclear(res);
  t0 = now_ms() - t0;
  free(arr);
  return t0;
}

static double run_hand_pg(engine *e) {
  return run_pg_array(e, "hand_many", 0, 1, PGRES_TUPLES_OK, nkeys);
}

/* The floor (PostgreSQL): the server's bare insert of the missing keys
 * alone, `INSERT ... SELECT FROM unnest($1)` of the odd keys with no
 * lookup, no check and no ids back: what inserting the rows costs, which
 * any get-or-create of these keys pays. */
#define PG_FLOOR_INSERT "INSERT INTO bm_tags (name) SELECT unnest($1::text[])"

static double run_floor_pg(engine *e) {
  return run_pg_array(e, "floor_insert", 1, 2, PGRES_COMMAND_OK, nkeys / 2);
}

static double run_hand_sqlite(engine *e) {
  sqlite3 *h = nodup_db_handle(e->db);
  sqlite3_stmt *ins, *look;
  char *json;
  int rows = 0;
  double t0 = now_ms();
  json = names_list('[', ']', 0, 1);
  sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  sqlite3_prepare_v2(h, "INSERT INTO bm_tags (name) SELECT value FROM json_each(?1) WHERE true "
                        "ON CONFLICT (name) DO NOTHING RETURNING id", -1, &ins, NULL);
  sqlite3_prepare_v2(h, "SELECT j.key, t.id FROM json_each(?1) AS j JOIN bm_tags AS t "
                        "ON t.name = j.value", -1, &look, NULL);
  sqlite3_bind_text(ins, 1, json, -1, SQLITE_STATIC);
  sqlite3_bind_text(look, 1, json, -1, SQLITE_STATIC);
  while (sqlite3_step(ins) == SQLITE_ROW) rows++;
  while (sqlite3_step(look) == SQLITE_ROW) rows++;
  sqlite3_finalize(ins);
  sqlite3_finalize(look);
  if (sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK || rows != nkeys + nkeys / 2) {
    fprintf(stderr, "hand sqlite: %d rows: %s\n", rows, sqlite3_errmsg(h));
    exit(1);
  }
  t0 = now_ms() - t0;
  free(json);
  return t0;
}

/* ---- update-or-create ---- */

static const char *pass_color(int pass) { return pass == 2 ? "blue" : "red"; }

static double run_upsert(engine *e, nodup_key *key) {
  const char *scols[] = {"color"};
  nodup_result r;
  int outcome, counts[4] = {0};
  double t0 = now_ms();
  for (int pass = 0; pass < 3; pass++)
    for (int i = 0; i < nupsert; i++) {
      const char *svals[] = {pass_color(pass)};
      if (nodup_update_or_create(key, (const char *const *)&names[i], NULL, NULL, 0, scols, svals,
                                 1, &r, &outcome) != NODUP_OK)
        die("upsert", e->db);
      counts[outcome]++;
    }
  t0 = now_ms() - t0;
  if (counts[NODUP_CREATED] != nupsert || counts[NODUP_UNCHANGED] != nupsert ||
      counts[NODUP_UPDATED] != nupsert)
    die("upsert: wrong outcomes", NULL);
  return t0;
}

#define PG_HAND_UPSERT                                                                      \
  "INSERT INTO bm_tags AS t (name, color) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE "   \
  "SET color = EXCLUDED.color WHERE t.color IS DISTINCT FROM EXCLUDED.color "              \
  "RETURNING id, (xmax = 0)"
#define PG_HAND_LOOKUP "SELECT id FROM bm_tags WHERE name = $1"

static double run_hand_upsert_pg(engine *e) {
  PGconn *c = nodup_db_handle(e->db);
  double t0 = now_ms();
  for (int pass = 0; pass < 3; pass++)
    for (int i = 0; i < nupsert; i++) {
      const char *params[2] = {names[i], pass_color(pass)};
      PGresult *res = PQexecPrepared(c, "hand_upsert", 2, params, NULL, NULL, 0);
      if (PQresultStatus(res) != PGRES_TUPLES_OK) die("hand upsert", NULL);
      if (PQntuples(res) == 0) {
        PQclear(res);
        res = PQexecPrepared(c, "hand_lookup", 1, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) die("hand lookup", NULL);
      }
      PQclear(res);
    }
  return now_ms() - t0;
}

static double run_hand_upsert_sqlite(engine *e) {
  sqlite3 *h = nodup_db_handle(e->db);
  sqlite3_stmt *up, *look;
  sqlite3_prepare_v3(h, "INSERT INTO bm_tags (name, color) VALUES (?1, ?2) ON CONFLICT (name) "
                        "DO UPDATE SET color = excluded.color WHERE color IS NOT excluded.color "
                        "RETURNING id", -1, SQLITE_PREPARE_PERSISTENT, &up, NULL);
  sqlite3_prepare_v3(h, "SELECT id FROM bm_tags WHERE name = ?1", -1, SQLITE_PREPARE_PERSISTENT,
                     &look, NULL);
  double t0 = now_ms();
  for (int pass = 0; pass < 3; pass++)
    for (int i = 0; i < nupsert; i++) {
      int got = 0;
      sqlite3_bind_text(up, 1, names[i], -1, SQLITE_STATIC);
      sqlite3_bind_text(up, 2, pass_color(pass), -1, SQLITE_STATIC);
      while (sqlite3_step(up) == SQLITE_ROW) got = 1;
      sqlite3_reset(up);
      if (!got) {
        sqlite3_bind_text(look, 1, names[i], -1, SQLITE_STATIC);
        if (sqlite3_step(look) != SQLITE_ROW) die("hand lookup", NULL);
        sqlite3_reset(look);
      }
    }
  t0 = now_ms() - t0;
  sqlite3_finalize(up);
  sqlite3_finalize(look);
  return t0;
}

static void pg_prepare_hand(engine *e) {
  PGconn *c = nodup_db_handle(e->db);
  PGresult *r1 = PQprepare(c, "hand_many", PG_HAND_MANY, 1, NULL);
  PGresult *r2 = PQprepare(c, "hand_upsert", PG_HAND_UPSERT, 2, NULL);
  PGresult *r3 = PQprepare(c, "hand_lookup", PG_HAND_LOOKUP, 1, NULL);
  PGresult *r4 = PQprepare(c, "floor_insert", PG_FLOOR_INSERT, 1, NULL);
  if (PQresultStatus(r1) != PGRES_COMMAND_OK || PQresultStatus(r2) != PGRES_COMMAND_OK ||
      PQresultStatus(r3) != PGRES_COMMAND_OK || PQresultStatus(r4) != PGRES_COMMAND_OK) {
    fprintf(stderr, "prepare: %s\n", PQerrorMessage(c));
    exit(1);
  }
  PQclear(r1);
  PQclear(r2);
  PQclear(r3);
  PQclear(r4);
}

typedef struct result {
  double many, guarded, singles, hand, floor, ups, hups;
  /* Ratios taken round by round (median, min, max): single calls over
   * the call, the ON CONFLICT round alone over the call, single calls
   * over the floor. */
  double r_singles[3], r_guarded[3], r_floor[3];
} result;

/* The median, min and max over the rounds of num[r] / den[r]. */
static void ratios(const double *num, const double *den, int n, double out[3]) {
  double v[64];
  for (int r = 0; r < n; r++) v[r] = den[r] > 0 ? num[r] / den[r] : 0;
  out[0] = median(v, n);   /* sorts v */
  out[1] = v[0];
  out[2] = v[n - 1];
}

static result bench_engine(engine *e) {
  static const char *const name_col[] = {"name"};
  double t[5][64], u[2][64];
  nodup_key *key, *guarded;
  result res;
  setup(e);
  if (e->pg) pg_prepare_hand(e);
  /* A key handle per many-keys method, so each method's prepared
   * statements run once a round, as one application's would: a statement
   * run more than five times may move to a generic plan (see README). */
  if (nodup_key_prepare(&key, e->db, "bm_tags", name_col, 1, NULL) != NODUP_OK ||
      nodup_key_prepare(&guarded, e->db, "bm_tags", name_col, 1, NULL) != NODUP_OK)
    die("key", e->db);
  for (int r = 0; r < rounds; r++) {
    for (int k = 0; k < 5; k++) {
      int m = (k + r) % 5;
      reset(e);
      /* BENCH_MANY_ONLY=M: method M alone (profiling); the others read 0. */
      const char *only = getenv("BENCH_MANY_ONLY");
      t[m][r] = 0;
      if (only && m != atoi(only)) continue;
      if (m == 0) t[0][r] = run_many(e, key);
      else if (m == 1) t[1][r] = run_singles(e, key);
      else if (m == 2) t[2][r] = e->pg ? run_hand_pg(e) : run_hand_sqlite(e);
      else if (m == 3) t[3][r] = run_many_guarded(e, guarded);
      else t[4][r] = e->pg ? run_floor_pg(e) : 0;
    }
    for (int k = 0; k < 2; k++) {
      int m = (k + r) % 2;
      exec(e->db, e->pg ? "TRUNCATE bm_tags RESTART IDENTITY" : "DELETE FROM bm_tags");
      if (m == 0) u[0][r] = run_upsert(e, key);
      else u[1][r] = e->pg ? run_hand_upsert_pg(e) : run_hand_upsert_sqlite(e);
    }
    fprintf(stderr, "bench_many: %s round %d of %d\n", e->name, r + 1, rounds);
  }
  nodup_key_free(key);
  nodup_key_free(guarded);
  ratios(t[1], t[0], rounds, res.r_singles);
  ratios(t[3], t[0], rounds, res.r_guarded);
  ratios(t[1], t[4], rounds, res.r_floor);
  res.floor = median(t[4], rounds);
  res.many = median(t[0], rounds);
  res.singles = median(t[1], rounds);
  res.hand = median(t[2], rounds);
  res.guarded = median(t[3], rounds);
  res.ups = median(u[0], rounds);
  res.hups = median(u[1], rounds);
  return res;
}

int main(int argc, char **argv) {
  const char *pg = NULL, *dir = NULL, *label = "PostgreSQL";
  char path[512];
  engine e[2];
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--pg") && i + 1 < argc) pg = argv[++i];
    else if (!strcmp(argv[i], "--sqlite-dir") && i + 1 < argc) dir = argv[++i];
    else if (!strcmp(argv[i], "--label") && i + 1 < argc) label = argv[++i];
    else if (!strcmp(argv[i], "--keys") && i + 1 < argc) nkeys = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--upsert-keys") && i + 1 < argc) nupsert = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: bench_many --pg CONNINFO [--sqlite-dir DIR] [--label NAME] "
                      "[--keys N] [--upsert-keys N] [--rounds R]\n");
      return 2;
    }
  }
  if (!pg || nkeys < 2 || nupsert < 1 || nupsert > nkeys || rounds < 1 || rounds > 64) {
    fprintf(stderr, "bench_many: --pg is required; 2 <= keys, "
                    "1 <= upsert-keys <= keys, 1 <= rounds <= 64\n");
    return 2;
  }
  names = calloc((size_t)nkeys, sizeof *names);
  for (int i = 0; i < nkeys; i++) {
    names[i] = malloc(16);
    snprintf(names[i], 16, "key-%06d", i);
  }
  int ne = dir ? 2 : 1;
  snprintf(path, sizeof path, "file:%s/many.db?mode=rwc", dir ? dir : ".");
  e[0] = (engine){label, NULL, 1};
  e[1] = (engine){"SQLite", NULL, 0};
  if (nodup_open(&e[0].db, pg) != NODUP_OK) die("open pg", e[0].db);
  if (dir && nodup_open(&e[1].db, path) != NODUP_OK) die("open sqlite", e[1].db);
  result res[2];
  for (int i = 0; i < ne; i++) res[i] = bench_engine(&e[i]);
  printf("Medians of %d rounds (ms); ratios are speed: the other method's time over "
         "nodup's.\n\n", rounds);
  printf("| engine | %d keys, half existing | one many-keys call | the same, ON CONFLICT "
         "round alone | %d single calls | hand set-based SQL | vs single calls | vs hand | "
         "vs ON CONFLICT round alone |\n|---|---|---|---|---|---|---|---|---|\n",
         nkeys, nkeys);
  for (int i = 0; i < ne; i++)
    printf("| %s | | %.1f | %.1f | %.1f | %.1f | %.1fx | %.2fx | %.2fx |\n", e[i].name,
           res[i].many, res[i].guarded, res[i].singles, res[i].hand, res[i].singles / res[i].many,
           res[i].hand / res[i].many, res[i].guarded / res[i].many);
  printf("\nRound by round (median, min-max over the rounds); the floor is the bare INSERT ... "
         "SELECT FROM unnest($1) of the %d new keys alone, so single calls over the floor is "
         "the most any many-keys call could reach.\n\n"
         "| engine | floor (ms) | single calls / the call | ON CONFLICT round alone / the call "
         "| single calls / the floor |\n|---|---|---|---|---|\n", nkeys / 2);
  for (int i = 0; i < ne; i++) {
    if (!e[i].pg) continue;
    printf("| %s | %.1f | %.1fx (%.1f-%.1f) | %.2fx (%.2f-%.2f) | %.1fx (%.1f-%.1f) |\n", e[i].name,
           res[i].floor, res[i].r_singles[0], res[i].r_singles[1], res[i].r_singles[2],
           res[i].r_guarded[0], res[i].r_guarded[1], res[i].r_guarded[2], res[i].r_floor[0],
           res[i].r_floor[1], res[i].r_floor[2]);
  }
  printf("\n| engine | %d keys x 3 passes (create, equal, update) | nodup_update_or_create | "
         "hand ON CONFLICT DO UPDATE ... WHERE IS DISTINCT FROM | vs hand |\n"
         "|---|---|---|---|---|\n", nupsert);
  for (int i = 0; i < ne; i++)
    printf("| %s | | %.1f | %.1f | %.2fx |\n", e[i].name, res[i].ups, res[i].hups,
           res[i].hups / res[i].ups);
  for (int i = 0; i < ne; i++) nodup_close(e[i].db);
  for (int i = 0; i < nkeys; i++) free(names[i]);
  free(names);
  return 0;
}

/*
 * bench_merge_loop.c -- the merge benchmark's "per-group loop": what a
 * hand-written application script does to merge duplicates, on the schema
 * of bench/merge/gen_*.sql (parent, child, link, profile).
 *
 *   bench_merge_loop --pg CONNINFO | --sqlite PATH
 *
 * It reads every duplicate group of parent.k once (ids in key order, then
 * id order), and then, for each group, in one transaction of its own, runs
 * six prepared statements bound to the keeper (lowest id) and the group's
 * losers: delete the link and profile rows that would collide once
 * re-pointed (keeping the row already on the keeper, else the lowest id,
 * the rule nodup merge and bench/merge/hand_*.sql follow), re-point link,
 * profile and child, delete the losers. One round trip per statement, no
 * archive, no locking of the group first: the cheapest script that gives
 * the same result. SQLite connections get nodup's settings (WAL,
 * foreign_keys=ON, 5 s busy timeout). Prints one line with the counts;
 * exit status 0 ok, 2 error.
 */
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NSTMT = 6 };

/* The losers of a group: PostgreSQL binds an int8[] literal, SQLite a JSON
 * array read with json_each. */
#define PG_LOSERS "ANY($2::bigint[])"
#define SQ_LOSERS "(SELECT value FROM json_each(?2))"
#define PG_IN " = " PG_LOSERS
#define SQ_IN " IN " SQ_LOSERS

#define STATEMENTS(IN, KEEPER)                                                              \
  {"DELETE FROM link AS l WHERE l.parent_id" IN " AND EXISTS (SELECT 1 FROM link AS o"    \
   " WHERE o.owner = l.owner AND (o.parent_id = " KEEPER " OR (o.parent_id" IN             \
   " AND o.id < l.id)))",                                                                  \
   "UPDATE link SET parent_id = " KEEPER " WHERE parent_id" IN,                            \
   "DELETE FROM profile AS p WHERE p.parent_id" IN " AND EXISTS (SELECT 1 FROM profile"   \
   " AS o WHERE o.parent_id = " KEEPER " OR (o.parent_id" IN " AND o.id < p.id))",         \
   "UPDATE profile SET parent_id = " KEEPER " WHERE parent_id" IN,                         \
   "UPDATE child SET parent_id = " KEEPER " WHERE parent_id" IN,                           \
   "DELETE FROM parent WHERE id" IN}

static const char *const pg_sql[NSTMT] = STATEMENTS(PG_IN, "$1");
static const char *const sq_sql[NSTMT] = STATEMENTS(SQ_IN, "?1");

static const char groups_sql[] =
    "SELECT k, id FROM parent WHERE k IN (SELECT k FROM parent GROUP BY k HAVING count(*) > 1)"
    " ORDER BY k, id";

/* Every duplicate group as a run of ids; start[g] .. start[g + 1] - 1. */
typedef struct groups {
  long long *ids;
  size_t nids, capids;
  size_t *start;
  size_t ngroups, capgroups;
  char *lastkey;
} groups;

static int groups_add(groups *g, const char *k, long long id) {
  if (g->nids == g->capids) {
    size_t cap = g->capids ? 2 * g->capids : 4096;
    long long *p = realloc(g->ids, cap * sizeof *p);
    if (!p) return -1;
    g->ids = p;
    g->capids = cap;
  }
  if (!g->lastkey || strcmp(g->lastkey, k)) {
    if (g->ngroups + 1 >= g->capgroups) {
      size_t cap = g->capgroups ? 2 * g->capgroups : 1024;
      size_t *p = realloc(g->start, cap * sizeof *p);
      if (!p) return -1;
      g->start = p;
      g->capgroups = cap;
    }
    g->start[g->ngroups++] = g->nids;
    free(g->lastkey);
    if (!(g->lastkey = strdup(k))) return -1;
  }
  g->ids[g->nids++] = id;
  g->start[g->ngroups] = g->nids;
  return 0;
}

/* The losers of group i as "{a,b}" (pg) or "[a,b]" (sqlite). */
static void losers_text(const groups *g, size_t i, int json, char *out, size_t cap) {
  size_t j, n = 0;
  out[n++] = json ? '[' : '{';
  for (j = g->start[i] + 1; j < g->start[i + 1] && n + 24 < cap; j++)
    n += (size_t)snprintf(out + n, cap - n, "%s%lld", j > g->start[i] + 1 ? "," : "", g->ids[j]);
  snprintf(out + n, cap - n, "%c", json ? ']' : '}');
}

static int pg_run(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  if (!ok) fprintf(stderr, "bench_merge_loop: %s: %s", sql, PQerrorMessage(c));
  PQclear(r);
  return ok ? 0 : -1;
}

static int pg_loop(const char *conninfo, groups *g, long long *changed) {
  PGconn *c = PQconnectdb(conninfo);
  PGresult *r = NULL;
  /* int8 and int8[]: the last statement does not use the keeper. */
  static const Oid types[2] = {20, 1016};
  char name[16], keeper[24], losers[4096];
  int i, rc = -1;
  size_t grp;

  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "bench_merge_loop: %s", PQerrorMessage(c));
    goto done;
  }
  r = PQexec(c, groups_sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    fprintf(stderr, "bench_merge_loop: %s", PQerrorMessage(c));
    goto done;
  }
  for (i = 0; i < PQntuples(r); i++)
    if (groups_add(g, PQgetvalue(r, i, 0), atoll(PQgetvalue(r, i, 1)))) goto done;
  PQclear(r);
  r = NULL;
  for (i = 0; i < NSTMT; i++) {
    snprintf(name, sizeof name, "s%d", i);
    r = PQprepare(c, name, pg_sql[i], 2, types);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      fprintf(stderr, "bench_merge_loop: %s: %s", pg_sql[i], PQerrorMessage(c));
      goto done;
    }
    PQclear(r);
    r = NULL;
  }
  for (grp = 0; grp < g->ngroups; grp++) {
    const char *params[2] = {keeper, losers};
    snprintf(keeper, sizeof keeper, "%lld", g->ids[g->start[grp]]);
    losers_text(g, grp, 0, losers, sizeof losers);
    if (pg_run(c, "BEGIN")) goto done;
    for (i = 0; i < NSTMT; i++) {
      snprintf(name, sizeof name, "s%d", i);
      r = PQexecPrepared(c, name, 2, params, NULL, NULL, 0);
      if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "bench_merge_loop: %s: %s", pg_sql[i], PQerrorMessage(c));
        goto done;
      }
      *changed += atoll(PQcmdTuples(r));
      PQclear(r);
      r = NULL;
    }
    if (pg_run(c, "COMMIT")) goto done;
  }
  rc = 0;
done:
  PQclear(r);
  PQfinish(c);
  return rc;
}

static int sq_fail(sqlite3 *h, const char *what) {
  fprintf(stderr, "bench_merge_loop: %s: %s\n", what, sqlite3_errmsg(h));
  return -1;
}

static int sq_loop(const char *path, groups *g, long long *changed) {
  sqlite3 *h = NULL;
  sqlite3_stmt *st[NSTMT + 2] = {0}, *q = NULL;
  char losers[4096];
  int i, rc = -1;
  size_t grp;

  if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
    sq_fail(h, path);
    goto done;
  }
  sqlite3_extended_result_codes(h, 1);
  sqlite3_busy_timeout(h, 5000);
  if (sqlite3_exec(h, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;", NULL, NULL, NULL))
    goto fail;
  if (sqlite3_prepare_v2(h, groups_sql, -1, &q, NULL)) goto fail;
  while ((i = sqlite3_step(q)) == SQLITE_ROW)
    if (groups_add(g, (const char *)sqlite3_column_text(q, 0), sqlite3_column_int64(q, 1)))
      goto done;
  if (i != SQLITE_DONE) goto fail;
  for (i = 0; i < NSTMT; i++)
    if (sqlite3_prepare_v2(h, sq_sql[i], -1, &st[i], NULL)) goto fail;
  if (sqlite3_prepare_v2(h, "BEGIN IMMEDIATE", -1, &st[NSTMT], NULL) ||
      sqlite3_prepare_v2(h, "COMMIT", -1, &st[NSTMT + 1], NULL))
    goto fail;
  for (grp = 0; grp < g->ngroups; grp++) {
    losers_text(g, grp, 1, losers, sizeof losers);
    if (sqlite3_step(st[NSTMT]) != SQLITE_DONE) goto fail;
    sqlite3_reset(st[NSTMT]);
    for (i = 0; i < NSTMT; i++) {
      sqlite3_bind_int64(st[i], 1, g->ids[g->start[grp]]);
      sqlite3_bind_text(st[i], 2, losers, -1, SQLITE_STATIC);
      if (sqlite3_step(st[i]) != SQLITE_DONE) goto fail;
      *changed += sqlite3_changes(h);
      sqlite3_reset(st[i]);
    }
    if (sqlite3_step(st[NSTMT + 1]) != SQLITE_DONE) goto fail;
    sqlite3_reset(st[NSTMT + 1]);
  }
  rc = 0;
  goto done;
fail:
  sq_fail(h, "statement");
done:
  sqlite3_finalize(q);
  for (i = 0; i < NSTMT + 2; i++) sqlite3_finalize(st[i]);
  sqlite3_close(h);
  return rc;
}

int main(int argc, char **argv) {
  groups g;
  long long changed = 0;
  int rc;

  memset(&g, 0, sizeof g);
  if (argc != 3 || (strcmp(argv[1], "--pg") && strcmp(argv[1], "--sqlite"))) {
    fprintf(stderr, "usage: bench_merge_loop --pg CONNINFO | --sqlite PATH\n");
    return 2;
  }
  rc = !strcmp(argv[1], "--pg") ? pg_loop(argv[2], &g, &changed)
                                : sq_loop(argv[2], &g, &changed);
  if (rc == 0)
    printf("per-group loop: %zu groups, %zu rows in them, %lld rows changed, %zu transactions\n",
           g.ngroups, g.nids, changed, g.ngroups);
  free(g.ids);
  free(g.start);
  free(g.lastkey);
  return rc ? 2 : 0;
}

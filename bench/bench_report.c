/*
 * bench_report.c -- the benchmark's Markdown report: per engine, a heading
 * with the conditions that matter (durability settings, transport), the
 * throughput table with nodup's ratios and the targets, the CPU table that
 * explains it, and the correctness checks.
 *
 * Ratios are taken round by round (nodup against the other method measured
 * next to it) and their median is shown, with the range over the rounds:
 * the machine's load drifts, and adjacent measurements share it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The median of `n` values, -1 if any is negative (that round failed or
 * could not be measured), -2 if n == 0 (not run). */
static double median(const double *values, int n) {
  double v[MAX_ROUNDS];
  if (n == 0)
    return -2;
  memcpy(v, values, sizeof v[0] * (size_t)n);
  qsort(v, (size_t)n, sizeof v[0], cmp_double);
  if (v[0] < 0)
    return -1;
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A ratio taken round by round: its median and range. */
typedef struct ratio {
  double median, lo, hi; /* median < 0: not available */
} ratio;

/* num[i] / den[i] over the `n` rounds. */
static ratio ratio_of(const double *num, const double *den, int n) {
  ratio q = {-1, 0, 0};
  double v[MAX_ROUNDS];
  if (n == 0)
    return q;
  for (int i = 0; i < n; i++) {
    if (num[i] < 0 || den[i] <= 0)
      return q;
    v[i] = num[i] / den[i];
  }
  qsort(v, (size_t)n, sizeof v[0], cmp_double);
  q.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  q.lo = v[0];
  q.hi = v[n - 1];
  return q;
}

/* nodup's throughput over `other`'s. */
static ratio ops_ratio(const bench_cell *nodup, const bench_cell *other) {
  ratio none = {-1, 0, 0};
  if (other->nrounds != nodup->nrounds)
    return none;
  return ratio_of(nodup->ops, other->ops, nodup->nrounds);
}

/* `other`'s CPU per operation over nodup's: the throughput ratio that CPU
 * alone would allow. */
static ratio cpu_ratio(const bench_cell *nodup, const bench_cell *other) {
  ratio none = {-1, 0, 0};
  if (other->nrounds != nodup->nrounds)
    return none;
  return ratio_of(other->cpu, nodup->cpu, nodup->nrounds);
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
 * and >= 3x django on every row; through the pooler >= 0.85x raw (issue 11
 * sets no django target there); SQLite wants >= 0.9x raw on pure hits and
 * sets no target elsewhere. */
static const char *verdict(int engine_id, int mix, ratio raw, ratio django) {
  if (engine_id == ENGINE_POOLED)
    return raw.median < 0 ? "—" : raw.median >= 0.85 ? "PASS" : "MISS (raw)";
  if (engine_id == ENGINE_SQLITE)
    return mix != MIX_HITS     ? "— (no target)"
           : raw.median < 0    ? "—"
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

static void print_table(const bench_engine *e, int engine_id,
                        const bench_options *o) {
  printf("| threads | mix | nodup ops/s | raw ops/s | django ops/s "
         "| nodup/raw | nodup/django | target: %s |\n",
         engine_id == ENGINE_PG       ? "≥ 0.85× raw and ≥ 3× django"
         : engine_id == ENGINE_POOLED ? "≥ 0.85× raw"
                                      : "hits ≥ 0.9× raw");
  printf("|--:|---|--:|--:|--:|--:|--:|---|\n");
  for (int t = 0; t < o->nthreads[engine_id]; t++)
    for (int mix = 0; mix < NMIXES; mix++) {
      if (!o->mix_on[mix])
        continue;
      const bench_cell *r = e->results[t][mix];
      char b[NMETHODS][32], r1[48], r2[48];
      ratio q_raw = ops_ratio(&r[METHOD_NODUP], &r[METHOD_RAW]);
      ratio q_django = ops_ratio(&r[METHOD_NODUP], &r[METHOD_DJANGO]);
      for (int m = 0; m < NMETHODS; m++)
        fmt_ops(median(r[m].ops, r[m].nrounds), b[m], sizeof b[m]);
      printf("| %d | %s | %s | %s | %s | %s | %s | %s |\n",
             o->threads[engine_id][t], bench_mix_names[mix], b[0], b[1], b[2],
             fmt_ratio(q_raw, o->rounds, r1, sizeof r1),
             fmt_ratio(q_django, o->rounds, r2, sizeof r2),
             verdict(engine_id, mix, q_raw, q_django));
    }
}

/* Does any cell of the engine have a CPU figure? */
static int has_cpu(const bench_engine *e, int engine_id,
                   const bench_options *o) {
  for (int t = 0; t < o->nthreads[engine_id]; t++)
    for (int mix = 0; mix < NMIXES; mix++)
      for (int m = 0; m < NMETHODS; m++)
        if (median(e->results[t][mix][m].cpu, e->results[t][mix][m].nrounds) >
            0)
          return 1;
  return 0;
}

/*
 * CPU time per operation: client thread plus, on PostgreSQL, its server
 * backend (kernel time included); through the pooler, every backend of the
 * pool and the pooler itself. When the clients outnumber the cores the run
 * is CPU-bound and the throughput ratios follow these; with one client the
 * run is bound by round-trip latency instead.
 */
static void print_cpu_table(const bench_engine *e, int engine_id,
                            const bench_options *o) {
  if (!has_cpu(e, engine_id, o))
    return;
  printf("\nCPU per operation (µs, %s), and the throughput ratio that CPU "
         "alone would allow:\n\n",
         engine_id == ENGINE_PG ? "client thread + its server backend"
         : engine_id == ENGINE_POOLED
             ? "client threads + every server backend of the pool + the "
               "pooler process"
             : "client thread");
  printf("| threads | mix | nodup | raw | django | nodup/raw by CPU "
         "| nodup/django by CPU |\n");
  printf("|--:|---|--:|--:|--:|--:|--:|\n");
  for (int t = 0; t < o->nthreads[engine_id]; t++)
    for (int mix = 0; mix < NMIXES; mix++) {
      if (!o->mix_on[mix])
        continue;
      const bench_cell *r = e->results[t][mix];
      char b[NMETHODS][32], r1[48], r2[48];
      for (int m = 0; m < NMETHODS; m++) {
        double us = median(r[m].cpu, r[m].nrounds);
        if (us < 0)
          snprintf(b[m], sizeof b[m], "—");
        else
          snprintf(b[m], sizeof b[m], "%.1f", us);
      }
      printf("| %d | %s | %s | %s | %s | %s | %s |\n", o->threads[engine_id][t],
             bench_mix_names[mix], b[0], b[1], b[2],
             fmt_ratio(cpu_ratio(&r[METHOD_NODUP], &r[METHOD_RAW]), o->rounds,
                       r1, sizeof r1),
             fmt_ratio(cpu_ratio(&r[METHOD_NODUP], &r[METHOD_DJANGO]),
                       o->rounds, r2, sizeof r2));
    }
}

/* The correctness notes under a table: one line per cell that failed a
 * check, or one line saying all passed. */
static void print_checks(const bench_engine *e, int engine_id,
                         const bench_options *o) {
  long checked = 0;
  int bad = 0;
  printf("\nChecks: ");
  for (int t = 0; t < o->nthreads[engine_id]; t++)
    for (int mix = 0; mix < NMIXES; mix++)
      for (int m = 0; m < NMETHODS; m++) {
        const bench_cell *r = &e->results[t][mix][m];
        checked += r->checked;
        if (r->errors == 0 && r->wrong == 0 && r->rows_bad == 0)
          continue;
        printf("%s\n- %d threads, %s, %s: %ld errors, %ld wrong outcomes, "
               "%d bad row counts; first: %s",
               bad ? "" : "FAILED", o->threads[engine_id][t],
               bench_mix_names[mix], e->methods[m]->name, r->errors, r->wrong,
               r->rows_bad, r->errmsg);
        bad = 1;
      }
  if (!bad)
    printf("%ld operations checked: every call returned an id, %s matched "
           "hit/miss on every call, and each table ended with exactly one "
           "new row per miss.",
           checked,
           engine_id != ENGINE_SQLITE
               ? "nodup's created flag and django's path (the raw statement "
                 "cannot tell)"
               : "the created flag or path of every method");
  printf("\n\n");
}

static const char *synchronous_name(int level) {
  static const char *const names[] = {"OFF", "NORMAL", "FULL", "EXTRA"};
  return level >= 0 && level <= 3 ? names[level] : "?";
}

static void print_engine_heading(const bench_engine *e, int engine_id,
                                 const bench_options *o) {
  if (engine_id != ENGINE_SQLITE) {
    PGresult *f = PQexec(e->pg_admin, "SHOW fsync");
    PGresult *s = PQexec(e->pg_admin, "SHOW synchronous_commit");
    const char *host = PQhost(e->pg_admin);
    printf("## PostgreSQL %s",
           PQparameterStatus(e->pg_admin, "server_version"));
    if (engine_id == ENGINE_POOLED)
      printf(" through %s (transaction pooling)",
             o->pooler_label ? o->pooler_label : "a pooler");
    printf("\n\n%s; fsync=%s, synchronous_commit=%s",
           host && host[0] == '/' ? "Unix socket" : "TCP",
           PQresultStatus(f) == PGRES_TUPLES_OK ? PQgetvalue(f, 0, 0) : "?",
           PQresultStatus(s) == PGRES_TUPLES_OK ? PQgetvalue(s, 0, 0) : "?");
    printf("%s. One connection per client thread",
           PQresultStatus(f) == PGRES_TUPLES_OK &&
                   strcmp(PQgetvalue(f, 0, 0), "off") == 0
               ? " (a throwaway cluster: nothing here is durable)"
               : "");
    if (engine_id == ENGINE_POOLED)
      printf(", to the pooler, which runs each transaction on a free server "
             "connection. Every statement is sent unnamed: nodup detects the "
             "pooler at connect; raw runs its statement with PQexecParams, "
             "django its steps with PQexecParams and PQexec");
    printf(".\n\n");
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

void bench_report_print(const bench_engine *engines, const bench_options *o) {
  printf("# nodup get-or-create benchmark\n\n"
         "nodup %s · %ld CPUs · %g s per cell after a %g s warm-up · median "
         "of %d round%s · %ld existing keys · ops/s summed over all client "
         "threads · every cell starts from a fresh table.\n\n"
         "A ratio is nodup's throughput over the other method's, taken "
         "round by round (the methods of a row run interleaved) and shown as "
         "the median%s; PASS/MISS compares the median with the target.\n\n",
         NODUP_VERSION, sysconf(_SC_NPROCESSORS_ONLN), o->seconds, o->warmup,
         o->rounds, o->rounds == 1 ? "" : "s", o->keys,
         o->rounds > 1 ? " with the range over the rounds in parentheses" : "");
  for (int id = 0; id < NENGINES; id++) {
    if (!o->run[id])
      continue;
    print_engine_heading(&engines[id], id, o);
    print_table(&engines[id], id, o);
    print_cpu_table(&engines[id], id, o);
    print_checks(&engines[id], id, o);
  }
  fflush(stdout);
}

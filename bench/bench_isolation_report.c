/*
 * bench_isolation_report.c -- the isolation-level benchmark's Markdown:
 * per level the throughput, its ratio to READ COMMITTED taken round by
 * round, CPU per call and nodup's retries; then where the retries happen
 * (the creation race or after it) and the correctness checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench_isolation.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median of v[0..n), n >= 1 (sorted in place), and its range; -1 when any
 * is < 0 (a cell that could not be measured). */
static double median(double *v, int n, double *lo, double *hi) {
  qsort(v, (size_t)n, sizeof v[0], cmp_double);
  *lo = v[0];
  *hi = v[n - 1];
  if (v[0] < 0)
    return -1;
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_isolation_report(PGconn *admin, const iso_options *o,
                            iso_cell (*cells)[NLEVELS]) {
  PGresult *f = PQexec(admin, "SHOW fsync");
  printf("## PostgreSQL %s: %d clients on %d hot keys, by "
         "default_transaction_isolation\n\n",
         PQparameterStatus(admin, "server_version"), o->threads, o->keys);
  printf("nodup %s · %ld CPUs · fsync=%s · each cell: an empty table, ALTER "
         "DATABASE ... SET default_transaction_isolation, %d new nodup "
         "connections (each checked with SHOW transaction_isolation) that "
         "start together and call nodup_get_or_create() on a random one of "
         "%d keys for %g s, measured from the start (the creation race "
         "included). Median of %d round%s, the levels interleaved and their "
         "order rotating; \"vs READ COMMITTED\" is taken round by round "
         "(median, range). Retries are the transactions nodup re-ran after "
         "40001 or 40P01 (nodup_retries(), summed over the clients).\n\n",
         NODUP_VERSION, sysconf(_SC_NPROCESSORS_ONLN),
         PQresultStatus(f) == PGRES_TUPLES_OK ? PQgetvalue(f, 0, 0) : "?",
         o->threads, o->keys, o->seconds, o->rounds,
         o->rounds == 1 ? "" : "s");
  PQclear(f);
  printf("| isolation | calls/s | vs READ COMMITTED | CPU µs per call | "
         "retries per 1,000 calls | retries (all rounds) | most retries in "
         "one call |\n|---|--:|--:|--:|--:|--:|--:|\n");
  for (int l = 0; l < NLEVELS; l++) {
    if (!o->level_on[l])
      continue;
    double ops[MAX_ROUNDS], cpu[MAX_ROUNDS], rel[MAX_ROUNDS], lo, hi, rlo,
        rhi;
    long calls = 0;
    unsigned long long retries = 0, most = 0;
    int have_rel = o->level_on[0];
    for (int i = 0; i < o->rounds; i++) {
      const iso_cell *x = &cells[i][l], *rc = &cells[i][0];
      ops[i] = x->ops;
      cpu[i] = x->cpu_us;
      rel[i] = x->ops >= 0 && rc->ops > 0 ? x->ops / rc->ops : -1;
      calls += x->calls;
      retries += x->retries;
      if (x->max_retries > most)
        most = x->max_retries;
    }
    double m_ops = median(ops, o->rounds, &lo, &hi);
    double m_cpu = median(cpu, o->rounds, &lo, &hi);
    double m_rel = have_rel ? median(rel, o->rounds, &rlo, &rhi) : -1;
    char s_ops[32] = "error", s_cpu[32] = "—", s_rel[64] = "—";
    if (m_ops >= 0)
      snprintf(s_ops, sizeof s_ops, "%.0f", m_ops);
    if (m_cpu >= 0)
      snprintf(s_cpu, sizeof s_cpu, "%.1f", m_cpu);
    if (m_rel >= 0)
      snprintf(s_rel, sizeof s_rel, "%.2f× (%.2f–%.2f)", m_rel, rlo, rhi);
    printf("| %s | %s | %s | %s | %.2f | %llu | %llu |\n", bench_level_sql[l], s_ops,
           s_rel, s_cpu, calls ? 1000.0 * (double)retries / (double)calls : 0,
           retries, most);
  }
  printf("\nWhere the retries happen, summed over the rounds: calls begun "
         "before the last of the %d keys was created (the creation race) "
         "and after it (every call a hit).\n\n",
         o->keys);
  printf("| isolation | race length (median) | calls in the race | retries "
         "in the race | per 1,000 race calls | calls after | retries after "
         "|\n|---|--:|--:|--:|--:|--:|--:|\n");
  for (int l = 0; l < NLEVELS; l++) {
    if (!o->level_on[l])
      continue;
    double ms[MAX_ROUNDS], lo, hi;
    long rc = 0, rr = 0, calls = 0;
    unsigned long long retries = 0;
    for (int i = 0; i < o->rounds; i++) {
      const iso_cell *x = &cells[i][l];
      ms[i] = x->race_ms;
      rc += x->race_calls;
      rr += x->race_retries;
      calls += x->calls;
      retries += x->retries;
    }
    double m = median(ms, o->rounds, &lo, &hi);
    char s_ms[32] = "—";
    if (m >= 0)
      snprintf(s_ms, sizeof s_ms, "%.1f ms", m);
    printf("| %s | %s | %ld | %ld | %.0f | %ld | %llu |\n", bench_level_sql[l], s_ms,
           rc, rr, rc ? 1000.0 * (double)rr / (double)rc : 0, calls - rc,
           retries - (unsigned long long)rr);
  }
  long checked = 0;
  int bad = 0;
  printf("\nChecks: ");
  for (int i = 0; i < o->rounds; i++)
    for (int l = 0; l < NLEVELS; l++) {
      const iso_cell *x = &cells[i][l];
      if (!o->level_on[l])
        continue;
      checked += x->calls;
      if (!x->bad)
        continue;
      printf("%s\n- round %d, %s: %ld errors, %ld wrong ids; first: %s",
             bad ? "" : "FAILED", i + 1, bench_level_sql[l], x->errors, x->wrong,
             x->errmsg);
      bad = 1;
    }
  if (!bad)
    printf("%ld calls checked: in every cell the table ended with exactly %d "
           "rows, each key was reported created exactly once, every call "
           "returned its key's id, no call failed, and every connection ran "
           "at the level asked.",
           checked, o->keys);
  printf("\n\n");
  fflush(stdout);
}

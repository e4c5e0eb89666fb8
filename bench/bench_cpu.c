/*
 * bench_cpu.c -- where the benchmarks' CPU figures come from: a client
 * thread's clock (pthread_getcpuclockid) and a server process's time from
 * Linux's /proc/PID/schedstat (nanoseconds on CPU, kernel time included).
 * A server process is measured only when it runs on this machine and the
 * benchmark can see it; otherwise the figure is -1 and the report leaves
 * the CPU table out.
 *
 * Through a transaction-mode pooler a client has no backend of its own:
 * each transaction runs on whichever server connection is free. The server
 * side of a pooled run is then every client backend of the database plus
 * the pooler process, sampled around the measured window.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

double bench_cpu_thread(pthread_t tid) {
  clockid_t clock;
  struct timespec ts;
  if (pthread_getcpuclockid(tid, &clock) != 0 ||
      clock_gettime(clock, &ts) != 0)
    return -1;
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bench_cpu_process(int pid) {
  char path[64];
  unsigned long long ns = 0;
  snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
  FILE *f = fopen(path, "r");
  int ok = f != NULL && fscanf(f, "%llu", &ns) == 1;
  if (f != NULL)
    fclose(f);
  return ok ? (double)ns / 1e9 : -1;
}

int bench_is_local_postgres(int pid) {
  char path[64], comm[32] = "";
  snprintf(path, sizeof path, "/proc/%d/comm", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  int ok =
      fgets(comm, sizeof comm, f) != NULL && strncmp(comm, "postgres", 8) == 0;
  fclose(f);
  return ok;
}

int bench_pool_cpu_sample(PGconn *admin, int pooler_pid, bench_pool_cpu *out) {
  out->n = 0;
  PGresult *res =
      PQexec(admin, "SELECT pid FROM pg_catalog.pg_stat_activity "
                    "WHERE backend_type = 'client backend' "
                    "AND datname = current_database() "
                    "AND pid <> pg_backend_pid()");
  int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
  for (int i = 0; ok && i < PQntuples(res) && out->n < BENCH_POOL_MAX_PIDS;
       i++) {
    int pid = atoi(PQgetvalue(res, i, 0));
    /* A backend that ended since pg_stat_activity was read has no figure
     * any more, and neither has one on another machine: not counted. */
    double s = bench_is_local_postgres(pid) ? bench_cpu_process(pid) : -1;
    if (s >= 0) {
      out->pid[out->n] = pid;
      out->seconds[out->n++] = s;
    }
  }
  PQclear(res);
  if (out->n == 0)
    ok = 0; /* a remote server: nothing of its side is visible */
  if (ok && pooler_pid > 0 && out->n < BENCH_POOL_MAX_PIDS) {
    double s = bench_cpu_process(pooler_pid);
    ok = s >= 0;
    out->pid[out->n] = -pooler_pid; /* never mistaken for a backend */
    out->seconds[out->n++] = s;
  }
  return ok ? 0 : -1;
}

double bench_pool_cpu_delta(const bench_pool_cpu *before,
                            const bench_pool_cpu *after) {
  double total = 0;
  for (int i = 0; i < after->n; i++) {
    double start = 0;
    for (int j = 0; j < before->n; j++)
      if (before->pid[j] == after->pid[i]) {
        start = before->seconds[j];
        break;
      }
    total += after->seconds[i] - start;
  }
  return total;
}

/*
 * bench_isolation.h -- what the isolation-level benchmark's driver
 * (bench_isolation.c) and its report (bench_isolation_report.c) share.
 */
#ifndef NODUP_BENCH_ISOLATION_H
#define NODUP_BENCH_ISOLATION_H

#include "bench.h"

enum { MAX_KEYS = 1000, MAX_THREADS = 256, NLEVELS = 3 };

/* The names --isolation takes, and the levels as SQL spells them. */
extern const char *const bench_level_names[NLEVELS];
extern const char *const bench_level_sql[NLEVELS];

typedef struct iso_options {
  const char *pg;
  int threads, keys, rounds;
  double seconds;
  int level_on[NLEVELS];
} iso_options;

/* What one cell measured. */
typedef struct iso_cell {
  double ops, cpu_us, race_ms; /* < 0: not measured */
  long calls, errors, wrong, race_calls, race_retries;
  unsigned long long retries, max_retries;
  int bad; /* a correctness check failed */
  char errmsg[BENCH_ERRMSG];
} iso_cell;

/* Print the Markdown tables of cells[round][level] on stdout. */
void bench_isolation_report(PGconn *admin, const iso_options *o,
                            iso_cell (*cells)[NLEVELS]);

#endif /* NODUP_BENCH_ISOLATION_H */

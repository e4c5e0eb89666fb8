/*
 * python_goc.c -- the C side of the Python binding's benchmark
 * (bench/python_goc.py): get-or-create hits in a loop on one connection,
 * the call the binding makes, so the ratio shows what the binding adds.
 *
 *   python_goc CONNINFO TABLE KEYS SECONDS
 *
 * TABLE must hold rows k = 'k0' .. 'k<KEYS-1>' under a unique index on k
 * (python_goc.py makes it). Each call looks up a random one of them; every
 * call must be a hit. Prints "<calls> <seconds>" on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nodup.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  nodup_db *db = NULL;
  nodup_key *key = NULL;
  const char *cols[] = {"k"};
  long keys, calls = 0;
  double seconds, start, end;
  unsigned long long x = 88172645463325252ull;  /* xorshift64: cheap, as Python's is */
  int rc = 1;

  if (argc != 5 || (keys = atol(argv[3])) <= 0 || (seconds = atof(argv[4])) <= 0) {
    fprintf(stderr, "usage: python_goc CONNINFO TABLE KEYS SECONDS\n");
    return 2;
  }
  if (nodup_open(&db, argv[1]) != NODUP_OK ||
      nodup_key_prepare(&key, db, argv[2], cols, 1, NULL) != NODUP_OK) {
    fprintf(stderr, "python_goc: %s\n", nodup_errmsg(db));
    goto done;
  }
  start = now();
  end = start + seconds;
  do {
    char text[32];
    const char *vals[1] = {text};
    nodup_result r;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    snprintf(text, sizeof text, "k%ld", (long)(x % (unsigned long long)keys));
    if (nodup_get_or_create(key, vals, NULL, NULL, 0, &r) != NODUP_OK || r.created) {
      fprintf(stderr, "python_goc: %s\n", r.created ? "a miss" : nodup_errmsg(db));
      goto done;
    }
    calls++;
  } while (now() < end);
  printf("%ld %.6f\n", calls, now() - start);
  rc = 0;
done:
  nodup_key_free(key);
  nodup_close(db);
  return rc;
}

/*
 * node_goc.c -- the C side of bench/node_goc.js: get-or-create hits in a
 * loop on one connection, the same call the Node binding makes, so the
 * two can be compared in one run.
 *
 *   node_goc CONNINFO SECONDS KEYS
 *
 * Table "t"("id", "k" UNIQUE, "v") must hold keys "h1".."hKEYS" (the
 * script makes it). Looks up random existing keys for SECONDS after a
 * 0.3 s warm-up and prints the calls per second, one number; exits 1 on
 * any error or a miss.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nodup.h"

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: node_goc CONNINFO SECONDS KEYS\n");
    return 2;
  }
  double seconds = atof(argv[2]);
  long keys = atol(argv[3]);
  nodup_db *db = NULL;
  nodup_key *key = NULL;
  const char *cols[] = {"k"};
  int status = 1;
  if (nodup_open(&db, argv[1]) != NODUP_OK ||
      nodup_key_prepare(&key, db, "t", cols, 1, NULL) != NODUP_OK) {
    fprintf(stderr, "node_goc: %s\n", nodup_errmsg(db));
    goto done;
  }
  uint32_t rng = 12345;
  double start = now_seconds(), measured_from = start + 0.3;
  long calls = 0;
  for (;;) {
    double t = now_seconds();
    if (t >= measured_from + seconds)
      break;
    char k[32];
    rng = rng * 1664525u + 1013904223u;
    snprintf(k, sizeof k, "h%ld", (long)(rng >> 8) % keys + 1);
    const char *vals[] = {k};
    nodup_result res;
    if (nodup_get_or_create(key, vals, NULL, NULL, 0, &res) != NODUP_OK || res.created) {
      fprintf(stderr, "node_goc: %s\n", res.created ? "a miss" : nodup_errmsg(db));
      goto done;
    }
    if (t >= measured_from)
      calls++;
  }
  printf("%.0f\n", (double)calls / seconds);
  status = 0;
done:
  nodup_key_free(key);
  nodup_close(db);
  return status;
}

/*
 * bench_options.c -- bench_goc's command line: which engines, thread
 * counts, mixes and methods run, for how long, and where the databases
 * and the pooler are. `bench_goc --help` prints the summary; bench/README.md
 * has the table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_goc [--pg CONNINFO] [--sqlite-dir DIR] [--seconds S]\n"
          "                 [--warmup S] [--rounds N] [--keys N]\n"
          "                 [--only pg,sqlite,pooled] [--pg-threads 1,4,16]\n"
          "                 [--sqlite-threads 1,4] [--mix 50/50,hits,misses]\n"
          "                 [--method nodup,raw,django]\n"
          "                 [--pooled CONNINFO] [--pooled-threads 1,4,16]\n"
          "                 [--pooler-pid PID] [--pooler-label TEXT]\n"
          "Measures nodup_get_or_create against the raw single statement and\n"
          "the Django-style sequence; prints Markdown tables on stdout.\n"
          "--pg is required unless --only sqlite; --pooled (a transaction-\n"
          "mode pooler in front of the --pg server) adds the pooled engine.\n"
          "mixes: hits, 90/10, 50/50, 10/90, misses, shift (90/10, then 10/90\n"
          "from halfway); methods: nodup, nodup-lookup, nodup-pipe,\n"
          "nodup-insert, select (hits only), insert (misses only), lookup,\n"
          "insertfirst, raw, django; an engine runs those it has.\n");
}

/* A comma-separated subset of `names` into `on`; -1 on an unknown name. */
static int parse_subset(const char *s, const char *const *names, int n,
                        int *on) {
  for (int i = 0; i < n; i++)
    on[i] = 0;
  while (*s) {
    size_t len = strcspn(s, ",");
    int found = 0;
    for (int i = 0; i < n; i++)
      if (strlen(names[i]) == len && strncmp(s, names[i], len) == 0)
        on[i] = found = 1;
    if (!found)
      return -1;
    s += len + (s[len] == ',');
  }
  return 0;
}

/* "1,4,16" into `out`; the count, or -1 if malformed. */
static int parse_threads(const char *s, int *out) {
  int n = 0;
  while (*s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 1 || v > 256 || n == MAX_THREAD_COUNTS ||
        (*end != ',' && *end != '\0'))
      return -1;
    out[n++] = (int)v;
    s = *end == ',' ? end + 1 : end;
  }
  return n > 0 ? n : -1;
}

int bench_parse_options(int argc, char **argv, bench_options *o) {
  *o = (bench_options){
      .seconds = 1.5,
      .warmup = 0.3,
      .rounds = 3,
      .keys = 10000,
      .run = {1, 1, 1},
      .mix_on = {[MIX_HALF] = 1, [MIX_HITS] = 1, [MIX_MISSES] = 1},
      .method_on = {[METHOD_NODUP] = 1, [METHOD_RAW] = 1, [METHOD_DJANGO] = 1},
      .threads = {{1, 4, 16}, {1, 4}, {1, 4, 16}},
      .nthreads = {3, 2, 3}};
  int only = 0;
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
    else if (strcmp(a, "--sqlite-dir") == 0)
      o->sqlite_dir = v;
    else if (strcmp(a, "--seconds") == 0)
      o->seconds = strtod(v, NULL);
    else if (strcmp(a, "--warmup") == 0)
      o->warmup = strtod(v, NULL);
    else if (strcmp(a, "--rounds") == 0)
      o->rounds = atoi(v);
    else if (strcmp(a, "--keys") == 0)
      o->keys = atol(v);
    else if (strcmp(a, "--pooled") == 0)
      o->pooled = v;
    else if (strcmp(a, "--pooler-pid") == 0)
      o->pooler_pid = atoi(v);
    else if (strcmp(a, "--pooler-label") == 0)
      o->pooler_label = v;
    else if (strcmp(a, "--only") == 0) {
      if (parse_subset(v, bench_engine_names, NENGINES, o->run) != 0)
        goto bad;
      only = 1;
    } else if (strcmp(a, "--pooled-threads") == 0)
      o->nthreads[ENGINE_POOLED] = parse_threads(v, o->threads[ENGINE_POOLED]);
    else if (strcmp(a, "--pg-threads") == 0)
      o->nthreads[ENGINE_PG] = parse_threads(v, o->threads[ENGINE_PG]);
    else if (strcmp(a, "--sqlite-threads") == 0)
      o->nthreads[ENGINE_SQLITE] = parse_threads(v, o->threads[ENGINE_SQLITE]);
    else if (strcmp(a, "--mix") == 0) {
      if (parse_subset(v, bench_mix_names, NMIXES, o->mix_on) != 0)
        goto bad;
    } else if (strcmp(a, "--method") == 0) {
      if (parse_subset(v, bench_method_names, NMETHODS, o->method_on) != 0)
        goto bad;
    } else
      goto bad;
  }
  if (o->seconds <= 0 || o->warmup < 0 || o->rounds < 1 ||
      o->rounds > MAX_ROUNDS || o->keys < 1 || o->nthreads[0] < 0 ||
      o->nthreads[1] < 0 || o->nthreads[2] < 0) {
    fprintf(stderr, "bench_goc: invalid --seconds, --warmup, --rounds "
                    "(1..15), --keys or thread list\n");
    return -1;
  }
  if (!only)
    o->run[ENGINE_POOLED] = o->pooled != NULL;
  if (o->run[ENGINE_POOLED] && o->pooled == NULL) {
    fprintf(stderr, "bench_goc: --only pooled needs --pooled CONNINFO\n");
    return -1;
  }
  if ((o->run[ENGINE_PG] || o->run[ENGINE_POOLED]) && o->pg == NULL) {
    fprintf(stderr,
            "bench_goc: --pg CONNINFO is required (or --only sqlite)\n");
    return -1;
  }
  return 0;
bad:
  usage(stderr);
  return -1;
}


/*
 * cmd_race.c -- `nodup race`: many concurrent writers on the same keys.
 *
 * Every worker has its own connection and walks the same key sequence, all
 * starting at the same moment, so they collide as hard as they can. With
 * --naive they do what the seeds' code did (SELECT, then INSERT if nothing
 * was found); otherwise they call nodup_get_or_create. Afterwards the table
 * is counted for duplicate keys. Workers are threads, or with --processes
 * separate processes (fork), each reporting through a pipe.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "usage: nodup race --db URL --table T --key col[,col...] [--where SQL]\n"
    "                  [--workers N] [--keys K] [--ops N] [--naive] [--processes]\n"
    "                  [--set col=value ...] [--format text|json]\n"
    "\n"
    "Start N workers (default 8; threads, or processes with --processes), each\n"
    "with its own connection, that create rows for K shared keys (default 100)\n"
    "as fast as they can: every worker walks the same keys in the same order,\n"
    "--ops times in all (default K). Key values are fresh numbers for each run,\n"
    "so text and integer key columns both work; --set gives other columns fixed\n"
    "values; on a key column it fixes that column (for example the column a\n"
    "--where predicate tests).\n"
    "\n"
    "--naive uses SELECT-then-INSERT (the bug nodup exists for) instead of\n"
    "nodup's get-or-create, and needs no unique index.\n"
    "\n"
    CLI_KEY_HELP
    "\n"
    "Reports ops/s, created/existing/errors and the duplicate key groups in the\n"
    "table afterwards. Exit status: 0 done, 1 duplicates or errors after a\n"
    "non-naive run, 2 error (setup failed).\n";

typedef struct race_stats {
  long ops, created, existing, errors;
  char first_error[512];
} race_stats;

typedef struct race_job {
  const cli_args *a;
  long base;                /* key i's value is base + i */
  pthread_barrier_t *start; /* threads only */
  race_stats st;
} race_job;

static void note_error(race_stats *st, nodup_db *db, int rc) {
  st->errors++;
  if (!st->first_error[0])
    snprintf(st->first_error, sizeof st->first_error, "%s: %s", nodup_strerror(rc),
             nodup_errmsg(db));
}

/* Set up a connection and key; returns 0 or a nodup error code. */
static int worker_open(race_job *j, nodup_db **db, nodup_key **key) {
  const cli_args *a = j->a;
  int rc = nodup_open(db, a->db);
  if (rc == NODUP_OK)
    rc = a->naive ? nodup_key_prepare_unbacked(key, *db, a->table, a->key, a->nkey, a->where)
                  : nodup_key_prepare(key, *db, a->table, a->key, a->nkey, a->where);
  if (rc != NODUP_OK) note_error(&j->st, *db, rc);
  return rc;
}

static void worker_run(race_job *j, nodup_db *db, nodup_key *key) {
  const cli_args *a = j->a;
  const char *vals[32], *dcols[256], *dvals[256];
  char num[32];
  nodup_result r;
  size_t i, nd = 0;
  long op, ops = a->ops ? a->ops : a->keys;
  int rc;

  const char *fixed[32] = {0};
  size_t k;

  /* A --set on a key column fixes that column (e.g. the column a partial
   * key's predicate tests); the others get the run's fresh numbers. */
  for (i = 0; i < a->nset; i++) {
    int in_key = 0;
    for (k = 0; k < a->nkey; k++)
      if (cli_set_is_key(a->key[k], a->set_cols[i])) {
        fixed[k] = a->set_vals[i];
        in_key = 1;
      }
    if (!in_key) {
      dcols[nd] = a->set_cols[i];
      dvals[nd++] = a->set_vals[i];
    }
  }
  for (op = 0; op < ops; op++) {
    snprintf(num, sizeof num, "%ld", j->base + op % a->keys);
    for (i = 0; i < a->nkey; i++) vals[i] = fixed[i] ? fixed[i] : num;
    if (a->naive) {
      rc = nodup_find(key, vals, &r);
      if (rc == NODUP_OK && !r.id) rc = nodup_insert(key, vals, dcols, dvals, nd, &r);
    } else {
      rc = nodup_get_or_create(key, vals, dcols, dvals, nd, &r);
    }
    j->st.ops++;
    if (rc != NODUP_OK) note_error(&j->st, db, rc);
    else if (r.created) j->st.created++;
    else j->st.existing++;
  }
}

static void *thread_main(void *arg) {
  race_job *j = arg;
  nodup_db *db = NULL;
  nodup_key *key = NULL;
  int rc = worker_open(j, &db, &key);
  pthread_barrier_wait(j->start);
  if (rc == NODUP_OK) worker_run(j, db, key);
  nodup_key_free(key);
  nodup_close(db);
  return NULL;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run_threads(race_job *jobs, int n) {
  pthread_t *t = calloc((size_t)n, sizeof *t);
  pthread_barrier_t start;
  int i;
  if (!t) return -1;
  pthread_barrier_init(&start, NULL, (unsigned)n);
  for (i = 0; i < n; i++) {
    jobs[i].start = &start;
    if (pthread_create(&t[i], NULL, thread_main, &jobs[i]) != 0) {
      /* Cannot honour the barrier count any more: fail the run. */
      fprintf(stderr, "nodup race: cannot start thread %d\n", i);
      exit(EXIT_ERROR);
    }
  }
  for (i = 0; i < n; i++) pthread_join(t[i], NULL);
  pthread_barrier_destroy(&start);
  free(t);
  return 0;
}

static int full_read(int fd, void *p, size_t n) {
  char *c = p;
  while (n) {
    ssize_t r = read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    c += r;
    n -= (size_t)r;
  }
  return 0;
}

static int full_write(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t r = write(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    c += r;
    n -= (size_t)r;
  }
  return 0;
}

/* Children connect, report "ready", wait for "go" (one byte each), run, and
 * send their stats back: all start together, like the threads. */
static int run_processes(race_job *jobs, int n) {
  int ready[2], go[2], *out = calloc((size_t)n, sizeof *out);
  pid_t *pids = calloc((size_t)n, sizeof *pids);
  int i, status, failed = 0;
  char c;

  if (!out || !pids || pipe(ready) || pipe(go)) return -1;
  fflush(NULL);
  for (i = 0; i < n; i++) {
    int res[2];
    if (pipe(res)) return -1;
    pids[i] = fork();
    if (pids[i] < 0) return -1;
    if (pids[i] == 0) {
      nodup_db *db = NULL;
      nodup_key *key = NULL;
      int rc;
      close(res[0]);
      close(ready[0]);
      close(go[1]);
      rc = worker_open(&jobs[i], &db, &key);
      c = 'r';
      full_write(ready[1], &c, 1);
      full_read(go[0], &c, 1);
      if (rc == NODUP_OK) worker_run(&jobs[i], db, key);
      nodup_key_free(key);
      nodup_close(db);
      full_write(res[1], &jobs[i].st, sizeof jobs[i].st);
      _exit(0);
    }
    close(res[1]);
    out[i] = res[0];
  }
  close(ready[1]);
  close(go[0]);
  for (i = 0; i < n; i++) full_read(ready[0], &c, 1);
  for (i = 0; i < n; i++) full_write(go[1], "g", 1);
  close(go[1]);
  close(ready[0]);
  for (i = 0; i < n; i++) {
    if (full_read(out[i], &jobs[i].st, sizeof jobs[i].st)) failed = 1;
    close(out[i]);
  }
  for (i = 0; i < n; i++)
    if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
      failed = 1;
  free(out);
  free(pids);
  return failed ? -1 : 0;
}

/* Run a.workers workers on key values from base on, and add up what they
 * did in *total and how long it took in *secs. Prints its own message on
 * failure; returns EXIT_OK or EXIT_ERROR. */
static int race_workers(const cli_args *a, long base, race_stats *total, double *secs) {
  race_job *jobs = calloc((size_t)a->workers, sizeof *jobs);
  double t0;
  int i;
  if (!jobs) return EXIT_ERROR;
  for (i = 0; i < a->workers; i++) {
    jobs[i].a = a;
    jobs[i].base = base;
  }
  t0 = now();
  if ((a->processes ? run_processes(jobs, a->workers) : run_threads(jobs, a->workers)) != 0) {
    fprintf(stderr, "nodup race: a worker failed to start or report\n");
    free(jobs);
    return EXIT_ERROR;
  }
  *secs = now() - t0;
  memset(total, 0, sizeof *total);
  for (i = 0; i < a->workers; i++) {
    total->ops += jobs[i].st.ops;
    total->created += jobs[i].st.created;
    total->existing += jobs[i].st.existing;
    total->errors += jobs[i].st.errors;
    if (!total->first_error[0] && jobs[i].st.first_error[0])
      memcpy(total->first_error, jobs[i].st.first_error, sizeof total->first_error);
  }
  free(jobs);
  return EXIT_OK;
}

/* What the race did and the duplicates it left, as text or one JSON line. */
static void print_race_report(const cli_args *a, const race_stats *total, double secs,
                              long long groups, long long extra) {
  if (json_format(a)) {
    printf("{\"mode\": \"%s\", \"workers\": %d, \"processes\": %s, \"keys\": %d, "
           "\"ops\": %ld, \"seconds\": %.3f, \"ops_per_sec\": %.0f, \"created\": %ld, "
           "\"existing\": %ld, \"errors\": %ld, \"duplicate_groups\": %lld, "
           "\"duplicate_rows\": %lld, \"first_error\": ",
           a->naive ? "naive" : "nodup", a->workers, a->processes ? "true" : "false",
           a->keys, total->ops, secs, secs > 0 ? (double)total->ops / secs : 0.0,
           total->created, total->existing, total->errors, groups, extra);
    json_string(stdout, total->first_error[0] ? total->first_error : NULL);
    fputs("}\n", stdout);
  } else {
    printf("race: %d %s x %ld ops on %d keys, %s\n", a->workers,
           a->processes ? "processes" : "threads", total->ops / (a->workers ? a->workers : 1),
           a->keys, a->naive ? "naive SELECT-then-INSERT" : "nodup get-or-create");
    printf("ops: %ld in %.2f s (%.0f ops/s)\n", total->ops, secs,
           secs > 0 ? (double)total->ops / secs : 0.0);
    printf("created: %ld, existing: %ld, errors: %ld\n", total->created, total->existing,
           total->errors);
    if (total->first_error[0]) printf("first error: %s\n", total->first_error);
    printf("duplicates: %lld groups (%lld extra rows) in %s\n", groups, extra, a->table);
  }
}

int cmd_race(int argc, char **argv) {
  static const char *const allowed[] = {"db", "table", "key", "where", "workers", "keys",
                                        "ops", "naive", "processes", "set", "format",
                                        NULL};
  cli_args a;
  race_stats total;
  nodup_db *db = NULL;
  nodup_key *key = NULL;
  long long groups = 0, extra = 0;
  double secs;
  long base;
  int rc, ex = cli_parse(argc, argv, "race", allowed, usage, &a);

  if (ex != EXIT_OK || a.help) goto done;
  if ((ex = cli_open(&a, &db)) != EXIT_OK) goto done;
  /* Check the key once up front so a refusal is one clear message, not N. */
  rc = a.naive ? nodup_key_prepare_unbacked(&key, db, a.table, a.key, a.nkey, a.where)
               : nodup_key_prepare(&key, db, a.table, a.key, a.nkey, a.where);
  if (rc != NODUP_OK) {
    cli_error(&a, db, rc);
    ex = cli_exit_for(rc);
    goto done;
  }
  /* Fresh key values per run, valid for integer (int4) and text columns. */
  srand((unsigned)(time(NULL) ^ getpid()));
  base = 1 + (long)(((unsigned long)rand() * 7919UL) % (2000000000UL - (unsigned long)a.keys));

  if ((ex = race_workers(&a, base, &total, &secs)) != EXIT_OK) goto done;
  rc = nodup_count_duplicates(db, a.table, a.key, a.nkey, a.where, &groups, &extra);
  if (rc != NODUP_OK) {
    cli_error(&a, db, rc);
    ex = EXIT_ERROR;
    goto done;
  }
  print_race_report(&a, &total, secs, groups, extra);
  ex = (!a.naive && (groups > 0 || total.errors > 0)) ? EXIT_NO : EXIT_OK;
done:
  nodup_key_free(key);
  nodup_close(db);
  cli_args_free(&a);
  return ex;
}

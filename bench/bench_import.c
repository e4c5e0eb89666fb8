/*
 * bench_import.c -- `nodup import` of a large CSV file on PostgreSQL against
 * COPY of the same file, the speed limit, measured side by side in one run.
 *
 * The file (written once, --rows rows, 1,000,000 by default) is an
 * episode's chapters: "ep,ord,title,note", the note quoted with a comma in
 * it, keyed by (ep, ord). Every round starts each method from a fresh table
 * (id bigserial primary key, ep, ord, title, note, unique index on
 * (ep, ord)) after a CHECKPOINT, and runs it in a child process whose wall
 * time, CPU time and peak RSS (getrusage of the child) are recorded:
 *
 *  - nodup: the `nodup import --table chapters --key ep,ord --csv FILE`
 *    command (--nodup gives its path), then, on the table it filled, the
 *    same command again, which must refuse the file as already imported
 *    (exit status 1) and leave the table as it was;
 *  - COPY: libpq's PQputCopyData of the file, as read, in 64 KiB blocks,
 *    into `COPY chapters (...) FROM STDIN WITH (FORMAT csv, HEADER true)`:
 *    what psql's \copy does.
 *
 * Rounds alternate which method goes first; each ratio is taken round by
 * round. The peak RSS of a 10-times smaller import is measured too, to show
 * that memory does not grow with the file. Markdown on stdout, progress on
 * stderr; exit status 1 when a check failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define MAX_ROUNDS 15

enum { NODUP, COPY, REFUSED, NMETHODS };
static const char *const method_names[NMETHODS] = {
    "nodup import", "COPY (PQputCopyData)", "nodup import, already imported (refused)"};

typedef struct options {
  const char *pg, *nodup, *dir;
  long rows;
  int rounds;
} options;

/* One child's run. */
typedef struct run {
  double seconds, cpu;  /* wall; the child's user + system CPU */
  long rss_kb;          /* the child's peak RSS */
  int status;           /* exit status, -1 if it did not exit */
} run;

static PGconn *admin;
static int failed;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(const double *in, int n) {
  double v[MAX_ROUNDS];
  memcpy(v, in, sizeof *v * (size_t)n);
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_import: %s: %s\n", what, msg);
  exit(1);
}

static void exec_sql(const char *sql) {
  PGresult *res = PQexec(admin, sql);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) die(sql, PQerrorMessage(admin));
  PQclear(res);
}

static long count_rows(void) {
  PGresult *res = PQexec(admin, "SELECT count(*) FROM \"chapters\"");
  long n = PQresultStatus(res) == PGRES_TUPLES_OK ? atol(PQgetvalue(res, 0, 0)) : -1;
  PQclear(res);
  return n;
}

/* A fresh table, autovacuum off (it would start at random moments on the
 * same cores), and a CHECKPOINT so no run pays for the previous one's dirty
 * pages. */
static void reset_table(void) {
  exec_sql("DROP TABLE IF EXISTS \"chapters\"");
  exec_sql("CREATE TABLE \"chapters\" (\"id\" bigserial PRIMARY KEY,"
           " \"ep\" integer NOT NULL, \"ord\" integer NOT NULL, \"title\" text NOT NULL,"
           " \"note\" text) WITH (autovacuum_enabled = off)");
  exec_sql("CREATE UNIQUE INDEX \"chapters_ep_ord_key\" ON \"chapters\" (\"ep\", \"ord\")");
  exec_sql("CHECKPOINT");
}

static void write_csv(const char *path, long rows) {
  FILE *f = fopen(path, "w");
  if (!f) die(path, strerror(errno));
  fputs("ep,ord,title,note\n", f);
  for (long i = 0; i < rows; i++)
    fprintf(f, "%ld,%ld,Chapter %ld of the episode,\"a note, with a comma\"\n", i / 1000,
            i % 1000, i);
  if (fclose(f) != 0) die(path, strerror(errno));
}

/* The COPY child: stream the file to the server as it is read. */
static int copy_child(const options *o, const char *path) {
  PGconn *c = PQconnectdb(o->pg);
  FILE *f = fopen(path, "rb");
  char block[65536];
  size_t n;
  PGresult *res;
  int ok;
  if (PQstatus(c) != CONNECTION_OK || !f) return 2;
  res = PQexec(c, "COPY \"chapters\" (\"ep\", \"ord\", \"title\", \"note\") FROM STDIN"
                  " WITH (FORMAT csv, HEADER true)");
  ok = PQresultStatus(res) == PGRES_COPY_IN;
  PQclear(res);
  while (ok && (n = fread(block, 1, sizeof block, f)) > 0)
    ok = PQputCopyData(c, block, (int)n) == 1;
  ok = ok && PQputCopyEnd(c, NULL) == 1;
  while ((res = PQgetResult(c)) != NULL) {
    if (PQresultStatus(res) != PGRES_COMMAND_OK) ok = 0;
    PQclear(res);
  }
  if (!ok) fprintf(stderr, "bench_import: COPY: %s", PQerrorMessage(c));
  fclose(f);
  PQfinish(c);
  return ok ? 0 : 2;
}

/* Run one method in a child and measure it. */
static run run_child(int method, const options *o, const char *path) {
  run r = {0, 0, 0, -1};
  struct rusage ru;
  int status = 0;
  fflush(NULL);
  double t0 = now();
  pid_t pid = fork();
  if (pid < 0) die("fork", strerror(errno));
  if (pid == 0) {
    if (method == COPY) _exit(copy_child(o, path));
    /* stdout (the "imported N rows" line) would mix with the report. */
    if (!freopen("/dev/null", "w", stdout)) _exit(2);
    execl(o->nodup, o->nodup, "import", "--db", o->pg, "--table", "chapters", "--key",
          "ep,ord", "--csv", path, (char *)NULL);
    _exit(127);
  }
  while (wait4(pid, &status, 0, &ru) < 0)
    if (errno != EINTR) die("wait4", strerror(errno));
  r.seconds = now() - t0;
  r.cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
          (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  r.rss_kb = ru.ru_maxrss;
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

/* Run and check: exit status `want`, then `rows` rows in the table. */
static run measure(int method, const options *o, const char *path, int want, long rows) {
  run r = run_child(method, o, path);
  long have = count_rows();
  if (r.status != want || have != rows) {
    fprintf(stderr, "bench_import: %s: exit status %d (expected %d), %ld rows (expected %ld)\n",
            method_names[method], r.status, want, have, rows);
    failed = 1;
  }
  return r;
}

static void quiet(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

static void usage(void) {
  fprintf(stderr, "usage: bench_import --pg CONNINFO --nodup PATH [--dir DIR] [--rows N]"
                  " [--rounds N]\n");
  exit(2);
}

int main(int argc, char **argv) {
  options o = {NULL, NULL, NULL, 1000000, 5};
  char tmp[] = "/tmp/nodup-bench-import.XXXXXX", big[4200], small[4200];
  run runs[MAX_ROUNDS][NMETHODS], small_run;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--pg")) o.pg = argv[i + 1];
    else if (!strcmp(argv[i], "--nodup")) o.nodup = argv[i + 1];
    else if (!strcmp(argv[i], "--dir")) o.dir = argv[i + 1];
    else if (!strcmp(argv[i], "--rows")) o.rows = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--rounds")) o.rounds = atoi(argv[i + 1]);
    else usage();
  }
  if (argc % 2 == 0 || !o.pg || !o.nodup || o.rows < 10 || o.rounds < 1 ||
      o.rounds > MAX_ROUNDS)
    usage();
  if (!o.dir) {
    if (!mkdtemp(tmp)) die("mkdtemp", strerror(errno));
    o.dir = tmp;
  }
  snprintf(big, sizeof big, "%s/import-%ld.csv", o.dir, o.rows);
  snprintf(small, sizeof small, "%s/import-%ld.csv", o.dir, o.rows / 10);
  fprintf(stderr, "bench_import: writing %s and %s\n", big, small);
  write_csv(big, o.rows);
  write_csv(small, o.rows / 10);
  admin = PQconnectdb(o.pg);
  if (PQstatus(admin) != CONNECTION_OK) die("connect", PQerrorMessage(admin));
  PQsetNoticeProcessor(admin, quiet, NULL);  /* DROP TABLE IF EXISTS notices */

  for (int r = 0; r < o.rounds; r++) {
    for (int i = 0; i < 2; i++) {
      int m = (i + r) % 2 ? COPY : NODUP;
      fprintf(stderr, "bench_import: round %d, %s\n", r + 1, method_names[m]);
      reset_table();
      runs[r][m] = measure(m, &o, big, 0, o.rows);
      if (m == NODUP) {
        exec_sql("CHECKPOINT");
        fprintf(stderr, "bench_import: round %d, %s\n", r + 1, method_names[REFUSED]);
        runs[r][REFUSED] = measure(REFUSED, &o, big, 1, o.rows);
      }
    }
  }
  fprintf(stderr, "bench_import: %ld rows, for the peak RSS\n", o.rows / 10);
  reset_table();
  small_run = measure(NODUP, &o, small, 0, o.rows / 10);
  exec_sql("DROP TABLE IF EXISTS \"chapters\"");

  PGresult *res = PQexec(admin, "SHOW server_version");
  printf("## Import: nodup import against COPY\n\n"
         "### PostgreSQL %s: %ld CSV rows\n\n",
         PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "?", o.rows);
  PQclear(res);
  printf("The same %ld-row file (\"ep,ord,title,note\", the note quoted), into a fresh table"
         " with a unique index on (ep, ord); the median of %d interleaved rounds. A ratio is"
         " COPY's time over the method's, round by round (median, range): the share of COPY's"
         " speed.\n\n",
         o.rows, o.rounds);
  printf("| method | time | rows/s | speed vs COPY | client CPU | peak RSS |\n");
  printf("|---|--:|--:|--:|--:|--:|\n");
  double nodup_ratio = 0;
  for (int m = 0; m < NMETHODS; m++) {
    double t[MAX_ROUNDS], cpu[MAX_ROUNDS], ratio[MAX_ROUNDS], rss[MAX_ROUNDS];
    for (int r = 0; r < o.rounds; r++) {
      t[r] = runs[r][m].seconds;
      cpu[r] = runs[r][m].cpu;
      rss[r] = (double)runs[r][m].rss_kb;
      ratio[r] = runs[r][COPY].seconds / runs[r][m].seconds;
    }
    double lo = ratio[0], hi = ratio[0];
    for (int r = 1; r < o.rounds; r++) {
      if (ratio[r] < lo) lo = ratio[r];
      if (ratio[r] > hi) hi = ratio[r];
    }
    if (m == NODUP) nodup_ratio = median(ratio, o.rounds);
    printf("| %s | %.2f s | %.0f | %.2f× (%.2f–%.2f) | %.2f s | %.1f MiB |\n", method_names[m],
           median(t, o.rounds), (double)o.rows / median(t, o.rounds), median(ratio, o.rounds),
           lo, hi, median(cpu, o.rounds), median(rss, o.rounds) / 1024);
  }
  printf("\nTarget: nodup import ≥ 0.5× COPY's speed: %s (%.2f×).\n\n",
         nodup_ratio >= 0.5 ? "PASS" : "MISS", nodup_ratio);
  printf("Memory: peak RSS of `nodup import` %.1f MiB for %ld rows, %.1f MiB for %ld rows"
         " (the file is streamed).\n\n",
         (double)small_run.rss_kb / 1024, o.rows / 10, (double)runs[0][NODUP].rss_kb / 1024,
         o.rows);
  printf("Checks: every nodup and COPY run exited 0 and left exactly %ld rows; every"
         " second import of the same file exited 1 and left the table unchanged%s.\n\n",
         o.rows, failed ? " -- FAILED, see stderr" : "");
  PQfinish(admin);
  unlink(big);
  unlink(small);
  if (o.dir == tmp) rmdir(tmp);
  return failed;
}

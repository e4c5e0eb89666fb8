/*
 * rig.c -- the shared test rigs (see rig.h): threads, gated child
 * processes, kill at a point, a backend terminator, live writers and
 * fingerprints. Everything a thread or a child runs here stays off cmocka.
 */
#include "rig.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

/* ---------------------------------------------------------------------------
 * Time
 */

double rig_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void rig_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* ---------------------------------------------------------------------------
 * Threads
 */

void rig_threads_start(struct rig_threads *t, int n, void *(*fn)(void *), void *base,
                       size_t stride) {
  assert_true(n >= 0 && n <= RIG_MAX_THREADS);
  t->n = 0;
  for (int i = 0; i < n; i++) {
    assert_int_equal(pthread_create(&t->id[i], NULL, fn, (char *)base + (size_t)i * stride), 0);
    t->n++;
  }
}

void rig_threads_join(struct rig_threads *t) {
  for (int i = 0; i < t->n; i++)
    assert_int_equal(pthread_join(t->id[i], NULL), 0);
  t->n = 0;
}

void rig_threads_run(int n, void *(*fn)(void *), void *base, size_t stride) {
  struct rig_threads t;
  rig_threads_start(&t, n, fn, base, stride);
  rig_threads_join(&t);
}

/* ---------------------------------------------------------------------------
 * Processes
 */

/* What a child holds of the two pipes: its end of "ready", which it
 * closes once it has written (so that a child that dies, or one that
 * waits at the gate, holds none and the parent sees end of file), and the
 * gate's read end, which reads end of file once the parent opens it. */
struct rig_child {
  int ready;
  int gate;
};

void rig_child_ready(struct rig_child *child) {
  char byte = 'r';
  if (child->ready >= 0) {
    if (write(child->ready, &byte, 1) != 1)
      _exit(120);
    close(child->ready);
    child->ready = -1;
  }
  if (child->gate >= 0) {
    while (read(child->gate, &byte, 1) < 0 && errno == EINTR)
      ;
    close(child->gate);
    child->gate = -1;
  }
}

void rig_procs_start(struct rig_procs *p, int n, rig_child_fn fn, void *ctx) {
  int ready[2], gate[2];
  char byte;
  assert_true(n > 0 && n <= RIG_MAX_PROCS);
  memset(p, 0, sizeof *p);
  p->wanted = n;
  assert_int_equal(pipe(ready), 0);
  assert_int_equal(pipe(gate), 0);
  fflush(NULL);
  for (; p->n < n; p->n++) {
    pid_t pid = fork();
    if (pid < 0)
      break;
    if (pid == 0) {
      struct rig_child child = {ready[1], gate[0]};
      close(ready[0]);
      close(gate[1]);
      _exit(fn(&child, p->n, ctx));
    }
    p->pid[p->n] = pid;
  }
  close(ready[1]);
  close(gate[0]);
  p->gate = gate[1];
  /* One byte per child that got ready; end of file once every child has
   * either written its byte or died. */
  for (int got = 0; got < p->n;) {
    ssize_t r = read(ready[0], &byte, 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got++;
  }
  close(ready[0]);
}

void rig_procs_go(struct rig_procs *p) {
  if (p->gate >= 0)
    close(p->gate);
  p->gate = -1;
}

int rig_procs_wait(struct rig_procs *p) {
  int ok = 0;
  rig_procs_go(p);
  for (int i = 0; i < p->n; i++) {
    p->status[i] = rig_reap(p->pid[i], 0);
    if (p->status[i] != -1 && WIFEXITED(p->status[i]) && WEXITSTATUS(p->status[i]) == 0)
      ok++;
  }
  return ok;
}

nodup_db *rig_procs_report(void **state, int n, rig_child_fn fn, size_t size, int want,
                           int (*on_record)(void *ctx, const void *record), void *ctx) {
  struct rig_procs procs;
  char record[PIPE_BUF];
  int results[2], got = 0, all_exited;
  assert_true(size <= sizeof record);
  assert_int_equal(pipe(results), 0);
  rig_detach(state);
  rig_procs_start(&procs, n, fn, &results[1]);
  close(results[1]);
  rig_procs_go(&procs);
  while (read(results[0], record, size) == (ssize_t)size && !on_record(ctx, record)) got++;
  close(results[0]);
  all_exited = rig_procs_wait(&procs) == n;
  nodup_db *db = rig_reopen(state);
  if (!all_exited || got != want)
    fail_msg("children: %s, %d of %d reports", all_exited ? "ok" : "failed", got, want);
  return db;
}

pid_t rig_fork(rig_child_fn fn, void *ctx) {
  struct rig_procs p;
  rig_procs_start(&p, 1, fn, ctx);
  assert_int_equal(p.n, 1);
  rig_procs_go(&p);
  return p.pid[0];
}

int rig_reap(pid_t pid, int options) {
  int status = 0;
  pid_t got;
  while ((got = waitpid(pid, &status, options)) < 0 && errno == EINTR)
    ;
  return got == pid ? status : -1;
}

int rig_kill(pid_t pid) {
  kill(pid, SIGKILL);
  return rig_reap(pid, 0);
}

void rig_detach(void **state) {
  nodup_close(*state);
  *state = NULL;
}

nodup_db *rig_reopen(void **state) {
  nodup_db *db = NULL;
  int rc;
  nodup_close(*state);
  rc = nodup_open(&db, harness_url());
  *state = db; /* even a failed handle: teardown closes it */
  assert_nodup(db, NODUP_OK, rc);
  return db;
}

/* ---------------------------------------------------------------------------
 * Kill at a point
 */

int rig_wait_point(pid_t pid, rig_point_fn point, void *ctx, long timeout_ms, int *status) {
  double deadline = rig_now_ms() + (double)timeout_ms;
  while (rig_now_ms() < deadline) {
    int s;
    if (point(ctx))
      return 1;
    if ((s = rig_reap(pid, WNOHANG)) != -1) {
      if (status != NULL)
        *status = s;
      return 0;
    }
    rig_sleep_ms(1);
  }
  return -1;
}

int rig_merge_child(struct rig_child *child, int index, void *arg) {
  const struct rig_merge_job *job = arg;
  nodup_db *db = NULL;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt = NODUP_MERGE_OPTIONS_INIT;
  (void)index;
  rig_child_ready(child);
  opt.batch = job->batch;
  if (nodup_open(&db, harness_url()) != NODUP_OK) return 3;
  if (nodup_merge(&r, db, job->table, job->cols, job->ncols, NULL, &opt) != NODUP_OK) {
    fprintf(stderr, "child merge: %s\n", nodup_errmsg(db));
    return 4;
  }
  nodup_merge_free(r);
  nodup_close(db);
  return 0;
}

int rig_archived_past(void *point) {
  const struct rig_archived *a = point;
  long long archived =
      a->tbl_like == NULL
          ? harness_count(a->db, "SELECT count(*) FROM {j}nodup_archive", NULL)
          : harness_count(a->db, "SELECT count(*) FROM {j}nodup_archive WHERE tbl LIKE $1",
                          a->tbl_like);
  return archived >= a->target;
}

static void *terminator_main(void *arg) {
  struct rig_terminator *t = arg;
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT pg_catalog.pg_terminate_backend(pid)"
           " FROM pg_catalog.pg_stat_activity"
           " WHERE datname = current_database() AND pid <> pg_backend_pid()"
           " AND state = 'active' AND query ILIKE $1");
  while (!atomic_load(&t->stop)) {
    const char *params[1] = {t->query_like};
    PGresult *res = PQexecParams(t->conn, sql, 1, NULL, params, NULL, NULL, 0);
    int hit;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      snprintf(t->error, sizeof t->error, "%s", PQerrorMessage(t->conn));
      PQclear(res);
      break;
    }
    hit = PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (hit) {
      t->terminated = 1;
      break;
    }
    rig_sleep_ms(1);
  }
  return NULL;
}

void rig_terminate_start(struct rig_terminator *t, nodup_db *watcher, const char *query_like) {
  memset(t, 0, sizeof *t);
  t->conn = nodup_db_handle(watcher);
  t->query_like = query_like;
  assert_int_equal(pthread_create(&t->thread, NULL, terminator_main, t), 0);
}

int rig_terminate_stop(struct rig_terminator *t) {
  atomic_store(&t->stop, 1);
  pthread_join(t->thread, NULL);
  if (t->error[0] != '\0')
    fail_msg("terminator: %s", t->error);
  return t->terminated;
}

/* ---------------------------------------------------------------------------
 * Live writers
 */

void rig_live_record(struct rig_writer *w, int rc, double start_ms) {
  double end = rig_now_ms(), latency = end - start_ms;
  const char *msg;
  w->statements++;
  atomic_fetch_add(&w->live->statements, 1);
  if (latency > w->max_latency_ms)
    w->max_latency_ms = latency;
  if (rc == NODUP_OK) {
    w->ok++;
    return;
  }
  msg = nodup_errmsg(w->db);
  if (w->live->expected != NULL && w->live->expected(rc, w->db)) {
    if (w->expected++ == 0) {
      /* When it was raised: a statement sent earlier may have waited. */
      w->first_expected_ms = end - w->live->origin_ms;
      snprintf(w->expected_msg, sizeof w->expected_msg, "%s", msg);
    }
  } else if (w->other_rc == NODUP_OK) {
    w->other_rc = rc;
    snprintf(w->other_msg, sizeof w->other_msg, "%s", msg);
  }
}

unsigned rig_writer_random(struct rig_writer *w) {
  w->seed = w->seed * 1103515245u + 12345u;
  return w->seed;
}

static void *writer_main(void *arg) {
  struct rig_writer *w = arg;
  while (!atomic_load(&w->live->stop))
    w->live->write(w);
  return NULL;
}

void rig_live_connect(struct rig_live *live, int n) {
  assert_true(n > 0 && n <= RIG_MAX_WRITERS);
  memset(live, 0, sizeof *live);
  live->n = n;
  for (int i = 0; i < n; i++) {
    struct rig_writer *w = &live->writers[i];
    w->live = live;
    w->index = i;
    w->db = harness_connect();
    w->seed = (unsigned)i * 7919u + 1u;
    w->first_expected_ms = -1;
  }
}

void rig_live_start(struct rig_live *live, rig_write_fn write, rig_expected_fn expected) {
  int started = 0;
  live->write = write;
  live->expected = expected;
  live->origin_ms = rig_now_ms();
  for (; started < live->n; started++)
    if (pthread_create(&live->threads.id[started], NULL, writer_main,
                       &live->writers[started]) != 0)
      break;
  live->threads.n = started;
  if (started < live->n) {
    rig_live_stop(live);
    fail_msg("could only start %d writer threads", started);
  }
}

void rig_live_stop(struct rig_live *live) {
  atomic_store(&live->stop, 1);
  rig_threads_join(&live->threads);
}

/* ---------------------------------------------------------------------------
 * Fingerprints
 */

char *rig_rows(nodup_db *db, const char *table, const char *expr, const char *filter) {
  char sql[768];
  char *text;
  if (harness_is_pg())
    snprintf(sql, sizeof sql,
             "SELECT string_agg(r, ';' ORDER BY i) FROM (SELECT \"id\" AS i,"
             " CAST(\"id\" AS TEXT) || '=' || %s AS r FROM \"%s\" WHERE %s) s",
             expr, table, filter);
  else
    snprintf(sql, sizeof sql,
             "SELECT group_concat(r, ';') FROM (SELECT CAST(\"id\" AS TEXT)"
             " || '=' || %s AS r FROM \"%s\" WHERE %s ORDER BY \"id\")",
             expr, table, filter);
  text = harness_query(db, sql, NULL);
  if (text == NULL) {
    text = strdup("");
    assert_non_null(text);
  }
  return text;
}

void rig_expect_same(const char *want, char *got, const char *what) {
  if (strcmp(want, got) != 0) {
    /* cmocka's message buffer is finite; the dumps go to stderr whole. */
    fprintf(stderr, "%s differs\n--- want\n%s\n--- got\n%s\n", what, want, got);
    free(got);
    fail_msg("%s differs (both printed above)", what);
  }
  free(got);
}

/*
 * rig.h -- the test rigs the suites share: threads and processes started
 * one way, live writers, killing a process (or a server backend) at a
 * chosen point, and fingerprints of what a table or the database holds.
 *
 * One implementation of each, so a suite states what it runs, not how to
 * fork, gate or reap it. The rules every rig keeps:
 *  - cmocka only on the main thread: code running in a thread or a forked
 *    child reports through its struct or its exit status, never asserts
 *    (a failed assertion in a child would go on running the parent's test
 *    list).
 *  - A connection never crosses a fork: close the test's own connection
 *    first (rig_detach) and open it again afterwards (rig_reopen). A child
 *    opens its own connection and leaves with _exit, so the parent's stdio
 *    buffers and atexit handlers do not run twice.
 *  - Rig state a test keeps across an assertion is static in the suite: a
 *    failed assertion longjmps out of the test, and must not leak it.
 */
#ifndef NODUP_TEST_RIG_H
#define NODUP_TEST_RIG_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "harness.h"

/* ---------------------------------------------------------------------------
 * Time
 */

/* CLOCK_MONOTONIC in milliseconds. */
double rig_now_ms(void);

/* Sleep `ms` milliseconds, through signals. */
void rig_sleep_ms(long ms);

/* ---------------------------------------------------------------------------
 * Threads: n at once, each with its own argument
 */

#define RIG_MAX_THREADS 64

struct rig_threads {
  pthread_t id[RIG_MAX_THREADS];
  int n;
};

/* Start n threads running fn(base + i * stride), asserting each started. */
void rig_threads_start(struct rig_threads *t, int n, void *(*fn)(void *), void *base,
                       size_t stride);

/* Join every thread rig_threads_start started, asserting each joined. */
void rig_threads_join(struct rig_threads *t);

/* Start n threads and join them: rig_threads_start + rig_threads_join. */
void rig_threads_run(int n, void *(*fn)(void *), void *base, size_t stride);

/* ---------------------------------------------------------------------------
 * Processes: n children started at once through a gate
 *
 * Each child runs fn(child, index, ctx) and exits with its return value.
 * It calls rig_child_ready(child) once it is set up (connected, key
 * prepared): that tells the parent so, then waits at the gate until
 * rig_procs_go() opens it, so every child starts its work at the same time.
 */

#define RIG_MAX_PROCS 32

struct rig_child;
typedef int (*rig_child_fn)(struct rig_child *child, int index, void *ctx);

/* In the child: report ready, then wait for the gate. Call it once. */
void rig_child_ready(struct rig_child *child);

struct rig_procs {
  int wanted;                 /* children asked for */
  int n;                      /* children forked (fewer when fork failed) */
  pid_t pid[RIG_MAX_PROCS];
  int status[RIG_MAX_PROCS];  /* waitpid status once rig_procs_wait reaped it */
  int gate;                   /* the gate's write end; -1 once open */
};

/*
 * Fork n children running fn. Returns once each has called
 * rig_child_ready() or exited. A fork that fails is not an assertion here
 * (the children that did start must still be released and reaped): p->n
 * says how many run, and rig_procs_wait() reports the shortfall.
 */
void rig_procs_start(struct rig_procs *p, int n, rig_child_fn fn, void *ctx);

/* Open the gate: every child waiting in rig_child_ready() starts. */
void rig_procs_go(struct rig_procs *p);

/* Open the gate if still closed, reap every child into p->status, and
 * return how many exited with status 0 (a child that failed to fork
 * counts as not). */
int rig_procs_wait(struct rig_procs *p);

/*
 * Children that report fixed-size records through a pipe: with the test's
 * connection closed first (rig_detach), start n children running fn, whose
 * ctx is the pipe's write end (an int *); open the gate; hand every whole
 * record of `size` bytes (at most PIPE_BUF, so a write arrives whole) to
 * on_record, until it returns nonzero or the pipe ends; reap the children;
 * and open the test's connection again (rig_reopen). Fails the test unless
 * every child exited 0 having sent `want` records in all.
 */
nodup_db *rig_procs_report(void **state, int n, rig_child_fn fn, size_t size, int want,
                           int (*on_record)(void *ctx, const void *record), void *ctx);

/* One child, already past the gate when this returns: its pid. */
pid_t rig_fork(rig_child_fn fn, void *ctx);

/* waitpid through EINTR: the status, or -1 when `pid` was not reaped
 * (WNOHANG and still running, or already reaped). */
int rig_reap(pid_t pid, int options);

/* Send SIGKILL to `pid` and reap it: its status. */
int rig_kill(pid_t pid);

/* The test's own connection, closed before a fork (*state = NULL). */
void rig_detach(void **state);

/* ... and opened again afterwards on the current database (*state set even
 * when opening fails: teardown closes it). Asserts success. */
nodup_db *rig_reopen(void **state);

/* ---------------------------------------------------------------------------
 * Kill at a point
 */

/* Main thread: 1 once the point to act at is reached. May assert. */
typedef int (*rig_point_fn)(void *ctx);

/*
 * Poll point(ctx) about every millisecond, while `pid` runs, for at most
 * `timeout_ms`. Returns 1 when the point is reached (the child still
 * runs: signal it), 0 when the child exited first (*status holds its
 * status, reaped), -1 on timeout (the child still runs). `status` may be
 * NULL.
 */
int rig_wait_point(pid_t pid, rig_point_fn point, void *ctx, long timeout_ms, int *status);

/* A merge to run, and kill, in a child: nodup_merge of `table` on `cols`
 * in batches of `batch` groups, on a connection of its own. */
struct rig_merge_job {
  const char *table;
  const char *const *cols;
  size_t ncols;
  size_t batch;
};

/* A rig_child_fn for a struct rig_merge_job: ready at once; exits 0 when
 * the merge succeeded, 3 when it could not connect, 4 when it failed (its
 * message on stderr). */
int rig_merge_child(struct rig_child *child, int index, void *job);

/* The point where a merge has archived `target` rows (of tables whose
 * journal name is LIKE `tbl_like`; NULL: of every table). */
struct rig_archived {
  nodup_db *db;
  const char *tbl_like;
  long long target;
};

/* A rig_point_fn for a struct rig_archived. */
int rig_archived_past(void *point);

/*
 * PostgreSQL: a thread that terminates, once, the first other backend of
 * the current database whose active query starts like `query_like` (an
 * ILIKE pattern), polling every millisecond through `watcher`'s raw
 * handle: a backend killed at that point of its work. No cmocka in the
 * thread: errors land in `error`.
 */
struct rig_terminator {
  void *conn;               /* the watcher's PGconn */
  const char *query_like;
  pthread_t thread;
  atomic_int stop;
  int terminated;           /* 1 once it terminated a backend */
  char error[256];
};

/* Start the terminator on `watcher` (a connection of its own). */
void rig_terminate_start(struct rig_terminator *t, nodup_db *watcher, const char *query_like);

/* Stop it and join it; asserts it met no error. Returns t->terminated. */
int rig_terminate_stop(struct rig_terminator *t);

/* ---------------------------------------------------------------------------
 * Live writers: n threads writing through their own connections until told
 * to stop, each statement counted and timed.
 */

#define RIG_MAX_WRITERS 16

struct rig_live;

/* One writer and what it saw. */
struct rig_writer {
  struct rig_live *live;
  int index;
  nodup_db *db;               /* its own connection (harness_connect) */
  nodup_key *key;             /* the suite's, set before rig_live_start; or NULL */
  unsigned seed;              /* for rig_writer_random */
  long long statements;       /* every statement recorded */
  long long ok;               /* ... that succeeded */
  long long expected;         /* ... that failed as the suite expects */
  double max_latency_ms;
  double first_expected_ms;   /* when the first expected error came, since
                                 live->origin_ms; -1: none */
  char expected_msg[256];
  int other_rc;               /* the first error the suite did not expect */
  char other_msg[512];
};

/* One step of a writer: its statements, each passed to rig_live_record. */
typedef void (*rig_write_fn)(struct rig_writer *w);

/* 1 when a failed statement's error is one the suite expects (such as a
 * unique violation once the index exists). NULL: none is. */
typedef int (*rig_expected_fn)(int rc, nodup_db *db);

struct rig_live {
  struct rig_writer writers[RIG_MAX_WRITERS];
  struct rig_threads threads;
  int n;
  rig_write_fn write;
  rig_expected_fn expected;
  atomic_int stop;
  atomic_llong statements;    /* all writers' statements so far */
  double origin_ms;           /* rig_now_ms() when they started */
};

/* Zero `live` and give n writers their own connection (closed by the
 * harness's teardown), seed i * 7919 + 1 and no expected error yet. Set
 * writers' keys or seeds after this, before rig_live_start. */
void rig_live_connect(struct rig_live *live, int n);

/* Start the writers, each calling write(w) in a loop until rig_live_stop. */
void rig_live_start(struct rig_live *live, rig_write_fn write, rig_expected_fn expected);

/* Tell the writers to stop and join them. */
void rig_live_stop(struct rig_live *live);

/* In a writer: account for one statement that returned rc and started at
 * start_ms (rig_now_ms()). */
void rig_live_record(struct rig_writer *w, int rc, double start_ms);

/* In a writer: the next number of its own sequence (a linear congruential
 * step of w->seed), the same on every run. */
unsigned rig_writer_random(struct rig_writer *w);

/* ---------------------------------------------------------------------------
 * Fingerprints: what the database holds, as text, to compare before and
 * after. The whole database is harness_dump(db).
 */

/* Every row of `table` satisfying `filter` (SQL; "1 = 1" for all), as
 * "id=<expr>" in id order, ';' between rows; "" for none. Free it. */
char *rig_rows(nodup_db *db, const char *table, const char *expr, const char *filter);

/* Assert that `got` (freed here) equals `want`, showing both and `what`
 * when it does not. */
void rig_expect_same(const char *want, char *got, const char *what);

#endif /* NODUP_TEST_RIG_H */

/*
 * bench_nodup.c -- the method under test: nodup_get_or_create() on a key
 * prepared on "t"("k"), one nodup connection per thread. The same code runs
 * on both engines; the driver hands it a PostgreSQL conninfo string or an
 * "sqlite:PATH" URL.
 *
 * The forced variants pin the key handle's strategy right after
 * nodup_key_prepare(), through the library's internal struct (the benchmark
 * links the static library, as the tests do): the adaptive handle chooses
 * from the hit rate it observes, and these show what each choice costs on
 * its own at every mix.
 */
#include <string.h>

#include "bench.h"
#include "internal.h"

static int nodup_method_open(bench_worker *w) {
  static const char *const cols[] = {"k"};
  int rc = nodup_open(&w->db, w->target);
  if (rc == NODUP_OK)
    rc = nodup_key_prepare(&w->key, w->db, BENCH_TABLE, cols, 1, NULL);
  if (rc != NODUP_OK) {
    bench_worker_error(w, "nodup: %s: %s", nodup_strerror(rc),
                       nodup_errmsg(w->db));
    return -1;
  }
  /* Reported next to the raw connections' setting: a different durability
   * level would make the SQLite comparison meaningless. */
  if (strcmp(nodup_db_backend(w->db), "sqlite") == 0)
    w->sqlite_synchronous = bench_sqlite_synchronous(nodup_db_handle(w->db));
  else
    w->backend_pid = PQbackendPID(nodup_db_handle(w->db));
  return 0;
}

static bench_outcome nodup_method_op(bench_worker *w, const char *key,
                                     const char *value) {
  static const char *const default_cols[] = {"v"};
  const char *vals[] = {key};
  const char *default_vals[] = {value};
  nodup_result res = {NULL, 0};
  bench_outcome out = {0, 0, 0};
  int rc =
      nodup_get_or_create(w->key, vals, default_cols, default_vals, 1, &res);
  if (rc != NODUP_OK) {
    bench_worker_error(w, "nodup_get_or_create: %s: %s", nodup_strerror(rc),
                       nodup_errmsg(w->db));
    return out;
  }
  out.ok = 1;
  out.found = !res.created;
  out.has_id = res.id != NULL && res.id[0] != '\0';
  return out;
}

static void nodup_method_close(bench_worker *w) {
  nodup_key_free(w->key);
  nodup_close(w->db);
  w->key = NULL;
  w->db = NULL;
}

static int nodup_open_forced(bench_worker *w, key_strategy strategy) {
  if (nodup_method_open(w) != 0)
    return -1;
  w->key->strategy = strategy;
  return 0;
}

static int nodup_lookup_open(bench_worker *w) {
  return nodup_open_forced(w, KEY_LOOKUP_FIRST);
}

static int nodup_pipe_open(bench_worker *w) {
  return nodup_open_forced(w, KEY_PIPELINED);
}

static int nodup_insert_open(bench_worker *w) {
  return nodup_open_forced(w, KEY_INSERT_FIRST);
}

const bench_method bench_nodup = {"nodup", 1, nodup_method_open,
                                  nodup_method_op, nodup_method_close};
const bench_method bench_nodup_lookup = {"nodup-lookup", 1, nodup_lookup_open,
                                         nodup_method_op, nodup_method_close};
const bench_method bench_nodup_pipe = {"nodup-pipe", 1, nodup_pipe_open,
                                       nodup_method_op, nodup_method_close};
const bench_method bench_nodup_insert = {"nodup-insert", 1, nodup_insert_open,
                                         nodup_method_op, nodup_method_close};

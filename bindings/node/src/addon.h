/*
 * addon.h -- what the files of the Node-API addon share.
 *
 * The addon is four concepts: a call (call.c: one database operation as a
 * promise, queued on its connection and run on libuv's thread pool), the
 * connection (conn.c: the JS object, its queue and its closing), the
 * operations themselves (ops.c: how each method reads its arguments, runs
 * and answers) and the conversions between JS values and the library's
 * text values (values.c), with errors as JS objects (error.c) and the
 * cache of prepared keys and slugs (cache.c) beside them. addon.c
 * registers the module. Written in C against node_api.h (no C++
 * wrapper), and uv.h for the watchers of the non-blocking path (conn.c).
 */
#ifndef NODUP_NODE_ADDON_H
#define NODUP_NODE_ADDON_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <pthread.h>
#include <uv.h>
#include <stddef.h>

#include "nodup.h"

/* --- arena: every string a call copies from JS, freed with the call ----- */

typedef struct node_arena_block node_arena_block;
typedef struct node_arena {
  node_arena_block *blocks;
} node_arena;

void *node_arena_alloc(node_arena *arena, size_t size);
void node_arena_free(node_arena *arena);

/* Columns and their text values (NULL is SQL NULL), in the arena. `vals`
 * holds one row of n values, or, read by node_get_rows(), several rows of
 * n values, row after row. */
typedef struct node_columns {
  const char **names;
  const char **vals;
  size_t n;
} node_columns;

/* --- values.c ------------------------------------------------------------ */

/* Read a JS string into the arena. On failure a TypeError naming `what` is
 * pending (returns non-zero). */
int node_get_string(napi_env env, napi_value v, node_arena *arena,
                    const char *what, const char **out);

/* Read an object { column: value, ... } into `out`. `object` may be
 * undefined or null (no columns) unless `required`. Values: string,
 * number, bigint, boolean, Date, null; an undefined value leaves the
 * column out, except in a key (`is_key`), where it is a TypeError. */
int node_get_columns(napi_env env, napi_value object, node_arena *arena,
                     const char *what, int required, int is_key, node_columns *out);

/* Read an array of objects { column: value, ... } that all name the same
 * columns in the same order as the first (read as node_get_columns does)
 * into `out`: the first's names, and *nrows rows of values. `what` names
 * the array in errors ("keys"): a TypeError names the index of the first
 * object whose columns differ. An empty array gives no rows and no
 * columns. */
int node_get_rows(napi_env env, napi_value array, node_arena *arena, const char *what,
                  int is_key, node_columns *out, size_t *nrows);

/* An optional property of an options object: undefined when absent or
 * when `options` is undefined/null. Non-zero (TypeError pending) when
 * `options` is something other than an object. */
int node_get_option(napi_env env, napi_value options, const char *name, napi_value *out);

/* --- error.c --------------------------------------------------------------- */

/* What a failed library call said, copied off the connection in the
 * worker thread (nodup_errmsg() is valid only until the next call). */
typedef struct node_error {
  int code;
  char *message;
  char *sqlstate;
  char *constraint;
} node_error;

/* Copy `db`'s message, SQLSTATE and constraint for `code`. */
void node_error_capture(node_error *err, int code, nodup_db *db);
void node_error_clear(node_error *err);
/* An Error for `err`, with .code ("NODUP_ERR_..."), .errno, .sqlstate and
 * .constraint (the last two only when the database gave them). */
napi_value node_error_value(napi_env env, const node_error *err);
/* The name of a nodup error code ("NODUP_ERR_UNBACKED"), or NULL. */
const char *node_error_name(int code);
/* A TypeError with code NODUP_ERR_USAGE, made pending. Returns -1. */
int node_throw_usage(napi_env env, const char *fmt, ...);

/* --- cache.c ------------------------------------------------------------- */

typedef struct node_cache node_cache;
node_cache *node_cache_new(void);
/* The prepared key for (table, cols, where) on `db`, prepared on first
 * use and kept. Runs in the worker thread. Borrowed from the cache. */
int node_cache_key(node_cache *cache, nodup_db *db, const char *table, const char *const *cols,
                   size_t ncols, const char *where, nodup_key **out);
/* The prepared slug for (table, column, scope_cols, set_cols, *opt) on
 * `db`, likewise. */
int node_cache_slug(node_cache *cache, nodup_db *db, const char *table, const char *column,
                    const char *const *scope_cols, size_t nscope, const char *const *set_cols,
                    size_t nset, const nodup_slug_options *opt, nodup_slug **out);
/* The key for (table, cols, where) if it is prepared already, else NULL:
 * main thread (preparing blocks, so it is the pool's). */
nodup_key *node_cache_find_key(node_cache *cache, const char *table, const char *const *cols,
                               size_t ncols, const char *where);
/* Free every handle, then the cache. Accepts NULL. */
void node_cache_free(node_cache *cache);

/* --- call.c: one operation as a promise ---------------------------------- */

typedef struct node_conn node_conn;
typedef struct node_call node_call;

/* The non-blocking path's libuv handles (conn.c): a poll watcher on our
 * duplicate of libpq's socket, and a timer; `td` while closing at
 * environment teardown. */
typedef struct node_teardown node_teardown;
typedef struct node_watch {
  uv_poll_t handle;         /* first: libuv hands back &handle */
  int fd;                   /* the duplicate, closed after the handle */
  node_teardown *td;
} node_watch;
typedef struct node_timer {
  uv_timer_t handle;
  node_teardown *td;
} node_timer;

/* One row of getOrCreateMany's answer, copied off the key (whose ids last
 * only until its next many-keys call); `id` points into the same
 * allocation. */
typedef struct node_many_result {
  const char *id;
  int created;
} node_many_result;

/* One operation: `run` in a thread-pool thread (no JS there), `result` on
 * the main thread to make the resolved value. `name` names connect()'s
 * async resource (a connection's calls share "nodup:Connection"). */
typedef struct node_call_ops {
  const char *name;
  int (*run)(node_call *call);
  napi_value (*result)(napi_env env, node_call *call);
  /* Optional, the non-blocking path (conn.c), on the main thread: start
   * the call and poll it, each returning a NODE_NB_ code; *wait says
   * what to wait for after NODE_NB_WAIT. */
  int (*start)(node_call *call, nodup_wait *wait);
  int (*poll)(node_call *call, nodup_wait *wait);
} node_call_ops;

enum {
  NODE_NB_DONE,   /* ended: settle it */
  NODE_NB_WAIT,   /* under way: wait as *wait says, then poll */
  NODE_NB_POOL,   /* this call needs the pool (its key is not prepared yet) */
  NODE_NB_NEVER   /* no call on this connection can go without the pool */
};

struct node_call {
  node_call *next;          /* the next call in its connection's queue */
  node_conn *conn;          /* NULL for connect() */
  const node_call_ops *ops;
  napi_deferred deferred;
  napi_async_work work;     /* connect() only: a connection's calls share its work */
  node_arena arena;         /* inputs copied from JS */
  /* inputs: each operation uses what it needs */
  const char *table, *column, *where, *text, *sql, *url;
  node_columns key, first, second;  /* key; defaults/create/scope; set */
  nodup_slug_options slug_options;
  size_t nrows;             /* getOrCreateMany: rows of key.vals and first.vals */
  nodup_key *nb_key;        /* the non-blocking path's key, from the cache */
  /* outputs */
  int rc;
  char *id, *slug, *index;  /* malloc'd; freed with the call */
  node_many_result *many;   /* getOrCreateMany: nrows of them, one allocation */
  int created, outcome;
  nodup_db *opened;         /* connect(): the new connection */
  node_error error;
};

/* A call for `conn` (NULL for connect) with its promise in *promise, or
 * NULL when out of memory (an error is then pending). */
node_call *node_call_new(napi_env env, node_conn *conn, const node_call_ops *ops,
                         napi_value *promise);
/* Reject the call's promise with the pending JS exception (argument
 * errors) and free it. */
void node_call_reject_pending(napi_env env, node_call *call);
/* Queue the call: behind its connection's other calls, or at once for
 * connect(). From here the call is the queue's, which settles and frees
 * it when done. */
void node_call_start(napi_env env, node_call *call);
/* Resolve or reject the call's promise from what `run` left, then free it
 * (main thread). */
void node_call_settle(napi_env env, node_call *call);
void node_call_free(node_call *call);
/* Set call->rc and capture the connection's error for a failed code. */
int node_call_status(node_call *call, int rc, nodup_db *db);

/* --- conn.c: the Connection object ----------------------------------------- */

struct node_conn {
  nodup_db *db;             /* NULL once closed */
  node_cache *cache;        /* prepared keys and slugs, used only by the running call */
  pthread_mutex_t lock;     /* guards the two lists and `working` */
  node_call *waiting, *waiting_tail;  /* made, not yet run (FIFO) */
  node_call *ran, *ran_tail;          /* run, not yet settled (FIFO) */
  int working;              /* a work item is queued or running */
  napi_async_work work;     /* that work item */
  int closing;              /* close() called: later calls are refused */
  int finalized;            /* the JS object was collected */
  napi_ref self;            /* weak, strong while `working` */
  /* The non-blocking path, main thread only: */
  napi_env env;             /* for the watchers' callbacks */
  uv_loop_t *loop;
  napi_async_context async; /* the context their promises settle in */
  int nonblock;             /* 0: every call goes to the pool */
  node_call *current;       /* the call a watcher waits for */
  nodup_wait wait;          /* what it waits for */
  node_watch *poll;         /* on a duplicate of libpq's socket pg_fd */
  int pg_fd;
  int poll_stale;           /* pool work ran since: the socket may be new */
  node_timer *timer;        /* a retried round's backoff */
  napi_async_cleanup_hook_handle cleanup;  /* conn_teardown, until it runs */
};

/* Define the Connection class on `exports` and keep its constructor. */
napi_status node_conn_define(napi_env env, napi_value exports);
/* A new Connection object owning `db` (main thread). */
napi_value node_conn_wrap(napi_env env, nodup_db *db);
/* Queue a call on the connection, starting a work item if none is on its
 * way. */
void node_conn_push(napi_env env, node_conn *conn, node_call *call);

/* --- ops.c: the methods ----------------------------------------------------- */

napi_value node_connect(napi_env env, napi_callback_info info);
napi_value node_get_or_create(napi_env env, napi_callback_info info);
napi_value node_get_or_create_many(napi_env env, napi_callback_info info);
napi_value node_update_or_create(napi_env env, napi_callback_info info);
napi_value node_slug(napi_env env, napi_callback_info info);
napi_value node_check(napi_env env, napi_callback_info info);
napi_value node_exec(napi_env env, napi_callback_info info);
napi_value node_close(napi_env env, napi_callback_info info);

/* The Connection a method was called on (`this`) and up to *argc of its
 * arguments (the rest undefined); NULL with a TypeError pending when
 * `this` is not a Connection. In conn.c. */
node_conn *node_conn_of(napi_env env, napi_callback_info info, size_t *argc,
                        napi_value *argv);

#endif

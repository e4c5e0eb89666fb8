/*
 * conn.c -- the Connection object: one nodup_db, its queue, its end.
 *
 * A Connection is made only by connect() (its constructor refuses direct
 * use) and owns one nodup_db and the keys and slugs prepared on it
 * (cache.c). Its calls wait in a FIFO and run one at a time (call.c says
 * why). One work item at a time serves the connection: in a pool thread
 * it runs the waiting calls in order, up to NODE_CONN_BATCH of them,
 * then back on the main thread its completion settles them and, if more
 * are waiting, queues the next work item. So N calls made at once cost
 * one trip through the pool per batch rather than per call (each trip is
 * two thread wake-ups, which cost more than a get-or-create hit on a busy
 * machine: bench/README.md), and the batch limit bounds how long a
 * result waits for the calls after it.
 *
 * A get-or-create on a key already prepared, on PostgreSQL, takes no
 * trip through the pool: the main thread sends it with the library's
 * non-blocking pair (nodup_get_or_create_start/_poll), a uv_poll watcher
 * on the connection's socket says when the answer is there (a uv_timer
 * when a retried round must back off first), and the poll reads it. The
 * event loop waits for the server as a C program waits in poll(2): one
 * wake-up, where the pool costs two, and no thread at all (bench/
 * node_goc.js measures it, and the pool path of an earlier build side by
 * side with NODUP_BENCH_BEFORE: docs/BENCHMARKS.md). A key's first call goes to the pool,
 * because preparing a key asks the catalog, which blocks; so does every
 * call on SQLite, where the wait is for a file lock, not a socket.
 *
 * While a work item or a watcher is on its way the connection holds a strong
 * reference to its JS object, so the object cannot be collected under a
 * running call; then the reference goes weak again, and an idle
 * connection keeps neither the object nor the event loop alive.
 *
 * close() is a call like the others, queued behind those already made,
 * which all finish normally; calls made after close() are refused at
 * once. A Connection collected without close() closes its database in
 * the finalizer (it is idle then, by the strong reference above).
 */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define NODE_CONN_BATCH 16

#include "addon.h"

/* Per-environment state (worker threads each load the addon anew). */
typedef struct node_addon {
  napi_ref connection_class;
  nodup_db *constructing;   /* handed from node_conn_wrap to the constructor */
} node_addon;

/* The watchers' closes at environment teardown (conn_teardown): the
 * cleanup hook is removed once every handle has closed, so node does not
 * close the loop with our handles open. */
struct node_teardown {
  napi_async_cleanup_hook_handle hook;
  int pending;
};

static void teardown_done(node_teardown *td) {
  if (td != NULL && --td->pending == 0) {
    napi_remove_async_cleanup_hook(td->hook);
    free(td);
  }
}

static void watch_closed(uv_handle_t *handle) {
  node_watch *w = (node_watch *)handle;
  close(w->fd);   /* our duplicate: libuv is done with it */
  teardown_done(w->td);
  free(w);
}

static void timer_closed(uv_handle_t *handle) {
  node_timer *t = (node_timer *)handle;
  teardown_done(t->td);
  free(t);
}

/* Close the watchers (freed once libuv has closed them): when the
 * connection is closed, freed or torn down, and the poll watcher when the
 * socket may have changed. */
static void close_handle(uv_handle_t *handle, node_teardown **slot, node_teardown *td,
                         uv_close_cb closed) {
  *slot = td;
  if (td != NULL)
    td->pending++;
  uv_close(handle, closed);
}

static void conn_close_poll(node_conn *conn, node_teardown *td) {
  if (conn->poll != NULL)
    close_handle((uv_handle_t *)&conn->poll->handle, &conn->poll->td, td, watch_closed);
  conn->poll = NULL;
}

static void conn_close_watchers(node_conn *conn, node_teardown *td) {
  conn_close_poll(conn, td);
  if (conn->timer != NULL)
    close_handle((uv_handle_t *)&conn->timer->handle, &conn->timer->td, td, timer_closed);
  conn->timer = NULL;
}

/* The environment is going away (a Worker terminated, node exiting) while
 * the connection may still have watchers on the loop: close them. A call
 * waiting on one never settles; the connection itself is freed by its
 * finalizer, or left to the process's exit when pool work is in flight. */
static void conn_teardown(napi_async_cleanup_hook_handle hook, void *arg) {
  node_conn *conn = arg;
  node_teardown *td = malloc(sizeof *td);
  conn->cleanup = NULL;   /* removed by teardown_done, not by conn_free */
  conn->current = NULL;
  conn->nonblock = 0;
  if (td == NULL) {
    conn_close_watchers(conn, NULL);
    napi_remove_async_cleanup_hook(hook);
    return;
  }
  td->hook = hook;
  td->pending = 1;   /* this function's own hold, dropped below */
  conn_close_watchers(conn, td);
  teardown_done(td);
}

static void conn_free(napi_env env, node_conn *conn) {
  conn_close_watchers(conn, NULL);
  if (conn->cleanup != NULL)
    napi_remove_async_cleanup_hook(conn->cleanup);
  if (conn->async != NULL)
    napi_async_destroy(env, conn->async);
  node_cache_free(conn->cache);
  nodup_close(conn->db);
  pthread_mutex_destroy(&conn->lock);
  free(conn);
}

static void conn_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  node_conn *conn = data;
  napi_delete_reference(env, conn->self);
  conn->self = NULL;
  /* Only at environment teardown can a call still be running here: its
   * completion will never run, and the worker may still be using the
   * connection, so it is left to the process's exit. */
  if (conn->working) {
    conn->finalized = 1;
    return;
  }
  conn_free(env, conn);
}

static napi_value conn_construct(napi_env env, napi_callback_info info) {
  napi_value self;
  node_addon *addon;
  napi_get_cb_info(env, info, NULL, NULL, &self, NULL);
  napi_get_instance_data(env, (void **)&addon);
  if (addon == NULL || addon->constructing == NULL) {
    node_throw_usage(env, "use require('nodup').connect(url) to make a Connection");
    return NULL;
  }
  node_conn *conn = calloc(1, sizeof *conn);
  node_cache *cache = node_cache_new();
  if (conn == NULL || cache == NULL || pthread_mutex_init(&conn->lock, NULL) != 0) {
    free(conn);
    free(cache);
    napi_throw_error(env, "NODUP_ERR_NOMEM", "out of memory");
    return NULL;
  }
  conn->db = addon->constructing;
  conn->cache = cache;
  conn->env = env;
  conn->nonblock = 1;
  addon->constructing = NULL;
  napi_value name;
  if (napi_get_uv_event_loop(env, &conn->loop) != napi_ok ||
      napi_create_string_utf8(env, "nodup:Connection", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, self, name, &conn->async) != napi_ok ||
      napi_add_async_cleanup_hook(env, conn_teardown, conn, &conn->cleanup) != napi_ok)
    conn->nonblock = 0;   /* the pool serves every call */
  if (napi_wrap(env, self, conn, conn_finalize, NULL, &conn->self) != napi_ok) {
    conn_free(env, conn);
    return NULL;
  }
  return self;
}

napi_value node_conn_wrap(napi_env env, nodup_db *db) {
  node_addon *addon;
  napi_value cls, obj = NULL;
  napi_get_instance_data(env, (void **)&addon);
  napi_get_reference_value(env, addon->connection_class, &cls);
  addon->constructing = db;
  if (napi_new_instance(env, cls, 0, NULL, &obj) != napi_ok)
    obj = NULL;
  /* Still set: the constructor failed before taking it. */
  if (addon->constructing != NULL) {
    nodup_close(addon->constructing);
    addon->constructing = NULL;
  }
  return obj;
}

node_conn *node_conn_of(napi_env env, napi_callback_info info, size_t *argc,
                        napi_value *argv) {
  napi_value self;
  node_conn *conn = NULL;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok ||
      napi_unwrap(env, self, (void **)&conn) != napi_ok || conn == NULL) {
    node_throw_usage(env, "not a nodup Connection");
    return NULL;
  }
  return conn;
}

/* Append `call` to a FIFO given by its head and tail. */
static void fifo_append(node_call **head, node_call **tail, node_call *call) {
  call->next = NULL;
  if (*tail != NULL)
    (*tail)->next = call;
  else
    *head = call;
  *tail = call;
}

/* In a pool thread: run waiting calls in order until none is left or the
 * batch is full. The main thread may append meanwhile, hence the lock. */
static void conn_execute(napi_env env, void *data) {
  (void)env;
  node_conn *conn = data;
  for (int i = 0; i < NODE_CONN_BATCH; i++) {
    pthread_mutex_lock(&conn->lock);
    node_call *call = conn->waiting;
    if (call != NULL && (conn->waiting = call->next) == NULL)
      conn->waiting_tail = NULL;
    pthread_mutex_unlock(&conn->lock);
    if (call == NULL)
      break;
    call->ops->run(call);
    pthread_mutex_lock(&conn->lock);
    fifo_append(&conn->ran, &conn->ran_tail, call);
    pthread_mutex_unlock(&conn->lock);
  }
}

static void conn_complete(napi_env env, napi_status status, void *data);
static int conn_next(napi_env env, node_conn *conn);

/* Queue a work item for the connection, which runs the waiting calls; on
 * failure (memory) reject what waits. */
static void conn_start_work(napi_env env, node_conn *conn) {
  napi_value name;
  conn->poll_stale = 1;   /* the pool may reconnect or close: conn_arm */
  napi_create_string_utf8(env, "nodup:Connection", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, conn_execute, conn_complete, conn, &conn->work) ==
          napi_ok &&
      napi_queue_async_work(env, conn->work) == napi_ok)
    return;
  pthread_mutex_lock(&conn->lock);
  node_call *call = conn->waiting;
  conn->waiting = conn->waiting_tail = NULL;
  pthread_mutex_unlock(&conn->lock);
  while (call != NULL) {
    node_call *next = call->next;
    node_error_capture(&call->error, NODUP_ERR_NOMEM, NULL);
    call->rc = NODUP_ERR_NOMEM;
    node_call_settle(env, call);
    call = next;
  }
  conn_next(env, conn);
}

/* Main thread: settle what the work item ran, in order, then go on with
 * what waits. */
static void conn_complete(napi_env env, napi_status status, void *data) {
  (void)status;  /* never cancelled */
  node_conn *conn = data;
  napi_delete_async_work(env, conn->work);
  conn->work = NULL;
  pthread_mutex_lock(&conn->lock);
  node_call *call = conn->ran;
  conn->ran = conn->ran_tail = NULL;
  pthread_mutex_unlock(&conn->lock);
  while (call != NULL) {
    node_call *next = call->next;
    node_call_settle(env, call);
    call = next;
  }
  conn_next(env, conn);
}

/* --- the non-blocking path ------------------------------------------------ */

static void conn_fired(node_conn *conn);

/* The poll watcher stays on while calls follow one another (starting and
 * stopping it costs an epoll_ctl each); conn_fired stops it when the
 * connection has nothing in flight. */
static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)status;  /* an error on the socket is the poll's to read and report */
  (void)events;
  node_conn *conn = handle->data;
  if (conn->current == NULL || conn->wait.fd < 0) {
    uv_poll_stop(handle);   /* nothing sent: libpq reads it with the next answer */
    return;
  }
  conn_fired(conn);
}

static void on_timer(uv_timer_t *handle) { conn_fired(handle->data); }

/* Watch for what conn->wait asks: the socket readable, or the backoff's
 * timeout. 0, or a libuv error.
 *
 * The poll watcher watches a duplicate of libpq's socket, ours to close.
 * libuv removes a descriptor's number from epoll when a watcher on it
 * stops or closes; libpq closes its socket when the connection breaks
 * (inside a poll) or closes (in the pool), and the number may then be
 * another socket's, which the removal would silence. The duplicate keeps
 * the number ours until the watcher is closed. A watcher made before the
 * pool last ran a call on the connection may watch a socket libpq has
 * since replaced (a reconnect can reuse the number), so it is made anew. */
static int conn_arm(node_conn *conn) {
  const nodup_wait *w = &conn->wait;
  int rc;
  if (w->fd >= 0) {
    if (conn->poll != NULL && (conn->poll_stale || conn->pg_fd != w->fd))
      conn_close_poll(conn, NULL);
    if (conn->poll == NULL) {
      node_watch *watch = malloc(sizeof *watch);
      if (watch == NULL)
        return UV_ENOMEM;
      watch->td = NULL;
      if ((watch->fd = fcntl(w->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        free(watch);
        return UV_EBADF;
      }
      if ((rc = uv_poll_init(conn->loop, &watch->handle, watch->fd)) != 0) {
        close(watch->fd);
        free(watch);
        return rc;
      }
      watch->handle.data = conn;
      conn->poll = watch;
      conn->pg_fd = w->fd;
      conn->poll_stale = 0;
    }
    return uv_is_active((uv_handle_t *)&conn->poll->handle)
               ? 0
               : uv_poll_start(&conn->poll->handle, UV_READABLE, on_readable);
  }
  if (conn->poll != NULL)
    uv_poll_stop(&conn->poll->handle);
  if (conn->timer == NULL) {
    if ((conn->timer = malloc(sizeof *conn->timer)) == NULL)
      return UV_ENOMEM;
    conn->timer->td = NULL;
    uv_timer_init(conn->loop, &conn->timer->handle);
    conn->timer->handle.data = conn;
  }
  return uv_timer_start(&conn->timer->handle, on_timer,
                        (uint64_t)(w->timeout_us + 999) / 1000, 0);
}

/* When libuv cannot watch (memory): finish the call here, blocking, as
 * the library's blocking call would. */
static int conn_finish_blocking(node_conn *conn, node_call *call) {
  int r = NODE_NB_WAIT;
  while (r == NODE_NB_WAIT) {
    if (conn->wait.fd >= 0) {
      struct pollfd p = {conn->wait.fd, POLLIN, 0};
      poll(&p, 1, -1);
    } else {
      struct timespec ts = {0, conn->wait.timeout_us * 1000L};
      nanosleep(&ts, NULL);
    }
    r = call->ops->poll(call, &conn->wait);
  }
  return r;
}

/* Start `call` on the main thread: NODE_NB_WAIT when it is under way
 * (a watcher armed), NODE_NB_DONE when it ended at once, NODE_NB_POOL or
 * NODE_NB_NEVER when the pool must run it. */
static int conn_start_nonblocking(node_conn *conn, node_call *call) {
  int r = call->ops->start(call, &conn->wait);
  if (r != NODE_NB_WAIT)
    return r;
  if (conn_arm(conn) != 0)
    return conn_finish_blocking(conn, call);
  conn->current = call;
  return NODE_NB_WAIT;
}

/* A watcher fired: poll the call; when it ended, settle it and go on.
 * libuv called us, not JS, so the promise is settled inside a callback
 * scope of the connection's async context: closing it runs the microtasks
 * (the caller's `await` resumes there) as after any callback. */
static void conn_fired(node_conn *conn) {
  napi_env env = conn->env;
  node_call *call = conn->current;
  napi_handle_scope hs;
  napi_callback_scope cs;
  napi_value resource;
  int r = call->ops->poll(call, &conn->wait);
  if (r == NODE_NB_WAIT && conn_arm(conn) == 0)
    return;
  if (r == NODE_NB_WAIT)
    conn_finish_blocking(conn, call);
  conn->current = NULL;
  napi_open_handle_scope(env, &hs);
  napi_get_reference_value(env, conn->self, &resource);
  napi_open_callback_scope(env, resource, conn->async, &cs);
  node_call_settle(env, call);
  int freed = conn_next(env, conn);
  napi_close_callback_scope(env, cs);   /* the microtasks: the next call may start */
  napi_close_handle_scope(env, hs);
  if (!freed && conn->current == NULL && conn->poll != NULL)
    uv_poll_stop(&conn->poll->handle);
}

/* --- the queue ------------------------------------------------------------- */

/* Main thread, the connection ours (`working`) and nothing running on it:
 * run what waits. A call that can go without the pool goes first, on
 * this thread; others (and a key's first call) go to a work item, which
 * runs them and those behind them, in order. With nothing waiting,
 * `working` is cleared, under the lock after looking at `waiting`: a
 * call pushed at any moment is either seen here or starts its own run.
 * 1 when the connection was freed (collected while busy, at teardown). */
static int conn_next(napi_env env, node_conn *conn) {
  for (;;) {
    pthread_mutex_lock(&conn->lock);
    node_call *call = conn->waiting;
    int can = call != NULL && conn->nonblock && call->ops->start != NULL && conn->db != NULL;
    if (can && (conn->waiting = call->next) == NULL)
      conn->waiting_tail = NULL;
    if (call == NULL)
      conn->working = 0;
    pthread_mutex_unlock(&conn->lock);
    if (call == NULL)
      break;
    if (!can) {
      conn_start_work(env, conn);
      return 0;
    }
    int r = conn_start_nonblocking(conn, call);
    if (r == NODE_NB_WAIT)
      return 0;
    if (r == NODE_NB_DONE) {
      node_call_settle(env, call);
      continue;
    }
    /* The pool's: back to the head of the queue. */
    if (r == NODE_NB_NEVER)
      conn->nonblock = 0;
    pthread_mutex_lock(&conn->lock);
    call->next = conn->waiting;
    conn->waiting = call;
    if (conn->waiting_tail == NULL)
      conn->waiting_tail = call;
    pthread_mutex_unlock(&conn->lock);
    conn_start_work(env, conn);
    return 0;
  }
  /* Idle. */
  if (conn->db == NULL)
    conn_close_watchers(conn, NULL);
  if (conn->finalized) {
    conn_free(env, conn);
    return 1;
  }
  uint32_t refs;
  napi_reference_unref(env, conn->self, &refs);
  return 0;
}

void node_conn_push(napi_env env, node_conn *conn, node_call *call) {
  pthread_mutex_lock(&conn->lock);
  fifo_append(&conn->waiting, &conn->waiting_tail, call);
  int start = !conn->working;
  conn->working = 1;
  pthread_mutex_unlock(&conn->lock);
  if (!start)
    return;
  uint32_t refs;
  napi_reference_ref(env, conn->self, &refs);
  conn_next(env, conn);
}

static void addon_free(napi_env env, void *data, void *hint) {
  (void)hint;
  node_addon *addon = data;
  napi_delete_reference(env, addon->connection_class);
  free(addon);
}

napi_status node_conn_define(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"getOrCreate", NULL, node_get_or_create, NULL, NULL, NULL, napi_default_method, NULL},
      {"getOrCreateMany", NULL, node_get_or_create_many, NULL, NULL, NULL, napi_default_method,
       NULL},
      {"updateOrCreate", NULL, node_update_or_create, NULL, NULL, NULL, napi_default_method,
       NULL},
      {"slug", NULL, node_slug, NULL, NULL, NULL, napi_default_method, NULL},
      {"check", NULL, node_check, NULL, NULL, NULL, napi_default_method, NULL},
      {"exec", NULL, node_exec, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, node_close, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value cls;
  napi_status st = napi_define_class(env, "Connection", NAPI_AUTO_LENGTH, conn_construct, NULL,
                                     sizeof methods / sizeof methods[0], methods, &cls);
  if (st != napi_ok)
    return st;
  node_addon *addon = calloc(1, sizeof *addon);
  if (addon == NULL)
    return napi_generic_failure;
  if ((st = napi_create_reference(env, cls, 1, &addon->connection_class)) != napi_ok ||
      (st = napi_set_instance_data(env, addon, addon_free, NULL)) != napi_ok) {
    free(addon);
    return st;
  }
  return napi_set_named_property(env, exports, "Connection", cls);
}

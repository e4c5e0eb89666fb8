/*
 * conn.c -- the Connection object: one nodup_db, its queue, its end.
 *
 * A Connection is made only by connect() (its constructor refuses direct
 * use) and owns one nodup_db and the keys prepared on it. Its calls wait
 * in a FIFO and run one at a time (call.c says why). One work item at a
 * time serves the connection: in a pool thread it runs the waiting calls
 * in order, up to NODE_CONN_BATCH of them, then back on the main thread
 * its completion settles them and, if more are waiting, queues the next
 * work item. So N calls made at once cost one trip through the pool per
 * batch rather than per call (each trip is two thread wake-ups, which cost
 * more than a get-or-create hit on a busy machine: bench/README.md), and
 * the batch limit bounds how long a result waits for the calls after it.
 *
 * While a work item is on its way the connection holds a strong
 * reference to its JS object, so the object cannot be collected under a
 * running call; then the reference goes weak again, and an idle
 * connection keeps neither the object nor the event loop alive.
 *
 * close() is a call like the others, queued behind those already made,
 * which all finish normally; calls made after close() are refused at
 * once. A Connection collected without close() closes its database in
 * the finalizer (it is idle then, by the strong reference above).
 */
#include <stdlib.h>

#define NODE_CONN_BATCH 16

#include "addon.h"

/* Per-environment state (worker threads each load the addon anew). */
typedef struct node_addon {
  napi_ref connection_class;
  nodup_db *constructing;   /* handed from node_conn_wrap to the constructor */
} node_addon;

static void conn_free(node_conn *conn) {
  node_key_cache_free(conn->keys);
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
  conn_free(conn);
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
  node_key_cache *keys = node_key_cache_new();
  if (conn == NULL || keys == NULL || pthread_mutex_init(&conn->lock, NULL) != 0) {
    free(conn);
    free(keys);
    napi_throw_error(env, "NODUP_ERR_NOMEM", "out of memory");
    return NULL;
  }
  conn->db = addon->constructing;
  conn->keys = keys;
  addon->constructing = NULL;
  if (napi_wrap(env, self, conn, conn_finalize, NULL, &conn->self) != napi_ok) {
    conn_free(conn);
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

/* Queue a work item for the connection; on failure (memory) reject what
 * waits. */
static void conn_start_work(napi_env env, node_conn *conn) {
  napi_value name;
  napi_create_string_utf8(env, "nodup:Connection", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, conn_execute, conn_complete, conn, &conn->work) ==
          napi_ok &&
      napi_queue_async_work(env, conn->work) == napi_ok)
    return;
  pthread_mutex_lock(&conn->lock);
  node_call *call = conn->waiting;
  conn->waiting = conn->waiting_tail = NULL;
  conn->working = 0;
  pthread_mutex_unlock(&conn->lock);
  while (call != NULL) {
    node_call *next = call->next;
    node_error_capture(&call->error, NODUP_ERR_NOMEM, NULL);
    call->rc = NODUP_ERR_NOMEM;
    node_call_settle(env, call);
    call = next;
  }
  uint32_t refs;
  napi_reference_unref(env, conn->self, &refs);
}

/* Main thread: take what ran, start the next work item if calls wait
 * (before settling, so the database is busy while promises settle), then
 * settle in order. `working` is cleared only here, under the lock, after
 * looking at `waiting`: a call pushed at any moment is either seen here
 * or starts its own work item. */
static void conn_complete(napi_env env, napi_status status, void *data) {
  (void)status;  /* never cancelled */
  node_conn *conn = data;
  napi_delete_async_work(env, conn->work);
  conn->work = NULL;
  pthread_mutex_lock(&conn->lock);
  node_call *call = conn->ran;
  conn->ran = conn->ran_tail = NULL;
  int more = conn->waiting != NULL;
  if (!more)
    conn->working = 0;
  pthread_mutex_unlock(&conn->lock);
  if (more)
    conn_start_work(env, conn);
  while (call != NULL) {
    node_call *next = call->next;
    node_call_settle(env, call);
    call = next;
  }
  if (more)
    return;
  if (conn->finalized) {
    conn_free(conn);
    return;
  }
  uint32_t refs;
  napi_reference_unref(env, conn->self, &refs);
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
  conn_start_work(env, conn);
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
      {"updateOrCreate", NULL, node_update_or_create, NULL, NULL, NULL, napi_default_method,
       NULL},
      {"slug", NULL, node_slug, NULL, NULL, NULL, napi_default_method, NULL},
      {"check", NULL, node_check, NULL, NULL, NULL, napi_default_method, NULL},
      {"exec", NULL, node_exec, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, node_close, NULL, NULL, NULL, napi_default_method, NULL},
      /* getOrCreateMany: the many-keys get-or-create (the lead's work)
       * takes its place here, an operation in ops.c like getOrCreate. */
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

/*
 * call.c -- one database operation as a promise, run off the event loop.
 *
 * Every method makes a call: its arguments are copied on the main thread
 * (the worker may not touch JS values), its `run` goes to libuv's thread
 * pool through napi_create_async_work, and its promise is settled back on
 * the main thread. A nodup_db is one connection and belongs to one thread
 * at a time, so calls on a connection do not go to the pool one by one:
 * they wait in the connection's queue (conn.c) and run one after the
 * other, in the order they were made. Concurrency comes from several
 * connections. connect(), which has no connection yet, is a work item of
 * its own. A call whose ops have `start` and `poll` (getOrCreate) may run
 * on the main thread instead, without blocking it (conn.c).
 *
 * Ownership: a call belongs to the method that makes it until
 * node_call_start(), then to its queue (or, for connect(), to its work
 * item), which settles its promise and frees it.
 */
#include <stdlib.h>
#include <string.h>

#include "addon.h"

node_call *node_call_new(napi_env env, node_conn *conn, const node_call_ops *ops,
                         napi_value *promise) {
  node_call *call = calloc(1, sizeof *call);
  if (call == NULL) {
    napi_throw_error(env, "NODUP_ERR_NOMEM", "out of memory");
    return NULL;
  }
  call->conn = conn;
  call->ops = ops;
  if (napi_create_promise(env, &call->deferred, promise) != napi_ok) {
    free(call);
    return NULL;
  }
  return call;
}

void node_call_free(node_call *call) {
  if (call == NULL)
    return;
  node_arena_free(&call->arena);
  free(call->id);
  free(call->slug);
  free(call->index);
  free(call->many);
  node_error_clear(&call->error);
  free(call);
}

void node_call_reject_pending(napi_env env, node_call *call) {
  napi_value error;
  if (napi_get_and_clear_last_exception(env, &error) != napi_ok)
    napi_get_undefined(env, &error);
  napi_reject_deferred(env, call->deferred, error);
  node_call_free(call);
}

int node_call_status(node_call *call, int rc, nodup_db *db) {
  call->rc = rc;
  if (rc != NODUP_OK)
    node_error_capture(&call->error, rc, db);
  return rc;
}

void node_call_settle(napi_env env, node_call *call) {
  napi_value value = call->rc == NODUP_OK ? call->ops->result(env, call) : NULL;
  if (value != NULL) {
    napi_resolve_deferred(env, call->deferred, value);
  } else {
    /* Only when making the value failed (memory): say so, never "success". */
    if (call->rc == NODUP_OK) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
      node_error_capture(&call->error, NODUP_ERR_NOMEM, NULL);
    }
    napi_reject_deferred(env, call->deferred, node_error_value(env, &call->error));
  }
  node_call_free(call);
}

/* connect(): in a thread-pool thread, then back on the main thread. */
static void connect_execute(napi_env env, void *data) {
  (void)env;
  node_call *call = data;
  call->ops->run(call);
}

static void connect_complete(napi_env env, napi_status status, void *data) {
  (void)status;  /* never cancelled */
  node_call *call = data;
  napi_delete_async_work(env, call->work);
  node_call_settle(env, call);
}

void node_call_start(napi_env env, node_call *call) {
  if (call->conn != NULL) {
    node_conn_push(env, call->conn, call);
    return;
  }
  napi_value name;
  napi_create_string_utf8(env, call->ops->name, NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, connect_execute, connect_complete, call,
                             &call->work) != napi_ok) {
    napi_throw_error(env, "NODUP_ERR_NOMEM", "cannot create the async work");
    node_call_reject_pending(env, call);
    return;
  }
  napi_queue_async_work(env, call->work);
}

/*
 * conn.c -- the Connection object: one nodup_db, its queue, its end.
 *
 * A Connection is made only by connect() (its constructor refuses direct
 * use) and owns one nodup_db and the keys prepared on it. Its calls wait
 * in a FIFO and run one at a time (call.c says why); the head of the
 * queue is the call running. While anything is queued the connection
 * holds a strong reference to its JS object, so the object cannot be
 * collected under a running call; when the queue drains the reference
 * goes weak again, and an idle connection keeps neither the object nor
 * the event loop alive.
 *
 * close() is a call like the others, queued behind those already made,
 * which all finish normally; calls made after close() are refused at
 * once. A Connection collected without close() closes its database in
 * the finalizer (it is idle then, by the strong reference above).
 */
#include <stdlib.h>

#include "addon.h"

/* Per-environment state (worker threads each load the addon anew). */
typedef struct node_addon {
  napi_ref connection_class;
  nodup_db *constructing;   /* handed from node_conn_wrap to the constructor */
} node_addon;

static void conn_free(node_conn *conn) {
  node_key_cache_free(conn->keys);
  nodup_close(conn->db);
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
  if (conn->head != NULL) {
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
  if (conn == NULL || keys == NULL) {
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

void node_conn_push(napi_env env, node_conn *conn, node_call *call) {
  call->next = NULL;
  if (conn->head == NULL) {
    uint32_t refs;
    napi_reference_ref(env, conn->self, &refs);
    conn->head = conn->tail = call;
    napi_queue_async_work(env, call->work);
    return;
  }
  conn->tail->next = call;
  conn->tail = call;
}

void node_conn_pop(napi_env env, node_conn *conn) {
  node_call *done = conn->head;
  conn->head = done->next;
  if (conn->head != NULL) {
    napi_queue_async_work(env, conn->head->work);
    return;
  }
  conn->tail = NULL;
  if (conn->finalized) {
    conn_free(conn);
    return;
  }
  uint32_t refs;
  napi_reference_unref(env, conn->self, &refs);
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

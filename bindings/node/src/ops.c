/*
 * ops.c -- the methods: connect() and each Connection method.
 *
 * Each method reads its arguments into a call on the main thread, and the
 * call's `run` (a thread-pool thread) makes one library call; `result`
 * turns what it returned into the promise's value. Argument errors reject
 * the promise (never throw), so `await` sees every failure the same way.
 */
#include <stdlib.h>
#include <string.h>

#include "addon.h"

/* --- shared pieces ---------------------------------------------------------- */

/* A call on the Connection `this`, with argv[0..nargs) read. NULL when
 * there is none to make: *promise is then already rejected (not a
 * Connection, closed) or NULL with an exception pending (no memory). */
static node_call *begin(napi_env env, napi_callback_info info, const node_call_ops *ops,
                        size_t nargs, napi_value *argv, napi_value *promise) {
  /* The promise first: Node-API refuses to make one while an exception
   * (a refused `this`) is pending. */
  node_call *call = node_call_new(env, NULL, ops, promise);
  if (call == NULL) {
    *promise = NULL;
    return NULL;
  }
  size_t argc = nargs;
  node_conn *conn = node_conn_of(env, info, &argc, argv);
  if (conn != NULL && conn->closing)
    node_throw_usage(env, "the connection is closed");
  if (conn == NULL || conn->closing) {
    node_call_reject_pending(env, call);
    return NULL;
  }
  call->conn = conn;
  return call;
}

/* Reject a call whose arguments were refused (the exception is pending). */
static napi_value refuse(napi_env env, node_call *call, napi_value promise) {
  node_call_reject_pending(env, call);
  return promise;
}

/* begin() for the methods on a table: (table, ..., options), three
 * arguments, the table read. NULL as from begin(), or with the promise
 * rejected when the table is not a string. */
static node_call *begin_on_table(napi_env env, napi_callback_info info,
                                 const node_call_ops *ops, napi_value *argv,
                                 napi_value *promise) {
  node_call *call = begin(env, info, ops, 3, argv, promise);
  if (call != NULL && node_get_string(env, argv[0], &call->arena, "table", &call->table) != 0) {
    refuse(env, call, *promise);
    return NULL;
  }
  return call;
}

/* options.where: the key's predicate, trusted SQL text, or none. */
static int get_where(napi_env env, napi_value options, node_call *call) {
  napi_value v;
  napi_valuetype type;
  if (node_get_option(env, options, "where", &v) != 0)
    return -1;
  napi_typeof(env, v, &type);
  if (type == napi_undefined || type == napi_null)
    return 0;
  return node_get_string(env, v, &call->arena, "options.where", &call->where);
}

static int get_columns_option(napi_env env, napi_value options, const char *name,
                              node_call *call, node_columns *out) {
  napi_value v;
  if (node_get_option(env, options, name, &v) != 0)
    return -1;
  return node_get_columns(env, v, &call->arena, name, 0, 0, out);
}

/* The key the call names, from the connection's cache. */
static int cached_key(node_call *call, nodup_key **key) {
  node_conn *conn = call->conn;
  int rc = node_cache_key(conn->cache, conn->db, call->table, call->key.names, call->key.n,
                          call->where, key);
  return node_call_status(call, rc, conn->db);
}

static void set_text(napi_env env, napi_value obj, const char *name, const char *text) {
  napi_value v;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, name, v);
}

/* The resolved object: whichever of the call's text outputs it has (id,
 * slug, index); the methods add their other fields. */
static napi_value text_result(napi_env env, node_call *call) {
  napi_value obj;
  if (napi_create_object(env, &obj) != napi_ok)
    return NULL;
  if (call->id != NULL)
    set_text(env, obj, "id", call->id);
  if (call->slug != NULL)
    set_text(env, obj, "slug", call->slug);
  if (call->index != NULL)
    set_text(env, obj, "index", call->index);
  return obj;
}

static void set_bool(napi_env env, napi_value obj, const char *name, int b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  napi_set_named_property(env, obj, name, v);
}

static napi_value undefined_result(napi_env env, node_call *call) {
  (void)call;
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

/* Keep a borrowed id past the next call on its key. */
static int keep_id(node_call *call, const char *id, nodup_db *db) {
  if (id != NULL && (call->id = strdup(id)) == NULL)
    return node_call_status(call, NODUP_ERR_NOMEM, db);
  return NODUP_OK;
}

/* Start a call whose one argument is the string `v` (connect's URL,
 * exec's SQL), copied into *field. */
static napi_value start_with_string(napi_env env, node_call *call, napi_value promise,
                                    napi_value v, const char *what, const char **field) {
  if (node_get_string(env, v, &call->arena, what, field) != 0)
    return refuse(env, call, promise);
  node_call_start(env, call);
  return promise;
}

/* After a keyed call: its status, then created and the id, kept. */
static int keyed_done(node_call *call, int rc, const nodup_result *res) {
  nodup_db *db = call->conn->db;
  if (node_call_status(call, rc, db) != NODUP_OK)
    return rc;
  call->created = res->created;
  return keep_id(call, res->id, db);
}

/* The methods on a key: (table, key, options) with options.where and two
 * optional column objects, options[first] and options[second] (NULL: none). */
static napi_value keyed_method(napi_env env, napi_callback_info info, const node_call_ops *ops,
                               const char *first, const char *second) {
  napi_value argv[3], promise;
  node_call *call = begin_on_table(env, info, ops, argv, &promise);
  if (call == NULL)
    return promise;
  if (node_get_columns(env, argv[1], &call->arena, "key", 1, 1, &call->key) != 0 ||
      get_columns_option(env, argv[2], first, call, &call->first) != 0 ||
      (second != NULL && get_columns_option(env, argv[2], second, call, &call->second) != 0) ||
      get_where(env, argv[2], call) != 0)
    return refuse(env, call, promise);
  node_call_start(env, call);
  return promise;
}

/* --- connect(url) ------------------------------------------------------------- */

static int connect_run(node_call *call) {
  nodup_db *db = NULL;
  int rc = nodup_open(&db, call->url);
  if (node_call_status(call, rc, db) != NODUP_OK) {
    nodup_close(db);
    return rc;
  }
  call->opened = db;
  return NODUP_OK;
}

static napi_value connect_result(napi_env env, node_call *call) {
  nodup_db *db = call->opened;
  call->opened = NULL;
  return node_conn_wrap(env, db);
}

static const node_call_ops connect_ops = {"nodup:connect", connect_run, connect_result, NULL, NULL};

napi_value node_connect(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], promise;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  node_call *call = node_call_new(env, NULL, &connect_ops, &promise);
  if (call == NULL)
    return NULL;
  return start_with_string(env, call, promise, argv[0], "url", &call->url);
}

/* --- getOrCreate(table, key, {defaults, where}) ------------------------------ */

static int goc_run(node_call *call) {
  nodup_key *key;
  if (cached_key(call, &key) != NODUP_OK)
    return call->rc;
  nodup_result res = {0};
  int rc = nodup_get_or_create(key, call->key.vals, call->first.names, call->first.vals,
                               call->first.n, &res);
  return keyed_done(call, rc, &res);
}

static napi_value goc_result(napi_env env, node_call *call) {
  napi_value obj = text_result(env, call);
  if (obj != NULL)
    set_bool(env, obj, "created", call->created);
  return obj;
}

/* The non-blocking path (conn.c): a key already in the cache, started
 * and polled on the main thread. */
static int goc_nb_end(node_call *call, int rc, const nodup_result *res) {
  if (rc == NODUP_AGAIN)
    return NODE_NB_WAIT;
  keyed_done(call, rc, res);
  return NODE_NB_DONE;
}

static int goc_start(node_call *call, nodup_wait *wait) {
  node_conn *conn = call->conn;
  call->nb_key = node_cache_find_key(conn->cache, call->table, call->key.names, call->key.n,
                                     call->where);
  if (call->nb_key == NULL)
    return NODE_NB_POOL;
  nodup_result res = {0};
  int rc = nodup_get_or_create_start(call->nb_key, call->key.vals, call->first.names,
                                     call->first.vals, call->first.n, &res, wait);
  if (rc == NODUP_ERR_UNSUPPORTED)
    return NODE_NB_NEVER;   /* SQLite */
  return goc_nb_end(call, rc, &res);
}

static int goc_poll(node_call *call, nodup_wait *wait) {
  nodup_result res = {0};
  return goc_nb_end(call, nodup_get_or_create_poll(call->nb_key, &res, wait), &res);
}

static const node_call_ops goc_ops = {"nodup:getOrCreate", goc_run, goc_result, goc_start,
                                      goc_poll};

napi_value node_get_or_create(napi_env env, napi_callback_info info) {
  return keyed_method(env, info, &goc_ops, "defaults", NULL);
}

/* --- getOrCreateMany(table, keys, {defaults, where}) --------------------------- */

/* options.defaults: an array of objects parallel to the keys, or one
 * object for every row, repeated here (the library takes a row of
 * defaults per key). */
static int get_many_defaults(napi_env env, napi_value options, node_call *call) {
  napi_value v;
  bool is_array = false;
  size_t n;
  if (node_get_option(env, options, "defaults", &v) != 0)
    return -1;
  napi_is_array(env, v, &is_array);
  if (is_array) {
    if (node_get_rows(env, v, &call->arena, "options.defaults", 0, &call->first, &n) != 0)
      return -1;
    if (n != call->nrows)
      return node_throw_usage(env,
                              "options.defaults has %zu objects for %zu keys: give one per "
                              "key, or one object for all",
                              n, call->nrows);
    return 0;
  }
  node_columns one;
  if (node_get_columns(env, v, &call->arena, "options.defaults", 0, 0, &one) != 0)
    return -1;
  call->first = one;
  if (one.n == 0 || call->nrows == 0)
    return 0;
  call->first.vals = node_arena_alloc(&call->arena, call->nrows * one.n * sizeof *one.vals);
  if (call->first.vals == NULL)
    return node_throw_usage(env, "out of memory");
  for (size_t r = 0; r < call->nrows; r++)
    memcpy(call->first.vals + r * one.n, one.vals, one.n * sizeof *one.vals);
  return 0;
}

/* Copy the results off the key before the call settles: their ids last
 * only until the key's next many-keys call, and the connection may run
 * one before this promise settles. One allocation: the rows, then their
 * ids. */
static int keep_many(node_call *call, const nodup_result *res) {
  size_t bytes = call->nrows * sizeof *call->many;
  for (size_t r = 0; r < call->nrows; r++)
    bytes += strlen(res[r].id) + 1;
  if ((call->many = malloc(bytes)) == NULL)
    return NODUP_ERR_NOMEM;
  char *ids = (char *)(call->many + call->nrows);
  for (size_t r = 0; r < call->nrows; r++) {
    size_t len = strlen(res[r].id) + 1;
    memcpy(ids, res[r].id, len);
    call->many[r].id = ids;
    call->many[r].created = res[r].created;
    ids += len;
  }
  return NODUP_OK;
}

/* One library call for every row. No keys: nothing to ask (nor any
 * columns to prepare a key on). */
static int many_run(node_call *call) {
  nodup_key *key;
  if (call->nrows == 0)
    return NODUP_OK;
  if (cached_key(call, &key) != NODUP_OK)
    return call->rc;
  nodup_result *res = calloc(call->nrows, sizeof *res);
  int rc = res == NULL ? NODUP_ERR_NOMEM
                       : nodup_get_or_create_many(key, call->nrows, call->key.vals,
                                                  call->first.names, call->first.vals,
                                                  call->first.n, res);
  if (rc == NODUP_OK)
    rc = keep_many(call, res);
  free(res);
  return node_call_status(call, rc, call->conn->db);
}

static napi_value many_result(napi_env env, node_call *call) {
  napi_value array, obj;
  if (napi_create_array_with_length(env, call->nrows, &array) != napi_ok)
    return NULL;
  for (size_t r = 0; r < call->nrows; r++) {
    if (napi_create_object(env, &obj) != napi_ok)
      return NULL;
    set_text(env, obj, "id", call->many[r].id);
    set_bool(env, obj, "created", call->many[r].created);
    if (napi_set_element(env, array, (uint32_t)r, obj) != napi_ok)
      return NULL;
  }
  return array;
}

static const node_call_ops many_ops = {"nodup:getOrCreateMany", many_run, many_result, NULL, NULL};

/* `keys` all name the first's columns, in its order: that order is the
 * key's, and the library reads the values row after row in it. */
napi_value node_get_or_create_many(napi_env env, napi_callback_info info) {
  napi_value argv[3], promise;
  node_call *call = begin_on_table(env, info, &many_ops, argv, &promise);
  if (call == NULL)
    return promise;
  if (node_get_rows(env, argv[1], &call->arena, "keys", 1, &call->key, &call->nrows) != 0 ||
      get_many_defaults(env, argv[2], call) != 0 || get_where(env, argv[2], call) != 0)
    return refuse(env, call, promise);
  node_call_start(env, call);
  return promise;
}

/* --- updateOrCreate(table, key, {set, create, where}) ------------------------- */

static int uoc_run(node_call *call) {
  nodup_key *key;
  if (cached_key(call, &key) != NODUP_OK)
    return call->rc;
  nodup_result res = {0};
  int rc = nodup_update_or_create(key, call->key.vals, call->first.names, call->first.vals,
                                  call->first.n, call->second.names, call->second.vals,
                                  call->second.n, &res, &call->outcome);
  return keyed_done(call, rc, &res);
}

static napi_value uoc_result(napi_env env, node_call *call) {
  napi_value obj = goc_result(env, call);
  if (obj != NULL)
    set_text(env, obj, "outcome",
             call->outcome == NODUP_CREATED   ? "created"
             : call->outcome == NODUP_UPDATED ? "updated"
                                              : "unchanged");
  return obj;
}

static const node_call_ops uoc_ops = {"nodup:updateOrCreate", uoc_run, uoc_result, NULL, NULL};

napi_value node_update_or_create(napi_env env, napi_callback_info info) {
  return keyed_method(env, info, &uoc_ops, "create", "set");
}

/* --- slug(table, column, text, {scope, set, maxLength, fallback, reserved}) -- */

/* Through the connection's prepared slug for these columns and options:
 * nodup_slug_create() would read the catalog and prepare on every call. */
static int slug_run(node_call *call) {
  nodup_slug_result res = {0};
  nodup_db *db = call->conn->db;
  nodup_slug *slug;
  int rc = node_cache_slug(call->conn->cache, db, call->table, call->column, call->first.names,
                           call->first.n, call->second.names, call->second.n,
                           &call->slug_options, &slug);
  if (rc == NODUP_OK)
    rc = nodup_slug_next(&res, slug, call->first.vals, call->second.vals, call->text);
  if (node_call_status(call, rc, db) == NODUP_OK) {
    call->slug = res.slug;
    call->id = res.id;
  }
  return rc;
}

static const node_call_ops slug_ops = {"nodup:slug", slug_run, text_result, NULL, NULL};

/* maxLength, fallback and reserved into call->slug_options. */
static int get_slug_options(napi_env env, napi_value options, node_call *call) {
  nodup_slug_options *opt = &call->slug_options;
  napi_value v;
  napi_valuetype type;
  if (node_get_option(env, options, "maxLength", &v) != 0)
    return -1;
  napi_typeof(env, v, &type);
  if (type == napi_number) {
    int64_t n;
    napi_get_value_int64(env, v, &n);
    if (n <= NODUP_SLUG_SUFFIX_ROOM)
      return node_throw_usage(env, "options.maxLength must be more than %d",
                              NODUP_SLUG_SUFFIX_ROOM);
    opt->max_length = (size_t)n;
  } else if (type != napi_undefined) {
    return node_throw_usage(env, "options.maxLength must be a number");
  }
  if (node_get_option(env, options, "fallback", &v) != 0)
    return -1;
  napi_typeof(env, v, &type);
  if (type != napi_undefined &&
      node_get_string(env, v, &call->arena, "options.fallback", &opt->fallback) != 0)
    return -1;
  if (node_get_option(env, options, "reserved", &v) != 0)
    return -1;
  napi_typeof(env, v, &type);
  if (type == napi_undefined)
    return 0;
  bool is_array = false;
  uint32_t n = 0;
  napi_is_array(env, v, &is_array);
  if (!is_array)
    return node_throw_usage(env, "options.reserved must be an array of strings");
  napi_get_array_length(env, v, &n);
  const char **words = node_arena_alloc(&call->arena, (n ? n : 1) * sizeof *words);
  if (words == NULL)
    return node_throw_usage(env, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    napi_value w;
    if (napi_get_element(env, v, i, &w) != napi_ok ||
        node_get_string(env, w, &call->arena, "options.reserved[i]", &words[i]) != 0)
      return -1;
  }
  opt->reserved = words;
  opt->nreserved = n;
  return 0;
}

napi_value node_slug(napi_env env, napi_callback_info info) {
  napi_value argv[4], promise;
  node_call *call = begin(env, info, &slug_ops, 4, argv, &promise);
  if (call == NULL)
    return promise;
  nodup_slug_options init = NODUP_SLUG_OPTIONS_INIT;
  call->slug_options = init;
  if (node_get_string(env, argv[0], &call->arena, "table", &call->table) != 0 ||
      node_get_string(env, argv[1], &call->arena, "column", &call->column) != 0 ||
      node_get_string(env, argv[2], &call->arena, "text", &call->text) != 0 ||
      get_columns_option(env, argv[3], "scope", call, &call->first) != 0 ||
      get_columns_option(env, argv[3], "set", call, &call->second) != 0 ||
      get_slug_options(env, argv[3], call) != 0)
    return refuse(env, call, promise);
  node_call_start(env, call);
  return promise;
}

/* --- check(table, columns, {where}) ------------------------------------------- */

static int check_run(node_call *call) {
  char index[1024];
  nodup_db *db = call->conn->db;
  int rc = nodup_key_check(db, call->table, call->key.names, call->key.n, call->where, index,
                           sizeof index);
  if (node_call_status(call, rc, db) == NODUP_OK && (call->index = strdup(index)) == NULL)
    return node_call_status(call, NODUP_ERR_NOMEM, db);
  return rc;
}

static const node_call_ops check_ops = {"nodup:check", check_run, text_result, NULL, NULL};

napi_value node_check(napi_env env, napi_callback_info info) {
  napi_value argv[3], promise;
  node_call *call = begin_on_table(env, info, &check_ops, argv, &promise);
  if (call == NULL)
    return promise;
  bool is_array = false;
  uint32_t n = 0;
  napi_is_array(env, argv[1], &is_array);
  if (is_array)
    napi_get_array_length(env, argv[1], &n);
  if (n == 0) {
    node_throw_usage(env, "columns must be a non-empty array of column names");
    return refuse(env, call, promise);
  }
  call->key.names = node_arena_alloc(&call->arena, n * sizeof *call->key.names);
  if (call->key.names == NULL) {
    node_throw_usage(env, "out of memory");
    return refuse(env, call, promise);
  }
  call->key.n = n;
  for (uint32_t i = 0; i < n; i++) {
    napi_value c;
    if (napi_get_element(env, argv[1], i, &c) != napi_ok ||
        node_get_string(env, c, &call->arena, "columns[i]", &call->key.names[i]) != 0)
      return refuse(env, call, promise);
  }
  if (get_where(env, argv[2], call) != 0)
    return refuse(env, call, promise);
  node_call_start(env, call);
  return promise;
}

/* --- exec(sql) ---------------------------------------------------------------- */

static int exec_run(node_call *call) {
  nodup_db *db = call->conn->db;
  return node_call_status(call, nodup_exec(db, call->sql), db);
}

static const node_call_ops exec_ops = {"nodup:exec", exec_run, undefined_result, NULL, NULL};

napi_value node_exec(napi_env env, napi_callback_info info) {
  napi_value argv[1], promise;
  node_call *call = begin(env, info, &exec_ops, 1, argv, &promise);
  if (call == NULL)
    return promise;
  return start_with_string(env, call, promise, argv[0], "sql", &call->sql);
}

/* --- close() ------------------------------------------------------------------ */

/* The prepared keys and slugs first: each keeps the connection open
 * (nodup_close). A second close() finds nothing left to do. */
static int close_run(node_call *call) {
  node_conn *conn = call->conn;
  node_cache_free(conn->cache);
  conn->cache = NULL;
  nodup_close(conn->db);
  conn->db = NULL;
  return NODUP_OK;
}

static const node_call_ops close_ops = {"nodup:close", close_run, undefined_result, NULL, NULL};

napi_value node_close(napi_env env, napi_callback_info info) {
  napi_value promise;
  node_call *call = node_call_new(env, NULL, &close_ops, &promise);
  if (call == NULL)
    return NULL;
  size_t argc = 0;
  node_conn *conn = node_conn_of(env, info, &argc, NULL);
  if (conn == NULL)
    return refuse(env, call, promise);
  call->conn = conn;
  conn->closing = 1;
  node_call_start(env, call);
  return promise;
}

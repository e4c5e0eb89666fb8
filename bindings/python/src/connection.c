/*
 * connection.c -- nodup.Connection: one nodup_db and the keys prepared on it.
 *
 * Every method follows one pattern: claim the connection (enter), turn the
 * Python arguments into text arrays that own their bytes, make the library
 * call with the GIL released so that other Python threads run meanwhile,
 * then build the result or raise the error's class, and let go (leave).
 * The library's handles belong to one thread at a time: a connection per
 * thread. enter() refuses a second thread with UsageError rather than let
 * two calls share a handle.
 */
#include "pynodup.h"

#include <string.h>

static int enter(pyn_connection *c) {
  if (!c->db) {
    pyn_raise_msg(NODUP_ERR_USAGE, "the connection is closed");
    return -1;
  }
  if (c->busy) {
    pyn_raise_msg(NODUP_ERR_USAGE,
                  "the connection is in use by another call (another thread?): "
                  "a nodup connection belongs to one thread at a time; open a "
                  "connection per thread");
    return -1;
  }
  c->busy = 1;
  return 0;
}

static void leave(pyn_connection *c) { c->busy = 0; }

PyObject *pyn_connection_open(const char *url) {
  nodup_db *db = NULL;
  pyn_connection *c;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = nodup_open(&db, url);
  Py_END_ALLOW_THREADS
  if (rc != NODUP_OK) {
    pyn_raise(db, rc);  /* a failed open still holds the message */
    nodup_close(db);
    return NULL;
  }
  if (!(c = PyObject_New(pyn_connection, &pyn_connection_type))) {
    nodup_close(db);
    return NULL;
  }
  c->db = db;
  c->busy = 0;
  c->sqlite = strcmp(nodup_db_backend(db), "sqlite") == 0;
  if (!(c->keys = PyDict_New())) Py_CLEAR(c);
  return (PyObject *)c;
}

/* Free the keys (they hold statements on the connection), then the
 * connection, the GIL released for what they send on the wire. */
static void shut(pyn_connection *c) {
  nodup_db *db = c->db;
  PyObject *keys = c->keys;
  nodup_key **taken = NULL;
  Py_ssize_t i, n = 0;
  c->db = NULL;
  c->keys = NULL;
  if (keys) taken = pyn_keys_take(keys, &n);
  Py_XDECREF(keys);
  Py_BEGIN_ALLOW_THREADS
  for (i = 0; i < n; i++) nodup_key_free(taken[i]);
  nodup_close(db);
  Py_END_ALLOW_THREADS
  PyMem_Free(taken);
}

static void conn_dealloc(pyn_connection *c) {
  shut(c);
  PyObject_Free(c);
}

PyDoc_STRVAR(close_doc,
"close($self, /)\n--\n\n"
"Close the connection and free its prepared keys. Closing twice is a no-op;\n"
"any other call afterwards raises UsageError. A connection is also closed\n"
"when the with-block it opened ends, and when it is garbage-collected.");

static PyObject *conn_close(pyn_connection *c, PyObject *Py_UNUSED(ignored)) {
  if (c->db && enter(c) < 0) return NULL;
  shut(c);
  leave(c);
  Py_RETURN_NONE;
}

static PyObject *conn_enter(pyn_connection *c, PyObject *Py_UNUSED(ignored)) {
  return Py_NewRef(c);
}

static PyObject *conn_exit(pyn_connection *c, PyObject *Py_UNUSED(args)) {
  PyObject *r = conn_close(c, NULL);
  if (!r) return NULL;
  Py_DECREF(r);
  Py_RETURN_FALSE;
}

/* Raise a keyed call's error; a database error also drops the key (see
 * keycache.c), after the message is read. */
static void failed(pyn_connection *c, int rc, PyObject *table, const pyn_texts *k,
                   PyObject *where) {
  pyn_raise(c->db, rc);
  if (rc == NODUP_ERR_DB) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    pyn_key_forget(c, table, k, where);
    PyErr_Restore(type, value, tb);
  }
}

PyDoc_STRVAR(get_or_create_doc,
"get_or_create($self, /, table, key, defaults=None, where=None)\n--\n\n"
"-> (id, created)\n\n"
"Return the row of `table` whose columns equal `key` (a dict column -> value),\n"
"creating it with `defaults` (a dict, used only on create) when there is none.\n"
"`where` is the predicate of a partial unique index (SQL text, trusted, as\n"
"Django's UniqueConstraint condition). Exactly one caller per key gets\n"
"created=True under any concurrency, and all get the same id: an int for an\n"
"integer primary key, else a str (a UUID; a composite key joined with ',').\n\n"
"Values are str, int, float, bool or None (SQL NULL); the database converts\n"
"the text to the column's type. A unique index must back exactly the key's\n"
"columns (and predicate): UnbackedKeyError otherwise. None in the key:\n"
"NullKeyError. Another constraint: ConstraintError naming it. Inside your own\n"
"transaction, a conflict only a re-run can solve: RetryError.\n\n"
"The key is prepared once per connection (its catalog reads and index check)\n"
"and reused. The GIL is released during the database work. A connection per\n"
"thread: a connection used by two threads at once raises UsageError.");

static PyObject *conn_get_or_create(pyn_connection *c, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"table", "key", "defaults", "where", NULL};
  PyObject *table, *key_map, *defaults = Py_None, *where = Py_None, *out = NULL;
  pyn_texts k = {0}, d = {0};
  nodup_result r = {0};
  nodup_key *key;
  int rc;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "UO|OO:get_or_create", kwlist, &table, &key_map,
                                   &defaults, &where) ||
      enter(c) < 0)
    return NULL;
  if (pyn_texts_from_mapping(&k, key_map, c->sqlite, "key") < 0 ||
      pyn_texts_from_mapping(&d, defaults, c->sqlite, "defaults") < 0 ||
      !(key = pyn_key_get(c, table, &k, where)))
    goto done;
  Py_BEGIN_ALLOW_THREADS
  rc = nodup_get_or_create(key, k.vals, d.cols, d.vals, (size_t)d.n, &r);
  Py_END_ALLOW_THREADS
  if (rc != NODUP_OK) failed(c, rc, table, &k, where);
  else out = Py_BuildValue("(NO)", pyn_id(r.id), r.created ? Py_True : Py_False);
done:
  pyn_texts_release(&k);
  pyn_texts_release(&d);
  leave(c);
  return out;
}

/*
 * MANY-KEYS: the lead is adding a get-or-create of many keys in one call to
 * the library (issue 16's "many-keys once they exist"). Its binding goes
 * here, as get_or_create_many(table, keys, defaults=None, where=None) on
 * the same cached key (pyn_key_get), and a line in the method table below.
 * Not built until the library call exists.
 */

PyDoc_STRVAR(update_or_create_doc,
"update_or_create($self, /, table, key, set=None, create=None, where=None)\n--\n\n"
"-> (id, outcome)\n\n"
"Make the row whose columns equal `key` hold `set` (a dict): update it when it\n"
"exists and differs, create it when there is none (with `key`, `set` and\n"
"`create`, a dict of columns written only on create), write nothing when it\n"
"already holds those values. `outcome` is 'created', 'updated' or 'unchanged';\n"
"under any concurrency exactly one caller per key gets 'created'. Same keys,\n"
"values, errors and threading rules as get_or_create (a connection per thread).");

static PyObject *conn_update_or_create(pyn_connection *c, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"table", "key", "set", "create", "where", NULL};
  static const char *const outcomes[] = {"", "created", "updated", "unchanged"};
  PyObject *table, *key_map, *set = Py_None, *create = Py_None, *where = Py_None, *out = NULL;
  pyn_texts k = {0}, s = {0}, cr = {0};
  nodup_result r = {0};
  nodup_key *key;
  int rc, outcome = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "UO|OOO:update_or_create", kwlist, &table,
                                   &key_map, &set, &create, &where) ||
      enter(c) < 0)
    return NULL;
  if (pyn_texts_from_mapping(&k, key_map, c->sqlite, "key") < 0 ||
      pyn_texts_from_mapping(&s, set, c->sqlite, "set") < 0 ||
      pyn_texts_from_mapping(&cr, create, c->sqlite, "create") < 0 ||
      !(key = pyn_key_get(c, table, &k, where)))
    goto done;
  Py_BEGIN_ALLOW_THREADS
  rc = nodup_update_or_create(key, k.vals, cr.cols, cr.vals, (size_t)cr.n, s.cols, s.vals,
                              (size_t)s.n, &r, &outcome);
  Py_END_ALLOW_THREADS
  if (rc != NODUP_OK) failed(c, rc, table, &k, where);
  else if (outcome < NODUP_CREATED || outcome > NODUP_UNCHANGED)
    PyErr_Format(PyExc_SystemError, "nodup_update_or_create: unknown outcome %d", outcome);
  else out = Py_BuildValue("(Ns)", pyn_id(r.id), outcomes[outcome]);
done:
  pyn_texts_release(&k);
  pyn_texts_release(&s);
  pyn_texts_release(&cr);
  leave(c);
  return out;
}

PyDoc_STRVAR(check_doc,
"check($self, /, table, key_columns, where=None)\n--\n\n"
"-> str\n\n"
"The name of the unique index (or constraint) that backs exactly these columns\n"
"(a list) and predicate, without preparing a key. UnbackedKeyError when none\n"
"does, its message carrying the CREATE UNIQUE INDEX that would. A connection per\n"
"thread.");

static PyObject *conn_check(pyn_connection *c, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"table", "key_columns", "where", NULL};
  const char *table, *where = NULL;
  PyObject *names, *out = NULL;
  pyn_texts k = {0};
  char index[1024];
  int rc;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|z:check", kwlist, &table, &names, &where) ||
      enter(c) < 0)
    return NULL;
  if (pyn_texts_from_names(&k, names, "key_columns") < 0) goto done;
  Py_BEGIN_ALLOW_THREADS
  rc = nodup_key_check(c->db, table, k.cols, (size_t)k.n, where, index, sizeof index);
  Py_END_ALLOW_THREADS
  if (rc != NODUP_OK) pyn_raise(c->db, rc);
  else out = PyUnicode_FromString(index);
done:
  pyn_texts_release(&k);
  leave(c);
  return out;
}

PyDoc_STRVAR(slug_doc,
"slug($self, /, table, column, text, scope=None, set=None, max_length=None, fallback=None)\n--\n\n"
"-> (slug, id)\n\n"
"Insert a row into `table` whose `column` holds the next free slug made from\n"
"`text` ('My Team' -> 'my-team', then 'my-team-2'...), and return the slug and\n"
"the row's id. `scope` (a dict) makes the slug unique per tenant: the row gets\n"
"those values and only rows with them compete; `set` (a dict) gives the row's\n"
"other columns. A unique index on exactly (scope columns..., column) must exist\n"
"(UnbackedKeyError otherwise). `max_length` (suffix included; default 50) and\n"
"`fallback` (the slug of text that keeps nothing; default 'n-a') as in\n"
"nodup_slug_options. A lost race moves on to the next suffix; the caller never\n"
"sees the unique violation. A connection per thread.");

static PyObject *conn_slug(pyn_connection *c, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"table", "column", "text", "scope", "set", "max_length", "fallback",
                           NULL};
  const char *table, *column, *text, *fallback = NULL;
  PyObject *scope = Py_None, *set = Py_None, *out = NULL;
  Py_ssize_t max_length = 0;
  pyn_texts sc = {0}, st = {0};
  nodup_slug_options opt = NODUP_SLUG_OPTIONS_INIT;
  nodup_slug_result r = {0};
  int rc;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "sss|OOnz:slug", kwlist, &table, &column, &text,
                                   &scope, &set, &max_length, &fallback) ||
      enter(c) < 0)
    return NULL;
  if (max_length < 0) {
    pyn_raise_msg(NODUP_ERR_USAGE, "max_length must be positive");
    goto done;
  }
  opt.max_length = (size_t)max_length;
  opt.fallback = fallback;
  if (pyn_texts_from_mapping(&sc, scope, c->sqlite, "scope") < 0 ||
      pyn_texts_from_mapping(&st, set, c->sqlite, "set") < 0)
    goto done;
  Py_BEGIN_ALLOW_THREADS
  rc = nodup_slug_create(&r, c->db, table, column, sc.cols, sc.vals, (size_t)sc.n, st.cols,
                         st.vals, (size_t)st.n, text, &opt);
  Py_END_ALLOW_THREADS
  if (rc != NODUP_OK) pyn_raise(c->db, rc);
  else out = Py_BuildValue("(sN)", r.slug, pyn_id(r.id));
  nodup_slug_result_free(&r);
done:
  pyn_texts_release(&sc);
  pyn_texts_release(&st);
  leave(c);
  return out;
}

PyDoc_STRVAR(execute_doc,
"execute($self, sql, /)\n--\n\n"
"Run SQL statements that return nothing you need: DDL, BEGIN, COMMIT, ROLLBACK\n"
"(nodup's calls then run inside your transaction; see nodup.h, 'Inside the\n"
"caller's transaction'). No parameters: never build `sql` from untrusted input.\n"
"A connection per thread.");

static PyObject *conn_execute(pyn_connection *c, PyObject *args) {
  const char *sql;
  PyObject *out = NULL;
  int rc;
  if (!PyArg_ParseTuple(args, "s:execute", &sql) || enter(c) < 0) return NULL;
  Py_BEGIN_ALLOW_THREADS
  rc = nodup_exec(c->db, sql);
  Py_END_ALLOW_THREADS
  if (rc != NODUP_OK) pyn_raise(c->db, rc);
  else out = Py_NewRef(Py_None);
  leave(c);
  return out;
}

static PyObject *get_backend(pyn_connection *c, void *Py_UNUSED(closure)) {
  return c->db ? PyUnicode_FromString(nodup_db_backend(c->db)) : Py_NewRef(Py_None);
}

static PyObject *get_closed(pyn_connection *c, void *Py_UNUSED(closure)) {
  return PyBool_FromLong(c->db == NULL);
}

static PyObject *get_retries(pyn_connection *c, void *Py_UNUSED(closure)) {
  return PyLong_FromUnsignedLongLong(nodup_retries(c->db));
}

static PyObject *get_notice(pyn_connection *c, void *Py_UNUSED(closure)) {
  const char *notice = c->db ? nodup_notice(c->db) : NULL;
  return notice ? PyUnicode_FromString(notice) : Py_NewRef(Py_None);
}

static PyObject *conn_repr(pyn_connection *c) {
  return PyUnicode_FromFormat("<nodup.Connection %s>",
                              c->db ? nodup_db_backend(c->db) : "closed");
}

static PyMethodDef conn_methods[] = {
    {"get_or_create", (PyCFunction)(void (*)(void))conn_get_or_create,
     METH_VARARGS | METH_KEYWORDS, get_or_create_doc},
    {"update_or_create", (PyCFunction)(void (*)(void))conn_update_or_create,
     METH_VARARGS | METH_KEYWORDS, update_or_create_doc},
    /* MANY-KEYS: {"get_or_create_many", ...} once the library has it (above). */
    {"check", (PyCFunction)(void (*)(void))conn_check, METH_VARARGS | METH_KEYWORDS, check_doc},
    {"slug", (PyCFunction)(void (*)(void))conn_slug, METH_VARARGS | METH_KEYWORDS, slug_doc},
    {"execute", (PyCFunction)conn_execute, METH_VARARGS, execute_doc},
    {"close", (PyCFunction)conn_close, METH_NOARGS, close_doc},
    {"__enter__", (PyCFunction)conn_enter, METH_NOARGS, "Return the connection itself."},
    {"__exit__", (PyCFunction)conn_exit, METH_VARARGS, "Close the connection."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef conn_getset[] = {
    {"backend", (getter)get_backend, NULL, "'sqlite' or 'postgresql'; None once closed.", NULL},
    {"closed", (getter)get_closed, NULL, "True once close() has run.", NULL},
    {"retries", (getter)get_retries, NULL,
     "How many times calls re-ran their own transaction after a serialization failure\n"
     "or deadlock since the connection was opened (0 on SQLite).",
     NULL},
    {"notice", (getter)get_notice, NULL,
     "What the last call that looked at a key's table wants passed on although it\n"
     "succeeded (what an interrupted `nodup enforce --online` left), or None.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL}};

PyTypeObject pyn_connection_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "nodup.Connection",
    .tp_basicsize = sizeof(pyn_connection),
    .tp_dealloc = (destructor)conn_dealloc,
    .tp_repr = (reprfunc)conn_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A connection to one database, made by nodup.connect(url).\n\n"
              "A connection per thread: its prepared keys belong to one thread at a time,\n"
              "and a call arriving from a second thread while one runs raises UsageError.\n"
              "Use it as a context manager to close it at the end of a with-block.",
    .tp_methods = conn_methods,
    .tp_getset = conn_getset,
};

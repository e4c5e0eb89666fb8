/*
 * errors.c -- one exception class per nodup error code.
 *
 * Every class derives from nodup.Error, which carries what the library
 * leaves on the connection: `.code` (the NODUP_ERR_* number, also a class
 * attribute), `.sqlstate` (five characters, or None when the failure did
 * not come from the database), `.constraint` (the constraint or index the
 * database named, or None) and the one-line message as str(e). Where a
 * built-in exception means the same thing the class derives from it too
 * (UsageError is a ValueError, ConnectError a ConnectionError), so code
 * that already catches those keeps working.
 */
#include "pynodup.h"

#include <string.h>

/* The classes, by code. `base` is a built-in also derived from, or NULL.
 * A code missing here (a newer library) raises nodup.Error itself, with
 * its .code; tests/test_errors.py fails until the table names it. */
static const struct {
  int code;
  const char *name;
  PyObject **base;
  const char *doc;
} kinds[] = {
    {NODUP_ERR_NOMEM, "OutOfMemoryError", &PyExc_MemoryError, "The library ran out of memory."},
    {NODUP_ERR_USAGE, "UsageError", &PyExc_ValueError,
     "An argument the library refuses, or a connection used by two threads at once."},
    {NODUP_ERR_URL, "URLError", &PyExc_ValueError, "A malformed or unsupported database URL."},
    {NODUP_ERR_CONNECT, "ConnectError", &PyExc_ConnectionError,
     "The database cannot be reached: server down, file missing, authentication failed."},
    {NODUP_ERR_NO_TABLE, "NoTableError", &PyExc_LookupError, "No such table."},
    {NODUP_ERR_NO_COLUMN, "NoColumnError", &PyExc_LookupError, "No such column."},
    {NODUP_ERR_UNBACKED, "UnbackedKeyError", NULL,
     "No unique index or constraint backs exactly this key (and predicate): without one,\n"
     "concurrent callers would create duplicates. The message carries the CREATE UNIQUE\n"
     "INDEX that would back it."},
    {NODUP_ERR_NULL_KEY, "NullKeyError", &PyExc_ValueError,
     "None in a key column of an index that treats NULLs as distinct: NULLs never\n"
     "conflict, so the key cannot be enforced."},
    {NODUP_ERR_CONSTRAINT, "ConstraintError", NULL,
     "The insert violated another constraint (NOT NULL, CHECK, a foreign key, another\n"
     "unique index); `.constraint` names it where the database does."},
    {NODUP_ERR_RETRY, "RetryError", NULL,
     "A transient conflict (serialization failure, deadlock, SQLite busy) inside your own\n"
     "transaction: roll it back and run it again."},
    {NODUP_ERR_PREDICATE, "PredicateError", NULL,
     "The new row would fall outside the key's predicate (the partial index's WHERE)."},
    {NODUP_ERR_NO_PKEY, "NoPrimaryKeyError", NULL, "The table has no primary key."},
    {NODUP_ERR_DB, "DatabaseError", NULL, "Any other database error, with its message."},
    {NODUP_ERR_CONFLICT, "ConflictError", NULL,
     "A row the lookup does not see blocks the insert (a predicate narrower than the index's)."},
    {NODUP_ERR_DUPLICATE, "DuplicateError", NULL, "The key is not unique in the table."},
    {NODUP_ERR_REFERENCED, "ReferencedError", NULL, "Rows to delete are still referenced."},
    {NODUP_ERR_NO_RUN, "NoRunError", NULL, "No such merge run, or not in a state that allows this."},
    {NODUP_ERR_CHANGED, "ChangedError", NULL, "Rows changed since the merge: cannot undo."},
    {NODUP_ERR_UNSUPPORTED, "UnsupportedError", NULL,
     "The database engine cannot guarantee this."},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

/* Owned by the module for the life of the process (single-phase init:
 * the module is never unloaded). */
static PyObject *error_base;
static PyObject *classes[NKINDS];

/* A class dict holding `code` and the attributes' defaults, so that an
 * instance a Python caller raises itself (nodup.django does) has them. */
static PyObject *class_dict(int code) {
  PyObject *d = Py_BuildValue("{s:O,s:O,s:O}", "sqlstate", Py_None, "constraint", Py_None,
                              "code", Py_None);
  PyObject *c = code ? PyLong_FromLong(code) : NULL;
  if (d && code && (!c || PyDict_SetItemString(d, "code", c) < 0)) Py_CLEAR(d);
  Py_XDECREF(c);
  return d;
}

int pyn_errors_init(PyObject *module) {
  size_t i;
  PyObject *dict = class_dict(0);
  if (!dict) return -1;
  error_base = PyErr_NewExceptionWithDoc(
      "nodup.Error",
      "Base class of every nodup error. Attributes: code (a NODUP_ERR_* number),\n"
      "sqlstate (str or None), constraint (str or None); str(e) is the library's message.",
      PyExc_Exception, dict);
  Py_DECREF(dict);
  if (!error_base || PyModule_AddObjectRef(module, "Error", error_base) < 0) return -1;
  for (i = 0; i < NKINDS; i++) {
    char qualified[64];
    PyObject *bases = kinds[i].base ? PyTuple_Pack(2, error_base, *kinds[i].base)
                                    : PyTuple_Pack(1, error_base);
    if (!bases || !(dict = class_dict(kinds[i].code))) {
      Py_XDECREF(bases);
      return -1;
    }
    PyOS_snprintf(qualified, sizeof qualified, "nodup.%s", kinds[i].name);
    classes[i] = PyErr_NewExceptionWithDoc(qualified, kinds[i].doc, bases, dict);
    Py_DECREF(bases);
    Py_DECREF(dict);
    if (!classes[i] || PyModule_AddObjectRef(module, kinds[i].name, classes[i]) < 0) return -1;
  }
  return 0;
}

static PyObject *class_of(int code) {
  size_t i;
  for (i = 0; i < NKINDS; i++)
    if (kinds[i].code == code) return classes[i];
  return error_base;
}

/* Raise `code` with its texts; "" for sqlstate or constraint reads None. */
static PyObject *raise_code(int code, const char *message, const char *sqlstate,
                       const char *constraint) {
  PyObject *exc = NULL, *v = NULL;
  PyObject *msg = PyUnicode_DecodeUTF8(message, (Py_ssize_t)strlen(message), "replace");
  if (!msg) return NULL;
  exc = PyObject_CallOneArg(class_of(code), msg);
  Py_DECREF(msg);
  if (!exc) return NULL;
#define SET(name, value)                                                 \
  v = (value);                                                           \
  if (!v || PyObject_SetAttrString(exc, name, v) < 0) goto fail;         \
  Py_DECREF(v);
  SET("code", PyLong_FromLong(code));
  SET("sqlstate", sqlstate && *sqlstate ? PyUnicode_FromString(sqlstate) : Py_NewRef(Py_None));
  SET("constraint", constraint && *constraint
                        ? PyUnicode_DecodeUTF8(constraint, (Py_ssize_t)strlen(constraint), "replace")
                        : Py_NewRef(Py_None));
#undef SET
  PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
  Py_DECREF(exc);
  return NULL;
fail:
  Py_XDECREF(v);
  Py_DECREF(exc);
  return NULL;
}

PyObject *pyn_raise(const nodup_db *db, int code) {
  const char *message = db ? nodup_errmsg(db) : "";
  if (code == NODUP_ERR_NOMEM && !db) return PyErr_NoMemory();
  return raise_code(code, *message ? message : nodup_strerror(code),
                    db ? nodup_sqlstate(db) : NULL, db ? nodup_errconstraint(db) : NULL);
}

PyObject *pyn_raise_msg(int code, const char *message) { return raise_code(code, message, NULL, NULL); }

/*
 * pynodup.h -- what the files of the Python extension (_nodup) share.
 *
 * The extension is a thin layer over include/nodup.h: it turns Python
 * values into the library's text values, caches prepared keys on each
 * connection, releases the GIL around every database call and turns error
 * codes into exception classes. It writes no SQL of its own.
 */
#ifndef PYNODUP_H
#define PYNODUP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "nodup.h"

/*
 * A connection. `db` is NULL once closed. `keys` maps (table, columns,
 * where) to a capsule owning a nodup_key prepared on `db`. `busy` is set
 * while a method runs: the library's handles belong to one thread at a
 * time, and a second thread arriving meanwhile gets UsageError instead of
 * sharing them. It is read and set with the GIL held, so the test and the
 * set cannot interleave with another Python thread (a build without the
 * GIL would need an atomic here).
 */
typedef struct {
  PyObject_HEAD
  nodup_db *db;
  PyObject *keys;
  int busy;
  int sqlite;   /* the backend, for the text of a bool (1/0 or true/false) */
} pyn_connection;

extern PyTypeObject pyn_connection_type;

/* Open `url` and wrap it; NULL with the exception set. */
PyObject *pyn_connection_open(const char *url);

/* --- errors.c ------------------------------------------------------------ */

/* Create the exception classes and add them to `module`. -1 on failure. */
int pyn_errors_init(PyObject *module);

/* Raise the class of `code` with the message, SQLSTATE and constraint of
 * the last failed call on `db` (NULL: nodup_strerror's sentence). Always
 * returns NULL, for `return pyn_raise(...)`. */
PyObject *pyn_raise(const nodup_db *db, int code);

/* Raise the class of `code` with `message` and no SQLSTATE. Returns NULL. */
PyObject *pyn_raise_msg(int code, const char *message);

/* --- values.c ------------------------------------------------------------ */

/*
 * Columns and their text values for one call, as the library takes them.
 * The strings pointed at are the UTF-8 buffers of Python str objects that
 * `owners` keeps alive until pyn_texts_release(), so the arrays stay valid
 * while the GIL is released even if the caller's dict changes meanwhile.
 */
typedef struct {
  Py_ssize_t n;
  const char **cols;
  const char **vals;
  PyObject *names;    /* tuple of the column names (str), in order */
  PyObject *owners;   /* list of the objects owning those bytes */
} pyn_texts;

/* Fill `t` from a mapping of column name -> value (None: no columns).
 * Values: str, int, float, bool (1/0 on SQLite, true/false on PostgreSQL)
 * or None (SQL NULL). `what` names the argument in errors. -1 with the
 * exception set, `t` then released. */
int pyn_texts_from_mapping(pyn_texts *t, PyObject *mapping, int sqlite, const char *what);

/* Fill t->cols from a sequence of column names (t->vals stays NULL). */
int pyn_texts_from_names(pyn_texts *t, PyObject *names, const char *what);

/* Release what `t` holds; it may be released twice. */
void pyn_texts_release(pyn_texts *t);

/* The library's id text as Python: an int when it is one written in
 * canonical form ("42", "-7"), else the str (UUIDs, composite keys). */
PyObject *pyn_id(const char *id);

/* --- keycache.c ---------------------------------------------------------- */

/* The key prepared on `c` for (table, cols, where), preparing it on first
 * use (GIL released). Borrowed from c->keys. NULL with the exception set. */
nodup_key *pyn_key_get(pyn_connection *c, PyObject *table, const pyn_texts *cols,
                       PyObject *where);

/* Drop that key from the cache (freeing it); the next call prepares it again. */
void pyn_key_forget(pyn_connection *c, PyObject *table, const pyn_texts *cols,
                    PyObject *where);

/* Take every key out of `keys` (a connection's cache, being closed): the
 * capsules no longer free them; the caller frees each with nodup_key_free
 * (with the GIL released: on PostgreSQL each sends DEALLOCATEs) and the
 * array with PyMem_Free. NULL with *n = 0 when out of memory (the capsules
 * then keep their keys and free them with the dict). */
nodup_key **pyn_keys_take(PyObject *keys, Py_ssize_t *n);

#endif

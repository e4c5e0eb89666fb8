/*
 * keycache.c -- prepared keys, once per connection and key.
 *
 * nodup_key_prepare reads the catalog and asks the engine to confirm the
 * backing index (several round trips on PostgreSQL); nodup_get_or_create
 * on a prepared key is then its statements alone, and a key kept for many
 * calls learns its hit rate (nodup.h). So the connection keeps each key it
 * prepared, under (table, column names in the caller's order, where), and
 * a hit in Python costs one dict lookup. The cache lives and dies with the
 * connection; an application names a handful of keys, so it is not bounded.
 * A key whose call failed with NODUP_ERR_DB is dropped and prepared again
 * on next use, so a handle made before a schema change is not kept for the
 * connection's life.
 */
#include "pynodup.h"

#define KEY_CAPSULE "nodup.key"

/* A capsule owns its key: freeing the connection's dict frees them all. */
static void key_capsule_free(PyObject *capsule) {
  nodup_key_free(PyCapsule_GetPointer(capsule, KEY_CAPSULE));
}

nodup_key *pyn_key_get(pyn_connection *c, PyObject *table, const pyn_texts *cols,
                       PyObject *where) {
  PyObject *id, *capsule;
  nodup_key *key = NULL;
  const char *table_text, *where_text = NULL;
  int rc;

  if (where != Py_None && !PyUnicode_Check(where)) {
    PyErr_Format(PyExc_TypeError, "where must be a str or None, not %.100s",
                 Py_TYPE(where)->tp_name);
    return NULL;
  }
  if (!(id = PyTuple_Pack(3, table, cols->names, where))) return NULL;
  capsule = PyDict_GetItemWithError(c->keys, id);
  if (capsule) {
    Py_DECREF(id);
    return PyCapsule_GetPointer(capsule, KEY_CAPSULE);
  }
  if (PyErr_Occurred()) goto done;
  if (!(table_text = PyUnicode_AsUTF8(table))) goto done;
  if (where != Py_None && !(where_text = PyUnicode_AsUTF8(where))) goto done;

  Py_BEGIN_ALLOW_THREADS
  rc = nodup_key_prepare(&key, c->db, table_text, cols->cols, (size_t)cols->n, where_text);
  Py_END_ALLOW_THREADS
  if (rc != NODUP_OK) {
    pyn_raise(c->db, rc);
    goto done;
  }
  if (!(capsule = PyCapsule_New(key, KEY_CAPSULE, key_capsule_free))) {
    nodup_key_free(key);
    key = NULL;
    goto done;
  }
  /* The dict takes its own reference: `key` stays valid while c->keys
   * holds the capsule, i.e. until the connection is closed. */
  if (PyDict_SetItem(c->keys, id, capsule) < 0) key = NULL;
  Py_DECREF(capsule);
done:
  Py_DECREF(id);
  return key;
}

void pyn_key_forget(pyn_connection *c, PyObject *table, const pyn_texts *cols,
                    PyObject *where) {
  PyObject *id = PyTuple_Pack(3, table, cols->names, where);
  /* Nothing to report: a key that cannot be dropped is only prepared once
   * more than needed, never wrong. */
  if (!id || PyDict_DelItem(c->keys, id) < 0) PyErr_Clear();
  Py_XDECREF(id);
}

nodup_key **pyn_keys_take(PyObject *keys, Py_ssize_t *n) {
  Py_ssize_t pos = 0;
  PyObject *id, *capsule;
  nodup_key **taken = PyMem_Malloc(sizeof *taken * (size_t)(PyDict_GET_SIZE(keys) + 1));
  *n = 0;
  if (!taken) return NULL;  /* the capsules then free their keys themselves */
  while (PyDict_Next(keys, &pos, &id, &capsule)) {
    taken[(*n)++] = PyCapsule_GetPointer(capsule, KEY_CAPSULE);
    PyCapsule_SetDestructor(capsule, NULL);
  }
  return taken;
}

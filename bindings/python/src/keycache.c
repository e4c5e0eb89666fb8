/*
 * keycache.c -- prepared keys and slug handles, once per connection.
 *
 * nodup_key_prepare reads the catalog and asks the engine to confirm the
 * backing index (several round trips on PostgreSQL); nodup_get_or_create
 * on a prepared key is then its statements alone, and a key kept for many
 * calls learns its hit rate (nodup.h). So the connection keeps each key it
 * prepared, under (table, column names in the caller's order, where), and
 * a hit in Python costs one dict lookup. A slug handle (nodup_slug_prepare:
 * the key on (scope..., column), the insert and the range query) is kept
 * the same way, under everything it was prepared with. The caches live and
 * die with the connection; an application names a handful of keys, so they
 * are not bounded. A handle whose call failed with NODUP_ERR_DB is dropped
 * and prepared again on next use, so a handle made before a schema change
 * is not kept for the connection's life.
 */
#include "pynodup.h"

#define KEY_CAPSULE "nodup.key"
#define SLUG_CAPSULE "nodup.slug"

/* A capsule owns its handle: freeing the connection's dict frees them all. */
static void key_capsule_free(PyObject *capsule) {
  nodup_key_free(PyCapsule_GetPointer(capsule, KEY_CAPSULE));
}

static void slug_capsule_free(PyObject *capsule) {
  nodup_slug_free(PyCapsule_GetPointer(capsule, SLUG_CAPSULE));
}

/* The handle `cache` holds under `id`, borrowed; NULL without an exception
 * when there is none. */
static void *cache_find(PyObject *cache, PyObject *id, const char *name) {
  PyObject *capsule = PyDict_GetItemWithError(cache, id);
  return capsule ? PyCapsule_GetPointer(capsule, name) : NULL;
}

/* Keep `capsule` (made by the caller, who passes its reference on; NULL
 * when making it failed) in `cache` under `id`. The dict takes its own
 * reference: the handle stays valid while the cache holds it, i.e. until
 * the connection is closed. -1 on failure, the handle then freed by the
 * capsule, or the caller's to free when there is no capsule. */
static int cache_keep(PyObject *cache, PyObject *id, PyObject *capsule) {
  int rc;
  if (!capsule) return -1;
  rc = PyDict_SetItem(cache, id, capsule);
  Py_DECREF(capsule);
  return rc;
}

/* Drop the handle under `id` (NULL: making the id failed), keeping the
 * exception being raised. Nothing to report: a handle that cannot be
 * dropped is only prepared once more than needed, never wrong. Consumes
 * `id`. */
static void cache_forget(PyObject *cache, PyObject *id) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (!id || PyDict_DelItem(cache, id) < 0) PyErr_Clear();
  Py_XDECREF(id);
  PyErr_Restore(type, value, tb);
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
  if ((key = cache_find(c->keys, id, KEY_CAPSULE)) || PyErr_Occurred()) goto done;
  if (!(table_text = PyUnicode_AsUTF8(table))) goto done;
  if (where != Py_None && !(where_text = PyUnicode_AsUTF8(where))) goto done;

  Py_BEGIN_ALLOW_THREADS
  rc = nodup_key_prepare(&key, c->db, table_text, cols->cols, (size_t)cols->n, where_text);
  Py_END_ALLOW_THREADS
  if (rc != NODUP_OK) {
    pyn_raise(c->db, rc);
  } else if (!(capsule = PyCapsule_New(key, KEY_CAPSULE, key_capsule_free))) {
    nodup_key_free(key);
    key = NULL;
  } else if (cache_keep(c->keys, id, capsule) < 0) {
    key = NULL;
  }
done:
  Py_DECREF(id);
  return key;
}

void pyn_key_forget(pyn_connection *c, PyObject *table, const pyn_texts *cols,
                    PyObject *where) {
  cache_forget(c->keys, PyTuple_Pack(3, table, cols->names, where));
}

/* A slug handle's identity: every argument of nodup_slug_prepare. */
static PyObject *slug_id(const pyn_slug_spec *s) {
  return Py_BuildValue("(OOOOnO)", s->table, s->column, s->scope->names, s->set->names,
                       s->max_length, s->fallback);
}

nodup_slug *pyn_slug_get(pyn_connection *c, const pyn_slug_spec *s) {
  nodup_slug_options opt = NODUP_SLUG_OPTIONS_INIT;
  nodup_slug *slug = NULL;
  const char *table, *column;
  PyObject *id, *capsule;
  int rc;

  if (s->fallback != Py_None && !PyUnicode_Check(s->fallback)) {
    PyErr_Format(PyExc_TypeError, "fallback must be a str or None, not %.100s",
                 Py_TYPE(s->fallback)->tp_name);
    return NULL;
  }
  if (!(id = slug_id(s))) return NULL;
  if ((slug = cache_find(c->slugs, id, SLUG_CAPSULE)) || PyErr_Occurred()) goto done;
  opt.max_length = (size_t)s->max_length;
  if (!(table = PyUnicode_AsUTF8(s->table)) || !(column = PyUnicode_AsUTF8(s->column)) ||
      (s->fallback != Py_None && !(opt.fallback = PyUnicode_AsUTF8(s->fallback))))
    goto done;

  Py_BEGIN_ALLOW_THREADS
  rc = nodup_slug_prepare(&slug, c->db, table, column, s->scope->cols, (size_t)s->scope->n,
                          s->set->cols, (size_t)s->set->n, &opt);
  Py_END_ALLOW_THREADS
  if (rc != NODUP_OK) {
    pyn_raise(c->db, rc);
  } else if (!(capsule = PyCapsule_New(slug, SLUG_CAPSULE, slug_capsule_free))) {
    nodup_slug_free(slug);
    slug = NULL;
  } else if (cache_keep(c->slugs, id, capsule) < 0) {
    slug = NULL;
  }
done:
  Py_DECREF(id);
  return slug;
}

void pyn_slug_forget(pyn_connection *c, const pyn_slug_spec *s) {
  cache_forget(c->slugs, slug_id(s));
}

void **pyn_cache_take(PyObject *cache, Py_ssize_t *n) {
  Py_ssize_t pos = 0;
  PyObject *id, *capsule;
  void **taken = PyMem_Malloc(sizeof *taken * (size_t)(PyDict_GET_SIZE(cache) + 1));
  *n = 0;
  if (!taken) return NULL;  /* the capsules then free their handles themselves */
  while (PyDict_Next(cache, &pos, &id, &capsule)) {
    taken[(*n)++] = PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule));
    PyCapsule_SetDestructor(capsule, NULL);
  }
  return taken;
}

/*
 * values.c -- Python values to the library's text values, and ids back.
 *
 * libnodup takes every value as text and lets the database convert it to
 * the column's type, as libpq does. Here a str passes as it is, an int or a
 * float as its repr, a bool as what the backend stores for one (SQLite has
 * no boolean type: Django and most applications store 1/0 there), None as
 * SQL NULL. Other types are refused rather than guessed at: str() of a
 * datetime or a Decimal is the caller's decision (nodup.django makes it
 * with Django's own field conversion).
 */
#include "pynodup.h"

#include <string.h>

void pyn_texts_release(pyn_texts *t) {
  PyMem_Free(t->cols);
  PyMem_Free(t->vals);
  t->cols = t->vals = NULL;
  t->n = 0;
  Py_CLEAR(t->names);
  Py_CLEAR(t->owners);
}

/* The UTF-8 of a str, refusing an embedded NUL (the library would read a
 * shorter text than the caller gave). Borrowed from `s`. */
static const char *utf8(PyObject *s, const char *what, PyObject *col) {
  Py_ssize_t len;
  const char *p = PyUnicode_AsUTF8AndSize(s, &len);
  if (p && (size_t)len != strlen(p)) {
    PyErr_Format(PyExc_ValueError, "%s: %R contains a NUL character", what, col ? col : s);
    return NULL;
  }
  return p;
}

/* One value's text. A new str is appended to t->owners; static texts and
 * the caller's own str need no owner beyond the mapping's items list. */
static int value_text(pyn_texts *t, PyObject *v, int sqlite, const char *what, PyObject *col,
                      const char **out) {
  PyObject *made;
  if (v == Py_None) {
    *out = NULL;
    return 0;
  }
  if (PyBool_Check(v)) {
    *out = v == Py_True ? (sqlite ? "1" : "true") : (sqlite ? "0" : "false");
    return 0;
  }
  if (PyUnicode_Check(v)) return (*out = utf8(v, what, col)) ? 0 : -1;
  /* int's and float's own repr: a subclass (IntEnum) may print a name. */
  if (PyLong_Check(v)) made = PyLong_Type.tp_repr(v);
  else if (PyFloat_Check(v)) made = PyFloat_Type.tp_repr(v);
  else {
    PyErr_Format(PyExc_TypeError,
                 "%s: column %R: a value must be str, int, float, bool or None, not %.100s",
                 what, col, Py_TYPE(v)->tp_name);
    return -1;
  }
  if (!made) return -1;
  if (PyList_Append(t->owners, made) < 0) {
    Py_DECREF(made);
    return -1;
  }
  Py_DECREF(made);  /* t->owners holds it */
  *out = PyUnicode_AsUTF8(made);
  return *out ? 0 : -1;
}

static int alloc(pyn_texts *t, Py_ssize_t n, int with_vals) {
  t->n = n;
  t->cols = PyMem_Calloc((size_t)n + 1, sizeof *t->cols);
  t->vals = with_vals ? PyMem_Calloc((size_t)n + 1, sizeof *t->vals) : NULL;
  t->names = PyTuple_New(n);
  t->owners = PyList_New(0);
  if (!t->cols || (with_vals && !t->vals)) {
    PyErr_NoMemory();
    return -1;
  }
  return t->names && t->owners ? 0 : -1;
}

/* One column name into slot i: must be a non-empty str. */
static int name_at(pyn_texts *t, Py_ssize_t i, PyObject *name, const char *what) {
  if (!PyUnicode_Check(name) || PyUnicode_GET_LENGTH(name) == 0) {
    PyErr_Format(PyExc_TypeError, "%s: a column name must be a non-empty str, not %R", what,
                 name);
    return -1;
  }
  if (!(t->cols[i] = utf8(name, what, NULL))) return -1;
  Py_INCREF(name);
  PyTuple_SET_ITEM(t->names, i, name);
  return 0;
}

/* The end of a conversion: drop the reference the caller held on `held`
 * (t->owners keeps its own) and, on failure, what `t` collected. */
static int finish(pyn_texts *t, PyObject *held, int ok) {
  Py_XDECREF(held);
  if (!ok) pyn_texts_release(t);
  return ok ? 0 : -1;
}

int pyn_texts_from_mapping(pyn_texts *t, PyObject *mapping, int sqlite, const char *what) {
  PyObject *items = NULL;
  Py_ssize_t i, n;
  memset(t, 0, sizeof *t);
  if (mapping == Py_None) return alloc(t, 0, 1);
  /* A mapping has keys(); a list passes PyMapping_Check but is no dict. */
  if (!PyDict_Check(mapping) && !PyObject_HasAttrString(mapping, "keys")) {
    PyErr_Format(PyExc_TypeError, "%s must be a dict of column -> value, not %.100s", what,
                 Py_TYPE(mapping)->tp_name);
    return -1;
  }
  /* The items list owns the caller's keys and values for as long as the
   * call runs, whatever happens to the mapping itself. */
  if (!(items = PyMapping_Items(mapping))) return -1;
  n = PyList_GET_SIZE(items);
  if (alloc(t, n, 1) < 0 || PyList_Append(t->owners, items) < 0) goto fail;
  for (i = 0; i < n; i++) {
    PyObject *pair = PyList_GET_ITEM(items, i);
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
      PyErr_Format(PyExc_TypeError, "%s: items() must give (column, value) pairs", what);
      goto fail;
    }
    if (name_at(t, i, PyTuple_GET_ITEM(pair, 0), what) < 0 ||
        value_text(t, PyTuple_GET_ITEM(pair, 1), sqlite, what, PyTuple_GET_ITEM(pair, 0),
                   &t->vals[i]) < 0)
      goto fail;
  }
  return finish(t, items, 1);
fail:
  return finish(t, items, 0);
}

int pyn_texts_from_names(pyn_texts *t, PyObject *names, const char *what) {
  PyObject *seq = NULL;
  Py_ssize_t i, n;
  memset(t, 0, sizeof *t);
  if (PyUnicode_Check(names)) {  /* "ab" would be read as columns a and b */
    PyErr_Format(PyExc_TypeError, "%s must be a list of column names, not a str", what);
    return -1;
  }
  if (!(seq = PySequence_Fast(names, "column names must be a list or tuple"))) return -1;
  n = PySequence_Fast_GET_SIZE(seq);
  if (alloc(t, n, 0) < 0 || PyList_Append(t->owners, seq) < 0) goto fail;
  for (i = 0; i < n; i++)
    if (name_at(t, i, PySequence_Fast_GET_ITEM(seq, i), what) < 0) goto fail;
  return finish(t, seq, 1);
fail:
  return finish(t, seq, 0);
}

PyObject *pyn_id(const char *id) {
  const char *p = id + (*id == '-');
  size_t digits = strspn(p, "0123456789");
  /* Canonical only: "007" stays a str, so a text key is never rewritten. */
  if (digits > 0 && p[digits] == '\0' && (p[0] != '0' || digits == 1))
    return PyLong_FromString(id, NULL, 10);
  return PyUnicode_FromString(id);
}

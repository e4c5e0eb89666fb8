/*
 * module.c -- the _nodup extension module: connect(), the calls that need
 * no connection, and the module's types and exceptions.
 *
 * nodup/__init__.py re-exports all of it; users import `nodup`.
 */
#include "pynodup.h"

#include <limits.h>

PyDoc_STRVAR(connect_doc,
"connect(url)\n--\n\n"
"-> Connection\n\n"
"Open a connection. `url` selects the backend: 'postgres://...',\n"
"'postgresql://...' or a libpq conninfo ('host=/tmp dbname=app') is\n"
"PostgreSQL; 'sqlite:PATH', an SQLite URI ('file:app.db?mode=rwc') or a plain\n"
"path is SQLite (a plain path must name an existing file). Raises URLError for\n"
"a malformed URL, ConnectError when the database cannot be reached.\n\n"
"A connection per thread: open one in each thread that calls nodup (the GIL is\n"
"released during database work, so threads do run at once). Use it as a context\n"
"manager, or call close().");

static PyObject *mod_connect(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"url", NULL};
  const char *url;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s:connect", kwlist, &url)) return NULL;
  return pyn_connection_open(url);
}

PyDoc_STRVAR(slugify_doc,
"slugify(text, max_length=None)\n--\n\n"
"-> str\n\n"
"The base slug of `text` with no database: transliterated to ASCII, lower case,\n"
"runs of other characters made one '-' ('Crème Brûlée' -> 'creme-brulee'), cut\n"
"to leave room for a suffix within `max_length` (default 50). Any thread.");

static PyObject *mod_slugify(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"text", "max_length", NULL};
  const char *text;
  Py_ssize_t max_length = 0;
  nodup_slug_options opt = NODUP_SLUG_OPTIONS_INIT;
  PyObject *out;
  char *buf;
  int rc;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s|n:slugify", kwlist, &text, &max_length))
    return NULL;
  if (max_length < 0) return pyn_raise_msg(NODUP_ERR_USAGE, "max_length must be positive");
  opt.max_length = (size_t)max_length;
  if (!(buf = PyMem_Malloc((max_length ? (size_t)max_length : NODUP_SLUG_MAX_LENGTH) + 1)))
    return PyErr_NoMemory();
  Py_BEGIN_ALLOW_THREADS
  rc = nodup_slugify(buf, (max_length ? (size_t)max_length : NODUP_SLUG_MAX_LENGTH) + 1, text,
                     &opt);
  Py_END_ALLOW_THREADS
  out = rc == NODUP_OK ? PyUnicode_FromString(buf) : pyn_raise(NULL, rc);
  PyMem_Free(buf);
  return out;
}

PyDoc_STRVAR(strerror_doc,
"strerror(code, /)\n--\n\n"
"-> str\n\n"
"The library's sentence for an error code ('no unique index backs this key').");

static PyObject *mod_strerror(PyObject *Py_UNUSED(module), PyObject *arg) {
  long code = PyLong_AsLong(arg);
  if (code == -1 && PyErr_Occurred()) return NULL;
  return PyUnicode_FromString(nodup_strerror(code < INT_MIN || code > INT_MAX ? -1 : (int)code));
}

static PyMethodDef module_methods[] = {
    {"connect", (PyCFunction)(void (*)(void))mod_connect, METH_VARARGS | METH_KEYWORDS,
     connect_doc},
    {"slugify", (PyCFunction)(void (*)(void))mod_slugify, METH_VARARGS | METH_KEYWORDS,
     slugify_doc},
    {"strerror", (PyCFunction)mod_strerror, METH_O, strerror_doc},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "nodup._nodup",
    .m_doc = "The C half of the nodup package: import nodup instead.",
    .m_size = -1,
    .m_methods = module_methods,
};

/* Declared for -Wmissing-prototypes: Python finds it by name. */
PyMODINIT_FUNC PyInit__nodup(void);

PyMODINIT_FUNC PyInit__nodup(void) {
  PyObject *m;
  if (PyType_Ready(&pyn_connection_type) < 0) return NULL;
  if (!(m = PyModule_Create(&module_def))) return NULL;
  if (PyModule_AddObjectRef(m, "Connection", (PyObject *)&pyn_connection_type) < 0 ||
      PyModule_AddStringConstant(m, "libversion", nodup_libversion()) < 0 ||
      pyn_errors_init(m) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}

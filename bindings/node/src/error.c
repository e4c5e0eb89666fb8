/*
 * error.c -- the library's errors as JS Error objects.
 *
 * A failed call rejects with an Error whose `code` is the error's name
 * ("NODUP_ERR_UNBACKED"), as Node's own errors carry a string code, and
 * whose `errno` is its number; `sqlstate` and `constraint` are there when
 * the database gave them. The names come from the library's own X-macro
 * table (NODUP_ERROR_MAP), so they cannot drift from nodup.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addon.h"

const char *node_error_name(int code) {
  switch (code) {
#define NODE_ERROR_NAME(name, num, text) \
  case num:                              \
    return "NODUP_" #name;
    NODUP_ERROR_MAP(NODE_ERROR_NAME)
#undef NODE_ERROR_NAME
  }
  return NULL;
}

/* strdup of a borrowed string; NULL (taken as "") when memory ran out. */
static char *copy_or_null(const char *s) {
  return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

void node_error_capture(node_error *err, int code, nodup_db *db) {
  node_error_clear(err);
  err->code = code;
  const char *msg = db != NULL ? nodup_errmsg(db) : "";
  err->message = copy_or_null(msg[0] != '\0' ? msg : nodup_strerror(code));
  if (db != NULL) {
    err->sqlstate = copy_or_null(nodup_sqlstate(db));
    err->constraint = copy_or_null(nodup_errconstraint(db));
  }
}

void node_error_clear(node_error *err) {
  free(err->message);
  free(err->sqlstate);
  free(err->constraint);
  memset(err, 0, sizeof *err);
}

static void set_string(napi_env env, napi_value obj, const char *name, const char *s) {
  napi_value v;
  if (s != NULL && napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v) == napi_ok)
    napi_set_named_property(env, obj, name, v);
}

napi_value node_error_value(napi_env env, const node_error *err) {
  const char *name = node_error_name(err->code);
  napi_value code, msg, error, num;
  napi_create_string_utf8(env, name != NULL ? name : "NODUP_ERR_UNKNOWN", NAPI_AUTO_LENGTH,
                          &code);
  napi_create_string_utf8(env, err->message != NULL ? err->message : nodup_strerror(err->code),
                          NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, err->code, &num);
  napi_set_named_property(env, error, "errno", num);
  set_string(env, error, "sqlstate", err->sqlstate);
  set_string(env, error, "constraint", err->constraint);
  return error;
}

int node_throw_usage(napi_env env, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  napi_value code, text, error, num;
  napi_create_string_utf8(env, "NODUP_ERR_USAGE", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_type_error(env, code, text, &error);
  napi_create_int32(env, NODUP_ERR_USAGE, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_throw(env, error);
  return -1;
}

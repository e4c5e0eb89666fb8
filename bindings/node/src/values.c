/*
 * values.c -- JS values in, the library's text values out.
 *
 * The library takes every value as text (libpq's convention) and lets the
 * database convert it to the column's type, so this file only has to turn
 * each JS value into the text the database reads as the same value:
 * strings as they are, numbers and bigints as JS prints them, booleans as
 * 1/0 (PostgreSQL's boolean input takes them, and SQLite stores booleans
 * as integers), Dates as ISO 8601 in UTC, null as SQL NULL. Everything is
 * copied into the call's arena on the main thread, because the worker
 * thread may not touch JS values.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addon.h"

/* Blocks of at least 1 KiB: a call copies a few short strings. */
struct node_arena_block {
  node_arena_block *next;
  size_t used, size;
  max_align_t data[];
};

void *node_arena_alloc(node_arena *arena, size_t size) {
  size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
  node_arena_block *b = arena->blocks;
  if (b == NULL || b->size - b->used < size) {
    size_t cap = size > 1024 ? size : 1024;
    b = malloc(sizeof *b + cap);
    if (b == NULL)
      return NULL;
    b->used = 0;
    b->size = cap;
    b->next = arena->blocks;
    arena->blocks = b;
  }
  void *p = (char *)b->data + b->used;
  b->used += size;
  return p;
}

void node_arena_free(node_arena *arena) {
  while (arena->blocks != NULL) {
    node_arena_block *next = arena->blocks->next;
    free(arena->blocks);
    arena->blocks = next;
  }
}

static int out_of_memory(napi_env env) {
  napi_throw_error(env, "NODUP_ERR_NOMEM", "out of memory");
  return -1;
}

/* A JS string (`v` is known to be one) copied into the arena. */
static int copy_string(napi_env env, napi_value v, node_arena *arena, const char **out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok)
    return -1;
  char *s = node_arena_alloc(arena, len + 1);
  if (s == NULL)
    return out_of_memory(env);
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  /* A NUL inside would silently cut the value the database sees. */
  if (strlen(s) != len)
    return node_throw_usage(env, "a string holds a NUL character");
  *out = s;
  return 0;
}

int node_get_string(napi_env env, napi_value v, node_arena *arena, const char *what,
                    const char **out) {
  napi_valuetype type;
  napi_typeof(env, v, &type);
  if (type != napi_string)
    return node_throw_usage(env, "%s must be a string", what);
  return copy_string(env, v, arena, out);
}

/* date.toISOString(); throws (RangeError) for an invalid date. */
static int date_text(napi_env env, napi_value date, node_arena *arena, const char **out) {
  napi_value fn, iso;
  if (napi_get_named_property(env, date, "toISOString", &fn) != napi_ok ||
      napi_call_function(env, date, fn, 0, NULL, &iso) != napi_ok)
    return -1;
  return copy_string(env, iso, arena, out);
}

/* One value as text. *out is NULL for null; *skip is set for undefined. */
static int value_text(napi_env env, napi_value v, node_arena *arena, const char *column,
                      const char **out, int *skip) {
  napi_valuetype type;
  napi_typeof(env, v, &type);
  *out = NULL;
  *skip = 0;
  switch (type) {
  case napi_string:
    return copy_string(env, v, arena, out);
  case napi_number:
  case napi_bigint: {
    /* JS's own ToString: 42, 0.1, 1e+21, 12345678901234567890 for 12345678901234567890n. */
    napi_value text;
    if (napi_coerce_to_string(env, v, &text) != napi_ok)
      return -1;
    return copy_string(env, text, arena, out);
  }
  case napi_boolean: {
    bool b;
    napi_get_value_bool(env, v, &b);
    *out = b ? "1" : "0";
    return 0;
  }
  case napi_null:
    return 0;
  case napi_undefined:
    *skip = 1;
    return 0;
  case napi_object: {
    bool is_date = false;
    napi_is_date(env, v, &is_date);
    if (is_date)
      return date_text(env, v, arena, out);
    break;
  }
  default:
    break;
  }
  return node_throw_usage(env,
                          "the value of \"%s\" must be a string, number, bigint, boolean, "
                          "Date or null",
                          column);
}

int node_get_columns(napi_env env, napi_value object, node_arena *arena, const char *what,
                     int required, int is_key, node_columns *out) {
  memset(out, 0, sizeof *out);
  napi_valuetype type;
  napi_typeof(env, object, &type);
  if (!required && (type == napi_undefined || type == napi_null))
    return 0;
  bool is_array = false;
  napi_is_array(env, object, &is_array);
  if (type != napi_object || is_array)
    return node_throw_usage(env, "%s must be an object of column: value", what);
  napi_value names;
  uint32_t n = 0;
  /* Own enumerable string keys, in insertion order: the key's column
   * order is the object's. */
  if (napi_get_all_property_names(env, object, napi_key_own_only,
                                  napi_key_enumerable | napi_key_skip_symbols,
                                  napi_key_numbers_to_strings, &names) != napi_ok ||
      napi_get_array_length(env, names, &n) != napi_ok)
    return -1;
  if (n == 0 && required)
    return node_throw_usage(env, "%s names no column", what);
  out->names = node_arena_alloc(arena, (n ? n : 1) * sizeof *out->names);
  out->vals = node_arena_alloc(arena, (n ? n : 1) * sizeof *out->vals);
  if (out->names == NULL || out->vals == NULL)
    return out_of_memory(env);
  for (uint32_t i = 0; i < n; i++) {
    napi_value name, value;
    const char *column, *text;
    int skip;
    if (napi_get_element(env, names, i, &name) != napi_ok ||
        copy_string(env, name, arena, &column) != 0 ||
        napi_get_property(env, object, name, &value) != napi_ok ||
        value_text(env, value, arena, column, &text, &skip) != 0)
      return -1;
    if (skip && is_key)
      return node_throw_usage(env, "key column \"%s\" is undefined", column);
    if (skip)
      continue;
    out->names[out->n] = column;
    out->vals[out->n] = text;
    out->n++;
  }
  return 0;
}

int node_get_option(napi_env env, napi_value options, const char *name, napi_value *out) {
  napi_valuetype type;
  napi_typeof(env, options, &type);
  if (type == napi_undefined || type == napi_null)
    return napi_get_undefined(env, out) == napi_ok ? 0 : -1;
  if (type != napi_object)
    return node_throw_usage(env, "options must be an object");
  return napi_get_named_property(env, options, name, out) == napi_ok ? 0 : -1;
}

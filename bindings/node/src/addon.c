/*
 * addon.c -- the module: connect(), the Connection class, the error codes.
 *
 * index.js loads this and re-exports it; index.d.ts documents it. Node
 * resolves the napi_* symbols at load time, so the shared object is linked
 * with them undefined and with libnodup inside it (no LD_LIBRARY_PATH).
 */
#include "addon.h"

/* codes: { NODUP_ERR_UNBACKED: 7, ... }, from nodup.h's own table. */
static napi_value error_codes(napi_env env) {
  napi_value codes, num;
  napi_create_object(env, &codes);
#define NODE_ERROR_CODE(name, code, text)       \
  napi_create_int32(env, code, &num);           \
  napi_set_named_property(env, codes, "NODUP_" #name, num);
  NODUP_ERROR_MAP(NODE_ERROR_CODE)
#undef NODE_ERROR_CODE
  return codes;
}

/* NAPI_MODULE_INIT defines this without a prototype first
 * (-Wmissing-prototypes). */
NAPI_MODULE_EXPORT int32_t NODE_API_MODULE_GET_API_VERSION(void);

NAPI_MODULE_INIT() {
  napi_value fn, version;
  if (napi_create_function(env, "connect", NAPI_AUTO_LENGTH, node_connect, NULL, &fn) !=
          napi_ok ||
      napi_set_named_property(env, exports, "connect", fn) != napi_ok ||
      node_conn_define(env, exports) != napi_ok ||
      napi_set_named_property(env, exports, "codes", error_codes(env)) != napi_ok ||
      napi_create_string_utf8(env, nodup_libversion(), NAPI_AUTO_LENGTH, &version) != napi_ok ||
      napi_set_named_property(env, exports, "libversion", version) != napi_ok)
    return NULL;
  return exports;
}

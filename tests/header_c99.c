/*
 * header_c99.c -- nodup.h must compile alone as strict C99 with -pedantic:
 * applications include it from code whose flags we do not choose. Nothing
 * runs; building this file is the test.
 */
#include "nodup.h"

/* Touch the types and the enum so that the compiler checks them too. */
int nodup_header_c99_probe(const nodup_result *result);

int nodup_header_c99_probe(const nodup_result *result) {
  nodup_error code = NODUP_ERR_DUPLICATE;
  return result->created + (int)code + (int)sizeof(NODUP_VERSION);
}

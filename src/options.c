/*
 * options.c -- versioned options structs (libgit2's pattern): the init
 * functions, and the check every call taking options makes.
 */
#include <string.h>

#include "internal.h"

#define OPTIONS_INIT(low, up)                                                     \
  int nodup_##low##_options_init(nodup_##low##_options *opt, unsigned int version) { \
    if (!opt || version < 1 || version > NODUP_##up##_OPTIONS_VERSION)             \
      return NODUP_ERR_USAGE;                                                      \
    memset(opt, 0, sizeof *opt);                                                   \
    opt->version = version;                                                        \
    return NODUP_OK;                                                               \
  }

OPTIONS_INIT(scan, SCAN)
OPTIONS_INIT(slug, SLUG)
OPTIONS_INIT(merge, MERGE)
OPTIONS_INIT(enforce, ENFORCE)
OPTIONS_INIT(import, IMPORT)

int options_check(nodup_db *db, unsigned int version, unsigned int known, const char *what) {
  if (version <= known) return NODUP_OK;
  return nodup_fail(db, NODUP_ERR_USAGE,
                    "%s version %u is newer than this libnodup's (%u, libnodup %s): the "
                    "application was built against a newer nodup.h",
                    what, version, known, NODUP_VERSION);
}

/*
 * notice.c -- what a command passes on besides its result: the library's
 * nodup_notice(), today what an interrupted `nodup enforce --online` left
 * on the table (see cmd_enforce.c for --abort).
 */
#include <string.h>

#include "cli.h"

void cli_notice(const cli_args *a, const nodup_db *db) {
  const char *n = nodup_notice(db);
  /* A refusal's message carries it already (NODUP_ERR_UNBACKED). */
  if (n && *n && !strstr(nodup_errmsg(db), n))
    fprintf(stderr, "nodup %s: warning: %s\n", a->cmd, n);
}

/*
 * cmd_exec.c -- `nodup exec`: run SQL, for setup scripts and the demo, so
 * that neither needs the engines' own shells installed.
 */
#include "cli.h"

static const char usage[] =
    "usage: nodup exec --db URL SQL [SQL ...]\n"
    "\n"
    "Run SQL statements on the database, in order (each argument may hold\n"
    "several statements separated by ';'). Results are not printed.\n"
    "Exit status: 0 success, 2 error.\n";

int cmd_exec(int argc, char **argv) {
  static const char *const allowed[] = {"db", "ARGS", NULL};
  cli_args a;
  nodup_db *db = NULL;
  size_t i;
  int rc, ex = cli_parse(argc, argv, "exec", allowed, usage, &a);
  if (ex != EXIT_OK || a.help) goto done;
  if (!a.npos) {
    fprintf(stderr, "nodup exec: no SQL given (run 'nodup exec --help')\n");
    ex = EXIT_ERROR;
    goto done;
  }
  if ((ex = cli_open(&a, &db)) != EXIT_OK) goto done;
  for (i = 0; i < a.npos; i++)
    if ((rc = nodup_exec(db, a.pos[i])) != NODUP_OK) {
      cli_error(&a, db, rc);
      ex = EXIT_ERROR;
      break;
    }
done:
  nodup_close(db);
  cli_args_free(&a);
  return ex;
}

/*
 * cmd_undo.c -- `nodup undo`: put back what one merge run changed.
 */
#include "cli.h"

static const char usage[] =
    "usage: nodup undo --db URL --run RUN [--journal SCHEMA] [--format text|json]\n"
    "\n"
    "Undo merge run RUN (the id 'nodup merge' printed; 'nodup runs' lists them all)\n"
    "in one transaction: every re-pointed reference and filled\n"
    "column gets its old value back and every deleted row is re-inserted from\n"
    "nodup_archive, newest change first, so the tables hold what they held before\n"
    "the merge. If a row the merge touched has changed since, or a restored row\n"
    "would collide with one written since (e.g. under a unique index created after\n"
    "the merge), nothing is changed and the error names the table.\n"
    "A run made with --no-archive cannot be undone, nor one still running; an\n"
    "interrupted or failed run can (what its committed batches did).\n"
    "--journal SCHEMA: PostgreSQL, the schema the merge recorded the run in\n"
    "(default nodup; runs an earlier nodup recorded in public are found there).\n"
    "\n"
    "Exit status: 0 undone, 2 error (nothing changed).\n";

int cmd_undo(int argc, char **argv) {
  static const char *const allowed[] = {"db", "run", "format", "journal", NULL};
  cli_args a;
  nodup_db *db = NULL;
  long long restored = 0, reverted = 0;
  int rc, ex = cli_parse(argc, argv, "undo", allowed, usage, &a);

  if (ex != EXIT_OK || a.help) goto done;
  if ((ex = cli_open(&a, &db)) != EXIT_OK) goto done;
  rc = nodup_undo(db, a.run, &restored, &reverted);
  if (rc != NODUP_OK) {
    cli_error(&a, db, rc);
    ex = EXIT_ERROR;
    goto done;
  }
  if (json_format(&a)) {
    printf("{\"run\": ");
    json_string(stdout, a.run);
    printf(", \"restored\": %lld, \"reverted\": %lld}\n", restored, reverted);
  } else {
    printf("undo run %s: %lld row(s) restored, %lld row(s) set back\n", a.run, restored,
           reverted);
  }
done:
  nodup_close(db);
  cli_args_free(&a);
  return ex;
}

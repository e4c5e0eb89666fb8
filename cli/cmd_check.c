/*
 * cmd_check.c -- `nodup check`: is a key backed by a unique index?
 */
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: nodup check --db URL --table T --key col[,col...] [--where SQL]\n"
    "                   [--format text|json]\n"
    "\n"
    "Ask the database whether a unique index (or constraint) backs exactly this\n"
    "key and predicate, so that get-or-create on it is race-free.\n"
    "\n"
    CLI_KEY_HELP
    "\n"
    "Exit status: 0 backed (prints the index's name), 1 not backed (prints the\n"
    "CREATE UNIQUE INDEX statement that would back it on stdout, the reason on\n"
    "stderr), 2 error (unknown table or column, database unreachable).\n";

int cmd_check(int argc, char **argv) {
  static const char *const allowed[] = {"db", "table", "key", "where", "format", NULL};
  cli_args a;
  nodup_db *db = NULL;
  char name[512], ddl[4096];
  int rc, ex = cli_parse(argc, argv, "check", allowed, usage, &a);

  if (ex != EXIT_OK || a.help) goto done;
  if ((ex = cli_open_ext(&a, &db, NODUP_OPEN_READONLY)) != EXIT_OK) goto done;
  rc = nodup_key_check(db, a.table, a.key, a.nkey, a.where, name, sizeof name);
  cli_notice(&a, db);   /* before nodup_key_ddl clears the message that may carry it */
  if (rc != NODUP_OK && rc != NODUP_ERR_UNBACKED) {
    cli_error(&a, db, rc);
    ex = EXIT_ERROR;
    goto done;
  }
  if (rc == NODUP_ERR_UNBACKED) {
    fprintf(stderr, "nodup check: %s\n", nodup_errmsg(db));
    nodup_key_ddl(db, a.table, a.key, a.nkey, a.where, ddl, sizeof ddl);
    ex = EXIT_NO;
  }
  if (json_format(&a)) {
    printf("{\"backed\": %s, \"index\": ", rc == NODUP_OK ? "true" : "false");
    json_string(stdout, rc == NODUP_OK ? name : NULL);
    fputs(", \"ddl\": ", stdout);
    json_string(stdout, rc == NODUP_OK ? NULL : ddl);
    fputs("}\n", stdout);
  } else if (rc == NODUP_OK) {
    printf("backed by %s\n", name);
  } else {
    printf("%s\n", ddl);
  }
done:
  nodup_close(db);
  cli_args_free(&a);
  return ex;
}

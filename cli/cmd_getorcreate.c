/*
 * cmd_getorcreate.c -- `nodup get-or-create`: one call of the library's
 * core function from the shell.
 */
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: nodup get-or-create --db URL --table T --key col[,col...] [--where SQL]\n"
    "                           --set col=value ... [--null col ...] [--format text|json]\n"
    "       nodup get-or-create --db URL --table T --key col[,col...] [--where SQL]\n"
    "                           --csv FILE|- [--set col=value ...] [--format text|json]\n"
    "\n"
    "Return the row whose key columns have the given values, creating it if there\n"
    "is none: exactly once, however many callers race. --set gives the key\n"
    "columns' values and any other column's value for a new row (defaults, used\n"
    "only on create); --null sets a column to NULL. A unique index must back the\n"
    "key exactly (see 'nodup check').\n"
    "\n"
    "Prints '<id> created' or '<id> existing' (json: {\"id\": \"...\", \"created\": true}).\n"
    "\n"
    "With --csv, many keys at once: the file's header row names its columns, which\n"
    "must include every key column; its other columns, and --set/--null, are\n"
    "defaults for the rows created. An empty unquoted field is NULL, \"\" is empty.\n"
    "--csv - reads standard input. Prints CSV: 'id,created' and one line per input\n"
    "row, in input order ('17,true'; json: one object per line). A key given twice\n"
    "gets one id, created for its first line only. Every 10,000 rows are one call\n"
    "of two statements, all or nothing; lines printed before a failure stand.\n"
    "\n"
    CLI_KEY_HELP
    "\n"
    "Exit status: 0 success, 1 key refused (no unique index backs it),\n"
    "2 other errors (another constraint's violation included).\n";

int cmd_get_or_create(int argc, char **argv) {
  static const char *const allowed[] = {"db", "table", "key", "where", "set",
                                        "null", "format", "csv", NULL};
  cli_args a;
  nodup_db *db = NULL;
  nodup_key *key = NULL;
  nodup_result r;
  const char *vals[32], *dcols[256], *dvals[256];
  size_t nd;
  int rc, ex = cli_parse(argc, argv, "get-or-create", allowed, usage, &a);

  if (ex != EXIT_OK || a.help) goto done;
  if (a.csv) {
    if ((ex = cli_open(&a, &db)) != EXIT_OK) goto done;
    rc = nodup_key_prepare(&key, db, a.table, a.key, a.nkey, a.where);
    if (rc == NODUP_OK) ex = cli_get_or_create_csv(&a, db, key);
    else {
      cli_error(&a, db, rc);
      ex = cli_exit_for(rc);
    }
    goto done;
  }
  if ((ex = cli_split_values(&a, vals, dcols, dvals, &nd)) != EXIT_OK) goto done;
  if ((ex = cli_open(&a, &db)) != EXIT_OK) goto done;
  rc = nodup_key_prepare(&key, db, a.table, a.key, a.nkey, a.where);
  if (rc == NODUP_OK) rc = nodup_get_or_create(key, vals, dcols, dvals, nd, &r);
  if (rc != NODUP_OK) {
    cli_error(&a, db, rc);
    ex = cli_exit_for(rc);
    goto done;
  }
  if (json_format(&a)) {
    fputs("{\"id\": ", stdout);
    json_string(stdout, r.id);
    printf(", \"created\": %s, \"index\": ", r.created ? "true" : "false");
    json_string(stdout, nodup_key_index(key));
    fputs("}\n", stdout);
  } else {
    printf("%s %s\n", r.id, r.created ? "created" : "existing");
  }
done:
  cli_notice(&a, db);
  nodup_key_free(key);
  nodup_close(db);
  cli_args_free(&a);
  return ex;
}

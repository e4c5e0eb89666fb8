/*
 * cmd_import.c -- `nodup import`: insert every row of a CSV file in one
 * transaction, or none, with the key's unique index as the arbiter.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: nodup import --db URL --table T --key col[,col...] [--where SQL]\n"
    "                    --csv FILE|- [--format text|json]\n"
    "\n"
    "Insert every row of an RFC 4180 CSV file (header row naming the columns) in\n"
    "one transaction, or none. A unique index must back the key exactly (see\n"
    "'nodup check'): it decides, so two imports of the same file at once cannot\n"
    "both succeed. If any row's key is already in the table, or the file repeats\n"
    "a key, nothing is inserted and the conflicting keys are listed (the first 10,\n"
    "then \"and N more\"). An unquoted empty field is NULL; \"\" is the empty string.\n"
    "--csv - reads standard input. --where SQL names a partial key (the WHERE of\n"
    "its partial unique index). The file is streamed: memory stays flat\n"
    "(PostgreSQL takes the rows through COPY).\n"
    "\n"
    "Prints 'imported N rows into T' (json: {\"table\": \"T\", \"rows\": N, \"inserted\": N,\n"
    "\"conflicts\": 0}). On a conflict nothing is inserted, the message lists the keys\n"
    "and lines, and json adds \"keys\": [{\"line\": L, \"existing\": true|false,\n"
    "\"key\": {...}}, ...] and \"more\": N (existing: false means repeated in the file).\n"
    CLI_KEY_HELP
    "\n"
    "Exit status: 0 imported, 1 already imported / key conflict, or key refused\n"
    "(no unique index backs it, as for get-or-create), 2 other errors (bad CSV,\n"
    "unknown column, bad value, NOT NULL...: the message gives the CSV line).\n";

static void print_json(const cli_args *a, const nodup_import_report *r) {
  size_t i, k;
  printf("{\"table\": ");
  json_string(stdout, a->table);
  printf(", \"rows\": %lld, \"inserted\": %lld, \"conflicts\": %lld", r->rows, r->inserted,
         r->conflicts);
  if (r->conflicts) {
    fputs(", \"keys\": [", stdout);
    for (i = 0; i < r->nlisted; i++) {
      printf("%s{\"line\": %lld, \"existing\": %s, \"key\": {", i ? ", " : "",
             r->listed[i].line, r->listed[i].existing ? "true" : "false");
      for (k = 0; k < r->nkey; k++) {
        if (k) fputs(", ", stdout);
        json_string(stdout, r->key[k]);
        fputs(": ", stdout);
        json_string(stdout, r->listed[i].values[k]);
      }
      fputs("}}", stdout);
    }
    printf("], \"more\": %lld", r->conflicts - (long long)r->nlisted);
  }
  fputs("}\n", stdout);
}

int cmd_import(int argc, char **argv) {
  static const char *const allowed[] = {"db", "table", "key", "where", "csv", "format", NULL};
  cli_args a;
  nodup_db *db = NULL;
  nodup_import_report *r = NULL;
  FILE *f = NULL;
  int rc, ex = cli_parse(argc, argv, "import", allowed, usage, &a);

  if (ex != EXIT_OK || a.help) goto done;
  if (!a.csv) {
    fprintf(stderr, "nodup import: --csv is required (run 'nodup import --help')\n");
    ex = EXIT_ERROR;
    goto done;
  }
  f = strcmp(a.csv, "-") ? fopen(a.csv, "rb") : stdin;
  if (!f) {
    fprintf(stderr, "nodup import: cannot open '%s': %s\n", a.csv, strerror(errno));
    ex = EXIT_ERROR;
    goto done;
  }
  if ((ex = cli_open(&a, &db)) != EXIT_OK) goto done;
  rc = nodup_import_csv(&r, db, a.table, a.key, a.nkey, a.where, f, NULL);
  if (r && json_format(&a)) print_json(&a, r);
  if (rc != NODUP_OK) {
    cli_error(&a, db, rc);
    ex = rc == NODUP_ERR_DUPLICATE ? EXIT_NO : cli_exit_for(rc);
    goto done;
  }
  if (!json_format(&a)) printf("imported %lld rows into %s\n", r->inserted, a.table);
done:
  cli_notice(&a, db);
  nodup_import_free(r);
  if (f && f != stdin) fclose(f);
  nodup_close(db);
  cli_args_free(&a);
  return ex;
}

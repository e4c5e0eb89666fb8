/*
 * cmd_upsert.c -- `nodup upsert`: one update-or-create from the shell.
 * Options as `nodup get-or-create` takes them, plus --create.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: nodup upsert --db URL --table T --key col[,col...] [--where SQL]\n"
    "                    --set col=value ... [--null col ...] [--create col=value ...]\n"
    "                    [--format text|json]\n"
    "\n"
    "Make the row whose key columns have the given values hold the other --set\n"
    "values: update it when it differs, create it when there is none, write\n"
    "nothing when it holds them already. Exactly one of any number of racing\n"
    "callers creates it. --set gives the key columns' values and the values to\n"
    "write on create and on update; --null sets a column to NULL the same way;\n"
    "--create gives a column's value used only when the row is created. A unique\n"
    "index must back the key exactly (see 'nodup check').\n"
    "\n"
    "Prints '<id> created', '<id> updated' or '<id> unchanged'\n"
    "(json: {\"id\": \"...\", \"created\": false, \"outcome\": \"updated\", ...}).\n"
    CLI_KEY_HELP
    "\n"
    "Exit status: 0 success, 1 key refused (no unique index backs it),\n"
    "2 other errors (another constraint's violation included).\n";

static const char *outcome_word(int outcome) {
  return outcome == NODUP_CREATED ? "created" : outcome == NODUP_UPDATED ? "updated" : "unchanged";
}

/* --create col=value, each split at its first '=' (values may hold '='). */
static int split_creates(const cli_args *a, char *copy, const char **cols, const char **vals,
                         size_t *n) {
  size_t i;
  char *p = copy;
  *n = 0;
  for (i = 0; i < a->ncreates; i++) {
    size_t len = strlen(a->creates[i]);
    char *eq;
    memcpy(p, a->creates[i], len + 1);
    if (!(eq = strchr(p, '=')) || eq == p) {
      fprintf(stderr, "nodup upsert: --create needs COLUMN=VALUE, got '%s' (run 'nodup upsert "
                      "--help')\n", a->creates[i]);
      return EXIT_ERROR;
    }
    *eq = '\0';
    cols[*n] = p;
    vals[(*n)++] = eq + 1;
    p += len + 1;
  }
  return EXIT_OK;
}

static void print_result(const cli_args *a, const nodup_key *key, const nodup_result *r,
                         int outcome) {
  if (json_format(a)) {
    fputs("{\"id\": ", stdout);
    json_string(stdout, r->id);
    printf(", \"created\": %s, \"outcome\": \"%s\", \"index\": ", r->created ? "true" : "false",
           outcome_word(outcome));
    json_string(stdout, nodup_key_index(key));
    fputs("}\n", stdout);
  } else {
    printf("%s %s\n", r->id, outcome_word(outcome));
  }
}

int cmd_upsert(int argc, char **argv) {
  static const char *const allowed[] = {"db", "table", "key", "where", "set", "null",
                                        "create", "format", NULL};
  cli_args a;
  nodup_db *db = NULL;
  nodup_key *key = NULL;
  nodup_result r;
  const char *vals[32], *scols[256], *svals[256], *ccols[64], *cvals[64];
  char *copy = NULL;
  size_t ns, nc, len = 1, i;
  int rc, outcome = 0, ex = cli_parse(argc, argv, "upsert", allowed, usage, &a);

  if (ex != EXIT_OK || a.help) goto done;
  if ((ex = cli_split_values(&a, vals, scols, svals, &ns)) != EXIT_OK) goto done;
  for (i = 0; i < a.ncreates; i++) len += strlen(a.creates[i]) + 1;
  if (!(copy = malloc(len))) {
    fputs("nodup upsert: out of memory\n", stderr);
    ex = EXIT_ERROR;
    goto done;
  }
  if ((ex = split_creates(&a, copy, ccols, cvals, &nc)) != EXIT_OK) goto done;
  if ((ex = cli_open(&a, &db)) != EXIT_OK) goto done;
  rc = nodup_key_prepare(&key, db, a.table, a.key, a.nkey, a.where);
  if (rc == NODUP_OK)
    rc = nodup_update_or_create(key, vals, ccols, cvals, nc, scols, svals, ns, &r, &outcome);
  if (rc != NODUP_OK) {
    cli_error(&a, db, rc);
    ex = cli_exit_for(rc);
    goto done;
  }
  print_result(&a, key, &r, outcome);
done:
  cli_notice(&a, db);
  nodup_key_free(key);
  nodup_close(db);
  free(copy);
  cli_args_free(&a);
  return ex;
}

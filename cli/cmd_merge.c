/*
 * cmd_merge.c -- `nodup merge`: merge a key's duplicates, re-pointing every
 * reference, set-based, in atomic batches.
 */
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: nodup merge --db URL --table T --key col[,col...] [--where SQL]\n"
    "                   [--keep ORDER] [--ref TABLE(COL[,COL]) ...] [--one-to-one merge|fail]\n"
    "                   [--batch N] [--dry-run] [--no-archive] [--format text|json]\n"
    "\n"
    "Merge every group of rows sharing the key into one row: the first by --keep\n"
    "(an ORDER BY over T's columns, e.g. \"created_at ASC\"; default: primary key).\n"
    "Every reference to the other rows is re-pointed to it: foreign keys found in\n"
    "the catalog, and --ref for references the catalog cannot see. Rows of a\n"
    "referencing table that would then collide in one of its unique indexes (link\n"
    "tables, one-to-one children) are merged the same way, recursively;\n"
    "--one-to-one fail stops instead when a one-to-one child would collide.\n"
    "Nothing is deleted while anything still references it. Deleted rows are kept\n"
    "as JSON in the table nodup_archive (unless --no-archive), under the run id.\n"
    "\n"
    "Each batch of --batch groups (default 1000) is one transaction: interrupted,\n"
    "the database stays consistent, and running the same merge again finishes it.\n"
    "--dry-run does everything in one transaction, reports, and rolls back.\n"
    "\n"
    "Exit status: 0 success, 2 error (the failing batch is rolled back).\n";

int cmd_merge(int argc, char **argv) {
  static const char *const allowed[] = {"db", "table", "key", "where", "keep", "ref",
                                        "one-to-one", "batch", "dry-run", "no-archive",
                                        "format", NULL};
  cli_args a;
  nodup_db *db = NULL;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  size_t i;
  int rc, ex = cli_parse(argc, argv, "merge", allowed, usage, &a);

  if (ex != EXIT_OK || a.help) goto done;
  if ((ex = cli_open(&a, &db)) != EXIT_OK) goto done;
  memset(&opt, 0, sizeof opt);
  opt.keep = a.keep;
  opt.refs = a.refs;
  opt.nrefs = a.nrefs;
  opt.batch = (size_t)a.batch;
  opt.dry_run = a.dry_run;
  opt.no_archive = a.no_archive;
  opt.one_to_one = a.one_to_one && !strcmp(a.one_to_one, "fail") ? NODUP_ONE_TO_ONE_FAIL
                                                                  : NODUP_ONE_TO_ONE_MERGE;
  rc = nodup_merge(&r, db, a.table, a.key, a.nkey, a.where, &opt);
  if (rc != NODUP_OK) {
    cli_error(&a, db, rc);
    ex = EXIT_ERROR;
    goto done;
  }
  if (json_format(&a)) {
    printf("{\"run\": ");
    json_string(stdout, r->run);
    printf(", \"dry_run\": %s, \"groups\": %lld, \"batches\": %lld, \"self_references\": %lld, "
           "\"tables\": [",
           a.dry_run ? "true" : "false", r->groups, r->batches, r->self_references);
    for (i = 0; i < r->ntables; i++) {
      fputs(i ? ", {\"table\": " : "{\"table\": ", stdout);
      json_string(stdout, r->tables[i].table);
      printf(", \"repointed\": %lld, \"deleted\": %lld}", r->tables[i].repointed,
             r->tables[i].deleted);
    }
    fputs("]}\n", stdout);
  } else {
    printf("%s run %s: %lld duplicate groups merged in %lld batch(es)\n",
           a.dry_run ? "dry run (rolled back)" : "merge", r->run, r->groups, r->batches);
    for (i = 0; i < r->ntables; i++)
      printf("  %s: %lld re-pointed, %lld deleted\n", r->tables[i].table,
             r->tables[i].repointed, r->tables[i].deleted);
    if (r->self_references)
      printf("warning: %lld kept row(s) now reference themselves\n", r->self_references);
  }
done:
  nodup_merge_free(r);
  nodup_close(db);
  cli_args_free(&a);
  return ex;
}

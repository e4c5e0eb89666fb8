/*
 * cmd_merge.c -- `nodup merge`: merge a key's duplicates, re-pointing every
 * reference, set-based, in atomic batches.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "usage: nodup merge --db URL --table T --key col[,col...] [--where SQL] [--nulls-equal]\n"
    "                   [--keep ORDER] [--fill-nulls] [--ref 'TABLE(COL[,COL]) [WHERE SQL]' ...]\n"
    "                   [--ignore-ref TABLE(COL) ...]\n"
    "                   [--column [TABLE.]COL=POLICY ...]\n"
    "                   [--one-to-one merge|keep|fail] [--batch N] [--dry-run]\n"
    "                   [--no-archive] [--no-temp-index | --keep-temp-index]\n"
    "                   [--journal SCHEMA] [--format text|json]\n"
    "       nodup merge --db URL --resume RUN [--journal SCHEMA] [--format text|json]\n"
    "\n"
    "Merge every group of rows sharing the key into one row: the first by --keep\n"
    "(an ORDER BY over T's columns, e.g. \"created_at ASC\"; default: primary key).\n"
    "Every reference to the other rows is re-pointed to it: foreign keys found in\n"
    "the catalog, and --ref for references the catalog cannot see. Rows of a\n"
    "referencing table that would then collide in one of its unique indexes (link\n"
    "tables, one-to-one children) are merged the same way, recursively. For\n"
    "one-to-one children: merge (default) merges them like any duplicates, keep\n"
    "leaves the kept row's child as it is, fail stops before changing anything.\n"
    "Nothing is deleted while anything still references it.\n"
    "\n"
    "References the catalog does not declare: on PostgreSQL a partition that\n"
    "lacks the foreign key its sibling partitions declare is re-pointed too (the\n"
    "report marks it 'inferred'). Suspected references ('nodup scan' lists them:\n"
    "columns named like a declared foreign key's or T_id, Django generic relations,\n"
    "Rails polymorphic ones) are counted before anything changes: while one points\n"
    "at a row the merge would delete, it refuses (exit 2, nothing changed), naming\n"
    "each, until it is re-pointed or left on purpose:\n"
    "  --ref 'T(C)'             re-point T.C like a foreign key to T's primary key\n"
    "  --ref 'T(C) WHERE SQL'   only T's rows where SQL holds (one expression on T),\n"
    "                           for a polymorphic reference:\n"
    "                           --ref 'comment(object_id) WHERE content_type_id = 7'\n"
    "  --ignore-ref 'T(C)'      leave T.C as it is (its rows keep the old ids)\n"
    "The messages give the exact --ref (Django: the content type id read from\n"
    "django_content_type; Rails: WHERE x_type = 'ClassName').\n"
    "\n"
    "  --nulls-equal  rows whose key holds NULLs are duplicates too (default: not,\n"
    "                 as a unique index allows them)\n"
    "  --fill-nulls   the kept row's NULL columns take the first non-NULL value of\n"
    "                 the others, in --keep order (--column ...=first-non-null for\n"
    "                 every nullable column, at every level)\n"
    "  --column COL=POLICY, --column TABLE.COL=POLICY\n"
    "                 which value the kept row keeps in COL: its own (keeper, the\n"
    "                 default), first-non-null, max, min, sum, longest (as text), or\n"
    "                 newest(ORDERCOL): the value of the row with the greatest\n"
    "                 ORDERCOL (NULLs last); ties go to the kept row, then --keep\n"
    "                 order. Chosen among the kept row and the rows merged into it.\n"
    "                 TABLE.COL: a table whose colliding rows are merged (a link\n"
    "                 table, a one-to-one child): its surviving row. Not for a key,\n"
    "                 primary key or (TABLE) unique index column; repeatable;\n"
    "                 overrides --fill-nulls for its column; undo restores it.\n"
    "                 The report names, per table, the columns in which deleted\n"
    "                 colliding rows held other values than the row that stayed.\n"
    "  --no-archive   do not archive deleted rows nor log changed ones (no undo)\n"
    "  --no-temp-index  do not index referencing columns that have no index. By\n"
    "                 default each such reference (scan shows them) gets a temporary\n"
    "                 index nodup_fk_<hash> first (PostgreSQL: CONCURRENTLY, writers go\n"
    "                 on), since every deleted row's check reads an unindexed\n"
    "                 referencing table whole; it is dropped at the end\n"
    "  --keep-temp-index  keep those indexes\n"
    "\n"
    "The run is recorded in the journal (nodup_runs; deleted rows go to nodup_archive\n"
    "as JSON, changed references to nodup_log), so 'nodup undo --run RUN' can put it\n"
    "all back and 'nodup runs' lists it. On PostgreSQL the journal has a schema of\n"
    "its own, created by the first merge that passes its checks (never by a refused\n"
    "one): nodup, or --journal SCHEMA (give the same to undo and runs). SQLite keeps\n"
    "it in the database file's nodup_* tables.\n"
    "Each batch is one transaction, holding its rows' locks until it commits:\n"
    "about half a second each by default (the first takes 1000 groups, the next\n"
    "as many as the batches so far merged in that time), or --batch N groups.\n"
    "Interrupted, the database stays consistent, and --resume RUN (or the same\n"
    "merge again) finishes it. --dry-run does everything in one transaction,\n"
    "reports, and rolls back. A progress bar goes to stderr when it is a terminal.\n"
    "\n"
    CLI_KEY_HELP
    "\n"
    "Exit status: 0 success, 2 error (the failing batch is rolled back).\n";

static void progress_bar(void *ctx, long long done, long long total) {
  int width = 40, fill = total > 0 ? (int)(done * width / total) : width;
  (void)ctx;
  if (fill > width) fill = width;
  fprintf(stderr, "\r[%.*s%*s] %lld/%lld groups", fill,
          "########################################", width - fill, "", done, total);
  if (done >= total) fputc('\n', stderr);
  fflush(stderr);
}

/* "undo with: nodup undo --db DB --run RUN", DB without its password (the
 * undo finds it where the merge did: PGPASSWORD, ~/.pgpass). */
static void print_undo_line(const cli_args *a, const char *run) {
  size_t size = strlen(a->db) + 1;
  char *db = malloc(size);
  fputs("undo with: nodup undo --db ", stdout);
  if (db && nodup_url_redact(db, size, a->db) >= 0) cli_shell_word(stdout, db);
  else fputs("URL", stdout);
  fputs(" --run ", stdout);
  cli_shell_word(stdout, run);
  putchar('\n');
  free(db);
}

/* "; collided rows held other values in role (3 rows), note (1 row): ...":
 * what deleted colliding rows held that the surviving row may not. */
static void print_differed(const nodup_merge_table *t) {
  size_t j;
  if (!t->ndiffered) return;
  fputs("; collided rows held other values in ", stdout);
  for (j = 0; j < t->ndiffered; j++) {
    fputs(j ? ", " : "", stdout);
    cli_shell_word(stdout, t->differed[j].column);
    printf(" (%lld row%s)", t->differed[j].rows, t->differed[j].rows == 1 ? "" : "s");
  }
  fputs(": the surviving row kept its own unless --column set a policy (the rows are "
        "archived)", stdout);
}

/* One entry of the JSON report's "tables" list. Plain names: a JSON reader
 * should not have to parse SQL quoting. */
static void print_json_table(const nodup_merge_table *t) {
  size_t j;
  fputs("{\"schema\": ", stdout);
  json_string(stdout, t->table_schema);
  fputs(", \"table\": ", stdout);
  json_string(stdout, t->table_name);
  printf(", \"repointed\": %lld, \"deleted\": %lld, \"filled\": %lld, \"inferred\": %s, "
         "\"differed\": {",
         t->repointed, t->deleted, t->filled, t->inferred ? "true" : "false");
  for (j = 0; j < t->ndiffered; j++) {
    if (j) fputs(", ", stdout);
    json_string(stdout, t->differed[j].column);
    printf(": %lld", t->differed[j].rows);
  }
  fputs("}}", stdout);
}

/* --format json: the whole report as one object on one line. */
static void print_json_report(const cli_args *a, const nodup_merge_report *r) {
  size_t i;
  printf("{\"run\": ");
  json_string(stdout, r->run[0] ? r->run : NULL);
  printf(", \"dry_run\": %s, \"groups\": %lld, \"batches\": %lld, \"self_references\": %lld, "
         "\"tables\": [",
         a->dry_run ? "true" : "false", r->groups, r->batches, r->self_references);
  for (i = 0; i < r->ntables; i++) {
    if (i) fputs(", ", stdout);
    print_json_table(&r->tables[i]);
  }
  fputs("], \"temp_indexes\": ", stdout);
  json_string(stdout, r->temp_indexes);
  fputs("}\n", stdout);
}

/* --format text: a summary line, a line per table, warnings, the undo line. */
static void print_text_report(const cli_args *a, const nodup_merge_report *r) {
  size_t i;
  /* A dry run's id names nothing (rolled back): none is shown. */
  if (r->run[0])
    printf("merge run %s: %lld duplicate groups merged in %lld batch(es)\n", r->run,
           r->groups, r->batches);
  else
    printf("dry run (rolled back): %lld duplicate groups merged in %lld batch(es)\n",
           r->groups, r->batches);
  for (i = 0; i < r->ntables; i++) {
    printf("  %s: %lld re-pointed, %lld deleted", r->tables[i].table, r->tables[i].repointed,
           r->tables[i].deleted);
    if (r->tables[i].filled) printf(", %lld filled", r->tables[i].filled);
    if (r->tables[i].inferred)
      printf(" (inferred reference: its sibling partitions declare the foreign key)");
    print_differed(&r->tables[i]);
    putchar('\n');
  }
  if (r->self_references)
    printf("warning: %lld kept row(s) now reference themselves\n", r->self_references);
  if (r->temp_indexes)
    printf("%s unindexed references: %s\n",
           a->keep_temp_index ? "indexed (kept)" : "temporarily indexed", r->temp_indexes);
  if (r->run[0] && !a->no_archive && r->groups) print_undo_line(a, r->run);
}

int cmd_merge(int argc, char **argv) {
  static const char *const allowed[] = {"db", "table", "key", "where", "keep", "ref",
                                        "ignore-ref", "column", "one-to-one", "batch", "dry-run", "no-archive",
                                        "nulls-equal", "fill-nulls", "resume", "format",
                                        "journal", "no-temp-index", "keep-temp-index", NULL};
  cli_args a;
  nodup_db *db = NULL;
  nodup_merge_report *r = NULL;
  nodup_merge_options opt;
  int rc, ex = cli_parse(argc, argv, "merge", allowed, usage, &a);

  if (ex != EXIT_OK || a.help) goto done;
  if ((ex = cli_open(&a, &db)) != EXIT_OK) goto done;
  cli_merge_options(&a, &opt);
  opt.dry_run = a.dry_run;
  opt.nulls_equal = a.nulls_equal;
  if (isatty(STDERR_FILENO)) opt.progress = progress_bar;
  rc = a.resume ? nodup_merge_resume(&r, db, a.run, &opt)
                : nodup_merge(&r, db, a.table, a.key, a.nkey, a.where, &opt);
  if (rc != NODUP_OK) {
    cli_error(&a, db, rc);
    ex = EXIT_ERROR;
    goto done;
  }
  if (r->foreign_keys_off)
    fprintf(stderr, "nodup merge: warning: PRAGMA foreign_keys is off on this connection: "
                    "the database may hold dangling references (the merge re-pointed every "
                    "declared one regardless)\n");
  if (json_format(&a)) print_json_report(&a, r);
  else print_text_report(&a, r);
done:
  cli_notice(&a, db);
  nodup_merge_free(r);
  nodup_close(db);
  cli_args_free(&a);
  return ex;
}

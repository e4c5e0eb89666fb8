/*
 * cmd_enforce.c -- `nodup enforce`: the unique index, with no window.
 */
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: nodup enforce --db URL --table T --key col[,col...] [--where SQL]\n"
    "                     [--nulls-equal] [--name INDEX] [--online] [--lock-timeout MS]\n"
    "                     [--merge [--keep ORDER] [--fill-nulls] [--ref 'TABLE(COL) [WHERE SQL]'...]\n"
    "                              [--ignore-ref TABLE(COL)...]\n"
    "                              [--column [TABLE.]COL=POLICY...]\n"
    "                              [--one-to-one merge|keep|fail] [--batch N] [--no-archive]\n"
    "                              [--no-temp-index | --keep-temp-index]]\n"
    "                     [--dry-run] [--journal SCHEMA] [--format text|json]\n"
    "       nodup enforce --abort --db URL --table T --key col[,col...] [--name INDEX]\n"
    "                     [--lock-timeout MS] [--format text|json]\n"
    "\n"
    "End with a unique index on the key (partial with --where; NULLS NOT DISTINCT\n"
    "with --nulls-equal, PostgreSQL 15+ only) and, on PostgreSQL for a key without\n"
    "--where, a UNIQUE constraint using it. Duplicates are refused (exit 1, with the\n"
    "largest groups) unless --merge, which merges them as 'nodup merge' does\n"
    "(--ref, --ignore-ref and --column as there: it refuses while a suspected reference\n"
    "points at a row it would delete; the run is recorded in the merge journal,\n"
    "on PostgreSQL in schema nodup or --journal SCHEMA, as 'nodup merge --help' says).\n"
    "With --merge the duplicates that exist are merged first, in batches, with no\n"
    "table lock (referencing columns without an index get a temporary one first:\n"
    "see 'nodup merge --help'); then no writer can add a duplicate between the\n"
    "last clean-up and the index:\n"
    "  SQLite      one BEGIN IMMEDIATE transaction holds the rest of the merge and\n"
    "              the index.\n"
    "  PostgreSQL  LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE (readers go on,\n"
    "              writers wait) around the duplicates made meanwhile, index and\n"
    "              constraint; a lock not granted within --lock-timeout (default\n"
    "              2000 ms) is retried. The report gives how long it was held.\n"
    "  --online    PostgreSQL, for tables too big to block: merge in batches, a\n"
    "              temporary trigger refuses new duplicates, CREATE UNIQUE INDEX\n"
    "              CONCURRENTLY (retried, then the locked mode), trigger dropped.\n"
    "A partitioned table (PostgreSQL) needs the partition key in the key; online,\n"
    "each partition's index is built CONCURRENTLY, then one short ADD CONSTRAINT\n"
    "attaches them.\n"
    "An index that already backs the key is reported and nothing is changed.\n"
    "\n"
    "An --online run that is interrupted (client killed, server restarted) can\n"
    "leave its guard trigger and function, which make writers of one key wait for\n"
    "each other and refuse a key already in the table (SQLSTATE 23505), and an\n"
    "INVALID index, still updated by every write. Every nodup command on the key\n"
    "says so (a warning, or in its error). Running enforce again removes them\n"
    "first and finishes; a failed run's message lists what is left.\n"
    "  --abort     PostgreSQL: only remove what an interrupted --online run left\n"
    "              for this key: its guard trigger and function, INVALID unique\n"
    "              indexes on the key's columns, the partition indexes it built\n"
    "              that no parent index uses, and guard functions of any table\n"
    "              that no trigger uses. Nothing else changes (a valid index that\n"
    "              backs the key stays); prints what it removed; running it again\n"
    "              removes nothing. Refused while that run is alive in another\n"
    "              backend (the message names it).\n"
    "\n"
    CLI_KEY_HELP
    "\n"
    "Exit status: 0 the key is enforced (--abort: removed, or nothing to remove),\n"
    "1 refused (duplicates exist), 2 error.\n";

/* Refused: show what is in the way, as nodup scan would. */
static void show_groups(const cli_args *a, nodup_db *db) {
  nodup_scan_report *s = NULL;
  nodup_scan_options so;
  size_t i, j;
  memset(&so, 0, sizeof so);
  so.nulls_equal = a->nulls_equal;
  so.limit = 10;
  if (nodup_scan(&s, db, a->table, a->key, a->nkey, a->where, &so) == NODUP_OK) {
    fprintf(stderr, "largest duplicate groups (of %lld):\n", s->groups);
    for (i = 0; i < s->nlargest; i++) {
      fprintf(stderr, "  %6lld rows  ", s->largest[i].rows);
      for (j = 0; j < s->nkey; j++)
        fprintf(stderr, "%s%s", j ? " | " : "",
                s->largest[i].values[j] ? s->largest[i].values[j] : "NULL");
      fputc('\n', stderr);
    }
  }
  nodup_scan_free(s);
}

static void print_json(const cli_args *a, nodup_db *db, const nodup_enforce_report *r) {
  printf("{\"index\": ");
  json_string(stdout, r->index);
  printf(", \"already\": %s, \"constraint\": %s, \"dry_run\": %s, \"merged_groups\": %lld, "
         "\"run\": ",
         r->already ? "true" : "false", r->constraint ? "true" : "false",
         a->dry_run ? "true" : "false", r->merged_groups);
  json_string(stdout, r->run[0] ? r->run : NULL);
  printf(", \"builds\": %d, \"fell_back\": %s, \"abort\": %s, \"removed\": ", r->builds,
         r->fell_back ? "true" : "false", a->abort ? "true" : "false");
  json_string(stdout, r->removed);
  printf(", \"lock_ms\": %.1f, \"temp_indexes\": ", r->lock_ms);
  json_string(stdout, r->temp_indexes);
  fputs(", \"notice\": ", stdout);
  json_string(stdout, nodup_notice(db));
  fputs("}\n", stdout);
}

static void print_text(const cli_args *a, const nodup_enforce_report *r) {
  if (a->abort) {
    /* What went, and (as a warning) what stays. */
    if (r->removed)
      printf("removed what an interrupted `nodup enforce --online` left: %s\n", r->removed);
    else
      printf("nothing to remove: no guard trigger or function, INVALID index or partition "
             "index of an interrupted `nodup enforce --online` for this key on %s\n", a->table);
  } else if (r->already) {
    if (r->removed)
      printf("removed what an interrupted `nodup enforce --online` left: %s\n", r->removed);
    printf("already enforced by index %s%s\n", r->index,
           r->removed ? "" : ": nothing changed");
  } else {
    if (r->removed)
      printf("removed what an interrupted `nodup enforce --online` left: %s\n", r->removed);
    printf("%s unique index %s%s", a->dry_run ? "dry run (rolled back): would create" : "created",
           r->index, r->constraint ? " and its UNIQUE constraint" : "");
    if (r->merged_groups && r->run[0])
      printf(", after merging %lld duplicate group(s) (run %s)", r->merged_groups, r->run);
    else if (r->merged_groups)
      printf(", after merging %lld duplicate group(s)", r->merged_groups);
    if (r->fell_back) printf(" (online builds failed %d times: finished locked)", r->builds - 1);
    if (r->lock_ms > 0) printf("; lock held %.0f ms", r->lock_ms);
    putchar('\n');
    if (r->temp_indexes)
      printf("%s unindexed references: %s\n",
             a->keep_temp_index ? "indexed (kept)" : "temporarily indexed", r->temp_indexes);
  }
}

int cmd_enforce(int argc, char **argv) {
  static const char *const allowed[] = {"db", "table", "key", "where", "nulls-equal", "name",
                                        "merge", "keep", "ref", "ignore-ref", "column", "one-to-one",
                                        "batch",
                                        "fill-nulls", "no-archive", "online", "lock-timeout",
                                        "no-temp-index", "keep-temp-index",
                                        "dry-run", "format", "abort", "journal", NULL};
  cli_args a;
  nodup_db *db = NULL;
  nodup_enforce_report *r = NULL;
  nodup_enforce_options opt;
  nodup_merge_options mopt;
  int rc, ex = cli_parse(argc, argv, "enforce", allowed, usage, &a);

  if (ex != EXIT_OK || a.help) goto done;
  if (!a.merge && (a.keep || a.nrefs || a.nignore_refs || a.ncolumns || a.one_to_one ||
                   a.batch || a.fill_nulls || a.no_archive || a.no_temp_index || a.keep_temp_index)) {
    fprintf(stderr, "nodup enforce: merge options need --merge (run 'nodup enforce --help')\n");
    ex = EXIT_ERROR;
    goto done;
  }
  if (a.abort && (a.merge || a.online || a.dry_run || a.nulls_equal || a.where)) {
    fprintf(stderr, "nodup enforce: --abort only removes what an interrupted --online run "
                    "left: it takes no --merge, --online, --dry-run, --nulls-equal or --where "
                    "(run 'nodup enforce --help')\n");
    ex = EXIT_ERROR;
    goto done;
  }
  if ((ex = cli_open(&a, &db)) != EXIT_OK) goto done;
  nodup_enforce_options_init(&opt, NODUP_ENFORCE_OPTIONS_VERSION);
  cli_merge_options(&a, &mopt);
  opt.name = a.name;
  opt.nulls_equal = a.nulls_equal;
  opt.merge = a.merge;
  opt.merge_opt = &mopt;
  opt.mode = a.abort    ? NODUP_ENFORCE_ABORT
             : a.online ? NODUP_ENFORCE_ONLINE
                        : NODUP_ENFORCE_LOCKED;
  opt.lock_timeout_ms = a.lock_timeout;
  opt.dry_run = a.dry_run;
  rc = nodup_enforce(&r, db, a.table, a.key, a.nkey, a.where, &opt);
  if (rc == NODUP_ERR_DUPLICATE) {
    cli_error(&a, db, rc);
    show_groups(&a, db);
    ex = EXIT_NO;
    goto done;
  }
  if (rc != NODUP_OK) {
    cli_error(&a, db, rc);
    ex = EXIT_ERROR;
    goto done;
  }
  if (json_format(&a)) print_json(&a, db, r);
  else print_text(&a, r);
done:
  cli_notice(&a, db);
  nodup_enforce_free(r);
  nodup_close(db);
  cli_args_free(&a);
  return ex;
}

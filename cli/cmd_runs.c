/*
 * cmd_runs.c -- `nodup runs`: the merge runs the journal holds, and
 * forgetting one.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: nodup runs --db URL [--journal SCHEMA] [--format text|json]\n"
    "       nodup runs --db URL [--journal SCHEMA] --forget RUN [--format text|json]\n"
    "\n"
    "List the merge runs recorded in the journal, oldest first: id, table, key,\n"
    "state, when it started and finished, and the rows it changed (re-pointed,\n"
    "deleted and filled). Reads only.\n"
    "  running      its process is alive (on PostgreSQL without a pooler: its server\n"
    "               session; otherwise its process on this host, or a heartbeat\n"
    "               less than 5 minutes old when it runs on another)\n"
    "  interrupted  recorded as running, but its process is gone (killed, machine\n"
    "               restarted): finish it with 'nodup merge --resume RUN', or take\n"
    "               back what it did with 'nodup undo --run RUN'\n"
    "  done, failed (a batch failed and was rolled back: resume or undo it), undone\n"
    "\n"
    "  --forget RUN      delete everything the journal holds for RUN: its record,\n"
    "                    log and archived rows (and a pass table a run through a\n"
    "                    pooler left). The flag is the confirmation: RUN can no\n"
    "                    longer be resumed or undone, and the rows it deleted are\n"
    "                    gone for good. A running run is refused.\n"
    "  --journal SCHEMA  PostgreSQL: the schema holding the journal (default nodup),\n"
    "                    as given to merge, undo and enforce. Runs an earlier nodup\n"
    "                    recorded in the search path's first schema (public) are\n"
    "                    listed too, marked 'earlier journal in SCHEMA'; forgetting\n"
    "                    the last of them drops those tables. SQLite keeps the journal\n"
    "                    in the database file's nodup_* tables (no --journal).\n"
    "\n"
    "Exit status: 0 success, 2 error (a running run is not forgotten).\n";

static const char *state_of(const nodup_run_info *u) { return nodup_run_state_name(u->state); }

static void json_count(long long n) {
  if (n < 0) fputs("null", stdout);
  else printf("%lld", n);
}

static void print_json(const nodup_runs_report *r) {
  size_t i, k;
  fputs("{\"runs\": [", stdout);
  for (i = 0; i < r->nruns; i++) {
    const nodup_run_info *u = &r->runs[i];
    fputs(i ? ", {\"run\": " : "{\"run\": ", stdout);
    json_string(stdout, u->run);
    fputs(", \"table\": ", stdout);
    json_string(stdout, u->table);
    fputs(", \"key\": [", stdout);
    for (k = 0; k < u->nkey; k++) {
      if (k) fputs(", ", stdout);
      json_string(stdout, u->key[k]);
    }
    fputs("], \"state\": ", stdout);
    json_string(stdout, state_of(u));
    fputs(", \"started\": ", stdout);
    json_string(stdout, u->started);
    fputs(", \"finished\": ", stdout);
    json_string(stdout, u->finished);
    fputs(", \"heartbeat\": ", stdout);
    json_string(stdout, u->heartbeat);
    printf(", \"groups\": %lld, \"repointed\": ", u->groups);
    json_count(u->repointed);
    fputs(", \"deleted\": ", stdout);
    json_count(u->deleted);
    fputs(", \"filled\": ", stdout);
    json_count(u->filled);
    fputs(", \"changed\": ", stdout);
    json_count(u->changed);
    printf(", \"undoable\": %s, \"host\": ", u->archived ? "true" : "false");
    json_string(stdout, u->host);
    fputs(", \"pid\": ", stdout);
    if (u->pid) printf("%lld", u->pid);
    else fputs("null", stdout);
    fputs(", \"journal\": ", stdout);
    json_string(stdout, u->journal);
    printf(", \"legacy\": %s}", u->legacy ? "true" : "false");
  }
  fputs("]}\n", stdout);
}

/* One column's width: its title's or its widest value's. */
static int width(const nodup_runs_report *r, const char *title, int col) {
  size_t i, w = strlen(title);
  for (i = 0; i < r->nruns; i++) {
    const nodup_run_info *u = &r->runs[i];
    const char *v = col == 0 ? u->run : col == 1 ? u->table : col == 3 ? state_of(u)
                  : col == 4 ? u->started : u->finished;
    size_t n = v ? strlen(v) : 1, k;
    if (col == 2)
      for (n = 0, k = 0; k < u->nkey; k++) n += strlen(u->key[k]) + (k ? 1 : 0);
    if (n > w) w = n;
  }
  return (int)w;
}

static void print_text(const nodup_runs_report *r) {
  int w[6];
  size_t i, k, interrupted = 0;
  if (!r->nruns) {
    puts("no merge runs recorded");
    return;
  }
  w[0] = width(r, "run", 0);
  w[1] = width(r, "table", 1);
  w[2] = width(r, "key", 2);
  w[3] = width(r, "state", 3);
  w[4] = width(r, "started", 4);
  w[5] = width(r, "finished", 5);
  printf("%-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], "run", w[1], "table", w[2], "key",
         w[3], "state", w[4], "started", w[5], "finished", "changed");
  for (i = 0; i < r->nruns; i++) {
    const nodup_run_info *u = &r->runs[i];
    int used = 0;
    printf("%-*s  %-*s  ", w[0], u->run, w[1], u->table);
    for (k = 0; k < u->nkey; k++) used += printf("%s%s", k ? "," : "", u->key[k]);
    printf("%*s  %-*s  %-*s  %-*s  ", w[2] - used, "", w[3], state_of(u), w[4],
           u->started ? u->started : "-", w[5], u->finished ? u->finished : "-");
    if (u->changed < 0) fputs("?", stdout);
    else printf("%lld", u->changed);
    if (u->state == NODUP_RUN_RUNNING && u->host)
      printf("  (process %lld on %s)", u->pid, u->host);
    if (u->legacy) printf("  (earlier journal in %s)", u->journal ? u->journal : "?");
    putchar('\n');
    interrupted += u->state == NODUP_RUN_INTERRUPTED || u->state == NODUP_RUN_FAILED;
  }
  if (interrupted)
    puts("interrupted or failed runs: finish with 'nodup merge --resume RUN', take back with "
         "'nodup undo --run RUN', or drop their journal with 'nodup runs --forget RUN'");
}

int cmd_runs(int argc, char **argv) {
  static const char *const allowed[] = {"db", "journal", "forget", "format", NULL};
  cli_args a;
  nodup_db *db = NULL;
  nodup_runs_report *r = NULL;
  int rc, ex = cli_parse(argc, argv, "runs", allowed, usage, &a);

  if (ex != EXIT_OK || a.help) goto done;
  if (a.forget && !*a.run) {
    fprintf(stderr, "nodup runs: --forget needs a run id (run 'nodup runs --help')\n");
    ex = EXIT_ERROR;
    goto done;
  }
  if ((ex = cli_open(&a, &db)) != EXIT_OK) goto done;
  if (a.forget) {
    if ((rc = nodup_runs_forget(db, a.run)) != NODUP_OK) {
      cli_error(&a, db, rc);
      ex = EXIT_ERROR;
      goto done;
    }
    if (json_format(&a)) {
      fputs("{\"forgot\": ", stdout);
      json_string(stdout, a.run);
      fputs("}\n", stdout);
    } else {
      printf("forgot merge run %s: its journal is deleted; it can no longer be resumed or "
             "undone\n",
             a.run);
    }
    goto done;
  }
  if ((rc = nodup_runs_list(&r, db)) != NODUP_OK) {
    cli_error(&a, db, rc);
    ex = EXIT_ERROR;
    goto done;
  }
  if (json_format(&a)) print_json(r);
  else print_text(r);
done:
  nodup_runs_free(r);
  nodup_close(db);
  cli_args_free(&a);
  return ex;
}

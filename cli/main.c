/*
 * main.c -- the nodup command: dispatch to one file per command.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: nodup COMMAND [OPTIONS]\n"
    "\n"
    "Create database rows exactly once, on SQLite and PostgreSQL.\n"
    "\n"
    "Commands:\n"
    "  get-or-create  return the row for a key, creating it exactly once\n"
    "  upsert         set a key's row's values: update it, or create it exactly once\n"
    "  check          does a unique index back this key? (prints the DDL if not)\n"
    "  race           N concurrent workers create rows on shared keys, then count duplicates\n"
    "  scan           list a key's duplicates and what merging them would touch\n"
    "  merge          merge a key's duplicates into one row each, re-pointing every reference\n"
    "  undo           put back what a merge run changed\n"
    "  runs           list merge runs (running, interrupted, done...), or forget one\n"
    "  enforce        add the unique index, with no window for writers to add duplicates\n"
    "  exec           run SQL statements (setup scripts, demos)\n"
    "  slug           insert a row with a unique slug made from a text (my-team, my-team-2...)\n"
    "  import         insert every row of a CSV file in one transaction, or none\n"
    "\n"
    "Every command takes --db URL (default: $NODUP_DB): a file path or sqlite:PATH\n"
    "(SQLite; the file must exist, or use file:PATH?mode=rwc), postgres://... or a\n"
    "libpq conninfo string (PostgreSQL). Keys are named the same way everywhere:\n"
    "--table T --key col[,col...] [--where SQL].\n"
    "\n"
    "Run 'nodup COMMAND --help' for a command's options.\n"
    "Exit status: 0 success, 1 a refusal (key not backed, duplicates found), 2 error.\n";

static int dispatch(const char *cmd, int argc, char **argv) {
  if (!strcmp(cmd, "get-or-create")) return cmd_get_or_create(argc, argv);
  if (!strcmp(cmd, "upsert")) return cmd_upsert(argc, argv);
  if (!strcmp(cmd, "check")) return cmd_check(argc, argv);
  if (!strcmp(cmd, "race")) return cmd_race(argc, argv);
  if (!strcmp(cmd, "exec")) return cmd_exec(argc, argv);
  if (!strcmp(cmd, "slug")) return cmd_slug(argc, argv);
  if (!strcmp(cmd, "scan")) return cmd_scan(argc, argv);
  if (!strcmp(cmd, "merge")) return cmd_merge(argc, argv);
  if (!strcmp(cmd, "import")) return cmd_import(argc, argv);
  if (!strcmp(cmd, "undo")) return cmd_undo(argc, argv);
  if (!strcmp(cmd, "enforce")) return cmd_enforce(argc, argv);
  if (!strcmp(cmd, "runs")) return cmd_runs(argc, argv);
  fprintf(stderr, "nodup: unknown command '%s' (run 'nodup --help')\n", cmd);
  return EXIT_ERROR;
}

int main(int argc, char **argv) {
  const char *cmd = argc > 1 ? argv[1] : NULL;
  if (cmd && !strcmp(cmd, "help") && argc > 2) {
    char *hargv[] = {argv[2], "--help", NULL};
    return dispatch(argv[2], 2, hargv);
  }
  if (!cmd || !strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    fputs(usage, cmd ? stdout : stderr);
    return cmd ? EXIT_OK : EXIT_ERROR;
  }
  if (!strcmp(cmd, "--version")) {
    printf("nodup %s\n", NODUP_VERSION);
    return EXIT_OK;
  }
  return dispatch(cmd, argc - 1, argv + 1);
}

/*
 * cli.h -- what the nodup command's files share.
 *
 * The tool uses only the public API (nodup.h), like curl's src/ uses only
 * libcurl. Exit statuses are documented per command; in general 0 = done,
 * 1 = the answer is "no" (key not backed, duplicates exist), 2 = error.
 */
#ifndef NODUP_CLI_H
#define NODUP_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "nodup.h"

enum { EXIT_OK = 0, EXIT_NO = 1, EXIT_ERROR = 2 };

/* The --key paragraph of every command's --help that takes a key. */
#define CLI_KEY_HELP                                                                  \
  "--key lists the key's terms, split at commas outside parentheses and double\n"   \
  "quotes; give it again to add more. A term is a column, or a column inside\n"     \
  "lower, upper, trim, ltrim or rtrim (--key 'lower(trim(email)),org_id'), backed\n" \
  "by a unique index on that expression; its value is the column's, given under\n" \
  "the column's name (--set email=Ann@X.org). A name that is a column is that\n"    \
  "column, parentheses or not.\n"

/* Options of every command; each command says which it accepts. */
typedef struct cli_args {
  const char *cmd;
  const char *db;
  const char *table;
  const char *where;
  const char *format;     /* "text" (default) or "json" */
  char *keylist;          /* owned copy of --key, split in place */
  const char *key[32];
  size_t nkey;
  const char *set_cols[256];
  const char *set_vals[256];  /* NULL for --null */
  size_t nset;
  int workers, keys, ops, naive, processes;
  int nulls_equal, limit;
  const char *keep, *one_to_one;
  int batch, dry_run, no_archive, fill_nulls;
  int no_temp_index, keep_temp_index;   /* merge, enforce --merge: fkindex */
  const char *run;        /* --run ID (undo) or --resume ID (merge) */
  int resume;
  int merge, online, lock_timeout;  /* enforce */
  int abort;              /* enforce --abort */
  const char *name;       /* enforce --name INDEX */
  const char *refs[64];   /* --ref TABLE(COL[,COL]) [WHERE cond] */
  const char *csv;        /* --csv FILE, "-" for stdin */
  size_t nrefs;
  int help;
  const char *pos[64];    /* positional arguments */
  size_t npos;
  const char *ignore_refs[64];  /* --ignore-ref TABLE(COL) */
  size_t nignore_refs;
  const char *columns[64];  /* --column [TABLE.]COL=POLICY (merge, enforce --merge) */
  size_t ncolumns;
  const char *journal;    /* --journal SCHEMA (merge, undo, runs, enforce): cli_open sets it */
  int forget;             /* runs --forget RUN (the id in `run`) */
  const char *creates[64];  /* --create COL=VALUE (upsert), split by the command */
  size_t ncreates;
} cli_args;

/* Parse argv[1..] for command `cmd`, accepting only the options in
 * `allowed` (names without "--", e.g. "db", "table"). Prints a usage error
 * and returns EXIT_ERROR on bad input, EXIT_OK otherwise. */
int cli_parse(int argc, char **argv, const char *cmd, const char *const *allowed,
              const char *usage, cli_args *a);
void cli_args_free(cli_args *a);

/* Split a comma list option (--key, --scope) into at most `max` names,
 * trimmed of ASCII whitespace, in place in a new copy of `value` kept in
 * *copy (freed first; the caller frees it). An empty list or element is
 * refused with a message naming --option and the value, on stderr.
 * Returns EXIT_OK or EXIT_ERROR. */
int cli_split_list(const char *cmd, const char *option, const char *value, char **copy,
                   const char **items, size_t max, size_t *n);

/* The merge options the merge options flags give (merge, enforce --merge):
 * --keep, --ref, --ignore-ref, --column, --batch, --fill-nulls,
 * --no-archive, --no-temp-index, --keep-temp-index, --one-to-one. */
void cli_merge_options(const cli_args *a, nodup_merge_options *opt);

/* Report a library failure on stderr: "nodup CMD: message". */
void cli_error(const cli_args *a, nodup_db *db, int rc);
/* Print nodup_notice(db), if any and not in nodup_errmsg(db) already, on
 * stderr: "nodup CMD: warning: ..." (notice.c). Every command that names a
 * key calls it last; db may be NULL. */
void cli_notice(const cli_args *a, const nodup_db *db);
/* Exit status for a library code: UNBACKED -> 1, others -> 2. */
int cli_exit_for(int rc);

/* Open --db (or $NODUP_DB); prints the error itself. */
int cli_open(const cli_args *a, nodup_db **db);
/* cli_open with nodup_open_ext flags: read-only commands (check, scan)
 * pass NODUP_OPEN_READONLY so they never change the database file. */
int cli_open_ext(const cli_args *a, nodup_db **db, unsigned flags);
/* Whether --set col gives key term `term`'s value: col is the term, or
 * the column the term is over (email for lower(trim("email"))). */
int cli_set_is_key(const char *term, const char *col);
/* Split --set/--null into key values (in --key order) and defaults; a key
 * term's value is given under its column's name (--set email=... for
 * lower(email)). */
int cli_split_values(const cli_args *a, const char **vals, const char **dcols,
                     const char **dvals, size_t *nd);

void json_string(FILE *f, const char *s);
/* Print s as one shell word, so a line the tool suggests can be pasted: as
 * it is when no shell gives any of its characters a meaning, else quoted
 * (double quotes around a single quote when nothing inside expands). */
void cli_shell_word(FILE *f, const char *s);
int json_format(const cli_args *a);

/* get-or-create --csv: the keys (and defaults) of a->csv's rows, through
 * nodup_get_or_create_many(); prints `id,created` per row. An exit status. */
int cli_get_or_create_csv(const cli_args *a, nodup_db *db, nodup_key *key);

int cmd_get_or_create(int argc, char **argv);
int cmd_upsert(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_race(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_slug(int argc, char **argv);
int cmd_scan(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_undo(int argc, char **argv);
int cmd_enforce(int argc, char **argv);
int cmd_runs(int argc, char **argv);

#endif

/*
 * cmd_slug.c -- `nodup slug`: insert a row with a unique slug made from a
 * text, and print the slug and the row's id.
 *
 * The options shared with other commands (--db, --table, --set, --null,
 * --format) go through cli_parse; the slug's own (--column, --from,
 * --scope, --max-length, --fallback, --reserve) are taken out of argv
 * first.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define SLUG_MAX_SCOPE 31
#define SLUG_MAX_RESERVED 64

static const char usage[] =
    "usage: nodup slug --db URL --table T --column C --from TEXT\n"
    "                  [--scope col[,col...]] [--set col=value ...] [--null col ...]\n"
    "                  [--max-length N] [--fallback SLUG] [--reserve WORD ...]\n"
    "                  [--format text|json]\n"
    "\n"
    "Insert a row whose column C holds a unique slug made from TEXT (\"My Team\" ->\n"
    "my-team, then my-team-2, my-team-3...: the highest taken suffix + 1), race-free\n"
    "and in a constant number of statements however many copies exist. Text in any\n"
    "script is transliterated to ASCII; the slug is at most --max-length characters\n"
    "(default 50) including the suffix; text with nothing to keep gets --fallback\n"
    "(default n-a). Reserved words (default: new edit delete admin api login logout\n"
    "signup settings search; --reserve replaces the list, --reserve '' empties it)\n"
    "and all-digit slugs always get a suffix (new-2, 2024-2).\n"
    "\n"
    "--scope makes the slug unique per tenant: the scope columns' values come from\n"
    "--set, and a unique index on exactly (scope..., C) must exist. --set and --null\n"
    "give the new row's other columns.\n"
    "\n"
    "Prints '<slug> <id>' (json: {\"slug\": \"...\", \"id\": \"...\", \"attempts\": N,\n"
    "\"statements\": N}).\n"
    "Exit status: 0 success, 1 refused (no unique index on (scope..., C); the\n"
    "message has the CREATE UNIQUE INDEX), 2 other errors (another constraint's\n"
    "violation included).\n";

typedef struct slug_args {
  const char *column, *from, *fallback, *max_length;
  char *scopelist;  /* owned, split in place */
  const char *scope[SLUG_MAX_SCOPE];
  size_t nscope;
  const char *reserved[SLUG_MAX_RESERVED];
  size_t nreserved;
  int reserve_given;
} slug_args;

static int slug_bad(const char *msg, const char *what) {
  fprintf(stderr, "nodup slug: ");
  fprintf(stderr, msg, what);
  fprintf(stderr, " (run 'nodup slug --help')\n");
  return EXIT_ERROR;
}

/* Move the slug's own options from argv into s; the rest stay, in order, in
 * rest[0..*nrest). */
static int take_own(int argc, char **argv, slug_args *s, char **rest, int *nrest) {
  static const char *const own[] = {"column", "from", "scope", "max-length",
                                    "fallback", "reserve", NULL};
  int i, k;
  *nrest = 0;
  rest[(*nrest)++] = argv[0];
  for (i = 1; i < argc; i++) {
    const char *arg = argv[i], *val = NULL, *name = NULL;
    size_t len = 0;
    if (!strncmp(arg, "--", 2)) {
      const char *eq = strchr(arg + 2, '=');
      len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
      for (k = 0; own[k]; k++)
        if (strlen(own[k]) == len && !strncmp(arg + 2, own[k], len)) name = own[k];
      if (name) {
        if (eq) val = eq + 1;
        else if (i + 1 < argc) val = argv[++i];
        else return slug_bad("option '--%s' needs a value", name);
      }
    }
    if (!name) {
      rest[(*nrest)++] = argv[i];
      /* The value of a shared option may start with "--": keep it too. */
      if (!strncmp(arg, "--", 2) && !strchr(arg, '=') && strcmp(arg, "--help") &&
          strcmp(arg, "-h") && i + 1 < argc)
        rest[(*nrest)++] = argv[++i];
      continue;
    }
    if (!strcmp(name, "column")) s->column = val;
    else if (!strcmp(name, "from")) s->from = val;
    else if (!strcmp(name, "fallback")) s->fallback = val;
    else if (!strcmp(name, "max-length")) s->max_length = val;
    else if (!strcmp(name, "reserve")) {
      s->reserve_given = 1;
      if (!*val) continue;
      if (s->nreserved == SLUG_MAX_RESERVED) return slug_bad("%s", "too many --reserve words");
      s->reserved[s->nreserved++] = val;
    } else if (cli_split_list("slug", "scope", val, &s->scopelist, s->scope, SLUG_MAX_SCOPE,
                              &s->nscope) != EXIT_OK) {
      return EXIT_ERROR;
    }
  }
  rest[*nrest] = NULL;
  return EXIT_OK;
}

/* Split --set/--null into the scope values (in --scope order) and the
 * other columns. */
static int split_values(const cli_args *a, const slug_args *s, const char **svals,
                        const char **cols, const char **vals, size_t *n) {
  size_t i, j;
  *n = 0;
  for (i = 0; i < s->nscope; i++) {
    int found = 0;
    for (j = 0; j < a->nset; j++)
      if (!strcmp(a->set_cols[j], s->scope[i])) {
        svals[i] = a->set_vals[j];
        found = 1;
      }
    if (!found)
      return slug_bad("scope column '%s' has no value: give --set COLUMN=VALUE",
                      s->scope[i]);
  }
  for (j = 0; j < a->nset; j++) {
    int in_scope = 0;
    for (i = 0; i < s->nscope; i++)
      if (!strcmp(a->set_cols[j], s->scope[i])) in_scope = 1;
    if (!in_scope) {
      cols[*n] = a->set_cols[j];
      vals[(*n)++] = a->set_vals[j];
    }
  }
  return EXIT_OK;
}

int cmd_slug(int argc, char **argv) {
  static const char *const allowed[] = {"db", "table", "set", "null", "format", NULL};
  slug_args s;
  cli_args a;
  nodup_db *db = NULL;
  nodup_slug_options opt;
  nodup_slug_result r = {NULL, NULL, 0, 0};
  const char *svals[SLUG_MAX_SCOPE], *cols[256], *vals[256];
  char **rest;
  int nrest = 0, rc, ex, parsed = 0;
  size_t n;

  memset(&s, 0, sizeof s);
  memset(&opt, 0, sizeof opt);
  if (!(rest = calloc((size_t)argc + 1, sizeof *rest))) return slug_bad("%s", "out of memory");
  ex = take_own(argc, argv, &s, rest, &nrest);
  if (ex != EXIT_OK) goto done;
  ex = cli_parse(nrest, rest, "slug", allowed, usage, &a);
  parsed = 1;
  if (ex != EXIT_OK || a.help) goto done;
  if (!s.column || !*s.column) {
    ex = slug_bad("%s", "--column is required");
    goto done;
  }
  if (!s.from) {
    ex = slug_bad("%s", "--from is required");
    goto done;
  }
  if (s.max_length) {
    char *end;
    long v = strtol(s.max_length, &end, 10);
    if (!*s.max_length || *end || v <= NODUP_SLUG_SUFFIX_ROOM || v > 100000) {
      ex = slug_bad("--max-length needs a whole number above 7, not '%s'", s.max_length);
      goto done;
    }
    opt.max_length = (size_t)v;
  }
  opt.fallback = s.fallback;
  if (s.reserve_given) {
    opt.reserved = s.reserved;
    opt.nreserved = s.nreserved;
  }
  if ((ex = split_values(&a, &s, svals, cols, vals, &n)) != EXIT_OK) goto done;
  if ((ex = cli_open(&a, &db)) != EXIT_OK) goto done;
  rc = nodup_slug_create(&r, db, a.table, s.column, s.scope, svals, s.nscope, cols, vals,
                         n, s.from, &opt);
  if (rc != NODUP_OK) {
    cli_error(&a, db, rc);
    ex = cli_exit_for(rc);
    goto done;
  }
  if (json_format(&a)) {
    fputs("{\"slug\": ", stdout);
    json_string(stdout, r.slug);
    fputs(", \"id\": ", stdout);
    json_string(stdout, r.id);
    printf(", \"attempts\": %u, \"statements\": %lu}\n", r.attempts, r.statements);
  } else {
    printf("%s %s\n", r.slug, r.id);
  }
done:
  if (parsed) cli_notice(&a, db);
  nodup_slug_result_free(&r);
  nodup_close(db);
  if (parsed) cli_args_free(&a);
  free(s.scopelist);
  free(rest);
  return ex;
}

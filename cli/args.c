/*
 * args.c -- option parsing and output helpers shared by the commands.
 *
 * Hand-rolled rather than getopt_long so every command reports unknown or
 * incomplete options the same way, naming the option and the command.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int allowed_has(const char *const *allowed, const char *name) {
  for (; *allowed; allowed++)
    if (!strcmp(*allowed, name)) return 1;
  return 0;
}

static int bad(const cli_args *a, const char *fmt, const char *what) {
  fprintf(stderr, "nodup %s: ", a->cmd);
  fprintf(stderr, fmt, what);
  fprintf(stderr, " (run 'nodup %s --help')\n", a->cmd);
  return EXIT_ERROR;
}

static int positive(const cli_args *a, const char *name, const char *v, int *out) {
  char *end;
  long n = strtol(v, &end, 10);
  if (*v == '\0' || *end || n < 1 || n > 1000000000)
    return bad(a, "--%s needs a positive whole number", name);
  *out = (int)n;
  return EXIT_OK;
}

static int ascii_space(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' || ch == '\r';
}

/* The first comma outside parentheses and double quotes, or NULL: a key
 * term may be an expression, lower(trim(email)), or a quoted name with a
 * comma in it, and neither splits. */
static char *top_level_comma(char *p) {
  int depth = 0, quoted = 0;
  for (; *p; p++) {
    if (*p == '"') quoted = !quoted;   /* "" inside a name toggles twice */
    else if (quoted) continue;
    else if (*p == '(') depth++;
    else if (*p == ')' && depth) depth--;
    else if (*p == ',' && !depth) return p;
  }
  return NULL;
}

/* Names are trimmed of ASCII whitespace, so "a, b" is (a, b): a column
 * whose real name starts or ends with a space is rare enough that the
 * common typo wins. An empty element ("a,", ",a", "a,,b") is refused
 * rather than skipped, since skipping would silently make another key. */
int cli_split_list(const char *cmd, const char *option, const char *value, char **copy,
                   const char **items, size_t max, size_t *n) {
  char *p, *end, *next;
  free(*copy);
  *n = 0;
  if (!(*copy = strdup(value))) {
    fprintf(stderr, "nodup %s: out of memory\n", cmd);
    return EXIT_ERROR;
  }
  for (p = *copy; *p && ascii_space(*p); p++) {}
  if (!*p) {
    fprintf(stderr, "nodup %s: --%s needs at least one column (run 'nodup %s --help')\n", cmd,
            option, cmd);
    return EXIT_ERROR;
  }
  for (p = *copy; p; p = next) {
    if ((next = top_level_comma(p))) *next++ = '\0';
    while (ascii_space(*p)) p++;
    for (end = p + strlen(p); end > p && ascii_space(end[-1]); end--) {}
    *end = '\0';
    if (!*p) {
      fprintf(stderr, "nodup %s: --%s '%s' has an empty column name (run 'nodup %s --help')\n",
              cmd, option, value, cmd);
      return EXIT_ERROR;
    }
    if (*n == max) {
      fprintf(stderr, "nodup %s: --%s has more than %zu columns (run 'nodup %s --help')\n", cmd,
              option, max, cmd);
      return EXIT_ERROR;
    }
    items[(*n)++] = p;
  }
  return EXIT_OK;
}

/* --key may be given again: its terms follow the earlier ones'. */
static int split_key(cli_args *a, const char *v) {
  size_t len = strlen(v) + 1, i, n;
  const char *items[sizeof a->key / sizeof *a->key];
  char *joined = NULL;
  int ex;
  if (!a->nkey)
    return cli_split_list(a->cmd, "key", v, &a->keylist, a->key,
                          sizeof a->key / sizeof *a->key, &a->nkey);
  /* Checked alone first, so that a refusal quotes the value given. */
  ex = cli_split_list(a->cmd, "key", v, &joined, items, sizeof items / sizeof *items, &n);
  free(joined);
  if (ex != EXIT_OK) return ex;
  for (i = 0; i < a->nkey; i++) len += strlen(a->key[i]) + 1;
  if (!(joined = malloc(len))) {
    fprintf(stderr, "nodup %s: out of memory\n", a->cmd);
    return EXIT_ERROR;
  }
  joined[0] = '\0';
  for (i = 0; i < a->nkey; i++) {
    strcat(joined, a->key[i]);
    strcat(joined, ",");
  }
  strcat(joined, v);
  ex = cli_split_list(a->cmd, "key", joined, &a->keylist, a->key,
                      sizeof a->key / sizeof *a->key, &a->nkey);
  free(joined);
  return ex;
}

/* The column a --key term is over: the term itself, or for an expression
 * the name inside its innermost parentheses (lower(trim("Email")) ->
 * Email) and for a double-quoted name the name ("Email" -> Email),
 * written to out. */
static const char *key_column(const char *term, char *out, size_t size) {
  const char *open = strrchr(term, '('), *p, *end;
  size_t n = 0;
  if (!open && term[0] != '"') return term;
  for (p = open ? open + 1 : term; ascii_space(*p); p++) {}
  for (end = p; *end && (*end != ')' || !open); end++) {}
  while (end > p && ascii_space(end[-1])) end--;
  if (end - p >= 2 && *p == '"' && end[-1] == '"') {
    for (p++, end--; p < end && n + 1 < size; p++) {
      if (*p == '"' && p + 1 < end && p[1] == '"') p++;
      out[n++] = *p;
    }
  } else {
    for (; p < end && n + 1 < size; p++) out[n++] = *p;
  }
  out[n] = '\0';
  return out;
}

int cli_set_is_key(const char *term, const char *col) {
  char name[256];
  return !strcmp(col, term) || !strcmp(col, key_column(term, name, sizeof name));
}

static int add_set(cli_args *a, const char *v, int is_null) {
  const char *eq = is_null ? NULL : strchr(v, '=');
  char *col = NULL;
  size_t i;
  if (a->nset == 256) return bad(a, "%s", "too many --set/--null options");
  if (!is_null && (!eq || eq == v)) return bad(a, "--set needs COLUMN=VALUE, got '%s'", v);
  /* Split at the first '=': values may contain '='. The column name is a
   * private copy. */
  if (!is_null && !(col = strndup(v, (size_t)(eq - v)))) return bad(a, "%s", "out of memory");
  /* The same column twice would silently keep one of the values. Names
   * that differ only in case may be one column (SQLite) or two
   * (PostgreSQL): the library decides those against the catalog. */
  for (i = 0; i < a->nset; i++)
    if (!strcmp(a->set_cols[i], col ? col : v)) {
      int rc = bad(a, "column '%s' is given twice by --set/--null", col ? col : v);
      free(col);
      return rc;
    }
  a->set_cols[a->nset] = col ? col : v;
  a->set_vals[a->nset] = is_null ? NULL : eq + 1;
  a->nset++;
  return EXIT_OK;
}

/* The field a value-less option (--naive, --dry-run, ...) sets, or NULL when
 * `name` takes a value. */
static int *flag_field(cli_args *a, const char *name) {
  if (!strcmp(name, "naive")) return &a->naive;
  if (!strcmp(name, "processes")) return &a->processes;
  if (!strcmp(name, "nulls-equal")) return &a->nulls_equal;
  if (!strcmp(name, "dry-run")) return &a->dry_run;
  if (!strcmp(name, "no-archive")) return &a->no_archive;
  if (!strcmp(name, "fill-nulls")) return &a->fill_nulls;
  if (!strcmp(name, "merge")) return &a->merge;
  if (!strcmp(name, "online")) return &a->online;
  if (!strcmp(name, "abort")) return &a->abort;
  if (!strcmp(name, "no-temp-index")) return &a->no_temp_index;
  if (!strcmp(name, "keep-temp-index")) return &a->keep_temp_index;
  return NULL;
}

/* A repeatable option (--ref, --ignore-ref, --column): one more value in a
 * list of 64 at most. */
static int add_repeated(const cli_args *a, const char **list, size_t *n, const char *val,
                        const char *too_many) {
  if (*n == 64) return bad(a, "%s", too_many);
  list[(*n)++] = val;
  return EXIT_OK;
}

/* Store the value of option --name; an option the command allows but no
 * branch knows (such as "ARGS") is ignored, as it always was. */
static int set_value(cli_args *a, const char *name, const char *val) {
  if (!strcmp(name, "db")) a->db = val;
  else if (!strcmp(name, "table")) a->table = val;
  else if (!strcmp(name, "where")) a->where = val;
  else if (!strcmp(name, "key")) return split_key(a, val);
  else if (!strcmp(name, "set")) return add_set(a, val, 0);
  else if (!strcmp(name, "null")) return add_set(a, val, 1);
  else if (!strcmp(name, "workers")) return positive(a, name, val, &a->workers);
  else if (!strcmp(name, "keys")) return positive(a, name, val, &a->keys);
  else if (!strcmp(name, "ops")) return positive(a, name, val, &a->ops);
  else if (!strcmp(name, "limit")) return positive(a, name, val, &a->limit);
  else if (!strcmp(name, "batch")) return positive(a, name, val, &a->batch);
  else if (!strcmp(name, "keep")) a->keep = val;
  else if (!strcmp(name, "name")) a->name = val;
  else if (!strcmp(name, "lock-timeout")) return positive(a, name, val, &a->lock_timeout);
  else if (!strcmp(name, "csv")) a->csv = val;
  else if (!strcmp(name, "resume")) a->run = val, a->resume = 1;
  else if (!strcmp(name, "run")) a->run = val;
  else if (!strcmp(name, "forget")) a->run = val, a->forget = 1;
  else if (!strcmp(name, "journal")) a->journal = val;
  else if (!strcmp(name, "one-to-one")) {
    if (strcmp(val, "merge") && strcmp(val, "keep") && strcmp(val, "fail"))
      return bad(a, "--one-to-one is merge, keep or fail, not '%s'", val);
    a->one_to_one = val;
  }
  else if (!strcmp(name, "ref"))
    return add_repeated(a, a->refs, &a->nrefs, val, "too many --ref options");
  else if (!strcmp(name, "ignore-ref"))
    return add_repeated(a, a->ignore_refs, &a->nignore_refs, val,
                        "too many --ignore-ref options");
  else if (!strcmp(name, "column"))
    return add_repeated(a, a->columns, &a->ncolumns, val, "too many --column options");
  else if (!strcmp(name, "create"))
    return add_repeated(a, a->creates, &a->ncreates, val, "too many --create options");
  else if (!strcmp(name, "format")) {
    if (strcmp(val, "text") && strcmp(val, "json"))
      return bad(a, "--format is text or json, not '%s'", val);
    a->format = val;
  }
  return EXIT_OK;
}

/* After the last option: what the command needs and did not get. */
static int check_required(const cli_args *a, const char *const *allowed) {
  if (allowed_has(allowed, "db") && (!a->db || !*a->db))
    return bad(a, "%s", "no database: give --db URL or set NODUP_DB");
  if (a->resume) {
    /* A resumed run has its own table, key and options. */
    if (a->table || a->nkey || a->where || a->keep || a->nrefs || a->nignore_refs ||
        a->ncolumns || a->one_to_one || a->batch ||
        a->nulls_equal || a->fill_nulls || a->no_archive || a->dry_run || a->no_temp_index ||
        a->keep_temp_index)
      return bad(a, "%s", "--resume takes the run's own table, key and options: give only --db");
    return EXIT_OK;
  }
  if (allowed_has(allowed, "run") && (!a->run || !*a->run))
    return bad(a, "%s", "--run ID is required (the id a merge printed)");
  if (allowed_has(allowed, "table") && !a->table) return bad(a, "%s", "--table is required");
  if (allowed_has(allowed, "key") && !a->nkey) return bad(a, "%s", "--key is required");
  return EXIT_OK;
}

int cli_parse(int argc, char **argv, const char *cmd, const char *const *allowed,
              const char *usage, cli_args *a) {
  int i, rc;
  memset(a, 0, sizeof *a);
  a->cmd = cmd;
  a->db = getenv("NODUP_DB");
  a->format = "text";
  a->workers = 8;
  a->keys = 100;
  for (i = 1; i < argc; i++) {
    const char *arg = argv[i], *val = NULL, *eq;
    char name[64];
    int *flag;
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
      fputs(usage, stdout);
      a->help = 1;
      return EXIT_OK;
    }
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
      if (!allowed_has(allowed, "ARGS")) return bad(a, "unexpected argument '%s'", arg);
      if (a->npos == 64) return bad(a, "%s", "too many arguments");
      a->pos[a->npos++] = arg;
      continue;
    }
    eq = strchr(arg + 2, '=');
    snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - arg - 2) : 63, arg + 2);
    if (!allowed_has(allowed, name)) return bad(a, "unknown option '--%s'", name);
    if ((flag = flag_field(a, name))) {
      if (eq) return bad(a, "--%s takes no value", name);
      *flag = 1;
      continue;
    }
    if (eq) val = eq + 1;
    else if (i + 1 < argc) val = argv[++i];
    else return bad(a, "option '--%s' needs a value", name);
    if ((rc = set_value(a, name, val)) != EXIT_OK) return rc;
  }
  return check_required(a, allowed);
}

void cli_args_free(cli_args *a) {
  size_t i;
  for (i = 0; i < a->nset; i++)
    if (a->set_vals[i]) free((char *)a->set_cols[i]);
  free(a->keylist);
}

void cli_merge_options(const cli_args *a, nodup_merge_options *opt) {
  nodup_merge_options_init(opt, NODUP_MERGE_OPTIONS_VERSION);
  opt->keep = a->keep;
  opt->refs = a->refs;
  opt->nrefs = a->nrefs;
  opt->ignore_refs = a->ignore_refs;
  opt->nignore_refs = a->nignore_refs;
  opt->columns = a->columns;
  opt->ncolumns = a->ncolumns;
  opt->batch = (size_t)a->batch;
  opt->fill_nulls = a->fill_nulls;
  opt->no_archive = a->no_archive;
  opt->no_temp_index = a->no_temp_index;
  opt->keep_temp_index = a->keep_temp_index;
  opt->one_to_one = !a->one_to_one || !strcmp(a->one_to_one, "merge") ? NODUP_ONE_TO_ONE_MERGE
                    : !strcmp(a->one_to_one, "keep")                   ? NODUP_ONE_TO_ONE_KEEP
                                                                       : NODUP_ONE_TO_ONE_FAIL;
}

int cli_exit_for(int rc) { return rc == NODUP_ERR_UNBACKED ? EXIT_NO : EXIT_ERROR; }

void cli_error(const cli_args *a, nodup_db *db, int rc) {
  const char *msg = nodup_errmsg(db);
  fprintf(stderr, "nodup %s: %s: %s\n", a->cmd, nodup_strerror(rc),
          msg && *msg ? msg : "(no detail)");
}

int cli_open(const cli_args *a, nodup_db **db) { return cli_open_ext(a, db, 0); }

int cli_open_ext(const cli_args *a, nodup_db **db, unsigned flags) {
  int rc = nodup_open_ext(db, a->db, flags);
  /* --journal: where this connection's merge journal lives. */
  if (rc == NODUP_OK && a->journal) rc = nodup_db_set_journal(*db, a->journal);
  if (rc != NODUP_OK) {
    cli_error(a, *db, rc);
    nodup_close(*db);
    *db = NULL;
    return EXIT_ERROR;
  }
  return EXIT_OK;
}

int cli_split_values(const cli_args *a, const char **vals, const char **dcols,
                     const char **dvals, size_t *nd) {
  size_t i, j;
  *nd = 0;
  for (i = 0; i < a->nkey; i++) {
    int found = 0;
    for (j = 0; j < a->nset; j++)
      if (cli_set_is_key(a->key[i], a->set_cols[j])) {
        vals[i] = a->set_vals[j];
        found = 1;
      }
    if (!found)
      return bad(a, "key column '%s' has no value: give --set COLUMN=VALUE or --null COLUMN",
                 a->key[i]);
  }
  for (j = 0; j < a->nset; j++) {
    int in_key = 0;
    for (i = 0; i < a->nkey; i++)
      if (cli_set_is_key(a->key[i], a->set_cols[j])) in_key = 1;
    if (!in_key) {
      dcols[*nd] = a->set_cols[j];
      dvals[(*nd)++] = a->set_vals[j];
    }
  }
  return EXIT_OK;
}

int json_format(const cli_args *a) { return !strcmp(a->format, "json"); }

void cli_shell_word(FILE *f, const char *s) {
  static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "0123456789@%+=:,./_-";
  if (*s && strspn(s, plain) == strlen(s)) {
    fputs(s, f);
    return;
  }
  if (strchr(s, '\'') && !strpbrk(s, "\"$`\\!")) {
    fprintf(f, "\"%s\"", s);
    return;
  }
  fputc('\'', f);
  for (; *s; s++)
    if (*s == '\'') fputs("'\\''", f);
    else fputc(*s, f);
  fputc('\'', f);
}

void json_string(FILE *f, const char *s) {
  if (!s) {
    fputs("null", f);
    return;
  }
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c == '\n') fputs("\\n", f);
    else if (c == '\t') fputs("\\t", f);
    else if (c == '\r') fputs("\\r", f);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

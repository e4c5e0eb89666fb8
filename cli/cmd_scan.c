/*
 * cmd_scan.c -- `nodup scan`: a read-only report on a key's duplicates and
 * on every table a merge of them would touch.
 */
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: nodup scan --db URL --table T --key col[,col...] [--where SQL] [--nulls-equal]\n"
    "                  [--ref 'TABLE(COL[,COL]) [WHERE SQL]' ...] [--ignore-ref TABLE(COL) ...]\n"
    "                  [--limit N] [--format text|json]\n"
    "\n"
    "Read-only. Counts the key's duplicate groups and redundant rows, lists the\n"
    "largest groups (--limit, default 10), and for every table that references T\n"
    "(foreign keys found in the catalog, plus --ref for references the catalog\n"
    "cannot see) how many rows a merge would re-point to the kept row and how many\n"
    "of those would then collide in a unique index (link tables, one-to-one\n"
    "children). The kept row is the first by primary key. Rows with a NULL key\n"
    "value are not duplicates unless --nulls-equal.\n"
    "\n"
    "A referencing column no index leads with is marked NO INDEX, with the rows\n"
    "each deleted row's foreign-key check would read (the whole referencing\n"
    "table); merge and enforce --merge build a temporary index on it first.\n"
    "\n"
    "References the catalog does not declare:\n"
    "  inferred    PostgreSQL: a partition without the foreign key its sibling\n"
    "              partitions declare references T all the same; a merge\n"
    "              re-points it (marked 'inferred').\n"
    "  suspected   columns that look like references to T's primary key: named\n"
    "              like a declared foreign key's column, or T_id (users -> user_id),\n"
    "              with the same type; Django generic relations (object_id beside\n"
    "              content_type_id); Rails polymorphic ones (x_id beside x_type).\n"
    "              Each is listed with the rows that point at a row a merge would\n"
    "              remove, and the --ref that re-points it or the --ignore-ref that\n"
    "              leaves it: 'nodup merge' refuses while one has such rows.\n"
    "  --ref 'T(C) WHERE SQL'  a reference only for T's rows where SQL holds:\n"
    "              --ref 'comment(object_id) WHERE content_type_id = 7'.\n"
    "\n"
    CLI_KEY_HELP
    "\n"
    "Exit status: 0 no duplicates, 1 duplicates exist (for CI gates), 2 error.\n";

/* A suspected reference's kind, one word (JSON and text alike). */
static const char *suspect_kind(int kind) {
  switch (kind) {
  case NODUP_SUSPECT_SAME_NAME: return "same_name";
  case NODUP_SUSPECT_TABLE_ID: return "table_id";
  case NODUP_SUSPECT_DJANGO: return "django";
  default: return "rails";
  }
}

static void print_cols(char **cols, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) printf("%s%s", i ? ", " : "", cols[i]);
}

static void json_cols(char **cols, size_t n) {
  size_t i;
  putchar('[');
  for (i = 0; i < n; i++) {
    if (i) fputs(", ", stdout);
    json_string(stdout, cols[i]);
  }
  putchar(']');
}

/* `leftovers`: nodup_notice(), what an interrupted enforce --online left. */
static void print_text(const cli_args *a, const nodup_scan_report *r, const char *leftovers) {
  size_t i, j;
  printf("%s (", a->table);
  print_cols(r->key, r->nkey);
  printf(")%s%s: %lld duplicate groups, %lld redundant rows\n", a->where ? " WHERE " : "",
         a->where ? a->where : "", r->groups, r->redundant);
  if (r->nlargest) {
    printf("largest groups:\n");
    for (i = 0; i < r->nlargest; i++) {
      printf("  %6lld rows  ", r->largest[i].rows);
      for (j = 0; j < r->nkey; j++)
        printf("%s%s", j ? " | " : "", r->largest[i].values[j] ? r->largest[i].values[j] : "NULL");
      putchar('\n');
    }
  }
  printf("references: %zu\n", r->nrefs);
  for (i = 0; i < r->nrefs; i++) {
    const nodup_scan_ref *f = &r->refs[i];
    printf("  %s (", f->table);
    print_cols(f->cols, f->ncols);
    printf(") -> (");
    print_cols(f->ref_cols, f->ncols);
    printf(")%s", f->one_to_one ? " one-to-one" : "");
    if (f->inferred) printf(" [inferred: its sibling partitions declare %s]", f->inferred_from);
    else if (!f->declared) printf(" [--ref%s%s]", f->condition ? " WHERE " : "",
                                  f->condition ? f->condition : "");
    printf(": %lld to re-point, %lld would collide", f->repoint, f->collide);
    if (f->collide_index) printf(" in %s", f->collide_index);
    if (f->unindexed)
      printf("; NO INDEX on these columns: each deleted row reads all %lld rows of %s "
             "(merge builds a temporary one)", f->unindexed_rows, f->table);
    putchar('\n');
  }
  if (r->nsuspects) {
    printf("suspected references (no foreign key declares them): %zu\n", r->nsuspects);
    for (i = 0; i < r->nsuspects; i++) {
      const nodup_scan_suspect *s = &r->suspects[i];
      printf("  %s (%s) -> (%s)%s%s: %lld point at rows a merge would remove [%s]\n", s->table,
             s->column, s->ref_column, s->condition ? " WHERE " : "",
             s->condition ? s->condition : "", s->rows, suspect_kind(s->kind));
      printf("    %s\n", s->why);
      if (s->ref) {
        fputs("    re-point: --ref ", stdout);
        cli_shell_word(stdout, s->ref);
        putchar('\n');
      }
      fputs("    or leave: --ignore-ref ", stdout);
      cli_shell_word(stdout, s->ignore);
      putchar('\n');
    }
  }
  if (leftovers) printf("leftovers: %s\n", leftovers);
}

static void print_json(const nodup_scan_report *r, const char *leftovers) {
  size_t i, j;
  printf("{\"groups\": %lld, \"redundant\": %lld, \"key\": ", r->groups, r->redundant);
  json_cols(r->key, r->nkey);
  fputs(", \"largest\": [", stdout);
  for (i = 0; i < r->nlargest; i++) {
    printf("%s{\"rows\": %lld, \"values\": [", i ? ", " : "", r->largest[i].rows);
    for (j = 0; j < r->nkey; j++) {
      if (j) fputs(", ", stdout);
      json_string(stdout, r->largest[i].values[j]);
    }
    fputs("]}", stdout);
  }
  fputs("], \"references\": [", stdout);
  for (i = 0; i < r->nrefs; i++) {
    const nodup_scan_ref *f = &r->refs[i];
    /* Plain names: a JSON reader should not have to parse SQL quoting. */
    fputs(i ? ", {\"schema\": " : "{\"schema\": ", stdout);
    json_string(stdout, f->table_schema);
    fputs(", \"table\": ", stdout);
    json_string(stdout, f->table_name);
    fputs(", \"constraint\": ", stdout);
    json_string(stdout, f->constraint);
    fputs(", \"columns\": ", stdout);
    json_cols(f->cols, f->ncols);
    fputs(", \"references\": ", stdout);
    json_cols(f->ref_cols, f->ncols);
    printf(", \"one_to_one\": %s, \"declared\": %s, \"repoint\": %lld, \"collide\": %lld, "
           "\"collide_index\": ",
           f->one_to_one ? "true" : "false", f->declared ? "true" : "false", f->repoint,
           f->collide);
    json_string(stdout, f->collide_index);
    printf(", \"inferred\": %s, \"inferred_from\": ", f->inferred ? "true" : "false");
    json_string(stdout, f->inferred_from);
    fputs(", \"condition\": ", stdout);
    json_string(stdout, f->condition);
    printf(", \"unindexed\": %s, \"unindexed_rows\": %lld}", f->unindexed ? "true" : "false",
           f->unindexed_rows);
  }
  fputs("], \"suspects\": [", stdout);
  for (i = 0; i < r->nsuspects; i++) {
    const nodup_scan_suspect *s = &r->suspects[i];
    fputs(i ? ", {\"schema\": " : "{\"schema\": ", stdout);
    json_string(stdout, s->table_schema);
    fputs(", \"table\": ", stdout);
    json_string(stdout, s->table_name);
    fputs(", \"column\": ", stdout);
    json_string(stdout, s->column);
    fputs(", \"references\": ", stdout);
    json_string(stdout, s->ref_column);
    printf(", \"kind\": \"%s\", \"condition\": ", suspect_kind(s->kind));
    json_string(stdout, s->condition);
    printf(", \"rows\": %lld, \"ref\": ", s->rows);
    json_string(stdout, s->ref);
    fputs(", \"ignore_ref\": ", stdout);
    json_string(stdout, s->ignore);
    fputs(", \"why\": ", stdout);
    json_string(stdout, s->why);
    putchar('}');
  }
  fputs("], \"leftovers\": ", stdout);
  json_string(stdout, leftovers);
  fputs("}\n", stdout);
}

int cmd_scan(int argc, char **argv) {
  static const char *const allowed[] = {"db", "table", "key", "where", "nulls-equal",
                                        "ref", "ignore-ref", "limit", "format", NULL};
  cli_args a;
  nodup_db *db = NULL;
  nodup_scan_report *r = NULL;
  nodup_scan_options opt;
  int rc, ex = cli_parse(argc, argv, "scan", allowed, usage, &a);

  if (ex != EXIT_OK || a.help) goto done;
  if ((ex = cli_open_ext(&a, &db, NODUP_OPEN_READONLY)) != EXIT_OK) goto done;
  memset(&opt, 0, sizeof opt);
  opt.nulls_equal = a.nulls_equal;
  opt.limit = (size_t)a.limit;
  opt.refs = a.refs;
  opt.nrefs = a.nrefs;
  opt.ignore_refs = a.ignore_refs;
  opt.nignore_refs = a.nignore_refs;
  rc = nodup_scan(&r, db, a.table, a.key, a.nkey, a.where, &opt);
  if (rc != NODUP_OK) {
    cli_error(&a, db, rc);
    ex = EXIT_ERROR;
    goto done;
  }
  if (json_format(&a)) print_json(r, nodup_notice(db));
  else print_text(&a, r, nodup_notice(db));
  ex = r->groups ? EXIT_NO : EXIT_OK;
done:
  if (ex == EXIT_ERROR) cli_notice(&a, db);   /* else the report has it */
  nodup_scan_free(r);
  nodup_close(db);
  cli_args_free(&a);
  return ex;
}

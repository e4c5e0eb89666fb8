/*
 * getorcreate_csv.c -- `nodup get-or-create --csv FILE|-`: many keys from a
 * CSV file, through nodup_get_or_create_many(), one call per chunk.
 *
 * The header row names the columns: every key column must be among them,
 * and the others are defaults for the rows created (with --set/--null
 * values, which apply to every row). As in `nodup import`, an empty
 * unquoted field is NULL and "" is the empty string; libcsv parses.
 * Output is CSV, `id,created` and then one line per input row in input
 * order, flushed after each chunk, so a consumer reading a pipe sees
 * results while later lines are still being read.
 */
#include <csv.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Rows per library call: each is two statements whatever its size, and
 * all or nothing; 10,000 keeps one call's arrays at a few hundred KiB. */
#define CHUNK 10000

typedef struct csv_run {
  const cli_args *a;
  nodup_key *key;
  size_t ncols;            /* header fields */
  char **header;
  int *pos;                /* per header field: its key position, or -1 */
  const char *dcols[320];  /* defaults: header fields not in the key, then --set */
  size_t nd, ncsvd;        /* all defaults, those from the CSV */
  char **field;            /* the current record's fields */
  size_t nfield;
  char **vals, **dvals;    /* CHUNK rows of key values and of defaults */
  size_t nrows;
  nodup_result *out;
  long long line;          /* records read, header included */
  int printed;             /* chunks printed */
  int rc;                  /* first library or input failure */
  char err[512];
} csv_run;

static void csv_field_cb(void *data, size_t len, void *ctx) {
  csv_run *r = ctx;
  char **f = realloc(r->field, (r->nfield + 1) * sizeof *f);
  if (!f) {
    r->rc = NODUP_ERR_NOMEM;
    return;
  }
  r->field = f;
  if (!data) {
    f[r->nfield++] = NULL;
    return;
  }
  if (!(f[r->nfield] = malloc(len + 1))) {
    r->rc = NODUP_ERR_NOMEM;
    return;
  }
  memcpy(f[r->nfield], data, len);
  f[r->nfield++][len] = '\0';
}

static void fields_clear(csv_run *r) {
  size_t i;
  for (i = 0; i < r->nfield; i++) free(r->field[i]);
  r->nfield = 0;
}

/* The header: each key column found once; the rest become defaults. */
static int take_header(csv_run *r) {
  size_t i, k;
  r->ncols = r->nfield;
  r->header = r->field;
  r->field = NULL;
  r->nfield = 0;
  if (!(r->pos = malloc(r->ncols * sizeof *r->pos))) return NODUP_ERR_NOMEM;
  for (i = 0; i < r->ncols; i++) {
    r->pos[i] = -1;
    if (!r->header[i]) {
      snprintf(r->err, sizeof r->err, "CSV header: column %zu has no name", i + 1);
      return NODUP_ERR_USAGE;
    }
    for (k = 0; k < r->a->nkey; k++)
      if (cli_set_is_key(r->a->key[k], r->header[i])) r->pos[i] = (int)k;
    if (r->pos[i] < 0) {
      if (r->nd >= 256) {
        snprintf(r->err, sizeof r->err, "CSV header: more than 256 columns");
        return NODUP_ERR_USAGE;
      }
      r->dcols[r->nd++] = r->header[i];
    }
  }
  r->ncsvd = r->nd;
  for (k = 0; k < r->a->nkey; k++) {
    for (i = 0; i < r->ncols && r->pos[i] != (int)k; i++)
      ;
    if (i == r->ncols) {
      snprintf(r->err, sizeof r->err, "CSV header: no column \"%s\" (a --key column)",
               r->a->key[k]);
      return NODUP_ERR_USAGE;
    }
  }
  for (i = 0; i < r->a->nset; i++) r->dcols[r->nd++] = r->a->set_cols[i];
  return NODUP_OK;
}

static void print_csv_field(const char *s) {
  if (!strpbrk(s, ",\"\r\n")) {
    fputs(s, stdout);
    return;
  }
  putchar('"');
  for (; *s; s++) {
    if (*s == '"') putchar('"');
    putchar(*s);
  }
  putchar('"');
}

/* One library call for the rows read so far; prints their results. */
static int flush_rows(csv_run *r) {
  size_t i;
  int rc;
  if (!r->nrows || r->rc != NODUP_OK) return r->rc;
  rc = nodup_get_or_create_many(r->key, r->nrows, (const char *const *)r->vals, r->dcols,
                                (const char *const *)r->dvals, r->nd, r->out);
  if (rc != NODUP_OK) return r->rc = rc;
  if (!r->printed++ && !json_format(r->a)) puts("id,created");
  for (i = 0; i < r->nrows; i++) {
    if (json_format(r->a)) {
      fputs("{\"id\": ", stdout);
      json_string(stdout, r->out[i].id);
      printf(", \"created\": %s}\n", r->out[i].created ? "true" : "false");
    } else {
      print_csv_field(r->out[i].id);
      printf(",%s\n", r->out[i].created ? "true" : "false");
    }
  }
  fflush(stdout);
  for (i = 0; i < r->nrows * r->a->nkey; i++) free(r->vals[i]);
  for (i = 0; i < r->nrows; i++) {
    size_t j;
    for (j = 0; j < r->ncsvd; j++) free(r->dvals[i * r->nd + j]);
  }
  r->nrows = 0;
  return NODUP_OK;
}

static void csv_record_cb(int term, void *ctx) {
  csv_run *r = ctx;
  size_t i, d = 0, row;
  (void)term;
  if (r->rc != NODUP_OK) return;
  r->line++;
  if (r->nfield == 0 && r->line > 1) return;   /* a blank line is no row */
  if (r->line == 1) {
    r->rc = take_header(r);
    return;
  }
  if (r->nfield != r->ncols) {
    snprintf(r->err, sizeof r->err, "CSV record %lld: %zu fields, the header has %zu",
             r->line, r->nfield, r->ncols);
    r->rc = NODUP_ERR_USAGE;
    fields_clear(r);
    return;
  }
  row = r->nrows++;
  for (i = 0; i < r->ncols; i++) {
    if (r->pos[i] >= 0) r->vals[row * r->a->nkey + (size_t)r->pos[i]] = r->field[i];
    else r->dvals[row * r->nd + d++] = r->field[i];
  }
  for (i = 0; i < r->a->nset; i++) r->dvals[row * r->nd + d++] = (char *)r->a->set_vals[i];
  r->nfield = 0;   /* the fields now belong to the chunk */
  if (r->nrows == CHUNK) flush_rows(r);
}

static int no_space(unsigned char ch) {
  (void)ch;
  return 0;
}

static int read_all(csv_run *r, FILE *in) {
  struct csv_parser p;
  char block[65536];
  size_t n;
  if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_REPALL_NL | CSV_EMPTY_IS_NULL) != 0)
    return NODUP_ERR_NOMEM;
  csv_set_space_func(&p, no_space);
  while (r->rc == NODUP_OK && (n = fread(block, 1, sizeof block, in)) > 0)
    if (csv_parse(&p, block, n, csv_field_cb, csv_record_cb, r) != n && r->rc == NODUP_OK) {
      snprintf(r->err, sizeof r->err, "CSV record %lld: malformed field", r->line + 1);
      r->rc = NODUP_ERR_USAGE;
    }
  if (r->rc == NODUP_OK && csv_fini(&p, csv_field_cb, csv_record_cb, r) != 0) {
    snprintf(r->err, sizeof r->err, "CSV record %lld: unterminated quoted field", r->line + 1);
    r->rc = NODUP_ERR_USAGE;
  }
  csv_free(&p);
  if (r->rc == NODUP_OK && r->line == 0) {
    snprintf(r->err, sizeof r->err, "the CSV is empty: no header row");
    r->rc = NODUP_ERR_USAGE;
  }
  return flush_rows(r);
}

static void run_free(csv_run *r) {
  size_t i;
  fields_clear(r);
  free(r->field);
  if (r->vals)
    for (i = 0; i < r->nrows * r->a->nkey; i++) free(r->vals[i]);
  if (r->dvals)
    for (i = 0; i < r->nrows; i++) {
      size_t j;
      for (j = 0; j < r->ncsvd; j++) free(r->dvals[i * r->nd + j]);
    }
  for (i = 0; i < r->ncols; i++) free(r->header[i]);
  free(r->header);
  free(r->pos);
  free(r->vals);
  free(r->dvals);
  free(r->out);
}

int cli_get_or_create_csv(const cli_args *a, nodup_db *db, nodup_key *key) {
  csv_run r;
  FILE *in;
  int rc, ex = EXIT_OK;
  memset(&r, 0, sizeof r);
  r.a = a;
  r.key = key;
  in = strcmp(a->csv, "-") ? fopen(a->csv, "rb") : stdin;
  if (!in) {
    fprintf(stderr, "nodup get-or-create: cannot open '%s': %s\n", a->csv, strerror(errno));
    return EXIT_ERROR;
  }
  r.vals = calloc((size_t)CHUNK * a->nkey, sizeof *r.vals);
  r.dvals = calloc((size_t)CHUNK * (256 + a->nset), sizeof *r.dvals);
  r.out = calloc(CHUNK, sizeof *r.out);
  if (!r.vals || !r.dvals || !r.out) r.rc = NODUP_ERR_NOMEM;
  rc = r.rc == NODUP_OK ? read_all(&r, in) : r.rc;
  if (rc != NODUP_OK) {
    if (r.err[0]) fprintf(stderr, "nodup get-or-create: %s\n", r.err);
    else cli_error(a, db, rc);
    ex = r.err[0] ? EXIT_ERROR : cli_exit_for(rc);
  }
  if (in != stdin) fclose(in);
  run_free(&r);
  return ex;
}

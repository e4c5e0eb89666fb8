/*
 * import.c -- insert every row of a CSV file in one transaction, or none.
 *
 * The key is a nodup key (key.c): preparing it proves that a unique index
 * backs it, and that index arbitrates every insert through
 * `INSERT ... ON CONFLICT (key) DO NOTHING RETURNING 1`. A row that returns
 * nothing is a conflict (the key exists, was inserted by a concurrent import
 * that committed first, or repeats earlier in the file); the import reads on
 * to count them all, then rolls back. No check-then-insert anywhere, so two
 * imports of one file cannot both succeed (seed 003).
 *
 * The file is parsed by libcsv (strict RFC 4180) in fixed-size blocks; rows
 * are gathered into batches (IMPORT_BATCH rows or IMPORT_BATCH_BYTES of
 * values, so memory stays flat). SQLite inserts them one prepared statement
 * per row. PostgreSQL streams each batch through COPY FROM STDIN inside a
 * savepoint as it is parsed, COPY being the fastest way in: a row whose key
 * exists makes COPY fail on the key's unique index, so a batch that COPY
 * takes whole has no conflict. When COPY fails, the savepoint is rolled
 * back and the batch inserted the exact way: multi-row INSERT ... ON
 * CONFLICT DO NOTHING of opt->chunk rows, and when one of those fails or
 * inserts fewer rows than it has, back to its savepoint and row by row, to
 * name the line (and the conflicting keys) exactly. After the first
 * conflict the import will fail, so the remaining batches skip COPY and
 * only count. The slow paths only run on the way to an error.
 */
#include <csv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define IMPORT_CHUNK 500
#define IMPORT_NULL SIZE_MAX     /* offset of an SQL NULL value */
#define IMPORT_BATCH 10000       /* rows per COPY (PostgreSQL) */
#define IMPORT_BATCH_BYTES (8u << 20)  /* or fewer, when their values reach this */
#define IMPORT_COPY_SEND 65536   /* COPY text sent in pieces of about this */

typedef struct import_ctx {
  nodup_db *db;
  nodup_key *key;
  nodup_import_report *rep;
  size_t limit, chunk;   /* chunk: rows per multi-row INSERT (PostgreSQL) */
  size_t batch;          /* rows gathered before they are inserted */
  int bulk, owned, begun, rc;   /* bulk: the backend has a bulk load (COPY) */
  /* PostgreSQL's COPY of the batch being gathered */
  int copy;              /* batches go through COPY (until a conflict) */
  int copying;           /* a COPY is open */
  int copy_rc;           /* how the COPY of this batch failed, or NODUP_OK */
  buf copy_text;         /* rows encoded, not yet sent */
  /* header */
  int header_done;
  size_t nhdr, caphdr;
  char **hdr;            /* catalog spelling once resolved */
  size_t *keypos;        /* field index of each key column */
  /* position */
  long long line;        /* the line the parser is on */
  long long rec_line;    /* the line where the current record starts */
  int after_cr;
  size_t rec_n;          /* fields of the current record so far */
  /* the batch being gathered */
  buf data;
  size_t *off;           /* batch * nhdr offsets into data, IMPORT_NULL for NULL */
  long long *lines;
  size_t nrows;
  const char **params;
  nodup_stmt *one, *many;
  long long got;         /* rows the last insert returned */
} import_ctx;

static int import_count_row(void *ctx, int ncols, const char *const *vals) {
  (void)ncols;
  (void)vals;
  ++*(long long *)ctx;
  return 0;
}

/* Fail with the message prefixed by the CSV line. */
static int import_fail_at(import_ctx *c, long long line, int code) {
  buf m;
  buf_init(&m);
  buf_printf(&m, "CSV line %lld: %s", line, buf_str(&c->db->err));
  return db_fail_buf(c->db, code, &m);
}

/* The insert for `rows` rows: INSERT ... VALUES (...), ... ON CONFLICT
 * (key) [WHERE pred] DO NOTHING RETURNING 1. */
static int import_prepare(import_ctx *c, size_t rows, nodup_stmt **out) {
  nodup_db *db = c->db;
  const nodup_table_info *t = c->key->table;
  size_t n = rows * c->nhdr, r, i;
  unsigned *types = calloc(n, sizeof *types);
  buf q;
  int rc;
  if (!types) return NODUP_ERR_NOMEM;
  buf_init(&q);
  buf_printf(&q, "INSERT INTO %s (", t->qualified);
  sql_ident_list(&q, c->hdr, c->nhdr);
  buf_puts(&q, ") VALUES ");
  for (r = 0; r < rows; r++) {
    buf_puts(&q, r ? ", (" : "(");
    sql_params(&q, db, (int)(r * c->nhdr + 1), c->nhdr);
    buf_putc(&q, ')');
    for (i = 0; i < c->nhdr; i++)
      types[r * c->nhdr + i] = t->types[table_info_column(db, t, c->hdr[i])];
  }
  sql_on_conflict(&q, c->key->terms, c->key->ncols, c->key->where);
  buf_puts(&q, " RETURNING 1");
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->prepare(db, buf_str(&q), (int)n, types, out);
  buf_free(&q);
  free(types);
  return rc;
}

/* Point params at the values of chunk rows [from, from + rows). */
static void import_params(import_ctx *c, size_t from, size_t rows) {
  size_t i, n = rows * c->nhdr;
  for (i = 0; i < n; i++) {
    size_t o = c->off[from * c->nhdr + i];
    c->params[i] = o == IMPORT_NULL ? NULL : c->data.p + o;
  }
}

/* Record chunk row `r` as a conflict: counted always, listed up to the
 * limit. */
static int import_conflict(import_ctx *c, size_t r) {
  nodup_import_report *rep = c->rep;
  nodup_import_conflict *k;
  size_t i;
  rep->conflicts++;
  if (rep->nlisted >= c->limit) return NODUP_OK;
  k = &rep->listed[rep->nlisted];
  if (!(k->values = calloc(c->key->ncols, sizeof *k->values))) return NODUP_ERR_NOMEM;
  rep->nlisted++;
  k->line = c->lines[r];
  for (i = 0; i < c->key->ncols; i++) {
    size_t o = c->off[r * c->nhdr + c->keypos[i]];
    if (o != IMPORT_NULL && !(k->values[i] = nodup_strdup(c->data.p + o)))
      return NODUP_ERR_NOMEM;
  }
  return NODUP_OK;
}

/* Insert batch rows [from, from + rows) one by one: every row's outcome is
 * known exactly. */
static int import_rows(import_ctx *c, size_t from, size_t rows) {
  size_t r;
  int rc;
  for (r = from; r < from + rows; r++) {
    import_params(c, r, 1);
    if (c->key->table->vclass) {
      /* SQLite: values by their columns' declared types (key.c). */
      size_t i;
      for (i = 0; i < c->nhdr; i++) {
        rc = value_coerce(c->db, c->key->table,
                          table_info_column(c->db, c->key->table, c->hdr[i]), &c->params[i]);
        if (rc != NODUP_OK) return import_fail_at(c, c->lines[r], rc);
      }
    }
    c->got = 0;
    rc = c->db->be->run(c->db, c->one, c->params, (int)c->nhdr, import_count_row, &c->got);
    if (rc != NODUP_OK) return import_fail_at(c, c->lines[r], rc);
    if (c->got == 0 && (rc = import_conflict(c, r)) != NODUP_OK) return rc;
  }
  return NODUP_OK;
}

/* With a bulk load (PostgreSQL): batch rows [from, from + rows) in one multi-row insert in a
 * savepoint; on failure or a short count, back to the savepoint and row by
 * row (unless only the count is still needed). */
static int import_chunk_bulk(import_ctx *c, size_t from, size_t rows) {
  nodup_db *db = c->db;
  nodup_stmt *st = c->many, *tail = NULL;
  int rc;
  if (rows < c->chunk) {
    if ((rc = import_prepare(c, rows, &tail)) != NODUP_OK) return rc;
    st = tail;
  }
  if ((rc = db->be->exec(db, "SAVEPOINT nodup_import_chunk")) != NODUP_OK) goto done;
  import_params(c, from, rows);
  c->got = 0;
  rc = db->be->run(db, st, c->params, (int)(rows * c->nhdr), import_count_row, &c->got);
  if (rc == NODUP_OK && (size_t)c->got == rows) {
    rc = db->be->exec(db, "RELEASE SAVEPOINT nodup_import_chunk");
    goto done;
  }
  if (rc == NODUP_OK && c->rep->nlisted >= c->limit) {
    /* The list is full: the number of rows that inserted nothing is all
     * that is left to learn, and the whole import will be rolled back. */
    c->rep->conflicts += (long long)rows - c->got;
    rc = db->be->exec(db, "RELEASE SAVEPOINT nodup_import_chunk");
    goto done;
  }
  if (rc == NODUP_ERR_RETRY || rc == NODUP_ERR_CONNECT) goto done;
  if ((rc = db->be->exec(db, "ROLLBACK TO SAVEPOINT nodup_import_chunk")) != NODUP_OK)
    goto done;
  if ((rc = import_rows(c, from, rows)) != NODUP_OK) goto done;
  rc = db->be->exec(db, "RELEASE SAVEPOINT nodup_import_chunk");
done:
  if (tail) db->be->finalize(db, tail);
  return rc;
}

/* Send the COPY text gathered so far. A failed send has ended the COPY:
 * remember why, and let the batch's end take the exact path. */
static int import_copy_send(import_ctx *c) {
  int rc = c->db->be->copy_put(c->db, &c->copy_text);
  buf_reset(&c->copy_text);
  if (rc == NODUP_OK) return NODUP_OK;
  if (rc == NODUP_ERR_NOMEM) return rc;  /* nothing sent: still open, aborted later */
  c->copying = 0;
  c->copy_rc = rc;
  return rc == NODUP_ERR_RETRY || rc == NODUP_ERR_CONNECT ? rc : NODUP_OK;
}

/* PostgreSQL: batch row r goes into the batch's COPY, opened (in a
 * savepoint) by its first row. */
static int import_copy_row(import_ctx *c, size_t r) {
  nodup_db *db = c->db;
  int rc;
  if (c->copy_rc != NODUP_OK) return NODUP_OK;  /* the COPY failed: wait for the end */
  if (!c->copying) {
    rc = db->be->exec(db, "SAVEPOINT nodup_import_batch");
    if (rc == NODUP_OK) rc = db->be->copy_begin(db, c->key->table, c->hdr, c->nhdr);
    if (rc != NODUP_OK) return rc;
    c->copying = 1;
  }
  import_params(c, r, 1);
  db->be->copy_row(&c->copy_text, c->params, c->nhdr);
  return c->copy_text.len < IMPORT_COPY_SEND ? NODUP_OK : import_copy_send(c);
}

/* PostgreSQL: finish the batch's COPY. If it failed (a key that exists, a
 * bad value...), roll it back and insert the batch the exact way, in
 * chunks; from the first conflict on, batches skip COPY. */
static int import_batch_bulk(import_ctx *c) {
  nodup_db *db = c->db;
  size_t from;
  int rc = NODUP_OK;
  if (c->copying) {
    rc = import_copy_send(c);
    if (rc == NODUP_OK && c->copying) {
      c->copying = 0;
      c->copy_rc = db->be->copy_end(db, NULL);
    }
    if (rc != NODUP_OK) return rc;
  }
  if (c->copy) {
    rc = c->copy_rc;
    c->copy_rc = NODUP_OK;
    if (rc == NODUP_OK) return db->be->exec(db, "RELEASE SAVEPOINT nodup_import_batch");
    if (rc == NODUP_ERR_RETRY || rc == NODUP_ERR_CONNECT || rc == NODUP_ERR_NOMEM) return rc;
    rc = db->be->exec(db, "ROLLBACK TO SAVEPOINT nodup_import_batch; "
                          "RELEASE SAVEPOINT nodup_import_batch");
    if (rc != NODUP_OK) return rc;
    nodup_clear_error(db);
  }
  for (from = 0; rc == NODUP_OK && from < c->nrows; from += c->chunk)
    rc = import_chunk_bulk(c, from, c->nrows - from < c->chunk ? c->nrows - from : c->chunk);
  if (c->rep->conflicts) c->copy = 0;
  return rc;
}

static int import_flush(import_ctx *c) {
  int rc;
  if (!c->nrows) return NODUP_OK;
  rc = c->bulk ? import_batch_bulk(c) : import_rows(c, 0, c->nrows);
  c->nrows = 0;
  buf_reset(&c->data);
  return rc;
}

/* The header is complete: resolve its names, find the key columns, prepare
 * the inserts and open the transaction. */
static int import_header(import_ctx *c) {
  nodup_db *db = c->db;
  const nodup_table_info *t = c->key->table;
  size_t i, j;
  int rc;
  if (!c->nhdr) return nodup_fail(db, NODUP_ERR_USAGE, "CSV line %lld: empty header", c->rec_line);
  for (i = 0; i < c->nhdr; i++) {
    int col = c->hdr[i] ? table_info_column(db, t, c->hdr[i]) : -1;
    char *canon;
    if (!c->hdr[i] || !*c->hdr[i])
      return nodup_fail(db, NODUP_ERR_USAGE, "CSV line %lld, column %zu: empty column name",
                        c->rec_line, i + 1);
    if (col < 0)
      return nodup_fail(db, NODUP_ERR_NO_COLUMN,
                        "CSV line %lld, column %zu: table %s has no column \"%s\"",
                        c->rec_line, i + 1, t->qualified, c->hdr[i]);
    for (j = 0; j < i; j++)
      if (table_info_column(db, t, c->hdr[j]) == col)
        return nodup_fail(db, NODUP_ERR_USAGE,
                          "CSV line %lld, column %zu: column \"%s\" is named twice",
                          c->rec_line, i + 1, c->hdr[i]);
    if (!(canon = nodup_strdup(t->cols[col]))) return NODUP_ERR_NOMEM;
    free(c->hdr[i]);
    c->hdr[i] = canon;
  }
  if (!(c->keypos = calloc(c->key->ncols, sizeof *c->keypos))) return NODUP_ERR_NOMEM;
  for (i = 0; i < c->key->ncols; i++) {
    for (j = 0; j < c->nhdr; j++)
      if (table_info_column(db, t, c->hdr[j]) == c->key->colidx[i]) break;
    if (j == c->nhdr)
      return nodup_fail(db, NODUP_ERR_NO_COLUMN,
                        "CSV line %lld: the header has no column for key column \"%s\"",
                        c->rec_line, c->key->cols[i]);
    c->keypos[i] = j;
  }
  if (c->bulk && c->chunk * c->nhdr > (size_t)db->be->max_params)
    c->chunk = (size_t)db->be->max_params / c->nhdr;
  if (!c->bulk) c->chunk = IMPORT_CHUNK;
  c->batch = c->bulk ? IMPORT_BATCH : c->chunk;
  c->copy = c->bulk;
  c->off = calloc(c->batch * c->nhdr, sizeof *c->off);
  c->lines = calloc(c->batch, sizeof *c->lines);
  c->params = calloc(c->chunk * c->nhdr, sizeof *c->params);
  if (!c->off || !c->lines || !c->params) return NODUP_ERR_NOMEM;
  if ((rc = import_prepare(c, 1, &c->one)) != NODUP_OK) return rc;
  if (c->bulk && (rc = import_prepare(c, c->chunk, &c->many)) != NODUP_OK) return rc;
  c->owned = !db->be->in_transaction(db);
  rc = db->be->exec(db, c->owned ? db->be->begin_write : "SAVEPOINT nodup_import");
  if (rc == NODUP_OK) c->begun = 1;
  return rc;
}

/* ---- libcsv callbacks: they cannot return errors, so the first one is
 * kept in c->rc and everything after it is ignored. ---- */

/* Line breaks in f[0, len): LF, CRLF and a lone CR count one each. */
static long long import_newlines(const char *f, size_t len) {
  long long nl = 0;
  size_t i;
  for (i = 0; i < len; i++)
    if (f[i] == '\n' || (f[i] == '\r' && (i + 1 == len || f[i + 1] != '\n'))) nl++;
  return nl;
}

static void import_field(void *s, size_t len, void *data) {
  import_ctx *c = data;
  const char *f = s, *nul = s ? memchr(f, '\0', len) : NULL;
  long long nl;
  if (c->rc != NODUP_OK) return;
  if (c->rec_n == 0) c->rec_line = c->line;
  c->after_cr = 0;
  if (nul) {
    /* Values and names travel as C strings (bound text, COPY text): a NUL
     * would silently cut the field short, so the file is refused. */
    c->rc = nodup_fail(c->db, NODUP_ERR_USAGE,
                       "CSV line %lld, column %zu: a NUL byte inside the field",
                       c->line + import_newlines(f, (size_t)(nul - f)),
                       (c->header_done ? c->rec_n : c->nhdr) + 1);
    return;
  }
  nl = import_newlines(f, len);
  if (!c->header_done) {
    if (c->nhdr == c->caphdr) {
      size_t cap = c->caphdr ? 2 * c->caphdr : 16;
      char **h = realloc(c->hdr, cap * sizeof *h);
      if (!h) {
        c->rc = NODUP_ERR_NOMEM;
        return;
      }
      c->hdr = h;
      c->caphdr = cap;
    }
    c->hdr[c->nhdr] = s ? strndup(f, len) : NULL;
    if (s && !c->hdr[c->nhdr]) c->rc = NODUP_ERR_NOMEM;
    c->nhdr++;
  } else if (c->rec_n >= c->nhdr) {
    c->rc = nodup_fail(c->db, NODUP_ERR_USAGE,
                       "CSV line %lld: more than the header's %zu fields", c->rec_line,
                       c->nhdr);
  } else {
    c->off[c->nrows * c->nhdr + c->rec_n] = s ? c->data.len : IMPORT_NULL;
    if (s) {
      buf_putn(&c->data, f, len);
      buf_putc(&c->data, '\0');
      if (c->data.oom) c->rc = NODUP_ERR_NOMEM;
    }
  }
  c->rec_n++;
  c->line += nl;
}

static void import_record(int term, void *data) {
  import_ctx *c = data;
  if (c->rc != NODUP_OK) return;
  if (term == '\n' && c->after_cr && c->rec_n == 0) {
    c->after_cr = 0;  /* the LF of a CRLF: the CR counted the line */
    return;
  }
  c->after_cr = term == '\r';
  if (term != -1) c->line++;
  if (c->rec_n == 0) return;  /* a blank line */
  c->rec_n = 0;
  if (!c->header_done) {
    c->header_done = 1;
    c->rc = import_header(c);
    return;
  }
  c->lines[c->nrows] = c->rec_line;
  c->rep->rows++;
  if (c->copy) c->rc = import_copy_row(c, c->nrows);
  c->nrows++;
  if (c->rc == NODUP_OK && (c->nrows == c->batch || c->data.len >= IMPORT_BATCH_BYTES))
    c->rc = import_flush(c);
}

/* Fields per record are counted as they arrive; a record end checks that
 * there were exactly nhdr. */
static void import_record_checked(int term, void *data) {
  import_ctx *c = data;
  if (c->rc == NODUP_OK && c->header_done && c->rec_n && c->rec_n != c->nhdr) {
    c->rc = nodup_fail(c->db, NODUP_ERR_USAGE,
                       "CSV line %lld: %zu field%s where the header has %zu", c->rec_line,
                       c->rec_n, c->rec_n == 1 ? "" : "s", c->nhdr);
    return;
  }
  if (c->rc == NODUP_OK && c->header_done && c->rec_n) {
    size_t i;
    for (i = 0; i < c->key->ncols; i++)
      if (c->off[c->nrows * c->nhdr + c->keypos[i]] == IMPORT_NULL && !c->key->nulls_equal) {
        c->rc = nodup_fail(c->db, NODUP_ERR_NULL_KEY,
                           "CSV line %lld: key column \"%s\" is NULL (an unquoted empty "
                           "field), and index %s treats NULLs as distinct",
                           c->rec_line, c->key->cols[i], c->key->index);
        return;
      }
  }
  import_record(term, data);
}

static int import_no_space(unsigned char ch) {
  (void)ch;
  return 0;
}

/* Read the whole file through the parser. */
static int import_read(import_ctx *c, FILE *csv) {
  struct csv_parser p;
  char block[65536];
  size_t n, skip;
  int rc = NODUP_OK, first = 1;
  if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_REPALL_NL | CSV_EMPTY_IS_NULL) != 0)
    return NODUP_ERR_NOMEM;
  csv_set_space_func(&p, import_no_space);
  while (c->rc == NODUP_OK && (n = fread(block, 1, sizeof block, csv)) > 0) {
    /* Excel's "CSV UTF-8" starts with a UTF-8 byte-order mark: not part of
     * the first column's name. fread fills the block unless the file ends,
     * so the mark is never split across blocks. */
    skip = first && n >= 3 && !memcmp(block, "\xEF\xBB\xBF", 3) ? 3 : 0;
    first = 0;
    if (csv_parse(&p, block + skip, n - skip, import_field, import_record_checked, c) !=
            n - skip &&
        c->rc == NODUP_OK) {
      int e = csv_error(&p);
      c->rc = e == CSV_EPARSE
                  ? nodup_fail(c->db, NODUP_ERR_USAGE,
                               "CSV line %lld: malformed field (a quote inside an "
                               "unquoted field, or text after a closing quote)",
                               c->rec_n ? c->rec_line : c->line)
                  : NODUP_ERR_NOMEM;
    }
  }
  if (c->rc == NODUP_OK && ferror(csv))
    c->rc = nodup_fail(c->db, NODUP_ERR_USAGE, "cannot read the CSV file");
  if (c->rc == NODUP_OK) {
    long long start = c->rec_n ? c->rec_line : c->line;
    if (csv_fini(&p, import_field, import_record_checked, c) != 0 && c->rc == NODUP_OK)
      c->rc = nodup_fail(c->db, NODUP_ERR_USAGE,
                         "CSV line %lld: unterminated quoted field", start);
  }
  csv_free(&p);
  rc = c->rc;
  if (rc == NODUP_OK && !c->header_done)
    rc = nodup_fail(c->db, NODUP_ERR_USAGE, "the CSV is empty: no header row");
  if (rc == NODUP_OK) rc = import_flush(c);
  return rc;
}

/* After the rollback: which listed keys are in the table (the rest repeat
 * within the file), and the message. */
static int import_explain(import_ctx *c) {
  nodup_import_report *rep = c->rep;
  nodup_db *db = c->db;
  nodup_result found;
  size_t i, k;
  buf m;
  for (i = 0; i < rep->nlisted; i++) {
    found.id = NULL;
    if (nodup_find(c->key, (const char *const *)rep->listed[i].values, &found) ==
        NODUP_OK)
      rep->listed[i].existing = found.id != NULL;
  }
  buf_init(&m);
  buf_printf(&m, "table %s: %lld of %lld rows have a key that %s; nothing imported:",
             c->key->table->qualified, rep->conflicts, rep->rows,
             "is already in the table or repeats in the file");
  for (i = 0; i < rep->nlisted; i++) {
    buf_puts(&m, i ? "; (" : " (");
    sql_key_list(&m, c->key->terms, c->key->ncols, NULL);
    buf_puts(&m, ")=(");
    for (k = 0; k < c->key->ncols; k++) {
      const char *v = rep->listed[i].values[k];
      if (k) buf_puts(&m, ", ");
      if (v) buf_printf(&m, "'%s'", v);
      else buf_puts(&m, "NULL");
    }
    buf_printf(&m, ") line %lld %s", rep->listed[i].line,
               rep->listed[i].existing ? "already imported" : "repeats in the file");
  }
  if (rep->conflicts > (long long)rep->nlisted)
    buf_printf(&m, "; and %lld more", rep->conflicts - (long long)rep->nlisted);
  return db_fail_buf(db, NODUP_ERR_DUPLICATE, &m);
}

static void import_rollback(import_ctx *c) {
  nodup_db *db = c->db;
  db_error e;           /* keep the failure, not what the clean-up says */
  db_error_save(db, &e);
  if (c->copying) db->be->copy_end(db, "nodup: import abandoned");
  c->copying = 0;
  db->be->exec(db, c->owned ? "ROLLBACK"
                            : "ROLLBACK TO SAVEPOINT nodup_import; "
                              "RELEASE SAVEPOINT nodup_import");
  db_error_restore(db, NODUP_ERR_DB, &e);
  c->begun = 0;
}

int nodup_import_csv(nodup_import_report **out, nodup_db *db, const char *table,
                     const char *const *cols, size_t ncols, const char *where, FILE *csv,
                     const nodup_import_options *opt) {
  import_ctx c;
  nodup_import_report *rep = NULL;
  size_t i;
  int rc;

  if (!out) return db ? nodup_fail(db, NODUP_ERR_USAGE, "import_csv: NULL report") : NODUP_ERR_USAGE;
  *out = NULL;
  if (!db || !db->native) return NODUP_ERR_USAGE;
  nodup_clear_error(db);
  if (opt && options_check(db, opt->version, NODUP_IMPORT_OPTIONS_VERSION, "nodup_import_options"))
    return NODUP_ERR_USAGE;
  memset(&c, 0, sizeof c);
  buf_init(&c.data);
  buf_init(&c.copy_text);
  c.db = db;
  c.bulk = db->be->copy_begin != NULL;
  c.limit = opt && opt->limit ? opt->limit : NODUP_IMPORT_LIST;
  c.chunk = opt && opt->chunk ? opt->chunk : IMPORT_CHUNK;
  c.line = 1;
  if (!csv || !table) {
    rc = nodup_fail(db, NODUP_ERR_USAGE, "import_csv: NULL table or file");
    goto done;
  }
  if ((rc = nodup_key_prepare(&c.key, db, table, cols, ncols, where)) != NODUP_OK) goto done;
  if (!(rep = c.rep = calloc(1, sizeof *rep)) ||
      !(rep->listed = calloc(c.limit, sizeof *rep->listed)) ||
      !(rep->key = calloc(ncols, sizeof *rep->key))) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  rep->nkey = ncols;
  for (i = 0; i < ncols; i++)
    if (!(rep->key[i] = nodup_strdup(c.key->cols[i]))) {
      rc = NODUP_ERR_NOMEM;
      goto done;
    }

  rc = import_read(&c, csv);
  if (rc == NODUP_OK && rep->conflicts) {
    import_rollback(&c);
    rc = import_explain(&c);
    goto done;
  }
  if (rc == NODUP_OK && c.begun) {
    rc = db->be->exec(db, c.owned ? "COMMIT" : "RELEASE SAVEPOINT nodup_import");
    if (rc == NODUP_OK) c.begun = 0;
  }
  if (rc == NODUP_OK) rep->inserted = rep->rows;

done:
  if (c.begun) import_rollback(&c);
  if (c.one) db->be->finalize(db, c.one);
  if (c.many) db->be->finalize(db, c.many);
  if (rc == NODUP_OK || rc == NODUP_ERR_DUPLICATE) {
    *out = rep;
    rep = NULL;
  }
  nodup_import_free(rep);
  nodup_key_free(c.key);
  for (i = 0; i < c.nhdr; i++) free(c.hdr[i]);
  free(c.hdr);
  free(c.keypos);
  free(c.off);
  free(c.lines);
  free(c.params);
  buf_free(&c.data);
  buf_free(&c.copy_text);
  return rc;
}

void nodup_import_free(nodup_import_report *report) {
  size_t i, k;
  if (!report) return;
  for (i = 0; i < report->nlisted; i++) {
    for (k = 0; k < report->nkey; k++) free(report->listed[i].values[k]);
    free(report->listed[i].values);
  }
  free(report->listed);
  if (report->key)
    for (k = 0; k < report->nkey; k++) free(report->key[k]);
  free(report->key);
  free(report);
}

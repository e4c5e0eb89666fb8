/*
 * internal.h -- what the library's files share and the public header hides.
 *
 * Layers, bottom up: buf.c (growable strings), sql.c (quoting and statement
 * text), the backends db_sqlite.c / db_pg.c behind `struct nodup_backend`,
 * catalog.c (schema facts in one shape for both engines), key.c (finding the
 * index that backs a key), getorcreate.c and duplicates.c (the features).
 * SQL dialect differences live only in the backend files.
 */
#ifndef NODUP_INTERNAL_H
#define NODUP_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include "nodup.h"

/* ---- buf.c: a growable NUL-terminated string that remembers OOM ---- */

/* Invariant: p is NUL-terminated when cap > 0. After an allocation failure
 * `oom` is set and further appends are ignored, so builders can append
 * freely and check once at the end. */
typedef struct buf {
  char *p;
  size_t len;
  size_t cap;
  int oom;
} buf;

void buf_init(buf *b);
void buf_free(buf *b);
void buf_reset(buf *b);
void buf_putn(buf *b, const char *s, size_t n);
void buf_puts(buf *b, const char *s);
void buf_putc(buf *b, char c);
void buf_printf(buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The string, or "" when nothing was appended. Borrowed from b. */
const char *buf_str(const buf *b);

char *nodup_strdup(const char *s);
/* Free n strings and the array holding them. Accepts NULL. */
void strv_free(char **v, size_t n);

/* ---- sql.c: identifiers and statement text ---- */

/* Append `name` as a double-quoted identifier, doubling embedded quotes. */
void sql_ident(buf *b, const char *name);
/* Append a comma-separated list of quoted identifiers. */
void sql_ident_list(buf *b, char *const *names, size_t n);
/* Append "1 = 1 AND k1 IS NOT NULL ... AND (where)": the rows whose key a
 * unique index constrains. NULL key values never conflict in an index,
 * so they are left out unless nulls_equal. Columns are qualified by
 * `alias` when it is not NULL. */
void sql_key_filter(buf *b, char *const *key, size_t n, const char *where, int nulls_equal,
                    const char *alias);
/* Append a name (a column, never a value) as an SQL string literal. */
void sql_name_literal(buf *b, const char *name);
/* Append a parameter placeholder ($n or ?n) for backend `db`. */
void sql_param(buf *b, const nodup_db *db, int n);

/* db.c: one statement with parameters and no result, written with ?N
 * placeholders (PostgreSQL's $N are substituted). */
int db_exec_params(nodup_db *db, const char *sql, const char *const *p, int n);
/* A row_fn reading the first column of the first row as a count into
 * *(long long *)ctx (NULL: 0). */
int db_read_count(void *ctx, int n, const char *const *v);

/* ---- catalog.c: one shape for both engines' schema facts ---- */

typedef struct nodup_index_info {
  char *name;        /* index name (PostgreSQL: relname, unqualified) */
  char *constraint;  /* constraint using the index, or NULL */
  size_t ncols;
  char **cols;       /* key columns in index order; NULL for an expression */
  char *predicate;   /* partial-index WHERE text, or NULL */
  int primary;       /* backs the primary key */
  int nulls_equal;   /* NULLS NOT DISTINCT */
  int deferrable;    /* deferrable constraint: cannot arbitrate ON CONFLICT */
} nodup_index_info;

typedef struct nodup_table_info {
  char *name;        /* the table's own name as the catalog spells it */
  char *qualified;   /* quoted SQL name ("s"."t" or "t") */
  size_t ncols;
  char **cols;
  unsigned *types;   /* PostgreSQL type OIDs (0 on SQLite) */
  int *notnull;
  size_t npk;
  char **pk;         /* primary key columns; SQLite rowid tables: "rowid" */
  size_t nidx;
  nodup_index_info *idx;  /* unique indexes only */
} nodup_table_info;

void table_info_free(nodup_table_info *t);
/* Resolve key columns to the catalog's spelling: *names (n strings) and
 * *idx (positions in t->cols; idx may be NULL) are new arrays the caller
 * frees. Refuses an empty, unknown or repeated column by name; on error
 * both are NULL. */
int table_info_key(nodup_db *db, const nodup_table_info *t, const char *const *cols,
                   size_t n, char ***names, int **idx);
/* Index of column `name` in t, or -1. Case rules are the engine's. */
int table_info_column(const nodup_db *db, const nodup_table_info *t,
                      const char *name);

/* A foreign key that references a table. */
typedef struct nodup_fk_info {
  char *name;        /* constraint name (SQLite: "fk<N>" from the pragma id) */
  char *table;       /* referencing table, as table_info() accepts it */
  size_t ncols;
  char **cols;       /* referencing columns */
  char **refcols;    /* referenced columns, in the same order */
  char on_delete;    /* a r c n d */
} nodup_fk_info;

void fk_info_free(nodup_fk_info *fks, size_t n);

/* Run a backend's foreign-key query (one parameter) whose rows are
 * (constraint id, referencing table, seq, from column, to column or NULL
 * for the primary key, on_delete letter), one row per column, and collect
 * the foreign keys. Shared so both backends build them the same way. */
int fk_collect_query(nodup_db *db, const nodup_table_info *t, const char *sql,
                     const char *param, nodup_fk_info **out, size_t *n);
/* Parse a user-declared reference "TABLE(COL[,COL...])" to t's primary key
 * (one column per primary key column) into *fk; free with fk_info_free
 * semantics on a single element (the caller owns the strings). */
int fk_parse_ref(nodup_db *db, const nodup_table_info *t, const char *spec,
                 nodup_fk_info *fk);

/* ---- backends ---- */

typedef struct nodup_stmt nodup_stmt;   /* backend-defined prepared statement */

/* Called once per result row with the row's values as text (NULL = NULL).
 * Return nonzero to stop early. */
typedef int (*row_fn)(void *ctx, int ncols, const char *const *vals);

struct nodup_backend {
  const char *name;
  char placeholder;  /* '$' or '?' */
  /* printf format turning a predicate into a RETURNING expression that is
   * 1 when the inserted row satisfies it; PostgreSQL's raises instead, so
   * the insert itself fails and nothing is written. */
  const char *predicate_guard;
  int (*connect)(nodup_db *db, const char *target);
  void (*disconnect)(nodup_db *db);
  int (*exec)(nodup_db *db, const char *sql);
  /* One-shot parameterised query; `fn` may be NULL. */
  int (*query)(nodup_db *db, const char *sql, const char *const *params,
               int nparams, row_fn fn, void *ctx);
  int (*table_info)(nodup_db *db, const char *table, nodup_table_info **out);
  /* Ask the engine which unique indexes arbitrate ON CONFLICT for the key
   * (its own inference, the authority). Fills `names` (comma-separated) or
   * returns NODUP_ERR_UNBACKED with the engine's reason in the message. */
  int (*arbiters)(nodup_db *db, const nodup_table_info *t, char *const *cols,
                  size_t ncols, const char *where, buf *names);
  int (*prepare)(nodup_db *db, const char *sql, int nparams,
                 const unsigned *types, nodup_stmt **out);
  /* Run a prepared statement; rows go to fn. */
  int (*run)(nodup_db *db, nodup_stmt *s, const char *const *params,
             int nparams, row_fn fn, void *ctx);
  void (*finalize)(nodup_db *db, nodup_stmt *s);
  /* The get-or-create round: insert-if-absent then fresh lookup. Sets
   * *inserted / found ids through the key's id buffer. See getorcreate.c. */
  int (*get_or_create)(nodup_key *key, nodup_stmt *insert, nodup_stmt *lookup,
                       const char *const *params, int nparams, int *created);
  int (*in_transaction)(nodup_db *db);
  /* Every foreign key referencing t, each counted once (PostgreSQL: not
   * the clones a partitioned parent's key leaves on its partitions). */
  int (*references)(nodup_db *db, const nodup_table_info *t, nodup_fk_info **out,
                    size_t *n);
  /* Append an expression giving the whole row `alias` of t as JSON text
   * (the merge archive). */
  void (*row_json)(buf *q, const nodup_table_info *t, const char *alias);
  /* Append an expression giving JSON text of an object whose keys[i]
   * holds the value of SQL expression exprs[i]. */
  void (*json_object)(buf *q, size_t n, const char *const *keys, const char *const *exprs);
  /* Undo (merge.c). restore_rows: an INSERT of t's rows archived under
   * nodup_archive's run ($1) and step ($2). restore_cols: an UPDATE
   * setting `cols` of t back to nodup_log's `old` values, the row found by
   * the primary key values in `cur`. Both run through changes(). */
  void (*restore_rows)(buf *q, const nodup_table_info *t);
  void (*restore_cols)(buf *q, const nodup_table_info *t, char *const *cols, size_t n);
  /* Reconnect a connection the server dropped (NULL: cannot happen).
   * Statements prepared before are gone. */
  int (*reconnect)(nodup_db *db);
  const char *begin_write;   /* a transaction that will write: no upgrade */
  const char *lock_rows;     /* suffix locking a SELECT's rows, or "" */
  /* Run one parameterised INSERT, UPDATE or DELETE; *n gets the rows it
   * changed, counted by the engine (no row is sent back per change, so a
   * merge's memory does not grow with the table). */
  int (*changes)(nodup_db *db, const char *sql, const char *const *params, int nparams,
                 long long *n);
  /* Open a write transaction (begin_write) for a caller that must not be
   * starved by a stream of short writers, waiting at most timeout_ms.
   * NULL: begin_write is fair already (PostgreSQL queues lock requests). */
  int (*begin_write_urgent)(nodup_db *db, long timeout_ms);
};

extern const struct nodup_backend nodup_sqlite_backend;
extern const struct nodup_backend nodup_pg_backend;

/* PostgreSQL's COPY FROM STDIN (db_pg.c), for bulk imports (import.c):
 * begin runs `sql` (a COPY ... FROM STDIN); row appends one row of n text
 * values (NULL = SQL NULL) in COPY's text format to `out`, which put then
 * sends; end finishes the COPY, or aborts it when `abort_msg` is not NULL,
 * and returns its outcome (a failed row's error, as any statement's). A
 * put that fails has ended the COPY already (the server refused a row). */
int pg_copy_begin(nodup_db *db, const char *sql);
void pg_copy_row(buf *out, const char *const *vals, size_t n);
int pg_copy_put(nodup_db *db, const buf *data);
int pg_copy_end(nodup_db *db, const char *abort_msg);

struct nodup_db {
  const struct nodup_backend *be;
  void *native;          /* sqlite3 * or PGconn * */
  buf err;               /* message of the last failed call */
  int server_version;    /* PostgreSQL server_version_num; SQLite libversion */
  unsigned next_stmt;    /* names PostgreSQL prepared statements */
  unsigned seed;         /* retry jitter */
  unsigned flags;        /* NODUP_OPEN_* given to nodup_open_ext */
  /* PostgreSQL through a pooler (db_pg.c's pg_session_check): the next
   * transaction may run in another server session, so nothing may be kept
   * on the server between transactions (prepared statements, temporary
   * tables, session settings, session advisory locks). */
  int pooled;
};

/* ---- prepared keys ---- */

/* Statements for one shape of call: which key values are NULL (mask) and
 * which default columns are given (sig). Prepared lazily, kept for reuse. */
typedef struct key_shape {
  unsigned mask;
  char *sig;             /* default columns joined by '\x1f' */
  char **given;          /* the default column names exactly as the caller
                          * spelled them: the allocation-free hit path */
  size_t ngiven;
  nodup_stmt *insert;    /* insert-if-absent */
  nodup_stmt *plain;     /* plain INSERT (nodup_insert) */
  nodup_stmt *lookup;    /* SELECT pk by key (depends on mask only) */
} key_shape;

struct nodup_key {
  nodup_db *db;
  nodup_table_info *table;
  size_t ncols;
  char **cols;           /* catalog spelling */
  int *colidx;           /* positions in table->cols */
  char *where;           /* predicate or NULL */
  char *index;           /* backing index name(s), "(none)" if unbacked */
  int backed;            /* 0 only for nodup_key_prepare_unbacked() */
  int nulls_equal;
  size_t nshapes;
  key_shape *shapes;
  buf id;                /* the last result's id */
  int in_predicate;      /* the last inserted row satisfied the predicate */
};

/* ---- error.c ---- */

/* Set db's message (printf-style) and return `code`, so callers can write
 * `return nodup_fail(db, NODUP_ERR_NO_TABLE, "...", ...)`. */
int nodup_fail(nodup_db *db, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void nodup_clear_error(nodup_db *db);

/* merge.c: nodup_merge() inside the caller's open transaction, all groups
 * at once, no COMMIT (nodup enforce: merge and index under one lock). */
int merge_in_transaction(nodup_merge_report **out, nodup_db *db, const char *table,
                         const char *const *cols, size_t ncols, const char *where,
                         const nodup_merge_options *opt);
/* merge.c: the whole run. `run` is a run to resume (NULL: a new one) whose
 * last step was `laststep`; `own_txn`: one transaction per batch (0: all
 * inside the caller's); `one_pass`: stop after the groups of the first
 * pass, leaving what writers add meanwhile.
 * runs.c (resume) calls it. */
int merge_run(nodup_merge_report **out, nodup_db *db, const char *table,
              const char *const *cols, size_t ncols, const char *where,
              const nodup_merge_options *opt, const char *run, long long laststep,
              int own_txn, int one_pass);
/* nodup_merge() of the duplicate groups there are when it starts, one
 * pass: nodup enforce --online's first merge, which live writers could
 * otherwise keep feeding for ever. */
int merge_one_pass(nodup_merge_report **out, nodup_db *db, const char *table,
                   const char *const *cols, size_t ncols, const char *where,
                   const nodup_merge_options *opt);

/* ---- key.c helpers used by getorcreate.c ---- */
int key_shape_get(nodup_key *key, const char *const *vals,
                  const char *const *dcols, size_t nd, key_shape **out);
/* Row callback: stores the primary key columns joined by ',' into key->id
 * and, when the row carries a predicate guard column, key->in_predicate. */
int key_store_id(void *key, int ncols, const char *const *vals);

#endif

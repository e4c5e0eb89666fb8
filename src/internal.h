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
#include "namespace.h"

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
/* One term of a key: a column in catalog spelling (borrowed), wrapped in
 * nfunc functions of a fixed set (keyterm.c), outermost first:
 * lower(trim(email)) is column "email", func {KEY_FUNC_LOWER,
 * KEY_FUNC_TRIM}. Only sql_key_term() and its open/close write a term. */
#define KEY_TERM_FUNCS 4
enum { KEY_FUNC_LOWER = 1, KEY_FUNC_UPPER, KEY_FUNC_TRIM, KEY_FUNC_LTRIM, KEY_FUNC_RTRIM };
typedef struct key_term {
  const char *column;
  unsigned char nfunc;
  unsigned char func[KEY_TERM_FUNCS];
} key_term;
/* A new array of n terms for key `names` as table_info_key() spells them
 * (a column's name, or an expression term's canonical spelling, decoded
 * by keyterm_decode); one allocation, free() it; NULL when out of memory. */
key_term *key_terms_of(char *const *names, size_t n);
/* Append one term, qualified by `alias` ("x.") when it is not NULL. */
void sql_key_term(buf *b, const key_term *term, const char *alias);
/* What a term wraps around its operand, written before and after it:
 * "lower(trim(" and "))" for lower(trim(email)), nothing for a column.
 * A value compared with a term is wrapped the same way (lower(trim($1))),
 * as is any other operand standing for the column (a batch's input). */
void sql_key_term_open(buf *b, const key_term *term);
void sql_key_term_close(buf *b, const key_term *term);
/* Append the columns the terms are over, "email", "org_id" for
 * (lower(email), org_id): what an insert names, or a trigger fires on. */
void sql_key_columns(buf *b, const key_term *terms, size_t n);
/* Append the terms as a comma-separated list. */
void sql_key_list(buf *b, const key_term *terms, size_t n, const char *alias);
/* Append "1 = 1 AND k1 IS NOT NULL ... AND (where)": the rows whose key a
 * unique index constrains. NULL key values never conflict in an index,
 * so they are left out unless nulls_equal. Terms are qualified by
 * `alias` when it is not NULL. */
void sql_key_rows(buf *b, const key_term *terms, size_t n, const char *where, int nulls_equal,
                  const char *alias);
struct nodup_index_info;
/* sql_key_rows() for the rows unique index ix constrains (its columns
 * not NULL unless it treats NULLs as equal, and its predicate). */
void sql_index_rows(buf *b, const struct nodup_index_info *ix, const char *alias);
/* sql_key_rows() for a key held as column names (merge, enforce). */
void sql_key_filter(buf *b, char *const *key, size_t n, const char *where, int nulls_equal,
                    const char *alias);
/* sql_key_list() for a key held as names (merge, enforce): lower(x."email"). */
void sql_key_names(buf *b, char *const *key, size_t n, const char *alias);
/* Append " WINDOW nodup_w AS (PARTITION BY key ORDER BY keep, pk)": a
 * key's groups with the row a merge keeps first (`keep`, the user's
 * checked --keep or NULL, then the primary key), so that scan and merge
 * name the same losers. Columns qualified by `alias` when not NULL. */
void sql_keep_window(buf *b, char *const *key, size_t nkey, const char *keep, char *const *pk,
                     size_t npk, const char *alias);
/* Append "k1 = $p AND k2 IS NULL ...": the rows with one set of key values,
 * term i tested IS NULL where bit i of `nulls` is set. Placeholders are
 * numbered from *param on, which is advanced past them; with `dense` a NULL
 * term takes no number (the statement's parameters omit NULL values: an
 * unused $n is an error on PostgreSQL), without it each term keeps its
 * place. */
void sql_key_match(buf *b, const nodup_db *db, const key_term *terms, size_t n,
                   unsigned nulls, int dense, const char *alias, int *param);
/* Append " ON CONFLICT (terms) [WHERE where] DO NOTHING": the arbiter
 * clause of every insert-if-absent. */
void sql_on_conflict(buf *b, const key_term *terms, size_t n, const char *where);
/* The same without its action: " ON CONFLICT (terms) [WHERE where]". */
void sql_conflict_target(buf *b, const key_term *terms, size_t n, const char *where);
/* Append a name (a column, never a value) as an SQL string literal. */
void sql_name_literal(buf *b, const char *name);
/* Append a parameter placeholder ($n or ?n) for backend `db`. */
void sql_param(buf *b, const nodup_db *db, int n);
/* Append n placeholders "$first, ..., $(first + n - 1)". */
void sql_params(buf *b, const nodup_db *db, int first, size_t n);

/* db.c: one statement with parameters and no result, written with ?N
 * placeholders (PostgreSQL's $N are substituted). */
int db_exec_params(nodup_db *db, const char *sql, const char *const *p, int n);
/* Open a transaction that will write, for a caller that must get the lock
 * while short writers keep taking it: SQLite's lock has no queue and its
 * busy handler backs off to 100 ms between tries, so BEGIN IMMEDIATE lost
 * to 8 writers in a loop; begin_write_urgent asks every millisecond. */
/* A number no other call in this process gets (run ids, owner tokens). */
unsigned db_serial(void);
int db_begin_write(nodup_db *db);
/* A row_fn reading the first column of the first row as a count into
 * *(long long *)ctx (NULL: 0). */
int db_read_count(void *ctx, int n, const char *const *v);
/* Milliseconds on the monotonic clock (deadlines, how long a batch took). */
double db_now_ms(void);
/* A row_fn appending the first column of the first row to (buf *)ctx. */
int db_read_text(void *ctx, int n, const char *const *v);

/* ---- catalog.c: one shape for both engines' schema facts ---- */

typedef struct nodup_index_info {
  char *name;        /* index name (PostgreSQL: relname, unqualified) */
  char *constraint;  /* constraint using the index, or NULL */
  size_t ncols;
  char **cols;       /* key columns in index order; NULL for an expression */
  char **terms;      /* ... each as a key term's canonical spelling (a column's
                      * name, lower("email")); NULL for an expression outside
                      * the key terms' set (keyterm_canon), never matched */
  char *predicate;   /* partial-index WHERE text, or NULL */
  int primary;       /* backs the primary key */
  int nulls_equal;   /* NULLS NOT DISTINCT */
  int deferrable;    /* deferrable constraint: cannot arbitrate ON CONFLICT */
} nodup_index_info;

typedef struct nodup_table_info {
  char *name;        /* the table's own name as the catalog spells it */
  char *qualified;   /* quoted SQL name ("s"."t" or "t") */
  char *schema;      /* PostgreSQL: the schema as the catalog spells it; SQLite: NULL */
  size_t ncols;
  char **cols;
  unsigned *types;   /* PostgreSQL type OIDs (0 on SQLite) */
  /* SQLite: per column, how a value given as text is converted before it
   * is bound (VALUE_*, from the declared type). NULL on PostgreSQL, whose
   * type input functions convert and refuse by the column's type. */
  unsigned char *vclass;
  int *notnull;
  size_t npk;
  char **pk;         /* primary key columns; SQLite rowid tables: "rowid" */
  size_t nidx;
  nodup_index_info *idx;  /* unique indexes only */
} nodup_table_info;

void table_info_free(nodup_table_info *t);

/* How a text value meets an SQLite column (its declared type, as the ORM
 * that wrote the DDL means it). SQLite stores what it is given where the
 * type's affinity cannot convert it: 'true' in a BOOL column stays the text
 * 'true', which a predicate `WHERE is_active` reads as false. */
enum {
  VALUE_TEXT = 0,  /* bound as given */
  VALUE_BOOL,      /* BOOL, BOOLEAN: true/false, t/f, yes/no, on/off, 1/0 -> 1 or 0 */
  VALUE_INT,       /* INTEGER affinity: a whole number, else refused */
  VALUE_REAL       /* REAL affinity: a number, else refused */
};
/* Resolve key columns to the catalog's spelling: *names (n strings) and
 * *idx (positions in t->cols; idx may be NULL) are new arrays the caller
 * frees. An expression term (a name that is not a column and holds a
 * '(' or starts with '"') is parsed (keyterm_parse) and spelled
 * canonically, lower("email"), its column's position in *idx. Refuses an
 * empty, unknown or repeated column (two terms over one column) by name,
 * and an expression outside the set with the functions allowed; on error
 * both are NULL. */
int table_info_key(nodup_db *db, const nodup_table_info *t, const char *const *cols,
                   size_t n, char ***names, int **idx);
/* ---- keyterm.c: expression key terms (lower(email)) ---- */

/* Parse a key term's spelling: a column, or a column inside lower, upper,
 * trim, ltrim or rtrim (nested up to KEY_TERM_FUNCS deep), names bare or
 * double-quoted, redundant parentheses allowed. With `catalog` also the
 * engines' own renderings of an index expression: PostgreSQL's casts to
 * text (lower((email)::text)), TRIM(BOTH FROM x) and btrim(x), SQLite's
 * `quoted` and [bracketed] names. The column name (unquoted) goes to col.
 * NULL on success, else the reason (static text). Pure. */
const char *keyterm_parse(const char *s, int catalog, key_term *term, buf *col);
/* 1 when `name` is an expression term's canonical spelling (what
 * table_info_key writes, lower("email")), decoding it into *term with its
 * column written to col (strlen(name) + 1 bytes). Never true for a name
 * that is not exactly that spelling. */
int keyterm_decode(const char *name, key_term *term, char *col);
/* One index column's nodup_index_info.terms entry into *out: a column
 * `col` as itself (NULL when it is spelled like an expression term), or
 * expression text `expr` (the catalog's) as the canonical spelling of the
 * key term it is, its column resolved in t's columns; NULL when it is no
 * such term: that index never backs a key. NODUP_ERR_NOMEM or NODUP_OK. */
int keyterm_index(const nodup_db *db, const nodup_table_info *t, const char *col,
                  const char *expr, char **out);
/* KEY_FUNC_* as SQL: "lower". */
const char *keyterm_func_name(unsigned f);
/* Append "_lower_trim_email" (a column: "_email"), the term's part of an
 * index name: t_lower_email_key stays apart from the plain t_email_key. */
void keyterm_name(buf *b, const key_term *term);
/* The column of t a key name (column or canonical term) is over, or -1. */
int keyterm_column(const nodup_db *db, const nodup_table_info *t, const char *name);

/* Index of column `name` in t, or -1. Case rules are the engine's. */
int table_info_column(const nodup_db *db, const nodup_table_info *t,
                      const char *name);

/* A foreign key that references a table. */
typedef struct nodup_fk_info {
  char *name;        /* constraint name (SQLite: "fk<N>" from the pragma id);
                      * inferred: the sibling partition's constraint */
  char *table;       /* referencing table, as table_info() accepts it */
  size_t ncols;
  char **cols;       /* referencing columns */
  char **refcols;    /* referenced columns, in the same order */
  char on_delete;    /* a r c n d */
  int inferred;      /* no constraint: a partition whose siblings declare one */
  char *where;       /* user reference "T(C) WHERE cond": cond (SQL on `table`,
                      * checked by userexpr_check); it filters the referencing
                      * rows wherever the reference is used. NULL otherwise */
} nodup_fk_info;

void fk_info_free(nodup_fk_info *fks, size_t n);

/* Run a backend's foreign-key query (one parameter) whose rows are
 * (constraint id, referencing table, seq, from column, to column or NULL
 * for the primary key, on_delete letter[, inferred 0/1]), one row per
 * column, and collect the foreign keys. Shared so both backends build them
 * the same way. */
int fk_collect_query(nodup_db *db, const nodup_table_info *t, const char *sql,
                     const char *param, nodup_fk_info **out, size_t *n);
/* Parse a user-declared reference "TABLE(COL[,COL...]) [WHERE cond]" to
 * t's primary key (one column per primary key column) into *fk; a WHERE
 * is checked to be one expression on TABLE (userexpr_check). Free with
 * fk_info_clear (the caller owns the strings, also after a failure). */
int fk_parse_ref(nodup_db *db, const nodup_table_info *t, const char *spec,
                 nodup_fk_info *fk);
/* Free one element's strings and zero it (fk_info_free's per element). */
void fk_info_clear(nodup_fk_info *fk);
/* 1 when a and b are the same reference: one table (as the catalog names
 * it, `aq` and `bq` their qualified names), the same columns to the same
 * referenced columns, and the same condition. */
int fk_same(const nodup_db *db, const char *aq, const nodup_fk_info *a, const char *bq,
            const nodup_fk_info *b);

/* ---- suspect.c: references the catalog does not declare ---- */

/*
 * The suspected references to t (nodup_scan_suspect explains the rules):
 * `fks` are the catalog's references to t, `user` the caller's (a suspect
 * one of them names is not listed), `ignore` "TABLE(COL)" specs to leave
 * out (an unknown table or column is refused by name), `key` the key's
 * columns in t. *out (free with suspect_free) gets them with rows = 0.
 * Nothing is suspected for a primary key of several columns.
 */
int suspect_find(nodup_db *db, const nodup_table_info *t, char *const *key, size_t nkey,
                 const nodup_fk_info *fks, size_t nfks, const nodup_fk_info *user,
                 size_t nuser, const char *const *ignore, size_t nignore,
                 nodup_scan_suspect **out, size_t *n);
/* Fill each suspect's rows: rows pointing at a loser of the mapping
 * scan_mapping_cte builds with the same arguments. */
int suspect_count(nodup_db *db, const nodup_table_info *t, char *const *key, size_t nkey,
                  const char *where, int nulls_equal, const char *keep,
                  nodup_scan_suspect *s, size_t n);
/* NODUP_ERR_REFERENCED with one message naming every suspect with rows,
 * the rows and the two ways on; NODUP_OK when none has any. `when` ends
 * the message ("nothing changed"). */
int suspect_refuse(nodup_db *db, const nodup_table_info *t, const nodup_scan_suspect *s,
                   size_t n, const char *when);
void suspect_free(nodup_scan_suspect *s, size_t n);

/* scan.c: append "WITH nodup_ranked AS (...), nodup_map AS (...) ": one
 * row per loser of t's key (rows filtered as a merge filters them) with
 * the referenced columns refcols (nodup_r1..) and its keeper's
 * (nodup_k1..). The keeper is the first row by `keep` (NULL: none), then
 * the primary key, as nodup_merge keeps. */
void scan_mapping_cte(buf *q, const nodup_table_info *t, char *const *key, size_t nkey,
                      const char *where, int nulls_equal, const char *keep,
                      char *const *refcols, size_t nref);

/* ---- userexpr.c: SQL users write is one expression ---- */

/* The first lexical reason s is not one expression (';', a comment,
 * unbalanced parentheses, an unterminated literal), or NULL; *at gets the
 * byte offset. Pure (unit-tested). */
const char *userexpr_lex(const char *s, size_t *at);
/* Refuse (NODUP_ERR_USAGE, naming `what` and the reason; an unknown column
 * NODUP_ERR_NO_COLUMN) an `expr` that is not exactly one expression over
 * t: a WHERE condition, or with order_by an ORDER BY list. NULL is fine. */
int userexpr_check(nodup_db *db, const nodup_table_info *t, const char *expr, int order_by,
                   const char *what);

/* ---- fkindex.c: supporting indexes for the references a merge deletes under ---- */

/* A reference with no index leading with its columns. */
typedef struct fk_gap {
  char *table;            /* the referencing table, as table_info() accepts it */
  char *qualified;        /* ... quoted */
  char **cols;            /* its referencing columns */
  size_t ncols;
  long long rows;         /* its rows: what each loser's delete reads without an index */
  char *index;            /* the temporary index's name, nodup_fk_<hash> */
  char *index_qualified;  /* ... quoted, with the table's schema */
  int built;              /* built by fkindex_build, not dropped yet */
} fk_gap;

/* The references among fks[0..n) with no supporting index (none: *out
 * NULL). Reads the catalog and counts each gap's rows. */
int fkindex_plan(nodup_db *db, const nodup_fk_info *fks, size_t nfks,
                 const nodup_fk_info *extra, size_t nextra, fk_gap **out, size_t *nout);
/* Build each gap's index (PostgreSQL: CONCURRENTLY, so call it outside a
 * transaction; a valid one left by a killed run is reused, an INVALID one
 * dropped first). */
int fkindex_build(nodup_db *db, fk_gap *g, size_t n);
/* Drop the indexes fkindex_build built; the first failure is returned,
 * every one is tried. */
int fkindex_drop(nodup_db *db, fk_gap *g, size_t n);
/* Append "nodup_fk_x on "t" ("c"); ..." for messages and reports. */
void fkindex_describe(buf *b, const fk_gap *g, size_t n);
void fkindex_free(fk_gap *g, size_t n);

/* ---- backends ---- */

typedef struct nodup_stmt nodup_stmt;   /* backend-defined prepared statement */
struct key_shape;

/* Called once per result row with the row's values as text (NULL = NULL).
 * Return nonzero to stop early. */
typedef int (*row_fn)(void *ctx, int ncols, const char *const *vals);

/* The online mode's statements besides the guard function (struct
 * nodup_backend's online_ddl): its trigger `name` on t, firing function
 * `name`() before inserts and before updates of the key; the function's
 * comment `note` (online_leftovers reads it back); dropping trigger `name`
 * on t, function `name`, or index `name` (schema-qualified) without
 * blocking writers, each if it exists. */
typedef enum online_stmt {
  ONLINE_GUARD_TRIGGER,
  ONLINE_GUARD_NOTE,
  ONLINE_DROP_TRIGGER,
  ONLINE_DROP_FUNCTION,
  ONLINE_DROP_INDEX
} online_stmt;

/* What a backend can do. Feature files ask db_can(db, BE_CAP_...), never
 * which backend answers, so a third engine declares what it has and gets
 * the right path everywhere (or a refusal naming what it lacks). The
 * backend's caps are what the engine can do at best; nodup_open copies
 * them into the connection and connect() clears what this server lacks
 * (a release too old for a feature). */
enum {
  BE_CAP_FOLDS_NAMES = 1 << 0,    /* identifiers compare case-insensitively (SQLite) */
  BE_CAP_SCHEMAS = 1 << 1,        /* tables live in schemas: the journal gets its own */
  BE_CAP_TABLE_LOCKS = 1 << 2,    /* LOCK TABLE under lock_timeout (a refusal is 55P03);
                                     otherwise begin_write locks the whole database */
  BE_CAP_ONLINE_INDEX = 1 << 3,   /* CREATE INDEX CONCURRENTLY and trigger guards:
                                     enforce --online and --abort, their leftovers */
  BE_CAP_NULLS_NOT_DISTINCT = 1 << 4,  /* unique indexes that treat NULLs as equal
                                          (connect clears it below PostgreSQL 15) */
  BE_CAP_DEFERRABLE_FKS = 1 << 5, /* SET CONSTRAINTS ALL IMMEDIATE runs deferred checks */
  BE_CAP_PARTITIONS = 1 << 6,     /* declarative partitions (keys must hold their key) */
  BE_CAP_CONSTRAINTS = 1 << 7,    /* ADD CONSTRAINT ... UNIQUE USING INDEX */
  BE_CAP_WRITE_LOCK_FIRST = 1 << 9, /* begin_write takes the write lock up front: a
                                       write transaction never fails to serialize */
  BE_CAP_ROWID = 1 << 10,         /* a table without a declared key has an integer
                                     rowid (SQLite) */
  BE_CAP_DISTINCT_ON = 1 << 11    /* SELECT DISTINCT ON (...): the many-keys call
                                     builds its plain insert (getorcreate_many.c) */
};

/* A role's rights in a schema (struct nodup_backend's schema_rights). */
typedef struct db_schema_rights {
  int exists;          /* the schema exists */
  int may_create;      /* may create tables in it; when it does not exist,
                          may create schemas in the database */
  int may_use;         /* USAGE on it */
  char user[128], database[128];   /* the role and database, for messages */
} db_schema_rights;

/* One index of a table (struct nodup_backend's index_state). */
typedef struct db_index_state {
  int exists;
  int valid;           /* usable (not a failed CONCURRENTLY build) */
  int attached;        /* a partition's index attached to its parent's */
  int constrained;     /* a constraint uses it */
  char qualified[160]; /* its quoted, schema-qualified name */
} db_index_state;

/* Rows archived as JSON that restore_rows / restore_cols put back: SQL
 * text the caller (journal.c, the owner of the layout) writes, so that a
 * backend knows no journal column. */
typedef struct db_json_rows {
  const char *from;    /* a FROM item with its alias */
  const char *where;   /* the rows wanted, with the backend's placeholders */
  const char *row;     /* restore_rows: the whole row, row_json's text */
  const char *rowid;   /* restore_rows: the row's rowid as text (BE_CAP_ROWID) */
  const char *old;     /* restore_cols: the old values, json_object's text */
  const char *cur;     /* restore_cols: the primary key's values now, likewise */
} db_json_rows;

/* Where a many-keys round's rows go (getorcreate_many.c): `inserted`
 * gets each row the insert returned, `found` each row of the lookup.
 * `attempt` is called before each try of a round, so the rows of a try
 * that failed and was rolled back are forgotten; `complete` says whether
 * every input row has found its row. */
typedef struct many_sink {
  row_fn inserted;
  row_fn found;
  void (*attempt)(void *ctx);
  int (*complete)(void *ctx);
  /* A row the insert returned is outside the key's predicate (its guard
   * column read 0): the backend undoes the round (PostgreSQL's guard
   * raises instead). */
  int (*outside)(void *ctx);
  void *ctx;
} many_sink;

struct nodup_backend {
  const char *name;
  unsigned caps;     /* BE_CAP_*: the engine's best; nodup_db.caps the server's */
  char placeholder;  /* '$' or '?' */
  /* Does `url` name a database of this backend? Asked in order, the
   * embedded default (which takes any path) last. */
  int (*accepts)(const char *url);
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
   * *inserted / found ids through the key's id buffer. See getorcreate.c.
   * A backend that can stop where it would wait has goc_start and
   * goc_step instead (key_call says how they work); SQLite this. */
  int (*get_or_create)(nodup_key *key, nodup_stmt *insert, nodup_stmt *lookup,
                       const char *const *params, int nparams, int *created);
  /* One get-or-create round of key->call, resumable: goc_start sends its
   * first statements; goc_step reads what arrived and sends what comes
   * next, until the round ends: NODUP_OK (key->id, call.created),
   * NODUP_ERR_CONFLICT (no statement yielded a row: getorcreate.c starts
   * another round), an error, or, only when call.nonblock, NODUP_AGAIN
   * with *wait filled. */
  int (*goc_start)(nodup_key *key);
  int (*goc_step)(nodup_key *key, nodup_wait *wait);
  /* Abandon key->call: cancel what is in flight and read its answers,
   * sending nothing new, so the connection is idle again. */
  void (*goc_cancel)(nodup_key *key);
  /* The update-or-create round (upsert.c) with shape s's statements: its
   * upsert and lookup when it has an upsert, else its compare, update and
   * insert. Sets *outcome (NODUP_CREATED...) and the id in key->id;
   * NODUP_ERR_CONFLICT when no statement yields a row. */
  int (*update_or_create)(nodup_key *key, const struct key_shape *s,
                          const char *const *params, int nparams, int *outcome);
  /* Append to q an expression that an INSERT INTO t AS alias ... ON
   * CONFLICT DO UPDATE can RETURN, 1 when the row existed (updated) and 0
   * when the statement inserted it; append nothing when the engine cannot
   * tell on t (then key.c builds the compare, update and insert instead).
   * NULL: never. */
  int (*row_existed)(nodup_db *db, const nodup_table_info *t, const char *alias, buf *q);
  /* The many-keys call (getorcreate_many.c). many_input appends the FROM
   * item a statement reads a batch from: `nodup_in`, with columns
   * nodup_c1 .. nodup_cN holding the values of t's columns cols[0..n) and
   * nodup_ord numbering the rows from 1, filled from the parameters
   * numbered from 1; *nparams gets how many and types[0..*nparams) their
   * types for prepare() (types already set, nonzero, are kept: the lookup
   * reads a prefix of the insert's columns and asks nothing again). The parameters carry all `total` columns of a
   * call (n <= total; the first n are read): PostgreSQL one array of each
   * column's type per column, so an item of the first n reads a prefix of
   * them; SQLite one JSON text (a flat array when total is 1, else an
   * array of rows). many_params encodes nrows rows of n values
   * (row-major; NULL is SQL NULL) as the parameters of all n: new strings
   * in *out, as many as many_input said (free them with strv_free). */
  int (*many_input)(nodup_db *db, const nodup_table_info *t, const int *cols, size_t n,
                    size_t total, buf *q, unsigned *types, int *nparams);
  int (*many_params)(size_t nrows, size_t n, const char *const *vals, char ***out);
  /* The many-keys round with shape s: its insert (all parameters) and
   * lookup (the first nlookup), each statement's rows to the sink.
   * PostgreSQL: both in one pipelined round trip, retried as a single
   * key's round; SQLite: the lookup alone, and only when sink->complete
   * says a row is missing, the insert and the lookup again under the
   * write lock. */
  int (*get_or_create_many)(nodup_key *key, const struct key_shape *s,
                            const char *const *params, int nparams, int nlookup,
                            const struct many_sink *sink);
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
  /* Undo (journal.c for runs.c). restore_rows: an INSERT of t's rows
   * archived as src->row (and src->rowid). restore_cols: an UPDATE
   * setting `cols` of t back to their values in src->old, the row found by
   * the primary key values in src->cur. Both run through changes(). */
  void (*restore_rows)(buf *q, const nodup_table_info *t, const db_json_rows *src);
  void (*restore_cols)(buf *q, const nodup_table_info *t, char *const *cols, size_t n,
                       const db_json_rows *src);
  /* Reconnect a connection the server dropped (NULL: cannot happen).
   * Statements prepared before are gone. */
  int (*reconnect)(nodup_db *db);
  const char *begin_write;   /* a transaction that will write: no upgrade */
  /* Run in each transaction a merge opens for itself, after begin_write
   * (NULL: nothing). Settings of that transaction only, so that a pooled
   * server connection keeps none of them. */
  const char *batch_settings;
  const char *lock_rows;     /* suffix locking a SELECT's rows, or "" */
  const char *temp_schema;   /* the connection's own schema of temporary tables, by
                                a name that reaches nothing else */
  /* Run one parameterised INSERT, UPDATE or DELETE; *n gets the rows it
   * changed, counted by the engine (no row is sent back per change, so a
   * merge's memory does not grow with the table). */
  int (*changes)(nodup_db *db, const char *sql, const char *const *params, int nparams,
                 long long *n);
  /* Open a write transaction (begin_write) for a caller that must not be
   * starved by a stream of short writers, waiting at most timeout_ms.
   * NULL: begin_write is fair already (PostgreSQL queues lock requests). */
  int (*begin_write_urgent)(nodup_db *db, long timeout_ms);
  /* A canonical text of predicate `pred` on t, so that two spellings of
   * one predicate compare equal (key.c: a partial index backs a key only
   * when its predicate is the key's). Sets *out, or leaves it empty when
   * the engine has no canonical form for it and its own ON CONFLICT
   * inference must judge (SQLite: anything but a boolean column test).
   * Never writes, and never fails on a predicate the engine can parse. */
  int (*predicate_canon)(nodup_db *db, const nodup_table_info *t, const char *pred, buf *out);
  /* Every column of every table a reference could live in (not system
   * tables, not nodup_*; views excluded), one row each to fn: (schema or
   * NULL, table name, the table as table_info() accepts it, column, type
   * class, in the primary key 0/1, the table another foreign key of this
   * column targets or NULL (PostgreSQL: on the table or any of its
   * partitions), a partition 0/1). The type class compares as a declared
   * foreign key would need: "int" and "text" for the integer and string
   * families, otherwise the engine's own type (PostgreSQL: base type OID;
   * SQLite: the declared type's affinity). suspect.c. */
  int (*columns)(nodup_db *db, row_fn fn, void *ctx);
  /* One row per valid, non-partial index of t: its columns '\x1f'-joined
   * in index order (an expression as an empty name). fkindex.c. */
  int (*index_columns)(nodup_db *db, const nodup_table_info *t, row_fn fn, void *ctx);
  /* *invalid = 1 when index `qualified` (quoted) exists and is INVALID (a
   * CONCURRENTLY build that failed). NULL where indexes are built in one
   * transaction and never left half-built (SQLite). */
  int (*index_invalid)(nodup_db *db, const char *qualified, int *invalid);
  /* The leaf partitions of `table` (as table_info() accepts it), one row
   * each: its name in the same form, quoted and qualified, its bare name;
   * ordered by the first; none for a table that is not partitioned. NULL
   * where there are no partitions (SQLite). */
  int (*leaves)(nodup_db *db, const char *table, row_fn fn, void *ctx);
  /* t's partition key, one row per column in order (an expression as an
   * empty name); no row when t is not partitioned. NULL with leaves. */
  int (*partition_key)(nodup_db *db, const nodup_table_info *t, row_fn fn, void *ctx);
  /* What the catalog says of index `index` (a bare name) of t; reads
   * t->qualified (PostgreSQL) or t->name (SQLite) only, so a caller that
   * has a partition's names and no table_info can fill just those. */
  int (*index_state)(nodup_db *db, const nodup_table_info *t, const char *index,
                     db_index_state *out);
  /* *on = 0 when the connection does not enforce foreign keys (SQLite's
   * PRAGMA foreign_keys); NULL: always enforced. */
  int (*fk_enforced)(nodup_db *db, int *on);
  /* Around a run of many write transactions over the same pages (a
   * batched merge): begin = 1 before the first, with *saved to keep what
   * it changes; begin = 0 after the last (success or not), with that
   * *saved, putting it back. NULL: nothing to do. */
  int (*bulk_writes)(nodup_db *db, int begin, long *saved);
  /* *out = 1 when t's text column col compares in byte order (slug.c's
   * range then needs no COLLATE "C"); NULL: always. */
  int (*byte_order)(nodup_db *db, const nodup_table_info *t, const char *col, int *out);
  /* Bulk load (import.c), NULL when there is none: begin starts loading
   * columns cols of t (PostgreSQL: COPY ... FROM STDIN); row appends one row of n text values (NULL = SQL NULL) in the
   * load's format to `out`, which put then sends; end finishes the load,
   * or aborts it when `abort_msg` is not NULL, and returns its outcome (a
   * failed row's error, as any statement's). A put that fails has ended
   * the load already (the server refused a row). */
  int (*copy_begin)(nodup_db *db, const nodup_table_info *t, char *const *cols, size_t n);
  void (*copy_row)(buf *out, const char *const *vals, size_t n);
  int (*copy_put)(nodup_db *db, const buf *data);
  int (*copy_end)(nodup_db *db, const char *abort_msg);
  int max_params;    /* bound parameters one statement may carry */
  /* printf format of "a IS DISTINCT FROM b" (two %s), for values of any
   * type: PostgreSQL compares text forms, since some types (json) have no
   * equality and a value that prints differently is content that differs. */
  const char *distinct_fmt;
  /* ---- time, schemas and sessions (the journal: journal.c) ---- */
  /* SQL expressions of the time now as UTC text "YYYY-MM-DD HH:MM:SS"
   * (text, so that it compares the same on every engine), and a printf
   * format (one %d: seconds) of the same that many seconds ago. */
  const char *utc_now;
  const char *utc_ago_fmt;
  /* *exists = 1 when table `name` is in `schema` (NULL where the engine
   * has no schemas), read from the catalog without any right on it. */
  int (*table_exists)(nodup_db *db, const char *schema, const char *name, int *exists);
  /* What the current role may do in `schema`, which need not exist.
   * NULL where there are no schemas (nor rights on them). */
  int (*schema_rights)(nodup_db *db, const char *schema, db_schema_rights *out);
  /* Into out, the first schema of the search path holding table `name`,
   * other than `except`; left empty when none. NULL: no search path. */
  int (*search_path_table)(nodup_db *db, const char *name, const char *except, buf *out);
  /* A lock on `name` held until the transaction ends; a second taker
   * waits. NULL where the write transaction (begin_write) serializes
   * writers already. */
  int (*xact_lock)(nodup_db *db, const char *name);
  /* Append the server session this connection runs in, as text that
   * session_alive can test later from any connection; nothing when it has
   * no session of its own (through a pooler) or the engine cannot name
   * one. NULL: there is never one (an embedded engine). */
  int (*session_id)(nodup_db *db, buf *out);
  /* Append a boolean SQL expression: the session named by SQL expression
   * `id` (a session_id text) still runs. NULL with session_id. */
  void (*session_alive)(buf *q, const char *id);
  /* ---- the online mode's guard and what a dead run leaves (enforce_online.c,
   * enforce_leftovers.c): NULL without BE_CAP_ONLINE_INDEX ---- */
  /* Append the statement creating trigger function `name` (no arguments,
   * written as given), the guard that does the job of t's unique index on
   * `key` while it is built: for each inserted row, or updated row whose
   * key changed, inside predicate `where` (NULL: every row) and with no
   * NULL in its key unless nulls_equal, writers of one key value go one
   * at a time, and the row is refused with SQLSTATE 23505, `message` and
   * constraint `constraint` when another row of t inside `where` has that
   * key (NULLs equal when nulls_equal). */
  void (*guard_function)(buf *q, const char *name, const nodup_table_info *t,
                         char *const *key, size_t nkey, const char *where, int nulls_equal,
                         const char *message, const char *constraint);
  /* The rest of the online mode's DDL, one statement appended to q (names
   * as given: quoted already, except a trigger's for ONLINE_DROP_TRIGGER). */
  void (*online_ddl)(buf *q, online_stmt what, const char *name, const nodup_table_info *t,
                     char *const *key, size_t nkey, const char *note);
  /* What online runs left on t, one row each to fn, nine values: kind, name,
   * extra, cols, on, relname, state, ready, pid (enforce_leftovers.c's
   * struct leftover says what each holds per kind). Kinds: 'g' a trigger
   * on t named like a guard (enforce_guard_name), its state read from its
   * function's comment (enforce_guard_comment: "...; backend <session_id>"
   * alive 1, dead 0; "; backend pooled" -1, as when the session's start is
   * hidden); 'f' t's guard function `guard` with no trigger; 'i' an INVALID
   * unique index on t or a leaf partition, state 1 while a build runs; 'p'
   * a valid unique index on a leaf partition that no index of t uses and
   * no constraint owns. Ordered by kind, then name. */
  int (*online_leftovers)(nodup_db *db, const nodup_table_info *t, const char *guard,
                          row_fn fn, void *ctx);
  /* Every guard function (named like one, on any table) that no trigger
   * uses, as rows of kind 'f' in online_leftovers' layout, by name. */
  int (*orphan_guards)(nodup_db *db, row_fn fn, void *ctx);
};

static inline int db_can(const nodup_db *db, unsigned cap);

extern const struct nodup_backend nodup_sqlite_backend;
extern const struct nodup_backend nodup_pg_backend;

/* db.c, for backends' URL handling: is `s` a libpq-style "key = value"
 * string; and fail with NODUP_ERR_URL saying "<what> \"<url>\": <detail>",
 * every password taken out of both. */
int db_looks_like_conninfo(const char *s);
int db_fail_url(nodup_db *db, const char *url, const char *what, const char *detail);

/* The backends, in the order nodup_open asks them (db.c). */
extern const struct nodup_backend *const nodup_backends[];

/* db.c: the time, schema and session members for feature files; each
 * does what its member says, or the documented nothing where the backend
 * has none (rights: all; search path: none; lock: none needed; session:
 * none, and session_alive then appends nothing and returns 0). */
void db_utc_now(buf *q, const nodup_db *db);
void db_utc_ago(buf *q, const nodup_db *db, int seconds);
int db_table_exists(nodup_db *db, const char *schema, const char *name, int *exists);
int db_schema_access(nodup_db *db, const char *schema, db_schema_rights *out);
int db_search_path_table(nodup_db *db, const char *name, const char *except, buf *out);
int db_xact_lock(nodup_db *db, const char *name);
int db_session_id(nodup_db *db, buf *out);
int db_session_alive(buf *q, const nodup_db *db, const char *id);
/* For the backends' arbiters(): "INSERT INTO t (cols) VALUES (params) ON
 * CONFLICT (cols) [WHERE where] DO NOTHING", the statement whose
 * inference names (or refuses) the indexes backing a key. */
void db_conflict_insert(buf *q, const nodup_db *db, const nodup_table_info *t, char *const *cols,
                        size_t n, const char *where);
/* The catalog's partitioning and index facts for enforce: the partition
 * key's columns to fn (none where the engine has no partitions), and one
 * index's state (out->exists = 0 when there is no such index). */
int db_partition_key(nodup_db *db, const nodup_table_info *t, row_fn fn, void *ctx);
int db_index_find(nodup_db *db, const nodup_table_info *t, const char *index,
                  db_index_state *out);
/* The online mode's members (guard_function, online_ddl, online_leftovers,
 * orphan_guards): NODUP_ERR_UNSUPPORTED from db_guard_function and
 * db_online_ddl, and no
 * rows from the others, where the backend has none. */
int db_guard_function(nodup_db *db, buf *q, const char *name, const nodup_table_info *t,
                      char *const *key, size_t nkey, const char *where, int nulls_equal,
                      const char *message, const char *constraint);
int db_online_ddl(nodup_db *db, buf *q, online_stmt what, const char *name,
                  const nodup_table_info *t, char *const *key, size_t nkey, const char *note);
int db_online_leftovers(nodup_db *db, const nodup_table_info *t, const char *guard, row_fn fn,
                        void *ctx);
int db_orphan_guards(nodup_db *db, row_fn fn, void *ctx);

/* ==== engine.c: which PostgreSQL-compatible engine answers, and what it
 * cannot hold (Citus, CockroachDB, YugabyteDB). Pure functions over the
 * server's answers; the PostgreSQL backend runs the ENGINE_SQL_* queries.
 * docs/SCALE.md explains every refusal to users. ==== */

typedef enum engine_kind {
  ENGINE_POSTGRES = 0,  /* PostgreSQL, or nothing we recognise as another */
  ENGINE_CITUS,         /* PostgreSQL with the citus extension installed */
  ENGINE_COCKROACH,     /* CockroachDB */
  ENGINE_YUGABYTE       /* YugabyteDB (YSQL) */
} engine_kind;

typedef struct engine_info {
  engine_kind kind;
  char release[32];     /* the engine's own release as it prints it:
                         * "v23.1.11", "2.18.0.0-b0", "12.1-1", "16.4" */
  int v[4];             /* release numbers: {23,1,11,0}, {2,18,0,0}, {12,1} */
  int pg_version;       /* the PostgreSQL it speaks, as server_version_num
                         * (YugabyteDB 11.2 -> 110002, CockroachDB 130000);
                         * 0 when unknown */
} engine_info;

/* One row, no parameters, no session state (works through PgBouncer in
 * transaction mode and on all four engines): version(), citus extversion
 * or NULL. */
extern const char ENGINE_SQL_DETECT[];
/* A table's Citus metadata, $1 = its quoted name; no row when Citus does
 * not know it. Use engine_citus_table_sql() to pick the one for the
 * installed Citus (pg_dist_schema exists from 12.0). */
extern const char ENGINE_SQL_CITUS_TABLE[];
extern const char ENGINE_SQL_CITUS_TABLE_11[];

/* Fill *out from what the server said: `version` is version()'s text (or
 * CockroachDB's crdb_version startup parameter), `server_version` the
 * server_version parameter (PQparameterStatus), `citus_version` the citus
 * extension's extversion; any may be NULL. Never fails: what it cannot
 * recognise is PostgreSQL. */
void engine_detect(engine_info *out, const char *version, const char *server_version,
                   const char *citus_version);
/* "PostgreSQL", "Citus", "CockroachDB", "YugabyteDB". Static storage. */
const char *engine_name(engine_kind kind);
/* 0 on YugabyteDB, whose server does not retry a pipeline's later
 * statements: send get-or-create's insert and lookup as two statements. */
int engine_pipeline_safe(const engine_info *e);
/* ENGINE_SQL_CITUS_TABLE or its pre-12.0 form. Static storage. */
const char *engine_citus_table_sql(const engine_info *e);

/* Where a table's rows live, from Citus's metadata. */
typedef enum engine_placement {
  ENGINE_TABLE_LOCAL = 0,    /* not a Citus table (or not Citus): one server */
  ENGINE_TABLE_DISTRIBUTED,  /* sharded by a distribution column */
  ENGINE_TABLE_SINGLE_SHARD, /* distributed without a column: one shard */
  ENGINE_TABLE_SCHEMA,       /* in a distributed schema: one shard */
  ENGINE_TABLE_REFERENCE,    /* one shard copied to every node */
  ENGINE_TABLE_CITUS_LOCAL   /* Citus local table on the coordinator */
} engine_placement;

typedef struct engine_table {
  const char *name;          /* for messages, as the user named it; borrowed */
  engine_placement placement;
  const char *dist_column;   /* DISTRIBUTED: the column; borrowed */
} engine_table;

/* Read one row of engine_citus_table_sql() (five values) into *t, whose
 * name the caller sets; dist_column points into vals. Without a row, leave
 * t->placement ENGINE_TABLE_LOCAL. NODUP_ERR_USAGE for a malformed row. */
int engine_citus_table(engine_table *t, int ncols, const char *const *vals);

typedef enum engine_op {
  ENGINE_OP_GET_OR_CREATE,   /* a key a unique index must arbitrate: key
                              * prepare, check, get-or-create, slug, import */
  ENGINE_OP_ENFORCE_LOCKED,  /* enforce (one lock, one transaction) */
  ENGINE_OP_ENFORCE_ONLINE,  /* enforce --online (guard trigger, CONCURRENTLY) */
  ENGINE_OP_MERGE,           /* merge, enforce --merge, undo, resume */
  ENGINE_OP_EXPRESSION_KEY   /* a key arbitrated by an expression index */
} engine_op;

typedef struct engine_request {
  engine_op op;
  const engine_table *table; /* Citus facts about the table, or NULL */
  char *const *key;          /* key columns, catalog spelling; may be empty */
  size_t nkey;
  int pipelined;             /* GET_OR_CREATE: insert and lookup share one Sync */
} engine_request;

/* NODUP_OK when r can hold on engine e. Otherwise the code to return
 * (NODUP_ERR_UNBACKED for a key Citus cannot back, NODUP_ERR_USAGE for the
 * rest, NODUP_ERR_NOMEM) with a one-line message in *msg (reset first)
 * naming the engine and its release, the reason with the manual's address,
 * and what to do instead. */
int engine_refusal(const engine_info *e, const engine_request *r, buf *msg);

/* The engine check every operation makes before it changes anything:
 * NODUP_OK on PostgreSQL and SQLite; on another engine the refusal of
 * engine_refusal() set as db's message. Citus: reads t's placement first
 * (one query, only there). */
int engine_check(nodup_db *db, const nodup_table_info *t, engine_op op, char *const *key,
                 size_t nkey);

struct nodup_db {
  const struct nodup_backend *be;
  void *native;          /* sqlite3 * or PGconn * */
  buf err;               /* message of the last failed call */
  char sqlstate[6];      /* nodup_sqlstate(): of the last database error */
  char constraint[64];   /* nodup_errconstraint(); 64: PostgreSQL's longest name */
  int server_version;    /* PostgreSQL server_version_num; SQLite libversion */
  unsigned caps;         /* BE_CAP_*: be->caps less what connect() found missing */
  unsigned next_stmt;    /* names PostgreSQL prepared statements */
  unsigned seed;         /* retry jitter */
  unsigned flags;        /* NODUP_OPEN_* given to nodup_open_ext */
  /* PostgreSQL through a pooler (db_pg.c's pg_session_check): the next
   * transaction may run in another server session, so nothing may be kept
   * on the server between transactions (prepared statements, temporary
   * tables, session settings, session advisory locks). */
  int pooled;
  engine_info engine;    /* PostgreSQL: which engine answers (zero: PostgreSQL) */
  unsigned long long retries;  /* nodup_retries() */
  buf notice;            /* nodup_notice(): what enforce_leftovers_note() found */
  /* nodup_db_set_journal(): the merge journal's schema (PostgreSQL); ""
   * is JOURNAL_DEFAULT_SCHEMA. 64 bytes: PostgreSQL's longest name. */
  char journal[64];
  size_t nkeys;          /* keys and slug handles prepared on it, not yet freed */
  int closing;           /* nodup_close() was called while nkeys > 0 */
  nodup_key *waiting;    /* the key whose non-blocking call is under way */
};

static inline int db_can(const nodup_db *db, unsigned cap) { return (db->caps & cap) != 0; }

/* NODUP_ERR_USAGE, with the reason, while a non-blocking get-or-create is
 * under way on db (its answers are still coming on the connection); the
 * public calls that would use the connection ask first. */
int db_idle(nodup_db *db);

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
  /* Update-or-create shapes: the last nset of the given columns are set on
   * update too (0: a get-or-create shape). Where the backend's row_existed
   * answers: upsert, the one INSERT ... ON CONFLICT DO UPDATE; otherwise
   * compare (SELECT pk and whether the set columns differ), update (by the
   * key, when they still differ) and insert (insert-if-absent). */
  size_t nset;
  nodup_stmt *upsert;
  nodup_stmt *compare;
  nodup_stmt *update;
  int *pcol;             /* per parameter (key values, then defaults): its
                          * column in key->table, for value conversion */
  int coerce;            /* some parameter's column converts its values
                          * (SQLite: BOOL, INTEGER, REAL); 0: none does */
  /* A many-keys shape (getorcreate_many.c): insert and lookup read a
   * batch's rows from the backend's many_input, not one row's values;
   * the insert takes nparams parameters, the lookup the first nlookup. */
  int many;
  int nparams, nlookup;
} key_shape;

/* A statement's parameters (getorcreate.c: goc_params_init). */
#define GOC_PARAMS_SMALL 32
typedef struct goc_params {
  const char *small[GOC_PARAMS_SMALL];
  const char **v;
  size_t n;
} goc_params;

/* Reading the results of one round's statements (db_pg.c), kept between
 * reads so a non-blocking call can stop when a result has not arrived. */
typedef struct round_read {
  int pos;               /* the statement whose results are being read */
  int nsent;             /* statements sent (then the Sync's COMMIT) */
  int nulls;             /* NULL results in a row */
  int pipelined;         /* in pipeline mode (else one statement, no Sync) */
  int fresh;             /* sent, nothing read yet */
  int rc;                /* the round's first failure */
  char state[6];         /* its SQLSTATE */
  char cons[128];        /* its constraint */
} round_read;

/* One get-or-create in progress on a key: getorcreate.c checks the input
 * and counts rounds, the backend's goc_start/goc_step run each round as
 * steps. Blocking calls run the same steps to the end; the non-blocking
 * pair returns between them. */
typedef struct key_call {
  int active;            /* a call is under way (between start and its end) */
  int nonblock;          /* return NODUP_AGAIN instead of waiting */
  int rounds;            /* rounds that ended with no row */
  int created;
  struct key_shape *s;   /* the call's statements */
  goc_params p;           /* their parameters, converted */
  /* the backend's: */
  int step;              /* what was sent last */
  int how;               /* the round's key_strategy */
  int owned;             /* the library owns the transaction (retries) */
  int attempt;           /* retried rounds */
  long long until_us;    /* GOC_BACKOFF: when it is over (CLOCK_MONOTONIC) */
  round_read rd;
} key_call;

/* How a backend's get-or-create round starts (db_pg.c): as the observed
 * hit rate suggests, or always one way. */
#define KEY_HIT_ONE 1024
typedef enum key_strategy {
  KEY_ADAPTIVE,
  KEY_LOOKUP_FIRST,   /* the lookup alone; on a miss, the insert alone, then the
                         lookup again only when the insert adds nothing */
  KEY_PIPELINED,      /* the insert and the lookup in one round trip */
  KEY_INSERT_FIRST    /* the insert alone; the lookup only when it adds nothing */
} key_strategy;

struct nodup_key {
  nodup_db *db;
  nodup_table_info *table;
  size_t ncols;
  char **cols;           /* catalog spelling */
  key_term *terms;       /* the key as statements write it (borrows cols) */
  int *colidx;           /* positions in table->cols */
  char *where;           /* predicate or NULL */
  char *index;           /* backing index name(s), "(none)" if unbacked */
  int backed;            /* 0 only for nodup_key_prepare_unbacked() */
  int nulls_equal;
  size_t nshapes;
  key_shape *shapes;
  buf id;                /* the last result's id */
  int in_predicate;      /* the last inserted row satisfied the predicate */
  int row_flag;          /* the last row's flag after its guard: an upsert's
                          * row existed (updated), a compare's differs */
  /* The share of get-or-create calls that found their row, as a moving
   * average over about the last 16 (KEY_HIT_ONE is all of them): the
   * backend picks its round from it (db_pg.c). */
  int hit_rate;
  key_strategy strategy; /* KEY_ADAPTIVE, or one round forced (tests, bench) */
  /* The last many-keys call's ids as text (what its results point into
   * until the next such call or nodup_key_free). */
  char *many_ids;
  int many_found_all;    /* the last many-keys call created nothing (SQLite
                          * then looks up first, without the write lock) */
  int many_guarded;      /* many-keys rounds left that skip the plain insert:
                          * one met a concurrent writer lately (db_pg.c) */
  key_call call;         /* the get-or-create under way */
};

/* ---- options.c ---- */

/* NODUP_ERR_USAGE, naming `what` ("nodup_merge_options") and both versions,
 * when an options struct is newer than this library knows (`known`). */
int options_check(nodup_db *db, unsigned int version, unsigned int known, const char *what);

/* ---- error.c ---- */

/* Set db's message (printf-style) and return `code`, so callers can write
 * `return nodup_fail(db, NODUP_ERR_NO_TABLE, "...", ...)`. */
int nodup_fail(nodup_db *db, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void nodup_clear_error(nodup_db *db);

/* Backends: the failure's SQLSTATE and constraint (NULL: none). Kept by
 * nodup_fail(), which only rewords the message; cleared by
 * nodup_clear_error() at the start of each public call. */
void db_set_sqlstate(nodup_db *db, const char *state, const char *constraint);

/* A failure kept across clean-up statements that would replace it (the
 * ROLLBACK after a failed batch, dropping a temporary index): saved, then
 * put back as it was, code, message, SQLSTATE and constraint. */
typedef struct db_error {
  char *msg;
  char sqlstate[6];
  char constraint[64];
} db_error;
void db_error_save(const nodup_db *db, db_error *e);
/* Put e back (when rc is a failure; rc == NODUP_OK clears the error) and
 * free it; returns rc. */
int db_error_restore(nodup_db *db, int rc, db_error *e);
/* ROLLBACK the open transaction (db_rollback_sql: run `sql`, a ROLLBACK
 * TO SAVEPOINT), keeping the failure that caused it; returns rc. */
int db_rollback(nodup_db *db, int rc);
/* End the write transaction the caller began (db_begin_write): COMMIT when
 * rc is NODUP_OK; otherwise, or when the COMMIT fails (SQLite keeps the
 * transaction open after a busy COMMIT), ROLLBACK with rc's error kept.
 * Returns the outcome. */
int db_end(nodup_db *db, int rc);
/* Make m, a message built by the caller, the connection's message and
 * return code; NODUP_ERR_NOMEM instead when m ran out of memory. Takes m
 * over either way. */
int db_fail_buf(nodup_db *db, int code, buf *m);
int db_rollback_sql(nodup_db *db, int rc, const char *sql);

/* merge.c: how merge_run() takes its transactions. */
typedef enum merge_mode {
  MERGE_BATCHED,          /* a transaction per batch; passes until one finds no group
                           * (nodup_merge, resume) */
  MERGE_ONE_PASS,         /* the same, but only the groups of the first pass, leaving
                           * what writers add meanwhile (enforce --online's first merge,
                           * which live writers could otherwise feed for ever) */
  MERGE_ONE_TRANSACTION   /* inside the caller's open transaction, all groups at once,
                           * no COMMIT (enforce: merge and index under one lock) */
} merge_mode;
/* A run to resume (runs.c): its id, its journal's schema (NULL:
 * journal_schema(db)) and its last step. */
typedef struct merge_resume {
  const char *run;
  const char *journal;
  long long laststep;
} merge_resume;
/* merge.c: the whole run, nodup_merge() with its checks done; `resume`
 * NULL for a new run. *out: the report (NULL on failure). */
int merge_run(nodup_merge_report **out, nodup_db *db, const char *table,
              const char *const *cols, size_t ncols, const char *where,
              const nodup_merge_options *opt, merge_mode mode, const merge_resume *resume);
/* survive.c: survivorship policies (nodup_merge_options.columns). The
 * order is the policy names' (policy_names). */
enum {
  SURVIVE_KEEPER = 0,
  SURVIVE_FIRST_NON_NULL,
  SURVIVE_MAX,
  SURVIVE_MIN,
  SURVIVE_SUM,
  SURVIVE_LONGEST,
  SURVIVE_NEWEST
};
typedef struct survive_rule {
  char *table;    /* the table's qualified SQL name (nodup_table_info.qualified) */
  char *column;   /* as the catalog spells it */
  char *order;    /* SURVIVE_NEWEST: the column ordering the members; else NULL */
  int policy;     /* SURVIVE_* */
} survive_rule;
/* How survive_parse finds a table by name (the merge's schema cache). */
typedef int (*survive_lookup_fn)(void *ctx, const char *name, const nodup_table_info **out);
/* Parse and check the specs "[TABLE.]COL=POLICY" of a merge of t by `key`
 * (catalog spelling) into *out (n rules; survive_free). `reach` lists the
 * qualified names of the tables whose rows the merge can merge (t first).
 * NODUP_ERR_USAGE, naming the spec, for anything nodup.h says is refused. */
int survive_parse(nodup_db *db, const nodup_table_info *t, char *const *key, size_t nkey,
                  const char *const *specs, size_t n, char *const *reach, size_t nreach,
                  survive_lookup_fn lookup, void *ctx, survive_rule **out, size_t *nout);
void survive_free(survive_rule *r, size_t n);
/* The rule for column `col` (catalog spelling) of x, or NULL. */
const survive_rule *survive_find(const survive_rule *r, size_t n, const nodup_table_info *x,
                                 const char *col);
/* The window expression choosing a group's surviving value of `v` (SQL)
 * among members aliased s (s.nodup_rn: 0 for the kept row, else the
 * loser's rank), partitioned by `part`; `order` is the newest policy's
 * ordering column as SQL. */
void survive_expr(buf *q, int policy, const char *v, const char *order, const char *part);

/* ---- journal.c: where merge runs are recorded (merge.c writes, runs.c
 * and runs_list.c read) ---- */

#define JOURNAL_VERSION 2                /* nodup_meta's version of the layout */
#define JOURNAL_DEFAULT_SCHEMA "nodup"   /* PostgreSQL */
/* A run whose owner cannot be asked (another host, through a pooler) is
 * interrupted when its heartbeat is older than this. */
#define JOURNAL_LEASE_SECONDS 300

/* The schema new runs are recorded in: PostgreSQL nodup_db_set_journal()'s
 * or "nodup"; NULL on SQLite (the main database). Borrowed from db. */
const char *journal_schema(const nodup_db *db);
/* Append journal table `name` ("nodup_runs") of `schema` (NULL: none),
 * quoted. */
void journal_table(buf *q, const char *schema, const char *name);
/* Append template `tmpl` with "{s}" the schema prefix, "{now}" the time as
 * UTC text "YYYY-MM-DD HH:MM:SS", "{ago}" the same JOURNAL_LEASE_SECONDS
 * ago, and ?N the backend's placeholders. */
void journal_sql(buf *q, const nodup_db *db, const char *schema, const char *tmpl);
/* *version: 0 no journal in `schema`, 1 one an earlier nodup made (no
 * nodup_meta), else nodup_meta's. Reads the catalog only. */
int journal_version(nodup_db *db, const char *schema, int *version);
/* Create `schema`'s journal, or upgrade it to JOURNAL_VERSION, in the
 * caller's transaction (PostgreSQL: the schema too, refusing with the
 * GRANT or CREATE SCHEMA to run when the role may not). A journal of a
 * newer version is refused. */
int journal_ensure(nodup_db *db, const char *schema);
/* PostgreSQL: the schema of an earlier nodup's journal (the first schema
 * of the search path with a nodup_runs, other than journal_schema()) as a
 * new string, or NULL. Always NULL on SQLite. */
int journal_legacy(nodup_db *db, char **schema);
/* Where run is recorded: journal_schema(), else the legacy journal.
 * *schema a new string (NULL on SQLite), *version its journal's version.
 * NODUP_ERR_NO_RUN when neither has it. */
int journal_find(nodup_db *db, const char *run, char **schema, int *version);

/* Who runs a run (recorded with it, checked by every write). */
typedef struct journal_owner {
  char token[128];     /* unique to one merge_run() call */
  char host[256];      /* gethostname() */
  char pid[24];
  char pid_start[32];  /* the process's start (/proc), "" if unknown */
  char backend[64];    /* PostgreSQL, direct: "pid backend_start-epoch"; else "" */
} journal_owner;
int journal_owner_init(nodup_db *db, journal_owner *o);

/* Insert the run (status running, owned by o) and its arguments; batch 0:
 * batches sized by time (a resume sizes them so too). */
int journal_record(nodup_db *db, const char *schema, const char *run, const journal_owner *o,
                   const char *table, char *const *key, size_t nkey, const char *where,
                   const nodup_merge_options *opt, size_t batch);
/* Resume, inside the caller's transaction: make o the owner of a failed or
 * interrupted run (its row locked first; one a batch holds is running);
 * NODUP_ERR_NO_RUN for a run that is running, done or undone. */
int journal_claim(nodup_db *db, const char *schema, const char *run, const journal_owner *o);
/* The first statement of each batch: refresh the heartbeat, holding the
 * run's row until the batch ends; NODUP_ERR_NO_RUN when o no longer owns
 * the run or it is no longer running (taken over, undone, forgotten). */
int journal_heartbeat(nodup_db *db, const char *schema, const char *run, const journal_owner *o);
/* The last statement of each batch: add what it did to the run's counters. */
int journal_batch_done(nodup_db *db, const char *schema, const char *run, const journal_owner *o,
                       long long groups, long long repointed, long long deleted,
                       long long filled);
/* End the run as "done" or "failed" (only o, only while running). */
int journal_status(nodup_db *db, const char *schema, const char *run, const journal_owner *o,
                   const char *status);
/* Delete every journal row of run, and (PostgreSQL) its pooled pass
 * table nodup_groups_<run>, in the caller's transaction. */
int journal_remove(nodup_db *db, const char *schema, const char *run);
/* A new run that failed before any batch committed: remove its rows in a
 * transaction of its own, if o still owns it. Best effort (a failure
 * leaves it recorded as running, so interrupted). */
void journal_discard(nodup_db *db, const char *schema, const char *run, const journal_owner *o);

/* Append the six columns journal_state() reads, for nodup_runs AS r of a
 * journal of `version`: status, host, pid, pid_start, whether the server
 * process is alive (1/0, NULL: none recorded), heartbeat within the lease
 * (1/0). */
void journal_state_columns(buf *q, const nodup_db *db, const char *schema, int version);
/* NODUP_RUN_* from those six values: a run recorded running is running
 * while its server process lives (direct PostgreSQL), else while its
 * process lives when it is on this host, else while its heartbeat is
 * within the lease; interrupted otherwise. */
int journal_state(const char *const *v);

typedef struct journal_row {
  int found, state;    /* NODUP_RUN_* */
  int busy;            /* `lock`: a batch holds the row (so it is running) */
  char status[16], host[256], pid[24];
} journal_row;
/* Read run's state from schema's journal; with `lock`, inside the
 * caller's transaction, lock its row (PostgreSQL; SQLite's write
 * transaction is the lock), never waiting: a row a batch holds is a
 * running run's (busy). NODUP_ERR_NO_RUN when the journal lacks it. */
int journal_read_row(nodup_db *db, const char *schema, int version, const char *run, int lock,
                     journal_row *r);
/* NODUP_ERR_NO_RUN: "merge run R is running (process P on H): `what` until
 * it stops". */
int journal_refuse_running(nodup_db *db, const char *run, const journal_row *r,
                           const char *what);

/* Reading a run back (runs.c: resume and undo). load_run: one row, run's
 * tbl, where_sql, keep_sql, batch, nulls_equal, fill_nulls, one_to_one,
 * archive, status, its last step, then journal_state()'s six; none when
 * the journal lacks it. load_args: (kind, value) rows, kind "key", "ref",
 * "ignore" or "column", in order. */
int journal_load_run(nodup_db *db, const char *schema, int version, const char *run, row_fn fn,
                     void *ctx);
int journal_load_args(nodup_db *db, const char *schema, const char *run, row_fn fn, void *ctx);
/* Undo, in the caller's transaction. steps: (step, kind, tbl, col) rows,
 * newest step first (indexing the log and archive by step first).
 * step_rows: how many rows step changed ("delete": archived rows, else
 * logged ones). restore: put them back in t (delete: the archived rows;
 * else columns cols to their logged values), *changed the rows written.
 * mark_undone: the run's status. */
int journal_steps(nodup_db *db, const char *schema, const char *run, row_fn fn, void *ctx);
int journal_step_rows(nodup_db *db, const char *schema, const char *run, const char *step,
                      int deleted, long long *n);
int journal_restore(nodup_db *db, const char *schema, const nodup_table_info *t, const char *run,
                    const char *step, int deleted, char *const *cols, size_t ncols,
                    long long *changed);
int journal_mark_undone(nodup_db *db, const char *schema, const char *run);
/* nodup runs: each run of schema's journal (of `version`) to runs_fn as
 * (run, tbl, started, finished, groups, archive, heartbeat, repointed,
 * deleted, filled, then journal_state()'s six), then each key column to
 * keys_fn as (run, column) in order. */
int journal_list(nodup_db *db, const char *schema, int version, row_fn runs_fn, row_fn keys_fn,
                 void *ctx);
/* Drop schema's journal when it holds no run any more (an earlier
 * nodup's, left in the application's schema). */
int journal_drop_if_empty(nodup_db *db, const char *schema);

/* A run's changes, as merge_log.c writes them (in its batch's transaction).
 * pass_table: the quoted name of the pass table a pooled run keeps in the
 * journal's schema. step: one nodup_steps row per column of `cols` (one
 * with a NULL column when n is 0). The rest append the journal's part of a
 * statement whose rows merge.c selects: log_insert "INSERT INTO nodup_log
 * (run, step, cur, old) SELECT ?1, ?2, " (the caller appends cur's and
 * old's JSON and its FROM; parameters run, step); archive_insert the same
 * for nodup_archive (pk, keeper, row; parameters run, table, step);
 * rekey_begin "UPDATE nodup_archive AS a SET keeper = u.nodup_new FROM ("
 * and rekey_end ") AS u WHERE ..." around the caller's SELECT of
 * (nodup_old, nodup_new) (parameters run, table, after step). */
void journal_pass_table(buf *q, const char *schema, const char *run);
int journal_step(nodup_db *db, const char *schema, const char *run, const char *step,
                 const char *kind, const char *table, char *const *cols, size_t n);
void journal_log_insert(buf *q, const nodup_db *db, const char *schema);
void journal_archive_insert(buf *q, const nodup_db *db, const char *schema);
void journal_rekey_begin(buf *q, const nodup_db *db, const char *schema);
void journal_rekey_end(buf *q, const nodup_db *db);

/* ---- enforce*.c (enforce_int.h has the rest): what an interrupted online
 * enforce leaves (PostgreSQL), found by every command on the key ---- */

/* PostgreSQL's name for a UNIQUE constraint, <table>_<cols>_key, cut to 63
 * bytes on a character boundary; the name enforce gives its index and a
 * partitioned run each leaf's. New string (NULL: out of memory). */
char *enforce_default_name(const char *table, char *const *key, size_t n);
/* Run sql[0..n) in one transaction under SET LOCAL lock_timeout, each as a
 * single statement; a lock not granted in time is retried with back-off
 * (a few times), so writers queued behind us never wait long. */
int enforce_ddl(nodup_db *db, long timeout_ms, const char *const *sql, size_t n);
/* The guard trigger's (and function's) name for t: one per table. */
void enforce_guard_name(const nodup_table_info *t, char out[64]);
/* Append "COMMENT ON FUNCTION guard() IS '...'" to sql: the index being
 * built and the backend installing the guard (pid and start time; "pooled"
 * through a transaction pooler), so leftovers can tell a live run. */
int enforce_guard_comment(nodup_db *db, const char *guard, const char *index, buf *sql);
/*
 * What an interrupted `nodup enforce --online` left on t that concerns the
 * key: guard trigger and function, this table's guard function without
 * trigger, INVALID unique indexes on the key's columns, our indexes on leaf
 * partitions that the parent does not use. *msg (reset first) gets one
 * sentence listing each, what it does to writers, and the two commands that
 * finish or remove them (or, when the run is alive, its backend and how to
 * stop it); empty when there is nothing. `self`: worded for the run that
 * left them. One catalog query; PostgreSQL (and Citus) only, nothing
 * elsewhere. Errors: the query's.
 */
int enforce_leftovers(nodup_db *db, const nodup_table_info *t, char *const *key, size_t nkey,
                      const char *where, int self, buf *msg);
/*
 * The one-line hook for the commands that look at a key (key prepare and
 * check, scan, merge): when rc is NODUP_OK or NODUP_ERR_UNBACKED, set db's
 * notice to enforce_leftovers() (cleared when nothing is left) and, when
 * rc is the refusal, append it to db's message. Returns rc; a failed query
 * only when rc was NODUP_OK. Any other rc is returned untouched.
 */
int enforce_leftovers_note(nodup_db *db, const nodup_table_info *t, char *const *key,
                           size_t nkey, const char *where, int rc);
/* For when the catalog cannot be read (the server went away): append to m
 * "; could not remove or check what this run left on T (why): it may still
 * hold ..." naming the guard (NULL: none installed) and the index (NULL:
 * no build started), and the commands to run once the server answers. */
void enforce_leftovers_unknown(buf *m, const nodup_table_info *t, char *const *key, size_t nkey,
                               const char *where, const char *why, const char *guard,
                               const char *index, int partitioned);
#define LEFTOVERS_KEY_GUARD_ONLY 0x1u  /* keep a guard of another key (--abort) */
#define LEFTOVERS_PARTITIONS 0x2u      /* drop our valid leaf indexes too (--abort) */
/*
 * Remove what enforce_leftovers() lists (guards of any key unless
 * LEFTOVERS_KEY_GUARD_ONLY; valid partition indexes only with
 * LEFTOVERS_PARTITIONS), then every orphan guard function of any table.
 * Refuses with NODUP_ERR_RETRY, changing nothing, while the guard's run is
 * alive in another backend. Appends what it removed to *removed, "; "
 * between items. Indexes being built are left alone.
 */
int enforce_leftovers_remove(nodup_db *db, const nodup_table_info *t, char *const *key,
                             size_t nkey, long timeout_ms, unsigned flags, buf *removed);

/* ---- key.c helpers used by getorcreate.c ---- */
/* NODUP_ERR_USAGE with message `what` (db's, when db is not NULL) unless
 * db is an open connection and the call names a table and at least one
 * key column: the first check of every call that takes a key. */
int key_args_check(nodup_db *db, const char *table, const char *const *cols, size_t ncols,
                   const char *what);
int key_shape_get(nodup_key *key, const char *const *vals,
                  const char *const *dcols, size_t nd, key_shape **out);
/* key_shape_get for update-or-create: dcols are the create columns, then
 * the nset set columns (a key column among these is refused). */
int key_upsert_shape_get(nodup_key *key, const char *const *vals, const char *const *dcols,
                         size_t nd, size_t nset, key_shape **out);
/* Append what ends every insert-if-absent of the key: " ON CONFLICT
 * (terms) [WHERE predicate] DO NOTHING RETURNING pk[, predicate guard]". */
void key_insert_tail(buf *q, const nodup_key *key);
/* Its " RETURNING pk[, predicate guard]" alone (the many-keys call's plain
 * insert). */
void key_returning(buf *q, const nodup_key *key);
/* key_shape_get for the many-keys call (no values: its rows carry no
 * NULL key value). */
int key_many_shape_get(nodup_key *key, const char *const *dcols, size_t nd, key_shape **out);
/* Convert params[0..n) (the key's values, then s's defaults) in place by
 * their columns' value classes (SQLite; nothing to do on PostgreSQL).
 * NODUP_ERR_USAGE, naming the column and the value, for one that cannot
 * be what its column declares. */
int key_coerce(nodup_key *key, const key_shape *s, const char **params, size_t n);
/* One value *v for column c of t (key_coerce's rule): *v may be replaced
 * by a static string ("1", "0"). */
int value_coerce(nodup_db *db, const nodup_table_info *t, int c, const char **v);
/* Row callback: stores the primary key columns joined by ',' into key->id
 * and, when the row carries a predicate guard column, key->in_predicate;
 * and key->row_flag from a column after that one (0 without). */
int key_store_id(void *key, int ncols, const char *const *vals);

/* ---- getorcreate.c helpers used by upsert.c ---- */
/* A statement's parameters: the key's values, then a's, then b's (the
 * defaults; upsert: the create values, then the set values). Up to
 * GOC_PARAMS_SMALL fit in the struct, so the common call allocates
 * nothing; goc_params_free() releases a larger array. Used in place (v
 * may point into small). The struct is defined with key_call. */
int goc_params_init(goc_params *p, const nodup_key *key, const char *const *vals,
                    const char *const *a, size_t na, const char *const *b, size_t nb);
void goc_params_free(goc_params *p);
/* Prefix db's message with the key's table (rc unchanged; NODUP_OK passes). */
int goc_name_table(nodup_key *key, int rc);
/* NODUP_ERR_NULL_KEY unless every NULL in vals is one the index treats
 * as equal. */
int goc_check_nulls(nodup_key *key, const char *const *vals);
/* The refusal of an unbacked key for call `what`, with the DDL that would
 * back it. */
int goc_refuse_unbacked(nodup_key *key, const char *what);
/* How many rounds a keyed call (get-or-create, update-or-create, many
 * keys) runs while no statement yields its row, and the NODUP_ERR_CONFLICT
 * it then reports: `what` ("2 of 10 rows") found no row that many times
 * because it was deleted each time between our write and our lookup, or
 * because the key's predicate is narrower than the index's (the insert
 * conflicts with a row the lookup cannot see). */
#define KEY_MAX_ROUNDS 5
int goc_fail_rounds(nodup_key *key, const char *what);
/* End a non-blocking call under way on key without finishing it (the
 * backend's goc_cancel), for nodup_key_free: its statements' results
 * are still coming, and the caller has given up on them. */
void goc_abandon(nodup_key *key);

/* ---- getorcreate_many.c, for key.c ---- */
/* Build and prepare a many-keys shape's insert and lookup (dcols: the
 * default columns in catalog spelling). */
int many_build(nodup_key *key, key_shape *s, char *const *dcols, size_t nd);
/* Free what the key's last many-keys call left (its ids). */
void many_ids_free(nodup_key *key);

#endif

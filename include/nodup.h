/*
 * nodup.h -- create a database row exactly once, on SQLite and PostgreSQL.
 *
 * This is the only public header of libnodup. It reads as the manual: every
 * call documents its contract, its errors and who owns what it returns.
 *
 * The problem: applications create rows with check-then-insert (SELECT,
 * nothing found, INSERT). Two concurrent callers both miss and both insert.
 * nodup makes a unique index the arbiter and gives one call that returns the
 * existing row or creates it, with a flag saying which, under any amount of
 * concurrency.
 *
 * Conventions (as in libgit2 and curl):
 *  - Every fallible call returns an int from the nodup_error enum; NODUP_OK
 *    is 0. Codes are append-only and never renumbered.
 *  - A readable one-line message naming the table, column, index or
 *    constraint involved is left on the connection; read it with
 *    nodup_errmsg(). It stays until the next call on that connection.
 *  - "Out" parameters come first. What a call returns through `**out` belongs
 *    to the caller and is released by the matching *_free / *_close, which
 *    accept NULL. Strings the library returns directly are borrowed; each
 *    call says until when.
 *  - Inputs (table names, column names, values) are copied; the caller may
 *    free them as soon as the call returns.
 *  - Values are text (`const char *`), as in libpq: the database converts
 *    them to the column's type. A NULL pointer is SQL NULL.
 *  - A nodup_db and everything prepared on it belong to one thread at a time.
 *    Open one connection per thread.
 */
#ifndef NODUP_H
#define NODUP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define NODUP_EXTERN __declspec(dllexport)
#elif defined(__GNUC__)
#define NODUP_EXTERN __attribute__((visibility("default")))
#else
#define NODUP_EXTERN
#endif

#define NODUP_VERSION "0.1.0"

/*
 * Error codes. One X-macro table generates the enum and nodup_strerror(), so
 * the two cannot drift (libuv's UV_ERRNO_MAP). Append only.
 */
#define NODUP_ERROR_MAP(X)                                                     \
  X(OK, 0, "success")                                                          \
  X(ERR_NOMEM, 1, "out of memory")                                             \
  X(ERR_USAGE, 2, "invalid argument")                                          \
  X(ERR_URL, 3, "malformed or unsupported database URL")                       \
  X(ERR_CONNECT, 4, "cannot connect to the database")                          \
  X(ERR_NO_TABLE, 5, "no such table")                                          \
  X(ERR_NO_COLUMN, 6, "no such column")                                        \
  X(ERR_UNBACKED, 7, "no unique index backs this key")                         \
  X(ERR_NULL_KEY, 8, "NULL in a key column that NULLs never conflict on")      \
  X(ERR_CONSTRAINT, 9, "another constraint was violated")                      \
  X(ERR_RETRY, 10, "transient conflict; retry the caller's transaction")       \
  X(ERR_PREDICATE, 11, "the new row would fall outside the key's predicate")   \
  X(ERR_NO_PKEY, 12, "table has no primary key")                               \
  X(ERR_DB, 13, "database error")                                              \
  X(ERR_CONFLICT, 14, "a row outside the key blocks the insert")               \
  X(ERR_DUPLICATE, 15, "the key is not unique in the table")

typedef enum nodup_error {
#define NODUP_X_ENUM(name, num, text) NODUP_##name = num,
  NODUP_ERROR_MAP(NODUP_X_ENUM)
#undef NODUP_X_ENUM
} nodup_error;

/* A connection to one database. Opaque. */
typedef struct nodup_db nodup_db;

/* A key prepared on a table: columns, optional predicate, backing index. */
typedef struct nodup_key nodup_key;

/*
 * The outcome of one get-or-create.
 *
 * `id` is the row's primary key as text (an integer, a UUID...). For a
 * composite primary key the columns' texts are joined with ','. It is
 * borrowed from the key handle and valid until the next call on that key or
 * nodup_key_free(). `created` is 1 when this call inserted the row, 0 when
 * the row already existed (possibly inserted concurrently by someone else).
 */
typedef struct nodup_result {
  const char *id;
  int created;
} nodup_result;

/* ---------------------------------------------------------------------------
 * Errors
 */

/* A static sentence describing `code` ("no such table"). Never NULL. */
NODUP_EXTERN const char *nodup_strerror(int code);

/*
 * The message of the last failed call on `db`, naming what was involved
 * ("table \"conference\": no unique index on (conference_id, app_id)...").
 * Borrowed: valid until the next call on `db` or on anything prepared on it.
 * Returns "" when the last call succeeded, and a fixed text for db == NULL
 * (so a failed nodup_open can still be explained: see nodup_open).
 */
NODUP_EXTERN const char *nodup_errmsg(const nodup_db *db);

/* ---------------------------------------------------------------------------
 * Connections
 */

/*
 * Open a connection.
 *
 * `url` selects the backend:
 *  - "postgres://...", "postgresql://..." or a libpq conninfo string
 *    ("host=/tmp dbname=app") is PostgreSQL.
 *  - "sqlite:PATH", "file:PATH?..." (an SQLite URI) or a plain path is
 *    SQLite. A plain path or "sqlite:PATH" must name an existing file: a
 *    typo must not silently create an empty database. To create one, use an
 *    SQLite URI with mode=rwc ("file:app.db?mode=rwc").
 *
 * SQLite connections run in WAL mode with a busy timeout (5 s), extended
 * result codes and foreign_keys=ON.
 *
 * On success *out is a new connection; release it with nodup_close().
 * On failure *out is still set to a connection object that holds only the
 * error message (read it with nodup_errmsg(), then nodup_close() it), or to
 * NULL when even that could not be allocated (NODUP_ERR_NOMEM).
 *
 * Errors: NODUP_ERR_URL (unknown scheme, malformed conninfo),
 * NODUP_ERR_CONNECT (server down, file missing, authentication failed),
 * NODUP_ERR_NOMEM.
 */
NODUP_EXTERN int nodup_open(nodup_db **out, const char *url);

/* Close the connection and free it. Accepts NULL. Keys prepared on `db`
 * must be freed first. */
NODUP_EXTERN void nodup_close(nodup_db *db);

/* "sqlite" or "postgresql". Static string. */
NODUP_EXTERN const char *nodup_db_backend(const nodup_db *db);

/*
 * The native handle: `sqlite3 *` for SQLite, `PGconn *` for PostgreSQL.
 * Borrowed; owned by `db`. Use it to run your own statements on the same
 * connection (for example to open a transaction around nodup calls); do not
 * close it.
 */
NODUP_EXTERN void *nodup_db_handle(nodup_db *db);

/*
 * Run one or more SQL statements that return no rows we need (DDL, BEGIN,
 * COMMIT, setup scripts). No parameters: never build `sql` from untrusted
 * input. Errors: NODUP_ERR_DB and the constraint codes, with the database's
 * message.
 */
NODUP_EXTERN int nodup_exec(nodup_db *db, const char *sql);

/* ---------------------------------------------------------------------------
 * Keys
 */

/*
 * Prepare a key: `ncols` columns of `table`, plus an optional partial-index
 * predicate `where` (SQL text, trusted, as Django's `condition=`; NULL for
 * none). `table` may be schema-qualified on PostgreSQL ("app.conference");
 * names are matched exactly (case-sensitive), as quoted identifiers.
 *
 * Preparing looks up the unique index or constraint that backs exactly this
 * key and predicate, and asks the engine to confirm it (ON CONFLICT
 * inference). A key that nothing backs is refused, and so is a lookup wider
 * than the index (a column in the key that the index does not have): both
 * would let duplicates through. So is a partial key backed only by a
 * non-partial index: rows outside the predicate would block inserts while
 * the lookup skips them. The message then names the indexes that come close
 * and contains the `CREATE UNIQUE INDEX ...` statement that would back the
 * key.
 *
 * On success *out is a new key; release it with nodup_key_free() before
 * closing `db`. On failure *out is NULL.
 *
 * Errors: NODUP_ERR_NO_TABLE, NODUP_ERR_NO_COLUMN, NODUP_ERR_UNBACKED,
 * NODUP_ERR_NO_PKEY (PostgreSQL table without a primary key, or an SQLite
 * WITHOUT ROWID table without one), NODUP_ERR_USAGE, NODUP_ERR_DB.
 */
NODUP_EXTERN int nodup_key_prepare(nodup_key **out, nodup_db *db,
                                   const char *table, const char *const *cols,
                                   size_t ncols, const char *where);

/*
 * Prepare a key that no unique index has to back. Such a key can look rows
 * up (nodup_find) and insert them (nodup_insert), which is all that
 * check-then-insert needs, so `nodup race --naive` uses it to show the bug
 * nodup exists for. nodup_get_or_create() on it fails with
 * NODUP_ERR_UNBACKED unless an index does back it. Same errors as
 * nodup_key_prepare() otherwise.
 */
NODUP_EXTERN int nodup_key_prepare_unbacked(nodup_key **out, nodup_db *db,
                                            const char *table,
                                            const char *const *cols,
                                            size_t ncols, const char *where);

/* Free a key. Accepts NULL. */
NODUP_EXTERN void nodup_key_free(nodup_key *key);

/*
 * The name of the unique index (or constraint) that backs the key, or NULL
 * for a key from nodup_key_prepare_unbacked() that nothing backs. Borrowed:
 * valid until nodup_key_free().
 */
NODUP_EXTERN const char *nodup_key_index(const nodup_key *key);

/*
 * 1 when the backing index treats NULLs as equal (PostgreSQL 15's
 * NULLS NOT DISTINCT), so NULL key values are allowed; 0 otherwise.
 */
NODUP_EXTERN int nodup_key_nulls_equal(const nodup_key *key);

/*
 * Check whether a unique index backs the key without preparing it. Returns
 * NODUP_OK and copies the index name into `index_name` (at most `size`
 * bytes, NUL-terminated), or NODUP_ERR_UNBACKED with the suggested DDL in
 * nodup_errmsg(); or another error for an unknown table or column.
 * `index_name` may be NULL.
 */
NODUP_EXTERN int nodup_key_check(nodup_db *db, const char *table,
                                 const char *const *cols, size_t ncols,
                                 const char *where, char *index_name,
                                 size_t size);

/*
 * The CREATE UNIQUE INDEX statement that would back this key (the text
 * nodup_key_prepare() puts in its refusal), written into `buf`, at most
 * `size` bytes, NUL-terminated. Returns the length it needs (like
 * snprintf), or -1 if the arguments are invalid.
 */
NODUP_EXTERN int nodup_key_ddl(nodup_db *db, const char *table,
                               const char *const *cols, size_t ncols,
                               const char *where, char *buf, size_t size);

/* ---------------------------------------------------------------------------
 * Get or create
 */

/*
 * Return the row whose key columns equal `vals` (and which satisfies the
 * key's predicate), creating it when there is none.
 *
 * `vals` has one text value per key column, in the order given to
 * nodup_key_prepare(). The new row also gets `ndefaults` other columns:
 * `default_cols[i] = default_vals[i]` (a NULL value is SQL NULL). Defaults
 * are used only when the row is created; they are never compared. Every
 * value is bound as a parameter. A new row must satisfy the key's predicate
 * (otherwise the index would not cover it): the predicate is evaluated on
 * the row as inserted, with column defaults and triggers applied, and a row
 * outside it is not kept.
 *
 * Under any concurrency, exactly one caller per key gets created = 1, and all
 * callers get the same id.
 *
 * PostgreSQL: one network round trip for a hit and for a miss (pipeline
 * mode: an INSERT that inserts nothing when the row exists, then a
 * fresh-snapshot SELECT); no savepoint; no sequence value consumed on a hit.
 * When the connection is not inside a transaction, the library owns the
 * implicit one and retries serialization failures and deadlocks (40001,
 * 40P01) a bounded number of times. Inside the caller's transaction it
 * returns NODUP_ERR_RETRY instead and the caller must roll back and retry
 * (this is the case under REPEATABLE READ or SERIALIZABLE when a concurrent
 * transaction inserted the key). A failed INSERT aborts the caller's
 * transaction, as any failed statement does in PostgreSQL.
 *
 * SQLite: a hit is one SELECT and takes no write lock; a miss runs in
 * BEGIN IMMEDIATE (or inside the caller's transaction, if one is open).
 *
 * Errors:
 *  - NODUP_ERR_NULL_KEY: a key value is NULL and the index does not treat
 *    NULLs as equal (NULLs never conflict, so the key cannot be enforced).
 *  - NODUP_ERR_CONSTRAINT: the insert violated another constraint (another
 *    unique index, NOT NULL, CHECK, foreign key); nodup_errmsg() names it.
 *    Never reported as "existing".
 *  - NODUP_ERR_PREDICATE: the new row would not satisfy the key's
 *    predicate. Nothing written. (On PostgreSQL inside the caller's
 *    transaction this, like any failed statement, aborts that transaction.)
 *  - NODUP_ERR_CONFLICT: the insert conflicts with a row that the lookup
 *    does not see, several times over: the key's predicate is narrower than
 *    the partial index's. (A non-partial index under a partial key is
 *    refused earlier, by nodup_key_prepare.)
 *  - NODUP_ERR_RETRY: see above; also SQLITE_BUSY inside the caller's
 *    transaction.
 *  - NODUP_ERR_DB: anything else, with the database's message.
 * On error nothing was inserted by this call.
 */
NODUP_EXTERN int nodup_get_or_create(nodup_key *key, const char *const *vals,
                                     const char *const *default_cols,
                                     const char *const *default_vals,
                                     size_t ndefaults, nodup_result *out);

/*
 * Look the key up without creating anything. Returns NODUP_OK with
 * out->id set and out->created = 0 when the row exists, NODUP_OK with
 * out->id = NULL when it does not. Same NULL rules as nodup_get_or_create.
 */
NODUP_EXTERN int nodup_find(nodup_key *key, const char *const *vals,
                            nodup_result *out);

/*
 * Insert a row with a plain INSERT: no lookup, no conflict handling. A
 * duplicate key fails with NODUP_ERR_CONSTRAINT naming the index. This is
 * the second half of check-then-insert; `nodup race --naive` uses it to show
 * what the race does without nodup. On success out->id is the new row's id
 * and out->created = 1.
 */
NODUP_EXTERN int nodup_insert(nodup_key *key, const char *const *vals,
                              const char *const *default_cols,
                              const char *const *default_vals,
                              size_t ndefaults, nodup_result *out);

/* ---------------------------------------------------------------------------
 * Duplicate counting
 */

/*
 * Count the key's duplicate groups in `table` (rows satisfying `where` that
 * share all key values; rows with a NULL key value never count, as a unique
 * index would allow them). Works on keys that nothing backs yet: that is
 * when duplicates can exist. `groups` receives the number of keys that
 * occur more than once, `redundant` the number of rows beyond the first in
 * each group (what a merge would remove). Either may be NULL.
 */
NODUP_EXTERN int nodup_count_duplicates(nodup_db *db, const char *table,
                                        const char *const *cols, size_t ncols,
                                        const char *where, long long *groups,
                                        long long *redundant);

/* ---------------------------------------------------------------------------
 * Scanning for duplicates (read-only)
 */

/* One duplicate group: the key's values (text; NULL for SQL NULL) and how
 * many rows share them. */
typedef struct nodup_scan_group {
  char **values;            /* scan->nkey entries */
  long long rows;
} nodup_scan_group;

/*
 * A table that references the scanned one: a declared foreign key found in
 * the catalog, or one the caller declared (Django's generic relations).
 * `repoint` is how many of its rows reference a row a merge would remove;
 * `collide` how many of those would then collide in one of its unique
 * indexes (link tables, one-to-one children), in `collide_index` (the index
 * with the most collisions, NULL when none).
 */
typedef struct nodup_scan_ref {
  char *table;              /* quoted, qualified name as SQL text */
  char *constraint;         /* FK constraint name; NULL when user-declared */
  size_t ncols;
  char **cols;              /* referencing columns */
  char **ref_cols;          /* referenced columns of the scanned table */
  int declared;             /* 1 from the catalog, 0 from nodup_scan_options.refs */
  int one_to_one;           /* the referencing columns are themselves unique */
  char on_delete;           /* 'a' no action, 'r' restrict, 'c' cascade, 'n' set null, 'd' set default */
  long long repoint;
  long long collide;
  char *collide_index;
} nodup_scan_ref;

/* The report of nodup_scan(). Read-only for the caller; freed by
 * nodup_scan_free(). */
typedef struct nodup_scan_report {
  long long groups;         /* keys that occur more than once */
  long long redundant;      /* rows beyond the first in each group */
  size_t nkey;
  char **key;               /* key columns, catalog spelling */
  size_t nlargest;
  nodup_scan_group *largest;  /* largest groups first, at most options.limit */
  size_t nrefs;
  nodup_scan_ref *refs;
  int foreign_keys_off;     /* SQLite: PRAGMA foreign_keys is off */
} nodup_scan_report;

typedef struct nodup_scan_options {
  int nulls_equal;          /* treat NULL key values as equal (default: not) */
  size_t limit;             /* how many largest groups to list (0: 10) */
  const char *const *refs;  /* extra references "TABLE(COL[,COL...])" to the primary key */
  size_t nrefs;
} nodup_scan_options;

/*
 * Find the duplicates of a key (`where` optional) in `table`, and for every
 * table that references it, what a merge would re-point and what would
 * collide. Read-only. References come from the catalog: multi-column
 * foreign keys, keys to a unique column other than the primary key,
 * self-references, foreign keys on partitions (each counted once) and
 * SQLite foreign keys that target the primary key implicitly. `opt` may be
 * NULL. On success *out is a new report (free with nodup_scan_free()).
 *
 * Errors: NODUP_ERR_NO_TABLE, NODUP_ERR_NO_COLUMN, NODUP_ERR_NO_PKEY,
 * NODUP_ERR_USAGE (a malformed reference), NODUP_ERR_DB.
 */
NODUP_EXTERN int nodup_scan(nodup_scan_report **out, nodup_db *db, const char *table,
                            const char *const *cols, size_t ncols, const char *where,
                            const nodup_scan_options *opt);

/* Free a scan report. Accepts NULL. */
NODUP_EXTERN void nodup_scan_free(nodup_scan_report *report);

#ifdef __cplusplus
}
#endif

#endif /* NODUP_H */

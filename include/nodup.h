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
 *  - Threads: a nodup_db and everything prepared on it (keys) belong to one
 *    thread at a time; open one connection per thread (a pool hands each
 *    request its own). Different connections may be used by different
 *    threads at once, for every call. Calls without a connection
 *    (nodup_strerror, nodup_libversion*, nodup_slugify, nodup_url_redact)
 *    may be called from any thread. The library's own process-wide state
 *    is safe under threads: the ICU transliterator behind slugs is created
 *    once (pthread_once) and used under a mutex, run ids come from an
 *    atomic counter. It relies on SQLite being built thread-safe (Debian's
 *    is: sqlite3_threadsafe() != 0; connections are opened with
 *    SQLITE_OPEN_NOMUTEX since each belongs to one thread) and on libpq's
 *    thread safety (PQisthreadsafe()). nodup never installs signal
 *    handlers nor changes process state (locale, umask, environment).
 */
#ifndef NODUP_H
#define NODUP_H

#include <stddef.h>
#include <stdio.h>

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

/*
 * The version, in one place: CMake reads these three lines for the
 * project's and the shared library's version (as libgit2 reads its
 * version.h). NODUP_VERSION_NUMBER is MAJOR * 1000000 + MINOR * 1000 +
 * PATCH, for #if; nodup_libversion() gives what the library linked at run
 * time was built as, which can differ from the header an application was
 * compiled with.
 */
#define NODUP_VERSION_MAJOR 0
#define NODUP_VERSION_MINOR 1
#define NODUP_VERSION_PATCH 0
#define NODUP_VERSION_STR2(x) #x
#define NODUP_VERSION_STR(x) NODUP_VERSION_STR2(x)
#define NODUP_VERSION                                                  \
  NODUP_VERSION_STR(NODUP_VERSION_MAJOR) "." NODUP_VERSION_STR(NODUP_VERSION_MINOR) "." \
      NODUP_VERSION_STR(NODUP_VERSION_PATCH)
#define NODUP_VERSION_NUMBER \
  (NODUP_VERSION_MAJOR * 1000000 + NODUP_VERSION_MINOR * 1000 + NODUP_VERSION_PATCH)

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
  X(ERR_DUPLICATE, 15, "the key is not unique in the table")                  \
  X(ERR_REFERENCED, 16, "rows to delete are still referenced")                 \
  X(ERR_NO_RUN, 17, "no such merge run, or not in a state that allows this")  \
  X(ERR_CHANGED, 18, "rows changed since the merge: cannot undo")              \
  X(ERR_UNSUPPORTED, 19, "the database engine cannot guarantee this")       \
  X(AGAIN, 20, "not finished yet: wait as told, then poll again")

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

/* The library's version: "0.1.0" and NODUP_VERSION_NUMBER as it was built
 * (sqlite3_libversion()'s pattern). Static string. */
NODUP_EXTERN const char *nodup_libversion(void);
NODUP_EXTERN int nodup_libversion_number(void);

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

/*
 * The SQLSTATE of the last failed call on `db`, as data: five characters
 * ("23505" unique violation, "40001" serialization failure, "55P03" lock
 * not available, "42P01" no such table...), or "" when the failure did not
 * come from the database (bad arguments, a refusal of nodup's own) or the
 * last call succeeded. PostgreSQL: the server's code. SQLite, which has
 * none, the code its error would have on PostgreSQL where one fits
 * (SQLITE_CONSTRAINT_UNIQUE and _PRIMARYKEY "23505", _FOREIGNKEY "23503",
 * _NOTNULL "23502", _CHECK "23514", another constraint "23000", SQLITE_BUSY
 * and SQLITE_LOCKED "55P03", SQLITE_NOMEM "53200"), else "HV000". Never NULL; borrowed like
 * nodup_errmsg(). Match on it, never on the message's text.
 */
NODUP_EXTERN const char *nodup_sqlstate(const nodup_db *db);

/*
 * The constraint (or unique index) the last failed call's error names, as
 * the database spells it, or "" (none, or SQLite, which does not name its
 * unique indexes in errors). Never NULL; borrowed like nodup_errmsg().
 */
NODUP_EXTERN const char *nodup_errconstraint(const nodup_db *db);

/*
 * What the caller should pass on although the call succeeded, or NULL.
 * Today one thing: what an interrupted `nodup enforce --online` left on
 * the table of the key a call looked at (PostgreSQL), in one sentence:
 * its guard trigger and function (writers of one key wait for each other,
 * and a key already in the table is refused with SQLSTATE 23505, so of
 * concurrent first inserts of a key all but one fail instead of finding the
 * row), INVALID unique indexes on the key's columns (still updated, and
 * checked for duplicates, by every write), partition indexes no parent
 * index uses, then `nodup enforce ... --online` to finish the run and
 * `nodup enforce --abort ...` to remove what it left (or, while the run
 * is alive in another backend, which one and how to stop it).
 *
 * Set, or cleared, by the calls that look at a key's table:
 * nodup_key_prepare, nodup_key_prepare_unbacked, nodup_key_check (and so
 * nodup_slug_create and nodup_import_csv), nodup_scan, nodup_merge,
 * nodup_merge_resume and nodup_enforce; other calls leave it. When such a
 * call fails with NODUP_ERR_UNBACKED, its message ends with the same
 * sentence. Borrowed: valid until the next of those calls on `db`. Costs
 * one catalog query per call, on PostgreSQL only (SQLite has no online
 * mode: always NULL there).
 */
NODUP_EXTERN const char *nodup_notice(const nodup_db *db);

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
 * result codes and foreign_keys=ON. WAL is a lasting property of the file,
 * so it is switched on only by a connection that may write: not by one
 * opened with NODUP_OPEN_READONLY, and not when the file or its directory
 * cannot be written (then the connection reads, and writes fail).
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

/* Flags for nodup_open_ext(); combine with |. */
#define NODUP_OPEN_READONLY 0x1u /* the connection only reads (see below) */

/*
 * nodup_open() with `flags`. NODUP_OPEN_READONLY is for callers that only
 * inspect (nodup_key_prepare, nodup_scan, lookups): SQLite opens the file
 * read-only, leaves its journal mode as it is (no switch to WAL, no -wal or
 * -shm file made for a file in rollback-journal mode), works on a file or
 * directory the process cannot write, and fails every write with
 * NODUP_ERR_DB naming SQLite's "attempt to write a readonly database"; an
 * SQLite URI cannot create a file this way. PostgreSQL: accepted and
 * changes nothing on the connection (a session setting would leak to other
 * clients through a transaction-mode pooler); the calls listed above never
 * write there. Unknown flag bits are NODUP_ERR_USAGE.
 */
NODUP_EXTERN int nodup_open_ext(nodup_db **out, const char *url, unsigned flags);

/* Close the connection and free it. Accepts NULL. With keys prepared on
 * `db` still open (their statements live on the connection), it is only
 * marked, as sqlite3_close_v2() does: the keys keep working, and the last
 * nodup_key_free() closes it. Nothing else may use `db` after this call. */
NODUP_EXTERN void nodup_close(nodup_db *db);

/*
 * Inside the caller's transaction
 *
 * Every call may be made with a transaction open on the connection (begun
 * with nodup_exec(db, "BEGIN") or on nodup_db_handle()). What each does
 * then, tested in tests/test_txn.c on both engines:
 *
 *  - nodup_get_or_create, nodup_find, nodup_insert, nodup_slug_create:
 *    run inside it; what they write commits or rolls back with it.
 *    SQLite: a miss runs in a savepoint, so a failed call (another
 *    constraint, a row outside the predicate) leaves the transaction as it
 *    was and usable. PostgreSQL: no savepoint (a subtransaction per call
 *    would overflow each backend's cache of 64 and slow every snapshot on
 *    the server), so a failed call aborts the caller's transaction, as any
 *    failed statement does; roll back, or to a savepoint of your own.
 *    Serialization failures and deadlocks (40001, 40P01), and SQLite's
 *    SQLITE_BUSY, come back as NODUP_ERR_RETRY: only the caller can re-run
 *    its transaction. Under REPEATABLE READ and SERIALIZABLE a key another
 *    transaction inserted after the caller's snapshot is NODUP_ERR_RETRY
 *    too: the row exists, but this transaction cannot see it.
 *  - nodup_import_csv: inside a savepoint; a refused import (a key already
 *    there) rolls back to it and leaves the transaction usable, on both
 *    engines.
 *  - nodup_key_prepare, nodup_key_check, nodup_scan,
 *    nodup_count_duplicates: read only; the transaction's snapshot is what
 *    they see.
 *  - nodup_merge, nodup_merge_resume, nodup_undo, nodup_enforce: refused
 *    with NODUP_ERR_USAGE, nothing changed: they commit as they go (a merge
 *    batch, an index built CONCURRENTLY) and cannot be one step of a
 *    larger transaction.
 *
 * Outside a transaction each call owns its own and retries 40001 and 40P01
 * a bounded number of times, with jitter, at every isolation level.
 *
 * Through a transaction-mode pooler (PgBouncer pool_mode=transaction,
 * pgcat, RDS Proxy) every call works as on a direct connection: nodup finds
 * at connect whether the server process that answers is the one libpq
 * connected to, and if not keeps nothing on the server between
 * transactions (statements are sent unnamed, merge's working table is an
 * ordinary unlogged table named after the run). A transaction the caller
 * opens keeps its server session until it ends, as the pooler promises.
 */

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
 * How many times calls on `db` re-ran their own transaction after a
 * serialization failure or deadlock (40001, 40P01) since it was opened,
 * or, in nodup_get_or_create_many(), after its plain insert met another
 * transaction's row for one of its keys (see there): the price of
 * SERIALIZABLE or of hot keys, for monitoring and for the benchmarks. 0
 * for NULL and on SQLite, which waits for its lock instead.
 */
NODUP_EXTERN unsigned long long nodup_retries(const nodup_db *db);

/*
 * Where `db` keeps the merge journal (the nodup_* tables that record each
 * merge run, its changes and the rows it deleted, for resume, undo and
 * nodup_runs_list): on PostgreSQL, in its own schema, out of the
 * application's. `schema` is that schema's name as it is (not quoted; it
 * is quoted in every statement); NULL restores the default, "nodup". Every
 * call on db that writes or reads the journal uses it: nodup_merge,
 * nodup_merge_resume, nodup_undo, nodup_enforce with merge, nodup_runs_list
 * and nodup_runs_forget. The schema is created, with the tables, by the
 * first merge that passes its checks (never by a refused one); a role that
 * may not create it gets NODUP_ERR_DB naming the schema and the CREATE
 * SCHEMA ... AUTHORIZATION or GRANT that would allow it, and an
 * administrator can create it beforehand so that the application's role
 * needs only USAGE and CREATE on it.
 * Runs recorded by an earlier nodup, in the first schema of the search
 * path (usually public), are still found there by resume, undo, list and
 * forget.
 * SQLite has no schemas: its journal is the nodup_* tables of the main
 * database, beside the data (one transaction covers both); any schema is
 * refused there with NODUP_ERR_USAGE, NULL accepted.
 * Errors: NODUP_ERR_USAGE (SQLite, an empty name, one longer than 63
 * bytes, or one starting with "pg_", which PostgreSQL reserves).
 */
NODUP_EXTERN int nodup_db_set_journal(nodup_db *db, const char *schema);

/*
 * Run one or more SQL statements that return no rows we need (DDL, BEGIN,
 * COMMIT, setup scripts). No parameters: never build `sql` from untrusted
 * input. Errors: NODUP_ERR_DB and the constraint codes, with the database's
 * message.
 */
NODUP_EXTERN int nodup_exec(nodup_db *db, const char *sql);

/*
 * Copy the database URL `url` into `out` (at most `size` bytes,
 * NUL-terminated) without its passwords, to show it in a message, a log or
 * a command line to paste. nodup's own messages (nodup_errmsg) already
 * show URLs this way, and replace by *** any password text that libpq's
 * messages quote.
 *
 * Taken out: in a URI the ":password" of "user:password@" and every
 * "password=" and "sslpassword=" query parameter (keys percent-decoded);
 * in a libpq keyword/value string every password / sslpassword pair,
 * quoted or not. Malformed strings are read to hide more rather than less:
 * the user part ends at the last '@' before the query, and words or query
 * pieces without '=' after a password are taken to belong to it. The rest
 * is kept as written, so the result connects the same way when the
 * password comes from elsewhere (PGPASSWORD, ~/.pgpass). File paths and
 * SQLite URIs come back unchanged.
 *
 * Returns the length of the whole result (like snprintf: it fit when
 * smaller than `size`), which is never more than strlen(url), so
 * strlen(url) + 1 bytes always suffice; -1 when `url` is NULL, `out` is
 * NULL with a nonzero `size`, or memory ran out (`out` is then "").
 */
NODUP_EXTERN int nodup_url_redact(char *out, size_t size, const char *url);

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
 * Expression terms. A key term may also be a column inside lower(),
 * upper(), trim(), ltrim() or rtrim(), nested up to 4 deep: "lower(email)",
 * "lower(trim(email))", "LOWER( \"Email\" )". It is backed by a unique index
 * on that expression (CREATE UNIQUE INDEX ... (lower(email))), however the
 * index spells it. Its value, in every call that takes key values, is the
 * column's raw value: the lookup compares lower(trim("email")) with
 * lower(trim($1)), and a new row stores the value as given (a row keeps its
 * first spelling). The rules, in order: a string that names a column
 * (exactly, as above) is that column, so a column literally named
 * "lower(x)" stays reachable as it always was; otherwise a string holding
 * '(' or starting with '"' is parsed as a term, names inside matched like
 * key columns and optionally double-quoted ("lower(\"Email\")"); anything
 * else is an unknown column. Only these functions, which mean the same on
 * both engines, are accepted; others are refused (NODUP_ERR_USAGE) naming
 * the spelling and the functions allowed. SQLite's lower() and upper()
 * fold ASCII letters only; PostgreSQL's follow the column's collation. A
 * term's NULL is the column's (lower(NULL) is NULL). One term per column:
 * "email" and "lower(email)" in one key are refused. A citext column
 * (PostgreSQL) is a plain column key, case-insensitive by its type. The
 * same spellings work wherever a key is named: nodup_key_check,
 * nodup_key_ddl, nodup_count_duplicates, nodup_scan, nodup_merge (grouping
 * by the term; the keeper keeps its own spelling) and nodup_enforce (which
 * builds the expression index, without a constraint: PostgreSQL's take
 * columns only).
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
 * PostgreSQL: no savepoint, and no sequence value consumed on a hit. The
 * statements are an INSERT that inserts nothing when the row exists and a
 * SELECT in a snapshot of its own; how a call sends them follows the hit
 * rate its key observed over about its last 16 calls. Mostly hits: the
 * SELECT alone (a hit costs what a plain SELECT costs; a miss then sends
 * the INSERT, one more round trip, and the SELECT again only if another
 * caller created the row meanwhile). Mostly misses: the INSERT alone (a miss
 * costs one INSERT; a hit then sends the SELECT). Otherwise, and for a new
 * key: both in one pipeline, one round trip either way. Keep a key for
 * many calls (one per connection) to get the cheaper rounds.
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
 * Non-blocking get-or-create, for event loops (PostgreSQL).
 *
 * nodup_get_or_create() waits in the kernel for the server's answer. An
 * event loop (libuv, asyncio, epoll) must not wait there, and handing each
 * call to a thread costs two thread wake-ups, more than a hit's round trip.
 * These two calls are the same get-or-create, same statements and same
 * guarantees, split where it would wait, as libpq's PQconnectPoll() and
 * curl's multi interface are:
 *
 *   nodup_wait w;
 *   int rc = nodup_get_or_create_start(key, vals, NULL, NULL, 0, &res, &w);
 *   while (rc == NODUP_AGAIN) {
 *     // wait until w.fd is readable (w.fd >= 0), or for w.timeout_us
 *     // microseconds (w.fd == -1: a backoff before a retried round)
 *     rc = nodup_get_or_create_poll(key, &res, &w);
 *   }
 *   // rc and res as nodup_get_or_create() would have returned them
 *
 * NODUP_AGAIN is not a failure: the call is under way. Any other return
 * ends it, and `out` then holds what nodup_get_or_create() gives (its id
 * borrowed from the key in the same way). Calling poll before the wait is
 * over is harmless: it answers NODUP_AGAIN again, with what is left.
 *
 * Until the call ends, `vals` and the defaults must stay valid, and no
 * other call may use the key's connection: those that would are refused
 * with NODUP_ERR_USAGE. nodup_key_free() on the key abandons the call: it
 * asks the server to cancel what it runs and reads the answers, sending
 * nothing new (a statement that had finished stands; one the cancel stops
 * leaves nothing). Statements are sent at start and between polls with
 * libpq's blocking sends, which wait only if the socket's send buffer is
 * full: a key's values would have to be larger than that buffer.
 *
 * SQLite has nothing to wait for but a file lock: both calls return
 * NODUP_ERR_UNSUPPORTED there (run nodup_get_or_create() in a thread).
 * NODUP_ERR_USAGE when a non-blocking call is already under way on the
 * connection.
 */
typedef struct nodup_wait {
  int fd;             /* wait until readable; -1: wait for the timeout only */
  long timeout_us;    /* wait this long (fd == -1); -1 with a socket: no limit */
} nodup_wait;

NODUP_EXTERN int nodup_get_or_create_start(nodup_key *key, const char *const *vals,
                                           const char *const *default_cols,
                                           const char *const *default_vals,
                                           size_t ndefaults, nodup_result *out,
                                           nodup_wait *wait);
NODUP_EXTERN int nodup_get_or_create_poll(nodup_key *key, nodup_result *out,
                                          nodup_wait *wait);

/*
 * nodup_get_or_create() for many keys in one call: the rows whose key
 * columns equal each of `nrows` sets of values, creating those that do
 * not exist, with two statements whatever nrows is.
 *
 * `vals` holds nrows rows of key values, row after row, each with one
 * value per key column in nodup_key_prepare()'s order (vals[r * ncols +
 * i]). `default_vals` likewise holds nrows rows of `ndefaults` values for
 * `default_cols`, used for the rows created. out[r] (nrows of them) gets
 * row r's id and whether this call created it. The ids stay valid until
 * the next many-keys call on the key or nodup_key_free().
 *
 * Results are in input order. A key given more than once gets the same id
 * each time, with created = 1 for its first occurrence at most (and the
 * first occurrence's defaults). Under any concurrency the guarantee is
 * nodup_get_or_create()'s, per key: exactly one caller gets created = 1,
 * and all get the same id, whether they call one key at a time or in
 * overlapping batches.
 *
 * PostgreSQL: one round trip: an INSERT ... SELECT of the missing keys
 * (a key that exists evaluates no column default) and a lookup in a
 * snapshot of its own, each reading every row from one array per column.
 * The insert takes the rows in key order, so batches that share keys wait
 * for each other instead of deadlocking. Transactions, retries and
 * NODUP_ERR_RETRY as nodup_get_or_create(); both statements run in one
 * transaction, so an error leaves nothing of the call. In the call's own
 * transaction the insert is first a plain one, without ON CONFLICT (which
 * costs the server a speculative insertion per row): when another
 * transaction wrote one of the keys since the call's snapshot, it fails
 * as a whole, nothing of it stays, and the round runs again with ON
 * CONFLICT DO NOTHING (counted by nodup_retries()), as do the key's next
 * 16 rounds. Such a failed try draws the sequence values of the keys it
 * would have created, as any rolled-back insert does; a key that exists
 * draws none. Inside the caller's transaction the insert always has ON
 * CONFLICT: a failed statement would abort the caller's work.
 *
 * SQLite: one write transaction (BEGIN IMMEDIATE, or a savepoint inside
 * the caller's transaction) with the insert and the lookup. When the
 * key's last many-keys call created nothing, the lookup runs first without
 * any lock, and a call whose keys all exist ends there: one SELECT, no
 * write lock. The rows travel as one JSON parameter (SQLite's json_each).
 *
 * Errors are nodup_get_or_create()'s, for the whole call: on any error
 * nothing was inserted (but see NODUP_ERR_CONFLICT) and every out[r].id
 * is NULL. Messages about one row name it ("row 3: ..."), counting from 1.
 * A NULL key value is refused (NODUP_ERR_NULL_KEY), also where the index
 * treats NULLs as equal: this call matches keys with '=', so get or
 * create such a row with nodup_get_or_create(). NODUP_ERR_CONFLICT (rows
 * deleted each time between the insert and the lookup) may leave rows an
 * earlier try created. nrows = 0 succeeds and does nothing.
 */
NODUP_EXTERN int nodup_get_or_create_many(nodup_key *key, size_t nrows,
                                          const char *const *vals,
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
 * Update or create
 */

/* What nodup_update_or_create() did. Nonzero, so a zeroed variable reads
 * as "not set" after a failed call. */
typedef enum nodup_outcome {
  NODUP_CREATED = 1,   /* the row did not exist: this call inserted it */
  NODUP_UPDATED = 2,   /* the row existed and differed: this call updated it */
  NODUP_UNCHANGED = 3  /* the row existed with those values: nothing written */
} nodup_outcome;

/*
 * Make the row whose key columns equal `vals` hold the values `set_vals`
 * in columns `set_cols`: update it when it exists and differs, create it
 * when there is none, and write nothing when it already holds them.
 *
 * `vals` is the key, as for nodup_get_or_create() (same NULL rule). A new
 * row gets the key's values, `create_cols[i] = create_vals[i]` (columns
 * written only when the row is created, like get-or-create's defaults)
 * and `set_cols[i] = set_vals[i]` (written on create and on update). The
 * set values are compared with the row's as the engine sees them after
 * converting the text to the column's type (PostgreSQL compares their
 * text forms, so a json column compares too); a row that already holds
 * every one is left alone. A NULL value is SQL NULL, and equals a NULL in
 * the row. Every value is bound as a parameter. With nset == 0 this is
 * nodup_get_or_create() (outcome NODUP_CREATED or NODUP_UNCHANGED).
 *
 * On success out->id is the row's id (borrowed, as for get-or-create),
 * out->created is 1 exactly when this call inserted the row, and
 * *outcome (when `outcome` is not NULL) says which of the three happened.
 * nodup_result keeps its 0.1 layout: programs built before this call pass
 * the two-field struct to get-or-create, so the outcome has its own out
 * parameter rather than a new field.
 *
 * Under any concurrency, exactly one caller per key gets NODUP_CREATED,
 * every caller gets the same id, and the row ends holding the values of
 * one of the calls (the last one to write). A call that finds the row
 * equal writes nothing, so a stream of identical calls adds no row
 * versions and takes no write lock for long.
 *
 * PostgreSQL: one statement in the common case, INSERT ... ON CONFLICT
 * (key) [WHERE predicate] DO UPDATE SET ... WHERE the row's values are
 * distinct from the new ones, RETURNING the id and whether the row was
 * inserted; when it returns nothing (the row exists and is equal: it is
 * locked, not rewritten, so no new row version), a lookup in a fresh
 * snapshot gives the id. Column defaults are evaluated by the INSERT
 * before the conflict is found, so unlike get-or-create every call takes
 * a sequence value. A partitioned table cannot return whether the row was
 * inserted (its RETURNING cannot read system columns): there the call
 * compares, then updates while the values differ or inserts if absent,
 * each a statement of its own, trying again when a concurrent writer got
 * in between. Retries and NODUP_ERR_RETRY inside the caller's
 * transaction are as for nodup_get_or_create(); under REPEATABLE READ
 * and SERIALIZABLE a row this transaction cannot see is NODUP_ERR_RETRY.
 *
 * SQLite: a lookup without any lock compares the row; an equal row ends
 * the call there. Otherwise, inside BEGIN IMMEDIATE (or a savepoint of the
 * caller's transaction) the row is read again and inserted, or updated
 * through the key, or left alone.
 *
 * Errors, with nothing written by this call:
 *  - NODUP_ERR_USAGE: a set or create column is one of the key's (the key
 *    finds the row and cannot change), or is given twice; a NULL argument.
 *  - NODUP_ERR_NO_COLUMN: a column the table lacks, named.
 *  - NODUP_ERR_NULL_KEY, NODUP_ERR_UNBACKED: as for nodup_get_or_create.
 *  - NODUP_ERR_CONSTRAINT: the insert or the update violated another
 *    constraint (CHECK, NOT NULL, another unique index, a foreign key);
 *    nodup_errmsg() and nodup_errconstraint() name it.
 *  - NODUP_ERR_PREDICATE: the row as written would fall outside the key's
 *    predicate (a set column the predicate reads).
 *  - NODUP_ERR_CONFLICT, NODUP_ERR_RETRY, NODUP_ERR_DB: as for
 *    nodup_get_or_create.
 */
NODUP_EXTERN int nodup_update_or_create(nodup_key *key, const char *const *vals,
                                        const char *const *create_cols,
                                        const char *const *create_vals, size_t ncreate,
                                        const char *const *set_cols,
                                        const char *const *set_vals, size_t nset,
                                        nodup_result *out, int *outcome);

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
 * the catalog, a partition whose sibling partitions declare one (`inferred`:
 * PostgreSQL, where Pagila's payment_p2022_07 lacks the key its siblings
 * have; a merge re-points it like a declared one), or one the caller
 * declared (`refs`: Django's generic relations, with `condition` when the
 * reference was given as "T(C) WHERE condition").
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
  char *table_schema;       /* the schema, plain (PostgreSQL); NULL on SQLite */
  char *table_name;         /* the table's own name, plain, as the catalog spells it */
  int inferred;             /* 1: no constraint of its own; its sibling partitions
                               declare one (declared is 0, constraint NULL) */
  char *inferred_from;      /* inferred: the sibling's constraint it follows; else NULL */
  char *condition;          /* user-declared "T(C) WHERE condition": the condition
                               (SQL on the referencing table); else NULL */
  int unindexed;            /* no index leads with the referencing columns: deleting
                               each loser reads the whole referencing table (merge and
                               enforce build a temporary one first) */
  long long unindexed_rows; /* unindexed: the referencing table's rows, what each
                               deleted loser's check reads */
} nodup_scan_ref;

/*
 * A column that looks like a reference to the scanned table although no
 * foreign key declares it (a "suspected reference"). Found from names and
 * types, never from data:
 *  - NODUP_SUSPECT_SAME_NAME: named like the column of a declared foreign
 *    key to the table (single-column, to its primary key), with its type;
 *  - NODUP_SUSPECT_TABLE_ID: named <table>_id (also the singular of a plural
 *    name, users -> user_id; and <model>_id for a Django model found in
 *    django_content_type), of the primary key's type;
 *  - NODUP_SUSPECT_DJANGO: a generic relation: <p>object_id beside
 *    <p>content_type_id, a foreign key to django_content_type; `condition`
 *    picks the rows of this table's content type, read from
 *    django_content_type (app_label || '_' || model = the table's name;
 *    NULL when no row matches: then every row counts);
 *  - NODUP_SUSPECT_RAILS: a polymorphic association: <x>_id beside a text
 *    <x>_type; `condition` is <x>_type = '<ClassName>' (the class Rails
 *    names after the table: blog_posts -> BlogPost).
 * Types match as a declared foreign key would need them to: PostgreSQL by
 * type (domains by their base type; smallint, integer and bigint as one,
 * text, varchar and char as one), SQLite by the declared type's affinity.
 * Columns with any foreign key, a table's own one-column primary key (a
 * column of a composite one, as in a link table, may be suspected), the
 * key's own columns in the scanned table, partitions (their parent stands
 * for them) and nodup's own tables (nodup_*) are never suspected.
 * `rows` is how many rows point at a row a merge would remove (with
 * `condition`). `ref` is the nodup_merge_options.refs entry that re-points
 * the reference ("teams_comment(object_id) WHERE content_type_id = 7"; NULL
 * when a Django content type is unknown), `ignore` the ignore_refs entry
 * that leaves it ("teams_comment(object_id)"), `why` one sentence.
 */
#define NODUP_SUSPECT_SAME_NAME 1
#define NODUP_SUSPECT_TABLE_ID 2
#define NODUP_SUSPECT_DJANGO 3
#define NODUP_SUSPECT_RAILS 4

typedef struct nodup_scan_suspect {
  char *table;              /* quoted, qualified name as SQL text */
  char *table_schema;       /* the schema, plain (PostgreSQL); NULL on SQLite */
  char *table_name;         /* the table's own name, plain */
  char *column;             /* the referencing column */
  char *ref_column;         /* the scanned table's primary key column it would hold */
  int kind;                 /* NODUP_SUSPECT_* */
  char *condition;          /* SQL on the referencing table, or NULL (see above) */
  char *ref;                /* what to pass as a reference to re-point it, or NULL */
  char *ignore;             /* what to pass as an ignored reference to leave it */
  char *why;                /* one sentence: why it is suspected */
  long long rows;           /* rows pointing at a row a merge would remove */
} nodup_scan_suspect;

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
  size_t nsuspects;
  nodup_scan_suspect *suspects;  /* suspected references not given in refs nor
                                    ignore_refs; a merge refuses while one of
                                    them has rows > 0 */
} nodup_scan_report;

/*
 * Options. Every options struct starts with `version`, set by its
 * NODUP_*_OPTIONS_INIT initializer or its nodup_*_options_init() (as in
 * libgit2), so that a later libnodup, whose struct has grown, still reads
 * an application built against this header correctly, and an application
 * built against a newer header is refused (NODUP_ERR_USAGE, naming both
 * versions) by an older library instead of being misread. A zeroed struct
 * (`= {0}`, memset) has version 0, read as version 1: the layout of 0.1.
 *
 *   nodup_merge_options opt = NODUP_MERGE_OPTIONS_INIT;
 *   opt.batch = 500;
 *
 * The init functions zero `opt` and set its version; they return
 * NODUP_ERR_USAGE for a version this library does not know (or a NULL
 * opt), else NODUP_OK.
 */
struct nodup_scan_options;
struct nodup_slug_options;
struct nodup_merge_options;
struct nodup_enforce_options;
struct nodup_import_options;
NODUP_EXTERN int nodup_scan_options_init(struct nodup_scan_options *opt, unsigned int version);
NODUP_EXTERN int nodup_slug_options_init(struct nodup_slug_options *opt, unsigned int version);
NODUP_EXTERN int nodup_merge_options_init(struct nodup_merge_options *opt, unsigned int version);
NODUP_EXTERN int nodup_enforce_options_init(struct nodup_enforce_options *opt,
                                            unsigned int version);
NODUP_EXTERN int nodup_import_options_init(struct nodup_import_options *opt,
                                           unsigned int version);

#define NODUP_SCAN_OPTIONS_VERSION 1
/* NODUP_SCAN_OPTIONS_INIT, or nodup_scan_options_init(): see "Options". */
#define NODUP_SCAN_OPTIONS_INIT {.version = NODUP_SCAN_OPTIONS_VERSION}
typedef struct nodup_scan_options {
  unsigned int version;     /* NODUP_SCAN_OPTIONS_VERSION (0, a zeroed struct, reads as 1) */
  int nulls_equal;          /* treat NULL key values as equal (default: not) */
  size_t limit;             /* how many largest groups to list (0: 10) */
  const char *const *refs;  /* extra references "TABLE(COL[,COL...])" to the primary key,
                               each optionally followed by " WHERE condition": the
                               condition (SQL on TABLE, one expression) picks the rows
                               that reference this table ("comment(object_id) WHERE
                               content_type_id = 7") */
  size_t nrefs;
  const char *const *ignore_refs;  /* suspected references "TABLE(COL)" to leave out */
  size_t nignore_refs;
} nodup_scan_options;

/*
 * Find the duplicates of a key (`where` optional) in `table`, and for every
 * table that references it, what a merge would re-point and what would
 * collide. Read-only. References come from the catalog: multi-column
 * foreign keys, keys to a unique column other than the primary key,
 * self-references, foreign keys on partitions (each counted once),
 * partitions whose siblings declare a key they lack (PostgreSQL, `inferred`)
 * and SQLite foreign keys that target the primary key implicitly; then
 * opt->refs (one naming exactly the table and columns of a catalog
 * reference adds nothing). Suspected references (nodup_scan_suspect) are
 * listed with the rows that point at a row a merge would remove, except
 * those opt->refs or opt->ignore_refs name. `opt` may be NULL. On success
 * *out is a new report (free with nodup_scan_free()).
 *
 * Errors: NODUP_ERR_NO_TABLE, NODUP_ERR_NO_COLUMN, NODUP_ERR_NO_PKEY,
 * NODUP_ERR_USAGE (a malformed reference, or a reference's WHERE that is not
 * one expression on its table), NODUP_ERR_DB.
 */
NODUP_EXTERN int nodup_scan(nodup_scan_report **out, nodup_db *db, const char *table,
                            const char *const *cols, size_t ncols, const char *where,
                            const nodup_scan_options *opt);

/* Free a scan report. Accepts NULL. */
NODUP_EXTERN void nodup_scan_free(nodup_scan_report *report);

/* ---------------------------------------------------------------------------
 * Slugs
 *
 * A slug is a URL-safe name derived from text ("My Team" -> "my-team"),
 * unique in a column (or per tenant: unique on scope columns + the slug).
 * nodup_slug_create() inserts a row with the next free slug: "my-team",
 * then "my-team-2", "my-team-3"... Suffixes are sequential: the next one is
 * the highest taken suffix + 1 (never a count, which collides after
 * deletes), so a gap left by a deleted row stays a gap. Only "<base>-" and
 * digits without a leading zero count as a suffix of <base>: "rap-metal"
 * does not make "Rap" become "rap-2".
 *
 * An application that allocates many slugs in one table prepares a handle
 * once (nodup_slug_prepare) and allocates through it (nodup_slug_next):
 * the catalog is read once, and each allocation is its statements alone.
 * nodup_slug_create() is the one-call form, for a single slug (the CLI's
 * `nodup slug`).
 */

/* The default maximum length of a slug, suffix included (Django's
 * SlugField). */
#define NODUP_SLUG_MAX_LENGTH 50
/* Room kept free in every base for a suffix: '-' and up to six digits. */
#define NODUP_SLUG_SUFFIX_ROOM 7
/* How many times nodup_slug_create() moves on after losing a race. */
#define NODUP_SLUG_MAX_ATTEMPTS 1000

#define NODUP_SLUG_OPTIONS_VERSION 1
/* NODUP_SLUG_OPTIONS_INIT, or nodup_slug_options_init(): see "Options". */
#define NODUP_SLUG_OPTIONS_INIT {.version = NODUP_SLUG_OPTIONS_VERSION}
typedef struct nodup_slug_options {
  unsigned int version;     /* NODUP_SLUG_OPTIONS_VERSION (0, a zeroed struct, reads as 1) */
  /* The longest slug, suffix included; 0 for NODUP_SLUG_MAX_LENGTH. Must be
   * more than NODUP_SLUG_SUFFIX_ROOM. The base is cut to max_length -
   * NODUP_SLUG_SUFFIX_ROOM, so suffixes up to -999999 fit; beyond a million
   * copies the slug grows past max_length by one character per digit. */
  size_t max_length;
  /* The slug for text that keeps nothing (only symbols or emoji, empty):
   * NULL for "n-a". It goes through the same rules; if nothing is left of
   * it either, "n-a". */
  const char *fallback;
  /* Slugs never issued bare, compared with the slug as made (lower case):
   * they always get a suffix ("new" -> "new-2"). NULL for the default list
   * "new", "edit", "delete", "admin", "api", "login", "logout", "signup",
   * "settings", "search". To reserve nothing, point `reserved` at any
   * array and set `nreserved` to 0. */
  const char *const *reserved;
  size_t nreserved;
} nodup_slug_options;

/*
 * The outcome of nodup_slug_create() and nodup_slug_next(). `slug` and `id`
 * (the row's primary key as text, as in nodup_result) are owned by the
 * caller: release them with nodup_slug_result_free(). `attempts` is how many
 * inserts the call ran (1 unless it lost races); `statements` how many SQL
 * statements it ran to allocate the slug: per attempt the range query and
 * the insert, and on SQLite also BEGIN IMMEDIATE (or SAVEPOINT) and COMMIT;
 * one more range query when over 32 other rows (such as "my-team-2-old")
 * rank above every copy. It does not count the catalog reads that find the
 * backing index. It is the same for the first and the ten-thousandth
 * "My Team".
 */
typedef struct nodup_slug_result {
  char *slug;
  char *id;
  unsigned attempts;
  unsigned long statements;
} nodup_slug_result;

/*
 * Make the base slug of `text` (UTF-8) into `out`, which must hold at
 * least max_length + 1 bytes (NODUP_SLUG_MAX_LENGTH + 1 with default
 * options). No database. `opt` may be NULL. The rules:
 *  - Every script is transliterated to ASCII by ICU ("Any-Latin;
 *    Latin-ASCII"): "Crème Brûlée" -> "creme-brulee", "Łódź" -> "lodz",
 *    "Straße" -> "strasse", "Москва" -> "moskva", "東京" -> "dong-jing".
 *    Only the first 4096 bytes of `text` are read; invalid UTF-8 counts as
 *    a separator.
 *  - Lower case; apostrophes dropped ("Don't" -> "dont"); every other run
 *    of non-letters and non-digits (spaces, punctuation, emoji) becomes one
 *    '-'; no '-' at either end.
 *  - At most max_length - NODUP_SLUG_SUFFIX_ROOM characters, cut at the
 *    last '-' when that keeps at least half of them. The output is ASCII,
 *    so never cut inside a character.
 *  - Nothing left: the fallback (see nodup_slug_options).
 * Reserved words and all-digit results are returned as they are; see
 * nodup_slug_is_reserved().
 *
 * Errors: NODUP_ERR_USAGE (NULL argument, `size` too small, max_length not
 * above NODUP_SLUG_SUFFIX_ROOM, or ICU cannot open its transliterator:
 * ICU data missing), NODUP_ERR_NOMEM. On error `out` is "" when size > 0.
 */
NODUP_EXTERN int nodup_slugify(char *out, size_t size, const char *text,
                               const nodup_slug_options *opt);

/*
 * 1 when `slug` is never issued without a suffix: a reserved word (see
 * nodup_slug_options) or all digits. An all-digit slug would read as an id
 * in a route that takes either ("/teams/2024"), so "2024" is issued as
 * "2024-2", like a reserved word. 0 otherwise.
 */
NODUP_EXTERN int nodup_slug_is_reserved(const char *slug,
                                        const nodup_slug_options *opt);

/*
 * Insert a row into `table` whose `column` holds a unique slug made from
 * `from` (see nodup_slugify), and return the slug and the row's id.
 *
 * `scope_cols` (`nscope` of them, possibly 0) make the slug unique per
 * tenant: the new row gets `scope_cols[i] = scope_vals[i]`, and only rows
 * with those values compete for the slug. The row also gets
 * `set_cols[i] = set_vals[i]` (a NULL value is SQL NULL). Every value is
 * bound as a parameter.
 *
 * A unique index on exactly (scope columns..., column) must exist: it is
 * the arbiter. Without it the call is refused with NODUP_ERR_UNBACKED and
 * the message carries the CREATE UNIQUE INDEX that would back it, as
 * nodup_key_prepare() does (an index on the slug alone does not back a
 * scoped slug, nor does one with extra columns).
 *
 * How, and what it costs: one range query finds the highest taken suffix
 * (`column >= 'base' AND column < 'base.'`, ranked by length then text,
 * keeping "base" and "base-" followed by digits without a leading zero),
 * then one `INSERT ... ON CONFLICT (scope..., column) DO NOTHING RETURNING
 * pk` of the next candidate. A constant number of statements whatever the
 * number of existing copies (see nodup_slug_result.statements); the range
 * query reads the copies' index entries, under a microsecond each (see
 * docs/BENCHMARKS.md), where a probe per suffix costs a round trip. Each
 * call also reads the catalog to find the backing index and prepares the
 * insert (on PostgreSQL about 11 round trips beside the allocation's 2): to
 * pay that once for many slugs, use a prepared handle (nodup_slug_prepare,
 * below), which behaves exactly as this call does. When the insert returns
 * nothing, a concurrent caller took the candidate: the call recomputes and
 * tries again, up to NODUP_SLUG_MAX_ATTEMPTS times; the caller never sees
 * the unique violation. On SQLite each attempt runs in BEGIN IMMEDIATE (a
 * savepoint inside the caller's transaction), so the query and the insert
 * are atomic. On PostgreSQL the range must compare bytes: when the column's
 * collation is C or POSIX (declared, or the database's default) the query is
 * an index range scan; otherwise it is compared with COLLATE "C", exact but
 * reading the scope's rows (slugs are ASCII: declare the column
 * `COLLATE "C"` to keep it indexed).
 *
 * Errors:
 *  - NODUP_ERR_UNBACKED, NODUP_ERR_NO_TABLE, NODUP_ERR_NO_COLUMN,
 *    NODUP_ERR_NO_PKEY: as nodup_key_prepare() on (scope..., column).
 *  - NODUP_ERR_NULL_KEY: a scope value is NULL and the index treats NULLs
 *    as distinct.
 *  - NODUP_ERR_CONSTRAINT: the insert violated another constraint (NOT
 *    NULL, CHECK, a foreign key, another unique index). Never retried.
 *  - NODUP_ERR_CONFLICT: NODUP_SLUG_MAX_ATTEMPTS inserts in a row found
 *    their candidate taken (only when the index sees duplicates that the
 *    range query does not, e.g. a case-insensitive collation).
 *  - NODUP_ERR_RETRY: on PostgreSQL inside the caller's transaction, a
 *    serialization failure (roll back and retry); on SQLite, the write lock
 *    stayed busy.
 *  - NODUP_ERR_USAGE (NULL arguments, bad options), NODUP_ERR_NOMEM,
 *    NODUP_ERR_DB.
 * On success *out holds new strings; on error out->slug and out->id are
 * NULL and nothing was inserted by this call.
 */
NODUP_EXTERN int nodup_slug_create(nodup_slug_result *out, nodup_db *db,
                                   const char *table, const char *column,
                                   const char *const *scope_cols,
                                   const char *const *scope_vals, size_t nscope,
                                   const char *const *set_cols,
                                   const char *const *set_vals, size_t nset,
                                   const char *from,
                                   const nodup_slug_options *opt);

/* Free out->slug and out->id and set them to NULL. Accepts NULL. */
NODUP_EXTERN void nodup_slug_result_free(nodup_slug_result *out);

/* A prepared slug: what every allocation of a slug in one table and column
 * needs, made once. Opaque. */
typedef struct nodup_slug nodup_slug;

/*
 * Prepare the allocation of slugs in `table`.`column`, unique per
 * (`scope_cols`..., column) (`nscope` of them, possibly 0), for rows that
 * also get the `nset` columns `set_cols` (possibly 0). The values come
 * with each nodup_slug_next(). `opt` may be NULL; it is copied, with its
 * strings, as is every name.
 *
 * What it does once, which nodup_slug_create() does on every call: it
 * prepares the key on (scope..., column) (so the same unique index must
 * back it, and the same refusals carry the CREATE UNIQUE INDEX that would),
 * prepares the insert and the range query (on PostgreSQL as server-side
 * prepared statements; through a transaction-mode pooler such as
 * PgBouncer, where nothing may stay on the server between transactions,
 * their text is kept and sent with each execution, still one round trip
 * each), and asks once whether the column compares in byte order. A
 * nodup_slug_next() with a NULL scope value (where the index treats NULLs
 * as equal) prepares that form of the two statements on first use.
 *
 * On success *out is a new handle; release it with nodup_slug_free(). On
 * failure *out is NULL.
 *
 * Errors: NODUP_ERR_UNBACKED, NODUP_ERR_NO_TABLE, NODUP_ERR_NO_COLUMN (also
 * a set column the table lacks), NODUP_ERR_NO_PKEY, as nodup_key_prepare()
 * on (scope..., column); NODUP_ERR_USAGE (NULL arguments, more than 31
 * scope columns, a set column given twice or in the key, max_length not
 * above NODUP_SLUG_SUFFIX_ROOM, bad options); NODUP_ERR_NOMEM;
 * NODUP_ERR_DB.
 *
 * Threads: like a key, the handle belongs to its connection and is used by
 * one thread at a time; give each thread its own connection and handle.
 * Like a key too, it keeps its connection open: nodup_close() with handles
 * still open only marks the connection, and the last nodup_slug_free() (or
 * nodup_key_free()) closes it.
 */
NODUP_EXTERN int nodup_slug_prepare(nodup_slug **out, nodup_db *db, const char *table,
                                    const char *column, const char *const *scope_cols,
                                    size_t nscope, const char *const *set_cols, size_t nset,
                                    const nodup_slug_options *opt);

/*
 * Insert a row with the next free slug made from `from`, through a
 * prepared handle: exactly what nodup_slug_create() does with the same
 * arguments (the suffix rule, the retries after a lost race, the
 * transaction rules, the errors and messages), without its preparation.
 * `scope_vals` has one value per scope column and `set_vals` one per set
 * column, in the order given to nodup_slug_prepare() (either may be NULL
 * when there are no such columns; a NULL set value is SQL NULL). Every
 * value is bound as a parameter.
 *
 * Cost: the allocation's statements and nothing else (out->statements
 * counts them). On PostgreSQL the range query and the insert, 2 round
 * trips, at any number of copies; on SQLite those two, prepared once,
 * between BEGIN IMMEDIATE and COMMIT. (One more range query when over 32
 * other rows rank above every copy: see nodup_slug_result.)
 *
 * On success *out holds new strings (release them with
 * nodup_slug_result_free()); on error out->slug and out->id are NULL,
 * nothing was inserted by this call, and the handle stays usable. The
 * message is on the handle's connection (nodup_errmsg()).
 *
 * Errors: NODUP_ERR_NULL_KEY, NODUP_ERR_CONSTRAINT, NODUP_ERR_CONFLICT,
 * NODUP_ERR_RETRY as nodup_slug_create(); NODUP_ERR_USAGE (NULL `out`,
 * handle, `from` or value array; on SQLite a value its column's declared
 * type refuses); NODUP_ERR_NOMEM; NODUP_ERR_DB.
 */
NODUP_EXTERN int nodup_slug_next(nodup_slug_result *out, nodup_slug *slug,
                                 const char *const *scope_vals,
                                 const char *const *set_vals, const char *from);

/* Free a prepared slug and its statements. Accepts NULL. */
NODUP_EXTERN void nodup_slug_free(nodup_slug *slug);

/* ---------------------------------------------------------------------------
 * Merging duplicates
 */

/* Called after each committed batch: groups merged so far in this call,
 * and the groups there were when it started. */
typedef void (*nodup_progress_fn)(void *ctx, long long done, long long total);

/* One-to-one children (a unique index on exactly the foreign key) of rows
 * being merged:
 *  - MERGE: colliding children are merged like any duplicates: the kept
 *    row's child stays, references to the others are re-pointed to it and,
 *    with fill_nulls, its NULL columns are filled from theirs.
 *  - KEEP: the kept row's child stays exactly as it is; the others are
 *    archived and deleted (references to them still re-pointed, so nothing
 *    dangles).
 *  - FAIL: nothing is changed and the merge fails with NODUP_ERR_CONSTRAINT
 *    naming the child table, if any such child would collide. */
typedef enum nodup_one_to_one {
  NODUP_ONE_TO_ONE_MERGE = 0,
  NODUP_ONE_TO_ONE_KEEP = 1,
  NODUP_ONE_TO_ONE_FAIL = 2
} nodup_one_to_one;

#define NODUP_MERGE_OPTIONS_VERSION 1
/* NODUP_MERGE_OPTIONS_INIT, or nodup_merge_options_init(): see "Options". */
#define NODUP_MERGE_OPTIONS_INIT {.version = NODUP_MERGE_OPTIONS_VERSION}
typedef struct nodup_merge_options {
  unsigned int version;     /* NODUP_MERGE_OPTIONS_VERSION (0, a zeroed struct, reads as 1) */
  const char *keep;         /* ORDER BY over the table's columns choosing the row kept
                               ("created_at ASC"); NULL: primary key ascending. Trusted SQL. */
  const char *const *refs;  /* extra references "TABLE(COL[,COL...]) [WHERE condition]",
                               as for nodup_scan; the condition limits the rows
                               re-pointed, checked and logged */
  size_t nrefs;
  size_t batch;             /* duplicate groups per transaction; 0: sized by time, each
                               batch about 0.5 s (the first 1000 groups) */
  nodup_one_to_one one_to_one;  /* NODUP_ONE_TO_ONE_MERGE (0), _KEEP or _FAIL */
  int nulls_equal;          /* NULL key values are equal (rows with NULLs are merged) */
  int fill_nulls;           /* the kept row's NULL columns take the first non-NULL value
                               of the others (in `keep` order), after they are deleted */
  int dry_run;              /* do everything, report, roll back */
  int no_archive;           /* no archive and no log: faster, but no undo */
  nodup_progress_fn progress;  /* NULL: none */
  void *progress_ctx;
  const char *const *ignore_refs;  /* suspected references "TABLE(COL)" left as they
                                      are, on purpose (see nodup_merge) */
  size_t nignore_refs;
  int no_temp_index;        /* build no temporary index for unindexed references */
  int keep_temp_index;      /* keep the temporary indexes built (nodup_fk_<hash>) */
  const char *const *columns;  /* survivorship, "COL=POLICY" or "TABLE.COL=POLICY" (below) */
  size_t ncolumns;
} nodup_merge_options;

/*
 * Survivorship: which value a merged row keeps, per column (opt->columns).
 * "COL=POLICY" names a column of the merged table; "TABLE.COL=POLICY" one
 * of a table whose colliding rows the merge merges too (a link table, a
 * one-to-one child, at any depth; TABLE as the catalog spells it, or
 * schema-qualified). The value is chosen among the group's members (the
 * kept row and the rows merged into it), before any is deleted:
 *   keeper           the kept row's own value (the default)
 *   first-non-null   the kept row's unless NULL, else the first non-NULL of
 *                    the others in `keep` order (what fill_nulls does)
 *   max, min, sum    the aggregate over the members (NULLs ignored)
 *   longest          the longest as text (ties: the kept row, then `keep`
 *                    order); NULL only if all are
 *   newest(ORDERCOL) the value of the member with the greatest ORDERCOL, a
 *                    column of the same table (NULLs last; ties: the kept
 *                    row, then `keep` order)
 * fill_nulls makes first-non-null the default of every nullable column
 * outside the keys at every level; a `columns` entry overrides it for its
 * column. Entries apply under every one_to_one mode (KEEP only turns
 * fill_nulls off for one-to-one children). The kept row is updated after
 * the others are deleted (so another unique index cannot trip on a value
 * both hold), only where the value changes; its previous values are logged
 * and nodup_undo() restores them. The run records the entries, and
 * nodup_merge_resume() applies them again.
 * Refused with NODUP_ERR_USAGE before anything is written: an unknown
 * policy, table or column; a table the merge does not reach; a column of
 * the primary key, of the merge key, or (for another table) of a unique
 * index; the same column twice; sum on a column whose declared type is not
 * numeric, max or min on one without an order (as far as the engine
 * says: PostgreSQL's types, SQLite's BOOLEAN for sum).
 */

/* A column of a merged table and a number of rows (nodup_merge_table). */
typedef struct nodup_merge_column {
  char *column;             /* as the catalog spells it */
  long long rows;
} nodup_merge_column;

/* What a merge changed in one table (the merged one or one referencing it,
 * at any depth). */
typedef struct nodup_merge_table {
  char *table;              /* quoted, qualified name as SQL text */
  long long repointed;      /* rows whose reference now names a kept row */
  long long deleted;        /* rows removed: merged duplicates, collided children */
  long long filled;         /* kept rows that fill_nulls or a survivorship policy
                               (columns) changed */
  char *table_schema;       /* the schema, plain (PostgreSQL); NULL on SQLite */
  char *table_name;         /* the table's own name, plain, as the catalog spells it */
  int inferred;             /* re-pointed through an inferred reference: a partition
                               whose sibling partitions declare the foreign key */
  /* Rows deleted because they collided with a surviving row (link tables,
   * one-to-one children), counted per column where their value differed
   * from the surviving row's before any survivorship policy ran: content
   * the surviving row does not hold unless a policy took it (the rows
   * themselves are archived). Columns outside the primary key and the
   * colliding index that differed at least once, in the order met. */
  nodup_merge_column *differed;
  size_t ndiffered;
} nodup_merge_table;

typedef struct nodup_merge_report {
  char run[40];             /* run id: rows in nodup_runs / nodup_archive carry it;
                               "" after a dry run, whose rows were rolled back */
  long long groups;         /* duplicate groups merged */
  long long batches;
  long long self_references;  /* kept rows that now reference themselves */
  int foreign_keys_off;     /* SQLite: PRAGMA foreign_keys was off on this connection,
                               so references may already dangle (the merge itself
                               re-points from the declared keys either way) */
  size_t ntables;
  nodup_merge_table *tables;
  char *temp_indexes;       /* temporary supporting indexes built for references whose
                               columns had none ("nodup_fk_x on "t" ("c"); ..."), dropped
                               again unless keep_temp_index; NULL when none */
} nodup_merge_report;

/*
 * Merge the duplicates of a key: in each group the first row by `keep`
 * stays; every reference to the others (foreign keys from the catalog, plus
 * opt->refs) is re-pointed to it, set-based, one statement per referencing
 * table per batch. Re-pointing can make rows of a referencing table collide
 * in one of its unique indexes (link tables, one-to-one children, including
 * two losers colliding with each other): those rows are duplicates too and
 * are merged the same way, recursively (depth limit 8), a row already
 * pointing at the kept row winning. Before deleting, the batch checks that
 * nothing references a row it deletes (NODUP_ERR_REFERENCED otherwise,
 * naming the table); cascades are never relied on.
 *
 * References the catalog does not declare: a partition whose sibling
 * partitions declare a foreign key is re-pointed as if it declared it too
 * (PostgreSQL; the report marks its table `inferred`). Before anything is
 * written (the journal included), every suspected reference (as
 * nodup_scan lists them) not named in opt->refs or opt->ignore_refs is
 * counted with the same mapping of losers to keepers, `keep` included;
 * when one holds rows that point at a row the merge would delete, nothing
 * changes and NODUP_ERR_REFERENCED names each table and column, the rows,
 * and the two ways on: re-point it (opt->refs, the entry to pass given) or
 * leave it explicitly (opt->ignore_refs). A dry run refuses the same way. A
 * pass that finds groups writers added meanwhile counts them again first.
 *
 * The run is recorded in the journal's `nodup_runs` (id, table, key,
 * options, status, owner, counters). Unless opt->no_archive, every deleted
 * row is archived as JSON in `nodup_archive` (run, step, tbl, pk, keeper,
 * row) and every re-pointed or filled row's previous values in
 * `nodup_log`, so nodup_undo() can put the database back as it was. The
 * journal is in schema "nodup" on PostgreSQL (nodup_db_set_journal()
 * chooses another), in the main database on SQLite. Every check that can
 * refuse (unknown table or columns, `where` and `keep`, references, an
 * engine's limits, suspected references, FAIL's one-to-one children)
 * comes before anything is written: a refused merge creates no journal,
 * schema or row, and a new run that fails before its first batch commits
 * removes its own record.
 *
 * Each batch is one transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: the
 * batch's rows locked FOR UPDATE in primary key order first): it commits
 * whole or not at all, so killing the process leaves a consistent database;
 * nodup_merge_resume() (or running the same merge again) finishes the job.
 * On PostgreSQL a batch's transaction plans for its own rows: it sets, for
 * itself only, random_page_cost to 1.1 x seq_page_cost (unless lower
 * already) and enable_mergejoin off, so that its plans follow its own
 * rows, not the sizes of its tables (docs/DESIGN.md).
 * With opt->dry_run everything runs in one transaction that is rolled back:
 * the report says exactly what would change.
 *
 * Rows with a NULL key value are not duplicates (what a unique index
 * allows) unless opt->nulls_equal. On success *out is a new report; free
 * with nodup_merge_free().
 * Errors: those of nodup_scan, NODUP_ERR_REFERENCED (a suspected reference,
 * nothing changed; or a reference left after re-pointing, batch rolled
 * back), NODUP_ERR_CONSTRAINT
 * (a re-point or fill broke another constraint, or --one-to-one fail),
 * NODUP_ERR_USAGE (called inside a transaction), NODUP_ERR_DB; the failing
 * batch is rolled back and the run marked failed.
 */
NODUP_EXTERN int nodup_merge(nodup_merge_report **out, nodup_db *db, const char *table,
                             const char *const *cols, size_t ncols, const char *where,
                             const nodup_merge_options *opt);

/*
 * Finish an interrupted or failed run (nodup_runs_list() says which) with
 * its own table, key and options (from the journal) and the same run id,
 * so one undo covers all of it; this process becomes the run's owner. The
 * run is found in the connection's journal, else in one an earlier nodup
 * left (which is then upgraded in place). Of opt only progress and
 * progress_ctx are used (opt may be NULL).
 * Errors: NODUP_ERR_NO_RUN (unknown run; done or undone; or still running,
 * the message naming its process), and those of nodup_merge().
 */
NODUP_EXTERN int nodup_merge_resume(nodup_merge_report **out, nodup_db *db, const char *run,
                                    const nodup_merge_options *opt);

/*
 * Undo a merge run in one transaction: every re-pointed reference and
 * filled column gets its previous value back and every deleted row is
 * re-inserted, in the reverse order of the merge, so the merged tables
 * hold exactly what they held before (the archive itself is kept; the run
 * is marked undone). *restored and *reverted (either may be NULL) get the
 * numbers of rows re-inserted and of rows set back.
 * A failed or interrupted run can be undone (what its committed batches
 * did); a running one cannot.
 * Errors: NODUP_ERR_NO_RUN (unknown, already undone, made with
 * no_archive, or still running), NODUP_ERR_CHANGED (a row the merge touched was changed or
 * deleted since), NODUP_ERR_CONSTRAINT (a restored row collides with one
 * written since, e.g. under a unique index added after the merge): nothing
 * is changed then.
 */
NODUP_EXTERN int nodup_undo(nodup_db *db, const char *run, long long *restored,
                            long long *reverted);

/* Free a merge report. Accepts NULL. */
NODUP_EXTERN void nodup_merge_free(nodup_merge_report *report);

/* ---------------------------------------------------------------------------
 * Merge runs: what the journal holds
 */

/* The state of a recorded merge run. */
typedef enum nodup_run_state {
  NODUP_RUN_RUNNING = 0,    /* its process (or server session) is alive */
  NODUP_RUN_INTERRUPTED,    /* recorded running, but its process is gone: resume it */
  NODUP_RUN_DONE,
  NODUP_RUN_FAILED,         /* a batch failed and was rolled back: resume it */
  NODUP_RUN_UNDONE          /* nodup_undo() put it back */
} nodup_run_state;

/* "running", "interrupted", "done", "failed", "undone". Static string. */
NODUP_EXTERN const char *nodup_run_state_name(int state);

typedef struct nodup_run_info {
  char *run;                /* the run id */
  char *table;              /* the merged table, as the merge was given it */
  char **key;               /* its key columns */
  size_t nkey;
  int state;                /* NODUP_RUN_* */
  char *started;            /* "YYYY-MM-DD HH:MM:SS" UTC (an earlier nodup's runs: the
                               server's own text) */
  char *finished;           /* the same, NULL while it has not ended */
  char *heartbeat;          /* the last sign of life, as started; NULL when unknown */
  long long groups;         /* duplicate groups merged */
  long long repointed;      /* rows whose reference (or key) was re-pointed */
  long long deleted;        /* rows deleted (merged duplicates, collided children) */
  long long filled;         /* kept rows whose NULLs were filled */
  long long changed;        /* repointed + deleted + filled; each of the four is -1 when
                               unknown (a no_archive run an earlier nodup recorded) */
  int archived;             /* it kept its archive and log: nodup_undo() can take it back
                               (unless it is undone already) */
  char *host;               /* the machine of the process that ran it last; NULL: unknown */
  long long pid;            /* that process's id; 0: unknown */
  char *journal;            /* PostgreSQL: the schema of the journal holding it; NULL on
                               SQLite */
  int legacy;               /* in the journal an earlier nodup made (another schema than
                               nodup_db_set_journal's) */
} nodup_run_info;

typedef struct nodup_runs_report {
  size_t nruns;
  nodup_run_info *runs;     /* oldest first */
} nodup_runs_report;

/*
 * List the merge runs recorded on db: those of the journal
 * (nodup_db_set_journal) and, on PostgreSQL, those an earlier nodup left
 * in the first schema of the search path, oldest first. A run recorded as
 * running whose owner is gone is NODUP_RUN_INTERRUPTED: on a direct
 * PostgreSQL connection when the server process it ran in has ended (a
 * killed client's ends with it); otherwise (SQLite, through a pooler) when
 * its process is gone from this host, or, run from another host, when its
 * heartbeat (refreshed by every batch) is more than 5 minutes old. Reads
 * only: no journal, no runs. On success *out is a new report; free with
 * nodup_runs_free().
 * Errors: NODUP_ERR_DB (the journal's schema exists but the role may not
 * use it: the message gives the GRANT), NODUP_ERR_NOMEM.
 */
NODUP_EXTERN int nodup_runs_list(nodup_runs_report **out, nodup_db *db);

/* Free a runs report. Accepts NULL. */
NODUP_EXTERN void nodup_runs_free(nodup_runs_report *report);

/*
 * Delete everything the journal holds for `run` (its row, arguments,
 * steps, log and archived rows, and on PostgreSQL a pass table
 * nodup_groups_<run> that a run through a pooler left), in one
 * transaction. Calling it is the confirmation: the run can no longer be
 * resumed nor undone, and the rows it deleted are gone for good. When the
 * last run of an earlier nodup's journal is forgotten, that journal's
 * tables are dropped too.
 * Errors: NODUP_ERR_NO_RUN (unknown, or running: a running run is never
 * forgotten), NODUP_ERR_USAGE (inside a transaction), NODUP_ERR_DB.
 */
NODUP_EXTERN int nodup_runs_forget(nodup_db *db, const char *run);

/* ---------------------------------------------------------------------------
 * Enforcing a key
 */

/* How nodup_enforce goes about it (nodup_enforce_options.mode):
 *  - LOCKED: one transaction under a lock (SQLite's write lock, PostgreSQL's
 *    SHARE ROW EXCLUSIVE table lock) holds the last clean-up and the index.
 *  - ONLINE: PostgreSQL only: a guard trigger, then CREATE UNIQUE INDEX
 *    CONCURRENTLY while writers run (see nodup_enforce).
 *  - ABORT: PostgreSQL only: build nothing; remove what an interrupted
 *    ONLINE run left for this key. Not with merge or dry_run. */
typedef enum nodup_enforce_mode {
  NODUP_ENFORCE_LOCKED = 0,
  NODUP_ENFORCE_ONLINE = 1,
  NODUP_ENFORCE_ABORT = 2
} nodup_enforce_mode;

#define NODUP_ENFORCE_OPTIONS_VERSION 1
/* NODUP_ENFORCE_OPTIONS_INIT, or nodup_enforce_options_init(): see "Options". */
#define NODUP_ENFORCE_OPTIONS_INIT {.version = NODUP_ENFORCE_OPTIONS_VERSION}
typedef struct nodup_enforce_options {
  unsigned int version;     /* NODUP_ENFORCE_OPTIONS_VERSION (0, a zeroed struct, reads as 1) */
  const char *name;         /* the index (and constraint) name; NULL: "<table>_<cols>_key",
                               PostgreSQL's own naming, cut to 63 bytes */
  int nulls_equal;          /* NULLs are equal: PostgreSQL 15+ NULLS NOT DISTINCT;
                               refused on SQLite, which has no such index */
  int merge;                /* merge existing duplicates (else refuse when some exist) */
  const nodup_merge_options *merge_opt;  /* how (NULL: the defaults); its nulls_equal and
                               dry_run are ours. Borrowed for the call. A pointer, so
                               that the merge options can grow without moving the
                               fields after it */
  nodup_enforce_mode mode;  /* NODUP_ENFORCE_LOCKED (0), _ONLINE or _ABORT (above) */
  long lock_timeout_ms;     /* PostgreSQL: longest wait for a lock; 0: 2000 */
  int dry_run;              /* do it all, report, roll back (LOCKED only) */
} nodup_enforce_options;

typedef struct nodup_enforce_report {
  char *index;              /* the index backing the key now */
  int already;              /* it was there before: nothing changed */
  int constraint;           /* PostgreSQL: attached as a UNIQUE constraint */
  long long merged_groups;  /* duplicate groups merged on the way (all merges) */
  char run[40];             /* the last merge run ("" if none, or a dry run) */
  int builds;               /* online: index builds tried */
  int fell_back;            /* online: finished in the locked mode */
  char *removed;            /* PostgreSQL: what an interrupted online run had left and
                               this call removed, "; " between items ("guard trigger
                               nodup_guard_1a2b3c4d and its function
                               "public"."nodup_guard_1a2b3c4d"(); INVALID unique index
                               "public"."p_k_key" on "public"."p""); NULL: nothing */
  double lock_ms;           /* locked mode: how long the table lock (PostgreSQL) or the
                               write lock (SQLite) was held, from grant to commit, over
                               all tries; the duplicates are merged before it is taken,
                               so it covers only those made meanwhile and the index */
  char *temp_indexes;       /* temporary supporting indexes built for unindexed references
                               (see nodup_merge_report), dropped again unless
                               merge_opt->keep_temp_index; NULL: none */
} nodup_enforce_report;

/*
 * Make a unique index the arbiter of a key, with no window in which
 * writers can add duplicates between the clean-up and the index:
 *  - SQLite: one BEGIN IMMEDIATE transaction holds the check (or merge)
 *    and CREATE UNIQUE INDEX.
 *  - PostgreSQL: SET LOCAL lock_timeout, LOCK TABLE ... IN SHARE ROW
 *    EXCLUSIVE MODE (readers go on, writers wait), check or merge, CREATE
 *    UNIQUE INDEX and, for a key without predicate, ALTER TABLE ... ADD
 *    CONSTRAINT ... UNIQUE USING INDEX, then COMMIT. A lock not granted in
 *    time is retried with a back-off, so writers never wait long.
 *  - PostgreSQL, mode NODUP_ENFORCE_ONLINE: merge in batches while writers
 *    run, then a temporary trigger serialises writers per key with a
 *    transaction-scoped advisory lock and refuses new duplicates (SQLSTATE
 *    23505, as the index will), merge what slipped in, CREATE UNIQUE INDEX
 *    CONCURRENTLY (an INVALID leftover is dropped CONCURRENTLY and the
 *    build retried, at most 3 times, then the locked mode finishes), attach
 *    the constraint, drop the trigger. The guard's function and trigger
 *    are created, and dropped, in one transaction each; the function's
 *    comment names the backend that installed it. When the run fails, its
 *    message ends with what the catalog shows is left, or, when the server
 *    cannot be asked (it restarted), what may be and the commands that
 *    finish (`nodup enforce ... --online`) or remove (`--abort`) it.
 *  - PostgreSQL, a partitioned table: the key must contain the partition
 *    key (NODUP_ERR_USAGE naming the column otherwise, nothing changed).
 *    Locked: ALTER TABLE ... ADD CONSTRAINT ... UNIQUE (key) (CREATE UNIQUE
 *    INDEX for a key with predicate). Online: each leaf partition's index
 *    CONCURRENTLY (<partition>_<cols>_key), then that one statement under
 *    lock_timeout, which attaches them instead of building.
 * Leftovers of an interrupted online run (PostgreSQL, either mode, not a
 * dry run) are removed first: the table's guard trigger and function, INVALID
 * unique indexes on the key's columns, and any guard function of any table
 * that no trigger uses; ->removed lists them. While the run that installed
 * the guard is alive in another backend, NODUP_ERR_RETRY names it and
 * nothing changes.
 * An index that already backs the key (as nodup_key_prepare finds) is
 * reported with ->already and nothing else is changed, except what an
 * online run of the same key that was killed after its build left: when the
 * index has the name this call would give it and no constraint yet, the
 * constraint is attached (->already is then 0).
 * With mode NODUP_ENFORCE_ABORT (PostgreSQL) nothing is built: the call
 * removes what an interrupted online run left for this key -- the guard trigger and
 * function if they guard this key's columns, INVALID unique indexes on
 * them (not one being built), the indexes a partitioned run built on leaf
 * partitions that no parent index uses -- and every orphan guard function,
 * lists them in ->removed (NULL: nothing was there; running it again is a
 * no-op), and sets nodup_notice() to what it kept: another key's guard, an
 * index being built, or a valid index of ours still waiting for its
 * constraint. Nothing else changes; the key, an index that backs it and the
 * rows are untouched. The key must name the table's columns; the partition
 * key need not be in it. NODUP_ERR_USAGE on SQLite.
 * Errors: NODUP_ERR_DUPLICATE (duplicates exist and !opt->merge: nothing
 * changed but the leftovers removed first, which the message names; it
 * gives the count), NODUP_ERR_USAGE (nulls_equal on SQLite or before
 * PostgreSQL 15, ONLINE on SQLite or with dry_run, a transaction open,
 * ABORT on SQLite or with merge or dry_run, an unknown mode),
 * NODUP_ERR_RETRY (the lock was never granted, or an online run of the
 * table is alive in the backend the message names), those of nodup_merge().
 * On success *out is a new report; free with nodup_enforce_free().
 */
NODUP_EXTERN int nodup_enforce(nodup_enforce_report **out, nodup_db *db, const char *table,
                               const char *const *cols, size_t ncols, const char *where,
                               const nodup_enforce_options *opt);

/* Free an enforce report. Accepts NULL. */
NODUP_EXTERN void nodup_enforce_free(nodup_enforce_report *report);

/* ---------------------------------------------------------------------------
 * Imports
 *
 * nodup_import_csv() inserts every row of a CSV file in one transaction, or
 * none. The key's unique index is the arbiter, so two processes importing
 * the same file at once cannot both succeed: the loser waits for the
 * winner's transaction, finds every key taken and rolls back.
 */

/* How many conflicting keys a report lists (the rest are only counted). */
#define NODUP_IMPORT_LIST 10

#define NODUP_IMPORT_OPTIONS_VERSION 1
/* NODUP_IMPORT_OPTIONS_INIT, or nodup_import_options_init(): see "Options". */
#define NODUP_IMPORT_OPTIONS_INIT {.version = NODUP_IMPORT_OPTIONS_VERSION}
typedef struct nodup_import_options {
  unsigned int version;     /* NODUP_IMPORT_OPTIONS_VERSION (0, a zeroed struct, reads as 1) */
  size_t chunk;             /* rows per INSERT statement where PostgreSQL's COPY of a
                               batch failed (the exact path); 0: 500 */
  size_t limit;             /* conflicts listed in the report; 0: NODUP_IMPORT_LIST */
} nodup_import_options;

/* One row whose key could not be inserted. */
typedef struct nodup_import_conflict {
  char **values;            /* report->nkey key values as in the CSV; NULL for NULL */
  long long line;           /* CSV line where the row starts (the header is line 1) */
  int existing;             /* 1: the key is in the table; 0: it repeats within the file */
} nodup_import_conflict;

/* The report of nodup_import_csv(). Read-only for the caller; freed by
 * nodup_import_free(). */
typedef struct nodup_import_report {
  long long rows;           /* data rows read (all of them, also on conflict) */
  long long inserted;       /* rows inserted: `rows` on success, 0 otherwise */
  long long conflicts;      /* rows whose key exists or repeats */
  size_t nkey;
  char **key;               /* key columns, catalog spelling */
  size_t nlisted;           /* at most options.limit */
  nodup_import_conflict *listed;  /* in file order */
} nodup_import_report;

/*
 * Insert every row of the CSV read from `csv` into `table`, all in one
 * transaction, or none of them.
 *
 * The CSV is RFC 4180 (parsed by libcsv, strict): a header row naming the
 * columns (any of the table's, in any order; the others get their
 * defaults), then one record per row with as many fields. Fields may be
 * quoted ("a, b", "say ""hi""", line breaks inside quotes) and are taken
 * verbatim: no trimming. An unquoted empty field is SQL NULL, a quoted
 * empty field ("") is the empty string (PostgreSQL's COPY convention).
 * Lines with nothing on them are skipped. A UTF-8 byte-order mark at the
 * start of the file (Excel's "CSV UTF-8") is skipped; a NUL byte in a field
 * is refused, never cut short. Values are text, converted by the
 * database's input functions, as everywhere in nodup (bound as parameters,
 * or sent as COPY text: the same conversion, never SQL).
 *
 * The key (`cols`, `ncols`, optional `where`) must be backed by a unique
 * index exactly, as for nodup_key_prepare(); the header must name every key
 * column. The file is streamed: memory stays flat whatever its size.
 * SQLite: BEGIN IMMEDIATE (a savepoint inside the caller's transaction) and
 * one prepared insert reused per row. PostgreSQL: BEGIN (a savepoint inside
 * the caller's transaction), then batches of 10,000 rows streamed through
 * COPY FROM STDIN as they are parsed, each in a savepoint (COPY fires
 * triggers and checks constraints, but applies no rules). A row whose key
 * exists makes the batch's COPY fail on the key's index; the batch is then
 * rolled back and inserted with `INSERT ... ON CONFLICT (key) DO NOTHING`
 * of opt->chunk rows, and row by row where one of those fails or inserts
 * fewer rows than it has: a row that inserts nothing is a conflict, never a
 * raw unique violation, and a failing row is named by its line. After the
 * first conflict the remaining batches skip COPY and only count theirs.
 * SQLite inserts with the same statement. A row outside the key's predicate
 * is inserted but not checked (the index does not cover it).
 *
 * When any key already exists, or the file repeats a key, nothing is
 * inserted (the transaction is rolled back after the whole file has been
 * read, so every conflict is counted) and the call returns
 * NODUP_ERR_DUPLICATE; the message names the first conflicting keys and
 * their lines ("and N more"). Concurrent imports of one file: exactly one
 * succeeds, the others return NODUP_ERR_DUPLICATE.
 *
 * On NODUP_OK and on NODUP_ERR_DUPLICATE, *out is a new report (free with
 * nodup_import_free()); on any other error *out is NULL. `opt` may be NULL.
 * The caller keeps `csv` (the call reads it to its end or to the error and
 * does not close it).
 *
 * Errors: NODUP_ERR_DUPLICATE; those of nodup_key_prepare()
 * (NODUP_ERR_UNBACKED, NODUP_ERR_NO_TABLE, NODUP_ERR_NO_PKEY...);
 * NODUP_ERR_NO_COLUMN (a header names an unknown column, or lacks a key
 * column); NODUP_ERR_USAGE (malformed CSV: unterminated quote, stray quote,
 * a record with the wrong number of fields, an empty or repeated header
 * name, a NUL byte in a field; the message gives the line);
 * NODUP_ERR_NULL_KEY (a key value is NULL and the index treats NULLs as
 * distinct); NODUP_ERR_CONSTRAINT and
 * NODUP_ERR_DB (a bad value, NOT NULL, CHECK, a foreign key: the message
 * starts with the CSV line and carries the database's, which names the
 * column); NODUP_ERR_RETRY (a deadlock with an import of overlapping keys
 * in another order, or SQLite's lock stayed busy: run it again);
 * NODUP_ERR_NOMEM. Nothing is inserted on any error.
 */
NODUP_EXTERN int nodup_import_csv(nodup_import_report **out, nodup_db *db,
                                  const char *table, const char *const *cols,
                                  size_t ncols, const char *where, FILE *csv,
                                  const nodup_import_options *opt);

/* Free an import report. Accepts NULL. */
NODUP_EXTERN void nodup_import_free(nodup_import_report *report);

#ifdef __cplusplus
}
#endif

#endif /* NODUP_H */

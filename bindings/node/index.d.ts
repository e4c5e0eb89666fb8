// nodup for Node.js: create a database row exactly once, on SQLite and
// PostgreSQL, under any amount of concurrency. A unique index is the
// arbiter; nodup gives the call that returns the existing row or creates
// it, with a flag saying which (libnodup's nodup.h is the full manual).
//
// Every call returns a Promise and runs off the event loop, in libuv's
// thread pool. A Connection is ONE database connection: its calls run one
// at a time, in the order they were made (a queue in the addon), whatever
// the number of promises in flight. Concurrency comes from several
// Connections (a pool of them): calls on different connections run at the
// same time, up to the thread pool's size (UV_THREADPOOL_SIZE, 4 by
// default). Keep one Connection for many calls: it caches what it
// prepares.

/** A column's value. Strings as they are; numbers and bigints as JS prints
 * them; booleans as 1/0 (a boolean column on PostgreSQL, an integer on
 * SQLite); Dates as ISO 8601 in UTC; null is SQL NULL. The database
 * converts the text to the column's type. */
export type Value = string | number | bigint | boolean | Date | null;

/** Columns and their values: { column: value }. The key's column order is
 * the object's. In defaults, set and create, an undefined value leaves the
 * column out; in a key it is a TypeError. */
export type Columns = Record<string, Value | undefined>;

/** Every failure rejects with an Error carrying these. Argument errors are
 * TypeErrors with code 'NODUP_ERR_USAGE'. */
export interface NodupError extends Error {
  /** The library's error name: 'NODUP_ERR_UNBACKED', 'NODUP_ERR_NULL_KEY',
   * 'NODUP_ERR_CONSTRAINT', 'NODUP_ERR_RETRY', 'NODUP_ERR_CONNECT'... */
  code: string;
  /** The same error's number (see `codes`). */
  errno: number;
  /** The SQLSTATE when the error came from the database ('23505',
   * '40001'...; SQLite's errors get the PostgreSQL code that fits). */
  sqlstate?: string;
  /** The constraint or index the error names, as the database spells it
   * (PostgreSQL; SQLite does not name its unique indexes in errors). */
  constraint?: string;
}

export interface GetOrCreateOptions {
  /** Columns written only when the row is created; never compared. */
  defaults?: Columns;
  /** The key's partial-index predicate, SQL text (trusted: it is not a
   * parameter), e.g. "context_type = 'agency_inquiry'". */
  where?: string;
}

export interface UpdateOrCreateOptions {
  /** Columns the row must hold: written on create, and on update when the
   * row differs. */
  set?: Columns;
  /** Columns written only when the row is created. */
  create?: Columns;
  /** As in GetOrCreateOptions. */
  where?: string;
}

export interface SlugOptions {
  /** Make the slug unique per tenant: the row gets these columns, and only
   * rows with the same values compete for the slug. */
  scope?: Columns;
  /** Other columns of the new row. */
  set?: Columns;
  /** The longest slug, suffix included (default 50, must be above 7). */
  maxLength?: number;
  /** The slug for text that keeps nothing (default 'n-a'). */
  fallback?: string;
  /** Slugs never issued bare (default: new, edit, delete, admin, api,
   * login, logout, signup, settings, search; [] reserves nothing). */
  reserved?: string[];
}

/** One database connection; made by connect(), never with `new`. */
export class Connection {
  private constructor();

  /**
   * Return the row whose key columns equal `key` (and which satisfies
   * `where`), creating it when there is none. Under any concurrency,
   * exactly one caller per key gets created: true, and all get the same
   * id. `id` is the row's primary key as text (columns joined with ',' for
   * a composite one). A unique index must back exactly the key's columns
   * (and predicate).
   *
   * The key is prepared once per (table, key columns, where) and kept on
   * the connection (up to 256 of them).
   *
   * Rejects with code NODUP_ERR_UNBACKED (no unique index backs the key;
   * the message holds the CREATE UNIQUE INDEX that would),
   * NODUP_ERR_NULL_KEY (a null key value), NODUP_ERR_CONSTRAINT (another
   * constraint; `constraint` names it), NODUP_ERR_PREDICATE,
   * NODUP_ERR_RETRY (inside your own transaction: retry it),
   * NODUP_ERR_NO_TABLE, NODUP_ERR_NO_COLUMN, NODUP_ERR_DB.
   */
  getOrCreate(table: string, key: Columns, options?: GetOrCreateOptions):
    Promise<{ id: string; created: boolean }>;

  /**
   * Make the row with this key hold `set`: update it when it differs,
   * create it (with `create` and `set`) when there is none, write nothing
   * when it already holds them. Exactly one caller per key gets 'created'.
   * Rejects as getOrCreate does; NODUP_ERR_USAGE when a set or create
   * column is one of the key's.
   */
  updateOrCreate(table: string, key: Columns, options?: UpdateOrCreateOptions):
    Promise<{ id: string; created: boolean; outcome: 'created' | 'updated' | 'unchanged' }>;

  // getOrCreateMany: the many-keys get-or-create will be declared here
  // when the library has it.

  /**
   * Insert a row into `table` whose `column` holds a unique slug made from
   * `text` ('My Team' -> 'my-team', then 'my-team-2', 'my-team-3'...; the
   * next suffix is the highest taken + 1), and return the slug and the
   * row's id. Concurrent callers never get the same slug and never see the
   * unique violation. A unique index on (scope columns..., column) must
   * exist: NODUP_ERR_UNBACKED otherwise. Other rejections:
   * NODUP_ERR_CONSTRAINT, NODUP_ERR_NULL_KEY, NODUP_ERR_RETRY.
   */
  slug(table: string, column: string, text: string, options?: SlugOptions):
    Promise<{ slug: string; id: string }>;

  /**
   * Whether a unique index backs the key `columns` (and `where`), without
   * preparing it: resolves with the index's name, rejects with
   * NODUP_ERR_UNBACKED whose message holds the CREATE UNIQUE INDEX that
   * would back it.
   */
  check(table: string, columns: string[], options?: { where?: string }):
    Promise<{ index: string }>;

  /**
   * Run SQL statements that return no rows (DDL, BEGIN, COMMIT). No
   * parameters: never build `sql` from untrusted input. A transaction
   * opened here holds this connection (and, while a call waits on a lock
   * it holds, a thread-pool thread) until it ends.
   */
  exec(sql: string): Promise<void>;

  /**
   * Close the connection. Calls already made finish first (their promises
   * settle as usual); calls made after close() reject with
   * NODUP_ERR_USAGE. Closing twice is harmless. A Connection that is
   * garbage-collected unclosed closes itself.
   */
  close(): Promise<void>;
}

/**
 * Open a connection: 'postgres://...', 'postgresql://...' or a libpq
 * conninfo ('host=/tmp dbname=app') for PostgreSQL; 'sqlite:PATH', an
 * SQLite URI ('file:app.db?mode=rwc') or a plain path (of an existing
 * file) for SQLite. The connection is made off the event loop; the
 * promise rejects with NODUP_ERR_URL (malformed or unsupported URL) or
 * NODUP_ERR_CONNECT (server down, file missing, authentication failed).
 */
export function connect(url: string): Promise<Connection>;

/** Error names to numbers: { NODUP_OK: 0, NODUP_ERR_NOMEM: 1, ... }. */
export const codes: Readonly<Record<string, number>>;

/** The version of libnodup inside the addon ("0.1.0"). */
export const libversion: string;

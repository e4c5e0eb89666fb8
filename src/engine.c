/*
 * engine.c -- which PostgreSQL-compatible engine is on the other end of a
 * connection, and what nodup cannot promise there.
 *
 * Citus, CockroachDB and YugabyteDB speak PostgreSQL's protocol and most of
 * its SQL, so nearly every statement nodup sends is accepted by all of them;
 * what differs is whether the guarantee behind the statement holds. Citus
 * checks a unique index shard by shard and refuses triggers on distributed
 * tables, CockroachDB has no advisory locks and no expression conflict
 * targets, YugabyteDB does not retry a pipeline the way PostgreSQL never has
 * to. This file turns the answers a server gives (version(), its
 * server_version parameter, the citus extension's version, a table's Citus
 * metadata) into an engine and, per operation, either NODUP_OK or a refusal
 * whose one-line message names the engine, the reason with the page of the
 * engine's manual that states it, and what to do instead.
 *
 * Pure functions: the backend runs the queries below (ENGINE_SQL_*) and hands
 * over the answers, so the unit tests feed in the strings those engines
 * really return. docs/SCALE.md is the user's side of the same table; keep
 * them in step.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* What a refusal returns: nothing changed, and the user must choose another
 * way. A key Citus cannot back returns NODUP_ERR_UNBACKED instead, as any
 * unbacked key does. */
#define ENGINE_REFUSED NODUP_ERR_UNSUPPORTED

/* One statement, one row, no parameters and no session state, so it runs
 * unchanged on PostgreSQL 14-18, Citus, CockroachDB (whose pg_catalog has
 * pg_extension) and YugabyteDB, and through PgBouncer in transaction mode.
 * Columns: version(), the citus extension's version or NULL, and the server
 * process id (db_pg.c compares it with the one libpq got at connect, to
 * tell a pooler from a session of our own). */
const char ENGINE_SQL_DETECT[] =
    "SELECT pg_catalog.version(), (SELECT extversion FROM pg_catalog.pg_extension "
    "WHERE extname = 'citus'), pg_catalog.pg_backend_pid()";

/* $1: the table (its quoted SQL name, cast to regclass). No row: Citus does
 * not know the table (a plain table on the coordinator). One row: partmethod,
 * repmodel, colocationid, the distribution column's name (NULL for
 * reference, local and single-shard tables), and 1 when the table belongs to
 * a distributed schema. The classification is citus_tables' own, without
 * its per-shard size lookups. pg_dist_schema exists from Citus 12.0. */
#define CITUS_TABLE_SQL(in_schema)                                             \
  "SELECT p.partmethod::text, p.repmodel::text, p.colocationid::text, "        \
  "CASE WHEN p.partkey IS NOT NULL "                                           \
  "THEN pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) END, "     \
  in_schema " FROM pg_catalog.pg_dist_partition p "                            \
  "WHERE p.logicalrelid = $1::regclass"
const char ENGINE_SQL_CITUS_TABLE[] =
    CITUS_TABLE_SQL("(EXISTS (SELECT 1 FROM pg_catalog.pg_dist_schema s "
                    "WHERE s.colocationid = p.colocationid))::int::text");
const char ENGINE_SQL_CITUS_TABLE_11[] = CITUS_TABLE_SQL("'0'");

/* ---- detection ---- */

const char *engine_name(engine_kind kind) {
  switch (kind) {
  case ENGINE_CITUS: return "Citus";
  case ENGINE_COCKROACH: return "CockroachDB";
  case ENGINE_YUGABYTE: return "YugabyteDB";
  case ENGINE_POSTGRES: break;
  }
  return "PostgreSQL";
}

/* Up to four dot-separated numbers at s into v ("23.1.11", "2.18.0.0-b0",
 * "12.1-1"); returns how many were read. */
static int read_numbers(const char *s, int v[4]) {
  int n = 0;
  while (n < 4 && *s >= '0' && *s <= '9') {
    long x = 0;
    while (*s >= '0' && *s <= '9' && x < 100000) x = x * 10 + (*s++ - '0');
    v[n++] = (int)x;
    if (*s != '.') break;
    s++;
  }
  return n;
}

/* The release as the engine prints it: from s up to a space, comma or
 * parenthesis. */
static void copy_release(engine_info *e, const char *s) {
  size_t n = strcspn(s, " ,()");
  if (n >= sizeof e->release) n = sizeof e->release - 1;
  memcpy(e->release, s, n);
  e->release[n] = '\0';
}

/* "16.4 (Debian ...)", "11.2-YB-...", "9.6.24", "18beta1" -> the
 * server_version_num that version would report, or 0. */
static int pg_version_num(const char *s) {
  int v[4] = {0, 0, 0, 0}, n;
  if (!s) return 0;
  n = read_numbers(s, v);
  if (n == 0) return 0;
  if (v[0] >= 10) return v[0] * 10000 + v[1];
  return v[0] * 10000 + v[1] * 100 + v[2];
}

/* The PostgreSQL version inside version() text: "PostgreSQL 16.4 (...)". */
static const char *after_postgresql(const char *version) {
  const char *p = version ? strstr(version, "PostgreSQL ") : NULL;
  return p ? p + strlen("PostgreSQL ") : NULL;
}

void engine_detect(engine_info *out, const char *version, const char *server_version,
                   const char *citus_version) {
  const char *p;
  memset(out, 0, sizeof *out);
  out->kind = ENGINE_POSTGRES;

  /* CockroachDB: version() and its crdb_version startup parameter read
   * "CockroachDB CCL v23.1.11 (...)"; its server_version is a fixed
   * "13.0.0", the PostgreSQL it claims to speak. */
  if (version && (p = strstr(version, "CockroachDB"))) {
    out->kind = ENGINE_COCKROACH;
    if ((p = strstr(p, " v"))) {
      copy_release(out, p + 1);
      read_numbers(p + 2, out->v);
    }
    out->pg_version = server_version ? pg_version_num(server_version) : 130000;
    return;
  }

  /* YugabyteDB: both version() and server_version carry
   * "<postgres>-YB-<release>", e.g. "11.2-YB-2.18.0.0-b0". */
  p = version ? strstr(version, "-YB-") : NULL;
  if (!p && server_version) p = strstr(server_version, "-YB-");
  if (p) {
    out->kind = ENGINE_YUGABYTE;
    copy_release(out, p + 4);
    read_numbers(p + 4, out->v);
    if (server_version && strstr(server_version, "-YB-"))
      out->pg_version = pg_version_num(server_version);
    else
      out->pg_version = pg_version_num(after_postgresql(version));
    return;
  }

  out->pg_version = server_version ? pg_version_num(server_version)
                                   : pg_version_num(after_postgresql(version));

  /* Citus: its version() is PostgreSQL's; the extension's version
   * ("12.1-1") says it is there. */
  if (citus_version && *citus_version) {
    out->kind = ENGINE_CITUS;
    copy_release(out, citus_version);
    read_numbers(citus_version, out->v);
    return;
  }

  p = server_version ? server_version : after_postgresql(version);
  if (p) {
    copy_release(out, p);
    read_numbers(p, out->v);
  }
}

/* At least release a.b.c (missing parts count as 0). */
static int at_least(const engine_info *e, int a, int b, int c) {
  if (e->v[0] != a) return e->v[0] > a;
  if (e->v[1] != b) return e->v[1] > b;
  return e->v[2] >= c;
}

/* ---- Citus tables ---- */

const char *engine_citus_table_sql(const engine_info *e) {
  return at_least(e, 12, 0, 0) ? ENGINE_SQL_CITUS_TABLE : ENGINE_SQL_CITUS_TABLE_11;
}

int engine_citus_table(engine_table *t, int ncols, const char *const *vals) {
  const char *method, *repmodel, *colocation;
  if (ncols < 5 || !vals[0]) return NODUP_ERR_USAGE;
  method = vals[0];
  repmodel = vals[1] ? vals[1] : "";
  colocation = vals[2] ? vals[2] : "0";
  t->dist_column = NULL;
  if (vals[3] && *vals[3] && strcmp(method, "n") != 0) {
    /* 'h' hash, 'r' range, 'a' append: one shard per range of the column. */
    t->placement = ENGINE_TABLE_DISTRIBUTED;
    t->dist_column = vals[3];
  } else if (vals[4] && !strcmp(vals[4], "1")) {
    t->placement = ENGINE_TABLE_SCHEMA;
  } else if (!strcmp(repmodel, "t")) {
    t->placement = ENGINE_TABLE_REFERENCE;
  } else if (!strcmp(colocation, "0")) {
    t->placement = ENGINE_TABLE_CITUS_LOCAL;
  } else {
    t->placement = ENGINE_TABLE_SINGLE_SHARD;
  }
  return NODUP_OK;
}

/* ---- refusals ---- */

/* "CockroachDB v23.1.11: " -- every message starts by naming the engine. */
static void label(buf *m, const engine_info *e) {
  buf_puts(m, engine_name(e->kind));
  if (e->release[0]) buf_printf(m, " %s", e->release);
  buf_puts(m, ": ");
}

static void table_name(buf *m, const engine_request *r) {
  if (r->table && r->table->name) sql_ident(m, r->table->name);
  else buf_puts(m, "the table");
}

static int key_has(const engine_request *r, const char *col) {
  size_t i;
  for (i = 0; i < r->nkey; i++)
    if (r->key[i] && !strcmp(r->key[i], col)) return 1;
  return 0;
}

/* Citus: a unique index on a distributed table must contain the
 * distribution column; triggers and multi-shard FOR UPDATE are refused on
 * distributed (and, for triggers, reference) tables. */
static int citus_refusal(const engine_info *e, const engine_request *r, buf *m) {
  const engine_table *t = r->table;
  engine_placement where = t ? t->placement : ENGINE_TABLE_LOCAL;

  if (where == ENGINE_TABLE_DISTRIBUTED && t->dist_column && r->nkey &&
      !key_has(r, t->dist_column)) {
    label(m, e);
    table_name(m, r);
    buf_puts(m, " is distributed by ");
    sql_ident(m, t->dist_column);
    buf_puts(m, ", which the key (");
    sql_ident_list(m, r->key, r->nkey);
    buf_puts(m, ") does not contain: Citus checks a unique index shard by shard, so it "
                "enforces only one that contains the distribution column "
                "(https://docs.citusdata.com/en/stable/reference/common_errors.html"
                "#cannot-create-uniqueness-constraint); make the key (");
    sql_ident(m, t->dist_column);
    buf_puts(m, ", ");
    sql_ident_list(m, r->key, r->nkey);
    buf_puts(m, "), unique per ");
    sql_ident(m, t->dist_column);
    buf_puts(m, ", or make a small table a reference table (undistribute_table, then "
                "create_reference_table: https://docs.citusdata.com/en/stable/develop/"
                "reference_ddl.html#reference-tables)");
    return r->op == ENGINE_OP_GET_OR_CREATE ? NODUP_ERR_UNBACKED : ENGINE_REFUSED;
  }

  if (r->op == ENGINE_OP_ENFORCE_ONLINE &&
      (where == ENGINE_TABLE_DISTRIBUTED || where == ENGINE_TABLE_REFERENCE ||
       where == ENGINE_TABLE_SINGLE_SHARD)) {
    label(m, e);
    buf_puts(m, "enforce --online cannot guard ");
    buf_puts(m, where == ENGINE_TABLE_REFERENCE ? "reference table " : "distributed table ");
    table_name(m, r);
    buf_puts(m, ": its guard is a trigger, and Citus refuses triggers on distributed and "
                "reference tables unless citus.enable_unsafe_triggers is on, which risks "
                "visibility and deadlock issues (https://docs.citusdata.com/en/stable/extra/"
                "triggers.html; citus src/backend/distributed/commands/trigger.c); run "
                "enforce without --online: Citus propagates its LOCK TABLE to every node "
                "that holds the metadata (11.0 and later), so writers wait at most "
                "--lock-timeout while each shard's index is built");
    return ENGINE_REFUSED;
  }

  if (r->op == ENGINE_OP_MERGE && where == ENGINE_TABLE_DISTRIBUTED) {
    label(m, e);
    buf_puts(m, "merge cannot run on distributed table ");
    table_name(m, r);
    buf_puts(m, ": it locks each batch's rows with SELECT ... FOR UPDATE, which Citus runs "
                "in single-shard queries only (https://docs.citusdata.com/en/stable/develop/"
                "reference_workarounds.html#cross-node-sql-queries); find the groups with "
                "nodup scan, resolve them one ");
    sql_ident(m, t->dist_column ? t->dist_column : "distribution column");
    buf_puts(m, " value at a time, then run enforce");
    return ENGINE_REFUSED;
  }
  return NODUP_OK;
}

/* CockroachDB: no expression conflict targets, no advisory locks, no LOCK
 * TABLE, temporary tables off by default. Its SERIALIZABLE retries are not a
 * refusal: it retries a batch sent between two Syncs itself while the
 * results stay under 16 KiB, and 40001 inside the caller's transaction is
 * NODUP_ERR_RETRY as on PostgreSQL at SERIALIZABLE. */
static int cockroach_refusal(const engine_info *e, const engine_request *r, buf *m) {
  static const char build_it_yourself[] =
      "remove the duplicates nodup scan lists, then run CREATE UNIQUE INDEX yourself: "
      "CockroachDB builds every index online (CONCURRENTLY is a no-op) and fails a unique "
      "one that meets a duplicate, cleaning it up "
      "(https://www.cockroachlabs.com/docs/stable/create-index; "
      "https://www.cockroachlabs.com/docs/stable/online-schema-changes)";
  switch (r->op) {
  case ENGINE_OP_EXPRESSION_KEY:
    label(m, e);
    buf_puts(m, "a key on an expression cannot arbitrate INSERT ... ON CONFLICT there: "
                "CockroachDB does not support expressions as ON CONFLICT targets, so a "
                "unique expression index is never an arbiter "
                "(https://www.cockroachlabs.com/docs/stable/known-limitations"
                "#expression-index-limitations); store the expression in a computed column "
                "(ADD COLUMN ... AS (expression) STORED), index that column UNIQUE and key "
                "on it");
    return ENGINE_REFUSED;
  case ENGINE_OP_ENFORCE_ONLINE:
    label(m, e);
    buf_puts(m, "enforce --online cannot install its guard there: the guard serialises "
                "writers of a key with pg_advisory_xact_lock, and CockroachDB lists advisory "
                "lock functions as unsupported, some defined as no-ops "
                "(https://www.cockroachlabs.com/docs/stable/postgresql-compatibility"
                "#unsupported-postgresql-features); ");
    buf_puts(m, build_it_yourself);
    return ENGINE_REFUSED;
  case ENGINE_OP_ENFORCE_LOCKED:
    label(m, e);
    buf_puts(m, "enforce cannot hold its lock there: CockroachDB has no LOCK TABLE "
                "(https://www.cockroachlabs.com/docs/stable/sql-statements), and a schema "
                "change inside a multi-statement transaction can fail at COMMIT after the "
                "other statements committed "
                "(https://www.cockroachlabs.com/docs/stable/known-limitations"
                "#schema-change-ddl-statements-inside-a-multi-statement-transaction-can-fail-"
                "while-other-statements-succeed); ");
    buf_puts(m, build_it_yourself);
    return ENGINE_REFUSED;
  case ENGINE_OP_MERGE:
    label(m, e);
    buf_puts(m, "merge cannot run there: it keeps its mappings in temporary tables, which "
                "CockroachDB disables by default (experimental_enable_temp_tables) "
                "(https://www.cockroachlabs.com/docs/stable/temporary-tables); find the "
                "groups with nodup scan and resolve them in your own transaction, then run "
                "CREATE UNIQUE INDEX");
    return ENGINE_REFUSED;
  case ENGINE_OP_GET_OR_CREATE:
    break;
  }
  return NODUP_OK;
}

/* Releases of YugabyteDB that ship the TA-21297 fix (a batch's later
 * statement retried alone, the earlier writes lost): 2.14.16.0, 2.18.7.0,
 * 2.21.1.0 and every release after 2.21, year-numbered ones included. */
static int yb_batch_fix(const engine_info *e) {
  if (e->v[0] > 2) return 1;
  if (e->v[0] < 2) return 0;
  if (e->v[1] > 21) return 1;
  return (e->v[1] == 21 && e->v[2] >= 1) || (e->v[1] == 18 && e->v[2] >= 7) ||
         (e->v[1] == 14 && e->v[2] >= 16);
}

/* YugabyteDB's advisory locks: from 2.25.1 (and the 2025.x releases),
 * behind cluster flags. */
static int yb_has_advisory_locks(const engine_info *e) {
  return e->v[0] >= 2025 || (e->v[0] == 2 && at_least(e, 2, 25, 1));
}

/* YugabyteDB: a pipeline is not retried by the server (and was retried
 * wrongly before TA-21297's fix); advisory locks are missing or optional. */
static int yugabyte_refusal(const engine_info *e, const engine_request *r, buf *m) {
  if (r->op == ENGINE_OP_GET_OR_CREATE && r->pipelined) {
    label(m, e);
    buf_puts(m, "get-or-create cannot send its insert and its lookup in one pipeline there: "
                "YugabyteDB does not retry the statements of a batch after the first, even "
                "at READ COMMITTED (https://github.com/yugabyte/yugabyte-db/issues/26934)");
    if (!yb_batch_fix(e))
      buf_puts(m, ", and this release may predate the TA-21297 fix (2.14.16.0, 2.18.7.0, "
                  "2.21.1.0), under which a conflicting later statement was retried alone and "
                  "the insert before it silently lost "
                  "(https://docs.yugabyte.com/stable/releases/techadvisories/ta-21297/)");
    buf_puts(m, "; send the insert and the lookup as two statements, each of which "
                "YugabyteDB retries on its own "
                "(https://docs.yugabyte.com/stable/architecture/transactions/read-committed/)");
    return ENGINE_REFUSED;
  }
  if (r->op == ENGINE_OP_ENFORCE_ONLINE) {
    label(m, e);
    buf_puts(m, "enforce --online cannot install its guard there: the guard serialises "
                "writers of a key with pg_advisory_xact_lock, ");
    if (yb_has_advisory_locks(e))
      buf_puts(m, "which YugabyteDB provides only when the cluster enables its advisory-lock "
                  "flags, and a client cannot tell");
    else
      buf_puts(m, "which YugabyteDB implements only from 2.25.1: before, the lock fails "
                  "every guarded write, or does nothing when "
                  "yb_silence_advisory_locks_not_supported_error is on");
    buf_puts(m, " (https://docs.yugabyte.com/stable/explore/transactions/explicit-locking/"
                "#advisory-locks); run nodup merge, then CREATE UNIQUE INDEX CONCURRENTLY "
                "outside a transaction block: YugabyteDB backfills it while writes go on and "
                "fails it, removing it, if a duplicate slipped in "
                "(https://docs.yugabyte.com/stable/api/ysql/the-sql-language/statements/"
                "ddl_create_index/#concurrent-index-creation)");
    return ENGINE_REFUSED;
  }
  return NODUP_OK;
}

int engine_refusal(const engine_info *e, const engine_request *r, buf *msg) {
  int rc = NODUP_OK;
  buf_reset(msg);
  switch (e->kind) {
  case ENGINE_CITUS: rc = citus_refusal(e, r, msg); break;
  case ENGINE_COCKROACH: rc = cockroach_refusal(e, r, msg); break;
  case ENGINE_YUGABYTE: rc = yugabyte_refusal(e, r, msg); break;
  case ENGINE_POSTGRES: break;
  }
  if (rc != NODUP_OK && msg->oom) return NODUP_ERR_NOMEM;
  return rc;
}

int engine_pipeline_safe(const engine_info *e) {
  return e->kind != ENGINE_YUGABYTE;
}

/* ---- the check operations make ---- */

typedef struct citus_row {
  engine_table *t;
  char *dist;   /* owned copy of the distribution column */
  int rc;
  int seen;
} citus_row;

static int citus_read(void *ctx, int n, const char *const *v) {
  citus_row *c = ctx;
  c->seen = 1;
  c->rc = engine_citus_table(c->t, n, v);
  if (c->rc == NODUP_OK && c->t->dist_column) {
    c->dist = nodup_strdup(c->t->dist_column);
    if (!c->dist) c->rc = NODUP_ERR_NOMEM;
    c->t->dist_column = c->dist;
  }
  return 1;
}

int engine_check(nodup_db *db, const nodup_table_info *t, engine_op op, char *const *key,
                 size_t nkey) {
  engine_table table;
  engine_request r;
  citus_row row;
  buf msg;
  int rc = NODUP_OK;
  if (db->engine.kind == ENGINE_POSTGRES) return NODUP_OK;
  memset(&table, 0, sizeof table);
  memset(&row, 0, sizeof row);
  memset(&r, 0, sizeof r);
  table.name = t ? t->qualified : NULL;
  row.t = &table;
  if (db->engine.kind == ENGINE_CITUS && t) {
    const char *p[1] = {t->qualified};
    rc = db->be->query(db, engine_citus_table_sql(&db->engine), p, 1, citus_read, &row);
    if (rc == NODUP_OK) rc = row.rc;
    if (rc != NODUP_OK) goto done;
  }
  r.op = op;
  r.table = &table;
  r.key = key;
  r.nkey = nkey;
  r.pipelined = 1;   /* get-or-create always sends insert and lookup in one pipeline */
  buf_init(&msg);
  rc = engine_refusal(&db->engine, &r, &msg);
  if (rc != NODUP_OK) rc = nodup_fail(db, rc, "%s", msg.oom ? "out of memory" : buf_str(&msg));
  buf_free(&msg);
done:
  free(row.dist);
  return rc;
}

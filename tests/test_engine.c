/*
 * test_engine.c -- engine.c without a server: detection from the exact
 * strings Citus, CockroachDB, YugabyteDB and PostgreSQL 14-18 return, the
 * reading of Citus's table metadata, and every refusal (engine, reason,
 * manual page, what to do instead) and every non-refusal, per engine and
 * operation. None of these engines installs here (docs/SCALE.md), so the
 * strings are quoted from their manuals, issues and sources; each case says
 * where from.
 */
#include "harness.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct detect_case {
  const char *source;          /* where the strings were seen */
  const char *version;         /* version() */
  const char *server_version;  /* server_version parameter */
  const char *citus;           /* pg_extension.extversion for citus */
  engine_kind kind;
  const char *release;
  int v[4];
  int pg_version;
};

static const struct detect_case detect_cases[] = {
    {"the brief (CockroachDB 23.1 version())",
     "CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu, built 2023/09/27 01:53:43, go1.19.10)",
     "13.0.0", NULL, ENGINE_COCKROACH, "v23.1.11", {23, 1, 11, 0}, 130000},
    {"cockroachdb/docs demo banner, v21.1",
     "CockroachDB CCL v21.1.1 (x86_64-apple-darwin19, built 2021/05/24 15:00:00, go1.15.11)",
     NULL, NULL, ENGINE_COCKROACH, "v21.1.1", {21, 1, 1, 0}, 130000},
    {"cockroach sql banner, v20.1 (crdb_version parameter has the same text)",
     "CockroachDB CCL v20.1.15 (x86_64-unknown-linux-gnu, built 2021/04/26 16:11:58, go1.13.9)",
     "13.0.0", NULL, ENGINE_COCKROACH, "v20.1.15", {20, 1, 15, 0}, 130000},
    {"yugabyte-db#12323",
     "PostgreSQL 11.2-YB-2.13.1.0-b0 on x86_64-pc-linux-gnu, compiled by clang version 12.0.1 "
     "(https://github.com/yugabyte/llvm-project.git bdb147e675d8c87cee72cc1f87c4b82855977d94), "
     "64-bit",
     "11.2-YB-2.13.1.0-b0", NULL, ENGINE_YUGABYTE, "2.13.1.0-b0", {2, 13, 1, 0}, 110002},
    {"yugabyte-db#17660",
     "PostgreSQL 11.2-YB-2.18.0.1-b0 on x86_64-pc-linux-gnu, compiled by clang version 15.0.3 "
     "(https://github.com/yugabyte/llvm-project.git 0b8d1183745fd3998d8beffeec8cbe99c1b20529), "
     "64-bit",
     NULL, NULL, ENGINE_YUGABYTE, "2.18.0.1-b0", {2, 18, 0, 1}, 110002},
    {"yugabyte-db#2447 (2.0, gcc build)",
     "PostgreSQL 11.2-YB-2.0.0.0-b0 on x86_64-pc-linux-gnu, compiled by gcc (Homebrew gcc "
     "5.5.0_4) 5.5.0, 64-bit",
     NULL, NULL, ENGINE_YUGABYTE, "2.0.0.0-b0", {2, 0, 0, 0}, 110002},
    {"yugabyte-db#5154 (server_version only, PostgreSQL 15 based 2025.1)", NULL,
     "15.12-YB-2025.1.4.0-b0", NULL, ENGINE_YUGABYTE, "2025.1.4.0-b0", {2025, 1, 4, 0}, 150012},
    {"yugabyte-db#5154 (server_version only, 2024.2)", NULL, "11.2-YB-2024.2.11.0-b0", NULL,
     ENGINE_YUGABYTE, "2024.2.11.0-b0", {2024, 2, 11, 0}, 110002},
    {"Citus 12.1 on Debian's PostgreSQL 16.4 (version() is PostgreSQL's own)",
     "PostgreSQL 16.4 (Debian 16.4-1.pgdg120+2) on x86_64-pc-linux-gnu, compiled by gcc (Debian "
     "12.2.0-14) 12.2.0, 64-bit",
     "16.4 (Debian 16.4-1.pgdg120+2)", "12.1-1", ENGINE_CITUS, "12.1-1", {12, 1, 0, 0}, 160004},
    {"Citus 11.3 on this machine's PostgreSQL 15",
     "PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc "
     "(Debian 12.2.0-14+deb12u1) 12.2.0, 64-bit",
     "15.18 (Debian 15.18-0+deb12u1)", "11.3-2", ENGINE_CITUS, "11.3-2", {11, 3, 0, 0}, 150018},
    {"PostgreSQL 14 (Rocky Linux)",
     "PostgreSQL 14.13 on x86_64-pc-linux-gnu, compiled by gcc (GCC) 11.4.1 20231218 (Red Hat "
     "11.4.1-3), 64-bit",
     "14.13", NULL, ENGINE_POSTGRES, "14.13", {14, 13, 0, 0}, 140013},
    {"PostgreSQL 15, this machine's Debian package (SELECT version())",
     "PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc "
     "(Debian 12.2.0-14+deb12u1) 12.2.0, 64-bit",
     "15.18 (Debian 15.18-0+deb12u1)", NULL, ENGINE_POSTGRES, "15.18", {15, 18, 0, 0}, 150018},
    {"PostgreSQL 16 without Citus",
     "PostgreSQL 16.4 (Debian 16.4-1.pgdg120+2) on x86_64-pc-linux-gnu, compiled by gcc (Debian "
     "12.2.0-14) 12.2.0, 64-bit",
     "16.4 (Debian 16.4-1.pgdg120+2)", NULL, ENGINE_POSTGRES, "16.4", {16, 4, 0, 0}, 160004},
    {"PostgreSQL 17 (pgdg), version() only",
     "PostgreSQL 17.2 (Debian 17.2-1.pgdg120+1) on x86_64-pc-linux-gnu, compiled by gcc (Debian "
     "12.2.0-14) 12.2.0, 64-bit",
     NULL, NULL, ENGINE_POSTGRES, "17.2", {17, 2, 0, 0}, 170002},
    {"PostgreSQL 18 (pgdg, trixie)",
     "PostgreSQL 18.0 (Debian 18.0-1.pgdg13+3) on x86_64-pc-linux-gnu, compiled by gcc (Debian "
     "14.2.0-19) 14.2.0, 64-bit",
     "18.0 (Debian 18.0-1.pgdg13+3)", NULL, ENGINE_POSTGRES, "18.0", {18, 0, 0, 0}, 180000},
    {"a PostgreSQL 18 beta", NULL, "18beta1", NULL, ENGINE_POSTGRES, "18beta1", {18, 0, 0, 0},
     180000},
    {"an empty citus extversion is no Citus", NULL, "16.4", "", ENGINE_POSTGRES, "16.4",
     {16, 4, 0, 0}, 160004},
    {"nothing known", NULL, NULL, NULL, ENGINE_POSTGRES, "", {0, 0, 0, 0}, 0},
};

static void test_detect(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof detect_cases / sizeof detect_cases[0]; i++) {
    const struct detect_case *c = &detect_cases[i];
    engine_info e;
    engine_detect(&e, c->version, c->server_version, c->citus);
    if (e.kind != c->kind || strcmp(e.release, c->release) != 0 ||
        e.pg_version != c->pg_version || memcmp(e.v, c->v, sizeof e.v) != 0)
      fail_msg("%s: got %s \"%s\" %d.%d.%d.%d pg %d, want %s \"%s\" %d.%d.%d.%d pg %d",
               c->source, engine_name(e.kind), e.release, e.v[0], e.v[1], e.v[2], e.v[3],
               e.pg_version, engine_name(c->kind), c->release, c->v[0], c->v[1], c->v[2],
               c->v[3], c->pg_version);
  }
}

static void test_names_and_pipeline(void **state) {
  engine_info e;
  (void)state;
  assert_string_equal(engine_name(ENGINE_POSTGRES), "PostgreSQL");
  assert_string_equal(engine_name(ENGINE_CITUS), "Citus");
  assert_string_equal(engine_name(ENGINE_COCKROACH), "CockroachDB");
  assert_string_equal(engine_name(ENGINE_YUGABYTE), "YugabyteDB");

  engine_detect(&e, NULL, "11.2-YB-2.18.0.0-b0", NULL);
  assert_int_equal(engine_pipeline_safe(&e), 0);
  engine_detect(&e, "CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu)", "13.0.0", NULL);
  assert_int_equal(engine_pipeline_safe(&e), 1);
  engine_detect(&e, NULL, "16.4", "12.1-1");
  assert_int_equal(engine_pipeline_safe(&e), 1);
  engine_detect(&e, NULL, "16.4", NULL);
  assert_int_equal(engine_pipeline_safe(&e), 1);
}

/* The connect query asks for nothing that needs a session, a parameter or
 * an extension, and the table query takes the table as $1::regclass. */
static void test_sql_shapes(void **state) {
  engine_info e;
  (void)state;
  assert_non_null(strstr(ENGINE_SQL_DETECT, "version()"));
  assert_non_null(strstr(ENGINE_SQL_DETECT, "pg_catalog.pg_extension"));
  assert_null(strchr(ENGINE_SQL_DETECT, '$'));
  assert_null(strstr(ENGINE_SQL_DETECT, "SET "));

  engine_detect(&e, NULL, "16.4", "12.1-1");
  assert_ptr_equal(engine_citus_table_sql(&e), ENGINE_SQL_CITUS_TABLE);
  assert_non_null(strstr(engine_citus_table_sql(&e), "pg_dist_schema"));
  engine_detect(&e, NULL, "15.18", "11.3-2");
  assert_ptr_equal(engine_citus_table_sql(&e), ENGINE_SQL_CITUS_TABLE_11);
  assert_null(strstr(engine_citus_table_sql(&e), "pg_dist_schema"));
  assert_non_null(strstr(ENGINE_SQL_CITUS_TABLE_11, "column_to_column_name"));
  assert_non_null(strstr(ENGINE_SQL_CITUS_TABLE_11, "$1::regclass"));
}

/* Rows as pg_dist_partition holds them (citus_docs api_metadata.rst and
 * citus_tables' own classification). */
static void test_citus_table_rows(void **state) {
  struct row_case {
    const char *vals[5];
    engine_placement want;
    const char *column;
  } rows[] = {
      {{"h", "s", "2", "tenant_id", "0"}, ENGINE_TABLE_DISTRIBUTED, "tenant_id"},
      {{"r", "s", "0", "created_at", "0"}, ENGINE_TABLE_DISTRIBUTED, "created_at"},
      {{"a", "c", "0", "id", "0"}, ENGINE_TABLE_DISTRIBUTED, "id"},
      {{"n", "t", "1", NULL, "0"}, ENGINE_TABLE_REFERENCE, NULL},
      {{"n", "s", "0", NULL, "0"}, ENGINE_TABLE_CITUS_LOCAL, NULL},
      {{"n", "s", "7", NULL, "1"}, ENGINE_TABLE_SCHEMA, NULL},
      {{"n", "s", "7", NULL, "0"}, ENGINE_TABLE_SINGLE_SHARD, NULL},
  };
  (void)state;
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    engine_table t = {"t", ENGINE_TABLE_LOCAL, NULL};
    assert_int_equal(engine_citus_table(&t, 5, rows[i].vals), NODUP_OK);
    assert_int_equal(t.placement, rows[i].want);
    if (rows[i].column) assert_string_equal(t.dist_column, rows[i].column);
    else assert_null(t.dist_column);
  }
  {
    engine_table t = {"t", ENGINE_TABLE_LOCAL, NULL};
    const char *short_row[3] = {"h", "s", "2"};
    const char *null_method[5] = {NULL, "s", "2", "a", "0"};
    assert_int_equal(engine_citus_table(&t, 3, short_row), NODUP_ERR_USAGE);
    assert_int_equal(engine_citus_table(&t, 5, null_method), NODUP_ERR_USAGE);
  }
}

/* Run r on e and check the code; when refused, the message is one line,
 * starts with `label` (the engine and its release) and contains every
 * string of `want` (NULL-terminated). */
static void expect(const char *what, const engine_info *e, const engine_request *r, int want_rc,
                   const char *label, const char *const *want) {
  buf m;
  int rc;
  buf_init(&m);
  rc = engine_refusal(e, r, &m);
  if (rc != want_rc) {
    char copy[2048];
    snprintf(copy, sizeof copy, "%s", buf_str(&m));
    buf_free(&m);
    fail_msg("%s: engine_refusal = %d (%s), want %d (%s): %s", what, rc, nodup_strerror(rc),
             want_rc, nodup_strerror(want_rc), copy);
  }
  if (rc == NODUP_OK) {
    if (m.len) {
      buf_free(&m);
      fail_msg("%s: not refused, but left a message", what);
    }
  } else {
    const char *s = buf_str(&m);
    if (strchr(s, '\n') || strncmp(s, label, strlen(label)) != 0) {
      char copy[2048];
      snprintf(copy, sizeof copy, "%s", s);
      buf_free(&m);
      fail_msg("%s: message must be one line starting \"%s\": %s", what, label, copy);
    }
    for (; want && *want; want++)
      if (!strstr(s, *want)) {
        char copy[2048];
        snprintf(copy, sizeof copy, "%s", s);
        buf_free(&m);
        fail_msg("%s: message lacks \"%s\": %s", what, *want, copy);
      }
  }
  buf_free(&m);
}

static char *key_email[] = {"email"};
static char *key_tenant_email[] = {"email", "tenant_id"};

static engine_request request(engine_op op, const engine_table *t, char **key, size_t nkey,
                              int pipelined) {
  engine_request r;
  memset(&r, 0, sizeof r);
  r.op = op;
  r.table = t;
  r.key = key;
  r.nkey = nkey;
  r.pipelined = pipelined;
  return r;
}

static const engine_op all_ops[] = {ENGINE_OP_GET_OR_CREATE, ENGINE_OP_ENFORCE_LOCKED,
                                    ENGINE_OP_ENFORCE_ONLINE, ENGINE_OP_MERGE,
                                    ENGINE_OP_EXPRESSION_KEY};

static void test_postgres_refuses_nothing(void **state) {
  engine_info e;
  engine_table t = {"users", ENGINE_TABLE_LOCAL, NULL};
  (void)state;
  engine_detect(&e, NULL, "14.13", NULL);
  for (size_t i = 0; i < sizeof all_ops / sizeof all_ops[0]; i++) {
    engine_request r = request(all_ops[i], &t, key_email, 1, 1);
    expect("PostgreSQL", &e, &r, NODUP_OK, "", NULL);
    r.table = NULL;
    expect("PostgreSQL, no table", &e, &r, NODUP_OK, "", NULL);
  }
}

static void test_citus_key_without_distribution_column(void **state) {
  static const char *const want[] = {
      "\"users\" is distributed by \"tenant_id\", which the key (\"email\") does not contain",
      "shard by shard",
      "https://docs.citusdata.com/en/stable/reference/common_errors.html"
      "#cannot-create-uniqueness-constraint",
      "make the key (\"tenant_id\", \"email\")",
      "reference table",
      NULL};
  engine_info e;
  engine_table t = {"users", ENGINE_TABLE_DISTRIBUTED, "tenant_id"};
  engine_request r;
  (void)state;
  engine_detect(&e, "PostgreSQL 16.4 (Debian 16.4-1.pgdg120+2) on x86_64-pc-linux-gnu",
                "16.4 (Debian 16.4-1.pgdg120+2)", "12.1-1");
  /* A key nothing can back: the same code as any unbacked key. */
  r = request(ENGINE_OP_GET_OR_CREATE, &t, key_email, 1, 1);
  expect("Citus get-or-create", &e, &r, NODUP_ERR_UNBACKED, "Citus 12.1-1: ", want);
  r = request(ENGINE_OP_EXPRESSION_KEY, &t, key_email, 1, 1);
  expect("Citus expression key", &e, &r, NODUP_ERR_UNSUPPORTED, "Citus 12.1-1: ", want);
  r = request(ENGINE_OP_ENFORCE_LOCKED, &t, key_email, 1, 0);
  expect("Citus enforce", &e, &r, NODUP_ERR_UNSUPPORTED, "Citus 12.1-1: ", want);
  r = request(ENGINE_OP_ENFORCE_ONLINE, &t, key_email, 1, 0);
  expect("Citus enforce --online", &e, &r, NODUP_ERR_UNSUPPORTED, "Citus 12.1-1: ", want);
  r = request(ENGINE_OP_MERGE, &t, key_email, 1, 0);
  expect("Citus merge", &e, &r, NODUP_ERR_UNSUPPORTED, "Citus 12.1-1: ", want);
}

static void test_citus_distributed_table(void **state) {
  static const char *const online[] = {
      "enforce --online cannot guard distributed table \"users\"",
      "citus.enable_unsafe_triggers",
      "https://docs.citusdata.com/en/stable/extra/triggers.html",
      "run enforce without --online",
      NULL};
  static const char *const merge[] = {
      "merge cannot run on distributed table \"users\"",
      "SELECT ... FOR UPDATE",
      "https://docs.citusdata.com/en/stable/develop/reference_workarounds.html"
      "#cross-node-sql-queries",
      "nodup scan",
      "one \"tenant_id\" value at a time",
      NULL};
  engine_info e;
  engine_table t = {"users", ENGINE_TABLE_DISTRIBUTED, "tenant_id"};
  engine_request r;
  (void)state;
  engine_detect(&e, NULL, "16.4", "12.1-1");
  r = request(ENGINE_OP_GET_OR_CREATE, &t, key_tenant_email, 2, 1);
  expect("Citus key with the distribution column", &e, &r, NODUP_OK, "", NULL);
  r = request(ENGINE_OP_EXPRESSION_KEY, &t, key_tenant_email, 2, 1);
  expect("Citus expression key with the distribution column", &e, &r, NODUP_OK, "", NULL);
  r = request(ENGINE_OP_ENFORCE_LOCKED, &t, key_tenant_email, 2, 0);
  expect("Citus locked enforce", &e, &r, NODUP_OK, "", NULL);
  r = request(ENGINE_OP_ENFORCE_ONLINE, &t, key_tenant_email, 2, 0);
  expect("Citus online enforce", &e, &r, NODUP_ERR_UNSUPPORTED, "Citus 12.1-1: ", online);
  r = request(ENGINE_OP_MERGE, &t, key_tenant_email, 2, 0);
  expect("Citus merge", &e, &r, NODUP_ERR_UNSUPPORTED, "Citus 12.1-1: ", merge);
  /* merge --resume and undo know no key: the FOR UPDATE reason still holds. */
  r = request(ENGINE_OP_MERGE, &t, NULL, 0, 0);
  expect("Citus merge without a key", &e, &r, NODUP_ERR_UNSUPPORTED, "Citus 12.1-1: ", merge);
}

static void test_citus_other_placements(void **state) {
  static const char *const reference_online[] = {
      "enforce --online cannot guard reference table \"states\"", "triggers", NULL};
  static const char *const single_online[] = {
      "enforce --online cannot guard distributed table \"events\"", NULL};
  engine_info e;
  engine_table reference = {"states", ENGINE_TABLE_REFERENCE, NULL};
  engine_table single = {"events", ENGINE_TABLE_SINGLE_SHARD, NULL};
  engine_table schema = {"tenant1.orders", ENGINE_TABLE_SCHEMA, NULL};
  engine_table local = {"settings", ENGINE_TABLE_CITUS_LOCAL, NULL};
  engine_table plain = {"plain", ENGINE_TABLE_LOCAL, NULL};
  engine_request r;
  (void)state;
  engine_detect(&e, NULL, "15.18", "11.3-2");

  /* One shard, or a copy per node: any key holds, merges lock one shard. */
  for (size_t i = 0; i < sizeof all_ops / sizeof all_ops[0]; i++) {
    if (all_ops[i] == ENGINE_OP_ENFORCE_ONLINE) continue;
    r = request(all_ops[i], &reference, key_email, 1, 1);
    expect("reference table", &e, &r, NODUP_OK, "", NULL);
    r = request(all_ops[i], &single, key_email, 1, 1);
    expect("single-shard table", &e, &r, NODUP_OK, "", NULL);
  }
  r = request(ENGINE_OP_ENFORCE_ONLINE, &reference, key_email, 1, 0);
  expect("reference online", &e, &r, NODUP_ERR_UNSUPPORTED, "Citus 11.3-2: ", reference_online);
  r = request(ENGINE_OP_ENFORCE_ONLINE, &single, key_email, 1, 0);
  expect("single-shard online", &e, &r, NODUP_ERR_UNSUPPORTED, "Citus 11.3-2: ", single_online);

  /* Citus accepts triggers on distributed-schema and Citus local tables,
   * and on tables it does not manage: nothing to refuse. */
  for (size_t i = 0; i < sizeof all_ops / sizeof all_ops[0]; i++) {
    r = request(all_ops[i], &schema, key_email, 1, 1);
    expect("distributed-schema table", &e, &r, NODUP_OK, "", NULL);
    r = request(all_ops[i], &local, key_email, 1, 1);
    expect("Citus local table", &e, &r, NODUP_OK, "", NULL);
    r = request(all_ops[i], &plain, key_email, 1, 1);
    expect("table Citus does not know", &e, &r, NODUP_OK, "", NULL);
    r = request(all_ops[i], NULL, key_email, 1, 1);
    expect("no table facts", &e, &r, NODUP_OK, "", NULL);
  }
}

static void test_cockroach(void **state) {
  static const char *const expression[] = {
      "a key on an expression cannot arbitrate INSERT ... ON CONFLICT",
      "does not support expressions as ON CONFLICT targets",
      "https://www.cockroachlabs.com/docs/stable/known-limitations#expression-index-limitations",
      "computed column",
      NULL};
  static const char *const online[] = {
      "enforce --online cannot install its guard",
      "pg_advisory_xact_lock",
      "https://www.cockroachlabs.com/docs/stable/postgresql-compatibility"
      "#unsupported-postgresql-features",
      "run CREATE UNIQUE INDEX yourself",
      "https://www.cockroachlabs.com/docs/stable/create-index",
      NULL};
  static const char *const locked[] = {
      "enforce cannot hold its lock",
      "no LOCK TABLE",
      "https://www.cockroachlabs.com/docs/stable/sql-statements",
      "can fail at COMMIT after the other statements committed",
      "run CREATE UNIQUE INDEX yourself",
      NULL};
  static const char *const merge[] = {
      "merge cannot run there",
      "temporary tables",
      "experimental_enable_temp_tables",
      "https://www.cockroachlabs.com/docs/stable/temporary-tables",
      "nodup scan",
      NULL};
  const char *label = "CockroachDB v23.1.11: ";
  engine_info e;
  engine_table t = {"users", ENGINE_TABLE_LOCAL, NULL};
  engine_request r;
  (void)state;
  engine_detect(&e,
                "CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu, built 2023/09/27 01:53:43, "
                "go1.19.10)",
                "13.0.0", NULL);
  /* CockroachDB retries a batch sent between two Syncs itself; inside the
   * caller's transaction a 40001 is NODUP_ERR_RETRY, as at SERIALIZABLE on
   * PostgreSQL. Nothing to refuse, pipelined or not. */
  r = request(ENGINE_OP_GET_OR_CREATE, &t, key_email, 1, 1);
  expect("CockroachDB get-or-create", &e, &r, NODUP_OK, "", NULL);
  r.pipelined = 0;
  expect("CockroachDB get-or-create, two statements", &e, &r, NODUP_OK, "", NULL);
  r = request(ENGINE_OP_EXPRESSION_KEY, &t, key_email, 1, 1);
  expect("CockroachDB expression key", &e, &r, NODUP_ERR_UNSUPPORTED, label, expression);
  r = request(ENGINE_OP_ENFORCE_ONLINE, &t, key_email, 1, 0);
  expect("CockroachDB online", &e, &r, NODUP_ERR_UNSUPPORTED, label, online);
  r = request(ENGINE_OP_ENFORCE_LOCKED, &t, key_email, 1, 0);
  expect("CockroachDB locked", &e, &r, NODUP_ERR_UNSUPPORTED, label, locked);
  r = request(ENGINE_OP_MERGE, &t, key_email, 1, 0);
  expect("CockroachDB merge", &e, &r, NODUP_ERR_UNSUPPORTED, label, merge);
}

static void test_yugabyte_pipeline(void **state) {
  static const char *const old_release[] = {
      "get-or-create cannot send its insert and its lookup in one pipeline",
      "does not retry the statements of a batch after the first, even at READ COMMITTED",
      "https://github.com/yugabyte/yugabyte-db/issues/26934",
      "TA-21297",
      "https://docs.yugabyte.com/stable/releases/techadvisories/ta-21297/",
      "silently lost",
      "send the insert and the lookup as two statements",
      NULL};
  static const char *const new_release[] = {
      "get-or-create cannot send its insert and its lookup in one pipeline",
      "https://github.com/yugabyte/yugabyte-db/issues/26934",
      "send the insert and the lookup as two statements",
      NULL};
  /* Releases that predate the TA-21297 fix, and releases that carry it. */
  static const char *const before_fix[] = {"11.2-YB-2.18.0.1-b0", "11.2-YB-2.14.15.0-b0",
                                           "11.2-YB-2.20.2.0-b0", "11.2-YB-2.21.0.0-b0"};
  static const char *const with_fix[] = {"11.2-YB-2.18.7.0-b0", "11.2-YB-2.14.16.0-b0",
                                         "11.2-YB-2.21.1.0-b0", "11.2-YB-2024.2.11.0-b0",
                                         "15.12-YB-2025.1.4.0-b0"};
  engine_table t = {"users", ENGINE_TABLE_LOCAL, NULL};
  (void)state;
  for (size_t i = 0; i < sizeof before_fix / sizeof before_fix[0]; i++) {
    engine_info e;
    engine_request r = request(ENGINE_OP_GET_OR_CREATE, &t, key_email, 1, 1);
    char label[64];
    engine_detect(&e, NULL, before_fix[i], NULL);
    snprintf(label, sizeof label, "YugabyteDB %s: ", e.release);
    expect(before_fix[i], &e, &r, NODUP_ERR_UNSUPPORTED, label, old_release);
    r.pipelined = 0;
    expect(before_fix[i], &e, &r, NODUP_OK, "", NULL);
  }
  for (size_t i = 0; i < sizeof with_fix / sizeof with_fix[0]; i++) {
    engine_info e;
    engine_request r = request(ENGINE_OP_GET_OR_CREATE, &t, key_email, 1, 1);
    char label[64];
    buf m;
    engine_detect(&e, NULL, with_fix[i], NULL);
    snprintf(label, sizeof label, "YugabyteDB %s: ", e.release);
    expect(with_fix[i], &e, &r, NODUP_ERR_UNSUPPORTED, label, new_release);
    buf_init(&m);
    engine_refusal(&e, &r, &m);
    assert_null(strstr(buf_str(&m), "TA-21297"));
    buf_free(&m);
    r.pipelined = 0;
    expect(with_fix[i], &e, &r, NODUP_OK, "", NULL);
  }
}

static void test_yugabyte_online_and_the_rest(void **state) {
  static const char *const before_locks[] = {
      "enforce --online cannot install its guard",
      "pg_advisory_xact_lock",
      "only from 2.25.1",
      "yb_silence_advisory_locks_not_supported_error",
      "https://docs.yugabyte.com/stable/explore/transactions/explicit-locking/#advisory-locks",
      "run nodup merge, then CREATE UNIQUE INDEX CONCURRENTLY outside a transaction block",
      "#concurrent-index-creation",
      NULL};
  static const char *const with_locks[] = {
      "enforce --online cannot install its guard",
      "advisory-lock flags",
      "https://docs.yugabyte.com/stable/explore/transactions/explicit-locking/#advisory-locks",
      "CREATE UNIQUE INDEX CONCURRENTLY",
      NULL};
  static const struct {
    const char *server_version;
    const char *const *want;
  } releases[] = {
      {"11.2-YB-2.18.0.1-b0", before_locks},  {"11.2-YB-2024.2.11.0-b0", before_locks},
      {"15.2-YB-2.25.0.0-b0", before_locks},  {"15.12-YB-2.25.1.0-b0", with_locks},
      {"15.12-YB-2.27.0.0-b0", with_locks},   {"15.12-YB-2025.1.4.0-b0", with_locks},
  };
  engine_table t = {"users", ENGINE_TABLE_LOCAL, NULL};
  (void)state;
  for (size_t i = 0; i < sizeof releases / sizeof releases[0]; i++) {
    engine_info e;
    engine_request r = request(ENGINE_OP_ENFORCE_ONLINE, &t, key_email, 1, 0);
    char label[64];
    engine_detect(&e, NULL, releases[i].server_version, NULL);
    snprintf(label, sizeof label, "YugabyteDB %s: ", e.release);
    expect(releases[i].server_version, &e, &r, NODUP_ERR_UNSUPPORTED, label, releases[i].want);
    /* PostgreSQL's own semantics otherwise: LOCK TABLE fails loudly where
     * table-level locks are off, merges use ordinary temporary tables,
     * expression indexes arbitrate ON CONFLICT. */
    r.op = ENGINE_OP_ENFORCE_LOCKED;
    expect("YugabyteDB enforce", &e, &r, NODUP_OK, "", NULL);
    r.op = ENGINE_OP_MERGE;
    expect("YugabyteDB merge", &e, &r, NODUP_OK, "", NULL);
    r.op = ENGINE_OP_EXPRESSION_KEY;
    expect("YugabyteDB expression key", &e, &r, NODUP_OK, "", NULL);
  }
}

/* A message reuses the caller's buffer: the previous text is gone. */
static void test_message_is_reset(void **state) {
  engine_info e;
  engine_table t = {"users", ENGINE_TABLE_LOCAL, NULL};
  engine_request r = request(ENGINE_OP_MERGE, &t, key_email, 1, 0);
  buf m;
  (void)state;
  buf_init(&m);
  buf_puts(&m, "stale");
  engine_detect(&e, NULL, "16.4", NULL);
  assert_int_equal(engine_refusal(&e, &r, &m), NODUP_OK);
  assert_int_equal(m.len, 0);
  engine_detect(&e, "CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu)", "13.0.0", NULL);
  assert_int_equal(engine_refusal(&e, &r, &m), NODUP_ERR_UNSUPPORTED);
  assert_null(strstr(buf_str(&m), "stale"));
  buf_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_detect),
      cmocka_unit_test(test_names_and_pipeline),
      cmocka_unit_test(test_sql_shapes),
      cmocka_unit_test(test_citus_table_rows),
      cmocka_unit_test(test_postgres_refuses_nothing),
      cmocka_unit_test(test_citus_key_without_distribution_column),
      cmocka_unit_test(test_citus_distributed_table),
      cmocka_unit_test(test_citus_other_placements),
      cmocka_unit_test(test_cockroach),
      cmocka_unit_test(test_yugabyte_pipeline),
      cmocka_unit_test(test_yugabyte_online_and_the_rest),
      cmocka_unit_test(test_message_is_reset),
  };
  return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}

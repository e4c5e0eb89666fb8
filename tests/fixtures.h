/* fixtures.h -- schemas shared by the scan and merge suites. */
#ifndef NODUP_TEST_FIXTURES_H
#define NODUP_TEST_FIXTURES_H

/* Seed 000's shape: conferences with events, a many-to-many participant
 * link, a one-to-one summary, a self-reference; plus a parent referenced
 * through a two-column foreign key to a unique key that is not the primary
 * key, and an audit table whose reference the catalog cannot see. */
static const char *const seed000 __attribute__((unused)) =
    "CREATE TABLE \"conference\" ({id}, \"conference_id\" TEXT, \"app_id\" INTEGER NOT NULL,"
    " \"parent_id\" INTEGER REFERENCES \"conference\" (\"id\"));"
    "CREATE TABLE \"event\" ({id}, \"conference\" INTEGER NOT NULL REFERENCES \"conference\" (\"id\"));"
    "CREATE TABLE \"participant\" ({id}, \"name\" TEXT NOT NULL);"
    "CREATE TABLE \"conference_participant\" ({id},"
    " \"conference\" INTEGER NOT NULL REFERENCES \"conference\" (\"id\"),"
    " \"participant\" INTEGER NOT NULL REFERENCES \"participant\" (\"id\"),"
    " UNIQUE (\"conference\", \"participant\"));"
    "CREATE TABLE \"summary\" ({id}, \"conference\" INTEGER NOT NULL UNIQUE"
    " REFERENCES \"conference\" (\"id\"), \"text\" TEXT);"
    "CREATE TABLE \"audit_log\" ({id}, \"object_id\" INTEGER);"
    "INSERT INTO \"conference\" (\"id\", \"conference_id\", \"app_id\") VALUES"
    " (1, 'c1', 7), (2, 'c1', 7), (3, 'c1', 7), (4, 'c2', 7), (5, NULL, 7), (6, NULL, 7);"
    "UPDATE \"conference\" SET \"parent_id\" = 2 WHERE \"id\" = 4;"
    "INSERT INTO \"event\" (\"conference\") VALUES (1), (2), (2), (3), (4);"
    "INSERT INTO \"participant\" (\"id\", \"name\") VALUES (1, 'p1'), (2, 'p2'), (3, 'p3');"
    "INSERT INTO \"conference_participant\" (\"conference\", \"participant\") VALUES"
    " (1, 1), (2, 1), (3, 1), (2, 2), (3, 2), (3, 3), (4, 3);"
    "INSERT INTO \"summary\" (\"conference\", \"text\") VALUES (1, 'a'), (2, 'b'), (3, 'c');"
    "INSERT INTO \"audit_log\" (\"object_id\") VALUES (1), (2), (3), (3);"
    "CREATE TABLE \"region\" ({id}, \"code\" TEXT NOT NULL, \"country\" TEXT NOT NULL,"
    " \"name\" TEXT NOT NULL, UNIQUE (\"code\", \"country\"));"
    "CREATE TABLE \"store\" ({id}, \"region_code\" TEXT, \"region_country\" TEXT,"
    " FOREIGN KEY (\"region_code\", \"region_country\")"
    " REFERENCES \"region\" (\"code\", \"country\"));"
    "INSERT INTO \"region\" (\"id\", \"code\", \"country\", \"name\") VALUES"
    " (1, 'N', 'FR', 'Nord'), (2, 'NO', 'FR', 'Nord'), (3, 'S', 'FR', 'Sud');"
    "INSERT INTO \"store\" (\"region_code\", \"region_country\") VALUES"
    " ('N', 'FR'), ('NO', 'FR'), ('NO', 'FR'), ('S', 'FR')";

/* Replace the fresh test database with a copy of Chinook (never the
 * shared file itself). Needs cmocka, stdio, stdlib and string first. */
__attribute__((unused)) static void harness_load_chinook(nodup_db **db) {
  const char *dir = getenv("NODUP_DATASETS");
  char path[4096];
  assert_non_null(dir);
  if (!harness_is_pg()) {
    char cmd[8192];
    nodup_db *copy = NULL;
    const char *src;
    snprintf(path, sizeof path, "%s/chinook/Chinook_Sqlite.sqlite", dir);
    src = harness_url();
    /* harness_url() is file:PATH?mode=rwc: copy the dataset over it. */
    snprintf(cmd, sizeof cmd, "cp '%s' '%.*s' && chmod u+w '%.*s'", path,
             (int)(strchr(src, '?') - src - 5), src + 5, (int)(strchr(src, '?') - src - 5),
             src + 5);
    nodup_close(*db);
    *db = NULL;
    assert_int_equal(system(cmd), 0);
    assert_int_equal(nodup_open(&copy, src), NODUP_OK);
    *db = copy;
  } else {
    FILE *f;
    long n;
    char *sql, *start;
    snprintf(path, sizeof path, "%s/chinook/Chinook_PostgreSql.sql", dir);
    f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    sql = calloc(1, (size_t)n + 1);
    assert_non_null(sql);
    assert_int_equal(fread(sql, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    /* The script creates and connects to its own database; run what
     * follows "\c chinook;" in ours. */
    start = strstr(sql, "\\c chinook;");
    assert_non_null(start);
    harness_exec(*db, start + strlen("\\c chinook;"));
    free(sql);
  }
}

#endif

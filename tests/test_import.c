/*
 * test_import.c -- nodup_import_csv() on SQLite and PostgreSQL: all rows or
 * none; conflicts with the table and within the file named by key and line;
 * concurrent imports of one file (threads and processes, each with its own
 * connection): exactly one wins; malformed CSV, unknown columns and
 * constraint violations named by line; RFC 4180 fields verbatim (and
 * through PostgreSQL's COPY text: tabs, backslashes, "\N"); 100,000 rows
 * streamed; a conflict, a repeated key and bad rows in a later batch (where
 * PostgreSQL's COPY of the batch fails and the exact path names the line);
 * an import inside the caller's transaction; a UTF-8 byte-order mark
 * skipped, a NUL byte in a field refused by line, never cut short.
 */
#include "harness.h"
#include "rig.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 8
#define PROCESSES 4

static const char *const KEY[] = {"ep", "ord"};

static void create_chapters(nodup_db *db) {
  harness_exec(db, "CREATE TABLE \"chapters\" ({id}, \"ep\" INTEGER NOT NULL,"
                   " \"ord\" INTEGER NOT NULL, \"title\" TEXT NOT NULL,"
                   " \"note\" TEXT);"
                   "CREATE UNIQUE INDEX \"chapters_ep_ord_key\""
                   " ON \"chapters\" (\"ep\", \"ord\")");
}

/* A temporary file holding `text`; the caller unlinks `path`. */
static void write_csv(char *path, size_t size, const char *text) {
  snprintf(path, size, "/tmp/nodup-import-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
}

/* Import `text`; returns the code, the report (or NULL) in *rep. */
static int import_text(nodup_db *db, const char *text, nodup_import_report **rep) {
  char path[64];
  write_csv(path, sizeof path, text);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  int rc = nodup_import_csv(rep, db, "chapters", KEY, 2, NULL, f, NULL);
  fclose(f);
  unlink(path);
  return rc;
}

static long long count_rows(nodup_db *db) {
  return harness_count(db, "SELECT count(*) FROM \"chapters\"", NULL);
}

static const char BATCH[] = "ep,ord,title\n39,1,Intro\n39,2,Middle\n39,3,End\n";

static void test_clean_then_again(void **state) {
  nodup_db *db = *state;
  nodup_import_report *r = NULL;
  create_chapters(db);
  assert_nodup(db, NODUP_OK, import_text(db, BATCH, &r));
  assert_non_null(r);
  assert_int_equal(r->rows, 3);
  assert_int_equal(r->inserted, 3);
  assert_int_equal(r->conflicts, 0);
  nodup_import_free(r);
  assert_int_equal(count_rows(db), 3);

  assert_nodup(db, NODUP_ERR_DUPLICATE, import_text(db, BATCH, &r));
  assert_non_null(r);
  assert_int_equal(r->rows, 3);
  assert_int_equal(r->inserted, 0);
  assert_int_equal(r->conflicts, 3);
  assert_int_equal(r->nlisted, 3);
  assert_int_equal(r->nkey, 2);
  assert_string_equal(r->key[0], "ep");
  assert_string_equal(r->listed[1].values[0], "39");
  assert_string_equal(r->listed[1].values[1], "2");
  assert_int_equal(r->listed[1].line, 3);
  assert_int_equal(r->listed[1].existing, 1);
  nodup_import_free(r);
  assert_contains(nodup_errmsg(db), "('39', '1') line 2 already imported");
  assert_contains(nodup_errmsg(db), "('39', '3') line 4 already imported");
  assert_int_equal(count_rows(db), 3);
}

static void test_partial_overlap(void **state) {
  nodup_db *db = *state;
  nodup_import_report *r = NULL;
  create_chapters(db);
  harness_exec(db, "INSERT INTO \"chapters\" (\"ep\", \"ord\", \"title\") VALUES (39, 2, 'old')");
  assert_nodup(db, NODUP_ERR_DUPLICATE, import_text(db, BATCH, &r));
  assert_int_equal(r->conflicts, 1);
  assert_int_equal(r->nlisted, 1);
  assert_int_equal(r->listed[0].line, 3);
  assert_int_equal(r->listed[0].existing, 1);
  nodup_import_free(r);
  assert_contains(nodup_errmsg(db), "('39', '2') line 3 already imported");
  assert_int_equal(count_rows(db), 1);
  harness_expect(db, "SELECT \"title\" FROM \"chapters\"", NULL, "old");
}

static void test_duplicate_within_file(void **state) {
  nodup_db *db = *state;
  nodup_import_report *r = NULL;
  create_chapters(db);
  assert_nodup(db, NODUP_ERR_DUPLICATE,
               import_text(db, "ep,ord,title\n1,1,a\n1,2,b\n1,1,c\n", &r));
  assert_int_equal(r->conflicts, 1);
  assert_int_equal(r->listed[0].line, 4);
  assert_int_equal(r->listed[0].existing, 0);
  nodup_import_free(r);
  assert_contains(nodup_errmsg(db), "('1', '1') line 4 repeats in the file");
  assert_int_equal(count_rows(db), 0);
}

/* More conflicts than listed: the rest are counted. */
static void test_conflict_list_limit(void **state) {
  nodup_db *db = *state;
  nodup_import_report *r = NULL;
  {
    char text[4096];
    size_t n = (size_t)snprintf(text, sizeof text, "ep,ord,title\n");
    for (int i = 1; i <= 25; i++)
      n += (size_t)snprintf(text + n, sizeof text - n, "7,%d,t\n", i);
    create_chapters(db);
    harness_exec(db, "INSERT INTO \"chapters\" (\"ep\", \"ord\", \"title\")"
                     " SELECT 7, \"ord\", 'x' FROM (SELECT 1 AS \"ord\") AS s");
    assert_nodup(db, NODUP_OK, import_text(db, "ep,ord,title\n8,1,a\n", &r));
    nodup_import_free(r);
    assert_nodup(db, NODUP_OK, import_text(db, "ep,ord,title\n9,1,a\n", &r));
    nodup_import_free(r);
    assert_nodup(db, NODUP_ERR_DUPLICATE, import_text(db, text, &r));
    assert_int_equal(r->conflicts, 1);
    nodup_import_free(r);
    /* Now the whole batch twice over. */
    char twice[8192];
    snprintf(twice, sizeof twice, "%s%s", text, strchr(text, '\n') + 1);
    assert_nodup(db, NODUP_ERR_DUPLICATE, import_text(db, twice, &r));
    assert_int_equal(r->rows, 50);
    assert_int_equal(r->conflicts, 26);
    assert_int_equal(r->nlisted, NODUP_IMPORT_LIST);
    nodup_import_free(r);
    assert_contains(nodup_errmsg(db), "and 16 more");
  }
  assert_int_equal(count_rows(db), 3);
}

/* ---------------------------------------------------------------------------
 * Concurrency: threads and processes import one file at once.
 */

static char shared_csv[64];

struct importer {
  nodup_db *db;
  pthread_barrier_t *barrier;
  int rc;
  char error[512];
};

static int import_file(nodup_db *db) {
  nodup_import_report *r = NULL;
  FILE *f = fopen(shared_csv, "rb");
  if (!f) return -1;
  int rc = nodup_import_csv(&r, db, "chapters", KEY, 2, NULL, f, NULL);
  nodup_import_free(r);
  fclose(f);
  return rc;
}

static void *importer_main(void *arg) {
  struct importer *im = arg;
  pthread_barrier_wait(im->barrier);
  im->rc = import_file(im->db);
  if (im->rc != NODUP_OK)
    snprintf(im->error, sizeof im->error, "%s", nodup_errmsg(im->db));
  return NULL;
}

/* A child: its own connection; exit 0 imported, 1 DUPLICATE, 2 else. */
static int importer_child(struct rig_child *child, int index, void *ctx) {
  nodup_db *db = NULL;
  (void)index;
  (void)ctx;
  int rc = nodup_open(&db, harness_url());
  rig_child_ready(child);
  if (rc == NODUP_OK) rc = import_file(db);
  if (rc != NODUP_OK && rc != NODUP_ERR_DUPLICATE)
    fprintf(stderr, "child: %s: %s\n", nodup_strerror(rc), nodup_errmsg(db));
  nodup_close(db);
  return rc == NODUP_OK ? 0 : rc == NODUP_ERR_DUPLICATE ? 1 : 2;
}

static void test_concurrent_imports(void **state) {
  nodup_db *db = *state;
  struct importer ims[THREADS];
  struct rig_threads threads;
  struct rig_procs procs;
  pthread_barrier_t barrier;
  int wins = 0, dups = 0, other = 0;
  char text[65536];
  size_t n = (size_t)snprintf(text, sizeof text, "ep,ord,title\n");
  for (int i = 1; i <= 1000; i++)
    n += (size_t)snprintf(text + n, sizeof text - n, "5,%d,chapter %d\n", i, i);
  create_chapters(db);
  write_csv(shared_csv, sizeof shared_csv, text);
  rig_detach(state);
  rig_procs_start(&procs, PROCESSES, importer_child, NULL);
  memset(ims, 0, sizeof ims);
  assert_int_equal(pthread_barrier_init(&barrier, NULL, THREADS + 1), 0);
  for (int i = 0; i < THREADS; i++) {
    ims[i].db = harness_connect();
    ims[i].barrier = &barrier;
  }
  rig_threads_start(&threads, THREADS, importer_main, ims, sizeof ims[0]);
  rig_procs_go(&procs);           /* the processes start now, */
  pthread_barrier_wait(&barrier); /* and the threads */
  rig_threads_join(&threads);
  pthread_barrier_destroy(&barrier);
  rig_procs_wait(&procs);
  for (int i = 0; i < procs.n; i++) {
    int status = procs.status[i];
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) wins++;
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 1) dups++;
    else other++;
  }
  unlink(shared_csv);
  for (int i = 0; i < THREADS; i++) {
    if (ims[i].rc == NODUP_OK) wins++;
    else if (ims[i].rc == NODUP_ERR_DUPLICATE) {
      dups++;
      if (!strstr(ims[i].error, "already imported"))
        fail_msg("importer %d: unclear message: %s", i, ims[i].error);
    } else {
      other++;
      print_message("importer %d: %s: %s\n", i, nodup_strerror(ims[i].rc), ims[i].error);
    }
  }
  db = rig_reopen(state);
  if (procs.n != PROCESSES) fail_msg("%d of %d children forked", procs.n, PROCESSES);
  if (wins != 1 || other != 0)
    fail_msg("%d imports succeeded, %d got DUPLICATE, %d other errors", wins, dups, other);
  assert_int_equal(dups, THREADS + PROCESSES - 1);
  assert_int_equal(count_rows(db), 1000);
}

/* ---------------------------------------------------------------------------
 * Errors name their line and column
 */

static void expect_error(nodup_db *db, const char *text, int code, const char *msg) {
  nodup_import_report *r = NULL;
  assert_nodup(db, code, import_text(db, text, &r));
  assert_null(r);
  assert_contains(nodup_errmsg(db), msg);
  assert_int_equal(count_rows(db), 0);
}

static void test_malformed_csv(void **state) {
  nodup_db *db = *state;
  create_chapters(db);
  expect_error(db, "ep,ord,title\n1,1,a\n1,2,\"never closed\n1,3,c\n", NODUP_ERR_USAGE,
               "CSV line 3: unterminated quoted field");
  expect_error(db, "ep,ord,title\n1,1,a\n1,2\n", NODUP_ERR_USAGE,
               "CSV line 3: 2 fields where the header has 3");
  expect_error(db, "ep,ord,title\n1,1,a\n1,2,b,extra\n", NODUP_ERR_USAGE,
               "CSV line 3: more than the header's 3 fields");
  expect_error(db, "ep,ord,title\n1,1,\"multi\nline\"\n1,2,a\"b\n", NODUP_ERR_USAGE,
               "CSV line 4: malformed field");
  expect_error(db, "", NODUP_ERR_USAGE, "no header row");
  expect_error(db, "ep,ord,titel\n1,1,a\n", NODUP_ERR_NO_COLUMN,
               "CSV line 1, column 3: table ");
  expect_error(db, "ep,ord,titel\n1,1,a\n", NODUP_ERR_NO_COLUMN,
               "\"chapters\" has no column \"titel\"");
  expect_error(db, "ep,title\n1,a\n", NODUP_ERR_NO_COLUMN,
               "no column for key column \"ord\"");
  expect_error(db, "ep,ord,ep\n1,1,1\n", NODUP_ERR_USAGE, "named twice");
}

static void test_constraint_names_line(void **state) {
  nodup_db *db = *state;
  create_chapters(db);
  /* Unquoted empty is NULL: NOT NULL fails on line 4. */
  expect_error(db, "ep,ord,title\n1,1,a\n1,2,b\n1,3,\n", NODUP_ERR_CONSTRAINT,
               "CSV line 4: ");
  expect_error(db, "ep,ord,title\n1,1,a\n1,2,b\n1,3,\n", NODUP_ERR_CONSTRAINT, "title");
  expect_error(db, "ep,ord,title\n1,,a\n", NODUP_ERR_NULL_KEY,
               "CSV line 2: key column \"ord\" is NULL");
  if (harness_is_pg())
    expect_error(db, "ep,ord,title\n1,1,a\n1,two,b\n", NODUP_ERR_DB, "CSV line 3: ");
  /* A quoted empty field is the empty string, not NULL. */
  nodup_import_report *r = NULL;
  assert_nodup(db, NODUP_OK, import_text(db, "ep,ord,title\n1,1,\"\"\n", &r));
  nodup_import_free(r);
  harness_expect(db, "SELECT \"title\" FROM \"chapters\"", NULL, "");
  harness_expect(db, "SELECT \"note\" FROM \"chapters\"", NULL, NULL);
}

static void test_unbacked_key(void **state) {
  nodup_db *db = *state;
  nodup_import_report *r = NULL;
  const char *cols[] = {"ep"};
  char path[64];
  create_chapters(db);
  write_csv(path, sizeof path, "ep,ord,title\n1,1,a\n");
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  int rc = nodup_import_csv(&r, db, "chapters", cols, 1, NULL, f, NULL);
  fclose(f);
  unlink(path);
  assert_nodup(db, NODUP_ERR_UNBACKED, rc);
  assert_null(r);
  assert_contains(nodup_errmsg(db), "CREATE UNIQUE INDEX");
  assert_int_equal(count_rows(db), 0);
}

/* RFC 4180: commas, doubled quotes, CRLF and newlines inside quotes, and
 * spaces, all verbatim. */
static void test_rfc4180_verbatim(void **state) {
  nodup_db *db = *state;
  nodup_import_report *r = NULL;
  create_chapters(db);
  assert_nodup(db, NODUP_OK,
               import_text(db,
                           "title,ep,ord,note\r\n"
                           "\"a, b\",1,1,\"say \"\"hi\"\"\"\r\n"
                           "\"two\nlines\",1,2,\"crlf\r\ninside\"\r\n"
                           "\r\n"
                           "  spaced  ,1,3,\"\"\"\"\r\n"
                           "back\\slash \\N,1,4,\"tab\there\"\r\n",
                           &r));
  assert_int_equal(r->rows, 4);
  nodup_import_free(r);
  harness_expect(db, "SELECT \"title\" FROM \"chapters\" WHERE \"ord\" = 1", NULL, "a, b");
  harness_expect(db, "SELECT \"note\" FROM \"chapters\" WHERE \"ord\" = 1", NULL,
                 "say \"hi\"");
  harness_expect(db, "SELECT \"title\" FROM \"chapters\" WHERE \"ord\" = 2", NULL,
                 "two\nlines");
  harness_expect(db, "SELECT \"note\" FROM \"chapters\" WHERE \"ord\" = 2", NULL,
                 "crlf\r\ninside");
  harness_expect(db, "SELECT \"title\" FROM \"chapters\" WHERE \"ord\" = 3", NULL,
                 "  spaced  ");
  harness_expect(db, "SELECT \"note\" FROM \"chapters\" WHERE \"ord\" = 3", NULL, "\"");
  /* Backslashes and tabs are data (PostgreSQL's COPY text must escape
   * them): "\N" is two characters, not NULL. */
  harness_expect(db, "SELECT \"title\" FROM \"chapters\" WHERE \"ord\" = 4", NULL,
                 "back\\slash \\N");
  harness_expect(db, "SELECT \"note\" FROM \"chapters\" WHERE \"ord\" = 4", NULL,
                 "tab\there");
  /* Lines are physical lines: the conflict on line 6 after a multi-line
   * field and a blank line. */
  assert_nodup(db, NODUP_ERR_DUPLICATE,
               import_text(db, "title,ep,ord\n\"x\ny\",2,1\n\n\"z\",2,2\n2,1,3\n", &r));
  assert_int_equal(r->listed[0].line, 6);
  nodup_import_free(r);
}

/* 100,000 rows, streamed in chunks, one transaction. */
static void test_large_import(void **state) {
  nodup_db *db = *state;
  nodup_import_report *r = NULL;
  char path[64];
  create_chapters(db);
  snprintf(path, sizeof path, "/tmp/nodup-import-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w+");
  assert_non_null(f);
  fputs("ep,ord,title\n", f);
  for (int i = 0; i < 100000; i++) fprintf(f, "%d,%d,\"chapter, %d\"\n", i / 1000, i % 1000, i);
  rewind(f);
  int rc = nodup_import_csv(&r, db, "chapters", KEY, 2, NULL, f, NULL);
  assert_nodup(db, NODUP_OK, rc);
  assert_int_equal(r->inserted, 100000);
  nodup_import_free(r);
  assert_int_equal(count_rows(db), 100000);
  /* Again: every key conflicts, nothing changes. */
  rewind(f);
  rc = nodup_import_csv(&r, db, "chapters", KEY, 2, NULL, f, NULL);
  fclose(f);
  unlink(path);
  assert_nodup(db, NODUP_ERR_DUPLICATE, rc);
  assert_int_equal(r->conflicts, 100000);
  nodup_import_free(r);
  assert_contains(nodup_errmsg(db), "and 99990 more");
  assert_int_equal(count_rows(db), 100000);
}

/* A file of `rows` rows (ep = i / 1000, ord = i % 1000), with line
 * `bad_line` (the header is line 1) replaced by `bad`; the caller unlinks
 * `path`. */
static FILE *big_csv(char *path, size_t size, int rows, int bad_line, const char *bad) {
  snprintf(path, size, "/tmp/nodup-import-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w+");
  assert_non_null(f);
  fputs("ep,ord,title\n", f);
  for (int i = 0; i < rows; i++) {
    if (i + 2 == bad_line) fprintf(f, "%s\n", bad);
    else fprintf(f, "%d,%d,t%d\n", i / 1000, i % 1000, i);
  }
  rewind(f);
  return f;
}

/* One key that exists, deep in a file of several batches (PostgreSQL
 * streams 10,000-row batches through COPY: the third one fails on the key's
 * index and must be redone the exact way): exactly that key and line, and
 * nothing inserted, not even the batches COPY had taken. */
static void test_conflict_in_a_later_batch(void **state) {
  nodup_db *db = *state;
  nodup_import_report *r = NULL;
  char path[64];
  create_chapters(db);
  harness_exec(db, "INSERT INTO \"chapters\" (\"ep\", \"ord\", \"title\") VALUES (20, 456, 'old')");
  FILE *f = big_csv(path, sizeof path, 21000, 0, NULL);
  int rc = nodup_import_csv(&r, db, "chapters", KEY, 2, NULL, f, NULL);
  fclose(f);
  unlink(path);
  assert_nodup(db, NODUP_ERR_DUPLICATE, rc);
  assert_int_equal(r->rows, 21000);
  assert_int_equal(r->conflicts, 1);
  assert_int_equal(r->nlisted, 1);
  assert_int_equal(r->listed[0].line, 20456 + 2);
  assert_int_equal(r->listed[0].existing, 1);
  nodup_import_free(r);
  assert_contains(nodup_errmsg(db), "('20', '456') line 20458 already imported");
  assert_int_equal(count_rows(db), 1);
  assert_false(harness_in_transaction(db));
}

/* A repeated key and a bad row in the second batch: named by line, nothing
 * inserted. */
static void test_errors_in_a_later_batch(void **state) {
  nodup_db *db = *state;
  nodup_import_report *r = NULL;
  char path[64];
  create_chapters(db);
  FILE *f = big_csv(path, sizeof path, 12000, 11002, "0,5,again");
  int rc = nodup_import_csv(&r, db, "chapters", KEY, 2, NULL, f, NULL);
  fclose(f);
  unlink(path);
  assert_nodup(db, NODUP_ERR_DUPLICATE, rc);
  assert_int_equal(r->conflicts, 1);
  assert_int_equal(r->listed[0].line, 11002);
  assert_int_equal(r->listed[0].existing, 0);
  nodup_import_free(r);
  assert_contains(nodup_errmsg(db), "('0', '5') line 11002 repeats in the file");
  assert_int_equal(count_rows(db), 0);

  /* NOT NULL (an unquoted empty title) on line 10,777. */
  f = big_csv(path, sizeof path, 12000, 10777, "99,99,");
  rc = nodup_import_csv(&r, db, "chapters", KEY, 2, NULL, f, NULL);
  fclose(f);
  unlink(path);
  assert_nodup(db, NODUP_ERR_CONSTRAINT, rc);
  assert_null(r);
  assert_contains(nodup_errmsg(db), "CSV line 10777: ");
  assert_contains(nodup_errmsg(db), "title");
  assert_int_equal(count_rows(db), 0);
  assert_false(harness_in_transaction(db));

  /* A malformed record after whole batches went in: rolled back too. */
  f = big_csv(path, sizeof path, 12000, 11500, "1,2,\"never closed");
  rc = nodup_import_csv(&r, db, "chapters", KEY, 2, NULL, f, NULL);
  fclose(f);
  unlink(path);
  assert_nodup(db, NODUP_ERR_USAGE, rc);
  assert_contains(nodup_errmsg(db), "CSV line 11500: unterminated quoted field");
  assert_int_equal(count_rows(db), 0);
  assert_false(harness_in_transaction(db));

  /* Then the clean file goes in whole. */
  f = big_csv(path, sizeof path, 12000, 0, NULL);
  rc = nodup_import_csv(&r, db, "chapters", KEY, 2, NULL, f, NULL);
  fclose(f);
  unlink(path);
  assert_nodup(db, NODUP_OK, rc);
  assert_int_equal(r->inserted, 12000);
  nodup_import_free(r);
  assert_int_equal(count_rows(db), 12000);
  if (harness_is_pg()) {
    /* A bad integer: the database's own message, after the line. */
    f = big_csv(path, sizeof path, 12000, 11999, "200,x,bad");
    harness_exec(db, "DELETE FROM \"chapters\"");
    rc = nodup_import_csv(&r, db, "chapters", KEY, 2, NULL, f, NULL);
    fclose(f);
    unlink(path);
    assert_nodup(db, NODUP_ERR_DB, rc);
    assert_contains(nodup_errmsg(db), "CSV line 11999: ");
    assert_contains(nodup_errmsg(db), "integer");
    assert_int_equal(count_rows(db), 0);
  }
}

/* Inside the caller's transaction the import is a savepoint: a failed one
 * leaves the caller's own work, a good one commits with it. */
static void test_inside_callers_transaction(void **state) {
  nodup_db *db = *state;
  nodup_import_report *r = NULL;
  char path[64];
  create_chapters(db);
  harness_exec(db, "BEGIN");
  harness_exec(db, "INSERT INTO \"chapters\" (\"ep\", \"ord\", \"title\") VALUES (3, 7, 'mine')");
  FILE *f = big_csv(path, sizeof path, 12000, 0, NULL);
  assert_nodup(db, NODUP_ERR_DUPLICATE, nodup_import_csv(&r, db, "chapters", KEY, 2, NULL, f, NULL));
  nodup_import_free(r);
  assert_true(harness_in_transaction(db));
  rewind(f);
  harness_exec(db, "DELETE FROM \"chapters\" WHERE \"title\" = 'mine'");
  harness_exec(db, "INSERT INTO \"chapters\" (\"ep\", \"ord\", \"title\") VALUES (99, 1, 'mine')");
  assert_nodup(db, NODUP_OK, nodup_import_csv(&r, db, "chapters", KEY, 2, NULL, f, NULL));
  nodup_import_free(r);
  fclose(f);
  unlink(path);
  harness_exec(db, "COMMIT");
  assert_int_equal(count_rows(db), 12001);
}

/* ---------------------------------------------------------------------------
 * Bytes that text tools leave in files: a byte-order mark, a NUL
 */

/* Import `len` bytes of `text` (which may hold NULs); as import_text. */
static int import_bytes(nodup_db *db, const char *text, size_t len,
                        nodup_import_report **rep) {
  char path[64];
  snprintf(path, sizeof path, "/tmp/nodup-import-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w+");
  assert_non_null(f);
  assert_int_equal(fwrite(text, 1, len, f), len);
  rewind(f);
  int rc = nodup_import_csv(rep, db, "chapters", KEY, 2, NULL, f, NULL);
  fclose(f);
  unlink(path);
  return rc;
}

#define IMPORT_BYTES(db, lit, rep) import_bytes(db, lit, sizeof lit - 1, rep)

/* Excel's "CSV UTF-8" starts with EF BB BF: the first column is "title",
 * not "\xEF\xBB\xBFtitle". */
static void test_byte_order_mark(void **state) {
  nodup_db *db = *state;
  nodup_import_report *r = NULL;
  create_chapters(db);
  assert_nodup(db, NODUP_OK,
               IMPORT_BYTES(db, "\xEF\xBB\xBFtitle,ep,ord\r\nfirst,1,1\r\n", &r));
  assert_int_equal(r->inserted, 1);
  nodup_import_free(r);
  harness_expect(db, "SELECT \"title\" FROM \"chapters\" WHERE \"ord\" = 1", NULL, "first");
  /* Lines are still counted from the header as line 1. */
  assert_nodup(db, NODUP_ERR_DUPLICATE,
               IMPORT_BYTES(db, "\xEF\xBB\xBF\"ep\",ord,title\n1,2,a\n1,1,b\n", &r));
  assert_int_equal(r->listed[0].line, 3);
  nodup_import_free(r);
  assert_int_equal(count_rows(db), 1);
  /* Only a mark at the very start is skipped: elsewhere it is data. */
  assert_nodup(db, NODUP_OK,
               IMPORT_BYTES(db, "\xEF\xBB\xBF" "ep,ord,title\n1,3,\xEF\xBB\xBFx\n", &r));
  nodup_import_free(r);
  harness_expect(db, "SELECT \"title\" FROM \"chapters\" WHERE \"ord\" = 3", NULL,
                 "\xEF\xBB\xBFx");
  r = NULL;
  assert_nodup(db, NODUP_ERR_USAGE, IMPORT_BYTES(db, "\xEF\xBB\xBF", &r));
  assert_null(r);
  assert_contains(nodup_errmsg(db), "no header row");
}

/* A NUL byte would cut a value or a name short (today `1,2,"ab\0cd"`
 * stored "ab"; `ord\0x` in the header meant "ord"): refused, naming the
 * line and column, nothing imported. */
static void expect_nul(nodup_db *db, const char *text, size_t len, const char *msg) {
  nodup_import_report *r = NULL;
  assert_nodup(db, NODUP_ERR_USAGE, import_bytes(db, text, len, &r));
  assert_null(r);
  assert_contains(nodup_errmsg(db), msg);
  assert_int_equal(count_rows(db), 0);
  assert_false(harness_in_transaction(db));
}

#define EXPECT_NUL(db, lit, msg) expect_nul(db, lit, sizeof lit - 1, msg)

static void test_nul_byte(void **state) {
  nodup_db *db = *state;
  create_chapters(db);
  EXPECT_NUL(db, "ep,ord,title\n1,1,a\n1,2,\"ab\0cd\"\n1,3,c\n",
             "CSV line 3, column 3: a NUL byte inside the field");
  EXPECT_NUL(db, "ep,ord,title\n1,1,ab\0cd\n", "CSV line 2, column 3: a NUL byte");
  EXPECT_NUL(db, "ep,ord,title\n1,1\0,a\n", "CSV line 2, column 2: a NUL byte");
  EXPECT_NUL(db, "ep,ord,title\n1,1,\"two\nlines\0\"\n", "CSV line 3, column 3: a NUL byte");
  /* In the header: "ord\0x" must not become the key column "ord". */
  EXPECT_NUL(db, "ep,ord\0x,title\n1,1,a\n", "CSV line 1, column 2: a NUL byte");
  EXPECT_NUL(db, "\xEF\xBB\xBF\0ep,ord,title\n1,1,a\n", "CSV line 1, column 1: a NUL byte");

  /* After whole batches went in (PostgreSQL: COPY took the first 10,000
   * rows): rolled back too. */
  char path[64];
  nodup_import_report *r = NULL;
  snprintf(path, sizeof path, "/tmp/nodup-import-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w+");
  assert_non_null(f);
  fputs("ep,ord,title\n", f);
  for (int i = 0; i < 12000; i++) {
    if (i + 2 == 11500) assert_int_equal(fwrite("99,1,a\0b\n", 1, 9, f), 9);
    else fprintf(f, "%d,%d,t%d\n", i / 1000, i % 1000, i);
  }
  rewind(f);
  int rc = nodup_import_csv(&r, db, "chapters", KEY, 2, NULL, f, NULL);
  fclose(f);
  unlink(path);
  assert_nodup(db, NODUP_ERR_USAGE, rc);
  assert_null(r);
  assert_contains(nodup_errmsg(db), "CSV line 11500, column 3: a NUL byte");
  assert_int_equal(count_rows(db), 0);
  assert_false(harness_in_transaction(db));
}

static void test_usage_errors(void **state) {
  nodup_db *db = *state;
  nodup_import_report *r = NULL;
  create_chapters(db);
  assert_nodup(db, NODUP_ERR_USAGE, nodup_import_csv(&r, db, "chapters", KEY, 2, NULL, NULL, NULL));
  assert_null(r);
  assert_int_equal(nodup_import_csv(NULL, db, "chapters", KEY, 2, NULL, stdin, NULL),
                   NODUP_ERR_USAGE);
  nodup_import_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
      T(test_clean_then_again),
      T(test_partial_overlap),
      T(test_duplicate_within_file),
      T(test_conflict_list_limit),
      T(test_concurrent_imports),
      T(test_malformed_csv),
      T(test_constraint_names_line),
      T(test_unbacked_key),
      T(test_rfc4180_verbatim),
      T(test_large_import),
      T(test_conflict_in_a_later_batch),
      T(test_errors_in_a_later_batch),
      T(test_inside_callers_transaction),
      T(test_byte_order_mark),
      T(test_nul_byte),
      T(test_usage_errors),
#undef T
  };
  return cmocka_run_group_tests_name(harness_is_pg() ? "import_pg" : "import_sqlite", tests,
                                     NULL, NULL);
}

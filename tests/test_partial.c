/*
 * test_partial.c -- partial keys (a key with a WHERE predicate, as Django's
 * `condition=`), from seeds 001 and 004: a lookup sees only rows inside the
 * predicate, a row outside it is neither found nor allowed to block, and a
 * new row must satisfy the predicate; and seed 004 end to end ("send
 * message" twice at once, and again while and after the first request
 * times out: one conversation). Conformance suite: the same tests on
 * SQLite and PostgreSQL.
 */
#include "harness.h"
#include "rig.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANNOTATIONS_DDL(false_literal)                                         \
  "CREATE TABLE \"annotations\" ({id},"                                        \
  " \"document_id\" INTEGER NOT NULL, \"corpus_id\" INTEGER NOT NULL,"         \
  " \"annotation_label_id\" INTEGER NOT NULL, \"page\" INTEGER NOT NULL,"      \
  " \"raw_text\" TEXT NOT NULL, \"creator_id\" INTEGER NOT NULL,"              \
  " \"structural\" BOOLEAN NOT NULL DEFAULT " false_literal ");"

static const char *const annotation_cols[] = {
    "document_id", "corpus_id", "annotation_label_id",
    "page",        "raw_text",  "creator_id"};

/* The predicate text of seed 001's constraint, in each dialect. */
static const char *not_structural(void) {
  return harness_pick("\"structural\" = 0", "\"structural\" = false");
}

/* Seed 001: annotations unique per (document, corpus, label, page, text,
 * creator) among non-structural rows. */
static void create_annotations(nodup_db *db) {
  harness_exec(db, harness_pick(ANNOTATIONS_DDL("0"), ANNOTATIONS_DDL("false")));
  char sql[512];
  snprintf(sql, sizeof sql,
           "CREATE UNIQUE INDEX \"annotation_unique_token_label_grounding_key\""
           " ON \"annotations\" (\"document_id\", \"corpus_id\","
           " \"annotation_label_id\", \"page\", \"raw_text\", \"creator_id\")"
           " WHERE %s",
           not_structural());
  harness_exec(db, sql);
}

static void test_partial_predicate_outside_key(void **state) {
  nodup_db *db = *state;
  create_annotations(db);
  /* A structural row with the very same key values: outside the predicate,
   * so the key must neither find it nor be blocked by it. */
  harness_exec(db, harness_pick(
      "INSERT INTO \"annotations\" (\"document_id\", \"corpus_id\","
      " \"annotation_label_id\", \"page\", \"raw_text\", \"creator_id\","
      " \"structural\") VALUES (1, 1, 1, 0, 'Acme', 7, 1)",
      "INSERT INTO \"annotations\" (\"document_id\", \"corpus_id\","
      " \"annotation_label_id\", \"page\", \"raw_text\", \"creator_id\","
      " \"structural\") VALUES (1, 1, 1, 0, 'Acme', 7, true)"));
  char structural_id[HARNESS_ID_MAX];
  harness_query_into(db, "SELECT \"id\" FROM \"annotations\"", NULL,
                     structural_id, sizeof structural_id);
  nodup_key *key = harness_key(db, "annotations", annotation_cols, 6,
                               not_structural());
  assert_string_equal(nodup_key_index(key),
                      "annotation_unique_token_label_grounding_key");

  const char *vals[] = {"1", "1", "1", "0", "Acme", "7"};
  const char *dcols[] = {"structural"};
  const char *no[] = {"0"};
  const char *yes[] = {"1"};
  nodup_result found = {"sentinel", 0};
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];

  assert_int_equal(harness_goc(db, key, vals, dcols, no, 1, id), 1);
  assert_string_not_equal(id, structural_id);
  assert_int_equal(harness_goc(db, key, vals, dcols, no, 1, again), 0);
  assert_string_equal(id, again);
  assert_int_equal(
      harness_count(db, "SELECT count(*) FROM \"annotations\"", NULL), 2);

  /* A lookup needs no predicate column: it creates nothing. It finds the
   * row inside the predicate, and nothing for a key whose only row is
   * outside it. */
  assert_nodup(db, NODUP_OK, nodup_find(key, vals, &found));
  assert_non_null(found.id);
  assert_string_equal(found.id, id);
  harness_exec(db, "UPDATE \"annotations\" SET \"raw_text\" = 'Gamma'"
                   " WHERE \"structural\"");
  const char *gamma[] = {"1", "1", "1", "0", "Gamma", "7"};
  found.id = "sentinel";
  assert_nodup(db, NODUP_OK, nodup_find(key, gamma, &found));
  assert_null(found.id);

  /* A new row that would be structural falls outside the key: refused. */
  const char *beta[] = {"1", "1", "1", "0", "Beta", "7"};
  assert_nodup(db, NODUP_ERR_PREDICATE,
               nodup_get_or_create(key, beta, dcols, yes, 1, &found));
  assert_int_equal(
      harness_count(db, "SELECT count(*) FROM \"annotations\"", NULL), 2);
  assert_false(harness_in_transaction(db));
  /* The predicate is checked on the row as inserted: one that does not set
   * the column gets its DEFAULT (false), which is inside the key. */
  assert_int_equal(harness_goc(db, key, beta, NULL, NULL, 0, id), 1);
  harness_expect(db,
                 harness_pick("SELECT \"structural\" FROM \"annotations\" WHERE \"id\" = $1",
                              "SELECT \"structural\"::int FROM \"annotations\" WHERE \"id\" = $1"),
                 id, "0");
  assert_int_equal(harness_goc(db, key, beta, dcols, no, 1, again), 0);
  assert_string_equal(id, again);
}

#define CONVERSATIONS_DDL                                                      \
  "CREATE TABLE \"conversations\" ({id}, \"context_type\" TEXT NOT NULL,"      \
  " \"context_id\" TEXT NOT NULL, \"created_by\" TEXT NOT NULL,"               \
  " \"title\" TEXT);"
#define AGENCY_INQUIRY "\"context_type\" = 'agency_inquiry'"
#define COUNT_CONVERSATIONS "SELECT count(*) FROM \"conversations\""

/* Seed 004 as written: the predicate's column is part of the key. */
static void test_partial_predicate_in_key(void **state) {
  nodup_db *db = *state;
  harness_exec(db, CONVERSATIONS_DDL
               "CREATE UNIQUE INDEX \"unique_agency_user_conversation\""
               " ON \"conversations\" (\"context_type\", \"context_id\","
               " \"created_by\") WHERE " AGENCY_INQUIRY);
  const char *cols[] = {"context_type", "context_id", "created_by"};
  nodup_key *key = harness_key(db, "conversations", cols, 3, AGENCY_INQUIRY);
  assert_string_equal(nodup_key_index(key), "unique_agency_user_conversation");
  const char *vals[] = {"agency_inquiry", "agency-1", "user-1"};
  const char *title_col[] = {"title"};
  const char *title[] = {"Hello"};
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];

  assert_int_equal(harness_goc(db, key, vals, title_col, title, 1, id), 1);
  assert_int_equal(harness_goc(db, key, vals, title_col, title, 1, again), 0);
  assert_string_equal(id, again);

  nodup_result result;
  const char *support[] = {"support", "agency-1", "user-1"};
  assert_nodup(db, NODUP_ERR_PREDICATE,
               nodup_get_or_create(key, support, NULL, NULL, 0, &result));
  assert_int_equal(harness_count(db, COUNT_CONVERSATIONS, NULL), 1);
}

/* Seed 004 with the predicate's column outside the key. */
static void test_partial_predicate_column_as_default(void **state) {
  nodup_db *db = *state;
  harness_exec(db, CONVERSATIONS_DDL
               "CREATE UNIQUE INDEX \"agency_user_conversation\""
               " ON \"conversations\" (\"context_id\", \"created_by\")"
               " WHERE " AGENCY_INQUIRY ";"
               "INSERT INTO \"conversations\" (\"context_type\","
               " \"context_id\", \"created_by\")"
               " VALUES ('support', 'agency-1', 'user-1')");
  const char *cols[] = {"context_id", "created_by"};
  nodup_key *key = harness_key(db, "conversations", cols, 2, AGENCY_INQUIRY);
  const char *vals[] = {"agency-1", "user-1"};
  const char *type_col[] = {"context_type"};
  const char *inquiry[] = {"agency_inquiry"};
  const char *support[] = {"support"};
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];

  assert_int_equal(harness_goc(db, key, vals, type_col, inquiry, 1, id), 1);
  harness_expect(db,
                 "SELECT \"context_type\" FROM \"conversations\""
                 " WHERE \"id\" = $1",
                 id, "agency_inquiry");
  assert_int_equal(harness_goc(db, key, vals, type_col, inquiry, 1, again), 0);
  assert_string_equal(id, again);

  nodup_result result;
  const char *fresh[] = {"agency-2", "user-1"};
  assert_nodup(db, NODUP_ERR_PREDICATE,
               nodup_get_or_create(key, fresh, type_col, support, 1, &result));
  /* Not giving context_type leaves it NULL: NOT NULL says so, by name,
   * before the predicate is even evaluated. */
  assert_nodup(db, NODUP_ERR_CONSTRAINT,
               nodup_get_or_create(key, fresh, NULL, NULL, 0, &result));
  assert_contains(nodup_errmsg(db), "context_type");
  assert_int_equal(harness_count(db, COUNT_CONVERSATIONS, NULL), 2);
}

/* Values are text that the database converts to the column's type; the
 * predicate is about the stored row, so it must see the converted value
 * ("1" into an INTEGER column is 1, and 1 = 1). */
static void test_predicate_sees_converted_values(void **state) {
  nodup_db *db = *state;
  harness_exec(db, "CREATE TABLE \"tasks\" ({id}, \"name\" TEXT NOT NULL,"
                   " \"active\" INTEGER NOT NULL);"
                   "CREATE UNIQUE INDEX \"tasks_active_name\""
                   " ON \"tasks\" (\"name\") WHERE \"active\" = 1");
  const char *cols[] = {"name"};
  nodup_key *key = harness_key(db, "tasks", cols, 1, "\"active\" = 1");
  const char *vals[] = {"backup"};
  const char *active_col[] = {"active"};
  const char *one[] = {"1"};
  const char *zero[] = {"0"};
  nodup_result result;
  char id[HARNESS_ID_MAX], again[HARNESS_ID_MAX];

  assert_int_equal(harness_goc(db, key, vals, active_col, one, 1, id), 1);
  assert_int_equal(harness_goc(db, key, vals, active_col, one, 1, again), 0);
  assert_string_equal(id, again);
  const char *other[] = {"restore"};
  assert_nodup(db, NODUP_ERR_PREDICATE,
               nodup_get_or_create(key, other, active_col, zero, 1, &result));
  assert_int_equal(harness_count(db, "SELECT count(*) FROM \"tasks\"", NULL),
                   1);
}

/* A partial key over a non-partial index: the lookup cannot see a row
 * outside the predicate that still blocks the insert. Reporting it as
 * "existing" would hand back a row the key does not match. */
static void test_partial_key_blocked_by_row_outside(void **state) {
  nodup_db *db = *state;
  harness_exec(db, CONVERSATIONS_DDL
               "CREATE UNIQUE INDEX \"conversation_owner_key\""
               " ON \"conversations\" (\"context_id\", \"created_by\");"
               "INSERT INTO \"conversations\" (\"context_type\","
               " \"context_id\", \"created_by\")"
               " VALUES ('support', 'agency-1', 'user-1')");
  const char *cols[] = {"context_id", "created_by"};
  nodup_key *key = NULL;

  /* A partial key over a non-partial index: the support row would block
   * every agency_inquiry insert on the same owner while the key's lookup
   * skips it. Refused when the key is prepared, naming the index, rather
   * than failing later at run time. */
  assert_nodup(db, NODUP_ERR_UNBACKED,
               nodup_key_prepare(&key, db, "conversations", cols, 2, AGENCY_INQUIRY));
  assert_null(key);
  assert_contains(nodup_errmsg(db), "conversation_owner_key");
  assert_int_equal(harness_count(db, COUNT_CONVERSATIONS, NULL), 1);
  /* Without the predicate the same index backs the key. */
  nodup_key *plain = harness_key(db, "conversations", cols, 2, NULL);
  assert_string_equal(nodup_key_index(plain), "conversation_owner_key");
}

/* ---------------------------------------------------------------------------
 * Seed 004 end to end. The app checked for a conversation, the check timed
 * out, the modal showed anyway, and "send" created a second conversation.
 * With get-or-create on the partial key every "send" is the same call: the
 * check cannot time out into a duplicate, because there is no separate
 * check.
 */

static const char *const SEND_COLS[] = {"context_type", "context_id", "created_by"};

/* One "send message" request on its own connection. */
struct sender {
  nodup_db *db;
  pthread_barrier_t *barrier;  /* NULL: start at once */
  const char *agency;
  int rc, created;
  atomic_int done;
  char id[HARNESS_ID_MAX];
  char error[512];
};

static void *sender_main(void *arg) {
  struct sender *s = arg;
  nodup_key *key = NULL;
  nodup_result r;
  const char *vals[] = {"agency_inquiry", s->agency, "user-1"};
  const char *title_col[] = {"title"};
  const char *title[] = {"Hello"};
  if (s->barrier) pthread_barrier_wait(s->barrier);
  s->rc = nodup_key_prepare(&key, s->db, "conversations", SEND_COLS, 3, AGENCY_INQUIRY);
  if (s->rc == NODUP_OK) s->rc = nodup_get_or_create(key, vals, title_col, title, 1, &r);
  if (s->rc == NODUP_OK) {
    s->created = r.created;
    snprintf(s->id, sizeof s->id, "%s", r.id);
  } else {
    snprintf(s->error, sizeof s->error, "%s: %s", nodup_strerror(s->rc), nodup_errmsg(s->db));
  }
  nodup_key_free(key);
  atomic_store(&s->done, 1);
  return NULL;
}

/* The first request is still open (its transaction holds the new row, as
 * when the client gave up waiting); the retry starts, waits for it, and
 * gets its conversation when it commits, or makes the only one when it
 * rolls back. */
static void send_while_first_is_open(nodup_db *db, const char *agency, int commit) {
  nodup_key *key = harness_key(db, "conversations", SEND_COLS, 3, AGENCY_INQUIRY);
  const char *vals[] = {"agency_inquiry", agency, "user-1"};
  char first[HARNESS_ID_MAX];
  struct sender retry;
  struct rig_threads thread;
  char where[128];

  harness_exec(db, harness_pick("BEGIN IMMEDIATE", "BEGIN"));
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, first), 1);
  memset(&retry, 0, sizeof retry);
  retry.db = harness_connect();
  retry.agency = agency;
  rig_threads_start(&thread, 1, sender_main, &retry, 0);
  rig_sleep_ms(300);
  /* It waits for the first request's row (PostgreSQL) or write lock
   * (SQLite): it neither reports "none" nor makes a second one. */
  assert_false(atomic_load(&retry.done));
  harness_exec(db, commit ? "COMMIT" : "ROLLBACK");
  rig_threads_join(&thread);
  if (retry.rc != NODUP_OK) fail_msg("the retry failed: %s", retry.error);
  assert_int_equal(retry.created, !commit);
  if (commit) assert_string_equal(retry.id, first);
  snprintf(where, sizeof where,
           "SELECT count(*) FROM \"conversations\" WHERE \"context_id\" = $1 AND %s",
           AGENCY_INQUIRY);
  assert_int_equal(harness_count(db, where, agency), 1);
  /* And once more, later: the same conversation. */
  char again[HARNESS_ID_MAX];
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, again), 0);
  assert_string_equal(again, retry.id);
}

static void test_seed004_send_message(void **state) {
  nodup_db *db = *state;
  harness_exec(db, CONVERSATIONS_DDL
               "CREATE UNIQUE INDEX \"unique_agency_user_conversation\""
               " ON \"conversations\" (\"context_type\", \"context_id\","
               " \"created_by\") WHERE " AGENCY_INQUIRY ";"
               "INSERT INTO \"conversations\" (\"context_type\", \"context_id\","
               " \"created_by\") VALUES ('support', 'agency-1', 'user-1')");

  /* Twice at once (a double click): one created, one existing, one id. */
  struct sender senders[2];
  pthread_barrier_t barrier;
  assert_int_equal(pthread_barrier_init(&barrier, NULL, 2), 0);
  memset(senders, 0, sizeof senders);
  for (int i = 0; i < 2; i++) {
    senders[i].db = harness_connect();
    senders[i].barrier = &barrier;
    senders[i].agency = "agency-1";
  }
  rig_threads_run(2, sender_main, senders, sizeof senders[0]);
  pthread_barrier_destroy(&barrier);
  for (int i = 0; i < 2; i++)
    if (senders[i].rc != NODUP_OK) fail_msg("sender %d: %s", i, senders[i].error);
  assert_int_equal(senders[0].created + senders[1].created, 1);
  assert_string_equal(senders[0].id, senders[1].id);

  /* Again after the client timed out: the conversation is found. */
  nodup_key *key = harness_key(db, "conversations", SEND_COLS, 3, AGENCY_INQUIRY);
  const char *vals[] = {"agency_inquiry", "agency-1", "user-1"};
  char id[HARNESS_ID_MAX];
  assert_int_equal(harness_goc(db, key, vals, NULL, NULL, 0, id), 0);
  assert_string_equal(id, senders[0].id);
  /* One inquiry, and the support conversation outside the predicate. */
  assert_int_equal(harness_count(db, COUNT_CONVERSATIONS, NULL), 2);

  /* The retry arrives while the first request is still open. */
  send_while_first_is_open(db, "agency-2", 1);
  send_while_first_is_open(db, "agency-3", 0);
  assert_int_equal(harness_count(db, COUNT_CONVERSATIONS, NULL), 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
      T(test_partial_predicate_outside_key),
      T(test_partial_predicate_in_key),
      T(test_partial_predicate_column_as_default),
      T(test_predicate_sees_converted_values),
      T(test_partial_key_blocked_by_row_outside),
      T(test_seed004_send_message),
#undef T
  };
  return cmocka_run_group_tests_name(harness_is_pg() ? "partial_pg"
                                                     : "partial_sqlite",
                                     tests, NULL, NULL);
}

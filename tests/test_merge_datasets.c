/*
 * test_merge_datasets.c -- nodup_merge on real sample databases (issue 3):
 * Pagila on PostgreSQL (partitioned payments, foreign keys declared per
 * partition and none on the last one), Sakila on SQLite (circular
 * store <-> staff keys, ON DELETE SET NULL, AFTER UPDATE triggers).
 *
 * Every expectation is computed from the data with plain SQL before the
 * merge, then compared with what the merge reports and with what the
 * database holds afterwards: the keeper is the lowest id, a row colliding
 * in a unique index once re-pointed is deleted (one already pointing at
 * the keeper wins), nothing else is lost, every deleted row is archived,
 * and no reference dangles. Each backend runs its own list (the datasets
 * differ), so nothing is skipped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "nodup.h"
#include "fixtures.h"

/* ---------------------------------------------------------------------------
 * Reading reports
 */

/* "film_actor" for "public"."film_actor", "film_actor" or public.film_actor. */
static void bare_name(const char *qualified, char *out, size_t size) {
  const char *dot = strrchr(qualified, '.');
  const char *p = dot ? dot + 1 : qualified;
  size_t n = 0;
  for (; *p && n + 1 < size; p++)
    if (*p != '"') out[n++] = *p;
  out[n] = '\0';
}

static int is_table(const char *qualified, const char *name) {
  char bare[256];
  bare_name(qualified, bare, sizeof bare);
  return strcmp(bare, name) == 0;
}

/* The whole report on one line, for failure messages. */
static void report_text(const nodup_merge_report *r, char *out, size_t size) {
  size_t i, len;
  snprintf(out, size, "groups %lld:", r->groups);
  for (i = 0; i < r->ntables; i++) {
    len = strlen(out);
    snprintf(out + len, size - len, " %s %lld/%lld", r->tables[i].table,
             r->tables[i].repointed, r->tables[i].deleted);
  }
}

/* What one table of a merge should show: `repointed` rows re-pointed and
 * `deleted` rows deleted. */
typedef struct want_table {
  const char *table;
  long long repointed, deleted;
} want_table;

/*
 * The report names exactly these changes: `groups` groups, each listed
 * table with its numbers (a table absent from the report counts as 0/0),
 * and no change anywhere else. A partition counted twice (once through its
 * parent, once on its own) shows up as an unexpected table.
 */
static void expect_report(const nodup_merge_report *r, long long groups, const want_table *want,
                          size_t nwant) {
  char text[4096];
  size_t i, j;
  report_text(r, text, sizeof text);
  if (r->groups != groups) fail_msg("expected %lld groups; report: %s", groups, text);
  for (j = 0; j < nwant; j++) {
    long long rep = 0, del = 0;
    for (i = 0; i < r->ntables; i++)
      if (is_table(r->tables[i].table, want[j].table)) {
        rep += r->tables[i].repointed;
        del += r->tables[i].deleted;
      }
    if (rep != want[j].repointed || del != want[j].deleted)
      fail_msg("%s: expected %lld re-pointed / %lld deleted, got %lld / %lld; report: %s",
               want[j].table, want[j].repointed, want[j].deleted, rep, del, text);
  }
  for (i = 0; i < r->ntables; i++) {
    int listed = 0;
    for (j = 0; j < nwant; j++) listed |= is_table(r->tables[i].table, want[j].table);
    if (!listed && (r->tables[i].repointed || r->tables[i].deleted))
      fail_msg("unexpected change in %s; report: %s", r->tables[i].table, text);
  }
}

static const nodup_scan_ref *scan_ref(const nodup_scan_report *s, const char *table,
                                      const char *col) {
  size_t i;
  for (i = 0; i < s->nrefs; i++)
    if (is_table(s->refs[i].table, table) && s->refs[i].ncols == 1 &&
        strcmp(s->refs[i].cols[0], col) == 0)
      return &s->refs[i];
  return NULL;
}

/* ---------------------------------------------------------------------------
 * Checking the database
 */

static long long count(nodup_db *db, const char *sql) { return harness_count(db, sql, NULL); }

/*
 * References that point nowhere, over every single-column foreign key the
 * catalog declares (all of Pagila's and Sakila's are single-column).
 * SQLite: PRAGMA foreign_key_check. PostgreSQL enforces its keys itself;
 * this recounts them anyway, one NOT EXISTS per constraint, so a merge
 * that slipped past enforcement (disabled triggers, replication role)
 * would show.
 */
static long long dangling(nodup_db *db) {
  if (!harness_is_pg()) return count(db, "SELECT count(*) FROM pragma_foreign_key_check");
  return count(db,
               "SELECT coalesce(sum((xpath('/row/n/text()', query_to_xml(format("
               "'SELECT count(*) AS n FROM %s AS c WHERE c.%I IS NOT NULL AND NOT EXISTS"
               " (SELECT 1 FROM %s AS p WHERE p.%I = c.%I)', con.conrelid::regclass, a.attname,"
               " con.confrelid::regclass, af.attname, a.attname), false, true, '')))[1]"
               "::text::bigint), 0) "
               "FROM pg_catalog.pg_constraint con "
               "JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid"
               " AND a.attnum = con.conkey[1] "
               "JOIN pg_catalog.pg_attribute af ON af.attrelid = con.confrelid"
               " AND af.attnum = con.confkey[1] "
               "WHERE con.contype = 'f' AND cardinality(con.conkey) = 1");
}

/* The archive row of the deleted row whose primary key text is `pk` names
 * `keeper`. */
static void expect_archived(nodup_db *db, const char *run, const char *pk, const char *keeper) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT keeper FROM {j}nodup_archive WHERE run = $1 AND pk = '%s'", pk);
  harness_expect(db, sql, run, keeper);
}

/*
 * Every archived row of `table` in the run (those whose pk text is `like`
 * '%,%': composite keys or not) names as keeper a row that exists after the
 * merge (`pk_sql`: the table's primary key as text, for alias x), so the
 * archive says which row absorbed each deleted one. Fails naming the first
 * archived row whose keeper is gone.
 */
static void expect_keepers_exist(nodup_db *db, const char *run, const char *table,
                                 const char *pk_sql, const char *like) {
  char sql[1024];
  char *bad;
  snprintf(sql, sizeof sql,
           "SELECT a.tbl || ' ' || a.pk || ' -> keeper ' || a.keeper FROM {j}nodup_archive a"
           " WHERE a.run = $1 AND a.pk %s '%%,%%' AND NOT EXISTS (SELECT 1 FROM %s x"
           " WHERE %s = a.keeper) ORDER BY a.pk",
           like, table, pk_sql);
  bad = harness_query(db, sql, run);
  if (bad != NULL) {
    char copy[512];
    snprintf(copy, sizeof copy, "%s", bad);
    free(bad);
    fail_msg("archived row %s: no such row in %s after the merge", copy, table);
  }
}

/* ---------------------------------------------------------------------------
 * Scenario 1: actor "SUSAN DAVIS" (ids 101 and 110 in both datasets)
 */

static const char *const actor_key[] = {"first_name", "last_name"};

#define SUSAN "(SELECT actor_id FROM actor WHERE first_name = 'SUSAN' AND last_name = 'DAVIS')"
#define LOSERS "(SELECT actor_id FROM actor WHERE first_name = 'SUSAN' AND last_name = 'DAVIS'" \
               " AND actor_id <> 101)"
#define FILMS_101 "(SELECT film_id FROM film_actor WHERE actor_id = 101)"

/* A third SUSAN DAVIS (201) and overlapping credits: 110 on two of 101's
 * films (keeper-vs-loser collisions); 201 on one film only 110 has
 * (loser-vs-loser), on one of 101's, and on one film neither has. */
static const char *const actor_overlap =
    "INSERT INTO actor (actor_id, first_name, last_name, last_update)"
    " VALUES (201, 'SUSAN', 'DAVIS', '2020-01-01 00:00:00');"
    "INSERT INTO film_actor (actor_id, film_id, last_update)"
    " SELECT 110, film_id, '2020-01-01 00:00:00' FROM film_actor WHERE actor_id = 101"
    " ORDER BY film_id LIMIT 2;"
    "INSERT INTO film_actor (actor_id, film_id, last_update)"
    " SELECT 201, min(film_id), '2020-01-01 00:00:00' FROM film_actor"
    " WHERE actor_id = 110 AND film_id NOT IN " FILMS_101 ";"
    "INSERT INTO film_actor (actor_id, film_id, last_update)"
    " SELECT 201, max(film_id), '2020-01-01 00:00:00' FROM film_actor WHERE actor_id = 101;"
    "INSERT INTO film_actor (actor_id, film_id, last_update)"
    " SELECT 201, min(film_id), '2020-01-01 00:00:00' FROM film"
    " WHERE film_id NOT IN (SELECT film_id FROM film_actor WHERE actor_id IN (101, 110))";

static void merge_susan_davis(nodup_db *db, int overlap) {
  nodup_merge_report *r = NULL;
  nodup_scan_report *s = NULL;
  const nodup_scan_ref *ref;
  long long actors, films, loser_rows, moved, collided, others, total;
  char run[sizeof r->run];

  if (overlap) harness_exec(db, actor_overlap);
  /* Expectations, from the data. */
  actors = count(db, "SELECT count(*) FROM " SUSAN " s");
  films = count(db, "SELECT count(DISTINCT film_id) FROM film_actor WHERE actor_id IN " SUSAN);
  loser_rows = count(db, "SELECT count(*) FROM film_actor WHERE actor_id IN " LOSERS);
  /* A loser's film the keeper lacks is re-pointed, once per film; every
   * other loser row collides and goes. */
  moved = count(db, "SELECT count(DISTINCT film_id) FROM film_actor WHERE actor_id IN " LOSERS
                    " AND film_id NOT IN " FILMS_101);
  collided = loser_rows - moved;
  others = count(db, "SELECT count(*) FROM film_actor WHERE actor_id NOT IN " SUSAN);
  total = count(db, "SELECT count(*) FROM film_actor");
  assert_int_equal(count(db, "SELECT min(actor_id) FROM " SUSAN " s"), 101);
  if (!overlap) {
    /* The datasets' own numbers (README): 33 + 21 films, none shared. */
    assert_int_equal(actors, 2);
    assert_int_equal(count(db, "SELECT count(*) FROM film_actor WHERE actor_id = 101"), 33);
    assert_int_equal(loser_rows, 21);
    assert_int_equal(films, 54);
    assert_int_equal(collided, 0);
  } else {
    assert_int_equal(actors, 3);
    assert_int_equal(films, 55);
    assert_int_equal(loser_rows, 26);
    assert_int_equal(collided, 4);
  }

  /* The scan predicts the merge. */
  assert_nodup(db, NODUP_OK, nodup_scan(&s, db, "actor", actor_key, 2, NULL, NULL));
  assert_int_equal(s->groups, 1);
  assert_int_equal(s->redundant, actors - 1);
  assert_int_equal(s->nrefs, 1);
  ref = scan_ref(s, "film_actor", "actor_id");
  assert_non_null(ref);
  assert_int_equal(ref->repoint, loser_rows);
  assert_int_equal(ref->collide, collided);
  nodup_scan_free(s);
  s = NULL;

  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "actor", actor_key, 2, NULL, NULL));
  {
    const want_table want[] = {{"actor", 0, actors - 1}, {"film_actor", moved, collided}};
    expect_report(r, 1, want, COUNT_OF(want));
  }

  /* One SUSAN DAVIS, credited on the union of the films, once each. */
  assert_int_equal(count(db, "SELECT count(*) FROM " SUSAN " s"), 1);
  assert_int_equal(count(db, "SELECT count(*) FROM actor WHERE actor_id = 101"), 1);
  assert_int_equal(count(db, "SELECT count(*) FROM film_actor WHERE actor_id = 101"), films);
  assert_int_equal(count(db, "SELECT count(DISTINCT film_id) FROM film_actor WHERE actor_id = 101"),
                   films);
  /* No other row touched, no row lost but the collided ones. */
  assert_int_equal(count(db, "SELECT count(*) FROM film_actor WHERE actor_id NOT IN " SUSAN),
                   others);
  assert_int_equal(count(db, "SELECT count(*) FROM film_actor"), total - collided);
  assert_int_equal(dangling(db), 0);

  /* Every deleted row archived, with a keeper that exists. */
  assert_int_equal(harness_count(db, "SELECT count(*) FROM {j}nodup_archive WHERE run = $1", r->run),
                   actors - 1 + collided);
  expect_archived(db, r->run, "110", "101");
  harness_expect(db, "SELECT CASE WHEN row LIKE '%SUSAN%' THEN 'y' ELSE 'n' END"
                     " FROM {j}nodup_archive WHERE run = $1 AND pk = '110'",
                 r->run, "y");
  snprintf(run, sizeof run, "%s", r->run);
  nodup_merge_free(r);

  assert_nodup(db, NODUP_OK, nodup_scan(&s, db, "actor", actor_key, 2, NULL, NULL));
  assert_int_equal(s->groups, 0);
  nodup_scan_free(s);

  /* Last, so that everything above is checked first: with two losers,
   * 201's credit on a film only 110 has collides with 110's (loser vs
   * loser), and the row it is merged into is re-pointed to 101 after. */
  expect_keepers_exist(db, run, "actor", "CAST(x.actor_id AS TEXT)", "NOT LIKE");
  expect_keepers_exist(db, run, "film_actor",
                       "CAST(x.actor_id AS TEXT) || ',' || CAST(x.film_id AS TEXT)", "LIKE");
}

static void test_pagila_actor(void **state) { merge_susan_davis(harness_load_pagila(state), 0); }

static void test_pagila_actor_overlap(void **state) {
  merge_susan_davis(harness_load_pagila(state), 1);
}

static void test_sakila_actor(void **state) { merge_susan_davis(harness_load_sakila(state), 0); }

static void test_sakila_actor_overlap(void **state) {
  merge_susan_davis(harness_load_sakila(state), 1);
}

/* ---------------------------------------------------------------------------
 * Scenario 2: Pagila's customer, referenced from rental and from payment's
 * partitions. payment_p2022_01..06 each declare their own foreign key to
 * customer (none on the parent); payment_p2022_07 declares none, and is
 * inferred to reference customer (and rental, and staff) as its siblings do.
 */

static const char *const email_key[] = {"email"};

/* Customer 600: a second account for MARY SMITH (customer 1, same email).
 * Nine of her rentals and their payments moved to it, one per partition
 * and three in payment_p2022_07; plus rental 90001, the same rental as her
 * 15315 recorded on the second account (it collides in
 * idx_unq_rental_rental_date_inventory_id_customer_id once re-pointed),
 * paid by payment 90001 in payment_p2022_03. */
static const char *const pagila_second_account =
    "INSERT INTO customer (customer_id, store_id, first_name, last_name, email, address_id,"
    " activebool, create_date, active) SELECT 600, store_id, first_name, last_name, email,"
    " address_id, activebool, create_date, active FROM customer WHERE customer_id = 1;"
    "UPDATE rental SET customer_id = 600"
    " WHERE rental_id IN (7841, 3284, 4611, 1185, 2308, 76, 1422, 1725, 5244);"
    "UPDATE payment SET customer_id = 600"
    " WHERE rental_id IN (7841, 3284, 4611, 1185, 2308, 76, 1422, 1725, 5244);"
    "INSERT INTO rental (rental_id, rental_date, inventory_id, customer_id, return_date,"
    " staff_id) SELECT 90001, rental_date, inventory_id, 600, return_date, staff_id"
    " FROM rental WHERE rental_id = 15315;"
    "INSERT INTO payment (payment_id, customer_id, staff_id, rental_id, amount, payment_date)"
    " VALUES (90001, 600, 2, 90001, 5.99, '2022-03-10 12:00:00+00')";

/* Rentals of 600 that collide with one of 1's once re-pointed. */
#define COLLIDING_RENTALS                                                                   \
  "(SELECT l.rental_id FROM rental l JOIN rental k ON k.rental_date = l.rental_date"      \
  " AND k.inventory_id = l.inventory_id AND k.customer_id = 1 WHERE l.customer_id = 600)"

#define NPART 7

/* What the data says a merge of 600 into 1 must do. */
typedef struct pagila_expect {
  long long customer_refs[NPART]; /* payments of 600, per partition */
  long long rental_refs[NPART];   /* payments of colliding rentals, per partition */
  long long rentals, collided;    /* rentals of 600; of those, colliding */
  long long rentals_after;        /* rentals of 1 after the merge */
  long long payments_after;       /* payments of 1 after the merge (with every reference) */
  long long payments_total;
  char amount[32];                /* sum(amount) of 1 and 600 */
} pagila_expect;

static void pagila_expectations(nodup_db *db, pagila_expect *e) {
  char sql[512];
  int p;
  memset(e, 0, sizeof *e);
  for (p = 0; p < NPART; p++) {
    snprintf(sql, sizeof sql, "SELECT count(*) FROM payment_p2022_0%d WHERE customer_id = 600",
             p + 1);
    e->customer_refs[p] = count(db, sql);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM payment_p2022_0%d WHERE rental_id IN " COLLIDING_RENTALS,
             p + 1);
    e->rental_refs[p] = count(db, sql);
  }
  e->rentals = count(db, "SELECT count(*) FROM rental WHERE customer_id = 600");
  e->collided = count(db, "SELECT count(*) FROM " COLLIDING_RENTALS " c");
  e->rentals_after = count(db, "SELECT count(*) FROM rental WHERE customer_id IN (1, 600)") -
                     e->collided;
  e->payments_after = count(db, "SELECT count(*) FROM payment WHERE customer_id IN (1, 600)");
  e->payments_total = count(db, "SELECT count(*) FROM payment");
  harness_query_into(db, "SELECT CAST(sum(amount) AS TEXT) FROM payment"
                         " WHERE customer_id IN (1, 600)",
                     NULL, e->amount, sizeof e->amount);
  /* The fixture is what its comment says. */
  assert_int_equal(e->rentals, 10);
  assert_int_equal(e->collided, 1);
  assert_int_equal(e->customer_refs[6], 3);
  assert_int_equal(e->rental_refs[2], 1);
  assert_int_equal(e->rental_refs[6], 0); /* no key of its own: inferred (none to move) */
  assert_int_equal(e->payments_after, 33);
}

/* The merge's rows, as the data predicts: one customer and one rental
 * deleted, the others re-pointed. A payment whose customer_id and rental_id
 * are both re-pointed counts once per reference. `with_p07`:
 * payment_p2022_07(customer_id) is re-pointed (inferred from its siblings,
 * now always; 0 shows what the merge did before it was). `parent_fk`: the
 * customer key is declared on the parent `payment` instead of per
 * partition. */
static void expect_pagila_report(const nodup_merge_report *r, const pagila_expect *e,
                                 int with_p07, int parent_fk) {
  want_table want[NPART + 3];
  static const char *const part[NPART] = {"payment_p2022_01", "payment_p2022_02",
                                          "payment_p2022_03", "payment_p2022_04",
                                          "payment_p2022_05", "payment_p2022_06",
                                          "payment_p2022_07"};
  long long all_payments = 0;
  size_t n = 0;
  int p;
  want[n++] = (want_table){"customer", 0, 1};
  want[n++] = (want_table){"rental", e->rentals - e->collided, e->collided};
  for (p = 0; p < NPART; p++) {
    long long rep = e->rental_refs[p];
    all_payments += e->customer_refs[p];
    if (!parent_fk && (p < NPART - 1 || with_p07)) rep += e->customer_refs[p];
    want[n++] = (want_table){part[p], rep, 0};
  }
  want[n++] = (want_table){"payment", parent_fk ? all_payments : 0, 0};
  expect_report(r, 1, want, n);
}

/* What holds after any merge of 600 into 1. */
static void check_pagila_merged(nodup_db *db, const nodup_merge_report *r,
                                const pagila_expect *e) {
  assert_int_equal(count(db, "SELECT count(*) FROM customer WHERE customer_id = 600"), 0);
  assert_int_equal(count(db, "SELECT count(*) FROM customer"
                             " WHERE email = 'MARY.SMITH@sakilacustomer.org'"),
                   1);
  assert_int_equal(count(db, "SELECT count(*) FROM rental WHERE customer_id = 1"),
                   e->rentals_after);
  assert_int_equal(count(db, "SELECT count(*) FROM rental WHERE customer_id = 600"), 0);
  /* The duplicated rental is gone; its payment now names the one kept. */
  assert_int_equal(count(db, "SELECT count(*) FROM rental WHERE rental_id = 90001"), 0);
  assert_int_equal(count(db, "SELECT rental_id FROM payment WHERE payment_id = 90001"), 15315);
  assert_int_equal(count(db, "SELECT customer_id FROM payment WHERE payment_id = 90001"), 1);
  /* No payment is ever deleted by a customer merge. */
  assert_int_equal(count(db, "SELECT count(*) FROM payment"), e->payments_total);
  assert_int_equal(dangling(db), 0);
  /* Archived: the second account and the duplicated rental. */
  assert_int_equal(harness_count(db, "SELECT count(*) FROM {j}nodup_archive WHERE run = $1", r->run),
                   2);
  expect_archived(db, r->run, "600", "1");
  expect_archived(db, r->run, "90001", "15315");
}

static void check_no_duplicate_customers(nodup_db *db) {
  nodup_scan_report *s = NULL;
  assert_nodup(db, NODUP_OK, nodup_scan(&s, db, "customer", email_key, 1, NULL, NULL));
  assert_int_equal(s->groups, 0);
  nodup_scan_free(s);
}

/* payment_p2022_07 lacks the foreign key its sibling partitions declare;
 * naming it with refs (what a user had to do before it was inferred) adds
 * nothing: it is the inferred reference, counted and re-pointed once. */
static void test_pagila_customer_with_ref(void **state) {
  nodup_db *db = harness_load_pagila(state);
  const char *refs[] = {"payment_p2022_07(customer_id)"};
  nodup_scan_options so;
  nodup_merge_options mo;
  nodup_scan_report *s = NULL;
  nodup_merge_report *r = NULL;
  const nodup_scan_ref *ref;
  pagila_expect e;
  char amount[32];

  harness_exec(db, pagila_second_account);
  pagila_expectations(db, &e);

  memset(&so, 0, sizeof so);
  so.refs = refs;
  so.nrefs = 1;
  assert_nodup(db, NODUP_OK, nodup_scan(&s, db, "customer", email_key, 1, NULL, &so));
  assert_int_equal(s->groups, 1);
  /* rental, six partitions, payment_p2022_07 once (the --ref repeats it) */
  assert_int_equal(s->nrefs, 8);
  ref = scan_ref(s, "payment_p2022_07", "customer_id");
  assert_non_null(ref);
  assert_int_equal(ref->declared, 0);
  assert_int_equal(ref->inferred, 1);
  assert_null(ref->condition);
  assert_int_equal(ref->repoint, e.customer_refs[6]);
  assert_int_equal(s->nsuspects, 0);
  ref = scan_ref(s, "payment_p2022_01", "customer_id");
  assert_non_null(ref);
  assert_int_equal(ref->declared, 1);
  assert_int_equal(ref->repoint, e.customer_refs[0]);
  ref = scan_ref(s, "rental", "customer_id");
  assert_non_null(ref);
  assert_int_equal(ref->repoint, e.rentals);
  assert_int_equal(ref->collide, e.collided);
  assert_string_equal(ref->collide_index, "idx_unq_rental_rental_date_inventory_id_customer_id");
  nodup_scan_free(s);

  memset(&mo, 0, sizeof mo);
  mo.refs = refs;
  mo.nrefs = 1;
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "customer", email_key, 1, NULL, &mo));
  expect_pagila_report(r, &e, 1, 0);
  check_pagila_merged(db, r, &e);
  nodup_merge_free(r);

  /* Every payment of either account is now 1's, in every partition. */
  assert_int_equal(count(db, "SELECT count(*) FROM payment WHERE customer_id = 1"),
                   e.payments_after);
  assert_int_equal(count(db, "SELECT count(*) FROM payment WHERE customer_id = 600"), 0);
  harness_query_into(db, "SELECT CAST(sum(amount) AS TEXT) FROM payment WHERE customer_id = 1",
                     NULL, amount, sizeof amount);
  assert_string_equal(amount, e.amount);
  check_no_duplicate_customers(db);
}

/* Nobody names payment_p2022_07, and its payments follow the customer all
 * the same: the catalog shows its siblings' foreign key, so its own is
 * inferred (issue 12, point 3). Before, this merge succeeded and left its
 * three payments naming the deleted customer 600 (this test asserted that
 * they dangled; it now asserts that none does, and that undo puts them
 * back). */
static void test_pagila_customer_without_ref(void **state) {
  nodup_db *db = harness_load_pagila(state);
  nodup_scan_report *s = NULL;
  nodup_merge_report *r = NULL;
  const nodup_scan_ref *ref;
  pagila_expect e;
  size_t i;
  int p07 = 0;

  harness_exec(db, pagila_second_account);
  pagila_expectations(db, &e);

  assert_nodup(db, NODUP_OK, nodup_scan(&s, db, "customer", email_key, 1, NULL, NULL));
  assert_int_equal(s->nrefs, 8); /* rental, six declared partitions, one inferred */
  ref = scan_ref(s, "payment_p2022_07", "customer_id");
  assert_non_null(ref);
  assert_int_equal(ref->inferred, 1);
  assert_int_equal(ref->declared, 0);
  assert_null(ref->constraint);
  assert_string_equal(ref->inferred_from, "payment_p2022_01_customer_id_fkey");
  assert_string_equal(ref->ref_cols[0], "customer_id");
  assert_int_equal(ref->repoint, e.customer_refs[6]);
  ref = scan_ref(s, "payment_p2022_01", "customer_id");
  assert_non_null(ref);
  assert_int_equal(ref->inferred, 0);
  assert_null(ref->inferred_from);
  /* The parent declares no key, but its partitions do: it is neither a
   * reference of its own (counted twice) nor a suspected one. */
  assert_null(scan_ref(s, "payment", "customer_id"));
  assert_int_equal(s->nsuspects, 0);
  nodup_scan_free(s);

  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "customer", email_key, 1, NULL, NULL));
  expect_pagila_report(r, &e, 1, 0);
  check_pagila_merged(db, r, &e);
  for (i = 0; i < r->ntables; i++) {
    int inferred = is_table(r->tables[i].table, "payment_p2022_07");
    p07 |= inferred;
    if (r->tables[i].inferred != inferred)
      fail_msg("%s: inferred = %d", r->tables[i].table, r->tables[i].inferred);
  }
  assert_true(p07);

  /* Every payment of either account is now 1's, in every partition. */
  assert_int_equal(count(db, "SELECT count(*) FROM payment WHERE customer_id = 1"),
                   e.payments_after);
  assert_int_equal(count(db, "SELECT count(*) FROM payment_p2022_07 p WHERE NOT EXISTS"
                             " (SELECT 1 FROM customer c WHERE c.customer_id = p.customer_id)"),
                   0);
  assert_int_equal(count(db, "SELECT count(*) FROM payment WHERE customer_id = 600"), 0);
  check_no_duplicate_customers(db);

  /* The inferred re-point is logged like any other: undo puts it back. */
  assert_nodup(db, NODUP_OK, nodup_undo(db, r->run, NULL, NULL));
  nodup_merge_free(r);
  assert_int_equal(count(db, "SELECT count(*) FROM payment_p2022_07 WHERE customer_id = 600"),
                   e.customer_refs[6]);
  assert_int_equal(count(db, "SELECT count(*) FROM payment WHERE customer_id = 600"),
                   e.payments_after - count(db, "SELECT count(*) FROM payment"
                                                " WHERE customer_id = 1"));
}

/* A reference no key declares and no partition implies: customer_note
 * (customer_id, the name and type of the partitions' keys) holds notes on
 * both accounts. The merge refuses before writing anything, naming it and
 * the two ways on; each way then works. */
static void test_pagila_customer_suspected(void **state) {
  nodup_db *db = harness_load_pagila(state);
  const char *refs[] = {"customer_note(customer_id)"};
  const char *ignore[] = {"customer_note(customer_id)"};
  nodup_scan_report *s = NULL;
  nodup_merge_report *r = NULL;
  nodup_merge_options mo;
  pagila_expect e;

  harness_exec(db, pagila_second_account);
  harness_exec(db, "CREATE TABLE customer_note (note_id serial PRIMARY KEY, customer_id integer,"
                   " body text);"
                   "INSERT INTO customer_note (customer_id, body) VALUES (600, 'a'), (600, 'b'),"
                   " (1, 'c'), (2, 'd')");
  pagila_expectations(db, &e);

  assert_nodup(db, NODUP_OK, nodup_scan(&s, db, "customer", email_key, 1, NULL, NULL));
  assert_int_equal(s->nsuspects, 1);
  assert_string_equal(s->suspects[0].table_name, "customer_note");
  assert_string_equal(s->suspects[0].column, "customer_id");
  assert_string_equal(s->suspects[0].ref_column, "customer_id");
  assert_int_equal(s->suspects[0].kind, NODUP_SUSPECT_SAME_NAME);
  assert_int_equal(s->suspects[0].rows, 2);
  assert_null(s->suspects[0].condition);
  assert_string_equal(s->suspects[0].ref, "customer_note(customer_id)");
  assert_string_equal(s->suspects[0].ignore, "customer_note(customer_id)");
  nodup_scan_free(s);

  memset(&mo, 0, sizeof mo);
  assert_nodup(db, NODUP_ERR_REFERENCED, nodup_merge(&r, db, "customer", email_key, 1, NULL, &mo));
  assert_null(r);
  assert_contains(nodup_errmsg(db), "2 row(s) of \"public\".\"customer_note\" (customer_id)");
  assert_contains(nodup_errmsg(db), "--ref 'customer_note(customer_id)'");
  assert_contains(nodup_errmsg(db), "--ignore-ref 'customer_note(customer_id)'");
  assert_contains(nodup_errmsg(db), "nothing changed");
  assert_int_equal(count(db, "SELECT count(*) FROM customer WHERE customer_id = 600"), 1);
  assert_int_equal(count(db, "SELECT count(*) FROM pg_class WHERE relname = 'nodup_runs'"), 0);
  mo.dry_run = 1;
  assert_nodup(db, NODUP_ERR_REFERENCED, nodup_merge(&r, db, "customer", email_key, 1, NULL, &mo));

  /* Left on purpose: the notes keep naming 600. */
  mo.dry_run = 1;
  mo.ignore_refs = ignore;
  mo.nignore_refs = 1;
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "customer", email_key, 1, NULL, &mo));
  expect_pagila_report(r, &e, 1, 0);
  nodup_merge_free(r);

  /* Re-pointed: the notes follow the customer. */
  memset(&mo, 0, sizeof mo);
  mo.refs = refs;
  mo.nrefs = 1;
  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "customer", email_key, 1, NULL, &mo));
  check_pagila_merged(db, r, &e);
  nodup_merge_free(r);
  assert_int_equal(count(db, "SELECT count(*) FROM customer_note WHERE customer_id = 1"), 3);
  assert_int_equal(count(db, "SELECT count(*) FROM customer_note WHERE customer_id = 2"), 1);
}

/* Declared on the partitioned parent, the key is inherited by every
 * partition (PostgreSQL attaches the six existing ones and adds one to
 * payment_p2022_07): one reference, re-pointed once through the parent,
 * no ref needed. */
static void test_pagila_customer_parent_fk(void **state) {
  nodup_db *db = harness_load_pagila(state);
  nodup_scan_report *s = NULL;
  nodup_merge_report *r = NULL;
  const nodup_scan_ref *ref;
  pagila_expect e;
  long long all = 0;
  int p;

  harness_exec(db, pagila_second_account);
  harness_exec(db, "ALTER TABLE payment ADD CONSTRAINT payment_customer_id_fkey"
                   " FOREIGN KEY (customer_id) REFERENCES customer (customer_id)");
  assert_int_equal(count(db, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
                             " AND confrelid = 'customer'::regclass AND conparentid <> 0"),
                   NPART);
  pagila_expectations(db, &e);
  for (p = 0; p < NPART; p++) all += e.customer_refs[p];

  assert_nodup(db, NODUP_OK, nodup_scan(&s, db, "customer", email_key, 1, NULL, NULL));
  assert_int_equal(s->nrefs, 2); /* rental, payment */
  ref = scan_ref(s, "payment", "customer_id");
  assert_non_null(ref);
  assert_int_equal(ref->repoint, all);
  nodup_scan_free(s);

  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "customer", email_key, 1, NULL, NULL));
  expect_pagila_report(r, &e, 0, 1);
  check_pagila_merged(db, r, &e);
  nodup_merge_free(r);
  assert_int_equal(count(db, "SELECT count(*) FROM payment WHERE customer_id = 1"),
                   e.payments_after);
  check_no_duplicate_customers(db);
}

/* ---------------------------------------------------------------------------
 * Scenario 3: Sakila on SQLite
 */

/* Staff 3: a second record of Mike Hillyer (staff 1, same username), the
 * manager of store 1, which is his own store (store.manager_staff_id ->
 * staff, staff.store_id -> store: a cycle), and on a tenth of his rentals
 * and payments. */
static const char *const sakila_second_staff =
    "INSERT INTO staff (staff_id, first_name, last_name, address_id, picture, email, store_id,"
    " active, username, password, last_update) SELECT 3, first_name, last_name, address_id,"
    " picture, email, store_id, active, username, password, last_update FROM staff"
    " WHERE staff_id = 1;"
    "UPDATE store SET manager_staff_id = 3 WHERE store_id = 1;"
    "UPDATE rental SET staff_id = 3 WHERE staff_id = 1 AND rental_id % 10 = 0;"
    "UPDATE payment SET staff_id = 3 WHERE staff_id = 1 AND payment_id % 10 = 0";

static void test_sakila_staff_circular(void **state) {
  nodup_db *db = harness_load_sakila(state);
  const char *const key[] = {"username"};
  nodup_merge_report *r = NULL;
  long long rentals, payments, rentals_1, payments_1, stamped;
  char *trigger;

  harness_exec(db, sakila_second_staff);
  /* Stamp the rentals about to move with an old last_update, under the
   * dataset's own AFTER UPDATE trigger, which would overwrite it: the
   * merge's UPDATE must fire it exactly on the rows it re-points. */
  trigger = harness_query(db, "SELECT sql FROM sqlite_master WHERE type = 'trigger'"
                              " AND name = 'rental_trigger_au'", NULL);
  assert_non_null(trigger);
  harness_exec(db, "DROP TRIGGER rental_trigger_au;"
                   "UPDATE rental SET last_update = '2000-01-01 00:00:00' WHERE staff_id = 3");
  harness_exec(db, trigger);
  free(trigger);

  rentals = count(db, "SELECT count(*) FROM rental WHERE staff_id = 3");
  payments = count(db, "SELECT count(*) FROM payment WHERE staff_id = 3");
  rentals_1 = count(db, "SELECT count(*) FROM rental WHERE staff_id IN (1, 3)");
  payments_1 = count(db, "SELECT count(*) FROM payment WHERE staff_id IN (1, 3)");
  stamped = count(db, "SELECT count(*) FROM rental WHERE last_update = '2000-01-01 00:00:00'");
  assert_true(rentals > 0);
  assert_true(payments > 0);
  assert_int_equal(stamped, rentals);
  assert_int_equal(count(db, "SELECT manager_staff_id FROM store WHERE store_id = 1"), 3);

  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "staff", key, 1, NULL, NULL));
  {
    const want_table want[] = {
        {"staff", 0, 1}, {"store", 1, 0}, {"rental", rentals, 0}, {"payment", payments, 0}};
    expect_report(r, 1, want, COUNT_OF(want));
  }
  assert_int_equal(harness_count(db, "SELECT count(*) FROM {j}nodup_archive WHERE run = $1", r->run),
                   1);
  expect_archived(db, r->run, "3", "1");
  nodup_merge_free(r);

  /* The cycle closed on the kept row; everything else followed. */
  assert_int_equal(count(db, "SELECT count(*) FROM staff"), 2);
  assert_int_equal(count(db, "SELECT manager_staff_id FROM store WHERE store_id = 1"), 1);
  assert_int_equal(count(db, "SELECT store_id FROM staff WHERE staff_id = 1"), 1);
  assert_int_equal(count(db, "SELECT count(*) FROM rental WHERE staff_id = 1"), rentals_1);
  assert_int_equal(count(db, "SELECT count(*) FROM payment WHERE staff_id = 1"), payments_1);
  assert_int_equal(count(db, "SELECT count(*) FROM rental WHERE staff_id = 3"), 0);
  /* The trigger ran on every re-pointed rental, and only there. */
  assert_int_equal(count(db, "SELECT count(*) FROM rental"
                             " WHERE last_update = '2000-01-01 00:00:00'"),
                   0);
  /* (A full timestamp: '2007' would take the column's NUMERIC affinity and
   * become 2007, below every text.) */
  assert_int_equal(count(db, "SELECT count(*) FROM rental"
                             " WHERE last_update > '2006-12-31 23:59:59'"),
                   rentals);
  assert_int_equal(dangling(db), 0);
}

/* Customer 600: MARY SMITH's second account (same email) with six of her
 * rentals and their payments, plus rental 90001, her rental 15315 recorded
 * again on it, paid by payment 90001. payment.rental_id is ON DELETE SET
 * NULL: deleting rental 90001 before re-pointing its payment would quietly
 * lose the link instead of failing. */
static const char *const sakila_second_account =
    "INSERT INTO customer (customer_id, store_id, first_name, last_name, email, address_id,"
    " active, create_date, last_update) SELECT 600, store_id, first_name, last_name, email,"
    " address_id, active, create_date, last_update FROM customer WHERE customer_id = 1;"
    "UPDATE rental SET customer_id = 600 WHERE rental_id IN (76, 1185, 2308, 3284, 4611, 7841);"
    "UPDATE payment SET customer_id = 600 WHERE rental_id IN (76, 1185, 2308, 3284, 4611, 7841);"
    "INSERT INTO rental (rental_id, rental_date, inventory_id, customer_id, return_date,"
    " staff_id, last_update) SELECT 90001, rental_date, inventory_id, 600, return_date,"
    " staff_id, last_update FROM rental WHERE rental_id = 15315;"
    "INSERT INTO payment (payment_id, customer_id, staff_id, rental_id, amount, payment_date,"
    " last_update) VALUES (90001, 600, 2, 90001, 5.99, '2005-08-22 20:10:00',"
    " '2006-02-15 22:24:13')";

static void test_sakila_customer_set_null(void **state) {
  nodup_db *db = harness_load_sakila(state);
  nodup_merge_report *r = NULL;
  long long rentals, collided, customer_refs, rental_refs, null_rentals, rentals_after,
      payments_after, payments_total;

  harness_exec(db, sakila_second_account);
  rentals = count(db, "SELECT count(*) FROM rental WHERE customer_id = 600");
  collided = count(db, "SELECT count(*) FROM " COLLIDING_RENTALS " c");
  customer_refs = count(db, "SELECT count(*) FROM payment WHERE customer_id = 600");
  rental_refs = count(db, "SELECT count(*) FROM payment WHERE rental_id IN " COLLIDING_RENTALS);
  null_rentals = count(db, "SELECT count(*) FROM payment WHERE rental_id IS NULL");
  rentals_after = count(db, "SELECT count(*) FROM rental WHERE customer_id IN (1, 600)") - collided;
  payments_after = count(db, "SELECT count(*) FROM payment WHERE customer_id IN (1, 600)");
  payments_total = count(db, "SELECT count(*) FROM payment");
  assert_int_equal(rentals, 7);
  assert_int_equal(collided, 1);
  assert_int_equal(rental_refs, 1);

  assert_nodup(db, NODUP_OK, nodup_merge(&r, db, "customer", email_key, 1, NULL, NULL));
  {
    /* Payment 90001 is re-pointed twice: customer_id and rental_id. */
    const want_table want[] = {{"customer", 0, 1},
                               {"rental", rentals - collided, collided},
                               {"payment", customer_refs + rental_refs, 0}};
    expect_report(r, 1, want, COUNT_OF(want));
  }
  assert_int_equal(harness_count(db, "SELECT count(*) FROM {j}nodup_archive WHERE run = $1", r->run),
                   2);
  expect_archived(db, r->run, "600", "1");
  expect_archived(db, r->run, "90001", "15315");
  nodup_merge_free(r);

  /* The payment of the deleted rental names the kept one, not NULL. */
  assert_int_equal(count(db, "SELECT rental_id FROM payment WHERE payment_id = 90001"), 15315);
  assert_int_equal(count(db, "SELECT customer_id FROM payment WHERE payment_id = 90001"), 1);
  assert_int_equal(count(db, "SELECT count(*) FROM payment WHERE rental_id IS NULL"),
                   null_rentals);
  assert_int_equal(count(db, "SELECT count(*) FROM customer WHERE customer_id = 600"), 0);
  assert_int_equal(count(db, "SELECT count(*) FROM rental WHERE customer_id = 1"), rentals_after);
  assert_int_equal(count(db, "SELECT count(*) FROM payment WHERE customer_id = 1"),
                   payments_after);
  assert_int_equal(count(db, "SELECT count(*) FROM payment"), payments_total);
  assert_int_equal(dangling(db), 0);
  check_no_duplicate_customers(db);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, harness_setup, harness_teardown)
  const struct CMUnitTest pg_tests[] = {
      T(test_pagila_actor),
      T(test_pagila_actor_overlap),
      T(test_pagila_customer_with_ref),
      T(test_pagila_customer_without_ref),
      T(test_pagila_customer_suspected),
      T(test_pagila_customer_parent_fk),
  };
  const struct CMUnitTest sqlite_tests[] = {
      T(test_sakila_actor),
      T(test_sakila_actor_overlap),
      T(test_sakila_staff_circular),
      T(test_sakila_customer_set_null),
  };
#undef T
  if (harness_is_pg())
    return cmocka_run_group_tests_name("merge_datasets_pg", pg_tests, harness_pagila_setup,
                                       harness_pagila_teardown);
  return cmocka_run_group_tests_name("merge_datasets_sqlite", sqlite_tests, NULL, NULL);
}

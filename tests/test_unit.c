/*
 * test_unit.c -- what needs no database: error texts, NULL-tolerant
 * releases, and nodup_open's refusals (which must still explain themselves
 * through the failed handle, as nodup.h promises).
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* nodup_strerror is generated from the same table as the enum; check every
 * row, so a code added without its text (or renumbered) fails here. */
static void test_strerror_matches_table(void **state) {
  (void)state;
#define CHECK_ROW(name, num, text)                                             \
  assert_int_equal(NODUP_##name, num);                                         \
  assert_string_equal(nodup_strerror(num), text);
  NODUP_ERROR_MAP(CHECK_ROW)
#undef CHECK_ROW
}

static void test_strerror_unknown_code(void **state) {
  (void)state;
  const int unknown[] = {-1, 19, 999, -2147483647 - 1};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *text = nodup_strerror(unknown[i]);
    assert_non_null(text);
    assert_true(text[0] != '\0');
  }
}

static void test_null_handles_are_safe(void **state) {
  (void)state;
  assert_non_null(nodup_errmsg(NULL));
  assert_true(nodup_errmsg(NULL)[0] != '\0');
  nodup_close(NULL);
  nodup_key_free(NULL);
}

/* Open `url`, expect `want`, and check the failed handle explains itself. */
static void expect_open_failure(const char *url, int want) {
  nodup_db *db = NULL;
  int rc = nodup_open(&db, url);
  if (rc != want) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", nodup_errmsg(db));
    nodup_close(db);
    fail_msg("nodup_open(\"%s\") = %d (%s), expected %d (%s): %s", url, rc,
             nodup_strerror(rc), want, nodup_strerror(want), msg);
  }
  /* Only NOMEM may leave *out NULL. */
  assert_non_null(db);
  const char *msg = nodup_errmsg(db);
  assert_non_null(msg);
  if (msg[0] == '\0') {
    nodup_close(db);
    fail_msg("nodup_open(\"%s\") failed with an empty message", url);
  }
  nodup_close(db);
}

static void test_open_unknown_scheme(void **state) {
  (void)state;
  expect_open_failure("mysql://x", NODUP_ERR_URL);
  expect_open_failure("mysql://user:pw@localhost/app", NODUP_ERR_URL);
}

/* An unterminated quote is a malformed conninfo, not a connection failure:
 * the user must fix the string, not the server. */
static void test_open_malformed_conninfo(void **state) {
  (void)state;
  expect_open_failure("host=/tmp dbname='x", NODUP_ERR_URL);
}

static void test_open_server_unreachable(void **state) {
  (void)state;
  /* Port 1 refuses at once; no server listens there. */
  expect_open_failure("postgresql://localhost:1/x", NODUP_ERR_CONNECT);
  expect_open_failure("postgres://localhost:1/x", NODUP_ERR_CONNECT);
  expect_open_failure("host=/nonexistent dbname=x", NODUP_ERR_CONNECT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strerror_matches_table),
      cmocka_unit_test(test_strerror_unknown_code),
      cmocka_unit_test(test_null_handles_are_safe),
      cmocka_unit_test(test_open_unknown_scheme),
      cmocka_unit_test(test_open_malformed_conninfo),
      cmocka_unit_test(test_open_server_unreachable),
  };
  return cmocka_run_group_tests_name("unit", tests, NULL, NULL);
}

/*
 * test_unit.c -- what needs no database: error texts, NULL-tolerant
 * releases, nodup_open's refusals (which must still explain themselves
 * through the failed handle, as nodup.h promises, and never show a
 * password) and nodup_url_redact.
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

/* nodup_url_redact(url) must give `want`, and its length. */
static void expect_redacted(const char *url, const char *want) {
  char out[512];
  int n = nodup_url_redact(out, sizeof out, url);
  if (n < 0 || strcmp(out, want) != 0)
    fail_msg("nodup_url_redact(\"%s\") = \"%s\" (%d), expected \"%s\"", url, out, n, want);
  assert_int_equal(n, (int)strlen(want));
}

static void test_redact_uri(void **state) {
  (void)state;
  expect_redacted("postgresql://alice:S3cretPW@db.example.org:5432/app",
                  "postgresql://alice@db.example.org:5432/app");
  expect_redacted("postgres://alice:S3cretPW@h/app", "postgres://alice@h/app");
  expect_redacted("postgresql://:S3cretPW@h/app", "postgresql://@h/app");
  expect_redacted("postgresql://alice@h/app", "postgresql://alice@h/app");
  expect_redacted("postgresql://h:5432,h2:5433/app?sslmode=require",
                  "postgresql://h:5432,h2:5433/app?sslmode=require");
  expect_redacted("postgresql://h/app?password=S3cretPW", "postgresql://h/app");
  expect_redacted("postgresql://h/app?sslmode=require&password=S3cretPW&connect_timeout=5",
                  "postgresql://h/app?sslmode=require&connect_timeout=5");
  expect_redacted("postgresql://h/app?sslpassword=S3cretPW", "postgresql://h/app");
  /* Not a user name with an '@' in a query value. */
  expect_redacted("postgresql://h:5432/app?user=a@corp", "postgresql://h:5432/app?user=a@corp");
  expect_redacted("postgresql://[::1]:5432/app?user=a@corp",
                  "postgresql://[::1]:5432/app?user=a@corp");
  /* Any other scheme is shown the same way (nodup refuses it, naming it). */
  expect_redacted("mysql://alice:S3cretPW@h/app", "mysql://alice@h/app");
}

/* libpq decodes %XX in every part of a URI, query keywords included. */
static void test_redact_percent_encoded(void **state) {
  (void)state;
  expect_redacted("postgresql://alice:S3c%40ret%2FPW@h/app", "postgresql://alice@h/app");
  expect_redacted("postgresql://h/app?pass%77ord=S3cretPW&dbname=x", "postgresql://h/app?dbname=x");
  expect_redacted("postgresql://h/app?PASSWORD=S3cretPW", "postgresql://h/app");
  expect_redacted("postgresql://h/app?host=%2Ftmp", "postgresql://h/app?host=%2Ftmp");
}

static void test_redact_conninfo(void **state) {
  (void)state;
  expect_redacted("host=h password=S3cretPW dbname=app", "host=h dbname=app");
  expect_redacted("password=S3cretPW host=h", "host=h");
  expect_redacted("host=h password = S3cretPW  port=5432", "host=h  port=5432");
  expect_redacted("host=h sslpassword=S3cretPW", "host=h");
  expect_redacted("host=/tmp dbname=app user=u", "host=/tmp dbname=app user=u");
  /* Quoted, with libpq's backslash escapes; an escaped space unquoted. */
  expect_redacted("host=h password='a b' dbname=app", "host=h dbname=app");
  expect_redacted("host=h password='it\\'s \\\\ here' dbname=app", "host=h dbname=app");
  expect_redacted("host=h password=S3cret\\ PW dbname=app", "host=h dbname=app");
  expect_redacted("host=h password='' dbname=app", "host=h dbname=app");
  /* After '=' libpq skips blanks and takes the next run as the value. */
  expect_redacted("host=h password= dbname=app", "host=h");
  /* A URI given as a value is shown without its password too. */
  expect_redacted("dbname=postgresql://u:S3cretPW@h/app", "dbname=postgresql://u@h/app");
  /* Paths and SQLite URIs are not connection strings. */
  expect_redacted("/var/lib/app.db", "/var/lib/app.db");
  expect_redacted("file:app.db?mode=rwc", "file:app.db?mode=rwc");
  expect_redacted("sqlite:app.db", "sqlite:app.db");
}

/* Malformed strings are read to hide more, never less. */
static void test_redact_malformed(void **state) {
  (void)state;
  expect_redacted("postgresql://alice:S3cretPW@/db?host=/tmp&bogus=1",
                  "postgresql://alice@/db?host=/tmp&bogus=1");
  /* Unencoded '@', '/', '?' in the password: libpq would split there. */
  expect_redacted("postgresql://alice:S3c@retPW@h/app", "postgresql://alice@h/app");
  expect_redacted("postgresql://alice:S3c/retPW@h/app", "postgresql://alice@h/app");
  expect_redacted("postgresql://alice:S3c?retPW@h/app", "postgresql://alice@h/app");
  expect_redacted("postgresql://alice:S3c%zzPW@h/app", "postgresql://alice@h/app");
  expect_redacted("postgresql://alice:S3cret PW@h/app", "postgresql://alice@h/app");
  expect_redacted("postgresql://h/app?password=S3c&retPW&sslmode=require",
                  "postgresql://h/app?sslmode=require");
  /* A password with an unquoted space, a lone keyword, an open quote. */
  expect_redacted("host=h password=S3cret PW dbname=app", "host=h dbname=app");
  expect_redacted("host=h password S3cretPW dbname=app", "host=h dbname=app");
  expect_redacted("host=h password='S3cret PW", "host=h");
}

static void test_redact_buffer(void **state) {
  char small[8];
  (void)state;
  /* Like snprintf: the length it needs, what fits. */
  assert_int_equal(nodup_url_redact(NULL, 0, "postgresql://a:pw@h/d"), 18);
  assert_int_equal(nodup_url_redact(small, sizeof small, "postgresql://a:pw@h/d"), 18);
  assert_string_equal(small, "postgre");
  assert_int_equal(nodup_url_redact(small, sizeof small, "x"), 1);
  assert_string_equal(small, "x");
  assert_int_equal(nodup_url_redact(small, sizeof small, NULL), -1);
  assert_int_equal(nodup_url_redact(NULL, 4, "x"), -1);
}

/* nodup_open's messages: the password neither in the URL it shows nor in
 * what libpq says, which quotes parts of a malformed string. */
static void expect_open_hides(const char *url, int want, const char *const *hidden,
                              const char *shown) {
  nodup_db *db = NULL;
  int rc = nodup_open(&db, url);
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", nodup_errmsg(db));
  nodup_close(db);
  if (rc != want)
    fail_msg("nodup_open(\"%s\") = %d, expected %d: %s", url, rc, want, msg);
  for (; *hidden; hidden++)
    if (strstr(msg, *hidden)) fail_msg("the message for \"%s\" shows \"%s\": %s", url, *hidden, msg);
  if (shown && !strstr(msg, shown))
    fail_msg("the message for \"%s\" lacks \"%s\": %s", url, shown, msg);
}

static void test_open_messages_hide_passwords(void **state) {
  static const char *const pw[] = {"S3cretPW", NULL};
  static const char *const pieces[] = {"S3cretPW", "\"S3c\"", "retPW", NULL};
  static const char *const spaced[] = {"S3cret", "PW\"", NULL};
  (void)state;
  expect_open_hides("postgresql://alice:S3cretPW@/db?host=/tmp&bogus=1", NODUP_ERR_URL, pw,
                    "\"postgresql://alice@/db?host=/tmp&bogus=1\": invalid URI query parameter");
  expect_open_hides("postgresql://alice:S3cretPW@localhost:1/db", NODUP_ERR_CONNECT, pw, NULL);
  expect_open_hides("host=localhost port=1 password=S3cretPW dbname=db", NODUP_ERR_CONNECT, pw,
                    NULL);
  expect_open_hides("host=localhost port=1 password='S3cretPW' bogus=1", NODUP_ERR_URL, pw,
                    "bogus");
  /* libpq quotes the undecodable password, or the IPv6 URI whole. */
  expect_open_hides("postgresql://alice:S3cretPW%zz@localhost:1/db", NODUP_ERR_URL, pw,
                    "invalid percent-encoded token");
  expect_open_hides("postgresql://alice:S3cretPW@[::1/db", NODUP_ERR_URL, pw, "IPv6");
  /* ... the password's head as a port, its tail as a host name. */
  expect_open_hides("postgresql://alice:S3c/retPW@localhost:1/db", NODUP_ERR_CONNECT, pieces,
                    NULL);
  expect_open_hides("postgresql://alice:S3c@retPW@localhost:1/db", NODUP_ERR_CONNECT, pieces,
                    NULL);
  /* ... and the second word of an unquoted password with a space. */
  expect_open_hides("host=localhost password=S3cret PW", NODUP_ERR_URL, spaced, "missing");
  expect_open_hides("mysql://alice:S3cretPW@h/db", NODUP_ERR_URL, pw, "mysql://alice@h/db");
}

/* The header's version and the library's are one (the build reads it
 * from the header); the number orders like the string. */
static void test_version_one_place(void **state) {
  char text[32];
  (void)state;
  assert_string_equal(nodup_libversion(), NODUP_VERSION);
  assert_int_equal(nodup_libversion_number(), NODUP_VERSION_NUMBER);
  snprintf(text, sizeof text, "%d.%d.%d", NODUP_VERSION_NUMBER / 1000000,
           NODUP_VERSION_NUMBER / 1000 % 1000, NODUP_VERSION_NUMBER % 1000);
  assert_string_equal(text, NODUP_VERSION);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strerror_matches_table),
      cmocka_unit_test(test_version_one_place),
      cmocka_unit_test(test_strerror_unknown_code),
      cmocka_unit_test(test_null_handles_are_safe),
      cmocka_unit_test(test_open_unknown_scheme),
      cmocka_unit_test(test_open_malformed_conninfo),
      cmocka_unit_test(test_open_server_unreachable),
      cmocka_unit_test(test_redact_uri),
      cmocka_unit_test(test_redact_percent_encoded),
      cmocka_unit_test(test_redact_conninfo),
      cmocka_unit_test(test_redact_malformed),
      cmocka_unit_test(test_redact_buffer),
      cmocka_unit_test(test_open_messages_hide_passwords),
  };
  return cmocka_run_group_tests_name("unit", tests, NULL, NULL);
}

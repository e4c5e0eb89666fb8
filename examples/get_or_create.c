/*
 * get_or_create.c -- the shape of a web handler that must create a record
 * exactly once: open the connection and prepare the key once at start-up,
 * then one nodup_get_or_create() per request, from as many threads as you
 * like, one connection each.
 *
 *   get_or_create DATABASE          (a SQLite path or a postgres:// URL)
 *
 * It makes its own table "conference" (unique on (conference_id, app_id)),
 * handles four "requests" (two of them for the same conference) and prints
 * what each got. Exit status 0 when the repeated request found the row.
 */
#include <stdio.h>
#include <string.h>

#include <nodup.h>

/* One request: the conference for (conference_id, app_id), created once. */
static int handle_request(nodup_key *key, const char *conference, const char *app,
                          const char *title) {
  const char *const vals[] = {conference, app};
  const char *const def_cols[] = {"title"};
  const char *const def_vals[] = {title};
  nodup_result r;
  int rc = nodup_get_or_create(key, vals, def_cols, def_vals, 1, &r);
  if (rc != NODUP_OK) {
    /* A unique violation of ANOTHER constraint, a NULL key, a dead server:
     * nodup_strerror() says which kind, the message which table. */
    fprintf(stderr, "request %s/%s: %s\n", conference, app, nodup_strerror(rc));
    return -1;
  }
  printf("conference %s/%s -> id %s (%s)\n", conference, app, r.id,
         r.created ? "created" : "found");
  return r.created;
}

int main(int argc, char **argv) {
  static const char *const key_cols[] = {"conference_id", "app_id"};
  nodup_db *db = NULL;
  nodup_key *key = NULL;
  int rc, again;

  if (argc != 2) {
    fprintf(stderr, "usage: get_or_create DATABASE\n");
    return 2;
  }
  /* Start-up: the connection and the key, once. */
  if ((rc = nodup_open(&db, argv[1])) != NODUP_OK) {
    fprintf(stderr, "open: %s\n", nodup_errmsg(db));
    nodup_close(db);
    return 2;
  }
  rc = nodup_exec(db, "CREATE TABLE IF NOT EXISTS conference (id INTEGER PRIMARY KEY, "
                      "conference_id TEXT NOT NULL, app_id TEXT NOT NULL, title TEXT, "
                      "UNIQUE (conference_id, app_id))");
  /* The key is prepared against the unique constraint that arbitrates it;
   * without one, nodup refuses (NODUP_ERR_UNBACKED) and says which index
   * to add. */
  if (rc == NODUP_OK) rc = nodup_key_prepare(&key, db, "conference", key_cols, 2, NULL);
  if (rc != NODUP_OK) {
    fprintf(stderr, "prepare: %s\n", nodup_errmsg(db));
    nodup_close(db);
    return 2;
  }
  printf("key backed by %s\n", nodup_key_index(key));

  /* Requests. */
  handle_request(key, "pycon-2026", "web", "PyCon 2026");
  handle_request(key, "rustconf", "web", "RustConf");
  again = handle_request(key, "pycon-2026", "web", "PyCon 2026 (retried)");
  handle_request(key, "pycon-2026", "ios", "PyCon 2026");

  nodup_key_free(key);
  nodup_close(db);
  return again == 0 ? 0 : 1;
}

/*
 * slug.c -- unique, readable slugs under concurrency: "my-team",
 * "my-team-2", ... never exhausted, never handed out twice.
 *
 *   slug DATABASE
 *
 * It makes a table "team" with a unique slug per tenant, then creates the
 * same team name three times in tenant 1 and once in tenant 2, through one
 * prepared slug handle: the catalog is read once, and each allocation is
 * its statements alone. (For a single slug, nodup_slug_create() does the
 * same in one call.)
 */
#include <stdio.h>
#include <string.h>

#include <nodup.h>

int main(int argc, char **argv) {
  static const char *const scope_cols[] = {"tenant"};
  static const char *const set_cols[] = {"name"};
  static const char *const tenants[] = {"1", "1", "1", "2"};
  static const char *const want[] = {"my-team", "my-team-2", "my-team-3", "my-team"};
  nodup_db *db = NULL;
  nodup_slug *slug = NULL;
  int rc, ok = 1;
  size_t i;

  if (argc != 2) {
    fprintf(stderr, "usage: slug DATABASE\n");
    return 2;
  }
  if (nodup_open(&db, argv[1]) != NODUP_OK ||
      nodup_exec(db, "CREATE TABLE team (id INTEGER PRIMARY KEY, tenant INTEGER NOT NULL, "
                     "name TEXT NOT NULL, slug TEXT NOT NULL, UNIQUE (tenant, slug))") !=
          NODUP_OK ||
      nodup_slug_prepare(&slug, db, "team", "slug", scope_cols, 1, set_cols, 1, NULL) !=
          NODUP_OK) {
    fprintf(stderr, "setup: %s\n", nodup_errmsg(db));
    nodup_close(db);
    return 2;
  }
  for (i = 0; i < 4; i++) {
    const char *const scope_vals[] = {tenants[i]};
    const char *const set_vals[] = {"My Team!"};
    nodup_slug_result r = {0};
    rc = nodup_slug_next(&r, slug, scope_vals, set_vals, "My Team!");
    if (rc != NODUP_OK) {
      fprintf(stderr, "slug: %s\n", nodup_errmsg(db));
      nodup_slug_free(slug);
      nodup_close(db);
      return 1;
    }
    printf("tenant %s: %s (id %s, %u attempt(s))\n", tenants[i], r.slug, r.id, r.attempts);
    ok &= strcmp(r.slug, want[i]) == 0;
    nodup_slug_result_free(&r);
  }
  nodup_slug_free(slug);
  nodup_close(db);
  return ok ? 0 : 1;
}

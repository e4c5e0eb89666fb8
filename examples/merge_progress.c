/*
 * merge_progress.c -- clean existing duplicates with a progress callback,
 * then enforce the key so they cannot come back.
 *
 *   merge_progress DATABASE
 *
 * It makes a table "team" with 50 titles each stored three times and a
 * child "member" pointing at every copy, merges each title into one row
 * (re-pointing every member), prints the progress and the report, adds the
 * unique index, and checks with a scan that no duplicate is left and that
 * every member was re-pointed, none deleted.
 */
#include <stdio.h>
#include <string.h>

#include <nodup.h>

static void progress(void *ctx, long long done, long long total) {
  const char *what = ctx;
  printf("%s: %lld of %lld groups\n", what, done, total);
}

int main(int argc, char **argv) {
  static const char *const key_cols[] = {"title"};
  nodup_db *db = NULL;
  nodup_merge_options mopt = NODUP_MERGE_OPTIONS_INIT;
  nodup_merge_report *mrep = NULL;
  nodup_enforce_options eopt = NODUP_ENFORCE_OPTIONS_INIT;
  nodup_enforce_report *erep = NULL;
  nodup_scan_report *srep = NULL;
  long long repointed = 0, deleted = 0;
  int rc;
  size_t i;

  if (argc != 2) {
    fprintf(stderr, "usage: merge_progress DATABASE\n");
    return 2;
  }
  if (nodup_open(&db, argv[1]) != NODUP_OK) {
    fprintf(stderr, "open: %s\n", nodup_errmsg(db));
    nodup_close(db);
    return 2;
  }
  rc = nodup_exec(db,
                  "CREATE TABLE team (id INTEGER PRIMARY KEY, title TEXT NOT NULL);"
                  "CREATE TABLE member (id INTEGER PRIMARY KEY, "
                  "team_id INTEGER NOT NULL REFERENCES team (id));"
                  "CREATE INDEX member_team ON member (team_id);"
                  "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 149) "
                  "INSERT INTO team (id, title) SELECT i + 1, 'team ' || (i % 50) FROM n;"
                  "INSERT INTO member (team_id) SELECT id FROM team;");
  if (rc != NODUP_OK) {
    fprintf(stderr, "setup: %s\n", nodup_errmsg(db));
    nodup_close(db);
    return 2;
  }

  mopt.batch = 20;            /* each batch of 20 groups is one transaction */
  mopt.progress = progress;
  mopt.progress_ctx = "merge";
  if ((rc = nodup_merge(&mrep, db, "team", key_cols, 1, NULL, &mopt)) != NODUP_OK) {
    fprintf(stderr, "merge: %s\n", nodup_errmsg(db));
    nodup_close(db);
    return 1;
  }
  printf("run %s: %lld groups in %lld batches\n", mrep->run, mrep->groups, mrep->batches);
  for (i = 0; i < mrep->ntables; i++) {
    printf("  %s: %lld re-pointed, %lld deleted\n", mrep->tables[i].table,
           mrep->tables[i].repointed, mrep->tables[i].deleted);
    if (mrep->tables[i].table_name && !strcmp(mrep->tables[i].table_name, "member")) {
      repointed = mrep->tables[i].repointed;
      deleted = mrep->tables[i].deleted;
    }
  }
  nodup_merge_free(mrep);

  /* Now the constraint, so the duplicates cannot come back: one short
   * transaction under a lock (NODUP_ENFORCE_ONLINE, on PostgreSQL, builds
   * it CONCURRENTLY instead, for tables too big to lock). */
  eopt.mode = NODUP_ENFORCE_LOCKED;
  if ((rc = nodup_enforce(&erep, db, "team", key_cols, 1, NULL, &eopt)) != NODUP_OK) {
    fprintf(stderr, "enforce: %s\n", nodup_errmsg(db));
    nodup_close(db);
    return 1;
  }
  printf("enforced by %s\n", erep->index);
  nodup_enforce_free(erep);

  if (nodup_scan(&srep, db, "team", key_cols, 1, NULL, NULL) != NODUP_OK) {
    fprintf(stderr, "scan: %s\n", nodup_errmsg(db));
    nodup_close(db);
    return 1;
  }
  /* 100 copies went, and the member of each now points at its keeper. */
  rc = srep->groups == 0 && repointed == 100 && deleted == 0;
  printf("%s\n", rc ? "no duplicates left; 100 members re-pointed, none deleted" : "MISMATCH");
  nodup_scan_free(srep);
  nodup_close(db);
  return rc ? 0 : 1;
}

/*
 * duplicates.c -- counting duplicate key groups.
 *
 * Runs on keys that no index backs yet (that is when duplicates exist), so
 * it needs only the table and columns. NULLs: GROUP BY treats them as equal
 * but a unique index does not, so rows with a NULL key value are left out,
 * matching what the index will enforce.
 */
#include <stdlib.h>

#include "internal.h"

typedef struct counts {
  long long groups, redundant;
} counts;

static int read_counts(void *ctx, int n, const char *const *v) {
  counts *c = ctx;
  (void)n;
  c->groups = v[0] ? atoll(v[0]) : 0;
  c->redundant = v[1] ? atoll(v[1]) : 0;
  return 1;
}

int nodup_count_duplicates(nodup_db *db, const char *table, const char *const *cols,
                           size_t ncols, const char *where, long long *groups,
                           long long *redundant) {
  nodup_table_info *t = NULL;
  char **key = NULL;
  counts c = {0, 0};
  buf q;
  size_t i;
  int rc;

  if (!db || !db->native || !table || !cols || !ncols) return NODUP_ERR_USAGE;
  nodup_clear_error(db);
  buf_init(&q);
  if ((rc = db->be->table_info(db, table, &t)) != NODUP_OK) goto done;
  if ((rc = table_info_key(db, t, cols, ncols, &key, NULL)) != NODUP_OK) goto done;
  if (where && !*where) where = NULL;
  if ((rc = userexpr_check(db, t, where, 0, "the key's predicate")) != NODUP_OK) goto done;
  buf_printf(&q, "SELECT count(*), coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM %s WHERE ",
             t->qualified);
  sql_key_filter(&q, key, ncols, where, 0, NULL);
  buf_puts(&q, " GROUP BY ");
  sql_key_names(&q, key, ncols, NULL);
  buf_puts(&q, " HAVING count(*) > 1) AS nodup_groups");
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, read_counts, &c);
done:
  if (groups) *groups = c.groups;
  if (redundant) *redundant = c.redundant;
  buf_free(&q);
  if (key)
    for (i = 0; i < ncols; i++) free(key[i]);
  free(key);
  table_info_free(t);
  return rc;
}

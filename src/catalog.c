/*
 * catalog.c -- the engine-neutral view of a table's schema.
 *
 * Each backend fills a nodup_table_info from its own catalog (pragmas on
 * SQLite, pg_catalog on PostgreSQL); the rest of the library reads only
 * this shape. Name comparison follows the engine: SQLite identifiers are
 * case-insensitive, PostgreSQL's quoted identifiers are exact.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

static void free_strings(char **v, size_t n) {
  size_t i;
  if (!v) return;
  for (i = 0; i < n; i++) free(v[i]);
  free(v);
}

void table_info_free(nodup_table_info *t) {
  size_t i;
  if (!t) return;
  free(t->name);
  free(t->qualified);
  free_strings(t->cols, t->ncols);
  free(t->types);
  free(t->notnull);
  free_strings(t->pk, t->npk);
  for (i = 0; i < t->nidx; i++) {
    free(t->idx[i].name);
    free(t->idx[i].constraint);
    free_strings(t->idx[i].cols, t->idx[i].ncols);
    free(t->idx[i].predicate);
  }
  free(t->idx);
  free(t);
}

int table_info_column(const nodup_db *db, const nodup_table_info *t,
                      const char *name) {
  size_t i;
  int fold = db->be == &nodup_sqlite_backend;
  for (i = 0; i < t->ncols; i++)
    if (fold ? strcasecmp(t->cols[i], name) == 0 : strcmp(t->cols[i], name) == 0)
      return (int)i;
  return -1;
}

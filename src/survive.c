/*
 * survive.c -- survivorship: which value a merged row keeps, per column
 * (nodup_merge_options.columns, "[TABLE.]COL=POLICY").
 *
 * Parsed and checked here, against the catalog, before a merge writes
 * anything; merge.c asks survive_find() for a level's columns and
 * survive_expr() for each one's window expression over the group's
 * members (the kept row and its losers).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

static const char *const policy_names[] = {"keeper", "first-non-null", "max", "min",
                                           "sum",    "longest",        "newest"};

void survive_free(survive_rule *r, size_t n) {
  size_t i;
  if (!r) return;
  for (i = 0; i < n; i++) {
    free(r[i].table);
    free(r[i].column);
    free(r[i].order);
  }
  free(r);
}

/* PostgreSQL types sum() cannot add (by OID): text and its kin, boolean,
 * dates and times, uuid, json, bytea. A domain or an unknown type passes:
 * the engine refuses it later if it must. */
static int known_not_numeric(const nodup_db *db, const nodup_table_info *t, int col) {
  static const unsigned pg_not_numeric[] = {16, 17, 18, 19, 25, 114, 1042, 1043, 1082,
                                            1083, 1114, 1184, 1266, 2950, 3802};
  size_t i;
  (void)db;
  /* Declared types classified (SQLite): only a boolean is surely not a number. */
  if (t->vclass) return t->vclass[col] == VALUE_BOOL;
  for (i = 0; t->types && i < sizeof pg_not_numeric / sizeof *pg_not_numeric; i++)
    if (t->types[col] == pg_not_numeric[i]) return 1;
  return 0;
}

/* PostgreSQL types with no max() or min() (by OID): boolean, json, jsonb. */
static int known_unordered(const nodup_db *db, const nodup_table_info *t, int col) {
  (void)db;
  if (!t->types) return 0;   /* OIDs are 0 where the engine has none (SQLite) */
  return t->types[col] == 16 || t->types[col] == 114 || t->types[col] == 3802;
}

/* Whether column `col` of t is one a policy may not change: the primary
 * key; the merge key (the merged table); any unique index's (another
 * table: they decide which of its rows collide). */
static const char *protected_column(const nodup_db *db, const nodup_table_info *t, int col,
                                    int merged, char *const *key, size_t nkey) {
  size_t i, j;
  for (i = 0; i < t->npk; i++)
    if (table_info_column(db, t, t->pk[i]) == col) return "the primary key";
  if (merged) {
    for (i = 0; i < nkey; i++)
      if (table_info_column(db, t, key[i]) == col) return "the merge key";
    return NULL;
  }
  for (i = 0; i < t->nidx; i++)
    for (j = 0; j < t->idx[i].ncols; j++)
      if (t->idx[i].cols[j] && table_info_column(db, t, t->idx[i].cols[j]) == col)
        return "a unique index";
  return NULL;
}

/* One spec into *r (its strings new). */
static int parse_one(nodup_db *db, const nodup_table_info *t, char *const *key, size_t nkey,
                     const char *spec, char *const *reach, size_t nreach,
                     survive_lookup_fn lookup, void *ctx, survive_rule *r) {
  const nodup_table_info *x = t;
  char *s = nodup_strdup(spec), *eq, *dot, *col, *tab, *pol, *arg = NULL, *end;
  const char *why;
  size_t i;
  int rc = NODUP_OK, c, p = -1, reached = 0;
  if (!s) return NODUP_ERR_NOMEM;
  if (!(eq = strchr(s, '='))) {
    rc = nodup_fail(db, NODUP_ERR_USAGE, "column policy \"%s\" is not COL=POLICY", spec);
    goto done;
  }
  /* Spaces around the parts are allowed ("bio = min"). */
  for (end = eq; end > s && end[-1] == ' ';) --end;
  *end = '\0';
  pol = eq + 1;
  while (*pol == ' ') pol++;
  for (end = pol + strlen(pol); end > pol && end[-1] == ' ';) *--end = '\0';
  if ((arg = strchr(pol, '('))) {
    *arg++ = '\0';
    if (!*arg || arg[strlen(arg) - 1] != ')') {
      rc = nodup_fail(db, NODUP_ERR_USAGE, "column policy \"%s\": newest(ORDERCOL) lacks its ')'",
                      spec);
      goto done;
    }
    arg[strlen(arg) - 1] = '\0';
    while (*arg == ' ') arg++;
    for (end = arg + strlen(arg); end > arg && end[-1] == ' ';) *--end = '\0';
  }
  for (i = 0; i < sizeof policy_names / sizeof *policy_names; i++)
    if (!strcasecmp(pol, policy_names[i])) p = (int)i;
  if (p < 0 || (p == SURVIVE_NEWEST) != (arg != NULL)) {
    rc = nodup_fail(db, NODUP_ERR_USAGE,
                    "column policy \"%s\": the policy is keeper, first-non-null, max, min, "
                    "sum, longest or newest(ORDERCOL)",
                    spec);
    goto done;
  }
  /* TABLE.COL: the table is what comes before the last dot (it may be
   * schema-qualified). */
  for (col = s; *col == ' ';) col++;
  if ((dot = strrchr(col, '.'))) {
    *dot = '\0';
    tab = col;
    col = dot + 1;
    if ((rc = lookup(ctx, tab, &x)) != NODUP_OK) {
      rc = nodup_fail(db, NODUP_ERR_USAGE, "column policy \"%s\": no table \"%s\"", spec, tab);
      goto done;
    }
  }
  for (i = 0; i < nreach; i++) reached |= !strcmp(reach[i], x->qualified);
  if (!reached) {
    rc = nodup_fail(db, NODUP_ERR_USAGE,
                    "column policy \"%s\": this merge merges no rows of %s (only %s and the "
                    "tables whose rows collide under a unique index once re-pointed)",
                    spec, x->qualified, t->qualified);
    goto done;
  }
  if ((c = table_info_column(db, x, col)) < 0) {
    rc = nodup_fail(db, NODUP_ERR_USAGE, "column policy \"%s\": table %s has no column \"%s\"",
                    spec, x->qualified, col);
    goto done;
  }
  if ((why = protected_column(db, x, c, x == t || !strcmp(x->qualified, t->qualified), key,
                              nkey))) {
    rc = nodup_fail(db, NODUP_ERR_USAGE,
                    "column policy \"%s\": \"%s\" is in %s of %s, which a merge never changes",
                    spec, x->cols[c], why, x->qualified);
    goto done;
  }
  if (p == SURVIVE_SUM && known_not_numeric(db, x, c)) {
    rc = nodup_fail(db, NODUP_ERR_USAGE, "column policy \"%s\": \"%s\" is not a number to sum",
                    spec, x->cols[c]);
    goto done;
  }
  if ((p == SURVIVE_MAX || p == SURVIVE_MIN) && known_unordered(db, x, c)) {
    rc = nodup_fail(db, NODUP_ERR_USAGE,
                    "column policy \"%s\": \"%s\" has no order for max or min (its type: "
                    "boolean or json)",
                    spec, x->cols[c]);
    goto done;
  }
  r->policy = p;
  if (arg) {
    int o = table_info_column(db, x, arg);
    if (o < 0) {
      rc = nodup_fail(db, NODUP_ERR_USAGE,
                      "column policy \"%s\": table %s has no column \"%s\" to order by", spec,
                      x->qualified, arg);
      goto done;
    }
    if (!(r->order = nodup_strdup(x->cols[o]))) rc = NODUP_ERR_NOMEM;
  }
  if (rc == NODUP_OK && (!(r->table = nodup_strdup(x->qualified)) ||
                         !(r->column = nodup_strdup(x->cols[c]))))
    rc = NODUP_ERR_NOMEM;
done:
  free(s);
  return rc;
}

int survive_parse(nodup_db *db, const nodup_table_info *t, char *const *key, size_t nkey,
                  const char *const *specs, size_t n, char *const *reach, size_t nreach,
                  survive_lookup_fn lookup, void *ctx, survive_rule **out, size_t *nout) {
  survive_rule *r;
  size_t i, j;
  int rc = NODUP_OK;
  *out = NULL;
  *nout = 0;
  if (!n) return NODUP_OK;
  if (!(r = calloc(n, sizeof *r))) return NODUP_ERR_NOMEM;
  for (i = 0; i < n && rc == NODUP_OK; i++) {
    rc = parse_one(db, t, key, nkey, specs[i] ? specs[i] : "", reach, nreach, lookup, ctx, &r[i]);
    for (j = 0; j < i && rc == NODUP_OK; j++)
      if (!strcmp(r[j].table, r[i].table) && !strcmp(r[j].column, r[i].column))
        rc = nodup_fail(db, NODUP_ERR_USAGE, "column policy \"%s\": %s.\"%s\" has one already",
                        specs[i], r[i].table, r[i].column);
  }
  if (rc != NODUP_OK) {
    survive_free(r, n);
    return rc;
  }
  *out = r;
  *nout = n;
  return NODUP_OK;
}

const survive_rule *survive_find(const survive_rule *r, size_t n, const nodup_table_info *x,
                                 const char *col) {
  size_t i;
  for (i = 0; i < n; i++)
    if (!strcmp(r[i].table, x->qualified) && !strcmp(r[i].column, col)) return &r[i];
  return NULL;
}

void survive_expr(buf *q, int policy, const char *v, const char *order, const char *part) {
  switch (policy) {
  case SURVIVE_MAX:
  case SURVIVE_MIN:
  case SURVIVE_SUM:
    buf_printf(q, "%s(%s) OVER (PARTITION BY %s)",
               policy == SURVIVE_MAX ? "max" : policy == SURVIVE_MIN ? "min" : "sum", v, part);
    break;
  case SURVIVE_LONGEST:
    buf_printf(q,
               "first_value(%s) OVER (PARTITION BY %s ORDER BY CASE WHEN %s IS NULL THEN 1 "
               "ELSE 0 END, length(CAST(%s AS TEXT)) DESC, s.nodup_rn)",
               v, part, v, v);
    break;
  case SURVIVE_NEWEST:
    buf_printf(q,
               "first_value(%s) OVER (PARTITION BY %s ORDER BY CASE WHEN %s IS NULL THEN 1 "
               "ELSE 0 END, %s DESC, s.nodup_rn)",
               v, part, order, order);
    break;
  default:   /* first-non-null: the kept row (rank 0) first, then `keep` order */
    buf_printf(q,
               "first_value(%s) OVER (PARTITION BY %s ORDER BY CASE WHEN %s IS NULL THEN 1 "
               "ELSE 0 END, s.nodup_rn)",
               v, part, v);
  }
}

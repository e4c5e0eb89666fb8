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
      if (keyterm_column(db, t, key[i]) == col) return "the merge key";
    return NULL;
  }
  for (i = 0; i < t->nidx; i++)
    for (j = 0; j < t->idx[i].ncols; j++)
      if (t->idx[i].cols[j] && table_info_column(db, t, t->idx[i].cols[j]) == col)
        return "a unique index";
  return NULL;
}

/* Trim spaces from both ends of s, in place. */
static char *trim(char *s) {
  char *end;
  while (*s == ' ') s++;
  for (end = s + strlen(s); end > s && end[-1] == ' ';) *--end = '\0';
  return s;
}

/* Split s (a copy of spec) into "[TABLE.]COL", the policy name and its
 * "(ARG)" (*arg NULL when none), in place. Spaces around the parts are
 * allowed ("bio = min"). */
static int split_spec(nodup_db *db, const char *spec, char *s, char **col, char **pol,
                      char **arg) {
  char *eq = strchr(s, '=');
  *arg = NULL;
  if (!eq) return nodup_fail(db, NODUP_ERR_USAGE, "column policy \"%s\" is not COL=POLICY", spec);
  *eq = '\0';
  *col = trim(s);
  *pol = trim(eq + 1);
  if ((*arg = strchr(*pol, '('))) {
    *(*arg)++ = '\0';
    if (!**arg || (*arg)[strlen(*arg) - 1] != ')')
      return nodup_fail(db, NODUP_ERR_USAGE,
                        "column policy \"%s\": newest(ORDERCOL) lacks its ')'", spec);
    (*arg)[strlen(*arg) - 1] = '\0';
    *arg = trim(*arg);
  }
  return NODUP_OK;
}

/* The policy named `pol` (SURVIVE_*), which takes an argument exactly when
 * it is newest; -1 with db's message set otherwise. */
static int policy_of(nodup_db *db, const char *spec, const char *pol, const char *arg) {
  size_t i;
  int p = -1;
  for (i = 0; i < sizeof policy_names / sizeof *policy_names; i++)
    if (!strcasecmp(pol, policy_names[i])) p = (int)i;
  if (p < 0 || (p == SURVIVE_NEWEST) != (arg != NULL)) {
    nodup_fail(db, NODUP_ERR_USAGE,
               "column policy \"%s\": the policy is keeper, first-non-null, max, min, "
               "sum, longest or newest(ORDERCOL)",
               spec);
    return -1;
  }
  return p;
}

/* TABLE.COL: the table is what comes before the last dot (it may be
 * schema-qualified), and must be one whose rows this merge merges. *col
 * is left at the column. */
static int spec_table(nodup_db *db, const nodup_table_info *t, const char *spec, char **col,
                      char *const *reach, size_t nreach, survive_lookup_fn lookup, void *ctx,
                      const nodup_table_info **x) {
  char *dot = strrchr(*col, '.');
  size_t i;
  int reached = 0;
  *x = t;
  if (dot) {
    *dot = '\0';
    if (lookup(ctx, *col, x) != NODUP_OK)
      return nodup_fail(db, NODUP_ERR_USAGE, "column policy \"%s\": no table \"%s\"", spec,
                        *col);
    *col = dot + 1;
  }
  for (i = 0; i < nreach; i++) reached |= !strcmp(reach[i], (*x)->qualified);
  if (!reached)
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "column policy \"%s\": this merge merges no rows of %s (only %s and the "
                      "tables whose rows collide under a unique index once re-pointed)",
                      spec, (*x)->qualified, t->qualified);
  return NODUP_OK;
}

/* Whether policy p may change column c of x: not a protected column, and
 * one the policy can compute on its type. */
static int check_column(nodup_db *db, const nodup_table_info *t, const nodup_table_info *x,
                        int c, int p, char *const *key, size_t nkey, const char *spec) {
  const char *why = protected_column(db, x, c, x == t || !strcmp(x->qualified, t->qualified),
                                     key, nkey);
  if (why)
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "column policy \"%s\": \"%s\" is in %s of %s, which a merge never changes",
                      spec, x->cols[c], why, x->qualified);
  if (p == SURVIVE_SUM && known_not_numeric(db, x, c))
    return nodup_fail(db, NODUP_ERR_USAGE, "column policy \"%s\": \"%s\" is not a number to sum",
                      spec, x->cols[c]);
  if ((p == SURVIVE_MAX || p == SURVIVE_MIN) && known_unordered(db, x, c))
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "column policy \"%s\": \"%s\" has no order for max or min (its type: "
                      "boolean or json)",
                      spec, x->cols[c]);
  return NODUP_OK;
}

/* One spec into *r (its strings new). */
static int parse_one(nodup_db *db, const nodup_table_info *t, char *const *key, size_t nkey,
                     const char *spec, char *const *reach, size_t nreach,
                     survive_lookup_fn lookup, void *ctx, survive_rule *r) {
  const nodup_table_info *x = t;
  char *s = nodup_strdup(spec), *col = NULL, *pol = NULL, *arg = NULL;
  int rc, c, p;
  if (!s) return NODUP_ERR_NOMEM;
  if ((rc = split_spec(db, spec, s, &col, &pol, &arg)) != NODUP_OK) goto done;
  if ((p = policy_of(db, spec, pol, arg)) < 0) {
    rc = NODUP_ERR_USAGE;
    goto done;
  }
  rc = spec_table(db, t, spec, &col, reach, nreach, lookup, ctx, &x);
  if (rc != NODUP_OK) goto done;
  if ((c = table_info_column(db, x, col)) < 0) {
    rc = nodup_fail(db, NODUP_ERR_USAGE, "column policy \"%s\": table %s has no column \"%s\"",
                    spec, x->qualified, col);
    goto done;
  }
  if ((rc = check_column(db, t, x, c, p, key, nkey, spec)) != NODUP_OK) goto done;
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

/*
 * slug.c -- insert a row with the next free slug, race-free and in a
 * constant number of statements at any number of copies.
 *
 * A slug key is a nodup key on (scope columns..., slug column): preparing
 * it finds the unique index that arbitrates (or refuses, with the DDL), and
 * its insert-if-absent statement (key.c) is exactly the insert we need:
 * `INSERT ... ON CONFLICT (scope..., slug) DO NOTHING RETURNING pk`. Each
 * attempt is one range query for the highest taken "<base>-<digits>" and
 * that insert. An insert that returns nothing lost a race: recompute from
 * a fresh query and go again. Any other failure stops at once: retrying on
 * the wrong constraint is how django-taggit #128 looped forever.
 *
 * Suffix arithmetic is done on decimal text, so no copy count overflows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SLUG_MAX_SCOPE 31

/* Rows the range query ranks and returns (see range_query). */
#define SLUG_TOP 32

/* The range queries of one call and their parameters. */
typedef struct slug_query {
  buf top;               /* the SLUG_TOP highest-ranked rows of the range */
  buf exact;             /* the highest-ranked copy, filtered by the database */
  const char *params[SLUG_MAX_SCOPE + 5];
  int ntop, nexact;      /* parameters of each (the exact one has one more) */
} slug_query;

/* The highest-ranked copy of the base among the rows of a range query:
 * "base" itself or the "base-<digits>" with the most digits, then the
 * greatest. */
typedef struct slug_top {
  buf slug;
  const char *base;
  size_t blen;
  unsigned seen;         /* rows the query returned, up to the copy found */
  int found;
} slug_top;

/* Is s the base itself or "base-" and digits without a leading zero? */
static int slug_is_copy(const char *s, const char *base, size_t blen) {
  if (strncmp(s, base, blen) != 0) return 0;
  if (s[blen] == '\0') return 1;
  if (s[blen] != '-' || s[blen + 1] < '1' || s[blen + 1] > '9') return 0;
  for (s += blen + 2; *s; s++)
    if (*s < '0' || *s > '9') return 0;
  return 1;
}

static int slug_top_row(void *ctx, int ncols, const char *const *vals) {
  slug_top *t = ctx;
  (void)ncols;
  t->seen++;
  if (!vals[0] || !slug_is_copy(vals[0], t->base, t->blen)) return 0;  /* "base-9x" */
  buf_reset(&t->slug);
  buf_puts(&t->slug, vals[0]);
  t->found = 1;
  return 1;
}

/* Add one to the decimal number in b (digits only), in place. */
static void decimal_increment(buf *b) {
  size_t i = b->len;
  while (i > 0) {
    if (b->p[i - 1] != '9') {
      b->p[i - 1]++;
      return;
    }
    b->p[--i] = '0';
  }
  /* All nines: 999 + 1 = 1000. */
  buf_putc(b, '0');
  if (!b->oom) b->p[0] = '1';
}

/*
 * A range query. Parameters: the non-NULL scope values, then base,
 * base + ".", base + "-1", base + "-:" and (exact only) strlen(base "-").
 * The index range [base, base.) holds the base and everything that starts
 * with it; of those, a suffix is in [base-1, base-:) (a '-' then a first
 * digit 1 to 9: ':' follows '9') and made of digits only. Rows sort by
 * length, then text, so the first copy is the highest suffix (equal
 * lengths of digits sort as numbers) or, failing any, the bare base.
 *
 * The `top` query returns the SLUG_TOP highest-ranked rows and the caller
 * keeps the first that is a copy: a row like "base-9x" can rank above it,
 * but only SLUG_TOP of them in a row send the caller to the `exact` query,
 * which has the database check every row for digits (on SQLite that check
 * costs four times the scan). Either reads every copy of the base in the
 * index (one range, no per-candidate probe): the cost per copy is small
 * but not zero. Unless the column already compares in byte order,
 * PostgreSQL compares in the C collation: in a linguistic one '-' is
 * ignored and the ranges would miss rows.
 */
static void range_query(buf *q, nodup_key *key, const char *const *scope_vals,
                        size_t nscope, int byte_order, int exact) {
  nodup_db *db = key->db;
  const char *col = key->cols[nscope];
  const char *c = byte_order ? "" : " COLLATE \"C\"";
  int p = 1, base;
  size_t i;
  buf s;

  buf_init(&s);
  sql_ident(&s, col);
  buf_puts(q, "SELECT ");
  buf_puts(q, buf_str(&s));
  buf_printf(q, " FROM %s WHERE ", key->table->qualified);
  for (i = 0; i < nscope; i++) {
    sql_ident(q, key->cols[i]);
    if (scope_vals[i]) {
      buf_puts(q, " = ");
      sql_param(q, db, p++);
    } else {
      buf_puts(q, " IS NULL");
    }
    buf_puts(q, " AND ");
  }
  base = p;
  buf_printf(q, "%s%s >= ", buf_str(&s), c);
  sql_param(q, db, base);
  buf_printf(q, " AND %s%s < ", buf_str(&s), c);
  sql_param(q, db, base + 1);
  buf_printf(q, " AND (%s = ", buf_str(&s));
  sql_param(q, db, base);
  buf_printf(q, " OR (%s%s >= ", buf_str(&s), c);
  sql_param(q, db, base + 2);
  buf_printf(q, " AND %s%s < ", buf_str(&s), c);
  sql_param(q, db, base + 3);
  if (exact) {
    buf_printf(q, " AND ltrim(substr(%s, CAST(", buf_str(&s));
    sql_param(q, db, base + 4);
    buf_puts(q, " AS INTEGER) + 1), '0123456789') = ''");
  }
  buf_printf(q, ")) ORDER BY length(%s) DESC, %s%s DESC LIMIT %d", buf_str(&s),
             buf_str(&s), c, exact ? 1 : SLUG_TOP);
  buf_free(&s);
}

/* Whether the slug column already compares in byte order (SQLite's BINARY;
 * on PostgreSQL the C or POSIX collation, named or as the database
 * default). Then the range needs no COLLATE "C", which would stop
 * PostgreSQL from using an index in the column's own collation. A catalog
 * read, not counted in the allocation's statements. */
static int byte_order(nodup_key *key, size_t nscope, int *out) {
  nodup_db *db = key->db;
  *out = 1;
  return db->be->byte_order ? db->be->byte_order(db, key->table, key->cols[nscope], out)
                            : NODUP_OK;
}

/* The next candidate from the query's top row: none -> base (base-2 when
 * reserved); the bare base -> base-2; base-N -> base-(N+1). */
static void next_candidate(buf *cand, const char *base, int reserved,
                           const slug_top *top) {
  size_t blen = strlen(base);
  buf_reset(cand);
  buf_puts(cand, base);
  if (!top->found) {
    if (reserved) buf_puts(cand, "-2");
  } else if (top->slug.len <= blen) {
    buf_puts(cand, "-2");
  } else {
    buf digits;
    buf_init(&digits);
    buf_puts(&digits, buf_str(&top->slug) + blen + 1);
    decimal_increment(&digits);
    buf_putc(cand, '-');
    buf_puts(cand, buf_str(&digits));
    if (digits.oom) cand->oom = 1;
    buf_free(&digits);
  }
}

/* Check what the caller passed; fills nothing. */
static int check_args(nodup_db *db, const char *table, const char *column,
                      const char *const *scope_cols, const char *const *scope_vals,
                      size_t nscope, const char *const *set_cols,
                      const char *const *set_vals, size_t nset, const char *from) {
  if (!table || !column || !from || (nscope && (!scope_cols || !scope_vals)) ||
      (nset && (!set_cols || !set_vals)))
    return nodup_fail(db, NODUP_ERR_USAGE, "slug_create: NULL argument");
  if (nscope > SLUG_MAX_SCOPE)
    return nodup_fail(db, NODUP_ERR_USAGE, "a slug has at most %d scope columns",
                      SLUG_MAX_SCOPE);
  return NODUP_OK;
}

/* One attempt: range query, then insert-if-absent. SQLite wraps both in
 * BEGIN IMMEDIATE so nobody inserts between them. Sets key->id when the
 * row was inserted, leaves it empty when the candidate was taken. */
static int attempt(nodup_key *key, key_shape *shape, const slug_query *sq,
                   const char **params, int np, size_t nscope, const char *base,
                   int reserved, buf *cand, slug_top *top, unsigned long *statements) {
  nodup_db *db = key->db;
  int lock_first = db_can(db, BE_CAP_WRITE_LOCK_FIRST);   /* range + insert, one lock */
  int owned = lock_first && !db->be->in_transaction(db);
  int rc;

  buf_reset(&key->id);
  if (lock_first) {
    ++*statements;
    if ((rc = db->be->exec(db, owned ? "BEGIN IMMEDIATE" : "SAVEPOINT nodup_slug")) !=
        NODUP_OK)
      return rc;
  }
  top->found = 0;
  top->seen = 0;
  ++*statements;
  rc = db->be->query(db, buf_str(&sq->top), sq->params, sq->ntop, slug_top_row, top);
  if (rc == NODUP_OK && !top->found && top->seen == SLUG_TOP) {
    ++*statements;
    rc = db->be->query(db, buf_str(&sq->exact), sq->params, sq->nexact, slug_top_row, top);
  }
  if (rc == NODUP_OK && top->slug.oom) rc = NODUP_ERR_NOMEM;
  if (rc == NODUP_OK) {
    next_candidate(cand, base, reserved, top);
    if (cand->oom) rc = NODUP_ERR_NOMEM;
  }
  if (rc == NODUP_OK) {
    params[nscope] = buf_str(cand);
    ++*statements;
    rc = db->be->run(db, shape->insert, params, np, key_store_id, key);
  }
  if (!lock_first) return rc;
  ++*statements;
  if (rc == NODUP_OK) {
    int crc = db->be->exec(db, owned ? "COMMIT" : "RELEASE nodup_slug");
    if (crc == NODUP_OK) return NODUP_OK;
    rc = crc;
  }
  db_rollback_sql(db, rc, owned ? "ROLLBACK" : "ROLLBACK TO nodup_slug; RELEASE nodup_slug");
  buf_reset(&key->id);
  return rc;
}

int nodup_slug_create(nodup_slug_result *out, nodup_db *db, const char *table,
                      const char *column, const char *const *scope_cols,
                      const char *const *scope_vals, size_t nscope,
                      const char *const *set_cols, const char *const *set_vals,
                      size_t nset, const char *from, const nodup_slug_options *opt) {
  size_t max = opt && opt->max_length ? opt->max_length : NODUP_SLUG_MAX_LENGTH;
  const char *cols[SLUG_MAX_SCOPE + 1];
  const char **params = NULL;
  nodup_key *key = NULL;
  key_shape *shape;
  char *base = NULL, lenbuf[32];
  buf dot, low, high, cand;
  slug_query sq;
  slug_top top;
  size_t i;
  int rc, nq = 0, reserved, pg_idle, bytes;

  if (!out) return db ? nodup_fail(db, NODUP_ERR_USAGE, "slug_create: NULL result")
                      : NODUP_ERR_USAGE;
  memset(out, 0, sizeof *out);
  if (db && opt && options_check(db, opt->version, NODUP_SLUG_OPTIONS_VERSION,
                                 "nodup_slug_options"))
    return NODUP_ERR_USAGE;
  if (!db || !db->native) return NODUP_ERR_USAGE;
  nodup_clear_error(db);
  buf_init(&sq.top);
  buf_init(&sq.exact);
  buf_init(&dot);
  buf_init(&low);
  buf_init(&high);
  buf_init(&cand);
  buf_init(&top.slug);
  rc = check_args(db, table, column, scope_cols, scope_vals, nscope, set_cols, set_vals,
                  nset, from);
  if (rc != NODUP_OK) goto done;

  if (!(base = malloc(max + 1))) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  rc = nodup_slugify(base, max + 1, from, opt);
  if (rc != NODUP_OK) {
    nodup_fail(db, rc, "cannot make a slug of the text (max_length %zu must be above %d%s)",
               max, NODUP_SLUG_SUFFIX_ROOM, rc == NODUP_ERR_USAGE ? ", and ICU must work" : "");
    goto done;
  }
  reserved = nodup_slug_is_reserved(base, opt);

  for (i = 0; i < nscope; i++) cols[i] = scope_cols[i];
  cols[nscope] = column;
  if ((rc = nodup_key_prepare(&key, db, table, cols, nscope + 1, NULL)) != NODUP_OK)
    goto done;
  for (i = 0; i < nscope; i++)
    if (!scope_vals[i] && !key->nulls_equal) {
      rc = nodup_fail(db, NODUP_ERR_NULL_KEY,
                      "table %s: scope column \"%s\" is NULL, and index %s treats "
                      "NULLs as distinct, so it cannot keep the slug unique",
                      key->table->qualified, key->cols[i], key->index);
      goto done;
    }

  /* Parameters of the insert: scope values, the candidate, the set values. */
  if (!(params = calloc(nscope + 1 + nset, sizeof *params))) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  for (i = 0; i < nscope; i++) params[i] = scope_vals[i];
  params[nscope] = base;  /* shape_get reads NULL-ness only */
  for (i = 0; i < nset; i++) params[nscope + 1 + i] = set_vals[i];
  if ((rc = key_shape_get(key, params, set_cols, nset, &shape)) != NODUP_OK) goto done;
  /* Scope and set values by their columns' types (SQLite); the slug
   * itself is text. */
  if ((rc = key_coerce(key, shape, (const char **)params, nscope + 1 + nset)) != NODUP_OK)
    goto done;

  /* The range queries and their parameters. */
  for (i = 0; i < nscope; i++)
    if (scope_vals[i]) sq.params[nq++] = scope_vals[i];
  buf_printf(&dot, "%s.", base);
  buf_printf(&low, "%s-1", base);
  buf_printf(&high, "%s-:", base);
  snprintf(lenbuf, sizeof lenbuf, "%zu", strlen(base) + 1);
  sq.params[nq++] = base;
  sq.params[nq++] = buf_str(&dot);
  sq.params[nq++] = buf_str(&low);
  sq.params[nq++] = buf_str(&high);
  sq.ntop = nq;
  sq.params[nq++] = lenbuf;
  sq.nexact = nq;
  top.base = base;
  top.blen = strlen(base);
  if ((rc = byte_order(key, nscope, &bytes)) != NODUP_OK) goto done;
  range_query(&sq.top, key, scope_vals, nscope, bytes, 0);
  range_query(&sq.exact, key, scope_vals, nscope, bytes, 1);
  if (sq.top.oom || sq.exact.oom || dot.oom || low.oom || high.oom) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }

  /* PostgreSQL outside a transaction: a serialization failure or deadlock
   * is ours to retry, like a lost race. */
  pg_idle = !db_can(db, BE_CAP_WRITE_LOCK_FIRST) && !db->be->in_transaction(db);
  for (out->attempts = 0; out->attempts < NODUP_SLUG_MAX_ATTEMPTS;) {
    out->attempts++;
    rc = attempt(key, shape, &sq, params, (int)(nscope + 1 + nset), nscope, base,
                 reserved, &cand, &top, &out->statements);
    if (rc == NODUP_ERR_RETRY && pg_idle) continue;
    if (rc != NODUP_OK || key->id.len) break;
  }
  if (rc == NODUP_OK && !key->id.len)
    rc = nodup_fail(db, NODUP_ERR_CONFLICT,
                    "table %s: %u inserts of a slug for \"%s\" in a row found their "
                    "candidate taken (last \"%s\") by a row the range query does not "
                    "see; does index %s compare the slug in another collation?",
                    key->table->qualified, out->attempts, base, buf_str(&cand),
                    key->index);
  if (rc != NODUP_OK) goto done;
  out->slug = nodup_strdup(buf_str(&cand));
  out->id = nodup_strdup(buf_str(&key->id));
  if (!out->slug || !out->id) rc = NODUP_ERR_NOMEM;

done:
  if (rc != NODUP_OK) {
    free(out->slug);
    free(out->id);
    out->slug = out->id = NULL;
  }
  nodup_key_free(key);
  free(params);
  free(base);
  buf_free(&sq.top);
  buf_free(&sq.exact);
  buf_free(&dot);
  buf_free(&low);
  buf_free(&high);
  buf_free(&cand);
  buf_free(&top.slug);
  return rc;
}

void nodup_slug_result_free(nodup_slug_result *out) {
  if (!out) return;
  free(out->slug);
  free(out->id);
  out->slug = out->id = NULL;
}

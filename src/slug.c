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

/* The ends of the ranges, appended to the base: see range_query. */
static const char *const slug_bound_suffix[] = {".", "-1", "-:"};
#define SLUG_NBOUNDS (sizeof slug_bound_suffix / sizeof *slug_bound_suffix)

/* The range queries of one call and their parameters. */
typedef struct slug_query {
  buf top;               /* the SLUG_TOP highest-ranked rows of the range */
  buf exact;             /* the highest-ranked copy, filtered by the database */
  buf bound[SLUG_NBOUNDS];   /* base + each slug_bound_suffix */
  char baselen[32];      /* strlen(base "-"), the exact query's last parameter */
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
  const char *c = byte_order ? "" : " COLLATE \"C\"";
  int p = 1, base;
  unsigned nulls = 0;
  size_t i;
  buf s;

  buf_init(&s);
  sql_key_term(&s, &key->terms[nscope], NULL);
  buf_puts(q, "SELECT ");
  buf_puts(q, buf_str(&s));
  buf_printf(q, " FROM %s WHERE ", key->table->qualified);
  /* The scope: only its non-NULL values are parameters. */
  for (i = 0; i < nscope; i++)
    if (!scope_vals[i]) nulls |= 1u << i;
  sql_key_match(q, db, key->terms, nscope, nulls, 1, NULL, &p);
  if (nscope) buf_puts(q, " AND ");
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

/* What one nodup_slug_create() call holds, released by call_free(). */
typedef struct slug_call {
  nodup_db *db;
  nodup_key *key;        /* (scope..., slug column) */
  key_shape *shape;      /* its insert-if-absent for the set columns */
  char *base;            /* the slug of the text */
  int reserved;          /* the base is a reserved word: start at base-2 */
  const char **params;   /* the insert's: scope values, candidate, set values */
  size_t nscope, np;
  slug_query sq;
  slug_top top;
  buf cand;              /* the candidate of the last attempt */
} slug_call;

static void call_init(slug_call *c, nodup_db *db, size_t nscope, size_t nset) {
  size_t i;
  memset(c, 0, sizeof *c);
  c->db = db;
  c->nscope = nscope;
  c->np = nscope + 1 + nset;
  buf_init(&c->sq.top);
  buf_init(&c->sq.exact);
  for (i = 0; i < SLUG_NBOUNDS; i++) buf_init(&c->sq.bound[i]);
  buf_init(&c->top.slug);
  buf_init(&c->cand);
}

static void call_free(slug_call *c) {
  size_t i;
  nodup_key_free(c->key);
  free(c->params);
  free(c->base);
  buf_free(&c->sq.top);
  buf_free(&c->sq.exact);
  for (i = 0; i < SLUG_NBOUNDS; i++) buf_free(&c->sq.bound[i]);
  buf_free(&c->top.slug);
  buf_free(&c->cand);
}

/* The base: the text slugified to at most `max` bytes, and whether it is
 * reserved. */
static int make_base(slug_call *c, const char *from, size_t max, const nodup_slug_options *opt) {
  int rc;
  if (!(c->base = malloc(max + 1))) return NODUP_ERR_NOMEM;
  rc = nodup_slugify(c->base, max + 1, from, opt);
  if (rc != NODUP_OK)
    return nodup_fail(c->db, rc,
                      "cannot make a slug of the text (max_length %zu must be above %d%s)",
                      max, NODUP_SLUG_SUFFIX_ROOM,
                      rc == NODUP_ERR_USAGE ? ", and ICU must work" : "");
  c->reserved = nodup_slug_is_reserved(c->base, opt);
  return NODUP_OK;
}

/* The key on (scope..., column): it must be backed, and a NULL scope value
 * is only safe when its index treats NULLs as equal. */
static int prepare_key(slug_call *c, const char *table, const char *column,
                       const char *const *scope_cols, const char *const *scope_vals) {
  const char *cols[SLUG_MAX_SCOPE + 1];
  size_t i;
  int rc;
  for (i = 0; i < c->nscope; i++) cols[i] = scope_cols[i];
  cols[c->nscope] = column;
  if ((rc = nodup_key_prepare(&c->key, c->db, table, cols, c->nscope + 1, NULL)) != NODUP_OK)
    return rc;
  for (i = 0; i < c->nscope; i++)
    if (!scope_vals[i] && !c->key->nulls_equal)
      return nodup_fail(c->db, NODUP_ERR_NULL_KEY,
                        "table %s: scope column \"%s\" is NULL, and index %s treats "
                        "NULLs as distinct, so it cannot keep the slug unique",
                        c->key->table->qualified, c->key->cols[i], c->key->index);
  return NODUP_OK;
}

/* The insert's statement (the key's shape for the set columns) and its
 * parameters: scope values, the candidate (the base until an attempt
 * sets it), the set values. */
static int prepare_insert(slug_call *c, const char *const *scope_vals,
                          const char *const *set_cols, const char *const *set_vals,
                          size_t nset) {
  size_t i, nscope = c->nscope;
  int rc;
  if (!(c->params = calloc(c->np, sizeof *c->params))) return NODUP_ERR_NOMEM;
  for (i = 0; i < nscope; i++) c->params[i] = scope_vals[i];
  c->params[nscope] = c->base;  /* shape_get reads NULL-ness only */
  for (i = 0; i < nset; i++) c->params[nscope + 1 + i] = set_vals[i];
  if ((rc = key_shape_get(c->key, c->params, set_cols, nset, &c->shape)) != NODUP_OK) return rc;
  /* Scope and set values by their columns' types (SQLite); the slug
   * itself is text. */
  return key_coerce(c->key, c->shape, c->params, c->np);
}

/* The range queries and their parameters (see range_query). */
static int prepare_ranges(slug_call *c, const char *const *scope_vals) {
  slug_query *sq = &c->sq;
  size_t i;
  int nq = 0, bytes, rc;
  for (i = 0; i < c->nscope; i++)
    if (scope_vals[i]) sq->params[nq++] = scope_vals[i];
  sq->params[nq++] = c->base;
  for (i = 0; i < SLUG_NBOUNDS; i++) {
    buf_printf(&sq->bound[i], "%s%s", c->base, slug_bound_suffix[i]);
    if (sq->bound[i].oom) return NODUP_ERR_NOMEM;
    sq->params[nq++] = buf_str(&sq->bound[i]);
  }
  sq->ntop = nq;
  snprintf(sq->baselen, sizeof sq->baselen, "%zu", strlen(c->base) + 1);
  sq->params[nq++] = sq->baselen;
  sq->nexact = nq;
  c->top.base = c->base;
  c->top.blen = strlen(c->base);
  if ((rc = byte_order(c->key, c->nscope, &bytes)) != NODUP_OK) return rc;
  range_query(&sq->top, c->key, scope_vals, c->nscope, bytes, 0);
  range_query(&sq->exact, c->key, scope_vals, c->nscope, bytes, 1);
  return sq->top.oom || sq->exact.oom ? NODUP_ERR_NOMEM : NODUP_OK;
}

/* Attempts until one inserts: a lost race goes again, as does, on
 * PostgreSQL outside a transaction, a serialization failure or deadlock
 * (ours to retry); anything else stops at once. */
static int insert_next_free(slug_call *c, nodup_slug_result *out) {
  nodup_db *db = c->db;
  int pg_idle = !db_can(db, BE_CAP_WRITE_LOCK_FIRST) && !db->be->in_transaction(db);
  int rc = NODUP_OK;
  for (out->attempts = 0; out->attempts < NODUP_SLUG_MAX_ATTEMPTS;) {
    out->attempts++;
    rc = attempt(c->key, c->shape, &c->sq, c->params, (int)c->np, c->nscope, c->base,
                 c->reserved, &c->cand, &c->top, &out->statements);
    if (rc == NODUP_ERR_RETRY && pg_idle) continue;
    if (rc != NODUP_OK || c->key->id.len) break;
  }
  if (rc == NODUP_OK && !c->key->id.len)
    rc = nodup_fail(db, NODUP_ERR_CONFLICT,
                    "table %s: %u inserts of a slug for \"%s\" in a row found their "
                    "candidate taken (last \"%s\") by a row the range query does not "
                    "see; does index %s compare the slug in another collation?",
                    c->key->table->qualified, out->attempts, c->base, buf_str(&c->cand),
                    c->key->index);
  return rc;
}

int nodup_slug_create(nodup_slug_result *out, nodup_db *db, const char *table,
                      const char *column, const char *const *scope_cols,
                      const char *const *scope_vals, size_t nscope,
                      const char *const *set_cols, const char *const *set_vals,
                      size_t nset, const char *from, const nodup_slug_options *opt) {
  size_t max = opt && opt->max_length ? opt->max_length : NODUP_SLUG_MAX_LENGTH;
  slug_call c;
  int rc;

  if (!out) return db ? nodup_fail(db, NODUP_ERR_USAGE, "slug_create: NULL result")
                      : NODUP_ERR_USAGE;
  memset(out, 0, sizeof *out);
  if (db && opt && options_check(db, opt->version, NODUP_SLUG_OPTIONS_VERSION,
                                 "nodup_slug_options"))
    return NODUP_ERR_USAGE;
  if (!db || !db->native) return NODUP_ERR_USAGE;
  nodup_clear_error(db);
  call_init(&c, db, nscope, nset);
  rc = check_args(db, table, column, scope_cols, scope_vals, nscope, set_cols, set_vals,
                  nset, from);
  if (rc == NODUP_OK) rc = make_base(&c, from, max, opt);
  if (rc == NODUP_OK) rc = prepare_key(&c, table, column, scope_cols, scope_vals);
  if (rc == NODUP_OK) rc = prepare_insert(&c, scope_vals, set_cols, set_vals, nset);
  if (rc == NODUP_OK) rc = prepare_ranges(&c, scope_vals);
  if (rc == NODUP_OK) rc = insert_next_free(&c, out);
  if (rc == NODUP_OK) {
    out->slug = nodup_strdup(buf_str(&c.cand));
    out->id = nodup_strdup(buf_str(&c.key->id));
    if (!out->slug || !out->id) rc = NODUP_ERR_NOMEM;
  }
  if (rc != NODUP_OK) {
    free(out->slug);
    free(out->id);
    out->slug = out->id = NULL;
  }
  call_free(&c);
  return rc;
}

void nodup_slug_result_free(nodup_slug_result *out) {
  if (!out) return;
  free(out->slug);
  free(out->id);
  out->slug = out->id = NULL;
}

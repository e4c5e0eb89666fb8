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
 * A prepared slug (struct nodup_slug) keeps all that between allocations:
 * the key and its insert, the range query of each pattern of NULL scope
 * values, the collation decision and a copy of the options, so that an
 * allocation is its statements and nothing else. nodup_slug_create() is a
 * handle used once; it runs its range query as text, since preparing a
 * statement for one use would cost PostgreSQL two more round trips
 * (PREPARE, DEALLOCATE).
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
 * A range query for scope values whose NULLs are the bits of `nulls`.
 * Parameters: the non-NULL scope values, then base,
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
static void range_query(buf *q, nodup_key *key, unsigned nulls, size_t nscope,
                        int byte_order, int exact) {
  nodup_db *db = key->db;
  const char *c = byte_order ? "" : " COLLATE \"C\"";
  int p = 1, base;
  buf s;

  buf_init(&s);
  sql_key_term(&s, &key->terms[nscope], NULL);
  buf_puts(q, "SELECT ");
  buf_puts(q, buf_str(&s));
  buf_printf(q, " FROM %s WHERE ", key->table->qualified);
  /* The scope: only its non-NULL values are parameters. */
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
  if (s.oom) q->oom = 1;  /* else the text would lack the column */
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


/* The range queries for one pattern of NULL scope values (see range_query). */
typedef struct slug_ranges {
  unsigned nulls;        /* bit i: scope value i is NULL */
  int ntop;              /* the top query's parameters (the exact one has one more) */
  buf top, exact;        /* their text */
  nodup_stmt *top_stmt;  /* the top query prepared; NULL in a one-shot handle */
} slug_ranges;

/* One allocation's range query parameters: the non-NULL scope values,
 * base, base + each slug_bound_suffix and (exact only) strlen(base "-"). */
typedef struct slug_query {
  buf bound[SLUG_NBOUNDS];
  char baselen[32];
  const char *params[SLUG_MAX_SCOPE + 5];
} slug_query;

struct nodup_slug {
  nodup_db *db;
  nodup_key *key;          /* (scope..., slug column) */
  size_t nscope, nset;
  size_t np;               /* the insert's parameters: nscope + 1 + nset */
  char **set_cols;         /* copied */
  nodup_slug_options opt;  /* copied; fallback and reserved point at ours */
  char *fallback;
  char **reserved;
  size_t nreserved;
  size_t max;              /* the longest slug (opt.max_length or its default) */
  int one_shot;            /* nodup_slug_create's: nothing prepared for the range */
  int byte_order;          /* the slug column compares bytes; -1 until asked */
  slug_ranges *ranges;     /* built on first use, one per pattern of NULLs */
  size_t nranges;
  /* One allocation's working space, reused by the next. */
  char *base;              /* the slug of the text, max + 1 bytes */
  int base_reserved;       /* the base is a reserved word: start at base-2 */
  const char **params;     /* the insert's: scope values, candidate, set values */
  slug_query sq;
  slug_top top;
  buf cand;                /* the candidate of the last attempt */
};

/* Check what the caller passed: `missing` is whether a needed pointer is
 * NULL; `what` names the call in the message. */
static int check_args(nodup_db *db, const char *what, int missing, size_t nscope) {
  if (missing) return nodup_fail(db, NODUP_ERR_USAGE, "%s: NULL argument", what);
  if (nscope > SLUG_MAX_SCOPE)
    return nodup_fail(db, NODUP_ERR_USAGE, "a slug has at most %d scope columns",
                      SLUG_MAX_SCOPE);
  return NODUP_OK;
}

/* The first checks of a call given a connection and options: options of
 * a version this library knows, an open connection, whose last error then
 * goes. */
static int check_db(nodup_db *db, const nodup_slug_options *opt) {
  if (db && opt && options_check(db, opt->version, NODUP_SLUG_OPTIONS_VERSION,
                                 "nodup_slug_options"))
    return NODUP_ERR_USAGE;
  if (!db || !db->native) return NODUP_ERR_USAGE;
  nodup_clear_error(db);
  return NODUP_OK;
}

/* Copy the options into s, with their strings: the caller's may go once
 * the handle is made. A `reserved` list of no words stays a list. */
static int copy_options(nodup_slug *s, const nodup_slug_options *opt) {
  size_t i;
  if (!opt) return NODUP_OK;
  s->opt = *opt;
  s->opt.fallback = NULL;
  s->opt.reserved = NULL;
  if (opt->fallback && !(s->opt.fallback = s->fallback = nodup_strdup(opt->fallback)))
    return NODUP_ERR_NOMEM;
  if (!opt->reserved) return NODUP_OK;
  if (!(s->reserved = calloc(opt->nreserved ? opt->nreserved : 1, sizeof *s->reserved)))
    return NODUP_ERR_NOMEM;
  s->nreserved = opt->nreserved;
  s->opt.reserved = (const char *const *)s->reserved;
  for (i = 0; i < opt->nreserved; i++)
    if (opt->reserved[i] && !(s->reserved[i] = nodup_strdup(opt->reserved[i])))
      return NODUP_ERR_NOMEM;
  return NODUP_OK;
}

/* A new handle on db, counted on it from here on (nodup_slug_free
 * releases whatever part of it was made), with copies of the set columns
 * and options; nothing asked of the database yet. */
static int slug_new(nodup_slug **out, nodup_db *db, size_t nscope,
                    const char *const *set_cols, size_t nset, const nodup_slug_options *opt) {
  nodup_slug *s = calloc(1, sizeof *s);
  size_t i;
  int rc;
  *out = s;
  if (!s) return NODUP_ERR_NOMEM;
  s->db = db;
  db->nkeys++;   /* nodup_close waits for it, as for a key: see there */
  s->nscope = nscope;
  s->nset = nset;
  s->np = nscope + 1 + nset;
  s->byte_order = -1;
  for (i = 0; i < SLUG_NBOUNDS; i++) buf_init(&s->sq.bound[i]);
  buf_init(&s->top.slug);
  buf_init(&s->cand);
  if ((rc = copy_options(s, opt)) != NODUP_OK) return rc;
  s->max = s->opt.max_length ? s->opt.max_length : NODUP_SLUG_MAX_LENGTH;
  if (!(s->base = malloc(s->max + 1)) || !(s->params = calloc(s->np, sizeof *s->params)) ||
      (nset && !(s->set_cols = calloc(nset, sizeof *s->set_cols))))
    return NODUP_ERR_NOMEM;
  for (i = 0; i < nset; i++)
    if (set_cols[i] && !(s->set_cols[i] = nodup_strdup(set_cols[i]))) return NODUP_ERR_NOMEM;
  return NODUP_OK;
}

/* The key on (scope..., column): it must be backed. */
static int open_key(nodup_slug *s, const char *table, const char *column,
                    const char *const *scope_cols) {
  const char *cols[SLUG_MAX_SCOPE + 1];
  size_t i;
  for (i = 0; i < s->nscope; i++) cols[i] = scope_cols[i];
  cols[s->nscope] = column;
  return nodup_key_prepare(&s->key, s->db, table, cols, s->nscope + 1, NULL);
}

/* The base: the text slugified to at most s->max bytes, and whether it is
 * reserved. */
static int make_base(nodup_slug *s, const char *from) {
  int rc = nodup_slugify(s->base, s->max + 1, from, &s->opt);
  if (rc != NODUP_OK)
    return nodup_fail(s->db, rc,
                      "cannot make a slug of the text (max_length %zu must be above %d%s)",
                      s->max, NODUP_SLUG_SUFFIX_ROOM,
                      rc == NODUP_ERR_USAGE ? ", and ICU must work" : "");
  s->base_reserved = nodup_slug_is_reserved(s->base, &s->opt);
  return NODUP_OK;
}

/* The range queries for scope values with NULLs `nulls`, made on first
 * use: the collation asked once per handle, the top query prepared unless
 * the handle is one-shot (the exact one, rarely needed, runs as text). */
static int ranges_get(nodup_slug *s, unsigned nulls, slug_ranges **out) {
  nodup_db *db = s->db;
  slug_ranges *r;
  size_t i;
  int rc = NODUP_OK, bytes;

  for (i = 0; i < s->nranges; i++)
    if (s->ranges[i].nulls == nulls) {
      *out = &s->ranges[i];
      return NODUP_OK;
    }
  if (s->byte_order < 0) {
    if ((rc = byte_order(s->key, s->nscope, &bytes)) != NODUP_OK) return rc;
    s->byte_order = bytes;
  }
  if (!(r = realloc(s->ranges, (s->nranges + 1) * sizeof *r))) return NODUP_ERR_NOMEM;
  s->ranges = r;
  r = &s->ranges[s->nranges];
  memset(r, 0, sizeof *r);
  r->nulls = nulls;
  r->ntop = 4;
  for (i = 0; i < s->nscope; i++) r->ntop += !(nulls & (1u << i));
  buf_init(&r->top);
  buf_init(&r->exact);
  range_query(&r->top, s->key, nulls, s->nscope, s->byte_order, 0);
  range_query(&r->exact, s->key, nulls, s->nscope, s->byte_order, 1);
  if (r->top.oom || r->exact.oom) rc = NODUP_ERR_NOMEM;
  else if (!s->one_shot) rc = db->be->prepare(db, buf_str(&r->top), r->ntop, NULL, &r->top_stmt);
  if (rc != NODUP_OK) {
    buf_free(&r->top);
    buf_free(&r->exact);
    return rc;
  }
  s->nranges++;
  *out = r;
  return NODUP_OK;
}

/* This allocation's range parameters (the layout range_query documents):
 * `scope` the scope values as the insert binds them. */
static int ranges_params(nodup_slug *s, const char *const *scope) {
  slug_query *sq = &s->sq;
  size_t i;
  int nq = 0;
  for (i = 0; i < s->nscope; i++)
    if (scope[i]) sq->params[nq++] = scope[i];
  sq->params[nq++] = s->base;
  for (i = 0; i < SLUG_NBOUNDS; i++) {
    buf_reset(&sq->bound[i]);
    buf_printf(&sq->bound[i], "%s%s", s->base, slug_bound_suffix[i]);
    if (sq->bound[i].oom) return NODUP_ERR_NOMEM;
    sq->params[nq++] = buf_str(&sq->bound[i]);
  }
  snprintf(sq->baselen, sizeof sq->baselen, "%zu", strlen(s->base) + 1);
  sq->params[nq] = sq->baselen;
  s->top.base = s->base;
  s->top.blen = strlen(s->base);
  return NODUP_OK;
}

/* One attempt: range query, then insert-if-absent. SQLite wraps both in
 * BEGIN IMMEDIATE so nobody inserts between them. Sets key->id when the
 * row was inserted, leaves it empty when the candidate was taken. */
static int attempt(nodup_slug *s, const key_shape *shape, const slug_ranges *r,
                   unsigned long *statements) {
  nodup_db *db = s->db;
  nodup_key *key = s->key;
  const char *const *rp = s->sq.params;
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
  s->top.found = 0;
  s->top.seen = 0;
  ++*statements;
  rc = r->top_stmt ? db->be->run(db, r->top_stmt, rp, r->ntop, slug_top_row, &s->top)
                   : db->be->query(db, buf_str(&r->top), rp, r->ntop, slug_top_row, &s->top);
  if (rc == NODUP_OK && !s->top.found && s->top.seen == SLUG_TOP) {
    ++*statements;
    rc = db->be->query(db, buf_str(&r->exact), rp, r->ntop + 1, slug_top_row, &s->top);
  }
  if (rc == NODUP_OK && s->top.slug.oom) rc = NODUP_ERR_NOMEM;
  if (rc == NODUP_OK) {
    next_candidate(&s->cand, s->base, s->base_reserved, &s->top);
    if (s->cand.oom) rc = NODUP_ERR_NOMEM;
  }
  if (rc == NODUP_OK) {
    s->params[s->nscope] = buf_str(&s->cand);
    ++*statements;
    rc = db->be->run(db, shape->insert, s->params, (int)s->np, key_store_id, key);
    /* An id that did not fit in memory is not a lost race: retrying would
     * insert a second row. */
    if (rc == NODUP_OK && key->id.oom) rc = NODUP_ERR_NOMEM;
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

/* Attempts until one inserts: a lost race goes again, as does, on
 * PostgreSQL outside a transaction, a serialization failure or deadlock
 * (ours to retry); anything else stops at once. */
static int insert_next_free(nodup_slug *s, const key_shape *shape, const slug_ranges *r,
                            nodup_slug_result *out) {
  nodup_db *db = s->db;
  nodup_key *key = s->key;
  int pg_idle = !db_can(db, BE_CAP_WRITE_LOCK_FIRST) && !db->be->in_transaction(db);
  int rc = NODUP_OK;
  for (out->attempts = 0; out->attempts < NODUP_SLUG_MAX_ATTEMPTS;) {
    out->attempts++;
    rc = attempt(s, shape, r, &out->statements);
    if (rc == NODUP_ERR_RETRY && pg_idle) continue;
    if (rc != NODUP_OK || key->id.len) break;
  }
  if (rc == NODUP_OK && !key->id.len)
    rc = nodup_fail(db, NODUP_ERR_CONFLICT,
                    "table %s: %u inserts of a slug for \"%s\" in a row found their "
                    "candidate taken (last \"%s\") by a row the range query does not "
                    "see; does index %s compare the slug in another collation?",
                    key->table->qualified, out->attempts, s->base, buf_str(&s->cand),
                    key->index);
  return rc;
}

/* The insert's statement (the key's shape for the set columns) for
 * scope values with NULLs where s->params has them. */
static int insert_shape(nodup_slug *s, key_shape **shape) {
  return key_shape_get(s->key, s->params, (const char *const *)s->set_cols, s->nset, shape);
}

/* One allocation, its base made: the scope's NULLs checked, the insert's
 * values (converted by their columns' types on SQLite; the slug itself is
 * text), the range queries, the attempts, the result's strings. */
static int allocate(nodup_slug_result *out, nodup_slug *s, const char *const *scope_vals,
                    const char *const *set_vals) {
  key_shape *shape;
  slug_ranges *r;
  unsigned nulls = 0;
  size_t i;
  int rc;

  for (i = 0; i < s->nscope; i++) {
    if (scope_vals[i]) continue;
    /* A NULL scope value is only safe when the index treats NULLs as equal. */
    if (!s->key->nulls_equal)
      return nodup_fail(s->db, NODUP_ERR_NULL_KEY,
                        "table %s: scope column \"%s\" is NULL, and index %s treats "
                        "NULLs as distinct, so it cannot keep the slug unique",
                        s->key->table->qualified, s->key->cols[i], s->key->index);
    nulls |= 1u << i;
  }
  for (i = 0; i < s->nscope; i++) s->params[i] = scope_vals[i];
  s->params[s->nscope] = s->base;  /* shape_get reads NULL-ness only */
  for (i = 0; i < s->nset; i++) s->params[s->nscope + 1 + i] = set_vals[i];
  if ((rc = insert_shape(s, &shape)) != NODUP_OK) return rc;
  if ((rc = key_coerce(s->key, shape, s->params, s->np)) != NODUP_OK) return rc;
  if ((rc = ranges_get(s, nulls, &r)) != NODUP_OK) return rc;
  /* The range compares the scope values the insert writes. */
  if ((rc = ranges_params(s, s->params)) != NODUP_OK) return rc;
  if ((rc = insert_next_free(s, shape, r, out)) != NODUP_OK) return rc;
  out->slug = nodup_strdup(buf_str(&s->cand));
  out->id = nodup_strdup(buf_str(&s->key->id));
  return out->slug && out->id ? NODUP_OK : NODUP_ERR_NOMEM;
}

int nodup_slug_prepare(nodup_slug **out, nodup_db *db, const char *table, const char *column,
                       const char *const *scope_cols, size_t nscope,
                       const char *const *set_cols, size_t nset,
                       const nodup_slug_options *opt) {
  size_t max = opt && opt->max_length ? opt->max_length : NODUP_SLUG_MAX_LENGTH, i;
  nodup_slug *s = NULL;
  key_shape *shape;
  slug_ranges *r;
  int rc;

  if (!out) return db ? nodup_fail(db, NODUP_ERR_USAGE, "slug_prepare: NULL handle")
                      : NODUP_ERR_USAGE;
  *out = NULL;
  if ((rc = check_db(db, opt)) != NODUP_OK) return rc;
  rc = check_args(db, "slug_prepare",
                  !table || !column || (nscope && !scope_cols) || (nset && !set_cols), nscope);
  if (rc == NODUP_OK && max <= NODUP_SLUG_SUFFIX_ROOM)
    rc = nodup_fail(db, NODUP_ERR_USAGE, "slug_prepare: max_length %zu must be above %d", max,
                    NODUP_SLUG_SUFFIX_ROOM);
  if (rc == NODUP_OK) rc = slug_new(&s, db, nscope, set_cols, nset, opt);
  if (rc == NODUP_OK) rc = open_key(s, table, column, scope_cols);
  /* The statements for scope values without NULLs, now: a set column the
   * table lacks is refused here, and the first allocation costs what the
   * others do. */
  for (i = 0; rc == NODUP_OK && i < s->np; i++) s->params[i] = "";
  if (rc == NODUP_OK) rc = insert_shape(s, &shape);
  if (rc == NODUP_OK) rc = ranges_get(s, 0, &r);
  if (rc != NODUP_OK) {
    nodup_slug_free(s);
    return rc;
  }
  *out = s;
  return NODUP_OK;
}

int nodup_slug_next(nodup_slug_result *out, nodup_slug *s, const char *const *scope_vals,
                    const char *const *set_vals, const char *from) {
  int rc;
  if (!out) return s ? nodup_fail(s->db, NODUP_ERR_USAGE, "slug_next: NULL result")
                     : NODUP_ERR_USAGE;
  memset(out, 0, sizeof *out);
  if (!s) return NODUP_ERR_USAGE;
  nodup_clear_error(s->db);
  rc = check_args(s->db, "slug_next",
                  !from || (s->nscope && !scope_vals) || (s->nset && !set_vals), 0);
  if (rc == NODUP_OK) rc = make_base(s, from);
  if (rc == NODUP_OK) rc = allocate(out, s, scope_vals, set_vals);
  if (rc != NODUP_OK) nodup_slug_result_free(out);
  return rc;
}

void nodup_slug_free(nodup_slug *s) {
  nodup_db *db;
  size_t i;
  if (!s) return;
  db = s->db;
  for (i = 0; i < s->nranges; i++) {
    if (s->ranges[i].top_stmt) db->be->finalize(db, s->ranges[i].top_stmt);
    buf_free(&s->ranges[i].top);
    buf_free(&s->ranges[i].exact);
  }
  free(s->ranges);
  nodup_key_free(s->key);  /* never the last count on db: ours is below */
  strv_free(s->set_cols, s->nset);
  free(s->fallback);
  strv_free(s->reserved, s->nreserved);
  free(s->base);
  free(s->params);
  for (i = 0; i < SLUG_NBOUNDS; i++) buf_free(&s->sq.bound[i]);
  buf_free(&s->top.slug);
  buf_free(&s->cand);
  free(s);
  if (--db->nkeys == 0 && db->closing) nodup_close(db);
}

/* A handle used once: its range query runs as text (see the top). The
 * steps keep the order of the checks, and so the errors, of a call that
 * prepared nothing: arguments, the text's slug, the key, then each value. */
int nodup_slug_create(nodup_slug_result *out, nodup_db *db, const char *table,
                      const char *column, const char *const *scope_cols,
                      const char *const *scope_vals, size_t nscope,
                      const char *const *set_cols, const char *const *set_vals,
                      size_t nset, const char *from, const nodup_slug_options *opt) {
  nodup_slug *s = NULL;
  int rc;

  if (!out) return db ? nodup_fail(db, NODUP_ERR_USAGE, "slug_create: NULL result")
                      : NODUP_ERR_USAGE;
  memset(out, 0, sizeof *out);
  if ((rc = check_db(db, opt)) != NODUP_OK) return rc;
  rc = check_args(db, "slug_create",
                  !table || !column || !from || (nscope && (!scope_cols || !scope_vals)) ||
                      (nset && (!set_cols || !set_vals)),
                  nscope);
  if (rc == NODUP_OK) rc = slug_new(&s, db, nscope, set_cols, nset, opt);
  if (rc == NODUP_OK) {
    s->one_shot = 1;
    rc = make_base(s, from);
  }
  if (rc == NODUP_OK) rc = open_key(s, table, column, scope_cols);
  if (rc == NODUP_OK) rc = allocate(out, s, scope_vals, set_vals);
  if (rc != NODUP_OK) nodup_slug_result_free(out);
  nodup_slug_free(s);
  return rc;
}

void nodup_slug_result_free(nodup_slug_result *out) {
  if (!out) return;
  free(out->slug);
  free(out->id);
  out->slug = out->id = NULL;
}

/*
 * getorcreate_many.c -- get-or-create for many keys in one call: two
 * statements whatever the number of keys.
 *
 * The rows arrive as one relation (the backend's many_input: arrays
 * unnested on PostgreSQL, a JSON array on SQLite) and the call is the
 * single key's round made set-based:
 *
 *   INSERT INTO t (cols) SELECT ... FROM input
 *     WHERE NOT EXISTS (the key's row)      -- a hit evaluates no default
 *     ORDER BY key, input order             -- see below
 *     ON CONFLICT (key) DO NOTHING          -- the loser's violation, only
 *     RETURNING pk
 *   SELECT input order, pk FROM input JOIN t ON key
 *
 * The lookup is a statement of its own, so under READ COMMITTED its
 * snapshot sees rows a concurrent winner committed after the insert's
 * began. A row is ours (created) when the insert returned its id; a key
 * repeated in the input is created for its first occurrence only.
 *
 * The insert takes its rows in key order: two batches that share keys
 * then wait on each other's keys in the same order instead of each
 * holding one the other wants (a deadlock, retried but slow).
 *
 * On PostgreSQL, in the call's own transaction, the insert is first a
 * plain one: no ON CONFLICT, whose speculative insertion per row made the
 * call take 1.1-1.3x as long (10,000 keys, half new: docs/BENCHMARKS.md),
 * and DISTINCT ON the key, so a repeated key is inserted once, for its
 * first occurrence. With no other writer of the batch's keys it inserts
 * every missing key; otherwise it fails as a whole, leaves nothing, and
 * the round runs again as above: one round trip more, only then
 * (db_pg.c). Inside the caller's transaction the round is always the one
 * above: a failed statement would abort the caller's work.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- statements ---- */

/* "nodup_in.nodup_c<i+1>", wrapped as key term `term` wraps a column. */
static void input_term(buf *q, const key_term *term, size_t i) {
  sql_key_term_open(q, term);
  buf_printf(q, "nodup_in.nodup_c%zu", i + 1);
  sql_key_term_close(q, term);
}

/* The key of table alias `alias` equals the input row's. */
static void match_input(buf *q, const nodup_key *key, const char *alias) {
  size_t i;
  for (i = 0; i < key->ncols; i++) {
    if (i) buf_puts(q, " AND ");
    sql_key_term(q, &key->terms[i], alias);
    buf_puts(q, " = ");
    input_term(q, &key->terms[i], i);
  }
  if (key->where) buf_printf(q, " AND (%s)", key->where);
}

/* plain: the insert for a round that expects no other writer of its keys
 * (see many_build): no ON CONFLICT, which costs PostgreSQL a speculative
 * insertion per row, and each missing key's first row alone. */
static void insert_sql(buf *q, const nodup_key *key, char *const *dcols, size_t n,
                       const char *input, int plain) {
  const nodup_table_info *t = key->table;
  size_t i;
  buf_printf(q, "INSERT INTO %s (", t->qualified);
  sql_key_columns(q, key->terms, key->ncols);   /* lower(email) inserts email */
  for (i = key->ncols; i < n; i++) {
    buf_puts(q, ", ");
    sql_ident(q, dcols[i - key->ncols]);
  }
  buf_puts(q, ") SELECT ");
  if (plain) {
    buf_puts(q, "DISTINCT ON (");
    for (i = 0; i < key->ncols; i++) {
      if (i) buf_puts(q, ", ");
      input_term(q, &key->terms[i], i);
    }
    buf_puts(q, ") ");
  }
  for (i = 0; i < n; i++) buf_printf(q, "%snodup_in.nodup_c%zu", i ? ", " : "", i + 1);
  buf_printf(q, " FROM %s WHERE NOT EXISTS (SELECT 1 FROM %s AS nodup_old WHERE ", input,
             t->qualified);
  match_input(q, key, "nodup_old");
  buf_puts(q, ") ORDER BY ");
  for (i = 0; i < key->ncols; i++) {
    input_term(q, &key->terms[i], i);
    buf_puts(q, ", ");
  }
  buf_puts(q, "nodup_in.nodup_ord");
  if (plain) key_returning(q, key);
  else key_insert_tail(q, key);
}

static void lookup_sql(buf *q, const nodup_key *key, const char *input) {
  size_t i;
  buf_puts(q, "SELECT nodup_in.nodup_ord");
  for (i = 0; i < key->table->npk; i++) {
    buf_puts(q, ", nodup_t.");
    sql_ident(q, key->table->pk[i]);
  }
  buf_printf(q, " FROM %s JOIN %s AS nodup_t ON ", input, key->table->qualified);
  match_input(q, key, "nodup_t");
}

/* The insert reads every column given, the lookup the key's alone.
 *
 * Where the engine has DISTINCT ON (PostgreSQL), a plain insert too: its
 * rounds in their own transaction try it first, since a writer of the
 * same keys is rare and ON CONFLICT's speculative insertion per row made
 * the call take 1.1-1.3x as long (docs/BENCHMARKS.md). A concurrent
 * winner then makes it fail as a whole (a unique violation), and the
 * round runs again with ON CONFLICT (db_pg.c). SQLite needs no such
 * thing: its insert runs under the write lock, where ON CONFLICT only
 * meets the batch's own repeats. */
int many_build(nodup_key *key, key_shape *s, char *const *dcols, size_t nd) {
  nodup_db *db = key->db;
  size_t n = key->ncols + nd;
  unsigned *types = calloc(n + 1, sizeof *types);
  buf input, q;
  int rc;

  if (!types) return NODUP_ERR_NOMEM;
  buf_init(&input);
  buf_init(&q);
  rc = db->be->many_input(db, key->table, s->pcol, n, n, &input, types, &s->nparams);
  if (rc == NODUP_OK) {
    insert_sql(&q, key, dcols, n, buf_str(&input), 0);
    rc = q.oom || input.oom ? NODUP_ERR_NOMEM
                            : db->be->prepare(db, buf_str(&q), s->nparams, types, &s->insert);
  }
  if (rc == NODUP_OK && db_can(db, BE_CAP_DISTINCT_ON)) {
    buf_reset(&q);
    insert_sql(&q, key, dcols, n, buf_str(&input), 1);
    rc = q.oom ? NODUP_ERR_NOMEM
               : db->be->prepare(db, buf_str(&q), s->nparams, types, &s->plain);
  }
  buf_reset(&input);
  buf_reset(&q);
  if (rc == NODUP_OK)
    rc = db->be->many_input(db, key->table, s->pcol, key->ncols, n, &input, types, &s->nlookup);
  if (rc == NODUP_OK) {
    lookup_sql(&q, key, buf_str(&input));
    rc = q.oom || input.oom ? NODUP_ERR_NOMEM
                            : db->be->prepare(db, buf_str(&q), s->nlookup, types, &s->lookup);
  }
  buf_free(&q);
  buf_free(&input);
  free(types);
  return rc;
}

/* ---- one call's rows ---- */

/* Ids are kept as text in two arenas (a buf each), found by offset: a
 * call of 10,000 keys would otherwise make 15,000 small allocations. An
 * offset is stored plus one, so 0 means none. */
typedef struct many_call {
  nodup_key *key;
  size_t nrows;
  buf found;          /* the ids the lookups returned */
  size_t *found_at;   /* per input row: its id's offset in `found` + 1 */
  size_t nfound;
  buf ins;            /* the ids our inserts returned */
  size_t *ins_at;     /* each one's offset in `ins` + 1 */
  size_t nins, cap;
  size_t kept;        /* of which the first `kept` came from rounds that
                       * committed or are the caller's (not rolled back) */
  int outside;        /* a returned row is outside the key's predicate */
  int oom;
} many_call;

/* Append the primary key's values joined by ',' (key_store_id's
 * spelling) and a NUL to b; returns its offset + 1, 0 when out of memory. */
static size_t id_append(buf *b, const char *const *v, size_t npk) {
  size_t i, at = b->len;
  for (i = 0; i < npk; i++) {
    if (i) buf_putc(b, ',');
    if (v[i]) buf_puts(b, v[i]);
  }
  buf_putn(b, "", 1);
  return b->oom ? 0 : at + 1;
}

static int on_inserted(void *ctx, int n, const char *const *v) {
  many_call *c = ctx;
  size_t npk = c->key->table->npk;
  if ((size_t)n < npk) return 0;
  if ((size_t)n > npk && (!v[npk] || !strcmp(v[npk], "0"))) c->outside = 1;
  if (c->nins == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 64;
    size_t *p = realloc(c->ins_at, cap * sizeof *p);
    if (!p) {
      c->oom = 1;
      return 1;
    }
    c->ins_at = p;
    c->cap = cap;
  }
  if (!(c->ins_at[c->nins] = id_append(&c->ins, v, npk))) {
    c->oom = 1;
    return 1;
  }
  c->nins++;
  return 0;
}

static int on_found(void *ctx, int n, const char *const *v) {
  many_call *c = ctx;
  long ord;
  char *end;
  size_t at;
  if (n < 2 || !v[0]) return 0;
  ord = strtol(v[0], &end, 10);
  if (*end || ord < 1 || (size_t)ord > c->nrows) return 0;
  if (!(at = id_append(&c->found, v + 1, c->key->table->npk))) {
    c->oom = 1;
    return 1;
  }
  c->nfound += !c->found_at[ord - 1];
  c->found_at[ord - 1] = at;
  return 0;
}

static void on_attempt(void *ctx) {
  many_call *c = ctx;
  if (c->nins > c->kept) c->ins.len = c->ins_at[c->kept] - 1;
  c->nins = c->kept;
  c->outside = 0;
}

static int on_complete(void *ctx) {
  const many_call *c = ctx;
  return c->nfound == c->nrows;
}

static int on_outside(void *ctx) {
  const many_call *c = ctx;
  return c->outside;
}

/* FNV-1a: the inserted ids are looked up once per input row, and a
 * sort of 10,000 strings took 1.5 of a call's 12 ms on SQLite. */
static size_t id_hash(const char *s) {
  size_t h = (size_t)14695981039346656037ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * (size_t)1099511628211ULL;
  return h;
}

/* out[i]: row i's id, created when it is one our inserts returned and no
 * earlier row has it (a key given twice is created once, for its first
 * occurrence). The inserted ids go into an open-addressed table of at
 * least twice their number, each slot an index into ins_at plus one; a
 * claimed slot becomes a tombstone, which probing passes over. */
static int mark_created(many_call *c, nodup_result *out) {
  size_t cap = 1, i, h, *slot;
  const char *ins = c->ins.p, *found = c->found.p;
  while (cap < 2 * c->nins) cap <<= 1;
  if (!(slot = calloc(cap, sizeof *slot))) return NODUP_ERR_NOMEM;
  for (i = 0; i < c->nins; i++) {
    for (h = id_hash(ins + c->ins_at[i] - 1) & (cap - 1); slot[h]; h = (h + 1) & (cap - 1))
      ;
    slot[h] = i + 1;
  }
  for (i = 0; i < c->nrows; i++) {
    const char *id = found + c->found_at[i] - 1;
    out[i].id = id;
    out[i].created = 0;
    for (h = id_hash(id) & (cap - 1); c->nins && slot[h]; h = (h + 1) & (cap - 1))
      if (slot[h] != (size_t)-1 && !strcmp(ins + c->ins_at[slot[h] - 1] - 1, id)) {
        out[i].created = 1;
        slot[h] = (size_t)-1;
        break;
      }
  }
  free(slot);
  return NODUP_OK;
}

void many_ids_free(nodup_key *key) {
  free(key->many_ids);
  key->many_ids = NULL;
}

/* ---- the call ---- */

/* Prefix db's message with the row's number (from 1). */
static int row_fail(nodup_key *key, size_t r, int rc) {
  buf m;
  buf_init(&m);
  buf_printf(&m, "row %zu: %s", r + 1, buf_str(&key->db->err));
  return db_fail_buf(key->db, rc, &m);
}

/* Refuse a row with a NULL key value before anything runs: an index
 * that treats NULLs as distinct cannot stop its duplicates, and one that
 * treats them as equal is matched by '=' here, which a NULL never meets. */
static int check_rows(nodup_key *key, size_t nrows, const char *const *vals) {
  size_t r, i;
  for (r = 0; r < nrows; r++)
    for (i = 0; i < key->ncols; i++) {
      if (vals[r * key->ncols + i]) continue;
      if (!key->nulls_equal) {
        return row_fail(key, r, goc_check_nulls(key, vals + r * key->ncols));
      }
      return nodup_fail(key->db, NODUP_ERR_NULL_KEY,
                        "row %zu: key column \"%s\" is NULL; index %s treats NULLs as equal, "
                        "but the many-keys call matches keys with '=': get or create this "
                        "row with nodup_get_or_create",
                        r + 1, key->cols[i], key->index);
    }
  return NODUP_OK;
}

/* The rows as the statements' values: key values then defaults per row,
 * each converted for its column (SQLite's declared types). */
static int row_values(nodup_key *key, const key_shape *s, size_t nrows, const char *const *vals,
                      const char *const *dvals, size_t nd, const char ***out) {
  size_t n = key->ncols + nd, r, i;
  const char **v = malloc((nrows ? nrows : 1) * n * sizeof *v);
  int rc = NODUP_OK;
  if (!v) return NODUP_ERR_NOMEM;
  for (r = 0; r < nrows && rc == NODUP_OK; r++) {
    for (i = 0; i < n; i++)
      v[r * n + i] = i < key->ncols ? vals[r * key->ncols + i] : dvals[r * nd + i - key->ncols];
    rc = key_coerce(key, s, v + r * n, n);
    if (rc != NODUP_OK) rc = row_fail(key, r, rc);
  }
  if (rc != NODUP_OK) {
    free(v);
    return rc;
  }
  *out = v;
  return NODUP_OK;
}

/* Rounds until every row has its row: one normally; another when a row
 * was deleted between our insert and our lookup. */
static int rounds(nodup_key *key, const key_shape *s, many_call *c, const char *const *params) {
  many_sink sink = {on_inserted, on_found, on_attempt, on_complete, on_outside, NULL};
  char what[64];
  int rc = NODUP_OK, round;
  sink.ctx = c;
  for (round = 1; round <= KEY_MAX_ROUNDS; round++) {
    rc = key->db->be->get_or_create_many(key, s, params, s->nparams, s->nlookup, &sink);
    if (rc == NODUP_OK && c->oom) rc = NODUP_ERR_NOMEM;
    if (rc != NODUP_OK) return rc;
    c->kept = c->nins;
    if (c->nfound == c->nrows) return NODUP_OK;
  }
  snprintf(what, sizeof what, "%zu of %zu rows", c->nrows - c->nfound, c->nrows);
  return goc_fail_rounds(key, what);
}

static int run_many(nodup_key *key, const key_shape *s, size_t nrows, const char *const *v,
                    size_t n, nodup_result *out) {
  many_call c;
  char **params = NULL;
  int rc;
  memset(&c, 0, sizeof c);
  c.key = key;
  c.nrows = nrows;
  buf_init(&c.found);
  buf_init(&c.ins);
  if (!(c.found_at = calloc(nrows, sizeof *c.found_at))) return NODUP_ERR_NOMEM;
  rc = key->db->be->many_params(nrows, n, v, &params);
  if (rc == NODUP_OK) rc = rounds(key, s, &c, (const char *const *)params);
  strv_free(params, (size_t)s->nparams);
  if (rc == NODUP_OK) rc = mark_created(&c, out);
  free(c.found_at);
  free(c.ins_at);
  buf_free(&c.ins);
  if (rc != NODUP_OK) {
    buf_free(&c.found);
    return rc;
  }
  /* The results point into the found arena: the key keeps it. */
  key->many_ids = c.found.p;
  key->many_found_all = c.nins == 0;
  return NODUP_OK;
}

int nodup_get_or_create_many(nodup_key *key, size_t nrows, const char *const *vals,
                             const char *const *default_cols, const char *const *default_vals,
                             size_t ndefaults, nodup_result *out) {
  key_shape *s;
  const char **v = NULL;
  size_t i;
  int rc;

  if (!key || (nrows && (!vals || !out)) ||
      (ndefaults && (!default_cols || (nrows && !default_vals))))
    return key ? nodup_fail(key->db, NODUP_ERR_USAGE, "get_or_create_many: NULL argument")
               : NODUP_ERR_USAGE;
  if ((rc = db_idle(key->db)) != NODUP_OK) return rc;
  nodup_clear_error(key->db);
  many_ids_free(key);
  for (i = 0; i < nrows; i++) {
    out[i].id = NULL;
    out[i].created = 0;
  }
  if (!key->backed) return goc_refuse_unbacked(key, "get-or-create");
  if ((rc = check_rows(key, nrows, vals)) != NODUP_OK) return goc_name_table(key, rc);
  if ((rc = key_many_shape_get(key, default_cols, ndefaults, &s)) != NODUP_OK)
    return goc_name_table(key, rc);
  if (!nrows) return NODUP_OK;
  if ((rc = row_values(key, s, nrows, vals, default_vals, ndefaults, &v)) != NODUP_OK)
    return goc_name_table(key, rc);
  rc = run_many(key, s, nrows, v, key->ncols + ndefaults, out);
  free(v);
  return goc_name_table(key, rc);   /* out[] is set only on success */
}

/*
 * sql.c -- the one place identifiers are quoted, and where a key's terms
 * become SQL.
 *
 * Every table, column and index name nodup puts into SQL goes through
 * sql_ident(), which always quotes (so reserved words, mixed case, spaces
 * and quotes in names all work) and doubles embedded quotes. Values never
 * appear in SQL text: they are bound through placeholders from sql_param().
 * A key is written only by sql_key_term() and the builders on top of it:
 * a term that is an expression, lower(trim(email)), is its column wrapped
 * by sql_key_term_open/close in the functions keyterm.c parsed.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* s between two `quote`s, each quote in it doubled: SQL's one escape for
 * both identifiers and string literals. */
static void quoted(buf *b, const char *s, char quote) {
  /* A NULL name is a copy that could not be made: the text is out of
   * memory, which its builder checks once at the end. */
  if (!s) {
    b->oom = 1;
    return;
  }
  buf_putc(b, quote);
  for (; *s; s++) {
    if (*s == quote) buf_putc(b, quote);
    buf_putc(b, *s);
  }
  buf_putc(b, quote);
}

void sql_ident(buf *b, const char *name) { quoted(b, name, '"'); }

void sql_ident_list(buf *b, char *const *names, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (i) buf_puts(b, ", ");
    sql_ident(b, names[i]);
  }
}

/* ---- keys: every statement writes a key's terms through these ---- */

void sql_key_term_open(buf *b, const key_term *term) {
  size_t i;
  for (i = 0; i < term->nfunc; i++) buf_printf(b, "%s(", keyterm_func_name(term->func[i]));
}

void sql_key_term_close(buf *b, const key_term *term) {
  size_t i;
  for (i = 0; i < term->nfunc; i++) buf_putc(b, ')');
}

void sql_key_term(buf *b, const key_term *term, const char *alias) {
  sql_key_term_open(b, term);
  if (alias) buf_printf(b, "%s.", alias);
  sql_ident(b, term->column);
  sql_key_term_close(b, term);
}

void sql_key_columns(buf *b, const key_term *terms, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (i) buf_puts(b, ", ");
    sql_ident(b, terms[i].column);
  }
}

void sql_key_list(buf *b, const key_term *terms, size_t n, const char *alias) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (i) buf_puts(b, ", ");
    sql_key_term(b, &terms[i], alias);
  }
}

void sql_key_rows(buf *b, const key_term *terms, size_t n, const char *where, int nulls_equal,
                  const char *alias) {
  size_t i;
  buf_puts(b, "1 = 1");
  for (i = 0; i < n && !nulls_equal; i++) {
    buf_puts(b, " AND ");
    sql_key_term(b, &terms[i], alias);
    buf_puts(b, " IS NOT NULL");
  }
  if (where && *where) buf_printf(b, " AND (%s)", where);
}

void sql_key_match(buf *b, const nodup_db *db, const key_term *terms, size_t n,
                   unsigned nulls, int dense, const char *alias, int *param) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (i) buf_puts(b, " AND ");
    sql_key_term(b, &terms[i], alias);
    if (nulls & (1u << i)) {
      buf_puts(b, " IS NULL");
      if (!dense) ++*param;   /* its value still has its place in the array */
    } else {
      /* The value is the column's raw value: wrapped like the column,
       * lower(trim("email")) = lower(trim($1)). */
      buf_puts(b, " = ");
      sql_key_term_open(b, &terms[i]);
      sql_param(b, db, (*param)++);
      sql_key_term_close(b, &terms[i]);
    }
  }
}

void sql_conflict_target(buf *b, const key_term *terms, size_t n, const char *where) {
  buf_puts(b, " ON CONFLICT (");
  sql_key_list(b, terms, n, NULL);
  buf_putc(b, ')');
  if (where) buf_printf(b, " WHERE %s", where);
}

void sql_on_conflict(buf *b, const key_term *terms, size_t n, const char *where) {
  sql_conflict_target(b, terms, n, where);
  buf_puts(b, " DO NOTHING");
}

key_term *key_terms_of(char *const *names, size_t n) {
  /* The terms, then room for each decoded expression's column: one block,
   * so callers free() it as before. */
  size_t i, room = n * sizeof(key_term);
  key_term *terms;
  char *col;
  for (i = 0; i < n; i++) room += names[i] ? strlen(names[i]) + 1 : 0;
  if (!(terms = calloc(1, room ? room : 1))) return NULL;
  col = (char *)(terms + n);
  for (i = 0; i < n; i++) {
    if (names[i] && keyterm_decode(names[i], &terms[i], col)) {
      col += strlen(col) + 1;
      continue;
    }
    terms[i].column = names[i];
  }
  return terms;
}

void sql_index_rows(buf *b, const struct nodup_index_info *ix, const char *alias) {
  key_term *terms = key_terms_of(ix->cols, ix->ncols);
  if (!terms) {
    b->oom = 1;
    return;
  }
  sql_key_rows(b, terms, ix->ncols, ix->predicate, ix->nulls_equal, alias);
  free(terms);
}

/* The bridge for callers that still hold a key as column names (merge,
 * enforce, duplicates): the same builder, through terms. */
void sql_key_filter(buf *b, char *const *key, size_t n, const char *where, int nulls_equal,
                    const char *alias) {
  key_term *terms = key_terms_of(key, n);
  if (!terms) {
    b->oom = 1;
    return;
  }
  sql_key_rows(b, terms, n, where, nulls_equal, alias);
  free(terms);
}

void sql_key_names(buf *b, char *const *key, size_t n, const char *alias) {
  key_term *terms = key_terms_of(key, n);
  if (!terms) {
    b->oom = 1;
    return;
  }
  sql_key_list(b, terms, n, alias);
  free(terms);
}

void sql_name_literal(buf *b, const char *name) { quoted(b, name, '\''); }

void sql_param(buf *b, const nodup_db *db, int n) {
  buf_printf(b, "%c%d", db->be->placeholder, n);
}

void sql_params(buf *b, const nodup_db *db, int first, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (i) buf_puts(b, ", ");
    sql_param(b, db, first + (int)i);
  }
}

/* The key partitions, as every key is written (sql_key_list); the
 * primary key's columns, written the same way, break ties. */
void sql_keep_window(buf *b, char *const *key, size_t nkey, const char *keep, char *const *pk,
                     size_t npk, const char *alias) {
  key_term *k = key_terms_of(key, nkey), *p = key_terms_of(pk, npk);
  if (!k || !p) {
    b->oom = 1;
  } else {
    buf_puts(b, " WINDOW nodup_w AS (PARTITION BY ");
    sql_key_list(b, k, nkey, alias);
    buf_puts(b, " ORDER BY ");
    if (keep && *keep) buf_printf(b, "%s, ", keep);
    sql_key_list(b, p, npk, alias);
    buf_putc(b, ')');
  }
  free(k);
  free(p);
}

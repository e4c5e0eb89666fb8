/*
 * keyterm.c -- expression key terms: lower(email), trim(name),
 * lower(trim(email)).
 *
 * A key term is a column wrapped in functions from a fixed set that mean
 * the same on both engines (lower, upper, trim, ltrim, rtrim), so one
 * spelling is backed by one index on either and no user text ever reaches
 * SQL: a term is parsed here into a column and a list of functions, and
 * written back by sql.c from those (the column through sql_ident).
 *
 * Inside the library a key travels as an array of names (merge, enforce,
 * scan, the journal); an expression term travels there as its canonical
 * spelling, lower("email"), which keyterm_decode() reads back exactly and
 * nothing else matches. A column whose own name is exactly such a
 * spelling is refused as a key column and never matched in an index, so
 * the two cannot be confused.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

static const char *const func_names[] = {NULL, "lower", "upper", "trim", "ltrim", "rtrim"};
#define NFUNCS (sizeof func_names / sizeof *func_names)

const char *keyterm_func_name(unsigned f) { return f && f < NFUNCS ? func_names[f] : "?"; }

void keyterm_name(buf *b, const key_term *term) {
  size_t f;
  for (f = 0; f < term->nfunc; f++) buf_printf(b, "_%s", keyterm_func_name(term->func[f]));
  buf_printf(b, "_%s", term->column);
}

static const char *ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  return p;
}

static int word_char(char c) {
  return c == '_' || c == '$' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
         (unsigned char)c >= 0x80;
}

/* A word of n bytes at p equal to `w`, ignoring ASCII case. */
static int word_is(const char *p, size_t n, const char *w) {
  return strlen(w) == n && strncasecmp(p, w, n) == 0;
}

/* One identifier: bare, "double" (catalog: also `back` and [bracket])
 * quoted, its text appended to col; the rest, or NULL. */
static const char *ident(const char *p, int catalog, buf *col) {
  char close = 0;
  if (*p == '"') close = '"';
  else if (catalog && *p == '`') close = '`';
  else if (catalog && *p == '[') close = ']';
  if (close) {
    for (p++; *p; p++) {
      if (*p == close && p[1] == close && close != ']') p++;
      else if (*p == close) break;
      buf_putc(col, *p);
    }
    return *p == close ? p + 1 : NULL;
  }
  if (!word_char(*p) || (*p >= '0' && *p <= '9')) return NULL;
  while (word_char(*p)) buf_putc(col, *p++);
  return p;
}

/* PostgreSQL's deparsed casts of a text-like column to text: "::text",
 * "::character varying" (after the column or a parenthesis). Skipped:
 * lower(x) and lower(x::text) are one expression for a text column. */
static const char *skip_casts(const char *p) {
  static const char *const casts[] = {"::text", "::character varying", "::varchar", "::citext"};
  size_t i;
  for (;;) {
    const char *q = ws(p);
    for (i = 0; i < sizeof casts / sizeof *casts; i++) {
      size_t n = strlen(casts[i]);
      if (!strncasecmp(q, casts[i], n) && !word_char(q[n])) break;
    }
    if (i == sizeof casts / sizeof *casts) return p;
    p = q + strlen(casts[i]);
  }
}

/* term := '(' term ')' | func '(' term ')' | TRIM '(' (BOTH|LEADING|TRAILING) FROM term ')'
 *       | identifier; each possibly followed by casts (catalog). */
static const char *term_at(const char *p, int catalog, key_term *t, buf *col, const char **why) {
  const char *w;
  size_t n, f;
  p = ws(p);
  if (*p == '(') {
    if (!(p = term_at(p + 1, catalog, t, col, why))) return NULL;
    p = ws(p);
    if (*p != ')') return *why = "unbalanced parentheses", NULL;
    return catalog ? skip_casts(p + 1) : p + 1;
  }
  if (*p == '"' || (catalog && (*p == '`' || *p == '['))) {
    if (!(p = ident(p, catalog, col))) return *why = "an unterminated quoted name", NULL;
    return catalog ? skip_casts(p) : p;
  }
  for (w = p; word_char(*p); p++)
    ;
  n = (size_t)(p - w);
  if (!n) return *why = "expected a column name or one of lower, upper, trim, ltrim, rtrim", NULL;
  if (*ws(p) != '(') {
    p = w;
    if (!(p = ident(p, catalog, col))) return *why = "expected a column name", NULL;
    return catalog ? skip_casts(p) : p;
  }
  for (f = 1; f < NFUNCS && !word_is(w, n, func_names[f]); f++)
    ;
  if (f == NFUNCS && word_is(w, n, "btrim")) f = KEY_FUNC_TRIM;
  if (f == NFUNCS) return *why = "only lower, upper, trim, ltrim and rtrim may wrap a key column", NULL;
  if (t->nfunc == KEY_TERM_FUNCS) return *why = "functions nested too deep (at most 4)", NULL;
  p = ws(p) + 1;
  if (f == KEY_FUNC_TRIM) {
    /* The SQL standard's TRIM(BOTH FROM x), as PostgreSQL prints trim(x). */
    const char *q = ws(p), *e = q;
    while (word_char(*e)) e++;
    if (word_is(q, (size_t)(e - q), "both") || word_is(q, (size_t)(e - q), "leading") ||
        word_is(q, (size_t)(e - q), "trailing")) {
      const char *fr = ws(e), *fe = fr;
      while (word_char(*fe)) fe++;
      if (word_is(fr, (size_t)(fe - fr), "from")) {
        f = (q[0] | 0x20) == 'b' ? KEY_FUNC_TRIM : (q[0] | 0x20) == 'l' ? KEY_FUNC_LTRIM
                                                                        : KEY_FUNC_RTRIM;
        p = fe;
      }
    }
  }
  t->func[t->nfunc++] = (unsigned char)f;
  if (!(p = term_at(p, catalog, t, col, why))) return NULL;
  p = ws(p);
  if (*p != ')')
    return *why = *p ? "a function takes one column (no second argument)"
                     : "a closing parenthesis is missing",
           NULL;
  return catalog ? skip_casts(p + 1) : p + 1;
}

const char *keyterm_parse(const char *s, int catalog, key_term *term, buf *col) {
  const char *why = NULL, *end;
  memset(term, 0, sizeof *term);
  buf_reset(col);
  end = term_at(s, catalog, term, col, &why);
  if (!end) return why;
  end = ws(end);
  if (catalog && (!strncasecmp(end, "ASC", 3) || !strncasecmp(end, "DESC", 4)))
    end = ws(end + ((end[0] | 0x20) == 'a' ? 3 : 4));
  if (*end) return "unexpected text after the term";
  if (!col->len) return "an empty column name";
  return col->oom ? "out of memory" : NULL;
}

/* keyterm_decode's work, which may leave *term half-filled on failure. */
static int decode(const char *name, key_term *term, char *col) {
  const char *p = name;
  size_t i, n = 0;
  for (;;) {
    size_t f;
    for (f = 1; f < NFUNCS; f++) {
      size_t L = strlen(func_names[f]);
      if (!strncmp(p, func_names[f], L) && p[L] == '(') break;
    }
    if (f == NFUNCS) break;
    if (term->nfunc == KEY_TERM_FUNCS) return 0;
    term->func[term->nfunc++] = (unsigned char)f;
    p += strlen(func_names[f]) + 1;
  }
  if (!term->nfunc || *p++ != '"') return 0;
  for (; *p; p++) {
    if (*p == '"' && p[1] != '"') break;
    if (*p == '"') p++;
    col[n++] = *p;
  }
  col[n] = '\0';
  if (*p++ != '"' || !n) return 0;
  for (i = 0; i < term->nfunc; i++)
    if (*p++ != ')') return 0;
  if (*p) return 0;
  term->column = col;
  return 1;
}

int keyterm_decode(const char *name, key_term *term, char *col) {
  memset(term, 0, sizeof *term);
  if (decode(name, term, col)) return 1;
  memset(term, 0, sizeof *term);   /* a column after all: nothing wraps it */
  return 0;
}

int keyterm_index(const nodup_db *db, const nodup_table_info *t, const char *col,
                  const char *expr, char **out) {
  key_term term;
  buf name, spelled;
  int c, rc = NODUP_OK;
  *out = NULL;
  if (col) {
    /* A column named exactly like a term's spelling would read back as
     * that term: it backs no key (table_info_key refuses it too). */
    char *scratch = malloc(strlen(col) + 1);
    if (!scratch) return NODUP_ERR_NOMEM;
    if (!keyterm_decode(col, &term, scratch) && !(*out = nodup_strdup(col))) rc = NODUP_ERR_NOMEM;
    free(scratch);
    return rc;
  }
  if (!expr) return NODUP_OK;
  buf_init(&name);
  buf_init(&spelled);
  if (!keyterm_parse(expr, 1, &term, &name) && term.nfunc &&
      (c = table_info_column(db, t, buf_str(&name))) >= 0) {
    term.column = t->cols[c];
    sql_key_term(&spelled, &term, NULL);
    if (spelled.oom || !(*out = nodup_strdup(buf_str(&spelled)))) rc = NODUP_ERR_NOMEM;
  }
  if (name.oom) rc = NODUP_ERR_NOMEM;
  buf_free(&name);
  buf_free(&spelled);
  return rc;
}

int keyterm_column(const nodup_db *db, const nodup_table_info *t, const char *name) {
  key_term term;
  char *col = malloc(strlen(name) + 1);
  int c;
  if (!col) return -1;
  c = table_info_column(db, t, keyterm_decode(name, &term, col) ? col : name);
  free(col);
  return c;
}

/*
 * userexpr.c -- SQL that users write (a key's predicate, --where, --keep)
 * must be exactly one expression before nodup pastes it into statements.
 *
 * Those texts are SQL by design (a partial index's predicate cannot be a
 * bound value), so they cannot be parameters; what can be guaranteed is
 * that each stays one expression wherever it is pasted. Two checks:
 *
 *  1. Lexical: outside string literals and quoted identifiers there is no
 *     ';', no comment, and the parentheses balance. A text like
 *     `1=1)) AS z; DROP TABLE victim; SELECT * FROM (SELECT 1 AS a WHERE
 *     (1=1` is refused here: it is valid only inside one particular
 *     wrapper, and would close the statement it is pasted into. So is
 *     `a) OR (b`, which is one expression inside `WHERE (...)` but not
 *     inside `... AND (...)`, where it would widen a merge's filter.
 *  2. The engine: the text is prepared, on its own, as the one statement
 *     `SELECT 1 FROM t AS x WHERE (expr)` (ORDER BY for --keep): an
 *     unknown column or a syntax error is reported by name, and nothing
 *     runs (LIMIT 0).
 *
 * The statements that carry user SQL are then sent through single-
 * statement calls (PostgreSQL's extended protocol; SQLite refuses a
 * prepared text with a tail), never a multi-statement exec.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The first lexical problem of s, or NULL; *at gets its byte offset. */
const char *userexpr_lex(const char *s, size_t *at) {
  const char *p = s;
  long depth = 0;
  for (; *p; p++) {
    char c = *p;
    *at = (size_t)(p - s);
    if (c == '\'' || c == '"' || c == '`') {
      /* A literal or quoted name; a doubled quote is one quote. PostgreSQL's
       * E'...' strings also take backslash escapes. */
      int backslash = c == '\'' && p > s && (p[-1] == 'E' || p[-1] == 'e') &&
                      (p - 1 == s || !(((p[-2] | 0x20) >= 'a' && (p[-2] | 0x20) <= 'z') ||
                                       p[-2] == '_' || (p[-2] >= '0' && p[-2] <= '9')));
      for (p++; *p; p++) {
        if (backslash && *p == '\\' && p[1]) {
          p++;
          continue;
        }
        if (*p == c) {
          if (p[1] == c) {
            p++;
            continue;
          }
          break;
        }
      }
      if (!*p) return c == '\'' ? "an unterminated string literal" : "an unterminated quoted name";
      continue;
    }
    if (c == '[') {   /* SQLite's [quoted name] */
      const char *end = strchr(p, ']');
      if (!end) return "an unterminated [quoted name]";
      p = end;
      continue;
    }
    if (c == '$' && (p[1] == '$' || ((p[1] | 0x20) >= 'a' && (p[1] | 0x20) <= 'z') || p[1] == '_')) {
      /* PostgreSQL's $tag$ ... $tag$ quoting ($1 is a parameter: no tag
       * starts with a digit). */
      const char *tag = p, *q = p + 1, *end;
      char t[64];
      size_t n;
      while (*q == '_' || ((*q | 0x20) >= 'a' && (*q | 0x20) <= 'z') || (*q >= '0' && *q <= '9')) q++;
      if (*q == '$') {
        n = (size_t)(q - tag + 1);
        if (n >= sizeof t) return "a dollar-quote tag too long";
        memcpy(t, tag, n);
        t[n] = '\0';
        if (!(end = strstr(q + 1, t))) return "an unterminated dollar-quoted string";
        p = end + n - 1;
        continue;
      }
    }
    if (c == ';') return "';' (a second statement)";
    if ((c == '-' && p[1] == '-') || (c == '/' && p[1] == '*')) return "a comment";
    if (c == '(') depth++;
    if (c == ')' && --depth < 0) return "a ')' without its '('";
  }
  *at = (size_t)(p - s);
  if (depth > 0) return "a '(' without its ')'";
  return NULL;
}

int userexpr_check(nodup_db *db, const nodup_table_info *t, const char *expr, int order_by,
                   const char *what) {
  const char *why, *s;
  size_t at = 0;
  buf q;
  int rc;
  if (!expr) return NODUP_OK;
  for (s = expr; *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'; s++)
    ;
  if (!*s) return nodup_fail(db, NODUP_ERR_USAGE, "%s is empty", what);
  if ((why = userexpr_lex(expr, &at)) != NULL)
    return nodup_fail(db, NODUP_ERR_USAGE,
                      "%s must be one SQL expression; it has %s at byte %zu: %s", what, why,
                      at, expr);
  buf_init(&q);
  buf_printf(&q, "SELECT 1 FROM %s AS x %s %s%s%s LIMIT 0", t->qualified,
             order_by ? "ORDER BY" : "WHERE", order_by ? "" : "(", expr, order_by ? "" : ")");
  rc = q.oom ? NODUP_ERR_NOMEM : db->be->query(db, buf_str(&q), NULL, 0, NULL, NULL);
  buf_free(&q);
  if (rc != NODUP_OK && rc != NODUP_ERR_NOMEM) {
    char *msg = nodup_strdup(nodup_errmsg(db));
    rc = nodup_fail(db, rc == NODUP_ERR_NO_COLUMN ? rc : NODUP_ERR_USAGE,
                    "%s is not an expression on %s: %s", what, t->qualified,
                    msg ? msg : "out of memory");
    free(msg);
  }
  return rc;
}

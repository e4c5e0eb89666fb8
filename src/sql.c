/*
 * sql.c -- the one place identifiers are quoted.
 *
 * Every table, column and index name nodup puts into SQL goes through
 * sql_ident(), which always quotes (so reserved words, mixed case, spaces
 * and quotes in names all work) and doubles embedded quotes. Values never
 * appear in SQL text: they are bound through placeholders from sql_param().
 */
#include "internal.h"

void sql_ident(buf *b, const char *name) {
  const char *s;
  /* A NULL name is a copy that could not be made: the text is out of
   * memory, which its builder checks once at the end. */
  if (!name) {
    b->oom = 1;
    return;
  }
  buf_putc(b, '"');
  for (s = name; *s; s++) {
    if (*s == '"') buf_putc(b, '"');
    buf_putc(b, *s);
  }
  buf_putc(b, '"');
}

void sql_ident_list(buf *b, char *const *names, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (i) buf_puts(b, ", ");
    sql_ident(b, names[i]);
  }
}

void sql_key_filter(buf *b, char *const *key, size_t n, const char *where, int nulls_equal,
                    const char *alias) {
  size_t i;
  buf_puts(b, "1 = 1");
  for (i = 0; i < n && !nulls_equal; i++) {
    buf_puts(b, " AND ");
    if (alias) buf_printf(b, "%s.", alias);
    sql_ident(b, key[i]);
    buf_puts(b, " IS NOT NULL");
  }
  if (where && *where) buf_printf(b, " AND (%s)", where);
}

void sql_name_literal(buf *b, const char *name) {
  const char *s;
  buf_putc(b, '\'');
  for (s = name; *s; s++) {
    if (*s == '\'') buf_putc(b, '\'');
    buf_putc(b, *s);
  }
  buf_putc(b, '\'');
}

void sql_param(buf *b, const nodup_db *db, int n) {
  buf_printf(b, "%c%d", db->be->placeholder, n);
}

/*
 * buf.c -- a growable string for building SQL and messages.
 *
 * Allocation failure is sticky (`oom`) instead of reported per append, so
 * statement builders stay readable: append everything, check once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void buf_init(buf *b) {
  b->p = NULL;
  b->len = b->cap = 0;
  b->oom = 0;
}

void buf_free(buf *b) {
  free(b->p);
  buf_init(b);
}

void buf_reset(buf *b) {
  b->len = 0;
  b->oom = 0;
  if (b->p) b->p[0] = '\0';
}

static int buf_grow(buf *b, size_t extra) {
  size_t need, cap;
  char *p;
  if (b->oom) return -1;
  need = b->len + extra + 1;
  if (need <= b->cap) return 0;
  cap = b->cap ? b->cap : 64;
  while (cap < need) cap *= 2;
  p = realloc(b->p, cap);
  if (!p) {
    b->oom = 1;
    return -1;
  }
  b->p = p;
  b->cap = cap;
  return 0;
}

void buf_putn(buf *b, const char *s, size_t n) {
  if (buf_grow(b, n)) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void buf_puts(buf *b, const char *s) { buf_putn(b, s, strlen(s)); }

void buf_putc(buf *b, char c) { buf_putn(b, &c, 1); }

void buf_printf(buf *b, const char *fmt, ...) {
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || buf_grow(b, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

const char *buf_str(const buf *b) { return b->p ? b->p : ""; }

char *nodup_strdup(const char *s) {
  size_t n;
  char *p;
  if (!s) return NULL;
  n = strlen(s) + 1;
  p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

void strv_free(char **v, size_t n) {
  size_t i;
  if (!v) return;
  for (i = 0; i < n; i++) free(v[i]);
  free(v);
}

/*
 * cache.c -- prepared keys and prepared slugs kept per connection.
 *
 * Preparing a key reads the catalog (about ten round trips on PostgreSQL)
 * and a key learns its hit rate over its calls (nodup.h); preparing a slug
 * does the same reads and prepares its two statements, where
 * nodup_slug_create() would redo all of it on every call. A JS caller
 * passes { table, columns, where } or { table, column, scope, set,
 * options } on every call, so the connection keeps one handle per
 * signature (see sig_key() and sig_slug()) and prepares only on first use.
 * Only the connection's running call touches the cache (a connection runs
 * one call at a time), so it needs no lock. At most NODE_CACHE_MAX handles
 * (keys and slugs together) are kept; past that the oldest is freed, which
 * bounds what an application with unbounded table names holds on the
 * server.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addon.h"

#define NODE_CACHE_MAX 256
#define NODE_CACHE_BUCKETS 64

typedef struct node_cache_entry node_cache_entry;
struct node_cache_entry {
  node_cache_entry *bucket_next;  /* same bucket */
  node_cache_entry *newer;        /* insertion order, oldest first */
  uint32_t hash;
  size_t siglen;
  nodup_key *key;                 /* exactly one of key and slug */
  nodup_slug *slug;
  char sig[];                     /* the signature */
};

struct node_cache {
  node_cache_entry *buckets[NODE_CACHE_BUCKETS];
  node_cache_entry *oldest, *newest;
  size_t count;
};

node_cache *node_cache_new(void) { return calloc(1, sizeof(node_cache)); }

/* --- signatures ------------------------------------------------------------ */

/* A signature is a sequence of C strings, each kept with its NUL, that
 * tells one handle from every other: a kind letter first, then every name
 * and option, with a count before each list whose length varies. C strings
 * hold no NUL, so two different handles never share one. Short ones live
 * in `small`; a longer one in `heap`. */
typedef struct node_sig {
  char small[256];
  char *heap;
  size_t len, size;
  int nomem;
} node_sig;

static void sig_init(node_sig *s) {
  s->heap = NULL;
  s->len = 0;
  s->size = sizeof s->small;
  s->nomem = 0;
}

static char *sig_data(node_sig *s) { return s->heap != NULL ? s->heap : s->small; }

static void sig_put(node_sig *s, const char *piece) {
  size_t n = strlen(piece) + 1;
  if (s->nomem)
    return;
  if (s->len + n > s->size) {
    size_t size = (s->len + n) * 2;
    char *p = realloc(s->heap, size);
    if (p == NULL) {
      s->nomem = 1;
      return;
    }
    if (s->heap == NULL)
      memcpy(p, s->small, s->len);
    s->heap = p;
    s->size = size;
  }
  memcpy(sig_data(s) + s->len, piece, n);
  s->len += n;
}

static void sig_put_count(node_sig *s, size_t n) {
  char text[24];
  snprintf(text, sizeof text, "%zu", n);
  sig_put(s, text);
}

static void sig_put_list(node_sig *s, const char *const *items, size_t n) {
  sig_put_count(s, n);
  for (size_t i = 0; i < n; i++)
    sig_put(s, items[i]);
}

/* A key: (table, key columns in order, where). */
static void sig_key(node_sig *s, const char *table, const char *const *cols, size_t ncols,
                    const char *where) {
  sig_put(s, "k");
  sig_put(s, table);
  sig_put_list(s, cols, ncols);
  sig_put(s, where != NULL ? "w" : "-");
  if (where != NULL)
    sig_put(s, where);
}

/* A slug: (table, column, scope columns, set columns, options). The
 * options change the slugs it makes, so they are part of it; NULL and an
 * empty reserved list differ (the default list against none). */
static void sig_slug(node_sig *s, const char *table, const char *column,
                     const char *const *scope_cols, size_t nscope, const char *const *set_cols,
                     size_t nset, const nodup_slug_options *opt) {
  sig_put(s, "s");
  sig_put(s, table);
  sig_put(s, column);
  sig_put_list(s, scope_cols, nscope);
  sig_put_list(s, set_cols, nset);
  sig_put_count(s, opt->max_length);
  sig_put(s, opt->fallback != NULL ? "f" : "-");
  if (opt->fallback != NULL)
    sig_put(s, opt->fallback);
  sig_put(s, opt->reserved != NULL ? "r" : "-");
  if (opt->reserved != NULL)
    sig_put_list(s, opt->reserved, opt->nreserved);
}

static uint32_t fnv1a(const char *s, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++)
    h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

/* --- the table -------------------------------------------------------------- */

static void evict_oldest(node_cache *cache) {
  node_cache_entry *e = cache->oldest;
  node_cache_entry **p = &cache->buckets[e->hash % NODE_CACHE_BUCKETS];
  while (*p != e)
    p = &(*p)->bucket_next;
  *p = e->bucket_next;
  cache->oldest = e->newer;
  if (cache->oldest == NULL)
    cache->newest = NULL;
  cache->count--;
  nodup_key_free(e->key);
  nodup_slug_free(e->slug);
  free(e);
}

/* The entry under signature `s`, or NULL when there is none; *hash is
 * the signature's hash either way (insert() needs it). */
static node_cache_entry *lookup(node_cache *cache, node_sig *s, uint32_t *hash) {
  *hash = fnv1a(sig_data(s), s->len);
  node_cache_entry *e = cache->buckets[*hash % NODE_CACHE_BUCKETS];
  while (e != NULL &&
         !(e->hash == *hash && e->siglen == s->len && memcmp(e->sig, sig_data(s), s->len) == 0))
    e = e->bucket_next;
  return e;
}

/* Keep a new handle (exactly one of key and slug) under its signature, the
 * oldest handle making room. On failure the handle is freed. */
static int insert(node_cache *cache, node_sig *s, uint32_t hash, nodup_key *key,
                  nodup_slug *slug) {
  node_cache_entry *e = malloc(sizeof *e + s->len);
  if (e == NULL) {
    nodup_key_free(key);
    nodup_slug_free(slug);
    return NODUP_ERR_NOMEM;
  }
  if (cache->count == NODE_CACHE_MAX)
    evict_oldest(cache);
  e->hash = hash;
  e->siglen = s->len;
  e->key = key;
  e->slug = slug;
  memcpy(e->sig, sig_data(s), s->len);
  e->bucket_next = cache->buckets[hash % NODE_CACHE_BUCKETS];
  cache->buckets[hash % NODE_CACHE_BUCKETS] = e;
  e->newer = NULL;
  if (cache->newest != NULL)
    cache->newest->newer = e;
  else
    cache->oldest = e;
  cache->newest = e;
  cache->count++;
  return NODUP_OK;
}

/* --- the two kinds ---------------------------------------------------------- */

/* Each kind: its signature, then the cached handle or a new one, kept.
 * A handle whose preparation failed is not kept: the next call tries
 * again (the table may have its index by then). */
int node_cache_key(node_cache *cache, nodup_db *db, const char *table, const char *const *cols,
                   size_t ncols, const char *where, nodup_key **out) {
  node_sig s;
  uint32_t hash;
  nodup_key *key = NULL;
  sig_init(&s);
  sig_key(&s, table, cols, ncols, where);
  node_cache_entry *e = s.nomem ? NULL : lookup(cache, &s, &hash);
  int rc = s.nomem ? NODUP_ERR_NOMEM : NODUP_OK;
  if (e != NULL)
    key = e->key;
  else if (rc == NODUP_OK && (rc = nodup_key_prepare(&key, db, table, cols, ncols, where)) ==
                                 NODUP_OK)
    rc = insert(cache, &s, hash, key, NULL);
  if (rc == NODUP_OK)
    *out = key;
  free(s.heap);
  return rc;
}

nodup_key *node_cache_find_key(node_cache *cache, const char *table, const char *const *cols,
                               size_t ncols, const char *where) {
  node_sig s;
  uint32_t hash;
  sig_init(&s);
  sig_key(&s, table, cols, ncols, where);
  node_cache_entry *e = s.nomem ? NULL : lookup(cache, &s, &hash);
  free(s.heap);
  return e != NULL ? e->key : NULL;
}

int node_cache_slug(node_cache *cache, nodup_db *db, const char *table, const char *column,
                    const char *const *scope_cols, size_t nscope, const char *const *set_cols,
                    size_t nset, const nodup_slug_options *opt, nodup_slug **out) {
  node_sig s;
  uint32_t hash;
  nodup_slug *slug = NULL;
  sig_init(&s);
  sig_slug(&s, table, column, scope_cols, nscope, set_cols, nset, opt);
  node_cache_entry *e = s.nomem ? NULL : lookup(cache, &s, &hash);
  int rc = s.nomem ? NODUP_ERR_NOMEM : NODUP_OK;
  if (e != NULL)
    slug = e->slug;
  else if (rc == NODUP_OK &&
           (rc = nodup_slug_prepare(&slug, db, table, column, scope_cols, nscope, set_cols,
                                    nset, opt)) == NODUP_OK)
    rc = insert(cache, &s, hash, NULL, slug);
  if (rc == NODUP_OK)
    *out = slug;
  free(s.heap);
  return rc;
}

void node_cache_free(node_cache *cache) {
  if (cache == NULL)
    return;
  while (cache->oldest != NULL)
    evict_oldest(cache);
  free(cache);
}

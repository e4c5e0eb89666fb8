/*
 * keycache.c -- prepared keys kept per connection.
 *
 * Preparing a key reads the catalog (about ten round trips on PostgreSQL)
 * and a key learns its hit rate over its calls (nodup.h), so a JS caller
 * that passes { table, key columns, where } on every call must not prepare
 * each time: the connection keeps one key per (table, key columns in
 * order, where). Only the connection's running call touches the cache (a
 * connection runs one call at a time), so it needs no lock. At most
 * NODE_KEY_CACHE_MAX keys are kept; past that the oldest is freed, which
 * bounds what an application with unbounded table names holds on the
 * server.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addon.h"

#define NODE_KEY_CACHE_MAX 256
#define NODE_KEY_CACHE_BUCKETS 64

typedef struct node_key_entry node_key_entry;
struct node_key_entry {
  node_key_entry *bucket_next;  /* same bucket */
  node_key_entry *newer;        /* insertion order, oldest first */
  uint32_t hash;
  size_t siglen;
  nodup_key *key;
  char sig[];                   /* the signature (see signature()) */
};

struct node_key_cache {
  node_key_entry *buckets[NODE_KEY_CACHE_BUCKETS];
  node_key_entry *oldest, *newest;
  size_t count;
};

node_key_cache *node_key_cache_new(void) { return calloc(1, sizeof(node_key_cache)); }

/* The signature: the table, each column and the where text, each ended by
 * NUL, after a byte saying whether there is a where. C strings hold no NUL,
 * so two different keys never share a signature. Returns its length, or
 * the length it needs when it does not fit in `size`. */
static size_t signature(char *out, size_t size, const char *table, const char *const *cols,
                        size_t ncols, const char *where) {
  size_t len = 0;
#define PUT(s)                            \
  do {                                    \
    size_t n_ = strlen(s) + 1;            \
    if (len + n_ <= size)                 \
      memcpy(out + len, (s), n_);         \
    len += n_;                            \
  } while (0)
  PUT(where != NULL ? "w" : "-");
  PUT(table);
  for (size_t i = 0; i < ncols; i++)
    PUT(cols[i]);
  if (where != NULL)
    PUT(where);
#undef PUT
  return len;
}

static uint32_t fnv1a(const char *s, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++)
    h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

static void evict_oldest(node_key_cache *cache) {
  node_key_entry *e = cache->oldest;
  node_key_entry **p = &cache->buckets[e->hash % NODE_KEY_CACHE_BUCKETS];
  while (*p != e)
    p = &(*p)->bucket_next;
  *p = e->bucket_next;
  cache->oldest = e->newer;
  if (cache->oldest == NULL)
    cache->newest = NULL;
  cache->count--;
  nodup_key_free(e->key);
  free(e);
}

int node_key_cache_get(node_key_cache *cache, nodup_db *db, const char *table,
                       const char *const *cols, size_t ncols, const char *where,
                       nodup_key **out) {
  char small[256];
  char *sig = small;
  size_t len = signature(small, sizeof small, table, cols, ncols, where);
  if (len > sizeof small) {
    sig = malloc(len);
    if (sig == NULL)
      return NODUP_ERR_NOMEM;
    signature(sig, len, table, cols, ncols, where);
  }
  uint32_t hash = fnv1a(sig, len);
  node_key_entry *e = cache->buckets[hash % NODE_KEY_CACHE_BUCKETS];
  while (e != NULL && !(e->hash == hash && e->siglen == len && memcmp(e->sig, sig, len) == 0))
    e = e->bucket_next;
  int rc = NODUP_OK;
  if (e != NULL) {
    *out = e->key;
    goto done;
  }
  nodup_key *key = NULL;
  rc = nodup_key_prepare(&key, db, table, cols, ncols, where);
  if (rc != NODUP_OK)
    goto done;
  e = malloc(sizeof *e + len);
  if (e == NULL) {
    nodup_key_free(key);
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  if (cache->count == NODE_KEY_CACHE_MAX)
    evict_oldest(cache);
  e->hash = hash;
  e->siglen = len;
  e->key = key;
  memcpy(e->sig, sig, len);
  e->bucket_next = cache->buckets[hash % NODE_KEY_CACHE_BUCKETS];
  cache->buckets[hash % NODE_KEY_CACHE_BUCKETS] = e;
  e->newer = NULL;
  if (cache->newest != NULL)
    cache->newest->newer = e;
  else
    cache->oldest = e;
  cache->newest = e;
  cache->count++;
  *out = key;
done:
  if (sig != small)
    free(sig);
  return rc;
}

void node_key_cache_free(node_key_cache *cache) {
  if (cache == NULL)
    return;
  while (cache->oldest != NULL)
    evict_oldest(cache);
  free(cache);
}

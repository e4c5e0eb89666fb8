/*
 * slugify.c -- text to slug, with no database: ICU transliteration to
 * ASCII, then one pass that keeps letters and digits and turns every run of
 * anything else into a single '-'.
 *
 * The rules, in the order they apply (nodup.h documents them for callers):
 *  1. At most SLUGIFY_INPUT_MAX bytes of the text are read (cut at a
 *     character boundary); invalid UTF-8 becomes U+FFFD, a separator.
 *  2. ICU "Any-Latin; Latin-ASCII": every script to Latin, then Latin to
 *     ASCII ("Crème" -> "Creme", "Straße" -> "Strasse", "Москва" ->
 *     "Moskva", "東京" -> "dong jing").
 *  3. ASCII letters lower-cased, digits kept, apostrophes dropped ("Don't"
 *     -> "dont"), anything else (spaces, punctuation, emoji ICU left alone)
 *     a separator; runs collapse to one '-', none at either end.
 *  4. Longer than max_length - NODUP_SLUG_SUFFIX_ROOM: cut at the last '-'
 *     that keeps at least half of that length, else at that length. The
 *     room for a suffix is reserved for every slug, so the base never
 *     changes when the tenth or the millionth copy needs "-10" (seed 002's
 *     django-tagulous #152). The output is ASCII, so a cut is never
 *     mid-character.
 *  5. Nothing left: the fallback ("n-a" unless configured), itself put
 *     through steps 3 and 4.
 *
 * One transliterator is opened on first use and shared under a mutex:
 * opening "Any-Latin" costs milliseconds, and ICU does not promise that a
 * compound transliterator may be used by two threads at once.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/utrans.h>
#include <unicode/ustring.h>

#include "internal.h"

#define SLUGIFY_INPUT_MAX 4096
#define SLUGIFY_TRANSFORM "Any-Latin; Latin-ASCII"
#define SLUGIFY_FALLBACK "n-a"

/* Short on purpose: words that collide with routes most web applications
 * have next to /<slug>. Callers with other routes pass their own list. */
static const char *const default_reserved[] = {
    "new",    "edit",     "delete", "admin",  "api",
    "login",  "logout",   "signup", "settings", "search",
};

static pthread_once_t trans_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t trans_lock = PTHREAD_MUTEX_INITIALIZER;
static UTransliterator *trans;          /* lives until the process exits */
static UErrorCode trans_status = U_ZERO_ERROR;

static void trans_open(void) {
  UChar id[64];
  int32_t idlen = 0;
  UParseError pe;
  u_strFromUTF8(id, (int32_t)(sizeof id / sizeof id[0]), &idlen, SLUGIFY_TRANSFORM, -1,
                &trans_status);
  if (U_SUCCESS(trans_status))
    trans = utrans_openU(id, idlen, UTRANS_FORWARD, NULL, 0, &pe, &trans_status);
  if (U_FAILURE(trans_status)) trans = NULL;
}

static int icu_code(UErrorCode st) {
  return st == U_MEMORY_ALLOCATION_ERROR ? NODUP_ERR_NOMEM : NODUP_ERR_USAGE;
}

/* The first `max` bytes of s, or fewer so as not to split a UTF-8
 * sequence. */
static size_t utf8_prefix(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n <= max) return n;
  n = max;
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
  return n;
}

/* Transliterate `text` (n bytes of UTF-8) into *out, malloc'd UTF-8. */
static int transliterate(const char *text, size_t n, char **out) {
  UErrorCode st = U_ZERO_ERROR;
  UChar *u = NULL;
  int32_t ulen = 0, cap, limit, blen = 0;
  char *b = NULL;
  int rc = NODUP_OK;

  *out = NULL;
  pthread_once(&trans_once, trans_open);
  if (!trans) return icu_code(trans_status);
  /* Transliteration grows text (one Han character becomes a syllable):
   * start with room for 4x and grow when ICU says it needs more. */
  cap = (int32_t)n * 4 + 16;
  for (;;) {
    st = U_ZERO_ERROR;
    free(u);
    if (!(u = malloc((size_t)cap * sizeof *u))) {
      rc = NODUP_ERR_NOMEM;
      goto done;
    }
    u_strFromUTF8WithSub(u, cap, &ulen, text, (int32_t)n, 0xFFFD, NULL, &st);
    if (U_FAILURE(st)) {
      rc = icu_code(st);
      goto done;
    }
    limit = ulen;
    pthread_mutex_lock(&trans_lock);
    utrans_transUChars(trans, u, &ulen, cap, 0, &limit, &st);
    pthread_mutex_unlock(&trans_lock);
    if (st == U_BUFFER_OVERFLOW_ERROR && cap < (1 << 24)) {
      cap *= 4;
      continue;
    }
    if (U_FAILURE(st)) {
      rc = icu_code(st);
      goto done;
    }
    break;
  }
  st = U_ZERO_ERROR;
  u_strToUTF8WithSub(NULL, 0, &blen, u, ulen, 0xFFFD, NULL, &st);
  st = U_ZERO_ERROR;
  if (!(b = malloc((size_t)blen + 1))) {
    rc = NODUP_ERR_NOMEM;
    goto done;
  }
  u_strToUTF8WithSub(b, blen + 1, &blen, u, ulen, 0xFFFD, NULL, &st);
  if (U_FAILURE(st)) {
    rc = icu_code(st);
    goto done;
  }
  *out = b;
  b = NULL;
done:
  free(u);
  free(b);
  return rc;
}

/* Steps 3 and 4 on ASCII-ish text: slug characters into out (at most
 * `limit` bytes plus the NUL; out has room for limit + 1). */
static void normalize(char *out, const char *s, size_t limit) {
  size_t n = 0, cut;
  int sep = 0;
  char *dash;

  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '\'') continue;
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')) {
      if (sep && n) {
        if (n == limit) break;
        out[n++] = '-';
      }
      sep = 0;
      if (n == limit) {
        /* One more character than fits: remember that we must cut. */
        n = limit + 1;
        break;
      }
      out[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    } else {
      sep = 1;
    }
  }
  if (n <= limit) {
    /* Everything fit, except maybe a separator that would end it. */
    while (n && out[n - 1] == '-') n--;
    out[n] = '\0';
    return;
  }
  /* Too long: cut at a separator when that keeps at least half. */
  out[limit] = '\0';
  dash = strrchr(out, '-');
  cut = dash && (size_t)(dash - out) >= limit / 2 ? (size_t)(dash - out) : limit;
  while (cut && out[cut - 1] == '-') cut--;
  out[cut] = '\0';
}

static size_t slug_base_limit(const nodup_slug_options *opt) {
  size_t max = opt && opt->max_length ? opt->max_length : NODUP_SLUG_MAX_LENGTH;
  return max > NODUP_SLUG_SUFFIX_ROOM ? max - NODUP_SLUG_SUFFIX_ROOM : 0;
}

int nodup_slugify(char *out, size_t size, const char *text,
                  const nodup_slug_options *opt) {
  size_t limit = slug_base_limit(opt);
  size_t max = limit + NODUP_SLUG_SUFFIX_ROOM;
  char *ascii = NULL;
  int rc;

  if (!out || !text || limit == 0 || size < max + 1 ||
      (opt && opt->version > NODUP_SLUG_OPTIONS_VERSION)) {
    if (out && size) out[0] = '\0';
    return NODUP_ERR_USAGE;
  }
  out[0] = '\0';
  rc = transliterate(text, utf8_prefix(text, SLUGIFY_INPUT_MAX), &ascii);
  if (rc != NODUP_OK) return rc;
  normalize(out, ascii, limit);
  free(ascii);
  if (!out[0]) {
    const char *fb = opt && opt->fallback ? opt->fallback : SLUGIFY_FALLBACK;
    normalize(out, fb, limit);
    if (!out[0]) normalize(out, SLUGIFY_FALLBACK, limit);
  }
  return NODUP_OK;
}

int nodup_slug_is_reserved(const char *slug, const nodup_slug_options *opt) {
  const char *const *words = default_reserved;
  size_t n = sizeof default_reserved / sizeof default_reserved[0], i;
  const char *p;
  if (!slug || !*slug) return 0;
  for (p = slug; *p >= '0' && *p <= '9'; p++) {}
  if (!*p) return 1;  /* all digits: would read as an id */
  if (opt && opt->reserved) {
    words = opt->reserved;
    n = opt->nreserved;
  }
  for (i = 0; i < n; i++)
    if (words[i] && strcmp(words[i], slug) == 0) return 1;
  return 0;
}

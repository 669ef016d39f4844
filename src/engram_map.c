/* The Engram compressed token map (spec 5.3 Hashing 1): each token decoded
 * alone, normalised like HF's build_compressed_token_map (NFKC, NFD, strip
 * accents, lowercase, whitespace rules), classes numbered by first
 * appearance. */
#include "engram.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>


/* Unicode White_Space, the set Rust's char::is_whitespace (HF Strip) uses */
static int is_white_space(int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static int is_mark(int32_t c) {
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ME;
}

/* The text of a decoded token holds U+FFFD: its bytes are not valid UTF-8
 * (from_utf8_lossy would replace them) or spell U+FFFD itself. */
static int has_replacement(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
        if (k <= 0 || c == 0xFFFD) return 1;
        i += (size_t)k;
    }
    return 0;
}

/* A growing byte buffer for the keys of all tokens */
typedef struct {
    char *p;
    size_t n, cap;
} keybuf;

static lt_status keybuf_put(keybuf *b, const void *s, size_t n, lt_error *err) {
    if (b->n + n + 4 > b->cap) {
        size_t cap = (b->cap ? 2 * b->cap : 1 << 20) + n + 4;
        char *p = realloc(b->p, cap);
        if (!p) return lt_fail(err, LT_ERR_NOMEM, "out of memory building the Engram token map");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return LT_OK;
}

static lt_status keybuf_put_cp(keybuf *b, int32_t c, lt_error *err) {
    utf8proc_uint8_t u[4];
    return keybuf_put(b, u, (size_t)utf8proc_encode_char(c, u), err);
}

/* The HF normalizer sequence on valid UTF-8 text, appended to b:
 * NFKC -> NFD -> StripAccents (marks Mn/Mc/Me) -> Lowercase -> [ \t\r\n]+
 * to " " -> "^ $" to U+E000 -> Strip -> U+E000 to " ". Lowercase is the
 * simple mapping: the only full mapping that differs (U+0130) cannot occur
 * after NFD and StripAccents. The text has no newline left when "^ $" runs,
 * so it matches exactly the text " ". */
static lt_status normalize(const char *s, size_t n, keybuf *b, lt_error *err) {
    utf8proc_uint8_t *nfkc = NULL, *nfd = NULL;
    utf8proc_ssize_t nk = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &nfkc,
                                       UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    utf8proc_ssize_t nd = nk < 0 ? nk : utf8proc_map(nfkc, nk, &nfd, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    free(nfkc);
    if (nd < 0) return lt_fail(err, LT_ERR_FORMAT, "Engram token map: normalising a token failed: %s", utf8proc_errmsg(nd));
    int32_t *cp = malloc(((size_t)nd + 1) * sizeof *cp);
    if (!cp) {
        free(nfd);
        return lt_fail(err, LT_ERR_NOMEM, "out of memory building the Engram token map");
    }
    size_t m = 0;
    for (utf8proc_ssize_t i = 0; i < nd;) {
        utf8proc_int32_t c;
        i += utf8proc_iterate(nfd + i, nd - i, &c);
        if (is_mark(c)) continue;
        c = utf8proc_tolower(c);
        int blank = c == ' ' || c == '\t' || c == '\r' || c == '\n';
        if (blank && m && cp[m - 1] == ' ') continue;
        cp[m++] = blank ? ' ' : c;
    }
    free(nfd);
    if (m == 1 && cp[0] == ' ') cp[0] = 0xE000;
    size_t a = 0, z = m;
    while (a < z && is_white_space(cp[a])) a++;
    while (z > a && is_white_space(cp[z - 1])) z--;
    lt_status st = LT_OK;
    for (size_t i = a; i < z && st == LT_OK; i++) st = keybuf_put_cp(b, cp[i] == 0xE000 ? ' ' : cp[i], err);
    free(cp);
    return st;
}

/* The dictionary key of one token (HF: raw string, normalized text, or the
 * text when normalization leaves nothing) */
static lt_status token_key(const lt_tokenizer *t, int32_t id, keybuf *b, lt_error *err) {
    size_t n = 0;
    const char *s = lt_tokenizer_token_bytes(t, id, &n);
    if (!s) return LT_OK; /* an id without a token decodes to "" */
    if (has_replacement(s, n)) { /* keyed by the raw token string (HF id_to_token) */
        size_t spell_len = 0;
        const char *spell = lt_tokenizer_token_spelling(t, id, &spell_len);
        return keybuf_put(b, spell, spell_len, err);
    }
    size_t start = b->n;
    lt_status st = normalize(s, n, b, err);
    if (st == LT_OK && b->n == start) st = keybuf_put(b, s, n, err);
    return st;
}

typedef struct {
    const char *blob;
    const size_t *off; /* [vocab + 1] */
} key_table;

static size_t key_len(const key_table *k, int32_t id) { return k->off[id + 1] - k->off[id]; }

static int key_eq(const key_table *k, int32_t a, int32_t b) {
    return key_len(k, a) == key_len(k, b) && !memcmp(k->blob + k->off[a], k->blob + k->off[b], key_len(k, a));
}

/* qsort_r order: by key bytes, then by id */
static int key_cmp(const void *pa, const void *pb, void *ctx) {
    const key_table *k = ctx;
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    size_t na = key_len(k, a), nb = key_len(k, b);
    int c = memcmp(k->blob + k->off[a], k->blob + k->off[b], na < nb ? na : nb);
    if (c) return c;
    if (na != nb) return na < nb ? -1 : 1;
    return (a > b) - (a < b);
}

/* Classes in order of first appearance: sorting ids by (key, id) puts each
 * class's first id at the head of its run; walking the ids in order then
 * opens a new class exactly at those heads. */
static void number_classes(const key_table *k, int32_t *order, int32_t vocab, int32_t *map, int64_t *n_classes) {
    for (int32_t i = 0; i < vocab; i++) order[i] = i;
    qsort_r(order, (size_t)vocab, sizeof *order, key_cmp, (void *)k);
    for (int32_t i = 0, head = 0; i < vocab; i++) {
        if (i == 0 || !key_eq(k, order[i - 1], order[i])) head = order[i];
        map[order[i]] = head; /* the class's first id, for now */
    }
    int64_t next = 0;
    for (int32_t i = 0; i < vocab; i++) map[i] = map[i] == i ? (int32_t)next++ : map[map[i]];
    *n_classes = next;
}

lt_status lt_engram_token_map(const lt_tokenizer *t, int32_t *map, int64_t *n_classes, lt_error *err) {
    int32_t vocab = lt_tokenizer_vocab_size(t);
    keybuf b = {0};
    size_t *off = malloc(((size_t)vocab + 1) * sizeof *off);
    int32_t *order = malloc((size_t)vocab * sizeof *order);
    lt_status st = off && order ? LT_OK : lt_fail(err, LT_ERR_NOMEM, "out of memory building the Engram token map");
    for (int32_t id = 0; id < vocab && st == LT_OK; id++) {
        off[id] = b.n;
        st = token_key(t, id, &b, err);
    }
    if (st == LT_OK) {
        off[vocab] = b.n;
        key_table k = {b.p, off};
        number_classes(&k, order, vocab, map, n_classes);
    }
    free(b.p);
    free(off);
    free(order);
    return st;
}

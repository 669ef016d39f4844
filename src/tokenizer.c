/* Byte-level BPE tokenizer (HF tokenizer.json): loading, added-token
 * splitting, regex pre-tokenization, BPE merges, decoding and streaming
 * decoding. See tokenizer.h for the pipeline and the contracts; the HF
 * behaviours mirrored here are named where they are reproduced
 * (tokenizers/src/tokenizer/added_vocabulary.rs, models/bpe/word.rs,
 * pre_tokenizers/byte_level.rs). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer.h"

#include "util.h"

#include <jansson.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_PRE_STEPS 8
#define CACHE_MAX_WORD 256     /* longer pre-token words are not cached (bytes) */
#define CACHE_MAX_ENTRIES 65536 /* the cache is emptied when it reaches this */

/* ---- UTF-8 ------------------------------------------------------------ */

typedef enum { UTF8_VALID, UTF8_INVALID, UTF8_INCOMPLETE } utf8_kind;

/* Classifies the character starting at s (n > 0 bytes available). *len is
 * its length (VALID), the length of the maximal invalid subpart to replace by
 * one U+FFFD (INVALID), or the bytes present of a valid but cut-off prefix
 * (INCOMPLETE). Ranges per Unicode table 3-7, which Python follows. */
static utf8_kind utf8_char(const unsigned char *s, size_t n, int *len) {
    unsigned b = s[0];
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    if (b < 0x80) { *len = 1; return UTF8_VALID; }
    if (b >= 0xC2 && b <= 0xDF) need = 1;
    else if (b >= 0xE0 && b <= 0xEF) { need = 2; if (b == 0xE0) lo = 0xA0; if (b == 0xED) hi = 0x9F; }
    else if (b >= 0xF0 && b <= 0xF4) { need = 3; if (b == 0xF0) lo = 0x90; if (b == 0xF4) hi = 0x8F; }
    else { *len = 1; return UTF8_INVALID; }
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n) { *len = i; return UTF8_INCOMPLETE; }
        if (s[i] < lo || s[i] > hi) { *len = i; return UTF8_INVALID; }
        lo = 0x80, hi = 0xBF;
    }
    *len = need + 1;
    return UTF8_VALID;
}

static uint32_t utf8_decode(const unsigned char *s, int len) {
    if (len == 1) return s[0];
    uint32_t cp = s[0] & (0x7F >> len);
    for (int i = 1; i < len; i++) cp = (cp << 6) | (s[i] & 0x3F);
    return cp;
}

static int utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static const char REPLACEMENT[3] = {(char)0xEF, (char)0xBF, (char)0xBD}; /* U+FFFD */

/* Unicode White_Space (Rust char::is_whitespace, used by lstrip/rstrip). */
static int is_white_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* ---- hash maps ---------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* Byte string -> int32 map; keys are copied into one blob. */
typedef struct { uint32_t off, len; int32_t val; int used; } smap_slot;
typedef struct {
    smap_slot *slots;
    size_t cap, n; /* cap is a power of two */
    char *blob;
    size_t blob_len, blob_cap;
} smap;

static smap_slot *smap_find(const smap *m, const char *k, size_t n) {
    size_t i = hash_bytes(k, n) & (m->cap - 1);
    for (;; i = (i + 1) & (m->cap - 1)) {
        smap_slot *s = &m->slots[i];
        if (!s->used || (s->len == n && !memcmp(m->blob + s->off, k, n))) return s;
    }
}

static int smap_get(const smap *m, const char *k, size_t n, int32_t *val) {
    if (!m->cap) return 0;
    smap_slot *s = smap_find(m, k, n);
    if (!s->used) return 0;
    *val = s->val;
    return 1;
}

static void smap_clear(smap *m) {
    memset(m->slots, 0, m->cap * sizeof *m->slots);
    m->n = 0;
    m->blob_len = 0;
}

static lt_status smap_init(smap *m, size_t expected, lt_error *err) {
    size_t cap = 16;
    while (cap < 2 * expected) cap *= 2;
    m->slots = lt_calloc(cap, sizeof *m->slots, "tokenizer hash map", err);
    if (!m->slots) return LT_ERR_NOMEM;
    m->cap = cap;
    return LT_OK;
}

/* Inserts or overwrites k -> val. The table never grows: callers size it. */
static lt_status smap_put(smap *m, const char *k, size_t n, int32_t val, lt_error *err) {
    smap_slot *s = smap_find(m, k, n);
    if (s->used) { s->val = val; return LT_OK; }
    if (2 * (m->n + 1) > m->cap) return lt_fail(err, LT_ERR_NOMEM, "tokenizer hash map full (%zu entries)", m->n);
    if (m->blob_len + n > m->blob_cap) {
        size_t cap = LT_MAX(2 * m->blob_cap, m->blob_len + n + 4096);
        char *b = realloc(m->blob, cap);
        if (!b) return lt_fail(err, LT_ERR_NOMEM, "out of memory growing tokenizer strings (%zu bytes)", cap);
        m->blob = b, m->blob_cap = cap;
    }
    memcpy(m->blob + m->blob_len, k, n);
    *s = (smap_slot){(uint32_t)m->blob_len, (uint32_t)n, val, 1};
    m->blob_len += n;
    m->n++;
    return LT_OK;
}

static void smap_free(smap *m) {
    free(m->slots);
    free(m->blob);
}

/* (left id, right id) -> (rank, merged id). */
typedef struct { uint64_t key; int32_t rank, new_id; } pair_slot;
typedef struct { pair_slot *slots; size_t cap; } pairmap;

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static pair_slot *pairmap_find(const pairmap *m, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 20) & (m->cap - 1);
    for (;; i = (i + 1) & (m->cap - 1))
        if (m->slots[i].key == key || m->slots[i].key == UINT64_MAX) return &m->slots[i];
}

/* ---- byte <-> unicode alphabet (GPT-2 bytes_to_unicode) ----------------- */

/* Printable bytes stand for themselves; the others take 256, 257, ... in
 * byte order. The alphabet's code points are all below 324. */
#define ALPHABET_END 324

typedef struct {
    uint16_t cp[256];            /* byte -> code point */
    int16_t byte[ALPHABET_END];  /* code point -> byte, or -1 */
} byte_alphabet;

static byte_alphabet make_alphabet(void) {
    byte_alphabet a;
    int next = 256;
    memset(a.byte, 0xFF, sizeof a.byte);
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        a.cp[b] = (uint16_t)(printable ? b : next++);
        a.byte[a.cp[b]] = (int16_t)b;
    }
    return a;
}

/* ---- tokenizer state ---------------------------------------------------- */

typedef struct {
    int32_t id;
    char *content;
    size_t len;
    unsigned special : 1, normalized : 1, lstrip : 1, rstrip : 1, single_word : 1;
} added_token;

/* Byte trie over added-token contents; node 0 is the root. */
typedef struct { int32_t child, sibling, token; unsigned char byte; } trie_node;
typedef struct { trie_node *nodes; size_t n, cap; } trie;

typedef struct {
    uint32_t off, len;       /* decoded bytes in token_bytes */
    const char *spell;       /* stored spelling (HF id_to_token): vocab blob or added content */
    uint32_t spell_len;
    unsigned present : 1, special : 1;
} token_info;

struct lt_tokenizer {
    smap vocab;                 /* BPE vocabulary, byte-level spelling -> id */
    smap added_by_content;      /* added token content -> id */
    pairmap merges;
    byte_alphabet alpha;
    int32_t byte_id[256];       /* id of the single-byte symbol of each byte */
    added_token *added;
    size_t n_added;
    trie trie_raw, trie_norm;   /* normalized=false / normalized=true tokens */
    pcre2_code *steps[MAX_PRE_STEPS];
    int n_steps;
    pcre2_code *word_char;      /* one alphanumeric-or-'_' character (single_word) */
    token_info *tokens;         /* [vocab_size] decoded bytes of every id */
    char *token_bytes;
    int32_t vocab_size, bos, eos;
    int ignore_merges;
    pthread_mutex_t cache_lock; /* guards cache and cache_ids */
    smap cache;                 /* word bytes -> offset in cache_ids (count, ids...) */
    int32_t *cache_ids;
    size_t cache_n, cache_cap;
};

/* HF ByteLevel decoder: every character of the token mapped back to its
 * byte; a token with any character outside the alphabet is kept as its raw
 * UTF-8 bytes. Writes at most len bytes to out. */
static size_t byte_level_decode(const byte_alphabet *a, const char *s, size_t len, char *out) {
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int cl;
        if (utf8_char((const unsigned char *)s + i, len - i, &cl) != UTF8_VALID) break;
        uint32_t cp = utf8_decode((const unsigned char *)s + i, cl);
        int b = cp < ALPHABET_END ? a->byte[cp] : -1;
        if (b < 0) break;
        out[n++] = (char)b;
        i += (size_t)cl;
        if (i == len) return n;
    }
    memcpy(out, s, len);
    return len;
}

/* ---- loading ------------------------------------------------------------ */

static const char *jstr(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static lt_status check_model(json_t *model, const char *path, lt_error *err) {
    const char *type = jstr(model, "type");
    if (!type || strcmp(type, "BPE"))
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: model.type is '%s', only BPE is supported", path, type ? type : "");
    static const char *const null_keys[] = {"continuing_subword_prefix", "end_of_word_suffix", "unk_token"};
    for (size_t i = 0; i < sizeof null_keys / sizeof *null_keys; i++) {
        json_t *v = json_object_get(model, null_keys[i]);
        if (v && !json_is_null(v))
            return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: model.%s is set; only null is supported", path, null_keys[i]);
    }
    json_t *d = json_object_get(model, "dropout");
    if (d && !json_is_null(d) && json_number_value(d) != 0)
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: model.dropout is set; only null is supported", path);
    if (json_is_true(json_object_get(model, "byte_fallback")))
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: model.byte_fallback is true; only false is supported", path);
    return LT_OK;
}

static lt_status load_vocab(lt_tokenizer *t, json_t *vocab, const char *path, lt_error *err) {
    if (!json_is_object(vocab)) return lt_fail(err, LT_ERR_FORMAT, "%s: model.vocab is not an object", path);
    lt_status st = smap_init(&t->vocab, json_object_size(vocab), err);
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        if (st) return st;
        json_int_t id = json_integer_value(val);
        if (!json_is_integer(val) || id < 0 || id >= INT32_MAX / 2)
            return lt_fail(err, LT_ERR_FORMAT, "%s: model.vocab['%s'] is not a token id", path, key);
        st = smap_put(&t->vocab, key, strlen(key), (int32_t)id, err);
        if (id >= t->vocab_size) t->vocab_size = (int32_t)id + 1;
    }
    return st;
}

static lt_status vocab_id(lt_tokenizer *t, const char *s, size_t n, int32_t *id, const char *path, lt_error *err) {
    if (smap_get(&t->vocab, s, n, id)) return LT_OK;
    return lt_fail(err, LT_ERR_FORMAT, "%s: merge part '%.*s' is not in model.vocab", path, (int)n, s);
}

/* One merge, either "a b" (older files) or ["a", "b"]. */
static lt_status merge_parts(json_t *m, const char **a, size_t *na, const char **b, size_t *nb) {
    if (json_is_string(m)) {
        const char *s = json_string_value(m), *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' ')) return LT_ERR_FORMAT;
        *a = s, *na = (size_t)(sp - s), *b = sp + 1, *nb = strlen(sp + 1);
        return LT_OK;
    }
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *a = json_string_value(json_array_get(m, 0)), *na = json_string_length(json_array_get(m, 0));
        *b = json_string_value(json_array_get(m, 1)), *nb = json_string_length(json_array_get(m, 1));
        return LT_OK;
    }
    return LT_ERR_FORMAT;
}

static lt_status load_merges(lt_tokenizer *t, json_t *merges, const char *path, lt_error *err) {
    if (!json_is_array(merges)) return lt_fail(err, LT_ERR_FORMAT, "%s: model.merges is not an array", path);
    size_t cap = 16, n = json_array_size(merges);
    while (cap < 2 * n) cap *= 2;
    t->merges.slots = malloc(cap * sizeof *t->merges.slots);
    if (!t->merges.slots) return lt_fail(err, LT_ERR_NOMEM, "out of memory for %zu merges", n);
    memset(t->merges.slots, 0xFF, cap * sizeof *t->merges.slots);
    t->merges.cap = cap;
    char buf[2 * LT_DETOK_MAX_TOKEN];
    for (size_t i = 0; i < n; i++) {
        const char *a, *b;
        size_t na, nb;
        int32_t ia = 0, ib = 0, inew = 0;
        if (merge_parts(json_array_get(merges, i), &a, &na, &b, &nb))
            return lt_fail(err, LT_ERR_FORMAT, "%s: model.merges[%zu] is not \"a b\" or [a, b]", path, i);
        if (na + nb > sizeof buf)
            return lt_fail(err, LT_ERR_FORMAT, "%s: model.merges[%zu] is longer than %zu bytes", path, i, sizeof buf);
        lt_status st = vocab_id(t, a, na, &ia, path, err);
        if (!st) st = vocab_id(t, b, nb, &ib, path, err);
        memcpy(buf, a, na);
        memcpy(buf + na, b, nb);
        if (!st) st = vocab_id(t, buf, na + nb, &inew, path, err);
        if (st) return st;
        /* a repeated pair keeps its last rank, as HF's HashMap collect does */
        pair_slot *s = pairmap_find(&t->merges, pair_key(ia, ib));
        *s = (pair_slot){pair_key(ia, ib), (int32_t)i, inew};
    }
    return LT_OK;
}

static lt_status trie_add(trie *tr, const char *s, size_t n, int32_t token, lt_error *err) {
    int32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t c = tr->nodes[node].child;
        while (c >= 0 && tr->nodes[c].byte != (unsigned char)s[i]) c = tr->nodes[c].sibling;
        if (c < 0) {
            if (tr->n == tr->cap) {
                size_t cap = 2 * tr->cap;
                trie_node *nn = realloc(tr->nodes, cap * sizeof *nn);
                if (!nn) return lt_fail(err, LT_ERR_NOMEM, "out of memory building the added-token trie");
                tr->nodes = nn, tr->cap = cap;
            }
            c = (int32_t)tr->n++;
            tr->nodes[c] = (trie_node){-1, tr->nodes[node].child, -1, (unsigned char)s[i]};
            tr->nodes[node].child = c;
        }
        node = c;
    }
    tr->nodes[node].token = token;
    return LT_OK;
}

static lt_status trie_init(trie *tr, lt_error *err) {
    tr->cap = 256;
    tr->nodes = lt_calloc(tr->cap, sizeof *tr->nodes, "added-token trie", err);
    if (!tr->nodes) return LT_ERR_NOMEM;
    tr->nodes[0] = (trie_node){-1, -1, -1, 0};
    tr->n = 1;
    return LT_OK;
}

static lt_status load_added(lt_tokenizer *t, json_t *arr, const char *path, lt_error *err) {
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
    if (arr && !json_is_array(arr) && !json_is_null(arr))
        return lt_fail(err, LT_ERR_FORMAT, "%s: added_tokens is not an array", path);
    lt_status st;
    if ((st = trie_init(&t->trie_raw, err)) || (st = trie_init(&t->trie_norm, err)) ||
        (st = smap_init(&t->added_by_content, n, err)))
        return st;
    t->added = lt_calloc(n, sizeof *t->added, "added tokens", err);
    if (!t->added) return LT_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_array_get(arr, i), *id = json_object_get(a, "id"), *c = json_object_get(a, "content");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= INT32_MAX / 2 ||
            !json_is_string(c) || !json_string_length(c))
            return lt_fail(err, LT_ERR_FORMAT, "%s: added_tokens[%zu] lacks an id or a non-empty content", path, i);
        added_token *tok = &t->added[t->n_added++];
        tok->id = (int32_t)json_integer_value(id);
        tok->len = json_string_length(c);
        tok->content = malloc(tok->len + 1);
        if (!tok->content) return lt_fail(err, LT_ERR_NOMEM, "out of memory for added token %d", tok->id);
        memcpy(tok->content, json_string_value(c), tok->len + 1);
        tok->special = json_is_true(json_object_get(a, "special"));
        tok->normalized = json_is_true(json_object_get(a, "normalized"));
        tok->lstrip = json_is_true(json_object_get(a, "lstrip"));
        tok->rstrip = json_is_true(json_object_get(a, "rstrip"));
        tok->single_word = json_is_true(json_object_get(a, "single_word"));
        if (tok->id >= t->vocab_size) t->vocab_size = tok->id + 1;
        if ((st = smap_put(&t->added_by_content, tok->content, tok->len, tok->id, err)) ||
            (st = trie_add(tok->normalized ? &t->trie_norm : &t->trie_raw, tok->content, tok->len,
                           (int32_t)(t->n_added - 1), err)))
            return st;
    }
    return LT_OK;
}

static lt_status check_normalizer(json_t *norm, const char *path, lt_error *err) {
    if (!norm || json_is_null(norm)) return LT_OK;
    const char *type = jstr(norm, "type");
    if (type && !strcmp(type, "Sequence") && json_array_size(json_object_get(norm, "normalizers")) == 0)
        return LT_OK;
    return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: normalizer '%s' is not supported (only none or an empty Sequence)",
                   path, type ? type : "?");
}

/* \s in HF's regex engine (Oniguruma) is exactly Unicode White_Space; in
 * PCRE2 with UCP it also matches U+180E. The pattern is rewritten so \s and
 * \S name the White_Space set explicitly (\S inside a class is refused). */
#define WHITE_SPACE_SET "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

static char *rewrite_whitespace(const char *pat) {
    size_t n = strlen(pat);
    char *out = malloc(sizeof WHITE_SPACE_SET * n + 1), *o = out;
    if (!out) return NULL;
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < n) {
            char e = pat[++i];
            if (e == 's' && !in_class) o += sprintf(o, "[" WHITE_SPACE_SET "]");
            else if (e == 'S' && !in_class) o += sprintf(o, "[^" WHITE_SPACE_SET "]");
            else if (e == 's') o += sprintf(o, WHITE_SPACE_SET);
            else if (e == 'S') { free(out); return NULL; }
            else *o++ = '\\', *o++ = e;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = 1;
            *o++ = c;
            if (pat[i + 1] == '^') *o++ = pat[++i];
            if (pat[i + 1] == ']') *o++ = pat[++i]; /* a leading ']' is literal */
            continue;
        }
        if (c == ']' && in_class) in_class = 0;
        *o++ = c;
    }
    *o = 0;
    return out;
}

static lt_status compile_regex(pcre2_code **out, const char *pat, size_t len, uint32_t extra, const char *what,
                               lt_error *err) {
    int code;
    PCRE2_SIZE off;
    *out = pcre2_compile((PCRE2_SPTR)pat, len, PCRE2_UTF | PCRE2_UCP | extra, &code, &off, NULL);
    if (!*out) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return lt_fail(err, LT_ERR_FORMAT, "%s: regex does not compile at offset %zu: %s", what, (size_t)off, msg);
    }
    pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE); /* falls back to the interpreter where JIT is missing */
    return LT_OK;
}

static lt_status add_split(lt_tokenizer *t, json_t *step, const char *path, lt_error *err) {
    const char *beh = jstr(step, "behavior");
    if (!beh || strcmp(beh, "Isolated") || json_is_true(json_object_get(step, "invert")))
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: Split behavior '%s' (invert %d) is not supported, only Isolated",
                       path, beh ? beh : "", json_is_true(json_object_get(step, "invert")));
    if (t->n_steps == MAX_PRE_STEPS)
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: more than %d Split steps", path, MAX_PRE_STEPS);
    json_t *pat = json_object_get(step, "pattern");
    const char *re = jstr(pat, "Regex"), *lit = jstr(pat, "String");
    if (lit) return compile_regex(&t->steps[t->n_steps++], lit, strlen(lit), PCRE2_LITERAL, path, err);
    if (!re) return lt_fail(err, LT_ERR_FORMAT, "%s: Split step has no pattern.Regex or pattern.String", path);
    char *rw = rewrite_whitespace(re);
    if (!rw) return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: Split regex uses \\S inside a class: %s", path, re);
    lt_status st = compile_regex(&t->steps[t->n_steps++], rw, strlen(rw), 0, path, err);
    free(rw);
    return st;
}

static lt_status check_byte_level(json_t *step, const char *path, lt_error *err) {
    if (json_is_true(json_object_get(step, "add_prefix_space")) || json_is_true(json_object_get(step, "use_regex")))
        return lt_fail(err, LT_ERR_UNSUPPORTED,
                       "%s: ByteLevel pre-tokenizer with add_prefix_space or use_regex is not supported", path);
    return LT_OK;
}

/* Accepts a Sequence of Split(Isolated) steps ending in ByteLevel, or a bare
 * ByteLevel: the byte-level mapping itself happens inside BPE. */
static lt_status load_pre_tokenizer(lt_tokenizer *t, json_t *pre, const char *path, lt_error *err) {
    const char *type = jstr(pre, "type");
    if (type && !strcmp(type, "ByteLevel")) return check_byte_level(pre, path, err);
    json_t *list = json_object_get(pre, "pretokenizers");
    if (!type || strcmp(type, "Sequence") || !json_is_array(list))
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: pre_tokenizer '%s' is not supported", path, type ? type : "");
    size_t n = json_array_size(list);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(list, i);
        const char *st = jstr(s, "type");
        lt_status r;
        if (st && !strcmp(st, "Split")) r = add_split(t, s, path, err);
        else if (st && !strcmp(st, "ByteLevel") && i == n - 1) r = check_byte_level(s, path, err);
        else r = lt_fail(err, LT_ERR_UNSUPPORTED, "%s: pre_tokenizer step %zu '%s' is not supported", path, i, st ? st : "");
        if (r) return r;
    }
    if (n == 0 || strcmp(jstr(json_array_get(list, n - 1), "type"), "ByteLevel"))
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: pre_tokenizer does not end in ByteLevel", path);
    return LT_OK;
}

static lt_status build_token_table(lt_tokenizer *t, lt_error *err) {
    size_t total = t->vocab.blob_len;
    for (size_t i = 0; i < t->n_added; i++) total += t->added[i].len;
    t->tokens = lt_calloc((size_t)t->vocab_size, sizeof *t->tokens, "token table", err);
    t->token_bytes = lt_calloc(total + 1, 1, "token bytes", err);
    if (!t->tokens || !t->token_bytes) return LT_ERR_NOMEM;
    size_t at = 0;
    for (size_t i = 0; i < t->vocab.cap; i++) {
        smap_slot *s = &t->vocab.slots[i];
        if (!s->used) continue;
        if (s->len > LT_DETOK_MAX_TOKEN)
            return lt_fail(err, LT_ERR_UNSUPPORTED, "token %d is %u bytes, more than %d", s->val, s->len, LT_DETOK_MAX_TOKEN);
        size_t n = byte_level_decode(&t->alpha, t->vocab.blob + s->off, s->len, t->token_bytes + at);
        t->tokens[s->val] = (token_info){(uint32_t)at, (uint32_t)n, t->vocab.blob + s->off, s->len, 1, 0};
        at += n;
    }
    for (size_t i = 0; i < t->n_added; i++) { /* added tokens win over the vocabulary, as in HF */
        added_token *a = &t->added[i];
        if (a->len > LT_DETOK_MAX_TOKEN)
            return lt_fail(err, LT_ERR_UNSUPPORTED, "added token %d is %zu bytes, more than %d", a->id, a->len, LT_DETOK_MAX_TOKEN);
        size_t n = byte_level_decode(&t->alpha, a->content, a->len, t->token_bytes + at);
        t->tokens[a->id] = (token_info){(uint32_t)at, (uint32_t)n, a->content, (uint32_t)a->len, 1, a->special};
        at += n;
    }
    return LT_OK;
}

static lt_status load_byte_ids(lt_tokenizer *t, const char *path, lt_error *err) {
    for (int b = 0; b < 256; b++) {
        char s[4];
        int n = utf8_encode(t->alpha.cp[b], s);
        if (!smap_get(&t->vocab, s, (size_t)n, &t->byte_id[b]))
            return lt_fail(err, LT_ERR_FORMAT, "%s: model.vocab lacks the byte symbol '%.*s' for byte 0x%02X", path, n, s, b);
    }
    return LT_OK;
}

/* bos_token / eos_token of tokenizer_config.json: a string or {content}. */
static int32_t config_token(const lt_tokenizer *t, json_t *cfg, const char *key) {
    json_t *v = json_object_get(cfg, key);
    const char *s = json_is_string(v) ? json_string_value(v) : jstr(v, "content");
    return s ? lt_tokenizer_token_id(t, s) : -1;
}

/* tokenizer_config.json is optional; when present it must parse. */
static lt_status load_config(lt_tokenizer *t, const char *dir, lt_error *err) {
    char path[4096];
    t->bos = t->eos = -1;
    if (!dir || lt_path_join(path, sizeof path, dir, "tokenizer_config.json", NULL) || !lt_file_exists(path))
        return LT_OK;
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    if (!cfg) return lt_fail(err, LT_ERR_FORMAT, "%s:%d: %s", path, je.line, je.text);
    t->bos = config_token(t, cfg, "bos_token");
    t->eos = config_token(t, cfg, "eos_token");
    json_decref(cfg);
    return LT_OK;
}

static lt_status load_json(lt_tokenizer *t, json_t *root, const char *path, lt_error *err) {
    json_t *model = json_object_get(root, "model");
    lt_status st;
    if (!json_is_object(model)) return lt_fail(err, LT_ERR_FORMAT, "%s: no model object", path);
    if ((st = check_model(model, path, err)) || (st = load_vocab(t, json_object_get(model, "vocab"), path, err)) ||
        (st = load_merges(t, json_object_get(model, "merges"), path, err)) || (st = load_byte_ids(t, path, err)) ||
        (st = load_added(t, json_object_get(root, "added_tokens"), path, err)) ||
        (st = check_normalizer(json_object_get(root, "normalizer"), path, err)) ||
        (st = load_pre_tokenizer(t, json_object_get(root, "pre_tokenizer"), path, err)) ||
        (st = build_token_table(t, err)))
        return st;
    t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    return compile_regex(&t->word_char, "^[\\p{Alphabetic}\\p{N}_]$", PCRE2_ZERO_TERMINATED, 0, "single_word", err);
}

lt_status lt_tokenizer_load(lt_tokenizer **out, const char *path, lt_error *err) {
    char file[4096];
    const char *dir = NULL;
    lt_status st;
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return lt_fail(err, LT_ERR_IO, "%s: no such file or folder", path);
    if (S_ISDIR(sb.st_mode)) {
        dir = path;
        if ((st = lt_path_join(file, sizeof file, path, "tokenizer.json", err))) return st;
        if (!lt_file_exists(file)) return lt_fail(err, LT_ERR_IO, "%s: no tokenizer.json in this folder", path);
    } else {
        snprintf(file, sizeof file, "%s", path);
    }
    char *text;
    size_t len;
    json_error_t je;
    if ((st = lt_read_file(file, &text, &len, err))) return st;
    json_t *root = json_loadb(text, len, JSON_ALLOW_NUL, &je); /* faster than json_load_file's getc */
    free(text);
    if (!root) return lt_fail(err, LT_ERR_FORMAT, "%s:%d: %s", file, je.line, je.text);
    lt_tokenizer *t = lt_calloc(1, sizeof *t, "tokenizer", err);
    if (!t) { json_decref(root); return LT_ERR_NOMEM; }
    pthread_mutex_init(&t->cache_lock, NULL);
    t->alpha = make_alphabet();
    st = load_json(t, root, file, err);
    json_decref(root);
    if (!st) st = smap_init(&t->cache, CACHE_MAX_ENTRIES, err);
    if (!st) st = load_config(t, dir, err);
    if (st) { lt_tokenizer_free(t); return st; }
    *out = t;
    return LT_OK;
}

void lt_tokenizer_free(lt_tokenizer *t) {
    if (!t) return;
    smap_free(&t->vocab);
    smap_free(&t->added_by_content);
    smap_free(&t->cache);
    free(t->merges.slots);
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    free(t->trie_raw.nodes);
    free(t->trie_norm.nodes);
    for (int i = 0; i < t->n_steps; i++) pcre2_code_free(t->steps[i]);
    pcre2_code_free(t->word_char);
    free(t->tokens);
    free(t->token_bytes);
    free(t->cache_ids);
    pthread_mutex_destroy(&t->cache_lock);
    free(t);
}

/* ---- token vectors ------------------------------------------------------ */

lt_status lt_token_vec_push(lt_token_vec *v, int32_t id, lt_error *err) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        int32_t *p = realloc(v->ids, cap * sizeof *p);
        if (!p) return lt_fail(err, LT_ERR_NOMEM, "out of memory for %zu token ids", cap);
        v->ids = p, v->cap = cap;
    }
    v->ids[v->n++] = id;
    return LT_OK;
}

void lt_token_vec_free(lt_token_vec *v) {
    free(v->ids);
    *v = (lt_token_vec){0};
}

/* ---- encoding: BPE over one pre-token word (HF models/bpe/word.rs) ------ */

typedef struct { int32_t id, prev, next, alive; } bpe_sym;
typedef struct { int32_t rank, pos, new_id; } bpe_merge;

typedef struct {
    lt_tokenizer *t;
    lt_token_vec *out;
    lt_error *err;
    pcre2_match_data *md[MAX_PRE_STEPS];
    bpe_sym *syms;
    bpe_merge *heap;
    size_t n_heap, cap; /* syms hold cap entries, heap 3 * cap */
} encoder;

static int merge_before(bpe_merge a, bpe_merge b) { return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos; }

static void heap_push(encoder *e, bpe_merge m) {
    size_t i = e->n_heap++;
    for (; i && merge_before(m, e->heap[(i - 1) / 2]); i = (i - 1) / 2) e->heap[i] = e->heap[(i - 1) / 2];
    e->heap[i] = m;
}

static bpe_merge heap_pop(encoder *e) {
    bpe_merge top = e->heap[0], last = e->heap[--e->n_heap];
    size_t i = 0, n = e->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && merge_before(e->heap[c + 1], e->heap[c])) c++;
        if (!merge_before(e->heap[c], last)) break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    e->heap[i] = last;
    return top;
}

/* Queues the merge of symbol pos with its right neighbour, if one exists. */
static void queue_pair(encoder *e, int32_t pos) {
    int32_t next = e->syms[pos].next;
    if (next < 0) return;
    pair_slot *s = pairmap_find(&e->t->merges, pair_key(e->syms[pos].id, e->syms[next].id));
    if (s->key != UINT64_MAX) heap_push(e, (bpe_merge){s->rank, pos, s->new_id});
}

static lt_status reserve_scratch(encoder *e, size_t n) {
    if (n <= e->cap) return LT_OK;
    size_t cap = LT_MAX(n, 2 * e->cap);
    bpe_sym *s = realloc(e->syms, cap * sizeof *s);
    if (s) e->syms = s;
    bpe_merge *h = realloc(e->heap, 3 * cap * sizeof *h);
    if (h) e->heap = h;
    if (!s || !h) return lt_fail(e->err, LT_ERR_NOMEM, "out of memory for a %zu-byte word", n);
    e->cap = cap;
    return LT_OK;
}

/* Lowest rank first, leftmost on ties; an entry whose pair has changed
 * since it was queued is stale and skipped. */
static void bpe_merge_all(encoder *e, size_t n) {
    e->n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++) queue_pair(e, (int32_t)i);
    while (e->n_heap) {
        bpe_merge m = heap_pop(e);
        bpe_sym *cur = &e->syms[m.pos];
        if (!cur->alive || cur->next < 0) continue;
        bpe_sym *right = &e->syms[cur->next];
        pair_slot *s = pairmap_find(&e->t->merges, pair_key(cur->id, right->id));
        if (s->key == UINT64_MAX || s->new_id != m.new_id) continue;
        cur->id = m.new_id;
        right->alive = 0;
        cur->next = right->next;
        if (cur->next >= 0) e->syms[cur->next].prev = m.pos;
        if (cur->prev >= 0) queue_pair(e, cur->prev);
        queue_pair(e, m.pos);
    }
}

static int cache_lookup(encoder *e, const char *w, size_t n) {
    lt_tokenizer *t = e->t;
    int32_t at;
    int hit = 0;
    pthread_mutex_lock(&t->cache_lock);
    if (smap_get(&t->cache, w, n, &at)) {
        hit = 1;
        for (int32_t i = 0; i < t->cache_ids[at] && hit; i++)
            hit = lt_token_vec_push(e->out, t->cache_ids[at + 1 + i], e->err) == LT_OK ? 1 : -1;
    }
    pthread_mutex_unlock(&t->cache_lock);
    return hit;
}

/* Remembers the ids just appended for word w; a full cache starts over. */
static lt_status cache_store(encoder *e, const char *w, size_t n, size_t first) {
    lt_tokenizer *t = e->t;
    size_t count = e->out->n - first;
    lt_status st = LT_OK;
    pthread_mutex_lock(&t->cache_lock);
    if (t->cache.n == CACHE_MAX_ENTRIES) smap_clear(&t->cache), t->cache_n = 0;
    if (t->cache_n + count + 1 > t->cache_cap) {
        size_t cap = LT_MAX(2 * t->cache_cap, t->cache_n + count + 4096);
        int32_t *p = realloc(t->cache_ids, cap * sizeof *p);
        if (!p) st = lt_fail(e->err, LT_ERR_NOMEM, "out of memory growing the word cache");
        else t->cache_ids = p, t->cache_cap = cap;
    }
    if (!st) {
        t->cache_ids[t->cache_n] = (int32_t)count;
        memcpy(t->cache_ids + t->cache_n + 1, e->out->ids + first, count * sizeof(int32_t));
        st = smap_put(&t->cache, w, n, (int32_t)t->cache_n, e->err);
        t->cache_n += count + 1;
    }
    pthread_mutex_unlock(&t->cache_lock);
    return st;
}

/* ignore_merges: a word spelled exactly like a vocabulary entry is that id. */
static int whole_word_id(const lt_tokenizer *t, const unsigned char *w, size_t n, int32_t *id) {
    char buf[2 * CACHE_MAX_WORD];
    size_t len = 0;
    if (n > CACHE_MAX_WORD) return 0;
    for (size_t i = 0; i < n; i++) len += (size_t)utf8_encode(t->alpha.cp[w[i]], buf + len);
    return smap_get(&t->vocab, buf, len, id);
}

static lt_status bpe_word(encoder *e, const char *w, size_t n) {
    const unsigned char *u = (const unsigned char *)w;
    int32_t id;
    if (e->t->ignore_merges && whole_word_id(e->t, u, n, &id)) return lt_token_vec_push(e->out, id, e->err);
    if (n <= CACHE_MAX_WORD) {
        int hit = cache_lookup(e, w, n);
        if (hit) return hit > 0 ? LT_OK : LT_ERR_NOMEM;
    }
    lt_status st = reserve_scratch(e, n);
    if (st) return st;
    for (size_t i = 0; i < n; i++)
        e->syms[i] = (bpe_sym){e->t->byte_id[u[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, 1};
    bpe_merge_all(e, n);
    size_t first = e->out->n;
    for (int32_t i = 0; i >= 0 && !st; i = e->syms[i].next) st = lt_token_vec_push(e->out, e->syms[i].id, e->err);
    if (!st && n <= CACHE_MAX_WORD) st = cache_store(e, w, n, first);
    return st;
}

/* ---- encoding: pre-tokenizer Split steps (behaviour Isolated) ----------- */

/* Each match of step `level` and each gap between matches is a piece that
 * the next step splits further; after the last step a piece is a BPE word. */
static lt_status split_step(encoder *e, const char *s, size_t len, int level) {
    if (!len) return LT_OK;
    if (level == e->t->n_steps) return bpe_word(e, s, len);
    size_t last = 0, at = 0;
    lt_status st = LT_OK;
    while (at < len && !st) {
        int rc = pcre2_match(e->t->steps[level], (PCRE2_SPTR)s, len, at, PCRE2_NO_UTF_CHECK, e->md[level], NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return lt_fail(e->err, LT_ERR_FORMAT, "pre-tokenizer regex %d failed with PCRE2 error %d", level, rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md[level]);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* an empty match makes no piece; step one character */
            int cl;
            utf8_char((const unsigned char *)s + ms, len - ms, &cl);
            at = ms + (size_t)cl;
            continue;
        }
        if (ms > last) st = split_step(e, s + last, ms - last, level + 1);
        if (!st) st = split_step(e, s + ms, me - ms, level + 1);
        last = at = me;
    }
    if (!st && last < len) st = split_step(e, s + last, len - last, level + 1);
    return st;
}

/* ---- encoding: added tokens (HF added_vocabulary.rs find_matches) ------- */

static int trie_longest(const trie *tr, const char *s, size_t n, size_t *mlen) {
    int32_t node = 0, best = -1;
    for (size_t i = 0; i < n; i++) {
        int32_t c = tr->nodes[node].child;
        while (c >= 0 && tr->nodes[c].byte != (unsigned char)s[i]) c = tr->nodes[c].sibling;
        if (c < 0) break;
        node = c;
        if (tr->nodes[c].token >= 0) best = tr->nodes[c].token, *mlen = i + 1;
    }
    return best;
}

/* The code point ending right before s + at (at > 0). */
static uint32_t char_before(const char *s, size_t at, int *len) {
    size_t i = at - 1;
    while (i > 0 && at - i < 4 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    *len = (int)(at - i);
    return utf8_decode((const unsigned char *)s + i, *len);
}

static int is_word_char(const lt_tokenizer *t, const char *c, size_t n, pcre2_match_data *md) {
    return pcre2_match(t->word_char, (PCRE2_SPTR)c, n, 0, PCRE2_NO_UTF_CHECK, md, NULL) >= 0;
}

/* single_word: the match may not touch a word character on either side. */
static int single_word_ok(encoder *e, const char *s, size_t len, size_t start, size_t stop) {
    int cl;
    if (start > 0) {
        char_before(s, start, &cl);
        if (is_word_char(e->t, s + start - cl, (size_t)cl, e->md[0])) return 0;
    }
    if (stop < len) {
        utf8_char((const unsigned char *)s + stop, len - stop, &cl);
        if (is_word_char(e->t, s + stop, (size_t)cl, e->md[0])) return 0;
    }
    return 1;
}

static size_t strip_left(const char *s, size_t start, size_t floor) {
    int cl;
    while (start > floor && is_white_space(char_before(s, start, &cl))) start -= (size_t)cl;
    return LT_MAX(start, floor);
}

static size_t strip_right(const char *s, size_t len, size_t stop) {
    int cl;
    while (stop < len && utf8_char((const unsigned char *)s + stop, len - stop, &cl) == UTF8_VALID &&
           is_white_space(utf8_decode((const unsigned char *)s + stop, cl)))
        stop += (size_t)cl;
    return stop;
}

static lt_status split_added(encoder *e, const char *s, size_t len, int pass);

static lt_status gap(encoder *e, const char *s, size_t len, int pass) {
    return pass == 0 ? split_added(e, s, len, 1) : split_step(e, s, len, 0);
}

/* Pass 0 cuts the normalized=false tokens out of the text, pass 1 the
 * normalized=true ones out of the gaps (the normalizer is empty, so the
 * normalised gap is the gap itself). */
static lt_status split_added(encoder *e, const char *s, size_t len, int pass) {
    const trie *tr = pass == 0 ? &e->t->trie_raw : &e->t->trie_norm;
    size_t done = 0, at = 0, mlen = 0;
    lt_status st = LT_OK;
    while (at < len && !st) {
        int k = trie_longest(tr, s + at, len - at, &mlen);
        if (k < 0) { at++; continue; }
        const added_token *a = &e->t->added[k];
        size_t start = at, stop = at + mlen;
        if (a->single_word && !single_word_ok(e, s, len, start, stop)) { at = stop; continue; }
        if (a->lstrip) start = strip_left(s, start, done);
        if (a->rstrip) stop = strip_right(s, len, stop);
        if (start > done) st = gap(e, s + done, start - done, pass);
        if (!st) st = lt_token_vec_push(e->out, a->id, e->err);
        done = at = stop;
    }
    if (!st && done < len) st = gap(e, s + done, len - done, pass);
    return st;
}

/* ---- encoding: entry point ---------------------------------------------- */

/* Returns text itself when it is valid UTF-8, else a malloc'd copy with
 * every maximal invalid subsequence replaced by U+FFFD (*copy is set). */
static const char *valid_utf8(const char *text, size_t len, char **copy, size_t *out_len) {
    const unsigned char *u = (const unsigned char *)text;
    size_t i = 0, n = 0;
    int cl;
    *copy = NULL;
    *out_len = len;
    while (i < len && utf8_char(u + i, len - i, &cl) == UTF8_VALID) i += (size_t)cl;
    if (i == len) return text;
    if (!(*copy = malloc(3 * len))) return NULL;
    for (i = 0; i < len; i += (size_t)cl) {
        if (utf8_char(u + i, len - i, &cl) == UTF8_VALID) memcpy(*copy + n, text + i, (size_t)cl), n += (size_t)cl;
        else memcpy(*copy + n, REPLACEMENT, 3), n += 3;
    }
    *out_len = n;
    return *copy;
}

lt_status lt_tokenizer_encode(lt_tokenizer *t, const char *text, size_t len, int parse_special, lt_token_vec *out,
                              lt_error *err) {
    char *copy;
    size_t n;
    const char *s = valid_utf8(text, len, &copy, &n);
    if (!s) return lt_fail(err, LT_ERR_NOMEM, "out of memory repairing %zu bytes of invalid UTF-8", len);
    encoder e = {.t = t, .out = out, .err = err};
    lt_status st = LT_OK;
    for (int i = 0; i < LT_MAX(t->n_steps, 1) && !st; i++)
        if (!(e.md[i] = pcre2_match_data_create(4, NULL))) st = lt_fail(err, LT_ERR_NOMEM, "out of memory for regex matching");
    if (!st) st = parse_special ? split_added(&e, s, n, 0) : split_step(&e, s, n, 0);
    for (int i = 0; i < MAX_PRE_STEPS; i++) pcre2_match_data_free(e.md[i]);
    free(e.syms);
    free(e.heap);
    free(copy);
    return st;
}

/* ---- decoding ----------------------------------------------------------- */

const char *lt_tokenizer_token_bytes(const lt_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->vocab_size || !t->tokens[id].present) return NULL;
    *len = t->tokens[id].len;
    return t->token_bytes + t->tokens[id].off;
}

const char *lt_tokenizer_token_spelling(const lt_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->vocab_size || !t->tokens[id].present) return NULL;
    *len = t->tokens[id].spell_len;
    return t->tokens[id].spell;
}

int32_t lt_tokenizer_token_id(const lt_tokenizer *t, const char *text) {
    int32_t id;
    size_t n = strlen(text);
    if (smap_get(&t->added_by_content, text, n, &id) || smap_get(&t->vocab, text, n, &id)) return id;
    return -1;
}

int lt_tokenizer_is_special(const lt_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->vocab_size && t->tokens[id].special;
}

int32_t lt_tokenizer_vocab_size(const lt_tokenizer *t) { return t->vocab_size; }
int32_t lt_tokenizer_bos(const lt_tokenizer *t) { return t->bos; }
int32_t lt_tokenizer_eos(const lt_tokenizer *t) { return t->eos; }

static lt_status check_id(const lt_tokenizer *t, int32_t id, lt_error *err) {
    if (id >= 0 && id < t->vocab_size && t->tokens[id].present) return LT_OK;
    return lt_fail(err, LT_ERR_ARG, "token id %d is not in the vocabulary [0, %d)", id, t->vocab_size);
}

lt_status lt_tokenizer_decode(const lt_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **text,
                              size_t *len, lt_error *err) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        lt_status st = check_id(t, ids[i], err);
        if (st) return st;
        total += t->tokens[ids[i]].len;
    }
    char *out = malloc(total + 1), *o = out;
    if (!out) return lt_fail(err, LT_ERR_NOMEM, "out of memory decoding %zu tokens", n);
    for (size_t i = 0; i < n; i++) {
        const token_info *k = &t->tokens[ids[i]];
        if (skip_special && k->special) continue;
        memcpy(o, t->token_bytes + k->off, k->len);
        o += k->len;
    }
    *o = 0;
    *text = out;
    *len = (size_t)(o - out);
    return LT_OK;
}

/* ---- streaming decoding ------------------------------------------------- */

void lt_detok_init(lt_detok *d) { d->n_pend = 0; }

const char *lt_detok_push(lt_detok *d, const lt_tokenizer *t, int32_t id, int skip_special, size_t *len,
                          lt_error *err) {
    unsigned char work[4 + LT_DETOK_MAX_TOKEN];
    size_t n = (size_t)d->n_pend, o = 0;
    if (check_id(t, id, err)) return NULL;
    const token_info *k = &t->tokens[id];
    memcpy(work, d->pend, n);
    if (!(skip_special && k->special)) memcpy(work + n, t->token_bytes + k->off, k->len), n += k->len;
    d->n_pend = 0;
    for (size_t i = 0; i < n;) {
        int cl;
        utf8_kind kind = utf8_char(work + i, n - i, &cl);
        if (kind == UTF8_INCOMPLETE) {
            memcpy(d->pend, work + i, (size_t)cl);
            d->n_pend = cl;
            break;
        }
        if (kind == UTF8_VALID) memcpy(d->out + o, work + i, (size_t)cl), o += (size_t)cl;
        else memcpy(d->out + o, REPLACEMENT, 3), o += 3;
        i += (size_t)cl;
    }
    *len = o;
    return d->out;
}

const char *lt_detok_flush(lt_detok *d, size_t *len) {
    *len = 0;
    if (d->n_pend) memcpy(d->out, REPLACEMENT, 3), *len = 3;
    d->n_pend = 0;
    return d->out;
}

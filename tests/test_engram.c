/* V4.1 Engram (src/engram.c) against the vectors of
 * tools/oracle/make_engram_vectors.py (HF deepseek_v41 restated over numpy,
 * tokenizers, sympy and torch): numpy's Generator bit for bit, the compressed
 * token map of the real V4.1 tokenizer, hash ids for whole sequences, chunked
 * prefill and single-token decode, the lookup + gate, binding errors, and the
 * row prefetch. Regenerate the vectors with that script. */
#include "engram.h"
#include "test.h"
#include "util.h"

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DATA "tests/data/engram/"
#define V41_TOKENIZER "../shared/assets/deepseek-v4/tokenizer-v41"
#define V41_CONFIG "../shared/docs/configs/DeepSeek-V4.1-Flash.config.reconstructed.json"

static uint64_t fnv1a64(const void *p, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 0x100000001B3ULL;
    return h;
}
#define FNV_INIT 0xCBF29CE484222325ULL

/* The V4.1 tokenizer, loaded once for every test here. */
static lt_tokenizer *g_tok;
static lt_tokenizer *v41_tokenizer(void) {
    lt_error err;
    if (!g_tok && lt_tokenizer_load(&g_tok, V41_TOKENIZER, &err) != LT_OK) lt_test_fail(__FILE__, __LINE__, "%s", err.msg);
    return g_tok;
}
__attribute__((destructor)) static void free_tokenizer(void) { lt_tokenizer_free(g_tok); }

static lt_status v41_config(lt_config *c, lt_error *err) {
    char *text;
    size_t len;
    lt_status st = lt_read_file(V41_CONFIG, &text, &len, err);
    if (st != LT_OK) return st;
    st = lt_config_parse(c, text, V41_CONFIG, err);
    free(text);
    return st;
}

/* ---- numpy's Generator --------------------------------------------------- */

LT_TEST(engram, numpy_integers) {
    char *text, *save = NULL;
    size_t len;
    lt_error err;
    CHECK(lt_read_file(DATA "rng.txt", &text, &len, &err) == LT_OK);
    int cases = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *p = line;
        uint64_t seed = strtoull(p, &p, 10);
        int64_t low = strtoll(p, &p, 10), high = strtoll(p, &p, 10), n = strtoll(p, &p, 10), got[16];
        CHECK(n >= 1 && n <= 16);
        lt_pcg64 g;
        lt_pcg64_seed(&g, seed);
        lt_pcg64_integers(&g, low, high, n, got);
        for (int64_t i = 0; i < n; i++) {
            int64_t want = strtoll(p, &p, 10);
            CHECKF(got[i] == want, "default_rng(%llu).integers(%lld, %lld)[%lld]: %lld, numpy %lld",
                   (unsigned long long)seed, (long long)low, (long long)high, (long long)i, (long long)got[i],
                   (long long)want);
        }
        cases++;
    }
    CHECKF(cases == 188, "%d cases", cases);
    free(text);
}

/* ---- compressed token map ------------------------------------------------ */

LT_TEST(engram, token_map_v41) {
    lt_tokenizer *t = v41_tokenizer();
    if (!t) return;
    char *text, *save = NULL;
    size_t len;
    lt_error err;
    CHECK(lt_read_file(DATA "token_map_v41.txt", &text, &len, &err) == LT_OK);
    int32_t vocab = lt_tokenizer_vocab_size(t);
    int32_t *map = malloc((size_t)vocab * sizeof *map);
    int64_t classes = 0;
    CHECK(lt_engram_token_map(t, map, &classes, &err) == LT_OK);
    long want_vocab = 0, want_classes = 0, chunk = 0, c = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        if (sscanf(line, "vocab %ld classes %ld chunk %ld", &want_vocab, &want_classes, &chunk) == 3) continue;
        uint64_t h = FNV_INIT;
        for (long i = c * chunk; i < (c + 1) * chunk && i < vocab; i++) {
            uint8_t le[4] = {(uint8_t)map[i], (uint8_t)(map[i] >> 8), (uint8_t)(map[i] >> 16), (uint8_t)(map[i] >> 24)};
            h = fnv1a64(le, 4, h);
        }
        CHECKF(h == strtoull(line, NULL, 16), "token map ids [%ld, %ld) differ from HF (print them with "
               "make_engram_vectors.py)", c * chunk, (c + 1) * chunk);
        c++;
    }
    CHECKF(vocab == want_vocab && classes == want_classes && classes == 99092, "vocab %d classes %lld", vocab,
           (long long)classes);
    CHECKF(c == (vocab + chunk - 1) / chunk, "%ld chunks", c);
    CHECK(map[0] == 0 && map[2] < map[vocab - 1]);
    free(map);
    free(text);
}

/* ---- hashing --------------------------------------------------------------- */

/* One hash_*.txt file: its config, then sequences checked as they are read. */
typedef struct {
    lt_config cfg;
    lt_engram_hasher h;
    int ready;
    int32_t *tok;
    uint8_t *live;
    int64_t n, *ids, *chunks, n_chunks, checked;
} hash_file;

static int64_t *parse_i64s(char *p, int64_t *n) {
    int64_t cap = 16, *v = malloc((size_t)cap * sizeof *v);
    *n = 0;
    for (char *end; v; p = end) {
        int64_t x = strtoll(p, &end, 10);
        if (end == p) break;
        if (*n == cap) v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
        if (v) v[(*n)++] = x;
    }
    return v;
}

/* "config layers 1,14 max_ngram 4 heads 8 vocab_size 16000000 pad_token 2 classes 99092" over the V4.1 config */
static void parse_config(hash_file *f, const char *line) {
    char layers[128];
    long long vs;
    int mn, heads, pad;
    lt_error err;
    CHECK(v41_config(&f->cfg, &err) == LT_OK);
    CHECK(sscanf(line, "config layers %127s max_ngram %d heads %d vocab_size %lld pad_token %d", layers, &mn, &heads,
                 &vs, &pad) == 5);
    f->cfg.n_engram_layers = 0;
    for (char *p = layers, *end; *p; p = *end ? end + 1 : end)
        f->cfg.engram_layer_ids[f->cfg.n_engram_layers++] = (int)strtol(p, &end, 10);
    f->cfg.engram_max_ngram_size = mn;
    f->cfg.engram_n_heads = heads;
    f->cfg.engram_vocab_size = vs;
    f->cfg.engram_pad_token_id = pad;
}

static void parse_rows(hash_file *f, char *p) {
    int64_t n, *rows = parse_i64s(p, &n);
    CHECK(n == f->cfg.n_engram_layers);
    for (int64_t l = 0; l < n; l++) f->cfg.engram_num_embeddings[l] = rows[l];
    free(rows);
    lt_error err;
    f->ready = lt_engram_hasher_init(&f->h, &f->cfg, v41_tokenizer(), &err) == LT_OK;
    CHECKF(f->ready, "%s", err.msg);
}

/* "primes L p..." / "mult L m...": the layout of layer slot L */
static void check_layout(hash_file *f, char *p, int primes) {
    int64_t n, *v = parse_i64s(p, &n);
    int l = (int)v[0];
    int64_t width = primes ? f->h.n_cols : f->h.max_ngram;
    const int64_t *got = (primes ? f->h.prime : f->h.mult) + l * width;
    CHECK(n == width + 1);
    for (int64_t i = 0; i + 1 < n && i < width; i++)
        CHECKF(got[i] == v[i + 1], "layer slot %d %s[%lld]: %lld, HF %lld", l, primes ? "prime" : "multiplier",
               (long long)i, (long long)got[i], (long long)v[i + 1]);
    free(v);
}

/* ids[L, n, G] of one run against the per-position digests */
static void check_digests(hash_file *f, const int64_t *ids, const char *digests, const char *mode) {
    const char *p = digests;
    int G = f->h.n_cols;
    for (int64_t t = 0; t < f->n; t++) {
        uint64_t h = FNV_INIT;
        for (int l = 0; l < f->h.n_layers; l++)
            for (int j = 0; j < G; j++) {
                int64_t v = ids[(l * f->n + t) * G + j];
                uint8_t le[8];
                for (int b = 0; b < 8; b++) le[b] = (uint8_t)((uint64_t)v >> (8 * b));
                h = fnv1a64(le, 8, h);
            }
        char *end;
        uint64_t want = strtoull(p, &end, 16);
        p = end;
        CHECKF(h == want, "%s: position %lld: ids %lld %lld %lld ... differ from HF", mode, (long long)t,
               (long long)ids[t * G], (long long)ids[t * G + 1], (long long)ids[t * G + 2]);
        if (h != want) return;
    }
    f->checked += f->n * f->h.n_layers * G;
}

/* The sequence hashed at once, in its chunks, and one token at a time. */
static void check_sequence(hash_file *f, const char *digests) {
    int L = f->h.n_layers, G = f->h.n_cols;
    int32_t *hist = malloc((size_t)f->n * sizeof *hist);
    int64_t *ids = malloc((size_t)(L * f->n * G) * sizeof *ids), *step = malloc((size_t)(L * 16 * G) * sizeof *step);
    lt_engram_history hs;
    lt_error err;
    lt_engram_history_init(&hs, hist, f->n);
    CHECK(lt_engram_hash(&f->h, &hs, f->tok, f->live, 0, f->n, ids, &err) == LT_OK);
    check_digests(f, ids, digests, "whole sequence");
    for (int pass = 0; pass < 2; pass++) {
        lt_engram_history_init(&hs, hist, f->n);
        for (int64_t c = 0, p = 0; c < (pass ? f->n : f->n_chunks); c++) {
            int64_t k = pass ? 1 : f->chunks[c];
            CHECK(k <= 16 && lt_engram_hash(&f->h, &hs, f->tok + p, f->live + p, p, k, step, &err) == LT_OK);
            for (int l = 0; l < L; l++)
                memcpy(ids + (l * f->n + p) * G, step + l * k * G, (size_t)(k * G) * sizeof *ids);
            p += k;
        }
        check_digests(f, ids, digests, pass ? "decode steps" : "prefill chunks");
    }
    free(hist);
    free(ids);
    free(step);
}

static int64_t run_hash_file(const char *path) {
    char *text, *save = NULL;
    size_t len;
    lt_error err;
    hash_file f = {0};
    CHECK(lt_read_file(path, &text, &len, &err) == LT_OK);
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int64_t n, *v;
        if (!strncmp(line, "config ", 7)) parse_config(&f, line);
        else if (!strncmp(line, "rows ", 5)) parse_rows(&f, line + 5);
        else if (!f.ready) continue;
        else if (!strncmp(line, "primes ", 7)) check_layout(&f, line + 7, 1);
        else if (!strncmp(line, "mult ", 5)) check_layout(&f, line + 5, 0);
        else if (!strncmp(line, "tokens ", 7)) {
            v = parse_i64s(line + 7, &f.n);
            f.tok = realloc(f.tok, (size_t)f.n * sizeof *f.tok);
            for (int64_t i = 0; i < f.n; i++) f.tok[i] = (int32_t)v[i];
            free(v);
        } else if (!strncmp(line, "live ", 5)) {
            v = parse_i64s(line + 5, &n);
            CHECK(n == f.n);
            f.live = realloc(f.live, (size_t)n);
            for (int64_t i = 0; i < n; i++) f.live[i] = (uint8_t)v[i];
            free(v);
        } else if (!strncmp(line, "chunks ", 7)) {
            free(f.chunks);
            f.chunks = parse_i64s(line + 7, &f.n_chunks);
        } else if (!strncmp(line, "digest ", 7)) check_sequence(&f, line + 7);
    }
    lt_engram_hasher_free(&f.h);
    free(f.tok);
    free(f.live);
    free(f.chunks);
    free(text);
    return f.checked;
}

LT_TEST(engram, hash_v41) {
    /* 10 sequences (1436 positions) x 2 layers x 24 columns, each checked whole,
     * in prefill chunks and as decode steps */
    int64_t checked = run_hash_file(DATA "hash_v41.txt");
    CHECKF(checked == 3 * 68928, "%lld hash ids checked", (long long)checked);
}

LT_TEST(engram, hash_other_layouts) {
    /* layers 0, 7, 39 with 3-grams of 3 heads; layer 2 with 6-grams of 1 head */
    int64_t checked = run_hash_file(DATA "hash_other.txt") + run_hash_file(DATA "hash_long.txt");
    CHECKF(checked == 3 * (15282 + 2975), "%lld hash ids checked", (long long)checked);
}

LT_TEST(engram, hash_rewrite_and_errors) {
    lt_config c;
    lt_error err;
    lt_engram_hasher h;
    CHECK(v41_config(&c, &err) == LT_OK);
    if (!v41_tokenizer() || lt_engram_hasher_init(&h, &c, g_tok, &err) != LT_OK) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    /* A rejected draft: positions 6.. rewritten hash like a fresh sequence. */
    int32_t a[12] = {100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200}, b[12], hist[12];
    memcpy(b, a, sizeof b);
    for (int i = 6; i < 12; i++) b[i] = 5000 + i;
    int64_t ids_a[2 * 12 * 24], ids_b[2 * 12 * 24], ids_r[2 * 6 * 24];
    lt_engram_history hs;
    lt_engram_history_init(&hs, hist, 12);
    CHECK(lt_engram_hash(&h, &hs, b, NULL, 0, 12, ids_b, &err) == LT_OK);
    lt_engram_history_init(&hs, hist, 12);
    CHECK(lt_engram_hash(&h, &hs, a, NULL, 0, 12, ids_a, &err) == LT_OK);
    CHECK(lt_engram_hash(&h, &hs, b + 6, NULL, 6, 6, ids_r, &err) == LT_OK);
    for (int l = 0; l < 2; l++)
        CHECK(!memcmp(ids_r + l * 6 * 24, ids_b + (l * 12 + 6) * 24, 6 * 24 * sizeof *ids_r));
    CHECK(memcmp(ids_a, ids_b, sizeof ids_a) != 0);
    /* bad tokens and positions */
    int32_t bad = lt_tokenizer_vocab_size(g_tok);
    CHECK(lt_engram_hash(&h, &hs, &bad, NULL, 0, 1, ids_r, &err) == LT_ERR_ARG && strstr(err.msg, "129280"));
    CHECK(lt_engram_hash(&h, &hs, a, NULL, 11, 2, ids_r, &err) == LT_ERR_ARG && strstr(err.msg, "history of 12"));
    lt_engram_hasher_free(&h);
    /* a tokenizer / config mismatch, and tables whose rows are not the primes' sum */
    c.engram_compressed_vocab_size = 99093;
    CHECK(lt_engram_hasher_init(&h, &c, g_tok, &err) == LT_ERR_CONFIG && strstr(err.msg, "99092 Engram token classes"));
    c.engram_compressed_vocab_size = 99092;
    c.engram_num_embeddings[1] += 1;
    CHECK(lt_engram_hasher_init(&h, &c, g_tok, &err) == LT_ERR_CONFIG && strstr(err.msg, "engram layer 14") &&
          strstr(err.msg, "384016683"));
    c.engram_num_embeddings[1] = 1000;
    CHECK(lt_engram_hasher_init(&h, &c, g_tok, &err) == LT_ERR_CONFIG && strstr(err.msg, "more than 1000"));
}

/* ---- lookup and gate --------------------------------------------------------- */

/* The config of tests/data/engram/gate.safetensors (its __metadata__ config). */
static lt_config gate_config(void) {
    return (lt_config){.arch = LT_ARCH_V41, .dim = 64, .hc_mult = 2, .n_engram_layers = 1, .engram_layer_ids = {1},
                       .engram_num_embeddings = {300}, .engram_max_ngram_size = 3, .engram_n_heads = 2,
                       .engram_head_dim = 64, .weight_fp8 = 1, .block_r = 32, .block_c = 32, .rms_norm_eps = 1e-20};
}

static const void *tensor(const lt_store *s, const char *name, int64_t numel) {
    const lt_tensor *t = lt_store_find(s, name);
    CHECKF(t && lt_tensor_numel(t) == numel, "gate.safetensors: %s", name);
    return t ? t->data : NULL;
}

LT_TEST(engram, gate) {
    lt_store s = {0};
    lt_error err;
    lt_config c = gate_config();
    lt_engram_layer e;
    if (lt_store_open_file(&s, DATA "gate.safetensors", &err) != LT_OK || lt_engram_layer_bind(&e, &s, &c, 1, &err) != LT_OK) {
        CHECKF(0, "%s", err.msg);
        lt_store_close(&s);
        return;
    }
    enum { T = 7, HC = 2, D = 64, G = 4 };
    const float *x0 = tensor(&s, "test.x", T * HC * D), *want = tensor(&s, "test.out", T * HC * D);
    const float *gate = tensor(&s, "test.gate", T * HC);
    const int64_t *ids = tensor(&s, "test.ids", T * G), *live64 = tensor(&s, "test.live", T);
    if (!x0 || !want || !gate || !ids || !live64) return;
    float X[T * HC * D], emb[T * G * 64], kv[T * (HC + 1) * D];
    uint8_t live[T];
    for (int t = 0; t < T; t++) live[t] = (uint8_t)live64[t];
    memcpy(X, x0, sizeof X);
    lt_num nm = {.mode = LT_NUMERICS_EXACT};
    lt_engram_forward(&e, &nm, X, ids, live, T, emb, kv);
    double max_err = 0, max_ref = 0;
    for (int i = 0; i < T * HC * D; i++) {
        max_err = fmax(max_err, fabs((double)X[i] - want[i]));
        max_ref = fmax(max_ref, fabs((double)want[i]));
    }
    CHECKF(max_err <= 2e-6 * max_ref, "max abs error %g (max |out| %g)", max_err, max_ref);
    /* each stream's gate, read back from its update: (X - x0) . value / |value|^2 */
    for (int t = 0; t < T; t++)
        for (int i = 0; i < HC; i++) {
            const float *v = kv + t * (HC + 1) * D + HC * D;
            double num = 0, den = 0;
            for (int d = 0; d < D; d++) {
                num += ((double)X[(t * HC + i) * D + d] - x0[(t * HC + i) * D + d]) * v[d];
                den += (double)v[d] * v[d];
            }
            CHECKF(fabs(num / den - gate[t * HC + i]) < 1e-5, "token %d stream %d: gate %.7f, HF %.7f", t, i,
                   num / den, gate[t * HC + i]);
        }
    CHECK(!memcmp(X + 5 * HC * D, x0 + 5 * HC * D, HC * D * sizeof *X)); /* the dead token */
    /* one token at a time gives the same rows */
    memcpy(X, x0, sizeof X);
    for (int t = 0; t < T; t++) lt_engram_forward(&e, &nm, X + t * HC * D, ids + t * G, live + t, 1, emb, kv);
    double step_err = 0;
    for (int i = 0; i < T * HC * D; i++) step_err = fmax(step_err, fabs((double)X[i] - want[i]));
    CHECKF(step_err <= 2e-6 * max_ref, "max abs error %g one token at a time", step_err);
    lt_store_close(&s);
}

LT_TEST(engram, bind_errors) {
    lt_store s = {0};
    lt_error err;
    lt_config c = gate_config();
    lt_engram_layer e;
    CHECK(lt_store_open_file(&s, DATA "gate.safetensors", &err) == LT_OK);
    CHECK(lt_engram_layer_bind(&e, &s, &c, 2, &err) == LT_ERR_ARG && strstr(err.msg, "layer 2"));
    c.engram_num_embeddings[0] = 301;
    CHECK(lt_engram_layer_bind(&e, &s, &c, 1, &err) == LT_ERR_INVENTORY &&
          strstr(err.msg, "'layers.1.engram.embed.weight' must be F8_E4M3 [301, 64]"));
    c = gate_config();
    c.hc_mult = 3;
    CHECK(lt_engram_layer_bind(&e, &s, &c, 1, &err) == LT_ERR_INVENTORY && strstr(err.msg, "engram.wkv.weight"));
    c = gate_config();
    c.engram_layer_ids[0] = 3;
    CHECK(lt_engram_layer_bind(&e, &s, &c, 3, &err) == LT_ERR_INVENTORY && strstr(err.msg, "layers.3.engram.embed.weight"));
    lt_store_close(&s);
}

/* ---- prefetch ----------------------------------------------------------------- */

static int page_resident(const void *p) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    unsigned char v = 0;
    return mincore((void *)((uintptr_t)p & ~(page - 1)), page, &v) == 0 && (v & 1);
}

LT_TEST(engram, prefetch) {
    /* a table of 4096 rows of 64 bytes (64 pages) in a file of its own */
    lt_config c = gate_config();
    c.engram_num_embeddings[0] = 4096;
    lt_store g = {0};
    lt_error err;
    CHECK(lt_store_open_file(&g, DATA "gate.safetensors", &err) == LT_OK);
    static uint8_t table[4096 * 64];
    for (size_t i = 0; i < sizeof table; i++) table[i] = (uint8_t)(i * 7 % 126);
    /* header + table + unit scales + the fixture's wkv, q and k */
    const lt_tensor *w = lt_store_find(&g, "layers.1.engram.wkv.weight"), *ws = lt_store_find(&g, "layers.1.engram.wkv.scale");
    const lt_tensor *q = lt_store_find(&g, "layers.1.engram.q_weight"), *k = lt_store_find(&g, "layers.1.engram.k_weight");
    CHECK(w && ws && q && k);
    if (!w || !ws || !q || !k) return;
    char hdr[1024];
    uint64_t o1 = sizeof table, o2 = o1 + 4096 * 2, o3 = o2 + w->nbytes, o4 = o3 + ws->nbytes, o5 = o4 + q->nbytes;
    int hl = snprintf(hdr, sizeof hdr,
                      "{\"layers.1.engram.embed.weight\":{\"dtype\":\"F8_E4M3\",\"shape\":[4096,64],\"data_offsets\":[0,%llu]},"
                      "\"layers.1.engram.embed.scale\":{\"dtype\":\"F8_E8M0\",\"shape\":[4096,2],\"data_offsets\":[%llu,%llu]},"
                      "\"layers.1.engram.wkv.weight\":{\"dtype\":\"F8_E4M3\",\"shape\":[192,256],\"data_offsets\":[%llu,%llu]},"
                      "\"layers.1.engram.wkv.scale\":{\"dtype\":\"F8_E8M0\",\"shape\":[6,8],\"data_offsets\":[%llu,%llu]},"
                      "\"layers.1.engram.q_weight\":{\"dtype\":\"%s\",\"shape\":[2,64],\"data_offsets\":[%llu,%llu]},"
                      "\"layers.1.engram.k_weight\":{\"dtype\":\"%s\",\"shape\":[2,64],\"data_offsets\":[%llu,%llu]}}",
                      (unsigned long long)o1, (unsigned long long)o1, (unsigned long long)o2, (unsigned long long)o2,
                      (unsigned long long)o3, (unsigned long long)o3, (unsigned long long)o4, lt_dtype_name(q->dtype),
                      (unsigned long long)o4, (unsigned long long)o5, lt_dtype_name(k->dtype), (unsigned long long)o5,
                      (unsigned long long)(o5 + k->nbytes));
    size_t pad = (size_t)(-(hl + 8) & 4095); /* the table starts on a page */
    size_t total = 8 + (size_t)hl + pad + o5 + k->nbytes;
    uint8_t *file = calloc(1, total);
    uint64_t hlen = (uint64_t)hl + pad;
    memcpy(file, &hlen, 8);
    memcpy(file + 8, hdr, (size_t)hl);
    memset(file + 8 + hl, ' ', pad);
    uint8_t *data = file + 8 + hlen;
    memcpy(data, table, sizeof table);
    memset(data + o1, 127, 4096 * 2);
    memcpy(data + o2, w->data, w->nbytes);
    memcpy(data + o3, ws->data, ws->nbytes);
    memcpy(data + o4, q->data, q->nbytes);
    memcpy(data + o5, k->data, k->nbytes);
    const char *path = lt_test_write_temp("engram_prefetch.safetensors", file, total);
    free(file);
    lt_store_close(&g);

    lt_store s = {0};
    lt_engram_layer e;
    lt_engram_prefetcher *pf;
    CHECK(lt_store_open_file(&s, path, &err) == LT_OK && lt_engram_layer_bind(&e, &s, &c, 1, &err) == LT_OK);
    CHECK(lt_engram_prefetcher_create(&pf, 2 * 4, &err) == LT_OK);
    /* out of this process and out of the page cache (where the file system allows) */
    int fd = open(path, O_RDONLY);
    fsync(fd);
    madvise((void *)((uintptr_t)e.rows & ~(uintptr_t)4095), sizeof table, MADV_DONTNEED);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    int64_t ids[10][8];
    for (int j = 0; j < 10; j++)
        for (int i = 0; i < 8; i++) ids[j][i] = (j * 8 + i) * 101 % 4096;
    for (int j = 0; j < 10; j++) lt_engram_prefetch(pf, &e, ids[j], 2); /* more jobs than slots; 2 tokens each */
    lt_engram_prefetch_wait(pf);
    for (int j = 0; j < 10; j++)
        for (int i = 0; i < 8; i++)
            CHECKF(page_resident(e.rows + ids[j][i] * 64) && page_resident(e.scales + ids[j][i] * 2),
                   "row %lld not in memory after its prefetch", (long long)ids[j][i]);
    lt_engram_prefetcher_free(pf);
    CHECK(lt_engram_prefetcher_create(&pf, 0, &err) == LT_ERR_ARG && !pf);
    lt_store_close(&s);
}

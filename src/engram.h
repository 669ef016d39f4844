/* V4.1 Engram: the hashed n-gram memory read at the start of layers 1 and 14
 * (spec 5.3; HF deepseek_v41 DeepseekV41Engram / DeepseekV41NgramHashState,
 * which is the arbiter where the spec and the code differ).
 *
 * Four parts, in the order a forward pass uses them:
 *   1. the hasher (once per model): the compressed token map built from the
 *      tokenizer, the per-layer odd multipliers drawn with numpy's PCG64, the
 *      prime bucket sizes and their offsets;
 *   2. lt_engram_hash (once per forward run, all Engram layers at once): the
 *      hash ids of the n-grams ending at each position, with a history of
 *      compressed ids per absolute position that carries the look-back across
 *      prefill chunks and decode steps;
 *   3. lt_engram_prefetch: the ids depend on token ids only, so the table
 *      rows are paged in on a worker thread while the layers before run;
 *   4. lt_engram_forward: gather the rows, wkv, and the gated write of the
 *      value into every residual stream.
 *
 * Dimension letters: n tokens, L Engram layers, G = (max_ngram - 1) * heads
 * hash columns (24 for V4.1), hd head_dim (256), hc streams, D hidden.
 * Table rows stay in the checkpoint mapping (they can exceed RAM). */
#ifndef LT_ENGRAM_H
#define LT_ENGRAM_H

#include "config.h"
#include "numerics.h"
#include "ops.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "weights.h"

#include <stdint.h>
#include <stdio.h>

/* ---- numpy's Generator (PCG64 + SeedSequence, Generator.integers) ------- */

/* The state of numpy.random.default_rng(seed): a 128-bit PCG64 (XSL-RR)
 * seeded through numpy's SeedSequence, with numpy's buffered 32-bit half. */
typedef struct {
    uint64_t state_hi, state_lo, inc_hi, inc_lo;
    int has_u32;
    uint32_t u32;
} lt_pcg64;

/* numpy.random.default_rng(seed) for a non-negative integer seed. */
void lt_pcg64_seed(lt_pcg64 *g, uint64_t seed);

/* out[0..n) = Generator.integers(low, high, size=n, dtype=np.int64), bit for
 * bit (Lemire's method with numpy's rejection threshold; 32-bit draws when
 * the range fits 32 bits). Requires low < high. */
void lt_pcg64_integers(lt_pcg64 *g, int64_t low, int64_t high, int64_t n, int64_t *out);

/* ---- the hasher (spec 5.3 Hashing 1, 3, 5) ------------------------------ */

#define LT_ENGRAM_DEAD (-1)      /* history entry of an unwritten or dead (image) position */
#define LT_ENGRAM_MAX_NGRAM 16   /* engram_max_ngram_size range of the config */

/* Builds map[vocab] -> [0, *n_classes), vocab = lt_tokenizer_vocab_size(t):
 * each id is decoded alone; text holding U+FFFD is keyed by the raw token
 * string, anything else by NFKC -> NFD -> strip marks -> lowercase -> runs of
 * [ \t\r\n] to one space -> Strip (a lone space survives) -> or the decoded
 * text when that is empty; classes are numbered in order of first appearance. */
lt_status lt_engram_token_map(const lt_tokenizer *t, int32_t *map, int64_t *n_classes, lt_error *err);

/* mult[0..n) = 2 * default_rng(10007 * layer_id).integers(0, bound, n) + 1,
 * bound = max(1, (INT64_MAX // n_classes) // 2): token * mult never overflows. */
void lt_engram_multipliers(int layer_id, int64_t n_classes, int n, int64_t *mult);

typedef struct {
    int n_layers;            /* engram_layer_ids */
    int max_ngram, n_heads;  /* n-grams of 2..max_ngram tokens, n_heads buckets each */
    int n_cols;              /* G = (max_ngram - 1) * n_heads */
    int32_t n_vocab;
    int64_t n_classes;       /* engram_compressed_vocab_size */
    int32_t *token_map;      /* [n_vocab] -> [0, n_classes) */
    int32_t pad;             /* token_map[engram_pad_token_id] */
    int64_t *mult;           /* [L, max_ngram] */
    int64_t *prime;          /* [L, G] bucket sizes, column order (n-gram 2 heads.., 3 .., ..) */
    int64_t *offset;         /* [L, G] exclusive prefix sums of prime within the layer */
} lt_engram_hasher;

/* Builds the hasher for the config's Engram layers. Fails with LT_ERR_CONFIG
 * when the tokenizer's class count is not engram_compressed_vocab_size (every
 * multiplier derives from it) or when a layer's primes do not sum to its
 * engram_num_embeddings. */
lt_status lt_engram_hasher_init(lt_engram_hasher *h, const lt_config *c, const lt_tokenizer *t, lt_error *err);
void lt_engram_hasher_free(lt_engram_hasher *h);

/* ---- hashing a sequence (spec 5.3 Hashing 2, 4) ------------------------- */

/* Compressed id per absolute position, LT_ENGRAM_DEAD where nothing was
 * written. A view of caller memory (the context's arena): cap positions. */
typedef struct {
    int32_t *tok;
    int64_t cap;
} lt_engram_history;

/* Views buf[cap] and marks every position DEAD (also how to reset it). */
void lt_engram_history_init(lt_engram_history *hs, int32_t *buf, int64_t cap);

/* Writes tokens[0..n) at positions pos0.. into the history and returns the
 * hash ids of every Engram layer: ids[L, n, G] (layer-major, so layer slot s
 * reads ids + s * n * G). live (NULL = all live) marks dead tokens (image
 * spans, pads): they are stored DEAD, and no n-gram reaches across one; the
 * look-back before position 0 is the pad class too. Rewriting positions that
 * were hashed before (a rejected draft) is allowed. Fails with LT_ERR_ARG on
 * a token outside the vocabulary or positions beyond the history. */
lt_status lt_engram_hash(const lt_engram_hasher *h, lt_engram_history *hs, const int32_t *tokens,
                         const uint8_t *live, int64_t pos0, int64_t n, int64_t *ids, lt_error *err);

/* ---- one Engram layer: lookup and gate (spec 5.3 Lookup, Gate) ---------- */

typedef struct {
    int layer, slot;           /* layer id; its index in engram_layer_ids (its ids: ids + slot * n * G) */
    int hc, dim, hd, n_cols;
    int64_t n_rows;
    float eps;                 /* rms_norm_eps */
    const uint8_t *rows;       /* embed.weight F8_E4M3 [n_rows, hd], in the mapping */
    const uint8_t *scales;     /* embed.scale F8_E8M0 [n_rows, hd / 32] */
    lt_weight wkv;             /* FP8 [(hc + 1) * D, G * hd] */
    lt_vec q_weight, k_weight; /* F32 or BF16 [hc, D], only used as their product */
} lt_engram_layer;

/* Binds layers.<layer>.engram.* and advises the kernel that the table is
 * read at random (no read-around on a page fault). */
lt_status lt_engram_layer_bind(lt_engram_layer *e, const lt_store *s, const lt_config *c, int layer, lt_error *err);

/* X[n, hc, D] += gate[n, hc] * value[n, D] for the ids[n, G] of this layer:
 * gather and dequantise the G rows (fp8 * 2^(scale - 127) per 32 columns),
 * kv = wkv(rows) split into key [hc, D] and value [D], and per stream
 *   dot  = sum(X_i * q_i * k_i * key_i) * rsqrt(mean X_i^2 + eps)
 *          * rsqrt(mean key_i^2 + eps) / sqrt(D)
 *   gate = sigmoid(sign(dot) * sqrt(max(|dot|, 1e-6))), 0 for dead tokens.
 * Scratch: emb[n, G * hd], kv[n, (hc + 1) * D]. EXACT numerics is HF in
 * float32; REFERENCE adds the bf16 storage points and the FP8 product. */
void lt_engram_forward(const lt_engram_layer *e, const lt_num *nm, float *X, const int64_t *ids,
                       const uint8_t *live, int64_t n, float *emb, float *kv);

/* lt_engram_forward that also writes each token's gates to gate[n, hc]
 * (NULL: none; 0 for dead tokens), for diagnostics (`lantern engram`). */
void lt_engram_forward_gates(const lt_engram_layer *e, const lt_num *nm, float *X, const int64_t *ids,
                             const uint8_t *live, int64_t n, float *emb, float *kv, float *gate);

/* ---- prefetch (papers 1.6: rows are known before the layer runs) -------- */

typedef struct lt_engram_prefetcher lt_engram_prefetcher;

/* A worker thread with a queue of jobs of up to max_ids row ids each. Free
 * it (which waits for queued jobs) before the store of the layers closes. */
lt_status lt_engram_prefetcher_create(lt_engram_prefetcher **out, int64_t max_ids, lt_error *err);
void lt_engram_prefetcher_free(lt_engram_prefetcher *p);

/* Queues the rows of ids[n, G] of layer e and returns at once (it waits only
 * when the queue is full). The worker asks the kernel for all of them at
 * once (MADV_WILLNEED, so the reads run in parallel), then touches each row
 * so the layer finds them mapped. Ids past max_ids are left to the layer. */
void lt_engram_prefetch(lt_engram_prefetcher *p, const lt_engram_layer *e, const int64_t *ids, int64_t n);

/* Returns once every queued job is done. */
void lt_engram_prefetch_wait(lt_engram_prefetcher *p);

/* ---- benchmark (`lantern bench`) ----------------------------------------- */

/* The two halves of lt_engram_forward, exposed so the benchmark can time
 * them apart: gather + dequantise the rows of ids [n, G] into emb [n, G*hd];
 * then kv = wkv(emb) and the gated writes into X (emb is clobbered). */
void lt_engram_lookup(const lt_engram_layer *e, const int64_t *ids, int64_t n, float *emb);
void lt_engram_mix(const lt_engram_layer *e, const lt_num *nm, float *X, const uint8_t *live, int64_t n,
                   float *emb, float *kv);

/* Decode-time cost of lookup + gate for one V4.1-sized layer (D 5120, hc 4,
 * G 24, hd 256) over a table of `rows` rows kept in the safetensors file
 * `path` (written once; rows * 264 bytes plus the 157 MB wkv). Runs n_tokens
 * single-token steps, each after ahead_ms of busy work on every thread (the
 * layers before), in three settings: rows resident; table evicted from the
 * page cache without prefetch; evicted, with the prefetch issued before the
 * busy work. Prints the lookup and wkv + gate times and the lookup's extra
 * time as a share of the step to out. Returns 0, or 1 with err filled. */
int lt_engram_bench(const char *path, int64_t rows, int n_tokens, double ahead_ms, FILE *out, lt_error *err);

#endif

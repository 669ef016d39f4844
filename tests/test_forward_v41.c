/* The V4.1 text model: CSA2 sharing, two-level candidate selection,
 * single-pass mHC, Engram, gate_temp.
 *
 * A synthetic V4.1 checkpoint (tests/synth_model.c; no oracle) checks that
 * the caches carry exactly what a recompute sees: token-by-token decode and
 * uneven batches against one prefill longer than a forward batch. The oracle
 * fixtures tests/fixtures/v41-tiny and v41-tiny-b (tools/oracle/ref_v41.py,
 * HF deepseek_v41 restated in fp32; see tests/fixtures/README-v41.md) check
 * EXACT numerics against HF: logits, every block, routing, selections,
 * Engram hash ids, greedy continuation and decode with the cache. */
#include "test.h"

#include "kvrow.h"

#include "kernels.h"
#include "model.h"
#include "oracle_fixture.h"
#include "synth_model.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DECODE_TOL 1e-5  /* cached decode against the full forward, of max |logit| */

/* Token-by-token decode, then batches of 3, 5, 7, 11, 13 tokens, against
 * the logits of one call over all T tokens; returns the worst relative
 * difference. The QAT round trips are part of V4.1's EXACT forward, and the
 * SIMD kernels' batch-dependent summation order can move a value across a
 * rounding boundary (FP4 steps are 8-33% of a block's maximum), so this runs
 * on the batch-invariant scalar kernels, where the caches must reproduce
 * the recompute to fp32 noise. */
static float decode_vs_prefill(lt_model *m, const int32_t *ids, int64_t T) {
    CHECK(lt_kernels_init("ref"));
    int64_t V = lt_model_vocab_size(m);
    float *full = calloc((size_t)(T * V), sizeof *full), *step = calloc((size_t)V, sizeof *step);
    lt_context *c = NULL;
    lt_error err = {0};
    float worst = INFINITY;
    CHECKF(lt_context_create(&c, m, T, &err) == LT_OK, "%s", err.msg);
    if (c && lt_context_eval_all(c, ids, T, full, &err) == LT_OK) {
        float scale = max_abs(full, T * V);
        CHECKF(isfinite(scale) && scale > 0, "logit scale %g", scale);
        worst = 0;
        static const int64_t sizes[] = {3, 5, 7, 11, 13};
        for (int s = 0; s < 2; s++) {
            lt_context_reset(c);
            for (int64_t t = 0, b = 0; t < T; b++) {
                int64_t k = s == 0 ? 1 : LT_MIN_I64(sizes[b % 5], T - t);
                CHECKF(lt_context_eval(c, ids + t, k, step, &err) == LT_OK, "%s", err.msg);
                t += k;
                worst = fmaxf(worst, max_diff(step, full + (t - 1) * V, V) / scale);
            }
            CHECK(lt_context_pos(c) == T);
        }
    }
    free(full);
    free(step);
    lt_context_free(c);
    CHECK(lt_kernels_init(NULL));
    return worst;
}

/* ---- V4.1 QAT points --------------------------------------------------------- */

/* The compressed-KV round trip, as stored (kvrow.h FP4 rows): amax 1.8
 * gives the E4M3 scale e4m3(0.3) = 0.3125 (a power-of-two scale would be
 * 0.5); V4.1 applies it in EXACT mode too, and skips rows whose width is not
 * a multiple of the block. */
LT_TEST(forward_v41, qat_fp4_e4m3_scale_exact_mode_and_skip) {
    float x[16] = {1.8f, 0.5f, -0.2f};
    uint8_t row[24];
    lt_kv_fmt f = lt_kv_fmt_fp4(16, 16);
    CHECK(f.bytes == 16 && (size_t)f.bytes <= sizeof row); /* 8 bytes of codes, one scale, padding */
    lt_kv_pack(&f, x, row);
    lt_kv_unpack(&f, row, x);
    CHECKF(x[0] == 6 * 0.3125f && x[1] == 1.5f * 0.3125f && x[2] == -0.5f * 0.3125f && x[3] == 0,
           "%g %g %g %g", x[0], x[1], x[2], x[3]);
    lt_num v4 = {.mode = LT_NUMERICS_EXACT}, v41 = {.mode = LT_NUMERICS_EXACT, .qat = 1};
    CHECK(!lt_num_qat_on(&v4, 16, 16) && lt_num_qat_on(&v41, 16, 16));
    CHECK(!lt_num_qat_on(&v41, 24, 16) && !lt_num_qat_on(&v41, 24, 32));
}

/* ---- a synthetic V4.1 checkpoint ------------------------------------------ */

#define SYN_TOKENIZER "tests/data/tokenizer/flags/tokenizer.json"
#define SYN_ENGRAM_VOCAB 64

static int is_prime(int64_t n) {
    if (n < 2) return 0;
    for (int64_t f = 2; f * f <= n; f++)
        if (n % f == 0) return 0;
    return 1;
}

/* engram_num_embeddings of n_layers layers (spec 5.3 Hashing 5): per layer
 * and n-gram order, the next 8 primes above vocab - 1 not handed out before */
static void engram_rows(int n_layers, int64_t vocab, int64_t *rows) {
    int64_t used[2 * 3 * 8];
    int n_used = 0;
    for (int l = 0; l < n_layers; l++) {
        rows[l] = 0;
        for (int order = 0; order < 3; order++) {
            int64_t p = vocab - 1;
            for (int h = 0; h < 8; h++) {
                int fresh;
                do {
                    p++;
                    fresh = is_prime(p);
                    for (int i = 0; i < n_used && fresh; i++) fresh = used[i] != p;
                } while (!fresh);
                used[n_used++] = p;
                rows[l] += p;
            }
        }
    }
}

/* layers 0-1 sliding (Engram on 1); 2-4 ratio 2 (KV + index source 2, Engram
 * on 3); 5-8 ratio 1 (KV source 5, candidate source 5, Reindex at 7, reuse 6
 * and 8); 4 streams, gate_temp 0.8, rms_norm_eps 1e-20 */
static int write_synth_v41(const char *dir) {
    lt_tokenizer *tok = NULL;
    lt_error err = {0};
    int64_t classes = 0, rows[2];
    int32_t *map = NULL;
    int ok = lt_tokenizer_load(&tok, SYN_TOKENIZER, &err) == LT_OK;
    CHECKF(ok, "%s", err.msg);
    if (ok) {
        map = malloc((size_t)lt_tokenizer_vocab_size(tok) * sizeof *map);
        ok = lt_engram_token_map(tok, map, &classes, &err) == LT_OK;
        CHECKF(ok, "%s", err.msg);
    }
    free(map);
    lt_tokenizer_free(tok);
    if (!ok) return 0;
    engram_rows(2, SYN_ENGRAM_VOCAB, rows);
    char config[2048], path[600];
    snprintf(config, sizeof config,
             "{\"model_type\": \"deepseek_v41\", \"bos_token_id\": 0, \"eos_token_id\": 1, \"pad_token_id\": 2,"
             " \"quantization_config\": {\"quant_method\": \"fp8\", \"weight_block_size\": [32, 32],"
             " \"expert_dtype\": \"fp4\"},"
             " \"text_config\": {\"model_type\": \"deepseek_v41_text\", \"vocab_size\": 256, \"hidden_size\": 64,"
             " \"num_hidden_layers\": 9, \"num_attention_heads\": 4, \"num_key_value_heads\": 1, \"head_dim\": 64,"
             " \"qk_rope_head_dim\": 16, \"q_lora_rank\": 48, \"o_groups\": 2, \"o_lora_rank\": 32,"
             " \"moe_intermediate_size\": 32, \"n_routed_experts\": 4, \"num_experts_per_tok\": 2,"
             " \"n_shared_experts\": 1, \"routed_scaling_factor\": 1.5, \"gate_temp\": 0.8, \"rms_norm_eps\": 1e-20,"
             " \"hc_mult\": 4, \"sliding_window\": 8, \"compress_ratios\": [0, 0, 2, 2, 2, 1, 1, 1, 1],"
             " \"kv_source_layer_ids\": [2, 5], \"index_source_layer_ids\": [2, 5, 7], \"index_n_heads\": 4,"
             " \"index_head_dim\": 32, \"index_topk\": 4, \"candidate_source_layer_id\": 5,"
             " \"candidate_topk_blocks\": 3, \"candidate_block_size\": 4, \"num_nextn_predict_layers\": 0,"
             " \"dspark_noise_token_id\": 255,"
             " \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4, \"original_max_position_embeddings\": 64,"
             " \"beta_fast\": 32, \"beta_slow\": 1},"
             " \"engram_layer_ids\": [1, 3], \"engram_num_embeddings\": [%lld, %lld], \"engram_vocab_size\": %d,"
             " \"engram_head_dim\": 32, \"engram_compressed_vocab_size\": %lld, \"engram_pad_token_id\": 2}}",
             (long long)rows[0], (long long)rows[1], SYN_ENGRAM_VOCAB, (long long)classes);
    ok = mkdir(dir, 0700) == 0 && test_synth_model(dir, config, 41) == 0;
    CHECKF(ok, "synthetic V4.1 model in %s", dir);
    char *json = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (ok) ok = lt_read_file(SYN_TOKENIZER, &json, &len, &err) == LT_OK;
    FILE *f = ok ? fopen(path, "wb") : NULL;
    ok = f && fwrite(json, 1, len, f) == len;
    if (f) fclose(f);
    free(json);
    CHECKF(ok, "tokenizer copy %s", path);
    return ok;
}

static lt_model *synth_v41(void) {
    static int n;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/v41-%d", lt_test_tmpdir(), n++);
    lt_model *m = NULL;
    lt_error err = {0};
    lt_model_params p = {.numerics = LT_NUMERICS_EXACT};
    if (write_synth_v41(dir)) CHECKF(lt_model_open(&m, dir, &p, &err) == LT_OK, "%s", err.msg);
    return m;
}

/* Every selection an index source traces: ascending, visible, at most top-k;
 * at the Reindex layer 7 inside the candidate blocks of layer 5. */
typedef struct {
    int64_t rows, bad, reindexed;
} selections;

static void on_selection(void *ud, const lt_trace_event *ev) {
    selections *s = ud;
    if (ev->kind != LT_TRACE_INDEXER) return;
    for (int64_t t = 0; t < ev->n; t++) {
        int64_t nv = (ev->pos0 + t + 1) / (ev->layer < 5 ? 2 : 1);
        const int32_t *sel = ev->idx + t * ev->width;
        int ok = ev->count[t] == LT_MIN_I64(nv, ev->width);
        for (int32_t i = 0; i < ev->count[t]; i++) ok = ok && sel[i] < nv && (i == 0 || sel[i] > sel[i - 1]);
        s->rows++;
        s->bad += !ok;
        s->reindexed += ev->layer == 7;
    }
}

LT_TEST(forward_v41, synthetic_decode_equals_prefill) {
    lt_model *m = synth_v41();
    if (!m) return;
    enum { T = 300 }; /* more than one forward batch (128) */
    int32_t ids[T];
    for (int i = 0; i < T; i++) ids[i] = (i * 37 + 5) % 256;
    float worst = decode_vs_prefill(m, ids, T);
    CHECKF(worst <= DECODE_TOL, "decode differs from prefill by %g of max", worst);
    lt_model_close(m);
}

LT_TEST(forward_v41, synthetic_selections_and_kv_bytes) {
    lt_model *m = synth_v41();
    if (!m) return;
    enum { T = 150 };
    int32_t ids[T];
    for (int i = 0; i < T; i++) ids[i] = (i * 11 + 3) % 256;
    lt_context *c = NULL;
    lt_error err = {0};
    selections s = {0};
    CHECKF(lt_context_create(&c, m, T, &err) == LT_OK, "%s", err.msg);
    if (c) {
        lt_context_set_trace(c, on_selection, &s);
        CHECKF(lt_context_eval(c, ids, T, NULL, &err) == LT_OK, "%s", err.msg);
    }
    CHECKF(s.rows == 3 * T && s.bad == 0 && s.reindexed == T, "%lld selection rows, %lld bad, %lld Reindex",
           (long long)s.rows, (long long)s.bad, (long long)s.reindexed);
    /* KV sources only: layer 2 (ratio 2) and 5 (ratio 1); FP4 entries with
     * E4M3 scales per 16 (32 + 4 bytes, padded to 40), FP4 keys (16 + 1) */
    double want = (40 + 17) / 2.0 + (40 + 17);
    CHECKF(lt_model_kv_bytes_per_token(m) == want, "%g KV bytes per token, want %g", lt_model_kv_bytes_per_token(m),
           want);
    lt_context_free(c);
    lt_model_close(m);
}

/* ---- the oracle fixtures ---------------------------------------------------- */


LT_TEST(forward_v41, tiny_exact_matches_oracle) { check_exact("v41-tiny", "the V4.1 oracle"); }
LT_TEST(forward_v41, tiny_b_exact_matches_oracle) { check_exact("v41-tiny-b", "the V4.1 oracle"); }

/* The model's Engram hash ids of input_ids equal the oracle's per layer. */
static void check_engram_hash(const char *name) {
    fixture f;
    if (!fixture_open(&f, name, LT_NUMERICS_EXACT)) return;
    const lt_model *m = f.m;
    int64_t T = 0, G = m->hasher.n_cols, L = m->cfg.n_engram_layers;
    int32_t *ids = oracle_ids(&f, "input_ids", &T);
    int32_t *hist = malloc((size_t)T * sizeof *hist);
    int64_t *got = malloc((size_t)(L * T * G) * sizeof *got);
    lt_engram_history hs;
    lt_engram_history_init(&hs, hist, T);
    lt_error err = {0};
    CHECKF(ids && lt_engram_hash(&m->hasher, &hs, ids, NULL, 0, T, got, &err) == LT_OK, "%s: %s", name, err.msg);
    for (int64_t l = 0; ids && l < L; l++) {
        char key[64];
        int64_t n = 0;
        snprintf(key, sizeof key, "engram.%d.hash_ids", m->cfg.engram_layer_ids[l]);
        int32_t *want = oracle_ids(&f, key, &n);
        int64_t differ = n == T * G ? 0 : -1;
        for (int64_t i = 0; want && differ >= 0 && i < n; i++) differ += got[l * T * G + i] != want[i];
        CHECKF(want && differ == 0, "%s: %s: %lld ids differ", name, key, (long long)differ);
        free(want);
    }
    free(got);
    free(hist);
    free(ids);
    fixture_close(&f);
}

LT_TEST(forward_v41, tiny_engram_hash_matches_oracle) { check_engram_hash("v41-tiny"); }
LT_TEST(forward_v41, tiny_b_engram_hash_matches_oracle) { check_engram_hash("v41-tiny-b"); }

static void check_decode(const char *name) {
    fixture f;
    if (!fixture_open(&f, name, LT_NUMERICS_EXACT)) return;
    int64_t T = 0;
    int32_t *ids = oracle_ids(&f, "input_ids", &T);
    if (ids) {
        float worst = decode_vs_prefill(f.m, ids, T);
        CHECKF(worst <= DECODE_TOL, "%s: decode differs from the full forward by %g of max", name, worst);
    }
    free(ids);
    fixture_close(&f);
}

LT_TEST(forward_v41, tiny_decode_equals_prefill) { check_decode("v41-tiny"); }
LT_TEST(forward_v41, tiny_b_decode_equals_prefill) { check_decode("v41-tiny-b"); }

LT_TEST(forward_v41, tiny_greedy_continuation) { check_greedy("v41-tiny"); }
LT_TEST(forward_v41, tiny_b_greedy_continuation) { check_greedy("v41-tiny-b"); }

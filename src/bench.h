/* lantern bench: what limits CPU inference on this machine.
 *
 *   bench_machine.c  read and triad bandwidth over buffers far larger than
 *                    the last-level cache; peak FMA rate of the kernel table
 *   bench_model.c    synthetic V4 layers at the real dimensions (random FP8
 *                    weights with block scales, FP4 routed experts): weight
 *                    bytes and time per decoded token, prefill throughput
 *   bench_attn.c     the attention part of one decoded token at a given
 *                    context length (window + gathered compressed rows +
 *                    the O(context) indexer scan), with synthetic caches
 *   bench_arch.c     the releases' shapes and per-layer attention kinds
 *
 * cli_bench.c parses the flags and prints; everything runs on the thread
 * pool and the kernel table chosen before the calls. */
#ifndef LT_BENCH_H
#define LT_BENCH_H

#include "lantern.h"

#include <stdint.h>

/* The per-token shape of one release (spec section 2). */
typedef struct {
    const char *name;        /* "v4-flash", "v4-pro", "v41-flash" */
    int v41;                 /* V4.1 layout: ratios 2/1, shared KV and index sources */
    int dim, n_heads, head_dim, q_rank, o_groups, o_rank;
    int index_heads, index_dim, index_topk;
    int n_experts, n_active, moe_inter;
    int block;               /* FP8 weight (and activation) block */
    int n_layers, vocab, window, rope_dim;
    int early_ratio;         /* V4: compress ratio of layers 0 and 1 (then CSA/HCA alternate) */
} lt_bench_arch;

const lt_bench_arch *lt_bench_arch_find(const char *name);
extern const char *const lt_bench_arch_names; /* for usage messages */

/* Per-layer attention structure of real layer l (spec 2, 4.3, 5.1). */
typedef struct {
    int ratio;          /* compress ratio: 0 window only, 4 CSA, 128 HCA; V4.1: 2, 1 */
    int compressor;     /* the layer runs its own compressor (a KV source) */
    int indexer;        /* the layer scores index keys (an index source) */
} lt_bench_layer_kind;

lt_bench_layer_kind lt_bench_layer(const lt_bench_arch *a, int l);

/* Index keys the layer scans, and compressed rows it attends, at context ctx. */
int64_t lt_bench_index_keys(const lt_bench_arch *a, int l, int64_t ctx);
int64_t lt_bench_attended(const lt_bench_arch *a, int l, int64_t ctx);

/* ---- machine --------------------------------------------------------- */

/* The machine's limits at the pool's thread count (bench_machine.c): one pass
 * of each probe, in GB/s or GFLOP/s; the caller keeps the best it sees. */
typedef struct lt_bench_probe lt_bench_probe;

lt_status lt_bench_probe_create(lt_bench_probe **out, lt_error *err);
void lt_bench_probe_free(lt_bench_probe *p);
uint64_t lt_bench_probe_bytes(const lt_bench_probe *p);  /* the buffer: max(1 GiB, 4 x LLC) */
double lt_bench_probe_read(lt_bench_probe *p);           /* read-only sweep */
double lt_bench_probe_triad(lt_bench_probe *p);          /* a = b + s*c, 3 arrays of traffic */
double lt_bench_probe_fma(lt_bench_probe *p);            /* register-only FMA chains, every thread */

/* the best of each limit seen so far */
typedef struct {
    double read_gbs, triad_gbs, fma_gflops;
} lt_bench_machine;

/* ---- synthetic model ---------------------------------------------------- */

typedef struct lt_bench_model lt_bench_model;

/* n_layers real layers starting at layer 2 (the first with compression);
 * experts routed experts per layer materialised (0 = as many as fit in half
 * the available memory, at most all); head adds the BF16 output head to
 * every decoded token. */
lt_status lt_bench_model_create(lt_bench_model **out, const lt_bench_arch *a, int n_layers, int experts, int head,
                                int verbose, lt_error *err);
void lt_bench_model_free(lt_bench_model *m);

int lt_bench_model_experts(const lt_bench_model *m);       /* routed experts materialised per layer */
uint64_t lt_bench_model_bytes(const lt_bench_model *m);     /* all weight bytes held */
uint64_t lt_bench_decode_bytes(const lt_bench_model *m);    /* weight bytes read per decoded token */

/* Decodes `tokens` tokens (after one warm-up), each with fresh random experts
 * and followed by a read pass of the probe (raising mach->read_gbs); fastest
 * and median seconds per token (on a shared machine noise only adds time, so
 * the fastest token is the machine's figure). */
void lt_bench_decode(lt_bench_model *m, int tokens, lt_bench_probe *p, lt_bench_machine *mach, double *fastest,
                     double *median);

typedef struct {
    double seconds;         /* the faster of LT_BENCH_PREFILL_RUNS runs (noise only adds time) */
    double slowest_seconds; /* the slowest run */
    double flops;           /* 2 per multiply-add of every product, per run */
    uint64_t weight_bytes;  /* weight bytes the batch touches */
} lt_bench_prefill_result;

#define LT_BENCH_PREFILL_RUNS 2

/* One prompt of n tokens through every layer (tokens grouped by expert so
 * each expert's weights are read once per batch), LT_BENCH_PREFILL_RUNS
 * times with fresh routing, with an FMA pass of the probe before and after
 * (raising mach->fma_gflops). */
lt_status lt_bench_prefill(lt_bench_model *m, int64_t n, lt_bench_probe *p, lt_bench_machine *mach,
                           lt_bench_prefill_result *r, lt_error *err);

/* ---- attention by context ---------------------------------------------- */

/* Synthetic caches of one layer at a context length (bench_attn.c): the
 * 128-row window and the compressed rows stored as the forward stores them
 * in REFERENCE numerics (kvrow.h: V4 584 B, V4.1 528 / 288 B per row) and
 * the index keys (FP4 with per-32 scales, 68 bytes per key: the reference
 * numerics' round trip). */
typedef struct lt_bench_attn lt_bench_attn;

lt_status lt_bench_attn_create(lt_bench_attn **out, const lt_bench_arch *a, int layer, int64_t ctx, lt_error *err);
void lt_bench_attn_free(lt_bench_attn *c);

/* The attention part of one decoded token: index scan and top-k (index
 * sources), gathering window + selected (CSA) or all (HCA) rows, and the
 * attention of every head over them. Adds its times and cache bytes read. */
void lt_bench_attn_token(lt_bench_attn *c, double *index_seconds, double *attn_seconds, uint64_t *kv_bytes);

/* Cache bytes stored per token of context over all the release's layers, in
 * the layout above (the window ring is a constant, not counted). */
uint64_t lt_bench_kv_bytes_per_token(const lt_bench_arch *a);

typedef struct {
    double seconds;          /* one decoded token, products and attention (the fastest token) */
    double median_seconds;   /* the median token */
    double attn_seconds;     /* attention of the fastest token, index scan included */
    double index_seconds;    /* of which the index scan and its top-k */
    uint64_t kv_bytes_read;  /* cache bytes read per token */
} lt_bench_ctx_result;

/* Decodes `tokens` tokens at each of the n context lengths ctx[], each layer
 * running its products and then its attention over caches of that length.
 * The lengths take turns token by token, so a change in the machine's load
 * shows in all of them alike; a read pass of the probe follows each token. */
lt_status lt_bench_decode_ctx(lt_bench_model *m, const int64_t *ctx, int n, int tokens, lt_bench_probe *p,
                              lt_bench_machine *mach, lt_bench_ctx_result *r, lt_error *err);

#endif

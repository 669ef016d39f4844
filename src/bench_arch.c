/* The shapes lantern bench synthesises: one row per release (spec section 2)
 * and the attention structure of each layer (spec 2, 4.3, 5.1). */
#include "bench.h"
#include "util.h"

#include <string.h>

static const lt_bench_arch archs[] = {
    {.name = "v4-flash", .v41 = 0, .dim = 4096, .n_heads = 64, .head_dim = 512, .q_rank = 1024, .o_groups = 8,
     .o_rank = 1024, .index_heads = 64, .index_dim = 128, .index_topk = 512, .n_experts = 256, .n_active = 6,
     .moe_inter = 2048, .block = 128, .n_layers = 43, .vocab = 129280, .window = 128, .rope_dim = 64, .early_ratio = 0},
    {.name = "v4-pro", .v41 = 0, .dim = 7168, .n_heads = 128, .head_dim = 512, .q_rank = 1536, .o_groups = 16,
     .o_rank = 1024, .index_heads = 64, .index_dim = 128, .index_topk = 1024, .n_experts = 384, .n_active = 6,
     .moe_inter = 3072, .block = 128, .n_layers = 61, .vocab = 129280, .window = 128, .rope_dim = 64, .early_ratio = 128},
    {.name = "v41-flash", .v41 = 1, .dim = 5120, .n_heads = 64, .head_dim = 512, .q_rank = 1280, .o_groups = 8,
     .o_rank = 1024, .index_heads = 32, .index_dim = 128, .index_topk = 512, .n_experts = 384, .n_active = 6,
     .moe_inter = 2304, .block = 32, .n_layers = 40, .vocab = 129280, .window = 128, .rope_dim = 64},
};

const char *const lt_bench_arch_names = "v4-flash, v4-pro, v41-flash";

const lt_bench_arch *lt_bench_arch_find(const char *name) {
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (!strcmp(name, archs[i].name)) return &archs[i];
    return NULL;
}

/* V4.1 sharing (config kv_source_layer_ids, index_source_layer_ids) */
static int v41_kv_source(int l) { return l == 2 || l == 8 || l == 14 || l == 20; }
static int v41_index_source(int l) { return v41_kv_source(l) || (l >= 24 && l <= 36 && l % 4 == 0); }

lt_bench_layer_kind lt_bench_layer(const lt_bench_arch *a, int l) {
    lt_bench_layer_kind k;
    if (a->v41) {
        k.ratio = l < 2 ? 0 : l < 20 ? 2 : 1;
        k.compressor = v41_kv_source(l);
        k.indexer = v41_index_source(l);
        return k;
    }
    /* V4-Flash: [0, 0] + [4, 128]*20 + [4]; V4-Pro: [128, 128] + [4, 128]*29 + [4] */
    k.ratio = l < 2 ? a->early_ratio : l % 2 == 0 ? 4 : 128;
    k.compressor = k.ratio > 0;
    k.indexer = k.ratio == 4;
    return k;
}

int64_t lt_bench_index_keys(const lt_bench_arch *a, int l, int64_t ctx) {
    lt_bench_layer_kind k = lt_bench_layer(a, l);
    if (!k.indexer) return 0;
    if (!a->v41 || k.compressor) return ctx / k.ratio;
    return LT_MIN(ctx, 2048 * 8); /* V4.1 re-index layers score layer 20's candidate blocks */
}

int64_t lt_bench_attended(const lt_bench_arch *a, int l, int64_t ctx) {
    lt_bench_layer_kind k = lt_bench_layer(a, l);
    if (k.ratio == 0) return 0;
    if (!a->v41 && k.ratio == 128) return ctx / 128; /* HCA attends every entry */
    return LT_MIN((int64_t)a->index_topk, ctx / k.ratio);
}

/* Random V4 checkpoints from a config (see synth_model.h). Values: matrices
 * uniform in +-1/sqrt(cols) (FP8 codes of +-1 with block scales 2^-3, FP4
 * codes with 2^-3), norm weights 1 +- 0.1, other vectors +-0.5, tid2eid a
 * valid permutation per token. */
#include "synth_model.h"

#include "config.h"
#include "inventory.h"
#include "quant.h"
#include "st_build.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float uniform(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xFFFFFF) / (float)0x800000 - 1.0f; /* [-1, 1) */
}

static void fill(const lt_inv_tensor *t, const lt_config *c, uint64_t *rng, uint8_t *out) {
    int64_t rows = t->shape[0], cols = t->ndim == 2 ? t->shape[1] : 1, n = rows * cols;
    int is_norm = strstr(t->name, "norm") != NULL;
    for (int64_t i = 0; i < n; i++) {
        float u = uniform(rng), v = t->ndim == 2 ? u / sqrtf((float)cols) : is_norm ? 1.0f + 0.1f * u : 0.5f * u;
        switch (t->dtype) {
        case LT_DT_F32: memcpy(out + 4 * i, &v, 4); break;
        case LT_DT_BF16: { uint16_t h = lt_f32_to_bf16(v); memcpy(out + 2 * i, &h, 2); break; }
        case LT_DT_F8_E4M3: out[i] = lt_f32_to_fp8_e4m3(u); break;
        case LT_DT_F8_E8M0: out[i] = 124; break;
        case LT_DT_I8: out[i] = (uint8_t)(*rng >> 32); break;
        case LT_DT_I64: { int64_t e = (i / c->n_experts_per_tok + i % c->n_experts_per_tok) % c->n_routed_experts;
                          memcpy(out + 8 * i, &e, 8); break; }
        default: break;
        }
    }
}

int test_synth_model(const char *dir, const char *config_json, unsigned seed) {
    char path[512];
    lt_config c;
    lt_inventory inv = {0};
    lt_error err;
    if (lt_config_parse(&c, config_json, "synthetic config", &err) != LT_OK ||
        lt_inventory_build(&inv, &c, &err) != LT_OK) {
        fprintf(stderr, "synthetic model: %s\n", err.msg);
        return -1;
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    int rc = !f || fputs(config_json, f) < 0;
    if (f) fclose(f);
    st_build *b = st_build_new();
    uint64_t rng = seed;
    for (int64_t i = 0; i < inv.n_tensors && !rc; i++) {
        const lt_inv_tensor *t = &inv.tensors[i];
        uint8_t *data = malloc(lt_inv_tensor_bytes(t));
        fill(t, &c, &rng, data);
        st_build_add(b, t->name, t->dtype, t->ndim, t->shape, data);
        free(data);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rc = rc || st_build_write(b, path) != 0;
    st_build_free(b);
    lt_inventory_free(&inv);
    return rc ? -1 : 0;
}

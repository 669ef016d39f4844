/* Binding checkpoint tensors as weight views, and reference row decoding. */
#include "weights.h"
#include "quant.h"
#include "util.h"

#include <stdio.h>

static lt_status expect_shape(const lt_tensor *t, int64_t d0, int64_t d1, lt_error *err) {
    if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
        return lt_fail(err, LT_ERR_INVENTORY, "tensor '%s' has shape [%lld, %lld] (ndim %d) but [%lld, %lld] is required",
                       t->name, (long long)(t->ndim > 0 ? t->shape[0] : 0), (long long)(t->ndim > 1 ? t->shape[1] : 0),
                       t->ndim, (long long)d0, (long long)d1);
    return LT_OK;
}

lt_status lt_weight_bind(lt_weight *w, const lt_store *s, const lt_config *c, const char *prefix,
                         int64_t rows, int64_t cols, lt_error *err) {
    char name[512];
    snprintf(name, sizeof name, "%s.weight", prefix);
    const lt_tensor *t = lt_store_find(s, name);
    if (!t) return lt_fail(err, LT_ERR_INVENTORY, "checkpoint has no tensor '%s'", name);
    *w = (lt_weight){.data = t->data, .rows = rows, .cols = cols, .name = t->name, .block_r = 1, .block_c = 1};
    int64_t srows, scols;
    switch (t->dtype) {
    case LT_DT_F32: w->type = LT_W_F32; return expect_shape(t, rows, cols, err);
    case LT_DT_BF16: w->type = LT_W_BF16; return expect_shape(t, rows, cols, err);
    case LT_DT_F8_E4M3:
        w->type = LT_W_FP8;
        w->block_r = c->block_r;
        w->block_c = c->block_c;
        srows = (rows + c->block_r - 1) / c->block_r;
        scols = (cols + c->block_c - 1) / c->block_c;
        break;
    case LT_DT_I8:
        if (cols % 32)
            return lt_fail(err, LT_ERR_INVENTORY, "tensor '%s': FP4 weight needs an input size divisible by 32, got %lld", name, (long long)cols);
        w->type = LT_W_FP4;
        w->block_c = 32;
        srows = rows;
        scols = cols / 32;
        cols /= 2; /* two codes per stored byte */
        break;
    default:
        return lt_fail(err, LT_ERR_INVENTORY, "tensor '%s' has dtype %s; a weight must be F32, BF16, F8_E4M3 or I8 (FP4)",
                       name, lt_dtype_name(t->dtype));
    }
    lt_status st = expect_shape(t, rows, cols, err);
    if (st != LT_OK) return st;
    snprintf(name, sizeof name, "%s.scale", prefix);
    const lt_tensor *sc = lt_store_find(s, name);
    if (!sc) return lt_fail(err, LT_ERR_INVENTORY, "checkpoint has no tensor '%s' (block scales of '%s')", name, t->name);
    if (sc->dtype != LT_DT_F8_E8M0)
        return lt_fail(err, LT_ERR_INVENTORY, "tensor '%s' has dtype %s but F8_E8M0 is required", name, lt_dtype_name(sc->dtype));
    if ((st = expect_shape(sc, srows, scols, err)) != LT_OK) return st;
    w->scale = sc->data;
    return LT_OK;
}

void lt_weight_row(const lt_weight *w, int64_t r, float *out) {
    switch (w->type) {
    case LT_W_F32:
        for (int64_t c = 0; c < w->cols; c++) out[c] = ((const float *)w->data)[r * w->cols + c];
        break;
    case LT_W_BF16:
        for (int64_t c = 0; c < w->cols; c++) out[c] = lt_bf16_to_f32(((const uint16_t *)w->data)[r * w->cols + c]);
        break;
    case LT_W_FP8: {
        const uint8_t *q = (const uint8_t *)w->data + r * w->cols;
        const uint8_t *srow = w->scale + (r / w->block_r) * ((w->cols + w->block_c - 1) / w->block_c);
        for (int64_t c = 0; c < w->cols; c++) out[c] = lt_fp8_e4m3_to_f32(q[c]) * lt_ue8m0_to_f32(srow[c / w->block_c]);
        break;
    }
    case LT_W_FP4: {
        const uint8_t *q = (const uint8_t *)w->data + r * (w->cols / 2);
        const uint8_t *srow = w->scale + r * (w->cols / 32);
        for (int64_t c = 0; c < w->cols; c++)
            out[c] = lt_fp4_e2m1_to_f32(c & 1 ? q[c / 2] >> 4 : q[c / 2] & 15) * lt_ue8m0_to_f32(srow[c / 32]);
        break;
    }
    case LT_W_COUNT: break;
    }
}

uint64_t lt_weight_bytes(const lt_weight *w) {
    switch (w->type) {
    case LT_W_F32: return (uint64_t)(w->rows * w->cols) * 4;
    case LT_W_BF16: return (uint64_t)(w->rows * w->cols) * 2;
    case LT_W_FP8:
        return (uint64_t)(w->rows * w->cols) +
               (uint64_t)(((w->rows + w->block_r - 1) / w->block_r) * ((w->cols + w->block_c - 1) / w->block_c));
    case LT_W_FP4: return (uint64_t)(w->rows * w->cols / 2 + w->rows * (w->cols / 32));
    case LT_W_COUNT: break;
    }
    return 0;
}

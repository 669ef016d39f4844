/* KV cache row formats: packing (= quantising) and unpacking. */
#include "kvrow.h"
#include "quant.h"

#include <math.h>
#include <string.h>

static int64_t align8(int64_t n) { return (n + 7) & ~(int64_t)7; }

lt_kv_fmt lt_kv_fmt_f32(int64_t d) {
    return (lt_kv_fmt){.kind = LT_KV_F32, .d = (int32_t)d, .bytes = 4 * d};
}

lt_kv_fmt lt_kv_fmt_fp8(int64_t d, int64_t w8, int block) {
    lt_kv_fmt f = {.kind = LT_KV_FP8, .d = (int32_t)d, .w8 = (int32_t)w8, .block = block};
    f.bytes = align8(lt_kv_bf16_offset(&f) + 2 * (d - w8));
    return f;
}

lt_kv_fmt lt_kv_fmt_fp4(int64_t d, int block) {
    lt_kv_fmt f = {.kind = LT_KV_FP4, .d = (int32_t)d, .block = block};
    f.bytes = align8(d / 2 + d / block);
    return f;
}

int64_t lt_kv_scale_offset(const lt_kv_fmt *f) { return f->kind == LT_KV_FP4 ? f->d / 2 : f->w8; }

int64_t lt_kv_bf16_offset(const lt_kv_fmt *f) {
    return (lt_kv_scale_offset(f) + (f->w8 + f->block - 1) / f->block + 1) & ~(int64_t)1;
}

/* FP8 block: amax = max(|x|, 1e-4), s = 2^ceil(log2(amax/448)) (quant.c);
 * the scale byte is UE8M0, log2(s) + 127 */
static void pack_fp8_block(const float *x, int64_t n, uint8_t *codes, uint8_t *scale) {
    float amax = 1e-4f;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    int e = (int)ceilf(log2f(amax / 448.0f));
    float s = ldexpf(1.0f, e);
    for (int64_t i = 0; i < n; i++) codes[i] = lt_f32_to_fp8_e4m3(x[i] / s);
    *scale = (uint8_t)(e + 127);
}

/* FP4 block with an E4M3 scale: s = e4m3(max(amax, 6 2^-9) / 6) (numerics.c) */
static void pack_fp4_block(const float *x, int64_t n, uint8_t *codes, uint8_t *scale) {
    float amax = 6.0f * 0x1p-9f;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    *scale = lt_f32_to_fp8_e4m3(amax / 6.0f);
    float s = lt_fp8_e4m3_to_f32(*scale);
    for (int64_t i = 0; i < n; i += 2)
        codes[i / 2] = (uint8_t)(lt_f32_to_fp4_e2m1(x[i] / s) | lt_f32_to_fp4_e2m1(x[i + 1] / s) << 4);
}

void lt_kv_pack(const lt_kv_fmt *f, const float *x, uint8_t *row) {
    uint8_t *scale = row + lt_kv_scale_offset(f);
    switch (f->kind) {
    case LT_KV_F32: memcpy(row, x, (size_t)f->d * sizeof *x); return;
    case LT_KV_FP8:
        for (int64_t b = 0; b < f->w8; b += f->block)
            pack_fp8_block(x + b, f->block < f->w8 - b ? f->block : f->w8 - b, row + b, scale + b / f->block);
        for (int64_t i = f->w8; i < f->d; i++) {
            uint16_t h = lt_f32_to_bf16(x[i]);
            memcpy(row + lt_kv_bf16_offset(f) + 2 * (i - f->w8), &h, 2);
        }
        return;
    case LT_KV_FP4:
        for (int64_t b = 0; b < f->d; b += f->block) pack_fp4_block(x + b, f->block, row + b / 2, scale + b / f->block);
        return;
    }
}

void lt_kv_unpack(const lt_kv_fmt *f, const uint8_t *row, float *x) {
    const uint8_t *scale = row + lt_kv_scale_offset(f);
    switch (f->kind) {
    case LT_KV_F32: memcpy(x, row, (size_t)f->d * sizeof *x); return;
    case LT_KV_FP8:
        for (int64_t i = 0; i < f->w8; i++) x[i] = lt_fp8_e4m3_to_f32(row[i]) * lt_ue8m0_to_f32(scale[i / f->block]);
        for (int64_t i = f->w8; i < f->d; i++) {
            uint16_t h;
            memcpy(&h, row + lt_kv_bf16_offset(f) + 2 * (i - f->w8), 2);
            x[i] = lt_bf16_to_f32(h);
        }
        return;
    case LT_KV_FP4:
        for (int64_t i = 0; i < f->d; i++)
            x[i] = lt_fp4_e2m1_to_f32((uint8_t)(row[i / 2] >> 4 * (i & 1))) * lt_fp8_e4m3_to_f32(scale[i / f->block]);
        return;
    }
}

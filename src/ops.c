/* Elementwise operations of the forward pass (spec 3.1, 3.5): plain C, fp32. */
#include "ops.h"
#include "quant.h"

#include <math.h>
#include <string.h>

float lt_vec_at(const lt_vec *v, int64_t i) {
    if (v->dtype == LT_DT_BF16) {
        uint16_t h;
        memcpy(&h, (const uint8_t *)v->data + 2 * i, 2);
        return lt_bf16_to_f32(h);
    }
    float f;
    memcpy(&f, (const uint8_t *)v->data + 4 * i, 4);
    return f;
}

int64_t lt_vec_i64(const lt_vec *v, int64_t i) {
    int64_t x;
    memcpy(&x, (const uint8_t *)v->data + 8 * i, 8);
    return x;
}

float lt_dot(const float *a, const float *b, int64_t n) {
    float acc[8] = {0}, s = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    for (; i < n; i++) s += a[i] * b[i];
    for (int k = 0; k < 8; k++) s += acc[k];
    return s;
}

void lt_axpy(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

void lt_softmax(float *x, int64_t n) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY) {
        memset(x, 0, (size_t)n * sizeof *x);
        return;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

float lt_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

float lt_silu(float x) { return x / (1.0f + expf(-x)); }

float lt_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

void lt_hadamard(float *x, int64_t n) {
    for (int64_t h = 1; h < n; h *= 2)
        for (int64_t i = 0; i < n; i += 2 * h)
            for (int64_t j = i; j < i + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
    float s = (float)(1.0 / sqrt((double)n));
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

void lt_round_bf16_n(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = lt_round_bf16(x[i]);
}

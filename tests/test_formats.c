/* Known-answer tests for the number formats (spec 3.4): every FP8 e4m3 byte,
 * every FP4 e2m1 code, UE8M0, BF16, F16, and the RNE encoders. */
#include "quant.h"
#include "test.h"

#include <math.h>
#include <stdint.h>

/* Independent e4m3fn definition from the bit fields, for comparison. */
static float e4m3_from_fields(int b) {
    int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    if (e == 15 && m == 7) return NAN;
    float mag = e ? ldexpf(1.0f + m / 8.0f, e - 7) : ldexpf((float)m, -9);
    return s ? -mag : mag;
}

LT_TEST(formats, fp8_e4m3_all_256_bytes) {
    for (int b = 0; b < 256; b++) {
        float want = e4m3_from_fields(b), got = lt_fp8_e4m3_to_f32((uint8_t)b);
        if (isnan(want)) CHECKF(isnan(got), "byte 0x%02x should be NaN, got %g", b, got);
        else CHECKF(got == want && signbit(got) == signbit(want), "byte 0x%02x: got %g want %g", b, got, want);
    }
    CHECK(lt_fp8_e4m3_to_f32(0x7E) == 448.0f);
    CHECK(lt_fp8_e4m3_to_f32(0xFE) == -448.0f);
    CHECK(lt_fp8_e4m3_to_f32(0x38) == 1.0f);
    CHECK(lt_fp8_e4m3_to_f32(0x01) == 0x1p-9f);
    CHECK(lt_fp8_e4m3_to_f32(0x08) == 0x1p-6f);
    CHECK(isnan(lt_fp8_e4m3_to_f32(0x7F)) && isnan(lt_fp8_e4m3_to_f32(0xFF)));
    CHECK(signbit(lt_fp8_e4m3_to_f32(0x80)) && lt_fp8_e4m3_to_f32(0x80) == 0.0f);
}

LT_TEST(formats, fp8_e4m3_encoder) {
    for (int b = 0; b < 256; b++) {
        if ((b & 0x7F) == 0x7F) continue;
        uint8_t back = lt_f32_to_fp8_e4m3(lt_fp8_e4m3_to_f32((uint8_t)b));
        CHECKF(back == b, "round trip of 0x%02x gave 0x%02x", b, back);
    }
    CHECK(lt_f32_to_fp8_e4m3(1.0625f) == 0x38);   /* tie between 1 and 1.125 -> even mantissa */
    CHECK(lt_f32_to_fp8_e4m3(1.1875f) == 0x3A);   /* tie between 1.125 and 1.25 -> even */
    CHECK(lt_f32_to_fp8_e4m3(1.07f) == 0x39);
    CHECK(lt_f32_to_fp8_e4m3(1000.0f) == 0x7E);   /* saturates */
    CHECK(lt_f32_to_fp8_e4m3(-1000.0f) == 0xFE);
    CHECK(lt_f32_to_fp8_e4m3(0x1p-10f) == 0x00);  /* tie between 0 and 2^-9 -> 0 */
    CHECK(lt_f32_to_fp8_e4m3(0x1.8p-9f) == 0x02); /* tie between 1 and 2 ulps -> 2 */
    CHECK(lt_f32_to_fp8_e4m3(NAN) == 0x7F);
}

LT_TEST(formats, fp4_e2m1_all_16_codes) {
    static const float want[16] = {0, .5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -.5f, -1, -1.5f, -2, -3, -4, -6};
    for (int c = 0; c < 16; c++) {
        CHECKF(lt_fp4_e2m1_to_f32((uint8_t)c) == want[c] && signbit(lt_fp4_e2m1_to_f32((uint8_t)c)) == signbit(want[c]),
               "code %d: got %g want %g", c, lt_fp4_e2m1_to_f32((uint8_t)c), want[c]);
        CHECKF(lt_f32_to_fp4_e2m1(want[c]) == c, "encode %g gave %d", want[c], lt_f32_to_fp4_e2m1(want[c]));
    }
    CHECK(lt_f32_to_fp4_e2m1(0.25f) == 0);  /* ties to the even code */
    CHECK(lt_f32_to_fp4_e2m1(0.75f) == 2);
    CHECK(lt_f32_to_fp4_e2m1(2.5f) == 4);
    CHECK(lt_f32_to_fp4_e2m1(5.0f) == 6);
    CHECK(lt_f32_to_fp4_e2m1(100.0f) == 7);
    CHECK(lt_f32_to_fp4_e2m1(-3.4f) == 13);
}

LT_TEST(formats, ue8m0) {
    CHECK(lt_ue8m0_to_f32(127) == 1.0f);
    CHECK(lt_ue8m0_to_f32(128) == 2.0f);
    CHECK(lt_ue8m0_to_f32(120) == 0x1p-7f);
    CHECK(lt_ue8m0_to_f32(0) == 0x1p-127f);
    CHECK(lt_ue8m0_to_f32(254) == 0x1p127f);
    CHECK(isnan(lt_ue8m0_to_f32(255)));
}

LT_TEST(formats, bf16) {
    CHECK(lt_bf16_to_f32(0x3F80) == 1.0f);
    CHECK(lt_bf16_to_f32(0xC000) == -2.0f);
    CHECK(lt_f32_to_bf16(1.0f + 0x1p-8f) == 0x3F80);           /* tie -> even */
    CHECK(lt_f32_to_bf16(1.0f + 0x1p-7f + 0x1p-8f) == 0x3F82); /* tie -> even (up) */
    CHECK(lt_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3F81);
    CHECK(isnan(lt_bf16_to_f32(lt_f32_to_bf16(NAN))));
    CHECK(lt_f32_to_bf16(INFINITY) == 0x7F80);
    for (uint32_t h = 0; h < 65536; h += 7) {
        float f = lt_bf16_to_f32((uint16_t)h);
        if (!isnan(f)) CHECKF(lt_f32_to_bf16(f) == h, "bf16 round trip 0x%04x", h);
    }
}

LT_TEST(formats, f16) {
    CHECK(lt_f16_to_f32(0x3C00) == 1.0f);
    CHECK(lt_f16_to_f32(0x7BFF) == 65504.0f);
    CHECK(lt_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(lt_f16_to_f32(0xFC00) == -INFINITY);
    CHECK(isnan(lt_f16_to_f32(0x7E00)));
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lt_f16_to_f32((uint16_t)h);
        if (!isnan(f)) CHECKF(lt_f32_to_f16(f) == h, "f16 round trip 0x%04x -> 0x%04x", h, lt_f32_to_f16(f));
    }
    CHECK(lt_f32_to_f16(1.0f + 0x1p-11f) == 0x3C00); /* tie -> even */
    CHECK(lt_f32_to_f16(70000.0f) == 0x7C00);
}

LT_TEST(formats, fake_quant_fp8_block) {
    float x[6] = {1.0f, -3.0f, 0.001f, 500.0f, 2.0f, 0.0f};
    lt_fake_quant_fp8(x, 6, 3);
    /* block 0: amax 3 -> s = 2^ceil(log2(3/448)) = 2^-7; values on the e4m3 grid times s */
    CHECK(x[0] == 1.0f && x[1] == -3.0f);
    CHECK(fabsf(x[2] - 0.001f) < 0.001f * 0.07f);
    /* block 1: amax 500 -> s = 2 -> 500/2 = 250 -> e4m3 grid spacing 16 at 2^7: 256 -> 512 */
    CHECK(x[3] == 512.0f && x[4] == 2.0f && x[5] == 0.0f);
}

LT_TEST(formats, fake_quant_fp4_block) {
    float x[4] = {6.0f, 1.2f, -0.4f, 2.6f};
    lt_fake_quant_fp4(x, 4, 4); /* amax 6 -> s = 1 */
    CHECK(x[0] == 6.0f && x[1] == 1.0f && x[2] == -0.5f && x[3] == 3.0f);
}

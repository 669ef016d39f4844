/* Sampling tests: greedy = argmax, exact filtered distributions on small
 * vectors (top-k, temperature, top-p, min-p), penalty math, seeded
 * reproducibility against an independent xoshiro256** computation, draw
 * frequencies, and stop conditions (ids, strings split across tokens,
 * max tokens). */
#include "sample.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

LT_TEST(sample, rng_matches_reference_xoshiro256ss) {
    /* splitmix64-seeded xoshiro256**, seed 42, computed independently in Python */
    lt_rng r;
    lt_rng_seed(&r, 42);
    CHECK(lt_rng_next(&r) == 0x15780b2e0c2ec716ull);
    CHECK(lt_rng_next(&r) == 0x6104d9866d113a7eull);
    CHECK(lt_rng_next(&r) == 0xae17533239e499a1ull);
    double u = lt_rng_uniform(&r);
    CHECK(u >= 0 && u < 1);
}

static int32_t sample_once(lt_sample_params p, const float *logits, int n) {
    lt_sampler *s;
    float *l = malloc((size_t)n * sizeof *l);
    memcpy(l, logits, (size_t)n * sizeof *l);
    CHECK(lt_sampler_create(&s, &p, n, NULL) == LT_OK);
    int32_t t = lt_sampler_sample(s, l);
    lt_sampler_free(s);
    free(l);
    return t;
}

LT_TEST(sample, greedy_is_argmax) {
    float l[] = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f};
    CHECK(sample_once((lt_sample_params){0}, l, 5) == 1); /* first of the tied maxima */
    float neg[] = {-5, -3, -4};
    CHECK(sample_once((lt_sample_params){.temperature = -1}, neg, 3) == 1);
}

/* Compares the filtered distribution with expected (id, p) pairs. */
static void expect_dist(lt_sample_params p, const float *logits, int n, const lt_token_prob *want, int m) {
    lt_token_prob got[16];
    int k = lt_sample_distribution(&p, logits, n, got);
    CHECKF(k == m, "%d candidates, want %d", k, m);
    for (int i = 0; i < k && i < m; i++)
        CHECKF(got[i].id == want[i].id && fabsf(got[i].p - want[i].p) < 1e-6f, "[%d] = (%d, %.7f), want (%d, %.7f)", i,
               got[i].id, got[i].p, want[i].id, want[i].p);
}

LT_TEST(sample, filters_are_exact) {
    float l[] = {1, 2, 3, 4};
    double e4 = exp(4), e3 = exp(3), e2 = exp(2), e1 = exp(1), z = e4 + e3 + e2 + e1;
    /* temperature only */
    expect_dist((lt_sample_params){.temperature = 1}, l, 4,
                (lt_token_prob[]){{3, (float)(e4 / z)}, {2, (float)(e3 / z)}, {1, (float)(e2 / z)}, {0, (float)(e1 / z)}}, 4);
    double h4 = exp(2), h3 = exp(1.5), h2 = exp(1), h1 = exp(0.5), zh = h4 + h3 + h2 + h1;
    expect_dist((lt_sample_params){.temperature = 2}, l, 4,
                (lt_token_prob[]){{3, (float)(h4 / zh)}, {2, (float)(h3 / zh)}, {1, (float)(h2 / zh)}, {0, (float)(h1 / zh)}}, 4);
    /* top-k 2: softmax over the two best */
    expect_dist((lt_sample_params){.temperature = 1, .top_k = 2}, l, 4,
                (lt_token_prob[]){{3, (float)(e4 / (e4 + e3))}, {2, (float)(e3 / (e4 + e3))}}, 2);
    /* probabilities 0.5, 0.3, 0.2 as logits */
    float q[] = {logf(0.2f), logf(0.5f), logf(0.3f)};
    expect_dist((lt_sample_params){.temperature = 1, .top_p = 0.6f}, q, 3,
                (lt_token_prob[]){{1, 0.625f}, {2, 0.375f}}, 2);
    expect_dist((lt_sample_params){.temperature = 1, .top_p = 0.4f}, q, 3, (lt_token_prob[]){{1, 1.0f}}, 1);
    expect_dist((lt_sample_params){.temperature = 1, .top_p = 0.9f}, q, 3,
                (lt_token_prob[]){{1, 0.5f}, {2, 0.3f}, {0, 0.2f}}, 3);
    /* min-p 0.5: keep p >= 0.25 */
    expect_dist((lt_sample_params){.temperature = 1, .min_p = 0.5f}, q, 3,
                (lt_token_prob[]){{1, 0.625f}, {2, 0.375f}}, 2);
    /* all together: top-k 2 then min-p 0.7 of 0.625 -> only the best */
    expect_dist((lt_sample_params){.temperature = 1, .top_k = 2, .min_p = 0.7f}, q, 3, (lt_token_prob[]){{1, 1.0f}}, 1);
}

LT_TEST(sample, top_p_on_a_flat_large_vocabulary) {
    int n = 129280;
    float *l = calloc((size_t)n, sizeof *l);
    lt_token_prob *out = malloc((size_t)n * sizeof *out);
    l[7] = 1.0f;
    lt_sample_params p = {.temperature = 1, .top_p = 0.5f};
    int m = lt_sample_distribution(&p, l, n, out);
    /* e / (e + n - 1) is tiny: top-p 0.5 keeps about half the flat mass */
    double p7 = exp(1) / (exp(1) + n - 1), flat = 1 / (exp(1) + n - 1);
    int want = 1 + (int)ceil((0.5 - p7) / flat - 1e-9);
    CHECKF(abs(m - want) <= 1 && out[0].id == 7 && out[1].id == 0, "kept %d, want about %d", m, want);
    free(l);
    free(out);
}

LT_TEST(sample, seed_reproducible_and_frequencies_right) {
    float q[] = {logf(0.2f), logf(0.5f), logf(0.3f)};
    lt_sample_params p = {.temperature = 1, .seed = 1234};
    lt_sampler *a, *b, *c;
    CHECK(lt_sampler_create(&a, &p, 3, NULL) == LT_OK && lt_sampler_create(&b, &p, 3, NULL) == LT_OK);
    p.seed = 1235;
    CHECK(lt_sampler_create(&c, &p, 3, NULL) == LT_OK);
    int count[3] = {0}, same = 1, differs = 0, n = 30000;
    for (int i = 0; i < n; i++) {
        float la[3], lb[3], lc[3];
        memcpy(la, q, sizeof q), memcpy(lb, q, sizeof q), memcpy(lc, q, sizeof q);
        int32_t ta = lt_sampler_sample(a, la), tb = lt_sampler_sample(b, lb), tc = lt_sampler_sample(c, lc);
        same &= ta == tb;
        differs |= ta != tc;
        count[ta]++;
    }
    CHECK(same && differs);
    /* 30,000 draws: standard error of a frequency <= 0.003; allow 5 sigma */
    CHECKF(fabs(count[0] / (double)n - 0.2) < 0.015 && fabs(count[1] / (double)n - 0.5) < 0.015 &&
           fabs(count[2] / (double)n - 0.3) < 0.015, "frequencies %d %d %d", count[0], count[1], count[2]);
    lt_sampler_free(a);
    lt_sampler_free(b);
    lt_sampler_free(c);
}

LT_TEST(sample, penalties_math) {
    lt_sample_params p = {.repetition_penalty = 2, .presence_penalty = 0.5f, .frequency_penalty = 0.25f,
                          .penalty_last_n = 3};
    lt_sampler *s;
    CHECK(lt_sampler_create(&s, &p, 4, NULL) == LT_OK);
    lt_sampler_accept(s, 3); /* falls out of the 3-token window */
    lt_sampler_accept(s, 0);
    lt_sampler_accept(s, 1);
    lt_sampler_accept(s, 0);
    float l[] = {2, -2, 1, 0};
    lt_sampler_sample(s, l);
    CHECKF(fabsf(l[0] - (2.0f / 2 - 0.5f - 0.5f)) < 1e-6f, "l0 %g", l[0]);    /* count 2 */
    CHECKF(fabsf(l[1] - (-2.0f * 2 - 0.5f - 0.25f)) < 1e-6f, "l1 %g", l[1]); /* count 1 */
    CHECK(l[2] == 1 && l[3] == 0);
    lt_sampler_free(s);
    /* a repeated token loses to the runner-up under greedy */
    lt_sample_params rep = {.repetition_penalty = 1.5f};
    CHECK(lt_sampler_create(&s, &rep, 2, NULL) == LT_OK);
    lt_sampler_accept(s, 0);
    float g[] = {3.0f, 2.5f};
    CHECK(lt_sampler_sample(s, g) == 1);
    lt_sampler_free(s);
}

LT_TEST(sample, bad_params) {
    lt_sampler *s;
    lt_error err;
    CHECK(lt_sampler_create(&s, &(lt_sample_params){.temperature = 1}, 0, &err) == LT_ERR_ARG && !s);
    CHECK(lt_sampler_create(&s, &(lt_sample_params){.temperature = NAN}, 4, &err) == LT_ERR_ARG);
    CHECK(lt_sampler_create(&s, &(lt_sample_params){.temperature = INFINITY}, 4, &err) == LT_ERR_ARG);
}

/* Feeds pieces as tokens (id = index + 10) and collects the shown text. */
static lt_stop_reason run_stop(lt_stop *s, const char *const *pieces, int n, char *shown, int stop_at_id) {
    char out[512];
    size_t len, total = 0;
    lt_stop_reason r = LT_STOP_NONE;
    for (int i = 0; i < n && r == LT_STOP_NONE; i++) {
        r = lt_stop_token(s, i == stop_at_id ? 1 : 10 + i, pieces[i], strlen(pieces[i]), out, &len);
        memcpy(shown + total, out, len);
        total += len;
    }
    if (r == LT_STOP_NONE) total += lt_stop_flush(s, shown + total);
    shown[total] = 0;
    return r;
}

LT_TEST(sample, stop_strings_across_tokens) {
    lt_stop s;
    char shown[512];
    const char *stops[] = {"###", "\nUser:"};
    int32_t eos = 1;
    CHECK(lt_stop_init(&s, stops, 2, &eos, 1, 0, NULL) == LT_OK);
    const char *a[] = {"Hello #", "#", "# world"};
    CHECK(run_stop(&s, a, 3, shown, -1) == LT_STOP_STRING && !strcmp(shown, "Hello "));
    CHECK(lt_stop_init(&s, stops, 2, &eos, 1, 0, NULL) == LT_OK);
    const char *b[] = {"a\n", "Us", "e", "r and more"}; /* a near miss is released */
    CHECK(run_stop(&s, b, 4, shown, -1) == LT_STOP_NONE && !strcmp(shown, "a\nUser and more"));
    CHECK(lt_stop_init(&s, stops, 2, &eos, 1, 0, NULL) == LT_OK);
    const char *c[] = {"x\nUs", "er: hi"};
    CHECK(run_stop(&s, c, 2, shown, -1) == LT_STOP_STRING && !strcmp(shown, "x"));
    CHECK(lt_stop_init(&s, stops, 2, &eos, 1, 0, NULL) == LT_OK);
    const char *d[] = {"ok #", "<eos>"}; /* EOS releases the held "#" */
    CHECK(run_stop(&s, d, 2, shown, 1) == LT_STOP_TOKEN && !strcmp(shown, "ok #"));
    CHECK(lt_stop_init(&s, stops, 2, &eos, 1, 3, NULL) == LT_OK);
    const char *e[] = {"1", "2", "3#", "4"};
    CHECK(run_stop(&s, e, 4, shown, -1) == LT_STOP_LENGTH && !strcmp(shown, "123#"));
    lt_error err;
    const char *empty[] = {""};
    CHECK(lt_stop_init(&s, empty, 1, NULL, 0, 0, &err) == LT_ERR_ARG && strstr(err.msg, "stop string 0"));
    CHECK(lt_stop_init(&s, NULL, 0, NULL, 0, -1, &err) == LT_ERR_ARG);
}

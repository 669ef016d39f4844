/* Next-token sampling and stop conditions.
 *
 * lt_sampler turns the logits of one step into a token id: penalties over
 * the recent tokens, then greedy argmax (temperature 0) or, in this order,
 * top-k -> temperature -> softmax -> top-p -> min-p -> a draw from our own
 * seeded xoshiro256** generator, so a seed gives the same tokens on every
 * run and machine. Sampling allocates nothing: scratch is made at creation.
 *
 * lt_stop decides when generation ends: a stop token id (EOS), a stop string
 * in the decoded text (also one split across tokens: the text that might be
 * its beginning is held back until it is decided), or max_tokens. */
#ifndef LT_SAMPLE_H
#define LT_SAMPLE_H

#include "lantern.h"

#include <stddef.h>
#include <stdint.h>

/* Every field's zero value means "off", so designated initializers only
 * name what they use: (lt_sample_params){.temperature = 0.7f, .top_p = 0.95f}. */
typedef struct {
    float temperature;        /* <= 0: greedy (argmax, lowest id on ties) */
    int top_k;                /* keep the k highest logits; <= 0: off */
    float top_p;              /* keep the smallest set with probability >= top_p; <= 0 or >= 1: off */
    float min_p;              /* keep p >= min_p * p_max; <= 0: off */
    float repetition_penalty; /* CTRL / HF: a seen token's logit l becomes l / r if l > 0, else l * r; <= 0 or 1: off */
    float presence_penalty;   /* OpenAI: minus this once for every seen token */
    float frequency_penalty;  /* OpenAI: minus this times the token's count */
    int penalty_last_n;       /* penalties look at the last n accepted tokens; <= 0: 64 */
    uint64_t seed;
} lt_sample_params;

/* xoshiro256** (Blackman & Vigna), seeded through splitmix64. */
typedef struct { uint64_t s[4]; } lt_rng;
void lt_rng_seed(lt_rng *r, uint64_t seed);
uint64_t lt_rng_next(lt_rng *r);
double lt_rng_uniform(lt_rng *r); /* in [0, 1), 53 random bits */

typedef struct lt_sampler lt_sampler;

lt_status lt_sampler_create(lt_sampler **out, const lt_sample_params *p, int32_t n_vocab, lt_error *err);
void lt_sampler_free(lt_sampler *s);

/* Records a token (prompt or generated) for the penalties window. */
void lt_sampler_accept(lt_sampler *s, int32_t token);

/* Picks the next token from logits[n_vocab]; applies the penalties to
 * logits in place. Does not accept the token (call lt_sampler_accept). */
int32_t lt_sampler_sample(lt_sampler *s, float *logits);

typedef struct {
    int32_t id;
    float p;
} lt_token_prob;

/* The distribution a non-greedy draw uses, for logits without penalties:
 * writes the m surviving candidates, most likely first (lower id on ties),
 * with probabilities summing to 1, to out[0..m) and returns m. out holds n
 * entries. */
int lt_sample_distribution(const lt_sample_params *p, const float *logits, int32_t n, lt_token_prob *out);

/* ---- stop conditions ---------------------------------------------------- */

#define LT_STOP_MAX_STRINGS 16
#define LT_STOP_MAX_LEN 256 /* bytes per stop string */
#define LT_STOP_MAX_IDS 8

typedef enum { LT_STOP_NONE = 0, LT_STOP_TOKEN, LT_STOP_STRING, LT_STOP_LENGTH } lt_stop_reason;

typedef struct {
    char strings[LT_STOP_MAX_STRINGS][LT_STOP_MAX_LEN + 1];
    int n_strings;
    int32_t ids[LT_STOP_MAX_IDS];
    int n_ids;
    int64_t max_tokens;           /* 0: no limit */
    int64_t n_tokens;             /* tokens seen so far */
    char held[LT_STOP_MAX_LEN];   /* text that may be the start of a stop string */
    size_t n_held;
} lt_stop;

/* Fails with LT_ERR_ARG for too many or too long (or empty) stop strings. */
lt_status lt_stop_init(lt_stop *s, const char *const *strings, int n_strings, const int32_t *ids, int n_ids,
                       int64_t max_tokens, lt_error *err);

/* One generated token: its id and decoded text (lt_detok_push). Writes the
 * text that can be shown now to out, which must hold len + LT_STOP_MAX_LEN
 * bytes, and its length to *out_len. On LT_STOP_STRING, out ends right
 * before the stop string; on any stop, held text that did not complete a
 * stop string is released into out. A stop token's own text is not shown. */
lt_stop_reason lt_stop_token(lt_stop *s, int32_t id, const char *text, size_t len, char *out, size_t *out_len);

/* Releases held-back text when generation ends for another reason; out
 * holds LT_STOP_MAX_LEN bytes. Returns its length. */
size_t lt_stop_flush(lt_stop *s, char *out);

#endif

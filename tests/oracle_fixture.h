/* Test helper shared by the forward-pass tests: a committed oracle fixture
 * (tests/fixtures/<name>/: an official-format checkpoint + oracle.safetensors)
 * opened as a model and an oracle store, typed access to oracle tensors, and
 * the EXACT and greedy-continuation checks every architecture shares. */
#ifndef LT_ORACLE_FIXTURE_H
#define LT_ORACLE_FIXTURE_H

#include "model.h"
#include "safetensors.h"

typedef struct {
    const char *name;
    lt_model *m;
    lt_store oracle;
} fixture;

/* Opens tests/fixtures/<name>; a missing fixture is a failed check, not a skip. */
int fixture_open(fixture *f, const char *name, lt_numerics numerics);
void fixture_close(fixture *f);

/* An oracle tensor of the given dtype and element count (a failed check if not). */
const void *oracle_data(const fixture *f, const char *name, lt_dtype dt, int64_t numel);
/* The first dimension of an oracle tensor (0 and a failed check if missing). */
int64_t oracle_len(const fixture *f, const char *name);
/* An I64 oracle tensor, flattened, as int32 (malloc'd); n its element count. */
int32_t *oracle_ids(const fixture *f, const char *name, int64_t *n);

float max_abs(const float *x, int64_t n);
float max_diff(const float *a, const float *b, int64_t n);
int64_t argmax(const float *x, int64_t n);

/* EXACT mode, one traced full forward (src/compare.c) against the fixture's
 * oracle (named `oracle` in the output): logits at every position within
 * EXACT_LOGIT_TOL of max |logit|, every block's residual streams and the
 * final hidden within EXACT_HIDDEN_TOL, top-1, routing and indexer
 * selections equal, and the MTP head where the model has one. */
#define EXACT_LOGIT_TOL 1e-4
#define EXACT_HIDDEN_TOL 1e-4
void check_exact(const char *name, const char *oracle);

/* EXACT greedy continuation of greedy_prompt with the cache equals the
 * oracle's greedy_tokens (at least 32 of them). */
void check_greedy(const char *name);

#endif

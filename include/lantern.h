/* Lantern: an inference engine for the DeepSeek V4 model family.
 *
 * This is the whole public C API. Models are opened from an official
 * checkpoint folder (config.json + safetensors shards, FP8/FP4 weights as
 * released); weights stay memory-mapped and are never copied whole.
 *
 * Conventions: every call that can fail returns an lt_status and, when given
 * an lt_error, fills it with a one-line message naming the cause (file,
 * tensor, field, value). Objects come in create/free (or open/close) pairs.
 * Nothing here ever exits the process. */
#ifndef LANTERN_H
#define LANTERN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LT_OK = 0,
    LT_ERR_IO,        /* missing/unreadable file, short read */
    LT_ERR_FORMAT,    /* malformed checkpoint, JSON, tokenizer or fixture */
    LT_ERR_CONFIG,    /* config value missing or out of range */
    LT_ERR_INVENTORY, /* checkpoint lacks a tensor or holds a wrong shape/dtype */
    LT_ERR_NOMEM,     /* allocation failed */
    LT_ERR_ARG,       /* bad argument from the caller (token id, length, flag) */
    LT_ERR_UNSUPPORTED
} lt_status;

/* A one-line, human-readable description of the last failure. */
typedef struct { char msg[1024]; } lt_error;

const char *lt_status_name(lt_status s);

/* ---- models ---------------------------------------------------------- */

typedef struct lt_model lt_model;

typedef enum {
    LT_NUMERICS_EXACT = 0,  /* fp32 math on dequantised weights (the HF oracle) */
    LT_NUMERICS_REFERENCE,  /* the official code's rounding points (FP8 act quant, QAT, bf16) */
    LT_NUMERICS_AUTO        /* as config.json's torch_dtype says: REFERENCE for bfloat16 (every
                             * release: its weights were trained with those roundings), EXACT
                             * for float32 (models computed in fp32, like the test fixtures) */
} lt_numerics;

typedef struct {
    lt_numerics numerics;
    int n_threads;          /* 0 = number of physical cores */
    int verbose;            /* progress on stderr while loading */
} lt_model_params;

/* Opens a model folder: config.json, model.safetensors.index.json or a single
 * model.safetensors, tokenizer.json when present. Checks the full tensor
 * inventory before returning. */
lt_status lt_model_open(lt_model **out, const char *dir, const lt_model_params *p, lt_error *err);
void lt_model_close(lt_model *m);

int lt_model_vocab_size(const lt_model *m);
int lt_model_bos(const lt_model *m);
int lt_model_eos(const lt_model *m);

/* ---- inference contexts ---------------------------------------------- */

typedef struct lt_context lt_context;

/* A context holds the caches (sliding window ring, compressed KV, indexer
 * keys, compressor state) for one sequence of up to n_ctx tokens. */
lt_status lt_context_create(lt_context **out, lt_model *m, int64_t n_ctx, lt_error *err);
void lt_context_free(lt_context *c);

/* Appends n tokens to the sequence and runs the model over them (prefill when
 * n > 1, decode when n == 1). logits, when non-NULL, receives the float32
 * logits of the last token [vocab]. */
lt_status lt_context_eval(lt_context *c, const int32_t *tokens, int64_t n, float *logits, lt_error *err);

/* Like lt_context_eval but writes logits for every one of the n tokens
 * ([n, vocab], row-major). */
lt_status lt_context_eval_all(lt_context *c, const int32_t *tokens, int64_t n, float *logits, lt_error *err);

int64_t lt_context_pos(const lt_context *c);   /* tokens consumed so far */
void lt_context_reset(lt_context *c);           /* forget the sequence */

#ifdef __cplusplus
}
#endif
#endif

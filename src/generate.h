/* What the commands that run a model (run, chat, perplexity, compare) share:
 * their common flags, the default model folder, opening a model with its
 * tokenizer, a prefill that keeps a context's cache when the new sequence
 * extends the one it holds, the sample -> show -> feed back token loop, and
 * the speed line. Conventions of src/cli.h: messages go to stderr, one line,
 * prefixed "lantern <command>:". */
#ifndef LT_GENERATE_H
#define LT_GENERATE_H

#include "model.h"
#include "sample.h"
#include "tokenizer.h"

#include <signal.h>
#include <stddef.h>

/* The environment variable naming the default model folder; without it the
 * default is models/demo next to the folder of the executable, i.e.
 * <repo>/build/lantern -> <repo>/models/demo. */
#define LT_DEFAULT_MODEL_ENV "LANTERN_DEFAULT_MODEL"

/* Usage text lines for the flags parsed here. */
#define LT_GEN_MODEL_USAGE                                                                                          \
    "  -m DIR              model folder (default: $" LT_DEFAULT_MODEL_ENV ", else models/demo beside the\n"          \
    "                      folder of the lantern binary)\n"                                                         \
    "  -t N                threads (default 0 = physical cores)\n"
#define LT_GEN_NUMERICS_USAGE                                                                                       \
    "  --numerics MODE     auto (default: reference for bfloat16 models, exact for float32 ones),\n"     \
    "                      reference (the official rounding points) or exact (fp32)\n"
#define LT_GEN_SAMPLE_USAGE                                                                                         \
    "  --temp T            temperature (default: the model's generation_config.json, else 1.0; 0 = greedy)\n"   \
    "  --top-p P           nucleus sampling (default: generation_config.json, else 1.0 = off)\n"                 \
    "  --top-k K           keep the K most likely tokens (default 0 = off)\n"                                    \
    "  --seed S            sampling seed (default: from the clock)\n"

typedef struct {
    const char *cmd;        /* "run", "chat", ...: the prefix of messages */
    const char *dir;        /* -m; NULL until lt_gen_resolve_dir picks the default */
    long threads, ctx;      /* ctx: 0 = the command's default */
    lt_numerics numerics;
    long n_predict, top_k, seed;
    double temp, top_p;
    int has_seed;
    int has_temp, has_top_p; /* given on the command line; else generation_config.json decides */
    char default_dir[4096]; /* backing store of dir when it is the default */
} lt_gen_options;

/* Defaults of every field (n_predict as given). */
void lt_gen_options_init(lt_gen_options *o, const char *cmd, long n_predict);

/* One flag at argv[*i] (its value, if any, is consumed): 1 understood, 0 bad
 * value (message printed), -1 not one of these flags. The model flags are
 * -m, -t, --ctx and --numerics; the sampling flags -n, --temp, --top-p,
 * --top-k and --seed. */
int lt_gen_model_flag(int argc, char **argv, int *i, lt_gen_options *o);
int lt_gen_sample_flag(int argc, char **argv, int *i, lt_gen_options *o);

/* Without -m: the default model folder, which must exist; the error names
 * the path it looked at. */
lt_status lt_gen_resolve_dir(lt_gen_options *o, lt_error *err);

typedef struct {
    lt_model *m;
    lt_tokenizer *tok;
    lt_context *ctx;
    lt_sampler *sampler;
    float *logits;        /* [V] logits of the last evaluated token */
    lt_token_vec seq;     /* the tokens ctx holds, in order */
    int interrupted;      /* the last prefill or generation was stopped by *stop */
    int progress;         /* print prefill progress on stderr (a terminal) */
    /* figures of the last prefill and generation */
    int64_t n_reused, n_prompt, n_gen;
    double t_prompt, t_gen;
} lt_gen;

/* Opens the model and its tokenizer (o->dir must be resolved). */
lt_status lt_gen_open(lt_gen *g, const lt_gen_options *o, lt_error *err);

/* Creates the context (n_ctx tokens), the sampler and the logits buffer. */
lt_status lt_gen_start(lt_gen *g, const lt_gen_options *o, int64_t n_ctx, lt_error *err);

/* Frees whatever is set; g is zeroed. */
void lt_gen_close(lt_gen *g);

/* Makes the context hold exactly ids[0..n). When the tokens it holds are a
 * proper prefix of ids, only the rest is evaluated (n_reused counts the kept
 * ones); otherwise it starts over. Evaluation goes in chunks, and a nonzero
 * *stop (stop may be NULL) between chunks ends it early with LT_OK and
 * interrupted set. On success g->logits are those of ids[n-1]. */
lt_status lt_gen_prefill(lt_gen *g, const int32_t *ids, size_t n, const volatile sig_atomic_t *stop, lt_error *err);

/* Receives the generated text, whole UTF-8 characters at a time. */
typedef void (*lt_gen_emit_fn)(void *ud, const char *text, size_t len);

/* Samples from g->logits, shows and feeds back tokens until EOS, n_max
 * tokens (0: none), the end of the context, or a nonzero *stop (interrupted
 * set). The stopping token is shown but not evaluated (EOS is not shown). */
lt_status lt_gen_generate(lt_gen *g, int64_t n_max, const volatile sig_atomic_t *stop, lt_gen_emit_fn emit, void *ud,
                          lt_error *err);

/* "lantern <cmd>: prompt N tokens (R reused) in ...; generated ..." on stderr. */
void lt_gen_print_stats(const lt_gen *g, const char *cmd);

/* The prompt's ids: one user turn in the model's chat format (with the
 * generation prompt), or the plain text with raw; special tokens are parsed. */
lt_status lt_gen_prompt_ids(const char *dir, lt_tokenizer *tok, const char *prompt, int raw, lt_token_vec *ids,
                            lt_error *err);

#endif

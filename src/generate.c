/* Shared pieces of the commands that run a model (contract in generate.h). */
#include "generate.h"

#include "chat.h"
#include "cli.h"
#include "threads.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PREFILL_CHUNK 256 /* prompt tokens per evaluation between looks at *stop */

void lt_gen_options_init(lt_gen_options *o, const char *cmd, long n_predict) {
    *o = (lt_gen_options){.cmd = cmd, .n_predict = n_predict, .temp = 1.0, .top_p = 1.0,
                          .numerics = LT_NUMERICS_AUTO};
}

static int numerics_flag(int argc, char **argv, int *i, lt_gen_options *o) {
    const char *v = lt_cli_value(o->cmd, argc, argv, i);
    if (!v) return 0;
    if (strcmp(v, "exact") && strcmp(v, "reference") && strcmp(v, "auto")) {
        fprintf(stderr, "lantern %s: --numerics expects exact, reference or auto, got '%s'\n", o->cmd, v);
        return 0;
    }
    o->numerics = !strcmp(v, "exact") ? LT_NUMERICS_EXACT : !strcmp(v, "auto") ? LT_NUMERICS_AUTO : LT_NUMERICS_REFERENCE;
    return 1;
}

int lt_gen_model_flag(int argc, char **argv, int *i, lt_gen_options *o) {
    const char *a = argv[*i], *v;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) return (o->dir = lt_cli_value(o->cmd, argc, argv, i)) != NULL;
    if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
        return (v = lt_cli_value(o->cmd, argc, argv, i)) && lt_cli_int(a, v, 0, LT_MAX_THREADS, &o->threads);
    if (!strcmp(a, "--ctx")) return (v = lt_cli_value(o->cmd, argc, argv, i)) && lt_cli_int(a, v, 1, INT32_MAX, &o->ctx);
    if (!strcmp(a, "--numerics")) return numerics_flag(argc, argv, i, o);
    return -1;
}

int lt_gen_sample_flag(int argc, char **argv, int *i, lt_gen_options *o) {
    const char *a = argv[*i], *v;
    if (!strcmp(a, "-n")) return (v = lt_cli_value(o->cmd, argc, argv, i)) && lt_cli_int(a, v, 0, INT32_MAX, &o->n_predict);
    if (!strcmp(a, "--top-k")) return (v = lt_cli_value(o->cmd, argc, argv, i)) && lt_cli_int(a, v, 0, INT32_MAX, &o->top_k);
    if (!strcmp(a, "--seed"))
        return (o->has_seed = 1) && (v = lt_cli_value(o->cmd, argc, argv, i)) &&
               lt_cli_int(a, v, 0, (1L << 53) - 1, &o->seed);
    if (!strcmp(a, "--temp"))
        return (o->has_temp = 1) && (v = lt_cli_value(o->cmd, argc, argv, i)) && lt_cli_double(a, v, 0, 100, &o->temp);
    if (!strcmp(a, "--top-p"))
        return (o->has_top_p = 1) && (v = lt_cli_value(o->cmd, argc, argv, i)) && lt_cli_double(a, v, 0, 1, &o->top_p);
    return -1;
}

/* models/demo beside the folder of the executable: <x>/build/lantern -> <x>/models/demo */
static lt_status beside_binary(char *buf, size_t cap, lt_error *err) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return lt_fail(err, LT_ERR_IO, "no -m DIR given, and the path of the lantern binary (/proc/self/exe) is "
                       "unreadable: %s", strerror(errno));
    exe[n] = 0;
    for (int up = 0; up < 2; up++) { /* drop the file name, then its folder */
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
    }
    if (snprintf(buf, cap, "%s/models/demo", exe) >= (int)cap)
        return lt_fail(err, LT_ERR_ARG, "the default model path beside %s is too long", exe);
    return LT_OK;
}

lt_status lt_gen_resolve_dir(lt_gen_options *o, lt_error *err) {
    if (o->dir) return LT_OK;
    const char *env = getenv(LT_DEFAULT_MODEL_ENV);
    if (env && *env) {
        if (snprintf(o->default_dir, sizeof o->default_dir, "%s", env) >= (int)sizeof o->default_dir)
            return lt_fail(err, LT_ERR_ARG, "$%s is too long", LT_DEFAULT_MODEL_ENV);
    } else {
        lt_status st = beside_binary(o->default_dir, sizeof o->default_dir, err);
        if (st != LT_OK) return st;
    }
    if (!lt_file_exists(o->default_dir))
        return lt_fail(err, LT_ERR_IO, "no -m DIR given and the default model folder %s does not exist (%s)",
                       o->default_dir, env && *env ? "named by $" LT_DEFAULT_MODEL_ENV "; pass -m DIR"
                                                   : "pass -m DIR or set $" LT_DEFAULT_MODEL_ENV);
    o->dir = o->default_dir;
    return LT_OK;
}

lt_status lt_gen_open(lt_gen *g, const lt_gen_options *o, lt_error *err) {
    /* progress (shards mapped, prefill) only where a person watches stderr */
    lt_model_params mp = {.numerics = o->numerics, .n_threads = (int)o->threads, .verbose = isatty(STDERR_FILENO)};
    g->progress = mp.verbose;
    lt_status st = lt_model_open(&g->m, o->dir, &mp, err);
    return st == LT_OK ? lt_tokenizer_load(&g->tok, o->dir, err) : st;
}

/* The release's sampling defaults (generation_config.json: temperature,
 * top_p, do_sample) for whatever the command line left unset. A missing or
 * unreadable file keeps the built-in defaults: it is optional in a release. */
static void generation_defaults(const lt_gen_options *o, lt_sample_params *sp) {
    char path[4096];
    if (o->has_temp && o->has_top_p) return;
    if (lt_path_join(path, sizeof path, o->dir, "generation_config.json", NULL) != LT_OK) return;
    json_t *root = json_load_file(path, 0, NULL);
    if (!json_is_object(root)) { json_decref(root); return; }
    json_t *t = json_object_get(root, "temperature"), *p = json_object_get(root, "top_p");
    json_t *sample = json_object_get(root, "do_sample");
    if (!o->has_temp && json_is_number(t)) sp->temperature = (float)json_number_value(t);
    if (!o->has_temp && json_is_false(sample)) sp->temperature = 0.0f;
    if (!o->has_top_p && json_is_number(p)) sp->top_p = (float)json_number_value(p);
    json_decref(root);
}

lt_status lt_gen_start(lt_gen *g, const lt_gen_options *o, int64_t n_ctx, lt_error *err) {
    lt_sample_params sp = {.temperature = (float)o->temp, .top_p = (float)o->top_p, .top_k = (int)o->top_k,
                           .seed = o->has_seed ? (uint64_t)o->seed : (uint64_t)time(NULL) ^ (uint64_t)getpid()};
    generation_defaults(o, &sp);
    int32_t V = lt_model_vocab_size(g->m);
    lt_status st = lt_context_create(&g->ctx, g->m, n_ctx, err);
    if (st == LT_OK) st = lt_sampler_create(&g->sampler, &sp, V, err);
    if (st == LT_OK && !(g->logits = lt_calloc((size_t)V, sizeof *g->logits, "logits", err))) st = LT_ERR_NOMEM;
    return st;
}

void lt_gen_close(lt_gen *g) {
    free(g->logits);
    lt_token_vec_free(&g->seq);
    lt_sampler_free(g->sampler);
    lt_context_free(g->ctx);
    lt_tokenizer_free(g->tok);
    lt_model_close(g->m);
    *g = (lt_gen){0};
}

/* the context holds a proper prefix of ids */
static int extends(const lt_token_vec *seq, const int32_t *ids, size_t n) {
    return seq->n > 0 && seq->n < n && !memcmp(seq->ids, ids, seq->n * sizeof *ids);
}

lt_status lt_gen_prefill(lt_gen *g, const int32_t *ids, size_t n, const volatile sig_atomic_t *stop, lt_error *err) {
    if (n == 0) return lt_fail(err, LT_ERR_ARG, "the prompt has no tokens");
    if ((int64_t)n > g->ctx->n_ctx)
        return lt_fail(err, LT_ERR_ARG, "the prompt (%zu tokens) does not fit the context (--ctx %lld)", n,
                       (long long)g->ctx->n_ctx);
    g->interrupted = 0;
    g->n_reused = extends(&g->seq, ids, n) ? (int64_t)g->seq.n : 0;
    if (!g->n_reused) {
        lt_context_reset(g->ctx);
        g->seq.n = 0;
    }
    lt_status st = LT_OK;
    double t0 = lt_time_s();
    while (st == LT_OK && g->seq.n < n) {
        if (stop && *stop) {
            g->interrupted = 1;
            break;
        }
        size_t at = g->seq.n, k = LT_MIN(n - at, (size_t)PREFILL_CHUNK);
        st = lt_context_eval(g->ctx, ids + at, (int64_t)k, g->logits, err);
        for (size_t j = 0; st == LT_OK && j < k; j++) {
            lt_sampler_accept(g->sampler, ids[at + j]);
            st = lt_token_vec_push(&g->seq, ids[at + j], err);
        }
        if (g->progress && n - (size_t)g->n_reused > PREFILL_CHUNK)
            fprintf(stderr, "\rprefill %zu/%zu tokens", g->seq.n, n);
    }
    if (g->progress && n - (size_t)g->n_reused > PREFILL_CHUNK) fputc('\n', stderr);
    g->t_prompt = lt_time_s() - t0;
    g->n_prompt = (int64_t)g->seq.n - g->n_reused;
    if (st != LT_OK) { /* the cache and seq may disagree now: forget both */
        lt_context_reset(g->ctx);
        g->seq.n = 0;
    }
    return st;
}

lt_status lt_gen_generate(lt_gen *g, int64_t n_max, const volatile sig_atomic_t *stop, lt_gen_emit_fn emit, void *ud,
                          lt_error *err) {
    n_max = LT_MIN_I64(n_max, g->ctx->n_ctx - lt_context_pos(g->ctx) + 1); /* the last token is not evaluated */
    lt_stop sc;
    int32_t eos = lt_model_eos(g->m);
    lt_status st = lt_stop_init(&sc, NULL, 0, &eos, 1, n_max, err);
    lt_detok d;
    lt_detok_init(&d);
    char out[sizeof d.out + LT_STOP_MAX_LEN];
    lt_stop_reason why = n_max > 0 ? LT_STOP_NONE : LT_STOP_LENGTH;
    g->n_gen = 0;
    g->interrupted = 0;
    double t0 = lt_time_s();
    while (st == LT_OK && why == LT_STOP_NONE) {
        if (stop && *stop) {
            g->interrupted = 1;
            break;
        }
        int32_t id = lt_sampler_sample(g->sampler, g->logits);
        lt_sampler_accept(g->sampler, id);
        size_t len, n_out;
        const char *text = lt_detok_push(&d, g->tok, id, 0, &len, err);
        if (!text) {
            st = LT_ERR_ARG;
            break;
        }
        why = lt_stop_token(&sc, id, text, len, out, &n_out);
        emit(ud, out, n_out);
        g->n_gen += why != LT_STOP_TOKEN;
        if (why == LT_STOP_NONE) st = lt_context_eval(g->ctx, &id, 1, g->logits, err);
        if (why == LT_STOP_NONE && st == LT_OK) st = lt_token_vec_push(&g->seq, id, err);
    }
    g->t_gen = lt_time_s() - t0;
    size_t n_tail = lt_stop_flush(&sc, out), n_pend;
    emit(ud, out, n_tail);
    const char *pend = lt_detok_flush(&d, &n_pend);
    emit(ud, pend, n_pend);
    return st;
}

static double per_s(int64_t n, double t) { return (double)n / (t > 0 ? t : 1e-9); }

void lt_gen_print_stats(const lt_gen *g, const char *cmd) {
    char reused[64] = "";
    if (g->n_reused) snprintf(reused, sizeof reused, " (after %lld reused from the cache)", (long long)g->n_reused);
    fprintf(stderr, "lantern %s: prompt %lld tokens%s in %.3f s (%.1f t/s); generated %lld tokens in %.3f s "
            "(%.1f t/s, %.2f ms/token); KV cache %.1f bytes/token\n",
            cmd, (long long)g->n_prompt, reused, g->t_prompt, per_s(g->n_prompt, g->t_prompt), (long long)g->n_gen,
            g->t_gen, per_s(g->n_gen, g->t_gen), g->n_gen ? 1e3 * g->t_gen / (double)g->n_gen : 0.0,
            lt_model_kv_bytes_per_token(g->m));
}

lt_status lt_gen_prompt_ids(const char *dir, lt_tokenizer *tok, const char *prompt, int raw, lt_token_vec *ids,
                            lt_error *err) {
    if (raw) return lt_tokenizer_encode(tok, prompt, strlen(prompt), 1, ids, err);
    lt_chat_options co = {0};
    lt_status st = lt_chat_format_detect(dir, tok, &co.format, err);
    if (st != LT_OK) return st;
    json_t *msgs = json_pack("[{s:s, s:s}]", "role", "user", "content", prompt);
    if (!msgs) return lt_fail(err, LT_ERR_NOMEM, "out of memory building the chat message");
    char *text = NULL;
    size_t len = 0;
    st = lt_chat_encode(msgs, NULL, &co, &text, &len, err);
    json_decref(msgs);
    if (st == LT_OK) st = lt_tokenizer_encode(tok, text, len, 1, ids, err);
    free(text);
    return st;
}

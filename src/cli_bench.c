/* `lantern bench`: how fast this machine runs V4, against its own limits.
 *
 * --synthetic builds layers of a release at the real dimensions in memory
 * (bench_model.c) and measures, in one run and at one thread count:
 *   machine   read / triad bandwidth and the kernel table's FMA peak;
 *   decode    weight bytes per token and tokens/s of the products (the
 *             fraction of the read bandwidth they reach);
 *   prefill   tokens/s and GFLOP/s at each prompt length (fraction of peak;
 *             the faster of LT_BENCH_PREFILL_RUNS runs, the slowest beside it);
 *   context   time per decoded token with attention over caches of each
 *             context length (the O(context) index scan included).
 * Each fraction is taken against the best pass of its limit among that
 * section's own work (a read pass before every decoded token, an FMA pass
 * before and after each length's prefills), which on a shared machine sees
 * what the work saw; the machine line gives the best passes of the run.
 * -m DIR times prefill and decode of a real model through lantern.h.
 * Output: a table, or one JSON object with --json. Conventions of cli.h. */
#include "bench.h"
#include "cli.h"
#include "engram.h"
#include "kernels.h"
#include "threads.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST 8

static const char bench_usage[] =
    "usage: lantern bench --synthetic ARCH [options]    synthetic layers at real dimensions\n"
    "       lantern bench -m DIR [options]              a real model folder\n"
    "       lantern bench --engram FILE [--rows N]      V4.1 Engram lookups: table resident vs\n"
    "                                                   evicted from the page cache, +- prefetch\n"
    "  --synthetic ARCH    v4-flash, v4-pro or v41-flash\n"
    "  --layers N          synthetic layers (real layers 2, 3, ...; default 2)\n"
    "  --experts N         routed experts materialised per layer (default: all that fit in\n"
    "                      half the available memory)\n"
    "  --head              add the BF16 output head to every decoded token\n"
    "  --tokens N          decoded tokens measured per figure; the fastest is reported (noise\n"
    "                      on a shared machine only adds time), the median beside it (default 32)\n"
    "  --prompts L,L,...   prefill lengths (default 128,512,2048; 0 skips prefill)\n"
    "  --contexts C,C,...  context lengths of the sweep (default 4096,65536,262144,1048576;\n"
    "                      0 skips it)\n"
    "  -t N                threads (default 0 = physical cores)\n"
    "  --kernel NAME       force a kernel table: ref, avx2, avx512, neon (default: best)\n"
    "  --json              print one JSON object instead of the table\n"
    "  -m DIR              real model: prefill of the first prompt length, then decode\n"
    "  --engram FILE       synthetic Engram table of real row size (256 FP8 + 8 scales), written to\n"
    "                      FILE once and reused; --rows N rows (default 12000000, ~3.2 GB)\n"
    "Exit status: 0 ok, 1 runtime failure, 2 usage error.\n";

typedef struct {
    const char *arch, *dir, *kernel, *engram;
    long layers, experts, tokens, threads, rows;
    long prompts[MAX_LIST], contexts[MAX_LIST];
    int n_prompts, n_contexts, head, json;
} bench_options;

/* "a,b,c" into out (0 entries: the list "0"); 0 after a message */
static int list_value(const char *flag, const char *val, long hi, long *out, int *n) {
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", val);
    *n = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long v;
        if (*n == MAX_LIST) {
            fprintf(stderr, "lantern bench: %s takes at most %d values\n", flag, MAX_LIST);
            return 0;
        }
        if (!lt_cli_int(flag, tok, 0, hi, &v)) return 0;
        if (v) out[(*n)++] = v;
    }
    return 1;
}

/* 0 ok, 1 help printed, 2 usage error */
static int parse(int argc, char **argv, bench_options *o) {
    *o = (bench_options){.layers = 2, .tokens = 32, .rows = 12000000, .prompts = {128, 512, 2048}, .n_prompts = 3,
                         .contexts = {4096, 65536, 262144, 1048576}, .n_contexts = 4};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(bench_usage, stdout);
            return 1;
        }
        if (!strcmp(a, "--json")) { o->json = 1; continue; }
        if (!strcmp(a, "--head")) { o->head = 1; continue; }
        if (i + 1 >= argc) {
            fprintf(stderr, "lantern bench: unknown flag or missing value: %s\n%s", a, bench_usage);
            return 2;
        }
        const char *v = argv[++i];
        int ok = 1;
        if (!strcmp(a, "--synthetic")) o->arch = v;
        else if (!strcmp(a, "-m")) o->dir = v;
        else if (!strcmp(a, "--engram")) o->engram = v;
        else if (!strcmp(a, "--rows")) ok = lt_cli_int(a, v, 1000, 2000000000L, &o->rows);
        else if (!strcmp(a, "--kernel")) o->kernel = v;
        else if (!strcmp(a, "--layers")) ok = lt_cli_int(a, v, 1, 200, &o->layers);
        else if (!strcmp(a, "--experts")) ok = lt_cli_int(a, v, 0, 1 << 16, &o->experts);
        else if (!strcmp(a, "--tokens")) ok = lt_cli_int(a, v, 1, 256, &o->tokens);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) ok = lt_cli_int(a, v, 0, LT_MAX_THREADS, &o->threads);
        else if (!strcmp(a, "--prompts")) ok = list_value(a, v, 1 << 16, o->prompts, &o->n_prompts);
        else if (!strcmp(a, "--contexts")) ok = list_value(a, v, 1L << 24, o->contexts, &o->n_contexts);
        else {
            fprintf(stderr, "lantern bench: unknown flag %s\n%s", a, bench_usage);
            return 2;
        }
        if (!ok) return 2;
    }
    if (!!o->arch + !!o->dir + !!o->engram != 1) {
        fprintf(stderr, "lantern bench: give exactly one of --synthetic ARCH, -m DIR and --engram FILE\n%s", bench_usage);
        return 2;
    }
    if (o->arch && !lt_bench_arch_find(o->arch)) {
        fprintf(stderr, "lantern bench: unknown --synthetic '%s' (one of %s)\n", o->arch, lt_bench_arch_names);
        return 2;
    }
    return 0;
}

static void cpu_name(char *out, size_t cap) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(out, cap, "unknown CPU");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon || strncmp(line, "model name", 10)) continue;
        snprintf(out, cap, "%s", colon + 2);
        out[strcspn(out, "\n")] = 0;
        break;
    }
    if (f) fclose(f);
}

/* ---- synthetic ----------------------------------------------------------- */

typedef struct {
    lt_bench_machine mach;  /* the best of every pass in the run */
    double decode_s, decode_median_s;
    double decode_read_gbs;        /* the best read pass among the decoded tokens */
    double prefill_fma[MAX_LIST];  /* the best FMA pass around each length's prefills */
    uint64_t decode_bytes, kv_per_token, model_bytes, buffer_bytes;
    int experts;
    lt_bench_prefill_result prefill[MAX_LIST];
    lt_bench_ctx_result ctx[MAX_LIST];
} bench_results;

static const char *kind_name(const lt_bench_arch *a, int l) {
    lt_bench_layer_kind k = lt_bench_layer(a, l);
    if (a->v41) return k.ratio == 0 ? "SWA" : k.ratio == 2 ? "CSA2" : "CED";
    return k.ratio == 0 ? "SWA" : k.ratio == 4 ? "CSA" : "HCA";
}

static void print_table(const bench_options *o, const lt_bench_arch *a, const bench_results *r, const char *cpu) {
    printf("lantern bench: synthetic %s, real layers 2..%ld (", a->name, 1 + o->layers);
    for (long l = 0; l < o->layers && l < 6; l++) printf("%s%s", l ? " " : "", kind_name(a, 2 + (int)l));
    printf("%s), %d of %d routed experts per layer, %.2f GiB of weights\n", o->layers > 6 ? " ..." : "", r->experts,
           a->n_experts, (double)r->model_bytes / (1 << 30));
    printf("machine   %s; kernel %s, %d threads\n", cpu, lt_kern()->name, lt_threads_count());
    printf("          read %.1f GB/s, triad %.1f GB/s (%llu MiB buffer), FMA peak %.1f GFLOP/s (best passes of the run)\n",
           r->mach.read_gbs, r->mach.triad_gbs, (unsigned long long)(r->buffer_bytes >> 20), r->mach.fma_gflops);
    double gbs = (double)r->decode_bytes / r->decode_s * 1e-9;
    printf("decode    %.1f MB of weights per token, %.2f ms/token (median %.2f), %.2f tokens/s, %.1f GB/s = %.2f of "
           "read bandwidth (%.1f GB/s among these tokens)\n", (double)r->decode_bytes * 1e-6, r->decode_s * 1e3,
           r->decode_median_s * 1e3, 1.0 / r->decode_s, gbs, gbs / r->decode_read_gbs, r->decode_read_gbs);
    for (int i = 0; i < o->n_prompts; i++) {
        const lt_bench_prefill_result *p = &r->prefill[i];
        double gf = p->flops / p->seconds * 1e-9;
        printf("prefill   %5ld tokens: %8.1f tokens/s, %7.1f GFLOP/s = %.2f of FMA peak (%.1f around these runs; %.2f s, "
               "slowest of %d runs %.2f s)\n", o->prompts[i], (double)o->prompts[i] / p->seconds, gf,
               gf / r->prefill_fma[i], r->prefill_fma[i], p->seconds, LT_BENCH_PREFILL_RUNS, p->slowest_seconds);
    }
    for (int i = 0; i < o->n_contexts; i++) {
        const lt_bench_ctx_result *c = &r->ctx[i];
        printf("context   %8ld: %7.2f ms/token (median %.2f; attention %.2f ms, index scan %.2f ms), cache read "
               "%.1f MB/token", o->contexts[i], c->seconds * 1e3, c->median_seconds * 1e3, c->attn_seconds * 1e3,
               c->index_seconds * 1e3, (double)c->kv_bytes_read * 1e-6);
        if (i) printf(", %.2fx of %ld", c->seconds / r->ctx[0].seconds, o->contexts[0]);
        printf("\n");
    }
    printf("kv cache  %.2f KB stored per context token (all %d layers, as REFERENCE numerics store them: FP8/FP4 rows, FP4 index keys)\n",
           (double)r->kv_per_token * 1e-3, a->n_layers);
}

/* "key": {"L": v, ...} from a list of lengths and a value per length */
static void json_map(const char *key, const long *at, int n, const double *v, int last) {
    printf("  \"%s\": {", key);
    for (int i = 0; i < n; i++) printf("%s\"%ld\": %.6g", i ? ", " : "", at[i], v[i]);
    printf("}%s\n", last ? "" : ",");
}

static void print_json(const bench_options *o, const lt_bench_arch *a, const bench_results *r, const char *cpu) {
    double pf_tps[MAX_LIST], pf_gf[MAX_LIST], pf_frac[MAX_LIST], ctx_ms[MAX_LIST], ctx_med[MAX_LIST];
    double att_ms[MAX_LIST], idx_ms[MAX_LIST], pf_slow[MAX_LIST], pf_fma[MAX_LIST];
    for (int i = 0; i < o->n_prompts; i++) {
        pf_slow[i] = r->prefill[i].slowest_seconds;
        pf_tps[i] = (double)o->prompts[i] / r->prefill[i].seconds;
        pf_gf[i] = r->prefill[i].flops / r->prefill[i].seconds * 1e-9;
        pf_fma[i] = r->prefill_fma[i];
        pf_frac[i] = pf_gf[i] / pf_fma[i];
    }
    for (int i = 0; i < o->n_contexts; i++) {
        ctx_ms[i] = r->ctx[i].seconds * 1e3;
        ctx_med[i] = r->ctx[i].median_seconds * 1e3;
        att_ms[i] = r->ctx[i].attn_seconds * 1e3;
        idx_ms[i] = r->ctx[i].index_seconds * 1e3;
    }
    double gbs = (double)r->decode_bytes / r->decode_s * 1e-9;
    printf("{\n  \"arch\": \"%s\",\n  \"layers\": %ld,\n  \"experts_per_layer\": %d,\n  \"cpu\": \"%s\",\n", a->name,
           o->layers, r->experts, cpu);
    printf("  \"kernel\": \"%s\",\n  \"threads\": %d,\n", lt_kern()->name, lt_threads_count());
    printf("  \"measured_read_gbs\": %.6g,\n  \"measured_triad_gbs\": %.6g,\n  \"fma_peak_gflops\": %.6g,\n",
           r->mach.read_gbs, r->mach.triad_gbs, r->mach.fma_gflops);
    printf("  \"weight_bytes_per_token\": %llu,\n  \"decode_ms_per_token\": %.6g,\n  \"decode_ms_per_token_median\": %.6g,\n"
           "  \"decode_tokens_per_s\": %.6g,\n",
           (unsigned long long)r->decode_bytes, r->decode_s * 1e3, r->decode_median_s * 1e3, 1.0 / r->decode_s);
    printf("  \"effective_gbs\": %.6g,\n  \"decode_read_gbs\": %.6g,\n  \"bandwidth_fraction\": %.6g,\n", gbs,
           r->decode_read_gbs, gbs / r->decode_read_gbs);
    json_map("prefill_tokens_per_s", o->prompts, o->n_prompts, pf_tps, 0);
    json_map("prefill_gflops", o->prompts, o->n_prompts, pf_gf, 0);
    json_map("prefill_fma_peak_gflops", o->prompts, o->n_prompts, pf_fma, 0);
    json_map("fma_fraction", o->prompts, o->n_prompts, pf_frac, 0);
    json_map("prefill_slowest_run_s", o->prompts, o->n_prompts, pf_slow, 0);
    printf("  \"kv_bytes_per_token\": %llu,\n", (unsigned long long)r->kv_per_token);
    json_map("decode_ms_per_token_by_context", o->contexts, o->n_contexts, ctx_ms, 0);
    json_map("decode_ms_per_token_by_context_median", o->contexts, o->n_contexts, ctx_med, 0);
    json_map("attention_ms_by_context", o->contexts, o->n_contexts, att_ms, 0);
    json_map("index_scan_ms_by_context", o->contexts, o->n_contexts, idx_ms, 1);
    printf("}\n");
}

static int run_synthetic(const bench_options *o) {
    const lt_bench_arch *a = lt_bench_arch_find(o->arch);
    bench_results r = {0};
    lt_error err;
    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    lt_bench_probe *p = NULL;
    lt_bench_model *m = NULL;
    lt_status st = lt_bench_probe_create(&p, &err);
    if (st == LT_OK) {
        for (int i = 0; i < 3; i++) { /* a first reading; every phase below adds passes */
            r.mach.read_gbs = LT_MAX(r.mach.read_gbs, lt_bench_probe_read(p));
            r.mach.triad_gbs = LT_MAX(r.mach.triad_gbs, lt_bench_probe_triad(p));
            r.mach.fma_gflops = LT_MAX(r.mach.fma_gflops, lt_bench_probe_fma(p));
        }
        r.buffer_bytes = lt_bench_probe_bytes(p);
        st = lt_bench_model_create(&m, a, (int)o->layers, (int)o->experts, o->head, !o->json, &err);
    }
    if (st == LT_OK) {
        r.experts = lt_bench_model_experts(m);
        r.model_bytes = lt_bench_model_bytes(m);
        r.decode_bytes = lt_bench_decode_bytes(m);
        r.kv_per_token = lt_bench_kv_bytes_per_token(a);
        lt_bench_machine dm = {0};
        lt_bench_decode(m, (int)o->tokens, p, &dm, &r.decode_s, &r.decode_median_s);
        r.decode_read_gbs = dm.read_gbs;
        r.mach.read_gbs = LT_MAX(r.mach.read_gbs, dm.read_gbs);
    }
    for (int i = 0; i < o->n_prompts && st == LT_OK; i++) {
        lt_bench_machine pm = {0};
        st = lt_bench_prefill(m, o->prompts[i], p, &pm, &r.prefill[i], &err);
        r.prefill_fma[i] = pm.fma_gflops;
        r.mach.fma_gflops = LT_MAX(r.mach.fma_gflops, pm.fma_gflops);
    }
    int64_t ctx[MAX_LIST];
    for (int i = 0; i < o->n_contexts; i++) ctx[i] = o->contexts[i];
    if (st == LT_OK && o->n_contexts)
        st = lt_bench_decode_ctx(m, ctx, o->n_contexts, (int)o->tokens, p, &r.mach, r.ctx, &err);
    lt_bench_model_free(m);
    lt_bench_probe_free(p);
    if (st != LT_OK) {
        fprintf(stderr, "lantern bench: %s: %s\n", lt_status_name(st), err.msg);
        return 1;
    }
    if (o->json) print_json(o, a, &r, cpu);
    else print_table(o, a, &r, cpu);
    return 0;
}

/* ---- real model ------------------------------------------------------- */

static int run_model(const bench_options *o) {
    lt_error err;
    lt_model *m = NULL;
    lt_context *c = NULL;
    lt_model_params mp = {.numerics = LT_NUMERICS_AUTO, .n_threads = (int)o->threads};
    int64_t prompt = o->n_prompts ? o->prompts[0] : 1, n_tok = prompt + o->tokens;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n_tok);
    lt_status st = tok ? lt_model_open(&m, o->dir, &mp, &err) : lt_fail(&err, LT_ERR_NOMEM, "out of memory");
    if (st == LT_OK) st = lt_context_create(&c, m, n_tok, &err);
    double t_prefill = 0.0, t_decode = 0.0;
    if (st == LT_OK) {
        uint64_t s = 12345;
        for (int64_t i = 0; i < n_tok; i++) tok[i] = (int32_t)((s = s * 6364136223846793005ull + 1) >> 33) % lt_model_vocab_size(m);
        double t0 = lt_time_s();
        st = lt_context_eval(c, tok, prompt, NULL, &err);
        t_prefill = lt_time_s() - t0;
        t0 = lt_time_s();
        for (int64_t i = prompt; i < n_tok && st == LT_OK; i++) st = lt_context_eval(c, tok + i, 1, NULL, &err);
        t_decode = lt_time_s() - t0;
    }
    lt_context_free(c);
    lt_model_close(m);
    free(tok);
    if (st != LT_OK) {
        fprintf(stderr, "lantern bench: %s: %s\n", lt_status_name(st), err.msg);
        return 1;
    }
    double pf = (double)prompt / t_prefill, dec = (double)o->tokens / t_decode;
    if (o->json)
        printf("{\n  \"model\": \"%s\",\n  \"kernel\": \"%s\",\n  \"threads\": %d,\n  \"prefill_tokens\": %lld,\n"
               "  \"prefill_tokens_per_s\": %.6g,\n  \"decode_tokens\": %ld,\n  \"decode_tokens_per_s\": %.6g\n}\n",
               o->dir, lt_kern()->name, lt_threads_count(), (long long)prompt, pf, o->tokens, dec);
    else
        printf("lantern bench: %s; kernel %s, %d threads\nprefill   %lld tokens: %.2f tokens/s\n"
               "decode    %ld tokens: %.2f tokens/s\n",
               o->dir, lt_kern()->name, lt_threads_count(), (long long)prompt, pf, o->tokens, dec);
    return 0;
}

int lt_cli_bench(int argc, char **argv) {
    bench_options o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : 2;
    if (o.kernel && !lt_kernels_init(o.kernel)) {
        fprintf(stderr, "lantern bench: kernel table '%s' is unknown or unsupported on this CPU (available:", o.kernel);
        for (const char *const *n = lt_kernels_available(); *n; n++) fprintf(stderr, " %s", *n);
        fprintf(stderr, ")\n");
        return 2;
    }
    lt_error err;
    if (lt_threads_set((int)o.threads, &err) != LT_OK) {
        fprintf(stderr, "lantern bench: %s\n", err.msg);
        return 2;
    }
    if (o.engram) {
        if (lt_engram_bench(o.engram, o.rows, 300, 5.0, stdout, &err) == 0) return 0;
        fprintf(stderr, "lantern bench: %s\n", err.msg);
        return 1;
    }
    return o.arch ? run_synthetic(&o) : run_model(&o);
}

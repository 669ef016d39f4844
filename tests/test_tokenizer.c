/* Tokenizer tests: ids identical to HF `tokenizers` on the committed corpus
 * (tests/data/tokenizer/, made by tools/oracle/make_tokenizer_corpus.py) for
 * the real V4 and V4.1 tokenizer.json, round trips, streaming decode,
 * invalid UTF-8, added-token flags, load errors and encode speed. */
#include "cli.h"
#include "test.h"
#include "tokenizer.h"
#include "util.h"

#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define V4_DIR "../shared/assets/deepseek-v4/tokenizer-v4"
#define V41_DIR "../shared/assets/deepseek-v4/tokenizer-v41"
#define DATA "tests/data/tokenizer/"

/* The real tokenizers take ~1 s each to load; load each once per run. */
static lt_tokenizer *g_tok[2];

static void free_tokenizers(void) {
    lt_tokenizer_free(g_tok[0]);
    lt_tokenizer_free(g_tok[1]);
}

static lt_tokenizer *real_tokenizer(int v41) {
    if (!g_tok[v41]) {
        lt_error err;
        if (lt_tokenizer_load(&g_tok[v41], v41 ? V41_DIR : V4_DIR, &err) != LT_OK) {
            lt_test_fail(__FILE__, __LINE__, "load: %s", err.msg);
            return NULL;
        }
        if (!g_tok[!v41]) atexit(free_tokenizers);
    }
    return g_tok[v41];
}

/* Calls fn on every JSON line of a file; returns the number of lines. */
static int for_each_line(const char *path, void (*fn)(json_t *row, void *ctx), void *ctx) {
    char *buf;
    size_t len;
    lt_error err;
    if (lt_read_file(path, &buf, &len, &err) != LT_OK) {
        lt_test_fail(__FILE__, __LINE__, "%s", err.msg);
        return 0;
    }
    int n = 0;
    for (char *line = buf, *nl; line < buf + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(buf + len - line));
        if (!nl) nl = buf + len;
        json_error_t je;
        json_t *row = json_loadb(line, (size_t)(nl - line), JSON_ALLOW_NUL, &je);
        CHECKF(row, "%s line %d: %s", path, n + 1, je.text);
        if (row) fn(row, ctx), n++;
        json_decref(row);
    }
    free(buf);
    return n;
}

static int ids_equal(const lt_token_vec *v, json_t *want) {
    if (v->n != json_array_size(want)) return 0;
    for (size_t i = 0; i < v->n; i++)
        if (v->ids[i] != json_integer_value(json_array_get(want, i))) return 0;
    return 1;
}

static void check_encode(lt_tokenizer *t, const char *s, size_t n, json_t *want, const char *what) {
    lt_token_vec v = {0};
    lt_error err;
    lt_status st = lt_tokenizer_encode(t, s, n, 1, &v, &err);
    CHECKF(st == LT_OK, "%s: %s", what, err.msg);
    CHECKF(ids_equal(&v, want), "%s: ids differ for %.60s (%zu ids, want %zu)", what, s, v.n, json_array_size(want));
    lt_token_vec_free(&v);
}

typedef struct { int v41, rows, failures; } corpus_ctx;

static void corpus_row(json_t *row, void *p) {
    corpus_ctx *c = p;
    json_t *text = json_object_get(row, "text"), *want = json_object_get(row, c->v41 ? "v41" : "v4");
    if (!want) want = json_object_get(row, "v4");
    const char *s = json_string_value(text);
    size_t n = json_string_length(text);
    lt_tokenizer *t = real_tokenizer(c->v41);
    lt_token_vec v = {0};
    lt_error err;
    char *back = NULL;
    size_t back_len = 0;
    c->rows++;
    if (lt_tokenizer_encode(t, s, n, 1, &v, &err) != LT_OK || !ids_equal(&v, want) ||
        lt_tokenizer_decode(t, v.ids, v.n, 0, &back, &back_len, &err) != LT_OK || back_len != n ||
        memcmp(back, s, n)) {
        if (c->failures++ < 5) lt_test_fail(__FILE__, __LINE__, "corpus row %d differs: %.80s", c->rows, s);
    }
    free(back);
    lt_token_vec_free(&v);
}

static void run_corpus(int v41) {
    if (!real_tokenizer(v41)) return;
    corpus_ctx c = {v41, 0, 0};
    int n = for_each_line(DATA "corpus.jsonl", corpus_row, &c);
    CHECKF(n >= 2000, "corpus has %d strings", n);
    CHECKF(c.failures == 0, "%d of %d corpus strings differ", c.failures, n);
}

LT_TEST(tokenizer, corpus_v4_ids_and_round_trip) { run_corpus(0); }
LT_TEST(tokenizer, corpus_v41_ids_and_round_trip) { run_corpus(1); }

/* Two threads share one tokenizer (its word cache is locked): each encodes
 * the corpus text and must get the ids of a single-threaded run. */
typedef struct { lt_tokenizer *t; const char *text; size_t len; lt_token_vec ids; } thread_job;

static void *encode_job(void *p) {
    thread_job *j = p;
    lt_tokenizer_encode(j->t, j->text, j->len, 1, &j->ids, NULL);
    return NULL;
}

LT_TEST(tokenizer, shared_between_threads) {
    lt_tokenizer *t;
    char *text;
    size_t len;
    if (lt_tokenizer_load(&t, V4_DIR, NULL) != LT_OK || lt_read_file(DATA "corpus.jsonl", &text, &len, NULL)) return;
    thread_job jobs[3] = {{t, text, len, {0}}, {t, text, len, {0}}, {t, text, len, {0}}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, encode_job, &jobs[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    encode_job(&jobs[2]);
    for (int i = 0; i < 2; i++)
        CHECK(jobs[i].ids.n == jobs[2].ids.n && !memcmp(jobs[i].ids.ids, jobs[2].ids.ids, jobs[2].ids.n * sizeof(int32_t)));
    for (int i = 0; i < 3; i++) lt_token_vec_free(&jobs[i].ids);
    free(text);
    lt_tokenizer_free(t);
}

LT_TEST(tokenizer, published_golden_ids) {
    lt_tokenizer *t = real_tokenizer(0);
    if (!t) return;
    json_t *a = json_loads("[19923, 3, 223, 5464, 5008, 1175, 19, 940, 223, 19, 438, 223, 20, 6113, 257, 76589, 131, "
                           "100, 76032, 1628, 76589, 131, 108, 76589, 131, 98]", 0, NULL);
    json_t *b = json_loads("[128803, 30594, 128804, 128821, 36101, 128822, 7624, 1]", 0, NULL);
    const char *sa = "Hello! 毕老师！1 + 1 = 2 ĠÑĤÐ²ÑĬÑĢ";
    const char *sb = "<｜User｜>你好<｜Assistant｜><think>推理</think>答案<｜end▁of▁sentence｜>";
    check_encode(t, sa, strlen(sa), a, "golden 1");
    check_encode(t, sb, strlen(sb), b, "golden 2");
    json_decref(a);
    json_decref(b);
}

static void invalid_row(json_t *row, void *p) {
    (void)p;
    const char *hex = json_string_value(json_object_get(row, "hex"));
    size_t n = strlen(hex) / 2;
    char *bytes = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        bytes[i] = (char)v;
    }
    char *guarded = lt_test_guarded_copy(bytes, n); /* an over-read crashes */
    check_encode(real_tokenizer(0), guarded, n, json_object_get(row, "v4"), "invalid UTF-8");
    lt_test_guarded_free(guarded);
    free(bytes);
    /* streaming the single-byte tokens gives HF's decode (U+FFFD policy) */
    json_t *ids = json_object_get(row, "byte_ids"), *want = json_object_get(row, "decoded"), *id;
    size_t i, len, got_n = 0;
    char got[256];
    lt_detok d;
    lt_detok_init(&d);
    json_array_foreach(ids, i, id) {
        const char *s = lt_detok_push(&d, real_tokenizer(0), (int32_t)json_integer_value(id), 0, &len, NULL);
        if (s && got_n + len < sizeof got) memcpy(got + got_n, s, len), got_n += len;
    }
    const char *s = lt_detok_flush(&d, &len);
    if (got_n + len < sizeof got) memcpy(got + got_n, s, len), got_n += len;
    CHECKF(got_n == json_string_length(want) && !memcmp(got, json_string_value(want), got_n), "decode of %s", hex);
}

LT_TEST(tokenizer, invalid_utf8_is_replaced_like_python) {
    if (!real_tokenizer(0)) return;
    CHECK(for_each_line(DATA "invalid_utf8.jsonl", invalid_row, NULL) >= 50);
}

LT_TEST(tokenizer, parse_special_off_keeps_tokens_as_text) {
    lt_tokenizer *t = real_tokenizer(0);
    if (!t) return;
    const char *s = "<｜User｜>hi";
    lt_token_vec on = {0}, off = {0};
    CHECK(lt_tokenizer_encode(t, s, strlen(s), 1, &on, NULL) == LT_OK);
    CHECK(lt_tokenizer_encode(t, s, strlen(s), 0, &off, NULL) == LT_OK);
    CHECK(on.n == 2 && on.ids[0] == 128803);
    CHECK(off.n > 2);
    for (size_t i = 0; i < off.n; i++) CHECK(off.ids[i] < 128000);
    lt_token_vec_free(&on);
    lt_token_vec_free(&off);
}

LT_TEST(tokenizer, token_lookup_and_specials) {
    lt_tokenizer *t = real_tokenizer(0), *t41 = real_tokenizer(1);
    if (!t || !t41) return;
    CHECK(lt_tokenizer_token_id(t, "<｜User｜>") == 128803);
    CHECK(lt_tokenizer_token_id(t, "<think>") == 128821);
    CHECK(lt_tokenizer_token_id(t, "Ġt") > 0);
    CHECK(lt_tokenizer_token_id(t, "<｜System｜>") == -1);
    CHECK(lt_tokenizer_token_id(t41, "<｜System｜>") == 128799);
    CHECK(lt_tokenizer_vocab_size(t) == 129280);
    CHECK(lt_tokenizer_is_special(t, 0) && lt_tokenizer_is_special(t, 1) && !lt_tokenizer_is_special(t, 128803));
    CHECK(lt_tokenizer_bos(t) == -1); /* no tokenizer_config.json in that folder */
    size_t len;
    const char *b = lt_tokenizer_token_bytes(t, 223, &len);
    CHECK(b && len == 1 && b[0] == ' ');
    CHECK(!lt_tokenizer_token_bytes(t, 129280, &len) && !lt_tokenizer_token_bytes(t, -1, &len));
    int32_t ids[] = {128803, 5, 129280};
    char *text;
    lt_error err;
    CHECK(lt_tokenizer_decode(t, ids, 3, 0, &text, &len, &err) == LT_ERR_ARG);
    CHECKF(strstr(err.msg, "129280"), "%s", err.msg);
    int32_t bos_hi[] = {0, 19923, 1};
    CHECK(lt_tokenizer_decode(t, bos_hi, 3, 1, &text, &len, &err) == LT_OK);
    CHECK(!strcmp(text, "Hello"));
    free(text);
}

/* Whether buf is whole, valid UTF-8 (no character cut at either end). */
static int whole_utf8(const char *buf, size_t n) {
    const unsigned char *u = (const unsigned char *)buf;
    for (size_t i = 0; i < n;) {
        int len = u[i] < 0x80 ? 1 : u[i] >= 0xF0 ? 4 : u[i] >= 0xE0 ? 3 : u[i] >= 0xC2 ? 2 : 0;
        if (!len || i + (size_t)len > n) return 0;
        for (int k = 1; k < len; k++)
            if ((u[i + (size_t)k] & 0xC0) != 0x80) return 0;
        i += (size_t)len;
    }
    return 1;
}

/* Streams every id of s through a detokenizer; each chunk must be whole
 * UTF-8 and the chunks together the text. */
static void check_stream(lt_tokenizer *t, const char *s) {
    lt_token_vec v = {0};
    lt_detok d;
    size_t slen = strlen(s), n = 0, len;
    char *acc = malloc(slen + 1);
    int broken = 0;
    CHECK(lt_tokenizer_encode(t, s, slen, 1, &v, NULL) == LT_OK);
    lt_detok_init(&d);
    for (size_t i = 0; i < v.n && !broken; i++) {
        const char *chunk = lt_detok_push(&d, t, v.ids[i], 0, &len, NULL);
        broken = !chunk || n + len > slen || !whole_utf8(chunk, len);
        if (!broken) memcpy(acc + n, chunk, len), n += len;
    }
    lt_detok_flush(&d, &len);
    CHECKF(!broken && len == 0 && n == slen && !memcmp(acc, s, n), "stream of %.40s", s);
    free(acc);
    lt_token_vec_free(&v);
}

LT_TEST(tokenizer, streaming_decode_whole_characters) {
    lt_tokenizer *t = real_tokenizer(0);
    if (!t) return;
    check_stream(t, "👨‍👩‍👧‍👦 家族 𠀀 e\u0301 ok");
    check_stream(t, "<｜User｜>你好<｜Assistant｜><think>推理</think>");
    /* the split case itself: "😀" is several byte-level tokens */
    lt_token_vec v = {0};
    CHECK(lt_tokenizer_encode(t, "😀", 4, 1, &v, NULL) == LT_OK);
    CHECKF(v.n > 1, "😀 is %zu tokens", v.n);
    lt_detok d;
    size_t len, total = 0;
    lt_detok_init(&d);
    for (size_t i = 0; i + 1 < v.n; i++) {
        lt_detok_push(&d, t, v.ids[i], 0, &len, NULL);
        total += len;
    }
    CHECK(total == 0);
    const char *last = lt_detok_push(&d, t, v.ids[v.n - 1], 0, &len, NULL);
    CHECK(len == 4 && !memcmp(last, "😀", 4));
    lt_token_vec_free(&v);
}

LT_TEST(tokenizer, streaming_decode_invalid_bytes) {
    lt_tokenizer *t = real_tokenizer(0);
    if (!t) return;
    /* single-byte tokens: 0xE4 0xBD (a cut 3-byte char), then 'a', then 0xFF */
    int32_t e4 = lt_tokenizer_token_id(t, "ä"), bd = lt_tokenizer_token_id(t, "½");
    int32_t a = lt_tokenizer_token_id(t, "a"), ff = lt_tokenizer_token_id(t, "ÿ");
    CHECK(e4 >= 0 && bd >= 0 && a >= 0 && ff >= 0);
    lt_detok d;
    size_t len;
    lt_error err;
    lt_detok_init(&d);
    lt_detok_push(&d, t, e4, 0, &len, NULL);
    CHECK(len == 0);
    lt_detok_push(&d, t, bd, 0, &len, NULL);
    CHECK(len == 0);
    const char *out = lt_detok_push(&d, t, a, 0, &len, NULL);
    CHECK(len == 4 && !memcmp(out, "\xEF\xBF\xBD" "a", 4));
    out = lt_detok_push(&d, t, ff, 0, &len, NULL);
    CHECK(len == 3 && !memcmp(out, "\xEF\xBF\xBD", 3));
    lt_detok_push(&d, t, e4, 0, &len, NULL);
    out = lt_detok_flush(&d, &len);
    CHECK(len == 3 && !memcmp(out, "\xEF\xBF\xBD", 3));
    CHECK(!lt_detok_push(&d, t, -5, 0, &len, &err));
}

static void flags_row(json_t *row, void *p) {
    json_t *text = json_object_get(row, "text");
    check_encode(p, json_string_value(text), json_string_length(text), json_object_get(row, "ids"), "flags");
}

LT_TEST(tokenizer, added_token_flags_match_hf) {
    lt_tokenizer *t;
    lt_error err;
    CHECKF(lt_tokenizer_load(&t, DATA "flags/tokenizer.json", &err) == LT_OK, "%s", err.msg);
    if (!t) return;
    CHECK(for_each_line(DATA "flags.jsonl", flags_row, t) >= 10);
    lt_tokenizer_free(t);
}

static void expect_load_error(const char *path, lt_status want, const char *needle) {
    lt_tokenizer *t = (lt_tokenizer *)1;
    lt_error err = {{0}};
    lt_status st = lt_tokenizer_load(&t, path, &err);
    CHECKF(st == want && !t && strstr(err.msg, needle), "%s: status %d, '%s'", path, st, err.msg);
}

LT_TEST(tokenizer, folder_with_config_names_bos_eos) {
    char *json;
    size_t len;
    lt_error err;
    CHECK(lt_read_file(DATA "flags/tokenizer.json", &json, &len, NULL) == LT_OK);
    lt_test_write_temp("tokenizer.json", json, len);
    const char *cfg = "{\"bos_token\": {\"content\": \"<S>\"}, \"eos_token\": \"<N>\"}";
    lt_test_write_temp("tokenizer_config.json", cfg, strlen(cfg));
    free(json);
    lt_tokenizer *t;
    CHECKF(lt_tokenizer_load(&t, lt_test_tmpdir(), &err) == LT_OK, "%s", err.msg);
    if (!t) return;
    CHECK(lt_tokenizer_bos(t) == lt_tokenizer_token_id(t, "<S>") && lt_tokenizer_bos(t) >= 0);
    CHECK(lt_tokenizer_eos(t) == lt_tokenizer_token_id(t, "<N>") && lt_tokenizer_eos(t) >= 0);
    lt_tokenizer_free(t);
    lt_test_write_temp("tokenizer_config.json", "{\"bos_token\": ", 14);
    expect_load_error(lt_test_tmpdir(), LT_ERR_FORMAT, "tokenizer_config.json");
}

LT_TEST(tokenizer, load_errors_are_clear) {
    expect_load_error("/nonexistent/tok", LT_ERR_IO, "no such file");
    expect_load_error("tests", LT_ERR_IO, "no tokenizer.json");
    const char *bad = lt_test_write_temp("bad.json", "{\"model\": ", 10);
    expect_load_error(bad, LT_ERR_FORMAT, "bad.json");
    const char *wp = "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}";
    expect_load_error(lt_test_write_temp("wp.json", wp, strlen(wp)), LT_ERR_UNSUPPORTED, "BPE");
    const char *norm = "{\"normalizer\": {\"type\": \"NFC\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}";
    expect_load_error(lt_test_write_temp("nfc.json", norm, strlen(norm)), LT_ERR_FORMAT, "byte symbol");
    const char *merge = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}";
    expect_load_error(lt_test_write_temp("merge.json", merge, strlen(merge)), LT_ERR_FORMAT, "'b'");
}

LT_TEST(tokenizer, speed_1mb_mixed_text) {
    lt_tokenizer *t = real_tokenizer(0);
    char *corpus;
    size_t len;
    if (!t || lt_read_file(DATA "corpus.jsonl", &corpus, &len, NULL) != LT_OK) return;
    /* the corpus file repeated to 1 MiB: JSON, English, CJK, code, emoji */
    size_t mb = 1 << 20, n = 0;
    char *text = malloc(mb);
    while (n < mb) {
        size_t k = LT_MIN(len, mb - n);
        while (k > 0 && corpus[k - 1] != '\n') k--; /* whole lines */
        if (!k) break;
        memcpy(text + n, corpus, k);
        n += k;
    }
    lt_token_vec v = {0};
    double t0 = lt_time_s();
    CHECK(lt_tokenizer_encode(t, text, n, 1, &v, NULL) == LT_OK);
    double dt = lt_time_s() - t0;
    char *back;
    size_t back_len;
    CHECK(lt_tokenizer_decode(t, v.ids, v.n, 0, &back, &back_len, NULL) == LT_OK);
    CHECK(back_len == n && !memcmp(back, text, n));
    printf("  tokenizer: %zu bytes -> %zu tokens in %.3f s = %.1f MB/s\n", n, v.n, dt, (double)n / 1e6 / dt);
    free(back);
    free(text);
    free(corpus);
    lt_token_vec_free(&v);
}

/* ---- the tokenize / detokenize commands ---------------------------------- */

/* Runs a command with stdin from `input` and stdout/stderr captured into
 * *out / *errout (malloc'd); returns its exit code. */
static int run_cli(int (*fn)(int, char **), const char *const *args, int n, const char *input, char **out,
                   char **errout) {
    const char *in = lt_test_write_temp("cli_in", input, strlen(input));
    char po[512], pe[512];
    snprintf(po, sizeof po, "%s/cli_out", lt_test_tmpdir());
    snprintf(pe, sizeof pe, "%s/cli_err", lt_test_tmpdir());
    fflush(stdout);
    fflush(stderr);
    int save[3] = {dup(0), dup(1), dup(2)};
    int fi = open(in, O_RDONLY), fo = open(po, O_WRONLY | O_CREAT | O_TRUNC, 0600),
        fe = open(pe, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fi, 0), dup2(fo, 1), dup2(fe, 2);
    close(fi), close(fo), close(fe);
    clearerr(stdin);
    char *argv[16];
    for (int i = 0; i < n; i++) argv[i] = (char *)args[i];
    argv[n] = NULL;
    int rc = fn(n, argv);
    fflush(stdout);
    fflush(stderr);
    for (int k = 0; k < 3; k++) dup2(save[k], k), close(save[k]);
    clearerr(stdin);
    lt_read_file(po, out, NULL, NULL);
    lt_read_file(pe, errout, NULL, NULL);
    return rc;
}

static void expect_cli(int (*fn)(int, char **), const char *const *args, int n, const char *input, int want_rc,
                       const char *want_out, const char *err_has) {
    char *out = NULL, *err = NULL;
    int rc = run_cli(fn, args, n, input, &out, &err);
    CHECKF(rc == want_rc, "%s %s: exit %d, want %d (stderr: %s)", args[0], n > 1 ? args[n - 1] : "", rc, want_rc,
           err ? err : "");
    if (want_out) CHECKF(out && !strcmp(out, want_out), "%s: stdout '%s', want '%s'", args[0], out ? out : "", want_out);
    if (err_has) CHECKF(err && strstr(err, err_has), "%s: stderr '%s' lacks '%s'", args[0], err ? err : "", err_has);
    free(out);
    free(err);
}

/* The tiny flags tokenizer loads fast (ids: bytes are their own ids, "ab"
 * 256, "abc" 257, "xy" 259, special "<S>" 266); one case uses the real one. */
#define FLAGS DATA "flags"

LT_TEST(tokenizer, cli_tokenize) {
    const char *a[] = {"tokenize", "-m", V4_DIR, "<｜User｜>你好<｜Assistant｜>"};
    expect_cli(lt_cli_tokenize, a, 4, "", 0, "128803 30594 128804\n", NULL);
    const char *t[] = {"tokenize", "-m", FLAGS, "abc<S>xy"};
    expect_cli(lt_cli_tokenize, t, 4, "", 0, "257 266 259\n", NULL);
    const char *j[] = {"tokenize", "--json", "-m", FLAGS, "abc xy"};
    expect_cli(lt_cli_tokenize, j, 5, "", 0, "[257, 32, 259]\n", NULL);
    const char *s[] = {"tokenize", "-m", FLAGS};
    expect_cli(lt_cli_tokenize, s, 3, "ab", 0, "256\n", NULL);
    const char *l[] = {"tokenize", "-m", FLAGS, "--jsonl"};
    expect_cli(lt_cli_tokenize, l, 4, "\"ab\"\n\"<S>\"\n", 0, "[256]\n[266]\n", NULL);
    expect_cli(lt_cli_tokenize, l, 4, "\"ok\"\n42\n", 1, NULL, "line 2 is not a JSON string");
    const char *ns[] = {"tokenize", "-m", FLAGS, "--no-special", "<S>"};
    expect_cli(lt_cli_tokenize, ns, 5, "", 0, "60 83 62\n", NULL);
    const char *h[] = {"tokenize", "--help"};
    expect_cli(lt_cli_tokenize, h, 2, "", 0, NULL, NULL);
    const char *u[] = {"tokenize", "-m", FLAGS, "--bogus", "x"};
    expect_cli(lt_cli_tokenize, u, 5, "", 2, "", "unknown option '--bogus'");
    const char *two[] = {"tokenize", "-m", FLAGS, "x", "y"};
    expect_cli(lt_cli_tokenize, two, 5, "", 2, "", "one TEXT");
    const char *nm[] = {"tokenize", "x"};
    expect_cli(lt_cli_tokenize, nm, 2, "", 2, "", "-m DIR is missing");
    const char *bad[] = {"tokenize", "-m", "/nonexistent", "x"};
    expect_cli(lt_cli_tokenize, bad, 4, "", 1, "", "no such file");
}

LT_TEST(tokenizer, cli_detokenize) {
    const char *a[] = {"detokenize", "-m", FLAGS, "257", "266", "259"};
    expect_cli(lt_cli_detokenize, a, 6, "", 0, "abc<S>xy\n", NULL);
    const char *s[] = {"detokenize", "-m", FLAGS, "--skip-special"};
    expect_cli(lt_cli_detokenize, s, 4, "[257, 266, 259]\n", 0, "abcxy\n", NULL);
    const char *cut[] = {"detokenize", "-m", FLAGS, "228", "189", "97"}; /* E4 BD: a cut character */
    expect_cli(lt_cli_detokenize, cut, 6, "", 0, "\xEF\xBF\xBD" "a\n", NULL);
    const char *big[] = {"detokenize", "-m", FLAGS, "97", "999999"};
    expect_cli(lt_cli_detokenize, big, 5, "", 1, "", "token id 999999 is not in the vocabulary");
    const char *neg[] = {"detokenize", "-m", FLAGS, "-5"};
    expect_cli(lt_cli_detokenize, neg, 4, "", 1, "", "'-5' is not a token id");
    const char *in[] = {"detokenize", "-m", FLAGS};
    expect_cli(lt_cli_detokenize, in, 3, "97 x", 1, "", "'x' on stdin");
    const char *u[] = {"detokenize", "-m", FLAGS, "--json"};
    expect_cli(lt_cli_detokenize, u, 4, "", 2, "", "unknown option '--json'");
}

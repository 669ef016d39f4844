/* DSML / completion parser tests: the official completion shapes (V4 and
 * V4.1 tags), typed arguments, every chunking of the same output, every
 * truncation (run under ASan, input behind a guard page), malformed markup,
 * and a round trip through the chat encoder. */
#include "dsml.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

#define E "<｜end▁of▁sentence｜>"

static const char V4_OUT[] =
    "The user wants weather.</think>Let me check.\n\n<｜DSML｜tool_calls>\n"
    "<｜DSML｜invoke name=\"get_weather\">\n"
    "<｜DSML｜parameter name=\"location\" string=\"true\">Beijing \"东城\" <b></｜DSML｜parameter>\n"
    "<｜DSML｜parameter name=\"days\" string=\"false\">3</｜DSML｜parameter>\n"
    "<｜DSML｜parameter name=\"opts\" string=\"false\">{\"a\": [1, 2.5, null], \"b\": true}</｜DSML｜parameter>\n"
    "</｜DSML｜invoke>\n"
    "<｜DSML｜invoke name=\"noop\">\n</｜DSML｜invoke>\n"
    "</｜DSML｜tool_calls>" E;

static const char V4_CALLS[] =
    "[{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Beijing \\\"东城\\\" <b>\", \"days\": 3, "
    "\"opts\": {\"a\": [1, 2.5, null], \"b\": true}}}, {\"name\": \"noop\", \"arguments\": {}}]";

typedef struct {
    char *reasoning, *content, *calls, *warning;
    int done;
} result;

static char *dup_buf(const lt_strbuf *b) { return strdup(b->s ? b->s : ""); }

static void result_free(result *r) {
    free(r->reasoning), free(r->content), free(r->calls), free(r->warning);
}

/* Parses text fed in chunks of the given sizes (cycled), each chunk copied
 * behind a guard page so that any over-read crashes. */
static result parse(lt_chat_format f, int thinking, const char *text, size_t n, const size_t *sizes, int n_sizes) {
    lt_dsml *p;
    lt_dsml_delta d = {0};
    CHECK(lt_dsml_create(&p, f, thinking, NULL) == LT_OK);
    for (size_t at = 0, k = 0; at < n; k++) {
        size_t c = n_sizes ? sizes[k % (size_t)n_sizes] : n;
        if (c > n - at) c = n - at;
        char *g = lt_test_guarded_copy(text + at, c);
        CHECK(lt_dsml_feed(p, g, c, &d, NULL) == LT_OK);
        lt_test_guarded_free(g);
        at += c;
    }
    CHECK(lt_dsml_finish(p, &d, NULL) == LT_OK);
    result r = {dup_buf(&d.reasoning), dup_buf(&d.content),
                d.calls ? json_dumps(d.calls, JSON_COMPACT) : strdup("[]"), strdup(d.warning), d.done};
    lt_dsml_delta_free(&d);
    lt_dsml_free(p);
    return r;
}

static char *compact(const char *json) {
    json_t *j = json_loads(json, 0, NULL);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

LT_TEST(dsml, v4_completion_with_calls) {
    result r = parse(LT_CHAT_V4, 1, V4_OUT, strlen(V4_OUT), NULL, 0);
    char *want = compact(V4_CALLS);
    CHECKF(!strcmp(r.reasoning, "The user wants weather."), "reasoning '%s'", r.reasoning);
    CHECKF(!strcmp(r.content, "Let me check."), "content '%s'", r.content);
    CHECKF(!strcmp(r.calls, want), "calls %s", r.calls);
    CHECK(r.done && !r.warning[0]);
    free(want);
    result_free(&r);
}

/* The same output in the V4.1 spelling. */
static char *to_v41(const char *s) {
    static const char *const from[] = {"｜DSML｜tool_calls", "｜DSML｜invoke", "｜DSML｜parameter"};
    static const char *const to[] = {"｜DSML｜ calls", "｜DSML｜ invoke", "｜DSML｜ parameter"};
    char *out = malloc(2 * strlen(s) + 1), *o = out;
    while (*s) {
        int k = 0;
        while (k < 3 && strncmp(s, from[k], strlen(from[k]))) k++;
        if (k < 3) o += sprintf(o, "%s", to[k]), s += strlen(from[k]);
        else *o++ = *s++;
    }
    *o = 0;
    return out;
}

LT_TEST(dsml, v41_tags) {
    char *v41 = to_v41(V4_OUT), *want = compact(V4_CALLS);
    result r = parse(LT_CHAT_V41, 1, v41, strlen(v41), NULL, 0);
    CHECKF(!strcmp(r.calls, want) && !strcmp(r.content, "Let me check.") && !r.warning[0], "calls %s", r.calls);
    result_free(&r);
    /* V4 tags are plain text for a V4.1 parser */
    r = parse(LT_CHAT_V41, 1, V4_OUT, strlen(V4_OUT), NULL, 0);
    CHECK(!strcmp(r.calls, "[]") && strstr(r.content, "<｜DSML｜tool_calls>"));
    result_free(&r);
    free(v41);
    free(want);
}

static int same(const result *a, const result *b) {
    return !strcmp(a->reasoning, b->reasoning) && !strcmp(a->content, b->content) && !strcmp(a->calls, b->calls) &&
           !strcmp(a->warning, b->warning) && a->done == b->done;
}

LT_TEST(dsml, every_chunking_gives_the_same_result) {
    size_t n = strlen(V4_OUT);
    result whole = parse(LT_CHAT_V4, 1, V4_OUT, n, NULL, 0);
    for (size_t c = 1; c <= 24; c++) {
        result r = parse(LT_CHAT_V4, 1, V4_OUT, n, &c, 1);
        CHECKF(same(&r, &whole), "chunk size %zu: content '%s' calls %s", c, r.content, r.calls);
        result_free(&r);
    }
    srand(7);
    for (int t = 0; t < 200; t++) {
        size_t sizes[16];
        for (int k = 0; k < 16; k++) sizes[k] = 1 + (size_t)(rand() % 40);
        result r = parse(LT_CHAT_V4, 1, V4_OUT, n, sizes, 16);
        CHECKF(same(&r, &whole), "random chunking %d differs", t);
        result_free(&r);
    }
    result_free(&whole);
}

LT_TEST(dsml, every_truncation_is_safe) {
    size_t n = strlen(V4_OUT), one = 1;
    json_t *full = json_loads(V4_CALLS, 0, NULL);
    for (size_t cut = 0; cut <= n; cut++) {
        size_t step = 1 + cut % 5;
        result r = parse(LT_CHAT_V4, 1, V4_OUT, cut, cut % 2 ? &step : &one, 1);
        json_t *got = json_loads(r.calls, 0, NULL);
        /* calls completed so far are exactly the leading calls of the full output */
        int prefix = json_array_size(got) <= json_array_size(full);
        for (size_t i = 0; prefix && i < json_array_size(got); i++)
            prefix = json_equal(json_array_get(got, i), json_array_get(full, i));
        CHECKF(prefix, "cut %zu: calls %s", cut, r.calls);
        /* text that was held back comes out at finish: nothing is lost */
        size_t out = strlen(r.reasoning) + strlen(r.content);
        CHECKF(out <= cut, "cut %zu: more text than input", cut);
        json_decref(got);
        result_free(&r);
    }
    json_decref(full);
}

static void expect_fallback(const char *text, const char *content_has) {
    result r = parse(LT_CHAT_V4, 0, text, strlen(text), NULL, 0);
    CHECKF(r.warning[0] && strstr(r.content, content_has) && !strcmp(r.calls, "[]"),
           "'%s': content '%s' warning '%s' calls %s", text, r.content, r.warning, r.calls);
    result_free(&r);
}

LT_TEST(dsml, malformed_markup_becomes_content) {
    expect_fallback("A\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke nam=\"f\">\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>" E,
                    "<｜DSML｜invoke nam=\"f\">");
    expect_fallback("A\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"x\" string=\"maybe\">1"
                    "</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>", "string=\"maybe\"");
    expect_fallback("<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"x\" string=\"true\">1"
                    "</｜DSML｜parameter><｜DSML｜parameter name=\"x\" string=\"true\">2</｜DSML｜parameter>"
                    "</｜DSML｜invoke></｜DSML｜tool_calls>", "name=\"x\"");
    expect_fallback("<｜DSML｜tool_calls>\nhello</｜DSML｜tool_calls>", "hello");
    expect_fallback("<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\n\">", "invoke name");
    /* cut off inside a block: returned as content at finish */
    expect_fallback("x\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"a\" string=\"true\">v",
                    "string=\"true\">v");
}

LT_TEST(dsml, values_and_text_edges) {
    const char *bad_json = "<｜DSML｜tool_calls><｜DSML｜invoke name=\"f\"><｜DSML｜parameter name=\"n\" string=\"false\">"
                           "{oops</｜DSML｜parameter></｜DSML｜invoke></｜DSML｜tool_calls>";
    result r = parse(LT_CHAT_V4, 0, bad_json, strlen(bad_json), NULL, 0);
    CHECKF(!strcmp(r.calls, "[{\"name\":\"f\",\"arguments\":{\"n\":\"{oops\"}}]") && strstr(r.warning, "JSON"), "%s",
           r.calls);
    result_free(&r);
    const char *plain = "a\n\nb <｜DSML｜ not a block\n\n" E "ignored";
    r = parse(LT_CHAT_V4, 0, plain, strlen(plain), NULL, 0);
    CHECKF(!strcmp(r.content, "a\n\nb <｜DSML｜ not a block\n\n") && r.done && !r.warning[0], "'%s'", r.content);
    result_free(&r);
    const char *no_end = "still thinking";
    r = parse(LT_CHAT_V4, 1, no_end, strlen(no_end), NULL, 0);
    CHECK(!strcmp(r.reasoning, "still thinking") && !r.content[0] && !r.done);
    result_free(&r);
    size_t one = 1;
    const char *nl = "x\n";
    r = parse(LT_CHAT_V4, 0, nl, 2, &one, 1);
    CHECK(!strcmp(r.content, "x\n"));
    result_free(&r);
}

LT_TEST(dsml, round_trip_through_chat_encoder) {
    const char *msgs =
        "[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"reasoning_content\":\"R\",\"content\":\"C\","
        "\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"s\\\": \\\"x\\\\ny\\\", \\\"n\\\": -1.5, "
        "\\\"l\\\": [1, {\\\"k\\\": \\\"v\\\"}], \\\"b\\\": false}\"}}]}]";
    for (int f = 0; f < 2; f++) {
        json_t *m = json_loads(msgs, 0, NULL);
        lt_chat_options o = {.format = f ? LT_CHAT_V41 : LT_CHAT_V4, .thinking = 1};
        char *prompt;
        size_t len;
        CHECK(lt_chat_encode(m, NULL, &o, &prompt, &len, NULL) == LT_OK);
        const char *out = strstr(prompt, "<｜Assistant｜><think>") + strlen("<｜Assistant｜><think>");
        result r = parse(o.format, 1, out, strlen(out), NULL, 0);
        CHECKF(!strcmp(r.reasoning, "R") && !strcmp(r.content, "C") && r.done && !r.warning[0], "%s", r.content);
        json_t *got = json_loads(r.calls, 0, NULL);
        json_t *want = json_loads("{\"s\": \"x\\ny\", \"n\": -1.5, \"l\": [1, {\"k\": \"v\"}], \"b\": false}", 0, NULL);
        CHECKF(json_equal(json_object_get(json_array_get(got, 0), "arguments"), want), "format %d: %s", f, r.calls);
        json_decref(got);
        json_decref(want);
        result_free(&r);
        free(prompt);
        json_decref(m);
    }
}

LT_TEST(dsml, long_streamed_value_is_linear) {
    lt_dsml *p;
    lt_dsml_delta d = {0};
    CHECK(lt_dsml_create(&p, LT_CHAT_V4, 0, NULL) == LT_OK);
    const char *head = "<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"write\">\n<｜DSML｜parameter name=\"text\" string=\"true\">";
    const char *tail = "</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>" E;
    size_t n = 400000; /* fed one byte at a time: quadratic rescanning would take minutes */
    CHECK(lt_dsml_feed(p, head, strlen(head), &d, NULL) == LT_OK);
    for (size_t i = 0; i < n; i++) lt_dsml_feed(p, i % 64 == 63 ? "\n" : "x", 1, &d, NULL);
    for (const char *c = tail; *c; c++) lt_dsml_feed(p, c, 1, &d, NULL);
    CHECK(lt_dsml_finish(p, &d, NULL) == LT_OK);
    json_t *v = json_object_get(json_object_get(json_array_get(d.calls, 0), "arguments"), "text");
    CHECKF(json_string_length(v) == n && d.done && !d.warning[0], "value of %zu bytes", json_string_length(v));
    lt_dsml_delta_free(&d);
    lt_dsml_free(p);
}

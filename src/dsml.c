/* Incremental parser of model output: reasoning, content and DSML tool
 * calls (grammar in dsml.h). A state machine over a buffer of unconsumed
 * text: each state looks for its markers, emits what can no longer be part
 * of one, and holds back a suffix that might still become one. A tool call
 * is emitted when its </invoke> arrives; markup that breaks the grammar goes
 * back to content verbatim with a warning (never an error). */
#include "dsml.h"

#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EOS "<｜end▁of▁sentence｜>"
#define THINK_END "</think>"

typedef enum { ST_REASONING, ST_CONTENT, ST_CALLS, ST_DONE } state;

struct lt_dsml {
    state st;
    int waiting;     /* the block's next element is incomplete: nothing changes before a '>' */
    lt_strbuf buf;   /* unconsumed text */
    lt_strbuf block; /* raw markup of the block since its start or last complete call */
    char calls_open[40], calls_close[40], invoke_open[40], invoke_close[40], param_open[40], param_close[40];
};

void lt_dsml_delta_free(lt_dsml_delta *d) {
    lt_strbuf_free(&d->reasoning);
    lt_strbuf_free(&d->content);
    json_decref(d->calls);
    *d = (lt_dsml_delta){0};
}

lt_status lt_dsml_create(lt_dsml **out, lt_chat_format fmt, int thinking, lt_error *err) {
    lt_dsml *p = lt_calloc(1, sizeof *p, "DSML parser", err);
    if (!p) return LT_ERR_NOMEM;
    const char *sp = fmt == LT_CHAT_V41 ? " " : "", *calls = fmt == LT_CHAT_V41 ? "calls" : "tool_calls";
    snprintf(p->calls_open, sizeof p->calls_open, "<｜DSML｜%s%s>", sp, calls);
    snprintf(p->calls_close, sizeof p->calls_close, "</｜DSML｜%s%s>", sp, calls);
    snprintf(p->invoke_open, sizeof p->invoke_open, "<｜DSML｜%sinvoke", sp);
    snprintf(p->invoke_close, sizeof p->invoke_close, "</｜DSML｜%sinvoke>", sp);
    snprintf(p->param_open, sizeof p->param_open, "<｜DSML｜%sparameter", sp);
    snprintf(p->param_close, sizeof p->param_close, "</｜DSML｜%sparameter>", sp);
    p->st = thinking ? ST_REASONING : ST_CONTENT;
    *out = p;
    return LT_OK;
}

void lt_dsml_free(lt_dsml *p) {
    if (!p) return;
    lt_strbuf_free(&p->buf);
    lt_strbuf_free(&p->block);
    free(p);
}

/* ---- scanning helpers --------------------------------------------------- */

static void consume(lt_dsml *p, size_t n) {
    memmove(p->buf.s, p->buf.s + n, p->buf.n - n);
    p->buf.n -= n;
    p->buf.s[p->buf.n] = 0;
}

/* Earliest full occurrence of a marker in s: its position and index. */
static int find_marker(const char *s, size_t n, const char *const *m, int nm, size_t *pos) {
    int best = -1;
    for (int k = 0; k < nm; k++) {
        const char *hit = memmem(s, n, m[k], strlen(m[k]));
        if (hit && (best < 0 || (size_t)(hit - s) < *pos)) best = k, *pos = (size_t)(hit - s);
    }
    return best;
}

/* Length of the longest suffix of s that is a proper prefix of a marker. */
static size_t held_suffix(const char *s, size_t n, const char *const *m, int nm) {
    size_t hold = 0;
    for (int k = 0; k < nm; k++) {
        size_t ml = strlen(m[k]);
        for (size_t l = LT_MIN(ml - 1, n); l > hold; l--)
            if (!memcmp(s + n - l, m[k], l)) { hold = l; break; }
    }
    return hold;
}

typedef enum { MATCH = 1, NEED_MORE = 0, MISMATCH = -1 } match;

/* Whether s[*i..n) starts with lit (advancing *i), could still (its end is
 * a prefix of lit), or cannot. */
static match expect(const char *s, size_t n, size_t *i, const char *lit) {
    size_t l = strlen(lit), have = LT_MIN(l, n - *i);
    if (memcmp(s + *i, lit, have)) return MISMATCH;
    if (have < l) return NEED_MORE;
    *i += l;
    return MATCH;
}

static void skip_space(const char *s, size_t n, size_t *i) {
    while (*i < n && (s[*i] == ' ' || s[*i] == '\n' || s[*i] == '\t' || s[*i] == '\r')) (*i)++;
}

/* A quoted attribute value up to the next '"'; one that runs into '>' or a
 * newline first is malformed. */
static match quoted(const char *s, size_t n, size_t *i, const char **v, size_t *vl) {
    for (size_t k = *i; k < n; k++) {
        if (s[k] == '"') {
            *v = s + *i, *vl = k - *i, *i = k + 1;
            return MATCH;
        }
        if (s[k] == '>' || s[k] == '\n') return MISMATCH;
    }
    return NEED_MORE;
}

/* ---- one <invoke> element ----------------------------------------------- */

static void warn(lt_dsml_delta *d, const char *msg) {
    if (!d->warning[0]) snprintf(d->warning, sizeof d->warning, "%s", msg);
}

/* The value of a parameter: raw for string="true", else JSON, falling back
 * to the raw string (with a warning) when it does not parse. */
static json_t *param_value(const char *v, size_t n, int is_string, lt_dsml_delta *d) {
    if (is_string) return json_stringn(v, n);
    json_t *j = json_loadb(v, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (j) return j;
    warn(d, "a string=\"false\" parameter is not valid JSON; kept as a string");
    return json_stringn(v, n);
}

/* One parameter element at s[*i]; adds it to args. */
static match parse_param(const lt_dsml *p, const char *s, size_t n, size_t *i, json_t *args, lt_dsml_delta *d) {
    const char *name, *flag;
    size_t nl, fl;
    match r;
    if ((r = expect(s, n, i, p->param_open)) != MATCH || (r = expect(s, n, i, " name=\"")) != MATCH ||
        (r = quoted(s, n, i, &name, &nl)) != MATCH || (r = expect(s, n, i, " string=\"")) != MATCH ||
        (r = quoted(s, n, i, &flag, &fl)) != MATCH || (r = expect(s, n, i, ">")) != MATCH)
        return r;
    int is_string = fl == 4 && !memcmp(flag, "true", 4);
    if (!is_string && !(fl == 5 && !memcmp(flag, "false", 5))) return MISMATCH;
    const char *end = memmem(s + *i, n - *i, p->param_close, strlen(p->param_close));
    if (!end) return NEED_MORE;
    char key[256];
    if (nl >= sizeof key) return MISMATCH;
    memcpy(key, name, nl);
    key[nl] = 0;
    if (json_object_get(args, key)) return MISMATCH; /* duplicate parameter */
    json_object_set_new(args, key, param_value(s + *i, (size_t)(end - (s + *i)), is_string, d));
    *i = (size_t)(end - s) + strlen(p->param_close);
    return MATCH;
}

/* One invoke element at the start of s: on MATCH, *call is
 * {"name", "arguments"} and *used the bytes it spans. */
static match parse_invoke(const lt_dsml *p, const char *s, size_t n, json_t **call, size_t *used, lt_dsml_delta *d) {
    size_t i = 0;
    const char *name;
    size_t nl;
    match r;
    if ((r = expect(s, n, &i, p->invoke_open)) != MATCH || (r = expect(s, n, &i, " name=\"")) != MATCH ||
        (r = quoted(s, n, &i, &name, &nl)) != MATCH || (r = expect(s, n, &i, ">")) != MATCH)
        return r;
    json_t *args = json_object();
    for (;;) {
        skip_space(s, n, &i);
        size_t at = i;
        match closing = expect(s, n, &at, p->invoke_close);
        if (closing == MATCH) break;
        size_t j = i;
        r = parse_param(p, s, n, &j, args, d);
        if (r == MATCH) { i = j; continue; }
        json_decref(args);
        return r == NEED_MORE || closing == NEED_MORE || i == n ? NEED_MORE : MISMATCH;
    }
    *call = json_pack("{s:s%, s:o}", "name", name, nl, "arguments", args);
    *used = i + strlen(p->invoke_close);
    return MATCH;
}

/* ---- states ------------------------------------------------------------- */

static void emit(lt_dsml *p, lt_dsml_delta *d, size_t n) {
    lt_strbuf_add(p->st == ST_REASONING ? &d->reasoning : &d->content, p->buf.s, n);
    consume(p, n);
}

/* Reasoning runs to </think>, content to the calls block; either may end
 * at EOS. Newlines ending the content are held: "\n\n" before a calls
 * block belongs to the block. Returns whether a marker was consumed. */
static int step_text(lt_dsml *p, lt_dsml_delta *d) {
    const char *m[2] = {p->st == ST_REASONING ? THINK_END : p->calls_open, EOS};
    size_t pos = 0;
    int k = find_marker(p->buf.s, p->buf.n, m, 2, &pos);
    if (k < 0) {
        size_t safe = p->buf.n - held_suffix(p->buf.s, p->buf.n, m, 2);
        for (int nl = 0; p->st == ST_CONTENT && nl < 2 && safe > 0 && p->buf.s[safe - 1] == '\n'; nl++) safe--;
        emit(p, d, safe);
        return 0;
    }
    size_t text = pos;
    if (k == 0 && p->st == ST_CONTENT && text >= 2 && !memcmp(p->buf.s + text - 2, "\n\n", 2)) text -= 2;
    emit(p, d, text);
    if (k == 0 && p->st == ST_CONTENT) lt_strbuf_add(&p->block, p->buf.s, pos - text + strlen(m[k]));
    consume(p, pos - text + strlen(m[k]));
    p->st = k == 1 ? ST_DONE : p->st == ST_REASONING ? ST_CONTENT : ST_CALLS;
    if (k == 1) d->done = 1;
    return 1;
}

/* Markup that broke the grammar goes back to content verbatim: the block
 * opening kept in p->block, then the unconsumed text, reparsed as content. */
static void fall_back(lt_dsml *p, lt_dsml_delta *d, const char *why) {
    lt_strbuf_add(&d->content, p->block.s ? p->block.s : "", p->block.n);
    p->block.n = 0;
    p->st = ST_CONTENT;
    warn(d, why);
}

static void add_call(lt_dsml_delta *d, json_t *call) {
    if (!d->calls) d->calls = json_array();
    json_array_append_new(d->calls, call);
}

/* Inside a calls block: whitespace, complete invokes, or the block end. */
static int step_calls(lt_dsml *p, lt_dsml_delta *d) {
    size_t i = 0, used;
    skip_space(p->buf.s, p->buf.n, &i);
    if (i == p->buf.n) return 0;
    json_t *call = NULL;
    size_t at = i;
    match end = expect(p->buf.s, p->buf.n, &at, p->calls_close);
    match inv = end == MATCH ? MISMATCH : parse_invoke(p, p->buf.s + i, p->buf.n - i, &call, &used, d);
    p->waiting = end == NEED_MORE || inv == NEED_MORE;
    if (p->waiting) return 0;
    if (end == MISMATCH && inv == MISMATCH) {
        fall_back(p, d, "malformed DSML tool-call markup returned as content");
        return 1;
    }
    if (inv == MATCH) {
        add_call(d, call);
        consume(p, i + used);
        p->block.n = 0;
        return 1;
    }
    consume(p, at);
    p->block.n = 0;
    p->st = ST_CONTENT;
    return 1;
}

static int step(lt_dsml *p, lt_dsml_delta *d) {
    switch (p->st) {
    case ST_REASONING:
    case ST_CONTENT: return step_text(p, d);
    case ST_CALLS: return step_calls(p, d);
    case ST_DONE: p->buf.n = 0; return 0;
    }
    return 0;
}

lt_status lt_dsml_feed(lt_dsml *p, const char *text, size_t len, lt_dsml_delta *d, lt_error *err) {
    lt_strbuf_add(&p->buf, text, len);
    if (p->buf.oom) return lt_fail(err, LT_ERR_NOMEM, "out of memory buffering model output");
    /* every element ends in '>': without one, an incomplete element stays
     * incomplete, so a long streamed value is not rescanned per token */
    if (p->st == ST_CALLS && p->waiting && !memchr(text, '>', len)) return LT_OK;
    while (p->buf.n && step(p, d)) {}
    if (p->buf.oom || p->block.oom || d->reasoning.oom || d->content.oom)
        return lt_fail(err, LT_ERR_NOMEM, "out of memory parsing model output");
    return LT_OK;
}

lt_status lt_dsml_finish(lt_dsml *p, lt_dsml_delta *d, lt_error *err) {
    if (p->st == ST_CALLS) {
        fall_back(p, d, "tool-call block cut off by the end of the output; returned as content");
        while (p->buf.n && step(p, d)) {}
    }
    if (p->st != ST_DONE && p->buf.n) emit(p, d, p->buf.n);
    p->buf.n = 0;
    if (d->reasoning.oom || d->content.oom) return lt_fail(err, LT_ERR_NOMEM, "out of memory parsing model output");
    return LT_OK;
}

/* Chat prompt encoding, V4 (encoding_dsv4.py) and V4.1 (encoding.py): the
 * official pipeline merge_tool_messages -> sort_tool_results_by_call_order
 * -> drop_thinking -> render_message per message, each step a function of
 * the same name below. V4.1 differences (spec 7.3), all switched on
 * o->format: <｜System｜> before a leading system message or the effort
 * prompt, mid-conversation system messages that act as a user turn, the
 * numeric "Reasoning Effort: N" paragraph in thinking mode, DSML tag names
 * with a leading space, no developer role. Where a source is uncertain the
 * choice is stated next to the code. JSON embedded in prompts is written
 * the way Python's json.dumps(ensure_ascii=False) writes it. */
#include "chat.h"

#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BOS "<｜begin▁of▁sentence｜>"
#define EOS "<｜end▁of▁sentence｜>"
#define USER "<｜User｜>"
#define ASSISTANT "<｜Assistant｜>"
#define SYSTEM "<｜System｜>"
#define REMINDER "<｜latest_reminder｜>"
#define THINK_START "<think>"
#define THINK_END "</think>"
#define DSML "｜DSML｜"

static const char EFFORT_MAX_V4[] =
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to resolve the root cause, "
    "rigorously stress-testing your logic against all potential paths, edge cases, and adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate step, considered "
    "alternative, and rejected hypothesis to ensure absolutely no assumption is left unchecked.\n\n";

/* ---- text buffer -------------------------------------------------------- */

void lt_strbuf_add(lt_strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = LT_MAX(2 * b->cap, b->n + n + 256);
        char *p = realloc(b->s, cap);
        if (!p) { b->oom = 1; return; }
        b->s = p, b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

void lt_strbuf_puts(lt_strbuf *b, const char *s) { lt_strbuf_add(b, s, strlen(s)); }

void lt_strbuf_free(lt_strbuf *b) {
    free(b->s);
    *b = (lt_strbuf){0};
}

/* ---- json.dumps(ensure_ascii=False) ------------------------------------- */

static void py_string(lt_strbuf *b, const char *s, size_t n) {
    lt_strbuf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                      : c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
        if (!e && c < 0x20) snprintf(esc, sizeof esc, "\\u%04x", c), e = esc;
        if (e) lt_strbuf_puts(b, e);
        else lt_strbuf_add(b, s + i, 1);
    }
    lt_strbuf_add(b, "\"", 1);
}

/* Python float repr: the shortest digits that read back to x, in fixed
 * notation when the decimal exponent is in [-4, 16), else d.ddde+XX. */
static void py_real(lt_strbuf *b, double x) {
    char tmp[40], digits[24], out[64];
    int p = 0;
    if (x == 0) { lt_strbuf_puts(b, signbit(x) ? "-0.0" : "0.0"); return; }
    do snprintf(tmp, sizeof tmp, "%.*e", p, fabs(x));
    while (strtod(tmp, NULL) != fabs(x) && ++p < 17);
    int nd = 0, exp10 = atoi(strchr(tmp, 'e') + 1);
    for (const char *c = tmp; *c != 'e'; c++)
        if (*c != '.') digits[nd++] = *c;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    int decpt = exp10 + 1, o = 0;
    if (x < 0) out[o++] = '-';
    if (decpt <= -4 || decpt > 16) {
        o += snprintf(out + o, sizeof out - (size_t)o, "%c%s%s", digits[0], nd > 1 ? "." : "", digits + 1);
        snprintf(out + o, sizeof out - (size_t)o, "e%c%02d", decpt - 1 < 0 ? '-' : '+', abs(decpt - 1));
    } else if (decpt <= 0) {
        snprintf(out + o, sizeof out - (size_t)o, "0.%.*s%s", -decpt, "0000", digits);
    } else if (decpt >= nd) {
        snprintf(out + o, sizeof out - (size_t)o, "%s%.*s.0", digits, decpt - nd, "0000000000000000");
    } else {
        snprintf(out + o, sizeof out - (size_t)o, "%.*s.%s", decpt, digits, digits + decpt);
    }
    lt_strbuf_puts(b, out);
}

static void py_json(lt_strbuf *b, const json_t *v) {
    char num[32];
    size_t i;
    const char *key;
    json_t *item;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        lt_strbuf_puts(b, "{");
        i = 0;
        json_object_foreach((json_t *)v, key, item) {
            if (i++) lt_strbuf_puts(b, ", ");
            py_string(b, key, strlen(key));
            lt_strbuf_puts(b, ": ");
            py_json(b, item);
        }
        lt_strbuf_puts(b, "}");
        break;
    case JSON_ARRAY:
        lt_strbuf_puts(b, "[");
        json_array_foreach(v, i, item) {
            if (i) lt_strbuf_puts(b, ", ");
            py_json(b, item);
        }
        lt_strbuf_puts(b, "]");
        break;
    case JSON_STRING: py_string(b, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        lt_strbuf_puts(b, num);
        break;
    case JSON_REAL: py_real(b, json_real_value(v)); break;
    case JSON_TRUE: lt_strbuf_puts(b, "true"); break;
    case JSON_FALSE: lt_strbuf_puts(b, "false"); break;
    case JSON_NULL: lt_strbuf_puts(b, "null"); break;
    }
}

/* ---- message fields ----------------------------------------------------- */

typedef struct {
    const lt_chat_options *o;
    int v41, effort; /* effort: V4.1 number, or 1 when V4 "max" */
    lt_error *err;
} enc;

static const char *role_of(json_t *m) {
    const char *r = json_string_value(json_object_get(m, "role"));
    return r ? r : "";
}

static int is_role(json_t *m, const char *r) { return !strcmp(role_of(m), r); }

/* Python truthiness of a field: present, not null/false/""/[]/{}/0. */
static int truthy(json_t *v) {
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_STRING: return json_string_length(v) > 0;
    case JSON_ARRAY: return json_array_size(v) > 0;
    case JSON_OBJECT: return json_object_size(v) > 0;
    case JSON_INTEGER: return json_integer_value(v) != 0;
    case JSON_REAL: return json_real_value(v) != 0;
    case JSON_TRUE: return 1;
    default: return 0;
    }
}

/* `field or ""` for a text field; a non-string value is an error. */
static lt_status text_of(enc *e, json_t *m, const char *field, size_t idx, const char **out) {
    json_t *v = json_object_get(m, field);
    *out = "";
    if (!v || json_is_null(v)) return LT_OK;
    if (!json_is_string(v))
        return lt_fail(e->err, LT_ERR_ARG, "messages[%zu].%s must be a string", idx, field);
    *out = json_string_value(v);
    return LT_OK;
}

/* ---- preprocessing ------------------------------------------------------ */

/* Content is a string, null, or OpenAI parts [{"type":"text","text":...}],
 * which become one string joined by "\n\n" (V4.1's rule; V4 takes strings). */
static lt_status flatten_content(enc *e, json_t *m, size_t idx) {
    json_t *c = json_object_get(m, "content"), *part;
    size_t i;
    if (c && !json_is_null(c) && !json_is_string(c) && !json_is_array(c))
        return lt_fail(e->err, LT_ERR_ARG, "messages[%zu].content must be a string or an array of text parts", idx);
    if (!json_is_array(c)) return LT_OK;
    lt_strbuf b = {0};
    json_array_foreach(c, i, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        json_t *text = json_object_get(part, "text");
        if (!type || strcmp(type, "text") || !json_is_string(text)) {
            lt_strbuf_free(&b);
            return lt_fail(e->err, LT_ERR_UNSUPPORTED, "messages[%zu].content[%zu]: only text parts are supported (got '%s')",
                           idx, i, type ? type : "?");
        }
        if (i) lt_strbuf_puts(&b, "\n\n");
        lt_strbuf_add(&b, json_string_value(text), json_string_length(text));
    }
    int oom = b.oom;
    if (!oom) json_object_set_new(m, "content", json_stringn(b.s ? b.s : "", b.n));
    lt_strbuf_free(&b);
    return oom ? lt_fail(e->err, LT_ERR_NOMEM, "out of memory joining messages[%zu].content", idx) : LT_OK;
}

static json_t *text_field(json_t *m, const char *key) {
    json_t *v = json_object_get(m, key);
    return json_is_string(v) ? json_incref(v) : json_string("");
}

/* Tool messages become tool_result blocks of a user message; consecutive
 * user messages (without task) share one message, blocks joined later. */
static json_t *merge_tool_messages(json_t *msgs) {
    json_t *merged = json_array(), *m;
    size_t i;
    json_array_foreach(msgs, i, m) {
        json_t *last = json_array_size(merged) ? json_array_get(merged, json_array_size(merged) - 1) : NULL;
        json_t *last_blocks = last && is_role(last, "user") ? json_object_get(last, "content_blocks") : NULL;
        if (is_role(m, "tool") || is_role(m, "user")) {
            json_t *block = is_role(m, "tool")
                ? json_pack("{s:s, s:o, s:o}", "type", "tool_result", "tool_use_id", text_field(m, "tool_call_id"),
                            "content", text_field(m, "content"))
                : json_pack("{s:s, s:o}", "type", "text", "text", text_field(m, "content"));
            int joins = last_blocks && (is_role(m, "tool") || !truthy(json_object_get(last, "task")));
            if (joins) {
                json_array_append_new(last_blocks, block);
                continue;
            }
            json_t *u = json_pack("{s:s, s:[o]}", "role", "user", "content_blocks", block);
            static const char *const keep[] = {"content", "task", "wo_eos", "mask"};
            for (size_t k = 0; k < 4 && is_role(m, "user"); k++)
                if (json_object_get(m, keep[k])) json_object_set(u, keep[k], json_object_get(m, keep[k]));
            json_array_append_new(merged, u);
        } else {
            json_array_append(merged, m);
        }
    }
    return merged;
}

static const char *call_id(json_t *tc) {
    const char *id = json_string_value(json_object_get(tc, "id"));
    if (id && *id) return id;
    id = json_string_value(json_object_get(json_object_get(tc, "function"), "id"));
    return id ? id : "";
}

/* Index of the call with this id in the last tool-calling assistant turn
 * (the last one wins for repeated ids, as in a Python dict); 0 if none. */
static size_t call_order(json_t *calls, const char *id) {
    size_t i, at = 0;
    json_t *tc;
    json_array_foreach(calls, i, tc)
        if (*id && !strcmp(call_id(tc), id)) at = i;
    return at;
}

typedef struct { size_t order, pos; json_t *block; } ranked_block;

static int cmp_ranked(const void *a, const void *b) {
    const ranked_block *x = a, *y = b;
    if (x->order != y->order) return x->order < y->order ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos; /* stable, like Python's sorted */
}

/* The tool_result blocks of one user message, reordered in place among
 * themselves by the order of the calls they answer. */
static lt_status sort_blocks(enc *e, json_t *blocks, json_t *calls) {
    size_t n = json_array_size(blocks), nt = 0;
    ranked_block *r = lt_calloc(n, sizeof *r, "tool results", e->err);
    if (!r) return LT_ERR_NOMEM;
    for (size_t k = 0; k < n; k++) {
        json_t *b = json_array_get(blocks, k);
        if (strcmp(json_string_value(json_object_get(b, "type")), "tool_result")) continue;
        r[nt] = (ranked_block){call_order(calls, json_string_value(json_object_get(b, "tool_use_id"))), k, b};
        json_incref(b);
        nt++;
    }
    size_t *slots = lt_calloc(nt, sizeof *slots, "tool results", e->err);
    for (size_t k = 0; slots && k < nt; k++) slots[k] = r[k].pos;
    if (slots) qsort(r, nt, sizeof *r, cmp_ranked);
    for (size_t k = 0; k < nt; k++) {
        if (slots) json_array_set(blocks, slots[k], r[k].block);
        json_decref(r[k].block);
    }
    free(slots);
    free(r);
    return slots || !nt ? LT_OK : LT_ERR_NOMEM;
}

/* Tool results take the order of the calls in the last tool-calling
 * assistant turn before them. */
static lt_status sort_tool_results_by_call_order(enc *e, json_t *msgs) {
    json_t *calls = NULL, *m;
    size_t i;
    lt_status st = LT_OK;
    json_array_foreach(msgs, i, m) {
        if (is_role(m, "assistant") && truthy(json_object_get(m, "tool_calls"))) calls = json_object_get(m, "tool_calls");
        json_t *blocks = json_object_get(m, "content_blocks");
        if (is_role(m, "user") && calls && json_is_array(blocks) && !st) st = sort_blocks(e, blocks, calls);
    }
    return st;
}

/* V4: the last user or developer message. V4.1: the last user message or
 * system message after the first (those also open an assistant turn). */
static long last_user_index(enc *e, json_t *msgs) {
    for (long i = (long)json_array_size(msgs) - 1; i >= 0; i--) {
        json_t *m = json_array_get(msgs, (size_t)i);
        if (is_role(m, "user") || (!e->v41 && is_role(m, "developer")) || (e->v41 && i > 0 && is_role(m, "system")))
            return i;
    }
    return -1;
}

/* Before the last user turn: assistant messages lose their reasoning and
 * roles other than user/system/tool/latest_reminder are dropped. */
static json_t *drop_thinking_messages(enc *e, json_t *msgs) {
    long last = last_user_index(e, msgs);
    json_t *out = json_array(), *m;
    size_t i;
    json_array_foreach(msgs, i, m) {
        const char *r = role_of(m);
        int keep = !strcmp(r, "user") || !strcmp(r, "system") || !strcmp(r, "tool") || !strcmp(r, "latest_reminder") ||
                   !strcmp(r, "direct_search_results") || (long)i >= last;
        if (keep) {
            json_array_append(out, m);
        } else if (!strcmp(r, "assistant")) {
            json_t *c = json_copy(m);
            json_object_del(c, "reasoning_content");
            json_array_append_new(out, c);
        }
    }
    return out;
}

/* ---- rendering ---------------------------------------------------------- */

static void put_tag(lt_strbuf *b, enc *e, const char *open, const char *v4_name, const char *v41_name) {
    lt_strbuf_puts(b, open);
    lt_strbuf_puts(b, DSML);
    lt_strbuf_puts(b, e->v41 ? v41_name : v4_name);
}

#define CALLS_TAG(b, e, open) put_tag(b, e, open, "tool_calls", " calls")
#define INVOKE_TAG(b, e, open) put_tag(b, e, open, "invoke", " invoke")
#define PARAM_TAG(b, e, open) put_tag(b, e, open, "parameter", " parameter")

static lt_status render_tools(lt_strbuf *b, enc *e, json_t *tools, size_t idx) {
    lt_strbuf_puts(b, "## Tools\n\nYou have access to a set of tools to help answer the user's question. "
                      "You can invoke tools by writing a \"");
    CALLS_TAG(b, e, "<"); lt_strbuf_puts(b, ">\" block like the following:\n\n");
    CALLS_TAG(b, e, "<"); lt_strbuf_puts(b, ">\n");
    INVOKE_TAG(b, e, "<"); lt_strbuf_puts(b, " name=\"$TOOL_NAME\">\n");
    PARAM_TAG(b, e, "<"); lt_strbuf_puts(b, " name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE");
    PARAM_TAG(b, e, "</"); lt_strbuf_puts(b, ">\n...\n");
    INVOKE_TAG(b, e, "</"); lt_strbuf_puts(b, ">\n");
    INVOKE_TAG(b, e, "<"); lt_strbuf_puts(b, " name=\"$TOOL_NAME2\">\n...\n");
    INVOKE_TAG(b, e, "</"); lt_strbuf_puts(b, ">\n");
    CALLS_TAG(b, e, "</"); lt_strbuf_puts(b, ">\n\n");
    lt_strbuf_puts(b,
        "String parameters should be specified as is and set `string=\"true\"`. For all other types (numbers, booleans, "
        "arrays, objects), pass the value in JSON format and set `string=\"false\"`.\n\n"
        "If thinking_mode is enabled (triggered by " THINK_START "), you MUST output your complete reasoning inside "
        THINK_START "..." THINK_END " BEFORE any tool calls or final response.\n\n"
        "Otherwise, output directly after " THINK_END " with tool calls or final response.\n\n"
        "### Available Tool Schemas\n\n");
    size_t i;
    json_t *tool;
    json_array_foreach(tools, i, tool) {
        json_t *fn = json_object_get(tool, "function");
        if (!json_is_object(fn))
            return lt_fail(e->err, LT_ERR_ARG, "messages[%zu].tools[%zu] has no function object", idx, i);
        if (i) lt_strbuf_puts(b, "\n");
        py_json(b, fn);
    }
    lt_strbuf_puts(b, "\n\nYou MUST strictly follow the above defined tool name and parameter schemas to invoke tool calls.\n");
    return LT_OK;
}

/* Text of a system/developer message: content, tools, response format. */
static lt_status render_instructions(lt_strbuf *b, enc *e, json_t *m, size_t idx) {
    const char *content;
    lt_status st = text_of(e, m, "content", idx, &content);
    json_t *tools = json_object_get(m, "tools"), *rf = json_object_get(m, "response_format");
    if (st) return st;
    lt_strbuf_puts(b, content);
    if (truthy(tools)) {
        if (!json_is_array(tools)) return lt_fail(e->err, LT_ERR_ARG, "messages[%zu].tools must be an array", idx);
        lt_strbuf_puts(b, "\n\n");
        if ((st = render_tools(b, e, tools, idx))) return st;
    }
    if (truthy(rf)) {
        lt_strbuf_puts(b, "\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n");
        py_json(b, rf);
    }
    return LT_OK;
}

/* A string argument is written raw (string="true"), anything else as JSON.
 * Arguments that are not a JSON object become {"arguments": <raw>}. */
static lt_status render_arguments(lt_strbuf *b, enc *e, json_t *args, size_t idx) {
    json_t *parsed = NULL, *obj = args, *v;
    const char *key;
    size_t i = 0;
    if (json_is_string(args)) parsed = json_loadb(json_string_value(args), json_string_length(args), JSON_DECODE_ANY, NULL);
    if (json_is_string(args)) obj = parsed;
    if (!json_is_object(obj)) {
        if (!args) return lt_fail(e->err, LT_ERR_ARG, "messages[%zu]: tool call without function.arguments", idx);
        json_decref(parsed);
        parsed = obj = json_pack("{s:O}", "arguments", args);
    }
    json_object_foreach(obj, key, v) {
        if (i++) lt_strbuf_puts(b, "\n");
        PARAM_TAG(b, e, "<");
        lt_strbuf_puts(b, " name=\"");
        lt_strbuf_puts(b, key);
        lt_strbuf_puts(b, json_is_string(v) ? "\" string=\"true\">" : "\" string=\"false\">");
        if (json_is_string(v)) lt_strbuf_add(b, json_string_value(v), json_string_length(v));
        else py_json(b, v);
        PARAM_TAG(b, e, "</");
        lt_strbuf_puts(b, ">");
    }
    json_decref(parsed);
    return LT_OK;
}

static lt_status render_tool_calls(lt_strbuf *b, enc *e, json_t *calls, size_t idx) {
    size_t i;
    json_t *tc;
    if (!json_is_array(calls)) return lt_fail(e->err, LT_ERR_ARG, "messages[%zu].tool_calls must be an array", idx);
    lt_strbuf_puts(b, "\n\n");
    CALLS_TAG(b, e, "<");
    lt_strbuf_puts(b, ">\n");
    json_array_foreach(calls, i, tc) {
        json_t *fn = json_object_get(tc, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        if (!name) return lt_fail(e->err, LT_ERR_ARG, "messages[%zu].tool_calls[%zu] has no function.name", idx, i);
        if (i) lt_strbuf_puts(b, "\n");
        INVOKE_TAG(b, e, "<");
        lt_strbuf_puts(b, " name=\"");
        lt_strbuf_puts(b, name);
        lt_strbuf_puts(b, "\">\n");
        lt_status st = render_arguments(b, e, json_object_get(fn, "arguments"), idx);
        if (st) return st;
        lt_strbuf_puts(b, "\n");
        INVOKE_TAG(b, e, "</");
        lt_strbuf_puts(b, ">");
    }
    lt_strbuf_puts(b, "\n");
    CALLS_TAG(b, e, "</");
    lt_strbuf_puts(b, ">");
    return LT_OK;
}

static void render_user_blocks(lt_strbuf *b, json_t *blocks) {
    size_t i;
    json_t *blk;
    json_array_foreach(blocks, i, blk) {
        const char *type = json_string_value(json_object_get(blk, "type"));
        if (i) lt_strbuf_puts(b, "\n\n");
        if (!strcmp(type, "text")) {
            lt_strbuf_puts(b, json_string_value(json_object_get(blk, "text")));
        } else {
            lt_strbuf_puts(b, "<tool_result>");
            lt_strbuf_puts(b, json_string_value(json_object_get(blk, "content")));
            lt_strbuf_puts(b, "</tool_result>");
        }
    }
}

static lt_status render_assistant(lt_strbuf *b, enc *e, json_t *msgs, size_t idx, long last_user, int drop) {
    json_t *m = json_array_get(msgs, idx), *calls = json_object_get(m, "tool_calls");
    const char *content, *reasoning;
    lt_status st;
    if ((st = text_of(e, m, "content", idx, &content)) || (st = text_of(e, m, "reasoning_content", idx, &reasoning)))
        return st;
    /* an answer to a task (previous message has "task") carries no reasoning */
    int prev_task = idx > 0 && truthy(json_object_get(json_array_get(msgs, idx - 1), "task"));
    if (e->o->thinking && !prev_task && (!drop || (long)idx > last_user)) {
        lt_strbuf_puts(b, reasoning);
        lt_strbuf_puts(b, THINK_END);
    }
    lt_strbuf_puts(b, content);
    if (truthy(calls) && (st = render_tool_calls(b, e, calls, idx))) return st;
    if (!json_is_true(json_object_get(m, "wo_eos"))) lt_strbuf_puts(b, EOS);
    return LT_OK;
}

static const char *const TASKS[][2] = {
    {"action", "<｜action｜>"}, {"query", "<｜query｜>"}, {"authority", "<｜authority｜>"},
    {"domain", "<｜domain｜>"}, {"title", "<｜title｜>"}, {"read_url", "<｜read_url｜>"},
};

/* What follows a message whose next message is an assistant turn, a
 * latest_reminder or nothing: a task token or the assistant header. */
static lt_status render_transition(lt_strbuf *b, enc *e, json_t *m, size_t idx, long last_user, int drop) {
    json_t *task = json_object_get(m, "task");
    if (task && !json_is_null(task)) {
        const char *t = json_string_value(task);
        for (size_t k = 0; t && k < sizeof TASKS / sizeof *TASKS; k++) {
            if (strcmp(t, TASKS[k][0])) continue;
            if (k == 0) lt_strbuf_puts(b, ASSISTANT), lt_strbuf_puts(b, e->o->thinking ? THINK_START : THINK_END);
            lt_strbuf_puts(b, TASKS[k][1]);
            return LT_OK;
        }
        return lt_fail(e->err, LT_ERR_ARG, "messages[%zu].task '%s' is not one of action, query, authority, domain, "
                       "title, read_url", idx, t ? t : "?");
    }
    int opens = is_role(m, "user") || (!e->v41 && is_role(m, "developer")) || (e->v41 && idx > 0 && is_role(m, "system"));
    if (opens) {
        lt_strbuf_puts(b, ASSISTANT);
        int think = e->o->thinking && (!drop || (long)idx >= last_user);
        lt_strbuf_puts(b, think ? THINK_START : THINK_END);
    }
    return LT_OK;
}

/* V4.1: <｜System｜> and the effort paragraph open the first message. */
static void render_v41_preamble(lt_strbuf *b, enc *e, json_t *m, size_t idx) {
    if (idx != 0) return;
    if (e->o->thinking || is_role(m, "system")) lt_strbuf_puts(b, SYSTEM);
    if (!e->o->thinking) return;
    char line[128];
    snprintf(line, sizeof line,
             "Reasoning Effort: %d (range 1-100, the higher the value, the more thorough the reasoning)\n\n", e->effort);
    lt_strbuf_puts(b, line);
}

static lt_status render_message(lt_strbuf *b, enc *e, json_t *msgs, size_t idx, int drop) {
    json_t *m = json_array_get(msgs, idx), *next = json_array_get(msgs, idx + 1);
    long last_user = last_user_index(e, msgs);
    const char *r = role_of(m), *text;
    lt_status st = LT_OK;
    if (e->v41) render_v41_preamble(b, e, m, idx);
    else if (idx == 0 && e->o->thinking && e->effort) lt_strbuf_puts(b, EFFORT_MAX_V4);
    if (!strcmp(r, "system")) {
        if (e->v41 && idx > 0) lt_strbuf_puts(b, SYSTEM);
        st = render_instructions(b, e, m, idx);
    } else if (!strcmp(r, "developer") && !e->v41) {
        if (!truthy(json_object_get(m, "content")))
            return lt_fail(e->err, LT_ERR_ARG, "messages[%zu]: a developer message needs content", idx);
        lt_strbuf_puts(b, USER);
        st = render_instructions(b, e, m, idx);
    } else if (!strcmp(r, "user")) {
        lt_strbuf_puts(b, USER);
        render_user_blocks(b, json_object_get(m, "content_blocks"));
    } else if (!strcmp(r, "latest_reminder")) {
        lt_strbuf_puts(b, REMINDER);
        if (!(st = text_of(e, m, "content", idx, &text))) lt_strbuf_puts(b, text);
    } else if (!strcmp(r, "assistant")) {
        st = render_assistant(b, e, msgs, idx, last_user, drop);
    } else {
        return lt_fail(e->err, LT_ERR_ARG, "messages[%zu].role '%s' is not supported by the %s chat format", idx, r,
                       lt_chat_format_name(e->o->format));
    }
    if (st || (next && !is_role(next, "assistant") && !is_role(next, "latest_reminder"))) return st;
    return render_transition(b, e, m, idx, last_user, drop);
}

/* ---- entry points ------------------------------------------------------- */

const char *lt_chat_format_name(lt_chat_format f) { return f == LT_CHAT_V41 ? "V4.1" : "V4"; }

/* V4 accepts high and low as no-ops and max (the official encoder asserts
 * max/high; 0731 adds low). V4.1 maps low/high/max to 50/75/100 with 75 by
 * default, after deepseek-recipe and TensorRT-LLM's port of encoding.py;
 * an SGLang adaptation uses 25/50/75(xhigh)/100 instead [UNCERTAIN]. */
static lt_status parse_effort(enc *e, const char *s) {
    static const char *const names[] = {"low", "high", "max"};
    static const int v41[] = {50, 75, 100};
    e->effort = e->v41 ? 75 : 0;
    if (!s) return LT_OK;
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            e->effort = e->v41 ? v41[i] : i == 2;
            return LT_OK;
        }
    char *end;
    long n = strtol(s, &end, 10);
    if (e->v41 && *s && !*end && n >= 1 && n <= 100) {
        e->effort = (int)n;
        return LT_OK;
    }
    return lt_fail(e->err, LT_ERR_ARG, "reasoning_effort '%s' must be %s", s,
                   e->v41 ? "low, high, max or an integer in [1, 100]" : "low, high or max");
}

/* A working copy: content parts flattened, request tools attached. */
static lt_status prepare(enc *e, const json_t *messages, const json_t *tools, json_t **out) {
    if (!json_is_array(messages)) return lt_fail(e->err, LT_ERR_ARG, "messages must be a JSON array");
    json_t *msgs = json_deep_copy(messages), *m;
    size_t i;
    lt_status st = LT_OK;
    json_array_foreach(msgs, i, m) {
        if (!json_is_object(m) || !json_is_string(json_object_get(m, "role")))
            st = lt_fail(e->err, LT_ERR_ARG, "messages[%zu] is not an object with a string role", i);
        if (!st) st = flatten_content(e, m, i);
        if (st) break;
    }
    if (!st && json_is_array(tools) && json_array_size(tools)) {
        if (!json_array_size(msgs) || !is_role(json_array_get(msgs, 0), "system"))
            json_array_insert_new(msgs, 0, json_pack("{s:s, s:s}", "role", "system", "content", ""));
        json_object_set(json_array_get(msgs, 0), "tools", (json_t *)tools);
    }
    if (st) json_decref(msgs);
    else *out = msgs;
    return st;
}

static int any_tools(json_t *msgs) {
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
        if (truthy(json_object_get(m, "tools"))) return 1;
    return 0;
}

lt_status lt_chat_encode(const json_t *messages, const json_t *tools, const lt_chat_options *o, char **prompt,
                         size_t *len, lt_error *err) {
    enc e = {o, o->format == LT_CHAT_V41, 0, err};
    json_t *raw, *msgs;
    lt_status st = parse_effort(&e, o->reasoning_effort);
    if (st || (st = prepare(&e, messages, tools, &raw))) return st;
    msgs = merge_tool_messages(raw);
    json_decref(raw);
    if ((st = sort_tool_results_by_call_order(&e, msgs))) {
        json_decref(msgs);
        return st;
    }
    int drop = !o->keep_reasoning && !any_tools(msgs); /* tools anywhere keep all reasoning */
    if (o->thinking && drop) {
        json_t *kept = drop_thinking_messages(&e, msgs);
        json_decref(msgs);
        msgs = kept;
    }
    lt_strbuf b = {0};
    if (!o->no_bos) lt_strbuf_puts(&b, BOS);
    for (size_t i = 0; i < json_array_size(msgs) && !st; i++) st = render_message(&b, &e, msgs, i, drop);
    json_decref(msgs);
    if (!st && (b.oom || !b.s)) st = lt_fail(err, LT_ERR_NOMEM, "out of memory rendering the prompt");
    if (st) { lt_strbuf_free(&b); return st; }
    *prompt = b.s;
    *len = b.n;
    return LT_OK;
}

lt_status lt_chat_format_detect(const char *dir, const lt_tokenizer *tok, lt_chat_format *fmt, lt_error *err) {
    char path[4096];
    lt_status st = lt_path_join(path, sizeof path, dir, "config.json", err);
    if (st) return st;
    *fmt = tok && lt_tokenizer_token_id(tok, SYSTEM) >= 0 ? LT_CHAT_V41 : LT_CHAT_V4;
    if (!lt_file_exists(path)) return LT_OK;
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    if (!cfg) return lt_fail(err, LT_ERR_FORMAT, "%s:%d: %s", path, je.line, je.text);
    const char *mt = json_string_value(json_object_get(cfg, "model_type")); /* absent: keep the guess */
    if (mt && !strncmp(mt, "deepseek_v41", 12)) *fmt = LT_CHAT_V41;
    else if (mt && !strcmp(mt, "deepseek_v4")) *fmt = LT_CHAT_V4;
    else if (mt) st = lt_fail(err, LT_ERR_UNSUPPORTED, "%s: model_type '%s' has no known chat format (deepseek_v4, deepseek_v41)",
                      path, mt);
    json_decref(cfg);
    return st;
}

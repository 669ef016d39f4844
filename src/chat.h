/* Chat prompt encoding for DeepSeek V4 / V4-0731 (the official
 * encoding/encoding_dsv4.py) and V4.1 (its encoding/encoding.py), spec
 * v4-architecture.md 7.2-7.3 and tokenizer-and-chat.md section 6.
 *
 * Input is an OpenAI-style message array (jansson), the shape of the
 * official golden tests: {"role": "system"|"user"|"assistant"|"tool"|
 * "developer"|"latest_reminder", "content": string or [{"type":"text",...}],
 * "reasoning_content", "tool_calls": [{"id", "function": {"name",
 * "arguments": JSON string or object}}], "tool_call_id", "tools",
 * "response_format", "task", "wo_eos"}. Output is the prompt text, to be
 * tokenized with lt_tokenizer_encode(parse_special = 1).
 *
 * The format comes from the model (lt_chat_format_detect), never from a
 * user flag. Also holds lt_strbuf, the growable text buffer shared with the
 * DSML parser. */
#ifndef LT_CHAT_H
#define LT_CHAT_H

#include "lantern.h"
#include "tokenizer.h"

#include <jansson.h>
#include <stddef.h>

typedef enum {
    LT_CHAT_V4 = 0, /* V4-Flash / Pro / 0731: bare system text, <｜DSML｜tool_calls> */
    LT_CHAT_V41     /* V4.1: <｜System｜>, numeric reasoning effort, <｜DSML｜ calls> */
} lt_chat_format;

/* The format of a model folder: config.json model_type "deepseek_v41..." is
 * V4.1 and "deepseek_v4" V4 (any other model_type is LT_ERR_UNSUPPORTED);
 * without config.json or model_type (a tokenizer-only folder) it is V4.1
 * when tok (may be NULL) has the <｜System｜> token, else V4. */
lt_status lt_chat_format_detect(const char *dir, const lt_tokenizer *tok, lt_chat_format *fmt, lt_error *err);
const char *lt_chat_format_name(lt_chat_format f);

typedef struct {
    lt_chat_format format;
    int thinking;                 /* 1: thinking mode (prompt ends in <think>); 0: chat mode (</think>) */
    int keep_reasoning;           /* 1: keep reasoning of earlier turns (drop_thinking=False) */
    const char *reasoning_effort; /* NULL = default. V4: "high" (no-op), "max" (adds the
                                     maximum-effort paragraph), "low" (no-op, 0731). V4.1:
                                     "low" 50, "high" 75 (default), "max" 100, or "1".."100" */
    int no_bos;                   /* 1: continuing a context, no BOS */
} lt_chat_options;

/* Renders messages (a JSON array) into a malloc'd, NUL-terminated prompt.
 * tools, when a non-empty array, is attached to the leading system message
 * (one with empty content is inserted when the first message is not a
 * system message), as the official tests attach a request's tools. Bad
 * input (unknown role, a developer message in V4.1, malformed tool call,
 * bad effort) fails with LT_ERR_ARG naming the message index and field. */
lt_status lt_chat_encode(const json_t *messages, const json_t *tools, const lt_chat_options *o, char **prompt,
                         size_t *len, lt_error *err);

/* ---- growable text buffer ------------------------------------------------ */

/* Zero-initialise; appends never fail loudly but set oom, which the owner
 * checks once at the end. s is always NUL-terminated when non-NULL. */
typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} lt_strbuf;

void lt_strbuf_add(lt_strbuf *b, const char *s, size_t n);
void lt_strbuf_puts(lt_strbuf *b, const char *s);
void lt_strbuf_free(lt_strbuf *b);

#endif

/* Parsing of model output (a completion after the chat prompt) into
 * reasoning, answer text and DSML tool calls, incrementally: text arrives
 * in chunks of any size (streamed tokens) and every chunk yields what has
 * become final. Grammar (tokenizer-and-chat.md section 6 rule 10, spec 7.2):
 *
 *   [reasoning "</think>"] content ["\n\n" <DSML calls block>] ["<｜end▁of▁sentence｜>"]
 *   block  = "<｜DSML｜tool_calls>" { invoke } "</｜DSML｜tool_calls>"
 *   invoke = "<｜DSML｜invoke name=\"N\">" { param } "</｜DSML｜invoke>"
 *   param  = "<｜DSML｜parameter name=\"K\" string=\"true|false\">V</｜DSML｜parameter>"
 *
 * (V4.1 spells the tags "｜DSML｜ calls", "｜DSML｜ invoke", "｜DSML｜ parameter".)
 * string="true" values are kept as raw strings; others are parsed as JSON.
 * Whitespace between elements is accepted. Malformed markup never fails the
 * parse: its raw text is returned as content and a warning is set; a block
 * cut off by the end of the stream is returned the same way by finish. */
#ifndef LT_DSML_H
#define LT_DSML_H

#include "chat.h"

#include <jansson.h>

typedef struct lt_dsml lt_dsml;

/* What a feed or finish made final; it accumulates over calls until the
 * caller frees it (zero-initialise first). */
typedef struct {
    lt_strbuf reasoning; /* reasoning text (thinking mode) */
    lt_strbuf content;   /* answer text */
    json_t *calls;       /* [{"name": "f", "arguments": {...}}], NULL until a call completes */
    char warning[256];   /* non-empty once malformed or truncated markup went to content */
    int done;            /* the end-of-sentence text was seen; later input is ignored */
} lt_dsml_delta;

void lt_dsml_delta_free(lt_dsml_delta *d);

/* thinking: the prompt ended in <think>, so output starts with reasoning. */
lt_status lt_dsml_create(lt_dsml **out, lt_chat_format fmt, int thinking, lt_error *err);
void lt_dsml_free(lt_dsml *p);

/* Feeds len bytes of output text. Text that may still turn out to be the
 * start of a marker is held back until the next feed or finish. Fails only
 * when memory runs out. */
lt_status lt_dsml_feed(lt_dsml *p, const char *text, size_t len, lt_dsml_delta *d, lt_error *err);

/* Ends the stream: held-back text is released (a truncated tool-call block
 * as content, with a warning). */
lt_status lt_dsml_finish(lt_dsml *p, lt_dsml_delta *d, lt_error *err);

#endif

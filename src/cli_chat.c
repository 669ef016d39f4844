/* `lantern chat`: a conversation, one line of stdin per user turn.
 *
 * The conversation is kept as chat messages (a jansson array) and rendered
 * whole by the model's own chat encoder every turn; the context keeps its
 * cache when the new prompt extends the tokens it holds (lt_gen_prefill), so
 * a turn usually evaluates only the new messages. The answer streams through
 * the DSML parser, which splits reasoning (shown dimmed on a terminal,
 * after "Thinking: " otherwise) from the answer text and tool calls.
 *
 * Ctrl-C while an answer is being made stops it and keeps the partial answer
 * as the assistant turn; Ctrl-C at the prompt drops the typed line, and a
 * second one in a row leaves. Conventions of src/cli.h: exit 0 ok, 1 runtime
 * failure before the conversation starts, 2 usage. */
#include "chat.h"
#include "cli.h"
#include "dsml.h"
#include "generate.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHAT_CTX 4096 /* default context, tokens (capped by the model's maximum) */

static const char chat_usage[] =
    "usage: lantern chat [-m DIR] [options]\n"
    "  A conversation: type a message and press Enter; the answer streams to stdout,\n"
    "  its speeds to stderr. Ctrl-C stops an answer; Ctrl-C twice at the prompt or\n"
    "  /quit (or end of input) leaves.\n"
    "  --think / --nothink  thinking mode (reasoning before the answer) or chat mode (default)\n"
    "  --effort E          reasoning effort: low, high, max (V4.1 also 1..100)\n"
    "  --system TEXT       a system message opening the conversation\n"
    "  -n N                tokens per answer at most (default 1024)\n"
    LT_GEN_MODEL_USAGE
    LT_GEN_NUMERICS_USAGE
    "  --ctx N             context size in tokens (default 4096, at most the model's)\n"
    LT_GEN_SAMPLE_USAGE
    "Commands: /help, /reset, /think, /nothink, /effort E, /quit.\n"
    "Exit status: 0 ok, 1 runtime failure, 2 usage error.\n";

static const char chat_commands[] =
    "  /reset      start a new conversation (the system message stays)\n"
    "  /think      thinking mode: the model reasons before answering\n"
    "  /nothink    chat mode: the model answers directly\n"
    "  /effort E   reasoning effort: low, high, max (V4.1 also 1..100)\n"
    "  /quit       leave (so does end of input, or Ctrl-C twice at the prompt)\n";

typedef struct {
    lt_gen_options g;
    int thinking;
    const char *effort, *system;
} chat_options;

/* Set by SIGINT. A signal handler can only reach file-scope state. */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

/* -1 to go on, else the exit code */
static int parse_chat_args(int argc, char **argv, chat_options *o) {
    *o = (chat_options){0};
    lt_gen_options_init(&o->g, "chat", 1024);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(chat_usage, stdout);
            return 0;
        }
        int r = -1;
        if (!strcmp(a, "--think") || !strcmp(a, "--nothink")) r = 1, o->thinking = !strcmp(a, "--think");
        else if (!strcmp(a, "--effort")) r = (o->effort = lt_cli_value("chat", argc, argv, &i)) != NULL;
        else if (!strcmp(a, "--system")) r = (o->system = lt_cli_value("chat", argc, argv, &i)) != NULL;
        if (r < 0) r = lt_gen_model_flag(argc, argv, &i, &o->g);
        if (r < 0) r = lt_gen_sample_flag(argc, argv, &i, &o->g);
        if (r == 0) return 2;
        if (r < 0) {
            fprintf(stderr, "lantern chat: unknown option '%s' (see lantern chat --help)\n", a);
            return 2;
        }
    }
    return -1;
}

typedef struct {
    chat_options *o;
    lt_gen g;
    lt_chat_options co;
    char effort[16];      /* backing store of co.reasoning_effort */
    json_t *msgs;         /* the conversation */
    int tty_out;
} session;

/* effort is one the chat format knows (checked by rendering nothing with it) */
static lt_status check_effort(const session *s, const char *effort, lt_error *err) {
    lt_chat_options co = s->co;
    co.thinking = 1;
    co.reasoning_effort = effort;
    json_t *none = json_array();
    char *text = NULL;
    size_t len;
    lt_status st = none ? lt_chat_encode(none, NULL, &co, &text, &len, err) : LT_ERR_NOMEM;
    free(text);
    json_decref(none);
    return st;
}

static lt_status set_effort(session *s, const char *effort, lt_error *err) {
    if (strlen(effort) >= sizeof s->effort) return lt_fail(err, LT_ERR_ARG, "reasoning effort '%s' is too long", effort);
    lt_status st = check_effort(s, effort, err);
    if (st != LT_OK) return st;
    strcpy(s->effort, effort);
    s->co.reasoning_effort = s->effort;
    return LT_OK;
}

/* the messages a new conversation starts with */
static lt_status new_conversation(session *s, lt_error *err) {
    json_decref(s->msgs);
    s->msgs = json_array();
    if (s->msgs && s->o->system &&
        json_array_append_new(s->msgs, json_pack("{s:s, s:s}", "role", "system", "content", s->o->system)))
        return lt_fail(err, LT_ERR_NOMEM, "out of memory for the system message");
    return s->msgs ? LT_OK : lt_fail(err, LT_ERR_NOMEM, "out of memory for the conversation");
}

/* -1 to go on, else the exit code */
static int start(session *s, lt_error *err) {
    chat_options *o = s->o;
    lt_status st = lt_gen_resolve_dir(&o->g, err);
    if (st == LT_OK) st = lt_gen_open(&s->g, &o->g, err);
    if (st == LT_OK) st = lt_chat_format_detect(o->g.dir, s->g.tok, &s->co.format, err);
    if (st != LT_OK) return 1;
    s->co.thinking = o->thinking;
    if (o->effort && set_effort(s, o->effort, err) != LT_OK) return 2;
    int64_t n_ctx = o->g.ctx ? o->g.ctx : LT_MIN_I64(CHAT_CTX, lt_model_config(s->g.m)->max_position_embeddings);
    st = lt_gen_start(&s->g, &o->g, n_ctx, err);
    if (st == LT_OK) st = new_conversation(s, err);
    s->tty_out = isatty(STDOUT_FILENO);
    return st == LT_OK ? -1 : 1;
}

/* ---- one answer, streamed ----------------------------------------------- */

typedef struct {
    lt_dsml *p;
    lt_dsml_delta d;
    size_t shown_reasoning, shown_content, shown_calls;
    int phase;            /* 0 nothing shown, 1 reasoning shown, 2 answer */
    int tty;
    lt_status st;         /* the first parser failure */
    lt_error *err;
} answer;

/* ends the dimmed reasoning; a blank line parts it from the answer text */
static void end_reasoning(answer *a, int blank_line) {
    if (a->phase == 1) fputs(a->tty ? "\033[0m" : "", stdout);
    if (a->phase == 1 && blank_line) fputs("\n\n", stdout);
    a->phase = 2;
}

/* prints what the parser made final since the last call */
static void show(answer *a) {
    if (a->d.reasoning.n > a->shown_reasoning && a->phase < 2) {
        if (a->phase == 0) fputs(a->tty ? "\033[2m" : "Thinking: ", stdout);
        a->phase = 1;
        fwrite(a->d.reasoning.s + a->shown_reasoning, 1, a->d.reasoning.n - a->shown_reasoning, stdout);
        a->shown_reasoning = a->d.reasoning.n;
    }
    if (a->d.content.n > a->shown_content) {
        end_reasoning(a, 1);
        fwrite(a->d.content.s + a->shown_content, 1, a->d.content.n - a->shown_content, stdout);
        a->shown_content = a->d.content.n;
    }
    for (; a->shown_calls < json_array_size(a->d.calls); a->shown_calls++) {
        end_reasoning(a, 1);
        char *call = json_dumps(json_array_get(a->d.calls, a->shown_calls), JSON_COMPACT);
        printf("\n[tool call] %s\n", call ? call : "?");
        free(call);
    }
    fflush(stdout);
}

static void on_text(void *ud, const char *text, size_t len) {
    answer *a = ud;
    if (a->st == LT_OK && len) a->st = lt_dsml_feed(a->p, text, len, &a->d, a->err);
    show(a);
}

/* the assistant message of an answer: content, reasoning, tool calls in the
 * shape the chat encoder takes ({"type", "function": {"name", "arguments"}}) */
static json_t *assistant_message(const answer *a) {
    json_t *m = json_pack("{s:s, s:s, s:s}", "role", "assistant", "content", a->d.content.s ? a->d.content.s : "",
                          "reasoning_content", a->d.reasoning.s ? a->d.reasoning.s : "");
    json_t *calls = json_array(), *call;
    size_t i;
    json_array_foreach(a->d.calls, i, call)
        json_array_append_new(calls, json_pack("{s:s, s:O}", "type", "function", "function", call));
    if (m && json_array_size(calls)) json_object_set(m, "tool_calls", calls);
    json_decref(calls);
    return m;
}

static lt_status answer_turn(session *s, lt_error *err) {
    answer a = {.tty = s->tty_out, .err = err};
    lt_status st = lt_dsml_create(&a.p, s->co.format, s->co.thinking, err);
    if (st == LT_OK) st = lt_gen_generate(&s->g, s->o->g.n_predict, &interrupted, on_text, &a, err);
    if (st == LT_OK && a.st == LT_OK) a.st = lt_dsml_finish(a.p, &a.d, err);
    show(&a);
    end_reasoning(&a, 0);
    putchar('\n');
    fflush(stdout);
    if (st == LT_OK) st = a.st;
    if (st == LT_OK && a.d.warning[0]) fprintf(stderr, "lantern chat: warning: %s\n", a.d.warning);
    if (st == LT_OK && json_array_append_new(s->msgs, assistant_message(&a)))
        st = lt_fail(err, LT_ERR_NOMEM, "out of memory for the answer");
    lt_dsml_delta_free(&a.d);
    lt_dsml_free(a.p);
    return st;
}

/* The text of the tokens the context holds as it was shown: through the
 * streaming detokenizer, so bytes that are not UTF-8 read as U+FFFD the way
 * they reached the screen and the assistant message. */
static lt_status held_text(const lt_gen *g, lt_strbuf *b, lt_error *err) {
    lt_detok d;
    lt_detok_init(&d);
    size_t len;
    for (size_t i = 0; i < g->seq.n; i++) {
        const char *t = lt_detok_push(&d, g->tok, g->seq.ids[i], 0, &len, err);
        if (!t) return LT_ERR_ARG;
        lt_strbuf_add(b, t, len);
    }
    const char *t = lt_detok_flush(&d, &len);
    lt_strbuf_add(b, t, len);
    return b->oom ? lt_fail(err, LT_ERR_NOMEM, "out of memory for the conversation text") : LT_OK;
}

/* The conversation's ids. When its text extends the text the context holds
 * (the usual case: the last answer, then the new user turn), the context's
 * own tokens are kept and only the rest is tokenized, so the cache serves
 * the next turn even where the model's tokens for its answer are not the
 * ones the tokenizer would pick; otherwise the whole text is tokenized. The
 * cut must not fall inside a UTF-8 character. */
static lt_status conversation_ids(session *s, lt_token_vec *ids, lt_error *err) {
    char *text = NULL;
    size_t len = 0, keep = 0;
    lt_strbuf held = {0};
    lt_status st = lt_chat_encode(s->msgs, NULL, &s->co, &text, &len, err);
    if (st == LT_OK) st = held_text(&s->g, &held, err);
    if (st == LT_OK && held.n && held.n < len && !memcmp(text, held.s, held.n) &&
        ((unsigned char)text[held.n] & 0xC0) != 0x80)
        keep = held.n;
    for (size_t i = 0; st == LT_OK && keep && i < s->g.seq.n; i++) st = lt_token_vec_push(ids, s->g.seq.ids[i], err);
    if (st == LT_OK) st = lt_tokenizer_encode(s->g.tok, text + keep, len - keep, 1, ids, err);
    lt_strbuf_free(&held);
    free(text);
    return st;
}

/* One user line and its answer. When no answer comes (an error, or Ctrl-C
 * before the first token), the user message is taken back. */
static lt_status turn(session *s, const char *line, lt_error *err) {
    if (json_array_append_new(s->msgs, json_pack("{s:s, s:s}", "role", "user", "content", line)))
        return lt_fail(err, LT_ERR_NOMEM, "out of memory for the message");
    lt_token_vec ids = {0};
    lt_status st = conversation_ids(s, &ids, err);
    int64_t n_ctx = s->g.ctx->n_ctx;
    if (st == LT_OK && (int64_t)ids.n >= n_ctx)
        st = lt_fail(err, LT_ERR_ARG, "the conversation is %zu tokens and no longer fits --ctx %lld; /reset starts "
                     "a new one", ids.n, (long long)n_ctx);
    interrupted = 0;
    if (st == LT_OK) st = lt_gen_prefill(&s->g, ids.ids, ids.n, &interrupted, err);
    lt_token_vec_free(&ids);
    if (st == LT_OK && !s->g.interrupted) {
        st = answer_turn(s, err);
        if (s->g.interrupted) fputs("[interrupted]\n", stderr);
        if (st == LT_OK) lt_gen_print_stats(&s->g, "chat");
        return st;
    }
    json_array_remove(s->msgs, json_array_size(s->msgs) - 1);
    if (st == LT_OK) fputs("[interrupted]\n", stderr);
    return st;
}

/* ---- the prompt loop ---------------------------------------------------- */

/* a /command: 1 to go on, 0 to leave */
static int command(session *s, char *line) {
    char *arg = line + strcspn(line, " \t");
    if (*arg) *arg++ = 0;
    arg += strspn(arg, " \t");
    lt_error err = {0};
    if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) return 0;
    if (!strcmp(line, "/help")) fputs(chat_commands, stdout);
    else if (!strcmp(line, "/think") || !strcmp(line, "/nothink")) {
        s->co.thinking = !strcmp(line, "/think");
        printf("(%s mode)\n", s->co.thinking ? "thinking" : "chat");
    } else if (!strcmp(line, "/reset")) {
        if (new_conversation(s, &err) == LT_OK) printf("(new conversation)\n");
        else fprintf(stderr, "lantern chat: %s\n", err.msg);
    } else if (!strcmp(line, "/effort")) {
        if (!*arg) fprintf(stderr, "lantern chat: /effort needs a value (low, high, max)\n");
        else if (set_effort(s, arg, &err) != LT_OK) fprintf(stderr, "lantern chat: %s\n", err.msg);
        else printf("(reasoning effort %s)\n", s->effort);
    } else {
        fprintf(stderr, "lantern chat: unknown command '%s' (/help lists them)\n", line);
    }
    fflush(stdout);
    return 1;
}

/* Waits until the terminal has a line, with SIGINT blocked except inside
 * ppoll, so a Ctrl-C that comes before the wait is seen, not lost: 1 when
 * input is ready, 0 on Ctrl-C. */
static int wait_for_line(void) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    int ready = 0;
    while (!interrupted && !ready) {
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        int r = ppoll(&p, 1, NULL, &old);
        ready = r > 0 || (r < 0 && errno != EINTR); /* a poll failure is for getline to report */
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return !interrupted;
}

static void repl(session *s) {
    char *line = NULL;
    size_t cap = 0;
    int tty_in = isatty(STDIN_FILENO), ctrl_c = 0;
    for (;;) {
        interrupted = 0;
        if (tty_in) fputs("> ", stdout);
        fflush(stdout);
        ssize_t n = -1;
        int ctrl = tty_in && !wait_for_line();
        if (!ctrl) {
            errno = 0;
            n = getline(&line, &cap, stdin);
            ctrl = n < 0 && errno == EINTR && interrupted;
        }
        if (ctrl) { /* Ctrl-C at the prompt: the terminal dropped the line */
            clearerr(stdin);
            if (ctrl_c++) break;
            fputs("\n(Ctrl-C again or /quit to leave)\n", stdout);
            continue;
        }
        if (n < 0) break;
        ctrl_c = 0;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (!n) continue;
        if (line[0] == '/') {
            if (!command(s, line)) break;
            continue;
        }
        lt_error err = {0};
        lt_status st = turn(s, line, &err);
        if (st != LT_OK) fprintf(stderr, "lantern chat: %s: %s\n", lt_status_name(st), err.msg);
    }
    if (tty_in) putchar('\n');
    free(line);
}

int lt_cli_chat(int argc, char **argv) {
    chat_options o;
    int rc = parse_chat_args(argc, argv, &o);
    if (rc >= 0) return rc;
    session s = {.o = &o};
    lt_error err = {0};
    rc = start(&s, &err);
    if (rc >= 0) {
        fprintf(stderr, "lantern chat: %s\n", err.msg);
    } else {
        struct sigaction sa = {.sa_handler = on_sigint}, old;
        sigemptyset(&sa.sa_mask); /* no SA_RESTART: Ctrl-C must end a blocked read */
        sigaction(SIGINT, &sa, &old);
        repl(&s);
        sigaction(SIGINT, &old, NULL);
        rc = 0;
    }
    json_decref(s.msgs);
    lt_gen_close(&s.g);
    return rc;
}

/* `lantern tokenize` and `lantern detokenize`: text <-> token ids with the
 * tokenizer of a model folder (or of a folder holding only tokenizer.json,
 * or of a tokenizer.json file). Conventions of src/cli.h: exit 0 ok, 1 bad
 * input or unreadable tokenizer, 2 usage error. */
#include "cli.h"
#include "tokenizer.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char tokenize_usage[] =
    "usage: lantern tokenize -m DIR [--json] [--no-special] [TEXT]\n"
    "       lantern tokenize -m DIR --jsonl < strings.jsonl\n"
    "  Prints the token ids of TEXT (or of all of stdin when TEXT is absent),\n"
    "  space-separated on one line.\n"
    "  -m DIR        model folder, folder with tokenizer.json, or a tokenizer.json file\n"
    "  --json        print the ids as one JSON array\n"
    "  --jsonl       read one JSON string per stdin line, print one JSON array of ids per line\n"
    "  --no-special  treat added tokens written in the text (\"<｜User｜>\") as plain text\n"
    "Exit status: 0 ok, 1 bad input or tokenizer, 2 usage error.\n";

static const char detokenize_usage[] =
    "usage: lantern detokenize -m DIR [--skip-special] [ID...]\n"
    "  Prints the text of the ids given as arguments, or read from stdin (numbers\n"
    "  separated by spaces, commas or newlines; a JSON array works too), then a newline.\n"
    "  Bytes that do not form valid UTF-8 are printed as U+FFFD.\n"
    "  -m DIR          model folder, folder with tokenizer.json, or a tokenizer.json file\n"
    "  --skip-special  leave out special tokens (BOS, EOS, placeholders)\n"
    "Exit status: 0 ok, 1 bad id or tokenizer, 2 usage error.\n";

typedef struct {
    const char *cmd, *usage, *dir;
    int json, jsonl, no_special, skip_special;
    char **rest; /* positional arguments */
    int n_rest;
} options;

/* Returns -1 to go on, else the exit code. Flags a command does not know
 * are errors: each command passes the ones it accepts. */
static int parse_args(int argc, char **argv, options *o, const char *const *flags, int *const *vals) {
    o->rest = calloc((size_t)argc, sizeof *o->rest);
    if (!o->rest) { fprintf(stderr, "lantern %s: out of memory\n", o->cmd); return 1; }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int k = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(o->usage, stdout); return 0; }
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (i + 1 == argc) { fprintf(stderr, "lantern %s: %s needs a folder\n%s", o->cmd, a, o->usage); return 2; }
            o->dir = argv[++i];
            continue;
        }
        while (flags[k] && strcmp(a, flags[k])) k++;
        if (flags[k]) *vals[k] = 1;
        else if (a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9')) {
            fprintf(stderr, "lantern %s: unknown option '%s'\n%s", o->cmd, a, o->usage);
            return 2;
        } else o->rest[o->n_rest++] = argv[i];
    }
    if (!o->dir) { fprintf(stderr, "lantern %s: -m DIR is missing\n%s", o->cmd, o->usage); return 2; }
    return -1;
}

static lt_tokenizer *open_tokenizer(const options *o) {
    lt_tokenizer *t;
    lt_error err;
    if (lt_tokenizer_load(&t, o->dir, &err) == LT_OK) return t;
    fprintf(stderr, "lantern %s: %s\n", o->cmd, err.msg);
    return NULL;
}

/* Reads all of f; NULL (with a message) on failure. */
static char *read_all(FILE *f, size_t *len, const char *cmd) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *b = realloc(buf, cap *= 2);
        if (!b) free(buf);
        buf = b;
    }
    if (!buf || ferror(f)) {
        fprintf(stderr, "lantern %s: cannot read stdin\n", cmd);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static void print_ids(const lt_token_vec *v, int json) {
    if (json) putchar('[');
    for (size_t i = 0; i < v->n; i++) printf(i ? (json ? ", %d" : " %d") : "%d", v->ids[i]);
    puts(json ? "]" : "");
}

/* --jsonl: one JSON string per line in, one JSON array per line out. */
static int tokenize_jsonl(lt_tokenizer *t, const options *o) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    for (long no = 1; (n = getline(&line, &cap, stdin)) >= 0 && !rc; no++) {
        json_error_t je;
        json_t *s = json_loadb(line, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        lt_token_vec v = {0};
        lt_error err;
        if (!json_is_string(s)) {
            fprintf(stderr, "lantern tokenize: stdin line %ld is not a JSON string%s%s\n", no, s ? "" : ": ",
                    s ? "" : je.text);
            rc = 1;
        } else if (lt_tokenizer_encode(t, json_string_value(s), json_string_length(s), !o->no_special, &v, &err)) {
            fprintf(stderr, "lantern tokenize: stdin line %ld: %s\n", no, err.msg);
            rc = 1;
        } else {
            print_ids(&v, 1);
        }
        lt_token_vec_free(&v);
        json_decref(s);
    }
    free(line);
    return rc;
}

static int tokenize_text(lt_tokenizer *t, const options *o) {
    size_t len;
    char *text = o->n_rest ? strdup(o->rest[0]) : read_all(stdin, &len, o->cmd);
    if (!text) return 1;
    if (o->n_rest) len = strlen(text);
    lt_token_vec v = {0};
    lt_error err;
    int rc = 0;
    if (lt_tokenizer_encode(t, text, len, !o->no_special, &v, &err) != LT_OK) {
        fprintf(stderr, "lantern tokenize: %s\n", err.msg);
        rc = 1;
    } else {
        print_ids(&v, o->json);
    }
    lt_token_vec_free(&v);
    free(text);
    return rc;
}

int lt_cli_tokenize(int argc, char **argv) {
    options o = {.cmd = "tokenize", .usage = tokenize_usage};
    const char *const flags[] = {"--json", "--jsonl", "--no-special", NULL};
    int *const vals[] = {&o.json, &o.jsonl, &o.no_special};
    int rc = parse_args(argc, argv, &o, flags, vals);
    if (rc < 0 && (o.n_rest > 1 || (o.jsonl && o.n_rest))) {
        fprintf(stderr, "lantern tokenize: give one TEXT (quote it), or none to read stdin%s\n%s",
                o.jsonl ? "; --jsonl reads stdin only" : "", tokenize_usage);
        rc = 2;
    }
    if (rc < 0) {
        lt_tokenizer *t = open_tokenizer(&o);
        rc = !t ? 1 : o.jsonl ? tokenize_jsonl(t, &o) : tokenize_text(t, &o);
        lt_tokenizer_free(t);
    }
    free(o.rest);
    return rc;
}

/* A token id: a decimal integer in [0, INT32_MAX]. */
static int parse_id(const char *s, size_t n, int32_t *id) {
    char buf[24];
    if (!n || n >= sizeof buf) return 0;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end || v < 0 || v > INT32_MAX) return 0;
    *id = (int32_t)v;
    return 1;
}

/* Ids from the arguments, or from stdin split at spaces, commas, brackets.
 * Returns 0, or 1 after printing why. */
static int collect_ids(const options *o, lt_token_vec *v) {
    size_t len = 0;
    char *in = o->n_rest ? NULL : read_all(stdin, &len, o->cmd);
    if (!o->n_rest && !in) return 1;
    int rc = 0;
    for (int i = 0; i < o->n_rest && !rc; i++) {
        int32_t id;
        if (!parse_id(o->rest[i], strlen(o->rest[i]), &id)) {
            fprintf(stderr, "lantern detokenize: '%s' is not a token id (an integer >= 0)\n", o->rest[i]);
            rc = 1;
        } else if (lt_token_vec_push(v, id, NULL)) {
            rc = 1;
        }
    }
    for (size_t at = 0; in && at < len && !rc;) {
        size_t k = strspn(in + at, " \t\r\n,[]");
        size_t w = strcspn(in + at + k, " \t\r\n,[]");
        int32_t id;
        if (w && !parse_id(in + at + k, w, &id)) {
            fprintf(stderr, "lantern detokenize: '%.*s' on stdin is not a token id\n", (int)LT_MIN(w, 40), in + at + k);
            rc = 1;
        } else if (w && lt_token_vec_push(v, id, NULL)) {
            rc = 1;
        }
        at += k + w;
    }
    free(in);
    return rc;
}

/* Streams the text through lt_detok, so bytes that are not valid UTF-8 come
 * out as U+FFFD, as HF's decode writes them. */
static int print_text(const lt_tokenizer *t, const lt_token_vec *v, int skip_special) {
    lt_detok d;
    size_t len;
    for (size_t i = 0; i < v->n; i++) /* all ids checked before any output */
        if (!lt_tokenizer_token_bytes(t, v->ids[i], &len)) {
            fprintf(stderr, "lantern detokenize: token id %d is not in the vocabulary [0, %d)\n", v->ids[i],
                    lt_tokenizer_vocab_size(t));
            return 1;
        }
    lt_detok_init(&d);
    for (size_t i = 0; i < v->n; i++) {
        const char *s = lt_detok_push(&d, t, v->ids[i], skip_special, &len, NULL);
        fwrite(s, 1, len, stdout);
    }
    const char *s = lt_detok_flush(&d, &len);
    fwrite(s, 1, len, stdout);
    putchar('\n');
    return 0;
}

int lt_cli_detokenize(int argc, char **argv) {
    options o = {.cmd = "detokenize", .usage = detokenize_usage};
    const char *const flags[] = {"--skip-special", NULL};
    int *const vals[] = {&o.skip_special};
    int rc = parse_args(argc, argv, &o, flags, vals);
    lt_token_vec v = {0};
    if (rc < 0 && collect_ids(&o, &v)) rc = 1;
    if (rc < 0) {
        lt_tokenizer *t = open_tokenizer(&o);
        rc = t ? print_text(t, &v, o.skip_special) : 1;
        lt_tokenizer_free(t);
    }
    lt_token_vec_free(&v);
    free(o.rest);
    return rc;
}

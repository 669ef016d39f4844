/* lantern: command-line entry point. Dispatches to a subcommand (src/cli_*.c). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"inspect", lt_cli_inspect, "describe a model folder: architecture, layer schedule, tensors, bytes"},
    {"tokenize", lt_cli_tokenize, "print the token ids of a text (or of JSON strings, one per line)"},
    {"detokenize", lt_cli_detokenize, "print the text of token ids"},
    {"run", lt_cli_run, "generate a continuation of a prompt, streamed (chat-formatted unless --raw)"},
    {"chat", lt_cli_chat, "a conversation on the terminal, one line per turn, answers streamed"},
    {"perplexity", lt_cli_perplexity, "cross-entropy and perplexity of a text file, in windows of --ctx tokens"},
    {"compare", lt_cli_compare, "per-layer comparison with an oracle file; names the first block out of tolerance"},
    {"engram", lt_cli_engram, "V4.1 Engram inspector: per token n-grams, table rows hit and gates of a prompt"},
    {"bench", lt_cli_bench, "speed of decode, prefill and long context against this machine's limits"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: lantern <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'lantern <command> --help' describes a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "lantern: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

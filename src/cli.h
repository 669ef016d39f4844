/* Subcommands of the lantern binary. Each returns the process exit code
 * (0 success, 1 runtime failure, 2 usage error) and prints its own errors;
 * argv[0] is the subcommand name. Only main() exits. */
#ifndef LT_CLI_H
#define LT_CLI_H

int lt_cli_inspect(int argc, char **argv);
int lt_cli_tokenize(int argc, char **argv);
int lt_cli_detokenize(int argc, char **argv);
int lt_cli_run(int argc, char **argv);
int lt_cli_chat(int argc, char **argv);
int lt_cli_bench(int argc, char **argv);
int lt_cli_perplexity(int argc, char **argv);
int lt_cli_compare(int argc, char **argv);
int lt_cli_engram(int argc, char **argv);

/* Shared flag parsing helpers: parse a number or report "--flag: bad value". */
int lt_cli_int(const char *flag, const char *val, long lo, long hi, long *out);
int lt_cli_double(const char *flag, const char *val, double lo, double hi, double *out);

/* The value of the flag at argv[*i], advancing *i past it, or NULL after
 * "lantern CMD: FLAG needs a value". */
const char *lt_cli_value(const char *cmd, int argc, char **argv, int *i);

#endif

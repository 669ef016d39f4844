/* Running a subcommand (src/cli.h) in process with its stdout and stderr
 * sent to files, for the CLI tests. */
#ifndef LT_TEST_CLI_CAPTURE_H
#define LT_TEST_CLI_CAPTURE_H

#include <stddef.h>

/* Runs fn(argc, argv) with stdout and stderr going to fresh files under the
 * test temp directory, named after tag (tag.out, tag.err); returns its exit
 * code. argv must be NULL-terminated; argc is counted. */
int lt_test_cli(const char *tag, int (*fn)(int, char **), char **argv);

/* The captured stdout / stderr of the last lt_test_cli with this tag, NUL-
 * terminated (malloc'd; free it), or NULL. */
char *lt_test_cli_out(const char *tag);
char *lt_test_cli_err(const char *tag);

#endif

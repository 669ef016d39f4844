/* `lantern compare` in process on both fixtures: EXACT numerics are within
 * the default tolerance (exit 0); a tolerance below what fp32 reaches, or
 * REFERENCE numerics against the fp32 oracle, name the first block out of
 * tolerance and exit 1. */
#include "test.h"

#include "cli.h"
#include "cli_capture.h"

#include <stdlib.h>
#include <string.h>

static void check_within(const char *name) {
    char dir[128], oracle[160];
    snprintf(dir, sizeof dir, "tests/fixtures/%s", name);
    snprintf(oracle, sizeof oracle, "%s/oracle.safetensors", dir);
    char *argv[] = {"compare", "-m", dir, oracle, NULL};
    CHECKF(lt_test_cli("compare", lt_cli_compare, argv) == 0, "%s", name);
    char *out = lt_test_cli_out("compare");
    CHECKF(out && strstr(out, "block  0") && strstr(out, "(MTP)") && strstr(out, "every block within 0.0001") &&
           strstr(out, "routing: 0/"), "%s: %s", name, out ? out : "(none)");
    free(out);
}

LT_TEST(cli_compare, flash_tiny_exact_is_within_tolerance) { check_within("v4-flash-tiny"); }
LT_TEST(cli_compare, pro_tiny_exact_is_within_tolerance) { check_within("v4-pro-tiny"); }

LT_TEST(cli_compare, names_the_first_block_out_of_tolerance) {
    char *tight[] = {"compare", "-m", "tests/fixtures/v4-flash-tiny", "tests/fixtures/v4-flash-tiny/oracle.safetensors",
                     "--tol", "1e-9", NULL};
    CHECK(lt_test_cli("compare_bad", lt_cli_compare, tight) == 1);
    char *out = lt_test_cli_out("compare_bad"), *log = lt_test_cli_err("compare_bad");
    CHECKF(out && strstr(out, "block  0       residual") && strstr(out, "<- first block out of tolerance"), "%s",
           out ? out : "(none)");
    CHECKF(log && strstr(log, "block 0 is the first out of tolerance"), "stderr: %s", log ? log : "(none)");
    free(out);
    free(log);
    char *reference[] = {"compare", "-m", "tests/fixtures/v4-pro-tiny", "tests/fixtures/v4-pro-tiny/oracle.safetensors",
                         "--numerics", "reference", NULL};
    CHECK(lt_test_cli("compare_bad", lt_cli_compare, reference) == 1);
    log = lt_test_cli_err("compare_bad");
    CHECKF(log && strstr(log, "is the first out of tolerance"), "stderr: %s", log ? log : "(none)");
    free(log);
}

LT_TEST(cli_compare, usage_and_runtime_errors) {
    char *no_oracle[] = {"compare", "-m", "tests/fixtures/v4-flash-tiny", NULL};
    char *ctx[] = {"compare", "-m", "tests/fixtures/v4-flash-tiny", "o.safetensors", "--ctx", "8", NULL};
    char *missing[] = {"compare", "-m", "tests/fixtures/v4-flash-tiny", "tests/fixtures/none.safetensors", NULL};
    CHECK(lt_test_cli("compare_err", lt_cli_compare, no_oracle) == 2);
    CHECK(lt_test_cli("compare_err", lt_cli_compare, ctx) == 2);
    CHECK(lt_test_cli("compare_err", lt_cli_compare, missing) == 1);
    char *log = lt_test_cli_err("compare_err");
    CHECKF(log && strstr(log, "none.safetensors"), "stderr: %s", log ? log : "(none)");
    free(log);
}

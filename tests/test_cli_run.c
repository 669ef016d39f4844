/* `lantern run` end to end, in process: the raw greedy completion of the
 * fixture's greedy_prompt_text prints exactly the text of the oracle's
 * greedy_tokens, and bad flags are usage errors. EXACT numerics: on these
 * random-weight fixtures REFERENCE rounding changes the argmax (see
 * test_forward.c check_reference_top1). */
#include "test.h"

#include "cli.h"
#include "cli_capture.h"
#include "generate.h"
#include "safetensors.h"
#include "tokenizer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* the text the streaming detokenizer gives for the first n oracle tokens */
static size_t expected_text(const lt_tokenizer *tok, const int64_t *ids, int n, char *out) {
    lt_detok d;
    lt_detok_init(&d);
    size_t at = 0, len;
    for (int i = 0; i < n; i++) {
        const char *s = lt_detok_push(&d, tok, (int32_t)ids[i], 0, &len, NULL);
        if (!s) return 0;
        memcpy(out + at, s, len);
        at += len;
    }
    const char *s = lt_detok_flush(&d, &len);
    memcpy(out + at, s, len);
    return at + len;
}

LT_TEST(cli_run, raw_greedy_prints_the_oracle_tokens) {
    const char *dir = "tests/fixtures/v4-flash-tiny";
    lt_store oracle;
    lt_error err = {0};
    if (lt_store_open_file(&oracle, "tests/fixtures/v4-flash-tiny/oracle.safetensors", &err) != LT_OK) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    json_t *meta = oracle.meta_json ? json_loads(oracle.meta_json, 0, NULL) : NULL;
    const char *prompt = json_string_value(json_object_get(meta, "greedy_prompt_text"));
    const lt_tensor *g = lt_store_find(&oracle, "greedy_tokens");
    lt_tokenizer *tok = NULL;
    CHECK(prompt && g && g->shape[0] >= 32);
    CHECKF(lt_tokenizer_load(&tok, dir, &err) == LT_OK, "%s", err.msg);
    if (prompt && g && g->shape[0] >= 32 && tok) {
        char *argv[] = {"run", "-m", (char *)dir, "-p", (char *)prompt, "--raw", "-n", "32", "--temp", "0",
                        "--numerics", "exact", NULL};
        CHECK(lt_test_cli("run", lt_cli_run, argv) == 0);
        char want[4096];
        size_t n_want = expected_text(tok, g->data, 32, want);
        char *got = lt_test_cli_out("run");
        size_t n_got = got ? strlen(got) : 0;
        CHECKF(got && n_got == n_want && !memcmp(got, want, n_want), "printed %zu bytes, the oracle's text is %zu",
               n_got, n_want);
        char *log = lt_test_cli_err("run");
        CHECKF(log && strstr(log, "generated 32 tokens"), "stderr: %s", log ? log : "(none)");
        free(got);
        free(log);
    }
    lt_tokenizer_free(tok);
    json_decref(meta);
    lt_store_close(&oracle);
}

LT_TEST(cli_run, usage_errors) {
    char *no_prompt[] = {"run", "-m", "tests/fixtures/v4-flash-tiny", NULL};
    char *bad_mode[] = {"run", "-m", "x", "-p", "hi", "--numerics", "fast", NULL};
    char *bad_temp[] = {"run", "-m", "x", "-p", "hi", "--temp", "-1", NULL};
    char *no_value[] = {"run", "-m", "x", "-p", "hi", "--top-k", NULL};
    char *unknown[] = {"run", "-m", "x", "-p", "hi", "--bogus", NULL};
    char *missing_dir[] = {"run", "-m", "tests/fixtures/does-not-exist", "-p", "hi", NULL};
    CHECK(lt_test_cli("usage", lt_cli_run, no_prompt) == 2);
    CHECK(lt_test_cli("usage", lt_cli_run, bad_mode) == 2);
    CHECK(lt_test_cli("usage", lt_cli_run, bad_temp) == 2);
    CHECK(lt_test_cli("usage", lt_cli_run, no_value) == 2);
    char *log = lt_test_cli_err("usage");
    CHECKF(log && strstr(log, "--top-k needs a value"), "stderr: %s", log ? log : "(none)");
    free(log);
    CHECK(lt_test_cli("usage", lt_cli_run, unknown) == 2);
    CHECK(lt_test_cli("usage", lt_cli_run, missing_dir) == 1);
    log = lt_test_cli_err("usage");
    CHECKF(log && strstr(log, "does-not-exist"), "stderr: %s", log ? log : "(none)");
    free(log);
}

/* Without -m the model comes from $LANTERN_DEFAULT_MODEL: a missing folder is
 * a runtime error naming it, a present one is used. */
LT_TEST(cli_run, default_model_from_the_environment) {
    char missing[512];
    snprintf(missing, sizeof missing, "%s/no-such-model", lt_test_tmpdir());
    char *argv[] = {"run", "-p", "hi", "--raw", "-n", "4", "--temp", "0", NULL};
    setenv(LT_DEFAULT_MODEL_ENV, missing, 1);
    CHECK(lt_test_cli("default", lt_cli_run, argv) == 1);
    char *log = lt_test_cli_err("default");
    CHECKF(log && strstr(log, missing) && strstr(log, LT_DEFAULT_MODEL_ENV), "stderr: %s", log ? log : "(none)");
    free(log);
    setenv(LT_DEFAULT_MODEL_ENV, "tests/fixtures/v4-flash-tiny", 1);
    CHECK(lt_test_cli("default", lt_cli_run, argv) == 0);
    log = lt_test_cli_err("default");
    CHECKF(log && strstr(log, "lantern run: prompt"), "stderr: %s", log ? log : "(none)");
    free(log);
    unsetenv(LT_DEFAULT_MODEL_ENV);
}

/* Without -m and the variable, a copy of the binary in <tmp>/bin looks for
 * <tmp>/models/demo and says so. */
LT_TEST(cli_run, default_model_beside_the_binary) {
    char cmd[2048], err_path[600], want[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/bin && cp build/lantern %s/bin/lantern", lt_test_tmpdir(), lt_test_tmpdir());
    CHECKF(system(cmd) == 0, "could not copy build/lantern (make builds it): %s", cmd);
    snprintf(err_path, sizeof err_path, "%s/beside.err", lt_test_tmpdir());
    snprintf(cmd, sizeof cmd, "env -u %s %s/bin/lantern run -p hi 2>%s >/dev/null", LT_DEFAULT_MODEL_ENV,
             lt_test_tmpdir(), err_path);
    int status = system(cmd);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 1, "exit status %d", status);
    FILE *f = fopen(err_path, "r");
    char log[4096] = "";
    if (f) {
        size_t n = fread(log, 1, sizeof log - 1, f);
        log[n] = 0;
        fclose(f);
    }
    snprintf(want, sizeof want, "%s/models/demo does not exist", lt_test_tmpdir());
    CHECKF(strstr(log, want) != NULL, "stderr: %s", log);
}

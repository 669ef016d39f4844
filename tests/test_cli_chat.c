/* `lantern chat` end to end under a pseudo-terminal: build/lantern runs in a
 * child on tests/fixtures/v4-flash-tiny (whose tokenizer has no chat tokens:
 * <｜User｜> and friends are encoded as plain text, which the encoder and the
 * DSML parser handle like any text), the test types lines and Ctrl-C (\x03,
 * which the terminal turns into SIGINT) and reads the screen. Every wait is
 * a poll with a deadline, and the child is killed at the end whatever
 * happened. Plus the cache reuse of lt_gen_prefill, in process. */
#include "test.h"

#include "generate.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FIXTURE "tests/fixtures/v4-flash-tiny"
#define SCREEN (1 << 20)

typedef struct {
    int fd;
    pid_t pid;
    char *screen; /* everything the child wrote */
    size_t n;
} child;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* build/lantern argv[0..] under a new terminal; env_name=env_value when given */
static int spawn(child *c, char *const argv[], const char *env_name, const char *env_value) {
    struct winsize ws = {.ws_row = 24, .ws_col = 80};
    *c = (child){.screen = calloc(1, SCREEN)};
    c->pid = forkpty(&c->fd, NULL, NULL, &ws);
    if (c->pid == 0) {
        if (env_name) setenv(env_name, env_value, 1);
        execv("build/lantern", argv);
        _exit(127);
    }
    CHECKF(c->pid > 0 && c->screen, "forkpty failed: %s", strerror(errno));
    return c->pid > 0 && c->screen;
}

/* reads what the child wrote for up to timeout_s; 0 on timeout or end */
static int read_some(child *c, double deadline) {
    int left = (int)((deadline - now_s()) * 1e3);
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (left <= 0 || poll(&p, 1, left) <= 0 || c->n + 1 >= SCREEN) return 0;
    ssize_t k = read(c->fd, c->screen + c->n, SCREEN - 1 - c->n);
    if (k <= 0) return 0; /* EIO: the child closed the terminal */
    c->n += (size_t)k;
    return 1;
}

/* waits until needle appears at or after *at; moves *at past it */
static int expect(child *c, size_t *at, const char *needle, double timeout_s) {
    double deadline = now_s() + timeout_s;
    for (;;) {
        char *hit = c->n > *at ? memmem(c->screen + *at, c->n - *at, needle, strlen(needle)) : NULL;
        if (hit) {
            *at = (size_t)(hit - c->screen) + strlen(needle);
            return 1;
        }
        if (!read_some(c, deadline)) {
            CHECKF(0, "no '%s' within %.0f s; the screen ends with: %.300s", needle, timeout_s,
                   c->n > 300 ? c->screen + c->n - 300 : c->screen);
            return 0;
        }
    }
}

static void type(child *c, const char *s) { CHECK(write(c->fd, s, strlen(s)) == (ssize_t)strlen(s)); }

/* the exit status after the child ends by itself within timeout_s, else
 * kills it and returns -1; frees everything */
static int finish(child *c, double timeout_s) {
    double deadline = now_s() + timeout_s;
    int status = 0;
    pid_t r = 0;
    while ((r = waitpid(c->pid, &status, WNOHANG)) == 0 && now_s() < deadline)
        if (!read_some(c, LT_MIN(deadline, now_s() + 0.05))) usleep(10000);
    if (r == 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &status, 0);
    }
    close(c->fd);
    free(c->screen);
    return r == c->pid && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Turn 1 (seed 2 makes a ~1300-token answer on this fixture) is cut by
 * Ctrl-C; the prompt comes back, turn 2 is answered from the kept cache
 * (turn 1's partial answer stays in the conversation), /quit leaves. */
LT_TEST(cli_chat, two_turns_and_ctrl_c_under_a_terminal) {
    char *argv[] = {"lantern", "chat", "-m", FIXTURE, "--numerics", "exact", "--temp", "0.6", "--seed", "2", "-t", "1",
                    "-n", "60000", "--ctx", "65536", NULL};
    child c;
    if (!spawn(&c, argv, NULL, NULL)) return;
    size_t at = 0;
    int ok = expect(&c, &at, "> ", 30);
    double t0 = now_s();
    if (ok) type(&c, "hi\n");
    ok = ok && expect(&c, &at, "hi\r\n", 10);
    size_t answer = at;
    while (ok && c.n < answer + 64) ok = read_some(&c, now_s() + 10); /* the answer streams */
    CHECKF(ok, "turn 1 printed %zu bytes", c.n - answer);
    if (ok) type(&c, "\x03");
    ok = ok && expect(&c, &at, "[interrupted]", 10) && expect(&c, &at, "lantern chat: prompt", 5) &&
         expect(&c, &at, "> ", 5);
    double t1 = now_s();
    if (ok) type(&c, "tell me more\n");
    ok = ok && expect(&c, &at, "tell me more\r\n", 10) && expect(&c, &at, "lantern chat: prompt", 60);
    size_t stats = at;
    ok = ok && expect(&c, &at, "reused from the cache", 5) && expect(&c, &at, "> ", 5);
    printf("  turn 1 to Ctrl-C %.2f s, turn 2 %.2f s:%.*s\n", t1 - t0, now_s() - t1,
           ok ? (int)(at - stats - 2) : 0, c.screen + stats);
    if (ok) type(&c, "/quit\n");
    CHECK(finish(&c, ok ? 10 : 0) == (ok ? 0 : -1));
}

/* Ctrl-C at the prompt drops the line and says how to leave; a second one
 * in a row leaves with status 0. */
LT_TEST(cli_chat, ctrl_c_twice_at_the_prompt_leaves) {
    char *argv[] = {"lantern", "chat", "-m", FIXTURE, "--numerics", "exact", NULL};
    child c;
    if (!spawn(&c, argv, NULL, NULL)) return;
    size_t at = 0;
    int ok = expect(&c, &at, "> ", 30);
    if (ok) type(&c, "half a line\x03");
    ok = ok && expect(&c, &at, "Ctrl-C again or /quit", 10) && expect(&c, &at, "> ", 5);
    if (ok) type(&c, "\x03");
    CHECK(finish(&c, ok ? 10 : 0) == (ok ? 0 : -1));
}

/* Without -m and with $LANTERN_DEFAULT_MODEL naming a missing folder, chat
 * says which folder and exits 1; bad flags are usage errors (2). */
LT_TEST(cli_chat, missing_default_model_and_usage_errors) {
    char missing[512];
    snprintf(missing, sizeof missing, "%s/no-such-model", lt_test_tmpdir());
    char *argv[] = {"lantern", "chat", NULL};
    child c;
    size_t at = 0;
    if (spawn(&c, argv, LT_DEFAULT_MODEL_ENV, missing)) {
        expect(&c, &at, missing, 10);
        CHECK(finish(&c, 10) == 1);
    }
    char *bad_effort[] = {"lantern", "chat", "-m", FIXTURE, "--effort", "50", NULL};
    if (spawn(&c, bad_effort, NULL, NULL)) {
        at = 0;
        expect(&c, &at, "reasoning_effort '50'", 10);
        CHECK(finish(&c, 10) == 2);
    }
    char *unknown[] = {"lantern", "chat", "--bogus", NULL};
    if (spawn(&c, unknown, NULL, NULL)) {
        at = 0;
        expect(&c, &at, "unknown option '--bogus'", 10);
        CHECK(finish(&c, 10) == 2);
    }
}

/* lt_gen_prefill keeps the cache when the new ids extend the held ones, and
 * the logits then equal those of evaluating everything from scratch; ids
 * that do not extend them start over. */
LT_TEST(cli_chat, prefill_reuses_the_cache_for_an_extension) {
    lt_gen_options o;
    lt_gen_options_init(&o, "test", 0);
    o.dir = FIXTURE;
    o.numerics = LT_NUMERICS_EXACT;
    lt_gen a = {0}, b = {0};
    lt_error err = {0};
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (int32_t)(3 + (i * 37) % 500);
    lt_status st = lt_gen_open(&a, &o, &err);
    if (st == LT_OK) st = lt_gen_start(&a, &o, 64, &err);
    if (st == LT_OK) st = lt_gen_open(&b, &o, &err);
    if (st == LT_OK) st = lt_gen_start(&b, &o, 64, &err);
    CHECKF(st == LT_OK, "%s", err.msg);
    if (st == LT_OK) {
        CHECK(lt_gen_prefill(&a, ids, 25, NULL, &err) == LT_OK && a.n_reused == 0 && a.n_prompt == 25);
        CHECK(lt_gen_prefill(&a, ids, 40, NULL, &err) == LT_OK && a.n_reused == 25 && a.n_prompt == 15);
        CHECK(lt_gen_prefill(&b, ids, 40, NULL, &err) == LT_OK && b.n_reused == 0);
        int V = lt_model_vocab_size(a.m);
        float worst = 0;
        for (int i = 0; i < V; i++) worst = LT_MAX(worst, fabsf(a.logits[i] - b.logits[i]));
        CHECKF(worst < 1e-4f, "logits after reuse differ from a fresh prefill by %g", worst);
        ids[3] ^= 1;
        CHECK(lt_gen_prefill(&a, ids, 40, NULL, &err) == LT_OK && a.n_reused == 0 && a.n_prompt == 40);
        volatile sig_atomic_t stop = 1;
        CHECK(lt_gen_prefill(&b, ids, 30, &stop, &err) == LT_OK && b.interrupted && b.seq.n == 0);
    }
    lt_gen_close(&a);
    lt_gen_close(&b);
}

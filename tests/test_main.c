/* Test runner: runs every registered test (or those whose "group.name" starts
 * with one of the arguments), prints a line per failure and closes with
 * "N passed, N failed". --list prints the test names. */
#include "test.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef struct { const char *group, *name; lt_test_fn fn; } test_entry;

static test_entry *g_tests;
static int g_n_tests, g_cap_tests;
static int g_failures; /* failures recorded by the running test */
static const char *g_current;

void lt_test_register(const char *group, const char *name, lt_test_fn fn) {
    if (g_n_tests == g_cap_tests) {
        g_cap_tests = g_cap_tests ? 2 * g_cap_tests : 64;
        g_tests = realloc(g_tests, (size_t)g_cap_tests * sizeof *g_tests);
        if (!g_tests) abort();
    }
    g_tests[g_n_tests++] = (test_entry){group, name, fn};
}

void lt_test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    if (g_failures < 10) { /* enough to diagnose; keeps logs short */
        fprintf(stdout, "  FAIL %s (%s:%d): ", g_current, file, line);
        va_start(ap, fmt);
        vfprintf(stdout, fmt, ap);
        va_end(ap);
        fputc('\n', stdout);
    }
    g_failures++;
}

typedef struct { void *map; size_t maplen; } guard_hdr;

void *lt_test_guarded_copy(const void *buf, size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (n + sizeof(guard_hdr) + page - 1) / page;
    size_t len = (data_pages + 1) * page;
    uint8_t *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) abort();
    if (mprotect(map + data_pages * page, page, PROT_NONE) != 0) abort();
    uint8_t *p = map + data_pages * page - n;
    guard_hdr h = {map, len};
    memcpy(map, &h, sizeof h);
    if (n) memcpy(p, buf, n);
    return p;
}

void lt_test_guarded_free(void *p) {
    if (!p) return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t *map = (uint8_t *)(((uintptr_t)p - 1) & ~(uintptr_t)(page - 1)); /* p may be the guard page when n == 0 */
    guard_hdr h;
    /* the header sits at the mapping's start; p may lie in a later page */
    for (;;) {
        memcpy(&h, map, sizeof h);
        if (h.map == map) break;
        map -= page;
    }
    munmap(h.map, h.maplen);
}

static char g_tmpdir[256];

static void remove_tmpdir(void) {
    char cmd[300];
    if (!g_tmpdir[0]) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", g_tmpdir);
}

const char *lt_test_tmpdir(void) {
    if (!g_tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(g_tmpdir, sizeof g_tmpdir, "%s/lantern-test-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(g_tmpdir)) { perror("mkdtemp"); abort(); }
        atexit(remove_tmpdir);
    }
    return g_tmpdir;
}

const char *lt_test_write_temp(const char *name, const void *data, size_t n) {
    static char paths[64][512];
    static int next;
    char *path = paths[next++ % 64];
    snprintf(path, 512, "%s/%s", lt_test_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) { perror(path); abort(); }
    fclose(f);
    return path;
}

static int cmp_tests(const void *a, const void *b) {
    const test_entry *x = a, *y = b;
    int c = strcmp(x->group, y->group);
    return c ? c : strcmp(x->name, y->name);
}

static int selected(const test_entry *t, int argc, char **argv) {
    char full[256];
    int any = 0;
    snprintf(full, sizeof full, "%s.%s", t->group, t->name);
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue;
        any = 1;
        if (strncmp(full, argv[i], strlen(argv[i])) == 0) return 1;
    }
    return !any;
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0, list = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--list")) list = 1;
        else if (argv[i][0] == '-') { fprintf(stderr, "unknown option %s (use --list or name prefixes)\n", argv[i]); return 2; }
    }
    qsort(g_tests, (size_t)g_n_tests, sizeof *g_tests, cmp_tests);
    for (int i = 0; i < g_n_tests; i++) {
        test_entry *t = &g_tests[i];
        char full[256];
        if (!selected(t, argc, argv)) continue;
        snprintf(full, sizeof full, "%s.%s", t->group, t->name);
        if (list) { puts(full); continue; }
        g_current = full;
        g_failures = 0;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        t->fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (g_failures) { failed++; printf("FAIL %s (%d failed checks)", full, g_failures); }
        else { passed++; printf("ok   %s", full); }
        if (secs >= 0.5) printf(" (%.1f s)", secs); /* slow tests show up in every log */
        putchar('\n');
        fflush(stdout);
    }
    free(g_tests);
    if (list) return 0;
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

/* Lantern test harness: every test file defines tests with LT_TEST; they
 * register themselves before main() and tests/test_main.c runs them.
 *
 *   LT_TEST(group, name) { CHECK(x == 1); CHECKF(err < 1e-4, "err %g", err); }
 *
 * Checks record a failure and continue; a test passes when it recorded none.
 * Tests run from the repository root; fixtures live in tests/fixtures/. */
#ifndef LT_TEST_H
#define LT_TEST_H

#include <stddef.h>
#include <stdio.h>

typedef void (*lt_test_fn)(void);
void lt_test_register(const char *group, const char *name, lt_test_fn fn);
void lt_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LT_TEST(group, name)                                                   \
    static void test_##group##_##name(void);                                   \
    __attribute__((constructor)) static void reg_##group##_##name(void) {      \
        lt_test_register(#group, #name, test_##group##_##name);                \
    }                                                                          \
    static void test_##group##_##name(void)

#define CHECK(cond)                                                            \
    do { if (!(cond)) lt_test_fail(__FILE__, __LINE__, "%s", #cond); } while (0)
#define CHECKF(cond, ...)                                                      \
    do { if (!(cond)) lt_test_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)

/* A copy of buf whose last byte sits right before a PROT_NONE page, so a parser
 * that reads one byte past the end crashes (picohttpparser's trick). Release
 * with lt_test_guarded_free. */
void *lt_test_guarded_copy(const void *buf, size_t n);
void lt_test_guarded_free(void *p);

/* Writes n bytes to a fresh file under a per-run temp directory and returns its
 * path (valid until the run ends). */
const char *lt_test_write_temp(const char *name, const void *data, size_t n);
/* A per-run temp directory (created on first use, removed at exit). */
const char *lt_test_tmpdir(void);

#endif

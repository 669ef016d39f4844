/* Small shared helpers: error formatting, checked allocation, file reading. */
#ifndef LT_UTIL_H
#define LT_UTIL_H

#include "lantern.h"

#include <stddef.h>
#include <stdint.h>

/* Formats err->msg (when err is non-NULL) and returns status. */
lt_status lt_fail(lt_error *err, lt_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* calloc/malloc that fill err on failure (naming what) and return NULL. */
void *lt_calloc(size_t n, size_t size, const char *what, lt_error *err);

/* Reads a whole (small) file into a NUL-terminated buffer. */
lt_status lt_read_file(const char *path, char **out, size_t *len, lt_error *err);

/* Joins dir and name into buf; fails if it does not fit. */
lt_status lt_path_join(char *buf, size_t cap, const char *dir, const char *name, lt_error *err);

int lt_file_exists(const char *path);

/* Monotonic wall-clock seconds. */
double lt_time_s(void);

/* splitmix64 (Steele, Lea & Flood): the next of a stream of well-mixed
 * 64-bit values; seeds the sampler and fills synthetic benchmark data. */
static inline uint64_t lt_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#define LT_MIN_I64(a, b) ((int64_t)(a) < (int64_t)(b) ? (int64_t)(a) : (int64_t)(b))
#define LT_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LT_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif

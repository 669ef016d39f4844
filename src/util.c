/* Shared helpers: error formatting, checked allocation, whole-file reads. */
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

const char *lt_status_name(lt_status s) {
    switch (s) {
    case LT_OK: return "ok";
    case LT_ERR_IO: return "I/O error";
    case LT_ERR_FORMAT: return "format error";
    case LT_ERR_CONFIG: return "config error";
    case LT_ERR_INVENTORY: return "tensor inventory error";
    case LT_ERR_NOMEM: return "out of memory";
    case LT_ERR_ARG: return "invalid argument";
    case LT_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown error";
}

lt_status lt_fail(lt_error *err, lt_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

void *lt_calloc(size_t n, size_t size, const char *what, lt_error *err) {
    void *p = (n && size) ? calloc(n, size) : calloc(1, 1);
    if (!p)
        lt_fail(err, LT_ERR_NOMEM, "out of memory allocating %s (%zu x %zu bytes)", what, n, size);
    return p;
}

lt_status lt_read_file(const char *path, char **out, size_t *len, lt_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return lt_fail(err, LT_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return lt_fail(err, LT_ERR_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    if (fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return lt_fail(err, LT_ERR_IO, "%s: short read", path);
    }
    fclose(f);
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return LT_OK;
}

lt_status lt_path_join(char *buf, size_t cap, const char *dir, const char *name, lt_error *err) {
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return lt_fail(err, LT_ERR_ARG, "path too long: %s/%s", dir, name);
    return LT_OK;
}

int lt_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

double lt_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

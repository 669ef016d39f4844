/* Test helper: in-memory safetensors writer (see st_build.h). */
#include "st_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { char name[256]; lt_dtype dt; int ndim; int64_t shape[LT_MAX_DIMS]; uint8_t *data; size_t n; } entry;
struct st_build { entry *e; int n; };

st_build *st_build_new(void) { return calloc(1, sizeof(st_build)); }

static size_t nbytes_of(lt_dtype dt, int ndim, const int64_t *shape) {
    size_t n = (size_t)lt_dtype_size(dt);
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

void st_build_add(st_build *b, const char *name, lt_dtype dt, int ndim, const int64_t *shape, const void *data) {
    b->e = realloc(b->e, (size_t)(b->n + 1) * sizeof *b->e);
    entry *e = &b->e[b->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->dt = dt;
    e->ndim = ndim;
    memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->n = nbytes_of(dt, ndim, shape);
    e->data = malloc(e->n ? e->n : 1);
    if (e->n) memcpy(e->data, data, e->n);
}

void st_build_add_fill(st_build *b, const char *name, lt_dtype dt, int ndim, const int64_t *shape) {
    size_t n = nbytes_of(dt, ndim, shape);
    uint8_t *tmp = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) tmp[i] = (uint8_t)(i * 37 + 11) & 0x77; /* finite for every float format */
    st_build_add(b, name, dt, ndim, shape, tmp);
    free(tmp);
}

uint8_t *st_build_bytes(st_build *b, size_t *len) {
    size_t cap = 64 + (size_t)b->n * 400, hl = 0, off = 0;
    char *h = malloc(cap);
    hl += (size_t)snprintf(h + hl, cap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < b->n; i++) {
        entry *e = &b->e[i];
        hl += (size_t)snprintf(h + hl, cap - hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", e->name, lt_dtype_name(e->dt));
        for (int d = 0; d < e->ndim; d++) hl += (size_t)snprintf(h + hl, cap - hl, "%s%lld", d ? "," : "", (long long)e->shape[d]);
        hl += (size_t)snprintf(h + hl, cap - hl, "],\"data_offsets\":[%zu,%zu]}", off, off + e->n);
        off += e->n;
    }
    hl += (size_t)snprintf(h + hl, cap - hl, "}");
    while (hl % 8) h[hl++] = ' '; /* the official writer pads the header to 8 bytes */
    *len = 8 + hl + off;
    uint8_t *out = malloc(*len);
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(out + 8, h, hl);
    size_t p = 8 + hl;
    for (int i = 0; i < b->n; i++) { memcpy(out + p, b->e[i].data, b->e[i].n); p += b->e[i].n; }
    free(h);
    return out;
}

int st_build_write(st_build *b, const char *path) {
    size_t n;
    uint8_t *bytes = st_build_bytes(b, &n);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(bytes, 1, n, f) == n;
    if (f) fclose(f);
    free(bytes);
    return ok ? 0 : -1;
}

void st_build_free(st_build *b) {
    if (!b) return;
    for (int i = 0; i < b->n; i++) free(b->e[i].data);
    free(b->e);
    free(b);
}

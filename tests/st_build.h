/* Test helper: builds small safetensors files in memory (header + data), so
 * tests can make valid and deliberately broken checkpoints without Python. */
#ifndef LT_ST_BUILD_H
#define LT_ST_BUILD_H

#include "safetensors.h"

#include <stddef.h>
#include <stdint.h>

typedef struct st_build st_build;

st_build *st_build_new(void);
/* Adds a tensor; data (nbytes = numel * dtype size) is copied. */
void st_build_add(st_build *b, const char *name, lt_dtype dt, int ndim, const int64_t *shape, const void *data);
/* Adds a tensor filled with a deterministic byte pattern. */
void st_build_add_fill(st_build *b, const char *name, lt_dtype dt, int ndim, const int64_t *shape);
/* Serialises; *len receives the size. The caller frees the result. */
uint8_t *st_build_bytes(st_build *b, size_t *len);
/* Writes to dir/name (creating nothing else) and returns 0 on success. */
int st_build_write(st_build *b, const char *path);
void st_build_free(st_build *b);

#endif

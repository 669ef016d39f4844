/* Safetensors checkpoints: header parsing and read-only mmap of every shard.
 *
 * A tensor store is the union of one or more safetensors files: a model folder
 * (model.safetensors.index.json + shards, or a single model.safetensors) or one
 * file (oracle fixtures). Tensor data are pointers into the mappings; nothing
 * is copied. Header parsing is defensive: every length, offset, dtype and
 * shape is checked before use, and the first problem is reported with the
 * file and tensor it concerns. */
#ifndef LT_SAFETENSORS_H
#define LT_SAFETENSORS_H

#include "lantern.h"

#include <stdint.h>

typedef enum {
    LT_DT_BOOL, LT_DT_U8, LT_DT_I8, LT_DT_I16, LT_DT_I32, LT_DT_I64,
    LT_DT_F16, LT_DT_BF16, LT_DT_F32, LT_DT_F64,
    LT_DT_F8_E4M3, LT_DT_F8_E5M2, LT_DT_F8_E8M0,
    LT_DT_COUNT
} lt_dtype;

const char *lt_dtype_name(lt_dtype t);      /* the safetensors spelling, e.g. "F8_E4M3" */
int lt_dtype_size(lt_dtype t);              /* bytes per element */
int lt_dtype_parse(const char *s, lt_dtype *out); /* 1 on success */

#define LT_MAX_DIMS 8

typedef struct {
    const char *name;          /* owned by the store */
    lt_dtype dtype;
    int ndim;
    int64_t shape[LT_MAX_DIMS];
    uint64_t nbytes;
    const void *data;          /* into the read-only mapping */
    int file;                  /* index into lt_store.files */
} lt_tensor;

typedef struct {
    char *path;
    int fd;
    void *map;
    uint64_t size;
} lt_st_file;

typedef struct {
    lt_st_file *files;
    int n_files;
    lt_tensor *tensors;
    int64_t n_tensors;
    /* open-addressing hash from name to tensor index */
    int64_t *slots;
    uint64_t n_slots;
    char *meta_json;           /* the "__metadata__" object of the first file, as JSON text, or NULL */
    void **owned;              /* aligned copies of misaligned tensors */
    int n_owned;
} lt_store;

/* Parses one safetensors header held in memory (buf = the whole file, size
 * bytes). On success appends the tensors to s (data pointers into buf) with
 * file index `file`. Exposed for tests; lt_store_open_* use it. */
lt_status lt_store_parse(lt_store *s, const uint8_t *buf, uint64_t size, int file,
                         const char *path, lt_error *err);

/* Opens a single .safetensors file. */
lt_status lt_store_open_file(lt_store *s, const char *path, lt_error *err);

/* Opens a model folder: model.safetensors.index.json and the shards it names,
 * or a single model.safetensors. verbose prints progress per shard to stderr. */
lt_status lt_store_open_dir(lt_store *s, const char *dir, int verbose, lt_error *err);

/* Parses model.safetensors.index.json: *root (release with json_decref) and
 * its non-empty "weight_map" object {tensor name: shard file}. */
typedef struct json_t json_t;
lt_status lt_index_load(const char *index_path, json_t **root, json_t **weight_map, lt_error *err);

const lt_tensor *lt_store_find(const lt_store *s, const char *name);
int64_t lt_tensor_numel(const lt_tensor *t);

void lt_store_close(lt_store *s);

#endif

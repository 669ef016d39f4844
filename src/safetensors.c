/* Safetensors reader: checks every header field before trusting it, maps each
 * file read-only and indexes tensors by name. Layout of a file:
 *   u64 little-endian N | N bytes of JSON header | data
 * Header entries: "name": {"dtype": D, "shape": [..], "data_offsets": [b, e]}
 * with offsets relative to the start of the data section. */
#include "safetensors.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Headers of the real V4 shards are a few hundred KB; anything past this is
 * not a safetensors file. */
#define MAX_HEADER_BYTES (256ull << 20)

static const struct { const char *name; int size; } dtypes[LT_DT_COUNT] = {
    [LT_DT_BOOL] = {"BOOL", 1},   [LT_DT_U8] = {"U8", 1},     [LT_DT_I8] = {"I8", 1},
    [LT_DT_I16] = {"I16", 2},     [LT_DT_I32] = {"I32", 4},   [LT_DT_I64] = {"I64", 8},
    [LT_DT_F16] = {"F16", 2},     [LT_DT_BF16] = {"BF16", 2}, [LT_DT_F32] = {"F32", 4},
    [LT_DT_F64] = {"F64", 8},     [LT_DT_F8_E4M3] = {"F8_E4M3", 1},
    [LT_DT_F8_E5M2] = {"F8_E5M2", 1}, [LT_DT_F8_E8M0] = {"F8_E8M0", 1},
};

const char *lt_dtype_name(lt_dtype t) { return t < LT_DT_COUNT ? dtypes[t].name : "?"; }
int lt_dtype_size(lt_dtype t) { return t < LT_DT_COUNT ? dtypes[t].size : 0; }

int lt_dtype_parse(const char *s, lt_dtype *out) {
    for (int i = 0; i < LT_DT_COUNT; i++)
        if (!strcmp(s, dtypes[i].name)) { *out = (lt_dtype)i; return 1; }
    return 0;
}

int64_t lt_tensor_numel(const lt_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* ---- name index (open addressing, FNV-1a) ------------------------------ */

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static lt_status index_rebuild(lt_store *s, lt_error *err) {
    uint64_t n = 16;
    while (n < 2 * (uint64_t)s->n_tensors) n *= 2;
    int64_t *slots = malloc(n * sizeof *slots);
    if (!slots) return lt_fail(err, LT_ERR_NOMEM, "out of memory indexing %lld tensors", (long long)s->n_tensors);
    memset(slots, 0xFF, n * sizeof *slots); /* -1 = empty */
    for (int64_t i = 0; i < s->n_tensors; i++) {
        uint64_t h = hash_name(s->tensors[i].name) & (n - 1);
        while (slots[h] >= 0) {
            const lt_tensor *o = &s->tensors[slots[h]];
            if (!strcmp(o->name, s->tensors[i].name)) {
                lt_status st = lt_fail(err, LT_ERR_FORMAT, "%s: tensor '%s' also appears in %s",
                                       s->files[s->tensors[i].file].path, o->name, s->files[o->file].path);
                free(slots);
                return st;
            }
            h = (h + 1) & (n - 1);
        }
        slots[h] = i;
    }
    free(s->slots);
    s->slots = slots;
    s->n_slots = n;
    return LT_OK;
}

const lt_tensor *lt_store_find(const lt_store *s, const char *name) {
    if (!s->n_slots) return NULL;
    uint64_t h = hash_name(name) & (s->n_slots - 1);
    while (s->slots[h] >= 0) {
        const lt_tensor *t = &s->tensors[s->slots[h]];
        if (!strcmp(t->name, name)) return t;
        h = (h + 1) & (s->n_slots - 1);
    }
    return NULL;
}

/* ---- header parsing ---------------------------------------------------- */

typedef struct { uint64_t begin, end; const char *name; } span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

/* Parses one tensor entry into t; data_size is the size of the data section. */
static lt_status parse_entry(lt_tensor *t, const char *name, json_t *v, uint64_t data_size,
                             const char *path, lt_error *err) {
    if (!json_is_object(v)) return lt_fail(err, LT_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", path, name);
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"), *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd) || !lt_dtype_parse(json_string_value(jd), &t->dtype))
        return lt_fail(err, LT_ERR_FORMAT, "%s: tensor '%s': unknown or missing dtype %s", path, name,
                       json_is_string(jd) ? json_string_value(jd) : "(none)");
    if (!json_is_array(js) || json_array_size(js) > LT_MAX_DIMS)
        return lt_fail(err, LT_ERR_FORMAT, "%s: tensor '%s': shape must be an array of at most %d sizes", path, name, LT_MAX_DIMS);
    t->ndim = (int)json_array_size(js);
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        json_t *d = json_array_get(js, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return lt_fail(err, LT_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, i);
        t->shape[i] = json_integer_value(d);
        if (t->shape[i] && numel > UINT64_MAX / (uint64_t)t->shape[i])
            return lt_fail(err, LT_ERR_FORMAT, "%s: tensor '%s': shape overflows", path, name);
        numel *= (uint64_t)t->shape[i];
    }
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
        !json_is_integer(json_array_get(jo, 1)))
        return lt_fail(err, LT_ERR_FORMAT, "%s: tensor '%s': data_offsets must be [begin, end]", path, name);
    json_int_t b = json_integer_value(json_array_get(jo, 0)), e = json_integer_value(json_array_get(jo, 1));
    if (b < 0 || e < b || (uint64_t)e > data_size)
        return lt_fail(err, LT_ERR_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] outside the data section of %llu bytes",
                       path, name, (long long)b, (long long)e, (unsigned long long)data_size);
    uint64_t esz = (uint64_t)lt_dtype_size(t->dtype);
    if (numel > UINT64_MAX / esz || numel * esz != (uint64_t)(e - b))
        return lt_fail(err, LT_ERR_FORMAT, "%s: tensor '%s': %s shape holds %llu bytes but data_offsets span %lld",
                       path, name, lt_dtype_name(t->dtype), (unsigned long long)(numel * esz), (long long)(e - b));
    t->nbytes = (uint64_t)(e - b);
    t->data = (const void *)(uintptr_t)(uint64_t)b; /* relative for now; made absolute by the caller */
    return LT_OK;
}

static lt_status check_overlaps(lt_tensor *ts, int64_t n, const char *path, lt_error *err) {
    span *sp = malloc((size_t)(n ? n : 1) * sizeof *sp);
    if (!sp) return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
    for (int64_t i = 0; i < n; i++)
        sp[i] = (span){(uint64_t)(uintptr_t)ts[i].data, (uint64_t)(uintptr_t)ts[i].data + ts[i].nbytes, ts[i].name};
    qsort(sp, (size_t)n, sizeof *sp, cmp_span);
    lt_status st = LT_OK;
    for (int64_t i = 1; i < n && st == LT_OK; i++)
        if (sp[i].begin < sp[i - 1].end && sp[i].begin != sp[i].end)
            st = lt_fail(err, LT_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data section", path, sp[i - 1].name, sp[i].name);
    free(sp);
    return st;
}

/* Tensors whose data is not aligned to their element size get an aligned
 * private copy, so kernels can load them with plain typed reads. The official
 * writers never misalign large tensors; this only costs a few small copies. */
static lt_status align_tensor(lt_store *s, lt_tensor *t, lt_error *err) {
    size_t esz = (size_t)lt_dtype_size(t->dtype);
    if (esz == 1 || ((uintptr_t)t->data % esz) == 0) return LT_OK;
    void *copy = aligned_alloc(64, (t->nbytes + 63) & ~(uint64_t)63);
    if (!copy) return lt_fail(err, LT_ERR_NOMEM, "out of memory copying misaligned tensor '%s'", t->name);
    memcpy(copy, t->data, t->nbytes);
    void **owned = realloc(s->owned, (size_t)(s->n_owned + 1) * sizeof *owned);
    if (!owned) { free(copy); return lt_fail(err, LT_ERR_NOMEM, "out of memory"); }
    s->owned = owned;
    s->owned[s->n_owned++] = copy;
    t->data = copy;
    return LT_OK;
}

lt_status lt_store_parse(lt_store *s, const uint8_t *buf, uint64_t size, int file, const char *path, lt_error *err) {
    if (size < 8) return lt_fail(err, LT_ERR_FORMAT, "%s: file is %llu bytes, too short for a safetensors header", path, (unsigned long long)size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen < 2 || hlen > size - 8 || hlen > MAX_HEADER_BYTES)
        return lt_fail(err, LT_ERR_FORMAT, "%s: header length %llu is impossible for a file of %llu bytes (truncated or not safetensors)",
                       path, (unsigned long long)hlen, (unsigned long long)size);
    json_error_t je;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root) return lt_fail(err, LT_ERR_FORMAT, "%s: header JSON invalid at byte %d: %s", path, je.position, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return lt_fail(err, LT_ERR_FORMAT, "%s: header is not a JSON object", path);
    }
    uint64_t data_size = size - 8 - hlen;
    const uint8_t *data = buf + 8 + hlen;
    size_t n_new = json_object_size(root);
    lt_tensor *ts = realloc(s->tensors, (size_t)(s->n_tensors + (int64_t)n_new + 1) * sizeof *ts);
    if (!ts) { json_decref(root); return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path); }
    s->tensors = ts;
    lt_tensor *first = &s->tensors[s->n_tensors];
    int64_t n = 0;
    lt_status st = LT_OK;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val)) { st = lt_fail(err, LT_ERR_FORMAT, "%s: __metadata__ is not an object", path); break; }
            if (!s->meta_json) s->meta_json = json_dumps(val, JSON_COMPACT | JSON_SORT_KEYS);
            continue;
        }
        lt_tensor *t = &first[n];
        memset(t, 0, sizeof *t);
        if ((st = parse_entry(t, key, val, data_size, path, err)) != LT_OK) break;
        t->name = strdup(key);
        if (!t->name) { st = lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path); break; }
        t->file = file;
        n++;
    }
    json_decref(root);
    if (st == LT_OK) st = check_overlaps(first, n, path, err);
    for (int64_t i = 0; i < n && st == LT_OK; i++) {
        first[i].data = data + (uint64_t)(uintptr_t)first[i].data;
        st = align_tensor(s, &first[i], err);
    }
    if (st != LT_OK) {
        for (int64_t i = 0; i < n; i++) free((char *)first[i].name);
        return st;
    }
    s->n_tensors += n;
    return index_rebuild(s, err);
}

/* ---- files ------------------------------------------------------------- */

static lt_status map_file(lt_store *s, const char *path, lt_error *err) {
    lt_st_file *fs = realloc(s->files, (size_t)(s->n_files + 1) * sizeof *fs);
    if (!fs) return lt_fail(err, LT_ERR_NOMEM, "out of memory");
    s->files = fs;
    lt_st_file *f = &s->files[s->n_files];
    memset(f, 0, sizeof *f);
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) return lt_fail(err, LT_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(f->fd);
        return lt_fail(err, LT_ERR_IO, "%s: not a regular file", path);
    }
    f->size = (uint64_t)st.st_size;
    if (f->size) {
        f->map = mmap(NULL, f->size, PROT_READ, MAP_SHARED, f->fd, 0);
        if (f->map == MAP_FAILED) {
            close(f->fd);
            return lt_fail(err, LT_ERR_IO, "%s: mmap of %llu bytes failed: %s", path, (unsigned long long)f->size, strerror(errno));
        }
    }
    f->path = strdup(path);
    s->n_files++;
    if (!f->path) return lt_fail(err, LT_ERR_NOMEM, "out of memory");
    return lt_store_parse(s, f->map, f->size, s->n_files - 1, path, err);
}

lt_status lt_store_open_file(lt_store *s, const char *path, lt_error *err) {
    memset(s, 0, sizeof *s);
    lt_status st = map_file(s, path, err);
    if (st != LT_OK) lt_store_close(s);
    return st;
}

lt_status lt_index_load(const char *index_path, json_t **root, json_t **weight_map, lt_error *err) {
    char *text;
    lt_status st = lt_read_file(index_path, &text, NULL, err);
    if (st != LT_OK) return st;
    json_error_t je;
    *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!*root) return lt_fail(err, LT_ERR_FORMAT, "%s: invalid JSON at line %d: %s", index_path, je.line, je.text);
    *weight_map = json_object_get(*root, "weight_map");
    if (!json_is_object(*weight_map) || json_object_size(*weight_map) == 0) {
        json_decref(*root);
        *root = NULL;
        return lt_fail(err, LT_ERR_FORMAT, "%s: missing or empty \"weight_map\" object", index_path);
    }
    return LT_OK;
}

/* Reads the index's weight_map and maps each shard it names once, in order
 * of first mention; then checks each listed tensor sits in its named shard. */
static lt_status open_index(lt_store *s, const char *dir, const char *index_path, int verbose, lt_error *err) {
    json_t *root, *wm;
    lt_status st = lt_index_load(index_path, &root, &wm, err);
    if (st != LT_OK) return st;
    const char **shards = calloc(json_object_size(wm), sizeof *shards);
    int n_shards = 0;
    const char *name;
    json_t *v;
    if (!shards) st = lt_fail(err, LT_ERR_NOMEM, "out of memory");
    json_object_foreach(wm, name, v) {
        if (st != LT_OK) break;
        const char *file = json_string_value(v);
        if (!file || !*file || strchr(file, '/')) {
            st = lt_fail(err, LT_ERR_FORMAT, "%s: tensor '%s' maps to an invalid shard name", index_path, name);
            break;
        }
        int seen = 0;
        for (int i = 0; i < n_shards && !seen; i++) seen = !strcmp(shards[i], file);
        if (!seen) shards[n_shards++] = file;
    }
    char path[4096];
    for (int i = 0; i < n_shards && st == LT_OK; i++) {
        if ((st = lt_path_join(path, sizeof path, dir, shards[i], err)) != LT_OK) break;
        if (verbose) fprintf(stderr, "lantern: mapping shard %d/%d %s\n", i + 1, n_shards, shards[i]);
        st = map_file(s, path, err);
    }
    json_object_foreach(wm, name, v) {
        if (st != LT_OK) break;
        const lt_tensor *t = lt_store_find(s, name);
        const char *want = json_string_value(v);
        if (!t) st = lt_fail(err, LT_ERR_INVENTORY, "%s: tensor '%s' is listed in the index but missing from %s", dir, name, want);
        else {
            const char *have = strrchr(s->files[t->file].path, '/');
            if (strcmp(have ? have + 1 : s->files[t->file].path, want))
                st = lt_fail(err, LT_ERR_INVENTORY, "%s: tensor '%s' is in %s but the index says %s", dir, name,
                             s->files[t->file].path, want);
        }
    }
    free(shards);
    json_decref(root);
    return st;
}

lt_status lt_store_open_dir(lt_store *s, const char *dir, int verbose, lt_error *err) {
    memset(s, 0, sizeof *s);
    char path[4096];
    lt_status st = lt_path_join(path, sizeof path, dir, "model.safetensors.index.json", err);
    if (st != LT_OK) return st;
    if (lt_file_exists(path)) st = open_index(s, dir, path, verbose, err);
    else {
        if ((st = lt_path_join(path, sizeof path, dir, "model.safetensors", err)) != LT_OK) return st;
        if (!lt_file_exists(path))
            return lt_fail(err, LT_ERR_IO, "%s: no model.safetensors.index.json or model.safetensors in this folder", dir);
        st = map_file(s, path, err);
    }
    if (st != LT_OK) lt_store_close(s);
    return st;
}

void lt_store_close(lt_store *s) {
    for (int64_t i = 0; i < s->n_tensors; i++) free((char *)s->tensors[i].name);
    for (int i = 0; i < s->n_files; i++) {
        if (s->files[i].map && s->files[i].size) munmap(s->files[i].map, s->files[i].size);
        if (s->files[i].fd >= 0) close(s->files[i].fd);
        free(s->files[i].path);
    }
    for (int i = 0; i < s->n_owned; i++) free(s->owned[i]);
    free(s->owned);
    free(s->files);
    free(s->tensors);
    free(s->slots);
    free(s->meta_json);
    memset(s, 0, sizeof *s);
}

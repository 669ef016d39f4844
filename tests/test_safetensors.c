/* Safetensors reader: valid files and shard folders, and one test per kind of
 * damage (truncation, bad offsets, dtype/shape mismatch, overlap, duplicates,
 * bad JSON). Parsers read from a buffer that ends at a guard page. */
#include "safetensors.h"
#include "st_build.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const int64_t SHAPE_4x8[2] = {4, 8};

static st_build *sample(void) {
    st_build *b = st_build_new();
    int64_t one = 3, tid[2] = {5, 2};
    float f[3] = {1.0f, -2.0f, 0.5f};
    int64_t ids[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    st_build_add_fill(b, "layers.0.attn.wq_a.weight", LT_DT_F8_E4M3, 2, SHAPE_4x8);
    st_build_add(b, "layers.0.attn.attn_sink", LT_DT_F32, 1, &one, f);
    st_build_add(b, "layers.0.ffn.gate.tid2eid", LT_DT_I64, 2, tid, ids);
    return b;
}

/* Parses raw bytes from a guarded buffer; returns status and fills err. */
static lt_status parse_bytes(const uint8_t *bytes, size_t n, lt_error *err) {
    lt_store s;
    memset(&s, 0, sizeof s);
    uint8_t *g = lt_test_guarded_copy(bytes, n);
    lt_status st = lt_store_parse(&s, g, n, 0, "x.safetensors", err);
    lt_store_close(&s);
    lt_test_guarded_free(g);
    return st;
}

/* Replaces the first occurrence of `from` in the header by `to` (same length). */
static void patch(uint8_t *bytes, size_t n, const char *from, const char *to) {
    size_t lf = strlen(from);
    for (size_t i = 0; i + lf <= n; i++)
        if (!memcmp(bytes + i, from, lf)) { memcpy(bytes + i, to, lf); return; }
}

LT_TEST(safetensors, parse_valid) {
    st_build *b = sample();
    size_t n;
    uint8_t *bytes = st_build_bytes(b, &n);
    const char *path = lt_test_write_temp("valid.safetensors", bytes, n);
    lt_store s;
    lt_error err = {0};
    CHECKF(lt_store_open_file(&s, path, &err) == LT_OK, "%s", err.msg);
    CHECK(s.n_tensors == 3);
    const lt_tensor *t = lt_store_find(&s, "layers.0.ffn.gate.tid2eid");
    CHECK(t && t->dtype == LT_DT_I64 && t->ndim == 2 && t->shape[0] == 5 && t->shape[1] == 2);
    CHECK(t && ((const int64_t *)t->data)[7] == 7);
    t = lt_store_find(&s, "layers.0.attn.attn_sink");
    CHECK(t && ((const float *)t->data)[1] == -2.0f);
    CHECK(lt_store_find(&s, "nope") == NULL);
    CHECK(s.meta_json && strstr(s.meta_json, "\"pt\""));
    lt_store_close(&s);
    free(bytes);
    st_build_free(b);
}

LT_TEST(safetensors, misaligned_tensors_are_readable) {
    st_build *b = st_build_new();
    int64_t three = 3, two = 2;
    uint8_t odd[3] = {1, 2, 3};
    float f[2] = {1.5f, -7.0f};
    st_build_add(b, "a", LT_DT_U8, 1, &three, odd);
    st_build_add(b, "b", LT_DT_F32, 1, &two, f);
    size_t n;
    uint8_t *bytes = st_build_bytes(b, &n);
    lt_store s;
    lt_error err = {0};
    memset(&s, 0, sizeof s);
    CHECKF(lt_store_parse(&s, bytes, n, 0, "m", &err) == LT_OK, "%s", err.msg);
    const lt_tensor *t = lt_store_find(&s, "b");
    CHECK(t && ((uintptr_t)t->data % 4) == 0 && ((const float *)t->data)[1] == -7.0f);
    lt_store_close(&s);
    free(bytes);
    st_build_free(b);
}

LT_TEST(safetensors, truncated_file) {
    st_build *b = sample();
    size_t n;
    uint8_t *bytes = st_build_bytes(b, &n);
    lt_error err = {0};
    CHECK(parse_bytes(bytes, n - 5, &err) == LT_ERR_FORMAT);
    CHECKF(strstr(err.msg, "outside the data section") != NULL, "message: %s", err.msg);
    CHECK(parse_bytes(bytes, 40, &err) == LT_ERR_FORMAT);
    CHECKF(strstr(err.msg, "truncated") != NULL, "message: %s", err.msg);
    CHECK(parse_bytes(bytes, 5, &err) == LT_ERR_FORMAT);
    free(bytes);
    st_build_free(b);
}

LT_TEST(safetensors, out_of_range_offset) {
    st_build *b = sample();
    size_t n;
    uint8_t *bytes = st_build_bytes(b, &n);
    patch(bytes, n, "\"data_offsets\":[44,124]", "\"data_offsets\":[44,924]");
    lt_error err = {0};
    CHECK(parse_bytes(bytes, n, &err) == LT_ERR_FORMAT);
    CHECKF(strstr(err.msg, "tid2eid") && strstr(err.msg, "outside"), "message: %s", err.msg);
    free(bytes);
    st_build_free(b);
}

LT_TEST(safetensors, dtype_shape_mismatch) {
    st_build *b = sample();
    size_t n;
    uint8_t *bytes = st_build_bytes(b, &n);
    patch(bytes, n, "\"F8_E4M3\"", "\"BF16\"   "); /* 32 elements of BF16 need 64 bytes */
    lt_error err = {0};
    CHECK(parse_bytes(bytes, n, &err) == LT_ERR_FORMAT);
    CHECKF(strstr(err.msg, "wq_a") && strstr(err.msg, "BF16"), "message: %s", err.msg);
    patch(bytes, n, "\"BF16\"   ", "\"F9_XX\"  ");
    CHECK(parse_bytes(bytes, n, &err) == LT_ERR_FORMAT);
    CHECKF(strstr(err.msg, "unknown or missing dtype F9_XX"), "message: %s", err.msg);
    free(bytes);
    st_build_free(b);
}

LT_TEST(safetensors, overlap_duplicate_badjson) {
    st_build *b = sample();
    size_t n;
    uint8_t *bytes = st_build_bytes(b, &n);
    uint8_t *copy = malloc(n);
    lt_error err = {0};
    memcpy(copy, bytes, n);
    patch(copy, n, "\"data_offsets\":[32,44]", "\"data_offsets\":[20,32]");
    CHECK(parse_bytes(copy, n, &err) == LT_ERR_FORMAT);
    CHECKF(strstr(err.msg, "overlap"), "message: %s", err.msg);
    memcpy(copy, bytes, n);
    patch(copy, n, "layers.0.ffn.gate.tid2eid", "layers.0.attn.wq_a.weight"); /* a duplicate key */
    CHECK(parse_bytes(copy, n, &err) == LT_ERR_FORMAT);
    CHECKF(strstr(err.msg, "JSON"), "message: %s", err.msg);
    memcpy(copy, bytes, n);
    patch(copy, n, "{\"__meta", "[\"__meta");
    CHECK(parse_bytes(copy, n, &err) == LT_ERR_FORMAT);
    CHECKF(strstr(err.msg, "JSON"), "message: %s", err.msg);
    /* every truncation point of the file fails cleanly, never reads past the end */
    for (size_t cut = 0; cut < n; cut += 3) CHECK(parse_bytes(bytes, cut, &err) != LT_OK);
    free(copy);
    free(bytes);
    st_build_free(b);
}

LT_TEST(safetensors, duplicate_names_across_shards) {
    const char *dir = lt_test_tmpdir();
    char sub[600], path[700];
    snprintf(sub, sizeof sub, "%s/dup", dir);
    mkdir(sub, 0755);
    st_build *b = sample();
    snprintf(path, sizeof path, "%s/s1.safetensors", sub); st_build_write(b, path);
    snprintf(path, sizeof path, "%s/s2.safetensors", sub); st_build_write(b, path);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", sub);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"weight_map\":{\"layers.0.attn.wq_a.weight\":\"s1.safetensors\",\"layers.0.attn.attn_sink\":\"s2.safetensors\"}}");
    fclose(f);
    lt_store s;
    lt_error err = {0};
    CHECK(lt_store_open_dir(&s, sub, 0, &err) == LT_ERR_FORMAT);
    CHECKF(strstr(err.msg, "also appears"), "message: %s", err.msg);
    st_build_free(b);
}

LT_TEST(safetensors, sharded_folder) {
    const char *dir = lt_test_tmpdir();
    char sub[600], path[700];
    snprintf(sub, sizeof sub, "%s/sharded", dir);
    mkdir(sub, 0755);
    st_build *b1 = st_build_new(), *b2 = st_build_new();
    st_build_add_fill(b1, "a.weight", LT_DT_BF16, 2, SHAPE_4x8);
    st_build_add_fill(b2, "b.weight", LT_DT_F8_E4M3, 2, SHAPE_4x8);
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", sub); st_build_write(b1, path);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", sub); st_build_write(b2, path);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", sub);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"metadata\":{\"total_size\":96},\"weight_map\":{\"a.weight\":\"model-00001-of-00002.safetensors\","
               "\"b.weight\":\"model-00002-of-00002.safetensors\"}}");
    fclose(f);
    lt_store s;
    lt_error err = {0};
    CHECKF(lt_store_open_dir(&s, sub, 0, &err) == LT_OK, "%s", err.msg);
    CHECK(s.n_files == 2 && s.n_tensors == 2);
    CHECK(lt_store_find(&s, "b.weight") && lt_store_find(&s, "b.weight")->file == 1);
    lt_store_close(&s);
    /* an index naming a tensor its shard lacks */
    f = fopen(path, "w");
    fprintf(f, "{\"weight_map\":{\"a.weight\":\"model-00001-of-00002.safetensors\",\"c.weight\":\"model-00002-of-00002.safetensors\"}}");
    fclose(f);
    CHECK(lt_store_open_dir(&s, sub, 0, &err) == LT_ERR_INVENTORY);
    CHECKF(strstr(err.msg, "c.weight") && strstr(err.msg, "missing"), "message: %s", err.msg);
    /* a shard that is gone */
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", sub);
    remove(path);
    CHECK(lt_store_open_dir(&s, sub, 0, &err) == LT_ERR_IO);
    CHECKF(strstr(err.msg, "model-00002-of-00002.safetensors"), "message: %s", err.msg);
    CHECK(lt_store_open_dir(&s, "/nonexistent-lantern-dir", 0, &err) == LT_ERR_IO);
    st_build_free(b1);
    st_build_free(b2);
}

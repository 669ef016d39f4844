/* Tensor inventory: every tensor a checkpoint must hold, with its exact name,
 * dtype and shape, derived from the config alone (spec 4.9, 5, 6; V4 April
 * MTP, 0731 and V4.1 DSpark stages, V4.1 Engram and vision), and the check of
 * that list against what the safetensors files hold. The check runs before
 * any compute, so a wrong or partial download fails with the tensor's name
 * instead of a crash. */
#ifndef LT_INVENTORY_H
#define LT_INVENTORY_H

#include "config.h"
#include "safetensors.h"

/* What a tensor is for, which decides whether one decoded token reads it. */
typedef enum {
    LT_PART_DENSE,   /* backbone weights every decoded token reads whole */
    LT_PART_EXPERT,  /* backbone routed experts: top-k of n per layer */
    LT_PART_EMBED,   /* token-indexed tables: embed.weight, ffn.gate.tid2eid */
    LT_PART_ENGRAM,  /* V4.1 Engram n-gram tables (embed.weight/.scale) */
    LT_PART_MTP,     /* MTP / DSpark draft stages (speculative decoding only) */
    LT_PART_VISION,  /* vision tower, aligner, image delimiters (images only) */
    LT_PART_COUNT
} lt_inv_part;

#define LT_INV_NAME_MAX 64

typedef struct {
    char name[LT_INV_NAME_MAX];  /* checkpoint name, e.g. "layers.3.ffn.experts.7.w1.scale" */
    lt_dtype dtype;
    int ndim;                    /* 1 or 2 */
    int64_t shape[2];
    lt_inv_part part;
    int rows_per_token;          /* tables (EMBED, ENGRAM): rows one token reads; 0 otherwise */
} lt_inv_tensor;

typedef struct {
    lt_inv_tensor *tensors;
    int64_t n_tensors, cap;
} lt_inventory;

/* Derives the inventory of a validated config. */
lt_status lt_inventory_build(lt_inventory *inv, const lt_config *c, lt_error *err);
void lt_inventory_free(lt_inventory *inv);

uint64_t lt_inv_tensor_bytes(const lt_inv_tensor *t);
/* Parameters a tensor holds: elements, two per byte for packed FP4 (I8);
 * 0 for block scales and the tid2eid routing table, which are not weights. */
uint64_t lt_inv_tensor_params(const lt_inv_tensor *t);

typedef struct {
    int64_t n_tensors;
    uint64_t bytes;
    int64_t n_dtype[LT_DT_COUNT];
    uint64_t bytes_dtype[LT_DT_COUNT];
    uint64_t params;                     /* every tensor, all parts */
    uint64_t params_part[LT_PART_COUNT];
    uint64_t bytes_part[LT_PART_COUNT];
    /* One decoded token of the backbone (no drafts, no image): dense weights
     * whole, n_experts_per_tok of n_routed_experts routed experts per layer,
     * and only the rows it looks up of embed, tid2eid and the Engram tables. */
    uint64_t active_params;
    uint64_t bytes_per_token;            /* the same, in checkpoint bytes (scales included) */
} lt_inventory_stats;

void lt_inventory_summarize(const lt_inventory *inv, const lt_config *c, lt_inventory_stats *s);

/* Every problem found by a check, one line each. Missing tensors and wrong
 * shapes, dtypes or sizes are problems; tensors the inventory does not know
 * are warnings (lines starting "warning:"). */
typedef struct {
    char **lines;
    int64_t n_lines, cap;
    int64_t n_problems, n_warnings;
} lt_inventory_report;

void lt_inventory_report_free(lt_inventory_report *r);

/* Compares the inventory with the tensors of an open store. Returns
 * LT_ERR_INVENTORY, with the first problem and the count in err, if any
 * tensor is missing or has a wrong shape or dtype; extra tensors alone return
 * LT_OK. rep, when non-NULL, receives every line. */
lt_status lt_inventory_check(const lt_inventory *inv, const lt_store *s, lt_inventory_report *rep, lt_error *err);

/* Compares the inventory with a model.safetensors.index.json without opening
 * the shards: tensor names, and metadata.total_size against the derived bytes. */
lt_status lt_inventory_check_index(const lt_inventory *inv, const char *index_path, lt_inventory_report *rep,
                                   lt_error *err);

#endif

/* Comparing the forward pass with an oracle file (tools/oracle's
 * "lantern-oracle" format: input_ids I64 [T]; logits F32 [T, V]; hidden.L
 * F32 [T, hc, D] after each block; final_hidden F32 [T, D] after hc_head +
 * norm; router.L.experts / .weights [T, k] sorted by expert id;
 * indexer.L.topk [T, K] ascending with -1 padding; mtp_logits, mtp_hidden,
 * mtp_router.* over T-1 rows). One full forward of input_ids runs with a
 * trace; the report gives the worst error of every block and names the
 * first block out of tolerance, which is where a port goes wrong first.
 * Oracle tensors that are absent are skipped; present ones must fit. */
#ifndef LT_COMPARE_H
#define LT_COMPARE_H

#include "model.h"

#include <stdio.h>

typedef struct {
    int n_blocks;                     /* trunk layers, then the MTP block when compared */
    float hidden[LT_MAX_LAYERS + 1];  /* worst max|dX| / max|X| per block; -1: not in the oracle */
    int first_bad;                    /* first block whose hidden exceeds tol; -1: none */
    float final_hidden;               /* max|dy| / max|y|; -1: not in the oracle */
    float logits_abs, logits_rel;     /* worst position: max|dlogit| and that over max|logit| */
    float mtp_logits;                 /* the same relative figure for the MTP head; -1: not compared */
    int64_t positions, top1_agree;    /* positions whose argmax matches the oracle's */
    int64_t router_rows, router_diff; /* rows whose expert set differs */
    float router_weights;             /* max |dweight| over rows with the same experts */
    int64_t indexer_rows, indexer_diff;
} lt_compare;

/* Runs input_ids of the oracle through m (in m's numeric mode) and fills r;
 * tol is the relative tolerance that first_bad uses. Fails on an oracle
 * tensor of the wrong dtype or shape, naming it. */
lt_status lt_compare_run(lt_model *m, const lt_store *oracle, double tol, lt_compare *r, lt_error *err);

/* The report, one line per block. */
void lt_compare_print(const lt_compare *r, double tol, FILE *f);

#endif

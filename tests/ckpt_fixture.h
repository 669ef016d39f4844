/* Test helper shared by the inventory and inspect tests: a tiny V4 config and
 * a writer for a whole checkpoint of its inventory, with optional damage. */
#ifndef LT_CKPT_FIXTURE_H
#define LT_CKPT_FIXTURE_H

#include "inventory.h"

/* A V4 model small enough to write whole (defined in tests/test_inventory.c). */
extern const char test_tiny_v4_config[];

/* Edits applied while writing a checkpoint: a tensor left out, one with a
 * wrong first dimension, one with a wrong dtype, and one unknown extra. */
typedef struct { const char *drop, *reshape, *retype, *extra; } test_ckpt_edit;

/* Writes the inventory as one safetensors file at path (filled data). */
int test_write_checkpoint(const lt_inventory *inv, const char *path, const test_ckpt_edit *e);

#endif

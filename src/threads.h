/* A persistent pool of worker threads for the hot loops. lt_linear splits
 * every product across it; model code runs independent pieces of one token
 * (routed experts, attention heads) through lt_parallel_for.
 *
 * There is one pool per process, like the kernel table: its size is set once
 * (lantern -t N, lt_model_params.n_threads) and defaults to the number of
 * physical cores available to the process. Workers spin briefly between jobs
 * (decode issues ~30 products per layer back to back), then sleep.
 *
 * Nested or concurrent use is safe: a call made from inside a running item,
 * or while another thread's job holds the pool, runs its items serially on
 * the calling thread. */
#ifndef LT_THREADS_H
#define LT_THREADS_H

#include "lantern.h"

#include <stdint.h>

/* One item of a parallel loop. tid identifies the running thread, in
 * [0, lt_threads_count()), and is unique among the threads of one call: use
 * it to pick a per-thread scratch slice. */
typedef void (*lt_task_fn)(void *ctx, int64_t item, int tid);

/* Runs fn(ctx, i, tid) for every i in [0, n_items) and returns when all have
 * finished. Items are handed out dynamically in increasing order, so put the
 * big ones first and make them several per thread for balance. */
void lt_parallel_for(int64_t n_items, lt_task_fn fn, void *ctx);

/* The pool size (calling thread included); starts the default pool if none. */
int lt_threads_count(void);

/* Sets the pool size; 0 means lt_threads_physical_cores(). Must not be called
 * while a parallel loop runs. Fails on n outside [0, LT_MAX_THREADS] or when
 * a thread cannot be created. */
#define LT_MAX_THREADS 256
lt_status lt_threads_set(int n, lt_error *err);

/* Physical cores among the CPUs this process may run on (sched_getaffinity
 * plus /sys/devices/system/cpu/cpuN/topology core and package ids, so SMT
 * siblings count once); the CPU count when sysfs is unreadable. */
int lt_threads_physical_cores(void);

#endif

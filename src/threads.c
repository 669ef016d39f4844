/* The process-wide worker pool behind lt_parallel_for (threads.h).
 *
 * A job is (fn, ctx, n_items). The submitting thread publishes it by bumping
 * a generation counter, works on it as tid 0 and waits until every worker has
 * checked out. Items are claimed one at a time from an atomic counter, which
 * balances uneven items and cores that the OS lends to someone else. Waiting
 * workers spin for LT_SPIN_S (back-to-back products in decode are microseconds
 * apart), then block on a condition variable. */
#include "threads.h"
#include "util.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define LT_SPIN_S 200e-6

/* a polite busy-wait step (lets an SMT sibling run) */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static struct {
    /* the running job, written by the submitter before gen is bumped */
    lt_task_fn fn;
    void *ctx;
    int64_t n_items;
    atomic_int_fast64_t next;  /* next item to hand out */
    atomic_int pending;        /* workers that have not finished the job */
    atomic_uint gen;           /* job generation; workers wait for it to change */
    atomic_int sleeping;       /* workers blocked on cv */
    atomic_int stop;
    unsigned start_gen;        /* gen when the workers were created */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t *workers;        /* [n - 1] */
    int n;                     /* threads including the submitter; 0 until started */
} g_pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* held by the thread that runs a job or resizes the pool */
static pthread_mutex_t g_owner = PTHREAD_MUTEX_INITIALIZER;
/* this thread's tid while it runs items, else -1 */
static _Thread_local int t_tid = -1;

static void run_items(int tid) {
    int outer = t_tid;
    t_tid = tid;
    for (;;) {
        int64_t i = atomic_fetch_add_explicit(&g_pool.next, 1, memory_order_relaxed);
        if (i >= g_pool.n_items) break;
        g_pool.fn(g_pool.ctx, i, tid);
    }
    t_tid = outer;
}

/* returns the first generation different from seen (or any, once stopping) */
static unsigned wait_job(unsigned seen) {
    double t0 = lt_time_s();
    for (int spin = 1;; spin++) {
        unsigned g = atomic_load_explicit(&g_pool.gen, memory_order_acquire);
        if (g != seen) return g;
        if (spin % 64 == 0 && lt_time_s() - t0 > LT_SPIN_S) break;
        cpu_relax();
    }
    /* sleeping is raised before gen is re-read, so a submitter that bumps gen
     * afterwards sees sleeping > 0 and broadcasts under mu */
    pthread_mutex_lock(&g_pool.mu);
    atomic_fetch_add(&g_pool.sleeping, 1);
    unsigned g;
    while ((g = atomic_load(&g_pool.gen)) == seen) pthread_cond_wait(&g_pool.cv, &g_pool.mu);
    atomic_fetch_sub(&g_pool.sleeping, 1);
    pthread_mutex_unlock(&g_pool.mu);
    return g;
}

static void *worker_main(void *arg) {
    int tid = (int)(intptr_t)arg;
    unsigned seen = g_pool.start_gen;
    for (;;) {
        seen = wait_job(seen);
        if (atomic_load(&g_pool.stop)) return NULL;
        run_items(tid);
        atomic_fetch_sub_explicit(&g_pool.pending, 1, memory_order_release);
    }
}

/* wakes every worker for the job (or the stop) just published in gen */
static void publish(void) {
    atomic_fetch_add(&g_pool.gen, 1);
    if (atomic_load(&g_pool.sleeping) > 0) {
        pthread_mutex_lock(&g_pool.mu);
        pthread_cond_broadcast(&g_pool.cv);
        pthread_mutex_unlock(&g_pool.mu);
    }
}

/* joins the workers; the caller holds g_owner */
static void pool_stop(void) {
    if (g_pool.n > 1) {
        atomic_store(&g_pool.stop, 1);
        publish();
        for (int i = 0; i < g_pool.n - 1; i++) pthread_join(g_pool.workers[i], NULL);
        atomic_store(&g_pool.stop, 0);
    }
    free(g_pool.workers);
    g_pool.workers = NULL;
    g_pool.n = 0;
}

static void pool_exit(void) {
    pthread_mutex_lock(&g_owner);
    pool_stop();
    pthread_mutex_unlock(&g_owner);
}

/* starts n - 1 workers; the caller holds g_owner and no pool runs */
static lt_status pool_start(int n, lt_error *err) {
    static int registered;
    if (!registered) registered = atexit(pool_exit) == 0;
    g_pool.workers = lt_calloc((size_t)n, sizeof *g_pool.workers, "thread pool", err);
    if (!g_pool.workers) return LT_ERR_NOMEM;
    g_pool.start_gen = atomic_load(&g_pool.gen);
    for (int i = 0; i < n - 1; i++) {
        if (pthread_create(&g_pool.workers[i], NULL, worker_main, (void *)(intptr_t)(i + 1)) != 0) {
            g_pool.n = i + 1;
            pool_stop();
            return lt_fail(err, LT_ERR_NOMEM, "cannot start worker thread %d of %d", i + 1, n - 1);
        }
    }
    g_pool.n = n;
    return LT_OK;
}

/* the default pool; the caller holds g_owner. A pool that cannot start runs
 * every loop on the calling thread. */
static void pool_ensure(void) {
    if (g_pool.n == 0 && pool_start(lt_threads_physical_cores(), NULL) != LT_OK) pool_start(1, NULL);
}

void lt_parallel_for(int64_t n_items, lt_task_fn fn, void *ctx) {
    if (n_items > 1 && t_tid < 0 && pthread_mutex_trylock(&g_owner) == 0) {
        pool_ensure();
        if (g_pool.n > 1) {
            g_pool.fn = fn;
            g_pool.ctx = ctx;
            g_pool.n_items = n_items;
            atomic_store_explicit(&g_pool.next, 0, memory_order_relaxed);
            atomic_store_explicit(&g_pool.pending, g_pool.n - 1, memory_order_relaxed);
            publish();
            run_items(0);
            for (int spin = 1; atomic_load_explicit(&g_pool.pending, memory_order_acquire) > 0; spin++) {
                if (spin % 1024 == 0) sched_yield(); /* a worker lost its core */
                cpu_relax();
            }
            pthread_mutex_unlock(&g_owner);
            return;
        }
        pthread_mutex_unlock(&g_owner);
    }
    int tid = t_tid < 0 ? 0 : t_tid;
    for (int64_t i = 0; i < n_items; i++) fn(ctx, i, tid);
}

int lt_threads_count(void) {
    if (t_tid >= 0) return g_pool.n; /* inside a job: the pool is running */
    pthread_mutex_lock(&g_owner);
    pool_ensure();
    int n = g_pool.n;
    pthread_mutex_unlock(&g_owner);
    return n;
}

lt_status lt_threads_set(int n, lt_error *err) {
    if (n < 0 || n > LT_MAX_THREADS)
        return lt_fail(err, LT_ERR_ARG, "thread count %d must be in [0, %d] (0 = physical cores)", n, LT_MAX_THREADS);
    if (t_tid >= 0) return lt_fail(err, LT_ERR_ARG, "lt_threads_set called from inside a parallel loop");
    if (n == 0) n = lt_threads_physical_cores();
    pthread_mutex_lock(&g_owner);
    lt_status st = LT_OK;
    if (g_pool.n != n) {
        pool_stop();
        st = pool_start(n, err);
        if (st != LT_OK) pool_start(1, NULL);
    }
    pthread_mutex_unlock(&g_owner);
    return st;
}

static int read_long(const char *path, long *out) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int ok = fscanf(f, "%ld", out) == 1;
    fclose(f);
    return ok;
}

int lt_threads_physical_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? (int)LT_MIN(n, LT_MAX_THREADS) : 1;
    }
    int n_cpu = CPU_COUNT(&set), n_cores = 0;
    long cores[CPU_SETSIZE];
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &set)) continue;
        char path[128];
        long core, pkg;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", c);
        if (!read_long(path, &core)) return LT_MIN(n_cpu, LT_MAX_THREADS);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", c);
        if (!read_long(path, &pkg)) return LT_MIN(n_cpu, LT_MAX_THREADS);
        long id = pkg << 32 | core;
        int seen = 0;
        for (int i = 0; i < n_cores && !seen; i++) seen = cores[i] == id;
        if (!seen) cores[n_cores++] = id;
    }
    return n_cores ? LT_MIN(n_cores, LT_MAX_THREADS) : 1;
}

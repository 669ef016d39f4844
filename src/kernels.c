/* Kernel table selection: the best table this CPU supports, or a forced one.
 * The CPUID checks (which include the OS having enabled the register state)
 * are the only ISA tests outside the kernel leaf files. */
#include "kernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* every table this build holds, best first, with its CPU requirement */
#if defined(__x86_64__)
static int cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

static int cpu_has_avx512(void) {
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

static int cpu_has_avx512_vnni(void) { return cpu_has_avx512() && __builtin_cpu_supports("avx512vnni"); }

static int cpu_has_avx512_bf16(void) {
    if (!cpu_has_avx512_vnni() || !__builtin_cpu_supports("avx512bf16")) return 0;
    lt_kernels_bf16_init();
    return 1;
}

static int cpu_has_avx512_amx(void) { return cpu_has_avx512_bf16() && lt_kernels_amx_init(); }
#endif

static int cpu_any(void) { return 1; }

static const struct {
    const lt_kernels *k;
    int (*supported)(void);
} tables[] = {
#if defined(__x86_64__)
    {&lt_kernels_avx512_amx, cpu_has_avx512_amx},
    {&lt_kernels_avx512_bf16, cpu_has_avx512_bf16},
    {&lt_kernels_avx512_vnni, cpu_has_avx512_vnni},
    {&lt_kernels_avx512, cpu_has_avx512},
    {&lt_kernels_avx2, cpu_has_avx2},
#elif defined(__aarch64__)
    {&lt_kernels_neon, cpu_any}, /* Advanced SIMD is part of AArch64 */
#endif
    {&lt_kernels_ref, cpu_any},
};
#define N_TABLES (sizeof tables / sizeof tables[0])

static _Atomic(const lt_kernels *) g_kernels;
static const char *g_available[N_TABLES + 1];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void detect(void) {
    size_t n = 0;
    for (size_t i = 0; i < N_TABLES; i++)
        if (tables[i].supported()) g_available[n++] = tables[i].k->name;
    g_available[n] = NULL;
}

const char *const *lt_kernels_available(void) {
    pthread_once(&g_once, detect);
    return g_available;
}

int lt_kernels_init(const char *name) {
    for (size_t i = 0; i < N_TABLES; i++) {
        if (name && strcmp(name, tables[i].k->name) != 0) continue;
        if (!tables[i].supported()) return 0;
        atomic_store(&g_kernels, tables[i].k);
        return 1;
    }
    return 0;
}

const lt_kernels *lt_kern(void) {
    const lt_kernels *k = atomic_load_explicit(&g_kernels, memory_order_acquire);
    if (!k) {
        lt_kernels_init(NULL);
        k = atomic_load(&g_kernels);
    }
    return k;
}

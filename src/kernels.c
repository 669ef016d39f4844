/* Kernel table selection: the best table this CPU supports, or a forced one. */
#include "kernels.h"

#include <string.h>

static const lt_kernels *g_kernels = &lt_kernels_ref;

int lt_kernels_init(const char *name) {
    if (name && strcmp(name, "ref") != 0) return 0;
    g_kernels = &lt_kernels_ref;
    return 1;
}

const lt_kernels *lt_kern(void) { return g_kernels; }

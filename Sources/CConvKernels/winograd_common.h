#ifndef IFCN_WINOGRAD_COMMON_H
#define IFCN_WINOGRAD_COMMON_H

// What the F(2,3) and F(4,3) kernels share (not part of the module's interface).

#include <stddef.h>

/// U = G g G^T per axis (in double) for a^3 components, G given row-major (a x 3); layout [e][output block][ci][s].
void ifcn_winograd_pack_generic(const float *w, int cin, int cout, int transpose_flip, int a, const double *G, float *u)
    __attribute__((visibility("hidden")));

#endif

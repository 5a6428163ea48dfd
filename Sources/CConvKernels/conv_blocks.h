#ifndef IFCN_CONV_BLOCKS_H
#define IFCN_CONV_BLOCKS_H

// Output-channel blocks of the 3 x 4-vector register tile shared by the direct and Winograd kernels:
// threes, with a tail of 2, or 2 + 2 instead of 3 + 1.
static inline int ifcn_output_block_size(int co, int cout) {
    int left = cout - co;
    if (left >= 5 || left == 3) return 3;
    return left == 4 ? 2 : left;
}

#endif

// The direct and Winograd 3x3x3 convolution kernels (AVX2 + FMA, selected at run time).
#include "ifcn_conv3.h"
#include "ifcn_winograd.h"

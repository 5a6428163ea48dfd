// The emulator's table of kernels: each `extern "C" __global__` function of ifcn's CUDA source,
// called with cuLaunchKernel's parameter array (one pointer to each argument, as the driver takes them).
// scripts/cuda_emulator.sh generates the table itself from the kernel names in the source.
#pragma once

#include <cstddef>
#include <utility>

struct ifcn_emulator_kernel {
    const char *name;
    void (*launch)(void **params);
};

template <typename... A, std::size_t... I>
void ifcn_emulator_invoke(void (*kernel)(A...), void **params, std::index_sequence<I...>) {
    kernel(*static_cast<A *>(params[I])...);
}

template <typename... A>
void ifcn_emulator_call(void (*kernel)(A...), void **params) {
    ifcn_emulator_invoke(kernel, params, std::index_sequence_for<A...>{});
}

template <auto Kernel>
void ifcn_emulator_launch(void **params) {
    ifcn_emulator_call(Kernel, params);
}

// Private to src/mpc: conv2d_u64 on the AMX ring GEMM, packing B from byte planes of the input
// instead of a uint64 im2col matrix (ring_conv_amx.cpp).
#pragma once

#include "veil/mpc/kernels/ring_kernels.hpp"

namespace veil::mpc::detail {

// Whether conv2d_u64_amx applies: AMX usable and a product shape the AMX GEMM would take.
bool conv2d_u64_amx_suits(const Conv2dGeometry& g);

// y = conv(x, w) over Z_2^64, as conv2d_u64; `threads` split the output pixels.
void conv2d_u64_amx(const Conv2dGeometry& g, const uint64_t* x, const uint64_t* w, uint64_t* y,
                    int threads);

}  // namespace veil::mpc::detail

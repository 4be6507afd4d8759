// Floats drawn from an AES-CTR keystream (veil/core/random.hpp), for the schemes' secrets: fake
// filters, scales, mixing matrices, masks. Every secret float comes from a PRG seeded by
// veil::random_seed(), never from std::mt19937.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/core/random.hpp"
#include "veil/core/tensor.hpp"

namespace veil::split {

// Uniform in [0, 1) with 53 random bits.
double prg_unit(AesCtrPrg& prg);
// Uniform in [lo, hi).
double prg_uniform(AesCtrPrg& prg, double lo, double hi);
// Standard normal (Box-Muller on two prg_unit draws).
double prg_gaussian(AesCtrPrg& prg);

// `out` filled with mean + std * N(0, 1).
void prg_gaussian_fill(AesCtrPrg& prg, std::span<float> out, double mean = 0, double std = 1);
// A float tensor of `shape` filled as prg_gaussian_fill.
Tensor prg_gaussian_tensor(AesCtrPrg& prg, Shape shape, double mean = 0, double std = 1);
// +1 or -1 with probability 1/2 each.
float prg_sign(AesCtrPrg& prg);
// A uniformly random permutation of 0..n-1 (Fisher-Yates).
std::vector<int64_t> prg_permutation(AesCtrPrg& prg, int64_t n);

}  // namespace veil::split

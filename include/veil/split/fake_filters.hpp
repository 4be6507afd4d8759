// The fake output channels ShadowNet and the hardened scheme add to a layer.
#pragma once

#include <cstdint>

#include "veil/core/random.hpp"
#include "veil/core/tensor.hpp"

namespace veil::split {

// M = ceil(fake_ratio x n) output slots, at least n + 1 (every real filter needs a fake one).
// Throws InvalidArgument for n <= 0 or a fake_ratio that is not finite and >= 1.
int64_t slot_count(int64_t n, double fake_ratio);

// `count` fake filters shaped like weight's filters ([count, weight.shape()[1:]]), Gaussian with
// the mean and the standard deviation of all of weight's values. Trained filters are close to
// zero-mean and bell-shaped, and a Gaussian with the same two moments gives fake filters of the
// same norm (T x std^2 in expectation, T values per filter) and value histogram, so neither the
// norm nor the spread of an outsourced filter tells a fake from a real one.
Tensor draw_fake_filters(const Tensor& weight, int64_t count, AesCtrPrg& prg);

}  // namespace veil::split

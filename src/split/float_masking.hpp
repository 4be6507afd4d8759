// Private helpers of the float schemes (ShadowNet, hardened): input checks and mask arithmetic.
#pragma once

#include <cstdint>

#include "veil/core/error.hpp"
#include "veil/core/tensor.hpp"
#include "veil/split/linear_layer.hpp"

namespace veil::split::detail {

// Threads of the float schemes' own engine calls (mask products, checks). SchemeOptions carries
// no thread count, and 0 (the process-wide OpenMP setting) left OpenMP workers spinning between
// those calls and the scheme's serial restore loops: 5 to 10 times slower on 2 shared cores.
inline constexpr int kSchemeThreads = 1;

// The batch size of x [B, input_shape...]; throws InvalidArgument when x does not fit.
inline int64_t batch_of(const LinearLayer& layer, const Tensor& x) {
  const Shape& s = x.shape();
  bool ok = x.dtype() == DType::Float32 && s.size() == layer.input_shape.size() + 1 && s[0] > 0;
  for (size_t i = 0; ok && i < layer.input_shape.size(); ++i) ok = s[i + 1] == layer.input_shape[i];
  if (!ok)
    throw InvalidArgument("split: " + layer.name + ": input " + shape_to_string(s) +
                          " does not fit " + shape_to_string(layer.input_shape));
  return s[0];
}

// y [B, ...] += scale x per, where per has y's numel / B elements (one image) or all of them.
inline void add_scaled(Tensor& y, const Tensor& per, float scale) {
  const int64_t n = per.numel();
  if (n == 0 || y.numel() % n != 0) throw InvalidArgument("split: mask shape does not fit");
  const float* q = per.data();
  for (float* p = y.data(); p != y.data() + y.numel(); p += n)
    for (int64_t i = 0; i < n; ++i) p[i] += scale * q[i];
}

}  // namespace veil::split::detail

// Fixed-point encoding of a linear layer in Z_P for the schemes that blind with one-time pads
// (Slalom, DarkNight). Weights become integers w_q = round(w 2^fw), |w_q| <= 2^15 - 1 (the
// bound of apply_linear_field); a batch of inputs becomes x_q = round(x 2^fx); the accelerator's
// y_q = sum w_q x_q mod P is read back centred and scaled by 2^-(fx + fw), then the float bias is
// added.
//
// No wrap, ever: fx is chosen per batch so that the worst case of every output stays at most
// (P-1)/2. A wrap would decode to a plausible wrong value, so it is excluded by construction, not
// by probability. The worst case is taken per input channel: with a_c = max|x| over channel c of
// the batch and S_mc = sum over output m's filter for channel c of |w_q|, every output of channel
// m is at most sum_c S_mc round(a_c 2^fx) in magnitude; fx is the largest scale keeping that
// <= (P-1)/2 for every m (O(M C) work per batch). It is never coarser than the global bound
// S_max round(max|x| 2^fx), S_max = max_m sum_k |w_q[m,k]|, and finer when channels differ in
// range (dense layers after ReLU, say).
//
// Error: with w' = w_q 2^-fw, x' = x_q 2^-fx, w'x' - wx = w'(x' - x) + (w' - w)x, so every output
// m is off by at most
//     2^-(fx + fw + 1) S_m + 2^-(fw + 1) sum_k |x_k|        (x_k: the inputs of its window)
// (error_bound() gives the worst case over the batch: S_max and K max|x|, K = terms/output).
//
// Choosing fw: the no-wrap budget fixes 2^fx ~ 2^30 / (S_max max|x|) with S_max ~ L 2^fw
// (L = max_m sum_k |w[m,k]|), so fx + fw is pinned (more weight bits cost input bits one for
// one). What remains is the split: the two error terms are (1/2) L^2 max|x| 2^fw / 2^30 (input
// rounding) and (1/2) K max|x| 2^-fw (weight rounding); their sum is least where they are equal,
// 2^fw = 2^15 sqrt(K) / L, giving a worst-case error of about max|x| L sqrt(K) 2^-15, independent
// of the batch. fw is that, rounded, capped so that |w_q| <= 2^15 - 1.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/split/field.hpp"
#include "veil/split/linear_layer.hpp"
#include "veil/split/scheme.hpp"

namespace veil::split {

inline constexpr int64_t kQuantMaxWeight = kFieldMaxWeight - 1;                    // |w_q| bound
inline constexpr int64_t kQuantMaxOutput = static_cast<int64_t>(kFieldPrime / 2);  // (P-1)/2

// The largest f with round(max_abs 2^f) <= limit (round half away from zero); max_abs > 0 and
// finite, limit >= 1.
int largest_frac_bits(double max_abs, int64_t limit);

struct QuantizedInput {
  FieldTensor x;  // [B, input_shape...], x_q mod P
  int frac_bits = 0;
};

class LayerQuantizer {
 public:
  // Quantises the layer's weights. options.weight_frac_bits >= 0 forces fw (InvalidArgument when
  // a weight would exceed 2^15 - 1); options.input_frac_bits >= 0 caps fx (the per-batch choice
  // never exceeds it, and never exceeds the no-wrap bound). Throws InvalidArgument on non-finite
  // weights or a layer whose sums could not be bounded.
  LayerQuantizer(const LinearLayer& layer, const SchemeOptions& options);

  const FieldTensor& weight() const { return weight_; }  // [M, ...], w_q mod P
  int weight_frac_bits() const { return weight_frac_bits_; }
  int64_t max_row_sum() const { return max_row_sum_; }  // S_max
  // The largest |x_q| when every input may reach it: (P-1)/2 / S_max.
  int64_t input_limit() const { return input_limit_; }

  // Chooses fx for this batch from max|x| and encodes x [B, input_shape...]. Throws
  // InvalidArgument on NaN or Inf (never a confident answer from garbage) or a shape mismatch.
  QuantizedInput quantize(const Tensor& x) const;
  // y [B, output_shape...] in Z_P -> centred(y) 2^-(fx + fw) + bias, as float.
  Tensor dequantize(const FieldTensor& y, int input_frac_bits) const;
  // The worst-case error of any output for inputs bounded by max_abs_x encoded with fx.
  double error_bound(double max_abs_x, int input_frac_bits) const;

  // Bytes held (the quantised weight is the bulk; release_weight() drops it).
  size_t bytes() const;
  void release_weight() { weight_ = FieldTensor{}; }

 private:
  // The finest no-wrap scale for per-channel input maxima a_c.
  int input_frac_bits(const std::vector<double>& a) const;

  Shape input_shape_;
  Tensor bias_;
  int64_t out_channels_ = 0;
  int64_t channels_ = 0;
  int64_t terms_ = 0;
  int input_cap_ = -1;
  FieldTensor weight_;
  int weight_frac_bits_ = 0;
  int64_t max_row_sum_ = 0;
  int64_t input_limit_ = 0;
  std::vector<int64_t> channel_sums_;  // S_mc, [M, C]
};

}  // namespace veil::split

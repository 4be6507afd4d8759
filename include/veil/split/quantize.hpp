// Fixed-point encoding of a linear layer in Z_P for the schemes that blind with one-time pads
// (Slalom, DarkNight). Weights become integers w_q = round(w 2^fw), |w_q| <= 2^15 - 1 (the
// bound of apply_linear_field); a batch of inputs becomes x_q = round(x 2^fx); the accelerator's
// y_q = sum w_q x_q mod P is read back in a window known not to wrap (below) and scaled by
// 2^-(fx + fw), then the float bias is added.
//
// No wrap, ever: a wrapped sum would decode to a plausible wrong value, so it is excluded by
// construction, not by probability. Per batch, each input channel c has a range [lo_c, hi_c]
// (its min and max over the batch, widened to hold 0 for the padding); with P_mc and N_mc the
// sums of output m's positive and negative quantised weights on channel c, every output of
// channel m lies in [low_m, low_m + width_m], low_m = sum_c (P_mc lo_qc - N_mc hi_qc) and
// width_m = sum_c (P_mc + N_mc)(hi_qc - lo_qc). fx is the largest scale with width_m <= P - 1
// for every m (O(M C) work per batch), and decoding reads each output as the one representative
// of its residue in [low_m, low_m + P). For symmetric inputs that is the centred range, |y| <=
// (P-1)/2; for inputs >= 0 (after a ReLU) it is one bit more than the centred range allows; with
// channels of different ranges it is finer than the global bound S_max round(max|x| 2^fx) <=
// (P-1)/2, S_max = max_m sum_k |w_q[m,k]|, which it never falls below.
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
// of the batch. fw is that, rounded, capped so that |w_q| <= 2^15 - 1. (fw is fixed at setup,
// before any input is seen, so it assumes the symmetric budget; inputs >= 0 get their extra bit
// in fx.)
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

// How a batch was encoded: what decoding its results needs.
struct InputScale {
  int frac_bits = 0;         // fx
  std::vector<int64_t> low;  // per output channel: the lowest value its outputs can take
};

struct QuantizedInput {
  FieldTensor x;  // [B, input_shape...], x_q mod P
  InputScale scale;
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
  // y [B, output_shape...] in Z_P, the layer applied to a batch encoded with `scale` -> the
  // representative in [low_m, low_m + P) times 2^-(fx + fw), plus the bias, as float.
  Tensor dequantize(const FieldTensor& y, const InputScale& scale) const;
  // The worst-case error of any output for inputs bounded by max_abs_x encoded with fx.
  double error_bound(double max_abs_x, int input_frac_bits) const;

  // Bytes held (the quantised weight is the bulk; release_weight() drops it).
  size_t bytes() const;
  void release_weight() { weight_ = FieldTensor{}; }

 private:
  // The finest no-wrap scale for per-channel input ranges [lo_c, hi_c] (both hold 0), and the
  // decoding window it gives.
  InputScale input_scale(const std::vector<double>& lo, const std::vector<double>& hi) const;

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
  std::vector<int64_t> pos_sums_, neg_sums_;  // P_mc and N_mc, [M, C]
};

}  // namespace veil::split

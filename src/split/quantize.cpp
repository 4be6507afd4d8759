#include "veil/split/quantize.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "veil/core/error.hpp"

namespace veil::split {

int largest_frac_bits(double max_abs, int64_t limit) {
  if (!(max_abs > 0) || !std::isfinite(max_abs) || limit < 1)
    throw InvalidArgument("split: largest_frac_bits needs a positive finite value and limit");
  // round(v) <= limit  <=>  v < limit + 1/2 (halves round away); ldexp is exact, limit + 1/2 too.
  const double bound = static_cast<double>(limit) + 0.5;
  int f = std::ilogb(bound) - std::ilogb(max_abs);  // within one of the answer
  while (std::ldexp(max_abs, f) >= bound) --f;
  while (std::ldexp(max_abs, f + 1) < bound) ++f;
  return f;
}

LayerQuantizer::LayerQuantizer(const LinearLayer& layer, const SchemeOptions& options)
    : input_shape_(layer.input_shape), bias_(layer.bias), input_cap_(options.input_frac_bits) {
  const Shape& ws = layer.weight.shape();
  const std::string where = "split: " + layer.name + ": ";
  if (ws.size() < 2) throw InvalidArgument(where + "weight must have rank 2 or 4");
  const int64_t m = ws[0];
  out_channels_ = m;
  terms_ = layer.weight.numel() / std::max<int64_t>(m, 1);
  if (m < 1 || terms_ < 1 || terms_ > kFieldMaxTerms)
    throw InvalidArgument(where + "layer too large for Z_P (more than 2^17 terms per output)");
  if (!bias_.empty() && bias_.numel() != m) throw InvalidArgument(where + "bias size mismatch");
  const float* w = layer.weight.data();
  double max_abs = 0, max_l1 = 0;
  for (int64_t o = 0; o < m; ++o) {
    double l1 = 0;
    for (int64_t k = 0; k < terms_; ++k) {
      const double v = w[o * terms_ + k];
      if (!std::isfinite(v)) throw InvalidArgument(where + "non-finite weight");
      max_abs = std::max(max_abs, std::abs(v));
      l1 += std::abs(v);
    }
    max_l1 = std::max(max_l1, l1);
  }
  if (options.weight_frac_bits >= 0) {
    weight_frac_bits_ = options.weight_frac_bits;
  } else if (max_abs > 0) {
    // The balanced split (header comment): 2^fw = 2^15 sqrt(K) / L, capped by |w_q| <= 2^15 - 1.
    const double balanced = 15.0 + 0.5 * std::log2(static_cast<double>(terms_)) - std::log2(max_l1);
    weight_frac_bits_ = std::min(largest_frac_bits(max_abs, kQuantMaxWeight),
                                 static_cast<int>(std::lround(balanced)));
  }
  weight_.shape = ws;
  weight_.values.resize(static_cast<size_t>(layer.weight.numel()));
  channels_ = ws[1];
  const int64_t window = terms_ / channels_;
  channel_sums_.assign(static_cast<size_t>(m * channels_), 0);
  for (int64_t o = 0; o < m; ++o) {
    int64_t row = 0;
    for (int64_t k = 0; k < terms_; ++k) {
      const int64_t q =
          std::llround(std::ldexp(static_cast<double>(w[o * terms_ + k]), weight_frac_bits_));
      if (q > kQuantMaxWeight || q < -kQuantMaxWeight)
        throw InvalidArgument(where + "weight_frac_bits " + std::to_string(weight_frac_bits_) +
                              " puts a weight beyond 2^15 - 1");
      weight_.values[o * terms_ + k] = to_field(q);
      row += q < 0 ? -q : q;
      channel_sums_[o * channels_ + k / window] += q < 0 ? -q : q;
    }
    max_row_sum_ = std::max(max_row_sum_, row);
  }
  // |x_q| <= 1 must be possible, or every input would quantise to zero.
  if (max_row_sum_ > kQuantMaxOutput)
    throw InvalidArgument(where + "weight_frac_bits too large: a row sum exceeds (P-1)/2");
  input_limit_ = kQuantMaxOutput / std::max<int64_t>(max_row_sum_, 1);
}

QuantizedInput LayerQuantizer::quantize(const Tensor& x) const {
  const Shape& xs = x.shape();
  if (xs.size() != input_shape_.size() + 1 || xs[0] < 1 ||
      !std::equal(input_shape_.begin(), input_shape_.end(), xs.begin() + 1))
    throw InvalidArgument("split: input " + shape_to_string(xs) + " does not match " +
                          shape_to_string(input_shape_));
  // a_c: the largest |x| of each input channel over the batch.
  std::vector<double> a(static_cast<size_t>(channels_), 0.0);
  const int64_t inner = shape_numel(input_shape_) / channels_;
  const float* p = x.data();
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (!std::isfinite(p[i]))
      throw InvalidArgument("split: NaN or Inf in a layer input; refusing to quantise it");
    double& ac = a[(i / inner) % channels_];
    ac = std::max(ac, std::abs(static_cast<double>(p[i])));
  }
  QuantizedInput q;
  q.frac_bits = input_frac_bits(a);
  if (input_cap_ >= 0) q.frac_bits = std::min(q.frac_bits, input_cap_);
  q.x.shape = xs;
  q.x.values.resize(static_cast<size_t>(x.numel()));
  for (size_t i = 0; i < q.x.values.size(); ++i)
    q.x.values[i] = to_field(std::llround(std::ldexp(static_cast<double>(p[i]), q.frac_bits)));
  return q;
}

int LayerQuantizer::input_frac_bits(const std::vector<double>& a) const {
  const double a_max = *std::max_element(a.begin(), a.end());
  if (a_max == 0) return 0;  // all zero: any scale is exact
  // Every x_q must itself be a centred field element; this also keeps llround in range.
  const int f_max = largest_frac_bits(a_max, kQuantMaxOutput);
  // Does every output's worst case fit at scale f? Monotone in f (rounding is monotone).
  auto fits = [&](int f) {
    std::vector<int64_t> xq(a.size());
    for (size_t c = 0; c < a.size(); ++c) xq[c] = std::llround(std::ldexp(a[c], f));
    for (int64_t o = 0; o < out_channels_; ++o) {
      int64_t acc = 0;  // <= (P-1)/2 before each term <= 2^32 x 2^30: no overflow
      for (int64_t c = 0; c < channels_; ++c) {
        acc += channel_sums_[o * channels_ + c] * xq[c];
        if (acc > kQuantMaxOutput) return false;
      }
    }
    return true;
  };
  double worst = 0;  // max_m sum_c S_mc a_c, the bound before rounding
  for (int64_t o = 0; o < out_channels_; ++o) {
    double w = 0;
    for (int64_t c = 0; c < channels_; ++c)
      w += static_cast<double>(channel_sums_[o * channels_ + c]) * a[c];
    worst = std::max(worst, w);
  }
  if (worst == 0) return f_max;  // the nonzero inputs meet only zero weights
  // At f0 + 2 the worst output exceeds 2 (P-1)/2 - S_m/2 > (P-1)/2 (S_m <= (P-1)/2): start
  // below it and walk down to the largest f that fits.
  int f = std::min(f_max, largest_frac_bits(worst, kQuantMaxOutput) + 1);
  while (!fits(f)) --f;
  return f;
}

Tensor LayerQuantizer::dequantize(const FieldTensor& y, int input_frac_bits) const {
  if (y.shape.size() < 2 || y.numel() != shape_numel(y.shape))
    throw InvalidArgument("split: field result has a bad shape");
  const int64_t b = y.shape[0], m = y.shape[1];
  if (m != out_channels_) throw InvalidArgument("split: field result channel mismatch");
  const int64_t inner = y.numel() / (b * m);
  const double scale = std::ldexp(1.0, -(input_frac_bits + weight_frac_bits_));
  Tensor out(y.shape);
  float* o = out.data();
  const float* bias = bias_.empty() ? nullptr : bias_.data();
  for (int64_t i = 0, idx = 0; i < b; ++i)
    for (int64_t c = 0; c < m; ++c)
      for (int64_t j = 0; j < inner; ++j, ++idx)
        o[idx] = static_cast<float>(static_cast<double>(centred(y.values[idx])) * scale +
                                    (bias ? bias[c] : 0.0));
  return out;
}

double LayerQuantizer::error_bound(double max_abs_x, int input_frac_bits) const {
  return std::ldexp(static_cast<double>(max_row_sum_), -(input_frac_bits + weight_frac_bits_ + 1)) +
         std::ldexp(static_cast<double>(terms_) * max_abs_x, -(weight_frac_bits_ + 1));
}

size_t LayerQuantizer::bytes() const {
  return weight_.values.size() * sizeof(uint64_t) + static_cast<size_t>(bias_.numel()) * 4;
}

}  // namespace veil::split

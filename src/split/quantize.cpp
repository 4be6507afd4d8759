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
  pos_sums_.assign(static_cast<size_t>(m * channels_), 0);
  neg_sums_.assign(static_cast<size_t>(m * channels_), 0);
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
      (q < 0 ? neg_sums_ : pos_sums_)[o * channels_ + k / window] += q < 0 ? -q : q;
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
  // [lo_c, hi_c]: the range of each input channel over the batch, with 0 (the padding).
  std::vector<double> lo(static_cast<size_t>(channels_), 0.0), hi(lo);
  const int64_t inner = shape_numel(input_shape_) / channels_;
  const float* p = x.data();
  for (int64_t i = 0; i < xs[0]; ++i)
    for (int64_t c = 0; c < channels_; ++c) {
      const float* v = p + (i * channels_ + c) * inner;
      float l = 0, h = 0;
      bool finite = true;
      for (int64_t j = 0; j < inner; ++j) {
        finite &= std::isfinite(v[j]);
        l = std::min(l, v[j]);
        h = std::max(h, v[j]);
      }
      if (!finite)
        throw InvalidArgument("split: NaN or Inf in a layer input; refusing to quantise it");
      lo[c] = std::min(lo[c], static_cast<double>(l));
      hi[c] = std::max(hi[c], static_cast<double>(h));
    }
  QuantizedInput q;
  q.scale = input_scale(lo, hi);
  q.x.shape = xs;
  q.x.values.resize(static_cast<size_t>(x.numel()));
  // Scaling by a power of two is exact in double; every |x_q| <= (P-1)/2 (input_scale).
  const double factor = std::ldexp(1.0, q.scale.frac_bits);
  for (size_t i = 0; i < q.x.values.size(); ++i) {
    const int64_t v = std::llround(static_cast<double>(p[i]) * factor);
    q.x.values[i] = static_cast<uint64_t>(v < 0 ? v + static_cast<int64_t>(kFieldPrime) : v);
  }
  return q;
}

InputScale LayerQuantizer::input_scale(const std::vector<double>& lo,
                                       const std::vector<double>& hi) const {
  const size_t nc = lo.size();
  double a_max = 0;
  for (size_t c = 0; c < nc; ++c) a_max = std::max({a_max, -lo[c], hi[c]});
  // The quantised ranges at scale f (rounding is monotone, so every x_q of channel c lies in
  // [lq_c, hq_c], and so does 0).
  std::vector<int64_t> lq(nc), hq(nc);
  auto scale_ranges = [&](int f) {
    for (size_t c = 0; c < nc; ++c) {
      lq[c] = std::llround(std::ldexp(lo[c], f));
      hq[c] = std::llround(std::ldexp(hi[c], f));
    }
  };
  // Is every output's range at most P - 1 wide at scale f? Monotone in f.
  auto fits = [&](int f) {
    scale_ranges(f);
    for (int64_t o = 0; o < out_channels_; ++o) {
      __int128 width = 0;  // terms up to 2^32 x 2^31: 128 bits
      for (size_t c = 0; c < nc; ++c)
        width +=
            static_cast<__int128>(pos_sums_[o * nc + c] + neg_sums_[o * nc + c]) * (hq[c] - lq[c]);
      if (width > static_cast<__int128>(kFieldPrime - 1)) return false;
    }
    return true;
  };
  InputScale s;
  if (a_max > 0) {
    // Every x_q must itself be a centred field element; this also keeps llround in range.
    const int f_max = largest_frac_bits(a_max, kQuantMaxOutput);
    double worst = 0;  // max_m sum_c S_mc (hi_c - lo_c), the widest range before rounding
    for (int64_t o = 0; o < out_channels_; ++o) {
      double w = 0;
      for (size_t c = 0; c < nc; ++c)
        w += static_cast<double>(pos_sums_[o * nc + c] + neg_sums_[o * nc + c]) * (hi[c] - lo[c]);
      worst = std::max(worst, w);
    }
    if (worst == 0) {
      s.frac_bits = f_max;  // the nonzero inputs meet only zero weights
    } else {
      // Rounding narrows a range by at most 1 per channel, so at f0 + 2 the widest range is at
      // least 2P - 1 - S_m > P - 1 (S_m <= (P-1)/2): start below it and walk down.
      s.frac_bits = std::min(f_max, largest_frac_bits(worst, kFieldPrime - 1) + 1);
      while (!fits(s.frac_bits)) --s.frac_bits;
    }
  }
  if (input_cap_ >= 0) s.frac_bits = std::min(s.frac_bits, input_cap_);
  scale_ranges(s.frac_bits);
  s.low.resize(static_cast<size_t>(out_channels_));
  for (int64_t o = 0; o < out_channels_; ++o) {
    __int128 low = 0;  // in [-(P-1), 0]: 0 is in every range
    for (size_t c = 0; c < nc; ++c)
      low += static_cast<__int128>(pos_sums_[o * nc + c]) * lq[c] -
             static_cast<__int128>(neg_sums_[o * nc + c]) * hq[c];
    s.low[o] = static_cast<int64_t>(low);
  }
  return s;
}

Tensor LayerQuantizer::dequantize(const FieldTensor& y, const InputScale& scale) const {
  if (y.shape.size() < 2 || y.numel() != shape_numel(y.shape))
    throw InvalidArgument("split: field result has a bad shape");
  const int64_t b = y.shape[0], m = y.shape[1];
  if (m != out_channels_ || static_cast<int64_t>(scale.low.size()) != m)
    throw InvalidArgument("split: field result channel mismatch");
  const int64_t inner = y.numel() / (b * m);
  const double factor = std::ldexp(1.0, -(scale.frac_bits + weight_frac_bits_));
  Tensor out(y.shape);
  float* o = out.data();
  const float* bias = bias_.empty() ? nullptr : bias_.data();
  for (int64_t i = 0, idx = 0; i < b; ++i)
    for (int64_t c = 0; c < m; ++c) {
      const int64_t low = scale.low[c];
      const uint64_t low_field = to_field(low);
      for (int64_t j = 0; j < inner; ++j, ++idx) {
        // The representative of y in [low, low + P): low + (y - low mod P).
        const int64_t v = low + static_cast<int64_t>(field_sub(y.values[idx], low_field));
        o[idx] = static_cast<float>(static_cast<double>(v) * factor + (bias ? bias[c] : 0.0));
      }
    }
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

#include "veil/split/float_check.hpp"

#include <cmath>
#include <string>
#include <vector>

#include "float_masking.hpp"
#include "veil/core/error.hpp"
#include "veil/split/prg_floats.hpp"

namespace veil::split {
namespace {

AesCtrPrg child_prg(AesCtrPrg& parent) {
  Seed seed;
  parent.fill(std::span<uint8_t>(seed));
  return AesCtrPrg(seed);
}

constexpr double kUnitRoundoff = 0x1p-24;  // float32, round to nearest

}  // namespace

// The tolerance, derived (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed.,
// section 3.1: a dot product of T float terms computed in any order, with or without FMA, is
// off by at most gamma_T sum_t |a_t b_t|, gamma_T = T u / (1 - T u), u = 2^-24).
// Let x be the float input the accelerator received, W'_m its float filters, T the terms per
// output (C kH kW, or C), A_t = sum_m |W'_{m,t}| and E = sum_t A_t |x_t| (one filter applied to
// |x|). At one output position, with Y*_m the exact sum_t W'_{m,t} x_t:
//   honest reply:       |Y'_m - Y*_m| <= gamma_T sum_t |W'_{m,t}| |x_t|, so
//                       |sum_m r_m Y'_m - sum_m r_m Y*_m| <= gamma_T E;
//   our sum:            sum_m r_m Y'_m in double: error <= M 2^-53 (1 + gamma_T) E;
//   our filter:         w_t = float(sum_m r_m W'_{m,t}) (summed in double): |w_t - w*_t| <=
//                       (u + M 2^-53) A_t, so |sum_t (w_t - w*_t) x_t| <= (u + M 2^-53) E;
//   our product z:      |z - sum_t w_t x_t| <= gamma_T sum_t |w_t| |x_t| <= gamma_T (1 + 2u) E;
// and sum_m r_m Y*_m = sum_t w*_t x_t exactly. So an honest reply has
//   |sum_m r_m Y'_m - z| <= (2 gamma_T + 2u) E   (M 2^-53 terms absorbed for M < 2^20).
// E itself is computed in float, but every term is positive, so the computed value is at least
// E (1 - gamma_T - u). The tolerance is twice the bound on the computed E, which leaves a factor
// > 1.9 of margin for T u <= 1e-3; a tiny absolute floor covers underflow (flush-to-zero loses at
// most 2^-126 per operation). Honest replies are therefore never rejected, and an element off
// by e shifts sum_m r_m Y'_m by exactly +-e, so e > 2 x tolerance is always seen.
FloatFreivalds::FloatFreivalds(const LinearLayer& layer, Tensor weight, int rounds, AesCtrPrg& prg)
    : geometry_(with_out_channels(layer, weight.shape().at(0))),
      weight_(std::move(weight)),
      rounds_(rounds),
      prg_(child_prg(prg)) {
  if (rounds < 1 || rounds > 64) throw InvalidArgument("split: verify_rounds must be in [1, 64]");
  const int64_t m = weight_.shape().at(0), terms = weight_.numel() / m;
  const double tu = static_cast<double>(terms) * kUnitRoundoff;
  if (tu > 1e-3)
    throw Unsupported("split: " + layer.name +
                      " has too many terms per output for the float check");
  const double gamma = tu / (1 - tu);
  bound_factor_ = 2 * (2 * gamma + 2 * kUnitRoundoff);

  Shape one = weight_.shape();
  one[0] = 1;
  abs_sum_ = Tensor(one);
  std::vector<double> acc(static_cast<size_t>(terms), 0.0);
  const float* w = weight_.data();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t t = 0; t < terms; ++t) acc[t] += std::fabs(w[i * terms + t]);
  for (int64_t t = 0; t < terms; ++t) abs_sum_.data()[t] = static_cast<float>(acc[t]);
  bound_engine_.emplace(with_out_channels(geometry_, 1), abs_sum_, detail::kSchemeThreads);
  draw();
}

void FloatFreivalds::draw() {
  const int64_t m = weight_.shape().at(0), terms = weight_.numel() / m;
  signs_.resize(static_cast<size_t>(rounds_ * m));
  for (float& s : signs_) s = prg_sign(prg_);
  Shape shape = weight_.shape();
  shape[0] = rounds_;
  checks_ = Tensor(shape);
  std::vector<double> acc(static_cast<size_t>(terms));
  const float* w = weight_.data();
  for (int k = 0; k < rounds_; ++k) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t i = 0; i < m; ++i) {
      const double r = signs_[k * m + i];
      for (int64_t t = 0; t < terms; ++t) acc[t] += r * w[i * terms + t];
    }
    for (int64_t t = 0; t < terms; ++t) checks_.data()[k * terms + t] = static_cast<float>(acc[t]);
  }
  check_engine_.emplace(with_out_channels(geometry_, rounds_), checks_, detail::kSchemeThreads);
}

Tensor FloatFreivalds::tolerance(const Tensor& x) {
  Tensor ax = x;
  for (float& v : ax.floats()) v = std::fabs(v);
  Tensor tol = bound_engine_->forward(ax);
  const int64_t m = weight_.shape().at(0), terms = weight_.numel() / m;
  const double floor = static_cast<double>(terms + m + 2) * 0x1p-120;
  for (float& v : tol.floats()) v = static_cast<float>(bound_factor_ * v + floor);
  return tol;
}

void FloatFreivalds::check(const Tensor& x, const Tensor& y) {
  const int64_t m = weight_.shape().at(0), b = x.shape().at(0);
  if (y.rank() < 2 || y.shape()[0] != b || y.shape()[1] != m)
    throw InvalidArgument("split: the reply does not fit the layer");
  const int64_t positions = y.numel() / (b * m);
  const Tensor z = check_engine_->forward(x);  // [B, rounds, P...]
  const Tensor tol = tolerance(x);             // [B, 1, P...]
  if (z.numel() != b * rounds_ * positions || tol.numel() != b * positions)
    throw InvalidArgument("split: the reply does not fit the layer");
  std::vector<double> acc(static_cast<size_t>(positions));
  for (int64_t i = 0; i < b; ++i) {
    const float* yb = y.data() + i * m * positions;
    const float* tb = tol.data() + i * positions;
    for (int k = 0; k < rounds_; ++k) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t c = 0; c < m; ++c) {
        const double r = signs_[k * m + c];
        const float* yc = yb + c * positions;
        for (int64_t p = 0; p < positions; ++p) acc[p] += r * yc[p];
      }
      const float* zk = z.data() + (i * rounds_ + k) * positions;
      for (int64_t p = 0; p < positions; ++p) {
        // Written so that NaN fails too.
        if (!(std::fabs(acc[p] - zk[p]) <= tb[p])) {
          draw();
          throw IntegrityError("split: layer " + geometry_.name +
                               ": the accelerator's reply failed Freivalds' check (image " +
                               std::to_string(i) + ", position " + std::to_string(p) + ")");
        }
      }
    }
  }
}

double FloatFreivalds::false_accept_bound() const { return std::ldexp(1.0, -rounds_); }

size_t FloatFreivalds::bytes() const {
  return sizeof(float) * static_cast<size_t>(weight_.numel() + checks_.numel() + abs_sum_.numel() +
                                             static_cast<int64_t>(signs_.size()));
}

}  // namespace veil::split

#include "veil/nn/loss.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "veil/core/error.hpp"

namespace veil::nn {

LossResult softmax_cross_entropy(const Tensor& logits, std::span<const int32_t> labels,
                                 bool want_grad) {
  if (logits.rank() != 2)
    throw InvalidArgument("cross-entropy expects logits [N, C], got " +
                          shape_to_string(logits.shape()));
  const int64_t n = logits.dim(0), c = logits.dim(1);
  if (static_cast<int64_t>(labels.size()) != n)
    throw InvalidArgument("cross-entropy: " + std::to_string(labels.size()) + " labels for " +
                          std::to_string(n) + " logits rows");
  LossResult r;
  if (want_grad) r.grad = Tensor(logits.shape());
  auto x = logits.floats();
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x.data() + i * c;
    int32_t y = labels[static_cast<size_t>(i)];
    if (y < 0 || y >= c)
      throw InvalidArgument("label " + std::to_string(y) + " outside [0, " + std::to_string(c) +
                            ")");
    float mx = *std::max_element(row, row + c);
    double sum = 0;
    for (int64_t j = 0; j < c; ++j) sum += std::exp(static_cast<double>(row[j]) - mx);
    double lse = mx + std::log(sum);
    total += lse - row[y];
    // A row with NaN or inf has no class (max_element would skip a NaN after the first entry).
    if (std::all_of(row, row + c, [](float z) { return std::isfinite(z); }) &&
        std::max_element(row, row + c) - row == y)
      ++r.correct;
    if (want_grad) {
      float* g = r.grad.data() + i * c;
      for (int64_t j = 0; j < c; ++j)
        g[j] = static_cast<float>((std::exp(row[j] - lse) - (j == y ? 1.0 : 0.0)) / n);
    }
  }
  r.loss = n ? total / n : 0;
  return r;
}

namespace {

// log softmax(row / t) in double, into `lp` (log-sum-exp: no probability underflows to a log of
// zero however far apart the logits are).
void log_softened(const float* row, int64_t c, double t, std::vector<double>& lp) {
  double mx = -INFINITY;
  for (int64_t j = 0; j < c; ++j) mx = std::max(mx, row[j] / t);
  double sum = 0;
  for (int64_t j = 0; j < c; ++j) sum += std::exp(row[j] / t - mx);
  const double lse = mx + std::log(sum);
  for (int64_t j = 0; j < c; ++j) lp[static_cast<size_t>(j)] = row[j] / t - lse;
}

}  // namespace

LossResult distillation_loss(const Tensor& student, const Tensor& teacher,
                             std::span<const int32_t> labels, double alpha, double temperature) {
  if (teacher.shape() != student.shape())
    throw InvalidArgument("distillation: teacher logits " + shape_to_string(teacher.shape()) +
                          " do not match the student's " + shape_to_string(student.shape()));
  if (!(alpha >= 0 && alpha <= 1)) throw InvalidArgument("distillation: alpha outside [0, 1]");
  if (!(temperature > 0 && std::isfinite(temperature)))
    throw InvalidArgument("distillation: temperature must be positive");
  LossResult r = softmax_cross_entropy(student, labels);
  const int64_t n = student.dim(0), c = student.dim(1);
  const float* s = student.data();
  const float* t = teacher.data();
  if (!std::all_of(t, t + n * c, [](float z) { return std::isfinite(z); }))
    throw Error("distillation: the teacher's logits are not finite");
  std::vector<double> ls(static_cast<size_t>(c)), lt(static_cast<size_t>(c));
  double kl = 0;
  float* g = r.grad.data();
  for (int64_t i = 0; i < n; ++i) {
    log_softened(s + i * c, c, temperature, ls);
    log_softened(t + i * c, c, temperature, lt);
    for (int64_t j = 0; j < c; ++j) {
      const auto k = static_cast<size_t>(j);
      const double pt = std::exp(lt[k]);
      kl += pt * (lt[k] - ls[k]);
      // d/ds_j of T^2 KL = T (ps_j - pt_j)
      g[i * c + j] = static_cast<float>((1 - alpha) * g[i * c + j] +
                                        alpha * temperature * (std::exp(ls[k]) - pt) / n);
    }
  }
  r.loss = (1 - alpha) * r.loss + alpha * temperature * temperature * (n ? kl / n : 0);
  return r;
}

namespace {

// q = Q / max(|Q|, 1e-12) with Q_p = mean_c a_cp^2, for one image; returns max(|Q|, 1e-12).
double attention_map(const float* a, int64_t c, int64_t positions, std::vector<double>& q) {
  std::fill(q.begin(), q.end(), 0.0);
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t p = 0; p < positions; ++p) {
      const double v = a[ch * positions + p];
      q[static_cast<size_t>(p)] += v * v / static_cast<double>(c);
    }
  double norm = 0;
  for (double v : q) norm += v * v;
  norm = std::max(std::sqrt(norm), 1e-12);
  for (double& v : q) v /= norm;
  return norm;
}

}  // namespace

LossResult attention_transfer_loss(const Tensor& student, const Tensor& teacher, double beta) {
  if (teacher.shape() != student.shape())
    throw InvalidArgument("attention transfer: teacher features " +
                          shape_to_string(teacher.shape()) + " do not match the student's " +
                          shape_to_string(student.shape()));
  if (student.rank() != 4)
    throw InvalidArgument("attention transfer needs [N, C, H, W] feature maps, got " +
                          shape_to_string(student.shape()));
  if (!(beta >= 0 && std::isfinite(beta)))
    throw InvalidArgument("attention transfer: beta must be finite and >= 0");
  const int64_t n = student.dim(0), c = student.dim(1), positions = student.dim(2) * student.dim(3);
  const float* t = teacher.data();
  if (!std::all_of(t, t + teacher.numel(), [](float z) { return std::isfinite(z); }))
    throw Error("attention transfer: the teacher's features are not finite");
  LossResult r;
  r.grad = Tensor(student.shape());
  const float* s = student.data();
  float* g = r.grad.data();
  std::vector<double> qs(static_cast<size_t>(positions)), qt(qs.size()), dq(qs.size());
  const double scale = n * positions > 0 ? beta / static_cast<double>(n * positions) : 0;
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* a = s + i * c * positions;
    const double norm = attention_map(a, c, positions, qs);
    attention_map(t + i * c * positions, c, positions, qt);
    // dL/dq = beta (qs - qt) / (N P); through the normalisation dL/dQ = (dq - q (q . dq)) / |Q|
    // (just dq / 1e-12 when the norm was clamped); dQ_p/da_cp = 2 a_cp / C.
    double dot = 0;
    for (size_t p = 0; p < qs.size(); ++p) {
      const double d = qs[p] - qt[p];
      total += d * d;
      dq[p] = scale * d;
      dot += qs[p] * dq[p];
    }
    const bool clamped = norm <= 1e-12;
    for (size_t p = 0; p < qs.size(); ++p) dq[p] = (clamped ? dq[p] : dq[p] - qs[p] * dot) / norm;
    float* ga = g + i * c * positions;
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < positions; ++p)
        ga[ch * positions + p] = static_cast<float>(dq[static_cast<size_t>(p)] * 2.0 *
                                                    a[ch * positions + p] / static_cast<double>(c));
  }
  r.loss = scale / 2 * total;
  return r;
}

}  // namespace veil::nn

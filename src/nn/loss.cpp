#include "veil/nn/loss.hpp"

#include <algorithm>
#include <cmath>

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

}  // namespace veil::nn

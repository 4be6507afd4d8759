#include "veil/split/fake_filters.hpp"

#include <cmath>

#include "veil/core/error.hpp"
#include "veil/split/prg_floats.hpp"

namespace veil::split {

int64_t slot_count(int64_t n, double fake_ratio) {
  if (n <= 0) throw InvalidArgument("split: a layer needs at least one output channel");
  if (!std::isfinite(fake_ratio) || fake_ratio < 1.0 || fake_ratio > 64.0)
    throw InvalidArgument("split: fake_ratio must be in [1, 64]");
  // The small slack keeps 1.2 x 5 = 6.000000000000001 at 6 slots.
  const auto m = static_cast<int64_t>(std::ceil(fake_ratio * static_cast<double>(n) - 1e-9));
  return std::max(m, n + 1);
}

Tensor draw_fake_filters(const Tensor& weight, int64_t count, AesCtrPrg& prg) {
  const auto w = weight.floats();
  if (w.empty()) throw InvalidArgument("split: the layer has no weights");
  double sum = 0, sq = 0;
  for (float v : w) sum += v;
  const double mean = sum / static_cast<double>(w.size());
  for (float v : w) sq += (v - mean) * (v - mean);
  double std = std::sqrt(sq / static_cast<double>(w.size()));
  if (!(std > 0) || !std::isfinite(std)) std = 1.0;  // all-equal weights: any spread will do
  Shape shape = weight.shape();
  shape.at(0) = count;
  return prg_gaussian_tensor(prg, std::move(shape), mean, std);
}

}  // namespace veil::split

#include "veil/split/prg_floats.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>
#include <utility>

namespace veil::split {

double prg_unit(AesCtrPrg& prg) { return static_cast<double>(prg.next_u64() >> 11) * 0x1p-53; }

double prg_uniform(AesCtrPrg& prg, double lo, double hi) { return lo + (hi - lo) * prg_unit(prg); }

double prg_gaussian(AesCtrPrg& prg) {
  // 1 - u lies in (0, 1], so the logarithm is finite.
  const double u = 1.0 - prg_unit(prg), v = prg_unit(prg);
  return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * std::numbers::pi * v);
}

void prg_gaussian_fill(AesCtrPrg& prg, std::span<float> out, double mean, double std) {
  // The keystream in blocks (one AES call per 8 bytes would dominate), and both Box-Muller
  // outputs of each pair of draws.
  std::vector<uint64_t> block(std::min<size_t>(4096, out.size() + out.size() % 2));
  size_t i = 0;
  while (i < out.size()) {
    prg.fill(std::span<uint64_t>(block));
    for (size_t j = 0; j + 1 < block.size() && i < out.size(); j += 2) {
      const double u = 1.0 - static_cast<double>(block[j] >> 11) * 0x1p-53;
      const double v = static_cast<double>(block[j + 1] >> 11) * 0x1p-53;
      const double r = std::sqrt(-2.0 * std::log(u)), a = 2.0 * std::numbers::pi * v;
      out[i++] = static_cast<float>(mean + std * r * std::cos(a));
      if (i < out.size()) out[i++] = static_cast<float>(mean + std * r * std::sin(a));
    }
  }
}

Tensor prg_gaussian_tensor(AesCtrPrg& prg, Shape shape, double mean, double std) {
  Tensor t(std::move(shape));
  prg_gaussian_fill(prg, t.floats(), mean, std);
  return t;
}

float prg_sign(AesCtrPrg& prg) { return (prg.next_u64() & 1) != 0 ? 1.0f : -1.0f; }

std::vector<int64_t> prg_permutation(AesCtrPrg& prg, int64_t n) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), int64_t{0});
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(p[static_cast<size_t>(i)], p[prg.uniform(static_cast<uint64_t>(i) + 1)]);
  return p;
}

}  // namespace veil::split

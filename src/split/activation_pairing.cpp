#include "veil/split/activation_pairing.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "relu_activity.hpp"
#include "veil/core/error.hpp"

namespace veil::split {

ChannelSource explain_channel(const std::vector<double>& outputs, const std::vector<double>& target,
                              const std::vector<int64_t>& element, int64_t slots,
                              int64_t elements) {
  const size_t n = target.size();
  if (slots < 2 || elements < 1 || element.size() != n || outputs.size() != n * slots)
    throw InvalidArgument("explain_channel: sizes do not match");
  const auto is_active = above_element_minimum(target, element, elements, "explain_channel");
  auto active = [&](size_t i) { return is_active[i] != 0; };
  // Per-element means over the active samples.
  std::vector<double> count(elements, 0), mt(elements, 0), mo(elements * slots, 0);
  for (size_t i = 0; i < n; ++i) {
    if (!active(i)) continue;
    const int64_t e = element[i];
    count[e] += 1, mt[e] += target[i];
    for (int64_t m = 0; m < slots; ++m) mo[e * slots + m] += outputs[i * slots + m];
  }
  for (int64_t e = 0; e < elements; ++e)
    if (count[e] > 0) {
      mt[e] /= count[e];
      for (int64_t m = 0; m < slots; ++m) mo[e * slots + m] /= count[e];
    }
  // Normal equations of the centred regression.
  std::vector<double> g(slots * slots, 0), h(slots, 0), x(slots);
  double tt = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!active(i)) continue;
    const int64_t e = element[i];
    const double t = target[i] - mt[e];
    for (int64_t m = 0; m < slots; ++m) x[m] = outputs[i * slots + m] - mo[e * slots + m];
    for (int64_t u = 0; u < slots; ++u) {
      h[u] += x[u] * t;
      for (int64_t v = u; v < slots; ++v) g[u * slots + v] += x[u] * x[v];
    }
    tt += t * t;
  }
  for (int64_t u = 0; u < slots; ++u)
    for (int64_t v = 0; v < u; ++v) g[u * slots + v] = g[v * slots + u];
  ChannelSource out;
  if (!(tt > 0)) return out;
  // Every pair (a, b): the best 2-term fit; the filter lies in the span of its own pair only (with
  // fewer weights per filter than slots, the full regression would not be unique).
  for (int64_t a = 0; a < slots; ++a)
    for (int64_t b = a + 1; b < slots; ++b) {
      const double gaa = g[a * slots + a], gbb = g[b * slots + b], gab = g[a * slots + b];
      const double det = gaa * gbb - gab * gab;
      if (!(det > 1e-12 * gaa * gbb)) continue;
      const double ca = (h[a] * gbb - h[b] * gab) / det, cb = (h[b] * gaa - h[a] * gab) / det;
      const double fit = (ca * h[a] + cb * h[b]) / tt;
      if (fit <= out.fit) continue;
      // The fake filter enters with coefficient 1, the real one with s_n.
      const bool a_is_fake = std::abs(ca - 1) < std::abs(cb - 1);
      out.fit = fit;
      out.fake = a_is_fake ? a : b;
      out.real = a_is_fake ? b : a;
      out.scale = a_is_fake ? cb : ca;
    }
  return out;
}

}  // namespace veil::split

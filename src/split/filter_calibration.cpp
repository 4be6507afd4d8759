#include "veil/split/filter_calibration.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "relu_activity.hpp"
#include "veil/core/error.hpp"

namespace veil::split {

namespace {

// relu(pool + bias) against `next`: the bias that fits the active samples and the R^2.
FilterCalibration fit_bias(const std::vector<double>& pooled, const std::vector<double>& next,
                           double scale) {
  const size_t n = next.size();
  double lo = *std::min_element(next.begin(), next.end());
  double hi = *std::max_element(next.begin(), next.end());
  const double eps = 1e-6 * std::max(hi - lo, 1e-12);
  double sum = 0;
  size_t active = 0;
  for (size_t i = 0; i < n; ++i)
    if (next[i] > lo + eps) sum += next[i] - pooled[i], ++active;
  FilterCalibration c;
  c.scale = scale;
  c.bias = active ? sum / static_cast<double>(active) : 0;
  double mean = 0;
  for (double v : next) mean += v / static_cast<double>(n);
  double ss = 0, res = 0;
  for (size_t i = 0; i < n; ++i) {
    const double model = std::max(pooled[i] + c.bias, 0.0);
    res += (next[i] - model) * (next[i] - model);
    ss += (next[i] - mean) * (next[i] - mean);
  }
  c.fit = ss > 0 ? 1 - res / ss : 0;
  return c;
}

}  // namespace

FilterCalibration calibrate_filter(const std::vector<double>& a, const std::vector<double>& b,
                                   const std::vector<double>& next, int64_t images, int64_t cells,
                                   int64_t per_cell, double guess) {
  const auto samples = static_cast<size_t>(images * cells);
  if (images < 1 || cells < 1 || per_cell < 1 || next.size() != samples ||
      a.size() != samples * per_cell || b.size() != samples * per_cell || !(guess > 0))
    throw InvalidArgument("calibrate_filter: sizes do not match");
  FilterCalibration best;
  best.fit = -1e300;
  std::vector<double> pooled(samples);
  const int steps = 89;  // ratio 9 on a log grid: 2.5 % apart
  for (int k = 0; k < steps; ++k) {
    const double s = guess * std::exp(std::log(3.0) * (2.0 * k / (steps - 1) - 1));
    for (int mode = 0; mode < (per_cell > 1 ? 2 : 1); ++mode) {
      for (size_t i = 0; i < samples; ++i) {
        double agg = mode == 0 ? -1e300 : 0;
        for (int64_t p = 0; p < per_cell; ++p) {
          const double v = s * a[i * per_cell + p] + b[i * per_cell + p];
          agg = mode == 0 ? std::max(agg, v) : agg + v / static_cast<double>(per_cell);
        }
        pooled[i] = agg;
      }
      const auto c = fit_bias(pooled, next, s);
      if (c.fit > best.fit) best = c;
    }
  }
  return best;
}

FilterCalibration calibrate_mean_pooled_filter(const std::vector<double>& a,
                                               const std::vector<double>& rest,
                                               const std::vector<double>& next, int64_t samples,
                                               int64_t per_cell, double guess) {
  if (samples < 2 || per_cell < 1 || static_cast<int64_t>(next.size()) != samples ||
      static_cast<int64_t>(a.size()) != samples * per_cell || rest.size() != a.size() ||
      !(guess > 0))
    throw InvalidArgument("calibrate_mean_pooled_filter: sizes do not match");
  double mean_next = 0, var_next = 0;
  for (double v : next) mean_next += v / static_cast<double>(samples);
  for (double v : next) var_next += (v - mean_next) * (v - mean_next);
  FilterCalibration best;
  best.fit = -1e300;
  if (!(var_next > 0)) return best;
  std::vector<double> z(a.size()), model(samples), sorted;
  auto score = [&](double bias) {  // on z: 1 - residual variance / variance, mask absorbed
    double mean_d = 0;
    for (int64_t i = 0; i < samples; ++i) {
      double m = 0;
      for (int64_t p = 0; p < per_cell; ++p) m += std::max(z[i * per_cell + p] + bias, 0.0);
      model[i] = m / static_cast<double>(per_cell);
      mean_d += (next[i] - model[i]) / static_cast<double>(samples);
    }
    double err = 0;
    for (int64_t i = 0; i < samples; ++i)
      err += (next[i] - model[i] - mean_d) * (next[i] - model[i] - mean_d);
    return 1 - err / var_next;
  };
  const int steps = 45, bias_steps = 25;
  for (int k = 0; k < steps; ++k) {
    const double s = guess * std::exp(std::log(3.0) * (2.0 * k / (steps - 1) - 1));
    for (size_t j = 0; j < a.size(); ++j) z[j] = s * a[j] + rest[j];
    sorted = z;
    std::sort(sorted.begin(), sorted.end());
    const double lo = -sorted[sorted.size() * 98 / 100], hi = -sorted[sorted.size() * 2 / 100];
    for (int t = 0; t < bias_steps; ++t) {
      const double bias = lo + (hi - lo) * t / (bias_steps - 1);
      const double f = score(bias);
      if (f > best.fit) best.fit = f, best.scale = s, best.bias = bias;
    }
  }
  // Refine around the best point on a grid 10 times finer.
  const FilterCalibration coarse = best;
  const double ds = std::log(3.0) * 2.0 / (steps - 1);
  for (int k = -5; k <= 5; ++k) {
    const double s = coarse.scale * std::exp(ds * k / 5.0);
    for (size_t j = 0; j < a.size(); ++j) z[j] = s * a[j] + rest[j];
    sorted = z;
    std::sort(sorted.begin(), sorted.end());
    const double span =
        (sorted[sorted.size() * 98 / 100] - sorted[sorted.size() * 2 / 100]) / (bias_steps - 1);
    for (int t = -5; t <= 5; ++t) {
      const double bias = coarse.bias + span * t / 5.0;
      const double f = score(bias);
      if (f > best.fit) best.fit = f, best.scale = s, best.bias = bias;
    }
  }
  return best;
}

SummedCalibration calibrate_summed_filters(const std::vector<std::vector<double>>& a,
                                           const std::vector<double>& rest,
                                           const std::vector<double>& next,
                                           const std::vector<int64_t>& element, int64_t elements) {
  const size_t n = next.size(), k = a.size();
  bool ok = k >= 1 && k <= 4 && rest.size() == n && element.size() == n && elements >= 1;
  for (const auto& col : a) ok = ok && col.size() == n;
  if (!ok) throw InvalidArgument("calibrate_summed_filters: sizes do not match");
  const auto active = above_element_minimum(next, element, elements, "calibrate_summed_filters");
  std::vector<double> count(elements, 0), mx(elements * k, 0), my(elements, 0);
  for (size_t i = 0; i < n; ++i) {
    if (!active[i]) continue;
    const int64_t e = element[i];
    count[e] += 1, my[e] += next[i] - rest[i];
    for (size_t j = 0; j < k; ++j) mx[e * k + j] += a[j][i];
  }
  // Normal equations of the centred regression (k x k).
  std::vector<double> g(k * k, 0), h(k, 0), x(k);
  double yy = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!active[i]) continue;
    const int64_t e = element[i];
    const double y = next[i] - rest[i] - my[e] / count[e];
    for (size_t j = 0; j < k; ++j) x[j] = a[j][i] - mx[e * k + j] / count[e];
    for (size_t u = 0; u < k; ++u) {
      h[u] += x[u] * y;
      for (size_t v = 0; v < k; ++v) g[u * k + v] += x[u] * x[v];
    }
    yy += y * y;
  }
  SummedCalibration c;
  if (!(yy > 0)) return c;
  // Gaussian elimination with partial pivoting.
  std::vector<double> s(h);
  for (size_t col = 0; col < k; ++col) {
    size_t piv = col;
    for (size_t row = col + 1; row < k; ++row)
      if (std::abs(g[row * k + col]) > std::abs(g[piv * k + col])) piv = row;
    if (!(std::abs(g[piv * k + col]) > 0)) return c;
    for (size_t v = 0; v < k; ++v) std::swap(g[col * k + v], g[piv * k + v]);
    std::swap(s[col], s[piv]);
    for (size_t row = col + 1; row < k; ++row) {
      const double f = g[row * k + col] / g[col * k + col];
      for (size_t v = col; v < k; ++v) g[row * k + v] -= f * g[col * k + v];
      s[row] -= f * s[col];
    }
  }
  for (size_t row = k; row-- > 0;) {
    double t = s[row];
    for (size_t v = row + 1; v < k; ++v) t -= g[row * k + v] * s[v];
    s[row] = t / g[row * k + row];
  }
  double explained = 0;
  for (size_t j = 0; j < k; ++j) explained += s[j] * h[j];
  c.scales = s;
  c.fit = explained / yy;
  std::vector<double> offsets;
  for (size_t i = 0; i < n; ++i) {
    if (!active[i]) continue;
    double v = next[i] - rest[i];
    for (size_t j = 0; j < k; ++j) v -= s[j] * a[j][i];
    offsets.push_back(v);
  }
  std::nth_element(offsets.begin(), offsets.begin() + offsets.size() / 2, offsets.end());
  c.bias = offsets[offsets.size() / 2];
  return c;
}

}  // namespace veil::split

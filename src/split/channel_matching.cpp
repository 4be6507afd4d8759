#include "veil/split/channel_matching.hpp"

#include <cmath>

#include "veil/core/error.hpp"
#include "veil/split/assignment.hpp"

namespace veil::split {

namespace {

// Columns centred and scaled to unit norm (zero when constant), transposed: [n x images].
std::vector<double> standardised_columns(const std::vector<double>& m, int64_t images, int64_t n) {
  std::vector<double> t(n * images);
  for (int64_t c = 0; c < n; ++c) {
    double mean = 0;
    for (int64_t i = 0; i < images; ++i) mean += m[i * n + c];
    mean /= static_cast<double>(images);
    double ss = 0;
    for (int64_t i = 0; i < images; ++i) {
      const double d = m[i * n + c] - mean;
      t[c * images + i] = d;
      ss += d * d;
    }
    const double inv = ss > 0 ? 1 / std::sqrt(ss) : 0;
    for (int64_t i = 0; i < images; ++i) t[c * images + i] *= inv;
  }
  return t;
}

}  // namespace

std::vector<double> pearson_matrix(const std::vector<double>& x, const std::vector<double>& y,
                                   int64_t images, int64_t nx, int64_t ny) {
  if (images < 1 || static_cast<int64_t>(x.size()) != images * nx ||
      static_cast<int64_t>(y.size()) != images * ny)
    throw InvalidArgument("pearson_matrix: sizes do not match images x columns");
  const auto sx = standardised_columns(x, images, nx);
  const auto sy = standardised_columns(y, images, ny);
  std::vector<double> r(nx * ny);
  for (int64_t a = 0; a < nx; ++a)
    for (int64_t b = 0; b < ny; ++b) {
      double s = 0;
      for (int64_t i = 0; i < images; ++i) s += sx[a * images + i] * sy[b * images + i];
      r[a * ny + b] = s;
    }
  return r;
}

std::vector<int64_t> match_channels(const std::vector<double>& x, const std::vector<double>& y,
                                    int64_t images, int64_t n) {
  return max_score_assignment(pearson_matrix(x, y, images, n, n), n, n);
}

std::vector<int64_t> match_channels_with_residual(const std::vector<double>& x,
                                                  const std::vector<double>& skip,
                                                  const std::vector<double>& y, int64_t samples,
                                                  int64_t n) {
  if (samples < 1 || static_cast<int64_t>(x.size()) != samples * n ||
      static_cast<int64_t>(skip.size()) != samples * n ||
      static_cast<int64_t>(y.size()) != samples * n)
    throw InvalidArgument("match_channels_with_residual: sizes do not match");
  const auto sy = standardised_columns(y, samples, n);
  std::vector<double> score(n * n), v(samples);
  for (int64_t k = 0; k < n; ++k)
    for (int64_t c = 0; c < n; ++c) {
      double mean = 0;
      for (int64_t i = 0; i < samples; ++i) mean += v[i] = x[i * n + k] + skip[i * n + c];
      mean /= static_cast<double>(samples);
      double vv = 0, vy = 0;
      for (int64_t i = 0; i < samples; ++i) {
        const double d = v[i] - mean;
        vv += d * d, vy += d * sy[c * samples + i];
      }
      score[k * n + c] = vv > 0 ? vy / std::sqrt(vv) : 0;
    }
  return max_score_assignment(score, n, n);
}

}  // namespace veil::split

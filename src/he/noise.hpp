// Internal: heuristic error model (standard deviations of the slot-domain error, in integer
// units), after Cheon-Kim-Kim-Song, "Homomorphic encryption for arithmetic of approximate
// numbers" (ASIACRYPT 2017), Lemmas 1-3, with variances instead of worst-case bounds. A
// coefficient-domain error with i.i.d. coefficients of variance v has slot variance n v.
#pragma once

#include <cmath>

#include "veil/he/context.hpp"

namespace veil::he::detail {

constexpr double kTernaryVar = 2.0 / 3.0;

inline double fresh_noise_public(const HeContext& c) {
  const double n = static_cast<double>(c.n());
  const double s2 = kErrorSigma * kErrorSigma;
  return std::sqrt(n * (s2 * (1 + 2 * kTernaryVar * n) + 1.0 / 12));
}

inline double fresh_noise_symmetric(const HeContext& c) {
  const double n = static_cast<double>(c.n());
  return std::sqrt(n * (kErrorSigma * kErrorSigma + 1.0 / 12));
}

// Rounding a + b s after a division (rescale or mod-down): coefficient variance (1 + n 2/3)/12.
inline double rounding_var(const HeContext& c) {
  const double n = static_cast<double>(c.n());
  return n * (1 + kTernaryVar * n) / 12.0;
}

// Slot-domain variance key switching adds at `level`.
inline double keyswitch_var(const HeContext& c, size_t level) {
  const double n = static_cast<double>(c.n());
  double p2 = 1;
  for (size_t j = 0; j < c.special_count(); ++j) {
    const double p = static_cast<double>(c.prime_values()[c.q_count() + j]);
    p2 *= p * p;
  }
  double sum = 0;
  const size_t k = c.special_count();
  for (size_t d = 0; d < c.digit_count(level); ++d) {
    double q2 = 1;
    for (size_t i = d * k; i < std::min((d + 1) * k, level + 1); ++i) {
      const double q = static_cast<double>(c.prime_values()[i]);
      q2 *= q * q;
    }
    sum += n * (q2 / 3.0) * kErrorSigma * kErrorSigma;
  }
  return n * (sum / p2) + static_cast<double>(k) * rounding_var(c);
}

inline double add_std(double a, double b) { return std::sqrt(a * a + b * b); }

}  // namespace veil::he::detail

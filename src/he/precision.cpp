#include "veil/he/precision.hpp"

#include <cmath>
#include <sstream>

namespace veil::he {

PrecisionReport estimate_precision(const HeContext& ctx, const Ciphertext& ct) {
  check_ciphertext(ctx, ct);
  PrecisionReport r;
  r.level = ct.level();
  r.levels_left = ct.level();
  r.scale_log2 = std::log2(ct.scale());
  r.modulus_log2 = ctx.q_bits(ct.level());
  // Expected maximum of `slots` complex Gaussians of this standard deviation.
  const double slots = static_cast<double>(ctx.slots());
  const double max_factor = std::sqrt(2.0 * std::log(2.0 * slots));
  r.estimated_error_log2 = std::log2(std::max(ct.noise(), 1e-300) * max_factor / ct.scale());
  return r;
}

PrecisionReport measure_precision(const HeContext& ctx, const Decryptor& dec,
                                  const CkksEncoder& enc, const Ciphertext& ct,
                                  std::span<const std::complex<double>> expected) {
  PrecisionReport r = estimate_precision(ctx, ct);
  const auto got = enc.decode_complex(dec.decrypt(ct));
  double max_err = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const std::complex<double> want = i < expected.size() ? expected[i] : 0.0;
    max_err = std::max(max_err, std::abs(got[i] - want));
  }
  r.measured_error_log2 = std::log2(std::max(max_err, 1e-300));
  return r;
}

std::string to_string(const PrecisionReport& r) {
  std::ostringstream os;
  os.precision(3);
  os << std::fixed << "level " << r.level << " (" << r.levels_left << " rescales left), log2(Q) "
     << r.modulus_log2 << ", log2(scale) " << r.scale_log2 << ", estimated log2 error "
     << r.estimated_error_log2;
  if (r.measured_error_log2) os << ", measured log2 error " << *r.measured_error_log2;
  return os.str();
}

}  // namespace veil::he

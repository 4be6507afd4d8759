// Precision report: how many levels a ciphertext has left and how large its error is, either
// estimated from the error model the evaluator tracks (no key needed) or measured against the
// expected values with the secret key.
//
// The estimate propagates the standard deviation of the slot-domain error through each
// operation (variances after Cheon-Kim-Kim-Song 2017, Lemmas 1-3), assuming slot values of
// magnitude at most 1; it is reported as the expected maximum over the slots.
#pragma once

#include <complex>
#include <optional>
#include <span>
#include <string>

#include "veil/he/ciphertext.hpp"
#include "veil/he/context.hpp"
#include "veil/he/encoder.hpp"
#include "veil/he/encryptor.hpp"

namespace veil::he {

struct PrecisionReport {
  size_t level = 0;        // index of the last prime still in the modulus
  size_t levels_left = 0;  // rescales still possible (= level)
  double scale_log2 = 0;
  double modulus_log2 = 0;
  double estimated_error_log2 = 0;            // log2 of the expected max |error| per slot
  std::optional<double> measured_error_log2;  // log2 of the measured max |error|
  double estimated_precision_bits() const { return -estimated_error_log2; }
};

PrecisionReport estimate_precision(const HeContext& ctx, const Ciphertext& ct);

// Decrypts and compares with `expected` (missing entries are taken as 0).
PrecisionReport measure_precision(const HeContext& ctx, const Decryptor& dec,
                                  const CkksEncoder& enc, const Ciphertext& ct,
                                  std::span<const std::complex<double>> expected);

std::string to_string(const PrecisionReport& r);

}  // namespace veil::he

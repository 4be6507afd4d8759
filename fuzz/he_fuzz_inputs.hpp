// Shared by the CKKS fuzz targets: the small test-only parameters their fixtures use, and the
// patch that mutates a valid serialized object. Random bytes almost never pass the per-residue
// "below its prime" checks or a digest, so patching a valid object is how a fuzzer gets past them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"
#include "veil/he/context.hpp"

namespace veil::fuzz {

// N = 1024: the small ring keeps each run fast (test-only parameters).
inline he::CkksParameters tiny_ckks_params() {
  he::CkksParameters p;
  p.poly_degree = 1024;
  p.coeff_bits = {40, 30, 40};
  p.insecure_allow_for_testing_only = true;
  return p;
}

// `valid` after `patch`: u16 cut (bytes removed from the end), then 4-byte records (u24 offset
// mod size, u8 xor mask).
inline std::vector<uint8_t> apply_patch(std::vector<uint8_t> valid,
                                        std::span<const uint8_t> patch) {
  if (patch.size() >= 2) {
    const size_t cut = load_le(patch.data(), 2);
    valid.resize(valid.size() - std::min(cut, valid.size()));
    for (size_t i = 2; i + 4 <= patch.size() && !valid.empty(); i += 4) {
      const size_t at = load_le(patch.data() + i, 3) % valid.size();
      valid[at] ^= patch[i + 3];
    }
  }
  return valid;
}

// Loads `input` with `load_and_serialize`; a rejection (veil::Error) is fine, but an accepted
// input must serialize to bytes that load again (an exception there is a bug) and serialize
// to the same bytes.
template <class LoadAndSerialize>
void check_round_trip(const LoadAndSerialize& load_and_serialize, std::span<const uint8_t> input) {
  std::vector<uint8_t> once;
  try {
    once = load_and_serialize(input);
  } catch (const veil::Error&) {
    return;
  }
  if (load_and_serialize(once) != once) __builtin_trap();
}

}  // namespace veil::fuzz

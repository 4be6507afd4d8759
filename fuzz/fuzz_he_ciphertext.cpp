// libFuzzer target for the CKKS ciphertext loader: any input must either load into a valid
// ciphertext or throw a veil::Error, never crash or allocate without bound.
#include <cstddef>
#include <cstdint>
#include <span>

#include "veil/core/error.hpp"
#include "veil/he/he.hpp"

namespace {

const veil::he::HeContext& fuzz_context() {
  static const auto ctx = [] {
    veil::he::CkksParameters p;
    p.poly_degree = 1024;
    p.coeff_bits = {40, 30, 40};
    p.insecure_allow_for_testing_only = true;  // small ring keeps each run fast
    return veil::he::HeContext::create(p);
  }();
  return *ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& ctx = fuzz_context();
  try {
    const auto ct = veil::he::load_ciphertext(ctx, std::span<const uint8_t>(data, size));
    // A loaded ciphertext must serialize back to a loadable object.
    (void)veil::he::load_ciphertext(ctx, veil::he::serialize(ctx, ct));
  } catch (const veil::Error&) {
  }
  return 0;
}

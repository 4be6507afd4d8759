#include "sampling.hpp"

#include <array>
#include <cmath>

#include "ntt.hpp"

namespace veil::he::detail {

Sampler::Sampler(const Seed& seed, uint64_t stream) : prg_(seed, stream), buf_(1024), pos_(1024) {}

void Sampler::refill() {
  prg_.fill(std::span<uint64_t>(buf_));
  pos_ = 0;
}

void Sampler::ternary(std::span<int32_t> out) {
  // Each 64-bit word yields 40 trits via 8-bit rejection sampling below 255 (= 3 * 85).
  size_t i = 0;
  while (i < out.size()) {
    uint64_t w = next();
    for (int b = 0; b < 8 && i < out.size(); ++b, w >>= 8) {
      const uint32_t byte = static_cast<uint32_t>(w & 0xff);
      if (byte >= 255) continue;
      out[i++] = static_cast<int32_t>(byte % 3) - 1;
    }
  }
}

namespace {

// cdf[k] = floor(2^63 * P(|X| <= k)) for the discrete Gaussian truncated at kErrorBound.
std::array<uint64_t, kErrorBound + 1> make_cdf() {
  std::array<long double, kErrorBound + 1> w{};
  long double total = 0;
  for (int k = 0; k <= kErrorBound; ++k) {
    w[k] = std::exp(-static_cast<long double>(k) * k / (2.0L * kErrorSigma * kErrorSigma));
    if (k > 0) w[k] *= 2;
    total += w[k];
  }
  std::array<uint64_t, kErrorBound + 1> cdf{};
  long double acc = 0;
  for (int k = 0; k <= kErrorBound; ++k) {
    acc += w[k];
    const long double v = acc / total * 9223372036854775808.0L;
    cdf[k] = v >= 9223372036854775807.0L ? 9223372036854775807ULL : static_cast<uint64_t>(v);
  }
  cdf[kErrorBound] = 9223372036854775807ULL;
  return cdf;
}

}  // namespace

void Sampler::gaussian(std::span<int32_t> out) {
  static const auto kCdf = make_cdf();
  for (auto& x : out) {
    const uint64_t w = next();
    const uint64_t u = w >> 1;
    int k = 0;
    while (k < kErrorBound && u >= kCdf[k]) ++k;
    x = (w & 1) ? -k : k;
  }
}

void sample_uniform(const HeContext& ctx, const Seed& seed, uint64_t stream, size_t prime,
                    uint64_t* out) {
  Sampler s(seed, stream);
  const uint64_t q = ctx.prime(prime).value;
  const uint64_t mask = (uint64_t{1} << ctx.prime(prime).bits()) - 1;
  const size_t n = ctx.n();
  for (size_t i = 0; i < n;) {
    const uint64_t v = s.next() & mask;
    if (v < q) out[i++] = v;
  }
}

void small_to_ntt(const HeContext& ctx, const int32_t* coeffs, size_t prime, uint64_t* out) {
  const uint64_t q = ctx.prime(prime).value;
  const size_t n = ctx.n();
  for (size_t i = 0; i < n; ++i) {
    const int64_t c = coeffs[i];
    out[i] = c < 0 ? q - static_cast<uint64_t>(-c) : static_cast<uint64_t>(c);
  }
  ctx.ntt(prime).forward(out);
}

}  // namespace veil::he::detail

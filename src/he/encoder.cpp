#include "veil/he/encoder.hpp"

#include <cmath>
#include <numbers>

#include "fft_avx2.hpp"
#include "kernels.hpp"
#include "ntt.hpp"
#include "thread_pool.hpp"
#include "veil/core/error.hpp"

namespace veil::he {

namespace {

// x (an integer-valued double, possibly beyond 2^63) modulo q, exactly.
uint64_t double_mod(double x, const Modulus& m) {
  const bool neg = x < 0;
  double ax = std::fabs(x);
  uint64_t r;
  if (ax < 9.2e18) {
    r = reduce64(static_cast<uint64_t>(ax), m);
  } else {
    int e = 0;
    const double f = std::frexp(ax, &e);  // ax = f * 2^e, f in [0.5, 1)
    const uint64_t mant = static_cast<uint64_t>(std::ldexp(f, 53));
    r = mul_mod(reduce64(mant, m), pow_mod(2, static_cast<uint64_t>(e - 53), m), m);
  }
  return neg ? neg_mod(r, m.value) : r;
}

// The AVX2 butterflies (bit-identical to the scalar ones) on every vector kernel path.
bool use_vector_fft(size_t size) { return size >= 4 && active_isa() != Isa::kScalar; }

// The butterfly stages on the interleaved doubles: copies of std::complex go through the stack
// and stall on store forwarding. Stage `half` uses the twiddles at [half + j].
void fft_stages_scalar(double* d, size_t size, const double* fft_roots) {
  for (size_t len = 2; len <= size; len <<= 1) {
    const size_t half = len >> 1;
    const double* roots = fft_roots + 2 * half;
    for (size_t i = 0; i < size; i += len) {
      double* x = d + 2 * i;
      double* y = x + 2 * half;
      for (size_t j = 0; j < half; ++j) {
        const double ur = x[2 * j], ui = x[2 * j + 1];
        const double yr = y[2 * j], yi = y[2 * j + 1];
        const double rr = roots[2 * j], ri = roots[2 * j + 1];
        const double wr = yr * rr - yi * ri, wi = yr * ri + yi * rr;
        x[2 * j] = ur + wr;
        x[2 * j + 1] = ui + wi;
        y[2 * j] = ur - wr;
        y[2 * j + 1] = ui - wi;
      }
    }
  }
}

void fft_inv_stages_scalar(double* d, size_t size, const double* inv_roots) {
  for (size_t len = size; len >= 2; len >>= 1) {
    const size_t half = len >> 1;
    const double* roots = inv_roots + 2 * half;
    for (size_t i = 0; i < size; i += len) {
      double* x = d + 2 * i;
      double* y = x + 2 * half;
      for (size_t j = 0; j < half; ++j) {
        const double xr = x[2 * j], xi = x[2 * j + 1];
        const double yr = y[2 * j], yi = y[2 * j + 1];
        const double rr = roots[2 * j], ri = roots[2 * j + 1];
        const double tr = xr - yr, ti = xi - yi;
        x[2 * j] = xr + yr;
        x[2 * j + 1] = xi + yi;
        y[2 * j] = tr * rr - ti * ri;
        y[2 * j + 1] = tr * ri + ti * rr;
      }
    }
  }
}

}  // namespace

CkksEncoder::CkksEncoder(ContextPtr ctx) : ctx_(std::move(ctx)) {
  if (!ctx_) throw InvalidArgument("CkksEncoder: null context");
  const size_t n = ctx_->n();
  const size_t slots = n / 2;
  const uint64_t m = 2 * n;
  rot_group_.resize(slots);
  uint64_t g = 1;
  for (size_t j = 0; j < slots; ++j) {
    rot_group_[j] = g;
    g = g * 5 % m;
  }
  ksi_pows_.resize(m + 1);
  for (uint64_t k = 0; k <= m; ++k) {
    const long double angle = 2.0L * std::numbers::pi_v<long double> * k / m;
    ksi_pows_[k] = {static_cast<double>(std::cos(angle)), static_cast<double>(std::sin(angle))};
  }
  int logs = 0;
  while ((size_t{1} << logs) < slots) ++logs;
  bitrev_.resize(slots);
  for (size_t i = 0; i < slots; ++i) bitrev_[i] = bit_reverse(static_cast<uint32_t>(i), logs);
  // Twiddles of the stage with butterfly span `half` at [half + j] (lenq = 4 len is a power of
  // two, so rot_group % lenq is a mask).
  fft_roots_.resize(slots);
  fft_inv_roots_.resize(slots);
  for (size_t half = 1; half < slots; half <<= 1) {
    const uint64_t lenq = 8 * half;
    const uint64_t gap = m / lenq;
    for (size_t j = 0; j < half; ++j) {
      const uint64_t r = rot_group_[j] & (lenq - 1);
      fft_roots_[half + j] = ksi_pows_[r * gap];
      fft_inv_roots_[half + j] = ksi_pows_[(lenq - r) * gap];
    }
  }
}

void CkksEncoder::fft_special(std::span<std::complex<double>> v) const {
  const size_t size = v.size();
  for (size_t i = 0; i < size; ++i)
    if (i < bitrev_[i]) std::swap(v[i], v[bitrev_[i]]);
  const double* roots = reinterpret_cast<const double*>(fft_roots_.data());
  double* d = reinterpret_cast<double*>(v.data());
  if (use_vector_fft(size)) {
    avx2::fft_stages(d, size, roots);
  } else {
    fft_stages_scalar(d, size, roots);
  }
}

void CkksEncoder::fft_special_inv(std::span<std::complex<double>> v) const {
  const size_t size = v.size();
  double* d = reinterpret_cast<double*>(v.data());
  const double* inv_roots = reinterpret_cast<const double*>(fft_inv_roots_.data());
  if (use_vector_fft(size)) {
    avx2::fft_inv_stages(d, size, inv_roots);
  } else {
    fft_inv_stages_scalar(d, size, inv_roots);
  }
  for (size_t i = 0; i < size; ++i)
    if (i < bitrev_[i]) std::swap(v[i], v[bitrev_[i]]);
  const double inv = 1.0 / static_cast<double>(size);
  for (auto& x : v) x *= inv;
}

void CkksEncoder::to_coefficients(std::span<const std::complex<double>> slots,
                                  double* coeffs) const {
  const size_t s = ctx_->slots();
  if (slots.size() > s) throw InvalidArgument("CKKS encode: more values than slots");
  PoolVector<std::complex<double>> v(s);  // zero (std::complex value-initialises)
  std::copy(slots.begin(), slots.end(), v.begin());
  fft_special_inv(v);
  for (size_t i = 0; i < s; ++i) {
    coeffs[i] = v[i].real();
    coeffs[i + s] = v[i].imag();
  }
}

std::vector<double> CkksEncoder::coefficients_from_slots(
    std::span<const std::complex<double>> slots) const {
  std::vector<double> coeffs(2 * ctx_->slots());
  to_coefficients(slots, coeffs.data());
  return coeffs;
}

std::vector<std::complex<double>> CkksEncoder::slots_from_coefficients(
    std::span<const double> coeffs) const {
  const size_t s = ctx_->slots();
  if (coeffs.size() != 2 * s) throw InvalidArgument("CKKS decode: wrong coefficient count");
  std::vector<std::complex<double>> v(s);
  for (size_t i = 0; i < s; ++i) v[i] = {coeffs[i], coeffs[i + s]};
  fft_special(v);
  return v;
}

Plaintext CkksEncoder::encode(std::span<const std::complex<double>> values, double scale,
                              size_t level) const {
  if (level > ctx_->max_level()) throw InvalidArgument("CKKS encode: level out of range");
  if (!(scale >= 1.0) || !std::isfinite(scale))
    throw InvalidArgument("CKKS encode: scale must be finite and >= 1");
  for (const auto& x : values)
    if (!std::isfinite(x.real()) || !std::isfinite(x.imag()))
      throw InvalidArgument("CKKS encode: non-finite value");
  PoolVector<double> coeffs(2 * ctx_->slots());
  to_coefficients(values, coeffs.data());
  const double limit = std::ldexp(1.0, static_cast<int>(ctx_->q_bits(level)) - 2);
  for (auto& c : coeffs) {
    c = std::nearbyint(c * scale);
    if (!(std::fabs(c) < limit))
      throw InvalidArgument("CKKS encode: value * scale exceeds the modulus at this level");
  }
  const size_t n = ctx_->n();
  Plaintext pt(ctx_->id(), n, level, scale, kNoInit);
  ctx_->pool().parallel_for(level + 1, [&](size_t i) {
    const Modulus& m = ctx_->prime(i);
    uint64_t* out = pt.limb(i);
    for (size_t c = 0; c < n; ++c) out[c] = double_mod(coeffs[c], m);
    ctx_->ntt(i).forward(out);
  });
  return pt;
}

Plaintext CkksEncoder::encode(std::span<const double> values, double scale, size_t level) const {
  const PoolVector<std::complex<double>> v(values.begin(), values.end());
  return encode(v, scale, level);
}

Plaintext CkksEncoder::encode(std::span<const double> values) const {
  return encode(values, ctx_->parameters().default_scale, ctx_->max_level());
}

Plaintext CkksEncoder::encode_constant(std::complex<double> value, double scale,
                                       size_t level) const {
  if (level > ctx_->max_level()) throw InvalidArgument("CKKS encode: level out of range");
  const double re = std::nearbyint(value.real() * scale);
  const double im = std::nearbyint(value.imag() * scale);
  const double limit = std::ldexp(1.0, static_cast<int>(ctx_->q_bits(level)) - 2);
  if (!std::isfinite(re) || !std::isfinite(im) || !(std::fabs(re) < limit) ||
      !(std::fabs(im) < limit))
    throw InvalidArgument("CKKS encode: constant * scale exceeds the modulus at this level");
  const size_t n = ctx_->n();
  Plaintext pt(ctx_->id(), n, level, scale, kNoInit);
  for (size_t i = 0; i <= level; ++i) {
    const Modulus& m = ctx_->prime(i);
    const uint64_t r = double_mod(re, m);
    const uint64_t s = double_mod(im, m);
    const auto& h = ctx_->half_monomial(i);
    uint64_t* out = pt.limb(i);
    for (size_t c = 0; c < n; ++c) out[c] = add_mod(r, mul_mod(s, h[c], m), m.value);
  }
  return pt;
}

std::vector<std::complex<double>> CkksEncoder::decode_complex(const Plaintext& pt) const {
  if (pt.context_id() != ctx_->id() || pt.n() != ctx_->n() || pt.level() > ctx_->max_level() ||
      pt.data().size() != (pt.level() + 1) * pt.n())
    throw InvalidArgument("CKKS decode: plaintext belongs to other parameters");
  const size_t n = ctx_->n();
  const size_t level = pt.level();
  PolyVector coeff(pt.data());
  ctx_->pool().parallel_for(level + 1,
                            [&](size_t i) { ctx_->ntt(i).inverse(coeff.data() + i * n); });
  // CRT: x = sum_i y_i (Q/q_i) - v Q, evaluated modulo 2^128; exact while |x| < 2^127.
  const auto& crt = ctx_->crt(level);
  PoolVector<double> real(n);  // every entry written below
  const double inv_scale = 1.0 / pt.scale();
  // v = round(sum y_i / q_i) with reciprocals instead of divisions: the sum lies within
  // |x| / Q of an integer, so the rounding is unaffected unless |x| is close to Q / 2 (where
  // the value has wrapped around anyway).
  std::vector<long double> inv_q(level + 1);
  const std::vector<uint64_t>& q_of = ctx_->prime_values();
  for (size_t i = 0; i <= level; ++i) inv_q[i] = 1.0L / static_cast<long double>(q_of[i]);
  for (size_t c = 0; c < n; ++c) {
    u128 acc = 0;
    long double frac = 0;
    for (size_t i = 0; i <= level; ++i) {
      const uint64_t q = q_of[i];
      const uint64_t y = mul_shoup(coeff[i * n + c], crt.inv_punct[i], crt.inv_punct_shoup[i], q);
      acc += static_cast<u128>(y) * crt.punct_mod_2_128[i];
      frac += static_cast<long double>(y) * inv_q[i];
    }
    const u128 v = static_cast<u128>(static_cast<uint64_t>(std::llroundl(frac)));
    acc -= v * crt.q_mod_2_128;
    const __int128 x = static_cast<__int128>(acc);
    real[c] = static_cast<double>(x) * inv_scale;
  }
  return slots_from_coefficients(real);
}

std::vector<double> CkksEncoder::decode(const Plaintext& pt) const {
  const auto v = decode_complex(pt);
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = v[i].real();
  return out;
}

}  // namespace veil::he

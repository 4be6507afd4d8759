#include "ntt.hpp"

#include "kernels_avx512.hpp"
#include "ntt_avx2.hpp"
#include "veil/core/error.hpp"

namespace veil::he {

NttTables::NttTables(const Modulus& modulus, size_t n) : mod_(modulus), n_(n) {
  if (n < 2 || (n & (n - 1)) != 0) throw InvalidArgument("NTT size must be a power of two");
  int logn = 0;
  while ((size_t{1} << logn) < n) ++logn;
  const uint64_t q = mod_.value;
  psi_ = find_primitive_root(2 * n, mod_);
  const uint64_t psi_inv = inv_mod(psi_, mod_);
  roots_.resize(n);
  roots_shoup_.resize(n);
  inv_roots_.resize(n);
  inv_roots_shoup_.resize(n);
  uint64_t p = 1, pi = 1;
  std::vector<uint64_t> pow(n), ipow(n);
  for (size_t i = 0; i < n; ++i) {
    pow[i] = p;
    ipow[i] = pi;
    p = mul_mod(p, psi_, mod_);
    pi = mul_mod(pi, psi_inv, mod_);
  }
  for (size_t i = 0; i < n; ++i) {
    const uint32_t r = bit_reverse(static_cast<uint32_t>(i), logn);
    roots_[i] = pow[r];
    roots_shoup_[i] = shoup(pow[r], q);
    inv_roots_[i] = ipow[r];
    inv_roots_shoup_[i] = shoup(ipow[r], q);
  }
  inv_n_ = inv_mod(n % q, mod_);
  inv_n_shoup_ = shoup(inv_n_, q);
  last_w_ = mul_mod(inv_roots_[1], inv_n_, mod_);
  last_w_shoup_ = shoup(last_w_, q);
  ifma_ = ifma_friendly(q);
  if (ifma_) {
    auto shoup52 = [q](uint64_t w) {
      return static_cast<uint64_t>((static_cast<u128>(w) << 52) / q);
    };
    roots_shoup52_.resize(n);
    inv_roots_shoup52_.resize(n);
    for (size_t i = 0; i < n; ++i) {
      roots_shoup52_[i] = shoup52(roots_[i]);
      inv_roots_shoup52_[i] = shoup52(inv_roots_[i]);
    }
    inv_n_shoup52_ = shoup52(inv_n_);
    last_w_shoup52_ = shoup52(last_w_);
  }
  if (isa_supported(Isa::kAvx2) && avx2::fp_friendly(q) && n >= avx2::kMinN) {
    avx2::fp_twiddles(roots_.data(), n, q, fp_roots_, fp_roots_q_);
    avx2::fp_twiddles(inv_roots_.data(), n, q, fp_inv_roots_, fp_inv_roots_q_);
  }
}

// The vector kernels regroup butterflies in blocks of 16 coefficients.
void NttTables::forward(uint64_t* a, Isa isa) const {
  if (isa == Isa::kAvx512 && isa_supported(Isa::kAvx512) && n_ >= 16) {
    avx512::ntt_forward(a, n_, mod_.value, roots_.data(),
                        ifma_ ? roots_shoup52_.data() : roots_shoup_.data(), ifma_);
    return;
  }
  if (isa == Isa::kAvx2 && isa_supported(Isa::kAvx2) && n_ >= avx2::kMinN) {
    if (!fp_roots_.empty()) {
      avx2::ntt_forward_fp(a, n_, mod_.value, fp_roots_.data(), fp_roots_q_.data());
    } else {
      avx2::ntt_forward_int(a, n_, mod_.value, roots_.data(), roots_shoup_.data());
    }
    return;
  }
  forward_scalar(a);
}

void NttTables::inverse(uint64_t* a, Isa isa) const {
  if (isa == Isa::kAvx512 && isa_supported(Isa::kAvx512) && n_ >= 16) {
    if (ifma_) {
      avx512::ntt_inverse(a, n_, mod_.value, inv_roots_.data(), inv_roots_shoup52_.data(), inv_n_,
                          inv_n_shoup52_, last_w_, last_w_shoup52_, true);
    } else {
      avx512::ntt_inverse(a, n_, mod_.value, inv_roots_.data(), inv_roots_shoup_.data(), inv_n_,
                          inv_n_shoup_, last_w_, last_w_shoup_, false);
    }
    return;
  }
  if (isa == Isa::kAvx2 && isa_supported(Isa::kAvx2) && n_ >= avx2::kMinN) {
    if (!fp_inv_roots_.empty()) {
      avx2::ntt_inverse_fp(a, n_, mod_.value, fp_inv_roots_.data(), fp_inv_roots_q_.data(), inv_n_,
                           last_w_);
    } else {
      avx2::ntt_inverse_int(a, n_, mod_.value, inv_roots_.data(), inv_roots_shoup_.data(), inv_n_,
                            inv_n_shoup_, last_w_, last_w_shoup_);
    }
    return;
  }
  inverse_scalar(a);
}

void NttTables::forward_scalar(uint64_t* a) const {
  const uint64_t q = mod_.value;
  const uint64_t two_q = 2 * q;
  const size_t n = n_;
  // Values stay in [0, 4q) between stages: X is folded into [0, 2q) before use and T is in
  // [0, 2q), so X + T < 4q and X - T + 2q < 4q.
  size_t m = 1, t = n >> 1;
  for (; t > 1; m <<= 1, t >>= 1) {
    for (size_t i = 0; i < m; ++i) {
      const uint64_t w = roots_[m + i];
      const uint64_t ws = roots_shoup_[m + i];
      uint64_t* x = a + 2 * i * t;
      uint64_t* y = x + t;
      for (size_t j = 0; j < t; ++j) {
        uint64_t u = x[j];
        u -= (u >= two_q) ? two_q : 0;
        const uint64_t v = mul_shoup_lazy(y[j], w, ws, q);
        x[j] = u + v;
        y[j] = u - v + two_q;
      }
    }
  }
  // Last stage (t = 1) fused with the final reduction to [0, q).
  for (size_t i = 0; i < m; ++i) {
    uint64_t u = a[2 * i];
    u -= (u >= two_q) ? two_q : 0;
    const uint64_t v = mul_shoup_lazy(a[2 * i + 1], roots_[m + i], roots_shoup_[m + i], q);
    uint64_t x = u + v, y = u - v + two_q;
    x -= (x >= two_q) ? two_q : 0;
    x -= (x >= q) ? q : 0;
    y -= (y >= two_q) ? two_q : 0;
    y -= (y >= q) ? q : 0;
    a[2 * i] = x;
    a[2 * i + 1] = y;
  }
}

void NttTables::inverse_scalar(uint64_t* a) const {
  const uint64_t q = mod_.value;
  const uint64_t two_q = 2 * q;
  const size_t n = n_;
  // Values stay in [0, 2q). The last stage (m = 1) is fused with the scaling by 1/n.
  size_t m = n >> 1, t = 1;
  for (; m > 1; m >>= 1, t <<= 1) {
    for (size_t i = 0; i < m; ++i) {
      const uint64_t w = inv_roots_[m + i];
      const uint64_t ws = inv_roots_shoup_[m + i];
      uint64_t* x = a + 2 * i * t;
      uint64_t* y = x + t;
      for (size_t j = 0; j < t; ++j) {
        const uint64_t u = x[j];
        const uint64_t v = y[j];
        uint64_t s = u + v;
        s -= (s >= two_q) ? two_q : 0;
        x[j] = s;
        y[j] = mul_shoup_lazy(u - v + two_q, w, ws, q);
      }
    }
  }
  uint64_t* x = a;
  uint64_t* y = a + t;
  for (size_t j = 0; j < t; ++j) {
    const uint64_t u = x[j];
    const uint64_t v = y[j];
    x[j] = mul_shoup(u + v, inv_n_, inv_n_shoup_, q);
    y[j] = mul_shoup(u - v + two_q, last_w_, last_w_shoup_, q);
  }
}

}  // namespace veil::he

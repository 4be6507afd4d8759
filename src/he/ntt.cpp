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

namespace {

// Harvey's butterflies with Shoup products. Forward (Cooley-Tukey): values stay in [0, 4q)
// between stages, X is folded into [0, 2q) before use and T = Y w is in [0, 2q), so X + T < 4q
// and X - T + 2q < 4q. Inverse (Gentleman-Sande): values stay in [0, 2q).
inline void fwd_bfly(uint64_t& x, uint64_t& y, uint64_t w, uint64_t ws, uint64_t q) {
  const uint64_t two_q = 2 * q;
  uint64_t u = x;
  u -= (u >= two_q) ? two_q : 0;
  const uint64_t v = mul_shoup_lazy(y, w, ws, q);
  x = u + v;
  y = u - v + two_q;
}

inline void inv_bfly(uint64_t& x, uint64_t& y, uint64_t w, uint64_t ws, uint64_t q) {
  const uint64_t two_q = 2 * q;
  const uint64_t u = x, v = y;
  uint64_t s = u + v;
  s -= (s >= two_q) ? two_q : 0;
  x = s;
  y = mul_shoup_lazy(u - v + two_q, w, ws, q);
}

}  // namespace

// The stages run two at a time where they can (radix 4: one pass over the data instead of two,
// the same butterflies in another order, so the same values).
void NttTables::forward_scalar(uint64_t* a) const {
  const uint64_t q = mod_.value;
  const uint64_t two_q = 2 * q;
  const uint64_t* w = roots_.data();
  const uint64_t* ws = roots_shoup_.data();
  size_t stages = 0;  // before the last one (t = 1)
  while ((size_t{2} << stages) < n_) ++stages;
  size_t m = 1, t = n_ >> 1;
  if (stages % 2 == 1) {  // stage (1, n/2) alone
    for (size_t j = 0; j < t; ++j) fwd_bfly(a[j], a[j + t], w[1], ws[1], q);
    m <<= 1, t >>= 1;
  }
  // Stages (m, t) and (2m, t/2).
  for (; t > 2; m <<= 2, t >>= 2) {
    const size_t h = t / 2;
    for (size_t i = 0; i < m; ++i) {
      const size_t k0 = m + i, k1 = 2 * k0, k2 = k1 + 1;
      uint64_t* p = a + 2 * i * t;
      for (size_t j = 0; j < h; ++j) {
        uint64_t x0 = p[j], x1 = p[j + h], x2 = p[j + t], x3 = p[j + t + h];
        fwd_bfly(x0, x2, w[k0], ws[k0], q);
        fwd_bfly(x1, x3, w[k0], ws[k0], q);
        fwd_bfly(x0, x1, w[k1], ws[k1], q);
        fwd_bfly(x2, x3, w[k2], ws[k2], q);
        p[j] = x0, p[j + h] = x1, p[j + t] = x2, p[j + t + h] = x3;
      }
    }
  }
  // Last stage (t = 1) fused with the final reduction to [0, q).
  for (size_t i = 0; i < m; ++i) {
    uint64_t x = a[2 * i], y = a[2 * i + 1];
    fwd_bfly(x, y, w[m + i], ws[m + i], q);
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
  const uint64_t* w = inv_roots_.data();
  const uint64_t* ws = inv_roots_shoup_.data();
  // Stages (m, t) and (m/2, 2t) while m/2 > 1; the last stage (m = 1) is fused with the scaling
  // by 1/n.
  size_t m = n_ >> 1, t = 1;
  for (; m >= 4; m >>= 2, t <<= 2) {
    for (size_t i = 0; i < m / 2; ++i) {
      const size_t k0 = m + 2 * i, k1 = k0 + 1, k2 = m / 2 + i;
      uint64_t* p = a + 4 * i * t;
      for (size_t j = 0; j < t; ++j) {
        uint64_t x0 = p[j], x1 = p[j + t], x2 = p[j + 2 * t], x3 = p[j + 3 * t];
        inv_bfly(x0, x1, w[k0], ws[k0], q);
        inv_bfly(x2, x3, w[k1], ws[k1], q);
        inv_bfly(x0, x2, w[k2], ws[k2], q);
        inv_bfly(x1, x3, w[k2], ws[k2], q);
        p[j] = x0, p[j + t] = x1, p[j + 2 * t] = x2, p[j + 3 * t] = x3;
      }
    }
  }
  if (m == 2) {  // stage (2, t) alone
    for (size_t i = 0; i < 2; ++i) {
      uint64_t* p = a + 2 * i * t;
      for (size_t j = 0; j < t; ++j) inv_bfly(p[j], p[j + t], w[2 + i], ws[2 + i], q);
    }
    t <<= 1;
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

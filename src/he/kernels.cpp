#include "kernels.hpp"

#include <algorithm>
#include <cstdlib>

#include "kernels_avx2.hpp"
#include "kernels_avx512.hpp"
#include "veil/core/cpu.hpp"

namespace veil::he {

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return f.avx2 && f.fma && f.bmi2;
    case Isa::kAvx512:
      return f.avx512f && f.avx512dq && f.avx512vl && f.avx512ifma;
  }
  return false;
}

Isa detected_isa() {
  static const Isa isa = isa_supported(Isa::kAvx512) ? Isa::kAvx512
                         : isa_supported(Isa::kAvx2) ? Isa::kAvx2
                                                     : Isa::kScalar;
  return isa;
}

Isa active_isa() {
  static const bool force_scalar = [] {
    const char* env = std::getenv("VEIL_HE_SCALAR");
    return env && *env && *env != '0';
  }();
  if (force_scalar) return Isa::kScalar;
  // Read every call: --kernels may be set after the first context was made (tests switch it).
  const KernelPath path = kernel_path();
  if (path >= KernelPath::Avx512 && isa_supported(Isa::kAvx512)) return Isa::kAvx512;
  if (path >= KernelPath::Avx2 && isa_supported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kScalar;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512-ifma";
  }
  return "?";
}

namespace kernels {

namespace {
// Vector kernels need whole vectors and a CPU that has them.
bool use_avx512(Isa isa, size_t n) {
  return isa == Isa::kAvx512 && isa_supported(Isa::kAvx512) && n % 8 == 0;
}
// The AVX2 kernels do the whole vectors and leave the last n % 4 coefficients to the scalar code.
bool use_avx2(Isa isa) { return isa == Isa::kAvx2 && isa_supported(Isa::kAvx2); }

// The scalar kernels work on the coefficients [c0, n), so that they also finish the vector ones.

// 128-bit lazy accumulation: products are below 2^122, so 32 of them cannot overflow.
template <bool Two, bool Perm>
void dot2_scalar(uint64_t* out0, uint64_t* out1, const uint64_t* const* d,
                 const uint64_t* const* k0, const uint64_t* const* k1, size_t terms,
                 const uint32_t* perm, const Modulus& m, size_t c0, size_t n) {
  for (size_t c = c0; c < n; ++c) {
    const size_t ic = Perm ? perm[c] : c;
    u128 acc0 = 0, acc1 = 0;
    for (size_t j = 0; j < terms; ++j) {
      const uint64_t x = d[j][ic];
      acc0 += static_cast<u128>(x) * k0[j][c];
      if (Two) acc1 += static_cast<u128>(x) * k1[j][c];
      if ((j & 31) == 31) {
        acc0 = reduce128(acc0, m);
        if (Two) acc1 = reduce128(acc1, m);
      }
    }
    out0[c] = reduce128(acc0, m);
    if (Two) out1[c] = reduce128(acc1, m);
  }
}

void dot2_scalar(uint64_t* out0, uint64_t* out1, const uint64_t* const* d,
                 const uint64_t* const* k0, const uint64_t* const* k1, size_t terms,
                 const uint32_t* perm, const Modulus& m, size_t c0, size_t n) {
  if (out1) {
    perm ? dot2_scalar<true, true>(out0, out1, d, k0, k1, terms, perm, m, c0, n)
         : dot2_scalar<true, false>(out0, out1, d, k0, k1, terms, perm, m, c0, n);
  } else {
    perm ? dot2_scalar<false, true>(out0, out1, d, k0, k1, terms, perm, m, c0, n)
         : dot2_scalar<false, false>(out0, out1, d, k0, k1, terms, perm, m, c0, n);
  }
}

// Blocks of B coefficients: the inputs' blocks of a whole row stay in cache for the next rows.
// After a reduction the accumulator is below q < 2^b, and products are below 2^(2b), so
// 2^(127 - 2b) - 1 further products keep the sum below 2^128.
void sparse_matmul_scalar(uint64_t* const* out, const uint64_t* const* x, const uint32_t* start,
                          const uint32_t* col, const uint64_t* w, size_t rows, const Modulus& m,
                          size_t first, size_t n) {
  constexpr size_t B = 8;
  const int bits = m.bits();
  const size_t chunk = size_t{1} << std::min(30, std::max(0, 127 - 2 * bits));
  for (size_t c0 = first; c0 < n; c0 += B) {
    const size_t len = std::min(B, n - c0);
    for (size_t r = 0; r < rows; ++r) {
      u128 acc[B] = {};
      size_t since = 0;
      for (uint32_t t = start[r]; t < start[r + 1]; ++t) {
        const uint64_t wt = w[t];
        const uint64_t* xp = x[col[t]] + c0;
        for (size_t i = 0; i < len; ++i) acc[i] += static_cast<u128>(wt) * xp[i];
        if (++since >= chunk) {
          for (size_t i = 0; i < len; ++i) acc[i] = reduce128(acc[i], m);
          since = 1;
        }
      }
      for (size_t i = 0; i < len; ++i) out[r][c0 + i] = reduce128(acc[i], m);
    }
  }
}

}  // namespace

void sparse_matmul(Isa isa, uint64_t* const* out, const uint64_t* const* x, const uint32_t* start,
                   const uint32_t* col, const uint64_t* w, size_t rows, const Modulus& m,
                   size_t n) {
  if (ifma_friendly(m.value) && use_avx512(isa, n))
    return avx512::sparse_matmul_ifma(out, x, start, col, w, rows, m.value, n);
  size_t c0 = 0;
  if (avx2::fp_friendly(m.value) && use_avx2(isa))
    c0 = avx2::sparse_matmul_fp(out, x, start, col, w, rows, m.value, n);
  sparse_matmul_scalar(out, x, start, col, w, rows, m, c0, n);
}

void sub_mul_const(Isa isa, uint64_t* out, const uint64_t* x, const uint64_t* y, uint64_t w,
                   const Modulus& m, size_t n) {
  if (use_avx512(isa, n)) return avx512::sub_mul_const(out, x, y, w, m, n);
  const size_t c0 = use_avx2(isa) ? avx2::sub_mul_const(out, x, y, w, m, n) : 0;
  const uint64_t q = m.value;
  const uint64_t ws = shoup(w, q);
  if (y) {
    for (size_t c = c0; c < n; ++c) out[c] = mul_shoup(x[c] + q - y[c], w, ws, q);
  } else {
    for (size_t c = c0; c < n; ++c) out[c] = mul_shoup(x[c], w, ws, q);
  }
}

void add_mod(Isa isa, uint64_t* out, const uint64_t* x, const uint64_t* y, const uint32_t* perm,
             uint64_t q, size_t n) {
  if (use_avx512(isa, n)) return avx512::add_mod(out, x, y, perm, q, n);
  const size_t c0 = use_avx2(isa) ? avx2::add_mod(out, x, y, perm, q, n) : 0;
  if (perm) {
    for (size_t c = c0; c < n; ++c) out[c] = veil::he::add_mod(x[perm[c]], y[c], q);
  } else {
    for (size_t c = c0; c < n; ++c) out[c] = veil::he::add_mod(x[c], y[c], q);
  }
}

void lift(Isa isa, uint64_t* out, const uint64_t* x, uint64_t s, bool centered, const Modulus& t,
          size_t n) {
  if (use_avx512(isa, n)) return avx512::lift(out, x, s, centered, t, n);
  const size_t c0 = use_avx2(isa) ? avx2::lift(out, x, s, centered, t, n) : 0;
  // Branch-free: on real data the sign of the centred value is a coin flip.
  const uint64_t half = s >> 1;
  const uint64_t keep = centered ? ~uint64_t{0} : 0;
  if (s < t.value) {
    // Residues modulo s are already reduced modulo t; adding t - s subtracts s.
    const uint64_t shift = t.value - s;
    for (size_t c = c0; c < n; ++c) {
      const uint64_t v = x[c];
      out[c] = v + (shift & keep & (uint64_t{0} - static_cast<uint64_t>(v > half)));
    }
    return;
  }
  const uint64_t s_mod_t = reduce64(s, t);
  for (size_t c = c0; c < n; ++c) {
    const uint64_t v = x[c];
    const uint64_t mask = keep & (uint64_t{0} - static_cast<uint64_t>(v > half));
    out[c] = sub_mod(reduce64(v, t), s_mod_t & mask, t.value);
  }
}

bool vector_products(Isa isa, uint64_t q) {
  return (isa == Isa::kAvx512 || isa == Isa::kAvx2) && isa_supported(isa) && ifma_friendly(q);
}

void dot2(Isa isa, uint64_t* out0, uint64_t* out1, const uint64_t* const* d,
          const uint64_t* const* k0, const uint64_t* const* k1, size_t terms, const uint32_t* perm,
          const Modulus& m, size_t n) {
  if (terms > 0 && ifma_friendly(m.value) && use_avx512(isa, n))
    return avx512::dot2_ifma(out0, out1, d, k0, k1, terms, perm, m.value, n);
  size_t c0 = 0;
  if (terms > 0 && avx2::fp_friendly(m.value) && use_avx2(isa))
    c0 = avx2::dot2_fp(out0, out1, d, k0, k1, terms, perm, m.value, n);
  dot2_scalar(out0, out1, d, k0, k1, terms, perm, m, c0, n);
}

}  // namespace kernels
}  // namespace veil::he

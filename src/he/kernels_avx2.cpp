// AVX2 (+FMA) kernels for the RNS pointwise operations, compiled with target attributes (the
// library baseline is x86-64-v2) and only called after run-time detection (kernels.cpp). Every
// kernel ends in [0, q), so the results are bit-identical to the scalar code.
//
// AVX2 has no 64x64-bit multiplier. Two substitutes:
//  - Integer: the 64-bit halves of a product assembled from 32x32-bit products
//    (_mm256_mul_epu32), used for Shoup products (Harvey, J. Symb. Comp. 2014) and Barrett
//    reductions with any q < 2^61 (lift; sub_mul_const for q >= 2^50).
//  - Double precision, for q < 2^50 (dot2, sparse_matmul, sub_mul_const): a product d * k < 2^100
//  is split
//    exactly at 2^s, s = bits(q) + 1, with FMAs: t = fma(d 2^-s, k, 2^52) rounds d k 2^-s to the
//    integer h in t's low mantissa bits, and fma(d 2^-s, k, -h) is the remainder l 2^-s,
//    |l| <= 2^(s-1), exactly (the error-free product of Dekker/Ogita-Rump-Oishi with a fixed
//    split point, the double-precision analogue of IFMA's 52-bit halves). The h are summed as
//    integers, the l as doubles (exact: multiples of 2^-s far below 2^53 ulps), lazily for up
//    to 2^(52 - bits) terms, and the chunk is reduced modulo q with two rounded quotient
//    estimates, each exact by the same argument.
// The doubles are 2x faster than the 32-bit emulation, which only matches the scalar mulx code
// in sub_mul_const. So for q >= 2^50 the inner products stay scalar: 128-bit mulx accumulation
// is one multiplier cycle per product, which four 32-bit products per lane do not beat.
#include "kernels_avx2.hpp"

#include <immintrin.h>

#include <algorithm>
#include <bit>

#define VEIL_AVX2 __attribute__((target("avx2,fma,bmi2")))
#define VEIL_AVX2_INLINE VEIL_AVX2 inline __attribute__((always_inline))

namespace veil::he::avx2 {

namespace {

uint64_t double_bits(double x) { return std::bit_cast<uint64_t>(x); }

VEIL_AVX2_INLINE __m256i set1(uint64_t v) { return _mm256_set1_epi64x(static_cast<long long>(v)); }
VEIL_AVX2_INLINE __m256i load(const uint64_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
VEIL_AVX2_INLINE void store(uint64_t* p, __m256i v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
}

// x >= b ? x - b : x for x, b < 2^63 (the signed comparison is then the unsigned one).
VEIL_AVX2_INLINE __m256i sub_if_ge(__m256i x, __m256i b) {
  return _mm256_sub_epi64(x, _mm256_andnot_si256(_mm256_cmpgt_epi64(b, x), b));
}

// x[perm[0..3]]. Four scalar loads: the AVX2 gather instruction measured 1.5-1.7x slower in
// dot2 (bench/he_bench.cpp, BM_KernelDot2 with perm), and it is microcoded on AMD Zen.
VEIL_AVX2_INLINE __m256i gather4(const uint64_t* x, const uint32_t* perm) {
  const __m128i lo =
      _mm_set_epi64x(static_cast<long long>(x[perm[1]]), static_cast<long long>(x[perm[0]]));
  const __m128i hi =
      _mm_set_epi64x(static_cast<long long>(x[perm[3]]), static_cast<long long>(x[perm[2]]));
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

// ---------------------------------------------------------------------------------------------
// 64-bit integer products from 32-bit ones. A constant operand is kept with its high half.

struct Const64 {
  __m256i v, hi;  // v and v >> 32
};

VEIL_AVX2_INLINE Const64 make_const(uint64_t v) { return {set1(v), set1(v >> 32)}; }

// High 64 bits of the 128-bit products a * b.
VEIL_AVX2_INLINE __m256i mulhi64(__m256i a, const Const64& b) {
  const __m256i lo32 = set1(0xffffffff);
  const __m256i ah = _mm256_srli_epi64(a, 32);
  const __m256i ll = _mm256_mul_epu32(a, b.v);
  const __m256i lh = _mm256_mul_epu32(a, b.hi);
  const __m256i hl = _mm256_mul_epu32(ah, b.v);
  const __m256i hh = _mm256_mul_epu32(ah, b.hi);
  __m256i mid = _mm256_add_epi64(_mm256_srli_epi64(ll, 32), _mm256_and_si256(lh, lo32));
  mid = _mm256_add_epi64(mid, _mm256_and_si256(hl, lo32));
  __m256i hi = _mm256_add_epi64(hh, _mm256_srli_epi64(lh, 32));
  hi = _mm256_add_epi64(hi, _mm256_srli_epi64(hl, 32));
  return _mm256_add_epi64(hi, _mm256_srli_epi64(mid, 32));
}

// Low 64 bits of a * b.
VEIL_AVX2_INLINE __m256i mullo64(__m256i a, const Const64& b) {
  const __m256i ll = _mm256_mul_epu32(a, b.v);
  const __m256i cross =
      _mm256_add_epi64(_mm256_mul_epu32(a, b.hi), _mm256_mul_epu32(_mm256_srli_epi64(a, 32), b.v));
  return _mm256_add_epi64(ll, _mm256_slli_epi64(cross, 32));
}

// ---------------------------------------------------------------------------------------------
// Double-precision exact products for q < 2^50 (see the header comment).

struct Fp {
  __m256d q, qinv;
  __m256d c2s;       // 2^s mod q
  __m256d two_s;     // 2^s
  __m256d two_ms;    // 2^-s
  __m256d big;       // 2^52
  __m256d ds_bias;   // 2^(52 - s): (x | bits(ds_bias)) as a double is ds_bias + x 2^-s
  __m256i big_bits;  // bits(2^52): (x | big_bits) as a double is 2^52 + x
  __m256i ds_bits;   // bits(2^(52 - s))
  size_t chunk;      // products summed before a reduction
};

VEIL_AVX2_INLINE Fp make_fp(uint64_t q) {
  const int b = 64 - std::countl_zero(q);  // q < 2^b, b <= 50
  const int s = b + 1;
  const double two_s = static_cast<double>(uint64_t{1} << s);
  const double ds_bias = static_cast<double>(uint64_t{1} << (52 - s));
  // After a reduction the carry is below q / 2 + 2; each product adds |l| <= 2^(s-1) and
  // h <= 2^(b-1) + 1, so 2^(52 - b) of them keep the h sum below 2^52 and every reduction
  // step below 2^53 (exact in doubles).
  const size_t chunk = size_t{1} << std::min(20, 52 - b);
  return {_mm256_set1_pd(static_cast<double>(q)),
          _mm256_set1_pd(1.0 / static_cast<double>(q)),
          _mm256_set1_pd(static_cast<double>(static_cast<uint64_t>((u128{1} << s) % q))),
          _mm256_set1_pd(two_s),
          _mm256_set1_pd(1.0 / two_s),
          _mm256_set1_pd(0x1p52),
          _mm256_set1_pd(ds_bias),
          set1(double_bits(0x1p52)),
          set1(double_bits(ds_bias)),
          chunk};
}

// r - round(r / q) q in [-q/2 - 1, q/2 + 1], exact for integer-valued |r| < 2^53.
VEIL_AVX2_INLINE __m256d reduce_near(__m256d r, const Fp& f) {
  const __m256d qe =
      _mm256_round_pd(_mm256_mul_pd(r, f.qinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm256_fnmadd_pd(qe, f.q, r);
}

// One operand of a product: ds = x 2^-s and z = 2^52 - ds 2^52 (x < q).
struct Scaled {
  __m256d ds, z;
};

VEIL_AVX2_INLINE Scaled scale_operand(__m256i x, const Fp& f) {
  const __m256d ds = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(x, f.ds_bits)), f.ds_bias);
  return {ds, _mm256_fnmadd_pd(ds, f.big, f.big)};
}

// Adds a * k (a scaled, k < q) to the split accumulators: kb = 2^52 + k, so
// t = fma(ds, kb, z) = round(ds k) + 2^52 and fma(ds, kb, -(t - z)) = ds k - round(ds k).
VEIL_AVX2_INLINE void accumulate(const Scaled& a, __m256i k, __m256i& h, __m256d& l, const Fp& f) {
  const __m256d kb = _mm256_castsi256_pd(_mm256_or_si256(k, f.big_bits));
  const __m256d t = _mm256_fmadd_pd(a.ds, kb, a.z);
  const __m256d y = _mm256_sub_pd(t, a.z);
  l = _mm256_add_pd(l, _mm256_fmsub_pd(a.ds, kb, y));
  h = _mm256_add_epi64(h, _mm256_castpd_si256(t));
}

// The chunk's value h_sum 2^s + l 2^s modulo q, in [-q/2 - 1, q/2 + 1]. h holds the sum of
// `count` words bits(2^52 + h_i).
VEIL_AVX2_INLINE __m256d reduce_chunk(__m256i h, __m256d l, size_t count, const Fp& f) {
  const uint64_t bias = static_cast<uint64_t>(count) * double_bits(0x1p52);
  const __m256i hs = _mm256_sub_epi64(h, set1(bias));  // below 2^52
  const __m256d hd = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(hs, f.big_bits)), f.big);
  const __m256d p = _mm256_mul_pd(hd, f.c2s);
  const __m256d e = _mm256_fmsub_pd(hd, f.c2s, p);  // hd c2s = p + e exactly
  __m256d r = _mm256_add_pd(reduce_near(p, f), e);
  r = _mm256_fmadd_pd(l, f.two_s, r);
  return reduce_near(r, f);
}

// [-q/2 - 1, q/2 + 1] -> [0, q) as integers.
VEIL_AVX2_INLINE __m256i finish(__m256d r, const Fp& f) {
  r = _mm256_add_pd(r, _mm256_and_pd(_mm256_cmp_pd(r, _mm256_setzero_pd(), _CMP_LT_OQ), f.q));
  return _mm256_xor_si256(_mm256_castpd_si256(_mm256_add_pd(r, f.big)), f.big_bits);
}

// d * k mod q for one term: the quotient round(fl(d k) fl(1/q)) is within 3/4 of d k / q (both
// below 2^50), so d k - qe q = (fl(d k) - qe q) + err(d k) lies in (-q, q), exactly.
VEIL_AVX2_INLINE __m256i mul_mod_fp(__m256d dd, __m256i k, const Fp& f) {
  const __m256d magic = _mm256_set1_pd(0x1.8p52);  // adding it rounds below 2^51 to integers
  const __m256d kd = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(k, f.big_bits)), f.big);
  const __m256d p = _mm256_mul_pd(dd, kd);
  const __m256d e = _mm256_fmsub_pd(dd, kd, p);
  const __m256d qe = _mm256_sub_pd(_mm256_fmadd_pd(p, f.qinv, magic), magic);
  return finish(_mm256_add_pd(_mm256_fnmadd_pd(qe, f.q, p), e), f);
}

template <bool Two, bool Perm>
VEIL_AVX2 void dot1_impl(uint64_t* out0, uint64_t* out1, const uint64_t* d, const uint64_t* k0,
                         const uint64_t* k1, const uint32_t* perm, uint64_t q, size_t n) {
  const Fp f = make_fp(q);
  for (size_t c = 0; c < n; c += 4) {
    const __m256i x = Perm ? gather4(d, perm + c) : load(d + c);
    const __m256d dd = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(x, f.big_bits)), f.big);
    store(out0 + c, mul_mod_fp(dd, load(k0 + c), f));
    if constexpr (Two) store(out1 + c, mul_mod_fp(dd, load(k1 + c), f));
  }
}

template <bool Two, bool Perm>
VEIL_AVX2 void dot2_impl(uint64_t* out0, uint64_t* out1, const uint64_t* const* d,
                         const uint64_t* const* k0, const uint64_t* const* k1, size_t terms,
                         const uint32_t* perm, uint64_t q, size_t n) {
  const Fp f = make_fp(q);
  for (size_t c = 0; c < n; c += 4) {
    __m256d l0 = _mm256_setzero_pd(), l1 = _mm256_setzero_pd();
    for (size_t j0 = 0; j0 < terms; j0 += f.chunk) {
      const size_t j1 = std::min(terms, j0 + f.chunk);
      __m256i h0 = _mm256_setzero_si256(), h1 = _mm256_setzero_si256();
      for (size_t j = j0; j < j1; ++j) {
        const __m256i x = Perm ? gather4(d[j], perm + c) : load(d[j] + c);
        const Scaled a = scale_operand(x, f);
        accumulate(a, load(k0[j] + c), h0, l0, f);
        if constexpr (Two) accumulate(a, load(k1[j] + c), h1, l1, f);
      }
      // The reduced chunk is the next chunk's starting remainder (scaled by 2^-s, exactly).
      l0 = reduce_chunk(h0, l0, j1 - j0, f);
      if constexpr (Two) l1 = reduce_chunk(h1, l1, j1 - j0, f);
      if (j1 < terms) {
        l0 = _mm256_mul_pd(l0, f.two_ms);
        if constexpr (Two) l1 = _mm256_mul_pd(l1, f.two_ms);
      }
    }
    store(out0 + c, finish(l0, f));
    if constexpr (Two) store(out1 + c, finish(l1, f));
  }
}

// One block of V vectors (4 V coefficients) of every row; the weight is the scaled operand.
template <size_t V>
VEIL_AVX2_INLINE void sparse_block(uint64_t* const* out, const uint64_t* const* x,
                                   const uint32_t* start, const uint32_t* col, const uint64_t* w,
                                   size_t rows, size_t c0, const Fp& f) {
  for (size_t r = 0; r < rows; ++r) {
    __m256i h[V];
    __m256d l[V];
    for (size_t v = 0; v < V; ++v) {
      h[v] = _mm256_setzero_si256();
      l[v] = _mm256_setzero_pd();
    }
    size_t since = 0;
    for (uint32_t t = start[r]; t < start[r + 1]; ++t) {
      const Scaled a = scale_operand(set1(w[t]), f);
      const uint64_t* xp = x[col[t]] + c0;
      for (size_t v = 0; v < V; ++v) accumulate(a, load(xp + 4 * v), h[v], l[v], f);
      if (++since == f.chunk) {
        for (size_t v = 0; v < V; ++v) {
          l[v] = _mm256_mul_pd(reduce_chunk(h[v], l[v], since, f), f.two_ms);
          h[v] = _mm256_setzero_si256();
        }
        since = 0;
      }
    }
    for (size_t v = 0; v < V; ++v)
      store(out[r] + c0 + 4 * v, finish(reduce_chunk(h[v], l[v], since, f), f));
  }
}

}  // namespace

size_t dot2_fp(uint64_t* out0, uint64_t* out1, const uint64_t* const* d, const uint64_t* const* k0,
               const uint64_t* const* k1, size_t terms, const uint32_t* perm, uint64_t q,
               size_t n) {
  const size_t body = n & ~size_t{3};
  if (terms == 1) {
    // Plain products (encryption, decryption, the tensor product): no lazy sums to split.
    if (out1) {
      perm ? dot1_impl<true, true>(out0, out1, d[0], k0[0], k1[0], perm, q, body)
           : dot1_impl<true, false>(out0, out1, d[0], k0[0], k1[0], perm, q, body);
    } else {
      perm ? dot1_impl<false, true>(out0, out1, d[0], k0[0], nullptr, perm, q, body)
           : dot1_impl<false, false>(out0, out1, d[0], k0[0], nullptr, perm, q, body);
    }
    return body;
  }
  if (out1) {
    perm ? dot2_impl<true, true>(out0, out1, d, k0, k1, terms, perm, q, body)
         : dot2_impl<true, false>(out0, out1, d, k0, k1, terms, perm, q, body);
  } else {
    perm ? dot2_impl<false, true>(out0, out1, d, k0, k1, terms, perm, q, body)
         : dot2_impl<false, false>(out0, out1, d, k0, k1, terms, perm, q, body);
  }
  return body;
}

VEIL_AVX2 size_t sparse_matmul_fp(uint64_t* const* out, const uint64_t* const* x,
                                  const uint32_t* start, const uint32_t* col, const uint64_t* w,
                                  size_t rows, uint64_t q, size_t n) {
  const Fp f = make_fp(q);
  // 16 coefficients per block: 8 accumulators; a block of every input row (128 bytes each)
  // stays in cache while the rows reuse it.
  constexpr size_t kWide = 4;
  size_t c0 = 0;
  for (; c0 + 4 * kWide <= n; c0 += 4 * kWide)
    sparse_block<kWide>(out, x, start, col, w, rows, c0, f);
  for (; c0 + 4 <= n; c0 += 4) sparse_block<1>(out, x, start, col, w, rows, c0, f);
  return c0;
}

namespace {

// Any q < 2^61: Shoup's product v w - floor(v ws / 2^64) q in [0, 2q), 64-bit halves from 32-bit
// products.
VEIL_AVX2 void sub_mul_const_int(uint64_t* out, const uint64_t* x, const uint64_t* y, uint64_t w,
                                 uint64_t q, size_t n) {
  const __m256i Q = set1(q);
  const Const64 W = make_const(w), WS = make_const(shoup(w, q)), QC = make_const(q);
  for (size_t c = 0; c < n; c += 4) {
    __m256i v = load(x + c);
    if (y) v = _mm256_sub_epi64(_mm256_add_epi64(v, Q), load(y + c));
    const __m256i r = _mm256_sub_epi64(mullo64(v, W), mullo64(mulhi64(v, WS), QC));
    store(out + c, sub_if_ge(r, Q));
  }
}

// q < 2^50: v = x - y in (-q, q) as a double, the quotient round(v w / q) from fl(w / q) (off by
// less than 1/4 + 1/2), and the remainder v w - qe q in (-q, q) exactly as
// (fl(v w) - qe q) + err(v w).
VEIL_AVX2 void sub_mul_const_fp(uint64_t* out, const uint64_t* x, const uint64_t* y, uint64_t w,
                                uint64_t q, size_t n) {
  const __m256d Q = _mm256_set1_pd(static_cast<double>(q));
  const __m256d W = _mm256_set1_pd(static_cast<double>(w));
  const __m256d WQ = _mm256_set1_pd(static_cast<double>(w) / static_cast<double>(q));
  // (v + bits(1.5 2^52)) as a double is 1.5 2^52 + v for |v| < 2^51.
  const __m256d magic = _mm256_set1_pd(0x1.8p52);
  const __m256i magic_bits = set1(double_bits(0x1.8p52));
  for (size_t c = 0; c < n; c += 4) {
    __m256i v = load(x + c);
    if (y) v = _mm256_sub_epi64(v, load(y + c));
    const __m256d vd = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_add_epi64(v, magic_bits)), magic);
    const __m256d p = _mm256_mul_pd(vd, W);
    const __m256d e = _mm256_fmsub_pd(vd, W, p);
    const __m256d qe = _mm256_sub_pd(_mm256_fmadd_pd(vd, WQ, magic), magic);
    __m256d r = _mm256_add_pd(_mm256_fnmadd_pd(qe, Q, p), e);
    r = _mm256_add_pd(r, _mm256_and_pd(_mm256_cmp_pd(r, _mm256_setzero_pd(), _CMP_LT_OQ), Q));
    store(out + c, _mm256_xor_si256(_mm256_castpd_si256(_mm256_add_pd(r, _mm256_set1_pd(0x1p52))),
                                    set1(double_bits(0x1p52))));
  }
}

}  // namespace

size_t sub_mul_const(uint64_t* out, const uint64_t* x, const uint64_t* y, uint64_t w,
                     const Modulus& m, size_t n) {
  const size_t body = n & ~size_t{3};
  if (fp_friendly(m.value)) {
    sub_mul_const_fp(out, x, y, w, m.value, body);
  } else {
    sub_mul_const_int(out, x, y, w, m.value, body);
  }
  return body;
}

VEIL_AVX2 size_t add_mod(uint64_t* out, const uint64_t* x, const uint64_t* y, const uint32_t* perm,
                         uint64_t q, size_t n) {
  const __m256i Q = set1(q);
  const size_t body = n & ~size_t{3};
  for (size_t c = 0; c < body; c += 4) {
    const __m256i X = perm ? gather4(x, perm + c) : load(x + c);
    store(out + c, sub_if_ge(_mm256_add_epi64(X, load(y + c)), Q));
  }
  return body;
}

namespace {

// How lift reduces a residue modulo s to [0, t).
enum class LiftMode {
  kCopy,    // s < t: already reduced
  kDouble,  // s <= 2^52: x - round(x / t) t, exact in doubles, then the sign fixed
  kBarrett  // any s: Barrett as reduce64 (the quotient estimate is at most one below)
};

template <LiftMode Mode>
VEIL_AVX2 void lift_impl(uint64_t* out, const uint64_t* x, uint64_t s, bool centered,
                         const Modulus& t, size_t n) {
  const __m256i T = set1(t.value);
  const Const64 ratio = make_const(t.ratio64), TC = make_const(t.value);
  const __m256d TD = _mm256_set1_pd(static_cast<double>(t.value));
  const __m256d tinv = _mm256_set1_pd(1.0 / static_cast<double>(t.value));
  const __m256d big = _mm256_set1_pd(0x1p52);
  const __m256i big_bits = set1(double_bits(0x1p52));
  const __m256i half = set1(s >> 1);
  // Adding t - (s mod t) subtracts s modulo t.
  const __m256i shift = set1(t.value - reduce64(s, t));
  for (size_t c = 0; c < n; c += 4) {
    const __m256i v = load(x + c);
    __m256i r = v;
    if constexpr (Mode == LiftMode::kDouble) {
      const __m256d vd = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(v, big_bits)), big);
      const __m256d qe =
          _mm256_round_pd(_mm256_mul_pd(vd, tinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      __m256d rd = _mm256_fnmadd_pd(qe, TD, vd);
      rd = _mm256_add_pd(rd, _mm256_and_pd(_mm256_cmp_pd(rd, _mm256_setzero_pd(), _CMP_LT_OQ), TD));
      r = _mm256_xor_si256(_mm256_castpd_si256(_mm256_add_pd(rd, big)), big_bits);
    } else if constexpr (Mode == LiftMode::kBarrett) {
      r = sub_if_ge(_mm256_sub_epi64(v, mullo64(mulhi64(v, ratio), TC)), T);
    }
    if (centered) {
      const __m256i neg = _mm256_cmpgt_epi64(v, half);  // v < 2^61: signed is unsigned
      r = _mm256_blendv_epi8(r, sub_if_ge(_mm256_add_epi64(r, shift), T), neg);
    }
    store(out + c, r);
  }
}

}  // namespace

size_t lift(uint64_t* out, const uint64_t* x, uint64_t s, bool centered, const Modulus& t,
            size_t n) {
  const size_t body = n & ~size_t{3};
  if (s < t.value) {
    lift_impl<LiftMode::kCopy>(out, x, s, centered, t, body);
  } else if (s <= (uint64_t{1} << 52)) {
    lift_impl<LiftMode::kDouble>(out, x, s, centered, t, body);
  } else {
    lift_impl<LiftMode::kBarrett>(out, x, s, centered, t, body);
  }
  return body;
}

}  // namespace veil::he::avx2

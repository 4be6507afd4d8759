// AVX-512 kernels, compiled with target attributes (the library baseline is x86-64-v2) and only
// called after run-time detection (kernels.cpp). Every kernel ends in [0, q), so the results are
// bit-identical to the scalar code.
//
// Modular products use Shoup's method with lazy reduction (Harvey, J. Symb. Comp. 2014). With
// IFMA52 (q < 2^50) the quotient estimate is the high half of a 52x52-bit product against
// floor(w 2^52 / q), as in Intel HEXL (Boemer et al., WAHC 2021); otherwise the high 64 bits of
// a 64x64-bit product are assembled from four 32x32-bit products.
#include "kernels_avx512.hpp"

// GCC 12 reports its own _mm512_undefined_* helpers as uninitialised (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#define VEIL_AVX512 __attribute__((target("avx512f,avx512dq,avx512ifma,avx512vl")))
#define VEIL_AVX512_INLINE VEIL_AVX512 inline __attribute__((always_inline))

namespace veil::he::avx512 {

namespace {

constexpr uint64_t kMask52 = (uint64_t{1} << 52) - 1;

alignas(64) constexpr uint64_t kIdxT4W[8] = {0, 0, 0, 0, 1, 1, 1, 1};
alignas(64) constexpr uint64_t kIdxT2X[8] = {0, 1, 4, 5, 8, 9, 12, 13};
alignas(64) constexpr uint64_t kIdxT2Y[8] = {2, 3, 6, 7, 10, 11, 14, 15};
alignas(64) constexpr uint64_t kIdxT2Lo[8] = {0, 1, 8, 9, 2, 3, 10, 11};
alignas(64) constexpr uint64_t kIdxT2Hi[8] = {4, 5, 12, 13, 6, 7, 14, 15};
alignas(64) constexpr uint64_t kIdxT2W[8] = {0, 0, 1, 1, 2, 2, 3, 3};
alignas(64) constexpr uint64_t kIdxT1X[8] = {0, 2, 4, 6, 8, 10, 12, 14};
alignas(64) constexpr uint64_t kIdxT1Y[8] = {1, 3, 5, 7, 9, 11, 13, 15};
alignas(64) constexpr uint64_t kIdxT1Lo[8] = {0, 8, 1, 9, 2, 10, 3, 11};
alignas(64) constexpr uint64_t kIdxT1Hi[8] = {4, 12, 5, 13, 6, 14, 7, 15};

VEIL_AVX512_INLINE __m512i load_idx(const uint64_t* p) { return _mm512_load_si512(p); }

// min(x, x - b) subtracts b exactly when x >= b (otherwise x - b wraps above x).
VEIL_AVX512_INLINE __m512i sub_if_ge(__m512i x, __m512i b) {
  return _mm512_min_epu64(x, _mm512_sub_epi64(x, b));
}

// High 64 bits of the 128-bit products a * b.
VEIL_AVX512_INLINE __m512i mulhi64(__m512i a, __m512i b) {
  const __m512i lo32 = _mm512_set1_epi64(0xffffffff);
  const __m512i ah = _mm512_srli_epi64(a, 32);
  const __m512i bh = _mm512_srli_epi64(b, 32);
  const __m512i ll = _mm512_mul_epu32(a, b);
  const __m512i lh = _mm512_mul_epu32(a, bh);
  const __m512i hl = _mm512_mul_epu32(ah, b);
  const __m512i hh = _mm512_mul_epu32(ah, bh);
  __m512i mid = _mm512_add_epi64(_mm512_srli_epi64(ll, 32), _mm512_and_si512(lh, lo32));
  mid = _mm512_add_epi64(mid, _mm512_and_si512(hl, lo32));
  __m512i hi = _mm512_add_epi64(hh, _mm512_srli_epi64(lh, 32));
  hi = _mm512_add_epi64(hi, _mm512_srli_epi64(hl, 32));
  return _mm512_add_epi64(hi, _mm512_srli_epi64(mid, 32));
}

// Constants of one modulus for the lazy Shoup product.
struct Mod {
  __m512i q, two_q, neg_q52;
};

VEIL_AVX512_INLINE Mod make_mod(uint64_t q) {
  return {_mm512_set1_epi64(static_cast<int64_t>(q)),
          _mm512_set1_epi64(static_cast<int64_t>(2 * q)),
          _mm512_set1_epi64(static_cast<int64_t>(((uint64_t{1} << 52) - q) & kMask52))};
}

// y * w mod q in [0, 2q); ws = floor(w 2^52 / q) with y < 2^52 (IFMA), or floor(w 2^64 / q).
template <bool Ifma>
VEIL_AVX512_INLINE __m512i mul_shoup_lazy(__m512i y, __m512i w, __m512i ws, const Mod& m) {
  if constexpr (Ifma) {
    const __m512i zero = _mm512_setzero_si512();
    const __m512i qt = _mm512_madd52hi_epu64(zero, y, ws);
    __m512i r = _mm512_madd52lo_epu64(zero, y, w);
    // lo52(qt (2^52 - q)) = -qt q mod 2^52; the true remainder is below 2q < 2^52.
    r = _mm512_madd52lo_epu64(r, qt, m.neg_q52);
    return _mm512_and_si512(r, _mm512_set1_epi64(static_cast<int64_t>(kMask52)));
  } else {
    const __m512i qt = mulhi64(y, ws);
    return _mm512_sub_epi64(_mm512_mullo_epi64(y, w), _mm512_mullo_epi64(qt, m.q));
  }
}

uint64_t shoup52(uint64_t w, uint64_t q) {
  return static_cast<uint64_t>((static_cast<u128>(w) << 52) / q);
}

// ---------------------------------------------------------------------------------------------
// NTT. Same schedule as the scalar code in ntt.cpp; the stages with t = 4, 2, 1 regroup two
// vectors so that one register holds the X halves and the other the Y halves of 8 butterflies.

template <bool Ifma>
VEIL_AVX512_INLINE void fwd_bfly(__m512i& x, __m512i& y, __m512i w, __m512i ws, const Mod& m) {
  const __m512i u = sub_if_ge(x, m.two_q);
  const __m512i v = mul_shoup_lazy<Ifma>(y, w, ws, m);
  x = _mm512_add_epi64(u, v);
  y = _mm512_add_epi64(_mm512_sub_epi64(u, v), m.two_q);
}

template <bool Ifma>
VEIL_AVX512_INLINE void inv_bfly(__m512i& x, __m512i& y, __m512i w, __m512i ws, const Mod& m) {
  const __m512i u = x, v = y;
  x = sub_if_ge(_mm512_add_epi64(u, v), m.two_q);
  y = mul_shoup_lazy<Ifma>(_mm512_add_epi64(_mm512_sub_epi64(u, v), m.two_q), w, ws, m);
}

// The stages below serve the forward transform (Cooley-Tukey butterflies, fwd_bfly) and the
// inverse (Gentleman-Sande, inv_bfly). They are always inlined with Forward a constant, so each
// transform compiles to straight-line code as if written out.
template <bool Ifma, bool Forward>
VEIL_AVX512_INLINE void bfly(__m512i& x, __m512i& y, __m512i w, __m512i ws, const Mod& m) {
  if constexpr (Forward)
    fwd_bfly<Ifma>(x, y, w, ws, m);
  else
    inv_bfly<Ifma>(x, y, w, ws, m);
}

// A stage with t >= 8: m groups of t pairs (x[j], y[j] = x[j + t]), one twiddle per group.
template <bool Ifma, bool Forward>
VEIL_AVX512_INLINE void stage_wide(uint64_t* a, size_t m, size_t t, const uint64_t* w,
                                   const uint64_t* ws, const Mod& md) {
  for (size_t i = 0; i < m; ++i) {
    const __m512i W = _mm512_set1_epi64(static_cast<int64_t>(w[m + i]));
    const __m512i WS = _mm512_set1_epi64(static_cast<int64_t>(ws[m + i]));
    uint64_t* x = a + 2 * i * t;
    uint64_t* y = x + t;
    for (size_t j = 0; j < t; j += 8) {
      __m512i X = _mm512_loadu_si512(x + j), Y = _mm512_loadu_si512(y + j);
      bfly<Ifma, Forward>(X, Y, W, WS, md);
      _mm512_storeu_si512(x + j, X);
      _mm512_storeu_si512(y + j, Y);
    }
  }
}

// t = 4: groups i, i + 1 in one pair of vectors.
template <bool Ifma, bool Forward>
VEIL_AVX512_INLINE void stage_t4(uint64_t* a, size_t m, const uint64_t* w, const uint64_t* ws,
                                 const Mod& md) {
  const __m512i iw = load_idx(kIdxT4W);
  for (size_t i = 0; i < m; i += 2) {
    uint64_t* p = a + 8 * i;
    const __m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 8);
    __m512i X = _mm512_shuffle_i64x2(v0, v1, 0x44), Y = _mm512_shuffle_i64x2(v0, v1, 0xEE);
    const __m512i W = _mm512_permutexvar_epi64(iw, _mm512_maskz_loadu_epi64(0x3, w + m + i));
    const __m512i WS = _mm512_permutexvar_epi64(iw, _mm512_maskz_loadu_epi64(0x3, ws + m + i));
    bfly<Ifma, Forward>(X, Y, W, WS, md);
    _mm512_storeu_si512(p, _mm512_shuffle_i64x2(X, Y, 0x44));
    _mm512_storeu_si512(p + 8, _mm512_shuffle_i64x2(X, Y, 0xEE));
  }
}

// t = 2: groups i .. i + 3.
template <bool Ifma, bool Forward>
VEIL_AVX512_INLINE void stage_t2(uint64_t* a, size_t m, const uint64_t* w, const uint64_t* ws,
                                 const Mod& md) {
  const __m512i ix = load_idx(kIdxT2X), iy = load_idx(kIdxT2Y), ilo = load_idx(kIdxT2Lo),
                ihi = load_idx(kIdxT2Hi), iw = load_idx(kIdxT2W);
  for (size_t i = 0; i < m; i += 4) {
    uint64_t* p = a + 4 * i;
    const __m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 8);
    __m512i X = _mm512_permutex2var_epi64(v0, ix, v1), Y = _mm512_permutex2var_epi64(v0, iy, v1);
    const __m512i W = _mm512_permutexvar_epi64(iw, _mm512_maskz_loadu_epi64(0xF, w + m + i));
    const __m512i WS = _mm512_permutexvar_epi64(iw, _mm512_maskz_loadu_epi64(0xF, ws + m + i));
    bfly<Ifma, Forward>(X, Y, W, WS, md);
    _mm512_storeu_si512(p, _mm512_permutex2var_epi64(X, ilo, Y));
    _mm512_storeu_si512(p + 8, _mm512_permutex2var_epi64(X, ihi, Y));
  }
}

// t = 1: groups i .. i + 7. The forward transform ends here, fused with the final reduction
// to [0, q).
template <bool Ifma, bool Forward>
VEIL_AVX512_INLINE void stage_t1(uint64_t* a, size_t m, const uint64_t* w, const uint64_t* ws,
                                 const Mod& md) {
  const __m512i ix = load_idx(kIdxT1X), iy = load_idx(kIdxT1Y), ilo = load_idx(kIdxT1Lo),
                ihi = load_idx(kIdxT1Hi);
  for (size_t i = 0; i < m; i += 8) {
    uint64_t* p = a + 2 * i;
    const __m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 8);
    __m512i X = _mm512_permutex2var_epi64(v0, ix, v1), Y = _mm512_permutex2var_epi64(v0, iy, v1);
    const __m512i W = _mm512_loadu_si512(w + m + i);
    const __m512i WS = _mm512_loadu_si512(ws + m + i);
    bfly<Ifma, Forward>(X, Y, W, WS, md);
    if constexpr (Forward) {
      X = sub_if_ge(sub_if_ge(X, md.two_q), md.q);
      Y = sub_if_ge(sub_if_ge(Y, md.two_q), md.q);
    }
    _mm512_storeu_si512(p, _mm512_permutex2var_epi64(X, ilo, Y));
    _mm512_storeu_si512(p + 8, _mm512_permutex2var_epi64(X, ihi, Y));
  }
}

template <bool Ifma>
VEIL_AVX512 void forward_impl(uint64_t* a, size_t n, uint64_t q, const uint64_t* w,
                              const uint64_t* ws) {
  const Mod md = make_mod(q);
  size_t m = 1, t = n >> 1;
  for (; t >= 8; m <<= 1, t >>= 1) stage_wide<Ifma, true>(a, m, t, w, ws, md);
  stage_t4<Ifma, true>(a, m, w, ws, md);
  m <<= 1;
  stage_t2<Ifma, true>(a, m, w, ws, md);
  m <<= 1;
  stage_t1<Ifma, true>(a, m, w, ws, md);
}

template <bool Ifma>
VEIL_AVX512 void inverse_impl(uint64_t* a, size_t n, uint64_t q, const uint64_t* w,
                              const uint64_t* ws, uint64_t inv_n, uint64_t inv_n_s, uint64_t last_w,
                              uint64_t last_w_s) {
  const Mod md = make_mod(q);
  size_t m = n >> 1;
  stage_t1<Ifma, false>(a, m, w, ws, md);
  m >>= 1;
  stage_t2<Ifma, false>(a, m, w, ws, md);
  m >>= 1;
  stage_t4<Ifma, false>(a, m, w, ws, md);
  m >>= 1;
  size_t t = 8;
  for (; m > 1; m >>= 1, t <<= 1) stage_wide<Ifma, false>(a, m, t, w, ws, md);
  // Last stage fused with the scaling by 1/n.
  const __m512i IN = _mm512_set1_epi64(static_cast<int64_t>(inv_n));
  const __m512i INS = _mm512_set1_epi64(static_cast<int64_t>(inv_n_s));
  const __m512i LW = _mm512_set1_epi64(static_cast<int64_t>(last_w));
  const __m512i LWS = _mm512_set1_epi64(static_cast<int64_t>(last_w_s));
  uint64_t* x = a;
  uint64_t* y = a + t;
  for (size_t j = 0; j < t; j += 8) {
    const __m512i U = _mm512_loadu_si512(x + j), V = _mm512_loadu_si512(y + j);
    const __m512i X = mul_shoup_lazy<Ifma>(_mm512_add_epi64(U, V), IN, INS, md);
    const __m512i Y =
        mul_shoup_lazy<Ifma>(_mm512_add_epi64(_mm512_sub_epi64(U, V), md.two_q), LW, LWS, md);
    _mm512_storeu_si512(x + j, sub_if_ge(X, md.q));
    _mm512_storeu_si512(y + j, sub_if_ge(Y, md.q));
  }
}

// ---------------------------------------------------------------------------------------------
// Pointwise kernels.

template <bool Ifma>
VEIL_AVX512 void sub_mul_const_impl(uint64_t* out, const uint64_t* x, const uint64_t* y, uint64_t w,
                                    uint64_t ws, uint64_t q, size_t n) {
  const Mod md = make_mod(q);
  const __m512i W = _mm512_set1_epi64(static_cast<int64_t>(w));
  const __m512i WS = _mm512_set1_epi64(static_cast<int64_t>(ws));
  for (size_t c = 0; c < n; c += 8) {
    __m512i v = _mm512_loadu_si512(x + c);
    if (y) v = _mm512_sub_epi64(_mm512_add_epi64(v, md.q), _mm512_loadu_si512(y + c));
    _mm512_storeu_si512(out + c, sub_if_ge(mul_shoup_lazy<Ifma>(v, W, WS, md), md.q));
  }
}

// Barrett reduction of 64-bit words (quotient estimate at most one below, as reduce64).
VEIL_AVX512_INLINE __m512i barrett64(__m512i x, __m512i ratio, __m512i t) {
  const __m512i qe = mulhi64(x, ratio);
  return sub_if_ge(_mm512_sub_epi64(x, _mm512_mullo_epi64(qe, t)), t);
}

// 2^52 mod q and 1 with their 52-bit Shoup companions, for reduce_wide52.
struct Wide52 {
  Mod md;
  __m512i c52, c52s, one, one_s;
};

VEIL_AVX512_INLINE Wide52 make_wide52(uint64_t q) {
  const uint64_t c52 = static_cast<uint64_t>((u128{1} << 52) % q);
  return {make_mod(q), _mm512_set1_epi64(static_cast<int64_t>(c52)),
          _mm512_set1_epi64(static_cast<int64_t>(shoup52(c52, q))), _mm512_set1_epi64(1),
          _mm512_set1_epi64(static_cast<int64_t>(shoup52(1, q)))};
}

// (lo, hi) -> (hi 2^52 + lo) mod q for hi + lo / 2^52 < 2^52.
VEIL_AVX512_INLINE __m512i reduce_wide52(__m512i lo, __m512i hi, const Wide52& k) {
  const __m512i mask = _mm512_set1_epi64(static_cast<int64_t>(kMask52));
  const __m512i a = _mm512_add_epi64(hi, _mm512_srli_epi64(lo, 52));
  const __m512i b = _mm512_and_si512(lo, mask);
  __m512i r = _mm512_add_epi64(mul_shoup_lazy<true>(a, k.c52, k.c52s, k.md),
                               mul_shoup_lazy<true>(b, k.one, k.one_s, k.md));
  return sub_if_ge(sub_if_ge(r, k.md.two_q), k.md.q);
}

}  // namespace

void ntt_forward(uint64_t* a, size_t n, uint64_t q, const uint64_t* w, const uint64_t* ws,
                 bool ifma) {
  if (ifma) {
    forward_impl<true>(a, n, q, w, ws);
  } else {
    forward_impl<false>(a, n, q, w, ws);
  }
}

void ntt_inverse(uint64_t* a, size_t n, uint64_t q, const uint64_t* w, const uint64_t* ws,
                 uint64_t inv_n, uint64_t inv_n_s, uint64_t last_w, uint64_t last_w_s, bool ifma) {
  if (ifma) {
    inverse_impl<true>(a, n, q, w, ws, inv_n, inv_n_s, last_w, last_w_s);
  } else {
    inverse_impl<false>(a, n, q, w, ws, inv_n, inv_n_s, last_w, last_w_s);
  }
}

void sub_mul_const(uint64_t* out, const uint64_t* x, const uint64_t* y, uint64_t w,
                   const Modulus& m, size_t n) {
  const uint64_t q = m.value;
  const size_t body = n & ~size_t{7};
  if (q < (uint64_t{1} << 50)) {
    sub_mul_const_impl<true>(out, x, y, w, shoup52(w, q), q, body);
  } else {
    sub_mul_const_impl<false>(out, x, y, w, shoup(w, q), q, body);
  }
  const uint64_t ws = shoup(w, q);
  for (size_t c = body; c < n; ++c) out[c] = mul_shoup(y ? sub_mod(x[c], y[c], q) : x[c], w, ws, q);
}

VEIL_AVX512 void add_mod(uint64_t* out, const uint64_t* x, const uint64_t* y, const uint32_t* perm,
                         uint64_t q, size_t n) {
  const __m512i Q = _mm512_set1_epi64(static_cast<int64_t>(q));
  const size_t body = n & ~size_t{7};
  for (size_t c = 0; c < body; c += 8) {
    const __m512i X =
        perm ? _mm512_i32gather_epi64(
                   _mm256_loadu_si256(reinterpret_cast<const __m256i*>(perm + c)), x, 8)
             : _mm512_loadu_si512(x + c);
    _mm512_storeu_si512(out + c, sub_if_ge(_mm512_add_epi64(X, _mm512_loadu_si512(y + c)), Q));
  }
  for (size_t c = body; c < n; ++c) out[c] = veil::he::add_mod(x[perm ? perm[c] : c], y[c], q);
}

VEIL_AVX512 void lift(uint64_t* out, const uint64_t* x, uint64_t s, bool centered, const Modulus& t,
                      size_t n) {
  const __m512i T = _mm512_set1_epi64(static_cast<int64_t>(t.value));
  const __m512i ratio = _mm512_set1_epi64(static_cast<int64_t>(t.ratio64));
  const __m512i half = _mm512_set1_epi64(static_cast<int64_t>(s >> 1));
  const uint64_t s_mod_t = reduce64(s, t);
  // Adding t - (s mod t) subtracts s modulo t.
  const __m512i shift = _mm512_set1_epi64(static_cast<int64_t>(t.value - s_mod_t));
  const bool small = s < t.value;  // residues modulo s are already reduced modulo t
  // Inputs below 2^52 and t < 2^50: x mod t as the IFMA Shoup product x * 1.
  const bool ifma = s <= (uint64_t{1} << 52) && t.value < (uint64_t{1} << 50);
  const Mod md = make_mod(t.value);
  const __m512i one = _mm512_set1_epi64(1);
  const __m512i one_s = _mm512_set1_epi64(static_cast<int64_t>(shoup52(1, t.value)));
  const size_t body = n & ~size_t{7};
  for (size_t c = 0; c < body; c += 8) {
    const __m512i v = _mm512_loadu_si512(x + c);
    __m512i r = small  ? v
                : ifma ? sub_if_ge(mul_shoup_lazy<true>(v, one, one_s, md), T)
                       : barrett64(v, ratio, T);
    if (centered) {
      const __mmask8 neg = _mm512_cmpgt_epu64_mask(v, half);
      r = _mm512_mask_mov_epi64(r, neg, sub_if_ge(_mm512_add_epi64(r, shift), T));
    }
    _mm512_storeu_si512(out + c, r);
  }
  for (size_t c = body; c < n; ++c) {
    const uint64_t r = reduce64(x[c], t);
    out[c] = centered && x[c] > (s >> 1) ? sub_mod(r, s_mod_t, t.value) : r;
  }
}

VEIL_AVX512 void dot2_ifma(uint64_t* out0, uint64_t* out1, const uint64_t* const* d,
                           const uint64_t* const* k0, const uint64_t* const* k1, size_t terms,
                           const uint32_t* perm, uint64_t q, size_t n) {
  const Wide52 k52 = make_wide52(q);
  const __m512i zero = _mm512_setzero_si512();
  // Products are below 2^100: 8 of them keep the high sums below 2^51 and the low sums (which
  // start from the previous partial result) below 2^56, within reduce_wide52's range.
  constexpr size_t kChunk = 8;
  const bool two = out1 != nullptr;
  for (size_t c = 0; c < n; c += 8) {
    __m256i pidx = perm ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(perm + c))
                        : _mm256_setzero_si256();
    __m512i lo0 = zero, lo1 = zero;
    for (size_t j0 = 0; j0 < terms; j0 += kChunk) {
      __m512i hi0 = zero, hi1 = zero;
      const size_t j1 = j0 + kChunk < terms ? j0 + kChunk : terms;
      for (size_t j = j0; j < j1; ++j) {
        const __m512i D =
            perm ? _mm512_i32gather_epi64(pidx, d[j], 8) : _mm512_loadu_si512(d[j] + c);
        const __m512i A = _mm512_loadu_si512(k0[j] + c);
        lo0 = _mm512_madd52lo_epu64(lo0, D, A);
        hi0 = _mm512_madd52hi_epu64(hi0, D, A);
        if (two) {
          const __m512i B = _mm512_loadu_si512(k1[j] + c);
          lo1 = _mm512_madd52lo_epu64(lo1, D, B);
          hi1 = _mm512_madd52hi_epu64(hi1, D, B);
        }
      }
      lo0 = reduce_wide52(lo0, hi0, k52);
      if (two) lo1 = reduce_wide52(lo1, hi1, k52);
    }
    _mm512_storeu_si512(out0 + c, lo0);
    if (two) _mm512_storeu_si512(out1 + c, lo1);
  }
}

namespace {

// One block of V vectors (8 V coefficients) of every row. IFMA splits each product (< 2^100) in
// a low 52-bit and a high (< 2^48) part; 15 of them keep the high sum below 2^52 and the low sum
// (which starts from the previous partial result, < q) below 2^56, within reduce_wide52's range.
template <size_t V>
VEIL_AVX512_INLINE void sparse_block(uint64_t* const* out, const uint64_t* const* x,
                                     const uint32_t* start, const uint32_t* col, const uint64_t* w,
                                     size_t rows, size_t c0, const Wide52& k52) {
  constexpr size_t kChunk = 15;
  const __m512i zero = _mm512_setzero_si512();
  for (size_t r = 0; r < rows; ++r) {
    __m512i lo[V], hi[V];
    for (size_t v = 0; v < V; ++v) lo[v] = hi[v] = zero;
    size_t since = 0;
    for (uint32_t t = start[r]; t < start[r + 1]; ++t) {
      const __m512i W = _mm512_set1_epi64(static_cast<int64_t>(w[t]));
      const uint64_t* xp = x[col[t]] + c0;
      for (size_t v = 0; v < V; ++v) {
        const __m512i X = _mm512_loadu_si512(xp + 8 * v);
        lo[v] = _mm512_madd52lo_epu64(lo[v], X, W);
        hi[v] = _mm512_madd52hi_epu64(hi[v], X, W);
      }
      if (++since == kChunk) {
        for (size_t v = 0; v < V; ++v) {
          lo[v] = reduce_wide52(lo[v], hi[v], k52);
          hi[v] = zero;
        }
        since = 0;
      }
    }
    for (size_t v = 0; v < V; ++v)
      _mm512_storeu_si512(out[r] + c0 + 8 * v, reduce_wide52(lo[v], hi[v], k52));
  }
}

}  // namespace

VEIL_AVX512 void sparse_matmul_ifma(uint64_t* const* out, const uint64_t* const* x,
                                    const uint32_t* start, const uint32_t* col, const uint64_t* w,
                                    size_t rows, uint64_t q, size_t n) {
  const Wide52 k52 = make_wide52(q);
  // 64 coefficients per block: 16 accumulators, and a block of every input row (512 bytes
  // each; 432 kB for he-cnn's 845 inputs) stays in L2 while the rows reuse it.
  constexpr size_t kWide = 8;
  size_t c0 = 0;
  for (; c0 + 8 * kWide <= n; c0 += 8 * kWide)
    sparse_block<kWide>(out, x, start, col, w, rows, c0, k52);
  for (; c0 < n; c0 += 8) sparse_block<1>(out, x, start, col, w, rows, c0, k52);
}

}  // namespace veil::he::avx512

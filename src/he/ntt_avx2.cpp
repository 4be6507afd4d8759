// AVX2 NTT kernels, compiled with target attributes (the library baseline is x86-64-v2) and only
// called after run-time detection (ntt.cpp). Both arithmetics end in [0, q), so the output is
// bit-identical to the scalar transform. The butterflies are the scalar ones, grouped in passes
// over the data (see "Passes" below); the narrow stages regroup two vectors so that one holds
// the X halves and the other the Y halves of four butterflies, as the AVX-512 kernels do.
#include "ntt_avx2.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <utility>

#define VEIL_AVX2 __attribute__((target("avx2,fma")))
#define VEIL_AVX2_INLINE VEIL_AVX2 inline __attribute__((always_inline))

namespace veil::he::avx2 {

namespace {

VEIL_AVX2_INLINE __m256i set1(uint64_t x) { return _mm256_set1_epi64x(static_cast<long long>(x)); }

// The high 32 bits of every lane moved to the low half, the only one _mm256_mul_epu32 reads (a
// shuffle runs on another port than the shifts and multiplications).
VEIL_AVX2_INLINE __m256i hi32(__m256i x) { return _mm256_shuffle_epi32(x, 0xF5); }

// [p[0], p[0], p[1], p[1]]: one twiddle per pair of lanes (t = 2).
VEIL_AVX2_INLINE __m256i load_pairs(const uint64_t* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_permute4x64_epi64(_mm256_castsi128_si256(v), 0x50);
}
VEIL_AVX2_INLINE __m256d load_pairs(const double* p) {
  return _mm256_permute4x64_pd(_mm256_castpd128_pd256(_mm_loadu_pd(p)), 0x50);
}

// ---------------------------------------------------------------------------------------------
// Integer arithmetic (any q < 2^61): Harvey's butterflies with Shoup products, every value as in
// the scalar code. Values stay below 4q < 2^63, so signed comparisons order them.

struct IntTw {
  __m256i w, wh, ws, wsh;  // twiddle and Shoup companion, and their high halves
};

struct IntK {
  using V = __m256i;
  using Tw = IntTw;
  __m256i q, qh, q_m1, two_q, two_q_m1;
  const uint64_t* w;
  const uint64_t* ws;
};

VEIL_AVX2_INLINE IntK make_int(uint64_t q, const uint64_t* w, const uint64_t* ws) {
  return {set1(q), set1(q >> 32), set1(q - 1), set1(2 * q), set1(2 * q - 1), w, ws};
}

VEIL_AVX2_INLINE IntTw int_tw(__m256i w, __m256i ws) { return {w, hi32(w), ws, hi32(ws)}; }
VEIL_AVX2_INLINE IntTw tw_bcast(const IntK& k, size_t i) {
  return int_tw(set1(k.w[i]), set1(k.ws[i]));
}
VEIL_AVX2_INLINE IntTw tw_pairs(const IntK& k, size_t i) {
  return int_tw(load_pairs(k.w + i), load_pairs(k.ws + i));
}
VEIL_AVX2_INLINE IntTw tw_vec(const IntK& k, size_t i) {
  return int_tw(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.w + i)),
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.ws + i)));
}

// x - b if x >= b, for x < 2^63.
VEIL_AVX2_INLINE __m256i sub_if_ge(__m256i x, __m256i b, __m256i b_m1) {
  return _mm256_sub_epi64(x, _mm256_and_si256(_mm256_cmpgt_epi64(x, b_m1), b));
}

// y w mod q in [0, 2q) as the scalar mul_shoup_lazy: y w - floor(y ws / 2^64) q mod 2^64, the
// quotient exact (all four 32x32-bit partial products), the products modulo 2^64 from the low
// product and the cross products shifted by 32.
VEIL_AVX2_INLINE __m256i mul_shoup_lazy(__m256i y, const IntTw& t, const IntK& k) {
  const __m256i yh = hi32(y);
  const __m256i ll = _mm256_mul_epu32(y, t.ws);
  const __m256i lh = _mm256_mul_epu32(y, t.wsh);
  const __m256i hl = _mm256_mul_epu32(yh, t.ws);
  const __m256i hh = _mm256_mul_epu32(yh, t.wsh);
  // hl + (ll >> 32) and lh + its low half cannot carry out of 64 bits.
  const __m256i mid = _mm256_add_epi64(hl, _mm256_srli_epi64(ll, 32));
  const __m256i mid2 = _mm256_add_epi64(lh, _mm256_blend_epi32(mid, _mm256_setzero_si256(), 0xAA));
  const __m256i qt = _mm256_add_epi64(_mm256_add_epi64(hh, _mm256_srli_epi64(mid, 32)),
                                      _mm256_srli_epi64(mid2, 32));
  const __m256i lo = _mm256_sub_epi64(_mm256_mul_epu32(y, t.w), _mm256_mul_epu32(qt, k.q));
  const __m256i cross = _mm256_sub_epi64(
      _mm256_add_epi64(_mm256_mul_epu32(y, t.wh), _mm256_mul_epu32(yh, t.w)),
      _mm256_add_epi64(_mm256_mul_epu32(qt, k.qh), _mm256_mul_epu32(hi32(qt), k.q)));
  return _mm256_add_epi64(lo, _mm256_slli_epi64(cross, 32));
}

VEIL_AVX2_INLINE __m256i load(const IntK&, const uint64_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
VEIL_AVX2_INLINE void store(const IntK&, uint64_t* p, __m256i x) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), x);
}
VEIL_AVX2_INLINE __m256i from_u64(const IntK&, __m256i x) { return x; }

// Forward (Cooley-Tukey): X in [0, 4q) folded to [0, 2q), T = Y w in [0, 2q); outputs < 4q.
template <bool Fold>
VEIL_AVX2_INLINE void fwd_bfly(const IntK& k, __m256i& x, __m256i& y, const IntTw& t) {
  const __m256i u = sub_if_ge(x, k.two_q, k.two_q_m1);
  const __m256i v = mul_shoup_lazy(y, t, k);
  x = _mm256_add_epi64(u, v);
  y = _mm256_add_epi64(_mm256_sub_epi64(u, v), k.two_q);
}

// Inverse (Gentleman-Sande), values in [0, 2q).
template <bool Fold>
VEIL_AVX2_INLINE void inv_bfly(const IntK& k, __m256i& x, __m256i& y, const IntTw& t) {
  const __m256i u = x, v = y;
  x = sub_if_ge(_mm256_add_epi64(u, v), k.two_q, k.two_q_m1);
  y = mul_shoup_lazy(_mm256_add_epi64(_mm256_sub_epi64(u, v), k.two_q), t, k);
}

// [0, 4q) -> [0, q).
VEIL_AVX2_INLINE __m256i canonical(const IntK& k, __m256i x) {
  return sub_if_ge(sub_if_ge(x, k.two_q, k.two_q_m1), k.q, k.q_m1);
}

// The last inverse stage fused with the scaling by 1/n.
VEIL_AVX2_INLINE void inv_last(const IntK& k, __m256i u, __m256i v, const IntTw& in,
                               const IntTw& lw, __m256i& x, __m256i& y) {
  x = sub_if_ge(mul_shoup_lazy(_mm256_add_epi64(u, v), in, k), k.q, k.q_m1);
  y = sub_if_ge(mul_shoup_lazy(_mm256_add_epi64(_mm256_sub_epi64(u, v), k.two_q), lw, k), k.q,
                k.q_m1);
}

// ---------------------------------------------------------------------------------------------
// Double-precision arithmetic (q < 2^50). Between stages a value x is a signed integer held
// exactly in a double, |x| <= b q with a bound b the fold plans below track.
//
// mulmod(y) for |y| <= 2^51: h + l = y w exactly (FMA), c = round(y * wq) with wq = w / q
// rounded, so c is within 1/2 + |y| 2^-53 <= 3/4 of y w / q and r = y w - c q satisfies
// |r| <= 3q/4; h - c q and r are integers below 2^53, so both are computed exactly.
// fold(x) = x - round(x / q) q, |fold(x)| <= q / 2 for |x| <= 2^51 q.

constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52: x + kRound - kRound = round(x)
constexpr double kTwo52 = 4503599627370496.0;
constexpr uint64_t kTwo52Bits = 0x4330000000000000;  // the bits of 2^52

struct FpTw {
  __m256d w, wq;
};

struct FpK {
  using V = __m256d;
  using Tw = FpTw;
  __m256d q, qinv, round;
  const double* w;
  const double* wq;
};

VEIL_AVX2_INLINE FpK make_fp(uint64_t q, const double* w, const double* wq) {
  const double qd = static_cast<double>(q);
  return {_mm256_set1_pd(qd), _mm256_set1_pd(1.0 / qd), _mm256_set1_pd(kRound), w, wq};
}

VEIL_AVX2_INLINE FpTw fp_tw(uint64_t w, uint64_t q) {
  const double wd = static_cast<double>(w);
  return {_mm256_set1_pd(wd), _mm256_set1_pd(wd / static_cast<double>(q))};
}
VEIL_AVX2_INLINE FpTw tw_bcast(const FpK& k, size_t i) {
  return {_mm256_broadcast_sd(k.w + i), _mm256_broadcast_sd(k.wq + i)};
}
VEIL_AVX2_INLINE FpTw tw_pairs(const FpK& k, size_t i) {
  return {load_pairs(k.w + i), load_pairs(k.wq + i)};
}
VEIL_AVX2_INLINE FpTw tw_vec(const FpK& k, size_t i) {
  return {_mm256_loadu_pd(k.w + i), _mm256_loadu_pd(k.wq + i)};
}

VEIL_AVX2_INLINE __m256d mulmod(__m256d y, const FpTw& t, const FpK& k) {
  const __m256d h = _mm256_mul_pd(y, t.w);
  const __m256d l = _mm256_fmsub_pd(y, t.w, h);
  const __m256d c = _mm256_sub_pd(_mm256_fmadd_pd(y, t.wq, k.round), k.round);
  return _mm256_add_pd(_mm256_fnmadd_pd(c, k.q, h), l);
}

VEIL_AVX2_INLINE __m256d fold(__m256d x, const FpK& k) {
  const __m256d c = _mm256_sub_pd(_mm256_fmadd_pd(x, k.qinv, k.round), k.round);
  return _mm256_fnmadd_pd(c, k.q, x);
}

// (-q, q) -> [0, q) as words.
VEIL_AVX2_INLINE __m256i to_u64(const FpK& k, __m256d x) {
  const __m256d neg = _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_LT_OQ);
  x = _mm256_add_pd(x, _mm256_and_pd(neg, k.q));
  // x + 2^52 has x in its mantissa bits.
  return _mm256_xor_si256(_mm256_castpd_si256(_mm256_add_pd(x, _mm256_set1_pd(kTwo52))),
                          set1(kTwo52Bits));
}

VEIL_AVX2_INLINE __m256d from_u64(const FpK&, __m256i x) {
  return _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(x, set1(kTwo52Bits))),
                       _mm256_set1_pd(kTwo52));
}

// Between stages the array holds the doubles' bits.
VEIL_AVX2_INLINE __m256d load(const FpK&, const uint64_t* p) {
  return _mm256_loadu_pd(reinterpret_cast<const double*>(p));
}
VEIL_AVX2_INLINE void store(const FpK&, uint64_t* p, __m256d x) {
  _mm256_storeu_pd(reinterpret_cast<double*>(p), x);
}

template <bool Fold>
VEIL_AVX2_INLINE void fwd_bfly(const FpK& k, __m256d& x, __m256d& y, const FpTw& t) {
  const __m256d u = Fold ? fold(x, k) : x;
  const __m256d v = mulmod(y, t, k);
  x = _mm256_add_pd(u, v);
  y = _mm256_sub_pd(u, v);
}

template <bool Fold>
VEIL_AVX2_INLINE void inv_bfly(const FpK& k, __m256d& x, __m256d& y, const FpTw& t) {
  const __m256d u = x, v = y;
  const __m256d s = _mm256_add_pd(u, v);
  x = Fold ? fold(s, k) : s;
  y = mulmod(_mm256_sub_pd(u, v), t, k);
}

VEIL_AVX2_INLINE __m256i canonical(const FpK& k, __m256d x) { return to_u64(k, fold(x, k)); }

VEIL_AVX2_INLINE void inv_last(const FpK& k, __m256d u, __m256d v, const FpTw& in, const FpTw& lw,
                               __m256i& x, __m256i& y) {
  x = to_u64(k, mulmod(_mm256_add_pd(u, v), in, k));
  y = to_u64(k, mulmod(_mm256_sub_pd(u, v), lw, k));
}

// Which stages fold their values back (bit s for stage s), so that every input of mulmod stays
// within 2^51 in magnitude. The bounds are in units of q: |fold(x)| <= 0.5 and |mulmod| <= 0.75
// (0.51 and 0.76 here). Forward: X + T grows by 0.75 per stage unless X is folded first.
uint64_t fold_plan_forward(uint64_t q, int stages) {
  const double lim = std::ldexp(1.0, 51) / static_cast<double>(q);
  double b = 1;
  uint64_t plan = 0;
  for (int s = 0; s < stages; ++s) {
    if (b + 0.76 > lim) {
      plan |= uint64_t{1} << s;
      b = 0.51;
    }
    b += 0.76;
  }
  return plan;
}

// Inverse: X + Y doubles per stage unless folded; the difference X - Y (twice the bound) is
// what mulmod sees.
uint64_t fold_plan_inverse(uint64_t q, int stages) {
  const double lim = std::ldexp(1.0, 51) / static_cast<double>(q);
  double b = 1;
  uint64_t plan = 0;
  for (int s = 0; s < stages; ++s) {
    double next = std::max(2 * b, 0.76);
    if (2 * next > lim) {
      plan |= uint64_t{1} << s;
      next = 0.76;
    }
    b = next;
  }
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Passes, generic in the arithmetic K (IntK or FpK). To save loads and stores, the wide stages
// (t >= 4) run two at a time (radix 4) and the three narrowest (t = 4, 2, 1) run in registers on
// blocks of 8 coefficients. Folds: bit b says whether the pass's b-th stage folds (FpK only).

template <class K, bool Forward, bool Fold>
VEIL_AVX2_INLINE void bfly(const K& k, typename K::V& x, typename K::V& y,
                           const typename K::Tw& t) {
  if constexpr (Forward)
    fwd_bfly<Fold>(k, x, y, t);
  else
    inv_bfly<Fold>(k, x, y, t);
}

constexpr bool bit(int folds, int b) { return (folds >> b) & 1; }

// In: the caller's words (first pass) rather than the arithmetic's representation.
template <class K, bool In>
VEIL_AVX2_INLINE typename K::V load_in(const K& k, const uint64_t* p) {
  if constexpr (In)
    return from_u64(k, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  else
    return load(k, p);
}

VEIL_AVX2_INLINE __m256i lanes_lo(__m256i a, __m256i b) {
  return _mm256_permute2x128_si256(a, b, 0x20);
}
VEIL_AVX2_INLINE __m256i lanes_hi(__m256i a, __m256i b) {
  return _mm256_permute2x128_si256(a, b, 0x31);
}
VEIL_AVX2_INLINE __m256d lanes_lo(__m256d a, __m256d b) {
  return _mm256_permute2f128_pd(a, b, 0x20);
}
VEIL_AVX2_INLINE __m256d lanes_hi(__m256d a, __m256d b) {
  return _mm256_permute2f128_pd(a, b, 0x31);
}
VEIL_AVX2_INLINE __m256i unpack_lo(__m256i a, __m256i b) { return _mm256_unpacklo_epi64(a, b); }
VEIL_AVX2_INLINE __m256i unpack_hi(__m256i a, __m256i b) { return _mm256_unpackhi_epi64(a, b); }
VEIL_AVX2_INLINE __m256d unpack_lo(__m256d a, __m256d b) { return _mm256_unpacklo_pd(a, b); }
VEIL_AVX2_INLINE __m256d unpack_hi(__m256d a, __m256d b) { return _mm256_unpackhi_pd(a, b); }

// One stage with t >= 4: m groups of t pairs (x[j], y[j] = x[j + t]), one twiddle per group.
template <class K, bool Forward, int Folds, bool In>
VEIL_AVX2 void stage_wide(const K& k, uint64_t* a, size_t m, size_t t) {
  for (size_t i = 0; i < m; ++i) {
    const typename K::Tw tw = tw_bcast(k, m + i);
    uint64_t* x = a + 2 * i * t;
    uint64_t* y = x + t;
    for (size_t j = 0; j < t; j += 4) {
      typename K::V X = load_in<K, In>(k, x + j), Y = load_in<K, In>(k, y + j);
      bfly<K, Forward, bit(Folds, 0)>(k, X, Y, tw);
      store(k, x + j, X);
      store(k, y + j, Y);
    }
  }
}

// Forward stages (m, t) and (2m, t / 2), t >= 8.
template <class K, int Folds, bool In>
VEIL_AVX2 void pass4_forward(const K& k, uint64_t* a, size_t m, size_t t) {
  const size_t h = t / 2;
  for (size_t i = 0; i < m; ++i) {
    const typename K::Tw w0 = tw_bcast(k, m + i), w1 = tw_bcast(k, 2 * (m + i)),
                         w2 = tw_bcast(k, 2 * (m + i) + 1);
    uint64_t* p = a + 2 * i * t;
    for (size_t j = 0; j < h; j += 4) {
      typename K::V A0 = load_in<K, In>(k, p + j), A1 = load_in<K, In>(k, p + h + j),
                    A2 = load_in<K, In>(k, p + t + j), A3 = load_in<K, In>(k, p + t + h + j);
      bfly<K, true, bit(Folds, 0)>(k, A0, A2, w0);
      bfly<K, true, bit(Folds, 0)>(k, A1, A3, w0);
      bfly<K, true, bit(Folds, 1)>(k, A0, A1, w1);
      bfly<K, true, bit(Folds, 1)>(k, A2, A3, w2);
      store(k, p + j, A0);
      store(k, p + h + j, A1);
      store(k, p + t + j, A2);
      store(k, p + t + h + j, A3);
    }
  }
}

// Inverse stages (m, t) and (m / 2, 2t), m >= 4 and t >= 4.
template <class K, int Folds>
VEIL_AVX2 void pass4_inverse(const K& k, uint64_t* a, size_t m, size_t t) {
  for (size_t i = 0; i < m / 2; ++i) {
    const typename K::Tw w0 = tw_bcast(k, m + 2 * i), w1 = tw_bcast(k, m + 2 * i + 1),
                         w2 = tw_bcast(k, m / 2 + i);
    uint64_t* p = a + 4 * i * t;
    for (size_t j = 0; j < t; j += 4) {
      typename K::V A0 = load(k, p + j), A1 = load(k, p + t + j), A2 = load(k, p + 2 * t + j),
                    A3 = load(k, p + 3 * t + j);
      bfly<K, false, bit(Folds, 0)>(k, A0, A1, w0);
      bfly<K, false, bit(Folds, 0)>(k, A2, A3, w1);
      bfly<K, false, bit(Folds, 1)>(k, A0, A2, w2);
      bfly<K, false, bit(Folds, 1)>(k, A1, A3, w2);
      store(k, p + j, A0);
      store(k, p + t + j, A1);
      store(k, p + 2 * t + j, A2);
      store(k, p + 3 * t + j, A3);
    }
  }
}

// Forward stages t = 4, 2, 1 (m = n / 8 groups at t = 4) on blocks [e0 .. e7], ending in
// canonical words. t = 4 pairs the two vectors as loaded, t = 2 pairs X = [e0 e1 e4 e5] with
// Y = [e2 e3 e6 e7], t = 1 pairs X = [e0 e2 e4 e6] with Y = [e1 e3 e5 e7].
template <class K, int Folds, bool In>
VEIL_AVX2 void tail_forward(const K& k, uint64_t* a, size_t m) {
  for (size_t i = 0; i < m; ++i) {
    uint64_t* p = a + 8 * i;
    typename K::V X = load_in<K, In>(k, p), Y = load_in<K, In>(k, p + 4);
    bfly<K, true, bit(Folds, 0)>(k, X, Y, tw_bcast(k, m + i));
    typename K::V X2 = lanes_lo(X, Y), Y2 = lanes_hi(X, Y);
    bfly<K, true, bit(Folds, 1)>(k, X2, Y2, tw_pairs(k, 2 * (m + i)));
    typename K::V X1 = unpack_lo(X2, Y2), Y1 = unpack_hi(X2, Y2);
    bfly<K, true, bit(Folds, 2)>(k, X1, Y1, tw_vec(k, 4 * (m + i)));
    const __m256i x = canonical(k, X1), y = canonical(k, Y1);
    const __m256i lo = unpack_lo(x, y), hi = unpack_hi(x, y);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), lanes_lo(lo, hi));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 4), lanes_hi(lo, hi));
  }
}

// Inverse stages t = 1, 2 and, if Full, 4 (the first pass, reading the caller's words): the
// forward tail's shuffles in reverse.
template <class K, int Folds, bool Full>
VEIL_AVX2 void tail_inverse(const K& k, uint64_t* a, size_t n) {
  const size_t m = n / 8;
  for (size_t i = 0; i < m; ++i) {
    uint64_t* p = a + 8 * i;
    const typename K::V v0 = load_in<K, true>(k, p), v1 = load_in<K, true>(k, p + 4);
    const typename K::V L0 = lanes_lo(v0, v1), L1 = lanes_hi(v0, v1);
    typename K::V X1 = unpack_lo(L0, L1), Y1 = unpack_hi(L0, L1);
    bfly<K, false, bit(Folds, 0)>(k, X1, Y1, tw_vec(k, 4 * (m + i)));
    typename K::V X2 = unpack_lo(X1, Y1), Y2 = unpack_hi(X1, Y1);
    bfly<K, false, bit(Folds, 1)>(k, X2, Y2, tw_pairs(k, 2 * (m + i)));
    typename K::V X = lanes_lo(X2, Y2), Y = lanes_hi(X2, Y2);
    if constexpr (Full) bfly<K, false, bit(Folds, 2)>(k, X, Y, tw_bcast(k, m + i));
    store(k, p, X);
    store(k, p + 4, Y);
  }
}

// Runs f.template operator()<Folds>() with Folds = bits s .. s + Bits of plan.
template <int Bits, class F>
VEIL_AVX2_INLINE void with_folds(uint64_t plan, int s, F&& f) {
  const int v = static_cast<int>((plan >> s) & ((1u << Bits) - 1));
  [&]<int... I>(std::integer_sequence<int, I...>) {
    ((v == I ? (f.template operator()<I>(), 0) : 0), ...);
  }
  (std::make_integer_sequence<int, 1 << Bits>{});
}

template <class K>
VEIL_AVX2 void forward_impl(const K& k, uint64_t* a, size_t n, int logn, uint64_t plan) {
  int s = 0;
  size_t m = 1, t = n >> 1;
  bool first = true;
  if ((logn - 3) % 2 == 1) {
    with_folds<1>(plan, s, [&]<int F>() { stage_wide<K, true, F, true>(k, a, m, t); });
    s += 1, m <<= 1, t >>= 1, first = false;
  }
  for (; t >= 8; s += 2, m <<= 2, t >>= 2, first = false) {
    if (first)
      with_folds<2>(plan, s, [&]<int F>() { pass4_forward<K, F, true>(k, a, m, t); });
    else
      with_folds<2>(plan, s, [&]<int F>() { pass4_forward<K, F, false>(k, a, m, t); });
  }
  if (first)
    with_folds<3>(plan, s, [&]<int F>() { tail_forward<K, F, true>(k, a, m); });
  else
    with_folds<3>(plan, s, [&]<int F>() { tail_forward<K, F, false>(k, a, m); });
}

template <class K>
VEIL_AVX2 void inverse_impl(const K& k, uint64_t* a, size_t n, int logn, uint64_t plan,
                            const typename K::Tw& in, const typename K::Tw& lw) {
  int s;
  if (n >= 16) {
    with_folds<3>(plan, 0, [&]<int F>() { tail_inverse<K, F, true>(k, a, n); });
    s = 3;
  } else {
    with_folds<2>(plan, 0, [&]<int F>() { tail_inverse<K, F, false>(k, a, n); });
    s = 2;
  }
  size_t m = n >> (s + 1), t = size_t{1} << s;
  for (; m >= 4; s += 2, m >>= 2, t <<= 2)
    with_folds<2>(plan, s, [&]<int F>() { pass4_inverse<K, F>(k, a, m, t); });
  if (m == 2) {
    with_folds<1>(plan, s, [&]<int F>() { stage_wide<K, false, F, false>(k, a, m, t); });
    t <<= 1;
  }
  // The last stage (m = 1) fused with the scaling by 1/n.
  uint64_t* x = a;
  uint64_t* y = a + t;
  for (size_t j = 0; j < t; j += 4) {
    __m256i X, Y;
    inv_last(k, load(k, x + j), load(k, y + j), in, lw, X, Y);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(x + j), X);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + j), Y);
  }
}

int log2_of(size_t n) {
  int l = 0;
  while ((size_t{1} << l) < n) ++l;
  return l;
}

}  // namespace

void fp_twiddles(const uint64_t* w, size_t n, uint64_t q, std::vector<double>& wd,
                 std::vector<double>& wqd) {
  wd.resize(n);
  wqd.resize(n);
  const double qd = static_cast<double>(q);
  for (size_t i = 0; i < n; ++i) {
    wd[i] = static_cast<double>(w[i]);
    wqd[i] = static_cast<double>(w[i]) / qd;
  }
}

VEIL_AVX2 void ntt_forward_fp(uint64_t* a, size_t n, uint64_t q, const double* wd,
                              const double* wqd) {
  const int logn = log2_of(n);
  forward_impl(make_fp(q, wd, wqd), a, n, logn, fold_plan_forward(q, logn));
}

VEIL_AVX2 void ntt_inverse_fp(uint64_t* a, size_t n, uint64_t q, const double* wd,
                              const double* wqd, uint64_t inv_n, uint64_t last_w) {
  const int logn = log2_of(n);
  inverse_impl(make_fp(q, wd, wqd), a, n, logn, fold_plan_inverse(q, logn - 1), fp_tw(inv_n, q),
               fp_tw(last_w, q));
}

VEIL_AVX2 void ntt_forward_int(uint64_t* a, size_t n, uint64_t q, const uint64_t* w,
                               const uint64_t* ws) {
  forward_impl(make_int(q, w, ws), a, n, log2_of(n), 0);
}

VEIL_AVX2 void ntt_inverse_int(uint64_t* a, size_t n, uint64_t q, const uint64_t* w,
                               const uint64_t* ws, uint64_t inv_n, uint64_t inv_n_s,
                               uint64_t last_w, uint64_t last_w_s) {
  inverse_impl(make_int(q, w, ws), a, n, log2_of(n), 0, int_tw(set1(inv_n), set1(inv_n_s)),
               int_tw(set1(last_w), set1(last_w_s)));
}

}  // namespace veil::he::avx2

// AVX2 NTT kernels, compiled with target attributes (the library baseline is x86-64-v2) and only
// called after run-time detection (ntt.cpp). Both arithmetics end in [0, q), so the output is
// bit-identical to the scalar transform. The stage schedule is the scalar one; the stages with
// t = 2 and t = 1 regroup two vectors so that one holds the X halves and the other the Y halves
// of four butterflies (as the AVX-512 kernels do for t = 4, 2, 1).
#include "ntt_avx2.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

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
// [w[i], w[i + 2], w[i + 1], w[i + 3]], the lane order of the t = 1 stage.
VEIL_AVX2_INLINE IntTw tw_quad(const IntK& k, size_t i) {
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.w + i));
  const __m256i ws = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.ws + i));
  return int_tw(_mm256_permute4x64_epi64(w, 0xD8), _mm256_permute4x64_epi64(ws, 0xD8));
}

// x - b if x >= b, for x < 2^63.
VEIL_AVX2_INLINE __m256i sub_if_ge(__m256i x, __m256i b, __m256i b_m1) {
  return _mm256_sub_epi64(x, _mm256_and_si256(_mm256_cmpgt_epi64(x, b_m1), b));
}

// y w mod q in [0, 2q) as the scalar mul_shoup_lazy: y w - floor(y ws / 2^64) q mod 2^64, the
// quotient exact (all four 32x32-bit partial products), the products modulo 2^64 from the low
// product and the cross products shifted by 32.
VEIL_AVX2_INLINE __m256i mul_shoup_lazy(__m256i y, const IntTw& t, const IntK& k) {
  const __m256i lo32 = set1(0xffffffff);
  const __m256i yh = hi32(y);
  const __m256i ll = _mm256_mul_epu32(y, t.ws);
  const __m256i lh = _mm256_mul_epu32(y, t.wsh);
  const __m256i hl = _mm256_mul_epu32(yh, t.ws);
  const __m256i hh = _mm256_mul_epu32(yh, t.wsh);
  __m256i mid = _mm256_add_epi64(_mm256_srli_epi64(ll, 32), _mm256_and_si256(lh, lo32));
  mid = _mm256_add_epi64(mid, _mm256_and_si256(hl, lo32));
  __m256i qt = _mm256_add_epi64(hh, _mm256_srli_epi64(lh, 32));
  qt = _mm256_add_epi64(qt, _mm256_srli_epi64(hl, 32));
  qt = _mm256_add_epi64(qt, _mm256_srli_epi64(mid, 32));
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
// exactly in a double, |x| <= b q with a bound b the drivers track (FoldPlan below).
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
// fp_twiddles stored the last stage's twiddles in its lane order already.
VEIL_AVX2_INLINE FpTw tw_quad(const FpK& k, size_t i) {
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
// Stages, generic in the arithmetic K (IntK or FpK).

template <class K, bool Forward, bool Fold>
VEIL_AVX2_INLINE void bfly(const K& k, typename K::V& x, typename K::V& y,
                           const typename K::Tw& t) {
  if constexpr (Forward)
    fwd_bfly<Fold>(k, x, y, t);
  else
    inv_bfly<Fold>(k, x, y, t);
}

template <class K>
VEIL_AVX2_INLINE typename K::V load_maybe_in(const K& k, const uint64_t* p, bool in) {
  return in ? from_u64(k, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))) : load(k, p);
}

// t >= 4: m groups of t pairs (x[j], y[j] = x[j + t]), one twiddle per group. In: the input
// is the caller's words (first stage).
template <class K, bool Forward, bool Fold, bool In>
VEIL_AVX2 void stage_wide(const K& k, uint64_t* a, size_t m, size_t t) {
  for (size_t i = 0; i < m; ++i) {
    const typename K::Tw tw = tw_bcast(k, m + i);
    uint64_t* x = a + 2 * i * t;
    uint64_t* y = x + t;
    for (size_t j = 0; j < t; j += 4) {
      typename K::V X = load_maybe_in(k, x + j, In), Y = load_maybe_in(k, y + j, In);
      bfly<K, Forward, Fold>(k, X, Y, tw);
      store(k, x + j, X);
      store(k, y + j, Y);
    }
  }
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

// t = 2: groups i, i + 1 in one pair of vectors ([x x y y] per group -> X, Y by 128-bit lanes).
template <class K, bool Forward, bool Fold>
VEIL_AVX2 void stage_t2(const K& k, uint64_t* a, size_t m) {
  for (size_t i = 0; i < m; i += 2) {
    uint64_t* p = a + 4 * i;
    const typename K::V v0 = load(k, p), v1 = load(k, p + 4);
    typename K::V X = lanes_lo(v0, v1), Y = lanes_hi(v0, v1);
    bfly<K, Forward, Fold>(k, X, Y, tw_pairs(k, m + i));
    store(k, p, lanes_lo(X, Y));
    store(k, p + 4, lanes_hi(X, Y));
  }
}

// t = 1, forward: groups i .. i + 3 as X = [x0 x2 x1 x3], Y = [y0 y2 y1 y3]; the transform ends
// here, with the reduction to canonical words.
template <class K, bool Fold>
VEIL_AVX2 void stage_t1_forward(const K& k, uint64_t* a, size_t m) {
  for (size_t i = 0; i < m; i += 4) {
    uint64_t* p = a + 2 * i;
    const typename K::V v0 = load(k, p), v1 = load(k, p + 4);
    typename K::V X = unpack_lo(v0, v1), Y = unpack_hi(v0, v1);
    bfly<K, true, Fold>(k, X, Y, tw_quad(k, m + i));
    const __m256i x = canonical(k, X), y = canonical(k, Y);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm256_unpacklo_epi64(x, y));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 4), _mm256_unpackhi_epi64(x, y));
  }
}

// t = 1, inverse: the first stage, reading the caller's words.
template <class K, bool Fold>
VEIL_AVX2 void stage_t1_inverse(const K& k, uint64_t* a, size_t m) {
  for (size_t i = 0; i < m; i += 4) {
    uint64_t* p = a + 2 * i;
    const typename K::V v0 = load_maybe_in(k, p, true), v1 = load_maybe_in(k, p + 4, true);
    typename K::V X = unpack_lo(v0, v1), Y = unpack_hi(v0, v1);
    bfly<K, false, Fold>(k, X, Y, tw_quad(k, m + i));
    store(k, p, unpack_lo(X, Y));
    store(k, p + 4, unpack_hi(X, Y));
  }
}

// Runs f.template operator()<Fold>() with Fold = bit s of plan.
template <class F>
VEIL_AVX2_INLINE void with_fold(uint64_t plan, int s, F&& f) {
  if ((plan >> s) & 1)
    f.template operator()<true>();
  else
    f.template operator()<false>();
}

template <class K>
VEIL_AVX2 void forward_impl(const K& k, uint64_t* a, size_t n, uint64_t plan) {
  int s = 0;
  size_t m = 1, t = n >> 1;
  with_fold(plan, s, [&]<bool F>() { stage_wide<K, true, F, true>(k, a, m, t); });
  for (++s, m <<= 1, t >>= 1; t >= 4; ++s, m <<= 1, t >>= 1)
    with_fold(plan, s, [&]<bool F>() { stage_wide<K, true, F, false>(k, a, m, t); });
  with_fold(plan, s, [&]<bool F>() { stage_t2<K, true, F>(k, a, m); });
  ++s, m <<= 1;
  with_fold(plan, s, [&]<bool F>() { stage_t1_forward<K, F>(k, a, m); });
}

template <class K>
VEIL_AVX2 void inverse_impl(const K& k, uint64_t* a, size_t n, uint64_t plan,
                            const typename K::Tw& in, const typename K::Tw& lw) {
  int s = 0;
  size_t m = n >> 1;
  with_fold(plan, s, [&]<bool F>() { stage_t1_inverse<K, F>(k, a, m); });
  ++s, m >>= 1;
  with_fold(plan, s, [&]<bool F>() { stage_t2<K, false, F>(k, a, m); });
  ++s, m >>= 1;
  size_t t = 4;
  for (; m > 1; ++s, m >>= 1, t <<= 1)
    with_fold(plan, s, [&]<bool F>() { stage_wide<K, false, F, false>(k, a, m, t); });
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
    // The t = 1 stage (entries n/2 .. n) takes four twiddles as [0, 2, 1, 3].
    size_t src = i;
    if (i >= n / 2 && n >= kMinN) {
      const size_t r = i & 3;
      src = (i & ~size_t{3}) | (r == 1 ? 2 : r == 2 ? 1 : r);
    }
    wd[i] = static_cast<double>(w[src]);
    wqd[i] = static_cast<double>(w[src]) / qd;
  }
}

VEIL_AVX2 void ntt_forward_fp(uint64_t* a, size_t n, uint64_t q, const double* wd,
                              const double* wqd) {
  forward_impl(make_fp(q, wd, wqd), a, n, fold_plan_forward(q, log2_of(n)));
}

VEIL_AVX2 void ntt_inverse_fp(uint64_t* a, size_t n, uint64_t q, const double* wd,
                              const double* wqd, uint64_t inv_n, uint64_t last_w) {
  inverse_impl(make_fp(q, wd, wqd), a, n, fold_plan_inverse(q, log2_of(n) - 1), fp_tw(inv_n, q),
               fp_tw(last_w, q));
}

VEIL_AVX2 void ntt_forward_int(uint64_t* a, size_t n, uint64_t q, const uint64_t* w,
                               const uint64_t* ws) {
  forward_impl(make_int(q, w, ws), a, n, 0);
}

VEIL_AVX2 void ntt_inverse_int(uint64_t* a, size_t n, uint64_t q, const uint64_t* w,
                               const uint64_t* ws, uint64_t inv_n, uint64_t inv_n_s,
                               uint64_t last_w, uint64_t last_w_s) {
  inverse_impl(make_int(q, w, ws), a, n, 0, int_tw(set1(inv_n), set1(inv_n_s)),
               int_tw(set1(last_w), set1(last_w_s)));
}

}  // namespace veil::he::avx2

// AVX2 kernels of PrivateCompare (SecureNN, Wagh et al., PoPETs 2019, Algorithm 1): the same
// digits, shares and zero tests as the scalar code in private_compare.cpp, for CPUs without
// AVX-512. Compiled with target attributes and only called after run-time detection.
//
// Digits: one element per step, its m <= 63 digits in one or two registers of 32 bytes. Unlike
// the AVX-512 kernel (16-bit lanes, one reduction at the end) the sums are kept in bytes and
// reduced mod 67 after every addition (min(v, v - 67) for v < 134), which halves the registers;
// only the product with the multiplier widens to 16 bits. The running sum over the higher bits
// is a suffix scan: four in-lane byte shifts, then the 128-bit lanes' totals are carried down.
// The rotation goes through a small buffer holding the digits twice.
//
// Helper steps: the digits of all elements are one flat byte stream, so they run 32 digits per
// step whatever m is; the bits of r (bit shares) and the zero tests (any-zero) travel as flat
// bit streams, m bits per element.
#include "private_compare_avx2.hpp"

#include <immintrin.h>

#include <cstring>
#include <vector>

#include "veil/core/cpu.hpp"
#include "veil/mpc/kernels/z67.hpp"

namespace veil::mpc::detail {
namespace {

#define VEIL_AVX2 __attribute__((target("avx2,fma,bmi2")))
#define VEIL_AVX2_INLINE VEIL_AVX2 inline __attribute__((always_inline))

// x mod 67 for bytes below 2 * 67: x - 67 wraps above x when x < 67.
VEIL_AVX2_INLINE __m256i reduce8(__m256i x, __m256i p) {
  return _mm256_min_epu8(x, _mm256_sub_epi8(x, p));
}

// x mod 67 for 16-bit lanes below 2^13, as the AVX-512 kernel's mod67: 979 = ceil(2^16 / 67)
// overestimates the quotient by at most one there, and the min() folds the negative remainder.
VEIL_AVX2_INLINE __m256i mod67_16(__m256i x, __m256i magic, __m256i p) {
  const __m256i r = _mm256_sub_epi16(x, _mm256_mullo_epi16(_mm256_mulhi_epu16(x, magic), p));
  return _mm256_min_epu16(r, _mm256_add_epi16(r, p));
}

// The constants of the kernels below.
struct Consts {
  __m256i p8, zero, one8, even;
  __m256i bits_idx[2];  // pshufb: byte i of lane L <- byte 4 h + 2 L + i / 8 of a broadcast word
  __m256i bitsel;       // byte i: 1 << (i mod 8)
  __m256i magic16, p16;
};

VEIL_AVX2_INLINE Consts make_consts() {
  Consts c;
  c.p8 = _mm256_set1_epi8(kP);
  c.zero = _mm256_setzero_si256();
  c.one8 = _mm256_set1_epi8(1);
  c.even = _mm256_set1_epi16(0x00ff);
  for (int h = 0; h < 2; ++h) {
    const char b = static_cast<char>(4 * h);
    c.bits_idx[h] =
        _mm256_setr_epi8(b, b, b, b, b, b, b, b, b + 1, b + 1, b + 1, b + 1, b + 1, b + 1, b + 1,
                         b + 1, b + 2, b + 2, b + 2, b + 2, b + 2, b + 2, b + 2, b + 2, b + 3,
                         b + 3, b + 3, b + 3, b + 3, b + 3, b + 3, b + 3);
  }
  c.bitsel = _mm256_set1_epi64x(0x8040201008040201);
  c.magic16 = _mm256_set1_epi16(979);
  c.p16 = _mm256_set1_epi16(kP);
  return c;
}

// Byte i = 0xff iff bit 32 h + i of the 64-bit word broadcast in `word` is set.
VEIL_AVX2_INLINE __m256i expand_bits(const Consts& c, __m256i word, int h) {
  return _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(word, c.bits_idx[h]), c.bitsel),
                           c.bitsel);
}

// Suffix sums mod 67 within each 128-bit lane: byte i gets v[i] + ... + v[15] of its lane.
VEIL_AVX2_INLINE __m256i lane_suffix_sum(const Consts& c, __m256i v) {
  v = reduce8(_mm256_add_epi8(v, _mm256_srli_si256(v, 1)), c.p8);
  v = reduce8(_mm256_add_epi8(v, _mm256_srli_si256(v, 2)), c.p8);
  v = reduce8(_mm256_add_epi8(v, _mm256_srli_si256(v, 4)), c.p8);
  return reduce8(_mm256_add_epi8(v, _mm256_srli_si256(v, 8)), c.p8);
}

// Byte 0 of each 128-bit lane (its lane's total after lane_suffix_sum) in every byte of the
// lane below it, zero in the upper lane.
VEIL_AVX2_INLINE __m256i upper_lane_total(const Consts& c, __m256i s) {
  const __m256i t = _mm256_shuffle_epi8(s, c.zero);
  return _mm256_permute2x128_si256(t, t, 0x81);
}

// The digits of one element, rotated, at tmp + m - rot (kHalves * 32 bytes, the first m
// valid). x, s, u: its shares, multipliers and masks, readable for kHalves * 32 bytes; lanes
// >= m of x are masked off here. As element_scalar (private_compare.cpp), with
// acc = S - t for the inclusive suffix sums S of t_k = (q_k ? 67 + j - x_k : x_k).
template <int kHalves>
VEIL_AVX2_INLINE void element_avx2(const Consts& c, const __m256i* valid, int m, bool client,
                                   uint64_t q, unsigned beta, const uint8_t* xs, const uint8_t* sv,
                                   const uint8_t* uv, uint8_t* tmp) {
  const __m256i qword = _mm256_set1_epi64x(static_cast<int64_t>(q));
  const __m256i beta_mask = _mm256_set1_epi8(static_cast<char>(-static_cast<int>(beta)));
  const __m256i pj = _mm256_set1_epi8(static_cast<char>(kP + (client ? 0 : 1)));
  __m256i x[2], qm[2], t[2], s[2];
  for (int h = 0; h < kHalves; ++h) {
    x[h] = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + 32 * h)),
                            valid[h]);
    qm[h] = expand_bits(c, qword, h);
    t[h] = reduce8(_mm256_blendv_epi8(x[h], _mm256_sub_epi8(pj, x[h]), qm[h]), c.p8);
    s[h] = lane_suffix_sum(c, t[h]);
  }
  if (kHalves == 2) {
    s[1] = reduce8(_mm256_add_epi8(s[1], upper_lane_total(c, s[1])), c.p8);
    const __m256i t1 = _mm256_shuffle_epi8(s[1], c.zero);  // the upper half's total
    const __m256i all1 = _mm256_permute2x128_si256(t1, t1, 0x00);
    s[0] = reduce8(
        _mm256_add_epi8(s[0], reduce8(_mm256_add_epi8(upper_lane_total(c, s[0]), all1), c.p8)),
        c.p8);
  } else {
    s[0] = reduce8(_mm256_add_epi8(s[0], upper_lane_total(c, s[0])), c.p8);
  }
  __m256i d[2];
  for (int h = 0; h < kHalves; ++h) {
    __m256i acc = _mm256_sub_epi8(s[h], t[h]);
    acc = _mm256_min_epu8(acc, _mm256_add_epi8(acc, c.p8));
    // beta = 0: 67 - x + j (1 + q); beta = 1: x + j (1 - q). qm is -1 where q = 1.
    __m256i c0 = _mm256_sub_epi8(c.p8, x[h]), c1 = x[h];
    if (!client) {
      c0 = _mm256_sub_epi8(_mm256_add_epi8(c0, c.one8), qm[h]);
      c1 = _mm256_add_epi8(_mm256_add_epi8(c1, c.one8), qm[h]);
    }
    const __m256i cv = reduce8(_mm256_blendv_epi8(c0, c1, beta_mask), c.p8);
    const __m256i v = reduce8(_mm256_add_epi8(cv, acc), c.p8);
    // d = (s v + (client ? u : 67 - u)) mod 67 in 16-bit lanes, even and odd bytes apart.
    const __m256i svv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sv + 32 * h));
    __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(uv + 32 * h));
    if (!client) u = _mm256_sub_epi8(c.p8, u);
    const __m256i de =
        mod67_16(_mm256_add_epi16(_mm256_maddubs_epi16(v, _mm256_and_si256(svv, c.even)),
                                  _mm256_and_si256(u, c.even)),
                 c.magic16, c.p16);
    const __m256i dodd =
        mod67_16(_mm256_add_epi16(_mm256_maddubs_epi16(v, _mm256_andnot_si256(c.even, svv)),
                                  _mm256_srli_epi16(u, 8)),
                 c.magic16, c.p16);
    d[h] = _mm256_or_si256(de, _mm256_slli_epi16(dodd, 8));
  }
  // Twice, at 0 and then at m: the m bytes from m - rot are the rotated digits.
  for (int h = 0; h < kHalves; ++h)
    _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 32 * h), d[h]);
  for (int h = 0; h < kHalves; ++h)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tmp + m + 32 * h), d[h]);
}

template <int kHalves>
VEIL_AVX2 void digits_avx2(int m, bool client, size_t n, const uint64_t* r, const uint8_t* beta,
                           const uint8_t* xs, const uint8_t* sv, const uint8_t* uv,
                           const uint8_t* rot, uint8_t* out) {
  constexpr size_t kWidth = 32 * kHalves;
  Consts c = make_consts();
  // Opaque to GCC, which would otherwise turn the multiplies by 67 into shifts and adds.
  __asm__("" : "+x"(c.p16));
  const size_t mm = static_cast<size_t>(m), total = n * mm;
  const uint64_t mask_m = (uint64_t{1} << m) - 1;
  __m256i valid[2];
  for (int h = 0; h < 2; ++h) {
    alignas(32) uint8_t bytes[32];
    for (int i = 0; i < 32; ++i) bytes[i] = 32 * h + i < m ? 0xff : 0;
    valid[h] = _mm256_load_si256(reinterpret_cast<const __m256i*>(bytes));
  }
  // Two buffers, and each element's rotated copy made one element later: a load spanning the
  // two fresh stores of its digits cannot be forwarded from the store buffer and would wait
  // for them to reach the cache.
  alignas(32) uint8_t tmp[2][2 * 64];
  alignas(32) uint8_t pad[3][64] = {};
  const uint8_t* pending = nullptr;  // the previous element's rotated digits
  uint8_t* pending_out = nullptr;
  bool pending_inside = false;
  auto flush = [&]() VEIL_AVX2 {
    if (!pending) return;
    if (pending_inside) {
      for (int h = 0; h < kHalves; ++h)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(pending_out + 32 * h),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pending + 32 * h)));
    } else {
      std::memcpy(pending_out, pending, mm);
    }
    pending = nullptr;
  };
  for (size_t e = 0; e < n; ++e) {
    const size_t at = e * mm;
    if (beta[e] == 1 && r[e] == mask_m) {  // the planted zero: rare, and scalar
      flush();                             // its wide stores reach into this element
      private_compare_element_scalar(m, client, r[e], beta[e], xs + at, sv + at, uv + at, rot[e],
                                     out + at);
      continue;
    }
    const unsigned b = beta[e] != 0;
    const uint64_t q = (r[e] + b) & mask_m;
    // Loads and stores of kWidth bytes run into the next elements (stored before those are
    // computed); the last elements go through padded copies instead of past the buffers.
    const bool inside = at + kWidth <= total;
    const uint8_t *x = xs + at, *s = sv + at, *u = uv + at;
    if (!inside) {
      std::memcpy(pad[0], x, mm);
      std::memcpy(pad[1], s, mm);
      std::memcpy(pad[2], u, mm);
      x = pad[0];
      s = pad[1];
      u = pad[2];
    }
    uint8_t* t = tmp[e & 1];
    element_avx2<kHalves>(c, valid, m, client, q, b, x, s, u, t);
    flush();
    pending = t + mm - rot[e];
    pending_out = out + at;
    pending_inside = inside;
  }
  flush();
}

// Appends the m low bits of each r[e] to a bit stream, least significant first:
// bit e m + i of words = bit i of r[e]. words has room for n m / 64 + 1 words.
void pack_bits(int m, size_t n, const uint64_t* r, uint64_t* words) {
  const uint64_t mask_m = (uint64_t{1} << m) - 1;
  uint64_t cur = 0;
  int fill = 0;
  for (size_t e = 0; e < n; ++e) {
    const uint64_t v = r[e] & mask_m;
    cur |= v << fill;
    fill += m;
    if (fill >= 64) {
      *words++ = cur;
      fill -= 64;
      cur = v >> (m - fill);  // the bits that did not fit (none when fill = 0: v < 2^m)
    }
  }
  *words = cur;
}

}  // namespace

bool private_compare_avx2_usable() {
  const CpuFeatures& f = cpu_features();
  return f.avx2 && f.fma && f.bmi2;
}

VEIL_AVX2 void private_compare_digits_avx2(int m, bool client, size_t n, const uint64_t* r,
                                           const uint8_t* beta, const uint8_t* xs,
                                           const uint8_t* sv, const uint8_t* uv, const uint8_t* rot,
                                           uint8_t* out) {
  if (m > 32)
    digits_avx2<2>(m, client, n, r, beta, xs, sv, uv, rot, out);
  else
    digits_avx2<1>(m, client, n, r, beta, xs, sv, uv, rot, out);
}

// shares[p] = (bit p of the stream + 67 - shares[p]) mod 67, 32 digits per step.
VEIL_AVX2 void private_compare_bit_shares_avx2(int m, size_t n, const uint64_t* r,
                                               uint8_t* shares) {
  const Consts c = make_consts();
  const size_t total = n * static_cast<size_t>(m);
  std::vector<uint64_t> bits(total / 64 + 1);
  pack_bits(m, n, r, bits.data());
  size_t p = 0;
  for (; p + 32 <= total; p += 32) {
    const __m256i word = _mm256_set1_epi32(static_cast<int>(bits[p / 64] >> (p % 64)));
    const __m256i bit = expand_bits(c, word, 0);  // -1 where the bit is set
    __m256i* at = reinterpret_cast<__m256i*>(shares + p);
    const __m256i v = _mm256_sub_epi8(_mm256_sub_epi8(c.p8, bit), _mm256_loadu_si256(at));
    _mm256_storeu_si256(at, reduce8(v, c.p8));
  }
  for (; p < total; ++p)
    shares[p] = static_cast<uint8_t>(((bits[p / 64] >> (p % 64) & 1) + kP - shares[p]) % kP);
}

// Zero tests of all digit sums as a bit stream (32 per step), then m bits per element.
VEIL_AVX2 void private_compare_any_zero_avx2(int m, size_t n, const uint8_t* dc, const uint8_t* ds,
                                             uint8_t* any_zero) {
  const Consts c = make_consts();
  const size_t mm = static_cast<size_t>(m), total = n * mm;
  std::vector<uint64_t> zeros(total / 64 + 2);
  uint8_t* zero_bytes = reinterpret_cast<uint8_t*>(zeros.data());
  size_t p = 0;
  for (; p + 32 <= total; p += 32) {
    // Digits are < 67, so a sum is 0 mod 67 iff it is 0 or 67.
    const __m256i sum =
        _mm256_add_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(dc + p)),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ds + p)));
    const uint32_t z = static_cast<uint32_t>(_mm256_movemask_epi8(
        _mm256_or_si256(_mm256_cmpeq_epi8(sum, c.zero), _mm256_cmpeq_epi8(sum, c.p8))));
    std::memcpy(zero_bytes + p / 8, &z, 4);  // little-endian: bits p .. p + 31 of the stream
  }
  for (; p < total; ++p)
    if ((dc[p] + ds[p]) % kP == 0) zeros[p / 64] |= uint64_t{1} << (p % 64);
  const uint64_t mask_m = (uint64_t{1} << m) - 1;
  for (size_t e = 0, at = 0; e < n; ++e, at += mm) {
    const unsigned __int128 two =
        static_cast<unsigned __int128>(zeros[at / 64 + 1]) << 64 | zeros[at / 64];
    any_zero[e] = (static_cast<uint64_t>(two >> (at % 64)) & mask_m) != 0;
  }
}

#undef VEIL_AVX2_INLINE
#undef VEIL_AVX2

}  // namespace veil::mpc::detail

// AVX2 kernels for the Z_67 wire format and sampler (z67.cpp has the scalar and AVX-512
// kernels and the definitions). Same bytes, digits, errors and PRG consumption as the scalar
// code; compiled with target attributes and only called after run-time detection.
#include "z67_avx2.hpp"

#include <immintrin.h>

#include <algorithm>
#include <array>

#include "veil/core/cpu.hpp"
#include "veil/mpc/kernels/z67.hpp"

namespace veil::mpc::detail {
namespace {

#define VEIL_Z67_AVX2 __attribute__((target("avx2,fma,bmi2")))

constexpr uint64_t pow67(int g) {
  uint64_t v = 1;
  for (int i = 0; i < g; ++i) v *= kP;
  return v;
}
constexpr uint64_t kP4 = pow67(4), kP9 = pow67(9);

// Left-packing 8 bytes by an 8-bit keep mask: a pshufb index per mask (the kept byte positions
// in order; the rest are don't-care), for the low and (+8) the high half of a 16-byte register.
constexpr std::array<uint64_t, 256> compress_table(uint64_t offset) {
  std::array<uint64_t, 256> t{};
  for (unsigned mask = 0; mask < 256; ++mask) {
    uint64_t idx = 0;
    int at = 0;
    for (unsigned b = 0; b < 8; ++b)
      if (mask >> b & 1) idx |= (b + offset) << (8 * at++);
    t[mask] = idx;
  }
  return t;
}
alignas(64) constexpr auto kCompressLo = compress_table(0);
alignas(64) constexpr auto kCompressHi = compress_table(8);

// The exact constant divisions of the AVX-512 unpack kernel (Granlund & Montgomery, PLDI 1994;
// z67.cpp checks their ranges): x div 67 for x < 67^5 is (x ceil(2^38 / 67)) >> 38, x div 67^2
// for x < 67^4 is (x ceil(2^40 / 67^2)) >> 40, x div 67 for x < 67^2 is mulhi16(x,
// ceil(2^22 / 67)) >> 6.
constexpr uint64_t kDiv67Of5 = ((uint64_t{1} << 38) + kP - 1) / kP;
constexpr uint64_t kDiv4489Of4 = ((uint64_t{1} << 40) + kP * kP - 1) / (kP * kP);
constexpr uint64_t kDiv67Of2 = ((uint64_t{1} << 22) + kP - 1) / kP;

// c = 2^20 / 67^4 lowered by a relative 2^-40 and rounded down to a multiple of 2^-53, so that
// 2^52 c is a multiple of 1/2 and the FMA's addend 2^52 - 2^52 c + 1/2 (in [2^51, 2^52), spaced
// by 1/2) is exact. With t = v >> 20, x = t c <= v / 67^4 (equal only for v = 0), and
// x > (v - 2^20) c 2^-20 > v / 67^4 - 2^20 / 67^4 - 2^31 2^-40 > v / 67^4 - 0.06, so floor(x) is
// hi or hi - 1. The FMA rounds 2^52 + x + 1/2 once (the sum is in [2^52, 2^53), spaced by 1) to
// floor(x) + 1, except at a tie (x an integer, so x = hi) maybe to floor(x): hi or hi + 1.
constexpr double kUnpackScale = static_cast<double>(static_cast<uint64_t>(
                                    0x1p20 / static_cast<double>(kP4) * (1.0 - 0x1p-40) * 0x1p53)) *
                                0x1p-53;
constexpr double kUnpackOffset = 0x1p52 - 0x1p52 * kUnpackScale + 0.5;
static_assert(0x1p52 * kUnpackScale * 2 ==
                  static_cast<double>(static_cast<uint64_t>(0x1p52 * kUnpackScale * 2)) &&
              kUnpackOffset >= 0x1p51 && kUnpackOffset < 0x1p52);

}  // namespace

bool z67_avx2_usable() {
  const CpuFeatures& f = cpu_features();
  return f.avx2 && f.fma && f.bmi2;
}

// Each 128-bit lane takes one group's nine digits (two unaligned 16-byte loads per register);
// vpmaddubsw and vpmaddwd fold them into d0 + 67 d1 + 67^2 d2 + 67^3 d3, the same of d4..d7,
// and d8, and two vpmuludq finish v = lo + 67^4 (mid + 67^4 d8) as in the AVX-512 kernel.
VEIL_Z67_AVX2 void pack_z67_blocks_avx2(const uint8_t* d, size_t blocks, uint8_t* o) {
  // Byte pairs (1, 67) over d0..d7, then (1, 0) so that d8 stands alone and the next group's
  // first digit (byte 9) drops out.
  const __m256i by67 = _mm256_broadcastsi128_si256(
      _mm_setr_epi8(1, kP, 1, kP, 1, kP, 1, kP, 1, 0, 0, 0, 0, 0, 0, 0));
  const __m256i by4489 = _mm256_set1_epi32(kP * kP << 16 | 1);  // word pairs (1, 67^2)
  const __m256i p4 = _mm256_set1_epi64x(static_cast<int64_t>(kP4));
  const __m256i low32 = _mm256_set1_epi64x(0xffffffff);
  // Bytes 0..6 of both 64-bit lanes of a 128-bit lane, back to back.
  const __m256i bytes_idx = _mm256_broadcastsi128_si256(
      _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, -1, -1));
  auto group_values = [&](const uint8_t* g0, const uint8_t* g1) VEIL_Z67_AVX2 {
    const __m256i x = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(g1),
                                          reinterpret_cast<const __m128i*>(g0));
    // Dwords lo, mid, d8, 0 per lane.
    const __m256i halves = _mm256_madd_epi16(_mm256_maddubs_epi16(x, by67), by4489);
    const __m256i hi = _mm256_add_epi64(_mm256_srli_epi64(halves, 32),
                                        _mm256_mul_epu32(_mm256_srli_si256(halves, 8), p4));
    // The group's value in the low 64 bits of each lane.
    return _mm256_add_epi64(_mm256_and_si256(halves, low32), _mm256_mul_epu32(hi, p4));
  };
  for (size_t i = 0; i < blocks; ++i, d += kZ67Avx2BlockDigits, o += kZ67Avx2BlockBytes) {
    const __m256i v02 = group_values(d, d + 18), v13 = group_values(d + 9, d + 27);
    // Lanes [v0 v1], [v2 v3] -> 14 bytes each.
    const __m256i v = _mm256_shuffle_epi8(_mm256_unpacklo_epi64(v02, v13), bytes_idx);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm256_castsi256_si128(v));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 14), _mm256_extracti128_si256(v, 1));
  }
}

// Four groups per step, one per 64-bit lane. v = 67^4 hi + lo from one FMA: t = v >> 20
// (< 2^36) is 2^52 + t as a double by setting the exponent bits, and
// fma(2^52 + t, c, 2^52 - 2^52 c + 1/2) = 2^52 + round(t c + 1/2), with c just below
// 2^20 / 67^4 (kUnpackScale), puts an estimate of hi, hi or hi + 1, in the low 32 bits; one
// compare fixes it. Then the AVX-512 kernel's exact constant divisions: d4 and h = hi div 67,
// lo and h (four digits each) into 16-bit digit pairs, the pairs into bytes. Only the low 32
// bits of the estimate's lanes are used: vpmuludq reads nothing else, and d4 only its low byte.
VEIL_Z67_AVX2 bool unpack_z67_blocks_avx2(const uint8_t* p, size_t blocks, uint8_t* out) {
  const __m256i group_idx = _mm256_broadcastsi128_si256(
      _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, -1, 7, 8, 9, 10, 11, 12, 13, -1));
  const __m256i p9m1 = _mm256_set1_epi64x(static_cast<int64_t>(kP9 - 1));
  const __m256i p4 = _mm256_set1_epi64x(static_cast<int64_t>(kP4));
  const __m256i zero = _mm256_setzero_si256();
  const __m256i p1 = _mm256_set1_epi64x(kP);
  const __m256i m67 = _mm256_set1_epi64x(static_cast<int64_t>(kDiv67Of5));
  const __m256i m4489 = _mm256_set1_epi64x(static_cast<int64_t>(kDiv4489Of4));
  const __m256i exp52 = _mm256_set1_epi64x(0x4330000000000000);
  const __m256d scale = _mm256_set1_pd(kUnpackScale);
  const __m256d offset = _mm256_set1_pd(kUnpackOffset);
  const __m256i low16 = _mm256_set1_epi32(0xffff);
  // Words (x - 67^2 q, q) from words (x, 0) and (q, q), modulo 2^16 (exact: both are < 2^16).
  const __m256i pair_fold = _mm256_set1_epi32(static_cast<int32_t>(0xffff0000u | kP * kP));
  const __m256i m67w = _mm256_set1_epi16(static_cast<int16_t>(kDiv67Of2));
  __m256i byte_fold = _mm256_set1_epi16((1 << 8) - kP);
  // Opaque to GCC, which would otherwise turn the multiply by 189 into four shifts and adds.
  __asm__("" : "+x"(byte_fold));
  // Digits d0 d1 d2 d3 d4 d5 d6 d7 d8 from bytes [d0 d1 d2 d3 d5 d6 d7 d8 | d4 ...].
  const __m256i digits_idx = _mm256_broadcastsi128_si256(
      _mm_setr_epi8(0, 1, 2, 3, 8, 4, 5, 6, 7, -1, -1, -1, -1, -1, -1, -1));
  __m256i bad = _mm256_setzero_si256();
  for (size_t i = 0; i < blocks; ++i, p += kZ67Avx2BlockBytes, out += kZ67Avx2BlockDigits) {
    const __m256i v =
        _mm256_shuffle_epi8(_mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(p + 14),
                                                reinterpret_cast<const __m128i*>(p)),
                            group_idx);
    bad = _mm256_or_si256(bad, _mm256_cmpgt_epi64(v, p9m1));  // v < 2^56: signed compare
    const __m256d t = _mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(v, 20), exp52));
    __m256i hi = _mm256_castpd_si256(_mm256_fmadd_pd(t, scale, offset));
    __m256i lo = _mm256_sub_epi64(v, _mm256_mul_epu32(hi, p4));
    const __m256i under = _mm256_cmpgt_epi64(zero, lo);  // estimate one too large
    hi = _mm256_add_epi64(hi, under);
    lo = _mm256_add_epi64(lo, _mm256_and_si256(under, p4));
    const __m256i h = _mm256_srli_epi64(_mm256_mul_epu32(hi, m67), 38);
    const __m256i d4 = _mm256_sub_epi64(hi, _mm256_mul_epu32(h, p1));
    // Dwords [lo, h] and their quotients by 67^2 (bits 40.. of the products; the high one
    // shifted only by 8, into the upper dword) -> words d0 + 67 d1, d2 + 67 d3, d5 + 67 d6,
    // d7 + 67 d8.
    const __m256i x = _mm256_blend_epi32(lo, _mm256_slli_epi64(h, 32), 0xaa);
    const __m256i q = _mm256_blend_epi32(_mm256_srli_epi64(_mm256_mul_epu32(lo, m4489), 40),
                                         _mm256_srli_epi64(_mm256_mul_epu32(h, m4489), 8), 0xaa);
    const __m256i qq = _mm256_or_si256(q, _mm256_slli_epi32(q, 16));
    const __m256i pairs =
        _mm256_sub_epi16(_mm256_and_si256(x, low16), _mm256_mullo_epi16(qq, pair_fold));
    // Bytes (a, b) = a + 256 b from a word a + 67 b.
    const __m256i tens = _mm256_srli_epi16(_mm256_mulhi_epu16(pairs, m67w), 6);
    const __m256i z = _mm256_add_epi16(pairs, _mm256_mullo_epi16(tens, byte_fold));
    // Groups 0, 2 and 1, 3 with their d4 beside them, then nine digits each; four overlapping
    // 16-byte stores in order leave exactly the block's 36 digits.
    const __m256i g02 = _mm256_shuffle_epi8(_mm256_unpacklo_epi64(z, d4), digits_idx);
    const __m256i g13 = _mm256_shuffle_epi8(_mm256_unpackhi_epi64(z, d4), digits_idx);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm256_castsi256_si128(g02));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 9), _mm256_castsi256_si128(g13));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 18), _mm256_extracti128_si256(g02, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 27), _mm256_extracti128_si256(g13, 1));
  }
  return _mm256_testz_si256(bad, bad) != 0;
}

namespace {

// How reject_steps reduces an accepted byte b < limit mod bound: kMask for powers of two
// (b & (bound - 1)), 1..3 conditional subtractions of bound when limit <= 4 bound (min(v,
// v - bound): v - bound wraps above v when v < bound), else kMulhi, the 16-bit multiply-high
// of the AVX-512 kernel (b - bound mulhi(b, ceil(2^16 / bound)), exact for b < 256). The
// DReLU's bounds (2, 63, 66, 67) never need the multiply.
enum Reduce { kMask = 0, kMulhi = 4 };

// 32 candidates per step: accept b < limit (unsigned: max(b, limit - 1) == limit - 1), reduce,
// then left-pack each 8-byte quarter with a pshufb index from kCompressLo/Hi and store it 8
// bytes wide at the running output position (so a step writes at most 32 bytes: it runs only
// while 32 values are wanted).
template <int kReduce>
VEIL_Z67_AVX2 size_t reject_steps(const uint8_t* in, size_t avail, unsigned bound, unsigned limit,
                                  uint8_t* out, size_t* k_io, size_t count) {
  const __m256i lim1 = _mm256_set1_epi8(static_cast<char>(limit - 1));
  const __m256i bnd8 = _mm256_set1_epi8(static_cast<char>(kReduce == kMask ? bound - 1 : bound));
  const __m256i magic = _mm256_set1_epi16(static_cast<int16_t>((65536 + bound - 1) / bound));
  const __m256i bnd16 = _mm256_set1_epi16(static_cast<int16_t>(bound));
  const __m256i zero = _mm256_setzero_si256();
  const bool all = limit >= 256;
  size_t k = *k_io, used = 0;
  // A step yields at most 32 values, so (count - k) / 32 steps can run unchecked.
  for (size_t steps; (steps = std::min(count - k, avail - used) / 32) > 0;)
    for (; steps > 0; --steps) {
      const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + used));
      used += 32;
      const uint32_t accept = all ? ~uint32_t{0}
                                  : static_cast<uint32_t>(_mm256_movemask_epi8(
                                        _mm256_cmpeq_epi8(_mm256_max_epu8(b, lim1), lim1)));
      __m256i values = b;
      if constexpr (kReduce == kMask) {
        values = _mm256_and_si256(b, bnd8);
      } else if constexpr (kReduce == kMulhi) {
        __m256i lo = _mm256_unpacklo_epi8(b, zero), hi = _mm256_unpackhi_epi8(b, zero);
        lo = _mm256_sub_epi16(lo, _mm256_mullo_epi16(_mm256_mulhi_epu16(lo, magic), bnd16));
        hi = _mm256_sub_epi16(hi, _mm256_mullo_epi16(_mm256_mulhi_epu16(hi, magic), bnd16));
        values = _mm256_packus_epi16(lo, hi);
      } else {
        for (int i = 0; i < kReduce; ++i)
          values = _mm256_min_epu8(values, _mm256_sub_epi8(values, bnd8));
      }
      const __m128i halves[2] = {_mm256_castsi256_si128(values),
                                 _mm256_extracti128_si256(values, 1)};
      for (int h = 0; h < 2; ++h) {
        const unsigned m0 = accept >> (16 * h) & 0xff, m1 = accept >> (16 * h + 8) & 0xff;
        const __m128i packed =
            _mm_shuffle_epi8(halves[h], _mm_set_epi64x(static_cast<int64_t>(kCompressHi[m1]),
                                                       static_cast<int64_t>(kCompressLo[m0])));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + k), packed);
        k += static_cast<size_t>(__builtin_popcount(m0));
        // The high 8 bytes through an unaligned 64-bit store (out + k has any alignment).
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + k), _mm_unpackhi_epi64(packed, packed));
        k += static_cast<size_t>(__builtin_popcount(m1));
      }
    }
  *k_io = k;
  return used;
}

}  // namespace

size_t reject_avx2(const uint8_t* in, size_t avail, unsigned bound, unsigned limit, uint8_t* out,
                   size_t* k, size_t count) {
  if ((bound & (bound - 1)) == 0)
    return reject_steps<kMask>(in, avail, bound, limit, out, k, count);
  switch (limit / bound) {
    case 2:
      return reject_steps<1>(in, avail, bound, limit, out, k, count);
    case 3:
      return reject_steps<2>(in, avail, bound, limit, out, k, count);
    case 4:
      return reject_steps<3>(in, avail, bound, limit, out, k, count);
    default:
      return reject_steps<kMulhi>(in, avail, bound, limit, out, k, count);
  }
}

#undef VEIL_Z67_AVX2

}  // namespace veil::mpc::detail

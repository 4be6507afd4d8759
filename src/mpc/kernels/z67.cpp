#include "veil/mpc/kernels/z67.hpp"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "veil/core/cpu.hpp"
#include "veil/core/error.hpp"
#include "z67_avx2.hpp"

namespace veil::mpc {
namespace {

// 64 candidate bytes -> the accepted ones (b < limit, in order) reduced mod bound, stored at
// out (64 bytes written, the first popcount valid). Returns how many were accepted.
// b mod bound = b - bound * mulhi(b, ceil(2^16 / bound)), exact for b < 256 and 2 <= bound.
__attribute__((target("avx512f,avx512bw,avx512vbmi2"))) unsigned reject_64(const uint8_t* in,
                                                                           unsigned bound,
                                                                           unsigned limit,
                                                                           uint8_t* out) {
  const __m512i b = _mm512_loadu_si512(in);
  const __mmask64 accept =
      limit >= 256 ? ~__mmask64{0}
                   : _mm512_cmplt_epu8_mask(b, _mm512_set1_epi8(static_cast<char>(limit)));
  __m512i values = _mm512_setzero_si512();
  if (bound > 1) {
    const __m512i magic = _mm512_set1_epi16(static_cast<int16_t>((65536 + bound - 1) / bound));
    const __m512i bnd = _mm512_set1_epi16(static_cast<int16_t>(bound));
    // Widen in-lane (unpack with zero) and narrow back in-lane (packus): the byte order is
    // restored exactly, and no cross-lane shuffles are needed.
    const __m512i zero = _mm512_setzero_si512();
    __m512i lo = _mm512_unpacklo_epi8(b, zero), hi = _mm512_unpackhi_epi8(b, zero);
    lo = _mm512_sub_epi16(lo, _mm512_mullo_epi16(_mm512_mulhi_epu16(lo, magic), bnd));
    hi = _mm512_sub_epi16(hi, _mm512_mullo_epi16(_mm512_mulhi_epu16(hi, magic), bnd));
    values = _mm512_packus_epi16(lo, hi);
  }
  _mm512_storeu_si512(out, _mm512_maskz_compress_epi8(accept, values));
  return static_cast<unsigned>(__builtin_popcountll(accept));
}

constexpr uint64_t pow67(int g) {
  uint64_t v = 1;
  for (int i = 0; i < g; ++i) v *= kP;
  return v;
}

constexpr uint64_t kP4 = pow67(4), kP5 = pow67(5), kP9 = pow67(9);

void check_packed_size(size_t bytes, size_t digits) {
  if (bytes != z67_packed_size(digits))
    throw ProtocolError("Z_67 digits: " + std::to_string(bytes) + " bytes, expected " +
                        std::to_string(z67_packed_size(digits)));
}

[[noreturn]] void throw_out_of_range() { throw ProtocolError("Z_67 digits: group out of range"); }

// The reference kernels. Groups are position-independent, so they also finish what the vector
// kernels leave: any suffix of whole groups is a valid input.

// out must have room for z67_packed_size(digits.size()) + 1 bytes (the full groups are stored
// 8 bytes at a time).
void pack_scalar(std::span<const uint8_t> digits, uint8_t* o) {
  const size_t full = digits.size() / kZ67Group * kZ67Group;
  const uint8_t* d = digits.data();
  // Full groups, unrolled (the generic loop below handles the tail): Horner in base 67, then
  // one 8-byte store of which 7 bytes count (the next group overwrites the eighth).
  for (size_t i = 0; i < full; i += kZ67Group, d += kZ67Group, o += 7) {
    uint64_t v = d[8];
    v = v * kP + d[7];
    v = v * kP + d[6];
    v = v * kP + d[5];
    v = v * kP + d[4];
    v = v * kP + d[3];
    v = v * kP + d[2];
    v = v * kP + d[1];
    v = v * kP + d[0];
    std::memcpy(o, &v, 8);  // little-endian (x86-64)
  }
  for (size_t i = full; i < digits.size(); i += kZ67Group) {
    int g = static_cast<int>(std::min<size_t>(kZ67Group, digits.size() - i));
    uint64_t v = 0;
    for (int k = g - 1; k >= 0; --k) v = v * kP + digits[i + static_cast<size_t>(k)];
    for (int b = 0; b < kZ67GroupBytes[g]; ++b) *o++ = static_cast<uint8_t>(v >> (8 * b));
  }
}

// bytes.size() == z67_packed_size(out_digits.size()) already checked.
void unpack_scalar(std::span<const uint8_t> bytes, std::span<uint8_t> out_digits) {
  const size_t digits = out_digits.size();
  uint8_t* out = out_digits.data();
  const uint8_t* p = bytes.data();
  const size_t full = digits / kZ67Group * kZ67Group;
  uint8_t* d = out;
  const uint8_t* end = bytes.data() + bytes.size();
  for (size_t i = 0; i < full; i += kZ67Group, p += 7, d += kZ67Group) {
    uint64_t v = 0;
    if (end - p >= 8) {  // one 8-byte load, top byte masked off, instead of a 7-byte copy
      std::memcpy(&v, p, 8);
      v &= (uint64_t{1} << 56) - 1;
    } else {
      std::memcpy(&v, p, 7);
    }
    if (v >= kP9) throw_out_of_range();
    // One 64-bit division splits the group into halves below 2^32 (< 67^5 and < 67^4); their
    // digits come from two independent chains of cheap 32-bit constant divisions.
    uint32_t hi = static_cast<uint32_t>(v / kP4), lo = static_cast<uint32_t>(v - v / kP4 * kP4);
    const uint32_t l1 = lo / kP, l2 = l1 / kP, l3 = l2 / kP;
    const uint32_t h1 = hi / kP, h2 = h1 / kP, h3 = h2 / kP, h4 = h3 / kP;
    d[0] = static_cast<uint8_t>(lo - l1 * kP);
    d[1] = static_cast<uint8_t>(l1 - l2 * kP);
    d[2] = static_cast<uint8_t>(l2 - l3 * kP);
    d[3] = static_cast<uint8_t>(l3);
    d[4] = static_cast<uint8_t>(hi - h1 * kP);
    d[5] = static_cast<uint8_t>(h1 - h2 * kP);
    d[6] = static_cast<uint8_t>(h2 - h3 * kP);
    d[7] = static_cast<uint8_t>(h3 - h4 * kP);
    d[8] = static_cast<uint8_t>(h4);
  }
  for (size_t i = full; i < digits; i += kZ67Group) {
    int g = static_cast<int>(std::min<size_t>(kZ67Group, digits - i));
    uint64_t v = 0;
    for (int b = 0; b < kZ67GroupBytes[g]; ++b) v |= uint64_t{p[b]} << (8 * b);
    p += kZ67GroupBytes[g];
    if (v >= pow67(g)) throw_out_of_range();
    for (int k = 0; k < g; ++k) {
      out[i + static_cast<size_t>(k)] = static_cast<uint8_t>(v % kP);
      v /= kP;
    }
  }
}

// The AVX-512 kernels work on blocks of eight full groups, one per 64-bit lane: 72 digits <->
// 56 bytes.
constexpr size_t kBlockDigits = 8 * kZ67Group;
constexpr size_t kBlockBytes = 8 * kZ67GroupBytes[kZ67Group];
constexpr __mmask64 kLow56 = (__mmask64{1} << kBlockBytes) - 1;

// VBMI for the packing kernels, VBMI2 (vpcompressb) for the sampler.
bool avx512_vbmi_usable() {
  const CpuFeatures& f = cpu_features();
  return f.avx512f && f.avx512bw && f.avx512dq && f.avx512vbmi && f.avx512vbmi2;
}

template <class F>
constexpr std::array<uint8_t, 64> byte_table(F f) {
  std::array<uint8_t, 64> t{};
  for (int k = 0; k < 64; ++k) t[static_cast<size_t>(k)] = static_cast<uint8_t>(f(k));
  return t;
}

// Byte permutations (vpermb / vpermt2b indices; 64 + i picks byte i of the second source).
// pack: lane g bytes 0..7 = digits 9g..9g+7, from a = digits [0, 64) and b = digits [8, 72).
constexpr auto kPackDigitsIdx = byte_table([](int k) {
  const int n = k / 8 * kZ67Group + k % 8;
  return n < 8 ? n : 64 + n - 8;
});
// pack: lane g byte 0 = digit 9g + 8 = b[9g] (the other bytes are masked to zero).
constexpr auto kPackTopIdx = byte_table([](int k) { return k / 8 * kZ67Group; });
// pack: bytes 0..6 of the eight lanes, back to back.
constexpr auto kPackBytesIdx = byte_table([](int k) { return k < 56 ? k / 7 * 8 + k % 7 : 0; });
// unpack: lane g bytes 0..6 = group g, byte 7 = byte 56 of the 56-byte load (zero).
constexpr auto kUnpackBytesIdx =
    byte_table([](int k) { return k % 8 < 7 ? k / 8 * 7 + k % 8 : 56; });
// unpack: digit 9g + j from z = lanes of [d0 d1 d2 d3 d5 d6 d7 d8] and d4 = lanes of [d4 0...].
constexpr int unpack_digit_source(int n) {
  const int g = n / kZ67Group, j = n % kZ67Group;
  return j < 4 ? 8 * g + j : j == 4 ? 64 + 8 * g : 8 * g + j - 1;
}
constexpr auto kUnpackDigitsLoIdx = byte_table([](int k) { return unpack_digit_source(k); });
constexpr auto kUnpackDigitsHiIdx = byte_table([](int k) { return unpack_digit_source(k + 8); });
// unpack: from the products P = x ceil(2^40 / 67^2) of lanes lo, h, words [q_lo, q_lo, q_h,
// q_h] where q = P >> 40 = bytes 5 and 6 of P.
constexpr auto kUnpackQuotientsIdx = byte_table([](int k) {
  const int lane = k / 8 * 8, j = k % 8;
  return (j < 4 ? 0 : 64) + lane + 5 + (j & 1);
});

// Exact division by a constant d as a multiply-high: with m = ceil(2^s / d) and e = m d - 2^s,
// floor(x m / 2^s) = floor(x / d) for all 0 <= x <= X when X e < 2^s (x m / 2^s = x / d +
// x e / (d 2^s), and the second term is below 1 / d). Granlund & Montgomery,
// "Division by invariant integers using multiplication", PLDI 1994.
struct Magic {
  uint64_t d, s, m;
  constexpr Magic(uint64_t divisor, uint64_t shift)
      : d(divisor), s(shift), m(((uint64_t{1} << shift) + divisor - 1) / divisor) {}
  constexpr bool exact_below(uint64_t x_end) const {
    return (x_end - 1) * (m * d - (uint64_t{1} << s)) < (uint64_t{1} << s);
  }
};
constexpr Magic kDiv67Of5{kP, 38};         // x < 67^5 (the upper 5 digits), 32-bit m for vpmuludq
constexpr Magic kDiv4489Of4{kP * kP, 40};  // x < 67^4 (4 digits) -> pairs of digits
constexpr Magic kDiv67Of2{kP, 22};         // x < 67^2, 16-bit m for vpmulhuw then a shift by 6
static_assert(kDiv67Of5.exact_below(kP5) && kDiv67Of5.m < (uint64_t{1} << 32));
static_assert(kDiv4489Of4.exact_below(kP4) && kDiv4489Of4.m < (uint64_t{1} << 32) &&
              (kP4 - 1) * kDiv4489Of4.m < (uint64_t{1} << 56));  // so q is bytes 5 and 6
static_assert(kDiv67Of2.exact_below(kP * kP) && kDiv67Of2.m < (uint64_t{1} << 16) &&
              kDiv67Of2.s >= 16);

// 1 / 67^4 rounded toward zero: M 2^-77 with M = floor(2^77 / 67^4) in [2^52, 2^53), computed
// as 2^25 floor(2^52 / 67^4) + floor(2^25 (2^52 mod 67^4) / 67^4) to stay in 64 bits.
constexpr uint64_t kInvP4Mantissa =
    ((uint64_t{1} << 52) / kP4 << 25) + (((uint64_t{1} << 52) % kP4) << 25) / kP4;
static_assert(kInvP4Mantissa >= (uint64_t{1} << 52) && kInvP4Mantissa < (uint64_t{1} << 53));
constexpr double kInvP4Down = static_cast<double>(kInvP4Mantissa) * 0x1p-77;

#define VEIL_Z67_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vbmi")))

VEIL_Z67_AVX512 inline __m512i load_table(const std::array<uint8_t, 64>& t) {
  return _mm512_loadu_si512(t.data());
}

// The maskz forms with all lanes on: GCC 12's plain forms pass _mm512_undefined_epi32() and
// then warn (-Wmaybe-uninitialized) about it.
VEIL_Z67_AVX512 inline __m512i mul_u32(__m512i a, __m512i b) {
  return _mm512_maskz_mul_epu32(0xff, a, b);
}
VEIL_Z67_AVX512 inline __m512i shr_u64(__m512i a, unsigned s) {
  return _mm512_maskz_srli_epi64(0xff, a, s);
}

// Eight groups per step: each lane gathers its digits 0..7 and 8; vpmaddubsw and vpmaddwd
// fold them into d0 + 67 d1 + 67^2 d2 + 67^3 d3 (< 2^25) and the same of d4..d7 in its two
// 32-bit halves, and two vpmuludq finish the Horner step v = lo + 67^4 (hi + 67^4 d8): the
// inner sum is < 67^5 < 2^32, the product < 67^9 < 2^55.
VEIL_Z67_AVX512 void pack_blocks_avx512(const uint8_t* d, size_t blocks, uint8_t* o) {
  const __m512i digits_idx = load_table(kPackDigitsIdx), top_idx = load_table(kPackTopIdx),
                bytes_idx = load_table(kPackBytesIdx);
  const __m512i by67 = _mm512_set1_epi16(kP << 8 | 1);          // byte pairs (1, 67)
  const __m512i by4489 = _mm512_set1_epi32(kP * kP << 16 | 1);  // word pairs (1, 67^2)
  const __m512i p4 = _mm512_set1_epi64(static_cast<int64_t>(kP4));
  const __m512i low32 = _mm512_set1_epi64(0xffffffff);
  for (size_t i = 0; i < blocks; ++i, d += kBlockDigits, o += kBlockBytes) {
    const __m512i a = _mm512_loadu_si512(d), b = _mm512_loadu_si512(d + 8);
    const __m512i d07 = _mm512_permutex2var_epi8(a, digits_idx, b);
    const __m512i d8 = _mm512_maskz_permutexvar_epi8(0x0101010101010101, top_idx, b);
    // Digits < 67: d0 + 67 d1 < 2^13 never saturates vpmaddubsw.
    const __m512i halves = _mm512_madd_epi16(_mm512_maddubs_epi16(d07, by67), by4489);
    const __m512i hi = _mm512_add_epi64(shr_u64(halves, 32), mul_u32(d8, p4));
    const __m512i v = _mm512_add_epi64(_mm512_and_si512(halves, low32), mul_u32(hi, p4));
    _mm512_mask_storeu_epi8(o, kLow56, _mm512_maskz_permutexvar_epi8(kLow56, bytes_idx, v));
  }
}

// Eight groups per step; false if a group is >= 67^9. Each lane v splits into lo = v mod 67^4
// (digits 0..3) and hi = v div 67^4 (digits 4..8) by a double-precision quotient, rounded
// toward zero at every step so that it is never too large: RZ(v) RZ(1 / 67^4) rounded toward
// zero is at most v / 67^4 and, three relative errors of 2^-52 on a quotient below 2^31,
// more than v / 67^4 - 1. So the truncated estimate is q or q - 1, v - estimate 67^4 is in
// [0, 2 67^4), and one compare fixes both. Digit 4 comes off hi, and lo and h = hi / 67 (four
// digits each) become 16-bit digit pairs, then bytes, by the exact multiply-highs of kDiv*;
// the quotients by 67^2 are bytes 5 and 6 of their products, so one byte permutation both
// shifts them and puts them into place.
VEIL_Z67_AVX512 bool unpack_blocks_avx512(const uint8_t* p, size_t blocks, uint8_t* out) {
  constexpr int kRz = _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC;
  const __m512i bytes_idx = load_table(kUnpackBytesIdx),
                quotients_idx = load_table(kUnpackQuotientsIdx),
                digits_lo_idx = load_table(kUnpackDigitsLoIdx),
                digits_hi_idx = load_table(kUnpackDigitsHiIdx);
  const __m512i p9 = _mm512_set1_epi64(static_cast<int64_t>(kP9));
  const __m512i p4 = _mm512_set1_epi64(static_cast<int64_t>(kP4));
  const __m512d inv_p4 = _mm512_set1_pd(kInvP4Down);
  const __m512i p1 = _mm512_set1_epi64(kP);
  const __m512i m67 = _mm512_set1_epi64(static_cast<int64_t>(kDiv67Of5.m));
  const __m512i m4489 = _mm512_set1_epi64(static_cast<int64_t>(kDiv4489Of4.m));
  // Words (x - 67^2 q, q) from words (x, 0) and (q, q), modulo 2^16 (exact: both are < 2^16).
  const __m512i low16 = _mm512_set1_epi32(0xffff);
  const __m512i pair_fold = _mm512_set1_epi32(static_cast<int32_t>(0xffff0000u | kP * kP));
  // Bytes (x - 67 q, q) = x + (256 - 67) q from a word x = d + 67 q.
  __m512i byte_fold = _mm512_set1_epi16((1 << 8) - kP);
  __m512i one = _mm512_set1_epi64(1);
  __m512i m67w = _mm512_set1_epi16(static_cast<int16_t>(kDiv67Of2.m));
  __mmask64 low56 = kLow56;
  // Opaque to GCC, which would otherwise rebuild these inside the loop (broadcasts, kmovs) and
  // turn the multiply by 189 into four shifts and adds.
  __asm__("" : "+v"(byte_fold), "+v"(one), "+v"(m67w), "+k"(low56));
  // Checked once at the end (groups >= 67^9, but < 2^56, just decode to garbage until then):
  // a compare and branch per step costs more.
  __m512i largest = _mm512_setzero_si512();
  for (size_t i = 0; i < blocks; ++i, p += kBlockBytes, out += kBlockDigits) {
    const __m512i v =
        _mm512_maskz_permutexvar_epi8(~__mmask64{0}, bytes_idx, _mm512_maskz_loadu_epi8(low56, p));
    largest = _mm512_maskz_max_epu64(0xff, largest, v);
    const __m512d q =
        _mm512_maskz_mul_round_pd(0xff, _mm512_maskz_cvt_roundepu64_pd(0xff, v, kRz), inv_p4, kRz);
    __m512i hi = _mm512_maskz_cvttpd_epu64(0xff, q);
    __m512i lo = _mm512_sub_epi64(v, mul_u32(hi, p4));
    const __mmask8 carry = _mm512_cmpge_epu64_mask(lo, p4);
    hi = _mm512_mask_add_epi64(hi, carry, hi, one);
    lo = _mm512_mask_sub_epi64(lo, carry, lo, p4);
    const __m512i h = shr_u64(mul_u32(hi, m67), kDiv67Of5.s);
    const __m512i d4 = _mm512_sub_epi64(hi, mul_u32(h, p1));
    // Words d0 + 67 d1, d2 + 67 d3, d5 + 67 d6, d7 + 67 d8.
    const __m512i quotients =
        _mm512_permutex2var_epi8(mul_u32(lo, m4489), quotients_idx, mul_u32(h, m4489));
    const __m512i low_words =
        _mm512_and_si512(_mm512_mask_shuffle_epi32(lo, 0xaaaa, h, _MM_PERM_CDAB), low16);
    const __m512i pairs = _mm512_sub_epi16(low_words, _mm512_mullo_epi16(quotients, pair_fold));
    // -> bytes d0 d1 d2 d3 d5 d6 d7 d8.
    const __m512i tens =
        _mm512_srli_epi16(_mm512_mulhi_epu16(pairs, m67w), static_cast<int>(kDiv67Of2.s) - 16);
    const __m512i z = _mm512_add_epi16(pairs, _mm512_mullo_epi16(tens, byte_fold));
    // Two overlapping stores write exactly the block's 72 digits.
    _mm512_storeu_si512(out, _mm512_permutex2var_epi8(z, digits_lo_idx, d4));
    _mm512_storeu_si512(out + 8, _mm512_permutex2var_epi8(z, digits_hi_idx, d4));
  }
  return _mm512_cmpge_epu64_mask(largest, p9) == 0;
}

#undef VEIL_Z67_AVX512

// The kernel that runs for `kernel`: Auto picks the best one the CPU has within kernel_path();
// an explicit kernel the CPU lacks is an InvalidArgument.
Z67Kernel resolve(Z67Kernel kernel) {
  if (kernel == Z67Kernel::Auto) {
    if (avx512_vbmi_usable() && kernel_path_allows(KernelPath::Avx512)) return Z67Kernel::Avx512;
    if (detail::z67_avx2_usable() && kernel_path_allows(KernelPath::Avx2)) return Z67Kernel::Avx2;
    return Z67Kernel::Scalar;
  }
  if (!z67_kernel_available(kernel))
    throw InvalidArgument(std::string("Z_67 kernels: ") +
                          (kernel == Z67Kernel::Avx2 ? "AVX2" : "AVX-512 VBMI") +
                          " kernel not available on this machine");
  return kernel;
}

}  // namespace

size_t z67_packed_size(size_t digits) {
  return digits / kZ67Group * kZ67GroupBytes[kZ67Group] + kZ67GroupBytes[digits % kZ67Group];
}

bool z67_kernel_available(Z67Kernel kernel) {
  switch (kernel) {
    case Z67Kernel::Avx512:
      return avx512_vbmi_usable();
    case Z67Kernel::Avx2:
      return detail::z67_avx2_usable();
    default:
      return true;
  }
}

const char* z67_kernel_name() {
  switch (resolve(Z67Kernel::Auto)) {
    case Z67Kernel::Avx512:
      return "avx512vbmi";
    case Z67Kernel::Avx2:
      return "avx2";
    default:
      return "scalar";
  }
}

Bytes pack_z67_with(Z67Kernel kernel, std::span<const uint8_t> digits) {
  kernel = resolve(kernel);
  Bytes out(z67_packed_size(digits.size()) + 1);  // +1: pack_scalar's stores
  size_t done_digits = 0, done_bytes = 0;
  if (kernel == Z67Kernel::Avx512) {
    const size_t blocks = digits.size() / kBlockDigits;
    if (blocks > 0) pack_blocks_avx512(digits.data(), blocks, out.data());
    done_digits = blocks * kBlockDigits;
    done_bytes = blocks * kBlockBytes;
  } else if (kernel == Z67Kernel::Avx2) {
    const size_t blocks = detail::z67_avx2_blocks(digits.size());
    detail::pack_z67_blocks_avx2(digits.data(), blocks, out.data());
    done_digits = blocks * detail::kZ67Avx2BlockDigits;
    done_bytes = blocks * detail::kZ67Avx2BlockBytes;
  }
  pack_scalar(digits.subspan(done_digits), out.data() + done_bytes);
  out.pop_back();
  return out;
}

Bytes pack_z67(std::span<const uint8_t> digits) { return pack_z67_with(Z67Kernel::Auto, digits); }

void unpack_z67_with(Z67Kernel kernel, std::span<const uint8_t> bytes,
                     std::span<uint8_t> out_digits) {
  kernel = resolve(kernel);
  check_packed_size(bytes.size(), out_digits.size());
  size_t done_digits = 0, done_bytes = 0;
  bool in_range = true;
  if (kernel == Z67Kernel::Avx512) {
    const size_t blocks = out_digits.size() / kBlockDigits;
    if (blocks > 0) in_range = unpack_blocks_avx512(bytes.data(), blocks, out_digits.data());
    done_digits = blocks * kBlockDigits;
    done_bytes = blocks * kBlockBytes;
  } else if (kernel == Z67Kernel::Avx2) {
    const size_t blocks = detail::z67_avx2_blocks(out_digits.size());
    in_range = detail::unpack_z67_blocks_avx2(bytes.data(), blocks, out_digits.data());
    done_digits = blocks * detail::kZ67Avx2BlockDigits;
    done_bytes = blocks * detail::kZ67Avx2BlockBytes;
  }
  if (!in_range) throw_out_of_range();
  unpack_scalar(bytes.subspan(done_bytes), out_digits.subspan(done_digits));
}

std::vector<uint8_t> unpack_z67(std::span<const uint8_t> bytes, size_t digits) {
  check_packed_size(bytes.size(), digits);
  std::vector<uint8_t> out(digits);
  unpack_z67_with(Z67Kernel::Auto, bytes, std::span<uint8_t>(out));
  return out;
}

void unpack_z67(std::span<const uint8_t> bytes, std::span<uint8_t> out_digits) {
  unpack_z67_with(Z67Kernel::Auto, bytes, out_digits);
}

void ByteSampler::fill_below(unsigned bound, uint8_t* out, size_t count, Z67Kernel kernel) {
  if (bound < 1 || bound > 256) throw InvalidArgument("ByteSampler: bound must be in [1, 256]");
  kernel = resolve(kernel);
  const unsigned limit = 256 - 256 % bound;
  size_t k = 0;
  while (k < count) {
    if (pos_ == buf_.size()) refill();
    // Whole 64- (32-) byte chunks while at least 64 (32) values are still wanted: a chunk can
    // never overshoot, so the bytes consumed are those of the scalar loop.
    if (kernel == Z67Kernel::Avx512)
      while (count - k >= 64 && buf_.size() - pos_ >= 64) {
        k += reject_64(buf_.data() + pos_, bound, limit, out + k);
        pos_ += 64;
      }
    else if (kernel == Z67Kernel::Avx2)
      pos_ +=
          detail::reject_avx2(buf_.data() + pos_, buf_.size() - pos_, bound, limit, out, &k, count);
    const uint8_t* p = buf_.data() + pos_;
    const uint8_t* end = buf_.data() + buf_.size();
    // Branch-free: a rejected byte's value is written and then overwritten by the next one.
    while (p < end && k < count) {
      const unsigned b = *p++;
      out[k] = static_cast<uint8_t>(b % bound);
      k += b < limit;
    }
    pos_ = static_cast<size_t>(p - buf_.data());
  }
}

void ByteSampler::refill() {
  buf_.resize(4096);
  prg_.fill(std::span<uint8_t>(buf_));
  pos_ = 0;
}

}  // namespace veil::mpc

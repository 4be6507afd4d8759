#include "veil/mpc/z67.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "veil/core/cpu.hpp"
#include "veil/core/error.hpp"

namespace veil::mpc {
namespace {

bool vbmi2_usable() {
  const CpuFeatures& f = cpu_features();
  return f.avx512f && f.avx512bw && f.avx512vbmi2;
}

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

}  // namespace

size_t z67_packed_size(size_t digits) {
  return digits / kZ67Group * kZ67GroupBytes[kZ67Group] + kZ67GroupBytes[digits % kZ67Group];
}

std::vector<uint8_t> pack_z67(std::span<const uint8_t> digits) {
  std::vector<uint8_t> out(z67_packed_size(digits.size()) + 1);  // +1: 8-byte stores below
  uint8_t* o = out.data();
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
  out.pop_back();
  return out;
}

std::vector<uint8_t> unpack_z67(std::span<const uint8_t> bytes, size_t digits) {
  if (bytes.size() != z67_packed_size(digits))
    throw ProtocolError("Z_67 digits: " + std::to_string(bytes.size()) + " bytes, expected " +
                        std::to_string(z67_packed_size(digits)));
  std::vector<uint8_t> out(digits);
  unpack_z67(bytes, std::span<uint8_t>(out));
  return out;
}

void unpack_z67(std::span<const uint8_t> bytes, std::span<uint8_t> out_digits) {
  const size_t digits = out_digits.size();
  if (bytes.size() != z67_packed_size(digits))
    throw ProtocolError("Z_67 digits: " + std::to_string(bytes.size()) + " bytes, expected " +
                        std::to_string(z67_packed_size(digits)));
  uint8_t* out = out_digits.data();
  const uint8_t* p = bytes.data();
  const size_t full = digits / kZ67Group * kZ67Group;
  uint8_t* d = out;
  constexpr uint64_t kP4 = pow67(4), kP9 = pow67(9);
  const uint8_t* end = bytes.data() + bytes.size();
  for (size_t i = 0; i < full; i += kZ67Group, p += 7, d += kZ67Group) {
    uint64_t v = 0;
    if (end - p >= 8) {  // one 8-byte load, top byte masked off, instead of a 7-byte copy
      std::memcpy(&v, p, 8);
      v &= (uint64_t{1} << 56) - 1;
    } else {
      std::memcpy(&v, p, 7);
    }
    if (v >= kP9) throw ProtocolError("Z_67 digits: group out of range");
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
    if (v >= pow67(g)) throw ProtocolError("Z_67 digits: group out of range");
    for (int k = 0; k < g; ++k) {
      out[i + static_cast<size_t>(k)] = static_cast<uint8_t>(v % kP);
      v /= kP;
    }
  }
}

void ByteSampler::fill_below(unsigned bound, uint8_t* out, size_t count) {
  if (bound < 1 || bound > 256) throw InvalidArgument("ByteSampler: bound must be in [1, 256]");
  const unsigned limit = 256 - 256 % bound;
  const bool vector = vbmi2_usable();
  size_t k = 0;
  while (k < count) {
    if (pos_ == buf_.size()) refill();
    // Whole 64-byte chunks while at least 64 values are still wanted: a chunk can never
    // overshoot, so the bytes consumed are those of the scalar loop.
    if (vector)
      while (count - k >= 64 && buf_.size() - pos_ >= 64) {
        k += reject_64(buf_.data() + pos_, bound, limit, out + k);
        pos_ += 64;
      }
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

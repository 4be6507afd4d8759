#include "veil/mpc/z67.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "veil/core/error.hpp"

namespace veil::mpc {
namespace {

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
  const uint8_t* p = bytes.data();
  const size_t full = digits / kZ67Group * kZ67Group;
  uint8_t* d = out.data();
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
  return out;
}

void ByteSampler::refill() {
  buf_.resize(4096);
  prg_.fill(std::span<uint8_t>(buf_));
  pos_ = 0;
}

}  // namespace veil::mpc

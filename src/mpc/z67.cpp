#include "veil/mpc/z67.hpp"

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
  std::vector<uint8_t> out(z67_packed_size(digits.size()));
  uint8_t* o = out.data();
  for (size_t i = 0; i < digits.size(); i += kZ67Group) {
    int g = static_cast<int>(std::min<size_t>(kZ67Group, digits.size() - i));
    uint64_t v = 0;
    for (int k = g - 1; k >= 0; --k) v = v * kP + digits[i + static_cast<size_t>(k)];
    for (int b = 0; b < kZ67GroupBytes[g]; ++b) *o++ = static_cast<uint8_t>(v >> (8 * b));
  }
  return out;
}

std::vector<uint8_t> unpack_z67(std::span<const uint8_t> bytes, size_t digits) {
  if (bytes.size() != z67_packed_size(digits))
    throw ProtocolError("Z_67 digits: " + std::to_string(bytes.size()) + " bytes, expected " +
                        std::to_string(z67_packed_size(digits)));
  std::vector<uint8_t> out(digits);
  const uint8_t* p = bytes.data();
  for (size_t i = 0; i < digits; i += kZ67Group) {
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

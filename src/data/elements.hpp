// Decoding little-endian element arrays into veil's two tensor dtypes. Shared by the .npy and
// TensorProto readers; byte order is handled explicitly so the code does not depend on the host.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"

namespace veil::data::detail {

enum class ElemKind { Float, Signed, Unsigned, Bool };

struct ElemType {
  ElemKind kind = ElemKind::Float;
  int bytes = 4;  // 1, 2, 4 or 8
};

// IEEE 754 binary16 to binary32 (IEEE 754-2008, section 3.6), including subnormals, inf, NaN.
inline float half_to_float(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1;
  const int exp = (h >> 10) & 0x1f;
  const uint32_t frac = h & 0x3ff;
  float mag;
  if (exp == 0) {
    mag = std::ldexp(static_cast<float>(frac), -24);
  } else if (exp == 31) {
    mag = frac ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    mag = std::ldexp(static_cast<float>(frac | 0x400), exp - 25);
  }
  return sign ? -mag : mag;
}

// bfloat16 is the top half of a binary32.
inline float bfloat16_to_float(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

inline float decode_float(const uint8_t* p, int bytes) {
  uint64_t v = load_le(p, bytes);
  if (bytes == 2) return half_to_float(static_cast<uint16_t>(v));
  if (bytes == 4) return std::bit_cast<float>(static_cast<uint32_t>(v));
  return static_cast<float>(std::bit_cast<double>(v));
}

// Signed, unsigned and bool elements as int64. Unsigned 64-bit values above INT64_MAX and bool
// bytes other than 0/1 are rejected; `what` names the source in the message.
inline int64_t decode_int(const uint8_t* p, ElemType t, const std::string& what) {
  uint64_t v = load_le(p, t.bytes);
  switch (t.kind) {
    case ElemKind::Signed: {
      if (t.bytes < 8) {
        const uint64_t sign_bit = uint64_t{1} << (8 * t.bytes - 1);
        if (v & sign_bit) v |= ~((sign_bit << 1) - 1);
      }
      return static_cast<int64_t>(v);
    }
    case ElemKind::Unsigned:
      if (v > static_cast<uint64_t>(INT64_MAX))
        throw MalformedInput(what + ": unsigned value " + std::to_string(v) +
                             " does not fit in int64");
      return static_cast<int64_t>(v);
    case ElemKind::Bool:
      if (v > 1) throw MalformedInput(what + ": bool element with value " + std::to_string(v));
      return static_cast<int64_t>(v);
    case ElemKind::Float:
      break;
  }
  throw MalformedInput(what + ": internal error: float element decoded as integer");
}

}  // namespace veil::data::detail

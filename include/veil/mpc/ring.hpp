// Values of the secure inference protocols: tensors over the ring Z_2^64 holding fixed-point
// numbers (x -> round(x * 2^f)) or additive shares of them. Arithmetic wraps modulo 2^64.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "veil/core/default_init.hpp"
#include "veil/core/tensor.hpp"

namespace veil::mpc {

// The three parties of the SecureNN setting. The numeric values index arrays and appear on the
// wire, so they are fixed.
enum class Role : uint8_t { Client = 0, Server = 1, Helper = 2 };
const char* role_name(Role role);
Role role_from_name(const std::string& name);  // "client" | "server" | "helper"

// A tensor over Z_2^64. The helper, which holds no shares, passes and receives tensors that
// carry only a shape (data empty): every protocol derives its message sizes from shapes, which
// are public.
struct RingTensor {
  Shape shape;
  std::vector<uint64_t> data;

  RingTensor() = default;
  RingTensor(Shape s, std::vector<uint64_t> d);
  static RingTensor zeros(Shape s);
  static RingTensor shape_only(Shape s);

  int64_t numel() const;  // from the shape
  bool has_data() const { return !data.empty() || numel() == 0; }
};

// Fixed-point encoding with `frac_bits` fractional bits. encode rounds to nearest and throws
// InvalidArgument for NaN/inf or a magnitude that does not fit in 62 bits.
uint64_t encode_fixed(double value, int frac_bits);
double decode_fixed(uint64_t value, int frac_bits);
RingTensor encode_tensor(const Tensor& t, int frac_bits);
Tensor decode_tensor(const RingTensor& t, int frac_bits);

// Little-endian (de)serialisation of u64 arrays for messages.
Bytes to_bytes(const std::vector<uint64_t>& v);
std::vector<uint64_t> u64s_from_bytes(std::span<const uint8_t> b);

}  // namespace veil::mpc

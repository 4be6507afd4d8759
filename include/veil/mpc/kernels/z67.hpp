// Arithmetic and wire packing for the field Z_67 in which PrivateCompare (SecureNN, Wagh et al.
// PoPETs 2019, Algorithm 1) shares bits: 67 is the smallest prime above 64 + 2, so a digit sum
// over up to 64 bit positions never wraps to 0 by accident.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/core/default_init.hpp"
#include "veil/core/random.hpp"

namespace veil::mpc {

inline constexpr uint8_t kP = 67;

// Nine Z_67 digits fit in 55 bits (67^9 < 2^55), so they travel in 7 bytes instead of 9: a
// group of g digits is the base-67 number sum d_i 67^i in kZ67GroupBytes[g] little-endian bytes.
inline constexpr int kZ67Group = 9;
inline constexpr int kZ67GroupBytes[kZ67Group + 1] = {0, 1, 2, 3, 4, 4, 5, 6, 7, 7};

size_t z67_packed_size(size_t digits);
// Digits must be < 67.
Bytes pack_z67(std::span<const uint8_t> digits);
// Throws ProtocolError if bytes.size() != z67_packed_size(digits) or a group is out of range.
std::vector<uint8_t> unpack_z67(std::span<const uint8_t> bytes, size_t digits);
// The same into a caller's buffer of out.size() digits (no zero-filled vector per call).
void unpack_z67(std::span<const uint8_t> bytes, std::span<uint8_t> out);

// Packing and sampling kernels, chosen at run time: AVX-512 VBMI/VBMI2 (eight groups, 72
// digits <-> 56 bytes, per step; 64 candidate bytes per sampling step), AVX2 (four groups, 36
// digits <-> 28 bytes; 32 candidate bytes), scalar. Auto picks the best the CPU has within
// kernel_path(). All give the same bytes and digits, reject the same inputs with the same
// errors and draw the same bytes.
enum class Z67Kernel { Auto, Scalar, Avx2, Avx512 };

bool z67_kernel_available(Z67Kernel kernel);
const char* z67_kernel_name();  // the kernel Auto picks here: "avx512vbmi", "avx2" or "scalar"

// pack_z67 / unpack_z67 with a given kernel (tests and benchmarks compare them);
// InvalidArgument when the machine lacks it. Digits >= 67 given to pack are garbage in, and
// the kernels' garbage out differs.
Bytes pack_z67_with(Z67Kernel kernel, std::span<const uint8_t> digits);
void unpack_z67_with(Z67Kernel kernel, std::span<const uint8_t> bytes, std::span<uint8_t> out);

// Uniform small integers from an AES-CTR stream by byte-wise rejection sampling, buffered.
class ByteSampler {
 public:
  explicit ByteSampler(AesCtrPrg prg) : prg_(std::move(prg)) {}
  uint8_t byte() {
    if (pos_ == buf_.size()) refill();
    return buf_[pos_++];
  }
  // out[0..count) = independent uniform values in [0, bound), 1 <= bound <= 256, by plain
  // rejection of the bytes >= the largest multiple of bound. Consumes exactly the bytes a
  // byte-at-a-time rejection loop would, whichever kernel runs (AVX-512 VBMI2 compress, AVX2
  // pshufb left-packing), so two parties on different CPUs draw the same values. An explicit
  // kernel the machine lacks is an InvalidArgument.
  void fill_below(unsigned bound, uint8_t* out, size_t count, Z67Kernel kernel = Z67Kernel::Auto);

 private:
  void refill();
  AesCtrPrg prg_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
};

}  // namespace veil::mpc

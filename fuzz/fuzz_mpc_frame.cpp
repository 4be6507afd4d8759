// libFuzzer target for the MPC wire format: the frame decoder (headers are validated and
// lengths bounded before any payload is buffered) and the packed Z_67 digit parser.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "veil/core/error.hpp"
#include "veil/mpc/kernels/z67.hpp"
#include "veil/mpc/network/frame.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  try {
    veil::mpc::FrameDecoder dec(1 << 16);
    // Feed in uneven pieces so partial headers and payloads are exercised.
    size_t pos = 0, step = 1;
    while (pos < in.size()) {
      size_t n = std::min(step, in.size() - pos);
      dec.feed(in.subspan(pos, n));
      veil::mpc::Frame f;
      while (dec.next(f)) {
        if (f.payload.size() != f.header.length) __builtin_trap();
      }
      pos += n;
      step = step * 3 + 1;
    }
  } catch (const veil::MalformedInput&) {
  }
  if (size > 0) {
    size_t digits = static_cast<size_t>(data[0]) * 3;
    std::span<const uint8_t> packed = in.subspan(1);
    try {
      auto d = veil::mpc::unpack_z67(packed, digits);
      for (uint8_t v : d)
        if (v >= veil::mpc::kP) __builtin_trap();
      if (veil::mpc::pack_z67(d) != veil::Bytes(packed.begin(), packed.end()))
        __builtin_trap();  // the encoding is canonical
    } catch (const veil::ProtocolError&) {
    }
    // Differential: the scalar reference and the AVX-512 kernel accept the same inputs and
    // decode them to the same digits.
    using veil::mpc::Z67Kernel;
    if (veil::mpc::z67_kernel_available(Z67Kernel::Avx512)) {
      std::vector<uint8_t> a(digits), b(digits);
      bool a_ok = true, b_ok = true;
      try {
        veil::mpc::unpack_z67_with(Z67Kernel::Scalar, packed, a);
      } catch (const veil::ProtocolError&) {
        a_ok = false;
      }
      try {
        veil::mpc::unpack_z67_with(Z67Kernel::Avx512, packed, b);
      } catch (const veil::ProtocolError&) {
        b_ok = false;
      }
      if (a_ok != b_ok || (a_ok && a != b)) __builtin_trap();
    }
  }
  return 0;
}

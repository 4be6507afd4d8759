// libFuzzer target for the key-file parsers: the authenticated container (header checks, then
// AES-256-GCM under a fixed secret) and the payload parser behind it, which is reached directly
// too since random bytes never pass the tag. Any veil::Error is an accepted outcome; crashes,
// sanitizer reports and other exceptions are bugs.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "veil/core/error.hpp"
#include "veil/lock/keyfile.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::span<const uint8_t> in(data + 1, size - 1);
  static const veil::lock::KeySecret secret =
      veil::lock::KeySecret::from_bytes(std::array<uint8_t, 32>{});
  try {
    switch (data[0] % 3) {
      case 0: {
        veil::lock::LockKey key = veil::lock::decode_key_payload(in);
        // A payload that parses must re-encode to the same bytes.
        if (veil::lock::encode_key_payload(key) != std::vector<uint8_t>(in.begin(), in.end()))
          __builtin_trap();
        break;
      }
      case 1:
        veil::lock::parse_key_file_header(in);
        break;
      default:
        veil::lock::open_key(in, secret);
        break;
    }
  } catch (const veil::Error&) {
  }
  return 0;
}

// SHA-256 of a byte string (OpenSSL), for hashes that name or bind files: parameter hashes,
// key-set identifiers, content digests.
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace veil {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest sha256(std::span<const uint8_t> bytes);

}  // namespace veil

#include "veil/core/sha256.hpp"

#include <openssl/evp.h>

#include "veil/core/error.hpp"

namespace veil {

Sha256Digest sha256(std::span<const uint8_t> bytes) {
  Sha256Digest out{};
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != out.size())
    throw Error("OpenSSL: SHA-256 failed");
  return out;
}

}  // namespace veil

#include "veil/core/random.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <climits>
#include <cstring>

#include "veil/core/error.hpp"

namespace veil {

void secure_random_bytes(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    int chunk = static_cast<int>(std::min<size_t>(out.size() - done, INT_MAX));
    if (RAND_bytes(out.data() + done, chunk) != 1) throw Error("OpenSSL RAND_bytes failed");
    done += static_cast<size_t>(chunk);
  }
}

Seed random_seed() {
  Seed s;
  secure_random_bytes(s);
  return s;
}

struct AesCtrPrg::Impl {
  EVP_CIPHER_CTX* ctx = nullptr;
  ~Impl() { EVP_CIPHER_CTX_free(ctx); }
};

namespace {
// Encrypting zeros yields the raw keystream. One read-only block for every stream: a buffer per
// stream cost a 64 KiB allocation and fill each time, and the protocols open a few streams per
// operation. 16 KiB stays in L1 beside the output.
alignas(64) const uint8_t kZeros[1 << 14] = {};
}  // namespace

AesCtrPrg::AesCtrPrg(const Seed& seed, uint64_t stream_id) : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_CIPHER_CTX_new();
  if (!impl_->ctx) throw Error("OpenSSL: cannot allocate a cipher context");
  // The stream id occupies the high half of the initial counter block, so distinct streams under
  // one seed never overlap (2^64 blocks each).
  uint8_t iv[16] = {};
  for (int i = 0; i < 8; ++i) iv[i] = static_cast<uint8_t>(stream_id >> (56 - 8 * i));
  if (EVP_EncryptInit_ex(impl_->ctx, EVP_aes_128_ctr(), nullptr, seed.data(), iv) != 1)
    throw Error("OpenSSL: AES-128-CTR init failed");
}

AesCtrPrg::~AesCtrPrg() = default;
AesCtrPrg::AesCtrPrg(AesCtrPrg&&) noexcept = default;
AesCtrPrg& AesCtrPrg::operator=(AesCtrPrg&&) noexcept = default;

void AesCtrPrg::fill(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    size_t n = std::min(sizeof(kZeros), out.size() - done);
    int outl = 0;
    if (EVP_EncryptUpdate(impl_->ctx, out.data() + done, &outl, kZeros, static_cast<int>(n)) != 1)
      throw Error("OpenSSL: AES-CTR failed");
    done += n;
  }
}

void AesCtrPrg::fill(std::span<uint64_t> out) {
  fill(std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), out.size() * sizeof(uint64_t)));
}

uint64_t AesCtrPrg::next_u64() {
  uint64_t v;
  fill(std::span<uint64_t>(&v, 1));
  return v;
}

uint64_t AesCtrPrg::uniform(uint64_t bound) {
  if (bound == 0) throw InvalidArgument("AesCtrPrg::uniform: bound must be positive");
  uint64_t limit = UINT64_MAX - (UINT64_MAX % bound);
  for (;;) {
    uint64_t v = next_u64();
    if (v < limit) return v % bound;
  }
}

}  // namespace veil

// Randomness. Secrets come only from the OS CSPRNG (OpenSSL RAND_bytes); deterministic expansion
// of a seed uses AES-128-CTR (OpenSSL). std::mt19937 is for shuffling training data only.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>

namespace veil {

using Seed = std::array<uint8_t, 16>;

// Fills `out` from the OS CSPRNG; throws Error if OpenSSL cannot.
void secure_random_bytes(std::span<uint8_t> out);
Seed random_seed();

// A pseudo-random generator: the AES-128-CTR keystream under a 128-bit seed. Two parties
// holding the same seed draw the same stream, which is how correlated randomness is shared
// without sending it.
class AesCtrPrg {
 public:
  explicit AesCtrPrg(const Seed& seed, uint64_t stream_id = 0);
  ~AesCtrPrg();
  AesCtrPrg(AesCtrPrg&&) noexcept;
  AesCtrPrg& operator=(AesCtrPrg&&) noexcept;

  void fill(std::span<uint8_t> out);
  void fill(std::span<uint64_t> out);
  uint64_t next_u64();
  // Uniform in [0, bound) without modulo bias (rejection sampling); bound > 0.
  uint64_t uniform(uint64_t bound);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace veil

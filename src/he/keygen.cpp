#include <openssl/crypto.h>

#include <stdexcept>

#include "ntt.hpp"
#include "sampling.hpp"
#include "thread_pool.hpp"
#include "veil/core/error.hpp"
#include "veil/he/keys.hpp"

namespace veil::he {

const KeySwitchKey& GaloisKeys::key(uint32_t g) const {
  auto it = keys_.find(g);
  if (it == keys_.end()) throw InvalidArgument("no Galois key for element " + std::to_string(g));
  return it->second;
}

SecretKey KeyAccess::make_secret(uint64_t id, std::vector<uint64_t> data) {
  SecretKey k;
  k.context_id_ = id;
  k.data_ = std::move(data);
  return k;
}

template <class Key, class Poly>
Key KeyAccess::make_pair(uint64_t id, Poly b, Poly a, std::optional<Seed> seed) {
  Key k;
  k.context_id_ = id;
  k.b_ = std::move(b);
  k.a_ = std::move(a);
  k.seed_ = seed;
  return k;
}

PublicKey KeyAccess::make_public(uint64_t id, std::vector<uint64_t> b, std::vector<uint64_t> a,
                                 std::optional<Seed> seed) {
  return make_pair<PublicKey>(id, std::move(b), std::move(a), seed);
}

KeySwitchKey KeyAccess::make_switch(uint64_t id, std::vector<std::vector<uint64_t>> b,
                                    std::vector<std::vector<uint64_t>> a,
                                    std::optional<Seed> seed) {
  return make_pair<KeySwitchKey>(id, std::move(b), std::move(a), seed);
}

KeyGenerator::KeyGenerator(ContextPtr ctx) : ctx_(std::move(ctx)) {
  if (!ctx_) throw InvalidArgument("KeyGenerator: null context");
  const size_t n = ctx_->n();
  const size_t primes = ctx_->prime_count();
  std::vector<int32_t> s(n);
  detail::Sampler sampler(random_seed());
  sampler.ternary(s);
  sk_.context_id_ = ctx_->id();
  sk_.data_.assign(primes * n, 0);
  ctx_->pool().parallel_for(primes, [&](size_t i) {
    detail::small_to_ntt(*ctx_, s.data(), i, sk_.data_.data() + i * n);
  });
  OPENSSL_cleanse(s.data(), s.size() * sizeof(int32_t));
}

KeyGenerator::KeyGenerator(ContextPtr ctx, const SecretKey& sk) : ctx_(std::move(ctx)), sk_(sk) {
  if (!ctx_) throw InvalidArgument("KeyGenerator: null context");
  if (sk.context_id() != ctx_->id() || sk.data().size() != ctx_->prime_count() * ctx_->n())
    throw InvalidArgument("KeyGenerator: secret key belongs to other parameters");
}

PublicKey KeyGenerator::create_public_key() const {
  const size_t n = ctx_->n();
  const size_t L = ctx_->q_count();
  const Seed seed = random_seed();
  std::vector<int32_t> e(n);
  detail::Sampler sampler(random_seed());
  sampler.gaussian(e);
  std::vector<uint64_t> b(L * n), a(L * n);
  ctx_->pool().parallel_for(L, [&](size_t i) {
    const Modulus& m = ctx_->prime(i);
    uint64_t* ai = a.data() + i * n;
    uint64_t* bi = b.data() + i * n;
    detail::sample_uniform(*ctx_, seed, i, i, ai);
    detail::small_to_ntt(*ctx_, e.data(), i, bi);
    const uint64_t* si = sk_.data_.data() + i * n;
    for (size_t c = 0; c < n; ++c) bi[c] = sub_mod(bi[c], mul_mod(ai[c], si[c], m), m.value);
  });
  OPENSSL_cleanse(e.data(), e.size() * sizeof(int32_t));
  return KeyAccess::make_public(ctx_->id(), std::move(b), std::move(a), seed);
}

KeySwitchKey KeyGenerator::create_switch_key(const std::vector<uint64_t>& from) const {
  const size_t n = ctx_->n();
  const size_t L = ctx_->q_count();
  const size_t K = ctx_->special_count();
  const size_t primes = L + K;
  if (from.size() != primes * n) throw InvalidArgument("create_switch_key: wrong key size");
  const size_t dnum = ctx_->digit_count(L - 1);
  const Seed seed = random_seed();
  detail::Sampler sampler(random_seed());
  std::vector<std::vector<int32_t>> errors(dnum, std::vector<int32_t>(n));
  for (auto& e : errors) sampler.gaussian(e);
  std::vector<std::vector<uint64_t>> b(dnum, std::vector<uint64_t>(primes * n));
  std::vector<std::vector<uint64_t>> a(dnum, std::vector<uint64_t>(primes * n));
  ctx_->pool().parallel_for(dnum * primes, [&](size_t task) {
    const size_t j = task / primes;
    const size_t i = task % primes;
    const Modulus& m = ctx_->prime(i);
    uint64_t* ai = a[j].data() + i * n;
    uint64_t* bi = b[j].data() + i * n;
    detail::sample_uniform(*ctx_, seed, j * 128 + i, i, ai);
    detail::small_to_ntt(*ctx_, errors[j].data(), i, bi);
    const uint64_t* si = sk_.data_.data() + i * n;
    for (size_t c = 0; c < n; ++c) bi[c] = sub_mod(bi[c], mul_mod(ai[c], si[c], m), m.value);
    // Gadget: P on the primes of digit j (and 0 on every other prime), times s'.
    if (i < L && i / K == j) {
      const uint64_t p = ctx_->p_mod(i);
      const uint64_t* fi = from.data() + i * n;
      for (size_t c = 0; c < n; ++c) bi[c] = add_mod(bi[c], mul_mod(fi[c], p, m), m.value);
    }
  });
  for (auto& e : errors) OPENSSL_cleanse(e.data(), e.size() * sizeof(int32_t));
  return KeyAccess::make_switch(ctx_->id(), std::move(b), std::move(a), seed);
}

RelinKeys KeyGenerator::create_relin_keys() const {
  const size_t n = ctx_->n();
  const size_t primes = ctx_->prime_count();
  std::vector<uint64_t> s2(primes * n);
  for (size_t i = 0; i < primes; ++i) {
    const Modulus& m = ctx_->prime(i);
    const uint64_t* si = sk_.data_.data() + i * n;
    for (size_t c = 0; c < n; ++c) s2[i * n + c] = mul_mod(si[c], si[c], m);
  }
  RelinKeys keys(create_switch_key(s2));
  OPENSSL_cleanse(s2.data(), s2.size() * sizeof(uint64_t));
  return keys;
}

GaloisKeys KeyGenerator::create_galois_keys(std::span<const int> steps, bool conjugate) const {
  std::vector<uint32_t> elements;
  for (int st : steps) {
    const uint32_t g = ctx_->galois_element_for_step(st);
    if (g != 1) elements.push_back(g);
  }
  if (conjugate) elements.push_back(ctx_->galois_element_conjugate());
  GaloisKeys keys;
  const size_t n = ctx_->n();
  const size_t primes = ctx_->prime_count();
  for (uint32_t g : elements) {
    if (keys.has(g)) continue;
    const auto& perm = ctx_->galois_permutation(g);
    std::vector<uint64_t> rotated(primes * n);
    for (size_t i = 0; i < primes; ++i) {
      const uint64_t* si = sk_.data_.data() + i * n;
      uint64_t* ri = rotated.data() + i * n;
      for (size_t c = 0; c < n; ++c) ri[c] = si[perm[c]];
    }
    keys.insert(g, create_switch_key(rotated));
    OPENSSL_cleanse(rotated.data(), rotated.size() * sizeof(uint64_t));
  }
  return keys;
}

GaloisKeys KeyGenerator::create_galois_keys() const {
  std::vector<int> steps;
  for (size_t s = 1; s < ctx_->slots(); s <<= 1) {
    steps.push_back(static_cast<int>(s));
    steps.push_back(-static_cast<int>(s));
  }
  return create_galois_keys(steps, true);
}

}  // namespace veil::he

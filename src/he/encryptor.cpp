#include "veil/he/encryptor.hpp"

#include <openssl/crypto.h>

#include "kernels.hpp"
#include "noise.hpp"
#include "ntt.hpp"
#include "sampling.hpp"
#include "thread_pool.hpp"
#include "veil/core/error.hpp"

namespace veil::he {

void check_ciphertext(const HeContext& ctx, const Ciphertext& ct) {
  if (ct.context_id() != ctx.id() || ct.n() != ctx.n())
    throw InvalidArgument("ciphertext belongs to other parameters");
  if (ct.level() > ctx.max_level() || ct.size() < 2 || ct.size() > 3 ||
      ct.data().size() != ct.size() * (ct.level() + 1) * ct.n())
    throw InvalidArgument("ciphertext is malformed");
}

void check_plaintext(const HeContext& ctx, const Plaintext& pt) {
  if (pt.context_id() != ctx.id() || pt.n() != ctx.n())
    throw InvalidArgument("plaintext belongs to other parameters");
  if (pt.level() > ctx.max_level() || pt.data().size() != (pt.level() + 1) * pt.n())
    throw InvalidArgument("plaintext is malformed");
}

Encryptor::Encryptor(ContextPtr ctx, const PublicKey& pk) : ctx_(std::move(ctx)), pk_(pk) {
  if (!ctx_) throw InvalidArgument("Encryptor: null context");
  const size_t size = ctx_->q_count() * ctx_->n();
  if (pk.context_id() != ctx_->id() || pk.b().size() != size || pk.a().size() != size)
    throw InvalidArgument("Encryptor: public key belongs to other parameters");
}

Encryptor::Encryptor(ContextPtr ctx, const SecretKey& sk) : ctx_(std::move(ctx)), sk_(sk) {
  if (!ctx_) throw InvalidArgument("Encryptor: null context");
  if (sk.context_id() != ctx_->id() || sk.data().size() != ctx_->prime_count() * ctx_->n())
    throw InvalidArgument("Encryptor: secret key belongs to other parameters");
}

Ciphertext Encryptor::encrypt(const Plaintext& pt) const {
  if (!pk_) return encrypt_symmetric(pt);
  check_plaintext(*ctx_, pt);
  const size_t n = ctx_->n();
  const size_t level = pt.level();
  // Pooled and uninitialised: the samplers and small_to_ntt write every word.
  PoolVector<int32_t> u(n), e0(n), e1(n);
  detail::Sampler sampler(random_seed());
  sampler.ternary(u);
  sampler.gaussian(e0);
  sampler.gaussian(e1);
  Ciphertext ct(ctx_->id(), n, 2, level, pt.scale(), kNoInit);
  const Isa isa = active_isa();
  ctx_->pool().parallel_for(level + 1, [&](size_t i) {
    const Modulus& m = ctx_->prime(i);
    const uint64_t q = m.value;
    PolyVector tmp(3 * n);
    uint64_t *ui = tmp.data(), *ub = ui + n, *ua = ub + n;
    detail::small_to_ntt(*ctx_, u.data(), i, ui);
    uint64_t* c0 = ct.limb(0, i);
    uint64_t* c1 = ct.limb(1, i);
    detail::small_to_ntt(*ctx_, e0.data(), i, c0);
    detail::small_to_ntt(*ctx_, e1.data(), i, c1);
    const uint64_t* b = pk_->b().data() + i * n;
    const uint64_t* a = pk_->a().data() + i * n;
    const uint64_t* uu = ui;
    kernels::dot2(isa, ub, ua, &uu, &b, &a, 1, nullptr, m, n);
    kernels::add_mod(isa, c0, c0, ub, nullptr, q, n);
    kernels::add_mod(isa, c0, pt.limb(i), c0, nullptr, q, n);
    kernels::add_mod(isa, c1, c1, ua, nullptr, q, n);
    // NTT(u) would decrypt this ciphertext; pooled blocks are reused, not freed.
    OPENSSL_cleanse(tmp.data(), tmp.size() * sizeof(uint64_t));
  });
  // The ephemeral u and the errors decide the plaintext given the ciphertext: wipe them before
  // their blocks go back to the memory pool (measured cost ~1 % of an encryption).
  OPENSSL_cleanse(u.data(), u.size() * sizeof(int32_t));
  OPENSSL_cleanse(e0.data(), e0.size() * sizeof(int32_t));
  OPENSSL_cleanse(e1.data(), e1.size() * sizeof(int32_t));
  ct.set_noise(detail::fresh_noise_public(*ctx_));
  return ct;
}

Ciphertext Encryptor::encrypt_symmetric(const Plaintext& pt) const {
  if (!sk_) throw InvalidArgument("Encryptor: symmetric encryption needs the secret key");
  check_plaintext(*ctx_, pt);
  const size_t n = ctx_->n();
  const size_t level = pt.level();
  const Seed seed = random_seed();
  PoolVector<int32_t> e(n);
  detail::Sampler sampler(random_seed());
  sampler.gaussian(e);
  Ciphertext ct(ctx_->id(), n, 2, level, pt.scale(), kNoInit);
  ctx_->pool().parallel_for(level + 1, [&](size_t i) {
    const Modulus& m = ctx_->prime(i);
    const uint64_t q = m.value;
    uint64_t* c0 = ct.limb(0, i);
    uint64_t* c1 = ct.limb(1, i);
    detail::sample_uniform(*ctx_, seed, i, i, c1);
    detail::small_to_ntt(*ctx_, e.data(), i, c0);
    const uint64_t* s = sk_->limb(i, n);
    const uint64_t* mi = pt.limb(i);
    for (size_t c = 0; c < n; ++c)
      c0[c] = sub_mod(add_mod(c0[c], mi[c], q), mul_mod(c1[c], s[c], m), q);
  });
  OPENSSL_cleanse(e.data(), e.size() * sizeof(int32_t));  // as in encrypt()
  ct.set_seed(seed);
  ct.set_noise(detail::fresh_noise_symmetric(*ctx_));
  return ct;
}

Decryptor::Decryptor(ContextPtr ctx, const SecretKey& sk) : ctx_(std::move(ctx)), sk_(sk) {
  if (!ctx_) throw InvalidArgument("Decryptor: null context");
  if (sk.context_id() != ctx_->id() || sk.data().size() != ctx_->prime_count() * ctx_->n())
    throw InvalidArgument("Decryptor: secret key belongs to other parameters");
}

Plaintext Decryptor::decrypt(const Ciphertext& ct) const {
  check_ciphertext(*ctx_, ct);
  const size_t n = ctx_->n();
  const size_t level = ct.level();
  Plaintext pt(ctx_->id(), n, level, ct.scale(), kNoInit);
  const Isa isa = active_isa();
  ctx_->pool().parallel_for(level + 1, [&](size_t i) {
    const Modulus& m = ctx_->prime(i);
    const uint64_t q = m.value;
    const uint64_t* s = sk_.limb(i, n);
    const uint64_t* c0 = ct.limb(0, i);
    const uint64_t* c1 = ct.limb(1, i);
    uint64_t* out = pt.limb(i);
    kernels::dot2(isa, out, nullptr, &c1, &s, nullptr, 1, nullptr, m, n);
    kernels::add_mod(isa, out, c0, out, nullptr, q, n);
    if (ct.size() == 3) {
      const uint64_t* c2 = ct.limb(2, i);
      for (size_t c = 0; c < n; ++c) {
        const uint64_t s2 = mul_mod(s[c], s[c], m);
        out[c] = add_mod(out[c], mul_mod(c2[c], s2, m), q);
      }
    }
  });
  return pt;
}

}  // namespace veil::he

#include "veil/he/seeded_ciphertext.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "sampling.hpp"
#include "thread_pool.hpp"
#include "veil/core/error.hpp"
#include "veil/he/encryptor.hpp"

namespace veil::he {

SeededCiphertext::SeededCiphertext(const HeContext& ctx, Ciphertext ct) {
  check_ciphertext(ctx, ct);
  if (ct.size() != 2 || !ct.seed())
    throw InvalidArgument("a seeded ciphertext needs a fresh symmetric encryption");
  const size_t n = ctx.n(), limbs = ct.level() + 1;
  std::vector<uint64_t> a(n);
  for (size_t i = 0; i < limbs; ++i) {
    detail::sample_uniform(ctx, *ct.seed(), i, i, a.data());
    if (!std::equal(a.begin(), a.end(), ct.limb(1, i)))
      throw InvalidArgument("a seeded ciphertext's c_1 is not the expansion of its seed");
  }
  context_id_ = ct.context_id();
  n_ = n;
  level_ = ct.level();
  scale_ = ct.scale();
  noise_ = ct.noise();
  seed_ = *ct.seed();
  c0_ = PolyVector(limbs * n);
  std::memcpy(c0_.data(), ct.poly(0), limbs * n * sizeof(uint64_t));
}

void SeededCiphertext::expand(const HeContext& ctx, Ciphertext& out) const {
  if (ctx.id() != context_id_) throw InvalidArgument("seeded ciphertext: other parameters");
  if (out.size() != 2 || out.level() != level_ || out.n() != n_ || out.context_id() != context_id_)
    out = Ciphertext(context_id_, n_, 2, level_, scale_, kNoInit);
  out.set_scale(scale_);
  out.set_noise(noise_);
  const size_t limbs = level_ + 1;
  std::memcpy(out.poly(0), c0_.data(), limbs * n_ * sizeof(uint64_t));
  ctx.pool().parallel_for(
      limbs, [&](size_t i) { detail::sample_uniform(ctx, seed_, i, i, out.limb(1, i)); });
  out.set_seed(seed_);
}

}  // namespace veil::he

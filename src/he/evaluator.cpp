#include "veil/he/evaluator.hpp"

#include <algorithm>
#include <cmath>

#include "kernels.hpp"
#include "noise.hpp"
#include "ntt.hpp"
#include "thread_pool.hpp"
#include "veil/core/error.hpp"
#include "veil/he/encryptor.hpp"

namespace veil::he {

namespace {

constexpr double kScaleTolerance = 1.0 / 65536;

// Per-thread scratch buffers that keep their capacity between calls: fresh multi-megabyte
// allocations in every key switch cost page faults (~7% of a relinearisation at N = 8192).
// Slots: 0 coefficient copy (decompose), 1-2 the inner-product accumulators (keyswitch),
// 3 per-task temporaries (only ever used inside one parallel_for task), 4 rescale input.
// 5 the permuted c1 of a single rotation.
enum ScratchSlot { kCoeff = 0, kAcc0, kAcc1, kTask, kRescale, kGalois, kSlots };

uint64_t* scratch(ScratchSlot slot, size_t words) {
  thread_local PolyVector buffers[kSlots];
  auto& b = buffers[slot];
  if (b.size() < words) b.resize(words);
  return b.data();
}

// Storage of the decomposed digits, reused by relinearize and rotate (not by hoisting, whose
// decomposition outlives the call).
PolyVector& digit_storage() {
  thread_local PolyVector storage;
  return storage;
}

// Copy of `a` restricted to its first level+1 limbs of every component.
Ciphertext drop_copy(const Ciphertext& a, size_t level) {
  Ciphertext out(a.context_id(), a.n(), a.size(), level, a.scale(), kNoInit);
  const size_t limbs = (level + 1) * a.n();
  for (size_t k = 0; k < a.size(); ++k) std::copy(a.poly(k), a.poly(k) + limbs, out.poly(k));
  out.set_noise(a.noise());
  return out;
}

void copy_limb(const uint64_t* x, uint64_t* out, size_t n) { std::copy(x, x + n, out); }

void sub_limb(const uint64_t* x, const uint64_t* y, uint64_t* out, uint64_t q, size_t n) {
  for (size_t c = 0; c < n; ++c) out[c] = sub_mod(x[c], y[c], q);
}

void neg_limb(const uint64_t* x, uint64_t* out, uint64_t q, size_t n) {
  for (size_t c = 0; c < n; ++c) out[c] = neg_mod(x[c], q);
}

// An integral double (|v| < 2^63) modulo m.
uint64_t signed_residue(double v, const Modulus& m) {
  const uint64_t r = reduce64(static_cast<uint64_t>(std::fabs(v)), m);
  return v < 0 ? neg_mod(r, m.value) : r;
}

}  // namespace

Evaluator::Evaluator(ContextPtr ctx) : ctx_(std::move(ctx)) {
  if (!ctx_) throw InvalidArgument("Evaluator: null context");
}

double Evaluator::match_scale(double a, double b) const {
  if (std::fabs(a - b) > kScaleTolerance * std::max(a, b))
    throw InvalidArgument("CKKS: operand scales differ (2^" + std::to_string(std::log2(a)) +
                          " vs 2^" + std::to_string(std::log2(b)) + ")");
  return a;
}

void Evaluator::check_key(const KeySwitchKey& key) const {
  const size_t size = ctx_->prime_count() * ctx_->n();
  if (key.context_id() != ctx_->id() || key.digits() != ctx_->digit_count(ctx_->max_level()))
    throw InvalidArgument("key-switching key belongs to other parameters");
  for (size_t j = 0; j < key.digits(); ++j)
    if (key.b(j).size() != size || key.a(j).size() != size)
      throw InvalidArgument("key-switching key is malformed");
}

// ---------------------------------------------------------------------------------------------
// Additive operations.

// Operands at different levels are read at the lower one directly (limb(k, i) addresses any
// level), which is the modulus drop without its copy. The scale is a's; a component present in
// one operand only is copied (or negated).
Ciphertext Evaluator::add_sub(const Ciphertext& a, const Ciphertext& b, bool subtract) const {
  check_ciphertext(*ctx_, a);
  check_ciphertext(*ctx_, b);
  match_scale(a.scale(), b.scale());
  const size_t n = ctx_->n();
  const size_t level = std::min(a.level(), b.level());
  const size_t size = std::max(a.size(), b.size());
  Ciphertext out(a.context_id(), n, size, level, a.scale(), kNoInit);
  const Isa isa = active_isa();
  ctx_->pool().parallel_for(size * (level + 1), n, [&](size_t t) {
    const size_t k = t / (level + 1), i = t % (level + 1);
    const uint64_t q = ctx_->prime(i).value;
    uint64_t* z = out.limb(k, i);
    if (k < a.size() && k < b.size()) {
      if (subtract) {
        sub_limb(a.limb(k, i), b.limb(k, i), z, q, n);
      } else {
        kernels::add_mod(isa, z, b.limb(k, i), a.limb(k, i), nullptr, q, n);
      }
    } else if (k < a.size()) {
      copy_limb(a.limb(k, i), z, n);
    } else if (subtract) {
      neg_limb(b.limb(k, i), z, q, n);
    } else {
      copy_limb(b.limb(k, i), z, n);
    }
  });
  out.set_noise(detail::add_std(a.noise(), b.noise()));
  return out;
}

void Evaluator::add_sub_inplace(Ciphertext& a, const Ciphertext& b, bool subtract) const {
  check_ciphertext(*ctx_, a);
  check_ciphertext(*ctx_, b);
  if (a.level() > b.level() || b.size() > a.size()) {
    // The result needs other storage anyway: one pass instead of drop/grow and then add.
    a = add_sub(a, b, subtract);
    return;
  }
  match_scale(a.scale(), b.scale());
  const size_t n = ctx_->n();
  const size_t level = a.level();
  a.set_seed(std::nullopt);
  const Isa isa = active_isa();
  ctx_->pool().parallel_for(b.size() * (level + 1), n, [&](size_t t) {
    const size_t k = t / (level + 1), i = t % (level + 1);
    const uint64_t q = ctx_->prime(i).value;
    if (subtract) {
      sub_limb(a.limb(k, i), b.limb(k, i), a.limb(k, i), q, n);
    } else {
      kernels::add_mod(isa, a.limb(k, i), b.limb(k, i), a.limb(k, i), nullptr, q, n);
    }
  });
  a.set_noise(detail::add_std(a.noise(), b.noise()));
}

void Evaluator::add_inplace(Ciphertext& a, const Ciphertext& b) const {
  add_sub_inplace(a, b, false);
}

void Evaluator::sub_inplace(Ciphertext& a, const Ciphertext& b) const {
  add_sub_inplace(a, b, true);
}

Ciphertext Evaluator::add(const Ciphertext& a, const Ciphertext& b) const {
  return add_sub(a, b, false);
}

Ciphertext Evaluator::sub(const Ciphertext& a, const Ciphertext& b) const {
  return add_sub(a, b, true);
}

Ciphertext Evaluator::negate(const Ciphertext& a) const {
  check_ciphertext(*ctx_, a);
  Ciphertext out(a.context_id(), a.n(), a.size(), a.level(), a.scale(), kNoInit);
  const size_t n = ctx_->n();
  ctx_->pool().parallel_for(a.size() * (a.level() + 1), n, [&](size_t t) {
    const size_t k = t / (a.level() + 1), i = t % (a.level() + 1);
    neg_limb(a.limb(k, i), out.limb(k, i), ctx_->prime(i).value, n);
  });
  out.set_noise(a.noise());
  return out;
}

// A plaintext at a lower level drops the ciphertext to it (read in place, as in add_sub).
Ciphertext Evaluator::add_sub_plain(const Ciphertext& a, const Plaintext& p, bool subtract) const {
  check_ciphertext(*ctx_, a);
  check_plaintext(*ctx_, p);
  match_scale(a.scale(), p.scale());
  const size_t n = ctx_->n();
  const size_t level = std::min(a.level(), p.level());
  Ciphertext out(a.context_id(), n, a.size(), level, a.scale(), kNoInit);
  const Isa isa = active_isa();
  ctx_->pool().parallel_for(a.size() * (level + 1), n, [&](size_t t) {
    const size_t k = t / (level + 1), i = t % (level + 1);
    const uint64_t q = ctx_->prime(i).value;
    uint64_t* z = out.limb(k, i);
    if (k > 0) {
      copy_limb(a.limb(k, i), z, n);
    } else if (subtract) {
      sub_limb(a.limb(0, i), p.limb(i), z, q, n);
    } else {
      kernels::add_mod(isa, z, p.limb(i), a.limb(0, i), nullptr, q, n);
    }
  });
  out.set_noise(a.noise());
  return out;
}

Ciphertext Evaluator::add_plain(const Ciphertext& a, const Plaintext& p) const {
  return add_sub_plain(a, p, false);
}

Ciphertext Evaluator::sub_plain(const Ciphertext& a, const Plaintext& p) const {
  return add_sub_plain(a, p, true);
}

Ciphertext Evaluator::add_const(const Ciphertext& a, std::complex<double> value) const {
  check_ciphertext(*ctx_, a);
  const double re = std::nearbyint(value.real() * a.scale());
  const double im = std::nearbyint(value.imag() * a.scale());
  const double limit = std::ldexp(1.0, static_cast<int>(ctx_->q_bits(a.level())) - 2);
  if (!(std::fabs(re) < limit) || !(std::fabs(im) < limit) || std::fabs(re) >= 9.2e18 ||
      std::fabs(im) >= 9.2e18)
    throw InvalidArgument("add_const: constant * scale out of range");
  const size_t n = ctx_->n();
  Ciphertext out(a.context_id(), n, a.size(), a.level(), a.scale(), kNoInit);
  ctx_->pool().parallel_for(a.level() + 1, a.size() * n, [&](size_t i) {
    const Modulus& m = ctx_->prime(i);
    const uint64_t r = signed_residue(re, m), s = signed_residue(im, m);
    const auto& h = ctx_->half_monomial(i);
    const uint64_t* x = a.limb(0, i);
    uint64_t* z = out.limb(0, i);
    if (s == 0) {  // a real constant: no product with X^(n/2) per coefficient
      for (size_t c = 0; c < n; ++c) z[c] = add_mod(x[c], r, m.value);
    } else {
      for (size_t c = 0; c < n; ++c)
        z[c] = add_mod(x[c], add_mod(r, mul_mod(s, h[c], m), m.value), m.value);
    }
    for (size_t k = 1; k < a.size(); ++k) copy_limb(a.limb(k, i), out.limb(k, i), n);
  });
  out.set_noise(a.noise());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Multiplicative operations.

Ciphertext Evaluator::multiply_plain(const Ciphertext& a, const Plaintext& p) const {
  check_ciphertext(*ctx_, a);
  check_plaintext(*ctx_, p);
  const size_t n = ctx_->n();
  const size_t level = std::min(a.level(), p.level());  // modulus drop, read in place
  const double scale = a.scale() * p.scale();
  if (std::log2(scale) >= ctx_->q_bits(level) - 1)
    throw InvalidArgument("multiply_plain: result scale exceeds the modulus; rescale first");
  Ciphertext out(a.context_id(), n, a.size(), level, scale, kNoInit);
  const Isa isa = active_isa();
  ctx_->pool().parallel_for(a.size() * (level + 1), n, [&](size_t t) {
    const size_t k = t / (level + 1), i = t % (level + 1);
    const uint64_t* x = a.limb(k, i);
    const uint64_t* y = p.limb(i);
    kernels::dot2(isa, out.limb(k, i), nullptr, &x, &y, nullptr, 1, nullptr, ctx_->prime(i), n);
  });
  const double rounding = std::sqrt(static_cast<double>(n) / 12.0);
  out.set_noise(detail::add_std(a.noise() * p.scale(), a.scale() * rounding));
  return out;
}

Ciphertext Evaluator::multiply_const(const Ciphertext& a, std::complex<double> value,
                                     double const_scale) const {
  check_ciphertext(*ctx_, a);
  if (const_scale == 0)
    const_scale = a.level() > 0 ? static_cast<double>(ctx_->prime(a.level()).value)
                                : ctx_->parameters().default_scale;
  if (!(const_scale >= 1.0) || !std::isfinite(const_scale))
    throw InvalidArgument("multiply_const: bad constant scale");
  const double re = std::nearbyint(value.real() * const_scale);
  const double im = std::nearbyint(value.imag() * const_scale);
  if (!(std::fabs(re) < 9.2e18) || !(std::fabs(im) < 9.2e18))
    throw InvalidArgument("multiply_const: constant * scale out of range");
  const size_t n = ctx_->n();
  const size_t level = a.level();
  const double scale = a.scale() * const_scale;
  if (std::log2(scale) >= ctx_->q_bits(level) - 1)
    throw InvalidArgument("multiply_const: result scale exceeds the modulus; rescale first");
  Ciphertext out(a.context_id(), n, a.size(), level, scale, kNoInit);
  ctx_->pool().parallel_for(level + 1, a.size() * n, [&](size_t i) {
    const Modulus& m = ctx_->prime(i);
    const uint64_t r = signed_residue(re, m), s = signed_residue(im, m);
    const auto& h = ctx_->half_monomial(i);
    for (size_t k = 0; k < a.size(); ++k) {
      const uint64_t* x = a.limb(k, i);
      uint64_t* z = out.limb(k, i);
      if (s == 0) {
        const uint64_t rs = shoup(r, m.value);
        for (size_t c = 0; c < n; ++c) z[c] = mul_shoup(x[c], r, rs, m.value);
      } else {
        for (size_t c = 0; c < n; ++c)
          z[c] = mul_mod(x[c], add_mod(r, mul_mod(s, h[c], m), m.value), m);
      }
    }
  });
  out.set_noise(detail::add_std(a.noise() * std::abs(value) * const_scale, a.scale() * 0.5));
  return out;
}

Ciphertext Evaluator::multiply_integer(const Ciphertext& a, int64_t k) const {
  check_ciphertext(*ctx_, a);
  const size_t n = ctx_->n();
  Ciphertext out(a.context_id(), n, a.size(), a.level(), a.scale(), kNoInit);
  const uint64_t mag = k < 0 ? static_cast<uint64_t>(-(k + 1)) + 1 : static_cast<uint64_t>(k);
  ctx_->pool().parallel_for(a.level() + 1, a.size() * n, [&](size_t i) {
    const Modulus& m = ctx_->prime(i);
    uint64_t r = reduce64(mag, m);
    if (k < 0) r = neg_mod(r, m.value);
    const uint64_t rs = shoup(r, m.value);
    for (size_t p = 0; p < a.size(); ++p) {
      const uint64_t* x = a.limb(p, i);
      uint64_t* z = out.limb(p, i);
      for (size_t c = 0; c < n; ++c) z[c] = mul_shoup(x[c], r, rs, m.value);
    }
  });
  out.set_noise(a.noise() * static_cast<double>(mag));
  return out;
}

Ciphertext Evaluator::multiply(const Ciphertext& a_in, const Ciphertext& b_in) const {
  check_ciphertext(*ctx_, a_in);
  check_ciphertext(*ctx_, b_in);
  if (a_in.size() != 2 || b_in.size() != 2)
    throw InvalidArgument("multiply: relinearize the operands first");
  const bool same = &a_in == &b_in;
  // A higher operand is read at the lower level in place (modulus drop without a copy).
  const size_t level = std::min(a_in.level(), b_in.level());
  const Ciphertext* a = &a_in;
  const Ciphertext* b = &b_in;
  const double scale = a->scale() * b->scale();
  if (std::log2(scale) >= ctx_->q_bits(level) - 1)
    throw InvalidArgument("multiply: result scale exceeds the modulus; rescale first");
  const size_t n = ctx_->n();
  Ciphertext out(a->context_id(), n, 3, level, scale, kNoInit);
  const Isa isa = active_isa();
  ctx_->pool().parallel_for(level + 1, 4 * n, [&](size_t i) {
    const Modulus& m = ctx_->prime(i);
    const uint64_t *a0 = a->limb(0, i), *a1 = a->limb(1, i);
    const uint64_t *b0 = b->limb(0, i), *b1 = b->limb(1, i);
    uint64_t *d0 = out.limb(0, i), *d1 = out.limb(1, i), *d2 = out.limb(2, i);
    if (kernels::vector_products(isa, m.value)) {
      // Vector products (IFMA, or exact doubles on AVX2); the same for squaring (b = a).
      const uint64_t* a01[2] = {a0, a1};
      const uint64_t* b10[2] = {b1, b0};
      kernels::dot2(isa, d0, nullptr, &a0, &b0, nullptr, 1, nullptr, m, n);
      kernels::dot2(isa, d1, nullptr, a01, b10, nullptr, 2, nullptr, m, n);
      kernels::dot2(isa, d2, nullptr, &a1, &b1, nullptr, 1, nullptr, m, n);
    } else if (same) {
      for (size_t c = 0; c < n; ++c) {
        d0[c] = mul_mod(a0[c], a0[c], m);
        const uint64_t x = mul_mod(a0[c], a1[c], m);
        d1[c] = add_mod(x, x, m.value);
        d2[c] = mul_mod(a1[c], a1[c], m);
      }
    } else {
      for (size_t c = 0; c < n; ++c) {
        d0[c] = mul_mod(a0[c], b0[c], m);
        d1[c] = reduce128(static_cast<u128>(a0[c]) * b1[c] + static_cast<u128>(a1[c]) * b0[c], m);
        d2[c] = mul_mod(a1[c], b1[c], m);
      }
    }
  });
  const double na = a->noise(), nb = b->noise();
  // Slot values assumed bounded by 1 in magnitude (see precision.hpp).
  out.set_noise(std::sqrt(std::pow(a->scale() * nb, 2) + std::pow(b->scale() * na, 2) +
                          std::pow(na * nb, 2)));
  return out;
}

Ciphertext Evaluator::square(const Ciphertext& a) const { return multiply(a, a); }

Ciphertext Evaluator::multiply_relin(const Ciphertext& a, const Ciphertext& b,
                                     const RelinKeys& rk) const {
  return relinearize(multiply(a, b), rk);
}

// ---------------------------------------------------------------------------------------------
// Key switching: hybrid decomposition with K special primes (see context.hpp).

size_t Evaluator::ext_prime(size_t level, size_t pos) const {
  return pos <= level ? pos : ctx_->q_count() + (pos - level - 1);
}

Evaluator::Decomposed Evaluator::decompose(const uint64_t* poly, size_t level,
                                           PolyVector storage) const {
  const size_t n = ctx_->n();
  const size_t K = ctx_->special_count();
  const Isa isa = active_isa();
  Decomposed d;
  d.level = level;
  d.digits = ctx_->digit_count(level);
  d.ext = level + 1 + K;
  d.data = std::move(storage);
  if (d.data.size() < d.digits * d.ext * n) d.data.resize(d.digits * d.ext * n);
  uint64_t* coeff = scratch(kCoeff, (level + 1) * n);
  auto& pool = ctx_->pool();
  pool.parallel_for(level + 1, [&](size_t i) {
    uint64_t* x = coeff + i * n;
    std::copy(poly + i * n, poly + (i + 1) * n, x);
    ctx_->ntt(i).inverse(x);
    if (K > 1) {
      // y_i = [x_i * (B/b_i)^-1]_{b_i}, the first step of the fast base conversion.
      const size_t j = i / K;
      const BaseConverter& bc = ctx_->digit_converter(j, std::min(K, level + 1 - j * K));
      kernels::sub_mul_const(isa, x, x, nullptr, bc.inv_punct[i - j * K], ctx_->prime(i), n);
    }
  });
  pool.parallel_for(d.digits * d.ext, [&](size_t task) {
    const size_t j = task / d.ext;
    const size_t pos = task % d.ext;
    const size_t start = j * K;
    const size_t cnt = std::min(K, level + 1 - start);
    uint64_t* out = d.data.data() + task * n;
    if (pos <= level && pos >= start && pos < start + cnt) {
      // The digit is congruent to the input modulo its own primes: reuse the NTT form.
      std::copy(poly + pos * n, poly + (pos + 1) * n, out);
      return;
    }
    const size_t pi = ext_prime(level, pos);
    const Modulus& t = ctx_->prime(pi);
    if (cnt == 1) {
      // Centered lift of the digit halves the key-switching noise.
      kernels::lift(isa, out, coeff + start * n, ctx_->prime(start).value, true, t, n);
    } else {
      const BaseConverter& bc = ctx_->digit_converter(j, cnt);
      for (size_t c = 0; c < n; ++c) {
        u128 acc = 0;
        for (size_t k = 0; k < cnt; ++k)
          acc += static_cast<u128>(coeff[(start + k) * n + c]) * bc.punct[pi][k];
        out[c] = reduce128(acc, t);
      }
    }
    ctx_->ntt(pi).forward(out);
  });
  return d;
}

void Evaluator::keyswitch(const Decomposed& d, const KeySwitchKey& key, const uint32_t* perm,
                          uint64_t* ks0, uint64_t* ks1) const {
  const size_t n = ctx_->n();
  const size_t K = ctx_->special_count();
  const size_t level = d.level;
  const Isa isa = active_isa();
  auto& pool = ctx_->pool();
  // Inner product over the digits, limb by limb, with lazy reduction (kernels::dot2).
  uint64_t* t0 = scratch(kAcc0, d.ext * n);
  uint64_t* t1 = scratch(kAcc1, d.ext * n);
  pool.parallel_for(d.ext, [&](size_t pos) {
    const size_t pi = ext_prime(level, pos);
    std::vector<const uint64_t*> dp(d.digits), bp(d.digits), ap(d.digits);
    for (size_t j = 0; j < d.digits; ++j) {
      dp[j] = d.data.data() + (j * d.ext + pos) * n;
      bp[j] = key.b(j).data() + pi * n;
      ap[j] = key.a(j).data() + pi * n;
    }
    kernels::dot2(isa, t0 + pos * n, t1 + pos * n, dp.data(), bp.data(), ap.data(), d.digits, perm,
                  ctx_->prime(pi), n);
  });
  // ModDown by P: (t - FastBConv_P->Q([t]_P)) * P^-1.
  uint64_t* ts[2] = {t0, t1};
  uint64_t* outs[2] = {ks0, ks1};
  pool.parallel_for(2 * K, [&](size_t task) {
    const size_t w = task / K, k = task % K;
    const size_t pi = ctx_->q_count() + k;
    uint64_t* x = ts[w] + (level + 1 + k) * n;
    ctx_->ntt(pi).inverse(x);
    if (K > 1) {
      const BaseConverter& bc = ctx_->special_converter();
      kernels::sub_mul_const(isa, x, x, nullptr, bc.inv_punct[k], ctx_->prime(pi), n);
    }
  });
  pool.parallel_for(2 * (level + 1), [&](size_t task) {
    const size_t w = task / (level + 1), i = task % (level + 1);
    const Modulus& m = ctx_->prime(i);
    uint64_t* conv = scratch(kTask, n);
    if (K == 1) {
      kernels::lift(isa, conv, ts[w] + (level + 1) * n, ctx_->prime(ctx_->q_count()).value, true, m,
                    n);
    } else {
      const BaseConverter& bc = ctx_->special_converter();
      for (size_t c = 0; c < n; ++c) {
        u128 acc = 0;
        for (size_t k = 0; k < K; ++k)
          acc += static_cast<u128>(ts[w][(level + 1 + k) * n + c]) * bc.punct[i][k];
        conv[c] = reduce128(acc, m);
      }
    }
    ctx_->ntt(i).forward(conv);
    kernels::sub_mul_const(isa, outs[w] + i * n, ts[w] + i * n, conv, ctx_->p_inv(i), m, n);
  });
}

Ciphertext Evaluator::relinearize(const Ciphertext& a, const RelinKeys& rk) const {
  check_ciphertext(*ctx_, a);
  if (a.size() == 2) return a;
  check_key(rk.key());
  const size_t n = ctx_->n();
  const size_t level = a.level();
  const Isa isa = active_isa();
  Decomposed d = decompose(a.poly(2), level, std::move(digit_storage()));
  Ciphertext out(a.context_id(), n, 2, level, a.scale(), kNoInit);
  keyswitch(d, rk.key(), nullptr, out.poly(0), out.poly(1));
  digit_storage() = std::move(d.data);
  ctx_->pool().parallel_for(2 * (level + 1), [&](size_t t) {
    const size_t k = t / (level + 1), i = t % (level + 1);
    kernels::add_mod(isa, out.limb(k, i), a.limb(k, i), out.limb(k, i), nullptr,
                     ctx_->prime(i).value, n);
  });
  out.set_noise(std::sqrt(a.noise() * a.noise() + detail::keyswitch_var(*ctx_, level)));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rescale and modulus drop.

Ciphertext Evaluator::rescale(const Ciphertext& a) const {
  check_ciphertext(*ctx_, a);
  const size_t level = a.level();
  if (level == 0) throw InvalidArgument("rescale: no level left");
  const size_t n = ctx_->n();
  const Isa isa = active_isa();
  const Modulus& ql = ctx_->prime(level);
  uint64_t* last = scratch(kRescale, a.size() * n);
  ctx_->pool().parallel_for(a.size(), [&](size_t k) {
    uint64_t* v = last + k * n;
    std::copy(a.limb(k, level), a.limb(k, level) + n, v);
    ctx_->ntt(level).inverse(v);
  });
  Ciphertext out(a.context_id(), n, a.size(), level - 1, a.scale() / ql.value, kNoInit);
  ctx_->pool().parallel_for(a.size() * level, [&](size_t t) {
    const size_t k = t / level, i = t % level;
    const Modulus& m = ctx_->prime(i);
    uint64_t* r = scratch(kTask, n);
    // Subtracting the centered representative of [x]_{q_l} makes the division by q_l round to
    // the nearest integer (the same as adding q_l/2 before and subtracting it after the lift).
    kernels::lift(isa, r, last + k * n, ql.value, true, m, n);
    ctx_->ntt(i).forward(r);
    kernels::sub_mul_const(isa, out.limb(k, i), a.limb(k, i), r, ctx_->inv_q_last(level, i), m, n);
  });
  const double qd = static_cast<double>(ql.value);
  out.set_noise(std::sqrt(std::pow(a.noise() / qd, 2) + detail::rounding_var(*ctx_)));
  return out;
}

Ciphertext Evaluator::mod_drop_to(const Ciphertext& a, size_t level) const {
  check_ciphertext(*ctx_, a);
  if (level > a.level()) throw InvalidArgument("mod_drop_to: cannot raise the level");
  return drop_copy(a, level);
}

Plaintext Evaluator::mod_drop_to(const Plaintext& p, size_t level) const {
  check_plaintext(*ctx_, p);
  if (level > p.level()) throw InvalidArgument("mod_drop_to: cannot raise the level");
  Plaintext out(p.context_id(), p.n(), level, p.scale(), kNoInit);
  std::copy(p.data().begin(), p.data().begin() + (level + 1) * p.n(), out.data().begin());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Galois automorphisms.

Ciphertext Evaluator::galois_with(const Ciphertext& a, const Decomposed& d, uint32_t g,
                                  const KeySwitchKey& key, bool permuted) const {
  const size_t n = ctx_->n();
  const size_t level = a.level();
  const auto& perm = ctx_->galois_permutation(g);
  Ciphertext out(a.context_id(), n, 2, level, a.scale(), kNoInit);
  keyswitch(d, key, permuted ? nullptr : perm.data(), out.poly(0), out.poly(1));
  const Isa isa = active_isa();
  ctx_->pool().parallel_for(level + 1, [&](size_t i) {
    kernels::add_mod(isa, out.limb(0, i), a.limb(0, i), out.limb(0, i), perm.data(),
                     ctx_->prime(i).value, n);
  });
  out.set_noise(std::sqrt(a.noise() * a.noise() + detail::keyswitch_var(*ctx_, level)));
  return out;
}

Ciphertext Evaluator::apply_galois(const Ciphertext& a, uint32_t g, const GaloisKeys& gk) const {
  check_ciphertext(*ctx_, a);
  if (a.size() != 2) throw InvalidArgument("rotate: relinearize first");
  const KeySwitchKey& key = gk.key(g);
  check_key(key);
  // One rotation permutes c1 before decomposing it (as SEAL does), so that the inner product
  // reads every digit limb in order instead of gathering digits x limbs words through the
  // permutation: level + 1 gathered limbs instead of digits * (level + 1 + K). The result is the
  // same bit for bit: in the NTT domain the automorphism is a permutation of the evaluation
  // points, in coefficients a signed permutation, and the centred digit lift commutes with
  // negation (lift(s - x) = -lift(x) for an odd modulus s).
  const size_t n = ctx_->n(), level = a.level();
  const uint32_t* perm = ctx_->galois_permutation(g).data();
  uint64_t* c1 = scratch(kGalois, (level + 1) * n);
  ctx_->pool().parallel_for(level + 1, [&](size_t i) {
    const uint64_t* x = a.limb(1, i);
    uint64_t* y = c1 + i * n;
    for (size_t c = 0; c < n; ++c) y[c] = x[perm[c]];
  });
  Decomposed d = decompose(c1, level, std::move(digit_storage()));
  Ciphertext out = galois_with(a, d, g, key, true);
  digit_storage() = std::move(d.data);
  return out;
}

Ciphertext Evaluator::rotate(const Ciphertext& a, int step, const GaloisKeys& gk) const {
  const int64_t slots = static_cast<int64_t>(ctx_->slots());
  int64_t r = step % slots;
  if (r < 0) r += slots;
  if (r == 0) {
    check_ciphertext(*ctx_, a);
    return a;
  }
  const uint32_t g = ctx_->galois_element_for_step(static_cast<int>(r));
  if (gk.has(g)) return apply_galois(a, g, gk);
  // Compose left rotations by powers of two.
  Ciphertext out = a;
  for (int64_t bit = 1; bit < slots; bit <<= 1) {
    if (!(r & bit)) continue;
    const uint32_t gb = ctx_->galois_element_for_step(static_cast<int>(bit));
    if (!gk.has(gb))
      throw InvalidArgument("rotate: no Galois key for step " + std::to_string(step));
    out = apply_galois(out, gb, gk);
  }
  return out;
}

Ciphertext Evaluator::conjugate(const Ciphertext& a, const GaloisKeys& gk) const {
  return apply_galois(a, ctx_->galois_element_conjugate(), gk);
}

std::vector<Ciphertext> Evaluator::rotate_hoisted(const Ciphertext& a, std::span<const int> steps,
                                                  const GaloisKeys& gk) const {
  check_ciphertext(*ctx_, a);
  if (a.size() != 2) throw InvalidArgument("rotate: relinearize first");
  std::vector<uint32_t> elements;
  for (int s : steps) {
    const uint32_t g = ctx_->galois_element_for_step(s);
    if (g != 1) check_key(gk.key(g));
    elements.push_back(g);
  }
  const Decomposed d = decompose(a.poly(1), a.level(), {});
  std::vector<Ciphertext> out;
  out.reserve(steps.size());
  for (uint32_t g : elements) {
    if (g == 1) {
      out.push_back(a);
    } else {
      out.push_back(galois_with(a, d, g, gk.key(g), false));
    }
  }
  return out;
}

Ciphertext Evaluator::sum_slots(const Ciphertext& a, size_t count, const GaloisKeys& gk) const {
  if (count == 0 || (count & (count - 1)) != 0 || count > ctx_->slots())
    throw InvalidArgument("sum_slots: count must be a power of two <= slots");
  Ciphertext acc = a;
  for (size_t s = 1; s < count; s <<= 1) add_inplace(acc, rotate(acc, static_cast<int>(s), gk));
  return acc;
}

}  // namespace veil::he

#include "veil/he/serialization.hpp"

#include <openssl/crypto.h>

#include <cmath>
#include <cstring>

#include "ntt.hpp"
#include "sampling.hpp"
#include "thread_pool.hpp"
#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"
#include "veil/he/encryptor.hpp"

namespace veil::he {

namespace {

constexpr char kMagic[8] = {'V', 'E', 'I', 'L', 'C', 'K', 'K', 'S'};
constexpr size_t kHeaderSize = 48;

// n residues, each checked to be below q.
void read_residues(ByteReader& r, uint64_t* out, size_t n, uint64_t q) {
  const uint8_t* p = r.bytes(8 * n).data();
  for (size_t i = 0; i < n; ++i) {
    const uint64_t v = load_le<uint64_t>(p + 8 * i);
    if (v >= q) r.fail("coefficient not below its modulus");
    out[i] = v;
  }
}

void write_header(ByteWriter& w, ObjectKind kind, const ParamsHash& hash) {
  w.bytes(std::string_view(kMagic, 8));
  w.u16(kSerialVersion);
  w.u16(static_cast<uint16_t>(kind));
  w.u32(0);
  w.bytes(hash);
}

ParamsHash read_header(ByteReader& r, ObjectKind kind) {
  if (std::memcmp(r.bytes(8).data(), kMagic, 8) != 0)
    throw MalformedInput("CKKS object: bad magic");
  const uint16_t version = r.u16();
  if (version != kSerialVersion)
    throw MalformedInput("CKKS object: unsupported version " + std::to_string(version));
  const uint16_t k = r.u16();
  if (k != static_cast<uint16_t>(kind)) throw MalformedInput("CKKS object: wrong object kind");
  if (r.u32() != 0) throw MalformedInput("CKKS object: reserved field set");
  ParamsHash h;
  r.read(h);
  return h;
}

// A reader past the header of an object of `kind` made under ctx's parameters.
ByteReader open_object(const HeContext& ctx, std::span<const uint8_t> bytes, ObjectKind kind) {
  ByteReader r(bytes, "CKKS object");
  if (read_header(r, kind) != ctx.hash())
    throw IntegrityError("CKKS object was made under other parameters (hash mismatch)");
  return r;
}

// The level and scale of a ciphertext or plaintext: the scale must stay below the modulus.
void check_level_and_scale(const HeContext& ctx, uint32_t level, double scale,
                           const std::string& what) {
  if (level > ctx.max_level()) throw MalformedInput(what + ": level out of range");
  if (!std::isfinite(scale) || scale < 1.0 || std::log2(scale) >= ctx.q_bits(level))
    throw MalformedInput(what + ": scale out of range");
}

// The 16-byte seed that stands for a uniform polynomial, present when `compressed`.
std::optional<Seed> read_seed(ByteReader& r, bool compressed) {
  if (!compressed) return std::nullopt;
  Seed s;
  r.read(s);
  return s;
}

void write_rns(ByteWriter& w, const uint64_t* data, size_t limbs, size_t n) {
  w.array<uint64_t>({data, limbs * n});
}

// Residues for the given limbs (prime indices `prime(i)`), validated.
template <typename PrimeOf>
void read_rns(ByteReader& r, const HeContext& ctx, uint64_t* out, size_t limbs, PrimeOf prime) {
  const size_t n = ctx.n();
  for (size_t i = 0; i < limbs; ++i) read_residues(r, out + i * n, n, ctx.prime(prime(i)).value);
}

void write_switch_key(ByteWriter& w, const HeContext& ctx, const KeySwitchKey& k) {
  const size_t n = ctx.n(), primes = ctx.prime_count();
  w.u8(k.seed() ? 1 : 0);
  w.u32(static_cast<uint32_t>(k.digits()));
  if (k.seed()) w.bytes(*k.seed());
  for (size_t j = 0; j < k.digits(); ++j) write_rns(w, k.b(j).data(), primes, n);
  if (!k.seed())
    for (size_t j = 0; j < k.digits(); ++j) write_rns(w, k.a(j).data(), primes, n);
}

KeySwitchKey read_switch_key(ByteReader& r, const HeContext& ctx) {
  const size_t n = ctx.n(), primes = ctx.prime_count();
  const uint8_t compressed = r.u8();
  if (compressed > 1) throw MalformedInput("CKKS key: bad compression flag");
  const uint32_t digits = r.u32();
  if (digits != ctx.digit_count(ctx.max_level()))
    throw MalformedInput("CKKS key: wrong number of digits");
  const uint64_t poly_bytes = 8ull * primes * n;
  r.need((compressed ? 16 : 0) + poly_bytes * digits * (compressed ? 1 : 2));
  const std::optional<Seed> seed = read_seed(r, compressed);
  auto all = [](size_t i) { return i; };
  std::vector<std::vector<uint64_t>> b(digits, std::vector<uint64_t>(primes * n));
  std::vector<std::vector<uint64_t>> a(digits, std::vector<uint64_t>(primes * n));
  for (auto& bj : b) read_rns(r, ctx, bj.data(), primes, all);
  if (compressed) {
    for (size_t j = 0; j < digits; ++j)
      for (size_t i = 0; i < primes; ++i)
        detail::sample_uniform(ctx, *seed, j * 128 + i, i, a[j].data() + i * n);
  } else {
    for (auto& aj : a) read_rns(r, ctx, aj.data(), primes, all);
  }
  return KeyAccess::make_switch(ctx.id(), std::move(b), std::move(a), seed);
}

}  // namespace

std::vector<uint8_t> serialize_parameters(const HeContext& ctx) {
  ByteWriter w;
  write_header(w, ObjectKind::kParameters, ctx.hash());
  const auto& p = ctx.parameters();
  w.u32(static_cast<uint32_t>(ctx.n()));
  w.u32(static_cast<uint32_t>(ctx.q_count()));
  w.u32(static_cast<uint32_t>(ctx.special_count()));
  w.u16(static_cast<uint16_t>(p.security));
  w.u8(p.insecure_allow_for_testing_only ? 1 : 0);
  w.u8(0);
  w.f64(p.default_scale);
  for (uint64_t q : ctx.prime_values()) w.u64(q);
  return w.take();
}

ContextPtr load_context(std::span<const uint8_t> bytes, bool allow_insecure, int threads) {
  ByteReader r(bytes, "CKKS object");
  const ParamsHash claimed = read_header(r, ObjectKind::kParameters);
  CkksParameters p;
  const uint32_t n = r.u32();
  const uint32_t q_count = r.u32();
  const uint32_t k_count = r.u32();
  const uint16_t security = r.u16();
  const uint8_t insecure = r.u8();
  if (r.u8() != 0 || insecure > 1) throw MalformedInput("CKKS parameters: bad flags");
  p.default_scale = r.f64();
  if (q_count < 1 || k_count < 1 || q_count + k_count > 64)
    throw MalformedInput("CKKS parameters: bad prime counts");
  if (security != 128 && security != 192 && security != 256)
    throw MalformedInput("CKKS parameters: bad security level");
  r.need(8ull * (q_count + k_count));
  for (uint32_t i = 0; i < q_count + k_count; ++i) p.primes.push_back(r.u64());
  r.expect_end();
  if (insecure && !allow_insecure)
    throw InvalidArgument("CKKS parameters are marked insecure (test-only); refusing to load");
  p.poly_degree = n;
  p.special_primes = k_count;
  p.security = static_cast<SecurityLevel>(security);
  p.insecure_allow_for_testing_only = insecure != 0;
  ContextPtr ctx;
  try {
    ctx = HeContext::create(p, threads);
  } catch (const InvalidArgument& e) {
    throw MalformedInput(std::string("CKKS parameters: ") + e.what());
  }
  if (ctx->hash() != claimed) throw IntegrityError("CKKS parameters: hash does not match");
  return ctx;
}

std::vector<uint8_t> serialize(const HeContext& ctx, const Ciphertext& ct) {
  check_ciphertext(ctx, ct);
  const size_t n = ctx.n(), limbs = ct.level() + 1;
  // Compress only if c_1 is still exactly the expansion of the seed.
  bool compressed = false;
  if (ct.seed() && ct.size() == 2) {
    compressed = true;
    std::vector<uint64_t> a(n);
    for (size_t i = 0; i < limbs && compressed; ++i) {
      detail::sample_uniform(ctx, *ct.seed(), i, i, a.data());
      compressed = std::equal(a.begin(), a.end(), ct.limb(1, i));
    }
  }
  ByteWriter w;
  write_header(w, ObjectKind::kCiphertext, ctx.hash());
  w.u8(static_cast<uint8_t>(ct.size()));
  w.u8(compressed ? 1 : 0);
  w.u16(0);
  w.u32(static_cast<uint32_t>(ct.level()));
  w.f64(ct.scale());
  w.f64(ct.noise());
  if (compressed) w.bytes(*ct.seed());
  for (size_t k = 0; k < ct.size(); ++k) {
    if (compressed && k == 1) continue;
    write_rns(w, ct.poly(k), limbs, n);
  }
  return w.take();
}

Ciphertext load_ciphertext(const HeContext& ctx, std::span<const uint8_t> bytes) {
  ByteReader r = open_object(ctx, bytes, ObjectKind::kCiphertext);
  const uint8_t size = r.u8();
  const uint8_t compressed = r.u8();
  if (r.u16() != 0) throw MalformedInput("CKKS ciphertext: reserved field set");
  const uint32_t level = r.u32();
  const double scale = r.f64();
  const double noise = r.f64();
  if (size < 2 || size > 3 || compressed > 1 || (compressed && size != 2))
    throw MalformedInput("CKKS ciphertext: bad size or flags");
  check_level_and_scale(ctx, level, scale, "CKKS ciphertext");
  if (!std::isfinite(noise) || noise < 0) throw MalformedInput("CKKS ciphertext: bad noise");
  const size_t n = ctx.n(), limbs = level + 1;
  const uint64_t stored = size - compressed;
  r.need((compressed ? 16 : 0) + 8ull * stored * limbs * n);
  const std::optional<Seed> seed = read_seed(r, compressed);
  // Every word is read or expanded from the seed below (or the load throws).
  Ciphertext ct(ctx.id(), n, size, level, scale, kNoInit);
  for (size_t k = 0; k < size; ++k) {
    if (compressed && k == 1) {
      for (size_t i = 0; i < limbs; ++i) detail::sample_uniform(ctx, *seed, i, i, ct.limb(1, i));
      continue;
    }
    read_rns(r, ctx, ct.poly(k), limbs, [](size_t i) { return i; });
  }
  r.expect_end();
  ct.set_noise(noise);
  ct.set_seed(seed);
  return ct;
}

std::vector<uint8_t> serialize(const HeContext& ctx, const Plaintext& pt) {
  check_plaintext(ctx, pt);
  ByteWriter w;
  write_header(w, ObjectKind::kPlaintext, ctx.hash());
  w.u32(static_cast<uint32_t>(pt.level()));
  w.f64(pt.scale());
  write_rns(w, pt.data().data(), pt.level() + 1, ctx.n());
  return w.take();
}

Plaintext load_plaintext(const HeContext& ctx, std::span<const uint8_t> bytes) {
  ByteReader r = open_object(ctx, bytes, ObjectKind::kPlaintext);
  const uint32_t level = r.u32();
  const double scale = r.f64();
  check_level_and_scale(ctx, level, scale, "CKKS plaintext");
  r.need(8ull * (level + 1) * ctx.n());
  Plaintext pt(ctx.id(), ctx.n(), level, scale, kNoInit);
  read_rns(r, ctx, pt.data().data(), level + 1, [](size_t i) { return i; });
  r.expect_end();
  return pt;
}

std::vector<uint8_t> serialize(const HeContext& ctx, const SecretKey& sk) {
  if (sk.context_id() != ctx.id()) throw InvalidArgument("secret key belongs to other parameters");
  ByteWriter w;
  write_header(w, ObjectKind::kSecretKey, ctx.hash());
  write_rns(w, sk.data().data(), ctx.prime_count(), ctx.n());
  return w.take();
}

SecretKey load_secret_key(const HeContext& ctx, std::span<const uint8_t> bytes) {
  ByteReader r = open_object(ctx, bytes, ObjectKind::kSecretKey);
  const size_t n = ctx.n(), primes = ctx.prime_count();
  r.need(8ull * primes * n);
  std::vector<uint64_t> data(primes * n);
  read_rns(r, ctx, data.data(), primes, [](size_t i) { return i; });
  r.expect_end();
  // The secret must be ternary and identical modulo every prime.
  std::vector<uint64_t> tmp(n), first(n);
  for (size_t i = 0; i < primes; ++i) {
    std::copy(data.begin() + i * n, data.begin() + (i + 1) * n, tmp.begin());
    ctx.ntt(i).inverse(tmp.data());
    const uint64_t q = ctx.prime(i).value;
    for (size_t c = 0; c < n; ++c) {
      const uint64_t v = tmp[c];
      const uint64_t t = v == 0 ? 0 : v == 1 ? 1 : v == q - 1 ? 2 : 3;
      if (t == 3 || (i > 0 && first[c] != t)) {
        OPENSSL_cleanse(tmp.data(), tmp.size() * sizeof(uint64_t));
        OPENSSL_cleanse(first.data(), first.size() * sizeof(uint64_t));
        OPENSSL_cleanse(data.data(), data.size() * sizeof(uint64_t));
        throw MalformedInput(t == 3 ? "CKKS secret key: not ternary"
                                    : "CKKS secret key: residues disagree");
      }
      if (i == 0) first[c] = t;
    }
  }
  // The coefficient form of the secret is not kept anywhere.
  OPENSSL_cleanse(tmp.data(), tmp.size() * sizeof(uint64_t));
  OPENSSL_cleanse(first.data(), first.size() * sizeof(uint64_t));
  return KeyAccess::make_secret(ctx.id(), std::move(data));
}

std::vector<uint8_t> serialize(const HeContext& ctx, const PublicKey& pk) {
  if (pk.context_id() != ctx.id()) throw InvalidArgument("public key belongs to other parameters");
  const auto& seed = KeyAccess::public_seed(pk);
  ByteWriter w;
  write_header(w, ObjectKind::kPublicKey, ctx.hash());
  w.u8(seed ? 1 : 0);
  if (seed) w.bytes(*seed);
  write_rns(w, pk.b().data(), ctx.q_count(), ctx.n());
  if (!seed) write_rns(w, pk.a().data(), ctx.q_count(), ctx.n());
  return w.take();
}

PublicKey load_public_key(const HeContext& ctx, std::span<const uint8_t> bytes) {
  ByteReader r = open_object(ctx, bytes, ObjectKind::kPublicKey);
  const size_t n = ctx.n(), L = ctx.q_count();
  const uint8_t compressed = r.u8();
  if (compressed > 1) throw MalformedInput("CKKS public key: bad flag");
  r.need((compressed ? 16 : 0) + 8ull * L * n * (compressed ? 1 : 2));
  const std::optional<Seed> seed = read_seed(r, compressed);
  std::vector<uint64_t> b(L * n), a(L * n);
  auto id = [](size_t i) { return i; };
  read_rns(r, ctx, b.data(), L, id);
  if (compressed) {
    for (size_t i = 0; i < L; ++i) detail::sample_uniform(ctx, *seed, i, i, a.data() + i * n);
  } else {
    read_rns(r, ctx, a.data(), L, id);
  }
  r.expect_end();
  return KeyAccess::make_public(ctx.id(), std::move(b), std::move(a), seed);
}

std::vector<uint8_t> serialize(const HeContext& ctx, const RelinKeys& rk) {
  if (rk.context_id() != ctx.id()) throw InvalidArgument("relin key belongs to other parameters");
  ByteWriter w;
  write_header(w, ObjectKind::kRelinKeys, ctx.hash());
  write_switch_key(w, ctx, rk.key());
  return w.take();
}

RelinKeys load_relin_keys(const HeContext& ctx, std::span<const uint8_t> bytes) {
  ByteReader r = open_object(ctx, bytes, ObjectKind::kRelinKeys);
  KeySwitchKey k = read_switch_key(r, ctx);
  r.expect_end();
  return RelinKeys(std::move(k));
}

std::vector<uint8_t> serialize(const HeContext& ctx, const GaloisKeys& gk) {
  ByteWriter w;
  write_header(w, ObjectKind::kGaloisKeys, ctx.hash());
  w.u32(static_cast<uint32_t>(gk.keys().size()));
  for (const auto& [g, k] : gk.keys()) {
    if (k.context_id() != ctx.id()) throw InvalidArgument("Galois key belongs to other parameters");
    w.u32(g);
    write_switch_key(w, ctx, k);
  }
  return w.take();
}

GaloisKeys load_galois_keys(const HeContext& ctx, std::span<const uint8_t> bytes) {
  ByteReader r = open_object(ctx, bytes, ObjectKind::kGaloisKeys);
  // Each key takes at least a seed and one polynomial per digit.
  const uint64_t min_key = 4 + 1 + 4 + 16 + 8ull * ctx.prime_count() * ctx.n();
  const uint32_t count = r.count(ctx.n(), "Galois key count", min_key);
  GaloisKeys gk;
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t g = r.u32();
    if (g % 2 == 0 || g >= 2 * ctx.n() || g == 1 || gk.has(g))
      throw MalformedInput("CKKS Galois keys: bad Galois element");
    gk.insert(g, read_switch_key(r, ctx));
  }
  r.expect_end();
  return gk;
}

}  // namespace veil::he

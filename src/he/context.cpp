#include "veil/he/context.hpp"

#include <algorithm>
#include <cmath>

#include "ntt.hpp"
#include "thread_pool.hpp"
#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"
#include "veil/core/hex.hpp"
#include "veil/core/sha256.hpp"

namespace veil::he {

int max_modulus_bits(size_t n, SecurityLevel level) {
  // HomomorphicEncryption.org security standard (2018), Table 1, ternary secret, classical.
  struct Row {
    size_t n;
    int b128, b192, b256;
  };
  static constexpr Row kTable[] = {{1024, 27, 19, 14},      {2048, 54, 37, 29},
                                   {4096, 109, 75, 58},     {8192, 218, 152, 118},
                                   {16384, 438, 305, 237},  {32768, 881, 611, 476},
                                   {65536, 1762, 1222, 952}};
  for (const auto& r : kTable) {
    if (r.n == n) {
      switch (level) {
        case SecurityLevel::k128:
          return r.b128;
        case SecurityLevel::k192:
          return r.b192;
        case SecurityLevel::k256:
          return r.b256;
      }
    }
  }
  return 0;
}

namespace {

ParamsHash hash_parameters(size_t n, size_t q_count, size_t k_count,
                           const std::vector<uint64_t>& primes) {
  ByteWriter w;
  w.bytes(std::string_view("veil-ckks-params-v1"));
  w.u64(n);
  w.u64(q_count);
  w.u64(k_count);
  w.array<uint64_t>(primes);
  return sha256(w.out());
}

BaseConverter make_converter(const std::vector<Modulus>& primes, std::vector<size_t> source) {
  BaseConverter bc;
  bc.source = std::move(source);
  const size_t k = bc.source.size();
  for (size_t a = 0; a < k; ++a) {
    const Modulus& m = primes[bc.source[a]];
    uint64_t punct = 1;
    for (size_t b = 0; b < k; ++b)
      if (b != a) punct = mul_mod(punct, primes[bc.source[b]].value % m.value, m);
    const uint64_t inv = inv_mod(punct, m);
    bc.inv_punct.push_back(inv);
    bc.inv_punct_shoup.push_back(shoup(inv, m.value));
  }
  bc.punct.resize(primes.size());
  for (size_t t = 0; t < primes.size(); ++t) {
    for (size_t a = 0; a < k; ++a) {
      uint64_t punct = 1;
      for (size_t b = 0; b < k; ++b)
        if (b != a)
          punct = mul_mod(punct, reduce64(primes[bc.source[b]].value, primes[t]), primes[t]);
      bc.punct[t].push_back(punct);
    }
  }
  return bc;
}

// The primes of the chain: the given ones (checked) or found from coeff_bits.
std::vector<uint64_t> chain_primes(const CkksParameters& params, size_t n) {
  std::vector<uint64_t> primes = params.primes;
  const size_t count = primes.empty() ? params.coeff_bits.size() : primes.size();
  if (params.special_primes < 1 || count < params.special_primes + 1)
    throw InvalidArgument("CKKS: need at least one ciphertext prime and one special prime");
  if (count > 64) throw InvalidArgument("CKKS: at most 64 primes");
  if (primes.empty()) {
    for (int b : params.coeff_bits) {
      if (b < 20 || b > 60)
        throw InvalidArgument("CKKS: prime sizes must be between 20 and 60 bits");
      primes.push_back(find_ntt_prime(b, n, primes));
    }
    return primes;
  }
  for (size_t i = 0; i < primes.size(); ++i) {
    const uint64_t q = primes[i];
    if (q >= (uint64_t{1} << 61) || q < (uint64_t{1} << 19) || q % (2 * n) != 1 || !is_prime(q))
      throw InvalidArgument("CKKS: a prime is not an NTT-friendly prime below 2^61");
    if (std::find(primes.begin(), primes.begin() + i, q) != primes.begin() + i)
      throw InvalidArgument("CKKS: primes must be distinct");
  }
  return primes;
}

// Converters from the first c primes of each digit (c = 1 .. digit size), [digit][c - 1].
std::vector<std::vector<BaseConverter>> digit_converters(const std::vector<Modulus>& primes,
                                                         size_t L, size_t K) {
  const size_t dnum = (L + K - 1) / K;
  std::vector<std::vector<BaseConverter>> conv(dnum);
  for (size_t d = 0; d < dnum; ++d) {
    const size_t start = d * K;
    const size_t size = std::min(K, L - start);
    for (size_t c = 1; c <= size; ++c) {
      std::vector<size_t> src;
      for (size_t i = 0; i < c; ++i) src.push_back(start + i);
      conv[d].push_back(make_converter(primes, src));
    }
  }
  return conv;
}

// CRT reconstruction data for q_0 .. q_l (HeContext::CrtLevel).
HeContext::CrtLevel crt_level(const std::vector<Modulus>& primes, size_t l) {
  HeContext::CrtLevel c;
  c.q_mod_2_128 = 1;
  for (size_t i = 0; i <= l; ++i) c.q_mod_2_128 *= primes[i].value;
  for (size_t i = 0; i <= l; ++i) {
    uint64_t punct = 1;
    u128 punct128 = 1;
    for (size_t j = 0; j <= l; ++j) {
      if (j == i) continue;
      punct = mul_mod(punct, reduce64(primes[j].value, primes[i]), primes[i]);
      punct128 *= primes[j].value;
    }
    const uint64_t inv = inv_mod(punct, primes[i]);
    c.inv_punct.push_back(inv);
    c.inv_punct_shoup.push_back(shoup(inv, primes[i].value));
    c.punct_mod_2_128.push_back(punct128);
  }
  return c;
}

}  // namespace

std::shared_ptr<const HeContext> HeContext::create(const CkksParameters& params, int threads) {
  std::shared_ptr<HeContext> ctx(new HeContext());
  ctx->params_ = params;
  const size_t n = params.poly_degree;
  const bool insecure = params.insecure_allow_for_testing_only;
  if (n == 0 || (n & (n - 1)) != 0)
    throw InvalidArgument("CKKS: ring dimension must be a power of two");
  const size_t min_n = insecure ? 1024 : 4096;
  if (n < min_n || n > 65536)
    throw InvalidArgument("CKKS: ring dimension must be in [" + std::to_string(min_n) + ", 65536]");
  ctx->n_ = n;
  while ((size_t{1} << ctx->log_n_) < n) ++ctx->log_n_;

  const std::vector<uint64_t> primes = chain_primes(params, n);
  ctx->params_.primes = primes;
  ctx->params_.coeff_bits.clear();
  ctx->k_count_ = params.special_primes;
  ctx->q_count_ = primes.size() - params.special_primes;
  int bit_sum = 0;
  for (uint64_t q : primes) {
    ctx->primes_.emplace_back(q);
    ctx->params_.coeff_bits.push_back(ctx->primes_.back().bits());
    bit_sum += ctx->primes_.back().bits();
    ctx->total_bits_ += std::log2(static_cast<double>(q));
  }
  ctx->prime_values_ = primes;
  const int limit = max_modulus_bits(n, params.security);
  if (!insecure && bit_sum > limit)
    throw InvalidArgument(
        "CKKS: log2(QP) = " + std::to_string(bit_sum) + " exceeds " + std::to_string(limit) +
        " bits allowed at " + std::to_string(static_cast<int>(params.security)) +
        "-bit security for N = " + std::to_string(n) + " (HomomorphicEncryption.org standard)");
  if (!(params.default_scale >= 2.0) || !std::isfinite(params.default_scale))
    throw InvalidArgument("CKKS: scale must be finite and >= 2");

  for (const auto& m : ctx->primes_) ctx->ntt_.emplace_back(m, n);
  ctx->hash_ = hash_parameters(n, ctx->q_count_, ctx->k_count_, primes);
  ctx->id_ = load_le<uint64_t>(ctx->hash_.data());

  const size_t L = ctx->q_count_, K = ctx->k_count_;
  // Rescale: q_level^-1 mod q_i.
  ctx->rescale_inv_.resize(L);
  ctx->rescale_inv_shoup_.resize(L);
  for (size_t l = 1; l < L; ++l) {
    for (size_t i = 0; i < l; ++i) {
      const uint64_t inv = inv_mod(reduce64(primes[l], ctx->primes_[i]), ctx->primes_[i]);
      ctx->rescale_inv_[l].push_back(inv);
      ctx->rescale_inv_shoup_[l].push_back(shoup(inv, primes[i]));
    }
  }
  // P mod q_i and P^-1 mod q_i.
  for (size_t i = 0; i < L + K; ++i) {
    uint64_t p = 1;
    for (size_t j = 0; j < K; ++j)
      p = mul_mod(p, reduce64(primes[L + j], ctx->primes_[i]), ctx->primes_[i]);
    ctx->p_mod_.push_back(p);
    if (i < L) {
      const uint64_t inv = inv_mod(p, ctx->primes_[i]);
      ctx->p_inv_.push_back(inv);
      ctx->p_inv_shoup_.push_back(shoup(inv, primes[i]));
    }
  }
  std::vector<size_t> special;
  for (size_t j = 0; j < K; ++j) special.push_back(L + j);
  ctx->special_conv_ = make_converter(ctx->primes_, special);
  ctx->digit_conv_ = digit_converters(ctx->primes_, L, K);
  // X^(n/2) in NTT form.
  for (size_t i = 0; i < L + K; ++i) {
    std::vector<uint64_t> v(n, 0);
    v[n / 2] = 1;
    ctx->ntt_[i].forward(v.data());
    ctx->half_monomial_.push_back(std::move(v));
  }
  // CRT reconstruction per level.
  for (size_t l = 0; l < L; ++l) ctx->crt_.push_back(crt_level(ctx->primes_, l));
  ctx->pool_ = std::make_shared<ThreadPool>(threads);
  return ctx;
}

HeContext::~HeContext() = default;

const Modulus& HeContext::prime(size_t i) const { return primes_[i]; }
const NttTables& HeContext::ntt(size_t i) const { return ntt_[i]; }
int HeContext::threads() const { return pool_->threads(); }

void HeContext::set_threads(int threads) const {
  if (threads < 1) threads = 1;
  if (pool_ && pool_->threads() == threads) return;
  pool_ = std::make_shared<ThreadPool>(threads);
}

double HeContext::q_bits(size_t level) const {
  double b = 0;
  for (size_t i = 0; i <= level && i < q_count_; ++i) b += std::log2(double(prime_values_[i]));
  return b;
}

std::string HeContext::hash_hex() const { return to_hex(hash_); }

const BaseConverter& HeContext::digit_converter(size_t digit, size_t count) const {
  return digit_conv_.at(digit).at(count - 1);
}

uint32_t HeContext::galois_element_for_step(int step) const {
  const int64_t slots = static_cast<int64_t>(n_ / 2);
  int64_t r = step % slots;
  if (r < 0) r += slots;
  // Left rotation by r is X -> X^(5^r) (slot j holds m(zeta^(5^j))).
  const uint64_t m = 2 * n_;
  uint64_t g = 1;
  for (int64_t i = 0; i < r; ++i) g = (g * 5) % m;
  return static_cast<uint32_t>(g);
}

const std::vector<uint32_t>& HeContext::galois_permutation(uint32_t g) const {
  std::lock_guard<std::mutex> lock(galois_mutex_);
  auto it = galois_perm_.find(g);
  if (it != galois_perm_.end()) return it->second;
  if (g % 2 == 0 || g >= 2 * n_) throw InvalidArgument("invalid Galois element");
  // NTT slot i holds a(psi^(2 brv(i) + 1)); sigma_g(a) there equals a(psi^((2 brv(i) + 1) g)).
  std::vector<uint32_t> perm(n_);
  const uint64_t m = 2 * n_;
  for (size_t i = 0; i < n_; ++i) {
    const uint64_t e = (2 * uint64_t{bit_reverse(static_cast<uint32_t>(i), log_n_)} + 1) * g % m;
    perm[i] = bit_reverse(static_cast<uint32_t>((e - 1) / 2), log_n_);
  }
  return galois_perm_.emplace(g, std::move(perm)).first->second;
}

}  // namespace veil::he

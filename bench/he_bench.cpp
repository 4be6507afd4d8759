// Google Benchmark targets for the CKKS operations at the reference parameters
// (N = 8192 {60,40,40,60} and N = 16384 {60,40x6,60}), single thread and all threads, and the
// RNS kernels on one limb with the kernel set as an argument (scalar / avx2 / avx512 side by
// side in one run).
#include <benchmark/benchmark.h>

#include <cmath>
#include <complex>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "he/kernels.hpp"
#include "he/ntt.hpp"
#include "veil/core/cpu.hpp"
#include "veil/he/bench.hpp"
#include "veil/he/he.hpp"

namespace {

using namespace veil::he;

struct Fixture {
  ContextPtr ctx;
  std::unique_ptr<KeyGenerator> keygen;
  PublicKey pk;
  RelinKeys rk;
  GaloisKeys gk;
  std::unique_ptr<CkksEncoder> encoder;
  std::unique_ptr<Encryptor> encryptor;
  std::unique_ptr<Decryptor> decryptor;
  std::unique_ptr<Evaluator> ev;
  std::vector<double> values;
  Ciphertext a, b, prod, relin;
};

Fixture& fixture(size_t n, int threads) {
  static std::map<std::pair<size_t, int>, std::unique_ptr<Fixture>> cache;
  auto& f = cache[{n, threads}];
  if (!f) {
    f = std::make_unique<Fixture>();
    f->ctx = HeContext::create(bench_parameters(n), threads);
    f->keygen = std::make_unique<KeyGenerator>(f->ctx);
    f->pk = f->keygen->create_public_key();
    f->rk = f->keygen->create_relin_keys();
    const std::vector<int> steps = {1};
    f->gk = f->keygen->create_galois_keys(steps, false);
    f->encoder = std::make_unique<CkksEncoder>(f->ctx);
    f->encryptor = std::make_unique<Encryptor>(f->ctx, f->pk);
    f->decryptor = std::make_unique<Decryptor>(f->ctx, f->keygen->secret_key());
    f->ev = std::make_unique<Evaluator>(f->ctx);
    f->values.resize(f->ctx->slots());
    for (size_t i = 0; i < f->values.size(); ++i) f->values[i] = std::sin(0.001 * i);
    f->a = f->encryptor->encrypt(f->encoder->encode(f->values));
    f->b = f->encryptor->encrypt(f->encoder->encode(f->values));
    f->prod = f->ev->multiply(f->a, f->b);
    f->relin = f->ev->relinearize(f->prod, f->rk);
  }
  return *f;
}

int threads_arg(int64_t t) { return t == 0 ? default_thread_count() : static_cast<int>(t); }

void BM_EncodeEncrypt(benchmark::State& s) {
  auto& f = fixture(s.range(0), threads_arg(s.range(1)));
  for (auto _ : s) benchmark::DoNotOptimize(f.encryptor->encrypt(f.encoder->encode(f.values)));
}
void BM_MultiplyRelinearize(benchmark::State& s) {
  auto& f = fixture(s.range(0), threads_arg(s.range(1)));
  for (auto _ : s) benchmark::DoNotOptimize(f.ev->relinearize(f.ev->multiply(f.a, f.b), f.rk));
}
void BM_Rescale(benchmark::State& s) {
  auto& f = fixture(s.range(0), threads_arg(s.range(1)));
  for (auto _ : s) benchmark::DoNotOptimize(f.ev->rescale(f.relin));
}
void BM_Rotate(benchmark::State& s) {
  auto& f = fixture(s.range(0), threads_arg(s.range(1)));
  for (auto _ : s) benchmark::DoNotOptimize(f.ev->rotate(f.a, 1, f.gk));
}
void BM_Add(benchmark::State& s) {
  auto& f = fixture(s.range(0), threads_arg(s.range(1)));
  for (auto _ : s) benchmark::DoNotOptimize(f.ev->add(f.a, f.b));
}
void BM_DecryptDecode(benchmark::State& s) {
  auto& f = fixture(s.range(0), threads_arg(s.range(1)));
  for (auto _ : s) benchmark::DoNotOptimize(f.encoder->decode(f.decryptor->decrypt(f.a)));
}

// One forward and one inverse NTT. Args: {ring dimension, prime bits, kernel set (Isa)}.
void BM_Ntt(benchmark::State& s) {
  const size_t n = s.range(0);
  const Isa isa = static_cast<Isa>(s.range(2));
  if (!isa_supported(isa)) {
    s.SkipWithError("the CPU lacks this kernel set");
    return;
  }
  const NttTables t(Modulus(find_ntt_prime(static_cast<int>(s.range(1)), n, {})), n);
  std::mt19937_64 rng(1);
  std::vector<uint64_t> a(n);
  for (auto& x : a) x = rng() % t.modulus().value;
  for (auto _ : s) {
    t.forward(a.data(), isa);
    t.inverse(a.data(), isa);
    benchmark::DoNotOptimize(a.data());
  }
  s.SetLabel(isa_name(isa));
}
BENCHMARK(BM_Ntt)
    ->ArgsProduct({{8192, 16384}, {40, 60}, {0, 1, 2}})
    ->ArgNames({"n", "bits", "isa"})
    ->Unit(benchmark::kMicrosecond);

// The encoder's FFTs alone (canonical embedding and its inverse), to weigh them against
// encode+encrypt and decrypt+decode. Args: {ring dimension, kernel path: 0 scalar, 1 avx2,
// 2 avx512}.
void BM_EncoderFft(benchmark::State& s) {
  const auto path = static_cast<veil::KernelPath>(s.range(1));
  if (path > veil::detected_kernel_path()) return s.SkipWithError("CPU lacks this kernel path");
  auto& f = fixture(s.range(0), 1);
  const veil::KernelPath saved = veil::kernel_path();
  veil::set_kernel_path(path);
  std::vector<std::complex<double>> slots(f.values.begin(), f.values.end());
  for (auto _ : s) {
    const auto coeffs = f.encoder->coefficients_from_slots(slots);
    benchmark::DoNotOptimize(f.encoder->slots_from_coefficients(coeffs));
  }
  veil::set_kernel_path(saved);
  s.SetLabel(veil::kernel_path_name(path));
}
BENCHMARK(BM_EncoderFft)
    ->ArgsProduct({{8192, 16384}, {0, 1, 2}})
    ->ArgNames({"n", "path"})
    ->Unit(benchmark::kMicrosecond)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true);

// Args: {ring dimension, threads (0 = all)}.
#define VEIL_HE_BENCH(fn)                    \
  BENCHMARK(fn)                              \
      ->ArgsProduct({{8192, 16384}, {1, 0}}) \
      ->ArgNames({"n", "threads"})           \
      ->Unit(benchmark::kMillisecond)        \
      ->UseRealTime()                        \
      ->Repetitions(5)                       \
      ->ReportAggregatesOnly(true)

VEIL_HE_BENCH(BM_EncodeEncrypt);
VEIL_HE_BENCH(BM_MultiplyRelinearize);
VEIL_HE_BENCH(BM_Rescale);
VEIL_HE_BENCH(BM_Rotate);
VEIL_HE_BENCH(BM_Add);
VEIL_HE_BENCH(BM_DecryptDecode);

// ---------------------------------------------------------------------------------------------
// RNS kernels on one limb of n coefficients. Args start with {isa: 0 scalar, 1 avx2, 2 avx512,
// n, prime bits (40 or 60: the bench primes)}.

Isa isa_arg(benchmark::State& s) {
  const Isa isa = static_cast<Isa>(s.range(0));
  if (!isa_supported(isa)) s.SkipWithError("CPU lacks this kernel set");
  s.SetLabel(isa_name(isa));
  return isa;
}

struct Limbs {
  Modulus m;
  std::vector<std::vector<uint64_t>> v;
  std::vector<uint32_t> perm;
};

// `count` random limbs modulo a prime of `bits` bits, and a permutation (as a Galois automorphism
// is for dot2 and add_mod).
const Limbs& limbs(size_t n, int bits, size_t count) {
  static std::map<std::tuple<size_t, int, size_t>, Limbs> cache;
  Limbs& l = cache[{n, bits, count}];
  if (l.v.empty()) {
    l.m = Modulus(find_ntt_prime(bits, n, {}));
    std::mt19937_64 rng(1);
    l.v.assign(count, std::vector<uint64_t>(n));
    for (auto& limb : l.v)
      for (auto& x : limb) x = rng() % l.m.value;
    l.perm.resize(n);
    for (size_t c = 0; c < n; ++c) l.perm[c] = static_cast<uint32_t>((c * 5 + 3) % n);
  }
  return l;
}

void BM_KernelSubMulConst(benchmark::State& s) {
  const Isa isa = isa_arg(s);
  const size_t n = s.range(1);
  const Limbs& l = limbs(n, static_cast<int>(s.range(2)), 2);
  std::vector<uint64_t> out(n);
  for (auto _ : s) {
    kernels::sub_mul_const(isa, out.data(), l.v[0].data(), l.v[1].data(), l.v[1][7], l.m, n);
    benchmark::DoNotOptimize(out.data());
  }
}
void BM_KernelAddMod(benchmark::State& s) {
  const Isa isa = isa_arg(s);
  const size_t n = s.range(1);
  const Limbs& l = limbs(n, static_cast<int>(s.range(2)), 2);
  std::vector<uint64_t> out(n);
  for (auto _ : s) {
    kernels::add_mod(isa, out.data(), l.v[0].data(), l.v[1].data(),
                     s.range(3) ? l.perm.data() : nullptr, l.m.value, n);
    benchmark::DoNotOptimize(out.data());
  }
}
// Centered lift from a prime of `from` bits to one of `bits` bits (the bench primes).
void BM_KernelLift(benchmark::State& s) {
  const Isa isa = isa_arg(s);
  const size_t n = s.range(1);
  const Limbs& from = limbs(n, static_cast<int>(s.range(3)), 1);
  const Limbs& to = limbs(n, static_cast<int>(s.range(2)), 1);
  std::vector<uint64_t> out(n);
  for (auto _ : s) {
    kernels::lift(isa, out.data(), from.v[0].data(), from.m.value, true, to.m, n);
    benchmark::DoNotOptimize(out.data());
  }
}
// Key switching's inner product: two outputs over `terms` digits, with or without the
// automorphism's gather.
void BM_KernelDot2(benchmark::State& s) {
  const Isa isa = isa_arg(s);
  const size_t n = s.range(1);
  const size_t terms = s.range(3);
  const Limbs& l = limbs(n, static_cast<int>(s.range(2)), 3 * terms);
  std::vector<const uint64_t*> d, k0, k1;
  for (size_t j = 0; j < terms; ++j) {
    d.push_back(l.v[3 * j].data());
    k0.push_back(l.v[3 * j + 1].data());
    k1.push_back(l.v[3 * j + 2].data());
  }
  std::vector<uint64_t> out0(n), out1(n);
  for (auto _ : s) {
    kernels::dot2(isa, out0.data(), out1.data(), d.data(), k0.data(), k1.data(), terms,
                  s.range(4) ? l.perm.data() : nullptr, l.m, n);
    benchmark::DoNotOptimize(out0.data());
  }
}
// A batch-packed plaintext-weight layer: 16 rows of 32 terms each over 64 inputs.
void BM_KernelSparseMatmul(benchmark::State& s) {
  const Isa isa = isa_arg(s);
  const size_t n = s.range(1);
  constexpr size_t kRows = 16, kInputs = 64, kTerms = 32;
  const Limbs& l = limbs(n, static_cast<int>(s.range(2)), kInputs + kRows);
  std::vector<const uint64_t*> x;
  for (size_t i = 0; i < kInputs; ++i) x.push_back(l.v[i].data());
  std::vector<uint32_t> start = {0}, col;
  std::vector<uint64_t> w;
  for (size_t r = 0; r < kRows; ++r) {
    for (size_t t = 0; t < kTerms; ++t) {
      col.push_back(static_cast<uint32_t>((r * 7 + t * 3) % kInputs));
      w.push_back(l.v[kInputs][r * kTerms + t]);
    }
    start.push_back(static_cast<uint32_t>(col.size()));
  }
  std::vector<std::vector<uint64_t>> out(kRows, std::vector<uint64_t>(n));
  std::vector<uint64_t*> op;
  for (auto& o : out) op.push_back(o.data());
  for (auto _ : s) {
    kernels::sparse_matmul(isa, op.data(), x.data(), start.data(), col.data(), w.data(), kRows, l.m,
                           n);
    benchmark::DoNotOptimize(op.data());
  }
}

#define VEIL_KERNEL_BENCH(fn, ...)    \
  BENCHMARK(fn)                       \
      ->ArgsProduct({__VA_ARGS__})    \
      ->Unit(benchmark::kMicrosecond) \
      ->Repetitions(5)                \
      ->ReportAggregatesOnly(true)

VEIL_KERNEL_BENCH(BM_KernelSubMulConst, {0, 1, 2}, {8192, 16384}, {40, 60})
    ->ArgNames({"isa", "n", "bits"});
VEIL_KERNEL_BENCH(BM_KernelAddMod, {0, 1, 2}, {8192, 16384}, {40}, {0, 1})
    ->ArgNames({"isa", "n", "bits", "perm"});
VEIL_KERNEL_BENCH(BM_KernelLift, {0, 1, 2}, {8192, 16384}, {40, 60}, {40, 60})
    ->ArgNames({"isa", "n", "bits", "from"});
VEIL_KERNEL_BENCH(BM_KernelDot2, {0, 1, 2}, {8192, 16384}, {40, 60}, {1, 3, 7}, {0, 1})
    ->ArgNames({"isa", "n", "bits", "terms", "perm"});
VEIL_KERNEL_BENCH(BM_KernelSparseMatmul, {0, 1, 2}, {8192, 16384}, {40, 60})
    ->ArgNames({"isa", "n", "bits"});

}  // namespace

BENCHMARK_MAIN();

// Google Benchmark targets for the CKKS operations at the reference parameters
// (N = 8192 {60,40,40,60} and N = 16384 {60,40x6,60}), single thread and all threads.
#include <benchmark/benchmark.h>

#include <cmath>
#include <map>
#include <memory>
#include <random>

#include "he/kernels.hpp"
#include "he/ntt.hpp"
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

}  // namespace

BENCHMARK_MAIN();

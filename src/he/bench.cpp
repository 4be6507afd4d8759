#include "veil/he/bench.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <functional>

#include "kernels.hpp"
#include "veil/core/error.hpp"
#include "veil/he/he.hpp"

namespace veil::he {

CkksParameters bench_parameters(size_t n) {
  CkksParameters p;
  p.poly_degree = n;
  if (n == 8192) {
    p.coeff_bits = {60, 40, 40, 60};
  } else if (n == 16384) {
    p.coeff_bits = {60, 40, 40, 40, 40, 40, 40, 60};
  } else {
    throw InvalidArgument("he bench: --n must be 8192 or 16384");
  }
  p.special_primes = 1;
  p.default_scale = 1099511627776.0;
  return p;
}

namespace {

// Process CPU time: on a machine shared with other jobs it counts only the cycles this process
// got, which makes single-thread medians far less noisy than wall time.
double cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

std::string kernel_description() { return isa_name(active_isa()); }

std::vector<BenchResult> run_bench(size_t n, int threads, int reps) {
  if (reps < 1 || reps > 10000) throw InvalidArgument("he bench: reps must be in [1, 10000]");
  if (threads < 1 || threads > 256) throw InvalidArgument("he bench: threads must be in [1, 256]");
  const auto ctx = HeContext::create(bench_parameters(n), threads);
  KeyGenerator keygen(ctx);
  const PublicKey pk = keygen.create_public_key();
  const RelinKeys rk = keygen.create_relin_keys();
  const std::vector<int> steps = {1, 2, 3, 4};
  const GaloisKeys gk = keygen.create_galois_keys(steps, false);
  CkksEncoder encoder(ctx);
  Encryptor encryptor(ctx, pk);
  Decryptor decryptor(ctx, keygen.secret_key());
  Evaluator ev(ctx);

  std::vector<double> values(ctx->slots());
  for (size_t i = 0; i < values.size(); ++i) values[i] = std::sin(0.001 * i);
  const double scale = ctx->parameters().default_scale;
  const Ciphertext a = encryptor.encrypt(encoder.encode(values, scale, ctx->max_level()));
  const Ciphertext b = encryptor.encrypt(encoder.encode(values, scale, ctx->max_level()));
  const Ciphertext prod = ev.multiply(a, b);
  const Ciphertext relin = ev.relinearize(prod, rk);

  std::vector<BenchResult> out;
  auto time = [&](const std::string& name, const std::function<void()>& fn) {
    fn();  // warm-up
    std::vector<double> ms, cpu;
    for (int r = 0; r < reps; ++r) {
      const double c0 = cpu_ms();
      const auto t0 = std::chrono::steady_clock::now();
      fn();
      const auto t1 = std::chrono::steady_clock::now();
      cpu.push_back(cpu_ms() - c0);
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    out.push_back({name, median(ms), median(cpu), reps});
  };
  Ciphertext sink;
  time("encode+encrypt",
       [&] { sink = encryptor.encrypt(encoder.encode(values, scale, ctx->max_level())); });
  time("multiply+relinearize", [&] { sink = ev.relinearize(ev.multiply(a, b), rk); });
  time("multiply", [&] { sink = ev.multiply(a, b); });
  time("relinearize", [&] { sink = ev.relinearize(prod, rk); });
  time("rescale", [&] { sink = ev.rescale(relin); });
  time("rotate", [&] { sink = ev.rotate(a, 1, gk); });
  time("rotate_hoisted_x4 (per rotation)", [&] {
    auto r = ev.rotate_hoisted(a, steps, gk);
    sink = std::move(r[0]);
  });
  out.back().median_ms /= 4;
  out.back().median_cpu_ms /= 4;
  time("add", [&] { sink = ev.add(a, b); });
  Ciphertext acc = a;
  time("add_inplace", [&] { ev.add_inplace(acc, b); });
  std::vector<double> decoded;
  time("decrypt+decode", [&] { decoded = encoder.decode(decryptor.decrypt(a)); });
  return out;
}

}  // namespace veil::he

// `veil he info` and `veil he bench`: the CKKS parameter/precision report and the
// micro-benchmark.
#include <cmath>
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "validators.hpp"
#include "veil/cli/commands.hpp"
#include "veil/core/error.hpp"
#include "veil/he/bench.hpp"
#include "veil/he/he.hpp"

namespace veil::cli {

namespace {

struct InfoOptions {
  size_t n = 8192;
  std::string bits = "60,40,40,60";
  size_t special = 1;
  int scale_bits = 40;
  int security = 128;
  bool insecure = false;
  bool json = false;
};

std::vector<int> parse_bits(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const int v = std::stoi(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (const std::exception&) {
      throw InvalidArgument("--bits: expected a comma-separated list of integers, got '" + s + "'");
    }
    if (out.size() > 64) throw InvalidArgument("--bits: at most 64 primes");
  }
  return out;
}

he::SecurityLevel parse_security(int s) {
  switch (s) {
    case 128:
      return he::SecurityLevel::k128;
    case 192:
      return he::SecurityLevel::k192;
    case 256:
      return he::SecurityLevel::k256;
    default:
      throw InvalidArgument("--security must be 128, 192 or 256");
  }
}

void run_info(const InfoOptions& o) {
  he::CkksParameters p;
  p.poly_degree = o.n;
  p.coeff_bits = parse_bits(o.bits);
  p.special_primes = o.special;
  if (o.scale_bits < 10 || o.scale_bits > 60)
    throw InvalidArgument("--scale-bits must be in [10, 60]");
  p.default_scale = std::ldexp(1.0, o.scale_bits);
  p.security = parse_security(o.security);
  p.insecure_allow_for_testing_only = o.insecure;
  const auto ctx = he::HeContext::create(p);

  // Precision demo: x -> x^2 -> x^4 ... while levels remain, on values in [-1, 1].
  he::KeyGenerator keygen(ctx);
  const auto pk = keygen.create_public_key();
  const auto rk = keygen.create_relin_keys();
  he::CkksEncoder enc(ctx);
  he::Encryptor encryptor(ctx, pk);
  he::Decryptor dec(ctx, keygen.secret_key());
  he::Evaluator ev(ctx);
  std::vector<std::complex<double>> x(ctx->slots());
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.37 * static_cast<double>(i));
  auto ct = encryptor.encrypt(enc.encode(x, p.default_scale, ctx->max_level()));
  std::vector<he::PrecisionReport> reports;
  std::vector<std::string> steps;
  reports.push_back(he::measure_precision(*ctx, dec, enc, ct, x));
  steps.push_back("fresh encryption");
  int power = 1;
  while (ct.level() > 0) {
    ct = ev.rescale(ev.multiply_relin(ct, ct, rk));
    for (auto& v : x) v *= v;
    power *= 2;
    reports.push_back(he::measure_precision(*ctx, dec, enc, ct, x));
    steps.push_back("x^" + std::to_string(power) + " (square, relinearize, rescale)");
  }

  const int limit = he::max_modulus_bits(o.n, p.security);
  if (o.json) {
    nlohmann::json j;
    j["poly_degree"] = o.n;
    j["slots"] = ctx->slots();
    j["primes"] = ctx->prime_values();
    j["special_primes"] = ctx->special_count();
    j["log2_qp"] = ctx->total_bits();
    j["security_bits"] = o.security;
    j["max_log2_qp_for_security"] = limit;
    j["insecure_test_only"] = o.insecure;
    j["scale_log2"] = o.scale_bits;
    j["parameter_hash"] = ctx->hash_hex();
    j["levels"] = ctx->max_level();
    nlohmann::json arr = nlohmann::json::array();
    for (size_t i = 0; i < reports.size(); ++i) {
      const auto& r = reports[i];
      arr.push_back({{"step", steps[i]},
                     {"level", r.level},
                     {"levels_left", r.levels_left},
                     {"scale_log2", r.scale_log2},
                     {"estimated_error_log2", r.estimated_error_log2},
                     {"measured_error_log2", r.measured_error_log2.value_or(0)}});
    }
    j["precision"] = arr;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << "CKKS parameters\n"
            << "  ring dimension N     " << o.n << " (" << ctx->slots() << " complex slots)\n"
            << "  primes               ";
  for (size_t i = 0; i < ctx->prime_count(); ++i)
    std::cout << (i ? ", " : "") << ctx->prime_values()[i]
              << (i >= ctx->q_count() ? " (special)" : "");
  std::cout << "\n  log2(Q*P)            " << ctx->total_bits() << " (limit " << limit << " for "
            << o.security << "-bit security" << (o.insecure ? ", TEST-ONLY INSECURE override" : "")
            << ")\n"
            << "  scale                2^" << o.scale_bits << "\n"
            << "  levels (rescales)    " << ctx->max_level() << "\n"
            << "  key-switch digits    " << ctx->digit_count(ctx->max_level()) << " of "
            << ctx->digit_size() << " prime(s)\n"
            << "  parameter hash       " << ctx->hash_hex() << "\n"
            << "Precision (slot values in [-1, 1]; log2 of the max error over all slots)\n";
  for (size_t i = 0; i < reports.size(); ++i)
    std::cout << "  " << steps[i] << ": " << he::to_string(reports[i]) << "\n";
}

void run_bench_cmd(size_t n, int threads, int reps, bool json) {
  if (threads == 0) threads = he::default_thread_count();
  const auto results = he::run_bench(n, threads, reps);
  if (json) {
    nlohmann::json j;
    j["poly_degree"] = n;
    j["threads"] = threads;
    j["reps"] = reps;
    j["kernels"] = he::kernel_description();
    nlohmann::json ops = nlohmann::json::object(), cpu = nlohmann::json::object();
    for (const auto& r : results) {
      ops[r.op] = r.median_ms;
      cpu[r.op] = r.median_cpu_ms;
    }
    j["median_ms"] = ops;
    j["median_cpu_ms"] = cpu;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << "CKKS N=" << n << ", " << threads << " thread(s), median of " << reps
            << " runs, milliseconds, kernels " << he::kernel_description() << "\n";
  std::cout << "  operation                           wall       cpu (all threads)\n";
  for (const auto& r : results) {
    std::cout << "  " << r.op;
    for (size_t pad = r.op.size(); pad < 36; ++pad) std::cout << ' ';
    std::ostringstream w;
    w.precision(3);
    w << std::fixed << r.median_ms;
    std::cout << w.str();
    for (size_t pad = w.str().size(); pad < 11; ++pad) std::cout << ' ';
    std::cout << std::fixed << std::setprecision(3) << r.median_cpu_ms << "\n";
  }
}

}  // namespace

void add_he_commands(CLI::App& app) {
  auto* he = app.add_subcommand(
      "he", "Homomorphic encryption (RNS-CKKS): encrypted inference, parameters, benchmark");
  he->require_subcommand(1);

  auto info = std::make_shared<InfoOptions>();
  auto* ci = he->add_subcommand("info", "Show CKKS parameters, security check and precision");
  ci->add_option("--n", info->n, "Ring dimension (4096 .. 65536)")
      ->check(in_range<size_t>(1, 65536))
      ->capture_default_str();
  ci->add_option("--bits", info->bits, "Prime sizes, ciphertext primes then special primes")
      ->capture_default_str();
  ci->add_option("--special", info->special, "Number of special primes")
      ->check(in_range<size_t>(0, 64))
      ->capture_default_str();
  ci->add_option("--scale-bits", info->scale_bits, "log2 of the scale")
      ->check(in_range(10, 60))
      ->capture_default_str();
  ci->add_option("--security", info->security, "128, 192 or 256")
      ->check(CLI::IsMember({128, 192, 256}))
      ->capture_default_str();
  ci->add_flag("--insecure-test-only", info->insecure,
               "Accept parameters below the security level (tests only)");
  ci->add_flag("--json", info->json, "Machine-readable output");
  ci->callback([info] { run_info(*info); });

  struct BenchOptions {
    size_t n = 8192;
    int threads = 1;
    int reps = 20;
    bool json = false;
  };
  auto bench = std::make_shared<BenchOptions>();
  auto* cb = he->add_subcommand("bench", "Median time of each CKKS operation");
  cb->add_option("--n", bench->n, "8192 ({60,40,40,60}) or 16384 ({60,40x6,60})")
      ->check(CLI::IsMember({8192, 16384}))
      ->capture_default_str();
  cb->add_option("--threads", bench->threads, "Threads (0 = all hardware threads)")
      ->check(in_range(0, 256))
      ->capture_default_str();
  cb->add_option("--reps", bench->reps, "Timed runs per operation")
      ->check(in_range(1, 10000))
      ->capture_default_str();
  cb->add_flag("--json", bench->json, "Machine-readable output");
  cb->callback([bench] { run_bench_cmd(bench->n, bench->threads, bench->reps, bench->json); });
  add_he_inference_commands(*he);
}

}  // namespace veil::cli

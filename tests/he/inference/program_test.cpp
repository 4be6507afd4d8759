// The HE compiler: model splitting against the float engine, slot layouts against a plaintext
// simulation of the same rotations, and encrypted runs against the double-precision stages.
#include "veil/he/inference/program.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "veil/core/error.hpp"
#include "veil/he/he.hpp"
#include "veil/he/inference/affine_program.hpp"
#include "veil/he/inference/runtime.hpp"
#include "veil/model/zoo.hpp"
#include "veil/nn/executor.hpp"

namespace veil::he {
namespace {

std::vector<float> random_input(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);  // test data
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = d(gen);
  return x;
}

std::vector<float> run_float(model::Model m, const std::vector<float>& x) {
  nn::Executor exec(m);
  auto out = exec.forward({Tensor::from_floats({1, 1, 28, 28}, x)});
  auto f = out.at(0).floats();
  return {f.begin(), f.end()};
}

std::vector<double> prefix_then_stages(const SplitModel& s, const std::vector<float>& x) {
  std::vector<double> feats;
  if (s.prefix_empty) {
    feats.assign(x.begin(), x.end());
  } else {
    model::Model p = s.prefix;
    auto f = run_float(p, x);
    feats.assign(f.begin(), f.end());
  }
  return apply_stages(s.stages, feats);
}

void expect_close(const std::vector<double>& a, const std::vector<float>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol * (1 + std::fabs(b[i]))) << i;
}

TEST(HeSplit, HeCnnPartsMatchTheFloatEngine) {
  auto m = model::build_arch("he-cnn", {});
  const auto x = random_input(784, 1);
  const auto ref = run_float(m, x);
  for (Part part : {Part::All, Part::Classifier, Part::Last}) {
    auto s = split_model(m, part);
    expect_close(prefix_then_stages(s, x), ref, 1e-4);
  }
  auto all = split_model(m, Part::All);
  ASSERT_EQ(all.stages.size(), 5u);  // conv, square, fc1, square, fc2
  EXPECT_TRUE(all.prefix_empty);
  EXPECT_EQ(std::get<AffineStage>(all.stages[0]).in_dim, 784u);
  EXPECT_EQ(std::get<AffineStage>(all.stages[0]).out_dim, 845u);
  const auto& act = std::get<PolyStage>(all.stages[1]);
  EXPECT_NEAR(act.p2[0], 0.125, 1e-6);
  EXPECT_NEAR(act.p1[0], 0.5, 1e-6);
  EXPECT_EQ(split_model(m, Part::Classifier).stages.size(), 3u);
  EXPECT_EQ(split_model(m, Part::Last).stages.size(), 1u);
}

TEST(HeSplit, KerasReluClassifierIsRefusedAndNoneMerges) {
  model::ArchSpec spec;
  auto relu = model::build_arch("keras-cifar10", spec, "relu");
  try {
    split_model(relu, Part::Classifier);
    FAIL() << "a ReLU classifier was accepted";
  } catch (const Unsupported& e) {
    EXPECT_NE(std::string(e.what()).find("act1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(split_model(relu, Part::All), Unsupported);
  const auto x = random_input(784, 2);
  auto last = split_model(relu, Part::Last);
  expect_close(prefix_then_stages(last, x), run_float(relu, x), 1e-4);

  auto none = model::build_arch("keras-cifar10", spec, "none");
  auto merged = split_model(none, Part::Classifier);
  ASSERT_EQ(merged.stages.size(), 1u);  // fc2 (fc1 x + b1) + b2: one matrix
  EXPECT_EQ(std::get<AffineStage>(merged.stages[0]).in_dim, 1600u);
  expect_close(prefix_then_stages(merged, x), run_float(none, x), 1e-4);
  auto kept = split_model(none, Part::Classifier, {.merge_linear = false});
  EXPECT_EQ(kept.stages.size(), 2u);
  expect_close(prefix_then_stages(kept, x), run_float(none, x), 1e-4);
}

// The layout's arithmetic replayed on plain double vectors: rotations, products, Horner steps
// and rotate-and-add, exactly as ProgramRunner orders them.
std::vector<double> simulate(const CompiledProgram& p, std::span<const double> x, size_t slots) {
  auto rot = [&](const std::vector<double>& v, size_t s) {
    std::vector<double> o(slots);
    for (size_t k = 0; k < slots; ++k) o[k] = v[(k + s) % slots];
    return o;
  };
  auto tile = [&](const std::vector<double>& v, size_t period) {
    std::vector<double> o(slots, 0.0);
    for (size_t k = 0; k < slots; ++k) o[k] = k % period < v.size() ? v[k % period] : 0.0;
    return o;
  };
  auto in = layout_input(p.layout, x, slots);
  std::vector<double> cur;
  size_t li = 0;
  for (size_t i = 0; i < p.layout.layers.size(); ++i) {
    if (const auto* s = std::get_if<SquareLayout>(&p.layout.layers[i])) {
      auto sh = tile(s->shift, s->period);
      for (size_t k = 0; k < slots; ++k) cur[k] = cur[k] * (cur[k] + sh[k]);
      continue;
    }
    const auto& l = std::get<LinearLayout>(p.layout.layers[i]);
    const auto& w = p.weights[li++];
    std::vector<double> acc(slots, 0.0);
    if (l.method == LinearMethod::Gather) {
      for (uint32_t t = 0; t < l.terms; ++t) {
        auto wt = tile(w.terms[t], l.period());
        for (size_t k = 0; k < slots; ++k) acc[k] += wt[k] * in[t][k];
      }
    } else {
      const auto& xv = i == 0 ? in[0] : cur;
      for (uint32_t j = l.giant(); j-- > 0;) {
        acc = rot(acc, l.baby);
        for (uint32_t b = 0; b < l.baby; ++b) {
          if (!l.present[j * l.baby + b]) continue;
          auto wt = tile(w.terms[j * l.baby + b], l.period());
          auto xr = rot(xv, b);
          for (size_t k = 0; k < slots; ++k) acc[k] += wt[k] * xr[k];
        }
      }
      for (int s : l.sum_steps) {
        auto r = rot(acc, static_cast<size_t>(s));
        for (size_t k = 0; k < slots; ++k) acc[k] += r[k];
      }
    }
    auto b = tile(w.bias, l.rows);
    for (size_t k = 0; k < slots; ++k) acc[k] += b[k];
    cur = std::move(acc);
  }
  cur.resize(p.layout.output_dim);
  return cur;
}

std::vector<double> random_doubles(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  std::vector<double> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

AffineStage random_affine(size_t out, size_t in, uint32_t seed, double density = 1.0) {
  AffineStage a;
  a.name = "fc";
  a.in_dim = in;
  a.out_dim = out;
  a.weight = random_doubles(out * in, seed);
  std::mt19937 gen(seed + 7);
  std::uniform_real_distribution<double> u(0, 1);
  for (auto& w : a.weight)
    if (u(gen) > density) w = 0;
  a.bias = random_doubles(out, seed + 1);
  return a;
}

ContextPtr layout_context(size_t n, size_t depth) {
  CkksParameters p;
  p.poly_degree = n;
  p.coeff_bits.assign(depth + 2, 40);
  p.coeff_bits.front() = p.coeff_bits.back() = 50;
  p.default_scale = std::ldexp(1.0, 40);
  p.insecure_allow_for_testing_only = true;
  return HeContext::create(p);
}

TEST(HeLayout, DiagonalAndGatherLayoutsEqualTheMatrixProduct) {
  auto ctx = layout_context(4096, 3);
  // Tall, square, wide and odd shapes; dense (diagonals) and sparse (gather) first layers.
  const std::vector<std::pair<size_t, size_t>> shapes = {{10, 100}, {100, 10}, {64, 64}, {845, 784},
                                                         {3, 1},    {1, 7},    {300, 37}};
  uint32_t seed = 10;
  for (auto [m, n] : shapes) {
    for (double density : {1.0, 0.02}) {
      std::vector<Stage> st = {random_affine(m, n, seed++, density)};
      PolyStage sq;
      sq.name = "sq";
      sq.p0 = random_doubles(m, seed++);
      sq.p1 = random_doubles(m, seed++);
      sq.p2.assign(m, 0.125);
      st.push_back(sq);
      st.push_back(random_affine(5, m, seed++));
      auto prog = compile_program(st, {static_cast<int64_t>(n)}, *ctx);
      const auto x = random_doubles(n, seed++);
      const auto want = apply_stages(st, x);
      const auto got = simulate(prog, x, ctx->slots());
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i)
        EXPECT_NEAR(got[i], want[i], 1e-9 * (1 + std::fabs(want[i]))) << m << "x" << n << " " << i;
    }
  }
}

TEST(HeLayout, RefusesAProgramDeeperThanTheKeys) {
  auto ctx = layout_context(4096, 1);
  std::vector<Stage> st = {random_affine(4, 4, 1),
                           PolyStage{"sq", {0, 0, 0, 0}, {0, 0, 0, 0}, {1, 1, 1, 1}},
                           random_affine(4, 4, 2)};
  EXPECT_THROW(compile_program(st, {4}, *ctx), InvalidArgument);
}

// An output beyond what q_0 holds wraps around; decryption refuses it instead of returning a
// confident wrong logit.
TEST(HeRuntime, AnOverflowingOutputIsRefused) {
  auto ctx = layout_context(4096, 1);  // q_0 = 50 bits, scale 2^40: |y| < 2^9 representable
  KeyGenerator kg(ctx);
  for (double w : {3.0, 5000.0}) {
    AffineStage a;
    a.name = "big";
    a.in_dim = a.out_dim = 2;
    a.weight = {w, 0, 0, w};
    a.bias = {0, 0};
    auto prog = compile_program({a}, {2}, *ctx);
    auto enc = encrypt_program(prog, ctx, kg.secret_key());
    auto rk = kg.create_relin_keys();
    auto gk = kg.create_galois_keys(prog.layout.rotation_steps(), false);
    ProgramRunner runner(ctx, enc, rk, gk);
    const std::vector<double> x = {1.0, -1.0};
    auto y = runner.run(encrypt_features(prog.layout, ctx, kg.create_public_key(), x));
    if (w < 10) {
      auto v = decrypt_output(ctx, kg.secret_key(), y, 2);
      EXPECT_NEAR(v[0], w, 1e-3);
    } else {
      EXPECT_THROW(decrypt_output(ctx, kg.secret_key(), y, 2), IntegrityError);
    }
  }
}

TEST(HeParameters, ChosenRingsMeetTheSecurityTable) {
  for (auto sec : {SecurityLevel::k128, SecurityLevel::k192, SecurityLevel::k256})
    for (uint32_t depth : {1u, 3u, 5u}) {
      auto p = choose_parameters(depth, 1024, sec);
      int bits = 0;
      for (int b : p.coeff_bits) bits += b;
      EXPECT_LE(bits, max_modulus_bits(p.poly_degree, sec));
      EXPECT_EQ(p.coeff_bits.size(), depth + 2u);
      EXPECT_GE(p.poly_degree / 2, 1024u);
      EXPECT_NO_THROW(HeContext::create(p));
    }
}

// The whole path under encryption on he-cnn (random weights): encrypted features and plaintext
// features against the double-precision stages.
TEST(HeRuntime, HeCnnEncryptedEqualsPlaintext) {
  auto m = model::build_arch("he-cnn", {});
  auto split = split_model(m, Part::All);
  const auto needs = program_needs(split.stages);
  auto params = choose_parameters(needs.depth, needs.max_period, SecurityLevel::k128);
  auto ctx = HeContext::create(params, 2);
  auto prog = compile_program(split.stages, split.cut_shape, *ctx);
  EXPECT_EQ(prog.layout.first().method, LinearMethod::Gather);  // the conv reads 25 inputs
  KeyGenerator kg(ctx);
  auto steps = prog.layout.rotation_steps();
  auto pk = kg.create_public_key();
  auto rk = kg.create_relin_keys();
  auto gk = kg.create_galois_keys(steps, false);
  auto enc = encrypt_program(prog, ctx, kg.secret_key());
  ProgramRunner runner(ctx, enc, rk, gk);
  const auto xf = random_input(784, 3);
  std::vector<double> x(xf.begin(), xf.end());
  const auto want = apply_stages(split.stages, x);
  RunStats stats;
  auto y =
      decrypt_output(ctx, kg.secret_key(),
                     runner.run(encrypt_features(prog.layout, ctx, pk, x), &stats), want.size());
  auto yp = decrypt_output(ctx, kg.secret_key(), runner.run_plain(x), want.size());
  double mag = 0;
  for (double v : want) mag = std::max(mag, std::fabs(v));
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(y[i], want[i], 1e-3 * (1 + mag)) << i;
    EXPECT_NEAR(yp[i], want[i], 1e-3 * (1 + mag)) << i;
  }
  EXPECT_GT(stats.products, 25u);
}

}  // namespace
}  // namespace veil::he

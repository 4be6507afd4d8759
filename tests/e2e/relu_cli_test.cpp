// End-to-end: `veil relu knapsack` on a .vdist file and on a synthetic ResNet-50 table, the
// uniform baseline, and the refusals; `veil relu apply` rewriting a model's ReLUs.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "veil/core/io.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/zoo.hpp"
#include "veil/mpc/block_relu/apply.hpp"
#include "veil/mpc/block_relu/distortion_file.hpp"
#include "veil/mpc/block_relu/spec.hpp"

namespace veil::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

mpc::DistortionTable small_table() {
  mpc::DistortionTable t;
  t.samples = 8;
  t.layers.push_back(
      {"relu_a", 2, 4, 4, {{1, 1}, {2, 2}, {4, 4}, {0, 0}}, {0, 1, 2, 8, 0, 0.25, 3, 4}, true});
  t.layers.push_back({"relu_b", 1, 2, 2, {{1, 1}, {2, 2}}, {0, 0.5}, true});
  return t;
}

TEST(ReluCli, KnapsackOnADistortionFile) {
  TempDir dir;
  mpc::write_distortion_file(dir / "d.vdist", small_table());
  const std::string spec = (dir / "spec.json").string();
  // 36 ReLUs; 0.25 -> 9 DReLUs. {2,2} everywhere spends 4 + 4 + 1 blocks for 1 + 0.25 + 0.5;
  // the alternatives within 9 ({4,4}, {2,2}, b {1,1}: 2 + 0.25; identities: >= 4) do worse.
  CliResult r = run_veil("relu knapsack --distortion " + (dir / "d.vdist").string() +
                             " --budget 0.25 --out " + spec + " --json",
                         dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["method"], "knapsack");
  EXPECT_EQ(j["relu_count"], 36);
  EXPECT_EQ(j["budget"], 9);
  EXPECT_LE(j["cost"].get<int64_t>(), 9);
  EXPECT_EQ(j["distortion"], 1.75);
  EXPECT_EQ(j["channels_per_size"]["2x2"], 3);
  for (const char* k : {"seconds", "peak_rss_mb", "channels", "layers"})
    EXPECT_TRUE(j.contains(k)) << k;
  const auto s = mpc::parse_block_relu_spec(read_text_file(spec, 1 << 20));
  EXPECT_EQ(s.layers.at("relu_a"), (std::vector<model::BlockSize>{{2, 2}, {2, 2}}));
  EXPECT_EQ(s.layers.at("relu_b"), (std::vector<model::BlockSize>{{2, 2}}));

  r = run_veil(
      "relu knapsack --distortion " + (dir / "d.vdist").string() + " --budget 0.25 --uniform", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("uniform"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2x2:3"), std::string::npos) << r.out;
}

TEST(ReluCli, KnapsackOnASyntheticResNet50) {
  TempDir dir;
  double distortion[2];
  for (int uniform = 0; uniform < 2; ++uniform) {
    const CliResult r = run_veil(std::string("relu knapsack --synthetic 700 --seed 4 --budget "
                                             "0.06 --json") +
                                     (uniform ? " --uniform" : ""),
                                 dir);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["layers"], 49);
    EXPECT_LE(j["cost"].get<int64_t>(), j["budget"].get<int64_t>());
    // null: a uniform size outside the measured set
    distortion[uniform] = j["distortion"].is_null() ? INFINITY : j["distortion"].get<double>();
  }
  ASSERT_TRUE(std::isfinite(distortion[0]));
  if (std::isfinite(distortion[1]))
    EXPECT_LT(distortion[0], distortion[1]);  // the knapsack beats the uniform baseline
}

TEST(ReluCli, KnapsackRefusals) {
  TempDir dir;
  const std::string vdist = (dir / "d.vdist").string();
  auto t = small_table();
  mpc::write_distortion_file(vdist, t);
  // Neither or both sources; the output over the input; a budget out of range.
  EXPECT_EQ(run_veil("relu knapsack --budget 0.1", dir).exit_code, 1);
  EXPECT_EQ(run_veil("relu knapsack --synthetic 100 --distortion " + vdist, dir).exit_code, 1);
  CliResult r = run_veil("relu knapsack --distortion " + vdist + " --out " + vdist, dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(mpc::read_distortion_file(vdist).layers.size(), 2u);  // untouched
  EXPECT_EQ(run_veil("relu knapsack --distortion " + vdist + " --budget 1.5", dir).exit_code, 2);
  // Budget 0: relu_b has no zero-cost size.
  r = run_veil("relu knapsack --distortion " + vdist + " --budget 0", dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("below the cheapest assignment"), std::string::npos) << r.err;
  // An unfinished measurement, a corrupt file.
  t.layers[1].done = false;
  mpc::write_distortion_file(vdist, t);
  r = run_veil("relu knapsack --distortion " + vdist, dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not measured yet"), std::string::npos) << r.err;
  write_file_atomic(vdist, std::string("VDST\1\0\0\0", 8));
  r = run_veil("relu knapsack --distortion " + vdist, dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
}

// The rewritten file holds the same graph as the library's rewrite of the same model; the graph
// checks themselves are in tests/mpc/block_relu/apply_test.cpp. (Loading the result back needs
// the BlockRelu op of the model module.)
TEST(ReluCli, ApplyWritesTheRewrittenModel) {
  TempDir dir;
  const std::string model = (dir / "m.onnx").string(), out = (dir / "m.br.onnx").string(),
                    spec = (dir / "spec.json").string();
  model::save_onnx(model::build_arch("lenet5", {}), model);
  mpc::BlockReluSpec s;
  s.layers["relu2"].assign(16, {2, 2});
  write_file_atomic(spec, mpc::to_json(s));
  CliResult r = run_veil(
      "relu apply --model " + model + " --spec " + spec + " --out " + out + " --avgpool --json",
      dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["block_relus"], 1);
  EXPECT_EQ(j["avgpools"], 2);
  model::Model want = model::load_onnx(model);
  mpc::apply_block_relu_spec(want, s, true);
  EXPECT_EQ(read_text_file(out, 1 << 24), model::serialize_onnx(want));

  // The block model cut again to coarser tiles: the BlockRelu takes the new sizes.
  const std::string out2 = (dir / "m.br2.onnx").string();
  mpc::BlockReluSpec coarse;
  coarse.layers["relu2"].assign(16, {4, 4});
  write_file_atomic(spec, mpc::to_json(coarse));
  r = run_veil("relu apply --model " + out + " --spec " + spec + " --out " + out2 + " --json", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["block_relus"], 1);
  mpc::apply_block_relu_spec(want, coarse, false);
  EXPECT_EQ(read_text_file(out2, 1 << 24), model::serialize_onnx(want));

  // A spec that does not fit the model: one line naming the node, no output written.
  s.layers["relu1"].assign(5, {2, 2});
  write_file_atomic(spec, mpc::to_json(s));
  fs::remove(out);
  r = run_veil("relu apply --model " + model + " --spec " + spec + " --out " + out, dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'relu1' (Relu) has 6 channels, the spec gives 5"), std::string::npos)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  EXPECT_FALSE(fs::exists(out));
  // The output over the input.
  EXPECT_EQ(run_veil("relu apply --model " + model + " --spec " + spec + " --out " + model, dir)
                .exit_code,
            1);
}

}  // namespace
}  // namespace veil::testing

// End-to-end: `veil relu knapsack` on a .vdist file and on a synthetic ResNet-50 table, the
// uniform baseline, and the refusals; `veil relu apply` rewriting a model's ReLUs.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "veil/core/io.hpp"
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
    distortion[uniform] = j["distortion"];
  }
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

}  // namespace
}  // namespace veil::testing

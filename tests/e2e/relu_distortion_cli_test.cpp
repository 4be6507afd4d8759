// End-to-end: `veil relu distortion` on a trained LeNet-5, interrupted and resumed.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "veil/mpc/block_relu/distortion_file.hpp"

namespace veil::testing {
namespace {

class ReluDistortionCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  std::string model() {
    const auto path = (dir_ / "lenet.onnx").string();
    const auto r = run_veil(
        "train --arch lenet5 --epochs 1 --limit 500 --test-limit 100 --quiet --out " + path, dir_);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return path;
  }
  CliResult distortion(const std::string& model, const std::string& out,
                       const std::string& extra = "", int seed = 3) {
    return run_veil("relu distortion --quiet --json --samples 16 --seed " + std::to_string(seed) +
                        " --model " + model + " --out " + (dir_ / out).string() + " " + extra,
                    dir_);
  }
  TempDir dir_;
};

TEST_F(ReluDistortionCli, StoppedRunResumesToTheSameTable) {
  const auto m = model();
  auto r = distortion(m, "full.vdist");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["complete"].get<bool>());
  EXPECT_EQ(j["layers"].get<int64_t>(), 4);
  EXPECT_EQ(j["channels"].get<int64_t>(), 6 + 16 + 120 + 84);
  // 10 block sizes besides {1, 1} on the 28x28 and 10x10 maps, the identity alone on the dense
  // layers' 1x1 maps.
  EXPECT_EQ(j["variants"].get<int64_t>(), 6 * 10 + 16 * 10 + 120 + 84);
  const auto full = slurp(dir_ / "full.vdist");
  const auto table = mpc::parse_distortion_file(full);
  EXPECT_EQ(table.samples, 16);
  EXPECT_EQ(table.seed, 3u);
  for (const auto& l : table.layers) {
    EXPECT_TRUE(l.done);
    for (int64_t c = 0; c < l.channels; ++c) EXPECT_EQ(l.distortion[c * l.sizes.size()], 0.0);
  }

  // A run stopped after two layers (as a killed one) leaves a table with two finished layers.
  r = distortion(m, "part.vdist", "--stop-after-layers 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["complete"].get<bool>());
  EXPECT_EQ(j["layers_done"].get<int64_t>(), 2);
  const auto part = mpc::parse_distortion_file(slurp(dir_ / "part.vdist"));
  EXPECT_TRUE(part.layers[1].done);
  EXPECT_FALSE(part.layers[2].done);

  // Without --resume the existing table is not overwritten; with other samples it is refused.
  r = distortion(m, "part.vdist");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--resume"), std::string::npos) << r.err;
  r = distortion(m, "part.vdist", "--resume", 4);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--seed"), std::string::npos) << r.err;
  r = distortion(m, "part.vdist", "--resume --sizes full");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--sizes"), std::string::npos) << r.err;

  r = distortion(m, "part.vdist", "--resume");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["complete"].get<bool>());
  EXPECT_EQ(j["layers_resumed"].get<int64_t>(), 2);
  EXPECT_EQ(j["variants_measured"].get<int64_t>(), 120 + 84);
  EXPECT_EQ(slurp(dir_ / "part.vdist"), full);  // bit-identical to the uninterrupted run
}

}  // namespace
}  // namespace veil::testing

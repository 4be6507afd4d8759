// Models exported by torch.onnx give PyTorch's outputs within 1e-4 relative when run by veil.
// Runs where Debian's python3-torch is installed; skips cleanly elsewhere.
#include <gtest/gtest.h>

#include <cmath>

#include "cli_runner.hpp"
#include "veil/data/npy.hpp"

namespace veil::testing {
namespace {

bool have_torch() {
  return std::system("/usr/bin/python3 -c 'import torch, torchvision' >/dev/null 2>&1") == 0;
}

class TorchParity : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(TorchParity, SameOutputsAsPyTorch) {
  if (!have_torch()) GTEST_SKIP() << "python3-torch / python3-torchvision not installed";
  auto [name, opset] = GetParam();
  TempDir dir;
  std::string script = std::string(VEIL_SOURCE_DIR) + "/tests/e2e/python/export_torch_models.py";
  std::string cmd = "/usr/bin/python3 " + script + " " + dir.path().string() + " --opset " +
                    std::to_string(opset) + " --models " + name + " 2>" +
                    (dir / "export.log").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp(dir / "export.log");
  auto model = dir / (name + ".onnx");
  auto r =
      run_veil("infer --model " + model.string() + " --input " +
                   (dir / (name + ".x.npy")).string() + " --output " + (dir / "y.npy").string(),
               dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto got = data::read_npy(dir / "y.npy");
  auto want = data::read_npy(dir / (name + ".y.npy"));
  ASSERT_EQ(got.shape(), want.shape());
  double max_abs = 0;
  for (float v : want.floats()) max_abs = std::max(max_abs, static_cast<double>(std::fabs(v)));
  for (int64_t i = 0; i < got.numel(); ++i) {
    double g = got.data()[i], w = want.data()[i];
    // Relative to the output's scale: near-zero logits make per-element relative error noise.
    EXPECT_LE(std::fabs(g - w), 1e-4 * std::max(1.0, max_abs)) << name << " element " << i;
  }
}

// NaN and inf inputs: veil's outputs are NaN exactly where PyTorch's are, infinite where they are,
// and close elsewhere (image 2 has no non-finite input and must stay finite).
TEST(TorchParityNonFinite, SameNaNsAsPyTorch) {
  if (!have_torch()) GTEST_SKIP() << "python3-torch / python3-torchvision not installed";
  TempDir dir;
  std::string script = std::string(VEIL_SOURCE_DIR) + "/tests/e2e/python/export_torch_models.py";
  std::string cmd = "/usr/bin/python3 " + script + " " + dir.path().string() +
                    " --models nancnn 2>" + (dir / "export.log").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp(dir / "export.log");
  auto r = run_veil("infer --model " + (dir / "nancnn.onnx").string() + " --input " +
                        (dir / "nancnn.x.npy").string() + " --output " + (dir / "y.npy").string(),
                    dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto got = data::read_npy(dir / "y.npy");
  auto want = data::read_npy(dir / "nancnn.y.npy");
  ASSERT_EQ(got.shape(), want.shape());
  int64_t nans = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const float g = got.data()[i], w = want.data()[i];
    nans += std::isnan(w);
    if (std::isnan(w) || std::isinf(w))
      EXPECT_TRUE(std::isnan(w) ? std::isnan(g) : g == w) << "element " << i << ": " << g;
    else
      EXPECT_NEAR(g, w, 1e-4 * std::max(1.0f, std::fabs(w))) << "element " << i;
  }
  EXPECT_GT(nans, 0);
  for (int64_t i = 20; i < 30; ++i) EXPECT_TRUE(std::isfinite(want.data()[i])) << i;
  EXPECT_NE(r.err.find("non-finite values"), std::string::npos) << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    Exports, TorchParity,
    ::testing::Values(std::make_tuple("smallcnn", 9), std::make_tuple("smallcnn", 13),
                      std::make_tuple("resnet18", 13), std::make_tuple("mobilenet_v2", 13),
                      std::make_tuple("squeezenet1_1", 11)),
    [](const auto& info) {
      return std::get<0>(info.param) + "_opset" + std::to_string(std::get<1>(info.param));
    });

}  // namespace
}  // namespace veil::testing

// End-to-end: the core commands through the real binary on the embedded Fashion-MNIST data.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "veil/data/npy.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/zoo.hpp"
#include "veil/nn/executor.hpp"

namespace veil::testing {
namespace {

namespace fs = std::filesystem;

class CoreCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  TempDir dir_;
};

TEST_F(CoreCli, TrainEvalInfoInferRoundTrip) {
  auto model = dir_ / "lenet.onnx";
  auto r = run_veil(
      "train --arch lenet5 --epochs 1 --limit 3000 --test-limit 500 --json --out " + model.string(),
      dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto tj = nlohmann::json::parse(r.out);
  EXPECT_GT(tj["test_top1"].get<double>(), 0.5);  // one short epoch is far above chance (0.1)
  // With --json on stdout, the per-epoch line still reaches stderr (a long run's log).
  char epoch_line[64];
  std::snprintf(epoch_line, sizeof epoch_line, "test top-1 %.2f%%",
                100 * tj["epochs"][0]["test_top1"].get<double>());
  EXPECT_NE(r.err.find(epoch_line), std::string::npos) << r.err;
  ASSERT_TRUE(fs::exists(model));

  r = run_veil("eval --model " + model.string() + " --limit 500 --json", dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto ej = nlohmann::json::parse(r.out);
  EXPECT_EQ(ej["images"].get<int64_t>(), 500);
  // Same model, same 500 images, same preprocessing (from metadata): same accuracy as training
  // reported.
  EXPECT_NEAR(ej["top1"].get<double>(), tj["test_top1"].get<double>(), 1e-9);
  EXPECT_GE(ej["top5"].get<double>(), ej["top1"].get<double>());

  r = run_veil("info --model " + model.string() + " --json", dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto ij = nlohmann::json::parse(r.out);
  EXPECT_EQ(ij["params"].get<int64_t>(), 61706);
  // conv1 28*28*6*25 + conv2 10*10*16*150 + 400*120 + 120*84 + 84*10
  EXPECT_EQ(ij["macs"].get<int64_t>(),
            28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10);
  EXPECT_EQ(ij["relus"].get<int64_t>(), 28 * 28 * 6 + 10 * 10 * 16 + 120 + 84);

  // infer: the CLI's output equals the engine's output for the same input.
  Tensor x({2, 1, 28, 28});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(i % 255) / 255.0f;
  data::write_npy(dir_ / "x.npy", x);
  r = run_veil("infer --model " + model.string() + " --input " + (dir_ / "x.npy").string() +
                   " --output " + (dir_ / "y.npy").string(),
               dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto y = data::read_npy(dir_ / "y.npy");
  auto m = model::load_onnx(model);
  nn::Executor exec(m);
  auto expect = exec.forward({x});
  ASSERT_EQ(y.shape(), expect[0].shape());
  for (int64_t i = 0; i < y.numel(); ++i) EXPECT_FLOAT_EQ(y.data()[i], expect[0].data()[i]);
}

TEST_F(CoreCli, ErrorsAreOneLineAndLeaveNoFiles) {
  auto r = run_veil("eval --model " + (dir_ / "missing.onnx").string(), dir_);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("veil: error:"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  // A garbage model is refused cleanly.
  std::ofstream(dir_ / "bad.onnx") << "this is not a protobuf";
  r = run_veil("info --model " + (dir_ / "bad.onnx").string(), dir_);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("veil: error:"), std::string::npos) << r.err;

  // infer with a wrongly shaped input fails and does not create the output.
  auto model = dir_ / "m.onnx";
  auto m = model::build_arch("mlp", {});
  model::save_onnx(m, model);
  data::write_npy(dir_ / "x.npy", Tensor({1, 3, 5, 5}));
  r = run_veil("infer --model " + model.string() + " --input " + (dir_ / "x.npy").string() +
                   " --output " + (dir_ / "y.npy").string(),
               dir_);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "y.npy"));

  // Unknown architecture is a usage error.
  r = run_veil("train --arch alexnet --out " + (dir_ / "a.onnx").string(), dir_);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(fs::exists(dir_ / "a.onnx"));
}

}  // namespace
}  // namespace veil::testing

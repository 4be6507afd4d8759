// End-to-end: `veil lock` through the real binary on the embedded Fashion-MNIST data.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <span>

#include "cli_runner.hpp"
#include "veil/model/onnx.hpp"

namespace veil::testing {
namespace {

namespace fs = std::filesystem;

// Same initializer names, shapes and raw bytes (so -0.0 vs +0.0 and NaN payloads count).
bool same_weights(const fs::path& a, const fs::path& b) {
  auto ga = model::load_onnx(a).graph, gb = model::load_onnx(b).graph;
  if (ga.initializers.size() != gb.initializers.size()) return false;
  for (const auto& [name, t] : ga.initializers) {
    auto it = gb.initializers.find(name);
    if (it == gb.initializers.end() || it->second.shape() != t.shape()) return false;
    auto x = std::as_bytes(t.floats()), y = std::as_bytes(it->second.floats());
    if (!std::equal(x.begin(), x.end(), y.begin(), y.end())) return false;
  }
  return true;
}

class LockCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  TempDir dir_;
};

// The first impression of `veil lock keygen` with no tuning options: the locked model is at
// chance (the test split is balanced, 10 % per class), the restored one is the original bit for
// bit, and every layer is locked (no warning).
TEST_F(LockCli, DefaultKeygenLocksToChanceAndRestoresBitExactly) {
  const auto model = dir_ / "lenet.onnx", key = dir_ / "k.vkey", secret = dir_ / "s.secret";
  const auto locked = dir_ / "locked.onnx", restored = dir_ / "restored.onnx";
  auto r = run_veil("train --arch lenet5 --epochs 1 --limit 6000 --test-limit 500 --quiet --out " +
                        model.string(),
                    dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  r = run_veil("lock keygen --model " + model.string() + " --data fashion-mnist --key " +
                   key.string() + " --secret " + secret.string() + " --json",
               dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto kj = nlohmann::json::parse(r.out);
  EXPECT_TRUE(kj["unlocked_layers"].empty()) << r.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  EXPECT_EQ(kj["layers"].size(), 5u);  // conv1, conv2, fc1, fc2, fc3

  r = run_veil("lock eval --model " + model.string() + " --key " + key.string() + " --secret " +
                   secret.string() + " --data fashion-mnist --json",
               dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto ej = nlohmann::json::parse(r.out);
  EXPECT_EQ(ej["images"].get<int64_t>(), 10000);
  EXPECT_GT(ej["baseline_top1"].get<double>(), 60.0);  // a short epoch, far above chance
  EXPECT_LE(ej["encrypted_top1"].get<double>(), 12.0);
  EXPECT_EQ(ej["restored_top1"].get<double>(), ej["baseline_top1"].get<double>());
  EXPECT_TRUE(ej["restored_bit_exact"].get<bool>());

  // encrypt then decrypt through files: decrypt verifies the plaintext fingerprint, and every
  // restored weight is bit for bit the trained one (checked here independently of it).
  const std::string sk = " --key " + key.string() + " --secret " + secret.string();
  r = run_veil("lock encrypt --model " + model.string() + sk + " --out " + locked.string(), dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_veil("lock decrypt --model " + locked.string() + sk + " --out " + restored.string(),
               dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(same_weights(model, restored));
  EXPECT_FALSE(same_weights(model, locked));
}

// The paper's knobs stay reachable; on LeNet-5 they leave conv1 (150 weights) and fc3 (840)
// without a locked weight (budget floor(n x 0.001) = 0), which keygen names on stderr and in
// its JSON summary.
TEST_F(LockCli, ReferencePresetWarnsAboutLayersWithoutLockedWeights) {
  const auto model = dir_ / "lenet.onnx", key = dir_ / "k.vkey", secret = dir_ / "s.secret";
  auto r = run_veil("train --arch lenet5 --epochs 1 --limit 1000 --test-limit 100 --quiet --out " +
                        model.string(),
                    dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_veil("lock keygen --model " + model.string() + " --data fashion-mnist --samples 100 " +
                   "--preset reference --key " + key.string() + " --secret " + secret.string() +
                   " --json",
               dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto kj = nlohmann::json::parse(r.out);
  ASSERT_EQ(kj["unlocked_layers"].size(), 2u);
  EXPECT_EQ(kj["unlocked_layers"][0]["tensor"], "conv1.weight");
  EXPECT_EQ(kj["unlocked_layers"][0]["budget"], 0);
  EXPECT_EQ(kj["unlocked_layers"][1]["tensor"], "fc3.weight");
  EXPECT_NE(r.err.find("warning: layer conv1.weight"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("warning: layer fc3.weight"), std::string::npos) << r.err;
  EXPECT_EQ(kj["encrypted_weights"], 2 + 20 + 10);  // conv2 2400, fc1 48000 (capped), fc2 10080

  // An explicit option overrides the preset: --max-percent 0.2 gives every layer num = 20.
  r = run_veil("lock keygen --model " + model.string() + " --data fashion-mnist --samples 100 " +
                   "--preset reference --max-percent 0.2 --key " + (dir_ / "k2.vkey").string() +
                   " --secret " + secret.string() + " --json",
               dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  kj = nlohmann::json::parse(r.out);
  EXPECT_TRUE(kj["unlocked_layers"].empty());
  EXPECT_EQ(kj["encrypted_weights"], 5 * 20);
}

}  // namespace
}  // namespace veil::testing

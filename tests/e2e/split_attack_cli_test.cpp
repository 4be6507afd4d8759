// End-to-end: `veil split attack` through the real binary on the embedded Fashion-MNIST data.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_runner.hpp"

namespace veil::testing {
namespace {

class SplitAttackCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  TempDir dir_;
};

// The plain scheme hands the accelerator the weights: every layer is taken in the clear, and the
// report is a JSON document with one entry per offloaded layer.
TEST_F(SplitAttackCli, PlainSchemeGivesTheWeightsAwayAndTheJsonSaysSo) {
  const auto model = dir_ / "lenet.onnx";
  auto r = run_veil("train --arch lenet5 --epochs 1 --limit 2000 --test-limit 200 --quiet --out " +
                        model.string(),
                    dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_veil("split attack --model " + model.string() +
                   " --scheme plain --limit 3000 --data-fraction 0.1 --queries 128 --epochs 1 "
                   "--finetune-epochs 1 --test-limit 300 --threads 1 --json",
               dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["scheme"], "plain");
  EXPECT_EQ(j["attacker_images"], 300);
  EXPECT_EQ(j["transcript_images"], 128);
  EXPECT_EQ(j["test_images"], 300);
  ASSERT_EQ(j["layers"].size(), 5u);
  for (const auto& l : j["layers"]) {
    EXPECT_EQ(l["recovery"], "clear") << l.dump();
    EXPECT_NEAR(l["weight_cosine"].get<double>(), 1, 1e-6) << l.dump();
  }
  EXPECT_GE(j["fidelity"].get<double>(), 0);
  EXPECT_LE(j["fidelity"].get<double>(), 1);
}

// The view recorded by a real two-process run (`split run --transcript`) is what the attack
// reads with --transcript: under ShadowNet it pairs every layer from that file, and a transcript
// recorded under another scheme than --scheme is refused.
TEST_F(SplitAttackCli, AttacksARecordedTranscript) {
  const auto model = dir_ / "lenet.onnx", view = dir_ / "view.vtrs";
  auto r = run_veil("train --arch lenet5 --epochs 1 --limit 2000 --test-limit 200 --quiet --out " +
                        model.string(),
                    dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_veil("split run --model " + model.string() +
                   " --scheme shadownet --limit 128 --batch 64 --quiet --transcript " +
                   view.string(),
               dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_veil("split attack --model " + model.string() + " --transcript " + view.string() +
                   " --limit 3000 --data-fraction 0.1 --epochs 1 --finetune-epochs 1"
                   " --test-limit 300 --threads 1 --json",
               dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["scheme"], "shadownet");
  EXPECT_EQ(j["transcript_images"], 128);
  ASSERT_EQ(j["layers"].size(), 5u);
  int paired = 0;
  for (const auto& l : j["layers"]) paired += l["recovery"] == "paired";
  EXPECT_GE(paired, 4) << r.out;
  r = run_veil("split attack --model " + model.string() + " --transcript " + view.string() +
                   " --scheme hardened",
               dir_);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("recorded under shadownet"), std::string::npos) << r.err;
}

TEST_F(SplitAttackCli, RefusesAnUnknownScheme) {
  auto r = run_veil("split attack --model m.onnx --scheme shadow", dir_);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--scheme"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace veil::testing

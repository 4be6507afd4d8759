// End-to-end: `veil he eval --packing batch` (one image per slot, plaintext weights) reports
// its layout and refuses a batch larger than the slots with one line, writing nothing to stdout.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "cli_runner.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/zoo.hpp"

namespace veil::testing {
namespace {

TEST(HeBatchCli, BatchPackingReportsPlainWeightsAndRefusesOversizedBatches) {
  TempDir dir;
  const auto model = dir / "he-cnn.onnx";
  model::save_onnx(model::build_arch("he-cnn", {}), model);
  const std::string base = "he eval --quiet --mode full --model " + model.string();

  const CliResult big = run_veil(base + " --packing batch --batch 40000 --limit 4", dir);
  EXPECT_NE(big.exit_code, 0);
  EXPECT_TRUE(big.out.empty()) << big.out;
  EXPECT_NE(big.err.find("--batch 40000 exceeds the "), std::string::npos) << big.err;
  EXPECT_EQ(std::count(big.err.begin(), big.err.end(), '\n'), 1) << big.err;

  const CliResult latency = run_veil(base + " --batch 8 --limit 4", dir);
  EXPECT_NE(latency.exit_code, 0);
  EXPECT_NE(latency.err.find("--batch applies to --packing batch"), std::string::npos)
      << latency.err;

  const CliResult r = run_veil(base + " --packing batch --batch 8 --limit 8 --json", dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["weights"], "plain");
  EXPECT_EQ(j["packing"], "batch");
  EXPECT_EQ(j["batch"], 8);
  EXPECT_EQ(j["images"], 8);
  EXPECT_EQ(j["ops_per_batch"]["rotations"], 0);
  EXPECT_GT(j["images_per_s"].get<double>(), 0);
}

}  // namespace
}  // namespace veil::testing

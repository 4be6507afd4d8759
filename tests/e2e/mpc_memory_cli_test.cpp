// End-to-end: `veil mpc run` plans the three parties' memory before it starts them. A batch the
// budget cannot hold is refused at once, before the float reference or any party runs; a batch
// that fits runs, and each party's measured peak RSS stays within its plan plus the process's
// own baseline (what a one-image session uses), while the plan is not so loose that it refuses
// batches that would fit many times over.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "mpc_inputs.hpp"
#include "veil/model/fold_batch_norm.hpp"

namespace veil::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class MpcMemoryCli : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(MpcMemoryCli, ABatchOverTheBudgetIsRefusedBeforeAnyPartyStarts) {
  const fs::path model = save_lenet5(dir_ / "lenet5.onnx");
  const fs::path images = save_images(dir_ / "x.npy", 512, 97);
  const fs::path keep = dir_ / "session";
  const auto t0 = std::chrono::steady_clock::now();
  const CliResult r = run_veil("--max-memory 64M mpc run --model " + model.string() + " --input " +
                                   images.string() + " --n 512 --batch 512 --keep " + keep.string(),
                               dir_);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  // The step where the three plans together cross the budget: here already the input's sharing,
  // as the helper may run ahead through conv1 and send all of relu1's comparison bits.
  EXPECT_NE(r.err.find("veil: error: sharing the input: three-party inference at batch 512 needs"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("over the memory budget of 64.0 MiB; give --batch "), std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(keep / "client.log"));  // no party was started
  EXPECT_LT(seconds, 20);
  EXPECT_LT(children_max_rss(), uint64_t{300} << 20);

  // The batch it names runs under the same budget.
  const auto at = r.err.find("give --batch ") + 13;
  const std::string fits = r.err.substr(at, r.err.find(' ', at) - at);
  ASSERT_GT(std::stoi(fits), 0) << r.err;
  const CliResult ok = run_veil("--max-memory 64M mpc run --model " + model.string() + " --input " +
                                    images.string() + " --n 64 --batch " + fits + " --json",
                                dir_);
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;  // ASan's shadow memory and quarantine are not in the plan
#else
constexpr bool kSanitized = false;
#endif

TEST_F(MpcMemoryCli, EachPartyStaysWithinItsPlan) {
  if (kSanitized) GTEST_SKIP() << "peak RSS under AddressSanitizer is not the program's";
  model::ArchSpec spec;
  spec.seed = 5;
  model::Model m = model::build_arch("resnet20", spec);
  model::save_onnx(m, dir_ / "r20.onnx");
  const fs::path images = save_images(dir_ / "x.npy", 128, 89);
  auto run = [&](int batch) {
    const CliResult r = run_veil("mpc run --model " + (dir_ / "r20.onnx").string() + " --input " +
                                     images.string() + " --n " + std::to_string(batch) +
                                     " --batch " + std::to_string(batch) + " --json",
                                 dir_);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json::parse(r.out) : json();
  };
  const json one = run(1), many = run(128);
  ASSERT_FALSE(one.is_null());
  ASSERT_FALSE(many.is_null());
  for (const char* role : {"client", "server", "helper"}) {
    const json& a = one["parties"][role];
    const json& b = many["parties"][role];
    const double base = a["peak_rss_mb"].get<double>();  // the process and its fixed part
    const double planned = b["planned_peak_mb"].get<double>();
    const double growth = planned - a["planned_peak_mb"].get<double>();
    const double used = b["peak_rss_mb"].get<double>();
    EXPECT_GT(growth, 20) << role;  // the batch dominates, or the test proves nothing
    EXPECT_LE(used, planned + base) << role;
    EXPECT_GE(used - base, 0.4 * growth) << role;
  }
}

}  // namespace
}  // namespace veil::testing

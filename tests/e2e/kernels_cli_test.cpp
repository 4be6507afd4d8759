// End-to-end: `--kernels scalar|avx2|avx512` and VEIL_KERNELS choose the vector kernels of the
// whole process tree (the three parties of `mpc run` included), and the reports name them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_runner.hpp"
#include "veil/core/cpu.hpp"
#include "veil/data/npy.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/zoo.hpp"

namespace veil::testing {
namespace {

using nlohmann::json;

std::vector<KernelPath> supported_paths() {
  std::vector<KernelPath> paths;
  for (KernelPath p : {KernelPath::Scalar, KernelPath::Avx2, KernelPath::Avx512})
    if (p <= detected_kernel_path()) paths.push_back(p);
  return paths;
}

bool is_avx512_kernel(const std::string& name) {
  return name.find("avx512") != std::string::npos || name.find("amx") != std::string::npos;
}

TEST(KernelsCli, EveryPathRunsSecureInferenceAndTheReportNamesIt) {
  TempDir dir;
  model::ArchSpec spec;
  spec.seed = 5;
  model::Model m = model::build_arch("lenet5", spec);
  model::save_onnx(m, dir / "m.onnx");
  Tensor x({2, 1, 28, 28});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>((i * 13) % 256) / 255;
  data::write_npy(dir / "x.npy", x);
  for (KernelPath p : supported_paths()) {
    const std::string name = kernel_path_name(p);
    auto r = run_veil("--kernels " + name + " mpc run --model " + (dir / "m.onnx").string() +
                          " --input " + (dir / "x.npy").string() + " --json",
                      dir);
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    const json j = json::parse(r.out);
    EXPECT_DOUBLE_EQ(j["agreement"].get<double>(), 1.0) << name;
    const json& k = j["kernels"];
    EXPECT_EQ(k["path"], name);
    for (const char* part : {"ring_gemm", "private_compare", "z67"}) {
      const std::string kernel = k[part].get<std::string>();
      if (p != KernelPath::Avx512) EXPECT_FALSE(is_avx512_kernel(kernel)) << name << " " << part;
      if (p == KernelPath::Scalar)
        EXPECT_TRUE(kernel == "scalar" || kernel == "portable") << part << " " << kernel;
    }
  }
}

TEST(KernelsCli, HeBenchNamesTheCkksKernels) {
  TempDir dir;
  for (KernelPath p : supported_paths()) {
    const std::string name = kernel_path_name(p);
    auto r = run_veil("--kernels " + name + " he bench --n 8192 --reps 1 --json", dir);
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    const std::string kernels = json::parse(r.out)["kernels"].get<std::string>();
    if (p == KernelPath::Scalar) EXPECT_EQ(kernels, "scalar");
    if (p == KernelPath::Avx2) EXPECT_EQ(kernels, "avx2");
    if (p == KernelPath::Avx512)
      EXPECT_TRUE(kernels == "avx512-ifma" || kernels == "avx2") << kernels;
  }
}

TEST(KernelsCli, AnUnknownOrUnsupportedPathIsRefusedInOneLine) {
  TempDir dir;
  auto r = run_veil("--kernels sse9 he info", dir);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("scalar, avx2 or avx512"), std::string::npos) << r.err;
  if (detected_kernel_path() != KernelPath::Avx512) {
    r = run_veil("--kernels avx512 he info", dir);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("not supported by this CPU"), std::string::npos) << r.err;
  }
  setenv("VEIL_KERNELS", "avx1024", 1);
  r = run_veil("he info", dir);
  unsetenv("VEIL_KERNELS");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("VEIL_KERNELS"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace
}  // namespace veil::testing

#include "veil/core/cpu.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

#include "veil/core/error.hpp"

namespace veil {
namespace {

// Restores the process's kernel path after a test changes it.
class KernelPathTest : public ::testing::Test {
 protected:
  void TearDown() override { set_kernel_path(saved_); }
  KernelPath saved_ = kernel_path();
  bool user_onednn_cap_ = std::getenv("ONEDNN_MAX_CPU_ISA") != nullptr;
};

TEST_F(KernelPathTest, NamesRoundTrip) {
  for (KernelPath p : {KernelPath::Scalar, KernelPath::Avx2, KernelPath::Avx512})
    EXPECT_EQ(parse_kernel_path(kernel_path_name(p)), p);
  EXPECT_THROW(parse_kernel_path("AVX2"), InvalidArgument);
  EXPECT_THROW(parse_kernel_path(""), InvalidArgument);
  EXPECT_THROW(parse_kernel_path("avx512f"), InvalidArgument);
}

TEST_F(KernelPathTest, DetectedPathMatchesTheCpuFlags) {
  const CpuFeatures& f = cpu_features();
  const KernelPath d = detected_kernel_path();
  EXPECT_EQ(d >= KernelPath::Avx2, f.avx2 && f.fma && f.bmi2);
  if (d == KernelPath::Avx512) EXPECT_TRUE(f.avx512f && f.avx512dq && f.avx512bw && f.avx512vl);
}

TEST_F(KernelPathTest, ForcingAPathLimitsWhatKernelsMayUseAndReachesChildren) {
  for (KernelPath p : {KernelPath::Scalar, KernelPath::Avx2, KernelPath::Avx512}) {
    if (p > detected_kernel_path()) {
      EXPECT_THROW(set_kernel_path(p), InvalidArgument);
      continue;
    }
    set_kernel_path(p);
    EXPECT_EQ(kernel_path(), p);
    EXPECT_TRUE(kernel_path_allows(KernelPath::Scalar));
    EXPECT_EQ(kernel_path_allows(KernelPath::Avx2), p >= KernelPath::Avx2);
    EXPECT_EQ(kernel_path_allows(KernelPath::Avx512), p == KernelPath::Avx512);
    const char* env = std::getenv("VEIL_KERNELS");
    ASSERT_NE(env, nullptr);
    EXPECT_STREQ(env, kernel_path_name(p));
    EXPECT_NO_THROW(check_kernel_environment());
    // The float engine (oneDNN) is capped to the same level, unless the user had capped it.
    const char* onednn = std::getenv("ONEDNN_MAX_CPU_ISA");
    if (!user_onednn_cap_) {
      if (p == KernelPath::Avx512) {
        EXPECT_EQ(onednn, nullptr);
      } else {
        ASSERT_NE(onednn, nullptr);
        EXPECT_STREQ(onednn, p == KernelPath::Avx2 ? "AVX2" : "SSE41");
      }
    }
  }
}

TEST_F(KernelPathTest, ABadEnvironmentValueIsReported) {
  const std::string before = std::getenv("VEIL_KERNELS") ? std::getenv("VEIL_KERNELS") : "";
  setenv("VEIL_KERNELS", "sse9", 1);
  EXPECT_THROW(check_kernel_environment(), InvalidArgument);
  setenv("VEIL_KERNELS", before.c_str(), 1);
}

}  // namespace
}  // namespace veil

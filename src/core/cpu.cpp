#include "veil/core/cpu.hpp"

#include <atomic>
#include <cstdlib>
#include <string>

#include "veil/core/error.hpp"

namespace veil {

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    // __builtin_cpu_supports also checks that the OS saves the AVX / AVX-512 state (XCR0).
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.bmi2 = __builtin_cpu_supports("bmi2");
    f.avx512f = __builtin_cpu_supports("avx512f");
    f.avx512dq = __builtin_cpu_supports("avx512dq");
    f.avx512bw = __builtin_cpu_supports("avx512bw");
    f.avx512vl = __builtin_cpu_supports("avx512vl");
    f.avx512vbmi = __builtin_cpu_supports("avx512vbmi");
    f.avx512vbmi2 = __builtin_cpu_supports("avx512vbmi2");
    f.avx512ifma = __builtin_cpu_supports("avx512ifma");
#endif
    return f;
  }();
  return features;
}

KernelPath detected_kernel_path() {
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.bmi2;
  if (avx2 && f.avx512f && f.avx512dq && f.avx512bw && f.avx512vl) return KernelPath::Avx512;
  return avx2 ? KernelPath::Avx2 : KernelPath::Scalar;
}

namespace {

constexpr int kUnset = -1;
std::atomic<int> g_path{kUnset};

void check_supported(KernelPath path) {
  if (path > detected_kernel_path())
    throw InvalidArgument(
        std::string("kernel path ") + kernel_path_name(path) +
        " is not supported by this CPU (best: " + kernel_path_name(detected_kernel_path()) + ")");
}

// oneDNN (the float engine) picks its own instruction set; below avx512 it is capped too, so
// that a forced path is what a CPU without AVX-512 (or AVX2) runs from end to end. A value the
// user set for oneDNN is kept.
bool g_onednn_cap_ours = false;  // set before threads start (the CLI's option parsing)

void cap_onednn(KernelPath path) {
  if (std::getenv("ONEDNN_MAX_CPU_ISA") && !g_onednn_cap_ours) return;
  if (path == KernelPath::Avx512) {
    if (g_onednn_cap_ours) unsetenv("ONEDNN_MAX_CPU_ISA");
    g_onednn_cap_ours = false;
    return;
  }
  setenv("ONEDNN_MAX_CPU_ISA", path == KernelPath::Avx2 ? "AVX2" : "SSE41", 1);
  g_onednn_cap_ours = true;
}

}  // namespace

KernelPath kernel_path() {
  int p = g_path.load(std::memory_order_relaxed);
  if (p != kUnset) return static_cast<KernelPath>(p);
  KernelPath path = detected_kernel_path();
  if (const char* env = std::getenv("VEIL_KERNELS"); env && *env) {
    try {
      const KernelPath want = parse_kernel_path(env);
      if (want <= path) path = want;
    } catch (const InvalidArgument&) {
      // Reported by check_kernel_environment().
    }
  }
  // Concurrent first calls compute the same value.
  g_path.store(static_cast<int>(path), std::memory_order_relaxed);
  return path;
}

void check_kernel_environment() {
  const char* env = std::getenv("VEIL_KERNELS");
  if (!env || !*env) return;
  KernelPath path;
  try {
    path = parse_kernel_path(env);
    check_supported(path);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(std::string("VEIL_KERNELS: ") + e.what());
  }
  cap_onednn(path);
}

void set_kernel_path(KernelPath path) {
  check_supported(path);
  g_path.store(static_cast<int>(path), std::memory_order_relaxed);
  setenv("VEIL_KERNELS", kernel_path_name(path), 1);
  cap_onednn(path);
}

const char* kernel_path_name(KernelPath path) {
  switch (path) {
    case KernelPath::Scalar:
      return "scalar";
    case KernelPath::Avx2:
      return "avx2";
    case KernelPath::Avx512:
      return "avx512";
  }
  return "?";
}

KernelPath parse_kernel_path(std::string_view name) {
  if (name == "scalar") return KernelPath::Scalar;
  if (name == "avx2") return KernelPath::Avx2;
  if (name == "avx512") return KernelPath::Avx512;
  throw InvalidArgument("kernel path must be scalar, avx2 or avx512, not '" +
                        std::string(name.substr(0, 32)) + "'");
}

}  // namespace veil

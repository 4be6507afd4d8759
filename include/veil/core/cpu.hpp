// The x86 instruction-set extensions veil's run-time kernel dispatch asks about, read once, and
// the kernel path the user allows.
//
// Every module that picks a vector kernel (he NTTs and RNS kernels, mpc ring GEMM and
// convolution, PrivateCompare, Z_67 sampling and packing, min-plus) asks here instead of
// querying CPUID itself. Extensions that also need the OS's consent (AMX tile state) are checked
// where they are used.
//
// Kernel paths are ordered: scalar < avx2 < avx512. A module runs the best kernel it has whose
// path is at most kernel_path() and whose extensions the CPU has, so `--kernels avx2` (or
// VEIL_KERNELS=avx2) on an AVX-512 machine runs and benchmarks exactly what an AVX2-only machine
// runs. AMX belongs to the avx512 path (every AMX CPU has AVX-512). Every path gives bit-identical
// results (tested per module).
#pragma once

#include <string_view>

namespace veil {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool bmi2 = false;
  bool avx512f = false;
  bool avx512dq = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vbmi = false;
  bool avx512vbmi2 = false;
  bool avx512ifma = false;
};

const CpuFeatures& cpu_features();

enum class KernelPath { Scalar = 0, Avx2 = 1, Avx512 = 2 };

// The best path this CPU supports: avx512 with AVX-512 F/DQ/BW/VL, avx2 with AVX2 + FMA + BMI2
// (x86-64-v3), else scalar.
KernelPath detected_kernel_path();

// The path in use: VEIL_KERNELS (scalar|avx2|avx512) if set when first asked, else
// detected_kernel_path(), unless set_kernel_path() chose one. Never throws (kernels ask from
// worker threads): a VEIL_KERNELS that is not a path or names one the CPU lacks is ignored here,
// and check_kernel_environment() reports it.
KernelPath kernel_path();

// Throws InvalidArgument if VEIL_KERNELS is set to something kernel_path() cannot honour (the
// CLI calls it first, so a typo fails in one line instead of being ignored). Below avx512 it
// also caps oneDNN's instruction set (ONEDNN_MAX_CPU_ISA, unless set), as set_kernel_path does.
void check_kernel_environment();

// Forces a path for the whole process (the CLI's --kernels). Also exports VEIL_KERNELS so child
// processes (the parties of `mpc run`, split's accelerator) run the same path, and below avx512
// caps oneDNN's instruction set (ONEDNN_MAX_CPU_ISA = AVX2 or SSE41, unless the user set it;
// read by oneDNN when it first runs, so call this before any float kernel). Throws
// InvalidArgument if the CPU lacks it. Call before kernels run: a kernel already in flight
// keeps the path it started with.
void set_kernel_path(KernelPath path);

// True when kernels of `path` may run: path <= kernel_path(). Modules still check the CPU
// extensions their kernels need.
inline bool kernel_path_allows(KernelPath path) { return path <= kernel_path(); }

const char* kernel_path_name(KernelPath path);  // "scalar", "avx2", "avx512"
// Throws InvalidArgument naming the accepted values.
KernelPath parse_kernel_path(std::string_view name);

}  // namespace veil

// The CKKS micro-benchmark behind `veil he bench`: median wall time of each operation at the
// two reference parameter sets (N = 8192 with {60,40,40,60}, N = 16384 with {60,40x6,60}).
#pragma once

#include <string>
#include <vector>

#include "veil/he/context.hpp"

namespace veil::he {

struct BenchResult {
  std::string op;
  double median_ms = 0;      // wall clock
  double median_cpu_ms = 0;  // CPU time of the whole process (all threads)
  int reps = 0;
};

// The reference parameters for ring dimension 8192 or 16384 (InvalidArgument otherwise).
CkksParameters bench_parameters(size_t n);

// The CKKS kernels in use, e.g. "avx2 (NTT: avx2 for every prime)" -- what the benchmark's
// rows measure (core/cpu.hpp's kernel path within this CPU's extensions).
std::string kernel_description();

// Runs every operation `reps` times (after one warm-up) with `threads` threads.
std::vector<BenchResult> run_bench(size_t n, int threads, int reps);

}  // namespace veil::he

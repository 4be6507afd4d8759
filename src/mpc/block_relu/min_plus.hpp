// The inner loop of the knapsack's min-plus DP (knapsack.cpp): cur[x] = min(cur[x], src[x] + d).
// Vector kernels (AVX-512, AVX2) are chosen at run time; every kernel computes each element with
// one IEEE addition and one exact minimum, so all of them give bit-identical rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace veil::mpc::detail {

enum class MinPlusKernel { Scalar, Avx2, Avx512 };

// The fastest kernel this CPU runs.
MinPlusKernel best_min_plus_kernel();
// Kernels this CPU runs (for tests).
std::vector<MinPlusKernel> available_min_plus_kernels();

// cur[x] = min(cur[x], src[x] + d) for x in [0, n). Inputs hold no NaN.
void min_plus_accumulate(MinPlusKernel k, double* cur, const double* src, size_t n, double d);

// cur[x] = min_j src[x - cost[j]] + value[j] for x in [0, n) and j in [0, options) (cur is only
// written): all options at once, the running minima held in registers (every src[x - cost[j]]
// must be readable). Same result as filling cur with +inf and one min_plus_accumulate per
// option: the minimum of values without NaN or -0 does not depend on the order.
void min_plus_options(MinPlusKernel k, double* cur, const double* src, size_t n,
                      const int64_t* cost, const double* value, size_t options);

}  // namespace veil::mpc::detail

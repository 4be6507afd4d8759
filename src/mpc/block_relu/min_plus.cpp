#include "min_plus.hpp"

#include <immintrin.h>

#include <limits>

#include "veil/core/cpu.hpp"

namespace veil::mpc::detail {
namespace {

bool has_avx2() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

void scalar(double* cur, const double* src, size_t n, double d) {
  for (size_t x = 0; x < n; ++x) {
    const double t = src[x] + d;
    cur[x] = t < cur[x] ? t : cur[x];
  }
}

void scalar_options(double* cur, const double* src, size_t n, const int64_t* cost,
                    const double* value, size_t options) {
  for (size_t x = 0; x < n; ++x) {
    double m = std::numeric_limits<double>::infinity();
    for (size_t j = 0; j < options; ++j) {
      const double t = src[static_cast<int64_t>(x) - cost[j]] + value[j];
      m = t < m ? t : m;
    }
    cur[x] = m;
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) void avx2_options(double* cur, const double* src, size_t n,
                                                  const int64_t* cost, const double* value,
                                                  size_t options) {
  size_t x = 0;
  for (; x + 16 <= n; x += 16) {
    const __m256d inf = _mm256_set1_pd(std::numeric_limits<double>::infinity());
    __m256d a0 = inf, a1 = inf, a2 = inf, a3 = inf;
    for (size_t j = 0; j < options; ++j) {
      const double* p = src + static_cast<int64_t>(x) - cost[j];
      const __m256d vd = _mm256_set1_pd(value[j]);
      a0 = _mm256_min_pd(_mm256_add_pd(_mm256_loadu_pd(p), vd), a0);
      a1 = _mm256_min_pd(_mm256_add_pd(_mm256_loadu_pd(p + 4), vd), a1);
      a2 = _mm256_min_pd(_mm256_add_pd(_mm256_loadu_pd(p + 8), vd), a2);
      a3 = _mm256_min_pd(_mm256_add_pd(_mm256_loadu_pd(p + 12), vd), a3);
    }
    _mm256_storeu_pd(cur + x, a0);
    _mm256_storeu_pd(cur + x + 4, a1);
    _mm256_storeu_pd(cur + x + 8, a2);
    _mm256_storeu_pd(cur + x + 12, a3);
  }
  scalar_options(cur + x, src + x, n - x, cost, value, options);
}

__attribute__((target("avx512f"))) void avx512_options(double* cur, const double* src, size_t n,
                                                       const int64_t* cost, const double* value,
                                                       size_t options) {
  size_t x = 0;
  // 64 entries per strip: eight running minima, so the per-option address and broadcast work is
  // spread over more vector operations.
  for (; x + 64 <= n; x += 64) {
    __m512d a[8];
    for (auto& v : a) v = _mm512_set1_pd(std::numeric_limits<double>::infinity());
    for (size_t j = 0; j < options; ++j) {
      const double* p = src + static_cast<int64_t>(x) - cost[j];
      const __m512d vd = _mm512_set1_pd(value[j]);
      // Masked form with a full mask: GCC 12 warns about _mm512_min_pd's undefined operand.
      for (int i = 0; i < 8; ++i)
        a[i] = _mm512_mask_min_pd(a[i], 0xff, _mm512_add_pd(_mm512_loadu_pd(p + 8 * i), vd), a[i]);
    }
    for (int i = 0; i < 8; ++i) _mm512_storeu_pd(cur + x + 8 * i, a[i]);
  }
  avx2_options(cur + x, src + x, n - x, cost, value, options);
}

__attribute__((target("avx2"))) void avx2(double* cur, const double* src, size_t n, double d) {
  const __m256d vd = _mm256_set1_pd(d);
  size_t x = 0;
  for (; x + 8 <= n; x += 8) {
    __m256d a = _mm256_add_pd(_mm256_loadu_pd(src + x), vd);
    __m256d b = _mm256_add_pd(_mm256_loadu_pd(src + x + 4), vd);
    // _mm256_min_pd(t, c) = t < c ? t : c, the scalar kernel's rule.
    _mm256_storeu_pd(cur + x, _mm256_min_pd(a, _mm256_loadu_pd(cur + x)));
    _mm256_storeu_pd(cur + x + 4, _mm256_min_pd(b, _mm256_loadu_pd(cur + x + 4)));
  }
  scalar(cur + x, src + x, n - x, d);
}

__attribute__((target("avx512f"))) void avx512(double* cur, const double* src, size_t n, double d) {
  const __m512d vd = _mm512_set1_pd(d);
  size_t x = 0;
  for (; x + 16 <= n; x += 16) {
    __m512d a = _mm512_add_pd(_mm512_loadu_pd(src + x), vd);
    __m512d b = _mm512_add_pd(_mm512_loadu_pd(src + x + 8), vd);
    const __m512d c0 = _mm512_loadu_pd(cur + x), c1 = _mm512_loadu_pd(cur + x + 8);
    _mm512_storeu_pd(cur + x, _mm512_mask_min_pd(c0, 0xff, a, c0));
    _mm512_storeu_pd(cur + x + 8, _mm512_mask_min_pd(c1, 0xff, b, c1));
  }
  scalar(cur + x, src + x, n - x, d);
}
#endif

}  // namespace

std::vector<MinPlusKernel> available_min_plus_kernels() {
  std::vector<MinPlusKernel> k = {MinPlusKernel::Scalar};
#if defined(__x86_64__) && defined(__GNUC__)
  if (has_avx2()) k.push_back(MinPlusKernel::Avx2);
  if (cpu_features().avx512f) k.push_back(MinPlusKernel::Avx512);
#endif
  return k;
}

MinPlusKernel best_min_plus_kernel() {
  // The best kernel within the user's kernel path (--kernels, VEIL_KERNELS).
  MinPlusKernel best = MinPlusKernel::Scalar;
  for (MinPlusKernel k : available_min_plus_kernels()) {
    const KernelPath need = k == MinPlusKernel::Avx512 ? KernelPath::Avx512
                            : k == MinPlusKernel::Avx2 ? KernelPath::Avx2
                                                       : KernelPath::Scalar;
    if (kernel_path_allows(need)) best = k;
  }
  return best;
}

void min_plus_accumulate(MinPlusKernel k, double* cur, const double* src, size_t n, double d) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (k == MinPlusKernel::Avx512) return avx512(cur, src, n, d);
  if (k == MinPlusKernel::Avx2) return avx2(cur, src, n, d);
#endif
  scalar(cur, src, n, d);
}

}  // namespace veil::mpc::detail

namespace veil::mpc::detail {

void min_plus_options(MinPlusKernel k, double* cur, const double* src, size_t n,
                      const int64_t* cost, const double* value, size_t options) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (k == MinPlusKernel::Avx512) return avx512_options(cur, src, n, cost, value, options);
  if (k == MinPlusKernel::Avx2) return avx2_options(cur, src, n, cost, value, options);
#endif
  scalar_options(cur, src, n, cost, value, options);
}

}  // namespace veil::mpc::detail

// AVX2 butterfly stages of the encoder's FFTs; see fft_avx2.hpp. The scalar code they must match
// is CkksEncoder::fft_special / fft_special_inv (the library is built without FMA contraction, so
// neither side fuses).
#include "fft_avx2.hpp"

#include <immintrin.h>

#define VEIL_AVX2 __attribute__((target("avx2,fma,bmi2")))
#define VEIL_AVX2_INLINE VEIL_AVX2 inline __attribute__((always_inline))

namespace veil::he::avx2 {

namespace {

// y * r for two complex numbers: [y_re r_re - y_im r_im, y_im r_re + y_re r_im] (addition
// commutes exactly, so this is the scalar code's y_re r_im + y_im r_re).
VEIL_AVX2_INLINE __m256d cmul(__m256d y, __m256d r) {
  const __m256d rr = _mm256_movedup_pd(r);       // r_re r_re
  const __m256d ri = _mm256_permute_pd(r, 0xF);  // r_im r_im
  const __m256d ys = _mm256_permute_pd(y, 0x5);  // y_im y_re
  return _mm256_addsub_pd(_mm256_mul_pd(y, rr), _mm256_mul_pd(ys, ri));
}

template <bool Forward>
VEIL_AVX2_INLINE void butterfly(__m256d& x, __m256d& y, __m256d r) {
  if constexpr (Forward) {
    const __m256d w = cmul(y, r);
    y = _mm256_sub_pd(x, w);
    x = _mm256_add_pd(x, w);
  } else {
    const __m256d t = _mm256_sub_pd(x, y);
    x = _mm256_add_pd(x, y);
    y = cmul(t, r);
  }
}

// A stage with butterfly span `half` >= 2: two butterflies of one group per register pair.
template <bool Forward>
VEIL_AVX2_INLINE void stage(double* d, size_t size, size_t half, const double* roots) {
  const double* rt = roots + 2 * half;
  for (size_t i = 0; i < size; i += 2 * half) {
    double* x = d + 2 * i;
    double* y = x + 2 * half;
    for (size_t j = 0; j < half; j += 2) {
      __m256d X = _mm256_loadu_pd(x + 2 * j), Y = _mm256_loadu_pd(y + 2 * j);
      butterfly<Forward>(X, Y, _mm256_loadu_pd(rt + 2 * j));
      _mm256_storeu_pd(x + 2 * j, X);
      _mm256_storeu_pd(y + 2 * j, Y);
    }
  }
}

// half = 1: one butterfly per group, two groups (4 complex numbers) at a time, one root.
template <bool Forward>
VEIL_AVX2_INLINE void stage_half1(double* d, size_t size, const double* roots) {
  const __m256d r = _mm256_broadcast_pd(reinterpret_cast<const __m128d*>(roots + 2));
  for (size_t i = 0; i < size; i += 4) {
    const __m256d a = _mm256_loadu_pd(d + 2 * i), b = _mm256_loadu_pd(d + 2 * i + 4);
    __m256d X = _mm256_permute2f128_pd(a, b, 0x20), Y = _mm256_permute2f128_pd(a, b, 0x31);
    butterfly<Forward>(X, Y, r);
    _mm256_storeu_pd(d + 2 * i, _mm256_permute2f128_pd(X, Y, 0x20));
    _mm256_storeu_pd(d + 2 * i + 4, _mm256_permute2f128_pd(X, Y, 0x31));
  }
}

}  // namespace

VEIL_AVX2 void fft_stages(double* d, size_t size, const double* roots) {
  stage_half1<true>(d, size, roots);
  for (size_t half = 2; half < size; half <<= 1) stage<true>(d, size, half, roots);
}

VEIL_AVX2 void fft_inv_stages(double* d, size_t size, const double* inv_roots) {
  for (size_t half = size >> 1; half >= 2; half >>= 1) stage<false>(d, size, half, inv_roots);
  stage_half1<false>(d, size, inv_roots);
}

}  // namespace veil::he::avx2

#include "veil/mpc/protocols/private_compare.hpp"

#include <immintrin.h>

#include <cstring>
#include <string>

#include "private_compare_avx2.hpp"
#include "veil/core/cpu.hpp"
#include "veil/core/error.hpp"
#include "veil/mpc/kernels/z67.hpp"

namespace veil::mpc {
namespace {

// Writes digit i of one element to out[(i + rot) mod m]. Why a random rotation instead of
// SecureNN's random permutation: the helper sees the digit sums d_i = s_i c_i, which are
// independent uniform non-zero values except for at most one zero at the position i* of the
// first differing bit. Rotating by a uniform offset makes the zero's position uniform whatever
// i* is, so the helper's view has exactly the distribution a uniform permutation would give;
// it costs one coin per element instead of m - 1.
//
// beta = 0: c_i = q_i - x_i + 1 + sum_{k>i} (x_k xor q_k) with q = r   (zero iff x > r)
// beta = 1: c_i = x_i - q_i + 1 + sum_{k>i} (x_k xor q_k) with q = r+1 (zero iff x < r+1)
// with the "+1" and the q terms carried by the server (j = 1) only; x_k xor q_k of shared bits
// is x_k when q_k = 0 and j - x_k when q_k = 1.
void element_scalar(int m, bool client, uint64_t r, unsigned beta, const uint8_t* xs,
                    const uint8_t* sv, const uint8_t* uv, unsigned rot, uint8_t* out) {
  const unsigned jflag = client ? 0 : 1;
  auto emit = [&](int i, unsigned ci) {
    unsigned d = (sv[i] * (ci % kP) + (client ? uv[i] : kP - uv[i])) % kP;
    int at = i + static_cast<int>(rot);
    out[at >= m ? at - m : at] = static_cast<uint8_t>(d);
  };
  const uint64_t mask_m = (uint64_t{1} << m) - 1;
  if (beta == 1 && r == mask_m) {
    // x > 2^m - 1 is impossible, so beta' must be 1: plant exactly one zero (the other digits
    // are 1, then masked by the random multipliers like any non-zero digit).
    for (int i = 0; i < m; ++i) emit(i, jflag ? (i == 0 ? 0u : 1u) : 0u);
    return;
  }
  const uint64_t q = beta ? r + 1 : r;
  unsigned acc = 0;
  for (int i = m - 1; i >= 0; --i) {
    unsigned qi = static_cast<unsigned>(q >> i) & 1u, xi = xs[i];
    unsigned ci = beta == 0 ? (kP - xi) + jflag * (qi + 1) : xi + jflag * (1 - qi);
    emit(i, ci + acc);
    acc = (acc + (qi ? (kP - xi) + jflag : xi)) % kP;
  }
}

#define VEIL_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

// x mod 67 for 16-bit lanes below 2^13: 979 = ceil(2^16 / 67) overestimates the quotient by at
// most one there, and the min() folds the resulting negative remainder back.
VEIL_AVX512 inline __m512i mod67(__m512i x) {
  const __m512i q = _mm512_mulhi_epu16(x, _mm512_set1_epi16(979));
  const __m512i r = _mm512_sub_epi16(x, _mm512_mullo_epi16(q, _mm512_set1_epi16(kP)));
  return _mm512_min_epu16(r, _mm512_add_epi16(r, _mm512_set1_epi16(kP)));
}

// v[i] + v[i+1] + ... + v[31] in every 16-bit lane (Hillis-Steele scan toward lane 0).
VEIL_AVX512 inline __m512i suffix_sum(__m512i v, const __m512i* shift_idx) {
  for (int s = 0; s < 5; ++s) {
    const __mmask32 keep = static_cast<__mmask32>((uint64_t{1} << (32 - (1 << s))) - 1);
    v = _mm512_add_epi16(v, _mm512_maskz_permutexvar_epi16(keep, shift_idx[s], v));
  }
  return v;
}

// All m digits of one element at once, in two vectors of 32 16-bit lanes (lanes >= m are zero:
// x_k = q_k = 0 there, since q < 2^m). acc_i, the running sum over the higher bits, is the
// exclusive suffix sum of t_k = (q_k ? 67 - x_k + j : x_k); sums stay below 63 * 68 < 2^13, so
// the reduction mod 67 waits until the end. kHalves = 1 when m <= 32 (approximate DReLU): the
// upper vector would be all zero, so its work is skipped.
template <int kHalves>
VEIL_AVX512 void element_avx512(int m, bool client, uint64_t r, unsigned beta, const uint8_t* xs,
                                const uint8_t* sv, const uint8_t* uv, unsigned rot, uint8_t* out,
                                const __m512i* shift_idx, const __m512i* lane_ids) {
  const uint64_t mask_m = (uint64_t{1} << m) - 1;
  if (beta == 1 && r == mask_m) {
    element_scalar(m, client, r, beta, xs, sv, uv, rot, out);
    return;
  }
  const uint64_t q = (beta ? r + 1 : r) & mask_m;  // the scalar kernel ignores higher bits
  const int j = client ? 0 : 1;
  const __mmask32 valid[2] = {static_cast<__mmask32>(mask_m), static_cast<__mmask32>(mask_m >> 32)};
  const __mmask32 qbit[2] = {static_cast<__mmask32>(q), static_cast<__mmask32>(q >> 32)};
  const __m512i one = _mm512_set1_epi16(1), p = _mm512_set1_epi16(kP);
  __m512i x[2], t[2], s[2];
  for (int h = 0; h < kHalves; ++h) {
    x[h] = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(valid[h], xs + 32 * h));
    t[h] =
        _mm512_mask_sub_epi16(x[h], qbit[h], _mm512_set1_epi16(static_cast<int16_t>(kP + j)), x[h]);
    s[h] = suffix_sum(t[h], shift_idx);
  }
  // The upper half's total (its lane 0) belongs to every lower lane's suffix.
  if (kHalves == 2)
    s[0] = _mm512_add_epi16(s[0], _mm512_permutexvar_epi16(_mm512_setzero_si512(), s[1]));
  __m512i dig[2];
  for (int h = 0; h < kHalves; ++h) {
    const __m512i acc = _mm512_sub_epi16(s[h], t[h]);
    const __m512i qv = _mm512_maskz_mov_epi16(qbit[h], one);
    __m512i c;
    if (beta == 0)  // 67 - x + j (1 + q)
      c = _mm512_sub_epi16(p, x[h]);
    else  // x + j (1 - q)
      c = x[h];
    if (j == 1)
      c = beta == 0 ? _mm512_add_epi16(_mm512_add_epi16(c, one), qv)
                    : _mm512_sub_epi16(_mm512_add_epi16(c, one), qv);
    const __m512i v = mod67(_mm512_add_epi16(c, acc));
    const __m512i svv = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(valid[h], sv + 32 * h));
    __m512i u = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(valid[h], uv + 32 * h));
    if (!client) u = _mm512_sub_epi16(p, u);
    dig[h] = mod67(_mm512_add_epi16(_mm512_mullo_epi16(svv, v), u));
  }
  // out[(i + rot) mod m] = d[i]: output lane o takes lane (o - rot) mod m of the 64 lanes of
  // dig[0], dig[1] (vpermt2w; bit 5 of an index picks dig[1]). Lanes o >= m are not stored.
  const __m512i rotv = _mm512_set1_epi16(static_cast<int16_t>(rot));
  const __m512i mv = _mm512_set1_epi16(static_cast<int16_t>(m));
  for (int h = 0; h < kHalves; ++h) {
    __m512i idx = _mm512_sub_epi16(lane_ids[h], rotv);
    idx = _mm512_mask_add_epi16(idx, _mm512_movepi16_mask(idx), idx, mv);
    const __m512i rotated = kHalves == 2 ? _mm512_permutex2var_epi16(dig[0], idx, dig[1])
                                         : _mm512_permutexvar_epi16(idx, dig[0]);
    _mm256_mask_storeu_epi8(out + 32 * h, valid[h],
                            _mm512_maskz_cvtepi16_epi8(~__mmask32{0}, rotated));
  }
}

VEIL_AVX512 void run_avx512(int m, bool client, size_t n, const uint64_t* r, const uint8_t* beta,
                            const uint8_t* xs, const uint8_t* sv, const uint8_t* uv,
                            const uint8_t* rot, uint8_t* out) {
  alignas(64) int16_t idx[5][32];
  for (int s = 0; s < 5; ++s)
    for (int i = 0; i < 32; ++i) idx[s][i] = static_cast<int16_t>((i + (1 << s)) & 31);
  __m512i shift_idx[5];
  for (int s = 0; s < 5; ++s) shift_idx[s] = _mm512_load_si512(idx[s]);
  alignas(64) int16_t ids[64];
  for (int i = 0; i < 64; ++i) ids[i] = static_cast<int16_t>(i);
  const __m512i lane_ids[2] = {_mm512_load_si512(ids), _mm512_load_si512(ids + 32)};
  const size_t mm = static_cast<size_t>(m);
  auto each = [&](auto element) {
    for (size_t e = 0; e < n; ++e)
      element(m, client, r[e], beta[e], xs + e * mm, sv + e * mm, uv + e * mm, rot[e], out + e * mm,
              shift_idx, lane_ids);
  };
  if (m > 32)
    each(element_avx512<2>);
  else
    each(element_avx512<1>);
}

VEIL_AVX512 void bit_shares_avx512(int m, size_t n, const uint64_t* r, uint8_t* shares) {
  const __mmask64 valid = (uint64_t{1} << m) - 1;
  const __m512i p = _mm512_set1_epi8(static_cast<char>(kP)), one = _mm512_set1_epi8(1);
  const size_t mm = static_cast<size_t>(m);
  for (size_t e = 0; e < n; ++e) {
    uint8_t* s = shares + e * mm;
    const __m512i c = _mm512_maskz_loadu_epi8(valid, s);
    // bit + 67 - c, then one conditional subtraction of 67 (values stay below 2 * 67).
    __m512i v = _mm512_sub_epi8(_mm512_mask_add_epi8(p, static_cast<__mmask64>(r[e]), p, one), c);
    v = _mm512_min_epu8(v, _mm512_sub_epi8(v, p));
    _mm512_mask_storeu_epi8(s, valid, v);
  }
}

VEIL_AVX512 void any_zero_avx512(int m, size_t n, const uint8_t* dc, const uint8_t* ds,
                                 uint8_t* out) {
  const __mmask64 valid = (uint64_t{1} << m) - 1;
  const __m512i p = _mm512_set1_epi8(static_cast<char>(kP));
  const size_t mm = static_cast<size_t>(m);
  for (size_t e = 0; e < n; ++e) {
    const __m512i sum = _mm512_add_epi8(_mm512_maskz_loadu_epi8(valid, dc + e * mm),
                                        _mm512_maskz_loadu_epi8(valid, ds + e * mm));
    // Digits are < 67, so a sum is 0 mod 67 iff it is 0 or 67.
    const __mmask64 zero = _mm512_mask_cmpeq_epi8_mask(valid, sum, _mm512_setzero_si512()) |
                           _mm512_mask_cmpeq_epi8_mask(valid, sum, p);
    out[e] = zero != 0;
  }
}

#undef VEIL_AVX512

bool avx512_usable() {
  const CpuFeatures& f = cpu_features();
  return f.avx512f && f.avx512bw && f.avx512vl;
}

}  // namespace

void detail::private_compare_element_scalar(int m, bool client, uint64_t r, unsigned beta,
                                            const uint8_t* xs, const uint8_t* sv, const uint8_t* uv,
                                            unsigned rot, uint8_t* out) {
  element_scalar(m, client, r, beta, xs, sv, uv, rot, out);
}

bool compare_kernel_available(CompareKernel kernel) {
  switch (kernel) {
    case CompareKernel::Avx512:
      return avx512_usable();
    case CompareKernel::Avx2:
      return detail::private_compare_avx2_usable();
    default:
      return true;
  }
}

namespace {

// The kernel Auto runs: the best the CPU has within kernel_path().
CompareKernel auto_kernel() {
  if (avx512_usable() && kernel_path_allows(KernelPath::Avx512)) return CompareKernel::Avx512;
  if (detail::private_compare_avx2_usable() && kernel_path_allows(KernelPath::Avx2))
    return CompareKernel::Avx2;
  return CompareKernel::Scalar;
}

// Validates the arguments every entry point shares and picks the kernel.
CompareKernel resolve(int m, CompareKernel kernel) {
  if (m < 1 || m > 63) throw InvalidArgument("PrivateCompare: m must be in [1, 63]");
  if (!compare_kernel_available(kernel))
    throw InvalidArgument(std::string("PrivateCompare: ") +
                          (kernel == CompareKernel::Avx2 ? "AVX2" : "AVX-512BW") +
                          " kernel not available on this machine");
  return kernel == CompareKernel::Auto ? auto_kernel() : kernel;
}

}  // namespace

void private_compare_bit_shares(int m, size_t n, const uint64_t* r, uint8_t* shares,
                                CompareKernel kernel) {
  switch (resolve(m, kernel)) {
    case CompareKernel::Avx512:
      bit_shares_avx512(m, n, r, shares);
      return;
    case CompareKernel::Avx2:
      detail::private_compare_bit_shares_avx2(m, n, r, shares);
      return;
    default:
      break;
  }
  const size_t mm = static_cast<size_t>(m);
  for (size_t e = 0; e < n; ++e)
    for (size_t i = 0; i < mm; ++i) {
      uint8_t& b = shares[e * mm + i];
      b = static_cast<uint8_t>((((r[e] >> i) & 1) + kP - b) % kP);
    }
}

void private_compare_any_zero(int m, size_t n, const uint8_t* dc, const uint8_t* ds,
                              uint8_t* any_zero, CompareKernel kernel) {
  switch (resolve(m, kernel)) {
    case CompareKernel::Avx512:
      any_zero_avx512(m, n, dc, ds, any_zero);
      return;
    case CompareKernel::Avx2:
      detail::private_compare_any_zero_avx2(m, n, dc, ds, any_zero);
      return;
    default:
      break;
  }
  const size_t mm = static_cast<size_t>(m);
  for (size_t e = 0; e < n; ++e) {
    bool zero = false;
    for (size_t i = 0; i < mm; ++i) zero |= (dc[e * mm + i] + ds[e * mm + i]) % kP == 0;
    any_zero[e] = zero;
  }
}

const char* compare_kernel_name() {
  switch (auto_kernel()) {
    case CompareKernel::Avx512:
      return "avx512bw";
    case CompareKernel::Avx2:
      return "avx2";
    default:
      return "scalar";
  }
}

void private_compare_digits(int m, bool client, size_t n, const uint64_t* r, const uint8_t* beta,
                            const uint8_t* xs, const uint8_t* sv, const uint8_t* uv,
                            const uint8_t* rot, uint8_t* out, CompareKernel kernel) {
  switch (resolve(m, kernel)) {
    case CompareKernel::Avx512:
      run_avx512(m, client, n, r, beta, xs, sv, uv, rot, out);
      return;
    case CompareKernel::Avx2:
      detail::private_compare_digits_avx2(m, client, n, r, beta, xs, sv, uv, rot, out);
      return;
    default:
      break;
  }
  const size_t mm = static_cast<size_t>(m);
  for (size_t e = 0; e < n; ++e)
    element_scalar(m, client, r[e], beta[e], xs + e * mm, sv + e * mm, uv + e * mm, rot[e],
                   out + e * mm);
}

}  // namespace veil::mpc

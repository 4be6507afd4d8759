// One party's digits of SecureNN's PrivateCompare (Wagh et al., PoPETs 2019, Algorithm 1), as
// used by the DReLU engine (drelu.cpp, docs/MPC.md): the hot loop of every secure ReLU and
// MaxPool. A scalar reference, an AVX-512BW kernel that computes all m digits of an element
// at once (the running sum over higher bits becomes a vector suffix scan) and an AVX2 kernel
// that does the same in bytes (private_compare_avx2.cpp). All give the same bytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace veil::mpc {

enum class CompareKernel { Auto, Scalar, Avx2, Avx512 };

// Explicit kernels the machine lacks are an InvalidArgument.
bool compare_kernel_available(CompareKernel kernel);
// The kernel Auto picks on this machine within kernel_path(): "avx512bw", "avx2" or "scalar".
const char* compare_kernel_name();

// For each element e < n (all arrays element-major, m digits per element, 1 <= m <= 63):
//   r[e]     the public c' (< 2^m),           beta[e]  the client-server coin (0/1),
//   xs       this party's Z_67 shares of the m bits of r' (LSB first),
//   sv       multipliers in [1, 66],           uv       zero-sharing masks in [0, 66],
//   rot[e]   rotation (< m): digit i is written to position (i + rot[e]) mod m of out.
// `client` selects the client's (+u, j = 0) or the server's (-u, j = 1) side. The sum of the
// two parties' digits is zero at exactly one position iff beta xor [r' > c'] = 1.
void private_compare_digits(int m, bool client, size_t n, const uint64_t* r, const uint8_t* beta,
                            const uint8_t* xs, const uint8_t* sv, const uint8_t* uv,
                            const uint8_t* rot, uint8_t* out,
                            CompareKernel kernel = CompareKernel::Auto);

// The helper's side. r[e]: the (m low bits of the) mask r' whose bits the parties share;
// shares: on entry the client's Z_67 shares of those bits (element-major, m per element), on
// exit the server's, so that the two add up to the bits.
void private_compare_bit_shares(int m, size_t n, const uint64_t* r, uint8_t* shares,
                                CompareKernel kernel = CompareKernel::Auto);
// any_zero[e] = 1 iff some digit sum dc + ds of element e is 0 mod 67 (the helper's test).
void private_compare_any_zero(int m, size_t n, const uint8_t* dc, const uint8_t* ds,
                              uint8_t* any_zero, CompareKernel kernel = CompareKernel::Auto);

}  // namespace veil::mpc

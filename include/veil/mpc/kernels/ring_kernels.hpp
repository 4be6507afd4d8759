// Dense linear algebra over Z_2^64 (uint64 wrap-around) and 2-D convolution: what each party
// runs on its shares. Kernels, chosen at run time: Intel AMX int8 on byte-sliced operands
// (ring_gemm_amx.cpp, and ring_conv_amx.cpp for convolutions, which never build an im2col
// matrix; Sapphire Rapids and later), else AVX-512DQ (vpmullq: rows straight from the operands
// up to 8 rows of A, a packed cache-blocked GEMM beyond), else AVX2 (the same two shapes, each
// 64-bit product from three 32-bit vpmuludq: ring_gemm_avx2.cpp), else a portable one;
// convolutions without AMX go through im2col + GEMM.
#pragma once

#include <cstdint>

namespace veil::mpc {

// C[M,N] = A[M,K] * B[K,N] (or C += A*B when `accumulate`), row-major with leading
// dimensions; all arithmetic modulo 2^64. `threads` > 1 splits the columns across threads.
void gemm_u64(int64_t m, int64_t n, int64_t k, const uint64_t* a, int64_t lda, const uint64_t* b,
              int64_t ldb, uint64_t* c, int64_t ldc, bool accumulate = false, int threads = 1);

enum class RingGemmKernel { Auto, Portable, Avx2, Avx512, Amx };

bool ring_gemm_kernel_available(RingGemmKernel kernel);
const char* ring_gemm_kernel_name(RingGemmKernel kernel);  // "amx-int8", "avx512dq", "avx2", ...

// gemm_u64 with a given kernel (tests and benchmarks compare them); InvalidArgument when the
// machine lacks it. Auto picks per shape, as gemm_u64 does.
void gemm_u64_with(RingGemmKernel kernel, int64_t m, int64_t n, int64_t k, const uint64_t* a,
                   int64_t lda, const uint64_t* b, int64_t ldb, uint64_t* c, int64_t ldc,
                   bool accumulate = false, int threads = 1);

// The kernel gemm_u64 uses on this machine, within kernel_path(), for large shapes
// ("amx-int8", "avx512dq", "avx2" or "portable").
const char* gemm_u64_kernel_name();
// The kernel gemm_u64 picks for an m x n x k product.
const char* gemm_u64_kernel_name(int64_t m, int64_t n, int64_t k);

// Geometry of an ONNX-style Conv (NCHW input, OIHW weight with I = C / groups).
struct Conv2dGeometry {
  int64_t batch = 1, in_channels = 1, in_h = 1, in_w = 1;
  int64_t out_channels = 1, kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;

  int64_t out_h() const;
  int64_t out_w() const;
  int64_t input_numel() const { return batch * in_channels * in_h * in_w; }
  int64_t weight_numel() const {
    return out_channels * (in_channels / groups) * kernel_h * kernel_w;
  }
  int64_t output_numel() const { return batch * out_channels * out_h() * out_w(); }
  void validate() const;  // throws InvalidArgument
};

// y = conv(x, w) over Z_2^64 (no bias).
void conv2d_u64(const Conv2dGeometry& g, const uint64_t* x, const uint64_t* w, uint64_t* y,
                int threads = 1);

// conv2d_u64 on a given GEMM kernel (tests and benchmarks compare them): Amx takes AMX's own
// convolution where it suits the shape, the others im2col + gemm_u64_with; InvalidArgument when
// the machine lacks the kernel.
void conv2d_u64_with(RingGemmKernel kernel, const Conv2dGeometry& g, const uint64_t* x,
                     const uint64_t* w, uint64_t* y, int threads = 1);

}  // namespace veil::mpc

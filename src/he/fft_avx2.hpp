// Internal: the butterfly stages of the encoder's complex FFTs (src/he/encoder.cpp) with AVX2,
// two complex numbers per register. Callable only when isa_supported(Isa::kAvx2).
//
// They perform exactly the scalar code's floating-point operations in the same order (a complex
// product as y_re r_re - y_im r_im and y_re r_im + y_im r_re, no fused multiply-adds), so their
// results are bit-identical to it (tested).
#pragma once

#include <cstddef>

namespace veil::he::avx2 {

// d: `size` interleaved complex numbers (size a power of two >= 4), in bit-reversed order;
// roots: the encoder's fft_roots_ as interleaved doubles. Runs the stages len = 2 .. size.
void fft_stages(double* d, size_t size, const double* roots);
// The inverse transform's stages len = size .. 2 with fft_inv_roots_ (before the bit reversal
// and the scaling by 1 / size).
void fft_inv_stages(double* d, size_t size, const double* inv_roots);

}  // namespace veil::he::avx2

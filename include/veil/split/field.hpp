// Arithmetic in the prime field Z_P, P = 2^31 - 1, for the schemes that blind with one-time pads
// (Slalom, DarkNight). Slalom picks P = 2^23 + 2^21 + 7 so that float32 on a GPU is exact; our
// accelerator is a CPU computing in int64, so a larger prime fits and leaves room for finer
// quantisation: with inputs centred in (-P/2, P/2], |weights| <= 2^15 and at most 2^17 terms per
// output, every sum stays below 2^63 and is reduced exactly.
#pragma once

#include <cstdint>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/split/linear_layer.hpp"

namespace veil::split {

inline constexpr uint64_t kFieldPrime = (uint64_t{1} << 31) - 1;
inline constexpr int64_t kFieldMaxWeight = int64_t{1} << 15;  // |centred weight| bound
inline constexpr int64_t kFieldMaxTerms = int64_t{1} << 17;   // C x kH x kW bound

// A tensor of field elements, each in [0, P).
struct FieldTensor {
  Shape shape;
  std::vector<uint64_t> values;

  int64_t numel() const { return static_cast<int64_t>(values.size()); }
};

// The centred representative of v in (-P/2, P/2].
inline int64_t centred(uint64_t v) {
  return v > kFieldPrime / 2 ? static_cast<int64_t>(v) - static_cast<int64_t>(kFieldPrime)
                             : static_cast<int64_t>(v);
}
// v mod P in [0, P) for any signed v.
inline uint64_t to_field(int64_t v) {
  int64_t r = v % static_cast<int64_t>(kFieldPrime);
  return static_cast<uint64_t>(r < 0 ? r + static_cast<int64_t>(kFieldPrime) : r);
}

// v mod P for any v (two Mersenne folds: v = hi 2^31 + lo = hi + lo mod P).
inline uint64_t field_reduce(uint64_t v) {
  v = (v & kFieldPrime) + (v >> 31);
  v = (v & kFieldPrime) + (v >> 31);
  return v >= kFieldPrime ? v - kFieldPrime : v;
}
// Arithmetic on elements of [0, P).
inline uint64_t field_add(uint64_t a, uint64_t b) { return field_reduce(a + b); }
inline uint64_t field_sub(uint64_t a, uint64_t b) { return field_reduce(a + kFieldPrime - b); }
inline uint64_t field_mul(uint64_t a, uint64_t b) { return field_reduce(a * b); }
// a^-1 mod P (Fermat: a^(P-2)); throws InvalidArgument for a = 0.
uint64_t field_inv(uint64_t a);

// y = x (*) weight mod P (no bias), exact: the field counterpart of apply_linear. Throws
// InvalidArgument when a centred weight exceeds kFieldMaxWeight, the layer has more than
// kFieldMaxTerms terms per output, a value is not in [0, P), or a shape does not fit.
FieldTensor apply_linear_field(const LinearLayer& layer, const FieldTensor& weight,
                               const FieldTensor& x, int threads = 1);

// The same for a weight of arbitrary field elements (a Freivalds filter sum_m s_m W_m): each
// centred weight is split into two limbs hi 2^16 + lo with |hi|, |lo| <= 2^15, both products are
// exact, and they are recombined mod P. Twice the work of apply_linear_field.
FieldTensor apply_linear_field_wide(const LinearLayer& layer, const FieldTensor& weight,
                                    const FieldTensor& x, int threads = 1);

}  // namespace veil::split

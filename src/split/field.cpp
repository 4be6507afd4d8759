#include "veil/split/field.hpp"

#include <string>

#include "veil/core/error.hpp"
#include "veil/mpc/kernels/ring_kernels.hpp"

namespace veil::split {
namespace {

int64_t param(const std::vector<int64_t>& v, size_t i, int64_t fallback) {
  return v.empty() ? fallback : v.at(i);
}

// Checks that `weight` and `x` fit the layer's geometry; returns the terms per output.
int64_t check_fit(const LinearLayer& layer, const Shape& w, const Shape& x) {
  const bool conv = layer.kind == LinearKind::Conv;
  const size_t rank = conv ? 4 : 2;
  const std::string where = "split: " + layer.name + ": ";
  if (w.size() != rank || x.size() != rank || layer.input_shape.size() != rank - 1)
    throw InvalidArgument(where + "field weight " + shape_to_string(w) + " / input " +
                          shape_to_string(x) + " have the wrong rank");
  for (size_t i = 0; i < rank - 1; ++i)
    if (x[i + 1] != layer.input_shape[i])
      throw InvalidArgument(where + "input " + shape_to_string(x) + " does not match " +
                            shape_to_string(layer.input_shape));
  if (w[1] != layer.input_shape[0])
    throw InvalidArgument(where + "weight " + shape_to_string(w) + " does not match the input");
  if (conv && layer.conv.group != 1) throw InvalidArgument(where + "grouped conv in Z_P");
  if (x[0] < 1 || w[0] < 1) throw InvalidArgument(where + "empty batch or weight");
  int64_t terms = 1;
  for (size_t i = 1; i < rank; ++i) {
    if (w[i] < 1 || w[i] > kFieldMaxTerms) throw InvalidArgument(where + "bad weight shape");
    terms *= w[i];
    if (terms > kFieldMaxTerms)
      throw InvalidArgument(where + "more than 2^17 terms per output: Z_P sums could overflow");
  }
  return terms;
}

mpc::Conv2dGeometry conv_geometry(const LinearLayer& layer, const Shape& w, const Shape& x) {
  const auto& p = layer.conv;
  mpc::Conv2dGeometry g;
  g.batch = x[0];
  g.in_channels = x[1];
  g.in_h = x[2];
  g.in_w = x[3];
  g.out_channels = w[0];
  g.kernel_h = w[2];
  g.kernel_w = w[3];
  g.stride_h = param(p.strides, 0, 1);
  g.stride_w = param(p.strides, 1, 1);
  g.pad_top = param(p.pads, 0, 0);
  g.pad_left = param(p.pads, 1, 0);
  g.pad_bottom = param(p.pads, 2, 0);
  g.pad_right = param(p.pads, 3, 0);
  g.dilation_h = param(p.dilations, 0, 1);
  g.dilation_w = param(p.dilations, 1, 1);
  g.validate();
  if (layer.output_shape.size() == 3 &&
      (layer.output_shape[1] != g.out_h() || layer.output_shape[2] != g.out_w()))
    throw InvalidArgument("split: " + layer.name + ": conv output " +
                          shape_to_string({g.out_h(), g.out_w()}) + " does not match " +
                          shape_to_string(layer.output_shape));
  return g;
}

// The centred values of `t` as two's complement uint64 (what the Z_2^64 kernels multiply).
// Values must be in [0, P) and, centred, at most `bound` in magnitude.
std::vector<uint64_t> centred_u64(const FieldTensor& t, int64_t bound, const char* what) {
  if (t.numel() != shape_numel(t.shape))
    throw InvalidArgument(std::string("split: field ") + what + " size does not match its shape");
  std::vector<uint64_t> out(t.values.size());
  const auto half = static_cast<int64_t>(kFieldPrime / 2), p = static_cast<int64_t>(kFieldPrime);
  bool in_field = true, in_bound = true;  // checked after the (branch-free) loop
  for (size_t i = 0; i < out.size(); ++i) {
    const auto v = static_cast<int64_t>(t.values[i]);
    in_field &= t.values[i] < kFieldPrime;
    const int64_t c = v > half ? v - p : v;
    in_bound &= c <= bound && c >= -bound;
    out[i] = static_cast<uint64_t>(c);
  }
  if (!in_field)
    throw InvalidArgument(std::string("split: field ") + what + " value not in [0, P)");
  if (!in_bound)
    throw InvalidArgument(std::string("split: field ") + what + " larger than 2^15 centred");
  return out;
}

// v mod P for an exact sum |v| < 2^62 (read from the Z_2^64 result): adding P 2^32 makes it
// positive without changing its residue, then two Mersenne folds.
uint64_t reduce_sum(uint64_t v) { return field_reduce(v + (kFieldPrime << 32)); }

// The exact integer sums x (*) w (no reduction) for centred operands: |x| <= P/2 < 2^30,
// |w| <= 2^15 and at most 2^17 terms bound every sum by 2^62, so the Z_2^64 result read as int64
// is the true sum.
std::vector<uint64_t> exact_sums(const LinearLayer& layer, const Shape& wshape,
                                 const std::vector<uint64_t>& w, const Shape& xshape,
                                 const std::vector<uint64_t>& x, Shape& yshape, int threads) {
  if (layer.kind == LinearKind::Conv) {
    const mpc::Conv2dGeometry g = conv_geometry(layer, wshape, xshape);
    std::vector<uint64_t> y(static_cast<size_t>(g.output_numel()));
    mpc::conv2d_u64(g, x.data(), w.data(), y.data(), threads);
    yshape = {g.batch, g.out_channels, g.out_h(), g.out_w()};
    return y;
  }
  const int64_t b = xshape[0], c = xshape[1], m = wshape[0];
  std::vector<uint64_t> wt(static_cast<size_t>(c * m));  // [C, M]: gemm_u64 wants B row-major
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < c; ++k) wt[k * m + i] = w[i * c + k];
  std::vector<uint64_t> y(static_cast<size_t>(b * m));
  mpc::gemm_u64(b, m, c, x.data(), c, wt.data(), m, y.data(), m, false, threads);
  yshape = {b, m};
  return y;
}

}  // namespace

uint64_t field_inv(uint64_t a) {
  if (a % kFieldPrime == 0) throw InvalidArgument("split: 0 has no inverse in Z_P");
  uint64_t result = 1, base = a % kFieldPrime;
  for (uint64_t e = kFieldPrime - 2; e != 0; e >>= 1, base = field_mul(base, base))
    if (e & 1) result = field_mul(result, base);
  return result;
}

FieldTensor apply_linear_field(const LinearLayer& layer, const FieldTensor& weight,
                               const FieldTensor& x, int threads) {
  check_fit(layer, weight.shape, x.shape);
  const std::vector<uint64_t> w = centred_u64(weight, kFieldMaxWeight, "weight");
  const std::vector<uint64_t> xc = centred_u64(x, static_cast<int64_t>(kFieldPrime), "input");
  FieldTensor y;
  y.values = exact_sums(layer, weight.shape, w, x.shape, xc, y.shape, threads);
  for (uint64_t& v : y.values) v = reduce_sum(v);
  return y;
}

FieldTensor apply_linear_field_wide(const LinearLayer& layer, const FieldTensor& weight,
                                    const FieldTensor& x, int threads) {
  check_fit(layer, weight.shape, x.shape);
  const std::vector<uint64_t> wide =
      centred_u64(weight, static_cast<int64_t>(kFieldPrime), "weight");
  // Limbs stacked as output channels: hi filters [0, M), lo filters [M, 2M). A centred weight
  // v in (-2^30, 2^30) is hi 2^16 + lo with lo in [-2^15, 2^15) and |hi| <= 2^14 + 1.
  const size_t n = wide.size();
  std::vector<uint64_t> limbs(2 * n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t v = static_cast<int64_t>(wide[i]);
    const int64_t lo = ((v + (int64_t{1} << 15)) & 0xffff) - (int64_t{1} << 15);
    limbs[i] = static_cast<uint64_t>((v - lo) / (int64_t{1} << 16));
    limbs[n + i] = static_cast<uint64_t>(lo);
  }
  Shape lshape = weight.shape;
  lshape[0] *= 2;
  const std::vector<uint64_t> xc = centred_u64(x, static_cast<int64_t>(kFieldPrime), "input");
  Shape sshape;
  const std::vector<uint64_t> sums = exact_sums(layer, lshape, limbs, x.shape, xc, sshape, threads);
  const int64_t m = weight.shape[0], b = x.shape[0];
  const int64_t inner = static_cast<int64_t>(sums.size()) / (b * 2 * m);
  FieldTensor y;
  y.shape = sshape;
  y.shape[1] = m;
  y.values.resize(static_cast<size_t>(b * m * inner));
  const uint64_t shift = uint64_t{1} << 16;
  for (int64_t i = 0; i < b; ++i)
    for (int64_t c = 0; c < m; ++c)
      for (int64_t j = 0; j < inner; ++j) {
        const uint64_t hi = reduce_sum(sums[((i * 2 * m) + c) * inner + j]);
        const uint64_t lo = reduce_sum(sums[((i * 2 * m) + m + c) * inner + j]);
        y.values[(i * m + c) * inner + j] = field_add(field_mul(hi, shift), lo);
      }
  return y;
}

}  // namespace veil::split

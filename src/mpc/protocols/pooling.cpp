#include "veil/mpc/protocols/pooling.hpp"

#include <algorithm>
#include <string>

#include "veil/core/error.hpp"
#include "veil/mpc/protocols/share.hpp"

namespace veil::mpc {
namespace {

int64_t pooled_size(int64_t in, int64_t k, int64_t s, int64_t pb, int64_t pe, bool ceil_mode) {
  int64_t span = in + pb + pe - k;
  int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  // A window must start inside the input or its leading padding (PyTorch/ONNX rule).
  if (ceil_mode && (out - 1) * s >= in + pb) --out;
  return out;
}

// 1/count in fixed point.
uint64_t reciprocal(int64_t count, int frac_bits) {
  return encode_fixed(1.0 / static_cast<double>(count), frac_bits);
}

}  // namespace

int64_t Pool2dGeometry::out_h(int64_t in_h) const {
  return pooled_size(in_h, kernel_h, stride_h, pad_top, pad_bottom, ceil_mode);
}
int64_t Pool2dGeometry::out_w(int64_t in_w) const {
  return pooled_size(in_w, kernel_w, stride_w, pad_left, pad_right, ceil_mode);
}

void Pool2dGeometry::validate(int64_t in_h, int64_t in_w) const {
  if (kernel_h < 1 || kernel_w < 1 || stride_h < 1 || stride_w < 1 || kernel_h > 4096 ||
      kernel_w > 4096)
    throw InvalidArgument("pool: kernel and stride must be positive");
  if (pad_top < 0 || pad_left < 0 || pad_bottom < 0 || pad_right < 0 || pad_top >= kernel_h ||
      pad_bottom >= kernel_h || pad_left >= kernel_w || pad_right >= kernel_w)
    throw InvalidArgument("pool: padding must be smaller than the kernel");
  if (in_h + pad_top + pad_bottom < kernel_h || in_w + pad_left + pad_right < kernel_w)
    throw InvalidArgument("pool: kernel larger than the padded input");
  if (out_h(in_h) < 1 || out_w(in_w) < 1) throw InvalidArgument("pool: empty output");
}

RingTensor avgpool2d(const Party& p, const RingTensor& x, const Pool2dGeometry& g) {
  if (x.shape.size() != 4) throw InvalidArgument("avgpool2d: input must be NCHW");
  const int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  g.validate(h, w);
  const int64_t oh = g.out_h(h), ow = g.out_w(w);
  Shape out_shape{n, c, oh, ow};
  if (p.is(Role::Helper)) return RingTensor::shape_only(out_shape);
  RingTensor y = RingTensor::zeros(out_shape);
  for (int64_t plane = 0; plane < n * c; ++plane) {
    const uint64_t* in = x.data.data() + plane * h * w;
    uint64_t* out = y.data.data() + plane * oh * ow;
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        int64_t y0 = oy * g.stride_h - g.pad_top, x0 = ox * g.stride_w - g.pad_left;
        int64_t y1 = std::min(y0 + g.kernel_h, h + g.pad_bottom);
        int64_t x1 = std::min(x0 + g.kernel_w, w + g.pad_right);
        int64_t count = g.count_include_pad ? (y1 - y0) * (x1 - x0) : 0;
        uint64_t sum = 0;
        for (int64_t yy = std::max<int64_t>(y0, 0); yy < std::min(y1, h); ++yy)
          for (int64_t xx = std::max<int64_t>(x0, 0); xx < std::min(x1, w); ++xx) {
            sum += in[yy * w + xx];
            if (!g.count_include_pad) ++count;
          }
        out[oy * ow + ox] = sum * reciprocal(std::max<int64_t>(count, 1), p.frac_bits());
      }
  }
  return truncate(p, y, p.frac_bits());
}

RingTensor global_avgpool(const Party& p, const RingTensor& x) {
  if (x.shape.size() != 4) throw InvalidArgument("global_avgpool: input must be NCHW");
  const int64_t n = x.shape[0], c = x.shape[1], hw = x.shape[2] * x.shape[3];
  Shape out_shape{n, c, 1, 1};
  if (p.is(Role::Helper)) return RingTensor::shape_only(out_shape);
  if (hw < 1) throw InvalidArgument("global_avgpool: empty feature map");
  RingTensor y = RingTensor::zeros(out_shape);
  const uint64_t inv = reciprocal(hw, p.frac_bits());
  for (int64_t plane = 0; plane < n * c; ++plane) {
    uint64_t sum = 0;
    for (int64_t i = 0; i < hw; ++i) sum += x.data[plane * hw + i];
    y.data[plane] = sum * inv;
  }
  return truncate(p, y, p.frac_bits());
}

}  // namespace veil::mpc

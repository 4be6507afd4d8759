// LeakyRelu, PRelu and Clip on top of the ReLU protocol (see nonlinear.hpp).
#include <string>
#include <vector>

#include "veil/core/error.hpp"
#include "veil/mpc/kernels/ring_kernels.hpp"
#include "veil/mpc/protocols/beaver.hpp"
#include "veil/mpc/protocols/nonlinear.hpp"
#include "veil/mpc/protocols/share.hpp"

namespace veil::mpc {

RingTensor leaky_relu(Party& p, const RingTensor& x, double alpha) {
  const int f = p.frac_bits();
  const RingTensor r = relu(p, x);
  // x - ReLU(x) = min(x, 0): the product with alpha is at scale 2^(2f), truncated back to 2^f.
  return add(r, truncate(p, mul_public(sub(x, r), encode_fixed(alpha, f)), f));
}

RingTensor prelu(Party& p, const RingTensor& x, const RingTensor& slope, int threads) {
  if (x.shape.size() < 2) throw InvalidArgument("prelu: the input needs a channel axis");
  const int f = p.frac_bits();
  const int64_t n = x.shape[0], c = x.shape[1];
  if (slope.numel() != c) throw InvalidArgument("prelu: one slope per channel");
  const RingTensor r = relu(p, x);
  // min(x, 0) times the slope of its channel: a depthwise 1x1 convolution over [N, C, inner, 1].
  Conv2dGeometry g;
  g.batch = n, g.in_channels = c, g.out_channels = c, g.groups = c;
  g.in_h = c > 0 && n > 0 ? x.numel() / (n * c) : 0;
  RingTensor neg = sub(x, r);
  neg.shape = {n, c, g.in_h, 1};
  RingTensor w = slope;
  w.shape = {c, 1, 1, 1};
  RingTensor prod = truncate(p, conv2d_server_weights(p, neg, w, g, threads), f);
  prod.shape = x.shape;
  return add(r, prod);
}

std::vector<float> prelu_channel_slopes(const Shape& x, const Tensor& slope) {
  const Shape& s = slope.shape();
  if (x.size() < 2 || s.size() > x.size())
    throw Unsupported("PRelu: the input needs a channel axis and the slope no more axes");
  const int64_t c = x[1];
  const std::vector<float> v = slope.to_floats();
  if (v.size() == 1) return std::vector<float>(static_cast<size_t>(c), v[0]);
  for (size_t d = 0; d < s.size(); ++d)
    if (s[d] != 1 && !(d + x.size() - s.size() == 1 && s[d] == c))
      throw Unsupported("PRelu: slope " + shape_to_string(s) + " varies along an axis other than " +
                        "the channels of " + shape_to_string(x));
  if (static_cast<int64_t>(v.size()) != c)
    throw Unsupported("PRelu: slope " + shape_to_string(s) + " is not one value per channel");
  return v;
}

RingTensor clip(Party& p, const RingTensor& x, const ClipBounds& b) {
  if (!b.has_lo && !b.has_hi) return x;
  const bool helper = p.is(Role::Helper), server = p.is(Role::Server);
  if (!helper && !x.has_data()) throw InvalidArgument("clip: this party must pass shares");
  const size_t n = static_cast<size_t>(x.numel());
  std::vector<uint64_t> bounds;  // the server's values; zeros elsewhere
  if (b.has_lo) bounds.push_back(server ? b.lo : 0);
  if (b.has_hi) bounds.push_back(server ? b.hi : 0);
  // [x - lo; x - hi] (those present) in one ReLU call.
  const Shape gate_shape{static_cast<int64_t>(bounds.size() * n)};
  RingTensor gates = RingTensor::shape_only(gate_shape);
  if (!helper) {
    gates.data.reserve(bounds.size() * n);
    for (uint64_t bound : bounds)
      for (size_t i = 0; i < n; ++i) gates.data.push_back(x.data[i] - bound);
  }
  const RingTensor r = relu(p, gates);
  if (helper) return RingTensor::shape_only(x.shape);
  // y = (lo + ReLU(x - lo)  or  x) - (ReLU(x - hi)  or  0).
  RingTensor y = x;
  const uint64_t* r_hi = r.data.data() + (b.has_lo ? n : 0);
  for (size_t i = 0; i < n; ++i) {
    if (b.has_lo) y.data[i] = bounds[0] + r.data[i];
    if (b.has_hi) y.data[i] -= r_hi[i];
  }
  return y;
}

}  // namespace veil::mpc

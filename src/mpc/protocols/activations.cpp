// LeakyRelu and Clip on top of the ReLU protocol (see nonlinear.hpp).
#include <string>
#include <vector>

#include "veil/core/error.hpp"
#include "veil/mpc/protocols/nonlinear.hpp"
#include "veil/mpc/protocols/share.hpp"

namespace veil::mpc {

RingTensor leaky_relu(Party& p, const RingTensor& x, double alpha) {
  const int f = p.frac_bits();
  const RingTensor r = relu(p, x);
  // x - ReLU(x) = min(x, 0): the product with alpha is at scale 2^(2f), truncated back to 2^f.
  return add(r, truncate(p, mul_public(sub(x, r), encode_fixed(alpha, f)), f));
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

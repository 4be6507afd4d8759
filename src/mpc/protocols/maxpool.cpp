// MaxPool as a tournament of ReLUs: max(a, b) = b + ReLU(a - b).
#include <algorithm>

#include "veil/core/error.hpp"
#include "veil/mpc/protocols/nonlinear.hpp"

namespace veil::mpc {

RingTensor maxpool2d(Party& p, const RingTensor& x, const Pool2dGeometry& g) {
  if (x.shape.size() != 4) throw InvalidArgument("maxpool2d: input must be NCHW");
  const int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  g.validate(h, w);
  const int64_t oh = g.out_h(h), ow = g.out_w(w);
  const Shape out_shape{n, c, oh, ow};
  const bool helper = p.is(Role::Helper);
  if (!helper && !x.has_data()) throw InvalidArgument("maxpool2d: this party must pass shares");
  const size_t nout = static_cast<size_t>(n * c * oh * ow);
  // Candidates of every output window (in-bounds positions only: padding never wins), laid end
  // to end: window i's are vals[start[i], start[i] + count[i]). One flat buffer, not a vector per
  // window: a batch of LeNet-5 has 10^5 windows, and their allocations were most of this
  // function's own time.
  std::vector<size_t> start(nout), count(nout);
  std::vector<uint64_t> vals;
  vals.reserve(nout * static_cast<size_t>(g.kernel_h * g.kernel_w));
  for (int64_t plane = 0; plane < n * c; ++plane)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        const auto win = static_cast<size_t>((plane * oh + oy) * ow + ox);
        start[win] = vals.size();
        int64_t y0 = oy * g.stride_h - g.pad_top, x0 = ox * g.stride_w - g.pad_left;
        for (int64_t yy = std::max<int64_t>(y0, 0); yy < std::min(y0 + g.kernel_h, h); ++yy)
          for (int64_t xx = std::max<int64_t>(x0, 0); xx < std::min(x0 + g.kernel_w, w); ++xx)
            vals.push_back(helper ? 0 : x.data[static_cast<size_t>((plane * h + yy) * w + xx)]);
        count[win] = vals.size() - start[win];
        if (count[win] == 0) throw InvalidArgument("maxpool2d: a window lies entirely in padding");
      }
  std::vector<uint64_t> b;
  for (;;) {
    // One tournament level: pair up candidates within every window, all pairs in one ReLU.
    size_t pairs = 0;
    for (size_t win = 0; win < nout; ++win) pairs += count[win] / 2;
    if (pairs == 0) break;
    const Shape dshape{static_cast<int64_t>(pairs)};
    RingTensor diff = helper ? RingTensor::shape_only(dshape) : RingTensor::zeros(dshape);
    if (!helper) {
      b.resize(pairs);
      size_t k = 0;
      for (size_t win = 0; win < nout; ++win) {
        const uint64_t* v = vals.data() + start[win];
        for (size_t i = 0; i + 1 < count[win]; i += 2, ++k) {
          diff.data[k] = v[i] - v[i + 1];
          b[k] = v[i + 1];
        }
      }
    }
    const RingTensor r = relu(p, diff);
    // Each window's winners, compacted in place to the front of its range (the j-th winner
    // goes where candidates 2j and 2j + 1 were read from, or before), an odd one out last.
    size_t k = 0;
    for (size_t win = 0; win < nout; ++win) {
      uint64_t* v = vals.data() + start[win];
      const size_t half = count[win] / 2;
      if (!helper) {
        for (size_t j = 0; j < half; ++j, ++k) v[j] = b[k] + r.data[k];
        if (count[win] % 2) v[half] = v[count[win] - 1];
      }
      count[win] -= half;
    }
  }
  if (helper) return RingTensor::shape_only(out_shape);
  RingTensor out = RingTensor::zeros(out_shape);
  for (size_t i = 0; i < nout; ++i) out.data[i] = vals[start[i]];
  return out;
}

}  // namespace veil::mpc

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
  // Candidates of every output window (in-bounds positions only: padding never wins).
  std::vector<std::vector<uint64_t>> cand(nout);
  for (int64_t plane = 0; plane < n * c; ++plane)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        auto& list = cand[static_cast<size_t>((plane * oh + oy) * ow + ox)];
        int64_t y0 = oy * g.stride_h - g.pad_top, x0 = ox * g.stride_w - g.pad_left;
        for (int64_t yy = std::max<int64_t>(y0, 0); yy < std::min(y0 + g.kernel_h, h); ++yy)
          for (int64_t xx = std::max<int64_t>(x0, 0); xx < std::min(x0 + g.kernel_w, w); ++xx)
            list.push_back(helper ? 0 : x.data[static_cast<size_t>((plane * h + yy) * w + xx)]);
        if (list.empty()) throw InvalidArgument("maxpool2d: a window lies entirely in padding");
      }
  for (;;) {
    // One tournament level: pair up candidates within every window, all pairs in one ReLU.
    std::vector<uint64_t> a, b;
    for (const auto& list : cand)
      for (size_t i = 0; i + 1 < list.size(); i += 2) {
        a.push_back(list[i]);
        b.push_back(list[i + 1]);
      }
    if (a.empty()) break;
    const Shape dshape{static_cast<int64_t>(a.size())};
    RingTensor diff = helper ? RingTensor::shape_only(dshape) : RingTensor::zeros(dshape);
    for (size_t i = 0; i < diff.data.size(); ++i) diff.data[i] = a[i] - b[i];
    RingTensor r = relu(p, diff);
    size_t k = 0;
    for (auto& list : cand) {
      std::vector<uint64_t> next;
      for (size_t i = 0; i + 1 < list.size(); i += 2, ++k)
        next.push_back(helper ? 0 : b[k] + r.data[k]);
      if (list.size() % 2) next.push_back(list.back());
      list = std::move(next);
    }
  }
  if (helper) return RingTensor::shape_only(out_shape);
  RingTensor out = RingTensor::zeros(out_shape);
  for (size_t i = 0; i < nout; ++i) out.data[i] = cand[i][0];
  return out;
}

}  // namespace veil::mpc

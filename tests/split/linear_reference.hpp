// Test helpers for the split module: small layers, and one naive loop nest for conv / dense
// layers in any arithmetic (the ground truth the Z_P kernels and the schemes are checked
// against).
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/split/accelerator.hpp"
#include "veil/split/field.hpp"
#include "veil/split/linear_layer.hpp"
#include "veil/split/scheme.hpp"

namespace veil::split::testing {

// A conv layer [m, c, kh, kw] on c x h x w inputs, weights uniform in [-scale, scale].
inline LinearLayer conv_layer(int64_t c, int64_t h, int64_t w, int64_t m, int64_t kh, int64_t kw,
                              nn::reference::ConvParams p = {}) {
  LinearLayer l;
  l.name = "conv";
  l.kind = LinearKind::Conv;
  l.conv = std::move(p);
  l.input_shape = {c, h, w};
  auto get = [](const std::vector<int64_t>& v, size_t i, int64_t d) {
    return v.empty() ? d : v[i];
  };
  const auto& q = l.conv;
  const int64_t oh =
      (h + get(q.pads, 0, 0) + get(q.pads, 2, 0) - get(q.dilations, 0, 1) * (kh - 1) - 1) /
          get(q.strides, 0, 1) +
      1;
  const int64_t ow =
      (w + get(q.pads, 1, 0) + get(q.pads, 3, 0) - get(q.dilations, 1, 1) * (kw - 1) - 1) /
          get(q.strides, 1, 1) +
      1;
  l.output_shape = {m, oh, ow};
  l.weight = Tensor({m, c, kh, kw});
  return l;
}

inline LinearLayer dense_layer(int64_t c, int64_t m) {
  LinearLayer l;
  l.name = "dense";
  l.kind = LinearKind::Dense;
  l.input_shape = {c};
  l.output_shape = {m};
  l.weight = Tensor({m, c});
  return l;
}

inline void fill_uniform(Tensor& t, float scale, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> d(-scale, scale);
  for (float& v : t.floats()) v = d(rng);
}

// y[b, o, ...] = sum over the window of w(o, k) * x(b, k) in Acc, for `batch` images of the
// layer's input shape and `m` output channels. w(index into [m, c, kh, kw]) and x(index into
// [batch, c, h, w]) return Acc.
template <class Acc, class WFn, class XFn>
std::vector<Acc> naive_linear(const LinearLayer& l, int64_t batch, int64_t m, WFn w, XFn x) {
  std::vector<Acc> y;
  const int64_t c = l.input_shape[0];
  if (l.kind == LinearKind::Dense) {
    for (int64_t i = 0; i < batch; ++i)
      for (int64_t o = 0; o < m; ++o) {
        Acc acc = 0;
        for (int64_t k = 0; k < c; ++k) acc += w(o * c + k) * x(i * c + k);
        y.push_back(acc);
      }
    return y;
  }
  const auto& p = l.conv;
  auto get = [](const std::vector<int64_t>& v, size_t i, int64_t d) {
    return v.empty() ? d : v[i];
  };
  const int64_t h = l.input_shape[1], wd = l.input_shape[2];
  const int64_t kh = l.weight.shape()[2], kw = l.weight.shape()[3];
  const int64_t oh = l.output_shape[1], ow = l.output_shape[2];
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t o = 0; o < m; ++o)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          Acc acc = 0;
          for (int64_t ci = 0; ci < c; ++ci)
            for (int64_t ky = 0; ky < kh; ++ky)
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t iy =
                    oy * get(p.strides, 0, 1) - get(p.pads, 0, 0) + ky * get(p.dilations, 0, 1);
                const int64_t ix =
                    ox * get(p.strides, 1, 1) - get(p.pads, 1, 0) + kx * get(p.dilations, 1, 1);
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                acc += w(((o * c + ci) * kh + ky) * kw + kx) * x(((i * c + ci) * h + iy) * wd + ix);
              }
          y.push_back(acc);
        }
  return y;
}

// The float layer applied in double precision, with its bias: x [batch, ...].
inline std::vector<double> reference_output(const LinearLayer& l, const Tensor& x) {
  const float* w = l.weight.data();
  const float* xv = x.data();
  const int64_t m = l.weight.shape()[0];
  std::vector<double> y = naive_linear<double>(
      l, x.shape()[0], m, [&](int64_t i) { return static_cast<double>(w[i]); },
      [&](int64_t i) { return static_cast<double>(xv[i]); });
  if (!l.bias.empty()) {
    const int64_t inner = static_cast<int64_t>(y.size()) / (x.shape()[0] * m);
    for (size_t i = 0; i < y.size(); ++i) y[i] += l.bias.data()[(i / inner) % m];
  }
  return y;
}

// An honest accelerator for the Z_P schemes: each payload times the outsourced field weight.
inline std::vector<Payload> field_replies(const OutsourcedLayer& o,
                                          const std::vector<Payload>& payloads) {
  const LinearLayer l = linear_geometry(o);
  const FieldTensor& w = std::get<FieldTensor>(o.weight);
  std::vector<Payload> out;
  for (const Payload& p : payloads)
    out.push_back(apply_linear_field(l, w, std::get<FieldTensor>(p)));
  return out;
}

// Options that verify every result with `rounds` independent checks.
inline SchemeOptions verified(int rounds) {
  SchemeOptions o;
  o.verify = true;
  o.verify_rounds = rounds;
  return o;
}

// The largest |x| of a tensor.
inline double max_abs(const Tensor& x) {
  double a = 0;
  for (float v : x.floats()) a = std::max(a, static_cast<double>(v < 0 ? -v : v));
  return a;
}

}  // namespace veil::split::testing

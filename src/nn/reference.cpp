#include "veil/nn/reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "veil/core/error.hpp"

namespace veil::nn::reference {

namespace {

int64_t at_or(const std::vector<int64_t>& v, size_t i, int64_t fallback) {
  return i < v.size() ? v[i] : fallback;
}

void require(bool ok, const char* what) {
  if (!ok) throw InvalidArgument(std::string("reference: ") + what);
}

int64_t norm_axis(int64_t axis, int64_t rank) {
  if (axis < 0) axis += rank;
  require(axis >= 0 && axis <= rank, "axis out of range");
  return axis;
}

// Output length of one pooled dimension (PyTorch's rule, which ONNX exporters rely on).
int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t pb, int64_t pe, int64_t d, bool ceil) {
  int64_t span = in + pb + pe - d * (k - 1) - 1;
  int64_t out = (ceil ? (span + s - 1) / s : span / s) + 1;
  if (ceil && (out - 1) * s >= in + pb) --out;
  return out;
}

std::vector<int64_t> strides_of(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int64_t i = static_cast<int64_t>(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
  return st;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* b, const ConvParams& p) {
  require(x.rank() == 4 && w.rank() == 4, "conv2d needs 4-D x and w");
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3);
  const int64_t m = w.dim(0), cg = w.dim(1), kh = w.dim(2), kw = w.dim(3);
  const int64_t g = p.group;
  require(g > 0 && c == cg * g && m % g == 0, "conv2d channel/group mismatch");
  const int64_t sh = at_or(p.strides, 0, 1), sw = at_or(p.strides, 1, 1);
  const int64_t dh = at_or(p.dilations, 0, 1), dw = at_or(p.dilations, 1, 1);
  const int64_t ph = at_or(p.pads, 0, 0), pw = at_or(p.pads, 1, 0);
  const int64_t peh = at_or(p.pads, 2, 0), pew = at_or(p.pads, 3, 0);
  const int64_t oh = (h + ph + peh - dh * (kh - 1) - 1) / sh + 1;
  const int64_t ow = (wd + pw + pew - dw * (kw - 1) - 1) / sw + 1;
  require(oh > 0 && ow > 0, "conv2d output is empty");
  Tensor y({n, m, oh, ow});
  auto xs = x.floats();
  auto ws = w.floats();
  auto ys = y.floats();
  const int64_t mg = m / g;
  for (int64_t in = 0; in < n; ++in)
    for (int64_t om = 0; om < m; ++om) {
      const int64_t grp = om / mg;
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          double acc = b ? b->floats()[om] : 0.0;
          for (int64_t ic = 0; ic < cg; ++ic)
            for (int64_t ky = 0; ky < kh; ++ky)
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t iy = oy * sh - ph + ky * dh;
                const int64_t ix = ox * sw - pw + kx * dw;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                const int64_t cin = grp * cg + ic;
                acc += static_cast<double>(xs[((in * c + cin) * h + iy) * wd + ix]) *
                       ws[((om * cg + ic) * kh + ky) * kw + kx];
              }
          ys[((in * m + om) * oh + oy) * ow + ox] = static_cast<float>(acc);
        }
    }
  return y;
}

namespace {

template <bool kMax>
Tensor pool2d(const Tensor& x, const PoolParams& p) {
  require(x.rank() == 4 && p.kernel.size() == 2, "pool2d needs 4-D x and a 2-D kernel");
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  const int64_t kh = p.kernel[0], kw = p.kernel[1];
  const int64_t sh = at_or(p.strides, 0, 1), sw = at_or(p.strides, 1, 1);
  const int64_t dh = at_or(p.dilations, 0, 1), dw = at_or(p.dilations, 1, 1);
  const int64_t ph = at_or(p.pads, 0, 0), pw = at_or(p.pads, 1, 0);
  const int64_t peh = at_or(p.pads, 2, 0), pew = at_or(p.pads, 3, 0);
  const int64_t oh = pool_out(h, kh, sh, ph, peh, dh, p.ceil_mode);
  const int64_t ow = pool_out(w, kw, sw, pw, pew, dw, p.ceil_mode);
  require(oh > 0 && ow > 0, "pool2d output is empty");
  Tensor y({n, c, oh, ow});
  auto xs = x.floats();
  auto ys = y.floats();
  for (int64_t nc = 0; nc < n * c; ++nc)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        double acc = kMax ? -std::numeric_limits<double>::infinity() : 0.0;
        int64_t valid = 0;
        for (int64_t ky = 0; ky < kh; ++ky)
          for (int64_t kx = 0; kx < kw; ++kx) {
            const int64_t iy = oy * sh - ph + ky * dh;
            const int64_t ix = ox * sw - pw + kx * dw;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            const double v = xs[(nc * h + iy) * w + ix];
            // PyTorch's max pooling: a NaN anywhere in the window wins.
            if (!kMax)
              acc += v;
            else if (v > acc || std::isnan(v))
              acc = v;
            ++valid;
          }
        if (!kMax) {
          int64_t divisor = valid;
          if (p.count_include_pad) {
            // The window clipped to the padded extent (the ceil_mode overhang never counts).
            const int64_t y0 = oy * sh - ph, x0 = ox * sw - pw;
            const int64_t y1 = std::min(y0 + (kh - 1) * dh + 1, h + peh);
            const int64_t x1 = std::min(x0 + (kw - 1) * dw + 1, w + pew);
            divisor = ((y1 - y0 + dh - 1) / dh) * ((x1 - x0 + dw - 1) / dw);
          }
          acc = divisor > 0 ? acc / static_cast<double>(divisor) : 0.0;
        }
        ys[(nc * oh + oy) * ow + ox] = static_cast<float>(acc);
      }
  return y;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const PoolParams& p) { return pool2d<true>(x, p); }
Tensor avg_pool2d(const Tensor& x, const PoolParams& p) { return pool2d<false>(x, p); }

Tensor global_avg_pool(const Tensor& x) {
  require(x.rank() >= 3, "global_avg_pool needs rank >= 3");
  Shape out = x.shape();
  int64_t spatial = 1;
  for (size_t i = 2; i < out.size(); ++i) {
    spatial *= out[i];
    out[i] = 1;
  }
  Tensor y(out);
  auto xs = x.floats();
  auto ys = y.floats();
  for (int64_t i = 0; i < y.numel(); ++i) {
    double acc = 0;
    for (int64_t j = 0; j < spatial; ++j) acc += xs[i * spatial + j];
    ys[i] = static_cast<float>(acc / static_cast<double>(spatial));
  }
  return y;
}

Tensor gemm(const Tensor& a, const Tensor& b, const Tensor* c, float alpha, float beta,
            bool trans_a, bool trans_b) {
  require(a.rank() == 2 && b.rank() == 2, "gemm needs 2-D a and b");
  const int64_t m = trans_a ? a.dim(1) : a.dim(0), k = trans_a ? a.dim(0) : a.dim(1);
  const int64_t kb = trans_b ? b.dim(1) : b.dim(0), n = trans_b ? b.dim(0) : b.dim(1);
  require(k == kb, "gemm inner dimensions differ");
  Tensor y({m, n});
  auto as = a.floats();
  auto bs = b.floats();
  Tensor cb;
  if (c) cb = binary(BinaryOp::Add, Tensor({m, n}), *c);  // broadcast C to [M, N]
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t t = 0; t < k; ++t) {
        const float av = trans_a ? as[t * m + i] : as[i * k + t];
        const float bv = trans_b ? bs[j * k + t] : bs[t * n + j];
        acc += static_cast<double>(av) * bv;
      }
      acc *= alpha;
      if (c) acc += static_cast<double>(beta) * cb.floats()[i * n + j];
      y.floats()[i * n + j] = static_cast<float>(acc);
    }
  return y;
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  require(a.rank() >= 1 && b.rank() >= 1, "matmul needs rank >= 1");
  Shape sa = a.shape(), sb = b.shape();
  const bool a1 = sa.size() == 1, b1 = sb.size() == 1;
  if (a1) sa.insert(sa.begin(), 1);
  if (b1) sb.push_back(1);
  const int64_t m = sa[sa.size() - 2], k = sa.back(), n = sb.back();
  require(sb[sb.size() - 2] == k, "matmul inner dimensions differ");
  Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
  Shape batch = broadcast_shapes(ba, bb);
  const int64_t nb = shape_numel(batch);
  Shape out = batch;
  out.push_back(m);
  out.push_back(n);
  Tensor y(out);
  // Index each operand's batch through its own (broadcast) strides.
  auto batch_offset = [&](const Shape& own, int64_t flat) {
    const size_t r = batch.size();
    auto st = strides_of(own);
    int64_t off = 0;
    for (size_t d = 0; d < r; ++d) {
      const int64_t bst = shape_numel(Shape(batch.begin() + d + 1, batch.end()));
      const int64_t idx = (flat / bst) % batch[d];
      const int64_t od = static_cast<int64_t>(d) - static_cast<int64_t>(r - own.size());
      if (od >= 0 && own[od] != 1) off += idx * st[od];
    }
    return off;
  };
  for (int64_t t = 0; t < nb; ++t) {
    const int64_t oa = batch_offset(ba, t) * m * k, ob = batch_offset(bb, t) * k * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t q = 0; q < k; ++q)
          acc += static_cast<double>(a.floats()[oa + i * k + q]) * b.floats()[ob + q * n + j];
        y.floats()[(t * m + i) * n + j] = static_cast<float>(acc);
      }
  }
  if (a1) out.erase(out.end() - 2);
  if (b1) out.pop_back();
  y.reshape(out);
  return y;
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    const int64_t da = i + a.size() >= r ? a[i + a.size() - r] : 1;
    const int64_t db = i + b.size() >= r ? b[i + b.size() - r] : 1;
    if (da != db && da != 1 && db != 1)
      throw InvalidArgument("shapes " + shape_to_string(a) + " and " + shape_to_string(b) +
                            " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const Shape out = broadcast_shapes(a.shape(), b.shape());
  Tensor y(out);
  const size_t r = out.size();
  auto src_index = [&](const Shape& s, int64_t flat) {
    auto st = strides_of(s);
    int64_t off = 0, rem = flat;
    for (size_t d = r; d-- > 0;) {
      const int64_t idx = rem % out[d];
      rem /= out[d];
      const int64_t sd = static_cast<int64_t>(d) - static_cast<int64_t>(r - s.size());
      if (sd >= 0 && s[sd] != 1) off += idx * st[sd];
    }
    return off;
  };
  for (int64_t i = 0; i < y.numel(); ++i) {
    const float x1 = a.floats()[src_index(a.shape(), i)];
    const float x2 = b.floats()[src_index(b.shape(), i)];
    float v = 0;
    switch (op) {
      case BinaryOp::Add:
        v = x1 + x2;
        break;
      case BinaryOp::Sub:
        v = x1 - x2;
        break;
      case BinaryOp::Mul:
        v = x1 * x2;
        break;
      case BinaryOp::Div:
        v = x1 / x2;
        break;
      case BinaryOp::PRelu:
        v = x1 >= 0 ? x1 : x2 * x1;
        break;
    }
    y.floats()[i] = v;
  }
  return y;
}

namespace {
template <typename F>
Tensor map(const Tensor& x, F f) {
  Tensor y(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) y.floats()[i] = f(x.floats()[i]);
  return y;
}
}  // namespace

Tensor relu(const Tensor& x) {
  // torch.relu (clamp_min(x, 0)): NaN stays NaN.
  return map(x, [](float v) { return v < 0 ? 0.0f : v; });
}
namespace {
// The sum of the tile holding element (n, c, h, w), summed from scratch, row by row.
float tile_sum(const Tensor& x, int64_t n, int64_t c, int64_t h, int64_t w, model::BlockSize b) {
  const Shape& s = x.shape();
  const int64_t h0 = h / b.h * b.h, w0 = w / b.w * b.w;
  float sum = 0;
  for (int64_t i = h0; i < std::min(s[2], h0 + b.h); ++i)
    for (int64_t j = w0; j < std::min(s[3], w0 + b.w); ++j)
      sum += x.floats()[((n * s[1] + c) * s[2] + i) * s[3] + j];
  return sum;
}

template <typename F>
Tensor per_element_of_tiles(const Tensor& x, const std::vector<model::BlockSize>& blocks, F f) {
  const Shape& s = x.shape();
  if (s.size() != 4 || s[1] != static_cast<int64_t>(blocks.size()))
    throw InvalidArgument("block_relu: x must be NCHW with one block per channel");
  Tensor y(s);
  for (int64_t n = 0; n < s[0]; ++n)
    for (int64_t c = 0; c < s[1]; ++c)
      for (int64_t h = 0; h < s[2]; ++h)
        for (int64_t w = 0; w < s[3]; ++w) {
          const int64_t i = ((n * s[1] + c) * s[2] + h) * s[3] + w;
          const model::BlockSize b = blocks[static_cast<size_t>(c)];
          y.floats()[i] = f(i, b.identity(), b.identity() ? 0.0f : tile_sum(x, n, c, h, w, b));
        }
  return y;
}
}  // namespace

Tensor block_relu(const Tensor& x, const std::vector<model::BlockSize>& blocks) {
  return per_element_of_tiles(x, blocks, [&](int64_t i, bool identity, float sum) {
    const float v = x.floats()[i];
    if (identity) return v;
    if (std::isnan(sum)) return sum;
    return sum < 0 ? 0.0f : v;
  });
}

Tensor block_relu_backward(const Tensor& x, const Tensor& grad_y,
                           const std::vector<model::BlockSize>& blocks) {
  return per_element_of_tiles(x, blocks, [&](int64_t i, bool identity, float sum) {
    const float g = grad_y.floats()[i];
    return identity || sum >= 0 ? g : 0.0f;
  });
}

Tensor leaky_relu(const Tensor& x, float alpha) {
  return map(x, [alpha](float v) { return v >= 0 ? v : alpha * v; });
}
Tensor clip(const Tensor& x, float lo, float hi) {
  return map(x, [lo, hi](float v) { return std::min(std::max(v, lo), hi); });
}
Tensor sigmoid(const Tensor& x) {
  return map(x, [](float v) { return static_cast<float>(1.0 / (1.0 + std::exp(-double(v)))); });
}
Tensor tanh(const Tensor& x) {
  return map(x, [](float v) { return static_cast<float>(std::tanh(double(v))); });
}

Tensor batch_norm_inference(const Tensor& x, const Tensor& scale, const Tensor& bias,
                            const Tensor& mean, const Tensor& var, float epsilon) {
  require(x.rank() >= 2, "batch_norm needs rank >= 2");
  const int64_t n = x.dim(0), c = x.dim(1), s = x.numel() / std::max<int64_t>(n * c, 1);
  Tensor y(x.shape());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch) {
      const double inv = 1.0 / std::sqrt(double(var.floats()[ch]) + epsilon);
      for (int64_t j = 0; j < s; ++j) {
        const int64_t o = (i * c + ch) * s + j;
        y.floats()[o] = static_cast<float>((x.floats()[o] - double(mean.floats()[ch])) * inv *
                                               scale.floats()[ch] +
                                           bias.floats()[ch]);
      }
    }
  return y;
}

BatchNormTraining batch_norm_training(const Tensor& x, const Tensor& scale, const Tensor& bias,
                                      float epsilon) {
  require(x.rank() >= 2, "batch_norm needs rank >= 2");
  const int64_t n = x.dim(0), c = x.dim(1), s = x.numel() / std::max<int64_t>(n * c, 1);
  BatchNormTraining r{Tensor(x.shape()), Tensor({c}), Tensor({c})};
  for (int64_t ch = 0; ch < c; ++ch) {
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < s; ++j) sum += x.floats()[(i * c + ch) * s + j];
    const double mu = sum / double(n * s);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < s; ++j) {
        const double d = x.floats()[(i * c + ch) * s + j] - mu;
        sq += d * d;
      }
    const double var = sq / double(n * s);
    r.mean.floats()[ch] = static_cast<float>(mu);
    r.var.floats()[ch] = static_cast<float>(var);
    const double inv = 1.0 / std::sqrt(var + epsilon);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < s; ++j) {
        const int64_t o = (i * c + ch) * s + j;
        r.y.floats()[o] =
            static_cast<float>((x.floats()[o] - mu) * inv * scale.floats()[ch] + bias.floats()[ch]);
      }
  }
  return r;
}

namespace {
// Softmax over `len` elements spaced `stride` apart, for each of `outer * stride` groups.
Tensor softmax_impl(const Tensor& x, int64_t outer, int64_t len, int64_t inner) {
  Tensor y(x.shape());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      auto at = [&](int64_t i) { return (o * len + i) * inner + in; };
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t i = 0; i < len; ++i) mx = std::max(mx, double(x.floats()[at(i)]));
      double sum = 0;
      for (int64_t i = 0; i < len; ++i) sum += std::exp(double(x.floats()[at(i)]) - mx);
      for (int64_t i = 0; i < len; ++i)
        y.floats()[at(i)] = static_cast<float>(std::exp(double(x.floats()[at(i)]) - mx) / sum);
    }
  return y;
}
}  // namespace

Tensor softmax(const Tensor& x, int64_t axis) {
  const int64_t r = x.rank();
  axis = norm_axis(axis, r);
  require(axis < r, "softmax axis out of range");
  const Shape& s = x.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= s[i];
  for (int64_t i = axis + 1; i < r; ++i) inner *= s[i];
  return softmax_impl(x, outer, s[axis], inner);
}

Tensor softmax_2d(const Tensor& x, int64_t axis) {
  axis = norm_axis(axis, x.rank());
  int64_t outer = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x.shape()[i];
  return softmax_impl(x, outer, outer == 0 ? 0 : x.numel() / std::max<int64_t>(outer, 1), 1);
}

Tensor flatten(const Tensor& x, int64_t axis) {
  axis = norm_axis(axis, x.rank());
  int64_t outer = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x.shape()[i];
  int64_t inner = 1;
  for (int64_t i = axis; i < x.rank(); ++i) inner *= x.shape()[i];
  return x.reshaped({outer, inner});
}

Tensor concat(const std::vector<Tensor>& xs, int64_t axis) {
  require(!xs.empty(), "concat needs inputs");
  const int64_t r = xs[0].rank();
  axis = norm_axis(axis, r);
  require(axis < r, "concat axis out of range");
  Shape out = xs[0].shape();
  out[axis] = 0;
  for (const auto& t : xs) {
    require(t.rank() == r, "concat rank mismatch");
    for (int64_t d = 0; d < r; ++d)
      if (d != axis) require(t.shape()[d] == xs[0].shape()[d], "concat shape mismatch");
    out[axis] += t.shape()[axis];
  }
  Tensor y(out);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= out[d];
  for (int64_t d = axis + 1; d < r; ++d) inner *= out[d];
  int64_t base = 0;
  for (const auto& t : xs) {
    const int64_t len = t.shape()[axis];
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < len; ++i)
        for (int64_t in = 0; in < inner; ++in)
          y.floats()[(o * out[axis] + base + i) * inner + in] =
              t.floats()[(o * len + i) * inner + in];
    base += len;
  }
  return y;
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, PadMode mode, float value) {
  const int64_t r = x.rank();
  require(static_cast<int64_t>(pads.size()) == 2 * r, "pad needs 2*rank pads");
  Shape out(r);
  for (int64_t d = 0; d < r; ++d) {
    out[d] = x.shape()[d] + pads[d] + pads[d + r];
    require(out[d] >= 0, "pad crops below zero");
  }
  Tensor y(out);
  auto in_st = strides_of(x.shape());
  for (int64_t i = 0; i < y.numel(); ++i) {
    int64_t rem = i, off = 0;
    bool inside = true;
    for (int64_t d = r - 1; d >= 0; --d) {
      int64_t idx = rem % out[d] - pads[d];
      rem /= out[d];
      const int64_t len = x.shape()[d];
      if (idx < 0 || idx >= len) {
        if (mode == PadMode::Constant) {
          inside = false;
          continue;
        }
        if (mode == PadMode::Edge) {
          idx = std::clamp<int64_t>(idx, 0, len - 1);
        } else {
          require(len > 1 || idx == 0, "reflect pad needs dims > 1");
          while (idx < 0 || idx >= len) idx = idx < 0 ? -idx : 2 * (len - 1) - idx;
        }
      }
      off += idx * in_st[d];
    }
    y.floats()[i] = inside ? x.floats()[off] : value;
  }
  return y;
}

Tensor gather(const Tensor& data, const Tensor& indices, int64_t axis) {
  const int64_t r = data.rank();
  axis = norm_axis(axis, r);
  require(axis < r, "gather axis out of range");
  const Shape& ds = data.shape();
  Shape out(ds.begin(), ds.begin() + axis);
  out.insert(out.end(), indices.shape().begin(), indices.shape().end());
  out.insert(out.end(), ds.begin() + axis + 1, ds.end());
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= ds[d];
  for (int64_t d = axis + 1; d < r; ++d) inner *= ds[d];
  Tensor y(out);
  const auto idx = indices.to_int64s();
  const int64_t ni = static_cast<int64_t>(idx.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < ni; ++j) {
      int64_t k = idx[j] < 0 ? idx[j] + ds[axis] : idx[j];
      require(k >= 0 && k < ds[axis], "gather index out of range");
      for (int64_t in = 0; in < inner; ++in)
        y.floats()[(o * ni + j) * inner + in] = data.floats()[(o * ds[axis] + k) * inner + in];
    }
  return y;
}

}  // namespace veil::nn::reference

#include "veil/mpc/range_check.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>

#include "veil/core/error.hpp"
#include "veil/model/shape_inference.hpp"
#include "veil/mpc/client_input.hpp"
#include "veil/mpc/protocols/nonlinear.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/preprocess.hpp"

namespace veil::mpc {
namespace {

using model::OpKind;
using Channels = std::vector<Interval>;

constexpr int kRingBits = 63;  // |v| < 2^63: the MSB of a Z_2^64 value is its sign

Interval hull(const Channels& c) {
  Interval h{std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  for (const Interval& i : c) h.lo = std::min(h.lo, i.lo), h.hi = std::max(h.hi, i.hi);
  return c.empty() ? Interval{} : h;
}

Interval with_zero(Interval i) { return {std::min(i.lo, 0.0), std::max(i.hi, 0.0)}; }

double max_magnitude(const Channels& c) {
  double m = 0;
  for (const Interval& i : c) m = std::max(m, i.magnitude());
  return m;
}

// Per-channel (axis 1) [min, max] of a tensor; NaN makes the range infinite.
Channels channel_ranges(const Tensor& t) {
  const Shape& s = t.shape();
  const std::vector<float> v = t.to_floats();
  const int64_t n = s.empty() ? 1 : s[0];
  const int64_t c = s.size() >= 2 ? s[1] : 1;
  const int64_t inner = static_cast<int64_t>(v.size()) / std::max<int64_t>(n * c, 1);
  const double inf = std::numeric_limits<double>::infinity();
  Channels r(static_cast<size_t>(c), Interval{inf, -inf});
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    Interval& ch = r[static_cast<size_t>((i / inner) % c)];
    const double x = v[static_cast<size_t>(i)];
    if (std::isnan(x)) {
      ch = {-inf, inf};
      continue;
    }
    ch.lo = std::min(ch.lo, x), ch.hi = std::max(ch.hi, x);
  }
  return r;
}

// `c` as `n` channels: itself, or its hull when the channel layout is not known.
Channels fit(const Channels& c, int64_t n) {
  if (static_cast<int64_t>(c.size()) == n) return c;
  return Channels(static_cast<size_t>(std::max<int64_t>(n, 1)), hull(c));
}

bool known(const Shape& s) {
  return !s.empty() && std::all_of(s.begin() + 1, s.end(), [](int64_t d) { return d >= 0; });
}

class Analysis {
 public:
  Analysis(const SecureModel& m, int frac_bits, const DreluParams& drelu,
           const ObservedRanges* observed)
      : model_(m),
        observed_(observed),
        graph_(m.graph()),
        lowered_(m.lowered()),
        f_(frac_bits),
        ulp_(std::ldexp(1.0, -frac_bits)),
        drelu_limit_(kRingBits - drelu.comparison_bits_ignored + drelu.num_lsb_to_ignore),
        values_(lowered_.values.size()),
        shapes_(lowered_.values.size()),
        present_(lowered_.values.size(), false) {
    report_.frac_bits = frac_bits;
  }

  RangeReport run(const Channels& input) {
    if (lowered_.inputs.empty()) throw MalformedInput("range check: the graph has no input");
    Channels x = input;
    // The client's encoding rounds to the nearest ulp.
    for (Interval& i : x) i.lo -= ulp_ / 2, i.hi += ulp_ / 2;
    Shape xs = lowered_.values.at(static_cast<size_t>(lowered_.inputs[0])).shape;
    if (!xs.empty()) xs[0] = 1;  // the batch does not matter
    set(lowered_.inputs[0], std::move(x), std::move(xs));
    for (const auto& op : lowered_.ops) {
      Shape shape;
      Channels y = run_op(op, shape);
      // Estimates: each op's checks start from what the probes showed at its inputs.
      if (observed_) y = observed_->at(static_cast<size_t>(op.output_ids.at(0)));
      report_.outputs[op.name] = hull(y);
      check(op, "output", max_magnitude(y), 1, kRingBits);
      set(op.output_ids.at(0), std::move(y), std::move(shape));
    }
    return std::move(report_);
  }

 private:
  void set(int id, Channels c, Shape shape) {
    values_[static_cast<size_t>(id)] = std::move(c);
    shapes_[static_cast<size_t>(id)] = std::move(shape);
    present_[static_cast<size_t>(id)] = true;
  }

  // An input's channels; an initializer operand is its value range.
  Channels input(const model::LoweredOp& op, size_t i) const {
    if (!op.has_input(i)) throw MalformedInput(op.describe() + ": missing input");
    const int id = op.input_ids[i];
    if (present_[static_cast<size_t>(id)]) return values_[static_cast<size_t>(id)];
    auto it = graph_.initializers.find(op.inputs[i]);
    if (it == graph_.initializers.end())
      throw Unsupported(op.describe() + ": input '" + op.inputs[i] + "' is not an activation");
    Channels c;
    for (float v : it->second.to_floats()) c.push_back({rounded(v), rounded(v)});
    return {hull(c)};
  }

  // Shapes are tracked op by op (the graph's value_info may not be inferred).
  const Shape& shape_of(int id) const {
    return present_[static_cast<size_t>(id)] ? shapes_[static_cast<size_t>(id)]
                                             : lowered_.values.at(static_cast<size_t>(id)).shape;
  }

  // A weight as the server encodes it (encode_fixed: round to nearest).
  double rounded(float w) const { return std::round(std::ldexp(double{w}, f_)) * ulp_; }

  std::vector<double> weights(const model::LoweredOp& op, size_t i) const {
    std::vector<double> w;
    if (!op.has_input(i)) return w;
    for (float v : graph_.initializers.at(op.inputs[i]).to_floats()) w.push_back(rounded(v));
    return w;
  }

  // |value| <= magnitude (real units) at scale 2^(scale f) must stay below 2^limit.
  void check(const model::LoweredOp& op, const char* what, double magnitude, int scale, int limit) {
    RangeCheck c;
    c.node = op.describe();
    c.what = what;
    c.magnitude = magnitude;
    c.scale = scale;
    c.limit_bits = limit;
    c.bound_bits = !(magnitude < std::numeric_limits<double>::infinity())
                       ? std::numeric_limits<double>::infinity()
                   : magnitude > 0 ? std::log2(magnitude) + scale * f_
                                   : -std::numeric_limits<double>::infinity();
    report_.checks.push_back(std::move(c));
  }

  // One output channel of a linear layer: sum_i w_i x_i over the taps of (weight, input channel)
  // pairs, as [lo, hi] with the weights split into positive and negative parts.
  struct Accumulator {
    double lo = 0, hi = 0;
    void add(double w, const Interval& x) {
      lo += w > 0 ? w * x.lo : w * x.hi;
      hi += w > 0 ? w * x.hi : w * x.lo;
    }
  };

  // Output channel i's bias: one per channel, one for all, or none.
  static double bias_of(const model::LoweredOp& op, const std::vector<double>& b, int64_t i,
                        int64_t channels) {
    if (b.empty()) return 0;
    if (b.size() == 1) return b[0];
    if (static_cast<int64_t>(b.size()) != channels)
      throw Unsupported(op.describe() + ": bias must have one value per output");
    return b[static_cast<size_t>(i)];
  }

  // The product, its truncation (one ulp either way) and the server's bias.
  Interval finish(const Accumulator& a, double bias, double& product) const {
    product = std::max({product, std::fabs(a.lo), std::fabs(a.hi)});
    return {a.lo - ulp_ + bias, a.hi + ulp_ + bias};
  }

  Channels conv(const model::LoweredOp& op, Shape& out) {
    const Shape& xs = shape_of(op.input_ids.at(0));
    const Tensor& wt = graph_.initializers.at(op.inputs.at(1));
    const Shape& ws = wt.shape();
    if (ws.size() != 4 || xs.size() != 4)
      throw Unsupported(op.describe() + ": only 2-D convolution");
    const auto& p = op.as<model::ConvParams>();
    const auto sg = model::spatial_geometry(p.spatial, xs, {ws[2], ws[3]}, op.describe());
    const bool padded =
        std::any_of(sg.pads_begin.begin(), sg.pads_begin.end(), [](int64_t v) { return v > 0; }) ||
        std::any_of(sg.pads_end.begin(), sg.pads_end.end(), [](int64_t v) { return v > 0; });
    const int64_t out_ch = ws[0], per_group = ws[1], taps = ws[2] * ws[3];
    out = {xs[0], out_ch, sg.output.at(0), sg.output.at(1)};
    const int64_t groups = std::max<int64_t>(p.group, 1);
    Channels x = fit(input(op, 0), per_group * groups);
    if (padded)  // padding contributes zeros
      for (Interval& i : x) i = with_zero(i);
    const std::vector<double> w = weights(op, 1), b = weights(op, 2);
    const int64_t out_per_group = std::max<int64_t>(out_ch / groups, 1);
    Channels y(static_cast<size_t>(out_ch));
    double product = 0;
    for (int64_t o = 0; o < out_ch; ++o) {
      const int64_t g = std::min(o / out_per_group, groups - 1);
      Accumulator a;
      for (int64_t ci = 0; ci < per_group; ++ci) {
        const Interval& xi = x[static_cast<size_t>(g * per_group + ci)];
        const double* wk = w.data() + (o * per_group + ci) * taps;
        for (int64_t k = 0; k < taps; ++k) a.add(wk[k], xi);
      }
      y[static_cast<size_t>(o)] = finish(a, bias_of(op, b, o, out_ch), product);
    }
    check(op, "product before truncation", product, 2, kRingBits - kTruncationMarginBits);
    return y;
  }

  Channels dense(const model::LoweredOp& op, Shape& out) {
    const Tensor& wt = graph_.initializers.at(op.inputs.at(1));
    if (wt.shape().size() != 2) throw Unsupported(op.describe() + ": weight must be 2-D");
    const bool trans =
        op.kind == OpKind::Gemm && op.as<model::GemmParams>().trans_b;  // W is [M, K]
    const int64_t k_dim = trans ? wt.shape()[1] : wt.shape()[0];
    const int64_t m_dim = trans ? wt.shape()[0] : wt.shape()[1];
    const Channels x = fit(input(op, 0), k_dim);
    const Shape& xs = shape_of(op.input_ids.at(0));
    out = {xs.empty() ? 1 : xs[0], m_dim};
    const std::vector<double> w = weights(op, 1);
    const std::vector<double> b = op.kind == OpKind::Gemm ? weights(op, 2) : std::vector<double>{};
    Channels y(static_cast<size_t>(m_dim));
    double product = 0;
    for (int64_t m = 0; m < m_dim; ++m) {
      Accumulator a;
      for (int64_t k = 0; k < k_dim; ++k)
        a.add(w[static_cast<size_t>(trans ? m * k_dim + k : k * m_dim + m)],
              x[static_cast<size_t>(k)]);
      y[static_cast<size_t>(m)] = finish(a, bias_of(op, b, m, m_dim), product);
    }
    check(op, "product before truncation", product, 2, kRingBits - kTruncationMarginBits);
    return y;
  }

  // Relu: the DReLU sees each element. BlockRelu: it sees each tile's sum, up to h x w (the
  // tile clipped to the map) times an element's magnitude; identity channels pass unchanged.
  Channels relu(const model::LoweredOp& op) {
    Channels x = input(op, 0);
    auto clamp = [](Interval& i) { i.lo = std::max(i.lo, 0.0), i.hi = std::max(i.hi, 0.0); };
    if (op.kind == OpKind::Relu) {
      check(op, "DReLU input", max_magnitude(x), 1, drelu_limit_);
      for (Interval& i : x) clamp(i);
      return x;
    }
    const auto& blocks = op.as<model::BlockReluParams>().blocks;
    const Shape& xs = shape_of(op.input_ids.at(0));
    auto clipped = [&](int64_t side, size_t dim) {
      return xs.size() == 4 && xs[dim] >= 0 ? std::min(side, xs[dim]) : side;
    };
    x = fit(x, static_cast<int64_t>(blocks.size()));
    double gate = 0;
    for (size_t c = 0; c < blocks.size(); ++c) {
      if (blocks[c].identity()) continue;
      const double tile = static_cast<double>(clipped(blocks[c].h, 2)) *
                          static_cast<double>(clipped(blocks[c].w, 3));
      gate = std::max(gate, x[c].magnitude() * tile);
      clamp(x[c]);
    }
    check(op, "DReLU input (block sum)", gate, 1, drelu_limit_);
    return x;
  }

  // ReLU(x) + alpha (x - ReLU(x)) with alpha as encoded (LeakyRelu: one for all channels;
  // PRelu: the slope of each channel): one DReLU of x, and the product of the negative part with
  // alpha truncated (one ulp).
  Channels leaky_relu(const model::LoweredOp& op) {
    Channels x = input(op, 0);
    std::vector<double> alphas;
    if (op.kind == OpKind::LeakyRelu) {
      alphas.push_back(rounded(op.as<model::LeakyReluParams>().alpha));
    } else {
      for (float a : prelu_channel_slopes(shape_of(op.input_ids.at(0)),
                                          graph_.initializers.at(op.inputs.at(1))))
        alphas.push_back(rounded(a));
      x = fit(x, static_cast<int64_t>(alphas.size()));
    }
    check(op, "DReLU input", max_magnitude(x), 1, drelu_limit_);
    double product = 0;
    for (size_t c = 0; c < x.size(); ++c) {
      Interval& i = x[c];
      const double alpha = alphas[alphas.size() == 1 ? 0 : c];
      auto f = [&](double v) { return v >= 0 ? v : alpha * v; };
      product = std::max(product, std::fabs(alpha * std::min(i.lo, 0.0)));
      // f is monotone on each side of 0 (either way for a negative alpha): the extremes are at
      // the ends or at 0.
      Interval y{std::min(f(i.lo), f(i.hi)), std::max(f(i.lo), f(i.hi))};
      if (i.lo < 0 && i.hi > 0) y = with_zero(y);
      if (i.lo < 0) y.lo -= ulp_, y.hi += ulp_;
      i = y;
    }
    check(op, "product before truncation", product, 2, kRingBits - kTruncationMarginBits);
    return x;
  }

  // lo + ReLU(x - lo) - ReLU(x - hi): DReLUs of x - lo and x - hi, exact otherwise.
  Channels clip(const model::LoweredOp& op) {
    Channels x = input(op, 0);
    const auto& attrs = op.as<model::ClipParams>();
    auto bound = [&](size_t i, float attr) {
      return op.has_input(i)       ? rounded(graph_.initializers.at(op.inputs[i]).to_floats().at(0))
             : std::isfinite(attr) ? rounded(attr)
                                   : static_cast<double>(attr);
    };
    const double lo = bound(1, attrs.min), hi = bound(2, attrs.max);
    double gate = 0;
    for (Interval& i : x) {
      for (double b : {lo, hi})
        if (std::isfinite(b)) gate = std::max({gate, std::fabs(i.lo - b), std::fabs(i.hi - b)});
      i = {std::clamp(i.lo, lo, hi), std::clamp(i.hi, lo, hi)};
    }
    check(op, "DReLU input", gate, 1, drelu_limit_);
    return x;
  }

  // Channels stay channels: on axis 1 the inputs' lists follow each other, on another axis
  // each channel is the union of the inputs' (the layout lost: one interval for all).
  Channels concat(const model::LoweredOp& op, Shape& out) {
    const int64_t rank = static_cast<int64_t>(shape_of(op.input_ids.at(0)).size());
    int64_t axis = op.as<model::ConcatParams>().axis;
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) throw MalformedInput(op.describe() + ": bad axis");
    out = shape_of(op.input_ids.at(0));
    out[static_cast<size_t>(axis)] = 0;
    Channels y;
    bool per_channel = rank >= 2;
    std::vector<Channels> parts;
    for (size_t i = 0; i < op.inputs.size(); ++i) {
      const Shape& s = shape_of(op.input_ids.at(i));
      if (static_cast<int64_t>(s.size()) != rank)
        throw MalformedInput(op.describe() + ": ranks differ");
      out[static_cast<size_t>(axis)] += s[static_cast<size_t>(axis)];
      parts.push_back(input(op, i));
      per_channel = per_channel && static_cast<int64_t>(parts.back().size()) == s[1];
    }
    if (!per_channel) {
      Channels all;
      for (const Channels& c : parts) all.push_back(hull(c));
      return {hull(all)};
    }
    if (axis == 1) {
      for (const Channels& c : parts) y.insert(y.end(), c.begin(), c.end());
      return y;
    }
    y = parts[0];
    for (const Channels& c : parts)
      for (size_t k = 0; k < y.size(); ++k)
        y[k] = {std::min(y[k].lo, c[k].lo), std::max(y[k].hi, c[k].hi)};
    return y;
  }

  // The average of a window of `count` in-range values times 1/count in fixed point, truncated:
  // the factor count * round(2^f / count) / 2^f is within count / 2^(f+1) of 1.
  Channels average(const model::LoweredOp& op, Channels x, int64_t max_count) {
    double lo_factor = std::numeric_limits<double>::infinity(), hi_factor = 0;
    for (int64_t count = 1; count <= max_count; ++count) {
      const double factor =
          static_cast<double>(count) * std::round(std::ldexp(1.0 / count, f_)) * ulp_;
      lo_factor = std::min(lo_factor, factor), hi_factor = std::max(hi_factor, factor);
    }
    check(op, "product before truncation", max_magnitude(x) * hi_factor, 2,
          kRingBits - kTruncationMarginBits);
    for (Interval& i : x)
      i = {std::min(i.lo * lo_factor, i.lo * hi_factor) - ulp_,
           std::max(i.hi * lo_factor, i.hi * hi_factor) + ulp_};
    return x;
  }

  Channels pool(const model::LoweredOp& op, Shape& out) {
    const Shape& xs = shape_of(op.input_ids.at(0));
    const auto& p = op.as<model::PoolParams>();
    Channels x = input(op, 0);
    if (p.global) {
      if (xs.size() != 4 || !known(xs))
        throw Unsupported(op.describe() + ": the feature map's size must be known");
      out = {xs[0], xs[1], 1, 1};
      return average(op, std::move(x), xs[2] * xs[3]);
    }
    const auto sg = model::spatial_geometry(p.spatial, xs, p.spatial.kernel_shape, op.describe());
    int64_t window = 1;
    for (int64_t k : sg.kernel) window *= k;
    out = {xs.at(0), xs.at(1)};
    out.insert(out.end(), sg.output.begin(), sg.output.end());
    if (p.max) {
      // A tournament of ReLU(a - b) over in-range values (padding never wins).
      if (window > 1) {
        double diff = 0;
        for (const Interval& i : x) diff = std::max(diff, i.hi - i.lo);
        check(op, "DReLU input", diff, 1, drelu_limit_);
      }
      return x;
    }
    if (p.count_include_pad)
      for (Interval& i : x) i = with_zero(i);
    return average(op, std::move(x), window);
  }

  Channels add(const model::LoweredOp& op) {
    Channels a = input(op, 0), b = input(op, 1);
    const int64_t n = static_cast<int64_t>(std::max(a.size(), b.size()));
    a = fit(a, n), b = fit(b, n);
    for (size_t i = 0; i < a.size(); ++i) a[i].lo += b[i].lo, a[i].hi += b[i].hi;
    return a;
  }

  // Flatten / Reshape to [N, C * inner] keep each feature's channel; other layouts lose it.
  Channels reshape(const model::LoweredOp& op, Shape& out) {
    const Channels x = input(op, 0);
    const Shape& in = shape_of(op.input_ids.at(0));
    if (op.kind == OpKind::Flatten) {
      int64_t axis = op.as<model::FlattenParams>().axis;
      if (axis < 0) axis += static_cast<int64_t>(in.size());
      int64_t a = 1, b = 1;
      for (int64_t d = 0; d < static_cast<int64_t>(in.size()); ++d)
        (d < axis ? a : b) *= in[static_cast<size_t>(d)];
      out = {a, b};
    } else {
      out = model::reshape_output(in, graph_.initializers.at(op.inputs.at(1)).to_int64s(),
                                  op.as<model::ReshapeParams>().allowzero, op.describe());
    }
    if (known(in) && known(out) && in.size() >= 2 && out.size() == 2 &&
        static_cast<int64_t>(x.size()) == in[1]) {
      int64_t inner = 1;
      for (size_t d = 2; d < in.size(); ++d) inner *= in[d];
      if (out[1] == in[1] * inner) {
        Channels y;
        y.reserve(static_cast<size_t>(out[1]));
        for (const Interval& i : x) y.insert(y.end(), static_cast<size_t>(inner), i);
        return y;
      }
    }
    return {hull(x)};
  }

  // The op's output channels; its output shape into `out`.
  Channels run_op(const model::LoweredOp& op, Shape& out) {
    switch (op.kind) {
      case OpKind::Conv:
        return conv(op, out);
      case OpKind::Gemm:
      case OpKind::MatMul:
        return dense(op, out);
      case OpKind::MaxPool:
      case OpKind::AveragePool:
      case OpKind::GlobalAveragePool:
        return pool(op, out);
      case OpKind::Flatten:
      case OpKind::Reshape:
        return reshape(op, out);
      case OpKind::Relu:
      case OpKind::BlockRelu:
        out = shape_of(op.input_ids.at(0));
        return relu(op);
      case OpKind::LeakyRelu:
      case OpKind::PRelu:
        out = shape_of(op.input_ids.at(0));
        return leaky_relu(op);
      case OpKind::Clip:
        out = shape_of(op.input_ids.at(0));
        return clip(op);
      case OpKind::Add:
        out = shape_of(op.input_ids.at(0));
        return add(op);
      case OpKind::Concat:
        return concat(op, out);
      case OpKind::Identity:
      case OpKind::Dropout:
        out = shape_of(op.input_ids.at(0));
        return input(op, 0);
      default:
        throw Unsupported(op.describe() + ": not supported by three-party inference");
    }
  }

  const SecureModel& model_;
  const ObservedRanges* observed_;
  const model::Graph& graph_;
  const model::LoweredGraph& lowered_;
  const int f_;
  const double ulp_;
  const int drelu_limit_;
  std::vector<Channels> values_;
  std::vector<Shape> shapes_;
  std::vector<bool> present_;
  RangeReport report_;
};

std::string bits_text(double bits) {
  return std::isfinite(bits) ? fmt::format("2^{:.1f}", bits) : std::string("infinity");
}

}  // namespace

double Interval::magnitude() const { return std::max(std::fabs(lo), std::fabs(hi)); }

InputRange parse_input_range(const std::string& text, const std::string& what) {
  std::istringstream in(text);
  InputRange r;
  char comma = 0;
  if (!(in >> r.lo >> comma >> r.hi) || comma != ',' || !(in >> std::ws).eof() ||
      !std::isfinite(r.lo) || !std::isfinite(r.hi) || r.lo > r.hi)
    throw InvalidArgument(what + " must be \"LO,HI\" with LO <= HI");
  return r;
}

InputRange input_range_of(const model::Model& model) {
  auto it = model.metadata.find("veil.input.range");
  if (it == model.metadata.end()) return {};
  return parse_input_range(it->second, "the model's veil.input.range");
}

void check_input_range(const Tensor& images, const InputRange& range) {
  const std::vector<float> v = images.to_floats();
  for (size_t i = 0; i < v.size(); ++i)
    if (!(v[i] >= range.lo && v[i] <= range.hi))
      throw InvalidArgument(fmt::format(
          "input value {} (element {}) is outside [{}, {}], the input range the server's "
          "overflow check assumed",
          v[i], i, range.lo, range.hi));
}

const RangeCheck* RangeReport::first_failure() const {
  for (const RangeCheck& c : checks)
    if (!c.fits()) return &c;
  return nullptr;
}

double RangeReport::headroom_bits() const {
  double h = std::numeric_limits<double>::infinity();
  for (const RangeCheck& c : checks) h = std::min(h, c.limit_bits - c.bound_bits);
  return h;
}

RangeReport analyze_ranges(const SecureModel& model, const std::vector<Interval>& input,
                           int frac_bits, const DreluParams& drelu,
                           const ObservedRanges* observed) {
  return Analysis(model, frac_bits, drelu, observed).run(input);
}

ObservedRanges probe_ranges(const SecureModel& secure, const model::Model& model,
                            const std::vector<Interval>& input, int probes) {
  const model::LoweredGraph& lowered = secure.lowered();
  // Every op's output becomes a graph output of a copy, run unfused so that nothing is skipped.
  model::Model copy = model;
  copy.graph.outputs.clear();
  for (const auto& op : lowered.ops)
    copy.graph.outputs.push_back(lowered.values.at(static_cast<size_t>(op.output_ids.at(0))));
  nn::ExecutorOptions eo;
  eo.fuse = false;
  nn::Executor exec(copy, eo);

  // The corners (every pixel at the bottom, every pixel at the top of the range) and uniform
  // random images; a fixed seed, so the check is reproducible.
  const Shape shape = model_input_shape(model.graph, std::max(probes, 2));
  const int64_t n = shape[0], channels = shape.size() > 1 ? shape[1] : 1;
  const int64_t per_channel = shape_numel(shape) / std::max<int64_t>(n * channels, 1);
  const Channels in = fit(input, channels);
  std::mt19937_64 rng(0x5eed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<float> x(static_cast<size_t>(shape_numel(shape)));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t k = 0; k < per_channel; ++k) {
        const Interval& r = in[static_cast<size_t>(c)];
        const double t = i == 0 ? 0.0 : i == 1 ? 1.0 : u(rng);
        x[static_cast<size_t>((i * channels + c) * per_channel + k)] =
            static_cast<float>(r.lo + t * (r.hi - r.lo));
      }
  const std::vector<Tensor> outs = exec.forward({Tensor::from_floats(shape, std::move(x))});

  ObservedRanges observed(lowered.values.size());
  for (size_t o = 0; o < lowered.ops.size(); ++o)
    observed[static_cast<size_t>(lowered.ops[o].output_ids.at(0))] = channel_ranges(outs.at(o));
  return observed;
}

std::vector<Interval> normalized_input(const model::Model& model, const InputRange& range) {
  const data::Normalization n = nn::normalization_of(model);
  if (n.identity()) return {{range.lo, range.hi}};
  std::vector<Interval> c;
  for (size_t i = 0; i < n.mean.size(); ++i) {
    const double m = n.mean[i], s = n.std[i];
    c.push_back({(range.lo - m) / s, (range.hi - m) / s});
  }
  return c;
}

RangeReport check_fixed_point_range(const model::Model& model, const SecureModel& secure,
                                    int frac_bits, const DreluParams& drelu) {
  const InputRange range = input_range_of(model);
  const std::vector<Interval> input = normalized_input(model, range);
  RangeReport bound = analyze_ranges(secure, input, frac_bits, drelu);
  if (!bound.first_failure()) return bound;

  const ObservedRanges observed = probe_ranges(secure, model, input, kRangeProbes);
  RangeReport estimate = analyze_ranges(secure, input, frac_bits, drelu, &observed);
  estimate.guaranteed = false;
  estimate.worst_case = *bound.first_failure();
  const RangeCheck* bad = estimate.first_failure();
  if (!bad) return estimate;
  std::string advice = fmt::format(
      "no frac_bits from {} up fits (fewer would round the weights away): the model's values are "
      "too large for Z_2^64",
      kMinUsefulFracBits);
  for (int f = frac_bits - 1; f >= kMinUsefulFracBits; --f)
    if (!analyze_ranges(secure, input, f, drelu, &observed).first_failure()) {
      advice = fmt::format("frac_bits {} would fit", f);
      break;
    }
  throw InvalidArgument(fmt::format(
      "{} overflows Z_2^64 at frac_bits {}: its {} reaches {:.3g} ({} in the ring) on inputs in "
      "[{}, {}] (before normalisation), the limit is 2^{}; {}",
      bad->node, frac_bits, bad->what, bad->magnitude, bits_text(bad->bound_bits), range.lo,
      range.hi, bad->limit_bits, advice));
}

std::string describe_range(const RangeReport& r) {
  if (r.guaranteed)
    return fmt::format(
        "fixed point f = {}: no overflow for any input in range ({:.1f} bits to "
        "spare)",
        r.frac_bits, r.headroom_bits());
  const RangeCheck& w = *r.worst_case;
  return fmt::format(
      "fixed point f = {}: {:.1f} bits to spare on {} probe inputs, but overflow is not excluded "
      "for every input (worst case: {} {} up to {}, limit 2^{})",
      r.frac_bits, r.headroom_bits(), kRangeProbes, w.node, w.what, bits_text(w.bound_bits),
      w.limit_bits);
}

}  // namespace veil::mpc

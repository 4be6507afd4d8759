// Data-movement and shape ops: Identity, Dropout, Flatten, Reshape, Squeeze, Unsqueeze (views:
// the input buffer is moved when this node is its last reader), Concat, Pad, Gather, and the
// ops of ONNX shape subgraphs (Shape, Cast, ConstantOfShape, Constant) on int64 tensors.
// Dropout is the identity in both modes: veil's training does not drop activations, and its
// optional mask output is never produced.
#include <algorithm>
#include <cstring>

#include "kernel.hpp"

namespace veil::nn::detail {

namespace {

void copy_data(const Tensor& src, Tensor& dst) {
  if (src.numel() == 0) return;
  if (src.dtype() == DType::Float32)
    std::memcpy(dst.floats().data(), src.floats().data(), sizeof(float) * src.numel());
  else
    std::memcpy(dst.int64s().data(), src.int64s().data(), sizeof(int64_t) * src.numel());
}

std::vector<int64_t> int_values(const Tensor& t) { return t.to_int64s(); }

class ViewKernel final : public Kernel {
 public:
  explicit ViewKernel(const model::LoweredOp& op) : Kernel(op), kind_(op.kind) {
    if (const auto* f = std::get_if<model::FlattenParams>(&op.params)) axis_ = f->axis;
    if (const auto* r = std::get_if<model::ReshapeParams>(&op.params)) allowzero_ = r->allowzero;
    if (const auto* a = std::get_if<model::AxesParams>(&op.params)) {
      axes_ = a->axes;
      has_axes_attr_ = a->attribute;
    }
  }

  void forward(ForwardEnv& env) override {
    const Tensor& x = env.input(0);
    const Shape out = out_shape(env, x);
    if (Tensor* t = env.take_input(0)) {
      t->reshape(out);
      env.set_output(0, std::move(*t));
      return;
    }
    Tensor& y = env.output(0, out, x.dtype());
    copy_data(x, y);
  }

  void backward(BackwardEnv& env) override {
    const Tensor* gy = env.grad_output(0);
    if (!gy || !env.wants_grad(0)) return;
    Tensor& gx = env.grad_input(0);
    if (gy->numel() > 0) std::memcpy(gx.data(), gy->data(), sizeof(float) * gy->numel());
  }

 private:
  Shape out_shape(ForwardEnv& env, const Tensor& x) const {
    const Shape& s = x.shape();
    const int64_t r = x.rank();
    switch (kind_) {
      case model::OpKind::Identity:
      case model::OpKind::Dropout:
        return s;
      case model::OpKind::Flatten: {
        const int64_t a = normalize_axis(axis_, r, describe(), true);
        int64_t outer = 1;
        for (int64_t i = 0; i < a; ++i) outer *= s[i];
        return {outer, outer == 0 ? 0 : x.numel() / outer};
      }
      case model::OpKind::Reshape: {
        const Tensor& st = env.input(1);
        if (st.dtype() != DType::Int64 || st.rank() != 1) fail("shape must be a 1-D int64 tensor");
        const std::vector<int64_t> target(st.int64s().begin(), st.int64s().end());
        const Shape out = model::reshape_output(s, target, allowzero_, describe());
        for (int64_t d : out)
          if (d < 0) fail("cannot reshape " + shape_to_string(s) + " to " + shape_to_string(out));
        if (shape_numel(out) != x.numel())
          fail("cannot reshape " + shape_to_string(s) + " to " + shape_to_string(out));
        return out;
      }
      case model::OpKind::Squeeze: {
        std::vector<int64_t> axes = axes_from(env);
        Shape out;
        if (axes.empty() && !has_axes_attr_ && !env.has_input(1)) {
          for (int64_t d : s)
            if (d != 1) out.push_back(d);
          return out;
        }
        std::vector<bool> drop(r, false);
        for (int64_t a : axes) {
          a = normalize_axis(a, r, describe());
          if (s[a] != 1)
            fail("cannot squeeze dimension " + std::to_string(a) + " of " + shape_to_string(s));
          drop[a] = true;
        }
        for (int64_t i = 0; i < r; ++i)
          if (!drop[i]) out.push_back(s[i]);
        return out;
      }
      case model::OpKind::Unsqueeze: {
        std::vector<int64_t> axes = axes_from(env);
        const int64_t outr = r + static_cast<int64_t>(axes.size());
        std::vector<bool> ins(outr, false);
        for (int64_t a : axes) {
          a = normalize_axis(a, outr, describe());
          if (ins[a]) fail("repeated axis");
          ins[a] = true;
        }
        Shape out;
        size_t k = 0;
        for (int64_t i = 0; i < outr; ++i) out.push_back(ins[i] ? 1 : s[k++]);
        return out;
      }
      default:  // make_tensor_op builds this kernel for the six kinds above only
        break;
    }
    return s;
  }

  std::vector<int64_t> axes_from(ForwardEnv& env) const {
    if (env.has_input(1)) return int_values(env.input(1));
    return axes_;
  }

  model::OpKind kind_;
  int64_t axis_ = 1;
  bool allowzero_ = false;
  std::vector<int64_t> axes_;
  bool has_axes_attr_ = false;
};

class ConcatKernel final : public Kernel {
 public:
  explicit ConcatKernel(const model::LoweredOp& op)
      : Kernel(op), axis_(op.as<model::ConcatParams>().axis) {}

  void forward(ForwardEnv& env) override {
    const Tensor& first = env.input(0);
    const int64_t r = first.rank();
    if (r == 0) fail("cannot concatenate scalars");
    const int64_t axis = normalize_axis(axis_, r, describe());
    Shape out = first.shape();
    out[axis] = 0;
    for (size_t i = 0; i < env.num_inputs(); ++i) {
      const Tensor& t = env.input(i);
      if (t.rank() != r || t.dtype() != first.dtype()) fail("inputs differ in rank or type");
      for (int64_t d = 0; d < r; ++d)
        if (d != axis && t.shape()[d] != first.shape()[d])
          fail("input shapes " + shape_to_string(first.shape()) + " and " +
               shape_to_string(t.shape()) + " differ outside the axis");
      out[axis] += t.shape()[axis];
    }
    Tensor& y = env.output(0, out, first.dtype());
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= out[d];
    for (int64_t d = axis + 1; d < r; ++d) inner *= out[d];
    const size_t es = first.dtype() == DType::Float32 ? sizeof(float) : sizeof(int64_t);
    char* yb = static_cast<char*>(first.dtype() == DType::Float32 ? (void*)y.floats().data()
                                                                  : (void*)y.int64s().data());
    int64_t base = 0;
    for (size_t i = 0; i < env.num_inputs(); ++i) {
      const Tensor& t = env.input(i);
      const int64_t chunk = t.shape()[axis] * inner;
      const char* tb =
          static_cast<const char*>(t.dtype() == DType::Float32 ? (const void*)t.floats().data()
                                                               : (const void*)t.int64s().data());
      if (chunk > 0)
        for (int64_t o = 0; o < outer; ++o)
          std::memcpy(yb + (o * out[axis] * inner + base) * es, tb + o * chunk * es, chunk * es);
      base += chunk;
    }
  }

  void backward(BackwardEnv& env) override {
    const Tensor* gy = env.grad_output(0);
    if (!gy) return;
    const Shape& out = gy->shape();
    const int64_t r = static_cast<int64_t>(out.size());
    const int64_t axis = normalize_axis(axis_, r, describe());
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= out[d];
    for (int64_t d = axis + 1; d < r; ++d) inner *= out[d];
    int64_t base = 0;
    for (size_t i = 0; i < env.num_inputs(); ++i) {
      const int64_t chunk = env.input(i).shape()[axis] * inner;
      if (env.wants_grad(i) && chunk > 0) {
        float* g = env.grad_input(i).data();
        for (int64_t o = 0; o < outer; ++o)
          std::memcpy(g + o * chunk, gy->data() + o * out[axis] * inner + base,
                      sizeof(float) * chunk);
      }
      base += chunk;
    }
  }

 private:
  int64_t axis_;
};

class PadKernel final : public Kernel {
 public:
  explicit PadKernel(const model::LoweredOp& op) : Kernel(op) {
    const auto& p = op.as<model::PadParams>();
    legacy_ = p.attributes;
    mode_ = p.mode;
    pads_attr_ = p.pads;
    value_attr_ = p.value;
  }

  void forward(ForwardEnv& env) override {
    const Tensor& x = env.input(0);
    if (x.dtype() != DType::Float32) fail("needs a float tensor");
    build_maps(env, x);
    Tensor& y = env.output(0, out_);
    float value = value_attr_;
    if (!legacy_ && env.has_input(2)) {
      const Tensor& v = env.input(2);
      if (v.numel() != 1) fail("constant_value must be a scalar");
      value = v.to_floats()[0];
    }
    const float* xs = x.data();
    float* ys = y.data();
    walk([&](int64_t o, int64_t src) { ys[o] = src < 0 ? value : xs[src]; });
  }

  void backward(BackwardEnv& env) override {
    const Tensor* gy = env.grad_output(0);
    if (!gy || !env.wants_grad(0)) return;
    if (gy->shape() != out_) fail("backward without a matching forward");
    float* g = env.grad_input(0).data();
    std::fill(g, g + env.input(0).numel(), 0.0f);
    const float* dy = gy->data();
    walk([&](int64_t o, int64_t src) {
      if (src >= 0) g[src] += dy[o];
    });
  }

 private:
  void build_maps(ForwardEnv& env, const Tensor& x) {
    const int64_t r = x.rank();
    std::vector<int64_t> pads = legacy_ ? pads_attr_ : int_values(env.input(1));
    if (!legacy_ && env.has_input(3)) {
      // opset 18: pads for the listed axes only.
      const auto axes = int_values(env.input(3));
      if (pads.size() != 2 * axes.size()) fail("pads must have 2 * len(axes) values");
      std::vector<int64_t> full(2 * r, 0);
      for (size_t i = 0; i < axes.size(); ++i) {
        const int64_t a = normalize_axis(axes[i], r, describe());
        full[a] = pads[i];
        full[a + r] = pads[i + axes.size()];
      }
      pads = full;
    }
    if (static_cast<int64_t>(pads.size()) != 2 * r)
      fail("pads must have 2 * rank = " + std::to_string(2 * r) + " values");
    out_.assign(r, 0);
    maps_.assign(r, {});
    for (int64_t d = 0; d < r; ++d) {
      const int64_t len = x.shape()[d];
      out_[d] = len + pads[d] + pads[d + r];
      if (out_[d] < 0) fail("pads crop below zero");
      if (len == 0 && mode_ != model::PadMode::Constant && out_[d] > 0)
        fail(std::string("cannot ") + (mode_ == model::PadMode::Edge ? "edge" : "reflect") +
             "-pad an empty dimension");
      auto& m = maps_[d];
      m.resize(out_[d]);
      for (int64_t o = 0; o < out_[d]; ++o) {
        int64_t i = o - pads[d];
        if (i < 0 || i >= len) {
          if (mode_ == model::PadMode::Constant) {
            i = -1;
          } else if (mode_ == model::PadMode::Edge) {
            i = std::clamp<int64_t>(i, 0, len - 1);
          } else if (len == 1) {
            i = 0;
          } else {
            while (i < 0 || i >= len) i = i < 0 ? -i : 2 * (len - 1) - i;
          }
        }
        m[o] = i;
      }
    }
    in_strides_.assign(r, 1);
    for (int64_t d = r - 2; d >= 0; --d) in_strides_[d] = in_strides_[d + 1] * x.shape()[d + 1];
  }

  // Calls f(output index, source index or -1) for every output element.
  template <typename F>
  void walk(F f) const {
    const int64_t r = static_cast<int64_t>(out_.size());
    const int64_t total = shape_numel(out_);
    if (r == 0) {
      if (total) f(0, 0);
      return;
    }
    std::vector<int64_t> idx(r, 0);
    for (int64_t o = 0; o < total; ++o) {
      int64_t src = 0;
      for (int64_t d = 0; d < r && src >= 0; ++d) {
        const int64_t i = maps_[d][idx[d]];
        src = i < 0 ? -1 : src + i * in_strides_[d];
      }
      f(o, src);
      for (int64_t d = r - 1; d >= 0; --d) {
        if (++idx[d] < out_[d]) break;
        idx[d] = 0;
      }
    }
  }

  bool legacy_;
  model::PadMode mode_;
  std::vector<int64_t> pads_attr_;
  float value_attr_;
  Shape out_;
  std::vector<std::vector<int64_t>> maps_;
  std::vector<int64_t> in_strides_;
};

class GatherKernel final : public Kernel {
 public:
  explicit GatherKernel(const model::LoweredOp& op)
      : Kernel(op), axis_(op.as<model::GatherParams>().axis) {}

  void forward(ForwardEnv& env) override {
    const Tensor& data = env.input(0);
    const Tensor& ind = env.input(1);
    if (ind.dtype() != DType::Int64) fail("indices must be int64");
    const int64_t r = data.rank();
    if (r == 0) fail("data must have rank >= 1");
    const int64_t axis = normalize_axis(axis_, r, describe());
    const Shape& ds = data.shape();
    Shape out(ds.begin(), ds.begin() + axis);
    out.insert(out.end(), ind.shape().begin(), ind.shape().end());
    out.insert(out.end(), ds.begin() + axis + 1, ds.end());
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= ds[d];
    for (int64_t d = axis + 1; d < r; ++d) inner *= ds[d];
    const auto idx = ind.int64s();
    const int64_t ni = ind.numel(), len = ds[axis];
    for (int64_t k : idx)
      if (k < -len || k >= len) fail("index " + std::to_string(k) + " is out of range");
    Tensor& y = env.output(0, out, data.dtype());
    auto run = [&](auto* yd, const auto* xd) {
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t j = 0; j < ni; ++j) {
          const int64_t k = idx[j] < 0 ? idx[j] + len : idx[j];
          std::copy(xd + (o * len + k) * inner, xd + (o * len + k + 1) * inner,
                    yd + (o * ni + j) * inner);
        }
    };
    if (data.dtype() == DType::Float32)
      run(y.floats().data(), data.floats().data());
    else
      run(y.int64s().data(), data.int64s().data());
  }

  void backward(BackwardEnv& env) override {
    const Tensor* gy = env.grad_output(0);
    if (!gy || !env.wants_grad(0)) return;
    const Tensor& data = env.input(0);
    const auto idx = env.input(1).int64s();
    const int64_t r = data.rank();
    const int64_t axis = normalize_axis(axis_, r, describe());
    const Shape& ds = data.shape();
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= ds[d];
    for (int64_t d = axis + 1; d < r; ++d) inner *= ds[d];
    const int64_t ni = static_cast<int64_t>(idx.size()), len = ds[axis];
    float* g = env.grad_input(0).data();
    std::fill(g, g + data.numel(), 0.0f);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < ni; ++j) {
        const int64_t k = idx[j] < 0 ? idx[j] + len : idx[j];
        for (int64_t in = 0; in < inner; ++in)
          g[(o * len + k) * inner + in] += gy->data()[(o * ni + j) * inner + in];
      }
  }

 private:
  int64_t axis_;
};

class ShapeKernel final : public Kernel {
 public:
  explicit ShapeKernel(const model::LoweredOp& op) : Kernel(op) {
    const auto& p = op.as<model::ShapeParams>();
    start_ = p.start;
    end_ = p.end.value_or(INT64_MAX);
    has_end_ = p.end.has_value();
  }
  bool differentiable() const override { return false; }

  void forward(ForwardEnv& env) override {
    const Shape& s = env.input(0).shape();
    const int64_t r = static_cast<int64_t>(s.size());
    auto clampi = [&](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + r : v, 0, r); };
    const int64_t b = clampi(start_), e = has_end_ ? clampi(end_) : r;
    const int64_t n = std::max<int64_t>(0, e - b);
    Tensor& y = env.output(0, {n}, DType::Int64);
    for (int64_t i = 0; i < n; ++i) y.int64s()[i] = s[b + i];
  }

 private:
  int64_t start_, end_;
  bool has_end_;
};

class CastKernel final : public Kernel {
 public:
  // veil computes in float32 and int64 only (the registry maps ONNX FLOAT/DOUBLE and
  // INT32/INT64 to them), which is exact for the shape arithmetic these casts serve.
  explicit CastKernel(const model::LoweredOp& op)
      : Kernel(op), to_(op.as<model::CastParams>().dtype) {}
  bool differentiable() const override { return to_ == DType::Float32; }

  void forward(ForwardEnv& env) override {
    const Tensor& x = env.input(0);
    Tensor& y = env.output(0, x.shape(), to_);
    if (x.dtype() == to_) {
      copy_data(x, y);
    } else if (to_ == DType::Float32) {
      const auto v = x.to_floats();
      std::copy(v.begin(), v.end(), y.floats().begin());
    } else {
      const auto v = x.to_int64s();
      std::copy(v.begin(), v.end(), y.int64s().begin());
    }
  }

  void backward(BackwardEnv& env) override {
    const Tensor* gy = env.grad_output(0);
    if (!gy || !env.wants_grad(0)) return;
    if (env.input(0).dtype() != DType::Float32 || gy->numel() == 0) return;
    std::memcpy(env.grad_input(0).data(), gy->data(), sizeof(float) * gy->numel());
  }

 private:
  DType to_;
};

class ConstantOfShapeKernel final : public Kernel {
 public:
  explicit ConstantOfShapeKernel(const model::LoweredOp& op)
      : Kernel(op), value_(op.as<model::ConstantOfShapeParams>().value) {
    if (value_.numel() != 1) fail("value must hold one element");
  }
  bool differentiable() const override { return false; }

  void forward(ForwardEnv& env) override {
    const Tensor& s = env.input(0);
    if (s.dtype() != DType::Int64 || s.rank() != 1) fail("input must be a 1-D int64 tensor");
    const Shape shape(s.int64s().begin(), s.int64s().end());
    for (int64_t d : shape)
      if (d < 0) fail("negative dimension in " + shape_to_string(shape));
    if (shape_numel(shape) > (int64_t{1} << 31)) fail("output is too large");
    Tensor& y = env.output(0, shape, value_.dtype());
    if (value_.dtype() == DType::Float32)
      std::fill(y.floats().begin(), y.floats().end(), value_.floats()[0]);
    else
      std::fill(y.int64s().begin(), y.int64s().end(), value_.int64s()[0]);
  }

 private:
  Tensor value_;
};

class ConstantKernel final : public Kernel {
 public:
  explicit ConstantKernel(const model::LoweredOp& op)
      : Kernel(op), value_(op.as<model::ConstantParams>().value) {}
  bool differentiable() const override { return false; }

  void forward(ForwardEnv& env) override {
    Tensor& y = env.output(0, value_.shape(), value_.dtype());
    copy_data(value_, y);
  }

 private:
  Tensor value_;
};

}  // namespace

std::unique_ptr<Kernel> make_tensor_op(const model::LoweredOp& op) {
  using K = model::OpKind;
  switch (op.kind) {
    case K::Identity:
    case K::Dropout:
    case K::Flatten:
    case K::Reshape:
    case K::Squeeze:
    case K::Unsqueeze:
      return std::make_unique<ViewKernel>(op);
    case K::Concat:
      return std::make_unique<ConcatKernel>(op);
    case K::Pad:
      return std::make_unique<PadKernel>(op);
    case K::Gather:
      return std::make_unique<GatherKernel>(op);
    case K::Shape:
      return std::make_unique<ShapeKernel>(op);
    case K::Cast:
      return std::make_unique<CastKernel>(op);
    case K::ConstantOfShape:
      return std::make_unique<ConstantOfShapeKernel>(op);
    case K::Constant:
      return std::make_unique<ConstantKernel>(op);
    default:
      return nullptr;
  }
}

}  // namespace veil::nn::detail

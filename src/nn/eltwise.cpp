// Element-wise activations. Sigmoid and Tanh run on oneDNN's vectorised eltwise primitive; the
// piecewise-linear ones are single compare/select loops the compiler vectorises, written so that
// NaN passes through as in PyTorch (relu(NaN) = NaN: `x < 0 ? 0 : x`, never `x > 0 ? x : 0`,
// and std::min/std::max keep their first argument when the other is NaN). In inference
// mode the input buffer is reused for the output when this node is its last reader.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernel.hpp"

namespace veil::nn::detail {

namespace {

using dnnl::memory;

enum class Act { Relu, LeakyRelu, Clip, Sigmoid, Tanh };

class EltwiseKernel final : public Kernel {
 public:
  explicit EltwiseKernel(const model::LoweredOp& op) : Kernel(op) {
    using K = model::OpKind;
    act_ = op.kind == K::Relu        ? Act::Relu
           : op.kind == K::LeakyRelu ? Act::LeakyRelu
           : op.kind == K::Clip      ? Act::Clip
           : op.kind == K::Sigmoid   ? Act::Sigmoid
                                     : Act::Tanh;
    if (act_ == Act::LeakyRelu) alpha_ = op.as<model::LeakyReluParams>().alpha;
    if (act_ == Act::Clip) {
      lo_attr_ = op.as<model::ClipParams>().min;
      hi_attr_ = op.as<model::ClipParams>().max;
    }
    if (op.input_ids.empty()) fail("needs an input");
  }

  // Zero-preserving activations may run on a blocked layout's padded storage.
  bool accepts_blocked(size_t input) const override {
    return input == 0 && (act_ == Act::Relu || act_ == Act::LeakyRelu);
  }
  bool keeps_layout() const override { return true; }

  void forward(ForwardEnv& env) override {
    if (const auto* md = env.input_blocked(0); md && env.output_may_block(0)) {
      const Shape shape = env.input_shape(0);
      const int64_t n = static_cast<int64_t>(md->get_size() / sizeof(float));
      const float* xs = env.input_blocked_data(0);
      const float bound = env.input_bound(0);
      Tensor* taken = env.take_blocked_input(0);
      const dnnl::memory::desc layout = *md;
      float* ys = taken ? taken->data() : env.output_blocked(0, shape, layout);
      if (act_ == Act::Relu)
        for (int64_t i = 0; i < n; ++i) ys[i] = xs[i] < 0.0f ? 0.0f : xs[i];
      else
        for (int64_t i = 0; i < n; ++i) ys[i] = xs[i] >= 0.0f ? xs[i] : alpha_ * xs[i];
      if (taken) env.set_output_blocked(0, shape, layout, std::move(*taken));
      if (act_ == Act::Relu) env.set_output_bound(0, bound);  // |relu(x)| <= |x|
      return;
    }
    const Tensor& x = env.input(0);
    if (x.dtype() != DType::Float32) fail("needs a float tensor");
    const float bound = env.input_bound(0);
    Tensor* taken = env.take_input(0);
    Tensor& y = taken ? *taken : env.output(0, x.shape());
    const float* xs = x.data();
    float* ys = y.data();
    const int64_t n = x.numel();
    switch (act_) {
      case Act::Relu:
        for (int64_t i = 0; i < n; ++i) ys[i] = xs[i] < 0.0f ? 0.0f : xs[i];
        break;
      case Act::LeakyRelu:
        for (int64_t i = 0; i < n; ++i) ys[i] = xs[i] >= 0.0f ? xs[i] : alpha_ * xs[i];
        break;
      case Act::Clip: {
        float lo, hi;
        bounds(env, lo, hi);
        for (int64_t i = 0; i < n; ++i) ys[i] = std::min(std::max(xs[i], lo), hi);
        break;
      }
      case Act::Sigmoid:
      case Act::Tanh:
        run_dnnl(env, xs, ys, n);
        break;
    }
    if (taken) env.set_output(0, std::move(*taken));
    if (act_ == Act::Relu) env.set_output_bound(0, bound);  // |relu(x)| <= |x|
  }

  void backward(BackwardEnv& env) override {
    const Tensor* gy = env.grad_output(0);
    if (!gy || !env.wants_grad(0)) return;
    const Tensor& x = env.input(0);
    const Tensor& y = env.output(0);
    const float* dy = gy->data();
    const float* xs = x.data();
    const float* ys = y.data();
    float* dx = env.grad_input(0).data();
    const int64_t n = x.numel();
    // Both operands are loaded unconditionally so that the selects vectorise (a conditional
    // load keeps the loop scalar and branchy).
    switch (act_) {
      case Act::Relu:
        for (int64_t i = 0; i < n; ++i) {
          const float g = dy[i];
          dx[i] = ys[i] > 0.0f ? g : 0.0f;
        }
        break;
      case Act::LeakyRelu:
        for (int64_t i = 0; i < n; ++i) {
          const float g = dy[i];
          dx[i] = xs[i] >= 0.0f ? g : alpha_ * g;
        }
        break;
      case Act::Clip:
        for (int64_t i = 0; i < n; ++i) {
          const float g = dy[i];
          dx[i] = xs[i] >= lo_ && xs[i] <= hi_ ? g : 0.0f;
        }
        break;
      case Act::Sigmoid:
        for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * ys[i] * (1.0f - ys[i]);
        break;
      case Act::Tanh:
        for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (1.0f - ys[i] * ys[i]);
        break;
    }
  }

 private:
  void bounds(ForwardEnv& env, float& lo, float& hi) {
    lo = lo_attr_;
    hi = hi_attr_;
    auto scalar = [&](size_t i, float& v) {
      if (!env.has_input(i)) return;
      const Tensor& t = env.input(i);
      if (t.numel() != 1) fail("min and max must be scalars");
      v = t.to_floats()[0];
    };
    scalar(1, lo);
    scalar(2, hi);
    lo_ = lo;
    hi_ = hi;
  }

  void run_dnnl(ForwardEnv& env, const float* x, float* y, int64_t n) {
    if (n == 0) return;
    auto& ctx = env.dnnl();
    if (n != cached_n_) {
      const memory::desc md({n}, memory::data_type::f32, memory::format_tag::a);
      const auto alg =
          act_ == Act::Sigmoid ? dnnl::algorithm::eltwise_logistic : dnnl::algorithm::eltwise_tanh;
      dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, alg, md, 0.0f, 0.0f);
      prim_ = dnnl::eltwise_forward(dnnl::eltwise_forward::primitive_desc(d, ctx.engine));
      src_ = memory(md, ctx.engine, DNNL_MEMORY_NONE);
      dst_ = memory(md, ctx.engine, DNNL_MEMORY_NONE);
      cached_n_ = n;
    }
    src_.set_data_handle(const_cast<float*>(x));
    dst_.set_data_handle(y);
    prim_.execute(ctx.stream, {{DNNL_ARG_SRC, src_}, {DNNL_ARG_DST, dst_}});
    ctx.stream.wait();
  }

  Act act_;
  float alpha_ = 0.01f;
  float lo_attr_ = -std::numeric_limits<float>::infinity();
  float hi_attr_ = std::numeric_limits<float>::infinity();
  float lo_ = 0, hi_ = 0;  // bounds of the last forward, for backward
  int64_t cached_n_ = -1;
  dnnl::eltwise_forward prim_;
  memory src_, dst_;
};

}  // namespace

std::unique_ptr<Kernel> make_eltwise(const model::LoweredOp& op) {
  return std::make_unique<EltwiseKernel>(op);
}

}  // namespace veil::nn::detail

// BatchNormalization on plain NCHW data. Inference: a per-channel affine map with the running
// statistics (in a Conv->BN chain it is folded into the convolution instead). Training: batch
// statistics, and the running statistics updated in the model the PyTorch way
// (running = momentum * running + (1 - momentum) * batch, the variance unbiased). These are
// direct loops: oneDNN 2.6's plain-layout batch normalization was several times slower.
#include <cmath>

#include "kernel.hpp"

namespace veil::nn::detail {

namespace {

class BatchNormKernel final : public Kernel {
 public:
  explicit BatchNormKernel(const model::LoweredOp& op) : Kernel(op) {
    if (op.input_ids.size() != 5) fail("takes 5 inputs");
    epsilon_ = op.as<model::BatchNormParams>().epsilon;
    momentum_ = op.as<model::BatchNormParams>().momentum;
  }
  std::vector<size_t> parameter_inputs() const override { return {1, 2}; }

  void forward(ForwardEnv& env) override {
    const Tensor& x = env.input(0);
    const int64_t c = channels(x);
    const auto scale = param(env, 1, c), shift = param(env, 2, c);
    const auto mean = param(env, 3, c), var = param(env, 4, c);
    frozen_ = !env.training() || env.frozen_batch_norm();
    if (frozen_) {
      inference_forward(env, x, scale, shift, mean, var);
      return;
    }
    State& st = state(x);
    Tensor& y = env.output(0, x.shape());
    training_forward(x, scale, shift, st, y.data());
    last_ = &st;
    update_running(env, x, c, st);
    // Optional outputs: running mean/var after the update; saved (batch) mean/var.
    auto emit = [&](size_t i, const std::vector<float>& v) {
      if (!env.has_output(i)) return;
      Tensor& t = env.output(i, {c});
      std::copy(v.begin(), v.end(), t.floats().begin());
    };
    if (env.has_output(1) || env.has_output(2)) {
      const auto rm = env.input(3).floats(), rv = env.input(4).floats();
      emit(1, std::vector<float>(rm.begin(), rm.end()));
      emit(2, std::vector<float>(rv.begin(), rv.end()));
    }
    emit(3, st.mean);
    emit(4, st.var);
  }

  void backward(BackwardEnv& env) override {
    const Tensor* gy = env.grad_output(0);
    if (!gy) return;
    if (frozen_) return affine_backward(env, *gy);
    if (!last_) return;
    State& st = *last_;
    const Tensor& x = env.input(0);
    if (x.shape() != st.x_shape) fail("backward without a matching forward");
    const int64_t n = x.dim(0), c = x.dim(1);
    const int64_t sp = n * c == 0 ? 0 : x.numel() / (n * c);
    const double count = static_cast<double>(n * sp);
    const auto scale = env.input(1).floats();
    float* dx = env.wants_grad(0) ? env.grad_input(0).data() : nullptr;
    float* dscale = env.wants_grad(1) ? env.grad_input(1).data() : nullptr;
    float* dshift = env.wants_grad(2) ? env.grad_input(2).data() : nullptr;
    const float* xs = x.data();
    const float* dy = gy->data();
    for (int64_t ch = 0; ch < c; ++ch) {
      const float mu = st.mean[ch], inv = st.inv_std[ch];
      double sum_dy = 0, sum_dy_xc = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float* xp = xs + (i * c + ch) * sp;
        const float* gp = dy + (i * c + ch) * sp;
        sum_dy += lane_sum(gp, sp);
        sum_dy_xc += lane_dot_centered(gp, xp, sp, mu);
      }
      // dxhat-terms of the batch-statistics backward (Ioffe & Szegedy 2015, sec. 3).
      const double g_xhat = sum_dy_xc * inv;
      if (dscale) dscale[ch] = static_cast<float>(g_xhat);
      if (dshift) dshift[ch] = static_cast<float>(sum_dy);
      if (!dx || count == 0) continue;
      const float k = scale[ch] * inv;
      const float mean_dy = static_cast<float>(sum_dy / count);
      const float coef = static_cast<float>(g_xhat / count) * inv;
      for (int64_t i = 0; i < n; ++i) {
        const float* xp = xs + (i * c + ch) * sp;
        const float* gp = dy + (i * c + ch) * sp;
        float* out = dx + (i * c + ch) * sp;
        for (int64_t j = 0; j < sp; ++j) out[j] = k * (gp[j] - mean_dy - (xp[j] - mu) * coef);
      }
    }
  }

 private:
  struct State {
    Shape x_shape;
    std::vector<float> mean, var, inv_std;  // batch statistics (var biased)
  };

  int64_t channels(const Tensor& x) const {
    if (x.dtype() != DType::Float32 || x.rank() < 2)
      fail("input must be a float tensor of rank >= 2, got " + shape_to_string(x.shape()));
    return x.dim(1);
  }

  std::span<const float> param(ForwardEnv& env, size_t i, int64_t c) const {
    const Tensor& t = env.input(i);
    if (t.dtype() != DType::Float32 || t.numel() != c)
      fail("parameter " + std::to_string(i) + " must hold " + std::to_string(c) + " floats");
    return t.floats();
  }

  // Backward of y = (x - mean) * scale / sqrt(var + eps) + shift with the running statistics
  // held constant.
  void affine_backward(BackwardEnv& env, const Tensor& gy) {
    const Tensor& x = env.input(0);
    const int64_t n = x.dim(0), c = x.dim(1);
    const int64_t s = n * c == 0 ? 0 : x.numel() / (n * c);
    const auto scale = env.input(1).floats();
    const auto mean = env.input(3).floats(), var = env.input(4).floats();
    float* dx = env.wants_grad(0) ? env.grad_input(0).data() : nullptr;
    float* dscale = env.wants_grad(1) ? env.grad_input(1).data() : nullptr;
    float* dshift = env.wants_grad(2) ? env.grad_input(2).data() : nullptr;
    for (int64_t ch = 0; ch < c; ++ch) {
      const float inv = 1.0f / std::sqrt(var[ch] + epsilon_);
      double ds = 0, db = 0;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t o = (i * c + ch) * s;
        for (int64_t j = 0; j < s; ++j) {
          const float g = gy.data()[o + j];
          if (dx) dx[o + j] = g * scale[ch] * inv;
          ds += double(g) * (x.data()[o + j] - mean[ch]) * inv;
          db += g;
        }
      }
      if (dscale) dscale[ch] = static_cast<float>(ds);
      if (dshift) dshift[ch] = static_cast<float>(db);
    }
  }

  void inference_forward(ForwardEnv& env, const Tensor& x, std::span<const float> scale,
                         std::span<const float> shift, std::span<const float> mean,
                         std::span<const float> var) {
    const int64_t n = x.dim(0), c = x.dim(1);
    const int64_t s = n * c == 0 ? 0 : x.numel() / (n * c);
    Tensor* src = env.take_input(0);
    Tensor& y = src ? *src : env.output(0, x.shape());
    const float* xs = x.data();
    float* ys = y.data();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t ch = 0; ch < c; ++ch) {
        const float k = scale[ch] / std::sqrt(var[ch] + epsilon_);
        const float b = shift[ch] - mean[ch] * k;
        const int64_t o = (i * c + ch) * s;
        for (int64_t j = 0; j < s; ++j) ys[o + j] = xs[o + j] * k + b;
      }
    if (src) env.set_output(0, std::move(*src));
  }

  State& state(const Tensor& x) {
    for (auto& s : states_)
      if (s->x_shape == x.shape()) return *s;
    if (states_.size() >= 8) {
      if (last_ == states_.front().get()) last_ = nullptr;
      states_.erase(states_.begin());
    }
    auto s = std::make_unique<State>();
    s->x_shape = x.shape();
    states_.push_back(std::move(s));
    return *states_.back();
  }

  // Batch statistics (two passes: mean, then centred squares) and the normalised output.
  void training_forward(const Tensor& x, std::span<const float> scale, std::span<const float> shift,
                        State& st, float* y) {
    const int64_t n = x.dim(0), c = x.dim(1);
    const int64_t sp = n * c == 0 ? 0 : x.numel() / (n * c);
    const double count = static_cast<double>(n * sp);
    st.mean.assign(c, 0.0f);
    st.var.assign(c, 0.0f);
    st.inv_std.assign(c, 0.0f);
    const float* xs = x.data();
    for (int64_t ch = 0; ch < c; ++ch) {
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        sum += lane_sum(xs + (i * c + ch) * sp, sp);
      }
      const float mu = count > 0 ? static_cast<float>(sum / count) : 0.0f;
      double sq = 0;
      for (int64_t i = 0; i < n; ++i) {
        sq += lane_sum_sq_centered(xs + (i * c + ch) * sp, sp, mu);
      }
      const float var = count > 0 ? static_cast<float>(sq / count) : 0.0f;
      const float inv = 1.0f / std::sqrt(var + epsilon_);
      st.mean[ch] = mu;
      st.var[ch] = var;
      st.inv_std[ch] = inv;
      const float k = scale[ch] * inv, b = shift[ch] - mu * k;
      for (int64_t i = 0; i < n; ++i) {
        const float* p = xs + (i * c + ch) * sp;
        float* q = y + (i * c + ch) * sp;
        for (int64_t j = 0; j < sp; ++j) q[j] = p[j] * k + b;
      }
    }
  }

  void update_running(ForwardEnv& env, const Tensor& x, int64_t c, const State& st) {
    const int64_t count = x.numel() / std::max<int64_t>(c, 1);
    const float unbias =
        count > 1 ? static_cast<float>(count) / static_cast<float>(count - 1) : 1.0f;
    for (size_t i : {size_t{3}, size_t{4}}) {
      if (!env.input_is_initializer(i)) continue;
      Tensor& r = env.mutable_initializer(i);
      auto v = r.floats();
      const std::vector<float>& batch = i == 3 ? st.mean : st.var;
      const float f = i == 3 ? 1.0f : unbias;
      for (int64_t ch = 0; ch < c; ++ch)
        v[ch] = momentum_ * v[ch] + (1.0f - momentum_) * batch[ch] * f;
      env.initializer_written(i);
    }
  }

  float epsilon_, momentum_;
  bool frozen_ = false;  // the last forward used the running statistics
  std::vector<std::unique_ptr<State>> states_;
  State* last_ = nullptr;
};

}  // namespace

std::unique_ptr<Kernel> make_batch_norm(const model::LoweredOp& op) {
  return std::make_unique<BatchNormKernel>(op);
}

}  // namespace veil::nn::detail

// Softmax: opset >= 13 normalises along one axis; earlier opsets coerce the input to 2-D
// [prod(dims[:axis]), prod(dims[axis:])] and normalise the rows.
#include <algorithm>
#include <cmath>

#include "kernel.hpp"

namespace veil::nn::detail {

namespace {

class SoftmaxKernel final : public Kernel {
 public:
  explicit SoftmaxKernel(const model::LoweredOp& op)
      : Kernel(op),
        legacy_(op.as<model::SoftmaxParams>().coerce_2d),
        axis_(op.as<model::SoftmaxParams>().axis) {}

  void forward(ForwardEnv& env) override {
    const Tensor& x = env.input(0);
    if (x.dtype() != DType::Float32) fail("needs a float tensor");
    int64_t outer, len, inner;
    split(x.shape(), outer, len, inner);
    Tensor& y = env.output(0, x.shape());
    const float* xs = x.data();
    float* ys = y.data();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t in = 0; in < inner; ++in) {
        const float* xp = xs + o * len * inner + in;
        float* yp = ys + o * len * inner + in;
        float mx = -INFINITY;
        for (int64_t i = 0; i < len; ++i) mx = std::max(mx, xp[i * inner]);
        float sum = 0;
        for (int64_t i = 0; i < len; ++i) sum += (yp[i * inner] = std::exp(xp[i * inner] - mx));
        const float inv = 1.0f / sum;
        for (int64_t i = 0; i < len; ++i) yp[i * inner] *= inv;
      }
  }

  void backward(BackwardEnv& env) override {
    const Tensor* gy = env.grad_output(0);
    if (!gy || !env.wants_grad(0)) return;
    const Tensor& y = env.output(0);
    int64_t outer, len, inner;
    split(y.shape(), outer, len, inner);
    float* dx = env.grad_input(0).data();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t in = 0; in < inner; ++in) {
        const int64_t base = o * len * inner + in;
        float dot = 0;
        for (int64_t i = 0; i < len; ++i)
          dot += gy->data()[base + i * inner] * y.data()[base + i * inner];
        for (int64_t i = 0; i < len; ++i) {
          const int64_t k = base + i * inner;
          dx[k] = y.data()[k] * (gy->data()[k] - dot);
        }
      }
  }

 private:
  void split(const Shape& s, int64_t& outer, int64_t& len, int64_t& inner) const {
    const int64_t r = static_cast<int64_t>(s.size());
    if (r == 0) fail("needs rank >= 1");
    const int64_t axis = normalize_axis(axis_, r, describe(), legacy_);
    outer = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= s[i];
    if (legacy_) {
      len = 1;
      for (int64_t i = axis; i < r; ++i) len *= s[i];
      inner = 1;
    } else {
      len = s[axis];
      inner = 1;
      for (int64_t i = axis + 1; i < r; ++i) inner *= s[i];
    }
  }

  bool legacy_;
  int64_t axis_;
};

}  // namespace

std::unique_ptr<Kernel> make_softmax(const model::LoweredOp& op) {
  return std::make_unique<SoftmaxKernel>(op);
}

}  // namespace veil::nn::detail

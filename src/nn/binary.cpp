// Add, Sub, Mul, Div with numpy broadcasting (float, and int64 for shape arithmetic), and PRelu
// (float; its slope broadcasts to the input). Gradients are reduced over the broadcast
// dimensions of each operand.
#include <algorithm>

#include "kernel.hpp"
#include "veil/nn/reference.hpp"

namespace veil::nn::detail {

namespace {

// The kernel runs Add, Sub, Mul, Div and PRelu only (make_kernel).
using Op = model::OpKind;

// Per-dimension element strides of `s` aligned to `out` (0 where s broadcasts).
std::vector<int64_t> bcast_strides(const Shape& s, const Shape& out) {
  const size_t r = out.size();
  std::vector<int64_t> st(r, 0);
  int64_t acc = 1;
  for (size_t d = r; d-- > 0;) {
    const int64_t sd = static_cast<int64_t>(d) - static_cast<int64_t>(r - s.size());
    if (sd < 0) continue;
    if (s[sd] != 1) st[d] = acc;
    acc *= s[sd];
  }
  return st;
}

// y[i] = f(a[ia], b[ib]) over the broadcast output, innermost dimension as a strided run.
template <typename T, typename F>
void broadcast_apply(const Shape& out, const Shape& sa, const T* a, const Shape& sb, const T* b,
                     T* y, F f) {
  const int64_t total = shape_numel(out);
  if (total == 0) return;
  if (sa == out && sb == out) {
    for (int64_t i = 0; i < total; ++i) y[i] = f(a[i], b[i]);
    return;
  }
  if (out.empty()) {
    y[0] = f(a[0], b[0]);
    return;
  }
  const size_t r = out.size();
  const auto ta = bcast_strides(sa, out), tb = bcast_strides(sb, out);
  const int64_t inner = out[r - 1], ia = ta[r - 1], ib = tb[r - 1];
  std::vector<int64_t> idx(r, 0);
  int64_t oa = 0, ob = 0;
  for (int64_t i = 0; i < total; i += inner) {
    if (ia == 1 && ib == 1) {
      for (int64_t j = 0; j < inner; ++j) y[i + j] = f(a[oa + j], b[ob + j]);
    } else if (ia == 1) {
      const T bv = b[ob];
      for (int64_t j = 0; j < inner; ++j) y[i + j] = f(a[oa + j], bv);
    } else if (ib == 1) {
      const T av = a[oa];
      for (int64_t j = 0; j < inner; ++j) y[i + j] = f(av, b[ob + j]);
    } else {
      const T av = a[oa], bv = b[ob];
      for (int64_t j = 0; j < inner; ++j) y[i + j] = f(av, bv);
    }
    for (size_t d = r - 1; d-- > 0;) {
      ++idx[d];
      oa += ta[d];
      ob += tb[d];
      if (idx[d] < out[d]) break;
      oa -= ta[d] * out[d];
      ob -= tb[d] * out[d];
      idx[d] = 0;
    }
  }
}

template <typename T>
void apply_op(Op op, const Shape& out, const Shape& sa, const T* a, const Shape& sb, const T* b,
              T* y) {
  switch (op) {
    case Op::Add:
      return broadcast_apply(out, sa, a, sb, b, y, [](T u, T v) { return u + v; });
    case Op::Sub:
      return broadcast_apply(out, sa, a, sb, b, y, [](T u, T v) { return u - v; });
    case Op::Mul:
      return broadcast_apply(out, sa, a, sb, b, y, [](T u, T v) { return u * v; });
    case Op::Div:
      if constexpr (std::is_integral_v<T>) {
        // Integer division of shape values; a zero divisor is malformed input, not UB.
        return broadcast_apply(out, sa, a, sb, b, y, [](T u, T v) {
          if (v == 0) throw MalformedInput("Div: integer division by zero");
          return u / v;
        });
      } else {
        return broadcast_apply(out, sa, a, sb, b, y, [](T u, T v) { return u / v; });
      }
    case Op::PRelu:
      if constexpr (std::is_integral_v<T>) {
        throw Unsupported("PRelu: needs a float tensor");
      } else {
        // NaN passes through (NaN >= 0 is false, slope * NaN is NaN), as in PyTorch.
        return broadcast_apply(out, sa, a, sb, b, y, [](T u, T v) { return u >= 0 ? u : v * u; });
      }
    default:
      throw Unsupported("not a binary op: " + model::op_name(op));
  }
}

class BinaryKernel final : public Kernel {
 public:
  explicit BinaryKernel(const model::LoweredOp& op) : Kernel(op), op_(op.kind) {
    if (op.input_ids.size() != 2) fail("takes 2 inputs");
  }

  // Zero-preserving ops may combine two values held in the same blocked layout.
  bool accepts_blocked(size_t) const override { return op_ != Op::Div && op_ != Op::PRelu; }
  bool keeps_layout() const override { return true; }

  void forward(ForwardEnv& env) override {
    const auto* ma = env.input_blocked(0);
    const auto* mb = env.input_blocked(1);
    if (ma && mb && *ma == *mb && env.input_shape(0) == env.input_shape(1) &&
        env.output_may_block(0)) {
      const Shape shape = env.input_shape(0);
      const dnnl::memory::desc layout = *ma;
      const Shape flat{static_cast<int64_t>(layout.get_size() / sizeof(float))};
      const float* a = env.input_blocked_data(0);
      const float* b = env.input_blocked_data(1);
      Tensor* taken = env.take_blocked_input(0);
      if (!taken) taken = env.take_blocked_input(1);
      float* y = taken ? taken->data() : env.output_blocked(0, shape, layout);
      apply_op<float>(op_, flat, flat, a, flat, b, y);
      if (taken) env.set_output_blocked(0, shape, layout, std::move(*taken));
      return;
    }
    const Tensor& a = env.input(0);
    const Tensor& b = env.input(1);
    if (a.dtype() != b.dtype()) fail("operands have different types");
    Shape out;
    try {
      out = reference::broadcast_shapes(a.shape(), b.shape());
    } catch (const InvalidArgument&) {
      fail("shapes " + shape_to_string(a.shape()) + " and " + shape_to_string(b.shape()) +
           " do not broadcast");
    }
    if (op_ == Op::PRelu && out != a.shape())
      fail("slope " + shape_to_string(b.shape()) + " does not broadcast to the input " +
           shape_to_string(a.shape()));
    Tensor* taken = nullptr;
    if (a.shape() == out) taken = env.take_input(0);
    if (!taken && b.shape() == out) taken = env.take_input(1);
    Tensor& y = taken ? *taken : env.output(0, out, a.dtype());
    if (a.dtype() == DType::Float32)
      apply_op<float>(op_, out, a.shape(), a.data(), b.shape(), b.data(), y.data());
    else
      apply_op<int64_t>(op_, out, a.shape(), a.int64s().data(), b.shape(), b.int64s().data(),
                        y.int64s().data());
    if (taken) env.set_output(0, std::move(*taken));
  }

  void backward(BackwardEnv& env) override {
    const Tensor* gy = env.grad_output(0);
    if (!gy) return;
    const Tensor& a = env.input(0);
    const Tensor& b = env.input(1);
    const Shape& out = gy->shape();
    const float* dy = gy->data();
    const int64_t total = gy->numel();
    for (size_t i = 0; i < 2; ++i) {
      if (!env.wants_grad(i)) continue;
      const Tensor& self = i == 0 ? a : b;
      const Tensor& other = i == 0 ? b : a;
      float* g = env.grad_input(i).data();
      const bool full = self.shape() == out;
      float* tmp = full ? g : scratch_.get(total);
      const float sign = (op_ == Op::Sub && i == 1) ? -1.0f : 1.0f;
      switch (op_) {
        case Op::Add:
        case Op::Sub:
          if (full) {
            for (int64_t j = 0; j < total; ++j) g[j] = sign * dy[j];
            continue;
          }
          reduce_to(dy, out, self.shape(), sign, g);
          continue;
        case Op::Mul:
          broadcast_apply<float>(out, out, dy, other.shape(), other.data(), tmp,
                                 [](float u, float v) { return u * v; });
          break;
        case Op::PRelu:
          // dy/dx = x >= 0 ? 1 : slope; dy/dslope = x >= 0 ? 0 : x.
          if (i == 0)
            broadcast_apply<float>(out, out, a.data(), b.shape(), b.data(), tmp,
                                   [](float u, float v) { return u >= 0 ? 1.0f : v; });
          else
            for (int64_t j = 0; j < total; ++j) tmp[j] = a.data()[j] >= 0 ? 0.0f : a.data()[j];
          for (int64_t j = 0; j < total; ++j) tmp[j] *= dy[j];
          break;
        case Op::Div:
          if (i == 0) {
            broadcast_apply<float>(out, out, dy, b.shape(), b.data(), tmp,
                                   [](float u, float v) { return u / v; });
          } else {
            // d(a/b)/db = -a/b^2 = -y/b.
            const Tensor& y = env.output(0);
            broadcast_apply<float>(out, out, y.data(), b.shape(), b.data(), tmp,
                                   [](float u, float v) { return -u / v; });
            for (int64_t j = 0; j < total; ++j) tmp[j] *= dy[j];
          }
          break;
        default:
          continue;
      }
      if (!full) reduce_to(tmp, out, self.shape(), 1.0f, g);
    }
  }

 private:
  Op op_;
  Scratch scratch_;
};

}  // namespace

std::unique_ptr<Kernel> make_binary(const model::LoweredOp& op) {
  return std::make_unique<BinaryKernel>(op);
}

}  // namespace veil::nn::detail

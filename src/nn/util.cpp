// Helpers shared by the kernels, and the op-name -> kernel dispatch.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernel.hpp"

namespace veil::nn::detail {

void add_into(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

namespace {
constexpr int kLanes = 16;
template <typename F>
float lanes(int64_t n, F term) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += term(i + l);
  float tail = 0;
  for (; i < n; ++i) tail += term(i);
  float total = 0;
  for (int l = 0; l < kLanes; ++l) total += acc[l];
  return total + tail;
}
}  // namespace

float finite_max_abs(const float* p, int64_t n) {
  // Explicit 4-wide vectors (GCC/Clang vector extensions), four accumulators each: max and min
  // of x and an OR of x != x (NaN). Written as a plain loop the compiler keeps it scalar, and
  // this scan runs on activations every inference.
  using V = float __attribute__((vector_size(16)));
  using VI = int __attribute__((vector_size(16)));
  constexpr int kU = 4;
  V hi[kU] = {}, lo[kU] = {};
  VI nan[kU] = {};
  int64_t i = 0;
  for (; i + 4 * kU <= n; i += 4 * kU)
    for (int k = 0; k < kU; ++k) {
      V x;
      std::memcpy(&x, p + i + 4 * k, sizeof x);
      hi[k] = x > hi[k] ? x : hi[k];
      lo[k] = x < lo[k] ? x : lo[k];
      nan[k] |= x != x;
    }
  float m = 0;
  bool bad = false;
  for (; i < n; ++i) {
    m = std::max(m, std::fabs(p[i]));
    bad = bad || std::isnan(p[i]);
  }
  for (int k = 0; k < kU; ++k)
    for (int l = 0; l < 4; ++l) {
      m = std::max(m, std::max(hi[k][l], -lo[k][l]));
      bad = bad || nan[k][l] != 0;
    }
  return bad || std::isinf(m) ? std::numeric_limits<float>::infinity() : m;
}

float input_max_abs(const ForwardEnv& env, size_t i, const float* data, int64_t n) {
  const float known = env.input_bound(i);
  return std::isfinite(known) ? known : finite_max_abs(data, n);
}

float lane_sum(const float* p, int64_t n) {
  return lanes(n, [p](int64_t i) { return p[i]; });
}
float lane_sum_sq_centered(const float* p, int64_t n, float mean) {
  return lanes(n, [p, mean](int64_t i) { return (p[i] - mean) * (p[i] - mean); });
}
float lane_dot_centered(const float* g, const float* x, int64_t n, float mean) {
  return lanes(n, [g, x, mean](int64_t i) { return g[i] * (x[i] - mean); });
}

void reduce_to(const float* g, const Shape& full, const Shape& target, float scale, float* out) {
  const int64_t total = shape_numel(full);
  const int64_t tn = shape_numel(target);
  std::fill(out, out + tn, 0.0f);
  if (tn == total) {
    for (int64_t i = 0; i < total; ++i) out[i] = g[i] * scale;
    return;
  }
  const size_t r = full.size();
  // Stride of each output dimension in `target` (0 where target broadcasts).
  std::vector<int64_t> tstride(r, 0);
  int64_t acc = 1;
  for (size_t d = r; d-- > 0;) {
    const int64_t td = static_cast<int64_t>(d) - static_cast<int64_t>(r - target.size());
    if (td >= 0 && target[td] != 1) {
      tstride[d] = acc;
      acc *= target[td];
    }
  }
  // Innermost dimension handled as a run.
  const int64_t inner = r ? full[r - 1] : 1;
  const int64_t is = r ? tstride[r - 1] : 0;
  std::vector<int64_t> idx(r, 0);
  int64_t off = 0;
  for (int64_t i = 0; i < total; i += inner) {
    if (is == 0) {
      float s = 0;
      for (int64_t j = 0; j < inner; ++j) s += g[i + j];
      out[off] += s;
    } else {
      for (int64_t j = 0; j < inner; ++j) out[off + j] += g[i + j];
    }
    for (size_t d = r - 1; d-- > 0;) {
      ++idx[d];
      off += tstride[d];
      if (idx[d] < full[d]) break;
      off -= tstride[d] * full[d];
      idx[d] = 0;
    }
  }
  if (scale != 1.0f)
    for (int64_t i = 0; i < tn; ++i) out[i] *= scale;
}

int64_t normalize_axis(int64_t axis, int64_t rank, const std::string& who, bool inclusive) {
  const int64_t hi = inclusive ? rank + 1 : rank;
  if (axis < -rank || axis >= hi)
    throw MalformedInput(who + ": axis " + std::to_string(axis) + " is out of range for rank " +
                         std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

dnnl::memory::format_tag plain_tag(size_t rank) {
  using tag = dnnl::memory::format_tag;
  switch (rank) {
    case 1:
      return tag::a;
    case 2:
      return tag::ab;
    case 3:
      return tag::abc;
    case 4:
      return tag::abcd;
    case 5:
      return tag::abcde;
    case 6:
      return tag::abcdef;
    default:
      throw Unsupported("tensors of rank " + std::to_string(rank) + " in oneDNN");
  }
}

std::unique_ptr<Kernel> make_kernel(const model::LoweredOp& op) {
  using K = model::OpKind;
  switch (op.kind) {
    case K::Conv:
      return make_conv(op, nullptr);
    case K::Gemm:
      return make_gemm(op);
    case K::MatMul:
      return make_matmul(op);
    case K::MaxPool:
    case K::AveragePool:
    case K::GlobalAveragePool:
    case K::GlobalMaxPool:
      return make_pool(op);
    case K::BatchNormalization:
      return make_batch_norm(op);
    case K::Relu:
    case K::LeakyRelu:
    case K::Clip:
    case K::Sigmoid:
    case K::Tanh:
      return make_eltwise(op);
    case K::BlockRelu:
      return make_block_relu(op);
    case K::Add:
    case K::Sub:
    case K::Mul:
    case K::Div:
    case K::PRelu:
      return make_binary(op);
    case K::Softmax:
      return make_softmax(op);
    default:  // data movement and shape ops, or an op the float engine lacks
      if (auto k = make_tensor_op(op)) return k;
      break;
  }
  throw Unsupported(op.describe() + ": not supported by the float engine");
}

}  // namespace veil::nn::detail

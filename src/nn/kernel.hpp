// Internal interface between the executor and its per-op kernels. A kernel is built once per
// graph node (attributes parsed and checked up front) and caches whatever it derives from the
// input shapes (oneDNN primitives, reordered weights) itself, keyed by those shapes.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <vector>

#include "veil/core/error.hpp"
#include "veil/core/tensor.hpp"
#include "veil/model/graph.hpp"
#include "veil/model/lowered.hpp"
#include "veil/model/shape_inference.hpp"
#include "veil/nn/executor.hpp"

namespace veil::nn::detail {

// Version of a value that is not an initializer: it may change on every call.
inline constexpr uint64_t kVolatile = std::numeric_limits<uint64_t>::max();

class Runtime;
struct Step;

struct DnnlContext {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
};

// What a kernel sees of the executor while running forward.
class ForwardEnv {
 public:
  ForwardEnv(Runtime& rt, const Step& step) : rt_(rt), step_(step) {}

  size_t num_inputs() const;
  bool has_input(size_t i) const;
  const Tensor& input(size_t i) const;       // throws MalformedInput when omitted
  const Shape& input_shape(size_t i) const;  // without converting a blocked value
  // Inference mode: the input's oneDNN layout when it is held blocked, else nullptr.
  const dnnl::memory::desc* input_blocked(size_t i) const;
  const float* input_blocked_data(size_t i) const;
  // The blocked storage of the input when this step may overwrite it in place (else nullptr).
  Tensor* take_blocked_input(size_t i);
  // Per-initializer change counter (bumped by parameter_changed); kVolatile for other values.
  uint64_t input_version(size_t i) const;
  // The input's own tensor when this step may consume it (inference mode, last use, owned by
  // the executor), else nullptr.
  Tensor* take_input(size_t i);
  bool input_is_initializer(size_t i) const;
  // Initializer inputs that the kernel writes (BatchNormalization running statistics).
  Tensor& mutable_initializer(size_t i);
  void initializer_written(size_t i);

  size_t num_outputs() const;
  bool has_output(size_t i) const;
  // A tensor of this shape for output i; its contents are unspecified (pooled buffer).
  Tensor& output(size_t i, const Shape& shape, DType dtype = DType::Float32);
  void set_output(size_t i, Tensor&& t);
  // Inference: a bound on |x| over input i set by its producer (every element then finite), or
  // +inf when unknown; set_output_bound records one for output i after it is written.
  float input_bound(size_t i) const;
  void set_output_bound(size_t i, float bound);
  // Whether output i may be produced in a oneDNN layout (all readers accept it).
  bool output_may_block(size_t i) const;
  // Storage for output i held in layout `md` (logical shape `shape`).
  float* output_blocked(size_t i, const Shape& shape, const dnnl::memory::desc& md);
  void set_output_blocked(size_t i, const Shape& shape, const dnnl::memory::desc& md, Tensor&& raw);

  Mode mode() const;
  bool training() const { return mode() == Mode::Training; }
  bool frozen_batch_norm() const;
  DnnlContext& dnnl() const;
  const model::Node& node() const;

 private:
  Runtime& rt_;
  const Step& step_;
};

// What a kernel sees while back-propagating (after a training-mode forward).
class BackwardEnv {
 public:
  BackwardEnv(Runtime& rt, const Step& step) : rt_(rt), step_(step) {}

  size_t num_inputs() const;
  bool has_input(size_t i) const;
  const Tensor& input(size_t i) const;  // forward value
  uint64_t input_version(size_t i) const;
  const Tensor& output(size_t i) const;  // forward value
  // Gradient of the loss w.r.t. output i, or nullptr when none flows into it.
  const Tensor* grad_output(size_t i) const;
  // Whether the gradient w.r.t. input i is needed.
  bool wants_grad(size_t i) const;
  // Buffer (unspecified contents, shaped like input i) to write the gradient of input i into;
  // the executor adds it to the value's gradient after the kernel returns.
  Tensor& grad_input(size_t i);
  DnnlContext& dnnl() const;
  const model::Node& node() const;

 private:
  Runtime& rt_;
  const Step& step_;
};

class Kernel {
 public:
  explicit Kernel(const model::LoweredOp& op) : desc_(op.describe()) {}
  virtual ~Kernel() = default;
  virtual void forward(ForwardEnv& env) = 0;
  virtual void backward(BackwardEnv& env) {
    throw Unsupported(desc_ + ": backward is not supported");
  }
  // Input indices that are trainable parameters by default when they are float initializers.
  virtual std::vector<size_t> parameter_inputs() const { return {}; }
  // Whether input i may arrive in a oneDNN layout (ForwardEnv::input_blocked).
  virtual bool accepts_blocked(size_t input) const { return false; }
  // Whether output 0 has the layout of the inputs (elementwise ops), so it may only be blocked
  // when its own readers accept that.
  virtual bool keeps_layout() const { return false; }
  // False for ops whose outputs carry no gradient (Shape, ConstantOfShape, ...).
  virtual bool differentiable() const { return true; }
  const std::string& describe() const { return desc_; }

 protected:
  [[noreturn]] void fail(const std::string& what) const {
    throw MalformedInput(desc_ + ": " + what);
  }
  [[noreturn]] void unsupported(const std::string& what) const {
    throw Unsupported(desc_ + ": " + what);
  }

 private:
  std::string desc_;
};

// Conv -> BatchNormalization -> Relu folding for inference (any of BN / Relu may be absent).
struct ConvFusion {
  bool bn = false;
  float bn_epsilon = 1e-5f;
  bool relu = false;
};

// Builds the kernel for a lowered op; throws Unsupported naming the op and the node for an op
// the float engine lacks.
std::unique_ptr<Kernel> make_kernel(const model::LoweredOp& op);
// Conv kernel with BN/Relu folded in; the BN inputs (scale, bias, mean, var) follow the Conv
// inputs at indices 3..6 of its step.
std::unique_ptr<Kernel> make_fused_conv(const model::LoweredOp& conv, const ConvFusion& fusion);

// Kernel factories, one per source file.
std::unique_ptr<Kernel> make_conv(const model::LoweredOp& op, const ConvFusion* fusion);
std::unique_ptr<Kernel> make_gemm(const model::LoweredOp& op);
std::unique_ptr<Kernel> make_matmul(const model::LoweredOp& op);
std::unique_ptr<Kernel> make_pool(const model::LoweredOp& op);
std::unique_ptr<Kernel> make_batch_norm(const model::LoweredOp& op);
std::unique_ptr<Kernel> make_eltwise(const model::LoweredOp& op);
std::unique_ptr<Kernel> make_block_relu(const model::LoweredOp& op);
std::unique_ptr<Kernel> make_binary(const model::LoweredOp& op);
std::unique_ptr<Kernel> make_softmax(const model::LoweredOp& op);
// Data movement and shape ops (Identity, Dropout, Flatten, Reshape, Squeeze, Unsqueeze, Concat,
// Pad, Gather, Shape, Cast, ConstantOfShape, Constant); nullptr for any other op.
std::unique_ptr<Kernel> make_tensor_op(const model::LoweredOp& op);

// Small helpers shared by the kernels.

// Copies a 1-D or 2-D window resolved by model::spatial_geometry into a kernel's H/W geometry
// (H is the trivial dimension of a 1-D window); G has sh, sw, dh, dw, pt, pl, pb, pr, oh, ow.
template <typename G>
void set_window(G& g, const model::SpatialGeometry& sg, bool one_d) {
  const size_t x = one_d ? 0 : 1;  // index of the W dimension
  g.sh = one_d ? 1 : sg.strides[0];
  g.sw = sg.strides[x];
  g.dh = one_d ? 1 : sg.dilations[0];
  g.dw = sg.dilations[x];
  g.pt = one_d ? 0 : sg.pads_begin[0];
  g.pb = one_d ? 0 : sg.pads_end[0];
  g.pl = sg.pads_begin[x];
  g.pr = sg.pads_end[x];
  g.oh = one_d ? 1 : sg.output[0];
  g.ow = sg.output[x];
}
inline dnnl::memory::dims to_dims(const Shape& s) { return dnnl::memory::dims(s.begin(), s.end()); }
dnnl::memory::format_tag plain_tag(size_t rank);
// Pooled scratch of at least n floats, owned by the kernel.
struct Scratch {
  std::vector<float> buf;
  float* get(size_t n) {
    if (buf.size() < n) buf.resize(n);
    return buf.data();
  }
};

// max |p[i]|, or +inf when any p[i] is NaN or infinite: one vectorised pass that tells the
// kernels whose oneDNN primitive drops NaN (max pooling, the fused Relu post-op, which compute
// max(x, 0) with maxps) when to take their NaN-propagating path.
float finite_max_abs(const float* p, int64_t n);
// The same bound for input i: its producer's (ForwardEnv::input_bound) or a scan of `data`
// (n floats, the input's plain or blocked storage).
float input_max_abs(const ForwardEnv& env, size_t i, const float* data, int64_t n);
// y[i] += x[i]
void add_into(float* y, const float* x, int64_t n);
// Sums in 16 independent lanes so that the compiler vectorises them (a single float
// accumulator pins the addition order and keeps the loop scalar).
float lane_sum(const float* p, int64_t n);
float lane_sum_sq_centered(const float* p, int64_t n, float mean);
float lane_dot_centered(const float* g, const float* x, int64_t n, float mean);
// Sums g (shaped `full`) over the dimensions that `target` broadcasts along, times scale.
void reduce_to(const float* g, const Shape& full, const Shape& target, float scale, float* out);
// Normalises an axis for a tensor of rank r (valid range [-r, r) or [-r, r] with inclusive).
int64_t normalize_axis(int64_t axis, int64_t rank, const std::string& who, bool inclusive = false);

}  // namespace veil::nn::detail

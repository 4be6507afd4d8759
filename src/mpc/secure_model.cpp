#include "veil/mpc/secure_model.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "veil/core/error.hpp"
#include "veil/model/memory_plan.hpp"
#include "veil/model/shape_inference.hpp"
#include "veil/mpc/protocols/beaver.hpp"
#include "veil/mpc/protocols/pooling.hpp"
#include "veil/mpc/protocols/share.hpp"

namespace veil::mpc {

// Encoded initializers by (name, frac_bits, transposed). Each entry keeps the floats it was
// encoded from and is used only while the initializer still holds exactly those (compared on
// every use, far cheaper than encoding): the graph is held by reference and may change.
class EncodedWeights {
 public:
  std::shared_ptr<const RingTensor> get(const std::string& name, const Tensor& t, int frac_bits,
                                        bool transposed) {
    std::vector<float> floats = t.to_floats();
    const std::lock_guard lock(mutex_);
    Entry& e = entries_[{name, frac_bits, transposed}];
    if (!e.encoded || e.source != floats) {
      RingTensor r = encode_tensor(t, frac_bits);
      if (transposed) r = transpose_2d(r);
      e.encoded = std::make_shared<const RingTensor>(std::move(r));
      e.source = std::move(floats);
    }
    return e.encoded;
  }

 private:
  static RingTensor transpose_2d(const RingTensor& w) {
    const int64_t rows = w.shape.at(0), cols = w.shape.at(1);
    RingTensor t = RingTensor::zeros({cols, rows});
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) t.data[j * rows + i] = w.data[i * cols + j];
    return t;
  }

  struct Entry {
    std::vector<float> source;
    std::shared_ptr<const RingTensor> encoded;
  };
  std::mutex mutex_;
  std::map<std::tuple<std::string, int, bool>, Entry> entries_;
};

namespace {

void append(std::string& s, const std::string& v) { s += v + '\x1f'; }

template <typename T>
std::string join(const std::vector<T>& v) {
  std::string s;
  for (const auto& x : v) s += std::to_string(x) + ",";
  return s;
}

// One type letter, then the value. Built by appending: GCC 12 warns (-Wrestrict, a false
// positive) about `"i" + std::to_string(v)`.
std::string tagged(char type, const std::string& body) {
  std::string r(1, type);
  r += body;
  return r;
}

std::string attribute_text(const model::Attribute& a) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          return tagged('i', std::to_string(v));
        } else if constexpr (std::is_same_v<T, float>) {
          return tagged('f', std::to_string(v));
        } else if constexpr (std::is_same_v<T, std::string>) {
          return tagged('s', v);
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          return tagged('I', join(v));
        } else if constexpr (std::is_same_v<T, std::vector<float>>) {
          return tagged('F', join(v));
        } else {
          return tagged('T', shape_to_string(v.shape()));
        }
      },
      a);
}

using model::OpKind;

// The ops three-party inference runs (BatchNormalization must be folded into the convolutions).
bool supported(OpKind kind) {
  switch (kind) {
    case OpKind::Conv:
    case OpKind::Gemm:
    case OpKind::MatMul:
    case OpKind::Relu:
    case OpKind::BlockRelu:
    case OpKind::LeakyRelu:
    case OpKind::PRelu:
    case OpKind::Clip:
    case OpKind::MaxPool:
    case OpKind::AveragePool:
    case OpKind::GlobalAveragePool:
    case OpKind::Add:
    case OpKind::Concat:
    case OpKind::Flatten:
    case OpKind::Reshape:
    case OpKind::Identity:
    case OpKind::Dropout:
      return true;
    default:
      return false;
  }
}

// Refuses, naming op and node, what the protocols cannot run whatever the input.
void check_op(const model::LoweredOp& op, const model::Graph& graph,
              const model::LoweredGraph& lowered) {
  auto constant = [&](size_t i, const char* what) {
    if (op.has_input(i) && !graph.is_initializer(op.inputs[i]))
      throw Unsupported(op.describe() + ": " + what + " must be initializers");
  };
  switch (op.kind) {
    case OpKind::Conv:
      constant(1, "weights");
      constant(2, "weights");
      break;
    case OpKind::Gemm: {
      const auto& p = op.as<model::GemmParams>();
      if (p.alpha != 1 || p.beta != 1 || p.trans_a)
        throw Unsupported(op.describe() + ": only alpha = beta = 1, transA = 0");
      constant(1, "weights");
      constant(2, "weights");
      break;
    }
    case OpKind::MatMul:
      constant(1, "weights");
      break;
    case OpKind::MaxPool:
    case OpKind::AveragePool: {
      const auto& sp = op.as<model::PoolParams>().spatial;
      if (sp.kernel_shape.size() != 2)
        throw Unsupported(op.describe() + ": only 2-D pooling is supported");
      for (int64_t d : sp.dilations)
        if (d != 1) throw Unsupported(op.describe() + ": pool dilation");
      break;
    }
    case OpKind::PRelu: {
      constant(1, "slopes");
      // The slope's layout, where the input's shape is known already (else at the first run).
      const Shape& x = lowered.values.at(static_cast<size_t>(op.input_ids.at(0))).shape;
      if (x.size() >= 2 && x[1] > 0) {
        try {
          prelu_channel_slopes(x, graph.initializers.at(op.inputs.at(1)));
        } catch (const Unsupported& e) {
          throw Unsupported(op.describe() + ": " + e.what());
        }
      }
      break;
    }
    case OpKind::Clip: {
      constant(1, "bounds");
      constant(2, "bounds");
      // Values: meaningful at the server only (zeros elsewhere, which pass).
      const auto& attrs = op.as<model::ClipParams>();
      float lo = attrs.min, hi = attrs.max;
      for (size_t i : {size_t{1}, size_t{2}}) {
        if (!op.has_input(i)) continue;
        const Tensor& t = graph.initializers.at(op.inputs[i]);
        if (t.numel() != 1) throw Unsupported(op.describe() + ": min and max must be scalars");
        (i == 1 ? lo : hi) = t.to_floats()[0];  // finite: the IR refuses others
      }
      if (lo > hi) throw Unsupported(op.describe() + ": min > max");
      break;
    }
    case OpKind::Reshape:
      if (!graph.is_initializer(op.inputs.at(1)))
        throw Unsupported(op.describe() + ": the target shape must be a constant");
      break;
    default:
      break;
  }
}

// The protocol kernels size their outputs from the explicit pads; model::spatial_geometry is the
// authority on what the op means, so the two must agree.
void same_output(const model::LoweredOp& op, const model::SpatialGeometry& sg, int64_t h,
                 int64_t w) {
  if (sg.output.size() != 2 || sg.output[0] != h || sg.output[1] != w)
    throw Unsupported(op.describe() + ": window geometry the protocols cannot express");
}

Pool2dGeometry pool_geometry(const model::LoweredOp& op, const Shape& x) {
  const auto& p = op.as<model::PoolParams>();
  const auto sg = model::spatial_geometry(p.spatial, x, p.spatial.kernel_shape, op.describe());
  Pool2dGeometry g;
  g.kernel_h = sg.kernel[0], g.kernel_w = sg.kernel[1];
  g.stride_h = sg.strides[0], g.stride_w = sg.strides[1];
  g.pad_top = sg.pads_begin[0], g.pad_left = sg.pads_begin[1];
  g.pad_bottom = sg.pads_end[0], g.pad_right = sg.pads_end[1];
  g.ceil_mode = p.spatial.ceil_mode;
  g.count_include_pad = p.count_include_pad;
  same_output(op, sg, g.out_h(x[2]), g.out_w(x[3]));
  return g;
}

Conv2dGeometry conv_geometry(const model::LoweredOp& op, const Shape& x, const Shape& w) {
  const auto& p = op.as<model::ConvParams>();
  const auto sg = model::spatial_geometry(p.spatial, x, {w[2], w[3]}, op.describe());
  Conv2dGeometry g;
  g.batch = x[0], g.in_channels = x[1], g.in_h = x[2], g.in_w = x[3];
  g.out_channels = w[0], g.kernel_h = w[2], g.kernel_w = w[3];
  g.stride_h = sg.strides[0], g.stride_w = sg.strides[1];
  g.dilation_h = sg.dilations[0], g.dilation_w = sg.dilations[1];
  g.pad_top = sg.pads_begin[0], g.pad_left = sg.pads_begin[1];
  g.pad_bottom = sg.pads_end[0], g.pad_right = sg.pads_end[1];
  g.groups = p.group;
  same_output(op, sg, g.out_h(), g.out_w());
  return g;
}

}  // namespace

std::array<uint8_t, 32> structure_hash(const model::Graph& g) {
  std::string s = "veil/mpc/structure/v1";
  for (const auto& in : g.inputs) append(s, "in:" + in.name + shape_to_string(in.shape));
  for (const auto& out : g.outputs) append(s, "out:" + out.name);
  for (const auto& [name, t] : g.initializers) {
    // Integer constants (Reshape targets) are structure; float values are weights.
    std::string ints = t.dtype() == DType::Int64 ? join(t.to_int64s()) : std::string();
    append(s, "init:" + name + shape_to_string(t.shape()) + to_string(t.dtype()) + ints);
  }
  for (const auto& n : g.nodes) {
    append(s, "node:" + n.name + ":" + n.op_type);
    for (const auto& i : n.inputs) append(s, "i:" + i);
    for (const auto& o : n.outputs) append(s, "o:" + o);
    for (const auto& [k, v] : n.attributes) append(s, "a:" + k + "=" + attribute_text(v));
  }
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  if (EVP_Digest(s.data(), s.size(), out.data(), &len, EVP_sha256(), nullptr) != 1)
    throw Error("OpenSSL: SHA-256 failed");
  return out;
}

SecureModel::SecureModel(const model::Graph& graph, SecureModelOptions options)
    : graph_(graph), options_(std::move(options)), encoded_(std::make_shared<EncodedWeights>()) {
  if (graph_.inputs.empty() || graph_.outputs.empty())
    throw MalformedInput("secure model: the graph needs an input and an output");
  // Kinds first, so that an op the protocols lack is named even where its attributes or inputs
  // would not pass validation.
  for (const auto& n : graph_.nodes) {
    const OpKind kind = model::node_kind(n);
    if (!supported(kind))
      throw Unsupported(
          n.describe() + ": not supported by three-party inference" +
          (kind == OpKind::BatchNormalization ? " (fold it into the conv first)" : ""));
  }
  lowered_ = model::lower(graph_, kSecureOpset);
  for (const auto& op : lowered_.ops) check_op(op, graph_, lowered_);
  last_reader_ = model::last_readers(lowered_);
}

namespace {

// One run of the plan at one party: the shares of every activation by value id, and the
// per-op cost trace.
class Evaluation {
 public:
  Evaluation(Party& p, const model::Graph& graph, const model::LoweredGraph& lowered,
             const std::vector<size_t>& last_reader, const SecureModelOptions& options,
             EncodedWeights& encoded, std::vector<LayerCost>* trace)
      : p_(p),
        graph_(graph),
        last_reader_(last_reader),
        encoded_(encoded),
        options_(options),
        trace_(trace),
        f_(p.frac_bits()),
        server_(p.is(Role::Server)),
        values_(lowered.values.size()),
        present_(lowered.values.size(), false) {
    mark();
  }

  void set(int id, RingTensor v) {
    values_[static_cast<size_t>(id)] = std::move(v);
    present_[static_cast<size_t>(id)] = true;
  }
  // nullptr when the value was never computed.
  const RingTensor* find(int id) const {
    return id >= 0 && present_[static_cast<size_t>(id)] ? &values_[static_cast<size_t>(id)]
                                                        : nullptr;
  }

  // Runs the op at position `index` of the plan, then frees the values it read last: keeping
  // every activation until the batch ends made a ResNet-20 batch of 4096 hold 11 GiB per party.
  RingTensor run_op(const model::LoweredOp& op, size_t index) {
    index_ = index;
    RingTensor y = run_op(op);
    for (int id : op.input_ids)
      if (id >= 0 && last_reader_[static_cast<size_t>(id)] == index) {
        values_[static_cast<size_t>(id)] = RingTensor{};
        present_[static_cast<size_t>(id)] = false;
      }
    return y;
  }

  // Accounting: every op's cost is the change of this party's counters while it ran.
  void record(const std::string& node, const std::string& op) {
    if (!trace_) return;
    ChannelStats s = p_.stats();
    Clock::time_point now = Clock::now();
    trace_->push_back({node, op, s.bytes_sent - mark_stats_.bytes_sent,
                       s.messages_sent - mark_stats_.messages_sent, p_.clock() - mark_clock_,
                       std::chrono::duration<double>(now - mark_time_).count(),
                       p_.drelus() - mark_drelus_});
    mark();
  }

 private:
  using Clock = std::chrono::steady_clock;

  void mark() {
    mark_stats_ = p_.stats();
    mark_clock_ = p_.clock();
    mark_time_ = Clock::now();
    mark_drelus_ = p_.drelus();
  }

  const RingTensor& get(const model::LoweredOp& op, size_t i) const {
    if (!op.has_input(i)) throw MalformedInput(op.describe() + ": missing input");
    const int id = op.input_ids[i];
    if (!present_[static_cast<size_t>(id)])
      throw Unsupported(op.describe() + ": input '" + op.inputs[i] + "' is not an activation");
    return values_[static_cast<size_t>(id)];
  }
  // Input i, moved out when this op is its last reader and reads it once (Reshape, Identity:
  // a relabelled value need not be copied).
  RingTensor take(const model::LoweredOp& op, size_t i) {
    const RingTensor& x = get(op, i);
    const int id = op.input_ids[i];
    if (last_reader_[static_cast<size_t>(id)] != index_ ||
        std::count(op.input_ids.begin(), op.input_ids.end(), id) != 1)
      return x;
    return std::move(values_[static_cast<size_t>(id)]);
  }

  // The server's fixed-point weights, 2-D ones transposed when asked (shapes alone at the
  // other parties).
  std::shared_ptr<const RingTensor> weight(const model::LoweredOp& op, size_t i,
                                           bool transposed = false) const {
    const std::string& name = op.inputs.at(i);
    const Tensor& t = graph_.initializers.at(name);
    if (transposed && t.shape().size() != 2)
      throw MalformedInput(op.describe() + ": weight must be 2-D");
    if (server_) return encoded_.get(name, t, f_, transposed);
    Shape s = t.shape();
    if (transposed) std::swap(s[0], s[1]);
    return std::make_shared<const RingTensor>(RingTensor::shape_only(s));
  }

  RingTensor conv(const model::LoweredOp& op);
  RingTensor clip(const model::LoweredOp& op);
  RingTensor prelu(const model::LoweredOp& op);
  RingTensor concat(const model::LoweredOp& op);
  RingTensor dense(const model::LoweredOp& op);
  RingTensor reshape(const model::LoweredOp& op);
  RingTensor block_relu(const model::LoweredOp& op);
  RingTensor run_op(const model::LoweredOp& op);

  Party& p_;
  const model::Graph& graph_;
  const std::vector<size_t>& last_reader_;
  size_t index_ = 0;  // of the op running
  EncodedWeights& encoded_;
  const SecureModelOptions& options_;
  std::vector<LayerCost>* trace_;
  const int f_;
  const bool server_;
  std::vector<RingTensor> values_;
  std::vector<bool> present_;
  ChannelStats mark_stats_;
  uint32_t mark_clock_ = 0;
  Clock::time_point mark_time_;
  uint64_t mark_drelus_ = 0;
};

RingTensor Evaluation::conv(const model::LoweredOp& op) {
  const RingTensor& x = get(op, 0);
  if (x.shape.size() != 4) throw Unsupported(op.describe() + ": only 2-D convolution");
  const auto w = weight(op, 1);
  if (w->shape.size() != 4) throw MalformedInput(op.describe() + ": weight must be OIHW");
  const Conv2dGeometry g = conv_geometry(op, x.shape, w->shape);
  RingTensor y = truncate(p_, conv2d_server_weights(p_, x, *w, g, options_.threads), f_);
  if (op.has_input(2)) y = add_server_channel_bias(p_, y, *weight(op, 2));
  return y;
}

// Gemm (alpha = beta = 1, transA = 0, checked at construction) and MatMul with 2-D weights.
RingTensor Evaluation::dense(const model::LoweredOp& op) {
  const RingTensor& x = get(op, 0);
  if (x.shape.size() != 2) throw Unsupported(op.describe() + ": input must be 2-D");
  const bool gemm = op.kind == OpKind::Gemm;
  const bool trans_b = gemm && op.as<model::GemmParams>().trans_b;
  const auto w = weight(op, 1, trans_b);
  if (w->shape.size() != 2) throw MalformedInput(op.describe() + ": weight must be 2-D");
  RingTensor y = truncate(p_, matmul_server_weights(p_, x, *w, options_.threads), f_);
  if (gemm && op.has_input(2)) {
    const auto b = weight(op, 2);
    if (b->numel() != y.shape[1])
      throw Unsupported(op.describe() + ": bias must have one value per output");
    y = add_server_channel_bias(p_, y, *b);
  }
  return y;
}

// The bounds from the attributes (before opset 11; infinite = absent) or from scalar
// initializers (checked at construction), whose values only the server holds.
RingTensor Evaluation::clip(const model::LoweredOp& op) {
  const auto& attrs = op.as<model::ClipParams>();
  ClipBounds b;
  auto bound = [&](size_t i, float attr, bool& has, uint64_t& value) {
    const bool input = op.has_input(i);
    has = input || std::isfinite(attr);
    if (has && server_)
      value = encode_fixed(input ? graph_.initializers.at(op.inputs[i]).to_floats()[0] : attr, f_);
  };
  bound(1, attrs.min, b.has_lo, b.lo);
  bound(2, attrs.max, b.has_hi, b.hi);
  return mpc::clip(p_, get(op, 0), b);
}

// The slope is a weight: the server encodes one value per channel, the others pass its shape.
RingTensor Evaluation::prelu(const model::LoweredOp& op) {
  const RingTensor& x = get(op, 0);
  const std::vector<float> slopes =
      prelu_channel_slopes(x.shape, graph_.initializers.at(op.inputs.at(1)));
  const Shape s{static_cast<int64_t>(slopes.size())};
  RingTensor w =
      server_ ? encode_tensor(Tensor::from_floats(s, slopes), f_) : RingTensor::shape_only(s);
  return mpc::prelu(p_, x, w, options_.threads);
}

RingTensor Evaluation::concat(const model::LoweredOp& op) {
  std::vector<const RingTensor*> parts;
  for (size_t i = 0; i < op.inputs.size(); ++i) parts.push_back(&get(op, i));
  return mpc::concat(parts, op.as<model::ConcatParams>().axis);
}

// Flatten and Reshape only relabel the shape of the shares.
RingTensor Evaluation::reshape(const model::LoweredOp& op) {
  RingTensor y = take(op, 0);
  Shape s;
  if (op.kind == OpKind::Flatten) {
    int64_t axis = op.as<model::FlattenParams>().axis;
    if (axis < 0) axis += static_cast<int64_t>(y.shape.size());
    if (axis < 0 || axis > static_cast<int64_t>(y.shape.size()))
      throw MalformedInput(op.describe() + ": bad axis");
    int64_t a = 1, b = 1;
    for (int64_t i = 0; i < static_cast<int64_t>(y.shape.size()); ++i)
      (i < axis ? a : b) *= y.shape[i];
    s = {a, b};
  } else {
    const Tensor& target = graph_.initializers.at(op.inputs.at(1));
    s = model::reshape_output(y.shape, target.to_int64s(), op.as<model::ReshapeParams>().allowzero,
                              op.describe());
  }
  for (int64_t d : s)
    if (d < 0) throw MalformedInput(op.describe() + ": bad target shape");
  if (shape_numel(s) != y.numel()) throw MalformedInput(op.describe() + ": bad target shape");
  y.shape = s;
  return y;
}

RingTensor Evaluation::block_relu(const model::LoweredOp& op) {
  const RingTensor& x = get(op, 0);
  const auto& blocks = op.as<model::BlockReluParams>().blocks;
  if (x.shape.size() != 4 || x.shape[1] != static_cast<int64_t>(blocks.size()))
    throw MalformedInput(op.describe() + ": input of shape " + shape_to_string(x.shape) +
                         " does not match its " + std::to_string(blocks.size()) +
                         " per-channel blocks");
  return mpc::block_relu(p_, x, blocks);
}

RingTensor Evaluation::run_op(const model::LoweredOp& op) {
  switch (op.kind) {
    case OpKind::Conv:
      return conv(op);
    case OpKind::Gemm:
    case OpKind::MatMul:
      return dense(op);
    case OpKind::Relu:
      return relu(p_, get(op, 0));
    case OpKind::BlockRelu:
      return block_relu(op);
    case OpKind::LeakyRelu:
      return leaky_relu(p_, get(op, 0), op.as<model::LeakyReluParams>().alpha);
    case OpKind::PRelu:
      return prelu(op);
    case OpKind::Clip:
      return clip(op);
    case OpKind::MaxPool:
      return maxpool2d(p_, get(op, 0), pool_geometry(op, get(op, 0).shape));
    case OpKind::AveragePool:
      return avgpool2d(p_, get(op, 0), pool_geometry(op, get(op, 0).shape));
    case OpKind::GlobalAveragePool:
      return global_avgpool(p_, get(op, 0));
    case OpKind::Add:
      return add(get(op, 0), get(op, 1));
    case OpKind::Concat:
      return concat(op);
    case OpKind::Flatten:
    case OpKind::Reshape:
      return reshape(op);
    case OpKind::Identity:
    case OpKind::Dropout:  // inference
      return take(op, 0);
    default:
      throw Unsupported(op.describe() + ": not supported by three-party inference");
  }
}

}  // namespace

Tensor SecureModel::run(Party& p, const Tensor& input, std::vector<LayerCost>* trace) const {
  const int f = p.frac_bits();
  Evaluation ev(p, graph_, lowered_, last_reader_, options_, *encoded_, trace);
  {
    RingTensor x =
        p.is(Role::Client) ? encode_tensor(input, f) : RingTensor::shape_only(input.shape());
    ev.set(lowered_.inputs[0], share_client_input(p, x));
  }
  ev.record("(input)", "Share");
  for (size_t i = 0; i < lowered_.ops.size(); ++i) {
    const model::LoweredOp& op = lowered_.ops[i];
    RingTensor y = ev.run_op(op, i);
    ev.set(op.output_ids.at(0), std::move(y));
    ev.record(op.name, model::op_name(op.kind));
  }
  if (lowered_.outputs.empty()) throw MalformedInput("secure model: the graph has no output");
  const RingTensor* y = ev.find(lowered_.outputs[0]);
  if (!y) throw MalformedInput("secure model: the output is never computed");
  RingTensor out = reveal_to_client(p, *y);
  ev.record("(output)", "Reveal");
  if (!p.is(Role::Client)) return Tensor();
  return decode_tensor(out, f);
}

}  // namespace veil::mpc

#include "veil/mpc/secure_model.hpp"

#include <openssl/evp.h>

#include <chrono>
#include <set>
#include <string>

#include "veil/core/error.hpp"
#include "veil/mpc/protocols/beaver.hpp"
#include "veil/mpc/protocols/pooling.hpp"
#include "veil/mpc/protocols/share.hpp"

namespace veil::mpc {
namespace {

const std::set<std::string> kSupported = {
    "Conv", "Gemm",    "MatMul",  "Relu",     "MaxPool", "AveragePool", "GlobalAveragePool",
    "Add",  "Flatten", "Reshape", "Identity", "Dropout"};

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

Pool2dGeometry pool_geometry(const model::Node& n) {
  auto k = n.attr_ints("kernel_shape", {});
  if (k.size() != 2) throw Unsupported(n.describe() + ": only 2-D pooling is supported");
  auto s = n.attr_ints("strides", {1, 1});
  auto pads = n.attr_ints("pads", {0, 0, 0, 0});
  if (n.attr_string("auto_pad", "NOTSET") != "NOTSET")
    throw Unsupported(n.describe() + ": auto_pad is not supported");
  if (s.size() != 2 || pads.size() != 4) throw MalformedInput(n.describe() + ": bad strides/pads");
  if (n.has("dilations")) {
    auto d = n.attr_ints("dilations", {1, 1});
    if (d != std::vector<int64_t>{1, 1}) throw Unsupported(n.describe() + ": pool dilation");
  }
  Pool2dGeometry g;
  g.kernel_h = k[0], g.kernel_w = k[1], g.stride_h = s[0], g.stride_w = s[1];
  g.pad_top = pads[0], g.pad_left = pads[1], g.pad_bottom = pads[2], g.pad_right = pads[3];
  g.ceil_mode = n.attr_int("ceil_mode", 0) != 0;
  g.count_include_pad = n.attr_int("count_include_pad", 0) != 0;
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
    : graph_(graph), options_(std::move(options)) {
  if (graph_.inputs.empty() || graph_.outputs.empty())
    throw MalformedInput("secure model: the graph needs an input and an output");
  for (const auto& n : graph_.nodes)
    if (!kSupported.count(n.op_type))
      throw Unsupported(
          n.describe() + ": not supported by secure inference" +
          (n.op_type == "BatchNormalization" ? " (fold it into the conv first)" : ""));
}

Tensor SecureModel::run(Party& p, const Tensor& input, std::vector<LayerCost>* trace) const {
  const int f = p.frac_bits();
  const bool server = p.is(Role::Server);
  std::map<std::string, RingTensor> values;
  // Accounting: every node's cost is the change of this party's counters while it ran.
  using Clock = std::chrono::steady_clock;
  ChannelStats mark_stats = p.stats();
  uint32_t mark_clock = p.clock();
  Clock::time_point mark_time = Clock::now();
  auto record = [&](const std::string& node, const std::string& op) {
    if (!trace) return;
    ChannelStats s = p.stats();
    Clock::time_point now = Clock::now();
    trace->push_back({node, op, s.bytes_sent - mark_stats.bytes_sent,
                      s.messages_sent - mark_stats.messages_sent, p.clock() - mark_clock,
                      std::chrono::duration<double>(now - mark_time).count()});
    mark_stats = s;
    mark_clock = p.clock();
    mark_time = now;
  };
  {
    RingTensor x =
        p.is(Role::Client) ? encode_tensor(input, f) : RingTensor::shape_only(input.shape());
    values[graph_.inputs[0].name] = share_client_input(p, x);
  }
  record("(input)", "Share");
  auto get = [&](const model::Node& n, size_t i) -> const RingTensor& {
    if (i >= n.inputs.size()) throw MalformedInput(n.describe() + ": missing input");
    auto it = values.find(n.inputs[i]);
    if (it == values.end())
      throw Unsupported(n.describe() + ": input '" + n.inputs[i] + "' is not an activation");
    return it->second;
  };
  auto weight = [&](const model::Node& n, size_t i, int bits, Shape shape) {
    auto it = graph_.initializers.find(n.inputs.at(i));
    if (it == graph_.initializers.end())
      throw Unsupported(n.describe() + ": weights must be initializers");
    if (shape.empty()) shape = it->second.shape();
    if (shape_numel(shape) != it->second.numel())
      throw MalformedInput(n.describe() + ": weight shape mismatch");
    if (!server) return RingTensor::shape_only(shape);
    RingTensor w = encode_tensor(it->second, bits);
    w.shape = shape;
    return w;
  };
  auto has_input = [](const model::Node& n, size_t i) {
    return n.inputs.size() > i && !n.inputs[i].empty();
  };

  for (const auto& n : graph_.nodes) {
    RingTensor y;
    const std::string& op = n.op_type;
    if (op == "Conv") {
      const RingTensor& x = get(n, 0);
      if (x.shape.size() != 4) throw Unsupported(n.describe() + ": only 2-D convolution");
      RingTensor w = weight(n, 1, f, {});
      if (w.shape.size() != 4) throw MalformedInput(n.describe() + ": weight must be OIHW");
      if (n.attr_string("auto_pad", "NOTSET") != "NOTSET")
        throw Unsupported(n.describe() + ": auto_pad is not supported");
      auto s = n.attr_ints("strides", {1, 1}), d = n.attr_ints("dilations", {1, 1}),
           pads = n.attr_ints("pads", {0, 0, 0, 0});
      if (s.size() != 2 || d.size() != 2 || pads.size() != 4)
        throw MalformedInput(n.describe() + ": bad strides/dilations/pads");
      Conv2dGeometry g;
      g.batch = x.shape[0], g.in_channels = x.shape[1], g.in_h = x.shape[2], g.in_w = x.shape[3];
      g.out_channels = w.shape[0], g.kernel_h = w.shape[2], g.kernel_w = w.shape[3];
      g.stride_h = s[0], g.stride_w = s[1], g.dilation_h = d[0], g.dilation_w = d[1];
      g.pad_top = pads[0], g.pad_left = pads[1], g.pad_bottom = pads[2], g.pad_right = pads[3];
      g.groups = n.attr_int("group", 1);
      y = truncate(p, conv2d_server_weights(p, x, w, g, options_.threads), f);
      if (has_input(n, 2)) y = add_server_channel_bias(p, y, weight(n, 2, f, {}));
    } else if (op == "Gemm" || op == "MatMul") {
      const RingTensor& x = get(n, 0);
      if (x.shape.size() != 2) throw Unsupported(n.describe() + ": input must be 2-D");
      if (op == "Gemm" && (n.attr_float("alpha", 1) != 1 || n.attr_float("beta", 1) != 1 ||
                           n.attr_int("transA", 0) != 0))
        throw Unsupported(n.describe() + ": only alpha = beta = 1, transA = 0");
      const bool trans_b = op == "Gemm" && n.attr_int("transB", 0) != 0;
      RingTensor w = weight(n, 1, f, {});
      if (w.shape.size() != 2) throw MalformedInput(n.describe() + ": weight must be 2-D");
      if (trans_b) {
        Shape t{w.shape[1], w.shape[0]};
        RingTensor wt = server ? RingTensor::zeros(t) : RingTensor::shape_only(t);
        if (server)
          for (int64_t i = 0; i < w.shape[0]; ++i)
            for (int64_t j = 0; j < w.shape[1]; ++j)
              wt.data[j * w.shape[0] + i] = w.data[i * w.shape[1] + j];
        w = std::move(wt);
      }
      y = truncate(p, matmul_server_weights(p, x, w, options_.threads), f);
      if (op == "Gemm" && has_input(n, 2)) {
        RingTensor b = weight(n, 2, f, {});
        if (b.numel() != y.shape[1])
          throw Unsupported(n.describe() + ": bias must have one value per output");
        y = add_server_channel_bias(p, y, b);
      }
    } else if (op == "Relu") {
      auto it = options_.block_relu.find(n.name);
      y = it == options_.block_relu.end() ? relu(p, get(n, 0))
                                          : block_relu(p, get(n, 0), it->second);
    } else if (op == "MaxPool") {
      y = maxpool2d(p, get(n, 0), pool_geometry(n));
    } else if (op == "AveragePool") {
      y = avgpool2d(p, get(n, 0), pool_geometry(n));
    } else if (op == "GlobalAveragePool") {
      y = global_avgpool(p, get(n, 0));
    } else if (op == "Add") {
      y = add(get(n, 0), get(n, 1));
    } else if (op == "Flatten" || op == "Reshape") {
      y = get(n, 0);
      Shape s;
      if (op == "Flatten") {
        int64_t axis = n.attr_int("axis", 1);
        if (axis < 0) axis += static_cast<int64_t>(y.shape.size());
        if (axis < 0 || axis > static_cast<int64_t>(y.shape.size()))
          throw MalformedInput(n.describe() + ": bad axis");
        int64_t a = 1, b = 1;
        for (int64_t i = 0; i < static_cast<int64_t>(y.shape.size()); ++i)
          (i < axis ? a : b) *= y.shape[i];
        s = {a, b};
      } else {
        auto it = graph_.initializers.find(n.inputs.at(1));
        if (it == graph_.initializers.end())
          throw Unsupported(n.describe() + ": the target shape must be a constant");
        s = it->second.to_int64s();
        int64_t known = 1, infer = -1;
        for (size_t i = 0; i < s.size(); ++i) {
          if (s[i] == 0 && i < y.shape.size()) s[i] = y.shape[i];
          if (s[i] == -1) {
            if (infer >= 0) throw MalformedInput(n.describe() + ": two -1 dimensions");
            infer = static_cast<int64_t>(i);
          } else {
            known *= s[i];
          }
        }
        if (infer >= 0) s[infer] = known > 0 ? y.numel() / known : 0;
      }
      if (shape_numel(s) != y.numel()) throw MalformedInput(n.describe() + ": bad target shape");
      y.shape = s;
    } else {  // Identity, Dropout (inference)
      y = get(n, 0);
    }
    values[n.outputs.at(0)] = std::move(y);
    record(n.name, n.op_type);
  }
  auto it = values.find(graph_.outputs[0].name);
  if (it == values.end()) throw MalformedInput("secure model: the output is never computed");
  RingTensor out = reveal_to_client(p, it->second);
  record("(output)", "Reveal");
  if (!p.is(Role::Client)) return Tensor();
  return decode_tensor(out, f);
}

}  // namespace veil::mpc

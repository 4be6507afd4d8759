// ONNX -> veil IR. The file is untrusted: everything is bounded and checked before use, the
// result is built in a temporary Model and returned only once it validates.
#include <algorithm>
#include <optional>
#include <queue>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "onnx_proto.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"
#include "veil/model/fold_constants.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/op_support.hpp"
#include "veil/model/ops.hpp"
#include "veil/model/shape_inference.hpp"

namespace veil::model {

namespace {

using onnx_proto::kMaxDim;
using onnx_proto::tensor_from_proto;

// Bound on names and strings (node/value names, attribute strings, metadata) from the file.
constexpr size_t kMaxNameBytes = 4096;
constexpr size_t kMaxStringBytes = size_t{1} << 20;

void check_name(const std::string& name, const std::string& what) {
  if (name.size() > kMaxNameBytes)
    throw MalformedInput(what + " has a name longer than " + std::to_string(kMaxNameBytes) +
                         " bytes");
}

std::string attribute_type_name(int type) {
  if (onnx::AttributeProto_AttributeType_IsValid(type))
    return onnx::AttributeProto_AttributeType_Name(
        static_cast<onnx::AttributeProto_AttributeType>(type));
  return std::to_string(type);
}

Attribute convert_attribute(const onnx::AttributeProto& a, const Node& node) {
  const std::string what = node.describe() + ": attribute '" + a.name() + "'";
  int type = a.type();
  if (type == onnx::AttributeProto::UNDEFINED) {
    // IR version 1 files may omit the type; take it from the one field that is set.
    if (a.ints_size())
      type = onnx::AttributeProto::INTS;
    else if (a.floats_size())
      type = onnx::AttributeProto::FLOATS;
    else if (a.has_i())
      type = onnx::AttributeProto::INT;
    else if (a.has_f())
      type = onnx::AttributeProto::FLOAT;
    else if (a.has_s())
      type = onnx::AttributeProto::STRING;
    else if (a.has_t())
      type = onnx::AttributeProto::TENSOR;
    else
      throw MalformedInput(what + " has no type and no value");
  }
  switch (type) {
    case onnx::AttributeProto::INT:
      return a.i();
    case onnx::AttributeProto::FLOAT:
      return a.f();
    case onnx::AttributeProto::STRING:
      if (a.s().size() > kMaxStringBytes) throw MalformedInput(what + " is too long");
      return a.s();
    case onnx::AttributeProto::INTS:
      return std::vector<int64_t>(a.ints().begin(), a.ints().end());
    case onnx::AttributeProto::FLOATS:
      return std::vector<float>(a.floats().begin(), a.floats().end());
    case onnx::AttributeProto::TENSOR:
      return tensor_from_proto(a.t(), what);
    default:
      throw Unsupported(what + " has type " + attribute_type_name(type) +
                        ", which veil does not support");
  }
}

// Nodes carry no domain in veil's IR: an op's domain is fixed by its kind (op_domain), so the
// file must name exactly that one. Besides the default ONNX domain only veil's own ops (ai.veil)
// are read.
void check_domain(const std::string& file_domain, const Node& node) {
  const std::string domain = file_domain == "ai.onnx" ? std::string() : file_domain;
  if (!domain.empty() && domain != kVeilDomain)
    throw Unsupported(node.describe() + ": operator domain '" + file_domain +
                      "' is not supported by veil");
  const auto kind = op_kind(node.op_type);
  const std::string expected = kind ? op_domain(*kind) : std::string();
  if (domain == expected) return;
  if (!kind || expected.empty())
    throw Unsupported(node.describe() + ": operator is not supported by veil in domain '" + domain +
                      "'");
  throw Unsupported(node.describe() + ": operator belongs to domain '" + expected +
                    "', the file places it in the default ONNX domain");
}

Node convert_node(const onnx::NodeProto& p) {
  Node node;
  node.name = p.name();
  node.op_type = p.op_type();
  check_name(node.name, "a node");
  check_name(node.op_type, "an operator");
  if (node.op_type.empty()) throw MalformedInput(node.describe() + ": empty op_type");
  check_domain(p.domain(), node);
  for (const auto& i : p.input()) {
    check_name(i, node.describe() + " input");
    node.inputs.push_back(i);
  }
  for (const auto& o : p.output()) {
    check_name(o, node.describe() + " output");
    node.outputs.push_back(o);
  }
  for (const auto& a : p.attribute()) {
    if (a.name().empty()) throw MalformedInput(node.describe() + ": attribute without a name");
    check_name(a.name(), node.describe() + " attribute");
    if (!a.ref_attr_name().empty())
      throw Unsupported(node.describe() + ": attribute references are not supported");
    if (node.attributes.count(a.name()))
      throw MalformedInput(node.describe() + ": attribute '" + a.name() + "' appears twice");
    node.attributes.emplace(a.name(), convert_attribute(a, node));
  }
  return node;
}

// Converts a graph input/output/value_info entry. Returns false when the entry has no tensor
// type or no shape (`has_shape` tells the latter apart).
bool convert_value_info(const onnx::ValueInfoProto& p, const std::string& what, ValueInfo& out,
                        bool& has_shape, bool strict) {
  out.name = p.name();
  check_name(out.name, what);
  has_shape = false;
  if (!p.has_type() || !p.type().has_tensor_type()) {
    if (strict) throw Unsupported(what + " '" + p.name() + "' is not a tensor");
    return false;
  }
  const auto& tt = p.type().tensor_type();
  switch (tt.elem_type()) {
    case onnx::TensorProto::FLOAT:
      out.dtype = DType::Float32;
      break;
    case onnx::TensorProto::INT64:
      out.dtype = DType::Int64;
      break;
    default:
      if (strict)
        throw Unsupported(what + " '" + p.name() + "' has element type " +
                          onnx_proto::data_type_name(tt.elem_type()) +
                          ", which veil does not support (float or int64 only)");
      return false;
  }
  out.shape.clear();
  if (!tt.has_shape()) return true;
  if (tt.shape().dim_size() > 64)
    throw MalformedInput(what + " '" + p.name() + "' has more than 64 dimensions");
  for (const auto& d : tt.shape().dim()) {
    if (d.has_dim_value()) {
      if (d.dim_value() < 0 || d.dim_value() > kMaxDim)
        throw MalformedInput(what + " '" + p.name() + "' has invalid dimension " +
                             std::to_string(d.dim_value()));
      out.shape.push_back(d.dim_value());
    } else {
      out.shape.push_back(-1);  // dim_param or unset: known only at run time
    }
  }
  has_shape = true;
  return true;
}

// Stable topological sort (Kahn's algorithm, ties broken by file order): exporters are required
// to emit sorted graphs, but sorting costs little and lets cycles be reported precisely.
void topological_sort(Graph& g) {
  const size_t n = g.nodes.size();
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < n; ++i)
    for (const auto& o : g.nodes[i].outputs) {
      if (o.empty()) continue;
      if (!producer.emplace(o, i).second)
        throw MalformedInput(g.nodes[i].describe() + ": output '" + o + "' is defined twice");
    }
  std::vector<size_t> indegree(n, 0);
  std::vector<std::vector<size_t>> users(n);
  for (size_t i = 0; i < n; ++i) {
    std::set<size_t> deps;
    for (const auto& in : g.nodes[i].inputs) {
      if (in.empty() || g.is_initializer(in)) continue;
      auto it = producer.find(in);
      if (it != producer.end()) deps.insert(it->second);
    }
    indegree[i] = deps.size();
    for (size_t d : deps) users[d].push_back(i);
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t i = 0; i < n; ++i)
    if (indegree[i] == 0) ready.push(i);
  std::vector<size_t> order;
  while (!ready.empty()) {
    size_t i = ready.top();
    ready.pop();
    order.push_back(i);
    for (size_t u : users[i])
      if (--indegree[u] == 0) ready.push(u);
  }
  if (order.size() != n) {
    for (size_t i = 0; i < n; ++i)
      if (indegree[i] != 0)
        throw MalformedInput(g.nodes[i].describe() + ": the graph has a cycle through this node");
  }
  std::vector<Node> sorted;
  sorted.reserve(n);
  for (size_t i : order) sorted.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(sorted);
}

std::string unique_name(const std::string& base, std::unordered_set<std::string>& used) {
  std::string name = base;
  for (int i = 1; used.count(name); ++i) name = base + "_" + std::to_string(i);
  used.insert(name);
  return name;
}

// Old torchvision exports average over H and W with ReduceMean(axes=[2,3]); veil's engine has
// GlobalAveragePool for that, followed by Flatten when the reduced axes are dropped.
bool rewrite_reduce_mean(Model& m) {
  Graph& g = m.graph;
  std::unordered_set<std::string> used;
  for (const auto& in : g.inputs) used.insert(in.name);
  for (const auto& [name, t] : g.initializers) used.insert(name);
  for (const auto& n : g.nodes) {
    used.insert(n.name);
    for (const auto& o : n.outputs) used.insert(o);
  }
  auto rank_of = [&](const std::string& v) -> int64_t {
    if (auto it = g.value_info.find(v); it != g.value_info.end())
      return static_cast<int64_t>(it->second.shape.size());
    for (const auto& in : g.inputs)
      if (in.name == v) return static_cast<int64_t>(in.shape.size());
    return -1;
  };
  bool changed = false;
  std::vector<Node> nodes;
  for (auto& n : g.nodes) {
    if (n.op_type == "ReduceMean" && rank_of(n.inputs[0]) == 4) {
      auto axes = n.attr_ints("axes", {});
      for (auto& a : axes)
        if (a < 0) a += 4;
      std::sort(axes.begin(), axes.end());
      if (axes == std::vector<int64_t>{2, 3}) {
        bool keep = n.attr_int("keepdims", 1) != 0;
        Node gap;
        gap.name = n.name;
        gap.op_type = "GlobalAveragePool";
        gap.inputs = {n.inputs[0]};
        if (keep) {
          gap.outputs = {n.outputs[0]};
          nodes.push_back(std::move(gap));
        } else {
          std::string mid = unique_name(n.outputs[0] + "_pooled", used);
          gap.outputs = {mid};
          Node flat;
          flat.name = unique_name(n.name + "_flatten", used);
          flat.op_type = "Flatten";
          flat.inputs = {mid};
          flat.outputs = {n.outputs[0]};
          flat.attributes["axis"] = int64_t{1};
          nodes.push_back(std::move(gap));
          nodes.push_back(std::move(flat));
        }
        g.value_info.erase(n.outputs[0]);
        changed = true;
        continue;
      }
    }
    nodes.push_back(std::move(n));
  }
  g.nodes = std::move(nodes);
  return changed;
}

Model convert_model(const onnx::ModelProto& mp) {
  Model m;
  if (!mp.has_graph()) throw MalformedInput("the model has no graph");
  bool have_opset = false;
  std::optional<int64_t> veil_opset;
  for (const auto& op : mp.opset_import()) {
    if (op.domain() == kVeilDomain) {
      if (veil_opset)
        throw MalformedInput(std::string("domain '") + kVeilDomain + "' is imported twice");
      veil_opset = op.version();
      continue;
    }
    if (!op.domain().empty() && op.domain() != "ai.onnx") continue;  // unused domains are fine
    if (have_opset) throw MalformedInput("the default ONNX domain is imported twice");
    have_opset = true;
    m.opset = op.version();
  }
  if (!have_opset) throw MalformedInput("the model imports no opset of the default ONNX domain");
  if (m.opset < kMinOpset || m.opset > kMaxOpset)
    throw Unsupported("ONNX opset " + std::to_string(m.opset) +
                      " is not supported (veil reads opsets " + std::to_string(kMinOpset) + " to " +
                      std::to_string(kMaxOpset) +
                      "); convert the model with onnx.version_converter");
  m.ir_version = mp.ir_version();
  m.producer_name = mp.producer_name();
  m.producer_version = mp.producer_version();
  m.doc_string = mp.doc_string();
  for (const auto& kv : mp.metadata_props()) {
    if (kv.key().size() > kMaxNameBytes || kv.value().size() > kMaxStringBytes)
      throw MalformedInput("metadata entry '" + kv.key().substr(0, 64) + "' is too long");
    if (!m.metadata.emplace(kv.key(), kv.value()).second)
      throw MalformedInput("metadata key '" + kv.key() + "' appears twice");
  }

  const onnx::GraphProto& gp = mp.graph();
  Graph& g = m.graph;
  g.name = gp.name();
  check_name(g.name, "the graph");
  if (gp.sparse_initializer_size() > 0) throw Unsupported("sparse initializers are not supported");
  for (const auto& t : gp.initializer()) {
    if (t.name().empty()) throw MalformedInput("an initializer has no name");
    check_name(t.name(), "an initializer");
    const std::string what = "initializer '" + t.name() + "'";
    if (g.initializers.count(t.name())) throw MalformedInput(what + " is defined twice");
    g.initializers.emplace(t.name(), tensor_from_proto(t, what));
  }
  for (const auto& p : gp.node()) g.nodes.push_back(convert_node(p));
  const bool uses_veil_domain = std::any_of(g.nodes.begin(), g.nodes.end(), [](const Node& n) {
    const auto kind = op_kind(n.op_type);
    return kind && op_domain(*kind) == kVeilDomain;
  });
  if (uses_veil_domain && !veil_opset)
    throw MalformedInput(std::string("the model uses operators of domain '") + kVeilDomain +
                         "' but does not import it");
  if (uses_veil_domain && *veil_opset != kVeilDomainVersion)
    throw Unsupported(std::string("domain '") + kVeilDomain + "' version " +
                      std::to_string(*veil_opset) + " is not supported (veil reads version " +
                      std::to_string(kVeilDomainVersion) + ")");
  for (const auto& p : gp.input()) {
    if (g.is_initializer(p.name())) continue;  // an input with a default value: a constant
    ValueInfo vi;
    bool has_shape;
    convert_value_info(p, "graph input", vi, has_shape, true);
    if (!has_shape) throw Unsupported("graph input '" + vi.name + "' has no shape");
    g.inputs.push_back(std::move(vi));
  }
  for (const auto& p : gp.output()) {
    ValueInfo vi;
    bool has_shape;
    convert_value_info(p, "graph output", vi, has_shape, true);
    if (vi.name.empty()) throw MalformedInput("a graph output has no name");
    g.outputs.push_back(std::move(vi));
  }
  if (g.outputs.empty()) throw MalformedInput("the graph has no outputs");
  for (const auto& p : gp.value_info()) {
    ValueInfo vi;
    bool has_shape;
    if (convert_value_info(p, "value_info", vi, has_shape, false) && has_shape && !vi.name.empty())
      g.value_info[vi.name] = std::move(vi);
  }

  // Names: engine, locking and error messages refer to nodes by name.
  std::unordered_set<std::string> names;
  for (const auto& n : g.nodes)
    if (!n.name.empty() && !names.insert(n.name).second)
      throw MalformedInput(n.describe() + ": node name used twice");
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].name.empty())
      g.nodes[i].name = unique_name(g.nodes[i].op_type + "_" + std::to_string(i), names);

  for (const auto& n : g.nodes) check_node(n, m.opset);

  // Dropout's mask is never computed; drop it when nothing reads it.
  std::unordered_set<std::string> read;
  for (const auto& n : g.nodes) read.insert(n.inputs.begin(), n.inputs.end());
  for (const auto& o : g.outputs) read.insert(o.name);
  for (auto& n : g.nodes) {
    if (n.op_type == "Dropout" && n.outputs.size() == 2) {
      if (!n.outputs[1].empty() && read.count(n.outputs[1]))
        throw Unsupported(n.describe() + ": the mask output is not supported");
      n.outputs.resize(1);
    }
  }

  topological_sort(g);
  validate(g);
  fold_constants(m);
  require_finite_initializers(g);  // after folding: Constant nodes are initializers by now
  infer_shapes(m);
  if (rewrite_reduce_mean(m)) infer_shapes(m);
  return m;
}

}  // namespace

Model parse_onnx(const uint8_t* data, size_t size, const std::string& source_name) {
  const std::string prefix = source_name.empty() ? std::string() : source_name + ": ";
  if (size > kMaxOnnxBytes)
    throw MalformedInput(prefix + "ONNX model of " + std::to_string(size) +
                         " bytes exceeds the limit of " + std::to_string(kMaxOnnxBytes));
  if (size > 0 && data == nullptr) throw InvalidArgument(prefix + "null data");
  onnx::ModelProto mp;
  if (!mp.ParseFromArray(data, static_cast<int>(size)))
    throw MalformedInput(prefix + "not a valid ONNX model (protobuf parsing failed)");
  try {
    return convert_model(mp);
  } catch (const Unsupported& e) {
    throw Unsupported(prefix + e.what());
  } catch (const MalformedInput& e) {
    throw MalformedInput(prefix + e.what());
  } catch (const InvalidArgument& e) {
    // Raised by tensor helpers on inconsistent sizes: from a file that is malformed input.
    throw MalformedInput(prefix + e.what());
  }
}

Model load_onnx(const std::filesystem::path& path) {
  auto bytes = read_file(path, kMaxOnnxBytes);
  return parse_onnx(bytes.data(), bytes.size(), path.string());
}

}  // namespace veil::model

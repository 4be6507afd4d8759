// veil IR -> ONNX. Initializers are written as raw little-endian bytes so that every weight
// survives bit-for-bit (NaN payloads, -0.0, denormals).
#include <limits>
#include <type_traits>

#include "onnx_proto.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/ops.hpp"

namespace veil::model {

namespace {

void attribute_to_proto(const std::string& name, const Attribute& value, onnx::AttributeProto* a) {
  a->set_name(name);
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          a->set_type(onnx::AttributeProto::INT);
          a->set_i(v);
        } else if constexpr (std::is_same_v<T, float>) {
          a->set_type(onnx::AttributeProto::FLOAT);
          a->set_f(v);
        } else if constexpr (std::is_same_v<T, std::string>) {
          a->set_type(onnx::AttributeProto::STRING);
          a->set_s(v);
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          a->set_type(onnx::AttributeProto::INTS);
          for (int64_t x : v) a->add_ints(x);
        } else if constexpr (std::is_same_v<T, std::vector<float>>) {
          a->set_type(onnx::AttributeProto::FLOATS);
          for (float x : v) a->add_floats(x);
        } else {
          a->set_type(onnx::AttributeProto::TENSOR);
          onnx_proto::tensor_to_proto(v, "", a->mutable_t());
        }
      },
      value);
}

void value_info_to_proto(const std::string& name, DType dtype, const Shape& shape,
                         onnx::ValueInfoProto* p) {
  p->set_name(name);
  auto* tt = p->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(dtype == DType::Float32 ? onnx::TensorProto::FLOAT : onnx::TensorProto::INT64);
  auto* sp = tt->mutable_shape();
  for (size_t i = 0; i < shape.size(); ++i) {
    auto* d = sp->add_dim();
    if (shape[i] >= 0)
      d->set_dim_value(shape[i]);
    else if (i == 0)
      d->set_dim_param("N");  // the dynamic batch
    // other unknown dims stay unset: unknown, and not claimed equal to the batch
  }
}

}  // namespace

std::string serialize_onnx(const Model& model) {
  const Graph& g = model.graph;
  onnx::ModelProto mp;
  mp.set_ir_version(model.ir_version);
  if (!model.producer_name.empty()) mp.set_producer_name(model.producer_name);
  if (!model.producer_version.empty()) mp.set_producer_version(model.producer_version);
  if (!model.doc_string.empty()) mp.set_doc_string(model.doc_string);
  auto* op = mp.add_opset_import();
  op->set_domain("");
  op->set_version(model.opset);
  for (const auto& [k, v] : model.metadata) {
    auto* kv = mp.add_metadata_props();
    kv->set_key(k);
    kv->set_value(v);
  }
  auto* gp = mp.mutable_graph();
  gp->set_name(g.name);
  bool uses_veil_domain = false;
  for (const auto& n : g.nodes) {
    auto* np = gp->add_node();
    if (!n.name.empty()) np->set_name(n.name);
    np->set_op_type(n.op_type);
    if (const auto kind = op_kind(n.op_type); kind && !op_domain(*kind).empty()) {
      np->set_domain(op_domain(*kind));
      uses_veil_domain = true;
    }
    for (const auto& i : n.inputs) np->add_input(i);
    for (const auto& o : n.outputs) np->add_output(o);
    for (const auto& [name, value] : n.attributes)
      attribute_to_proto(name, value, np->add_attribute());
  }
  if (uses_veil_domain) {
    auto* veil_op = mp.add_opset_import();
    veil_op->set_domain(kVeilDomain);
    veil_op->set_version(kVeilDomainVersion);
  }
  for (const auto& [name, t] : g.initializers)
    onnx_proto::tensor_to_proto(t, name, gp->add_initializer());
  for (const auto& in : g.inputs) value_info_to_proto(in.name, in.dtype, in.shape, gp->add_input());
  // Before IR version 4 every initializer also had to be declared as a graph input.
  if (model.ir_version < 4)
    for (const auto& [name, t] : g.initializers)
      value_info_to_proto(name, t.dtype(), t.shape(), gp->add_input());
  for (const auto& out : g.outputs)
    value_info_to_proto(out.name, out.dtype, out.shape, gp->add_output());
  for (const auto& [name, vi] : g.value_info)
    value_info_to_proto(name, vi.dtype, vi.shape, gp->add_value_info());

  if (mp.ByteSizeLong() > kMaxOnnxBytes)
    throw InvalidArgument("model is too large for ONNX (" + std::to_string(mp.ByteSizeLong()) +
                          " bytes)");
  std::string out;
  if (!mp.SerializeToString(&out)) throw InvalidArgument("cannot serialize the model to ONNX");
  return out;
}

void save_onnx(const Model& model, const std::filesystem::path& path) {
  write_file_atomic(path, serialize_onnx(model));
}

}  // namespace veil::model

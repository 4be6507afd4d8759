// Test helper: builds ONNX ModelProtos through the protobuf API (no python, no files).
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "veil/model/onnx.hpp"

namespace veil::test {

class OnnxBuilder {
 public:
  explicit OnnxBuilder(int64_t opset = 13, int64_t ir_version = 8) {
    proto_.set_ir_version(ir_version);
    proto_.set_producer_name("veil-test");
    auto* op = proto_.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    proto_.mutable_graph()->set_name("test_graph");
  }

  onnx::ModelProto& proto() { return proto_; }
  onnx::GraphProto& graph() { return *proto_.mutable_graph(); }

  // dims: -1 becomes dim_param "N".
  OnnxBuilder& input(const std::string& name, const std::vector<int64_t>& dims,
                     int elem_type = onnx::TensorProto::FLOAT) {
    fill_value_info(graph().add_input(), name, dims, elem_type, true);
    return *this;
  }
  OnnxBuilder& output(const std::string& name, const std::vector<int64_t>& dims = {},
                      bool with_shape = false, int elem_type = onnx::TensorProto::FLOAT) {
    fill_value_info(graph().add_output(), name, dims, elem_type, with_shape);
    return *this;
  }

  // Float initializer, as raw_data (default) or float_data.
  onnx::TensorProto& initializer(const std::string& name, const std::vector<int64_t>& dims,
                                 const std::vector<float>& values, bool raw = true) {
    auto* t = graph().add_initializer();
    fill_float_tensor(t, dims, values, raw);
    t->set_name(name);
    return *t;
  }
  onnx::TensorProto& initializer_i64(const std::string& name, const std::vector<int64_t>& dims,
                                     const std::vector<int64_t>& values, bool raw = false) {
    auto* t = graph().add_initializer();
    fill_int64_tensor(t, dims, values, raw);
    t->set_name(name);
    return *t;
  }

  static void fill_float_tensor(onnx::TensorProto* t, const std::vector<int64_t>& dims,
                                const std::vector<float>& values, bool raw = true) {
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    if (raw) {
      std::string bytes(values.size() * 4, '\0');
      if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
      t->set_raw_data(bytes);
    } else {
      for (float v : values) t->add_float_data(v);
    }
  }
  static void fill_int64_tensor(onnx::TensorProto* t, const std::vector<int64_t>& dims,
                                const std::vector<int64_t>& values, bool raw = false) {
    t->set_data_type(onnx::TensorProto::INT64);
    for (int64_t d : dims) t->add_dims(d);
    if (raw) {
      std::string bytes(values.size() * 8, '\0');
      if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
      t->set_raw_data(bytes);
    } else {
      for (int64_t v : values) t->add_int64_data(v);
    }
  }

  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name = "") {
    auto* n = graph().add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? op + "_" + std::to_string(graph().node_size()) : name);
    for (const auto& i : inputs) n->add_input(i);
    for (const auto& o : outputs) n->add_output(o);
    return *n;
  }

  static void attr(onnx::NodeProto& n, const std::string& name, int64_t v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void attr_f(onnx::NodeProto& n, const std::string& name, float v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  static void attr_s(onnx::NodeProto& n, const std::string& name, const std::string& v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }
  static void attr(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void attr_floats(onnx::NodeProto& n, const std::string& name,
                          const std::vector<float>& v) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOATS);
    for (float x : v) a->add_floats(x);
  }
  static onnx::TensorProto* attr_t(onnx::NodeProto& n, const std::string& name) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::TENSOR);
    return a->mutable_t();
  }

  void metadata(const std::string& k, const std::string& v) {
    auto* kv = proto_.add_metadata_props();
    kv->set_key(k);
    kv->set_value(v);
  }

  std::string bytes() const { return proto_.SerializeAsString(); }

  model::Model parse() const {
    std::string b = bytes();
    return model::parse_onnx(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "test.onnx");
  }

 private:
  static void fill_value_info(onnx::ValueInfoProto* vi, const std::string& name,
                              const std::vector<int64_t>& dims, int elem_type, bool with_shape) {
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem_type);
    if (!with_shape) return;
    auto* shape = tt->mutable_shape();
    for (int64_t d : dims) {
      auto* dim = shape->add_dim();
      if (d < 0)
        dim->set_dim_param("N");
      else
        dim->set_dim_value(d);
    }
  }

  onnx::ModelProto proto_;
};

inline model::Model parse_bytes(const std::string& b) {
  return model::parse_onnx(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "test.onnx");
}

}  // namespace veil::test

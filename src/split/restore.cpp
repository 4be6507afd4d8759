#include "veil/split/restore.hpp"

#include "veil/core/error.hpp"

namespace veil::split {
namespace {

OutsourcedLayer geometry(const LinearLayer& layer, int64_t out_channels) {
  OutsourcedLayer o;
  o.kind = layer.kind;
  o.conv = layer.conv;
  o.input_shape = layer.input_shape;
  o.output_shape = layer.output_shape;
  o.output_shape.at(0) = out_channels;
  return o;
}

}  // namespace

OutsourcedLayer outsourced_geometry(const LinearLayer& layer, const Tensor& weight) {
  OutsourcedLayer o = geometry(layer, weight.shape().at(0));
  o.weight = weight;
  return o;
}

OutsourcedLayer outsourced_geometry(const LinearLayer& layer, const FieldTensor& weight) {
  OutsourcedLayer o = geometry(layer, weight.shape.at(0));
  o.weight = weight;
  return o;
}

void add_bias(const LinearLayer& layer, Tensor& y) {
  if (layer.bias.empty()) return;
  const int64_t b = y.shape().at(0), m = y.shape().at(1);
  if (m != layer.bias.numel()) throw InvalidArgument("split: bias size does not match the output");
  const int64_t inner = y.numel() / (b * m);
  float* p = y.data();
  const float* bias = layer.bias.data();
  for (int64_t i = 0; i < b; ++i)
    for (int64_t c = 0; c < m; ++c, p += inner)
      for (int64_t j = 0; j < inner; ++j) p[j] += bias[c];
}

const Tensor& expect_tensor(const Payload& p, const Shape& shape) {
  const Tensor* t = std::get_if<Tensor>(&p);
  if (t == nullptr) throw ProtocolError("split: expected a float payload");
  if (t->shape() != shape)
    throw ProtocolError("split: payload shape " + shape_to_string(t->shape()) + ", expected " +
                        shape_to_string(shape));
  return *t;
}

const FieldTensor& expect_field(const Payload& p, const Shape& shape) {
  const FieldTensor* t = std::get_if<FieldTensor>(&p);
  if (t == nullptr) throw ProtocolError("split: expected a field payload");
  if (t->shape != shape || t->numel() != shape_numel(shape))
    throw ProtocolError("split: payload shape " + shape_to_string(t->shape) + ", expected " +
                        shape_to_string(shape));
  return *t;
}

}  // namespace veil::split

#include "veil/split/linear_layer.hpp"

#include "veil/core/error.hpp"

namespace veil::split {

int64_t LinearLayer::macs_per_image() const {
  int64_t per_output = 1;
  for (size_t i = 1; i < weight.shape().size(); ++i) per_output *= weight.shape()[i];
  return shape_numel(output_shape) * per_output;
}

LinearLayer with_out_channels(const LinearLayer& layer, int64_t out_channels) {
  if (out_channels <= 0) throw InvalidArgument("split: output channels must be positive");
  LinearLayer l;
  l.index = layer.index;
  l.name = layer.name;
  l.kind = layer.kind;
  l.conv = layer.conv;
  l.input_shape = layer.input_shape;
  l.output_shape = layer.output_shape;
  l.output_shape.at(0) = out_channels;
  return l;
}

namespace {

void check_fit(const LinearLayer& layer, const Shape& w, const Shape& x) {
  const bool conv = layer.kind == LinearKind::Conv;
  const size_t rank = conv ? 4 : 2;
  if (w.size() != rank || x.size() != rank)
    throw InvalidArgument("split: " + layer.name + ": weight " + shape_to_string(w) + " / input " +
                          shape_to_string(x) + " have the wrong rank");
  if (w[1] != layer.input_shape.at(0) || x[1] != layer.input_shape.at(0))
    throw InvalidArgument("split: " + layer.name + ": input channels do not match");
  for (size_t i = 1; i < layer.input_shape.size(); ++i)
    if (x[i + 1] != layer.input_shape[i])
      throw InvalidArgument("split: " + layer.name + ": input " + shape_to_string(x) +
                            " does not match " + shape_to_string(layer.input_shape));
}

}  // namespace

Tensor apply_linear(const LinearLayer& layer, const Tensor& weight, const Tensor& x, int) {
  check_fit(layer, weight.shape(), x.shape());
  if (layer.kind == LinearKind::Conv) return nn::reference::conv2d(x, weight, nullptr, layer.conv);
  return nn::reference::gemm(x, weight, nullptr, 1.0f, 0.0f, false, true);
}

}  // namespace veil::split

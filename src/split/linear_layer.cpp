#include "veil/split/linear_layer.hpp"

#include "veil/core/error.hpp"
#include "veil/model/graph.hpp"
#include "veil/nn/executor.hpp"

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

void check_weight(const LinearLayer& layer, const Shape& w) {
  const bool conv = layer.kind == LinearKind::Conv;
  if (w.size() != (conv ? 4u : 2u) || w[0] <= 0 || w[1] != layer.input_shape.at(0))
    throw InvalidArgument("split: " + layer.name + ": weight " + shape_to_string(w) +
                          " does not fit input " + shape_to_string(layer.input_shape));
  if (conv && layer.input_shape.size() != 3)
    throw InvalidArgument("split: " + layer.name + ": a conv input must be [C, H, W]");
}

void check_input(const LinearLayer& layer, const Shape& x) {
  bool ok = x.size() == layer.input_shape.size() + 1 && x[0] > 0;
  for (size_t i = 0; ok && i < layer.input_shape.size(); ++i) ok = x[i + 1] == layer.input_shape[i];
  if (!ok)
    throw InvalidArgument("split: " + layer.name + ": input " + shape_to_string(x) +
                          " does not match [B, " + shape_to_string(layer.input_shape) + "]");
}

// The layer as a one-node model for the float engine: Conv, or Gemm with transB = 1.
model::Model one_node_model(const LinearLayer& layer, const Tensor& weight) {
  model::Model m;
  model::Node n;
  n.name = layer.name.empty() ? "linear" : layer.name;
  n.inputs = {"x", "w"};
  n.outputs = {"y"};
  Shape in{-1}, out{-1, weight.shape()[0]};
  in.insert(in.end(), layer.input_shape.begin(), layer.input_shape.end());
  out.insert(out.end(), layer.output_shape.begin() + 1, layer.output_shape.end());
  if (layer.kind == LinearKind::Conv) {
    n.op_type = "Conv";
    const auto& c = layer.conv;
    n.attributes["kernel_shape"] = std::vector<int64_t>{weight.shape()[2], weight.shape()[3]};
    if (!c.strides.empty()) n.attributes["strides"] = c.strides;
    if (!c.pads.empty()) n.attributes["pads"] = c.pads;
    if (!c.dilations.empty()) n.attributes["dilations"] = c.dilations;
  } else {
    n.op_type = "Gemm";
    n.attributes["transB"] = int64_t{1};
  }
  m.graph.name = "linear";
  m.graph.nodes.push_back(std::move(n));
  m.graph.inputs.push_back({"x", DType::Float32, in});
  m.graph.outputs.push_back({"y", DType::Float32, out});
  m.graph.initializers["w"] = weight;
  return m;
}

}  // namespace

struct LinearEngine::Impl {
  LinearLayer geometry;
  model::Model model;
  std::unique_ptr<nn::Executor> executor;
};

LinearEngine::LinearEngine(const LinearLayer& layer, const Tensor& weight, int threads)
    : impl_(std::make_unique<Impl>()) {
  check_weight(layer, weight.shape());
  impl_->geometry = with_out_channels(layer, weight.shape()[0]);
  impl_->model = one_node_model(impl_->geometry, weight);
  nn::ExecutorOptions o;
  o.threads = threads;
  o.fuse = false;
  impl_->executor = std::make_unique<nn::Executor>(impl_->model, o);
}

LinearEngine::~LinearEngine() = default;
LinearEngine::LinearEngine(LinearEngine&&) noexcept = default;
LinearEngine& LinearEngine::operator=(LinearEngine&&) noexcept = default;

Tensor LinearEngine::forward(const Tensor& x) {
  check_input(impl_->geometry, x.shape());
  return std::move(impl_->executor->forward({x}).at(0));
}

Tensor apply_linear(const LinearLayer& layer, const Tensor& weight, const Tensor& x, int threads) {
  return LinearEngine(layer, weight, threads).forward(x);
}

}  // namespace veil::split

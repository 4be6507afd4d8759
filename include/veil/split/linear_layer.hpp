// One linear layer the trusted part may hand to the accelerator: a Conv (group 1) or a dense
// layer (Gemm / MatMul with constant weights), after BatchNormalization was folded in. The
// geometry is what both sides need; the weights stay in the trusted part unless a scheme
// outsources them (veil/split/scheme.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "veil/core/tensor.hpp"
#include "veil/nn/reference.hpp"

namespace veil::split {

enum class LinearKind { Conv, Dense };

struct LinearLayer {
  size_t index = 0;  // position among the model's offloaded layers (0 = the first)
  std::string name;  // the ONNX node's name
  LinearKind kind = LinearKind::Conv;
  // Conv: [M, C, kH, kW]; Dense: [M, C] (y = x W^T + b, whatever the node's transposes were).
  Tensor weight;
  Tensor bias;                     // [M], or empty (no bias)
  nn::reference::ConvParams conv;  // Conv only: strides, pads [t, l, b, r], dilations; group 1
  Shape input_shape;               // one image: [C, H, W] (Conv) or [C] (Dense)
  Shape output_shape;              // one image: [M, oH, oW] (Conv) or [M] (Dense)

  int64_t out_channels() const { return weight.shape().at(0); }
  int64_t in_channels() const { return weight.shape().at(1); }
  // Multiply-accumulates for one image: output elements x C x kH x kW.
  int64_t macs_per_image() const;
};

// The layer's geometry with a weight of `out_channels` output channels (a scheme's outsourced
// weight may have more channels than the layer: fake filters). Shapes are checked.
LinearLayer with_out_channels(const LinearLayer& layer, int64_t out_channels);

// A linear map with fixed weights on the float engine (oneDNN), built once and run per batch:
// what the accelerator and the trusted restore steps use. No bias.
class LinearEngine {
 public:
  // `weight` has the layer's geometry apart from its output-channel count.
  LinearEngine(const LinearLayer& layer, const Tensor& weight, int threads = 0);
  ~LinearEngine();
  LinearEngine(LinearEngine&&) noexcept;
  LinearEngine& operator=(LinearEngine&&) noexcept;
  // x [B, input_shape...] -> [B, M', ...]. Throws InvalidArgument on a shape that does not fit.
  Tensor forward(const Tensor& x);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// y = x (*) weight, no bias, in float32 (oneDNN): x [B, input_shape...] -> [B, M', ...] where
// M' = weight.shape()[0]; `weight` has the layer's geometry apart from M'. Throws
// InvalidArgument on a shape that does not fit.
Tensor apply_linear(const LinearLayer& layer, const Tensor& weight, const Tensor& x,
                    int threads = 0);

}  // namespace veil::split

// Naive reference kernels: one straightforward loop nest per op, with ONNX semantics. They are
// the ground truth the executor (and the secure-inference modules) are tested against, so they
// favour obviousness over speed and share no code with the optimised kernels.
#pragma once

#include <cstdint>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/model/block_size.hpp"

namespace veil::nn::reference {

// Spatial parameters of a 2-D convolution, ONNX conventions. `pads` is
// [h_begin, w_begin, h_end, w_end]; empty vectors mean the ONNX defaults (stride 1, no padding,
// no dilation).
struct ConvParams {
  std::vector<int64_t> strides;
  std::vector<int64_t> pads;
  std::vector<int64_t> dilations;
  int64_t group = 1;
};

// x [N, C, H, W], w [M, C/group, kH, kW], b [M] or nullptr -> [N, M, oH, oW].
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* b, const ConvParams& p);

// 2-D pooling. Output size follows ONNX / PyTorch: with ceil_mode the last window must start
// inside the input or the begin padding.
struct PoolParams {
  std::vector<int64_t> kernel;  // [kH, kW], required
  std::vector<int64_t> strides;
  std::vector<int64_t> pads;
  std::vector<int64_t> dilations;
  bool ceil_mode = false;
  // AveragePool only: count the explicit padding in the divisor (never the ceil_mode overhang).
  bool count_include_pad = false;
};

Tensor max_pool2d(const Tensor& x, const PoolParams& p);
Tensor avg_pool2d(const Tensor& x, const PoolParams& p);
Tensor global_avg_pool(const Tensor& x);  // [N, C, ...] -> [N, C, 1, ...]

// alpha * op(a) * op(b) + beta * c, c unidirectionally broadcast to [M, N].
Tensor gemm(const Tensor& a, const Tensor& b, const Tensor* c, float alpha, float beta,
            bool trans_a, bool trans_b);
// numpy.matmul: 1-D operands promoted and squeezed, batch dimensions broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);

// PRelu: a = x, b = the slope (x >= 0 ? x : slope x).
enum class BinaryOp { Add, Sub, Mul, Div, PRelu };
Shape broadcast_shapes(const Shape& a, const Shape& b);  // numpy rules; throws InvalidArgument
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);

Tensor relu(const Tensor& x);
// Block ReLU, x [N, C, H, W], one block per channel (veil/model/block_size.hpp): each element
// is kept when the sum of its h x w tile (ceil tiling, row by row) is >= 0, zeroed when it is
// < 0, NaN when it is NaN; {0, 0} passes the channel through. The backward pass multiplies the
// output gradient by the same mask (the mask itself is taken as a constant).
Tensor block_relu(const Tensor& x, const std::vector<model::BlockSize>& blocks);
Tensor block_relu_backward(const Tensor& x, const Tensor& grad_y,
                           const std::vector<model::BlockSize>& blocks);
Tensor leaky_relu(const Tensor& x, float alpha);
Tensor clip(const Tensor& x, float lo, float hi);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);

// x [N, C, ...]; per-channel parameters [C].
Tensor batch_norm_inference(const Tensor& x, const Tensor& scale, const Tensor& bias,
                            const Tensor& mean, const Tensor& var, float epsilon);
struct BatchNormTraining {
  Tensor y;
  Tensor mean;  // batch mean [C]
  Tensor var;   // biased batch variance [C]
};
BatchNormTraining batch_norm_training(const Tensor& x, const Tensor& scale, const Tensor& bias,
                                      float epsilon);

// Softmax along one axis (ONNX opset >= 13).
Tensor softmax(const Tensor& x, int64_t axis);
// Softmax of x coerced to 2-D [prod(dims[:axis]), prod(dims[axis:])] (ONNX opset < 13).
Tensor softmax_2d(const Tensor& x, int64_t axis);

Tensor flatten(const Tensor& x, int64_t axis);
Tensor concat(const std::vector<Tensor>& xs, int64_t axis);

enum class PadMode { Constant, Reflect, Edge };
// pads = [x1_begin, x2_begin, ..., x1_end, x2_end]; negative pads crop.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, PadMode mode, float value = 0.0f);

// Float data only; indices may be negative.
Tensor gather(const Tensor& data, const Tensor& indices, int64_t axis);

}  // namespace veil::nn::reference

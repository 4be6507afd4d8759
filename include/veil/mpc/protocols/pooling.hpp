// Pooling geometry and the local (communication-free) average pools on shares.
#pragma once

#include <cstdint>

#include "veil/mpc/party.hpp"
#include "veil/mpc/ring.hpp"

namespace veil::mpc {

// ONNX MaxPool/AveragePool attributes for 2-D NCHW inputs.
struct Pool2dGeometry {
  int64_t kernel_h = 2, kernel_w = 2, stride_h = 2, stride_w = 2;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  bool ceil_mode = false;
  bool count_include_pad = false;  // AveragePool only

  int64_t out_h(int64_t in_h) const;
  int64_t out_w(int64_t in_w) const;
  void validate(int64_t in_h, int64_t in_w) const;  // throws InvalidArgument
};

// Window sums times a public fixed-point 1/count, then local truncation: the result has the
// input's fractional bits (error: one ulp from truncation plus the rounding of 1/count).
RingTensor avgpool2d(const Party& p, const RingTensor& x, const Pool2dGeometry& g);
// Mean over H x W per channel: [N, C, H, W] -> [N, C, 1, 1].
RingTensor global_avgpool(const Party& p, const RingTensor& x);

}  // namespace veil::mpc

// DReLU, ReLU, block ReLU and MaxPool on additive shares over Z_2^64.
//
// DReLU protocol (documented in docs/MPC.md): the helper deals a mask r (from the two seeds, so
// free) and Z_67 shares of the bits of r's low L-1 bits (server's part sent, client's from the
// seed); client and server open c = v + r mod 2^L. With c' = c mod 2^(L-1) and r' likewise,
//   MSB(v) = c[L-1] xor r[L-1] xor [r' > c']           (Nishide & Ohta, PKC 2007)
// and [r' > c'] is one SecureNN PrivateCompare (Wagh et al. 2019, Alg. 1) of a shared r'
// against the public c', masked by a client-server coin beta. The helper learns only
// beta xor [r' > c'], XORs in r[L-1] and hands back arithmetic shares. This replaces SecureNN's
// ShareConvert + ComputeMSB: 3 rounds instead of ~8-10, and, with 9 Z_67 digits packed in 7
// bytes, 171 bytes per exact DReLU instead of 504 for the reference.
//
// ReLU multiplies x by the DReLU bit without a generic Beaver multiplication: the helper knows
// the bit w, and for the exact ReLU the opened c = x + r already serves as the Beaver opening
// of x, so the helper only adds shares of r*w: +8 bytes and no extra round.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/model/block_size.hpp"
#include "veil/mpc/party.hpp"
#include "veil/mpc/protocols/pooling.hpp"
#include "veil/mpc/ring.hpp"

namespace veil::mpc {

// Shares of DReLU(x) = [x >= 0] as ring integers 0/1 (not fixed-point), per element, with the
// session's DReluParams (exact or approximate).
RingTensor drelu(Party& p, const RingTensor& x);

// Shares of ReLU(x) = x * DReLU(x).
RingTensor relu(Party& p, const RingTensor& x);

// y[e] = x[e] * DReLU(gate[gate_of[e]]): one comparison per gate value, its bit broadcast to
// every element mapped to it. gate_of has one entry per element of x, each < gate.numel().
// gate_of must be public (it is part of the model structure).
RingTensor gated_relu(Party& p, const RingTensor& x, const RingTensor& gate,
                      std::span<const uint32_t> gate_of);

// Block ReLU (Gorski & Avidan, arXiv 2304.10442): for channel c with block {h, w}, the h x w
// blocks of each feature map (the last block row/column may be partial) share one DReLU of the
// block's sum, broadcast back. {1, 1} is the ordinary ReLU; {0, 0} means identity (no DReLU).
using model::BlockSize;
// x is NCHW; `blocks` has one entry per channel.
RingTensor block_relu(Party& p, const RingTensor& x, std::span<const BlockSize> blocks);

// Number of DReLUs block_relu performs for an N x C x H x W input (for cost accounting).
int64_t block_relu_count(const Shape& nchw, std::span<const BlockSize> blocks);

// LeakyRelu(x) = x for x >= 0, alpha x below, with a public alpha: ReLU(x) + alpha (x - ReLU(x)),
// one DReLU per element and one local truncation of the product by the fixed-point alpha (only
// the negative part carries its error).
RingTensor leaky_relu(Party& p, const RingTensor& x, double alpha);

// PRelu(x) = ReLU(x) + slope (x - ReLU(x)) with a server-private slope per channel (axis 1 of
// x, rank >= 2; `slope` holds C fixed-point values at the server, a shape elsewhere): one DReLU
// per element, then the product by the slope as a depthwise 1x1 convolution with server weights
// (one more round, 8 bytes per element and per slope each way) and one truncation.
RingTensor prelu(Party& p, const RingTensor& x, const RingTensor& slope, int threads = 1);
// An ONNX PRelu slope as one value per channel of an input of shape `x`: a scalar is repeated,
// a per-channel slope ([C, 1, 1], [1, C, 1, 1], ...) taken as is. Throws Unsupported for a
// slope that varies along another axis (the protocol has no per-element product by weights).
std::vector<float> prelu_channel_slopes(const Shape& x, const Tensor& slope);

// The bounds of a Clip, in fixed point at the session's frac_bits. Which bounds exist is public
// (the model's structure); their values are needed at the server only, which adds them to its
// share (the client and the helper pass zeros).
struct ClipBounds {
  bool has_lo = false, has_hi = false;
  uint64_t lo = 0, hi = 0;
};
// Clip(x, lo, hi) = lo + ReLU(x - lo) - ReLU(x - hi) (lo <= hi), a missing bound dropping its
// term: one DReLU per element and bound, both bounds in one ReLU call (the rounds of one ReLU).
// Exact: no truncation.
RingTensor clip(Party& p, const RingTensor& x, const ClipBounds& bounds);

// MaxPool over NCHW shares with any kernel/stride/padding (padding never wins, as with ONNX's
// -inf padding). Pairwise tournament max(a, b) = b + ReLU(a - b): ceil(log2(window)) ReLU
// layers.
RingTensor maxpool2d(Party& p, const RingTensor& x, const Pool2dGeometry& g);

}  // namespace veil::mpc

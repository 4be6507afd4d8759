// A split-execution scheme: how the trusted part protects one linear layer it hands to the
// untrusted accelerator. The trusted side (one LayerScheme per layer, holding the secrets)
// transforms the weights once (outsource), masks each batch of inputs (encode), and restores
// the accelerator's results (decode), checking them when asked to.
//
//   Plain      nothing hidden: the accelerator gets W and x (the baseline and the tests' ground
//   truth) ShadowNet  weights hidden by fake filters, random scales and a channel permutation;
//   inputs
//              masked with a fixed mask per layer (Sun et al., S&P 2023)
//   Slalom     inputs hidden by one-time pads in Z_P, weights in the clear; Freivalds' check
//              (Tramer & Boneh, ICLR 2019)
//   DarkNight  a batch mixed with a noise vector by a secret invertible matrix over Z_P; a
//              redundant coded query checks integrity (Hashemi et al., MICRO 2021)
//   Hardened   ours: dense random mixing of all channels (real and fake) instead of a permutation
//              with scales, input masks refreshed for every query (see docs/SPLIT.md)
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/split/field.hpp"
#include "veil/split/linear_layer.hpp"

namespace veil::split {

enum class SchemeKind { Plain, ShadowNet, Slalom, DarkNight, Hardened };

const char* scheme_name(SchemeKind kind);          // "plain", "shadownet", ...
SchemeKind parse_scheme(const std::string& name);  // throws InvalidArgument

// What crosses the channel: float tensors, or field elements for the Z_P schemes.
using Payload = std::variant<Tensor, FieldTensor>;

// Everything the accelerator is given about a layer, once, at setup: its whole view of the
// weights. `layer` carries the geometry only (its weight tensor is empty); `weight` is what the
// accelerator multiplies by (its output-channel count may differ from the layer's).
struct OutsourcedLayer {
  LinearKind kind = LinearKind::Conv;
  nn::reference::ConvParams conv;
  Shape input_shape;   // one image
  Shape output_shape;  // one image, with the outsourced channel count
  std::variant<Tensor, FieldTensor> weight;
};

struct SchemeOptions {
  bool verify = false;    // check every result (Freivalds' / the coded query)
  int verify_rounds = 2;  // independent checks per result (false accept <= per-round bound^rounds)
  double fake_ratio = 1.2;   // ShadowNet / Hardened: M = ceil(fake_ratio x N) output slots
  int input_frac_bits = -1;  // Slalom / DarkNight quantisation (-1: chosen from the layer)
  int weight_frac_bits = -1;
};

class LayerScheme {
 public:
  virtual ~LayerScheme() = default;
  // The accelerator's copy of the layer (called once, before any encode).
  virtual OutsourcedLayer outsource() = 0;
  // Offline phase: prepare what `queries` batches of `batch` images will need (one-time pads and
  // their products). Schemes without an offline phase do nothing.
  virtual void precompute(int64_t batch, int64_t queries) { (void)batch, (void)queries; }
  // x [B, input_shape...], the trusted activations -> the payloads to send (one or more).
  virtual std::vector<Payload> encode(const Tensor& x) = 0;
  // The accelerator's replies to the last encode (one per payload, same order) -> the layer's
  // output [B, output_shape...] including the bias. With options.verify, throws IntegrityError
  // when a reply is wrong.
  virtual Tensor decode(std::vector<Payload> replies) = 0;
  // Bytes of secrets and precomputed material the trusted part holds for this layer.
  virtual size_t trusted_bytes() const = 0;
  // The false-accept probability of one verified result (1 when the scheme does not verify).
  virtual double false_accept_bound() const { return 1.0; }
};

std::unique_ptr<LayerScheme> make_layer_scheme(SchemeKind kind, const LinearLayer& layer,
                                               const SchemeOptions& options);

}  // namespace veil::split

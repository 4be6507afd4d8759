// Fixed-point range analysis: before a session, the server (which knows the weights) bounds
// every value the protocols will hold in Z_2^64 for every input in the public input range, and
// refuses a model that can overflow at the session's fractional bits. Without it, a model whose
// activations outgrow the ring runs to completion and the client gets wrong logits.
//
// The analysis is interval arithmetic (Moore, "Interval Analysis", 1966) per channel (axis 1:
// conv channels, dense features), on the weights and biases exactly as the server encodes them
// (rounded to 2^-f) and with one ulp of truncation error per truncation, so the bounds cover
// the ring computation, not only the float model. A Conv/Gemm/MatMul output channel o gets
//   [b_o + sum_i min(w_oi lo_i, w_oi hi_i),  b_o + sum_i max(w_oi lo_i, w_oi hi_i)],
// ReLU clamps at 0, pools keep (max) or average their channel's interval, Add sums intervals,
// Flatten/Reshape map features to their source channels.
//
// What each protocol needs (docs/MPC.md, src/mpc/protocols):
//  - Every value held at scale 2^f (activations, biased outputs, residual sums): |v| < 2^63, so
//    that its two's-complement reading (decode_fixed) is the value.
//  - The product before truncation (x 2^f)(w 2^f), at scale 2^(2f): |v| < 2^63 or it wraps; and
//    the local truncation (SecureML Thm. 1) fails with probability about |v| / 2^63 per element,
//    so it gets kTruncationMarginBits of headroom: |v| < 2^(63 - margin). Average pools multiply
//    a window sum by a fixed-point 1/count and truncate the same way.
//  - DReLU (ReLU, block ReLU on block sums, MaxPool on differences): the sign is the MSB of the
//    L-bit value, right for |v| < 2^(63 - k + s) (DreluParams; 2^63 exact, L = 64).
//
// Input range: the model's raw input (pixels) lies in [lo, hi], by default [0, 1] (every dataset
// reader scales pixels so); a model can declare another range in its metadata
// ("veil.input.range" = "LO,HI"). It is normalised with the model's mean/std, as the client
// does, and the client refuses images outside it (check_input_range).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/model/graph.hpp"
#include "veil/mpc/party.hpp"
#include "veil/mpc/secure_model.hpp"

namespace veil::mpc {

// Headroom below 2^63 for the products before a local truncation: a product bounded by
// 2^(63 - 20) fails to truncate with probability at most 2^-20 per element in the worst case.
inline constexpr int kTruncationMarginBits = 20;
// The smallest frac_bits a refusal suggests instead: below, weights of typical size (~0.01-1)
// keep only a few significant bits.
inline constexpr int kMinUsefulFracBits = 8;
// Probe inputs of the estimate (check_fixed_point_range, step 2).
inline constexpr int kRangeProbes = 16;

struct Interval {
  double lo = 0, hi = 0;
  double magnitude() const;  // max(|lo|, |hi|)
};

// The raw input range (before normalisation) the analysis assumes for a model.
struct InputRange {
  double lo = 0, hi = 1;
};
// "LO,HI": two finite numbers with LO <= HI; throws InvalidArgument naming `what` otherwise.
InputRange parse_input_range(const std::string& text, const std::string& what);
// "veil.input.range" from the metadata, [0, 1] when absent; throws InvalidArgument on a bad
// value. A session's declared range (PartyConfig::input_range, `mpc run --input-range`) is
// written there by the server, so the client enforces what the server assumed.
InputRange input_range_of(const model::Model& model);
// Throws InvalidArgument when an image value lies outside `range` (or is not finite): the
// overflow check assumed it does not.
void check_input_range(const Tensor& images, const InputRange& range);

// One requirement of one op: a bound on |value| in the ring and the ring's limit for it.
struct RangeCheck {
  std::string node;       // "node 'fc1' (Gemm)"
  std::string what;       // "product before truncation", "DReLU input", "output"
  double magnitude = 0;   // bound on |value| in real units
  int scale = 1;          // the ring holds value * 2^(scale * frac_bits)
  double bound_bits = 0;  // log2 of the largest |value| in ring units (-inf for 0)
  int limit_bits = 63;    // |value| must stay below 2^limit_bits
  bool fits() const { return bound_bits < limit_bits; }
};

struct RangeReport {
  int frac_bits = 12;
  // True when the bounds hold for every input in the range (interval analysis alone); false for
  // estimates anchored on probe inputs (analyze_ranges with `observed`).
  bool guaranteed = true;
  // With an estimate: the worst-case check that did not fit (why nothing is guaranteed).
  std::optional<RangeCheck> worst_case;
  std::vector<RangeCheck> checks;  // in op order
  // Bounds on the real (decoded) value of every op output, by op: the widest channel.
  std::map<std::string, Interval> outputs;

  const RangeCheck* first_failure() const;  // nullptr when everything fits
  // min over checks of limit - bound (bits to spare; negative when something overflows).
  double headroom_bits() const;
};

// Per value id of the lowered graph: per-channel ranges seen on probe inputs.
using ObservedRanges = std::vector<std::vector<Interval>>;

// The analysis of `model` (held by the server: real weights) at `frac_bits`. `input` has one
// interval per input channel (or one for all), already normalised. With `observed`, every op's
// output interval is replaced by the observed one before the next op is analysed: the checks
// then bound each op for inputs like the probes (one layer of interval arithmetic each), not
// for every input.
RangeReport analyze_ranges(const SecureModel& model, const std::vector<Interval>& input,
                           int frac_bits, const DreluParams& drelu,
                           const ObservedRanges* observed = nullptr);

// Runs the float model (`model`, the server's, BatchNormalization folded as in `secure`) on
// `probes` inputs from `input` (the two corners and uniform random images, fixed seed) and
// records every op output's per-channel range.
ObservedRanges probe_ranges(const SecureModel& secure, const model::Model& model,
                            const std::vector<Interval>& input, int probes);

// The input intervals the client's images map to: `range` normalised per channel as the model's
// metadata says.
std::vector<Interval> normalized_input(const model::Model& model, const InputRange& range);

// The server's check before a session, over input_range_of(model) at `frac_bits`:
//  1. interval analysis; if every check fits, the report is a guarantee;
//  2. otherwise (deep networks: interval bounds grow by the weights' l1 norm per layer, far
//     beyond what any input reaches) the estimate on kRangeProbes probe inputs; if that fits
//     too, the session runs and the report says that overflow is not excluded, and where;
//  3. otherwise throws InvalidArgument naming the first op that overflows, its bound and the
//     limit, and the largest frac_bits that would fit (if any).
RangeReport check_fixed_point_range(const model::Model& model, const SecureModel& secure,
                                    int frac_bits, const DreluParams& drelu);

// One line for logs and reports: the fixed point, the bits to spare, guaranteed or not.
std::string describe_range(const RangeReport& report);

}  // namespace veil::mpc

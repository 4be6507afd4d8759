// Freivalds' check (Freivalds 1977; Slalom, Tramer & Boneh, ICLR 2019, section 4.1, does it over
// Z_P) of a float32 linear layer's result, for the schemes that outsource float weights
// (ShadowNet, hardened). The accelerator's reply Y' [B, M, ...] to x is checked through
// k = rounds secret sign vectors r in {-1, +1}^M: sum_m r_m Y'_m must equal x (*) w_r with
// w_r = sum_m r_m W'_m (one filter per round, precomputed), at every output position, within a
// rigorous float32 error bound (see float_check.cpp for its derivation).
//
// What it guarantees (docs/SPLIT.md): a reply with one wrong element whose error exceeds twice
// the tolerance at that position is rejected whatever r is (every round sees the error with
// weight +-1, nothing can cancel it); a reply with several wrong elements, one of which is off
// by more than twice the tolerance, passes with probability <= 2^-k over r (condition on every
// sign but that element's: of the two values r_m = +-1 leaves, at most one lands inside the
// accepting interval). An honest reply is never rejected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "veil/core/random.hpp"
#include "veil/core/tensor.hpp"
#include "veil/split/linear_layer.hpp"

namespace veil::split {

class FloatFreivalds {
 public:
  // `layer`: the outsourced geometry; `weight`: the outsourced weight W' [M, ...]. rounds >= 1.
  FloatFreivalds(const LinearLayer& layer, Tensor weight, int rounds, AesCtrPrg& prg);

  // Throws IntegrityError when y is not weight (*) x within the float32 bound (or is not
  // finite). After a rejection the sign vectors are drawn anew, so what the accelerator learns
  // from being caught says nothing about the vectors that check its next replies.
  void check(const Tensor& x, const Tensor& y);

  // The tolerance at every output position of weight (*) x: [B, 1, ...] (tests).
  Tensor tolerance(const Tensor& x);

  int rounds() const { return rounds_; }
  // 2^-rounds: the chance that a reply with an element off by more than twice the tolerance
  // passes (0 for a single such element; see above).
  double false_accept_bound() const;
  size_t bytes() const;

 private:
  void draw();

  LinearLayer geometry_;  // M output channels
  Tensor weight_;         // W', kept to draw new sign vectors after a rejection
  int rounds_;
  AesCtrPrg prg_;
  std::vector<float> signs_;  // [rounds, M]
  Tensor checks_;             // w_r for every round: [rounds, ...]
  Tensor abs_sum_;            // sum_m |W'_m|: [1, ...], for the error bound
  double bound_factor_ = 0;
  std::optional<LinearEngine> check_engine_;  // x (*) checks_, rebuilt when they are redrawn
  std::optional<LinearEngine> bound_engine_;  // |x| (*) abs_sum_
};

}  // namespace veil::split

// Step 1 of the attack on ShadowNet's weight transform (veil/split/attack.hpp): from the
// outsourced weights alone, find which slots hold real filters, which fake filter each was
// combined with, and its scale.
//
// ShadowNet gives the accelerator W'[pi(n)] = (W_n - R_rho(n)) / s_n and W'[pi(N + j)] = R_j, so
// W_n = s_n W'_a + W'_b for a = pi(n), b = pi(N + rho(n)): every real slot has one fake partner
// it is strongly correlated with (|cos| ~ 1/sqrt 2 when |W_n| ~ |R|, whatever the dimension),
// while unrelated filters have |cos| ~ 1/sqrt(dim). TEESlice (S&P 2024) pairs slots by that
// low-variance criterion; GroupCover (ICML 2024) by cosine similarity, as done here.
#pragma once

#include <cstdint>
#include <vector>

namespace veil::split {

struct FilterPair {
  int64_t real = 0;   // the slot holding (W_n - R) / s_n
  int64_t fake = 0;   // the slot holding R
  double cosine = 0;  // |cos(W'_real, W'_fake)|
  double scale = 0;   // the estimate of s_n
};

struct LayerPairing {
  std::vector<FilterPair> pairs;  // one per real filter, in slot order of `real`
  std::vector<int64_t> fakes;     // the slots judged fake
  // How far the mean best-partner |cos| of the layer lies above that of the same weights mixed
  // by random orthogonal matrices (which destroy any pairing), in standard deviations of the
  // latter. ShadowNet layers score far above 4, a dense mixing around 0.
  double confidence = 0;
  bool claimed = false;  // confidence >= kPairingThreshold: the pairs mean something
};

inline constexpr double kPairingThreshold = 4.0;

// rows: `slots` outsourced filters of `dim` values each (row-major); real_count: the layer's
// number of real filters N (from the architecture). The scale of each pair is chosen so that the
// estimated filter has the squared norm of the fake filters (ShadowNet draws them with the
// layer's weight statistics), taking the larger root (s_n > 0); when no root exists, the
// least-squares scale -<W'_a, W'_b> / ||W'_a||^2 (the low-variance filter). `seed` drives the
// random rotations of the confidence test. Throws InvalidArgument when real_count is not in
// [1, slots) or the size does not match.
LayerPairing pair_filters(const std::vector<double>& rows, int64_t slots, int64_t dim,
                          int64_t real_count, uint64_t seed);

// The estimated real filters, one per pair in the order of `pairing.pairs`:
// scale * W'[real] + W'[fake] ([pairs x dim], row-major).
std::vector<double> estimate_filters(const std::vector<double>& rows, int64_t dim,
                                     const LayerPairing& pairing);

}  // namespace veil::split

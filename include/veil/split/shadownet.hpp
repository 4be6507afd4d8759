// ShadowNet (Sun et al., S&P 2023): fake filters, random scales, a channel permutation; a fixed
// input mask per layer after the first.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/split/scheme.hpp"

namespace veil::split {

std::unique_ptr<LayerScheme> make_shadownet(const LinearLayer& layer, const SchemeOptions& options);

// What a ShadowNet layer keeps secret. The outsourced weight W' [M, ...] has, for real filter n,
// W'[slot[n]] = (W_n - R_partner[n]) / scale[n], and for fake filter j, W'[slot[N + j]] = R_j.
struct ShadowNetSecrets {
  std::vector<int64_t> slot;     // pi, M entries
  std::vector<int64_t> partner;  // rho, N entries in [0, M - N)
  std::vector<float> scale;      // s_n, N entries
  Tensor mask;                   // [1, input...]; empty for the first layer
  Tensor mask_product;           // mask (*) W: [1, output...]; empty for the first layer
};

// The secrets of a scheme made by make_shadownet (tests, and scoring attacks); throws
// InvalidArgument for another scheme.
const ShadowNetSecrets& shadownet_secrets(const LayerScheme& scheme);

}  // namespace veil::split

// The attack's reading of the accelerator's view (veil/split/attack.hpp), layer by layer: which
// offloaded layer feeds which, what each received and sent as numbers, the fixed masks estimated
// from it, and the steps that use them (matching samples, pairing from activations, calibration,
// agreement of a candidate's logits with the view). Private to src/split/attack.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/model/graph.hpp"
#include "veil/split/field.hpp"
#include "veil/split/filter_pairing.hpp"
#include "veil/split/partition.hpp"
#include "veil/split/transcript.hpp"

namespace veil::split::attack_detail {

struct Values {
  Shape shape;
  std::vector<double> v;
};

Values values_of(const std::variant<Tensor, FieldTensor>& p);

std::optional<size_t> next_linear(const Partition& p, size_t l);

struct Recovery {
  std::string kind = "none";
  LayerPairing pairing;
  std::vector<double> rows;      // the outsourced weights, [slots x dim]
  std::vector<double> filters;   // recovered, [N x dim], in pair order until placed
  std::vector<int64_t> channel;  // pair r -> output channel (identity until un-permuted)
  bool unpermuted = false;
  bool field = false;
  std::vector<double> bias;  // by output channel; zero unless calibrated
  int64_t calibrated = 0;    // filters whose scale and bias were fitted
};

std::pair<int64_t, int64_t> next_grid(const LinearLayer& layer, const LinearLayer& next, int64_t n);

int64_t activation_samples(const Transcript& view, size_t l, size_t next, const Recovery& r,
                           int64_t n, std::pair<int64_t, int64_t> grid, std::vector<double>& x,
                           std::vector<double>& y, std::optional<size_t> skip_layer,
                           std::vector<double>& skip, const Recovery* partner = nullptr);

std::vector<double> estimated_mask(const Transcript& view, const Partition& part, size_t l);

bool pair_by_activations(const Transcript& view, const Partition& part, size_t l, size_t next,
                         Recovery& r);

struct Residual {
  size_t layer = 0;
  bool is_output = false;  // the other layer's output (projection) rather than its input
};

std::optional<Residual> known_residual(const Partition& part, size_t l, size_t next);

std::vector<double> mask_contribution(const Transcript& view, const Partition& part, size_t l);

void calibrate_layer(const Transcript& view, const Partition& part, size_t l, size_t next,
                     std::pair<int64_t, int64_t> grid, std::vector<Recovery>& rec);

double transcript_agreement(model::Model& m, const Transcript& view, const Partition& part,
                            size_t out_layer, const Recovery& r, int threads);

}  // namespace veil::split::attack_detail

// Per-channel input normalisation x' = (x - mean[c]) / std[c], applied to [N, C, H, W] batches.
// Models carry it in their metadata ("veil.normalize.mean" / "veil.normalize.std").
#pragma once

#include <string>
#include <vector>

#include "veil/core/tensor.hpp"

namespace veil::data {

struct Dataset;

struct Normalization {
  std::vector<float> mean;  // one value, or one per channel; empty = identity
  std::vector<float> std;

  bool identity() const { return mean.empty(); }
  void apply(Tensor& batch) const;  // in place

  // "0.1307,0.2" style lists; throws InvalidArgument on a bad list or a non-positive std.
  static Normalization parse(const std::string& mean_csv, const std::string& std_csv);
  // "MEAN,STD" as the CLI's --normalize takes it (one mean and one std for every channel).
  static Normalization parse_pair(const std::string& mean_std);
  // Per-channel mean and standard deviation of a dataset's images.
  static Normalization fit(const Dataset& data);

  std::string mean_csv() const;
  std::string std_csv() const;
};

}  // namespace veil::data

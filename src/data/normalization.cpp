#include "veil/data/normalization.hpp"

#include <cmath>
#include <sstream>

#include "veil/core/error.hpp"
#include "veil/data/dataset.hpp"

namespace veil::data {

namespace {

std::vector<float> parse_csv(const std::string& csv, const char* what) {
  std::vector<float> out;
  std::stringstream ss(csv);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      float v = std::stof(item, &used);
      if (used != item.size() || !std::isfinite(v)) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (const std::exception&) {
      throw InvalidArgument(std::string("bad ") + what + " value '" + item + "' in '" + csv + "'");
    }
  }
  if (out.empty()) throw InvalidArgument(std::string("empty ") + what + " list");
  return out;
}

std::string to_csv(const std::vector<float>& v) {
  std::ostringstream os;
  os.precision(9);
  for (size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
  return os.str();
}

}  // namespace

Normalization Normalization::parse(const std::string& mean_csv, const std::string& std_csv) {
  Normalization n;
  n.mean = parse_csv(mean_csv, "mean");
  n.std = parse_csv(std_csv, "std");
  if (n.mean.size() != n.std.size())
    throw InvalidArgument("normalisation has " + std::to_string(n.mean.size()) + " means but " +
                          std::to_string(n.std.size()) + " standard deviations");
  for (float s : n.std)
    if (!(s > 0)) throw InvalidArgument("normalisation std must be positive");
  return n;
}

Normalization Normalization::parse_pair(const std::string& mean_std) {
  auto v = parse_csv(mean_std, "--normalize");
  if (v.size() != 2) throw InvalidArgument("--normalize takes MEAN,STD (two numbers)");
  return parse(std::to_string(v[0]), std::to_string(v[1]));
}

Normalization Normalization::fit(const Dataset& data) {
  const auto& s = data.images.shape();
  if (s.size() != 4 || s[0] == 0)
    throw InvalidArgument("cannot fit normalisation on an empty dataset");
  int64_t n = s[0], c = s[1], hw = s[2] * s[3];
  auto x = data.images.floats();
  Normalization out;
  for (int64_t ch = 0; ch < c; ++ch) {
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float* p = x.data() + (i * c + ch) * hw;
      for (int64_t j = 0; j < hw; ++j) {
        sum += p[j];
        sq += static_cast<double>(p[j]) * p[j];
      }
    }
    double cnt = static_cast<double>(n * hw);
    double mean = sum / cnt;
    double var = std::max(sq / cnt - mean * mean, 1e-12);
    out.mean.push_back(static_cast<float>(mean));
    out.std.push_back(static_cast<float>(std::sqrt(var)));
  }
  return out;
}

void Normalization::apply(Tensor& batch) const {
  if (identity()) return;
  if (batch.rank() < 2) throw InvalidArgument("normalisation needs a [N, C, ...] batch");
  int64_t n = batch.dim(0), c = batch.dim(1);
  if (mean.size() != 1 && static_cast<int64_t>(mean.size()) != c)
    throw InvalidArgument("normalisation has " + std::to_string(mean.size()) +
                          " channels, input has " + std::to_string(c));
  int64_t inner = c ? batch.numel() / (n * c) : 0;
  float* x = batch.data();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch) {
      size_t k = mean.size() == 1 ? 0 : static_cast<size_t>(ch);
      float m = mean[k], inv = 1.0f / std[k];
      float* p = x + (i * c + ch) * inner;
      for (int64_t j = 0; j < inner; ++j) p[j] = (p[j] - m) * inv;
    }
}

std::string Normalization::mean_csv() const { return to_csv(mean); }
std::string Normalization::std_csv() const { return to_csv(std); }

}  // namespace veil::data

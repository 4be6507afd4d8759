// The images the client feeds a secure-inference session: the test split of a dataset or an
// .npy tensor, `n` images from `offset`. `veil mpc party` (the client) and `veil mpc run` (for
// its plaintext reference) both select them here, so both apply the same checks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/model/graph.hpp"

namespace veil::mpc {

struct ClientInputSpec {
  std::string data = "fashion-mnist";  // dataset name or directory (used when npy is empty)
  std::string npy;                     // a float32 [N, ...] tensor instead of a dataset
  int64_t n = 0;                       // images to take; 0 = all from `offset` on
  int64_t offset = 0;                  // first image
};

struct ClientInput {
  Tensor images;                // float32 [n, ...], not normalised
  std::vector<int32_t> labels;  // empty unless the images came from a labelled dataset
  int64_t size() const { return images.rank() > 0 ? images.shape()[0] : 0; }
};

// Upper bound on n and offset: keeps offset + n and the batch plan far from overflow.
inline constexpr int64_t kMaxClientImages = int64_t{1} << 31;

// Selects the images. Throws InvalidArgument unless the source holds float32 [N, ...] data,
// 0 <= n, offset <= kMaxClientImages and at least one image lies at or after `offset`; with
// `model_input`, also unless the images have the model's input shape (check_input_shape).
ClientInput select_client_input(const ClientInputSpec& spec,
                                const std::optional<Shape>& model_input = std::nullopt);

// The model's input shape with batch dimension `batch`. Throws MalformedInput for a model
// without inputs, Unsupported unless every non-batch dimension is fixed.
Shape model_input_shape(const model::Graph& graph, int64_t batch);

// Throws InvalidArgument unless `images` is [N, ...] with the per-image shape of `model_input`
// (whose batch dimension is ignored).
void check_input_shape(const Tensor& images, const Shape& model_input);

}  // namespace veil::mpc

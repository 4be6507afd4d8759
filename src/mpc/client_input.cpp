#include "veil/mpc/client_input.hpp"

#include <algorithm>

#include "veil/core/error.hpp"
#include "veil/data/dataset.hpp"
#include "veil/data/npy.hpp"

namespace veil::mpc {
namespace {

// Images [offset, offset + n) of t, n = 0 meaning all from offset on.
Tensor select_rows(const Tensor& t, int64_t offset, int64_t n, const std::string& source) {
  if (t.rank() < 2 || t.dtype() != DType::Float32)
    throw InvalidArgument(source + ": expected a float32 [N, ...] tensor");
  const int64_t total = t.shape()[0];
  if (offset >= total)
    throw InvalidArgument(source + ": offset " + std::to_string(offset) + " is beyond its " +
                          std::to_string(total) + " images");
  const int64_t count = n > 0 ? std::min(n, total - offset) : total - offset;
  const int64_t per = t.numel() / total;
  Shape s = t.shape();
  s[0] = count;
  return Tensor::from_floats(
      s, std::vector<float>(t.data() + offset * per, t.data() + (offset + count) * per));
}

}  // namespace

ClientInput select_client_input(const ClientInputSpec& spec,
                                const std::optional<Shape>& model_input) {
  if (spec.n < 0 || spec.offset < 0 || spec.n > kMaxClientImages || spec.offset > kMaxClientImages)
    throw InvalidArgument("client input: n and offset must be in [0, 2^31]");
  ClientInput in;
  if (!spec.npy.empty()) {
    in.images = select_rows(data::read_npy(spec.npy), spec.offset, spec.n, spec.npy);
  } else {
    data::Dataset ds =
        data::load_dataset(spec.data, data::Split::Test, spec.n > 0 ? spec.offset + spec.n : 0);
    if (spec.offset >= ds.size())
      throw InvalidArgument(spec.data + ": offset " + std::to_string(spec.offset) +
                            " is beyond its " + std::to_string(ds.size()) + " test images");
    const int64_t count = ds.size() - spec.offset;
    in.images = ds.batch(spec.offset, count);  // float32 [count, C, H, W] by construction
    in.labels = ds.batch_labels(spec.offset, count);
  }
  if (model_input) check_input_shape(in.images, *model_input);
  return in;
}

Shape model_input_shape(const model::Graph& g, int64_t batch) {
  if (g.inputs.empty()) throw MalformedInput("the model has no input");
  Shape s = g.inputs[0].shape;
  if (s.empty()) throw Unsupported("the model's input must have a batch dimension");
  s[0] = batch;
  for (size_t i = 1; i < s.size(); ++i)
    if (s[i] <= 0) throw Unsupported("the model's input must have fixed non-batch dimensions");
  return s;
}

void check_input_shape(const Tensor& images, const Shape& model_input) {
  Shape want = model_input;
  if (!want.empty() && images.rank() > 0) want[0] = images.shape()[0];
  if (images.shape() != want)
    throw InvalidArgument("the input has shape " + shape_to_string(images.shape()) +
                          ", the model expects " + shape_to_string(want));
}

}  // namespace veil::mpc

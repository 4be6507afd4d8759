#include "veil/split/field.hpp"

#include "veil/core/error.hpp"

namespace veil::split {

FieldTensor apply_linear_field(const LinearLayer&, const FieldTensor&, const FieldTensor&, int) {
  throw Unsupported("split: field arithmetic is not built yet");
}

}  // namespace veil::split

#include "veil/split/slalom.hpp"

#include "veil/core/error.hpp"

namespace veil::split {

std::unique_ptr<LayerScheme> make_slalom(const LinearLayer&, const SchemeOptions&) {
  throw Unsupported("split: the slalom scheme is not built yet");
}

}  // namespace veil::split

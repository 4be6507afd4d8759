#include "veil/split/darknight.hpp"

#include "veil/core/error.hpp"

namespace veil::split {

std::unique_ptr<LayerScheme> make_darknight(const LinearLayer&, const SchemeOptions&) {
  throw Unsupported("split: the darknight scheme is not built yet");
}

}  // namespace veil::split

#include "veil/split/hardened.hpp"

#include "veil/core/error.hpp"

namespace veil::split {

std::unique_ptr<LayerScheme> make_hardened(const LinearLayer&, const SchemeOptions&) {
  throw Unsupported("split: the hardened scheme is not built yet");
}

}  // namespace veil::split

#include "veil/split/shadownet.hpp"

#include "veil/core/error.hpp"

namespace veil::split {

std::unique_ptr<LayerScheme> make_shadownet(const LinearLayer&, const SchemeOptions&) {
  throw Unsupported("split: the shadownet scheme is not built yet");
}

}  // namespace veil::split

#include "veil/split/plain.hpp"

#include "veil/core/error.hpp"
#include "veil/split/restore.hpp"

namespace veil::split {
namespace {

class Plain final : public LayerScheme {
 public:
  explicit Plain(const LinearLayer& layer) : layer_(layer) {}

  OutsourcedLayer outsource() override { return outsourced_geometry(layer_, layer_.weight); }

  std::vector<Payload> encode(const Tensor& x) override { return {x}; }

  Tensor decode(std::vector<Payload> replies) override {
    if (replies.size() != 1 || !std::holds_alternative<Tensor>(replies[0]))
      throw ProtocolError("split: plain expects one float reply");
    Tensor y = std::move(std::get<Tensor>(replies[0]));
    add_bias(layer_, y);
    return y;
  }

  size_t trusted_bytes() const override { return 0; }

 private:
  LinearLayer layer_;
};

}  // namespace

std::unique_ptr<LayerScheme> make_plain(const LinearLayer& layer, const SchemeOptions&) {
  return std::make_unique<Plain>(layer);
}

}  // namespace veil::split

#include "veil/split/accelerator.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "veil/core/error.hpp"
#include "veil/core/random.hpp"
#include "veil/split/transcript.hpp"

namespace veil::split {
namespace {

// One element of each payload gets an error far above any rounding: (1 + max|y|) x U(1, 10)
// for floats, a uniform nonzero offset in Z_P for field elements.
void corrupt(Payload& p, AesCtrPrg& prg) {
  if (auto* t = std::get_if<Tensor>(&p)) {
    if (t->numel() == 0) return;
    float peak = 0;
    for (int64_t i = 0; i < t->numel(); ++i) peak = std::max(peak, std::fabs(t->data()[i]));
    const auto i = static_cast<int64_t>(prg.uniform(static_cast<uint64_t>(t->numel())));
    const double u = 1.0 + 9.0 * static_cast<double>(prg.next_u64() >> 11) * 0x1p-53;
    const double sign = (prg.next_u64() & 1) ? 1.0 : -1.0;
    t->data()[i] += static_cast<float>(sign * (1.0 + peak) * u);
  } else {
    auto& f = std::get<FieldTensor>(p);
    if (f.values.empty()) return;
    const auto i = prg.uniform(f.values.size());
    f.values[i] = (f.values[i] + 1 + prg.uniform(kFieldPrime - 1)) % kFieldPrime;
  }
}

class LocalAccelerator final : public Accelerator {
 public:
  explicit LocalAccelerator(const AcceleratorOptions& o) : options_(o), prg_(random_seed()) {
    if (o.inject_faults < 0 || o.fault_stride < 1)
      throw InvalidArgument("split: inject_faults must be >= 0 and fault_stride >= 1");
  }

  void load(std::vector<OutsourcedLayer> layers) override {
    layers_ = std::move(layers);
    engines_.clear();
    if (options_.record != nullptr) options_.record->layers = layers_;
  }

  std::vector<Payload> compute(size_t layer, std::vector<Payload> inputs) override {
    if (layer >= layers_.size())
      throw InvalidArgument("split: no layer " + std::to_string(layer) + " on the accelerator");
    const OutsourcedLayer& o = layers_[layer];
    std::vector<Payload> out;
    out.reserve(inputs.size());
    for (const Payload& p : inputs) {
      if (const Tensor* w = std::get_if<Tensor>(&o.weight)) {
        const Tensor* x = std::get_if<Tensor>(&p);
        if (x == nullptr) throw InvalidArgument("split: a field payload for a float layer");
        auto it = engines_.find(layer);
        if (it == engines_.end())
          it =
              engines_.emplace(layer, LinearEngine(linear_geometry(o), *w, options_.threads)).first;
        out.emplace_back(it->second.forward(*x));
      } else {
        out.push_back(apply_outsourced(o, p, options_.threads));
      }
    }
    if (injected_ < options_.inject_faults && calls_ % options_.fault_stride == 0) {
      for (Payload& p : out) corrupt(p, prg_);
      ++injected_;
    }
    ++calls_;
    if (options_.record != nullptr)
      options_.record->queries.push_back({layer, std::move(inputs), out});
    return out;
  }

  int64_t faults_injected() const override { return injected_; }

 private:
  AcceleratorOptions options_;
  AesCtrPrg prg_;  // where the faults go (not a secret)
  std::vector<OutsourcedLayer> layers_;
  std::map<size_t, LinearEngine> engines_;
  int64_t calls_ = 0, injected_ = 0;
};

}  // namespace

std::unique_ptr<Accelerator> make_local_accelerator(const AcceleratorOptions& options) {
  return std::make_unique<LocalAccelerator>(options);
}

LinearLayer linear_geometry(const OutsourcedLayer& layer) {
  LinearLayer l;
  l.name = "outsourced";
  l.kind = layer.kind;
  l.conv = layer.conv;
  l.input_shape = layer.input_shape;
  l.output_shape = layer.output_shape;
  return l;
}

Payload apply_outsourced(const OutsourcedLayer& layer, const Payload& input, int threads) {
  const LinearLayer g = linear_geometry(layer);
  if (const Tensor* w = std::get_if<Tensor>(&layer.weight)) {
    const Tensor* x = std::get_if<Tensor>(&input);
    if (x == nullptr) throw InvalidArgument("split: a field payload for a float layer");
    return apply_linear(g, *w, *x, threads);
  }
  const FieldTensor* x = std::get_if<FieldTensor>(&input);
  if (x == nullptr) throw InvalidArgument("split: a float payload for a field layer");
  return apply_linear_field(g, std::get<FieldTensor>(layer.weight), *x, threads);
}

}  // namespace veil::split

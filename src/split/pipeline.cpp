#include "veil/split/pipeline.hpp"

#include <chrono>
#include <map>
#include <optional>

#include "veil/core/error.hpp"
#include "veil/nn/executor.hpp"
#include "veil/split/restore.hpp"

namespace veil::split {
namespace {

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int64_t payload_bytes(const std::vector<Payload>& ps) {
  int64_t n = 0;  // 4 bytes per element on the wire: float32, or a field element < 2^31
  for (const Payload& p : ps)
    n += 4 * (std::holds_alternative<Tensor>(p) ? std::get<Tensor>(p).numel()
                                                : std::get<FieldTensor>(p).numel());
  return n;
}

}  // namespace

int64_t PipelineStats::faults_detected() const {
  int64_t n = 0;
  for (const auto& l : layers) n += l.faults_detected;
  return n;
}
int64_t PipelineStats::bytes_sent() const {
  int64_t n = 0;
  for (const auto& l : layers) n += l.bytes_sent;
  return n;
}
int64_t PipelineStats::bytes_received() const {
  int64_t n = 0;
  for (const auto& l : layers) n += l.bytes_received;
  return n;
}

struct Pipeline::Impl {
  PipelineOptions options;
  Accelerator* accelerator = nullptr;
  Partition part;  // the trusted sub-models live here; the executors point into it
  std::vector<std::unique_ptr<nn::Executor>> executors;
  std::vector<std::unique_ptr<LayerScheme>> schemes;
  std::map<size_t, LinearEngine> fallback;  // a layer recomputed after a refused reply
  PipelineStats stats;

  Tensor run_linear(size_t i, const Tensor& x) {
    const LinearLayer& layer = part.linear[i].layer;
    LayerStats& s = stats.layers[i];
    auto t0 = std::chrono::steady_clock::now();
    std::vector<Payload> sent = schemes[i]->encode(x);
    s.encode_s += since(t0);
    s.bytes_sent += payload_bytes(sent);
    t0 = std::chrono::steady_clock::now();
    std::vector<Payload> replies = accelerator->compute(i, std::move(sent));
    s.accelerator_s += since(t0);
    s.bytes_received += payload_bytes(replies);
    t0 = std::chrono::steady_clock::now();
    try {
      Tensor y = schemes[i]->decode(std::move(replies));
      s.decode_s += since(t0);
      return y;
    } catch (const IntegrityError&) {
      // The accelerator lied: count it and do the layer here, so the answer stays right.
      ++s.faults_detected;
      auto it = fallback.find(i);
      if (it == fallback.end())
        it = fallback.emplace(i, LinearEngine(layer, layer.weight, options.threads)).first;
      Tensor y = it->second.forward(x);
      add_bias(layer, y);
      s.decode_s += since(t0);
      return y;
    }
  }
};

Pipeline::Pipeline(const model::Model& model, const PipelineOptions& options,
                   Accelerator& accelerator)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  impl_->accelerator = &accelerator;
  impl_->part = split::partition(model);
  nn::ExecutorOptions eo;
  eo.threads = options.threads;
  for (auto& step : impl_->part.trusted)
    impl_->executors.push_back(std::make_unique<nn::Executor>(step.sub, eo));
  std::vector<OutsourcedLayer> outsourced;
  for (const auto& step : impl_->part.linear) {
    impl_->schemes.push_back(make_layer_scheme(options.scheme, step.layer, options.scheme_options));
    outsourced.push_back(impl_->schemes.back()->outsource());
    LayerStats s;
    s.name = step.layer.name;
    s.macs_per_image = step.layer.macs_per_image();
    impl_->stats.layers.push_back(std::move(s));
  }
  accelerator.load(std::move(outsourced));
}

Pipeline::~Pipeline() = default;

void Pipeline::precompute(int64_t batch, int64_t queries) {
  if (batch < 1 || queries < 0) throw InvalidArgument("split: precompute needs batch >= 1");
  auto t0 = std::chrono::steady_clock::now();
  for (auto& s : impl_->schemes) s->precompute(batch, queries);
  impl_->stats.offline_s += since(t0);
}

Tensor Pipeline::infer(const Tensor& x) {
  Impl& m = *impl_;
  if (x.shape().empty() || x.shape()[0] < 1)
    throw InvalidArgument("split: the input needs a batch dimension");
  std::map<std::string, Tensor> values;
  values[m.part.input] = x;
  auto value = [&](const std::string& name) -> const Tensor& {
    auto it = values.find(name);
    if (it == values.end()) throw Error("split: value '" + name + "' is not computed yet");
    return it->second;
  };
  for (const Step& step : m.part.order) {
    if (step.linear) {
      const LinearStep& ls = m.part.linear[step.index];
      const Tensor& in = value(ls.input);
      // A dense layer reads [B, C]; its producer may have kept [B, C, 1, 1]-style shapes.
      Tensor y = m.run_linear(step.index, in);
      values[ls.output] = std::move(y);
    } else {
      auto t0 = std::chrono::steady_clock::now();
      const TrustedStep& ts = m.part.trusted[step.index];
      std::vector<Tensor> ins;
      for (const auto& name : ts.inputs) ins.push_back(value(name));
      std::vector<Tensor> outs = m.executors[step.index]->forward(ins);
      for (size_t i = 0; i < outs.size(); ++i) values[ts.outputs[i]] = std::move(outs[i]);
      m.stats.trusted_steps_s += since(t0);
    }
  }
  m.stats.images += x.shape()[0];
  return value(m.part.outputs.at(0));
}

const Partition& Pipeline::partition() const { return impl_->part; }
const PipelineStats& Pipeline::stats() const { return impl_->stats; }

size_t Pipeline::trusted_bytes() const {
  size_t n = 0;
  for (const auto& l : impl_->part.linear)
    n += 4 * static_cast<size_t>(l.layer.weight.numel() + l.layer.bias.numel());
  for (const auto& t : impl_->part.trusted)
    for (const auto& [name, tensor] : t.sub.graph.initializers)
      n += 4 * static_cast<size_t>(tensor.numel());
  for (const auto& s : impl_->schemes) n += s->trusted_bytes();
  return n;
}

double Pipeline::false_accept_bound() const {
  double b = 0;
  for (const auto& s : impl_->schemes) b = std::max(b, s->false_accept_bound());
  return b;
}

}  // namespace veil::split

#include "veil/lock/evaluate.hpp"

#include "veil/core/error.hpp"
#include "veil/nn/preprocess.hpp"
#include "veil/nn/trainer.hpp"

namespace veil::lock {

Tensor prepare_input(const model::Model& model, const Tensor& images) {
  Tensor x = images;
  // The model's own preprocessing travels in its metadata (veil/nn/preprocess.hpp).
  if (x.rank() == 4) nn::normalization_of(model).apply(x);
  if (!model.graph.inputs.empty()) {
    const auto& in = model.graph.inputs[0];
    if (in.shape.size() == 2 && x.rank() != 2) {
      int64_t n = x.dim(0);
      x.reshape({n, n ? x.numel() / n : 0});
    }
  }
  return x;
}

BatchForward forward_batch(nn::Executor& executor, const model::Model& model, const Tensor& images,
                           nn::Mode mode) {
  const int64_t n = images.rank() > 0 ? images.dim(0) : 0;
  BatchForward f;
  f.outputs = executor.forward({prepare_input(model, images)}, mode);
  if (f.outputs.empty()) throw MalformedInput("model has no outputs");
  f.logits = f.outputs[0];
  if (f.logits.rank() != 2) f.logits.reshape({n, f.logits.numel() / std::max<int64_t>(n, 1)});
  return f;
}

void backward_from_logits(nn::Executor& executor, const BatchForward& forward, Tensor logits_grad) {
  logits_grad.reshape(forward.outputs[0].shape());
  std::vector<Tensor> grads{std::move(logits_grad)};
  for (size_t i = 1; i < forward.outputs.size(); ++i)
    grads.emplace_back(forward.outputs[i].shape(), forward.outputs[i].dtype());
  executor.backward(grads);
}

Accuracy evaluate(nn::Executor& executor, const model::Model& model, const data::Dataset& dataset,
                  int64_t batch) {
  if (batch < 1) throw InvalidArgument("batch size must be >= 1");
  Accuracy acc;
  int64_t top1 = 0, top5 = 0;
  for (int64_t b = 0; b < dataset.size(); b += batch) {
    int64_t n = std::min(batch, dataset.size() - b);
    auto f = forward_batch(executor, model, dataset.batch(b, n), nn::Mode::Inference);
    nn::count_hits(f.logits, std::span<const int32_t>(dataset.labels).subspan(b, n), top1, top5);
  }
  acc.count = dataset.size();
  if (acc.count) {
    acc.top1 = static_cast<double>(top1) / acc.count;
    acc.top5 = static_cast<double>(top5) / acc.count;
  }
  return acc;
}

Accuracy evaluate(model::Model& model, const data::Dataset& dataset, int64_t batch) {
  nn::Executor exec(model);
  return evaluate(exec, model, dataset, batch);
}

}  // namespace veil::lock

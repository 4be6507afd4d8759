#include "veil/nn/trainer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>

#include "veil/core/error.hpp"
#include "veil/core/progress.hpp"
#include "veil/model/shape_inference.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/loss.hpp"

namespace veil::nn {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Random crop (after zero padding) and horizontal flip, per image, in place.
void augment(Tensor& batch, int64_t pad, bool flip, std::mt19937_64& rng) {
  const int64_t n = batch.dim(0), c = batch.dim(1), h = batch.dim(2), w = batch.dim(3);
  std::vector<float> tmp(static_cast<size_t>(c * h * w));
  std::uniform_int_distribution<int64_t> shift(-pad, pad);
  std::bernoulli_distribution coin(0.5);
  float* x = batch.data();
  for (int64_t i = 0; i < n; ++i) {
    float* img = x + i * c * h * w;
    int64_t dy = pad ? shift(rng) : 0, dx = pad ? shift(rng) : 0;
    bool mirror = flip && coin(rng);
    if (!dy && !dx && !mirror) continue;
    std::copy(img, img + c * h * w, tmp.begin());
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t xx = 0; xx < w; ++xx) {
          int64_t sy = y + dy, sx = (mirror ? w - 1 - xx : xx) + dx;
          img[(ch * h + y) * w + xx] = (sy < 0 || sy >= h || sx < 0 || sx >= w)
                                           ? 0.0f
                                           : tmp[static_cast<size_t>((ch * h + sy) * w + sx)];
        }
  }
}

}  // namespace

double learning_rate(const TrainOptions& o, int epoch) {
  switch (o.schedule) {
    case LrSchedule::Constant:
      return o.lr;
    case LrSchedule::Step:
      return o.lr * std::pow(o.step_gamma, epoch / std::max(1, o.step_epochs));
    case LrSchedule::Cosine:
      return 0.5 * o.lr * (1 + std::cos(M_PI * epoch / std::max(1, o.epochs)));
  }
  return o.lr;
}

int64_t count_hits(const Tensor& logits, std::span<const int32_t> labels, int64_t& top1,
                   int64_t& top5) {
  if (logits.rank() != 2 || logits.dim(0) != static_cast<int64_t>(labels.size()))
    throw InvalidArgument("logits " + shape_to_string(logits.shape()) + " do not match " +
                          std::to_string(labels.size()) + " labels");
  const int64_t n = logits.dim(0), c = logits.dim(1);
  const float* x = logits.data();
  int64_t non_finite = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x + i * c;
    const int32_t y = labels[static_cast<size_t>(i)];
    if (y < 0 || y >= c) throw InvalidArgument("label outside the model's classes");
    if (!std::all_of(row, row + c, [](float z) { return std::isfinite(z); })) {
      ++non_finite;
      continue;
    }
    int64_t rank = 0;
    for (int64_t j = 0; j < c; ++j) rank += row[j] > row[y] || (row[j] == row[y] && j < y);
    top1 += rank == 0;
    top5 += rank < 5;
  }
  return non_finite;
}

namespace {

// The logits' shape is inferred at import: a model that cannot produce [N, classes] is refused
// before a single image runs (a dimension unknown until run time is checked per batch).
void require_logits_output(const model::Model& model, int64_t classes) {
  if (model.graph.outputs.empty()) throw InvalidArgument("model output is not [N, classes] logits");
  const auto& out = model.graph.outputs[0];
  const auto it = model.graph.value_info.find(out.name);
  const Shape& shape =
      !out.shape.empty() || it == model.graph.value_info.end() ? out.shape : it->second.shape;
  if (shape.empty()) return;  // unknown
  if (shape.size() != 2)
    throw InvalidArgument(fmt::format("model output '{}' is {}, not [N, classes] logits", out.name,
                                      shape_to_string(shape)));
  if (shape[1] >= 0 && shape[1] < classes)
    throw InvalidArgument(
        fmt::format("model has {} outputs but the dataset has {} classes", shape[1], classes));
}

// Refuses a distillation feature that is not a node output of `g` (an input or a weight has no
// activation to match), before a single batch runs.
void require_feature(const model::Graph& g, const std::string& name, const char* which) {
  for (const auto& node : g.nodes)
    if (std::find(node.outputs.begin(), node.outputs.end(), name) != node.outputs.end()) return;
  throw InvalidArgument(
      fmt::format("distillation feature '{}' is not a value the {} computes", name, which));
}

// Appends `names` to the graph outputs (after the logits): the executor then keeps those values
// and takes their gradients.
void add_outputs(model::Model& m, const std::vector<std::string>& names) {
  for (const auto& n : names) m.graph.outputs.push_back({n, DType::Float32, {}});
}

// add_outputs for as long as it lives: the student is saved without them.
class ExtraOutputs {
 public:
  ExtraOutputs(model::Model& m, const std::vector<std::string>& names)
      : model_(m), saved_(m.graph.outputs) {
    add_outputs(m, names);
  }
  ~ExtraOutputs() { model_.graph.outputs = std::move(saved_); }
  ExtraOutputs(const ExtraOutputs&) = delete;
  ExtraOutputs& operator=(const ExtraOutputs&) = delete;

 private:
  model::Model& model_;
  std::vector<model::ValueInfo> saved_;
};

// A resume state that this run could have handed out: train() trusts nothing else about it.
void check_resume(const TrainState& at, const TrainOptions& o, int64_t n, int64_t steps) {
  auto refuse = [](const std::string& why) { throw InvalidArgument("resume: " + why); };
  if (at.epoch < 0 || at.epoch > o.epochs)
    refuse(fmt::format("{} epochs done, of a run of {}", at.epoch, o.epochs));
  if (at.step < 0 || at.step >= steps || (at.epoch == o.epochs && at.step != 0))
    refuse(fmt::format("step {} is outside an epoch of {} steps", at.step, steps));
  if (static_cast<int64_t>(at.history.size()) != at.epoch)
    refuse(fmt::format("{} epoch records for {} epochs done", at.history.size(), at.epoch));
  if (at.order.empty() ? at.epoch > 0 || at.step > 0 : static_cast<int64_t>(at.order.size()) != n)
    refuse(fmt::format("a sample order of {} for {} training images", at.order.size(), n));
  if (!at.order.empty()) {
    std::vector<char> hit(static_cast<size_t>(n), 0);
    for (int64_t i : at.order)
      if (i < 0 || i >= n || hit[static_cast<size_t>(i)]++)
        refuse("the sample order is not a permutation of the training images");
  }
  const int64_t seen = std::min(at.step * o.batch_size, n);
  if (at.seen != seen || at.correct < 0 || at.correct > at.seen || !std::isfinite(at.loss_sum) ||
      at.loss_sum < 0 || !std::isfinite(at.seconds) || at.seconds < 0)
    refuse("the running totals do not fit the step");
}

}  // namespace

std::string generator_state(const std::mt19937_64& rng) {
  std::ostringstream out;
  out << rng;
  return out.str();
}

// std::mt19937_64 writes its 312 state words and its position: 313 decimal numbers, the last at
// most 312. Anything else is refused, the position before the library reads it (its operator>>
// does not check it).
std::mt19937_64 generator_from_state(const std::string& text) {
  auto refuse = [] {
    throw InvalidArgument("the generator state is not one std::mt19937_64 wrote");
  };
  const auto last = text.find_last_of(' ');
  if (last == std::string::npos || text.size() - last - 1 < 1 || text.size() - last - 1 > 3 ||
      text.find_first_not_of("0123456789", last + 1) != std::string::npos ||
      std::stoi(text.substr(last + 1)) > 312)
    refuse();
  std::mt19937_64 rng;
  std::istringstream in(text);
  in >> rng;
  if (in.fail() || generator_state(rng) != text) refuse();
  return rng;
}

std::vector<std::string> stage_outputs(const model::Model& model) {
  model::Model shaped = model;
  model::infer_shapes(shaped);
  std::vector<std::pair<std::pair<int64_t, int64_t>, std::string>> stages;
  for (const auto& node : shaped.graph.nodes) {
    if ((node.op_type != "Relu" && node.op_type != "BlockRelu") || node.outputs.size() != 1)
      continue;
    const auto it = shaped.graph.value_info.find(node.outputs[0]);
    if (it == shaped.graph.value_info.end()) continue;
    const Shape& s = it->second.shape;
    if (s.size() != 4 || s[2] < 1 || s[3] < 1) continue;
    const std::pair<int64_t, int64_t> hw{s[2], s[3]};
    auto st =
        std::find_if(stages.begin(), stages.end(), [&](const auto& e) { return e.first == hw; });
    if (st == stages.end())
      stages.push_back({hw, node.outputs[0]});
    else
      st->second = node.outputs[0];
  }
  std::vector<std::string> names;
  for (auto& e : stages) names.push_back(std::move(e.second));
  return names;
}

EvalResult evaluate(model::Model& model, const data::Dataset& set, const EvalOptions& options) {
  if (options.batch_size <= 0) throw InvalidArgument("batch size must be positive");
  require_logits_output(model, set.num_classes);
  Executor exec(model);
  EvalResult r;
  auto t0 = Clock::now();
  ProgressBar bar("eval", set.size());
  bar.set_quiet(!options.progress);
  int64_t top1 = 0, top5 = 0;
  for (int64_t b = 0; b < set.size(); b += options.batch_size) {
    int64_t count = std::min(options.batch_size, set.size() - b);
    Tensor x = set.batch(b, count);
    options.normalization.apply(x);
    auto out = exec.forward({x});
    if (out.empty() || out[0].rank() != 2)
      throw InvalidArgument("model output is not [N, classes] logits");
    if (out[0].dim(1) < set.num_classes)
      throw InvalidArgument(fmt::format("model has {} outputs but the dataset has {} classes",
                                        out[0].dim(1), set.num_classes));
    r.non_finite +=
        count_hits(out[0], std::span<const int32_t>(set.labels).subspan(b, count), top1, top5);
    bar.update(b + count, fmt::format("top-1 {:.2f}%", 100.0 * top1 / (b + count)));
  }
  r.count = set.size();
  r.seconds = seconds_since(t0);
  r.top1 = r.count ? static_cast<double>(top1) / r.count : 0;
  r.top5 = r.count ? static_cast<double>(top5) / r.count : 0;
  r.images_per_s = r.seconds > 0 ? r.count / r.seconds : 0;
  bar.finish(fmt::format("top-1 {:.2f}%  top-5 {:.2f}%", 100 * r.top1, 100 * r.top5));
  return r;
}

std::vector<EpochStats> train(model::Model& model, const data::Dataset& train_set,
                              const data::Dataset* test, const TrainOptions& o,
                              const std::function<void(const EpochStats&)>& on_epoch) {
  if (o.epochs <= 0) throw InvalidArgument("--epochs must be positive");
  if (o.batch_size <= 0) throw InvalidArgument("--batch must be positive");
  if (!(o.lr > 0)) throw InvalidArgument("--lr must be positive");
  if (train_set.size() == 0) throw InvalidArgument("the training set is empty");
  const auto& features = o.distill.features;
  std::optional<model::Model> teacher_with_features;
  if (!features.empty()) {
    if (!o.distill.teacher) throw InvalidArgument("distillation features need a teacher");
    for (size_t k = 0; k < features.size(); ++k) {
      if (std::find(features.begin(), features.begin() + k, features[k]) != features.begin() + k)
        throw InvalidArgument("distillation feature '" + features[k] + "' is named twice");
      require_feature(model.graph, features[k], "student");
      require_feature(o.distill.teacher->graph, features[k], "teacher");
    }
    if (!(o.distill.feature_beta >= 0 && std::isfinite(o.distill.feature_beta)))
      throw InvalidArgument("the feature distillation weight must be finite and >= 0");
    teacher_with_features = *o.distill.teacher;  // the caller's teacher is left as it is
    add_outputs(*teacher_with_features, features);
  }
  ExtraOutputs student_features(model, features);
  ExecutorOptions eo;
  eo.trainable = o.trainable;
  Executor exec(model, eo);
  std::optional<Executor> teacher;
  if (o.distill.teacher) {
    require_logits_output(*o.distill.teacher, train_set.num_classes);
    teacher.emplace(teacher_with_features ? *teacher_with_features : *o.distill.teacher);
  }
  Sgd sgd(model, exec.trainable(), o.sgd);
  const int64_t steps = (train_set.size() + o.batch_size - 1) / o.batch_size;
  if (o.checkpoint_every < 0) throw InvalidArgument("the checkpoint interval must be >= 0");
  std::mt19937_64 rng(o.seed);
  std::vector<int64_t> order(static_cast<size_t>(train_set.size()));
  std::iota(order.begin(), order.end(), 0);
  TrainState at;  // where this call starts
  if (o.resume) {
    at = *o.resume;
    check_resume(at, o, train_set.size(), steps);
    sgd.restore_velocity(at.velocity);
    rng = generator_from_state(at.rng);
    if (!at.order.empty()) order = at.order;
  }
  std::vector<EpochStats> history = at.history;
  // The state after `step` steps of `epoch` (0-based), for on_checkpoint.
  auto snapshot = [&](int epoch, int64_t step, double loss_sum, int64_t correct, int64_t seen,
                      double seconds) {
    TrainState st;
    st.epoch = step == steps ? epoch + 1 : epoch;
    st.step = step == steps ? 0 : step;
    st.rng = generator_state(rng);
    st.order = order;
    if (st.step > 0) {
      st.loss_sum = loss_sum;
      st.correct = correct;
      st.seen = seen;
      st.seconds = seconds;
    }
    st.history = history;
    st.velocity = sgd.velocity();
    return st;
  };
  for (int epoch = at.epoch; epoch < o.epochs; ++epoch) {
    const bool continued = epoch == at.epoch && at.step > 0;
    EpochStats st;
    st.epoch = epoch + 1;
    st.lr = learning_rate(o, epoch);
    if (!continued) std::shuffle(order.begin(), order.end(), rng);
    auto t0 = Clock::now();
    const double seconds_before = continued ? at.seconds : 0;
    ProgressBar bar(fmt::format("epoch {}/{}", epoch + 1, o.epochs), train_set.size());
    bar.set_quiet(!o.progress);
    double loss_sum = continued ? at.loss_sum : 0;
    int64_t correct = continued ? at.correct : 0, seen = continued ? at.seen : 0;
    if (continued) bar.resume_at(seen);
    for (int64_t s = continued ? at.step : 0; s < steps; ++s) {
      int64_t begin = s * o.batch_size, count = std::min(o.batch_size, train_set.size() - begin);
      std::vector<int64_t> idx(order.begin() + begin, order.begin() + begin + count);
      Tensor x = train_set.batch(idx);
      if (o.crop_pad > 0 || o.flip) augment(x, o.crop_pad, o.flip, rng);
      Tensor teacher_x;
      if (teacher) {
        teacher_x = x;
        o.distill.normalization.apply(teacher_x);
      }
      o.normalization.apply(x);
      std::vector<int32_t> y(idx.size());
      for (size_t i = 0; i < idx.size(); ++i) y[i] = train_set.labels[static_cast<size_t>(idx[i])];
      auto out = exec.forward({x}, Mode::Training);
      std::vector<Tensor> taught;
      if (teacher) taught = teacher->forward({teacher_x});
      auto loss = teacher ? distillation_loss(out.at(0), taught.at(0), y, o.distill.alpha,
                                              o.distill.temperature)
                          : softmax_cross_entropy(out.at(0), y);
      std::vector<Tensor> grads;
      grads.push_back(std::move(loss.grad));
      for (size_t k = 0; k < features.size(); ++k) {
        auto at_loss =
            attention_transfer_loss(out.at(1 + k), taught.at(1 + k), o.distill.feature_beta);
        loss.loss += at_loss.loss;
        grads.push_back(std::move(at_loss.grad));
      }
      if (!std::isfinite(loss.loss))
        throw Error(fmt::format("training diverged at epoch {} step {} (loss is {}); lower --lr",
                                epoch + 1, s + 1, loss.loss));
      exec.backward(grads);
      sgd.step(exec.param_grads(), static_cast<float>(st.lr));
      exec.parameters_changed();
      loss_sum += loss.loss * count;
      correct += loss.correct;
      seen += count;
      bar.update(seen,
                 fmt::format("loss {:.4f}  acc {:.2f}%", loss_sum / seen, 100.0 * correct / seen));
      // Mid-epoch checkpoints; the epoch's last step is checkpointed after its evaluation.
      if (o.on_checkpoint && o.checkpoint_every > 0 && (s + 1) % o.checkpoint_every == 0 &&
          s + 1 < steps &&
          !o.on_checkpoint(
              snapshot(epoch, s + 1, loss_sum, correct, seen, seconds_before + seconds_since(t0))))
        return history;
    }
    st.seconds = seconds_before + seconds_since(t0);
    st.train_loss = loss_sum / seen;
    st.train_top1 = static_cast<double>(correct) / seen;
    st.images_per_s = seen / st.seconds;
    bar.finish(fmt::format("loss {:.4f}  acc {:.2f}%  {:.0f} img/s", st.train_loss,
                           100 * st.train_top1, st.images_per_s));
    if (test) {
      EvalOptions eo2;
      eo2.normalization = o.normalization;
      eo2.progress = false;
      auto ev = evaluate(model, *test, eo2);
      st.test_top1 = ev.top1;
      st.test_top5 = ev.top5;
    }
    history.push_back(st);
    if (on_epoch) on_epoch(st);
    if (o.on_checkpoint && !o.on_checkpoint(snapshot(epoch, steps, 0, 0, 0, 0)) &&
        epoch + 1 < o.epochs)
      return history;
  }
  return history;
}

}  // namespace veil::nn

#include "veil/nn/checkpoint.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <sstream>

#include "blobs.hpp"
#include "veil/core/error.hpp"
#include "veil/core/sha256.hpp"
#include "veil/model/zoo.hpp"
#include "veil/nn/sgd.hpp"
#include "veil/nn/trainer.hpp"

namespace veil::nn {
namespace {

using testing::blobs;

std::string rng_text(uint64_t seed, int draws) {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < draws; ++i) rng();
  std::ostringstream out;
  out << rng;
  return out.str();
}

Checkpoint sample_checkpoint() {
  Checkpoint c;
  c.run = "format=veil train 1\nlr=0.01\n";
  c.state.epoch = 2;
  c.state.step = 3;
  c.state.rng = rng_text(7, 5);
  c.state.order = {4, 0, 3, 1, 2, 5};
  c.state.loss_sum = 1.5;
  c.state.correct = 2;
  c.state.seen = 3;
  c.state.seconds = 0.25;
  for (int e = 1; e <= 2; ++e) {
    EpochStats s;
    s.epoch = e;
    s.lr = 0.1 / e;
    s.train_loss = 1.0 / e;
    s.test_top1 = 0.5;
    s.test_top5 = -1;
    c.state.history.push_back(s);
  }
  Tensor a({2, 3}), b({4});
  for (int i = 0; i < 6; ++i) a.floats()[i] = 0.5f * i - 1;
  for (int i = 0; i < 4; ++i) b.floats()[i] = static_cast<float>(i);
  c.weights = {{"a.weight", a}, {"b.bias", b}};
  c.state.velocity = {{"a.weight", {1, 2, 3, 4, 5, 6}}, {"b.bias", {0, 0, 0, -1}}};
  return c;
}

// The bytes of `c` as serialize_checkpoint writes them, with the digest recomputed after
// `edit` changed the body: what a parser sees from a writer that is wrong, not from a damaged
// disk.
std::vector<uint8_t> resealed(std::vector<uint8_t> bytes,
                              const std::function<void(std::vector<uint8_t>&)>& edit) {
  bytes.resize(bytes.size() - 32);
  edit(bytes);
  const auto d = sha256(bytes);
  bytes.insert(bytes.end(), d.begin(), d.end());
  return bytes;
}

TEST(Checkpoint, RoundTripsEveryField) {
  const Checkpoint c = sample_checkpoint();
  const auto bytes = serialize_checkpoint(c);
  const Checkpoint p = parse_checkpoint(bytes);
  EXPECT_EQ(p.run, c.run);
  EXPECT_EQ(p.state.epoch, 2);
  EXPECT_EQ(p.state.step, 3);
  EXPECT_EQ(p.state.rng, c.state.rng);
  EXPECT_EQ(p.state.order, c.state.order);
  EXPECT_EQ(p.state.loss_sum, 1.5);
  EXPECT_EQ(p.state.correct, 2);
  EXPECT_EQ(p.state.seen, 3);
  ASSERT_EQ(p.state.history.size(), 2u);
  EXPECT_EQ(p.state.history[1].lr, 0.05);
  ASSERT_EQ(p.weights.size(), 2u);
  EXPECT_EQ(p.weights[0].first, "a.weight");
  EXPECT_TRUE(p.weights[0].second == c.weights[0].second);
  EXPECT_EQ(p.state.velocity, c.state.velocity);
  EXPECT_EQ(serialize_checkpoint(p), bytes);
}

TEST(Checkpoint, ADamagedOrTornFileIsAnIntegrityError) {
  const auto bytes = serialize_checkpoint(sample_checkpoint());
  for (size_t at : {size_t{10}, bytes.size() / 2, bytes.size() - 40, bytes.size() - 1}) {
    auto flipped = bytes;
    flipped[at] ^= 0x04;
    EXPECT_THROW(parse_checkpoint(flipped), IntegrityError) << at;
  }
  auto torn = bytes;
  torn.resize(bytes.size() - 100);
  EXPECT_THROW(parse_checkpoint(torn), IntegrityError);
  torn.resize(20);
  EXPECT_THROW(parse_checkpoint(torn), MalformedInput);
  auto other = bytes;
  other[0] = 'X';
  EXPECT_THROW(parse_checkpoint(other), MalformedInput);
}

TEST(Checkpoint, RefusesInconsistentContent) {
  auto refused = [](const std::function<void(Checkpoint&)>& edit) {
    Checkpoint c = sample_checkpoint();
    edit(c);
    try {
      parse_checkpoint(serialize_checkpoint(c));
    } catch (const MalformedInput&) {
      return true;
    }
    return false;
  };
  EXPECT_FALSE(refused([](Checkpoint&) {}));
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.order[0] = 0; }));   // 0 twice
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.order[0] = 6; }));   // outside
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.order[0] = -1; }));  // negative
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.history.pop_back(); }));
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.history[1].epoch = 3; }));
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.history[0].train_loss = NAN; }));
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.rng += " 1"; }));
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.rng += " "; }));
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.rng = ""; }));
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.rng = "0" + c.state.rng; }));
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.rng = "not a generator"; }));
  EXPECT_TRUE(refused([](Checkpoint& c) {
    // A position past the 312 state words: libstdc++ would read it without a check.
    c.state.rng = c.state.rng.substr(0, c.state.rng.find_last_of(' ') + 1) + "400";
  }));
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.correct = 4; }));  // more than seen
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.seen = 0; }));     // step 3 saw nothing
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.loss_sum = -1; }));
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.step = -1; }));
  EXPECT_TRUE(refused([](Checkpoint& c) { std::swap(c.weights[0], c.weights[1]); }));
  EXPECT_TRUE(refused([](Checkpoint& c) { c.weights[1].first = "a.weight"; }));
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.velocity[0].second[2] = INFINITY; }));
  EXPECT_TRUE(refused([](Checkpoint& c) { c.state.velocity[1].first = ""; }));
  EXPECT_TRUE(refused([](Checkpoint& c) { c.run = std::string(70000, 'x'); }));
}

TEST(Checkpoint, BoundsCountsBeforeAllocating) {
  const auto bytes = serialize_checkpoint(sample_checkpoint());
  // The order count sits after the magic, version, run record, epoch, step and generator.
  const Checkpoint c = sample_checkpoint();
  const size_t order_at = 4 + 4 + 4 + c.run.size() + 4 + 8 + 4 + c.state.rng.size();
  auto huge = resealed(bytes, [&](std::vector<uint8_t>& b) {
    const uint64_t n = uint64_t{1} << 30;  // within the bound, far beyond the bytes left
    std::memcpy(b.data() + order_at, &n, 8);
  });
  EXPECT_THROW(parse_checkpoint(huge), MalformedInput);
  auto over = resealed(bytes, [&](std::vector<uint8_t>& b) {
    const uint64_t n = ~uint64_t{0};
    std::memcpy(b.data() + order_at, &n, 8);
  });
  EXPECT_THROW(parse_checkpoint(over), MalformedInput);
  auto trailing = resealed(bytes, [](std::vector<uint8_t>& b) { b.push_back(0); });
  EXPECT_THROW(parse_checkpoint(trailing), MalformedInput);
}

TEST(Checkpoint, RestoresWeightsOfTheSameModelOnly) {
  auto m = model::build_arch("mlp", {1, 8, 8, 4, 1});
  const auto saved = float_initializers(m);
  auto other = model::build_arch("mlp", {1, 8, 8, 4, 2});
  restore_weights(other, saved);
  for (const auto& [name, t] : saved) EXPECT_TRUE(other.graph.initializers.at(name) == t) << name;

  const auto before = model::build_arch("mlp", {1, 8, 8, 4, 3});
  auto target = before;
  auto missing = saved;
  missing.pop_back();
  EXPECT_THROW(restore_weights(target, missing), InvalidArgument);
  auto renamed = saved;
  renamed[0].first = "no.such.weight";
  EXPECT_THROW(restore_weights(target, renamed), InvalidArgument);
  auto reshaped = saved;
  reshaped[0].second = Tensor({1});
  EXPECT_THROW(restore_weights(target, reshaped), InvalidArgument);
  auto wider = model::build_arch("mlp", {1, 8, 8, 5, 1});  // another class count
  EXPECT_THROW(restore_weights(wider, saved), InvalidArgument);
  for (const auto& [name, t] : before.graph.initializers)
    EXPECT_TRUE(target.graph.initializers.at(name) == t) << name;  // untouched by a refusal
}

TEST(Checkpoint, RunDifferencesNameTheLinesThatDiffer) {
  EXPECT_TRUE(run_differences("a=1\nb=2\n", "a=1\nb=2\n").empty());
  const auto d = run_differences("a=1\nb=2\n", "a=1\nb=3\nc=x\n");
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0], "b: 2 in the checkpoint, 3 now");
  EXPECT_EQ(d[1], "c: (none) in the checkpoint, x now");
  EXPECT_EQ(run_differences("a=\x1b[2J\n", "a=1\n")[0], "a: \\x1b[2J in the checkpoint, 1 now");
}

TEST(Checkpoint, RunLinesNotComparedAreStillReadable) {
  EXPECT_TRUE(run_differences("a=1\nthreads=1\n", "a=1\nthreads=2\n", {"threads"}).empty());
  EXPECT_TRUE(run_differences("a=1\n", "a=1\nthreads=2\n", {"threads"}).empty());
  EXPECT_EQ(run_differences("a=1\nthreads=1\n", "a=2\nthreads=2\n", {"threads"}).size(), 1u);
  EXPECT_EQ(run_value("a=1\nthreads=4\n", "threads"), "4");
  EXPECT_EQ(run_value("a=1\nthreads=\n", "threads"), "");
  EXPECT_EQ(run_value("a=1\n", "threads"), std::nullopt);
}

TEST(Sgd, RestoresItsMomentumAndRefusesAnothersBuffers) {
  auto m = model::build_arch("mlp", {1, 8, 8, 4, 1});
  std::vector<std::string> params;
  for (const auto& [name, t] : m.graph.initializers) params.push_back(name);
  Sgd sgd(m, params);
  auto v = sgd.velocity();
  ASSERT_EQ(v.size(), params.size());
  for (auto& [name, buf] : v)
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = 0.001f * static_cast<float>(i % 7);
  sgd.restore_velocity(v);
  EXPECT_EQ(sgd.velocity(), v);
  auto twice = v;
  twice[1] = twice[0];
  EXPECT_THROW(sgd.restore_velocity(twice), InvalidArgument);
  auto shorter = v;
  shorter[0].second.pop_back();
  EXPECT_THROW(sgd.restore_velocity(shorter), InvalidArgument);
  auto fewer = v;
  fewer.pop_back();
  EXPECT_THROW(sgd.restore_velocity(fewer), InvalidArgument);
  EXPECT_EQ(sgd.velocity(), v);  // a refused restore changed nothing
}

// The point of a checkpoint: a run stopped anywhere and continued from its state ends with the
// weights of the run that never stopped, bit for bit (batch norm statistics, augmentation and a
// teacher with feature matching included), and with the same epoch records.
class ResumeTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(ResumeTest, ContinuesBitIdentically) {
  const int64_t stop_after = GetParam();  // steps; 5 steps per epoch
  auto set = blobs(160, 4, 3);
  auto test = blobs(64, 4, 4);
  auto teacher = model::build_arch("resnet20", {1, 8, 8, 4, 2});
  const auto start = model::build_arch("resnet20", {1, 8, 8, 4, 1});
  TrainOptions o;
  o.epochs = 3;
  o.batch_size = 32;
  o.lr = 0.02f;
  o.crop_pad = 1;
  o.flip = true;
  o.progress = false;
  o.distill.teacher = &teacher;
  o.distill.alpha = 0.5;
  o.distill.features = stage_outputs(start);

  auto straight = start;
  const auto full = train(straight, set, &test, o);

  auto stopped = start;
  std::optional<Checkpoint> saved;
  int64_t calls = 0;
  o.checkpoint_every = 2;
  o.on_checkpoint = [&](const TrainState& st) {
    ++calls;
    // Through the file format, as the CLI does.
    saved = parse_checkpoint(serialize_checkpoint({"run", st, float_initializers(stopped)}));
    return st.epoch * 5 + st.step < stop_after;
  };
  const auto first = train(stopped, set, &test, o);
  ASSERT_TRUE(saved);
  EXPECT_EQ(saved->state.epoch * 5 + saved->state.step, stop_after);
  EXPECT_EQ(first.size(), static_cast<size_t>(saved->state.epoch));

  auto resumed = start;  // a new process: only the checkpoint carries the training
  restore_weights(resumed, saved->weights);
  o.on_checkpoint = {};
  o.resume = &saved->state;
  const auto rest = train(resumed, set, &test, o);
  ASSERT_EQ(rest.size(), full.size());
  for (size_t e = 0; e < full.size(); ++e) {
    EXPECT_EQ(rest[e].train_loss, full[e].train_loss) << e;
    EXPECT_EQ(rest[e].test_top1, full[e].test_top1) << e;
  }
  for (const auto& [name, t] : straight.graph.initializers)
    EXPECT_TRUE(resumed.graph.initializers.at(name) == t) << name;
  EXPECT_EQ(resumed.graph.outputs.size(), start.graph.outputs.size());
}

// Mid-epoch (2, 7: after a checkpoint every 2 steps), at an epoch's end (5, 10) and after the
// last epoch (15: nothing left to run).
INSTANTIATE_TEST_SUITE_P(Steps, ResumeTest, ::testing::Values(2, 5, 7, 10, 15));

TEST(Resume, RefusesAStateThatDoesNotFitTheRun) {
  auto set = blobs(96, 4, 3);
  const auto start = model::build_arch("mlp", {1, 8, 8, 4, 1});
  TrainOptions o;
  o.epochs = 2;
  o.batch_size = 32;
  o.progress = false;
  std::optional<TrainState> saved;
  o.checkpoint_every = 1;
  o.on_checkpoint = [&](const TrainState& st) {
    saved = st;
    return st.step < 2 && st.epoch == 0;
  };
  auto m = start;
  train(m, set, nullptr, o);
  ASSERT_TRUE(saved);
  ASSERT_EQ(saved->step, 2);
  o.on_checkpoint = {};
  auto refused = [&](const std::function<void(TrainState&)> edit, const data::Dataset& data) {
    TrainState st = *saved;
    edit(st);
    o.resume = &st;
    auto copy = m;
    try {
      train(copy, data, nullptr, o);
    } catch (const InvalidArgument&) {
      return true;
    }
    return false;
  };
  EXPECT_FALSE(refused([](TrainState&) {}, set));
  EXPECT_TRUE(refused([](TrainState&) {}, blobs(128, 4, 3)));    // another training set size
  EXPECT_TRUE(refused([](TrainState& s) { s.step = 3; }, set));  // past the epoch's 3 steps
  EXPECT_TRUE(refused([](TrainState& s) { s.epoch = 3; }, set));
  EXPECT_TRUE(refused([](TrainState& s) { s.seen = 32; }, set));
  EXPECT_TRUE(refused([](TrainState& s) { s.order[0] = s.order[1]; }, set));
  EXPECT_TRUE(refused([](TrainState& s) { s.velocity.pop_back(); }, set));
  EXPECT_TRUE(refused([](TrainState& s) { s.velocity[0].second.push_back(0); }, set));
  EXPECT_TRUE(refused([](TrainState& s) { s.rng = "1 2 3"; }, set));
  EXPECT_TRUE(refused([](TrainState& s) { s.history.push_back({}); }, set));
}

}  // namespace
}  // namespace veil::nn

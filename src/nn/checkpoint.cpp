#include "veil/nn/checkpoint.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"
#include "veil/core/printable.hpp"
#include "veil/core/sha256.hpp"

namespace veil::nn {
namespace {

constexpr char kMagic[4] = {'V', 'C', 'K', 'P'};
constexpr const char* kContext = "training checkpoint (.vckpt)";
constexpr size_t kDigestSize = 32;
// The epoch record: i32 + 7 f64.
constexpr uint64_t kEpochRecordBytes = 4 + 7 * 8;

bool finite(double v) { return std::isfinite(v); }

void write_epoch(ByteWriter& w, const EpochStats& e) {
  w.u32(static_cast<uint32_t>(e.epoch));
  for (double v :
       {e.lr, e.train_loss, e.train_top1, e.test_top1, e.test_top5, e.seconds, e.images_per_s})
    w.f64(v);
}

EpochStats read_epoch(ByteReader& r, int expected) {
  EpochStats e;
  e.epoch = static_cast<int32_t>(r.u32("epoch number"));
  if (e.epoch != expected) r.fail(fmt::format("epoch record {} is numbered {}", expected, e.epoch));
  for (double* v : {&e.lr, &e.train_loss, &e.train_top1, &e.test_top1, &e.test_top5, &e.seconds,
                    &e.images_per_s}) {
    *v = r.f64("epoch record");
    if (!finite(*v)) r.fail(fmt::format("epoch record {} holds a non-finite value", expected));
  }
  return e;
}

void write_floats(ByteWriter& w, std::span<const float> v) { w.array(v); }

void read_floats(ByteReader& r, std::span<float> out, const char* what) {
  r.need(uint64_t{4} * out.size(), what);
  for (auto& v : out) v = r.f32();
}

void check_name(ByteReader& r, const std::string& name, std::set<std::string>& seen,
                const char* what) {
  if (name.empty()) r.fail(std::string("empty ") + what);
  if (!seen.insert(name).second) r.fail(std::string(what) + " '" + printable(name) + "' twice");
}

}  // namespace

std::vector<uint8_t> serialize_checkpoint(const Checkpoint& c) {
  const TrainState& s = c.state;
  ByteWriter w;
  size_t floats = 0;
  for (const auto& [n, t] : c.weights) floats += static_cast<size_t>(t.numel());
  for (const auto& [n, v] : s.velocity) floats += v.size();
  w.reserve(4 * floats + 8 * s.order.size() + (1 << 16));
  w.bytes(std::string_view(kMagic, 4));
  w.u32(kCheckpointVersion);
  w.str(c.run);
  w.u32(static_cast<uint32_t>(s.epoch));
  w.i64(s.step);
  w.str(s.rng);
  w.u64(s.order.size());
  w.array(std::span<const int64_t>(s.order));
  w.f64(s.loss_sum);
  w.i64(s.correct);
  w.i64(s.seen);
  w.f64(s.seconds);
  w.u32(static_cast<uint32_t>(s.history.size()));
  for (const auto& e : s.history) write_epoch(w, e);
  w.u32(static_cast<uint32_t>(c.weights.size()));
  for (const auto& [name, t] : c.weights) {
    if (t.dtype() != DType::Float32)
      throw InvalidArgument("checkpoint: weight '" + name + "' is not float32");
    w.str(name);
    w.u32(static_cast<uint32_t>(t.shape().size()));
    for (int64_t d : t.shape()) w.i64(d);
    write_floats(w, t.floats());
  }
  w.u32(static_cast<uint32_t>(s.velocity.size()));
  for (const auto& [name, v] : s.velocity) {
    w.str(name);
    w.u64(v.size());
    write_floats(w, v);
  }
  const Sha256Digest digest = sha256(w.out());
  w.bytes(std::span<const uint8_t>(digest));
  return w.take();
}

Checkpoint parse_checkpoint(std::span<const uint8_t> bytes) {
  if (bytes.size() < 8 + kDigestSize)
    throw MalformedInput(std::string(kContext) + ": truncated (" + std::to_string(bytes.size()) +
                         " bytes)");
  if (std::memcmp(bytes.data(), kMagic, 4) != 0)
    throw MalformedInput(std::string(kContext) + ": not a checkpoint (bad magic)");
  const auto body = bytes.first(bytes.size() - kDigestSize);
  const Sha256Digest digest = sha256(body);
  if (std::memcmp(digest.data(), bytes.data() + body.size(), kDigestSize) != 0)
    throw IntegrityError(std::string(kContext) +
                         ": damaged or incomplete (its SHA-256 does not match)");
  ByteReader r(body, kContext);
  r.bytes(4, "magic");
  if (uint32_t v = r.u32("version"); v != kCheckpointVersion)
    r.fail("unsupported version " + std::to_string(v));
  Checkpoint c;
  TrainState& s = c.state;
  c.run = r.str(kCheckpointMaxRunText, "run record");
  const uint32_t epoch = r.u32("epoch");
  if (epoch > kCheckpointMaxEpochs) r.fail("bad epoch " + std::to_string(epoch));
  s.epoch = static_cast<int>(epoch);
  s.step = r.i64("step");
  s.rng = r.str(kCheckpointMaxRngText, "generator state");
  try {
    generator_from_state(s.rng);
  } catch (const InvalidArgument& e) {
    r.fail(e.what());
  }
  const uint64_t n = r.count64(kCheckpointMaxImages, "sample order count", 8);
  s.order.resize(n);
  {
    std::vector<char> hit(n, 0);
    for (auto& i : s.order) {
      i = r.i64();
      if (i < 0 || static_cast<uint64_t>(i) >= n || hit[static_cast<size_t>(i)]++)
        r.fail("the sample order is not a permutation");
    }
  }
  s.loss_sum = r.f64("loss sum");
  s.correct = r.i64("correct count");
  s.seen = r.i64("seen count");
  s.seconds = r.f64("seconds");
  if (!finite(s.loss_sum) || s.loss_sum < 0 || !finite(s.seconds) || s.seconds < 0 || s.seen < 0 ||
      s.correct < 0 || s.correct > s.seen || static_cast<uint64_t>(s.seen) > n)
    r.fail("bad running totals");
  if (s.step < 0 || static_cast<uint64_t>(s.step) > n || (s.step == 0) != (s.seen == 0) ||
      (s.step == 0 && (s.loss_sum != 0 || s.seconds != 0)))
    r.fail("bad step " + std::to_string(s.step));
  if (n == 0 && (s.epoch > 0 || s.step > 0)) r.fail("a run under way without a sample order");
  const uint32_t epochs = r.count(kCheckpointMaxEpochs, "epoch record count", kEpochRecordBytes);
  if (epochs != epoch) r.fail(fmt::format("{} epoch records for {} epochs done", epochs, epoch));
  s.history.reserve(epochs);
  for (uint32_t e = 0; e < epochs; ++e) s.history.push_back(read_epoch(r, static_cast<int>(e) + 1));

  // A tensor takes at least its name length, rank and one dim: 4 + 1 + 4 + 8 bytes.
  const uint32_t n_weights = r.count(kCheckpointMaxTensors, "weight count", 17);
  c.weights.reserve(n_weights);
  std::set<std::string> names;
  for (uint32_t i = 0; i < n_weights; ++i) {
    std::string name = r.str(kCheckpointMaxName, "weight name");
    check_name(r, name, names, "weight");
    const uint32_t rank = r.count(kCheckpointMaxRank, "weight rank", 8);
    Shape shape(rank);
    uint64_t numel = 1;
    for (auto& d : shape) {
      d = r.i64("weight dim");
      if (d < 0) r.fail("negative dim of '" + printable(name) + "'");
      // Bounded by the bytes left before it multiplies on: numel never overflows.
      if (d > 0 && numel > r.remaining() / static_cast<uint64_t>(d))
        r.fail("'" + printable(name) + "' is larger than the file");
      numel *= static_cast<uint64_t>(d);
    }
    r.need(4 * numel, "weight values");
    Tensor t(shape);
    read_floats(r, t.floats(), "weight values");
    c.weights.emplace_back(std::move(name), std::move(t));
  }
  if (!std::is_sorted(c.weights.begin(), c.weights.end(),
                      [](const auto& a, const auto& b) { return a.first < b.first; }))
    r.fail("weights are not in name order");

  const uint32_t n_velocity = r.count(kCheckpointMaxTensors, "momentum buffer count", 13);
  s.velocity.reserve(n_velocity);
  names.clear();
  for (uint32_t i = 0; i < n_velocity; ++i) {
    std::string name = r.str(kCheckpointMaxName, "momentum buffer name");
    check_name(r, name, names, "momentum buffer");
    const uint64_t count = r.count64(kCheckpointMaxBytes / 4, "momentum buffer size", 4);
    std::vector<float> v(count);
    read_floats(r, v, "momentum values");
    for (float x : v)
      if (!std::isfinite(x)) r.fail("momentum of '" + printable(name) + "' is not finite");
    s.velocity.emplace_back(std::move(name), std::move(v));
  }
  r.expect_end();
  return c;
}

Checkpoint read_checkpoint(const std::filesystem::path& path) {
  const auto bytes = read_file(path, kCheckpointMaxBytes);
  return parse_checkpoint(bytes);
}

void write_checkpoint(const std::filesystem::path& path, const Checkpoint& checkpoint) {
  write_file_atomic(path, serialize_checkpoint(checkpoint));
}

std::vector<std::pair<std::string, Tensor>> float_initializers(const model::Model& model) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, t] : model.graph.initializers)
    if (t.dtype() == DType::Float32) out.emplace_back(name, t);
  return out;
}

void restore_weights(model::Model& model,
                     const std::vector<std::pair<std::string, Tensor>>& weights) {
  size_t expected = 0;
  for (const auto& [name, t] : model.graph.initializers) expected += t.dtype() == DType::Float32;
  if (weights.size() != expected)
    throw InvalidArgument(fmt::format(
        "the checkpoint holds {} weight tensors and the model {}: not a checkpoint of this model",
        weights.size(), expected));
  for (const auto& [name, t] : weights) {
    auto it = model.graph.initializers.find(name);
    if (it == model.graph.initializers.end() || it->second.dtype() != DType::Float32 ||
        it->second.shape() != t.shape())
      throw InvalidArgument("the checkpoint's weight '" + printable(name) + "' " +
                            shape_to_string(t.shape()) + " is not in the model: not a " +
                            "checkpoint of this model");
  }
  for (const auto& [name, t] : weights) model.graph.initializers.at(name) = t;
}

namespace {

std::map<std::string, std::string> run_lines(const std::string& text) {
  std::map<std::string, std::string> kv;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    kv[line.substr(0, eq)] = eq == std::string::npos ? "" : line.substr(eq + 1);
  }
  return kv;
}

}  // namespace

std::vector<std::string> run_differences(const std::string& saved, const std::string& current,
                                         const std::set<std::string>& not_compared) {
  const auto a = run_lines(saved), b = run_lines(current);
  std::set<std::string> keys;
  for (const auto& [k, v] : a) keys.insert(k);
  for (const auto& [k, v] : b) keys.insert(k);
  std::vector<std::string> out;
  for (const auto& k : keys) {
    if (not_compared.count(k)) continue;
    auto ia = a.find(k), ib = b.find(k);
    const std::string va = ia == a.end() ? "(none)" : ia->second;
    const std::string vb = ib == b.end() ? "(none)" : ib->second;
    if (va != vb)
      out.push_back(printable(k) + ": " + printable(va) + " in the checkpoint, " + printable(vb) +
                    " now");
  }
  return out;
}

std::optional<std::string> run_value(const std::string& record, const std::string& key) {
  const auto kv = run_lines(record);
  auto it = kv.find(key);
  if (it == kv.end()) return std::nullopt;
  return it->second;
}

}  // namespace veil::nn

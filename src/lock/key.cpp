#include "veil/lock/key.hpp"

#include <openssl/evp.h>

#include <bit>
#include <cstring>
#include <memory>
#include <unordered_set>

#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"
#include "veil/core/hex.hpp"

namespace veil::lock {

namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

void put_u64(EVP_MD_CTX* ctx, uint64_t v) {
  uint8_t b[8];
  store_le(b, v);
  EVP_DigestUpdate(ctx, b, 8);
}

}  // namespace

Fingerprint fingerprint(const model::Graph& graph) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    throw Error("OpenSSL: SHA-256 init failed");
  static const char kDomain[] = "veil.lock.fingerprint.v1";
  EVP_DigestUpdate(ctx.get(), kDomain, sizeof(kDomain));
  put_u64(ctx.get(), graph.initializers.size());
  // std::map iterates in name order, so the digest does not depend on file order.
  for (const auto& [name, t] : graph.initializers) {
    put_u64(ctx.get(), name.size());
    EVP_DigestUpdate(ctx.get(), name.data(), name.size());
    put_u64(ctx.get(), static_cast<uint64_t>(t.dtype()));
    put_u64(ctx.get(), t.shape().size());
    for (int64_t d : t.shape()) put_u64(ctx.get(), static_cast<uint64_t>(d));
    if (t.dtype() == DType::Float32) {
      auto f = t.floats();
      EVP_DigestUpdate(ctx.get(), f.data(), f.size_bytes());
    } else {
      auto i = t.int64s();
      EVP_DigestUpdate(ctx.get(), i.data(), i.size_bytes());
    }
  }
  Fingerprint fp{};
  unsigned len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), fp.data(), &len) != 1 || len != fp.size())
    throw Error("OpenSSL: SHA-256 failed");
  return fp;
}

namespace {

// The options that take one of two names: the name's value, or one clear InvalidArgument.
template <typename E>
E parse_choice(const std::string& text, const char* option, E a, const char* a_name, E b,
               const char* b_name) {
  if (text == a_name) return a;
  if (text == b_name) return b;
  throw InvalidArgument(std::string(option) + " must be '" + a_name + "' or '" + b_name +
                        "', got '" + text + "'");
}

}  // namespace

std::string to_string(LockMode mode) { return mode == LockMode::Stealthy ? "stealthy" : "sfge"; }

LockMode parse_lock_mode(const std::string& text) {
  return parse_choice(text, "--mode", LockMode::Sfge, "sfge", LockMode::Stealthy, "stealthy");
}

std::string to_string(IntensityMode mode) {
  return mode == IntensityMode::Relative ? "relative" : "absolute";
}

IntensityMode parse_intensity_mode(const std::string& text) {
  return parse_choice(text, "--intensity-mode", IntensityMode::Absolute, "absolute",
                      IntensityMode::Relative, "relative");
}

std::string to_string(Objective objective) {
  return objective == Objective::Collapse ? "collapse" : "ce";
}

Objective parse_objective(const std::string& text) {
  return parse_choice(text, "--objective", Objective::CrossEntropy, "ce", Objective::Collapse,
                      "collapse");
}

int64_t LockKey::total_entries() const {
  int64_t n = 0;
  for (const auto& l : layers) n += static_cast<int64_t>(l.entries.size());
  return n;
}

LockKey LockKey::prefix(int64_t k) const {
  if (k < 0) throw InvalidArgument("key prefix length must be >= 0");
  LockKey out;
  out.params = params;
  out.params.num = k;
  out.plain_fingerprint = plain_fingerprint;
  for (const auto& l : layers) {
    size_t n = std::min<size_t>(l.entries.size(), static_cast<size_t>(k));
    if (n == 0) continue;
    LayerKey p{l.tensor, l.node, l.numel, {l.entries.begin(), l.entries.begin() + n}};
    out.layers.push_back(std::move(p));
  }
  return out;
}

void check_key_fits(const model::Graph& graph, const LockKey& key) {
  std::unordered_set<std::string> seen_tensors;
  for (const auto& l : key.layers) {
    auto it = graph.initializers.find(l.tensor);
    if (it == graph.initializers.end())
      throw InvalidArgument("key names tensor '" + l.tensor + "', which the model does not have");
    if (it->second.dtype() != DType::Float32 ||
        static_cast<uint64_t>(it->second.numel()) != l.numel)
      throw InvalidArgument("key entry for tensor '" + l.tensor + "' expects " +
                            std::to_string(l.numel) + " float weights, the model has " +
                            std::to_string(it->second.numel()));
    if (!seen_tensors.insert(l.tensor).second)
      throw InvalidArgument("key names tensor '" + l.tensor + "' twice");
    std::unordered_set<uint64_t> seen;
    for (const auto& e : l.entries) {
      if (e.index >= l.numel)
        throw InvalidArgument("key position " + std::to_string(e.index) + " outside tensor '" +
                              l.tensor + "'");
      if (!seen.insert(e.index).second)
        throw InvalidArgument("key position " + std::to_string(e.index) + " of tensor '" +
                              l.tensor + "' appears twice");
    }
  }
}

namespace {

void set_bits(Tensor& tensor, const LayerKey& layer, bool to_locked, bool verify) {
  if (tensor.dtype() != DType::Float32 || static_cast<uint64_t>(tensor.numel()) != layer.numel)
    throw IntegrityError("tensor '" + layer.tensor + "' does not have the shape the key expects");
  auto w = tensor.floats();
  for (const auto& e : layer.entries) {
    if (e.index >= layer.numel)
      throw IntegrityError("key position outside tensor '" + layer.tensor + "'");
    if (verify) {
      uint32_t want = to_locked ? e.original_bits : e.locked_bits;
      if (std::bit_cast<uint32_t>(w[e.index]) != want)
        throw IntegrityError("weight " + std::to_string(e.index) + " of tensor '" + layer.tensor +
                             "' is not in the state the key expects (" +
                             (to_locked ? "plaintext" : "locked") + ")");
    }
  }
  for (const auto& e : layer.entries)
    w[e.index] = std::bit_cast<float>(to_locked ? e.locked_bits : e.original_bits);
}

Tensor& find_tensor(model::Graph& graph, const LayerKey& layer) {
  auto it = graph.initializers.find(layer.tensor);
  if (it == graph.initializers.end())
    throw IntegrityError("the model has no tensor '" + layer.tensor + "' named by the key");
  return it->second;
}

}  // namespace

void lock_tensor(Tensor& tensor, const LayerKey& layer, bool verify) {
  set_bits(tensor, layer, true, verify);
}

void unlock_tensor(Tensor& tensor, const LayerKey& layer, bool verify) {
  set_bits(tensor, layer, false, verify);
}

void apply_key_unchecked(model::Graph& graph, const LockKey& key) {
  for (const auto& l : key.layers) lock_tensor(find_tensor(graph, l), l, false);
}

void remove_key_unchecked(model::Graph& graph, const LockKey& key) {
  for (const auto& l : key.layers) unlock_tensor(find_tensor(graph, l), l, false);
}

void bind_fingerprints(LockKey& key, const model::Graph& plain) {
  check_key_fits(plain, key);
  key.plain_fingerprint = fingerprint(plain);
  model::Graph copy = plain;
  apply_key_unchecked(copy, key);
  key.locked_fingerprint = fingerprint(copy);
}

namespace {

// encrypt_model (lock = true) and decrypt_model: the model must have the key's fingerprint of the
// side it is on before and that of the other side after; the caller's model changes only then
// (the work is done on a copy).
void transform_checked(model::Model& model, const LockKey& key, bool lock) {
  const Fingerprint& from = lock ? key.plain_fingerprint : key.locked_fingerprint;
  const Fingerprint& to = lock ? key.locked_fingerprint : key.plain_fingerprint;
  const Fingerprint now = fingerprint(model.graph);
  if (now != from)
    throw IntegrityError(std::string(lock
                                         ? "the key was generated for another model (the model's"
                                         : "the key belongs to another model (the locked model's") +
                         " weight fingerprint " + veil::to_hex(now).substr(0, 16) +
                         "… is not the one the key is bound to)");
  try {
    check_key_fits(model.graph, key);
  } catch (const InvalidArgument& e) {
    throw IntegrityError(std::string("key does not fit the model: ") + e.what());
  }
  model::Graph out = model.graph;
  for (const auto& l : key.layers) {
    if (lock)
      lock_tensor(find_tensor(out, l), l, true);
    else
      unlock_tensor(find_tensor(out, l), l, true);
  }
  if (fingerprint(out) != to)
    throw IntegrityError(lock ? "locking did not produce the model the key is bound to"
                              : "restored weights do not match the original model's fingerprint");
  model.graph = std::move(out);
}

}  // namespace

void encrypt_model(model::Model& model, const LockKey& key) { transform_checked(model, key, true); }

void decrypt_model(model::Model& model, const LockKey& key) {
  transform_checked(model, key, false);
}

}  // namespace veil::lock

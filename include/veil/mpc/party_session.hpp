// One party of a networked secure-inference session, as `veil mpc party` runs it:
//
//  1. connect the links (TCP, or TLS 1.3 with pinned keys; party_config.hpp);
//  2. the server loads the ONNX model, folds BatchNormalization, checks that no value can
//     overflow the ring (range_check.hpp; before step 1) and sends the model's public structure
//     (public_model.hpp: ops, shapes, attributes, preprocessing metadata and the input range;
//     no weight values) to the client and the helper, which rebuild the graph from it; a server
//     that refuses the model sends the reason instead, and all three fail with it;
//  3. every party computes structure_hash() of its graph, checks it against the configuration's
//     "model_hash" when one is pinned, and the Party handshake checks that all three agree;
//  4. the client sends the batch plan (how many images per batch: public, as the traffic
//     shows it anyway); every party plans its memory for the largest batch (memory_plan.hpp)
//     and tells the others whether it fits, so that all three stop with a refusal's reason;
//  5. the client checks its images against the input range, applies the model's
//     normalisation and runs the batches; only it learns the logits.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "veil/core/tensor.hpp"
#include "veil/mpc/network/party_config.hpp"
#include "veil/mpc/secure_model.hpp"

namespace veil::mpc {

struct PartyRunOptions {
  int listen_fd = -1;  // server/helper: an inherited listening socket instead of binding
  std::function<void(const std::string&)> log;  // progress lines (optional)
};

struct BatchCost {
  int64_t size = 0;
  double seconds = 0;
  uint32_t rounds = 0;  // this party's clock advance
  uint64_t bytes_sent = 0;
};

struct PartyReport {
  Role role = Role::Client;
  std::string model_name;
  std::string model_hash;  // hex SHA-256 of the public structure
  bool tls = false;
  LinkProfile link;          // the emulated link this party's sends went through
  double setup_seconds = 0;  // connecting, structure, handshake
  double run_seconds = 0;    // all batches
  ChannelStats setup_stats;  // counters after setup
  ChannelStats run_stats;    // counters of the batches alone
  uint32_t rounds = 0;       // clock advance over all batches
  std::string range_check;   // server: the fixed-point range check's verdict (range_check.hpp)
  uint64_t planned_peak_bytes = 0;  // this party's memory plan for its largest batch
  double peak_rss_mb = 0;           // what it used: its process's peak RSS (MiB)
  std::vector<BatchCost> batches;
  std::vector<LayerCost> layers;  // summed over batches, in graph order
  // Client only.
  Tensor logits;  // [n, classes]
  std::vector<int64_t> predictions;
  std::vector<int32_t> labels;  // empty unless the input came from a labelled dataset

  nlohmann::json to_json() const;
  // Reads what to_json() wrote (a party process's --report file). Throws MalformedInput for a
  // missing field or a value of the wrong type.
  static PartyReport from_json(const nlohmann::json& j);
};

// Runs one party to the end. Throws (ProtocolError for anything network- or peer-related) on
// failure; the links are closed, so the other two parties stop too.
PartyReport run_party(Role role, const PartyConfig& config, const PartyRunOptions& options = {});

// A session's normalisation ("MEAN,STD", parsed as `veil eval --normalize` is; empty: keep the
// model's) written into the model's metadata, which the structure carries to the client: for
// models exported without veil's metadata.
void override_normalization(model::Model& model, const std::string& normalize);

// The server's side of step 2, also used by `veil mpc hash`: load, fold BatchNormalization, and
// check that SecureModel supports the graph.
model::Model load_model_for_mpc(const std::string& path);

}  // namespace veil::mpc

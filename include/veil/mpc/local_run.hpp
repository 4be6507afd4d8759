// `veil mpc run`: a whole secure-inference session on one machine, as three OS processes that
// talk TCP (or TLS 1.3) on loopback, checked against plaintext inference on the same images.
//
//  1. the client's images are selected (client_input.hpp) and the float engine computes the
//     plaintext reference on them;
//  2. a session directory receives the configuration (party_config.hpp), fresh keys with --tls,
//     each party's log and report; the server's and helper's listening sockets are bound here
//     (ephemeral ports, so no race) and inherited;
//  3. the veil executable is re-run as `veil mpc party` for each role and supervised: a party
//     that fails must make the others stop within io_timeout, or they are killed and named;
//  4. the three party reports are merged with the reference into one LocalRunResult.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "veil/model/graph.hpp"
#include "veil/mpc/client_input.hpp"
#include "veil/mpc/network/link_profile.hpp"
#include "veil/mpc/party.hpp"
#include "veil/mpc/party_session.hpp"

namespace veil::mpc {

// The reference implementation's approximate DReLU (yg320/secure_inference const.py):
// NUM_OF_LSB_TO_IGNORE = 5, COMPARISON_NUM_BITS_IGNORED = 48.
inline constexpr DreluParams kReferenceApproxDrelu{5, 48};

// Test hook: kill (SIGKILL) or freeze (SIGSTOP) one party some time after the start.
struct PartyFault {
  Role role = Role::Client;
  bool freeze = false;  // SIGSTOP instead of SIGKILL
  std::chrono::milliseconds after{0};
};
// "kill:<role>:<ms>" or "stop:<role>:<ms>"; throws InvalidArgument otherwise.
PartyFault parse_party_fault(const std::string& spec);

// The fixed-point precision `mpc run` picks when none is given: kDefaultFracBits (12), except
// for a model with block ReLUs, which gets the largest f in [13, 16] whose range check passes.
// A block ReLU keeps or zeroes a whole tile by the sign of the tile's sum, and that sum sits near
// zero while its elements are large far more often than a single pre-activation does, so a
// fixed-point error flips h x w outputs at once. More fractional bits make it rarer: ResNet-20 at
// a 6 % DReLU budget agreed with plaintext on 987 / 1000 images at f = 12, 996 at 14 and 997 at
// 16 (docs/RESULTS.md).
inline constexpr int kDefaultFracBits = 12;
int default_frac_bits(const model::Model& folded, const DreluParams& drelu);

struct LocalRunOptions {
  std::string veil_exe;  // the veil executable, re-run as `veil mpc party` (required)
  std::string model;     // ONNX model (required)
  ClientInputSpec input;
  int64_t batch = 10;
  // 0: kDefaultFracBits, or for a model with block ReLUs the largest of 16..13 that the range
  // check accepts (default_frac_bits).
  int frac_bits = 0;
  std::string input_range;  // "LO,HI" for the overflow check; empty: the model's, or [0, 1]
  std::string normalize;    // "MEAN,STD" replacing the model's normalisation; empty: the model's
  DreluParams drelu;
  bool tls = false;  // TLS 1.3 between the parties, with fresh pinned keys
  int threads = 1;   // ring GEMM threads per party
  int64_t io_timeout_ms = 10000;
  LinkProfile link;
  std::string keep;  // keep the session files here (else memory files, never on disk)
  std::optional<PartyFault> fault;
};

// One layer, or all layers of one op type, summed over the batches.
struct CostRow {
  std::string node;  // layer rows: the node; op rows: empty
  std::string op;
  int count = 1;                         // layers in this row
  std::array<uint64_t, 3> bytes_sent{};  // by role
  uint64_t rounds = 0;                   // largest clock advance over the parties (summed for ops)
  double seconds = 0;                    // largest wall time over the parties (summed for ops)
  uint64_t drelus = 0;                   // DReLU evaluations, all batches
  uint64_t bytes_total() const { return bytes_sent[0] + bytes_sent[1] + bytes_sent[2]; }
};

struct PartyTotals {
  uint64_t bytes_sent = 0;  // batches only
  uint64_t messages_sent = 0;
  uint64_t setup_bytes_sent = 0;
  uint32_t rounds = 0;
  double seconds = 0;
  uint64_t planned_peak_bytes = 0;  // the party's memory plan (memory_plan.hpp)
  double peak_rss_mb = 0;           // its process's peak RSS, process baseline included
};

// The plaintext reference: the float engine on the same images (the original, unfolded model).
struct PlainReference {
  std::vector<int64_t> predictions;
  std::vector<std::vector<float>> logits;
};

struct LocalRunResult {
  std::string model;
  std::string model_hash;  // hex structure hash
  int64_t images = 0;
  int64_t batch = 0;
  int64_t batches = 0;
  int frac_bits = 0;
  std::string range_check;  // the server's fixed-point range verdict (range_check.hpp)
  DreluParams drelu;
  bool tls = false;
  LinkProfile link;
  std::vector<int64_t> secure_predictions, plain_predictions;
  std::vector<int32_t> labels;  // empty unless the images came from a labelled dataset
  int64_t agreeing_images = 0;
  double max_logit_diff = 0;
  double batch_seconds = 0;  // the client's batches, summed
  double run_seconds = 0;    // the client, all batches
  double setup_seconds = 0;  // the client
  double wall_seconds = 0;   // from the first spawn to the last exit
  uint64_t rounds = 0;       // per batch the largest over the parties, summed
  std::array<PartyTotals, 3> parties;
  std::vector<CostRow> layers;  // graph order
  std::vector<CostRow> ops;     // by op type, in order of first appearance

  double agreement() const { return images ? static_cast<double>(agreeing_images) / images : 0; }
  // Top-1 accuracy against the labels; nullopt without labels.
  std::optional<double> secure_top1() const;
  std::optional<double> plain_top1() const;
  double per_batch_seconds() const { return batches ? batch_seconds / batches : 0; }
  double per_image_seconds() const { return images ? run_seconds / images : 0; }
  double rounds_per_batch() const { return batches ? static_cast<double>(rounds) / batches : 0; }
  // The document `veil mpc run --json` prints.
  nlohmann::json to_json() const;
};

// Runs the session. Throws InvalidArgument for bad input or options (checked as the parties'
// configuration is, PartyConfig::from_json, before any party starts), ProtocolError when a party
// fails (the message names each party's exit and error line, and any that hung).
LocalRunResult run_local(const LocalRunOptions& options);

// Step 4 alone: merges the parties' reports (indexed by role) with the plaintext reference.
// Throws ProtocolError when the reports disagree with each other or with the reference.
LocalRunResult merge_party_reports(const std::array<PartyReport, 3>& reports,
                                   const PlainReference& plain, const std::vector<int32_t>& labels);

}  // namespace veil::mpc

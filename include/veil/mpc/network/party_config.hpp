// The configuration file `veil mpc party --config parties.json` reads. One file describes the
// whole session and is given to all three parties; each reads the parts that concern it:
//
//   {
//     "version": 1,
//     "parties": {
//       "client": {"host": "10.0.0.1", "key": "client.pem", "fingerprint": "sha256:..."},
//       "server": {"host": "10.0.0.2", "port": 7101, "key": "server.pem", "fingerprint": "..."},
//       "helper": {"host": "10.0.0.3", "port": 7102, "key": "helper.pem", "fingerprint": "..."}
//     },
//     "model": "lenet5.onnx",            // read by the server only
//     "model_hash": "<64 hex>",          // optional: structure hash every party insists on
//     "input": {"data": "fashion-mnist", "n": 100, "batch": 10},   // or {"npy": "x.npy"}
//     "frac_bits": 12,
//     "input_range": "0,1",              // optional: raw input range (server; range_check.hpp)
//     "normalize": "0.5,0.25",           // optional: MEAN,STD replacing the model's (server)
//     "drelu": {"num_lsb_to_ignore": 0, "comparison_bits_ignored": 0},
//     "tls": "auto",                     // "auto" | "on" | "off"
//     "threads": 1, "io_timeout_ms": 10000, "connect_timeout_ms": 10000,
//     "link": "wan"                      // optional emulated link (link_profile.hpp)
//   }
//
// Relative paths are relative to the file's directory. "key" is a party's own private key and
// is read only by that party; "fingerprint" is what the others pin. TLS "auto" means on unless
// every host is a loopback address. "link" ("none", "lan", "wan" or "rtt=<ms>,rate=<Mbit/s>")
// makes every party delay and rate-limit what it sends, in process (each party shapes only its
// own sends, so a party started with another value makes the link asymmetric).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "veil/mpc/client_input.hpp"
#include "veil/mpc/network/link_profile.hpp"
#include "veil/mpc/party.hpp"

namespace veil::mpc {

enum class TlsMode { Auto, On, Off };

struct PartyEndpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 0;        // client: unused (it only connects)
  std::string key;          // PEM private key path (own party only)
  std::string fingerprint;  // "sha256:<hex>" of its public key
};

struct PartyConfig {
  std::array<PartyEndpoint, 3> parties;
  std::string model;       // server
  std::string model_hash;  // hex; empty = not pinned
  // Client input: a dataset (first `n` test images starting at `offset`) or an .npy tensor.
  ClientInputSpec input{.data = "fashion-mnist", .npy = "", .n = 100, .offset = 0};
  int64_t batch = 10;
  int frac_bits = 12;
  std::string input_range;  // "LO,HI" the server's overflow check assumes; empty: the model's
  // "MEAN,STD" (as `veil eval --normalize`): the input normalisation, replacing the model's
  // metadata (for models exported without it); empty: the model's.
  std::string normalize;
  DreluParams drelu;
  TlsMode tls = TlsMode::Auto;
  int threads = 1;
  int64_t io_timeout_ms = 10000;
  int64_t connect_timeout_ms = 10000;
  LinkProfile link;  // emulated link; none by default

  bool all_loopback() const;
  bool tls_enabled() const {
    return tls == TlsMode::On || (tls == TlsMode::Auto && !all_loopback());
  }
  SessionParams session_params() const;  // model_hash left zero

  // Throws InvalidArgument naming the bad field.
  static PartyConfig from_json(const nlohmann::json& j, const std::filesystem::path& base_dir);
  nlohmann::json to_json() const;
};

// Parses the text of a configuration file; relative paths are taken relative to `base_dir`.
// Throws InvalidArgument (from_json's errors, or "not valid JSON"). Reads no files.
PartyConfig parse_party_config(std::string_view json_text, const std::filesystem::path& base_dir);
// Reads `path` (at most 1 MiB) and parses it; errors are prefixed with the path.
PartyConfig load_party_config(const std::filesystem::path& path);

bool is_loopback_host(const std::string& host);

}  // namespace veil::mpc

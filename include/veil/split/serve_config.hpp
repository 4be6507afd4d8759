// The configuration file of `veil split serve --role trusted|accelerator --config c.json`: the
// two processes of a split run on different machines. One file describes the session; each role
// reads the keys that concern it, and every key is checked (unknown keys are refused):
//
//   {
//     "version": 1,
//     "accelerator": {"host": "10.0.0.2", "port": 7300},  // it listens there; trusted connects
//     "threads": 1,                 // both: linear / float kernel threads
//     "io_timeout_ms": 10000,       // both: silence from the peer before giving up
//     "connect_timeout_ms": 10000,  // trusted: connect retries; accelerator: wait for the peer
//     "transcript": "view.vtrs",    // accelerator: record what it saw
//     (veil/split/transcript_file.hpp) "inject_faults": 0,           // accelerator: corrupt this
//     many replies, "fault_stride": 1,            //   one every fault_stride replies "model":
//     "m.onnx",            // trusted: the model, and the data it classifies: "data":
//     "fashion-mnist",      //   the test split of this dataset, "limit": 100,                 //
//     the first `limit` images (0 = all), "batch": 10,                  //   in batches of `batch`
//     "scheme": "shadownet",        // trusted: plain | shadownet | slalom | darknight | hardened
//     "verify": false,              // trusted: check every reply (the scheme's integrity check)
//     "json": false                 // trusted: print the report as JSON
//   }
//
// Relative paths are relative to the file's directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace veil::split {

struct ServeConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // the accelerator may listen on 0 (an ephemeral port, printed); trusted not
  int threads = 1;
  int64_t io_timeout_ms = 10000;
  int64_t connect_timeout_ms = 10000;
  std::string transcript;
  int64_t inject_faults = 0;
  int64_t fault_stride = 1;
  std::string model;
  std::string data = "fashion-mnist";
  int64_t limit = 100;
  int64_t batch = 10;
  std::string scheme = "shadownet";
  bool verify = false;
  bool json = false;
};

// Throws InvalidArgument naming the key (unknown key, wrong type, out of range, bad scheme).
ServeConfig parse_serve_config(std::string_view json_text, const std::filesystem::path& base_dir);
// Reads `path` (at most 1 MiB); errors are prefixed with the path.
ServeConfig load_serve_config(const std::filesystem::path& path);

}  // namespace veil::split

// The accelerator in another process: RemoteAccelerator is the trusted part's end of the channel
// (it implements Accelerator by sending each request over the wire protocol, veil/split/wire.hpp),
// serve_accelerator the other end (`veil split serve --role accelerator`), which answers with a
// local accelerator. The channel is any mpc::Channel: TCP between processes, memory in tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "veil/mpc/network/channel.hpp"
#include "veil/split/accelerator.hpp"

namespace veil::split {

// What the accelerator process reports when the session closes.
struct AcceleratorReport {
  uint64_t queries = 0;  // compute requests answered
  int64_t faults_injected = 0;
  double peak_rss_mb = 0;  // the accelerator process's peak RSS
};

class RemoteAccelerator final : public Accelerator {
 public:
  // `scheme` is sent with the setup (the transcript records it). `channel` must outlive this.
  RemoteAccelerator(mpc::Channel& channel, std::string scheme);
  // Ends the session if close() was not called (without waiting for the report).
  ~RemoteAccelerator() override;
  RemoteAccelerator(const RemoteAccelerator&) = delete;
  RemoteAccelerator& operator=(const RemoteAccelerator&) = delete;

  // Sends the setup and waits for the accelerator to accept it.
  void load(std::vector<OutsourcedLayer> layers) override;
  // One round trip. Throws ProtocolError when the accelerator refuses or the link fails,
  // MalformedInput when its reply does not parse or does not fit the request.
  std::vector<Payload> compute(size_t layer, std::vector<Payload> inputs) override;
  // As the accelerator reported it with its last reply.
  int64_t faults_injected() const override { return faults_; }

  // Ends the session and returns the accelerator's report.
  AcceleratorReport close();

 private:
  mpc::Message receive(uint32_t expected_tag);

  mpc::Channel& channel_;
  std::string scheme_;
  std::vector<OutsourcedLayer> geometry_;  // the layers without their weights
  int64_t faults_ = 0;
  bool open_ = true;
};

// Answers one session on `channel` with make_local_accelerator(options): a setup, then compute
// requests until close (its reply carries the report; a close instead of the setup ends the
// session too). options.record, when set, gets the
// setup's scheme name too. A peer that breaks the protocol (a malformed or unexpected message, a
// request that does not fit its layer) is told why with an error message, then the error is
// rethrown (MalformedInput, ProtocolError or InvalidArgument); a lost link throws ProtocolError.
AcceleratorReport serve_accelerator(mpc::Channel& channel, const AcceleratorOptions& options);

}  // namespace veil::split

// The wire format of veil's MPC links: a stream of length-prefixed frames. Each frame is a
// 24-byte little-endian header followed by `length` payload bytes:
//   magic "VMPC" (u32) | version (u16) | kind (u16) | tag (u32) | depth (u32) | length (u64)
// `tag` names the protocol message (checked by the receiver, so a desynchronised peer fails
// loudly instead of mixing up shares); `depth` is the sender's logical round clock, which the
// receiver uses to count communication rounds. The length is checked against a limit before
// any payload memory is allocated.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace veil::mpc {

inline constexpr uint32_t kFrameMagic = 0x43504d56;  // "VMPC" little-endian
inline constexpr uint16_t kFrameVersion = 1;
inline constexpr size_t kFrameHeaderSize = 24;
inline constexpr uint64_t kDefaultMaxFramePayload = uint64_t{1} << 30;  // 1 GiB

enum class FrameKind : uint16_t {
  Data = 0,
  Heartbeat = 1,  // keeps an idle link alive while a peer computes; carries no payload
};

struct FrameHeader {
  FrameKind kind = FrameKind::Data;
  uint32_t tag = 0;
  uint32_t depth = 0;
  uint64_t length = 0;
};

struct Frame {
  FrameHeader header;
  std::vector<uint8_t> payload;
};

void encode_frame_header(const FrameHeader& h, std::span<uint8_t, kFrameHeaderSize> out);
std::vector<uint8_t> encode_frame(const FrameHeader& h, std::span<const uint8_t> payload);

// Parses and validates a header: magic, version, known kind, heartbeat without payload and
// length <= max_payload. Throws MalformedInput.
FrameHeader parse_frame_header(std::span<const uint8_t> bytes, uint64_t max_payload);

// Incremental decoder for a byte stream (used by the fuzz target and tests; the TCP channel
// reads header and payload directly). Throws MalformedInput on the first bad header.
class FrameDecoder {
 public:
  explicit FrameDecoder(uint64_t max_payload = kDefaultMaxFramePayload) : max_(max_payload) {}
  // Consumes bytes; complete frames become available through next().
  void feed(std::span<const uint8_t> bytes);
  bool next(Frame& out);
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  uint64_t max_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
  std::vector<Frame> ready_;
  size_t ready_pos_ = 0;
};

}  // namespace veil::mpc

#include "veil/mpc/network/frame.hpp"

#include <cstring>
#include <string>

#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"

namespace veil::mpc {

void encode_frame_header(const FrameHeader& h, std::span<uint8_t, kFrameHeaderSize> out) {
  uint8_t* p = out.data();
  store_le<uint32_t>(p, kFrameMagic);
  store_le<uint16_t>(p + 4, kFrameVersion);
  store_le<uint16_t>(p + 6, static_cast<uint16_t>(h.kind));
  store_le<uint32_t>(p + 8, h.tag);
  store_le<uint32_t>(p + 12, h.depth);
  store_le<uint64_t>(p + 16, h.length);
}

std::vector<uint8_t> encode_frame(const FrameHeader& h, std::span<const uint8_t> payload) {
  FrameHeader hh = h;
  hh.length = payload.size();
  std::vector<uint8_t> out(kFrameHeaderSize + payload.size());
  encode_frame_header(hh, std::span<uint8_t, kFrameHeaderSize>(out.data(), kFrameHeaderSize));
  if (!payload.empty()) std::memcpy(out.data() + kFrameHeaderSize, payload.data(), payload.size());
  return out;
}

FrameHeader parse_frame_header(std::span<const uint8_t> bytes, uint64_t max_payload) {
  if (bytes.size() < kFrameHeaderSize) throw MalformedInput("frame: truncated header");
  const uint8_t* p = bytes.data();
  if (load_le<uint32_t>(p) != kFrameMagic) throw MalformedInput("frame: bad magic");
  uint16_t version = load_le<uint16_t>(p + 4);
  if (version != kFrameVersion)
    throw MalformedInput("frame: unsupported version " + std::to_string(version));
  uint16_t kind = load_le<uint16_t>(p + 6);
  if (kind > static_cast<uint16_t>(FrameKind::Heartbeat))
    throw MalformedInput("frame: unknown kind " + std::to_string(kind));
  FrameHeader h;
  h.kind = static_cast<FrameKind>(kind);
  h.tag = load_le<uint32_t>(p + 8);
  h.depth = load_le<uint32_t>(p + 12);
  h.length = load_le<uint64_t>(p + 16);
  if (h.length > max_payload)
    throw MalformedInput("frame: payload of " + std::to_string(h.length) +
                         " bytes exceeds the limit of " + std::to_string(max_payload));
  if (h.kind == FrameKind::Heartbeat && h.length != 0)
    throw MalformedInput("frame: heartbeat with a payload");
  return h;
}

void FrameDecoder::feed(std::span<const uint8_t> bytes) {
  buf_.insert(buf_.end(), bytes.begin(), bytes.end());
  for (;;) {
    size_t avail = buf_.size() - pos_;
    if (avail < kFrameHeaderSize) break;
    FrameHeader h = parse_frame_header(std::span(buf_.data() + pos_, avail), max_);
    if (avail - kFrameHeaderSize < h.length) break;  // wait for the rest of the payload
    Frame f;
    f.header = h;
    const uint8_t* body = buf_.data() + pos_ + kFrameHeaderSize;
    f.payload.assign(body, body + h.length);
    ready_.push_back(std::move(f));
    pos_ += kFrameHeaderSize + h.length;
  }
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > (1u << 20)) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
    pos_ = 0;
  }
}

bool FrameDecoder::next(Frame& out) {
  if (ready_pos_ >= ready_.size()) {
    ready_.clear();
    ready_pos_ = 0;
    return false;
  }
  out = std::move(ready_[ready_pos_++]);
  return true;
}

}  // namespace veil::mpc

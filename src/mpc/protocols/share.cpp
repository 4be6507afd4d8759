#include "veil/mpc/protocols/share.hpp"

#include "veil/core/error.hpp"

namespace veil::mpc {
namespace {

constexpr uint32_t kPrgInputMask = 1;

void require_data(const RingTensor& t, const char* what) {
  if (!t.has_data())
    throw InvalidArgument(std::string(what) + ": this party must pass the tensor's values");
}

RingTensor share_owned(Party& p, const RingTensor& x, Role owner) {
  p.begin_op();
  const int64_t n = x.numel();
  if (p.is(Role::Helper)) return RingTensor::shape_only(x.shape);
  RingTensor mask = RingTensor::zeros(x.shape);
  p.shared_prg(p.is(Role::Client) ? Role::Server : Role::Client, kPrgInputMask)
      .fill(std::span<uint64_t>(mask.data));
  if (!p.is(owner)) return mask;
  require_data(x, "share input");
  for (int64_t i = 0; i < n; ++i) mask.data[i] = x.data[i] - mask.data[i];
  return mask;
}

}  // namespace

RingTensor share_client_input(Party& p, const RingTensor& x) {
  return share_owned(p, x, Role::Client);
}

RingTensor share_server_input(Party& p, const RingTensor& x) {
  return share_owned(p, x, Role::Server);
}

RingTensor reveal_to_client(Party& p, const RingTensor& x) {
  p.begin_op();
  const size_t n = static_cast<size_t>(x.numel());
  if (p.is(Role::Helper)) return RingTensor::shape_only(x.shape);
  require_data(x, "reveal_to_client");
  if (p.is(Role::Server)) {
    p.send_u64(Role::Client, Tag::Reveal, x.data);
    return RingTensor::shape_only(x.shape);
  }
  std::vector<uint64_t> other = p.recv_u64(Role::Server, Tag::Reveal, n);
  RingTensor out = x;
  for (size_t i = 0; i < n; ++i) out.data[i] += other[i];
  return out;
}

RingTensor add(const RingTensor& a, const RingTensor& b) {
  if (a.shape != b.shape) throw InvalidArgument("mpc add: shapes differ");
  if (a.data.size() != b.data.size()) throw InvalidArgument("mpc add: one operand has no data");
  RingTensor out = a;
  for (size_t i = 0; i < out.data.size(); ++i) out.data[i] += b.data[i];
  return out;
}

RingTensor sub(const RingTensor& a, const RingTensor& b) {
  if (a.shape != b.shape) throw InvalidArgument("mpc sub: shapes differ");
  if (a.data.size() != b.data.size()) throw InvalidArgument("mpc sub: one operand has no data");
  RingTensor out = a;
  for (size_t i = 0; i < out.data.size(); ++i) out.data[i] -= b.data[i];
  return out;
}

RingTensor concat(const std::vector<const RingTensor*>& parts, int64_t axis) {
  if (parts.empty()) throw InvalidArgument("mpc concat: no inputs");
  const Shape& first = parts[0]->shape;
  const int64_t rank = static_cast<int64_t>(first.size());
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) throw InvalidArgument("mpc concat: axis out of range");
  Shape out_shape = first;
  out_shape[static_cast<size_t>(axis)] = 0;
  size_t with_data = 0, without = 0;  // parts with elements
  for (const RingTensor* t : parts) {
    if (static_cast<int64_t>(t->shape.size()) != rank)
      throw InvalidArgument("mpc concat: ranks differ");
    for (int64_t d = 0; d < rank; ++d)
      if (d != axis && t->shape[static_cast<size_t>(d)] != first[static_cast<size_t>(d)])
        throw InvalidArgument("mpc concat: shapes differ off the axis");
    out_shape[static_cast<size_t>(axis)] += t->shape[static_cast<size_t>(axis)];
    if (t->numel() > 0) ++(t->data.empty() ? without : with_data);
  }
  RingTensor out = RingTensor::shape_only(out_shape);
  if (without > 0) {  // the helper: shapes only
    if (with_data > 0) throw InvalidArgument("mpc concat: one operand has no data");
    return out;
  }
  // Row-major: the outer dimensions (before the axis) iterate, each part contributes one
  // contiguous block of axis * inner elements per outer index.
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= first[static_cast<size_t>(d)];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= first[static_cast<size_t>(d)];
  out.data.reserve(static_cast<size_t>(out.numel()));
  for (int64_t o = 0; o < outer; ++o)
    for (const RingTensor* t : parts) {
      const int64_t block = t->shape[static_cast<size_t>(axis)] * inner;
      const uint64_t* src = t->data.data() + o * block;
      out.data.insert(out.data.end(), src, src + block);
    }
  return out;
}

RingTensor mul_public(const RingTensor& a, uint64_t c) {
  RingTensor out = a;
  for (auto& v : out.data) v *= c;
  return out;
}

RingTensor add_public(const Party& p, const RingTensor& a, uint64_t c) {
  RingTensor out = a;
  if (p.is(Role::Client))
    for (auto& v : out.data) v += c;
  return out;
}

RingTensor add_server_channel_bias(const Party& p, const RingTensor& a, const RingTensor& bias) {
  if (a.shape.size() < 2) throw InvalidArgument("add_server_channel_bias: rank < 2");
  const int64_t channels = a.shape[1];
  if (bias.numel() != channels)
    throw InvalidArgument("add_server_channel_bias: bias has " + std::to_string(bias.numel()) +
                          " values for " + std::to_string(channels) + " channels");
  RingTensor out = a;
  if (!p.is(Role::Server)) return out;
  require_data(bias, "add_server_channel_bias");
  require_data(a, "add_server_channel_bias");
  int64_t inner = 1;
  for (size_t d = 2; d < a.shape.size(); ++d) inner *= a.shape[d];
  const int64_t outer = a.numel() / std::max<int64_t>(1, channels * inner);
  for (int64_t n = 0; n < outer; ++n)
    for (int64_t c = 0; c < channels; ++c) {
      uint64_t* row = out.data.data() + (n * channels + c) * inner;
      for (int64_t i = 0; i < inner; ++i) row[i] += bias.data[c];
    }
  return out;
}

RingTensor truncate(const Party& p, const RingTensor& x, int bits) {
  if (bits < 0 || bits > 62) throw InvalidArgument("truncate: bits out of range");
  RingTensor out = x;
  if (p.is(Role::Client)) {
    for (auto& v : out.data) v >>= bits;
  } else if (p.is(Role::Server)) {
    for (auto& v : out.data) v = -((-v) >> bits);
  }
  return out;
}

}  // namespace veil::mpc

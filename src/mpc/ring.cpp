#include "veil/mpc/ring.hpp"

#include <array>
#include <bit>
#include <cmath>
#include <cstring>

#include "veil/core/error.hpp"

namespace veil::mpc {

static_assert(std::endian::native == std::endian::little,
              "veil::mpc serialises u64 words with memcpy and needs a little-endian host");

namespace {
// Indexed by Role (whose values are fixed: they index arrays and appear on the wire).
constexpr std::array<const char*, 3> kRoleNames = {"client", "server", "helper"};
}  // namespace

const char* role_name(Role role) {
  const auto i = static_cast<size_t>(role);
  return i < kRoleNames.size() ? kRoleNames[i] : "unknown";
}

Role role_from_name(const std::string& name) {
  for (size_t i = 0; i < kRoleNames.size(); ++i)
    if (name == kRoleNames[i]) return static_cast<Role>(i);
  throw InvalidArgument("unknown role '" + name + "' (client, server or helper)");
}

RingTensor::RingTensor(Shape s, std::vector<uint64_t> d) : shape(std::move(s)), data(std::move(d)) {
  if (static_cast<int64_t>(data.size()) != shape_numel(shape))
    throw InvalidArgument("RingTensor: " + std::to_string(data.size()) +
                          " values do not fit shape " + shape_to_string(shape));
}

RingTensor RingTensor::zeros(Shape s) {
  RingTensor t;
  t.data.assign(static_cast<size_t>(shape_numel(s)), 0);
  t.shape = std::move(s);
  return t;
}

RingTensor RingTensor::shape_only(Shape s) {
  shape_numel(s);  // validates the dimensions
  RingTensor t;
  t.shape = std::move(s);
  return t;
}

int64_t RingTensor::numel() const { return shape_numel(shape); }

uint64_t encode_fixed(double value, int frac_bits) {
  if (frac_bits < 0 || frac_bits > 40) throw InvalidArgument("fixed point: frac_bits out of range");
  if (!std::isfinite(value)) throw InvalidArgument("fixed point: cannot encode NaN or infinity");
  double scaled = std::round(std::ldexp(value, frac_bits));
  if (std::fabs(scaled) >= 0x1p62)
    throw InvalidArgument("fixed point: value " + std::to_string(value) + " out of range");
  return static_cast<uint64_t>(static_cast<int64_t>(scaled));
}

double decode_fixed(uint64_t value, int frac_bits) {
  return std::ldexp(static_cast<double>(static_cast<int64_t>(value)), -frac_bits);
}

RingTensor encode_tensor(const Tensor& t, int frac_bits) {
  std::vector<float> f = t.to_floats();
  RingTensor r = RingTensor::zeros(t.shape());
  for (size_t i = 0; i < f.size(); ++i) r.data[i] = encode_fixed(f[i], frac_bits);
  return r;
}

Tensor decode_tensor(const RingTensor& t, int frac_bits) {
  if (!t.has_data()) throw InvalidArgument("decode_tensor: tensor holds no values");
  std::vector<float> f(t.data.size());
  for (size_t i = 0; i < f.size(); ++i)
    f[i] = static_cast<float>(decode_fixed(t.data[i], frac_bits));
  return Tensor::from_floats(t.shape, std::move(f));
}

Bytes to_bytes(const std::vector<uint64_t>& v) {
  Bytes b(v.size() * 8);
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<uint64_t> u64s_from_bytes(std::span<const uint8_t> b) {
  if (b.size() % 8 != 0) throw ProtocolError("message length is not a multiple of 8");
  std::vector<uint64_t> v(b.size() / 8);
  if (!v.empty()) std::memcpy(v.data(), b.data(), b.size());
  return v;
}

}  // namespace veil::mpc

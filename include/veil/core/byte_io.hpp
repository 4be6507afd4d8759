// Little-endian binary encoding for every veil format (key files, CKKS objects, MPC frames, .npy,
// TensorProto raw data). The byte order is explicit, so the encodings do not depend on the host;
// ByteReader never reads past the end of its input and throws MalformedInput naming the format
// (the caller's `context`) and the field when the input is too short.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace veil {

namespace detail {
template <typename U>
constexpr U byteswap(U v) {
  if constexpr (sizeof(U) == 1) return v;
  if constexpr (sizeof(U) == 2) return __builtin_bswap16(v);
  if constexpr (sizeof(U) == 4) return __builtin_bswap32(v);
  if constexpr (sizeof(U) == 8) return __builtin_bswap64(v);
}
template <size_t N>
using UintOf = std::conditional_t<
    N == 1, uint8_t,
    std::conditional_t<N == 2, uint16_t, std::conditional_t<N == 4, uint32_t, uint64_t>>>;
}  // namespace detail

// Unsigned integer of `sizeof(T)` bytes at `p`, little-endian, reinterpreted as T (an integer or
// float type of 1, 2, 4 or 8 bytes).
template <typename T>
inline T load_le(const uint8_t* p) {
  static_assert(sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8);
  using U = detail::UintOf<sizeof(T)>;
  U u;
  std::memcpy(&u, p, sizeof(U));
  if constexpr (std::endian::native == std::endian::big) u = detail::byteswap(u);
  return std::bit_cast<T>(u);
}

template <typename T>
inline void store_le(uint8_t* p, T v) {
  static_assert(sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8);
  using U = detail::UintOf<sizeof(T)>;
  U u = std::bit_cast<U>(v);
  if constexpr (std::endian::native == std::endian::big) u = detail::byteswap(u);
  std::memcpy(p, &u, sizeof(U));
}

// An unsigned value of `bytes` (1..8) bytes, for formats whose field width is data (.npy header
// length, element sizes).
inline uint64_t load_le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Big-endian: only the IDX (MNIST) header fields are stored this way.
inline uint32_t load_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// A bounded reader over untrusted bytes. Every read checks the remaining length first; errors
// read "<context>: truncated while reading <what>".
class ByteReader {
 public:
  ByteReader(std::span<const uint8_t> in, std::string context)
      : in_(in), context_(std::move(context)) {}

  size_t remaining() const { return in_.size() - pos_; }
  size_t position() const { return pos_; }
  const std::string& context() const { return context_; }

  // Throws unless `n` more bytes are present (n may be a computed total, checked before a
  // caller allocates for it).
  void need(uint64_t n, const char* what = nullptr) const {
    if (n > remaining()) truncated(what);
  }

  uint8_t u8(const char* what = nullptr) { return take<uint8_t>(what); }
  uint16_t u16(const char* what = nullptr) { return take<uint16_t>(what); }
  uint32_t u32(const char* what = nullptr) { return take<uint32_t>(what); }
  uint64_t u64(const char* what = nullptr) { return take<uint64_t>(what); }
  int64_t i64(const char* what = nullptr) { return take<int64_t>(what); }
  float f32(const char* what = nullptr) { return take<float>(what); }
  double f64(const char* what = nullptr) { return take<double>(what); }

  // The next `n` bytes, without copying (valid as long as the input is).
  std::span<const uint8_t> bytes(size_t n, const char* what = nullptr) {
    need(n, what);
    auto s = in_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  // Fills `out` with the next out.size() bytes.
  void read(std::span<uint8_t> out, const char* what = nullptr) {
    auto s = bytes(out.size(), what);
    if (!s.empty()) std::memcpy(out.data(), s.data(), s.size());
  }
  // A u32 length followed by that many bytes; the length must not exceed max_len.
  std::string str(size_t max_len, const char* what);

  // A u32 (count) or u64 (count64) element count, refused when above `max` or when the input
  // cannot hold `count` items of at least `min_item_bytes` each, so callers may reserve for it.
  uint32_t count(uint64_t max, const char* what, uint64_t min_item_bytes = 0);
  uint64_t count64(uint64_t max, const char* what, uint64_t min_item_bytes = 0);

  // Throws if any byte is left.
  void expect_end() const;

  // Throws MalformedInput("<context>: <message>").
  [[noreturn]] void fail(const std::string& message) const;

 private:
  template <typename T>
  T take(const char* what) {
    need(sizeof(T), what);
    T v = load_le<T>(in_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }
  [[noreturn]] void truncated(const char* what) const;
  void check_count(uint64_t n, uint64_t max, const char* what, uint64_t min_item_bytes) const;

  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  std::string context_;
};

// Appends little-endian values to a byte vector.
class ByteWriter {
 public:
  ByteWriter() = default;

  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { put(v); }
  void u32(uint32_t v) { put(v); }
  void u64(uint64_t v) { put(v); }
  void i64(int64_t v) { put(v); }
  void f32(float v) { put(v); }
  void f64(double v) { put(v); }
  // An unsigned value in `bytes` (1..8) bytes.
  void uint(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void bytes(std::span<const uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void bytes(std::string_view s) { out_.insert(out_.end(), s.begin(), s.end()); }
  // A u32 length and the bytes of `s` (the counterpart of ByteReader::str).
  void str(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    bytes(s);
  }
  // An array of values, each in sizeof(T) little-endian bytes.
  template <typename T>
  void array(std::span<const T> values) {
    const size_t at = out_.size();
    out_.resize(at + sizeof(T) * values.size());
    uint8_t* p = out_.data() + at;
    for (size_t i = 0; i < values.size(); ++i) store_le<T>(p + sizeof(T) * i, values[i]);
  }
  void reserve(size_t n) { out_.reserve(n); }

  size_t size() const { return out_.size(); }
  std::vector<uint8_t>& out() { return out_; }
  std::vector<uint8_t> take() { return std::move(out_); }

 private:
  template <typename T>
  void put(T v) {
    const size_t at = out_.size();
    out_.resize(at + sizeof(T));
    store_le<T>(out_.data() + at, v);
  }
  std::vector<uint8_t> out_;
};

}  // namespace veil

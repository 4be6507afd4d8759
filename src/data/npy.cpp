// The .npy format: "\x93NUMPY", a major/minor version byte pair, a little-endian header length
// (2 bytes in version 1.0, 4 bytes in 2.0 and 3.0), then a Python dict literal with exactly the
// keys 'descr', 'fortran_order' and 'shape', padded with spaces and a newline, then the raw
// elements. See NumPy Enhancement Proposal 1 and numpy/lib/format.py's documentation.
#include "veil/data/npy.hpp"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "elements.hpp"
#include "quote.hpp"
#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"

namespace veil::data {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr uint64_t kMaxHeaderLen = 1 << 16;
constexpr size_t kMaxRank = 32;
constexpr uint64_t kMaxFileBytes = uint64_t{1} << 31;

struct NpyHeader {
  detail::ElemType type;
  bool fortran_order = false;
  Shape shape;
};

// A recursive-descent parser for the restricted literal grammar numpy writes:
//   dict  := '{' (item ',')* [item [',']] '}'
//   item  := str ':' value
//   value := str | 'True' | 'False' | tuple
//   tuple := '(' ')' | '(' int ',' ')' | '(' int (',' int)+ [','] ')'
// with optional spaces between tokens. Python 2 era files may write integers as "3L".
class HeaderParser {
 public:
  HeaderParser(std::string_view text, std::string what) : s_(text), what_(std::move(what)) {}

  NpyHeader parse() {
    std::optional<std::string> descr;
    std::optional<bool> fortran;
    std::optional<Shape> shape;
    skip_ws();
    expect('{');
    skip_ws();
    while (!peek('}')) {
      std::string key = parse_str();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        if (descr) fail("duplicate key 'descr'");
        descr = parse_str();
      } else if (key == "fortran_order") {
        if (fortran) fail("duplicate key 'fortran_order'");
        fortran = parse_bool();
      } else if (key == "shape") {
        if (shape) fail("duplicate key 'shape'");
        shape = parse_shape();
      } else {
        fail("unexpected key '" + key + "'");
      }
      skip_ws();
      if (peek(',')) {
        ++pos_;
        skip_ws();
      } else if (!peek('}')) {
        fail("expected ',' or '}' at offset " + std::to_string(pos_));
      }
    }
    ++pos_;
    // numpy pads with spaces and ends the header with a newline; nothing else may follow.
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r'))
      ++pos_;
    if (pos_ != s_.size()) fail("unexpected text after the header dict");
    if (!descr) fail("missing key 'descr'");
    if (!fortran) fail("missing key 'fortran_order'");
    if (!shape) fail("missing key 'shape'");
    NpyHeader h;
    h.type = parse_descr(*descr);
    h.fortran_order = *fortran;
    h.shape = std::move(*shape);
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    throw MalformedInput(what_ + ": bad .npy header: " + msg);
  }
  bool peek(char c) const { return pos_ < s_.size() && s_[pos_] == c; }
  void expect(char c) {
    if (!peek(c)) fail(std::string("expected '") + c + "' at offset " + std::to_string(pos_));
    ++pos_;
  }
  void skip_ws() {
    while (pos_ < s_.size() && s_[pos_] == ' ') ++pos_;
  }

  std::string parse_str() {
    if (!peek('\'') && !peek('"')) fail("expected a string at offset " + std::to_string(pos_));
    char q = s_[pos_++];
    size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != q) {
      unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '\\' || c < 0x20 || c > 0x7e) fail("unsupported character in a string");
      ++pos_;
    }
    if (pos_ >= s_.size()) fail("unterminated string");
    std::string out(s_.substr(start, pos_ - start));
    ++pos_;
    return out;
  }

  bool parse_bool() {
    if (s_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (s_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    fail("expected True or False at offset " + std::to_string(pos_));
  }

  int64_t parse_int() {
    size_t start = pos_;
    int64_t v = 0;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
      int d = s_[pos_] - '0';
      if (v > (INT64_MAX - d) / 10) fail("dimension too large");
      v = v * 10 + d;
      ++pos_;
    }
    if (pos_ == start) fail("expected a non-negative integer at offset " + std::to_string(pos_));
    if (peek('L')) ++pos_;
    return v;
  }

  Shape parse_shape() {
    Shape shape;
    expect('(');
    skip_ws();
    if (peek(')')) {
      ++pos_;
      return shape;
    }
    bool trailing_comma = false;
    for (;;) {
      if (shape.size() == kMaxRank) fail("more than " + std::to_string(kMaxRank) + " dimensions");
      shape.push_back(parse_int());
      skip_ws();
      trailing_comma = false;
      if (peek(',')) {
        ++pos_;
        trailing_comma = true;
        skip_ws();
      }
      if (peek(')')) break;
      if (!trailing_comma) fail("expected ',' or ')' in the shape");
    }
    ++pos_;
    // "(3)" is a parenthesised integer in Python, not a tuple.
    if (shape.size() == 1 && !trailing_comma) fail("shape (n) must be written (n,)");
    return shape;
  }

  detail::ElemType parse_descr(const std::string& d) const {
    if (d.size() < 3) fail("unsupported dtype '" + d + "'");
    char order = d[0];
    char kind = d[1];
    std::string size = d.substr(2);
    detail::ElemType t;
    if (size == "1")
      t.bytes = 1;
    else if (size == "2")
      t.bytes = 2;
    else if (size == "4")
      t.bytes = 4;
    else if (size == "8")
      t.bytes = 8;
    else
      fail("unsupported dtype '" + d + "'");
    switch (kind) {
      case 'f':
        t.kind = detail::ElemKind::Float;
        if (t.bytes == 1) fail("unsupported dtype '" + d + "'");
        break;
      case 'i':
        t.kind = detail::ElemKind::Signed;
        break;
      case 'u':
        t.kind = detail::ElemKind::Unsigned;
        break;
      case 'b':
        t.kind = detail::ElemKind::Bool;
        if (t.bytes != 1) fail("unsupported dtype '" + d + "'");
        break;
      default:
        fail("unsupported dtype '" + d + "' (only float, int, uint and bool arrays)");
    }
    if (order == '>' && t.bytes > 1) fail("big-endian dtype '" + d + "' is not supported");
    bool ok = order == '<' || (t.bytes == 1 && (order == '|' || order == '>'));
    if (!ok) fail("unsupported byte order in dtype '" + d + "'");
    return t;
  }

  std::string_view s_;
  std::string what_;
  size_t pos_ = 0;
};

Tensor parse_npy_impl(const uint8_t* bytes, size_t size, const std::string& what) {
  if (size < kMagicLen + 2 || std::memcmp(bytes, kMagic, kMagicLen) != 0)
    throw MalformedInput(what + ": not a .npy file (bad magic)");
  const int major = bytes[6];
  const int minor = bytes[7];
  if (minor != 0 || major < 1 || major > 3)
    throw MalformedInput(what + ": unsupported .npy format version " + std::to_string(major) + "." +
                         std::to_string(minor));
  const size_t len_bytes = major == 1 ? 2 : 4;
  const size_t prefix = kMagicLen + 2 + len_bytes;
  if (size < prefix) throw MalformedInput(what + ": truncated .npy header");
  const uint64_t header_len = load_le(bytes + 8, static_cast<int>(len_bytes));
  if (header_len > kMaxHeaderLen)
    throw MalformedInput(what + ": .npy header of " + std::to_string(header_len) +
                         " bytes is larger than the limit of " + std::to_string(kMaxHeaderLen));
  if (size - prefix < header_len) throw MalformedInput(what + ": truncated .npy header");
  std::string_view text(reinterpret_cast<const char*>(bytes + prefix),
                        static_cast<size_t>(header_len));
  NpyHeader h = HeaderParser(text, what).parse();
  if (h.fortran_order)
    throw MalformedInput(what + ": Fortran-order arrays are not supported (save with C order)");

  const size_t offset = prefix + static_cast<size_t>(header_len);
  const uint64_t avail = size - offset;
  const uint64_t item = static_cast<uint64_t>(h.type.bytes);
  // The element count is bounded by the bytes actually present before anything is allocated.
  uint64_t numel = 1;
  bool zero = false;
  for (int64_t d : h.shape) zero = zero || d == 0;
  if (!zero) {
    for (int64_t d : h.shape) {
      if (static_cast<uint64_t>(d) > avail / item / numel)
        throw MalformedInput(what + ": shape " + shape_to_string(h.shape) + " of " +
                             std::to_string(item) + "-byte elements needs more than the " +
                             std::to_string(avail) + " data bytes present (truncated?)");
      numel *= static_cast<uint64_t>(d);
    }
  } else {
    numel = 0;
  }
  if (numel * item != avail)
    throw MalformedInput(what + ": shape " + shape_to_string(h.shape) + " needs " +
                         std::to_string(numel * item) + " data bytes but " + std::to_string(avail) +
                         " are present" +
                         (numel * item > avail ? " (truncated)" : " (trailing data)"));

  const uint8_t* p = bytes + offset;
  const size_t n = static_cast<size_t>(numel);
  if (h.type.kind == detail::ElemKind::Float) {
    std::vector<float> values(n);
    for (size_t i = 0; i < n; ++i) values[i] = detail::decode_float(p + i * item, h.type.bytes);
    return Tensor::from_floats(std::move(h.shape), std::move(values));
  }
  std::vector<int64_t> values(n);
  for (size_t i = 0; i < n; ++i) values[i] = detail::decode_int(p + i * item, h.type, what);
  return Tensor::from_int64(std::move(h.shape), std::move(values));
}

}  // namespace

Tensor parse_npy(const uint8_t* bytes, size_t size) {
  return parse_npy_impl(bytes, size, ".npy data");
}

Tensor read_npy(const fs::path& path) {
  return detail::parse_file(path, kMaxFileBytes, parse_npy_impl);
}

void write_npy(const fs::path& path, const Tensor& tensor) {
  std::string shape = "(";
  for (size_t i = 0; i < tensor.shape().size(); ++i) {
    if (i) shape += ", ";
    shape += std::to_string(tensor.shape()[i]);
  }
  if (tensor.shape().size() == 1) shape += ",";
  shape += ")";
  const bool f32 = tensor.dtype() == DType::Float32;
  std::string header = std::string("{'descr': '") + (f32 ? "<f4" : "<i8") +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad so the data starts on a 64-byte boundary, as numpy does; the header ends in '\n'.
  size_t prefix = kMagicLen + 2 + 2;
  size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  int major = 1;
  if (total - prefix > 0xffff) {
    major = 2;
    prefix += 2;
    total = (prefix + header.size() + 1 + 63) / 64 * 64;
  }
  header.append(total - prefix - header.size() - 1, ' ');
  header.push_back('\n');

  const size_t item = f32 ? 4 : 8;
  ByteWriter w;
  w.reserve(total + static_cast<size_t>(tensor.numel()) * item);
  w.bytes(std::string_view(kMagic, kMagicLen));
  w.u8(static_cast<uint8_t>(major));
  w.u8(0);
  w.uint(header.size(), major == 1 ? 2 : 4);
  w.bytes(header);
  if (f32)
    w.array(tensor.floats());
  else
    w.array(tensor.int64s());
  write_file_atomic(path, w.out());
}

Tensor read_tensor(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".npy") return read_npy(path);
  if (ext == ".pb") return read_tensor_proto(path);
  throw InvalidArgument("cannot tell the format of '" + path.string() +
                        "': expected a .npy (NumPy) or .pb (ONNX TensorProto) file");
}

}  // namespace veil::data

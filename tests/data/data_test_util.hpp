// Helpers for the data tests: a scratch directory, IDX/CIFAR byte builders and gzip via zlib.
#pragma once

#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace veil::data::test_util {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("veil_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

inline void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write test file " + path.string());
}

inline void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

// An IDX image file: magic 0x803, dims [n, h, w], then the pixel bytes.
inline std::vector<uint8_t> idx_images(uint32_t n, uint32_t h, uint32_t w,
                                       const std::vector<uint8_t>& pixels) {
  std::vector<uint8_t> out;
  put_be32(out, 0x00000803);
  put_be32(out, n);
  put_be32(out, h);
  put_be32(out, w);
  out.insert(out.end(), pixels.begin(), pixels.end());
  return out;
}

inline std::vector<uint8_t> idx_labels(uint32_t n, const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> out;
  put_be32(out, 0x00000801);
  put_be32(out, n);
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

// gzip (RFC 1952) via zlib's deflate with the gzip wrapper.
inline std::vector<uint8_t> gzip(const std::vector<uint8_t>& in) {
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("deflateInit2");
  std::vector<uint8_t> out(deflateBound(&zs, static_cast<uLong>(in.size())) + 32);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate");
  out.resize(zs.total_out);
  return out;
}

// Deterministic test bytes (a simple LCG; not for anything secret).
inline std::vector<uint8_t> pattern(size_t n, uint32_t seed, uint32_t modulo = 256) {
  std::vector<uint8_t> out(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : out) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<uint8_t>((x >> 16) % modulo);
  }
  return out;
}

}  // namespace veil::data::test_util

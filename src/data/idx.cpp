#include "veil/data/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <system_error>

#include "idx_internal.hpp"
#include "quote.hpp"
#include "veil/core/byte_io.hpp"
#include "veil/core/error.hpp"

namespace veil::data {

namespace fs = std::filesystem;

namespace {

constexpr uint32_t kImageMagic = 0x00000803;
constexpr uint32_t kLabelMagic = 0x00000801;
constexpr size_t kChunk = size_t{1} << 20;

// A forward-only stream of bytes. read() returns fewer than `n` bytes only at the end of the
// data and throws MalformedInput when the underlying (compressed) stream is corrupt.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual size_t read(uint8_t* out, size_t n) = 0;
};

class MemorySource : public ByteSource {
 public:
  MemorySource(const uint8_t* bytes, size_t size) : bytes_(bytes), size_(size) {}
  size_t read(uint8_t* out, size_t n) override {
    size_t k = std::min(n, size_ - pos_);
    if (k) std::memcpy(out, bytes_ + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  const uint8_t* bytes_;
  size_t size_;
  size_t pos_ = 0;
};

// gzip held in memory, possibly several concatenated members (RFC 1952, section 2.2), as gzip
// itself writes when files are appended. Anything after the last member is rejected.
class GzipMemorySource : public ByteSource {
 public:
  GzipMemorySource(const uint8_t* bytes, size_t size, std::string what) : what_(std::move(what)) {
    if (size > std::numeric_limits<uInt>::max())
      throw MalformedInput(what_ + ": gzip data of " + std::to_string(size) +
                           " bytes is too large to parse in memory");
    std::memset(&zs_, 0, sizeof zs_);
    if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) throw Error(what_ + ": cannot initialise zlib");
    // zlib takes a non-const pointer but never writes through next_in.
    zs_.next_in = const_cast<Bytef*>(bytes);
    zs_.avail_in = static_cast<uInt>(size);
  }
  ~GzipMemorySource() override { inflateEnd(&zs_); }
  GzipMemorySource(const GzipMemorySource&) = delete;
  GzipMemorySource& operator=(const GzipMemorySource&) = delete;

  size_t read(uint8_t* out, size_t n) override {
    size_t got = 0;
    while (got < n && !done_) {
      uInt want = static_cast<uInt>(std::min<size_t>(n - got, kChunk));
      zs_.next_out = out + got;
      zs_.avail_out = want;
      int rc = inflate(&zs_, Z_NO_FLUSH);
      got += want - zs_.avail_out;
      if (rc == Z_STREAM_END) {
        if (zs_.avail_in == 0) {
          done_ = true;
        } else {
          if (zs_.avail_in < 2 || zs_.next_in[0] != 0x1f || zs_.next_in[1] != 0x8b)
            throw MalformedInput(what_ + ": unexpected bytes after the end of the gzip stream");
          inflateReset(&zs_);
        }
      } else if (rc == Z_BUF_ERROR && zs_.avail_in == 0) {
        throw MalformedInput(what_ + ": truncated gzip stream");
      } else if (rc != Z_OK) {
        throw MalformedInput(what_ + ": corrupt gzip stream (" +
                             (zs_.msg ? std::string(zs_.msg) : std::to_string(rc)) + ")");
      }
    }
    return got;
  }

 private:
  std::string what_;
  z_stream zs_;
  bool done_ = false;
};

// A file read through zlib's gz* interface, which passes uncompressed files through unchanged,
// so raw and .gz IDX files share one path and only the bytes asked for are decompressed.
class GzFileSource : public ByteSource {
 public:
  explicit GzFileSource(const fs::path& path) : path_(path.string()) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
      throw IoError("cannot read '" + path_ + "': not a regular file or does not exist");
    file_ = gzopen(path_.c_str(), "rb");
    if (!file_) throw IoError("cannot open '" + path_ + "': " + std::strerror(errno));
    gzbuffer(file_, 1 << 17);
  }
  ~GzFileSource() override { gzclose(file_); }
  GzFileSource(const GzFileSource&) = delete;
  GzFileSource& operator=(const GzFileSource&) = delete;

  size_t read(uint8_t* out, size_t n) override {
    size_t got = 0;
    while (got < n) {
      unsigned want = static_cast<unsigned>(std::min<size_t>(n - got, kChunk));
      int k = gzread(file_, out + got, want);
      if (k < 0) fail();
      if (k == 0) {
        // gzread reports a cut-off gzip stream as a short read, not an error.
        int errnum = Z_OK;
        gzerror(file_, &errnum);
        if (errnum == Z_BUF_ERROR) throw MalformedInput("'" + path_ + "': truncated gzip stream");
        if (errnum != Z_OK) fail();
        break;
      }
      got += static_cast<size_t>(k);
    }
    return got;
  }

 private:
  [[noreturn]] void fail() {
    int errnum = Z_OK;
    const char* msg = gzerror(file_, &errnum);
    if (errnum == Z_ERRNO) throw IoError("cannot read '" + path_ + "': " + std::strerror(errno));
    throw MalformedInput("'" + path_ + "': corrupt gzip stream (" + (msg ? msg : "?") + ")");
  }

  std::string path_;
  gzFile file_ = nullptr;
};

std::unique_ptr<ByteSource> memory_source(const uint8_t* bytes, size_t size,
                                          const std::string& what) {
  if (size >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b)
    return std::make_unique<GzipMemorySource>(bytes, size, what);
  return std::make_unique<MemorySource>(bytes, size);
}

uint32_t read_be32(ByteSource& src, const std::string& what, const char* field) {
  std::array<uint8_t, 4> b{};
  if (src.read(b.data(), 4) != 4)
    throw MalformedInput(what + ": truncated header (missing " + field + ")");
  return load_be32(b.data());
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

void check_magic(uint32_t magic, uint32_t expected, const std::string& what) {
  if (magic == expected) return;
  std::string msg = what + ": bad magic " + hex32(magic) + ", expected " + hex32(expected);
  if (expected == kImageMagic && magic == kLabelMagic) msg += " (this is a label file)";
  if (expected == kLabelMagic && magic == kImageMagic) msg += " (this is an image file)";
  if (expected == kImageMagic)
    msg += " for IDX images";
  else
    msg += " for IDX labels";
  throw MalformedInput(msg);
}

int64_t checked_count(uint32_t n, const std::string& what) {
  if (n > kIdxMaxItems)
    throw MalformedInput(what + ": header declares " + std::to_string(n) +
                         " items, more than the limit of " + std::to_string(kIdxMaxItems));
  return n;
}

int64_t kept(int64_t declared, int64_t limit) {
  if (limit < 0) throw InvalidArgument("limit must be >= 0, got " + std::to_string(limit));
  return limit > 0 ? std::min(declared, limit) : declared;
}

// When the whole file was consumed it must end exactly where the header says it does.
void expect_end(ByteSource& src, int64_t declared, const std::string& what, const char* items) {
  uint8_t extra;
  if (src.read(&extra, 1) != 0)
    throw MalformedInput(what + ": trailing data after the " + std::to_string(declared) + " " +
                         items + " the header declares");
}

// Reads `count` bytes in bounded chunks, so memory grows only as data actually arrives and a
// header that lies about its size cannot make us allocate up front.
template <typename Sink>
void read_payload(ByteSource& src, int64_t count, const std::string& what, const char* items,
                  int64_t item_bytes, Sink sink) {
  std::vector<uint8_t> buf(static_cast<size_t>(std::min<int64_t>(count, kChunk)));
  int64_t done = 0;
  while (done < count) {
    size_t want = static_cast<size_t>(std::min<int64_t>(count - done, kChunk));
    size_t got = src.read(buf.data(), want);
    sink(buf.data(), got);
    done += static_cast<int64_t>(got);
    if (got < want)
      throw MalformedInput(what + ": truncated data: " + std::to_string(done / item_bytes) +
                           " complete " + items + " where " + std::to_string(count / item_bytes) +
                           " were expected");
  }
}

detail::IdxImages parse_images(ByteSource& src, int64_t limit, const std::string& what) {
  check_magic(read_be32(src, what, "magic"), kImageMagic, what);
  int64_t n = checked_count(read_be32(src, what, "image count"), what);
  int64_t h = read_be32(src, what, "height");
  int64_t w = read_be32(src, what, "width");
  if (h < 1 || w < 1 || h > kIdxMaxSide || w > kIdxMaxSide)
    throw MalformedInput(what + ": image size " + std::to_string(h) + "x" + std::to_string(w) +
                         " is outside 1x1 .. " + std::to_string(kIdxMaxSide) + "x" +
                         std::to_string(kIdxMaxSide));
  if (n * h * w > kIdxMaxTotalPixels)
    throw MalformedInput(what + ": " + std::to_string(n) + " images of " + std::to_string(h) + "x" +
                         std::to_string(w) + " exceed the limit of " +
                         std::to_string(kIdxMaxTotalPixels) + " pixels");
  int64_t keep = kept(n, limit);
  std::vector<float> pixels;
  std::array<float, 256> scale;
  for (int v = 0; v < 256; ++v) scale[v] = static_cast<float>(v) / 255.0f;
  read_payload(src, keep * h * w, what, "images", h * w, [&](const uint8_t* p, size_t k) {
    const size_t old = pixels.size();
    pixels.resize(old + k);
    float* dst = pixels.data() + old;
    for (size_t i = 0; i < k; ++i) dst[i] = scale[p[i]];
  });
  if (keep == n) expect_end(src, n, what, "images");
  detail::IdxImages out;
  out.declared = n;
  out.images = Tensor::from_floats({keep, 1, h, w}, std::move(pixels));
  return out;
}

detail::IdxLabels parse_labels(ByteSource& src, int64_t num_classes, int64_t limit,
                               const std::string& what) {
  if (num_classes < 1 || num_classes > kIdxMaxClasses)
    throw InvalidArgument("num_classes must be in [1, " + std::to_string(kIdxMaxClasses) +
                          "], got " + std::to_string(num_classes));
  check_magic(read_be32(src, what, "magic"), kLabelMagic, what);
  int64_t n = checked_count(read_be32(src, what, "label count"), what);
  int64_t keep = kept(n, limit);
  detail::IdxLabels out;
  out.declared = n;
  read_payload(src, keep, what, "labels", 1, [&](const uint8_t* p, size_t k) {
    for (size_t i = 0; i < k; ++i) {
      if (p[i] >= num_classes)
        throw MalformedInput(what + ": label " + std::to_string(p[i]) + " at index " +
                             std::to_string(out.labels.size()) + " is outside [0, " +
                             std::to_string(num_classes) + ")");
      out.labels.push_back(p[i]);
    }
  });
  if (keep == n) expect_end(src, n, what, "labels");
  return out;
}

}  // namespace

namespace detail {

IdxImages load_idx_images(const fs::path& path, int64_t limit) {
  GzFileSource src(path);
  return parse_images(src, limit, detail::quoted(path));
}

IdxLabels load_idx_labels(const fs::path& path, int64_t num_classes, int64_t limit) {
  GzFileSource src(path);
  return parse_labels(src, num_classes, limit, detail::quoted(path));
}

}  // namespace detail

Tensor parse_idx_images(const uint8_t* bytes, size_t size, int64_t limit, const std::string& what) {
  auto src = memory_source(bytes, size, what);
  return parse_images(*src, limit, what).images;
}

std::vector<int32_t> parse_idx_labels(const uint8_t* bytes, size_t size, int64_t num_classes,
                                      int64_t limit, const std::string& what) {
  auto src = memory_source(bytes, size, what);
  return parse_labels(*src, num_classes, limit, what).labels;
}

Tensor read_idx_images(const fs::path& path, int64_t limit) {
  return detail::load_idx_images(path, limit).images;
}

std::vector<int32_t> read_idx_labels(const fs::path& path, int64_t num_classes, int64_t limit) {
  return detail::load_idx_labels(path, num_classes, limit).labels;
}

}  // namespace veil::data

#include "veil/data/cifar.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#include "quote.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"

namespace veil::data {

namespace fs = std::filesystem;

namespace {

bool exists_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

// Reads the first `bytes` bytes of a file whose size is already known to be at least that.
std::vector<uint8_t> read_prefix(const fs::path& path, uint64_t bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open " + detail::quoted(path) + ": " + std::strerror(errno));
  std::vector<uint8_t> out(static_cast<size_t>(bytes));
  if (bytes && !in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(bytes)))
    throw IoError("cannot read " + detail::quoted(path));
  return out;
}

// One name per line; blank lines (the CIFAR-10 meta file ends with some) are skipped. Returns
// an empty list unless the file names exactly `expected` classes.
std::vector<std::string> read_class_names(const fs::path& path, int64_t expected) {
  if (!exists_file(path)) return {};
  std::string text = read_text_file(path, 1 << 20);
  std::vector<std::string> names;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    size_t first = line.find_first_not_of(" \t");
    if (first != std::string::npos) names.push_back(line.substr(first));
    pos = end + 1;
  }
  if (static_cast<int64_t>(names.size()) != expected) return {};
  return names;
}

std::vector<fs::path> split_files(const fs::path& dir, CifarKind kind, Split split) {
  if (kind == CifarKind::Cifar100)
    return {dir / (split == Split::Train ? "train.bin" : "test.bin")};
  if (split == Split::Test) return {dir / "test_batch.bin"};
  // The five training batches; a prefix of them may be present (a partial download), but
  // not a set with holes, which would silently drop data.
  std::vector<fs::path> files;
  bool gap = false;
  for (int i = 1; i <= 5; ++i) {
    fs::path p = dir / ("data_batch_" + std::to_string(i) + ".bin");
    if (!exists_file(p)) {
      gap = true;
      if (i == 1) return {p};  // reported as missing by the loader
      continue;
    }
    if (gap)
      throw MalformedInput("CIFAR-10 in " + detail::quoted(dir) + ": " + detail::quoted(p) +
                           " is present but an earlier data_batch file is missing");
    files.push_back(p);
  }
  return files;
}

}  // namespace

int64_t cifar_record_bytes(CifarKind kind) {
  return kCifarPixels + (kind == CifarKind::Cifar10 ? 1 : 2);
}

int64_t cifar_num_classes(CifarKind kind) { return kind == CifarKind::Cifar10 ? 10 : 100; }

void parse_cifar_records(const uint8_t* bytes, size_t size, CifarKind kind, int64_t limit,
                         std::vector<float>& images, std::vector<int32_t>& labels,
                         const std::string& what) {
  if (limit < 0) throw InvalidArgument("limit must be >= 0, got " + std::to_string(limit));
  const uint64_t rec = static_cast<uint64_t>(cifar_record_bytes(kind));
  if (size % rec != 0)
    throw MalformedInput(what + ": size " + std::to_string(size) + " is not a multiple of the " +
                         std::to_string(rec) + "-byte CIFAR record (truncated or not a CIFAR-" +
                         (kind == CifarKind::Cifar10 ? "10" : "100") + " batch)");
  uint64_t n = size / rec;
  if (limit > 0) n = std::min<uint64_t>(n, static_cast<uint64_t>(limit));
  const int64_t classes = cifar_num_classes(kind);
  // Check every label before growing the outputs, so a bad file leaves them unchanged.
  for (uint64_t i = 0; i < n; ++i) {
    const uint8_t* r = bytes + i * rec;
    int label = kind == CifarKind::Cifar10 ? r[0] : r[1];
    if (kind == CifarKind::Cifar100 && r[0] >= 20)
      throw MalformedInput(what + ": coarse label " + std::to_string(r[0]) + " of record " +
                           std::to_string(i) + " is outside [0, 20)");
    if (label >= classes)
      throw MalformedInput(what + ": label " + std::to_string(label) + " of record " +
                           std::to_string(i) + " is outside [0, " + std::to_string(classes) + ")");
  }
  images.reserve(images.size() + n * kCifarPixels);
  labels.reserve(labels.size() + n);
  const uint64_t skip = rec - kCifarPixels;
  for (uint64_t i = 0; i < n; ++i) {
    const uint8_t* r = bytes + i * rec;
    labels.push_back(kind == CifarKind::Cifar10 ? r[0] : r[1]);
    for (uint64_t j = 0; j < static_cast<uint64_t>(kCifarPixels); ++j)
      images.push_back(static_cast<float>(r[skip + j]) / 255.0f);
  }
}

bool detect_cifar(const fs::path& dir, CifarKind& kind, fs::path& data_dir) {
  for (const fs::path& d : {dir, dir / "cifar-10-batches-bin", dir / "cifar-100-binary"}) {
    if (exists_file(d / "data_batch_1.bin") || exists_file(d / "test_batch.bin")) {
      kind = CifarKind::Cifar10;
      data_dir = d;
      return true;
    }
    if (exists_file(d / "train.bin") || exists_file(d / "test.bin")) {
      kind = CifarKind::Cifar100;
      data_dir = d;
      return true;
    }
  }
  return false;
}

Dataset load_cifar(const fs::path& dir, CifarKind kind, Split split, int64_t limit) {
  if (limit < 0) throw InvalidArgument("limit must be >= 0, got " + std::to_string(limit));
  const uint64_t rec = static_cast<uint64_t>(cifar_record_bytes(kind));
  std::vector<float> images;
  std::vector<int32_t> labels;
  for (const fs::path& file : split_files(dir, kind, split)) {
    if (!exists_file(file))
      throw IoError("cannot read " + detail::quoted(file) + ": no such file (CIFAR-" +
                    (kind == CifarKind::Cifar10 ? "10" : "100") + " " +
                    (split == Split::Train ? "training" : "test") + " data)");
    std::error_code ec;
    uint64_t size = fs::file_size(file, ec);
    if (ec) throw IoError("cannot read " + detail::quoted(file) + ": " + ec.message());
    if (size > kCifarMaxFileBytes)
      throw MalformedInput(detail::quoted(file) + " is " + std::to_string(size) +
                           " bytes, more than the limit of " + std::to_string(kCifarMaxFileBytes));
    if (size % rec != 0)
      throw MalformedInput(detail::quoted(file) + ": size " + std::to_string(size) +
                           " is not a multiple of the " + std::to_string(rec) +
                           "-byte CIFAR record (truncated or not a CIFAR-" +
                           (kind == CifarKind::Cifar10 ? "10" : "100") + " batch)");
    uint64_t records = size / rec;
    if (limit > 0) {
      uint64_t want = static_cast<uint64_t>(limit) - labels.size();
      records = std::min(records, want);
    }
    std::vector<uint8_t> bytes = read_prefix(file, records * rec);
    parse_cifar_records(bytes.data(), bytes.size(), kind, 0, images, labels, detail::quoted(file));
    if (limit > 0 && static_cast<int64_t>(labels.size()) >= limit) break;
  }
  Dataset ds;
  ds.name = kind == CifarKind::Cifar10 ? "cifar10" : "cifar100";
  int64_t n = static_cast<int64_t>(labels.size());
  ds.images = Tensor::from_floats({n, 3, kCifarSide, kCifarSide}, std::move(images));
  ds.labels = std::move(labels);
  ds.num_classes = cifar_num_classes(kind);
  ds.class_names = kind == CifarKind::Cifar10 ? read_class_names(dir / "batches.meta.txt", 10)
                                              : read_class_names(dir / "fine_label_names.txt", 100);
  return ds;
}

}  // namespace veil::data

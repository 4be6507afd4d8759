#include "veil/data/dataset.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "idx_internal.hpp"
#include "quote.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"
#include "veil/data/cifar.hpp"
#include "veil/data/idx.hpp"

namespace veil::data {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFashionMnistDefaultDir = "/usr/share/datasets/fashion-mnist";
constexpr const char* kFashionMnistInstall =
    "install it with `apt-get install dataset-fashion-mnist` or point VEIL_FASHION_MNIST_DIR at "
    "a directory holding the four IDX files";

bool exists_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

bool exists_dir(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

// The names MNIST-style distributions use: train-images-idx3-ubyte (the original), with a dot
// instead of the second dash (another common spelling), each raw or gzipped.
std::vector<fs::path> idx_candidates(const fs::path& dir, Split split, bool images) {
  std::string prefix = split == Split::Train ? "train" : "t10k";
  std::string kind = images ? "images" : "labels";
  std::string idx = images ? "idx3" : "idx1";
  std::vector<fs::path> out;
  for (const std::string& base :
       {prefix + "-" + kind + "-" + idx + "-ubyte", prefix + "-" + kind + "." + idx + "-ubyte"}) {
    out.push_back(dir / base);
    out.push_back(dir / (base + ".gz"));
  }
  return out;
}

fs::path find_idx(const fs::path& dir, Split split, bool images) {
  for (const fs::path& p : idx_candidates(dir, split, images))
    if (exists_file(p)) return p;
  return {};
}

bool has_idx(const fs::path& dir) {
  for (Split s : {Split::Train, Split::Test})
    if (!find_idx(dir, s, true).empty()) return true;
  return false;
}

std::vector<std::string> fashion_mnist_classes() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
}

// Optional class_names.txt next to a generic IDX set: one name per line.
std::vector<std::string> read_idx_class_names(const fs::path& dir) {
  fs::path p = dir / "class_names.txt";
  if (!exists_file(p)) return {};
  std::string text = read_text_file(p, 1 << 20);
  std::vector<std::string> names;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
    pos = end + 1;
  }
  if (names.empty() || static_cast<int64_t>(names.size()) > kIdxMaxClasses)
    throw MalformedInput("'" + p.string() + "' must name between 1 and " +
                         std::to_string(kIdxMaxClasses) + " classes, one per line");
  return names;
}

Dataset load_idx_dir(const fs::path& dir, Split split, int64_t limit, bool fashion) {
  fs::path img = find_idx(dir, split, true);
  fs::path lab = find_idx(dir, split, false);
  for (auto [path, images] : {std::pair{img, true}, std::pair{lab, false}}) {
    if (!path.empty()) continue;
    fs::path want = idx_candidates(dir, split, images)[0];
    std::string msg = "cannot read '" + want.string() + "[.gz]': no such file";
    if (fashion)
      msg += "; the fashion-mnist dataset is not installed: " + std::string(kFashionMnistInstall);
    throw IoError(msg);
  }
  Dataset ds;
  ds.name = fashion ? "fashion-mnist" : dir.string();
  ds.class_names = fashion ? fashion_mnist_classes() : read_idx_class_names(dir);
  int64_t classes =
      ds.class_names.empty() ? kIdxMaxClasses : static_cast<int64_t>(ds.class_names.size());
  detail::IdxImages images = detail::load_idx_images(img, limit);
  detail::IdxLabels labels = detail::load_idx_labels(lab, classes, limit);
  if (images.declared != labels.declared)
    throw MalformedInput("'" + img.string() + "' holds " + std::to_string(images.declared) +
                         " images but '" + lab.string() + "' holds " +
                         std::to_string(labels.declared) + " labels");
  ds.images = std::move(images.images);
  ds.labels = std::move(labels.labels);
  if (!ds.class_names.empty()) {
    ds.num_classes = classes;
  } else {
    // Without names, assume the MNIST convention of ten classes unless a label says otherwise.
    int32_t max_label =
        ds.labels.empty() ? 0 : *std::max_element(ds.labels.begin(), ds.labels.end());
    ds.num_classes = std::max<int64_t>(10, int64_t{max_label} + 1);
  }
  return ds;
}

Dataset load_directory(const std::string& spec, const fs::path& dir, Split split, int64_t limit) {
  if (!exists_dir(dir))
    throw IoError("dataset '" + spec + "' is neither 'fashion-mnist' nor an existing directory");
  CifarKind kind;
  fs::path data_dir;
  if (detect_cifar(dir, kind, data_dir)) return load_cifar(data_dir, kind, split, limit);
  if (has_idx(dir)) {
    Dataset ds = load_idx_dir(dir, split, limit, false);
    ds.name = spec;
    return ds;
  }
  throw IoError("dataset directory '" + dir.string() +
                "' holds neither IDX files ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]) "
                "nor CIFAR batches (data_batch_*.bin, test_batch.bin, train.bin, test.bin)");
}

void check_range(int64_t begin, int64_t count, int64_t n) {
  if (begin < 0 || count < 0 || begin > n || count > n - begin)
    throw InvalidArgument("a batch of " + std::to_string(count) + " examples starting at " +
                          std::to_string(begin) + " is outside the dataset of " +
                          std::to_string(n) + " examples");
}

}  // namespace

std::string default_fashion_mnist_dir() {
  const char* env = std::getenv("VEIL_FASHION_MNIST_DIR");
  if (env && *env) return env;
  return kFashionMnistDefaultDir;
}

Dataset load_dataset(const std::string& spec, Split split, int64_t limit) {
  if (limit < 0) throw InvalidArgument("limit must be >= 0, got " + std::to_string(limit));
  if (spec == "fashion-mnist") {
    fs::path dir = default_fashion_mnist_dir();
    if (!exists_dir(dir))
      throw IoError("cannot read fashion-mnist from '" + dir.string() + "': no such directory; " +
                    kFashionMnistInstall);
    return load_idx_dir(dir, split, limit, true);
  }
  const std::string idx_prefix = "mnist-idx:";
  if (spec.rfind(idx_prefix, 0) == 0) {
    fs::path dir = spec.substr(idx_prefix.size());
    if (!exists_dir(dir))
      throw IoError("cannot read IDX dataset '" + dir.string() + "': no such directory");
    Dataset ds = load_idx_dir(dir, split, limit, false);
    ds.name = spec;
    return ds;
  }
  for (auto [prefix, kind] : {std::pair{std::string("cifar10:"), CifarKind::Cifar10},
                              std::pair{std::string("cifar100:"), CifarKind::Cifar100}}) {
    if (spec.rfind(prefix, 0) != 0) continue;
    fs::path dir = spec.substr(prefix.size());
    if (!exists_dir(dir))
      throw IoError("cannot read CIFAR dataset '" + dir.string() + "': no such directory");
    return load_cifar(dir, kind, split, limit);
  }
  if (spec.empty()) throw InvalidArgument("empty dataset name");
  return load_directory(spec, spec, split, limit);
}

Tensor Dataset::batch(int64_t begin, int64_t count) const {
  const int64_t n = size();
  check_range(begin, count, n);
  if (images.rank() < 1 || images.dim(0) != n)
    throw InvalidArgument("dataset images do not match its " + std::to_string(n) + " labels");
  Shape shape = images.shape();
  const int64_t per = n ? images.numel() / n : 0;
  shape[0] = count;
  auto src = images.floats();
  std::vector<float> out(src.begin() + begin * per, src.begin() + (begin + count) * per);
  return Tensor::from_floats(std::move(shape), std::move(out));
}

Tensor Dataset::batch(const std::vector<int64_t>& indices) const {
  const int64_t n = size();
  if (images.rank() < 1 || images.dim(0) != n)
    throw InvalidArgument("dataset images do not match its " + std::to_string(n) + " labels");
  Shape shape = images.shape();
  const int64_t per = n ? images.numel() / n : 0;
  shape[0] = static_cast<int64_t>(indices.size());
  auto src = images.floats();
  std::vector<float> out;
  out.reserve(indices.size() * static_cast<size_t>(per));
  for (int64_t i : indices) {
    if (i < 0 || i >= n)
      throw InvalidArgument("example index " + std::to_string(i) + " is outside the dataset of " +
                            std::to_string(n) + " examples");
    out.insert(out.end(), src.begin() + i * per, src.begin() + (i + 1) * per);
  }
  return Tensor::from_floats(std::move(shape), std::move(out));
}

std::vector<int32_t> Dataset::batch_labels(int64_t begin, int64_t count) const {
  check_range(begin, count, size());
  return {labels.begin() + begin, labels.begin() + begin + count};
}

std::vector<int32_t> Dataset::batch_labels(const std::vector<int64_t>& indices) const {
  const int64_t n = size();
  std::vector<int32_t> out;
  out.reserve(indices.size());
  for (int64_t i : indices) {
    if (i < 0 || i >= n)
      throw InvalidArgument("example index " + std::to_string(i) + " is outside the dataset of " +
                            std::to_string(n) + " examples");
    out.push_back(labels[static_cast<size_t>(i)]);
  }
  return out;
}

}  // namespace veil::data

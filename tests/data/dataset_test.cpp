#include "veil/data/dataset.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <optional>

#include "data_test_util.hpp"
#include "veil/core/error.hpp"

namespace veil::data {
namespace {

using ::testing::HasSubstr;
using namespace veil::data::test_util;

// Sets an environment variable for the lifetime of the object and restores it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

struct IdxSet {
  std::vector<uint8_t> train_pixels, train_labels, test_pixels, test_labels;
};

// Writes a small MNIST-shaped (but 6x5) IDX set, gzipped or raw.
IdxSet write_idx_set(const fs::path& dir, bool gz, uint32_t classes = 10) {
  IdxSet s{pattern(12 * 30, 21), pattern(12, 22, classes), pattern(5 * 30, 23),
           pattern(5, 24, classes)};
  auto put = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
    write_bytes(dir / (name + (gz ? ".gz" : "")), gz ? gzip(bytes) : bytes);
  };
  put("train-images-idx3-ubyte", idx_images(12, 6, 5, s.train_pixels));
  put("train-labels-idx1-ubyte", idx_labels(12, s.train_labels));
  put("t10k-images-idx3-ubyte", idx_images(5, 6, 5, s.test_pixels));
  put("t10k-labels-idx1-ubyte", idx_labels(5, s.test_labels));
  return s;
}

void expect_matches(const Dataset& ds, const std::vector<uint8_t>& pixels,
                    const std::vector<uint8_t>& labels, int64_t n) {
  ASSERT_EQ(ds.size(), n);
  ASSERT_EQ(ds.images.shape(), (Shape{n, 1, 6, 5}));
  for (int64_t i = 0; i < n * 30; ++i) ASSERT_FLOAT_EQ(ds.images.floats()[i], pixels[i] / 255.0f);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(ds.labels[i], labels[i]);
}

TEST(Dataset, IdxDirectoryBothSplitsRawAndGzip) {
  for (bool gz : {false, true}) {
    TempDir dir;
    IdxSet s = write_idx_set(dir.path(), gz);
    Dataset train = load_dataset(dir.path().string(), Split::Train);
    expect_matches(train, s.train_pixels, s.train_labels, 12);
    EXPECT_EQ(train.num_classes, 10);
    EXPECT_EQ(train.name, dir.path().string());
    Dataset test = load_dataset("mnist-idx:" + dir.path().string(), Split::Test);
    expect_matches(test, s.test_pixels, s.test_labels, 5);
  }
}

TEST(Dataset, LimitKeepsFirstExamples) {
  TempDir dir;
  IdxSet s = write_idx_set(dir.path(), true);
  expect_matches(load_dataset(dir.path().string(), Split::Train, 4), s.train_pixels, s.train_labels,
                 4);
  expect_matches(load_dataset(dir.path().string(), Split::Train, 1000), s.train_pixels,
                 s.train_labels, 12);
  EXPECT_THROW(load_dataset(dir.path().string(), Split::Train, -1), InvalidArgument);
}

TEST(Dataset, ClassNamesFileFixesNumClasses) {
  TempDir dir;
  write_idx_set(dir.path(), false, 3);
  write_bytes(dir / "class_names.txt", {'a', '\n', 'b', '\n', 'c', '\n'});
  Dataset ds = load_dataset(dir.path().string(), Split::Train);
  EXPECT_EQ(ds.num_classes, 3);
  EXPECT_EQ(ds.class_names, (std::vector<std::string>{"a", "b", "c"}));
  // Labels beyond the named classes are rejected.
  write_bytes(dir / "class_names.txt", {'a', '\n', 'b', '\n'});
  EXPECT_THROW(load_dataset(dir.path().string(), Split::Train), MalformedInput);
}

TEST(Dataset, NumClassesFromLabelsWithoutNames) {
  TempDir dir;
  write_idx_set(dir.path(), false, 37);
  Dataset ds = load_dataset(dir.path().string(), Split::Train);
  int32_t max_label = *std::max_element(ds.labels.begin(), ds.labels.end());
  EXPECT_EQ(ds.num_classes, std::max(10, max_label + 1));
}

TEST(Dataset, ImageAndLabelCountsMustAgree) {
  TempDir dir;
  write_idx_set(dir.path(), false);
  write_bytes(dir / "train-labels-idx1-ubyte", idx_labels(11, pattern(11, 1, 10)));
  try {
    load_dataset(dir.path().string(), Split::Train, 3);  // even when only a prefix is kept
    FAIL();
  } catch (const MalformedInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("12 images"));
    EXPECT_THAT(e.what(), HasSubstr("11 labels"));
  }
}

TEST(Dataset, MissingFilesNameTheFile) {
  TempDir dir;
  write_idx_set(dir.path(), false);
  fs::remove(dir / "t10k-labels-idx1-ubyte");
  try {
    load_dataset(dir.path().string(), Split::Test);
    FAIL();
  } catch (const IoError& e) {
    EXPECT_THAT(e.what(), HasSubstr("t10k-labels-idx1-ubyte"));
  }
  EXPECT_NO_THROW(load_dataset(dir.path().string(), Split::Train));
  EXPECT_THROW(load_dataset((dir / "absent").string(), Split::Train), IoError);
  TempDir empty;
  EXPECT_THROW(load_dataset(empty.path().string(), Split::Train), IoError);
}

TEST(Dataset, BatchByRangeAndIndices) {
  TempDir dir;
  write_idx_set(dir.path(), false);
  Dataset ds = load_dataset(dir.path().string(), Split::Train);
  const int64_t per = 30;
  Tensor b = ds.batch(3, 4);
  ASSERT_EQ(b.shape(), (Shape{4, 1, 6, 5}));
  for (int64_t i = 0; i < 4 * per; ++i) EXPECT_EQ(b.floats()[i], ds.images.floats()[3 * per + i]);
  EXPECT_EQ(ds.batch_labels(3, 4),
            (std::vector<int32_t>(ds.labels.begin() + 3, ds.labels.begin() + 7)));

  std::vector<int64_t> idx = {11, 0, 5, 5};
  Tensor g = ds.batch(idx);
  ASSERT_EQ(g.shape(), (Shape{4, 1, 6, 5}));
  for (size_t k = 0; k < idx.size(); ++k)
    for (int64_t j = 0; j < per; ++j)
      EXPECT_EQ(g.floats()[k * per + j], ds.images.floats()[idx[k] * per + j]);
  auto gl = ds.batch_labels(idx);
  for (size_t k = 0; k < idx.size(); ++k) EXPECT_EQ(gl[k], ds.labels[idx[k]]);

  EXPECT_EQ(ds.batch(12, 0).shape(), (Shape{0, 1, 6, 5}));
  EXPECT_THROW(ds.batch(10, 3), InvalidArgument);
  EXPECT_THROW(ds.batch(-1, 1), InvalidArgument);
  EXPECT_THROW(ds.batch(0, -1), InvalidArgument);
  EXPECT_THROW(ds.batch(std::vector<int64_t>{12}), InvalidArgument);
  EXPECT_THROW(ds.batch_labels(std::vector<int64_t>{-1}), InvalidArgument);
}

TEST(Dataset, FashionMnistDirectoryOverride) {
  TempDir dir;
  IdxSet s = write_idx_set(dir.path(), true);
  {
    ScopedEnv env("VEIL_FASHION_MNIST_DIR", dir.path().string());
    EXPECT_EQ(default_fashion_mnist_dir(), dir.path().string());
    Dataset ds = load_dataset("fashion-mnist", Split::Test);
    expect_matches(ds, s.test_pixels, s.test_labels, 5);
    EXPECT_EQ(ds.name, "fashion-mnist");
    EXPECT_EQ(ds.num_classes, 10);
    ASSERT_EQ(ds.class_names.size(), 10u);
    EXPECT_EQ(ds.class_names[0], "T-shirt/top");
    EXPECT_EQ(ds.class_names[9], "Ankle boot");
  }
  {
    ScopedEnv env("VEIL_FASHION_MNIST_DIR", (dir / "missing").string());
    try {
      load_dataset("fashion-mnist", Split::Train);
      FAIL();
    } catch (const IoError& e) {
      EXPECT_THAT(e.what(), HasSubstr("apt-get install dataset-fashion-mnist"));
    }
  }
  {
    fs::remove(dir / "train-images-idx3-ubyte.gz");
    ScopedEnv env("VEIL_FASHION_MNIST_DIR", dir.path().string());
    try {
      load_dataset("fashion-mnist", Split::Train);
      FAIL();
    } catch (const IoError& e) {
      EXPECT_THAT(e.what(), HasSubstr("train-images-idx3-ubyte"));
      EXPECT_THAT(e.what(), HasSubstr("apt-get install dataset-fashion-mnist"));
    }
  }
}

TEST(Dataset, FashionMnistInstalled) {
  if (std::getenv("VEIL_FASHION_MNIST_DIR") == nullptr &&
      !fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  for (Split split : {Split::Train, Split::Test}) {
    Dataset ds = load_dataset("fashion-mnist", split, 100);
    ASSERT_EQ(ds.size(), 100);
    ASSERT_EQ(ds.images.shape(), (Shape{100, 1, 28, 28}));
    EXPECT_EQ(ds.num_classes, 10);
    EXPECT_EQ(ds.class_names.size(), 10u);
    float lo = 1, hi = 0;
    for (float v : ds.images.floats()) lo = std::min(lo, v), hi = std::max(hi, v);
    EXPECT_GE(lo, 0.0f);
    EXPECT_LE(hi, 1.0f);
    EXPECT_GT(hi, 0.5f);  // real images, not all black
    std::vector<int> seen(10, 0);
    for (int32_t l : ds.labels) {
      ASSERT_GE(l, 0);
      ASSERT_LT(l, 10);
      seen[l] = 1;
    }
    EXPECT_GE(std::count(seen.begin(), seen.end(), 1), 5);  // 100 examples cover many classes
  }
}

}  // namespace
}  // namespace veil::data

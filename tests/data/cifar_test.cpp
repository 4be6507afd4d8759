#include "veil/data/cifar.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "data_test_util.hpp"
#include "veil/core/error.hpp"
#include "veil/data/dataset.hpp"

namespace veil::data {
namespace {

using ::testing::HasSubstr;
using namespace veil::data::test_util;

struct Records {
  std::vector<uint8_t> bytes;
  std::vector<int32_t> labels;  // fine labels for CIFAR-100
};

Records make_records(int n, bool cifar100, uint32_t seed) {
  Records r;
  auto labels = pattern(n, seed, cifar100 ? 100 : 10);
  auto coarse = pattern(n, seed + 1, 20);
  for (int i = 0; i < n; ++i) {
    if (cifar100) r.bytes.push_back(coarse[i]);
    r.bytes.push_back(labels[i]);
    r.labels.push_back(labels[i]);
    auto px = pattern(3072, seed * 100 + i);
    r.bytes.insert(r.bytes.end(), px.begin(), px.end());
  }
  return r;
}

// Reference: image i, channel c, row y, column x is byte header + c*1024 + y*32 + x of record i.
void expect_records(const Dataset& ds, int64_t first, const Records& r, int64_t count, int header) {
  const int64_t rec = 3072 + header;
  for (int64_t i = 0; i < count; ++i) {
    ASSERT_EQ(ds.labels[first + i], r.labels[i]);
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; y += 7)
        for (int x = 0; x < 32; x += 5) {
          float want = r.bytes[i * rec + header + c * 1024 + y * 32 + x] / 255.0f;
          ASSERT_FLOAT_EQ(ds.images.floats()[((first + i) * 3 + c) * 1024 + y * 32 + x], want);
        }
  }
}

TEST(Cifar, Cifar10TrainAndTest) {
  TempDir dir;
  Records b1 = make_records(3, false, 1), b2 = make_records(2, false, 2),
          t = make_records(2, false, 3);
  write_bytes(dir / "data_batch_1.bin", b1.bytes);
  write_bytes(dir / "data_batch_2.bin", b2.bytes);
  write_bytes(dir / "test_batch.bin", t.bytes);
  std::string meta = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
  write_bytes(dir / "batches.meta.txt", {meta.begin(), meta.end()});

  Dataset train = load_dataset(dir.path().string(), Split::Train);
  EXPECT_EQ(train.name, "cifar10");
  ASSERT_EQ(train.images.shape(), (Shape{5, 3, 32, 32}));
  EXPECT_EQ(train.num_classes, 10);
  expect_records(train, 0, b1, 3, 1);
  expect_records(train, 3, b2, 2, 1);
  ASSERT_EQ(train.class_names.size(), 10u);
  EXPECT_EQ(train.class_names[9], "truck");

  Dataset test = load_dataset(dir.path().string(), Split::Test);
  ASSERT_EQ(test.size(), 2);
  expect_records(test, 0, t, 2, 1);

  // The limit spans batch files and stops inside the second.
  Dataset lim = load_dataset(dir.path().string(), Split::Train, 4);
  ASSERT_EQ(lim.size(), 4);
  expect_records(lim, 0, b1, 3, 1);
  expect_records(lim, 3, b2, 1, 1);
}

TEST(Cifar, FoundInArchiveSubdirectory) {
  TempDir dir;
  fs::create_directories(dir / "cifar-10-batches-bin");
  Records t = make_records(2, false, 4);
  write_bytes(dir / "cifar-10-batches-bin" / "test_batch.bin", t.bytes);
  Dataset ds = load_dataset(dir.path().string(), Split::Test);
  expect_records(ds, 0, t, 2, 1);
  // Training batches are absent: the error names the first missing file.
  try {
    load_dataset(dir.path().string(), Split::Train);
    FAIL();
  } catch (const IoError& e) {
    EXPECT_THAT(e.what(), HasSubstr("data_batch_1.bin"));
  }
}

TEST(Cifar, Cifar100UsesFineLabels) {
  TempDir dir;
  Records tr = make_records(4, true, 5), te = make_records(3, true, 6);
  write_bytes(dir / "train.bin", tr.bytes);
  write_bytes(dir / "test.bin", te.bytes);
  std::string names;
  for (int i = 0; i < 100; ++i) names += "class" + std::to_string(i) + "\n";
  write_bytes(dir / "fine_label_names.txt", {names.begin(), names.end()});
  Dataset ds = load_dataset(dir.path().string(), Split::Train);
  EXPECT_EQ(ds.name, "cifar100");
  EXPECT_EQ(ds.num_classes, 100);
  ASSERT_EQ(ds.size(), 4);
  expect_records(ds, 0, tr, 4, 2);
  ASSERT_EQ(ds.class_names.size(), 100u);
  EXPECT_EQ(ds.class_names[42], "class42");
  Dataset t = load_dataset("cifar100:" + dir.path().string(), Split::Test, 2);
  ASSERT_EQ(t.size(), 2);
  expect_records(t, 0, te, 2, 2);
}

TEST(Cifar, BadFilesRejected) {
  TempDir dir;
  Records b1 = make_records(2, false, 7);
  auto bytes = b1.bytes;
  bytes.pop_back();
  write_bytes(dir / "data_batch_1.bin", bytes);
  try {
    load_dataset(dir.path().string(), Split::Train);
    FAIL();
  } catch (const MalformedInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("data_batch_1.bin"));
    EXPECT_THAT(e.what(), HasSubstr("3073"));
  }
  bytes = b1.bytes;
  bytes[3073] = 10;  // label of the second record
  write_bytes(dir / "data_batch_1.bin", bytes);
  EXPECT_THROW(load_dataset(dir.path().string(), Split::Train), MalformedInput);
  // A gap in the batch numbering would silently drop data.
  write_bytes(dir / "data_batch_1.bin", b1.bytes);
  write_bytes(dir / "data_batch_3.bin", b1.bytes);
  EXPECT_THROW(load_dataset(dir.path().string(), Split::Train), MalformedInput);
}

TEST(Cifar, Cifar100LabelRanges) {
  Records r = make_records(1, true, 8);
  std::vector<float> images;
  std::vector<int32_t> labels;
  auto bytes = r.bytes;
  bytes[1] = 100;
  EXPECT_THROW(
      parse_cifar_records(bytes.data(), bytes.size(), CifarKind::Cifar100, 0, images, labels),
      MalformedInput);
  bytes = r.bytes;
  bytes[0] = 20;
  EXPECT_THROW(
      parse_cifar_records(bytes.data(), bytes.size(), CifarKind::Cifar100, 0, images, labels),
      MalformedInput);
  EXPECT_TRUE(images.empty());
  EXPECT_TRUE(labels.empty());
  parse_cifar_records(r.bytes.data(), r.bytes.size(), CifarKind::Cifar100, 0, images, labels);
  EXPECT_EQ(labels, r.labels);
  EXPECT_EQ(images.size(), 3072u);
}

}  // namespace
}  // namespace veil::data

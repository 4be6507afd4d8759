// Labelled image datasets: IDX (MNIST format, raw or .gz), CIFAR-10/100 binary batches, and the
// embedded default `fashion-mnist` (Debian's dataset-fashion-mnist package).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "veil/core/tensor.hpp"

namespace veil::data {

enum class Split { Train, Test };

struct Dataset {
  std::string name;             // "fashion-mnist", "cifar10", or the path given
  Tensor images;                // [N, C, H, W] float32, pixels scaled to [0, 1]
  std::vector<int32_t> labels;  // N labels in [0, num_classes)
  int64_t num_classes = 0;
  std::vector<std::string> class_names;  // may be empty

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  // Copies images [begin, begin + count) into a [count, C, H, W] tensor.
  Tensor batch(int64_t begin, int64_t count) const;
  Tensor batch(const std::vector<int64_t>& indices) const;
  // The matching labels. All four throw InvalidArgument for an index outside [0, size()).
  std::vector<int32_t> batch_labels(int64_t begin, int64_t count) const;
  std::vector<int32_t> batch_labels(const std::vector<int64_t>& indices) const;
};

// `spec` is "fashion-mnist" (the embedded default), "mnist-idx:<dir>" or a directory holding
// either IDX files ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]) or CIFAR binary batches
// (data_batch_*.bin/test_batch.bin, or train.bin/test.bin for CIFAR-100). `limit` > 0 keeps the
// first `limit` examples (and reads no more than that). Throws MalformedInput on bad files.
//
// Also accepted: "cifar10:<dir>" / "cifar100:<dir>" to name the CIFAR variant explicitly. In a
// directory spec, CIFAR files are also looked for in the cifar-10-batches-bin/ and
// cifar-100-binary/ subdirectories the official archives unpack to. A generic IDX directory may
// hold class_names.txt (one name per line), which fixes num_classes; without it num_classes is
// max(10, largest label + 1). Missing files throw IoError naming the file.
Dataset load_dataset(const std::string& spec, Split split, int64_t limit = 0);

// Directory of the embedded default data: $VEIL_FASHION_MNIST_DIR when set and non-empty,
// otherwise /usr/share/datasets/fashion-mnist (installed by `apt-get install
// dataset-fashion-mnist`). It holds {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
std::string default_fashion_mnist_dir();

}  // namespace veil::data

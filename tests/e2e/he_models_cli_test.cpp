// End-to-end: `veil train` builds the HE-friendly architectures from the dataset's shape. A
// CIFAR-10-format directory (3x32x32) gives keras-cifar10 a colour input and a 2304-wide
// classifier; the trained file holds the square as Mul(x, x).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "cli_runner.hpp"
#include "veil/model/onnx.hpp"

namespace veil::testing {
namespace {

namespace fs = std::filesystem;

// `n` CIFAR-10 records (label byte + 3072 pixel bytes) of random pixels.
void write_cifar10_batch(const fs::path& p, int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string bytes;
  for (int i = 0; i < n; ++i) {
    bytes += static_cast<char>(i % 10);
    for (int k = 0; k < 3072; ++k) bytes += static_cast<char>(rng() & 0xff);
  }
  std::ofstream(p, std::ios::binary) << bytes;
}

TEST(HeModelsCli, KerasCifar10TakesItsInputShapeFromCifarData) {
  TempDir dir;
  write_cifar10_batch(dir / "data_batch_1.bin", 20, 1);
  write_cifar10_batch(dir / "test_batch.bin", 10, 2);
  const fs::path out = dir / "k.onnx";
  const CliResult r =
      run_veil("train --arch keras-cifar10 --classifier-activation square --data " +
                   dir.path().string() + " --epochs 1 --batch 10 --quiet --out " + out.string(),
               dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const model::Model m = model::load_onnx(out);
  EXPECT_EQ(m.graph.inputs.at(0).shape, (Shape{-1, 3, 32, 32}));
  EXPECT_EQ(m.graph.initializers.at("conv1.weight").shape(), (Shape{32, 3, 3, 3}));
  EXPECT_EQ(m.graph.initializers.at("fc1.weight").shape(), (Shape{512, 64 * 6 * 6}));
  bool square = false;
  for (const auto& n : m.graph.nodes)
    square = square || (n.op_type == "Mul" && n.inputs.size() == 2 && n.inputs[0] == n.inputs[1]);
  EXPECT_TRUE(square);
  const CliResult info = run_veil("info --json --model " + out.string(), dir);
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_EQ(nlohmann::json::parse(info.out)["input_shape"], nlohmann::json({1, 3, 32, 32}));
}

}  // namespace
}  // namespace veil::testing

// End-to-end: memory planned from the inferred shapes before a model runs. A few hundred bytes
// of ONNX that expand into gigabytes are refused at once with one line naming the node, under
// the default budget (a quarter of RAM) and under `--max-memory`; `eval` refuses a model whose
// output cannot be the dataset's logits before running it; non-finite logits are never a class.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "model/onnx_builder.hpp"
#include "veil/data/npy.hpp"

namespace veil::testing {
namespace {

namespace fs = std::filesystem;
using veil::test::OnnxBuilder;

int64_t lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

class MemoryCli : public ::testing::Test {
 protected:
  // `veil infer` of `b` (one float input x [1, 4]) into y.npy.
  CliResult infer(const OnnxBuilder& b, const std::string& global = "") {
    const auto model = dir_ / "m.onnx";
    std::ofstream(model, std::ios::binary) << b.bytes();
    data::write_npy(dir_ / "x.npy", Tensor({1, 4}));
    return run_veil(global + " infer --model " + model.string() + " --input " +
                        (dir_ / "x.npy").string() + " --output " + (dir_ / "y.npy").string(),
                    dir_);
  }
  TempDir dir_;
};

// ConstantOfShape of 2^40 floats (4 TiB) added to the input: the model file is tiny.
OnnxBuilder constant_of_shape_model(int64_t elements) {
  OnnxBuilder b;
  b.input("x", {1, 4});
  b.initializer_i64("shape", {2}, {elements / 4, 4});
  b.node("ConstantOfShape", {"shape"}, {"big"}, "expand");
  b.node("Add", {"big", "x"}, {"y"}, "add");
  b.output("y");
  return b;
}

TEST_F(MemoryCli, ConstantOfShapeIsRefusedBeforeAllocating) {
  OnnxBuilder b = constant_of_shape_model(int64_t{1} << 40);
  ASSERT_LT(b.bytes().size(), 400u);
  const auto t0 = std::chrono::steady_clock::now();
  CliResult r = infer(b);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("veil: error: node 'expand' (ConstantOfShape)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("over the budget"), std::string::npos) << r.err;
  EXPECT_LT(secs, 10.0);
  EXPECT_LT(children_max_rss(), uint64_t{300} << 20);
  EXPECT_FALSE(fs::exists(dir_ / "y.npy"));

  // 2^28 floats (1 GiB) fit a quarter of any test machine's RAM but not --max-memory 256M.
  r = infer(constant_of_shape_model(int64_t{1} << 28), "--max-memory 256M");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("node 'expand' (ConstantOfShape)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("over the budget of 256.0 MiB"), std::string::npos) << r.err;
  EXPECT_LT(children_max_rss(), uint64_t{300} << 20);

  // A budget that is not a size is a usage error.
  r = infer(constant_of_shape_model(4), "--max-memory lots");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "y.npy"));
}

// Pad of a [1, 4] input to [1, 4 + 2 * 2^23]: 64 MiB of output from a few bytes of pads.
TEST_F(MemoryCli, PadIsRefusedUnderMaxMemoryAndRunsWithinIt) {
  OnnxBuilder b;
  b.input("x", {1, 4});
  b.initializer_i64("pads", {4}, {0, int64_t{1} << 23, 0, int64_t{1} << 23});
  b.node("Pad", {"x", "pads"}, {"y"}, "pad");
  b.output("y");
  CliResult r = infer(b, "--max-memory 16M");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("veil: error: node 'pad' (Pad)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[1, 16777220]"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "y.npy"));
  r = infer(b, "--max-memory 1G");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(data::read_npy(dir_ / "y.npy").shape(), (Shape{1, 4 + (int64_t{2} << 23)}));
}

// NaN logits (a NaN input through a model whose kernels propagate it) are written as computed
// and flagged, never turned into a class.
TEST_F(MemoryCli, NonFiniteOutputsAreFlagged) {
  OnnxBuilder b;
  b.input("x", {1, 4});
  b.node("Relu", {"x"}, {"y"}, "relu");
  b.output("y");
  const auto model = dir_ / "m.onnx";
  std::ofstream(model, std::ios::binary) << b.bytes();
  data::write_npy(dir_ / "x.npy", Tensor::from_floats({1, 4}, {1, NAN, -1, INFINITY}));
  CliResult r = run_veil("infer --model " + model.string() + " --input " +
                             (dir_ / "x.npy").string() + " --output " + (dir_ / "y.npy").string(),
                         dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("holds 2 non-finite values"), std::string::npos) << r.err;
  const Tensor y = data::read_npy(dir_ / "y.npy");
  EXPECT_EQ(y.floats()[0], 1.0f);
  EXPECT_TRUE(std::isnan(y.floats()[1]));
  EXPECT_EQ(y.floats()[2], 0.0f);
  EXPECT_EQ(y.floats()[3], INFINITY);
}

class MemoryCliData : public MemoryCli {
 protected:
  void SetUp() override {
    if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
};

// Logits [N, 3] for a 10-class dataset: refused from the inferred shape before any image runs.
// The model's second output would fail at run time (its Gather indices come from the pixels
// and leave the 1-element table), so a refusal that ran the model first names that node.
TEST_F(MemoryCliData, EvalRefusesAWrongOutputShapeBeforeRunning) {
  OnnxBuilder b;
  b.input("x", {-1, 1, 28, 28});
  b.node("Flatten", {"x"}, {"f"}, "flatten");
  b.initializer("w", {784, 3}, std::vector<float>(784 * 3, 0.01f));
  b.node("MatMul", {"f", "w"}, {"logits"}, "fc");
  auto& cast = b.node("Cast", {"x"}, {"idx"}, "cast");
  OnnxBuilder::attr(cast, "to", int64_t{7});
  b.initializer("table", {1}, {0.5f});
  b.node("Gather", {"table", "idx"}, {"g"}, "gather");
  b.output("logits");
  b.output("g");
  const auto model = dir_ / "m.onnx";
  std::ofstream(model, std::ios::binary) << b.bytes();
  CliResult r = run_veil("eval --model " + model.string() + " --limit 300 --quiet", dir_);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("model has 3 outputs but the dataset has 10 classes"), std::string::npos)
      << r.err;
}

// A model whose logits are NaN for every image scores 0 %, with the images counted.
TEST_F(MemoryCliData, EvalCountsNonFiniteLogitsAsMisses) {
  OnnxBuilder b;
  b.input("x", {-1, 1, 28, 28});
  b.node("Flatten", {"x"}, {"f"}, "flatten");
  b.initializer("w", {784, 10}, std::vector<float>(7840, 0.01f));
  b.node("MatMul", {"f", "w"}, {"mm"}, "fc");
  b.node("Sub", {"mm", "mm"}, {"zero"}, "zero");
  b.node("Div", {"zero", "zero"}, {"nan"}, "nan");  // 0/0 at run time (a NaN weight is refused)
  b.node("Add", {"mm", "nan"}, {"logits"}, "poison");
  b.output("logits");
  const auto model = dir_ / "m.onnx";
  std::ofstream(model, std::ios::binary) << b.bytes();
  CliResult r = run_veil("eval --model " + model.string() + " --limit 200 --json", dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["top1"].get<double>(), 0.0);
  EXPECT_EQ(j["top5"].get<double>(), 0.0);
  EXPECT_EQ(j["non_finite"].get<int64_t>(), 200);
}

}  // namespace
}  // namespace veil::testing

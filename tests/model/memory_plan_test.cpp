// The memory plan against hand-computed live sets, and on the zoo's networks: close to what
// their activations need at batch 100-1000, never wildly pessimistic.
#include "veil/model/memory_plan.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <iostream>

#include "model/onnx_builder.hpp"
#include "veil/core/error.hpp"
#include "veil/core/memory_budget.hpp"
#include "veil/model/zoo.hpp"

namespace veil::model {
namespace {

using test::OnnxBuilder;
using ::testing::HasSubstr;

// x [N, 256] -> Relu a -> Relu b -> Add(a, b) y: a lives until the Add, b too.
TEST(MemoryPlan, LiveSetsFollowLastReaders) {
  OnnxBuilder b;
  b.input("x", {-1, 256});
  b.initializer("w", {256}, std::vector<float>(256, 1.0f));
  b.node("Relu", {"x"}, {"a"}, "r1");
  b.node("Mul", {"a", "w"}, {"m"}, "mul");
  b.node("Relu", {"m"}, {"c"}, "r2");
  b.node("Add", {"a", "c"}, {"y"}, "add");
  b.output("y");
  const Model m = b.parse();
  const LoweredGraph lg = lower(m);
  const uint64_t v = 10 * 256 * 4;  // one activation at batch 10
  const MemoryPlan p = plan_memory(lg, m.graph, {{10, 256}});
  EXPECT_EQ(p.weight_bytes, 256u * 4);
  ASSERT_EQ(p.live_after.size(), 4u);
  // weights + x (pinned) + outputs of each op + values still to be read.
  EXPECT_EQ(p.live_after[0], p.weight_bytes + v + v);      // x, a
  EXPECT_EQ(p.live_after[1], p.weight_bytes + v + 2 * v);  // x, a, m
  EXPECT_EQ(p.live_after[2], p.weight_bytes + v + 3 * v);  // x, a, m (read), c
  EXPECT_EQ(p.live_after[3], p.weight_bytes + v + 3 * v);  // x, a, c, y (m released)
  EXPECT_EQ(p.peak_bytes, p.live_after[3]);
  EXPECT_EQ(p.peak_bytes, p.weight_bytes + 4 * v);
  EXPECT_EQ(p.shapes[*lg.find("y")], (Shape{10, 256}));
  // Training keeps every activation and as much again for gradients.
  const MemoryPlan t = plan_memory(lg, m.graph, {{10, 256}}, true);
  EXPECT_EQ(t.peak_bytes, p.weight_bytes + 2 * 5 * v);
}

TEST(MemoryPlan, OverrunNamesTheNodeAndItsOutput) {
  OnnxBuilder b;
  b.input("x", {1, 4});
  b.initializer_i64("shape", {2}, {int64_t{1} << 28, 4});
  b.node("ConstantOfShape", {"shape"}, {"big"}, "expand");
  b.node("Add", {"big", "x"}, {"y"}, "add");
  b.output("y");
  const Model m = b.parse();
  const LoweredGraph lg = lower(m);
  const MemoryPlan p = plan_memory(lg, m.graph, {{1, 4}});
  EXPECT_EQ(p.peak_bytes, 16 + 16 + 2 * (uint64_t{4} << 30));  // shape, x, big, y
  EXPECT_NO_THROW(require_within_budget(p, lg, p.peak_bytes));
  try {
    require_within_budget(p, lg, uint64_t{1} << 30);
    ADD_FAILURE() << "no refusal";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("node 'expand' (ConstantOfShape) (output 'big' "
                                    "[268435456, 4], 4.0 GiB) needs 8.0 GiB of memory, over the "
                                    "budget of 1.0 GiB"));
  }
  // Shapes that overflow 64 bits saturate instead of wrapping to something small.
  OnnxBuilder h;
  h.input("x", {1, 4});
  h.initializer_i64("shape", {4}, {int64_t{1} << 40, int64_t{1} << 40, int64_t{1} << 40, 4});
  h.node("ConstantOfShape", {"shape"}, {"y"}, "expand");
  h.output("y");
  const Model hm = h.parse();
  EXPECT_GE(plan_memory(lower(hm), hm.graph, {{1, 4}}).peak_bytes, uint64_t{1} << 62);
}

// The zoo's networks at batch 1000: the plan lies between the largest single activation and the
// sum of all activations (a live-set plan is well below the sum for a chain).
TEST(MemoryPlan, ZooNetworksAreNotWildlyPessimistic) {
  for (const char* arch : {"lenet5", "resnet20"}) {
    ArchSpec spec;
    if (std::string(arch) == "resnet20") spec = {3, 32, 32, 10, 1};
    const Model m = build_arch(arch, spec);
    const LoweredGraph lg = lower(m);
    const Shape in{1000, spec.channels, spec.height, spec.width};
    const MemoryPlan p = plan_memory(lg, m.graph, {in});
    uint64_t sum = 0, largest = 0;
    for (size_t id = 0; id < lg.values.size(); ++id) {
      if (lg.is_initializer[id]) continue;
      uint64_t n = 4;
      for (int64_t d : p.shapes[id]) n *= static_cast<uint64_t>(d < 0 ? 1000 : d);
      sum += n;
      largest = std::max(largest, n);
    }
    std::cout << arch << ": plan " << human_bytes(p.peak_bytes) << ", weights "
              << human_bytes(p.weight_bytes) << ", largest activation " << human_bytes(largest)
              << ", all activations " << human_bytes(sum) << "\n";
    EXPECT_GT(p.peak_bytes, p.weight_bytes + largest) << arch;
    EXPECT_LT(p.peak_bytes, p.weight_bytes + 4 * largest) << arch;
    EXPECT_LT(p.peak_bytes, p.weight_bytes + sum) << arch;
  }
}

TEST(MemoryBudget, ParsesSizesAndDefaultsToHalfOfRam) {
  EXPECT_EQ(parse_byte_size("2G"), uint64_t{2} << 30);
  EXPECT_EQ(parse_byte_size("512M"), uint64_t{512} << 20);
  EXPECT_EQ(parse_byte_size("1.5GiB"), uint64_t{3} << 29);
  EXPECT_EQ(parse_byte_size("64k"), uint64_t{64} << 10);
  EXPECT_EQ(parse_byte_size("1000000"), 1000000u);
  for (const char* bad : {"", "G", "-1G", "0", "2X", "1e3", "nan", "99999999999T"})
    EXPECT_THROW(parse_byte_size(bad), InvalidArgument) << bad;
  EXPECT_EQ(human_bytes(uint64_t{3} << 29), "1.5 GiB");
  EXPECT_GT(memory_budget(), uint64_t{64} << 20);
  set_memory_budget(uint64_t{1} << 20);
  EXPECT_EQ(memory_budget(), uint64_t{1} << 20);
  set_memory_budget(0);
  EXPECT_GT(memory_budget(), uint64_t{1} << 20);
}

}  // namespace
}  // namespace veil::model

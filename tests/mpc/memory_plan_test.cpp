// The three-party memory plan: liveness, growth with the batch, the largest batch that fits and
// the refusals. That the plan bounds what the parties really use is checked end to end
// (tests/e2e/mpc_memory_cli_test.cpp: each party's peak RSS against its plan).
#include "veil/mpc/memory_plan.hpp"

#include <gtest/gtest.h>

#include "graph_node.hpp"
#include "veil/core/error.hpp"
#include "veil/core/memory_budget.hpp"
#include "veil/model/block_relu_node.hpp"
#include "veil/model/fold_batch_norm.hpp"
#include "veil/model/zoo.hpp"

namespace veil::mpc {
namespace {

using testing::node;

constexpr uint64_t kNoFrameLimit = uint64_t{1} << 62;

model::Model resnet20() {
  model::ArchSpec spec;
  spec.seed = 5;
  model::Model m = model::build_arch("resnet20", spec);
  model::fold_batch_norm(m);
  return m;
}

// x [N, 8, 16, 16] through `depth` ReLUs.
model::Graph relu_chain(int depth) {
  model::Graph g;
  g.inputs = {{"x", DType::Float32, {-1, 8, 16, 16}}};
  std::string prev = "x";
  for (int i = 0; i < depth; ++i) {
    const std::string out = "r" + std::to_string(i);
    g.nodes.push_back(node("relu" + std::to_string(i), "Relu", {prev}, {out}));
    prev = out;
  }
  g.outputs = {{prev, DType::Float32, {-1, 8, 16, 16}}};
  return g;
}

SecureMemoryOptions at_batch(int64_t b) {
  SecureMemoryOptions o;
  o.batch = b;
  return o;
}

// A value is freed after its last reader: twenty ReLUs in a row need what three need (the
// middle one of three is already a step with an older activation live and a next one ahead).
// Keeping every activation (what the engine did) would make the chain's plan several times
// larger.
TEST(SecureMemoryPlan, ValuesAreFreedAfterTheirLastReader) {
  const model::Graph two = relu_chain(3), twenty = relu_chain(20);
  const SecureModel a(two), b(twenty);
  const SecureMemoryPlan pa = plan_secure_memory(a, at_batch(64));
  const SecureMemoryPlan pb = plan_secure_memory(b, at_batch(64));
  for (size_t r = 0; r < 3; ++r) EXPECT_EQ(pa.peak[r], pb.peak[r]) << r;
  ASSERT_EQ(pb.steps.size(), 22u);  // input, twenty ReLUs, output
  EXPECT_EQ(pb.steps[1], "node 'relu0' (Relu)");
  // The shares of one activation (8 bytes per element) at the client while a ReLU runs: the
  // input's and the output's are both part of that step, never those of earlier activations.
  const uint64_t activation = 8ull * 64 * 8 * 16 * 16;
  EXPECT_EQ(pb.during[0][5], pb.during[0][15]);
  EXPECT_GT(pb.during[0][5], 2 * activation);
  EXPECT_LT(pb.during[0][5], 10 * activation);
}

// Plans grow with the batch, and the bisection finds the exact largest batch under a budget.
TEST(SecureMemoryPlan, TheLargestBatchThatFitsIsFoundExactly) {
  const model::Model m = resnet20();
  const SecureModel secure(m.graph);
  uint64_t previous = 0;
  for (int64_t b : {1, 2, 3, 8, 31, 64, 100, 101, 256}) {
    const uint64_t total = plan_secure_memory(secure, at_batch(b)).total();
    EXPECT_GT(total, previous) << b;
    previous = total;
  }
  const uint64_t budget = plan_secure_memory(secure, at_batch(100)).total();
  EXPECT_EQ(largest_batch_within(secure, at_batch(1), std::nullopt, budget, kNoFrameLimit, 4096),
            100);
  EXPECT_EQ(
      largest_batch_within(secure, at_batch(1), std::nullopt, budget - 1, kNoFrameLimit, 4096), 99);
  EXPECT_EQ(largest_batch_within(secure, at_batch(1), std::nullopt, budget, kNoFrameLimit, 40), 40);
  EXPECT_EQ(largest_batch_within(secure, at_batch(1), std::nullopt, 1000, kNoFrameLimit, 4096), 0);
  // One role alone fits more than the three together.
  const uint64_t helper = plan_secure_memory(secure, at_batch(100)).peak[2];
  EXPECT_EQ(largest_batch_within(secure, at_batch(1), Role::Helper, helper, kNoFrameLimit, 4096),
            100);
}

// A batch over the budget is refused in one line naming the step where the budget is crossed
// and the largest batch that fits; a role checked alone is named; a batch too large for one
// frame is refused whatever the budget.
TEST(SecureMemoryPlan, RefusalsNameTheStepAndTheLargestBatch) {
  const model::Model m = resnet20();
  const SecureModel secure(m.graph);
  const uint64_t budget = plan_secure_memory(secure, at_batch(64)).total() - 1;
  try {
    require_secure_within(secure, at_batch(64), std::nullopt, budget, kNoFrameLimit);
    FAIL() << "not refused";
  } catch (const InvalidArgument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("node '"), std::string::npos) << what;
    EXPECT_NE(what.find("three-party inference at batch 64 needs"), std::string::npos) << what;
    EXPECT_NE(what.find("client "), std::string::npos) << what;
    EXPECT_NE(what.find("over the memory budget of " + human_bytes(budget)), std::string::npos)
        << what;
    EXPECT_NE(what.find("give --batch 63 or less"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  EXPECT_NO_THROW(
      require_secure_within(secure, at_batch(64), std::nullopt, budget + 1, kNoFrameLimit));
  try {
    require_secure_within(secure, at_batch(8), Role::Server, 1 << 20, kNoFrameLimit);
    FAIL() << "not refused";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("at the server, over the memory budget of 1.0 MiB; not "
                                         "even a batch of one image fits"),
              std::string::npos)
        << e.what();
  }
  try {
    require_secure_within(secure, at_batch(64), std::nullopt, kNoFrameLimit, 1 << 20);
    FAIL() << "not refused";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("over the frame limit of 1.0 MiB; give --batch"),
              std::string::npos)
        << e.what();
  }
}

// x [N, 4, 8, 8] -> BlockRelu with the given per-channel blocks.
model::Graph block_relu_graph(const std::vector<model::BlockSize>& blocks) {
  model::Graph g;
  g.inputs = {{"x", DType::Float32, {-1, 4, 8, 8}}};
  g.outputs = {{"y", DType::Float32, {-1, 4, 8, 8}}};
  g.nodes = {model::make_block_relu_node("br", "x", "y", blocks)};
  return g;
}

// A block ReLU's buffers follow its blocks: channels left as identity cost the helper nothing
// (no comparison), larger blocks fewer comparisons than 1x1 ones, and its step is named.
TEST(SecureMemoryPlan, ABlockReluIsPlannedFromItsBlocks) {
  auto step = [](const std::vector<model::BlockSize>& blocks, size_t role) {
    const model::Graph g = block_relu_graph(blocks);
    const SecureModel secure(g);
    const SecureMemoryPlan p = plan_secure_memory(secure, at_batch(32));
    EXPECT_EQ(p.steps.at(1), "node 'br' (BlockRelu)");
    return p.during[role].at(1);
  };
  const model::BlockSize id{0, 0}, one{1, 1}, four{4, 4};
  EXPECT_EQ(step({id, id, id, id}, 2), 0u);
  EXPECT_GT(step({one, one, one, one}, 2), step({four, four, four, four}, 2));
  EXPECT_GT(step({four, four, four, four}, 2), step({four, id, id, id}, 2));
  EXPECT_GT(step({four, id, id, id}, 2), 0u);
  EXPECT_GT(step({one, one, one, one}, 0), step({id, id, id, id}, 0));
}

// A hostile batch does not wrap the arithmetic around to a small plan.
TEST(SecureMemoryPlan, AHugeBatchSaturatesInsteadOfWrapping) {
  const model::Model m = resnet20();
  const SecureModel secure(m.graph);
  const SecureMemoryPlan p = plan_secure_memory(secure, at_batch(int64_t{1} << 50));
  EXPECT_GE(p.total(), uint64_t{1} << 62);
  EXPECT_THROW(plan_secure_memory(secure, at_batch(0)), InvalidArgument);
}

}  // namespace
}  // namespace veil::mpc

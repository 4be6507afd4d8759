// The model's public structure: what the server tells the client and the helper.
#include "veil/mpc/public_model.hpp"

#include <gtest/gtest.h>

#include "veil/core/error.hpp"
#include "veil/model/fold_batch_norm.hpp"
#include "veil/model/zoo.hpp"
#include "veil/mpc/secure_model.hpp"

namespace veil::mpc {
namespace {

TEST(PublicModel, RoundTripKeepsTheStructureHashAndDropsTheWeights) {
  for (const char* arch : {"lenet5", "resnet20"}) {
    model::Model m = model::build_arch(arch, {});
    model::fold_batch_norm(m);
    m.metadata["veil.normalize.mean"] = "0.25";
    m.metadata["veil.normalize.std"] = "0.5";
    m.metadata["private.note"] = "not for the client";
    std::vector<uint8_t> bytes = public_model_to_bytes(m);
    model::Model back = public_model_from_bytes(bytes);
    EXPECT_EQ(structure_hash(back.graph), structure_hash(m.graph)) << arch;
    EXPECT_EQ(back.metadata.at("veil.normalize.mean"), "0.25");
    EXPECT_EQ(back.metadata.count("private.note"), 0u);
    int64_t params = 0;
    for (const auto& [name, t] : back.graph.initializers) {
      const Tensor& orig = m.graph.initializers.at(name);
      EXPECT_EQ(t.shape(), orig.shape()) << name;
      if (t.dtype() == DType::Float32) {
        params += t.numel();
        for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.data()[i], 0.0f) << name;
      } else {
        EXPECT_EQ(t, orig) << name;  // integer constants are structure
      }
    }
    // The message is far smaller than the weights it describes (they never travel).
    EXPECT_LT(static_cast<int64_t>(bytes.size()), params) << arch;
  }
}

TEST(PublicModel, RejectsMalformedAndOversizedStructures) {
  model::Model m = model::build_arch("lenet5", {});
  nlohmann::json j = public_model_to_json(m);
  std::string text = j.dump();
  std::vector<uint8_t> cut(text.begin(), text.begin() + static_cast<long>(text.size() / 2));
  EXPECT_THROW(public_model_from_bytes(cut), MalformedInput);

  nlohmann::json huge = j;
  huge["initializers"][0]["shape"] = {1 << 30, 1 << 30};
  EXPECT_THROW(public_model_from_json(huge), MalformedInput);

  nlohmann::json dangling = j;
  dangling["nodes"][1]["inputs"][0] = "no_such_value";
  EXPECT_THROW(public_model_from_json(dangling), MalformedInput);

  nlohmann::json wrong = j;
  wrong["format"] = "something-else";
  EXPECT_THROW(public_model_from_json(wrong), MalformedInput);
}

}  // namespace
}  // namespace veil::mpc

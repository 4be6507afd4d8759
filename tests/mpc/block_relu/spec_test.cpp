#include "veil/mpc/block_relu/spec.hpp"

#include <gtest/gtest.h>

#include "veil/core/error.hpp"

namespace veil::mpc {
namespace {

TEST(BlockReluSpec, RoundTrip) {
  BlockReluSpec s;
  s.layers["relu_1"] = {{1, 1}, {2, 3}, {0, 0}, {1 << 20, 1}};
  s.layers["block/relu \"2\""] = {{7, 7}};
  const std::string j = to_json(s);
  const BlockReluSpec back = parse_block_relu_spec(j);
  EXPECT_EQ(back.layers, s.layers);
  EXPECT_EQ(to_json(back), j);
  EXPECT_NE(j.find("\"format\":\"veil-block-relu-spec\""), std::string::npos) << j;
}

TEST(BlockReluSpec, AcceptsAnEmptySpec) {
  EXPECT_TRUE(parse_block_relu_spec(R"({"format":"veil-block-relu-spec","version":1,"layers":{}})")
                  .layers.empty());
}

void expect_refused(const std::string& text, const std::string& needle) {
  try {
    parse_block_relu_spec(text);
    ADD_FAILURE() << "accepted: " << text.substr(0, 200);
  } catch (const MalformedInput& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

std::string with_layers(const std::string& layers) {
  return R"({"format":"veil-block-relu-spec","version":1,"layers":)" + layers + "}";
}

TEST(BlockReluSpec, RefusesHostileInput) {
  expect_refused("", "not valid JSON");
  expect_refused("{", "not valid JSON");
  expect_refused("[1]", "not a JSON object");
  expect_refused(R"({"format":"other","version":1,"layers":{}})", "format");
  expect_refused(R"({"version":1,"layers":{}})", "format");
  expect_refused(R"({"format":"veil-block-relu-spec","version":2,"layers":{}})", "version");
  expect_refused(R"({"format":"veil-block-relu-spec","version":"1","layers":{}})", "version");
  expect_refused(R"({"format":"veil-block-relu-spec","version":1.0,"layers":{}})", "version");
  expect_refused(R"({"format":"veil-block-relu-spec","version":1})", "\"layers\"");
  expect_refused(R"({"format":"veil-block-relu-spec","version":1,"layers":{},"x":1})",
                 "unknown key");
  expect_refused(with_layers("[]"), "\"layers\" is not an object");
  expect_refused(with_layers(R"({"":[[1,1]]})"), "empty node name");
  expect_refused(with_layers(R"({"r":[]})"), "non-empty array");
  expect_refused(with_layers(R"({"r":{"a":1}})"), "non-empty array");
  expect_refused(with_layers(R"({"r":[[1,1,1]]})"), "[h, w] pair");
  expect_refused(with_layers(R"({"r":[[1]]})"), "[h, w] pair");
  expect_refused(with_layers(R"({"r":[1,1]})"), "[h, w] pair");
  expect_refused(with_layers(R"({"r":[[1.5,1]]})"), "not an integer");
  expect_refused(with_layers(R"({"r":[[1e30,1]]})"), "not an integer");
  expect_refused(with_layers(R"({"r":[["1",1]]})"), "not an integer");
  expect_refused(with_layers(R"({"r":[[true,1]]})"), "not an integer");
  expect_refused(with_layers(R"({"r":[[-1,1]]})"), "invalid block size");
  expect_refused(with_layers(R"({"r":[[0,1]]})"), "invalid block size");
  expect_refused(with_layers(R"({"r":[[2097152,1]]})"), "invalid block size");
  expect_refused(with_layers(R"({"r":[[18446744073709551615,1]]})"), "invalid block size");
  expect_refused(std::string(100000, '[') + std::string(100000, ']'), "");
  std::string many = "[";
  for (int i = 0; i <= (1 << 20); ++i) many += i ? ",[1,1]" : "[1,1]";
  expect_refused(with_layers(R"({"r":)" + many + "]}"), "more than 2^20 channels");
}

}  // namespace
}  // namespace veil::mpc

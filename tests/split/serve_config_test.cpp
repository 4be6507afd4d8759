#include "veil/split/serve_config.hpp"

#include <gtest/gtest.h>

#include "veil/core/error.hpp"

namespace veil::split {
namespace {

TEST(ServeConfig, ReadsEveryKeyAndResolvesPathsAgainstTheFilesDirectory) {
  const ServeConfig c = parse_serve_config(
      R"({"version": 1, "accelerator": {"host": "10.0.0.2", "port": 7300}, "threads": 2,
          "io_timeout_ms": 500, "connect_timeout_ms": 700, "transcript": "v.vtrs",
          "inject_faults": 4, "fault_stride": 3, "model": "m/lenet.onnx", "data": "cifar10:/d",
          "limit": 0, "batch": 32, "scheme": "slalom", "verify": true, "json": true})",
      "/cfg");
  EXPECT_EQ(c.host, "10.0.0.2");
  EXPECT_EQ(c.port, 7300);
  EXPECT_EQ(c.threads, 2);
  EXPECT_EQ(c.io_timeout_ms, 500);
  EXPECT_EQ(c.connect_timeout_ms, 700);
  EXPECT_EQ(c.transcript, "/cfg/v.vtrs");
  EXPECT_EQ(c.inject_faults, 4);
  EXPECT_EQ(c.fault_stride, 3);
  EXPECT_EQ(c.model, "/cfg/m/lenet.onnx");
  EXPECT_EQ(c.data, "cifar10:/d");  // a dataset spec, not a path
  EXPECT_EQ(c.limit, 0);
  EXPECT_EQ(c.batch, 32);
  EXPECT_EQ(c.scheme, "slalom");
  EXPECT_TRUE(c.verify);
  EXPECT_TRUE(c.json);
  EXPECT_EQ(parse_serve_config(R"({"data": "fashion-mnist"})", "/cfg").data, "fashion-mnist");
  EXPECT_EQ(parse_serve_config(R"({"data": "ds"})", "/cfg").data, "/cfg/ds");
  const ServeConfig d = parse_serve_config("{}", "/cfg");
  EXPECT_EQ(d.host, "127.0.0.1");
  EXPECT_EQ(d.port, 0);
  EXPECT_EQ(d.limit, 100);
}

TEST(ServeConfig, RefusesUnknownKeysWrongTypesAndOutOfRangeValues) {
  for (const char* text :
       {"", "[]", "{", R"({"x": 1})", R"({"accelerator": {"hots": "a"}})",
        R"({"accelerator": {"port": -1}})", R"({"accelerator": {"port": 65536}})",
        R"({"accelerator": "h:1"})", R"({"threads": 0})", R"({"threads": "2"})",
        R"({"batch": 1e3})", R"({"limit": 18446744073709551615})", R"({"fault_stride": 0})",
        R"({"inject_faults": -1})", R"({"scheme": "shadow"})", R"({"verify": 1})",
        R"({"model": ""})", R"({"version": 2})", R"({"io_timeout_ms": 5})"})
    EXPECT_THROW(parse_serve_config(text, "/cfg"), InvalidArgument) << text;
}

}  // namespace
}  // namespace veil::split

// The session file every party reads (party_config.hpp).
#include "veil/mpc/network/party_config.hpp"

#include <gtest/gtest.h>

#include "veil/core/error.hpp"

namespace veil::mpc {
namespace {

TEST(PartyConfig, ParsesValidatesAndRoundTrips) {
  nlohmann::json j = {{"version", 1},
                      {"parties",
                       {{"client", {{"host", "127.0.0.1"}}},
                        {"server", {{"host", "127.0.0.1"}, {"port", 7001}, {"key", "server.pem"}}},
                        {"helper", {{"host", "localhost"}, {"port", 7002}}}}},
                      {"model", "m.onnx"},
                      {"input", {{"data", "fashion-mnist"}, {"n", 5}, {"batch", 2}}},
                      {"frac_bits", 14},
                      {"input_range", "-1,255"},
                      {"normalize", "0.5,0.25"},
                      {"drelu", {{"num_lsb_to_ignore", 5}, {"comparison_bits_ignored", 48}}}};
  PartyConfig c = PartyConfig::from_json(j, "/etc/veil");
  EXPECT_EQ(c.parties[1].port, 7001);
  EXPECT_EQ(c.parties[1].key, "/etc/veil/server.pem");
  EXPECT_EQ(c.model, "/etc/veil/m.onnx");
  EXPECT_EQ(c.input.n, 5);
  EXPECT_EQ(c.batch, 2);
  EXPECT_EQ(c.drelu.comparison_bits_ignored, 48);
  EXPECT_EQ(c.input_range, "-1,255");
  EXPECT_EQ(c.normalize, "0.5,0.25");
  EXPECT_TRUE(c.all_loopback());
  EXPECT_FALSE(c.tls_enabled());  // auto: all on loopback
  PartyConfig again = PartyConfig::from_json(c.to_json(), "/elsewhere");
  EXPECT_EQ(again.to_json(), c.to_json());

  nlohmann::json remote = j;
  remote["parties"]["helper"]["host"] = "10.1.2.3";
  EXPECT_TRUE(PartyConfig::from_json(remote, ".").tls_enabled());  // auto: on off-loopback
  remote["tls"] = "off";
  EXPECT_FALSE(PartyConfig::from_json(remote, ".").tls_enabled());

  for (auto [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"frac_bits", 40},
           {"tls", "maybe"},
           {"version", 2},
           {"threads", 0},
           {"threads", 1e300},                        // not representable: no UB cast
           {"threads", 2.5},                          // not an integer
           {"version", 4294967297LL},                 // would wrap to 1
           {"io_timeout_ms", 99},                     // too short
           {"io_timeout_ms", 9223372036854775807LL},  // would overflow the deadline
           {"connect_timeout_ms", 86400001},
           {"input_range", "1,0"},  // LO > HI
           {"input_range", "0"},
           {"input_range", 1},
           {"normalize", "0.5"},    // MEAN,STD
           {"normalize", "0.5,0"},  // STD > 0
           {"normalize", "a,b"}}) {
    nlohmann::json bad = j;
    bad[key] = value;
    EXPECT_THROW(PartyConfig::from_json(bad, "."), InvalidArgument) << key;
  }
  nlohmann::json bad = j;
  bad["drelu"]["num_lsb_to_ignore"] = 50;  // s > k
  EXPECT_THROW(PartyConfig::from_json(bad, "."), InvalidArgument);
  bad = j;
  bad["parties"]["server"]["fingerprint"] = "sha256:xyz";
  EXPECT_THROW(PartyConfig::from_json(bad, "."), InvalidArgument);
}

}  // namespace
}  // namespace veil::mpc

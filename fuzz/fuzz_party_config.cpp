// libFuzzer target for the MPC party configuration parser (parse_party_config, which
// load_party_config uses): any text must parse into a valid PartyConfig or throw a veil::Error.
// An accepted configuration must survive to_json -> text -> parse unchanged.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "veil/core/error.hpp"
#include "veil/mpc/network/party_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  veil::mpc::PartyConfig c;
  try {
    c = veil::mpc::parse_party_config(text, "/fuzz/config");
  } catch (const veil::Error&) {
    return 0;
  }
  (void)c.tls_enabled();
  c.session_params().validate();
  c.link.validate();
  // Paths are absolute after resolution, so re-parsing under the same base keeps them.
  const std::string again_text = c.to_json().dump();
  const veil::mpc::PartyConfig again = veil::mpc::parse_party_config(again_text, "/fuzz/config");
  if (again.to_json() != c.to_json()) __builtin_trap();
  return 0;
}

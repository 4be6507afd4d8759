// libFuzzer target for the link-profile parser (`--link`, the "link" field of a party config):
// any text must parse into a profile that validates or throw a veil::Error, and a parsed
// profile's canonical spec() must parse back to the same profile.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "veil/core/error.hpp"
#include "veil/mpc/network/link_profile.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view spec(reinterpret_cast<const char*>(data), size);
  veil::mpc::LinkProfile p;
  try {
    p = veil::mpc::parse_link_profile(spec);
  } catch (const veil::Error&) {
    return 0;
  }
  p.validate();  // must not throw for an accepted profile
  (void)p.describe();
  if (veil::mpc::parse_link_profile(p.spec()) != p) __builtin_trap();
  // The emulator's arithmetic on the largest frame the decoder accepts must stay defined.
  veil::mpc::LinkModel m(p);
  (void)m.schedule(uint64_t{1} << 32, veil::mpc::LinkModel::Clock::time_point{});
  return 0;
}

#include "veil/mpc/network/party_config.hpp"

#include <arpa/inet.h>

#include <array>
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>

#include "veil/core/error.hpp"
#include "veil/core/hex.hpp"
#include "veil/core/io.hpp"
#include "veil/data/normalization.hpp"
#include "veil/mpc/network/tls.hpp"
#include "veil/mpc/range_check.hpp"

namespace veil::mpc {
namespace {

using nlohmann::json;

constexpr int kConfigVersion = 1;
constexpr int64_t kMaxBatch = 4096;

std::string resolve(const std::filesystem::path& base, const std::string& p) {
  if (p.empty() || std::filesystem::path(p).is_absolute()) return p;
  return (base / p).lexically_normal().string();
}

template <typename T>
T field(const json& j, const char* key, T fallback, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if constexpr (std::is_integral_v<T>) {
    // get<T>() static_casts: a float outside T is undefined behaviour and a large integer wraps
    // (a port of 4294974397 would read as 7101), so the range is checked first.
    using L = std::numeric_limits<T>;
    bool ok = true;
    if (it->is_number_unsigned()) {
      ok = it->get<uint64_t>() <= static_cast<uint64_t>(L::max());
    } else if (it->is_number_integer()) {
      const int64_t v = it->get<int64_t>();
      ok = v >= static_cast<int64_t>(L::min()) &&
           (v < 0 || static_cast<uint64_t>(v) <= static_cast<uint64_t>(L::max()));
    } else if (it->is_number_float()) {
      const double d = it->get<double>();
      // L::max() + 1.0 is a power of two, exact in a double; only whole numbers are accepted.
      ok = d == std::trunc(d) && d >= static_cast<double>(L::min()) &&
           d < static_cast<double>(L::max()) + 1.0;
    }
    if (!ok) throw InvalidArgument("party config: bad value for " + where + key);
  }
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw InvalidArgument("party config: bad value for " + where + key);
  }
}

constexpr std::array<std::pair<TlsMode, const char*>, 3> kTlsModes = {
    {{TlsMode::Auto, "auto"}, {TlsMode::On, "on"}, {TlsMode::Off, "off"}}};

const char* tls_name(TlsMode m) {
  for (const auto& [mode, name] : kTlsModes)
    if (mode == m) return name;
  return "auto";
}

TlsMode tls_from_name(const std::string& s) {
  for (const auto& [mode, name] : kTlsModes)
    if (s == name) return mode;
  throw InvalidArgument("party config: tls must be auto, on or off");
}

}  // namespace

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a{};
  if (::inet_pton(AF_INET, host.c_str(), &a) == 1) return (ntohl(a.s_addr) >> 24) == 127;
  return false;
}

bool PartyConfig::all_loopback() const {
  for (const auto& p : parties)
    if (!is_loopback_host(p.host)) return false;
  return true;
}

SessionParams PartyConfig::session_params() const {
  SessionParams s;
  s.frac_bits = frac_bits;
  s.drelu = drelu;
  return s;
}

PartyConfig PartyConfig::from_json(const json& j, const std::filesystem::path& base) {
  if (!j.is_object()) throw InvalidArgument("party config: not a JSON object");
  if (field<int>(j, "version", kConfigVersion, "") != kConfigVersion)
    throw InvalidArgument("party config: unsupported version (expected 1)");
  PartyConfig c;
  if (!j.contains("parties") || !j["parties"].is_object())
    throw InvalidArgument("party config: needs a \"parties\" object");
  for (const char* name : {"client", "server", "helper"}) {
    Role r = role_from_name(name);
    const json& pj = j["parties"].value(name, json::object());
    if (!pj.is_object()) throw InvalidArgument(std::string("party config: bad parties.") + name);
    PartyEndpoint& e = c.parties[static_cast<size_t>(r)];
    std::string where = std::string("parties.") + name + ".";
    e.host = field<std::string>(pj, "host", "127.0.0.1", where);
    int port = field<int>(pj, "port", 0, where);
    if (port < 0 || port > 65535) throw InvalidArgument("party config: bad " + where + "port");
    e.port = static_cast<uint16_t>(port);
    e.key = resolve(base, field<std::string>(pj, "key", "", where));
    e.fingerprint = field<std::string>(pj, "fingerprint", "", where);
    if (!e.fingerprint.empty()) e.fingerprint = normalize_fingerprint(e.fingerprint);
  }
  c.model = resolve(base, field<std::string>(j, "model", "", ""));
  c.model_hash = field<std::string>(j, "model_hash", "", "");
  if (!c.model_hash.empty()) {
    std::string h = c.model_hash.rfind("sha256:", 0) == 0 ? c.model_hash.substr(7) : c.model_hash;
    std::array<uint8_t, 32> bytes;
    if (!from_hex(h, bytes))
      throw InvalidArgument("party config: model_hash must be 64 hex digits");
    c.model_hash = h;
  }
  if (j.contains("input")) {
    const json& in = j["input"];
    if (!in.is_object()) throw InvalidArgument("party config: bad input");
    c.input.data = field<std::string>(in, "data", c.input.data, "input.");
    c.input.npy = resolve(base, field<std::string>(in, "npy", "", "input."));
    c.input.n = field<int64_t>(in, "n", c.input.n, "input.");
    c.input.offset = field<int64_t>(in, "offset", 0, "input.");
    c.batch = field<int64_t>(in, "batch", c.batch, "input.");
  }
  if (c.input.n < 0 || c.input.offset < 0)
    throw InvalidArgument("party config: input.n/offset must be >= 0");
  if (c.batch < 1 || c.batch > kMaxBatch)
    throw InvalidArgument("party config: input.batch must be in [1, 4096]");
  c.frac_bits = field<int>(j, "frac_bits", c.frac_bits, "");
  c.input_range = field<std::string>(j, "input_range", "", "");
  if (!c.input_range.empty()) parse_input_range(c.input_range, "party config: input_range");
  c.normalize = field<std::string>(j, "normalize", "", "");
  try {
    if (!c.normalize.empty()) data::Normalization::parse_pair(c.normalize);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(std::string("party config: bad normalize: ") + e.what());
  }
  if (j.contains("drelu")) {
    c.drelu.num_lsb_to_ignore = field<int>(j["drelu"], "num_lsb_to_ignore", 0, "drelu.");
    c.drelu.comparison_bits_ignored =
        field<int>(j["drelu"], "comparison_bits_ignored", 0, "drelu.");
  }
  c.session_params().validate();
  c.tls = tls_from_name(field<std::string>(j, "tls", "auto", ""));
  c.threads = field<int>(j, "threads", 1, "");
  c.io_timeout_ms = field<int64_t>(j, "io_timeout_ms", c.io_timeout_ms, "");
  c.connect_timeout_ms = field<int64_t>(j, "connect_timeout_ms", c.connect_timeout_ms, "");
  if (c.threads < 1 || c.threads > 256) throw InvalidArgument("party config: bad threads");
  // Upper bound: a day. Larger values mean "never" in practice and would overflow the
  // nanosecond deadlines of the TCP layer (Clock::now() + timeout).
  constexpr int64_t kMaxTimeoutMs = int64_t{24} * 3600 * 1000;
  if (c.io_timeout_ms < 100 || c.connect_timeout_ms < 100 || c.io_timeout_ms > kMaxTimeoutMs ||
      c.connect_timeout_ms > kMaxTimeoutMs)
    throw InvalidArgument("party config: timeouts must be between 100 ms and 24 h");
  std::string link = field<std::string>(j, "link", "none", "");
  try {
    c.link = parse_link_profile(link);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(std::string("party config: bad link: ") + e.what());
  }
  return c;
}

json PartyConfig::to_json() const {
  json j;
  j["version"] = kConfigVersion;
  for (Role r : {Role::Client, Role::Server, Role::Helper}) {
    const PartyEndpoint& e = parties[static_cast<size_t>(r)];
    json pj = {{"host", e.host}, {"port", e.port}};
    if (!e.key.empty()) pj["key"] = e.key;
    if (!e.fingerprint.empty()) pj["fingerprint"] = e.fingerprint;
    j["parties"][role_name(r)] = pj;
  }
  if (!model.empty()) j["model"] = model;
  if (!model_hash.empty()) j["model_hash"] = model_hash;
  json in = {{"n", input.n}, {"offset", input.offset}, {"batch", batch}};
  if (!input.npy.empty())
    in["npy"] = input.npy;
  else
    in["data"] = input.data;
  j["input"] = in;
  j["frac_bits"] = frac_bits;
  if (!input_range.empty()) j["input_range"] = input_range;
  if (!normalize.empty()) j["normalize"] = normalize;
  j["drelu"] = {{"num_lsb_to_ignore", drelu.num_lsb_to_ignore},
                {"comparison_bits_ignored", drelu.comparison_bits_ignored}};
  j["tls"] = tls_name(tls);
  j["threads"] = threads;
  j["io_timeout_ms"] = io_timeout_ms;
  j["connect_timeout_ms"] = connect_timeout_ms;
  if (link.enabled()) j["link"] = link.spec();
  return j;
}

PartyConfig parse_party_config(std::string_view json_text, const std::filesystem::path& base_dir) {
  json j = json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (j.is_discarded()) throw InvalidArgument("not valid JSON");
  return PartyConfig::from_json(j, base_dir);
}

PartyConfig load_party_config(const std::filesystem::path& path) {
  std::vector<uint8_t> bytes = read_file(path, 1 << 20);
  try {
    return parse_party_config(
        std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
        path.parent_path());
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(path.string() + ": " + e.what());
  }
}

}  // namespace veil::mpc

#include "veil/split/serve_config.hpp"

#include <nlohmann/json.hpp>

#include "veil/core/error.hpp"
#include "veil/core/io.hpp"
#include "veil/split/scheme.hpp"

namespace veil::split {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& key, const std::string& why) {
  throw InvalidArgument("split config: \"" + key + "\" " + why);
}

int64_t integer(const json& j, const std::string& key, int64_t lo, int64_t hi) {
  // is_number_integer() is false for 1.5 and 1e3; an unsigned value above int64 is refused too.
  if (!j.is_number_integer() || (j.is_number_unsigned() && j.get<uint64_t>() > uint64_t(hi)))
    bad(key, "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  const int64_t v = j.get<int64_t>();
  if (v < lo || v > hi)
    bad(key, "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

std::string text(const json& j, const std::string& key, size_t max_len = 4096) {
  if (!j.is_string()) bad(key, "must be a string");
  std::string s = j.get<std::string>();
  if (s.size() > max_len) bad(key, "is too long");
  return s;
}

bool flag(const json& j, const std::string& key) {
  if (!j.is_boolean()) bad(key, "must be true or false");
  return j.get<bool>();
}

std::string path(const json& j, const std::string& key, const std::filesystem::path& base) {
  std::string p = text(j, key);
  if (p.empty()) bad(key, "must not be empty");
  if (std::filesystem::path(p).is_absolute()) return p;
  return (base / p).lexically_normal().string();
}

}  // namespace

ServeConfig parse_serve_config(std::string_view json_text, const std::filesystem::path& base) {
  const json j = json::parse(json_text, nullptr, false);
  if (j.is_discarded()) throw InvalidArgument("split config: not valid JSON");
  if (!j.is_object()) throw InvalidArgument("split config: not a JSON object");
  ServeConfig c;
  constexpr int64_t kHour = 3600000;
  for (const auto& [key, v] : j.items()) {
    if (key == "version") {
      if (integer(v, key, 0, 1 << 16) != 1) bad(key, "must be 1");
    } else if (key == "accelerator") {
      if (!v.is_object()) bad(key, "must be an object {\"host\": ..., \"port\": ...}");
      for (const auto& [k, a] : v.items()) {
        if (k == "host") {
          c.host = text(a, "accelerator.host", 255);
          if (c.host.empty()) bad("accelerator.host", "must not be empty");
        } else if (k == "port") {
          c.port = static_cast<uint16_t>(integer(a, "accelerator.port", 0, 65535));
        } else {
          bad("accelerator." + k, "is not a key of the accelerator's address (host, port)");
        }
      }
    } else if (key == "threads") {
      c.threads = static_cast<int>(integer(v, key, 1, 256));
    } else if (key == "io_timeout_ms") {
      c.io_timeout_ms = integer(v, key, 100, kHour);
    } else if (key == "connect_timeout_ms") {
      c.connect_timeout_ms = integer(v, key, 100, kHour);
    } else if (key == "transcript") {
      c.transcript = path(v, key, base);
    } else if (key == "inject_faults") {
      c.inject_faults = integer(v, key, 0, int64_t{1} << 40);
    } else if (key == "fault_stride") {
      c.fault_stride = integer(v, key, 1, int64_t{1} << 40);
    } else if (key == "model") {
      c.model = path(v, key, base);
    } else if (key == "data") {
      // A dataset name ("fashion-mnist", "cifar10:<dir>") or a directory: resolve directories only.
      c.data = text(v, key);
      if (c.data.empty()) bad(key, "must not be empty");
      if (c.data.find(':') == std::string::npos && c.data != "fashion-mnist")
        c.data = path(v, key, base);
    } else if (key == "limit") {
      c.limit = integer(v, key, 0, int64_t{1} << 31);
    } else if (key == "batch") {
      c.batch = integer(v, key, 1, 4096);
    } else if (key == "scheme") {
      c.scheme = text(v, key, 64);
      try {
        parse_scheme(c.scheme);
      } catch (const InvalidArgument& e) {
        bad(key, std::string("is not a scheme: ") + e.what());
      }
    } else if (key == "verify") {
      c.verify = flag(v, key);
    } else if (key == "json") {
      c.json = flag(v, key);
    } else {
      bad(key, "is not a split config key (see docs/SPLIT.md)");
    }
  }
  return c;
}

ServeConfig load_serve_config(const std::filesystem::path& file) {
  const std::string t = read_text_file(file, 1 << 20);
  try {
    return parse_serve_config(t, file.parent_path());
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(file.string() + ": " + e.what());
  }
}

}  // namespace veil::split

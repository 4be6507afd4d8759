#include "veil/mpc/public_model.hpp"

#include <cmath>

#include "veil/core/error.hpp"
#include "veil/core/hex.hpp"

namespace veil::mpc {
namespace {

using nlohmann::json;

constexpr int kFormatVersion = 1;

json shape_json(const Shape& s) { return json(s); }

Shape shape_from(const json& j, const std::string& what) {
  if (!j.is_array() || j.size() > 8) throw MalformedInput("public model: bad shape of " + what);
  Shape s;
  for (const auto& d : j) {
    if (!d.is_number_integer()) throw MalformedInput("public model: bad shape of " + what);
    int64_t v = d.get<int64_t>();
    if (v < -1 || v > (int64_t{1} << 31))
      throw MalformedInput("public model: bad shape of " + what);
    s.push_back(v);
  }
  return s;
}

DType dtype_from(const json& j, const std::string& what) {
  std::string s = j.is_string() ? j.get<std::string>() : "";
  if (s == to_string(DType::Float32)) return DType::Float32;
  if (s == to_string(DType::Int64)) return DType::Int64;
  throw MalformedInput("public model: bad dtype of " + what);
}

json attribute_json(const model::Attribute& a) {
  return std::visit(
      [](const auto& v) -> json {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, int64_t>) return {{"i", v}};
        if constexpr (std::is_same_v<T, float>) {
          if (!std::isfinite(v)) throw Unsupported("public model: non-finite float attribute");
          return {{"f", v}};
        }
        if constexpr (std::is_same_v<T, std::string>) return {{"s", v}};
        if constexpr (std::is_same_v<T, std::vector<int64_t>>) return {{"I", v}};
        if constexpr (std::is_same_v<T, std::vector<float>>) {
          for (float x : v)
            if (!std::isfinite(x)) throw Unsupported("public model: non-finite float attribute");
          return {{"F", v}};
        }
        if constexpr (std::is_same_v<T, Tensor>)
          return {{"T", {{"dtype", to_string(v.dtype())}, {"shape", shape_json(v.shape())}}}};
      },
      a);
}

std::string get_string(const json& j, const char* key, const std::string& what) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string())
    throw MalformedInput("public model: " + what + " needs a string '" + key + "'");
  return it->get<std::string>();
}

const json& get_array(const json& j, const char* key, const std::string& what) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array())
    throw MalformedInput("public model: " + what + " needs an array '" + key + "'");
  return *it;
}

std::vector<std::string> strings_from(const json& j, const std::string& what) {
  std::vector<std::string> out;
  for (const auto& s : j) {
    if (!s.is_string()) throw MalformedInput("public model: bad name list in " + what);
    out.push_back(s.get<std::string>());
  }
  return out;
}

// Zero tensor of `shape`, charging its size to `budget`.
Tensor zero_tensor(const Shape& shape, DType dtype, int64_t& budget, const std::string& what) {
  for (int64_t d : shape)
    if (d < 0) throw MalformedInput("public model: negative dimension in " + what);
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d != 0 && n > kMaxPublicModelElements / d)
      throw MalformedInput("public model: " + what + " is too large");
    n *= d;
  }
  if (n > budget) throw MalformedInput("public model: the weights are too large to rebuild");
  budget -= n;
  return Tensor(shape, dtype);
}

model::Attribute attribute_from(const json& j, int64_t& budget, const std::string& what) {
  if (!j.is_object() || j.size() != 1) throw MalformedInput("public model: bad attribute " + what);
  auto first = j.begin();
  const std::string k = first.key();
  const json& v = first.value();
  try {
    if (k == "i") return v.get<int64_t>();
    if (k == "f") return v.get<float>();
    if (k == "s") return v.get<std::string>();
    if (k == "I") return v.get<std::vector<int64_t>>();
    if (k == "F") return v.get<std::vector<float>>();
  } catch (const json::exception&) {
    throw MalformedInput("public model: bad attribute " + what);
  }
  if (k == "T" && v.is_object() && v.contains("dtype") && v.contains("shape"))
    return zero_tensor(shape_from(v["shape"], what), dtype_from(v["dtype"], what), budget, what);
  throw MalformedInput("public model: bad attribute " + what);
}

}  // namespace

bool is_public_metadata_key(const std::string& key) {
  return key == "veil.normalize.mean" || key == "veil.normalize.std" || key == "veil.class_names" ||
         key == "veil.dataset" || key == "veil.arch" || key == "veil.input.range";
}

json public_model_to_json(const model::Model& m) {
  const model::Graph& g = m.graph;
  json j;
  j["format"] = "veil-mpc-public-model";
  j["version"] = kFormatVersion;
  j["name"] = g.name;
  json meta = json::object();
  for (const auto& [k, v] : m.metadata)
    if (is_public_metadata_key(k)) meta[k] = v;
  j["metadata"] = meta;
  j["inputs"] = json::array();
  for (const auto& v : g.inputs)
    j["inputs"].push_back(
        {{"name", v.name}, {"dtype", to_string(v.dtype)}, {"shape", shape_json(v.shape)}});
  j["outputs"] = json::array();
  for (const auto& v : g.outputs)
    j["outputs"].push_back(
        {{"name", v.name}, {"dtype", to_string(v.dtype)}, {"shape", shape_json(v.shape)}});
  j["initializers"] = json::array();
  for (const auto& [name, t] : g.initializers) {
    json e = {{"name", name}, {"dtype", to_string(t.dtype())}, {"shape", shape_json(t.shape())}};
    // Integer constants are structure (Reshape targets); float values are the secret weights.
    if (t.dtype() == DType::Int64) e["values"] = t.to_int64s();
    j["initializers"].push_back(std::move(e));
  }
  j["nodes"] = json::array();
  for (const auto& n : g.nodes) {
    json attrs = json::object();
    for (const auto& [k, v] : n.attributes) attrs[k] = attribute_json(v);
    j["nodes"].push_back({{"name", n.name},
                          {"op", n.op_type},
                          {"inputs", n.inputs},
                          {"outputs", n.outputs},
                          {"attributes", attrs}});
  }
  return j;
}

model::Model public_model_from_json(const json& j) {
  if (!j.is_object() || j.value("format", "") != "veil-mpc-public-model")
    throw MalformedInput("public model: not a veil MPC model structure");
  if (!j.contains("version") || !j["version"].is_number_integer() ||
      j["version"].get<int>() != kFormatVersion)
    throw MalformedInput("public model: unsupported format version");
  model::Model m;
  int64_t budget = kMaxPublicModelElements;
  try {
    m.graph.name = j.value("name", "");
    if (j.contains("metadata")) {
      if (!j["metadata"].is_object()) throw MalformedInput("public model: bad metadata");
      for (const auto& [k, v] : j["metadata"].items())
        if (is_public_metadata_key(k) && v.is_string()) m.metadata[k] = v.get<std::string>();
    }
    for (const char* which : {"inputs", "outputs"}) {
      for (const auto& v : get_array(j, which, "the model")) {
        model::ValueInfo vi;
        vi.name = get_string(v, "name", which);
        vi.dtype = dtype_from(v.value("dtype", json()), vi.name);
        vi.shape = shape_from(v.value("shape", json()), vi.name);
        (std::string(which) == "inputs" ? m.graph.inputs : m.graph.outputs).push_back(vi);
      }
    }
    const json& inits = get_array(j, "initializers", "the model");
    const json& nodes = get_array(j, "nodes", "the model");
    if (static_cast<int64_t>(inits.size() + nodes.size()) > kMaxPublicModelNodes)
      throw MalformedInput("public model: too many nodes or initializers");
    for (const auto& e : inits) {
      std::string name = get_string(e, "name", "an initializer");
      DType dt = dtype_from(e.value("dtype", json()), name);
      Shape shape = shape_from(e.value("shape", json()), name);
      Tensor t = zero_tensor(shape, dt, budget, name);
      if (dt == DType::Int64) {
        if (!e.contains("values") || !e["values"].is_array())
          throw MalformedInput("public model: integer constant '" + name + "' without values");
        auto vals = e["values"].get<std::vector<int64_t>>();
        if (static_cast<int64_t>(vals.size()) != t.numel())
          throw MalformedInput("public model: integer constant '" + name + "' has wrong size");
        t = Tensor::from_int64(shape, std::move(vals));
      }
      if (!m.graph.initializers.emplace(name, std::move(t)).second)
        throw MalformedInput("public model: duplicate initializer '" + name + "'");
    }
    for (const auto& e : nodes) {
      model::Node n;
      n.name = get_string(e, "name", "a node");
      n.op_type = get_string(e, "op", "node '" + n.name + "'");
      n.inputs = strings_from(get_array(e, "inputs", n.name), n.name);
      n.outputs = strings_from(get_array(e, "outputs", n.name), n.name);
      if (e.contains("attributes")) {
        if (!e["attributes"].is_object()) throw MalformedInput("public model: bad attributes");
        for (const auto& [k, v] : e["attributes"].items())
          n.attributes[k] = attribute_from(v, budget, n.name + "." + k);
      }
      m.graph.nodes.push_back(std::move(n));
    }
  } catch (const json::exception& e) {
    throw MalformedInput(std::string("public model: ") + e.what());
  }
  model::validate(m.graph);
  return m;
}

std::vector<uint8_t> public_model_to_bytes(const model::Model& model) {
  std::string s;
  try {
    s = public_model_to_json(model).dump();
  } catch (const json::type_error& e) {  // nlohmann writes only UTF-8 strings
    throw MalformedInput(std::string("the model's structure cannot be sent: a name, op type or "
                                     "attribute is not valid UTF-8 (") +
                         e.what() + ")");
  }
  return std::vector<uint8_t>(s.begin(), s.end());
}

model::Model public_model_from_bytes(std::span<const uint8_t> bytes) {
  if (bytes.size() > kMaxPublicModelBytes)
    throw MalformedInput("public model: structure message too large");
  json j = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw MalformedInput("public model: structure message is not JSON");
  return public_model_from_json(j);
}

std::array<uint8_t, 32> hash_from_hex(const std::string& hex) {
  const std::string_view h = hex.rfind("sha256:", 0) == 0 ? std::string_view(hex).substr(7) : hex;
  std::array<uint8_t, 32> out{};
  if (!from_hex(h, out))
    throw InvalidArgument("expected a SHA-256 hash (64 hex digits): '" + hex + "'");
  return out;
}

}  // namespace veil::mpc

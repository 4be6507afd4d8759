// libFuzzer target for the ONNX importer: any input must import or throw a veil::Error, and a
// model that imports must survive shape inference, export and re-import unchanged in structure.
#include <cstddef>
#include <cstdint>
#include <string>

#include "veil/core/error.hpp"
#include "veil/model/onnx.hpp"
#include "veil/model/shape_inference.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  veil::model::Model m;
  try {
    m = veil::model::parse_onnx(data, size, "fuzz.onnx");
    veil::model::infer_shapes(m);
  } catch (const veil::Error&) {
    return 0;
  }
  // Anything accepted once must export and import again: an exception here is a bug.
  std::string bytes = veil::model::serialize_onnx(m);
  veil::model::Model again = veil::model::parse_onnx(reinterpret_cast<const uint8_t*>(bytes.data()),
                                                     bytes.size(), "fuzz-roundtrip.onnx");
  if (again.graph.nodes.size() != m.graph.nodes.size() ||
      again.graph.initializers.size() != m.graph.initializers.size() ||
      veil::model::serialize_onnx(again) != bytes)
    __builtin_trap();
  return 0;
}

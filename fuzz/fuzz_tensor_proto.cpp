// libFuzzer target for the ONNX TensorProto reader: any input must parse or throw a veil::Error.
// A tensor that parses is written back as a raw_data TensorProto of its own dtype and must read
// back bit for bit.
#include <onnx/onnx_pb.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "veil/core/error.hpp"
#include "veil/data/tensor_proto.hpp"

namespace {

std::string to_tensor_proto(const veil::Tensor& t) {
  onnx::TensorProto tp;
  veil::data::tensor_to_proto(t, "", &tp);
  return tp.SerializeAsString();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  veil::Tensor t;
  try {
    t = veil::data::parse_tensor_proto(data, size);
  } catch (const veil::Error&) {
    return 0;
  }
  // Accepted once, the tensor must survive a round trip: an exception here is a bug.
  const std::string bytes = to_tensor_proto(t);
  veil::Tensor again =
      veil::data::parse_tensor_proto(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (!(again == t)) __builtin_trap();
  return 0;
}

// A dense, row-major tensor of float32 or int64 values that owns its storage.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace veil {

using Shape = std::vector<int64_t>;

enum class DType { Float32, Int64 };

std::string to_string(DType dtype);
std::string shape_to_string(const Shape& shape);

// Product of the dimensions; throws InvalidArgument for a negative dimension or on overflow.
int64_t shape_numel(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  // A zero-filled tensor.
  explicit Tensor(Shape shape, DType dtype = DType::Float32);

  static Tensor from_floats(Shape shape, std::vector<float> values);
  static Tensor from_int64(Shape shape, std::vector<int64_t> values);
  static Tensor scalar(float value) { return from_floats({}, {value}); }

  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  int64_t numel() const { return numel_; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t dim(int64_t i) const;  // negative i counts from the end
  bool empty() const { return numel_ == 0; }

  // Typed views; throw InvalidArgument when the dtype does not match.
  std::span<float> floats();
  std::span<const float> floats() const;
  std::span<int64_t> int64s();
  std::span<const int64_t> int64s() const;
  float* data() { return floats().data(); }
  const float* data() const { return floats().data(); }

  // Same data, new shape with the same number of elements.
  Tensor reshaped(Shape shape) const;
  // Changes the shape in place (numel must match).
  void reshape(Shape shape);

  // Float view of either dtype (int64 values converted), used by shape-agnostic ops.
  std::vector<float> to_floats() const;
  std::vector<int64_t> to_int64s() const;

  bool operator==(const Tensor& other) const;  // same dtype, shape and bits

 private:
  // A tensor of `shape` without elements yet; the shape is checked against `values` elements.
  static Tensor with_shape(Shape shape, DType dtype, size_t values);

  Shape shape_;
  DType dtype_ = DType::Float32;
  int64_t numel_ = 0;
  std::vector<float> f32_;
  std::vector<int64_t> i64_;
};

}  // namespace veil

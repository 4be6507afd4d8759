#include "veil/core/tensor.hpp"

#include <cstring>
#include <limits>

#include "veil/core/error.hpp"

namespace veil {

std::string to_string(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return "float32";
    case DType::Int64:
      return "int64";
  }
  return "unknown";
}

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += shape[i] < 0 ? std::string("?") : std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0)
      throw InvalidArgument("shape " + shape_to_string(shape) + " has a negative dimension");
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      throw InvalidArgument("shape " + shape_to_string(shape) + " has too many elements");
    n *= d;
  }
  return n;
}

Tensor::Tensor(Shape shape, DType dtype) : shape_(std::move(shape)), dtype_(dtype) {
  numel_ = shape_numel(shape_);
  if (dtype_ == DType::Float32)
    f32_.assign(static_cast<size_t>(numel_), 0.0f);
  else
    i64_.assign(static_cast<size_t>(numel_), 0);
}

namespace {

int64_t checked_count(const Shape& shape, size_t values) {
  int64_t n = shape_numel(shape);
  if (static_cast<int64_t>(values) != n)
    throw InvalidArgument("tensor of shape " + shape_to_string(shape) + " needs " +
                          std::to_string(n) + " values, got " + std::to_string(values));
  return n;
}

}  // namespace

Tensor Tensor::from_floats(Shape shape, std::vector<float> values) {
  Tensor t = with_shape(std::move(shape), DType::Float32, values.size());
  t.f32_ = std::move(values);
  return t;
}

Tensor Tensor::from_int64(Shape shape, std::vector<int64_t> values) {
  Tensor t = with_shape(std::move(shape), DType::Int64, values.size());
  t.i64_ = std::move(values);
  return t;
}

Tensor Tensor::with_shape(Shape shape, DType dtype, size_t values) {
  Tensor t;
  t.numel_ = checked_count(shape, values);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  return t;
}

int64_t Tensor::dim(int64_t i) const {
  int64_t r = rank();
  if (i < 0) i += r;
  if (i < 0 || i >= r)
    throw InvalidArgument("dimension index out of range for shape " + shape_to_string(shape_));
  return shape_[static_cast<size_t>(i)];
}

std::span<float> Tensor::floats() {
  if (dtype_ != DType::Float32)
    throw InvalidArgument("tensor is " + to_string(dtype_) + ", not float32");
  return {f32_.data(), f32_.size()};
}
std::span<const float> Tensor::floats() const {
  if (dtype_ != DType::Float32)
    throw InvalidArgument("tensor is " + to_string(dtype_) + ", not float32");
  return {f32_.data(), f32_.size()};
}
std::span<int64_t> Tensor::int64s() {
  if (dtype_ != DType::Int64)
    throw InvalidArgument("tensor is " + to_string(dtype_) + ", not int64");
  return {i64_.data(), i64_.size()};
}
std::span<const int64_t> Tensor::int64s() const {
  if (dtype_ != DType::Int64)
    throw InvalidArgument("tensor is " + to_string(dtype_) + ", not int64");
  return {i64_.data(), i64_.size()};
}

Tensor Tensor::reshaped(Shape shape) const {
  Tensor t = *this;
  t.reshape(std::move(shape));
  return t;
}

void Tensor::reshape(Shape shape) {
  if (shape_numel(shape) != numel_)
    throw InvalidArgument("cannot reshape " + shape_to_string(shape_) + " to " +
                          shape_to_string(shape));
  shape_ = std::move(shape);
}

std::vector<float> Tensor::to_floats() const {
  if (dtype_ == DType::Float32) return f32_;
  return {i64_.begin(), i64_.end()};
}

std::vector<int64_t> Tensor::to_int64s() const {
  if (dtype_ == DType::Int64) return i64_;
  std::vector<int64_t> out(f32_.size());
  for (size_t i = 0; i < f32_.size(); ++i) out[i] = static_cast<int64_t>(f32_[i]);
  return out;
}

bool Tensor::operator==(const Tensor& other) const {
  if (dtype_ != other.dtype_ || shape_ != other.shape_) return false;
  if (dtype_ == DType::Float32)
    return f32_.size() == other.f32_.size() &&
           (f32_.empty() ||
            std::memcmp(f32_.data(), other.f32_.data(), f32_.size() * sizeof(float)) == 0);
  return i64_ == other.i64_;
}

}  // namespace veil

#include <gtest/gtest.h>

#include "veil/core/error.hpp"
#include "veil/core/tensor.hpp"

namespace veil {
namespace {

TEST(Tensor, ZeroInitialisedWithShape) {
  Tensor t({2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.rank(), 3);
  EXPECT_EQ(t.dim(-1), 4);
  for (float v : t.floats()) EXPECT_EQ(v, 0.0f);
}

TEST(Tensor, FromFloatsChecksCount) {
  EXPECT_THROW(Tensor::from_floats({2, 2}, {1, 2, 3}), InvalidArgument);
  auto t = Tensor::from_floats({2, 2}, {1, 2, 3, 4});
  EXPECT_EQ(t.floats()[3], 4.0f);
}

TEST(Tensor, DTypeMismatchThrows) {
  auto t = Tensor::from_int64({2}, {5, 7});
  EXPECT_THROW(t.floats(), InvalidArgument);
  EXPECT_EQ(t.int64s()[1], 7);
}

TEST(Tensor, ReshapeKeepsDataAndRejectsMismatch) {
  auto t = Tensor::from_floats({2, 3}, {1, 2, 3, 4, 5, 6});
  auto r = t.reshaped({3, 2});
  EXPECT_EQ(r.shape(), (Shape{3, 2}));
  EXPECT_EQ(r.floats()[5], 6.0f);
  EXPECT_THROW(t.reshape({4, 2}), InvalidArgument);
}

TEST(Tensor, NegativeAndOverflowingShapesRejected) {
  EXPECT_THROW(shape_numel({2, -1}), InvalidArgument);
  EXPECT_THROW(shape_numel({1LL << 40, 1LL << 40}), InvalidArgument);
}

TEST(Tensor, EqualityIsBitwise) {
  auto a = Tensor::from_floats({1}, {0.0f});
  auto b = Tensor::from_floats({1}, {-0.0f});
  EXPECT_FALSE(a == b);
  EXPECT_TRUE(a == a);
}

}  // namespace
}  // namespace veil

// The client's image selection, shared by `veil mpc party` and `veil mpc run`.
#include "veil/mpc/client_input.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"
#include "veil/core/error.hpp"
#include "veil/data/npy.hpp"
#include "veil/model/zoo.hpp"

namespace veil::mpc {
namespace {

using testing::TempDir;

class ClientInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<float> v(5 * 1 * 2 * 3);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.5f;
    images_ = Tensor::from_floats({5, 1, 2, 3}, v);
    data::write_npy(dir_ / "x.npy", images_);
    spec_.npy = (dir_ / "x.npy").string();
  }
  // Image i of images_, as written.
  float pixel(int64_t image, int64_t k) const { return images_.data()[image * 6 + k]; }

  TempDir dir_;
  Tensor images_;
  ClientInputSpec spec_;
};

TEST_F(ClientInputTest, TakesNImagesFromTheOffset) {
  spec_.n = 2;
  spec_.offset = 1;
  ClientInput in = select_client_input(spec_);
  ASSERT_EQ(in.images.shape(), (Shape{2, 1, 2, 3}));
  EXPECT_EQ(in.size(), 2);
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t k = 0; k < 6; ++k) EXPECT_EQ(in.images.data()[i * 6 + k], pixel(1 + i, k));
  EXPECT_TRUE(in.labels.empty());
}

TEST_F(ClientInputTest, ZeroMeansAllAndTooManyIsClamped) {
  spec_.offset = 3;
  EXPECT_EQ(select_client_input(spec_).size(), 2);  // n = 0: images 3 and 4
  spec_.n = 100;
  ClientInput in = select_client_input(spec_);
  ASSERT_EQ(in.size(), 2);
  EXPECT_EQ(in.images.data()[0], pixel(3, 0));
}

TEST_F(ClientInputTest, RefusesWhatIsNotFloat32ImagesOrSelectsNothing) {
  Tensor ints({5, 1, 2, 3}, DType::Int64);
  data::write_npy(dir_ / "i.npy", ints);
  ClientInputSpec s = spec_;
  s.npy = (dir_ / "i.npy").string();
  EXPECT_THROW(select_client_input(s), InvalidArgument);  // the old `mpc run` path read these
  data::write_npy(dir_ / "flat.npy", Tensor::from_floats({3}, {1, 2, 3}));
  s.npy = (dir_ / "flat.npy").string();
  EXPECT_THROW(select_client_input(s), InvalidArgument);  // no batch dimension
  s = spec_;
  s.offset = 5;
  EXPECT_THROW(select_client_input(s), InvalidArgument);  // nothing at or after the offset
  s.offset = -1;
  EXPECT_THROW(select_client_input(s), InvalidArgument);
  s = spec_;
  s.n = -2;
  EXPECT_THROW(select_client_input(s), InvalidArgument);
  s.n = kMaxClientImages + 1;
  EXPECT_THROW(select_client_input(s), InvalidArgument);
}

TEST_F(ClientInputTest, ChecksTheModelsInputShape) {
  EXPECT_EQ(select_client_input(spec_, Shape{1, 1, 2, 3}).size(), 5);
  EXPECT_EQ(select_client_input(spec_, Shape{-1, 1, 2, 3}).size(), 5);  // batch dim ignored
  EXPECT_THROW(select_client_input(spec_, Shape{1, 1, 3, 2}), InvalidArgument);
  EXPECT_THROW(select_client_input(spec_, Shape{1, 6}), InvalidArgument);
}

TEST(ModelInputShape, SetsTheBatchAndNeedsFixedDimensions) {
  model::ArchSpec spec;
  model::Model m = model::build_arch("lenet5", spec);
  EXPECT_EQ(model_input_shape(m.graph, 7), (Shape{7, 1, 28, 28}));
  m.graph.inputs[0].shape[2] = -1;
  EXPECT_THROW(model_input_shape(m.graph, 7), Unsupported);
  m.graph.inputs.clear();
  EXPECT_THROW(model_input_shape(m.graph, 7), MalformedInput);
}

}  // namespace
}  // namespace veil::mpc

// Freivalds' check in float32 against its derivation (src/split/float_check.cpp): honest
// results always pass, an element off by more than twice the tolerance never does, and two
// errors that cancel only for some sign vectors pass at the rate 2^-rounds predicts.
#include "veil/split/float_check.hpp"

#include <gtest/gtest.h>

#include <random>

#include "test_layers.hpp"
#include "veil/core/error.hpp"

namespace veil::split {
namespace {

using testing::conv_layer;
using testing::dense_layer;
using testing::max_abs;
using testing::random_input;
using testing::random_tensor;

AesCtrPrg test_prg(int k) {
  Seed s{};
  s[0] = static_cast<uint8_t>(k & 255);
  s[1] = static_cast<uint8_t>(k >> 8);
  return AesCtrPrg(s);
}

// A ResNet-20-sized layer (64 -> 77 slots of 64 x 3 x 3 terms): the accelerator's faults,
// (1 + max |y|) x U(1, 10), must clear twice the tolerance with room to spare, also with
// activations far from 1.
TEST(FloatFreivalds, ToleranceIsFarBelowTheFaultsAtResNetSize) {
  std::mt19937 rng(1);
  const LinearLayer layer = conv_layer(1, 77, 64, 8, 3, 1, 1, 1, rng);
  AesCtrPrg prg = test_prg(1);
  FloatFreivalds check(layer, layer.weight, 2, prg);
  for (float scale : {1e-3f, 1.0f, 3.0f, 1e3f}) {
    // Masked inputs: activations plus a mask twice their size.
    Tensor x = random_input(layer, 2, rng, scale);
    const Tensor mask = random_tensor(x.shape(), rng, 2 * scale);
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] += mask.data()[i];
    const Tensor y = apply_linear(layer, layer.weight, x);
    const float tol = max_abs(check.tolerance(x));
    EXPECT_LT(8 * tol, 1 + max_abs(y)) << scale;  // measured: 20 to 2700 times
    EXPECT_NO_THROW(check.check(x, y));
  }
}

TEST(FloatFreivalds, SmallDeviationsPassAndLargeOnesFailAtEveryPosition) {
  std::mt19937 rng(2);
  const LinearLayer layer = conv_layer(1, 6, 3, 5, 3, 1, 1, 1, rng);
  AesCtrPrg prg = test_prg(2);
  FloatFreivalds check(layer, layer.weight, 2, prg);
  const Tensor x = random_input(layer, 1, rng);
  const Tensor y = apply_linear(layer, layer.weight, x);
  const Tensor tol = check.tolerance(x);  // [1, 1, 5, 5]
  const int64_t positions = tol.numel();
  for (int64_t c = 0; c < 6; ++c)
    for (int64_t p = 0; p < positions; ++p) {
      for (float sign : {1.0f, -1.0f}) {
        Tensor bad = y;
        // The honest error is at most half the tolerance: a tenth more still passes.
        bad.data()[c * positions + p] += sign * 0.1f * tol.data()[p];
        EXPECT_NO_THROW(check.check(x, bad));
        bad.data()[c * positions + p] += sign * 2.1f * tol.data()[p];
        EXPECT_THROW(check.check(x, bad), IntegrityError);
      }
    }
  Tensor nan = y;
  nan.data()[3] = std::nanf("");
  EXPECT_THROW(check.check(x, nan), IntegrityError);
}

// e on one channel and -e on another at the same position cancel when the two signs agree:
// 1/2 per round, so 1/4 with two rounds (fresh sign vectors per trial).
TEST(FloatFreivalds, CancellingErrorsPassAtTheBoundsRate) {
  std::mt19937 rng(3);
  const LinearLayer layer = dense_layer(1, 8, 6, rng);
  const Tensor x = random_input(layer, 1, rng);
  const Tensor y = apply_linear(layer, layer.weight, x);
  int passed = 0;
  const int trials = 400;
  for (int trial = 0; trial < trials; ++trial) {
    AesCtrPrg prg = test_prg(trial);
    FloatFreivalds check(layer, layer.weight, 2, prg);
    EXPECT_DOUBLE_EQ(check.false_accept_bound(), 0.25);
    Tensor bad = y;
    bad.data()[1] += 5.0f;
    bad.data()[6] -= 5.0f;
    try {
      check.check(x, bad);
      ++passed;
    } catch (const IntegrityError&) {
    }
  }
  EXPECT_GT(passed, trials / 8);
  EXPECT_LT(passed, trials * 3 / 8);
}

TEST(FloatFreivalds, RoundsOutsideTheRangeAreRefused) {
  std::mt19937 rng(4);
  const LinearLayer layer = dense_layer(1, 2, 3, rng);
  AesCtrPrg prg = test_prg(4);
  EXPECT_THROW(FloatFreivalds(layer, layer.weight, 0, prg), InvalidArgument);
  EXPECT_THROW(FloatFreivalds(layer, layer.weight, 65, prg), InvalidArgument);
}

}  // namespace
}  // namespace veil::split

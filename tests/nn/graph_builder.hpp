// Test helpers: build veil graphs directly from the IR structs, random tensors, tolerant
// comparison, and a central-finite-difference gradient checker for the executor.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "veil/core/error.hpp"
#include "veil/model/graph.hpp"
#include "veil/nn/executor.hpp"
#include "veil/nn/threads.hpp"

namespace veil::nn::testing {

// The suites run their kernels on one thread: they are dominated by tiny problems, for which
// OpenMP barriers on a shared, loaded machine cost more than the work (tests that want threads
// ask for them through ExecutorOptions::threads).
inline const bool kSingleThreaded = [] {
  set_num_threads(1);
  return true;
}();

class GraphBuilder {
 public:
  explicit GraphBuilder(int64_t opset = 13) { model_.opset = opset; }

  GraphBuilder& input(const std::string& name, Shape shape, DType dtype = DType::Float32) {
    model_.graph.inputs.push_back({name, dtype, std::move(shape)});
    return *this;
  }
  GraphBuilder& output(const std::string& name) {
    model_.graph.outputs.push_back({name, DType::Float32, {}});
    return *this;
  }
  GraphBuilder& init(const std::string& name, Tensor t) {
    model_.graph.initializers[name] = std::move(t);
    return *this;
  }
  GraphBuilder& node(const std::string& op, std::vector<std::string> inputs,
                     std::vector<std::string> outputs,
                     std::map<std::string, model::Attribute> attrs = {}) {
    model::Node n;
    n.name = op + "_" + std::to_string(model_.graph.nodes.size());
    n.op_type = op;
    n.inputs = std::move(inputs);
    n.outputs = std::move(outputs);
    n.attributes = std::move(attrs);
    model_.graph.nodes.push_back(std::move(n));
    return *this;
  }
  model::Model build() const { return model_; }

 private:
  model::Model model_;
};

inline Tensor random_tensor(const Shape& shape, std::mt19937& rng, float lo = -1.0f,
                            float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& x : v) x = d(rng);
  return Tensor::from_floats(shape, std::move(v));
}

// Values bounded away from zero (|x| in [0.1, 1]), so that kinks at 0 are never straddled by a
// finite-difference step.
inline Tensor away_from_zero(const Shape& shape, std::mt19937& rng) {
  Tensor t = random_tensor(shape, rng, 0.1f, 1.0f);
  std::bernoulli_distribution sign(0.5);
  for (auto& x : t.floats())
    if (sign(rng)) x = -x;
  return t;
}

// Distinct values spaced >= 0.05 apart (in random order): max-pool arg-maxes stay put under a
// small perturbation.
inline Tensor distinct_values(const Shape& shape, std::mt19937& rng) {
  const int64_t n = shape_numel(shape);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = -1.0f + 0.05f * static_cast<float>(i);
  std::shuffle(v.begin(), v.end(), rng);
  return Tensor::from_floats(shape, std::move(v));
}

inline ::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected,
                                            double rel = 1e-5, double abs = 1e-5) {
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure() << "shape " << shape_to_string(actual.shape())
                                         << " != expected " << shape_to_string(expected.shape());
  const auto a = actual.to_floats(), e = expected.to_floats();
  for (size_t i = 0; i < a.size(); ++i) {
    const double tol = abs + rel * std::max(std::fabs(a[i]), std::fabs(e[i]));
    if (!(std::fabs(double(a[i]) - e[i]) <= tol))
      return ::testing::AssertionFailure() << "element " << i << ": " << a[i] << " != expected "
                                           << e[i] << " (tol " << tol << ")";
  }
  return ::testing::AssertionSuccess();
}

// Runs the single-output model on `inputs` and returns the output.
inline Tensor run1(model::Model& m, const std::vector<Tensor>& inputs, Mode mode = Mode::Inference,
                   ExecutorOptions opts = {}) {
  Executor ex(m, opts);
  auto out = ex.forward(inputs, mode);
  return out.at(0);
}

struct GradCheck {
  float eps = 1e-2f;
  double rel = 1e-2;
  double abs = 1e-3;
  bool inputs = true;                  // check input gradients too
  std::vector<std::string> trainable;  // empty: the executor's default
};

// Compares the executor's gradients of L = sum(g * y) (g random, fixed) with central finite
// differences, for every trainable initializer and (optionally) every float input.
inline void check_gradients(model::Model& m, std::vector<Tensor> inputs, const GradCheck& c,
                            uint32_t seed = 7) {
  std::mt19937 rng(seed);
  ExecutorOptions opts;
  opts.input_gradients = c.inputs;
  opts.trainable = c.trainable;
  Executor ex(m, opts);
  auto y = ex.forward(inputs, Mode::Training);
  std::vector<Tensor> gy;
  for (const auto& t : y) gy.push_back(random_tensor(t.shape(), rng));
  ex.backward(gy);
  auto loss = [&] {
    auto out = ex.forward(inputs, Mode::Training);
    double l = 0;
    for (size_t k = 0; k < out.size(); ++k)
      for (int64_t i = 0; i < out[k].numel(); ++i)
        l += double(out[k].floats()[i]) * gy[k].floats()[i];
    return l;
  };
  auto compare = [&](const std::string& what, float* value, float analytic) {
    const float saved = *value;
    *value = saved + c.eps;
    const double lp = loss();
    *value = saved - c.eps;
    const double lm = loss();
    *value = saved;
    const double numeric = (lp - lm) / (2.0 * c.eps);
    const double tol = c.abs + c.rel * std::max(std::fabs(numeric), std::fabs(double(analytic)));
    EXPECT_NEAR(analytic, numeric, tol) << what;
  };
  ASSERT_FALSE(ex.trainable().empty() && !c.inputs) << "nothing to check";
  const TensorMap grads = ex.param_grads();
  for (const auto& name : ex.trainable()) {
    Tensor& p = m.graph.initializers.at(name);
    const Tensor& g = grads.at(name);
    ASSERT_EQ(g.shape(), p.shape()) << name;
    for (int64_t i = 0; i < p.numel(); ++i) {
      float* v = &p.floats()[i];
      const float saved = *v;
      auto bump = [&](float nv) {
        *v = nv;
        ex.parameter_changed(name);
      };
      bump(saved + c.eps);
      const double lp = loss();
      bump(saved - c.eps);
      const double lm = loss();
      bump(saved);
      const double numeric = (lp - lm) / (2.0 * c.eps);
      const double analytic = g.floats()[i];
      const double tol = c.abs + c.rel * std::max(std::fabs(numeric), std::fabs(analytic));
      EXPECT_NEAR(analytic, numeric, tol) << name << "[" << i << "]";
    }
  }
  if (c.inputs) {
    const std::vector<Tensor> ig = ex.input_grads();
    ASSERT_EQ(ig.size(), inputs.size());
    for (size_t k = 0; k < inputs.size(); ++k) {
      if (inputs[k].dtype() != DType::Float32) continue;
      ASSERT_EQ(ig[k].shape(), inputs[k].shape());
      for (int64_t i = 0; i < inputs[k].numel(); ++i)
        compare("input " + std::to_string(k) + "[" + std::to_string(i) + "]",
                &inputs[k].floats()[i], ig[k].floats()[i]);
    }
  }
}

}  // namespace veil::nn::testing
